//! [`MediaPlugin`]: media in a live node's ECS.
//!
//! It keeps the show's [`MediaTimeline`] in step with the engine: the media part of the show
//! (from [`ShowSettings`]), every cue GO the engine reports ([`EngineEvent`]), stamped with
//! the show time of its tick, and every media command. Each frame it publishes
//! [`MediaStatus`]: per layer, what plays and how far into the clip the show clock is.
//!
//! Replication (through `rockontrol-replicate`, as the engine does for its playback state):
//! - the [`MediaLog`] (cue GOs with media actions and media commands) is the state part
//!   [`MEDIA_PART`]; the master's goes in every snapshot, a receiver replaces its own with it,
//!   so a node that joins late or reconnects knows every earlier GO and command;
//! - [`MediaCommand`] is a command with a handler ([`MEDIA_COMMAND_TYPE`] `"media"`): net hands
//!   a REST body `{"type": "media", "action": "play", …}` to it on the master.
//!
//! Live decode: with a [`MediaNode`] resource (the node's name and where its clips are), the
//! node opens a decoder per active or pre-rolled layer of its outputs and picks each
//! refresh's frame by the show clock ([`crate::player`]); the [`PlaybackReport`] resource is
//! what heartbeats and status carry. Decoders never touch the ECS.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use rockontrol_engine::{
    EngineEvent, EngineSystems, Event, ShowClock, ShowCueList, ShowPlayback, ShowSettings,
    ShowTime, ShowTimeBase,
};
use rockontrol_replicate::AppReplicateExt;
use rockontrol_show::MediaSetup;

use crate::command::{
    MEDIA_COMMAND_PART, MEDIA_COMMAND_TYPE, MEDIA_PART, MediaCommand, MediaLog, effective_at,
};
use crate::decode::{DecoderChoice, PixelFormat, Yuv};
use crate::player::{
    CaptureSettings, ClipLocator, DisplayTimings, PlaybackFrames, PlaybackReport, Player, Refresh,
};
use crate::timeline::{CueFired, MediaTimeline};
use crate::timing::{NANOS_PER_SEC, seconds_to_ns};

/// The pre-roll by default: a command without `at` takes effect this long after the master
/// got it, so every node can seek and fill its decoder first.
pub const DEFAULT_PREROLL: Duration = Duration::from_millis(150);

/// Media settings of this node.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct MediaSettings {
    /// How far ahead a command without `at` is scheduled, and how far ahead nodes open and
    /// fill the decoders of clips about to start.
    pub preroll: Duration,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            preroll: DEFAULT_PREROLL,
        }
    }
}

/// Insert to decode and show media on this node: its name (it plays the outputs whose `node`
/// it is; `None`: every output, as `run` does), where its clips are, and an optional capture
/// of what it composites.
#[derive(Resource, Clone)]
pub struct MediaNode {
    pub node: Option<String>,
    pub locate: ClipLocator,
    pub decoder: DecoderChoice,
    pub capture: Option<CaptureSettings>,
}

/// Insert to have decoders give NV12 planes (the GPU outputs convert them; a third of RGBA's
/// bytes) instead of RGBA. A capture (CPU compositor) keeps RGBA.
#[derive(Resource, Debug, Clone, Copy, Default)]
pub struct GpuFrames;

/// The tick whose commands were scheduled ahead (`CommandQueue::at`: `run --at`, `render`,
/// a test): its cue GOs start their media on the tick, without a pre-roll.
#[derive(Resource, Debug, Default)]
struct ScheduledTick(Option<u64>);

/// Present on a receiver once the master's media log arrived: the log is the master's, and
/// this node's own cue events no longer add to it.
#[derive(Resource, Debug, Default)]
pub struct MediaReplica;

/// The node's live decoders (with a [`MediaNode`]).
#[derive(Resource, Default)]
struct LivePlayer(Player);

/// Media playback state in the ECS (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct MediaPlugin;

