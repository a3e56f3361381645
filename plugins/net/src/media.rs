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
use rockontrol_library::gate::{self, Verdict};
use rockontrol_library::swarm::Partials;
use rockontrol_library::{
    FetchSettings, Fetcher, MediaReport, MediaServer, Need, NodePlays, Store, manifest_for,
};
use rockontrol_show::{Clip, CueNumber, MediaSetup, Show};
use serde_json::json;

use crate::auth::Access;
use crate::config::Capability;
use crate::master::MasterShared;

/// Open connections at most on a receiver's peer media server (32 from one address).
pub const PEER_SERVE_CONNECTIONS: usize = 128;

/// The master's library and the clips its show names.
#[derive(Debug)]
pub struct MasterMedia {
    pub store: Store,
    /// The show's `clips` (set when a show is loaded, and again whenever the show changes).
    pub clips: RwLock<Vec<Clip>>,
    /// The show's media part: which node plays which clip, what cues start, the gate mode.
    pub setup: RwLock<MediaSetup>,
    /// Cap on clip serving, Mbit/s (`media_serve_mbit` in the master's config).
    pub serve_mbit: Option<f64>,
    /// The clips media commands in the replicated media log play on which layers (kept by
    /// the master as the log changes): manifests add them to their layers' nodes.
    pub commanded: RwLock<Vec<gate::Commanded>>,
}

impl MasterMedia {
    /// The library in `store`, for `show`.
    pub fn new(store: Store, show: &Show) -> Self {
        MasterMedia {
            store,
            clips: RwLock::new(show.clips.clone()),
            setup: RwLock::new(show.media.clone()),
            serve_mbit: None,
            commanded: RwLock::new(Vec::new()),
        }
    }

    /// Follows the replicated media log's commands: `commanded` is every (layer, clip) a
    /// media command in it plays.
    pub fn follow_commands(&self, commanded: Vec<gate::Commanded>) {
        if let Ok(mut now) = self.commanded.write()
            && *now != commanded
        {
            info!(
                "media: commands play {} clip(s) on layers; manifests follow",
                commanded.len()
            );
            *now = commanded;
        }
    }

    /// Follows a new or edited show: manifests and the GO gate use its clips and media part.
    pub fn follow(&self, show: &Show) {
        if let Ok(mut clips) = self.clips.write()
            && *clips != show.clips
        {
            info!(
                "media: the show names {} clips; manifests follow",
                show.clips.len()
            );
            *clips = show.clips.clone();
        }
        if let Ok(mut setup) = self.setup.write()
            && *setup != show.media
        {
            *setup = show.media.clone();
        }
    }

    /// Whether any cue starts a clip (else the gate has nothing to check).
    pub fn has_media_cues(&self) -> bool {
        self.setup.read().is_ok_and(|s| !s.cues.is_empty())
    }

    /// The GO gate for the cues `went` (cue list, cue) a command starts: the nodes that must
    /// play a clip those cues start, checked against their last media reports. The master's
    /// own outputs play from its library (a clip there is ready).
    pub fn gate(
        &self,
        registry: &crate::registry::Registry,
        went: &[(String, CueNumber)],
    ) -> Verdict {
        let Ok(setup) = self.setup.read() else {
            return Verdict::Go;
        };
        let needs: Vec<gate::Need> = went
            .iter()
            .flat_map(|(list, cue)| gate::cue_needs(&setup, list, *cue))
            .collect();
        if needs.is_empty() {
            return Verdict::Go;
        }
        let clips = self.clips.read().map(|c| c.clone()).unwrap_or_default();
        let master = registry.master_id().to_string();
        // The master's own clips: ready when in the library.
        let own = MediaReport {
            serves: None,
            clips: clips
                .iter()
                .filter_map(|c| {
                    let id = c.id.parse().ok()?;
                    Some(rockontrol_library::readiness::ClipReport {
                        id,
                        name: c.name.clone(),
                        size: self.store.size(&id)?,
                        state: rockontrol_library::ClipState::Ready,
                    })
                })
                .collect(),
            ..MediaReport::default()
        };
        gate::gate(setup.gate, &needs, &clips, |node| {
            if node == master {
                Some(&own)
            } else {
                registry.node(node).and_then(|n| n.metrics().media.as_ref())
            }
        })
    }
}

