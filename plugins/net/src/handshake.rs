//! The link handshake (pure, no I/O): a receiver and its master prove to each other that they
//! hold the same control key, and neither ever sends the key.
//!
//! 1. Receiver → `hello` with `auth: {key_id, nonce}`: the [`key_id`] names the key without
//!    revealing it; the nonce is fresh for this connection.
//! 2. Master → `challenge {master_id, nonce, proof}`: its own fresh nonce and
//!    `HMAC-SHA256(key, "master" ‖ client nonce ‖ master nonce ‖ node id ‖ master id)`.
//! 3. The receiver checks that proof before it accepts anything else (welcome, snapshot, show,
//!    commands), then answers `proof {proof}` with the same MAC under the label `"receiver"`.
//! 4. The master checks that in constant time, and only then welcomes the node.
//!
//! Both nonces are in both proofs, so a proof recorded on one connection is worth nothing on
//! another; the side label keeps the master's proof from being sent back as the receiver's.
//! A receiver without a key sends no `auth` and is handled as before (pending adoption).
//!
//! [`ReceiverHandshake`] is the receiver's side as a state machine over decoded messages;
//! [`MasterChallenge`] is the master's.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::protocol::{HelloAuth, ToMaster, ToReceiver};

type HmacSha256 = Hmac<Sha256>;

/// Bytes in a nonce (64 hex digits on the wire).
pub const NONCE_BYTES: usize = 32;

/// Label of the MAC that names a key ([`key_id`]).
const KEY_ID_LABEL: &[u8] = b"rockontrol key id v1";
/// Label that starts every proof's transcript.
const PROOF_LABEL: &[u8] = b"rockontrol link proof v1";

/// A one-time random value of one side of one handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nonce(pub [u8; NONCE_BYTES]);

/// Why a handshake value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("a nonce must be {} hex digits", NONCE_BYTES * 2)]
    BadNonce,
    #[error("a proof must be hex digits")]
    BadHex,
    #[error("the proof does not match")]
    Mismatch,
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
}

impl Nonce {
    /// A fresh nonce from the operating system's random source.
    pub fn random() -> Result<Nonce, ProofError> {
        let mut bytes = [0u8; NONCE_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| ProofError::Random(e.to_string()))?;
        Ok(Nonce(bytes))
    }

    /// Lower-case hex, as on the wire.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses the wire form.
    pub fn from_hex(text: &str) -> Result<Nonce, ProofError> {
        let bytes = unhex(text).map_err(|_| ProofError::BadNonce)?;
        bytes
            .try_into()
            .map(Nonce)
            .map_err(|_| ProofError::BadNonce)
    }
}

/// Which side a proof speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Master,
    Receiver,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Master => b"master",
            Side::Receiver => b"receiver",
        }
    }
}

/// What both proofs of one handshake cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transcript<'a> {
    pub client_nonce: Nonce,
    pub master_nonce: Nonce,
    pub node_id: &'a str,
    pub master_id: &'a str,
}

/// A short public name of a control key: the first 8 bytes of
/// `HMAC-SHA256(key, "rockontrol key id v1")`, in hex. A master with several keys picks by it.
pub fn key_id(key: &str) -> String {
    let mut mac = mac(key);
    mac.update(KEY_ID_LABEL);
    hex(&mac.finalize().into_bytes()[..8])
}

fn mac(key: &str) -> HmacSha256 {
    // HMAC takes a key of any length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
}

/// The MAC over `side`'s transcript, every field length-prefixed (no two transcripts share an
/// encoding).
fn transcript_mac(key: &str, side: Side, t: &Transcript) -> HmacSha256 {
    let mut mac = mac(key);
    for field in [
        PROOF_LABEL,
        side.label(),
        &t.client_nonce.0,
        &t.master_nonce.0,
        t.node_id.as_bytes(),
        t.master_id.as_bytes(),
    ] {
        mac.update(&(field.len() as u32).to_be_bytes());
        mac.update(field);
    }
    mac
}

