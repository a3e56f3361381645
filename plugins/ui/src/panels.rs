//! The egui panels around the stage preview.
//!
//! - top: show name (`*` = unsaved), Save / Undo / Redo, tick rate and frame rate, status;
//! - left: fixtures and groups, the programmer (intensity fader, colour picker, pan/tilt pad,
//!   every other attribute), highlight / clear, record;
//! - right: playbacks (GO, BACK, GOTO, release, master fader), grand master, blackout;
//! - bottom: the cue table of a list (editable) or a universe's 512 live slots.
//!
//! The centre is left free for the stage ([`StageViewport`]). Widgets only push
//! [`UiAction`]s.

use std::collections::BTreeSet;
use std::time::Duration;

use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};
use rockontrol_engine::{
    Command, PatchedFixture, Programmer, ShowClock, ShowCueList, ShowEngine, ShowOrder,
    ShowSettings,
};
use rockontrol_show::{Attribute, Cue, CueNumber, Follow};
use rockontrol_timecode::{LockState, TimecodeStatus};

use crate::UiSystems;
use crate::actions::{RecordMode, UiAction, UiActions, UiState};
use crate::live::{FixtureView, LiveFixtures};
use crate::nodes::{PageArea, UiPage};
use crate::preview::{StageCamera, StageViewport, stage_position};

pub(crate) fn plugin(app: &mut App) {
    app.init_resource::<PanelState>()
        .init_resource::<PageArea>()
        .add_systems(Update, measure_rates)
        .add_systems(
            EguiPrimaryContextPass,
            draw_panels.in_set(UiSystems::Panels),
        );
}

/// Which bottom view is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BottomView {
    #[default]
    Cues,
    Universe,
}

/// Panel-local state (text being typed, which list or universe is shown) and rates.
#[derive(Resource, Debug)]
pub struct PanelState {
    pub record_list: String,
    pub record_cue: String,
    pub table_list: String,
    pub bottom: BottomView,
    pub universe: u16,
    pub goto: Vec<String>,
    /// Measured engine ticks per second (wall clock), over the last second.
    pub tick_rate: f64,
    /// Measured frames per second over the last second.
    pub fps: f64,
    window_start: Duration,
    window_tick: u64,
    window_frames: u32,
}

impl Default for PanelState {
    fn default() -> Self {
        PanelState {
            record_list: String::new(),
            record_cue: String::new(),
            table_list: String::new(),
            bottom: BottomView::Cues,
            universe: 0,
            goto: Vec::new(),
            tick_rate: 0.0,
            fps: 0.0,
            window_start: Duration::ZERO,
            window_tick: 0,
            window_frames: 0,
        }
    }
}

fn measure_rates(time: Res<Time<Real>>, clock: Res<ShowClock>, mut panel: ResMut<PanelState>) {
    let now = time.elapsed();
    panel.window_frames += 1;
    let span = now.saturating_sub(panel.window_start);
    if span >= Duration::from_secs(1) {
        let secs = span.as_secs_f64();
        // A chased show clock may step back.
        panel.tick_rate = clock.next_tick.saturating_sub(panel.window_tick) as f64 / secs;
        panel.fps = f64::from(panel.window_frames) / secs;
        panel.window_start = now;
        panel.window_tick = clock.next_tick;
        panel.window_frames = 0;
    }
}

const COLOUR_ATTRIBUTES: [Attribute; 9] = [
    Attribute::Red,
    Attribute::Green,
    Attribute::Blue,
    Attribute::White,
    Attribute::Amber,
    Attribute::Uv,
    Attribute::Cyan,
    Attribute::Magenta,
    Attribute::Yellow,
];

/// Everything the panels read, gathered once per frame.
struct View<'a> {
    state: &'a UiState,
    live: &'a LiveFixtures,
    programmer: &'a Programmer,
    engine: &'a ShowEngine,
    settings: Option<&'a ShowSettings>,
    lists: Vec<&'a ShowCueList>,
    show_name: String,
    timecode: Option<&'a TimecodeStatus>,
}

