//! The receiver's window: what a crew member sees on a node next to the fixtures, sized for
//! a Steam Deck (1280×800, fullscreen) with touch-sized controls.
//!
//! - **Master connection**: connected (green) with the master's address, or lost (red) with
//!   why and a countdown to the next attempt; how the master is trusted (the pinned
//!   certificate fingerprint, or plaintext).
//! - **Local output**: the 512 slots of every universe this node outputs, live.
//! - **Resources**: CPU and memory of this process, DMX frames per second, engine tick and
//!   frame rate.
//! - **Troubleshooting**: *Ping master* (an HTTP round trip to the master's API, measured)
//!   and *Test pattern* (every fixture at full, stepping red, green, blue, white each second,
//!   through the programmer, so the output shows it and the show's own state is untouched).
//! - **Command log**: link changes, replicated commands and node commands, newest first.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::window::{MonitorSelection, WindowMode};
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};
use rockontrol_dmx::DmxStats;
use rockontrol_engine::{Programmer, ShowClock};
use rockontrol_net::ReceiverNet;
use rockontrol_net::health::{CpuMeter, memory_mb};
use rockontrol_net::registry::RECONNECT_PERIOD;
use rockontrol_show::Attribute;

use crate::UiSystems;
use crate::live::LiveFixtures;
use crate::nodes::{DEGRADED, OFFLINE, ONLINE};

pub(crate) fn plugin(app: &mut App) {
    app.init_resource::<ReceiverView>()
        .init_resource::<ReceiverActions>()
        .init_resource::<ReceiverLayout>()
        .add_systems(Startup, spawn_camera)
        .add_systems(
            Update,
            (apply_receiver_actions, sample_resources, test_pattern)
                .chain()
                .in_set(UiSystems::Actions),
        )
        .add_systems(
            EguiPrimaryContextPass,
            draw_receiver_view.in_set(UiSystems::Panels),
        );
}

fn spawn_camera(mut commands: Commands) {
    // bevy_egui puts its primary context on the first camera.
    commands.spawn(Camera2d);
}

/// What an operator does on a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverAction {
    PingMaster,
    TestPattern(bool),
}

/// Actions queued by widgets and scripts.
#[derive(Resource, Debug, Default)]
pub struct ReceiverActions(pub Vec<ReceiverAction>);

/// The outcome of a ping.
#[derive(Debug, Clone, PartialEq)]
pub enum PingResult {
    Running,
    /// HTTP status and round trip.
    Answered(u16, Duration),
    Failed(String),
}

/// The receiver view's own state: resource figures, the ping in flight, the test pattern.
#[derive(Resource, Debug)]
pub struct ReceiverView {
    pub cpu: f64,
    pub memory_mb: f64,
    pub dmx_fps: f64,
    pub tick_rate: f64,
    pub fps: f64,
    pub ping: Option<PingResult>,
    ping_slot: Arc<Mutex<Option<PingResult>>>,
    pub test_pattern: bool,
    pattern_started: Option<Instant>,
    pattern_step: Option<u64>,
    meter: CpuMeter,
    last_sample: Option<(Instant, u64, u64, u32)>,
    frames: u32,
    styled: bool,
}

impl Default for ReceiverView {
    fn default() -> Self {
        ReceiverView {
            cpu: 0.0,
            memory_mb: 0.0,
            dmx_fps: 0.0,
            tick_rate: 0.0,
            fps: 0.0,
            ping: None,
            ping_slot: Arc::new(Mutex::new(None)),
            test_pattern: false,
            pattern_started: None,
            pattern_step: None,
            meter: CpuMeter::default(),
            last_sample: None,
            frames: 0,
            styled: false,
        }
    }
}

/// Where the view drew things, in physical pixels (for screenshot checks).
#[derive(Resource, Debug, Default, Clone)]
pub struct ReceiverLayout {
    /// Centre of the connection badge.
    pub badge: Option<UVec2>,
}

/// Seconds until the link's next connection attempt, if it is down.
pub fn reconnect_in(net: &ReceiverNet) -> Option<Duration> {
    if net.connected {
        return None;
    }
    let (since, _) = net.link_down.as_ref()?;
    Some(RECONNECT_PERIOD.saturating_sub(since.elapsed()))
}

