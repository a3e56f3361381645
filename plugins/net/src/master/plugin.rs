//! [`MasterPlugin`]: the master's network as Bevy systems.
//!
//! Sockets live on tokio (through `bevy-tokio-tasks`, see [`super::server`]); the ECS talks to
//! them over bounded channels. Show commands (from the REST API and from the engine's
//! [`CommandQueue`]) are applied by [`NetSystems::Apply`] at a tick and streamed to receivers
//! as deltas.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use bevy::prelude::*;
use bevy_tokio_tasks::TokioTasksRuntime;
use rockontrol_clock::{ClockResponderSlot, ClockSyncPlugin};
use rockontrol_dmx::DmxSettings;
use rockontrol_engine::{
    Command, CommandQueue, CommandRejected, EngineEvent, ShowClock, ShowEngine, ShowTimeBase,
    TickDrive,
};
use rockontrol_library::gate::{self, Verdict};
use rockontrol_replicate::{CaptureMemo, Parts, ReplicationRules};
use tokio::sync::mpsc;

use super::server::{
    Applied, MasterShared, PluginCommandRequest, PluginCommands, Refused, ShowCommandRequest,
};
use crate::auth::Keys;
use crate::config::MasterConfig;
use crate::protocol;
use crate::registry::Registry;
use crate::stage::{StageRecord, StageWriter};
use crate::systems::{NetSystems, configure_sets};

/// Runs a master: REST + WebSocket server, registry, replication.
pub struct MasterPlugin {
    pub config: MasterConfig,
    /// Control keys (the first is the one operators were told about).
    pub keys: Keys,
    /// The bound listener (bind before building so the port is known; port 0 works).
    pub listener: std::sync::Mutex<Option<std::net::TcpListener>>,
    /// The certificate REST, WebSocket and media transfer are served with; `None`:
    /// plaintext (`insecure`, in-process tests).
    pub tls: Option<rockontrol_tls::ServerIdentity>,
}

/// The master's side of the network, for systems and tests.
#[derive(Resource)]
pub struct MasterNet {
    pub shared: Arc<MasterShared>,
    pub addr: Option<SocketAddr>,
    commands: mpsc::Receiver<ShowCommandRequest>,
    plugin_commands: mpsc::Receiver<PluginCommandRequest>,
    listener: Option<std::net::TcpListener>,
    last_generation: Option<u64>,
    last_state: Option<rockontrol_engine::PlaybackState>,
    /// List the nodes seen over mDNS (`broadcast_enabled`).
    watch_mdns: bool,
    /// Saves the stage off the tick (with a state directory).
    stage: Option<StageWriter>,
    /// The stage saved by the previous run, until the show it belongs to is published.
    restored: Option<StageRecord>,
    /// Hash of the show published last.
    show_hash: Option<String>,
    /// The stage changed since it was last handed to the writer.
    stage_dirty: bool,
    /// `overrides_version` of the registry when the stage was last handed over.
    saved_overrides: u64,
    limits: super::server::ServerLimits,
    /// TLS for every connection (none: plaintext).
    tls: Option<rockontrol_tls::tokio_rustls::TlsAcceptor>,
    /// The routing epoch and show generation the master's own universes were set for.
    routed_for: Option<(u64, u64)>,
    /// Which other plugins' parts were read when ([`master_publish_parts`]).
    pub capture_memo: CaptureMemo,
    /// Those parts as last captured (what snapshots and the stage carry).
    parts: Parts,
}

