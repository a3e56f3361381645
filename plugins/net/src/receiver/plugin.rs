//! [`ReceiverPlugin`]: the receiver's network as Bevy systems.
//!
//! The link ([`super::link`]) lives on tokio (through `bevy-tokio-tasks`); the ECS talks to it
//! over bounded channels. [`NetSystems::Apply`] applies the master's snapshot and deltas at
//! their ticks, so the receiver's engine computes the same frames as the master's and keeps
//! running through a master outage.
//!
//! Two node commands act on the receiver itself rather than on the show: *identify* flashes
//! the fixtures of its universes through the engine's [`Programmer`] highlight (so the wire
//! shows it and playback is untouched, see [`super::identify`]), and *restart* acknowledges,
//! stops the app cleanly (sACN stream-terminated) and asks the binary, through
//! [`NodeRestart`], to re-execute itself.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_tokio_tasks::TokioTasksRuntime;
use rockontrol_clock::{ClockStatus, ClockSync, ClockSyncPlugin};
use rockontrol_dmx::{DmxSettings, DmxStats};
use rockontrol_engine::{
    Command, EngineSystems, Programmer, ProgrammerPlugin, Running, ShowClock, ShowEngine,
    ShowTimeBase,
};
use rockontrol_replicate::ReplicationRules;
use rockontrol_show::{Output, SacnDestination, SacnOutput, Show};
use tokio::sync::mpsc;

use super::identify::{IdentifyFlash, identify_flash};
use super::link::{LinkConfig, LinkEvent, MasterAddress};
use crate::config::{MasterLoss, ReceiverConfig};
use crate::events::{NodeEvent, NodeEvents, emit};
use crate::executed::ExecutedLog;
use crate::health::CpuMeter;
use crate::protocol::{self, AckStatus, Metrics, NodeCommand, NodeOverride, ToMaster, ToReceiver};
use crate::replica::{Replica, ReplicaAction};
use crate::systems::{NetSystems, configure_sets};

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
    /// How the link (and the media fetcher) reach the master: TLS with the pin, or plaintext.
    pub(crate) security: crate::receiver::link::LinkSecurity,
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
    /// The control key that signs clock sync packets (none: no clock sync).
    clock_key: Option<String>,
    /// What this node can do: commands it cannot run are refused with the reason.
    capabilities: Vec<crate::config::Capability>,
}

/// How long a restart waits after its acknowledgement was queued, so the ack reaches the
/// master before the connection closes.
pub const RESTART_GRACE: Duration = Duration::from_millis(300);

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
        let security = if self.config.insecure {
            crate::receiver::link::LinkSecurity::Plain
        } else {
            let configured = self
                .config
                .master_fingerprint
                .as_deref()
                .and_then(|f| f.parse().ok());
            let pin =
                rockontrol_tls::PinSlot::load(configured, &self.state_dir).unwrap_or_else(|e| {
                    error!("{e}; the master is trusted on first use in this run only");
                    rockontrol_tls::PinSlot::new(rockontrol_tls::pin::choose(configured, None))
                });
            match pin.get() {
                Some(p) => info!(
                    "the master's certificate is pinned: SHA-256 {} ({})",
                    p.fingerprint,
                    match &p.source {
                        rockontrol_tls::PinSource::File(f) => format!("kept in {}", f.display()),
                        _ => "master_fingerprint in the config".to_string(),
                    }
                ),
                None => info!(
                    "no master certificate pinned yet: the first master this node links to is trusted and pinned in {}",
                    self.state_dir
                        .join(rockontrol_tls::client::PIN_FILE)
                        .display()
                ),
            }
            crate::receiver::link::LinkSecurity::Tls {
                pin,
                state_dir: Some(self.state_dir.clone()),
            }
        };
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
            // Set at startup, once every plugin has registered its parts.
            protocol_hash: String::new(),
            // Set at startup, from clock sync.
            clock_inbox: None,
            security: security.clone(),
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
            security,
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
            clock_key: self.key.clone(),
            capabilities: self.config.capabilities.clone(),
        })
        .insert_resource(LinkChannels(std::sync::Mutex::new(Some((ev_tx, out_rx)))))
        .insert_resource(crate::media::MediaKey(self.key.clone()))
        .add_systems(
            Startup,
            (start_receiver_link, crate::media::receiver_media_serve),
        )
        .add_systems(PreUpdate, receiver_receive.in_set(NetSystems::Receive))
        .add_systems(
            FixedUpdate,
            (receiver_apply_snapshot, receiver_apply, receiver_identify)
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
            (
                receiver_heartbeat,
                receiver_restart,
                crate::media::receiver_media,
            )
                .in_set(NetSystems::Send),
        );
        crate::parts::register(app);
        // Show time follows the master's clock (see `rockontrol_clock`).
        if !app.is_plugin_added::<ClockSyncPlugin>() {
            app.add_plugins(ClockSyncPlugin::default());
        }
        // Identify lights fixtures through the programmer's highlight.
        if !app.is_plugin_added::<ProgrammerPlugin>() {
            app.add_plugins(ProgrammerPlugin);
        }
    }
}

