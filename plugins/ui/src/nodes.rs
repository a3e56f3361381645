//! The master's node view (the seed's Configuration UI), on the master's real registry.
//!
//! - **Topology**: the master and every receiver it knows, linked, coloured by state
//!   (online green, degraded amber, offline red, pending blue); nodes seen over mDNS but not
//!   known yet hollow grey. Click a node to select it.
//! - **Universe matrix**: nodes × universes. Click a cell to assign or unassign; a universe
//!   given to two nodes is a conflict (red cells, and an alert). The master row shows the
//!   universes it outputs itself (those no node has). A node learns a new assignment in its
//!   next welcome: *Apply* restarts its link.
//! - **Selected node**: status, and graphs over the last five minutes of latency (round trip
//!   of the connection probes), DMX frames per second, CPU and clock offset (the node's clock
//!   minus the master's, from its clock sync); its clock sync's drift, uncertainty and
//!   minimum round trip.
//! - **Quick actions**: restart the node (its process re-executes itself and comes back),
//!   restart only its link, test the connection (a command whose ack round trip is
//!   measured), identify (the node flashes every fixture of its universes at 2 Hz for
//!   [`IDENTIFY_SECONDS`] on top of the show).
//! - **Alerts**, newest first.
//!
//! Widgets push [`NodeAction`]s; [`apply_node_actions`] carries them out on the registry, so
//! tests and scripts drive the view exactly as clicks do.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};
use rockontrol_engine::ShowEngine;
use rockontrol_net::MasterNet;
use rockontrol_net::protocol::{IDENTIFY_SECONDS, Metrics, NodeCommand};
use rockontrol_net::registry::{Alert, NodeState};

use crate::UiSystems;

pub(crate) fn plugin(app: &mut App) {
    model_plugin(app);
    app.init_resource::<UiPage>()
        .init_resource::<NodeViewLayout>()
        .add_systems(
            EguiPrimaryContextPass,
            draw_master_view
                .in_set(UiSystems::Panels)
                .after(crate::panels::draw_panels),
        );
}

/// The node view's model without a window: [`NodesModel`] kept from the master's registry,
/// [`NodeAction`]s carried out. [`crate::UiPlugin`] adds it for a master; headless tests use
/// it alone.
pub fn model_plugin(app: &mut App) {
    app.init_resource::<NodesModel>()
        .init_resource::<NodeActions>()
        .add_systems(
            Update,
            (apply_node_actions, refresh_nodes)
                .chain()
                .in_set(UiSystems::Actions),
        );
}

/// Which page of the master window is open.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UiPage {
    /// Programmer, playbacks and the live stage preview.
    #[default]
    Programmer,
    /// Topology, universe matrix, node status and graphs, alerts.
    Nodes,
}

/// The area below the top bar, where a page draws (set by the panels every frame).
#[derive(Resource, Debug, Clone, Copy, Default)]
pub struct PageArea(pub Option<egui::Rect>);

/// State colours (also what the screenshot tests look for).
pub const ONLINE: egui::Color32 = egui::Color32::from_rgb(46, 204, 113);
pub const DEGRADED: egui::Color32 = egui::Color32::from_rgb(243, 156, 18);
pub const OFFLINE: egui::Color32 = egui::Color32::from_rgb(231, 76, 60);
pub const PENDING: egui::Color32 = egui::Color32::from_rgb(52, 152, 219);
/// The ring around a topology node whose media is not ready, and its node-view line.
pub const MEDIA_NOT_READY: egui::Color32 = egui::Color32::from_rgb(241, 196, 15);
/// The master's own node in the topology.
pub const MASTER: egui::Color32 = egui::Color32::from_rgb(155, 89, 182);
/// A matrix cell: assigned, in conflict, free.
pub const ASSIGNED: egui::Color32 = egui::Color32::from_rgb(41, 128, 185);
pub const CONFLICT: egui::Color32 = egui::Color32::from_rgb(231, 76, 60);
pub const FREE: egui::Color32 = egui::Color32::from_rgb(48, 48, 56);

/// The colour of a node state.
pub fn state_colour(state: NodeState) -> egui::Color32 {
    match state {
        NodeState::Online => ONLINE,
        NodeState::Degraded => DEGRADED,
        NodeState::Offline => OFFLINE,
        NodeState::Pending => PENDING,
    }
}

/// What an operator does in the node view.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeAction {
    Select(String),
    /// Give `universe` to `node` (`on`) or take it away. Conflicts are allowed and marked.
    Assign {
        node: String,
        universe: u16,
        on: bool,
    },
    /// Drop the node's link; it reconnects (and gets its assignment) in its next attempt.
    RestartLink(String),
    /// Restart the node's process (the `restart` node command); it comes back by itself.
    RestartNode(String),
    /// Send a harmless command and time its acknowledgement.
    TestConnection(String),
    /// Flash the node's fixtures (the `identify` node command, [`IDENTIFY_SECONDS`] long).
    Identify(String),
    /// Any command for a node (as `POST /api/nodes/{id}/command`).
    Command(String, NodeCommand),
}

