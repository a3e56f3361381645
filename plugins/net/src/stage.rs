//! The master's stage on disk: what a restarted master resumes from.
//!
//! A master killed mid-show and started again with its state directory comes back where it
//! was: the same playback state (cues, fades, masters, blackout), the same per-node overrides,
//! and a show time that has kept running while it was down, so its first snapshot changes no
//! receiver's output.
//!
//! **Show time after a stall or restart catches up with the wall.** The master's show clock
//! is the reference every receiver follows, and receivers keep running through a master
//! outage on their own clocks. A master that kept its old show time after a stall (SIGSTOP,
//! a frozen VM) or a restart would pull every receiver back mid-fade. So a restarted master
//! resumes at the tick it saved plus the wall time since (`resume_tick`), and a running master
//! whose frame loop stalled runs the ticks its show time base has due (the engine's
//! `TickSource`), publishing its clock to receivers only once it has caught up. Show time
//! never goes backwards, and receivers never step back.
//!
//! Writes happen off the tick: [`StageWriter`] hands each record to a named thread over a
//! bounded channel; the thread keeps only the newest, writes at most every
//! [`MIN_WRITE_INTERVAL`], and replaces the file atomically. A record goes to the writer on
//! every change of the stage (a command, a follow, a node override, a new show) and once a
//! [`REFRESH_INTERVAL`] otherwise, so a change is durable about a tick after it was made; a
//! master killed within that window loses it (the operator's REST call had its answer).
//!
//! # On-disk format
//! `master-stage-<master_id>.json`: one JSON object ([`StageRecord`]):
//! `{"format":1, "show_hash":"<sha-256 hex>"|null, "rate":44, "tick":12345,
//! "wall_unix_ms":1764650000000, "state":<PlaybackState>|null, "overrides":{"node-01":
//! {"blackout":true,"intensity":1.0}}, "parts":{"media.playback":{"entries":[…]}}}` —
//! `parts` are the other plugins' replicated state parts (the media log: which clips play on
//! which layer from which show time), so a restarted master keeps playing the same clips at
//! the same frames; `tick` is the master's next show tick at
//! `wall_unix_ms` (milliseconds since the Unix epoch, system clock); `state` is the engine's
//! playback state as replicated in snapshots (unset lanes as `null`). Written to
//! `master-stage-<master_id>.json.tmp`, `fsync`ed, renamed over the file, and the directory
//! `fsync`ed: a crash leaves the old record or the new one, never a torn one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime};

use rockontrol_engine::PlaybackState;
use serde::{Deserialize, Serialize};

use crate::protocol::NodeOverride;

/// The record's format version.
pub const STAGE_FORMAT: u32 = 1;

/// The writer writes at most this often (the newest record wins). Short, so a change is on
/// disk within about a tick of it: the master sends a record only when the stage changed, at
/// most once a tick, or once a [`REFRESH_INTERVAL`].
pub const MIN_WRITE_INTERVAL: Duration = Duration::from_millis(20);

/// A record is also written this often while nothing changes (show time moves on).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Ticks a restarted or stalled master resumes ahead of the wall time it lost: receivers
/// that ran on through the outage may be a tick or two ahead of the master's exact time
/// (they correct only beyond 2 ticks), and a snapshot a tick behind them would step them
/// back. Ahead, they step forward by at most this, which a fade shows as its own motion.
pub const RESUME_LEAD_TICKS: u64 = 2;

/// What a master saves (see the module docs for the file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub format: u32,
    pub show_hash: Option<String>,
    pub rate: u32,
    /// The next show tick at `wall_unix_ms`.
    pub tick: u64,
    pub wall_unix_ms: u64,
    pub state: Option<PlaybackState>,
    #[serde(default)]
    pub overrides: BTreeMap<String, NodeOverride>,
    /// The state parts other plugins replicate (the media log, …), by part name, as
    /// snapshots carry them; applied back into the restarted master's world.
    #[serde(default)]
    pub parts: rockontrol_replicate::Parts,
}

/// Why a saved stage cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a stage record: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has format {found}; this build reads {STAGE_FORMAT}")]
    Format { path: PathBuf, found: u32 },
}

/// Milliseconds since the Unix epoch of `t` (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl StageRecord {
    /// The tick to resume at, at wall time `now`: the saved tick plus the ticks of the wall
    /// time since (none if the system clock went backwards), plus [`RESUME_LEAD_TICKS`].
    pub fn resume_tick(&self, now: SystemTime) -> u64 {
        let elapsed_ms = unix_ms(now).saturating_sub(self.wall_unix_ms);
        self.tick + elapsed_ms * u64::from(self.rate.max(1)) / 1000 + RESUME_LEAD_TICKS
    }
}

/// The stage file of master `master_id` in `dir`.
pub fn stage_path(dir: &Path, master_id: &str) -> PathBuf {
    dir.join(format!("master-stage-{master_id}.json"))
}

/// Reads a saved stage: `Ok(None)` if there is none.
pub fn load(path: &Path) -> Result<Option<StageRecord>, StageError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StageError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let record: StageRecord = serde_json::from_str(&text).map_err(|source| StageError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    if record.format != STAGE_FORMAT {
        return Err(StageError::Format {
            path: path.to_path_buf(),
            found: record.format,
        });
    }
    Ok(Some(record))
}

/// Writes `record` to `path` atomically (temp file, fsync, rename, fsync the directory).
pub fn save(path: &Path, record: &StageRecord) -> std::io::Result<()> {
    let text = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    crate::durable::replace(path, &text, false)
}

