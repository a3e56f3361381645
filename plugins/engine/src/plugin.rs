//! The engine as a Bevy plugin.
//!
//! The show lives in the world as entities — [`ShowUniverse`], [`PatchedFixture`],
//! [`ShowCueList`], [`ShowPlayback`] — plus the [`ShowSettings`] resource for what is not an
//! entity (profiles, groups, tick rate). [`show_from_world`] writes them back as a
//! [`Show`]. The engine recompiles when they change; a show that fails to compile is
//! reported and the running one keeps running.
//!
//! In `FixedUpdate` at the show's tick rate, [`EngineSystems`] run in order: recompile if
//! needed, apply due follows and commands (through the [`CommandSeam`]), render the frame for
//! the tick, and publish it on the [`FrameBus`]. Outputs never send from here: they receive
//! the frames on their own threads and send each at the deadline it carries.
//!
//! # Where ticks come from
//! The [`ShowTimeBase`] maps the monotonic clock to show time. Live ([`TickSource::Monotonic`]),
//! each frame runs exactly the ticks whose time has come on that mapping (catching up at most
//! [`MAX_CATCH_UP_SECS`] per frame after a stall), so [`ShowClock`] follows the time base and a
//! step of the time base moves the ticks with it. In tests and `render`
//! ([`TickSource::FixedClock`], chosen when the app steps Bevy's time by hand) Bevy's fixed
//! clock decides, one tick per fixed step, and the time base only follows it. Either way each
//! frame set carries its send deadline, `instant_of_tick(k + 1)` on the time base.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use bevy::app::{RunFixedMainLoop, RunFixedMainLoopSystems};
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use rockontrol_replicate::{AppReplicateExt, DuplicatePart, ReplicationRules};
use rockontrol_show::{
    CueList, Fixture, FixtureProfile, Group, Playback, Show, UNIVERSE_SLOTS, Universe,
};

use crate::command::Command;
use crate::compile::CompiledShow;
use crate::fade::{CommandError, Event, FadeEngine, PlaybackState};
use crate::seam::CommandSeam;
use crate::timebase::ShowTimeBase;

/// The tick rate the time base runs at before a show is compiled.
const DEFAULT_TICK_RATE: u32 = 44;
/// Live, at most this many seconds of ticks run in one frame after a stall; the rest follow
/// in the next frames (the output thread sends only the newest frame that is due).
pub const MAX_CATCH_UP_SECS: u32 = 5;
/// Live, an engine further behind its time base than this skips the missed ticks.
const SKIP_AFTER_SECS: u64 = 60;
/// With the fixed clock, the time base is re-anchored when the tick being run is further
/// than this from wall time (tests running faster than real time, a stalled process).
const FIXED_CLOCK_DRIFT: Duration = Duration::from_secs(1);

/// Runs the show engine in `FixedUpdate`.
#[derive(Debug, Default)]
pub struct EnginePlugin;

/// The engine's systems, in the order they run each tick.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum EngineSystems {
    /// Recompile the show if its entities changed.
    Compile,
    /// Systems that queue commands for this very tick because the show said so ahead of
    /// time (timecode cues, beat follows: `CommandQueue::at(tick, …)`), not an operator.
    Triggers,
    /// Follows, releases and commands due at this tick.
    Playback,
    /// Compute the frame for this tick.
    Render,
    /// Hand the frame to outputs and captures.
    Publish,
}

