//! A userspace UDP impairment proxy: delay, jitter and asymmetry between one client and one
//! upstream (this kernel has no `tc netem`).
//!
//! The client sends to [`UdpImpairment::addr`]; each datagram goes upstream after
//! `out.base + out jitter`, and each answer comes back after `back.base + back jitter`.
//! Jitter is exponential with the given mean (queueing-like: mostly small, a long tail), from
//! a fixed seed, so runs are repeatable in what they ask for (the OS adds its own).
//! [`UdpImpairment::set_blocked`] drops everything (a firewalled port) until unblocked.
//!
//! Shared by the test crates by path (`#[path = ".../tests/support/udp_proxy.rs"]`).

#![allow(dead_code, reason = "each test binary uses part of this")]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One direction's impairment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PathImpairment {
    /// Fixed one-way delay.
    pub base: Duration,
    /// Mean of the exponential extra delay.
    pub jitter: Duration,
}

/// Both directions: `out` is client → upstream, `back` upstream → client.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairment {
    pub out: PathImpairment,
    pub back: PathImpairment,
}

impl Impairment {
    /// The same on both paths.
    pub fn symmetric(base: Duration, jitter: Duration) -> Impairment {
        let path = PathImpairment { base, jitter };
        Impairment {
            out: path,
            back: path,
        }
    }

    /// The outbound path `extra` slower than the way back.
    pub fn asymmetric(base: Duration, jitter: Duration, extra: Duration) -> Impairment {
        let mut i = Impairment::symmetric(base, jitter);
        i.out.base += extra;
        i
    }
}

struct Datagram {
    due: Instant,
    seq: u64,
    bytes: Vec<u8>,
    to: SocketAddr,
    via_upstream_socket: bool,
}

impl PartialEq for Datagram {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Datagram {}
impl PartialOrd for Datagram {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Datagram {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// The running proxy; stops when dropped.
pub struct UdpImpairment {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    blocked: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

struct Rng(u64);

impl Rng {
    fn exp(&mut self, mean: Duration) -> Duration {
        if mean.is_zero() {
            return Duration::ZERO;
        }
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let u = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        mean.mul_f64(-(1.0 - u).ln())
    }
}

impl UdpImpairment {
    /// Forwards between a client and `upstream` with `impairment`, on 127.0.0.1.
    pub fn start(upstream: SocketAddr, impairment: Impairment, seed: u64) -> UdpImpairment {
        UdpImpairment::start_on(Ipv4Addr::LOCALHOST.into(), upstream, impairment, seed)
    }

    /// [`UdpImpairment::start`] with both of the proxy's sockets on `ip`.
    pub fn start_on(
        ip: IpAddr,
        upstream: SocketAddr,
        impairment: Impairment,
        seed: u64,
    ) -> UdpImpairment {
        let front = UdpSocket::bind((ip, 0)).expect("proxy front socket");
        let back = UdpSocket::bind((ip, 0)).expect("proxy upstream socket");
        let addr = front.local_addr().expect("proxy addr");
        let poll = Some(Duration::from_millis(50));
        front.set_read_timeout(poll).expect("timeout");
        back.set_read_timeout(poll).expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let blocked = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let (tx, rx) = channel::<Datagram>();
        let rng = Arc::new(Mutex::new(Rng(seed.max(1))));
        let mut threads = Vec::new();
        // Client → upstream.
        {
            let (front, stop, blocked, client, tx, rng) = (
                front.try_clone().expect("clone"),
                Arc::clone(&stop),
                Arc::clone(&blocked),
                Arc::clone(&client),
                tx.clone(),
                Arc::clone(&rng),
            );
            threads.push(spawn("udp-proxy-out", move || {
                pump(&front, &stop, &tx, |from, seq| {
                    if blocked.load(Ordering::Relaxed) {
                        return None;
                    }
                    *client.lock().expect("lock") = Some(from);
                    let extra = rng.lock().expect("lock").exp(impairment.out.jitter);
                    Some((upstream, impairment.out.base + extra, true, seq))
                })
            }));
        }
        // Upstream → client.
        {
            let (back, stop, blocked, client, tx, rng) = (
                back.try_clone().expect("clone"),
                Arc::clone(&stop),
                Arc::clone(&blocked),
                Arc::clone(&client),
                tx,
                Arc::clone(&rng),
            );
            threads.push(spawn("udp-proxy-back", move || {
                pump(&back, &stop, &tx, |_, seq| {
                    if blocked.load(Ordering::Relaxed) {
                        return None;
                    }
                    let to = (*client.lock().expect("lock"))?;
                    let extra = rng.lock().expect("lock").exp(impairment.back.jitter);
                    Some((to, impairment.back.base + extra, false, seq))
                })
            }));
        }
        {
            let stop = Arc::clone(&stop);
            threads.push(spawn("udp-proxy-send", move || {
                release(&rx, &front, &back, &stop)
            }));
        }
        UdpImpairment {
            addr,
            stop,
            blocked,
            threads,
        }
    }

    /// Where the client sends.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every datagram both ways while `blocked` (a firewalled port).
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::Relaxed);
    }
}

impl Drop for UdpImpairment {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("proxy thread")
}

/// Receives on `socket` and schedules each datagram where `route` says.
fn pump(
    socket: &UdpSocket,
    stop: &AtomicBool,
    tx: &Sender<Datagram>,
    mut route: impl FnMut(SocketAddr, u64) -> Option<(SocketAddr, Duration, bool, u64)>,
) {
    let mut buf = [0u8; 2048];
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let arrived = Instant::now();
        seq += 1;
        if let Some((to, delay, via_upstream_socket, seq)) = route(from, seq) {
            let _ = tx.send(Datagram {
                due: arrived + delay,
                seq,
                bytes: buf[..len].to_vec(),
                to,
                via_upstream_socket,
            });
        }
    }
}

/// Sends each datagram when it is due (the earliest first).
fn release(rx: &Receiver<Datagram>, front: &UdpSocket, back: &UdpSocket, stop: &AtomicBool) {
    let mut queue: BinaryHeap<Reverse<Datagram>> = BinaryHeap::new();
    while !stop.load(Ordering::Relaxed) {
        let wait = queue
            .peek()
            .map(|Reverse(d)| d.due.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(50));
        if !wait.is_zero() {
            match rx.recv_timeout(wait.min(Duration::from_millis(50))) {
                Ok(d) => {
                    queue.push(Reverse(d));
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        while queue
            .peek()
            .is_some_and(|Reverse(d)| d.due <= Instant::now())
        {
            let Some(Reverse(d)) = queue.pop() else { break };
            // Upstream-bound traffic leaves from the upstream socket, so answers come back to it.
            let socket = if d.via_upstream_socket { back } else { front };
            let _ = socket.send_to(&d.bytes, d.to);
        }
    }
}
