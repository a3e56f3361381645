//! A bounded HTTP/1 server for the routers a node serves besides the master's control port
//! (a receiver's peer media server, `media_serve`): the same admission rules as the control
//! port ([`crate::master::limits`]: connections in all and per address, 503/429 at once) and
//! a whole request head within `head_timeout` (slowloris), so a peer that never authenticates
//! cannot hold the port. No request timeout: a clip download takes as long as it takes.
//! (`axum::serve` has neither bound.) With TLS, the handshake counts as part of the head:
//! it runs in the connection's task, holding its slot, within its own timeout.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rockontrol_tls::tokio_rustls::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::master::limits::{Admission, LogThrottle, MAX_HEAD_BYTES, Policy, Slot};

/// Serves `app` on `listener` (over TLS with `tls`) until the listener fails for good; `what`
/// names the server in the log.
pub async fn serve_bounded(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    policy: Policy,
    head_timeout: Duration,
    what: &'static str,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    let admission = Arc::new(Mutex::new(Admission::new(policy)));
    let mut log = LogThrottle::new(crate::alerts::LOG_INTERVAL);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                if let Some(held) = log.note(Instant::now()) {
                    tracing::error!(
                        "{what}: cannot accept a connection: {e} ({held} more since the last report)"
                    );
                }
                // Out of file descriptors, say: wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // No peer of these servers is trusted by address: no reserve.
        let slot = match Slot::admit(&admission, peer.ip(), || false) {
            Ok(slot) => slot,
            Err(refusal) => {
                let _ = tcp.try_write(refusal.http_answer());
                drop(tcp);
                if let Some(held) = log.note(Instant::now()) {
                    tracing::warn!(
                        "{what}: connection from {peer} refused: {refusal} ({held} more since the last report)"
                    );
                }
                continue;
            }
        };
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            // The slot is given back when the connection ends.
            let _slot = slot;
            serve_admitted(tcp, peer, app, tls, head_timeout, what).await;
        });
    }
}

/// One admitted connection: the TLS handshake with `tls` (within
/// [`rockontrol_tls::HANDSHAKE_TIMEOUT`], here in the connection's own task, so a silent
/// client never holds up the accept loop), then HTTP/1.1 with upgrades, the request head
/// within `head_timeout` and [`MAX_HEAD_BYTES`]. The control port and the peer media server
/// both serve through it; each request carries the peer's address (`ConnectInfo`).
pub async fn serve_admitted<IO>(
    io: IO,
    peer: SocketAddr,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    head_timeout: Duration,
    what: &'static str,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match tls {
        None => serve_http(io, peer, app, head_timeout, what).await,
        Some(acceptor) => match rockontrol_tls::ServerIdentity::accept(&acceptor, io).await {
            Ok(stream) => serve_http(stream, peer, app, head_timeout, what).await,
            Err(e) => tracing::debug!("{what}: connection from {peer}: {e}"),
        },
    }
}

async fn serve_http<IO>(
    io: IO,
    peer: SocketAddr,
    app: axum::Router,
    head_timeout: Duration,
    what: &'static str,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let mut app = app.clone();
            tower_service::Service::call(&mut app, request)
        });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!("{what}: connection from {peer}: {e}");
    }
}
