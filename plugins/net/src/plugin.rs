//! [`MasterPlugin`] and [`ReceiverPlugin`]: the network as Bevy systems.
//!
//! Sockets live on tokio (through `bevy-tokio-tasks`); the ECS talks to them over bounded
//! channels. On a master, show commands (from the REST API and from the engine's
//! [`CommandQueue`]) are applied by [`NetSystems::Apply`] at a tick and streamed to receivers
//! as deltas; on a receiver the same set applies the master's snapshot and deltas at their
//! ticks, so the receiver's engine computes the same frames and keeps running through a
//! master outage.
//!
//! Two node commands act on the receiver itself rather than on the show: *identify* flashes
//! the fixtures of its universes through the engine's [`Programmer`] highlight (so the wire
//! shows it and playback is untouched), and *restart* acknowledges, stops the app cleanly
//! (sACN stream-terminated) and asks the binary, through [`NodeRestart`], to re-execute itself.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bevy::prelude::*;
use bevy_tokio_tasks::{TokioTasksPlugin, TokioTasksRuntime};
use rockontrol_dmx::{DmxSettings, DmxStats};
use rockontrol_engine::{
    Command, CommandQueue, CommandRejected, EngineEvent, EngineSystems, Programmer,
    ProgrammerPlugin, ShowClock, ShowEngine, ShowTimeBase, TickDrive,
};
use rockontrol_show::{Output, SacnDestination, SacnOutput, Show};
use tokio::sync::mpsc;

use crate::auth::Keys;
use crate::client::{LinkConfig, LinkEvent, MasterAddress};
use crate::config::{MasterConfig, MasterLoss, ReceiverConfig};
use crate::executed::ExecutedLog;
use crate::health::CpuMeter;
use crate::master::{MasterShared, ShowCommandRequest};
use crate::protocol::{self, AckStatus, Metrics, NodeCommand, NodeOverride, ToMaster, ToReceiver};
use crate::registry::Registry;
use crate::replica::{Replica, ReplicaAction};
use crate::stage::{StageRecord, StageWriter};

/// The network's systems, in order within a frame.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetSystems {
    /// `PreUpdate`: take in what the sockets received.
    Receive,
    /// `FixedUpdate`, after the engine compiles and before it plays: apply commands, snapshots
    /// and deltas at this tick.
    Apply,
    /// `FixedUpdate`, after the engine played: publish state changes.
    Publish,
    /// `Update`: heartbeats and the clock.
    Send,
}

fn configure_sets(app: &mut App) {
    app.configure_sets(
        FixedUpdate,
        (
            NetSystems::Apply
                .after(EngineSystems::Compile)
                .before(EngineSystems::Playback),
            NetSystems::Publish
                .after(EngineSystems::Playback)
                .before(EngineSystems::Render),
        ),
    )
    .configure_sets(PreUpdate, NetSystems::Receive)
    .configure_sets(Update, NetSystems::Send);
    if !app.world().contains_resource::<TokioTasksRuntime>() {
        app.add_plugins(TokioTasksPlugin {
            make_runtime: Box::new(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("rockontrol-net")
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("cannot start the network runtime: {e}"))
            }),
            ..default()
        });
    }
}

/// Runs a master: REST + WebSocket server, registry, replication.
pub struct MasterPlugin {
    pub config: MasterConfig,
    /// Control keys (the first is the one operators were told about).
    pub keys: Keys,
    /// The bound listener (bind before building so the port is known; port 0 works).
    pub listener: std::sync::Mutex<Option<std::net::TcpListener>>,
}

/// The master's side of the network, for systems and tests.
#[derive(Resource)]
pub struct MasterNet {
    pub shared: Arc<MasterShared>,
    pub addr: Option<SocketAddr>,
    commands: mpsc::Receiver<ShowCommandRequest>,
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
    limits: crate::master::ServerLimits,
    /// The routing epoch and show generation the master's own universes were set for.
    routed_for: Option<(u64, u64)>,
}

