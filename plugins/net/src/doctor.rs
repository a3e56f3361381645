//! `rockontrol doctor`'s pure part (issue 15): which ports a node opens and why, from its
//! config (and show), what a firewall ruleset says about them, and what in a config or its
//! files is insecure. No I/O here: the command (`src/doctor.rs`) binds, reads files and runs
//! `nft`/`iptables`, and feeds what it found in.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rockontrol_show::{InputSource, Output, SacnDestination, Show};

use crate::config::NodeConfig;

/// mDNS (discovery and advertisement).
pub const MDNS_PORT: u16 = 5353;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// Whether the node listens on the port (binds it) or only sends to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Bound here: peers reach it (a firewall must let them in).
    Listen,
    /// Sent to from an ephemeral port (a firewall must let it out).
    Send,
}

/// One port a node opens.
#[derive(Debug, Clone, PartialEq)]
pub struct PortUse {
    pub proto: Proto,
    pub direction: Direction,
    /// Bound address (Listen) or destination (Send).
    pub addr: SocketAddr,
    /// Why, for people.
    pub why: String,
    /// No security of its own (sACN, Art-Net, mDNS): keep it on the show VLAN.
    pub unauthenticated: bool,
}

impl fmt::Display for PortUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match self.direction {
            Direction::Listen => "listen",
            Direction::Send => "send to",
        };
        write!(f, "{} {dir} {}  {}", self.proto, self.addr, self.why)?;
        if self.unauthenticated {
            f.write_str(" [no authentication by design: show VLAN only]")?;
        }
        Ok(())
    }
}

fn listen(proto: Proto, ip: IpAddr, port: u16, why: impl Into<String>) -> PortUse {
    PortUse {
        proto,
        direction: Direction::Listen,
        addr: SocketAddr::new(ip, port),
        why: why.into(),
        unauthenticated: false,
    }
}

const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Every port `config` (running `show`, when given) opens, in a stable order.
pub fn ports(config: &NodeConfig, show: Option<&Show>) -> Vec<PortUse> {
    let mut out = Vec::new();
    let mut dmx_unicast_override = None;
    match config {
        NodeConfig::Master(m) => {
            let ip = m.bind.unwrap_or(ANY);
            out.push(listen(
                Proto::Tcp,
                ip,
                m.listen_port,
                "REST API, WebSocket control links, show download and media library (listen_port)",
            ));
            out.push(listen(
                Proto::Udp,
                ip,
                m.listen_port,
                "clock sync responder, signed pings (listen_port)",
            ));
            if m.broadcast_enabled {
                out.push(PortUse {
                    unauthenticated: true,
                    ..listen(
                        Proto::Udp,
                        ANY,
                        MDNS_PORT,
                        "mDNS: advertises the master, watches for nodes (broadcast_enabled)",
                    )
                });
            }
        }
        NodeConfig::Receiver(r) => {
            if let Some(ip) = r.master_ip {
                out.push(PortUse {
                    proto: Proto::Tcp,
                    direction: Direction::Send,
                    addr: SocketAddr::new(ip, r.master_port),
                    why: "control link to the master: WebSocket, show and media download (master_ip, master_port)".into(),
                    unauthenticated: false,
                });
                out.push(PortUse {
                    proto: Proto::Udp,
                    direction: Direction::Send,
                    addr: SocketAddr::new(ip, r.master_port),
                    why: "clock sync pings to the master (master_port)".into(),
                    unauthenticated: false,
                });
            }
            if r.broadcast_enabled || r.auto_discover {
                out.push(PortUse {
                    unauthenticated: true,
                    ..listen(
                        Proto::Udp,
                        ANY,
                        MDNS_PORT,
                        "mDNS: finds the master, advertises this node (auto_discover, broadcast_enabled)",
                    )
                });
            }
            if let Some(addr) = r.media_serve {
                out.push(listen(
                    Proto::Tcp,
                    addr.ip(),
                    addr.port(),
                    "serves ready media clips to peer nodes (media_serve)",
                ));
            }
            dmx_unicast_override = r.dmx_destination.clone();
        }
    }
    let Some(show) = show else {
        return out;
    };
    let mut artnet_bound = false;
    for u in &show.universes {
        for o in &u.outputs {
            match o {
                Output::Sacn(s) => {
                    let wire = s.universe.unwrap_or(u.id);
                    let dests: Vec<String> = match (&dmx_unicast_override, &s.destination) {
                        (Some(d), _) => vec![d.clone()],
                        (None, SacnDestination::Unicast(list)) => list.clone(),
                        (None, SacnDestination::Multicast) => {
                            let [hi, lo] = wire.to_be_bytes();
                            vec![format!("239.255.{hi}.{lo}")]
                        }
                    };
                    for d in dests {
                        if let Some(addr) = socket_addr(&d, rockontrol_wire::sacn::PORT) {
                            out.push(PortUse {
                                proto: Proto::Udp,
                                direction: Direction::Send,
                                addr,
                                why: format!(
                                    "sACN output of universe {} (wire universe {wire})",
                                    u.id
                                ),
                                unauthenticated: true,
                            });
                        }
                    }
                }
                Output::ArtNet(_) if !artnet_bound => {
                    artnet_bound = true;
                    out.push(PortUse {
                        unauthenticated: true,
                        ..listen(
                            Proto::Udp,
                            ANY,
                            rockontrol_wire::artnet::PORT,
                            "Art-Net output (sends from it; ArtPoll replies come back to it)",
                        )
                    });
                }
                _ => {}
            }
        }
        if let Some(input) = &u.input {
            let (port, what) = match input.source {
                InputSource::Sacn(n) => (rockontrol_wire::sacn::PORT, format!("sACN universe {n}")),
                InputSource::ArtNet(n) => (
                    rockontrol_wire::artnet::PORT,
                    format!("Art-Net port-address {n}"),
                ),
            };
            out.push(PortUse {
                unauthenticated: true,
                ..listen(
                    Proto::Udp,
                    ANY,
                    port,
                    format!("DMX input of universe {} from {what}", u.id),
                )
            });
        }
    }
    out
}