fn apply_receiver_actions(
    mut actions: ResMut<ReceiverActions>,
    mut view: ResMut<ReceiverView>,
    net: Option<Res<ReceiverNet>>,
    mut programmer: ResMut<Programmer>,
) {
    for action in std::mem::take(&mut actions.0) {
        info!("receiver view: {action:?}");
        match action {
            ReceiverAction::PingMaster => {
                let Some(addr) = net.as_ref().and_then(|n| n.master_endpoint()) else {
                    view.ping = Some(PingResult::Failed("no master address known yet".into()));
                    continue;
                };
                view.ping = Some(PingResult::Running);
                let slot = Arc::clone(&view.ping_slot);
                let spawned = std::thread::Builder::new()
                    .name("ping-master".into())
                    .spawn(move || {
                        let result = ping(&addr);
                        if let Ok(mut s) = slot.lock() {
                            *s = Some(result);
                        }
                    });
                if let Err(e) = spawned {
                    view.ping = Some(PingResult::Failed(format!("cannot start the ping: {e}")));
                }
            }
            ReceiverAction::TestPattern(on) => {
                view.test_pattern = on;
                view.pattern_started = on.then(Instant::now);
                view.pattern_step = None;
                if !on {
                    programmer.clear();
                }
            }
        }
    }
    let done = view.ping_slot.lock().ok().and_then(|mut s| s.take());
    if let Some(result) = done {
        view.ping = Some(result);
    }
}

/// `GET /api/openapi.json` on the master (no key needed): TCP connect, request, answer.
fn ping(addr: &rockontrol_net::client::Endpoint) -> PingResult {
    let start = Instant::now();
    match rockontrol_net::client::http_request_blocking(
        addr,
        "GET",
        "/api/openapi.json",
        None,
        None,
    ) {
        Ok((status, _)) => PingResult::Answered(status, start.elapsed()),
        Err(e) => PingResult::Failed(e.to_string()),
    }
}

fn sample_resources(
    mut view: ResMut<ReceiverView>,
    clock: Res<ShowClock>,
    stats: Option<Res<DmxStats>>,
) {
    view.frames += 1;
    let now = Instant::now();
    let frames_out = stats.map_or(0, |s| s.frames);
    let Some((at, tick, out, frames)) = view.last_sample else {
        view.last_sample = Some((now, clock.next_tick, frames_out, view.frames));
        return;
    };
    let secs = (now - at).as_secs_f64();
    if secs < 1.0 {
        return;
    }
    view.tick_rate = (clock.next_tick - tick) as f64 / secs;
    view.dmx_fps = frames_out.saturating_sub(out) as f64 / secs;
    view.fps = f64::from(view.frames - frames) / secs;
    view.cpu = view.meter.sample();
    view.memory_mb = memory_mb(None).unwrap_or(0.0);
    view.last_sample = Some((now, clock.next_tick, frames_out, view.frames));
}

/// Colour of test-pattern step `n`: red, green, blue, white.
const PATTERN: [Attribute; 4] = [
    Attribute::Red,
    Attribute::Green,
    Attribute::Blue,
    Attribute::White,
];

fn test_pattern(
    mut view: ResMut<ReceiverView>,
    live: Res<LiveFixtures>,
    mut programmer: ResMut<Programmer>,
) {
    let Some(started) = view.pattern_started.filter(|_| view.test_pattern) else {
        return;
    };
    let step = started.elapsed().as_secs();
    if view.pattern_step == Some(step) || live.fixtures.is_empty() {
        return;
    }
    view.pattern_step = Some(step);
    let colour = &PATTERN[(step % 4) as usize];
    for fixture in &live.fixtures {
        if fixture.has(&Attribute::Intensity) {
            programmer.set(fixture.id, Attribute::Intensity, 1.0);
        }
        for attribute in &PATTERN {
            if fixture.has(attribute) {
                let level = if attribute == colour { 1.0 } else { 0.0 };
                programmer.set(fixture.id, attribute.clone(), level);
            }
        }
    }
}

