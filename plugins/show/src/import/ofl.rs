//! Open Fixture Library fixtures (JSON, the OFL fixture schema).
//!
//! An OFL fixture keys its channels by name in `availableChannels`; a channel carries
//! `fineChannelAliases` for its 16-bit (and 24-bit) bytes, one `capability` or a list of
//! `capabilities` with `dmxRange`s at the channel's resolution, and `defaultValue`s that may
//! be percentages. Modes list channel keys, `null` for an unused slot, or a
//! `matrixChannels` insert block that repeats template channels per pixel.
//!
//! Kept: modes with exact footprints (a `null` slot becomes an "Unused n" channel),
//! channels and their coarse/fine pairs, capability ranges (scaled to the coarse byte) with
//! labels built from the capability's type, wheel slot names and comment, defaults,
//! highlights, pan/tilt range (from `physical.focus` or the Pan/Tilt angles), beam angle,
//! power, weight. Template channels are resolved for the pixel keys modes name.
//!
//! Dropped, and said: a third (24-bit) byte (kept as its own 8-bit channel), switching
//! channels (imported as their default target), modes with matrix insert blocks in pixel
//! orders we cannot expand, bulb, dimensions, lens name, DMX connector, RDM data, pixel
//! layout.
//!
//! JSON parsers keep no positions, so errors name the element by path
//! (`availableChannels."Pan".capabilities[2]`) and give the line where the key first
//! appears in the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value};

use super::{
    Draft, DraftChannel, DraftMode, ImportError, ImportedProfile, LineIndex, Location,
    MAX_CAPABILITIES, MAX_CHANNELS, MAX_MODES, Notice, NoticeKind, SourceFormat, check_label,
    check_name,
};
use crate::model::{Attribute, Capability, FixtureKind, Physical};

/// The manufacturer of a fixture file by OFL's layout `fixtures/<manufacturer-key>/<fixture>.json`:
/// its name from `fixtures/manufacturers.json` when that exists, else the key in title case
/// (`clay-paky` → `Clay Paky`).
pub fn manufacturer_for_path(path: &Path) -> String {
    let Some(dir) = path.parent() else {
        return String::new();
    };
    let key = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    if let Some(index) = dir.parent().map(|p| p.join("manufacturers.json"))
        && let Ok(text) = std::fs::read_to_string(index)
        && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text)
        && let Some(name) = map
            .get(&key)
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
    {
        return name.to_string();
    }
    key.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Imports the text of an OFL fixture file; `file` names it in errors and notices, and
/// `manufacturer` is the manufacturer's display name (OFL keeps it outside the fixture).
pub fn import_ofl_str(
    text: &str,
    file: &str,
    manufacturer: &str,
) -> Result<ImportedProfile, ImportError> {
    let root: Value = serde_json::from_str(text).map_err(|e| {
        // serde_json appends " at line L column C"; the location says it already.
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        ImportError::Malformed {
            at: Location::at(file, e.line(), e.column()),
            format: "JSON",
            message,
        }
    })?;
    let reader = Reader {
        file,
        text,
        lines: LineIndex::new(text),
    };
    let Value::Object(root) = root else {
        return Err(ImportError::UnknownFormat {
            file: file.to_string(),
        });
    };
    if !root.contains_key("availableChannels") && !root.contains_key("templateChannels")
        || !root.contains_key("modes")
    {
        return Err(ImportError::UnknownFormat {
            file: file.to_string(),
        });
    }
    reader.import(&root, manufacturer)
}

struct Reader<'a> {
    file: &'a str,
    text: &'a str,
    lines: LineIndex,
}

/// A channel definition (from `availableChannels` or a resolved template) under its key.
struct ChannelDef<'a> {
    key: String,
    def: &'a Map<String, Value>,
    /// For a resolved template channel: the template's key and the pixel key.
    template: Option<(String, String)>,
}

