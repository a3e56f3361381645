//! [`DmxPlugin`]: starts the output thread for the show's routes and keeps it in step with
//! show edits.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use bevy::prelude::*;
use rockontrol_engine::{FrameBus, ShowEngine, ShowOrder, ShowUniverse};
use rockontrol_show::Show;

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
    /// Directed broadcast address for ArtPoll.
    pub artnet_broadcast: Option<Ipv4Addr>,
    /// Send the show clock as ArtTimeCode at this rate.
    pub artnet_timecode: Option<rockontrol_wire::timecode::FrameRate>,
    /// Only these show universes are output (a receiver's assignment); `None`: all.
    pub only_universes: Option<Vec<u16>>,
    /// Where the persistent CID lives.
    pub state_dir: PathBuf,
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
            only_universes: None,
            state_dir: crate::cid::state_dir(),
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

impl Plugin for DmxPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<DmxSettings>()
            .init_resource::<DmxOutput>()
            .init_resource::<DmxStats>()
            .add_systems(
                PostUpdate,
                (update_output, refresh_stats).chain().in_set(DmxSystems),
            )
            .add_systems(Last, stop_on_exit);
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
    let mut items: Vec<(ShowOrder, rockontrol_show::Universe)> = world
        .query::<(&ShowOrder, &ShowUniverse)>()
        .iter(world)
        .map(|(o, u)| (*o, u.0.clone()))
        .collect();
    items.sort_by_key(|(o, _)| *o);
    let show = Show {
        universes: items.into_iter().map(|(_, u)| u).collect(),
        ..Show::empty("")
    };
    let (plan, errors) = routes::plan(&show, &universes, settings.only_universes.as_deref());
    for e in errors {
        error!("{e}; that destination is skipped");
    }
    let streams = plan.sacn.len() + plan.artnet.len() + plan.usbpro.len();
    let restart = output_needs_restart(world.resource::<DmxOutput>(), &settings);
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
            artnet_broadcast: settings.artnet_broadcast,
            artnet_timecode: settings.artnet_timecode,
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
