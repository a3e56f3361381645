//! The RocKontrol show model: what a show *is*, independent of how it runs.
//!
//! A show is a RON file that lighting programmers write by hand and keep in git. This crate
//! owns its serde types, loading with precise `file:line:column` errors, canonical saving
//! (same show, same bytes; stable ordering so git diffs stay small) and validation that
//! reports every patch or reference problem by name, all at once.
//!
//! It knows nothing of Bevy, time or output: the engine compiles a [`Show`] into its own
//! runtime form.
//!
//! # Layout
//! - [`model`]: the serde types — [`Show`], [`FixtureProfile`], [`Fixture`], [`CueList`], [`Cue`], …
//! - [`value`]: [`Value`], a channel level (normalised `0.5` or raw `Dmx(200)`), and [`CueNumber`].
//! - [`io`]: [`load_show`], [`parse_show`], [`to_ron_string`], [`save_show`].
//! - [`validate`](mod@validate): [`validate()`], returning every [`ValidationError`] found.
//! - [`import`]: QLC+ `.qxf` and Open Fixture Library JSON fixtures into [`FixtureProfile`]s
//!   (saying what was changed or dropped), and QLC+ `.qxw` workspaces into shows.
//! - [`clips`]: the show's media clips, a name for each library id.
//! - [`library`]: the fixture library folder (`assets/fixtures/<maker>/<model>.ron`): load
//!   by `"Maker/Model"`, search, and where an attribute sits in a mode.
//! - [`timecode`]: the show's timecode rate and start, outputs, chase, timecode cues, tempo.
//! - [`effects`]: waveforms over fixtures, at a speed in BPM, Hz or beats ([`Effect`]).
//! - [`media`]: LED-wall outputs, media layers and cues' media actions ([`MediaSetup`]).

pub mod clips;
pub mod effects;
pub mod import;
pub mod io;
pub mod library;
pub mod media;
pub mod model;
pub mod timecode;
pub mod validate;
pub mod value;

pub use clips::Clip;
pub use effects::{Effect, EffectSpeed, Waveform};
pub use io::{LoadError, ParseError, load_show, parse_show, save_show, to_ron_string};
pub use media::{
    BlendMode, Display, EndMode, FrameRate, LedWallOutput, MediaAction, MediaCue, MediaGate,
    MediaLayer, MediaSetup, Region, Transform,
};
pub use model::*;
pub use timecode::{
    BeatFollow, TempoSetup, TimecodeCue, TimecodeLink, TimecodeRate, TimecodeSetup,
};
pub use validate::{ValidationError, validate};
pub use value::{CueNumber, Value};