impl Reader<'_> {
    /// Line where `"key"` first appears as an object key.
    fn line_of_key(&self, key: &str) -> Option<usize> {
        let quoted = serde_json::to_string(key).ok()?;
        let mut from = 0;
        while let Some(found) = self.text[from..].find(&quoted) {
            let at = from + found;
            let rest = self.text[at + quoted.len()..].trim_start();
            if rest.starts_with(':') {
                return Some(self.lines.line_column(at).0);
            }
            from = at + quoted.len();
        }
        None
    }

    /// Line where a string value first appears.
    fn line_of_value(&self, value: &str) -> Option<usize> {
        let quoted = serde_json::to_string(value).ok()?;
        self.text
            .find(&quoted)
            .map(|at| self.lines.line_column(at).0)
    }

    /// Line of the `nth` (0-based) `"name": "<name>"` in the file: where the nth mode of
    /// that name starts.
    fn line_of_name(&self, name: &str, nth: usize) -> Option<usize> {
        let quoted = serde_json::to_string(name).ok()?;
        let mut seen = 0;
        let mut from = 0;
        while let Some(found) = self.text[from..].find(&quoted) {
            let at = from + found;
            if let Some(before) = self.text[..at].trim_end().strip_suffix(':')
                && before.trim_end().ends_with("\"name\"")
            {
                if seen == nth {
                    return Some(self.lines.line_column(at).0);
                }
                seen += 1;
            }
            from = at + quoted.len();
        }
        None
    }

    fn location(&self, line: Option<usize>) -> Location {
        match line {
            Some(l) => Location::at(self.file, l, 1),
            None => Location::file(self.file),
        }
    }

    fn defect(
        &self,
        line: Option<usize>,
        element: impl Into<String>,
        message: impl Into<String>,
    ) -> ImportError {
        ImportError::defect(self.location(line), element, message)
    }

    fn import(
        &self,
        root: &Map<String, Value>,
        manufacturer: &str,
    ) -> Result<ImportedProfile, ImportError> {
        let mut notices = Vec::new();
        let name = match root.get("name") {
            Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_string(),
            _ => return Err(self.defect(None, "name", "fixture has no name")),
        };
        check_name(
            &name,
            || self.location(self.line_of_key("name")),
            || "name".to_string(),
        )?;
        if manufacturer.trim().is_empty() {
            return Err(self.defect(
                None,
                "(file path)",
                "no manufacturer: OFL fixtures live in fixtures/<manufacturer>/<fixture>.json",
            ));
        }
        let kind = root
            .get("categories")
            .and_then(Value::as_array)
            .map(|cats| {
                cats.iter()
                    .filter_map(Value::as_str)
                    .find_map(kind_for_category)
            })
            .unwrap_or_default()
            .unwrap_or_default();

        let empty = Map::new();
        let available = object_at(root, "availableChannels").unwrap_or(&empty);
        let templates = object_at(root, "templateChannels").unwrap_or(&empty);
        let wheels = object_at(root, "wheels").unwrap_or(&empty);
        if available.len() + templates.len() > MAX_CHANNELS {
            return Err(self.defect(
                self.line_of_key("availableChannels"),
                "availableChannels",
                format!(
                    "defines {} channels, more than the {MAX_CHANNELS} a fixture may have",
                    available.len() + templates.len()
                ),
            ));
        }
        let pixel_keys = pixel_keys(root.get("matrix"));

        // Modes first: they decide which channels (and which template resolutions) exist.
        let Some(Value::Array(mode_values)) = root.get("modes") else {
            return Err(self.defect(self.line_of_key("modes"), "modes", "modes must be a list"));
        };
        if mode_values.len() > MAX_MODES {
            return Err(self.defect(
                self.line_of_key("modes"),
                "modes",
                format!(
                    "defines {} modes, more than the {MAX_MODES} a fixture may have",
                    mode_values.len()
                ),
            ));
        }
        let mut modes: Vec<DraftMode> = Vec::new();
        let mut unused_slots = 0usize;
        for (i, m) in mode_values.iter().enumerate() {
            if let Some(mode) =
                self.read_mode(i, m, root, &pixel_keys, &mut notices, &mut unused_slots)?
            {
                modes.push(mode);
            }
        }
        if modes.is_empty() {
            return Err(self.defect(
                self.line_of_key("modes"),
                "modes",
                "no mode could be imported (see the notices above)",
            ));
        }

        // Channel definitions by every key a mode can name: channel keys, their fine
        // aliases, resolved template channels and switching-channel aliases.
        let mut defs: Vec<ChannelDef> = available
            .iter()
            .filter_map(|(k, v)| {
                v.as_object().map(|def| ChannelDef {
                    key: k.clone(),
                    def,
                    template: None,
                })
            })
            .collect();
        if defs.len() != available.len() {
            let bad = available
                .iter()
                .find(|(_, v)| !v.is_object())
                .map(|(k, _)| k.clone());
            let bad = bad.unwrap_or_default();
            return Err(self.defect(
                self.line_of_key(&bad),
                format!("availableChannels.{bad:?}"),
                "channel must be an object",
            ));
        }
        let named: BTreeSet<&str> = modes
            .iter()
            .flat_map(|m| m.slots.iter().map(String::as_str))
            .collect();
        for (template_key, v) in templates {
            let Some(def) = v.as_object() else {
                return Err(self.defect(
                    self.line_of_key(template_key),
                    format!("templateChannels.{template_key:?}"),
                    "template channel must be an object",
                ));
            };
            for pixel in &pixel_keys {
                let key = template_key.replace("$pixelKey", pixel);
                if named.contains(key.as_str()) {
                    defs.push(ChannelDef {
                        key,
                        def,
                        template: Some((template_key.clone(), pixel.clone())),
                    });
                }
            }
        }

        let mut channels: Vec<DraftChannel> = Vec::new();
        let mut switching: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut switch_targets: BTreeSet<String> = BTreeSet::new();
        for d in &defs {
            self.read_channel(
                d,
                wheels,
                &mut channels,
                &mut switching,
                &mut switch_targets,
                &mut notices,
            )?;
        }
        // A switching channel's function depends on another channel's value; we keep the
        // function it has at that channel's default.
        for (alias, (default_target, switched_by)) in &switching {
            if !named.contains(alias.as_str()) {
                continue;
            }
            let Some(target) = channels.iter().find(|c| c.name == *default_target).cloned() else {
                return Err(self.defect(
                    self.line_of_key(switched_by),
                    format!("availableChannels.{switched_by:?}"),
                    format!(
                        "switchChannels names {default_target:?}, which the fixture does not define"
                    ),
                ));
            };
            notices.push(Notice {
                kind: NoticeKind::Warning,
                line: self.line_of_value(alias),
                element: format!("switching channel {alias:?}"),
                message: format!(
                    "its function depends on {switched_by:?}; imported as {default_target:?}, its function at {switched_by:?}'s default value"
                ),
            });
            channels.push(DraftChannel {
                name: alias.clone(),
                fine_of: None,
                element: format!("switching channel {alias:?}"),
                line: self.line_of_value(alias),
                ..target
            });
        }
        // Targets of switching channels that no mode lists exist only through their alias.
        channels.retain(|c| {
            let target = c.fine_of.as_ref().unwrap_or(&c.name);
            named.contains(c.name.as_str()) || !switch_targets.contains(target)
        });
        for n in 1..=unused_slots {
            let name = unused_name(n);
            channels.push(DraftChannel {
                attribute: Attribute::Other(name.clone()),
                name,
                fine_of: None,
                default: 0,
                highlight: None,
                capabilities: Vec::new(),
                line: None,
                element: "null".to_string(),
            });
        }
        // Source order for channels follows the modes, so profiles read like the fixture.
        let mut order: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, s) in modes.iter().flat_map(|m| m.slots.iter()).enumerate() {
            order.entry(s.as_str()).or_insert(i);
        }
        channels.sort_by_key(|c| order.get(c.name.as_str()).copied().unwrap_or(usize::MAX));

        let physical = self.read_physical(root, &channels_angles(&defs), &mut notices);
        for (key, what) in [
            ("rdm", "RDM model id and software version"),
            ("matrix", "pixel matrix layout"),
        ] {
            if root.contains_key(key) {
                notices.push(Notice {
                    kind: NoticeKind::Dropped,
                    line: self.line_of_key(key),
                    element: key.to_string(),
                    message: what.to_string(),
                });
            }
        }

        Draft {
            file: self.file.to_string(),
            format: SourceFormat::Ofl,
            manufacturer: manufacturer.trim().to_string(),
            model: name.clone(),
            kind,
            channels,
            modes,
            physical,
            notices,
            element: format!("fixture {name:?}"),
        }
        .assemble()
    }

    fn read_mode(
        &self,
        index: usize,
        m: &Value,
        root: &Map<String, Value>,
        pixel_keys: &[String],
        notices: &mut Vec<Notice>,
        unused_slots: &mut usize,
    ) -> Result<Option<DraftMode>, ImportError> {
        let element = format!("modes[{index}]");
        let Some(m) = m.as_object() else {
            return Err(self.defect(self.line_of_key("modes"), element, "mode must be an object"));
        };
        let name = match m.get("name") {
            Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_string(),
            _ => return Err(self.defect(self.line_of_key("modes"), element, "mode has no name")),
        };
        let earlier_namesakes = root
            .get("modes")
            .and_then(Value::as_array)
            .map(|modes| {
                modes[..index]
                    .iter()
                    .filter(|m| {
                        m.get("name").and_then(Value::as_str).map(str::trim) == Some(name.as_str())
                    })
                    .count()
            })
            .unwrap_or(0);
        let line = self.line_of_name(&name, earlier_namesakes);
        let element = format!("modes[{index}] {name:?}");
        check_name(&name, || self.location(line), || element.clone())?;
        let Some(Value::Array(entries)) = m.get("channels") else {
            return Err(self.defect(line, element, "mode has no channel list"));
        };
        if entries.len() > crate::model::UNIVERSE_SLOTS {
            return Err(self.defect(
                line,
                element,
                format!(
                    "mode has {} entries, more than the 512 of a DMX universe",
                    entries.len()
                ),
            ));
        }
        let mut slots = Vec::with_capacity(entries.len());
        let mut unused_here = 0usize;
        for (i, entry) in entries.iter().enumerate() {
            match entry {
                Value::Null => {
                    unused_here += 1;
                    slots.push(unused_name(unused_here));
                }
                Value::String(key) => slots.push(key.clone()),
                Value::Object(insert)
                    if insert.get("insert").and_then(Value::as_str) == Some("matrixChannels") =>
                {
                    match expand_matrix_insert(insert, root, pixel_keys) {
                        Ok(expanded) => {
                            for s in expanded {
                                match s {
                                    Some(key) => slots.push(key),
                                    None => {
                                        unused_here += 1;
                                        slots.push(unused_name(unused_here));
                                    }
                                }
                            }
                        }
                        Err(why) => {
                            notices.push(Notice {
                                kind: NoticeKind::Warning,
                                line,
                                element: format!("{element} channels[{i}]"),
                                message: format!("matrix channel insert: {why}; mode dropped"),
                            });
                            return Ok(None);
                        }
                    }
                }
                other => {
                    return Err(self.defect(
                        line,
                        format!("{element} channels[{i}]"),
                        format!(
                            "expected a channel key, null or a matrixChannels insert, found {other}"
                        ),
                    ));
                }
            }
        }
        if slots.len() > crate::model::UNIVERSE_SLOTS {
            return Err(self.defect(
                line,
                element,
                format!(
                    "mode expands to {} channels, more than the 512 of a DMX universe",
                    slots.len()
                ),
            ));
        }
        *unused_slots = (*unused_slots).max(unused_here);
        if m.contains_key("physical") {
            notices.push(Notice {
                kind: NoticeKind::Dropped,
                line,
                element: format!("{element} physical"),
                message: "per-mode physical data (the fixture's own is kept)".to_string(),
            });
        }
        Ok(Some(DraftMode {
            name,
            slots,
            line,
            element,
        }))
    }

    fn read_channel(
        &self,
        d: &ChannelDef,
        wheels: &Map<String, Value>,
        channels: &mut Vec<DraftChannel>,
        switching: &mut BTreeMap<String, (String, String)>,
        switch_targets: &mut BTreeSet<String>,
        notices: &mut Vec<Notice>,
    ) -> Result<(), ImportError> {
        let (element, line) = match &d.template {
            Some((template, pixel)) => (
                format!("templateChannels.{template:?} for pixel {pixel:?}"),
                self.line_of_key(template),
            ),
            None => (
                format!("availableChannels.{:?}", d.key),
                self.line_of_key(&d.key),
            ),
        };
        let defect = |message: String| self.defect(line, element.clone(), message);
        check_name(&d.key, || self.location(line), || element.clone())?;
        let subst = |s: &str| match &d.template {
            Some((_, p)) => s.replace("$pixelKey", p),
            None => s.to_string(),
        };

        let fines: Vec<String> = match d.def.get("fineChannelAliases") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(subst)
                        .ok_or_else(|| defect("fineChannelAliases must be strings".into()))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(defect("fineChannelAliases must be a list".into())),
        };
        // Capability ranges and default values are at this resolution (bytes).
        let resolution = match d.def.get("dmxValueResolution").and_then(Value::as_str) {
            None => fines.len() + 1,
            Some("8bit") => 1,
            Some("16bit") => 2,
            Some("24bit") => 3,
            Some(other) => return Err(defect(format!("unknown dmxValueResolution {other:?}"))),
        };
        let max_value: u64 = (1u64 << (8 * resolution)) - 1;
        let to_coarse =
            |v: u64| -> u8 { u8::try_from(v >> (8 * (resolution - 1))).unwrap_or(u8::MAX) };
        let value_of = |field: &str| -> Result<Option<u8>, ImportError> {
            match d.def.get(field) {
                None => Ok(None),
                Some(Value::Number(n)) => match n.as_u64().filter(|v| *v <= max_value) {
                    Some(v) => Ok(Some(to_coarse(v))),
                    None => Err(defect(format!(
                        "{field} {n} is not a DMX value 0..={max_value} at {}-bit resolution",
                        8 * resolution
                    ))),
                },
                Some(Value::String(s)) => {
                    let pct = s
                        .strip_suffix('%')
                        .and_then(|p| p.trim().parse::<f64>().ok())
                        .filter(|p| (0.0..=100.0).contains(p))
                        .ok_or_else(|| {
                            defect(format!(
                                "{field} {s:?} is neither a DMX value nor a percentage"
                            ))
                        })?;
                    Ok(Some((pct / 100.0 * 255.0).round() as u8))
                }
                Some(other) => Err(defect(format!("{field} {other} is not a DMX value"))),
            }
        };
        let default = value_of("defaultValue")?.unwrap_or(0);
        let highlight = value_of("highlightValue")?;

        let caps: Vec<&Map<String, Value>> =
            match (d.def.get("capability"), d.def.get("capabilities")) {
                (Some(Value::Object(c)), None) => vec![c],
                (None, Some(Value::Array(list))) => list
                    .iter()
                    .map(|c| {
                        c.as_object()
                            .ok_or_else(|| defect("capabilities must be objects".into()))
                    })
                    .collect::<Result<_, _>>()?,
                (Some(_), Some(_)) => {
                    return Err(defect("has both capability and capabilities".into()));
                }
                _ => {
                    return Err(defect(
                        "has neither a capability nor a capabilities list".into(),
                    ));
                }
            };
        if caps.len() > MAX_CAPABILITIES {
            return Err(defect(format!(
                "{} capabilities, more than the {MAX_CAPABILITIES} a channel may have",
                caps.len()
            )));
        }
        let single = caps.len() == 1 && d.def.contains_key("capability");
        let mut capabilities = Vec::new();
        let mut previous_end: Option<u64> = None;
        for (i, cap) in caps.iter().enumerate() {
            let cap_element = if single {
                format!("{element}.capability")
            } else {
                format!("{element}.capabilities[{i}]")
            };
            let kind = cap
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| self.defect(line, cap_element.clone(), "capability has no type"))?;
            let range = if single {
                None
            } else {
                let r = cap
                    .get("dmxRange")
                    .and_then(Value::as_array)
                    .filter(|r| r.len() == 2)
                    .and_then(|r| Some((r[0].as_u64()?, r[1].as_u64()?)))
                    .ok_or_else(|| {
                        self.defect(line, cap_element.clone(), "dmxRange must be [start, end]")
                    })?;
                if r.0 > r.1 || r.1 > max_value {
                    return Err(self.defect(
                        line,
                        cap_element.clone(),
                        format!(
                            "dmxRange [{}, {}] is not a range within 0..={max_value} ({}-bit)",
                            r.0,
                            r.1,
                            8 * resolution
                        ),
                    ));
                }
                if let Some(end) = previous_end
                    && r.0 <= end
                {
                    return Err(self.defect(
                        line,
                        cap_element.clone(),
                        format!(
                            "dmxRange [{}, {}] overlaps the capability before it",
                            r.0, r.1
                        ),
                    ));
                }
                previous_end = Some(r.1);
                Some(r)
            };
            if let Some(Value::Object(switch)) = cap.get("switchChannels") {
                for (alias, target) in switch {
                    let target = target.as_str().map(subst).unwrap_or_default();
                    switch_targets.insert(target.clone());
                    let in_default = range.is_none_or(|(lo, hi)| {
                        let dv = u64::from(default) << (8 * (resolution - 1));
                        (lo..=hi).contains(&dv)
                    });
                    let entry = switching
                        .entry(subst(alias))
                        .or_insert_with(|| (target.clone(), d.key.clone()));
                    if in_default {
                        *entry = (target, d.key.clone());
                    }
                }
            }
            let label = capability_label(cap, kind, &d.key, wheels);
            check_label(&label, || self.location(line), || cap_element.clone())?;
            if let Some((lo, hi)) = range {
                capabilities.push(Capability {
                    min: to_coarse(lo),
                    max: to_coarse(hi),
                    label,
                });
            }
        }
        let attribute = channel_attribute(&caps, &d.key, wheels);
        // Our engine merges by attribute (intensities HTP, the rest LTP) and lets every
        // channel be driven; a channel's own precedence or constancy has no place.
        if let Some(p) = d.def.get("precedence").and_then(Value::as_str) {
            notices.push(Notice {
                kind: NoticeKind::Dropped,
                line,
                element: format!("{element}.precedence"),
                message: format!(
                    "{p} precedence (merging follows the attribute, {})",
                    attribute.name()
                ),
            });
        }
        if d.def.get("constant").and_then(Value::as_bool) == Some(true) {
            notices.push(Notice {
                kind: NoticeKind::Dropped,
                line,
                element: format!("{element}.constant"),
                message: "constant flag (the channel stays programmable)".to_string(),
            });
        }

        channels.push(DraftChannel {
            name: d.key.clone(),
            attribute,
            fine_of: None,
            default,
            highlight,
            capabilities,
            line,
            element: element.clone(),
        });
        for (i, fine) in fines.iter().enumerate() {
            if i == 0 {
                channels.push(DraftChannel {
                    name: fine.clone(),
                    attribute: Attribute::Other(fine.clone()),
                    fine_of: Some(d.key.clone()),
                    default: 0,
                    highlight: None,
                    capabilities: Vec::new(),
                    line,
                    element: format!("{element}.fineChannelAliases[0]"),
                });
            } else {
                notices.push(Notice {
                    kind: NoticeKind::Warning,
                    line,
                    element: format!("{element}.fineChannelAliases[{i}]"),
                    message: format!(
                        "profiles hold 16 bits per channel; the {}-bit byte {fine:?} is imported as an 8-bit channel Other({fine:?})",
                        8 * (i + 2)
                    ),
                });
                channels.push(DraftChannel {
                    name: fine.clone(),
                    attribute: Attribute::Other(fine.clone()),
                    fine_of: None,
                    default: 0,
                    highlight: None,
                    capabilities: Vec::new(),
                    line,
                    element: format!("{element}.fineChannelAliases[{i}]"),
                });
            }
        }
        Ok(())
    }

    fn read_physical(
        &self,
        root: &Map<String, Value>,
        angles: &Angles,
        notices: &mut Vec<Notice>,
    ) -> Option<Physical> {
        let empty = Map::new();
        let p = object_at(root, "physical").unwrap_or(&empty);
        let num = |v: Option<&Value>| {
            v.and_then(Value::as_f64)
                .filter(|x| x.is_finite() && *x > 0.0)
        };
        let mut dropped = Vec::new();
        let lens = p.get("lens").and_then(Value::as_object);
        let degrees = lens
            .and_then(|l| l.get("degreesMinMax"))
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_f64()?, a[1].as_f64()?)));
        let beam_angle = match degrees {
            Some((lo, hi)) if hi > lo => {
                dropped.push(format!(
                    "zoom range {lo}°–{hi}° (kept the widest, {hi}°, as beam_angle)"
                ));
                Some(hi)
            }
            Some((_, hi)) if hi > 0.0 => Some(hi),
            _ => None,
        };
        let focus = p.get("focus").and_then(Value::as_object);
        let mut range = |key: &str, from_caps: Option<f64>| -> Option<f64> {
            match focus.and_then(|f| f.get(key)) {
                Some(Value::String(s)) if s == "infinite" => {
                    dropped.push(format!("{key} \"infinite\" (continuous rotation)"));
                    None
                }
                v => num(v).or(from_caps),
            }
        };
        let pan_range = range("panMax", angles.pan);
        let tilt_range = range("tiltMax", angles.tilt);
        if let Some(bulb) = p.get("bulb").and_then(Value::as_object) {
            let parts: Vec<String> = bulb.iter().map(|(k, v)| format!("{k} {v}")).collect();
            dropped.push(format!("bulb ({})", parts.join(", ")));
        }
        if let Some(dims) = p.get("dimensions").and_then(Value::as_array) {
            let parts: Vec<String> = dims.iter().map(Value::to_string).collect();
            dropped.push(format!("dimensions {} mm", parts.join("×")));
        }
        if let Some(name) = lens.and_then(|l| l.get("name")).and_then(Value::as_str) {
            dropped.push(format!("lens {name:?}"));
        }
        if let Some(c) = p.get("DMXconnector").and_then(Value::as_str) {
            dropped.push(format!("DMX connector {c:?}"));
        }
        if p.contains_key("matrixPixels") {
            dropped.push("matrix pixel dimensions and spacing".to_string());
        }
        if !dropped.is_empty() {
            notices.push(Notice {
                kind: NoticeKind::Dropped,
                line: self.line_of_key("physical"),
                element: "physical".to_string(),
                message: dropped.join(", "),
            });
        }
        let physical = Physical {
            beam_angle,
            pan_range,
            tilt_range,
            power: num(p.get("power")),
            weight: num(p.get("weight")),
        };
        let empty = physical.beam_angle.is_none()
            && physical.pan_range.is_none()
            && physical.tilt_range.is_none()
            && physical.power.is_none()
            && physical.weight.is_none();
        (!empty).then_some(physical)
    }
}

