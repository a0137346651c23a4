#![cfg(all(feature = "testing", feature = "stream"))]
//! Property tests of the sequential stream adapters, `for_each_scoped` and
//! `try_map_scoped` on a `Stream`, against the model of the sync adapters, for
//! invariants 1–6 of the design.
//!
//! The acquire, body and release are async closures wrapped by the
//! `loopscope::testing` fault kit: each step first waits a generated number of
//! polls (a future that returns `Pending` that many times, waking itself) and
//! then succeeds, fails or panics as the item's script says — the same scripts
//! and model as the sync tests. Everything runs on one thread, deterministically.
//!
//! - The results, the calls made (in order) and the resources acquired match the
//!   sync model: the async scope adds waiting, not behaviour. The kit records a
//!   step's call when it *ends*, so the call order also shows that each release
//!   is awaited before the next acquire ends (invariants 1, 4, 5).
//! - Cancellation (invariant 6): with the kit's `try_cancel_at_every_poll`, the
//!   adapter is polled `k` times by hand and then dropped, for every `k` from 0
//!   to the number of polls a full run takes; every resource acquired is still
//!   released exactly once.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/watchdog.rs"]
mod watchdog;

mod common;

use std::pin::pin;

use common::stream::{ScriptedAcquire, Yields, scripts_without_panics, with_acquire, yields};
use common::{
    Ending, Event, Harness, ItemScript, Release, RunModel, Used, catch, check_calls,
    check_resources, failure, model_for_each, model_try_map, release_is_called, scripts,
    scripts_and_calls,
};
use futures::executor::block_on;
use futures::stream::{self, StreamExt as _};
use loopscope::prelude::*;
use loopscope::testing::{try_cancel_at_every_poll, try_cancel_stream_at_every_poll};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use watchdog::watchdog;

/// The most polls a step waits.
const MAX_YIELDS: usize = 3;

/// Whether the adapter calls the release the kit sees: see `release_is_called`.
fn called(release: Release) -> bool {
    release_is_called(release, false)
}

/// Invariant 4 before the first poll: the adapter exists, and has neither pulled
/// an item nor acquired anything.
fn check_lazy(h: &Harness) -> Result<(), TestCaseError> {
    check_calls(h, &[])?;
    prop_assert!(
        h.tracker().acquired().is_empty(),
        "invariant 4: acquired before the first poll"
    );
    Ok(())
}

/// How many polls the model's calls take: one `Pending` per wait of each call
/// made. (A release by `Drop` makes no call and does not wait.)
fn waits(events: &[Event], yields: &[Yields]) -> usize {
    events
        .iter()
        .map(|event| match *event {
            Event::Acquire(i) => yields[i].acquire,
            Event::Body(i) => yields[i].body,
            Event::Release(i) => yields[i].release,
        })
        .sum()
}

// ---------------------------------------------------------------- for_each_scoped

/// Runs `for_each_scoped` on an executor and checks it against the sync model.
fn for_each_with(
    h: &Harness,
    scripts: &[ItemScript],
    release: Release,
    acquire: impl ScriptedAcquire,
) -> Result<(), TestCaseError> {
    let future = stream::iter(h.items()).for_each_scoped(acquire, h.async_body());
    check_lazy(h)?;
    let ending: Ending<()> = catch(|| block_on(future)).map(|result| result.map_err(failure));

    let RunModel {
        ending: expected,
        events,
        acquired,
    } = model_for_each(scripts, release, called(release));
    prop_assert_eq!(
        ending,
        expected,
        "invariant 3: the error (step, index, both errors) or the body's panic payload"
    );
    check_resources(h, acquired)?;
    // In order, fail-fast, and each release completed before the next acquire.
    check_calls(h, &events)
}

fn check_for_each(
    scripts: &[ItemScript],
    yields: &[Yields],
    release: Release,
) -> Result<(), TestCaseError> {
    let h = Harness::with_yields(scripts, release, yields);
    with_acquire!(release, h, |acquire| for_each_with(
        &h, scripts, release, acquire
    ))
}

// ---------------------------------------------------------------- try_map_scoped