impl Plugin for MasterPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        crate::parts::register(app);
        // Parts applied here (a saved stage's) are the master's own state, not a replica.
        app.insert_resource(rockontrol_replicate::ReplicationSource);
        let (tx, rx) = mpsc::channel(4096);
        let (plugin_tx, plugin_rx) = mpsc::channel(1024);
        let mut registry = Registry::new(&self.config, SystemTime::now());
        // The stage (playback state, show time, node overrides) is saved in the state
        // directory, so a restarted master resumes it (see [`crate::stage`]).
        let (stage, restored) = match &self.config.state_dir {
            Some(dir) => open_stage(dir, &self.config.node_id),
            None => (None, None),
        };
        if let Some(r) = &restored {
            registry.restore_stage(r.overrides.clone(), r.rate);
        }
        if let Some(dir) = &self.config.state_dir {
            match crate::adoptions::load(dir) {
                Ok(adoptions) => registry.restore_adoptions(adoptions, SystemTime::now()),
                Err(e) => error!("{e}; no node is adopted"),
            }
        }
        let shared = Arc::new(MasterShared::new(
            registry,
            self.keys.clone(),
            tx,
            PluginCommands::new(plugin_tx),
            app.world()
                .get_resource::<crate::media::MasterMediaSetup>()
                .map(|m| Arc::clone(&m.0)),
        ));
        let listener = self.listener.lock().ok().and_then(|mut l| l.take());
        let addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        app.insert_resource(MasterNet {
            shared,
            addr,
            commands: rx,
            plugin_commands: plugin_rx,
            listener,
            last_generation: None,
            last_state: None,
            watch_mdns: self.config.broadcast_enabled,
            stage,
            restored,
            show_hash: None,
            stage_dirty: false,
            saved_overrides: 0,
            limits: self
                .config
                .max_connections
                .map(super::server::ServerLimits::new)
                .unwrap_or_default(),
            tls: self
                .tls
                .as_ref()
                .map(rockontrol_tls::ServerIdentity::acceptor),
            routed_for: None,
            capture_memo: CaptureMemo::default(),
            parts: Parts::new(),
        })
        .add_systems(
            Startup,
            (
                master_protocol_hash,
                master_resume_clock,
                start_master_server,
                start_clock_responder,
            ),
        )
        .add_systems(
            FixedUpdate,
            (
                (master_apply_commands, master_apply_plugin_commands).in_set(NetSystems::Apply),
                (master_publish, master_publish_parts, master_save_stage)
                    .chain()
                    .in_set(NetSystems::Publish),
            ),
        )
        .add_systems(
            Update,
            (master_clock, master_routing, master_own_playback).in_set(NetSystems::Send),
        );
        // The master's show time is the rig's clock (see `rockontrol_clock`).
        if !app.is_plugin_added::<ClockSyncPlugin>() {
            app.add_plugins(ClockSyncPlugin::default());
        }
    }
}

/// How often the master's own playback report is handed to its status (a receiver's goes
/// in its heartbeat, once a second).
const OWN_PLAYBACK_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// The playback report of the master's own media outputs, for its status
/// (`GET /api/nodes/{master}/status`, the control link's state, the node view).
fn master_own_playback(
    net: Res<MasterNet>,
    report: Option<Res<rockontrol_media::PlaybackReport>>,
    mut last: Local<Option<Instant>>,
) {
    let Some(report) = report else {
        return;
    };
    if last.is_some_and(|t| t.elapsed() < OWN_PLAYBACK_PERIOD) {
        return;
    }
    *last = Some(Instant::now());
    let own = (!report.outputs.is_empty()).then(|| report.clone());
    *net.shared
        .own_playback
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = own;
}

/// Answers receivers' clock pings on UDP at the master's own address and port number (UDP and
/// TCP ports are apart, so a receiver needs nothing more than the address it links to).
fn start_clock_responder(net: Res<MasterNet>, slot: Option<ResMut<ClockResponderSlot>>) {
    let (Some(addr), Some(mut slot)) = (net.addr, slot) else {
        return;
    };
    // Revoked link keys are left out (and taken away later by the server's housekeeping).
    let started = slot.start(addr, &net.shared.live_link_keys());
    // Pings over the control WebSocket are answered either way.
    if let Some(answerer) = slot.answerer() {
        let _ = net.shared.clock_answerer.set(answerer);
    }
    if let Err(e) = started {
        warn!(
            "clock responder not started on udp {addr}: {e}; receivers exchange clock pings over the control WebSocket"
        );
    }
}

