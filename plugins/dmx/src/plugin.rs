//! [`DmxPlugin`]: starts the output thread for the show's routes and keeps it in step with
//! show edits.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc::Receiver;

use bevy::prelude::*;
use rockontrol_engine::{
    ExternalInputs, ExternalUniverse, FrameBus, ShowEngine, ShowOrder, ShowUniverse,
};
use rockontrol_show::{InputMode, InputSource, Show};
use rockontrol_wire::artnet::PortAddress;

use crate::input::{
    InputConfig, InputFrame, InputHandle, InputProtocol, InputReceiver, UniverseKey,
};
use crate::output::{OutputConfig, OutputThread};
use crate::routes;

/// Sends the engine's frames to the outputs each show universe names.
#[derive(Debug, Default)]
pub struct DmxPlugin;

/// The plugin's system set (runs in `PostUpdate`, after the engine's ticks of the frame).
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct DmxSystems;

/// Output settings of this node.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct DmxSettings {
    /// Off: nothing is sent (offline rendering, tests of other parts).
    pub enabled: bool,
    /// sACN source name / Art-Net long name.
    pub source_name: String,
    /// Address of the interface DMX leaves from. Defaults to `$ROCKONTROL_DMX_INTERFACE`, else
    /// 127.0.0.1: a node never sprays a network it was not pointed at.
    pub interface: Ipv4Addr,
    pub multicast_ttl: u32,
    /// `None`: every universe every tick; `Some(hz)`: unchanged universes at `hz` (≥ 1 Hz).
    pub idle_rate: Option<f64>,
    /// Where ArtPoll goes (a directed broadcast address, or one node); `None`: the interface's
    /// broadcast address ([`default_artnet_broadcast`]), polled only when an Art-Net output
    /// has `destination: Discovered`.
    pub artnet_broadcast: Option<Ipv4Addr>,
    /// Send the show's timecode as ArtTimeCode (its rate and the label at show time 0).
    pub artnet_timecode: Option<rockontrol_wire::timecode::RunningTimecode>,
    /// SCHED_FIFO priority (1..=99) of the output thread (a node's `dmx_output_priority`);
    /// `None`: normal priority.
    pub output_priority: Option<u8>,
    /// Only these show universes are output (a receiver's assignment); `None`: all.
    pub only_universes: Option<Vec<u16>>,
    /// Where the persistent CID lives.
    pub state_dir: PathBuf,
    /// UDP port for sACN input (5568; 0 lets the kernel choose, for tests).
    pub input_sacn_port: u16,
    /// UDP port for Art-Net input (6454; 0 lets the kernel choose, for tests).
    pub input_artnet_port: u16,
}

impl Default for DmxSettings {
    fn default() -> Self {
        let interface = std::env::var("ROCKONTROL_DMX_INTERFACE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(Ipv4Addr::LOCALHOST);
        DmxSettings {
            enabled: true,
            source_name: "RocKontrol".into(),
            interface,
            multicast_ttl: 1,
            idle_rate: None,
            artnet_broadcast: None,
            artnet_timecode: None,
            output_priority: None,
            only_universes: None,
            state_dir: crate::cid::state_dir(),
            input_sacn_port: rockontrol_wire::sacn::PORT,
            input_artnet_port: rockontrol_wire::artnet::PORT,
        }
    }
}

/// An sACN source name for a show: the show's name, cut to the 63 bytes E1.31 allows.
pub fn source_name(show: &str) -> String {
    let name = if show.trim().is_empty() {
        "RocKontrol"
    } else {
        show.trim()
    };
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Output counters, refreshed every frame.
#[derive(Resource, Debug, Clone, Default, PartialEq)]
pub struct DmxStats {
    pub frames: u64,
    pub packets: u64,
    pub send_errors: u64,
    pub late_frames: u64,
    pub last_tick: Option<u64>,
    pub streams: usize,
}

/// The running output thread (dropped — and so stopped, with stream-terminated packets — when
/// the app exits).
#[derive(Resource, Default)]
pub struct DmxOutput {
    thread: Option<OutputThread>,
    generation: Option<u64>,
    settings: Option<DmxSettings>,
    streams: usize,
    /// Whether the running thread polls for Art-Net nodes (it opens that socket at start).
    discovery: bool,
}

impl DmxOutput {
    /// The output thread, if running.
    pub fn thread(&self) -> Option<&OutputThread> {
        self.thread.as_ref()
    }

    /// Stops the thread now (stream-terminated packets go out before this returns).
    pub fn stop(&mut self) {
        if let Some(mut thread) = self.thread.take() {
            thread.stop();
        }
    }
}

/// The running input receiver, for the show universes that take DMX from other consoles.
#[derive(Resource, Default)]
pub struct DmxInput {
    handle: Option<InputHandle>,
    frames: Option<Mutex<Receiver<InputFrame>>>,
    /// Received universe → (show universe, how it combines).
    routes: HashMap<UniverseKey, (u16, InputMode)>,
    generation: Option<u64>,
}

impl DmxInput {
    /// The receiver, if any show universe takes input.
    pub fn handle(&self) -> Option<&InputHandle> {
        self.handle.as_ref()
    }
}

impl Plugin for DmxPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<DmxSettings>()
            .init_resource::<DmxOutput>()
            .init_resource::<DmxInput>()
            .init_resource::<DmxStats>()
            .add_systems(
                PreUpdate,
                (update_input, receive_input).chain().in_set(DmxSystems),
            )
            .add_systems(
                PostUpdate,
                (update_output, refresh_stats).chain().in_set(DmxSystems),
            )
            .add_systems(Last, stop_on_exit);
    }
}