impl Plugin for MasterPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        let (tx, rx) = mpsc::channel(4096);
        let mut registry = Registry::new(&self.config, SystemTime::now());
        // The stage (playback state, show time, node overrides) is saved in the state
        // directory, so a restarted master resumes it (see [`crate::stage`]).
        let (stage, restored) = match &self.config.state_dir {
            Some(dir) => open_stage(dir, &self.config.node_id),
            None => (None, None),
        };
        if let Some(r) = &restored {
            registry.replication.overrides = r.overrides.clone();
            registry.replication.rate = r.rate;
        }
        if let Some(dir) = &self.config.state_dir {
            match crate::adoptions::load(dir) {
                Ok(adoptions) => registry.restore_adoptions(adoptions, SystemTime::now()),
                Err(e) => error!("{e}; no node is adopted"),
            }
        }
        let shared = Arc::new(MasterShared {
            registry: std::sync::Mutex::new(registry),
            keys: self.keys.clone(),
            show_commands: tx,
            clock: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
        });
        let listener = self.listener.lock().ok().and_then(|mut l| l.take());
        let addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        app.insert_resource(MasterNet {
            shared,
            addr,
            commands: rx,
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
                .map(crate::master::ServerLimits::new)
                .unwrap_or_default(),
            routed_for: None,
        })
        .add_systems(Startup, (master_resume_clock, start_master_server))
        .add_systems(
            FixedUpdate,
            (
                master_apply_commands.in_set(NetSystems::Apply),
                (master_publish, master_save_stage)
                    .chain()
                    .in_set(NetSystems::Publish),
            ),
        )
        .add_systems(
            Update,
            (master_clock, master_routing).in_set(NetSystems::Send),
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

fn start_master_server(mut net: ResMut<MasterNet>, runtime: Res<TokioTasksRuntime>) {
    if net.watch_mdns
        && let Err(e) = crate::master::watch_mdns(
            Arc::clone(&net.shared),
            crate::discovery::interface_from_env(),
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
            crate::master::serve_with(listener, shared, limits, std::future::pending()).await
        {
            tracing::error!("master server stopped: {e}");
        }
    });
}

fn master_clock(net: Res<MasterNet>, clock: Res<ShowClock>, drive: Res<TickDrive>) {
    // While the engine is still running the ticks a stall left due, its tick is behind show
    // time: receivers (which ran on) would be pulled back. Published once caught up (a stale
    // clock is not sent as a sync meanwhile).
    if drive.behind > 0 {
        return;
    }
    net.shared.clock.store(clock.next_tick, Ordering::Relaxed);
    // Snapshots carry the current tick (a stale one would pull a (re)connecting receiver
    // back); skipped when a server task holds the registry, caught up next frame.
    if let Ok(mut reg) = net.shared.registry.try_lock() {
        reg.replication.tick = reg.replication.tick.max(clock.next_tick);
        reg.replication.tick_at = Some(Instant::now());
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
fn master_resume_clock(net: Res<MasterNet>, mut clock: ResMut<ShowClock>) {
    let Some(r) = &net.restored else { return };
    let tick = r.resume_tick(SystemTime::now());
    info!(
        "resuming the stage saved at tick {}: show time continues at tick {tick}",
        r.tick
    );
    clock.next_tick = tick;
    net.shared.registry().replication.tick = tick;
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
        let version = net.shared.registry().replication.overrides_version;
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
        (
            reg.replication.overrides.clone(),
            reg.replication.overrides_version,
        )
    };
    let record = StageRecord {
        format: crate::stage::STAGE_FORMAT,
        show_hash: net.show_hash.clone(),
        rate,
        tick,
        wall_unix_ms: crate::stage::unix_ms(SystemTime::now()),
        state,
        overrides,
    };
    net.stage_dirty = false;
    net.saved_overrides = version;
    if let Some(w) = net.stage.as_mut() {
        w.send(record);
    }
}

/// Where the REST handler waits for the tick a show command was applied at.
type ShowCommandReply = tokio::sync::oneshot::Sender<Result<u64, String>>;

/// Applies show commands at this tick, on the master, and streams each as a delta.
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
    let ShowEngine {
        engine: Some(fade),
        state: Some(state),
        seam,
        ..
    } = &mut *engine
    else {
        for (_, reply) in work {
            if let Some(reply) = reply {
                let _ = reply.send(Err("the master has no show loaded".into()));
            }
        }
        return;
    };
    for (command, reply) in work {
        match seam.apply(fade, state, &command, tick) {
            Ok(done) => {
                for event in done {
                    events.write(EngineEvent(event));
                }
                net.shared
                    .registry()
                    .publish_delta(tick, command.clone(), state.clone());
                net.last_state = Some(state.clone());
                net.stage_dirty = true;
                info!("tick {tick}: {command}");
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(tick));
                }
            }
            Err(error) => {
                warn!("tick {tick}: {command} refused: {error}");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(error.to_string()));
                }
                rejected.write(CommandRejected {
                    command,
                    error,
                    tick,
                });
            }
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
    } else {
        warn!(
            "the saved stage belongs to show {:?}, not this one ({hash}); starting dark",
            record.show_hash
        );
    }
}