/// The media plugin's systems.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaSystems {
    /// Cue GOs into the timeline (`FixedUpdate`, after the engine's playback step).
    Cues,
    /// [`MediaStatus`] for the current show time (`Update`).
    Status,
    /// Live decode and the [`PlaybackReport`] (`Update`, after [`MediaSystems::Status`]).
    Play,
}

/// The show's media timeline: its layers plus the cues that went.
#[derive(Resource, Debug, Clone)]
pub struct MediaShow(pub MediaTimeline);

impl Default for MediaShow {
    fn default() -> Self {
        MediaShow(MediaTimeline::new(MediaSetup::default()))
    }
}

/// What every layer does now, for status, heartbeats and renderers.
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct MediaStatus {
    /// Show time the status is for, in nanoseconds.
    pub show_ns: u64,
    pub layers: Vec<LayerStatus>,
}

/// One layer's state in [`MediaStatus`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerStatus {
    pub layer: String,
    pub output: String,
    /// The clip playing, if any.
    pub clip: Option<String>,
    /// How far into the clip the show clock is (speed and start offset applied, before any
    /// loop or hold): the frame is this times the clip's rate. `None` before the start.
    pub clip_ns: Option<u64>,
    pub opacity: f32,
}

impl Plugin for MediaPlugin {
    fn build(&self, app: &mut App) {
        // Read from `MediaShow` only: the master serializes the log only on a tick it changed.
        app.replicate_state_of::<MediaShow, MediaLog, _, _>(MEDIA_PART, capture_log, apply_log)
            .add_replicated_command_handler::<MediaCommand, _>(
                MEDIA_COMMAND_PART,
                MEDIA_COMMAND_TYPE,
                handle_command,
            );
        app.init_resource::<MediaShow>()
            .init_resource::<MediaStatus>()
            .init_resource::<MediaSettings>()
            .init_resource::<PlaybackReport>()
            .init_resource::<PlaybackFrames>()
            .init_resource::<LivePlayer>()
            .init_resource::<ScheduledTick>()
            .configure_sets(
                FixedUpdate,
                MediaSystems::Cues.after(EngineSystems::Playback),
            )
            .add_systems(
                FixedUpdate,
                // After the triggers queued this tick's scheduled commands (timecode cues),
                // before the playback takes them from the queue.
                note_scheduled
                    .after(EngineSystems::Triggers)
                    .before(EngineSystems::Playback),
            )
            .add_systems(
                FixedUpdate,
                (
                    load_media.run_if(resource_exists_and_changed::<ShowSettings>),
                    fire_cues,
                )
                    .chain()
                    .in_set(MediaSystems::Cues),
            )
            .add_systems(
                Update,
                (
                    update_status.in_set(MediaSystems::Status),
                    play_live
                        .run_if(resource_exists::<MediaNode>)
                        .in_set(MediaSystems::Play)
                        .after(MediaSystems::Status),
                ),
            );
    }
}

/// The master's log, for every snapshot.
fn capture_log(world: &World) -> MediaLog {
    world
        .get_resource::<MediaShow>()
        .map(|s| s.0.log().clone())
        .unwrap_or_default()
}

/// A receiver takes the master's log as it is (and so does a restarted master, from its saved
/// stage: there it stays the master's own log, which its cue GOs add to).
fn apply_log(world: &mut World, log: MediaLog) -> Result<(), String> {
    let Some(mut show) = world.get_resource_mut::<MediaShow>() else {
        return Err("this app runs no media plugin".into());
    };
    if show.0.log() != &log {
        debug!(
            entries = log.entries.len(),
            "media: the master's log applied"
        );
        show.0.set_log(log);
    }
    if !world.contains_resource::<rockontrol_replicate::ReplicationSource>() {
        world.insert_resource(MediaReplica);
    }
    Ok(())
}

