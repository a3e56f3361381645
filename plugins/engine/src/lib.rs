//! The RocKontrol show engine: cue lists fading at a fixed DMX tick.
//!
//! A [`Show`](rockontrol_show::Show) is compiled into flat tables; the fade engine computes
//! one 512-slot frame per universe per tick as a pure function of the replicated
//! [`PlaybackState`] and the tick number — never of a wall clock — so every node computes the
//! same frame for the same tick, and offline rendering equals live output.
//!
//! Merging follows lighting-console conventions: intensity is highest-takes-precedence
//! (scaled by playback masters, the grand master and blackout), every other attribute is
//! latest-takes-precedence; cue lists track; a GO mid-fade starts from where the output is.
//!
//! # Layout
//! - [`compile`]: [`CompiledShow`], the show as channel and lane tables.
//! - [`fade`]: [`FadeEngine`], [`PlaybackState`] and the per-tick advance/apply/render.
//! - [`command`]: [`Command`], the operator actions, with a text form (`go main`).
//! - [`plugin`]: [`EnginePlugin`]: the show as ECS entities, the engine in `FixedUpdate`,
//!   and [`FrameBus`] handing every frame to outputs (and [`CaptureSink`] for tests).
//! - [`programmer`]: [`Programmer`], hand-set values that override playback (highlight, clear).

pub mod command;
pub mod compile;
pub mod fade;
pub mod plugin;
pub mod programmer;

pub use command::{Command, CommandParseError};
pub use compile::{ChannelInfo, CompileError, CompiledShow};
pub use fade::{
    CommandError, Event, FadeEngine, PlaybackRun, PlaybackState, Timing, seconds_to_ticks,
};
pub use plugin::*;
pub use programmer::{Programmer, ProgrammerPlugin};
