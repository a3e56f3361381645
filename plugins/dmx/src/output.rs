//! The output thread: frames on the wire at their deadlines.
//!
//! The engine computes frame *k* for show time `t_k = k / rate` in `FixedUpdate`, whose
//! wall-clock spacing depends on the app's outer loop. This thread owns the sockets and sends
//! each frame at the deadline it carries ([`FrameSet::deadline`], from the engine's show time
//! base: one tick after the tick's instant), then the sync packets that make receivers switch
//! every universe of the frame together. It keeps no clock of its own, so a step of show time
//! (a receiver following its master, a stall) cannot leave it waiting seconds or bursting.
//!
//! Pacing rules, so the wire never stalls or bursts whatever the engine does:
//! - a frame that is late while a newer one is already queued is skipped (counted): after a
//!   catch-up only the newest due frame goes out;
//! - frames go out at least half a tick apart;
//! - a deadline more than [`MAX_AHEAD`] away is not trusted: that frame goes out now.
//!
//! ArtTimeCode (when switched on) goes out from here too, each timecode frame at its own show
//! time within the tick ([`timecode_frames_in_tick`]), before the tick's DMX.
//!
//! Also here: sACN universe discovery every 10 s, Art-Net subscriber discovery (ArtPoll →
//! ArtPollReply), USB Pro writes, and three stream-terminated packets per universe when a
//! universe is released or the thread stops.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rockontrol_engine::FrameSet;
use rockontrol_wire::artnet::{self, ArtDmx, ArtPoll, ArtSync, ArtTimeCode, PortAddress};
use rockontrol_wire::sacn::{self, DataPacket, DiscoveryPacket, Options, SyncPacket};
use rockontrol_wire::timecode::RunningTimecode;
use rockontrol_wire::usbpro;
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, info, warn};

use crate::routes::{ARTNET_PORT, OutputPlan, SacnRoute};

/// Settings of an output thread.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputConfig {
    /// sACN component identifier (persistent per node).
    pub cid: [u8; 16],
    /// sACN source name and Art-Net long name.
    pub source_name: String,
    /// Interface address packets leave from (multicast interface and source address).
    pub interface: Ipv4Addr,
    /// Multicast TTL (1 keeps sACN on the local segment).
    pub multicast_ttl: u32,
    /// `None`: every universe every tick. `Some(hz)`: unchanged universes only at `hz` (≥ 1).
    pub idle_rate: Option<f64>,
    /// Where ArtPoll goes to find subscribers (a directed broadcast address).
    pub artnet_broadcast: Option<Ipv4Addr>,
    /// Send the show's timecode (its rate, and the label at show time 0) as ArtTimeCode to
    /// every Art-Net destination.
    pub artnet_timecode: Option<RunningTimecode>,
    /// Run the thread under SCHED_FIFO at this priority (1..=99), if the system permits.
    pub priority: Option<u8>,
}

/// What the output thread has done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputStats {
    pub frames: u64,
    pub packets: u64,
    pub send_errors: u64,
    /// Frames sent more than 1 ms after their deadline.
    pub late_frames: u64,
    /// Late frames not sent because a newer one was already queued.
    pub skipped_frames: u64,
    pub last_tick: Option<u64>,
    /// Send start minus deadline, in microseconds, of the most recent frames (bounded).
    pub lateness_us: Vec<i64>,
    /// Art-Net nodes found per port-address.
    pub artnet_subscribers: BTreeMap<u16, Vec<Ipv4Addr>>,
}

/// Samples of lateness kept for statistics (10 minutes at 44 Hz).
const LATENESS_SAMPLES: usize = 26_400;
/// A deadline further ahead than this is not waited for (the frame goes out at once).
pub const MAX_AHEAD: Duration = Duration::from_millis(500);
/// sACN keep-alive when an idle rate is configured never drops below 1 Hz (E1.31 §6.6.1 allows
/// 1 s; receivers time out at 2.5 s).
const MIN_IDLE_RATE: f64 = 1.0;
const ARTPOLL_INTERVAL: Duration = Duration::from_secs(3);

