//! Transport security for RocKontrol's control paths (REST, WebSocket, media transfer, show
//! download): TLS by default with rustls and the `ring` provider.
//!
//! - [`identity`]: a node's certificate: the configured PEM files, or a self-signed one
//!   (rcgen) generated into its state directory and reused at later starts.
//! - [`Fingerprint`]: SHA-256 of the certificate (DER), what operators compare and pin.
//! - [`pin`]: the pure trust decision (pinned from config, pinned on first use, mismatch)
//!   with no I/O.
//! - [`client`]: a rustls client whose certificate check is the pin (self-signed, no CA), and
//!   [`Transport`], how a client reaches a peer (plaintext only with `insecure`).
//!
//! Handshakes run with a timeout ([`HANDSHAKE_TIMEOUT`]) and off any accept loop: servers
//! accept TCP, apply their limits, then spawn [`identity::ServerIdentity::accept`].

pub mod client;
pub mod fingerprint;
pub mod identity;
pub mod pin;

use std::time::Duration;

pub use client::{PinSlot, Transport};
pub use fingerprint::Fingerprint;
pub use identity::ServerIdentity;
pub use pin::{Mismatch, Pin, PinSource, Verdict};
pub use {rustls, tokio_rustls};

/// How long a TLS handshake may take, on either side.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The crypto provider every config here uses (`ring`).
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
