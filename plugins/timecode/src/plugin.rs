//! [`TimecodePlugin`]: the show's timecode section run live and in `render`.
//!
//! - **Triggers** (`FixedUpdate`, before the engine's playback step): each tick *k* fires the
//!   timecode cues and beat follows whose show time lies in `(t_{k−1}, t_k]`, as commands for
//!   that very tick. Only where [`TimecodeOptions::fire_cues`] is set (a master, a standalone
//!   run, `render`): receivers get the commands replicated.
//! - **Outputs**: MTC and LTC threads read the show time base (shared every frame) and send at
//!   the show-clock instants their bytes or samples belong to. ArtTimeCode goes out from the DMX
//!   output thread, each frame at its show time (switched on in `DmxSettings`). Receivers run
//!   the outputs of their config ([`TimecodeOptions::receiver`]), never the chase.
//! - **Jumps**: a forward step of show time over timecode cues fires what they would have left
//!   ([`crate::config::jumped_over`]); effects in beats follow the tempo ([`EffectBeat`]).
//! - **Chase** (`PreUpdate`, before the engine counts ticks): labels from an input thread drive
//!   the [`Chase`] state machine, which steps or slews the engine's [`ShowTimeBase`].
//! - **Status**: [`TimecodeStatus`], the label now, lock state and beat, for REST, heartbeat and UI.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bevy::prelude::*;
use rockontrol_dmx::DmxSettings;
use rockontrol_engine::{
    BeatClock, CommandQueue, EffectBeat, EngineSystems, ShowClock, ShowSettings, ShowTimeBase,
    ns_of_tick,
};
use rockontrol_replicate::{AppReplicateExt, DuplicatePart, ReplicationRules};
use rockontrol_show::{Show, TimecodeLink};
use serde::{Deserialize, Serialize};

use crate::beat::Tempo;
use crate::chase::{Chase, ChaseAction, ChaseSettings, LockState};
use crate::config::TimecodeConfig;
use crate::io::{self, InputLabel, Running};
use crate::smpte::rate_name;

/// The replicated part holding the [`Tempo`].
pub const TEMPO_PART: &str = "timecode.tempo";

/// Timecode, timecode cues, chase and tempo.
#[derive(Debug, Default)]
pub struct TimecodePlugin {
    pub options: TimecodeOptions,
}

/// What this node does with the show's timecode section.
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct TimecodeOptions {
    /// Fire timecode cues and beat follows here (not on receivers: they get the commands from
    /// their master).
    pub fire_cues: bool,
    /// Start outputs and chase inputs (off in `render`, which only fires cues).
    pub live_io: bool,
    /// Follow the show's `chase` input (a master or standalone run; receivers follow the
    /// master's show clock instead).
    pub chase: bool,
    /// This node's outputs instead of the show's `out` (a receiver's `timecode_out`); `None`:
    /// the show's.
    pub out: Option<Vec<TimecodeLink>>,
    /// The label at show time 0, overriding the show's (`--timecode-from`).
    pub start: Option<String>,
    /// UDP port ArtTimeCode is chased on (6454; 0 lets the kernel choose, for tests).
    pub artnet_port: u16,
}

impl TimecodeOptions {
    /// A live master or standalone `run`: fires the cues, runs outputs and chase inputs, chases
    /// Art-Net on its standard port.
    pub fn live() -> Self {
        TimecodeOptions {
            fire_cues: true,
            live_io: true,
            chase: true,
            out: None,
            artnet_port: rockontrol_wire::artnet::PORT,
            start: None,
        }
    }

    /// A receiver: timecode out of `out` (its config's `timecode_out`) from the replicated show
    /// clock, at the rate and start label of the master's show; no cues (they arrive as
    /// commands), no chase (the master chases, receivers follow its show clock).
    pub fn receiver(out: Vec<TimecodeLink>) -> Self {
        TimecodeOptions {
            fire_cues: false,
            live_io: !out.is_empty(),
            chase: false,
            out: Some(out),
            artnet_port: rockontrol_wire::artnet::PORT,
            start: None,
        }
    }
}

/// The plugin's systems.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum TimecodeSystems {
    /// Recompile the section after a show change, restart outputs and inputs (`PreUpdate`).
    Configure,
    /// Follow incoming timecode (`PreUpdate`, before the engine counts ticks).
    Chase,
    /// Fire timecode cues and beat follows (`FixedUpdate`, in [`EngineSystems::Triggers`]).
    Trigger,
    /// Status and sharing the time base with output threads (`PostUpdate`).
    Publish,
}

