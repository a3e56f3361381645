//! `rockontrol doctor`: every port the node opens and why, whether it can be bound and what the
//! host firewall says about it, and what is insecure in the config and its files. The rules
//! are in `rockontrol_net::doctor` (pure); this is the shell that binds, reads and runs.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context;
use clap::Args;
use rockontrol_net::config::NodeConfig;
use rockontrol_net::doctor::{self, Direction, Finding, FirewallVerdict, PortUse, Proto, Severity};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The node's config (JSON or RON), as given to `rockontrol master|receiver --config`.
    #[arg(long)]
    config: PathBuf,
    /// The show it runs: adds its sACN/Art-Net outputs and inputs to the port list.
    #[arg(long)]
    show: Option<PathBuf>,
    /// Where its keys and adoptions are kept (default: the config's `state_dir`, else
    /// `$ROCKONTROL_STATE_DIR`).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

/// A host firewall's ruleset, or why there is none to read.
enum Ruleset {
    Read { tool: &'static str, text: String },
    Unreadable { tool: &'static str, why: String },
}

fn read_rulesets() -> Vec<Ruleset> {
    let mut out = Vec::new();
    for (tool, args) in [("nft", &["list", "ruleset"][..]), ("iptables", &["-S"][..])] {
        match Command::new(tool).args(args).output() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => out.push(Ruleset::Unreadable {
                tool,
                why: e.to_string(),
            }),
            Ok(o) if o.status.success() => out.push(Ruleset::Read {
                tool,
                text: String::from_utf8_lossy(&o.stdout).into_owned(),
            }),
            Ok(o) => out.push(Ruleset::Unreadable {
                tool,
                why: String::from_utf8_lossy(&o.stderr).trim().to_string(),
            }),
        }
    }
    out
}

/// Whether `port` can be bound now (a running node holds its own ports: "in use").
fn bind_check(p: &PortUse) -> String {
    let result = match p.proto {
        Proto::Tcp => TcpListener::bind(p.addr).map(drop),
        Proto::Udp => UdpSocket::bind(p.addr).map(drop),
    };
    match result {
        Ok(()) => "free".into(),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => format!(
            "in use: the node itself if it runs, else another program (`ss -lnp 'sport = :{}'`)",
            p.addr.port()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => format!(
            "cannot bind: {} is not an address of this machine ({e})",
            p.addr.ip()
        ),
        Err(e) => format!("cannot bind: {e}"),
    }
}

/// The config's `insecure` flag, read from the file (works whether or not this build knows it).
fn insecure_flag(text: &str) -> bool {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        return v.get("insecure").and_then(serde_json::Value::as_bool) == Some(true);
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains("insecure:true")
}

#[cfg(unix)]
fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode())
}

#[cfg(not(unix))]
fn mode_of(_: &Path) -> Option<u32> {
    None
}

/// Secret files: the config when it holds a key, and the state directory's keys, adoptions
/// and certificates.
fn file_findings(config_path: &Path, config_has_key: bool, state_dir: &Path) -> Vec<Finding> {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    if config_has_key {
        files.push((config_path.to_path_buf(), "config with a key".into()));
    }
    if let Ok(entries) = std::fs::read_dir(state_dir) {
        let mut names: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        names.sort();
        for path in names {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if name.contains("key") || name.ends_with(".pem") || name.starts_with("adoptions") {
                files.push((path, "state: secret or trust".into()));
            }
        }
    }
    files
        .iter()
        .filter_map(|(path, what)| {
            let mode = mode_of(path)?;
            doctor::file_mode_finding(&path.display().to_string(), what, mode)
        })
        .collect()
}

pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read the config {}", args.config.display()))?;
    let config = match NodeConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let show = match &args.show {
        Some(p) => match crate::load_or_report(p)? {
            Some(s) => Some(s),
            None => return Ok(ExitCode::FAILURE),
        },
        None => None,
    };
    let origin = args.config.display().to_string();
    let (role, state_configured, has_key) = match &config {
        NodeConfig::Master(m) => (
            "master",
            m.state_dir.clone(),
            m.api_key.is_some() || !m.read_only_keys.is_empty(),
        ),
        NodeConfig::Receiver(r) => ("receiver", r.state_dir.clone(), r.api_key.is_some()),
    };
    let state_dir = args
        .state_dir
        .clone()
        .or(state_configured)
        .unwrap_or_else(rockontrol_dmx::cid::state_dir);
    println!(
        "rockontrol doctor: {role} {:?} ({origin}), state in {}",
        config.node_id(),
        state_dir.display()
    );

    let ports = doctor::ports(&config, show.as_ref());
    let rulesets = read_rulesets();
    let mut warnings = 0usize;
    println!("\nPorts this node opens ({}):", ports.len());
    for p in &ports {
        println!("  {p}");
        if p.direction == Direction::Send {
            continue;
        }
        println!("      bind: {}", bind_check(p));
        for r in &rulesets {
            if let Ruleset::Read { tool, text } = r {
                let verdict = match doctor::firewall_verdict(text, p.proto, p.addr.port()) {
                    FirewallVerdict::Blocked(rule) => {
                        warnings += 1;
                        format!("WARNING: BLOCKED inbound by `{rule}`")
                    }
                    FirewallVerdict::BlockedByPolicy => {
                        warnings += 1;
                        "WARNING: BLOCKED inbound (the input policy drops and no rule accepts it)"
                            .into()
                    }
                    FirewallVerdict::Allowed(rule) => format!("allowed by `{rule}`"),
                    FirewallVerdict::NotMentioned => "not filtered".into(),
                };
                println!("      {tool}: {verdict}");
            }
        }
    }
    println!("\nHost firewall:");
    if rulesets.is_empty() {
        println!("  neither nft nor iptables is installed: no host firewall to check");
    }
    for r in &rulesets {
        match r {
            Ruleset::Read { tool, text } => {
                println!("  {tool}: read ({} rule lines)", text.lines().count())
            }
            Ruleset::Unreadable { tool, why } => println!(
                "  {tool}: cannot read the ruleset ({why}); run `rockontrol doctor` as root to check it"
            ),
        }
    }

    let mut findings = doctor::config_findings(&config, insecure_flag(&text), &origin);
    findings.extend(file_findings(&args.config, has_key, &state_dir));
    let key_file = state_dir.join("api-key");
    if matches!(config, NodeConfig::Master(_))
        && let Ok(key) = std::fs::read_to_string(&key_file)
    {
        findings.push(Finding {
            severity: Severity::Note,
            message: format!(
                "the control key was generated and is kept in {} (key id {}); give it to receivers in $ROCKONTROL_API_KEY",
                key_file.display(),
                rockontrol_net::handshake::key_id(key.trim())
            ),
        });
    }
    println!("\nSecurity:");
    for f in &findings {
        if f.severity == Severity::Warning {
            warnings += 1;
        }
        println!("  {f}");
    }
    if ports.iter().any(|p| p.unauthenticated) {
        println!(
            "  note: sACN, Art-Net and mDNS have no authentication or encryption by design: anyone on \
             their network can send DMX or pose as a node. Keep them on a dedicated show VLAN with \
             no route to other networks, and the control port reachable from the control VLAN only."
        );
    }
    println!("\n{warnings} warning(s)");
    Ok(if warnings == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insecure_flag_is_read_from_json_and_ron() {
        assert!(insecure_flag(r#"{"role": "master", "insecure": true}"#));
        assert!(!insecure_flag(r#"{"role": "master", "insecure": false}"#));
        assert!(insecure_flag("(role: Master, insecure: true)"));
        assert!(!insecure_flag("(role: Master)"));
    }
}