impl View<'_> {
    /// The programmer's level of an attribute on the first selected fixture that has it, or
    /// its live output level; and whether the programmer holds it.
    fn level(&self, attribute: &Attribute) -> Option<(f32, bool)> {
        self.state.selection.iter().find_map(|id| {
            let fixture = self.live.fixture(*id)?;
            let live = fixture.live(attribute)?;
            Some(match self.programmer.get(*id, attribute) {
                Some(v) => (v, true),
                None => (live, false),
            })
        })
    }

    fn selected(&self) -> impl Iterator<Item = &FixtureView> {
        self.state
            .selection
            .iter()
            .filter_map(|id| self.live.fixture(*id))
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one system draws every panel from the resources it shows"
)]
pub(crate) fn draw_panels(
    mut contexts: EguiContexts,
    (page, mut page_area, timecode): (
        Option<ResMut<UiPage>>,
        ResMut<PageArea>,
        Option<Res<TimecodeStatus>>,
    ),
    mut actions: ResMut<UiActions>,
    state: Res<UiState>,
    live: Res<LiveFixtures>,
    programmer: Res<Programmer>,
    engine: Res<ShowEngine>,
    settings: Option<Res<ShowSettings>>,
    lists: Query<(&ShowCueList, &ShowOrder)>,
    fixtures: Query<&PatchedFixture>,
    mut panel: ResMut<PanelState>,
    mut viewport: ResMut<StageViewport>,
    mut window: Single<&mut Window, With<PrimaryWindow>>,
    camera: Single<(&Camera, &GlobalTransform), With<StageCamera>>,
) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    let mut lists: Vec<(&ShowCueList, &ShowOrder)> = lists.iter().collect();
    lists.sort_by_key(|(_, order)| **order);
    let lists: Vec<&ShowCueList> = lists.into_iter().map(|(l, _)| l).collect();
    let view = View {
        state: &state,
        live: &live,
        programmer: &programmer,
        engine: &engine,
        settings: settings.as_deref(),
        lists,
        show_name: settings
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default(),
        timecode: timecode.as_deref(),
    };
    let mut out: Vec<UiAction> = Vec::new();
    if panel.record_list.is_empty()
        && let Some(first) = view.lists.first()
    {
        panel.record_list = first.0.name.clone();
    }
    if panel.table_list.is_empty() {
        panel.table_list = panel.record_list.clone();
    }
    if panel.universe == 0
        && let Some(u) = live.universes.first()
    {
        panel.universe = *u;
    }

    // Keyboard shortcuts.
    ctx.input_mut(|i| {
        use egui::{Key, Modifiers};
        if i.consume_key(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z) {
            out.push(UiAction::Redo);
        }
        if i.consume_key(Modifiers::COMMAND, Key::Z) {
            out.push(UiAction::Undo);
        }
        if i.consume_key(Modifiers::COMMAND, Key::S) {
            out.push(UiAction::Save);
        }
    });

    let title = format!(
        "RocKontrol — {}{}",
        view.show_name,
        if state.dirty { " *" } else { "" }
    );
    if window.title != title {
        window.title = title;
    }

    let mut root = egui::Ui::new(
        ctx.clone(),
        "root".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );

    let mut page = page;
    egui::Panel::top("top").show(&mut root, |ui| {
        ui.horizontal(|ui| {
            // A master has two pages: programming and its nodes.
            if let Some(page) = page.as_deref_mut() {
                ui.selectable_value(page, UiPage::Programmer, "Programmer");
                ui.selectable_value(page, UiPage::Nodes, "Nodes");
                ui.separator();
            }
            top_bar(ui, &view, &panel, &mut out);
        });
    });
    page_area.0 = Some(root.available_rect_before_wrap());
    if page.as_deref().is_some_and(|p| *p != UiPage::Programmer) {
        actions.0.extend(out);
        return Ok(());
    }
    egui::Panel::left("left")
        .resizable(false)
        .exact_size(310.0)
        .show(&mut root, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                fixture_list(ui, &view, &mut out);
                ui.separator();
                programmer_panel(ui, &view, &mut panel, &mut out);
            });
        });
    egui::Panel::right("right")
        .resizable(false)
        .exact_size(250.0)
        .show(&mut root, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                playback_panel(ui, &view, &mut panel, &mut out);
            });
        });
    egui::Panel::bottom("bottom")
        .resizable(false)
        .exact_size(230.0)
        .show(&mut root, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut panel.bottom, BottomView::Cues, "Cues");
                ui.selectable_value(&mut panel.bottom, BottomView::Universe, "Universe");
            });
            ui.separator();
            match panel.bottom {
                BottomView::Cues => cue_table(ui, &view, &mut panel, &mut out),
                BottomView::Universe => universe_view(ui, &view, &mut panel),
            }
        });

    // The centre is the stage.
    let free = root.available_rect_before_wrap();
    let stage = Rect::new(free.min.x, free.min.y, free.max.x, free.max.y);
    if viewport.0 != stage {
        viewport.0 = stage;
    }
    stage_labels(&root, &view, &camera, free, &fixtures);

    actions.0.extend(out);
    Ok(())
}