/// Touch-sized controls and larger text.
fn touch_style(ctx: &egui::Context) {
    ctx.all_styles_mut(|style| {
        style.spacing.interact_size = egui::vec2(64.0, 44.0);
        style.spacing.button_padding = egui::vec2(18.0, 12.0);
        style.spacing.item_spacing = egui::vec2(12.0, 10.0);
        for (text_style, size) in [
            (egui::TextStyle::Body, 18.0),
            (egui::TextStyle::Button, 20.0),
            (egui::TextStyle::Heading, 26.0),
            (egui::TextStyle::Monospace, 15.0),
            (egui::TextStyle::Small, 14.0),
        ] {
            if let Some(font) = style.text_styles.get_mut(&text_style) {
                font.size = size;
            }
        }
    });
}

fn big_button(ui: &mut egui::Ui, text: &str) -> egui::Response {
    ui.add(egui::Button::new(text).min_size(egui::vec2(190.0, 56.0)))
}

#[expect(
    clippy::too_many_arguments,
    reason = "one system draws the whole view from the resources it shows"
)]
fn draw_receiver_view(
    mut contexts: EguiContexts,
    mut view: ResMut<ReceiverView>,
    net: Option<Res<ReceiverNet>>,
    live: Res<LiveFixtures>,
    clock: Res<ShowClock>,
    mut actions: ResMut<ReceiverActions>,
    mut layout: ResMut<ReceiverLayout>,
    mut window: Single<&mut Window, With<bevy::window::PrimaryWindow>>,
) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    if !view.styled {
        touch_style(&ctx);
        view.styled = true;
    }
    // F11: fullscreen (a Steam Deck's screen is the window's 1280×800).
    if ctx.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::F11)) {
        window.mode = match window.mode {
            WindowMode::Windowed => WindowMode::BorderlessFullscreen(MonitorSelection::Current),
            _ => WindowMode::Windowed,
        };
    }
    let ppp = ctx.pixels_per_point();
    let mut out = Vec::new();
    let node_id = net
        .as_ref()
        .map_or("receiver".to_string(), |n| n.node_id.clone());
    let title = format!("RocKontrol receiver — {node_id}");
    if window.title != title {
        window.title = title;
    }
    let mut root = egui::Ui::new(
        ctx.clone(),
        "receiver-root".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    egui::Panel::top("receiver-status").show(&mut root, |ui| {
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let (colour, text) = match net.as_deref() {
                Some(n) if n.connected => (
                    ONLINE,
                    format!(
                        "Connected to master {}",
                        n.master_addr.map(|a| a.to_string()).unwrap_or_default()
                    ),
                ),
                Some(n) => match (&n.link_down, reconnect_in(n)) {
                    (Some((_, why)), Some(d)) if !d.is_zero() => (
                        OFFLINE,
                        format!("Master lost: {why} — reconnecting in {} s", d.as_secs() + 1),
                    ),
                    _ => (DEGRADED, "Connecting to the master…".to_string()),
                },
                None => (OFFLINE, "no network link configured".to_string()),
            };
            let (rect, _) = ui.allocate_exact_size(egui::vec2(36.0, 36.0), egui::Sense::hover());
            ui.painter().circle_filled(rect.center(), 16.0, colour);
            layout.badge = Some(UVec2::new(
                (rect.center().x * ppp).round() as u32,
                (rect.center().y * ppp).round() as u32,
            ));
            ui.vertical(|ui| {
                ui.heading(&text);
                if let Some(n) = net.as_deref() {
                    ui.label(format!(
                        "node {} · universes {:?} · show {} · replication seq {} · tick {}",
                        n.node_id,
                        n.assigned,
                        n.master_show
                            .as_deref()
                            .map_or("none", |h| h.get(..12).unwrap_or(h)),
                        n.replica.seq.unwrap_or(0),
                        clock.next_tick
                    ));
                    ui.label(n.trust_line());
                }
            });
        });
        ui.add_space(6.0);
    });
    egui::Panel::right("receiver-side")
        .resizable(false)
        .exact_size(440.0)
        .show(&mut root, |ui| {
            ui.heading("Resources");
            egui::Grid::new("resources").num_columns(2).show(ui, |ui| {
                for (name, value) in [
                    ("CPU", format!("{:.0} % of a core", view.cpu)),
                    ("Memory", format!("{:.0} MB", view.memory_mb)),
                    ("DMX out", format!("{:.1} frames/s", view.dmx_fps)),
                    ("Engine tick", format!("{:.1} Hz", view.tick_rate)),
                    ("Display", format!("{:.0} fps", view.fps)),
                    (
                        "Commands",
                        format!(
                            "{} executed",
                            net.as_deref().map_or(0, |n| n.commands_executed)
                        ),
                    ),
                ] {
                    ui.label(name);
                    ui.monospace(value);
                    ui.end_row();
                }
            });
            ui.separator();
            ui.heading("Troubleshooting");
            ui.horizontal(|ui| {
                if big_button(ui, "Ping master").clicked() {
                    out.push(ReceiverAction::PingMaster);
                }
                let label = if view.test_pattern {
                    "Stop test pattern"
                } else {
                    "Test pattern"
                };
                if big_button(ui, label)
                    .on_hover_text("every fixture at full, red → green → blue → white")
                    .clicked()
                {
                    out.push(ReceiverAction::TestPattern(!view.test_pattern));
                }
            });
            match &view.ping {
                Some(PingResult::Running) => {
                    ui.label("pinging…");
                }
                Some(PingResult::Answered(status, d)) => {
                    ui.colored_label(
                        ONLINE,
                        format!(
                            "master answered HTTP {status} in {:.1} ms",
                            d.as_secs_f64() * 1000.0
                        ),
                    );
                }
                Some(PingResult::Failed(e)) => {
                    ui.colored_label(OFFLINE, format!("ping failed: {e}"));
                }
                None => {}
            }
            if view.test_pattern {
                ui.colored_label(DEGRADED, "test pattern on: the output is not the show");
            }
            ui.separator();
            ui.heading("Command log");
            egui::ScrollArea::vertical()
                .id_salt("log")
                .show(ui, |ui| match net.as_deref() {
                    Some(n) if !n.history.is_empty() => {
                        for entry in n.history.iter().rev() {
                            ui.horizontal_wrapped(|ui| {
                                ui.monospace(format!("{:>7}", entry.tick));
                                ui.label(&entry.text);
                            });
                        }
                    }
                    _ => {
                        ui.weak("nothing yet");
                    }
                });
        });
    egui::CentralPanel::default().show(&mut root, |ui| {
        ui.heading("Local output");
        let universes: Vec<u16> = match net.as_deref() {
            Some(n) => n.assigned.clone(),
            None => live.universes.clone(),
        };
        if universes.is_empty() {
            ui.weak("no universes assigned");
        }
        egui::ScrollArea::vertical()
            .id_salt("output")
            .show(ui, |ui| {
                for u in universes {
                    let lit = live
                        .universe_slots(u)
                        .map_or(0, |s| s.iter().filter(|v| **v > 0).count());
                    ui.label(format!("Universe {u} · {lit} of 512 slots above 0"));
                    universe_grid(ui, live.universe_slots(u));
                    ui.add_space(8.0);
                }
            });
    });
    actions.0.extend(out);
    Ok(())
}

