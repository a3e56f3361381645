//! The filter: from noisy exchanges to one clock model (pure).
//!
//! Raw samples are not usable as they come: on this project's loaded 2-core machines an
//! app-level exchange is off by up to 2 ms at p99, nearly all of it queueing on one path or
//! the other. Queueing only ever *adds* delay, so the samples with the smallest delay are the
//! ones whose offset is right (NTP's clock filter and PTP servos rely on the same fact).
//!
//! 1. **Window**: the last [`EstimatorConfig::window`] samples (64: about 6 s while converging
//!    at 10 Hz, about a minute at 1 Hz).
//! 2. **Min-delay gate**: only samples whose delay is within a gate of the window's minimum
//!    count (the gate is [`EstimatorConfig::gate_floor_ns`] or a fraction of the minimum,
//!    whichever is larger, widened to take at least [`EstimatorConfig::min_used`] samples, and
//!    samples spanning [`EstimatorConfig::min_drift_span_ns`] where the window does). A
//!    delayed sample is kept (it may count later, if the path got slower for good) but does
//!    not move the estimate.
//! 3. **Weighted regression** of offset against local time over the gated samples, weights
//!    `1 / (excess delay + floor)²`: the intercept is the offset now, the slope the drift
//!    (skew) of the local oscillator against the master's. Until the gated samples span
//!    [`EstimatorConfig::min_drift_span_ns`], the slope is the previous one (0 at first).
//! 4. **Steps**: a low-delay sample far from the model is a suspect, not a sample. When
//!    [`EstimatorConfig::step_confirm`] suspects in a row agree, the clock did step (another
//!    master, a master restart with another clock): the window restarts from them.
//!
//! Offsets here are the node's clock minus the master's ([`crate::Sample::offset`]); drift is
//! how much faster the node's clock runs, so an injected `offset=+37ms,drift=+80ppm` reads
//! back as about +37 ms and +80 ppm.

use std::collections::VecDeque;

use crate::sample::Sample;

/// How the estimator filters (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimatorConfig {
    /// Samples kept.
    pub window: usize,
    /// The smallest min-delay gate, in nanoseconds.
    pub gate_floor_ns: i64,
    /// The gate as a fraction of the minimum delay, when that is larger than the floor.
    pub gate_fraction: f64,
    /// The gate widens to take at least this many of the lowest-delay samples (one
    /// exceptionally fast exchange must not leave the filter with one sample).
    pub min_used: usize,
    /// Added to a sample's excess delay before weighting it, in nanoseconds.
    pub weight_floor_ns: f64,
    /// Gated samples must span this much local time before the drift is fitted.
    pub min_drift_span_ns: i64,
    /// A low-delay sample further than this from the model is a suspect step.
    pub step_ns: i64,
    /// Suspects in a row that make a step.
    pub step_confirm: usize,
    /// The largest drift believed, in parts per million (a fit beyond it is clamped).
    pub max_drift_ppm: f64,
}

impl Default for EstimatorConfig {
    fn default() -> Self {
        EstimatorConfig {
            window: 64,
            gate_floor_ns: 40_000,
            gate_fraction: 0.125,
            min_used: 8,
            weight_floor_ns: 20_000.0,
            min_drift_span_ns: 2_000_000_000,
            step_ns: 1_000_000,
            step_confirm: 3,
            max_drift_ppm: 1_000.0,
        }
    }
}

/// The clock model at one moment: `local − master = offset + drift · (local − at)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Local time the model is anchored at (the latest gated sample), in nanoseconds.
    pub at: i64,
    /// The node's clock minus the master's at `at`, in nanoseconds.
    pub offset_ns: f64,
    /// How much faster the node's clock runs than the master's (dimensionless; 1e-6 = 1 ppm).
    pub drift: f64,
    /// One standard deviation of `offset_ns`, from the residuals (for one sample, half its
    /// delay), in nanoseconds. It cannot see a constant path asymmetry.
    pub uncertainty_ns: f64,
    /// The smallest round trip in the window, in nanoseconds.
    pub min_delay_ns: i64,
    /// Samples that passed the gate.
    pub used: usize,
    /// Samples in the window.
    pub window: usize,
}

