//! The master's audit log: every control action (who: key id and name, role; what; when; from
//! where: the peer's address; the result status and, when refused, why), one JSON object per
//! line, appended to `state_dir/audit.jsonl` and never rewritten.
//!
//! Each entry has a sequence number (its line number from 1), so readers page with
//! `GET /api/audit?after=SEQ&limit=N` and never see an entry twice. A page seeks to its first
//! entry through an index of byte offsets (one per [`INDEX_EVERY`] entries, built when the log
//! opens and kept as it grows): a show's long log is not read from its start for every page.
//! The last few entries are also kept in memory for the node view.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::roles::{Caller, Role};

/// The file's name in the state directory.
pub const FILE: &str = "audit.jsonl";
/// Entries kept in memory for the node view.
pub const RECENT: usize = 50;
/// Entries one page holds at most.
pub const MAX_PAGE: usize = 1000;
/// The index holds the byte offset of every this-many-th entry.
pub const INDEX_EVERY: u64 = 1024;

/// One control action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1 for the first line of the file, then one more per entry.
    pub seq: u64,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// The key's public id (none: no valid key was presented).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The peer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// What was asked (`POST /api/command go main`, …).
    pub action: String,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// The refusal's reason (status 400 and above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What [`AuditLog::record`] takes: an entry before it has its number and time.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub caller: Option<Caller>,
    pub peer: Option<std::net::SocketAddr>,
    pub action: String,
    pub status: u16,
    pub reason: Option<String>,
}

/// The append-only log file and the last [`RECENT`] entries.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    file: Option<std::fs::File>,
    next: u64,
    recent: VecDeque<AuditEntry>,
    /// `index[k]`: the byte offset of line `k · INDEX_EVERY` (entry `k · INDEX_EVERY + 1`).
    index: Vec<u64>,
    /// Bytes in the file.
    len: u64,
}

impl State {
    /// Notes where the line about to be written at byte `len` starts, when it opens a block.
    fn index_next(&mut self) {
        if (self.next - 1).is_multiple_of(INDEX_EVERY)
            && self.index.len() as u64 == (self.next - 1) / INDEX_EVERY
        {
            self.index.push(self.len);
        }
    }
}

