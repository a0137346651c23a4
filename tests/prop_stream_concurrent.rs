#![cfg(all(feature = "testing", feature = "stream", feature = "tokio"))]
//! Property tests of the concurrent stream adapters — `for_each_scoped_concurrent`,
//! `try_map_scoped_concurrent` (input order) and `try_map_scoped_unordered`
//! (completion order) — for invariants 1–6 of the design.
//!
//! The acquire, body and release are async closures wrapped by the
//! `loopscope::testing` fault kit: each step first waits a generated number of
//! polls, different for each item (a future that returns `Pending` that many
//! times, waking itself), and then succeeds, fails or panics as the item's script
//! says — the scripts of the sync tests. So the items in flight finish in an
//! order that depends on the case, not on the input.
//!
//! Everything is driven on one thread with `futures::executor::block_on` (or
//! polled by hand with a no-op waker), not with tokio's paused clock: the waits
//! are counted in polls, so a case runs the same way every time, needs no timer
//! and can be cancelled at each of its polls exactly (the kit's
//! `try_cancel_at_every_poll`). Only the `spawn_on_cancel`
//! property needs a runtime (the spawned releases run on it): a tokio
//! `current_thread` runtime, inside which the adapter is still polled by hand.

#[path = "common/cases.rs"]
mod cases;

mod common;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use common::stream::{
    Polled, ScriptedAcquire, Yields, poll_future, poll_stream, scripts_without_panics,
    with_acquire, yields,
};
use common::{
    Act, Event, Failure, Harness, ItemScript, MAX_ITEMS, Release, Used, catch, failure,
    release_is_called, scripts,
};
use futures::executor::block_on;
use futures::stream::{self, Stream, StreamExt as _};
use loopscope::prelude::*;
use loopscope::testing::{
    InjectedFault, Step, Tracked, Tracker, try_cancel_at_every_poll,
    try_cancel_stream_at_every_poll, yield_n,
};
use loopscope::{AsyncAcquire, Failures, ScopedError};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The most polls a step waits.
const MAX_YIELDS: usize = 4;

/// The concurrency limits drawn.
fn limits() -> impl Strategy<Value = usize> {
    1_usize..=5
}

// ---------------------------------------------------------------- the harness

/// The model of one item in the async adapters (a release by `Drop` makes no
/// call).
fn model_item(index: usize, script: ItemScript, release: Release) -> common::ItemModel {
    common::model_item(index, script, release, release_is_called(release, false))
}

/// The harness events of item `index`, in order.
fn events_of(events: &[Event], index: usize) -> Vec<Event> {
    events
        .iter()
        .copied()
        .filter(|event| {
            let (Event::Acquire(i) | Event::Body(i) | Event::Release(i)) = *event;
            i == index
        })
        .collect()
}

/// Where the last call of item `index`'s scope (per the model) is in `events`:
/// the moment its scope ended.
fn end_of(events: &[Event], scripts: &[ItemScript], index: usize, release: Release) -> usize {
    let last = *model_item(index, scripts[index], release)
        .events
        .last()
        .expect("every item calls acquire");
    events
        .iter()
        .position(|&event| event == last)
        .expect("the scope ended")
}

fn index_of(result: &Result<Used, Failure>) -> usize {
    match result {
        Ok(Used(index)) => *index,
        Err(failure) => failure.index(),
    }
}

// ---------------------------------------------------------------- the adapters

/// Which adapter a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adapter {
    ForEach,
    Ordered,
    Unordered,
}

fn adapters() -> impl Strategy<Value = Adapter> {
    prop_oneof![
        Just(Adapter::ForEach),
        Just(Adapter::Ordered),
        Just(Adapter::Unordered)
    ]
}

/// The error of the adapters with acquire `A` over items `I` and body error `U`.
type ErrorOf<A, I, U> =
    ScopedError<<A as AsyncAcquire<I>>::Error, U, <A as AsyncAcquire<I>>::ReleaseError>;

/// A stream of results, whichever adapter made it.
type DynResults<'a, T, E> = dyn Stream<Item = Result<T, E>> + 'a;

/// What a run to the end did.
#[derive(Debug)]
struct Ran<T, E> {
    /// `for_each_scoped_concurrent`'s result.
    returned: Option<Result<(), Failures<E>>>,
    /// The streams' items, in the order they were yielded.
    yielded: Vec<Result<T, E>>,
    /// The injected panic that came out of the adapter, if any (it was then dropped).
    panicked: Option<InjectedFault>,
}

