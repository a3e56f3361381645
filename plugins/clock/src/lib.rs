//! RocKontrol clock sync: the master's show clock is the one clock of the rig.
//!
//! Receivers estimate their clock's offset and drift against the master's from NTP-style
//! four-timestamp exchanges on a dedicated UDP port, filter them (min-delay gate and a
//! weighted regression), and steer their show time base toward the master's show time: slewed,
//! stepped only past a threshold. Each node's DMX output thread sends frame *k* at the time
//! base's deadline for tick *k*, so aligned show clocks align the universes of every node.
//!
//! # Layout
//! Pure (no I/O, no Bevy), unit-tested against numbers and bytes:
//! - [`sample`]: one exchange, its offset and delay.
//! - [`estimator`]: [`ClockEstimator`], the filter, and the [`Estimate`] it gives.
//! - [`servo`]: [`Servo`], slew or step.
//! - [`codec`]: the packets (binary, versioned, HMAC-signed) and the replay window.
//! - [`local`]: the node's clock as numbers, and the injected error of tests
//!   (`ROCKONTROL_TEST_CLOCK`).
//! - [`stats`]: [`percentile`], for status lines, tests and benchmarks.
//!
//! Thin shells:
//! - [`udp`]: [`ClockResponder`] (master) and [`ClockClient`] (receiver), one named thread
//!   each, kernel receive timestamps; the client falls back to the control WebSocket
//!   ([`websocket`]) where UDP goes unanswered, and [`ClockAnswerer`] answers both paths.
//! - [`plugin`]: [`ClockSyncPlugin`], [`ClockSync`] (receiver), [`ClockResponderSlot`]
//!   (master), [`ClockStatus`] (what a receiver reports).
//!
//! # Seams for later
//! The responder hands out whatever show time the master's [`rockontrol_engine::ShowTimeBase`]
//! says ([`ShowTimeShare`]); a timecode chase that steers the master's time base is followed
//! by every receiver with no change here.

pub mod codec;
pub mod estimator;
pub mod local;
pub mod plugin;
pub mod sample;
pub mod servo;
pub mod stats;
pub mod udp;
pub mod websocket;

pub use codec::{ClockKey, PacketError, Ping, Pong};
pub use estimator::{ClockEstimator, Estimate, EstimatorConfig, Update};
pub use local::{InjectedError, LocalClock, TEST_CLOCK_VARIABLE};
pub use plugin::{
    CLOCK_SERVER_VARIABLE, ClockResponderSlot, ClockStatus, ClockSync, ClockSyncPlugin,
    ClockSystems, register_replication,
};
pub use sample::Sample;
pub use servo::{Correction, Servo, ServoConfig};
pub use stats::percentile;
pub use udp::{
    ClientConfig, ClientState, ClockAnswerer, ClockClient, ClockResponder, ShowTimeShare, Transport,
};
pub use websocket::{WS_PACKET_PART, WsClockPacket, WsInbox, WsSend};