/// Calls `next()` on an executor up to `calls` times, checking each result and
/// the calls made so far against the sync model; stops after a panic (the stream
/// must not be polled again), then drops the stream and checks the resources.
fn try_map_with(
    h: &Harness,
    scripts: &[ItemScript],
    release: Release,
    calls: usize,
    acquire: impl ScriptedAcquire,
) -> Result<(), TestCaseError> {
    let model = |calls| model_try_map(scripts, release, called(release), calls);
    let results = stream::iter(h.items()).try_map_scoped(acquire, h.async_body());
    // The stream is dropped at the end of this block, before the final checks.
    let made = {
        let mut results = pin!(results);
        check_lazy(h)?;

        let mut made = 0;
        for (call, expected) in model(calls).yields.iter().enumerate() {
            let ending: Option<Ending<Used>> = match catch(|| block_on(results.next())) {
                Ok(next) => next.map(|result| Ok(result.map_err(failure))),
                Err(injected) => Some(Err(injected)),
            };
            made = call + 1;
            prop_assert_eq!(
                &ending,
                expected,
                "invariants 3 and 4: next() call {} yields item {}'s result (None past the end)",
                call,
                call
            );
            // Each next() handles exactly one item, and its release has completed
            // before the result is yielded.
            check_calls(h, &model(made).events)?;
            prop_assert_eq!(
                h.tracker().live(),
                0,
                "invariants 2 and 5: a resource live after next() call {}",
                call
            );
            if matches!(ending, Some(Err(_))) {
                break; // panicked: polling again is documented to panic
            }
        }
        made
    };
    check_resources(h, model(made).acquired)
}

fn check_try_map(
    scripts: &[ItemScript],
    yields: &[Yields],
    release: Release,
    calls: usize,
) -> Result<(), TestCaseError> {
    let h = Harness::with_yields(scripts, release, yields);
    with_acquire!(release, h, |acquire| try_map_with(
        &h, scripts, release, calls, acquire
    ))
}

// ---------------------------------------------------------------- cancellation

/// Which adapter a cancellation test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adapter {
    ForEach,
    TryMap,
}

/// Drops the adapter after every possible number of polls, each run on a reset
/// harness with a fresh acquire, calling `check` after each drop; returns the
/// number of polls a full run takes.
fn cancel_at_every_poll<A: ScriptedAcquire>(
    h: &Harness,
    adapter: Adapter,
    acquire: impl Fn() -> A,
    check: impl FnMut(usize) -> Result<(), TestCaseError>,
) -> Result<usize, TestCaseError> {
    match adapter {
        Adapter::ForEach => try_cancel_at_every_poll(
            || {
                h.reset();
                stream::iter(h.items()).for_each_scoped(acquire(), h.async_body())
            },
            check,
        ),
        Adapter::TryMap => try_cancel_stream_at_every_poll(
            || {
                h.reset();
                stream::iter(h.items()).try_map_scoped(acquire(), h.async_body())
            },
            check,
        ),
    }
}

/// Invariant 6: dropped after any number of polls, from none to a full run, the
/// adapter leaves nothing live and released every resource it acquired exactly
/// once; the calls made are a prefix of the full run's.
fn check_cancellation(
    scripts: &[ItemScript],
    yields: &[Yields],
    adapter: Adapter,
    release: Release,
) -> Result<(), TestCaseError> {
    // A full run polls once per wait of each call made, plus, for
    // `for_each_scoped`, the poll that returns; for `try_map_scoped`, the poll
    // of each item's result and the one that returns `None`.
    let (events, full_polls) = match adapter {
        Adapter::ForEach => {
            let events = model_for_each(scripts, release, called(release)).events;
            let polls = waits(&events, yields) + 1;
            (events, polls)
        }
        Adapter::TryMap => {
            let events = model_try_map(scripts, release, called(release), scripts.len()).events;
            let polls = waits(&events, yields) + scripts.len() + 1;
            (events, polls)
        }
    };

    let h = Harness::with_yields(scripts, release, yields);
    let check = |polls: usize| -> Result<(), TestCaseError> {
        let tracker = h.tracker();
        prop_assert!(
            tracker.peak() <= 1,
            "invariant 1 (peak): {} live at once",
            tracker.peak()
        );
        prop_assert_eq!(
            tracker.live(),
            0,
            "invariant 6: live after being dropped after {} polls",
            polls
        );
        tracker.check_released_exactly_once().map_err(|mismatch| {
            TestCaseError::fail(format!(
                "invariant 6 (exactly once), dropped after {polls} polls: {mismatch}"
            ))
        })?;
        let made = h.events();
        prop_assert!(
            events.starts_with(&made),
            "dropped after {} polls: calls {:?} are not a prefix of {:?}",
            polls,
            made,
            events
        );
        if polls == 0 {
            check_lazy(&h)?;
        }
        if polls == full_polls {
            check_calls(&h, &events)?;
        }
        Ok(())
    };
    let polls = match release {
        Release::Bracket => cancel_at_every_poll(&h, adapter, || h.async_bracket_acquire(), check)?,
        Release::Drop => cancel_at_every_poll(&h, adapter, || h.async_drop_acquire(), check)?,
    };
    prop_assert_eq!(
        polls,
        full_polls,
        "a full run takes exactly one poll per wait (so every poll point is cancelled at)"
    );
    Ok(())
}

