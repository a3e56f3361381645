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
//! A second phase measures the replication fan-out: the master publishes show deltas (a
//! playback master level) straight into its registry at the same rate, each going to every
//! receiver (100 × 1000 frames/s). The time of publication travels in the delta (wall clock,
//! the same on both processes); the engine's tick, which a show command waits for by design
//! (at most 22.7 ms at 44 Hz), is not part of this figure.
//!
//! Settings (environment): `ROCKONTROL_BENCH_SECS` (60, per phase), `ROCKONTROL_BENCH_RATE`
//! (commands/s, 1000), `ROCKONTROL_BENCH_RECEIVERS` (100), `ROCKONTROL_BENCH_PHASES`
//! (`commands,deltas`). Nothing is sent beyond 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rockontrol_engine::{Command as ShowCommand, PlaybackState};
use rockontrol_net::auth::Keys;
use rockontrol_net::config::{Capability, NodeConfig, Syntax};
use rockontrol_net::health;
use rockontrol_net::master::{self, MasterShared};
use rockontrol_net::protocol::{AckStatus, NodeCommand, ToMaster, ToReceiver};
use rockontrol_net::receiver::{LinkConfig, LinkEvent, MasterAddress, run_link};
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
    let phases =
        std::env::var("ROCKONTROL_BENCH_PHASES").unwrap_or_else(|_| "commands,deltas".into());
    run_bench(secs, rate, receivers, &phases);
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
    let shared = Arc::new(MasterShared::new(
        Registry::new(&config, SystemTime::now()),
        Keys {
            control: vec![KEY.into()],
            read_only: vec![],
        },
        show_tx,
        rockontrol_net::master::server::PluginCommands::new(mpsc::channel(16).0),
        None,
    ));
    let handle = runtime.handle().clone();
    let publisher = Arc::clone(&shared);
    std::thread::spawn(move || {
        // The parent holds our stdin: `deltas RATE SECS` starts the fan-out phase; when stdin
        // goes (or ends), so do we.
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            let words: Vec<u64> = line
                .strip_prefix("deltas ")
                .map(|rest| rest.split(' ').filter_map(|w| w.parse().ok()).collect())
                .unwrap_or_default();
            if let [rate, secs] = words[..] {
                handle.spawn(publish_deltas(Arc::clone(&publisher), rate, secs));
            }
        }
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

fn epoch_ns() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// In the master: `rate` show deltas a second for `secs` s, each to every receiver. The
/// delta's playback name carries its number and publication time: `N:EPOCH_NS`.
async fn publish_deltas(shared: Arc<MasterShared>, rate: u64, secs: u64) {
    let state = PlaybackState {
        effects: Vec::new(),
        grand_master: 1.0,
        blackout: false,
        action_seq: 0,
        playbacks: vec![],
    };
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let start = tokio::time::Instant::now();
    for seq in 0..rate * secs {
        tokio::time::sleep_until(start + period * seq as u32).await;
        let command = ShowCommand::Master {
            playback: format!("{seq}:{}", epoch_ns()),
            level: 1.0,
        };
        shared.registry().publish_delta(seq, command, state.clone());
    }
}

/// The master child; killed when dropped.
struct MasterProcess {
    child: Child,
    addr: SocketAddr,
    stdin: Option<std::process::ChildStdin>,
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
        let stdin = child.stdin.take();
        MasterProcess { child, addr, stdin }
    }

    /// Starts the fan-out phase in the master.
    fn publish_deltas(&mut self, rate: u64, secs: u64) {
        if let Some(stdin) = &mut self.stdin {
            writeln!(stdin, "deltas {rate} {secs}").expect("tell the master");
            stdin.flush().expect("tell the master");
        }
    }

    /// (user + system CPU seconds, RSS MiB, peak RSS MiB).
    fn usage(&self) -> (f64, f64, f64) {
        let pid = Some(self.child.id());
        (
            health::cpu_time(pid).unwrap_or_default().as_secs_f64(),
            health::memory_mb(pid).unwrap_or(0.0),
            health::peak_memory_mb(pid).unwrap_or(0.0),
        )
    }
}

impl Drop for MasterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This process's user + system CPU seconds.
fn own_cpu_seconds() -> f64 {
    health::cpu_time(None).unwrap_or_default().as_secs_f64()
}

/// What every client shares: when each command was posted and how often it arrived.
struct Tally {
    start: Instant,
    posted_ns: Vec<AtomicU64>,
    seen: Vec<AtomicU8>,
    welcomed: AtomicUsize,
    disconnects: AtomicUsize,
    retries: AtomicUsize,
    /// Deltas of the fan-out phase expected per receiver, and received (all receivers).
    deltas_expected: usize,
    deltas_received: AtomicUsize,
}

