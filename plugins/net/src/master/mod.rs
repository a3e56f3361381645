//! The master role: it programs and runs the show, and drives receivers.
//!
//! - [`plugin`]: [`MasterPlugin`] and [`MasterNet`], the network as Bevy systems (the engine
//!   applies show commands at a tick, the registry streams them).
//! - [`control`]: `GET /api/control`, the WebSocket for tools: `POST /api/command`'s bodies
//!   run by the same code path ([`server::run_command`]) with REST's answers, a pushed state,
//!   bounds on frame size, rate and bad frames.
//! - [`server`]: the transport, the axum REST + WebSocket server, with its timeouts and
//!   connection cap; it keeps each link's writer and drains the registry's outbox into them
//!   whenever a lock on the registry ends ([`server::RegistryGuard`]).
//! - [`limits`]: what an unauthenticated peer may hold (connections in all and per address,
//!   head size, handshake times), pure logic.
//!
//! The pure logic the master uses lives beside the roles: [`crate::registry`] (nodes,
//! admission, routing, queues, replication stream), [`crate::handshake`], [`crate::alerts`],
//! [`crate::stage`] and [`crate::adoptions`] (what a restarted master keeps).

pub mod control;
pub mod limits;
pub mod plugin;
pub mod server;

pub use plugin::{MasterNet, MasterPlugin};
pub use server::{
    Applied, MasterShared, Refused, RegistryGuard, ServerLimits, ShowCommandRequest, bind, router,
    serve, serve_with,
};
