//! Transport security (issue 15): TLS by default, the master's certificate generated once and
//! pinned by receivers (config or trust on first use), `insecure` plaintext with a warning, and
//! tshark on the control port seeing only TLS. Real `rockontrol` processes on loopback; every
//! wait is bounded.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rockontrol_net::client::{Endpoint, http_request_blocking};
use rockontrol_net::events::NodeEvent;
use rockontrol_tls::Fingerprint;
use support::node::{KEY, Node, free_port, master_addr, rest, temp_dir};
use support::skip;

/// A master with no managed nodes on `port` (receivers register with the key).
fn master_config(dir: &Path, port: u16, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            r#"{{"role": "master", "node_id": "master-01", "listen_port": {port}, "bind": "127.0.0.1", "broadcast_enabled": false}}"#
        ),
    )
    .expect("master config");
    path
}

/// A DMX receiver `node` of the master on `port`; `extra` is more JSON fields (`, "k": v`).
fn receiver_config(dir: &Path, node: &str, port: u16, extra: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{node}.json"));
    std::fs::write(
        &path,
        format!(
            r#"{{"role": "receiver", "node_id": "{node}", "master_ip": "127.0.0.1", "master_port": {port},
  "local_universes": [1], "capabilities": ["dmx_output"], "auto_discover": false,
  "broadcast_enabled": false, "dmx_destination": "127.0.0.1:9"{extra}}}"#
        ),
    )
    .expect("receiver config");
    path
}

/// The fingerprint a master announced in its `listening` event.
fn announced(master: &Node) -> Option<Fingerprint> {
    match master.wait_event("listening", Duration::from_secs(60), |e| {
        matches!(e, NodeEvent::Listening { .. })
    }) {
        NodeEvent::Listening { fingerprint, .. } => {
            fingerprint.map(|f| f.parse().expect("a fingerprint in the event"))
        }
        other => panic!("not a listening event: {other:?}"),
    }
}

fn connected(node: &Node) -> usize {
    node.count_events(|e| matches!(e, NodeEvent::Connected { .. }))
}

