//! OLA's `olad` as the console: it sends sACN (multicast, one universe at a static priority of
//! 150, one at the default 100) and Art-Net (unicast, to the node that answered its ArtPoll
//! with an ArtPollReply naming the universe), and our input receiver decodes exactly those 512 slots per universe, OLA's
//! sACN source name and priorities, and OLA's Art-Net node name.
//!
//! Our side is `rockontrol monitor --json` (the input receiver of `rockontrol_dmx::input` with
//! its view printed) run inside olad's network namespace, because OLA skips loopback for E1.31
//! (see `../shared/interop/PEERS.md`). Values go in with `ola_set_dmx`, the way a user drives
//! OLA. olad has only *output* ports patched: with an E1.31 input port it would turn multicast
//! loopback off and its own sACN would be invisible on this host.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::ola::{NODE_IP, OLA_IP, Ola};

const BIN: &str = env!("CARGO_BIN_EXE_rockontrol");

/// 512 distinct-looking slot values for each universe (none all-zero, none equal).
fn look(seed: usize) -> Vec<u8> {
    (0..512)
        .map(|i| ((i * (2 * seed + 1) + 3 * seed) % 256) as u8)
        .collect()
}

/// The monitor, stopped (SIGINT, then kill) on drop so nothing outlives the namespace.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn universe<'v>(view: &'v Value, protocol: &str, number: u64) -> Option<&'v Value> {
    view["universes"]
        .as_array()?
        .iter()
        .find(|u| u["protocol"] == protocol && u["universe"] == number)
}

fn slots(universe: Option<&Value>) -> Vec<u8> {
    universe
        .and_then(|u| u["slots"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .map(|v| v as u8)
                .collect()
        })
        .unwrap_or_default()
}

/// A view without its slot values, for failure messages.
fn brief(view: &Value) -> String {
    let mut view = view.clone();
    if let Some(list) = view["universes"].as_array_mut() {
        for u in list {
            let n = u["slots"].as_array().map_or(0, Vec::len);
            u["slots"] = Value::from(format!("({n} values)"));
        }
    }
    format!("{view:#}")
}

/// The one live source of a universe, without the fields that depend on timing.
fn only_source(universe: &Value) -> Value {
    let list = universe["sources"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1, "one source (olad): {universe:#}");
    let s = &list[0];
    serde_json::json!({
        "ip": s["ip"], "name": s["name"], "priority": s["priority"], "slots": s["slots"],
        "winning": s["winning"],
    })
}