/// Builds the adapter, calls `lazy` before its first poll, and runs it on
/// `block_on` to its end or to a panic (a stream: `next()` until `None`, calling
/// `on_yield` with each item); then drops it.
fn run_adapter<I, A, B, T, U>(
    items: impl Stream<Item = I>,
    adapter: Adapter,
    limit: usize,
    acquire: A,
    body: B,
    lazy: impl FnOnce() -> Result<(), TestCaseError>,
    mut on_yield: impl FnMut(&Result<T, ErrorOf<A, I, U>>) -> Result<(), TestCaseError>,
) -> Result<Ran<T, ErrorOf<A, I, U>>, TestCaseError>
where
    A: AsyncAcquire<I>,
    B: AsyncFnOnce(&mut A::Resource) -> Result<T, U> + Clone,
{
    let mut ran = Ran {
        returned: None,
        yielded: Vec::new(),
        panicked: None,
    };
    let mut drain = |stream: Pin<&mut DynResults<'_, T, ErrorOf<A, I, U>>>,
                     ran: &mut Ran<T, ErrorOf<A, I, U>>|
     -> Result<(), TestCaseError> {
        let mut stream = stream;
        loop {
            match catch(|| block_on(stream.next())) {
                Ok(Some(result)) => {
                    on_yield(&result)?;
                    ran.yielded.push(result);
                }
                Ok(None) => return Ok(()),
                Err(injected) => {
                    ran.panicked = Some(injected);
                    return Ok(());
                }
            }
        }
    };
    match adapter {
        Adapter::ForEach => {
            let future = items.for_each_scoped_concurrent(limit, acquire, body);
            lazy()?;
            match catch(|| block_on(future)) {
                Ok(result) => ran.returned = Some(result),
                Err(injected) => ran.panicked = Some(injected),
            }
        }
        Adapter::Ordered => {
            let stream = pin!(items.try_map_scoped_concurrent(limit, acquire, body));
            lazy()?;
            drain(stream, &mut ran)?;
        }
        Adapter::Unordered => {
            let stream = pin!(items.try_map_scoped_unordered(limit, acquire, body));
            lazy()?;
            drain(stream, &mut ran)?;
        }
    }
    Ok(ran)
}

/// Builds the adapter and polls it by hand at most `cap` times, then drops it.
fn poll_adapter<I, A, B, T, U>(
    items: impl Stream<Item = I>,
    adapter: Adapter,
    limit: usize,
    acquire: A,
    body: B,
    cap: usize,
) -> Polled
where
    A: AsyncAcquire<I>,
    B: AsyncFnOnce(&mut A::Resource) -> Result<T, U> + Clone,
{
    match adapter {
        Adapter::ForEach => {
            poll_future(items.for_each_scoped_concurrent(limit, acquire, body), cap)
        }
        Adapter::Ordered => poll_stream(items.try_map_scoped_concurrent(limit, acquire, body), cap),
        Adapter::Unordered => {
            poll_stream(items.try_map_scoped_unordered(limit, acquire, body), cap)
        }
    }
}

// ---------------------------------------------------------------- the checks

/// Invariant 4 before the first poll: nothing pulled, nothing acquired.
fn check_lazy(h: &Harness) -> Result<(), TestCaseError> {
    prop_assert_eq!(h.pulled(), 0, "invariant 4: pulled before the first poll");
    prop_assert!(
        h.started().is_empty() && h.events().is_empty(),
        "invariant 4: acquire called before the first poll"
    );
    prop_assert!(
        h.tracker().acquired().is_empty(),
        "invariant 4: acquired before the first poll"
    );
    Ok(())
}

/// Invariants 1 and 2 once the adapter is done (returned, panicked or dropped):
/// never more than `limit` live, nothing live now, every resource released
/// exactly once.
fn check_resources(tracker: &Tracker, limit: usize, when: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        tracker.peak() <= limit,
        "invariant 1 (peak) {}: {} live at once, limit {}",
        when,
        tracker.peak(),
        limit
    );
    prop_assert_eq!(tracker.live(), 0, "invariant 2: left live {}", when);
    tracker.check_released_exactly_once().map_err(|mismatch| {
        TestCaseError::fail(format!("invariant 2 (exactly once) {when}: {mismatch}"))
    })?;
    Ok(())
}

