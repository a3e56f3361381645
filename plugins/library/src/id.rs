//! [`ClipId`]: a clip's name in the store, the BLAKE3 hash of its bytes (no I/O).
//!
//! An id is exactly 64 lowercase hex digits. Anything else (`../etc/passwd`, an uppercase
//! spelling, a prefix) is refused before it comes near a path, so ids are safe to join onto
//! the store's directory.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Hex digits in a clip id.
pub const ID_HEX_LEN: usize = 64;

/// A clip's id: the BLAKE3 hash of its stored bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[derive(schemars::JsonSchema)]
#[schemars(with = "String")]
pub struct ClipId([u8; 32]);

/// Text that is not a clip id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a clip id: an id is {ID_HEX_LEN} lowercase hex digits (the BLAKE3 of the clip; `rockontrol media list` shows them)"
)]
pub struct BadId {
    /// What was given (cut to 80 characters).
    pub text: String,
}

impl ClipId {
    /// The id of `hash`.
    pub fn from_hash(hash: blake3::Hash) -> Self {
        ClipId(*hash.as_bytes())
    }

    /// The id of these bytes.
    pub fn of(bytes: &[u8]) -> Self {
        ClipId::from_hash(blake3::hash(bytes))
    }

    /// The hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 12 hex digits, for people (like a short git hash).
    pub fn short(&self) -> String {
        self.to_string()[..12].to_string()
    }

    /// The strong HTTP entity tag for this clip: the id in quotes.
    pub fn etag(&self) -> String {
        format!("\"{self}\"")
    }
}

impl FromStr for ClipId {
    type Err = BadId;

    fn from_str(text: &str) -> Result<Self, BadId> {
        let bad = || BadId {
            text: text.chars().take(80).collect(),
        };
        if text.len() != ID_HEX_LEN
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(ClipId(out))
    }
}

impl TryFrom<String> for ClipId {
    type Error = BadId;
    fn try_from(text: String) -> Result<Self, BadId> {
        text.parse()
    }
}

impl From<ClipId> for String {
    fn from(id: ClipId) -> String {
        id.to_string()
    }
}

impl fmt::Display for ClipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ClipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClipId({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_blake3_hex_and_round_trips() {
        // BLAKE3 of the empty input, from the BLAKE3 test vectors.
        let empty = ClipId::of(b"");
        assert_eq!(
            empty.to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(empty.to_string().parse::<ClipId>(), Ok(empty));
        assert_eq!(empty.etag(), format!("\"{empty}\""));
        assert_eq!(empty.short(), "af1349b9f5f9");
    }

    #[test]
    fn anything_but_64_lowercase_hex_is_refused() {
        let good = ClipId::of(b"x").to_string();
        for bad in [
            "",
            "../../etc/passwd",
            &good[..63],
            &format!("{good}0"),
            &good.to_uppercase(),
            &format!("{}/", &good[..63]),
            "..%2f..%2fetc%2fpasswd",
        ] {
            assert!(bad.parse::<ClipId>().is_err(), "{bad:?} must be refused");
        }
        let err = "../x"
            .parse::<ClipId>()
            .expect_err("a path is not a clip id")
            .to_string();
        assert!(err.contains("not a clip id"), "{err}");
    }

    #[test]
    fn serde_uses_the_hex_text() {
        let id = ClipId::of(b"abc");
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<ClipId>(&json).expect("parse"), id);
        assert!(serde_json::from_str::<ClipId>("\"../etc\"").is_err());
    }
}