/// Runs a receiver: the link to the master, replication, commands, heartbeats.
pub struct ReceiverPlugin {
    pub config: ReceiverConfig,
    pub key: Option<String>,
    pub master: MasterAddress,
    /// Where executed command ids are kept across restarts.
    pub state_dir: PathBuf,
    /// Hash of a show loaded at start (no fetch needed if the master has the same).
    pub known_show: Option<String>,
}

/// The receiver's side of the network.
#[derive(Resource)]
pub struct ReceiverNet {
    pub node_id: String,
    pub connected: bool,
    pub assigned: Vec<u16>,
    pub master_show: Option<String>,
    pub replica: Replica,
    events: mpsc::Receiver<LinkEvent>,
    out: mpsc::Sender<ToMaster>,
    link: Option<LinkConfig>,
    pending_snapshot: Option<protocol::Snapshot>,
    load_generation: Option<u64>,
    deltas: Vec<(u64, Command)>,
    commands: VecDeque<(String, NodeCommand)>,
    executed: ExecutedLog,
    /// This node's own output (blackout, intensity), as the master last said: applied at
    /// render, never written into the shared playback state.
    pub node_override: NodeOverride,
    on_loss: MasterLoss,
    dmx_destination: Option<String>,
    cpu: CpuMeter,
    last_heartbeat: Option<Instant>,
    last_frames: u64,
    pub commands_executed: u64,
    /// The master's address while connected (the last one seen).
    pub master_addr: Option<SocketAddr>,
    /// When the link last went down or a connection attempt failed, and why: the next attempt
    /// follows [`crate::registry::RECONNECT_PERIOD`] later.
    pub link_down: Option<(Instant, String)>,
    /// What this node did lately, oldest first (at most [`HISTORY_KEPT`]).
    pub history: VecDeque<HistoryEntry>,
    /// The identify flash in progress.
    pub identify: Option<IdentifyFlash>,
    /// When an acknowledged restart stops the app (the ack gets this long to leave).
    restart_at: Option<Instant>,
}

/// How long a restart waits after its acknowledgement was queued, so the ack reaches the
/// master before the connection closes.
pub const RESTART_GRACE: Duration = Duration::from_millis(300);

/// A receiver's identify: its fixtures highlighted for the first half of every 0.5 s, on
/// top of whatever the programmer held before, which is handed back at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentifyFlash {
    /// Fixtures patched on the node's universes.
    pub fixtures: BTreeSet<u32>,
    /// The programmer's highlight when the identify began (restored after).
    pub saved_highlight: BTreeSet<u32>,
    /// Ticks run so far (counted, so a clock correction cannot stretch or cut the flash).
    pub elapsed: u64,
    /// Ticks in all.
    pub length: u64,
    /// Ticks per on or off half of a flash (a quarter second).
    pub half_period: u64,
}

impl IdentifyFlash {
    /// Whether the fixtures are lit at `elapsed` ticks in.
    pub fn lit_at(&self, elapsed: u64) -> bool {
        elapsed < self.length && (elapsed / self.half_period.max(1)).is_multiple_of(2)
    }
}

/// Lets a receiver restart its own process. The binary inserts it before running the app;
/// once the app has exited it re-executes itself if [`NodeRestart::requested`]. A receiver
/// without it (one inside another program, as in tests) refuses restart commands.
#[derive(Resource, Debug, Clone, Default)]
pub struct NodeRestart(Arc<AtomicBool>);