/// Invariant 5 for every item whose acquire was called: its scope ran to its end
/// — exactly the model's calls, the release awaited — and it was called once.
/// Returns the items started.
fn check_started_items_completed(
    h: &Harness,
    scripts: &[ItemScript],
    release: Release,
) -> Result<BTreeSet<usize>, TestCaseError> {
    let events = h.events();
    let started: Vec<usize> = h.started().iter().map(|&(index, _)| index).collect();
    let set: BTreeSet<usize> = started.iter().copied().collect();
    prop_assert_eq!(set.len(), started.len(), "an item's acquire started twice");
    for (index, &script) in scripts.iter().enumerate() {
        let expected = if set.contains(&index) {
            model_item(index, script, release).events
        } else {
            Vec::new()
        };
        prop_assert_eq!(
            events_of(&events, index),
            expected,
            "invariants 2 and 5: the calls of item {} (acquire, body, release completed)",
            index
        );
    }
    let acquired = set
        .iter()
        .filter(|&&index| scripts[index].acquire == Act::Ok)
        .count();
    prop_assert_eq!(h.tracker().acquired().len(), acquired, "resources acquired");
    Ok(set)
}

/// The model's result of every item, in input order.
fn expected_results(scripts: &[ItemScript], release: Release) -> Vec<Result<Used, Failure>> {
    (0..scripts.len())
        .map(|index| {
            model_item(index, scripts[index], release)
                .ending
                .expect("no panics scripted")
        })
        .collect()
}

// ---------------------------------------------------------------- for_each_scoped_concurrent

/// Runs `for_each_scoped_concurrent` to its end and checks invariants 1–5:
/// the first error is the scripted failure of the item whose failing step
/// (acquire, body, or release) ended first; every other failure of the items
/// in flight comes with it; every item started either ran to its end or — after
/// that failure — was cancelled (body dropped, release still awaited); every
/// release completed before the future returned; and no acquire started after
/// the failing step ended (not after its item's release: at once).
fn for_each_with(
    h: &Harness,
    scripts: &[ItemScript],
    release: Release,
    limit: usize,
    acquire: impl ScriptedAcquire,
) -> Result<(), TestCaseError> {
    let ran = run_adapter(
        stream::iter(h.items()),
        Adapter::ForEach,
        limit,
        acquire,
        h.async_body(),
        || check_lazy(h),
        |_| Ok(()),
    )?;
    let failures: Vec<Failure> = match ran.returned.expect("for_each returns") {
        Ok(()) => Vec::new(),
        Err(failures) => failures.into_iter().map(failure).collect(),
    };
    // Quiescence, at the moment the future returned: `block_on` returned with
    // it, and nothing has run since.
    let tracker = h.tracker();
    let (live, released) = (tracker.live(), tracker.released().len());
    prop_assert_eq!(live, 0, "invariant 5: live when the future returned");
    prop_assert_eq!(
        released,
        tracker.acquired().len(),
        "invariant 5: releases completed when the future returned"
    );
    if release == Release::Bracket {
        let completed = h
            .events()
            .iter()
            .filter(|event| matches!(event, Event::Release(_)))
            .count();
        prop_assert_eq!(
            completed,
            tracker.acquired().len(),
            "invariant 5: async releases completed (awaited) when the future returned"
        );
    }
    check_resources(&tracker, limit, "after the future returned")?;

    let events = h.events();
    let started: BTreeSet<usize> = h.started().iter().map(|&(index, _)| index).collect();
    let mut failed_at = Vec::new(); // (position of the failing step's end, item)
    let mut must_report = BTreeSet::new();
    for index in 0..scripts.len() {
        let seen = events_of(&events, index);
        let model = model_item(index, scripts[index], release);
        if !started.contains(&index) {
            prop_assert!(seen.is_empty(), "item {} ran without starting", index);
            continue;
        }
        if seen == model.events {
            if let Ok(Err(failed)) = model.ending {
                let step = match failed {
                    Failure::Acquire { .. } => Event::Acquire(index),
                    Failure::Use { .. } => Event::Body(index),
                    _ => Event::Release(index),
                };
                let at = events.iter().position(|&event| event == step).expect("ended");
                failed_at.push((at, index));
                must_report.insert(index);
            }
            continue;
        }
        // Cancelled: the acquire dropped (nothing), or the body dropped and the
        // resource released — by the release call (a bracket) or by `Drop`.
        prop_assert!(!failures.is_empty(), "item {} cancelled, yet nothing failed", index);
        let acquired = vec![Event::Acquire(index)];
        let released = vec![Event::Acquire(index), Event::Release(index)];
        let cancelled_shape = match release {
            Release::Bracket => seen.is_empty() || seen == released,
            Release::Drop => seen.is_empty() || seen == acquired,
        };
        prop_assert!(
            cancelled_shape,
            "item {} neither ran to its end ({:?}) nor was cancelled: {:?}",
            index,
            model.events,
            seen
        );
        if seen == released && scripts[index].release == Act::Err {
            must_report.insert(index);
        }
    }
    // Nothing lost: every failure of an item is reported, once.
    let reported: Vec<usize> = failures.iter().map(Failure::index).collect();
    let reported_set: BTreeSet<usize> = reported.iter().copied().collect();
    prop_assert_eq!(reported.len(), reported_set.len(), "a failure reported twice");
    prop_assert_eq!(&reported_set, &must_report, "invariant 3: the failures reported");
    for reported in &failures {
        let index = reported.index();
        let model = model_item(index, scripts[index], release);
        if events_of(&events, index) == model.events {
            prop_assert_eq!(Ok(Err(*reported)), model.ending, "item {}'s failure", index);
        } else {
            prop_assert!(
                matches!(reported, Failure::Cancelled { release: Some(fault), .. } if fault.index == index),
                "item {} was cancelled: {:?}",
                index,
                reported
            );
        }
    }
    match failed_at.iter().min() {
        None => {
            prop_assert!(failures.is_empty(), "no step failed, yet {:?}", failures);
            prop_assert_eq!(
                started.len(),
                scripts.len(),
                "no item failed, yet some were not run"
            );
        }
        Some(&(end, index)) => {
            prop_assert_eq!(
                failures.first().map(Failure::index),
                Some(index),
                "invariant 3: first, the failure of the item whose step failed first"
            );
            for (item, logged) in h.started() {
                prop_assert!(
                    logged <= end,
                    "invariant 4: item {}'s acquire started after item {}'s failing step ended",
                    item,
                    index
                );
            }
        }
    }
    Ok(())
}

