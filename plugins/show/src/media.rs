//! Media in a show: LED-wall outputs, media layers, and what cues do to them.
//!
//! Everything lives under the show's optional `media` field ([`MediaSetup`]), so shows
//! without media load unchanged and the lighting types ([`Cue`](crate::Cue)) stay untouched:
//! a cue's media actions are listed in [`MediaSetup::cues`], keyed by cue list and cue number.
//! Clips are referenced by name (the show's clip library resolves a name to a file).
//!
//! ```ron
//! media: (
//!     outputs: [(name: "wall", node: "node-01", width: 320, height: 180, rate: "29.97")],
//!     layers: [(name: "bg", output: "wall", clip: Some("count"), start: Some(1.0))],
//!     cues: [(cue_list: "main", cue: 2, actions: [Play(layer: "bg", clip: "intro")])],
//! )
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::value::CueNumber;

fn one() -> f64 {
    1.0
}
fn is_one(v: &f64) -> bool {
    *v == 1.0
}
fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

/// The media part of a show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSetup {
    /// Where media is shown: named canvases on nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<LedWallOutput>,
    /// Layers composited onto the outputs, each playing at most one clip at a time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<MediaLayer>,
    /// What cues do to layers (start, stop, opacity, transform).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cues: Vec<MediaCue>,
    /// What the master does with a cue GO that starts a clip some node that must play it
    /// does not have ready yet: refuse it (the default) or run it and warn.
    #[serde(default, skip_serializing_if = "MediaGate::is_refuse")]
    pub gate: MediaGate,
}

/// The GO gate: what a cue that starts a clip not ready everywhere does (see [`MediaSetup::gate`]).
///
/// ```ron
/// media: (gate: Warn, outputs: [...], layers: [...], cues: [...])
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaGate {
    /// The GO is refused (409 over REST) with the list of nodes and clips not ready.
    #[default]
    Refuse,
    /// The GO runs; the answer and the log name the nodes and clips not ready.
    Warn,
}

impl MediaGate {
    fn is_refuse(&self) -> bool {
        matches!(self, MediaGate::Refuse)
    }
}

impl MediaSetup {
    /// No outputs, layers or cue actions (not written to a show file).
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
            && self.layers.is_empty()
            && self.cues.is_empty()
            && self.gate == MediaGate::Refuse
    }

    /// An output by name.
    pub fn output(&self, name: &str) -> Option<&LedWallOutput> {
        self.outputs.iter().find(|o| o.name == name)
    }

    /// A layer by name.
    pub fn layer(&self, name: &str) -> Option<&MediaLayer> {
        self.layers.iter().find(|l| l.name == name)
    }
}

/// A frame rate as an exact fraction: 29.97 is `30000/1001`, never `29.97`.
///
/// Written in show files as a string: `"25"`, `"30000/1001"`, or one of the broadcast
/// shorthands `"23.976"`, `"29.97"`, `"59.94"` (which mean the `/1001` rates exactly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

impl FrameRate {
    /// `num/den` frames per second. `None` if either is 0.
    pub const fn new(num: u32, den: u32) -> Option<Self> {
        if num == 0 || den == 0 {
            None
        } else {
            Some(FrameRate { num, den })
        }
    }

    /// Whole frames per second.
    pub const fn whole(fps: u32) -> Self {
        FrameRate { num: fps, den: 1 }
    }

    /// NTSC 29.97: `30000/1001`.
    pub const NTSC: FrameRate = FrameRate {
        num: 30000,
        den: 1001,
    };

    /// Frames per second as a float (for display only; timing uses the fraction).
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

impl From<FrameRate> for String {
    fn from(r: FrameRate) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for FrameRate {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl std::str::FromStr for FrameRate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "frame rate {text:?}: write whole frames per second (\"25\"), a fraction \
                 (\"30000/1001\") or one of \"23.976\", \"29.97\", \"59.94\""
            )
        };
        let rate = match text {
            "23.976" | "23.98" => FrameRate::new(24000, 1001),
            "29.97" => FrameRate::new(30000, 1001),
            "47.95" => FrameRate::new(48000, 1001),
            "59.94" => FrameRate::new(60000, 1001),
            "119.88" => FrameRate::new(120000, 1001),
            _ => match text.split_once('/') {
                Some((n, d)) => FrameRate::new(
                    n.trim().parse().map_err(|_| bad())?,
                    d.trim().parse().map_err(|_| bad())?,
                ),
                None => FrameRate::new(text.parse().map_err(|_| bad())?, 1),
            },
        };
        rate.ok_or_else(bad)
    }
}

