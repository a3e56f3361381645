//! `rockontrol monitor`: a live terminal view of incoming sACN and Art-Net universes and their
//! sources (like sACNView), on top of [`rockontrol_dmx::input`].
//!
//! Per universe: the winning priority, each live source with name, address, priority and packet
//! rate, and the merged values (a 32-wide hex or decimal grid, or only the non-zero slots).
//! `--json` prints one JSON object per refresh instead (for scripts and tests); `--once` waits
//! until every requested universe has data, prints it once and exits. Ctrl-C (or SIGTERM) and
//! `--duration` end it cleanly, after one last view. `--sacn-port 0 --artnet-port 0` listen on
//! free ports (named on standard error), so tests never compete with other software on the host.

use std::io::{IsTerminal, Write};
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bevy::log::tracing_subscriber;
use rockontrol_dmx::input::{
    InputConfig, InputHandle, InputProtocol, InputReceiver, InputStats, InputUniverse, PortAddress,
    UniverseKey,
};

use crate::timearg::parse_seconds;

/// Time `--once` waits for data when no `--duration` is given.
const ONCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Slots per row of the value grid.
const ROW: usize = 32;

/// Watch incoming DMX: `rockontrol monitor --sacn 1 --sacn 2 --artnet 0`.
#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    /// sACN universe to join by multicast (repeatable); unicast to port 5568 is received too.
    /// With neither --sacn nor --artnet: every universe sent unicast, and all of Art-Net.
    #[arg(long = "sacn", value_name = "U")]
    sacn: Vec<u16>,
    /// Art-Net Port-Address to listen for, 0..=32767 (Net·256 + Sub-Net·16 + Universe;
    /// repeatable). Advertised to controllers that poll (ArtPollReply).
    #[arg(long = "artnet", value_name = "U")]
    artnet: Vec<u16>,
    /// IPv4 address of the interface to listen on: multicast joins and unicast. Default:
    /// $ROCKONTROL_DMX_INTERFACE, else every interface (multicast on the default route's).
    #[arg(long)]
    bind: Option<Ipv4Addr>,
    /// UDP port for sACN (5568; 0: the kernel picks one, printed on standard error).
    #[arg(long, value_name = "PORT", default_value_t = rockontrol_dmx::routes::SACN_PORT)]
    sacn_port: u16,
    /// UDP port for Art-Net (6454; 0: the kernel picks one, printed on standard error).
    #[arg(long, value_name = "PORT", default_value_t = rockontrol_dmx::routes::ARTNET_PORT)]
    artnet_port: u16,
    /// Stop after this long, e.g. `30s` (with --once: give up waiting after this long; 10 s).
    #[arg(long, value_parser = parse_seconds)]
    duration: Option<f64>,
    /// Wait until every requested universe has data (or any universe, if none was requested),
    /// print one view and exit: 0 with data, 1 without.
    #[arg(long)]
    once: bool,
    /// Refresh interval, e.g. `250ms` (default 1 s).
    #[arg(long, value_parser = parse_seconds, default_value = "1")]
    interval: f64,
    /// Values in decimal instead of hex.
    #[arg(long)]
    decimal: bool,
    /// List only the non-zero slots (`slot:value`) instead of the grid.
    #[arg(long)]
    nonzero: bool,
    /// One JSON object per refresh on standard output (machine-readable).
    #[arg(long)]
    json: bool,
    /// Send our ArtPollReply unsolicited to this address (a directed broadcast such as
    /// 198.18.0.255, or a controller), so controllers that only unicast to subscribers send
    /// us the --artnet universes before their next ArtPoll.
    #[arg(long, value_name = "IP")]
    artnet_announce: Option<Ipv4Addr>,
}