impl Plugin for EnginePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<ShowClock>()
            .init_resource::<EffectBeat>()
            .insert_resource(ShowTimeBase::new(DEFAULT_TICK_RATE, Instant::now()))
            .init_resource::<TickSource>()
            .init_resource::<TickDrive>()
            .init_resource::<ShowTime>()
            .init_resource::<ShowEngine>()
            .init_resource::<CommandQueue>()
            .init_resource::<FrameBus>()
            .init_resource::<LatestFrame>()
            .init_resource::<ExternalInputs>()
            .add_message::<EngineEvent>()
            .add_message::<CommandRejected>()
            .configure_sets(
                FixedUpdate,
                (
                    EngineSystems::Compile,
                    EngineSystems::Triggers,
                    EngineSystems::Playback,
                    EngineSystems::Render,
                    EngineSystems::Publish,
                )
                    .chain(),
            )
            .add_systems(
                FixedUpdate,
                (
                    compile_show.in_set(EngineSystems::Compile),
                    run_playback.in_set(EngineSystems::Playback),
                    render_frame.in_set(EngineSystems::Render),
                    publish_frame.in_set(EngineSystems::Publish),
                ),
            )
            .add_systems(
                RunFixedMainLoop,
                (
                    drive_ticks.in_set(RunFixedMainLoopSystems::BeforeFixedMainLoop),
                    after_ticks.in_set(RunFixedMainLoopSystems::AfterFixedMainLoop),
                ),
            );
        app.add_replication(register_replication);
    }
}

/// What the engine replicates: its playback state (every snapshot) and the show commands of
/// deltas. [`EnginePlugin`] registers them; net builds its base protocol hash from them too.
pub fn register_replication(rules: &mut ReplicationRules) -> Result<(), DuplicatePart> {
    rules
        .add_state::<Option<PlaybackState>, _, _>(
            PLAYBACK_PART,
            |world| {
                world
                    .get_resource::<ShowEngine>()
                    .and_then(|e| e.state.clone())
            },
            apply_replicated_state,
        )?
        .add_command::<Command>(COMMAND_PART)?;
    Ok(())
}

/// The replicated part that carries the [`PlaybackState`].
pub const PLAYBACK_PART: &str = "engine.playback";
/// The replicated command type of deltas ([`Command`]).
pub const COMMAND_PART: &str = "engine.command";

/// A received playback state replaces the running one if it fits the compiled show; a master
/// without a show yet sends none, which changes nothing.
fn apply_replicated_state(world: &mut World, state: Option<PlaybackState>) -> Result<(), String> {
    let Some(state) = state else {
        return Ok(());
    };
    let Some(mut engine) = world.get_resource_mut::<ShowEngine>() else {
        return Err("this app runs no engine".into());
    };
    match &engine.engine {
        Some(fade) => fade.check_state(&state)?,
        None => return Err("no show is compiled here yet".into()),
    }
    engine.state = Some(state);
    Ok(())
}

/// Order of a show item in its file, so writing back keeps the author's order.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ShowOrder(pub u32);

/// A universe of the show.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct ShowUniverse(pub Universe);

/// A patched fixture.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct PatchedFixture(pub Fixture);

/// A cue list.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct ShowCueList(pub CueList);

/// A playback.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct ShowPlayback(pub Playback);

/// The parts of the show that are not entities.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct ShowSettings {
    pub name: String,
    pub tick_rate: u32,
    pub grand_master: f64,
    pub profiles: Vec<FixtureProfile>,
    pub groups: Vec<Group>,
    /// Media outputs, layers and cue actions: the media crate runs them; kept here so a show
    /// written back from the world keeps them.
    pub media: rockontrol_show::MediaSetup,
    /// The show's clip table (name → library id): the master's manifests and GO gate read
    /// it, and a show written back from the world keeps it.
    pub clips: Vec<rockontrol_show::Clip>,
    /// Timecode, timecode cues and tempo: the timecode crate runs them; kept for write-back.
    pub timecode: rockontrol_show::TimecodeSetup,
    /// Effects: compiled with the show (commands start and stop them).
    pub effects: Vec<rockontrol_show::Effect>,
}

/// The tempo effects with a speed in beats follow (the timecode crate keeps it in step with
/// its replicated tempo); `None`: 120 BPM.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EffectBeat(pub Option<crate::effect::BeatClock>);

