//! A bounded HTTP/1 server for the routers a node serves besides the master's control port
//! (a receiver's peer media server, `media_serve`): the same admission rules as the control
//! port ([`crate::master::limits`]: connections in all and per address, 503/429 at once) and
//! a whole request head within `head_timeout` (slowloris), so a peer that never authenticates
//! cannot hold the port. No request timeout: a clip download takes as long as it takes.
//! (`axum::serve` has neither bound.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::master::limits::{Admission, LogThrottle, MAX_HEAD_BYTES, Policy, Slot};

/// Serves `app` on `listener` until the listener fails for good; `what` names the server in
/// the log.
pub async fn serve_bounded(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    policy: Policy,
    head_timeout: Duration,
    what: &'static str,
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
        tokio::spawn(async move {
            // The slot is given back when the connection ends.
            let _slot = slot;
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut app = app.clone();
                    tower_service::Service::call(&mut app, request)
                },
            );
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(head_timeout)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("{what}: connection from {peer}: {e}");
            }
        });
    }
}