/// `host:port` or `host` (with `default_port`), numeric hosts only (names are resolved at
/// run time; the doctor leaves them out).
fn socket_addr(text: &str, default_port: u16) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Note,
    Warning,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Note => "note",
            Severity::Warning => "WARNING",
        };
        write!(f, "{tag}: {}", self.message)
    }
}

fn warn(message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Warning,
        message: message.into(),
    }
}

fn note(message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Note,
        message: message.into(),
    }
}

/// Known default or example keys (the seed files', the docs').
pub const DEFAULT_KEYS: &[&str] = &["your-secure-key-here", "changeme", "secret", "password"];

/// What is insecure in `config`; `insecure` is the config's `insecure` flag (plaintext
/// control traffic), read from the file itself so that the doctor works on any build.
pub fn config_findings(config: &NodeConfig, insecure: bool, origin: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    if insecure {
        out.push(warn(format!(
            "{origin}: `insecure: true`: control traffic (REST, WebSocket, keys) goes in plaintext; anyone on the network can read the key. Only on a closed lab network"
        )));
    }
    let key = |key: &str, what: &str, out: &mut Vec<Finding>| {
        if DEFAULT_KEYS
            .iter()
            .any(|d| d.eq_ignore_ascii_case(key.trim()))
        {
            out.push(warn(format!(
                "{origin}: {what} is a well-known default ({key:?}): replace it with `rockontrol`'s generated key or a random one of 32+ characters"
            )));
        } else if key.trim().len() < 16 {
            out.push(warn(format!(
                "{origin}: {what} is short ({} characters): use 32+ random characters",
                key.trim().len()
            )));
        } else {
            out.push(note(format!(
                "{origin}: {what} is written in the config file: keep the file readable by the node's user only, or pass it in $ROCKONTROL_API_KEY"
            )));
        }
    };
    match config {
        NodeConfig::Master(m) => {
            if let Some(k) = &m.api_key {
                key(k, "api_key", &mut out);
            }
            for (i, k) in m.read_only_keys.iter().enumerate() {
                key(k, &format!("read_only_keys[{i}]"), &mut out);
            }
            if m.bind.is_none_or(|ip| ip.is_unspecified()) {
                out.push(note(format!(
                    "{origin}: the control port listens on every interface (no `bind`): set `bind` to the show network's address to keep it off other networks"
                )));
            }
        }
        NodeConfig::Receiver(r) => {
            if let Some(k) = &r.api_key {
                key(k, "api_key", &mut out);
            }
            if r.api_key.is_none() {
                out.push(note(format!(
                    "{origin}: no api_key: the node waits to be adopted by an operator (or pass $ROCKONTROL_API_KEY)"
                )));
            }
            if r.master_ip.is_none() && r.auto_discover && r.master_id.is_none() {
                out.push(warn(format!(
                    "{origin}: auto_discover without master_id: the node links to any master that answers over mDNS; set master_id"
                )));
            }
        }
    }
    out
}

