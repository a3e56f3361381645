//! A node's TLS identity: its certificate and key, from configured PEM files or generated
//! (self-signed, rcgen) into its state directory on first start and reused after.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::{Fingerprint, HANDSHAKE_TIMEOUT};

/// The generated certificate, in the state directory.
pub const CERT_FILE: &str = "tls-cert.pem";
/// The generated key, in the state directory (mode 0600).
pub const KEY_FILE: &str = "tls-key.pem";

/// Why a node has no TLS identity (it does not start: TLS is not optional without
/// `insecure`).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read the TLS {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the TLS {what} {} holds no usable PEM {what}: {reason}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot write the generated TLS {what} to {}: {source} (is the state directory writable?)", path.display())]
    Write {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate {} does not go with the key {}: {reason}", cert.display(), key.display())]
    Config {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// Where the certificate came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The files the config names.
    Configured,
    /// Generated into the state directory at this start.
    Generated,
    /// Generated at an earlier start, read back from the state directory.
    Kept,
}

/// A server's certificate, key and rustls config.
#[derive(Clone)]
pub struct ServerIdentity {
    pub config: Arc<rustls::ServerConfig>,
    pub fingerprint: Fingerprint,
    pub cert_path: PathBuf,
    pub origin: Origin,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("cert_path", &self.cert_path)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why a TLS handshake with a client failed.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("TLS handshake not done within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
}

impl ServerIdentity {
    /// The configured `cert`/`key` PEM files when given, else the state directory's
    /// generated pair (generated now if absent). `names` go into a generated certificate's
    /// subject alternative names (the node id; clients pin the fingerprint, not names).
    pub fn load_or_generate(
        state_dir: &Path,
        files: Option<(&Path, &Path)>,
        names: &[String],
    ) -> Result<ServerIdentity, IdentityError> {
        if let Some((cert, key)) = files {
            return ServerIdentity::from_files(cert, key, Origin::Configured);
        }
        let cert = state_dir.join(CERT_FILE);
        let key = state_dir.join(KEY_FILE);
        if cert.exists() && key.exists() {
            return ServerIdentity::from_files(&cert, &key, Origin::Kept);
        }
        generate(state_dir, &cert, &key, names)?;
        ServerIdentity::from_files(&cert, &key, Origin::Generated)
    }

    fn from_files(
        cert: &Path,
        key: &Path,
        origin: Origin,
    ) -> Result<ServerIdentity, IdentityError> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| IdentityError::Read {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let cert_pem = read("certificate", cert)?;
        let key_pem = read("key", key)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| IdentityError::Pem {
                what: "certificate",
                path: cert.to_path_buf(),
                reason: e.to_string(),
            })?;
        let Some(leaf) = chain.first() else {
            return Err(IdentityError::Pem {
                what: "certificate",
                path: cert.to_path_buf(),
                reason: "no CERTIFICATE block".into(),
            });
        };
        let fingerprint = Fingerprint::of_der(leaf.as_ref());
        let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| IdentityError::Pem {
            what: "key",
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?;
        let config = rustls::ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
            .map_err(|e| IdentityError::Config {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(ServerIdentity {
            config: Arc::new(config),
            fingerprint,
            cert_path: cert.to_path_buf(),
            origin,
        })
    }

    /// The acceptor for this identity.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }

    /// The server side of a handshake on an accepted socket, within [`HANDSHAKE_TIMEOUT`].
    /// Run it in the connection's own task, never in the accept loop.
    pub async fn accept<IO: AsyncRead + AsyncWrite + Unpin>(
        acceptor: &tokio_rustls::TlsAcceptor,
        io: IO,
    ) -> Result<tokio_rustls::server::TlsStream<IO>, AcceptError> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(AcceptError::Handshake(e)),
            Err(_) => Err(AcceptError::Timeout),
        }
    }
}

/// The fingerprint of the first certificate of a PEM file (tools on the master's machine pin
/// the master from its state directory with it).
pub fn fingerprint_of_pem_file(path: &Path) -> Result<Fingerprint, IdentityError> {
    let pem = std::fs::read(path).map_err(|source| IdentityError::Read {
        what: "certificate",
        path: path.to_path_buf(),
        source,
    })?;
    let der = CertificateDer::from_pem_slice(&pem).map_err(|e| IdentityError::Pem {
        what: "certificate",
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(Fingerprint::of_der(der.as_ref()))
}

fn generate(
    state_dir: &Path,
    cert: &Path,
    key: &Path,
    names: &[String],
) -> Result<(), IdentityError> {
    let mut sans = vec!["localhost".to_string()];
    sans.extend(names.iter().filter(|n| !n.is_empty()).cloned());
    let certified = rcgen::generate_simple_self_signed(sans)?;
    let write_error = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| IdentityError::Write { what, path, source }
    };
    std::fs::create_dir_all(state_dir).map_err(write_error("certificate", cert))?;
    // The key first, created 0600 (never world-readable, not even for a moment), then the
    // certificate: a crash between them leaves no certificate, so the next start generates
    // the pair again.
    write_private(key, certified.signing_key.serialize_pem().as_bytes())
        .map_err(write_error("key", key))?;
    std::fs::write(cert, certified.cert.pem()).map_err(write_error("certificate", cert))?;
    tracing::info!(
        "generated a self-signed TLS certificate into {}",
        cert.display()
    );
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_kept_with_a_private_key_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let first = ServerIdentity::load_or_generate(dir.path(), None, &["master-01".into()])
            .expect("generate");
        assert_eq!(first.origin, Origin::Generated);
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key mode {mode:o}");
        let again = ServerIdentity::load_or_generate(dir.path(), None, &["master-01".into()])
            .expect("reuse");
        assert_eq!(again.origin, Origin::Kept);
        assert_eq!(again.fingerprint, first.fingerprint);
        assert_eq!(
            fingerprint_of_pem_file(&dir.path().join(CERT_FILE)).expect("fingerprint"),
            first.fingerprint
        );
        // Configured files are used as they are.
        let configured = ServerIdentity::load_or_generate(
            Path::new("/nonexistent"),
            Some((&dir.path().join(CERT_FILE), &dir.path().join(KEY_FILE))),
            &[],
        )
        .expect("configured");
        assert_eq!(configured.origin, Origin::Configured);
        assert_eq!(configured.fingerprint, first.fingerprint);
    }

    #[test]
    fn unreadable_or_bad_files_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        let e = ServerIdentity::load_or_generate(dir.path(), Some((&cert, &key)), &[])
            .expect_err("missing");
        assert!(e.to_string().contains("c.pem"), "{e}");
        std::fs::write(&cert, "not a pem").expect("write");
        std::fs::write(&key, "not a pem").expect("write");
        let e = ServerIdentity::load_or_generate(dir.path(), Some((&cert, &key)), &[])
            .expect_err("bad pem");
        assert!(
            e.to_string().contains("c.pem") && e.to_string().contains("certificate"),
            "{e}"
        );
    }
}
