//! The node's own clock as numbers, and the injected clock error of tests.
//!
//! Exchanges need timestamps as integers, and the engine's show time base counts from
//! [`Instant`]s. On Linux an `Instant` is `CLOCK_MONOTONIC`, so a [`LocalClock`] pairs one
//! `Instant` with one `clock_gettime(CLOCK_MONOTONIC)` reading and converts both ways. All
//! processes on one host share that clock, which is what lets tests know the true offset
//! between two nodes exactly.
//!
//! `ROCKONTROL_TEST_CLOCK="offset=+37ms,drift=+80ppm"` gives a node a clock that reads
//! `monotonic + offset + drift · (monotonic − start)` ([`InjectedError`]), plus a step
//! `step=+10ms@20s` (10 ms more from 20 s after start on) where given: the local clock of
//! every exchange is that one, so the estimator must find the error and the servo must undo
//! it. Nothing else in the node changes.

use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};

/// The environment variable that injects a clock error (tests only).
pub const TEST_CLOCK_VARIABLE: &str = "ROCKONTROL_TEST_CLOCK";

/// An injected clock error: the node's clock is `offset_ns` ahead at its start and runs
/// `drift_ppb` parts per billion fast; with `step`, it jumps by `step.1` ns at `step.0` ns
/// after its start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectedError {
    pub offset_ns: i64,
    pub drift_ppb: i64,
    pub step: Option<(i64, i64)>,
}

/// Why an injected clock error cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{TEST_CLOCK_VARIABLE}={text:?}: {why} (expected e.g. \"offset=+37ms,drift=+80ppm,step=+10ms@20s\"; offset in ns, us, ms or s, drift in ppm or ppb)"
)]
pub struct InjectedErrorParse {
    text: String,
    why: String,
}

impl InjectedError {
    /// Parses `offset=+37ms,drift=+80ppm` (either part may be left out).
    pub fn parse(text: &str) -> Result<InjectedError, InjectedErrorParse> {
        let fail = |why: String| InjectedErrorParse {
            text: text.to_string(),
            why,
        };
        let mut out = InjectedError::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| fail(format!("{part:?} is not name=value")))?;
            let value = value.trim();
            if name.trim() == "step" {
                let (size, at) = value
                    .split_once('@')
                    .ok_or_else(|| fail(format!("step {value:?} is not SIZE@TIME")))?;
                let size = InjectedError::parse(&format!("offset={size}"))
                    .map_err(|e| fail(format!("step size: {}", e.why)))?;
                let at = InjectedError::parse(&format!("offset={at}"))
                    .map_err(|e| fail(format!("step time: {}", e.why)))?;
                out.step = Some((at.offset_ns, size.offset_ns));
                continue;
            }
            let split = value
                .find(|c: char| c.is_ascii_alphabetic() || c == 'µ')
                .unwrap_or(value.len());
            let (number, unit) = value.split_at(split);
            let number: f64 = number
                .trim()
                .trim_start_matches('+')
                .parse()
                .map_err(|_| fail(format!("{number:?} is not a number")))?;
            match name.trim() {
                "offset" => {
                    let scale = match unit {
                        "ns" => 1.0,
                        "us" | "µs" => 1e3,
                        "ms" => 1e6,
                        "s" => 1e9,
                        other => return Err(fail(format!("offset unit {other:?}"))),
                    };
                    out.offset_ns = (number * scale).round() as i64;
                }
                "drift" => {
                    let scale = match unit {
                        "ppm" => 1e3,
                        "ppb" => 1.0,
                        other => return Err(fail(format!("drift unit {other:?}"))),
                    };
                    out.drift_ppb = (number * scale).round() as i64;
                }
                other => return Err(fail(format!("unknown part {other:?}"))),
            }
        }
        Ok(out)
    }
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds.
pub fn monotonic_ns() -> i64 {
    clock_ns(ClockId::CLOCK_MONOTONIC)
}

/// `clock_gettime(CLOCK_REALTIME)` in nanoseconds (kernel receive timestamps use it).
pub fn realtime_ns() -> i64 {
    clock_ns(ClockId::CLOCK_REALTIME)
}

fn clock_ns(id: ClockId) -> i64 {
    // Both clocks always exist on Linux; a failure would be a broken kernel.
    let ts = clock_gettime(id).expect("clock_gettime of a clock Linux always has");
    ts.tv_sec() * 1_000_000_000 + ts.tv_nsec()
}

/// The node's clock (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalClock {
    epoch: Instant,
    epoch_mono_ns: i64,
    injected: Option<InjectedError>,
}

impl LocalClock {
    /// The monotonic clock as it is.
    pub fn system() -> LocalClock {
        // Read the monotonic clock between two Instants and keep the middle: the pairing is
        // then good to a few tens of nanoseconds.
        let before = Instant::now();
        let mono = monotonic_ns();
        let after = Instant::now();
        LocalClock {
            epoch: before + (after - before) / 2,
            epoch_mono_ns: mono,
            injected: None,
        }
    }

    /// The monotonic clock with an error injected from now on.
    pub fn with_error(error: InjectedError) -> LocalClock {
        LocalClock {
            injected: Some(error),
            ..LocalClock::system()
        }
    }