enum Control {
    Plan(OutputPlan),
    Stop,
}

/// A running output thread. Dropping it stops the thread after the stream-terminated packets.
#[derive(Debug)]
pub struct OutputThread {
    control: SyncSender<Control>,
    handle: Option<JoinHandle<()>>,
    stats: Arc<Mutex<OutputStats>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Control::Plan(_) => f.write_str("Plan"),
            Control::Stop => f.write_str("Stop"),
        }
    }
}

impl OutputThread {
    /// Opens the sockets and starts the thread `dmx-output`, sending frames from `frames`.
    pub fn start(
        config: OutputConfig,
        plan: OutputPlan,
        frames: Receiver<Arc<FrameSet>>,
    ) -> std::io::Result<Self> {
        let sockets = Sockets::open(&config, &plan)?;
        let (control, control_rx) = sync_channel(16);
        let stats = Arc::new(Mutex::new(OutputStats::default()));
        let thread_stats = Arc::clone(&stats);
        let handle = std::thread::Builder::new()
            .name("dmx-output".into())
            .spawn(move || {
                if let Some(priority) = config.priority {
                    raise_priority(priority);
                }
                let mut sender = Sender::new(config, plan, sockets, thread_stats);
                sender.run(&frames, &control_rx);
            })?;
        Ok(OutputThread {
            control,
            handle: Some(handle),
            stats,
        })
    }

    /// Replaces the routes; universes no longer routed get their stream-terminated packets.
    pub fn set_plan(&self, plan: OutputPlan) {
        if self.control.send(Control::Plan(plan)).is_err() {
            warn!("the DMX output thread has stopped; the new routes are not used");
        }
    }

    /// The counters so far, without the lateness samples (cheap: for status lines).
    pub fn counters(&self) -> OutputStats {
        self.stats
            .lock()
            .map(|s| OutputStats {
                lateness_us: Vec::new(),
                artnet_subscribers: s.artnet_subscribers.clone(),
                ..*s
            })
            .unwrap_or_default()
    }

    /// A copy of the statistics so far, with lateness samples (for benchmarks).
    pub fn stats(&self) -> OutputStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops the thread after it has sent the stream-terminated packets, and waits for it.
    pub fn stop(&mut self) {
        let _ = self.control.send(Control::Stop);
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            warn!("the DMX output thread panicked");
        }
    }
}