/// The show tick: how many ticks the engine has run. Tick *k* is show time `k / rate`.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShowClock {
    /// The tick the next `FixedUpdate` run computes.
    pub next_tick: u64,
}

impl ShowClock {
    /// Steps the show clock: tick `tick` is the next one computed, and the time base makes it
    /// due at `now` (so its frame's deadline is one tick from now, whichever way the clock
    /// jumped). Logged with `reason`.
    pub fn step_to(&mut self, base: &mut ShowTimeBase, tick: u64, now: Instant, reason: &str) {
        base.step_to_tick(now, tick, reason);
        self.next_tick = tick;
    }
}

/// Where the fixed-tick schedule takes its ticks from (see the [module docs](self)).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum TickSource {
    /// Decided at the first frame: [`TickSource::FixedClock`] when the app steps Bevy's time
    /// by hand (a `TimeUpdateStrategy` other than `Automatic`), else [`TickSource::Monotonic`].
    #[default]
    Auto,
    /// One tick per step of Bevy's fixed clock (deterministic tests, `render`).
    FixedClock,
    /// The ticks whose time has come on the [`ShowTimeBase`] at the monotonic clock's now.
    Monotonic,
}

/// Bookkeeping of [`TickSource`] between the systems around the fixed loop.
#[derive(Resource, Debug, Default)]
pub struct TickDrive {
    /// The instant this frame's ticks were counted at.
    now: Option<Instant>,
    /// Ticks the time base has due but the engine has not run yet (after a long stall).
    pub behind: u64,
}

/// Continuous show time for `Update` and rendering (media): the latest tick the engine
/// computed plus the fraction of the way to the next one. Updated every frame after the
/// fixed ticks.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq)]
pub struct ShowTime {
    /// The latest tick computed.
    pub tick: u64,
    /// 0..1 towards the next tick.
    pub fraction: f64,
    /// Ticks per second.
    pub rate: u32,
}

impl ShowTime {
    /// Show time in ticks, with the fraction.
    pub fn ticks(&self) -> f64 {
        self.tick as f64 + self.fraction
    }

    /// Show time in seconds.
    pub fn seconds(&self) -> f64 {
        self.ticks() / f64::from(self.rate.max(1))
    }
}

/// The compiled show, its playback state and the frame being built.
#[derive(Resource, Debug, Default)]
pub struct ShowEngine {
    pub engine: Option<FadeEngine>,
    pub state: Option<PlaybackState>,
    pub frame: Vec<u8>,
    /// Set when show entities changed and the engine must recompile.
    pub dirty: bool,
    /// The error of the latest failed recompile (the previous show keeps running).
    pub last_error: Option<String>,
    /// Counts successful compiles, so dependents (outputs, UI) notice a new show.
    pub generation: u64,
    /// Where every command is applied (see [`crate::seam`] for the order within a tick).
    pub seam: CommandSeam,
}

/// A compiled show with its playback state, borrowed from [`ShowEngine::running`]: what every
/// role's command path and renderer needs at once.
#[derive(Debug)]
pub struct Running<'a> {
    pub fade: &'a mut FadeEngine,
    pub state: &'a mut PlaybackState,
    pub seam: &'a mut CommandSeam,
    pub frame: &'a mut Vec<u8>,
}

impl Running<'_> {
    /// Applies `command` at `tick` through the seam (after that tick's follows and releases).
    pub fn apply(&mut self, command: &Command, tick: u64) -> Result<Vec<Event>, CommandError> {
        self.seam.apply(self.fade, self.state, command, tick)
    }

    /// [`Running::apply`], reported as every role reports a show command: the events it caused
    /// as [`EngineEvent`]s or, refused, a warning and a [`CommandRejected`] (the show keeps
    /// running).
    pub fn apply_reported(
        &mut self,
        command: &Command,
        tick: u64,
        events: &mut MessageWriter<EngineEvent>,
        rejected: &mut MessageWriter<CommandRejected>,
    ) -> Result<(), CommandError> {
        match self.apply(command, tick) {
            Ok(done) => {
                for event in done {
                    debug!("tick {tick}: {command} → {event:?}");
                    events.write(EngineEvent(event));
                }
                Ok(())
            }
            Err(error) => {
                warn!("tick {tick}: {command} refused: {error}");
                rejected.write(CommandRejected {
                    command: command.clone(),
                    error: error.clone(),
                    tick,
                });
                Err(error)
            }
        }
    }
}