/// Peers named as sources of one clip in a manifest, at most.
const PEER_SOURCES: usize = 6;

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
    // Reading needs any key; an upload edits the show's media (programmer). The peer's
    // address is not passed here; the audit log has it from the request.
    let authorize = move |headers: &HeaderMap, need: Need| {
        let action = match need {
            Need::Read => crate::roles::Action::Read,
            Need::Control => crate::roles::Action::EditShow {
                what: "upload a clip to the media library",
            },
        };
        crate::master::server::authorize(&auth, headers, None, &action).map(|_| ())
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
        let commanded = library
            .commanded
            .read()
            .map(|c| c.clone())
            .unwrap_or_default();
        // One rule (`gate::clips_needed`): the show's outputs say which node plays which clip,
        // media commands in the replicated log add the clips they play to their layers'
        // nodes, and clips nothing places go to every node with an output; a show without
        // media outputs sends every clip to every media node.
        let plays = library
            .setup
            .read()
            .ok()
            .and_then(|s| gate::clips_needed(&s, &clips, &commanded, node))
            .map_or(NodePlays::from_capability(media_capable), NodePlays::Named);
        let mut manifest = manifest_for(node, &clips, &plays, |id| library.store.size(id));
        // Peer-assisted distribution: linked peers that serve and hold a clip, or some of its
        // chunks (downloading: they serve the chunks they verified, so nodes that start
        // together trade chunks).
        let registry = reg.registry();
        let mut certificates = BTreeMap::new();
        for entry in &mut manifest.clips {
            let mut peers: Vec<(String, Option<String>)> = registry
                .nodes()
                .filter(|n| n.node_id() != node && n.is_linked())
                .filter_map(|n| {
                    let report = n.metrics().media.as_ref()?;
                    report
                        .state(&entry.id)
                        .is_some_and(|s| {
                            s.is_ready()
                                || matches!(
                                    s,
                                    rockontrol_library::ClipState::Downloading { .. }
                                        | rockontrol_library::ClipState::Verified
                                )
                        })
                        .then(|| {
                            Some((report.serves.clone()?, report.serves_fingerprint.clone()))
                        })?
                })
                .collect();
            // At most this many, a different few for each node.
            let keep = PEER_SOURCES.min(peers.len());
            if keep > 0 {
                let start = (rockontrol_library::chunks::salt(node) % peers.len() as u64) as usize;
                peers.rotate_left(start);
                peers.truncate(keep);
            }
            // Each peer's certificate, as it reported it over its pinned link: fetchers pin it.
            for (addr, fingerprint) in &peers {
                if let Some(f) = fingerprint {
                    certificates.insert(addr.clone(), f.clone());
                }
            }
            entry.sources = peers.into_iter().map(|(addr, _)| addr).collect();
        }
        manifest.peer_certificates = certificates;
        Some(manifest)
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
    Some(rockontrol_library::router(Arc::new(
        MediaServer::new(
            media.store.clone(),
            Box::new(authorize),
            Box::new(manifests),
            Box::new(status),
        )
        .capped(media.serve_mbit),
    )))
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
                "serves": r.serves,
                "serves_fingerprint": r.serves_fingerprint,
                "from_master_bytes": r.from_master_bytes,
                "from_peers_bytes": r.from_peers_bytes,
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
    /// Where it serves its ready clips to peers (taken when the server starts).
    serve: Option<std::net::TcpListener>,
    /// Cap on serving to peers, Mbit/s.
    serve_mbit: Option<f64>,
    /// The chunks held of clips being downloaded, when the node serves peers.
    partials: Option<Partials>,
    /// The certificate peers are served with (none: plaintext, `insecure`).
    serve_tls: Option<rockontrol_tls::ServerIdentity>,
}

