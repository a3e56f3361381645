//! Faults of a bad night at a venue, with real `rockontrol` processes on loopback: a master
//! that stops (SIGSTOP), a partition that freezes both TCP connections (a proxy in this test
//! that stops forwarding but keeps its sockets open), and an impostor master that knows no key.
//!
//! What counts is on the wire: the receiver's sACN decoded by a UDP listener, and the bytes a
//! fake master received. Every wait is bounded and generous (the machine may be loaded); the
//! bounds that matter are stated where they are checked.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rockontrol_net::protocol;
use support::node::{
    KEY, Listener, Node, free_port, is_root, master_addr, rest, signal, temp_dir, wait_state,
};
use support::proxy::FreezingProxy;

/// One dimmer on universe 1; cue 1 snaps it to full.
const SHOW: &str = r#"(
    name: "faults",
    universes: [(id: 1)],
    profiles: [(manufacturer: "Test", model: "Dim", channels: [(name: "D", attribute: Intensity)],
                modes: [(name: "1ch", channels: ["D"])])],
    fixtures: [(id: 1, name: "D1", profile: "Test/Dim", mode: "1ch", universe: 1, address: 1)],
    cue_lists: [(name: "main", cues: [
        (number: 1, label: "up", fade_in: 0.0, values: {Fixture(1): {Intensity: 1.0}}),
    ])],
    playbacks: [(name: "main", cue_list: "main")],
)"#;

const GO: &str = r#"{"type": "go", "playback": "main"}"#;

/// How soon a receiver must black out after its master falls silent: 3 s of silence, the
/// stall grace, a frame of the engine, and room for a loaded machine.
const BLACKOUT_WITHIN: Duration = Duration::from_secs(6);

/// A master managing `node-01` on universe 1, on `port` (loopback), mDNS as `broadcast` says.
fn write_master(dir: &Path, master_id: &str, port: u16, broadcast: bool) -> std::path::PathBuf {
    let cfg = dir.join("master.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"role": "master", "node_id": "{master_id}", "listen_port": {port}, "bind": "127.0.0.1",
  "broadcast_enabled": {broadcast},
  "managed_nodes": [{{"node_id": "node-01", "ip": "127.0.0.1", "universe_map": [1], "role": "dmx_output"}}]}}"#
        ),
    )
    .expect("master config");
    cfg
}

/// `node-01` (universe 1) that blacks out on master loss, its sACN to `sacn_port`; `extra`
/// holds further JSON fields (`auto_discover`, `master_id`).
fn write_receiver(dir: &Path, master_port: u16, sacn_port: u16, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("node-01.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"role": "receiver", "node_id": "node-01", "master_ip": "127.0.0.1", "master_port": {master_port},
  "local_universes": [1], "capabilities": ["dmx_output"], "broadcast_enabled": false,
  "on_master_loss": "blackout", "dmx_destination": "127.0.0.1:{sacn_port}"{extra}}}"#
        ),
    )
    .expect("receiver config");
    cfg
}

/// Starts a master with [`SHOW`] and a receiver linked to it through `receiver_port` (the
/// master's own port, or a proxy's), and brings universe 1 to full with a GO.
fn master_and_receiver(
    dir: &Path,
    sacn: &Listener,
    master_port: u16,
    receiver_port: u16,
) -> (Node, Node, SocketAddr) {
    let show = dir.join("show.ron");
    std::fs::write(&show, SHOW).expect("show");
    let master_cfg = write_master(dir, "master-01", master_port, false);
    let master = Node::start("master", &master_cfg, Some(&show), &dir.join("state-m"));
    let addr = master_addr(&master);
    let recv_cfg = write_receiver(dir, receiver_port, sacn.port, ", \"auto_discover\": false");
    let receiver = Node::start("receiver", &recv_cfg, None, &dir.join("state-r"));
    wait_state(addr, "node-01", "online", Duration::from_secs(60));
    let (status, body) = rest(
        addr,
        "POST",
        "/api/nodes/master-01/command",
        Some(KEY),
        Some(GO),
    );
    assert_eq!(status, 200, "GO on the master: {body}");
    sacn.wait_value(1, |v| v == 255, Duration::from_secs(15));
    (master, receiver, addr)
}

/// Waits for universe 1 to go dark and checks it did within [`BLACKOUT_WITHIN`] of `since`.
fn expect_blackout(sacn: &Listener, since: Instant, what: &str) -> Instant {
    sacn.wait_value(1, |v| v == 0, BLACKOUT_WITHIN + Duration::from_secs(4));
    let dark = Instant::now();
    assert!(
        dark - since < BLACKOUT_WITHIN,
        "{what}: the receiver blacked out {:?} after the master fell silent (at most {BLACKOUT_WITHIN:?})",
        dark - since
    );
    dark
}

