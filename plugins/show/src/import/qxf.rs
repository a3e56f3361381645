//! QLC+ fixture definitions (`.qxf`, XML, namespace `http://www.qlcplus.org/FixtureDefinition`).
//!
//! A definition lists `<Channel>`s (each a preset such as `PositionPan`, or a `<Group>` with
//! an optional `<Colour>`, plus `<Capability Min Max>` ranges) and `<Mode>`s that number
//! channels by name. QLC+ has no notion of a fine *alias*: a 16-bit pair is two channels, the
//! fine one marked by a `…Fine` preset or `<Group Byte="1">`. We pair each fine channel with
//! its coarse one by name ("Pan fine" → "Pan"), else by attribute (the only coarse `Pan`),
//! else by position (a coarse channel of that attribute right before it in a mode); an
//! unpaired fine channel is kept as an 8-bit `Other` channel, with a warning.
//!
//! Kept: every mode with its exact footprint, channel defaults, capability ranges and
//! labels, pan/tilt range, beam angle, power and weight. Dropped (said per file): heads
//! (multi-cell layout), capability presets, colours and gobo images, capability aliases
//! (mode-dependent channel functions), bulb and dimension data.

use super::xml::{Document, Element};
use super::{
    Draft, DraftChannel, DraftMode, ImportError, ImportedProfile, MAX_CAPABILITIES, MAX_CHANNELS,
    MAX_MODES, Notice, NoticeKind, SourceFormat, check_label, check_name,
};
use crate::model::{Attribute, Capability, FixtureKind, Physical};

/// QLC+ channel groups (`<Group>` text).
const GROUPS: [&str; 12] = [
    "Intensity",
    "Colour",
    "Gobo",
    "Speed",
    "Pan",
    "Tilt",
    "Shutter",
    "Prism",
    "Beam",
    "Effect",
    "Maintenance",
    "Nothing",
];

/// Imports the text of a `.qxf` file; `file` names it in errors and notices.
pub fn import_qxf_str(text: &str, file: &str) -> Result<ImportedProfile, ImportError> {
    let doc = super::xml::parse(text, file)?;
    let root = &doc.root;
    if root.name != "FixtureDefinition" {
        return Err(ImportError::defect(
            doc.location(root),
            root.describe(),
            "root element is not <FixtureDefinition>; not a QLC+ fixture definition",
        ));
    }
    let required = |name: &str| -> Result<String, ImportError> {
        match root.child_text(name) {
            Some(t) if !t.is_empty() => {
                check_name(t, || doc.location(root), || format!("<{name}>"))?;
                Ok(t.to_string())
            }
            _ => Err(ImportError::defect(
                doc.location(root),
                root.describe(),
                format!("has no <{name}>"),
            )),
        }
    };
    let manufacturer = required("Manufacturer")?;
    let model = required("Model")?;
    let mut notices = Vec::new();
    let kind = match root.child_text("Type") {
        Some(t) => kind_for_type(t).unwrap_or_else(|| {
            notices.push(Notice {
                kind: NoticeKind::Dropped,
                line: root.child("Type").map(|e| doc.line(e)),
                element: "<Type>".to_string(),
                message: format!("fixture type {t:?} is not one we know; kind left as Other"),
            });
            FixtureKind::Other
        }),
        None => FixtureKind::Other,
    };

    let channel_elements: Vec<&Element> = root.children_named("Channel").collect();
    if channel_elements.len() > MAX_CHANNELS {
        return Err(ImportError::defect(
            doc.location(root),
            root.describe(),
            format!(
                "defines {} channels, more than the {MAX_CHANNELS} a fixture may have",
                channel_elements.len()
            ),
        ));
    }
    let mode_elements: Vec<&Element> = root.children_named("Mode").collect();
    if mode_elements.len() > MAX_MODES {
        return Err(ImportError::defect(
            doc.location(root),
            root.describe(),
            format!(
                "defines {} modes, more than the {MAX_MODES} a fixture may have",
                mode_elements.len()
            ),
        ));
    }

    let mut raws = Vec::with_capacity(channel_elements.len());
    let mut described = DroppedTally::default();
    for e in &channel_elements {
        raws.push(read_channel(&doc, e, &mut notices, &mut described)?);
    }

    let mut modes = Vec::with_capacity(mode_elements.len());
    let mut heads = 0usize;
    for e in &mode_elements {
        modes.push(read_mode(&doc, e)?);
        heads += e.children_named("Head").count();
    }
    if heads > 0 {
        notices.push(Notice {
            kind: NoticeKind::Dropped,
            line: None,
            element: "<Head>".to_string(),
            message: format!("{heads} heads (multi-cell layout) across modes"),
        });
    }

    let fine_of = pair_fines(&raws, &modes);
    let mut channels = Vec::with_capacity(raws.len());
    for (i, raw) in raws.into_iter().enumerate() {
        let paired = fine_of[i].clone();
        // Some definitions mark ordinary channels `Byte="1"` by mistake ("Pixel 1 Red"):
        // without a coarse partner and without "fine" in the name, it is a coarse channel.
        let says_fine = base_name(&raw.name) != raw.name.to_lowercase().trim();
        let lone_fine = raw.fine && paired.is_none();
        if lone_fine {
            let message = if says_fine {
                format!(
                    "fine channel with no coarse channel to pair with; imported as an 8-bit channel Other({:?})",
                    raw.name
                )
            } else {
                format!(
                    "marked as a fine byte, but no coarse channel matches and its name does not say fine; imported as an 8-bit {} channel",
                    raw.attribute.name()
                )
            };
            notices.push(Notice {
                kind: NoticeKind::Warning,
                line: Some(raw.line),
                element: raw.element.clone(),
                message,
            });
        }
        if paired.is_some() && raw.capabilities.len() > 1 {
            described.fine_capabilities += raw.capabilities.len();
        }
        let attribute = if lone_fine && says_fine {
            Attribute::Other(raw.name.clone())
        } else {
            raw.attribute
        };
        channels.push(DraftChannel {
            name: raw.name,
            attribute,
            capabilities: if paired.is_some() {
                Vec::new()
            } else {
                raw.capabilities
            },
            default: if paired.is_some() { 0 } else { raw.default },
            fine_of: paired,
            highlight: None,
            line: Some(raw.line),
            element: raw.element,
        });
    }

    let physical = read_physical(&doc, root, &mode_elements, &mut notices);
    described.report(&mut notices);

    Draft {
        file: file.to_string(),
        format: SourceFormat::Qxf,
        manufacturer,
        model,
        kind,
        channels,
        modes,
        physical,
        notices,
        element: format!(
            "<FixtureDefinition> of {:?}",
            root.child_text("Model").unwrap_or("")
        ),
    }
    .assemble()
}

