//! The output thread on real sockets: exact bytes, order, pacing and termination.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use rockontrol_dmx::output::{OutputConfig, OutputThread};
use rockontrol_dmx::routes::{ArtNetRoute, OutputPlan, SacnRoute};
use rockontrol_engine::FrameSet;
use rockontrol_wire::artnet::{self, ArtPacket, PortAddress};
use rockontrol_wire::sacn::{self, Packet};

const CID: [u8; 16] = [0xa5; 16];

fn listener() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind listener");
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let addr = socket.local_addr().expect("addr");
    (socket, addr)
}

fn config() -> OutputConfig {
    OutputConfig {
        cid: CID,
        source_name: "Test source".into(),
        interface: Ipv4Addr::LOCALHOST,
        multicast_ttl: 1,
        idle_rate: None,
        artnet_broadcast: None,
        artnet_timecode: None,
        priority: None,
    }
}

/// Frame `tick`, due one tick from now.
fn frame(tick: u64, universes: &[u16]) -> Arc<FrameSet> {
    frame_due(tick, universes, Instant::now() + TICK)
}

/// Frame `tick` of a timeline starting at `start`: due at `start + (tick + 1) / 44 s`, as the
/// engine's time base makes it.
fn frame_on(start: Instant, tick: u64, universes: &[u16]) -> Arc<FrameSet> {
    frame_due(tick, universes, start + TICK * (tick as u32 + 1))
}

/// One tick at 44 Hz.
const TICK: Duration = Duration::from_nanos(22_727_273);

fn frame_due(tick: u64, universes: &[u16], deadline: Instant) -> Arc<FrameSet> {
    let mut data = vec![0u8; universes.len() * 512];
    for (i, chunk) in data.chunks_mut(512).enumerate() {
        chunk[0] = tick as u8; // slot 1 carries the tick
        chunk[1] = i as u8; // slot 2 the universe index
        chunk[511] = 0xee;
    }
    Arc::new(FrameSet {
        tick,
        time: tick as f64 / 44.0,
        rate: 44,
        deadline,
        universes: universes.to_vec(),
        data,
    })
}

fn recv(socket: &UdpSocket) -> (Vec<u8>, Instant) {
    let mut buf = [0u8; 1500];
    let (len, _) = socket.recv_from(&mut buf).expect("a packet within 3 s");
    (buf[..len].to_vec(), Instant::now())
}

fn sacn_route(universe: u16, frame_index: usize, dest: SocketAddr) -> SacnRoute {
    SacnRoute {
        frame_index,
        universe,
        priority: 150,
        sync_address: 99,
        preview: false,
        destinations: vec![dest],
    }
}

