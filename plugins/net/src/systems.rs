//! [`NetSystems`]: where the network's systems run within a frame, for every role, and the
//! tokio runtime they share.

use bevy::prelude::*;
use bevy_tokio_tasks::{TokioTasksPlugin, TokioTasksRuntime};
use rockontrol_engine::EngineSystems;

/// The network's systems, in order within a frame.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetSystems {
    /// `PreUpdate`: take in what the sockets received.
    Receive,
    /// `FixedUpdate`, after the engine compiles and before it plays: apply commands, snapshots
    /// and deltas at this tick.
    Apply,
    /// `FixedUpdate`, after the engine played: publish state changes.
    Publish,
    /// `Update`: heartbeats and the clock.
    Send,
}

pub(crate) fn configure_sets(app: &mut App) {
    app.configure_sets(
        FixedUpdate,
        (
            NetSystems::Apply
                .after(EngineSystems::Compile)
                .before(EngineSystems::Playback),
            NetSystems::Publish
                .after(EngineSystems::Playback)
                .before(EngineSystems::Render),
        ),
    )
    .configure_sets(PreUpdate, NetSystems::Receive)
    .configure_sets(Update, NetSystems::Send);
    if !app.world().contains_resource::<TokioTasksRuntime>() {
        app.add_plugins(TokioTasksPlugin {
            make_runtime: Box::new(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("rockontrol-net")
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("cannot start the network runtime: {e}"))
            }),
            ..default()
        });
    }
}