impl Drop for OutputThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Puts the calling thread under SCHED_FIFO at `priority`; logs a warning (and carries on at
/// normal priority) where that is not permitted.
fn raise_priority(priority: u8) {
    use thread_priority::{
        RealtimeThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let value = match ThreadPriorityValue::try_from(priority.clamp(1, 99)) {
        Ok(v) => v,
        Err(e) => {
            warn!("dmx_output_priority {priority}: {e}; the output thread runs at normal priority");
            return;
        }
    };
    match set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    ) {
        Ok(()) => info!("DMX output thread at real-time priority (SCHED_FIFO {priority})"),
        Err(e) => warn!(
            "cannot run the DMX output thread at SCHED_FIFO {priority} ({e:?}): it runs at normal \
             priority; give the process CAP_SYS_NICE (or an rtprio limit) to allow it"
        ),
    }
}

/// The timecode frames that start within tick `tick`'s show time `(t_k, t_{k+1}]`: each as
/// (ns after `t_k`, frames since 00:00:00:00). Exact integer show times, so every frame is in
/// exactly one tick's list.
pub fn timecode_frames_in_tick(
    timecode: RunningTimecode,
    tick: u64,
    tick_rate: u32,
) -> impl Iterator<Item = (u64, u32)> {
    let from = rockontrol_engine::ns_of_tick(tick, tick_rate);
    let to = rockontrol_engine::ns_of_tick(tick + 1, tick_rate);
    let rate = timecode.rate;
    (rate.frame_at_ns(from) + 1..)
        .map(move |n| rate.ns_of_frame(n))
        .take_while(move |ns| *ns <= to)
        .map(move |ns| (ns - from, timecode.frames_at_ns(ns)))
}

struct Sockets {
    udp: UdpSocket,
    /// Bound to the Art-Net port, for ArtPoll replies (only when routes need discovery).
    artnet: Option<UdpSocket>,
}

impl Sockets {
    fn open(config: &OutputConfig, plan: &OutputPlan) -> std::io::Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_multicast_if_v4(&config.interface)?;
        socket.set_multicast_ttl_v4(config.multicast_ttl)?;
        socket.set_broadcast(true)?;
        // Port 0: never share sACN's 5568 with a receiver on this host (see PEERS.md).
        socket.bind(&SocketAddr::V4(SocketAddrV4::new(config.interface, 0)).into())?;
        let artnet = if plan.artnet.iter().any(|r| r.discovered) {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_reuse_address(true)?;
            s.set_broadcast(true)?;
            s.set_nonblocking(true)?;
            match s.bind(&SocketAddr::V4(SocketAddrV4::new(config.interface, ARTNET_PORT)).into()) {
                Ok(()) => Some(s.into()),
                Err(e) => {
                    warn!(
                        "cannot bind Art-Net port {}:{ARTNET_PORT} for node discovery ({e}); \
                         Art-Net universes routed to discovered nodes will not be sent",
                        config.interface
                    );
                    None
                }
            }
        } else {
            None
        };
        Ok(Sockets {
            udp: socket.into(),
            artnet,
        })
    }
}

struct Sender {
    config: OutputConfig,
    plan: OutputPlan,
    sockets: Sockets,
    stats: Arc<Mutex<OutputStats>>,
    buf: Vec<u8>,
    sacn_sequence: HashMap<u16, u8>,
    sync_sequence: HashMap<u16, u8>,
    artnet_sequence: u8,
    /// Per frame index: last data sent and when, for the idle rate.
    last_sent: HashMap<usize, (Instant, Vec<u8>)>,
    /// When the latest frame went out, for the minimum spacing.
    last_send: Option<Instant>,
    /// Frames skipped since the stats were last updated.
    skipped: u64,
    next_discovery: Instant,
    next_artpoll: Instant,
    subscribers: BTreeMap<u16, BTreeSet<Ipv4Addr>>,
    usbpro: HashMap<String, Option<Box<dyn serialport::SerialPort>>>,
    local: Stats,
    /// The latest frame sent: stream-terminated packets repeat its slots, so a receiver that
    /// ignores the terminated bit holds the last look instead of blacking out.
    last_frame: Option<Arc<FrameSet>>,
    /// Timecode frame last sent as ArtTimeCode.
    last_timecode: Option<u32>,
}

/// Counters kept locally and copied to the shared stats once per frame (one lock per frame).
#[derive(Default)]
struct Stats {
    packets: u64,
    send_errors: u64,
}

impl Sender {
    fn new(
        config: OutputConfig,
        plan: OutputPlan,
        sockets: Sockets,
        stats: Arc<Mutex<OutputStats>>,
    ) -> Self {
        let now = Instant::now();
        let mut sender = Sender {
            config,
            plan: OutputPlan::default(),
            sockets,
            stats,
            buf: Vec::with_capacity(638),
            sacn_sequence: HashMap::new(),
            sync_sequence: HashMap::new(),
            artnet_sequence: 0,
            last_sent: HashMap::new(),
            last_send: None,
            skipped: 0,
            next_discovery: now,
            next_artpoll: now,
            subscribers: BTreeMap::new(),
            usbpro: HashMap::new(),
            local: Stats::default(),
            last_frame: None,
            last_timecode: None,
        };
        sender.replace_plan(plan);
        sender
    }

