//! Load benchmark: one master, 100 receivers, 1000 commands/s for 60 s, on loopback.
//!
//! `cargo bench -p rockontrol-net --bench load`. The master's REST + WebSocket server (the
//! same [`master::serve`] a `rockontrol master` runs) is a child process of its own, so its CPU
//! and memory are measured alone from `/proc/<pid>`. The receivers are real protocol clients
//! ([`client::run_link`], the link a `rockontrol receiver` uses: WebSocket, hello, heartbeats
//! every second, an ack for every command) sharing one tokio runtime in this process.
//!
//! A poster thread sends `POST /api/nodes/{node}/command` over a keep-alive HTTP connection on
//! a fixed schedule (round robin over the receivers). Each command carries its sequence number
//! (a media seek naming clip `bench-N`), so the receiving client can take its latency: from
//! just before the request is written to the command frame arriving at the client. At the end
//! every command must have arrived exactly once and been acknowledged to the master.
//!
//! Settings (environment): `ROCKONTROL_BENCH_SECS` (60), `ROCKONTROL_BENCH_RATE` (commands/s,
//! 1000), `ROCKONTROL_BENCH_RECEIVERS` (100). Nothing is sent beyond 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rockontrol_net::auth::Keys;
use rockontrol_net::client::{LinkConfig, LinkEvent, MasterAddress, run_link};
use rockontrol_net::config::{Capability, NodeConfig, Syntax};
use rockontrol_net::master::{self, MasterShared};
use rockontrol_net::protocol::{AckStatus, Metrics, NodeCommand, ToMaster, ToReceiver};
use rockontrol_net::registry::Registry;
use tokio::sync::{mpsc, watch};

const KEY: &str = "bench-control-key-0001";
const MASTER_ENV: &str = "ROCKONTROL_BENCH_MASTER";

