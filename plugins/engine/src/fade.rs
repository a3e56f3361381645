//! The fade engine: playback state, and the frame for tick *k* as a pure function of it.
//!
//! Time is counted in ticks. Tick *k* is show time `t_k = k / rate`; every fade knows the
//! tick it started on, so its progress at tick *k* is computed directly from `k` — there is
//! no per-tick accumulation, and the frame six hours in is exactly the frame computed
//! directly for that tick. The engine never reads a clock.
//!
//! Per tick, in this order: [`FadeEngine::advance`] (follows and releases due at *k*),
//! [`FadeEngine::apply`] for each command received for *k*, then [`FadeEngine::render`].

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::compile::{ChannelId, CompiledList, CompiledShow, NO_SLOT, UNSET};

/// When a group of lanes fades: from `start` tick, after `delay` seconds, over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Timing {
    pub start: u64,
    pub delay: f64,
    pub duration: f64,
}

impl Timing {
    /// Index 0 of every run's timing table: already complete.
    const DONE: Timing = Timing {
        start: 0,
        delay: 0.0,
        duration: 0.0,
    };

    /// Fade progress 0..=1 at `tick`.
    pub fn progress(&self, tick: u64, rate: f64) -> f64 {
        let elapsed = tick.saturating_sub(self.start) as f64 / rate;
        if elapsed < self.delay {
            0.0
        } else if self.duration <= 0.0 {
            1.0
        } else {
            ((elapsed - self.delay) / self.duration).min(1.0)
        }
    }

    /// The tick at which this fade is complete (saturating: a fade too long to end never
    /// ends, rather than wrapping round to an end in the past).
    pub fn end_tick(&self, rate: f64) -> u64 {
        self.start
            .saturating_add(seconds_to_ticks(self.delay + self.duration, rate))
    }
}

/// The first tick at or after `secs` seconds (never negative; NaN is 0 ticks, and a time
/// past `u64::MAX` ticks saturates there).
pub fn seconds_to_ticks(secs: f64, rate: f64) -> u64 {
    // The epsilon keeps 0.5 s at 44 Hz at 22 ticks despite 0.5 * 44 = 22.000000000000004.
    // `as` saturates on overflow and maps NaN to 0; callers add with `saturating_add`.
    (secs * rate - 1e-9).ceil().max(0.0) as u64
}

