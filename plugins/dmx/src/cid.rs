//! The node's sACN CID: a UUID that identifies this source for its whole life (E1.31 §5.6).
//!
//! Receivers track sources by CID; one that changed on every start would look like a new
//! console to every receiver after each restart. So it is generated once and kept in the
//! node's state directory.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The node's state directory: `$ROCKONTROL_STATE_DIR`, else `$XDG_STATE_HOME/rockontrol`,
/// else `~/.local/state/rockontrol`, else `./.rockontrol`.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROCKONTROL_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("rockontrol");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".local/state/rockontrol");
    }
    PathBuf::from(".rockontrol")
}

/// Loads the CID stored in `dir/sacn-cid`, creating it on first use.
pub fn load_or_create(dir: &Path) -> std::io::Result<[u8; 16]> {
    let path = dir.join("sacn-cid");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(cid) = parse_hex(text.trim()) {
            return Ok(cid);
        }
        tracing::warn!(
            "{} does not hold a CID (32 hex digits); making a new one",
            path.display()
        );
    }
    let cid = new_cid();
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{}\n", to_hex(&cid)))?;
    std::fs::rename(&tmp, &path)?;
    tracing::info!("new sACN CID {} stored in {}", to_hex(&cid), path.display());
    Ok(cid)
}

/// A random version-4 UUID.
pub fn new_cid() -> [u8; 16] {
    let mut cid = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut cid));
    if random.is_err() {
        // No /dev/urandom: mix time and pid; uniqueness per node is what matters.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            ^ (u128::from(std::process::id()) << 64);
        cid = seed.to_be_bytes();
    }
    cid[6] = (cid[6] & 0x0f) | 0x40;
    cid[8] = (cid[8] & 0x3f) | 0x80;
    cid
}

/// 32 lowercase hex digits.
pub fn to_hex(cid: &[u8; 16]) -> String {
    cid.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str) -> Option<[u8; 16]> {
    let text: String = text.chars().filter(|c| *c != '-').collect();
    if text.len() != 32 {
        return None;
    }
    let mut cid = [0u8; 16];
    for (i, byte) in cid.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("rk-cid-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = load_or_create(&dir).expect("create");
        let second = load_or_create(&dir).expect("load");
        assert_eq!(first, second, "the CID is stable across starts");
        assert_eq!(first[6] >> 4, 4, "version 4 UUID");
        assert_eq!(parse_hex(&to_hex(&first)), Some(first));
        std::fs::write(dir.join("sacn-cid"), "garbage").expect("write");
        let third = load_or_create(&dir).expect("replace garbage");
        assert_ne!(third, first, "a broken file is replaced");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
