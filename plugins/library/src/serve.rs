//! The library's HTTP endpoints, as an axum [`Router`] the master merges into its server.
//!
//! - `HEAD`/`GET /api/media/objects/{id}` (axum routes `HEAD` to the `GET` handler): the clip's bytes through tower-http's
//!   [`ServeFile`] (ranges, `Accept-Ranges`, `Last-Modified`), with a strong `ETag` (the id)
//!   and `If-Range` honoured: a `Range` whose `If-Range` does not name this clip's tag is
//!   dropped, so the whole clip comes back (RFC 9110 §13.1.5).
//! - `PUT /api/media/objects/{id}` (control key): an upload, resumable with
//!   `Content-Range: bytes start-end/total`. Bytes go to `tmp/<id>.part`; each answer says
//!   the offset to send next; the last range is hashed and installed only if its BLAKE3 is
//!   the id and it is media.
//! - `GET /api/media/objects/{id}/chunks`: the clip's chunk hashes (peer-assisted fetches).
//! - `GET /api/media/manifest?node=ID`: the clips that node must hold.
//! - `GET /api/media/status`: readiness of every node.
//! - `GET /api/media/library`: every clip in the library with its media facts.
//!
//! Authentication is the host's: it passes an [`Authorize`] function.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::bucket::TokenBucket;
use crate::chunks::{CHUNK, ChunkList};
use crate::id::ClipId;
use crate::manifest::Manifest;
use crate::resume::parse_content_range;
use crate::store::{ClipMeta, Store, StoreError};

/// The access a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any valid key (GET, HEAD).
    Read,
    /// The control key (uploads).
    Control,
}

/// Checks a request's credentials; `Err` is the response to send (401/403).
pub type Authorize = dyn Fn(&HeaderMap, Need) -> Result<(), Response> + Send + Sync;
/// The manifest of a node (`None`: no such node).
pub type Manifests = dyn Fn(&str) -> Option<Manifest> + Send + Sync;
/// Every node's readiness, as JSON.
pub type StatusView = dyn Fn() -> serde_json::Value + Send + Sync;

/// What the media endpoints serve from.
pub struct MediaServer {
    pub store: Store,
    pub authorize: Box<Authorize>,
    pub manifests: Box<Manifests>,
    pub status: Box<StatusView>,
    /// One upload writes at a time (uploads are rare; this keeps two writers off one `.part`).
    uploads: tokio::sync::Mutex<()>,
    /// Chunk hashes computed so far (a clip's bytes never change under its id).
    chunk_lists: std::sync::Mutex<std::collections::HashMap<ClipId, Arc<ChunkList>>>,
    /// A cap on all clip bodies served together (see [`MediaServer::capped`]).
    cap: Option<(Arc<std::sync::Mutex<TokenBucket>>, std::time::Instant)>,
}

impl std::fmt::Debug for MediaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaServer")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl MediaServer {
    pub fn new(
        store: Store,
        authorize: Box<Authorize>,
        manifests: Box<Manifests>,
        status: Box<StatusView>,
    ) -> Self {
        MediaServer {
            store,
            authorize,
            manifests,
            status,
            uploads: tokio::sync::Mutex::new(()),
            chunk_lists: std::sync::Mutex::default(),
            cap: None,
        }
    }

    /// Serves all clip bodies together at most at `mbit` Mbit/s (`None` or 0: no cap).
    pub fn capped(mut self, mbit: Option<f64>) -> Self {
        let bucket = TokenBucket::new(mbit, std::time::Duration::ZERO);
        self.cap = bucket.bytes_per_second().is_some().then(|| {
            (
                Arc::new(std::sync::Mutex::new(bucket)),
                std::time::Instant::now(),
            )
        });
        self
    }
}

/// A JSON error response, in the shape the rest of the API uses.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        status,
        axum::Json(json!({ "error": message, "status": status.as_u16() })),
    )
        .into_response()
}

/// The media routes. Merge them after the host's request-timeout layer: a clip download
/// takes as long as it takes.
pub fn router(server: Arc<MediaServer>) -> Router {
    Router::new()
        .route("/api/media/objects/{id}", get(object).put(upload))
        .route("/api/media/objects/{id}/chunks", get(chunks))
        .route("/api/media/manifest", get(manifest))
        .route("/api/media/status", get(status))
        .route("/api/media/library", get(library))
        .with_state(server)
}

#[expect(
    clippy::result_large_err,
    reason = "the error is the HTTP response, returned at once"
)]
fn parse_id(text: &str) -> Result<ClipId, Response> {
    text.parse::<ClipId>()
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))
}