/// The show's universes in file order.
fn show_universes(world: &mut World) -> Vec<rockontrol_show::Universe> {
    let mut items: Vec<(ShowOrder, rockontrol_show::Universe)> = world
        .query::<(&ShowOrder, &ShowUniverse)>()
        .iter(world)
        .map(|(o, u)| (*o, u.0.clone()))
        .collect();
    items.sort_by_key(|(o, _)| *o);
    items.into_iter().map(|(_, u)| u).collect()
}

/// (Re)starts the input receiver when the show's inputs change.
fn update_input(world: &mut World) {
    let generation = world.resource::<ShowEngine>().generation;
    if world.resource::<DmxInput>().generation == Some(generation) {
        return;
    }
    let settings = world.resource::<DmxSettings>().clone();
    let mut routes = HashMap::new();
    for u in show_universes(world) {
        if let Some(input) = &u.input {
            let key = match input.source {
                InputSource::Sacn(n) => UniverseKey::sacn(n),
                InputSource::ArtNet(p) => UniverseKey::artnet(p),
            };
            routes.insert(key, (u.id, input.mode));
        }
    }
    let mut slot = world.resource_mut::<DmxInput>();
    slot.generation = Some(generation);
    if slot.routes == routes && slot.handle.is_some() {
        return;
    }
    if let Some(mut old) = slot.handle.take() {
        old.stop();
    }
    slot.frames = None;
    slot.routes = routes.clone();
    world.resource_mut::<ExternalInputs>().universes.clear();
    if routes.is_empty() || !settings.enabled {
        return;
    }
    let mut sacn_universes: Vec<u16> = routes
        .keys()
        .filter(|k| k.protocol == InputProtocol::Sacn)
        .map(|k| k.universe)
        .collect();
    sacn_universes.sort_unstable();
    let artnet_universes: Vec<PortAddress> = routes
        .keys()
        .filter(|k| k.protocol == InputProtocol::ArtNet)
        .filter_map(|k| PortAddress::new(k.universe))
        .collect();
    let config = InputConfig {
        interface: settings.interface,
        sacn: !sacn_universes.is_empty(),
        sacn_universes,
        sacn_port: settings.input_sacn_port,
        artnet: !artnet_universes.is_empty(),
        artnet_universes,
        artnet_port: settings.input_artnet_port,
        node_name: settings.source_name.clone(),
        ..InputConfig::default()
    };
    match InputReceiver::start(config) {
        Ok(handle) => {
            let frames = handle.subscribe(1024);
            let mut slot = world.resource_mut::<DmxInput>();
            slot.frames = Some(Mutex::new(frames));
            slot.handle = Some(handle);
            info!("DMX input: {} universes from other consoles", routes.len());
        }
        Err(e) => error!(
            "cannot start DMX input on {}: {e}; the show runs without its inputs",
            settings.interface
        ),
    }
}

/// Moves received input frames into the engine's [`ExternalInputs`].
fn receive_input(input: Res<DmxInput>, mut external: ResMut<ExternalInputs>) {
    let Some(frames) = input.frames.as_ref().and_then(|f| f.lock().ok()) else {
        return;
    };
    while let Ok(frame) = frames.try_recv() {
        let Some((universe, mode)) = input.routes.get(&frame.key) else {
            continue;
        };
        let mut slots = frame.slots;
        slots.resize(512, 0);
        external.universes.insert(
            *universe,
            ExternalUniverse {
                mode: *mode,
                slots,
                live: frame.live,
            },
        );
    }
}