fn object_at<'a>(root: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    root.get(key).and_then(Value::as_object)
}

/// Name of the placeholder channel for a mode's n-th `null` slot.
fn unused_name(n: usize) -> String {
    format!("Unused {n}")
}

/// Pixel keys (and pixel group keys) a template channel can be resolved with.
fn pixel_keys(matrix: Option<&Value>) -> Vec<String> {
    let Some(matrix) = matrix.and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = Vec::new();
    if let Some(z_layers) = matrix.get("pixelKeys").and_then(Value::as_array) {
        for y_rows in z_layers.iter().filter_map(Value::as_array) {
            for x_row in y_rows.iter().filter_map(Value::as_array) {
                keys.extend(x_row.iter().filter_map(Value::as_str).map(str::to_string));
            }
        }
    } else if let Some(count) = matrix.get("pixelCount").and_then(Value::as_array) {
        // OFL names the pixels of a one-dimensional matrix 1, 2, 3, …
        let dims: Vec<u64> = count.iter().filter_map(Value::as_u64).collect();
        let along: Vec<u64> = dims.iter().copied().filter(|d| *d > 1).collect();
        if along.len() <= 1 {
            let n = dims
                .iter()
                .product::<u64>()
                .min(crate::model::UNIVERSE_SLOTS as u64);
            keys.extend((1..=n).map(|i| i.to_string()));
        }
    }
    if let Some(groups) = matrix.get("pixelGroups").and_then(Value::as_object) {
        keys.extend(groups.keys().cloned());
    }
    keys
}

