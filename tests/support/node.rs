//! Real `rockontrol` node processes on loopback and an sACN listener that decodes what they
//! send, for end-to-end tests (the pattern of `tests/nodes.rs`). Every wait is bounded.

#![allow(dead_code, reason = "each test binary uses part of this")]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rockontrol_net::client::{Endpoint, http_request_blocking};
use rockontrol_net::events::NodeEvent;

pub const BIN: &str = env!("CARGO_BIN_EXE_rockontrol");
/// The control key every node of these tests holds.
pub const KEY: &str = "e2e-control-key-0001";

/// A fresh directory under the system's temp dir, named for the test and this process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A receiver config for `node-0N` outputting universe `n` as unicast sACN to
/// `127.0.0.1:sacn_port`, linked to the master at `127.0.0.1:master_port` (the seed's receiver,
/// loopback substituted), `on_loss` its `on_master_loss`.
pub fn receiver_config(n: u16, master_port: u16, sacn_port: u16, on_loss: &str) -> String {
    rockontrol_net::config::seed::RECEIVER
        .replace("\"node-01\"", &format!("\"node-0{n}\""))
        .replace("192.168.1.100", "127.0.0.1")
        .replace("9000", &master_port.to_string())
        .replace("[1, 2]", &format!("[{n}]"))
        .replace("\"auto_discover\": true", &format!(
            "\"auto_discover\": false, \"broadcast_enabled\": false, \"on_master_loss\": \"{on_loss}\", \"dmx_destination\": \"127.0.0.1:{sacn_port}\""
        ))
}

