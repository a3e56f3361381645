//! Output benchmark: 512 universes at 44 Hz through the real output thread for 30 s
//! (`ROCKONTROL_BENCH_SECS` to change).
//!
//! A feeder thread publishes frame sets the way the engine does — one per tick, from a loop
//! with a 2 ms period, so hand-over times jitter like `FixedUpdate`'s — and the output thread
//! paces them. Prints: packets/s achieved, packets received, CPU, and the send-time lateness of
//! frames against their deadlines (p50/p99/max).
//!
//! Default: sACN unicast to a sink on 127.0.0.1.
//!
//! `ROCKONTROL_BENCH_OLA=1` (needs root and OLA): the same stream goes to a real `olad`, which
//! forwards every universe, and both are measured in the same run:
//!
//! ```text
//!  namespace rk-bench-peer-PID              namespace rk-bench-ola-PID
//!  ┌──────────────────────────────┐  veth  ┌─────────────────────────────────┐
//!  │ our output thread 198.18.0.2 │───────▶│ olad 198.18.0.1                 │
//!  │  sACN unicast, 512 universes │        │  E1.31 in: sACN k → OLA uni k   │
//!  │ listener (packet socket on   │◀───────│  KiNET out: OLA uni k → one     │
//!  │  the veth, kernel timestamps)│        │  power supply per universe,     │
//!  │ 198.18.1-3.x: local (AnyIP)  │        │  198.18.(1+k/250).(1+k%250)     │
//!  └──────────────────────────────┘        └─────────────────────────────────┘
//! ```
//!
//! Why KiNET: OLA 0.10.9 cannot forward sACN to sACN (the E1.31 device refuses an input and an
//! output port on one OLA universe: `AllowLooping() == false`, and an E1.31 port's sACN universe
//! is its OLA universe number), its Art-Net device has 4 output ports and its OSC device 32.
//! KiNET makes one output port per configured power supply, so all 512 universes really are
//! forwarded: every sACN packet olad receives becomes one 512-slot UDP packet out.
//!
//! The listener sees both streams on the same wire with kernel receive timestamps
//! (`SIOCGSTAMPNS`), and measures, per universe stream, how far each interval between
//! consecutive packets is from 1/44 s, and for olad the forwarding delay (our packet of a
//! universe and tick → olad's packet carrying the same data). CPU: our output thread from
//! `/proc/self/task/*/stat`, olad's whole process from `/proc/PID/stat`, over the same window.
//! Everything is torn down on exit and on panic (Drop guards); no traffic leaves the namespaces.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

/// olad as a process in a namespace, shared with the interop tests.
#[path = "../../../tests/support/olad.rs"]
mod olad;

use rockontrol_dmx::output::{OutputConfig, OutputStats, OutputThread};
use rockontrol_dmx::routes::{OutputPlan, SacnRoute};
use rockontrol_engine::FrameSet;

const UNIVERSES: usize = 512;
const RATE: u32 = 44;