/// A secret file's Unix mode bits: a warning when others (or the group) may read it.
pub fn file_mode_finding(path: &str, what: &str, mode: u32) -> Option<Finding> {
    if mode & 0o004 != 0 {
        Some(warn(format!(
            "{path} ({what}) is world-readable (mode {:o}): chmod 600 {path}",
            mode & 0o777
        )))
    } else if mode & 0o040 != 0 {
        Some(note(format!(
            "{path} ({what}) is readable by its group (mode {:o}): chmod 600 {path} unless the group is the node's alone",
            mode & 0o777
        )))
    } else {
        None
    }
}

/// What a firewall ruleset says about inbound traffic to a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallVerdict {
    /// A rule names the port with a drop or reject.
    Blocked(String),
    /// A rule names the port with accept.
    Allowed(String),
    /// The input policy drops and no rule accepts the port.
    BlockedByPolicy,
    /// Nothing about it (the policy accepts, or there are no rules).
    NotMentioned,
}

/// Reads `nft list ruleset` or `iptables -S` text for inbound `proto` traffic to `port`.
/// A line is about the port when it names it as `dport N` or `--dport N` (also in an nft
/// set, `dport { 80, N }`) with the protocol, or with none; the first such line decides.
pub fn firewall_verdict(ruleset: &str, proto: Proto, port: u16) -> FirewallVerdict {
    let proto_name = proto.to_string();
    let mut policy_drop = false;
    // nft: the rules of a chain hooked to input; iptables: `-A INPUT` lines.
    let mut in_nft_input = false;
    for line in ruleset.lines().map(str::trim) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("chain ") {
            in_nft_input = false;
        }
        if lower.contains("hook input") {
            in_nft_input = true;
            policy_drop |= lower.contains("policy drop");
            continue;
        }
        if lower.starts_with("-p input drop") {
            policy_drop = true;
        }
        if !(in_nft_input || lower.starts_with("-a input")) {
            continue;
        }
        let Some(after) = lower.split("dport").nth(1) else {
            continue;
        };
        let other_proto = ["tcp", "udp"]
            .iter()
            .any(|p| *p != proto_name && lower.contains(p) && !lower.contains(&proto_name));
        if !names_port(after, port) || other_proto {
            continue;
        }
        if lower.contains("drop") || lower.contains("reject") {
            return FirewallVerdict::Blocked(line.to_string());
        }
        if lower.contains("accept") {
            return FirewallVerdict::Allowed(line.to_string());
        }
    }
    if policy_drop {
        FirewallVerdict::BlockedByPolicy
    } else {
        FirewallVerdict::NotMentioned
    }
}