/// Actions queued by widgets and scripts.
#[derive(Resource, Debug, Default)]
pub struct NodeActions(pub Vec<NodeAction>);

/// One node as the view shows it.
#[derive(Debug, Clone)]
pub struct NodeRow {
    pub id: String,
    pub state: NodeState,
    pub universes: Vec<u16>,
    pub metrics: Metrics,
    pub managed: bool,
    pub ip: Option<String>,
    pub version: Option<String>,
    /// Seconds since the last heartbeat.
    pub heartbeat_age: Option<f64>,
    pub pending_commands: usize,
    pub executed: u64,
    pub failed: u64,
    pub degraded_reason: Option<String>,
    /// Assignment changed here since the node's link came up: it applies on the next one.
    pub needs_relink: bool,
}

/// One second of a node's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Seconds since the view started.
    pub t: f64,
    pub latency_ms: Option<f64>,
    pub dmx_fps: Option<f64>,
    pub cpu: Option<f64>,
    pub offset_ms: Option<f64>,
}

/// A connection test: sent at `started`, done when the node's executed count passes
/// `executed_before`.
#[derive(Debug, Clone)]
struct Probe {
    started: Instant,
    executed_before: u64,
    manual: bool,
}

/// The outcome of the last connection test of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeResult {
    Running,
    /// Command → ack round trip.
    RoundTrip(Duration),
    Failed(String),
}

/// Samples kept per node: five minutes at one a second.
pub const HISTORY_SECONDS: usize = 300;
/// Automatic connection probes (the latency graph) this often per online node.
pub const PROBE_PERIOD: Duration = Duration::from_secs(10);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The registry as the view last read it, plus the view's own history and probes.
#[derive(Resource, Debug)]
pub struct NodesModel {
    pub master_id: String,
    pub master_addr: Option<String>,
    /// Media playback on the master's own outputs (shown like a receiver's).
    pub master_playback: Option<rockontrol_media::PlaybackReport>,
    pub nodes: Vec<NodeRow>,
    /// Matrix columns: show universes and every assigned one.
    pub universes: Vec<u16>,
    /// Universes given to more than one node.
    pub conflicts: BTreeSet<u16>,
    /// Universes the master outputs itself.
    pub master_universes: Vec<u16>,
    pub alerts: Vec<Alert>,
    /// The last control actions of the audit log (who, what, result), oldest first.
    pub audit: Vec<rockontrol_net::audit::AuditEntry>,
    /// Nodes seen over mDNS that the master does not know yet: (node id, address).
    pub discovered: Vec<(String, String)>,
    pub history: BTreeMap<String, VecDeque<Sample>>,
    pub selected: Option<String>,
    pub last_probe: BTreeMap<String, ProbeResult>,
    /// Automatic probes feed the latency graph.
    pub auto_probe: bool,
    probes: BTreeMap<String, Probe>,
    next_auto_probe: BTreeMap<String, Instant>,
    relink: BTreeSet<String>,
    started: Instant,
    last_refresh: Option<Instant>,
    last_sample: Option<Instant>,
}

impl Default for NodesModel {
    fn default() -> Self {
        NodesModel {
            master_id: String::new(),
            master_addr: None,
            master_playback: None,
            nodes: Vec::new(),
            universes: Vec::new(),
            conflicts: BTreeSet::new(),
            master_universes: Vec::new(),
            alerts: Vec::new(),
            audit: Vec::new(),
            discovered: Vec::new(),
            history: BTreeMap::new(),
            selected: None,
            last_probe: BTreeMap::new(),
            auto_probe: true,
            probes: BTreeMap::new(),
            next_auto_probe: BTreeMap::new(),
            relink: BTreeSet::new(),
            started: Instant::now(),
            last_refresh: None,
            last_sample: None,
        }
    }
}

