//! Which clips a node gets: the manifest rule (no I/O).
//!
//! One pure function, [`manifest_for`], fed with what the node plays. Until media layers
//! exist, a node with the media capability plays every clip the show references and any
//! other node none ([`NodePlays::from_capability`]); media layers feed [`NodePlays::Named`]
//! with the clip names of the layers on that node's outputs.

use std::collections::BTreeSet;

use rockontrol_show::Clip;
use serde::{Deserialize, Serialize};

use crate::id::ClipId;

/// What a node plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePlays {
    /// No media (a DMX-only node).
    Nothing,
    /// Every clip the show references.
    AllShowClips,
    /// The clips of these names (from the media layers on the node's outputs).
    Named(BTreeSet<String>),
}

impl NodePlays {
    /// The rule before media layers: a media-capable node plays every show clip.
    pub fn from_capability(media_capable: bool) -> Self {
        if media_capable {
            NodePlays::AllShowClips
        } else {
            NodePlays::Nothing
        }
    }
}

/// One clip a node must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub id: ClipId,
    /// The show's name for it.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Peers (`host:port`) that hold it ready and serve it: the node may take chunks from
    /// them instead of the master ([`crate::chunks`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

/// The clips one node must hold, and the ones it should but the library lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub node_id: String,
    /// Sorted by name; one entry per id (two names for one clip: the first name).
    pub clips: Vec<ManifestEntry>,
    /// Clip names the node plays that the master's library does not have (or whose id in
    /// the show is malformed): they cannot be sent until someone runs `media add`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
    /// The certificate fingerprint (SHA-256, hex with colons) of each peer the entries name
    /// as a source, as the peer reported it over its own pinned link. A fetcher over TLS
    /// takes chunks only from peers named here, and pins their certificates: the key it sends
    /// goes to no host that merely answers at a peer's address.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub peer_certificates: std::collections::BTreeMap<String, String>,
}

impl Manifest {
    /// Bytes in all.
    pub fn total_bytes(&self) -> u64 {
        self.clips.iter().map(|c| c.size).sum()
    }
}

/// The manifest of `node_id`, which plays `plays`, from the show's `clips`; `size_of` says
/// how large a clip in the library is (`None`: not in the library).
pub fn manifest_for(
    node_id: &str,
    clips: &[Clip],
    plays: &NodePlays,
    size_of: impl Fn(&ClipId) -> Option<u64>,
) -> Manifest {
    let wanted = |clip: &Clip| match plays {
        NodePlays::Nothing => false,
        NodePlays::AllShowClips => true,
        NodePlays::Named(names) => names.contains(&clip.name),
    };
    let mut chosen: Vec<&Clip> = clips.iter().filter(|c| wanted(c)).collect();
    chosen.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen = BTreeSet::new();
    let mut manifest = Manifest {
        node_id: node_id.to_string(),
        ..Manifest::default()
    };
    for clip in chosen {
        match clip
            .id
            .parse::<ClipId>()
            .ok()
            .and_then(|id| Some((id, size_of(&id)?)))
        {
            Some((id, size)) => {
                if seen.insert(id) {
                    manifest.clips.push(ManifestEntry {
                        id,
                        name: clip.name.clone(),
                        size,
                        sources: Vec::new(),
                    });
                }
            }
            None => manifest.unavailable.push(clip.name.clone()),
        }
    }
    if let NodePlays::Named(names) = plays {
        for name in names {
            if !clips.iter().any(|c| &c.name == name) {
                manifest.unavailable.push(name.clone());
            }
        }
        manifest.unavailable.sort();
    }
    manifest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(name: &str, seed: &str) -> Clip {
        Clip {
            name: name.into(),
            id: ClipId::of(seed.as_bytes()).to_string(),
        }
    }

    #[test]
    fn each_node_gets_exactly_what_it_plays() {
        let clips = vec![clip("b", "2"), clip("a", "1"), clip("c", "3")];
        let sizes = |_: &ClipId| Some(10);
        let dmx = manifest_for("dmx", &clips, &NodePlays::from_capability(false), sizes);
        assert!(
            dmx.clips.is_empty(),
            "a DMX-only node gets no clips: {dmx:?}"
        );
        let all = manifest_for("m", &clips, &NodePlays::from_capability(true), sizes);
        let names: Vec<_> = all.clips.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"], "every show clip, sorted by name");
        assert_eq!(all.total_bytes(), 30);
        let named = NodePlays::Named(["c".to_string(), "a".to_string()].into());
        let some = manifest_for("l", &clips, &named, sizes);
        let names: Vec<_> = some.clips.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "c"], "only the clips its layers name");
    }

    #[test]
    fn clips_missing_from_the_library_or_the_show_are_listed_apart() {
        let clips = vec![clip("a", "1"), clip("gone", "2")];
        let have = ClipId::of(b"1");
        let sizes = |id: &ClipId| (*id == have).then_some(7);
        let named = NodePlays::Named(["a".into(), "gone".into(), "nowhere".into()].into());
        let m = manifest_for("n", &clips, &named, sizes);
        assert_eq!(m.clips.len(), 1);
        assert_eq!(m.clips[0].size, 7);
        assert_eq!(m.unavailable, ["gone", "nowhere"]);
    }

    #[test]
    fn one_clip_under_two_names_is_sent_once() {
        let clips = vec![clip("x", "1"), clip("y", "1")];
        let m = manifest_for("n", &clips, &NodePlays::AllShowClips, |_| Some(1));
        assert_eq!(m.clips.len(), 1);
        assert_eq!(m.clips[0].name, "x");
    }
}
