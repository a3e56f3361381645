//! Fault soak: a master and three receivers as real `rockontrol` processes on loopback for
//! ten minutes, with a partition, a stall and a master restart injected at random times.
//!
//! `cargo test --workspace --bench soak` (the dev build the tests use; `cargo bench --bench
//! soak` runs the same with a release build). Settings (environment): `ROCKONTROL_SOAK_SECS`
//! (600), `ROCKONTROL_SOAK_SEED` (from the clock; printed, so a run can be repeated).
//!
//! - Partition: one receiver's link goes through a proxy that freezes (both TCP connections
//!   stay open, nothing passes) for 5–20 s.
//! - Stall: one receiver is stopped (SIGSTOP) for 4–8 s.
//! - Master restart: the master is killed (-9) and started again at once with its state dir.
//!
//! Receivers hold their last look on master loss. Every 500 ms a node command (an intensity
//! level or a blackout on/off) goes to a random receiver over REST, and every 5 s a show cue.
//! Measured on the wire and from the nodes: the worst gap between sACN packets of each
//! receiver's universe (a UDP listener decodes them), overall and outside the receiver's own
//! stall; the commands lost (accepted by REST, never executed) and duplicated (executed twice:
//! the receivers' `executed <id>` lines; no receiver restarts here, so each id once); the
//! time to detect each fault (the master's node state over REST, the receiver's `master lost`
//! line); and at the end each universe's value against the last command. Exits non-zero if a
//! command was lost or duplicated or a final value is wrong. Nothing leaves 127.0.0.1.

#[allow(dead_code, reason = "the soak uses part of the test support")]
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use rockontrol_net::client::http_request_blocking;
use support::node::{
    KEY, Listener, Node, endpoint, free_port, master_addr, master_config, receiver_config, signal,
    temp_dir,
};
use support::proxy::FreezingProxy;

/// One dimmer per universe 1..=3; cues 1 and 2 both at full (a cue change keeps the look, so
/// the value on the wire depends on the node commands only).
const SHOW: &str = r#"(
    name: "soak",
    universes: [(id: 1), (id: 2), (id: 3)],
    profiles: [(manufacturer: "Test", model: "Dim", channels: [(name: "D", attribute: Intensity)],
                modes: [(name: "1ch", channels: ["D"])])],
    fixtures: [
        (id: 1, name: "D1", profile: "Test/Dim", mode: "1ch", universe: 1, address: 1),
        (id: 2, name: "D2", profile: "Test/Dim", mode: "1ch", universe: 2, address: 1),
        (id: 3, name: "D3", profile: "Test/Dim", mode: "1ch", universe: 3, address: 1),
    ],
    cue_lists: [(name: "main", cues: [
        (number: 1, label: "a", fade_in: 0.0, values: {
            Fixture(1): {Intensity: 1.0}, Fixture(2): {Intensity: 1.0}, Fixture(3): {Intensity: 1.0}}),
        (number: 2, label: "b", fade_in: 0.0, values: {
            Fixture(1): {Intensity: 1.0}, Fixture(2): {Intensity: 1.0}, Fixture(3): {Intensity: 1.0}}),
    ])],
    playbacks: [(name: "main", cue_list: "main")],
)"#;

const RECEIVERS: usize = 3;
const LEVELS: [f64; 5] = [0.2, 0.4, 0.6, 0.8, 1.0];

fn setting(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number"))
    })
}

/// xorshift64*: enough to place faults from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// In `lo..hi` (`lo` when the range is empty).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next() % (hi - lo)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Partition,
    Stall,
    Restart,
}

/// A fault as planned and as it happened.
#[derive(Debug)]
struct Fault {
    kind: Kind,
    /// The receiver it hits (index; none for a restart).
    receiver: Option<usize>,
    at: Duration,
    length: Duration,
    started: Option<Instant>,
    ended: Option<Instant>,
}

/// One status poll of a node: its state, or `unreachable` while the master is down.
type StateLog = Vec<(Instant, usize, String)>;

fn node_id(i: usize) -> String {
    format!("node-0{}", i + 1)
}

/// A REST call that never panics: `None` while the master is unreachable.
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<(u16, serde_json::Value)> {
    let (status, text) =
        http_request_blocking(&endpoint(addr), method, path, Some(KEY), body).ok()?;
    Some((
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    ))
}

