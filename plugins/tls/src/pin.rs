//! Whether to trust the certificate a master presents: pure logic, no I/O.
//!
//! A receiver pins the master's certificate fingerprint from its config
//! (`master_fingerprint`), or on first use (TOFU: the first master it links to, kept in its
//! state directory). A configured pin wins over a stored one. Later, a master presenting
//! another certificate is refused with both fingerprints and what to do.

use std::path::PathBuf;

use crate::Fingerprint;

/// Where a pin came from (named in a refusal, with what to do about it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// `master_fingerprint` in the node's config.
    Config,
    /// Trusted on first use and kept in this file.
    File(PathBuf),
    /// Given on the command line (`--fingerprint`).
    Option,
    /// Read from the master's own state directory (tools on the master's machine).
    MasterState(PathBuf),
    /// Trusted on first use in this run, kept nowhere (a node without a state directory), or
    /// the certificate of the connection at hand.
    Session,
    /// A peer node's certificate, as the master's media manifest names it (the peer reported
    /// it over its own pinned link to the master).
    Peer,
}

/// A pinned fingerprint and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub fingerprint: Fingerprint,
    pub source: PinSource,
}

/// The pin in force: the configured one, else the stored one, else none (first use).
pub fn choose(
    configured: Option<Fingerprint>,
    stored: Option<(Fingerprint, PathBuf)>,
) -> Option<Pin> {
    match (configured, stored) {
        (Some(fingerprint), _) => Some(Pin {
            fingerprint,
            source: PinSource::Config,
        }),
        (None, Some((fingerprint, file))) => Some(Pin {
            fingerprint,
            source: PinSource::File(file),
        }),
        (None, None) => None,
    }
}

/// What to do with a presented certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It is the pinned one.
    Trusted,
    /// Nothing is pinned: trust it and keep its fingerprint (TOFU).
    FirstUse(Fingerprint),
    /// Another certificate than the pinned one: refuse.
    Mismatch(Mismatch),
}

/// Decides on `presented` against `pin`.
pub fn check(pin: Option<&Pin>, presented: Fingerprint) -> Verdict {
    match pin {
        None => Verdict::FirstUse(presented),
        Some(p) if p.fingerprint == presented => Verdict::Trusted,
        Some(p) => Verdict::Mismatch(Mismatch {
            expected: p.fingerprint,
            presented,
            source: p.source.clone(),
        }),
    }
}

/// A master presenting another certificate than the pinned one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub expected: Fingerprint,
    pub presented: Fingerprint,
    pub source: PinSource,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = match self.source {
            PinSource::Peer => "the peer",
            _ => "the master",
        };
        write!(
            f,
            "certificate mismatch: {who} presents SHA-256 {} but this node pins {} ",
            self.presented, self.expected
        )?;
        match &self.source {
            PinSource::Peer => write!(
                f,
                "(the peer's certificate as the master's manifest names it); another host answers at the peer's address, or the peer's certificate changed since it last reported: nothing is sent to it, its chunks come from elsewhere"
            ),
            PinSource::Config => write!(
                f,
                "(master_fingerprint in the config); if the master's certificate was replaced on purpose, set master_fingerprint to the new fingerprint the master prints at start"
            ),
            PinSource::File(path) => write!(
                f,
                "(trusted on first use, kept in {}); if the master's certificate was replaced on purpose, remove that file (the next master is trusted on first use) or set master_fingerprint in the config",
                path.display()
            ),
            PinSource::Option => write!(
                f,
                "(--fingerprint); give the fingerprint the master prints at start"
            ),
            PinSource::Session => write!(
                f,
                "(trusted on first use in this run); restart the node to trust the new master, or set master_fingerprint"
            ),
            PinSource::MasterState(path) => write!(
                f,
                "(the master's certificate in {}); is another master listening there? pass --fingerprint",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Mismatch {}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(b: u8) -> Fingerprint {
        Fingerprint([b; 32])
    }

    #[test]
    fn the_configured_pin_wins_over_the_stored_one() {
        let file = PathBuf::from("/state/master-fingerprint");
        assert_eq!(
            choose(Some(fp(1)), Some((fp(2), file.clone()))),
            Some(Pin {
                fingerprint: fp(1),
                source: PinSource::Config
            })
        );
        assert_eq!(
            choose(None, Some((fp(2), file.clone()))),
            Some(Pin {
                fingerprint: fp(2),
                source: PinSource::File(file)
            })
        );
        assert_eq!(choose(None, None), None);
    }

    #[test]
    fn nothing_pinned_is_first_use_the_pinned_one_is_trusted_another_is_refused() {
        assert_eq!(check(None, fp(7)), Verdict::FirstUse(fp(7)));
        let pin = Pin {
            fingerprint: fp(7),
            source: PinSource::Config,
        };
        assert_eq!(check(Some(&pin), fp(7)), Verdict::Trusted);
        let Verdict::Mismatch(m) = check(Some(&pin), fp(8)) else {
            panic!("another certificate must be refused");
        };
        assert_eq!((m.expected, m.presented), (fp(7), fp(8)));
    }

    #[test]
    fn a_refusal_names_both_fingerprints_and_what_to_do() {
        let file = PathBuf::from("/state/master-fingerprint");
        let pin = Pin {
            fingerprint: fp(0xAA),
            source: PinSource::File(file),
        };
        let Verdict::Mismatch(m) = check(Some(&pin), fp(0xBB)) else {
            panic!("mismatch");
        };
        let text = m.to_string();
        assert!(text.contains(&fp(0xAA).to_string()), "{text}");
        assert!(text.contains(&fp(0xBB).to_string()), "{text}");
        assert!(text.contains("remove that file"), "{text}");
        assert!(text.contains("/state/master-fingerprint"), "{text}");
        let pin = Pin {
            fingerprint: fp(0xAA),
            source: PinSource::Config,
        };
        let Verdict::Mismatch(m) = check(Some(&pin), fp(0xBB)) else {
            panic!("mismatch");
        };
        assert!(m.to_string().contains("set master_fingerprint"), "{m}");
    }
}
