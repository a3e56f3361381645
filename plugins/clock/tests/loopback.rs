//! The real UDP responder and client on loopback, with injected clock errors: the estimate is
//! checked against the truth (every thread here reads the same CLOCK_MONOTONIC), directly and
//! through the userspace impairment proxy.

#[path = "../../../tests/support/udp_proxy.rs"]
mod udp_proxy;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rockontrol_clock::{
    ClientConfig, ClientState, ClockClient, ClockKey, ClockResponder, EstimatorConfig,
    InjectedError, LocalClock, Ping, ShowTimeShare,
};
use rockontrol_engine::ShowTimeBase;
use udp_proxy::{Impairment, UdpImpairment};

const KEY: &str = "loopback-clock-key";

struct Rig {
    responder: ClockResponder,
    share: ShowTimeShare,
    master_clock: LocalClock,
}

fn responder(master_error: Option<InjectedError>) -> Rig {
    let master_clock = master_error.map_or_else(LocalClock::system, LocalClock::with_error);
    let share = ShowTimeShare::default();
    // The master's show is 12.5 s in.
    let now = Instant::now();
    let mut base = ShowTimeBase::new(44, now);
    base.step_to(now, 12_500_000_000, "test: the master's show is running");
    share.publish(base);
    let responder = ClockResponder::start(
        "127.0.0.1:0".parse().expect("addr"),
        vec![ClockKey::derive(KEY)],
        master_clock,
        share.clone(),
    )
    .expect("responder");
    Rig {
        responder,
        share,
        master_clock,
    }
}

fn fast_config() -> ClientConfig {
    ClientConfig {
        fast_period: Duration::from_millis(40),
        fast_samples: usize::MAX,
        estimator: EstimatorConfig {
            min_drift_span_ns: 1_000_000_000,
            ..EstimatorConfig::default()
        },
        ..ClientConfig::default()
    }
}

/// Waits until the client has `samples` answers (at most 20 s).
fn converge(client: &ClockClient, samples: u64) -> ClientState {
    let start = Instant::now();
    loop {
        let state = client.state();
        if state.samples >= samples && state.estimate.is_some() {
            return state;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no convergence in 20 s: {state:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The estimate's error against the truth now, in ns (node − master, both known exactly).
fn error_now(rig: &Rig, node: &LocalClock, state: &ClientState) -> (f64, f64) {
    let now = Instant::now();
    let local = node.read(now);
    let truth = (node.read(now) - rig.master_clock.read(now)) as f64;
    let e = state.estimate.expect("estimate");
    (e.offset_at(local) - truth, e.drift_ppm())
}

#[test]
fn a_clean_loopback_estimate_is_within_200_us_of_the_truth() {
    let rig = responder(None);
    let node = LocalClock::with_error(InjectedError {
        offset_ns: 37_000_000,
        drift_ppb: 80_000,
        step: None,
    });
    let client = ClockClient::start(
        rig.responder.local_addr(),
        ClockKey::derive(KEY),
        node,
        fast_config(),
    )
    .expect("client");
    let state = converge(&client, 64);
    let (err, drift) = error_now(&rig, &node, &state);
    eprintln!(
        "clean loopback: error {:.1} µs, drift {drift:.2} ppm, {:?} kernel stamps {}",
        err / 1e3,
        state.estimate,
        state.kernel_timestamps
    );
    assert!(
        err.abs() < 200_000.0,
        "offset +37 ms, drift +80 ppm on clean loopback: the estimate is off by {:.1} µs",
        err / 1e3
    );
    assert!(
        (drift - 80.0).abs() < 40.0,
        "drift read {drift:.1} ppm, injected +80 ppm"
    );
    // The master's show time, as the node predicts it, against the master's own.
    let now = Instant::now();
    let predicted = state.master_show_ns(node.read(now)).expect("show time") as f64;
    let actual = rig.share.show_ns_at(now).expect("published") as f64;
    assert!(
        (predicted - actual).abs() < 300_000.0,
        "the node's idea of the master's show time is off by {:.1} µs",
        (predicted - actual) / 1e3
    );
    assert!(rig.responder.stats().answered.load(Ordering::Relaxed) >= 64);
}

#[test]
fn through_an_asymmetric_proxy_the_error_is_half_the_asymmetry_plus_a_margin() {
    let rig = responder(Some(InjectedError {
        offset_ns: -5_000_000,
        drift_ppb: -30_000,
        step: None,
    }));
    let asym = Duration::from_micros(600);
    let proxy = UdpImpairment::start(
        rig.responder.local_addr(),
        Impairment::asymmetric(Duration::from_micros(500), Duration::from_micros(300), asym),
        42,
    );
    let node = LocalClock::with_error(InjectedError {
        offset_ns: 21_000_000,
        drift_ppb: 50_000,
        step: None,
    });
    let client = ClockClient::start(proxy.addr(), ClockKey::derive(KEY), node, fast_config())
        .expect("client");
    let state = converge(&client, 64);
    let (err, drift) = error_now(&rig, &node, &state);
    eprintln!(
        "asymmetric proxy (+{asym:?} out): error {:.1} µs, drift {drift:.2} ppm, {:?}",
        err / 1e3,
        state.estimate
    );
    // The outbound path is longer: the offset reads low by asym / 2 = 300 µs.
    let bias = -(asym.as_nanos() as f64) / 2.0;
    assert!(
        (err - bias).abs() < 250_000.0,
        "off by {:.1} µs; expected {:.1} µs ± 250 µs (half the asymmetry, which no exchange can see)",
        err / 1e3,
        bias / 1e3
    );
}

#[test]
fn forged_and_replayed_pings_get_no_answer() {
    let rig = responder(None);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let to: SocketAddr = rig.responder.local_addr();
    let key = ClockKey::derive(KEY);
    let mut buf = [0u8; 256];
    let good = Ping {
        session: 99,
        seq: 1,
        t1: 5,
    }
    .encode(&key);
    socket.send_to(&good, to).expect("send");
    assert!(
        socket.recv_from(&mut buf).is_ok(),
        "a genuine ping is answered"
    );
    socket.send_to(&good, to).expect("send");
    assert!(
        socket.recv_from(&mut buf).is_err(),
        "the same ping replayed is not answered"
    );
    let forged = Ping {
        session: 99,
        seq: 2,
        t1: 5,
    }
    .encode(&ClockKey::derive("not the key"));
    socket.send_to(&forged, to).expect("send");
    assert!(
        socket.recv_from(&mut buf).is_err(),
        "a ping under another key is not answered"
    );
    assert_eq!(rig.responder.stats().refused.load(Ordering::Relaxed), 2);
    assert_eq!(rig.responder.stats().answered.load(Ordering::Relaxed), 1);
}