/// `side`'s proof for transcript `t`, in hex.
pub fn proof(key: &str, side: Side, t: &Transcript) -> String {
    hex(&transcript_mac(key, side, t).finalize().into_bytes())
}

/// Checks `side`'s proof for transcript `t` (in constant time).
pub fn verify(key: &str, side: Side, t: &Transcript, proof_hex: &str) -> Result<(), ProofError> {
    let given = unhex(proof_hex)?;
    transcript_mac(key, side, t)
        .verify_slice(&given)
        .map_err(|_| ProofError::Mismatch)
}

/// Why a receiver gives up on a master during the handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The master's proof is wrong, or it skipped the challenge and sent something else.
    #[error("could not prove it holds our key ({0}): impostor or wrong key")]
    Unproven(String),
    /// The master proved itself, under another id than the configured `master_id`.
    #[error("is master {got:?}, not the configured master_id {expected:?}")]
    WrongMaster { expected: String, got: String },
    /// A keyless receiver was challenged (the master expects a key).
    #[error("asks for a key proof, and this node has no key")]
    NoKey,
    #[error("cannot start a handshake: {0}")]
    Random(ProofError),
}

/// What a receiver does with a message during its handshake.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one step per message of a handshake, once per connection: never stored in bulk"
)]
pub enum Step {
    /// Send this (the receiver's proof).
    Send(ToMaster),
    /// The handshake is done: this welcome is the first message of the link.
    Linked(ToReceiver),
    /// The master refused this node (no proof was needed for that).
    Refused(String),
    /// Nothing to do (an error report, a keep-alive).
    Wait,
}

/// The receiver's side of one handshake.
#[derive(Debug, Clone)]
pub struct ReceiverHandshake {
    key: Option<String>,
    node_id: String,
    expected_master: Option<String>,
    nonce: Nonce,
    /// The master's id, once it proved itself.
    proven: Option<String>,
}

impl ReceiverHandshake {
    /// A handshake for `node_id` holding `key` (none: pending adoption), with `nonce` as its
    /// client nonce; `expected_master`: the `master_id` the node is configured for, if any.
    pub fn new(
        key: Option<String>,
        node_id: &str,
        expected_master: Option<String>,
        nonce: Nonce,
    ) -> Self {
        ReceiverHandshake {
            key,
            node_id: node_id.to_string(),
            expected_master,
            nonce,
            proven: None,
        }
    }

    /// [`ReceiverHandshake::new`] with a fresh random nonce.
    pub fn start(
        key: Option<String>,
        node_id: &str,
        expected_master: Option<String>,
    ) -> Result<Self, HandshakeError> {
        let nonce = Nonce::random().map_err(HandshakeError::Random)?;
        Ok(Self::new(key, node_id, expected_master, nonce))
    }

    /// What the hello carries: a key id and this handshake's nonce (none without a key).
    pub fn hello_auth(&self) -> Option<HelloAuth> {
        self.key.as_ref().map(|key| HelloAuth {
            key_id: key_id(key),
            nonce: self.nonce.to_hex(),
        })
    }

    /// The master's id once it proved itself.
    pub fn proven_master(&self) -> Option<&str> {
        self.proven.as_deref()
    }