fn top_bar(ui: &mut egui::Ui, view: &View, panel: &PanelState, out: &mut Vec<UiAction>) {
    ui.horizontal(|ui| {
        ui.heading(format!(
            "{}{}",
            view.show_name,
            if view.state.dirty { " *" } else { "" }
        ))
        .on_hover_text(if view.state.dirty {
            "unsaved changes"
        } else {
            "saved"
        });
        if ui
            .add_enabled(view.state.show_path.is_some(), egui::Button::new("Save"))
            .on_hover_text("Ctrl+S: write the show file (RON)")
            .clicked()
        {
            out.push(UiAction::Save);
        }
        if ui
            .add_enabled(view.state.can_undo(), egui::Button::new("Undo"))
            .on_hover_text("Ctrl+Z")
            .clicked()
        {
            out.push(UiAction::Undo);
        }
        if ui
            .add_enabled(view.state.can_redo(), egui::Button::new("Redo"))
            .on_hover_text("Ctrl+Shift+Z")
            .clicked()
        {
            out.push(UiAction::Redo);
        }
        ui.separator();
        let rate = view
            .engine
            .engine
            .as_ref()
            .map_or(0, |e| e.show().tick_rate);
        ui.monospace(format!(
            "tick {:>7} | DMX {:>4.1}/{} Hz | {:>4.1} fps",
            view.live.tick, panel.tick_rate, rate, panel.fps
        ));
        if let Some(tc) = view.timecode.filter(|t| !t.label.is_empty()) {
            ui.separator();
            timecode_label(ui, tc);
        }
        ui.separator();
        if let Some(error) = &view.engine.last_error {
            ui.colored_label(egui::Color32::LIGHT_RED, error.lines().next().unwrap_or(""));
        } else {
            ui.label(&view.state.status);
        }
    });
}

/// `TC 01:00:10:05 @25 · artnet locked · ♩ 12 (120 BPM)`: the show's timecode, the chase's
/// lock (green locked, yellow locking/freewheel, red lost) and the beat.
fn timecode_label(ui: &mut egui::Ui, tc: &TimecodeStatus) {
    ui.monospace(format!("TC {} @{}", tc.label, tc.rate));
    if let Some(source) = &tc.chasing {
        let colour = match tc.lock {
            LockState::Locked => egui::Color32::LIGHT_GREEN,
            LockState::Lost | LockState::Idle => egui::Color32::LIGHT_RED,
            LockState::Locking | LockState::Freewheel => egui::Color32::YELLOW,
        };
        ui.colored_label(colour, format!("{source} {:?}", tc.lock).to_lowercase())
            .on_hover_text(format!("chase error {:+.1} ms", tc.error_ms));
    }
    if let (Some((beat, _)), Some(bpm)) = (tc.beat, tc.bpm) {
        ui.monospace(format!("beat {beat} ({bpm:.1} BPM)"));
    }
}

fn fixture_list(ui: &mut egui::Ui, view: &View, out: &mut Vec<UiAction>) {
    ui.strong("Groups");
    ui.horizontal_wrapped(|ui| {
        for group in view.settings.map(|s| s.groups.as_slice()).unwrap_or(&[]) {
            let all: BTreeSet<u32> = group.fixtures.iter().copied().collect();
            let selected = !all.is_empty() && all == view.state.selection;
            if ui.selectable_label(selected, &group.name).clicked() {
                out.push(UiAction::SelectGroup(group.name.clone()));
            }
        }
    });
    ui.strong("Fixtures");
    egui::ScrollArea::vertical()
        .id_salt("fixtures")
        .max_height(190.0)
        .show(ui, |ui| {
            for fixture in &view.live.fixtures {
                let selected = view.state.selection.contains(&fixture.id);
                let [r, g, b] = fixture.output_rgb();
                ui.horizontal(|ui| {
                    let (rect, _) =
                        ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                    ui.painter()
                        .rect_filled(rect, 2.0, egui::Rgba::from_rgb(r, g, b));
                    let text = format!(
                        "{} {}  ({}.{})",
                        fixture.id, fixture.name, fixture.universe, fixture.address
                    );
                    let response = ui.selectable_label(selected, text);
                    if response.clicked() {
                        let add = ui.input(|i| i.modifiers.shift || i.modifiers.command);
                        if add && selected {
                            let rest: Vec<u32> = view
                                .state
                                .selection
                                .iter()
                                .copied()
                                .filter(|id| *id != fixture.id)
                                .collect();
                            out.push(UiAction::Select {
                                fixtures: rest,
                                add: false,
                            });
                        } else {
                            out.push(UiAction::Select {
                                fixtures: vec![fixture.id],
                                add,
                            });
                        }
                    }
                });
            }
        });
}

