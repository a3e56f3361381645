//! The serde types of a show file.
//!
//! Field order here is the order fields are written in; collections are `Vec`s in the
//! author's order or `BTreeMap`s (sorted), never hash maps, so saving is byte-stable.
//! Optional fields that hold their default are not written, which keeps files short.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::value::{CueNumber, Value};

/// Default DMX tick rate in Hz: the classic full-frame DMX512 refresh rate.
pub const DEFAULT_TICK_RATE: u32 = 44;

/// Slots in one DMX universe.
pub const UNIVERSE_SLOTS: usize = 512;

fn default_tick_rate() -> u32 {
    DEFAULT_TICK_RATE
}
fn is_default_tick_rate(v: &u32) -> bool {
    *v == DEFAULT_TICK_RATE
}
fn one() -> f64 {
    1.0
}
fn is_one(v: &f64) -> bool {
    *v == 1.0
}
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
fn is_false(v: &bool) -> bool {
    !*v
}

/// A whole show: patch, profiles, cue lists and playbacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Show {
    /// Shown in the UI and in sACN/Art-Net source names.
    pub name: String,
    /// The DMX tick in Hz: the engine computes one frame per universe per tick.
    #[serde(
        default = "default_tick_rate",
        skip_serializing_if = "is_default_tick_rate"
    )]
    pub tick_rate: u32,
    /// Grand master, 0.0..=1.0: scales every intensity output.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub grand_master: f64,
    /// The universes this show drives, with where each one goes on the wire.
    #[serde(default)]
    pub universes: Vec<Universe>,
    /// Fixture types used by the patch.
    #[serde(default)]
    pub profiles: Vec<FixtureProfile>,
    /// The patch: which fixture sits at which address.
    #[serde(default)]
    pub fixtures: Vec<Fixture>,
    /// Named selections of fixtures that cues can address at once.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Ordered lists of cues.
    #[serde(default)]
    pub cue_lists: Vec<CueList>,
    /// Playbacks: a cue list on a fader, with its own master level.
    #[serde(default)]
    pub playbacks: Vec<Playback>,
    /// Media clips by name: ids in the media library (see [`crate::clips`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clips: Vec<crate::clips::Clip>,
    /// LED-wall outputs, media layers and cues' media actions (none: a lighting-only show).
    #[serde(default, skip_serializing_if = "crate::media::MediaSetup::is_empty")]
    pub media: crate::media::MediaSetup,
    /// Timecode in and out, timecode cues and tempo (see [`crate::timecode`]).
    #[serde(
        default,
        skip_serializing_if = "crate::timecode::TimecodeSetup::is_empty"
    )]
    pub timecode: crate::timecode::TimecodeSetup,
    /// Effects (waveforms over fixtures) that commands start and stop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<crate::effects::Effect>,
}

impl Show {
    /// An empty show with the default tick rate (what a node runs before a show is loaded).
    pub fn empty(name: impl Into<String>) -> Self {
        Show {
            name: name.into(),
            tick_rate: DEFAULT_TICK_RATE,
            grand_master: 1.0,
            universes: Vec::new(),
            profiles: Vec::new(),
            fixtures: Vec::new(),
            groups: Vec::new(),
            cue_lists: Vec::new(),
            playbacks: Vec::new(),
            clips: Vec::new(),
            media: crate::media::MediaSetup::default(),
            timecode: crate::timecode::TimecodeSetup::default(),
            effects: Vec::new(),
        }
    }

    /// The profile a fixture references (`"Manufacturer/Model"`).
    pub fn profile(&self, reference: &str) -> Option<&FixtureProfile> {
        self.profiles.iter().find(|p| p.reference() == reference)
    }

    /// A patched fixture by id.
    pub fn fixture(&self, id: u32) -> Option<&Fixture> {
        self.fixtures.iter().find(|f| f.id == id)
    }
}