#[test]
fn frames_go_out_in_order_with_sync_and_are_paced() {
    let (sacn_rx, sacn_addr) = listener();
    let (art_rx, art_addr) = listener();
    let plan = OutputPlan {
        sacn: vec![sacn_route(7, 0, sacn_addr), sacn_route(8, 1, sacn_addr)],
        artnet: vec![ArtNetRoute {
            frame_index: 1,
            port_address: PortAddress::new(3).expect("valid"),
            destinations: vec![art_addr],
            discovered: false,
        }],
        usbpro: vec![],
    };
    let (tx, rx) = sync_channel(16);
    let mut thread = OutputThread::start(config(), plan, rx).expect("start");
    // Five frames handed over at once, due a tick apart: the thread must space them so.
    let start = Instant::now();
    for tick in 0..5 {
        tx.send(frame_on(start, tick, &[1, 2])).expect("send frame");
    }
    let mut times = Vec::new();
    for tick in 0..5u64 {
        for (universe, index) in [(7u16, 0u8), (8, 1)] {
            let (bytes, at) = recv(&sacn_rx);
            let Ok(Packet::Data(p)) = sacn::decode(&bytes) else {
                panic!("tick {tick}: expected sACN data for universe {universe}, got {bytes:02x?}");
            };
            assert_eq!(
                (p.universe, p.sequence, p.priority, p.sync_address),
                (universe, tick as u8, 150, 99),
                "universe, per-universe sequence, priority, sync address"
            );
            assert_eq!(
                (p.slots.len(), p.slots[0], p.slots[1], p.slots[511]),
                (512, tick as u8, index, 0xee)
            );
            assert_eq!((p.cid, &*p.source_name), (CID, "Test source"));
            assert!(!p.options.preview && !p.options.stream_terminated);
            if universe == 7 {
                times.push(at);
            }
        }
        let (bytes, _) = recv(&sacn_rx);
        let Ok(Packet::Sync(s)) = sacn::decode(&bytes) else {
            panic!("tick {tick}: expected a sync packet after the frame's data, got {bytes:02x?}");
        };
        assert_eq!(
            (s.sync_address, s.sequence),
            (99, tick as u8),
            "one sync per frame, after its data"
        );

        let (bytes, _) = recv(&art_rx);
        let Ok(ArtPacket::Dmx(d)) = artnet::decode(&bytes) else {
            panic!("tick {tick}: expected ArtDmx, got {bytes:02x?}");
        };
        assert_eq!(
            (d.port_address.get(), d.sequence, d.data.len()),
            (3, tick as u8 + 1, 512)
        );
        assert_eq!(
            (d.data[0], d.data[1]),
            (tick as u8, 1),
            "Art-Net carries the second universe"
        );
        let (bytes, _) = recv(&art_rx);
        assert!(
            matches!(artnet::decode(&bytes), Ok(ArtPacket::Sync(_))),
            "ArtSync after the ArtDmx of each frame"
        );
        assert_eq!(bytes.len(), 14, "ArtSync is 14 bytes");
    }
    // Deadlines are a tick apart; sleeping can make a send late, never early.
    let span = times[4] - times[0];
    assert!(
        span >= Duration::from_micros(4 * 22_727 - 2_000),
        "5 frames handed over at once were sent over {span:?}, not paced a tick apart"
    );
    // Stopping sends three stream-terminated packets per universe.
    thread.stop();
    let mut terminated = Vec::new();
    for _ in 0..6 {
        let (bytes, _) = recv(&sacn_rx);
        let Ok(Packet::Data(p)) = sacn::decode(&bytes) else {
            panic!("expected stream-terminated data, got {bytes:02x?}");
        };
        assert!(
            p.options.stream_terminated,
            "universe {} packet without the terminated bit",
            p.universe
        );
        terminated.push((p.universe, p.sequence));
    }
    assert_eq!(
        terminated,
        vec![(7, 5), (8, 5), (7, 6), (8, 6), (7, 7), (8, 7)],
        "3 × each universe, sequence continues"
    );
    let stats = thread.stats();
    assert_eq!(stats.frames, 5);
    assert_eq!(stats.send_errors, 0);
}

