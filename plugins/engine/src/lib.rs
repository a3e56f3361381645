//! The RocKontrol show engine: cue lists fading at a fixed DMX tick.
//!
//! A [`Show`](rockontrol_show::Show) is compiled into flat tables; the fade engine computes
//! one 512-slot frame per universe per tick as a pure function of the replicated
//! [`PlaybackState`] and the tick number — never of a wall clock — so every node computes the
//! same frame for the same tick, and offline rendering equals live output.
//!
//! Merging follows lighting-console conventions: intensity is highest-takes-precedence
//! (scaled by playback masters, the grand master and blackout), every other attribute is
//! latest-takes-precedence per channel (the latest move holds it); cue lists track; a GO
//! mid-fade starts from where the output is. README "Cue semantics" has the exact rules.
//!
//! # Layout
//! - [`compile`]: [`CompiledShow`], the show as channel and lane tables.
//! - [`fade`]: [`FadeEngine`], [`PlaybackState`] and the per-tick advance/apply/render.
//! - [`command`]: [`Command`], the operator actions, with a text form (`go main`).
//! - [`plugin`]: [`EnginePlugin`]: the show as ECS entities, the engine in `FixedUpdate`,
//!   and [`FrameBus`] handing every frame to outputs (and [`CaptureSink`] for tests).
//! - [`programmer`]: [`Programmer`], hand-set values that override playback (highlight, clear).
//! - [`seam`]: [`CommandSeam`], the one place commands are applied, and their order in a tick.
//! - [`timebase`]: [`ShowTimeBase`], show time as a mapping from the monotonic clock (step,
//!   slew); the fixed-tick schedule and the DMX deadlines derive from it.
//!
//! # One tick, in order
//! 1. A receiver applies a snapshot or steps its clock ([`ShowClock::step_to`]).
//! 2. Follows, delayed moves and releases due by tick *k*'s show time, each at its exact time.
//! 3. Commands for *k* in arrival order: `--at` ones by tick, then immediate ones, then the
//!    network's (REST on a master; deltas, then node commands on a receiver). Each sees the
//!    follows of step 2 and the commands before it.
//! 4. The frame for *k* is rendered, then published with its deadline.

pub mod command;
pub mod compile;
pub mod effect;
pub mod fade;
pub mod plugin;
pub mod programmer;
pub mod seam;
pub mod timebase;

pub use command::{Command, CommandParseError};
pub use compile::{ChannelInfo, CompileError, CompiledShow};
pub use effect::{BeatClock, CompiledEffect};
pub use fade::{
    CommandError, Delayed, Event, FadeEngine, PlaybackRun, PlaybackState, Timing, seconds_to_ns,
    seconds_to_ticks,
};
pub use plugin::*;
pub use programmer::{Programmer, ProgrammerPlugin};
pub use seam::CommandSeam;
pub use timebase::{ShowTimeBase, first_tick_at, ns_of_tick};