/// What one receiver measured.
#[derive(Default)]
struct ReceiverResult {
    command_latencies: Vec<u64>,
    delta_latencies: Vec<u64>,
    /// Fan-out deltas received, by number (a count: more than 1 is a duplicate).
    deltas: Vec<u8>,
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
) -> ReceiverResult {
    let (ev_tx, mut events) = mpsc::channel(1024);
    let (out, out_rx) = mpsc::channel(1024);
    let link = LinkConfig {
        node_id: format!("bench-{index:03}"),
        key: Some(KEY.into()),
        universes: vec![index as u16 + 1],
        capabilities: vec![Capability::DmxOutput],
        master: MasterAddress::Fixed(addr),
        master_id: None,
        reconnect: Duration::from_secs(5),
        fetch_shows: false,
        known_shows: vec![],
        protocol_hash: String::new(),
        clock_inbox: None,
        // The bench's master serves plaintext (`master::serve`).
        security: rockontrol_net::receiver::LinkSecurity::Plain,
    };
    let link = tokio::spawn(run_link(link, ev_tx, out_rx));
    let mut result = ReceiverResult {
        deltas: vec![0; tally.deltas_expected],
        ..ReceiverResult::default()
    };
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = heartbeat.tick() => {
                let _ = out.try_send(ToMaster::Heartbeat {
                    status: "online".into(),
                    metrics: Box::default(),
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
                        result.command_latencies.push(now.saturating_sub(posted));
                    }
                    let _ = out.try_send(ToMaster::Ack {
                        command_id,
                        status: AckStatus::Executed,
                        reason: None,
                    });
                }
                Some(LinkEvent::Message(ToReceiver::Delta(delta))) => {
                    let now = epoch_ns();
                    let ShowCommand::Master { playback, .. } = &delta.command else {
                        continue;
                    };
                    let Some((seq, sent)) = playback.split_once(':') else { continue };
                    let (Ok(seq), Ok(sent)) = (seq.parse::<usize>(), sent.parse::<u64>()) else {
                        continue;
                    };
                    if let Some(count) = result.deltas.get_mut(seq) {
                        *count = count.saturating_add(1);
                        result.delta_latencies.push(now.saturating_sub(sent));
                        tally.deltas_received.fetch_add(1, Ordering::Relaxed);
                    }
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
    result
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

fn run_bench(secs: u64, rate: u64, receivers: usize, phases: &str) {
    let total = (secs * rate) as usize;
    let (commands, deltas) = (phases.contains("commands"), phases.contains("deltas"));
    println!("load: {receivers} receivers, {rate}/s for {secs} s per phase ({phases}), loopback");
    let mut master = MasterProcess::start();
    let addr = master.addr;
    let tally = Arc::new(Tally {
        start: Instant::now(),
        posted_ns: (0..total).map(|_| AtomicU64::new(0)).collect(),
        seen: (0..total).map(|_| AtomicU8::new(0)).collect(),
        welcomed: AtomicUsize::new(0),
        disconnects: AtomicUsize::new(0),
        retries: AtomicUsize::new(0),
        deltas_expected: if deltas { total } else { 0 },
        deltas_received: AtomicUsize::new(0),
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

    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut rest_ns = Vec::new();
    let mut command_cpu = None;
    if commands {
        // Node commands: one every 1/rate s, round robin over the receivers.
        let mut poster = Poster::connect(addr);
        let (cpu_before, _, _) = master.usage();
        let period = Duration::from_nanos(1_000_000_000 / rate);
        rest_ns.reserve(total);
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
        let (cpu_after, _, _) = master.usage();
        command_cpu = Some((cpu_after - cpu_before) / load_secs * 100.0);
        // Every command arrives, and every ack reaches the master (bounded waits).
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && tally.seen.iter().any(|s| s.load(Ordering::Relaxed) == 0)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (executed, pending) = loop {
            let (executed, pending) = master_counts(addr);
            if pending == 0 || Instant::now() > deadline {
                break (executed, pending);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
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
        report.push(format!(
            "commands: sent {total} in {load_secs:.2} s ({:.1}/s; poster at most {:.2} ms behind schedule)",
            total as f64 / load_secs,
            max_lag.as_secs_f64() * 1000.0
        ));
        report.push(format!(
            "commands: lost {lost}, delivered twice {twice}, refused {refused}, re-sent by the master {}; acks: {executed} executed at the master, {pending} pending",
            tally.retries.load(Ordering::Relaxed),
        ));
        if lost > 0 || refused > 0 || pending > 0 {
            failures.push(format!(
                "commands: {lost} lost, {refused} refused, {pending} unacknowledged"
            ));
        }
    }

    let mut delta_cpu = None;
    let mut clients_cpu = None;
    if deltas {
        let (cpu_before, _, _) = master.usage();
        let own_before = own_cpu_seconds();
        let phase_start = Instant::now();
        master.publish_deltas(rate, secs);
        let expected = total * receivers;
        let deadline = phase_start + Duration::from_secs(secs + 10);
        while tally.deltas_received.load(Ordering::Relaxed) < expected && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (cpu_after, _, _) = master.usage();
        let phase_secs = phase_start.elapsed().as_secs_f64().max(secs as f64);
        delta_cpu = Some((cpu_after - cpu_before) / phase_secs * 100.0);
        clients_cpu = Some((own_cpu_seconds() - own_before) / phase_secs * 100.0);
    }

    let (_, rss_mib, peak_mib) = master.usage();
    let _ = stop_tx.send(true);
    let results: Vec<ReceiverResult> = handles
        .into_iter()
        .map(|h| clients.block_on(h).unwrap_or_default())
        .collect();
    clients.shutdown_timeout(Duration::from_secs(1));

    let mut table = Vec::new();
    if commands {
        let mut latencies: Vec<u64> = results
            .iter()
            .flat_map(|r| r.command_latencies.iter().copied())
            .collect();
        latencies.sort_unstable();
        rest_ns.sort_unstable();
        let lost = tally
            .seen
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) == 0)
            .count();
        let cpu = command_cpu.unwrap_or(0.0);
        println!(
            "node commands (POST written → command at the receiver): p50 {}, p99 {}, p99.9 {}, max {}",
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
        table.push(format!(
            "| node commands, {rate}/s round robin | {} | {} | {} | {} | {lost} of {total} | {cpu:.1} % |",
            micros(percentile(&latencies, 50.0)),
            micros(percentile(&latencies, 99.0)),
            micros(percentile(&latencies, 99.9)),
            micros(latencies.last().copied().unwrap_or(0)),
        ));
    }
    if deltas {
        let mut latencies: Vec<u64> = results
            .iter()
            .flat_map(|r| r.delta_latencies.iter().copied())
            .collect();
        latencies.sort_unstable();
        let missing: usize = results
            .iter()
            .map(|r| r.deltas.iter().filter(|c| **c == 0).count())
            .sum();
        let twice: usize = results
            .iter()
            .map(|r| r.deltas.iter().filter(|c| **c > 1).count())
            .sum();
        let cpu = delta_cpu.unwrap_or(0.0);
        let expected = total * receivers;
        println!(
            "show deltas to every receiver (published → at the receiver): p50 {}, p99 {}, p99.9 {}, max {}",
            micros(percentile(&latencies, 50.0)),
            micros(percentile(&latencies, 99.0)),
            micros(percentile(&latencies, 99.9)),
            micros(latencies.last().copied().unwrap_or(0)),
        );
        report.push(format!(
            "deltas: {} of {expected} deliveries, {missing} missing, {twice} twice; the 100 receivers (this process) used {:.1} % of one core",
            latencies.len(),
            clients_cpu.unwrap_or(0.0)
        ));
        table.push(format!(
            "| show deltas, {rate}/s to all {receivers} | {} | {} | {} | {} | {missing} of {expected} | {cpu:.1} % |",
            micros(percentile(&latencies, 50.0)),
            micros(percentile(&latencies, 99.0)),
            micros(percentile(&latencies, 99.9)),
            micros(latencies.last().copied().unwrap_or(0)),
        ));
        if missing > 0 || twice > 0 {
            failures.push(format!("deltas: {missing} missing, {twice} twice"));
        }
    }
    for line in &report {
        println!("{line}");
    }
    println!(
        "link drops: {}; master RSS {:.1} MiB (peak {:.1} MiB); master CPU per phase in the table (% of one core)",
        tally.disconnects.load(Ordering::Relaxed),
        rss_mib,
        peak_mib
    );
    println!("| load | p50 | p99 | p99.9 | max | lost | master CPU |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for row in &table {
        println!("{row}");
    }
    drop(master);
    assert!(failures.is_empty(), "{failures:?}");
}

/// (commands executed, commands pending) over every node, from `GET /api/nodes`.
fn master_counts(addr: SocketAddr) -> (u64, u64) {
    let Ok((200, body)) = rockontrol_net::client::http_request_blocking(
        &rockontrol_net::client::Endpoint::plain(addr),
        "GET",
        "/api/nodes",
        Some(KEY),
        None,
    ) else {
        return (0, u64::MAX);
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
        return (0, u64::MAX);
    };
    let nodes = json["nodes"].as_array().cloned().unwrap_or_default();
    let sum = |key: &str| nodes.iter().filter_map(|n| n[key].as_u64()).sum();
    (sum("commands_executed"), sum("pending_commands"))
}