impl AuditLog {
    /// The log in `state_dir` (created if missing; entries already there keep their numbers).
    pub fn open(state_dir: &Path) -> std::io::Result<AuditLog> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join(FILE);
        let mut state = State {
            file: None,
            next: 1,
            recent: VecDeque::new(),
            index: Vec::new(),
            len: 0,
        };
        if let Ok(file) = std::fs::File::open(&path) {
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            loop {
                line.clear();
                state.index_next();
                let n = reader.read_line(&mut line)?;
                if n == 0 {
                    break;
                }
                state.len += n as u64;
                state.next += 1;
                if let Ok(entry) = serde_json::from_str::<AuditEntry>(line.trim_end()) {
                    if state.recent.len() == RECENT {
                        state.recent.pop_front();
                    }
                    state.recent.push_back(entry);
                }
            }
        }
        state.file = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?,
        );
        Ok(AuditLog {
            path,
            state: Mutex::new(state),
        })
    }

    /// Appends `record` as of `now` (one `write` of one whole line); returns the entry. A
    /// failed write is logged and the show goes on.
    pub fn record(&self, record: Record, now: SystemTime) -> AuditEntry {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let caller = record.caller.as_ref();
        let entry = AuditEntry {
            seq: state.next,
            time: crate::health::rfc3339(now),
            key_id: caller.map(|c| c.key_id.clone()),
            name: caller.map(|c| c.name.clone()),
            role: caller.map(|c| c.role),
            peer: record
                .peer
                .or(caller.and_then(|c| c.peer))
                .map(|p| p.to_string()),
            action: record.action,
            status: record.status,
            reason: record.reason,
        };
        let mut line = serde_json::to_string(&entry).unwrap_or_default();
        line.push('\n');
        let indexed = state.index.len();
        state.index_next();
        let written = match state.file.as_mut() {
            Some(file) => file.write_all(line.as_bytes()),
            None => Err(std::io::Error::other("the log is closed")),
        };
        match written {
            Ok(()) => {
                state.len += line.len() as u64;
                state.next += 1;
                if state.recent.len() == RECENT {
                    state.recent.pop_front();
                }
                state.recent.push_back(entry.clone());
            }
            Err(e) => {
                tracing::error!(
                    "audit: cannot append to {}: {e}; {} not recorded",
                    self.path.display(),
                    entry.action
                );
                // Part of the line may be there: the index goes on from the file's length.
                state.index.truncate(indexed);
                if let Some(len) = state.file.as_ref().and_then(|f| f.metadata().ok()) {
                    state.len = len.len();
                }
            }
        }
        entry
    }

    /// Entries with a number above `after`, at most `limit` ([`MAX_PAGE`] at most), and
    /// those at or after `since` (RFC 3339) when given, read from the file.
    pub fn page(
        &self,
        after: u64,
        since: Option<&str>,
        limit: usize,
    ) -> std::io::Result<Vec<AuditEntry>> {
        let limit = limit.clamp(1, MAX_PAGE);
        // The indexed line at or before the page's first (line `after`).
        let (first_line, offset) = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let k = ((after / INDEX_EVERY) as usize).min(state.index.len().saturating_sub(1));
            (
                k as u64 * INDEX_EVERY,
                state.index.get(k).copied().unwrap_or(0),
            )
        };
        let mut file = std::fs::File::open(&self.path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut out = Vec::new();
        for (i, line) in BufReader::new(file).lines().enumerate() {
            if first_line + (i as u64) < after {
                continue;
            }
            let line = line?;
            let Ok(entry) = serde_json::from_str::<AuditEntry>(&line) else {
                continue;
            };
            // RFC 3339 in UTC with whole seconds sorts as text.
            if since.is_some_and(|s| entry.time.as_str() < s) {
                continue;
            }
            out.push(entry);
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// The last `n` entries (at most [`RECENT`]), oldest first.
    pub fn recent(&self, n: usize) -> Vec<AuditEntry> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let skip = state.recent.len().saturating_sub(n);
        state.recent.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_are_appended_as_numbered_json_lines_and_paged() {
        let dir = std::env::temp_dir().join(format!("rk-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let caller = Caller {
            key_id: "0011223344556677".into(),
            name: "desk".into(),
            role: Role::Operator,
            limits: Default::default(),
            peer: Some("127.0.0.1:5000".parse().expect("addr")),
        };
        {
            let log = AuditLog::open(&dir).expect("open");
            log.record(
                Record {
                    caller: Some(caller.clone()),
                    action: "POST /api/command go main".into(),
                    status: 200,
                    ..Record::default()
                },
                t0,
            );
            log.record(
                Record {
                    peer: Some("127.0.0.2:6000".parse().expect("addr")),
                    action: "POST /api/nodes/node-01/adopt".into(),
                    status: 401,
                    reason: Some("invalid API key".into()),
                    ..Record::default()
                },
                t0 + Duration::from_secs(60),
            );
        }
        let text = std::fs::read_to_string(dir.join(FILE)).expect("read");
        assert_eq!(
            text,
            concat!(
                r#"{"seq":1,"time":"2027-01-15T08:00:00Z","key_id":"0011223344556677","name":"desk","role":"operator","peer":"127.0.0.1:5000","action":"POST /api/command go main","status":200}"#,
                "\n",
                r#"{"seq":2,"time":"2027-01-15T08:01:00Z","peer":"127.0.0.2:6000","action":"POST /api/nodes/node-01/adopt","status":401,"reason":"invalid API key"}"#,
                "\n"
            )
        );
        // Reopened: appends after what is there, numbers going on.
        let log = AuditLog::open(&dir).expect("reopen");
        let third = log.record(
            Record {
                action: "x".into(),
                status: 403,
                ..Record::default()
            },
            t0 + Duration::from_secs(120),
        );
        assert_eq!(third.seq, 3);
        assert_eq!(
            log.recent(2).iter().map(|e| e.seq).collect::<Vec<_>>(),
            [2, 3]
        );
        let seqs = |page: Vec<AuditEntry>| page.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(log.page(0, None, 2).expect("page")), [1, 2]);
        assert_eq!(seqs(log.page(2, None, 2).expect("page")), [3]);
        assert_eq!(
            seqs(
                log.page(0, Some("2027-01-15T08:01:00Z"), 10)
                    .expect("since")
            ),
            [2, 3]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pages_seek_through_the_index_and_agree_with_a_scan_after_reopening() {
        let dir = std::env::temp_dir().join(format!("rk-audit-index-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let n = 3 * INDEX_EVERY + 17;
        let record = |log: &AuditLog, i: u64| {
            log.record(
                Record {
                    // Lines of different lengths: offsets are not a multiple of anything.
                    action: format!("POST /api/command go {}", "x".repeat((i % 7) as usize)),
                    status: 200,
                    ..Record::default()
                },
                t0 + Duration::from_secs(i),
            )
        };
        {
            let log = AuditLog::open(&dir).expect("open");
            for i in 1..=n / 2 {
                record(&log, i);
            }
        }
        // Reopened half way: the index is rebuilt from the file and goes on growing.
        let log = AuditLog::open(&dir).expect("reopen");
        for i in n / 2 + 1..=n {
            assert_eq!(record(&log, i).seq, i);
        }
        let expect = |after: u64, limit: usize| -> Vec<u64> {
            (after + 1..=n).take(limit.clamp(1, MAX_PAGE)).collect()
        };
        let seqs = |page: Vec<AuditEntry>| page.iter().map(|e| e.seq).collect::<Vec<_>>();
        for after in [
            0,
            1,
            INDEX_EVERY - 1,
            INDEX_EVERY,
            INDEX_EVERY + 1,
            2 * INDEX_EVERY + 5,
            3 * INDEX_EVERY,
            n - 1,
            n,
            n + 50,
        ] {
            for limit in [1, 3, 2000] {
                assert_eq!(
                    seqs(log.page(after, None, limit).expect("page")),
                    expect(after, limit),
                    "after {after}, limit {limit}"
                );
            }
        }
        let state = log.state.lock().expect("state");
        assert_eq!(state.index.len() as u64, n.div_ceil(INDEX_EVERY));
        assert_eq!(
            state.len,
            std::fs::metadata(dir.join(FILE)).expect("file").len()
        );
        drop(state);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