/// Descriptive capability data with no place in our model, counted per file.
#[derive(Default)]
struct DroppedTally {
    presets: usize,
    resources: usize,
    colours: usize,
    fine_capabilities: usize,
}

impl DroppedTally {
    fn report(&self, notices: &mut Vec<Notice>) {
        let mut parts = Vec::new();
        if self.presets > 0 {
            parts.push(format!("{} capability presets", self.presets));
        }
        if self.resources > 0 {
            parts.push(format!("{} gobo images/resources", self.resources));
        }
        if self.colours > 0 {
            parts.push(format!("{} capability colours", self.colours));
        }
        if self.fine_capabilities > 0 {
            parts.push(format!(
                "{} capability ranges of fine channels (a fine byte has no ranges of its own)",
                self.fine_capabilities
            ));
        }
        if !parts.is_empty() {
            notices.push(Notice {
                kind: NoticeKind::Dropped,
                line: None,
                element: "<Capability>".to_string(),
                message: parts.join(", "),
            });
        }
    }
}

/// A `<Channel>` as read, before fine pairing.
struct RawChannel {
    name: String,
    attribute: Attribute,
    fine: bool,
    default: u8,
    capabilities: Vec<Capability>,
    line: usize,
    element: String,
}

fn read_channel(
    doc: &Document,
    e: &Element,
    notices: &mut Vec<Notice>,
    tally: &mut DroppedTally,
) -> Result<RawChannel, ImportError> {
    let element = e.describe();
    let at = || doc.location(e);
    let name = e.attr("Name").map(str::trim).unwrap_or("");
    if name.is_empty() {
        return Err(ImportError::defect(at(), element, "channel has no Name"));
    }
    check_name(name, at, || element.clone())?;
    let default = match e.attr("Default") {
        None => 0,
        Some(v) => v.trim().parse::<u8>().map_err(|_| {
            ImportError::defect(
                at(),
                element.clone(),
                format!("Default={v:?} is not a DMX value 0..=255"),
            )
        })?,
    };

    let (attribute, fine) = if let Some(preset) = e.attr("Preset") {
        preset_attribute(preset, name).ok_or_else(|| {
            ImportError::defect(
                at(),
                element.clone(),
                format!("unknown channel preset {preset:?}"),
            )
        })?
    } else {
        let group_element = e.child("Group");
        let group = group_element.map(|g| g.text.trim()).unwrap_or("");
        if group.is_empty() {
            return Err(ImportError::defect(
                at(),
                element,
                "channel has neither a Preset nor a <Group>",
            ));
        }
        if !GROUPS.contains(&group) {
            return Err(ImportError::defect(
                at(),
                element,
                format!(
                    "unknown channel group {group:?} (QLC+ groups: {})",
                    GROUPS.join(", ")
                ),
            ));
        }
        let byte = match group_element.and_then(|g| g.attr("Byte")) {
            None => 0,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= 1)
                .ok_or_else(|| {
                    ImportError::defect(
                        at(),
                        element.clone(),
                        format!("<Group Byte={b:?}>: byte must be 0 (coarse) or 1 (fine)"),
                    )
                })?,
        };
        let colour = e.child_text("Colour");
        (group_attribute(group, colour, name), byte == 1)
    };

    let cap_elements: Vec<&Element> = e.children_named("Capability").collect();
    if cap_elements.len() > MAX_CAPABILITIES {
        return Err(ImportError::defect(
            at(),
            element,
            format!(
                "{} capabilities, more than the {MAX_CAPABILITIES} values of a DMX channel",
                cap_elements.len()
            ),
        ));
    }
    let mut capabilities = Vec::with_capacity(cap_elements.len());
    for cap in cap_elements {
        let cap_at = || doc.location(cap);
        let cap_element = || format!("{element} {}", cap.describe());
        let value = |attr: &str| -> Result<u8, ImportError> {
            let v = cap.attr(attr).ok_or_else(|| {
                ImportError::defect(cap_at(), cap_element(), format!("capability has no {attr}"))
            })?;
            v.trim().parse::<u8>().map_err(|_| {
                ImportError::defect(
                    cap_at(),
                    cap_element(),
                    format!("{attr}={v:?} is not a DMX value 0..=255"),
                )
            })
        };
        let (min, max) = (value("Min")?, value("Max")?);
        if min > max {
            return Err(ImportError::defect(
                cap_at(),
                cap_element(),
                format!("capability range {min}..={max} runs backwards"),
            ));
        }
        let label = cap.text.trim();
        check_label(label, cap_at, cap_element)?;
        let label = if label.is_empty() {
            format!("{min}-{max}")
        } else {
            label.to_string()
        };
        if cap.attr("Preset").is_some_and(|p| p != "Alias") {
            tally.presets += 1;
        }
        tally.resources += ["Res", "Res1", "Res2"]
            .iter()
            .filter(|r| cap.attr(r).is_some_and(|v| !v.is_empty()))
            .count();
        tally.colours += ["Color", "Color2"]
            .iter()
            .filter(|r| cap.attr(r).is_some_and(|v| !v.is_empty()))
            .count();
        for alias in cap.children_named("Alias") {
            notices.push(Notice {
                kind: NoticeKind::Warning,
                line: Some(doc.line(alias)),
                element: format!("{element} <Capability {min}-{max}> <Alias>"),
                message: format!(
                    "in mode {:?} this range makes channel {:?} act as {:?}; profiles have no mode-dependent channel functions",
                    alias.attr("Mode").unwrap_or(""),
                    alias.attr("Channel").unwrap_or(""),
                    alias.attr("With").unwrap_or("")
                ),
            });
        }
        capabilities.push(Capability { min, max, label });
    }

    Ok(RawChannel {
        name: name.to_string(),
        attribute,
        fine,
        default,
        capabilities,
        line: doc.line(e),
        element,
    })
}