fn update_output(world: &mut World) {
    let generation = world.resource::<ShowEngine>().generation;
    let settings = world.resource::<DmxSettings>().clone();
    let output = world.resource::<DmxOutput>();
    if output.generation == Some(generation) && output.settings.as_ref() == Some(&settings) {
        return;
    }
    let Some(universes) = world
        .resource::<ShowEngine>()
        .engine
        .as_ref()
        .map(|e| e.show().universes.clone())
    else {
        return;
    };
    let show = Show {
        universes: show_universes(world),
        ..Show::empty("")
    };
    let (plan, errors) = routes::plan(&show, &universes, settings.only_universes.as_deref());
    for e in errors {
        error!("{e}; that destination is skipped");
    }
    let streams = plan.sacn.len() + plan.artnet.len() + plan.usbpro.len();
    let discovery = plan.artnet.iter().any(|r| r.discovered);
    let restart = output_needs_restart(world.resource::<DmxOutput>(), &settings)
        || world.resource::<DmxOutput>().discovery != discovery;
    if restart {
        world.resource_mut::<DmxOutput>().stop();
    }
    let running = world.resource::<DmxOutput>().thread.is_some();
    if !settings.enabled || plan.is_empty() {
        world.resource_mut::<DmxOutput>().stop();
    } else if running {
        if let Some(thread) = &world.resource::<DmxOutput>().thread {
            thread.set_plan(plan);
        }
    } else {
        let cid = match crate::cid::load_or_create(&settings.state_dir) {
            Ok(cid) => cid,
            Err(e) => {
                warn!(
                    "cannot keep the sACN CID in {} ({e}); using a new one for this run",
                    settings.state_dir.display()
                );
                crate::cid::new_cid()
            }
        };
        let config = OutputConfig {
            cid,
            source_name: settings.source_name.clone(),
            interface: settings.interface,
            multicast_ttl: settings.multicast_ttl,
            idle_rate: settings.idle_rate,
            // Outputs to `Discovered` nodes need ArtPoll: without an address set, it goes to
            // the interface's broadcast address.
            artnet_broadcast: settings
                .artnet_broadcast
                .or_else(|| discovery.then(|| default_artnet_broadcast(settings.interface))),
            artnet_timecode: settings.artnet_timecode,
            priority: settings.output_priority,
        };
        let frames = world.resource_mut::<FrameBus>().subscribe(8);
        match OutputThread::start(config, plan, frames) {
            Ok(thread) => world.resource_mut::<DmxOutput>().thread = Some(thread),
            Err(e) => error!(
                "cannot open DMX output sockets on {}: {e}; check --dmx-interface (the show keeps running without output)",
                settings.interface
            ),
        }
    }
    let mut output = world.resource_mut::<DmxOutput>();
    output.generation = Some(generation);
    output.settings = Some(settings);
    output.streams = streams;
    output.discovery = discovery;
}

/// Where ArtPoll goes when [`DmxSettings::artnet_broadcast`] does not say: the broadcast
/// address of the interface; 127.255.255.255 on loopback (which has no broadcast flag); the
/// limited broadcast 255.255.255.255 on the unspecified address or an interface without one.
pub fn default_artnet_broadcast(interface: Ipv4Addr) -> Ipv4Addr {
    if interface.is_loopback() {
        Ipv4Addr::new(127, 255, 255, 255)
    } else if interface.is_unspecified() {
        Ipv4Addr::BROADCAST
    } else {
        crate::input::interface_broadcast(interface).unwrap_or(Ipv4Addr::BROADCAST)
    }
}

fn output_needs_restart(output: &DmxOutput, settings: &DmxSettings) -> bool {
    // Socket-level settings need new sockets; route changes do not.
    output.settings.as_ref().is_some_and(|old| {
        old.interface != settings.interface
            || old.multicast_ttl != settings.multicast_ttl
            || old.source_name != settings.source_name
            || old.idle_rate != settings.idle_rate
            || old.artnet_broadcast != settings.artnet_broadcast
            || old.artnet_timecode != settings.artnet_timecode
            || old.output_priority != settings.output_priority
    })
}

fn refresh_stats(output: Res<DmxOutput>, mut stats: ResMut<DmxStats>) {
    let Some(thread) = &output.thread else { return };
    let s = thread.counters();
    *stats = DmxStats {
        frames: s.frames,
        packets: s.packets,
        send_errors: s.send_errors,
        late_frames: s.late_frames,
        last_tick: s.last_tick,
        streams: output.streams,
    };
}

fn stop_on_exit(mut exits: MessageReader<AppExit>, mut output: ResMut<DmxOutput>) {
    if exits.read().next().is_some() {
        output.stop();
    }
}