/// Slots of a `matrixChannels` insert block, `None` for unused ones; `Err` says why it
/// cannot be expanded.
fn expand_matrix_insert(
    insert: &Map<String, Value>,
    root: &Map<String, Value>,
    pixel_keys: &[String],
) -> Result<Vec<Option<String>>, String> {
    let matrix = root.get("matrix").and_then(Value::as_object);
    let pixels: Vec<String> = match insert.get("repeatFor") {
        Some(Value::Array(keys)) => keys
            .iter()
            .map(|k| {
                k.as_str()
                    .map(str::to_string)
                    .ok_or("repeatFor keys must be strings")
            })
            .collect::<Result<_, _>>()?,
        Some(Value::String(order)) if order == "eachPixelGroup" => matrix
            .and_then(|m| m.get("pixelGroups"))
            .and_then(Value::as_object)
            .map(|g| g.keys().cloned().collect())
            .ok_or("eachPixelGroup without matrix.pixelGroups")?,
        Some(Value::String(order)) if order == "eachPixelABC" => {
            let mut keys: Vec<String> = pixel_keys
                .iter()
                .filter(|k| {
                    !matrix
                        .and_then(|m| m.get("pixelGroups"))
                        .and_then(Value::as_object)
                        .is_some_and(|g| g.contains_key(*k))
                })
                .cloned()
                .collect();
            keys.sort_by(|a, b| natural_cmp(a, b));
            keys
        }
        Some(Value::String(order)) => {
            return Err(format!(
                "pixel order {order:?} is not supported; list the pixel keys instead"
            ));
        }
        _ => return Err("repeatFor is missing".to_string()),
    };
    let templates: Vec<Option<String>> = insert
        .get("templateChannels")
        .and_then(Value::as_array)
        .ok_or("templateChannels is missing")?
        .iter()
        .map(|t| t.as_str().map(str::to_string))
        .collect();
    let resolve = |t: &Option<String>, p: &str| t.as_ref().map(|t| t.replace("$pixelKey", p));
    let mut slots = Vec::new();
    match insert.get("channelOrder").and_then(Value::as_str) {
        Some("perPixel") => {
            for p in &pixels {
                slots.extend(templates.iter().map(|t| resolve(t, p)));
            }
        }
        Some("perChannel") => {
            for t in &templates {
                slots.extend(pixels.iter().map(|p| resolve(t, p)));
            }
        }
        _ => return Err("channelOrder must be perPixel or perChannel".to_string()),
    }
    if slots.len() > crate::model::UNIVERSE_SLOTS {
        return Err(format!(
            "expands to {} channels, more than a universe",
            slots.len()
        ));
    }
    Ok(slots)
}

