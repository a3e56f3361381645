//! mDNS: every node advertises `_rockontrol._tcp` with TXT records (node id, role, version,
//! universes, capabilities); receivers with `auto_discover` browse for a master (the one
//! named by their `master_id`, when set).
//!
//! `$ROCKONTROL_MDNS_INTERFACE=lo` (or any interface name) keeps mDNS on that interface only:
//! tests and the demo use it so no multicast leaves the machine.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};

use crate::config::{Capability, Role};

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_rockontrol._tcp.local.";

/// mDNS failures (the node runs on without discovery).
#[derive(Debug, thiserror::Error)]
#[error("mDNS: {0}")]
pub struct DiscoveryError(String);

/// The interface named by `$ROCKONTROL_MDNS_INTERFACE`, if any.
pub fn interface_from_env() -> Option<String> {
    std::env::var("ROCKONTROL_MDNS_INTERFACE")
        .ok()
        .filter(|name| !name.is_empty())
}

/// A daemon on `interface` only (`lo`: IPv4 loopback), or on every interface.
fn daemon(interface: Option<&str>) -> Result<ServiceDaemon, DiscoveryError> {
    let d = ServiceDaemon::new().map_err(|e| DiscoveryError(e.to_string()))?;
    if let Some(name) = interface {
        let name = name.to_string();
        d.disable_interface(IfKind::All)
            .map_err(|e| DiscoveryError(e.to_string()))?;
        let kind = if name == "lo" {
            IfKind::LoopbackV4
        } else {
            IfKind::Name(name)
        };
        d.enable_interface(kind)
            .map_err(|e| DiscoveryError(e.to_string()))?;
    }
    Ok(d)
}

/// What a node advertises.
#[derive(Debug, Clone)]
pub struct Advert {
    pub node_id: String,
    pub role: Role,
    pub port: u16,
    pub universes: Vec<u16>,
    pub capabilities: Vec<Capability>,
    /// The SHA-256 fingerprint of the node's TLS certificate (TXT `fingerprint`; none:
    /// plaintext, TXT `tls=off`).
    pub fingerprint: Option<rockontrol_tls::Fingerprint>,
}

impl Advert {
    /// The TXT records.
    pub fn txt(&self) -> BTreeMap<String, String> {
        let join = |v: Vec<String>| v.join(",");
        let mut txt = BTreeMap::from([
            ("node_id".into(), self.node_id.clone()),
            ("role".into(), self.role.as_str().into()),
            ("version".into(), crate::protocol::VERSION.into()),
            ("protocol".into(), crate::protocol::protocol_hash()),
            (
                "universes".into(),
                join(self.universes.iter().map(u16::to_string).collect()),
            ),
            (
                "capabilities".into(),
                join(
                    self.capabilities
                        .iter()
                        .map(|c| c.as_str().to_string())
                        .collect(),
                ),
            ),
        ]);
        match self.fingerprint {
            Some(f) => {
                txt.insert("tls".into(), "on".into());
                txt.insert("fingerprint".into(), f.to_string());
            }
            None => {
                txt.insert("tls".into(), "off".into());
            }
        }
        txt
    }
}

/// Advertises this node (on `$ROCKONTROL_MDNS_INTERFACE`, else everywhere) until the
/// returned daemon is dropped or shut down.
pub fn advertise(advert: &Advert, ip: Option<IpAddr>) -> Result<ServiceDaemon, DiscoveryError> {
    advertise_on(advert, ip, interface_from_env().as_deref())
}

/// [`advertise`] on one interface (`None`: every interface).
pub fn advertise_on(
    advert: &Advert,
    ip: Option<IpAddr>,
    interface: Option<&str>,
) -> Result<ServiceDaemon, DiscoveryError> {
    let d = daemon(interface)?;
    let host = format!("rockontrol-{}.local.", advert.node_id);
    let props: Vec<(String, String)> = advert.txt().into_iter().collect();
    let info = match ip {
        Some(ip) => ServiceInfo::new(
            SERVICE_TYPE,
            &advert.node_id,
            &host,
            ip,
            advert.port,
            &props[..],
        ),
        None => ServiceInfo::new(
            SERVICE_TYPE,
            &advert.node_id,
            &host,
            "",
            advert.port,
            &props[..],
        )
        .map(ServiceInfo::enable_addr_auto),
    }
    .map_err(|e| DiscoveryError(e.to_string()))?;
    d.register(info)
        .map_err(|e| DiscoveryError(e.to_string()))?;
    tracing::info!(
        "mDNS: advertising {} ({}) on port {} as {SERVICE_TYPE}",
        advert.node_id,
        advert.role,
        advert.port
    );
    Ok(d)
}

/// A node seen over mDNS.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub node_id: String,
    pub role: String,
    pub addr: SocketAddr,
    pub txt: BTreeMap<String, String>,
}

