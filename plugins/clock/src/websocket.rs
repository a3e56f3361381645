//! The WebSocket fallback's message: the same signed binary packets as on UDP, hex-encoded in
//! a registered protocol message of the node link (pure).
//!
//! Where a receiver's pings on UDP go unanswered (a firewall that only lets the control
//! connection through), the four-timestamp exchange runs over the control WebSocket instead:
//! the receiver's link sends each ping as a [`WsClockPacket`] and hands the pong back with the
//! instant its frame arrived; the master's link handler answers at once with the instant the
//! ping's frame arrived as `t2`. The packets keep their HMAC, so the exchange is
//! authenticated as on UDP (and the link itself is authenticated by its handshake). Samples
//! are worse (TCP, the async runtime and user-space receive times on both sides); the same
//! filter takes them, its min-delay gate preferring the best.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The registered name of [`WsClockPacket`] ([`rockontrol_replicate`]'s protocol messages).
pub const WS_PACKET_PART: &str = "clock.ws_packet";

/// One clock packet (ping or pong) on the control WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WsClockPacket {
    /// The packet's bytes in lowercase hex ([`crate::codec`]).
    pub packet: String,
}

/// Sends a ping over the link (false: it could not be queued). Made by the link's owner.
#[derive(Clone)]
pub struct WsSend(Arc<dyn Fn(WsClockPacket) -> bool + Send + Sync>);

impl WsSend {
    pub fn new(send: impl Fn(WsClockPacket) -> bool + Send + Sync + 'static) -> WsSend {
        WsSend(Arc::new(send))
    }

    /// Queues `packet` on the link; false where it could not.
    pub fn send(&self, packet: WsClockPacket) -> bool {
        (self.0)(packet)
    }
}

impl std::fmt::Debug for WsSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsSend")
    }
}

/// A pong from the link, with the instant its frame arrived.
#[derive(Debug, Clone)]
pub struct WsArrival {
    pub bytes: Vec<u8>,
    pub at: Instant,
}

/// Where the link hands the master's clock packets, as soon as their frames arrive: to the
/// clock client of the moment ([`crate::ClockSync`] points it at each new client).
#[derive(Debug, Clone, Default)]
pub struct WsInbox(Arc<Mutex<Option<Sender<WsArrival>>>>);

impl WsInbox {
    /// Hands `packet`, whose frame arrived at `at`, to the current client (none: dropped).
    pub fn deliver(&self, packet: &WsClockPacket, at: Instant) {
        let bytes = match packet.to_bytes() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("clock sync: a clock packet on the link is unusable: {e}");
                return;
            }
        };
        if let Ok(slot) = self.0.lock()
            && let Some(tx) = slot.as_ref()
        {
            let _ = tx.send(WsArrival { bytes, at });
        }
    }

    /// Points the inbox at a client's channel (`None`: nowhere).
    pub(crate) fn set(&self, tx: Option<Sender<WsArrival>>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = tx;
        }
    }
}

impl WsClockPacket {
    /// The packet for `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> WsClockPacket {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut packet = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            packet.push(char::from(DIGITS[usize::from(b >> 4)]));
            packet.push(char::from(DIGITS[usize::from(b & 15)]));
        }
        WsClockPacket { packet }
    }

    /// The bytes, or why the text is not hex. (Hand-written: two loops do not need a crate.)
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let text = self.packet.as_bytes();
        if !text.len().is_multiple_of(2) {
            return Err(format!(
                "clock packet hex has an odd length ({})",
                text.len()
            ));
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("{:?} in a clock packet is not hex", char::from(c))),
        };
        text.chunks(2)
            .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_through_hex_and_bad_hex_is_named() {
        let bytes: Vec<u8> = (0..=255).collect();
        let p = WsClockPacket::from_bytes(&bytes);
        assert_eq!(&p.packet[..8], "00010203");
        assert_eq!(p.to_bytes(), Ok(bytes));
        let odd = WsClockPacket {
            packet: "abc".into(),
        };
        assert!(odd.to_bytes().expect_err("odd").contains("odd length"));
        let bad = WsClockPacket {
            packet: "zz".into(),
        };
        assert!(bad.to_bytes().expect_err("bad").contains("'z'"));
    }
}