/// "Pixel 2" before "Pixel 10".
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| {
        let digits: String = s.chars().rev().take_while(char::is_ascii_digit).collect();
        let prefix = &s[..s.len() - digits.len()];
        let n: u64 = digits
            .chars()
            .rev()
            .collect::<String>()
            .parse()
            .unwrap_or(0);
        (prefix.to_string(), n, s.to_string())
    };
    split(a).cmp(&split(b))
}

/// Pan and tilt ranges from `Pan`/`Tilt` capabilities' `angleStart`/`angleEnd`.
#[derive(Default)]
struct Angles {
    pan: Option<f64>,
    tilt: Option<f64>,
}

fn channels_angles(defs: &[ChannelDef]) -> Angles {
    let mut angles = Angles::default();
    for d in defs {
        let caps: Vec<&Value> = match (d.def.get("capability"), d.def.get("capabilities")) {
            (Some(c), _) => vec![c],
            (None, Some(Value::Array(list))) => list.iter().collect(),
            _ => continue,
        };
        for cap in caps {
            let kind = cap.get("type").and_then(Value::as_str);
            let deg = |k: &str| {
                cap.get(k)
                    .and_then(Value::as_str)
                    .and_then(|s| s.strip_suffix("deg"))
                    .and_then(|s| s.trim().parse::<f64>().ok())
            };
            let span = match (deg("angleStart"), deg("angleEnd")) {
                (Some(a), Some(b)) => Some((b - a).abs()).filter(|s| *s > 0.0),
                _ => None,
            };
            match kind {
                Some("Pan") if angles.pan.is_none() => angles.pan = span,
                Some("Tilt") if angles.tilt.is_none() => angles.tilt = span,
                _ => {}
            }
        }
    }
    angles
}

