//! Effects in a show file: a waveform over some fixtures' attribute, its speed in BPM, Hz or
//! beats of the show's tempo, started and stopped by commands (`effect NAME on|off`, from a
//! timecode cue, the console or the network).
//!
//! ```ron
//! effects: [(name: "pulse", fixtures: [1, 2, 3, 4], waveform: Sine, min: 0.2, max: 1.0,
//!            speed: Bpm(120.0), spread: 0.25)]
//! ```

use serde::{Deserialize, Serialize};

use crate::model::Attribute;

fn intensity() -> Attribute {
    Attribute::Intensity
}
fn is_intensity(a: &Attribute) -> bool {
    *a == Attribute::Intensity
}
fn one() -> f64 {
    1.0
}
fn is_one(v: &f64) -> bool {
    *v == 1.0
}
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// An effect: `attribute` of `fixtures` follows `waveform` between `min` and `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Effect {
    /// What commands call it (`effect pulse on`).
    pub name: String,
    /// The fixtures it drives, in the order the phase spreads over them.
    pub fixtures: Vec<u32>,
    /// The attribute it drives (default `Intensity`). Intensity merges HTP with the cues'
    /// levels; other attributes LTP (the running effect wins).
    #[serde(default = "intensity", skip_serializing_if = "is_intensity")]
    pub attribute: Attribute,
    pub waveform: Waveform,
    /// Level at the waveform's bottom, 0..=1.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min: f64,
    /// Level at the waveform's top, 0..=1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub max: f64,
    pub speed: EffectSpeed,
    /// Phase offset from one fixture to the next, in cycles (0.25: each a quarter behind).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spread: f64,
}

/// The shape of one cycle (phase 0..1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Waveform {
    /// `½ − ½·cos 2πφ`: from the bottom, up, and back.
    Sine,
    /// `φ`: up, then back to the bottom at once.
    Ramp,
    /// Top for the first half, bottom for the second.
    Square,
    /// One fixture at a time at the top (a chase across the fixtures; `spread` is not used).
    Step,
}

/// How fast the waveform cycles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum EffectSpeed {
    /// Cycles per minute, locked to show time.
    Bpm(f64),
    /// Cycles per second, locked to show time.
    Hz(f64),
    /// One cycle every this many beats of the show's tempo (typed, tapped or from the show):
    /// the effect follows tempo changes. Without a tempo, 120 BPM.
    Beats(f64),
}

/// Problems of `effects`, each naming the effect (`fixture` says whether a fixture exists and
/// has the attribute).
pub fn effect_problems(
    effects: &[Effect],
    has: impl Fn(u32, &Attribute) -> Option<bool>,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (i, e) in effects.iter().enumerate() {
        let mut bad = |message: String| problems.push((e.name.clone(), message));
        if e.name.trim().is_empty() {
            bad(format!("effects[{i}] has no name"));
        }
        if effects[..i].iter().any(|o| o.name == e.name) {
            bad("is defined twice".into());
        }
        if e.fixtures.is_empty() {
            bad("drives no fixtures".into());
        }
        for f in &e.fixtures {
            match has(*f, &e.attribute) {
                None => bad(format!("fixture {f} is not patched")),
                Some(false) => bad(format!("fixture {f} has no {:?} channel", e.attribute)),
                Some(true) => {}
            }
        }
        for (what, v) in [("min", e.min), ("max", e.max)] {
            if !(0.0..=1.0).contains(&v) {
                bad(format!("{what} {v:?} is outside 0.0..=1.0"));
            }
        }
        let speed = match e.speed {
            EffectSpeed::Bpm(v) | EffectSpeed::Hz(v) | EffectSpeed::Beats(v) => v,
        };
        if !(speed.is_finite() && speed > 0.0 && speed <= 10_000.0) {
            bad(format!(
                "speed {:?} must be a number in (0, 10000]",
                e.speed
            ));
        }
        if !e.spread.is_finite() {
            bad(format!("spread {:?} is not a number", e.spread));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_names_its_effect() {
        let effects: Vec<Effect> = ron::from_str(
            r#"[
                (name: "pulse", fixtures: [1, 9], waveform: Sine, speed: Bpm(0.0)),
                (name: "pulse", fixtures: [2], attribute: Red, waveform: Ramp, max: 1.5,
                 speed: Beats(1.0)),
                (name: "", fixtures: [], waveform: Step, speed: Hz(2.0), spread: 0.25),
            ]"#,
        )
        .expect("effects parse");
        // Fixtures 1 and 2 are patched, with an intensity channel only.
        let has = |id: u32, a: &Attribute| match id {
            1 | 2 => Some(*a == Attribute::Intensity),
            _ => None,
        };
        let problems: Vec<String> = effect_problems(&effects, has)
            .into_iter()
            .map(|(name, message)| format!("{name}: {message}"))
            .collect();
        assert_eq!(
            problems,
            vec![
                "pulse: fixture 9 is not patched",
                "pulse: speed Bpm(0.0) must be a number in (0, 10000]",
                "pulse: is defined twice",
                "pulse: fixture 2 has no Red channel",
                "pulse: max 1.5 is outside 0.0..=1.0",
                ": effects[2] has no name",
                ": drives no fixtures",
            ]
        );
    }
}
