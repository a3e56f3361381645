//! API keys: `Authorization: Bearer <key>` on every REST call (and accepted on the WebSocket
//! upgrade from tools); receivers prove their key on the WebSocket without sending it
//! ([`crate::handshake`]).
//!
//! Every key has a role ([`crate::roles`]): the link key (configured, from the environment, or
//! generated at first start into the state directory) is `admin`, configured read-only keys
//! are `viewer`, and the keys file ([`crate::keyring`]) holds keys of any role, hashed.
//! [`Keys::caller`] says who a request's key belongs to; [`crate::roles::permit`] says what
//! it may do.

use std::io::Read;
use std::path::{Path, PathBuf};

/// What a request's key allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    None,
    ReadOnly,
    Control,
}

/// The keys a master accepts.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub control: Vec<String>,
    pub read_only: Vec<String>,
}

/// Where a master's key came from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    Environment,
    Config,
    /// Generated now (or at an earlier start) and kept in this file.
    StateFile {
        path: PathBuf,
        generated: bool,
    },
}

impl Keys {
    /// What `Authorization` header value `header` grants.
    pub fn check(&self, header: Option<&str>) -> Access {
        let Some(key) = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return Access::None;
        };
        if self.control.iter().any(|k| same(k, key)) {
            Access::Control
        } else if self.read_only.iter().any(|k| same(k, key)) {
            Access::ReadOnly
        } else {
            Access::None
        }
    }

    /// The control key whose [`crate::handshake::key_id`] is `key_id` (read-only keys cannot
    /// link a node). Key ids are public: comparing them leaks nothing.
    pub fn control_with_id(&self, key_id: &str) -> Option<&str> {
        self.control
            .iter()
            .find(|k| crate::handshake::key_id(k) == key_id)
            .map(String::as_str)
    }
}

/// Why a request has no caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    #[error("missing Authorization: Bearer <key>")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("API key {id} was revoked at {at}")]
    Revoked { id: String, at: String },
}

impl Keys {
    /// Who the `Authorization` header value `header` speaks for: a link key is `admin`, a
    /// configured read-only key `viewer`, a key of the keys `file` has its role and limits.
    /// A key whose id `file` lists as revoked is refused.
    pub fn caller(
        &self,
        header: Option<&str>,
        file: &crate::keyring::KeysFile,
    ) -> Result<crate::roles::Caller, Unauthenticated> {
        use crate::roles::{Caller, Limits, Role};
        let header = header.ok_or(Unauthenticated::Missing)?;
        let key = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .ok_or(Unauthenticated::Invalid)?;
        let caller = |name: &str, role, limits| Caller {
            key_id: crate::handshake::key_id(key),
            name: name.to_string(),
            role,
            limits,
            peer: None,
        };
        let caller = if self.control.iter().any(|k| same(k, key)) {
            caller("link key", Role::Admin, Limits::default())
        } else if self.read_only.iter().any(|k| same(k, key)) {
            caller("read-only key (config)", Role::Viewer, Limits::default())
        } else if let Some(record) = file.find(key) {
            caller(&record.name, record.role, record.limits.clone())
        } else if let Some(r) = file.revoked_key(key) {
            return Err(Unauthenticated::Revoked {
                id: r.id.clone(),
                at: r.at.clone(),
            });
        } else {
            return Err(Unauthenticated::Invalid);
        };
        match file.revoked.iter().find(|r| r.id == caller.key_id) {
            Some(r) => Err(Unauthenticated::Revoked {
                id: r.id.clone(),
                at: r.at.clone(),
            }),
            None => Ok(caller),
        }
    }
}

/// Compares without stopping at the first difference (no timing hint about the key).
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The environment variable that overrides a configured key.
pub const KEY_VARIABLE: &str = "ROCKONTROL_API_KEY";

/// `$ROCKONTROL_API_KEY`, if set to something other than blanks.
fn key_from_environment() -> Option<String> {
    std::env::var(KEY_VARIABLE).ok()
}

/// The control key from `$ROCKONTROL_API_KEY`, else `configured`, else the one kept in
/// `state_dir/api-key` (generated there on first use).
pub fn control_key(
    configured: Option<&str>,
    state_dir: &Path,
) -> std::io::Result<(String, KeySource)> {
    control_key_with(key_from_environment().as_deref(), configured, state_dir)
}