impl ShowEngine {
    /// The compiled show, its state, seam and frame; `None` before a show is compiled.
    pub fn running(&mut self) -> Option<Running<'_>> {
        let ShowEngine {
            engine: Some(fade),
            state: Some(state),
            seam,
            frame,
            ..
        } = self
        else {
            return None;
        };
        Some(Running {
            fade,
            state,
            seam,
            frame,
        })
    }
}

/// Commands waiting for the engine: immediate ones, and ones scheduled for a tick.
#[derive(Resource, Debug, Default)]
pub struct CommandQueue {
    pub immediate: VecDeque<Command>,
    pub scheduled: BTreeMap<u64, Vec<Command>>,
}

impl CommandQueue {
    /// Queues a command for the next tick.
    pub fn push(&mut self, command: Command) {
        self.immediate.push_back(command);
    }

    /// Queues a command for a given tick (applied at the first tick at or after it).
    pub fn at(&mut self, tick: u64, command: Command) {
        self.scheduled.entry(tick).or_default().push(command);
    }

    /// Takes the commands due at `tick`, in the seam's order: scheduled ones by tick (then as
    /// queued), then immediate ones. Allocates nothing when none is due.
    pub fn take_due(&mut self, tick: u64) -> impl Iterator<Item = Command> + use<> {
        let mut scheduled = Vec::new();
        while let Some(entry) = self.scheduled.first_entry() {
            if *entry.key() > tick {
                break;
            }
            scheduled.push(entry.remove());
        }
        let immediate = std::mem::take(&mut self.immediate);
        scheduled.into_iter().flatten().chain(immediate)
    }
}

/// What the engine did, for logs, status lines and the UI.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct EngineEvent(pub Event);

/// A command the engine could not apply, and why. The show keeps running.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct CommandRejected {
    pub command: Command,
    pub error: CommandError,
    pub tick: u64,
}

/// One tick's frames of every universe.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSet {
    pub tick: u64,
    /// Show time of the tick, `tick / rate` seconds.
    pub time: f64,
    pub rate: u32,
    /// When the frame goes on the wire: one tick after the tick's instant on the
    /// [`ShowTimeBase`] (the tick of buffering absorbs the frame loop's jitter). A step of the
    /// time base moves it, so it is never seconds away.
    pub deadline: Instant,
    /// Show universe ids, in the order of `data`.
    pub universes: Vec<u16>,
    /// 512 slots per universe.
    pub data: Vec<u8>,
}

impl FrameSet {
    /// The 512 slots of a universe.
    pub fn universe(&self, id: u16) -> Option<&[u8]> {
        let index = self.universes.iter().position(|u| *u == id)?;
        self.data
            .get(index * UNIVERSE_SLOTS..(index + 1) * UNIVERSE_SLOTS)
    }
}

/// The latest frame set, for previews and status.
#[derive(Resource, Debug, Default, Clone)]
pub struct LatestFrame(pub Option<Arc<FrameSet>>);

/// Hands every frame set to output threads over bounded channels.
///
/// A subscriber that falls behind loses frames (counted in `dropped`) rather than stalling
/// the tick; one that hung up is removed.
#[derive(Resource, Debug, Default)]
pub struct FrameBus {
    subscribers: Vec<SyncSender<Arc<FrameSet>>>,
    /// Frames not delivered because a subscriber's queue was full.
    pub dropped: u64,
}