impl Seen {
    /// The certificate fingerprint the node advertises (TXT `fingerprint`), if any and well
    /// formed. Informational: a receiver trusts its pin, not what mDNS says.
    pub fn fingerprint(&self) -> Option<rockontrol_tls::Fingerprint> {
        self.txt.get("fingerprint")?.parse().ok()
    }
}

/// Browses (on `$ROCKONTROL_MDNS_INTERFACE`, else everywhere) for `timeout` and returns every
/// node resolved.
pub fn browse_blocking(timeout: Duration, stop_at_master: bool) -> Vec<Seen> {
    browse_on(interface_from_env().as_deref(), timeout, stop_at_master)
}

/// [`browse_blocking`] on one interface (`None`: every interface).
pub fn browse_on(interface: Option<&str>, timeout: Duration, stop_at_master: bool) -> Vec<Seen> {
    browse_until(interface, timeout, |s| stop_at_master && s.role == "master")
}

/// Browses on `interface` for `timeout`, or until a node resolved meets `stop`.
fn browse_until(
    interface: Option<&str>,
    timeout: Duration,
    stop: impl Fn(&Seen) -> bool,
) -> Vec<Seen> {
    let Ok(d) = daemon(interface) else {
        return Vec::new();
    };
    let Ok(rx) = d.browse(SERVICE_TYPE) else {
        return Vec::new();
    };
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(event) = rx.recv_timeout(left) else {
            break;
        };
        if let ServiceEvent::ServiceResolved(info) = event {
            let Some(s) = seen_from(&info) else { continue };
            let done = stop(&s);
            seen.push(s);
            if done {
                break;
            }
        }
    }
    let _ = d.shutdown();
    seen
}

/// Whether `seen` advertises a master, and the one named `master_id` when that is set (the
/// TXT records `role` and `node_id`).
pub fn is_wanted_master(seen: &Seen, master_id: Option<&str>) -> bool {
    seen.role == "master" && master_id.is_none_or(|id| seen.node_id == id)
}

/// The masters seen within `timeout` (on `$ROCKONTROL_MDNS_INTERFACE`, else everywhere),
/// every node resolved meanwhile included: the browse ends early at the first master that
/// [`is_wanted_master`]. Filtering and ordering are the caller's
/// ([`crate::link_policy::MasterSelection`]).
pub async fn find_masters(timeout: Duration, master_id: Option<String>) -> Vec<Seen> {
    let interface = interface_from_env();
    tokio::task::spawn_blocking(move || {
        browse_until(interface.as_deref(), timeout, |s| {
            is_wanted_master(s, master_id.as_deref())
        })
    })
    .await
    .unwrap_or_default()
}

/// Browses on `interface` (`None`: every interface) until the process ends, calling `seen`
/// for every node resolved (again when its records change) and `gone` when one says goodbye.
/// Runs on a thread of its own; mDNS failures are logged and end the watch.
pub fn watch(
    interface: Option<String>,
    mut seen: impl FnMut(Seen) + Send + 'static,
    mut gone: impl FnMut(&str) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("rockontrol-mdns-watch".into())
        .spawn(move || {
            let daemon = match daemon(interface.as_deref()) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("{e}; nodes are not watched over mDNS");
                    return;
                }
            };
            let rx = match daemon.browse(SERVICE_TYPE) {
                Ok(rx) => rx,
                Err(e) => {
                    tracing::warn!("mDNS browse: {e}; nodes are not watched over mDNS");
                    return;
                }
            };
            while let Ok(event) = rx.recv() {
                match event {
                    ServiceEvent::ServiceResolved(info) => {
                        if let Some(s) = seen_from(&info) {
                            seen(s);
                        }
                    }
                    ServiceEvent::ServiceRemoved(_, fullname) => {
                        let instance = fullname
                            .strip_suffix(&format!(".{SERVICE_TYPE}"))
                            .unwrap_or(&fullname);
                        gone(instance);
                    }
                    _ => {}
                }
            }
        })
        .map(|_| ())
}

fn seen_from(info: &mdns_sd::ResolvedService) -> Option<Seen> {
    let txt: BTreeMap<String, String> = info
        .get_properties()
        .iter()
        .map(|p| (p.key().to_string(), p.val_str().to_string()))
        .collect();
    let v4: Vec<Ipv4Addr> = info.get_addresses_v4().into_iter().collect();
    // Prefer loopback when present (a node on this machine), else any IPv4.
    let ip = v4
        .iter()
        .find(|a| a.is_loopback())
        .or(v4.first())
        .copied()?;
    Some(Seen {
        node_id: txt.get("node_id").cloned().unwrap_or_default(),
        role: txt.get("role").cloned().unwrap_or_default(),
        addr: SocketAddr::new(IpAddr::V4(ip), info.get_port()),
        txt,
    })
}