    /// [`LocalClock::system`], or with the error in `$ROCKONTROL_TEST_CLOCK` when it is set.
    pub fn from_env() -> Result<LocalClock, InjectedErrorParse> {
        match std::env::var(TEST_CLOCK_VARIABLE) {
            Ok(text) if !text.trim().is_empty() => {
                let error = InjectedError::parse(&text)?;
                tracing::warn!(
                    "{TEST_CLOCK_VARIABLE}: this node's clock is off by {:+.3} ms and runs {:+.3} ppm fast (a test setting)",
                    error.offset_ns as f64 / 1e6,
                    error.drift_ppb as f64 / 1e3
                );
                Ok(LocalClock::with_error(error))
            }
            _ => Ok(LocalClock::system()),
        }
    }

    /// The injected error, if any.
    pub fn injected(&self) -> Option<InjectedError> {
        self.injected
    }

    /// True `CLOCK_MONOTONIC` at `at`, in nanoseconds.
    pub fn mono_ns(&self, at: Instant) -> i64 {
        if at >= self.epoch {
            self.epoch_mono_ns + (at - self.epoch).as_nanos() as i64
        } else {
            self.epoch_mono_ns - (self.epoch - at).as_nanos() as i64
        }
    }

    /// The `Instant` at true `CLOCK_MONOTONIC` `mono_ns`.
    pub fn instant_of_mono(&self, mono_ns: i64) -> Instant {
        let d = mono_ns - self.epoch_mono_ns;
        if d >= 0 {
            self.epoch + Duration::from_nanos(d as u64)
        } else {
            self.epoch
                .checked_sub(Duration::from_nanos(d.unsigned_abs()))
                .unwrap_or(self.epoch)
        }
    }

    /// This clock's reading minus true monotonic time at true monotonic `mono_ns`.
    pub fn error_at_mono(&self, mono_ns: i64) -> i64 {
        match self.injected {
            None => 0,
            Some(e) => {
                let t = i128::from(mono_ns - self.epoch_mono_ns);
                let step = match e.step {
                    Some((at, size)) if t >= i128::from(at) => size,
                    _ => 0,
                };
                e.offset_ns + (t * i128::from(e.drift_ppb)).div_euclid(1_000_000_000) as i64 + step
            }
        }
    }

    /// This clock's reading at true monotonic `mono_ns`.
    pub fn read_mono(&self, mono_ns: i64) -> i64 {
        mono_ns + self.error_at_mono(mono_ns)
    }

    /// This clock's reading at `at`, in nanoseconds.
    pub fn read(&self, at: Instant) -> i64 {
        self.read_mono(self.mono_ns(at))
    }

    /// This clock's reading now.
    pub fn now(&self) -> i64 {
        self.read(Instant::now())
    }

    /// The `Instant` at which this clock reads `local` (the inverse of [`LocalClock::read`],
    /// to a nanosecond).
    pub fn instant_of(&self, local: i64) -> Instant {
        // The error changes by ppm: two fixed-point rounds settle it.
        let mut mono = local - self.error_at_mono(local);
        mono = local - self.error_at_mono(mono);
        self.instant_of_mono(mono)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_injected_error_parses_in_its_units() {
        assert_eq!(
            InjectedError::parse("offset=+37ms,drift=+80ppm"),
            Ok(InjectedError {
                offset_ns: 37_000_000,
                drift_ppb: 80_000,
                step: None,
            })
        );
        assert_eq!(
            InjectedError::parse(" offset = -250us "),
            Ok(InjectedError {
                offset_ns: -250_000,
                drift_ppb: 0,
                step: None,
            })
        );
        assert_eq!(
            InjectedError::parse("drift=-1.5ppm,offset=2s"),
            Ok(InjectedError {
                offset_ns: 2_000_000_000,
                drift_ppb: -1_500,
                step: None,
            })
        );
        assert_eq!(
            InjectedError::parse("step=+10ms@20s,offset=1ms"),
            Ok(InjectedError {
                offset_ns: 1_000_000,
                drift_ppb: 0,
                step: Some((20_000_000_000, 10_000_000)),
            })
        );
        let e = InjectedError::parse("step=10ms").expect_err("no time");
        assert!(e.to_string().contains("SIZE@TIME"), "{e}");
        let e = InjectedError::parse("offset=37").expect_err("no unit");
        assert!(e.to_string().contains("offset unit"), "{e}");
        let e = InjectedError::parse("skew=1ppm").expect_err("unknown part");
        assert!(e.to_string().contains("unknown part \"skew\""), "{e}");
    }

    #[test]
    fn the_clock_reads_monotonic_plus_the_injected_error() {
        let clock = LocalClock::with_error(InjectedError {
            offset_ns: 37_000_000,
            drift_ppb: 80_000,
            step: Some((20_000_000_000, -5_000_000)),
        });
        let at = clock.epoch + Duration::from_secs(10);
        assert_eq!(
            clock.read(at) - clock.mono_ns(at),
            37_000_000 + 800_000,
            "37 ms plus 80 ppm of 10 s"
        );
        let after = clock.epoch + Duration::from_secs(20);
        assert_eq!(
            clock.read(after) - clock.mono_ns(after),
            37_000_000 + 1_600_000 - 5_000_000,
            "and the step from 20 s on"
        );
        for local in [clock.read(at), clock.read(clock.epoch) - 5] {
            assert!(
                clock.read(clock.instant_of(local)).abs_diff(local) <= 1,
                "instant_of inverts read"
            );
        }
        let plain = LocalClock::system();
        let now = Instant::now();
        let direct = monotonic_ns();
        assert!(
            (plain.read(now) - direct).abs() < 1_000_000,
            "an uninjected clock is CLOCK_MONOTONIC"
        );
    }
}
