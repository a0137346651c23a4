#![cfg(all(feature = "testing", feature = "stream"))]
//! Property tests of the sequential stream adapters, `for_each_scoped` and
//! `try_map_scoped` on a `Stream`, against the model of the sync adapters, for
//! invariants 1–6 of the design.
//!
//! The acquire, body and release are async closures that first wait a generated
//! number of polls (a future that returns `Pending` that many times, waking itself)
//! and then call the same scripted harness as the sync tests: each step succeeds,
//! fails or panics as the item's script says. Everything runs on one thread,
//! deterministically.
//!
//! - The results, the calls made (in order) and the resources acquired match the
//!   sync model: the async scope adds waiting, not behaviour. The harness logs an
//!   async release when it *completes*, so the call order also shows that each
//!   release is awaited before the next acquire starts (invariants 1, 4, 5).
//! - Cancellation (invariant 6): the adapter is polled `k` times by hand and then
//!   dropped, for every `k` from 0 to the number of polls a full run takes; every
//!   resource acquired is still released exactly once.

mod common;

use std::fmt::Debug;
use std::pin::pin;

use common::stream::{
    AsyncHarness, Polled, Yields, poll_future, poll_stream, scripts_without_panics, with_acquire,
    yields,
};
use common::{
    AcquireFailed, Ending, Event, Item, ItemScript, Release, ReleaseFailed, Resource, RunModel,
    Used, catch, check_calls, check_resources, failure, model_for_each, model_try_map, scripts,
    scripts_and_calls,
};
use futures::executor::block_on;
use futures::stream::{self, StreamExt as _};
use loopscope::AsyncAcquire;
use loopscope::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The most polls a step waits.
const MAX_YIELDS: usize = 3;

/// Invariant 4 before the first poll: the adapter exists, and has neither pulled
/// an item nor acquired anything.
fn check_lazy(c: &AsyncHarness) -> Result<(), TestCaseError> {
    check_calls(&c.h, &[])?;
    prop_assert!(
        c.h.tracker.acquired().is_empty(),
        "invariant 4: acquired before the first poll"
    );
    Ok(())
}

/// How many polls the model's calls take: one `Pending` per wait of each call
/// made. (A release by `Drop` logs no call and does not wait.)
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
fn for_each_with<A, R>(
    c: &AsyncHarness,
    scripts: &[ItemScript],
    yields: &[Yields],
    release: Release,
    acquire: A,
) -> Result<(), TestCaseError>
where
    A: AsyncAcquire<Item, Resource = Resource, Error = AcquireFailed, ReleaseError = R>,
    R: Into<ReleaseFailed> + Debug,
{
    let h = &c.h;
    let future = stream::iter(h.items(scripts)).for_each_scoped(acquire, c.body(yields));
    check_lazy(c)?;
    let ending: Ending<()> = catch(|| block_on(future)).map(|result| result.map_err(failure));

    let RunModel {
        ending: expected,
        events,
        acquired,
    } = model_for_each(scripts, release);
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
    let c = AsyncHarness::new();
    with_acquire!(release, c, yields, |acquire| for_each_with(
        &c, scripts, yields, release, acquire
    ))
}

// ---------------------------------------------------------------- try_map_scoped