fn read_mode(doc: &Document, e: &Element) -> Result<DraftMode, ImportError> {
    let element = e.describe();
    let name = e.attr("Name").map(str::trim).unwrap_or("");
    if name.is_empty() {
        return Err(ImportError::defect(
            doc.location(e),
            element,
            "mode has no Name",
        ));
    }
    check_name(name, || doc.location(e), || element.clone())?;
    let entries: Vec<&Element> = e.children_named("Channel").collect();
    if entries.len() > crate::model::UNIVERSE_SLOTS {
        return Err(ImportError::defect(
            doc.location(e),
            element,
            format!(
                "mode has {} channels, more than the 512 of a DMX universe",
                entries.len()
            ),
        ));
    }
    let mut slots: Vec<Option<String>> = vec![None; entries.len()];
    for c in entries {
        let c_element = || format!("{element} {}", c.describe());
        let number = c
            .attr("Number")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .ok_or_else(|| {
                ImportError::defect(
                    doc.location(c),
                    c_element(),
                    "mode channel needs a Number 0, 1, 2, …",
                )
            })?;
        let Some(slot) = slots.get_mut(number) else {
            return Err(ImportError::defect(
                doc.location(c),
                c_element(),
                format!(
                    "channel Number {number} is past the mode's {} channels",
                    slots.len()
                ),
            ));
        };
        if slot.is_some() {
            return Err(ImportError::defect(
                doc.location(c),
                c_element(),
                format!("channel Number {number} is given twice"),
            ));
        }
        *slot = Some(c.text.trim().to_string());
    }
    // Every number 0..n was given exactly once (n entries, no duplicates, none past n).
    let slots = slots.into_iter().map(Option::unwrap_or_default).collect();
    Ok(DraftMode {
        name: name.to_string(),
        slots,
        line: Some(doc.line(e)),
        element,
    })
}