impl Estimate {
    /// The node's clock minus the master's at local time `local`, in nanoseconds.
    pub fn offset_at(&self, local: i64) -> f64 {
        self.offset_ns + self.drift * (local - self.at) as f64
    }

    /// The master's clock when the local clock reads `local`.
    pub fn master_of(&self, local: i64) -> i64 {
        local - self.offset_at(local).round() as i64
    }

    /// Drift in parts per million.
    pub fn drift_ppm(&self) -> f64 {
        self.drift * 1e6
    }
}

/// What one sample did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Update {
    /// Added to the window; the estimate was recomputed.
    Added,
    /// A low-delay sample far from the model, held back until others confirm it.
    Suspect { residual_ns: i64 },
    /// Confirmed suspects: the window restarted from them.
    Stepped { jump_ns: i64 },
    /// Unusable (negative or absurd delay).
    Rejected,
}

/// The longest round trip a sample may have, in nanoseconds.
const MAX_DELAY_NS: i64 = 1_000_000_000;
/// Timestamps from two clocks may make a tiny round trip read slightly negative.
const MIN_DELAY_NS: i64 = -1_000;

/// The filter (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct ClockEstimator {
    config: EstimatorConfig,
    samples: VecDeque<Sample>,
    suspects: Vec<Sample>,
    estimate: Option<Estimate>,
}

impl Default for ClockEstimator {
    fn default() -> Self {
        ClockEstimator::new(EstimatorConfig::default())
    }
}

impl ClockEstimator {
    pub fn new(config: EstimatorConfig) -> Self {
        ClockEstimator {
            config,
            samples: VecDeque::with_capacity(config.window.max(1) + 1),
            suspects: Vec::new(),
            estimate: None,
        }
    }

    /// The current model, once there is a sample.
    pub fn estimate(&self) -> Option<Estimate> {
        self.estimate
    }

    /// Samples in the window.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Forgets everything (another master).
    pub fn reset(&mut self) {
        self.samples.clear();
        self.suspects.clear();
        self.estimate = None;
    }

    fn gate(&self, min_delay: i64) -> i64 {
        self.config
            .gate_floor_ns
            .max((min_delay as f64 * self.config.gate_fraction) as i64)
    }

    /// Takes one sample.
    pub fn add(&mut self, sample: Sample) -> Update {
        let delay = sample.delay();
        if !(MIN_DELAY_NS..=MAX_DELAY_NS).contains(&delay) {
            return Update::Rejected;
        }
        if let Some(est) = self.estimate
            && self.samples.len() >= self.config.step_confirm
        {
            let min = est.min_delay_ns.min(delay);
            let low_delay = delay <= min + self.gate(min);
            let residual = sample.offset() - est.offset_at(sample.local_mid()).round() as i64;
            let slack = (delay - min).max(0) / 2;
            if low_delay && residual.abs() > self.config.step_ns + slack {
                self.suspects.push(sample);
                if self.suspects.len() < self.config.step_confirm {
                    return Update::Suspect {
                        residual_ns: residual,
                    };
                }
                // A step moves the offset, not the oscillators: the drift carries on.
                self.samples.clear();
                self.samples.extend(self.suspects.drain(..));
                self.recompute(est.drift);
                return Update::Stepped { jump_ns: residual };
            }
            if low_delay {
                // A good sample that fits: earlier suspects were noise.
                self.suspects.clear();
            }
        }
        self.samples.push_back(sample);
        while self.samples.len() > self.config.window.max(1) {
            self.samples.pop_front();
        }
        let drift_hint = self.estimate.map_or(0.0, |e| e.drift);
        self.recompute(drift_hint);
        Update::Added
    }

