//! OLA's `olad` receives our sACN (multicast, with universe sync) and Art-Net (unicast) and
//! holds exactly the values the engine computed — checked through OLA's own HTTP API.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::ola::{NODE_IP, OLA_IP, Ola};

const BIN: &str = env!("CARGO_BIN_EXE_rockontrol");

fn show() -> String {
    format!(
        r#"(
    name: "OLA interop",
    universes: [
        (id: 1, outputs: [Sacn(sync_universe: 7000)]),
        (id: 2, outputs: [Sacn(priority: 150, sync_universe: 7000)]),
        (id: 3, outputs: [ArtNet(port_address: 3, destination: Unicast(["{OLA_IP}"]))]),
    ],
    profiles: [(manufacturer: "T", model: "Spot",
        channels: [(name: "D", attribute: Intensity), (name: "R", attribute: Red), (name: "P", attribute: Pan, fine: "Pf")],
        modes: [(name: "m", channels: ["D", "R", "P", "Pf"])])],
    fixtures: [
        (id: 1, name: "A", profile: "T/Spot", mode: "m", universe: 1, address: 1),
        (id: 2, name: "B", profile: "T/Spot", mode: "m", universe: 2, address: 509),
        (id: 3, name: "C", profile: "T/Spot", mode: "m", universe: 3, address: 100),
    ],
    cue_lists: [(name: "main", cues: [(number: 1, values: {{
        Fixture(1): {{Intensity: 1.0, Red: Dmx(17), Pan: 0.25}},
        Fixture(2): {{Intensity: 0.5, Red: Dmx(200), Pan: Dmx(4660)}},
        Fixture(3): {{Intensity: Dmx(33), Red: 1.0, Pan: 0.75}},
    }})])],
    playbacks: [(name: "main", cue_list: "main")],
)"#
    )
}

/// The engine's frame for `universe` at tick 1 (after a GO at 0), from `rockontrol render`.
fn rendered(show: &std::path::Path, universe: u16) -> Vec<u8> {
    let out = Command::new(BIN)
        .args([
            "render",
            show.to_str().expect("utf8"),
            "--until",
            "1",
            "--universe",
            &universe.to_string(),
            "--at",
            "0s go main",
        ])
        .output()
        .expect("render");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().expect("a frame");
    last.split(',')
        .skip(3)
        .map(|v| v.parse().expect("slot"))
        .collect()
}

#[test]
fn olad_receives_exactly_what_the_engine_computed() {
    let dir = std::env::temp_dir().join(format!("rk-ola-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("ola.ron");
    std::fs::write(&path, show()).expect("show");
    // OLA universes 1 and 2 take sACN universes 1 and 2; OLA universe 3 takes Art-Net 0:0:3.
    let ola = Ola::start("ola-out", &["11-1-I-0 = 1", "11-1-I-1 = 2", "2-1-I-0 = 3"]);

    let mut node = ola
        .command(BIN)
        .args([
            "run",
            path.to_str().expect("utf8"),
            "--headless",
            "--dmx-interface",
            NODE_IP,
        ])
        .args(["--at", "0s go main", "--duration", "8s"])
        .env("ROCKONTROL_STATE_DIR", dir.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the node in the namespace");
    let expected: Vec<Vec<u8>> = (1..=3).map(|u| rendered(&path, u)).collect();
    assert_eq!(
        expected[1][508..512],
        [128, 200, 0x12, 0x34],
        "the engine's own frame, as a sanity check"
    );
    let deadline = Instant::now() + Duration::from_secs(7);
    let received = loop {
        let got: Vec<Vec<u8>> = (1..=3).map(|u| ola.dmx(u)).collect();
        if got == expected || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = node.kill();
    let _ = node.wait();
    for (i, (got, want)) in received.iter().zip(&expected).enumerate() {
        let diff: Vec<(usize, u8, u8)> = got
            .iter()
            .zip(want)
            .enumerate()
            .filter(|(_, (g, w))| g != w)
            .map(|(s, (g, w))| (s + 1, *g, *w))
            .collect();
        assert!(
            diff.is_empty(),
            "OLA universe {} differs from the engine at (slot, olad, engine): {diff:?}\nolad log:\n{}",
            i + 1,
            ola.log()
        );
    }
}
