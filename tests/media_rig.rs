//! Media playback across the rig (issue 14): a master and two receivers as real processes on
//! loopback, a clip made here by ffmpeg (each frame carries its number as a block code),
//! distributed by the library, decoded live by GStreamer on each receiver, composited (CPU
//! reference) and captured at chosen refreshes with `--media-capture`.
//!
//! Media commands go through `POST /api/command` only; every expectation is computed here
//! from the show time the master answered (`at_ns`) and the refresh's show time,
//! `⌊(t − t_start) · fps⌋`, and compared with the frame number read back from the pixels.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rockontrol_media::testclip::{Codec, read_png_frame, write_test_clip};
use rockontrol_show::FrameRate;
use serde_json::{Value, json};
use support::node::{BIN, KEY, Node, Wire, node_status, rest, temp_dir, ws_link};
use support::skip;

const S: u64 = 1_000_000_000;
/// The clip: 29.97 fps (30000/1001), 750 frames; outputs 25 Hz, so content frame boundaries
/// fall between refreshes and a frame picked for any time but the refresh's own shows.
const FPS_NUM: u64 = 30_000;
const FPS_DEN: u64 = 1001;
const FRAMES: u64 = 750;
/// Outputs and clip 160×96 (the block code needs 128×16).
const W: u32 = 160;
const H: u32 = 96;
/// Show time of refresh `k` of a 25 Hz output: k · 40 ms.
const REFRESH_NS: u64 = S / 25;
/// Every 3rd refresh is captured (8⅓ pictures a second per output): 120 ms is 3.6 content
/// frames, so the captured refreshes fall at every phase of the content frames (every 5th,
/// 200 ms ≈ 6 frames, would sample nearly one phase).
const EVERY: u64 = 3;

/// The frame `position_ns` into the clip, ⌊position · 30000/1001⌋, looped; written out here
/// (not the crate's timing code).
fn frame(position_ns: u64) -> u64 {
    (u128::from(position_ns) * u128::from(FPS_NUM) / (u128::from(FPS_DEN) * u128::from(S))) as u64
        % FRAMES
}

/// ⌊(t − start) · fps⌋ looped over the clip.
fn expected(t: u64, start: u64) -> Option<u64> {
    t.checked_sub(start).map(frame)
}

fn receiver_json(node: &str, port: u16) -> String {
    format!(
        r#"{{"role": "receiver", "node_id": "{node}", "master_ip": "127.0.0.1", "master_port": {port},
  "local_universes": [], "capabilities": ["media_playback"], "auto_discover": false,
  "broadcast_enabled": false, "dmx_destination": "127.0.0.1:9"}}"#
    )
}

/// `POST /api/command` with a media command; the master's answer (`result.at_ns`, `now_ns`).
fn media(master: SocketAddr, body: Value) -> Value {
    let (status, answer) = rest(
        master,
        "POST",
        "/api/command",
        Some(KEY),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{body} → {answer}");
    answer["result"].clone()
}

/// Every captured refresh of one output: refresh index → frame number read from the pixels
/// (`None`: black, nothing shown).
fn captured(dir: &Path) -> BTreeMap<u64, Option<u64>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.parse::<u64>().ok()?, p)))
        .filter_map(|(k, p)| {
            // A picture being written is skipped (read again on the next look).
            read_png_frame(&p).ok().map(|f| (k, f.map(u64::from)))
        })
        .collect()
}

fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The layer `layer` in a node's status.
fn layer(status: &Value, layer: &str) -> Value {
    status["playback"]["layers"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["layer"] == layer))
        .cloned()
        .unwrap_or(Value::Null)
}

fn start_receiver(dir: &Path, node: &str, port: u16, capture: &Path) -> Node {
    let cfg = dir.join(format!("{node}.json"));
    std::fs::write(&cfg, receiver_json(node, port)).expect("config");
    let every = EVERY.to_string();
    Node::start_args(
        "receiver",
        &cfg,
        None,
        &dir.join(node),
        &[
            OsStr::new("--media-capture"),
            capture.as_os_str(),
            OsStr::new("--media-capture-every"),
            OsStr::new(&every),
            // Decoders open and fill 2.5 s before a clip starts (the heartbeat is 1 Hz).
            OsStr::new("--media-preroll-ms"),
            OsStr::new("2500"),
        ],
    )
}

