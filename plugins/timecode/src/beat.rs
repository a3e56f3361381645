//! Tempo: beats as a pure function of show time, and tap tempo.
//!
//! A [`Tempo`] is a rate in milli-BPM and the show time of beat 0, so beat *b* starts at
//! `anchor + ceil(b · 60 · 10¹² / milli_bpm)` ns: integer maths, the same on every node. The
//! master replicates the [`Tempo`] resource; receivers compute the same beat from their own show
//! clock (which clock sync keeps on the master's).

use bevy::prelude::*;
use serde::{Deserialize, Serialize};

/// Nanoseconds per minute × 1000 (milli-BPM).
const NS_PER_MINUTE_MILLI: u128 = 60 * 1_000_000_000 * 1_000;

/// The show's tempo (replicated as `timecode.tempo`).
#[derive(
    Resource, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Tempo {
    /// Beats per minute × 1000 (120 BPM = 120 000).
    pub milli_bpm: u64,
    /// Show time of beat 0, ns.
    pub anchor_ns: u64,
}

impl Tempo {
    /// `bpm` (rounded to 0.001) with beat 0 at `anchor_ns`; `None` unless 1–999 BPM.
    #[must_use]
    pub fn new(bpm: f64, anchor_ns: u64) -> Option<Self> {
        (bpm.is_finite() && (1.0..1000.0).contains(&bpm)).then(|| Tempo {
            milli_bpm: (bpm * 1000.0).round() as u64,
            anchor_ns,
        })
    }

    /// Beats per minute.
    #[must_use]
    pub fn bpm(&self) -> f64 {
        self.milli_bpm as f64 / 1000.0
    }

    /// Show time at which beat `beat` starts.
    #[must_use]
    pub fn ns_of_beat(&self, beat: u64) -> u64 {
        let ns =
            (u128::from(beat) * NS_PER_MINUTE_MILLI).div_ceil(u128::from(self.milli_bpm.max(1)));
        (u128::from(self.anchor_ns) + ns).min(u128::from(u64::MAX)) as u64
    }

    /// The latest beat started at show time `ns` (`None` before beat 0).
    #[must_use]
    pub fn beat_at_ns(&self, ns: u64) -> Option<u64> {
        let since = ns.checked_sub(self.anchor_ns)?;
        Some((u128::from(since) * u128::from(self.milli_bpm) / NS_PER_MINUTE_MILLI) as u64)
    }

    /// Beat and phase (0..1 through the beat) at `ns`: what effects and the UI show.
    #[must_use]
    pub fn phase_at_ns(&self, ns: u64) -> Option<(u64, f64)> {
        let beat = self.beat_at_ns(ns)?;
        let start = self.ns_of_beat(beat);
        let next = self.ns_of_beat(beat + 1);
        Some((beat, (ns - start) as f64 / (next - start).max(1) as f64))
    }

    /// Beats starting in the show-time window `(after, upto]` (and at 0 when `after` is `None`).
    pub fn beats_in(&self, after: Option<u64>, upto: u64) -> impl Iterator<Item = u64> + use<> {
        let first = match after {
            None => 0,
            Some(after) => self.beat_at_ns(after).map_or(0, |b| b + 1),
        };
        let last = self.beat_at_ns(upto);
        let this = *self;
        (first..last.map_or(0, |l| l + 1)).filter(move |b| this.ns_of_beat(*b) <= upto)
    }
}

/// Tap tempo: the mean interval of the last taps, beat 0 on the latest tap.
#[derive(Debug, Clone, Default)]
pub struct TapTempo {
    taps: Vec<u64>,
}

impl TapTempo {
    /// Taps more than this apart start a new count.
    pub const RESET_AFTER_NS: u64 = 2_000_000_000;
    /// Taps averaged.
    pub const KEEP: usize = 8;

    /// A tap at show time `ns`; the tempo once two taps are in.
    pub fn tap(&mut self, ns: u64) -> Option<Tempo> {
        if self
            .taps
            .last()
            .is_some_and(|last| ns <= *last || ns - last > Self::RESET_AFTER_NS)
        {
            self.taps.clear();
        }
        self.taps.push(ns);
        if self.taps.len() > Self::KEEP {
            self.taps.remove(0);
        }
        let (first, last) = (*self.taps.first()?, *self.taps.last()?);
        let intervals = self.taps.len() as u128 - 1;
        if intervals == 0 {
            return None;
        }
        let mean = u128::from(last - first).div_ceil(intervals).max(1);
        Some(Tempo {
            milli_bpm: (NS_PER_MINUTE_MILLI / mean) as u64,
            anchor_ns: last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_at_exact_nanoseconds() {
        let tempo = Tempo::new(120.0, 1_000_000_000).expect("valid");
        assert_eq!(tempo.ns_of_beat(0), 1_000_000_000);
        assert_eq!(tempo.ns_of_beat(3), 2_500_000_000, "120 BPM: 0.5 s a beat");
        assert_eq!(tempo.beat_at_ns(999_999_999), None, "before beat 0");
        assert_eq!(tempo.beat_at_ns(2_499_999_999), Some(2));
        assert_eq!(tempo.beat_at_ns(2_500_000_000), Some(3));
        let (beat, phase) = tempo.phase_at_ns(2_750_000_000).expect("after beat 0");
        assert_eq!(beat, 3);
        assert!((phase - 0.5).abs() < 1e-9, "half way: {phase}");
        let odd = Tempo::new(128.0, 0).expect("valid");
        assert_eq!(odd.ns_of_beat(1), 468_750_000, "60/128 s");
        assert_eq!(
            odd.beats_in(Some(0), 1_000_000_000).collect::<Vec<_>>(),
            vec![1, 2],
            "beats 1 (0.469 s) and 2 (0.9375 s) in (0, 1 s]"
        );
        assert_eq!(odd.beats_in(None, 0).collect::<Vec<_>>(), vec![0]);
        assert!(Tempo::new(0.0, 0).is_none() && Tempo::new(f64::NAN, 0).is_none());
    }

    #[test]
    fn tap_tempo_averages_and_restarts_after_a_pause() {
        let mut tap = TapTempo::default();
        assert_eq!(tap.tap(0), None, "one tap is no tempo");
        assert_eq!(tap.tap(500_000_000).map(|t| t.milli_bpm), Some(120_000));
        // Uneven taps average: 0.5, 0.52, 0.48 s → 0.5 s.
        tap.tap(1_020_000_000);
        let t = tap.tap(1_500_000_000).expect("tempo");
        assert_eq!(t.milli_bpm, 120_000);
        assert_eq!(t.anchor_ns, 1_500_000_000, "beat 0 on the latest tap");
        // A 3 s pause starts over.
        assert_eq!(tap.tap(4_500_000_000), None);
        assert_eq!(tap.tap(4_900_000_000).map(|t| t.milli_bpm), Some(150_000));
    }
}