/// Runs the monitor until Ctrl-C, `--duration`, or (with `--once`) the first complete view.
pub fn run(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let interface = args
        .bind
        .or_else(|| {
            std::env::var("ROCKONTROL_DMX_INTERFACE")
                .ok()
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut artnet_universes = Vec::new();
    for &u in &args.artnet {
        artnet_universes.push(
            PortAddress::new(u)
                .with_context(|| format!("Art-Net Port-Address {u} is outside 0..=32767"))?,
        );
    }
    let everything = args.sacn.is_empty() && args.artnet.is_empty();
    let config = InputConfig {
        interface,
        sacn: everything || !args.sacn.is_empty(),
        sacn_universes: args.sacn.clone(),
        sacn_port: args.sacn_port,
        artnet: everything || !args.artnet.is_empty(),
        artnet_port: args.artnet_port,
        artnet_universes,
        artnet_announce: args
            .artnet_announce
            .map(|ip| (ip, rockontrol_dmx::routes::ARTNET_PORT).into()),
        node_name: "RocKontrol monitor".into(),
        ..InputConfig::default()
    };
    let handle = InputReceiver::start(config.clone())
        .with_context(|| format!("cannot listen for DMX on {interface}"))?;
    let stats = handle.stats();
    // This line tells scripts and tests the sockets are open, and on which ports.
    let port = |addr: Option<std::net::SocketAddr>| {
        addr.map_or_else(|| "-".to_string(), |a| a.port().to_string())
    };
    eprintln!(
        "monitor: listening on {interface}: {}{}{} (sACN port {}, Art-Net port {}; {} sockets, \
         {} multicast groups, {} per socket)",
        if config.sacn {
            describe_sacn(&args.sacn)
        } else {
            String::new()
        },
        if config.sacn && config.artnet {
            "; "
        } else {
            ""
        },
        if config.artnet {
            describe_artnet(&args.artnet)
        } else {
            String::new()
        },
        port(handle.sacn_addr()),
        port(handle.artnet_addr()),
        stats.sockets,
        stats.memberships,
        stats.memberships_per_socket,
    );
    if everything {
        eprintln!(
            "monitor: no universe named: showing unicast sACN and all Art-Net; \
             add --sacn U to join a multicast universe"
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)) {
            tracing::debug!("no Ctrl-C handler ({e}); the default one ends the monitor");
        }
    }
    let started = Instant::now();
    let limit = match (args.duration, args.once) {
        (Some(secs), _) => Some(Duration::from_secs_f64(secs)),
        (None, true) => Some(ONCE_TIMEOUT),
        (None, false) => None,
    };
    let interval = Duration::from_secs_f64(args.interval.max(0.02));
    let wanted: Vec<UniverseKey> = args
        .sacn
        .iter()
        .map(|u| UniverseKey::sacn(*u))
        .chain(args.artnet.iter().map(|u| UniverseKey::artnet(*u)))
        .collect();
    let terminal = std::io::stdout().is_terminal() && !args.json;
    let mut out = std::io::stdout().lock();
    let mut next = started;
    loop {
        let now = Instant::now();
        let timed_out = limit.is_some_and(|l| now.duration_since(started) >= l);
        let stopping = stop.load(Ordering::SeqCst);
        if args.once {
            let snapshot = handle.snapshot();
            let complete = if wanted.is_empty() {
                snapshot.iter().any(|u| u.live)
            } else {
                wanted
                    .iter()
                    .all(|k| snapshot.iter().any(|u| u.key == *k && u.live))
            };
            if complete || timed_out || stopping {
                print_view(&mut out, &args, &handle, &snapshot, started, false)?;
                if complete {
                    return Ok(ExitCode::SUCCESS);
                }
                let missing: Vec<String> = wanted
                    .iter()
                    .filter(|k| !snapshot.iter().any(|u| u.key == **k && u.live))
                    .map(ToString::to_string)
                    .collect();
                eprintln!(
                    "monitor: no data {} within {:.1} s",
                    if missing.is_empty() {
                        "at all".to_string()
                    } else {
                        format!("for {}", missing.join(", "))
                    },
                    now.duration_since(started).as_secs_f64()
                );
                return Ok(ExitCode::FAILURE);
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        // The last view is always printed on the way out (Ctrl-C or --duration), so a script
        // reading the JSON lines gets the state at the moment it stopped the monitor.
        if now >= next || timed_out || stopping {
            let snapshot = handle.snapshot();
            print_view(&mut out, &args, &handle, &snapshot, started, terminal)?;
            next = now + interval;
        }
        if timed_out || stopping {
            if stopping {
                eprintln!(
                    "monitor: stopped after {:.1} s",
                    now.duration_since(started).as_secs_f64()
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(
            next.saturating_duration_since(Instant::now())
                .min(interval)
                .min(Duration::from_millis(50)),
        );
    }
}

/// Warnings of the receive path (bad packets, socket errors) on standard error.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn describe_sacn(universes: &[u16]) -> String {
    if universes.is_empty() {
        "sACN unicast (any universe)".into()
    } else {
        format!("sACN {}", list(universes))
    }
}

fn describe_artnet(universes: &[u16]) -> String {
    if universes.is_empty() {
        "Art-Net (any Port-Address)".into()
    } else {
        format!("Art-Net {}", list(universes))
    }
}

fn list(universes: &[u16]) -> String {
    universes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn print_view(
    out: &mut impl Write,
    args: &MonitorArgs,
    handle: &InputHandle,
    snapshot: &[InputUniverse],
    started: Instant,
    clear: bool,
) -> anyhow::Result<()> {
    let stats = handle.stats();
    let text = if args.json {
        let mut line = json_view(snapshot, &stats, started).to_string();
        line.push('\n');
        line
    } else {
        text_view(snapshot, &stats, args.decimal, args.nonzero)
    };
    if clear {
        // Home and clear: a live view, not a scrolling log.
        write!(out, "\x1b[H\x1b[2J")?;
    }
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn protocol_name(protocol: InputProtocol) -> &'static str {
    match protocol {
        InputProtocol::Sacn => "sacn",
        InputProtocol::ArtNet => "artnet",
    }
}

/// The view as JSON: `{"t": secs, "universes": [...], "stats": {...}}`.
fn json_view(
    snapshot: &[InputUniverse],
    stats: &InputStats,
    started: Instant,
) -> serde_json::Value {
    let now = Instant::now();
    let universes: Vec<serde_json::Value> = snapshot
        .iter()
        .map(|u| {
            let sources: Vec<serde_json::Value> = u
                .sources
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "id": s.id.to_string(),
                        "ip": s.addr.map(|a| a.ip().to_string()),
                        "addr": s.addr.map(|a| a.to_string()),
                        "name": s.name,
                        "priority": s.priority,
                        "slots": s.slot_count,
                        "rate": s.packet_rate,
                        "age_ms": now.saturating_duration_since(s.last_seen).as_millis() as u64,
                        "winning": s.winning,
                    })
                })
                .collect();
            serde_json::json!({
                "protocol": protocol_name(u.key.protocol),
                "universe": u.key.universe,
                "priority": u.priority,
                "live": u.live,
                "changes": u.changes,
                "slots": u.slots,
                "sources": sources,
            })
        })
        .collect();
    let p = |s: &rockontrol_dmx::input::ProtocolStats| {
        serde_json::json!({
            "datagrams": s.datagrams,
            "accepted": s.accepted,
            "unlisted": s.unlisted,
            "truncated": s.truncated,
            "oversized": s.oversized,
            "wrong_version": s.wrong_version,
            "malformed": s.malformed,
            "ignored": s.ignored,
        })
    };
    serde_json::json!({
        "t": now.duration_since(started).as_secs_f64(),
        "universes": universes,
        "stats": {
            "sockets": stats.sockets,
            "memberships": stats.memberships,
            "memberships_per_socket": stats.memberships_per_socket,
            "sacn": p(&stats.sacn),
            "artnet": p(&stats.artnet),
            "sacn_out_of_sequence": stats.sacn_out_of_sequence,
            "sacn_preview": stats.sacn_preview,
            "sacn_terminated": stats.sacn_terminated,
            "sacn_sync": stats.sacn_sync,
            "sacn_discovery": stats.sacn_discovery,
            "sacn_alternate_start_code": stats.sacn_alternate_start_code,
            "too_many_sources": stats.too_many_sources,
            "artnet_polls": stats.artnet_polls,
            "artnet_poll_replies_sent": stats.artnet_poll_replies_sent,
            "frames_dropped": stats.frames_dropped,
            "socket_errors": stats.socket_errors,
        },
    })
}

fn text_view(
    snapshot: &[InputUniverse],
    stats: &InputStats,
    decimal: bool,
    nonzero: bool,
) -> String {
    use std::fmt::Write as _;
    let now = Instant::now();
    let mut s = String::new();
    if snapshot.is_empty() {
        let _ = writeln!(s, "(no DMX received yet)");
    }
    for u in snapshot {
        let _ = writeln!(
            s,
            "{}{}  {} slots  {}",
            u.key,
            u.priority
                .map(|p| format!("  priority {p}"))
                .unwrap_or_default(),
            u.slots.len(),
            if u.live {
                format!("{} sources", u.sources.len())
            } else {
                "NO SOURCE (holding last look)".into()
            },
        );
        for src in &u.sources {
            let _ = writeln!(
                s,
                "  {} {:<24} {:<21} {:>4} {:>7} /s  {:>5} ms  {}",
                if src.winning { '*' } else { ' ' },
                truncate(if src.name.is_empty() { "-" } else { &src.name }, 24),
                src.addr
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into()),
                src.priority
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into()),
                src.packet_rate
                    .map(|r| format!("{r:.1}"))
                    .unwrap_or_else(|| "…".into()),
                now.saturating_duration_since(src.last_seen).as_millis(),
                src.id,
            );
        }
        if nonzero {
            let values: Vec<String> = u
                .slots
                .iter()
                .enumerate()
                .filter(|(_, v)| **v != 0)
                .map(|(i, v)| format!("{}:{v}", i + 1))
                .collect();
            let _ = writeln!(
                s,
                "  {}",
                if values.is_empty() {
                    "(all zero)".to_string()
                } else {
                    values.join(" ")
                }
            );
        } else {
            for (row, chunk) in u.slots.chunks(ROW).enumerate() {
                let _ = write!(s, "  {:>3} ", row * ROW + 1);
                for v in chunk {
                    if decimal {
                        let _ = write!(s, " {v:>3}");
                    } else {
                        let _ = write!(s, " {v:02X}");
                    }
                }
                s.push('\n');
            }
        }
        s.push('\n');
    }
    let bad = |p: &rockontrol_dmx::input::ProtocolStats| {
        p.truncated + p.oversized + p.wrong_version + p.malformed
    };
    let _ = writeln!(
        s,
        "sACN {} packets ({} bad, {} out of sequence)  Art-Net {} packets ({} bad, {} polls answered)  \
         {} sockets, {} multicast groups",
        stats.sacn.datagrams,
        bad(&stats.sacn),
        stats.sacn_out_of_sequence,
        stats.artnet.datagrams,
        bad(&stats.artnet),
        stats.artnet_polls,
        stats.sockets,
        stats.memberships,
    );
    s
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_shows_32_slots_per_row_and_nonzero_lists_slot_numbers_from_1() {
        let universe = InputUniverse {
            key: UniverseKey::sacn(1),
            slots: (0..40).map(|i| if i == 33 { 255 } else { 0 }).collect(),
            priority: Some(100),
            live: true,
            sources: Vec::new(),
            changes: 1,
            last_change: Instant::now(),
        };
        let stats = InputStats::default();
        let grid = text_view(std::slice::from_ref(&universe), &stats, false, false);
        assert!(
            grid.contains("\n   33  00 FF 00"),
            "row 2 starts at slot 33: {grid}"
        );
        let list = text_view(std::slice::from_ref(&universe), &stats, false, true);
        assert!(
            list.contains("  34:255\n"),
            "slot numbers count from 1: {list}"
        );
    }
}
