//! Health figures: wall-clock timestamps as RFC 3339, and this process's CPU and memory.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `2024-11-29T12:00:00Z` (UTC, whole seconds).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// CPU time (user + system) of a process, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".into(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Clock ticks are 100 Hz on every Linux this runs on.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Resident memory in MiB, from `/proc/<pid>/status`.
pub fn memory_mb(pid: Option<u32>) -> Option<f64> {
    status_kib(pid, "VmRSS:").map(|kib| kib as f64 / 1024.0)
}

/// Peak resident memory (high-water mark) in MiB, from `/proc/<pid>/status`.
pub fn peak_memory_mb(pid: Option<u32>) -> Option<f64> {
    status_kib(pid, "VmHWM:").map(|kib| kib as f64 / 1024.0)
}

/// One `KEY: N kB` line of `/proc/<pid>/status` (`/proc/self` when `pid` is `None`).
fn status_kib(pid: Option<u32>, key: &str) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".into(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU use of this process in percent of one core, between calls.
#[derive(Debug)]
pub struct CpuMeter {
    last: Option<(Instant, Duration)>,
}

impl Default for CpuMeter {
    fn default() -> Self {
        CpuMeter {
            last: cpu_time(None).map(|c| (Instant::now(), c)),
        }
    }
}

impl CpuMeter {
    /// Percent of one core since the previous call.
    pub fn sample(&mut self) -> f64 {
        let now = Instant::now();
        let Some(cpu) = cpu_time(None) else {
            return 0.0;
        };
        let pct = match self.last {
            Some((t, c)) if now > t => {
                cpu.saturating_sub(c).as_secs_f64() / (now - t).as_secs_f64() * 100.0
            }
            _ => 0.0,
        };
        self.last = Some((now, cpu));
        (pct * 10.0).round() / 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_732_881_600);
        assert_eq!(rfc3339(t), "2024-11-29T12:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        assert!(cpu_time(None).is_some());
        assert!(memory_mb(None).is_some_and(|m| m > 1.0));
    }
}