/// The master outputs the show universes no node is given: recomputed when an assignment or
/// the show changes (a node registering later takes its universes over from the master).
fn master_routing(
    mut net: ResMut<MasterNet>,
    engine: Res<ShowEngine>,
    dmx: Option<ResMut<DmxSettings>>,
) {
    let Some(mut dmx) = dmx else { return };
    let Some(fade) = &engine.engine else { return };
    // A cheap lock: the epoch is read every frame, the routing computed when it moved.
    let epoch = net.shared.registry().routing_epoch();
    if net.routed_for == Some((epoch, engine.generation)) {
        return;
    }
    let local = net
        .shared
        .registry()
        .local_universes(&fade.show().universes);
    net.routed_for = Some((epoch, engine.generation));
    if dmx.only_universes.as_ref() != Some(&local) {
        info!("the master outputs universes {local:?} itself");
        dmx.only_universes = Some(local);
    }
}

fn start_master_server(
    mut net: ResMut<MasterNet>,
    runtime: Res<TokioTasksRuntime>,
    events: Option<Res<crate::events::NodeEvents>>,
) {
    if net.watch_mdns
        && let Err(e) = super::server::watch_mdns(
            Arc::clone(&net.shared),
            crate::discovery::interface_from_env(),
            events.as_deref().cloned(),
        )
    {
        warn!("cannot watch for nodes over mDNS: {e}");
    }
    let Some(listener) = net.listener.take() else {
        error!("the master has no listening socket; REST and WebSocket are off");
        return;
    };
    let shared = Arc::clone(&net.shared);
    let limits = net.limits;
    let tls = net.tls.clone();
    if tls.is_none() {
        warn!(
            "insecure: serving REST, WebSocket and media in plaintext (no TLS) on {:?}: keys and commands cross the network in clear; for a closed lab network only",
            net.addr
        );
    }
    runtime.spawn_background_task(move |_ctx| async move {
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot use the master's socket: {e}");
                return;
            }
        };
        if let Err(e) =
            super::server::serve_with(listener, shared, limits, tls, std::future::pending()).await
        {
            tracing::error!("master server stopped: {e}");
        }
    });
}

fn master_clock(
    net: Res<MasterNet>,
    clock: Res<ShowClock>,
    base: Res<ShowTimeBase>,
    drive: Res<TickDrive>,
    timecode: Option<Res<rockontrol_timecode::ActiveTimecode>>,
    tempo: Option<Res<rockontrol_timecode::Tempo>>,
) {
    // While the engine is still running the ticks a stall left due, its tick is behind show
    // time: receivers (which ran on) would be pulled back. Published once caught up (a stale
    // clock is not sent as a sync meanwhile).
    if drive.behind > 0 {
        return;
    }
    net.shared.clock.store(clock.next_tick, Ordering::Relaxed);
    // Snapshots carry the current tick (a stale one would pull a (re)connecting receiver
    // back); skipped when a server task holds the registry, caught up next frame.
    if let Some(mut reg) = net.shared.try_registry() {
        reg.show_time_refreshed(clock.next_tick, *base, Instant::now());
        // The sync message carries the show's timecode label and tempo.
        reg.set_sync_timecode(
            timecode.and_then(|t| t.config.as_ref().map(|c| c.timecode)),
            tempo.map(|t| t.bpm()),
        );
    }
}

/// Opens the stage file of master `master_id` in `dir`: its writer and the saved record.
fn open_stage(
    dir: &std::path::Path,
    master_id: &str,
) -> (Option<StageWriter>, Option<StageRecord>) {
    let path = crate::stage::stage_path(dir, master_id);
    let restored = crate::stage::load(&path)
        .map_err(|e| error!("{e}; the master starts with a dark stage"))
        .ok()
        .flatten();
    let writer = StageWriter::start(path)
        .map_err(|e| error!("cannot start the stage writer: {e}; a restart will not resume"))
        .ok();
    (writer, restored)
}

/// A restarted master resumes show time where it would be now (see [`crate::stage`]).
/// Hellos must carry the hash of this app's replication rules (every plugin has registered
/// its parts by startup).
fn master_protocol_hash(net: Res<MasterNet>, rules: Option<Res<ReplicationRules>>) {
    if let Some(rules) = rules {
        let hash = rules.protocol_hash();
        info!(
            "protocol hash {hash} ({} registered parts and types)",
            rules.len()
        );
        net.shared.registry().set_protocol_hash(hash);
        if let Ok(mut kinds) = net.shared.plugin_commands.kinds.write() {
            *kinds = rules.command_tags();
        }
    }
}

