//! The fade engine: playback state, and the frame for tick *k* as a pure function of it.
//!
//! Time is show time in integer nanoseconds; tick *k* is at `ceil(k · 10⁹ / rate)` ns
//! ([`ns_of_tick`]). Every action, follow and fade knows the exact show time it started at,
//! so a lane's level at tick *k* is computed directly from *k*'s time — nothing accumulates
//! per tick, a follow due between two ticks starts its fades at that exact time, and the
//! frame six hours in is exactly the frame computed directly for that tick. The engine
//! never reads a clock. The rules are the README's "Cue semantics" section.
//!
//! Per tick, in this order: [`FadeEngine::advance`] (follows, delayed moves and releases due
//! by *k*, in show-time order), [`FadeEngine::apply`] for each command received for *k*, then
//! [`FadeEngine::render`].
//!
//! Per lane (a channel a cue list drives) a playback holds one fade segment — `from`, `to`,
//! `timing` — plus the action order that last moved it (`taken`: on latest-takes-precedence
//! channels the highest order wins) and maybe a move waiting for its cue's delay
//! (`next_to`, `next_timing`). `to` unset with `from` set is a lane releasing: it fades
//! from `from` back to what lies beneath it.

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::compile::{ChannelId, CompiledList, CompiledShow, NO_SLOT, UNSET};
use crate::timebase::ns_of_tick;

/// A fade: from show time `start_ns`, over `duration_ns` nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Timing {
    pub start_ns: u64,
    pub duration_ns: u64,
}

impl Timing {
    /// Index 0 of every run's timing table: already complete.
    const DONE: Timing = Timing {
        start_ns: 0,
        duration_ns: 0,
    };

    /// Fade progress 0..=1 at show time `ns`.
    pub fn progress(&self, ns: u64) -> f64 {
        if ns < self.start_ns {
            0.0
        } else if self.duration_ns == 0 {
            1.0
        } else {
            ((ns - self.start_ns) as f64 / self.duration_ns as f64).min(1.0)
        }
    }

    /// Show time at which this fade is complete (saturating: a fade too long to end never
    /// ends, rather than wrapping round to an end in the past).
    pub fn end_ns(&self) -> u64 {
        self.start_ns.saturating_add(self.duration_ns)
    }
}

/// The timing of moves waiting for their cue's delay: they start at `start_ns` (GO + delay)
/// and fade over `fade_in_ns`, or `fade_out_ns` for intensity going down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Delayed {
    pub start_ns: u64,
    pub fade_in_ns: u64,
    pub fade_out_ns: u64,
}

/// The first tick at or after `secs` seconds (never negative; NaN is 0 ticks, and a time
/// past `u64::MAX` ticks saturates there).
pub fn seconds_to_ticks(secs: f64, rate: f64) -> u64 {
    // The epsilon keeps 0.5 s at 44 Hz at 22 ticks despite 0.5 * 44 = 22.000000000000004.
    // `as` saturates on overflow and maps NaN to 0; callers add with `saturating_add`.
    (secs * rate - 1e-9).ceil().max(0.0) as u64
}

/// Seconds as show nanoseconds, rounded to the nearest (never negative; NaN is 0, and a
/// time past `u64::MAX` ns saturates there).
pub fn seconds_to_ns(secs: f64) -> u64 {
    (secs * 1e9).round().max(0.0) as u64
}

/// The state of one playback: where it is, and every lane's fade.
///
/// Equality compares lane levels bit for bit, so unset (`NaN`) lanes are equal to each other
/// and a state equals its own copy (the master republishes a state only when it changed).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlaybackRun {
    /// Index of the current cue; `None` when the playback is off or releasing.
    pub cue: Option<usize>,
    /// Fader level 0..=1.
    pub master: f64,
    /// Order of the latest GO/BACK/GOTO/follow.
    pub last_action: u64,
    /// Tick of the latest GO/BACK/GOTO/follow.
    pub go_tick: u64,
    /// Show time (ns) the current cue started at: its command's tick, or its follow's exact
    /// due time.
    #[serde(default)]
    pub go_ns: u64,
    /// Show time (ns) at which a follow fires the next cue.
    pub follow_at: Option<u64>,
    /// Show time (ns) at which every releasing lane is back at what lies beneath.
    pub release_at: Option<u64>,
    /// Per lane: level the fade starts from.
    #[serde(with = "unset_as_null")]
    #[schemars(with = "Vec<Option<f32>>")]
    pub from: Vec<f32>,
    /// Per lane: level the fade goes to; `NaN`: the lane does not contribute (or, with
    /// `from` set, releases to what lies beneath).
    #[serde(with = "unset_as_null")]
    #[schemars(with = "Vec<Option<f32>>")]
    pub to: Vec<f32>,
    /// Per lane: index into `timings`.
    pub timing: Vec<u16>,
    /// Fade timings in use by lanes; index 0 is "complete".
    pub timings: Vec<Timing>,
    /// Per lane: the action order that last moved it. On a latest-takes-precedence channel
    /// the playback whose lane has the highest order wins.
    #[serde(default)]
    pub taken: Vec<u64>,
    /// Per lane: the target of a move waiting for its cue's delay (`NaN`: none).
    #[serde(default, with = "unset_as_null")]
    #[schemars(with = "Vec<Option<f32>>")]
    pub next_to: Vec<f32>,
    /// Per lane: index into `delayed` of that move.
    #[serde(default)]
    pub next_timing: Vec<u16>,
    /// Timings of the moves waiting for their delay.
    #[serde(default)]
    pub delayed: Vec<Delayed>,
}

impl Default for PlaybackRun {
    /// Off, master full, no lanes.
    fn default() -> Self {
        PlaybackRun::off(0, 1.0)
    }
}

