//! RocKontrol's media library: content-addressed clips on the master, and their verified,
//! resumable distribution to the receivers that play them.
//!
//! A clip's id is the BLAKE3 of its bytes, so any copy can be checked anywhere, and a show
//! names clips by id (`rockontrol_show::Clip`). The master keeps a store, probes each clip
//! with GStreamer's discoverer, serves byte ranges over HTTP and builds each node's manifest;
//! a receiver's fetcher keeps its own store equal to its manifest and reports readiness.
//!
//! # Layout
//! Pure (no I/O):
//! - [`id`]: [`ClipId`], parsed strictly (no path ever comes from a request).
//! - [`manifest`]: [`manifest_for`], the rule of which node gets which clips.
//! - [`gate`]: which node plays which clip from the show's media part, and the GO gate.
//! - [`readiness`]: [`ClipState`] (missing → downloading → verified → ready), [`MediaReport`].
//! - [`resume`]: range and resume bookkeeping.
//! - [`bucket`]: [`TokenBucket`], the bandwidth cap's arithmetic.
//! - [`chunks`]: chunk hashes for peer-assisted fetches.
//! - [`swarm`]: which chunk from which source ([`swarm::Schedule`]), chunk maps, and the
//!   chunks a node holds of clips it is still downloading ([`swarm::Partials`]).
//!
//! I/O shells:
//! - [`store`]: [`Store`], the content-addressed directory (hash while copying, fsync, rename).
//! - [`probe`]: GStreamer's discoverer into [`MediaInfo`].
//! - [`serve`]: the axum routes (`/api/media/…`), ranges by tower-http.
//! - [`fetch`]: [`Fetcher`], the receiver's downloader (hyper).
//! - [`transcode`]: ffmpeg to a playout codec on ingest (its recipe logic is pure).

pub mod bucket;
pub mod chunks;
pub mod fetch;
pub mod gate;
pub mod id;
pub mod manifest;
pub mod probe;
pub mod readiness;
pub mod resume;
pub mod serve;
pub mod store;
pub mod swarm;
pub mod transcode;

pub use bucket::TokenBucket;
pub use fetch::{FetchSettings, Fetcher};
pub use id::{BadId, ClipId};
pub use manifest::{Manifest, ManifestEntry, NodePlays, manifest_for};
pub use probe::{MediaInfo, probe};
pub use readiness::{ClipState, MediaReport};
pub use serve::{MediaServer, Need, router};
pub use store::{ClipMeta, Store, StoreError};
