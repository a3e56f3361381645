//! QLC+ workspaces (`.qxw`) to a RocKontrol [`Show`].
//!
//! Carried over:
//! - **Patch**: every `<Fixture>` with its universe and address (QLC+ counts both from 0,
//!   we count from 1), profile found by manufacturer/model (see [`ProfileSource`]). QLC+'s
//!   built-in "Generic/Generic" dimmer pack becomes one `Generic/Dimmer` fixture per
//!   channel, grouped under the pack's name, so each dimmer stays an HTP intensity.
//!   Fixture ids are QLC+ ids + 1.
//! - **Fixture groups** to groups.
//! - **Scenes** to cues of one cue list, "Scenes", in function-id order (scenes used only as
//!   chaser steps stay out of it).
//! - **Chasers** to cue lists, step by step, with their fade in, fade out and hold times
//!   (taken per step, from the chaser, or from the step's scene as QLC+'s speed modes
//!   say), direction and run order (loop, single shot, ping-pong); each list gets a
//!   playback, named like the list with spaces turned to `-` so `go SC-Pan` reaches it.
//! - **Output** universes named E1.31 or Art-Net in the I/O map get an sACN or Art-Net output.
//!
//! QLC+ scenes do not track: when a step ends its intensities fade out. Our cue lists
//! track, so each converted cue sets every intensity (and colour-mixing emitter) of the
//! list that it does not itself set to zero; other attributes track, as QLC+'s LTP
//! channels hold their last value.
//!
//! Not carried over, each said by name: EFX, RGB matrices, shows, collections, audio,
//! video and scripts; the virtual console and simple desk; fixtures whose profile cannot be
//! found; values on channels a mode does not have.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::xml::{Document, Element};
use super::{ImportError, Notice, NoticeKind, import_file};
use crate::library::Library;
use crate::model::{
    Attribute, ByteRole, Channel, Cue, CueList, CueValues, DEFAULT_TICK_RATE, Fixture, FixtureKind,
    FixtureProfile, Follow, Group, Mode, Output, Playback, SacnOutput, Show, Target, Universe,
};
use crate::value::{CueNumber, Value};

/// QLC+'s "infinite" speed value (`Function::infiniteSpeed()`): a step that waits for GO.
const INFINITE_MS: u64 = 4_294_967_294;

/// A converted workspace and everything that did not come across unchanged.
#[derive(Debug, Clone)]
pub struct QxwImport {
    pub show: Show,
    pub notices: Vec<Notice>,
}

/// Finds the profile for a workspace fixture.
pub trait ProfileSource {
    /// The profile of `manufacturer`/`model`; `Ok(None)` when this source has none,
    /// `Err` with a message when it has one that does not load.
    fn find(&mut self, manufacturer: &str, model: &str) -> Result<Option<FoundProfile>, String>;
}

/// A profile a [`ProfileSource`] found, with where it came from and what importing it
/// changed (for QLC+ definitions imported on the fly).
#[derive(Debug, Clone)]
pub struct FoundProfile {
    pub profile: FixtureProfile,
    pub origin: String,
    pub notices: Vec<Notice>,
}

/// Profiles from a library folder first, then from QLC+ fixture definition folders
/// (imported on the fly).
#[derive(Debug, Default)]
pub struct FixtureSources {
    library: Option<Library>,
    qxf_dirs: Vec<PathBuf>,
    /// (manufacturer, model) → file, built on first use.
    index: Option<BTreeMap<(String, String), PathBuf>>,
}

impl FixtureSources {
    /// Look in `library` (if any), then in each folder of `qxf_dirs` (recursively).
    pub fn new(library: Option<Library>, qxf_dirs: Vec<PathBuf>) -> Self {
        FixtureSources {
            library,
            qxf_dirs,
            index: None,
        }
    }

    fn index(&mut self) -> &BTreeMap<(String, String), PathBuf> {
        self.index.get_or_insert_with(|| {
            let mut index = BTreeMap::new();
            for dir in &self.qxf_dirs {
                let mut files = Vec::new();
                collect_qxf(dir, &mut files);
                files.sort();
                for path in files {
                    // Only the names are needed here: a cheap scan, not a parse.
                    let Ok(text) = std::fs::read_to_string(&path) else {
                        continue;
                    };
                    let (Some(m), Some(model)) =
                        (tag_text(&text, "Manufacturer"), tag_text(&text, "Model"))
                    else {
                        continue;
                    };
                    index
                        .entry((m.to_lowercase(), model.to_lowercase()))
                        .or_insert(path);
                }
            }
            index
        })
    }
}