impl ReceiverNet {
    /// The master as the link reaches it (TLS with its pinned certificate, or plaintext),
    /// once an address is known: for tools on this node (the view's ping).
    pub fn master_endpoint(&self) -> Option<crate::client::Endpoint> {
        let addr = self.master_addr?;
        Some(crate::client::Endpoint {
            addr,
            transport: match &self.security {
                crate::receiver::link::LinkSecurity::Plain => crate::client::Transport::Plain,
                crate::receiver::link::LinkSecurity::Tls { pin, .. } => {
                    crate::client::Transport::Tls(pin.get())
                }
            },
        })
    }

    /// How this node trusts its master, for the operator: the pinned fingerprint and where it
    /// comes from, none yet (first use), or plaintext.
    pub fn trust_line(&self) -> String {
        match &self.security {
            crate::receiver::link::LinkSecurity::Plain => {
                "PLAINTEXT (insecure): no TLS to the master".to_string()
            }
            crate::receiver::link::LinkSecurity::Tls { pin, .. } => match pin.get() {
                None => {
                    "TLS · no master certificate pinned yet (the first master to link is trusted)"
                        .to_string()
                }
                Some(p) => format!(
                    "TLS · master certificate SHA-256 {} pinned {}",
                    p.fingerprint,
                    match p.source {
                        rockontrol_tls::PinSource::Config => "by the config",
                        rockontrol_tls::PinSource::File(_) => "on first use (state directory)",
                        _ => "on first use (this run)",
                    }
                ),
            },
        }
    }

    /// The master's certificate fingerprint this node pins, if any yet.
    pub fn pinned_master(&self) -> Option<rockontrol_tls::Fingerprint> {
        match &self.security {
            crate::receiver::link::LinkSecurity::Plain => None,
            crate::receiver::link::LinkSecurity::Tls { pin, .. } => {
                pin.get().map(|p| p.fingerprint)
            }
        }
    }
}

/// Takes the receiver's ends of its link before startup, so that no transport is started and
/// the caller carries the link's events and messages itself (the in-memory test harness).
/// `None` once the link has started (or was taken).
pub fn detach_link(
    world: &mut World,
) -> Option<(mpsc::Sender<LinkEvent>, mpsc::Receiver<ToMaster>)> {
    world
        .get_resource::<LinkChannels>()
        .and_then(|c| c.0.lock().ok().and_then(|mut c| c.take()))
}

#[derive(Resource)]
struct LinkChannels(std::sync::Mutex<Option<(mpsc::Sender<LinkEvent>, mpsc::Receiver<ToMaster>)>>);