/// Whether the text after `dport` names `port`: `N`, `A:B`/`A-B`, or an nft set `{ A, B }`.
fn names_port(after: &str, port: u16) -> bool {
    let after = after.trim_start();
    let list = match after.strip_prefix('{') {
        Some(set) => set.split('}').next().unwrap_or(""),
        None => after.split_whitespace().next().unwrap_or(""),
    };
    list.split(',')
        .map(str::trim)
        .any(|item| match item.split_once([':', '-']) {
            Some((a, b)) => matches!(
                (a.trim().parse::<u16>(), b.trim().parse::<u16>()),
                (Ok(a), Ok(b)) if (a..=b).contains(&port)
            ),
            None => item.parse::<u16>() == Ok(port),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Syntax;

    fn master(extra: &str) -> NodeConfig {
        NodeConfig::parse(
            &format!(r#"{{"role": "master", "node_id": "master-01", "listen_port": 9000{extra}}}"#),
            Syntax::Json,
            "m.json",
        )
        .expect("config")
    }

    #[test]
    fn a_master_lists_control_clock_mdns_and_the_shows_dmx_ports() {
        let show = rockontrol_show::io::parse_show(
            r#"(name: "p", universes: [
                (id: 1, outputs: [Sacn()]),
                (id: 2, outputs: [Sacn(destination: Unicast(["10.0.0.9"])), ArtNet(port_address: 2)]),
                (id: 3, input: (source: Sacn(7))),
            ])"#,
            "p.ron",
        )
        .expect("show");
        let ports = ports(&master(""), Some(&show));
        let lines: Vec<String> = ports.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines
                .iter()
                .map(|l| l.split("  ").next().unwrap_or(""))
                .collect::<Vec<_>>(),
            vec![
                "tcp listen 0.0.0.0:9000",
                "udp listen 0.0.0.0:9000",
                "udp listen 0.0.0.0:5353",
                "udp send to 239.255.0.1:5568",
                "udp send to 10.0.0.9:5568",
                "udp listen 0.0.0.0:6454",
                "udp listen 0.0.0.0:5568",
            ],
            "{lines:#?}"
        );
        assert!(lines[0].contains("REST API"));
        assert!(lines[3].contains("no authentication by design"));
        assert!(!lines[0].contains("no authentication"));
    }

    #[test]
    fn a_receiver_lists_its_link_and_its_media_serving() {
        let cfg = NodeConfig::parse(
            r#"{"role": "receiver", "node_id": "node-01", "master_ip": "10.0.0.1", "master_port": 9000,
                "auto_discover": false, "broadcast_enabled": false, "media_serve": "10.0.0.5:9100"}"#,
            Syntax::Json,
            "r.json",
        )
        .expect("config");
        let lines: Vec<String> = ports(&cfg, None).iter().map(ToString::to_string).collect();
        assert!(
            lines[0].starts_with("tcp send to 10.0.0.1:9000"),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("udp send to 10.0.0.1:9000"),
            "{lines:?}"
        );
        assert!(
            lines[2].starts_with("tcp listen 10.0.0.5:9100"),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn insecure_configs_and_default_keys_are_warned_about() {
        let f = config_findings(
            &master(r#", "api_key": "your-secure-key-here""#),
            true,
            "m.json",
        );
        let warnings: Vec<&str> = f
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .map(|f| f.message.as_str())
            .collect();
        assert_eq!(warnings.len(), 2, "{f:?}");
        assert!(warnings[0].contains("`insecure: true`"));
        assert!(warnings[1].contains("well-known default"));
        let f = config_findings(
            &master(r#", "api_key": "k7G2pQ9xLm4TzR8vWc1NbY6hJ3sD5fAe", "bind": "10.0.0.1""#),
            false,
            "m.json",
        );
        assert!(f.iter().all(|f| f.severity == Severity::Note), "{f:?}");
    }

    #[test]
    fn secret_files_readable_by_others_are_warned_about() {
        assert!(file_mode_finding("/s/api-key", "control key", 0o600).is_none());
        let w = file_mode_finding("/s/api-key", "control key", 0o644).expect("warning");
        assert_eq!(w.severity, Severity::Warning);
        assert!(w.message.contains("chmod 600 /s/api-key"), "{w}");
        assert_eq!(
            file_mode_finding("/s/k", "k", 0o640).map(|f| f.severity),
            Some(Severity::Note)
        );
    }

    #[test]
    fn firewall_rules_are_read_for_the_port() {
        let nft = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport { 22, 9000 } accept\n\t\tudp dport 5568 drop\n\t}\n}";
        assert!(matches!(
            firewall_verdict(nft, Proto::Tcp, 9000),
            FirewallVerdict::Allowed(_)
        ));
        assert!(matches!(
            firewall_verdict(nft, Proto::Udp, 5568),
            FirewallVerdict::Blocked(_)
        ));
        assert_eq!(
            firewall_verdict(nft, Proto::Udp, 9000),
            FirewallVerdict::BlockedByPolicy
        );
        let ipt = "-P INPUT ACCEPT\n-A OUTPUT -p udp --dport 9000 -j DROP\n-A INPUT -p tcp -m tcp --dport 9000 -j DROP\n-A INPUT -p udp --dport 6000:6500 -j ACCEPT\n";
        assert!(matches!(
            firewall_verdict(ipt, Proto::Tcp, 9000),
            FirewallVerdict::Blocked(_)
        ));
        assert_eq!(
            firewall_verdict(ipt, Proto::Udp, 9000),
            FirewallVerdict::NotMentioned
        );
        assert_eq!(
            firewall_verdict(ipt, Proto::Tcp, 900),
            FirewallVerdict::NotMentioned
        );
        assert!(matches!(
            firewall_verdict(ipt, Proto::Udp, 6454),
            FirewallVerdict::Allowed(_)
        ));
    }
}