impl NodeRestart {
    /// True once an acknowledged restart command stopped the app.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Entries kept in [`ReceiverNet::history`].
pub const HISTORY_KEPT: usize = 200;

/// One line of a receiver's history: link changes, replicated commands, node commands.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The show tick it happened at.
    pub tick: u64,
    pub text: String,
}

impl ReceiverNet {
    fn remember(&mut self, tick: u64, text: String) {
        if self.history.len() >= HISTORY_KEPT {
            self.history.pop_front();
        }
        self.history.push_back(HistoryEntry { tick, text });
    }
}

impl Plugin for ReceiverPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        let (ev_tx, ev_rx) = mpsc::channel(4096);
        let (out_tx, out_rx) = mpsc::channel(4096);
        let link = LinkConfig {
            node_id: self.config.node_id.clone(),
            key: self.key.clone(),
            universes: self.config.local_universes.clone(),
            capabilities: self.config.capabilities.clone(),
            master: self.master.clone(),
            master_id: self.config.master_id.clone(),
            reconnect: crate::registry::RECONNECT_PERIOD,
            fetch_shows: true,
            known_shows: self.known_show.iter().cloned().collect(),
        };
        app.insert_resource(ReceiverNet {
            node_id: self.config.node_id.clone(),
            connected: false,
            assigned: self.config.local_universes.clone(),
            master_show: self.known_show.clone(),
            replica: Replica::default(),
            events: ev_rx,
            out: out_tx.clone(),
            link: Some(link),
            pending_snapshot: None,
            load_generation: None,
            deltas: Vec::new(),
            commands: VecDeque::new(),
            node_override: NodeOverride::default(),
            executed: ExecutedLog::open(&self.state_dir, &self.config.node_id, out_tx.clone()),
            on_loss: self.config.on_master_loss,
            dmx_destination: self.config.dmx_destination.clone(),
            cpu: CpuMeter::default(),
            last_heartbeat: None,
            last_frames: 0,
            commands_executed: 0,
            master_addr: None,
            link_down: None,
            history: VecDeque::new(),
            identify: None,
            restart_at: None,
        })
        .insert_resource(LinkChannels(std::sync::Mutex::new(Some((ev_tx, out_rx)))))
        .add_systems(Startup, start_receiver_link)
        .add_systems(PreUpdate, receiver_receive.in_set(NetSystems::Receive))
        .add_systems(
            FixedUpdate,
            (receiver_apply, receiver_identify)
                .chain()
                .in_set(NetSystems::Apply),
        )
        .add_systems(
            FixedUpdate,
            receiver_node_output
                .after(EngineSystems::Render)
                .after(rockontrol_engine::programmer::apply_programmer)
                .before(EngineSystems::Publish),
        )
        .add_systems(
            Update,
            (receiver_heartbeat, receiver_restart).in_set(NetSystems::Send),
        );
        // Identify lights fixtures through the programmer's highlight.
        if !app.is_plugin_added::<ProgrammerPlugin>() {
            app.add_plugins(ProgrammerPlugin);
        }
    }
}

#[derive(Resource)]
struct LinkChannels(std::sync::Mutex<Option<(mpsc::Sender<LinkEvent>, mpsc::Receiver<ToMaster>)>>);

fn start_receiver_link(
    mut net: ResMut<ReceiverNet>,
    channels: Res<LinkChannels>,
    runtime: Res<TokioTasksRuntime>,
) {
    let Some((events, out)) = channels.0.lock().ok().and_then(|mut c| c.take()) else {
        return;
    };
    let Some(link) = net.link.take() else { return };
    runtime.spawn_background_task(move |_ctx| crate::client::run_link(link, events, out));
}

/// Replaces every universe's outputs with one unicast sACN destination.
pub fn redirect_sacn(show: &mut Show, destination: &str) {
    for u in &mut show.universes {
        u.outputs = vec![Output::Sacn(SacnOutput {
            universe: None,
            destination: SacnDestination::Unicast(vec![destination.to_string()]),
            priority: 100,
            sync_universe: None,
            preview: false,
        })];
    }
}

