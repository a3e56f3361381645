//! Receiver-side merge of several sACN sources per universe.
//!
//! E1.31 leaves merging to the receiver but fixes its inputs: a source is identified by its CID
//! (§5.6), only the highest priority present on a universe counts (§6.2.3), a source is lost after
//! 2.5 s without packets (§6.7.1, Appendix A) or at once when it sets Stream_Terminated (§6.2.6),
//! and out-of-order packets are discarded (§6.7.2). Sources that tie on the highest priority are
//! merged highest-takes-precedence, slot by slot — what OLA and most consoles do.
//!
//! The merger reads no clock: every call takes `now`. Feed it packets from the receive path and
//! ask for [`Merger::merged`] when a frame is wanted.
//!
//! Universe synchronization is not its business: data is merged as it arrives. A receiver that
//! honours sync packets asks for the merged frame when the sync packet for the universe's sync
//! address comes in (or at once when `sync_address` is 0).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{DataPacket, MAX_SLOTS, NETWORK_DATA_LOSS_TIMEOUT, SequenceTracker};

/// Settings of a [`Merger`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MergeConfig {
    /// A source is dropped once this long has passed since its last accepted packet.
    /// E1.31 fixes it at 2.5 s ([`NETWORK_DATA_LOSS_TIMEOUT`]).
    pub loss_timeout: Duration,
    /// Merge packets with the preview bit set. Off by default: preview data is meant for
    /// visualisers, not for live output (§6.2.6).
    pub accept_preview: bool,
    /// Sources kept per universe; a further source is refused until one is lost. Bounds the
    /// memory a flood of forged CIDs can take.
    pub max_sources_per_universe: usize,
}

impl Default for MergeConfig {
    fn default() -> Self {
        Self {
            loss_timeout: NETWORK_DATA_LOSS_TIMEOUT,
            accept_preview: false,
            max_sources_per_universe: 32,
        }
    }
}

/// What [`Merger::receive`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reception {
    /// The packet's slots now count in the merge.
    Accepted,
    /// Discarded by the §6.7.2 sequence rule (a duplicate or a late packet).
    OutOfSequence,
    /// A preview packet, ignored because [`MergeConfig::accept_preview`] is off.
    Preview,
    /// Stream_Terminated was set: the source was removed from the universe and its slots ignored.
    Terminated,
    /// A start code other than `0x00` (e.g. `0xDD` per-address priority): not dimmer data.
    AlternateStartCode,
    /// The universe already holds [`MergeConfig::max_sources_per_universe`] sources.
    TooManySources,
}

/// A source as the merger sees it, for status displays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceInfo<'m> {
    /// The source's CID.
    pub cid: [u8; 16],
    /// Name from its latest packet.
    pub name: &'m str,
    /// Priority from its latest packet.
    pub priority: u8,
    /// Slots in its latest packet.
    pub slot_count: usize,
    /// Accepted packets per second over the last completed window of at least one second;
    /// `None` until the source has been seen for a second.
    pub packet_rate: Option<f32>,
    /// When its latest packet was accepted.
    pub last_seen: Instant,
}

/// The merged state of one universe, borrowed from the [`Merger`].
#[derive(Debug, Clone, Copy)]
pub struct MergedUniverse<'m> {
    universe: u16,
    state: &'m UniverseState,
}

impl<'m> MergedUniverse<'m> {
    /// The universe number.
    #[must_use]
    pub fn universe(&self) -> u16 {
        self.universe
    }

    /// All 512 merged slots; slots past [`MergedUniverse::slot_count`] are 0.
    #[must_use]
    pub fn slots(&self) -> &'m [u8; MAX_SLOTS] {
        &self.state.merged
    }

    /// The largest slot count among the winning sources.
    #[must_use]
    pub fn slot_count(&self) -> usize {
        self.state.merged_count
    }

    /// The priority that won.
    #[must_use]
    pub fn priority(&self) -> u8 {
        self.state.winning_priority
    }

    /// Every live source of the universe, winners and losers, in order of arrival.
    pub fn sources(&self) -> impl Iterator<Item = SourceInfo<'m>> + use<'m> {
        self.state.sources.iter().map(Source::info)
    }
}

/// Per-universe, per-source merge of sACN data packets (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Merger {
    config: MergeConfig,
    universes: BTreeMap<u16, UniverseState>,
}

#[derive(Debug, Clone)]
struct UniverseState {
    sources: Vec<Source>,
    merged: [u8; MAX_SLOTS],
    merged_count: usize,
    winning_priority: u8,
}

impl Default for UniverseState {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            merged: [0; MAX_SLOTS],
            merged_count: 0,
            winning_priority: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Source {
    cid: [u8; 16],
    name: String,
    priority: u8,
    slots: [u8; MAX_SLOTS],
    slot_count: usize,
    sequence: SequenceTracker,
    last_seen: Instant,
    rate_window_start: Instant,
    rate_window_packets: u32,
    packet_rate: Option<f32>,
}

impl Source {
    fn new(cid: [u8; 16], now: Instant) -> Self {
        Self {
            cid,
            name: String::new(),
            priority: 0,
            slots: [0; MAX_SLOTS],
            slot_count: 0,
            sequence: SequenceTracker::new(),
            last_seen: now,
            rate_window_start: now,
            rate_window_packets: 0,
            packet_rate: None,
        }
    }