/// User + system CPU seconds from a `/proc/…/stat` file (0 if unreadable).
fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
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

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// The `/proc/self/task/TID/stat` path of this process's thread named `name`.
/// Waits up to 1 s for the thread to have set its name.
fn thread_stat(name: &str) -> Option<String> {
    for _ in 0..100 {
        let found = std::fs::read_dir("/proc/self/task")
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim_end() == name));
        if let Some(p) = found {
            return Some(p.join("stat").to_string_lossy().into_owned());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// "p50 / p99 / max" in µs (sorts `v`).
fn summary(v: &mut [i64]) -> String {
    v.sort_unstable();
    if v.is_empty() {
        return "no samples".into();
    }
    format!(
        "{} / {} / {} µs",
        percentile(v, 0.5),
        percentile(v, 0.99),
        v.last().copied().unwrap_or(0)
    )
}

/// What one run of our sender measured.
struct SenderRun {
    stats: OutputStats,
    ticks: u64,
    dropped: u64,
    wall: f64,
    /// CPU seconds of the whole process over the run.
    cpu_process: f64,
    /// CPU seconds of the `dmx-output` thread over the run.
    cpu_output_thread: f64,
}

/// Runs the real output thread for `secs`: 512 universes at 44 Hz, sACN unicast to `dest`,
/// leaving from `interface`.
fn run_sender(secs: f64, dest: SocketAddr, interface: Ipv4Addr) -> SenderRun {
    let plan = OutputPlan {
        sacn: (0..UNIVERSES)
            .map(|i| SacnRoute {
                frame_index: i,
                universe: i as u16 + 1,
                priority: 100,
                sync_address: 63999,
                preview: false,
                destinations: vec![dest],
            })
            .collect(),
        ..OutputPlan::default()
    };
    let config = OutputConfig {
        cid: [0x42; 16],
        source_name: "RocKontrol bench".into(),
        interface,
        multicast_ttl: 1,
        idle_rate: None,
        artnet_broadcast: None,
        artnet_timecode: None,
        priority: None,
    };
    let (tx, rx) = sync_channel(8);
    let mut thread = OutputThread::start(config, plan, rx).expect("output thread");
    let output_stat = thread_stat("dmx-output");
    let thread_cpu = || output_stat.as_deref().map_or(0.0, stat_cpu_seconds);
    let ticks = (secs * f64::from(RATE)) as u64;
    let cpu0 = cpu_seconds();
    let thread_cpu0 = thread_cpu();
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
            deadline: start + Duration::from_secs_f64((tick + 1) as f64 / f64::from(RATE)),
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
    let cpu_process = cpu_seconds() - cpu0;
    let cpu_output_thread = thread_cpu() - thread_cpu0;
    let stats = thread.stats();
    thread.stop();
    SenderRun {
        stats,
        ticks,
        dropped,
        wall,
        cpu_process,
        cpu_output_thread,
    }
}

fn secs() -> f64 {
    std::env::var("ROCKONTROL_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30.0)
}

fn main() {
    if std::env::var("ROCKONTROL_BENCH_OLA").is_ok_and(|v| v == "1") {
        ola::run(secs());
    } else {
        loopback(secs());
    }
}

/// The default bench: sACN unicast to a sink on 127.0.0.1.
fn loopback(secs: f64) {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let sink_addr = sink.local_addr().expect("addr");
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
    println!(
        "output bench: {UNIVERSES} universes at {RATE} Hz for {secs} s, sACN unicast to {sink_addr}"
    );
    let run = run_sender(secs, sink_addr, Ipv4Addr::LOCALHOST);
    done.store(true, Ordering::Relaxed);
    let _ = drain.join();
    let stats = &run.stats;
    let mut lateness = stats.lateness_us.clone();
    println!(
        "frames sent        {} of {} ({} not handed over)",
        stats.frames, run.ticks, run.dropped
    );
    println!(
        "packets sent       {} ({:.0}/s; data + sync)",
        stats.packets,
        stats.packets as f64 / run.wall
    );
    println!("packets received   {}", received.load(Ordering::Relaxed));
    println!("send errors        {}", stats.send_errors);
    println!(
        "CPU                {:.1} % of one core (whole process: feeder, output thread, sink); output thread {:.1} %",
        run.cpu_process / run.wall * 100.0,
        run.cpu_output_thread / run.wall * 100.0
    );
    println!(
        "lateness vs deadline  p50/p99/max {}  (frames > 1 ms late: {})",
        summary(&mut lateness),
        stats.late_frames
    );
}

/// The same stream through a real `olad` in network namespaces, measured side by side.
#[allow(
    unsafe_code,
    reason = "setns(2) and ioctl(SIOCGSTAMPNS) for the namespace and the kernel timestamps; libc is not a dependency"
)]
mod ola {
    use super::*;
    use socket2::{Domain, Protocol, Socket, Type};
    use std::mem::MaybeUninit;
    use std::os::fd::AsRawFd;
    use std::path::PathBuf;

    unsafe extern "C" {
        fn setns(fd: i32, nstype: i32) -> i32;
        fn ioctl(fd: i32, request: u64, ...) -> i32;
        fn syscall(number: i64, ...) -> i64;
    }
    const SYS_PIDFD_OPEN: i64 = 434;
    const SYS_PIDFD_GETFD: i64 = 438;
    const CLONE_NEWNET: i32 = 0x4000_0000;
    const SIOCGSTAMPNS: u64 = 0x8907;

    const OLA_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const NODE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const E131_PLUGIN: u32 = 11;
    const KINET_PLUGIN: u32 = 16;
    const KINET_PORT: u16 = 6038;
    const KINET_MAGIC: [u8; 4] = [0x04, 0x01, 0xdc, 0x4a];

    /// Where olad's KiNET output port `i` (OLA universe i + 1) sends.
    fn kinet_target(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
    }