fn receiver_receive(world: &mut World) {
    let mut batch = Vec::new();
    {
        let mut net = world.resource_mut::<ReceiverNet>();
        while let Ok(e) = net.events.try_recv() {
            batch.push(e);
        }
    }
    for event in batch {
        match event {
            LinkEvent::Connected(addr) => {
                info!("connected to master at {addr}");
                world.resource_mut::<ReceiverNet>().master_addr = Some(addr);
            }
            LinkEvent::Show { hash, ron } => match rockontrol_show::parse_show(&ron, "master show")
            {
                Ok(mut show) => {
                    let dest = world.resource::<ReceiverNet>().dmx_destination.clone();
                    if let Some(dest) = dest {
                        redirect_sacn(&mut show, &dest);
                    }
                    info!("loading show {:?} ({hash}) from the master", show.name);
                    rockontrol_engine::load_show(world, &show);
                    let generation = world.resource::<ShowEngine>().generation;
                    let mut net = world.resource_mut::<ReceiverNet>();
                    net.master_show = Some(hash);
                    net.load_generation = Some(generation);
                }
                Err(e) => error!("the master's show does not parse: {e}"),
            },
            LinkEvent::Message(msg) => receive_message(world, msg),
            LinkEvent::Refused(reason) => {
                error!("the master refused this node: {reason}");
                println!("refused by master: {reason}");
            }
            LinkEvent::Disconnected(reason) => {
                let tick = world.resource::<ShowClock>().next_tick;
                let mut net = world.resource_mut::<ReceiverNet>();
                let was = net.connected;
                net.connected = false;
                net.link_down = Some((Instant::now(), reason.clone()));
                if was {
                    net.remember(tick, format!("master lost: {reason}"));
                }
                net.replica.reset();
                net.pending_snapshot = None;
                let on_loss = net.on_loss;
                if was {
                    warn!("master lost: {reason}");
                    println!(
                        "master lost ({reason}); {}",
                        match on_loss {
                            MasterLoss::Hold => "holding the last state",
                            MasterLoss::Blackout => "blacking out",
                        }
                    );
                    if on_loss == MasterLoss::Blackout {
                        let tick = world.resource::<ShowClock>().next_tick;
                        let mut engine = world.resource_mut::<ShowEngine>();
                        let ShowEngine {
                            engine: Some(fade),
                            state: Some(state),
                            seam,
                            ..
                        } = &mut *engine
                        else {
                            continue;
                        };
                        let _ = seam.apply(fade, state, &Command::Blackout { on: true }, tick);
                    }
                }
            }
        }
    }
}

fn receive_message(world: &mut World, msg: ToReceiver) {
    match msg {
        ToReceiver::Welcome(w) => {
            info!(
                "welcomed by master {} (version {}), universes {:?}",
                w.master_id, w.version, w.assigned_universes
            );
            println!(
                "connected to master {}: universes {:?}",
                w.master_id, w.assigned_universes
            );
            let tick = world.resource::<ShowClock>().next_tick;
            let mut net = world.resource_mut::<ReceiverNet>();
            net.connected = true;
            net.link_down = None;
            net.assigned = w.assigned_universes.clone();
            net.remember(
                tick,
                format!(
                    "connected to master {}: universes {:?}",
                    w.master_id, w.assigned_universes
                ),
            );
            if let Some(mut dmx) = world.get_resource_mut::<DmxSettings>() {
                dmx.only_universes = Some(w.assigned_universes);
            }
        }
        ToReceiver::Snapshot(s) => {
            let mut net = world.resource_mut::<ReceiverNet>();
            if let ReplicaAction::ApplySnapshot(s) = net.replica.on_snapshot(s) {
                net.pending_snapshot = Some(s);
            }
        }
        ToReceiver::Delta(d) => {
            let mut net = world.resource_mut::<ReceiverNet>();
            match net.replica.on_delta(d) {
                ReplicaAction::Apply(v) => net.deltas.extend(v),
                ReplicaAction::RequestSnapshot { expected, got } => {
                    warn!("replication gap: expected {expected}, got {got}; asking for a snapshot");
                    let _ = net.out.try_send(ToMaster::SnapshotRequest {
                        reason: format!("expected seq {expected}, got {got}"),
                    });
                }
                ReplicaAction::Ignore | ReplicaAction::ApplySnapshot(_) => {}
            }
        }
        ToReceiver::Command {
            command_id,
            command,
            ..
        } => {
            world
                .resource_mut::<ReceiverNet>()
                .commands
                .push_back((command_id, command));
        }
        ToReceiver::Sync { tick, .. } => {
            let waiting = world.resource::<ReceiverNet>().pending_snapshot.is_some();
            let next = world.resource::<ShowClock>().next_tick;
            // Small drift is left alone; a jump of more than two ticks is corrected.
            if !waiting && next.abs_diff(tick) > 2 {
                world.resource_scope(|world, mut base: Mut<ShowTimeBase>| {
                    world.resource_mut::<ShowClock>().step_to(
                        &mut base,
                        tick,
                        Instant::now(),
                        &format!("following the master's clock from tick {next}"),
                    );
                });
            }
        }
        ToReceiver::Error { reason } => warn!("the master could not use a frame: {reason}"),
        // The handshake is the link's (it never passes a challenge on).
        ToReceiver::Challenge { .. } => {}
        ToReceiver::Refused { reason } => error!("refused: {reason}"),
    }
}

