//! The headless receiver build (`cargo build --no-default-features`: no windows, no GPU) is a
//! working receiver, and links no rendering.
//!
//! `./dev test` builds it before the tests and copies it to `target/headless/rockontrol`;
//! `$ROCKONTROL_HEADLESS_BIN` points this test at it. Without it the test skips (and fails
//! under CI, which must run it).

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use support::node::{
    BIN, KEY, Listener, Node, free_port, master_addr, master_config, receiver_config, rest,
    temp_dir, wait_state,
};
use support::skip;

/// One dimmer on universe 1; cue 1 at 100 %, cue 2 at 40 %.
const SHOW: &str = r#"(
    name: "headless",
    universes: [(id: 1)],
    profiles: [(manufacturer: "Test", model: "Dim", channels: [(name: "D", attribute: Intensity)],
                modes: [(name: "1ch", channels: ["D"])])],
    fixtures: [(id: 1, name: "D1", profile: "Test/Dim", mode: "1ch", universe: 1, address: 1)],
    cue_lists: [(name: "main", cues: [
        (number: 1, label: "full", fade_in: 0.0, values: {Fixture(1): {Intensity: 1.0}}),
        (number: 2, label: "low", fade_in: 0.0, values: {Fixture(1): {Intensity: 0.4}}),
    ])],
    playbacks: [(name: "main", cue_list: "main")],
)"#;

/// Crates of the windowed/GPU build, as their names appear in a binary that links them
/// (symbols and panic locations).
const RENDERING: &[&str] = &["wgpu_core", "wgpu_hal", "winit", "bevy_render", "bevy_egui"];

/// A show with one media output and no clip needed to refuse.
const MEDIA_SHOW: &str = r#"(
    name: "media",
    cue_lists: [(name: "main", cues: [(number: 1)])],
    playbacks: [(name: "main", cue_list: "main")],
    media: (
        outputs: [(name: "wall", node: "node-01", width: 32, height: 18, rate: "30")],
        layers: [(name: "bg", output: "wall")],
    ),
)"#;

fn links(binary: &[u8], name: &str) -> bool {
    binary.windows(name.len()).any(|w| w == name.as_bytes())
}

fn post(master: SocketAddr, path: &str, body: &str, expect: u16) {
    let (status, reply) = rest(master, "POST", path, Some(KEY), Some(body));
    assert_eq!(status, expect, "POST {path} {body}: {reply}");
}

#[test]
fn the_headless_build_links_no_rendering_and_runs_as_a_receiver() {
    let Some(headless) = std::env::var_os("ROCKONTROL_HEADLESS_BIN").map(PathBuf::from) else {
        skip::unavailable(
            "the headless receiver test",
            "$ROCKONTROL_HEADLESS_BIN is not set (`./dev test` builds target/headless/rockontrol \
             with --no-default-features and sets it)",
        );
        return;
    };
    let binary = std::fs::read(&headless)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", headless.display()));
    let full = std::fs::read(BIN).expect("the full binary");
    for name in RENDERING {
        assert!(
            links(&full, name),
            "the full build links {name} (else this check proves nothing)"
        );
        assert!(
            !links(&binary, name),
            "the headless build {} links {name}",
            headless.display()
        );
    }

    // Media pictures need the GPU compositor: refused, naming the feature.
    let dir = temp_dir("headless");
    let media_show = dir.join("media.ron");
    std::fs::write(&media_show, MEDIA_SHOW).expect("media show");
    let out = std::process::Command::new(&headless)
        .arg("render")
        .arg(&media_show)
        .args(["--until", "1s", "--png-dir"])
        .arg(dir.join("png"))
        .output()
        .expect("run render");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("without the `gpu` feature"),
        "render --png-dir refuses with the feature named: {err}"
    );

    // A full master; the headless binary as its receiver, sending sACN to this test.
    let sacn = Listener::start();
    let port = free_port();
    let show = dir.join("show.ron");
    std::fs::write(&show, SHOW).expect("show");
    let master_cfg = dir.join("master.json");
    std::fs::write(&master_cfg, master_config(port, 1)).expect("master config");
    let master = Node::start("master", &master_cfg, Some(&show), &dir.join("state-m"));
    let addr = master_addr(&master);
    let cfg = dir.join("node-01.json");
    std::fs::write(&cfg, receiver_config(1, port, sacn.port, "hold")).expect("config");
    let receiver = Node::start_bin(
        &headless,
        "receiver",
        &cfg,
        None,
        &dir.join("state-1"),
        Some(KEY),
        120,
    );
    receiver.wait_connected("master-01", &[1], Duration::from_secs(30));
    wait_state(addr, "node-01", "online", Duration::from_secs(30));

    // Show commands replicated from the master, then a node command: each on the wire.
    let steps = [
        (
            "/api/command",
            r#"{"type": "go", "playback": "main"}"#,
            200,
            255,
        ),
        (
            "/api/command",
            r#"{"type": "go", "playback": "main"}"#,
            200,
            102,
        ),
        (
            "/api/nodes/node-01/command",
            r#"{"type": "blackout", "on": true}"#,
            202,
            0,
        ),
    ];
    for (path, body, status, value) in steps {
        post(addr, path, body, status);
        sacn.wait_value(1, |v| v == value, Duration::from_secs(10));
    }
    drop(receiver);
    drop(master);
}