impl ReceiverMedia {
    pub fn new(store: Store, parallel: usize, mbit: Option<f64>) -> Self {
        ReceiverMedia {
            store,
            parallel,
            mbit,
            report: Arc::new(Mutex::new(MediaReport::default())),
            running: None,
            serve: None,
            serve_mbit: None,
            partials: None,
            serve_tls: None,
        }
    }

    /// Serves peers over TLS with `identity` (without: plaintext, for `insecure` nodes).
    pub fn serve_tls(mut self, identity: rockontrol_tls::ServerIdentity) -> Self {
        if let Ok(mut report) = self.report.lock() {
            report.serves_fingerprint = Some(identity.fingerprint.to_string());
        }
        self.serve_tls = Some(identity);
        self
    }

    /// Serves the node's ready clips to peers on `listener`, at most at `mbit` Mbit/s (see
    /// [`receiver_media_serve`]).
    pub fn serve_peers(mut self, listener: std::net::TcpListener, mbit: Option<f64>) -> Self {
        self.serve_mbit = mbit;
        if let (Ok(addr), Ok(mut report)) = (listener.local_addr(), self.report.lock()) {
            report.serves = Some(addr.to_string());
        }
        self.serve = Some(listener);
        self.partials = Some(Partials::default());
        self
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
            tls: match &net.security {
                crate::receiver::link::LinkSecurity::Plain => None,
                crate::receiver::link::LinkSecurity::Tls { pin, .. } => Some(pin.clone()),
            },
        },
    );
    fetcher.share_report(Arc::clone(&media.report));
    if let Some(partials) = &media.partials {
        fetcher.share_partials(partials.clone());
    }
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

/// Serves a receiver's clips to its peers (peer-assisted distribution): the library's own
/// routes on the node's store, for requests with the node's key. It serves what is in the
/// store (verified clips) and the verified chunks of clips it is still downloading; a fetcher
/// checks every chunk anyway.
#[allow(
    clippy::result_large_err,
    reason = "the refusal is the axum Response the handler returns as is"
)]
pub(crate) fn receiver_media_serve(
    media: Option<ResMut<ReceiverMedia>>,
    key: Res<MediaKey>,
    runtime: Res<TokioTasksRuntime>,
) {
    let Some(mut media) = media else { return };
    let Some(listener) = media.serve.take() else {
        return;
    };
    let keys = crate::auth::Keys {
        control: key.0.iter().cloned().collect(),
        read_only: Vec::new(),
    };
    let authorize = move |headers: &HeaderMap, _need: Need| {
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if keys.check(header) >= Access::ReadOnly {
            Ok(())
        } else {
            Err(rockontrol_library::serve::error(
                axum::http::StatusCode::UNAUTHORIZED,
                "a peer needs the rig's key: Authorization: Bearer <key>",
            ))
        }
    };
    let mut server = MediaServer::new(
        media.store.clone(),
        Box::new(authorize),
        Box::new(|_| None),
        Box::new(|| json!({})),
    )
    .capped(media.serve_mbit);
    if let Some(partials) = &media.partials {
        server = server.sharing(partials.clone());
    }
    let server = Arc::new(server);
    let addr = listener.local_addr().ok();
    let tls = media
        .serve_tls
        .as_ref()
        .map(rockontrol_tls::ServerIdentity::acceptor);
    info!(
        "media: serving ready clips to peers on {addr:?} ({})",
        if tls.is_some() { "TLS" } else { "plaintext" }
    );
    runtime.spawn_background_task(move |_ctx| async move {
        let served = async {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            // Bounded like the control port: peers are not trusted before they show the key.
            crate::bounded::serve_bounded(
                listener,
                rockontrol_library::router(server),
                crate::master::limits::Policy::new(PEER_SERVE_CONNECTIONS),
                crate::master::server::HEADER_READ_TIMEOUT,
                "media peer server",
                tls,
            )
            .await
        };
        if let Err(e) = served.await {
            error!("media: the peer server stopped: {e}");
        }
    });
}
