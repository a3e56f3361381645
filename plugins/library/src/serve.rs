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
//! - `GET /api/media/objects/{id}/chunks`: the clip's chunk hashes (peer-assisted fetches);
//!   with `?have`, the chunks this server holds ([`crate::swarm::Have`]). A receiver's peer
//!   server also serves the verified chunks of a clip it is still downloading
//!   ([`MediaServer::sharing`]): a `Range` inside them, from its `.part`.
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
use crate::swarm::{Have, Partials};

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
    /// Chunk hashes, computed once per clip however many fetchers ask at once (a cold start).
    chunk_lists: std::sync::Mutex<
        std::collections::HashMap<ClipId, Arc<tokio::sync::OnceCell<Arc<ChunkList>>>>,
    >,
    /// A cap on all clip bodies served together (see [`MediaServer::capped`]).
    cap: Option<(Arc<std::sync::Mutex<TokenBucket>>, std::time::Instant)>,
    /// The chunks held of clips being downloaded (a receiver's peer server).
    partials: Option<Partials>,
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
            partials: None,
        }
    }

    /// Also serves the verified chunks of clips still downloading (the fetcher's `partials`).
    pub fn sharing(mut self, partials: Partials) -> Self {
        self.partials = Some(partials);
        self
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

/// The file a `GET`/`HEAD` of clip `text` reads: the stored clip, or, on a peer still
/// downloading it, its `.part` when the `Range` lies inside the chunks it holds.
fn clip_file(
    server: &MediaServer,
    headers: &HeaderMap,
    text: &str,
) -> Result<(ClipId, std::path::PathBuf), Box<Response>> {
    (server.authorize)(headers, Need::Read).map_err(Box::new)?;
    let id = parse_id(text).map_err(Box::new)?;
    if server.store.contains(&id) {
        return Ok((id, server.store.object_path(&id)));
    }
    if let Some(partials) = &server.partials
        && partials.get(&id).is_some()
    {
        let range = headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::swarm::single_range);
        return match range {
            Some((start, end)) if partials.holds_range(&id, start, end) => {
                Ok((id, server.store.part_path(&id)))
            }
            _ => Err(Box::new(error(
                StatusCode::NOT_FOUND,
                format!(
                    "this node is still downloading clip {id}: ask for one range inside the chunks it holds (GET /api/media/objects/{id}/chunks?have)"
                ),
            ))),
        };
    }
    stored_clip(server, headers, text).map(|id| (id, server.store.object_path(&id)))
}

async fn object(
    State(server): State<Arc<MediaServer>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (id, path) = match clip_file(&server, request.headers(), &id) {
        Ok(found) => found,
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
    let served = ServeFile::new(&path).oneshot(forward).await;
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
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
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
#[derive(Deserialize)]
struct ChunksQuery {
    have: Option<String>,
}

async fn chunks(
    State(server): State<Arc<MediaServer>>,
    Path(id): Path<String>,
    Query(query): Query<ChunksQuery>,
    headers: HeaderMap,
) -> Response {
    if query.have.is_some() {
        return have(&server, &headers, &id);
    }
    let id = match stored_clip(&server, &headers, &id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let cell = match server.chunk_lists.lock() {
        Ok(mut lists) => Arc::clone(lists.entry(id).or_default()),
        Err(_) => Arc::default(),
    };
    let path = server.store.object_path(&id);
    let hashed = cell
        .get_or_try_init(|| async move {
            match tokio::task::spawn_blocking(move || crate::chunks::hash_chunks(&path, CHUNK))
                .await
            {
                Ok(Ok(list)) => Ok(Arc::new(list)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
    let list = match hashed {
        Ok(list) => Arc::clone(list),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    axum::Json(&*list).into_response()
}

/// `GET /api/media/objects/{id}/chunks?have`: the chunks this server holds of the clip:
/// all of a stored clip, the verified ones of a clip it is still downloading.
fn have(server: &MediaServer, headers: &HeaderMap, text: &str) -> Response {
    if let Err(response) = (server.authorize)(headers, Need::Read) {
        return response;
    }
    let id = match parse_id(text) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Some(size) = server.store.size(&id) {
        let all = vec![true; size.div_ceil(CHUNK) as usize];
        return axum::Json(Have::new(CHUNK, size, &all)).into_response();
    }
    match server.partials.as_ref().and_then(|p| p.get(&id)) {
        Some(have) => axum::Json(have).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("this node holds no chunk of clip {id}"),
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, range: Option<&str>) -> axum::http::Request<Body> {
        let mut request = axum::http::Request::get(path);
        if let Some(r) = range {
            request = request.header(header::RANGE, r);
        }
        request.body(Body::empty()).expect("request")
    }

    #[tokio::test]
    #[allow(
        clippy::result_large_err,
        reason = "an Authorize's refusal is the axum Response it returns"
    )]
    async fn a_peer_serves_only_ranges_inside_the_chunks_it_holds_of_a_part() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("store");
        let bytes: Vec<u8> = (0..2 * CHUNK + 100).map(|i| (i % 251) as u8).collect();
        let id = ClipId::of(&bytes);
        std::fs::write(store.part_path(&id), &bytes).expect("part");
        let partials = Partials::default();
        partials.start(id, CHUNK, bytes.len() as u64, &[false, true, false]);
        let server = MediaServer::new(
            store,
            Box::new(|_, _| Ok(())),
            Box::new(|_| None),
            Box::new(|| json!({})),
        )
        .sharing(partials.clone());
        let app = router(Arc::new(server));
        let path = format!("/api/media/objects/{id}");

        // Inside chunk 1: a 206 with exactly those bytes, from the `.part`.
        let range = format!("bytes={}-{}", CHUNK + 5, 2 * CHUNK - 1);
        let r = app
            .clone()
            .oneshot(get(&path, Some(&range)))
            .await
            .expect("answer");
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            r.headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok()),
            Some(format!("bytes {}-{}/{}", CHUNK + 5, 2 * CHUNK - 1, bytes.len()).as_str())
        );
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(
            &body[..],
            &bytes[(CHUNK + 5) as usize..(2 * CHUNK) as usize]
        );

        // Into chunk 2 (not held), or the whole clip: refused, saying what to ask for.
        for range in [Some(format!("bytes={CHUNK}-{}", 2 * CHUNK)), None] {
            let r = app
                .clone()
                .oneshot(get(&path, range.as_deref()))
                .await
                .expect("answer");
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{range:?}");
            let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .expect("body");
            assert!(
                String::from_utf8_lossy(&body).contains("chunks?have"),
                "{range:?}"
            );
        }

        // Its map: chunk 1 of three held, chunk 2 being fetched.
        partials.pending(&id, 2, true);
        let r = app
            .clone()
            .oneshot(get(&format!("{path}/chunks?have"), None))
            .await
            .expect("answer");
        assert_eq!(r.status(), StatusCode::OK);
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        let have: Have = serde_json::from_slice(&body).expect("a map");
        assert_eq!(
            have.bits(CHUNK, bytes.len() as u64),
            Some(vec![false, true, false])
        );
        assert_eq!(have.pending_bits(), vec![false, false, true]);

        // Once held by nobody: no map.
        partials.forget(&id);
        let r = app
            .oneshot(get(&format!("{path}/chunks?have"), None))
            .await
            .expect("answer");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