/// Applies the snapshot, due deltas and node commands at this tick.
fn receiver_apply(
    mut net: ResMut<ReceiverNet>,
    mut engine: ResMut<ShowEngine>,
    mut clock: ResMut<ShowClock>,
    mut time_base: ResMut<ShowTimeBase>,
    programmer: Res<Programmer>,
    restart: Option<Res<NodeRestart>>,
) {
    // Acknowledgements the writer's queue could not take last tick.
    net.executed.flush();
    let ready =
        engine.engine.is_some() && net.load_generation.is_none_or(|g| engine.generation > g);
    if !ready {
        return;
    }
    let generation = engine.generation;
    let ShowEngine {
        engine: Some(fade),
        state: Some(state),
        seam,
        ..
    } = &mut *engine
    else {
        return;
    };
    if net.pending_snapshot.is_some() {
        let show_matches = net
            .pending_snapshot
            .as_ref()
            .is_some_and(|s| s.show_hash.is_none() || s.show_hash == net.master_show);
        if !show_matches {
            // The show is still being fetched; the snapshot waits for it.
            return;
        }
        if let Some(s) = net.pending_snapshot.take() {
            let own = s.overrides.get(&net.node_id).cloned().unwrap_or_default();
            if own != net.node_override {
                info!("node output from the master: {own:?}");
            }
            net.node_override = own;
            // A master without a show yet has no show time to give either.
            let has_state = s.state.is_some();
            if let Some(snap_state) = s.state {
                match fade.check_state(&snap_state) {
                    Ok(()) => *state = snap_state,
                    // Another show still loading, or a malformed state: the running one stays.
                    Err(e) => warn!(
                        "snapshot {} not applied: {e}; keeping the running state",
                        s.seq
                    ),
                }
            }
            // A master without a show yet has no show time to give either.
            if has_state && s.tick != clock.next_tick {
                clock.step_to(
                    &mut time_base,
                    s.tick,
                    Instant::now(),
                    "snapshot from the master",
                );
            }
            info!(
                "snapshot {} applied at tick {} (show generation {generation})",
                s.seq, s.tick
            );
            let held = net.replica.drain_held();
            net.deltas.extend(held);
        }
    }
    let tick = clock.next_tick;
    if !net.deltas.is_empty() {
        let (due, later): (Vec<_>, Vec<_>) = net.deltas.drain(..).partition(|(t, _)| *t <= tick);
        net.deltas = later;
        for (t, command) in due {
            match seam.apply(fade, state, &command, t) {
                Ok(_) => net.remember(t, format!("replicated: {command}")),
                Err(e) => {
                    warn!("replicated {command} at tick {t} refused here: {e}");
                    net.remember(t, format!("replicated {command} refused: {e}"));
                }
            }
        }
    }
    let first = fade.show().playbacks.first().map(|p| p.name.clone());
    while let Some((id, command)) = net.commands.pop_front() {
        if net.executed.contains(&id) {
            // Sent again (its ack was lost): acknowledged, not applied twice.
            info!("tick {tick}: {id} was executed before; acknowledging it again");
            println!("already executed {id}: acknowledged again");
            net.remember(tick, format!("already executed {id}: acknowledged again"));
            net.executed.acknowledge(ToMaster::Ack {
                command_id: id,
                status: AckStatus::Executed,
                reason: Some(protocol::ALREADY_EXECUTED.into()),
            });
            continue;
        }
        let result = match &command {
            // A node's own output is the master's record, applied at render: never the show's.
            NodeCommand::Blackout { .. }
            | NodeCommand::Intensity { .. }
            | NodeCommand::GrandMaster { .. } => {
                let mut own = net.node_override.clone();
                match own.apply(&command) {
                    Some(Ok(text)) => {
                        net.node_override = own;
                        Ok(text)
                    }
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err(format!("{command:?} does not set the node's output")),
                }
            }
            NodeCommand::Identify { seconds } => {
                protocol::identify_duration(*seconds)
                    .map_err(|e| e.to_string())
                    .map(|length| {
                        let flash = identify_flash(
                            fade.show(),
                            &net.assigned,
                            programmer.highlighted(),
                            length,
                        );
                        let text = format!(
                            "identify: {} fixtures on universes {:?} flash for {seconds} s",
                            flash.fixtures.len(),
                            net.assigned
                        );
                        // A second identify starts over, handing back what the first saved.
                        let saved = net.identify.take().map(|f| f.saved_highlight);
                        net.identify = Some(IdentifyFlash {
                            saved_highlight: saved.unwrap_or(flash.saved_highlight.clone()),
                            ..flash
                        });
                        text
                    })
            }
            NodeCommand::Ping {} => Ok("ping: acknowledged, nothing changed".into()),
            NodeCommand::Restart {} => match &restart {
                Some(_) if net.restart_at.is_some() => Ok("restart (already under way)".into()),
                Some(_) => {
                    net.restart_at = Some(Instant::now() + RESTART_GRACE);
                    Ok("restart: stopping and starting again".into())
                }
                None => {
                    Err("this node cannot restart itself (it runs inside another program)".into())
                }
            },
            _ => command
                .to_engine(first.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    seam.apply(fade, state, &c, tick)
                        .map(|_| c.to_string())
                        .map_err(|e| e.to_string())
                }),
        };
        match result {
            Ok(c) => {
                net.commands_executed += 1;
                info!("tick {tick}: executed {id}: {c}");
                println!("executed {id}: {c}");
                net.remember(tick, format!("executed {id}: {c}"));
                // Known at once (a re-send is not re-run); acknowledged once it is on disk.
                let ack = ToMaster::Ack {
                    command_id: id.clone(),
                    status: AckStatus::Executed,
                    reason: None,
                };
                net.executed.executed(&id, ack);
            }
            Err(reason) => {
                warn!("command {id} failed: {reason}");
                net.remember(tick, format!("command {id} failed: {reason}"));
                net.executed.acknowledge(ToMaster::Ack {
                    command_id: id,
                    status: AckStatus::Failed,
                    reason: Some(reason),
                });
            }
        }
    }
}

