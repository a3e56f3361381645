//! Numbers past their range (issue 16.9), through the binary as a user or a REST client meets
//! them: `check` names the field and exits 1; the master answers 400 with the reason and keeps
//! running.

mod support;

use std::net::SocketAddr;
use std::process::Command;

use rockontrol_net::client::http_request_blocking;
use support::node::{BIN, KEY, Node, endpoint, free_port, master_addr, temp_dir};

/// A one-dimmer show whose cue 1 has `cue_fields` (e.g. `follow: After(1)`).
fn show(cue_fields: &str, extra: &str) -> String {
    format!(
        r#"(
    name: "ranges",
    {extra}
    universes: [(id: 1)],
    profiles: [(manufacturer: "Test", model: "Dim", channels: [(name: "D", attribute: Intensity)],
                modes: [(name: "1ch", channels: ["D"])])],
    fixtures: [(id: 1, name: "D1", profile: "Test/Dim", mode: "1ch", universe: 1, address: 1)],
    cue_lists: [(name: "main", cues: [
        (number: 1, {cue_fields} values: {{Fixture(1): {{Intensity: 1.0}}}}),
        (number: 2, values: {{Fixture(1): {{Intensity: 0.5}}}}),
    ])],
    playbacks: [(name: "main", cue_list: "main")],
)"#
    )
}

fn check(dir: &std::path::Path, name: &str, text: &str) -> (i32, String) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write show");
    let out = Command::new(BIN)
        .arg("check")
        .arg(&path)
        .env("ROCKONTROL_STATE_DIR", dir.join("state"))
        .output()
        .expect("run rockontrol check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_refuses_times_and_levels_past_their_range_naming_the_field() {
    let dir = temp_dir("check");
    let (code, err) = check(
        &dir,
        "ok.ron",
        &show("fade_in: 86400, follow: After(2),", ""),
    );
    assert_eq!(code, 0, "24 h is the longest legal time: {err}");
    for (fields, extra, names) in [
        (
            "follow: After(99999999999999999999999),",
            "",
            "cue 1 has follow After 1e23 s is longer than",
        ),
        (
            "fade_in: 1e300,",
            "",
            "cue 1 has fade_in 1e300 s is longer than",
        ),
        (
            "fade_out: 86401,",
            "",
            "cue 1 has fade_out 86401.0 s is longer than",
        ),
        ("delay: 1e20,", "", "cue 1 has delay 1e20 s is longer than"),
        ("fade_in: -1,", "", "cue 1 has fade_in -1.0 is not a time"),
        ("", "grand_master: 1e300,", "grand_master 1e300 is outside"),
    ] {
        let (code, err) = check(&dir, "bad.ron", &show(fields, extra));
        assert_eq!(code, 1, "{fields}{extra} is refused: {err}");
        assert!(err.contains(names), "the error names {names:?}: {err}");
    }
}

/// A master process (killed when dropped) and the address it listens on.
struct Master {
    node: Node,
    addr: SocketAddr,
}

impl Master {
    fn start(dir: &std::path::Path) -> Master {
        let port = free_port();
        let config = dir.join("master.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"role": "master", "node_id": "master-01", "listen_port": {port}, "bind": "127.0.0.1",
  "broadcast_enabled": false,
  "managed_nodes": [{{"node_id": "node-02", "ip": "127.0.0.1", "universe_map": [2], "role": "dmx_output"}}]}}"#
            ),
        )
        .expect("master config");
        let show_path = dir.join("show.ron");
        std::fs::write(&show_path, show("fade_in: 1,", "")).expect("show");
        let node = Node::start("master", &config, Some(&show_path), &dir.join("state"));
        let addr = master_addr(&node);
        Master { node, addr }
    }

    fn post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let (status, text) =
            http_request_blocking(&endpoint(self.addr), "POST", path, Some(KEY), Some(body))
                .unwrap_or_else(|e| panic!("POST {path} {body}: {e}"));
        (status, serde_json::from_str(&text).unwrap_or_default())
    }
}

#[test]
fn rest_refuses_fades_and_levels_past_their_range_and_the_master_keeps_running() {
    let dir = temp_dir("rest");
    let mut master = Master::start(&dir);
    let show_command = "/api/nodes/master-01/command";
    let node_command = "/api/nodes/node-02/command";
    let go = r#"{"type": "go", "playback": "main"}"#;
    let (status, reply) = master.post(show_command, go);
    assert_eq!(status, 200, "GO on the master: {reply}");
    for (path, body, reason) in [
        // The seed's shape, and the engine's own, with a fade of 1e300 s.
        (
            show_command,
            r#"{"type": "go", "playback": "main", "fade_time": 1e300}"#,
            "fade_time 1e300 s is longer than",
        ),
        (
            show_command,
            r#"{"type": "go", "playback": "main", "fade": 1e300}"#,
            "fade 1e300 s is longer than",
        ),
        (
            show_command,
            r#"{"type": "cue", "cue_id": 1, "fade_time": -2}"#,
            "fade_time -2.0 is not a time",
        ),
        (
            show_command,
            r#"{"type": "grand_master", "level": 1e300}"#,
            "grand master must be within 0..=1",
        ),
        (
            show_command,
            r#"{"type": "master", "playback": "main", "level": -1}"#,
            "master level -1.0 is outside",
        ),
        // JSON has no NaN: the nearest a client gets is a number past f64, or the word.
        (
            show_command,
            r#"{"type": "go", "fade_time": 1e999}"#,
            "invalid",
        ),
        (
            show_command,
            r#"{"type": "go", "fade_time": NaN}"#,
            "invalid",
        ),
        // Aimed at a receiver: refused before it is queued for the node.
        (
            node_command,
            r#"{"type": "go", "fade_time": 1e300}"#,
            "fade_time 1e300 s is longer than",
        ),
        (
            node_command,
            r#"{"type": "intensity", "level": 2}"#,
            "intensity must be within 0..=1",
        ),
        (
            node_command,
            r#"{"type": "media", "action": "seek", "position": -5}"#,
            "media position -5.0 is not a time",
        ),
    ] {
        let (status, reply) = master.post(path, body);
        assert_eq!(status, 400, "{path} {body} is a bad request: {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(reason),
            "{body}: the reason says {reason:?}: {reply}"
        );
    }
    assert!(
        master.node.child.try_wait().expect("wait").is_none(),
        "the master is still running"
    );
    let (status, reply) = master.post(show_command, go);
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("executed")),
        "the engine still runs commands: {reply}"
    );
    // A show command for one receiver is refused (playbacks are the master's, rig-wide: run on
    // one node it would be undone by the next snapshot), naming where it goes instead; there
    // a 24 h fade is in range.
    let long_go = r#"{"type": "go", "playback": "main", "fade_time": 86400}"#;
    for body in [
        long_go,
        r#"{"type": "cue", "cue_id": 1}"#,
        r#"{"type": "back"}"#,
        r#"{"type": "release", "playback": "main"}"#,
        r#"{"type": "clear"}"#,
    ] {
        let (status, reply) = master.post(node_command, body);
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(
            status == 409 && error.contains("POST /api/command"),
            "{body} for node-02: 409 naming POST /api/command: {status} {reply}"
        );
    }
    let (status, reply) = master.post(
        "/api/command",
        r#"{"type": "cue", "cue_id": 1, "playback": "main", "fade_time": 86400}"#,
    );
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("executed")),
        "the show command runs on the master's engine: {reply}"
    );
    let (status, reply) = master.post(node_command, r#"{"type": "blackout", "on": true}"#);
    assert_eq!(
        status, 202,
        "a node's own output is still one node's: {reply}"
    );
}
