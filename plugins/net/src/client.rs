//! The REST client (hyper, one connection per request, bodies streamed and bounded) and a raw
//! WebSocket probe: used by receivers to fetch shows, by the CLI, the UI, tests and tools.
//! Both speak TLS to an [`Endpoint`] pinned to the master's certificate (plaintext only
//! where the master is `insecure`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use rockontrol_tls::Transport;
use rockontrol_tls::{Fingerprint, PinSource};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Where a master (or any node's server) is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub transport: Transport,
}

impl Endpoint {
    /// Plaintext (a master with `insecure: true`).
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            transport: Transport::Plain,
        }
    }

    /// TLS to a master whose certificate has `fingerprint` (`source`: where the pin came
    /// from, named when another certificate is presented).
    pub fn pinned(addr: SocketAddr, fingerprint: Fingerprint, source: PinSource) -> Endpoint {
        Endpoint {
            addr,
            transport: Transport::pinned(fingerprint, source),
        }
    }

    /// How a tool reaches the master at `addr`: pinned to `fingerprint` (`--fingerprint`)
    /// when given, else to the certificate in the master's state directory `state_dir`
    /// (a tool on the master's machine), else plaintext when `insecure`.
    pub fn for_tool(
        addr: SocketAddr,
        fingerprint: Option<Fingerprint>,
        state_dir: &Path,
        insecure: bool,
    ) -> Result<Endpoint, String> {
        if let Some(f) = fingerprint {
            return Ok(Endpoint::pinned(addr, f, PinSource::Option));
        }
        if insecure {
            return Ok(Endpoint::plain(addr));
        }
        let cert = state_dir.join(rockontrol_tls::identity::CERT_FILE);
        match rockontrol_tls::identity::fingerprint_of_pem_file(&cert) {
            Ok(f) => Ok(Endpoint::pinned(addr, f, PinSource::MasterState(cert))),
            Err(e) => Err(format!(
                "{e}: give the master's certificate fingerprint (printed at its start) with --fingerprint, or the master's state directory"
            )),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.transport.http_scheme(), self.addr)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url(""))
    }
}

/// `GET /api/show/{hash}`: the show's canonical RON.
pub async fn fetch_show(to: &Endpoint, hash: &str, key: Option<&str>) -> Result<String, HttpError> {
    let (status, body) = http_request(to, "GET", &format!("/api/show/{hash}"), key, None).await?;
    if status != 200 {
        return Err(HttpError::Status { status, body });
    }
    Ok(body)
}

/// The most a REST answer may hold (a show file is the largest the master sends).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How long one REST exchange may take, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a REST exchange with the master failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot start a runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// TLS failed: the master presented another certificate than the pinned one, or does
    /// not speak TLS.
    #[error("{addr}: {source}")]
    Tls {
        addr: SocketAddr,
        source: Box<rockontrol_tls::client::ConnectError>,
    },
    #[error("cannot build the request {method} {path}: {reason}")]
    Request {
        method: String,
        path: String,
        reason: String,
    },
    /// The peer broke HTTP/1.1: no status line, a truncated body, a bad chunk…
    #[error("{method} {path}: {source}")]
    Protocol {
        method: String,
        path: String,
        source: hyper::Error,
    },
    #[error("{method} {path}: the answer is larger than {limit} bytes")]
    TooLarge {
        method: String,
        path: String,
        limit: usize,
    },
    #[error("{method} {path}: the answer is not UTF-8 text ({source})")]
    NotText {
        method: String,
        path: String,
        source: std::string::FromUtf8Error,
    },
    #[error("{method} {path}: no answer within {:?}", REQUEST_TIMEOUT)]
    Timeout { method: String, path: String },
    /// A status other than the one the caller needs (`fetch_show`: 200).
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
}

/// One HTTP/1.1 request to the master's REST API (hyper, one connection per request): the
/// status and the body as text. The body streams in up to [`MAX_RESPONSE_BYTES`]; the
/// whole exchange has [`REQUEST_TIMEOUT`].
pub async fn http_request(
    to: &Endpoint,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String), HttpError> {
    request_limited(to, method, path, key, body, MAX_RESPONSE_BYTES).await
}

/// A TCP connection to `to`, with TLS when its transport says so (the certificate checked
/// against its pin before anything is sent).
pub async fn connect(to: &Endpoint) -> Result<Connection, HttpError> {
    let addr = to.addr;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| HttpError::Connect { addr, source })?;
    // Requests and frames are small and latency matters.
    let _ = tcp.set_nodelay(true);
    match &to.transport {
        Transport::Plain => Ok(Connection::Plain(tcp)),
        Transport::Tls(pin) => {
            let (stream, _) = rockontrol_tls::client::connect(tcp, pin.as_ref())
                .await
                .map_err(|source| HttpError::Tls {
                    addr,
                    source: Box::new(source),
                })?;
            Ok(Connection::Tls(Box::new(stream)))
        }
    }
}

/// A connection made by [`connect`].
#[derive(Debug)]
pub enum Connection {
    Plain(tokio::net::TcpStream),
    Tls(Box<rockontrol_tls::client::Stream<tokio::net::TcpStream>>),
}