/// Commands of other plugins (media, …) from the REST API, through their registered handlers.
fn master_apply_plugin_commands(world: &mut World) {
    let mut work = Vec::new();
    {
        let mut net = world.resource_mut::<MasterNet>();
        while let Ok(req) = net.plugin_commands.try_recv() {
            work.push(req);
        }
    }
    if work.is_empty() {
        return;
    }
    let Some(rules) = world.get_resource::<ReplicationRules>().cloned() else {
        return;
    };
    for req in work {
        let answer = rules
            .handle_command(world, &req.kind, req.body)
            .unwrap_or_else(|| Err(format!("no handler for {:?} commands", req.kind)));
        if let Err(e) = &answer {
            warn!("{} command refused: {e}", req.kind);
        }
        let _ = req.reply.send(answer);
    }
}

/// The state parts other plugins registered (media, …): each read only on a tick where its
/// resource changed (a part watched on a resource; see
/// [`ReplicationRules::capture_changed`]), so a quiet DMX tick serializes nothing. A change
/// goes to every node as a new snapshot and into the saved stage. The engine's state and the
/// node overrides are published by type ([`master_publish`], the registry).
fn master_publish_parts(world: &mut World) {
    let mut memo = std::mem::take(&mut world.resource_mut::<MasterNet>().capture_memo);
    let Some(rules) = world.get_resource::<ReplicationRules>() else {
        world.resource_mut::<MasterNet>().capture_memo = memo;
        return;
    };
    let captured = rules.capture_changed(world, &mut memo, |name| {
        name != rockontrol_engine::PLAYBACK_PART && name != protocol::OVERRIDES_PART
    });
    let mut net = world.resource_mut::<MasterNet>();
    net.capture_memo = memo;
    let changed = match captured {
        Ok(changed) => changed,
        Err(e) => {
            warn!("{e}; the nodes keep the parts they have");
            return;
        }
    };
    if changed.is_empty() || changed.iter().all(|(k, v)| net.parts.get(k) == Some(v)) {
        return;
    }
    let log_changed = changed.contains_key(rockontrol_media::MEDIA_PART);
    net.parts.extend(changed);
    let parts = net.parts.clone();
    if log_changed && let Some(media) = net.shared.media.clone() {
        // Manifests follow what media commands play where (the one clip-need rule).
        let commanded = world
            .get_resource::<rockontrol_media::MediaShow>()
            .map(|s| s.0.log().commanded())
            .unwrap_or_default();
        media.follow_commands(commanded);
    }
    let mut net = world.resource_mut::<MasterNet>();
    if net.shared.registry().publish_parts(parts) {
        net.stage_dirty = true;
        debug!("replicated parts changed: a snapshot went to every node");
    }
}

fn master_resume_clock(net: Res<MasterNet>, mut clock: ResMut<ShowClock>) {
    let Some(r) = &net.restored else { return };
    let tick = r.resume_tick(SystemTime::now());
    info!(
        "resuming the stage saved at tick {}: show time continues at tick {tick}",
        r.tick
    );
    clock.next_tick = tick;
    net.shared.registry().show_time_stepped(tick);
}

/// Hands the stage to the writer when it changed (a command, a follow, a node override, a
/// new show) and once a second (show time moves on).
fn master_save_stage(world: &mut World) {
    let tick = world.resource::<ShowClock>().next_tick;
    let Some(rate) = world
        .resource::<ShowEngine>()
        .engine
        .as_ref()
        .map(|f| f.show().tick_rate)
    else {
        return;
    };
    let due = {
        let net = world.resource::<MasterNet>();
        let Some(writer) = &net.stage else { return };
        // A saved stage not applied yet stays on disk until it is.
        if net.restored.is_some() {
            return;
        }
        let version = net.shared.registry().overrides_version();
        net.stage_dirty || version != net.saved_overrides || writer.refresh_due()
    };
    if !due {
        if let Some(w) = world.resource_mut::<MasterNet>().stage.as_mut() {
            w.retry();
        }
        return;
    }
    let state = world.resource::<ShowEngine>().state.clone();
    let mut net = world.resource_mut::<MasterNet>();
    let (overrides, version) = {
        let reg = net.shared.registry();
        (reg.overrides().clone(), reg.overrides_version())
    };
    let record = StageRecord {
        format: crate::stage::STAGE_FORMAT,
        show_hash: net.show_hash.clone(),
        rate,
        tick,
        wall_unix_ms: crate::stage::unix_ms(SystemTime::now()),
        state,
        overrides,
        parts: net.parts.clone(),
    };
    net.stage_dirty = false;
    net.saved_overrides = version;
    if let Some(w) = net.stage.as_mut() {
        w.send(record);
    }
}

