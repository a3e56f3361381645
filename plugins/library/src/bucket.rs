//! [`TokenBucket`]: the bandwidth cap's arithmetic (no I/O, time passed in).
//!
//! Every download of a node draws from one bucket, so the cap holds for the node as a whole,
//! however many downloads run. The bucket may go into debt: a chunk larger than what is left
//! is sent and the next one waits for the debt to be refilled, which keeps the long-run rate
//! exact without splitting chunks.

use std::time::Duration;

/// Bits in a megabit (network units, 10^6).
const BITS_PER_MBIT: f64 = 1_000_000.0;

/// A token bucket in bytes.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Bytes per second; `None`: no cap.
    rate: Option<f64>,
    /// Most bytes that may go out at once after an idle time.
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A bucket for `mbit_per_s` megabits per second (`None` or 0: no cap), full at `now`,
    /// holding at most 50 ms worth of bytes (at least 64 KiB) so a pause does not turn into
    /// a burst that fills switch buffers ahead of DMX traffic.
    pub fn new(mbit_per_s: Option<f64>, now: Duration) -> Self {
        let rate = mbit_per_s
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(|r| r * BITS_PER_MBIT / 8.0);
        let burst = rate.map_or(0.0, |r| (r * 0.05).max(65_536.0));
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Bytes per second, if capped.
    pub fn bytes_per_second(&self) -> Option<f64> {
        self.rate
    }

    /// Takes `bytes` at `now` and says how long to wait before sending them (zero when there
    /// are tokens enough, or without a cap).
    pub fn take(&mut self, now: Duration, bytes: u64) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * rate).min(self.burst);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cap_never_waits() {
        let mut b = TokenBucket::new(None, Duration::ZERO);
        assert_eq!(b.take(Duration::ZERO, u64::MAX / 2), Duration::ZERO);
        let mut b = TokenBucket::new(Some(0.0), Duration::ZERO);
        assert_eq!(b.take(Duration::ZERO, 1 << 30), Duration::ZERO);
    }

    #[test]
    fn sending_as_told_holds_the_rate() {
        // 80 Mbit/s = 10 MB/s. Send 64 KiB chunks, always waiting as told: after 1 s of
        // sending, the bytes sent must be 10 MB plus at most the burst.
        let mut b = TokenBucket::new(Some(80.0), Duration::ZERO);
        assert_eq!(b.bytes_per_second(), Some(10_000_000.0));
        let mut now = Duration::ZERO;
        let mut sent = 0u64;
        while now < Duration::from_secs(1) {
            now += b.take(now, 65_536);
            sent += 65_536;
        }
        let burst = 500_000.0;
        let expected = 10_000_000.0 + burst;
        assert!(
            (sent as f64 - expected).abs() <= 65_536.0 * 2.0,
            "sent {sent} bytes in 1 s at 10 MB/s with a {burst} byte burst, expected about {expected}"
        );
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let mut b = TokenBucket::new(Some(8.0), Duration::ZERO); // 1 MB/s, burst 64 KiB
        // An hour idle: still only the burst goes out at once.
        let later = Duration::from_secs(3600);
        assert_eq!(b.take(later, 65_536), Duration::ZERO);
        let wait = b.take(later, 1_000_000);
        assert!(
            (wait.as_secs_f64() - 1.0).abs() < 1e-6,
            "1 MB right after the burst waits 1 s at 1 MB/s, waited {wait:?}"
        );
    }

    #[test]
    fn time_going_backwards_is_ignored() {
        let mut b = TokenBucket::new(Some(8.0), Duration::from_secs(10));
        b.take(Duration::from_secs(10), 65_536);
        let wait = b.take(Duration::from_secs(5), 100_000);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
    }
}