/// The read prologue of the object routes: the key may read, `text` is a clip id, and the
/// store holds that clip (boxed: a response is large).
fn stored_clip(
    server: &MediaServer,
    headers: &HeaderMap,
    text: &str,
) -> Result<ClipId, Box<Response>> {
    (server.authorize)(headers, Need::Read).map_err(Box::new)?;
    let id = parse_id(text).map_err(Box::new)?;
    if !server.store.contains(&id) {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no clip {id} in the library; add it with `rockontrol media add`"),
        )));
    }
    Ok(id)
}

async fn object(
    State(server): State<Arc<MediaServer>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let id = match stored_clip(&server, request.headers(), &id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let etag = id.etag();
    let mut forward = axum::http::Request::builder()
        .method(request.method().clone())
        .uri("/");
    for name in [
        header::RANGE,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ] {
        if let Some(v) = request.headers().get(&name) {
            forward = forward.header(name, v);
        }
    }
    // If-Range: the range stands only if the validator is this clip's strong tag.
    if let Some(if_range) = request.headers().get(header::IF_RANGE)
        && if_range.as_bytes() != etag.as_bytes()
        && let Some(h) = forward.headers_mut()
    {
        h.remove(header::RANGE);
    }
    let Ok(forward) = forward.body(Body::empty()) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot build the file request",
        );
    };
    let served = ServeFile::new(server.store.object_path(&id))
        .oneshot(forward)
        .await;
    let mut response = match served {
        Ok(r) => match &server.cap {
            None => r.map(Body::new),
            Some((bucket, epoch)) => {
                // Each piece of the body waits for its share of the cap.
                let (bucket, epoch) = (Arc::clone(bucket), *epoch);
                r.map(move |body| {
                    let stream = Body::new(body).into_data_stream().then(move |piece| {
                        let bucket = Arc::clone(&bucket);
                        async move {
                            if let Ok(bytes) = &piece {
                                let wait = bucket
                                    .lock()
                                    .map(|mut b| b.take(epoch.elapsed(), bytes.len() as u64))
                                    .unwrap_or_default();
                                if !wait.is_zero() {
                                    tokio::time::sleep(wait).await;
                                }
                            }
                            piece
                        }
                    });
                    Body::from_stream(stream)
                })
            }
        },
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read clip {id}: {e}"),
            );
        }
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if response.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        let size = server.store.size(&id).unwrap_or(0);
        let mut refused = error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!("the Range asks for bytes outside clip {id}, which has {size} bytes"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
            refused.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return refused;
    }
    response
}