/// QLC+ keeps definitions at `fixtures/<Manufacturer>/<file>.qxf`; a few levels suffice,
/// and the bound keeps a workspace in a home folder from walking the whole disk.
const MAX_SCAN_DEPTH: usize = 4;

fn collect_qxf(dir: &Path, out: &mut Vec<PathBuf>) {
    collect_qxf_within(dir, out, MAX_SCAN_DEPTH);
}

fn collect_qxf_within(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if depth > 0 {
                collect_qxf_within(&path, out, depth - 1);
            }
        } else if path.extension().and_then(|e| e.to_str()) == Some("qxf") {
            out.push(path);
        }
    }
}

/// Unescaped text of the first `<tag>…</tag>` in a document.
fn tag_text(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find('<')?;
    let raw = text[start..end].trim();
    quick_xml::escape::unescape(raw)
        .ok()
        .map(|s| s.into_owned())
}

impl ProfileSource for FixtureSources {
    fn find(&mut self, manufacturer: &str, model: &str) -> Result<Option<FoundProfile>, String> {
        if let Some(library) = &self.library {
            match library.load(&format!("{manufacturer}/{model}")) {
                Ok(profile) => {
                    return Ok(Some(FoundProfile {
                        profile,
                        origin: library.path_for(manufacturer, model).display().to_string(),
                        notices: Vec::new(),
                    }));
                }
                Err(crate::library::LibraryError::NotFound { .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let key = (manufacturer.to_lowercase(), model.to_lowercase());
        let Some(path) = self.index().get(&key).cloned() else {
            return Ok(None);
        };
        match import_file(&path) {
            Ok(imported) => Ok(Some(FoundProfile {
                profile: imported.profile,
                origin: path.display().to_string(),
                notices: imported.notices,
            })),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Reads and converts a workspace file. The show is named after the file.
pub fn import_qxw_file(
    path: &Path,
    sources: &mut dyn ProfileSource,
) -> Result<QxwImport, ImportError> {
    let text = super::read_text(path)?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("QLC+ workspace")
        .to_string();
    import_qxw_str(&text, &path.display().to_string(), &name, sources)
}

/// Converts workspace text; `file` names it in errors, `name` becomes the show's name.
pub fn import_qxw_str(
    text: &str,
    file: &str,
    name: &str,
    sources: &mut dyn ProfileSource,
) -> Result<QxwImport, ImportError> {
    let doc = super::xml::parse(text, file)?;
    let root = &doc.root;
    if root.name != "Workspace" {
        return Err(ImportError::defect(
            doc.location(root),
            root.describe(),
            "root element is not <Workspace>; not a QLC+ workspace",
        ));
    }
    let Some(engine) = root.child("Engine") else {
        return Err(ImportError::defect(
            doc.location(root),
            "<Workspace>",
            "has no <Engine>",
        ));
    };
    let mut conv = Converter {
        doc: &doc,
        show: Show::empty(name),
        notices: Vec::new(),
        patched: BTreeMap::new(),
        profiles: BTreeMap::new(),
    };
    conv.patch(engine, sources)?;
    conv.groups(engine);
    conv.functions(engine)?;
    conv.outputs(engine);
    conv.dropped_sections(root);
    Ok(QxwImport {
        show: conv.show,
        notices: conv.notices,
    })
}

/// A QLC+ fixture as patched: channel index → (our fixture id, slot name in its mode).
struct Patched {
    name: String,
    slots: Vec<(u32, String)>,
}

struct Converter<'d> {
    doc: &'d Document,
    show: Show,
    notices: Vec<Notice>,
    /// QLC+ fixture id → how its channels map.
    patched: BTreeMap<u32, Patched>,
    /// Our fixture id → (profile reference, mode name).
    profiles: BTreeMap<u32, (String, String)>,
}

impl Converter<'_> {
    fn note(&mut self, kind: NoticeKind, e: Option<&Element>, element: String, message: String) {
        let line = e.map(|e| self.doc.line(e));
        self.notices.push(Notice {
            kind,
            line,
            element,
            message,
        });
    }

    fn number<T: std::str::FromStr>(&self, e: &Element, child: &str) -> Result<T, ImportError> {
        let text = e.child_text(child).unwrap_or("");
        text.parse::<T>().map_err(|_| {
            ImportError::defect(
                self.doc.location(e),
                e.describe(),
                format!("<{child}> {text:?} is not a valid number"),
            )
        })
    }

    fn patch(
        &mut self,
        engine: &Element,
        sources: &mut dyn ProfileSource,
    ) -> Result<(), ImportError> {
        let fixtures: Vec<&Element> = engine.children_named("Fixture").collect();
        let mut next_extra_id: u32 = 1;
        for f in &fixtures {
            let qlc_id: u32 = self.number(f, "ID")?;
            next_extra_id = next_extra_id.max(qlc_id.saturating_add(2));
        }
        let mut universes = BTreeSet::new();
        for f in fixtures {
            let element = f.describe();
            let qlc_id: u32 = self.number(f, "ID")?;
            let universe: u16 = self
                .number::<u16>(f, "Universe")?
                .checked_add(1)
                .ok_or_else(|| {
                    ImportError::defect(
                        self.doc.location(f),
                        element.clone(),
                        "universe number too large",
                    )
                })?;
            let address: u16 = self.number::<u16>(f, "Address")?.saturating_add(1);
            let channels: usize = self.number(f, "Channels").unwrap_or(0);
            let manufacturer = f.child_text("Manufacturer").unwrap_or("").to_string();
            let model = f.child_text("Model").unwrap_or("").to_string();
            let mode_name = f.child_text("Mode").unwrap_or("").to_string();
            let name = f.child_text("Name").unwrap_or("").to_string();
            let id = qlc_id + 1;
            let fixture_element = format!("<Fixture> {id} {name:?}");
            universes.insert(universe);

            if manufacturer == "Generic" && model == "Generic" {
                // QLC+'s built-in dimmer pack: one intensity per channel.
                let profile = generic_dimmer();
                let reference = profile.reference();
                self.add_profile(
                    profile,
                    "QLC+ built-in generic dimmer".to_string(),
                    Vec::new(),
                );
                let mut slots = Vec::new();
                let mut members = Vec::new();
                for ch in 0..channels.max(1) {
                    let fid = if ch == 0 {
                        id
                    } else {
                        next_extra_id += 1;
                        next_extra_id - 1
                    };
                    members.push(fid);
                    slots.push((fid, "Dimmer".to_string()));
                    let fixture_name = if channels > 1 {
                        format!("{name} ({})", ch + 1)
                    } else {
                        name.clone()
                    };
                    self.show.fixtures.push(Fixture {
                        id: fid,
                        name: fixture_name,
                        profile: reference.clone(),
                        mode: "1 channel".to_string(),
                        universe,
                        address: address.saturating_add(ch as u16),
                        position: None,
                    });
                    self.profiles
                        .insert(fid, (reference.clone(), "1 channel".to_string()));
                }
                if channels > 1 {
                    self.show.groups.push(Group {
                        name: unique_name(&name, self.show.groups.iter().map(|g| g.name.as_str())),
                        fixtures: members.clone(),
                    });
                    self.note(
                        NoticeKind::Warning,
                        Some(f),
                        fixture_element,
                        format!(
                            "QLC+ generic {channels}-channel dimmer split into fixtures {} (one Generic/Dimmer each), grouped as {name:?}",
                            members.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
                self.patched.insert(qlc_id, Patched { name, slots });
                continue;
            }

            let found = match sources.find(&manufacturer, &model) {
                Ok(Some(found)) => found,
                Ok(None) => {
                    self.note(
                        NoticeKind::Warning,
                        Some(f),
                        fixture_element,
                        format!(
                            "no profile {manufacturer}/{model} in the library or QLC+ fixture folders; fixture not patched, its scene values dropped"
                        ),
                    );
                    continue;
                }
                Err(e) => {
                    self.note(
                        NoticeKind::Warning,
                        Some(f),
                        fixture_element,
                        format!("profile {manufacturer}/{model} does not load ({e}); fixture not patched"),
                    );
                    continue;
                }
            };
            let Some(mode) = found.profile.mode(&mode_name).cloned() else {
                let known: Vec<String> = found
                    .profile
                    .modes
                    .iter()
                    .map(|m| format!("{:?}", m.name))
                    .collect();
                self.note(
                    NoticeKind::Warning,
                    Some(f),
                    fixture_element,
                    format!(
                        "profile {manufacturer}/{model} has no mode {mode_name:?} (modes: {}); fixture not patched",
                        known.join(", ")
                    ),
                );
                continue;
            };
            if channels != 0 && channels != mode.channels.len() {
                self.note(
                    NoticeKind::Warning,
                    Some(f),
                    fixture_element.clone(),
                    format!(
                        "the workspace says {channels} channels, mode {mode_name:?} of {manufacturer}/{model} has {}; patched with the profile's",
                        mode.channels.len()
                    ),
                );
            }
            let reference = found.profile.reference();
            self.add_profile(found.profile, found.origin, found.notices);
            self.show.fixtures.push(Fixture {
                id,
                name: name.clone(),
                profile: reference.clone(),
                mode: mode_name.clone(),
                universe,
                address,
                position: None,
            });
            self.profiles.insert(id, (reference, mode_name));
            let slots = mode.channels.iter().map(|s| (id, s.clone())).collect();
            self.patched.insert(qlc_id, Patched { name, slots });
        }
        self.show.universes = universes
            .into_iter()
            .map(|id| Universe {
                id,
                label: String::new(),
                outputs: Vec::new(),
                input: None,
            })
            .collect();
        Ok(())
    }

    /// A playback for a cue list, named without spaces so `go NAME` can address it
    /// ("SC Pan" → "SC-Pan").
    fn add_playback(&mut self, cue_list: &str) {
        let base = cue_list.split_whitespace().collect::<Vec<_>>().join("-");
        let taken: BTreeSet<&str> = self
            .show
            .playbacks
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let name = (1..)
            .map(|n| {
                if n == 1 {
                    base.clone()
                } else {
                    format!("{base}-{n}")
                }
            })
            .find(|candidate| !taken.contains(candidate.as_str()))
            .unwrap_or(base);
        self.show.playbacks.push(Playback {
            name,
            cue_list: cue_list.to_string(),
            master: 1.0,
            release_time: 0.0,
        });
    }

    fn add_profile(&mut self, profile: FixtureProfile, origin: String, notices: Vec<Notice>) {
        let reference = profile.reference();
        if self.show.profile(&reference).is_some() {
            return;
        }
        let warnings = notices
            .iter()
            .filter(|n| n.kind == NoticeKind::Warning)
            .count();
        self.notices.push(Notice {
            kind: NoticeKind::Info,
            line: None,
            element: format!("profile {reference:?}"),
            message: if warnings > 0 {
                format!("taken from {origin}, whose import gave {warnings} warnings (import it with `rockontrol fixtures import` to read them)")
            } else {
                format!("taken from {origin}")
            },
        });
        self.show.profiles.push(profile);
    }

    fn groups(&mut self, engine: &Element) {
        for g in engine.children_named("FixtureGroup") {
            let name = g.child_text("Name").unwrap_or("").to_string();
            let mut members = BTreeSet::new();
            for head in g.children_named("Head") {
                let Some(qlc_id) = head.attr("Fixture").and_then(|v| v.parse::<u32>().ok()) else {
                    continue;
                };
                if let Some(p) = self.patched.get(&qlc_id) {
                    members.extend(p.slots.iter().map(|(id, _)| *id));
                }
            }
            if members.is_empty() {
                continue;
            }
            self.note(
                NoticeKind::Dropped,
                Some(g),
                format!("<FixtureGroup> {name:?}"),
                "grid layout of the group (kept its fixtures)".to_string(),
            );
            let name = unique_name(&name, self.show.groups.iter().map(|g| g.name.as_str()));
            self.show.groups.push(Group {
                name,
                fixtures: members.into_iter().collect(),
            });
        }
    }

    fn functions(&mut self, engine: &Element) -> Result<(), ImportError> {
        let functions: Vec<&Element> = engine.children_named("Function").collect();
        let by_id: BTreeMap<u32, &Element> = functions
            .iter()
            .filter_map(|f| Some((f.attr("ID")?.parse().ok()?, *f)))
            .collect();
        // Scenes used as chaser steps belong to their chasers.
        let mut step_scenes = BTreeSet::new();
        for f in &functions {
            if f.attr("Type") == Some("Chaser") {
                for step in f.children_named("Step") {
                    if let Ok(id) = step.text.trim().parse::<u32>() {
                        step_scenes.insert(id);
                    }
                }
            }
        }

        let mut scene_cues = Vec::new();
        for f in &functions {
            let kind = f.attr("Type").unwrap_or("");
            let fname = f.attr("Name").unwrap_or("").to_string();
            let id: Option<u32> = f.attr("ID").and_then(|v| v.parse().ok());
            match kind {
                "Scene" => {
                    if id.is_some_and(|id| step_scenes.contains(&id)) {
                        continue;
                    }
                    let speed = Speed::of(f);
                    let values = self.scene_values(f);
                    scene_cues.push(StepCue {
                        label: fname,
                        values,
                        fade_in: speed.fade_in,
                        fade_out: speed.fade_out,
                        hold: None,
                    });
                }
                "Chaser" => {
                    if let Some(list) = self.chaser(f, &by_id)? {
                        self.add_playback(&list.name);
                        self.show.cue_lists.push(list);
                    }
                }
                other => {
                    let what = match other {
                        "EFX" => "EFX (movement effects)",
                        "RGBMatrix" => "RGB matrix",
                        "Show" => "show (timeline)",
                        "Collection" => "collection",
                        "Sequence" => "sequence",
                        "Audio" => "audio",
                        "Video" => "video",
                        "Script" => "script",
                        _ => "function of an unknown type",
                    };
                    self.note(
                        NoticeKind::Warning,
                        Some(f),
                        f.describe(),
                        format!("{what} {fname:?} not carried over"),
                    );
                }
            }
        }
        if !scene_cues.is_empty() {
            let name = unique_name(
                "Scenes",
                self.show.cue_lists.iter().map(|l| l.name.as_str()),
            );
            let count = scene_cues.len();
            let list = self.cue_list(name.clone(), scene_cues, false);
            self.notices.push(Notice {
                kind: NoticeKind::Warning,
                line: None,
                element: format!("cue list {name:?}"),
                message: format!(
                    "{count} {} that no chaser uses became its cues in function order; QLC+ can run several scenes at once, a cue list runs one cue at a time",
                    if count == 1 { "scene" } else { "scenes" }
                ),
            });
            self.add_playback(&list.name);
            self.show.cue_lists.insert(0, list);
        }
        Ok(())
    }

    /// A scene's values by target and attribute, as raw DMX at each channel's resolution.
    fn scene_values(&mut self, scene: &Element) -> CueValues {
        // (fixture id, channel name) → (coarse, fine) bytes as QLC+ sets them.
        let mut bytes: BTreeMap<(u32, String), (Option<u8>, Option<u8>)> = BTreeMap::new();
        let scene_name = scene.attr("Name").unwrap_or("").to_string();
        for fv in scene.children_named("FixtureVal") {
            let Some(qlc_id) = fv.attr("ID").and_then(|v| v.parse::<u32>().ok()) else {
                continue;
            };
            let numbers: Vec<&str> = fv
                .text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            let Some(patched) = self.patched.get(&qlc_id) else {
                if !numbers.is_empty() {
                    self.note(
                        NoticeKind::Warning,
                        Some(fv),
                        format!("scene {scene_name:?} <FixtureVal ID=\"{qlc_id}\">"),
                        "values for a fixture that is not patched; dropped".to_string(),
                    );
                }
                continue;
            };
            let fixture_name = patched.name.clone();
            let slots = patched.slots.clone();
            for pair in numbers.chunks(2) {
                let (Some(ch), Some(val)) = (
                    pair.first().and_then(|c| c.parse::<usize>().ok()),
                    pair.get(1).and_then(|v| v.parse::<u8>().ok()),
                ) else {
                    self.note(
                        NoticeKind::Warning,
                        Some(fv),
                        format!("scene {scene_name:?} <FixtureVal ID=\"{qlc_id}\">"),
                        format!("{:?} is not a channel,value pair; dropped", pair.join(",")),
                    );
                    continue;
                };
                let Some((fid, slot)) = slots.get(ch) else {
                    self.note(
                        NoticeKind::Warning,
                        Some(fv),
                        format!("scene {scene_name:?} <FixtureVal ID=\"{qlc_id}\">"),
                        format!(
                            "channel {ch} is past the {} channels of {fixture_name:?}; dropped",
                            slots.len()
                        ),
                    );
                    continue;
                };
                let Some((channel, role)) = self.slot_channel(*fid, slot) else {
                    continue;
                };
                let entry = bytes.entry((*fid, channel.name.clone())).or_default();
                match role {
                    ByteRole::Coarse => entry.0 = Some(val),
                    ByteRole::Fine => entry.1 = Some(val),
                }
            }
        }
        let mut values = CueValues::new();
        for ((fid, channel_name), (coarse, fine)) in bytes {
            let Some((channel, sixteen)) = self.channel_info(fid, &channel_name) else {
                continue;
            };
            let value = match (coarse, fine, sixteen) {
                (Some(c), _, false) => Value::Dmx(u32::from(c)),
                (Some(c), f, true) => Value::Dmx(u32::from(c) << 8 | u32::from(f.unwrap_or(0))),
                (None, _, _) => {
                    self.note(
                        NoticeKind::Warning,
                        Some(scene),
                        format!("scene {scene_name:?}"),
                        format!(
                            "sets only the fine byte of {:?} on fixture {fid}; a cue sets whole channels, dropped",
                            channel.name
                        ),
                    );
                    continue;
                }
            };
            values
                .entry(Target::Fixture(fid))
                .or_default()
                .insert(channel.attribute.clone(), value);
        }
        values
    }

    fn profile_of(&self, fid: u32) -> Option<(&FixtureProfile, &Mode)> {
        let (reference, mode) = self.profiles.get(&fid)?;
        let profile = self.show.profile(reference)?;
        Some((profile, profile.mode(mode)?))
    }

    fn slot_channel(&self, fid: u32, slot: &str) -> Option<(Channel, ByteRole)> {
        let (profile, _) = self.profile_of(fid)?;
        profile.channel_for_slot(slot).map(|(c, r)| (c.clone(), r))
    }

    /// A channel and whether the fixture's mode makes it 16-bit.
    fn channel_info(&self, fid: u32, channel: &str) -> Option<(Channel, bool)> {
        let (profile, mode) = self.profile_of(fid)?;
        let c = profile.channels.iter().find(|c| c.name == channel)?;
        let sixteen = c.fine.as_ref().is_some_and(|f| mode.channels.contains(f));
        Some((c.clone(), sixteen))
    }

    /// Whether the engine merges an attribute of a fixture highest-takes-precedence: what
    /// QLC+ fades out when a scene stops.
    fn is_htp(&self, fid: u32, attribute: &Attribute) -> bool {
        let Some((profile, mode)) = self.profile_of(fid) else {
            return false;
        };
        let has_dimmer = mode.channels.iter().any(|s| {
            matches!(profile.channel_for_slot(s), Some((c, ByteRole::Coarse)) if c.attribute == Attribute::Intensity)
        });
        *attribute == Attribute::Intensity || (!has_dimmer && attribute.is_color_emitter())
    }

    fn chaser(
        &mut self,
        f: &Element,
        by_id: &BTreeMap<u32, &Element>,
    ) -> Result<Option<CueList>, ImportError> {
        let name = f.attr("Name").unwrap_or("").to_string();
        let element = f.describe();
        let common = Speed::of(f);
        let modes = f.child("SpeedModes");
        let mode_of = |what: &str| {
            modes
                .and_then(|m| m.attr(what))
                .unwrap_or("Default")
                .to_string()
        };
        let (fade_in_mode, fade_out_mode, duration_mode) =
            (mode_of("FadeIn"), mode_of("FadeOut"), mode_of("Duration"));
        let mut steps: Vec<StepCue> = Vec::new();
        let mut step_elements: Vec<&Element> = f.children_named("Step").collect();
        step_elements.sort_by_key(|s| {
            s.attr("Number")
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0)
        });
        for step in step_elements {
            let Some(scene) = step
                .text
                .trim()
                .parse::<u32>()
                .ok()
                .and_then(|id| by_id.get(&id).copied())
            else {
                self.note(
                    NoticeKind::Warning,
                    Some(step),
                    format!("{element} {}", step.describe()),
                    format!(
                        "step names function {:?}, which the workspace does not define; dropped",
                        step.text.trim()
                    ),
                );
                continue;
            };
            if scene.attr("Type") != Some("Scene") {
                self.note(
                    NoticeKind::Warning,
                    Some(step),
                    format!("{element} {}", step.describe()),
                    format!(
                        "step runs {} {:?}; only scene steps are carried over, dropped",
                        scene.attr("Type").unwrap_or("?"),
                        scene.attr("Name").unwrap_or("")
                    ),
                );
                continue;
            }
            let own = Speed::of(scene);
            let per_step = Speed::of_step(step);
            let pick = |mode: &str, default: u64, common: u64, step: u64| match mode {
                "Common" => common,
                "PerStep" => step,
                _ => default,
            };
            let fade_in = pick(&fade_in_mode, own.fade_in, common.fade_in, per_step.fade_in);
            let fade_out = pick(
                &fade_out_mode,
                own.fade_out,
                common.fade_out,
                per_step.fade_out,
            );
            let duration = pick(
                &duration_mode,
                own.duration,
                common.duration,
                per_step.duration,
            );
            let values = self.scene_values(scene);
            steps.push(StepCue {
                label: scene.attr("Name").unwrap_or("").to_string(),
                values,
                fade_in,
                fade_out,
                hold: Some(duration),
            });
        }
        if steps.is_empty() {
            self.note(
                NoticeKind::Warning,
                Some(f),
                element,
                "chaser has no scene steps; not carried over".to_string(),
            );
            return Ok(None);
        }
        if f.child_text("Direction") == Some("Backward") {
            steps.reverse();
        }
        let looped = match f.child_text("RunOrder").unwrap_or("Loop") {
            "SingleShot" => false,
            "PingPong" => {
                // Forward then back, without repeating the end steps: 1 2 3 2 (1 2 3 2 …).
                let back: Vec<StepCue> = steps
                    .iter()
                    .rev()
                    .skip(1)
                    .take(steps.len().saturating_sub(2))
                    .cloned()
                    .collect();
                steps.extend(back);
                self.note(
                    NoticeKind::Dropped,
                    Some(f),
                    element.clone(),
                    "ping-pong run order unrolled into a looped list".to_string(),
                );
                true
            }
            "Random" => {
                self.note(
                    NoticeKind::Warning,
                    Some(f),
                    element.clone(),
                    "random run order has no equivalent; the list runs its steps in order"
                        .to_string(),
                );
                true
            }
            _ => true,
        };
        let name = unique_name(&name, self.show.cue_lists.iter().map(|l| l.name.as_str()));
        Ok(Some(self.cue_list(name, steps, looped)))
    }

    /// Builds a tracking cue list that plays like QLC+'s non-tracking steps.
    fn cue_list(&mut self, name: String, steps: Vec<StepCue>, looped: bool) -> CueList {
        let tick_ms = 1000 / u64::from(DEFAULT_TICK_RATE) + 1;
        // Every HTP attribute any step sets: the steps that do not set it set it to zero.
        let mut htp: BTreeSet<(Target, Attribute)> = BTreeSet::new();
        for s in &steps {
            for (target, attrs) in &s.values {
                for a in attrs.keys() {
                    if let Target::Fixture(fid) = target
                        && self.is_htp(*fid, a)
                    {
                        htp.insert((target.clone(), a.clone()));
                    }
                }
            }
        }
        let mut raised = false;
        let count = steps.len();
        let mut cues = Vec::with_capacity(count);
        for (i, s) in steps.iter().enumerate() {
            let mut values = s.values.clone();
            for (target, attribute) in &htp {
                values
                    .entry(target.clone())
                    .or_default()
                    .entry(attribute.clone())
                    .or_insert(Value::Dmx(0));
            }
            // The previous step's fade out is how long its intensities take to leave.
            let previous = if i > 0 {
                Some(&steps[i - 1])
            } else if looped {
                steps.last()
            } else {
                None
            };
            let fade_in = ms(s.fade_in);
            let fade_out = previous
                .map(|p| ms(p.fade_out))
                .filter(|out| *out != fade_in);
            let follow = match s.hold {
                Some(d) if d >= INFINITE_MS => None,
                Some(d) => {
                    if d < tick_ms {
                        raised = true;
                    }
                    Some(Follow::After(ms(d.max(tick_ms))))
                }
                None => None,
            };
            // Follow is pointless on the last cue of a list that does not loop.
            let follow = if !looped && i + 1 == count {
                None
            } else {
                follow
            };
            cues.push(Cue {
                number: CueNumber((i as u32 + 1) * 1000),
                label: s.label.clone(),
                fade_in,
                fade_out,
                delay: 0.0,
                follow,
                assert: false,
                values,
            });
        }
        if raised {
            self.notices.push(Notice {
                kind: NoticeKind::Dropped,
                line: None,
                element: format!("cue list {name:?}"),
                message: format!(
                    "steps shorter than one DMX tick ({tick_ms} ms at {DEFAULT_TICK_RATE} Hz) follow after one tick"
                ),
            });
        }
        CueList { name, looped, cues }
    }

    fn outputs(&mut self, engine: &Element) {
        let universes = engine
            .child("InputOutputMap")
            .into_iter()
            .flat_map(|map| map.children_named("Universe"));
        for u in universes {
            let Some(id) = u
                .attr("ID")
                .and_then(|v| v.parse::<u16>().ok())
                .and_then(|v| v.checked_add(1))
            else {
                continue;
            };
            for out in u.children_named("Output") {
                let plugin = out.attr("Plugin").unwrap_or("");
                let output = match plugin {
                    "E1.31" => Some(Output::Sacn(SacnOutput {
                        universe: None,
                        destination: Default::default(),
                        priority: 100,
                        sync_universe: None,
                        preview: false,
                    })),
                    "ArtNet" => Some(Output::ArtNet(crate::model::ArtNetOutput {
                        port_address: None,
                        destination: Default::default(),
                    })),
                    _ => None,
                };
                let Some(output) = output else {
                    self.note(
                        NoticeKind::Warning,
                        Some(out),
                        format!("<Universe ID=\"{}\"> <Output>", id - 1),
                        format!("output plugin {plugin:?} not carried over; add an output to universe {id}"),
                    );
                    continue;
                };
                let universe = match self.show.universes.iter_mut().find(|x| x.id == id) {
                    Some(universe) => universe,
                    None => {
                        self.show.universes.push(Universe {
                            id,
                            label: String::new(),
                            outputs: Vec::new(),
                            input: None,
                        });
                        self.show.universes.sort_by_key(|x| x.id);
                        match self.show.universes.iter_mut().find(|x| x.id == id) {
                            Some(universe) => universe,
                            None => continue,
                        }
                    }
                };
                universe.outputs.push(output);
                self.notices.push(Notice {
                    kind: NoticeKind::Dropped,
                    line: Some(self.doc.line(out)),
                    element: format!("<Universe ID=\"{}\"> <Output Plugin={plugin:?}>", id - 1),
                    message: "plugin line and parameters (default sACN/Art-Net settings used)"
                        .to_string(),
                });
            }
        }
        if self.show.universes.iter().all(|u| u.outputs.is_empty())
            && !self.show.universes.is_empty()
        {
            self.notices.push(Notice {
                kind: NoticeKind::Warning,
                line: None,
                element: "universes".to_string(),
                message: "no universe has an sACN or Art-Net output in the workspace; the show computes them but sends nothing until you add outputs".to_string(),
            });
        }
    }

    fn dropped_sections(&mut self, root: &Element) {
        if let Some(vc) = root.child("VirtualConsole") {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            count_widgets(vc, &mut counts);
            let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
            self.note(
                NoticeKind::Dropped,
                Some(vc),
                "<VirtualConsole>".to_string(),
                format!(
                    "virtual console ({}); playbacks stand in for its buttons",
                    parts.join(", ")
                ),
            );
        }
        if let Some(desk) = root.child("SimpleDesk") {
            self.note(
                NoticeKind::Dropped,
                Some(desk),
                "<SimpleDesk>".to_string(),
                "simple desk layout".to_string(),
            );
        }
    }
}

fn count_widgets<'a>(e: &'a Element, counts: &mut BTreeMap<&'a str, usize>) {
    for c in &e.children {
        if matches!(
            c.name.as_str(),
            "Button"
                | "Slider"
                | "Frame"
                | "SoloFrame"
                | "Label"
                | "XYPad"
                | "CueList"
                | "SpeedDial"
                | "Knob"
                | "Clock"
                | "AudioTriggers"
                | "Matrix"
                | "Animation"
        ) {
            *counts.entry(c.name.as_str()).or_default() += 1;
        }
        count_widgets(c, counts);
    }
}

/// One step (or scene) before it becomes a cue; times in ms.
#[derive(Debug, Clone)]
struct StepCue {
    label: String,
    values: CueValues,
    fade_in: u64,
    fade_out: u64,
    /// Step duration (fade in + hold); `None` for a scene cue (waits for GO).
    hold: Option<u64>,
}

/// QLC+ speeds in ms.
#[derive(Debug, Clone, Copy, Default)]
struct Speed {
    fade_in: u64,
    fade_out: u64,
    duration: u64,
}

impl Speed {
    /// A function's `<Speed FadeIn FadeOut Duration>`.
    fn of(f: &Element) -> Speed {
        let Some(s) = f.child("Speed") else {
            return Speed::default();
        };
        let n = |a: &str| {
            s.attr(a)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Speed {
            fade_in: n("FadeIn"),
            fade_out: n("FadeOut"),
            duration: n("Duration"),
        }
    }

    /// A chaser step's own times: `Duration`, or (QLC+ 4.12) `FadeIn + Hold`.
    fn of_step(step: &Element) -> Speed {
        let n = |a: &str| step.attr(a).and_then(|v| v.trim().parse::<u64>().ok());
        let fade_in = n("FadeIn").unwrap_or(0);
        let duration = match (n("Duration"), n("Hold")) {
            (Some(d), _) => d,
            (None, Some(h)) if h >= INFINITE_MS => h,
            (None, Some(h)) => fade_in + h,
            (None, None) => 0,
        };
        Speed {
            fade_in,
            fade_out: n("FadeOut").unwrap_or(0),
            duration,
        }
    }
}

/// Milliseconds as seconds; QLC+'s "infinite" fade becomes no fade.
fn ms(v: u64) -> f64 {
    if v >= INFINITE_MS {
        0.0
    } else {
        v as f64 / 1000.0
    }
}

/// `name`, or `name (2)`, `name (3)`… if taken (QLC+ allows duplicate function names).
fn unique_name<'a>(name: &str, taken: impl Iterator<Item = &'a str>) -> String {
    let taken: BTreeSet<&str> = taken.collect();
    if !taken.contains(name) {
        return name.to_string();
    }
    (2..)
        .map(|n| format!("{name} ({n})"))
        .find(|candidate| !taken.contains(candidate.as_str()))
        .unwrap_or_else(|| name.to_string())
}

/// The profile standing in for one channel of QLC+'s built-in generic dimmer pack.
fn generic_dimmer() -> FixtureProfile {
    FixtureProfile {
        manufacturer: "Generic".to_string(),
        model: "Dimmer".to_string(),
        kind: FixtureKind::Dimmer,
        channels: vec![Channel {
            name: "Dimmer".to_string(),
            attribute: Attribute::Intensity,
            fine: None,
            default: 0,
            highlight: None,
            capabilities: Vec::new(),
        }],
        modes: vec![Mode {
            name: "1 channel".to_string(),
            channels: vec!["Dimmer".to_string()],
        }],
        physical: None,
    }
}