    fn kinet_index(ip: Ipv4Addr) -> Option<usize> {
        let [a, b, c, d] = ip.octets();
        ((a, b) == (198, 18) && (1..=3).contains(&c) && d >= 1)
            .then(|| usize::from(c - 1) * 250 + usize::from(d - 1))
            .filter(|&i| i < UNIVERSES)
    }

    /// The two namespaces, the veth between them, olad and its config; all removed on drop.
    struct Rig {
        ola_ns: String,
        peer_ns: String,
        conf: PathBuf,
        olad: Option<Child>,
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            olad::kill_namespace_processes(&self.ola_ns);
            if let Some(mut child) = self.olad.take() {
                let deadline = Instant::now() + Duration::from_secs(5);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = olad::run(&["ip", "netns", "del", &self.ola_ns]);
            let _ = olad::run(&["ip", "netns", "del", &self.peer_ns]);
            let _ = std::fs::remove_dir_all(&self.conf);
        }
    }

    impl Rig {
        fn http(&self, path: &str) -> Option<String> {
            olad::http(&self.ola_ns, path)
        }

        fn log(&self) -> String {
            olad::log_of(&self.conf)
        }

        fn start() -> Rig {
            let id = std::process::id();
            let mut rig = Rig {
                ola_ns: format!("rk-bench-ola-{id}"),
                peer_ns: format!("rk-bench-peer-{id}"),
                conf: std::env::temp_dir().join(format!("rk-bench-ola-{id}-conf")),
                olad: None,
            };
            let (o, p) = (rig.ola_ns.clone(), rig.peer_ns.clone());
            let (o, p) = (o.as_str(), p.as_str());
            let ola_cidr = format!("{OLA_IP}/24");
            let node_cidr = format!("{NODE_IP}/24");
            let node = NODE_IP.to_string();
            for step in [
                vec!["ip", "netns", "add", o],
                vec!["ip", "netns", "add", p],
                vec!["ip", "-n", o, "link", "set", "lo", "up"],
                vec!["ip", "-n", p, "link", "set", "lo", "up"],
                vec![
                    "ip", "-n", o, "link", "add", "rk0", "type", "veth", "peer", "name", "rk1",
                    "netns", p,
                ],
                vec!["ip", "-n", o, "addr", "add", &ola_cidr, "dev", "rk0"],
                vec!["ip", "-n", p, "addr", "add", &node_cidr, "dev", "rk1"],
                vec!["ip", "-n", o, "link", "set", "rk0", "up"],
                vec!["ip", "-n", p, "link", "set", "rk1", "up"],
                // Multicast (OLA's E1.31 joins, our discovery) stays on each side's lo.
                vec!["ip", "-n", o, "route", "add", "224.0.0.0/4", "dev", "lo"],
                vec!["ip", "-n", p, "route", "add", "224.0.0.0/4", "dev", "lo"],
                // KiNET targets: routed to the peer, where the whole ranges are local.
                vec!["ip", "-n", o, "route", "add", "198.18.0.0/16", "via", &node],
                vec![
                    "ip",
                    "-n",
                    p,
                    "route",
                    "add",
                    "local",
                    "198.18.1.0/24",
                    "dev",
                    "lo",
                ],
                vec![
                    "ip",
                    "-n",
                    p,
                    "route",
                    "add",
                    "local",
                    "198.18.2.0/24",
                    "dev",
                    "lo",
                ],
                vec![
                    "ip",
                    "-n",
                    p,
                    "route",
                    "add",
                    "local",
                    "198.18.3.0/24",
                    "dev",
                    "lo",
                ],
                // olad's E1.31 input joins one group per universe (PEERS.md: 20 by default).
                vec![
                    "ip",
                    "netns",
                    "exec",
                    o,
                    "sysctl",
                    "-qw",
                    "net.ipv4.igmp_max_memberships=1024",
                ],
            ] {
                olad::run(&step).unwrap_or_else(|e| panic!("network namespace setup: {e}"));
            }
            let kinet = std::iter::once("enabled = true\n".to_string())
                .chain((0..UNIVERSES).map(|i| format!("power_supply = {}\n", kinet_target(i))))
                .collect();
            let ports = (0..UNIVERSES)
                .map(|i| {
                    format!(
                        "{E131_PLUGIN}-1-I-{i} = {u}\n{KINET_PLUGIN}-1-O-{i} = {u}\n",
                        u = i + 1
                    )
                })
                .collect();
            olad::write_config(
                &rig.conf,
                &[
                    (
                        "ola-e131.conf",
                        format!(
                            "enabled = true\nignore_preview = true\ninput_ports = {UNIVERSES}\noutput_ports = 0\nip = {OLA_IP}\nrevision = 0.46\n"
                        ),
                    ),
                    ("ola-kinet.conf", kinet),
                    ("ola-port.conf", ports),
                ],
                &["e131", "kinet"],
            );
            rig.olad = Some(olad::spawn(o, &rig.conf, Duration::from_secs(30)));
            rig
        }