/// One DMX universe of the show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Universe {
    /// Show universe number, 1..=63999 (the sACN range).
    pub id: u16,
    /// A name for people: "Stage left", "Truss".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Where this universe is sent. Empty: computed but not output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Output>,
    /// DMX taken in from another console for this universe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
}

impl Universe {
    /// A universe with no label, outputs or input.
    pub fn new(id: u16) -> Self {
        Universe {
            id,
            label: String::new(),
            outputs: Vec::new(),
            input: None,
        }
    }
}

/// DMX received from another console (sACN or Art-Net) for a show universe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub source: InputSource,
    /// How the input combines with the show's own output.
    #[serde(default, skip_serializing_if = "InputMode::is_merge")]
    pub mode: InputMode,
}

/// Where an input universe comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InputSource {
    /// An sACN universe (all sources merged by priority, HTP within a priority).
    Sacn(u16),
    /// An Art-Net port-address (0..=32767).
    ArtNet(u16),
}

/// How an input universe combines with the show's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputMode {
    /// Slot by slot, the higher of the input and the show's own value (HTP), after the
    /// show's grand master: an operator on another console can bring levels up.
    #[default]
    Merge,
    /// The input replaces the show's values: this node is a bridge.
    Bridge,
}

impl InputMode {
    fn is_merge(&self) -> bool {
        matches!(self, InputMode::Merge)
    }
}

/// One destination of a universe on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Output {
    /// ANSI E1.31 streaming ACN.
    Sacn(SacnOutput),
    /// Art-Net 4.
    ArtNet(ArtNetOutput),
    /// An Enttec DMX USB Pro (or compatible) on a serial port.
    UsbPro(UsbProOutput),
}

/// sACN output settings of one universe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SacnOutput {
    /// sACN universe on the wire; default: the show universe's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub universe: Option<u16>,
    /// Multicast (default) or unicast to listed addresses.
    #[serde(default, skip_serializing_if = "SacnDestination::is_multicast")]
    pub destination: SacnDestination,
    /// Per-source priority 0..=200; receivers take the highest.
    #[serde(
        default = "default_sacn_priority",
        skip_serializing_if = "is_default_sacn_priority"
    )]
    pub priority: u8,
    /// Universe whose sync packets switch this one; 0 or absent: no synchronization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_universe: Option<u16>,
    /// Mark data as preview (visualisers only; real receivers ignore it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub preview: bool,
}

fn default_sacn_priority() -> u8 {
    100
}
fn is_default_sacn_priority(v: &u8) -> bool {
    *v == 100
}

/// Where sACN packets go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum SacnDestination {
    /// 239.255.hi.lo, the standard multicast group of the universe.
    #[default]
    Multicast,
    /// To each listed `host` or `host:port` (port 5568 by default).
    Unicast(Vec<String>),
}

impl SacnDestination {
    fn is_multicast(&self) -> bool {
        matches!(self, SacnDestination::Multicast)
    }
}

/// Art-Net output settings of one universe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtNetOutput {
    /// 15-bit Art-Net port-address (net, sub-net, universe); default: show universe id − 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_address: Option<u16>,
    /// Who receives it.
    #[serde(default, skip_serializing_if = "ArtNetDestination::is_discovered")]
    pub destination: ArtNetDestination,
}

/// Where ArtDmx packets go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum ArtNetDestination {
    /// Unicast to every node that subscribed to the port-address in its ArtPollReply (Art-Net 4).
    #[default]
    Discovered,
    /// Unicast to listed `host` or `host:port` (port 6454 by default).
    Unicast(Vec<String>),
    /// Broadcast to a directed-broadcast address (discouraged by Art-Net 4; a fallback).
    Broadcast(String),
}

impl ArtNetDestination {
    fn is_discovered(&self) -> bool {
        matches!(self, ArtNetDestination::Discovered)
    }
}

/// A DMX USB Pro output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbProOutput {
    /// Serial device, e.g. `/dev/ttyUSB0`.
    pub port: String,
}