/// [`control_key`] with the environment's value passed in (`None`: the variable is unset).
pub fn control_key_with(
    environment: Option<&str>,
    configured: Option<&str>,
    state_dir: &Path,
) -> std::io::Result<(String, KeySource)> {
    if let Some(key) = environment.map(str::trim).filter(|k| !k.is_empty()) {
        return Ok((key.to_string(), KeySource::Environment));
    }
    if let Some(key) = configured {
        return Ok((key.to_string(), KeySource::Config));
    }
    let path = state_dir.join("api-key");
    if let Ok(text) = std::fs::read_to_string(&path)
        && !text.trim().is_empty()
    {
        return Ok((
            text.trim().to_string(),
            KeySource::StateFile {
                path,
                generated: false,
            },
        ));
    }
    std::fs::create_dir_all(state_dir)?;
    let key = random_key()?;
    std::fs::write(&path, format!("{key}\n"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok((
        key,
        KeySource::StateFile {
            path,
            generated: true,
        },
    ))
}

/// The key a node presents: `$ROCKONTROL_API_KEY`, else its configured one.
pub fn node_key(configured: Option<&str>) -> Option<String> {
    node_key_with(key_from_environment().as_deref(), configured)
}

/// [`node_key`] with the environment's value passed in (`None`: the variable is unset).
pub fn node_key_with(environment: Option<&str>, configured: Option<&str>) -> Option<String> {
    environment
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .or_else(|| configured.map(str::to_string))
}

/// 32 hex digits from the OS random source.
pub fn random_key() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_keys_grant_control_or_read_only() {
        let keys = Keys {
            control: vec!["control-key-1".into()],
            read_only: vec!["reader-key-1".into()],
        };
        assert_eq!(keys.check(Some("Bearer control-key-1")), Access::Control);
        assert_eq!(keys.check(Some("Bearer reader-key-1")), Access::ReadOnly);
        assert_eq!(keys.check(Some("Bearer control-key-2")), Access::None);
        assert_eq!(keys.check(Some("control-key-1")), Access::None, "no scheme");
        assert_eq!(keys.check(None), Access::None);
    }

    /// The same assertions whether or not the test runs with `$ROCKONTROL_API_KEY` set: the
    /// environment is passed in, never read.
    #[test]
    fn control_keys_are_found_by_key_id_and_read_only_keys_are_not() {
        let keys = Keys {
            control: vec!["control-key-1".into(), "control-key-2".into()],
            read_only: vec!["reader-key-1".into()],
        };
        let id = |k| crate::handshake::key_id(k);
        assert_eq!(
            keys.control_with_id(&id("control-key-2")),
            Some("control-key-2")
        );
        assert_eq!(
            keys.control_with_id(&id("control-key-1")),
            Some("control-key-1")
        );
        assert_eq!(keys.control_with_id(&id("reader-key-1")), None);
        assert_eq!(
            keys.control_with_id("control-key-1"),
            None,
            "a key is not its id"
        );
    }

    #[test]
    fn a_generated_key_is_kept_for_the_next_start() {
        let dir = std::env::temp_dir().join(format!("rk-net-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, src) = control_key_with(None, Some("configured-key"), &dir).expect("config key");
        assert_eq!((a.as_str(), src), ("configured-key", KeySource::Config));
        let (b, src) = control_key_with(None, None, &dir).expect("generated");
        assert!(
            matches!(
                src,
                KeySource::StateFile {
                    generated: true,
                    ..
                }
            ),
            "{src:?}"
        );
        let (c, src) = control_key_with(Some("  "), None, &dir).expect("kept");
        assert!(
            matches!(
                src,
                KeySource::StateFile {
                    generated: false,
                    ..
                }
            ),
            "a blank variable counts as unset: {src:?}"
        );
        assert_eq!(b, c, "the generated key is kept");
        assert_eq!(b.len(), 32, "32 hex digits: {b}");
        let (d, src) = control_key_with(Some(" env-key \n"), Some("configured-key"), &dir)
            .expect("environment");
        assert_eq!(
            (d.as_str(), src),
            ("env-key", KeySource::Environment),
            "the environment overrides the config and the file"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_node_presents_the_environment_key_else_its_configured_one() {
        assert_eq!(node_key_with(None, None), None);
        assert_eq!(
            node_key_with(None, Some("cfg")).as_deref(),
            Some("cfg"),
            "configured"
        );
        assert_eq!(
            node_key_with(Some(" env "), Some("cfg")).as_deref(),
            Some("env"),
            "the environment wins, trimmed"
        );
        assert_eq!(
            node_key_with(Some(""), Some("cfg")).as_deref(),
            Some("cfg"),
            "an empty variable counts as unset"
        );
    }
}
