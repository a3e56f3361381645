//! The receiver's fetcher: keeps a node's store equal to its manifest.
//!
//! For each clip the manifest names and the store lacks, it downloads to `tmp/<id>.part`,
//! resuming with `Range` (and `If-Range` on the id's tag) after a kill or a lost link; it
//! hashes while it streams, fsyncs, renames atomically and only then reports the clip
//! verified; it is ready once GStreamer opened it ([`Fetcher::prepare`]). Clips already on disk are hashed again once at start: one whose
//! bytes changed is removed and fetched again. At most [`FetchSettings::parallel`] downloads
//! run at once, and all of them together stay under one bandwidth cap
//! ([`crate::bucket::TokenBucket`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper::header;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::bucket::TokenBucket;
use crate::chunks::{self, ChunkList};
use crate::id::ClipId;
use crate::manifest::{Manifest, ManifestEntry};
use crate::readiness::{ClipReport, ClipState, MediaReport};
use crate::resume::{self, FetchPlan, ReplyAction};
use crate::store::{ClipMeta, Store, StoreError};
use crate::swarm::{Have, Partials, Schedule, Source};

/// Downloads at once, by default.
pub const DEFAULT_PARALLEL: usize = 2;
/// The bandwidth cap by default, in Mbit/s.
pub const DEFAULT_MBIT: f64 = 300.0;
/// A failed download is tried again after this.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The manifest is asked for again this often.
const MANIFEST_EVERY: Duration = Duration::from_secs(2);
/// A request (its head) must be answered within this.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// A body that sends nothing for this long is a lost link.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// During a chunked fetch, the peers' chunk maps are asked for again this often.
const HAVE_EVERY: Duration = Duration::from_millis(500);
/// A peer's chunk map must come within this (else it counts as holding nothing).
const HAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a node fetches.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// The master's `host:port`.
    pub master: String,
    /// `Authorization: Bearer` key.
    pub key: Option<String>,
    /// This node's id (its manifest).
    pub node_id: String,
    /// Downloads at once (at least 1).
    pub parallel: usize,
    /// Cap for all downloads together, Mbit/s (`None`: none).
    pub mbit: Option<f64>,
    /// TLS: the master's certificate must have the pinned fingerprint (the receiver's link
    /// pins it; nothing is fetched from the master before); a peer's must have the fingerprint
    /// the master's manifest names for it (and its chunks are checked against the master's
    /// hashes too). `None`: plaintext (`insecure`).
    pub tls: Option<rockontrol_tls::PinSlot>,
}

/// Why one download failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot reach the master at {master}: {message}")]
    Connect { master: String, message: String },
    #[error("{0}")]
    Http(String),
    #[error(transparent)]
    Reply(#[from] resume::ReplyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the download of {name} stopped at {got} of {total} bytes")]
    Truncated { name: String, got: u64, total: u64 },
}

/// An HTTP/1.1 client connection on `io` (plaintext or TLS), driven on its own task.
async fn handshake<IO>(
    io: IO,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("media link: {e}");
        }
    });
    Ok(sender)
}