/// What a channel does, so the engine knows how to merge it and the UI how to draw it.
///
/// Intensity-like channels merge highest-takes-precedence (HTP) and obey masters, grand
/// master and blackout; every other attribute merges latest-takes-precedence (LTP).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Attribute {
    Intensity,
    Red,
    Green,
    Blue,
    White,
    Amber,
    Uv,
    Cyan,
    Magenta,
    Yellow,
    ColorTemperature,
    ColorWheel,
    Pan,
    Tilt,
    PanTiltSpeed,
    Zoom,
    Focus,
    Iris,
    Frost,
    Prism,
    Strobe,
    Shutter,
    Gobo,
    GoboRotation,
    Effect,
    Speed,
    Maintenance,
    /// Anything else, by name ("Macro", "Fan", "Red 2" on a multi-cell bar).
    Other(String),
}

impl Attribute {
    /// Colour mixing emitters: on a fixture without a dimmer channel they *are* its intensity.
    pub fn is_color_emitter(&self) -> bool {
        matches!(
            self,
            Attribute::Red
                | Attribute::Green
                | Attribute::Blue
                | Attribute::White
                | Attribute::Amber
                | Attribute::Uv
        )
    }

    /// The name used in RON and on the command line.
    pub fn name(&self) -> String {
        match self {
            Attribute::Other(n) => format!("Other({n:?})"),
            other => format!("{other:?}"),
        }
    }
}

/// Broad kind of a fixture, used by the stage preview to draw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FixtureKind {
    Dimmer,
    Par,
    MovingHead,
    Scanner,
    Strobe,
    LedBar,
    Hazer,
    #[default]
    Other,
}

impl FixtureKind {
    fn is_other(&self) -> bool {
        matches!(self, FixtureKind::Other)
    }
}

/// A fixture type: its channels, its DMX modes and its physical data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureProfile {
    pub manufacturer: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "FixtureKind::is_other")]
    pub kind: FixtureKind,
    /// Every channel any mode can use.
    pub channels: Vec<Channel>,
    /// The DMX modes: an ordered footprint of channel names each.
    pub modes: Vec<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical: Option<Physical>,
}

impl FixtureProfile {
    /// `"Manufacturer/Model"`: how fixtures reference this profile.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.manufacturer, self.model)
    }

    /// A mode by name.
    pub fn mode(&self, name: &str) -> Option<&Mode> {
        self.modes.iter().find(|m| m.name == name)
    }

    /// The channel a mode entry names: a channel's own name (its coarse byte) or its fine alias.
    pub fn channel_for_slot(&self, slot_name: &str) -> Option<(&Channel, ByteRole)> {
        self.channels.iter().find_map(|c| {
            if c.name == slot_name {
                Some((c, ByteRole::Coarse))
            } else if c.fine.as_deref() == Some(slot_name) {
                Some((c, ByteRole::Fine))
            } else {
                None
            }
        })
    }
}

/// Which byte of a (possibly 16-bit) channel a DMX slot carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRole {
    Coarse,
    Fine,
}

/// One logical channel of a profile; with a `fine` alias it can be 16-bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Unique within the profile; modes list channels by this name.
    pub name: String,
    pub attribute: Attribute,
    /// Name of the slot carrying the fine (low) byte, as modes list it ("Pan fine").
    /// A mode that lists it makes the channel 16-bit; one that doesn't, 8-bit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine: Option<String>,
    /// Coarse DMX value when nothing drives the channel.
    #[serde(default, skip_serializing_if = "is_zero_u8")]
    pub default: u8,
    /// Coarse DMX value for "highlight" in the programmer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highlight: Option<u8>,
    /// What ranges of the coarse byte do (gobo slots, strobe speeds, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
}

fn is_zero_u8(v: &u8) -> bool {
    *v == 0
}

/// A DMX range of a channel and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capability {
    pub min: u8,
    pub max: u8,
    pub label: String,
}

