//! The show's per-universe `outputs`, resolved into what the output thread sends where.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use rockontrol_show::{ArtNetDestination, Output, SacnDestination, Show};
use rockontrol_wire::{artnet, sacn};

/// Art-Net's UDP port.
pub const ARTNET_PORT: u16 = 6454;
/// sACN's UDP port (E1.31 §9.3.1).
pub const SACN_PORT: u16 = sacn::PORT;

/// One sACN stream: a show universe sent as one E1.31 universe.
#[derive(Debug, Clone, PartialEq)]
pub struct SacnRoute {
    /// Index of the show universe in the engine's frame set.
    pub frame_index: usize,
    pub universe: u16,
    pub priority: u8,
    /// 0: no synchronization.
    pub sync_address: u16,
    pub preview: bool,
    pub destinations: Vec<SocketAddr>,
}

/// One Art-Net stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtNetRoute {
    pub frame_index: usize,
    pub port_address: artnet::PortAddress,
    /// Explicit destinations; empty with `discovered` set means "nodes that subscribed".
    pub destinations: Vec<SocketAddr>,
    /// Send to nodes that subscribed to this port-address (ArtPollReply).
    pub discovered: bool,
}

/// One USB Pro interface.
#[derive(Debug, Clone, PartialEq)]
pub struct UsbProRoute {
    pub frame_index: usize,
    pub port: String,
}

/// Everything one node sends, per frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputPlan {
    pub sacn: Vec<SacnRoute>,
    pub artnet: Vec<ArtNetRoute>,
    pub usbpro: Vec<UsbProRoute>,
}

impl OutputPlan {
    pub fn is_empty(&self) -> bool {
        self.sacn.is_empty() && self.artnet.is_empty() && self.usbpro.is_empty()
    }

    /// The sACN universes sent, for discovery packets.
    pub fn sacn_universes(&self) -> Vec<u16> {
        self.sacn.iter().map(|r| r.universe).collect()
    }

    /// Distinct sACN sync addresses in use.
    pub fn sync_addresses(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .sacn
            .iter()
            .map(|r| r.sync_address)
            .filter(|s| *s != 0)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// A destination that could not be resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("universe {universe}: cannot use destination {destination:?}: {reason}")]
pub struct RouteError {
    pub universe: u16,
    pub destination: String,
    pub reason: String,
}

/// Resolves every output of `show`'s universes, for the universes `only` allows (all if
/// `None`). `universes` is the engine's frame order (show universe ids).
pub fn plan(show: &Show, universes: &[u16], only: Option<&[u16]>) -> (OutputPlan, Vec<RouteError>) {
    let mut plan = OutputPlan::default();
    let mut errors = Vec::new();
    for u in &show.universes {
        if only.is_some_and(|only| !only.contains(&u.id)) {
            continue;
        }
        let Some(frame_index) = universes.iter().position(|id| *id == u.id) else {
            continue;
        };
        for output in &u.outputs {
            match output {
                Output::Sacn(s) => {
                    let universe = s.universe.unwrap_or(u.id);
                    let destinations = match &s.destination {
                        SacnDestination::Multicast => {
                            vec![SocketAddr::new(
                                IpAddr::V4(sacn::multicast_addr(universe)),
                                sacn::PORT,
                            )]
                        }
                        SacnDestination::Unicast(hosts) => {
                            resolve_all(u.id, hosts, sacn::PORT, &mut errors)
                        }
                    };
                    plan.sacn.push(SacnRoute {
                        frame_index,
                        universe,
                        priority: s.priority,
                        sync_address: s.sync_universe.unwrap_or(0),
                        preview: s.preview,
                        destinations,
                    });
                }
                Output::ArtNet(a) => {
                    let raw = a.port_address.unwrap_or(u.id.saturating_sub(1));
                    let Some(port_address) = artnet::PortAddress::new(raw) else {
                        errors.push(RouteError {
                            universe: u.id,
                            destination: format!("port-address {raw}"),
                            reason: "outside 0..=32767".into(),
                        });
                        continue;
                    };
                    let (destinations, discovered) = match &a.destination {
                        ArtNetDestination::Discovered => (Vec::new(), true),
                        ArtNetDestination::Unicast(hosts) => {
                            (resolve_all(u.id, hosts, ARTNET_PORT, &mut errors), false)
                        }
                        ArtNetDestination::Broadcast(host) => (
                            resolve_all(u.id, std::slice::from_ref(host), ARTNET_PORT, &mut errors),
                            false,
                        ),
                    };
                    plan.artnet.push(ArtNetRoute {
                        frame_index,
                        port_address,
                        destinations,
                        discovered,
                    });
                }
                Output::UsbPro(p) => plan.usbpro.push(UsbProRoute {
                    frame_index,
                    port: p.port.clone(),
                }),
            }
        }
    }
    (plan, errors)
}

fn resolve_all(
    universe: u16,
    hosts: &[String],
    default_port: u16,
    errors: &mut Vec<RouteError>,
) -> Vec<SocketAddr> {
    hosts
        .iter()
        .filter_map(|host| match resolve(host, default_port) {
            Ok(addr) => Some(addr),
            Err(reason) => {
                errors.push(RouteError {
                    universe,
                    destination: host.clone(),
                    reason,
                });
                None
            }
        })
        .collect()
}

/// `host`, `host:port`, `ip` or `ip:port` → a socket address (IPv4 preferred).
pub fn resolve(host: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(addr) = host.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    let with_port = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:{default_port}")
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| "resolves to no address".to_string())
}

/// The IPv4 unspecified address, for binding senders to any interface.
pub const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