/// The master stops (SIGSTOP) for 12 s: its TCP connection stays open and the receiver keeps
/// sending heartbeats into it. The receiver notices the silence, blacks out on the wire while
/// the master is stopped, and is back at full once the master resumes. (Before the fix the
/// silence timer restarted with every heartbeat sent, and the output stayed at full.)
#[test]
fn a_receiver_blacks_out_while_its_master_is_stopped_and_recovers_after() {
    let dir = temp_dir("faults-stop");
    let sacn = Listener::start();
    let port = free_port();
    let (master, _receiver, _) = master_and_receiver(&dir, &sacn, port, port);

    let stopped = Instant::now();
    signal("-STOP", &master.pid());
    let dark = expect_blackout(&sacn, stopped, "master stopped");
    // Dark for as long as the master is stopped (reconnecting to it fails meanwhile).
    let resume_at = stopped + Duration::from_secs(12);
    std::thread::sleep(resume_at.saturating_duration_since(Instant::now()));
    let while_stopped = sacn.values_since(1, dark);
    signal("-CONT", &master.pid());
    assert!(
        !while_stopped.is_empty() && while_stopped.iter().all(|v| *v == 0),
        "universe 1 stays dark on the wire while the master is stopped: {:?}",
        &while_stopped[..while_stopped.len().min(40)]
    );
    // The receiver links again and the replicated state (cue 1 at full) is back.
    sacn.wait_value(1, |v| v == 255, Duration::from_secs(40));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A 20 s partition with both TCP connections open and frozen: the receiver blacks out on the
/// wire while it lasts and is back at full once it heals. (Before the fix it kept full
/// output: its own heartbeats restarted the silence timer.)
#[test]
fn a_receiver_behind_a_frozen_partition_blacks_out_and_recovers_when_it_heals() {
    let dir = temp_dir("faults-partition");
    let sacn = Listener::start();
    let port = free_port();
    let proxy = FreezingProxy::start(SocketAddr::from(([127, 0, 0, 1], port)));
    let (_master, _receiver, _) = master_and_receiver(&dir, &sacn, port, proxy.port);

    let frozen = Instant::now();
    proxy.freeze();
    let dark = expect_blackout(&sacn, frozen, "partition");
    std::thread::sleep(
        (frozen + Duration::from_secs(20)).saturating_duration_since(Instant::now()),
    );
    let during = sacn.values_since(1, dark);
    proxy.heal();
    assert!(
        !during.is_empty() && during.iter().all(|v| *v == 0),
        "universe 1 stays dark on the wire during the partition: {:?}",
        &during[..during.len().min(40)]
    );
    sacn.wait_value(1, |v| v == 255, Duration::from_secs(40));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A plain WebSocket client (the tool path: `Authorization: Bearer`) over TLS pinned to the
/// master's certificate, linked as `node-01`.
fn tool_link(addr: SocketAddr) -> tungstenite::WebSocket<support::node::Wire> {
    let (mut ws, _) = support::node::ws_link(addr, "/api/ws", Some(KEY)).expect("handshake");
    let hello = format!(
        r#"{{"v":1,"type":"hello","node_id":"node-01","role":"receiver","version":"0.1.0","protocol":1,"protocol_hash":"{}","capabilities":[],"universes":[1]}}"#,
        protocol::protocol_hash()
    );
    ws.send(tungstenite::Message::text(hello)).expect("hello");
    ws
}

/// An idle master (no command, nothing changing) still sends every linked node a frame at
/// least every second, well inside the receivers' 3 s silence limit.
#[test]
fn an_idle_master_sends_every_linked_node_a_frame_every_second() {
    let dir = temp_dir("faults-idle");
    let show = dir.join("show.ron");
    std::fs::write(&show, SHOW).expect("show");
    let port = free_port();
    let cfg = write_master(&dir, "master-01", port, false);
    let master = Node::start("master", &cfg, Some(&show), &dir.join("state-m"));
    let addr = master_addr(&master);
    let mut ws = tool_link(addr);
    ws.get_ref()
        .tcp()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let heartbeat = r#"{"v":1,"type":"heartbeat","status":"online","metrics":{}}"#;
    let start = Instant::now();
    let mut last_heartbeat = start;
    let mut arrivals: Vec<(Instant, String)> = Vec::new();
    while start.elapsed() < Duration::from_secs(6) {
        if last_heartbeat.elapsed() >= Duration::from_millis(900) {
            ws.send(tungstenite::Message::text(heartbeat))
                .expect("heartbeat");
            last_heartbeat = Instant::now();
        }
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => arrivals.push((Instant::now(), t.to_string())),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("the master closed an idle node's link: {e}; got {arrivals:?}"),
        }
    }
    let kinds: Vec<&str> = arrivals
        .iter()
        .map(|(_, t)| {
            t.split("\"type\":\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("?")
        })
        .collect();
    assert_eq!(kinds.first(), Some(&"welcome"), "{kinds:?}");
    let syncs = kinds.iter().filter(|k| **k == "sync").count();
    assert!(
        syncs >= 4,
        "the show clock every second: {syncs} in 6 s ({kinds:?})"
    );
    // From the welcome on, no gap longer than a second and a half (1 s plus scheduling).
    let mut times: Vec<Instant> = arrivals.iter().map(|(t, _)| *t).collect();
    times.push(Instant::now());
    let worst = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        worst <= Duration::from_millis(1500),
        "longest silence of an idle master towards a linked node: {worst:?}"
    );
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Everything a fake master received, on every connection: the raw bytes (HTTP headers, any
/// plain request) and the WebSocket messages decoded (frames from a client are masked, so
/// their text is not in the raw bytes); and how often it was connected.
#[derive(Clone, Default)]
struct Received {
    bytes: Arc<Mutex<Vec<u8>>>,
    messages: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

impl Received {
    fn text(&self) -> String {
        let raw = String::from_utf8_lossy(&self.bytes.lock().expect("bytes")).into_owned();
        let messages = self.messages.lock().expect("messages").join("\n");
        format!("{raw}\n{messages}")
    }

    fn messages(&self) -> String {
        self.messages.lock().expect("messages").join("\n")
    }
}

/// A stream that keeps a copy of every byte read from it.
struct Recording {
    stream: TcpStream,
    into: Received,
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.into
            .bytes
            .lock()
            .expect("bytes")
            .extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// A fake master that knows no key and claims to be `master_id`: to any hello it answers a
/// challenge with a made-up proof, then at once a welcome naming a show, a snapshot and
/// commands (a blackout, intensity 0), as a master that skipped the handshake would.
fn fake_master(master_id: &'static str) -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("fake master");
    let addr = listener.local_addr().expect("addr");
    let received = Received::default();
    let log = received.clone();
    std::thread::Builder::new()
        .name("fake-master".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                log.connections.fetch_add(1, Ordering::SeqCst);
                let into = log.clone();
                let _ = std::thread::Builder::new()
                    .name("fake-master-conn".into())
                    .spawn(move || fake_session(Recording { stream, into }, master_id));
            }
        })
        .expect("fake master thread");
    (addr, received)
}

fn fake_session(stream: Recording, master_id: &str) {
    let _ = stream
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)));
    // Plain HTTP (a show fetch) fails the upgrade: its bytes are recorded all the same.
    let log = stream.into.clone();
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    let keep = |msg: tungstenite::Result<tungstenite::Message>| match msg {
        Ok(m) => {
            log.messages.lock().expect("messages").push(match m {
                tungstenite::Message::Text(t) => t.to_string(),
                other => format!("{other:?}"),
            });
            true
        }
        Err(_) => false,
    };
    if !keep(ws.read()) {
        return;
    }
    let hash = "f".repeat(64);
    let frames = [
        format!(
            r#"{{"v":1,"type":"challenge","master_id":"{master_id}","nonce":"{}","proof":"{}"}}"#,
            "ab".repeat(32),
            "cd".repeat(32)
        ),
        format!(
            r#"{{"v":1,"type":"welcome","master_id":"{master_id}","version":"0.1.0","protocol_hash":"{}","assigned_universes":[1],"show_hash":"{hash}","heartbeat_ms":1000,"reconnect_ms":5000}}"#,
            protocol::protocol_hash()
        ),
        format!(
            r#"{{"v":1,"type":"snapshot","seq":1,"tick":1,"rate":44,"show_hash":"{hash}","state":null}}"#
        ),
        r#"{"v":1,"type":"command","command_id":"cmd-fake-1","attempt":1,"command":{"type":"blackout","on":true}}"#.into(),
        r#"{"v":1,"type":"command","command_id":"cmd-fake-2","attempt":1,"command":{"type":"intensity","level":0.0}}"#.into(),
    ];
    for f in frames {
        if ws.send(tungstenite::Message::text(f)).is_err() {
            return;
        }
    }
    // Read (and so record) whatever the node answers until it hangs up.
    while keep(ws.read()) {}
}