    fn recompute(&mut self, drift_hint: f64) {
        let Some(min_delay) = self.samples.iter().map(Sample::delay).min() else {
            self.estimate = None;
            return;
        };
        // (delay, local time) by delay: the gate widens to the `min_used`-th lowest delay, and
        // on until the samples it takes span `min_drift_span_ns` where the window does. The
        // lowest delays can bunch in one quiet moment (a loaded machine, a path that got
        // slower); gated to that moment alone the drift went unfitted, and the offset read
        // now was extrapolated from there at the hint's rate (0 at first), off by the node's
        // skew for every second since (120 ppm × 12 s = 1.5 ms, seen in `tests/clock_rig.rs`).
        // The samples the span takes in weigh little (`1 / (excess + floor)²`).
        let mut by_delay: Vec<(i64, i64)> = self
            .samples
            .iter()
            .map(|s| (s.delay(), s.local_mid()))
            .collect();
        by_delay.sort_unstable();
        let kth = by_delay[self.config.min_used.clamp(1, by_delay.len()) - 1].0;
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        let spanning = by_delay.iter().find_map(|&(delay, at)| {
            first = first.min(at);
            last = last.max(at);
            (last - first >= self.config.min_drift_span_ns).then_some(delay)
        });
        let gate = self
            .gate(min_delay)
            .max(kth - min_delay)
            .max(spanning.map_or(0, |d| d - min_delay));
        let used: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.delay() <= min_delay + gate)
            .collect();
        let Some(last) = used.last() else {
            return;
        };
        let x_ref = last.local_mid();
        let y_ref = last.offset();
        let points: Vec<(f64, f64, f64)> = used
            .iter()
            .map(|s| {
                let excess = (s.delay() - min_delay) as f64;
                let w = 1.0 / (excess + self.config.weight_floor_ns).powi(2);
                (
                    (s.local_mid() - x_ref) as f64,
                    (s.offset() - y_ref) as f64,
                    w,
                )
            })
            .collect();
        let sw: f64 = points.iter().map(|p| p.2).sum();
        let sw2: f64 = points.iter().map(|p| p.2 * p.2).sum();
        let xm = points.iter().map(|p| p.2 * p.0).sum::<f64>() / sw;
        let ym = points.iter().map(|p| p.2 * p.1).sum::<f64>() / sw;
        let sxx: f64 = points.iter().map(|p| p.2 * (p.0 - xm).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| p.2 * (p.0 - xm) * (p.1 - ym)).sum();
        let span = points.iter().map(|p| p.0).fold(0.0f64, f64::min).abs();
        let max_drift = self.config.max_drift_ppm * 1e-6;
        let drift =
            if points.len() >= 3 && span >= self.config.min_drift_span_ns as f64 && sxx > 0.0 {
                (sxy / sxx).clamp(-max_drift, max_drift)
            } else {
                drift_hint
            };
        // The line through the weighted means with slope `drift`, read at x = 0 (x_ref).
        let intercept = ym - drift * xm;
        let n_eff = sw * sw / sw2;
        let uncertainty = if points.len() < 3 {
            min_delay.max(0) as f64 / 2.0
        } else {
            let var = points
                .iter()
                .map(|p| p.2 * (p.1 - intercept - drift * p.0).powi(2))
                .sum::<f64>()
                / sw;
            // The intercept's standard error, with the lever arm of the fit's centre.
            let slope_var = if sxx > 0.0 {
                var / sxx * sw / n_eff
            } else {
                0.0
            };
            (var / (n_eff - 1.0).max(1.0) + slope_var * xm * xm).sqrt()
        };
        self.estimate = Some(Estimate {
            at: x_ref,
            offset_ns: y_ref as f64 + intercept,
            drift,
            uncertainty_ns: uncertainty,
            min_delay_ns: min_delay,
            used: points.len(),
            window: self.samples.len(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic trace generator: the node's clock is `true + offset + drift · true`,
    /// the master's is true time; paths take `base` plus per-direction noise.
    struct Trace {
        offset_ns: f64,
        drift: f64,
        seed: u64,
    }

    impl Trace {
        fn rand(&mut self) -> f64 {
            // xorshift64*: enough for noise, and the same every run.
            self.seed ^= self.seed >> 12;
            self.seed ^= self.seed << 25;
            self.seed ^= self.seed >> 27;
            (self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }

        fn local(&self, true_ns: f64) -> i64 {
            (true_ns + self.offset_ns + self.drift * true_ns).round() as i64
        }

        /// An exchange starting at true time `t`, each way `out`/`back` ns.
        fn sample(&self, t: f64, out: f64, back: f64) -> Sample {
            let turnaround = 15_000.0;
            Sample {
                t1: self.local(t),
                t2: (t + out).round() as i64,
                t3: (t + out + turnaround).round() as i64,
                t4: self.local(t + out + turnaround + back),
            }
        }

        /// The true `local − master` at local time `local`.
        fn truth_at_local(&self, local: i64) -> f64 {
            let true_ns = (local as f64 - self.offset_ns) / (1.0 + self.drift);
            local as f64 - true_ns
        }
    }

    /// Runs `n` exchanges at `period` ns with queueing noise `jitter` (exponential-ish, mean
    /// `jitter`) on both paths over a `base` path; `spike(i)` adds delay to exchange i's
    /// outbound path. Returns the estimator and the trace.
    fn run(
        trace: &mut Trace,
        n: usize,
        period: f64,
        base: f64,
        jitter: f64,
        asym: f64,
        spike: impl Fn(usize) -> f64,
    ) -> ClockEstimator {
        let mut est = ClockEstimator::default();
        for i in 0..n {
            let t = 1e9 + i as f64 * period;
            let out = base + asym + -jitter * (1.0 - trace.rand()).ln() + spike(i);
            let back = base + -jitter * (1.0 - trace.rand()).ln();
            est.add(trace.sample(t, out, back));
        }
        est
    }

    fn error_now(est: &ClockEstimator, trace: &Trace) -> f64 {
        let e = est.estimate().expect("an estimate");
        e.offset_at(e.at) - trace.truth_at_local(e.at)
    }

    #[test]
    fn a_clean_path_gives_the_exact_offset() {
        let mut trace = Trace {
            offset_ns: 37e6,
            drift: 0.0,
            seed: 1,
        };
        let est = run(&mut trace, 20, 1e8, 50_000.0, 0.0, 0.0, |_| 0.0);
        let err = error_now(&est, &trace);
        assert!(err.abs() < 2.0, "clean and symmetric: off by {err} ns");
    }

    #[test]
    fn jitter_is_filtered_to_tens_of_microseconds() {
        let mut trace = Trace {
            offset_ns: -12e6,
            drift: 0.0,
            seed: 7,
        };
        // 500 µs mean queueing each way: a raw sample is off by hundreds of µs.
        let est = run(&mut trace, 64, 1e8, 60_000.0, 500_000.0, 0.0, |_| 0.0);
        let err = error_now(&est, &trace);
        assert!(err.abs() < 60_000.0, "jittery path: off by {err} ns");
    }

    #[test]
    fn a_100_ppm_drift_is_estimated_and_extrapolated() {
        let mut trace = Trace {
            offset_ns: 5e6,
            drift: 100e-6,
            seed: 3,
        };
        let est = run(&mut trace, 64, 1e9, 50_000.0, 30_000.0, 0.0, |_| 0.0);
        let e = est.estimate().expect("estimate");
        assert!(
            (e.drift_ppm() - 100.0).abs() < 1.0,
            "drift read {} ppm, want 100",
            e.drift_ppm()
        );
        // One second after the last sample the model still holds.
        let later = e.at + 1_000_000_000;
        let err = e.offset_at(later) - trace.truth_at_local(later);
        assert!(err.abs() < 20_000.0, "1 s on: off by {err} ns");
    }

    #[test]
    fn an_asymmetric_path_is_off_by_half_the_asymmetry_and_no_more() {
        let mut trace = Trace {
            offset_ns: 0.0,
            drift: 0.0,
            seed: 11,
        };
        let asym = 400_000.0;
        let est = run(&mut trace, 64, 1e8, 50_000.0, 50_000.0, asym, |_| 0.0);
        let err = error_now(&est, &trace);
        // Outbound longer: the offset reads low by asym / 2.
        assert!(
            (err + asym / 2.0).abs() < 30_000.0,
            "asymmetric path: off by {err} ns, expected about {}",
            -asym / 2.0
        );
    }

    #[test]
    fn a_single_delayed_sample_does_not_move_the_estimate() {
        let mut trace = Trace {
            offset_ns: 2e6,
            drift: 20e-6,
            seed: 5,
        };
        let mut est = run(&mut trace, 30, 1e8, 50_000.0, 10_000.0, 0.0, |_| 0.0);
        let before = est.estimate().expect("estimate");
        let t = 1e9 + 30.0 * 1e8;
        // 5 ms late on the way out: its raw offset is 2.5 ms wrong.
        assert_eq!(
            est.add(trace.sample(t, 5_050_000.0, 50_000.0)),
            Update::Added
        );
        let after = est.estimate().expect("estimate");
        assert_eq!(after.offset_ns, before.offset_ns, "the offset did not move");
        assert_eq!(after.drift, before.drift, "the drift did not move");
        assert_eq!(after.at, before.at);
    }

    #[test]
    fn a_drift_is_fitted_when_the_fastest_exchanges_bunch_in_one_moment() {
        // The flake of `tests/clock_rig.rs`: +120 ppm, the first second quiet (100 µs round
        // trips), then a loaded machine (3 ms more each way, jittery). The eight fastest
        // exchanges all lie in the first second; gated to them alone the drift stayed 0 and the
        // offset read now was off by 120 µs for every second since.
        let mut trace = Trace {
            offset_ns: 250e6,
            drift: 120e-6,
            seed: 13,
        };
        let mut est = ClockEstimator::default();
        let n = 64;
        for i in 0..n {
            let t = 1e9 + i as f64 * 1e8;
            let load = if i < 10 { 0.0 } else { 3e6 };
            let out = 50_000.0 + load + -20_000.0 * (1.0 - trace.rand()).ln();
            let back = 50_000.0 + load + -20_000.0 * (1.0 - trace.rand()).ln();
            est.add(trace.sample(t, out, back));
        }
        let e = est.estimate().expect("estimate");
        assert!(
            (e.drift_ppm() - 120.0).abs() < 10.0,
            "drift read {} ppm, want 120",
            e.drift_ppm()
        );
        // Read as the node reports it: at its clock now (the latest exchange).
        let now = trace.local(1e9 + n as f64 * 1e8);
        let err = e.offset_at(now) - trace.truth_at_local(now);
        assert!(
            err.abs() < 50_000.0,
            "off by {err} ns at the latest exchange"
        );
    }

    #[test]
    fn spikes_do_not_pull_the_estimate() {
        let mut trace = Trace {
            offset_ns: -3e6,
            drift: -50e-6,
            seed: 9,
        };
        // Every 7th exchange is 2–8 ms late one way.
        let est = run(&mut trace, 64, 1e9, 50_000.0, 20_000.0, 0.0, |i| {
            if i % 7 == 3 {
                2e6 + (i as f64) * 1e5
            } else {
                0.0
            }
        });
        let err = error_now(&est, &trace);
        assert!(err.abs() < 20_000.0, "spiky path: off by {err} ns");
    }

    #[test]
    fn a_step_is_confirmed_by_three_samples_then_followed() {
        let mut trace = Trace {
            offset_ns: 1e6,
            drift: 0.0,
            seed: 13,
        };
        let mut est = run(&mut trace, 20, 1e8, 50_000.0, 5_000.0, 0.0, |_| 0.0);
        // The master's clock jumps 10 ms back: the node now reads 10 ms further ahead.
        trace.offset_ns += 10e6;
        let mut updates = Vec::new();
        for i in 0..3 {
            let t = 1e9 + (20 + i) as f64 * 1e8;
            updates.push(est.add(trace.sample(t, 50_000.0, 50_000.0)));
        }
        assert!(
            matches!(updates[0], Update::Suspect { residual_ns } if (residual_ns - 10_000_000).abs() < 50_000),
            "first sample after the step is a suspect: {updates:?}"
        );
        assert!(matches!(updates[1], Update::Suspect { .. }), "{updates:?}");
        assert!(
            matches!(updates[2], Update::Stepped { jump_ns } if (jump_ns - 10_000_000).abs() < 50_000),
            "the third confirms the step: {updates:?}"
        );
        let err = error_now(&est, &trace);
        assert!(err.abs() < 5_000.0, "after the step: off by {err} ns");
    }

    #[test]
    fn one_wild_low_delay_sample_is_only_a_suspect() {
        let mut trace = Trace {
            offset_ns: 0.0,
            drift: 0.0,
            seed: 17,
        };
        let mut est = run(&mut trace, 20, 1e8, 50_000.0, 5_000.0, 0.0, |_| 0.0);
        let before = est.estimate().expect("estimate");
        trace.offset_ns = 5e6;
        let t = 1e9 + 20.0 * 1e8;
        assert!(matches!(
            est.add(trace.sample(t, 50_000.0, 50_000.0)),
            Update::Suspect { .. }
        ));
        trace.offset_ns = 0.0;
        assert_eq!(
            est.add(trace.sample(t + 1e8, 50_000.0, 50_000.0)),
            Update::Added
        );
        let after = est.estimate().expect("estimate");
        assert!((after.offset_at(after.at) - before.offset_at(after.at)).abs() < 5_000.0);
    }

    #[test]
    fn absurd_delays_are_rejected() {
        let mut est = ClockEstimator::default();
        let s = Sample {
            t1: 0,
            t2: 0,
            t3: 10,
            t4: 5,
        };
        assert_eq!(s.delay(), -5);
        assert_eq!(
            est.add(s),
            Update::Added,
            "a few ns negative is clock noise"
        );
        let s = Sample {
            t1: 0,
            t2: 0,
            t3: 2_000_000_000,
            t4: 0,
        };
        assert_eq!(est.add(s), Update::Rejected);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any offset, drift within ±100 ppm and moderate jitter: the estimate lands within
        /// the jitter's reach, and the drift within a few ppm.
        #[test]
        fn the_estimate_tracks_any_offset_and_drift(
            offset_ms in -5_000.0f64..5_000.0,
            drift_ppm in -100.0f64..100.0,
            jitter_us in 0.0f64..200.0,
            seed in 1u64..u64::MAX,
        ) {
            let mut trace = Trace { offset_ns: offset_ms * 1e6, drift: drift_ppm * 1e-6, seed };
            let est = run(&mut trace, 64, 5e8, 40_000.0, jitter_us * 1e3, 0.0, |_| 0.0);
            let e = est.estimate().expect("estimate");
            let err = error_now(&est, &trace);
            proptest::prop_assert!(err.abs() < 20_000.0 + jitter_us * 300.0,
                "offset {offset_ms} ms, drift {drift_ppm} ppm, jitter {jitter_us} µs: off by {err} ns");
            proptest::prop_assert!((e.drift_ppm() - drift_ppm).abs() < 2.0 + jitter_us / 20.0,
                "drift read {} ppm, want {drift_ppm}", e.drift_ppm());
        }
    }
}