fn programmer_panel(
    ui: &mut egui::Ui,
    view: &View,
    panel: &mut PanelState,
    out: &mut Vec<UiAction>,
) {
    ui.horizontal(|ui| {
        ui.strong("Programmer");
        let highlighted = !view.programmer.highlighted().is_empty();
        if ui.selectable_label(highlighted, "Highlight").clicked() {
            out.push(UiAction::Highlight(!highlighted));
        }
        if ui.button("Clear").clicked() {
            out.push(UiAction::ClearProgrammer);
        }
    });
    let selected: Vec<&FixtureView> = view.selected().collect();
    if selected.is_empty() {
        ui.weak("Select fixtures on the stage or in the list.");
    } else {
        let ids: Vec<String> = selected.iter().map(|f| f.id.to_string()).collect();
        ui.label(format!("{} selected: {}", selected.len(), ids.join(", ")));
        let mut attributes: BTreeSet<Attribute> = BTreeSet::new();
        for f in &selected {
            attributes.extend(f.channels.iter().map(|c| c.attribute.clone()));
        }
        ui.horizontal(|ui| {
            if attributes.contains(&Attribute::Intensity) {
                ui.vertical(|ui| {
                    attribute_fader(ui, view, &Attribute::Intensity, out);
                });
            }
            ui.vertical(|ui| {
                colour_controls(ui, view, &attributes, out);
            });
        });
        if attributes.contains(&Attribute::Pan) || attributes.contains(&Attribute::Tilt) {
            pan_tilt_pad(ui, view, out);
        }
        for attribute in &attributes {
            if matches!(
                attribute,
                Attribute::Intensity | Attribute::Pan | Attribute::Tilt
            ) || COLOUR_ATTRIBUTES.contains(attribute)
            {
                continue;
            }
            attribute_slider(ui, view, attribute, out);
        }
    }
    ui.separator();
    ui.strong("Record");
    ui.horizontal(|ui| {
        egui::ComboBox::from_id_salt("record list")
            .selected_text(panel.record_list.clone())
            .width(90.0)
            .show_ui(ui, |ui| {
                for list in &view.lists {
                    ui.selectable_value(&mut panel.record_list, list.0.name.clone(), &list.0.name);
                }
            });
        ui.label("cue");
        ui.add(
            egui::TextEdit::singleline(&mut panel.record_cue)
                .desired_width(46.0)
                .hint_text("next"),
        );
    });
    let number = CueNumber::parse(&panel.record_cue);
    let typed_ok = panel.record_cue.trim().is_empty() || number.is_some();
    ui.horizontal(|ui| {
        for (label, mode, hint) in [
            (
                "Record",
                RecordMode::New,
                "a new cue (next number if empty)",
            ),
            (
                "Update",
                RecordMode::Update,
                "merge the programmer into the cue",
            ),
            (
                "Replace",
                RecordMode::Replace,
                "replace the cue's values with the programmer",
            ),
        ] {
            if ui
                .add_enabled(typed_ok, egui::Button::new(label))
                .on_hover_text(hint)
                .clicked()
            {
                out.push(UiAction::Record {
                    list: panel.record_list.clone(),
                    cue: number,
                    mode,
                });
            }
        }
    });
}

fn attribute_label(ui: &mut egui::Ui, attribute: &Attribute, held: bool, out: &mut Vec<UiAction>) {
    let text = egui::RichText::new(attribute.name());
    let text = if held {
        text.color(egui::Color32::from_rgb(255, 210, 60))
    } else {
        text
    };
    if ui
        .add(egui::Label::new(text).sense(egui::Sense::click()))
        .on_hover_text("yellow: held by the programmer; right-click releases it")
        .secondary_clicked()
    {
        out.push(UiAction::Release(attribute.clone()));
    }
}

fn attribute_fader(ui: &mut egui::Ui, view: &View, attribute: &Attribute, out: &mut Vec<UiAction>) {
    let (mut level, held) = view.level(attribute).unwrap_or((0.0, false));
    attribute_label(ui, attribute, held, out);
    let response = ui.add(
        egui::Slider::new(&mut level, 0.0..=1.0)
            .vertical()
            .show_value(false),
    );
    ui.monospace(format!("{:>3.0}%", level * 100.0));
    if response.changed() {
        out.push(UiAction::Set {
            attribute: attribute.clone(),
            level,
        });
    }
}