/// Applies this node's own output level (its blackout or intensity) to its universes of the
/// frame just rendered from the shared playback state.
fn receiver_node_output(net: Res<ReceiverNet>, mut engine: ResMut<ShowEngine>) {
    if net.node_override.is_neutral() {
        return;
    }
    let ShowEngine {
        engine: Some(fade),
        state: Some(state),
        frame,
        ..
    } = &mut *engine
    else {
        return;
    };
    let level = net.node_override.output_level(state);
    fade.rewrite_intensity(frame, level, &net.assigned);
}

/// The fixtures patched on `universes` of `show`, flashing for `length`.
fn identify_flash(
    show: &rockontrol_engine::CompiledShow,
    universes: &[u16],
    highlight: &BTreeSet<u32>,
    length: Duration,
) -> IdentifyFlash {
    let fixtures = show
        .channels
        .iter()
        .filter(|c| {
            show.universes
                .get((c.coarse / 512) as usize)
                .is_some_and(|u| universes.contains(u))
        })
        .map(|c| c.fixture)
        .collect();
    let rate = f64::from(show.tick_rate.max(1));
    IdentifyFlash {
        fixtures,
        saved_highlight: highlight.clone(),
        elapsed: 0,
        length: (length.as_secs_f64() * rate).round().max(1.0) as u64,
        // 2 Hz: lit for a quarter second, dark (the show) for a quarter second.
        half_period: (rate / 4.0).round().max(1.0) as u64,
    }
}

