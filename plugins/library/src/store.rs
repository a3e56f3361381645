//! The content-addressed store on disk: a master's library, or a receiver's cache.
//!
//! ```text
//! <root>/objects/<id>        the clip's bytes; <id> = BLAKE3 of them
//! <root>/objects/<id>.json   its sidecar (ClipMeta: name, size, media facts)
//! <root>/tmp/                ingests and downloads in progress (*.part), same filesystem
//! ```
//!
//! A clip appears under `objects/` only whole and verified: bytes are hashed while they are
//! written to `tmp/`, the file is fsynced, renamed into place (atomic), and the directory is
//! fsynced. A crash leaves at most a `.part` file, which a download resumes.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::id::ClipId;
use crate::probe::{self, MediaInfo, ProbeError};

/// Bytes read and written at a time while hashing.
pub const CHUNK: usize = 1 << 20;

/// What the library knows of a clip (its sidecar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipMeta {
    pub id: ClipId,
    /// Bytes.
    pub size: u64,
    /// The file name it was added from (or the show's name for it, on a receiver).
    pub name: String,
    /// Seconds since 1970 when it was added.
    pub added_unix_s: u64,
    /// Media facts (absent on a receiver, which does not probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaInfo>,
    /// How it was transcoded on ingest (`media add --transcode`), from which source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<crate::transcode::Recipe>,
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error(
        "the disk holding {dir} is full; free space there (`rockontrol media gc` removes clips no show uses) and try again"
    )]
    DiskFull { dir: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error("no clip {0} in the library at {1}")]
    NotFound(ClipId, String),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(
        "{path}: its bytes hash to {actual}, not to {expected}; the copy is bad and was removed"
    )]
    HashMismatch {
        path: String,
        expected: ClipId,
        actual: ClipId,
    },
}

fn write_error(path: &Path, source: io::Error) -> StoreError {
    if source.kind() == io::ErrorKind::StorageFull {
        StoreError::DiskFull {
            dir: path.parent().unwrap_or(path).display().to_string(),
        }
    } else {
        StoreError::Write {
            path: path.display().to_string(),
            source,
        }
    }
}

fn read_error(path: &Path, source: io::Error) -> StoreError {
    StoreError::Read {
        path: path.display().to_string(),
        source,
    }
}

/// Fsyncs a directory, so a rename in it survives a power cut.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| write_error(dir, e))
}

fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A content-addressed store at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store at `root`, creating its directories.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let store = Store { root: root.into() };
        for dir in [store.objects_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(|e| write_error(&dir.join("x"), e))?;
        }
        Ok(store)
    }

    /// Where the store lives.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn objects_dir(&self) -> PathBuf {
        self.root.join("objects")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where a clip's bytes are (whether or not they are there).
    pub fn object_path(&self, id: &ClipId) -> PathBuf {
        self.objects_dir().join(id.to_string())
    }

    fn meta_path(&self, id: &ClipId) -> PathBuf {
        self.objects_dir().join(format!("{id}.json"))
    }

    /// Where a download (or upload) of `id` in progress is kept.
    pub fn part_path(&self, id: &ClipId) -> PathBuf {
        self.tmp_dir().join(format!("{id}.part"))
    }

    /// Whether the clip's bytes are in the store.
    pub fn contains(&self, id: &ClipId) -> bool {
        self.object_path(id).is_file()
    }

    /// The size of a stored clip.
    pub fn size(&self, id: &ClipId) -> Option<u64> {
        fs::metadata(self.object_path(id))
            .ok()
            .filter(fs::Metadata::is_file)
            .map(|m| m.len())
    }

    /// Adds the clip at `source`: probes it (refusing what is not media), copies it in while
    /// hashing, and writes its sidecar. `progress` is told the bytes copied so far. A clip
    /// already in the store is not copied again.
    pub fn ingest(
        &self,
        source: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ClipMeta, StoreError> {
        let media = probe::probe(source)?;
        let mut input = File::open(source).map_err(|e| read_error(source, e))?;
        let tmp = self.tmp_dir().join(format!(
            "ingest-{}-{}.part",
            std::process::id(),
            now_unix_s()
        ));
        let result = (|| -> Result<(ClipId, u64), StoreError> {
            let mut out = File::create(&tmp).map_err(|e| write_error(&tmp, e))?;
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; CHUNK];
            let mut copied = 0u64;
            loop {
                let n = input.read(&mut buf).map_err(|e| read_error(source, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(|e| write_error(&tmp, e))?;
                copied += n as u64;
                progress(copied);
            }
            out.sync_all().map_err(|e| write_error(&tmp, e))?;
            Ok((ClipId::from_hash(hasher.finalize()), copied))
        })();
        let (id, size) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if self.contains(&id) {
            let _ = fs::remove_file(&tmp);
        } else {
            self.install(&tmp, &id)?;
        }
        let meta = ClipMeta {
            id,
            size,
            name: source
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            added_unix_s: now_unix_s(),
            media: Some(media),
            recipe: None,
        };
        self.write_meta(&meta)?;
        tracing::info!("media: added {} as {id} ({size} bytes)", source.display());
        Ok(meta)
    }

    /// A scratch file in the store's own `tmp/` (same disk as the objects), for work such as
    /// a transcode before ingest.
    pub fn scratch_path(&self, name: &str) -> PathBuf {
        self.tmp_dir()
            .join(format!("{}-{name}", std::process::id()))
    }

    /// Moves a whole, hashed and fsynced file into place as `id` (atomic rename, then the
    /// directory is fsynced).
    pub fn install(&self, file: &Path, id: &ClipId) -> Result<(), StoreError> {
        let target = self.object_path(id);
        fs::rename(file, &target).map_err(|e| write_error(&target, e))?;
        sync_dir(&self.objects_dir())
    }

    /// Writes a clip's sidecar (atomically).
    pub fn write_meta(&self, meta: &ClipMeta) -> Result<(), StoreError> {
        let path = self.meta_path(&meta.id);
        let tmp = self.tmp_dir().join(format!("{}.json.tmp", meta.id));
        let text = serde_json::to_vec_pretty(meta).map_err(|e| StoreError::Write {
            path: path.display().to_string(),
            source: io::Error::other(e),
        })?;
        let mut f = File::create(&tmp).map_err(|e| write_error(&tmp, e))?;
        f.write_all(&text)
            .and_then(|()| f.sync_all())
            .map_err(|e| write_error(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| write_error(&path, e))?;
        sync_dir(&self.objects_dir())
    }

    /// A stored clip's sidecar (a clip without one gets a bare one).
    pub fn meta(&self, id: &ClipId) -> Result<ClipMeta, StoreError> {
        let Some(size) = self.size(id) else {
            return Err(StoreError::NotFound(*id, self.root.display().to_string()));
        };
        let path = self.meta_path(id);
        match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<ClipMeta>(&bytes) {
                Ok(meta) => Ok(meta),
                Err(e) => {
                    tracing::warn!("{}: unreadable sidecar ({e}); ignored", path.display());
                    Ok(bare_meta(*id, size))
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(bare_meta(*id, size)),
            Err(e) => Err(read_error(&path, e)),
        }
    }

    /// Every clip in the store, sorted by id.
    pub fn list(&self) -> Result<Vec<ClipMeta>, StoreError> {
        let dir = self.objects_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| read_error(&dir, e))? {
            let entry = entry.map_err(|e| read_error(&dir, e))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.parse::<ClipId>().ok()) else {
                continue;
            };
            out.push(self.meta(&id)?);
        }
        out.sort_by_key(|m| m.id);
        Ok(out)
    }

    /// Removes a clip and its sidecar.
    pub fn remove(&self, id: &ClipId) -> Result<ClipMeta, StoreError> {
        let meta = self.meta(id)?;
        let path = self.object_path(id);
        fs::remove_file(&path).map_err(|e| write_error(&path, e))?;
        let _ = fs::remove_file(self.meta_path(id));
        sync_dir(&self.objects_dir())?;
        Ok(meta)
    }

    /// Removes every clip not in `keep`; returns what was removed.
    pub fn gc(&self, keep: &BTreeSet<ClipId>) -> Result<Vec<ClipMeta>, StoreError> {
        let mut removed = Vec::new();
        for meta in self.list()? {
            if !keep.contains(&meta.id) {
                removed.push(self.remove(&meta.id)?);
            }
        }
        Ok(removed)
    }

    /// Hashes a stored clip again; `progress` is told the bytes read.
    pub fn rehash(&self, id: &ClipId, progress: &mut dyn FnMut(u64)) -> Result<ClipId, StoreError> {
        hash_file(&self.object_path(id), progress)
    }

    /// Checks a stored clip; removes it (and says so) if its bytes no longer match its id.
    pub fn verify(&self, id: &ClipId) -> Result<(), StoreError> {
        let actual = self.rehash(id, &mut |_| {})?;
        if actual == *id {
            return Ok(());
        }
        let path = self.object_path(id);
        fs::remove_file(&path).map_err(|e| write_error(&path, e))?;
        Err(StoreError::HashMismatch {
            path: path.display().to_string(),
            expected: *id,
            actual,
        })
    }
}

fn bare_meta(id: ClipId, size: u64) -> ClipMeta {
    ClipMeta {
        id,
        size,
        name: String::new(),
        added_unix_s: 0,
        media: None,
        recipe: None,
    }
}

/// The BLAKE3 of a file's bytes.
pub fn hash_file(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<ClipId, StoreError> {
    let mut file = File::open(path).map_err(|e| read_error(path, e))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| read_error(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done);
    }
    Ok(ClipId::from_hash(hasher.finalize()))
}

/// Feeds the first bytes of a file into `hasher` (a download resuming its `.part`).
pub fn hash_prefix(path: &Path, hasher: &mut blake3::Hasher) -> Result<u64, StoreError> {
    let mut file = File::open(path).map_err(|e| read_error(path, e))?;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| read_error(path, e))?;
        if n == 0 {
            return Ok(done);
        }
        hasher.update(&buf[..n]);
        done += n as u64;
    }
}
