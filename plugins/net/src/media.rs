//! The media library on the nodes (issue 13): the master serves its library and each node's
//! manifest; a receiver with the media capability fetches its manifest and reports readiness
//! in its heartbeat.
//!
//! The library itself (store, ranges, manifest rule, fetcher) is `rockontrol-library`; this
//! module only wires it to the master's server (keys, registry) and the receiver's link.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::http::HeaderMap;
use bevy::prelude::*;
use bevy_tokio_tasks::TokioTasksRuntime;
use rockontrol_library::{
    FetchSettings, Fetcher, MediaReport, MediaServer, Need, NodePlays, Store, manifest_for,
};
use rockontrol_show::Clip;
use serde_json::json;

use crate::auth::Access;
use crate::config::Capability;
use crate::master::MasterShared;

/// The master's library and the clips its show names.
#[derive(Debug)]
pub struct MasterMedia {
    pub store: Store,
    /// The show's `clips` (set when a show is loaded).
    pub clips: RwLock<Vec<Clip>>,
}

/// Insert before [`crate::MasterPlugin`] to serve `/api/media/…`.
#[derive(Resource, Clone, Debug)]
pub struct MasterMediaSetup(pub Arc<MasterMedia>);

/// The media routes of a master with a library (merged after the request timeout: a clip
/// download takes as long as it takes).
#[allow(
    clippy::result_large_err,
    reason = "the refusal is the axum Response the handler returns as is"
)]
pub fn routes(shared: &Arc<MasterShared>) -> Option<Router> {
    let media = shared.media.clone()?;
    let auth = Arc::clone(shared);
    let authorize = move |headers: &HeaderMap, need: Need| {
        let need = match need {
            Need::Read => Access::ReadOnly,
            Need::Control => Access::Control,
        };
        crate::master::server::authorize(&auth, headers, need)
    };
    let reg = Arc::clone(shared);
    let library = Arc::clone(&media);
    let manifests = move |node: &str| {
        let media_capable = reg
            .registry()
            .node(node)?
            .capabilities()
            .contains(&Capability::MediaPlayback);
        let clips = library.clips.read().map(|c| c.clone()).unwrap_or_default();
        Some(manifest_for(
            node,
            &clips,
            &NodePlays::from_capability(media_capable),
            |id| library.store.size(id),
        ))
    };
    let reg = Arc::clone(shared);
    let status = move || {
        let registry = reg.registry();
        let nodes: BTreeMap<&str, serde_json::Value> = registry
            .nodes()
            .filter(|n| {
                n.metrics().media.is_some() || n.capabilities().contains(&Capability::MediaPlayback)
            })
            .map(|n| (n.node_id(), node_json(n.metrics().media.as_ref())))
            .collect();
        json!({ "nodes": nodes })
    };
    Some(rockontrol_library::router(Arc::new(MediaServer::new(
        media.store.clone(),
        Box::new(authorize),
        Box::new(manifests),
        Box::new(status),
    ))))
}

/// One node's readiness as `GET /api/media/status` shows it.
fn node_json(report: Option<&MediaReport>) -> serde_json::Value {
    match report {
        None => json!({ "ready": false, "reported": false, "clips": [] }),
        Some(r) => {
            let (done, all) = r.bytes();
            json!({
                "ready": r.ready(),
                "reported": true,
                "bytes_done": done,
                "bytes_total": all,
                "not_ready": r.not_ready(),
                "clips": r.clips,
            })
        }
    }
}

/// A receiver's media: its store, how it fetches, and its readiness report.
#[derive(Resource)]
pub struct ReceiverMedia {
    pub store: Store,
    pub parallel: usize,
    /// Mbit/s for all downloads (`None`: no cap).
    pub mbit: Option<f64>,
    pub report: Arc<Mutex<MediaReport>>,
    /// The master the fetcher runs against, and its stop flag.
    running: Option<(SocketAddr, Arc<AtomicBool>)>,
}

impl ReceiverMedia {
    pub fn new(store: Store, parallel: usize, mbit: Option<f64>) -> Self {
        ReceiverMedia {
            store,
            parallel,
            mbit,
            report: Arc::new(Mutex::new(MediaReport::default())),
            running: None,
        }
    }

    /// The report for the heartbeat.
    pub fn snapshot(&self) -> MediaReport {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Starts (or moves) the fetcher to the master the link is connected to.
pub(crate) fn receiver_media(
    media: Option<ResMut<ReceiverMedia>>,
    net: Res<crate::receiver::ReceiverNet>,
    key: Res<MediaKey>,
    runtime: Res<TokioTasksRuntime>,
) {
    let Some(mut media) = media else { return };
    let Some(master) = net.master_addr.filter(|_| net.connected) else {
        return;
    };
    if media.running.as_ref().is_some_and(|(a, _)| *a == master) {
        return;
    }
    if let Some((_, stop)) = media.running.take() {
        stop.store(true, Ordering::SeqCst);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut fetcher = Fetcher::new(
        media.store.clone(),
        FetchSettings {
            master: master.to_string(),
            key: key.0.clone(),
            node_id: net.node_id.clone(),
            parallel: media.parallel,
            mbit: media.mbit,
        },
    );
    fetcher.share_report(Arc::clone(&media.report));
    info!("media: fetching this node's clips from {master}");
    let flag = Arc::clone(&stop);
    runtime.spawn_background_task(move |_ctx| async move {
        if let Err(e) = fetcher
            .run(false, move || flag.load(Ordering::SeqCst))
            .await
        {
            error!("media: the fetcher stopped: {e}");
        }
    });
    media.running = Some((master, stop));
}

/// The key the fetcher sends (the receiver's key).
#[derive(Resource, Clone, Debug, Default)]
pub(crate) struct MediaKey(pub Option<String>);