#[test]
fn a_released_universe_is_terminated_and_the_others_continue() {
    let (rx_socket, addr) = listener();
    let plan = OutputPlan {
        sacn: vec![sacn_route(1, 0, addr), sacn_route(2, 1, addr)],
        ..OutputPlan::default()
    };
    let (tx, rx) = sync_channel(16);
    let thread = OutputThread::start(config(), plan, rx).expect("start");
    tx.send(frame(0, &[1, 2])).expect("frame");
    for _ in 0..3 {
        recv(&rx_socket); // data 1, data 2, sync
    }
    thread.set_plan(OutputPlan {
        sacn: vec![sacn_route(2, 1, addr)],
        ..OutputPlan::default()
    });
    tx.send(frame(1, &[1, 2])).expect("frame");
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (bytes, _) = recv(&rx_socket);
        match sacn::decode(&bytes) {
            Ok(Packet::Data(p)) => seen.push(format!(
                "{}{}",
                p.universe,
                if p.options.stream_terminated { "T" } else { "" }
            )),
            Ok(Packet::Sync(_)) => seen.push("S".into()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        vec!["1T", "1T", "1T", "2", "S"],
        "universe 1 terminated three times, 2 goes on"
    );
    drop(thread);
}

#[test]
fn idle_rate_skips_unchanged_universes_but_keeps_them_alive() {
    let (rx_socket, addr) = listener();
    let plan = OutputPlan {
        sacn: vec![SacnRoute {
            sync_address: 0,
            ..sacn_route(5, 0, addr)
        }],
        ..OutputPlan::default()
    };
    let (tx, rx) = sync_channel(64);
    let thread = OutputThread::start(
        OutputConfig {
            idle_rate: Some(1.0),
            ..config()
        },
        plan,
        rx,
    )
    .expect("start");
    let same = |tick| {
        let mut f = (*frame(tick, &[1])).clone();
        f.data[0] = 42;
        Arc::new(f)
    };
    for tick in 0..10 {
        tx.send(same(tick)).expect("frame");
    }
    let mut changed = (*same(10)).clone();
    changed.data[0] = 43;
    tx.send(Arc::new(changed)).expect("frame");
    let (first, _) = recv(&rx_socket);
    let (second, _) = recv(&rx_socket);
    let value = |b: &[u8]| match sacn::decode(b) {
        Ok(Packet::Data(p)) => (p.sequence, p.slots[0]),
        other => panic!("{other:?}"),
    };
    assert_eq!(value(&first), (0, 42), "the first frame goes out");
    assert_eq!(
        value(&second),
        (1, 43),
        "nine unchanged frames skipped, the change goes out at once"
    );
    drop(thread);
}

#[test]
fn art_timecode_follows_the_show_clock() {
    let (art_rx, art_addr) = listener();
    let plan = OutputPlan {
        artnet: vec![ArtNetRoute {
            frame_index: 0,
            port_address: PortAddress::new(0).expect("valid"),
            destinations: vec![art_addr],
            discovered: false,
        }],
        ..OutputPlan::default()
    };
    let (tx, rx) = sync_channel(64);
    let config = OutputConfig {
        artnet_timecode: Some(rockontrol_wire::timecode::RunningTimecode::new(
            rockontrol_wire::timecode::FrameRate::Ebu25,
            rockontrol_wire::timecode::Timecode::from_frames(
                0,
                rockontrol_wire::timecode::FrameRate::Ebu25,
            ),
        )),
        ..config()
    };
    let thread = OutputThread::start(config, plan, rx).expect("start");
    // 1 s of ticks at 44 Hz starting at show time 3599 s (00:59:59:00).
    let start = Instant::now();
    for tick in 0..=44u64 {
        let mut set = (*frame_on(start, tick, &[1])).clone();
        set.tick = 3599 * 44 + tick;
        set.time = 3599.0 + tick as f64 / 44.0;
        tx.send(Arc::new(set)).expect("frame");
    }
    let mut timecodes = Vec::new();
    while timecodes.len() < 26 {
        let (bytes, _) = recv(&art_rx);
        if let Ok(ArtPacket::TimeCode(tc)) = artnet::decode(&bytes) {
            timecodes.push(tc.timecode.to_string());
        }
    }
    assert_eq!(timecodes.first().map(String::as_str), Some("00:59:59:00"));
    assert_eq!(timecodes.get(12).map(String::as_str), Some("00:59:59:12"));
    assert_eq!(
        timecodes.last().map(String::as_str),
        Some("01:00:00:00"),
        "every EBU frame once, across the hour"
    );
    drop(thread);
}

/// Issue 12: each ArtTimeCode frame leaves at its own show time, not with the DMX frame of
/// the next tick (which put it up to one tick, 22.7 ms at 44 Hz, late). Frames are fed as the
/// engine does (set *k* published at tick *k*'s instant, due one tick later); 25 fps frame *f*
/// is due at `start + f · 40 ms`.
#[test]
fn art_timecode_frames_leave_at_their_own_show_times() {
    use rockontrol_wire::timecode::{FrameRate, RunningTimecode, Timecode};
    let (art_rx, art_addr) = listener();
    let plan = OutputPlan {
        artnet: vec![ArtNetRoute {
            frame_index: 0,
            port_address: PortAddress::new(0).expect("valid"),
            destinations: vec![art_addr],
            discovered: false,
        }],
        ..OutputPlan::default()
    };
    let (tx, rx) = sync_channel(64);
    let config = OutputConfig {
        artnet_timecode: Some(RunningTimecode::new(
            FrameRate::Ebu25,
            Timecode::from_frames(0, FrameRate::Ebu25),
        )),
        ..config()
    };
    let thread = OutputThread::start(config, plan, rx).expect("start");
    let start = Instant::now() + Duration::from_millis(50);
    let feeder = std::thread::spawn(move || {
        for tick in 0..=88u64 {
            let at = start + TICK * tick as u32;
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            tx.send(frame_on(start, tick, &[1])).expect("frame");
        }
        tx
    });
    let mut errors_us = Vec::new();
    let mut frames = Vec::new();
    while frames.len() < 50 {
        let (bytes, at) = recv(&art_rx);
        if let Ok(ArtPacket::TimeCode(tc)) = artnet::decode(&bytes) {
            let frame = tc.timecode.to_frames();
            let due = start + Duration::from_millis(40) * frame;
            let error = if at >= due {
                (at - due).as_micros() as i64
            } else {
                -((due - at).as_micros() as i64)
            };
            frames.push(frame);
            errors_us.push(error);
        }
    }
    let _tx = feeder.join().expect("feeder");
    drop(thread);
    assert_eq!(
        frames,
        (0..50).collect::<Vec<_>>(),
        "every frame once, in order"
    );
    let mut abs: Vec<i64> = errors_us.iter().map(|e| e.abs()).collect();
    abs.sort_unstable();
    let (p50, p90) = (abs[abs.len() / 2], abs[abs.len() * 9 / 10]);
    eprintln!("ArtTimeCode send time − frame time: p50 {p50} µs, p90 {p90} µs; {errors_us:?}");
    assert!(
        p50 <= 1_000 && p90 <= 4_000,
        "frames leave at their show time (p50 ≤ 1 ms, p90 ≤ 4 ms; a tick late would be ~11 ms): p50 {p50} µs, p90 {p90} µs"
    );
}

/// Issue 16.2: after a receiver's show clock jumps (a healed partition, a stall, a reconnect
/// snapshot) its output ran in bursts with 2.5–6 s gaps, because the thread kept a private
/// epoch and put frame deadlines seconds away. Here a feeder publishes frames as the engine
/// does, at 44 Hz on a [`ShowTimeBase`], and steps show time 4 s forwards, then 3 s backwards
/// (as `ShowClock::step_to` does): the wire must stay at 44 Hz with no gap and no burst.
#[test]
fn a_show_time_jump_neither_stalls_nor_bursts_the_output() {
    use rockontrol_engine::{ShowClock, ShowTimeBase};

    let (rx_socket, addr) = listener();
    let plan = OutputPlan {
        sacn: vec![SacnRoute {
            sync_address: 0,
            ..sacn_route(1, 0, addr)
        }],
        ..OutputPlan::default()
    };
    // Capacity 8, like the plugin's subscription to the frame bus.
    let (tx, rx) = sync_channel(8);
    let thread = OutputThread::start(config(), plan, rx).expect("start");
    let run_for = Duration::from_secs(3);
    let feeder = std::thread::spawn(move || {
        let start = Instant::now();
        let mut base = ShowTimeBase::new(44, start);
        let mut clock = ShowClock::default();
        let (mut forward, mut backward) = (false, false);
        while start.elapsed() < run_for {
            let now = Instant::now();
            if !forward && now >= start + Duration::from_secs(1) {
                forward = true;
                let tick = clock.next_tick + 4 * 44;
                clock.step_to(&mut base, tick, now, "test: master 4 s ahead");
            }
            if !backward && now >= start + Duration::from_secs(2) {
                backward = true;
                let tick = clock.next_tick - 3 * 44;
                clock.step_to(&mut base, tick, now, "test: master 3 s behind");
            }
            // The engine runs every tick whose time has come, then waits for the next.
            while base.tick_at(Instant::now()) >= clock.next_tick {
                let tick = clock.next_tick;
                let set = frame_due(tick, &[1], base.instant_of_tick(tick + 1));
                let _ = tx.try_send(set);
                clock.next_tick += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        tx
    });
    let mut arrivals = Vec::new();
    let listen_from = Instant::now();
    let listen_until = listen_from + run_for;
    rx_socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = [0u8; 1500];
    while Instant::now() < listen_until {
        if let Ok((len, _)) = rx_socket.recv_from(&mut buf)
            && let Ok(Packet::Data(p)) = sacn::decode(&buf[..len])
            && !p.options.stream_terminated
        {
            arrivals.push(Instant::now());
        }
    }
    let tx = feeder.join().expect("feeder");
    drop(thread);
    drop(tx);
    // Gaps over the whole window, the silence at its end included.
    let mut times = arrivals.clone();
    times.push(listen_until);
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let worst = gaps.iter().max().copied().unwrap_or(run_for);
    let rate = arrivals.len() as f64 / run_for.as_secs_f64();
    // Generous bounds (a loaded test machine), far from the failure: the old thread sent
    // nothing for 4 s after the forward step (44 packets in these 3 s), then bursts.
    assert!(
        worst < Duration::from_millis(250),
        "no gap on the wire after a show time step: worst gap {worst:?} ({} packets)",
        arrivals.len()
    );
    assert!(
        rate > 38.0 && rate < 50.0,
        "44 packets/s through both steps, got {rate:.1}/s"
    );
    let burst = arrivals
        .iter()
        .enumerate()
        .map(|(i, a)| {
            arrivals[i..]
                .iter()
                .take_while(|b| **b - *a < TICK * 4)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        burst <= 6,
        "no burst: at most 4 frames (+2 of jitter) in any 4-tick window, got {burst}"
    );
}

/// `dmx_output_priority`: the output thread puts itself under SCHED_FIFO at the priority asked
/// (read back from `/proc`); where that is not permitted it runs on at normal priority.
#[test]
fn the_output_thread_runs_at_the_real_time_priority_asked() {
    let (_socket, addr) = listener();
    let plan = OutputPlan {
        sacn: vec![sacn_route(1, 0, addr)],
        ..OutputPlan::default()
    };
    let (tx, rx) = sync_channel(8);
    let config = OutputConfig {
        priority: Some(37),
        ..config()
    };
    let thread = OutputThread::start(config, plan, rx).expect("start");
    tx.send(frame_on(Instant::now(), 0, &[1])).expect("frame");
    std::thread::sleep(Duration::from_millis(200));
    // (policy, rt priority) of this process's dmx-output threads: stat fields 41 and 40.
    let threads: Vec<(u32, u32)> = std::fs::read_dir("/proc/self/task")
        .expect("/proc")
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "dmx-output")
        })
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            let fields: Vec<u32> = stat[stat.rfind(')')? + 2..]
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            Some((*fields.get(38)?, *fields.get(37)?))
        })
        .collect();
    drop(thread);
    // Root (CAP_SYS_NICE) may; others may not, and the thread still runs.
    let permitted = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if permitted {
        assert!(
            threads.contains(&(1, 37)),
            "a dmx-output thread at SCHED_FIFO 37: {threads:?}"
        );
    } else {
        eprintln!("not root: the warning path ran; threads {threads:?}");
        assert!(
            !threads.is_empty(),
            "the output thread runs at normal priority"
        );
    }
}
