//! `rockontrol monitor` as a user runs it: real sACN and Art-Net datagrams from several sources
//! on loopback (each from its own 127.0.0.x address), and the monitor's JSON view checked for
//! exactly those sources, names, addresses, priorities and merged values. Bad datagrams in the
//! middle of the stream are counted by kind and do not stop it; Ctrl-C ends it cleanly.
//!
//! The monitor binds port 0 for both protocols (`--sacn-port 0 --artnet-port 0`) and prints the
//! ports it got, so the test never competes with other sACN/Art-Net software on this host.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rockontrol_wire::artnet::{ArtDmx, ArtPollReply, PortAddress};
use rockontrol_wire::sacn::{DataPacket, Options};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rockontrol");

/// A running `rockontrol monitor --json`; killed on drop if the test did not stop it.
struct Monitor {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    sacn: SocketAddr,
    artnet: SocketAddr,
}

impl Monitor {
    /// Starts the monitor on 127.0.0.1 with kernel-chosen ports and waits (at most 10 s) for
    /// the line that says where it listens.
    fn start(extra: &[&str]) -> Monitor {
        let mut child = Command::new(BIN)
            .args(["monitor", "--bind", "127.0.0.1"])
            .args(["--sacn-port", "0", "--artnet-port", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rockontrol monitor");
        let (tx, lines) = channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ports_tx, ports_rx) = channel();
        {
            let stderr_text = Arc::clone(&stderr);
            let pipe = child.stderr.take().expect("stderr");
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(ports) = listening_ports(&line) {
                        let _ = ports_tx.send(ports);
                    }
                    let mut text = stderr_text.lock().expect("stderr buffer");
                    text.push_str(&line);
                    text.push('\n');
                }
            });
        }
        let (sacn, artnet) = match ports_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(ports) => ports,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the monitor did not say where it listens within 10 s; stderr:\n{}",
                    stderr.lock().expect("stderr buffer")
                );
            }
        };
        Monitor {
            child,
            lines,
            stderr,
            sacn: SocketAddr::from(([127, 0, 0, 1], sacn)),
            artnet: SocketAddr::from(([127, 0, 0, 1], artnet)),
        }
    }

    /// The next line of standard output, or `None` once `deadline` has passed or the monitor
    /// has closed its output.
    fn next_line(&self, deadline: Instant) -> Option<String> {
        let wait = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(wait).ok()
    }

    /// The next JSON view (`--json`: one per line).
    fn next_view(&self, deadline: Instant) -> Option<Value> {
        self.next_line(deadline).map(|line| {
            serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("a view that is not JSON ({e}): {line}"))
        })
    }

    /// Waits (until `deadline`) for the monitor to exit by itself.
    fn wait_exit(&mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the monitor") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `(sACN port, Art-Net port)` from "monitor: listening on …(sACN port N, Art-Net port M; …"
/// (0 for one it does not listen to).
fn listening_ports(line: &str) -> Option<(u16, u16)> {
    if !line.starts_with("monitor: listening on") {
        return None;
    }
    let number_after = |key: &str| -> Option<u16> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    // "-" for a protocol the monitor does not listen to.
    Some((
        number_after("sACN port ").unwrap_or(0),
        number_after("Art-Net port ").unwrap_or(0),
    ))
}

fn sacn_packet(
    cid: u8,
    name: &str,
    priority: u8,
    universe: u16,
    sequence: u8,
    slots: &[u8],
) -> Vec<u8> {
    DataPacket {
        cid: [cid; 16],
        source_name: name.into(),
        priority,
        sync_address: 0,
        sequence,
        options: Options::default(),
        universe,
        start_code: 0,
        slots: slots.into(),
    }
    .encode()
    .expect("a valid sACN packet")
}

fn artdmx(port_address: u16, sequence: u8, data: &[u8]) -> Vec<u8> {
    ArtDmx {
        sequence,
        physical: 0,
        port_address: PortAddress::new(port_address).expect("port address"),
        data: data.into(),
    }
    .encode()
    .expect("a valid ArtDmx")
}

/// A UDP socket sending from `ip` (any 127.0.0.0/8 address is this host on Linux).
fn sender(ip: &str) -> UdpSocket {
    UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"))
}

/// The bad datagrams sent once, mid-stream, and the counter each one must land in.
fn bad_datagrams() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let good = sacn_packet(0xA1, "Console A", 100, 1, 0, &[1, 2, 3]);
    let mut truncated = good.clone();
    truncated.truncate(100);
    let mut wrong_vector = good.clone();
    // Root layer vector (bytes 18..22): 4 is E1.31 data, 8 extended; 0x99 is neither.
    wrong_vector[18..22].copy_from_slice(&0x99u32.to_be_bytes());
    let sacn = vec![
        b"definitely not sACN".to_vec(), // malformed: preamble size
        truncated,                       // truncated: root layer says more follows
        wrong_vector,                    // wrong_version: root layer vector
        vec![0x55; 1500],                // oversized: longer than any sACN packet
        sacn_packet(0xA1, "Console A", 100, 9, 0, &[1]), // unlisted: universe 9 not watched
    ];
    let good = artdmx(3, 0, &[1, 2]);
    let mut old_version = good.clone();
    // ProtVer (bytes 10..12, big-endian): 14 is Art-Net 4; 13 is older.
    old_version[10..12].copy_from_slice(&13u16.to_be_bytes());
    let artnet = vec![
        b"garbage".to_vec(),   // malformed: ID
        good[..17].to_vec(),   // truncated: ArtDmx header is 18 bytes
        old_version,           // wrong_version
        artdmx(7, 0, &[1, 2]), // unlisted: Port-Address 7 not watched
    ];
    (sacn, artnet)
}

/// The sources of one universe in the view, sorted by IP, without the fields that depend on
/// timing (rate, age, sender port).
fn sources(universe: &Value) -> Vec<Value> {
    let mut list: Vec<Value> = universe["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s["id"], "ip": s["ip"], "name": s["name"], "priority": s["priority"],
                "slots": s["slots"], "winning": s["winning"],
            })
        })
        .collect();
    list.sort_by_key(|s| s["ip"].as_str().unwrap_or_default().to_string());
    list
}