/// A DMX mode: the footprint, slot by slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mode {
    pub name: String,
    /// Slot names in DMX order: channel names (coarse) or their fine aliases.
    pub channels: Vec<String>,
}

/// Physical data the preview and programmer use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Physical {
    /// Beam angle in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beam_angle: Option<f64>,
    /// Total pan range in degrees (e.g. 540).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pan_range: Option<f64>,
    /// Total tilt range in degrees (e.g. 270).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tilt_range: Option<f64>,
    /// Power draw in watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<f64>,
    /// Weight in kg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// A patched fixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Fixture number, as consoles use them (101, 102, …). Unique in the show.
    pub id: u32,
    pub name: String,
    /// `"Manufacturer/Model"` of a profile in the show.
    pub profile: String,
    pub mode: String,
    pub universe: u16,
    /// DMX start address, 1..=512.
    pub address: u16,
    /// Stage position in metres (x to stage left, y upstage), for the preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<(f64, f64)>,
}

/// A named selection of fixtures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub fixtures: Vec<u32>,
}

/// What a cue sets values on.
///
/// Group entries apply first, then fixture entries, so a fixture entry overrides its group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Target {
    Group(String),
    Fixture(u32),
}

/// Per-target attribute values of a cue.
pub type CueValues = BTreeMap<Target, BTreeMap<Attribute, Value>>;

/// A tracking cue list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CueList {
    /// Unique in the show; commands and playbacks use it.
    pub name: String,
    /// After the last cue, GO continues with the first (a chase).
    #[serde(default, skip_serializing_if = "is_false")]
    pub looped: bool,
    /// In ascending cue-number order.
    pub cues: Vec<Cue>,
}

/// One cue: the values that change, and how they get there.
///
/// Cue lists track: a value set in cue 1 stays through cues 2 and 3 until a cue changes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cue {
    pub number: CueNumber,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Seconds for values to fade in (intensity up, and every non-intensity attribute).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fade_in: f64,
    /// Seconds for intensity to fade down; default: `fade_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fade_out: Option<f64>,
    /// Seconds between GO and the start of the fade.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay: f64,
    /// Go to the next cue on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<Follow>,
    /// Re-assert the cue's whole tracked state (Eos's Assert): every value the cue list has
    /// at this cue counts as moved by it, so this playback takes every such channel back
    /// (latest takes precedence), fading from where the output is with this cue's timing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub assert: bool,
    #[serde(default)]
    pub values: CueValues,
}

impl Cue {
    /// Seconds for intensity to fade down.
    pub fn fade_out_time(&self) -> f64 {
        self.fade_out.unwrap_or(self.fade_in)
    }

    /// Seconds from GO until every fade of this cue is complete.
    pub fn duration(&self) -> f64 {
        self.delay + self.fade_in.max(self.fade_out_time())
    }
}

/// When a cue moves on to the next one by itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Follow {
    /// This many seconds after this cue's GO.
    After(f64),
    /// As soon as this cue's delay and fades have completed.
    AfterFade,
}

/// A cue list on a fader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playback {
    /// Unique in the show; `go NAME` addresses it.
    pub name: String,
    pub cue_list: String,
    /// Fader level 0.0..=1.0: scales this playback's intensity.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub master: f64,
    /// Seconds a release takes to fade this playback's values back to what lies beneath
    /// (other playbacks, or defaults); 0: at once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub release_time: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fade_out_defaults_to_fade_in() {
        let cue = Cue {
            number: CueNumber(1000),
            label: String::new(),
            fade_in: 3.0,
            fade_out: None,
            delay: 1.0,
            follow: None,
            assert: false,
            values: CueValues::new(),
        };
        assert_eq!(cue.fade_out_time(), 3.0);
        assert_eq!(cue.duration(), 4.0);
        let _ = is_zero(&0.0);
    }
}