    fn update(&mut self, packet: &DataPacket<'_>, now: Instant) {
        // Names rarely change; comparing first avoids an allocation per packet.
        if self.name != packet.source_name {
            packet.source_name.as_ref().clone_into(&mut self.name);
        }
        self.priority = packet.priority;
        // Decoded packets never exceed 512 slots, but a hand-built one might: take what fits.
        let count = packet.slots.len().min(MAX_SLOTS);
        self.slots[..count].copy_from_slice(&packet.slots[..count]);
        self.slots[count..].fill(0);
        self.slot_count = count;
        self.last_seen = now;
        // The packet that opens a window is not counted: N intervals over the window's length.
        let elapsed = now.saturating_duration_since(self.rate_window_start);
        if elapsed.is_zero() && self.rate_window_packets == 0 {
            return;
        }
        self.rate_window_packets += 1;
        if elapsed >= Duration::from_secs(1) {
            self.packet_rate = Some(self.rate_window_packets as f32 / elapsed.as_secs_f32());
            self.rate_window_start = now;
            self.rate_window_packets = 0;
        }
    }

    fn info(&self) -> SourceInfo<'_> {
        SourceInfo {
            cid: self.cid,
            name: &self.name,
            priority: self.priority,
            slot_count: self.slot_count,
            packet_rate: self.packet_rate,
            last_seen: self.last_seen,
        }
    }
}

impl Merger {
    /// An empty merger.
    #[must_use]
    pub fn new(config: MergeConfig) -> Self {
        Self {
            config,
            universes: BTreeMap::new(),
        }
    }

    /// The settings it was made with.
    #[must_use]
    pub fn config(&self) -> &MergeConfig {
        &self.config
    }

    /// Takes one decoded data packet received at `now`.
    pub fn receive(&mut self, packet: &DataPacket<'_>, now: Instant) -> Reception {
        if packet.options.preview && !self.config.accept_preview {
            return Reception::Preview;
        }
        if packet.options.stream_terminated {
            // Not sequence-checked: termination only ever removes, so a stale one is harmless.
            if let Some(state) = self.universes.get_mut(&packet.universe) {
                state.sources.retain(|source| source.cid != packet.cid);
                if state.sources.is_empty() {
                    self.universes.remove(&packet.universe);
                }
            }
            return Reception::Terminated;
        }
        if packet.start_code != 0 {
            return Reception::AlternateStartCode;
        }
        let timeout = self.config.loss_timeout;
        let max_sources = self.config.max_sources_per_universe;
        let state = self.universes.entry(packet.universe).or_default();
        let index = match state
            .sources
            .iter()
            .position(|source| source.cid == packet.cid)
        {
            Some(index) => index,
            None => {
                // Make room from lost sources before refusing a new one.
                state
                    .sources
                    .retain(|source| now.saturating_duration_since(source.last_seen) < timeout);
                if state.sources.len() >= max_sources {
                    return Reception::TooManySources;
                }
                state.sources.push(Source::new(packet.cid, now));
                state.sources.len() - 1
            }
        };
        let Some(source) = state.sources.get_mut(index) else {
            return Reception::TooManySources;
        };
        // A source that went silent past the timeout starts a new stream: forget its sequence.
        if now.saturating_duration_since(source.last_seen) >= timeout {
            source.sequence.reset();
        }
        if !source.sequence.accept(packet.sequence) {
            return Reception::OutOfSequence;
        }
        source.update(packet, now);
        Reception::Accepted
    }

    /// Drops every source lost at `now` (and universes left without sources). Returns how many
    /// sources were dropped. [`Merger::merged`] does this for its own universe anyway; call this
    /// to keep [`Merger::universes`] and the source lists current.
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.config.loss_timeout;
        let mut dropped = 0;
        self.universes.retain(|_, state| {
            let before = state.sources.len();
            state
                .sources
                .retain(|source| now.saturating_duration_since(source.last_seen) < timeout);
            dropped += before - state.sources.len();
            !state.sources.is_empty()
        });
        dropped
    }

    /// Merges `universe` as of `now`: the highest priority among live sources wins, sources tied
    /// on it are combined highest-takes-precedence.
    ///
    /// Returns `None` when the universe has no live source — the caller decides whether to hold
    /// the last look (what OLA does) or to release the output.
    pub fn merged(&mut self, universe: u16, now: Instant) -> Option<MergedUniverse<'_>> {
        let timeout = self.config.loss_timeout;
        let live = {
            let state = self.universes.get_mut(&universe)?;
            state
                .sources
                .retain(|source| now.saturating_duration_since(source.last_seen) < timeout);
            !state.sources.is_empty()
        };
        if !live {
            self.universes.remove(&universe);
            return None;
        }
        let state = self.universes.get_mut(&universe)?;
        let top = state
            .sources
            .iter()
            .map(|source| source.priority)
            .max()
            .unwrap_or_default();
        state.merged = [0; MAX_SLOTS];
        state.merged_count = 0;
        state.winning_priority = top;
        for source in state.sources.iter().filter(|source| source.priority == top) {
            for (out, &value) in state
                .merged
                .iter_mut()
                .zip(&source.slots[..source.slot_count])
            {
                *out = (*out).max(value);
            }
            state.merged_count = state.merged_count.max(source.slot_count);
        }
        Some(MergedUniverse {
            universe,
            state: &*state,
        })
    }

    /// The live sources of `universe` as last seen (without expiring anyone).
    pub fn sources(&self, universe: u16) -> impl Iterator<Item = SourceInfo<'_>> {
        self.universes
            .get(&universe)
            .into_iter()
            .flat_map(|state| state.sources.iter().map(Source::info))
    }

    /// Universes that currently hold at least one source, ascending.
    pub fn universes(&self) -> impl Iterator<Item = u16> + '_ {
        self.universes.keys().copied()
    }

    /// Forgets a universe and all its sources (e.g. when the receiver unsubscribes).
    pub fn remove_universe(&mut self, universe: u16) {
        self.universes.remove(&universe);
    }
}