impl NodesModel {
    pub fn node(&self, id: &str) -> Option<&NodeRow> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// Where the view drew things, in physical pixels (for screenshot checks).
#[derive(Resource, Debug, Default, Clone)]
pub struct NodeViewLayout {
    /// Centre of each node's disc in the topology (the master under its id too).
    pub nodes: BTreeMap<String, UVec2>,
    /// A point inside each matrix cell (node, universe).
    pub cells: BTreeMap<(String, u16), UVec2>,
}

/// Carries out queued [`NodeAction`]s on the master's registry.
pub fn apply_node_actions(
    mut actions: ResMut<NodeActions>,
    mut model: ResMut<NodesModel>,
    net: Option<Res<MasterNet>>,
) {
    let Some(net) = net else {
        actions.0.clear();
        return;
    };
    let now = Instant::now();
    for action in std::mem::take(&mut actions.0) {
        info!("node view: {action:?}");
        // Control actions at the master's own console go to the audit log like the API's.
        let audited = (!matches!(
            action,
            NodeAction::Select(_) | NodeAction::TestConnection(_)
        ))
        .then(|| format!("node view: {action:?}"));
        let mut reg = net.shared.registry();
        let outcome: Result<(), String> = match action {
            NodeAction::Select(id) => {
                model.selected = Some(id);
                Ok(())
            }
            NodeAction::Assign { node, universe, on } => {
                // The registry keeps the assignment, raises any conflict, and the master's
                // own outputs follow (`MasterPlugin`'s routing).
                match reg.assign(&node, universe, on, SystemTime::now()) {
                    Err(e) => {
                        warn!("cannot assign universe {universe}: {e}");
                        Err(e.to_string())
                    }
                    Ok(_) => {
                        if reg.node(&node).is_some_and(|n| n.is_linked()) {
                            model.relink.insert(node.clone());
                        }
                        Ok(())
                    }
                }
            }
            NodeAction::RestartLink(id) => {
                // The node reconnects after its reconnect period and is welcomed afresh.
                if reg.node(&id).is_some() {
                    reg.drop_link(&id);
                    model.relink.remove(&id);
                    info!("node {id}: link restarted from the node view");
                    Ok(())
                } else {
                    Err(format!("no node {id:?}"))
                }
            }
            NodeAction::TestConnection(id) => {
                start_probe(&mut model, &mut reg, &id, true, now);
                Ok(())
            }
            NodeAction::RestartNode(id) => match reg.submit(&id, NodeCommand::Restart {}) {
                Ok((command_id, _)) => {
                    info!("node {id}: restart sent ({command_id})");
                    Ok(())
                }
                Err(e) => {
                    warn!("node view: cannot restart {id}: {e}");
                    Err(e.to_string())
                }
            },
            NodeAction::Identify(id) => {
                let identify = NodeCommand::Identify {
                    seconds: IDENTIFY_SECONDS,
                };
                match reg.submit(&id, identify) {
                    Ok((command_id, _)) => {
                        info!("node {id}: identify sent ({command_id})");
                        Ok(())
                    }
                    Err(e) => {
                        warn!("node view: cannot identify {id}: {e}");
                        Err(e.to_string())
                    }
                }
            }
            NodeAction::Command(id, command) => reg.submit(&id, command).map(|_| ()).map_err(|e| {
                warn!("node view: {e}");
                e.to_string()
            }),
        };
        drop(reg);
        if let Some(action) = audited {
            net.shared.audit(rockontrol_net::audit::Record {
                caller: Some(rockontrol_net::roles::Caller {
                    key_id: "console".into(),
                    name: "master console (node view)".into(),
                    role: rockontrol_net::roles::Role::Admin,
                    limits: Default::default(),
                    peer: None,
                }),
                action,
                status: if outcome.is_ok() { 200 } else { 422 },
                reason: outcome.err(),
                ..Default::default()
            });
        }
    }
}

fn start_probe(
    model: &mut NodesModel,
    reg: &mut rockontrol_net::registry::Registry,
    id: &str,
    manual: bool,
    now: Instant,
) {
    let Some(entry) = reg.node(id) else {
        return;
    };
    if let Some(probe) = model.probes.get_mut(id) {
        // One is in flight already (an automatic one): its result is shown.
        if manual {
            probe.manual = true;
            model
                .last_probe
                .insert(id.to_string(), ProbeResult::Running);
        }
        return;
    }
    if !entry.is_linked() {
        if manual {
            model.last_probe.insert(
                id.to_string(),
                ProbeResult::Failed(format!("{id} is not connected")),
            );
        }
        return;
    }
    let executed_before = entry.executed();
    // A ping: acknowledged by the node and nothing else, so a probe never touches the stage.
    match reg.submit(id, NodeCommand::Ping {}) {
        Ok(_) => {
            model.probes.insert(
                id.to_string(),
                Probe {
                    started: now,
                    executed_before,
                    manual,
                },
            );
            if manual {
                model
                    .last_probe
                    .insert(id.to_string(), ProbeResult::Running);
            }
        }
        Err(e) => {
            model
                .last_probe
                .insert(id.to_string(), ProbeResult::Failed(e.to_string()));
        }
    }
}

/// Reads the registry into [`NodesModel`] (every 250 ms), samples the graphs (every second),
/// finishes connection probes and starts automatic ones.
pub fn refresh_nodes(
    mut model: ResMut<NodesModel>,
    net: Option<Res<MasterNet>>,
    engine: Res<ShowEngine>,
) {
    let Some(net) = net else { return };
    let now = Instant::now();
    let mut reg = net.shared.registry();
    // Probes.
    let finished: Vec<(String, ProbeResult, bool)> = model
        .probes
        .iter()
        .filter_map(|(id, p)| {
            let executed = reg.node(id).map_or(0, |n| n.executed());
            if executed > p.executed_before {
                Some((
                    id.clone(),
                    ProbeResult::RoundTrip(p.started.elapsed()),
                    p.manual,
                ))
            } else if p.started.elapsed() > PROBE_TIMEOUT {
                Some((
                    id.clone(),
                    ProbeResult::Failed(format!("no acknowledgement within {PROBE_TIMEOUT:?}")),
                    p.manual,
                ))
            } else {
                None
            }
        })
        .collect();
    for (id, result, manual) in finished {
        model.probes.remove(&id);
        if let ProbeResult::RoundTrip(rtt) = &result {
            debug!("node {id}: round trip {rtt:?}");
            let t = model.started.elapsed().as_secs_f64();
            let history = model.history.entry(id.clone()).or_default();
            push_sample(
                history,
                Sample {
                    t,
                    latency_ms: Some(rtt.as_secs_f64() * 1000.0),
                    ..Sample::default()
                },
            );
        }
        if manual || !matches!(result, ProbeResult::RoundTrip(_)) {
            model.last_probe.insert(id, result);
        }
    }
    if model.auto_probe {
        let online: Vec<String> = reg
            .nodes()
            .filter(|n| n.is_linked() && n.state() == NodeState::Online)
            .map(|n| n.node_id().to_string())
            .collect();
        for id in online {
            let due = model.next_auto_probe.get(&id).is_none_or(|at| *at <= now);
            if due {
                model.next_auto_probe.insert(id.clone(), now + PROBE_PERIOD);
                start_probe(&mut model, &mut reg, &id, false, now);
            }
        }
    }
    if model
        .last_refresh
        .is_some_and(|t| now - t < Duration::from_millis(250))
    {
        return;
    }
    model.last_refresh = Some(now);
    let system_now = SystemTime::now();
    model.master_id = reg.master_id().to_string();
    model.master_addr = net.addr.map(|a| a.to_string());
    model.master_playback = net.shared.own_playback();
    let relink = model.relink.clone();
    model.nodes = reg
        .nodes()
        .map(|n| NodeRow {
            id: n.node_id().to_string(),
            state: n.state(),
            universes: n.universes().to_vec(),
            metrics: n.metrics().clone(),
            managed: n.managed().is_some(),
            ip: n.managed().map(|m| m.ip.to_string()),
            version: n.version().map(str::to_string),
            heartbeat_age: n
                .last_heartbeat()
                .and_then(|t| system_now.duration_since(t).ok())
                .map(|d| d.as_secs_f64()),
            pending_commands: n.pending_commands(),
            executed: n.executed(),
            failed: n.failed(),
            degraded_reason: n.degraded_reason().map(str::to_string),
            needs_relink: relink.contains(n.node_id()),
        })
        .collect();
    model.alerts = reg.alerts();
    model.audit = net
        .shared
        .audit
        .as_ref()
        .map(|log| log.recent(AUDIT_SHOWN))
        .unwrap_or_default();
    model.discovered = reg
        .discovered_unknown()
        .map(|d| (d.node_id.clone(), d.address.clone()))
        .collect();
    // Routing and conflicts are the registry's: the view only shows them.
    model.conflicts = reg.conflicts().into_iter().map(|c| c.universe).collect();
    let show_universes: Vec<u16> = engine
        .engine
        .as_ref()
        .map(|f| f.show().universes.clone())
        .unwrap_or_default();
    model.master_universes = reg.local_universes(&show_universes);
    drop(reg);
    let mut universes: BTreeSet<u16> = show_universes.into_iter().collect();
    universes.extend(model.nodes.iter().flat_map(|n| n.universes.iter().copied()));
    model.universes = universes.into_iter().collect();
    if model.selected.is_none() {
        model.selected = model.nodes.first().map(|n| n.id.clone());
    }
    // One sample a second per node.
    if model
        .last_sample
        .is_some_and(|t| now - t < Duration::from_secs(1))
    {
        return;
    }
    model.last_sample = Some(now);
    let t = model.started.elapsed().as_secs_f64();
    let rows = model.nodes.clone();
    for n in rows {
        let connected = matches!(n.state, NodeState::Online | NodeState::Degraded);
        let fresh = n.heartbeat_age.filter(|a| connected && *a < 3.0);
        let sample = Sample {
            t,
            latency_ms: None,
            dmx_fps: fresh.map(|_| n.metrics.dmx_fps),
            cpu: fresh.map(|_| n.metrics.cpu_usage),
            // The node's own estimate, from its clock sync (see `rockontrol_clock`).
            offset_ms: fresh
                .and_then(|_| n.metrics.clock.as_ref()?.offset_ns)
                .map(|ns| ns as f64 / 1e6),
        };
        push_sample(model.history.entry(n.id.clone()).or_default(), sample);
    }
}

fn push_sample(history: &mut VecDeque<Sample>, sample: Sample) {
    history.push_back(sample);
    while history.len() > HISTORY_SECONDS * 2 {
        history.pop_front();
    }
}

/// Draws the node view when it is the open page.
pub fn draw_master_view(
    mut contexts: EguiContexts,
    page: Res<UiPage>,
    area: Res<PageArea>,
    model: Res<NodesModel>,
    mut actions: ResMut<NodeActions>,
    mut layout: ResMut<NodeViewLayout>,
) -> Result {
    if *page != UiPage::Nodes {
        return Ok(());
    }
    let ctx = contexts.ctx_mut()?.clone();
    let rect = area.0.unwrap_or(ctx.viewport_rect());
    let mut root = egui::Ui::new(
        ctx.clone(),
        "nodes-root".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(rect),
    );
    let ppp = ctx.pixels_per_point();
    let mut out = Vec::new();
    let mut new_layout = NodeViewLayout::default();
    egui::CentralPanel::default().show(&mut root, |ui| {
        ui.columns(2, |cols| {
            cols[0].strong("Topology");
            topology(&mut cols[0], &model, ppp, &mut new_layout, &mut out);
            cols[0].separator();
            audit(&mut cols[0], &model);
            cols[0].separator();
            alerts(&mut cols[0], &model);
            cols[1].strong("Universe assignment");
            matrix(&mut cols[1], &model, ppp, &mut new_layout, &mut out);
            cols[1].separator();
            node_details(&mut cols[1], &model, &mut out);
        });
    });
    *layout = new_layout;
    actions.0.extend(out);
    Ok(())
}

fn to_pixels(p: egui::Pos2, ppp: f32) -> UVec2 {
    UVec2::new((p.x * ppp).round() as u32, (p.y * ppp).round() as u32)
}

fn topology(
    ui: &mut egui::Ui,
    model: &NodesModel,
    ppp: f32,
    layout: &mut NodeViewLayout,
    out: &mut Vec<NodeAction>,
) {
    let width = ui.available_width();
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 250.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, egui::Color32::from_rgb(24, 24, 30));
    let master = egui::pos2(rect.center().x, rect.min.y + 40.0);
    let n = model.nodes.len().max(1);
    let positions: Vec<egui::Pos2> = (0..model.nodes.len())
        .map(|i| {
            // Receivers on an arc below the master.
            let f = if n == 1 {
                0.5
            } else {
                i as f32 / (n - 1) as f32
            };
            let angle = std::f32::consts::PI * (0.85 - 0.7 * f);
            let r = egui::vec2(width * 0.40, 150.0);
            egui::pos2(
                master.x + r.x * angle.cos(),
                master.y + r.y * angle.sin() + 10.0,
            )
        })
        .collect();
    for (node, pos) in model.nodes.iter().zip(&positions) {
        let colour = state_colour(node.state);
        let stroke = if node.state == NodeState::Offline {
            egui::Stroke::new(1.5, colour.gamma_multiply(0.5))
        } else {
            egui::Stroke::new(3.0, colour)
        };
        painter.line_segment([master, *pos], stroke);
    }
    let radius = 18.0;
    painter.circle_filled(master, radius, MASTER);
    painter.text(
        master + egui::vec2(radius + 6.0, 0.0),
        egui::Align2::LEFT_CENTER,
        format!(
            "{} (master)\n{}{}",
            model.master_id,
            model.master_addr.as_deref().unwrap_or(""),
            model
                .master_playback
                .as_ref()
                .map(|p| format!(
                    "\nmedia{}: {}",
                    if p.armed { "" } else { " (arming)" },
                    p.summary()
                ))
                .unwrap_or_default()
        ),
        egui::FontId::proportional(13.0),
        egui::Color32::LIGHT_GRAY,
    );
    layout
        .nodes
        .insert(model.master_id.clone(), to_pixels(master, ppp));
    for (node, pos) in model.nodes.iter().zip(positions) {
        let selected = model.selected.as_deref() == Some(node.id.as_str());
        if selected {
            painter.circle_stroke(
                pos,
                radius + 4.0,
                egui::Stroke::new(2.0, egui::Color32::WHITE),
            );
        }
        painter.circle_filled(pos, radius, state_colour(node.state));
        // Media not ready (issue 13): a dashed amber ring and the word under the name.
        let media = node.metrics.media.as_ref().filter(|m| !m.ready());
        if media.is_some() {
            painter.circle_stroke(pos, radius + 8.0, egui::Stroke::new(3.0, MEDIA_NOT_READY));
        }
        painter.text(
            pos + egui::vec2(0.0, radius + 4.0),
            egui::Align2::CENTER_TOP,
            match media {
                Some(m) => {
                    let (done, all) = m.bytes();
                    let pct = (done * 100).checked_div(all).unwrap_or(0);
                    format!("{}\n{} · media {pct} %", node.id, state_name(node.state))
                }
                None => format!("{}\n{}", node.id, state_name(node.state)),
            },
            egui::FontId::proportional(13.0),
            egui::Color32::LIGHT_GRAY,
        );
        let hit = egui::Rect::from_center_size(pos, egui::vec2(radius * 2.5, radius * 2.5));
        let response = ui
            .interact(hit, ui.id().with(("node", &node.id)), egui::Sense::click())
            .on_hover_text(format!(
                "{}: {} — {:.1} DMX fps, CPU {:.0} %",
                node.id,
                state_name(node.state),
                node.metrics.dmx_fps,
                node.metrics.cpu_usage
            ));
        if response.clicked() {
            out.push(NodeAction::Select(node.id.clone()));
        }
        layout.nodes.insert(node.id.clone(), to_pixels(pos, ppp));
    }
    // Seen over mDNS but never connected: hollow, along the right edge.
    for (i, (id, address)) in model.discovered.iter().enumerate() {
        let pos = egui::pos2(rect.max.x - 30.0, rect.min.y + 30.0 + 44.0 * i as f32);
        painter.circle_stroke(pos, 10.0, egui::Stroke::new(2.0, egui::Color32::GRAY));
        painter.text(
            pos - egui::vec2(16.0, 0.0),
            egui::Align2::RIGHT_CENTER,
            format!("{id} (mDNS)\n{address}"),
            egui::FontId::proportional(12.0),
            egui::Color32::GRAY,
        );
    }
    // Legend.
    let mut x = rect.min.x + 10.0;
    let y = rect.max.y - 14.0;
    for (name, colour) in [
        ("online", ONLINE),
        ("degraded", DEGRADED),
        ("offline", OFFLINE),
        ("pending", PENDING),
        ("media not ready", MEDIA_NOT_READY),
    ] {
        painter.circle_filled(egui::pos2(x + 5.0, y), 5.0, colour);
        let r = painter.text(
            egui::pos2(x + 14.0, y),
            egui::Align2::LEFT_CENTER,
            name,
            egui::FontId::proportional(12.0),
            egui::Color32::GRAY,
        );
        x = r.max.x + 14.0;
    }
}