/// Drives the identify flash: sets the programmer's highlight for this tick, and hands the
/// saved highlight back when the flash is over.
fn receiver_identify(
    mut net: ResMut<ReceiverNet>,
    mut programmer: ResMut<Programmer>,
    clock: Res<ShowClock>,
) {
    let Some(flash) = &mut net.identify else {
        return;
    };
    let elapsed = flash.elapsed;
    flash.elapsed += 1;
    if elapsed >= flash.length {
        programmer.highlight(flash.saved_highlight.clone());
        net.identify = None;
        info!("identify done: the output is the show's again");
        println!("identify done");
        net.remember(clock.next_tick, "identify done".into());
        return;
    }
    let lit = if flash.lit_at(elapsed) {
        flash
            .saved_highlight
            .union(&flash.fixtures)
            .copied()
            .collect()
    } else {
        flash.saved_highlight.clone()
    };
    if programmer.highlighted() != &lit {
        programmer.highlight(lit);
    }
}

/// Stops the app once an acknowledged restart's grace is over; the binary re-executes itself.
fn receiver_restart(
    mut net: ResMut<ReceiverNet>,
    restart: Option<Res<NodeRestart>>,
    mut exit: MessageWriter<AppExit>,
) {
    let (Some(at), Some(restart)) = (net.restart_at, restart) else {
        return;
    };
    if Instant::now() < at || restart.requested() {
        return;
    }
    info!("restarting: stopping the app (sACN streams are terminated)");
    restart.request();
    net.restart_at = None;
    exit.write(AppExit::Success);
}

fn receiver_heartbeat(
    mut net: ResMut<ReceiverNet>,
    clock: Res<ShowClock>,
    dmx: Option<Res<DmxStats>>,
) {
    let now = Instant::now();
    let Some(last) = net.last_heartbeat else {
        net.last_heartbeat = Some(now);
        return;
    };
    let elapsed = now - last;
    if elapsed < crate::registry::HEARTBEAT_PERIOD {
        return;
    }
    net.last_heartbeat = Some(now);
    let frames = dmx.map(|d| d.frames).unwrap_or(0);
    let dmx_fps = (frames.saturating_sub(net.last_frames)) as f64 / elapsed.as_secs_f64();
    net.last_frames = frames;
    if !net.connected {
        return;
    }
    let metrics = Metrics {
        dmx_fps: (dmx_fps * 10.0).round() / 10.0,
        cpu_usage: net.cpu.sample(),
        memory_mb: crate::health::memory_mb(None).unwrap_or(0.0),
        frames_out: frames,
        seq: net.replica.seq.unwrap_or(0),
        tick: clock.next_tick,
        show_hash: net.master_show.clone(),
    };
    // A log that cannot be written is reported (the commands still run).
    let status = match net.executed.error() {
        Some(e) => format!("degraded: {e}"),
        None => "online".into(),
    };
    let _ = net.out.try_send(ToMaster::Heartbeat { status, metrics });
}

/// Seconds since start, for tests that wait on the network.
pub fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_flashes_at_2_hz_for_its_length_then_stops() {
        let flash = IdentifyFlash {
            fixtures: BTreeSet::from([1, 2]),
            saved_highlight: BTreeSet::new(),
            elapsed: 0,
            // 5 s at 44 Hz, a quarter second (11 ticks) per half.
            length: 220,
            half_period: 11,
        };
        let lit: Vec<bool> = (0..44).map(|k| flash.lit_at(k)).collect();
        assert!(lit[..11].iter().all(|&l| l), "lit for the first 11 ticks");
        assert!(lit[11..22].iter().all(|&l| !l), "then the show for 11");
        assert!(lit[22..33].iter().all(|&l| l) && lit[33..].iter().all(|&l| !l));
        let flashes = (0..220)
            .filter(|&k| flash.lit_at(k) && (k == 0 || !flash.lit_at(k - 1)))
            .count();
        assert_eq!(flashes, 10, "2 Hz for 5 s");
        assert!(
            (220..300).all(|k| !flash.lit_at(k)),
            "nothing after the end"
        );
    }

    #[test]
    fn a_state_with_unset_lanes_equals_itself() {
        let state = rockontrol_engine::PlaybackState {
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
