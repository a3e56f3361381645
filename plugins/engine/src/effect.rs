//! Effects as pure maths: the level of each channel of a running effect at a show time.
//!
//! The phase is a function of show time only (and, for a speed in beats, of the replicated
//! tempo), so every node computes the same level for the same tick; nothing is stored per tick.

use rockontrol_show::{EffectSpeed, Waveform};

use crate::compile::ChannelId;

/// A tempo as the engine sees it: milli-BPM and the show time of beat 0 (the timecode crate's
/// replicated `Tempo`, fed each tick).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BeatClock {
    pub milli_bpm: u64,
    pub anchor_ns: u64,
}

/// The tempo a speed in beats follows when the show has none.
pub const DEFAULT_BEAT: BeatClock = BeatClock {
    milli_bpm: 120_000,
    anchor_ns: 0,
};

/// An effect of the show, its channels resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledEffect {
    pub name: String,
    /// One per fixture, in the show's order (the phase spreads over them).
    pub channels: Vec<ChannelId>,
    pub waveform: Waveform,
    pub min: f32,
    pub max: f32,
    pub speed: EffectSpeed,
    pub spread: f64,
}

impl CompiledEffect {
    /// Cycles run since show time 0 (or since beat 0 of `beat`) at show time `ns`.
    #[must_use]
    pub fn cycles(&self, ns: u64, beat: Option<BeatClock>) -> f64 {
        match self.speed {
            EffectSpeed::Hz(hz) => ns as f64 * hz / 1e9,
            EffectSpeed::Bpm(bpm) => ns as f64 * bpm / 60e9,
            EffectSpeed::Beats(n) => {
                let beat = beat.unwrap_or(DEFAULT_BEAT);
                let since = ns as f64 - beat.anchor_ns as f64;
                since * beat.milli_bpm as f64 / 60e12 / n
            }
        }
    }

    /// The level of the effect's `index`th channel when `cycles` cycles have run.
    #[must_use]
    pub fn level(&self, index: usize, cycles: f64) -> f32 {
        let n = self.channels.len().max(1);
        let w = match self.waveform {
            Waveform::Step => {
                let at = (cycles.rem_euclid(1.0) * n as f64) as usize;
                if at.min(n - 1) == index { 1.0 } else { 0.0 }
            }
            shape => {
                let phase = (cycles - index as f64 * self.spread).rem_euclid(1.0);
                match shape {
                    Waveform::Sine => 0.5 - 0.5 * (std::f64::consts::TAU * phase).cos(),
                    Waveform::Ramp => phase,
                    _ => {
                        if phase < 0.5 {
                            1.0
                        } else {
                            0.0
                        }
                    }
                }
            }
        };
        self.min + (self.max - self.min) * w as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(waveform: Waveform, speed: EffectSpeed, spread: f64) -> CompiledEffect {
        CompiledEffect {
            name: "e".into(),
            channels: vec![0, 1, 2, 3],
            waveform,
            min: 0.2,
            max: 1.0,
            speed,
            spread,
        }
    }

    #[test]
    fn bpm_hz_and_beats_give_the_same_phase_for_the_same_rate() {
        let s = 1_000_000_000u64;
        let bpm = effect(Waveform::Ramp, EffectSpeed::Bpm(120.0), 0.0);
        let hz = effect(Waveform::Ramp, EffectSpeed::Hz(2.0), 0.0);
        let beats = effect(Waveform::Ramp, EffectSpeed::Beats(1.0), 0.0);
        for ns in [0, s / 8, s / 4, 3 * s, 3 * s + s / 4] {
            assert_eq!(bpm.cycles(ns, None), hz.cycles(ns, None), "at {ns} ns");
            assert_eq!(
                beats.cycles(ns, None),
                bpm.cycles(ns, None),
                "120 BPM default"
            );
        }
        // Two beats a cycle at 60 BPM anchored at 1 s: at 2 s half a cycle.
        let slow = effect(Waveform::Ramp, EffectSpeed::Beats(2.0), 0.0);
        let tempo = Some(BeatClock {
            milli_bpm: 60_000,
            anchor_ns: s,
        });
        assert_eq!(slow.cycles(2 * s, tempo), 0.5);
        assert_eq!(slow.cycles(s, tempo), 0.0, "beat 0 starts the cycle");
    }

    #[test]
    fn waveforms_between_min_and_max_with_the_phase_spread() {
        let sine = effect(Waveform::Sine, EffectSpeed::Hz(1.0), 0.25);
        assert_eq!(sine.level(0, 0.0), 0.2, "sine starts at the bottom");
        assert!((sine.level(0, 0.5) - 1.0).abs() < 1e-6, "top half way");
        // Fixture 2 is half a cycle behind: at the top when fixture 0 is at the bottom.
        assert!((sine.level(2, 0.0) - 1.0).abs() < 1e-6);
        let ramp = effect(Waveform::Ramp, EffectSpeed::Hz(1.0), 0.0);
        assert!((ramp.level(3, 2.25) - (0.2 + 0.8 * 0.25)).abs() < 1e-6);
        let square = effect(Waveform::Square, EffectSpeed::Hz(1.0), 0.5);
        assert_eq!((square.level(0, 0.1), square.level(1, 0.1)), (1.0, 0.2));
        let step = effect(Waveform::Step, EffectSpeed::Hz(1.0), 0.0);
        let on: Vec<f32> = (0..4).map(|i| step.level(i, 0.6)).collect();
        assert_eq!(
            on,
            vec![0.2, 0.2, 1.0, 0.2],
            "the third of four at phase 0.6"
        );
    }
}
