//! The command seam: the one place where commands meet the playback state at a tick.
//!
//! Every path that changes playback — `render`, `run`, the master (REST and its queue) and
//! receivers (replicated deltas, node commands, the master-loss blackout) — goes through
//! [`CommandSeam`], so the same commands at the same ticks give the same frames everywhere.
//!
//! # Order within tick *k*
//! 1. The clock: a receiver applies a snapshot or steps its show clock before tick *k* runs.
//! 2. Follows, delayed moves and releases due by *k*'s show time ([`FadeEngine::advance`]),
//!    once, each at its own exact time, earliest first.
//! 3. Commands for *k*, one after the other, in arrival order: commands scheduled for a tick
//!    (`--at`) by tick then as queued, then immediate ones, then the network's (on a master
//!    the REST API's, on a receiver the master's deltas in its order, then node commands).
//!    A command sees the effect of the follows of step 2 and of the commands before it: a GO
//!    on the tick a follow is due goes on from the followed cue; a release with a 0 s
//!    release time at *k* is complete at *k*.
//! 4. The frame for *k* is rendered from the resulting state.

use crate::command::Command;
use crate::fade::{CommandError, Event, FadeEngine, PlaybackState};

/// Applies commands at a tick after that tick's follows and releases (see the [module
/// docs](self) for the order). Holds which tick was advanced last and the events of follows
/// fired on the way, for the engine to report.
#[derive(Debug, Default, Clone)]
pub struct CommandSeam {
    advanced: Option<u64>,
    events: Vec<Event>,
}

impl CommandSeam {
    /// Fires follows and completes releases due at `tick`, once per tick (again only if the
    /// tick changed, e.g. after a clock step).
    pub fn advance(&mut self, fade: &mut FadeEngine, state: &mut PlaybackState, tick: u64) {
        if self.advanced == Some(tick) {
            return;
        }
        self.advanced = Some(tick);
        let events = fade.advance(state, tick);
        if !events.is_empty() {
            self.events.extend(events);
        }
    }

    /// Applies `command` at `tick`, after that tick's follows and releases.
    pub fn apply(
        &mut self,
        fade: &mut FadeEngine,
        state: &mut PlaybackState,
        command: &Command,
        tick: u64,
    ) -> Result<Vec<Event>, CommandError> {
        self.advance(fade, state, tick);
        fade.apply(state, command, tick)
    }

    /// Events of follows and releases fired since the last call.
    pub fn take_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Forgets the advanced tick (a new show or state starts over).
    pub fn reset(&mut self) {
        self.advanced = None;
        self.events.clear();
    }
}