fn wait_connected_count(node: &Node, n: usize, what: &str) {
    let start = Instant::now();
    while connected(node) < n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: {n} links expected; events {:?}",
            node.events()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_receiver_pins_its_master_on_first_use_and_refuses_a_master_with_another_certificate() {
    let dir = temp_dir("tls-pin");
    let port = free_port();
    let config = master_config(&dir, port, "master.json");
    let (state_1, state_2) = (dir.join("master-state-1"), dir.join("master-state-2"));

    // A master without a certificate generates one into its state directory: key 0600.
    let mut master = Node::start("master", &config, None, &state_1);
    let addr = master_addr(&master);
    let first = announced(&master).expect("TLS by default: a fingerprint");
    let cert = state_1.join(rockontrol_tls::identity::CERT_FILE);
    let key = state_1.join(rockontrol_tls::identity::KEY_FILE);
    assert_eq!(
        rockontrol_tls::identity::fingerprint_of_pem_file(&cert).expect("the cert on disk"),
        first
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is private: mode {mode:o}");
    }
    master.wait_line(
        &format!("SHA-256 fingerprint {first}"),
        Duration::from_secs(10),
    );
    // It speaks TLS only: a plaintext request gets no HTTP answer.
    let mut raw = TcpStream::connect(addr).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    raw.write_all(b"GET /api/openapi.json HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "a TLS master answered plaintext: {:?}",
        String::from_utf8_lossy(&answer)
    );

    // `rockontrol api` pins the master from its state directory, or `--fingerprint`.
    let api = |args: &[&str]| {
        Command::new(support::node::BIN)
            .arg("api")
            .args(args)
            .args(["--master", &addr.to_string()])
            .env("ROCKONTROL_API_KEY", KEY)
            .env("ROCKONTROL_STATE_DIR", &state_1)
            .output()
            .expect("rockontrol api")
    };
    let out = api(&["GET", "/api/nodes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"nodes\""));
    let out = api(&["GET", "/api/nodes", "--fingerprint", &first.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = Fingerprint([7; 32]).to_string();
    let out = api(&["GET", "/api/nodes", "--fingerprint", &wrong]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&wrong) && stderr.contains(&first.to_string()),
        "the refusal names both certificates: {stderr}"
    );

    // The receiver trusts it on first use and keeps the pin.
    let receiver_state = dir.join("receiver-state");
    let rx_config = receiver_config(&dir, "node-01", port, "");
    let receiver = Node::start("receiver", &rx_config, None, &receiver_state);
    receiver.wait_connected("master-01", &[1], Duration::from_secs(30));
    let pinned = receiver.wait_event("pinned on first use", Duration::from_secs(5), |e| {
        matches!(
            e,
            NodeEvent::MasterPinned {
                first_use: true,
                ..
            }
        )
    });
    let pin_file = receiver_state.join(rockontrol_tls::client::PIN_FILE);
    assert_eq!(
        pinned,
        NodeEvent::MasterPinned {
            fingerprint: first.to_string(),
            first_use: true,
            file: Some(pin_file.display().to_string()),
        }
    );
    assert_eq!(
        std::fs::read_to_string(&pin_file).expect("pin file").trim(),
        first.to_string(),
        "the pin is kept in the receiver's state directory"
    );
    // The master's node view (and status) shows how the node trusts it.
    let start = std::time::Instant::now();
    let trust = loop {
        let status = support::node::node_status(addr, "node-01");
        if let Some(t) = status["trust"].as_str() {
            break t.to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no trust in the status: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        trust,
        format!("TLS · master certificate SHA-256 {first} pinned on first use (state directory)")
    );

    // Another master (another state directory: another certificate) on the same address:
    // refused, naming both fingerprints and what to do.
    master.kill();
    let impostor = Node::start("master", &config, None, &state_2);
    let second = announced(&impostor).expect("fingerprint");
    assert_ne!(second, first, "a new state directory, a new certificate");
    let refused = receiver.wait_event(
        "refusing the other certificate",
        Duration::from_secs(30),
        |e| matches!(e, NodeEvent::Refused { .. }),
    );
    let NodeEvent::Refused { reason } = refused else {
        unreachable!()
    };
    assert!(reason.contains(&first.to_string()), "{reason}");
    assert!(reason.contains(&second.to_string()), "{reason}");
    assert!(
        reason.contains("remove that file") && reason.contains(&pin_file.display().to_string()),
        "{reason}"
    );
    let links = connected(&receiver);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        connected(&receiver),
        links,
        "no link to the other master: {:?}",
        receiver.events()
    );
    assert_eq!(
        std::fs::read_to_string(&pin_file).expect("pin file").trim(),
        first.to_string(),
        "the pin is unchanged"
    );
    drop(impostor);

    // The first master again (its certificate is reused from its state directory): linked.
    let master = Node::start("master", &config, None, &state_1);
    assert_eq!(announced(&master), Some(first), "the certificate is reused");
    master.wait_line("self-signed, kept in", Duration::from_secs(10));
    wait_connected_count(&receiver, links + 1, "the pinned master again");
    drop(receiver);
    drop(master);

    // A fingerprint in the config wins over the pin file: the second master is trusted.
    let impostor = Node::start("master", &config, None, &state_2);
    announced(&impostor);
    let rx_config = receiver_config(
        &dir,
        "node-01",
        port,
        &format!(r#", "master_fingerprint": "{second}""#),
    );
    let receiver = Node::start("receiver", &rx_config, None, &receiver_state);
    receiver.wait_connected("master-01", &[1], Duration::from_secs(30));
    drop(receiver);
    drop(impostor);

    // …and a wrong one in the config is refused, saying to fix the config.
    let master = Node::start("master", &config, None, &state_1);
    announced(&master);
    let receiver = Node::start("receiver", &rx_config, None, &receiver_state);
    let refused = receiver.wait_event(
        "refusing the configured pin",
        Duration::from_secs(30),
        |e| matches!(e, NodeEvent::Refused { .. }),
    );
    let NodeEvent::Refused { reason } = refused else {
        unreachable!()
    };
    assert!(reason.contains("set master_fingerprint"), "{reason}");
    assert!(
        reason.contains(&first.to_string()) && reason.contains(&second.to_string()),
        "{reason}"
    );
    drop(receiver);
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn insecure_serves_plaintext_with_a_warning_and_tls_clients_refuse_it() {
    let dir = temp_dir("tls-insecure");
    let port = free_port();
    let config = master_config(&dir, port, "master.json");
    let master = Node::start_args(
        "master",
        &config,
        None,
        &dir.join("master-state"),
        &["--insecure".as_ref()],
    );
    let addr = master_addr(&master);
    assert_eq!(announced(&master), None, "plaintext: no fingerprint");
    master.wait_line("WARNING: insecure", Duration::from_secs(10));
    assert!(
        !dir.join("master-state")
            .join(rockontrol_tls::identity::CERT_FILE)
            .exists(),
        "no certificate is made for a plaintext master"
    );
    let (status, _) =
        http_request_blocking(&Endpoint::plain(addr), "GET", "/api/nodes", Some(KEY), None)
            .expect("plaintext REST");
    assert_eq!(status, 200);
    // A TLS client does not fall back to plaintext; it says what is wrong.
    let tls = Endpoint {
        addr,
        transport: rockontrol_net::client::Transport::Tls(None),
    };
    let e = http_request_blocking(&tls, "GET", "/api/nodes", Some(KEY), None)
        .expect_err("TLS to a plaintext master");
    assert!(e.to_string().contains("insecure"), "{e}");

    // An insecure receiver links (and warns too); a TLS one cannot.
    let plain_rx = receiver_config(&dir, "node-01", port, r#", "insecure": true"#);
    let receiver = Node::start("receiver", &plain_rx, None, &dir.join("rx-1"));
    receiver.wait_line("WARNING: insecure", Duration::from_secs(10));
    receiver.wait_connected("master-01", &[1], Duration::from_secs(30));
    let tls_rx = receiver_config(&dir, "node-02", port, "");
    let refused = Node::start("receiver", &tls_rx, None, &dir.join("rx-2"));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        connected(&refused),
        0,
        "a TLS receiver never links to a plaintext master: {:?}",
        refused.events()
    );
    // An insecure config with a pin is a contradiction, refused at load.
    let both = receiver_config(
        &dir,
        "node-03",
        port,
        &format!(
            r#", "insecure": true, "master_fingerprint": "{}""#,
            Fingerprint([1; 32])
        ),
    );
    let out = Command::new(support::node::BIN)
        .args(["receiver", "--config"])
        .arg(&both)
        .args(["--headless", "--duration", "1"])
        .env("ROCKONTROL_STATE_DIR", dir.join("rx-3"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("master_fingerprint"), "{stderr}");
    drop((receiver, refused, master));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A capture process, killed and reaped when dropped.
struct Capture(std::process::Child);

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Capture {
    /// Stops with SIGINT (dumpcap then writes its file out) and waits for it.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// `dumpcap` on `lo` with capture `filter`, into `file`, running once it says so.
fn capture(filter: &str, file: &Path) -> Capture {
    let mut child = Capture(
        Command::new("dumpcap")
            .args(["-i", "lo", "-f", filter, "-w"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dumpcap starts"),
    );
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let start = Instant::now();
    loop {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200))
            && line.contains("Capturing on")
        {
            return child;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dumpcap never started capturing on lo"
        );
    }
}

fn tshark(file: &Path, port: u16, filter: &str, field: &str) -> Vec<String> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-d", &format!("tcp.port=={port},tls"), "-Y", filter])
        .args(["-T", "fields", "-e", field])
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn tool(name: &str, arg: &str) -> bool {
    Command::new(name)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn tshark_on_the_control_port_sees_only_tls_while_a_receiver_links_fetches_and_is_commanded() {
    const TEST: &str = "tshark_on_the_control_port_sees_only_tls";
    if !support::node::is_root() {
        skip::unavailable(TEST, "capturing on lo needs root");
        return;
    }
    for (name, arg) in [
        ("dumpcap", "--version"),
        ("tshark", "--version"),
        ("ffmpeg", "-version"),
    ] {
        if !tool(name, arg) {
            skip::unavailable(TEST, &format!("`{name}` is not installed (./dev setup)"));
            return;
        }
    }
    let dir = temp_dir("tls-tshark");
    // A show with one clip in the master's library, so the receiver fetches media too.
    let clip = dir.join("clip.mp4");
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=160x120:rate=25:duration=1")
        .args([
            "-c:v", "libx264", "-g", "10", "-bf", "0", "-pix_fmt", "yuv420p",
        ])
        .arg(&clip)
        .status()
        .expect("ffmpeg");
    assert!(made.success(), "ffmpeg made no clip");
    let state = dir.join("master-state");
    let added = Command::new(support::node::BIN)
        .args(["media", "add"])
        .arg(&clip)
        .arg("--library")
        .arg(state.join("media"))
        .output()
        .expect("media add");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let id = String::from_utf8_lossy(&added.stdout)
        .split_whitespace()
        .next()
        .expect("an id")
        .to_string();
    let show = dir.join("show.ron");
    std::fs::write(
        &show,
        format!("(name: \"tls\", universes: [(id: 1)], clips: [(name: \"a\", id: \"{id}\")])"),
    )
    .expect("show");
    let port = free_port();
    let peer_port = free_port();
    let pcap = dir.join("control.pcapng");
    let dump = capture(&format!("tcp port {port}"), &pcap);

    let config = master_config(&dir, port, "master.json");
    let master = Node::start("master", &config, Some(&show), &state);
    let addr = master_addr(&master);
    let rx_config = dir.join("media-1.json");
    std::fs::write(
        &rx_config,
        format!(
            r#"{{"role": "receiver", "node_id": "media-1", "master_ip": "127.0.0.1", "master_port": {port},
  "local_universes": [1], "capabilities": ["dmx_output", "media_playback"], "auto_discover": false,
  "broadcast_enabled": false, "dmx_destination": "127.0.0.1:9", "media_serve": "127.0.0.1:{peer_port}"}}"#
        ),
    )
    .expect("receiver config");
    let receiver_state = dir.join("media-1");
    let receiver = Node::start("receiver", &rx_config, None, &receiver_state);
    receiver.wait_connected("master-01", &[1], Duration::from_secs(30));
    // The show came (fetched by hash with the key) and its snapshot applied.
    receiver.wait_event("a snapshot applied", Duration::from_secs(30), |e| {
        matches!(e, NodeEvent::SnapshotApplied { .. })
    });
    // The clip arrives, verified.
    let start = Instant::now();
    loop {
        let (_, status) = rest(addr, "GET", "/api/media/status", Some(KEY), None);
        if status["nodes"]["media-1"]["ready"].as_bool() == Some(true) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "media-1 never ready: {status}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // A REST command with the bearer key, which the receiver executes.
    let (status, body) = rest(
        addr,
        "POST",
        "/api/nodes/media-1/command",
        Some(KEY),
        Some(r#"{"type": "intensity", "level": 0.5}"#),
    );
    assert_eq!(status, 202, "{body}");
    let start = Instant::now();
    while receiver.count_events(|e| matches!(e, NodeEvent::CommandExecuted { .. })) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the command never ran: {:?}",
            receiver.events()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    dump.stop();

    // The bytes on the wire: no key, no bearer header, no JSON, no show RON.
    let bytes = std::fs::read(&pcap).expect("capture file");
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        bytes.len() > 10_000,
        "a real capture: {} bytes",
        bytes.len()
    );
    assert!(!has(b"Bearer"), "a bearer header in clear");
    assert!(!has(KEY.as_bytes()), "the key in clear");
    assert!(!has(br#"{"type""#), "JSON in clear");
    assert!(!has(b"universes"), "show or protocol text in clear");
    // tshark dissects TLS: handshakes for the link, the show, the media and the REST call,
    // and application data records.
    let hellos = tshark(&pcap, port, "tls.handshake.type == 1", "frame.number");
    assert!(hellos.len() >= 4, "client hellos: {}", hellos.len());
    let data = tshark(&pcap, port, "tls.app_data", "frame.number");
    assert!(data.len() >= 20, "application data records: {}", data.len());
    let http = tshark(&pcap, port, "http || websocket || json", "frame.number");
    assert!(
        http.is_empty(),
        "plaintext HTTP/WebSocket/JSON dissected: {http:?}"
    );
    // Every TCP segment with a payload on the port is TLS.
    let payloads = tshark(&pcap, port, "tcp.len > 0 && !tls", "frame.number");
    assert!(
        payloads.is_empty(),
        "non-TLS payloads in frames {payloads:?}"
    );

    // The receiver serves its clips to peers over TLS too, with its own certificate.
    let peer_cert = receiver_state.join(rockontrol_tls::identity::CERT_FILE);
    let peer = rockontrol_tls::identity::fingerprint_of_pem_file(&peer_cert)
        .expect("the receiver's certificate");
    let peer_addr = SocketAddr::from(([127, 0, 0, 1], peer_port));
    let (status, _) = http_request_blocking(
        &Endpoint::pinned(peer_addr, peer, rockontrol_tls::PinSource::Option),
        "GET",
        &format!("/api/media/objects/{id}"),
        None,
        None,
    )
    .expect("TLS to the peer server");
    assert_eq!(status, 401, "a peer needs the key");
    let e = http_request_blocking(&Endpoint::plain(peer_addr), "GET", "/", None, None)
        .expect_err("no plaintext from the peer server");
    assert!(
        matches!(e, rockontrol_net::client::HttpError::Protocol { .. }),
        "{e}"
    );
    drop((receiver, master));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The TLS handshake runs in each connection's task with a timeout, not in the accept loop:
/// clients that connect and never say hello neither hold up a REST call nor stay open.
#[test]
fn silent_tls_clients_neither_hold_up_others_nor_stay_open() {
    let dir = temp_dir("tls-silent");
    let port = free_port();
    let config = master_config(&dir, port, "master.json");
    let master = Node::start("master", &config, None, &dir.join("master-state"));
    let addr = master_addr(&master);
    let mut silent: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // A real client meanwhile: served at once.
    let asked = Instant::now();
    let (status, body) = rest(addr, "GET", "/api/nodes", Some(KEY), None);
    assert_eq!(status, 200, "{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "REST behind 50 silent handshakes took {:?}",
        asked.elapsed()
    );
    // Each silent one is closed by the server at its handshake timeout (5 s).
    for s in &mut silent {
        s.set_read_timeout(Some(Duration::from_secs(12)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        let closed = match s.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        assert!(
            closed,
            "a silent client still open after {:?}",
            asked.elapsed()
        );
    }
    drop(master);
    let _ = std::fs::remove_dir_all(&dir);
}
