//! A test that needs a peer this machine lacks (root, avahi, OLA…) skips here, loudly, and
//! fails under CI: CI installs every peer (`./dev setup`) and runs as root, so a skip there
//! means a test that silently stopped testing.
//!
//! Shared by the test crates by path (`#[path = ".../tests/support/skip.rs"] mod skip;`).

#![allow(dead_code, reason = "each test binary uses part of this")]

/// Whether this run is CI's: `$CI` set to anything but empty, `0` or `false` (CI sets
/// `CI=true`).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// `test` cannot run here because of `why`. Panics under CI; elsewhere prints a SKIPPED
/// banner to stderr and returns, so the caller returns too.
pub fn unavailable(test: &str, why: &str) {
    assert!(
        !under_ci(),
        "{test} cannot run: {why}. CI must run every test (`./dev setup` installs the peers; \
         CI runs as root)"
    );
    eprintln!("\n\n*** SKIPPED {test}: {why} (this fails when $CI is set) ***\n\n");
}