impl PartialEq for PlaybackRun {
    fn eq(&self, other: &Self) -> bool {
        let lanes = |x: &[f32], y: &[f32]| {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        };
        // Destructured so that a new field cannot be forgotten here.
        let PlaybackRun {
            cue,
            master,
            last_action,
            go_tick,
            go_ns,
            follow_at,
            release_at,
            from,
            to,
            timing,
            timings,
            taken,
            next_to,
            next_timing,
            delayed,
        } = self;
        *cue == other.cue
            && *master == other.master
            && *last_action == other.last_action
            && *go_tick == other.go_tick
            && *go_ns == other.go_ns
            && *follow_at == other.follow_at
            && *release_at == other.release_at
            && *timing == other.timing
            && *timings == other.timings
            && *taken == other.taken
            && *next_timing == other.next_timing
            && *delayed == other.delayed
            && lanes(from, &other.from)
            && lanes(to, &other.to)
            && lanes(next_to, &other.next_to)
    }
}

/// Lane levels with `NaN` ("unset") written as `null`: JSON has no NaN, and the state is
/// replicated to receivers as JSON.
mod unset_as_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::compile::UNSET;

    pub fn serialize<S: Serializer>(levels: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let wire: Vec<Option<f32>> = levels
            .iter()
            .map(|l| if l.is_finite() { Some(*l) } else { None })
            .collect();
        wire.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let wire = Vec::<Option<f32>>::deserialize(d)?;
        Ok(wire.into_iter().map(|l| l.unwrap_or(UNSET)).collect())
    }
}

impl PlaybackRun {
    fn off(lanes: usize, master: f64) -> Self {
        PlaybackRun {
            cue: None,
            master,
            last_action: 0,
            go_tick: 0,
            go_ns: 0,
            follow_at: None,
            release_at: None,
            from: vec![UNSET; lanes],
            to: vec![UNSET; lanes],
            timing: vec![0; lanes],
            timings: vec![Timing::DONE],
            taken: vec![0; lanes],
            next_to: vec![UNSET; lanes],
            next_timing: vec![0; lanes],
            delayed: Vec::new(),
        }
    }

    /// True when the playback contributes to the output.
    pub fn is_active(&self) -> bool {
        self.cue.is_some() || self.release_at.is_some()
    }

    /// The target a lane is on its way to: a waiting move's, else the running fade's.
    fn target(&self, lane: usize) -> f32 {
        if self.next_to[lane].is_nan() {
            self.to[lane]
        } else {
            self.next_to[lane]
        }
    }

    /// Index of `timing` in the table, added if new.
    fn timing_index(&mut self, timing: Timing) -> u16 {
        let index = self
            .timings
            .iter()
            .position(|t| *t == timing)
            .unwrap_or_else(|| {
                self.timings.push(timing);
                self.timings.len() - 1
            });
        index as u16
    }

    /// Drops timings and delayed moves no lane uses any more, and remaps the lanes' indexes
    /// (the tables stay as small as the fades in flight).
    fn compact(&mut self) {
        let mut map = vec![u16::MAX; self.timings.len()];
        let mut timings = vec![Timing::DONE];
        map[0] = 0;
        for t in &mut self.timing {
            let old = *t as usize;
            if map[old] == u16::MAX {
                let timing = self.timings[old];
                let new = timings
                    .iter()
                    .position(|x| *x == timing)
                    .unwrap_or_else(|| {
                        timings.push(timing);
                        timings.len() - 1
                    });
                map[old] = new as u16;
            }
            *t = map[old];
        }
        self.timings = timings;
        let mut map = vec![u16::MAX; self.delayed.len()];
        let mut delayed = Vec::new();
        for (next, to) in self.next_timing.iter_mut().zip(&self.next_to) {
            if to.is_nan() {
                *next = 0;
                continue;
            }
            let old = *next as usize;
            if map[old] == u16::MAX {
                delayed.push(self.delayed[old]);
                map[old] = (delayed.len() - 1) as u16;
            }
            *next = map[old];
        }
        self.delayed = delayed;
    }
}

/// Everything that decides the output besides the show: replicated from master to receivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlaybackState {
    pub grand_master: f64,
    pub blackout: bool,
    /// Counter handing out `last_action` orders.
    pub action_seq: u64,
    /// One run per compiled playback, same order.
    pub playbacks: Vec<PlaybackRun>,
    /// Running effects: indices into the show's effects, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<u16>,
}

/// What a command or a follow did, for logs and status lines.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A playback went to a cue (by command or follow).
    Cue {
        playback: String,
        cue: rockontrol_show::CueNumber,
        label: String,
        tick: u64,
        by_follow: bool,
    },
    /// A playback finished releasing and is off.
    Off { playback: String, tick: u64 },
    /// Global state changed.
    Changed { what: String, tick: u64 },
}

/// A command that could not be applied. The show keeps running.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("no playback named {0:?} (playbacks: {1})")]
    UnknownPlayback(String, String),
    #[error("playback {0:?} has no cue {1}")]
    UnknownCue(String, String),
    #[error("playback {0:?} is on its last cue")]
    EndOfList(String),
    #[error("playback {0:?} is on its first cue")]
    StartOfList(String),
    #[error("playback {0:?} has no cues")]
    EmptyList(String),
    #[error("playback {0:?} is off")]
    NotRunning(String),
    #[error("no effect named {0:?} (effects: {1})")]
    UnknownEffect(String, String),
    #[error(transparent)]
    OutOfRange(#[from] crate::command::OutOfRange),
}

