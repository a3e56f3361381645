//! The receiver's log of executed command ids: durable, bounded, and written off the tick.
//!
//! A receiver never applies one command id twice, across restarts too, so the ids it executed
//! are kept in `executed-<node_id>` in its state directory. The DMX tick must never wait on a
//! disk, so [`ExecutedLog`] keeps the ids in memory (checked by the tick) and hands every
//! acknowledgement to a named writer thread over a bounded channel. The writer appends the
//! newly executed ids, `fsync`s, and only then releases the acknowledgements to the link: the
//! master never hears "executed" for an id a power cut could make the node forget.
//!
//! # On-disk format
//! `executed-<node_id>`: UTF-8 text, one command id per line, oldest first, each line ending
//! in `\n`. A torn last line (no `\n`, from a crash mid-write) is ignored. When the file holds
//! more than twice [`EXECUTED_KEPT`] lines it is compacted to the last [`EXECUTED_KEPT`] ids:
//! written to `executed-<node_id>.tmp`, `fsync`ed, renamed over the log, and the directory
//! `fsync`ed, so a crash leaves either the old or the new file.
//!
//! A write error is logged (`error!`) once per failure and reported through
//! [`ExecutedLog::error`] (the receiver's heartbeat says `degraded` while it is set); the
//! acknowledgement still goes out, as the command was executed.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::protocol::ToMaster;

/// Ids remembered (older ones are forgotten; the master never re-sends that far back).
pub const EXECUTED_KEPT: usize = 100_000;

/// Acknowledgements waiting for the writer, at most (beyond it they wait in the log itself).
const WRITER_QUEUE: usize = 1024;

/// One acknowledgement for the writer: the id to make durable first, if any.
#[derive(Debug)]
struct Pending {
    record: Option<String>,
    ack: ToMaster,
}

/// Command ids a receiver executed (see the module docs).
#[derive(Debug)]
pub struct ExecutedLog {
    ids: HashSet<String>,
    order: VecDeque<String>,
    keep: usize,
    /// Acknowledgements the writer's queue could not take yet (sent first next time).
    backlog: VecDeque<Pending>,
    writer: Option<SyncSender<Pending>>,
    error: Arc<Mutex<Option<String>>>,
}

impl ExecutedLog {
    /// Opens (or creates) `dir/executed-<node_id>`, keeping [`EXECUTED_KEPT`] ids; released
    /// acknowledgements go to `out`.
    pub fn open(dir: &Path, node_id: &str, out: mpsc::Sender<ToMaster>) -> Self {
        Self::open_keeping(dir, node_id, out, EXECUTED_KEPT)
    }

    /// [`ExecutedLog::open`] keeping the last `keep` ids.
    pub fn open_keeping(
        dir: &Path,
        node_id: &str,
        out: mpsc::Sender<ToMaster>,
        keep: usize,
    ) -> Self {
        let path = dir.join(format!("executed-{node_id}"));
        let keep = keep.max(1);
        let mut log = ExecutedLog {
            ids: HashSet::new(),
            order: VecDeque::new(),
            keep,
            backlog: VecDeque::new(),
            writer: None,
            error: Arc::new(Mutex::new(None)),
        };
        let mut lines = 0;
        if let Ok(text) = std::fs::read_to_string(&path) {
            // A line without its newline was torn by a crash: it was never acknowledged.
            let complete = text.rfind('\n').map_or("", |end| &text[..end]);
            for line in complete.lines().filter(|l| !l.is_empty()) {
                lines += 1;
                log.remember(line.to_string());
            }
        }
        let file = std::fs::create_dir_all(dir).and_then(|()| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|f| {
                    // Drop a torn tail so the next id starts on its own line.
                    let len = std::fs::read(&path)?
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map_or(0, |i| i + 1);
                    f.set_len(len as u64)?;
                    Ok(f)
                })
        });
        let file = match file {
            Ok(f) => Some(f),
            Err(e) => {
                let message = format!(
                    "cannot keep executed command ids in {}: {e}",
                    path.display()
                );
                tracing::error!("{message}");
                log.set_error(message);
                None
            }
        };
        let (tx, rx) = sync_channel(WRITER_QUEUE);
        let writer = Writer {
            path,
            file,
            lines,
            keep,
            recent: log.order.iter().cloned().collect(),
            out,
            error: Arc::clone(&log.error),
        };
        match std::thread::Builder::new()
            .name("rockontrol-executed-log".into())
            .spawn(move || writer.run(rx))
        {
            Ok(_) => log.writer = Some(tx),
            Err(e) => log.set_error(format!("cannot start the executed-log writer: {e}")),
        }
        log
    }

    fn set_error(&self, message: String) {
        if let Ok(mut e) = self.error.lock() {
            *e = Some(message);
        }
    }

    fn remember(&mut self, id: String) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > self.keep {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }

    /// Whether `id` was executed (here, or before a restart).
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Records `id` as executed now (so a re-send is recognised at once) and queues `ack`,
    /// released once the id is on disk. Never blocks.
    pub fn executed(&mut self, id: &str, ack: ToMaster) {
        self.remember(id.to_string());
        self.queue(Pending {
            record: Some(id.to_string()),
            ack,
        });
    }

    /// Queues an acknowledgement that records nothing (a failure, or an id executed before),
    /// in order behind those waiting for the disk. Never blocks.
    pub fn acknowledge(&mut self, ack: ToMaster) {
        self.queue(Pending { record: None, ack });
    }

    /// Hands waiting acknowledgements to the writer (also called every tick, so a backlog left
    /// by a full queue drains).
    pub fn flush(&mut self) {
        let Some(writer) = &self.writer else {
            self.backlog.clear();
            return;
        };
        while let Some(p) = self.backlog.pop_front() {
            match writer.try_send(p) {
                Ok(()) => {}
                Err(TrySendError::Full(p)) => {
                    self.backlog.push_front(p);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.set_error("the executed-log writer stopped".into());
                    self.writer = None;
                    self.backlog.clear();
                    return;
                }
            }
        }
    }

    fn queue(&mut self, pending: Pending) {
        self.backlog.push_back(pending);
        self.flush();
    }

    /// The latest write error, while the log cannot be written.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

