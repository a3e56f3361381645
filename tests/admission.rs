//! How a real master admits nodes and bounds its connections (issue 10 defects 4 and 5,
//! issue 16 items 6 and 8): real `rockontrol` processes on loopback, sACN decoded by a UDP
//! listener in the test. Every wait is bounded.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rockontrol_net::client::probe_blocking;
use support::node::{
    KEY, Node, endpoint, free_port, master_addr, node_status as status, rest, temp_dir, wait_state,
};

fn master_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let path = dir.join("master.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"role": "master", "node_id": "master-01", "listen_port": {port}, "bind": "127.0.0.1",
  "broadcast_enabled": false{extra},
  "managed_nodes": [{{"node_id": "node-01", "ip": "127.0.0.1", "universe_map": [1], "role": "dmx_output"}}]}}"#
        ),
    )
    .expect("master config");
    path
}

fn receiver_config(dir: &Path, id: &str, universe: u16, port: u16, sacn_port: u16) -> PathBuf {
    let path = dir.join(format!("{id}.json"));
    std::fs::write(
        &path,
        format!(
            r#"{{"role": "receiver", "node_id": "{id}", "master_ip": "127.0.0.1", "master_port": {port},
  "local_universes": [{universe}], "capabilities": ["dmx_output"], "auto_discover": false,
  "broadcast_enabled": false, "dmx_destination": "127.0.0.1:{sacn_port}"}}"#
        ),
    )
    .expect("receiver config");
    path
}

/// A hello as `node_id` for universe `universe`, as a receiver sends it.
fn hello(node_id: &str, version: &str, universe: u16) -> String {
    format!(
        r#"{{"v":1,"type":"hello","node_id":"{node_id}","role":"receiver","version":"{version}","protocol":1,"protocol_hash":"{}","capabilities":[],"universes":[{universe}]}}"#,
        rockontrol_net::protocol::protocol_hash()
    )
}