/// A master `master-01` on `127.0.0.1:port` managing node-01..=node-0`n` (universe = node
/// number).
pub fn master_config(port: u16, n: u16) -> String {
    let nodes: Vec<String> = (1..=n)
        .map(|i| {
            format!(
                r#"{{"node_id": "node-0{i}", "ip": "127.0.0.1", "universe_map": [{i}], "role": "dmx_output"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"role": "master", "node_id": "master-01", "listen_port": {port}, "bind": "127.0.0.1",
  "broadcast_enabled": false, "managed_nodes": [{}]}}"#,
        nodes.join(", ")
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A node process; its stdout lines are collected (its events, `--events -`, among them).
/// Killed (SIGKILL) when dropped.
pub struct Node {
    pub child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Node {
    /// Runs `cmd` in a process group of its own (killed as a whole), collecting stdout.
    pub fn spawn(mut cmd: Command) -> Node {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("start a node");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&lines);
        std::thread::Builder::new()
            .name("node-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    sink.lock().expect("lines").push((Instant::now(), line));
                }
            })
            .expect("stdout reader");
        Node { child, lines }
    }

    /// `rockontrol ROLE --config CONFIG` with [`KEY`], its state in `state`, mDNS on `lo` only.
    pub fn start(role: &str, config: &Path, show: Option<&Path>, state: &Path) -> Node {
        Node::start_with(role, config, show, state, Some(KEY), 180)
    }

    /// [`Node::start`] for a process that stops by itself after `secs` seconds.
    pub fn start_for(
        role: &str,
        config: &Path,
        show: Option<&Path>,
        state: &Path,
        secs: u64,
    ) -> Node {
        Node::start_with(role, config, show, state, Some(KEY), secs)
    }

    // --- shared harness (package G): a node with or without a key ---

    /// [`Node::start`] with `key` as `$ROCKONTROL_API_KEY`; `None` leaves it unset, even where
    /// the test's own environment has one.
    pub fn start_keyed(
        role: &str,
        config: &Path,
        show: Option<&Path>,
        state: &Path,
        key: Option<&str>,
    ) -> Node {
        Node::start_with(role, config, show, state, key, 180)
    }

    /// A node with `key` (or none) that stops by itself after `secs` seconds.
    pub fn start_with(
        role: &str,
        config: &Path,
        show: Option<&Path>,
        state: &Path,
        key: Option<&str>,
        secs: u64,
    ) -> Node {
        Node::spawn(Node::command(
            Path::new(BIN),
            role,
            config,
            show,
            state,
            key,
            secs,
        ))
    }

    /// [`Node::start_with`] from another build of `rockontrol` (the headless one, say).
    pub fn start_bin(
        bin: &Path,
        role: &str,
        config: &Path,
        show: Option<&Path>,
        state: &Path,
        key: Option<&str>,
        secs: u64,
    ) -> Node {
        Node::spawn(Node::command(bin, role, config, show, state, key, secs))
    }

    /// A master on a free loopback port with no managed nodes (receivers register), running
    /// `show` with state in `state`: the node, its port and its REST address.
    pub fn start_media_master(dir: &Path, show: &Path, state: &Path) -> (Node, u16, SocketAddr) {
        Node::start_media_master_capped(dir, show, state, None)
    }

    /// [`Node::start_media_master`] serving clips at most at `mbit` Mbit/s in all
    /// (`media_serve_mbit`: a master's port that runs out first).
    pub fn start_media_master_capped(
        dir: &Path,
        show: &Path,
        state: &Path,
        mbit: Option<u32>,
    ) -> (Node, u16, SocketAddr) {
        let port = free_port();
        let config = dir.join("master.json");
        let cap = mbit.map_or_else(String::new, |m| format!(r#", "media_serve_mbit": {m}"#));
        std::fs::write(
            &config,
            format!(
                r#"{{"role": "master", "node_id": "master-01", "listen_port": {port}, "bind": "127.0.0.1", "broadcast_enabled": false{cap}}}"#
            ),
        )
        .expect("master config");
        let master = Node::start("master", &config, Some(show), state);
        let addr = master_addr(&master);
        (master, port, addr)
    }

    /// [`Node::start`] with more arguments (`--media-capture DIR`, …).
    pub fn start_args(
        role: &str,
        config: &Path,
        show: Option<&Path>,
        state: &Path,
        extra: &[&std::ffi::OsStr],
    ) -> Node {
        let mut cmd = Node::command(Path::new(BIN), role, config, show, state, Some(KEY), 180);
        cmd.args(extra);
        Node::spawn(cmd)
    }

    /// The command line [`Node::start_bin`] runs.
    fn command(
        bin: &Path,
        role: &str,
        config: &Path,
        show: Option<&Path>,
        state: &Path,
        key: Option<&str>,
        secs: u64,
    ) -> Command {
        let mut cmd = Command::new(bin);
        cmd.arg(role)
            .arg("--config")
            .arg(config)
            .arg("--headless")
            .arg("--duration")
            .arg(secs.to_string())
            .arg("--events")
            .arg("-")
            .env_remove("ROCKONTROL_API_KEY")
            .env("ROCKONTROL_STATE_DIR", state)
            .env("ROCKONTROL_MDNS_INTERFACE", "lo")
            .env("RUST_LOG", "info");
        if let Some(show) = show {
            cmd.arg("--show").arg(show);
        }
        if let Some(key) = key {
            cmd.env("ROCKONTROL_API_KEY", key);
        }
        cmd
    }

    // --- end of package G's addition ---

    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Every collected line with the time it was read.
    pub fn timed_lines(&self) -> Vec<(Instant, String)> {
        self.lines.lock().expect("lines").clone()
    }

    /// The node's events so far, in order (the JSON lines of its stdout).
    pub fn events(&self) -> Vec<NodeEvent> {
        self.lines()
            .iter()
            .filter(|l| l.starts_with("{\"event\":"))
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}"))
            })
            .collect()
    }

    /// How many events so far meet `ok`.
    pub fn count_events(&self, ok: impl Fn(&NodeEvent) -> bool) -> usize {
        self.events().iter().filter(|e| ok(e)).count()
    }

    /// Waits up to `timeout` for an event that meets `ok` (`what` names it in the failure).
    pub fn wait_event(
        &self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&NodeEvent) -> bool,
    ) -> NodeEvent {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(e) = self.events().into_iter().find(|e| ok(e)) {
                return e;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no event {what} within {timeout:?}; got {:?}",
            self.events()
        )
    }

    /// Waits for `connected` to `master` with `universes`.
    pub fn wait_connected(&self, master: &str, universes: &[u16], timeout: Duration) {
        self.wait_event(
            &format!("connected to {master} with universes {universes:?}"),
            timeout,
            |e| matches!(e, NodeEvent::Connected { master_id, universes: u } if master_id == master && u == universes),
        );
    }

    /// Waits until node command `id` was executed here.
    pub fn wait_executed(&self, id: &str, timeout: Duration) -> NodeEvent {
        self.wait_event(
            &format!("{id} executed"),
            timeout,
            |e| matches!(e, NodeEvent::CommandExecuted { id: i, .. } if i == id),
        )
    }

    /// Ids of the node commands executed here, in order (a re-sent one that was only
    /// acknowledged again is not among them).
    pub fn executed_ids(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                NodeEvent::CommandExecuted { id, .. } => Some(id),
                _ => None,
            })
            .collect()
    }

    pub fn wait_line(&self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(l) = self.lines().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no line with {needle:?} within {timeout:?}; got {:?}",
            self.lines()
        )
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    pub fn kill(&mut self) {
        // Resumed first: a stopped process group does not die of SIGKILL any later, but a
        // test that failed while its master was stopped must not leave it behind either.
        let group = format!("-{}", self.child.id());
        for sig in ["-CONT", "-KILL"] {
            let _ = Command::new("kill")
                .args([sig, "--", &group])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One sACN data packet received: universe, slot 1, when.
type Packets = Arc<Mutex<Vec<(u16, u8, Instant)>>>;

/// Every sACN data packet received on a loopback UDP port, decoded with `rockontrol_wire`.
#[derive(Clone)]
pub struct Listener {
    pub port: u16,
    packets: Packets,
}

impl Listener {
    pub fn start() -> Listener {
        Listener::start_for(Duration::from_secs(400))
    }

    /// A listener that keeps receiving for `lifetime`.
    pub fn start_for(lifetime: Duration) -> Listener {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("udp");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let port = socket.local_addr().expect("addr").port();
        let packets: Packets = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&packets);
        std::thread::Builder::new()
            .name("sacn-listener".into())
            .spawn(move || {
                let mut buf = [0u8; 1500];
                let start = Instant::now();
                while start.elapsed() < lifetime {
                    let Ok(n) = socket.recv(&mut buf) else {
                        continue;
                    };
                    if let Ok(rockontrol_wire::sacn::Packet::Data(p)) =
                        rockontrol_wire::sacn::decode(&buf[..n])
                    {
                        let v = p.slots.first().copied().unwrap_or(0);
                        sink.lock()
                            .expect("packets")
                            .push((p.universe, v, Instant::now()));
                    }
                }
            })
            .expect("listener thread");
        Listener { port, packets }
    }

    /// Arrival times of every packet of `universe`, in order.
    pub fn arrivals(&self, universe: u16) -> Vec<Instant> {
        self.packets
            .lock()
            .expect("packets")
            .iter()
            .filter(|(u, _, _)| *u == universe)
            .map(|(_, _, t)| *t)
            .collect()
    }

    /// Slot 1 of `universe`'s latest packet, if it came within the last 500 ms.
    pub fn value(&self, universe: u16) -> Option<u8> {
        self.packets
            .lock()
            .expect("packets")
            .iter()
            .rev()
            .find(|(u, _, _)| *u == universe)
            .filter(|(_, _, t)| t.elapsed() < Duration::from_millis(500))
            .map(|(_, v, _)| *v)
    }

    /// Slot 1 values of `universe` received since `since`, in order.
    pub fn values_since(&self, universe: u16, since: Instant) -> Vec<u8> {
        self.packets
            .lock()
            .expect("packets")
            .iter()
            .filter(|(u, _, t)| *u == universe && *t >= since)
            .map(|(_, v, _)| *v)
            .collect()
    }

    /// Waits up to `timeout` for a fresh value of `universe` that meets `ok`.
    pub fn wait_value(&self, universe: u16, ok: impl Fn(u8) -> bool, timeout: Duration) -> u8 {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(v) = self.value(universe)
                && ok(v)
            {
                return v;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "universe {universe}: value {:?} never met the condition within {timeout:?}",
            self.value(universe)
        )
    }
}

/// A REST call with the status and the JSON body (a string where it is not JSON).
pub fn rest(
    master: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, text) =
        http_request_blocking(&endpoint(master), method, path, key, body).expect("REST request");
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, json)
}

