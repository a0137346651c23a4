//! A time limit for each test that runs async code: [`watchdog`].
//!
//! An adapter that loses a wake-up, or waits for a release that never ends,
//! makes its test hang — `Pending` forever, with nothing to fail it. Without a
//! limit of its own such a test runs until CI's limit for the whole job, half
//! an hour later, and the log does not say which test hung. So each async test
//! starts with `let _watchdog = watchdog("name_of_the_test");`, and a hang fails
//! in seconds, naming the test.
//!
//! Included by a test file with `#[path = "common/watchdog.rs"]`, like
//! `inputs.rs` (whose property cases have `within_time_limit` instead).

// A file whose async tests are compiled out by its features still includes this
// module.
#![allow(dead_code)]

use std::io::{self, Write as _};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

/// How long a test may run before it counts as hung: 10 s, or the seconds in
/// `LOOPSCOPE_TEST_TIME_LIMIT` (the mutation run, `scripts/mutants.sh`, sets 3,
/// so that a mutant that hangs fails in seconds). `common/inputs.rs` uses it
/// for its property cases too.
pub fn time_limit() -> Duration {
    let seconds = std::env::var("LOOPSCOPE_TEST_TIME_LIMIT")
        .ok()
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or(10);
    Duration::from_secs(seconds)
}

/// The guard of a running test, from [`watchdog`]: dropping it — when the test
/// returns, or unwinds from a failed assertion — tells the watchdog's thread
/// that the test has ended, and that thread ends too.
pub struct Watchdog {
    /// Sends `()` on drop; the watchdog's thread waits for it.
    ended: Sender<()>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // A send fails only if the watchdog's thread has already gone, which
        // it does only by ending the process: nothing left to tell.
        let _gone = self.ended.send(());
    }
}

/// Starts a thread that waits [`time_limit`] for the returned guard to be
/// dropped. If the time runs out first, the test named `test` has hung: the
/// thread prints `"{test}: no result within {limit:?}: hung"` to stderr and
/// ends the whole test binary with exit code 101, the code of a failed test.
///
/// Why the whole process: a thread cannot interrupt another, and a hung test
/// never returns to the harness, so failing the test on its own is impossible;
/// ending the process fails the run at once instead of at CI's limit, and the
/// message names the test that hung.
///
/// Keep the guard for the whole test — `let _watchdog = watchdog(…)`, not
/// `let _ = …`, which would drop it at once.
#[must_use = "the time limit lasts as long as the guard: bind it with `let _watchdog`"]
pub fn watchdog(test: &'static str) -> Watchdog {
    let (ended, waiting) = mpsc::channel();
    let limit = time_limit();
    std::thread::Builder::new()
        .name(format!("watchdog of {test}"))
        .spawn(move || match waiting.recv_timeout(limit) {
            // The guard was dropped: the test has ended, returned or unwound.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => {
                // To `io::stderr()` itself: `eprintln!` would go to the test's
                // captured output, which this thread inherits and which is
                // lost when the process ends.
                let _ = writeln!(io::stderr(), "{test}: no result within {limit:?}: hung");
                std::process::exit(101);
            }
        })
        .expect("a thread for the watchdog");
    Watchdog { ended }
}