/// A named canvas on a node: what the layers are composited into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedWallOutput {
    /// Unique in the show; layers name it.
    pub name: String,
    /// The node that shows it (its node name, as in the node config).
    pub node: String,
    pub width: u32,
    pub height: u32,
    /// Refresh rate of the output (its display's, or the offscreen render's).
    pub rate: FrameRate,
    /// Where it is shown.
    #[serde(default, skip_serializing_if = "Display::is_offscreen")]
    pub display: Display,
    /// Parts of the canvas sent to physical displays or LED processors; none: the whole canvas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<Region>,
}

/// Where an output's picture goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum Display {
    /// Rendered but not shown (offline render, preview, tests).
    #[default]
    Offscreen,
    /// A window (for rehearsal on a desk).
    Window,
    /// Fullscreen on a monitor (by index, 0 = primary).
    Fullscreen(u32),
}

impl Display {
    fn is_offscreen(&self) -> bool {
        matches!(self, Display::Offscreen)
    }
}

/// A rectangle of the canvas, placed onto a physical display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub name: String,
    /// Source rectangle in canvas pixels: x, y, width, height.
    pub crop: (u32, u32, u32, u32),
    /// Top-left position on the display, in display pixels.
    #[serde(default)]
    pub position: (i32, i32),
}

/// How a layer combines with the layers below it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlendMode {
    /// Over: `dst·(1−a) + src·a`.
    #[default]
    Normal,
    /// `dst + src·a`, clamped.
    Add,
    /// `dst · mix(1, src, a)`.
    Multiply,
    /// `1 − (1 − dst)(1 − src·a)`.
    Screen,
}

impl BlendMode {
    fn is_normal(&self) -> bool {
        matches!(self, BlendMode::Normal)
    }
}

/// Where a layer's picture sits on its output. The identity fills the output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    /// Offset of the picture's centre from the output's centre, in output pixels (y down).
    #[serde(default)]
    pub position: (f64, f64),
    /// Size relative to the output (1.0: fills it).
    #[serde(default = "unit_scale")]
    pub scale: (f64, f64),
    /// Clockwise, in degrees.
    #[serde(default)]
    pub rotation: f64,
    /// Fractions of the clip cut off at the left, top, right and bottom (the rest stays put).
    #[serde(default)]
    pub crop: (f64, f64, f64, f64),
}

fn unit_scale() -> (f64, f64) {
    (1.0, 1.0)
}

impl Default for Transform {
    fn default() -> Self {
        Transform::IDENTITY
    }
}

impl Transform {
    /// Fills the output, uncropped.
    pub const IDENTITY: Transform = Transform {
        position: (0.0, 0.0),
        scale: (1.0, 1.0),
        rotation: 0.0,
        crop: (0.0, 0.0, 0.0, 0.0),
    };

    fn is_identity(&self) -> bool {
        *self == Transform::IDENTITY
    }

    /// Linear interpolation from `self` (at 0) to `to` (at 1), field by field.
    pub fn lerp(&self, to: &Transform, f: f64) -> Transform {
        let l = |a: f64, b: f64| a + (b - a) * f;
        Transform {
            position: (
                l(self.position.0, to.position.0),
                l(self.position.1, to.position.1),
            ),
            scale: (l(self.scale.0, to.scale.0), l(self.scale.1, to.scale.1)),
            rotation: l(self.rotation, to.rotation),
            crop: (
                l(self.crop.0, to.crop.0),
                l(self.crop.1, to.crop.1),
                l(self.crop.2, to.crop.2),
                l(self.crop.3, to.crop.3),
            ),
        }
    }
}

/// What a layer shows after the clip's last frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EndMode {
    /// Start again at frame 0.
    Loop,
    /// Keep showing the last frame.
    #[default]
    HoldLast,
    /// Show nothing (the layer becomes transparent).
    Stop,
}

impl EndMode {
    fn is_hold_last(&self) -> bool {
        matches!(self, EndMode::HoldLast)
    }
}