pub fn node_state(master: SocketAddr, node: &str) -> String {
    node_status(master, node)["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

// --- shared harness (package G): a node's whole status ---

/// `GET /api/nodes/NODE/status` with [`KEY`]: the node's status as JSON.
pub fn node_status(master: SocketAddr, node: &str) -> serde_json::Value {
    rest(
        master,
        "GET",
        &format!("/api/nodes/{node}/status"),
        Some(KEY),
        None,
    )
    .1
}

// --- end of package G's addition ---

pub fn wait_state(master: SocketAddr, node: &str, state: &str, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if node_state(master, node) == state {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{node} never became {state} within {timeout:?} (is {})",
        node_state(master, node)
    );
}

/// The address a master reports once it listens. Its certificate fingerprint (none:
/// plaintext, `insecure`) is kept for [`endpoint`], so REST and WebSocket helpers pin it.
pub fn master_addr(master: &Node) -> SocketAddr {
    match master.wait_event("listening", Duration::from_secs(60), |e| {
        matches!(e, NodeEvent::Listening { .. })
    }) {
        NodeEvent::Listening {
            addr, fingerprint, ..
        } => {
            let addr: SocketAddr = addr.parse().expect("socket address");
            let fingerprint = fingerprint.map(|f| f.parse().expect("a fingerprint in the event"));
            MASTERS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(addr, fingerprint);
            addr
        }
        other => panic!("not a listening event: {other:?}"),
    }
}

/// The masters this test process started (by [`master_addr`]) and their certificates' fingerprints.
static MASTERS: Mutex<std::collections::BTreeMap<SocketAddr, Option<rockontrol_tls::Fingerprint>>> =
    Mutex::new(std::collections::BTreeMap::new());

/// How to reach the master at `addr`: TLS pinned to the fingerprint of its `listening`
/// event, plaintext if it serves plaintext, and TLS taking any certificate for an address
/// no [`master_addr`] reported.
pub fn endpoint(addr: SocketAddr) -> Endpoint {
    let known = MASTERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&addr)
        .copied();
    match known {
        Some(Some(f)) => Endpoint::pinned(addr, f, rockontrol_tls::PinSource::Option),
        Some(None) => Endpoint::plain(addr),
        None => Endpoint {
            addr,
            transport: rockontrol_net::client::Transport::Tls(None),
        },
    }
}

/// Sends `sig` (`-STOP`, `-CONT`) to process `pid`.
pub fn signal(sig: &str, pid: &str) {
    let ok = Command::new("kill")
        .args([sig, pid])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Writes `DIR/node-0N.json`: receiver `node-0N` of the master at `master_ip:master_port`,
/// outputting universe N as unicast sACN to `sacn_destination`, without discovery or
/// broadcast (the seed receiver config, adjusted). Returns its path.
pub fn write_receiver_config(
    dir: &Path,
    n: u16,
    master_ip: &str,
    master_port: u16,
    sacn_destination: &str,
) -> PathBuf {
    let cfg = dir.join(format!("node-0{n}.json"));
    let text = rockontrol_net::config::seed::RECEIVER
        .replace("\"node-01\"", &format!("\"node-0{n}\""))
        .replace("192.168.1.100", master_ip)
        .replace("9000", &master_port.to_string())
        .replace("[1, 2]", &format!("[{n}]"))
        .replace(
            "\"auto_discover\": true",
            &format!(
                "\"auto_discover\": false, \"broadcast_enabled\": false, \"dmx_destination\": \"{sacn_destination}\""
            ),
        );
    std::fs::write(&cfg, text).expect("receiver config");
    cfg
}

/// Waits until `node` reports its clock locked with at least `samples` samples; returns its
/// `clock` status (offset, drift, uncertainty, …).
pub fn wait_clock_locked(
    master: SocketAddr,
    node: &str,
    samples: u64,
    timeout: Duration,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let status = node_status(master, node);
        let clock = &status["clock"];
        if clock["locked"] == true && clock["samples"].as_u64().unwrap_or(0) >= samples {
            return clock.clone();
        }
        assert!(
            start.elapsed() < timeout,
            "{node} never locked to the master's clock with {samples} samples within {timeout:?}: {status}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A blocking connection to a master as [`endpoint`] reaches it: TLS pinned to its
/// certificate, or plaintext for an `insecure` one. For tests that speak raw HTTP or a
/// WebSocket (tungstenite) to the control port.
#[derive(Debug)]
pub enum Wire {
    Plain(std::net::TcpStream),
    Tls(
        Box<
            rockontrol_tls::rustls::StreamOwned<
                rockontrol_tls::rustls::ClientConnection,
                std::net::TcpStream,
            >,
        >,
    ),
}

impl Wire {
    /// Connects to the master at `addr` (the TLS handshake runs on the first read or write).
    pub fn connect(addr: SocketAddr) -> Wire {
        let tcp = std::net::TcpStream::connect(addr).expect("connect");
        match endpoint(addr).transport {
            rockontrol_net::client::Transport::Plain => Wire::Plain(tcp),
            rockontrol_net::client::Transport::Tls(pin) => {
                let config = rockontrol_tls::client::client_config(pin);
                let name = rockontrol_tls::rustls::pki_types::ServerName::try_from("rockontrol")
                    .expect("a valid name");
                let conn = rockontrol_tls::rustls::ClientConnection::new(config, name)
                    .expect("a TLS client");
                Wire::Tls(Box::new(rockontrol_tls::rustls::StreamOwned::new(
                    conn, tcp,
                )))
            }
        }
    }

    /// The TCP socket under it (timeouts).
    pub fn tcp(&self) -> &std::net::TcpStream {
        match self {
            Wire::Plain(s) => s,
            Wire::Tls(s) => &s.sock,
        }
    }
}

impl std::io::Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(buf),
            Wire::Tls(s) => s.read(buf),
        }
    }
}

impl std::io::Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(s) => s.write(buf),
            Wire::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Wire::Plain(s) => s.flush(),
            Wire::Tls(s) => s.flush(),
        }
    }
}

/// A WebSocket to `path` (`/api/ws`, `/api/control`) on the master at `addr` over a [`Wire`]
/// (TLS pinned, or plaintext for an `insecure` master), with `Authorization: Bearer key`
/// when given: the socket and the upgrade's answer, or the refusal.
#[allow(
    clippy::result_large_err,
    reason = "the refusal is tungstenite's, with the HTTP answer in it"
)]
pub fn ws_link(
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
) -> Result<
    (
        tungstenite::WebSocket<Wire>,
        tungstenite::handshake::client::Response,
    ),
    tungstenite::HandshakeError<tungstenite::ClientHandshake<Wire>>,
> {
    use tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("request");
    if let Some(key) = key {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {key}").parse().expect("header"),
        );
    }
    tungstenite::client::client(request, Wire::connect(addr))
}