/// Coarse channel for every fine channel (index-aligned with `raws`).
fn pair_fines(raws: &[RawChannel], modes: &[DraftMode]) -> Vec<Option<String>> {
    let mut fine_of: Vec<Option<String>> = vec![None; raws.len()];
    let mut taken = vec![false; raws.len()];
    let index_of = |name: &str| raws.iter().position(|r| r.name == name);
    let bases: Vec<String> = raws.iter().map(|r| base_name(&r.name)).collect();

    for (i, raw) in raws.iter().enumerate().filter(|(_, r)| r.fine) {
        // A fine byte is an alias of its coarse channel: every mode that lists the fine
        // channel must list the coarse one too.
        let modes_with_fine: Vec<&DraftMode> = modes
            .iter()
            .filter(|m| m.slots.contains(&raw.name))
            .collect();
        let free = |j: usize| {
            let r = &raws[j];
            !r.fine && !taken[j] && modes_with_fine.iter().all(|m| m.slots.contains(&r.name))
        };
        // 1. By name: "Pan fine" → "Pan", "Dimmer (LSB)" → "Dimmer (MSB)".
        let by_name = raws
            .iter()
            .enumerate()
            .find(|(j, _)| bases[*j] == bases[i] && free(*j));
        // 2. The only free coarse channel of the same attribute.
        let by_attribute = || {
            let mut same = raws
                .iter()
                .enumerate()
                .filter(|(j, r)| r.attribute == raw.attribute && free(*j));
            match (same.next(), same.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        };
        // 3. A coarse channel of that attribute right before it in a mode ("Red 1",
        //    "Red 1 Fine"). Farther apart, position says nothing: fine channels grouped
        //    at the end of a mode would pair with the wrong wheel.
        let by_position = || {
            modes.iter().find_map(|m| {
                let pos = m.slots.iter().position(|s| *s == raw.name)?;
                let j = index_of(m.slots.get(pos.checked_sub(1)?)?)?;
                let r = &raws[j];
                (r.attribute == raw.attribute && free(j)).then_some((j, r))
            })
        };
        if let Some((j, coarse)) = by_name.or_else(by_attribute).or_else(by_position) {
            taken[j] = true;
            fine_of[i] = Some(coarse.name.clone());
        }
    }
    fine_of
}

/// A channel name without the words that mark its byte: "Pan Fine" and "Pan" both give "pan".
fn base_name(name: &str) -> String {
    let lower = name
        .to_lowercase()
        .replace(['(', ')', '[', ']', '-', '_', '.', ':'], " ");
    lower
        .split_whitespace()
        .filter(|w| {
            !matches!(
                *w,
                "fine" | "coarse" | "lsb" | "msb" | "16bit" | "8bit" | "hi" | "lo"
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `(attribute, is_fine)` of a QLC+ channel preset; `None` for an unknown preset.
fn preset_attribute(preset: &str, name: &str) -> Option<(Attribute, bool)> {
    use Attribute as A;
    let (base, fine) = match preset.strip_suffix("Fine") {
        Some(base) => (base, true),
        None => (preset, false),
    };
    let other = |what: &str| A::Other(what.to_string());
    let attribute = match base {
        "IntensityMasterDimmer" | "IntensityDimmer" => A::Intensity,
        "IntensityRed" => A::Red,
        "IntensityGreen" => A::Green,
        "IntensityBlue" => A::Blue,
        "IntensityCyan" => A::Cyan,
        "IntensityMagenta" => A::Magenta,
        "IntensityYellow" => A::Yellow,
        "IntensityAmber" => A::Amber,
        "IntensityWhite" => A::White,
        "IntensityUV" => A::Uv,
        "IntensityLime" => other("Lime"),
        "IntensityIndigo" => other("Indigo"),
        "IntensityHue" => other("Hue"),
        "IntensitySaturation" => other("Saturation"),
        "IntensityLightness" => other("Lightness"),
        "IntensityValue" => other("Value"),
        "PositionPan" => A::Pan,
        "PositionTilt" => A::Tilt,
        "PositionXAxis" => other("X axis"),
        "PositionYAxis" => other("Y axis"),
        "SpeedPanSlowFast"
        | "SpeedPanFastSlow"
        | "SpeedTiltSlowFast"
        | "SpeedTiltFastSlow"
        | "SpeedPanTiltSlowFast"
        | "SpeedPanTiltFastSlow" => A::PanTiltSpeed,
        "ColorMacro" | "ColorWheel" => A::ColorWheel,
        "ColorRGBMixer" => other("RGB mixer"),
        "ColorCTOMixer" | "ColorCTCMixer" | "ColorCTBMixer" => A::ColorTemperature,
        "GoboWheel" => A::Gobo,
        "GoboIndex" => A::GoboRotation,
        "ShutterStrobeSlowFast" | "ShutterStrobeFastSlow" => A::Strobe,
        "ShutterIrisMinToMax" | "ShutterIrisMaxToMin" | "ShutterIris" => A::Iris,
        "BeamFocusNearFar" | "BeamFocusFarNear" | "BeamFocus" => A::Focus,
        "BeamZoomSmallBig" | "BeamZoomBigSmall" | "BeamZoom" => A::Zoom,
        "PrismRotationSlowFast" | "PrismRotationFastSlow" => other("Prism rotation"),
        "NoFunction" => A::Other(name.to_string()),
        _ => return None,
    };
    Some((attribute, fine))
}

/// The attribute of a channel described by a `<Group>` (and `<Colour>` for intensities).
fn group_attribute(group: &str, colour: Option<&str>, name: &str) -> Attribute {
    use Attribute as A;
    let lower = name.to_lowercase();
    let has = |w: &str| lower.contains(w);
    match group {
        "Intensity" => match colour.unwrap_or("") {
            "" => A::Intensity,
            other => super::colour_attribute(other).unwrap_or_else(|| A::Other(other.to_string())),
        },
        "Colour" if has("cto") || has("ctb") || has("ctc") || has("temperature") => {
            A::ColorTemperature
        }
        "Colour" => A::ColorWheel,
        // "Rotating gobo 1" selects on the rotating wheel; "Gobo rotation" turns it.
        "Gobo"
            if has("rotation")
                || has("index")
                || has("spin")
                || (has("rot") && !has("rotating")) =>
        {
            A::GoboRotation
        }
        "Gobo" => A::Gobo,
        "Speed" if has("pan") || has("tilt") || has("p/t") || has("movement") => A::PanTiltSpeed,
        "Speed" => A::Speed,
        "Pan" => A::Pan,
        "Tilt" => A::Tilt,
        "Shutter" if has("iris") => A::Iris,
        "Shutter" if has("strobe") && !has("shutter") => A::Strobe,
        "Shutter" => A::Shutter,
        "Prism" if has("rot") => A::Other(name.to_string()),
        "Prism" => A::Prism,
        "Beam" if has("zoom") => A::Zoom,
        "Beam" if has("focus") => A::Focus,
        "Beam" if has("iris") => A::Iris,
        "Beam" if has("frost") => A::Frost,
        "Beam" if has("prism") => A::Prism,
        "Effect" if has("frost") => A::Frost,
        "Effect" if has("prism") && !has("rot") => A::Prism,
        "Effect" => A::Effect,
        "Maintenance" => A::Maintenance,
        _ => A::Other(name.to_string()),
    }
}

fn kind_for_type(t: &str) -> Option<FixtureKind> {
    Some(match t {
        "Moving Head" => FixtureKind::MovingHead,
        "Scanner" => FixtureKind::Scanner,
        "Dimmer" => FixtureKind::Dimmer,
        "Color Changer" => FixtureKind::Par,
        "Strobe" => FixtureKind::Strobe,
        "LED Bar (Beams)" | "LED Bar (Pixels)" => FixtureKind::LedBar,
        "Hazer" | "Smoke" => FixtureKind::Hazer,
        "Flower" | "Effect" | "Laser" | "Other" => FixtureKind::Other,
        _ => return None,
    })
}

/// Physical data from the fixture's `<Physical>` (or its first mode's, where QLC+ keeps
/// it per mode), reporting what has no place in [`Physical`].
fn read_physical(
    doc: &Document,
    root: &Element,
    modes: &[&Element],
    notices: &mut Vec<Notice>,
) -> Option<Physical> {
    let global = root.child("Physical");
    let source = global.or_else(|| modes.iter().find_map(|m| m.child("Physical")))?;
    let num = |e: Option<&Element>, attr: &str| -> Option<f64> {
        e?.attr(attr)?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let lens = source.child("Lens");
    let focus = source.child("Focus");
    let (deg_min, deg_max) = (num(lens, "DegreesMin"), num(lens, "DegreesMax"));
    let mut dropped = Vec::new();
    let beam_angle = match (deg_min, deg_max) {
        (Some(lo), Some(hi)) if hi > lo => {
            dropped.push(format!(
                "zoom range {lo}°–{hi}° (kept the widest, {hi}°, as beam_angle)"
            ));
            Some(hi)
        }
        (lo, hi) => hi.or(lo),
    };
    let physical = Physical {
        beam_angle,
        pan_range: num(focus, "PanMax"),
        tilt_range: num(focus, "TiltMax"),
        power: num(source.child("Technical"), "PowerConsumption"),
        weight: num(source.child("Dimensions"), "Weight"),
    };

    let bulb = source.child("Bulb");
    if let Some(t) = bulb
        .and_then(|b| b.attr("Type"))
        .filter(|t| !t.trim().is_empty())
    {
        dropped.push(format!("bulb {t:?}"));
    }
    if let Some(l) = num(bulb, "Lumens") {
        dropped.push(format!("{l} lm"));
    }
    if let Some(k) = num(bulb, "ColourTemperature") {
        dropped.push(format!("{k} K"));
    }
    let dims = source.child("Dimensions");
    let size: Vec<String> = ["Width", "Height", "Depth"]
        .iter()
        .filter_map(|a| num(dims, a).map(|v| v.to_string()))
        .collect();
    if !size.is_empty() {
        dropped.push(format!("dimensions {} mm", size.join("×")));
    }
    if let Some(name) = lens
        .and_then(|l| l.attr("Name"))
        .filter(|n| !n.is_empty() && *n != "Other")
    {
        dropped.push(format!("lens {name:?}"));
    }
    if let Some(c) = source
        .child("Technical")
        .and_then(|t| t.attr("DmxConnector"))
        .filter(|c| !c.is_empty())
    {
        dropped.push(format!("DMX connector {c:?}"));
    }
    if !dropped.is_empty() {
        notices.push(Notice {
            kind: NoticeKind::Dropped,
            line: Some(doc.line(source)),
            element: "<Physical>".to_string(),
            message: dropped.join(", "),
        });
    }
    let per_mode = modes
        .iter()
        .filter(|m| m.child("Physical").is_some())
        .count();
    if per_mode > 0 && global.is_some() {
        notices.push(Notice {
            kind: NoticeKind::Dropped,
            line: None,
            element: "<Mode> <Physical>".to_string(),
            message: format!(
                "per-mode physical data of {per_mode} modes (the fixture's own is kept)"
            ),
        });
    }
    let empty = physical.beam_angle.is_none()
        && physical.pan_range.is_none()
        && physical.tilt_range.is_none()
        && physical.power.is_none()
        && physical.weight.is_none();
    (!empty).then_some(physical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_ignore_byte_words() {
        assert_eq!(base_name("Pan Fine"), "pan");
        assert_eq!(base_name("Pan (fine)"), "pan");
        assert_eq!(base_name("Dimmer MSB"), base_name("Dimmer LSB"));
        assert_ne!(base_name("Red 1 fine"), base_name("Red 2"));
    }
}