fn attribute_slider(
    ui: &mut egui::Ui,
    view: &View,
    attribute: &Attribute,
    out: &mut Vec<UiAction>,
) {
    let (mut level, held) = view.level(attribute).unwrap_or((0.0, false));
    let bits = view
        .selected()
        .find_map(|f| f.channel(attribute).map(|c| c.bits()))
        .unwrap_or(8);
    ui.horizontal(|ui| {
        ui.allocate_ui(egui::vec2(92.0, 16.0), |ui| {
            ui.set_min_width(92.0);
            attribute_label(ui, attribute, held, out);
        });
        let max = if bits >= 16 { 65535.0 } else { 255.0 };
        let mut dmx = (level * max).round();
        let response = ui.add(
            egui::Slider::new(&mut dmx, 0.0..=max)
                .step_by(1.0)
                .text(if bits >= 16 { "16b" } else { "" }),
        );
        if response.changed() {
            level = dmx / max;
            out.push(UiAction::Set {
                attribute: attribute.clone(),
                level,
            });
        }
    });
}

fn colour_controls(
    ui: &mut egui::Ui,
    view: &View,
    attributes: &BTreeSet<Attribute>,
    out: &mut Vec<UiAction>,
) {
    let has = |a: &Attribute| attributes.contains(a);
    let rgb_fixture = has(&Attribute::Red) && has(&Attribute::Green) && has(&Attribute::Blue);
    let cmy_fixture = has(&Attribute::Cyan) && has(&Attribute::Magenta) && has(&Attribute::Yellow);
    let level = |a: &Attribute| view.level(a).map_or(0.0, |(v, _)| v);
    if rgb_fixture || cmy_fixture {
        let mut rgb = if rgb_fixture {
            [
                level(&Attribute::Red),
                level(&Attribute::Green),
                level(&Attribute::Blue),
            ]
        } else {
            [
                1.0 - level(&Attribute::Cyan),
                1.0 - level(&Attribute::Magenta),
                1.0 - level(&Attribute::Yellow),
            ]
        };
        let before = rgb;
        ui.horizontal(|ui| {
            ui.label("Colour");
            egui::color_picker::color_edit_button_rgb(ui, &mut rgb);
        });
        let attrs = if rgb_fixture {
            [Attribute::Red, Attribute::Green, Attribute::Blue]
        } else {
            [Attribute::Cyan, Attribute::Magenta, Attribute::Yellow]
        };
        for i in 0..3 {
            if (rgb[i] - before[i]).abs() > 1e-6 {
                let v = if rgb_fixture { rgb[i] } else { 1.0 - rgb[i] };
                out.push(UiAction::Set {
                    attribute: attrs[i].clone(),
                    level: v,
                });
            }
        }
        ui.horizontal(|ui| {
            for (label, colour) in [
                ("R", [1.0, 0.0, 0.0]),
                ("G", [0.0, 1.0, 0.0]),
                ("B", [0.0, 0.0, 1.0]),
                ("W", [1.0, 1.0, 1.0]),
            ] {
                if ui
                    .small_button(label)
                    .on_hover_text("colour preset")
                    .clicked()
                {
                    for i in 0..3 {
                        let v: f32 = if rgb_fixture {
                            colour[i]
                        } else {
                            1.0 - colour[i]
                        };
                        out.push(UiAction::Set {
                            attribute: attrs[i].clone(),
                            level: v,
                        });
                    }
                    if has(&Attribute::White) {
                        out.push(UiAction::Set {
                            attribute: Attribute::White,
                            level: 0.0,
                        });
                    }
                }
            }
        });
    }
    for attribute in &COLOUR_ATTRIBUTES {
        if has(attribute) {
            attribute_slider(ui, view, attribute, out);
        }
    }
}