fn kind_for_category(c: &str) -> Option<FixtureKind> {
    Some(match c {
        "Moving Head" => FixtureKind::MovingHead,
        "Scanner" | "Barrel Scanner" => FixtureKind::Scanner,
        "Dimmer" => FixtureKind::Dimmer,
        "Color Changer" => FixtureKind::Par,
        "Strobe" | "Blinder" => FixtureKind::Strobe,
        "Pixel Bar" | "Matrix" => FixtureKind::LedBar,
        "Hazer" | "Smoke" => FixtureKind::Hazer,
        _ => return None,
    })
}

/// What a wheel holds, for naming wheel capabilities' attributes.
fn wheel_attribute(wheel: &str, wheels: &Map<String, Value>, rotation: bool) -> Option<Attribute> {
    let lower = wheel.to_lowercase();
    let slot_types: Vec<&str> = wheels
        .get(wheel)
        .and_then(|w| w.get("slots"))
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(|s| s.get("type").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let has_slot = |t: &str| slot_types.contains(&t);
    if lower.contains("gobo") || has_slot("Gobo") {
        Some(if rotation {
            Attribute::GoboRotation
        } else {
            Attribute::Gobo
        })
    } else if lower.contains("colo") || has_slot("Color") {
        Some(Attribute::ColorWheel)
    } else if lower.contains("prism") || has_slot("Prism") {
        Some(Attribute::Prism)
    } else {
        None
    }
}

/// A channel's attribute from its first capability that does something.
fn channel_attribute(
    caps: &[&Map<String, Value>],
    key: &str,
    wheels: &Map<String, Value>,
) -> Attribute {
    use Attribute as A;
    let other = || A::Other(key.to_string());
    let Some(cap) = caps
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) != Some("NoFunction"))
    else {
        return other();
    };
    let str_of = |k: &str| cap.get(k).and_then(Value::as_str);
    let wheel = || str_of("wheel").unwrap_or(key).to_string();
    match str_of("type").unwrap_or("") {
        "Intensity" => A::Intensity,
        "ColorIntensity" => match str_of("color").unwrap_or("") {
            "" => other(),
            color => super::colour_attribute(color).unwrap_or_else(|| A::Other(color.to_string())),
        },
        "ColorPreset" => A::ColorWheel,
        "ColorTemperature" => A::ColorTemperature,
        "Pan" => A::Pan,
        "Tilt" => A::Tilt,
        "PanTiltSpeed" => A::PanTiltSpeed,
        "WheelSlot" | "WheelShake" => {
            wheel_attribute(&wheel(), wheels, false).unwrap_or_else(other)
        }
        "WheelSlotRotation" | "WheelRotation" => {
            wheel_attribute(&wheel(), wheels, true).unwrap_or_else(other)
        }
        "ShutterStrobe" => A::Shutter,
        "StrobeSpeed" | "StrobeDuration" => A::Strobe,
        "Effect" | "EffectSpeed" | "EffectDuration" | "EffectParameter" | "SoundSensitivity" => {
            A::Effect
        }
        "Focus" => A::Focus,
        "Zoom" | "BeamAngle" => A::Zoom,
        "Iris" | "IrisEffect" => A::Iris,
        "Frost" | "FrostEffect" => A::Frost,
        "Prism" => A::Prism,
        "Speed" => A::Speed,
        "Maintenance" => A::Maintenance,
        _ => other(),
    }
}

