//! The master's keys file, `state_dir/keys.json`: keys with a role and limits, added and
//! revoked by `rockontrol keys add|list|revoke`, and the revocations.
//!
//! **Only a hash of each key is kept** (SHA-256, hex), never the key: `keys add` prints the
//! key once, and a stolen file does not let anyone call the API. The keys are 128 random
//! bits, so an unsalted hash cannot be reversed by guessing.
//!
//! The *link key* (`api_key` in the config, `$ROCKONTROL_API_KEY`, or the generated
//! `state_dir/api-key`) is the exception and stays in clear where it is: receivers prove it
//! by HMAC challenge–response ([`crate::handshake`]) and clock packets are signed with it, and
//! both MACs need the key itself on the master; a hash would have to become the shared
//! secret, which is no better than the key. It counts as `admin`. It can still be revoked
//! here by its id: the master then refuses it, on the API and on node links.
//!
//! [`KeyRing`] is the running master's view of the file: it notices a change at the next
//! request or within a quarter second ([`KeyRing::refresh`]) and tells open connections
//! ([`KeyRing::subscribe`]), which close when their key is gone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::roles::{Limits, Role};

/// The file's name in the state directory.
pub const FILE: &str = "keys.json";

/// A key of the keys file (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Its public id ([`crate::handshake::key_id`]).
    pub id: String,
    /// A name for people (who holds it).
    pub name: String,
    pub role: Role,
    #[serde(flatten)]
    pub limits: Limits,
    /// When it was added (RFC 3339).
    pub created: String,
    /// SHA-256 of the key, hex.
    pub sha256: String,
}

/// A revoked key's id, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoked {
    pub id: String,
    pub name: String,
    pub at: String,
    /// The key's hash (keys of the file), so it is refused as revoked, not as unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
    #[serde(default)]
    pub revoked: Vec<Revoked>,
}

/// Why the keys file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a keys file: {source}; fix or remove it")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no key {0:?} in the keys file (`rockontrol keys list` shows the ids)")]
    NoSuchKey(String),
    #[error("a key named {0:?} exists already; choose another name")]
    NameTaken(String),
}

/// SHA-256 of `key`, hex.
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl KeysFile {
    /// The file in `state_dir` (none there: an empty one).
    pub fn load(state_dir: &Path) -> Result<KeysFile, KeysError> {
        let path = state_dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|source| KeysError::Parse { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeysFile::default()),
            Err(source) => Err(KeysError::Read { path, source }),
        }
    }

    /// Writes the file whole (temporary file, fsync, rename; mode 0600): a running master
    /// never reads half of it.
    pub fn save(&self, state_dir: &Path) -> Result<(), KeysError> {
        let path = state_dir.join(FILE);
        let written = serde_json::to_string_pretty(self)
            .map_err(std::io::Error::other)
            .and_then(|text| crate::durable::replace(&path, format!("{text}\n").as_bytes(), true));
        written.map_err(|source| KeysError::Write { path, source })
    }

    /// Adds `key` (only its hash is kept) as `name` with `role` and `limits`.
    pub fn add(
        &mut self,
        key: &str,
        name: &str,
        role: Role,
        limits: Limits,
        now: SystemTime,
    ) -> Result<&KeyRecord, KeysError> {
        if self.keys.iter().any(|k| k.name == name) {
            return Err(KeysError::NameTaken(name.to_string()));
        }
        self.keys.push(KeyRecord {
            id: crate::handshake::key_id(key),
            name: name.to_string(),
            role,
            limits,
            created: crate::health::rfc3339(now),
            sha256: key_hash(key),
        });
        Ok(self.keys.last().unwrap_or_else(|| unreachable!("pushed")))
    }

    /// Revokes the key with id (or name) `which`: it leaves the list and its id is kept as
    /// revoked. An id not in the list (the link key's, say) is recorded as revoked too, when
    /// `any_id` is set.
    pub fn revoke(
        &mut self,
        which: &str,
        any_id: bool,
        now: SystemTime,
    ) -> Result<Revoked, KeysError> {
        let at = crate::health::rfc3339(now);
        let revoked = match self
            .keys
            .iter()
            .position(|k| k.id == which || k.name == which)
        {
            Some(i) => {
                let record = self.keys.remove(i);
                Revoked {
                    id: record.id,
                    name: record.name,
                    at,
                    sha256: Some(record.sha256),
                }
            }
            None if any_id => Revoked {
                id: which.to_string(),
                name: String::new(),
                at,
                sha256: None,
            },
            None => return Err(KeysError::NoSuchKey(which.to_string())),
        };
        if !self.is_revoked(&revoked.id) {
            self.revoked.push(revoked.clone());
        }
        Ok(revoked)
    }

    /// Whether the key with this id was revoked.
    pub fn is_revoked(&self, id: &str) -> bool {
        self.revoked.iter().any(|r| r.id == id)
    }

    /// The revocation of bearer key `key` (a key of the file that was revoked), by hash.
    pub fn revoked_key(&self, key: &str) -> Option<&Revoked> {
        let hash = key_hash(key);
        self.revoked.iter().find(|r| {
            r.sha256
                .as_deref()
                .is_some_and(|h| crate::auth::same(h, &hash))
        })
    }

    /// The record of bearer key `key`, compared by hash (in constant time).
    pub fn find(&self, key: &str) -> Option<&KeyRecord> {
        let hash = key_hash(key);
        self.keys
            .iter()
            .find(|k| crate::auth::same(&k.sha256, &hash))
    }
}

