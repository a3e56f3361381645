//! The servo: how the receiver's show time follows the master's (pure).
//!
//! Given the receiver's show time and the master's (as the clock model predicts it) at one
//! instant, it decides:
//! - **hold** inside a dead band (a few tens of µs: below what the filter can tell apart);
//! - **slew** otherwise: show time runs at most [`ServoConfig::max_slew_ppm`] faster or
//!   slower until the error is gone ([`rockontrol_engine::ShowTimeBase::slew`]), so ticks keep
//!   coming one at a time, never skipped or repeated. Drift is followed the same way: each
//!   correction is small and short;
//! - **step** only past a threshold, with the reason: when the clock is first acquired (past
//!   [`ServoConfig::acquire_step_ns`]), and after that past [`ServoConfig::step_ns`] (a master
//!   restart, another master, a step of the master's show time). A step is what a slew
//!   would take seconds to absorb.

/// The servo's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServoConfig {
    /// Errors within this are left alone, in nanoseconds.
    pub deadband_ns: i64,
    /// The fastest slew, in parts per million (5,000: a 44 Hz tick is at most 0.11 ms longer
    /// or shorter; 10 ms are absorbed in 2 s).
    pub max_slew_ppm: u32,
    /// Once acquired, errors past this step, in nanoseconds (a bit over one 44 Hz tick).
    pub step_ns: i64,
    /// The first correction steps when the error is past this, in nanoseconds.
    pub acquire_step_ns: i64,
}

impl Default for ServoConfig {
    fn default() -> Self {
        ServoConfig {
            deadband_ns: 20_000,
            max_slew_ppm: 5_000,
            step_ns: 25_000_000,
            acquire_step_ns: 1_000_000,
        }
    }
}

/// What to do to the show time base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Correction {
    /// Within the dead band.
    Hold,
    /// Steer toward `target_ns` at up to `max_ppm`.
    Slew { target_ns: u64, max_ppm: u32 },
    /// Jump to `target_ns`, logged with `reason`.
    Step { target_ns: u64, reason: String },
}

/// The servo (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct Servo {
    config: ServoConfig,
    acquired: bool,
}

impl Servo {
    pub fn new(config: ServoConfig) -> Self {
        Servo {
            config,
            acquired: false,
        }
    }

    /// True once the first correction was made.
    pub fn acquired(&self) -> bool {
        self.acquired
    }

    /// Starts over (another master): the next correction acquires again.
    pub fn reset(&mut self) {
        self.acquired = false;
    }

    /// The correction that brings show time `current_ns` to the master's `target_ns`.
    pub fn correct(&mut self, current_ns: u64, target_ns: u64) -> Correction {
        let error = i128::from(target_ns) - i128::from(current_ns);
        let ms = error as f64 / 1e6;
        let acquiring = !self.acquired;
        self.acquired = true;
        if acquiring && error.abs() > i128::from(self.config.acquire_step_ns) {
            return Correction::Step {
                target_ns,
                reason: format!("clock sync acquired the master's show time, {ms:+.3} ms away"),
            };
        }
        if error.abs() > i128::from(self.config.step_ns) {
            return Correction::Step {
                target_ns,
                reason: format!(
                    "the master's show time is {ms:+.3} ms away, past the {:.0} ms step threshold (a master restart or a step of its clock)",
                    self.config.step_ns as f64 / 1e6
                ),
            };
        }
        if error.abs() <= i128::from(self.config.deadband_ns) {
            return Correction::Hold;
        }
        Correction::Slew {
            target_ns,
            max_ppm: self.config.max_slew_ppm,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rockontrol_engine::ShowTimeBase;

    use super::*;

    #[test]
    fn acquiring_steps_then_small_errors_slew_and_tiny_ones_hold() {
        let mut servo = Servo::default();
        assert!(matches!(
            servo.correct(1_000_000_000, 1_037_000_000),
            Correction::Step { target_ns: 1_037_000_000, ref reason } if reason.contains("acquired") && reason.contains("+37.000 ms")
        ));
        assert_eq!(
            servo.correct(2_000_000_000, 2_010_000_000),
            Correction::Slew {
                target_ns: 2_010_000_000,
                max_ppm: 5_000
            },
            "10 ms once acquired is slewed, not stepped"
        );
        assert_eq!(
            servo.correct(3_000_000_000, 2_999_990_000),
            Correction::Hold
        );
        let step = servo.correct(4_000_000_000, 3_000_000_000);
        assert!(
            matches!(&step, Correction::Step { reason, .. } if reason.contains("-1000.000 ms") && reason.contains("restart")),
            "a 1 s jump steps with its reason: {step:?}"
        );
        servo.reset();
        assert!(
            matches!(servo.correct(0, 2_000_000), Correction::Step { .. }),
            "after a reset the next correction acquires again"
        );
    }

    #[test]
    fn a_small_first_error_is_slewed() {
        let mut servo = Servo::default();
        assert!(matches!(
            servo.correct(5_000_000, 5_400_000),
            Correction::Slew { .. }
        ));
        assert!(servo.acquired());
    }

    /// The servo driving a real show time base with injected time: a receiver whose
    /// oscillator runs 80 ppm fast (its show time gains 80 µs a second on the master's),
    /// corrected ten times a second, stays within tens of µs and never skips a tick.
    #[test]
    fn the_servo_holds_a_drifting_time_base_within_the_dead_band_without_skipping() {
        let t0 = Instant::now();
        let mut base = ShowTimeBase::new(44, t0);
        let mut servo = Servo::default();
        // The master's show time, seen in this node's (fast) time: 80 ppm slower.
        let master = |at: Instant| -> u64 {
            let e = (at - t0).as_nanos() as f64;
            (e * (1.0 - 80e-6) + 3_000_000.0) as u64
        };
        let mut last_tick = base.tick_at(t0);
        let mut worst: i64 = 0;
        let mut steps = 0;
        for ms in 1..=60_000u64 {
            let now = t0 + Duration::from_millis(ms);
            if ms % 100 == 0 {
                match servo.correct(base.show_ns_at(now), master(now)) {
                    Correction::Hold => {}
                    Correction::Slew { target_ns, max_ppm } => {
                        base.slew(now, target_ns, max_ppm);
                    }
                    Correction::Step { target_ns, reason } => {
                        steps += 1;
                        base.step_to(now, target_ns, &reason);
                    }
                }
            }
            let tick = base.tick_at(now);
            if ms > 200 {
                assert!(
                    tick == last_tick || tick == last_tick + 1,
                    "at {ms} ms the tick went from {last_tick} to {tick}"
                );
                worst = worst.max((base.show_ns_at(now) as i64 - master(now) as i64).abs());
            }
            last_tick = tick;
        }
        assert_eq!(steps, 1, "one step, to acquire (3 ms), then only slews");
        assert!(
            worst < 40_000,
            "80 ppm of drift held within {worst} ns (dead band 20 µs + 100 ms of drift)"
        );
    }
}