/// The timecode of this node now, for status lines, REST, heartbeat and the UI.
#[derive(
    Resource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct TimecodeStatus {
    /// `hh:mm:ss:ff` at the latest tick.
    pub label: String,
    /// `24`, `25`, `29.97df` or `30`.
    pub rate: String,
    /// What is chased (`artnet`, `mtc`, `ltc`), if anything.
    pub chasing: Option<String>,
    pub lock: LockState,
    /// Latest chase error (source − ours), ms.
    pub error_ms: f64,
    pub bpm: Option<f64>,
    /// Beat number and phase 0..1 at the latest tick.
    pub beat: Option<(u64, f64)>,
    /// Why the section could not be used (the running show keeps running).
    pub problem: Option<String>,
    /// On a receiver: the master's label and tempo from its latest sync message.
    pub master_label: Option<String>,
    pub master_bpm: Option<f64>,
}

/// The compiled section, and bookkeeping of the triggers.
#[derive(Resource, Debug, Default)]
pub struct ActiveTimecode {
    pub config: Option<TimecodeConfig>,
    last_tick: Option<u64>,
    /// Commands fired so far (tests, status).
    pub fired: u64,
}

/// Tempo typed or tapped by the operator: replaces the [`Tempo`] resource (which replicates).
#[derive(Resource, Debug, Default)]
pub struct TempoInput {
    taps: crate::beat::TapTempo,
}

impl TempoInput {
    /// A tap at show time `now_ns`; the new tempo from the second tap on (beat 0 on this tap).
    pub fn tap(&mut self, now_ns: u64) -> Option<Tempo> {
        self.taps.tap(now_ns)
    }
}

/// The show time base as of the latest frame, for output threads.
#[derive(Resource, Debug, Clone, Default)]
pub struct SharedTimeBase(pub Arc<Mutex<Option<ShowTimeBase>>>);

impl SharedTimeBase {
    /// The latest mapping published.
    #[must_use]
    pub fn get(&self) -> Option<ShowTimeBase> {
        self.0.lock().ok().and_then(|b| *b)
    }
}

/// Running outputs and the chase input.
#[derive(Resource, Default)]
struct Io {
    outputs: Vec<Running>,
    /// The input thread and its labels (a `Mutex` only to make the receiver `Sync`).
    input: Option<(Running, Mutex<Receiver<InputLabel>>)>,
    chase: Option<Chase>,
}

impl Plugin for TimecodePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.options.clone())
            .init_resource::<TimecodeStatus>()
            .init_resource::<ActiveTimecode>()
            .init_resource::<SharedTimeBase>()
            .init_resource::<Io>()
            .init_resource::<TempoInput>()
            .add_replication(register_replication)
            .configure_sets(
                PreUpdate,
                (TimecodeSystems::Configure, TimecodeSystems::Chase).chain(),
            )
            .configure_sets(
                FixedUpdate,
                TimecodeSystems::Trigger.in_set(EngineSystems::Triggers),
            )
            .add_systems(PreUpdate, configure.in_set(TimecodeSystems::Configure))
            .add_systems(PreUpdate, chase.in_set(TimecodeSystems::Chase))
            .add_systems(FixedUpdate, trigger.in_set(TimecodeSystems::Trigger))
            .add_systems(PostUpdate, publish.in_set(TimecodeSystems::Publish));
    }
}

/// What the timecode plugin replicates: the [`Tempo`] (`null` when the show has none, which
/// removes a receiver's). Every node app registers it (net's base rules include it), so masters
/// and receivers agree on the protocol hash.
///
/// # Errors
/// [`DuplicatePart`] if the name is taken.
pub fn register_replication(rules: &mut ReplicationRules) -> Result<(), DuplicatePart> {
    rules
        .add_state::<Option<Tempo>, _, _>(
            TEMPO_PART,
            |world| world.get_resource::<Tempo>().copied(),
            |world, tempo| {
                match tempo {
                    Some(t) => world.insert_resource(t),
                    None => {
                        world.remove_resource::<Tempo>();
                    }
                }
                Ok(())
            },
        )?
        // Read only on a tick the tempo changed (the master captures parts by change).
        .watch::<Tempo>(TEMPO_PART);
    Ok(())
}

/// Checks a show's timecode section as this node would run it (for the CLI, before starting).
///
/// # Errors
/// Every problem, named.
pub fn check_show(show: &Show, start: Option<&str>) -> Result<TimecodeConfig, crate::ConfigError> {
    TimecodeConfig::from_show(show, start)
}