/// The fetcher: a store, settings, one bandwidth bucket and the readiness report.
#[derive(Debug, Clone)]
pub struct Fetcher {
    store: Store,
    settings: FetchSettings,
    bucket: Arc<Mutex<TokenBucket>>,
    epoch: Instant,
    report: Arc<Mutex<MediaReport>>,
    parallel: Arc<Semaphore>,
    /// Set when the node serves peers: clips are fetched chunk by chunk from the master and
    /// peers at once, and the chunks held so far are served ([`crate::swarm`]).
    partials: Option<Partials>,
    /// The peers the latest manifest names for each clip (a fetch follows them).
    sources: Arc<Mutex<HashMap<ClipId, Vec<String>>>>,
    /// Over TLS, each peer's certificate as the latest manifest names it.
    peer_pins: Arc<Mutex<HashMap<String, rockontrol_tls::Fingerprint>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Fetcher {
    pub fn new(store: Store, settings: FetchSettings) -> Self {
        let epoch = Instant::now();
        Fetcher {
            bucket: Arc::new(Mutex::new(TokenBucket::new(settings.mbit, Duration::ZERO))),
            parallel: Arc::new(Semaphore::new(settings.parallel.max(1))),
            store,
            settings,
            epoch,
            report: Arc::new(Mutex::new(MediaReport::default())),
            partials: None,
            sources: Arc::default(),
            peer_pins: Arc::default(),
        }
    }

    /// Shares the chunks of clips being downloaded through `partials` (the node's peer server
    /// serves them): every clip is then fetched chunk by chunk from the master and peers at
    /// once, so receivers that start together trade chunks ([`crate::swarm`]).
    pub fn share_partials(&mut self, partials: Partials) {
        self.partials = Some(partials);
    }

    /// The readiness report, shared (the heartbeat reads it).
    pub fn report(&self) -> Arc<Mutex<MediaReport>> {
        Arc::clone(&self.report)
    }

    /// Reports into `report` (one a node keeps across fetchers, when its master changes).
    pub fn share_report(&mut self, report: Arc<Mutex<MediaReport>>) {
        self.report = report;
    }

    fn set_state(&self, id: &ClipId, state: ClipState) {
        let mut report = lock(&self.report);
        if let Some(c) = report.clips.iter_mut().find(|c| c.id == *id) {
            c.state = state;
        }
    }

    /// Runs until `stop` says so: asks for the manifest every 2 s and fetches what is
    /// missing. With `until_ready`, returns once every clip of a manifest is ready.
    pub async fn run(&self, until_ready: bool, stop: impl Fn() -> bool) -> Result<(), FetchError> {
        let mut checked: BTreeSet<ClipId> = BTreeSet::new();
        let mut running: BTreeSet<ClipId> = BTreeSet::new();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<ClipId>();
        loop {
            if stop() {
                return Ok(());
            }
            while let Ok(id) = done_rx.try_recv() {
                running.remove(&id);
            }
            match self.manifest().await {
                Ok(manifest) => {
                    *lock(&self.sources) = manifest
                        .clips
                        .iter()
                        .map(|e| (e.id, e.sources.clone()))
                        .collect();
                    self.adopt(&manifest, &mut checked).await;
                    for entry in &manifest.clips {
                        // Ready, or on disk and verified but not playable (fetching the
                        // same bytes again would not help): nothing to fetch.
                        let settled = lock(&self.report).state(&entry.id).is_some_and(|s| {
                            s.is_ready()
                                || (matches!(s, ClipState::Failed { .. })
                                    && self.store.contains(&entry.id))
                        });
                        if settled || !running.insert(entry.id) {
                            continue;
                        }
                        let this = self.clone();
                        let entry = entry.clone();
                        let done = done_tx.clone();
                        tokio::spawn(async move {
                            this.fetch_until_done(&entry).await;
                            let _ = done.send(entry.id);
                        });
                    }
                    if until_ready && running.is_empty() && lock(&self.report).ready() {
                        return Ok(());
                    }
                }
                Err(e) => tracing::warn!("media: cannot get the manifest: {e}; trying again"),
            }
            tokio::time::sleep(MANIFEST_EVERY).await;
        }
    }

    /// Takes a manifest into the report; hashes once the clips already on disk.
    async fn adopt(&self, manifest: &Manifest, checked: &mut BTreeSet<ClipId>) {
        let mut clips = Vec::new();
        for entry in &manifest.clips {
            let old = lock(&self.report).state(&entry.id).cloned();
            let state = match old {
                Some(s) => s,
                None if self.store.contains(&entry.id) => ClipState::Verified,
                None => ClipState::Missing,
            };
            clips.push(ClipReport {
                id: entry.id,
                name: entry.name.clone(),
                size: entry.size,
                state,
            });
        }
        lock(&self.report).clips = clips;
        for entry in &manifest.clips {
            if !checked.insert(entry.id) || !self.store.contains(&entry.id) {
                continue;
            }
            let store = self.store.clone();
            let id = entry.id;
            let verified = tokio::task::spawn_blocking(move || store.verify(&id)).await;
            match verified {
                Ok(Ok(())) => {
                    tracing::info!(
                        "media: {} ({}) on disk and verified",
                        entry.name,
                        id.short()
                    );
                    self.set_state(&id, ClipState::Verified);
                    self.prepare(&id, &entry.name).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!("media: {}: {e}; fetching it again", entry.name);
                    self.set_state(&id, ClipState::Missing);
                }
                Err(e) => tracing::error!("media: verifying {}: {e}", entry.name),
            }
        }
    }

    async fn fetch_until_done(&self, entry: &ManifestEntry) {
        let Ok(_slot) = Arc::clone(&self.parallel).acquire_owned().await else {
            return;
        };
        loop {
            match self.fetch(entry).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(
                        "media: {} ({}): {e}; trying again",
                        entry.name,
                        entry.id.short()
                    );
                    // Bytes held: the chunks verified so far, else the `.part`'s length.
                    let bytes = match self.partials.as_ref().and_then(|p| p.get(&entry.id)) {
                        Some(have) => have.held_bytes(),
                        None => std::fs::metadata(self.store.part_path(&entry.id))
                            .map_or(0, |m| m.len()),
                    };
                    self.set_state(
                        &entry.id,
                        if bytes > 0 {
                            ClipState::Downloading {
                                bytes,
                                total: entry.size,
                            }
                        } else {
                            ClipState::Failed {
                                error: e.to_string(),
                            }
                        },
                    );
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, FetchError> {
        self.connect_to(&self.settings.master).await
    }

    async fn connect_to(
        &self,
        master: &str,
    ) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, FetchError> {
        let master = &master.to_string();
        let connect_error = |message: String| FetchError::Connect {
            master: master.clone(),
            message,
        };
        let tcp = tokio::time::timeout(RESPONSE_TIMEOUT, tokio::net::TcpStream::connect(master))
            .await
            .map_err(|_| connect_error("timed out".into()))?
            .map_err(|e| connect_error(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let Some(slot) = &self.settings.tls else {
            return handshake(tcp).await.map_err(connect_error);
        };
        let pin = if *master == self.settings.master {
            slot.get().ok_or_else(|| {
                connect_error(
                    "the master's certificate is not pinned yet (the link pins it when it first links)".into(),
                )
            })?
        } else {
            // A peer: the certificate the master's manifest names for it, never none (the key
            // in the request would go to whoever answers at its address).
            let fingerprint = lock(&self.peer_pins).get(master).copied().ok_or_else(|| {
                connect_error(
                    "the master's manifest names no certificate for this peer: it is not asked"
                        .into(),
                )
            })?;
            rockontrol_tls::Pin {
                fingerprint,
                source: rockontrol_tls::PinSource::Peer,
            }
        };
        let (stream, _) = rockontrol_tls::client::connect(tcp, Some(&pin))
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        handshake(stream).await.map_err(connect_error)
    }

    fn request(&self, path: &str) -> hyper::http::request::Builder {
        self.request_to(&self.settings.master, path)
    }

    fn request_to(&self, host: &str, path: &str) -> hyper::http::request::Builder {
        let mut builder = Request::get(path).header(header::HOST, host);
        if let Some(key) = &self.settings.key {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        builder
    }

    /// This node's manifest from the master.
    pub async fn manifest(&self) -> Result<Manifest, FetchError> {
        let mut sender = self.connect().await?;
        let request = self
            .request(&format!(
                "/api/media/manifest?node={}",
                self.settings.node_id
            ))
            .body(Empty::new())
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let response = tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| FetchError::Http("the manifest request timed out".into()))?
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let status = response.status();
        let body = tokio::time::timeout(RESPONSE_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| FetchError::Http("the manifest body timed out".into()))?
            .map_err(|e| FetchError::Http(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(FetchError::Http(format!(
                "GET /api/media/manifest answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let mut manifest: Manifest = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Http(format!("the manifest is not what was expected: {e}")))?;
        self.pin_peers(&mut manifest);
        Ok(manifest)
    }

    /// Over TLS, keeps the peers the manifest names with a certificate (and pins it for
    /// [`Fetcher::connect_to`]); a peer named without one (it serves plaintext, or the master
    /// has no fingerprint for it) is dropped: this node's key goes to no unverified host.
    /// Plaintext (`insecure`): every source is kept.
    fn pin_peers(&self, manifest: &mut Manifest) {
        if self.settings.tls.is_none() {
            return;
        }
        let mut pins = HashMap::new();
        for (addr, text) in &manifest.peer_certificates {
            match text.parse::<rockontrol_tls::Fingerprint>() {
                Ok(fingerprint) => {
                    pins.insert(addr.clone(), fingerprint);
                }
                Err(e) => tracing::warn!(
                    "media: the manifest names peer {addr} with a certificate fingerprint that does not parse ({e}): its chunks come from elsewhere"
                ),
            }
        }
        for entry in &mut manifest.clips {
            entry.sources.retain(|peer| {
                let pinned = pins.contains_key(peer);
                if !pinned {
                    tracing::debug!(
                        "media: {}: peer {peer} has no certificate in the manifest (it serves plaintext?): not asked",
                        entry.name
                    );
                }
                pinned
            });
        }
        *lock(&self.peer_pins) = pins;
    }

    /// One attempt at one clip. A node that shares (or whose manifest names peers) fetches it
    /// chunk by chunk from several sources ([`Fetcher::fetch_swarm`]); else this resumes its
    /// `.part`, streams the rest from the master, verifies and installs.
    async fn fetch(&self, entry: &ManifestEntry) -> Result<(), FetchError> {
        if self.partials.is_some() || !entry.sources.is_empty() {
            match self.chunk_list(entry).await {
                Ok(list) => return self.fetch_swarm(entry, &list).await,
                Err(e) => tracing::warn!(
                    "media: {}: no chunk hashes ({e}); fetching from the master alone",
                    entry.name
                ),
            }
        }
        let id = entry.id;
        let total = entry.size;
        let part = self.store.part_path(&id);
        let have = std::fs::metadata(&part).map_or(0, |m| m.len());
        let mut from = match resume::plan(have, total) {
            FetchPlan::Complete => total,
            FetchPlan::From(n) => n,
            FetchPlan::Restart => {
                std::fs::remove_file(&part).map_err(|e| StoreError::Write {
                    path: part.display().to_string(),
                    source: e,
                })?;
                0
            }
        };
        if from > 0 {
            tracing::info!("media: {} resumes at byte {from} of {total}", entry.name);
        }
        // The bytes kept from before are hashed from disk once; the rest as they stream in.
        let mut hasher = blake3::Hasher::new();
        if from > 0 {
            let path = part.clone();
            hasher = tokio::task::spawn_blocking(move || -> Result<blake3::Hasher, StoreError> {
                let mut h = blake3::Hasher::new();
                crate::store::hash_prefix(&path, &mut h)?;
                Ok(h)
            })
            .await
            .map_err(|e| FetchError::Http(e.to_string()))??;
        }
        let started = Instant::now();
        let mut sent_now = 0u64;
        if from < total {
            let mut sender = self.connect().await?;
            let mut request = self.request(&format!("/api/media/objects/{id}"));
            if let Some(range) = resume::range_header(from) {
                request = request
                    .header(header::RANGE, range)
                    .header(header::IF_RANGE, id.etag());
            }
            let request = request
                .body(Empty::new())
                .map_err(|e| FetchError::Http(e.to_string()))?;
            let response = tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(request))
                .await
                .map_err(|_| FetchError::Http("the clip request timed out".into()))?
                .map_err(|e| FetchError::Http(e.to_string()))?;
            let headers = response.headers();
            let text = |name| {
                headers
                    .get(name)
                    .and_then(|v: &header::HeaderValue| v.to_str().ok())
            };
            let action = resume::check_reply(
                response.status().as_u16(),
                text(header::CONTENT_RANGE),
                text(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
                from,
                total,
            )?;
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&part)
                .await
                .map_err(|e| StoreError::Write {
                    path: part.display().to_string(),
                    source: e,
                })?;
            if action == ReplyAction::Restart {
                file.set_len(0).await.map_err(|e| StoreError::Write {
                    path: part.display().to_string(),
                    source: e,
                })?;
                from = 0;
                hasher = blake3::Hasher::new();
            }
            let mut body = response.into_body();
            let mut got = from;
            self.set_state(&id, ClipState::Downloading { bytes: got, total });
            loop {
                let frame = match tokio::time::timeout(STALL_TIMEOUT, body.frame()).await {
                    Err(_) => {
                        return Err(FetchError::Http(format!(
                            "no bytes for {STALL_TIMEOUT:?}: lost link"
                        )));
                    }
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        return Err(FetchError::Http(format!("the download broke off: {e}")));
                    }
                    Ok(Some(Ok(frame))) => frame,
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let wait = lock(&self.bucket).take(self.epoch.elapsed(), data.len() as u64);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                file.write_all(&data).await.map_err(|e| StoreError::Write {
                    path: part.display().to_string(),
                    source: e,
                })?;
                hasher.update(&data);
                got += data.len() as u64;
                lock(&self.report).from_master_bytes += data.len() as u64;
                self.set_state(&id, ClipState::Downloading { bytes: got, total });
            }
            file.sync_all().await.map_err(|e| StoreError::Write {
                path: part.display().to_string(),
                source: e,
            })?;
            sent_now = got - from;
            if got != total {
                return Err(FetchError::Truncated {
                    name: entry.name.clone(),
                    got,
                    total,
                });
            }
        }
        let actual = ClipId::from_hash(hasher.finalize());
        self.finish(entry, actual, sent_now, started).await
    }

    /// A whole `.part` whose hash is `actual`: installed if that is the id (else removed and
    /// an error), then verified, then opened (ready).
    async fn finish(
        &self,
        entry: &ManifestEntry,
        actual: ClipId,
        sent_now: u64,
        started: Instant,
    ) -> Result<(), FetchError> {
        let (id, total) = (entry.id, entry.size);
        let store = self.store.clone();
        let name = entry.name.clone();
        let installed = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let part = store.part_path(&id);
            if actual != id {
                let _ = std::fs::remove_file(&part);
                return Err(StoreError::HashMismatch {
                    path: part.display().to_string(),
                    expected: id,
                    actual,
                });
            }
            store.install(&part, &id)?;
            store.write_meta(&ClipMeta {
                id,
                size: total,
                name,
                added_unix_s: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                media: None,
                recipe: None,
            })
        })
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
        installed?;
        self.set_state(&id, ClipState::Verified);
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            "media: {} ({}) downloaded and verified: {sent_now} bytes in {secs:.3} s ({:.1} Mbit/s)",
            entry.name,
            id.short(),
            sent_now as f64 * 8.0 / 1e6 / secs.max(1e-9)
        );
        self.prepare(&id, &entry.name).await;
        Ok(())
    }

    /// The clip's chunk hashes, from the master (never from a peer).
    async fn chunk_list(&self, entry: &ManifestEntry) -> Result<ChunkList, FetchError> {
        let mut sender = self.connect().await?;
        let request = self
            .request(&format!("/api/media/objects/{}/chunks", entry.id))
            .body(Empty::new())
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let response = tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| FetchError::Http("the chunk list request timed out".into()))?
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let status = response.status();
        let body = tokio::time::timeout(RESPONSE_TIMEOUT * 6, response.into_body().collect())
            .await
            .map_err(|_| FetchError::Http("the chunk list timed out".into()))?
            .map_err(|e| FetchError::Http(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(FetchError::Http(format!(
                "the chunk list answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let list: ChunkList = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Http(format!("the chunk list is not JSON: {e}")))?;
        if !list.fits(entry.size) {
            return Err(FetchError::Http(format!(
                "the chunk list does not fit a {}-byte clip",
                entry.size
            )));
        }
        Ok(list)
    }

    /// Bytes `[start, end)` of `id` from `source`, whole, paced by the bandwidth cap.
    async fn get_range(
        &self,
        source: &str,
        id: &ClipId,
        (start, end): (u64, u64),
        total: u64,
    ) -> Result<Vec<u8>, String> {
        let mut sender = self.connect_to(source).await.map_err(|e| e.to_string())?;
        let request = self
            .request_to(source, &format!("/api/media/objects/{id}"))
            .header(header::RANGE, format!("bytes={start}-{}", end - 1))
            .header(header::IF_RANGE, id.etag())
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let content_range = response
            .headers()
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        chunks::check_chunk_reply(
            response.status().as_u16(),
            content_range.as_deref(),
            start,
            end,
            total,
        )?;
        let mut body = response.into_body();
        let mut bytes = Vec::with_capacity((end - start) as usize);
        loop {
            let frame = match tokio::time::timeout(STALL_TIMEOUT, body.frame()).await {
                Err(_) => return Err(format!("no bytes for {STALL_TIMEOUT:?}")),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(format!("broke off: {e}")),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if bytes.len() + data.len() > (end - start) as usize {
                return Err("sent more than the range".into());
            }
            let wait = lock(&self.bucket).take(self.epoch.elapsed(), data.len() as u64);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            bytes.extend_from_slice(&data);
        }
        if bytes.len() as u64 != end - start {
            return Err(format!("sent {} of {} bytes", bytes.len(), end - start));
        }
        Ok(bytes)
    }

    /// A peer's map of the chunks it holds of `id` (`None`: no answer, or not a map).
    async fn have_of(&self, peer: &str, id: &ClipId) -> Option<Have> {
        let asked = async {
            let mut sender = self.connect_to(peer).await.ok()?;
            let request = self
                .request_to(peer, &format!("/api/media/objects/{id}/chunks?have"))
                .body(Empty::new())
                .ok()?;
            let response = sender.send_request(request).await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let body = response.into_body().collect().await.ok()?.to_bytes();
            serde_json::from_slice::<Have>(&body).ok()
        };
        tokio::time::timeout(HAVE_TIMEOUT, asked)
            .await
            .ok()
            .flatten()
    }

    /// One attempt at one clip, chunk by chunk, from the master and the peers at once
    /// ([`crate::swarm::Schedule`] says which chunk from which source). Every chunk is checked
    /// against the master's hash before it is written at its place in the `.part` (the size
    /// of the clip), and then served to peers; the chunks already there are found again by
    /// their hashes, so a resume fetches less than one chunk twice; the whole `.part` is
    /// hashed again before it is installed.
    async fn fetch_swarm(&self, entry: &ManifestEntry, list: &ChunkList) -> Result<(), FetchError> {
        let (id, total) = (entry.id, entry.size);
        let part = self.store.part_path(&id);
        let write_error = |e| StoreError::Write {
            path: part.display().to_string(),
            source: e,
        };
        let started = Instant::now();
        // What is held: this process's own map (a retry), else the `.part`'s chunks by hash.
        let known = self
            .partials
            .as_ref()
            .and_then(|p| p.get(&id))
            .and_then(|h| h.bits(list.chunk, total));
        let held = match known {
            Some(bits) => bits,
            None => {
                let (path, l) = (part.clone(), list.clone());
                tokio::task::spawn_blocking(move || chunks::held_in(&path, &l))
                    .await
                    .map_err(|e| FetchError::Http(e.to_string()))??
            }
        };
        let mut have_bytes = Have::new(list.chunk, total, &held).held_bytes();
        if have_bytes > 0 {
            tracing::info!(
                "media: {} resumes with {} of {} chunks held ({have_bytes} of {total} bytes)",
                entry.name,
                held.iter().filter(|h| **h).count(),
                list.len()
            );
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&part)
            .and_then(|f| f.set_len(total).map(|()| f))
            .map_err(write_error)?;
        let file = Arc::new(file);
        if let Some(p) = &self.partials {
            p.start(id, list.chunk, total, &held);
        }
        let mut schedule = Schedule::new(
            &held,
            self.settings.parallel,
            chunks::salt(&self.settings.node_id),
        );
        self.set_state(
            &id,
            ClipState::Downloading {
                bytes: have_bytes,
                total,
            },
        );
        type Got = (Source, usize, Result<Vec<u8>, String>);
        let mut requests: futures_util::stream::FuturesUnordered<
            std::pin::Pin<Box<dyn std::future::Future<Output = Got> + Send>>,
        > = futures_util::stream::FuturesUnordered::new();
        // The peers' maps are asked for beside the chunk requests (a slow peer holds up no
        // download); the first ones before any request, so that the master is not asked for
        // what peers hold.
        let mut maps_at: Option<Instant> = None;
        type Maps = Vec<(String, Option<Have>)>;
        let take_map = |schedule: &mut Schedule, peer: &str, map: Option<Have>| {
            schedule.set_have(peer, map.as_ref().and_then(|h| h.bits(list.chunk, total)));
            if let Some(h) = map.filter(|h| h.bits(list.chunk, total).is_some()) {
                schedule.set_pending(peer, h.pending_bits());
            }
        };
        let mut maps: Option<tokio::task::JoinHandle<Maps>> = None;
        let (mut from_peers, mut from_master, mut refetched) = (0usize, 0usize, 0usize);
        let mut sent_now = 0u64;
        while !schedule.complete() {
            if maps.is_none() && maps_at.is_none_or(|t| t.elapsed() >= HAVE_EVERY) {
                let named = lock(&self.sources)
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| entry.sources.clone());
                schedule.set_peers(&named);
                let peers = schedule.peers();
                let this = self.clone();
                let task = tokio::spawn(async move {
                    let got =
                        futures_util::future::join_all(peers.iter().map(|p| this.have_of(p, &id)))
                            .await;
                    peers.into_iter().zip(got).collect::<Vec<_>>()
                });
                if maps_at.is_none() {
                    for (peer, map) in task.await.unwrap_or_default() {
                        take_map(&mut schedule, &peer, map);
                    }
                    maps_at = Some(Instant::now());
                } else {
                    maps = Some(task);
                }
            }
            while let Some((source, k)) = schedule.assign() {
                if let Some(p) = &self.partials {
                    p.pending(&id, k, true);
                }
                let this = self.clone();
                let host = match &source {
                    Source::Master => self.settings.master.clone(),
                    Source::Peer(addr) => addr.clone(),
                };
                let range = list.range(k);
                requests.push(Box::pin(async move {
                    let got = this.get_range(&host, &id, range, total).await;
                    (source, k, got)
                }));
            }
            let got = tokio::select! {
                got = requests.next(), if !requests.is_empty() => got,
                got = async {
                    match maps.as_mut() {
                        Some(task) => task.await.unwrap_or_default(),
                        None => std::future::pending().await,
                    }
                }, if maps.is_some() => {
                    maps = None;
                    maps_at = Some(Instant::now());
                    for (peer, map) in got {
                        take_map(&mut schedule, &peer, map);
                    }
                    None
                }
                () = tokio::time::sleep(HAVE_EVERY) => None,
            };
            let Some((source, k, got)) = got else {
                continue;
            };
            let range = list.range(k);
            if let Some(p) = &self.partials {
                p.pending(&id, k, false);
            }
            let bytes = match (got, &source) {
                (Ok(b), _) if list.matches(k, &b) => b,
                (Ok(_), Source::Master) => {
                    return Err(FetchError::Http(format!(
                        "chunk {k} from the master does not match its own hash"
                    )));
                }
                (Err(e), Source::Master) => {
                    return Err(FetchError::Http(format!("the master: {e}")));
                }
                (Ok(_), Source::Peer(peer)) => {
                    tracing::warn!(
                        "media: {}: peer {peer} sent a bad chunk {k} (bytes {}-{}): it does not match the master's hash; taking it from the master",
                        entry.name,
                        range.0,
                        range.1 - 1
                    );
                    refetched += 1;
                    schedule.lied(&source, k);
                    continue;
                }
                (Err(e), Source::Peer(peer)) => {
                    tracing::debug!(
                        "media: {}: peer {peer} cannot give chunk {k}: {e}; asking another source",
                        entry.name
                    );
                    schedule.failed(&source, k);
                    continue;
                }
            };
            let writer = Arc::clone(&file);
            let len = bytes.len() as u64;
            tokio::task::spawn_blocking(move || {
                std::os::unix::fs::FileExt::write_all_at(&*writer, &bytes, range.0)
            })
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?
            .map_err(write_error)?;
            schedule.done(&source, k);
            if let Some(p) = &self.partials {
                p.hold(&id, k);
            }
            sent_now += len;
            have_bytes += len;
            {
                let mut report = lock(&self.report);
                match source {
                    Source::Master => {
                        from_master += 1;
                        report.from_master_bytes += len;
                    }
                    Source::Peer(_) => {
                        from_peers += 1;
                        report.from_peers_bytes += len;
                    }
                }
            }
            self.set_state(
                &id,
                ClipState::Downloading {
                    bytes: have_bytes,
                    total,
                },
            );
        }
        drop(requests);
        if let Some(task) = maps {
            task.abort();
        }
        let synced = Arc::clone(&file);
        tokio::task::spawn_blocking(move || synced.sync_all())
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?
            .map_err(write_error)?;
        drop(file);
        tracing::info!(
            "media: {}: {from_peers} chunks from peers, {from_master} from the master ({refetched} refetched after a bad chunk)",
            entry.name
        );
        // Every byte once more, as the clip's id: the chunk hashes came from the master, the
        // id is what the show names.
        let path = part.clone();
        let actual =
            tokio::task::spawn_blocking(move || crate::store::hash_file(&path, &mut |_| {}))
                .await
                .map_err(|e| FetchError::Http(e.to_string()))??;
        if let Some(p) = &self.partials {
            p.forget(&id);
        }
        self.finish(entry, actual, sent_now, started).await
    }

    /// Verified → ready: the clip is opened with GStreamer (demuxed, its first frame
    /// prerolled by the discoverer), its media facts go into the sidecar, and only then may
    /// playback count on it. A verified clip that does not open is `failed` and named.
    async fn prepare(&self, id: &ClipId, name: &str) {
        let store = self.store.clone();
        let clip = *id;
        let opened = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let info = crate::probe::probe(&store.object_path(&clip)).map_err(|e| e.to_string())?;
            if let Ok(mut meta) = store.meta(&clip) {
                meta.media = Some(info);
                store.write_meta(&meta).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match opened {
            Ok(()) => {
                tracing::info!("media: {name} ({}) opened: ready", id.short());
                self.set_state(id, ClipState::Ready);
            }
            Err(e) => {
                tracing::warn!(
                    "media: {name} ({}) is verified but does not open: {e}",
                    id.short()
                );
                self.set_state(
                    id,
                    ClipState::Failed {
                        error: format!("verified but does not open: {e}"),
                    },
                );
            }
        }
    }
}