fn universe<'v>(view: &'v Value, protocol: &str, number: u64) -> Option<&'v Value> {
    view["universes"]
        .as_array()?
        .iter()
        .find(|u| u["protocol"] == protocol && u["universe"] == number)
}

fn slots(universe: Option<&Value>) -> Vec<u64> {
    universe
        .and_then(|u| u["slots"].as_array())
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// What the sender loop has done, for the assertions.
#[derive(Debug, Default)]
struct Sent {
    rounds: u64,
    bad_sent: bool,
}

#[test]
fn monitor_reports_each_source_priority_and_merged_values_and_counts_bad_datagrams() {
    let mut monitor = Monitor::start(&[
        "--sacn",
        "1",
        "--sacn",
        "2",
        "--artnet",
        "3",
        "--json",
        "--interval",
        "100ms",
        // A safety net: the test stops it long before.
        "--duration",
        "60s",
    ]);
    let (sacn_to, artnet_to) = (monitor.sacn, monitor.artnet);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Sent::default()));
    let feeder = {
        let stop = Arc::clone(&stop);
        let sent = Arc::clone(&sent);
        std::thread::spawn(move || {
            let console_a = sender("127.0.0.2");
            let console_b = sender("127.0.0.3");
            let backup = sender("127.0.0.4");
            let desk_five = sender("127.0.0.5");
            let desk_six = sender("127.0.0.6");
            let junk = sender("127.0.0.7");
            // Desk five names itself (long name) the way Art-Net nodes do.
            let reply = ArtPollReply {
                ip: [127, 0, 0, 5].into(),
                short_name: "Desk 5".into(),
                long_name: "Lighting desk five".into(),
                ..ArtPollReply::default()
            };
            let mut buf = Vec::new();
            reply.encode_into(&mut buf).expect("ArtPollReply");
            desk_five.send_to(&buf, artnet_to).expect("send");
            // Bounded: 25 ms per round for at most 20 s.
            for round in 0u64..800 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let seq = round as u8;
                // Before round 10 every source sends zeros; from round 10 on, the real looks,
                // so the values the test waits for arrive only after the bad datagrams.
                let after = round >= 10;
                let pick = |v: &[u8]| if after { v.to_vec() } else { vec![0; v.len()] };
                if round == 10 {
                    let (bad_sacn, bad_artnet) = bad_datagrams();
                    for d in &bad_sacn {
                        junk.send_to(d, sacn_to).expect("send");
                    }
                    for d in &bad_artnet {
                        junk.send_to(d, artnet_to).expect("send");
                    }
                    sent.lock().expect("sent").bad_sent = true;
                }
                let a1 = sacn_packet(0xA1, "Console A", 100, 1, seq, &pick(&[10, 200, 0, 5]));
                let b1 = sacn_packet(0xB2, "Console B", 100, 1, seq, &pick(&[50, 20, 7]));
                let a2 = sacn_packet(0xA1, "Console A", 100, 2, seq, &pick(&[1, 2, 3]));
                let c2 = sacn_packet(0xC3, "Backup desk", 150, 2, seq, &pick(&[9, 8]));
                console_a.send_to(&a1, sacn_to).expect("send");
                console_b.send_to(&b1, sacn_to).expect("send");
                console_a.send_to(&a2, sacn_to).expect("send");
                backup.send_to(&c2, sacn_to).expect("send");
                let art_seq = (round % 255) as u8 + 1;
                let d5 = artdmx(3, art_seq, &pick(&[1, 2, 3, 4]));
                let d6 = artdmx(3, art_seq, &pick(&[4, 3, 2, 1, 0, 6]));
                desk_five.send_to(&d5, artnet_to).expect("send");
                desk_six.send_to(&d6, artnet_to).expect("send");
                sent.lock().expect("sent").rounds = round + 1;
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };

    // Wait for a view with the real looks in all three universes and a rate for every source
    // (rates need a second of packets).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = Value::Null;
    let view = loop {
        let Some(view) = monitor.next_view(deadline) else {
            stop.store(true, Ordering::SeqCst);
            let _ = feeder.join();
            panic!(
                "no complete view within 15 s ({:?}); last view:\n{last:#}\nstderr:\n{}",
                sent.lock().expect("sent"),
                monitor.stderr()
            );
        };
        let complete = slots(universe(&view, "sacn", 1)) == [50, 200, 7, 5]
            && slots(universe(&view, "sacn", 2)) == [9, 8]
            && slots(universe(&view, "artnet", 3)) == [4, 3, 3, 4, 0, 6]
            && view["universes"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|u| u["sources"].as_array().into_iter().flatten())
                .all(|s| s["rate"].is_number());
        if complete {
            break view;
        }
        last = view;
    };

    // Exactly the three universes asked for: universe 9 and Port-Address 7 were dropped.
    let keys: Vec<(String, u64)> = view["universes"]
        .as_array()
        .expect("universes")
        .iter()
        .map(|u| {
            (
                u["protocol"].as_str().unwrap_or_default().to_string(),
                u["universe"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("sacn".to_string(), 1),
            ("sacn".to_string(), 2),
            ("artnet".to_string(), 3)
        ],
        "the universes shown: {view:#}"
    );
    let u1 = universe(&view, "sacn", 1).expect("sACN 1");
    assert_eq!(u1["priority"], 100, "sACN 1 priority: {u1:#}");
    assert_eq!(u1["live"], true, "sACN 1 live");
    assert_eq!(
        sources(u1),
        [
            serde_json::json!({"id": "a1a1a1a1-a1a1-a1a1-a1a1-a1a1a1a1a1a1", "ip": "127.0.0.2",
                "name": "Console A", "priority": 100, "slots": 4, "winning": true}),
            serde_json::json!({"id": "b2b2b2b2-b2b2-b2b2-b2b2-b2b2b2b2b2b2", "ip": "127.0.0.3",
                "name": "Console B", "priority": 100, "slots": 3, "winning": true}),
        ],
        "sACN 1: two sources at equal priority, merged HTP"
    );
    let u2 = universe(&view, "sacn", 2).expect("sACN 2");
    assert_eq!(u2["priority"], 150, "sACN 2: the higher priority wins");
    assert_eq!(
        sources(u2),
        [
            serde_json::json!({"id": "a1a1a1a1-a1a1-a1a1-a1a1-a1a1a1a1a1a1", "ip": "127.0.0.2",
                "name": "Console A", "priority": 100, "slots": 3, "winning": false}),
            serde_json::json!({"id": "c3c3c3c3-c3c3-c3c3-c3c3-c3c3c3c3c3c3", "ip": "127.0.0.4",
                "name": "Backup desk", "priority": 150, "slots": 2, "winning": true}),
        ],
        "sACN 2: the backup desk at 150 beats console A at 100"
    );
    let u3 = universe(&view, "artnet", 3).expect("Art-Net 3");
    assert_eq!(u3["priority"], Value::Null, "Art-Net has no priority");
    assert_eq!(
        sources(u3),
        [
            serde_json::json!({"id": "127.0.0.5", "ip": "127.0.0.5",
                "name": "Lighting desk five", "priority": null, "slots": 4, "winning": true}),
            serde_json::json!({"id": "127.0.0.6", "ip": "127.0.0.6",
                "name": "", "priority": null, "slots": 6, "winning": true}),
        ],
        "Art-Net 3: two desks merged HTP; desk five named by its ArtPollReply"
    );
    for u in [u1, u2, u3] {
        for s in u["sources"].as_array().expect("sources") {
            let rate = s["rate"].as_f64().expect("a rate");
            assert!(rate > 0.0, "a positive packet rate for {s}");
        }
    }

    // Every bad datagram counted once, by kind; the real looks arrived after them.
    assert!(
        sent.lock().expect("sent").bad_sent,
        "bad datagrams were sent"
    );
    let stats = &view["stats"];
    let bad = |p: &str| {
        serde_json::json!({
            "truncated": stats[p]["truncated"], "oversized": stats[p]["oversized"],
            "wrong_version": stats[p]["wrong_version"], "malformed": stats[p]["malformed"],
            "unlisted": stats[p]["unlisted"],
        })
    };
    assert_eq!(
        bad("sacn"),
        serde_json::json!({"truncated": 1, "oversized": 1, "wrong_version": 1, "malformed": 1,
            "unlisted": 1}),
        "sACN bad datagram counters: {stats:#}"
    );
    assert_eq!(
        bad("artnet"),
        serde_json::json!({"truncated": 1, "oversized": 0, "wrong_version": 1, "malformed": 1,
            "unlisted": 1}),
        "Art-Net bad datagram counters: {stats:#}"
    );
    assert_eq!(
        stats["sacn_out_of_sequence"], 0,
        "in-order sequence numbers"
    );
    let accepted = stats["sacn"]["accepted"].as_u64().unwrap_or(0);
    assert!(accepted >= 4 * 10, "sACN accepted {accepted}");
    let stderr = monitor.stderr();
    assert!(
        stderr.contains("dropped a truncated sACN datagram")
            && stderr.contains("dropped a wrong-version Art-Net datagram"),
        "each kind of bad datagram is logged: {stderr}"
    );

    // Ctrl-C: the monitor prints a last view and exits 0.
    stop.store(true, Ordering::SeqCst);
    feeder.join().expect("feeder");
    let status = Command::new("kill")
        .args(["-INT", &monitor.child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success(), "SIGINT delivered");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last_view = None;
    while let Some(view) = monitor.next_view(deadline) {
        last_view = Some(view);
    }
    let exit = monitor
        .wait_exit(deadline)
        .expect("the monitor stops within 5 s of Ctrl-C");
    assert!(exit.success(), "exit status after Ctrl-C: {exit}");
    let last_view = last_view.expect("a last view on the way out");
    assert_eq!(
        slots(universe(&last_view, "sacn", 2)),
        [9, 8],
        "the last view still holds the looks: {last_view:#}"
    );
    assert!(
        monitor.stderr().contains("monitor: stopped after"),
        "{}",
        monitor.stderr()
    );
}

#[test]
fn monitor_once_prints_the_text_view_of_the_first_data() {
    let mut monitor = Monitor::start(&["--sacn", "5", "--once", "--decimal", "--nonzero"]);
    let backup = sender("127.0.0.4");
    let slots = [0, 9, 0, 255];
    // Bounded: until the monitor has its view and exits (at most 5 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sequence = 0u8;
    let status = loop {
        let packet = sacn_packet(0xC3, "Backup desk", 150, 5, sequence, &slots);
        backup.send_to(&packet, monitor.sacn).expect("send");
        sequence = sequence.wrapping_add(1);
        if let Some(status) = monitor.wait_exit(Instant::now() + Duration::from_millis(50)) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "--once did not exit within 5 s of data; stderr:\n{}",
            monitor.stderr()
        );
    };
    assert!(status.success(), "exit 0 with data: {}", monitor.stderr());
    let mut text = String::new();
    while let Some(line) = monitor.next_line(Instant::now() + Duration::from_secs(2)) {
        text.push_str(&line);
        text.push('\n');
    }
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("sACN 5  priority 150  4 slots  1 sources"),
        "the universe line:\n{text}"
    );
    let source = lines.get(1).copied().unwrap_or_default();
    assert!(
        source.starts_with("  * Backup desk ")
            && source.contains(" 127.0.0.4:")
            && source.contains(" 150 ")
            && source.ends_with("c3c3c3c3-c3c3-c3c3-c3c3-c3c3c3c3c3c3"),
        "the source line (winning, name, address, priority, CID):\n{text}"
    );
    assert_eq!(
        lines.get(2).copied(),
        Some("  2:9 4:255"),
        "the non-zero slots in decimal:\n{text}"
    );
}

#[test]
fn monitor_once_without_data_says_what_is_missing_and_exits_1() {
    // Nothing is sent to these fresh ports: --once gives up after --duration.
    let out = Command::new(BIN)
        .args(["monitor", "--bind", "127.0.0.1", "--sacn-port", "0"])
        .args([
            "--artnet-port",
            "0",
            "--sacn",
            "5",
            "--once",
            "--duration",
            "500ms",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run the monitor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "no data: exit 1; {stderr}");
    assert!(
        stderr.contains("no data for sACN 5"),
        "says what is missing: {stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(no DMX received yet)"),
        "the empty view"
    );
}
