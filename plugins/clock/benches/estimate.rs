//! Clock sync accuracy on loopback, bounded (about a minute): the real responder and client,
//! a node clock injected `offset=+37ms,drift=+80ppm`, and three impairment profiles through
//! the userspace proxy. Every process on one host shares CLOCK_MONOTONIC, so each estimate is
//! compared with the exact truth.
//!
//! For each profile: the filtered estimate's error p50/p99 (absolute) with its median reported
//! uncertainty, the raw per-sample NTP offset's error p50/p99 (what an unfiltered client
//! would use), and the convergence time (from the first sample until the error stays within
//! 100 µs of the path's own bias, half the asymmetry), after the start and after the node's
//! clock steps by 10 ms (injected `step=+10ms@…`, once the accuracy figures are taken).
//!
//! `cargo bench --workspace --bench estimate` (prints a table; `SAMPLES=n` to change the run).

#[path = "../../../tests/support/udp_proxy.rs"]
mod udp_proxy;

use std::time::{Duration, Instant};

use rockontrol_clock::{
    ClientConfig, ClockClient, ClockKey, ClockResponder, InjectedError, LocalClock, ShowTimeShare,
    percentile,
};
use udp_proxy::{Impairment, UdpImpairment};

const KEY: &str = "bench-clock-key";

struct Figures {
    filtered: Vec<f64>,
    raw: Vec<f64>,
    uncertainty: Vec<f64>,
    converged_after: Option<Duration>,
    step_converged_after: Option<Duration>,
    min_rtt_us: f64,
}

/// Pings every 40 ms.
const PERIOD: Duration = Duration::from_millis(40);
/// The node's clock steps by this much once the accuracy figures are taken.
const STEP_NS: i64 = 10_000_000;
/// How long the step's convergence is watched.
const AFTER_STEP: Duration = Duration::from_secs(12);

fn run(impairment: Option<Impairment>, samples: u64) -> Figures {
    let master = LocalClock::system();
    let responder = ClockResponder::start(
        "127.0.0.1:0".parse().expect("addr"),
        vec![ClockKey::derive(KEY)],
        master,
        ShowTimeShare::default(),
    )
    .expect("responder");
    let proxy = impairment.map(|i| UdpImpairment::start(responder.local_addr(), i, 7));
    let target = proxy.as_ref().map_or(responder.local_addr(), |p| p.addr());
    // The accuracy figures come first (`samples` exchanges, with some slack for timeouts),
    // then the node's clock steps by 10 ms.
    let step_after = PERIOD * (samples as u32) * 5 / 4 + Duration::from_secs(1);
    let created = Instant::now();
    let node = LocalClock::with_error(InjectedError {
        offset_ns: 37_000_000,
        drift_ppb: 80_000,
        step: Some((step_after.as_nanos() as i64, STEP_NS)),
    });
    let step_at = created + step_after;
    let config = ClientConfig {
        fast_period: PERIOD,
        fast_samples: usize::MAX,
        ..ClientConfig::default()
    };
    let client = ClockClient::start(target, ClockKey::derive(KEY), node, config).expect("client");
    let bias = impairment.map_or(0.0, |i| {
        -((i.out.base.as_nanos() as f64) - (i.back.base.as_nanos() as f64)) / 2.0
    });
    let mut seen = 0;
    let mut first: Option<Instant> = None;
    let mut last_bad: Option<Instant> = None;
    let mut last_bad_after_step: Option<Instant> = None;
    let mut figures = Figures {
        filtered: Vec::new(),
        raw: Vec::new(),
        uncertainty: Vec::new(),
        converged_after: None,
        step_converged_after: None,
        min_rtt_us: f64::NAN,
    };
    let end = step_at + AFTER_STEP;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
        let state = client.state();
        if state.version == seen {
            continue;
        }
        seen = state.version;
        let (Some(est), Some(sample)) = (state.estimate, state.last_sample) else {
            continue;
        };
        let now = Instant::now();
        let first_at = *first.get_or_insert(now);
        let local = node.read(now);
        let truth = (local - master.read(now)) as f64;
        let err = est.offset_at(local) - truth;
        let bad = (err - bias).abs() > 100_000.0;
        if now >= step_at {
            if bad {
                last_bad_after_step = Some(now);
            }
            figures.step_converged_after =
                Some(last_bad_after_step.map_or(Duration::ZERO, |t| t - step_at));
            continue;
        }
        if bad {
            last_bad = Some(now);
        }
        figures.converged_after = Some(last_bad.map_or(Duration::ZERO, |t| t - first_at));
        // The raw sample against the truth at its own middle.
        let mid = sample.local_mid();
        let truth_mid = (mid - master.read(node.instant_of(mid))) as f64;
        let raw = sample.offset() as f64 - truth_mid;
        // Accuracy figures after the filter's window filled once, up to the step.
        if seen > 64 && seen <= samples {
            figures.filtered.push(err.abs());
            figures.raw.push(raw.abs());
            figures.uncertainty.push(est.uncertainty_ns);
            figures.min_rtt_us = est.min_delay_ns as f64 / 1e3;
        }
    }
    for v in [
        &mut figures.filtered,
        &mut figures.raw,
        &mut figures.uncertainty,
    ] {
        v.sort_by(f64::total_cmp);
    }
    figures
}

fn main() {
    let samples: u64 = std::env::var("SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let profiles: [(&str, Option<Impairment>); 3] = [
        ("clean loopback", None),
        (
            "busy: 200 µs + 500 µs mean jitter each way",
            Some(Impairment::symmetric(
                Duration::from_micros(200),
                Duration::from_micros(500),
            )),
        ),
        (
            "asymmetric: out +400 µs, 100 µs jitter",
            Some(Impairment::asymmetric(
                Duration::from_micros(300),
                Duration::from_micros(100),
                Duration::from_micros(400),
            )),
        ),
    ];
    println!(
        "| profile | filtered p50 | filtered p99 | uncertainty (median 1σ) | raw NTP p50 | raw NTP p99 | min RTT | converged after start | converged after a 10 ms step |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let secs = |d: Option<Duration>| {
        d.map_or("never".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
    };
    for (name, impairment) in profiles {
        let f = run(impairment, samples);
        let us = |v: f64| format!("{:.0} µs", v / 1e3);
        println!(
            "| {name} | {} | {} | {} | {} | {} | {:.0} µs | {} | {} |",
            us(percentile(&f.filtered, 0.5)),
            us(percentile(&f.filtered, 0.99)),
            us(percentile(&f.uncertainty, 0.5)),
            us(percentile(&f.raw, 0.5)),
            us(percentile(&f.raw, 0.99)),
            f.min_rtt_us,
            secs(f.converged_after),
            secs(f.step_converged_after),
        );
    }
}
