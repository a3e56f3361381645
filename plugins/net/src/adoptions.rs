//! Adopted nodes, kept in the master's state directory (`adoptions.json`) so that an
//! adoption outlives the master process.
//!
//! An adoption admits the one pending connection the operator chose, and binds the node id to
//! a key: from then on a connection with that id must authenticate with the control key
//! ([`BoundKey::Control`]); a key-less hello claiming it is refused. The file is written
//! whole (a temporary file, fsynced, renamed over the old one), so a crash leaves the old
//! list or the new one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Capability;

/// The file in the state directory.
pub const FILE: &str = "adoptions.json";

/// The key an adopted node must connect with from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoundKey {
    /// The master's control key.
    Control,
}

/// One adopted node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adoption {
    pub node_id: String,
    pub key: BoundKey,
    /// The universes the node was admitted with (its permissions).
    pub universes: Vec<u16>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// The address of the connection that was adopted.
    pub address: String,
    /// When (RFC 3339).
    pub adopted_at: String,
}

/// Why the adoptions could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AdoptionsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a list of adoptions: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The adoptions kept in `state_dir` (none if the file does not exist).
pub fn load(state_dir: &Path) -> Result<Vec<Adoption>, AdoptionsError> {
    let path = state_dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(AdoptionsError::Read { path, source }),
    };
    serde_json::from_str(&text).map_err(|source| AdoptionsError::Parse { path, source })
}

/// Writes `adoptions` to `state_dir` durably (temporary file, fsync, rename).
pub fn save(state_dir: &Path, adoptions: &[Adoption]) -> Result<(), AdoptionsError> {
    let path = state_dir.join(FILE);
    let written = serde_json::to_string_pretty(adoptions)
        .map_err(std::io::Error::other)
        .and_then(|text| crate::durable::replace(&path, format!("{text}\n").as_bytes(), false));
    written.map_err(|source| AdoptionsError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adoptions_are_written_whole_and_read_back() {
        let dir = std::env::temp_dir().join(format!("rk-adoptions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&dir).expect("no file: none"), vec![]);
        let list = vec![Adoption {
            node_id: "node-05".into(),
            key: BoundKey::Control,
            universes: vec![5],
            capabilities: vec![Capability::DmxOutput],
            address: "127.0.0.1".into(),
            adopted_at: "2026-12-02T05:00:00Z".into(),
        }];
        save(&dir, &list).expect("saved");
        assert_eq!(load(&dir).expect("read"), list);
        assert!(
            !dir.join(format!("{FILE}.tmp")).exists(),
            "renamed into place"
        );
        std::fs::write(dir.join(FILE), "{not json").expect("corrupt it");
        assert!(matches!(load(&dir), Err(AdoptionsError::Parse { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
