//! Art-Net discovery and timecode from the binary (issue 10.7): `rockontrol run` on a show
//! whose Art-Net output has `destination: Discovered` polls with ArtPoll, sends ArtDmx to the
//! node that answered with an ArtPollReply subscribing to the universe, and with
//! `--artnet-timecode 25` sends the show clock as ArtTimeCode.
//!
//! Everything stays on loopback, on addresses of 127.0.0.0/8 no other test uses: the node
//! under test sends from 127.77.N.1, and the test plays an Art-Net node on 127.77.N.2:6454
//! (N differs per test, as they run in parallel).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rockontrol_wire::artnet::{self, ArtPacket, ArtPollReply};

const BIN: &str = env!("CARGO_BIN_EXE_rockontrol");

/// One dimmer on show universe 1, sent as Art-Net Port-Address 0x123 (net 1, sub-net 2,
/// universe 3) to whichever node subscribes to it. Cue 1 sets it to 60 % (153).
const SHOW: &str = r#"(
    name: "artnet discovery",
    universes: [(id: 1, outputs: [ArtNet(port_address: 291, destination: Discovered)])],
    profiles: [(manufacturer: "Test", model: "Dim", channels: [(name: "D", attribute: Intensity)],
                modes: [(name: "1ch", channels: ["D"])])],
    fixtures: [(id: 1, name: "D1", profile: "Test/Dim", mode: "1ch", universe: 1, address: 1)],
    cue_lists: [(name: "main", cues: [(number: 1, values: {Fixture(1): {Intensity: 0.6}})])],
    playbacks: [(name: "main", cue_list: "main")],
)"#;

/// The address `rockontrol run` sends from, and the test node's, for test `n`.
fn addresses(n: u8) -> (Ipv4Addr, Ipv4Addr) {
    (Ipv4Addr::new(127, 77, n, 1), Ipv4Addr::new(127, 77, n, 2))
}

/// A `rockontrol run` process, killed when dropped.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(n: u8, extra: &[&str]) -> (Run, UdpSocket) {
    let (sender, node_ip) = addresses(n);
    let dir = std::env::temp_dir().join(format!("rk-artnet-{n}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let show = dir.join("show.ron");
    std::fs::write(&show, SHOW).expect("show");
    // The node's socket is bound before the sender starts, so its first ArtPoll arrives.
    let node = UdpSocket::bind(SocketAddr::from((node_ip, artnet::PORT))).expect("bind the node");
    node.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let child = Command::new(BIN)
        .arg("run")
        .arg(&show)
        .args(["--headless", "--duration", "30s", "--at", "0s go main"])
        .args(["--dmx-interface", &sender.to_string()])
        // ArtPoll to this node directly: the loopback broadcast would reach only sockets
        // bound to the wildcard address.
        .args(["--artnet-broadcast", &node_ip.to_string()])
        .args(extra)
        .env("ROCKONTROL_STATE_DIR", dir.join("state"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rockontrol run");
    (Run(child), node)
}

/// Waits for the ArtPoll and answers it as a node with one output port on Port-Address 0x123.
fn answer_poll(n: u8, node: &UdpSocket) {
    let (sender, node_ip) = addresses(n);
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no ArtPoll within 30 s");
        let Ok((n, from)) = node.recv_from(&mut buf) else {
            continue;
        };
        if let Ok(ArtPacket::Poll(_)) = artnet::decode(&buf[..n]) {
            assert_eq!(from.ip(), sender, "ArtPoll comes from the DMX interface");
            let reply = ArtPollReply {
                ip: node_ip,
                net_switch: 1,
                sub_switch: 2,
                num_ports: 1,
                port_types: [ArtPollReply::PORT_TYPE_OUTPUT, 0, 0, 0],
                sw_out: [3, 0, 0, 0],
                short_name: "test node".into(),
                long_name: "RocKontrol discovery test node".into(),
                ..ArtPollReply::default()
            };
            let mut bytes = Vec::new();
            reply.encode_into(&mut bytes).expect("encode the reply");
            node.send_to(&bytes, from).expect("send the reply");
            return;
        }
    }
}

#[test]
fn discovered_art_net_nodes_are_polled_and_receive_their_universe() {
    let (_run, node) = start(1, &[]);
    answer_poll(1, &node);
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        assert!(
            Instant::now() < deadline,
            "no ArtDmx for Port-Address 0x123 with slot 1 at 153 within 30 s"
        );
        let Ok(n) = node.recv(&mut buf) else {
            continue;
        };
        if let Ok(ArtPacket::Dmx(dmx)) = artnet::decode(&buf[..n])
            && dmx.port_address.get() == 0x123
            && dmx.data.first() == Some(&153)
        {
            break dmx.data.len();
        }
    };
    assert_eq!(got, 512, "a whole universe");
}

#[test]
fn art_timecode_runs_with_the_show_clock() {
    let (_run, node) = start(2, &["--artnet-timecode", "25"]);
    answer_poll(2, &node);
    let mut buf = [0u8; 1500];
    let mut frames: Vec<u32> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames.len() < 30 {
        assert!(
            Instant::now() < deadline,
            "30 ArtTimeCode packets within 30 s; got {frames:?}"
        );
        let Ok(n) = node.recv(&mut buf) else {
            continue;
        };
        if let Ok(ArtPacket::TimeCode(tc)) = artnet::decode(&buf[..n]) {
            assert_eq!(
                tc.timecode.rate,
                rockontrol_wire::timecode::FrameRate::Ebu25,
                "the rate asked for"
            );
            frames.push(tc.timecode.to_frames());
        }
    }
    assert!(
        frames.windows(2).all(|w| w[1] > w[0]),
        "timecode frames increase: {frames:?}"
    );
    let span = frames[frames.len() - 1] - frames[0];
    assert!(
        (29..=60).contains(&span),
        "30 packets cover about 30 frames of 25 fps (each sent once): {frames:?}"
    );
}
