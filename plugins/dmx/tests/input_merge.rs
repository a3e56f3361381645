//! sACN from another console, received by the real input receiver, merges HTP into the frames
//! the engine publishes (and stops counting when the source terminates its stream).

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use rockontrol_dmx::plugin::DmxInput;
use rockontrol_dmx::{DmxPlugin, DmxSettings};
use rockontrol_engine::{CaptureSink, Command, CommandQueue, EnginePlugin, load_show};
use rockontrol_show::parse_show;
use rockontrol_wire::sacn::{DataPacket, Options};

const SHOW: &str = r#"(
    name: "input",
    universes: [(id: 1, input: (source: Sacn(9)))],
    profiles: [(manufacturer: "T", model: "D", channels: [(name: "D", attribute: Intensity)], modes: [(name: "1", channels: ["D"])])],
    fixtures: [(id: 1, name: "Dim", profile: "T/D", mode: "1", universe: 1, address: 1)],
    cue_lists: [(name: "main", cues: [(number: 1, values: {Fixture(1): {Intensity: 0.5}})])],
    playbacks: [(name: "main", cue_list: "main")],
)"#;

fn packet(slots: &[u8], terminated: bool, sequence: u8) -> Vec<u8> {
    DataPacket {
        cid: [9; 16],
        source_name: "Other console".into(),
        priority: 100,
        sync_address: 0,
        sequence,
        options: Options {
            stream_terminated: terminated,
            ..Options::default()
        },
        universe: 9,
        start_code: 0,
        slots: slots.into(),
    }
    .encode()
    .expect("valid packet")
}

/// Ticks until slot `address` of universe 1 in the latest captured frame is `want`.
fn wait_for(app: &mut App, address: usize, want: u8, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        app.update();
        let capture = app.world().resource::<CaptureSink>();
        let got = capture
            .frames
            .last()
            .and_then(|f| f.universe(1))
            .map(|u| u[address - 1]);
        if got == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: slot {address} is {got:?}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_input_universe_merges_htp_into_the_published_frame() {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(EnginePlugin)
        .add_plugins(DmxPlugin)
        .insert_resource(DmxSettings {
            input_sacn_port: 0,
            input_artnet_port: 0,
            state_dir: std::env::temp_dir().join(format!("rk-input-{}", std::process::id())),
            ..DmxSettings::default()
        })
        .insert_resource(TimeUpdateStrategy::FixedTimesteps(1))
        .init_resource::<CaptureSink>();
    load_show(
        app.world_mut(),
        &parse_show(SHOW, "input.ron").expect("show"),
    );
    app.world_mut()
        .resource_mut::<CommandQueue>()
        .push(Command::Go {
            playback: "main".into(),
            fade: None,
        });
    wait_for(&mut app, 1, 128, "our own cue");
    let addr = app
        .world()
        .resource::<DmxInput>()
        .handle()
        .and_then(|h| h.sacn_addr())
        .expect("the input receiver listens for sACN");
    let console = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let mut slots = [0u8; 512];
    slots[0] = 200; // above our 128
    slots[99] = 42; // a slot no fixture uses
    console
        .send_to(&packet(&slots, false, 0), addr)
        .expect("send");
    wait_for(&mut app, 1, 200, "the input's higher level wins");
    wait_for(&mut app, 100, 42, "unpatched slots carry the input");
    slots[0] = 50; // below our 128: ours wins again
    console
        .send_to(&packet(&slots, false, 1), addr)
        .expect("send");
    wait_for(&mut app, 1, 128, "HTP: our 128 over the input's 50");
    console
        .send_to(&packet(&slots, true, 2), addr)
        .expect("send");
    wait_for(&mut app, 100, 0, "a terminated source no longer counts");
}
