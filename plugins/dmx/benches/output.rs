//! Output benchmark: 512 universes at 44 Hz through the real output thread for 30 s
//! (`ROCKONTROL_BENCH_SECS` to change), sACN unicast to a sink on 127.0.0.1.
//!
//! A feeder thread publishes frame sets the way the engine does — one per tick, from a loop
//! with a 2 ms period, so hand-over times jitter like `FixedUpdate`'s — and the output thread
//! paces them. Prints: packets/s achieved, packets received, CPU of this process, and the
//! send-time lateness of frames against their deadlines (p50/p99/max).

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use rockontrol_dmx::output::{OutputConfig, OutputThread};
use rockontrol_dmx::routes::{OutputPlan, SacnRoute};
use rockontrol_engine::FrameSet;

const UNIVERSES: usize = 512;
const RATE: u32 = 44;

/// User + system CPU seconds of this process so far (from /proc/self/stat).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime 11, stime 12 (man 5 proc, minus 3).
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let secs: f64 = std::env::var("ROCKONTROL_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30.0);
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let sink_addr = sink.local_addr().expect("addr");
    // Room for a few frames of packets in the kernel buffer.
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let drain = {
        let received = Arc::clone(&received);
        let done = Arc::clone(&done);
        std::thread::Builder::new()
            .name("bench-sink".into())
            .spawn(move || {
                let mut buf = [0u8; 700];
                while !done.load(Ordering::Relaxed) {
                    if sink.recv_from(&mut buf).is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .expect("sink thread")
    };
    let plan = OutputPlan {
        sacn: (0..UNIVERSES)
            .map(|i| SacnRoute {
                frame_index: i,
                universe: i as u16 + 1,
                priority: 100,
                sync_address: 63999,
                preview: false,
                destinations: vec![sink_addr],
            })
            .collect(),
        ..OutputPlan::default()
    };
    let config = OutputConfig {
        cid: [0x42; 16],
        source_name: "RocKontrol bench".into(),
        interface: Ipv4Addr::LOCALHOST,
        multicast_ttl: 1,
        idle_rate: None,
        artnet_broadcast: None,
        artnet_timecode: None,
    };
    let (tx, rx) = sync_channel(8);
    let mut thread = OutputThread::start(config, plan, rx).expect("output thread");
    let ticks = (secs * f64::from(RATE)) as u64;
    println!(
        "output bench: {UNIVERSES} universes at {RATE} Hz for {secs} s ({ticks} frames), sACN unicast to {sink_addr}"
    );
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut dropped = 0u64;
    for tick in 0..ticks {
        // Like FixedUpdate under a 2 ms outer loop: the frame is ready on the first loop
        // iteration after its tick time.
        let due = start + Duration::from_secs_f64(tick as f64 / f64::from(RATE));
        while Instant::now() < due {
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut data = vec![0u8; UNIVERSES * 512];
        for (i, v) in data.iter_mut().enumerate() {
            *v = (i as u64 + tick) as u8;
        }
        let set = Arc::new(FrameSet {
            tick,
            time: tick as f64 / f64::from(RATE),
            rate: RATE,
            universes: (1..=UNIVERSES as u16).collect(),
            data,
        });
        if tx.try_send(set).is_err() {
            dropped += 1;
        }
        if tick % (u64::from(RATE) * 5) == 0 && tick > 0 {
            println!("  {:.0} s …", tick as f64 / f64::from(RATE));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let stats = thread.stats();
    thread.stop();
    done.store(true, Ordering::Relaxed);
    let _ = drain.join();
    let mut lateness = stats.lateness_us.clone();
    lateness.sort_unstable();
    println!(
        "frames sent        {} of {ticks} ({dropped} not handed over)",
        stats.frames
    );
    println!(
        "packets sent       {} ({:.0}/s; data + sync)",
        stats.packets,
        stats.packets as f64 / wall
    );
    println!("packets received   {}", received.load(Ordering::Relaxed));
    println!("send errors        {}", stats.send_errors);
    println!(
        "CPU                {:.1} % of one core (whole process: feeder, output thread, sink)",
        cpu / wall * 100.0
    );
    println!(
        "lateness vs deadline  p50 {} µs  p99 {} µs  max {} µs  (frames > 1 ms late: {})",
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        lateness.last().copied().unwrap_or(0),
        stats.late_frames
    );
}