    fn run(&mut self, frames: &Receiver<Arc<FrameSet>>, control: &Receiver<Control>) {
        info!(
            "DMX output: {} sACN, {} Art-Net, {} USB Pro streams from {}",
            self.plan.sacn.len(),
            self.plan.artnet.len(),
            self.plan.usbpro.len(),
            self.config.interface
        );
        'run: loop {
            let frame = match frames.recv_timeout(Duration::from_millis(50)) {
                Ok(set) => Some(set),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Control after the frame arrived: a plan change made before a frame was
            // published applies to that frame.
            loop {
                match control.try_recv() {
                    Ok(Control::Plan(plan)) => self.replace_plan(plan),
                    Ok(Control::Stop) | Err(TryRecvError::Disconnected) => break 'run,
                    Err(TryRecvError::Empty) => break,
                }
            }
            if let Some(set) = frame {
                let set = self.newest_due(set, frames);
                self.send_frame(&set);
            }
            let now = Instant::now();
            if now >= self.next_discovery {
                self.send_discovery();
                self.next_discovery = now + sacn::UNIVERSE_DISCOVERY_INTERVAL;
            }
            if self.sockets.artnet.is_some() {
                self.poll_artnet(now);
            }
        }
        self.terminate(&self.plan.sacn.clone());
        info!(
            "DMX output stopped: stream-terminated sent for {} sACN universes",
            self.plan.sacn.len()
        );
    }

    fn replace_plan(&mut self, plan: OutputPlan) {
        let kept: BTreeSet<u16> = plan.sacn.iter().map(|r| r.universe).collect();
        let released: Vec<SacnRoute> = self
            .plan
            .sacn
            .iter()
            .filter(|r| !kept.contains(&r.universe))
            .cloned()
            .collect();
        self.terminate(&released);
        for route in &plan.usbpro {
            self.usbpro
                .entry(route.port.clone())
                .or_insert_with(|| open_usbpro(&route.port));
        }
        self.last_sent.clear();
        self.plan = plan;
    }

    /// `set`, or a newer queued frame when `set` is already late: after a catch-up only the
    /// newest due frame goes out, instead of a burst of stale ones.
    fn newest_due(
        &mut self,
        mut set: Arc<FrameSet>,
        frames: &Receiver<Arc<FrameSet>>,
    ) -> Arc<FrameSet> {
        while set.deadline <= Instant::now() {
            match frames.try_recv() {
                Ok(newer) => {
                    self.skipped += 1;
                    set = newer;
                }
                Err(_) => break,
            }
        }
        set
    }

    /// When `set` goes out: its deadline, at least half a tick after the previous frame, and
    /// never later than [`MAX_AHEAD`] from now.
    fn send_time(&self, set: &FrameSet, now: Instant) -> Instant {
        let half_tick = Duration::from_nanos(500_000_000 / u64::from(set.rate.max(1)));
        if set.deadline > now + MAX_AHEAD {
            debug!(
                "DMX output: frame {} is due in {:?}; sent now",
                set.tick,
                set.deadline - now
            );
            return now;
        }
        let spaced = self.last_send.map_or(now, |at| at + half_tick);
        set.deadline.max(spaced)
    }

