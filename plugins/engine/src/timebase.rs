//! The show time base: one explicit mapping from the monotonic clock to show time.
//!
//! Show time is counted in integer nanoseconds; tick *k* is at `ceil(k · 10⁹ / rate)` ns,
//! so [`ShowTimeBase::tick_at`] of a tick's own instant is that tick. The mapping is anchored
//! at one [`Instant`] and runs at nominal speed, except during a *slew*, when it runs up to
//! a bounded number of parts per million faster or slower until a correction is absorbed.
//!
//! - A **slew** keeps show time continuous and monotonic: ticks keep coming one at a time,
//!   slightly closer together or further apart, never skipped or repeated. Clock sync steers
//!   with it.
//! - A **frequency correction** ([`ShowTimeBase::set_frequency`]) makes show time run a
//!   fixed number of parts per billion faster or slower than this machine's clock for good:
//!   a receiver whose oscillator runs fast against its master's follows the master's rate
//!   instead of correcting the same drift again and again. Slews add to it.
//! - A **step** re-anchors: show time jumps (forwards or backwards) at once, and every tick's
//!   instant moves with it. A receiver following its master's clock steps; so does a show
//!   whose tick rate changed. Every step is logged with its reason.
//!
//! Everything here is pure: the current instant is always an argument, so tests drive it
//! without sleeping. The engine's schedule reads the real clock once per frame; the DMX
//! output thread only ever sees the deadlines derived from this mapping, so a step can never
//! put a deadline seconds away.

use std::time::{Duration, Instant};

use bevy::prelude::*;

/// Nanoseconds per second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;
/// The fastest correction a slew may apply: show time never runs slower than half speed
/// or faster than one and a half times real time.
pub const MAX_SLEW_PPM: u32 = 500_000;
/// The largest frequency correction, in parts per billion (±1,000 ppm: crystals are within
/// ±100 ppm; anything beyond is a wrong model, not an oscillator).
pub const MAX_FREQUENCY_PPB: i32 = 1_000_000;
const PPM: i128 = 1_000_000;
const PPB: i128 = 1_000_000_000;

/// Show nanoseconds of tick `tick` at `rate` Hz: `ceil(tick · 10⁹ / rate)` (saturating at
/// `u64::MAX`). The one definition of a tick's show time, for the time base and the engine.
pub fn ns_of_tick(tick: u64, rate: u32) -> u64 {
    let rate = u64::from(rate.max(1));
    // Every tick of the next 584 years at 1 Hz fits in 64 bits: a 128-bit division costs
    // a library call, and this runs twice per tick.
    if let Some(ns) = tick.checked_mul(NANOS_PER_SEC) {
        return ns.div_ceil(rate);
    }
    let ns = (u128::from(tick) * u128::from(NANOS_PER_SEC)).div_ceil(u128::from(rate));
    ns.min(u128::from(u64::MAX)) as u64
}

/// The first tick whose show time is at or after `ns`: where an event due at `ns` (a follow,
/// the end of a delay) takes effect.
pub fn first_tick_at(ns: u64, rate: u32) -> u64 {
    if ns == 0 {
        return 0;
    }
    // ceil(k · 10⁹ / rate) ≥ ns  ⟺  k · 10⁹ > (ns − 1) · rate.
    let k = u128::from(ns - 1) * u128::from(rate.max(1)) / u128::from(NANOS_PER_SEC) + 1;
    k.min(u128::from(u64::MAX)) as u64
}