fn start_receiver_link(
    mut net: ResMut<ReceiverNet>,
    channels: Res<LinkChannels>,
    runtime: Res<TokioTasksRuntime>,
    rules: Option<Res<ReplicationRules>>,
    clock_sync: Option<ResMut<ClockSync>>,
) {
    let Some((events, out)) = channels.0.lock().ok().and_then(|mut c| c.take()) else {
        return;
    };
    let Some(mut link) = net.link.take() else {
        return;
    };
    if matches!(link.security, crate::receiver::link::LinkSecurity::Plain) {
        warn!(
            "insecure: plaintext to the master and to peers (no TLS): the key and every command cross the network in clear; for a closed lab network only"
        );
    }
    if let Some(rules) = rules {
        link.protocol_hash = rules.protocol_hash();
    }
    // Clock sync's WebSocket fallback: pings out on this link, pongs straight back in.
    if let Some(mut sync) = clock_sync {
        let out = net.out.clone();
        link.clock_inbox = Some(sync.set_websocket_path(rockontrol_clock::WsSend::new(
            move |packet| out.try_send(ToMaster::ClockPing(packet)).is_ok(),
        )));
    }
    runtime.spawn_background_task(move |_ctx| super::link::run_link(link, events, out));
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

/// Starts clock sync with the master just linked: its responder answers on UDP at the same
/// address and port number as its WebSocket. Without a key the packets cannot be signed, so
/// show time keeps following the master's 1 Hz sync message.
fn follow_master_clock(world: &mut World, master: SocketAddr, key: Option<&str>) {
    let Some(key) = key else {
        info!("no control key: no clock sync; show time follows the master's 1 Hz sync");
        return;
    };
    if let Err(e) = world.resource_mut::<ClockSync>().follow(master, key) {
        warn!(
            "clock sync with udp {master} did not start: {e}; show time follows the master's 1 Hz sync"
        );
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
                let key = world.resource::<ReceiverNet>().clock_key.clone();
                world.resource_mut::<ReceiverNet>().master_addr = Some(addr);
                follow_master_clock(world, addr, key.as_deref());
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
                emit_event(world, NodeEvent::Refused { reason });
            }
            LinkEvent::Pinned { fingerprint, file } => {
                let tick = world.resource::<ShowClock>().next_tick;
                world.resource_mut::<ReceiverNet>().remember(
                    tick,
                    format!("master certificate pinned on first use: {fingerprint}"),
                );
                emit_event(
                    world,
                    NodeEvent::MasterPinned {
                        fingerprint: fingerprint.to_string(),
                        first_use: true,
                        file: file.map(|f| f.display().to_string()),
                    },
                );
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
                    warn!(
                        "master lost: {reason}; {}",
                        match on_loss {
                            MasterLoss::Hold => "holding the last state",
                            MasterLoss::Blackout => "blacking out",
                        }
                    );
                    emit_event(
                        world,
                        NodeEvent::MasterLost {
                            reason: reason.clone(),
                            on_loss: match on_loss {
                                MasterLoss::Hold => "hold",
                                MasterLoss::Blackout => "blackout",
                            }
                            .into(),
                        },
                    );
                    if on_loss == MasterLoss::Blackout {
                        let tick = world.resource::<ShowClock>().next_tick;
                        let mut engine = world.resource_mut::<ShowEngine>();
                        if let Some(mut running) = engine.running() {
                            let _ = running.apply(&Command::Blackout { on: true }, tick);
                        }
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
            emit_event(
                world,
                NodeEvent::Connected {
                    master_id: w.master_id.clone(),
                    universes: w.assigned_universes.clone(),
                },
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
        // The link hands clock packets to clock sync itself.
        ToReceiver::ClockPong(_) => {}
        // Once clock sync follows the master's show time, the tick in the sync is only news.
        ToReceiver::Sync {
            timecode,
            bpm,
            tick,
            ..
        } if world.resource::<ClockStatus>().locked => {
            note_master_timecode(world, tick, timecode, bpm);
        }
        ToReceiver::Sync {
            tick,
            timecode,
            bpm,
            ..
        } => {
            note_master_timecode(world, tick, timecode, bpm);
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

/// The master's timecode label and tempo from a sync: shown in the receiver's timecode status,
/// and a label that differs from the one this receiver computes for the same tick (another
/// show's timecode section, a wrong start label) is reported once.
fn note_master_timecode(world: &mut World, tick: u64, label: String, bpm: Option<f64>) {
    let rate = world.resource::<rockontrol_engine::ShowTimeBase>().rate();
    let ours = world
        .get_resource::<rockontrol_timecode::ActiveTimecode>()
        .and_then(|a| a.config.as_ref())
        .map(|c| {
            c.timecode
                .label_at_ns(rockontrol_engine::ns_of_tick(tick, rate))
                .to_string()
        });
    let Some(mut status) = world.get_resource_mut::<rockontrol_timecode::TimecodeStatus>() else {
        return;
    };
    if let Some(ours) = ours
        && ours != label
        && status.master_label.is_none()
    {
        warn!(
            "the master's timecode at tick {tick} is {label}, this node's {ours}: are the shows' timecode sections the same?"
        );
    }
    status.master_label = Some(label);
    status.master_bpm = bpm;
}

/// Applies a pending snapshot once the show it names is loaded: each part through the handler
/// its plugin registered (the engine's playback state, net's node overrides, media's, …),
/// then the master's show time. A part that cannot be applied is named in a warning; the
/// others still are.
fn receiver_apply_snapshot(world: &mut World) {
    let ready = {
        let engine = world.resource::<ShowEngine>();
        let net = world.resource::<ReceiverNet>();
        engine.engine.is_some()
            && engine.state.is_some()
            && net.load_generation.is_none_or(|g| engine.generation > g)
            // The show is still being fetched otherwise; the snapshot waits for it.
            && net
                .pending_snapshot
                .as_ref()
                .is_some_and(|s| s.show_hash.is_none() || s.show_hash == net.master_show)
    };
    if !ready {
        return;
    }
    let Some(s) = world.resource_mut::<ReceiverNet>().pending_snapshot.take() else {
        return;
    };
    let generation = world.resource::<ShowEngine>().generation;
    // A master without a show yet has no show time to give either.
    let has_state = s.state().ok().flatten().is_some();
    for e in rockontrol_replicate::apply_parts(world, s.parts) {
        warn!("snapshot {}: {e}", s.seq);
    }
    if has_state {
        world.resource_scope(|world, mut time_base: Mut<ShowTimeBase>| {
            // With clock sync locked, show time already is the master's (the snapshot's
            // tick is a little old).
            let locked = world.resource::<ClockStatus>().locked;
            let mut clock = world.resource_mut::<ShowClock>();
            if s.tick != clock.next_tick && !locked {
                clock.step_to(
                    &mut time_base,
                    s.tick,
                    Instant::now(),
                    "snapshot from the master",
                );
            }
        });
    }
    info!(
        "snapshot {} applied at tick {} (show generation {generation})",
        s.seq, s.tick
    );
    emit(
        world.get_resource::<NodeEvents>(),
        NodeEvent::SnapshotApplied {
            seq: s.seq,
            tick: s.tick,
        },
    );
    let mut net = world.resource_mut::<ReceiverNet>();
    let held = net.replica.drain_held();
    net.deltas.extend(held);
}

/// Applies due deltas and node commands at this tick.
fn receiver_apply(
    mut net: ResMut<ReceiverNet>,
    mut engine: ResMut<ShowEngine>,
    clock: Res<ShowClock>,
    programmer: Res<Programmer>,
    restart: Option<Res<NodeRestart>>,
    events: Option<Res<NodeEvents>>,
) {
    // Acknowledgements the writer's queue could not take last tick.
    net.executed.flush();
    let ready =
        engine.engine.is_some() && net.load_generation.is_none_or(|g| engine.generation > g);
    if !ready {
        return;
    }
    let Some(Running {
        fade, state, seam, ..
    }) = engine.running()
    else {
        return;
    };
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
            emit(
                events.as_deref(),
                NodeEvent::CommandRepeated {
                    id: id.clone(),
                    tick,
                },
            );
            net.remember(tick, format!("already executed {id}: acknowledged again"));
            net.executed.acknowledge(ToMaster::Ack {
                command_id: id,
                status: AckStatus::Executed,
                reason: Some(protocol::ALREADY_EXECUTED.into()),
            });
            continue;
        }
        // The seed's command filtering by role: what this node cannot run is refused.
        let refusal = crate::roles::node_can_run(&net.capabilities, &command).err();
        let result = match &command {
            _ if refusal.is_some() => Err(refusal.unwrap_or_default()),
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
            // A show command is the master's (POST /api/command): run here alone, the next
            // snapshot would undo it. A master of this build refuses to send one.
            _ => command
                .check_for_one_node()
                .and_then(|()| command.to_engine(first.as_deref()))
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
                emit(
                    events.as_deref(),
                    NodeEvent::CommandExecuted {
                        id: id.clone(),
                        command: c.clone(),
                        tick,
                    },
                );
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
                emit(
                    events.as_deref(),
                    NodeEvent::CommandFailed {
                        id: id.clone(),
                        reason: reason.clone(),
                        tick,
                    },
                );
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
    let Some(Running {
        fade, state, frame, ..
    }) = engine.running()
    else {
        return;
    };
    let level = net.node_override.output_level(state);
    fade.rewrite_intensity(frame, level, &net.assigned);
}

/// Drives the identify flash: sets the programmer's highlight for this tick, and hands the
/// saved highlight back when the flash is over.
fn receiver_identify(
    mut net: ResMut<ReceiverNet>,
    mut programmer: ResMut<Programmer>,
    clock: Res<ShowClock>,
    events: Option<Res<NodeEvents>>,
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
        emit(
            events.as_deref(),
            NodeEvent::IdentifyDone {
                tick: clock.next_tick,
            },
        );
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
    clock_sync: Res<ClockStatus>,
    media: Option<Res<crate::media::ReceiverMedia>>,
    timecode: Option<Res<rockontrol_timecode::TimecodeStatus>>,
    playback: Option<Res<rockontrol_media::PlaybackReport>>,
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
        clock: clock_sync.master.is_some().then(|| clock_sync.clone()),
        media: media.map(|m| m.snapshot()),
        timecode: timecode
            .filter(|t| !t.label.is_empty())
            .map(|t| Box::new(t.clone())),
        playback: playback
            .filter(|p| !p.outputs.is_empty())
            .map(|p| Box::new((*p).clone())),
        trust: Some(net.trust_line().into()),
    };
    // A log that cannot be written is reported (the commands still run).
    let status = match net.executed.error() {
        Some(e) => format!("degraded: {e}"),
        None => "online".into(),
    };
    let _ = net.out.try_send(ToMaster::Heartbeat {
        status,
        metrics: Box::new(metrics),
    });
}

/// Emits `event` on the app's [`NodeEvents`], if it has one.
fn emit_event(world: &World, event: NodeEvent) {
    emit(world.get_resource::<NodeEvents>(), event);
}
