//! The servo: how the receiver's show time follows the master's (pure).
//!
//! Two loops, as in NTP's and PTP's servos:
//! - **frequency** ([`Servo::frequency`]): the clock model's drift says how much faster the
//!   master's show time runs than this node's clock; the time base runs that much faster or
//!   slower for good ([`rockontrol_engine::ShowTimeBase::set_frequency`], bounded by
//!   [`ServoConfig::max_frequency_ppm`]). Drift is then followed continuously instead of
//!   being corrected again and again as it builds up;
//! - **phase** ([`Servo::correct`]): given the receiver's show time and the master's (as the
//!   clock model predicts it) at one instant, it decides:
//! - **hold** inside a dead band (a few tens of µs: below what the filter can tell apart);
//! - **slew** otherwise: show time runs at most [`ServoConfig::max_slew_ppm`] faster or
//!   slower until the error is gone ([`rockontrol_engine::ShowTimeBase::slew`]), so ticks keep
//!   coming one at a time, never skipped or repeated. With the frequency set, what is left
//!   to slew is the model's noise;
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
    /// The largest frequency correction, in parts per million (crystals are within ±100).
    pub max_frequency_ppm: u32,
}

impl Default for ServoConfig {
    fn default() -> Self {
        ServoConfig {
            deadband_ns: 20_000,
            max_slew_ppm: 5_000,
            step_ns: 25_000_000,
            acquire_step_ns: 1_000_000,
            max_frequency_ppm: 500,
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
    frequency_ppb: i32,
    clamped: bool,
}

impl Servo {
    pub fn new(config: ServoConfig) -> Self {
        Servo {
            config,
            acquired: false,
            frequency_ppb: 0,
            clamped: false,
        }
    }

    /// The frequency correction for show time, in parts per billion, given `rate_ppb`: how
    /// much faster the master's show time runs than this node's clock, as the clock model
    /// says (negative: slower). Bounded by [`ServoConfig::max_frequency_ppm`]; a rate past
    /// the bound is logged (once per excursion) and the bound is used: the phase loop takes
    /// the rest.
    pub fn frequency(&mut self, rate_ppb: f64) -> i32 {
        let bound = f64::from(self.config.max_frequency_ppm) * 1e3;
        let clamped = rate_ppb.abs() > bound;
        if clamped && !self.clamped {
            tracing::warn!(
                "clock sync: the master's clock runs {:+.1} ppm against this one, past the {} ppm frequency bound; correcting {:+} ppm and slewing the rest",
                rate_ppb / 1e3,
                self.config.max_frequency_ppm,
                rate_ppb.signum() * bound / 1e3
            );
        }
        self.clamped = clamped;
        self.frequency_ppb = if rate_ppb.is_finite() {
            rate_ppb.clamp(-bound, bound).round() as i32
        } else {
            0
        };
        self.frequency_ppb
    }

    /// The latest frequency correction, in parts per billion.
    pub fn frequency_ppb(&self) -> i32 {
        self.frequency_ppb
    }

    /// True once the first correction was made.
    pub fn acquired(&self) -> bool {
        self.acquired
    }

    /// Starts over (another master): the next correction acquires again.
    pub fn reset(&mut self) {
        self.acquired = false;
        self.clamped = false;
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

    /// Applies one correction to `base` as the plugin does.
    fn apply(base: &mut ShowTimeBase, now: Instant, c: Correction) -> bool {
        match c {
            Correction::Hold => false,
            Correction::Slew { target_ns, max_ppm } => {
                base.slew(now, target_ns, max_ppm);
                false
            }
            Correction::Step { target_ns, reason } => {
                base.step_to(now, target_ns, &reason);
                true
            }
        }
    }

    /// The servo driving a real show time base with injected time: a receiver whose
    /// oscillator runs 80 ppm fast (its show time gains 80 µs a second on the master's),
    /// corrected ten times a second. With the frequency set from the (here exact) model,
    /// show time stays within a microsecond and never skips a tick; phase alone (the
    /// frequency left at 0) holds it only within the dead band plus 100 ms of drift.
    #[test]
    fn the_servo_follows_a_drifting_master_by_frequency_without_skipping() {
        for with_frequency in [true, false] {
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
                    if with_frequency {
                        let f = servo.frequency(-80_000.0);
                        base.set_frequency(now, f);
                    }
                    let correction = servo.correct(base.show_ns_at(now), master(now));
                    steps += u32::from(apply(&mut base, now, correction));
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
            if with_frequency {
                assert_eq!(base.frequency_ppb(), -80_000);
                assert!(worst <= 1_000, "80 ppm followed within {worst} ns");
            } else {
                assert!(
                    worst > 20_000 && worst < 40_000,
                    "phase alone holds 80 ppm within {worst} ns (dead band 20 µs + 100 ms of drift)"
                );
            }
        }
    }

    /// A frequency past the bound is clamped (and the phase loop takes the rest).
    #[test]
    fn the_frequency_is_bounded() {
        let mut servo = Servo::default();
        assert_eq!(servo.frequency(-99_990.4), -99_990);
        assert_eq!(servo.frequency(2_000_000.0), 500_000);
        assert_eq!(servo.frequency(-2_000_000.0), -500_000);
        assert_eq!(servo.frequency(f64::NAN), 0);
    }

    /// A small deterministic generator for the synthetic traces (exponential jitter).
    struct Jitter(u64);

    impl Jitter {
        fn exp_ns(&mut self, mean_ns: f64) -> i64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let u = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
            (-(1.0 - u).ln() * mean_ns) as i64
        }
    }

    /// The whole receiver loop on a synthetic trace: this node's oscillator runs 100 ppm
    /// fast against the master's; exchanges every 100 ms with 100 µs each way plus
    /// exponential jitter (mean 150 µs) and a 20 ms spike one time in 50; the real
    /// estimator, the servo (frequency and phase) and a show time base driven by the node's
    /// clock. Show time converges to the master's, its frequency to −100 ppm, and no tick is
    /// ever skipped or repeated after the acquiring step; phase alone (frequency left at 0)
    /// follows it less closely.
    /// The frequency set, the p99 and max error after 30 s (ns), and the steps of one run.
    fn noisy_trace(with_frequency: bool) -> (f64, i64, i64, u32) {
        use crate::estimator::ClockEstimator;
        use crate::sample::Sample;
        use crate::udp::{ClientState, ShowReference};

        const DRIFT: f64 = 100e-6;
        let t0 = Instant::now();
        // Node time e (ns since t0, this node's oscillator) ↔ true time τ = e / (1 + drift).
        let tau = |e: i64| (e as f64 / (1.0 + DRIFT)) as i64;
        let e_of = |tau: i64| (tau as f64 * (1.0 + DRIFT)) as i64;
        let local = |e: i64| e + 42_000_000_000; // the node's clock reading
        let master_clock = |tau: i64| tau + 1_000_000_000_000;
        let master_show = |tau: i64| (tau + 7_000_000) as u64; // the master's show time
        let mut rng = Jitter(0x9E37_79B9_7F4A_7C15);
        let mut estimator = ClockEstimator::default();
        let mut state = ClientState::default();
        let mut servo = Servo::default();
        let mut base = ShowTimeBase::new(44, t0);
        let mut last_tick = 0;
        let mut steps = 0;
        let mut errors = Vec::new();
        let end_ms = 120_000i64;
        for ms in 1..=end_ms {
            let e = ms * 1_000_000;
            let now = t0 + Duration::from_nanos(e as u64);
            if ms % 100 == 0 {
                // An exchange that ends now.
                let spike = |rng: &mut Jitter| {
                    if rng.exp_ns(1.0) > 3 { 20_000_000 } else { 0 }
                };
                let back = 100_000 + rng.exp_ns(150_000.0) + spike(&mut rng);
                let out = 100_000 + rng.exp_ns(150_000.0) + spike(&mut rng);
                let t3_tau = tau(e) - back;
                let t2_tau = t3_tau - 10_000;
                let t1_e = e_of(t2_tau - out);
                let sample = Sample {
                    t1: local(t1_e),
                    t2: master_clock(t2_tau),
                    t3: master_clock(t3_tau),
                    t4: local(e),
                };
                estimator.add(sample);
                state.estimate = estimator.estimate();
                state.reference = Some(ShowReference {
                    t3: sample.t3,
                    show_ns: master_show(t3_tau),
                });
                if estimator.len() >= 4 {
                    let (Some(now_ns), Some(later_ns)) = (
                        state.master_show_ns(local(e)),
                        state.master_show_ns(local(e) + 1_000_000_000),
                    ) else {
                        panic!("a model and a reference")
                    };
                    let rate = later_ns as f64 - now_ns as f64 - 1e9;
                    let f = servo.frequency(rate);
                    if with_frequency {
                        base.set_frequency(now, f);
                    }
                    let correction = servo.correct(base.show_ns_at(now), now_ns);
                    steps += u32::from(apply(&mut base, now, correction));
                }
            }
            let tick = base.tick_at(now);
            if steps > 0 && ms % 100 != 0 {
                assert!(
                    tick == last_tick || tick == last_tick + 1,
                    "at {ms} ms the tick went from {last_tick} to {tick}"
                );
            }
            last_tick = tick;
            if ms > 30_000 {
                errors.push((base.show_ns_at(now) as i64 - master_show(tau(e)) as i64).abs());
            }
        }
        errors.sort_unstable();
        let p99 = errors[errors.len() * 99 / 100];
        let max = errors[errors.len() - 1];
        (f64::from(base.frequency_ppb()) / 1e3, p99, max, steps)
    }

    #[test]
    fn a_100_ppm_drift_is_followed_from_a_noisy_trace() {
        let (ppm, p99, max, steps) = noisy_trace(true);
        let (_, p99_phase, max_phase, _) = noisy_trace(false);
        eprintln!(
            "frequency {ppm:+.3} ppm; show time error p99 {p99} ns, max {max} ns (phase alone: {p99_phase}, {max_phase})"
        );
        assert_eq!(steps, 1, "one step (acquiring 7 ms), then only slews");
        assert!(
            (ppm + 99.99).abs() < 5.0,
            "show time runs {ppm:+.3} ppm against this node's clock (the master's: −99.99)"
        );
        assert!(
            p99 < 40_000 && max < 60_000,
            "after 30 s show time is within {p99} ns (p99), {max} ns (max) of the master's"
        );
        assert!(
            p99 < p99_phase && max < max_phase,
            "the frequency loop follows closer than phase alone: {p99}/{max} vs {p99_phase}/{max_phase} ns"
        );
    }
}