    fn send_frame(&mut self, set: &Arc<FrameSet>) {
        self.last_frame = Some(Arc::clone(set));
        if let Some(timecode) = self.config.artnet_timecode {
            self.send_timecode_of_tick(set, timecode);
        }
        let now = Instant::now();
        let send_at = self.send_time(set, now);
        if send_at > now {
            std::thread::sleep(send_at - now);
        }
        let deadline = set.deadline;
        let started = Instant::now();
        self.last_send = Some(started);
        let lateness = if started >= deadline {
            (started - deadline).as_micros() as i64
        } else {
            -((deadline - started).as_micros() as i64)
        };
        let idle = self
            .config
            .idle_rate
            .map(|hz| Duration::from_secs_f64(1.0 / hz.max(MIN_IDLE_RATE)));
        let mut sent_sync: BTreeSet<u16> = BTreeSet::new();
        for i in 0..self.plan.sacn.len() {
            let route = &self.plan.sacn[i];
            let Some(slots) = set
                .data
                .get(route.frame_index * 512..(route.frame_index + 1) * 512)
            else {
                continue;
            };
            if let Some(idle) = idle
                && let Some((at, last)) = self.last_sent.get(&route.frame_index)
                && last.as_slice() == slots
                && started.duration_since(*at) < idle
            {
                continue;
            }
            let sequence = next(&mut self.sacn_sequence, route.universe);
            let packet = DataPacket {
                cid: self.config.cid,
                source_name: self.config.source_name.as_str().into(),
                priority: route.priority,
                sync_address: route.sync_address,
                sequence,
                options: Options {
                    preview: route.preview,
                    ..Options::default()
                },
                universe: route.universe,
                start_code: 0,
                slots: slots.into(),
            };
            match packet.encode_into(&mut self.buf) {
                Ok(()) => {
                    for dest in &route.destinations {
                        send(&self.sockets.udp, &self.buf, *dest, &mut self.local);
                    }
                }
                Err(e) => encode_failed(&mut self.local, route.universe, &e),
            }
            if route.sync_address != 0 {
                sent_sync.insert(route.sync_address);
            }
            if idle.is_some() {
                self.last_sent
                    .insert(route.frame_index, (started, slots.to_vec()));
            }
        }
        for i in 0..self.plan.artnet.len() {
            let route = &self.plan.artnet[i];
            let Some(slots) = set
                .data
                .get(route.frame_index * 512..(route.frame_index + 1) * 512)
            else {
                continue;
            };
            self.artnet_sequence = self.artnet_sequence.wrapping_add(1).max(1);
            let packet = ArtDmx {
                sequence: self.artnet_sequence,
                physical: 0,
                port_address: route.port_address,
                data: slots.into(),
            };
            if packet.encode_into(&mut self.buf).is_ok() {
                let subscribers = self.subscribers.get(&route.port_address.get());
                let discovered = subscribers
                    .into_iter()
                    .flatten()
                    .filter(|_| route.discovered)
                    .map(|ip| SocketAddr::new(IpAddr::V4(*ip), ARTNET_PORT));
                for dest in route.destinations.iter().copied().chain(discovered) {
                    send(&self.sockets.udp, &self.buf, dest, &mut self.local);
                }
            }
        }
        // Sync after the frame's data: receivers switch all universes of the frame together.
        for sync_address in sent_sync {
            let sequence = next(&mut self.sync_sequence, sync_address);
            let packet = SyncPacket {
                cid: self.config.cid,
                sequence,
                sync_address,
            };
            match packet.encode_into(&mut self.buf) {
                Ok(()) => {
                    for dest in sync_destinations(&self.plan, sync_address) {
                        send(&self.sockets.udp, &self.buf, dest, &mut self.local);
                    }
                }
                Err(e) => encode_failed(&mut self.local, sync_address, &e),
            }
        }
        if !self.plan.artnet.is_empty() {
            ArtSync.encode_into(&mut self.buf);
            let mut dests: BTreeSet<SocketAddr> = BTreeSet::new();
            for route in &self.plan.artnet {
                dests.extend(route.destinations.iter().copied());
                if route.discovered {
                    for ip in self
                        .subscribers
                        .get(&route.port_address.get())
                        .into_iter()
                        .flatten()
                    {
                        dests.insert(SocketAddr::new(IpAddr::V4(*ip), ARTNET_PORT));
                    }
                }
            }
            for dest in dests {
                send(&self.sockets.udp, &self.buf, dest, &mut self.local);
            }
        }
        for i in 0..self.plan.usbpro.len() {
            let route = &self.plan.usbpro[i];
            let Some(slots) = set
                .data
                .get(route.frame_index * 512..(route.frame_index + 1) * 512)
            else {
                continue;
            };
            if usbpro::encode_dmx(0, slots, &mut self.buf).is_ok()
                && let Some(Some(port)) = self.usbpro.get_mut(&route.port)
            {
                if let Err(e) = port.write_all(&self.buf) {
                    self.local.send_errors += 1;
                    debug!("USB Pro {}: {e}", route.port);
                } else {
                    self.local.packets += 1;
                }
            }
        }
        if let Ok(mut stats) = self.stats.lock() {
            stats.frames += 1;
            stats.packets = self.local.packets;
            stats.send_errors = self.local.send_errors;
            stats.last_tick = Some(set.tick);
            stats.skipped_frames += std::mem::take(&mut self.skipped);
            if lateness > 1000 {
                stats.late_frames += 1;
            }
            if stats.lateness_us.len() >= LATENESS_SAMPLES {
                stats.lateness_us.drain(..LATENESS_SAMPLES / 2);
            }
            stats.lateness_us.push(lateness);
        }
    }

