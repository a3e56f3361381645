//! The command seam's script (issue 10 defect 3), shared by the tests that run it: (tick,
//! command) with same-tick edge cases. GO at 2 sets a follow due at 24; GO again at 24 (the
//! follow's tick); fx at 30 and its release (0 s release time) at 40; two commands in tick 50.

pub const SCRIPT: &[(u64, &str)] = &[
    (2, "go main"),
    (24, "go main"),
    (30, "go fx"),
    (40, "release fx"),
    (50, "gm 0.4"),
    (50, "back main"),
];

/// The last tick the tests compare.
pub const LAST_TICK: u64 = 100;