impl FrameBus {
    /// A new subscriber that receives every frame set, buffering up to `capacity`.
    pub fn subscribe(&mut self, capacity: usize) -> Receiver<Arc<FrameSet>> {
        let (tx, rx) = sync_channel(capacity.max(1));
        self.subscribers.push(tx);
        rx
    }

    /// Number of live subscribers.
    pub fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    fn publish(&mut self, frames: &Arc<FrameSet>) {
        let mut dropped = 0;
        self.subscribers
            .retain(|tx| match tx.try_send(Arc::clone(frames)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    dropped += 1;
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
        self.dropped += dropped;
    }
}

/// DMX from other consoles, per show universe, combined with the engine's frames as they are
/// published (filled by the DMX plugin's input side).
///
/// The engine's own frame stays a pure function of the playback state and the tick; inputs
/// are combined on the copy that goes to outputs, so a live input never changes what the
/// engine computes.
#[derive(Resource, Debug, Default)]
pub struct ExternalInputs {
    pub universes: BTreeMap<u16, ExternalUniverse>,
}

/// The latest merged input of one show universe.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalUniverse {
    pub mode: rockontrol_show::InputMode,
    /// 512 slots.
    pub slots: Vec<u8>,
    /// False once every source has gone (2.5 s loss timeout): the input no longer counts.
    pub live: bool,
}

impl ExternalInputs {
    /// Combines live inputs into `data` (512 slots per universe, in `universes` order).
    pub fn apply(&self, universes: &[u16], data: &mut [u8]) {
        for (index, id) in universes.iter().enumerate() {
            let Some(input) = self.universes.get(id).filter(|i| i.live) else {
                continue;
            };
            let Some(frame) = data.get_mut(index * UNIVERSE_SLOTS..(index + 1) * UNIVERSE_SLOTS)
            else {
                continue;
            };
            match input.mode {
                rockontrol_show::InputMode::Merge => {
                    for (out, inp) in frame.iter_mut().zip(&input.slots) {
                        *out = (*out).max(*inp);
                    }
                }
                rockontrol_show::InputMode::Bridge => {
                    let n = input.slots.len().min(frame.len());
                    frame[..n].copy_from_slice(&input.slots[..n]);
                    frame[n..].fill(0);
                }
            }
        }
    }
}

/// Keeps every frame set the engine publishes (insert it to capture; for tests and `render`).
#[derive(Resource, Debug, Default)]
pub struct CaptureSink {
    pub frames: Vec<Arc<FrameSet>>,
}

/// Replaces the show in the world with `show`: despawns the old show entities and spawns new
/// ones. The engine compiles it on the next tick.
pub fn load_show(world: &mut World, show: &Show) {
    let old: Vec<Entity> = world
        .query_filtered::<Entity, With<ShowOrder>>()
        .iter(world)
        .collect();
    for entity in old {
        world.despawn(entity);
    }
    world.insert_resource(ShowSettings {
        name: show.name.clone(),
        tick_rate: show.tick_rate,
        grand_master: show.grand_master,
        profiles: show.profiles.clone(),
        groups: show.groups.clone(),
        media: show.media.clone(),
        clips: show.clips.clone(),
        timecode: show.timecode.clone(),
        effects: show.effects.clone(),
    });
    for (i, u) in show.universes.iter().enumerate() {
        world.spawn((
            ShowOrder(i as u32),
            ShowUniverse(u.clone()),
            Name::new(format!("Universe {}", u.id)),
        ));
    }
    for (i, f) in show.fixtures.iter().enumerate() {
        world.spawn((
            ShowOrder(i as u32),
            PatchedFixture(f.clone()),
            Name::new(format!("{} {}", f.id, f.name)),
        ));
    }
    for (i, l) in show.cue_lists.iter().enumerate() {
        world.spawn((
            ShowOrder(i as u32),
            ShowCueList(l.clone()),
            Name::new(format!("Cue list {}", l.name)),
        ));
    }
    for (i, p) in show.playbacks.iter().enumerate() {
        world.spawn((
            ShowOrder(i as u32),
            ShowPlayback(p.clone()),
            Name::new(format!("Playback {}", p.name)),
        ));
    }
    world.resource_mut::<ShowEngine>().dirty = true;
}

/// Writes the show back from the world's entities, in the author's order.
pub fn show_from_world(world: &mut World) -> Show {
    fn collect<C: Component + Clone>(world: &mut World) -> Vec<C> {
        let mut items: Vec<(ShowOrder, C)> = world
            .query::<(&ShowOrder, &C)>()
            .iter(world)
            .map(|(o, c)| (*o, c.clone()))
            .collect();
        items.sort_by_key(|(o, _)| *o);
        items.into_iter().map(|(_, c)| c).collect()
    }
    let settings = world.get_resource::<ShowSettings>().cloned();
    let mut show = match &settings {
        Some(s) => Show {
            tick_rate: s.tick_rate,
            grand_master: s.grand_master,
            profiles: s.profiles.clone(),
            groups: s.groups.clone(),
            media: s.media.clone(),
            clips: s.clips.clone(),
            timecode: s.timecode.clone(),
            effects: s.effects.clone(),
            ..Show::empty(s.name.clone())
        },
        None => Show::empty(""),
    };
    show.universes = collect::<ShowUniverse>(world)
        .into_iter()
        .map(|c| c.0)
        .collect();
    show.fixtures = collect::<PatchedFixture>(world)
        .into_iter()
        .map(|c| c.0)
        .collect();
    show.cue_lists = collect::<ShowCueList>(world)
        .into_iter()
        .map(|c| c.0)
        .collect();
    show.playbacks = collect::<ShowPlayback>(world)
        .into_iter()
        .map(|c| c.0)
        .collect();
    show
}

type ShowChanged = Or<(
    Changed<ShowUniverse>,
    Changed<PatchedFixture>,
    Changed<ShowCueList>,
    Changed<ShowPlayback>,
)>;

/// Recompiles the show when its entities or settings changed.
pub fn compile_show(world: &mut World) {
    let changed = world
        .query_filtered::<(), ShowChanged>()
        .iter(world)
        .next()
        .is_some()
        || world
            .get_resource_ref::<ShowSettings>()
            .is_some_and(|s| s.is_changed());
    if !changed && !world.resource::<ShowEngine>().dirty {
        return;
    }
    let show = show_from_world(world);
    match CompiledShow::compile(&show) {
        Ok(compiled) => {
            let engine = FadeEngine::new(compiled);
            let rate = engine.rate();
            let mut state = engine.initial_state();
            let tick = world.resource::<ShowClock>().next_tick;
            let now = world
                .resource::<TickDrive>()
                .now
                .unwrap_or_else(Instant::now);
            world
                .resource_mut::<ShowTimeBase>()
                .set_rate(now, engine.show().tick_rate, tick);
            let mut slot = world.resource_mut::<ShowEngine>();
            let mut engine = engine;
            // Keep playbacks on their cues across an edit (snapped: an edit is not a GO).
            if let (Some(old_engine), Some(old_state)) = (&slot.engine, &slot.state) {
                for (old_index, old_run) in old_state.playbacks.iter().enumerate() {
                    let (Some(cue), Some(old_pb)) =
                        (old_run.cue, old_engine.show().playbacks.get(old_index))
                    else {
                        continue;
                    };
                    let old_list = &old_engine.show().lists[old_pb.list];
                    let Some(number) = old_list.cues.get(cue).map(|c| c.number) else {
                        continue;
                    };
                    let goto = Command::Goto {
                        playback: old_pb.name.clone(),
                        cue: number,
                        fade: Some(0.0),
                    };
                    if let Err(e) = engine.apply(&mut state, &goto, tick) {
                        warn!(
                            "after the show edit, playback {:?} could not return to cue {number}: {e}",
                            old_pb.name
                        );
                    }
                }
                state.grand_master = old_state.grand_master;
                state.blackout = old_state.blackout;
                // Effects keep running by name.
                for &old in &old_state.effects {
                    let name = old_engine
                        .show()
                        .effects
                        .get(usize::from(old))
                        .map(|e| &e.name);
                    if let Some(new) = engine
                        .show()
                        .effects
                        .iter()
                        .position(|e| Some(&e.name) == name)
                    {
                        state.effects.push(new as u16);
                    }
                }
                state.effects.sort_unstable();
                state.effects.dedup();
            }
            info!(
                "show {:?} compiled: {} universes, {} channels, {} cue lists, {} Hz",
                show.name,
                engine.show().universes.len(),
                engine.show().channels.len(),
                engine.show().lists.len(),
                engine.show().tick_rate
            );
            slot.frame = engine.new_frame();
            slot.engine = Some(engine);
            slot.state = Some(state);
            slot.dirty = false;
            slot.last_error = None;
            slot.generation += 1;
            slot.seam.reset();
            // Live, `drive_ticks` sets the fixed timestep each frame.
            if *world.resource::<TickSource>() != TickSource::Monotonic {
                world.resource_mut::<Time<Fixed>>().set_timestep_hz(rate);
            }
        }
        Err(e) => {
            error!("{e}\nthe running show keeps running; fix the show and load it again");
            let mut slot = world.resource_mut::<ShowEngine>();
            slot.dirty = false;
            slot.last_error = Some(e.to_string());
        }
    }
}

fn run_playback(
    mut engine: ResMut<ShowEngine>,
    mut queue: ResMut<CommandQueue>,
    clock: Res<ShowClock>,
    mut events: MessageWriter<EngineEvent>,
    mut rejected: MessageWriter<CommandRejected>,
) {
    let tick = clock.next_tick;
    let Some(mut running) = engine.running() else {
        return;
    };
    running.seam.advance(running.fade, running.state, tick);
    for event in running.seam.take_events() {
        events.write(EngineEvent(event));
    }
    for command in queue.take_due(tick) {
        let _ = running.apply_reported(&command, tick, &mut events, &mut rejected);
    }
    let seam = running.seam;
    for event in seam.take_events() {
        events.write(EngineEvent(event));
    }
}

fn render_frame(mut engine: ResMut<ShowEngine>, clock: Res<ShowClock>, beat: Res<EffectBeat>) {
    let Some(Running {
        fade, state, frame, ..
    }) = engine.running()
    else {
        return;
    };
    fade.set_beat(beat.0);
    fade.render(state, clock.next_tick, frame);
    trace!("tick {} rendered", clock.next_tick);
}

fn publish_frame(
    engine: Res<ShowEngine>,
    base: Res<ShowTimeBase>,
    inputs: Res<ExternalInputs>,
    mut clock: ResMut<ShowClock>,
    mut bus: ResMut<FrameBus>,
    mut latest: ResMut<LatestFrame>,
    capture: Option<ResMut<CaptureSink>>,
) {
    let tick = clock.next_tick;
    clock.next_tick += 1;
    let Some(fade) = &engine.engine else {
        return;
    };
    let mut data = engine.frame.clone();
    inputs.apply(&fade.show().universes, &mut data);
    let frames = Arc::new(FrameSet {
        tick,
        time: fade.time(tick),
        rate: fade.show().tick_rate,
        deadline: base.instant_of_tick(tick + 1),
        universes: fade.show().universes.clone(),
        data,
    });
    bus.publish(&frames);
    if let Some(mut capture) = capture {
        capture.frames.push(Arc::clone(&frames));
    }
    latest.0 = Some(frames);
}

/// Decides how many fixed steps run this frame (see [`TickSource`]).
///
/// Live, Bevy's fixed clock is made to run exactly the ticks the time base has due: its
/// overstep is set so that, with this frame's virtual delta added, it holds that many
/// steps (the step is stretched for the frame when the delta alone would hold more).
fn drive_ticks(
    mut source: ResMut<TickSource>,
    strategy: Option<Res<TimeUpdateStrategy>>,
    mut drive: ResMut<TickDrive>,
    mut base: ResMut<ShowTimeBase>,
    mut clock: ResMut<ShowClock>,
    mut fixed: ResMut<Time<Fixed>>,
    virtual_time: Res<Time<Virtual>>,
) {
    if *source == TickSource::Auto {
        *source = match strategy.as_deref() {
            None | Some(TimeUpdateStrategy::Automatic) => TickSource::Monotonic,
            Some(_) => TickSource::FixedClock,
        };
        debug!("show ticks from {:?}", *source);
    }
    let now = Instant::now();
    let first = drive.now.is_none();
    drive.now = Some(now);
    if first {
        // Tick `next_tick` is due at the first frame, not at the app's construction.
        base.anchor_tick_quietly(now, clock.next_tick);
    }
    if *source == TickSource::FixedClock {
        let due_at = base.instant_of_tick(clock.next_tick);
        if due_at > now + FIXED_CLOCK_DRIFT || due_at + FIXED_CLOCK_DRIFT < now {
            debug!(
                "the fixed clock's tick {} is over {FIXED_CLOCK_DRIFT:?} from wall time; re-anchoring the show time base",
                clock.next_tick
            );
            base.anchor_tick_quietly(now, clock.next_tick);
        }
        return;
    }
    let rate = u64::from(base.rate());
    let mut due = (base.tick_at(now) + 1).saturating_sub(clock.next_tick);
    if due > rate * SKIP_AFTER_SECS {
        let to = base.tick_at(now);
        warn!(
            "the engine is {:.1} s behind show time (a stall?); skipping from tick {} to {to}",
            (due as f64) / rate as f64,
            clock.next_tick
        );
        clock.next_tick = to;
        due = 1;
    }
    let limit = rate * u64::from(MAX_CATCH_UP_SECS);
    drive.behind = due.saturating_sub(limit);
    let due = due.min(limit) as u32;
    let delta = virtual_time.delta();
    let period = base.period();
    let step = if due == 0 {
        period.max(delta + Duration::from_nanos(1))
    } else {
        period.max(delta.div_ceil_by(due))
    };
    fixed.set_timestep(step);
    let overstep = fixed.overstep();
    fixed.discard_overstep(overstep);
    fixed.accumulate_overstep((step * due).saturating_sub(delta));
}

/// Restores the show's timestep after the fixed loop and updates [`ShowTime`].
fn after_ticks(
    source: Res<TickSource>,
    drive: Res<TickDrive>,
    base: Res<ShowTimeBase>,
    clock: Res<ShowClock>,
    mut fixed: ResMut<Time<Fixed>>,
    mut show_time: ResMut<ShowTime>,
) {
    let last = clock.next_tick.saturating_sub(1);
    let fraction = if *source == TickSource::Monotonic {
        let period = base.period();
        if fixed.timestep() != period {
            fixed.set_timestep(period);
        }
        let overstep = fixed.overstep();
        fixed.discard_overstep(overstep);
        let now = drive.now.unwrap_or_else(Instant::now);
        (base.ticks_at(now) - last as f64).clamp(0.0, 0.999_999)
    } else {
        fixed.overstep_fraction_f64().clamp(0.0, 0.999_999)
    };
    *show_time = ShowTime {
        tick: last,
        fraction: if clock.next_tick == 0 { 0.0 } else { fraction },
        rate: base.rate(),
    };
}

/// `Duration / n`, rounded up to the nanosecond.
trait DivCeil {
    fn div_ceil_by(self, n: u32) -> Duration;
}

impl DivCeil for Duration {
    fn div_ceil_by(self, n: u32) -> Duration {
        let n = u128::from(n.max(1));
        Duration::from_nanos(self.as_nanos().div_ceil(n).min(u128::from(u64::MAX)) as u64)
    }
}