/// Calls `next()` on an executor up to `calls` times, checking each result and
/// the calls made so far against the sync model; stops after a panic (the stream
/// must not be polled again), then drops the stream and checks the resources.
fn try_map_with<A, R>(
    c: &AsyncHarness,
    scripts: &[ItemScript],
    yields: &[Yields],
    release: Release,
    calls: usize,
    acquire: A,
) -> Result<(), TestCaseError>
where
    A: AsyncAcquire<Item, Resource = Resource, Error = AcquireFailed, ReleaseError = R>,
    R: Into<ReleaseFailed> + Debug,
{
    let h = &c.h;
    let results = stream::iter(h.items(scripts)).try_map_scoped(acquire, c.body(yields));
    // The stream is dropped at the end of this block, before the final checks.
    let made = {
        let mut results = pin!(results);
        check_lazy(c)?;

        let model = model_try_map(scripts, release, calls);
        let mut made = 0;
        for (call, expected) in model.yields.iter().enumerate() {
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
            check_calls(h, &model_try_map(scripts, release, made).events)?;
            prop_assert_eq!(
                h.tracker.live(),
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
    check_resources(h, model_try_map(scripts, release, made).acquired)
}

fn check_try_map(
    scripts: &[ItemScript],
    yields: &[Yields],
    release: Release,
    calls: usize,
) -> Result<(), TestCaseError> {
    let c = AsyncHarness::new();
    with_acquire!(release, c, yields, |acquire| try_map_with(
        &c, scripts, yields, release, calls, acquire
    ))
}

// ---------------------------------------------------------------- cancellation

/// Which adapter a cancellation test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adapter {
    ForEach,
    TryMap,
}

/// Builds the adapter over the scripted items and polls it at most `cap` times,
/// then drops it.
fn poll_adapter(
    c: &AsyncHarness,
    scripts: &[ItemScript],
    yields: &[Yields],
    adapter: Adapter,
    release: Release,
    cap: usize,
) -> Polled {
    let items = stream::iter(c.h.items(scripts));
    with_acquire!(release, c, yields, |acquire| match adapter {
        Adapter::ForEach => poll_future(items.for_each_scoped(acquire, c.body(yields)), cap),
        Adapter::TryMap => poll_stream(items.try_map_scoped(acquire, c.body(yields)), cap),
    })
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
            let events = model_for_each(scripts, release).events;
            let polls = waits(&events, yields) + 1;
            (events, polls)
        }
        Adapter::TryMap => {
            let events = model_try_map(scripts, release, scripts.len()).events;
            let polls = waits(&events, yields) + scripts.len() + 1;
            (events, polls)
        }
    };

    let c = AsyncHarness::new();
    let full = poll_adapter(&c, scripts, yields, adapter, release, full_polls + 1);
    prop_assert_eq!(
        full,
        Polled {
            polls: full_polls,
            finished: true
        },
        "a full run takes exactly one poll per wait (so every poll point is cancelled at below)"
    );
    check_calls(&c.h, &events)?;

    for limit in 0..=full_polls {
        let c = AsyncHarness::new();
        let polled = poll_adapter(&c, scripts, yields, adapter, release, limit);
        prop_assert_eq!(
            polled.finished,
            limit == full_polls,
            "finished after {} polls of {}",
            polled.polls,
            full_polls
        );
        let tracker = &c.h.tracker;
        prop_assert!(
            tracker.peak() <= 1,
            "invariant 1 (peak): {} live at once",
            tracker.peak()
        );
        prop_assert_eq!(
            tracker.live(),
            0,
            "invariant 6: live after being dropped after {} polls",
            limit
        );
        tracker.check_released_exactly_once().map_err(|mismatch| {
            TestCaseError::fail(format!(
                "invariant 6 (exactly once), dropped after {limit} polls: {mismatch}"
            ))
        })?;
        let made = c.h.events();
        prop_assert!(
            events.starts_with(&made),
            "dropped after {} polls: calls {:?} are not a prefix of {:?}",
            limit,
            made,
            events
        );
        if limit == 0 {
            check_lazy(&c)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- the properties

proptest! {
    /// `for_each_scoped` with `async_bracket(acquire).release(release)`, each step
    /// waiting, then succeeding, failing or panicking: the sync model's result and
    /// calls, fail-fast, releases awaited before the next acquire.
    #[test]
    fn for_each_matches_the_model_with_a_bracket(
        scripts in scripts(Release::Bracket),
        yields in yields(MAX_YIELDS),
    ) {
        check_for_each(&scripts, &yields, Release::Bracket)?;
    }

    /// `for_each_scoped` with a plain async acquire closure (release by `Drop`).
    #[test]
    fn for_each_matches_the_model_with_release_by_drop(
        scripts in scripts(Release::Drop),
        yields in yields(MAX_YIELDS),
    ) {
        check_for_each(&scripts, &yields, Release::Drop)?;
    }

    /// `try_map_scoped` with an async bracket, drained to the end (and one `next()`
    /// more), stopping at the first panic: one result per item, in order.
    #[test]
    fn try_map_drained_matches_the_model_with_a_bracket(
        scripts in scripts(Release::Bracket),
        yields in yields(MAX_YIELDS),
    ) {
        let calls = scripts.len() + 1;
        check_try_map(&scripts, &yields, Release::Bracket, calls)?;
    }

    /// The same, with release by `Drop`.
    #[test]
    fn try_map_drained_matches_the_model_with_release_by_drop(
        scripts in scripts(Release::Drop),
        yields in yields(MAX_YIELDS),
    ) {
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
        check_try_map(&scripts, &yields, Release::Bracket, calls)?;
    }

    /// Invariant 6 for `for_each_scoped` with an async bracket: dropped after every
    /// possible number of polls.
    #[test]
    fn for_each_cancelled_at_every_poll_with_a_bracket(
        scripts in scripts_without_panics(Release::Bracket),
        yields in yields(MAX_YIELDS),
    ) {
        check_cancellation(&scripts, &yields, Adapter::ForEach, Release::Bracket)?;
    }

    /// The same, with release by `Drop`.
    #[test]
    fn for_each_cancelled_at_every_poll_with_release_by_drop(
        scripts in scripts_without_panics(Release::Drop),
        yields in yields(MAX_YIELDS),
    ) {
        check_cancellation(&scripts, &yields, Adapter::ForEach, Release::Drop)?;
    }

    /// Invariant 6 for `try_map_scoped` with an async bracket.
    #[test]
    fn try_map_cancelled_at_every_poll_with_a_bracket(
        scripts in scripts_without_panics(Release::Bracket),
        yields in yields(MAX_YIELDS),
    ) {
        check_cancellation(&scripts, &yields, Adapter::TryMap, Release::Bracket)?;
    }

    /// The same, with release by `Drop`.
    #[test]
    fn try_map_cancelled_at_every_poll_with_release_by_drop(
        scripts in scripts_without_panics(Release::Drop),
        yields in yields(MAX_YIELDS),
    ) {
        check_cancellation(&scripts, &yields, Adapter::TryMap, Release::Drop)?;
    }
}