        /// olad's pid (the process named `olad` in its namespace).
        fn olad_pid(&self) -> Option<u32> {
            let out = Command::new("ip")
                .args(["netns", "pids", &self.ola_ns])
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .find(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim_end() == "olad")
                })
        }

        /// Checks that OLA universe `u` has the E1.31 input and the expected KiNET output.
        fn check_patch(&self, u: usize) {
            let info = self
                .http(&format!("/json/universe_info?id={u}"))
                .unwrap_or_default();
            let target = kinet_target(u - 1).to_string();
            assert!(
                info.contains(&format!("E1.31 Universe {u}\""))
                    && info.contains(&format!("{target}\"")),
                "OLA universe {u} is not patched sACN {u} → KiNET {target}: {info}\nlog:\n{}",
                self.log()
            );
        }
    }

    /// Sets the receive buffer of olad's socket bound to UDP `port` to `bytes` (up to
    /// `net.core.rmem_max`), through a duplicate of its descriptor (`pidfd_getfd`).
    /// `net.core.rmem_default` is not per network namespace, so it is not raised instead.
    fn raise_rcvbuf(pid: u32, port: u16, bytes: usize) -> Result<usize, String> {
        let table =
            std::fs::read_to_string(format!("/proc/{pid}/net/udp")).map_err(|e| e.to_string())?;
        let inode = table
            .lines()
            .skip(1)
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let local_port = f.get(1)?.rsplit(':').next()?;
                (u16::from_str_radix(local_port, 16).ok()? == port)
                    .then(|| f.get(9).map(|s| s.to_string()))?
            })
            .ok_or_else(|| format!("no UDP socket on port {port} in olad"))?;
        let want = format!("socket:[{inode}]");
        let fd: i64 = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(|e| e.to_string())?
            .flatten()
            .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == want))
            .and_then(|e| e.file_name().to_str()?.parse().ok())
            .ok_or("olad's socket descriptor not found")?;
        // SAFETY: plain syscalls; the returned descriptors are owned below and closed on drop.
        let pidfd = unsafe { syscall(SYS_PIDFD_OPEN, i64::from(pid), 0i64) };
        if pidfd < 0 {
            return Err(format!("pidfd_open: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: pidfd is a fresh descriptor we own.
        let pidfd =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd as i32) };
        // SAFETY: as above.
        let dup = unsafe { syscall(SYS_PIDFD_GETFD, i64::from(pidfd.as_raw_fd()), fd, 0i64) };
        if dup < 0 {
            return Err(format!("pidfd_getfd: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: dup is a fresh descriptor we own (a duplicate of olad's socket).
        let socket = unsafe { <Socket as std::os::fd::FromRawFd>::from_raw_fd(dup as i32) };
        socket
            .set_recv_buffer_size(bytes)
            .map_err(|e| e.to_string())?;
        socket.recv_buffer_size().map_err(|e| e.to_string())
    }

    /// Moves this thread (and every thread it starts later) into namespace `ns`.
    fn enter_namespace(ns: &str) {
        let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("namespace file");
        // SAFETY: plain syscall on an fd we own; affects only the calling thread.
        let rc = unsafe { setns(file.as_raw_fd(), CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }

    /// Kernel receive time of the last packet read from `fd`, in µs (wall clock).
    fn kernel_stamp_us(fd: i32) -> Option<i64> {
        let mut ts = [0i64; 2];
        // SAFETY: SIOCGSTAMPNS writes one `struct timespec` (two 64-bit words) into `ts`.
        let rc = unsafe { ioctl(fd, SIOCGSTAMPNS, ts.as_mut_ptr()) };
        (rc == 0).then(|| ts[0] * 1_000_000 + ts[1] / 1000)
    }

    #[derive(Default)]
    struct Stream {
        packets: u64,
        /// |interval − 1/44 s| per packet of each universe stream, µs.
        jitter_us: Vec<i64>,
        last: Vec<Option<i64>>,
    }

    impl Stream {
        fn new() -> Stream {
            Stream {
                last: vec![None; UNIVERSES],
                jitter_us: Vec::with_capacity(UNIVERSES * 50 * 60),
                ..Stream::default()
            }
        }
        fn packet(&mut self, index: usize, t: i64) {
            self.packets += 1;
            let period = 1_000_000.0 / f64::from(RATE);
            if let Some(prev) = self.last[index].replace(t) {
                self.jitter_us
                    .push(((t - prev) as f64 - period).abs().round() as i64);
            }
        }
    }

    struct Observed {
        ours: Stream,
        olad: Stream,
        /// olad's packet of (universe, data) minus ours with the same data, µs.
        forward_us: Vec<i64>,
        unmatched: u64,
    }

    /// Reads every IPv4 packet on the peer's side (both directions of the veth) until `done`.
    fn listen(done: &AtomicBool, limit: Instant) -> Observed {
        let socket = Socket::new(
            Domain::PACKET,
            Type::DGRAM,
            // ETH_P_ALL: protocol-specific packet sockets do not see outgoing packets.
            Some(Protocol::from(i32::from(0x0003u16.to_be()))),
        )
        .expect("packet socket (needs root)");
        let _ = socket.set_recv_buffer_size(32 << 20);
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let fd = socket.as_raw_fd();
        let mut obs = Observed {
            ours: Stream::new(),
            olad: Stream::new(),
            forward_us: Vec::with_capacity(UNIVERSES * 50 * 60),
            unmatched: 0,
        };
        // Our send time of (universe index, slot 1 value).
        let mut sent = vec![[None::<i64>; 256]; UNIVERSES];
        let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
        while !done.load(Ordering::Relaxed) && Instant::now() < limit {
            let Ok(n) = socket.recv(&mut buf) else {
                continue;
            };
            let t = kernel_stamp_us(fd).unwrap_or(0);
            // SAFETY: recv initialised the first n bytes.
            let p: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) };
            let ihl = usize::from(p.first().copied().unwrap_or(0) & 0x0f) * 4;
            if n < ihl + 8 || p[0] >> 4 != 4 || p[9] != 17 {
                continue;
            }
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            let dport = u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]);
            let udp = &p[ihl + 8..];
            // sACN data: options at 112 (0x40: stream terminated, sent at stop, unpaced),
            // universe at 113, start code at 125, slot 1 at 126.
            if dport == 5568 && dst == OLA_IP && udp.len() == 638 && udp[112] & 0x40 == 0 {
                let u = usize::from(u16::from_be_bytes([udp[113], udp[114]]));
                if (1..=UNIVERSES).contains(&u) {
                    obs.ours.packet(u - 1, t);
                    sent[u - 1][usize::from(udp[126])] = Some(t);
                }
            } else if dport == KINET_PORT && udp.len() >= 22 && udp[..4] == KINET_MAGIC {
                // KiNET DMXOUT: 20-byte header, start code, slot 1 at 21.
                if let Some(i) = kinet_index(dst) {
                    obs.olad.packet(i, t);
                    match sent[i][usize::from(udp[21])] {
                        Some(s) if t >= s && t - s < 1_000_000 => obs.forward_us.push(t - s),
                        _ => obs.unmatched += 1,
                    }
                }
            }
        }
        obs
    }

    pub fn run(secs: f64) {
        let rig = Rig::start();
        rig.check_patch(1);
        rig.check_patch(UNIVERSES);
        let olad_pid = rig.olad_pid().expect("olad's pid");
        let olad_stat = format!("/proc/{olad_pid}/stat");
        // Our output sends each frame's 512 packets back to back; with Linux's default
        // 208 KiB receive buffer olad keeps only ~200 of them. `ROCKONTROL_BENCH_OLA_RCVBUF=0`
        // leaves olad as installed.
        let rcvbuf: usize = std::env::var("ROCKONTROL_BENCH_OLA_RCVBUF")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4 << 20);
        let olad_rcvbuf = if rcvbuf > 0 {
            match raise_rcvbuf(olad_pid, 5568, rcvbuf) {
                Ok(n) => format!(
                    "olad's sACN socket receive buffer raised to {} KiB (kernel figure)",
                    n >> 10
                ),
                Err(e) => format!("olad's sACN socket receive buffer NOT raised: {e}"),
            }
        } else {
            "olad's sACN socket receive buffer left at the system default".to_string()
        };
        println!("{olad_rcvbuf}");
        println!(
            "output bench with olad: {UNIVERSES} universes at {RATE} Hz for {secs} s; \
             our sACN unicast {NODE_IP} → olad {OLA_IP}:5568, olad forwards each as KiNET \
             (namespaces {} / {})",
            rig.peer_ns, rig.ola_ns
        );
        enter_namespace(&rig.peer_ns);
        // Something bound on the KiNET port so olad's packets are not answered with ICMP;
        // never read (the listener sees the packets before UDP does).
        let kinet_sink = UdpSocket::bind(("0.0.0.0", KINET_PORT)).expect("KiNET sink");
        let done = Arc::new(AtomicBool::new(false));
        let limit = Instant::now() + Duration::from_secs_f64(secs + 30.0);
        let listener = {
            let done = Arc::clone(&done);
            std::thread::Builder::new()
                .name("bench-listen".into())
                .spawn(move || listen(&done, limit))
                .expect("listener thread")
        };
        std::thread::sleep(Duration::from_millis(200));
        let listener_stat = thread_stat("bench-listen");
        let listener_cpu = || listener_stat.as_deref().map_or(0.0, stat_cpu_seconds);
        let olad0 = stat_cpu_seconds(&olad_stat);
        let listener0 = listener_cpu();
        let run = run_sender(
            secs,
            SocketAddr::V4(SocketAddrV4::new(OLA_IP, 5568)),
            NODE_IP,
        );
        let olad_cpu = stat_cpu_seconds(&olad_stat) - olad0;
        let listener_cpu = listener_cpu() - listener0;
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
        let mut obs = listener.join().expect("listener");
        drop(kinet_sink);
        let olad_alive = std::fs::metadata(format!("/proc/{olad_pid}")).is_ok();
        let last = rig
            .http(&format!("/get_dmx?u={UNIVERSES}"))
            .unwrap_or_default();

        let stats = &run.stats;
        let wall = run.wall;
        let frames = stats.frames.max(1) as f64;
        let pct = |cpu: f64| format!("{:.1} %", cpu / wall * 100.0);
        let per_uf = |cpu: f64, n: f64| format!("{:.2} µs", cpu * 1e6 / n.max(1.0));
        let mut lateness = stats.lateness_us.clone();
        println!();
        println!("| figure | RocKontrol output thread | olad (sACN in → KiNET out) |");
        println!("| --- | --- | --- |");
        println!(
            "| frames | {} sent of {} ({} not handed over, {} > 1 ms late) | — |",
            stats.frames, run.ticks, run.dropped, stats.late_frames
        );
        println!(
            "| packets sent | {} ({:.0}/s; data + sync), {} send errors | {} seen ({:.0}/s) |",
            stats.packets,
            stats.packets as f64 / wall,
            stats.send_errors,
            obs.olad.packets,
            obs.olad.packets as f64 / wall
        );
        println!(
            "| universe-frames seen on the veth | {} ({:.0}/s) | {} ({:.0}/s; {} of ours not forwarded) |",
            obs.ours.packets,
            obs.ours.packets as f64 / wall,
            obs.olad.packets,
            obs.olad.packets as f64 / wall,
            obs.ours.packets.saturating_sub(obs.olad.packets)
        );
        println!(
            "| send time vs deadline p50 / p99 / max | {} | — (sends on receipt, no clock of its own) |",
            summary(&mut lateness)
        );
        println!(
            "| per-universe spacing: abs(interval − 1/44 s) p50 / p99 / max | {} | {} |",
            summary(&mut obs.ours.jitter_us),
            summary(&mut obs.olad.jitter_us)
        );
        println!(
            "| forwarding delay (our packet → olad's, same universe and data) p50 / p99 / max | — | {} ({} unmatched) |",
            summary(&mut obs.forward_us),
            obs.unmatched
        );
        println!(
            "| CPU, % of one core | {} (output thread; whole process {}, of which listener {}) | {} (whole olad) |",
            pct(run.cpu_output_thread),
            pct(run.cpu_process),
            pct(listener_cpu),
            pct(olad_cpu)
        );
        println!(
            "| CPU per universe-frame | {} | {} |",
            per_uf(run.cpu_output_thread, frames * UNIVERSES as f64),
            per_uf(olad_cpu, obs.olad.packets as f64)
        );
        println!();
        println!(
            "olad alive at the end: {olad_alive}; olad's universe {UNIVERSES} holds {} bytes of JSON",
            last.len()
        );
        // rig drops here: olad stopped, namespaces deleted.
    }
}