fn state_name(state: NodeState) -> &'static str {
    match state {
        NodeState::Online => "online",
        NodeState::Degraded => "degraded",
        NodeState::Offline => "offline",
        NodeState::Pending => "pending",
    }
}

/// Audit entries the node view lists.
pub const AUDIT_SHOWN: usize = 8;

/// The last control actions: time, who (key name and role), what, and the status (refusals
/// in the degraded colour, with why on hover). `GET /api/audit` has them all.
fn audit(ui: &mut egui::Ui, model: &NodesModel) {
    ui.strong("Audit (latest control actions)");
    if model.audit.is_empty() {
        ui.weak("none yet");
    }
    for entry in model.audit.iter().rev() {
        ui.horizontal_wrapped(|ui| {
            ui.monospace(entry.time.get(11..19).unwrap_or(&entry.time));
            let who = match (&entry.name, entry.role) {
                (Some(name), Some(role)) => format!("{name} ({role})"),
                _ => "no valid key".to_string(),
            };
            ui.label(who);
            ui.label(&entry.action);
            let status = ui.colored_label(
                if entry.status < 400 {
                    egui::Color32::GRAY
                } else {
                    DEGRADED
                },
                entry.status.to_string(),
            );
            if let Some(reason) = &entry.reason {
                status.on_hover_text(reason);
            }
        });
    }
}

