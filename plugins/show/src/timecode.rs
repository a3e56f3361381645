//! Timecode and tempo in a show file: the rate and start label of the show's timecode, where
//! it goes out and what it chases, cues fired at timecode labels, and a tempo whose beats can
//! GO playbacks.
//!
//! Labels and actions are kept as the author wrote them (`"00:01:02:10"`, `"goto main 5"`);
//! `rockontrol-timecode` checks them when the show is loaded and names the entry at fault.

use serde::{Deserialize, Serialize};

/// A show's timecode section (`timecode: (...)`); all optional.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimecodeSetup {
    /// The frame rate of the show's timecode.
    #[serde(default, skip_serializing_if = "TimecodeRate::is_default")]
    pub rate: TimecodeRate,
    /// The label at show time 0, e.g. `"01:00:00:00"`. Default `00:00:00:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Where the show's timecode goes out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub out: Vec<TimecodeLink>,
    /// The timecode the show clock follows (none: the show clock runs free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chase: Option<TimecodeLink>,
    /// Seconds the show clock runs on by itself after the chased timecode stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freewheel: Option<f64>,
    /// Actions fired when the show's timecode reaches a label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cues: Vec<TimecodeCue>,
    /// A tempo, and playbacks that GO on its beats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tempo: Option<TempoSetup>,
}

impl TimecodeSetup {
    /// True when nothing is set (the section is then not written).
    pub fn is_empty(&self) -> bool {
        *self == TimecodeSetup::default()
    }
}

/// The four SMPTE rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TimecodeRate {
    /// 24 fps.
    Film24,
    /// 25 fps (the default).
    #[default]
    Ebu25,
    /// 29.97 fps drop-frame.
    Df2997,
    /// 30 fps.
    Smpte30,
}

impl TimecodeRate {
    fn is_default(&self) -> bool {
        *self == TimecodeRate::default()
    }
}

/// A timecode transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TimecodeLink {
    /// Art-Net ArtTimeCode (out: to every Art-Net destination; in: UDP port 6454).
    ArtNet,
    /// MIDI timecode as raw MIDI bytes: a raw MIDI device (`/dev/snd/midiC1D0`), a FIFO or a file.
    Mtc(String),
    /// LTC audio: out, a WAV file (or `autoaudiosink` for the default sound device); in, a WAV file
    /// played in real time (or `autoaudiosrc`).
    Ltc(String),
}

/// An action at a timecode label: `(at: "00:01:02:10", action: "goto main 5")`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimecodeCue {
    /// `hh:mm:ss:ff` (`;ff` for drop-frame is accepted).
    pub at: String,
    /// A console command, as for `render --at`: `go main`, `goto main 5`, `release main`, …
    pub action: String,
}

/// A tempo: beats at `bpm` from show time `start` (seconds), and playbacks stepped by beats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TempoSetup {
    /// Beats per minute.
    pub bpm: f64,
    /// Show time of beat 0, seconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start: f64,
    /// Playbacks that GO every `every` beats (a chase that follows the beat).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow: Vec<BeatFollow>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// A playback that GOes on beats: `(playback: "chase", every: 1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeatFollow {
    pub playback: String,
    /// GO every this many beats (≥ 1).
    #[serde(default = "one_beat")]
    pub every: u32,
}

fn one_beat() -> u32 {
    1
}
