//! Readiness of clips on a node: missing → downloading (bytes, %) → verified → ready (no I/O).
//!
//! A receiver keeps one [`MediaReport`] and sends it in its heartbeat; the master shows it in
//! `GET /api/nodes/{id}/status` and gathers all of them in `GET /api/media/status`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::id::ClipId;

/// Where one clip stands on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClipState {
    /// Not on the node, not being fetched yet.
    Missing,
    /// Being fetched: `bytes` of `total` are on disk.
    Downloading { bytes: u64, total: u64 },
    /// On disk in full and its BLAKE3 matches its id.
    Verified,
    /// Verified and in the node's current manifest: playback may use it.
    Ready,
    /// The last attempt failed; it is retried.
    Failed { error: String },
}

impl ClipState {
    /// Percent done (0–100), for people.
    pub fn percent(&self) -> f64 {
        match self {
            ClipState::Missing | ClipState::Failed { .. } => 0.0,
            ClipState::Downloading { bytes, total } if *total > 0 => {
                (*bytes as f64 * 100.0 / *total as f64).min(100.0)
            }
            ClipState::Downloading { .. } => 0.0,
            ClipState::Verified | ClipState::Ready => 100.0,
        }
    }

    /// Whether playback may use the clip.
    pub fn is_ready(&self) -> bool {
        matches!(self, ClipState::Ready)
    }

    /// A short word for tables: `missing`, `downloading 42%`, `verified`, `ready`, `failed`.
    pub fn label(&self) -> String {
        match self {
            ClipState::Missing => "missing".into(),
            ClipState::Downloading { .. } => format!("downloading {:.0}%", self.percent()),
            ClipState::Verified => "verified".into(),
            ClipState::Ready => "ready".into(),
            ClipState::Failed { .. } => "failed".into(),
        }
    }
}

/// One clip in a [`MediaReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClipReport {
    pub id: ClipId,
    pub name: String,
    pub size: u64,
    #[serde(flatten)]
    pub state: ClipState,
}

/// A node's media readiness: every clip its manifest names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MediaReport {
    pub clips: Vec<ClipReport>,
    /// `host:port` where this node serves its ready clips to peers (peer-assisted
    /// distribution); none: it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serves: Option<String>,
    /// The SHA-256 fingerprint of the certificate it serves peers with (the master names it
    /// beside the address, so fetchers pin it); none: it serves plaintext (`insecure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serves_fingerprint: Option<String>,
    /// Bytes this node took from the master (verified chunks, or streamed), since it started.
    #[serde(default)]
    pub from_master_bytes: u64,
    /// Bytes of verified chunks this node took from peers, since it started (peer assist).
    #[serde(default)]
    pub from_peers_bytes: u64,
}

impl MediaReport {
    /// Whether every clip is ready (an empty manifest is ready).
    pub fn ready(&self) -> bool {
        self.clips.iter().all(|c| c.state.is_ready())
    }

    /// Bytes on disk and bytes in all, over the manifest.
    pub fn bytes(&self) -> (u64, u64) {
        self.clips.iter().fold((0, 0), |(done, all), c| {
            let have = match &c.state {
                ClipState::Downloading { bytes, .. } => *bytes,
                ClipState::Verified | ClipState::Ready => c.size,
                _ => 0,
            };
            (done + have, all + c.size)
        })
    }

    /// The clips that are not ready, by name.
    pub fn not_ready(&self) -> Vec<&str> {
        self.clips
            .iter()
            .filter(|c| !c.state.is_ready())
            .map(|c| c.name.as_str())
            .collect()
    }

    /// One line for people (node view, logs): `ready · 3 clips, 120.0 MB`, or
    /// `not ready · 1 of 3 clips ready · 40 % of 120.0 MB · b downloading 40%, c missing`.
    pub fn line(&self) -> String {
        let (done, all) = self.bytes();
        let mb = all as f64 / 1e6;
        if self.ready() {
            return format!("ready · {} clips, {mb:.1} MB", self.clips.len());
        }
        let ready = self.clips.iter().filter(|c| c.state.is_ready()).count();
        let pct = if all == 0 {
            0.0
        } else {
            done as f64 * 100.0 / all as f64
        };
        let waiting: Vec<String> = self
            .clips
            .iter()
            .filter(|c| !c.state.is_ready())
            .map(|c| format!("{} {}", c.name, c.state.label()))
            .collect();
        format!(
            "not ready · {ready} of {} clips ready · {pct:.0} % of {mb:.1} MB · {}",
            self.clips.len(),
            waiting.join(", ")
        )
    }