fn alerts(ui: &mut egui::Ui, model: &NodesModel) {
    ui.strong(format!("Alerts ({})", model.alerts.len()));
    egui::ScrollArea::vertical()
        .id_salt("alerts")
        .max_height(ui.available_height())
        .show(ui, |ui| {
            if model.alerts.is_empty() {
                ui.weak("no alerts");
            }
            for alert in model.alerts.iter().rev().take(100) {
                ui.horizontal_wrapped(|ui| {
                    ui.monospace(alert.time.get(11..19).unwrap_or(&alert.time));
                    ui.colored_label(DEGRADED, alert.node_id.as_deref().unwrap_or("master"));
                    ui.label(&alert.message);
                });
            }
        });
}

fn matrix(
    ui: &mut egui::Ui,
    model: &NodesModel,
    ppp: f32,
    layout: &mut NodeViewLayout,
    out: &mut Vec<NodeAction>,
) {
    let cell = egui::vec2(30.0, 22.0);
    let name_width = 130.0;
    egui::ScrollArea::both()
        .id_salt("matrix")
        .max_height(170.0)
        .show(ui, |ui| {
            ui.spacing_mut().item_spacing = egui::vec2(2.0, 2.0);
            ui.horizontal(|ui| {
                ui.add_sized([name_width, cell.y], egui::Label::new("node \\ universe"));
                for u in &model.universes {
                    let text = egui::RichText::new(u.to_string()).monospace();
                    let text = if model.conflicts.contains(u) {
                        text.color(CONFLICT).strong()
                    } else {
                        text
                    };
                    ui.add_sized(cell, egui::Label::new(text));
                }
            });
            // The master's own outputs (read-only).
            ui.horizontal(|ui| {
                ui.add_sized(
                    [name_width, cell.y],
                    egui::Label::new(egui::RichText::new(&model.master_id).color(MASTER)),
                );
                for u in &model.universes {
                    let (rect, response) = ui.allocate_exact_size(cell, egui::Sense::hover());
                    let on = model.master_universes.contains(u);
                    ui.painter()
                        .rect_filled(rect, 3.0, if on { MASTER } else { FREE });
                    response.on_hover_text(if on {
                        format!("the master outputs universe {u} itself")
                    } else {
                        format!("universe {u} is output by a node")
                    });
                }
            });
            for node in &model.nodes {
                ui.horizontal(|ui| {
                    let label = egui::RichText::new(&node.id).color(state_colour(node.state));
                    if ui
                        .add_sized([name_width, cell.y], egui::Button::new(label).frame(false))
                        .clicked()
                    {
                        out.push(NodeAction::Select(node.id.clone()));
                    }
                    for u in &model.universes {
                        let on = node.universes.contains(u);
                        let conflict = on && model.conflicts.contains(u);
                        let (rect, response) =
                            ui.allocate_exact_size(cell, egui::Sense::click());
                        let fill = match (on, conflict) {
                            (true, true) => CONFLICT,
                            (true, false) => ASSIGNED,
                            _ => FREE,
                        };
                        let fill = if response.hovered() {
                            fill.gamma_multiply(1.2)
                        } else {
                            fill
                        };
                        ui.painter().rect_filled(rect, 3.0, fill);
                        if conflict {
                            ui.painter().text(
                                rect.right_center() - egui::vec2(6.0, 0.0),
                                egui::Align2::CENTER_CENTER,
                                "!",
                                egui::FontId::monospace(13.0),
                                egui::Color32::WHITE,
                            );
                        }
                        layout.cells.insert(
                            (node.id.clone(), *u),
                            to_pixels(rect.min + egui::vec2(6.0, cell.y / 2.0), ppp),
                        );
                        let response = response.on_hover_text(if conflict {
                            format!("conflict: universe {u} is assigned to more than one node")
                        } else if on {
                            format!("{} outputs universe {u}; click to unassign", node.id)
                        } else {
                            format!("click to assign universe {u} to {}", node.id)
                        });
                        if response.clicked() {
                            out.push(NodeAction::Assign {
                                node: node.id.clone(),
                                universe: *u,
                                on: !on,
                            });
                        }
                    }
                    if node.needs_relink
                        && ui
                            .small_button("Apply")
                            .on_hover_text("the node gets its new universes when it reconnects: restart its link now")
                            .clicked()
                    {
                        out.push(NodeAction::RestartLink(node.id.clone()));
                    }
                });
            }
        });
    if !model.conflicts.is_empty() {
        let list: Vec<String> = model.conflicts.iter().map(u16::to_string).collect();
        ui.colored_label(
            CONFLICT,
            format!(
                "conflict: universe {} on more than one node",
                list.join(", ")
            ),
        );
    }
}