/// The fade engine: a compiled show plus scratch buffers. Holds no playback state of its own.
#[derive(Debug, Clone)]
pub struct FadeEngine {
    show: CompiledShow,
    rate: f64,
    tick_rate: u32,
    // Dense per-channel tables (hot loop data, kept apart from `ChannelInfo`).
    defaults: Vec<f32>,
    htp: Vec<bool>,
    fine: Vec<u32>,
    /// Per channel, what the frame loop reads: its coarse slot's index in the frame, and
    /// the [`OUT_HTP`] and [`OUT_WIDE`] flags (one 4-byte read per channel instead of
    /// three tables).
    out: Vec<u32>,
    /// Per playback, per lane: its channel, and in the top bits how the channel merges
    /// ([`LANE_HTP`], [`LANE_SHARED`]), so the per-lane loop reads one table.
    lane_out: Vec<Vec<u32>>,
    /// Merged channel levels before grand master/blackout, from the latest `compute_levels`.
    levels: Vec<f32>,
    /// Per channel: how the hot loop merges it.
    merge: Vec<Merge>,
    /// LTP channels more than one playback drives: only these compare `taken` orders.
    shared: Vec<ChannelId>,
    /// Per channel: the `taken` order of the lane that set `levels` (shared LTP channels).
    best: Vec<u64>,
    progress: Vec<f32>,
    /// The tempo for effects with a speed in beats.
    beat: Option<crate::effect::BeatClock>,
}

/// [`FadeEngine::out`]: the coarse slot's index in the frame (a frame has at most 65,535 ×
/// 512 slots, well under 2³⁰).
const OUT_INDEX: u32 = (1 << 30) - 1;
/// [`FadeEngine::out`]: intensity, scaled by grand master and blackout.
const OUT_HTP: u32 = 1 << 31;
/// [`FadeEngine::out`]: a 16-bit channel (its fine slot in [`FadeEngine::fine`]).
const OUT_WIDE: u32 = 1 << 30;
/// [`FadeEngine::lane_out`]: the channel's index (channels are fewer than frame slots).
const LANE_CHANNEL: u32 = (1 << 30) - 1;
/// [`FadeEngine::lane_out`]: an HTP channel.
const LANE_HTP: u32 = 1 << 31;
/// [`FadeEngine::lane_out`]: an LTP channel several playbacks drive ([`Merge::LtpShared`]).
const LANE_SHARED: u32 = 1 << 30;

/// How a channel merges, decided at compile time so that the per-lane loop reads one byte
/// per channel (as it read the HTP flag before per-channel LTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    Htp,
    /// LTP on a channel only one playback drives: its level, no order to compare.
    LtpAlone,
    /// LTP on a channel several playbacks drive: the lane with the highest `taken` wins.
    LtpShared,
}

/// A lane move: the lane, the level it fades from and the target.
struct Move {
    lane: usize,
    from: f32,
    to: f32,
}

impl FadeEngine {
    pub fn new(show: CompiledShow) -> Self {
        let defaults = show.channels.iter().map(|c| c.default).collect();
        let htp = show.channels.iter().map(|c| c.htp).collect();
        let fine = show.channels.iter().map(|c| c.fine).collect();
        let out = show
            .channels
            .iter()
            .map(|c| {
                debug_assert!(c.coarse <= OUT_INDEX, "a frame is under 2³⁰ slots");
                let htp = if c.htp { OUT_HTP } else { 0 };
                let wide = if c.fine == NO_SLOT { 0 } else { OUT_WIDE };
                c.coarse | htp | wide
            })
            .collect();
        let levels = vec![0.0; show.channels.len()];
        let best = vec![0; show.channels.len()];
        let mut drivers = vec![0u32; show.channels.len()];
        for playback in &show.playbacks {
            for &ch in &show.lists[playback.list].lanes {
                drivers[ch as usize] += 1;
            }
        }
        let merge: Vec<Merge> = show
            .channels
            .iter()
            .zip(&drivers)
            .map(|(c, &n)| match (c.htp, n) {
                (true, _) => Merge::Htp,
                (false, 0 | 1) => Merge::LtpAlone,
                (false, _) => Merge::LtpShared,
            })
            .collect();
        let shared = (0..merge.len() as ChannelId)
            .filter(|&ch| merge[ch as usize] == Merge::LtpShared)
            .collect();
        let lane_out = show
            .playbacks
            .iter()
            .map(|playback| {
                show.lists[playback.list]
                    .lanes
                    .iter()
                    .map(|&ch| {
                        debug_assert!(ch <= LANE_CHANNEL, "channels are fewer than slots");
                        ch | match merge[ch as usize] {
                            Merge::Htp => LANE_HTP,
                            Merge::LtpAlone => 0,
                            Merge::LtpShared => LANE_SHARED,
                        }
                    })
                    .collect()
            })
            .collect();
        FadeEngine {
            rate: f64::from(show.tick_rate),
            tick_rate: show.tick_rate,
            show,
            defaults,
            htp,
            fine,
            out,
            lane_out,
            levels,
            merge,
            shared,
            best,
            progress: Vec::new(),
            beat: None,
        }
    }

    /// The tempo effects with a speed in beats follow from now on (`None`: 120 BPM).
    pub fn set_beat(&mut self, beat: Option<crate::effect::BeatClock>) {
        self.beat = beat;
    }

    pub fn show(&self) -> &CompiledShow {
        &self.show
    }

    /// Ticks per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Show time of a tick in seconds.
    pub fn time(&self, tick: u64) -> f64 {
        tick as f64 / self.rate
    }

    /// Show time of a tick in nanoseconds ([`ns_of_tick`] at the show's rate).
    pub fn ns(&self, tick: u64) -> u64 {
        ns_of_tick(tick, self.tick_rate)
    }

    /// Every playback off, masters as in the show.
    pub fn initial_state(&self) -> PlaybackState {
        PlaybackState {
            grand_master: self.show.grand_master,
            blackout: false,
            action_seq: 0,
            playbacks: self
                .show
                .playbacks
                .iter()
                .map(|p| PlaybackRun::off(self.show.lists[p.list].lanes.len(), p.master))
                .collect(),
            effects: Vec::new(),
        }
    }