/// `GET /api/media/objects/{id}/chunks`: the clip's chunk hashes, for fetchers that take
/// chunks from peers ([`crate::chunks`]).
async fn chunks(
    State(server): State<Arc<MediaServer>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let id = match stored_clip(&server, &headers, &id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let cached = server
        .chunk_lists
        .lock()
        .ok()
        .and_then(|c| c.get(&id).cloned());
    let list = match cached {
        Some(list) => list,
        None => {
            let path = server.store.object_path(&id);
            match tokio::task::spawn_blocking(move || crate::chunks::hash_chunks(&path, CHUNK))
                .await
            {
                Ok(Ok(list)) => {
                    let list = Arc::new(list);
                    if let Ok(mut c) = server.chunk_lists.lock() {
                        c.insert(id, Arc::clone(&list));
                    }
                    list
                }
                Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
    };
    axum::Json(&*list).into_response()
}

#[derive(Deserialize)]
struct NodeQuery {
    node: Option<String>,
}

async fn manifest(
    State(server): State<Arc<MediaServer>>,
    Query(query): Query<NodeQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = (server.authorize)(&headers, Need::Read) {
        return response;
    }
    let Some(node) = query.node.filter(|n| !n.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "say which node: GET /api/media/manifest?node=<node_id>",
        );
    };
    match (server.manifests)(&node) {
        Some(m) => axum::Json(m).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no node {node:?} is known to this master"),
        ),
    }
}

async fn status(State(server): State<Arc<MediaServer>>, headers: HeaderMap) -> Response {
    if let Err(response) = (server.authorize)(&headers, Need::Read) {
        return response;
    }
    axum::Json((server.status)()).into_response()
}

async fn library(State(server): State<Arc<MediaServer>>, headers: HeaderMap) -> Response {
    if let Err(response) = (server.authorize)(&headers, Need::Read) {
        return response;
    }
    let store = server.store.clone();
    match tokio::task::spawn_blocking(move || store.list()).await {
        Ok(Ok(list)) => axum::Json(json!({ "clips": list })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn part_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn offset_reply(status: StatusCode, message: String, offset: u64, total: u64) -> Response {
    (
        status,
        axum::Json(json!({ "error": message, "status": status.as_u16(), "offset": offset, "total": total })),
    )
        .into_response()
}

async fn upload(
    State(server): State<Arc<MediaServer>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    if let Err(response) = (server.authorize)(request.headers(), Need::Control) {
        return response;
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if request.method() != Method::PUT {
        return error(StatusCode::METHOD_NOT_ALLOWED, "uploads are PUT");
    }
    let content_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let range = match request.headers().get(header::CONTENT_RANGE) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(parse_content_range) {
            Some(r) if r.total.is_some() => Some(r),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "Content-Range {v:?} is not `bytes <start>-<end>/<total>` with end < total"
                    ),
                );
            }
        },
    };
    let (start, expected, total) = match (range, content_length) {
        (Some(r), _) => (r.start, r.len(), r.total.unwrap_or(0)),
        (None, Some(len)) => (0, len, len),
        (None, None) => {
            return error(
                StatusCode::LENGTH_REQUIRED,
                "an upload needs Content-Length or Content-Range",
            );
        }
    };
    if server.store.contains(&id) {
        return (
            StatusCode::OK,
            axum::Json(json!({ "id": id, "status": "already in the library", "offset": total, "total": total })),
        )
            .into_response();
    }
    let _one_writer = server.uploads.lock().await;
    let part = server.store.part_path(&id);
    let have = part_len(&part);
    if start != have {
        return offset_reply(
            StatusCode::CONFLICT,
            format!("this upload of {id} holds {have} bytes: send Content-Range from byte {have}"),
            have,
            total,
        );
    }
    let mut file = match tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .await
    {
        Ok(f) => f,
        Err(e) => {
            return error(
                StatusCode::INSUFFICIENT_STORAGE,
                format!("cannot write {}: {e}", part.display()),
            );
        }
    };
    let mut stream = request.into_body().into_data_stream();
    let mut received = 0u64;
    let mut broken = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if received + bytes.len() as u64 > expected {
                    broken = Some(format!(
                        "the body is longer than the {expected} bytes the range says"
                    ));
                    break;
                }
                if let Err(e) = file.write_all(&bytes).await {
                    broken = Some(format!("cannot write {}: {e}", part.display()));
                    break;
                }
                received += bytes.len() as u64;
            }
            Err(e) => {
                broken = Some(format!("the body broke off: {e}"));
                break;
            }
        }
    }
    if let Err(e) = file.sync_all().await {
        broken.get_or_insert(format!("cannot write {}: {e}", part.display()));
    }
    drop(file);
    if broken.is_none() && received < expected {
        broken = Some(format!("got {received} of {expected} bytes"));
    }
    let offset = part_len(&part);
    if let Some(why) = broken {
        tracing::warn!("media upload of {id}: {why}; {offset} bytes kept");
        return offset_reply(
            StatusCode::BAD_REQUEST,
            format!(
                "truncated or bad upload of {id}: {why}; the {offset} bytes before are kept: resume from byte {offset}"
            ),
            offset,
            total,
        );
    }
    if offset < total {
        return (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "id": id, "offset": offset, "total": total })),
        )
            .into_response();
    }
    let store = server.store.clone();
    let finished = tokio::task::spawn_blocking(move || finish_upload(&store, &id, total)).await;
    match finished {
        Ok(Ok(meta)) => (StatusCode::CREATED, axum::Json(meta)).into_response(),
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A whole upload: hash it, check it is the id and is media, install it.
fn finish_upload(store: &Store, id: &ClipId, total: u64) -> Result<ClipMeta, StoreError> {
    let part = store.part_path(id);
    let actual = crate::store::hash_file(&part, &mut |_| {})?;
    if actual != *id {
        let _ = std::fs::remove_file(&part);
        return Err(StoreError::HashMismatch {
            path: format!("the upload of {id}"),
            expected: *id,
            actual,
        });
    }
    let media = match crate::probe::probe(&part) {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e.into());
        }
    };
    store.install(&part, id)?;
    let meta = ClipMeta {
        id: *id,
        size: total,
        name: format!("upload {}", id.short()),
        added_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        media: Some(media),
        recipe: None,
    };
    store.write_meta(&meta)?;
    tracing::info!("media: upload of {id} complete ({total} bytes)");
    Ok(meta)
}

/// How long a client of [`serve_on`] may take to send a request's headers.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `router` (the library's, say) on `listener`, each connection on its own task; with
/// `tls`, the TLS handshake runs there too, with its timeout, so a slow client never holds up
/// the next accept. Runs until the task is dropped.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<rockontrol_tls::tokio_rustls::TlsAcceptor>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!("media server: cannot accept a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(tcp, peer, router).await,
                Some(acceptor) => {
                    match rockontrol_tls::ServerIdentity::accept(&acceptor, tcp).await {
                        Ok(stream) => serve_connection(stream, peer, router).await,
                        Err(e) => tracing::debug!("media client {peer}: {e}"),
                    }
                }
            }
        });
    }
}

async fn serve_connection<IO>(io: IO, peer: std::net::SocketAddr, router: Router)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            router.clone().oneshot(request)
        });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!("media client {peer}: {e}");
    }
}