fn node_details(ui: &mut egui::Ui, model: &NodesModel, out: &mut Vec<NodeAction>) {
    let Some(node) = model.selected.as_deref().and_then(|id| model.node(id)) else {
        ui.weak("no node selected");
        return;
    };
    ui.horizontal(|ui| {
        ui.heading(&node.id);
        ui.colored_label(state_colour(node.state), state_name(node.state));
        if let Some(v) = &node.version {
            ui.weak(format!("v{v}"));
        }
        if let Some(ip) = &node.ip {
            ui.weak(ip);
        }
    });
    ui.label(format!(
        "universes {:?} · heartbeat {} · DMX {:.1} fps · CPU {:.0} % · {:.0} MB · seq {} · tick {} · commands {} done, {} failed, {} waiting",
        node.universes,
        node.heartbeat_age
            .map_or("never".to_string(), |a| format!("{a:.1} s ago")),
        node.metrics.dmx_fps,
        node.metrics.cpu_usage,
        node.metrics.memory_mb,
        node.metrics.seq,
        node.metrics.tick,
        node.executed,
        node.failed,
        node.pending_commands
    ));
    match &node.metrics.clock {
        Some(c) => {
            let us = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{:.0} µs", v / 1e3));
            ui.label(format!(
                "clock: {} · offset {} · drift {} · uncertainty {} · min RTT {} · {} samples, {} steps{}",
                if c.locked { "locked" } else { "acquiring" },
                c.offset_ns
                    .map_or("?".to_string(), |v| format!("{:+.3} ms", v as f64 / 1e6)),
                c.drift_ppm
                    .map_or("?".to_string(), |v| format!("{v:+.2} ppm")),
                us(c.uncertainty_ns),
                us(c.min_rtt_ns.map(|v| v as f64)),
                c.samples,
                c.steps,
                match (c.transport.as_deref(), c.kernel_timestamps) {
                    (Some("websocket"), _) => " · over the WebSocket (UDP blocked)",
                    (_, false) => " · user-space timestamps",
                    _ => "",
                }
            ));
        }
        None => {
            ui.weak("clock: no clock sync (follows the master's 1 Hz sync)");
        }
    }
    if let Some(trust) = &node.metrics.trust {
        // Trust on first use is shown where the operator sees every node.
        if trust.starts_with("PLAINTEXT") {
            ui.colored_label(OFFLINE, format!("link: {trust}"));
        } else {
            ui.label(format!("link: {trust}"));
        }
    }
    if let Some(media) = &node.metrics.media {
        let line = format!("media: {}", media.line());
        if media.ready() {
            ui.label(line);
        } else {
            ui.colored_label(MEDIA_NOT_READY, line);
        }
    }
    if let Some(p) = &node.metrics.playback {
        // One line of media playback (issue 14): per layer clip, frame, late/missed.
        ui.label(format!(
            "media{}: {}",
            if p.armed { "" } else { " (arming)" },
            p.summary()
        ));
    }
    if let Some(reason) = &node.degraded_reason {
        ui.colored_label(DEGRADED, reason);
    }
    ui.horizontal(|ui| {
        if ui
            .button("Restart node")
            .on_hover_text(
                "restart the node's program: it stops cleanly, starts again with the same \
                 settings and comes back online by itself",
            )
            .clicked()
        {
            out.push(NodeAction::RestartNode(node.id.clone()));
        }
        if ui
            .button("Restart link")
            .on_hover_text(
                "drop the node's connection; it reconnects within 5 s and resynchronises",
            )
            .clicked()
        {
            out.push(NodeAction::RestartLink(node.id.clone()));
        }
        if ui
            .button("Test connection")
            .on_hover_text("send a command that changes nothing and time its acknowledgement")
            .clicked()
        {
            out.push(NodeAction::TestConnection(node.id.clone()));
        }
        if ui
            .button("Identify")
            .on_hover_text(format!(
                "flash every fixture of this node's universes at 2 Hz for {IDENTIFY_SECONDS} s"
            ))
            .clicked()
        {
            out.push(NodeAction::Identify(node.id.clone()));
        }
        match model.last_probe.get(&node.id) {
            Some(ProbeResult::Running) => {
                ui.label("testing…");
            }
            Some(ProbeResult::RoundTrip(d)) => {
                ui.colored_label(
                    ONLINE,
                    format!("round trip {:.1} ms", d.as_secs_f64() * 1000.0),
                );
            }
            Some(ProbeResult::Failed(e)) => {
                ui.colored_label(OFFLINE, e);
            }
            None => {}
        }
    });
    let history = model.history.get(&node.id);
    let samples: Vec<Sample> = history
        .map(|h| h.iter().copied().collect())
        .unwrap_or_default();
    let now = model.started.elapsed().as_secs_f64();
    let width = (ui.available_width() - 8.0) / 2.0;
    let height = ((ui.available_height() - 12.0) / 2.0).clamp(50.0, 150.0);
    let graphs: [(&str, &str, SampleField); 4] = [
        ("latency (round trip)", "ms", |s| s.latency_ms),
        ("DMX", "fps", |s| s.dmx_fps),
        ("CPU", "%", |s| s.cpu),
        ("clock offset", "ms", |s| s.offset_ms),
    ];
    for row in graphs.chunks(2) {
        ui.horizontal(|ui| {
            for (title, unit, f) in row {
                let points: Vec<(f64, f64)> = samples
                    .iter()
                    .filter_map(|s| f(s).map(|v| (s.t, v)))
                    .collect();
                graph(ui, egui::vec2(width, height), title, unit, &points, now);
            }
        });
    }
}