    /// Whether `state` fits this show: as many playbacks, each with one entry per lane of
    /// its list in every per-lane table, every timing index inside its table (with index
    /// 0), every waiting move's index inside `delayed`, a cue inside the list, and finite
    /// levels. A state from the network or from disk is checked before it replaces the
    /// running one, so a bad one cannot panic the engine.
    pub fn check_state(&self, state: &PlaybackState) -> Result<(), String> {
        if let Some(e) = state
            .effects
            .iter()
            .find(|e| usize::from(**e) >= self.show.effects.len())
        {
            return Err(format!(
                "effect {e} is running, the show has {}",
                self.show.effects.len()
            ));
        }
        if state.playbacks.len() != self.show.playbacks.len() {
            return Err(format!(
                "{} playbacks, the show has {}",
                state.playbacks.len(),
                self.show.playbacks.len()
            ));
        }
        if !state.grand_master.is_finite() {
            return Err("the grand master is not a number".into());
        }
        for (run, playback) in state.playbacks.iter().zip(&self.show.playbacks) {
            let list = &self.show.lists[playback.list];
            let lanes = list.lanes.len();
            let name = &playback.name;
            if run.from.len() != lanes || run.to.len() != lanes || run.timing.len() != lanes {
                return Err(format!(
                    "playback {name:?}: lanes {}/{}/{}, its cue list has {lanes}",
                    run.from.len(),
                    run.to.len(),
                    run.timing.len()
                ));
            }
            if run.taken.len() != lanes
                || run.next_to.len() != lanes
                || run.next_timing.len() != lanes
            {
                return Err(format!(
                    "playback {name:?}: {} LTP orders and {}/{} waiting moves for {lanes} \
                     lanes (a state saved by an older version has none; start the show afresh)",
                    run.taken.len(),
                    run.next_to.len(),
                    run.next_timing.len()
                ));
            }
            if run.timings.is_empty()
                || run
                    .timing
                    .iter()
                    .any(|&t| usize::from(t) >= run.timings.len())
            {
                return Err(format!(
                    "playback {name:?}: a lane's timing is out of range"
                ));
            }
            if run
                .next_to
                .iter()
                .zip(&run.next_timing)
                .any(|(to, &t)| !to.is_nan() && usize::from(t) >= run.delayed.len())
            {
                return Err(format!(
                    "playback {name:?}: a waiting move's timing is out of range"
                ));
            }
            if run.cue.is_some_and(|c| c >= list.cues.len()) {
                return Err(format!("playback {name:?}: no such cue"));
            }
            if !run.master.is_finite() {
                return Err(format!("playback {name:?}: the master is not a number"));
            }
        }
        Ok(())
    }

    /// Merged levels of the latest [`FadeEngine::render`] or `compute_levels`, per channel.
    pub fn levels(&self) -> &[f32] {
        &self.levels
    }

    /// Fires what is due by `tick`'s show time, earliest first, each at its own exact time:
    /// releases completing, delayed moves starting, follows (at equal times in that order,
    /// then by playback). Call once per tick, first.
    pub fn advance(&mut self, state: &mut PlaybackState, tick: u64) -> Vec<Event> {
        let now = self.ns(tick);
        let mut events = Vec::new();
        loop {
            // (time, kind, playback, delayed index) of the earliest thing due.
            let mut due: Option<(u64, u8, usize, usize)> = None;
            for (index, run) in state.playbacks.iter().enumerate() {
                let mut consider = |at: u64, kind: u8, sub: usize| {
                    if at <= now && due.is_none_or(|d| (at, kind) < (d.0, d.1)) {
                        due = Some((at, kind, index, sub));
                    }
                };
                if let Some(at) = run.release_at {
                    consider(at, 0, 0);
                }
                for (sub, delayed) in run.delayed.iter().enumerate() {
                    consider(delayed.start_ns, 1, sub);
                }
                if let Some(at) = run.follow_at {
                    consider(at, 2, 0);
                }
            }
            let Some((at, kind, index, sub)) = due else {
                break;
            };
            match kind {
                0 => {
                    if self.finish_release(state, index) {
                        events.push(Event::Off {
                            playback: self.show.playbacks[index].name.clone(),
                            tick,
                        });
                    }
                }
                1 => self.start_delayed(state, index, sub),
                _ => {
                    state.playbacks[index].follow_at = None;
                    let list = &self.show.lists[self.show.playbacks[index].list];
                    if let Some(next) = next_cue(list, state.playbacks[index].cue) {
                        // The follow's cue starts at the time it was due, between ticks or
                        // even if `advance` runs late; its next follow counts from there.
                        self.transition(state, index, next, at, tick, None, true);
                        events.push(self.cue_event(state, index, tick, true));
                    }
                }
            }
        }
        events
    }