// ---------------------------------------------------------------- the properties

proptest! {
    #![proptest_config(cases::config(256))]

    /// `for_each_scoped` with `async_bracket(acquire).release(release)`, each step
    /// waiting, then succeeding, failing or panicking: the sync model's result and
    /// calls, fail-fast, releases awaited before the next acquire.
    #[test]
    fn for_each_matches_the_model_with_a_bracket(
        scripts in scripts(Release::Bracket),
        yields in yields(MAX_YIELDS),
    ) {
        let _watchdog = watchdog("for_each_matches_the_model_with_a_bracket");
        check_for_each(&scripts, &yields, Release::Bracket)?;
    }

    /// `for_each_scoped` with a plain async acquire closure (release by `Drop`).
    #[test]
    fn for_each_matches_the_model_with_release_by_drop(
        scripts in scripts(Release::Drop),
        yields in yields(MAX_YIELDS),
    ) {
        let _watchdog = watchdog("for_each_matches_the_model_with_release_by_drop");
        check_for_each(&scripts, &yields, Release::Drop)?;
    }

    /// `try_map_scoped` with an async bracket, drained to the end (and one `next()`
    /// more), stopping at the first panic: one result per item, in order.
    #[test]
    fn try_map_drained_matches_the_model_with_a_bracket(
        scripts in scripts(Release::Bracket),
        yields in yields(MAX_YIELDS),
    ) {
        let _watchdog = watchdog("try_map_drained_matches_the_model_with_a_bracket");
        let calls = scripts.len() + 1;
        check_try_map(&scripts, &yields, Release::Bracket, calls)?;
    }

    /// The same, with release by `Drop`.
    #[test]
    fn try_map_drained_matches_the_model_with_release_by_drop(
        scripts in scripts(Release::Drop),
        yields in yields(MAX_YIELDS),
    ) {
        let _watchdog = watchdog("try_map_drained_matches_the_model_with_release_by_drop");
        let calls = scripts.len() + 1;
        check_try_map(&scripts, &yields, Release::Drop, calls)?;
    }

    /// `try_map_scoped` with an async bracket, the consumer calling `next()` 0 to
    /// `len` times and then dropping the stream between items.
    #[test]
    fn try_map_stopped_early_leaves_nothing_live(
        (scripts, calls) in scripts_and_calls(Release::Bracket),
        yields in yields(MAX_YIELDS),
    ) {
        let _watchdog = watchdog("try_map_stopped_early_leaves_nothing_live");
        check_try_map(&scripts, &yields, Release::Bracket, calls)?;
    }

    /// Invariant 6 for `for_each_scoped` with an async bracket: dropped after every
    /// possible number of polls.
    #[test]
    fn for_each_cancelled_at_every_poll_with_a_bracket(
        scripts in scripts_without_panics(Release::Bracket),
        yields in yields(MAX_YIELDS),
    ) {
        let _watchdog = watchdog("for_each_cancelled_at_every_poll_with_a_bracket");
        check_cancellation(&scripts, &yields, Adapter::ForEach, Release::Bracket)?;
    }

    /// The same, with release by `Drop`.
    #[test]
    fn for_each_cancelled_at_every_poll_with_release_by_drop(
        scripts in scripts_without_panics(Release::Drop),
        yields in yields(MAX_YIELDS),
    ) {
        let _watchdog = watchdog("for_each_cancelled_at_every_poll_with_release_by_drop");
        check_cancellation(&scripts, &yields, Adapter::ForEach, Release::Drop)?;
    }

    /// Invariant 6 for `try_map_scoped` with an async bracket.
    #[test]
    fn try_map_cancelled_at_every_poll_with_a_bracket(
        scripts in scripts_without_panics(Release::Bracket),
        yields in yields(MAX_YIELDS),
    ) {
        let _watchdog = watchdog("try_map_cancelled_at_every_poll_with_a_bracket");
        check_cancellation(&scripts, &yields, Adapter::TryMap, Release::Bracket)?;
    }

    /// The same, with release by `Drop`.
    #[test]
    fn try_map_cancelled_at_every_poll_with_release_by_drop(
        scripts in scripts_without_panics(Release::Drop),
        yields in yields(MAX_YIELDS),
    ) {
        let _watchdog = watchdog("try_map_cancelled_at_every_poll_with_release_by_drop");
        check_cancellation(&scripts, &yields, Adapter::TryMap, Release::Drop)?;
    }
}