#[test]
fn our_input_decodes_exactly_what_olad_sends() {
    if !support::ola::installed() {
        support::skip::unavailable(
            "our_input_decodes_exactly_what_olad_sends",
            "OLA's `olad` is not installed (`./dev setup` or `apt-get install ola`)",
        );
        return;
    }
    // OLA universe 10 → sACN 10 at priority 150; 12 → sACN 12 at the default 100;
    // 11 → Art-Net Port-Address 0:0:11.
    let ola = Ola::start(
        "ola-in",
        &[
            "11-1-O-0 = 10",
            "11-1-O-0_priority_value = 150",
            "11-1-O-0_priority_mode = 1",
            "11-1-O-1 = 12",
            "2-1-O-0 = 11",
        ],
    );
    let patch = ola.http("/json/universe_info?id=11").unwrap_or_default();
    assert!(
        patch.contains("ArtNet Universe 0:0:11"),
        "olad's Art-Net output port is patched: {patch}\n{}",
        ola.log()
    );

    let mut child = ola
        .command(BIN)
        .args(["monitor", "--bind", NODE_IP])
        .args(["--sacn", "10", "--sacn", "12", "--artnet", "11"])
        // No --artnet-announce: OLA only unicasts ArtDmx to nodes that advertise the universe in
        // an ArtPollReply, so it must get our reply to its own ArtPoll. That reply goes to olad's
        // address on port 6454, which our receiver also listens on: this checks that none of
        // our sockets takes it first (a wildcard socket did).
        .args(["--json", "--interval", "200ms", "--duration", "30s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rockontrol monitor in the namespace");
    let stdout = child.stdout.take().expect("stdout");
    let stderr_pipe = child.stderr.take().expect("stderr");
    let node = Node(child);
    let (tx, views) = channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready) = channel::<()>();
    {
        let stderr = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                if line.starts_with("monitor: listening on") {
                    let _ = ready_tx.send(());
                }
                let mut text = stderr.lock().expect("stderr");
                text.push_str(&line);
                text.push('\n');
            }
        });
    }
    let stderr_text = || stderr.lock().expect("stderr").clone();
    assert!(
        ready.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the monitor did not start listening in the namespace: {}",
        stderr_text()
    );

    let expected: [(u16, Vec<u8>); 3] = [(10, look(1)), (12, look(2)), (11, look(3))];
    let set_dmx = |universe: u16, values: &[u8]| {
        let list: Vec<String> = values.iter().map(ToString::to_string).collect();
        let out = ola
            .command("ola_set_dmx")
            .args(["-u", &universe.to_string(), "-d", &list.join(",")])
            .output()
            .expect("ola_set_dmx");
        assert!(
            out.status.success(),
            "ola_set_dmx -u {universe}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // olad sends on each change only (no keep-alive), and Art-Net only once it has our
    // ArtPollReply (it polls every few seconds): set the looks again every half second until a
    // view shows all three universes and OLA's Art-Net name (its reply to its own poll).
    // Bounded: 25 s.
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut next_set = Instant::now();
    let mut last = Value::Null;
    let view = loop {
        if Instant::now() >= next_set {
            for (u, values) in &expected {
                set_dmx(*u, values);
            }
            next_set = Instant::now() + Duration::from_millis(500);
        }
        let line = match views.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => line,
            Err(_) if Instant::now() < deadline => continue,
            Err(_) => panic!(
                "no view with all three universes within 25 s; last view:\n{}\n\
                 monitor stderr:\n{}\nolad log:\n{}",
                brief(&last),
                stderr_text(),
                ola.log()
            ),
        };
        let view: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a view that is not JSON ({e}): {line}"));
        let live = |p: &str, n: u64| universe(&view, p, n).is_some_and(|u| u["live"] == true);
        let named = universe(&view, "artnet", 11)
            .and_then(|u| u["sources"].as_array())
            .is_some_and(|s| s.iter().any(|s| s["name"] != ""));
        if live("sacn", 10) && live("sacn", 12) && live("artnet", 11) && named {
            break view;
        }
        last = view;
    };
    drop(node);

    for (number, want) in &expected {
        let protocol = if *number == 11 { "artnet" } else { "sacn" };
        let got = slots(universe(&view, protocol, u64::from(*number)));
        let diff: Vec<(usize, u8, u8)> = (0..512)
            .filter(|&i| got.get(i) != want.get(i))
            .map(|i| (i + 1, got.get(i).copied().unwrap_or(0), want[i]))
            .collect();
        assert!(
            got.len() == 512 && diff.is_empty(),
            "{protocol} {number}: {} slots; differing (slot, ours, olad's): {diff:?}",
            got.len()
        );
    }
    let u10 = universe(&view, "sacn", 10).expect("sACN 10");
    let u12 = universe(&view, "sacn", 12).expect("sACN 12");
    let u11 = universe(&view, "artnet", 11).expect("Art-Net 11");
    assert_eq!(u10["priority"], 150, "sACN 10 at OLA's static priority");
    assert_eq!(u12["priority"], 100, "sACN 12 at the default priority");
    assert_eq!(
        only_source(u10),
        serde_json::json!({"ip": OLA_IP, "name": "OLA Server", "priority": 150, "slots": 512,
            "winning": true}),
        "sACN 10's source"
    );
    assert_eq!(
        only_source(u12),
        serde_json::json!({"ip": OLA_IP, "name": "OLA Server", "priority": 100, "slots": 512,
            "winning": true}),
        "sACN 12's source"
    );
    assert_eq!(
        u10["sources"][0]["id"], u12["sources"][0]["id"],
        "one olad, one CID for both universes"
    );
    assert_eq!(
        only_source(u11),
        serde_json::json!({"ip": OLA_IP, "name": "OLA test node", "priority": null,
            "slots": 512, "winning": true}),
        "Art-Net 11's source, named by OLA's ArtPollReply"
    );
    let stats = &view["stats"];
    for p in ["sacn", "artnet"] {
        let bad: u64 = ["truncated", "oversized", "wrong_version", "malformed"]
            .iter()
            .map(|k| stats[p][k].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(bad, 0, "no {p} datagram of olad's is rejected: {stats:#}");
    }
    assert_eq!(
        stats["sacn_out_of_sequence"], 0,
        "olad's sequence numbers: {stats:#}"
    );
}
