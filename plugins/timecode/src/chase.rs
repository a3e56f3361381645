//! Chase: the show clock following incoming timecode. Pure; every time is an argument.
//!
//! Each received label gives the source's show time ("it is frame *f* now"); the error is that
//! minus our show time at the instant it arrived.
//! - The first label (or the first after a loss) **steps** our show time to it: *locking*.
//! - While locked, an error beyond [`ChaseSettings::step_after_ns`] (the source jumped, was
//!   located elsewhere) **steps**; a smaller one, averaged over a few labels, beyond
//!   [`ChaseSettings::deadband_ns`] **slews** within [`ChaseSettings::max_slew_ppm`], so ticks are
//!   never skipped or repeated.
//! - No label for [`ChaseSettings::loss_after_ns`]: *freewheel* — the show clock runs on by itself
//!   for [`ChaseSettings::freewheel_ns`]; then *lost*, and the show clock runs free until
//!   timecode comes back (the running show keeps running).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Chase tuning. Times are nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChaseSettings {
    /// Labels within the deadband needed to call the chase locked.
    pub lock_after: u32,
    /// Errors larger than this step (default 0.25 s: a jump, not drift).
    pub step_after_ns: u64,
    /// Averaged errors smaller than this are left alone (default 5 ms; a label is 33–42 ms).
    pub deadband_ns: u64,
    /// The fastest correction of a slew (default 20 000 ppm: 2 %).
    pub max_slew_ppm: u32,
    /// Labels averaged before a slew.
    pub average_of: usize,
    /// No label for this long: freewheel (default 0.2 s).
    pub loss_after_ns: u64,
    /// How long to freewheel before giving up (default 2 s; configurable per show).
    pub freewheel_ns: u64,
}

impl Default for ChaseSettings {
    fn default() -> Self {
        ChaseSettings {
            lock_after: 4,
            step_after_ns: 250_000_000,
            deadband_ns: 5_000_000,
            max_slew_ppm: 20_000,
            average_of: 4,
            loss_after_ns: 200_000_000,
            freewheel_ns: 2_000_000_000,
        }
    }
}

/// Where the chase stands (shown in status and the UI).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    /// Nothing received yet (or not chasing).
    #[default]
    Idle,
    /// Stepped to the source; checking that labels agree.
    Locking,
    /// Following the source.
    Locked,
    /// The source stopped; running on by ourselves.
    Freewheel,
    /// The source stayed away past the freewheel time; the show clock runs free.
    Lost,
}

/// What the show clock should do after a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChaseAction {
    /// Nothing.
    Hold,
    /// Jump to this show time now.
    Step(u64),
    /// Steer towards this show time (as of now) within the slew window.
    Slew(u64),
}

/// The chase state machine.
#[derive(Debug, Clone)]
pub struct Chase {
    pub settings: ChaseSettings,
    state: LockState,
    last_label_at: Option<u64>,
    agreeing: u32,
    errors: VecDeque<i64>,
    /// Latest error seen (source − ours), ns.
    pub last_error_ns: i64,
}

impl Chase {
    #[must_use]
    pub fn new(settings: ChaseSettings) -> Self {
        Chase {
            settings,
            state: LockState::Idle,
            last_label_at: None,
            agreeing: 0,
            errors: VecDeque::new(),
            last_error_ns: 0,
        }
    }

    #[must_use]
    pub fn state(&self) -> LockState {
        self.state
    }

    /// A label arrived at local time `now`: the source is at show time `source_ns`, we are at
    /// `ours_ns`.
    pub fn label(&mut self, now: u64, source_ns: u64, ours_ns: u64) -> ChaseAction {
        self.last_label_at = Some(now);
        let error = source_ns as i64 - ours_ns as i64;
        self.last_error_ns = error;
        let resync = matches!(self.state, LockState::Idle | LockState::Lost)
            || error.unsigned_abs() > self.settings.step_after_ns;
        if resync {
            self.relock();
            return ChaseAction::Step(source_ns);
        }
        if self.state == LockState::Freewheel {
            self.state = LockState::Locked;
        }
        if error.unsigned_abs() <= self.settings.deadband_ns.max(1) * 8 {
            self.agreeing += 1;
        }
        if self.state == LockState::Locking && self.agreeing >= self.settings.lock_after {
            self.state = LockState::Locked;
        }
        self.errors.push_back(error);
        if self.errors.len() < self.settings.average_of.max(1) {
            return ChaseAction::Hold;
        }
        let mean = self.errors.iter().sum::<i64>() / self.errors.len() as i64;
        self.errors.clear();
        if mean.unsigned_abs() <= self.settings.deadband_ns {
            ChaseAction::Hold
        } else {
            ChaseAction::Slew((ours_ns as i64 + mean).max(0) as u64)
        }
    }

    fn relock(&mut self) {
        self.state = LockState::Locking;
        self.agreeing = 0;
        self.errors.clear();
    }