    /// ArtTimeCode of the timecode frames that start in this tick, each at its own show time
    /// (`set.deadline` is one tick after the tick's instant, so frame *f* starting `d` ns into
    /// the tick is due `tick − d` before the deadline), before the DMX frame of the tick. The
    /// label of the tick's own show time goes out at once when it was not sent yet (the start,
    /// a step of show time, a skipped tick).
    fn send_timecode_of_tick(&mut self, set: &FrameSet, timecode: RunningTimecode) {
        let current = timecode.frames_at_ns(rockontrol_engine::ns_of_tick(set.tick, set.rate));
        if self.last_timecode != Some(current) {
            self.send_timecode(current, timecode);
        }
        let tick_ns = rockontrol_engine::ns_of_tick(set.tick + 1, set.rate)
            - rockontrol_engine::ns_of_tick(set.tick, set.rate);
        for (offset, frame) in timecode_frames_in_tick(timecode, set.tick, set.rate) {
            let now = Instant::now();
            let due = set
                .deadline
                .checked_sub(Duration::from_nanos(tick_ns - offset))
                .unwrap_or(now);
            if due > now && due < now + MAX_AHEAD {
                std::thread::sleep(due - now);
            }
            self.send_timecode(frame, timecode);
        }
    }

    /// ArtTimeCode of timecode frame `frame` (frames since 00:00:00:00) to every Art-Net
    /// destination.
    fn send_timecode(&mut self, frame: u32, timecode: RunningTimecode) {
        self.last_timecode = Some(frame);
        let packet = ArtTimeCode {
            stream_id: 0,
            timecode: rockontrol_wire::timecode::Timecode::from_frames(frame, timecode.rate),
        };
        if packet.encode_into(&mut self.buf).is_err() {
            return;
        }
        let mut dests: BTreeSet<SocketAddr> = BTreeSet::new();
        for route in &self.plan.artnet {
            dests.extend(route.destinations.iter().copied());
        }
        for ips in self.subscribers.values() {
            dests.extend(
                ips.iter()
                    .map(|ip| SocketAddr::new(IpAddr::V4(*ip), ARTNET_PORT)),
            );
        }
        for dest in dests {
            send(&self.sockets.udp, &self.buf, dest, &mut self.local);
        }
    }

    fn send_discovery(&mut self) {
        let multicast = self
            .plan
            .sacn
            .iter()
            .any(|r| r.destinations.iter().any(|d| d.ip().is_multicast()));
        if !multicast {
            return; // discovery is a multicast mechanism; unicast-only setups skip it
        }
        let universes = self.plan.sacn_universes();
        let dest = SocketAddr::new(
            IpAddr::V4(sacn::multicast_addr(sacn::DISCOVERY_UNIVERSE)),
            sacn::PORT,
        );
        let cid = self.config.cid;
        let name = self.config.source_name.clone();
        for page in DiscoveryPacket::paginate(cid, &name, &universes) {
            if page.encode_into(&mut self.buf).is_ok() {
                send(&self.sockets.udp, &self.buf, dest, &mut self.local);
            }
        }
    }