/// Where the REST handler waits for the tick a show command was applied at.
type ShowCommandReply = tokio::sync::oneshot::Sender<Result<Applied, Refused>>;

/// The cue (cue list, cue) `command` would start at `tick`, read from the engine without
/// running it (only when the show has media cues: the GO gate needs it before the command
/// runs). The seam first advances to `tick` (the follows and releases due then, which the
/// command's own apply would run first anyway), so the cue read is the one the command runs.
fn cue_started(
    running: &mut rockontrol_engine::Running<'_>,
    command: &Command,
    tick: u64,
) -> Vec<(String, rockontrol_show::CueNumber)> {
    if !matches!(
        command,
        Command::Go { .. } | Command::Back { .. } | Command::Goto { .. }
    ) {
        return Vec::new();
    }
    running.seam.advance(running.fade, running.state, tick);
    running
        .fade
        .cue_to_run(running.state, command)
        .into_iter()
        .collect()
}

fn master_apply_commands(
    mut net: ResMut<MasterNet>,
    mut engine: ResMut<ShowEngine>,
    mut queue: ResMut<CommandQueue>,
    clock: Res<ShowClock>,
    mut events: MessageWriter<EngineEvent>,
    mut rejected: MessageWriter<CommandRejected>,
) {
    let tick = clock.next_tick;
    let mut work: Vec<(Command, Option<ShowCommandReply>)> = Vec::new();
    work.extend(queue.take_due(tick).map(|c| (c, None)));
    while let Ok(req) = net.commands.try_recv() {
        work.push((req.command, Some(req.reply)));
    }
    if work.is_empty() {
        return;
    }
    let Some(mut running) = engine.running() else {
        for (_, reply) in work {
            if let Some(reply) = reply {
                let _ = reply.send(Err(Refused::Engine("the master has no show loaded".into())));
            }
        }
        return;
    };
    let media = net.shared.media.clone().filter(|m| m.has_media_cues());
    for (command, reply) in work {
        // The GO gate (issue 13): a cue that starts a clip not ready where it must play.
        let mut media_not_ready = Vec::new();
        if let Some(media) = &media {
            let went = cue_started(&mut running, &command, tick);
            if !went.is_empty() {
                match media.gate(&net.shared.registry(), &went) {
                    Verdict::Go => {}
                    Verdict::Warn(not_ready) => {
                        warn!(
                            "tick {tick}: {command} runs with media not ready: {}",
                            gate::describe(&not_ready)
                        );
                        media_not_ready = not_ready;
                    }
                    Verdict::Refuse(not_ready) => {
                        warn!(
                            "tick {tick}: {command} refused: media not ready: {}",
                            gate::describe(&not_ready)
                        );
                        if let Some(reply) = reply {
                            let _ = reply.send(Err(Refused::MediaNotReady(not_ready)));
                        }
                        continue;
                    }
                }
            }
        }
        let applied = running.apply_reported(&command, tick, &mut events, &mut rejected);
        if applied.is_ok() {
            info!("tick {tick}: {command}");
            net.shared
                .registry()
                .publish_delta(tick, command, running.state.clone());
            net.last_state = Some(running.state.clone());
            net.stage_dirty = true;
        }
        if let Some(reply) = reply {
            let _ = reply.send(
                applied
                    .map(|()| Applied {
                        tick,
                        media_not_ready,
                    })
                    .map_err(|e| Refused::Engine(e.to_string())),
            );
        }
    }
}