/// Saves stage records on a thread of its own (see the module docs).
#[derive(Debug)]
pub struct StageWriter {
    tx: SyncSender<StageRecord>,
    /// A record the channel could not take yet (sent first next time).
    waiting: Option<StageRecord>,
    last_sent: Option<Instant>,
}

impl StageWriter {
    /// Starts the writer for `path`.
    pub fn start(path: PathBuf) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(4);
        std::thread::Builder::new()
            .name("rockontrol-stage-writer".into())
            .spawn(move || write_loop(&path, rx))?;
        Ok(StageWriter {
            tx,
            waiting: None,
            last_sent: None,
        })
    }

    /// Hands `record` to the writer; never blocks. A full channel keeps it for the next call.
    pub fn send(&mut self, record: StageRecord) {
        self.waiting = Some(record);
        self.retry();
    }

    /// Sends a record kept back by a full channel.
    pub fn retry(&mut self) {
        let Some(record) = self.waiting.take() else {
            return;
        };
        match self.tx.try_send(record) {
            Ok(()) => self.last_sent = Some(Instant::now()),
            Err(TrySendError::Full(r)) => self.waiting = Some(r),
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("the stage writer stopped; the stage is no longer saved");
            }
        }
    }

    /// Whether a refresh is due (nothing sent for [`REFRESH_INTERVAL`]).
    pub fn refresh_due(&self) -> bool {
        self.last_sent
            .is_none_or(|t| t.elapsed() >= REFRESH_INTERVAL)
    }
}

fn write_loop(path: &Path, rx: Receiver<StageRecord>) {
    let mut failing = false;
    let mut last_write: Option<Instant> = None;
    loop {
        let mut record = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if let Some(wait) = last_write.and_then(|t| MIN_WRITE_INTERVAL.checked_sub(t.elapsed())) {
            std::thread::sleep(wait);
        }
        last_write = Some(Instant::now());
        while let Ok(newer) = rx.try_recv() {
            record = newer;
        }
        match save(path, &record) {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the stage is saved again in {}", path.display());
            }
            Ok(()) => {}
            Err(e) => {
                if !failing {
                    tracing::error!(
                        "cannot save the stage in {}: {e}; a restart would not resume it",
                        path.display()
                    );
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tick: u64, wall_unix_ms: u64) -> StageRecord {
        StageRecord {
            format: STAGE_FORMAT,
            show_hash: Some("abc".into()),
            rate: 44,
            tick,
            wall_unix_ms,
            state: Some(PlaybackState {
                effects: Vec::new(),
                grand_master: 0.8,
                blackout: false,
                action_seq: 3,
                playbacks: vec![rockontrol_engine::PlaybackRun {
                    cue: Some(1),
                    master: 1.0,
                    last_action: 3,
                    go_tick: tick - 10,
                    follow_at: None,
                    release_at: None,
                    from: vec![1.0, f32::NAN],
                    to: vec![0.2, f32::NAN],
                    timing: vec![0, 0],
                    timings: vec![],
                    ..Default::default()
                }],
            }),
            overrides: BTreeMap::from([(
                "node-01".to_string(),
                NodeOverride {
                    blackout: true,
                    intensity: 1.0,
                },
            )]),
            parts: rockontrol_replicate::Parts::from([(
                "media.playback".to_string(),
                serde_json::json!({"entries": [{"kind": "command", "at_ns": 5}]}),
            )]),
        }
    }

    #[test]
    fn a_saved_stage_loads_back_and_resumes_at_wall_time() {
        let dir = std::env::temp_dir().join(format!("rk-stage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = stage_path(&dir, "master-01");
        assert!(load(&path).expect("no file is no record").is_none());
        let saved = record(1000, 1_000_000);
        save(&path, &saved).expect("saved");
        let back = load(&path).expect("readable").expect("a record");
        assert_eq!(back.overrides, saved.overrides);
        assert_eq!(back.parts, saved.parts, "the media log comes back");
        assert_eq!(back.tick, 1000);
        let state = back.state.as_ref().expect("state");
        assert!(state.playbacks[0].to[1].is_nan(), "unset lanes stay unset");
        assert_eq!(state.playbacks[0].to[0], 0.2);
        // 10 s later at 44 Hz: 440 ticks on (and the lead).
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_010_000);
        assert_eq!(back.resume_tick(now), 1440 + RESUME_LEAD_TICKS);
        // A clock that went backwards never takes show time back.
        let before = SystemTime::UNIX_EPOCH + Duration::from_millis(900_000);
        assert_eq!(back.resume_tick(before), 1000 + RESUME_LEAD_TICKS);
        std::fs::write(&path, "{\"format\":2}").expect("write");
        assert!(load(&path).is_err(), "another format is refused");
        std::fs::write(&path, "{not json").expect("write");
        assert!(matches!(load(&path), Err(StageError::Parse { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_writer_thread_saves_the_newest_record() {
        let dir = std::env::temp_dir().join(format!("rk-stage-w-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = stage_path(&dir, "master-01");
        let mut w = StageWriter::start(path.clone()).expect("writer");
        for tick in 100..110 {
            w.send(record(tick, 5));
        }
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < Duration::from_secs(10) {
            w.retry();
            last = load(&path).ok().flatten().map(|r| r.tick);
            if last == Some(109) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(last, Some(109), "the newest record ends up on disk");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