fn configure(world: &mut World) {
    let changed = world
        .get_resource_ref::<ShowSettings>()
        .is_some_and(|s| s.is_changed());
    if !changed {
        return;
    }
    let Some(settings) = world.get_resource::<ShowSettings>() else {
        return;
    };
    let mut show = Show::empty(settings.name.clone());
    show.timecode = settings.timecode.clone();
    // Playback names come from the entities.
    show.playbacks = rockontrol_engine::show_from_world(world).playbacks;
    let options = world.resource::<TimecodeOptions>().clone();
    let mut compiled = TimecodeConfig::from_show(&show, options.start.as_deref());
    if let (Ok(config), Some(out)) = (compiled.as_mut(), &options.out) {
        config.out.clone_from(out);
    }
    let mut status = world.resource_mut::<TimecodeStatus>();
    let config = match compiled {
        Ok(config) => {
            status.problem = None;
            config
        }
        Err(e) => {
            error!(
                "{e}\nthe show runs without its timecode section; fix it and load the show again"
            );
            status.problem = Some(e.to_string());
            return;
        }
    };
    status.rate = rate_name(config.timecode.rate).to_string();
    status.chasing = config.chase.as_ref().map(|l| io::link_kind(l).to_string());
    match config.tempo {
        Some(tempo) => {
            world.insert_resource(tempo);
        }
        None => {
            world.remove_resource::<Tempo>();
        }
    }
    if options.live_io {
        // ArtTimeCode goes out from the DMX output thread (at its frames' show times).
        if let Some(wanted) = artnet_out(&config)
            && let Some(mut dmx) = world.get_resource_mut::<DmxSettings>()
            && dmx.artnet_timecode != Some(wanted)
        {
            info!(
                "ArtTimeCode out at {} fps from {}",
                rate_name(wanted.rate),
                config.timecode.label_at_ns(0)
            );
            dmx.artnet_timecode = Some(wanted);
        }
        let share = world.resource::<SharedTimeBase>().clone();
        let mut io_state = Io::default();
        for link in &config.out {
            match io::start_output(link, config.timecode, share.clone()) {
                Ok(Some(running)) => io_state.outputs.push(running),
                Ok(None) => {}
                Err(e) => error!("timecode out {}: {e}", io::describe(link)),
            }
        }
        if let Some(link) = config.chase.as_ref().filter(|_| options.chase) {
            match io::start_input(link, config.timecode, options.artnet_port) {
                Ok((running, labels)) => {
                    info!(
                        "chasing {} timecode at {} fps",
                        io::describe(link),
                        rate_name(config.timecode.rate)
                    );
                    io_state.input = Some((running, Mutex::new(labels)));
                    io_state.chase = Some(Chase::new(ChaseSettings {
                        freewheel_ns: config.freewheel_ns,
                        ..ChaseSettings::default()
                    }));
                }
                Err(e) => error!(
                    "timecode chase {}: {e}; the show clock runs free",
                    io::describe(link)
                ),
            }
        }
        // Dropping the old outputs stops them (LTC finishes its file).
        *world.resource_mut::<Io>() = io_state;
    }
    let mut active = world.resource_mut::<ActiveTimecode>();
    active.config = Some(config);
    active.last_tick = None;
}

fn chase(
    mut io_state: ResMut<Io>,
    active: Res<ActiveTimecode>,
    mut base: ResMut<ShowTimeBase>,
    mut clock: ResMut<ShowClock>,
    mut status: ResMut<TimecodeStatus>,
) {
    let Io {
        input: Some((_, labels)),
        chase: Some(chase),
        ..
    } = io_state.as_mut()
    else {
        return;
    };
    let Ok(labels) = labels.get_mut() else {
        return;
    };
    let Some(config) = &active.config else {
        return;
    };
    let origin = *ORIGIN;
    let local = |at: Instant| at.saturating_duration_since(origin).as_nanos() as u64;
    while let Ok(input) = labels.try_recv() {
        let source_ns =
            (config.timecode.ns_of_label(&input.label) as i64 + input.offset_ns).max(0) as u64;
        let ours = base.show_ns_at(input.at);
        let action = chase.label(local(input.at), source_ns, ours);
        let now = Instant::now();
        match action {
            ChaseAction::Hold => {}
            ChaseAction::Step(ns) => {
                let ns_now = ns + now.saturating_duration_since(input.at).as_nanos() as u64;
                base.step_to(now, ns_now, &format!("chasing timecode {}", input.label));
                clock.next_tick = base.tick_at(now);
            }
            ChaseAction::Slew(target) => {
                let target_now = target + now.saturating_duration_since(input.at).as_nanos() as u64;
                base.slew(now, target_now, chase.settings.max_slew_ppm);
            }
        }
    }
    if let Some(state) = chase.poll(local(Instant::now())) {
        match state {
            LockState::Freewheel => warn!("timecode stopped: freewheeling"),
            LockState::Lost => {
                warn!("timecode lost past the freewheel time: the show clock runs free")
            }
            _ => {}
        }
    }
    if status.lock != chase.state() && chase.state() == LockState::Locked {
        info!("timecode chase locked");
    }
    status.lock = chase.state();
    status.error_ms = chase.last_error_ns as f64 / 1e6;
}