    fn check_id(&self, master_id: &str) -> Result<(), HandshakeError> {
        match &self.expected_master {
            Some(expected) if expected != master_id => Err(HandshakeError::WrongMaster {
                expected: expected.clone(),
                got: master_id.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// The next message from the master, decoded. Anything but a valid challenge (then a
    /// welcome) ends the handshake: nothing an unproven master sends is used.
    pub fn on_message(&mut self, msg: ToReceiver) -> Result<Step, HandshakeError> {
        let unproven = |what: &str| Err(HandshakeError::Unproven(what.to_string()));
        match (&self.key, &self.proven, msg) {
            (_, _, ToReceiver::Refused { reason }) => Ok(Step::Refused(reason)),
            (_, _, ToReceiver::Error { .. }) => Ok(Step::Wait),
            // Keyless: nothing to prove either way; only the configured id is checked.
            (None, _, ToReceiver::Welcome(w)) => {
                self.check_id(&w.master_id)?;
                Ok(Step::Linked(ToReceiver::Welcome(w)))
            }
            (None, _, ToReceiver::Challenge { .. }) => Err(HandshakeError::NoKey),
            (
                Some(key),
                None,
                ToReceiver::Challenge {
                    master_id,
                    nonce,
                    proof: master_proof,
                },
            ) => {
                let master_nonce =
                    Nonce::from_hex(&nonce).map_err(|e| HandshakeError::Unproven(e.to_string()))?;
                let t = Transcript {
                    client_nonce: self.nonce,
                    master_nonce,
                    node_id: &self.node_id,
                    master_id: &master_id,
                };
                verify(key, Side::Master, &t, &master_proof)
                    .map_err(|e| HandshakeError::Unproven(e.to_string()))?;
                self.check_id(&master_id)?;
                let mine = proof(key, Side::Receiver, &t);
                self.proven = Some(master_id);
                Ok(Step::Send(ToMaster::Proof { proof: mine }))
            }
            (Some(_), Some(_), ToReceiver::Challenge { .. }) => unproven("a second challenge"),
            (Some(_), Some(proven), ToReceiver::Welcome(w)) => {
                if w.master_id == *proven {
                    Ok(Step::Linked(ToReceiver::Welcome(w)))
                } else {
                    unproven("a welcome under another id than its proof")
                }
            }
            (Some(_), None, ToReceiver::Welcome(_)) => unproven("a welcome without a challenge"),
            (_, _, other) => unproven(&format!("{} before its welcome", kind(&other))),
        }
    }
}

/// A message's name, for reasons.
fn kind(msg: &ToReceiver) -> &'static str {
    match msg {
        ToReceiver::Welcome(_) => "a welcome",
        ToReceiver::Challenge { .. } => "a challenge",
        ToReceiver::Refused { .. } => "a refusal",
        ToReceiver::Error { .. } => "an error",
        ToReceiver::Snapshot(_) => "a snapshot",
        ToReceiver::Delta(_) => "a delta",
        ToReceiver::Command { .. } => "a command",
        ToReceiver::Sync { .. } => "a sync",
        ToReceiver::ClockPong(_) => "a clock pong",
    }
}

/// The master's side of one handshake: the challenge it sent, and the check of the answer.
#[derive(Debug, Clone)]
pub struct MasterChallenge {
    key: String,
    client_nonce: Nonce,
    master_nonce: Nonce,
    node_id: String,
    master_id: String,
}

impl MasterChallenge {
    /// The challenge for `node_id`, whose hello carried `client_nonce`, under control `key`.
    pub fn new(
        key: &str,
        client_nonce: Nonce,
        master_nonce: Nonce,
        node_id: &str,
        master_id: &str,
    ) -> Self {
        MasterChallenge {
            key: key.to_string(),
            client_nonce,
            master_nonce,
            node_id: node_id.to_string(),
            master_id: master_id.to_string(),
        }
    }

    fn transcript(&self) -> Transcript<'_> {
        Transcript {
            client_nonce: self.client_nonce,
            master_nonce: self.master_nonce,
            node_id: &self.node_id,
            master_id: &self.master_id,
        }
    }

    /// The `challenge` message: the master's nonce and its proof.
    pub fn message(&self) -> ToReceiver {
        ToReceiver::Challenge {
            master_id: self.master_id.clone(),
            nonce: self.master_nonce.to_hex(),
            proof: proof(&self.key, Side::Master, &self.transcript()),
        }
    }

    /// Checks the receiver's answer (constant time).
    pub fn check(&self, receiver_proof: &str) -> Result<(), ProofError> {
        verify(
            &self.key,
            Side::Receiver,
            &self.transcript(),
            receiver_proof,
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Result<Vec<u8>, ProofError> {
    if !text.len().is_multiple_of(2) || text.len() > 256 {
        return Err(ProofError::BadHex);
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or(ProofError::BadHex)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Welcome;

    const KEY: &str = "right-key-0001";
    const CLIENT: Nonce = Nonce([1; NONCE_BYTES]);
    const MASTER: Nonce = Nonce([2; NONCE_BYTES]);

    fn transcript() -> Transcript<'static> {
        Transcript {
            client_nonce: CLIENT,
            master_nonce: MASTER,
            node_id: "node-01",
            master_id: "master-01",
        }
    }

    fn welcome(master_id: &str) -> ToReceiver {
        ToReceiver::Welcome(Welcome {
            master_id: master_id.into(),
            version: "0".into(),
            protocol_hash: "0".into(),
            assigned_universes: vec![1],
            show_hash: None,
            heartbeat_ms: 1000,
            reconnect_ms: 5000,
        })
    }

    #[test]
    fn the_right_key_proves_and_a_wrong_one_does_not() {
        let t = transcript();
        let p = proof(KEY, Side::Master, &t);
        assert_eq!(p.len(), 64, "HMAC-SHA256 in hex: {p}");
        assert_eq!(
            verify(KEY, Side::Master, &t, &p),
            Ok(()),
            "right key passes"
        );
        assert_eq!(
            verify("wrong-key-0001", Side::Master, &t, &p),
            Err(ProofError::Mismatch),
            "a proof made with the right key does not pass under another"
        );
        assert_eq!(
            verify(
                KEY,
                Side::Master,
                &t,
                &proof("wrong-key-0001", Side::Master, &t)
            ),
            Err(ProofError::Mismatch),
            "a proof made with another key does not pass"
        );
        assert_eq!(
            verify(KEY, Side::Receiver, &t, &p),
            Err(ProofError::Mismatch),
            "the master's proof is not the receiver's"
        );
        assert!(!p.contains(&hex(KEY.as_bytes())) && !p.contains(KEY));
        assert_eq!(
            verify(KEY, Side::Master, &t, "zz"),
            Err(ProofError::BadHex),
            "garbage is an error, not a panic"
        );
        assert_eq!(verify(KEY, Side::Master, &t, ""), Err(ProofError::Mismatch));
    }

    #[test]
    fn a_replayed_proof_fails_for_other_nonces_or_ids() {
        let t = transcript();
        let recorded = proof(KEY, Side::Receiver, &t);
        let other_master_nonce = Transcript {
            master_nonce: Nonce([3; NONCE_BYTES]),
            ..t
        };
        let other_client_nonce = Transcript {
            client_nonce: Nonce([4; NONCE_BYTES]),
            ..t
        };
        let other_node = Transcript {
            node_id: "node-02",
            ..t
        };
        let other_master = Transcript {
            master_id: "master-02",
            ..t
        };
        // Length prefixes: moving a character from one id to the other is another transcript.
        let shifted = Transcript {
            node_id: "node-01m",
            master_id: "aster-01",
            ..t
        };
        for (what, other) in [
            ("another master nonce", other_master_nonce),
            ("another client nonce", other_client_nonce),
            ("another node id", other_node),
            ("another master id", other_master),
            ("ids shifted", shifted),
        ] {
            assert_eq!(
                verify(KEY, Side::Receiver, &other, &recorded),
                Err(ProofError::Mismatch),
                "a proof replayed for {what} fails"
            );
        }
    }

    #[test]
    fn key_ids_name_keys_without_revealing_them() {
        let id = key_id(KEY);
        assert_eq!(id.len(), 16);
        assert_eq!(id, key_id(KEY), "stable");
        assert_ne!(id, key_id("right-key-0002"));
        assert!(!id.contains(KEY));
        assert_eq!(Nonce::from_hex(&MASTER.to_hex()), Ok(MASTER));
        assert_eq!(Nonce::from_hex("0102"), Err(ProofError::BadNonce));
        assert_ne!(
            Nonce::random().expect("random"),
            Nonce::random().expect("random")
        );
    }

    #[test]
    fn a_receiver_and_a_master_with_one_key_link() {
        let mut rx = ReceiverHandshake::new(Some(KEY.into()), "node-01", None, CLIENT);
        let auth = rx.hello_auth().expect("a keyed hello carries auth");
        assert_eq!(auth.key_id, key_id(KEY));
        assert!(!auth.key_id.contains(KEY) && !auth.nonce.contains(KEY));
        let master = MasterChallenge::new(
            KEY,
            Nonce::from_hex(&auth.nonce).expect("nonce"),
            MASTER,
            "node-01",
            "master-01",
        );
        let Ok(Step::Send(ToMaster::Proof { proof })) = rx.on_message(master.message()) else {
            panic!("the receiver answers a right challenge with its proof");
        };
        assert_eq!(rx.proven_master(), Some("master-01"));
        assert_eq!(master.check(&proof), Ok(()), "the master accepts it");
        let other = MasterChallenge::new(KEY, CLIENT, Nonce([9; NONCE_BYTES]), "node-01", "m");
        assert_eq!(
            other.check(&proof),
            Err(ProofError::Mismatch),
            "the proof does not answer another challenge"
        );
        assert_eq!(
            rx.on_message(welcome("master-01")),
            Ok(Step::Linked(welcome("master-01")))
        );
    }

    #[test]
    fn nothing_from_an_unproven_master_is_accepted() {
        let start = || ReceiverHandshake::new(Some(KEY.into()), "node-01", None, CLIENT);
        // A master with another key.
        let impostor = MasterChallenge::new("wrong-key-0001", CLIENT, MASTER, "node-01", "m");
        let e = start()
            .on_message(impostor.message())
            .expect_err("wrong key");
        assert!(
            e.to_string()
                .contains("could not prove it holds our key (the proof does not match)"),
            "{e}"
        );
        // A master that skips the challenge.
        for msg in [
            welcome("master-01"),
            ToReceiver::Command {
                command_id: "cmd-1".into(),
                attempt: 1,
                command: crate::protocol::NodeCommand::Blackout { on: true },
            },
            ToReceiver::Sync {
                tick: 1,
                rate: 44,
                timecode: String::new(),
                bpm: None,
            },
        ] {
            let e = start().on_message(msg.clone()).expect_err("unproven");
            assert!(
                matches!(e, HandshakeError::Unproven(_)),
                "{msg:?} refused: {e}"
            );
        }
        // A welcome under another id than the one proven.
        let mut rx = start();
        let right = MasterChallenge::new(KEY, CLIENT, MASTER, "node-01", "master-01");
        assert!(matches!(rx.on_message(right.message()), Ok(Step::Send(_))));
        assert!(rx.on_message(welcome("master-02")).is_err());
        // A refusal is passed on (it is no proof of anything, and asks for nothing).
        assert_eq!(
            start().on_message(ToReceiver::Refused {
                reason: "no".into()
            }),
            Ok(Step::Refused("no".into()))
        );
    }

    #[test]
    fn the_configured_master_id_is_checked() {
        let mut rx = ReceiverHandshake::new(
            Some(KEY.into()),
            "node-01",
            Some("master-01".into()),
            CLIENT,
        );
        let other = MasterChallenge::new(KEY, CLIENT, MASTER, "node-01", "master-02");
        assert_eq!(
            rx.on_message(other.message()),
            Err(HandshakeError::WrongMaster {
                expected: "master-01".into(),
                got: "master-02".into()
            })
        );
        let mut keyless = ReceiverHandshake::new(None, "node-05", Some("master-01".into()), CLIENT);
        assert_eq!(keyless.hello_auth(), None, "no key, no auth");
        assert!(keyless.on_message(welcome("master-02")).is_err());
        assert!(matches!(
            keyless.on_message(welcome("master-01")),
            Ok(Step::Linked(_))
        ));
        assert_eq!(
            keyless.on_message(other.message()),
            Err(HandshakeError::NoKey)
        );
    }
}
