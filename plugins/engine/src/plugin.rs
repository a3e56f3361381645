//! The engine as a Bevy plugin.
//!
//! The show lives in the world as entities — [`ShowUniverse`], [`PatchedFixture`],
//! [`ShowCueList`], [`ShowPlayback`] — plus the [`ShowSettings`] resource for what is not an
//! entity (profiles, groups, tick rate). [`show_from_world`] writes them back as a
//! [`Show`]. The engine recompiles when they change; a show that fails to compile is
//! reported and the running one keeps running.
//!
//! In `FixedUpdate` at the show's tick rate, [`EngineSystems`] run in order: recompile if
//! needed, apply due follows and commands, render the frame for the tick, and publish it on
//! the [`FrameBus`]. Outputs never send from here: they receive the frames on their own
//! threads and pace them on the wire.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use bevy::prelude::*;
use rockontrol_show::{
    CueList, Fixture, FixtureProfile, Group, Playback, Show, UNIVERSE_SLOTS, Universe,
};

use crate::command::Command;
use crate::compile::CompiledShow;
use crate::fade::{CommandError, Event, FadeEngine, PlaybackState};

/// Runs the show engine in `FixedUpdate`.
#[derive(Debug, Default)]
pub struct EnginePlugin;

/// The engine's systems, in the order they run each tick.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum EngineSystems {
    /// Recompile the show if its entities changed.
    Compile,
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
            );
    }
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
}

/// The show tick: how many ticks the engine has run. Tick *k* is show time `k / rate`.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShowClock {
    /// The tick the next `FixedUpdate` run computes.
    pub next_tick: u64,
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
            world.resource_mut::<Time<Fixed>>().set_timestep_hz(rate);
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
    let ShowEngine {
        engine: Some(fade),
        state: Some(state),
        ..
    } = &mut *engine
    else {
        return;
    };
    for event in fade.advance(state, tick) {
        events.write(EngineEvent(event));
    }
    let due: Vec<u64> = queue.scheduled.range(..=tick).map(|(k, _)| *k).collect();
    let mut commands: Vec<Command> = due
        .into_iter()
        .flat_map(|k| queue.scheduled.remove(&k).unwrap_or_default())
        .collect();
    commands.extend(queue.immediate.drain(..));
    for command in commands {
        match fade.apply(state, &command, tick) {
            Ok(done) => {
                for event in done {
                    debug!("tick {tick}: {command} → {event:?}");
                    events.write(EngineEvent(event));
                }
            }
            Err(error) => {
                warn!("tick {tick}: {command} refused: {error}");
                rejected.write(CommandRejected {
                    command,
                    error,
                    tick,
                });
            }
        }
    }
}

fn render_frame(mut engine: ResMut<ShowEngine>, clock: Res<ShowClock>) {
    let ShowEngine {
        engine: Some(fade),
        state: Some(state),
        frame,
        ..
    } = &mut *engine
    else {
        return;
    };
    fade.render(state, clock.next_tick, frame);
    trace!("tick {} rendered", clock.next_tick);
}

fn publish_frame(
    engine: Res<ShowEngine>,
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
        universes: fade.show().universes.clone(),
        data,
    });
    bus.publish(&frames);
    if let Some(mut capture) = capture {
        capture.frames.push(Arc::clone(&frames));
    }
    latest.0 = Some(frames);
}