/// The mapping from the monotonic clock to show time (see the [module docs](self)).
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShowTimeBase {
    /// Ticks per second.
    rate: u32,
    /// Show time `anchor_ns` is at `anchor_at`.
    anchor_at: Instant,
    anchor_ns: u64,
    /// A correction in progress, from `anchor_at` until `until`.
    slew: Option<Slew>,
    /// Parts per billion show time runs faster (negative: slower) than the monotonic clock,
    /// outside slews ([`ShowTimeBase::set_frequency`]).
    frequency_ppb: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slew {
    until: Instant,
    /// Parts per billion of show time's speed during the slew, the frequency correction
    /// included (negative: slower).
    ppb: i32,
}

/// `e + floor(e · ppb / 10⁹)`: show nanoseconds over `e` real nanoseconds at `ppb`.
/// Non-decreasing in `e` while `|ppb| < 10⁹`.
fn slewed(e: i128, ppb: i32) -> i128 {
    e + (e * i128::from(ppb)).div_euclid(PPB)
}

/// The smallest `e ≥ 0` with `slewed(e, ppb) ≥ d` (for `d > 0`).
fn unslewed(d: i128, ppb: i32) -> i128 {
    if d <= 0 {
        return 0;
    }
    // Estimate, then settle exactly.
    let mut e = d * PPB / (PPB + i128::from(ppb));
    while slewed(e, ppb) < d {
        e += 1;
    }
    while e > 0 && slewed(e - 1, ppb) >= d {
        e -= 1;
    }
    e
}

fn nanos(d: Duration) -> i128 {
    d.as_nanos() as i128
}

fn duration(ns: i128) -> Duration {
    Duration::from_nanos(ns.clamp(0, i128::from(u64::MAX)) as u64)
}

impl ShowTimeBase {
    /// Show time 0 (tick 0) at `now`.
    pub fn new(rate: u32, now: Instant) -> Self {
        ShowTimeBase {
            rate: rate.max(1),
            anchor_at: now,
            anchor_ns: 0,
            slew: None,
            frequency_ppb: 0,
        }
    }

    /// The frequency correction, in parts per billion ([`ShowTimeBase::set_frequency`]).
    pub fn frequency_ppb(&self) -> i32 {
        self.frequency_ppb
    }

    /// Ticks per second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The length of one tick (rounded up to whole nanoseconds).
    pub fn period(&self) -> Duration {
        Duration::from_nanos(NANOS_PER_SEC.div_ceil(u64::from(self.rate)))
    }

    /// Show nanoseconds of tick `tick`: `ceil(tick · 10⁹ / rate)`.
    pub fn ns_of_tick(&self, tick: u64) -> u64 {
        ns_of_tick(tick, self.rate)
    }

    /// The tick whose time has come at show time `ns`: `floor(ns · rate / 10⁹)`.
    pub fn tick_of_ns(&self, ns: u64) -> u64 {
        (u128::from(ns) * u128::from(self.rate) / u128::from(NANOS_PER_SEC)) as u64
    }

    /// Show time at `at`, in nanoseconds (0 before show time 0).
    pub fn show_ns_at(&self, at: Instant) -> u64 {
        let ns = if at >= self.anchor_at {
            let e = nanos(at - self.anchor_at);
            let f = self.frequency_ppb;
            i128::from(self.anchor_ns)
                + match self.slew {
                    Some(s) => {
                        let span = nanos(s.until.saturating_duration_since(self.anchor_at));
                        slewed(e.min(span), s.ppb) + slewed((e - span).max(0), f)
                    }
                    None => slewed(e, f),
                }
        } else {
            i128::from(self.anchor_ns) - slewed(nanos(self.anchor_at - at), self.frequency_ppb)
        };
        ns.clamp(0, i128::from(u64::MAX)) as u64
    }

    /// The latest tick whose time has come at `at`.
    pub fn tick_at(&self, at: Instant) -> u64 {
        self.tick_of_ns(self.show_ns_at(at))
    }

    /// Continuous show time at `at`, in ticks (tick plus the fraction towards the next).
    pub fn ticks_at(&self, at: Instant) -> f64 {
        let ns = self.show_ns_at(at);
        let tick = self.tick_of_ns(ns);
        let start = self.ns_of_tick(tick);
        let next = self.ns_of_tick(tick + 1);
        tick as f64 + (ns - start) as f64 / (next - start).max(1) as f64
    }

    /// The first instant at which show time is at least `ns`.
    pub fn instant_of_ns(&self, ns: u64) -> Instant {
        let d = i128::from(ns) - i128::from(self.anchor_ns);
        let f = self.frequency_ppb;
        if d <= 0 {
            // Before the anchor: the latest x back with slewed(x) ≤ −d.
            let back = unslewed(1 - d, f) - 1;
            return self
                .anchor_at
                .checked_sub(duration(back))
                .unwrap_or(self.anchor_at);
        }
        let e = match self.slew {
            None => unslewed(d, f),
            Some(s) => {
                let span = nanos(s.until.saturating_duration_since(self.anchor_at));
                let gained = slewed(span, s.ppb);
                if d > gained {
                    span + unslewed(d - gained, f)
                } else {
                    unslewed(d, s.ppb)
                }
            }
        };
        self.anchor_at + duration(e)
    }

    /// The instant tick `tick` is due.
    pub fn instant_of_tick(&self, tick: u64) -> Instant {
        self.instant_of_ns(self.ns_of_tick(tick))
    }

    /// True while a slew is correcting show time at `at`.
    pub fn is_slewing(&self, at: Instant) -> bool {
        self.slew.is_some_and(|s| at < s.until)
    }

    /// Re-anchors: show time is `show_ns` at `now`, at nominal speed. Logs the jump and why.
    pub fn step_to(&mut self, now: Instant, show_ns: u64, reason: &str) {
        let before = self.show_ns_at(now);
        let jump_ms = (i128::from(show_ns) - i128::from(before)) as f64 / 1e6;
        info!(
            "show time stepped by {jump_ms:+.1} ms to {:.3} s ({reason})",
            show_ns as f64 / 1e9
        );
        self.anchor_quietly(now, show_ns);
    }

    /// Re-anchors so that tick `tick` is due at `now` (a [`ShowTimeBase::step_to`]).
    pub fn step_to_tick(&mut self, now: Instant, tick: u64, reason: &str) {
        self.step_to(now, self.ns_of_tick(tick), reason);
    }

    /// [`ShowTimeBase::step_to`] without the log line, for the engine's own bookkeeping. The
    /// frequency correction carries on (a step moves show time, not the oscillator).
    pub(crate) fn anchor_quietly(&mut self, now: Instant, show_ns: u64) {
        self.anchor_at = now;
        self.anchor_ns = show_ns;
        self.slew = None;
    }

    /// Tick `tick` is due at `now`, without the log line.
    pub(crate) fn anchor_tick_quietly(&mut self, now: Instant, tick: u64) {
        self.anchor_quietly(now, self.ns_of_tick(tick));
    }

    /// Changes the tick rate, keeping tick `tick` due at `now` (tick numbers carry on; the
    /// show time of each tick is `tick / rate` at the new rate). No-op if the rate is unchanged.
    pub fn set_rate(&mut self, now: Instant, rate: u32, tick: u64) {
        let rate = rate.max(1);
        if rate == self.rate {
            return;
        }
        info!("tick rate {} → {rate} Hz at tick {tick}", self.rate);
        self.rate = rate;
        self.anchor_quietly(now, self.ns_of_tick(tick));
    }

    /// From `now` on, show time runs `ppb` parts per billion faster (negative: slower) than
    /// the monotonic clock (clamped to ±[`MAX_FREQUENCY_PPB`]), continuously: no jump. A slew
    /// in progress keeps its remaining span and its speed relative to the new frequency.
    pub fn set_frequency(&mut self, now: Instant, ppb: i32) {
        let ppb = ppb.clamp(-MAX_FREQUENCY_PPB, MAX_FREQUENCY_PPB);
        if ppb == self.frequency_ppb {
            return;
        }
        let current = self.show_ns_at(now);
        let slew = self.slew.filter(|s| now < s.until).map(|s| Slew {
            until: s.until,
            ppb: s.ppb - self.frequency_ppb + ppb,
        });
        self.anchor_quietly(now, current);
        self.frequency_ppb = ppb;
        self.slew = slew;
    }

    /// Steers show time towards `target_ns` at `now` (and on at the corrected frequency
    /// after, [`ShowTimeBase::set_frequency`]), at most `max_rate_ppm` faster or slower than
    /// that (capped at [`MAX_SLEW_PPM`]), without a jump. `target_ns` is where show time
    /// should be at `now`. Returns how long the correction takes. A new slew replaces one in
    /// progress.
    pub fn slew(&mut self, now: Instant, target_ns: u64, max_rate_ppm: u32) -> Duration {
        let current = self.show_ns_at(now);
        self.anchor_quietly(now, current);
        let error = i128::from(target_ns) - i128::from(current);
        let ppm = i128::from(max_rate_ppm.min(MAX_SLEW_PPM));
        if error == 0 || ppm == 0 {
            return Duration::ZERO;
        }
        // Real nanoseconds over which `ppm` gains (or loses) `error` show nanoseconds.
        let span = (error.abs() * PPM + ppm - 1) / ppm;
        let ppm = if error > 0 { ppm } else { -ppm } as i32;
        let span = duration(span);
        debug!(
            "show time slews {:+.3} ms over {:.3} s ({ppm:+} ppm)",
            error as f64 / 1e6,
            span.as_secs_f64()
        );
        self.slew = Some(Slew {
            until: now + span,
            ppb: ppm * 1_000 + self.frequency_ppb,
        });
        span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 44;

    #[test]
    fn ticks_are_at_k_over_rate_and_map_back() {
        let t0 = Instant::now();
        let base = ShowTimeBase::new(RATE, t0);
        assert_eq!(base.ns_of_tick(44), NANOS_PER_SEC, "tick 44 at exactly 1 s");
        assert_eq!(base.ns_of_tick(1), 22_727_273, "tick 1 at ceil(10⁹/44) ns");
        for tick in [0, 1, 2, 43, 44, 45, 1_000_003, 44 * 3600 * 24] {
            let at = base.instant_of_tick(tick);
            assert_eq!(
                base.tick_at(at),
                tick,
                "tick {tick} is due at its own instant"
            );
            assert_eq!(
                base.tick_at(at - Duration::from_nanos(1)),
                tick.saturating_sub(1),
                "one nanosecond earlier is still the previous tick ({tick})"
            );
        }
        assert_eq!(base.tick_at(t0 + Duration::from_millis(500)), 22);
        assert!((base.ticks_at(t0 + Duration::from_millis(250)) - 11.0).abs() < 1e-6);
    }

    #[test]
    fn a_step_re_anchors_forwards_and_backwards() {
        let t0 = Instant::now();
        let mut base = ShowTimeBase::new(RATE, t0);
        let now = t0 + Duration::from_secs(2);
        assert_eq!(base.tick_at(now), 88);
        base.step_to_tick(now, 88 + 5 * 44, "master is 5 s ahead");
        assert_eq!(
            base.tick_at(now),
            308,
            "tick 308 is due at once after the step"
        );
        assert_eq!(
            base.instant_of_tick(309),
            now + Duration::from_nanos(22_727_273),
            "the next tick is one period after the step, not 5 s away"
        );
        let later = now + Duration::from_secs(1);
        base.step_to_tick(later, 100, "master is behind");
        assert_eq!(base.tick_at(later), 100, "a step may go backwards");
        assert_eq!(base.instant_of_tick(100), later);
        assert_eq!(base.tick_at(later + Duration::from_secs(1)), 144);
    }

    /// Drives the base with a 1 ms clock over a slew and checks what a tick schedule sees.
    fn ticks_through_slew(target_offset_ms: i64, ppm: u32) {
        let t0 = Instant::now();
        let mut base = ShowTimeBase::new(RATE, t0);
        let start = t0 + Duration::from_secs(10);
        let current = base.show_ns_at(start);
        let target = (current as i64 + target_offset_ms * 1_000_000) as u64;
        let span = base.slew(start, target, ppm);
        let expected = Duration::from_nanos(
            target_offset_ms.unsigned_abs() * 1_000_000 * 1_000_000
                / u64::from(ppm.min(MAX_SLEW_PPM)),
        );
        assert!(
            span.abs_diff(expected) < Duration::from_micros(1),
            "a {target_offset_ms} ms correction at {ppm} ppm takes {expected:?}, got {span:?}"
        );
        let mut last_ns = base.show_ns_at(start);
        let mut last_tick = base.tick_at(start);
        let mut last_instant = base.instant_of_tick(last_tick);
        let end = start + span + Duration::from_secs(2);
        let period = base.period().as_nanos() as f64;
        let mut at = start;
        while at < end {
            at += Duration::from_millis(1);
            let ns = base.show_ns_at(at);
            assert!(
                ns >= last_ns,
                "show time never goes backwards during a slew"
            );
            last_ns = ns;
            let tick = base.tick_at(at);
            assert!(
                tick == last_tick || tick == last_tick + 1,
                "1 ms later the tick moved from {last_tick} to {tick}: a slew must not skip"
            );
            if tick == last_tick + 1 {
                let instant = base.instant_of_tick(tick);
                assert_eq!(
                    base.tick_at(instant),
                    tick,
                    "tick {tick} at its own instant"
                );
                let spacing = (instant - last_instant).as_nanos() as f64;
                let limit = f64::from(ppm.min(MAX_SLEW_PPM)) / 1e6;
                assert!(
                    spacing >= period / (1.0 + limit) - 2.0
                        && spacing <= period / (1.0 - limit) + 2.0,
                    "tick {tick} comes {spacing} ns after the previous one (period {period}, {ppm} ppm)"
                );
                last_instant = instant;
            }
            last_tick = tick;
        }
        assert!(!base.is_slewing(end));
        let after = base.show_ns_at(end) as i128;
        let want = target as i128 + (end - start).as_nanos() as i128;
        assert!(
            (after - want).abs() <= 2,
            "after the slew show time is on target: {after} vs {want}"
        );
    }

    #[test]
    fn a_slew_forward_keeps_ticks_monotonic_and_never_skips_one() {
        ticks_through_slew(20, 5_000);
    }

    #[test]
    fn a_slew_backward_keeps_ticks_monotonic_and_never_repeats_one() {
        ticks_through_slew(-20, 5_000);
        // Even the fastest slew allowed only stretches ticks; it does not step.
        ticks_through_slew(-300, 2_000_000);
    }

    #[test]
    fn an_event_takes_effect_at_the_first_tick_at_or_after_it() {
        for rate in [1, 30, 44, 1000] {
            for ns in [
                0,
                1,
                22_727_272,
                22_727_273,
                125_000_000,
                999_999_999,
                1_000_000_000,
            ] {
                let k = first_tick_at(ns, rate);
                assert!(
                    ns_of_tick(k, rate) >= ns,
                    "{rate} Hz: tick {k} is at or after {ns}"
                );
                assert!(
                    k == 0 || ns_of_tick(k - 1, rate) < ns,
                    "{rate} Hz: tick {} is before {ns}",
                    k - 1
                );
            }
        }
        assert_eq!(first_tick_at(125_000_000, 44), 6, "5.5 ticks → tick 6");
        assert_eq!(first_tick_at(250_000_000, 44), 11, "exactly tick 11");
    }

    #[test]
    fn a_frequency_correction_changes_the_speed_without_a_jump() {
        let t0 = Instant::now();
        let mut base = ShowTimeBase::new(RATE, t0);
        let at = t0 + Duration::from_secs(10);
        let before = base.show_ns_at(at);
        base.set_frequency(at, -100_000);
        assert_eq!(base.frequency_ppb(), -100_000);
        assert_eq!(
            base.show_ns_at(at),
            before,
            "no jump when the frequency changes"
        );
        let later = at + Duration::from_secs(100);
        assert_eq!(
            base.show_ns_at(later) - before,
            100_000_000_000 - 10_000_000,
            "100 s at −100 ppm is 10 ms less show time"
        );
        for tick in [441, 442, 4_400, 4_401, 100_000] {
            let instant = base.instant_of_tick(tick);
            assert_eq!(
                base.tick_at(instant),
                tick,
                "tick {tick} at its own instant"
            );
            assert_eq!(
                base.tick_at(instant - Duration::from_nanos(1)),
                tick - 1,
                "one nanosecond before tick {tick}"
            );
        }
        // Before the anchor too.
        let early = base.instant_of_tick(100);
        assert_eq!(base.tick_at(early), 100);
        assert_eq!(base.tick_at(early - Duration::from_nanos(1)), 99);
        // A slew adds to the frequency; changing the frequency mid-slew keeps the slew's
        // remaining correction.
        let now = t0 + Duration::from_secs(200);
        let show = base.show_ns_at(now);
        let span = base.slew(now, show + 1_000_000, 1_000);
        assert_eq!(span, Duration::from_secs(1), "1 ms at 1,000 ppm takes 1 s");
        let mid = now + Duration::from_millis(500);
        let mid_show = base.show_ns_at(mid);
        base.set_frequency(mid, 50_000);
        assert_eq!(base.show_ns_at(mid), mid_show, "no jump mid-slew");
        assert!(base.is_slewing(mid));
        let end = now + Duration::from_secs(3);
        let expected = i128::from(show) + 500_000_000 - 50_000 + 500_000 // first half, at −100 ppm + 1,000 ppm
            + 500_000_000 + 25_000 + 500_000 // second half, at +50 ppm + 1,000 ppm
            + 2_000_000_000 + 100_000; // then 2 s at +50 ppm
        let got = i128::from(base.show_ns_at(end));
        assert!(
            (got - expected).abs() <= 3,
            "show time after a slew across a frequency change: {got} vs {expected}"
        );
        // Steps keep the frequency (they move show time, not the oscillator).
        base.step_to(end, 0, "test");
        assert_eq!(base.frequency_ppb(), 50_000);
        assert_eq!(base.show_ns_at(end + Duration::from_secs(1)), 1_000_050_000);
    }

    #[test]
    fn a_ticks_time_is_the_same_on_both_sides_of_the_64_bit_fast_path() {
        let wide = |k: u64, rate: u32| {
            let ns = (u128::from(k) * 1_000_000_000).div_ceil(u128::from(rate));
            ns.min(u128::from(u64::MAX)) as u64
        };
        let edge = u64::MAX / NANOS_PER_SEC;
        for rate in [1, 30, 44, 1000, u32::MAX] {
            for k in [
                0,
                1,
                43,
                44,
                45,
                edge - 1,
                edge,
                edge + 1,
                u64::MAX / 2,
                u64::MAX,
            ] {
                assert_eq!(ns_of_tick(k, rate), wide(k, rate), "tick {k} at {rate} Hz");
            }
        }
        assert_eq!(ns_of_tick(u64::MAX, 1), u64::MAX, "saturates");
    }

    #[test]
    fn a_rate_change_keeps_the_tick_due_now() {
        let t0 = Instant::now();
        let mut base = ShowTimeBase::new(44, t0);
        let now = t0 + Duration::from_secs(3);
        base.set_rate(now, 30, 132);
        assert_eq!(base.tick_at(now), 132);
        assert_eq!(base.tick_at(now + Duration::from_secs(1)), 162);
    }
}