impl tokio::io::AsyncRead for Connection {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Connection {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

async fn request_limited(
    to: &Endpoint,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
    limit: usize,
) -> Result<(u16, String), HttpError> {
    use http_body_util::BodyExt;
    use hyper::header;

    let addr = to.addr;
    let request_error = |reason: String| HttpError::Request {
        method: method.to_string(),
        path: path.to_string(),
        reason,
    };
    let protocol = |source: hyper::Error| HttpError::Protocol {
        method: method.to_string(),
        path: path.to_string(),
        source,
    };
    let mut request = hyper::Request::builder()
        .method(
            hyper::Method::from_bytes(method.as_bytes())
                .map_err(|e| request_error(e.to_string()))?,
        )
        .uri(path)
        .header(header::HOST, addr.to_string())
        .header(header::CONNECTION, "close");
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    if body.is_some() || method == "POST" {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.unwrap_or("").to_owned(),
        )))
        .map_err(|e| request_error(e.to_string()))?;
    let work = async {
        let stream = connect(to).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(protocol)?;
        // The connection does the I/O; it ends with the exchange (or is aborted with it).
        let connection = tokio::spawn(connection);
        let exchange = async {
            let response = sender.send_request(request).await.map_err(protocol)?;
            let status = response.status().as_u16();
            let bytes = http_body_util::Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|e| match e.downcast::<hyper::Error>() {
                    Ok(source) => protocol(*source),
                    Err(_) => HttpError::TooLarge {
                        method: method.to_string(),
                        path: path.to_string(),
                        limit,
                    },
                })?
                .to_bytes();
            let text = String::from_utf8(bytes.to_vec()).map_err(|source| HttpError::NotText {
                method: method.to_string(),
                path: path.to_string(),
                source,
            })?;
            Ok((status, text))
        };
        let result = exchange.await;
        connection.abort();
        result
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| HttpError::Timeout {
            method: method.to_string(),
            path: path.to_string(),
        })?
}

/// A raw WebSocket client for tests and tools: connects to `/api/ws` with `key`, sends `frames`
/// as text, and returns every text frame received (and a close frame as `close CODE: REASON`)
/// until the master closes or `listen` passes.
/// A refused handshake is an `Err` naming the HTTP status.
pub fn probe_blocking(
    to: &Endpoint,
    key: Option<&str>,
    frames: &[String],
    listen: Duration,
) -> Result<Vec<String>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let mut request = format!("{}://{}/api/ws", to.transport.ws_scheme(), to.addr)
            .into_client_request()
            .map_err(|e| e.to_string())?;
        if let Some(key) = key {
            let value =
                HeaderValue::from_str(&format!("Bearer {key}")).map_err(|e| e.to_string())?;
            request.headers_mut().insert("authorization", value);
        }
        let stream = connect(to).await.map_err(|e| e.to_string())?;
        let (ws, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|e| format!("handshake refused: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        for f in frames {
            if sink.send(Message::Text(f.clone().into())).await.is_err() {
                break;
            }
        }
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + listen;
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, stream.next()).await {
            match msg {
                Message::Text(t) => got.push(t.to_string()),
                Message::Close(Some(frame)) => {
                    got.push(format!("close {}: {}", u16::from(frame.code), frame.reason));
                }
                _ => {}
            }
        }
        Ok(got)
    })
}

/// [`http_request`] from synchronous code (the CLI, tests, benchmarks).
pub fn http_request_blocking(
    to: &Endpoint,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String), HttpError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HttpError::Runtime)?;
    runtime.block_on(http_request(to, method, path, key, body))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A server that reads one request and answers `response` byte for byte, then closes.
    fn answer_once(response: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(response);
        });
        addr
    }

    fn get(response: &'static [u8]) -> Result<(u16, String), HttpError> {
        http_request_blocking(
            &Endpoint::plain(answer_once(response)),
            "GET",
            "/api/nodes",
            None,
            None,
        )
    }

    #[test]
    fn plain_and_chunked_answers_are_read_whole() {
        assert_eq!(
            get(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}").expect("plain"),
            (404, "{}".to_string())
        );
        // "é" (C3 A9) split across two chunks: the old client sliced a lossy string by the
        // chunk sizes and panicked on such a split.
        assert_eq!(
            get(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\na\xc3\r\n3\r\n\xa9bc\r\n0\r\n\r\n")
                .expect("chunked"),
            (200, "aébc".to_string())
        );
        // No length at all: the body runs to the close.
        assert_eq!(
            get(b"HTTP/1.1 200 OK\r\n\r\nuntil close").expect("close-delimited"),
            (200, "until close".to_string())
        );
    }

    #[test]
    fn broken_answers_are_clear_errors_never_panics() {
        let e = get(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n\xff\xfe\xc3(")
            .expect_err("invalid UTF-8");
        assert!(matches!(e, HttpError::NotText { .. }), "{e}");
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        // A chunk that claims more than it sends, then the connection closes; the old client
        // sliced past the end of the text here.
        let e = get(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nff\r\n\xc3\xa9\xc3")
            .expect_err("truncated chunk");
        assert!(matches!(e, HttpError::Protocol { .. }), "{e}");
        let e = get(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nten bytes.")
            .expect_err("truncated body");
        assert!(matches!(e, HttpError::Protocol { .. }), "{e}");
        assert!(e.to_string().starts_with("GET /api/nodes: "), "{e}");
        let e = get(b"garbage\r\n\r\n").expect_err("not HTTP");
        assert!(matches!(e, HttpError::Protocol { .. }), "{e}");
        let e = get(b"").expect_err("closed without a word");
        assert!(matches!(e, HttpError::Protocol { .. }), "{e}");
    }

    #[test]
    fn bodies_past_the_limit_are_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let addr = answer_once(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n");
        let e = runtime
            .block_on(request_limited(
                &Endpoint::plain(addr),
                "GET",
                "/api/show/x",
                None,
                None,
                10,
            ))
            .expect_err("16 bytes > 10");
        assert!(matches!(e, HttpError::TooLarge { limit: 10, .. }), "{e}");
    }

    #[test]
    fn nobody_listening_is_a_connect_error() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port");
        let e = http_request_blocking(&Endpoint::plain(addr), "GET", "/", None, None)
            .expect_err("closed port");
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
    }
}