    /// Applies one command at `tick` (its show time is the tick's).
    pub fn apply(
        &mut self,
        state: &mut PlaybackState,
        command: &Command,
        tick: u64,
    ) -> Result<Vec<Event>, CommandError> {
        // Numbers from the network or a script are checked here as well as where they enter:
        // this is the one seam every command passes.
        command.check()?;
        let now = self.ns(tick);
        let changed = |what: String| Ok(vec![Event::Changed { what, tick }]);
        match command {
            Command::Blackout { on } => {
                state.blackout = *on;
                changed(format!("blackout {}", if *on { "on" } else { "off" }))
            }
            Command::GrandMaster { level } => {
                state.grand_master = level.clamp(0.0, 1.0);
                changed(format!("grand master {:.0}%", state.grand_master * 100.0))
            }
            Command::ReleaseAll => {
                let mut events = Vec::new();
                for index in 0..state.playbacks.len() {
                    if state.playbacks[index].cue.is_some() {
                        events.push(Event::Changed {
                            what: format!("release {}", self.show.playbacks[index].name),
                            tick,
                        });
                        events.extend(self.release(state, index, now, tick));
                    }
                }
                Ok(events)
            }
            Command::Effect { name, on } => {
                let index = self
                    .show
                    .effects
                    .iter()
                    .position(|e| &e.name == name)
                    .ok_or_else(|| {
                        CommandError::UnknownEffect(
                            name.clone(),
                            self.show
                                .effects
                                .iter()
                                .map(|e| e.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        )
                    })? as u16;
                match (state.effects.binary_search(&index), on) {
                    (Err(at), true) => state.effects.insert(at, index),
                    (Ok(at), false) => {
                        state.effects.remove(at);
                    }
                    _ => {}
                }
                changed(format!("effect {name} {}", if *on { "on" } else { "off" }))
            }
            Command::Master { playback, level } => {
                let index = self.playback(playback)?;
                state.playbacks[index].master = level.clamp(0.0, 1.0);
                changed(format!("master {playback} {:.0}%", level * 100.0))
            }
            Command::Release { playback } => {
                let index = self.playback(playback)?;
                if state.playbacks[index].cue.is_none() {
                    return Err(CommandError::NotRunning(playback.clone()));
                }
                let mut events = vec![Event::Changed {
                    what: format!("release {playback}"),
                    tick,
                }];
                events.extend(self.release(state, index, now, tick));
                Ok(events)
            }
            Command::Go { fade, .. } | Command::Back { fade, .. } | Command::Goto { fade, .. } => {
                let Some((index, target)) = self.target(state, command)? else {
                    return Ok(Vec::new());
                };
                // BACK does not arm the cue's follow: stepping back must not jump forward.
                let arm_follow = !matches!(command, Command::Back { .. });
                self.transition(state, index, target, now, tick, *fade, arm_follow);
                Ok(vec![self.cue_event(state, index, tick, false)])
            }
        }
    }

    /// The cue a Go, Back or Goto would run from `state`, without running it: its cue list
    /// and number (`None`: another command, or one that would be refused). What the GO gate
    /// reads before a command runs. The state must be advanced to the command's tick first
    /// (follows and releases due then), as [`crate::CommandSeam::apply`] does.
    pub fn cue_to_run(
        &self,
        state: &PlaybackState,
        command: &Command,
    ) -> Option<(String, rockontrol_show::CueNumber)> {
        let (index, cue) = self.target(state, command).ok()??;
        let list = &self.show.lists[self.show.playbacks[index].list];
        Some((list.name.clone(), list.cues.get(cue)?.number))
    }

    /// The playback and cue index a Go, Back or Goto moves to (`Ok(None)`: another command).
    fn target(
        &self,
        state: &PlaybackState,
        command: &Command,
    ) -> Result<Option<(usize, usize)>, CommandError> {
        let target = match command {
            Command::Go { playback, .. } => {
                let index = self.playback(playback)?;
                let list = &self.show.lists[self.show.playbacks[index].list];
                if list.cues.is_empty() {
                    return Err(CommandError::EmptyList(playback.clone()));
                }
                let next = next_cue(list, state.playbacks[index].cue)
                    .ok_or_else(|| CommandError::EndOfList(playback.clone()))?;
                (index, next)
            }
            Command::Back { playback, .. } => {
                let index = self.playback(playback)?;
                let list = &self.show.lists[self.show.playbacks[index].list];
                let previous = match state.playbacks[index].cue {
                    None => return Err(CommandError::NotRunning(playback.clone())),
                    Some(0) if list.looped => list.cues.len() - 1,
                    Some(0) => return Err(CommandError::StartOfList(playback.clone())),
                    Some(i) => i - 1,
                };
                (index, previous)
            }
            Command::Goto { playback, cue, .. } => {
                let index = self.playback(playback)?;
                let list = &self.show.lists[self.show.playbacks[index].list];
                let target = list
                    .cue_index(*cue)
                    .ok_or_else(|| CommandError::UnknownCue(playback.clone(), cue.to_string()))?;
                (index, target)
            }
            _ => return Ok(None),
        };
        Ok(Some(target))
    }

    /// Computes merged channel levels (before grand master and blackout) for `tick`.
    pub fn compute_levels(&mut self, state: &PlaybackState, tick: u64) {
        self.levels_at(state, self.ns(tick));
    }

    /// Merged channel levels at show time `ns`: per channel the default, then HTP the
    /// highest of every playback's level × its master, LTP the level of the lane moved
    /// last (highest `taken`); releasing lanes fade towards what lies beneath them.
    fn levels_at(&mut self, state: &PlaybackState, ns: u64) {
        let FadeEngine {
            defaults,
            lane_out,
            shared,
            levels,
            best,
            progress,
            ..
        } = self;
        levels.copy_from_slice(defaults);
        for &ch in shared.iter() {
            best[ch as usize] = 0;
        }
        let mut releasing = false;
        for (run, lanes) in state.playbacks.iter().zip(lane_out.iter()) {
            if !run.is_active() {
                continue;
            }
            releasing |= run.release_at.is_some();
            progress.clear();
            // What is left of each fade (1 − progress): see `lerp`.
            progress.extend(run.timings.iter().map(|t| (1.0 - t.progress(ns)) as f32));
            let master = run.master as f32;
            // Equal lengths (`check_state`), zipped so the loop indexes nothing per lane but
            // the fade table and the channel.
            let lanes = lanes
                .iter()
                .zip(&run.to)
                .zip(&run.from)
                .zip(&run.timing)
                .enumerate();
            for (lane, (((&tagged, &to), &from), &timing)) in lanes {
                if to.is_nan() {
                    continue;
                }
                let v = to - (to - from) * progress[usize::from(timing)];
                let ch = (tagged & LANE_CHANNEL) as usize;
                if tagged & LANE_HTP != 0 {
                    // `max` without its NaN handling: neither side is NaN here (`to` is set,
                    // and an HTP channel starts at its default and only rises).
                    let level = v * master;
                    if level > levels[ch] {
                        levels[ch] = level;
                    }
                } else if tagged & LANE_SHARED == 0 {
                    levels[ch] = v;
                } else if run.taken[lane] > best[ch] {
                    best[ch] = run.taken[lane];
                    levels[ch] = v;
                }
            }
        }
        if releasing {
            self.merge_releases(state, ns);
        }
    }

    /// The second pass of [`Self::levels_at`]: lanes releasing (rare, so kept out of the
    /// hot loop).
    fn merge_releases(&mut self, state: &PlaybackState, ns: u64) {
        for (index, run) in state.playbacks.iter().enumerate() {
            if run.release_at.is_none() {
                continue;
            }
            let lanes = &self.show.lists[self.show.playbacks[index].list].lanes;
            for (lane, &channel) in lanes.iter().enumerate() {
                let from = run.from[lane];
                if !run.to[lane].is_nan() || from.is_nan() {
                    continue;
                }
                let p = run.timings[run.timing[lane] as usize].progress(ns) as f32;
                let ch = channel as usize;
                match self.merge[ch] {
                    Merge::Htp => {
                        self.levels[ch] = self.levels[ch].max(from * (1.0 - p) * run.master as f32);
                    }
                    Merge::LtpAlone => self.levels[ch] = from * (1.0 - p) + self.defaults[ch] * p,
                    Merge::LtpShared => {
                        if run.taken[lane] > self.best[ch] {
                            let beneath = self.ltp_beneath(state, ns, ch, run.taken[lane]);
                            self.best[ch] = run.taken[lane];
                            self.levels[ch] = from * (1.0 - p) + beneath * p;
                        }
                    }
                }
            }
        }
    }

    /// The level of LTP channel `ch` at `ns` from the lanes moved before order `limit`
    /// (what lies beneath a lane of that order): the latest of them, or the default.
    fn ltp_beneath(&self, state: &PlaybackState, ns: u64, ch: usize, limit: u64) -> f32 {
        let mut top: Option<(u64, usize, usize)> = None;
        for (index, run) in state.playbacks.iter().enumerate() {
            if !run.is_active() {
                continue;
            }
            let lanes = &self.show.lists[self.show.playbacks[index].list].lanes;
            let Ok(lane) = lanes.binary_search(&(ch as ChannelId)) else {
                continue;
            };
            let taken = run.taken[lane];
            if run.from[lane].is_nan() && run.to[lane].is_nan()
                || taken >= limit
                || top.is_some_and(|(t, _, _)| t >= taken)
            {
                continue;
            }
            top = Some((taken, index, lane));
        }
        let Some((taken, index, lane)) = top else {
            return self.defaults[ch];
        };
        let run = &state.playbacks[index];
        let (from, to) = (run.from[lane], run.to[lane]);
        let progress = run.timings[run.timing[lane] as usize].progress(ns);
        if to.is_nan() {
            let p = progress as f32;
            from * (1.0 - p) + self.ltp_beneath(state, ns, ch, taken) * p
        } else {
            lerp(from, to, progress)
        }
    }

    /// A playback's own level on a lane at `ns` before its master (`NaN` if it has none).
    fn own_level(&self, state: &PlaybackState, index: usize, lane: usize, ns: u64) -> f32 {
        let run = &state.playbacks[index];
        let (from, to) = (run.from[lane], run.to[lane]);
        let progress = run.timings[run.timing[lane] as usize].progress(ns);
        if !to.is_nan() {
            return lerp(from, to, progress);
        }
        let p = progress as f32;
        if from.is_nan() {
            return UNSET;
        }
        let ch = self.show.lists[self.show.playbacks[index].list].lanes[lane] as usize;
        let beneath = if self.htp[ch] {
            0.0
        } else {
            self.ltp_beneath(state, ns, ch, run.taken[lane])
        };
        from * (1.0 - p) + beneath * p
    }

    /// Writes the frame for `tick` into `frame` (512 bytes per universe, in
    /// [`CompiledShow::universes`] order). Slots no fixture uses are left as they are.
    pub fn render(&mut self, state: &PlaybackState, tick: u64, frame: &mut [u8]) {
        self.render_with(state, tick, frame, &[]);
    }
    /// [`FadeEngine::render`] with `overrides` (the programmer's levels) replacing the merged
    /// playback level of their channels before grand master and blackout.
    pub fn render_with(
        &mut self,
        state: &PlaybackState,
        tick: u64,
        frame: &mut [u8],
        overrides: &[(ChannelId, f32)],
    ) {
        self.compute_levels(state, tick);
        // A show with no effect running pays one branch here.
        if !state.effects.is_empty() {
            self.merge_effects(state, self.ns(tick));
        }
        for &(channel, level) in overrides {
            if let Some(slot) = self.levels.get_mut(channel as usize) {
                *slot = level;
            }
        }
        let gm = if state.blackout {
            0.0
        } else {
            state.grand_master.clamp(0.0, 1.0) as f32
        };
        // One pass over two dense tables; the fine slot's table is read for 16-bit
        // channels only. Same arithmetic as `write_channel` (× 1.0 is exact).
        for (ch, (&level, &out)) in self.levels.iter().zip(&self.out).enumerate() {
            let v = (level * if out & OUT_HTP != 0 { gm } else { 1.0 }).clamp(0.0, 1.0);
            let coarse = (out & OUT_INDEX) as usize;
            if out & OUT_WIDE == 0 {
                frame[coarse] = (v * 255.0 + 0.5) as u8;
            } else {
                let x = (v * 65535.0 + 0.5) as u32;
                frame[coarse] = (x >> 8) as u8;
                frame[self.fine[ch] as usize] = (x & 0xff) as u8;
            }
        }
    }

    /// Running effects on top of the merged cue levels: intensity HTP (the higher wins),
    /// other attributes LTP (the effect, as the latest thing to move them).
    fn merge_effects(&mut self, state: &PlaybackState, ns: u64) {
        for &index in &state.effects {
            let Some(effect) = self.show.effects.get(usize::from(index)) else {
                continue;
            };
            let cycles = effect.cycles(ns, self.beat);
            for (i, &ch) in effect.channels.iter().enumerate() {
                let v = effect.level(i, cycles);
                let ch = ch as usize;
                if self.htp[ch] {
                    self.levels[ch] = self.levels[ch].max(v);
                } else {
                    self.levels[ch] = v;
                }
            }
        }
    }

    /// Writes the intensity (HTP) channels of the show universes `universes` again, from the
    /// merged levels of the latest render, with `gm` as their grand master: a node's own
    /// output level (a per-node blackout or intensity) on top of a frame rendered from the
    /// shared playback state. Other universes and attributes are left as they are.
    pub fn rewrite_intensity(&self, frame: &mut [u8], gm: f32, universes: &[u16]) {
        let slots = rockontrol_show::UNIVERSE_SLOTS as u32;
        for ch in 0..self.levels.len() {
            let universe = self.show.universes.get((self.coarse(ch) / slots) as usize);
            if self.htp[ch] && universe.is_some_and(|u| universes.contains(u)) {
                self.write_channel(frame, ch, self.levels[ch] * gm);
            }
        }
    }

    /// Index of channel `ch`'s coarse slot in the frame.
    fn coarse(&self, ch: usize) -> u32 {
        self.out[ch] & OUT_INDEX
    }

    fn write_channel(&self, frame: &mut [u8], ch: usize, v: f32) {
        let v = v.clamp(0.0, 1.0);
        let fine = self.fine[ch];
        let coarse = self.coarse(ch) as usize;
        if fine == NO_SLOT {
            // Round half up; v ≥ 0 so truncation of v + 0.5 is rounding.
            frame[coarse] = (v * 255.0 + 0.5) as u8;
        } else {
            let x = (v * 65535.0 + 0.5) as u32;
            frame[coarse] = (x >> 8) as u8;
            frame[fine as usize] = (x & 0xff) as u8;
        }
    }

    /// A zeroed frame buffer of the right size.
    pub fn new_frame(&self) -> Vec<u8> {
        vec![0; self.show.frame_len()]
    }

    fn playback(&self, name: &str) -> Result<usize, CommandError> {
        self.show.playback_index(name).ok_or_else(|| {
            CommandError::UnknownPlayback(
                name.to_string(),
                self.show
                    .playbacks
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
    }

    fn cue_event(&self, state: &PlaybackState, index: usize, tick: u64, by_follow: bool) -> Event {
        let list = &self.show.lists[self.show.playbacks[index].list];
        let cue = &list.cues[state.playbacks[index].cue.unwrap_or(0)];
        Event::Cue {
            playback: self.show.playbacks[index].name.clone(),
            cue: cue.number,
            label: cue.label.clone(),
            tick,
            by_follow,
        }
    }

    /// Moves playback `index` to cue `target` at show time `ns` (tick `tick`).
    ///
    /// A lane moves when the target level changes (or the cue asserts): it fades from
    /// where the output is (intensity: from this playback's own level) with the cue's
    /// timing, and takes its channel (a new LTP order). With a delay, the move waits until
    /// GO + delay and the lane keeps doing what it did until then. Lanes that do not move
    /// keep their fades, waiting moves and LTP order.
    #[allow(clippy::too_many_arguments)]
    fn transition(
        &mut self,
        state: &mut PlaybackState,
        index: usize,
        target: usize,
        ns: u64,
        tick: u64,
        fade: Option<f64>,
        arm_follow: bool,
    ) {
        // "From where the output is": the merged levels at this time under the old state.
        self.levels_at(state, ns);
        let list: &CompiledList = &self.show.lists[self.show.playbacks[index].list];
        let cue = &list.cues[target];
        let fade_in = seconds_to_ns(fade.unwrap_or(cue.fade_in));
        let fade_out = seconds_to_ns(fade.unwrap_or(cue.fade_out));
        let delay = seconds_to_ns(cue.delay);
        let mut moves = Vec::new();
        {
            let run = &state.playbacks[index];
            for (lane, &channel) in list.lanes.iter().enumerate() {
                let ch = channel as usize;
                let mut to = cue.tracked[lane];
                if to.is_nan() {
                    if run.target(lane).is_nan() {
                        continue; // not set by this list so far (or releasing): left alone
                    }
                    // Before the cue that first set this lane: intensity goes out, other
                    // attributes return to their default.
                    to = if self.htp[ch] { 0.0 } else { self.defaults[ch] };
                }
                if !cue.assert && run.target(lane) == to {
                    continue; // tracked, not moved
                }
                let from = if delay > 0 {
                    UNSET // from where it is when the delay ends
                } else if self.htp[ch] {
                    let own = self.own_level(state, index, lane, ns);
                    if own.is_nan() { 0.0 } else { own }
                } else {
                    self.levels[ch]
                };
                moves.push(Move { lane, from, to });
            }
        }
        state.action_seq += 1;
        let seq = state.action_seq;
        let run = &mut state.playbacks[index];
        if delay > 0 && !moves.is_empty() {
            run.delayed.push(Delayed {
                start_ns: ns.saturating_add(delay),
                fade_in_ns: fade_in,
                fade_out_ns: fade_out,
            });
            let waiting = (run.delayed.len() - 1) as u16;
            for m in &moves {
                run.next_to[m.lane] = m.to;
                run.next_timing[m.lane] = waiting;
            }
        } else {
            let fades = (
                Timing {
                    start_ns: ns,
                    duration_ns: fade_in,
                },
                Timing {
                    start_ns: ns,
                    duration_ns: fade_out,
                },
            );
            self.start_moves(run, &list.lanes, &moves, fades, seq);
        }
        run.compact();
        run.cue = Some(target);
        run.go_tick = tick;
        run.go_ns = ns;
        run.last_action = seq;
        run.follow_at = None;
        if arm_follow && let Some(follow) = cue.follow {
            let after = match follow {
                rockontrol_show::Follow::After(secs) => seconds_to_ns(secs),
                rockontrol_show::Follow::AfterFade => delay.saturating_add(fade_in.max(fade_out)),
            };
            // Never on the tick the cue started on: a follow due by that tick's time fires
            // at the next tick's time (so a chain steps at most once per tick).
            let mut due = ns.saturating_add(after);
            if due <= ns_of_tick(tick, self.tick_rate) {
                due = ns_of_tick(tick + 1, self.tick_rate);
            }
            // A follow at the end of time never fires.
            run.follow_at = (due < u64::MAX).then_some(due);
        }
    }

    /// Sets moves going now: the lane fades from `from` to `to` (intensity down with the
    /// fade-out timing, everything else with the fade-in one) and takes order `seq`.
    fn start_moves(
        &self,
        run: &mut PlaybackRun,
        lanes: &[ChannelId],
        moves: &[Move],
        (fade_in, fade_out): (Timing, Timing),
        seq: u64,
    ) {
        for m in moves {
            let htp = self.htp[lanes[m.lane] as usize];
            run.from[m.lane] = m.from;
            run.to[m.lane] = m.to;
            run.timing[m.lane] = if m.from == m.to {
                0
            } else if htp && m.to < m.from {
                run.timing_index(fade_out)
            } else {
                run.timing_index(fade_in)
            };
            run.taken[m.lane] = seq;
            run.next_to[m.lane] = UNSET;
        }
    }

    /// Starts the moves of playback `index` that waited for delay `sub`, from where each
    /// lane is at that exact time; they take their channels then.
    fn start_delayed(&mut self, state: &mut PlaybackState, index: usize, sub: usize) {
        let delayed = state.playbacks[index].delayed[sub];
        let ns = delayed.start_ns;
        self.levels_at(state, ns);
        let list: &CompiledList = &self.show.lists[self.show.playbacks[index].list];
        let mut moves = Vec::new();
        {
            let run = &state.playbacks[index];
            for (lane, &channel) in list.lanes.iter().enumerate() {
                if run.next_to[lane].is_nan() || usize::from(run.next_timing[lane]) != sub {
                    continue;
                }
                let ch = channel as usize;
                let from = if self.htp[ch] {
                    let own = self.own_level(state, index, lane, ns);
                    if own.is_nan() { 0.0 } else { own }
                } else {
                    self.levels[ch]
                };
                moves.push(Move {
                    lane,
                    from,
                    to: run.next_to[lane],
                });
            }
        }
        state.action_seq += 1;
        let seq = state.action_seq;
        let run = &mut state.playbacks[index];
        let fades = (
            Timing {
                start_ns: ns,
                duration_ns: delayed.fade_in_ns,
            },
            Timing {
                start_ns: ns,
                duration_ns: delayed.fade_out_ns,
            },
        );
        // Every lane waiting on this entry has started, so `compact` drops it.
        self.start_moves(run, &list.lanes, &moves, fades, seq);
        run.compact();
    }

    /// Releases playback `index` at `ns`: every value it contributes fades from where it is
    /// back to what lies beneath (other playbacks, or defaults) over the playback's release
    /// time; waiting moves and the follow are dropped, and the next GO starts at the first
    /// cue. A 0 s release is complete at once (the `Off` event is returned).
    fn release(
        &mut self,
        state: &mut PlaybackState,
        index: usize,
        ns: u64,
        tick: u64,
    ) -> Option<Event> {
        let lanes = state.playbacks[index].to.len();
        let levels: Vec<f32> = (0..lanes)
            .map(|lane| self.own_level(state, index, lane, ns))
            .collect();
        let duration = seconds_to_ns(self.show.playbacks[index].release_time);
        let run = &mut state.playbacks[index];
        run.cue = None;
        run.follow_at = None;
        if duration == 0 {
            *run = PlaybackRun::off(lanes, run.master);
            return Some(Event::Off {
                playback: self.show.playbacks[index].name.clone(),
                tick,
            });
        }
        run.timings = vec![
            Timing::DONE,
            Timing {
                start_ns: ns,
                duration_ns: duration,
            },
        ];
        for (lane, level) in levels.into_iter().enumerate() {
            run.from[lane] = level;
            run.to[lane] = UNSET;
            run.timing[lane] = if level.is_nan() { 0 } else { 1 };
            run.next_to[lane] = UNSET;
        }
        run.delayed.clear();
        run.compact();
        run.release_at = Some(ns.saturating_add(duration));
        None
    }

    /// A release's fade is complete: its lanes stop contributing (they contribute exactly
    /// what lies beneath by now, so the output does not change). True when the playback is
    /// off (no GO came during the release).
    fn finish_release(&mut self, state: &mut PlaybackState, index: usize) -> bool {
        let run = &mut state.playbacks[index];
        run.release_at = None;
        if run.cue.is_none() {
            *run = PlaybackRun::off(run.to.len(), run.master);
            return true;
        }
        for lane in 0..run.to.len() {
            if run.to[lane].is_nan() {
                run.from[lane] = UNSET;
                run.timing[lane] = 0;
            }
        }
        run.compact();
        false
    }
}

/// The level `p` of the way from `from` to `to`, as `to − (to − from) · (1 − p)`: exactly
/// `to` once the fade is complete (`from + (to − from) · p` may miss it by a rounding, and a
/// level exactly on a DMX step's half must not fall either way by how it got there), with
/// no branch in the per-lane loop, which computes the same.
#[inline]
fn lerp(from: f32, to: f32, p: f64) -> f32 {
    to - (to - from) * (1.0 - p) as f32
}

/// The cue after `current` (the first when off), wrapping on looped lists.
fn next_cue(list: &CompiledList, current: Option<usize>) -> Option<usize> {
    match current {
        _ if list.cues.is_empty() => None,
        None => Some(0),
        Some(i) if i + 1 < list.cues.len() => Some(i + 1),
        Some(_) if list.looped => Some(0),
        Some(_) => None,
    }
}
