//! The receiver role: it outputs its universes (and media) for a master.
//!
//! - [`plugin`]: [`ReceiverPlugin`] and [`ReceiverNet`], the network as Bevy systems
//!   (snapshot, deltas and node commands applied at their ticks).
//! - [`link`]: the transport, the link to the master (tokio-tungstenite), reconnecting.
//! - [`identify`]: the identify flash (pure).
//!
//! The pure logic the receiver uses lives beside the roles: [`crate::replica`] (sequence
//! tracking), [`crate::link_policy`] (silence, which master next), [`crate::handshake`] and
//! [`crate::executed`] (the durable log of executed command ids).

pub mod identify;
pub mod link;
pub mod plugin;

pub use identify::IdentifyFlash;
pub use link::{LinkConfig, LinkEvent, LinkSecurity, MasterAddress, run_link};
pub use plugin::{
    HISTORY_KEPT, HistoryEntry, NodeRestart, RESTART_GRACE, ReceiverNet, ReceiverPlugin,
    redirect_sacn,
};
