//! DMX over IP and USB: the engine's frames on the wire, and DMX in from other consoles.
//!
//! Outputs never send from the ECS schedule: [`DmxPlugin`] subscribes an output thread to the
//! engine's [`FrameBus`](rockontrol_engine::FrameBus); that named thread sends frame *k* at its
//! deadline on the show clock, followed by sync packets, so multi-universe frames switch
//! together and spacing does not depend on the render loop. On shutdown it sends the
//! stream-terminated packets before the process exits.
//!
//! Packet bytes come from the Bevy-free codecs of `rockontrol-wire`; this crate owns the sockets.
//!
//! # Layout
//! - [`routes`]: the show's per-universe `outputs` resolved into socket destinations.
//! - [`output`]: [`output::OutputThread`], pacing, sequence numbers, sync, discovery, termination.
//! - [`input`]: sACN and Art-Net receivers with priority/HTP merge (for bridges and `monitor`).
//! - [`cid`]: the node's persistent sACN CID.
//! - [`plugin`]: [`DmxPlugin`] and [`DmxSettings`].

pub mod cid;
pub mod input;
pub mod output;
pub mod plugin;
pub mod routes;

pub use plugin::{DmxPlugin, DmxSettings, DmxStats};
