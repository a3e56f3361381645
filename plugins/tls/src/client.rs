//! The client side: how a client reaches a peer ([`Transport`]) and a rustls certificate
//! check that is the pin ([`PinVerifier`]: SHA-256 of the self-signed certificate, no CA, no
//! names), with the handshake signatures verified as usual.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::pin::{self, Mismatch, Pin, Verdict};
use crate::{Fingerprint, HANDSHAKE_TIMEOUT};

/// How a client talks to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Plaintext (`insecure: true`, closed lab networks only).
    Plain,
    /// TLS; the peer's certificate must have the pinned fingerprint, or with `None` any
    /// certificate is taken (first use: the caller keeps what was presented; or a media peer,
    /// whose bytes are checked against the master's hashes).
    Tls(Option<Pin>),
}

impl Transport {
    /// TLS pinned to `fingerprint`, from `source`.
    pub fn pinned(fingerprint: Fingerprint, source: pin::PinSource) -> Transport {
        Transport::Tls(Some(Pin {
            fingerprint,
            source,
        }))
    }

    /// `https` or `http`.
    pub fn http_scheme(&self) -> &'static str {
        match self {
            Transport::Plain => "http",
            Transport::Tls(_) => "https",
        }
    }

    /// `wss` or `ws`.
    pub fn ws_scheme(&self) -> &'static str {
        match self {
            Transport::Plain => "ws",
            Transport::Tls(_) => "wss",
        }
    }
}

/// A connection to a peer, plaintext or TLS.
pub type Stream<IO> = tokio_rustls::client::TlsStream<IO>;

/// Why a TLS connection to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The peer presented another certificate than the pinned one.
    #[error("{0}")]
    Mismatch(Mismatch),
    #[error("TLS handshake not done within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
    #[error(
        "TLS handshake failed: {0} (is the peer plaintext, with insecure: true? then set insecure here too)"
    )]
    Handshake(std::io::Error),
}

/// The client side of a TLS handshake on `io`, with the certificate checked against `pin`
/// (none: any certificate), within [`HANDSHAKE_TIMEOUT`]. Returns the stream and the
/// presented certificate's fingerprint.
pub async fn connect<IO: AsyncRead + AsyncWrite + Unpin>(
    io: IO,
    pin: Option<&Pin>,
) -> Result<(Stream<IO>, Fingerprint), ConnectError> {
    let connector = tokio_rustls::TlsConnector::from(client_config(pin.cloned()));
    // Names are not checked (the pin is): any valid name will do.
    let name = ServerName::try_from("rockontrol").expect("a valid DNS name");
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, io)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(e)) => {
            return Err(match mismatch_in(&e) {
                Some(m) => ConnectError::Mismatch(m),
                None => ConnectError::Handshake(e),
            });
        }
        Ok(Ok(s)) => s,
    };
    let presented = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| Fingerprint::of_der(c.as_ref()))
        .ok_or_else(|| {
            ConnectError::Handshake(std::io::Error::other("the peer presented no certificate"))
        })?;
    Ok((stream, presented))
}