/// A readable label for a capability: its type with the parameters that distinguish it,
/// then its comment ("Wheel slot 3 (Flames)", "Shutter strobe: Strobe 1Hz…25Hz").
fn capability_label(
    cap: &Map<String, Value>,
    kind: &str,
    key: &str,
    wheels: &Map<String, Value>,
) -> String {
    let str_of = |k: &str| {
        cap.get(k).map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
    };
    let span = |single: &str, start: &str, end: &str| -> Option<String> {
        str_of(single).or_else(|| Some(format!("{}…{}", str_of(start)?, str_of(end)?)))
    };
    let mut label = match kind {
        "NoFunction" => "No function".to_string(),
        "WheelSlot" => {
            let wheel = str_of("wheel").unwrap_or_else(|| key.to_string());
            let slot_name = |n: &Value| -> Option<String> {
                let n = usize::try_from(n.as_u64()?).ok()?;
                let slot = wheels.get(&wheel)?.get("slots")?.get(n.checked_sub(1)?)?;
                slot.get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| {
                        slot.get("type")
                            .and_then(Value::as_str)
                            .map(|t| match slot.get("colors") {
                                Some(c) => format!("{t} {c}"),
                                None => t.to_string(),
                            })
                    })
            };
            match (
                cap.get("slotNumber"),
                cap.get("slotNumberStart"),
                cap.get("slotNumberEnd"),
            ) {
                (Some(n), _, _) => match slot_name(n) {
                    Some(name) => format!("{wheel} slot {n} ({name})"),
                    None => format!("{wheel} slot {n}"),
                },
                (None, Some(a), Some(b)) => format!("{wheel} slots {a}…{b}"),
                _ => format!("{wheel} slot"),
            }
        }
        _ => {
            let mut words = split_camel(kind);
            let detail: Vec<String> = [
                str_of("shutterEffect"),
                str_of("color"),
                str_of("effectName").or_else(|| str_of("effectPreset")),
                span("speed", "speedStart", "speedEnd"),
                span("angle", "angleStart", "angleEnd"),
                span("brightness", "brightnessStart", "brightnessEnd"),
                span(
                    "colorTemperature",
                    "colorTemperatureStart",
                    "colorTemperatureEnd",
                ),
                span("duration", "durationStart", "durationEnd"),
                span("parameter", "parameterStart", "parameterEnd"),
                span("distance", "distanceStart", "distanceEnd"),
                span("openPercent", "openPercentStart", "openPercentEnd"),
                span("frostIntensity", "frostIntensityStart", "frostIntensityEnd"),
                span("insertion", "insertionStart", "insertionEnd"),
                span("time", "timeStart", "timeEnd"),
                span("fogOutput", "fogOutputStart", "fogOutputEnd"),
                str_of("fogType"),
                str_of("hold"),
            ]
            .into_iter()
            .flatten()
            .collect();
            if let Some(colors) = cap.get("colors").and_then(Value::as_array) {
                let c: Vec<&str> = colors.iter().filter_map(Value::as_str).collect();
                words.push_str(&format!(" {}", c.join("/")));
            }
            if !detail.is_empty() {
                words.push_str(": ");
                words.push_str(&detail.join(" "));
            }
            words
        }
    };
    if let Some(comment) = cap.get("comment").and_then(Value::as_str) {
        label.push_str(&format!(" ({comment})"));
    }
    label
}

/// "ShutterStrobe" → "Shutter strobe".
fn split_camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && ch.is_ascii_uppercase() {
            out.push(' ');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_like_the_capability() {
        assert_eq!(split_camel("ShutterStrobe"), "Shutter strobe");
        assert!(natural_cmp("Pixel 2", "Pixel 10").is_lt());
    }
}