fn status(addr: SocketAddr, i: usize) -> Option<serde_json::Value> {
    match call(
        addr,
        "GET",
        &format!("/api/nodes/{}/status", node_id(i)),
        None,
    ) {
        Some((200, v)) => Some(v),
        _ => None,
    }
}

/// The ids a receiver reported executed (its `command_executed` events), with how often.
fn executed(node: &Node) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for id in node.executed_ids() {
        *ids.entry(id).or_insert(0) += 1;
    }
    ids
}

/// How a receiver's `master_lost` event begins (`--events -`).
const MASTER_LOST: &str = r#"{"event":"master_lost""#;

/// The first line of `node` containing `needle` read at or after `since`.
fn line_after(node: &Node, needle: &str, since: Instant) -> Option<Instant> {
    node.timed_lines()
        .into_iter()
        .find(|(t, l)| *t >= since && l.contains(needle))
        .map(|(t, _)| t)
}

/// The first poll at or after `since` that found receiver `i` in `state`.
fn state_after(log: &StateLog, i: usize, state: &str, since: Instant) -> Option<Instant> {
    log.iter()
        .find(|(t, n, s)| *t >= since && *n == i && s == state)
        .map(|(t, _, _)| *t)
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

fn since(t: Option<Instant>, from: Instant) -> Option<Duration> {
    t.map(|t| t.saturating_duration_since(from))
}

/// The worst gap between packet arrivals in `[from, to]`, and when it began, skipping gaps that
/// overlap `skip`.
fn worst_gap(
    arrivals: &[Instant],
    from: Instant,
    to: Instant,
    skip: Option<(Instant, Instant)>,
) -> (Duration, Instant) {
    let mut times: Vec<Instant> = vec![from];
    times.extend(arrivals.iter().copied().filter(|t| *t > from && *t < to));
    times.push(to);
    times
        .windows(2)
        .filter(|w| skip.is_none_or(|(a, b)| w[1] < a || w[0] > b))
        .map(|w| (w[1] - w[0], w[0]))
        .max_by_key(|(d, _)| *d)
        .unwrap_or((Duration::ZERO, from))
}

fn main() {
    let total = Duration::from_secs(setting("ROCKONTROL_SOAK_SECS").unwrap_or(600));
    assert!(
        total >= Duration::from_secs(120),
        "ROCKONTROL_SOAK_SECS: at least 120 (three faults and their recoveries)"
    );
    let seed = setting("ROCKONTROL_SOAK_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            % 1_000_000_007
    });
    println!(
        "soak: {} s, seed {seed} (ROCKONTROL_SOAK_SEED={seed} repeats it)",
        total.as_secs()
    );
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut faults = plan(&mut rng, total);
    for f in &faults {
        println!(
            "planned: {:?} {} at +{} s for {} s",
            f.kind,
            f.receiver.map_or("master".into(), node_id),
            f.at.as_secs(),
            f.length.as_secs()
        );
    }
    let ok = run(&mut rng, total, &mut faults);
    if !ok {
        std::process::exit(1);
    }
}

/// Three faults in three slots of the run (in a random order), each at a random time in its
/// slot with room for recovery before the next.
fn plan(rng: &mut Rng, total: Duration) -> Vec<Fault> {
    let mut kinds = vec![Kind::Partition, Kind::Stall, Kind::Restart];
    for i in (1..kinds.len()).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        kinds.swap(i, j);
    }
    let first = 15;
    let slot = (total.as_secs() - first - 40) / 3;
    kinds
        .into_iter()
        .enumerate()
        .map(|(k, kind)| {
            let length = match kind {
                Kind::Partition => rng.range(5, 21),
                Kind::Stall => rng.range(4, 9),
                Kind::Restart => 0,
            };
            let start = first + k as u64 * slot;
            let at = rng.range(start, start + slot.saturating_sub(length + 25).max(1));
            let receiver = (kind != Kind::Restart).then(|| rng.range(0, RECEIVERS as u64) as usize);
            Fault {
                kind,
                receiver,
                at: Duration::from_secs(at),
                length: Duration::from_secs(length),
                started: None,
                ended: None,
            }
        })
        .collect()
}

