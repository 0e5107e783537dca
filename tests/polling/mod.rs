//! The one place tests wait: polling a condition until a deadline. Tests
//! never sleep to let time pass (profiles opened with a `ManualClock` move
//! time by hand) nor to wait for something not to happen (they wait for
//! the event that settles it, then look). `tests/layering.rs` checks that
//! no other test file calls `thread::sleep`.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(2);

/// Calls `check` until it returns `Some`, for at most `limit`; panics
/// naming `what` at the deadline.
pub fn until<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// Waits until `condition` holds, for at most `limit`.
pub fn until_true(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    until(limit, what, || condition().then_some(()))
}

/// Blocks this thread for good: a child process that waits to be killed,
/// or a host handler that never returns on its own.
pub fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// One step of a loop that polls with its own deadline (or a cooperative
/// job checking for cancellation between steps).
pub fn pause() {
    std::thread::sleep(POLL);
}