fn setting(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

fn main() {
    if std::env::var_os(MASTER_ENV).is_some() {
        run_master();
        return;
    }
    // `cargo bench` passes `--bench`; there is nothing else to choose.
    let secs = setting("ROCKONTROL_BENCH_SECS", 60);
    let rate = setting("ROCKONTROL_BENCH_RATE", 1000);
    let receivers = setting("ROCKONTROL_BENCH_RECEIVERS", 100) as usize;
    assert!(
        secs > 0 && rate > 0 && receivers > 0,
        "every setting must be positive"
    );
    run_bench(secs, rate, receivers);
}

/// The child process: a master server on 127.0.0.1, until its stdin closes.
fn run_master() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-master")
        .enable_all()
        .build()
        .expect("master runtime");
    let config = r#"{"role": "master", "node_id": "bench-master", "listen_port": 0, "broadcast_enabled": false}"#;
    let Ok(NodeConfig::Master(config)) = NodeConfig::parse(config, Syntax::Json, "bench") else {
        panic!("bench master config");
    };
    let (show_tx, _show_rx) = mpsc::channel(16);
    let shared = Arc::new(MasterShared {
        registry: Mutex::new(Registry::new(&config, SystemTime::now())),
        keys: Keys {
            control: vec![KEY.into()],
            read_only: vec![],
        },
        show_commands: show_tx,
        clock: AtomicU64::new(0),
        bad_frames: AtomicU64::new(0),
    });
    std::thread::spawn(|| {
        // The parent holds our stdin: when it goes (or ends), so do we.
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    runtime.block_on(async {
        let (listener, addr) = master::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind the master");
        println!("listening {addr}");
        let _ = std::io::stdout().flush();
        master::serve(listener, shared, std::future::pending())
            .await
            .expect("master server");
    });
}

/// The master child; killed when dropped.
struct MasterProcess {
    child: Child,
    addr: SocketAddr,
}

impl MasterProcess {
    fn start() -> MasterProcess {
        let exe = std::env::current_exe().expect("this executable");
        let mut child = Command::new(exe)
            .env(MASTER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the master process");
        let stdout = child.stdout.take().expect("master stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("master address line");
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("master said {line:?}"));
        MasterProcess { child, addr }
    }

    /// (user + system CPU seconds, RSS KiB, peak RSS KiB).
    fn usage(&self) -> (f64, u64, u64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are 14th and 15th.
        let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let cpu = (ticks(11) + ticks(12)) as f64 / clock_ticks_per_second();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (cpu, kib("VmRSS:"), kib("VmHWM:"))
    }
}

impl Drop for MasterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// What every client shares: when each command was posted and how often it arrived.
struct Tally {
    start: Instant,
    posted_ns: Vec<AtomicU64>,
    seen: Vec<AtomicU8>,
    welcomed: AtomicUsize,
    disconnects: AtomicUsize,
    retries: AtomicUsize,
}

impl Tally {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// One receiver: the real link plus what a node does with commands (ack) and heartbeats.
async fn receiver(
    index: usize,
    addr: SocketAddr,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
) -> Vec<u64> {
    let (ev_tx, mut events) = mpsc::channel(1024);
    let (out, out_rx) = mpsc::channel(1024);
    let link = LinkConfig {
        node_id: format!("bench-{index:03}"),
        key: Some(KEY.into()),
        universes: vec![index as u16 + 1],
        capabilities: vec![Capability::DmxOutput],
        master: MasterAddress::Fixed(addr),
        reconnect: Duration::from_secs(5),
        fetch_shows: false,
        known_shows: vec![],
    };
    let link = tokio::spawn(run_link(link, ev_tx, out_rx));
    let mut latencies = Vec::new();
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = heartbeat.tick() => {
                let _ = out.try_send(ToMaster::Heartbeat {
                    status: "online".into(),
                    metrics: Metrics::default(),
                });
            }
            event = events.recv() => match event {
                None => break,
                Some(LinkEvent::Message(ToReceiver::Welcome(_))) => {
                    tally.welcomed.fetch_add(1, Ordering::Relaxed);
                }
                Some(LinkEvent::Message(ToReceiver::Command { command_id, attempt, command })) => {
                    let now = tally.now_ns();
                    if attempt > 1 {
                        tally.retries.fetch_add(1, Ordering::Relaxed);
                    }
                    let seq = match &command {
                        NodeCommand::Media { clip: Some(clip), .. } => {
                            clip.strip_prefix("bench-").and_then(|n| n.parse::<usize>().ok())
                        }
                        _ => None,
                    };
                    if let Some(seq) = seq.filter(|s| *s < tally.seen.len()) {
                        tally.seen[seq].fetch_add(1, Ordering::Relaxed);
                        let posted = tally.posted_ns[seq].load(Ordering::Relaxed);
                        latencies.push(now.saturating_sub(posted));
                    }
                    let _ = out.try_send(ToMaster::Ack {
                        command_id,
                        status: AckStatus::Executed,
                        reason: None,
                    });
                }
                Some(LinkEvent::Disconnected(reason)) => {
                    tally.disconnects.fetch_add(1, Ordering::Relaxed);
                    eprintln!("bench-{index:03}: link down: {reason}");
                }
                Some(_) => {}
            },
        }
    }
    link.abort();
    latencies
}

/// A keep-alive HTTP/1.1 connection for posting commands.
struct Poster {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Poster {
    fn connect(addr: SocketAddr) -> Poster {
        let writer = TcpStream::connect(addr).expect("connect the poster");
        writer.set_nodelay(true).expect("TCP_NODELAY");
        writer
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let reader = BufReader::new(writer.try_clone().expect("clone the poster socket"));
        Poster { writer, reader }
    }

    /// Writes one request (`mark` runs just before the write) and reads its answer.
    fn post(&mut self, path: &str, body: &str, mark: impl FnOnce()) -> (u16, String) {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        mark();
        self.writer
            .write_all(request.as_bytes())
            .expect("write the request");
        let mut status = 0u16;
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("response header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(code) = l.strip_prefix("HTTP/1.1 ") {
                status = code.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            } else if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).expect("response body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn micros(ns: u64) -> String {
    format!("{:.0} µs", ns as f64 / 1000.0)
}

fn run_bench(secs: u64, rate: u64, receivers: usize) {
    let total = (secs * rate) as usize;
    println!(
        "load: {receivers} receivers, {rate} commands/s for {secs} s ({total} commands), loopback"
    );
    let master = MasterProcess::start();
    let addr = master.addr;
    let tally = Arc::new(Tally {
        start: Instant::now(),
        posted_ns: (0..total).map(|_| AtomicU64::new(0)).collect(),
        seen: (0..total).map(|_| AtomicU8::new(0)).collect(),
        welcomed: AtomicUsize::new(0),
        disconnects: AtomicUsize::new(0),
        retries: AtomicUsize::new(0),
    });
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-receivers")
        .enable_all()
        .build()
        .expect("client runtime");
    let (stop_tx, stop_rx) = watch::channel(false);
    let handles: Vec<_> = (0..receivers)
        .map(|i| clients.spawn(receiver(i, addr, Arc::clone(&tally), stop_rx.clone())))
        .collect();
    let start = Instant::now();
    while tally.welcomed.load(Ordering::Relaxed) < receivers {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "only {} of {receivers} receivers connected within 30 s",
            tally.welcomed.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "{receivers} receivers connected in {:.2} s",
        start.elapsed().as_secs_f64()
    );

    // The load: one command every 1/rate s, round robin over the receivers.
    let mut poster = Poster::connect(addr);
    let (cpu_before, _, _) = master.usage();
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let mut rest_ns = Vec::with_capacity(total);
    let mut refused = 0usize;
    let mut max_lag = Duration::ZERO;
    let load_start = Instant::now();
    for seq in 0..total {
        let due = load_start + period * seq as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else {
            max_lag = max_lag.max(now - due);
        }
        let node = format!("bench-{:03}", seq % receivers);
        let body = format!(r#"{{"type": "media", "action": "seek", "clip": "bench-{seq}"}}"#);
        let mut sent = 0;
        let (status, reply) = poster.post(&format!("/api/nodes/{node}/command"), &body, || {
            sent = tally.now_ns();
            tally.posted_ns[seq].store(sent, Ordering::Relaxed);
        });
        rest_ns.push(tally.now_ns() - sent);
        if status != 202 || !reply.contains("\"sent\"") {
            refused += 1;
            if refused <= 5 {
                eprintln!("command {seq} to {node}: HTTP {status} {reply}");
            }
        }
    }
    let load_secs = load_start.elapsed().as_secs_f64();
    let (cpu_after, rss_kib, peak_kib) = master.usage();

    // Every command arrives, and every ack reaches the master (bounded waits).
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && tally.seen.iter().any(|s| s.load(Ordering::Relaxed) == 0) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (executed, pending) = loop {
        let (executed, pending) = master_counts(addr);
        if pending == 0 || Instant::now() > deadline {
            break (executed, pending);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = stop_tx.send(true);
    let mut latencies: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| clients.block_on(h).unwrap_or_default())
        .collect();
    clients.shutdown_timeout(Duration::from_secs(1));
    latencies.sort_unstable();
    rest_ns.sort_unstable();
    let lost = tally
        .seen
        .iter()
        .filter(|s| s.load(Ordering::Relaxed) == 0)
        .count();
    let twice = tally
        .seen
        .iter()
        .filter(|s| s.load(Ordering::Relaxed) > 1)
        .count();
    let cpu = (cpu_after - cpu_before) / load_secs * 100.0;

    println!(
        "sent {total} commands in {load_secs:.2} s ({:.1}/s; poster at most {:.2} ms behind schedule)",
        total as f64 / load_secs,
        max_lag.as_secs_f64() * 1000.0
    );
    println!(
        "delivery latency (POST written → command at the receiver): p50 {}, p99 {}, p99.9 {}, max {}",
        micros(percentile(&latencies, 50.0)),
        micros(percentile(&latencies, 99.0)),
        micros(percentile(&latencies, 99.9)),
        micros(latencies.last().copied().unwrap_or(0)),
    );
    println!(
        "REST round trip (POST → 202 sent): p50 {}, p99 {}, max {}",
        micros(percentile(&rest_ns, 50.0)),
        micros(percentile(&rest_ns, 99.0)),
        micros(rest_ns.last().copied().unwrap_or(0)),
    );
    println!(
        "commands lost: {lost}, delivered twice: {twice}, refused: {refused}, re-sent by the master: {}, link drops: {}",
        tally.retries.load(Ordering::Relaxed),
        tally.disconnects.load(Ordering::Relaxed)
    );
    println!("acks: {executed} executed at the master, {pending} still pending");
    println!(
        "master: CPU {cpu:.1} % of one core, RSS {:.1} MiB (peak {:.1} MiB)",
        rss_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0
    );
    println!(
        "| {receivers} | {rate}/s × {secs} s | {} | {} | {} | {lost} | {cpu:.1} % | {:.1} MiB |",
        micros(percentile(&latencies, 50.0)),
        micros(percentile(&latencies, 99.0)),
        micros(latencies.last().copied().unwrap_or(0)),
        rss_kib as f64 / 1024.0
    );
    drop(master);
    assert_eq!(lost, 0, "every command must arrive");
    assert_eq!(refused, 0, "every command must be taken");
    assert_eq!(pending, 0, "every command must be acknowledged");
}

/// (commands executed, commands pending) over every node, from `GET /api/nodes`.
fn master_counts(addr: SocketAddr) -> (u64, u64) {
    let Ok((200, body)) =
        rockontrol_net::client::http_request_blocking(addr, "GET", "/api/nodes", Some(KEY), None)
    else {
        return (0, u64::MAX);
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
        return (0, u64::MAX);
    };
    let nodes = json["nodes"].as_array().cloned().unwrap_or_default();
    let sum = |key: &str| nodes.iter().filter_map(|n| n[key].as_u64()).sum();
    (sum("commands_executed"), sum("pending_commands"))
}