fn pan_tilt_pad(ui: &mut egui::Ui, view: &View, out: &mut Vec<UiAction>) {
    let (mut pan, pan_held) = view.level(&Attribute::Pan).unwrap_or((0.5, false));
    let (mut tilt, tilt_held) = view.level(&Attribute::Tilt).unwrap_or((0.5, false));
    ui.horizontal(|ui| {
        let size = egui::vec2(130.0, 130.0);
        let (rect, response) = ui.allocate_exact_size(size, egui::Sense::click_and_drag());
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 4.0, egui::Color32::from_gray(28));
        painter.line_segment(
            [rect.center_top(), rect.center_bottom()],
            egui::Stroke::new(1.0, egui::Color32::from_gray(60)),
        );
        painter.line_segment(
            [rect.left_center(), rect.right_center()],
            egui::Stroke::new(1.0, egui::Color32::from_gray(60)),
        );
        if let Some(pos) = response.interact_pointer_pos()
            && (response.dragged() || response.clicked())
        {
            pan = ((pos.x - rect.left()) / rect.width()).clamp(0.0, 1.0);
            tilt = (1.0 - (pos.y - rect.top()) / rect.height()).clamp(0.0, 1.0);
            // 16-bit steps: what goes out on the wire.
            pan = (pan * 65535.0).round() / 65535.0;
            tilt = (tilt * 65535.0).round() / 65535.0;
            out.push(UiAction::Set {
                attribute: Attribute::Pan,
                level: pan,
            });
            out.push(UiAction::Set {
                attribute: Attribute::Tilt,
                level: tilt,
            });
        }
        let dot = egui::pos2(
            rect.left() + pan * rect.width(),
            rect.top() + (1.0 - tilt) * rect.height(),
        );
        let held = pan_held || tilt_held;
        painter.circle_filled(
            dot,
            5.0,
            if held {
                egui::Color32::from_rgb(255, 210, 60)
            } else {
                egui::Color32::LIGHT_GRAY
            },
        );
        ui.vertical(|ui| {
            ui.label("Pan / Tilt");
            for (attribute, value) in [(Attribute::Pan, pan), (Attribute::Tilt, tilt)] {
                let mut raw = (value * 65535.0).round() as u32;
                ui.horizontal(|ui| {
                    ui.label(if attribute == Attribute::Pan {
                        "P"
                    } else {
                        "T"
                    });
                    if ui
                        .add(egui::DragValue::new(&mut raw).range(0..=65535).speed(16.0))
                        .on_hover_text("16-bit DMX value")
                        .changed()
                    {
                        out.push(UiAction::Set {
                            attribute: attribute.clone(),
                            level: raw as f32 / 65535.0,
                        });
                    }
                });
            }
            if ui.small_button("Centre").clicked() {
                for attribute in [Attribute::Pan, Attribute::Tilt] {
                    out.push(UiAction::Set {
                        attribute,
                        level: 32768.0 / 65535.0,
                    });
                }
            }
        });
    });
}

fn playback_panel(ui: &mut egui::Ui, view: &View, panel: &mut PanelState, out: &mut Vec<UiAction>) {
    ui.strong("Playbacks");
    let (Some(fade), Some(state)) = (&view.engine.engine, &view.engine.state) else {
        ui.weak("no show running");
        return;
    };
    let show = fade.show();
    panel.goto.resize(show.playbacks.len(), String::new());
    for (index, (pb, run)) in show.playbacks.iter().zip(&state.playbacks).enumerate() {
        let list = &show.lists[pb.list];
        ui.group(|ui| {
            ui.horizontal(|ui| {
                ui.strong(&pb.name);
                match run.cue.and_then(|c| list.cues.get(c)) {
                    Some(cue) => ui.label(format!("cue {} {}", cue.number, cue.label)),
                    None => ui.weak("off"),
                };
            });
            ui.horizontal(|ui| {
                let name = pb.name.clone();
                if ui.button("GO").clicked() {
                    out.push(UiAction::Engine(Command::Go {
                        playback: name.clone(),
                        fade: None,
                    }));
                }
                if ui.button("BACK").clicked() {
                    out.push(UiAction::Engine(Command::Back {
                        playback: name.clone(),
                        fade: None,
                    }));
                }
                if ui.button("Release").clicked() {
                    out.push(UiAction::Engine(Command::Release {
                        playback: name.clone(),
                    }));
                }
            });
            ui.horizontal(|ui| {
                ui.add(
                    egui::TextEdit::singleline(&mut panel.goto[index])
                        .desired_width(40.0)
                        .hint_text("cue"),
                );
                let number = CueNumber::parse(&panel.goto[index]);
                if ui
                    .add_enabled(number.is_some(), egui::Button::new("GOTO"))
                    .clicked()
                    && let Some(cue) = number
                {
                    out.push(UiAction::Engine(Command::Goto {
                        playback: pb.name.clone(),
                        cue,
                        fade: None,
                    }));
                }
            });
            let mut master = run.master as f32;
            if ui
                .add(egui::Slider::new(&mut master, 0.0..=1.0).text("master"))
                .changed()
            {
                out.push(UiAction::Engine(Command::Master {
                    playback: pb.name.clone(),
                    level: f64::from(master),
                }));
            }
        });
    }
    ui.separator();
    let mut gm = state.grand_master as f32;
    if ui
        .add(egui::Slider::new(&mut gm, 0.0..=1.0).text("grand master"))
        .changed()
    {
        out.push(UiAction::Engine(Command::GrandMaster {
            level: f64::from(gm),
        }));
    }
    ui.horizontal(|ui| {
        let blackout = state.blackout;
        let button = egui::Button::new(if blackout { "BLACKOUT on" } else { "Blackout" }).fill(
            if blackout {
                egui::Color32::from_rgb(160, 20, 20)
            } else {
                egui::Color32::from_gray(50)
            },
        );
        if ui.add(button).clicked() {
            out.push(UiAction::Engine(Command::Blackout { on: !blackout }));
        }
        if ui.button("Release all").clicked() {
            out.push(UiAction::Engine(Command::ReleaseAll));
        }
    });
}

