//! What the operator does, as data: [`UiAction`]s applied by one system, with undo/redo.
//!
//! Panels never mutate the world directly; they push actions. That keeps every edit in one
//! place (unsaved-changes marking, undo snapshots) and lets tests and scripted runs do exactly
//! what a click does.

use std::collections::BTreeSet;
use std::path::PathBuf;

use bevy::prelude::*;
use rockontrol_engine::{
    Command, CommandQueue, PatchedFixture, Programmer, ShowCueList, ShowSettings, show_from_world,
};
use rockontrol_show::{Attribute, Cue, CueList, CueNumber, Target, Value, save_show};

use crate::UiSystems;
use crate::live::LiveFixtures;

pub(crate) fn plugin(app: &mut App) {
    app.add_systems(Update, apply_actions.in_set(UiSystems::Actions));
}

/// How a recorded cue meets an existing cue of the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordMode {
    /// A new cue; refused if the number exists.
    New,
    /// Merge the programmer into the cue (programmer values win, others stay).
    Update,
    /// Replace the cue's values with the programmer's.
    Replace,
}

/// One operator action.
#[derive(Debug, Clone, PartialEq)]
pub enum UiAction {
    /// Select these fixtures (`add`: keep the current selection too).
    Select {
        fixtures: Vec<u32>,
        add: bool,
    },
    /// Select the fixtures of a group.
    SelectGroup(String),
    /// Set an attribute of every selected fixture that has it (normalised 0..=1).
    Set {
        attribute: Attribute,
        level: f32,
    },
    /// Set an attribute of one fixture.
    SetFixture {
        fixture: u32,
        attribute: Attribute,
        level: f32,
    },
    /// Release an attribute of the selected fixtures back to playback.
    Release(Attribute),
    /// Clear the programmer.
    ClearProgrammer,
    /// Highlight the selection on or off.
    Highlight(bool),
    /// Record the programmer into a cue list; `cue: None` is the next whole number.
    Record {
        list: String,
        cue: Option<CueNumber>,
        mode: RecordMode,
    },
    /// Replace cue `index` of a list (table edits: number, label, times, follow).
    EditCue {
        list: String,
        index: usize,
        cue: Cue,
    },
    /// Delete cue `index` of a list.
    DeleteCue {
        list: String,
        index: usize,
    },
    /// Move a fixture on the stage (metres).
    MoveFixture {
        fixture: u32,
        position: (f64, f64),
    },
    /// An engine command (GO, BACK, GOTO, release, masters, blackout).
    Engine(Command),
    Undo,
    Redo,
    /// Write the show file.
    Save,
}

/// Actions waiting to be applied (panels, tests and scripts push here).
#[derive(Resource, Debug, Default)]
pub struct UiActions(pub Vec<UiAction>);

impl UiActions {
    pub fn push(&mut self, action: UiAction) {
        self.0.push(action);
    }
}

/// A point to undo to: what programming actions change.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    programmer: Programmer,
    lists: Vec<(Entity, CueList)>,
    positions: Vec<(Entity, Option<(f64, f64)>)>,
    dirty: bool,
}

/// The UI's own state: selection, unsaved changes, undo history, status line.
#[derive(Resource, Debug)]
pub struct UiState {
    pub selection: BTreeSet<u32>,
    pub show_path: Option<PathBuf>,
    /// The show differs from the file.
    pub dirty: bool,
    /// Latest message for the status bar.
    pub status: String,
    undo: Vec<Snapshot>,
    redo: Vec<Snapshot>,
    /// Key of the latest undoable action: a fader drag is one undo step, not hundreds.
    last_key: Option<String>,
}