/// The writer thread's side.
struct Writer {
    path: PathBuf,
    file: Option<File>,
    /// Lines in the file.
    lines: usize,
    keep: usize,
    /// The last `keep` ids, to compact from.
    recent: VecDeque<String>,
    out: mpsc::Sender<ToMaster>,
    error: Arc<Mutex<Option<String>>>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Pending>) {
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(p) => p,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // Everything queued goes in one write and one fsync.
            let mut batch = vec![first];
            while let Ok(p) = rx.try_recv() {
                batch.push(p);
            }
            let ids: Vec<&str> = batch.iter().filter_map(|p| p.record.as_deref()).collect();
            if !ids.is_empty() {
                match self.append(&ids) {
                    Ok(()) => self.clear_error(),
                    Err(e) => self.report(format!(
                        "cannot write executed command ids to {}: {e}",
                        self.path.display()
                    )),
                }
            }
            for p in batch {
                if self.out.try_send(p.ack).is_err() {
                    tracing::debug!(
                        "the link is down; an acknowledgement is dropped (re-sent ids are acknowledged again)"
                    );
                }
            }
        }
    }

    fn append(&mut self, ids: &[&str]) -> std::io::Result<()> {
        for id in ids {
            self.recent.push_back((*id).to_string());
            if self.recent.len() > self.keep {
                self.recent.pop_front();
            }
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                self.file.insert(f)
            }
        };
        let mut text = String::new();
        for id in ids {
            text.push_str(id);
            text.push('\n');
        }
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        self.lines += ids.len();
        if self.lines > 2 * self.keep {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the log with the last `keep` ids (temp file, fsync, rename, fsync the dir).
    fn compact(&mut self) -> std::io::Result<()> {
        let mut text = String::new();
        for id in &self.recent {
            text.push_str(id);
            text.push('\n');
        }
        crate::durable::replace(&self.path, text.as_bytes(), false)?;
        self.file = Some(OpenOptions::new().append(true).open(&self.path)?);
        self.lines = self.recent.len();
        tracing::debug!("executed-id log compacted to the last {} ids", self.lines);
        Ok(())
    }

    fn report(&mut self, message: String) {
        tracing::error!("{message}");
        // Reopened on the next write (a full disk may have room again).
        self.file = None;
        if let Ok(mut e) = self.error.lock() {
            *e = Some(message);
        }
    }

    fn clear_error(&self) {
        if let Ok(mut e) = self.error.lock()
            && e.take().is_some()
        {
            tracing::info!("executed command ids are written again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AckStatus;

    fn ack(id: &str) -> ToMaster {
        ToMaster::Ack {
            command_id: id.into(),
            status: AckStatus::Executed,
            reason: None,
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rk-executed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Waits (bounded) for `n` acknowledgements.
    fn acks(rx: &mut mpsc::Receiver<ToMaster>, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        let start = std::time::Instant::now();
        while out.len() < n && start.elapsed() < Duration::from_secs(10) {
            match rx.try_recv() {
                Ok(ToMaster::Ack { command_id, .. }) => out.push(command_id),
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        out
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .expect("log file")
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn executed_command_ids_survive_a_restart_and_acks_follow_the_disk() {
        let dir = dir("restart");
        let (tx, mut rx) = mpsc::channel(64);
        let mut log = ExecutedLog::open(&dir, "node-01", tx.clone());
        assert!(!log.contains("cmd-a"));
        log.executed("cmd-a", ack("cmd-a"));
        log.executed("cmd-b", ack("cmd-b"));
        assert!(log.contains("cmd-a"), "known at once, before the disk");
        assert_eq!(acks(&mut rx, 2), vec!["cmd-a", "cmd-b"], "acks in order");
        // Released only after the ids were written: both are on disk now.
        assert_eq!(lines(&dir.join("executed-node-01")), vec!["cmd-a", "cmd-b"]);
        drop(log);
        let log = ExecutedLog::open(&dir, "node-01", tx.clone());
        assert!(
            log.contains("cmd-a") && log.contains("cmd-b"),
            "a re-sent id is recognised after a restart"
        );
        assert!(!log.contains("cmd-c"));
        assert!(
            !ExecutedLog::open(&dir, "node-02", tx).contains("cmd-a"),
            "per node"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut() {
        let dir = dir("torn");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("executed-node-01"), "cmd-a\ncmd-b\ncmd-").expect("write");
        let (tx, mut rx) = mpsc::channel(64);
        let mut log = ExecutedLog::open(&dir, "node-01", tx);
        assert!(log.contains("cmd-b") && !log.contains("cmd-"));
        log.executed("cmd-c", ack("cmd-c"));
        acks(&mut rx, 1);
        assert_eq!(
            lines(&dir.join("executed-node-01")),
            vec!["cmd-a", "cmd-b", "cmd-c"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_log_is_compacted_to_the_last_ids_and_still_recognises_them() {
        let dir = dir("compact");
        let (tx, mut rx) = mpsc::channel(1024);
        let mut log = ExecutedLog::open_keeping(&dir, "node-01", tx.clone(), 10);
        for i in 0..25 {
            let id = format!("cmd-{i}");
            log.executed(&id, ack(&id));
            // One at a time, so every write is its own batch.
            assert_eq!(acks(&mut rx, 1), vec![id]);
        }
        let on_disk = lines(&dir.join("executed-node-01"));
        assert!(
            on_disk.len() <= 20,
            "compacted past twice the 10 kept: {} lines",
            on_disk.len()
        );
        assert_eq!(on_disk.last().map(String::as_str), Some("cmd-24"));
        let expected: Vec<String> = (15..25).map(|i| format!("cmd-{i}")).collect();
        assert!(
            on_disk.ends_with(&expected),
            "the last 10 are kept, in order: {on_disk:?}"
        );
        assert!(
            !dir.join("executed-node-01.tmp").exists(),
            "no temp file left"
        );
        drop(log);
        let log = ExecutedLog::open_keeping(&dir, "node-01", tx, 10);
        assert!(
            (15..25).all(|i| log.contains(&format!("cmd-{i}"))),
            "a re-sent id of the last 10 is recognised after compaction and a restart"
        );
        assert!(!log.contains("cmd-0"), "older ids are forgotten");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_write_error_is_reported_and_the_ack_still_goes_out() {
        let dir = dir("error");
        std::fs::create_dir_all(&dir).expect("dir");
        // A directory where the log file should be: it cannot be opened.
        std::fs::create_dir_all(dir.join("executed-node-01")).expect("dir");
        let (tx, mut rx) = mpsc::channel(64);
        let mut log = ExecutedLog::open(&dir, "node-01", tx);
        log.executed("cmd-a", ack("cmd-a"));
        assert_eq!(acks(&mut rx, 1), vec!["cmd-a"]);
        assert!(
            log.error().is_some_and(|e| e.contains("executed-node-01")),
            "the error is reported: {:?}",
            log.error()
        );
        assert!(log.contains("cmd-a"), "still known in memory");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