/// Publishes a new show (snapshot to everyone) or a changed state (for later snapshots).
fn master_publish(world: &mut World) {
    let tick = world.resource::<ShowClock>().next_tick;
    let (generation, rate) = {
        let engine = world.resource::<ShowEngine>();
        let Some(fade) = &engine.engine else { return };
        (engine.generation, fade.show().tick_rate)
    };
    if world.resource::<MasterNet>().last_generation != Some(generation) {
        let show = rockontrol_engine::show_from_world(world);
        // Keys limited to universes: which universes each playback drives.
        world.resource::<MasterNet>().shared.set_show(&show);
        if let Some(media) = &world.resource::<MasterNet>().shared.media {
            // Manifests and the GO gate follow the show (a reload or an edit), not only the start.
            media.follow(&show);
        }
        let ron = rockontrol_show::to_ron_string(&show);
        let hash = protocol::show_hash(&ron);
        info!("replicating show {:?} ({hash})", show.name);
        resume_stage(world, &hash);
        let state = world.resource::<ShowEngine>().state.clone();
        let mut net = world.resource_mut::<MasterNet>();
        net.show_hash = Some(hash.clone());
        net.stage_dirty = true;
        net.shared
            .registry()
            .publish_show(Some(hash), Some(ron.into()), rate, state.clone(), tick);
        net.last_generation = Some(generation);
        net.last_state = state;
        return;
    }
    // Compared in place; the state (every lane of every playback) is copied only when it changed.
    let changed = match &world.resource::<ShowEngine>().state {
        Some(state) => world.resource::<MasterNet>().last_state.as_ref() != Some(state),
        None => false,
    };
    if changed {
        let state = world.resource::<ShowEngine>().state.clone();
        let mut net = world.resource_mut::<MasterNet>();
        if let Some(s) = &state {
            net.shared.registry().refresh_state(s.clone(), tick + 1);
        }
        net.last_state = state;
        net.stage_dirty = true;
    }
}

/// The first show published after a restart takes the saved playback state back, if the
/// stage was saved with this very show.
fn resume_stage(world: &mut World, hash: &str) {
    let Some(record) = world.resource_mut::<MasterNet>().restored.take() else {
        return;
    };
    let mut engine = world.resource_mut::<ShowEngine>();
    let fits = match (&record.state, &engine.engine) {
        (Some(saved), Some(fade)) => fade.check_state(saved).map_err(|e| {
            warn!("the saved stage does not fit the show: {e}");
        }),
        _ => Err(()),
    }
    .is_ok();
    if record.show_hash.as_deref() == Some(hash) && fits {
        info!("the stage saved at tick {} is back", record.tick);
        engine.state = record.state;
        // The other plugins' parts (the media log: what plays where since when) come back
        // through their own handlers.
        if let Some(rules) = world.get_resource::<ReplicationRules>().cloned() {
            let names: Vec<String> = record.parts.keys().cloned().collect();
            for e in rules.restore(world, record.parts) {
                warn!("{e}; that part starts empty");
            }
            if !names.is_empty() {
                info!("restored the replicated parts {}", names.join(", "));
            }
        }
    } else {
        warn!(
            "the saved stage belongs to show {:?}, not this one ({hash}); starting dark",
            record.show_hash
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_state_with_unset_lanes_equals_itself() {
        let state = rockontrol_engine::PlaybackState {
            effects: Vec::new(),
            grand_master: 1.0,
            blackout: false,
            action_seq: 0,
            playbacks: vec![rockontrol_engine::PlaybackRun {
                cue: None,
                master: 1.0,
                last_action: 0,
                go_tick: 0,
                follow_at: None,
                release_at: None,
                from: vec![f32::NAN, 0.5],
                to: vec![f32::NAN, 1.0],
                timing: vec![0, 0],
                timings: vec![],
                ..Default::default()
            }],
        };
        assert_eq!(Some(&state), Some(&state.clone()));
        let mut moved = state.clone();
        moved.playbacks[0].to[1] = 0.9;
        assert_ne!(Some(&state), Some(&moved));
        assert_ne!(Some(&state), None);
    }
}