/// A layer on an output: a slot that plays one clip at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaLayer {
    /// Unique in the show; cues name it.
    pub name: String,
    /// The [`LedWallOutput`] it is composited onto.
    pub output: String,
    /// Stacking order: higher is on top; equal z keeps the order of the show file.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub z: i32,
    /// 0.0..=1.0.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub opacity: f64,
    #[serde(default, skip_serializing_if = "BlendMode::is_normal")]
    pub blend: BlendMode,
    #[serde(default, skip_serializing_if = "Transform::is_identity")]
    pub transform: Transform,
    /// A clip the layer plays from `start` without any cue (by name in the clip library).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<String>,
    /// Show time in seconds at which `clip`'s frame 0 is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    #[serde(default, skip_serializing_if = "EndMode::is_hold_last")]
    pub end: EndMode,
    /// Playback speed (1.0: the clip's own rate; 2.0 twice as fast). Must be > 0.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub rate: f64,
}

impl MediaLayer {
    /// A layer on `output` with every optional field at its default.
    pub fn new(name: impl Into<String>, output: impl Into<String>) -> Self {
        MediaLayer {
            name: name.into(),
            output: output.into(),
            z: 0,
            opacity: 1.0,
            blend: BlendMode::Normal,
            transform: Transform::IDENTITY,
            clip: None,
            start: None,
            end: EndMode::HoldLast,
            rate: 1.0,
        }
    }
}

/// The media actions of one cue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaCue {
    pub cue_list: String,
    pub cue: CueNumber,
    pub actions: Vec<MediaAction>,
}

/// What a cue does to a layer. Opacity and transform fade with the cue's fade-in (after its
/// delay); a clip starts when the cue's delay has passed. Values track to later cues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MediaAction {
    /// Play `clip` on `layer` from its frame 0 (or `from` seconds into it).
    Play {
        layer: String,
        clip: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<EndMode>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<f64>,
    },
    /// Stop whatever `layer` plays (it becomes transparent).
    Stop { layer: String },
    /// Fade `layer`'s opacity to this level.
    Opacity { layer: String, level: f64 },
    /// Fade `layer`'s transform to this one.
    Transform { layer: String, transform: Transform },
}

impl MediaAction {
    /// The layer the action is for.
    pub fn layer(&self) -> &str {
        match self {
            MediaAction::Play { layer, .. }
            | MediaAction::Stop { layer }
            | MediaAction::Opacity { layer, .. }
            | MediaAction::Transform { layer, .. } => layer,
        }
    }
}

/// Every problem in a show's media part, as text naming the thing (the show validator wraps
/// them). `cue_exists(list, cue)` tells whether the cue list has that cue.
pub fn media_problems(
    setup: &MediaSetup,
    cue_exists: &dyn Fn(&str, CueNumber) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for o in &setup.outputs {
        if !seen.insert(o.name.as_str()) {
            problems.push(format!("media output {:?} is defined twice", o.name));
        }
        if o.width == 0 || o.height == 0 || o.width > 16384 || o.height > 16384 {
            problems.push(format!(
                "media output {:?}: size {}×{} is outside 1..=16384 pixels",
                o.name, o.width, o.height
            ));
        }
        for r in &o.regions {
            let (x, y, w, h) = r.crop;
            if w == 0 || h == 0 || x.saturating_add(w) > o.width || y.saturating_add(h) > o.height {
                problems.push(format!(
                    "media output {:?}: region {:?} crop {:?} is not inside the {}×{} canvas",
                    o.name, r.name, r.crop, o.width, o.height
                ));
            }
        }
    }
    let mut layers = std::collections::BTreeSet::new();
    for l in &setup.layers {
        let what = format!("media layer {:?}", l.name);
        if !layers.insert(l.name.as_str()) {
            problems.push(format!("{what} is defined twice"));
        }
        if setup.output(&l.output).is_none() {
            problems.push(format!("{what}: unknown output {:?}", l.output));
        }
        if !(0.0..=1.0).contains(&l.opacity) {
            problems.push(format!(
                "{what}: opacity {:?} is outside 0.0..=1.0",
                l.opacity
            ));
        }
        if !(l.rate.is_finite() && l.rate > 0.0 && l.rate <= 100.0) {
            problems.push(format!("{what}: rate {:?} is not within (0, 100]", l.rate));
        }
        if let Some(start) = l.start
            && !(start.is_finite() && start >= 0.0)
        {
            problems.push(format!("{what}: start {start:?} is not a show time ≥ 0"));
        }
        if l.start.is_some() && l.clip.is_none() {
            problems.push(format!("{what}: has a start but no clip"));
        }
        transform_problems(&what, &l.transform, &mut problems);
    }
    for c in &setup.cues {
        let what = format!("media actions of cue {} in {:?}", c.cue, c.cue_list);
        if !cue_exists(&c.cue_list, c.cue) {
            problems.push(format!("{what}: no such cue"));
        }
        for a in &c.actions {
            if setup.layer(a.layer()).is_none() {
                problems.push(format!("{what}: unknown layer {:?}", a.layer()));
            }
            match a {
                MediaAction::Opacity { level, .. } if !(0.0..=1.0).contains(level) => {
                    problems.push(format!("{what}: opacity {level:?} is outside 0.0..=1.0"));
                }
                MediaAction::Play { rate: Some(r), .. }
                    if !(r.is_finite() && *r > 0.0 && *r <= 100.0) =>
                {
                    problems.push(format!("{what}: rate {r:?} is not within (0, 100]"));
                }
                MediaAction::Play { from: Some(f), .. } if !(f.is_finite() && *f >= 0.0) => {
                    problems.push(format!("{what}: from {f:?} is not a time ≥ 0"));
                }
                MediaAction::Transform { transform, .. } => {
                    transform_problems(&what, transform, &mut problems);
                }
                _ => {}
            }
        }
    }
    problems
}

