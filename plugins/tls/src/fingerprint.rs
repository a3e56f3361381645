//! A certificate's SHA-256 fingerprint, shown as colon-separated upper-case hex (as
//! `openssl x509 -fingerprint -sha256` prints it).

use sha2::{Digest, Sha256};

/// SHA-256 of a certificate's DER bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate in DER.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A fingerprint that is not 32 bytes of hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad certificate fingerprint {text:?}: {reason} (expected 64 hex digits, colons allowed, e.g. as the master prints it at start)"
)]
pub struct BadFingerprint {
    pub text: String,
    pub reason: String,
}

impl std::str::FromStr for Fingerprint {
    type Err = BadFingerprint;

    /// Accepts `AB:CD:…`, `abcd…` and an optional `sha256:` / `SHA256:` prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| BadFingerprint {
            text: s.to_string(),
            reason,
        };
        let trimmed = s.trim();
        let body = trimmed
            .strip_prefix("sha256:")
            .or_else(|| trimmed.strip_prefix("SHA256:"))
            .unwrap_or(trimmed);
        let hex: String = body.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 {
            return Err(bad(format!("{} hex digits", hex.len())));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = &hex[2 * i..2 * i + 2];
            *byte =
                u8::from_str_radix(pair, 16).map_err(|_| bad(format!("{pair:?} is not hex")))?;
        }
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses_back_in_every_accepted_spelling() {
        let f = Fingerprint::of_der(b"certificate");
        let shown = f.to_string();
        assert_eq!(shown.len(), 32 * 3 - 1);
        assert!(
            shown
                .chars()
                .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        assert_eq!(shown.parse::<Fingerprint>(), Ok(f));
        let lower = shown.replace(':', "").to_lowercase();
        assert_eq!(lower.parse::<Fingerprint>(), Ok(f));
        assert_eq!(format!("sha256:{lower}").parse::<Fingerprint>(), Ok(f));
    }

    #[test]
    fn bad_fingerprints_say_what_is_wrong() {
        let e = "AB:CD".parse::<Fingerprint>().expect_err("short");
        assert!(e.to_string().contains("4 hex digits"), "{e}");
        let e = "zz".repeat(32).parse::<Fingerprint>().expect_err("not hex");
        assert!(e.to_string().contains("\"zz\" is not hex"), "{e}");
    }
}