fn check_for_each(
    scripts: &[ItemScript],
    yields: &[Yields],
    release: Release,
    limit: usize,
) -> Result<(), TestCaseError> {
    let h = Harness::with_yields(scripts, release, yields);
    with_acquire!(release, h, |acquire| for_each_with(
        &h, scripts, release, limit, acquire
    ))
}

// ---------------------------------------------------------------- the mapping streams

/// Drains `try_map_scoped_concurrent` or `try_map_scoped_unordered` and checks
/// invariants 1–5: one result per item, each the model's; in input order, or in
/// the order the items' scopes ended; each yielded only once its release
/// completed.
fn map_with(
    h: &Harness,
    scripts: &[ItemScript],
    release: Release,
    limit: usize,
    adapter: Adapter,
    acquire: impl ScriptedAcquire,
) -> Result<(), TestCaseError> {
    let ran = run_adapter(
        stream::iter(h.items()),
        adapter,
        limit,
        acquire,
        h.async_body(),
        || check_lazy(h),
        |result| {
            let index = match result {
                Ok(Used(index)) => *index,
                Err(error) => error.index(),
            };
            prop_assert_eq!(
                events_of(&h.events(), index),
                model_item(index, scripts[index], release).events,
                "invariant 5: item {}'s result yielded before its scope ended",
                index
            );
            Ok(())
        },
    )?;
    prop_assert!(ran.panicked.is_none());
    let yielded: Vec<Result<Used, Failure>> = ran
        .yielded
        .into_iter()
        .map(|result| result.map_err(failure))
        .collect();
    check_resources(&h.tracker(), limit, "after the stream ended")?;
    let started = check_started_items_completed(h, scripts, release)?;
    prop_assert_eq!(started.len(), scripts.len(), "every item is run");

    let expected = expected_results(scripts, release);
    match adapter {
        Adapter::Ordered => prop_assert_eq!(
            &yielded,
            &expected,
            "invariants 3 and 4: one result per item, the model's, in input order"
        ),
        Adapter::Unordered => {
            let mut sorted = yielded.clone();
            sorted.sort_by_key(index_of);
            prop_assert_eq!(
                &sorted,
                &expected,
                "invariant 3: one result per item, the model's"
            );
            let events = h.events();
            let mut by_end: Vec<usize> = (0..scripts.len()).collect();
            by_end.sort_by_key(|&index| end_of(&events, scripts, index, release));
            let order: Vec<usize> = yielded.iter().map(index_of).collect();
            prop_assert_eq!(order, by_end, "results in the order the scopes ended");
        }
        Adapter::ForEach => unreachable!(),
    }
    Ok(())
}