    /// Time passes without labels: freewheel, then lost. Returns the new state when it changed.
    pub fn poll(&mut self, now: u64) -> Option<LockState> {
        let since = now.saturating_sub(self.last_label_at?);
        let next = match self.state {
            LockState::Locking | LockState::Locked if since > self.settings.loss_after_ns => {
                LockState::Freewheel
            }
            LockState::Freewheel
                if since > self.settings.loss_after_ns + self.settings.freewheel_ns =>
            {
                LockState::Lost
            }
            _ => return None,
        };
        self.state = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u64 = 40_000_000; // 25 fps
    const MS: u64 = 1_000_000;

    /// Our clock: `now + offset` plus a drift, corrected as the chase says (a slew modelled as
    /// its end result; the time base's own tests check that a slew never skips a tick).
    struct Rig {
        offset: i64,
        drift_ppm: i64,
        largest_slew: u64,
    }

    impl Rig {
        fn ours(&self, now: u64) -> u64 {
            (now as i64 + self.offset + now as i64 * self.drift_ppm / 1_000_000) as u64
        }
        fn apply(&mut self, now: u64, action: ChaseAction) {
            match action {
                ChaseAction::Hold => {}
                ChaseAction::Step(ns) => self.offset += ns as i64 - self.ours(now) as i64,
                ChaseAction::Slew(target) => {
                    let correction = target as i64 - self.ours(now) as i64;
                    self.largest_slew = self.largest_slew.max(correction.unsigned_abs());
                    self.offset += correction;
                }
            }
        }
    }

    #[test]
    fn locks_by_stepping_then_holds_steps_on_a_jump_and_freewheels_on_loss() {
        let settings = ChaseSettings::default();
        let mut chase = Chase::new(settings);
        let source_start = 3_600 * 1_000 * MS; // the source is an hour in
        // First label at local 1 s: step.
        let action = chase.label(1_000 * MS, source_start, 1_000 * MS);
        assert_eq!(action, ChaseAction::Step(source_start));
        assert_eq!(chase.state(), LockState::Locking);
        // Labels agreeing to within a millisecond: locked after `lock_after`, no corrections.
        for i in 1..=8u64 {
            let now = 1_000 * MS + i * FRAME;
            let action = chase.label(
                now,
                source_start + i * FRAME,
                source_start + i * FRAME - MS / 2,
            );
            assert_eq!(action, ChaseAction::Hold, "label {i} within the deadband");
        }
        assert_eq!(chase.state(), LockState::Locked);
        // The source jumps 10 s back: step at once.
        let now = 1_000 * MS + 9 * FRAME;
        let action = chase.label(now, source_start - 10_000 * MS, source_start + 9 * FRAME);
        assert_eq!(action, ChaseAction::Step(source_start - 10_000 * MS));
        assert_eq!(chase.state(), LockState::Locking);
        // Silence: freewheel after 0.2 s, lost 2 s later.
        assert_eq!(chase.poll(now + 150 * MS), None);
        assert_eq!(chase.poll(now + 201 * MS), Some(LockState::Freewheel));
        assert_eq!(chase.poll(now + 2_000 * MS), None, "still freewheeling");
        assert_eq!(chase.poll(now + 2_201 * MS), Some(LockState::Lost));
        // Back again: a fresh lock by a step.
        let later = now + 5_000 * MS;
        assert!(matches!(
            chase.label(later, 7 * FRAME, 0),
            ChaseAction::Step(_)
        ));
    }

    #[test]
    fn a_label_after_a_short_dropout_resumes_without_a_step() {
        let mut chase = Chase::new(ChaseSettings::default());
        chase.label(0, 0, 0);
        for i in 1..=5 {
            chase.label(i * FRAME, i * FRAME, i * FRAME);
        }
        assert_eq!(chase.poll(5 * FRAME + 300 * MS), Some(LockState::Freewheel));
        let now = 5 * FRAME + 400 * MS;
        assert_eq!(
            chase.label(now, now + MS, now),
            ChaseAction::Hold,
            "1 ms off: no step"
        );
        assert_eq!(chase.state(), LockState::Locked);
    }

    #[test]
    fn drift_is_slewed_out_and_ticks_never_jump() {
        // Our clock runs 1000 ppm slow; the chase must keep the error within a couple of frames
        // for a minute, by slewing only.
        let mut chase = Chase::new(ChaseSettings::default());
        let mut rig = Rig {
            offset: 0,
            drift_ppm: -1_000,
            largest_slew: 0,
        };
        let mut steps = 0;
        let mut worst: u64 = 0;
        for i in 0..25 * 60u64 {
            let now = i * FRAME + 3 * MS; // each label read 3 ms after it was sent
            let source = i * FRAME + 3_600_000 * MS;
            let action = chase.label(now, source, rig.ours(now));
            if matches!(action, ChaseAction::Step(_)) {
                steps += 1;
            }
            if i > 0 {
                worst = worst.max((source as i64 - rig.ours(now) as i64).unsigned_abs());
            }
            rig.apply(now, action);
        }
        assert!(
            rig.largest_slew < 10 * MS,
            "slews are small: {}",
            rig.largest_slew
        );
        assert_eq!(steps, 1, "only the first label steps");
        assert!(
            worst < FRAME,
            "error stays under one frame: worst {worst} ns"
        );
        assert_eq!(chase.state(), LockState::Locked);
    }
}