/// Issue 10 defect 4, issue 16 item 6: a key-less hello with a managed node's id flipped it to
/// pending with the caller's version; one with an adopted id was welcomed (show, snapshot,
/// commands); adoptions were by id and were not kept.
#[test]
fn keyless_claims_change_nothing_and_adoption_is_per_connection_and_kept() {
    let dir = temp_dir("adopt");
    let port = free_port();
    let master_cfg = master_config(&dir, port, "");
    let state = dir.join("state-master");
    let mut master = Node::start("master", &master_cfg, None, &state);
    let addr = master_addr(&master);

    // node-01 is managed and offline: a key-less claim is refused and changes nothing.
    let frames = probe_blocking(
        &endpoint(addr),
        None,
        &[hello("node-01", "attacker-6.6.6", 1)],
        Duration::from_secs(1),
    )
    .expect("the upgrade itself is open to key-less nodes");
    assert!(
        frames
            .iter()
            .any(|f| f.contains("refused") && f.contains("must connect with its key")),
        "{frames:?}"
    );
    assert!(
        !frames
            .iter()
            .any(|f| f.contains("welcome") || f.contains("snapshot")),
        "no welcome, no snapshot: {frames:?}"
    );
    let st = status(addr, "node-01");
    assert_eq!(
        (st["state"].as_str(), st["version"].as_str()),
        (Some("offline"), None),
        "untouched: {st}"
    );

    // A key-less receiver waits on its connection; the operator adopts that connection.
    let sacn = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let sacn_port = sacn.local_addr().expect("addr").port();
    let cfg5 = receiver_config(&dir, "node-05", 5, port, sacn_port);
    let keyless = Node::start_keyed("receiver", &cfg5, None, &dir.join("state-5"), None);
    wait_state(addr, "node-05", "pending", Duration::from_secs(20));
    let (code, nodes) = rest(addr, "GET", "/api/nodes", Some(KEY), None);
    assert_eq!(code, 200);
    assert_eq!(nodes["pending"][0]["node_id"], "node-05", "{nodes}");
    let (code, body) = rest(addr, "POST", "/api/nodes/node-05/adopt", Some(KEY), None);
    assert_eq!(
        (code, &body["saved"]),
        (200, &serde_json::json!(true)),
        "{body}"
    );
    wait_state(addr, "node-05", "online", Duration::from_secs(10));
    keyless.wait_connected("master-01", &[5], Duration::from_secs(10));
    let kept = std::fs::read_to_string(state.join("adoptions.json")).expect("adoptions on disk");
    assert!(
        kept.contains("\"node-05\"") && kept.contains("\"control\""),
        "{kept}"
    );

    // Now a key-less hello with the adopted id is refused; the real node stays linked.
    let frames = probe_blocking(
        &endpoint(addr),
        None,
        &[hello("node-05", "x", 5)],
        Duration::from_secs(1),
    )
    .expect("upgrade");
    assert!(
        frames.iter().any(|f| f.contains("refused"))
            && !frames.iter().any(|f| f.contains("welcome")),
        "{frames:?}"
    );
    let (code, reply) = rest(
        addr,
        "POST",
        "/api/nodes/node-05/command",
        Some(KEY),
        Some(r#"{"type":"blackout","on":false}"#),
    );
    assert_eq!(
        (code, reply["status"].as_str()),
        (202, Some("sent")),
        "node-05's command goes to the adopted connection: {reply}"
    );
    assert_eq!(status(addr, "node-05")["state"], "online");

    // Adoptions outlive the master: started again, it knows node-05 and still refuses
    // key-less claims of it.
    drop(keyless);
    master.kill();
    let master = Node::start("master", &master_cfg, None, &state);
    let addr = master_addr(&master);
    let st = status(addr, "node-05");
    assert_eq!(
        (st["state"].as_str(), st["universes"].clone()),
        (Some("offline"), serde_json::json!([5])),
        "{st}"
    );
    let frames = probe_blocking(
        &endpoint(addr),
        None,
        &[hello("node-05", "x", 5)],
        Duration::from_secs(1),
    )
    .expect("upgrade");
    assert!(
        frames
            .iter()
            .any(|f| f.contains("must connect with its key")),
        "{frames:?}"
    );
    assert_eq!(status(addr, "node-05")["state"], "offline");
    // With the key, it links as any node.
    let keyed = Node::start("receiver", &cfg5, None, &dir.join("state-5"));
    wait_state(addr, "node-05", "online", Duration::from_secs(20));
    drop(keyed);
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens a WebSocket to `/api/ws` with the control key and returns the raw stream after the
/// `101` answer.
fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET /api/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {KEY}\r\n\r\n"
    )
    .expect("upgrade request");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("upgrade answer");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// Whether the server has closed `s` (end of stream or reset); data is read and dropped.
fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Issue 16 item 8: 300 half-open requests stayed open for 40 s, and a WebSocket that pings
/// but never says hello stayed open for good.
#[test]
fn half_open_requests_and_silent_websockets_are_closed_while_nodes_still_link() {
    let dir = temp_dir("timeouts");
    let port = free_port();
    // Plaintext: the point is HTTP's and the WebSocket's own timeouts, driven byte by byte
    // (a TLS master closes such peers even sooner, at its handshake timeout).
    let master_cfg = master_config(&dir, port, r#", "insecure": true"#);
    let _master = Node::start("master", &master_cfg, None, &dir.join("state-m"));
    let addr = master_addr(&_master);
    let opened = Instant::now();
    let mut half_open: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET /api/nodes HT")
                .expect("partial request line");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect();
    // WebSockets that ping every second and never send a hello.
    let stop = Arc::new(AtomicBool::new(false));
    let ws_closed = Arc::new(AtomicUsize::new(0));
    let pingers: Vec<_> = (0..10)
        .map(|_| {
            let mut s = upgraded(addr);
            let (stop, ws_closed) = (Arc::clone(&stop), Arc::clone(&ws_closed));
            std::thread::spawn(move || {
                s.set_nonblocking(true).expect("nonblocking");
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
                    // A masked, empty ping frame.
                    let _ = s.write_all(&[0x89, 0x80, 1, 2, 3, 4]);
                    if closed(&mut s) {
                        ws_closed.fetch_add(1, Ordering::Relaxed);
                        return Some(start.elapsed());
                    }
                    std::thread::sleep(Duration::from_millis(1000));
                }
                None
            })
        })
        .collect();

    // Meanwhile REST answers and a receiver links.
    let (code, body) = rest(addr, "GET", "/api/nodes", Some(KEY), None);
    assert_eq!(code, 200, "{body}");
    let sacn = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let cfg = receiver_config(
        &dir,
        "node-01",
        1,
        port,
        sacn.local_addr().expect("addr").port(),
    );
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(
        &cfg,
        text.replace(
            r#""role": "receiver","#,
            r#""role": "receiver", "insecure": true,"#,
        ),
    )
    .expect("insecure receiver config");
    let _receiver = Node::start("receiver", &cfg, None, &dir.join("state-1"));
    wait_state(addr, "node-01", "online", Duration::from_secs(30));

    // Every half-open request is closed by the server (10 s header timeout; generous bound).
    let deadline = Duration::from_secs(40);
    while opened.elapsed() < deadline {
        half_open.retain_mut(|s| !closed(s));
        if half_open.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        half_open.is_empty(),
        "{} of 300 half-open requests still open after {deadline:?}",
        half_open.len()
    );
    let waits: Vec<Option<Duration>> = pingers
        .into_iter()
        .map(|p| p.join().expect("pinger"))
        .collect();
    stop.store(true, Ordering::Relaxed);
    assert!(
        waits
            .iter()
            .all(|w| w.is_some_and(|d| d < Duration::from_secs(30))),
        "every pre-hello WebSocket is closed, pings or not: {waits:?}"
    );
    assert_eq!(ws_closed.load(Ordering::Relaxed), 10);
    assert_eq!(
        status(addr, "node-01")["state"],
        "online",
        "the node was not disturbed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Connects to `addr` from the local address `from` (another loopback address: another peer).
fn connect_from(from: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: SocketAddr = format!("{from}:0").parse().map_err(std::io::Error::other)?;
    socket.bind(&local.into())?;
    socket.connect(&addr.into())?;
    Ok(socket.into())
}

/// Issue 16 item 8: 1,100 idle connections made every REST call time out and no receiver
/// could reconnect. The cap refuses connections beyond it, and known nodes keep a reserve.
#[test]
fn the_connection_cap_refuses_a_flood_and_keeps_room_for_known_nodes() {
    let dir = temp_dir("cap");
    let port = free_port();
    let master_cfg = master_config(&dir, port, r#", "max_connections": 40"#);
    let _master = Node::start("master", &master_cfg, None, &dir.join("state-m"));
    let addr = master_addr(&_master);
    // A flood from 127.0.0.2 (no node is there), topped up to 80 idle connections.
    let stop = Arc::new(AtomicBool::new(false));
    let refused_at_once = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (stop, refused_at_once) = (Arc::clone(&stop), Arc::clone(&refused_at_once));
        std::thread::spawn(move || {
            let mut open: Vec<(TcpStream, Instant)> = Vec::new();
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(90) {
                while open.len() < 80 {
                    let s = connect_from("127.0.0.2", addr).expect("connect from 127.0.0.2");
                    s.set_nonblocking(true).expect("nonblocking");
                    open.push((s, Instant::now()));
                }
                open.retain_mut(|(s, at)| {
                    let gone = closed(s);
                    if gone && at.elapsed() < Duration::from_secs(2) {
                        refused_at_once.fetch_add(1, Ordering::Relaxed);
                    }
                    !gone
                });
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let start = Instant::now();
    while refused_at_once.load(Ordering::Relaxed) < 40 && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        refused_at_once.load(Ordering::Relaxed) >= 40,
        "80 connections against a cap of 40: the excess is closed at once ({} were)",
        refused_at_once.load(Ordering::Relaxed)
    );
    // From the node's address, REST answers and the receiver links (the reserve).
    let (code, body) = rest(addr, "GET", "/api/nodes", Some(KEY), None);
    assert_eq!(code, 200, "{body}");
    let sacn = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let cfg = receiver_config(
        &dir,
        "node-01",
        1,
        port,
        sacn.local_addr().expect("addr").port(),
    );
    let _receiver = Node::start("receiver", &cfg, None, &dir.join("state-1"));
    wait_state(addr, "node-01", "online", Duration::from_secs(30));
    let (_, alerts) = rest(addr, "GET", "/api/alerts", Some(KEY), None);
    let refused = alerts["alerts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["kind"] == "refused_connection"))
        .cloned()
        .unwrap_or_default();
    assert!(
        refused["source"] == "127.0.0.2" && refused["count"].as_u64().is_some_and(|n| n >= 40),
        "one aggregated alert for the flood: {alerts}"
    );
    stop.store(true, Ordering::Relaxed);
    flood.join().expect("flood thread");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Packets seen per (universe, source name): (last data packet, last stream-terminated).
type Streams = Arc<Mutex<BTreeMap<(u16, String), (Option<Instant>, Option<Instant>)>>>;

fn sacn_streams() -> (u16, Streams, Arc<AtomicBool>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("udp");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let port = socket.local_addr().expect("addr").port();
    let streams: Streams = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (sink, done) = (Arc::clone(&streams), Arc::clone(&stop));
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let start = Instant::now();
        while !done.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(120) {
            let Ok(n) = socket.recv(&mut buf) else {
                continue;
            };
            if let Ok(rockontrol_wire::sacn::Packet::Data(p)) =
                rockontrol_wire::sacn::decode(&buf[..n])
            {
                let mut s = sink.lock().expect("streams");
                let e = s
                    .entry((p.universe, p.source_name.to_string()))
                    .or_default();
                if p.options.stream_terminated {
                    e.1 = Some(Instant::now());
                } else {
                    e.0 = Some(Instant::now());
                }
            }
        }
    });
    (port, streams, stop)
}

/// Sources whose data for `universe` arrived within the last `within`.
fn live_sources(streams: &Streams, universe: u16, within: Duration) -> Vec<String> {
    streams
        .lock()
        .expect("streams")
        .iter()
        .filter(|((u, _), (data, _))| *u == universe && data.is_some_and(|t| t.elapsed() < within))
        .map(|((_, name), _)| name.clone())
        .collect()
}

/// Issue 10 defect 5: a headless master routed its own universes only at start, so a node
/// registering later output its universe while the master kept outputting it too.
#[test]
fn a_node_registering_later_takes_its_universe_over_from_the_master() {
    let dir = temp_dir("routing");
    let port = free_port();
    let (sacn_port, streams, stop) = sacn_streams();
    let show = dir.join("show.ron");
    std::fs::write(
        &show,
        format!(
            r#"(
    name: "routing e2e",
    universes: [(id: 3, outputs: [Sacn(destination: Unicast(["127.0.0.1:{sacn_port}"]))])],
    profiles: [(manufacturer: "Test", model: "Dim", channels: [(name: "D", attribute: Intensity)],
                modes: [(name: "1ch", channels: ["D"])])],
    fixtures: [(id: 1, name: "D1", profile: "Test/Dim", mode: "1ch", universe: 3, address: 1)],
)"#
        ),
    )
    .expect("show");
    let master_cfg = master_config(&dir, port, "");
    let _master = Node::start("master", &master_cfg, Some(&show), &dir.join("state-m"));
    let addr = master_addr(&_master);
    // The master outputs universe 3 (no node has it).
    let start = Instant::now();
    while !live_sources(&streams, 3, Duration::from_millis(500))
        .iter()
        .any(|s| s.contains("routing e2e"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the master never output universe 3: {:?}",
            streams.lock().expect("streams")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // node-03 joins with universe 3 of its own.
    let cfg = receiver_config(&dir, "node-03", 3, port, sacn_port);
    let _receiver = Node::start("receiver", &cfg, None, &dir.join("state-3"));
    wait_state(addr, "node-03", "online", Duration::from_secs(30));
    let start = Instant::now();
    loop {
        let live = live_sources(&streams, 3, Duration::from_millis(1000));
        if live.len() == 1 && live[0].contains("node-03") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "universe 3 should come from node-03 alone; sources within the last second: {live:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let master_stream = streams
        .lock()
        .expect("streams")
        .iter()
        .find(|((u, name), _)| *u == 3 && name.contains("routing e2e"))
        .map(|(_, v)| *v);
    assert!(
        master_stream.is_some_and(|(_, terminated)| terminated.is_some()),
        "the master ended its stream with stream-terminated packets: {master_stream:?}"
    );
    stop.store(true, Ordering::Relaxed);
    let _ = std::fs::remove_dir_all(&dir);
}