    fn poll_artnet(&mut self, now: Instant) {
        let Some(socket) = &self.sockets.artnet else {
            return;
        };
        if now >= self.next_artpoll {
            self.next_artpoll = now + ARTPOLL_INTERVAL;
            if let Some(broadcast) = self.config.artnet_broadcast {
                let mut buf = Vec::new();
                ArtPoll::default().encode_into(&mut buf);
                let _ = socket.send_to(&buf, SocketAddr::new(IpAddr::V4(broadcast), ARTNET_PORT));
            }
        }
        let mut packet = [0u8; 1024];
        let mut changed = false;
        while let Ok((len, from)) = socket.recv_from(&mut packet) {
            let Ok(artnet::ArtPacket::PollReply(reply)) = artnet::decode(&packet[..len]) else {
                continue;
            };
            let ip = match from.ip() {
                IpAddr::V4(ip) => ip,
                IpAddr::V6(_) => continue,
            };
            for port in 0..usize::from(reply.num_ports.min(4)) {
                // Output ports (bit 7) subscribe to net:sub:sw_out.
                if reply.port_types[port] & 0x80 == 0 {
                    continue;
                }
                if let Some(address) = PortAddress::from_parts(
                    reply.net_switch,
                    reply.sub_switch,
                    reply.sw_out[port] & 0x0f,
                ) {
                    changed |= self
                        .subscribers
                        .entry(address.get())
                        .or_default()
                        .insert(ip);
                }
            }
        }
        if changed && let Ok(mut stats) = self.stats.lock() {
            stats.artnet_subscribers = self
                .subscribers
                .iter()
                .map(|(k, v)| (*k, v.iter().copied().collect()))
                .collect();
            info!("Art-Net subscribers: {:?}", stats.artnet_subscribers);
        }
    }

    /// Three stream-terminated packets per universe (E1.31 §6.7.1), to its own destinations.
    fn terminate(&mut self, routes: &[SacnRoute]) {
        let last = self.last_frame.clone();
        for _ in 0..3 {
            for route in routes {
                let slots = last
                    .as_ref()
                    .and_then(|f| {
                        f.data
                            .get(route.frame_index * 512..(route.frame_index + 1) * 512)
                    })
                    .unwrap_or(&[0u8; 512][..]);
                let sequence = next(&mut self.sacn_sequence, route.universe);
                let packet = DataPacket {
                    cid: self.config.cid,
                    source_name: self.config.source_name.as_str().into(),
                    priority: route.priority,
                    sync_address: 0,
                    sequence,
                    options: Options {
                        stream_terminated: true,
                        preview: route.preview,
                        ..Options::default()
                    },
                    universe: route.universe,
                    start_code: 0,
                    slots: slots.into(),
                };
                if packet.encode_into(&mut self.buf).is_ok() {
                    for dest in &route.destinations {
                        send(&self.sockets.udp, &self.buf, *dest, &mut self.local);
                    }
                }
            }
        }
        if let Ok(mut stats) = self.stats.lock() {
            stats.packets = self.local.packets;
        }
    }
}

/// Sync goes to the sync universe's multicast group when any of its universes is multicast,
/// and to every unicast destination of its universes.
fn sync_destinations(plan: &OutputPlan, sync_address: u16) -> BTreeSet<SocketAddr> {
    let mut dests = BTreeSet::new();
    for route in plan.sacn.iter().filter(|r| r.sync_address == sync_address) {
        for dest in &route.destinations {
            if dest.ip().is_multicast() {
                dests.insert(SocketAddr::new(
                    IpAddr::V4(sacn::multicast_addr(sync_address)),
                    sacn::PORT,
                ));
            } else {
                dests.insert(*dest);
            }
        }
    }
    dests
}