fn check_map(
    scripts: &[ItemScript],
    yields: &[Yields],
    release: Release,
    limit: usize,
    adapter: Adapter,
) -> Result<(), TestCaseError> {
    let h = Harness::with_yields(scripts, release, yields);
    with_acquire!(release, h, |acquire| map_with(
        &h, scripts, release, limit, adapter, acquire
    ))
}

// ---------------------------------------------------------------- panics

/// Any adapter with scripts that may panic in any step: the panic that comes out
/// is one the scripts inject; a body's panic resumes only after its release
/// completed; and every resource is released exactly once.
fn check_panics(
    scripts: &[ItemScript],
    yields: &[Yields],
    release: Release,
    limit: usize,
    adapter: Adapter,
) -> Result<(), TestCaseError> {
    let h = Harness::with_yields(scripts, release, yields);
    let items = stream::iter(h.items());
    let panicked = with_acquire!(release, h, |acquire| run_adapter(
        items,
        adapter,
        limit,
        acquire,
        h.async_body(),
        || Ok(()),
        |_| Ok(()),
    )?
    .panicked);
    check_resources(&h.tracker(), limit, "after a run with panics")?;
    // Invariant 5 for panics: the panic resumed only once every other item
    // was cancelled and every release awaited (a release that panics itself
    // ends without its event).
    let no_release_panics = scripts.iter().all(|script| script.release != Act::Panic);
    if panicked.is_some() && release == Release::Bracket && no_release_panics {
        let completed = h
            .events()
            .iter()
            .filter(|event| matches!(event, Event::Release(_)))
            .count();
        prop_assert_eq!(
            completed,
            h.tracker().acquired().len(),
            "invariant 5: a panic resumed before every release completed"
        );
    }
    if let Some(InjectedFault { index, step, .. }) = panicked {
        let script = scripts[index];
        let events = h.events();
        match step {
            Step::Acquire => prop_assert_eq!(script.acquire, Act::Panic),
            Step::Use => {
                prop_assert_eq!(script.body, Act::Panic);
                if release == Release::Bracket {
                    prop_assert!(
                        events.contains(&Event::Release(index)),
                        "invariant 2: item {}'s body panic resumed before its release completed",
                        index
                    );
                }
            }
            Step::Release => {
                prop_assert_eq!(script.release, Act::Panic);
                // A release's panic after its body's panic is discarded; a
                // body scripted to panic may not have got there, cancelled by
                // another item's failure.
                let other_failed = scripts.iter().enumerate().any(|(other, script)| {
                    other != index
                        && [script.acquire, script.body, script.release]
                            .iter()
                            .any(|act| *act != Act::Ok)
                });
                prop_assert!(
                    script.body != Act::Panic || other_failed,
                    "a release's panic after a body's panic is discarded"
                );
            }
            step => prop_assert!(false, "a panic at an unknown step {:?}", step),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- peak reached

/// A future that waits (waking itself) until `target` resources are live, then
/// opens for good. It gives up after many polls, so that an adapter that never
/// reaches the target fails the test rather than hanging it.
struct Gate<'a> {
    tracker: &'a Tracker,
    target: usize,
    opened: &'a Cell<bool>,
    polls: usize,
}

impl Future for Gate<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.tracker.live() >= self.target {
            self.opened.set(true);
        }
        if self.opened.get() || self.polls > 10_000 {
            Poll::Ready(())
        } else {
            self.polls += 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Invariant 1, the cap is reached: `n` items whose bodies all wait until
/// `min(limit, n)` resources are live (then they go on, after their own waits).
fn check_peak_reached(
    n: usize,
    limit: usize,
    yields: &[Yields],
    adapter: Adapter,
) -> Result<(), TestCaseError> {
    let tracker = Tracker::new();
    let opened = Cell::new(false);
    let target = limit.min(n);
    let acquire = async |index: usize| {
        yield_n(yields[index].acquire).await;
        Ok::<_, Infallible>((index, tracker.acquire()))
    };
    let body = async |resource: &mut (usize, Tracked)| {
        Gate {
            tracker: &tracker,
            target,
            opened: &opened,
            polls: 0,
        }
        .await;
        yield_n(yields[resource.0].body).await;
        Ok::<_, Infallible>(resource.0)
    };
    let ran = run_adapter(
        stream::iter(0..n),
        adapter,
        limit,
        acquire,
        body,
        || Ok(()),
        |_| Ok(()),
    )?;
    prop_assert!(ran.panicked.is_none());
    match adapter {
        Adapter::ForEach => prop_assert!(matches!(ran.returned, Some(Ok(())))),
        Adapter::Ordered | Adapter::Unordered => prop_assert_eq!(ran.yielded.len(), n),
    }
    prop_assert_eq!(
        tracker.peak(),
        target,
        "invariant 1: the peak is min(limit, n) = min({}, {})",
        limit,
        n
    );
    prop_assert_eq!(tracker.live(), 0);
    tracker
        .check_released_exactly_once()
        .map_err(|mismatch| TestCaseError::fail(mismatch.to_string()))?;
    Ok(())
}

/// Invariant 1, reached at once (the cap is not a slowdown): with acquires that
/// do not wait and bodies that never finish, a single poll makes `min(limit, n)`
/// resources live; dropping the adapter then releases them all.
fn check_cap_reached_at_the_first_poll(
    n: usize,
    limit: usize,
    adapter: Adapter,
) -> Result<(), TestCaseError> {
    let tracker = Tracker::new();
    let acquire = async |index: usize| Ok::<_, Infallible>((index, tracker.acquire()));
    let body = async |resource: &mut (usize, Tracked)| {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(resource.0)
    };
    let polled = poll_adapter(stream::iter(0..n), adapter, limit, acquire, body, 1);
    prop_assert_eq!(polled.finished, n == 0);
    if n > 0 {
        // Nothing is released before the drop: all acquired are live together.
        prop_assert_eq!(
            tracker.peak(),
            limit.min(n),
            "invariant 1: acquired in the first poll, limit {}, n {}",
            limit,
            n
        );
    }
    check_resources(&tracker, limit, "dropped after one poll")
}

// ---------------------------------------------------------------- cancellation

/// Invariant 6: dropped after any number of polls, from none to a full run, the
/// adapter leaves nothing live and released every resource it acquired exactly
/// once, never more than `limit` at once.
fn check_cancellation(
    scripts: &[ItemScript],
    yields: &[Yields],
    release: Release,
    limit: usize,
    adapter: Adapter,
) -> Result<(), TestCaseError> {
    let h = Harness::with_yields(scripts, release, yields);
    let check = |polls: usize| -> Result<(), TestCaseError> {
        check_resources(
            &h.tracker(),
            limit,
            &format!("after being dropped after {polls} polls"),
        )?;
        if polls == 0 {
            check_lazy(&h)?;
        }
        Ok(())
    };
    match release {
        Release::Bracket => {
            cancel_at_every_poll(&h, adapter, limit, || h.async_bracket_acquire(), check)?
        }
        Release::Drop => {
            cancel_at_every_poll(&h, adapter, limit, || h.async_drop_acquire(), check)?
        }
    };
    Ok(())
}

/// Drops the adapter after every possible number of polls (the kit's
/// `try_cancel_at_every_poll`), each run on a reset harness with a fresh
/// acquire, calling `check` after each drop; returns the number of polls a full
/// run takes.
fn cancel_at_every_poll<A: ScriptedAcquire>(
    h: &Harness,
    adapter: Adapter,
    limit: usize,
    acquire: impl Fn() -> A,
    check: impl FnMut(usize) -> Result<(), TestCaseError>,
) -> Result<usize, TestCaseError> {
    let items = || {
        h.reset();
        stream::iter(h.items())
    };
    match adapter {
        Adapter::ForEach => try_cancel_at_every_poll(
            || items().for_each_scoped_concurrent(limit, acquire(), h.async_body()),
            check,
        ),
        Adapter::Ordered => try_cancel_stream_at_every_poll(
            || items().try_map_scoped_concurrent(limit, acquire(), h.async_body()),
            check,
        ),
        Adapter::Unordered => try_cancel_stream_at_every_poll(
            || items().try_map_scoped_unordered(limit, acquire(), h.async_body()),
            check,
        ),
    }
}

/// What the `Send` harness of the `spawn_on_cancel` test logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Note {
    /// The acquire returned a resource.
    Acquired(usize),
    /// The release closure was called: the release future exists.
    ReleaseStarted(usize),
    /// The release future completed.
    ReleaseDone(usize),
}

/// A log that `Send + 'static` release futures can write to.
#[derive(Debug, Clone, Default)]
struct Notes(Arc<Mutex<Vec<Note>>>);

impl Notes {
    fn push(&self, note: Note) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(note);
    }

    fn get(&self) -> Vec<Note> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The resource of the `spawn_on_cancel` test: `Send + 'static`, as the spawned
/// release future that owns it must be.
#[derive(Debug)]
struct Held {
    index: usize,
    tracked: Tracked,
}

/// Invariant 6 with `async_bracket(..).release(..).spawn_on_cancel()` on a tokio
/// `current_thread` runtime: dropped after any number of polls, every resource a
/// body held at the drop has its async release run (as a task) once the runtime
/// gets to run; a release already running is dropped with the adapter and its
/// resource released by `Drop`. Every resource is released exactly once.
fn check_spawn_on_cancel(
    scripts: &[ItemScript],
    yields: &[Yields],
    limit: usize,
    adapter: Adapter,
) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let poll = |tracker: &Tracker, notes: &Notes, cap: usize| {
        let acquire = async_bracket(async |(index, script): (usize, ItemScript)| {
            yield_n(yields[index].acquire).await;
            match script.acquire {
                Act::Ok => {
                    notes.push(Note::Acquired(index));
                    Ok(Held {
                        index,
                        tracked: tracker.acquire(),
                    })
                }
                _ => Err(InjectedFault::new(Step::Acquire, index)),
            }
        })
        .release(|held: Held| {
            let index = held.index;
            notes.push(Note::ReleaseStarted(index));
            let (notes, wait, fails) = (
                notes.clone(),
                yields[index].release,
                scripts[index].release != Act::Ok,
            );
            async move {
                yield_n(wait).await;
                notes.push(Note::ReleaseDone(index));
                held.tracked.release();
                if fails {
                    Err(InjectedFault::new(Step::Release, index))
                } else {
                    Ok(())
                }
            }
        })
        .spawn_on_cancel();
        let body = async |held: &mut Held| {
            yield_n(yields[held.index].body).await;
            if scripts[held.index].body == Act::Ok {
                Ok(held.index)
            } else {
                Err(InjectedFault::new(Step::Use, held.index))
            }
        };
        poll_adapter(
            stream::iter(scripts.iter().copied().enumerate()),
            adapter,
            limit,
            acquire,
            body,
            cap,
        )
    };
    let full = runtime.block_on(async { poll(&Tracker::new(), &Notes::default(), usize::MAX) });
    prop_assert!(full.finished);
    for cap in 0..=full.polls {
        let (tracker, notes) = (Tracker::new(), Notes::default());
        let (polled, at_drop) = runtime.block_on(async {
            let polled = poll(&tracker, &notes, cap);
            let at_drop = notes.get();
            // Let the spawned releases run (each waits a few polls of its own).
            for _ in 0..4 * (MAX_YIELDS + 1) {
                tokio::task::yield_now().await;
            }
            (polled, at_drop)
        });
        prop_assert_eq!(polled.finished, cap == full.polls);
        let after = notes.get();
        for &note in &at_drop {
            if let Note::Acquired(index) = note {
                let held = !at_drop.contains(&Note::ReleaseStarted(index));
                if held {
                    prop_assert!(
                        after.contains(&Note::ReleaseDone(index)),
                        "invariant 6: item {}'s resource was held by its body when the adapter \
                         was dropped after {} polls, but its async release never ran",
                        index,
                        cap
                    );
                }
            }
        }
        check_resources(&tracker, limit, &format!("dropped after {cap} polls"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- the properties

fn releases() -> impl Strategy<Value = Release> {
    prop_oneof![Just(Release::Bracket), Just(Release::Drop)]
}

/// Scripts without panics for a release drawn at random.
fn release_and_scripts() -> impl Strategy<Value = (Release, Vec<ItemScript>)> {
    releases().prop_flat_map(|release| (Just(release), scripts_without_panics(release)))
}

proptest! {
    #![proptest_config(cases::config(256))]

    /// Invariants 1–5 for `for_each_scoped_concurrent`: peak ≤ limit; exactly
    /// once; the error is the scripted failure of the first failing item to
    /// complete; every item started ran to its end and nothing is live when the
    /// future returns; no acquire starts after the first failure.
    #[test]
    fn for_each_concurrent_fails_fast_and_quiesces(
        (release, scripts) in release_and_scripts(),
        yields in yields(MAX_YIELDS),
        limit in limits(),
    ) {
        check_for_each(&scripts, &yields, release, limit)?;
    }

    /// Invariants 1–5 for `try_map_scoped_concurrent`: one result per item, the
    /// model's, in input order, each yielded after its release completed.
    #[test]
    fn try_map_concurrent_yields_every_result_in_input_order(
        (release, scripts) in release_and_scripts(),
        yields in yields(MAX_YIELDS),
        limit in limits(),
    ) {
        check_map(&scripts, &yields, release, limit, Adapter::Ordered)?;
    }

    /// Invariants 1–5 for `try_map_scoped_unordered`: the same results as a
    /// multiset, in the order the items' scopes ended.
    #[test]
    fn try_map_unordered_yields_every_result_in_completion_order(
        (release, scripts) in release_and_scripts(),
        yields in yields(MAX_YIELDS),
        limit in limits(),
    ) {
        check_map(&scripts, &yields, release, limit, Adapter::Unordered)?;
    }

    /// Injected panics in acquire, body or release, for all three adapters: the
    /// panic resumes (a body's after its release completed), and every resource
    /// is released exactly once.
    #[test]
    fn panics_resume_and_release_everything(
        release in releases(),
        scripts in scripts(Release::Bracket),
        yields in yields(MAX_YIELDS),
        limit in limits(),
        adapter in adapters(),
    ) {
        check_panics(&scripts, &yields, release, limit, adapter)?;
    }

    /// Invariant 1, reached: with bodies that wait until `min(limit, n)` are live,
    /// the peak is exactly `min(limit, n)`, for all three adapters.
    #[test]
    fn the_cap_is_reached_when_work_allows(
        n in 0..=MAX_ITEMS,
        limit in limits(),
        yields in yields(MAX_YIELDS),
        adapter in adapters(),
    ) {
        check_peak_reached(n, limit, &yields, adapter)?;
    }

    /// Invariant 1, reached at once: one poll acquires `min(limit, n)` resources.
    #[test]
    fn the_cap_is_reached_in_the_first_poll(
        n in 0..=MAX_ITEMS,
        limit in limits(),
        adapter in adapters(),
    ) {
        check_cap_reached_at_the_first_poll(n, limit, adapter)?;
    }
}

// Each case of these two runs the adapter once per poll of a full run; the
// default 256 cases still take well under a second.
proptest! {
    #![proptest_config(cases::config(256))]

    /// Invariant 6 (release by `Drop` or an async bracket): each adapter dropped
    /// after every possible number of polls.
    #[test]
    fn cancelled_at_every_poll_releases_everything(
        (release, scripts) in release_and_scripts(),
        yields in yields(MAX_YIELDS),
        limit in limits(),
        adapter in adapters(),
    ) {
        check_cancellation(&scripts, &yields, release, limit, adapter)?;
    }

    /// Invariant 6 with `.spawn_on_cancel()` on a tokio runtime: the async release
    /// of every resource held by a body at the drop runs.
    #[test]
    fn cancelled_at_every_poll_spawns_the_async_releases(
        scripts in scripts_without_panics(Release::Bracket),
        yields in yields(MAX_YIELDS),
        limit in limits(),
        adapter in adapters(),
    ) {
        check_spawn_on_cancel(&scripts, &yields, limit, adapter)?;
    }
}

// ---------------------------------------------------------------- limit 0

/// Whether `f` panics with a message that mentions the limit.
fn panics_about_the_limit(f: impl FnOnce()) -> bool {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => false,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .is_some_and(|message| message.contains("limit")),
    }
}

fn noop_acquire() -> impl AsyncFnOnce(u8) -> Result<u8, ()> + Clone {
    async |item| Ok(item)
}

fn noop_body() -> impl AsyncFnOnce(&mut u8) -> Result<(), ()> + Clone {
    async |_| Ok(())
}

#[test]
fn a_limit_of_0_panics_for_for_each_scoped_concurrent() {
    assert!(panics_about_the_limit(|| {
        // Polled too, in case the check were made at the first poll.
        let _ = block_on(stream::iter([1_u8]).for_each_scoped_concurrent(
            0,
            noop_acquire(),
            noop_body(),
        ));
    }));
}

#[test]
fn a_limit_of_0_panics_for_try_map_scoped_concurrent() {
    assert!(panics_about_the_limit(|| {
        let mut results =
            pin!(stream::iter([1_u8]).try_map_scoped_concurrent(0, noop_acquire(), noop_body()));
        let _ = block_on(results.next());
    }));
}

#[test]
fn a_limit_of_0_panics_for_try_map_scoped_unordered() {
    assert!(panics_about_the_limit(|| {
        let mut results =
            pin!(stream::iter([1_u8]).try_map_scoped_unordered(0, noop_acquire(), noop_body()));
        let _ = block_on(results.next());
    }));
}