/// Asserts every captured refresh of `dir` from `from_k` on shows `want(t_k)`; returns how
/// many pictures were checked.
fn check_all(dir: &Path, from_k: u64, want: impl Fn(u64) -> Option<u64>) -> usize {
    let pictures = captured(dir);
    let mut n = 0;
    for (k, frame) in pictures.range(from_k..) {
        let t = k * REFRESH_NS;
        assert_eq!(
            *frame,
            want(t),
            "{}: refresh {k} (show time {t} ns) shows frame {frame:?}",
            dir.display()
        );
        n += 1;
    }
    n
}

/// The test clip ("count") made in `dir` and added to the master's library under `state`:
/// its id, or `None` after a loud skip when ffmpeg is missing.
fn clip_in_library(test: &str, dir: &Path, state: &Path) -> Option<String> {
    let clip = dir.join("count.mp4");
    if let Err(e) = write_test_clip(&clip, FRAMES as u32, FrameRate::NTSC, W, H, Codec::H264) {
        skip::unavailable(test, &format!("{e}; `./dev setup` installs ffmpeg"));
        return None;
    }
    let out = Command::new(BIN)
        .args(["media", "add"])
        .arg(&clip)
        .arg("--library")
        .arg(state.join("media"))
        .output()
        .expect("rockontrol media add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(stdout.split_whitespace().next().expect("an id").to_string())
}

#[test]
fn media_commands_play_the_same_frame_on_two_receivers_across_late_join_pause_and_seek() {
    let dir = temp_dir("media-rig");
    let state = dir.join("state-master");
    let Some(id) = clip_in_library("media_commands_play_the_same_frame…", &dir, &state) else {
        return;
    };
    // Each node holds what the show places on its outputs (issue 13's manifests): the cue
    // list "wall-1" (never run) places the clip on rx-1's layer, which media commands then play.
    let show = dir.join("show.ron");
    std::fs::write(
        &show,
        format!(
            r#"(name: "rig", universes: [(id: 1)], clips: [(name: "count", id: "{id}")],
  cue_lists: [(name: "main", cues: [(number: 1)]), (name: "wall-1", cues: [(number: 1)])],
  playbacks: [(name: "main", cue_list: "main")],
  media: (
    outputs: [
      (name: "wall-1", node: "rx-1", width: {W}, height: {H}, rate: "25"),
      (name: "wall-2", node: "rx-2", width: {W}, height: {H}, rate: "25"),
    ],
    layers: [(name: "a", output: "wall-1", end: Loop), (name: "b", output: "wall-2", end: Loop)],
    cues: [
      (cue_list: "main", cue: 1, actions: [Play(layer: "b", clip: "count", from: Some(10.0))]),
      (cue_list: "wall-1", cue: 1, actions: [Play(layer: "a", clip: "count")]),
    ],
  ))"#
        ),
    )
    .expect("show");
    let (_master, port, addr) = Node::start_media_master(&dir, &show, &state);
    let (cap1, cap2, cap2b) = (dir.join("cap-1"), dir.join("cap-2"), dir.join("cap-2b"));
    let _rx1 = start_receiver(&dir, "rx-1", port, &cap1);
    let mut rx2 = start_receiver(&dir, "rx-2", port, &cap2);
    wait_until("both receivers ready", Duration::from_secs(60), || {
        let (_, st) = rest(addr, "GET", "/api/media/status", Some(KEY), None);
        let ready = |n: &str| st["nodes"][n]["ready"].as_bool() == Some(true);
        (ready("rx-1") && ready("rx-2")).then_some(())
    });

    // A command for one receiver is refused: media is rig-wide state.
    let (status, body) = rest(
        addr,
        "POST",
        "/api/nodes/rx-1/command",
        Some(KEY),
        Some(r#"{"type": "media", "action": "stop", "layer": "a"}"#),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("/api/command")),
        "{body}"
    );
    // A bad layer is refused with its name.
    let (status, body) = rest(
        addr,
        "POST",
        "/api/command",
        Some(KEY),
        Some(r#"{"type": "media", "action": "play", "layer": "c", "clip": "count"}"#),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("\"c\"")),
        "{body}"
    );

    // (a) Play on both layers at one show time 3 s ahead: both receivers arm first.
    let now = media(
        addr,
        json!({"type": "media", "action": "stop", "layer": "a"}),
    )["now_ns"]
        .as_u64()
        .expect("now_ns");
    let start = now + 3 * S;
    let at = start as f64 / S as f64;
    for l in ["a", "b"] {
        let r = media(
            addr,
            json!({"type": "media", "action": "play", "layer": l, "clip": "count", "at": at}),
        );
        assert_eq!(r["at_ns"].as_u64(), Some(start), "{r}");
    }
    let last = std::cell::RefCell::new(Value::Null);
    let start_wait = Instant::now();
    let armed = wait_until(
        "rx-1 reports layer a armed",
        Duration::from_secs(10),
        || {
            let st = node_status(addr, "rx-1");
            let a = layer(&st, "a");
            if start_wait.elapsed() > Duration::from_secs(9) {
                eprintln!("rx-1 status: {st}");
            }
            *last.borrow_mut() = st.clone();
            (a["armed"] == true && a["clip"] == "count").then_some(st)
        },
    );
    drop(last);
    let armed_at = armed["playback"]["show_ns"].as_u64().expect("show_ns");
    assert!(
        armed_at < start,
        "armed before the start ({armed_at} < {start}): {armed}"
    );
    // Once playing, the node's status says the frame the show clock chose.
    let st = wait_until("rx-2 plays", Duration::from_secs(15), || {
        let st = node_status(addr, "rx-2");
        layer(&st, "b")["frame"].as_u64().is_some().then_some(st)
    });
    let b = layer(&st, "b");
    let show_ns = st["playback"]["show_ns"].as_u64().expect("show_ns");
    assert_eq!(b["clip"], "count", "{st}");
    assert_eq!(b["start_ns"].as_u64(), Some(start), "{st}");
    // The status frame is for the last refresh before the report.
    let k = show_ns / REFRESH_NS;
    assert_eq!(b["frame"].as_u64(), expected(k * REFRESH_NS, start), "{st}");
    assert!(
        // The software decoder decodebin plugged in (not decodebin itself).
        b["decoder"]
            .as_str()
            .is_some_and(|d| d.starts_with("avdec_") || d == "openh264dec"),
        "{st}"
    );
    assert_eq!(
        st["playback"]["outputs"][0]["refresh_ns"].as_u64(),
        Some(REFRESH_NS)
    );

    // (b) Both receivers: the same frame for the same refresh, the one the show clock gives.
    std::thread::sleep(Duration::from_secs(3));
    let one = captured(&cap1.join("wall-1"));
    let two = captured(&cap2.join("wall-2"));
    let common: Vec<u64> = one
        .keys()
        .filter(|k| two.contains_key(k) && **k * REFRESH_NS >= start)
        .copied()
        .collect();
    assert!(
        common.len() >= 10,
        "{} common refreshes: {one:?} {two:?}",
        common.len()
    );
    for k in &common {
        assert_eq!(one[k], two[k], "refresh {k}");
        assert_eq!(one[k], expected(k * REFRESH_NS, start), "refresh {k}");
    }
    let n1 = check_all(&cap1.join("wall-1"), 0, |t| expected(t, start));
    let n2 = check_all(&cap2.join("wall-2"), 0, |t| expected(t, start));
    eprintln!(
        "same frame on both receivers at {} refreshes; {n1} and {n2} pictures as expected",
        common.len()
    );

    // (c) Late join: rx-2 is killed, a cue GO (over REST) plays the clip on its layer from
    // 10 s in while it is down, and rx-2, started again, shows the GO's frames at once: the
    // GO reached it in the master's media log, not as an event it missed.
    rx2.kill();
    let (status, go) = rest(
        addr,
        "POST",
        "/api/command",
        Some(KEY),
        Some(r#"{"type": "go", "playback": "main"}"#),
    );
    assert_eq!(status, 200, "{go}");
    let tick = go["tick"].as_u64().expect("the GO's tick");
    // Tick k at the show's 44 Hz is show time ⌈k · 10⁹ / 44⌉; an operator's GO starts its
    // media one pre-roll later (the master's default, 150 ms), its lighting on the tick.
    let go_ns = (tick * S).div_ceil(44) + 150_000_000;
    let after_go = |t: u64| -> Option<u64> {
        if t < go_ns {
            expected(t, start)
        } else {
            Some(frame(t - go_ns + 10 * S))
        }
    };
    let rx2b = start_receiver(&dir, "rx-2", port, &cap2b);
    let late = wait_until("rx-2 captures again", Duration::from_secs(30), || {
        let c = captured(&cap2b.join("wall-2"));
        (c.len() >= 10).then_some(c)
    });
    let first = late.keys().next().copied().expect("a refresh");
    assert!(
        first * REFRESH_NS > go_ns
            && after_go(first * REFRESH_NS).is_some_and(|f| f > frame(10 * S)),
        "rejoined after the GO, well into the clip: {late:?}"
    );
    let n = check_all(&cap2b.join("wall-2"), 0, after_go);
    eprintln!(
        "rx-2 rejoined at refresh {first} (frame {:?}); {n} pictures as expected",
        after_go(first * REFRESH_NS)
    );

    // (d) Pause, seek while paused, resume: over REST, seen in rx-1's pictures.
    let p = media(
        addr,
        json!({"type": "media", "action": "pause", "layer": "a"}),
    )["at_ns"]
        .as_u64()
        .expect("pause at_ns");
    let seek_at = p + S;
    let resume_at = p + 2 * S;
    media(
        addr,
        json!({"type": "media", "action": "seek", "layer": "a", "position": 2.0, "at": seek_at as f64 / S as f64}),
    );
    media(
        addr,
        json!({"type": "media", "action": "play", "layer": "a", "at": resume_at as f64 / S as f64}),
    );
    let frozen = expected(p, start).expect("playing when paused");
    let want = |t: u64| -> Option<u64> {
        if t < p {
            expected(t, start)
        } else if t < seek_at {
            Some(frozen)
        } else if t < resume_at {
            Some(frame(2 * S))
        } else {
            Some(frame(t - resume_at + 2 * S))
        }
    };
    wait_until(
        "rx-1 captures after the resume",
        Duration::from_secs(20),
        || {
            captured(&cap1.join("wall-1"))
                .keys()
                .any(|k| k * REFRESH_NS > resume_at + S)
                .then_some(())
        },
    );
    let pictures = captured(&cap1.join("wall-1"));
    let in_range = |lo: u64, hi: u64| {
        pictures
            .keys()
            .filter(|k| (lo..hi).contains(&(**k * REFRESH_NS)))
            .count()
    };
    assert!(
        in_range(p, seek_at) >= 2,
        "paused refreshes captured: {pictures:?}"
    );
    assert!(
        in_range(seek_at, resume_at) >= 2,
        "seeked refreshes captured: {pictures:?}"
    );
    assert!(
        in_range(resume_at, resume_at + S) >= 2,
        "resumed refreshes captured: {pictures:?}"
    );
    let n = check_all(&cap1.join("wall-1"), 0, want);
    eprintln!(
        "pause/seek/resume: {n} pictures as expected (paused {}, seeked {}, resumed {})",
        in_range(p, seek_at),
        in_range(seek_at, resume_at),
        in_range(resume_at, resume_at + S)
    );
    let st = node_status(addr, "rx-1");
    let a = layer(&st, "a");
    assert_eq!(a["paused"], false, "{st}");
    assert!(a["shown"].as_u64().is_some_and(|n| n > 100), "{st}");
    eprintln!("rx-1 layer a: {a}");
    // Every play, pause, seek and resume was scheduled within the pre-roll: no refresh found
    // its decoder without a frame (refreshes the loaded node never composed are `skipped`).
    let missed = a["missed"].as_u64().expect("missed");
    let skipped = a["skipped"].as_u64().expect("skipped");
    assert_eq!(missed - skipped, 0, "{a}");
    drop(rx2b);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tool's link to `GET /api/control` with the control key (reads time out after 20 s).
fn control_link(addr: SocketAddr, key: &str) -> tungstenite::WebSocket<Wire> {
    let (ws, _) = ws_link(addr, "/api/control", Some(key)).expect("upgrade");
    ws.get_ref()
        .tcp()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    ws
}

/// The next text frame as JSON; `None` when the link closed.
fn next_frame(ws: &mut tungstenite::WebSocket<Wire>) -> Option<Value> {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                return Some(serde_json::from_str(&t).expect("JSON from the master"));
            }
            Ok(tungstenite::Message::Close(_)) => return None,
            Ok(_) => continue,
            Err(
                tungstenite::Error::ConnectionClosed
                | tungstenite::Error::AlreadyClosed
                | tungstenite::Error::Protocol(_),
            ) => return None,
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::ConnectionReset
                    || e.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                return None;
            }
            Err(e) => panic!("control link: {e}"),
        }
    }
}