fn cue_table(ui: &mut egui::Ui, view: &View, panel: &mut PanelState, out: &mut Vec<UiAction>) {
    ui.horizontal(|ui| {
        ui.label("Cue list");
        egui::ComboBox::from_id_salt("table list")
            .selected_text(panel.table_list.clone())
            .show_ui(ui, |ui| {
                for list in &view.lists {
                    ui.selectable_value(&mut panel.table_list, list.0.name.clone(), &list.0.name);
                }
            });
    });
    let Some(list) = view.lists.iter().find(|l| l.0.name == panel.table_list) else {
        return;
    };
    let list_name = list.0.name.clone();
    let current = view.engine.engine.as_ref().and_then(|fade| {
        let show = fade.show();
        let state = view.engine.state.as_ref()?;
        show.playbacks
            .iter()
            .zip(&state.playbacks)
            .find(|(pb, _)| show.lists[pb.list].name == list_name)
            .and_then(|(pb, run)| run.cue.map(|c| show.lists[pb.list].cues[c].number))
    });
    egui::ScrollArea::vertical()
        .id_salt("cue table")
        .show(ui, |ui| {
            egui::Grid::new("cues").striped(true).show(ui, |ui| {
                for h in [
                    "", "cue", "label", "fade in", "fade out", "delay", "follow", "",
                ] {
                    ui.strong(h);
                }
                ui.end_row();
                for (index, cue) in list.0.cues.iter().enumerate() {
                    let mut edited: Cue = cue.clone();
                    ui.label(if current == Some(cue.number) {
                        "▶"
                    } else {
                        ""
                    });
                    let mut number = cue.number.as_f64();
                    let n = ui.add(
                        egui::DragValue::new(&mut number)
                            .range(0.0..=100000.0)
                            .speed(0.1)
                            .max_decimals(3),
                    );
                    if n.changed()
                        && let Some(parsed) =
                            CueNumber::from_f64((number * 1000.0).round() / 1000.0)
                    {
                        edited.number = parsed;
                    }
                    ui.add_sized([200.0, 18.0], egui::TextEdit::singleline(&mut edited.label));
                    ui.add(
                        egui::DragValue::new(&mut edited.fade_in)
                            .range(0.0..=3600.0)
                            .speed(0.05)
                            .suffix(" s"),
                    );
                    let mut fade_out = cue.fade_out_time();
                    if ui
                        .add(
                            egui::DragValue::new(&mut fade_out)
                                .range(0.0..=3600.0)
                                .speed(0.05)
                                .suffix(" s"),
                        )
                        .changed()
                    {
                        edited.fade_out = Some(fade_out);
                    }
                    ui.add(
                        egui::DragValue::new(&mut edited.delay)
                            .range(0.0..=3600.0)
                            .speed(0.05)
                            .suffix(" s"),
                    );
                    follow_editor(ui, index, &mut edited.follow);
                    if ui.small_button("✖").on_hover_text("delete cue").clicked() {
                        out.push(UiAction::DeleteCue {
                            list: list_name.clone(),
                            index,
                        });
                    }
                    ui.end_row();
                    if edited != *cue {
                        out.push(UiAction::EditCue {
                            list: list_name.clone(),
                            index,
                            cue: edited,
                        });
                    }
                }
            });
        });
}

fn follow_editor(ui: &mut egui::Ui, index: usize, follow: &mut Option<Follow>) {
    let label = match follow {
        None => "manual".to_string(),
        Some(Follow::AfterFade) => "after fade".to_string(),
        Some(Follow::After(s)) => format!("after {s} s"),
    };
    ui.horizontal(|ui| {
        egui::ComboBox::from_id_salt(("follow", index))
            .selected_text(label)
            .width(90.0)
            .show_ui(ui, |ui| {
                if ui.selectable_label(follow.is_none(), "manual").clicked() {
                    *follow = None;
                }
                if ui
                    .selectable_label(matches!(follow, Some(Follow::AfterFade)), "after fade")
                    .clicked()
                {
                    *follow = Some(Follow::AfterFade);
                }
                if ui
                    .selectable_label(matches!(follow, Some(Follow::After(_))), "after time")
                    .clicked()
                    && !matches!(follow, Some(Follow::After(_)))
                {
                    *follow = Some(Follow::After(1.0));
                }
            });
        if let Some(Follow::After(secs)) = follow {
            ui.add(
                egui::DragValue::new(secs)
                    .range(0.0..=3600.0)
                    .speed(0.05)
                    .suffix(" s"),
            );
        }
    });
}