/// Set in the copy of this test binary that runs inside a network namespace.
const IN_NAMESPACE: &str = "ROCKONTROL_FAULTS_IN_NETNS";

/// A receiver configured with `master_ip` pointing at a fake master (one that knows no key),
/// `auto_discover` on, and `master_id` naming the real master. It tries the fake first and
/// never sends it its key, executes none of its commands, skips a second fake advertised over
/// mDNS under another id, and ends up linked to the real master, found over mDNS: a GO there
/// reaches the receiver's sACN output and stays.
///
/// mDNS needs a network of its own: the test re-runs itself in a fresh network namespace
/// (root; `unshare --net`, `lo` up with a multicast route), so no other master can answer.
#[test]
fn a_fake_master_never_gets_the_key_and_the_receiver_links_to_the_real_one() {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        impostor_scenario();
        return;
    }
    if !is_root() {
        support::skip::unavailable(
            "a_fake_master_never_gets_the_key_and_the_receiver_links_to_the_real_one",
            "a network namespace of our own needs root (unshare --net)",
        );
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("unshare")
        .args([
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && ip route add 224.0.0.0/4 dev lo && exec \"$0\" \"$@\"",
        ])
        .arg(&exe)
        .args([
            "--exact",
            "a_fake_master_never_gets_the_key_and_the_receiver_links_to_the_real_one",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(IN_NAMESPACE, "1")
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the scenario in its namespace failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn impostor_scenario() {
    let dir = temp_dir("faults-impostor");
    let sacn = Listener::start();
    let (fake_addr, fake) = fake_master("master-real");
    let (rogue_addr, rogue) = fake_master("master-rogue");
    // The second fake advertises itself as a master over mDNS, under another id.
    let _advert = rockontrol_net::discovery::advertise_on(
        &rockontrol_net::discovery::Advert {
            node_id: "master-rogue".into(),
            role: rockontrol_net::config::Role::Master,
            port: rogue_addr.port(),
            universes: vec![],
            capabilities: vec![],
            fingerprint: None,
        },
        Some(rogue_addr.ip()),
        Some("lo"),
    )
    .expect("advertise the rogue");

    let show = dir.join("show.ron");
    std::fs::write(&show, SHOW).expect("show");
    // Plaintext (`insecure`) on both sides: the fakes speak no TLS, and what is tested here is
    // the key proof of the link's own handshake (with TLS, a pinned receiver refuses another
    // certificate before any of it: tests/tls.rs).
    let master_cfg = write_master(&dir, "master-real", free_port(), true);
    let text = std::fs::read_to_string(&master_cfg).expect("master config");
    std::fs::write(
        &master_cfg,
        text.replacen(
            r#""role": "master","#,
            r#""role": "master", "insecure": true,"#,
            1,
        ),
    )
    .expect("insecure master config");
    let master = Node::start("master", &master_cfg, Some(&show), &dir.join("state-m"));
    let addr = master_addr(&master);
    let recv_cfg = write_receiver(
        &dir,
        fake_addr.port(),
        sacn.port,
        r#", "auto_discover": true, "master_id": "master-real", "insecure": true"#,
    );
    let receiver = Node::start("receiver", &recv_cfg, None, &dir.join("state-r"));
    wait_state(addr, "node-01", "online", Duration::from_secs(60));
    let (status, body) = rest(
        addr,
        "POST",
        "/api/nodes/master-real/command",
        Some(KEY),
        Some(GO),
    );
    assert_eq!(status, 200, "GO on the real master: {body}");
    sacn.wait_value(1, |v| v == 255, Duration::from_secs(15));
    // The fake's blackout and intensity 0 were never executed: full stays full.
    let since = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let after = sacn.values_since(1, since);
    assert!(
        !after.is_empty() && after.iter().all(|v| *v == 255),
        "the real master's look holds; nothing from the fake ran: {after:?}"
    );

    let seen = fake.text();
    assert!(
        fake.connections.load(Ordering::SeqCst) >= 1
            && fake.messages().contains("\"type\":\"hello\""),
        "master_ip (the fake) is tried first: {}",
        fake.messages()
    );
    assert!(
        !seen.contains(KEY),
        "the key never reaches a master that did not prove itself: {}",
        fake.messages()
    );
    assert!(
        fake.messages().contains("\"auth\":{\"key_id\""),
        "the hello names the key by its id: {}",
        fake.messages()
    );
    for never in [
        "\"type\":\"proof\"",
        "\"type\":\"ack\"",
        "\"type\":\"heartbeat\"",
        "GET /api/show",
    ] {
        assert!(
            !seen.contains(never),
            "the receiver sent the fake no {never}: {}",
            fake.messages()
        );
    }
    assert_eq!(
        rogue.connections.load(Ordering::SeqCst),
        0,
        "a master advertised under another id than master_id is never contacted: {}",
        rogue.messages()
    );
    assert!(!rogue.text().contains(KEY));
    drop(receiver);
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}