/// Sends `frame` and returns the reply with `id` (status, body); state events that come
/// meanwhile go to `events`.
fn ask(
    ws: &mut tungstenite::WebSocket<Wire>,
    frame: tungstenite::Message,
    id: &Value,
    events: &mut Vec<Value>,
) -> (u16, Value) {
    ws.send(frame).expect("send");
    loop {
        let v = next_frame(ws).expect("a reply before the link closed");
        if v["event"] == "state" {
            events.push(v);
            continue;
        }
        if &v["id"] == id {
            let status = v["status"].as_u64().expect("a status") as u16;
            return (status, v["body"].clone());
        }
        panic!("a reply to another request: {v} (waiting for {id})");
    }
}

/// A command over the control link: `{"id", "command": body}` → (status, body).
fn command_ws(
    ws: &mut tungstenite::WebSocket<Wire>,
    id: u64,
    body: Value,
    events: &mut Vec<Value>,
) -> (u16, Value) {
    let frame = json!({"id": id, "command": body}).to_string();
    ask(ws, tungstenite::Message::text(frame), &json!(id), events)
}

/// A node's status in a pushed state event.
fn pushed<'a>(event: &'a Value, node: &str) -> Option<&'a Value> {
    event["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["node_id"] == node)
}

/// Commands over the control WebSocket take the REST path: the GO gate's 409 (the same body
/// as REST), a media play that the receiver then renders (frames read from its pictures) and
/// reports (pushed state), bad frames answered 400 with the link going on, and the bounds
/// (rate → 429, ten bad frames or an oversized one → closed). The master's own output's
/// playback shows in its status and in the pushed state like a receiver's.
#[test]
fn commands_over_the_control_websocket_play_media_and_push_state() {
    let dir = temp_dir("media-ws");
    let state = dir.join("state-master");
    let Some(id) = clip_in_library("commands_over_the_control_websocket…", &dir, &state) else {
        return;
    };
    let show = dir.join("show.ron");
    std::fs::write(
        &show,
        format!(
            r#"(name: "ws", universes: [(id: 1)], clips: [(name: "count", id: "{id}")],
  cue_lists: [(name: "main", cues: [(number: 1)])],
  playbacks: [(name: "main", cue_list: "main")],
  media: (
    outputs: [
      (name: "wall-1", node: "rx-1", width: {W}, height: {H}, rate: "25"),
      (name: "wall-m", node: "master-01", width: {W}, height: {H}, rate: "25"),
    ],
    layers: [(name: "a", output: "wall-1", end: Loop), (name: "m", output: "wall-m", end: Loop)],
    cues: [(cue_list: "main", cue: 1, actions: [Play(layer: "a", clip: "count")])],
  ))"#
        ),
    )
    .expect("show");
    let (_master, port, addr) = Node::start_media_master(&dir, &show, &state);
    let mut events = Vec::new();

    // No key: the upgrade is refused.
    let refused =
        tungstenite::client::client(format!("ws://{addr}/api/control"), Wire::connect(addr));
    assert!(
        matches!(&refused, Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) if r.status() == 401),
        "{refused:?}"
    );
    let mut ws = control_link(addr, KEY);

    // The GO gate: rx-1 has not reported its clip; the 409 over the link is REST's answer.
    let go = json!({"type": "go", "playback": "main"});
    let (status, body) = command_ws(&mut ws, 1, go.clone(), &mut events);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["media_not_ready"][0]["node"], "rx-1", "{body}");
    assert_eq!(body["media_not_ready"][0]["clip"], "count", "{body}");
    let (rest_status, rest_body) = rest(
        addr,
        "POST",
        "/api/command",
        Some(KEY),
        Some(&go.to_string()),
    );
    assert_eq!(
        (rest_status, &rest_body),
        (409, &body),
        "REST and WebSocket answer alike"
    );

    // Garbage and binary frames: a 400 saying what is wrong; the link goes on.
    let (status, body) = ask(
        &mut ws,
        tungstenite::Message::text("{not json"),
        &Value::Null,
        &mut events,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("not JSON")),
        "{body}"
    );
    let (status, body) = ask(
        &mut ws,
        tungstenite::Message::binary(vec![1u8, 2, 3]),
        &Value::Null,
        &mut events,
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = command_ws(
        &mut ws,
        2,
        json!({"type": "media", "action": "play", "layer": "nope", "clip": "count"}),
        &mut events,
    );
    assert_eq!(status, 422, "a bad layer is named: {body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("\"nope\"")),
        "{body}"
    );

    // rx-1 joins and fetches the clip; the state is pushed to the subscriber.
    let cap = dir.join("cap-1");
    let _rx1 = start_receiver(&dir, "rx-1", port, &cap);
    wait_until("rx-1 ready", Duration::from_secs(60), || {
        let (_, st) = rest(addr, "GET", "/api/media/status", Some(KEY), None);
        (st["nodes"]["rx-1"]["ready"].as_bool() == Some(true)).then_some(())
    });
    let sub = json!({"id": "sub", "subscribe": {"interval_ms": 200}}).to_string();
    let (status, body) = ask(
        &mut ws,
        tungstenite::Message::text(sub),
        &json!("sub"),
        &mut events,
    );
    assert_eq!(
        (status, body["subscribed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );

    // Play on rx-1's layer and on the master's own layer, 3 s ahead, over the link.
    let (status, body) = command_ws(
        &mut ws,
        3,
        json!({"type": "media", "action": "stop", "layer": "a"}),
        &mut events,
    );
    assert_eq!(status, 200, "{body}");
    let start = body["result"]["now_ns"].as_u64().expect("now_ns") + 3 * S;
    let at = start as f64 / S as f64;
    for (n, layer) in [(4, "a"), (5, "m")] {
        let (status, body) = command_ws(
            &mut ws,
            n,
            json!({"type": "media", "action": "play", "layer": layer, "clip": "count", "at": at}),
            &mut events,
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "executed", "{body}");
        assert_eq!(body["result"]["at_ns"].as_u64(), Some(start), "{body}");
    }

    // The pushed state shows both playing, with the frame the show clock gives.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (rx_layer, master_layer) = loop {
        assert!(
            Instant::now() < deadline,
            "no pushed state with both layers playing: {events:?}"
        );
        let event = next_frame(&mut ws).expect("a state push");
        assert_eq!(event["event"], "state", "{event}");
        let l = |node: &str, layer: &str| {
            pushed(&event, node).map(|n| {
                (
                    n["playback"]["show_ns"].as_u64(),
                    n["playback"]["layers"]
                        .as_array()
                        .and_then(|ls| ls.iter().find(|l| l["layer"] == layer).cloned())
                        .unwrap_or(Value::Null),
                )
            })
        };
        if let (Some(a), Some(m)) = (l("rx-1", "a"), l("master-01", "m"))
            && a.1["frame"].is_u64()
            && m.1["frame"].is_u64()
        {
            break (a, m);
        }
    };
    for (node, (show_ns, layer)) in [("rx-1", &rx_layer), ("master-01", &master_layer)] {
        let show_ns = show_ns.expect("show_ns");
        assert_eq!(layer["clip"], "count", "{node}: {layer}");
        assert_eq!(layer["start_ns"].as_u64(), Some(start), "{node}: {layer}");
        let k = show_ns / REFRESH_NS;
        assert_eq!(
            layer["frame"].as_u64(),
            expected(k * REFRESH_NS, start),
            "{node}: the frame of the last refresh: {layer}"
        );
    }
    // The master's status over REST carries its own output, as a receiver's does.
    let own = node_status(addr, "master-01");
    assert_eq!(own["playback"]["outputs"][0]["output"], "wall-m", "{own}");
    assert_eq!(layer(&own, "m")["clip"], "count", "{own}");

    // What rx-1 renders is what the command over the link said.
    wait_until("rx-1 captures 1 s of play", Duration::from_secs(20), || {
        captured(&cap.join("wall-1"))
            .keys()
            .any(|k| k * REFRESH_NS > start + S)
            .then_some(())
    });
    let pictures = captured(&cap.join("wall-1"));
    let playing = pictures
        .keys()
        .filter(|k| **k * REFRESH_NS >= start)
        .count();
    assert!(playing >= 5, "pictures after the start: {pictures:?}");
    let n = check_all(&cap.join("wall-1"), 0, |t| expected(t, start));
    eprintln!("control link: {n} pictures as expected ({playing} while playing)");

    // Unsubscribed: no more pushes.
    let unsub = json!({"id": "u", "unsubscribe": true}).to_string();
    let (status, _) = ask(
        &mut ws,
        tungstenite::Message::text(unsub),
        &json!("u"),
        &mut events,
    );
    assert_eq!(status, 200);

    // The rate bound: a burst of 100, then 50 a second; more are answered 429 (300 requests
    // take well under the 4 s that would refill 200 tokens).
    let mut answered = BTreeMap::<u16, usize>::new();
    for i in 0..300u64 {
        let (status, _) = command_ws(&mut ws, 100 + i, json!({}), &mut events);
        *answered.entry(status).or_default() += 1;
    }
    assert!(
        answered.get(&400).is_some_and(|n| *n >= 100),
        "{answered:?}"
    );
    assert!(answered.get(&429).is_some_and(|n| *n >= 1), "{answered:?}");

    // Ten bad frames close the link.
    let mut ws2 = control_link(addr, KEY);
    for _ in 0..10 {
        let _ = ws2.send(tungstenite::Message::text("garbage"));
    }
    let mut bad = 0;
    while let Some(v) = next_frame(&mut ws2) {
        assert_eq!(v["status"], 400, "{v}");
        bad += 1;
    }
    assert_eq!(bad, 10, "each bad frame answered, then the link closed");

    // An oversized frame closes the link, saying why.
    let mut ws3 = control_link(addr, KEY);
    let huge = json!({"id": 1, "command": {"pad": "x".repeat(100_000)}}).to_string();
    let _ = ws3.send(tungstenite::Message::text(huge));
    let last = next_frame(&mut ws3);
    assert!(
        last.as_ref().is_none_or(|v| v["status"] == 413
            && v["body"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("limit"))),
        "{last:?}"
    );
    assert!(
        next_frame(&mut ws3).is_none(),
        "closed after an oversized frame"
    );

    let _ = std::fs::remove_dir_all(&dir);
}