/// 32 × 16 cells, one per slot, brightness = value.
fn universe_grid(ui: &mut egui::Ui, slots: Option<&[u8]>) {
    let cols = 32;
    let width = ui.available_width().min(900.0);
    let cell = egui::vec2((width / cols as f32).floor(), 20.0);
    let (rect, response) = ui.allocate_exact_size(
        egui::vec2(cell.x * cols as f32, cell.y * 16.0),
        egui::Sense::hover(),
    );
    let painter = ui.painter_at(rect);
    let Some(slots) = slots else {
        painter.rect_filled(rect, 0.0, egui::Color32::from_gray(20));
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "not in the loaded show",
            egui::FontId::proportional(16.0),
            egui::Color32::GRAY,
        );
        return;
    };
    for (slot, value) in slots.iter().enumerate() {
        let min =
            rect.min + egui::vec2((slot % cols) as f32 * cell.x, (slot / cols) as f32 * cell.y);
        let v = f32::from(*value) / 255.0;
        painter.rect_filled(
            egui::Rect::from_min_size(min, cell - egui::vec2(1.0, 1.0)),
            0.0,
            egui::Rgba::from_rgb(0.02 + 0.98 * v, 0.02 + 0.75 * v, 0.03 + 0.2 * v),
        );
    }
    if let Some(pos) = response.hover_pos() {
        let col = ((pos.x - rect.min.x) / cell.x) as usize;
        let row = ((pos.y - rect.min.y) / cell.y) as usize;
        if let Some(v) = slots.get(row * cols + col) {
            response.on_hover_text(format!("slot {}: {v}", row * cols + col + 1));
        }
    }
}
