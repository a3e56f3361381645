//! Net's replicated parts on the `App`: the link's messages and node commands (for the
//! protocol hash), and the node overrides part with its handlers. Both roles register them
//! ([`register`]), so a master and its receivers agree on the shape.
//!
//! The master owns the overrides (its registry records them as node commands arrive) and
//! every snapshot carries all of them; a receiver's handler keeps its own entry, which it
//! applies at render on top of the shared playback state.

use bevy::prelude::*;
use rockontrol_replicate::AppReplicateExt;

use crate::master::MasterNet;
use crate::protocol::{self, NodeOverrides};
use crate::receiver::ReceiverNet;

/// Registers net's messages, node commands and node overrides on `app`.
pub fn register(app: &mut App) {
    app.add_replication(protocol::register_replication)
        .replicate_state::<NodeOverrides, _, _>(
            protocol::OVERRIDES_PART,
            capture_overrides,
            apply_overrides,
        );
}

/// A master's overrides (a receiver has none to give).
fn capture_overrides(world: &World) -> NodeOverrides {
    world
        .get_resource::<MasterNet>()
        .map(|net| net.shared.registry().overrides().clone())
        .unwrap_or_default()
}

/// A receiver keeps its own entry (none: neutral).
fn apply_overrides(world: &mut World, overrides: NodeOverrides) -> Result<(), String> {
    let Some(mut net) = world.get_resource_mut::<ReceiverNet>() else {
        // A master does not apply snapshots.
        return Ok(());
    };
    let own = overrides.get(&net.node_id).cloned().unwrap_or_default();
    if own != net.node_override {
        info!("node output from the master: {own:?}");
    }
    net.node_override = own;
    Ok(())
}