    /// The state of one clip, if the manifest names it.
    pub fn state(&self, id: &ClipId) -> Option<&ClipState> {
        self.clips.iter().find(|c| c.id == *id).map(|c| &c.state)
    }
}

/// For a GO gate: which of `nodes` (node id → its report, `None` when it sent none) do not
/// have `clip` ready. A node without a report counts as not ready.
pub fn nodes_not_ready<'a>(
    clip: &ClipId,
    nodes: impl IntoIterator<Item = (&'a str, Option<&'a MediaReport>)>,
) -> Vec<String> {
    nodes
        .into_iter()
        .filter(|(_, report)| {
            !report
                .and_then(|r| r.state(clip))
                .is_some_and(ClipState::is_ready)
        })
        .map(|(node, _)| node.to_string())
        .collect()
}

/// Counts of clips per state word, for a summary line.
pub fn summary(report: &MediaReport) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for c in &report.clips {
        let word = match c.state {
            ClipState::Missing => "missing",
            ClipState::Downloading { .. } => "downloading",
            ClipState::Verified => "verified",
            ClipState::Ready => "ready",
            ClipState::Failed { .. } => "failed",
        };
        *out.entry(word).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(name: &str, size: u64, state: ClipState) -> ClipReport {
        ClipReport {
            id: ClipId::of(name.as_bytes()),
            name: name.into(),
            size,
            state,
        }
    }

    #[test]
    fn report_sums_bytes_and_names_what_is_not_ready() {
        let report = MediaReport {
            serves: None,
            clips: vec![
                clip("a", 100, ClipState::Ready),
                clip(
                    "b",
                    200,
                    ClipState::Downloading {
                        bytes: 50,
                        total: 200,
                    },
                ),
                clip("c", 300, ClipState::Missing),
            ],
            ..MediaReport::default()
        };
        assert!(!report.ready());
        assert_eq!(report.bytes(), (150, 600));
        assert_eq!(report.not_ready(), vec!["b", "c"]);
        assert_eq!(report.clips[1].state.label(), "downloading 25%");
        assert!(MediaReport::default().ready(), "nothing to play is ready");
        assert_eq!(
            report.line(),
            "not ready · 1 of 3 clips ready · 25 % of 0.0 MB · b downloading 25%, c missing"
        );
        let done = MediaReport {
            serves: None,
            clips: vec![clip("a", 2_000_000, ClipState::Ready)],
            ..MediaReport::default()
        };
        assert_eq!(done.line(), "ready · 1 clips, 2.0 MB");
    }

    #[test]
    fn state_serializes_flat_with_a_state_word() {
        let c = clip(
            "a",
            10,
            ClipState::Downloading {
                bytes: 5,
                total: 10,
            },
        );
        let json = serde_json::to_value(&c).expect("serialize");
        assert_eq!(json["state"], "downloading");
        assert_eq!(json["bytes"], 5);
        assert_eq!(json["name"], "a");
        let back: ClipReport = serde_json::from_value(json).expect("parse");
        assert_eq!(back, c);
    }

    #[test]
    fn gate_lists_nodes_without_the_clip_ready() {
        let a = clip("a", 1, ClipState::Ready);
        let id = a.id;
        let ready = MediaReport {
            serves: None,
            clips: vec![a],
            ..MediaReport::default()
        };
        let busy = MediaReport {
            serves: None,
            clips: vec![clip("a", 1, ClipState::Verified)],
            ..MediaReport::default()
        };
        let nodes = [("n1", Some(&ready)), ("n2", Some(&busy)), ("n3", None)];
        assert_eq!(nodes_not_ready(&id, nodes), vec!["n2", "n3"]);
    }
}