fn transform_problems(what: &str, t: &Transform, problems: &mut Vec<String>) {
    let all = [
        t.position.0,
        t.position.1,
        t.scale.0,
        t.scale.1,
        t.rotation,
        t.crop.0,
        t.crop.1,
        t.crop.2,
        t.crop.3,
    ];
    if all.iter().any(|v| !v.is_finite()) {
        problems.push(format!(
            "{what}: transform has a value that is not a number"
        ));
    }
    let (l, top, r, b) = t.crop;
    if [l, top, r, b].iter().any(|c| !(0.0..1.0).contains(c)) || l + r >= 1.0 || top + b >= 1.0 {
        problems.push(format!(
            "{what}: crop {:?} must be fractions ≥ 0 leaving part of the clip",
            t.crop
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_parse_exactly() {
        assert_eq!("29.97".parse(), Ok(FrameRate::NTSC));
        assert_eq!(
            "59.94".parse(),
            Ok(FrameRate {
                num: 60000,
                den: 1001
            })
        );
        assert_eq!("25".parse(), Ok(FrameRate::whole(25)));
        assert_eq!("30000/1001".parse(), Ok(FrameRate::NTSC));
        assert!("0".parse::<FrameRate>().is_err());
        assert!("30/0".parse::<FrameRate>().is_err());
        assert!("fast".parse::<FrameRate>().is_err());
        assert_eq!(FrameRate::NTSC.to_string(), "30000/1001");
    }

    #[test]
    fn a_media_setup_round_trips_through_ron() {
        let text = r#"(
            outputs: [(name: "wall", node: "node-01", width: 320, height: 180, rate: "29.97")],
            layers: [(name: "bg", output: "wall", clip: Some("count"), start: Some(1.0), end: Loop)],
            cues: [(cue_list: "main", cue: 2, actions: [
                Play(layer: "bg", clip: "intro"),
                Opacity(layer: "bg", level: 0.5),
            ])],
        )"#;
        let setup: MediaSetup = ron::from_str(text).expect("parses");
        assert_eq!(setup.outputs[0].rate, FrameRate::NTSC);
        assert_eq!(setup.layers[0].end, EndMode::Loop);
        assert_eq!(setup.layers[0].transform, Transform::IDENTITY);
        let again: MediaSetup =
            ron::from_str(&ron::to_string(&setup).expect("writes")).expect("reads back");
        assert_eq!(again, setup);
        assert!(media_problems(&setup, &|_, _| true).is_empty());
    }

    #[test]
    fn problems_name_the_layer_and_the_reference() {
        let mut setup = MediaSetup::default();
        setup.layers.push(MediaLayer {
            opacity: 1.5,
            ..MediaLayer::new("bg", "nowhere")
        });
        let problems = media_problems(&setup, &|_, _| true);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("\"bg\": unknown output \"nowhere\"")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("opacity 1.5")),
            "{problems:?}"
        );
    }
}