/// The state of one playback: where it is, and every lane's fade.
///
/// Equality compares lane levels bit for bit, so unset (`NaN`) lanes are equal to each other
/// and a state equals its own copy (the master republishes a state only when it changed).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlaybackRun {
    /// Index of the current cue; `None` when the playback is off.
    pub cue: Option<usize>,
    /// Fader level 0..=1.
    pub master: f64,
    /// Order of the latest action, for latest-takes-precedence merging.
    pub last_action: u64,
    /// Tick of the latest GO/BACK/GOTO.
    pub go_tick: u64,
    /// Tick at which a follow fires the next cue.
    pub follow_at: Option<u64>,
    /// Tick at which a release completes and the playback switches off.
    pub release_at: Option<u64>,
    /// Per lane: level the fade starts from.
    #[serde(with = "unset_as_null")]
    #[schemars(with = "Vec<Option<f32>>")]
    pub from: Vec<f32>,
    /// Per lane: level the fade goes to; `NaN`: the lane does not contribute.
    #[serde(with = "unset_as_null")]
    #[schemars(with = "Vec<Option<f32>>")]
    pub to: Vec<f32>,
    /// Per lane: index into `timings`.
    pub timing: Vec<u16>,
    /// Fade timings in use by lanes; index 0 is "complete".
    pub timings: Vec<Timing>,
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
            follow_at,
            release_at,
            from,
            to,
            timing,
            timings,
        } = self;
        *cue == other.cue
            && *master == other.master
            && *last_action == other.last_action
            && *go_tick == other.go_tick
            && *follow_at == other.follow_at
            && *release_at == other.release_at
            && *timing == other.timing
            && *timings == other.timings
            && lanes(from, &other.from)
            && lanes(to, &other.to)
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
            follow_at: None,
            release_at: None,
            from: vec![UNSET; lanes],
            to: vec![UNSET; lanes],
            timing: vec![0; lanes],
            timings: vec![Timing::DONE],
        }
    }

    /// True when the playback contributes to the output.
    pub fn is_active(&self) -> bool {
        self.cue.is_some() || self.release_at.is_some()
    }

    /// This playback's own level on a lane at `tick` (`NaN` if it does not set it).
    fn lane_level(&self, lane: usize, tick: u64, rate: f64) -> f32 {
        let to = self.to[lane];
        if to.is_nan() {
            return UNSET;
        }
        let from = self.from[lane];
        let p = self.timings[self.timing[lane] as usize].progress(tick, rate) as f32;
        from + (to - from) * p
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
    #[error(transparent)]
    OutOfRange(#[from] crate::command::OutOfRange),
}

/// The fade engine: a compiled show plus scratch buffers. Holds no playback state of its own.
#[derive(Debug, Clone)]
pub struct FadeEngine {
    show: CompiledShow,
    rate: f64,
    // Dense per-channel tables (hot loop data, kept apart from `ChannelInfo`).
    defaults: Vec<f32>,
    htp: Vec<bool>,
    coarse: Vec<u32>,
    fine: Vec<u32>,
    /// Merged channel levels before grand master/blackout, from the latest `compute_levels`.
    levels: Vec<f32>,
    progress: Vec<f32>,
    order: Vec<usize>,
}

impl FadeEngine {
    pub fn new(show: CompiledShow) -> Self {
        let defaults = show.channels.iter().map(|c| c.default).collect();
        let htp = show.channels.iter().map(|c| c.htp).collect();
        let coarse = show.channels.iter().map(|c| c.coarse).collect();
        let fine = show.channels.iter().map(|c| c.fine).collect();
        let levels = vec![0.0; show.channels.len()];
        FadeEngine {
            rate: f64::from(show.tick_rate),
            show,
            defaults,
            htp,
            coarse,
            fine,
            levels,
            progress: Vec::new(),
            order: Vec::new(),
        }
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
        }
    }

    /// Whether `state` fits this show: as many playbacks, each with one `from`/`to`/`timing`
    /// entry per lane of its list, every timing index inside its `timings` (with index 0), a
    /// cue inside the list, and finite levels. A state from the network or from disk is
    /// checked before it replaces the running one, so a bad one cannot panic the engine.
    pub fn check_state(&self, state: &PlaybackState) -> Result<(), String> {
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

    /// Fires follows and completes releases due at `tick`. Call once per tick, first.
    pub fn advance(&mut self, state: &mut PlaybackState, tick: u64) -> Vec<Event> {
        let mut events = Vec::new();
        for index in 0..state.playbacks.len() {
            let run = &mut state.playbacks[index];
            if run.release_at.is_some_and(|at| at <= tick) {
                let lanes = run.to.len();
                *run = PlaybackRun {
                    master: run.master,
                    ..PlaybackRun::off(lanes, run.master)
                };
                events.push(Event::Off {
                    playback: self.show.playbacks[index].name.clone(),
                    tick,
                });
            }
            // A follow chain can fire at most once per tick; a 0 s follow waits one tick.
            if state.playbacks[index]
                .follow_at
                .is_some_and(|at| at <= tick)
            {
                let at = state.playbacks[index].follow_at.unwrap_or(tick);
                let list = &self.show.lists[self.show.playbacks[index].list];
                let next = next_cue(list, state.playbacks[index].cue);
                state.playbacks[index].follow_at = None;
                if let Some(next) = next {
                    // The follow's cue starts at the tick it was due, so it is exact even if
                    // `advance` runs late.
                    self.transition(state, index, next, at.min(tick), None);
                    events.push(self.cue_event(state, index, at.min(tick), true));
                }
            }
        }
        events
    }

    /// Applies one command at `tick`.
    pub fn apply(
        &mut self,
        state: &mut PlaybackState,
        command: &Command,
        tick: u64,
    ) -> Result<Vec<Event>, CommandError> {
        // Numbers from the network or a script are checked here as well as where they enter:
        // this is the one seam every command passes.
        command.check()?;
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
                        self.release(state, index, tick);
                        events.push(Event::Changed {
                            what: format!("release {}", self.show.playbacks[index].name),
                            tick,
                        });
                    }
                }
                Ok(events)
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
                self.release(state, index, tick);
                changed(format!("release {playback}"))
            }
            Command::Go { playback, fade } => {
                let index = self.playback(playback)?;
                let list = &self.show.lists[self.show.playbacks[index].list];
                if list.cues.is_empty() {
                    return Err(CommandError::EmptyList(playback.clone()));
                }
                let next = next_cue(list, state.playbacks[index].cue)
                    .ok_or_else(|| CommandError::EndOfList(playback.clone()))?;
                self.transition(state, index, next, tick, *fade);
                Ok(vec![self.cue_event(state, index, tick, false)])
            }
            Command::Back { playback, fade } => {
                let index = self.playback(playback)?;
                let list = &self.show.lists[self.show.playbacks[index].list];
                let previous = match state.playbacks[index].cue {
                    None => return Err(CommandError::NotRunning(playback.clone())),
                    Some(0) if list.looped => list.cues.len() - 1,
                    Some(0) => return Err(CommandError::StartOfList(playback.clone())),
                    Some(i) => i - 1,
                };
                self.transition(state, index, previous, tick, *fade);
                Ok(vec![self.cue_event(state, index, tick, false)])
            }
            Command::Goto {
                playback,
                cue,
                fade,
            } => {
                let index = self.playback(playback)?;
                let list = &self.show.lists[self.show.playbacks[index].list];
                let target = list
                    .cue_index(*cue)
                    .ok_or_else(|| CommandError::UnknownCue(playback.clone(), cue.to_string()))?;
                self.transition(state, index, target, tick, *fade);
                Ok(vec![self.cue_event(state, index, tick, false)])
            }
        }
    }

    /// Computes merged channel levels (before grand master and blackout) for `tick`.
    pub fn compute_levels(&mut self, state: &PlaybackState, tick: u64) {
        self.levels.copy_from_slice(&self.defaults);
        // Latest action last, so it wins latest-takes-precedence channels.
        self.order.clear();
        self.order
            .extend((0..state.playbacks.len()).filter(|i| state.playbacks[*i].is_active()));
        self.order.sort_by_key(|i| state.playbacks[*i].last_action);
        for &index in &self.order {
            let run = &state.playbacks[index];
            let lanes = &self.show.lists[self.show.playbacks[index].list].lanes;
            self.progress.clear();
            self.progress.extend(
                run.timings
                    .iter()
                    .map(|t| t.progress(tick, self.rate) as f32),
            );
            let master = run.master as f32;
            let levels = &mut self.levels;
            for (lane, &channel) in lanes.iter().enumerate() {
                let to = run.to[lane];
                if to.is_nan() {
                    continue;
                }
                let from = run.from[lane];
                let p = self.progress[run.timing[lane] as usize];
                let v = from + (to - from) * p;
                let ch = channel as usize;
                if self.htp[ch] {
                    levels[ch] = levels[ch].max(v * master);
                } else {
                    levels[ch] = v;
                }
            }
        }
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
        for ch in 0..self.levels.len() {
            let mut v = self.levels[ch];
            if self.htp[ch] {
                v *= gm;
            }
            self.write_channel(frame, ch, v);
        }
    }

    /// Writes the intensity (HTP) channels of the show universes `universes` again, from the
    /// merged levels of the latest render, with `gm` as their grand master: a node's own
    /// output level (a per-node blackout or intensity) on top of a frame rendered from the
    /// shared playback state. Other universes and attributes are left as they are.
    pub fn rewrite_intensity(&self, frame: &mut [u8], gm: f32, universes: &[u16]) {
        let slots = rockontrol_show::UNIVERSE_SLOTS as u32;
        for ch in 0..self.levels.len() {
            let universe = self.show.universes.get((self.coarse[ch] / slots) as usize);
            if self.htp[ch] && universe.is_some_and(|u| universes.contains(u)) {
                self.write_channel(frame, ch, self.levels[ch] * gm);
            }
        }
    }

    fn write_channel(&self, frame: &mut [u8], ch: usize, v: f32) {
        let v = v.clamp(0.0, 1.0);
        let fine = self.fine[ch];
        if fine == NO_SLOT {
            // Round half up; v ≥ 0 so truncation of v + 0.5 is rounding.
            frame[self.coarse[ch] as usize] = (v * 255.0 + 0.5) as u8;
        } else {
            let x = (v * 65535.0 + 0.5) as u32;
            frame[self.coarse[ch] as usize] = (x >> 8) as u8;
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

    /// Moves playback `index` to cue `target` at `tick`, crossfading from where the output is.
    fn transition(
        &mut self,
        state: &mut PlaybackState,
        index: usize,
        target: usize,
        tick: u64,
        fade: Option<f64>,
    ) {
        // "From where the output is": the merged levels at this tick under the old state.
        self.compute_levels(state, tick);
        let rate = self.rate;
        let list: &CompiledList = &self.show.lists[self.show.playbacks[index].list];
        let cue = &list.cues[target];
        state.action_seq += 1;
        let run = &mut state.playbacks[index];
        let fade_in = fade.unwrap_or(cue.fade_in);
        let fade_out = fade.unwrap_or(cue.fade_out);
        let mut timings = vec![
            Timing::DONE,
            Timing {
                start: tick,
                delay: cue.delay,
                duration: fade_in,
            },
            Timing {
                start: tick,
                delay: cue.delay,
                duration: fade_out,
            },
        ];
        const IN: u16 = 1;
        const OUT: u16 = 2;
        for (lane, &channel) in list.lanes.iter().enumerate() {
            let ch = channel as usize;
            let htp = self.htp[ch];
            let current = run.lane_level(lane, tick, rate);
            let mut target_level = cue.tracked[lane];
            if target_level.is_nan() {
                if current.is_nan() {
                    continue; // never set by this playback, still not set
                }
                // Going back before the cue that first set this lane: intensity fades out,
                // other attributes return to their default.
                target_level = if htp { 0.0 } else { self.defaults[ch] };
            }
            let old_timing = run.timings[run.timing[lane] as usize];
            if run.to[lane] == target_level && old_timing.end_tick(rate) > tick {
                // Unchanged target and still fading: the fade carries on with its own timing.
                let kept = timings
                    .iter()
                    .position(|t| *t == old_timing)
                    .unwrap_or_else(|| {
                        timings.push(old_timing);
                        timings.len() - 1
                    });
                run.timing[lane] = kept as u16;
                continue;
            }
            let from = if htp {
                if current.is_nan() { 0.0 } else { current }
            } else {
                self.levels[ch]
            };
            run.from[lane] = from;
            run.to[lane] = target_level;
            run.timing[lane] = if from == target_level {
                0
            } else if htp && target_level < from {
                OUT
            } else {
                IN
            };
        }
        run.timings = timings;
        run.cue = Some(target);
        run.go_tick = tick;
        run.last_action = state.action_seq;
        run.release_at = None;
        let duration = cue.delay + fade_in.max(fade_out);
        run.follow_at = cue.follow.map(|follow| {
            let secs = match follow {
                rockontrol_show::Follow::After(secs) => secs,
                rockontrol_show::Follow::AfterFade => duration,
            };
            tick.saturating_add(seconds_to_ticks(secs, rate).max(1))
        });
    }

    /// Fades a playback's intensity out over its current cue's fade-out time, then turns it off.
    fn release(&mut self, state: &mut PlaybackState, index: usize, tick: u64) {
        let rate = self.rate;
        let list = &self.show.lists[self.show.playbacks[index].list];
        let run = &mut state.playbacks[index];
        let Some(cue) = run.cue.map(|c| &list.cues[c]) else {
            return;
        };
        let timing = Timing {
            start: tick,
            delay: 0.0,
            duration: cue.fade_out,
        };
        for (lane, &channel) in list.lanes.iter().enumerate() {
            let current = run.lane_level(lane, tick, rate);
            if current.is_nan() {
                continue;
            }
            run.from[lane] = current;
            if self.htp[channel as usize] {
                run.to[lane] = 0.0;
                run.timing[lane] = 1;
            } else {
                run.to[lane] = current;
                run.timing[lane] = 0;
            }
        }
        run.timings = vec![Timing::DONE, timing];
        run.follow_at = None;
        run.release_at = Some(timing.end_tick(rate));
    }
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
