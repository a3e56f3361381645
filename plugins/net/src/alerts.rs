//! The master's operator alerts: bounded, aggregated, ranked by severity, and logged at a
//! bounded rate. Plain data and logic: time is passed in.
//!
//! Repeats of one kind from one source (a peer address, a node, a universe) are one entry
//! with a count and the first and last time ("1100 refused hellos from 127.0.0.1 in 1 s"),
//! so a flood cannot push anything else out. When the list is full, the oldest entry of the
//! lowest severity goes, and only if it is not more severe than the newcomer: a flood of
//! warnings never evicts an error. The log line of an entry is written when it first appears
//! and then at most once per [`LOG_INTERVAL`], with the number of repeats in between.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Distinct alerts kept.
pub const MAX_ALERTS: usize = 1000;
/// One alert's log line is written at most this often (repeats are counted meanwhile).
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// How bad an alert is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// What an alert is about; repeats aggregate per kind and source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A universe given to two nodes.
    UniverseConflict,
    /// A node command failed after its retries.
    CommandFailed,
    /// A hello was refused (bad build, no key for a known id, too many pending, …).
    RefusedHello,
    /// A connection was refused at accept (the connection cap).
    RefusedConnection,
    /// Anything else.
    Other,
}

impl AlertKind {
    /// The plural a count is told in.
    fn plural(self) -> &'static str {
        match self {
            AlertKind::UniverseConflict => "universe conflicts",
            AlertKind::CommandFailed => "command failures",
            AlertKind::RefusedHello => "refused hellos",
            AlertKind::RefusedConnection => "refused connections",
            AlertKind::Other => "alerts",
        }
    }
}

/// An operator alert, as `GET /api/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// When it first happened (RFC 3339).
    pub time: String,
    /// When it last happened (RFC 3339).
    pub last_time: String,
    pub severity: Severity,
    pub kind: AlertKind,
    /// What repeats are aggregated by: a peer address, a node id, a universe.
    pub source: Option<String>,
    pub node_id: Option<String>,
    /// The text (for repeats: the count, the span and the latest detail).
    pub message: String,
    /// How many times it happened.
    pub count: u64,
    #[serde(skip)]
    first: SystemTime,
    #[serde(skip)]
    last: SystemTime,
    #[serde(skip)]
    detail: String,
    #[serde(skip)]
    logged_at: SystemTime,
    #[serde(skip)]
    logged_count: u64,
}

impl Alert {
    fn summary(&self) -> String {
        if self.count <= 1 {
            return self.detail.clone();
        }
        let span = self
            .last
            .duration_since(self.first)
            .unwrap_or_default()
            .as_secs()
            .max(1);
        let from = self
            .source
            .as_deref()
            .map(|s| format!(" from {s}"))
            .unwrap_or_default();
        format!(
            "{} {}{from} in {span} s; last: {}",
            self.count,
            self.kind.plural(),
            self.detail
        )
    }
}

/// A new alert's description.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert<'a> {
    pub severity: Severity,
    pub kind: AlertKind,
    pub source: Option<&'a str>,
    pub node_id: Option<&'a str>,
    pub message: String,
}

/// A log line the caller should write now (its severity and text).
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub severity: Severity,
    pub text: String,
}

/// The bounded, aggregated list.
#[derive(Debug)]
pub struct AlertLog {
    list: VecDeque<Alert>,
    cap: usize,
    /// Alerts not kept because every kept one was more severe.
    dropped: u64,
    dropped_logged_at: Option<SystemTime>,
}

impl Default for AlertLog {
    fn default() -> Self {
        AlertLog::with_capacity(MAX_ALERTS)
    }
}

impl AlertLog {
    /// A list keeping at most `cap` distinct alerts (at least one).
    pub fn with_capacity(cap: usize) -> Self {
        AlertLog {
            list: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
            dropped_logged_at: None,
        }
    }