/// A stable colour per fixture id, for the universe view.
fn owner_colour(id: u32) -> egui::Color32 {
    let hue = (id.wrapping_mul(2_654_435_761) % 360) as f32 / 360.0;
    egui::ecolor::Hsva::new(hue, 0.55, 0.75, 1.0).into()
}

fn universe_view(ui: &mut egui::Ui, view: &View, panel: &mut PanelState) {
    ui.horizontal(|ui| {
        ui.label("Universe");
        egui::ComboBox::from_id_salt("universe")
            .selected_text(panel.universe.to_string())
            .show_ui(ui, |ui| {
                for u in &view.live.universes {
                    ui.selectable_value(&mut panel.universe, *u, u.to_string());
                }
            });
        ui.weak("cell: slot value (brightness), owner fixture (hue); hover for details");
    });
    let Some(slots) = view.live.universe_slots(panel.universe) else {
        ui.weak("no such universe");
        return;
    };
    let index = view
        .live
        .universes
        .iter()
        .position(|u| *u == panel.universe)
        .unwrap_or(0);
    let owners = &view.live.slot_owner[index * 512..(index + 1) * 512];
    let cols = 32;
    let width = ui.available_width();
    let cell = egui::vec2((width / cols as f32).floor(), 10.0);
    let (rect, response) = ui.allocate_exact_size(
        egui::vec2(cell.x * cols as f32, cell.y * 16.0),
        egui::Sense::hover(),
    );
    let painter = ui.painter_at(rect);
    for (slot, value) in slots.iter().enumerate() {
        let min =
            rect.min + egui::vec2((slot % cols) as f32 * cell.x, (slot / cols) as f32 * cell.y);
        let cell_rect = egui::Rect::from_min_size(min, cell - egui::vec2(1.0, 1.0));
        let v = f32::from(*value) / 255.0;
        let colour = match owners[slot] {
            Some(id) => {
                let base = egui::Rgba::from(owner_colour(id));
                let dim = 0.25 + 0.75 * v;
                egui::Rgba::from_rgb(base.r() * dim, base.g() * dim, base.b() * dim)
            }
            None => egui::Rgba::from_gray(0.004 + 0.4 * v),
        };
        painter.rect_filled(cell_rect, 0.0, colour);
    }
    if let Some(pos) = response.hover_pos() {
        let col = ((pos.x - rect.min.x) / cell.x) as usize;
        let row = ((pos.y - rect.min.y) / cell.y) as usize;
        let slot = row * cols + col;
        if let (Some(value), Some(owner)) = (slots.get(slot), owners.get(slot)) {
            let who = owner
                .and_then(|id| view.live.fixture(id))
                .map_or("unpatched".to_string(), |f| format!("{} {}", f.id, f.name));
            response.on_hover_text(format!("slot {}: {value} — {who}", slot + 1));
        }
    }
}

fn stage_labels(
    root: &egui::Ui,
    view: &View,
    camera: &(&Camera, &GlobalTransform),
    free: egui::Rect,
    _fixtures: &Query<&PatchedFixture>,
) {
    let painter = root.painter().with_clip_rect(free);
    let (camera, transform) = *camera;
    for fixture in &view.live.fixtures {
        let Some(pos) = stage_position(fixture) else {
            continue;
        };
        let below = pos - Vec2::new(0.0, crate::preview::FIXTURE_SIZE * 0.75);
        let Ok(screen) = camera.world_to_viewport(transform, below.extend(0.0)) else {
            continue;
        };
        painter.text(
            egui::pos2(screen.x, screen.y),
            egui::Align2::CENTER_TOP,
            fixture.id.to_string(),
            egui::FontId::proportional(11.0),
            egui::Color32::from_gray(170),
        );
    }
    painter.text(
        egui::pos2(free.center().x, free.bottom() - 4.0),
        egui::Align2::CENTER_BOTTOM,
        "downstage (audience)",
        egui::FontId::proportional(11.0),
        egui::Color32::from_gray(90),
    );
}
