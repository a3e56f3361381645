//! RocKontrol timecode: SMPTE timecode from the show clock, out as ArtTimeCode, MIDI timecode
//! and LTC audio; the show clock chasing incoming timecode; cues fired at timecode labels; and
//! a replicated tempo whose beats are a pure function of show time.
//!
//! Everything that decides is pure (no I/O, every time an argument), so it is tested against
//! numbers and byte vectors; the threads that read and write devices, files, sockets and
//! GStreamer pipelines are thin shells in [`io`].
//!
//! # Layout
//! - [`smpte`]: show time ↔ frame count ↔ `hh:mm:ss:ff` (exact, drop-frame included); parsing.
//! - [`mtc`]: MIDI timecode quarter/full frames, the quarter-frame schedule, a byte decoder.
//! - [`ltc`]: LTC frame bits and biphase-mark samples as a function of the sample index; a reader.
//! - [`chase`]: the chase state machine (lock, slew, step, freewheel, lost).
//! - [`beat`]: [`Tempo`] (beats from show time, replicated) and [`TapTempo`].
//! - [`config`]: the show's `timecode` section checked and compiled; the commands due in a tick.
//! - [`io`]: output and input threads.
//! - [`plugin`]: [`TimecodePlugin`], its systems and [`TimecodeStatus`].

pub mod beat;
pub mod chase;
pub mod config;
pub mod io;
pub mod ltc;
pub mod mtc;
pub mod plugin;
pub mod smpte;

pub use beat::{TapTempo, Tempo};
pub use chase::{Chase, ChaseAction, ChaseSettings, LockState};
pub use config::{ConfigError, TimecodeConfig};
pub use plugin::{
    ActiveTimecode, SharedTimeBase, TEMPO_PART, TempoInput, TimecodeOptions, TimecodePlugin,
    TimecodeStatus, TimecodeSystems, artnet_out, check_show, register_replication,
};