    /// The alerts, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Alert> {
        self.list.iter()
    }

    /// The alerts, oldest first, as a list.
    pub fn to_vec(&self) -> Vec<Alert> {
        self.list.iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Alerts not kept because the list was full of more severe ones.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Records an alert at `now`; returns the log line to write, if one is due.
    pub fn raise(&mut self, new: NewAlert<'_>, now: SystemTime) -> Option<LogLine> {
        let key = |a: &Alert| a.kind == new.kind && a.source.as_deref() == new.source;
        if let Some(a) = self.list.iter_mut().find(|a| key(a)) {
            a.count += 1;
            a.last = now;
            a.last_time = crate::health::rfc3339(now);
            a.detail = new.message;
            a.severity = a.severity.max(new.severity);
            if new.node_id.is_some() {
                a.node_id = new.node_id.map(str::to_string);
            }
            a.message = a.summary();
            let due = now.duration_since(a.logged_at).unwrap_or_default() >= LOG_INTERVAL;
            if !due {
                return None;
            }
            let repeats = a.count - a.logged_count;
            a.logged_at = now;
            a.logged_count = a.count;
            return Some(LogLine {
                severity: a.severity,
                text: format!("{} ({repeats} since the last report)", a.message),
            });
        }
        if self.list.len() >= self.cap {
            let lowest = self.list.iter().map(|a| a.severity).min();
            let victim = lowest
                .filter(|s| *s <= new.severity)
                .and_then(|s| self.list.iter().position(|a| a.severity == s));
            match victim {
                Some(i) => {
                    self.list.remove(i);
                }
                None => {
                    self.dropped += 1;
                    let due = self
                        .dropped_logged_at
                        .is_none_or(|t| now.duration_since(t).unwrap_or_default() >= LOG_INTERVAL);
                    if !due {
                        return None;
                    }
                    self.dropped_logged_at = Some(now);
                    return Some(LogLine {
                        severity: Severity::Warning,
                        text: format!(
                            "alert list full of more severe alerts; {} not kept so far (latest: {})",
                            self.dropped, new.message
                        ),
                    });
                }
            }
        }
        let alert = Alert {
            time: crate::health::rfc3339(now),
            last_time: crate::health::rfc3339(now),
            severity: new.severity,
            kind: new.kind,
            source: new.source.map(str::to_string),
            node_id: new.node_id.map(str::to_string),
            message: new.message.clone(),
            count: 1,
            first: now,
            last: now,
            detail: new.message,
            logged_at: now,
            logged_count: 1,
        };
        let line = LogLine {
            severity: alert.severity,
            text: alert.message.clone(),
        };
        self.list.push_back(alert);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(ms)
    }

    fn refused(source: &str, n: u64) -> NewAlert<'_> {
        NewAlert {
            severity: Severity::Warning,
            kind: AlertKind::RefusedHello,
            source: Some(source),
            node_id: None,
            message: format!("hello {n} refused: protocol mismatch"),
        }
    }

    fn conflict() -> NewAlert<'static> {
        NewAlert {
            severity: Severity::Error,
            kind: AlertKind::UniverseConflict,
            source: Some("universe 1"),
            node_id: None,
            message: "universe conflict: universe 1 is assigned to node-01 and node-02".into(),
        }
    }

    /// Issue 16 item 7: 1,100 refused hellos after a conflict pushed the conflict out of the
    /// list and wrote 1,100 log lines.
    #[test]
    fn a_flood_of_refused_hellos_is_one_entry_and_a_few_log_lines() {
        let mut log = AlertLog::default();
        assert!(log.raise(conflict(), at(0)).is_some(), "first: logged");
        let mut lines = 0;
        for n in 0..1100u64 {
            if log.raise(refused("127.0.0.1", n), at(1 + n)).is_some() {
                lines += 1;
            }
        }
        assert_eq!(
            log.len(),
            2,
            "the conflict and one aggregate: {:?}",
            log.to_vec()
        );
        let conflict = log
            .iter()
            .find(|a| a.kind == AlertKind::UniverseConflict)
            .expect("the conflict is kept");
        assert_eq!(conflict.count, 1);
        let flood = log
            .iter()
            .find(|a| a.kind == AlertKind::RefusedHello)
            .expect("the aggregate");
        assert_eq!(flood.count, 1100);
        assert!(
            flood
                .message
                .starts_with("1100 refused hellos from 127.0.0.1 in 1 s; last: hello 1099"),
            "{}",
            flood.message
        );
        assert_eq!(
            lines, 1,
            "1.1 s of repeats: the first line only (5 s interval)"
        );
        // Later repeats report once per interval, with the count in between.
        let line = log
            .raise(refused("127.0.0.1", 2000), at(6000))
            .expect("due after 5 s");
        assert!(
            line.text.contains("(1100 since the last report)"),
            "{}",
            line.text
        );
        assert_eq!(log.raise(refused("127.0.0.1", 2001), at(6001)), None);
    }

    #[test]
    fn a_full_list_never_drops_a_more_severe_alert_for_a_less_severe_one() {
        let mut log = AlertLog::with_capacity(3);
        log.raise(conflict(), at(0));
        for (i, source) in ["10.0.0.1", "10.0.0.2"].into_iter().enumerate() {
            log.raise(refused(source, 0), at(1 + i as u64));
        }
        // A third source: the oldest warning goes, the error stays.
        log.raise(refused("10.0.0.3", 0), at(10));
        let sources: Vec<_> = log.iter().filter_map(|a| a.source.clone()).collect();
        assert_eq!(sources, vec!["universe 1", "10.0.0.2", "10.0.0.3"]);
        // Full of errors: an info is not kept, and the errors are.
        let mut errors = AlertLog::with_capacity(2);
        errors.raise(conflict(), at(0));
        let mut failed = conflict();
        failed.kind = AlertKind::CommandFailed;
        errors.raise(failed, at(1));
        let info = NewAlert {
            severity: Severity::Info,
            kind: AlertKind::Other,
            source: None,
            node_id: None,
            message: "fyi".into(),
        };
        assert!(
            errors.raise(info.clone(), at(2)).is_some(),
            "the first drop is logged"
        );
        assert_eq!(
            errors.raise(info, at(3)),
            None,
            "later drops are rate-limited"
        );
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|a| a.severity == Severity::Error));
        assert_eq!(errors.dropped(), 2);
    }
}
