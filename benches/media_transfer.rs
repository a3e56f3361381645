//! Media transfer benchmark (issue 13): real `rockontrol` processes on loopback, bounded, stops
//! by itself.
//!
//! `cargo bench --workspace --bench media_transfer` (release), or `cargo test --workspace
//! --bench media_transfer` (the dev build). Settings (environment):
//! `ROCKONTROL_MEDIA_BENCH_MB` (1000: the clip's size), `ROCKONTROL_MEDIA_BENCH_RECEIVERS` (10),
//! `ROCKONTROL_MEDIA_BENCH_MASTER_MBIT` (1000: the master's serving cap, a gigabit port).
//!
//! 1. Throughput: `rockontrol media fetch` (uncapped) against `curl` fetching the same clip
//!    from the same `rockontrol media serve`, in the same run; the ratio.
//! 2. DMX lateness: a receiver outputs a universe (sACN to a local listener) while it fetches
//!    the clip at full speed, then idle; p50/p99/max of the lateness of each packet against
//!    the tick period (interval − period), in both windows. Again with the receivers' default
//!    transfer cap (300 Mbit/s).
//! 3. Fan-out: the clip to N receivers, every node's port capped (a gigabit port each);
//!    without peer assist, then with it (`media_serve` on every receiver); time until every
//!    receiver reports it ready, and how many copies the master sent. Twice: a cold start
//!    (all N at once: peers trade the chunks they verified while they download), then a late
//!    group (two receivers first, the others once those are ready).

#[allow(dead_code, reason = "the bench uses part of the test support")]
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::node::{BIN, KEY, Listener, Node, free_port, master_addr, rest, temp_dir};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An uncompressed clip of about `mb` megabytes (media, so the library takes it).
fn make_clip(path: &Path, mb: u64) {
    let frames = (mb * 1_000_000).div_ceil(345_600);
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=640x360:rate=25")
        .args(["-frames:v", &frames.to_string(), "-c:v", "rawvideo"])
        .args(["-pix_fmt", "yuv420p"])
        .arg(path));
}