/// A media command on the master: checked against the show, recorded in the log at its show
/// time (now plus the pre-roll without `at`), replicated by the next snapshot.
fn handle_command(world: &mut World, command: MediaCommand) -> Result<serde_json::Value, String> {
    let clips: Vec<String> = world
        .get_resource::<ShowSettings>()
        .map(|s| s.clips.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let preroll = world
        .get_resource::<MediaSettings>()
        .map_or(DEFAULT_PREROLL, |s| s.preroll);
    let now_ns = match (
        world.get_resource::<ShowTimeBase>(),
        world.get_resource::<ShowClock>(),
    ) {
        (Some(base), Some(clock)) => base.ns_of_tick(clock.next_tick),
        _ => return Err("this app runs no show engine".into()),
    };
    let Some(mut show) = world.get_resource_mut::<MediaShow>() else {
        return Err("this app runs no media plugin".into());
    };
    command.check(show.0.setup(), &clips)?;
    let at_ns = effective_at(&command, now_ns, preroll.as_nanos() as u64);
    info!(
        action = command.action(),
        layer = command.layer(),
        at_s = at_ns as f64 / NANOS_PER_SEC as f64,
        "media command"
    );
    let answer = serde_json::json!({
        "action": command.action(),
        "layer": command.layer(),
        "at": at_ns as f64 / NANOS_PER_SEC as f64,
        "at_ns": at_ns,
        "now_ns": now_ns,
    });
    show.0.command(at_ns, command);
    let dropped = show.0.compact(now_ns);
    if dropped > 0 {
        debug!(dropped, "media: log compacted");
    }
    Ok(answer)
}

fn load_media(settings: Res<ShowSettings>, mut show: ResMut<MediaShow>) {
    if show.0.setup() != &settings.media {
        info!(
            outputs = settings.media.outputs.len(),
            layers = settings.media.layers.len(),
            "media: show loaded"
        );
        show.0.set_setup(settings.media.clone());
    }
}

/// Each frame: the refreshes of this node's outputs whose time has come, their frames picked
/// by the show clock; the report for heartbeats and status.
#[allow(clippy::too_many_arguments, reason = "a Bevy system's parameters")]
fn play_live(
    node: Res<MediaNode>,
    base: Res<ShowTimeBase>,
    show: Res<MediaShow>,
    settings: Res<MediaSettings>,
    show_settings: Option<Res<ShowSettings>>,
    displays: Option<Res<DisplayTimings>>,
    gpu_frames: Option<Res<GpuFrames>>,
    mut player: ResMut<LivePlayer>,
    mut report: ResMut<PlaybackReport>,
    mut frames: ResMut<PlaybackFrames>,
) {
    let clip_ids: HashMap<String, String> = show_settings
        .map(|s| {
            s.clips
                .iter()
                .map(|c| (c.name.clone(), c.id.clone()))
                .collect()
        })
        .unwrap_or_default();
    let now_ns = base.show_ns_at(Instant::now());
    let format = if gpu_frames.is_some() && node.capture.is_none() {
        PixelFormat::Nv12 {
            yuv: Yuv::default(),
        }
    } else {
        PixelFormat::Rgba
    };
    let new = player.0.refresh(&Refresh {
        timeline: &show.0,
        node: node.node.as_deref(),
        now_ns,
        preroll_ns: settings.preroll.as_nanos() as u64,
        locate: &node.locate,
        clip_ids: &clip_ids,
        decoder: node.decoder,
        format,
        capture: node.capture.as_ref(),
        displays: displays.as_deref(),
    });
    *report = new;
    frames.0.clone_from(player.0.frames());
}

fn note_scheduled(
    queue: Res<rockontrol_engine::CommandQueue>,
    clock: Res<ShowClock>,
    mut scheduled: ResMut<ScheduledTick>,
) {
    let tick = clock.next_tick;
    let due = queue.scheduled.range(..=tick).next().is_some();
    let now = due.then_some(tick);
    if scheduled.0 != now {
        scheduled.0 = now;
    }
}

/// Cue GOs with media actions into the log. An operator's GO (REST, WebSocket, UI, a key)
/// starts its media one pre-roll later than its lighting, so every node can open and fill
/// its decoders first and report armed; a GO known ahead (scheduled on the tick: `run --at`,
/// `render`, a timecode cue; or a follow) starts its media on the tick. Lighting is never delayed.
#[allow(clippy::too_many_arguments, reason = "a Bevy system's parameters")]
fn fire_cues(
    mut events: MessageReader<EngineEvent>,
    base: Res<ShowTimeBase>,
    settings: Res<MediaSettings>,
    scheduled: Res<ScheduledTick>,
    playbacks: Query<&ShowPlayback>,
    lists: Query<&ShowCueList>,
    mut show: ResMut<MediaShow>,
    replica: Option<Res<MediaReplica>>,
) {
    if replica.is_some() {
        // The master's log carries the GOs (it comes with the next snapshot).
        events.clear();
        return;
    }
    for event in events.read() {
        let Event::Cue {
            playback,
            cue,
            tick,
            by_follow,
            ..
        } = &event.0
        else {
            continue;
        };
        let Some(list) = playbacks
            .iter()
            .find(|p| p.0.name == *playback)
            .and_then(|p| lists.iter().find(|l| l.0.name == p.0.cue_list))
        else {
            continue;
        };
        let Some(c) = list.0.cues.iter().find(|c| c.number == *cue) else {
            continue;
        };
        if !show
            .0
            .setup()
            .cues
            .iter()
            .any(|m| m.cue_list == list.0.name && m.cue == *cue)
        {
            continue;
        }
        let go_ns = base.ns_of_tick(*tick);
        let known_ahead = *by_follow || scheduled.0 == Some(*tick);
        let preroll_ns = if known_ahead {
            0
        } else {
            settings.preroll.as_nanos() as u64
        };
        debug!(playback, %cue, tick, preroll_ns, "media: cue went");
        show.0.fire(CueFired {
            at_ns: go_ns + preroll_ns,
            cue_list: list.0.name.clone(),
            cue: *cue,
            delay_ns: seconds_to_ns(c.delay),
            fade_ns: seconds_to_ns(c.fade_in),
        });
        let dropped = show.0.compact(go_ns);
        if dropped > 0 {
            debug!(dropped, "media: log compacted");
        }
    }
}

fn update_status(
    time: Res<ShowTime>,
    base: Res<ShowTimeBase>,
    show: Res<MediaShow>,
    mut status: ResMut<MediaStatus>,
) {
    // The show time of the latest computed tick plus the fraction towards the next.
    let tick_ns = base.ns_of_tick(time.tick);
    let show_ns = tick_ns
        + (time.fraction.clamp(0.0, 1.0) * NANOS_PER_SEC as f64 / f64::from(base.rate())) as u64;
    let mut layers = Vec::new();
    for output in &show.0.setup().outputs {
        for l in show.0.at(&output.name, show_ns) {
            let clip_ns = l.clip.as_ref().and_then(|c| c.position_ns(show_ns));
            layers.push(LayerStatus {
                layer: l.name,
                output: l.output,
                clip: l.clip.map(|c| c.clip),
                clip_ns,
                opacity: l.params.opacity,
            });
        }
    }
    let new = MediaStatus { show_ns, layers };
    if *status != new {
        *status = new;
    }
}

#[cfg(test)]
mod tests {
    use bevy::time::TimeUpdateStrategy;
    use rockontrol_engine::{Command, CommandQueue, EnginePlugin, load_show};

    use super::*;

    const SHOW: &str = r#"(
        name: "media",
        cue_lists: [(name: "main", cues: [(number: 1, delay: 0.5, fade_in: 1.0)])],
        playbacks: [(name: "main", cue_list: "main")],
        media: (
            outputs: [(name: "wall", node: "node-01", width: 64, height: 36, rate: "25")],
            layers: [(name: "bg", output: "wall", opacity: 0.0)],
            cues: [(cue_list: "main", cue: 1, actions: [
                Play(layer: "bg", clip: "intro", rate: Some(2.0)),
                Opacity(layer: "bg", level: 1.0),
            ])],
        ),
    )"#;

    /// The engine and media plugins, one fixed step per update.
    fn stepped_app() -> App {
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, EnginePlugin, MediaPlugin))
            .insert_resource(TimeUpdateStrategy::FixedTimesteps(1));
        app
    }

    /// The show time base and the media log's entries.
    fn media_log(app: &App) -> (ShowTimeBase, Vec<crate::LogEntry>) {
        (
            *app.world().resource::<ShowTimeBase>(),
            app.world().resource::<MediaShow>().0.log().entries.clone(),
        )
    }

    /// A GO at tick 44 (1 s at 44 Hz) plays the clip after the cue's 0.5 s delay, at double
    /// speed, and fades the layer in over the cue's 1 s fade; status follows the show clock.
    #[test]
    fn a_go_starts_the_clip_on_the_show_clock() {
        let show = rockontrol_show::parse_show(SHOW, "media.ron").expect("parses");
        rockontrol_show::validate(&show).expect("valid");
        let mut app = stepped_app();
        load_show(app.world_mut(), &show);
        let go: Command = "go main".parse().expect("command");
        app.world_mut().resource_mut::<CommandQueue>().at(44, go);
        app.update(); // starts the fixed clock
        let layer = |app: &App| app.world().resource::<MediaStatus>().layers[0].clone();
        for _ in 0..=44 {
            app.update();
        }
        assert_eq!(
            layer(&app).clip,
            None,
            "tick 44: the cue's delay has not passed"
        );
        // Tick 88 = 2 s: 0.5 s after the clip started, at double speed 1 s into it;
        // half-way through the opacity fade.
        while app.world().resource::<ShowTime>().tick < 88 {
            app.update();
        }
        let status = app.world().resource::<MediaStatus>().clone();
        assert_eq!(status.show_ns, 2 * NANOS_PER_SEC, "{status:?}");
        let l = layer(&app);
        assert_eq!(l.clip.as_deref(), Some("intro"));
        assert_eq!(l.clip_ns, Some(NANOS_PER_SEC));
        assert_eq!(l.opacity, 0.5);
    }

    /// A media command through the registered handler lands in the log one pre-roll after
    /// the master's tick, is refused with a reason for a bad layer, and the log (with an
    /// earlier cue GO) replicates into another app through the registered part: a receiver
    /// that joins late knows the GO.
    #[test]
    fn a_command_is_logged_at_its_show_time_and_replicates() {
        let show = rockontrol_show::parse_show(SHOW, "media.ron").expect("parses");
        let mut master = App::new();
        master
            .add_plugins((MinimalPlugins, EnginePlugin, MediaPlugin))
            .insert_resource(TimeUpdateStrategy::FixedTimesteps(1));
        load_show(master.world_mut(), &show);
        let go: Command = "go main".parse().expect("command");
        master.world_mut().resource_mut::<CommandQueue>().at(2, go);
        for _ in 0..5 {
            master.update();
        }
        let entries = &master.world().resource::<MediaShow>().0.log().entries;
        assert!(
            matches!(&entries[..], [crate::LogEntry::Cue { at_ns, cue_list, .. }]
                if *at_ns == 2 * NANOS_PER_SEC / 44 + 1 && cue_list == "main"),
            "the GO at tick 2 is logged: {entries:?}"
        );
        let rules = master
            .world()
            .resource::<rockontrol_replicate::ReplicationRules>()
            .clone();
        assert!(rules.command_tags().contains(&"media".to_string()));
        let body =
            serde_json::json!({"type": "media", "action": "play", "layer": "bg", "clip": "intro"});
        let answer = rules
            .handle_command(master.world_mut(), "media", body)
            .expect("handled")
            .expect("accepted");
        let now = answer["now_ns"].as_u64().expect("now");
        assert_eq!(
            answer["at_ns"].as_u64(),
            Some(now + 150_000_000),
            "{answer}"
        );
        let bad = serde_json::json!({"type": "media", "action": "stop", "layer": "nope"});
        let e = rules
            .handle_command(master.world_mut(), "media", bad)
            .expect("handled")
            .expect_err("refused");
        assert!(e.contains("no media layer \"nope\""), "{e}");

        let parts = rockontrol_replicate::capture_parts(master.world()).expect("captures");
        let mut receiver = App::new();
        receiver.add_plugins((MinimalPlugins, EnginePlugin, MediaPlugin));
        load_show(receiver.world_mut(), &show);
        let errors = rockontrol_replicate::apply_parts(receiver.world_mut(), parts);
        assert!(
            errors.iter().all(|e| !e.to_string().contains(MEDIA_PART)),
            "{errors:?}"
        );
        assert_eq!(
            receiver.world().resource::<MediaShow>().0.log(),
            master.world().resource::<MediaShow>().0.log()
        );
        assert!(receiver.world().contains_resource::<MediaReplica>());
    }

    /// Issue 14: an operator's GO (queued for the next tick) starts its media one pre-roll
    /// (here 200 ms from the node setting) after the GO tick, while its lighting goes on the
    /// tick; a GO scheduled on its tick (`CommandQueue::at`) starts its media on the tick.
    #[test]
    fn an_operators_go_starts_media_one_preroll_later_and_lighting_on_the_tick() {
        let show = rockontrol_show::parse_show(SHOW, "media.ron").expect("parses");
        let mut app = stepped_app();
        app.insert_resource(MediaSettings {
            preroll: Duration::from_millis(200),
        });
        load_show(app.world_mut(), &show);
        for _ in 0..3 {
            app.update();
        }
        let go: Command = "go main".parse().expect("command");
        app.world_mut().resource_mut::<CommandQueue>().push(go);
        let tick = app.world().resource::<ShowClock>().next_tick;
        app.update();
        let state = app
            .world()
            .resource::<rockontrol_engine::ShowEngine>()
            .state
            .clone();
        let run = &state.expect("state").playbacks[0];
        assert_eq!(
            (run.cue, run.go_tick),
            (Some(0), tick),
            "lighting: the cue went on the tick the GO was applied"
        );
        let (base, entries) = media_log(&app);
        assert!(
            matches!(&entries[..], [crate::LogEntry::Cue { at_ns, .. }]
                if *at_ns == base.ns_of_tick(tick) + 200_000_000),
            "media: one pre-roll after the GO tick {tick}: {entries:?}"
        );

        // Scheduled on its tick: no pre-roll (`run --at`, `render`).
        let mut app = stepped_app();
        load_show(app.world_mut(), &show);
        let go: Command = "go main".parse().expect("command");
        app.world_mut().resource_mut::<CommandQueue>().at(3, go);
        for _ in 0..6 {
            app.update();
        }
        let (base, entries) = media_log(&app);
        assert!(
            matches!(&entries[..], [crate::LogEntry::Cue { at_ns, .. }] if *at_ns == base.ns_of_tick(3)),
            "a scheduled GO's media starts on its tick: {entries:?}"
        );

        // Queued by a trigger on its own tick (a timecode cue): no pre-roll either.
        let mut app = stepped_app();
        app.add_systems(
            FixedUpdate,
            (|clock: Res<ShowClock>, mut queue: ResMut<CommandQueue>| {
                if clock.next_tick == 4 {
                    queue.at(4, "go main".parse().expect("command"));
                }
            })
            .in_set(EngineSystems::Triggers),
        );
        load_show(app.world_mut(), &show);
        for _ in 0..7 {
            app.update();
        }
        let (base, entries) = media_log(&app);
        assert!(
            matches!(&entries[..], [crate::LogEntry::Cue { at_ns, .. }] if *at_ns == base.ns_of_tick(4)),
            "a timecode cue's media starts on its tick: {entries:?}"
        );
    }
}