/// Local nanoseconds are counted from the first use (the chase needs a monotonic number).
static ORIGIN: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn trigger(
    mut active: ResMut<ActiveTimecode>,
    base: Res<ShowTimeBase>,
    clock: Res<ShowClock>,
    options: Res<TimecodeOptions>,
    tempo: Option<Res<Tempo>>,
    mut queue: ResMut<CommandQueue>,
    mut effect_beat: ResMut<EffectBeat>,
) {
    // Every node: effects in beats follow the replicated tempo.
    let beat = tempo.as_deref().map(|t| BeatClock {
        milli_bpm: t.milli_bpm,
        anchor_ns: t.anchor_ns,
    });
    if effect_beat.0 != beat {
        effect_beat.0 = beat;
    }
    if !options.fire_cues {
        return;
    }
    let tick = clock.next_tick;
    let rate = base.rate();
    let last = active.last_tick.replace(tick);
    let Some(config) = &active.config else {
        return;
    };
    let upto = ns_of_tick(tick, rate);
    let after = tick.checked_sub(1).map(|k| ns_of_tick(k, rate));
    let due = match (last, after) {
        // A forward jump (a chase step): the state the cues passed over would have left.
        (Some(last), Some(after)) if last + 1 < tick => {
            let from = ns_of_tick(last, rate);
            let due = config.due_after_jump(from, after, upto, tempo.as_deref());
            info!(
                "show time jumped from {} to {}: {} timecode cue command(s) for the cues passed",
                config.timecode.label_at_ns(from),
                config.timecode.label_at_ns(upto),
                due.len()
            );
            due
        }
        // In order, or backwards (cues after the new time fire again when reached).
        (last, after) => {
            if let Some(last) = last
                && tick <= last
            {
                debug!("show time went back from tick {last} to {tick}: later cues re-armed");
            }
            config.due(after, upto, tempo.as_deref())
        }
    };
    let fired = due.len() as u64;
    for command in due {
        debug!(
            "tick {tick}: timecode {} fires {command}",
            config.timecode.label_at_ns(upto)
        );
        // On this tick, as the show scheduled it: media of the cue start on the tick too,
        // not one operator pre-roll later (video stays on the timecode).
        queue.at(tick, command);
    }
    active.fired += fired;
}

fn publish(
    base: Res<ShowTimeBase>,
    clock: Res<ShowClock>,
    share: Res<SharedTimeBase>,
    active: Res<ActiveTimecode>,
    tempo: Option<Res<Tempo>>,
    mut status: ResMut<TimecodeStatus>,
) {
    if let Ok(mut slot) = share.0.lock() {
        *slot = Some(*base);
    }
    let ns = ns_of_tick(clock.next_tick.saturating_sub(1), base.rate());
    if let Some(config) = &active.config {
        let label = config.timecode.label_at_ns(ns).to_string();
        if status.label != label {
            status.label = label;
        }
    }
    let bpm = tempo.as_ref().map(|t| t.bpm());
    let beat = tempo.as_ref().and_then(|t| t.phase_at_ns(ns));
    if status.bpm != bpm || status.beat.map(|b| b.0) != beat.map(|b| b.0) {
        status.bpm = bpm;
        status.beat = beat;
    }
}

/// The ArtTimeCode output the DMX plugin should run for `show` (its rate and start label), if the
/// show's timecode goes out on Art-Net.
#[must_use]
pub fn artnet_out(config: &TimecodeConfig) -> Option<rockontrol_wire::timecode::RunningTimecode> {
    config
        .out
        .contains(&TimecodeLink::ArtNet)
        .then_some(config.timecode)
}