/// The expected look of one receiver from the commands accepted for it.
#[derive(Clone, Copy)]
struct Look {
    level: f64,
    blackout: bool,
}

impl Look {
    fn value(self) -> u8 {
        if self.blackout {
            0
        } else {
            (self.level * 255.0).round() as u8
        }
    }
}

fn run(rng: &mut Rng, total: Duration, faults: &mut [Fault]) -> bool {
    let dir = temp_dir("soak");
    let life = total + Duration::from_secs(300);
    let sacn = Listener::start_for(life);
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let show = dir.join("show.ron");
    std::fs::write(&show, SHOW).expect("show");
    let master_cfg = dir.join("master.json");
    std::fs::write(&master_cfg, master_config(port, RECEIVERS as u16)).expect("master config");
    let master_state = dir.join("state-master");
    let start_master =
        |state: &Path| Node::start_for("master", &master_cfg, Some(&show), state, life.as_secs());
    let mut master = start_master(&master_state);
    assert_eq!(
        master_addr(&master),
        addr,
        "the master listens where configured"
    );
    // Every receiver links through a proxy of its own, so any of them can be partitioned.
    let proxies: Vec<FreezingProxy> = (0..RECEIVERS).map(|_| FreezingProxy::start(addr)).collect();
    let receivers: Vec<Node> = (0..RECEIVERS)
        .map(|i| {
            let cfg = dir.join(format!("{}.json", node_id(i)));
            std::fs::write(
                &cfg,
                receiver_config(i as u16 + 1, proxies[i].port, sacn.port, "hold"),
            )
            .expect("config");
            Node::start_for(
                "receiver",
                &cfg,
                None,
                &dir.join(format!("state-{}", i + 1)),
                life.as_secs(),
            )
        })
        .collect();
    let ready = Instant::now();
    while (0..RECEIVERS).any(|i| status(addr, i).is_none_or(|s| s["state"] != "online")) {
        assert!(
            ready.elapsed() < Duration::from_secs(120),
            "the receivers came online"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cue = |n: u32| {
        call(
            addr,
            "POST",
            "/api/nodes/master-01/command",
            Some(&format!(
                r#"{{"type": "cue", "cue_id": {n}, "fade_time": 0, "playback": "main"}}"#
            )),
        )
        .is_some_and(|(s, _)| s == 200)
    };
    assert!(cue(1), "cue 1 on the master");
    for u in 1..=RECEIVERS as u16 {
        sacn.wait_value(u, |v| v == 255, Duration::from_secs(30));
    }
    println!(
        "all online and lit after {:.1} s; soak starts",
        ready.elapsed().as_secs_f64()
    );

    let t0 = Instant::now();
    let end = t0 + total;
    let mut looks = [Look {
        level: 1.0,
        blackout: false,
    }; RECEIVERS];
    // (receiver, command id) for every command REST accepted.
    let mut accepted: Vec<(usize, String)> = Vec::new();
    let mut refused = 0usize;
    let mut show_commands = (0usize, 0usize);
    let mut states: StateLog = Vec::new();
    let mut next_command = t0 + Duration::from_millis(500);
    let mut next_poll = t0;
    let mut tick = 0u64;
    while Instant::now() < end {
        let now = Instant::now();
        let at = now - t0;
        for f in faults.iter_mut() {
            if f.started.is_none() && at >= f.at {
                f.started = Some(Instant::now());
                match (f.kind, f.receiver) {
                    (Kind::Partition, Some(r)) => proxies[r].freeze(),
                    (Kind::Stall, Some(r)) => signal("-STOP", &receivers[r].pid()),
                    _ => {
                        master.kill();
                        master = start_master(&master_state);
                    }
                }
                println!(
                    "+{:.1} s: {:?} {} begins",
                    at.as_secs_f64(),
                    f.kind,
                    f.receiver.map_or("master".into(), node_id)
                );
            }
            if let Some(started) = f.started
                && f.ended.is_none()
                && now >= started + f.length
            {
                match (f.kind, f.receiver) {
                    (Kind::Partition, Some(r)) => proxies[r].heal(),
                    (Kind::Stall, Some(r)) => signal("-CONT", &receivers[r].pid()),
                    _ => {}
                }
                f.ended = Some(Instant::now());
            }
        }
        if now >= next_poll {
            next_poll = now + Duration::from_millis(100);
            for i in 0..RECEIVERS {
                let state = status(addr, i).map_or("unreachable".to_string(), |s| {
                    s["state"].as_str().unwrap_or("?").to_string()
                });
                states.push((Instant::now(), i, state));
            }
        }
        if now >= next_command {
            next_command += Duration::from_millis(500);
            tick += 1;
            if tick.is_multiple_of(10) {
                let ok = cue(1 + (tick / 10 % 2) as u32);
                show_commands.0 += 1;
                show_commands.1 += usize::from(ok);
            } else {
                let r = rng.range(0, RECEIVERS as u64) as usize;
                let mut look = looks[r];
                let body = if rng.range(0, 4) == 0 {
                    look.blackout = !look.blackout;
                    format!(r#"{{"type": "blackout", "on": {}}}"#, look.blackout)
                } else {
                    look.level = LEVELS[rng.range(0, LEVELS.len() as u64) as usize];
                    format!(r#"{{"type": "intensity", "level": {}}}"#, look.level)
                };
                match call(
                    addr,
                    "POST",
                    &format!("/api/nodes/{}/command", node_id(r)),
                    Some(&body),
                ) {
                    Some((202, reply)) => match reply["command_id"].as_str() {
                        Some(id) => {
                            accepted.push((r, id.to_string()));
                            looks[r] = look;
                        }
                        None => refused += 1,
                    },
                    _ => refused += 1,
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Anything still in force ends now (a short run may cut a fault).
    for f in faults.iter_mut() {
        if let (Some(_), None) = (f.started, f.ended) {
            match (f.kind, f.receiver) {
                (Kind::Partition, Some(r)) => proxies[r].heal(),
                (Kind::Stall, Some(r)) => signal("-CONT", &receivers[r].pid()),
                _ => {}
            }
            f.ended = Some(Instant::now());
        }
    }
    let measured_to = Instant::now();

    // Drain: every accepted id executed, nothing pending at the master (bounded).
    let drain = Instant::now();
    loop {
        let executed: Vec<BTreeMap<String, usize>> = receivers.iter().map(executed).collect();
        let all_seen = accepted.iter().all(|(r, id)| executed[*r].contains_key(id));
        let none_pending = (0..RECEIVERS).all(|i| {
            status(addr, i).is_some_and(|s| s["pending_commands"] == 0 && s["state"] == "online")
        });
        if (all_seen && none_pending) || drain.elapsed() > Duration::from_secs(90) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("drained in {:.1} s", drain.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_millis(500));

    report(
        &Report {
            t0,
            measured_to,
            faults,
            receivers: &receivers,
            master: &master,
            sacn: &sacn,
            states: &states,
            accepted: &accepted,
            looks: &looks,
            addr,
        },
        refused,
        show_commands,
    )
}

struct Report<'a> {
    t0: Instant,
    measured_to: Instant,
    faults: &'a [Fault],
    receivers: &'a [Node],
    master: &'a Node,
    sacn: &'a Listener,
    states: &'a StateLog,
    accepted: &'a [(usize, String)],
    looks: &'a [Look],
    addr: SocketAddr,
}

fn report(r: &Report<'_>, refused: usize, show_commands: (usize, usize)) -> bool {
    let mut ok = true;
    println!();
    println!(
        "faults (detection from the fault's start; back online from its end; a stalled receiver \
         can only print `master lost` once it runs again):"
    );
    println!(
        "| fault | node | at | length | master: not online | master: offline | receiver: `master lost` | back online |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for f in r.faults {
        let Some(start) = f.started else {
            println!("| {:?} | - | not reached | | | | | |", f.kind);
            continue;
        };
        let end = f.ended.unwrap_or(start);
        let (node, not_online, offline, lost, back) = match f.receiver {
            Some(i) => {
                let not_online = r
                    .states
                    .iter()
                    .find(|(t, n, s)| *t >= start && *n == i && s != "online")
                    .map(|(t, _, _)| *t);
                (
                    node_id(i),
                    secs(since(not_online, start)),
                    secs(since(state_after(r.states, i, "offline", start), start)),
                    secs(since(
                        line_after(&r.receivers[i], MASTER_LOST, start),
                        start,
                    )),
                    secs(since(state_after(r.states, i, "online", end), end)),
                )
            }
            None => {
                let lost: Vec<String> = r
                    .receivers
                    .iter()
                    .map(|n| secs(since(line_after(n, MASTER_LOST, start), start)))
                    .collect();
                let back: Option<Option<Instant>> = (0..r.receivers.len())
                    .map(|i| state_after(r.states, i, "online", start))
                    .try_fold(None::<Instant>, |acc, t| {
                        t.map(|t| Some(acc.map_or(t, |a| a.max(t))))
                    });
                let listening = line_after(r.master, "listening on http://", start);
                (
                    format!(
                        "master (listening again after {})",
                        secs(since(listening, start))
                    ),
                    "-".into(),
                    "-".into(),
                    lost.join(" / "),
                    format!("all {}", secs(since(back.flatten(), start))),
                )
            }
        };
        println!(
            "| {:?} | {node} | +{:.1} s | {:.1} s | {not_online} | {offline} | {lost} | {back} |",
            f.kind,
            (start - r.t0).as_secs_f64(),
            (end - start).as_secs_f64()
        );
    }

    println!();
    println!("per receiver:");
    println!(
        "| receiver | packets | worst sACN gap | worst outside its own stall | accepted | executed | lost | duplicated | final value (expected) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let (mut lost_total, mut dup_total) = (0usize, 0usize);
    for (i, node) in r.receivers.iter().enumerate() {
        let arrivals = r.sacn.arrivals(i as u16 + 1);
        let packets = arrivals
            .iter()
            .filter(|t| **t >= r.t0 && **t <= r.measured_to)
            .count();
        let stall = r
            .faults
            .iter()
            .find(|f| f.kind == Kind::Stall && f.receiver == Some(i))
            .and_then(|f| Some((f.started?, f.ended?)));
        let (worst, worst_at) = worst_gap(&arrivals, r.t0, r.measured_to, None);
        let (outside, outside_at) = worst_gap(&arrivals, r.t0, r.measured_to, stall);
        let executed = executed(node);
        let mine: Vec<&String> = r
            .accepted
            .iter()
            .filter(|(n, _)| *n == i)
            .map(|(_, id)| id)
            .collect();
        let lost: Vec<&&String> = mine
            .iter()
            .filter(|id| !executed.contains_key(**id))
            .collect();
        let dups: Vec<(&String, &usize)> = executed.iter().filter(|(_, n)| **n > 1).collect();
        let stray: Vec<&String> = executed.keys().filter(|id| !mine.contains(id)).collect();
        if !lost.is_empty() {
            println!("LOST on {}: {lost:?}", node_id(i));
        }
        if !dups.is_empty() {
            println!("DUPLICATED on {}: {dups:?}", node_id(i));
        }
        if !stray.is_empty() {
            println!("executed on {} but not sent to it: {stray:?}", node_id(i));
        }
        lost_total += lost.len();
        dup_total += dups.len();
        let value = r.sacn.value(i as u16 + 1);
        let expected = r.looks[i].value();
        let value_ok = value.is_some_and(|v| v.abs_diff(expected) <= 1);
        ok &= value_ok && lost.is_empty() && dups.is_empty() && stray.is_empty();
        let st = status(r.addr, i).unwrap_or_default();
        println!(
            "| {} | {packets} | {:.0} ms at +{:.1} s | {:.0} ms at +{:.1} s | {} | {} (master: {} since its restart, {} failed) | {} | {} | {:?} ({expected}){} |",
            node_id(i),
            worst.as_secs_f64() * 1000.0,
            (worst_at - r.t0).as_secs_f64(),
            outside.as_secs_f64() * 1000.0,
            (outside_at - r.t0).as_secs_f64(),
            mine.len(),
            executed.len(),
            st["commands_executed"],
            st["commands_failed"],
            lost.len(),
            dups.len(),
            value,
            if value_ok { "" } else { " WRONG" }
        );
    }
    println!();
    println!(
        "commands: {} node commands accepted, {refused} refused (master down or an error), {}/{} show cues accepted; lost {lost_total}, duplicated {dup_total}",
        r.accepted.len(),
        show_commands.1,
        show_commands.0
    );
    println!("{}", if ok { "soak: PASS" } else { "soak: FAIL" });
    ok
}