/// What identifies one version of the file on disk (a save renames a new file in place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

/// The running master's keys file: reloaded when it changes on disk; open connections
/// subscribe to hear of every change.
#[derive(Debug)]
pub struct KeyRing {
    path: Option<PathBuf>,
    current: RwLock<(Option<Stamp>, Arc<KeysFile>)>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl KeyRing {
    /// The keys file of `state_dir` (none: no file keys, nothing revoked).
    pub fn open(state_dir: Option<&Path>) -> KeyRing {
        let ring = KeyRing {
            path: state_dir.map(|d| d.join(FILE)),
            current: RwLock::new((None, Arc::new(KeysFile::default()))),
            changes: tokio::sync::watch::Sender::new(0),
        };
        ring.refresh();
        ring
    }

    /// Reloads the file if it changed since it was last read (one `stat`); true if it did.
    /// A file that cannot be read or parsed keeps the keys as they were, with an error logged.
    pub fn refresh(&self) -> bool {
        let Some(path) = &self.path else { return false };
        let now = stamp(path);
        if self.current.read().is_ok_and(|c| c.0 == now) {
            return false;
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let file = match KeysFile::load(dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("{e}; the keys stay as they were");
                if let Ok(mut c) = self.current.write() {
                    c.0 = now;
                }
                return false;
            }
        };
        let changed = match self.current.write() {
            Ok(mut c) => {
                let changed = *c.1 != file;
                *c = (now, Arc::new(file));
                changed
            }
            Err(_) => false,
        };
        if changed {
            tracing::info!("keys: {} reloaded", path.display());
            self.changes.send_modify(|n| *n += 1);
        }
        changed
    }

    /// The keys as of now (reloaded first if the file changed).
    pub fn file(&self) -> Arc<KeysFile> {
        self.refresh();
        self.current
            .read()
            .map(|c| Arc::clone(&c.1))
            .unwrap_or_default()
    }

    /// Hears of every change of the keys.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_keeps_hashes_and_revocations_never_keys() {
        let dir = std::env::temp_dir().join(format!("rk-keyring-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let mut file = KeysFile::default();
        let limits = Limits {
            universes: vec![1, 2],
            playbacks: vec!["main".into()],
        };
        let id = file
            .add(
                "operator-key-0001",
                "desk",
                Role::Operator,
                limits.clone(),
                now,
            )
            .expect("added")
            .id
            .clone();
        assert_eq!(id, crate::handshake::key_id("operator-key-0001"));
        assert!(matches!(
            file.add(
                "other-key-00000",
                "desk",
                Role::Viewer,
                Limits::default(),
                now
            ),
            Err(KeysError::NameTaken(_))
        ));
        file.save(&dir).expect("saved");
        let text = std::fs::read_to_string(dir.join(FILE)).expect("read");
        assert!(
            !text.contains("operator-key-0001"),
            "no key on disk: {text}"
        );
        assert!(text.contains(&key_hash("operator-key-0001")), "{text}");
        assert!(
            text.contains("\"role\": \"operator\"") && text.contains("\"universes\": ["),
            "role and limits beside the hash: {text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "only the owner reads it");
        }
        let back = KeysFile::load(&dir).expect("loaded");
        assert_eq!(back, file);
        let record = back.find("operator-key-0001").expect("found by its hash");
        assert_eq!((record.role, &record.limits), (Role::Operator, &limits));
        assert!(back.find("operator-key-0002").is_none());

        let ring = KeyRing::open(Some(&dir));
        let changes = ring.subscribe();
        assert!(!ring.refresh(), "unchanged");
        let mut file = back;
        let revoked = file.revoke("desk", false, now).expect("revoked by name");
        assert_eq!(
            (revoked.id.as_str(), revoked.at.as_str()),
            (id.as_str(), "2027-01-15T08:00:00Z")
        );
        assert!(matches!(
            file.revoke("desk", false, now),
            Err(KeysError::NoSuchKey(_))
        ));
        file.revoke("00112233aabbccdd", true, now).expect("any id");
        file.save(&dir).expect("saved");
        let seen = ring.file();
        assert!(
            seen.find("operator-key-0001").is_none(),
            "reloaded at the next look"
        );
        assert!(seen.is_revoked(&id) && seen.is_revoked("00112233aabbccdd"));
        assert_eq!(
            seen.revoked_key("operator-key-0001").map(|r| r.id.as_str()),
            Some(id.as_str()),
            "a revoked key is known as revoked, by its hash"
        );
        assert!(
            changes.has_changed().expect("open"),
            "subscribers hear of it"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