/// One figure of a [`Sample`].
type SampleField = fn(&Sample) -> Option<f64>;

/// A line graph of up to the last [`HISTORY_SECONDS`], with the latest value in its title.
fn graph(
    ui: &mut egui::Ui,
    size: egui::Vec2,
    title: &str,
    unit: &str,
    points: &[(f64, f64)],
    now: f64,
) {
    let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 3.0, egui::Color32::from_rgb(24, 24, 30));
    // The last five minutes, or less while there is less history (at least 30 s).
    let oldest = points.first().map_or(now, |(t, _)| *t);
    let span = (now - oldest).clamp(30.0, HISTORY_SECONDS as f64);
    let visible: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(t, _)| *t >= now - span)
        .collect();
    let (lo, hi) = visible
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    let (lo, hi) = if visible.is_empty() {
        (0.0, 1.0)
    } else {
        let lo = lo.min(0.0);
        let hi = if hi - lo < 1e-6 { lo + 1.0 } else { hi };
        (lo, hi + (hi - lo) * 0.1)
    };
    let plot = rect
        .shrink2(egui::vec2(4.0, 16.0))
        .translate(egui::vec2(0.0, 6.0));
    let to_screen = |(t, v): (f64, f64)| {
        egui::pos2(
            plot.max.x - ((now - t) / span) as f32 * plot.width(),
            plot.max.y - ((v - lo) / (hi - lo)) as f32 * plot.height(),
        )
    };
    if lo < 0.0 {
        let y = to_screen((now, 0.0)).y;
        painter.line_segment(
            [egui::pos2(plot.min.x, y), egui::pos2(plot.max.x, y)],
            egui::Stroke::new(1.0, egui::Color32::from_gray(60)),
        );
    }
    let line: Vec<egui::Pos2> = visible.iter().copied().map(to_screen).collect();
    if line.len() >= 2 {
        painter.add(egui::Shape::line(line, egui::Stroke::new(1.5, PENDING)));
    } else if let Some(p) = line.first() {
        painter.circle_filled(*p, 2.5, PENDING);
    }
    let max = visible.iter().map(|(_, v)| *v).fold(f64::NAN, f64::max);
    let latest = visible
        .last()
        .map_or("—".to_string(), |(_, v)| format!("{v:.1} {unit}"));
    painter.text(
        rect.min + egui::vec2(6.0, 3.0),
        egui::Align2::LEFT_TOP,
        if visible.is_empty() {
            format!("{title}: no data yet")
        } else {
            format!("{title}: {latest}   (max {max:.1}, last {span:.0} s)")
        },
        egui::FontId::proportional(12.0),
        egui::Color32::LIGHT_GRAY,
    );
}