/// A packet that cannot be encoded (a route the show validator should have refused).
fn encode_failed(stats: &mut Stats, universe: u16, error: &dyn std::fmt::Display) {
    stats.send_errors += 1;
    if stats.send_errors.is_power_of_two() {
        warn!(
            "DMX output: universe {universe} cannot be encoded: {error} ({} errors so far)",
            stats.send_errors
        );
    }
}

fn next(sequences: &mut HashMap<u16, u8>, key: u16) -> u8 {
    let s = sequences.entry(key).or_insert(0);
    let value = *s;
    *s = s.wrapping_add(1);
    value
}

fn send(socket: &UdpSocket, buf: &[u8], dest: SocketAddr, stats: &mut Stats) {
    match socket.send_to(buf, dest) {
        Ok(_) => stats.packets += 1,
        Err(e) => {
            stats.send_errors += 1;
            // Per-tick path: keep it quiet; the counters and the status line tell the story.
            if stats.send_errors.is_power_of_two() {
                warn!(
                    "DMX output to {dest}: {e} ({} send errors so far)",
                    stats.send_errors
                );
            }
        }
    }
}

fn open_usbpro(port: &str) -> Option<Box<dyn serialport::SerialPort>> {
    // The USB Pro ignores the baud rate (it is USB), but serial ports need one.
    match serialport::new(port, 57_600)
        .timeout(Duration::from_millis(100))
        .open()
    {
        Ok(p) => {
            info!("USB Pro output on {port}");
            Some(p)
        }
        Err(e) => {
            warn!("cannot open USB Pro port {port}: {e}; its universe is not output");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rockontrol_wire::timecode::{FrameRate, Timecode};

    fn running(rate: FrameRate, start: u32) -> RunningTimecode {
        RunningTimecode::new(rate, Timecode::from_frames(start, rate))
    }

    #[test]
    fn each_timecode_frame_is_due_once_at_its_own_show_time() {
        let tc = running(FrameRate::Ebu25, 90_000); // 01:00:00:00
        // 44 Hz: tick 0 is (0, 22.73 ms]: no frame starts in it (frame 1 is at 40 ms).
        assert_eq!(timecode_frames_in_tick(tc, 0, 44).count(), 0);
        // Tick 1 is (22 727 273, 45 454 546] ns: frame 1 at 40 ms, 17 272 727 ns in.
        let t1 = rockontrol_engine::ns_of_tick(1, 44);
        assert_eq!(
            timecode_frames_in_tick(tc, 1, 44).collect::<Vec<_>>(),
            vec![(40_000_000 - t1, 90_001)]
        );
        // Over 10 s every frame once, in order, at 44 Hz and at a slow 10 Hz tick.
        for tick_rate in [44, 10] {
            let frames: Vec<u32> = (0..10 * u64::from(tick_rate))
                .flat_map(|k| timecode_frames_in_tick(tc, k, tick_rate).map(|(_, f)| f))
                .collect();
            assert_eq!(
                frames,
                (90_001..=90_250).collect::<Vec<_>>(),
                "frames 1..=250 once each at {tick_rate} Hz"
            );
        }
        // Drop-frame: the frame after 00:00:59;29 is 00:01:00;02.
        let df = running(FrameRate::Df2997, 0);
        let label = |f: u32| Timecode::from_frames(f, FrameRate::Df2997).to_string();
        let frames: Vec<String> = (0..44 * 61)
            .flat_map(|k| timecode_frames_in_tick(df, k, 44).map(|(_, f)| f))
            .map(label)
            .collect();
        let at = frames
            .iter()
            .position(|l| l.starts_with("00:00:59") && l.ends_with("29"))
            .expect("00:00:59;29 sent");
        assert!(
            frames[at + 1].starts_with("00:01:00") && frames[at + 1].ends_with("02"),
            "{} after {}",
            frames[at + 1],
            frames[at]
        );
    }
}