/// A rustls client config whose certificate check is `pin`.
pub fn client_config(pin: Option<Pin>) -> Arc<rustls::ClientConfig> {
    let provider = crate::provider();
    let verifier = Arc::new(PinVerifier {
        pin,
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

/// The mismatch a failed handshake carries, if that is why it failed.
fn mismatch_in(e: &std::io::Error) -> Option<Mismatch> {
    let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) =
        e.get_ref()?.downcast_ref::<rustls::Error>()?
    else {
        return None;
    };
    let inner: &(dyn std::error::Error + Send + Sync) = &*other.0;
    inner.downcast_ref::<Mismatch>().cloned()
}

/// Checks the server's certificate against the pin: self-signed certificates have no CA to
/// chain to, so the fingerprint is the identity.
#[derive(Debug)]
pub struct PinVerifier {
    pin: Option<Pin>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match pin::check(self.pin.as_ref(), Fingerprint::of_der(end_entity.as_ref())) {
            Verdict::Trusted | Verdict::FirstUse(_) => Ok(ServerCertVerified::assertion()),
            Verdict::Mismatch(m) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(m))),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The pin a receiver holds for its master, shared by its link (which sets it on first use)
/// and its media fetcher (which only reads it), kept in a file in the state directory.
#[derive(Debug, Clone, Default)]
pub struct PinSlot(Arc<RwLock<Option<Pin>>>);

/// The file in a receiver's state directory holding the master's fingerprint pinned on
/// first use.
pub const PIN_FILE: &str = "master-fingerprint";

/// Why the pin file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PinFileError {
    #[error("cannot read the pinned master fingerprint {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a fingerprint: {source} (remove it to trust the master on first use again)", path.display())]
    Bad {
        path: PathBuf,
        source: crate::fingerprint::BadFingerprint,
    },
    #[error("cannot keep the master's fingerprint in {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl PinSlot {
    /// The slot with the pin in force: `configured`, else the one in `state_dir`'s pin file.
    pub fn load(
        configured: Option<Fingerprint>,
        state_dir: &Path,
    ) -> Result<PinSlot, PinFileError> {
        let path = state_dir.join(PIN_FILE);
        let stored = match std::fs::read_to_string(&path) {
            Ok(text) => Some((
                text.parse::<Fingerprint>()
                    .map_err(|source| PinFileError::Bad {
                        path: path.clone(),
                        source,
                    })?,
                path,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(PinFileError::Read { path, source }),
        };
        Ok(PinSlot::new(pin::choose(configured, stored)))
    }

    pub fn new(pin: Option<Pin>) -> PinSlot {
        PinSlot(Arc::new(RwLock::new(pin)))
    }

    /// The pin now (none before first use).
    pub fn get(&self) -> Option<Pin> {
        self.0
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Keeps `fingerprint`, trusted on first use, in `state_dir`'s pin file (durably) and in
    /// the slot.
    pub fn trust_first_use(
        &self,
        fingerprint: Fingerprint,
        state_dir: &Path,
    ) -> Result<Pin, PinFileError> {
        let path = state_dir.join(PIN_FILE);
        let write = |source| PinFileError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(write)?;
        let tmp = state_dir.join(format!("{PIN_FILE}.tmp"));
        std::fs::write(&tmp, format!("{fingerprint}\n")).map_err(write)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(write)?;
        std::fs::rename(&tmp, &path).map_err(write)?;
        let pin = Pin {
            fingerprint,
            source: pin::PinSource::File(path),
        };
        self.set(Some(pin.clone()));
        Ok(pin)
    }

    /// Sets the pin in memory only.
    pub fn set(&self, pin: Option<Pin>) {
        match self.0.write() {
            Ok(mut p) => *p = pin,
            Err(e) => *e.into_inner() = pin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ServerIdentity;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A real TLS server on loopback with a freshly generated identity: its fingerprint and
    /// address; it echoes one line.
    async fn server(dir: &Path) -> (Fingerprint, std::net::SocketAddr) {
        let identity = ServerIdentity::load_or_generate(dir, None, &[]).expect("identity");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let acceptor = identity.acceptor();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut s) = ServerIdentity::accept(&acceptor, tcp).await {
                        let mut buf = [0u8; 5];
                        if s.read_exact(&mut buf).await.is_ok() {
                            let _ = s.write_all(&buf).await;
                            let _ = s.shutdown().await;
                        }
                    }
                });
            }
        });
        (identity.fingerprint, addr)
    }

    #[tokio::test]
    async fn the_pinned_certificate_is_trusted_another_is_refused_with_both_fingerprints() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (fingerprint, addr) = server(dir.path()).await;
        // First use: any certificate; the presented one is reported.
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut s, presented) = connect(tcp, None).await.expect("first use");
        assert_eq!(presented, fingerprint);
        s.write_all(b"hello").await.expect("write");
        let mut back = [0u8; 5];
        s.read_exact(&mut back).await.expect("echo");
        assert_eq!(&back, b"hello");
        // The slot keeps it, in a file that loads back.
        let slot = PinSlot::default();
        slot.trust_first_use(presented, dir.path()).expect("keep");
        let loaded = PinSlot::load(None, dir.path())
            .expect("load")
            .get()
            .expect("pinned");
        assert_eq!(loaded.fingerprint, fingerprint);
        // Pinned: trusted.
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        connect(tcp, Some(&loaded)).await.expect("pinned");
        // Another pin: refused, naming both.
        let other = Pin {
            fingerprint: Fingerprint([9; 32]),
            source: pin::PinSource::Config,
        };
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let e = connect(tcp, Some(&other)).await.expect_err("mismatch");
        let ConnectError::Mismatch(m) = &e else {
            panic!("not a mismatch: {e}");
        };
        assert_eq!(
            (m.expected, m.presented),
            (Fingerprint([9; 32]), fingerprint)
        );
        assert!(e.to_string().contains(&fingerprint.to_string()), "{e}");
    }

    #[tokio::test]
    async fn a_plaintext_peer_is_a_clear_handshake_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut tcp, _)) = listener.accept().await {
                let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let e = connect(tcp, None).await.expect_err("plaintext");
        assert!(e.to_string().contains("insecure"), "{e}");
    }
}