impl UiState {
    pub fn new(show_path: Option<PathBuf>) -> Self {
        UiState {
            selection: BTreeSet::new(),
            show_path,
            dirty: false,
            status: String::new(),
            undo: Vec::new(),
            redo: Vec::new(),
            last_key: None,
        }
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
}

fn snapshot(world: &mut World) -> Snapshot {
    let lists = world
        .query::<(Entity, &ShowCueList)>()
        .iter(world)
        .map(|(e, l)| (e, l.0.clone()))
        .collect();
    let positions = world
        .query::<(Entity, &PatchedFixture)>()
        .iter(world)
        .map(|(e, f)| (e, f.0.position))
        .collect();
    Snapshot {
        programmer: world.resource::<Programmer>().clone(),
        lists,
        positions,
        dirty: world.resource::<UiState>().dirty,
    }
}

fn restore(world: &mut World, snap: Snapshot) {
    *world.resource_mut::<Programmer>() = snap.programmer;
    for (entity, list) in snap.lists {
        if let Some(mut l) = world.get_mut::<ShowCueList>(entity)
            && l.0 != list
        {
            l.0 = list;
        }
    }
    for (entity, position) in snap.positions {
        if let Some(mut f) = world.get_mut::<PatchedFixture>(entity)
            && f.0.position != position
        {
            f.0.position = position;
        }
    }
    world.resource_mut::<UiState>().dirty = snap.dirty;
}

/// The undo key of an action, or `None` if it is not undoable.
fn undo_key(action: &UiAction, selection: &BTreeSet<u32>) -> Option<String> {
    match action {
        UiAction::Set { attribute, .. } => Some(format!("set {selection:?} {attribute:?}")),
        UiAction::SetFixture {
            fixture, attribute, ..
        } => Some(format!("set {fixture} {attribute:?}")),
        UiAction::MoveFixture { fixture, .. } => Some(format!("move {fixture}")),
        UiAction::Release(_)
        | UiAction::ClearProgrammer
        | UiAction::Record { .. }
        | UiAction::DeleteCue { .. } => Some(String::new()),
        UiAction::EditCue { list, index, .. } => Some(format!("edit {list} {index}")),
        _ => None,
    }
}

/// Applies every queued action, in order.
pub fn apply_actions(world: &mut World) {
    let actions = std::mem::take(&mut world.resource_mut::<UiActions>().0);
    for action in actions {
        let selection = world.resource::<UiState>().selection.clone();
        if let Some(key) = undo_key(&action, &selection) {
            let state = world.resource::<UiState>();
            // An empty key never coalesces.
            if key.is_empty() || state.last_key.as_deref() != Some(key.as_str()) {
                let snap = snapshot(world);
                let mut state = world.resource_mut::<UiState>();
                state.undo.push(snap);
                state.redo.clear();
            }
            world.resource_mut::<UiState>().last_key = Some(key);
        } else if !matches!(action, UiAction::Select { .. } | UiAction::SelectGroup(_)) {
            world.resource_mut::<UiState>().last_key = None;
        }
        if let Err(message) = apply(world, action) {
            warn!("{message}");
            world.resource_mut::<UiState>().status = message;
        }
    }
}

fn apply(world: &mut World, action: UiAction) -> Result<(), String> {
    match action {
        UiAction::Select { fixtures, add } => {
            let mut state = world.resource_mut::<UiState>();
            if !add {
                state.selection.clear();
            }
            state.selection.extend(fixtures);
            refresh_highlight(world);
        }
        UiAction::SelectGroup(name) => {
            let fixtures = world
                .get_resource::<ShowSettings>()
                .and_then(|s| s.groups.iter().find(|g| g.name == name))
                .map(|g| g.fixtures.clone())
                .ok_or_else(|| format!("no group {name:?}"))?;
            world.resource_mut::<UiState>().selection = fixtures.into_iter().collect();
            refresh_highlight(world);
        }
        UiAction::Set { attribute, level } => {
            let selection = world.resource::<UiState>().selection.clone();
            if selection.is_empty() {
                return Err("select fixtures first".into());
            }
            let targets: Vec<u32> = {
                let live = world.resource::<LiveFixtures>();
                selection
                    .iter()
                    .copied()
                    .filter(|id| live.fixture(*id).is_none_or(|f| f.has(&attribute)))
                    .collect()
            };
            let mut programmer = world.resource_mut::<Programmer>();
            for id in targets {
                programmer.set(id, attribute.clone(), level);
            }
        }
        UiAction::SetFixture {
            fixture,
            attribute,
            level,
        } => world
            .resource_mut::<Programmer>()
            .set(fixture, attribute, level),
        UiAction::Release(attribute) => {
            let selection = world.resource::<UiState>().selection.clone();
            let mut programmer = world.resource_mut::<Programmer>();
            for id in selection {
                programmer.unset(id, &attribute);
            }
        }
        UiAction::ClearProgrammer => {
            world.resource_mut::<Programmer>().clear();
            world.resource_mut::<UiState>().status = "programmer cleared".into();
        }
        UiAction::Highlight(on) => {
            let selection = world.resource::<UiState>().selection.clone();
            let mut programmer = world.resource_mut::<Programmer>();
            if on {
                programmer.highlight(selection);
            } else {
                programmer.highlight([]);
            }
        }
        UiAction::Record { list, cue, mode } => record(world, &list, cue, mode)?,
        UiAction::EditCue { list, index, cue } => {
            let mut lists = world.query::<&mut ShowCueList>();
            let mut found = lists
                .iter_mut(world)
                .find(|l| l.0.name == list)
                .ok_or_else(|| format!("no cue list {list:?}"))?;
            let cues = &mut found.0.cues;
            if index >= cues.len() {
                return Err(format!("cue list {list:?} has no cue #{index}"));
            }
            if cues
                .iter()
                .enumerate()
                .any(|(i, c)| i != index && c.number == cue.number)
            {
                return Err(format!("cue {} already exists in {list:?}", cue.number));
            }
            cues[index] = cue;
            cues.sort_by_key(|c| c.number);
            world.resource_mut::<UiState>().dirty = true;
        }
        UiAction::DeleteCue { list, index } => {
            let mut lists = world.query::<&mut ShowCueList>();
            let mut found = lists
                .iter_mut(world)
                .find(|l| l.0.name == list)
                .ok_or_else(|| format!("no cue list {list:?}"))?;
            if index < found.0.cues.len() {
                found.0.cues.remove(index);
            }
            world.resource_mut::<UiState>().dirty = true;
        }
        UiAction::MoveFixture { fixture, position } => {
            let mut fixtures = world.query::<&mut PatchedFixture>();
            let mut f = fixtures
                .iter_mut(world)
                .find(|f| f.0.id == fixture)
                .ok_or_else(|| format!("no fixture {fixture}"))?;
            // Centimetre grid: positions stay readable in the show file.
            let snap = |v: f64| (v * 100.0).round() / 100.0;
            f.0.position = Some((snap(position.0), snap(position.1)));
            world.resource_mut::<UiState>().dirty = true;
        }
        UiAction::Engine(command) => {
            world.resource_mut::<CommandQueue>().push(command);
        }
        UiAction::Undo => {
            let Some(snap) = world.resource_mut::<UiState>().undo.pop() else {
                return Err("nothing to undo".into());
            };
            let current = snapshot(world);
            restore(world, snap);
            let mut state = world.resource_mut::<UiState>();
            state.redo.push(current);
            state.last_key = None;
            state.status = "undone".into();
        }
        UiAction::Redo => {
            let Some(snap) = world.resource_mut::<UiState>().redo.pop() else {
                return Err("nothing to redo".into());
            };
            let current = snapshot(world);
            restore(world, snap);
            let mut state = world.resource_mut::<UiState>();
            state.undo.push(current);
            state.last_key = None;
            state.status = "redone".into();
        }
        UiAction::Save => {
            let path = world
                .resource::<UiState>()
                .show_path
                .clone()
                .ok_or("no show file to save to")?;
            let show = show_from_world(world);
            save_show(&show, &path).map_err(|e| format!("cannot save {}: {e}", path.display()))?;
            let mut state = world.resource_mut::<UiState>();
            state.dirty = false;
            state.status = format!("saved {}", path.display());
        }
    }
    Ok(())
}

fn refresh_highlight(world: &mut World) {
    let selection = world.resource::<UiState>().selection.clone();
    let mut programmer = world.resource_mut::<Programmer>();
    if !programmer.highlighted().is_empty() {
        programmer.highlight(selection);
    }
}

/// A programmer level as a cue value: raw DMX on 16-bit channels (exact), else a
/// normalised level rounded to 1/10000 so the show file stays readable.
fn cue_value(level: f32, bits: u8) -> Value {
    if bits >= 16 {
        Value::Dmx((f64::from(level) * 65535.0).round() as u32)
    } else {
        Value::Norm((f64::from(level) * 10000.0).round() / 10000.0)
    }
}

fn record(
    world: &mut World,
    list: &str,
    cue: Option<CueNumber>,
    mode: RecordMode,
) -> Result<(), String> {
    let values: Vec<(u32, Attribute, Value)> = {
        let programmer = world.resource::<Programmer>();
        let live = world.resource::<LiveFixtures>();
        programmer
            .values()
            .map(|(f, a, v)| {
                let bits = live
                    .fixture(f)
                    .and_then(|fx| fx.channel(a))
                    .map_or(8, |c| c.bits());
                (f, a.clone(), cue_value(v, bits))
            })
            .collect()
    };
    if values.is_empty() {
        return Err("the programmer is empty: nothing to record".into());
    }
    let mut lists = world.query::<&mut ShowCueList>();
    let mut found = lists
        .iter_mut(world)
        .find(|l| l.0.name == list)
        .ok_or_else(|| format!("no cue list {list:?}"))?;
    let cues = &mut found.0.cues;
    let number = cue.unwrap_or_else(|| {
        let last = cues.last().map_or(0, |c| c.number.0);
        CueNumber((last / 1000 + 1) * 1000)
    });
    let existing = cues.iter().position(|c| c.number == number);
    let message = match (existing, mode) {
        (Some(_), RecordMode::New) => {
            return Err(format!(
                "cue {number} exists in {list:?}: use Update or Replace"
            ));
        }
        (Some(index), mode) => {
            let target = &mut cues[index];
            if mode == RecordMode::Replace {
                target.values.clear();
            }
            for (fixture, attribute, value) in values {
                target
                    .values
                    .entry(Target::Fixture(fixture))
                    .or_default()
                    .insert(attribute, value);
            }
            format!("cue {number} in {list:?} updated")
        }
        (None, _) => {
            let mut new = Cue {
                number,
                label: String::new(),
                fade_in: 0.0,
                fade_out: None,
                delay: 0.0,
                follow: None,
                assert: false,
                values: Default::default(),
            };
            for (fixture, attribute, value) in values {
                new.values
                    .entry(Target::Fixture(fixture))
                    .or_default()
                    .insert(attribute, value);
            }
            cues.push(new);
            cues.sort_by_key(|c| c.number);
            format!("cue {number} recorded in {list:?}")
        }
    };
    let mut state = world.resource_mut::<UiState>();
    state.dirty = true;
    state.status = message;
    // The engine recompiles on the next tick: the cue list changed.
    Ok(())
}