fn add(library: &Path, file: &Path) -> String {
    let out = run(Command::new(BIN)
        .args(["media", "add", "--library"])
        .arg(library)
        .arg(file));
    out.split_whitespace().next().expect("an id").to_string()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Throughput of `media fetch` against curl, from one `media serve`, both in plaintext
/// (`--insecure`): what is compared is the fetcher (hashing, fsync), not TLS.
fn throughput(dir: &Path, library: &Path, show: &Path, id: &str, bytes: u64) {
    let log = std::fs::File::create(dir.join("serve.log")).expect("log");
    let mut serve = Command::new(BIN)
        .args(["media", "serve", "--insecure", "--library"])
        .arg(library)
        .arg("--show")
        .arg(show)
        .env("ROCKONTROL_API_KEY", KEY)
        .stderr(log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("media serve");
    let addr = {
        use std::io::BufRead;
        let stdout = serve.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        loop {
            let line = lines
                .next()
                .expect("serve prints its address")
                .expect("line");
            if let Some(a) = line
                .rsplit("http://")
                .next()
                .filter(|_| line.contains("http://"))
            {
                break a.trim().to_string();
            }
        }
    };
    let mut rows = Vec::new();
    for round in 0..2 {
        let target = dir.join(format!("curl-{round}.bin"));
        let out = run(Command::new("curl")
            .args(["-s", "-o"])
            .arg(&target)
            .args([
                "-w",
                "%{time_total}",
                "-H",
                &format!("Authorization: Bearer {KEY}"),
            ])
            .arg(format!("http://{addr}/api/media/objects/{id}")));
        let curl_s: f64 = out.trim().parse().expect("curl time");
        let _ = std::fs::remove_file(&target);
        let store = dir.join(format!("fetch-{round}"));
        let started = Instant::now();
        let out = Command::new(BIN)
            .args([
                "media", "fetch", "--master", &addr, "--node", "bench", "--dir",
            ])
            .arg(&store)
            .args(["--mbit", "0", "--until-ready", "--insecure"])
            .env("ROCKONTROL_API_KEY", KEY)
            .output()
            .expect("media fetch");
        let wall = started.elapsed().as_secs_f64();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        // "downloaded and verified: N bytes in X s (Y Mbit/s)"
        let fetch_s: f64 = log
            .lines()
            .find(|l| l.contains("downloaded and verified"))
            .and_then(|l| l.split(" bytes in ").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("a transfer time in the fetch log: {log}"));
        let _ = std::fs::remove_dir_all(&store);
        let mbit = |s: f64| bytes as f64 * 8.0 / 1e6 / s;
        rows.push((mbit(fetch_s), mbit(curl_s), wall));
    }
    let _ = serve.kill();
    let _ = serve.wait();
    println!(
        "## throughput on loopback ({:.0} MB clip)",
        bytes as f64 / 1e6
    );
    for (i, (fetch, curl, wall)) in rows.iter().enumerate() {
        println!(
            "round {i}: media fetch {fetch:.0} Mbit/s (hash while streaming, fsync; {wall:.1} s with start, probe) · curl {curl:.0} Mbit/s · ratio {:.2}",
            fetch / curl
        );
    }
}

fn master_config(dir: &Path, port: u16, cap: Option<u64>) -> PathBuf {
    let path = dir.join("master.json");
    let cap = cap.map_or_else(String::new, |c| format!(r#", "media_serve_mbit": {c}"#));
    std::fs::write(
        &path,
        format!(
            r#"{{"role": "master", "node_id": "master-01", "listen_port": {port}, "bind": "127.0.0.1", "broadcast_enabled": false{cap}}}"#
        ),
    )
    .expect("master config");
    path
}

/// A media receiver's config, its transfers capped at `mbit` (0: none).
fn receiver_config(dir: &Path, node: &str, port: u16, mbit: u32, extra: &str) -> PathBuf {
    let path = dir.join(format!("{node}.json"));
    std::fs::write(
        &path,
        format!(
            r#"{{"role": "receiver", "node_id": "{node}", "master_ip": "127.0.0.1", "master_port": {port},
  "capabilities": ["media_playback", "dmx_output"], "auto_discover": false,
  "broadcast_enabled": false, "media_bandwidth_mbit": {mbit}{extra}}}"#
        ),
    )
    .expect("receiver config");
    path
}

/// Waits until every node in `nodes` reports its media ready; the time it took.
fn wait_ready(addr: std::net::SocketAddr, nodes: &[String], limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (_, status) = rest(addr, "GET", "/api/media/status", Some(KEY), None);
        if nodes
            .iter()
            .all(|n| status["nodes"][n]["ready"].as_bool() == Some(true))
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "not ready within {limit:?}: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// DMX lateness on a receiver during a fetch capped at `mbit` (0: full speed), then idle.
fn dmx_lateness(dir: &Path, show: &Path, state: &Path, mbit: u32) {
    let listener = Listener::start_for(Duration::from_secs(600));
    let port = free_port();
    let master = Node::start_for(
        "master",
        &master_config(dir, port, None),
        Some(show),
        state,
        400,
    );
    let addr = master_addr(&master);
    let cfg = receiver_config(
        dir,
        "dmx-media",
        port,
        mbit,
        &format!(
            r#", "local_universes": [1], "dmx_destination": "127.0.0.1:{}""#,
            listener.port
        ),
    );
    let started = Instant::now();
    let receiver = Node::start_for("receiver", &cfg, None, &dir.join("dmx-media"), 400);
    let took = wait_ready(addr, &["dmx-media".to_string()], Duration::from_secs(300));
    let ready_at = started + took;
    std::thread::sleep(Duration::from_secs(12));
    let arrivals = listener.arrivals(1);
    // The receiver outputs once linked, and fetches from then on.
    let first = arrivals.first().copied().unwrap_or(ready_at);
    // The output's period: the median interval (the show's tick rate, or its keep-alive).
    let mut intervals: Vec<f64> = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    intervals.sort_by(f64::total_cmp);
    let period = percentile(&intervals, 0.5);
    let lateness = |from: Instant, to: Instant| {
        let mut late: Vec<f64> = arrivals
            .windows(2)
            .filter(|w| w[0] >= from && w[1] <= to)
            .map(|w| ((w[1] - w[0]).as_secs_f64() - period) * 1e3)
            .collect();
        late.sort_by(f64::total_cmp);
        late
    };
    let busy = lateness(first, ready_at);
    let idle = lateness(
        ready_at + Duration::from_secs(1),
        ready_at + Duration::from_secs(11),
    );
    println!(
        "## DMX output lateness (interval − median interval {:.1} ms, in ms), one receiver",
        period * 1e3
    );
    let during = if mbit == 0 {
        "during a full-speed fetch".to_string()
    } else {
        format!("during a fetch at {mbit} Mbit/s (the default cap)")
    };
    for (name, l) in [(during.as_str(), &busy), ("idle", &idle)] {
        println!(
            "{name}: {} packets · p50 {:.3} · p99 {:.3} · max {:.3}",
            l.len(),
            percentile(l, 0.5),
            percentile(l, 0.99),
            l.last().copied().unwrap_or(f64::NAN)
        );
    }
    drop(receiver);
    drop(master);
}

/// Bytes the master sent to `nodes` (the sum of their `from_master_bytes`).
fn master_bytes(addr: std::net::SocketAddr, nodes: &[String]) -> u64 {
    let (_, status) = rest(addr, "GET", "/api/media/status", Some(KEY), None);
    nodes
        .iter()
        .map(|n| {
            status["nodes"][n]["from_master_bytes"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum()
}

/// The clip to `n` receivers, with or without peer assist. `staged`: two receivers first, the
/// others once those two are ready (a late group: a second site, a replaced node, a show
/// change); else all at once (a cold start). Every node's port is capped at `cap` (the
/// master's and, with peer assist, each peer's). Returns the time for the first group, for
/// the others (zero when not staged), and the bytes the master sent.
fn fan_out(
    dir: &Path,
    show: &Path,
    state: &Path,
    n: usize,
    cap: u64,
    peers: bool,
    staged: bool,
) -> (Duration, Duration, u64) {
    let port = free_port();
    let master = Node::start_for(
        "master",
        &master_config(dir, port, Some(cap)),
        Some(show),
        state,
        900,
    );
    let addr = master_addr(&master);
    let names: Vec<String> = (1..=n).map(|i| format!("r{i:02}")).collect();
    let extra = if peers {
        format!(r#", "media_serve": "127.0.0.1:0", "media_serve_mbit": {cap}"#)
    } else {
        String::new()
    };
    let start = |names: &[String]| -> Vec<Node> {
        names
            .iter()
            .map(|name| {
                let cfg = receiver_config(dir, name, port, 0, &extra);
                Node::start_for("receiver", &cfg, None, &dir.join(name), 900)
            })
            .collect()
    };
    let split = if staged { 2 } else { n };
    let first = start(&names[..split]);
    let seeds = wait_ready(addr, &names[..split], Duration::from_secs(900));
    let rest_nodes = start(&names[split..]);
    let others = wait_ready(addr, &names[split..], Duration::from_secs(900));
    let sent = master_bytes(addr, &names);
    drop(first);
    drop(rest_nodes);
    drop(master);
    for name in &names {
        let _ = std::fs::remove_dir_all(dir.join(name));
    }
    (seeds, others, sent)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mb = setting("ROCKONTROL_MEDIA_BENCH_MB", 1000);
    let n = setting("ROCKONTROL_MEDIA_BENCH_RECEIVERS", 10) as usize;
    let cap = setting("ROCKONTROL_MEDIA_BENCH_MASTER_MBIT", 1000);
    let dir = temp_dir("media-bench");
    let clip = dir.join("clip.avi");
    let t = Instant::now();
    make_clip(&clip, mb);
    let bytes = std::fs::metadata(&clip).expect("clip").len();
    let state = dir.join("state-master");
    let library = state.join("media");
    let id = add(&library, &clip);
    let _ = std::fs::remove_file(&clip);
    println!(
        "clip {id}: {bytes} bytes, made and added in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let show = dir.join("show.ron");
    std::fs::write(
        &show,
        format!(
            r#"(name: "bench", universes: [(id: 1)],
  profiles: [(manufacturer: "T", model: "D", channels: [(name: "D", attribute: Intensity)], modes: [(name: "1", channels: ["D"])])],
  fixtures: [(id: 1, name: "D", profile: "T/D", mode: "1", universe: 1, address: 1)],
  clips: [(name: "clip", id: "{id}")])"#
        ),
    )
    .expect("show");

    throughput(&dir, &library, &show, &id, bytes);
    for mbit in [0, rockontrol_library::fetch::DEFAULT_MBIT as u32] {
        dmx_lateness(&dir, &show, &state, mbit);
        let _ = std::fs::remove_dir_all(dir.join("dmx-media"));
    }
    for staged in [false, true] {
        if staged {
            println!(
                "## {mb} MB to {n} receivers, 2 first then {} more, every node's port capped at {cap} Mbit/s",
                n - 2
            );
        } else {
            println!(
                "## {mb} MB to {n} receivers all at once (cold start), every node's port capped at {cap} Mbit/s"
            );
        }
        let mut total = Vec::new();
        for peers in [false, true] {
            let (seeds, others, sent) = fan_out(&dir, &show, &state, n, cap, peers, staged);
            let all = seeds + others;
            let how = format!(
                "{} (the master sent {:.2} copies)",
                if peers {
                    "with peer assist"
                } else {
                    "without peer assist"
                },
                sent as f64 / bytes as f64
            );
            if staged {
                println!(
                    "{how}: first 2 in {:.1} s, the other {} in {:.1} s, all in {:.1} s",
                    seeds.as_secs_f64(),
                    n - 2,
                    others.as_secs_f64(),
                    all.as_secs_f64()
                );
            } else {
                println!("{how}: all {n} in {:.1} s", all.as_secs_f64());
            }
            total.push(all.as_secs_f64());
        }
        println!("peer assist: {:.2}× faster in all", total[0] / total[1]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
