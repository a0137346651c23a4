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
//!
//! Beyond `stream::iter`, which is never `Pending`, the same checks run over
//! inputs that are `Pending` between items (`common/inputs.rs`: one that wakes
//! itself, and a channel fed as the run goes on a strict executor that polls
//! only when woken, so a lost wake-up fails at once). The properties of the
//! second half script each item directly (`Probe`) and log, in one sequence,
//! every step, every item pulled from the input and what each release is
//! told, so that they can check what happened *after* a moment — nothing
//! pulled or acquired after the first failure, also from an endless input;
//! every release completed when a failure or a panic comes out — with stuck
//! items, slow releases, failing releases, panics with items in flight, a
//! consumer that polls on after a panic, and the spawned adapters (feature
//! `tokio`) on a `current_thread` and a two-worker runtime.
//!
//! Every case runs under a time limit (`inputs::within_time_limit`), so that a
//! hang fails it in seconds, with its name.

#[path = "common/cases.rs"]
mod cases;

mod common;

#[path = "common/inputs.rs"]
mod inputs;

#[path = "common/watchdog.rs"]
mod watchdog;

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
    Act, Event, Failure, Harness, ItemScript, MAX_ITEMS, Release, Used, catch, failure, scripts,
};
use futures::executor::block_on;
use futures::stream::{self, Stream, StreamExt as _};
use inputs::{Feeder, Stutter, drive_fed, fed, run_until_stalled, within_time_limit};
use loopscope::prelude::*;
use loopscope::testing::{
    InjectedFault, Step, Tracked, Tracker, try_cancel_at_every_poll,
    try_cancel_stream_at_every_poll, yield_n,
};
use loopscope::{AsyncAcquire, Failures, Outcome, ScopedError, SpawnAcquire, SpawnBody};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The most polls a step waits.
const MAX_YIELDS: usize = 4;

/// The concurrency limits drawn.
fn limits() -> impl Strategy<Value = usize> {
    1_usize..=5
}

/// Proptest's configuration for `default` cases (see `cases::config`), with
/// shrinking capped in time: a case that hangs fails after
/// `inputs::time_limit()`, and each shrink step that hangs too would cost as
/// much again.
fn config(default: u32) -> proptest::test_runner::Config {
    let max_shrink_time = u32::try_from(inputs::time_limit().as_millis() * 3).unwrap_or(u32::MAX);
    proptest::test_runner::Config {
        max_shrink_time,
        ..cases::config(default)
    }
}

// ---------------------------------------------------------------- the inputs

/// The input an adapter is given: the items `0..n`, each counted as pulled
/// when the adapter takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    /// `stream::iter`: never `Pending`.
    Iter,
    /// `Pending` `gaps[i]` times before item `i` (and `gaps[n]` times before
    /// its end), waking itself each time: `inputs::Stutter`.
    Stutter(Vec<usize>),
    /// A channel fed as the run goes, item `i` after `gaps[i]` turns of a strict
    /// executor (at once when the adapter is idle): `inputs::fed`.
    Fed(Vec<usize>),
}

/// The pending inputs: `Stutter` or `Fed`, with 0 to 3 `Pending`s (or turns)
/// before each of the [`MAX_ITEMS`] possible items and before the end.
fn pending_inputs() -> impl Strategy<Value = Input> {
    let gaps = || proptest::collection::vec(0_usize..=3, MAX_ITEMS + 1);
    prop_oneof![gaps().prop_map(Input::Stutter), gaps().prop_map(Input::Fed),]
}

/// Evaluates `$run` with `$items` bound to the input `$input` over the items of
/// the harness `$h` (`$n` of them), and `$feeder` to the `Option<&mut Feeder>`
/// that `run_adapter` takes. A macro because the three inputs have different
/// types.
macro_rules! on_input {
    ($input:expr, $h:expr, $n:expr, |$items:ident, $feeder:ident| $run:expr) => {
        match $input {
            Input::Iter => {
                let $items = stream::iter($h.items());
                let $feeder: Option<&mut Feeder> = None;
                $run
            }
            Input::Stutter(gaps) => {
                let $items = Stutter::new($h.items(), gaps.clone());
                let $feeder: Option<&mut Feeder> = None;
                $run
            }
            Input::Fed(gaps) => {
                let (mut feeder, receiver) = fed($n, gaps.clone());
                let mut pulled = $h.items();
                let $items = receiver.map(move |()| {
                    pulled
                        .next()
                        .expect("the feeder sends no more items than the input has")
                });
                let $feeder = Some(&mut feeder);
                $run
            }
        }
    };
}

// ---------------------------------------------------------------- the harness

/// The model of one item in the async adapters (a release by `Drop` makes no
/// call).
/// The concurrent adapters call the release of every acquire, one that only
/// drops included: `RELEASE_IS_DROP` changes the path of the sequential ones
/// alone (a `Drop` path buys the concurrent ones nothing: BENCHMARKS.md).
fn model_item(index: usize, script: ItemScript, release: Release) -> common::ItemModel {
    common::model_item(index, script, release, true)
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

/// Builds the adapter, calls `lazy` before its first poll, and runs it to its
/// end or to a panic (a stream: `next()` until `None`, calling `on_yield` with
/// each item); then drops it. Without a `feeder` it runs on `block_on`; with
/// one (its input is the feeder's channel) on the strict executor of
/// `inputs::drive_fed`, which fails the case when the adapter stalls.
#[allow(clippy::too_many_arguments)]
fn run_adapter<I, A, B, T, U>(
    items: impl Stream<Item = I>,
    feeder: Option<&mut Feeder>,
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
                     feeder: Option<&mut Feeder>,
                     ran: &mut Ran<T, ErrorOf<A, I, U>>|
     -> Result<(), TestCaseError> {
        let mut stream = stream;
        let Some(feeder) = feeder else {
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
        let yielded = &mut ran.yielded;
        let drained = catch(|| {
            drive_fed(feeder, |cx| {
                loop {
                    match stream.as_mut().poll_next(cx) {
                        Poll::Ready(Some(result)) => {
                            if let Err(failed) = on_yield(&result) {
                                return Poll::Ready(Err(failed));
                            }
                            yielded.push(result);
                        }
                        Poll::Ready(None) => return Poll::Ready(Ok(())),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            })
        });
        match drained {
            Ok(Ok(checked)) => checked,
            Ok(Err(stalled)) => Err(TestCaseError::fail(stalled)),
            Err(injected) => {
                ran.panicked = Some(injected);
                Ok(())
            }
        }
    };
    match adapter {
        Adapter::ForEach => {
            let future = items.for_each_scoped_concurrent(limit, acquire, body);
            lazy()?;
            let returned = match feeder {
                None => catch(|| block_on(future)),
                Some(feeder) => {
                    let mut future = pin!(future);
                    match catch(|| drive_fed(feeder, |cx| future.as_mut().poll(cx))) {
                        Ok(Err(stalled)) => return Err(TestCaseError::fail(stalled)),
                        Ok(Ok(returned)) => Ok(returned),
                        Err(injected) => Err(injected),
                    }
                }
            };
            match returned {
                Ok(result) => ran.returned = Some(result),
                Err(injected) => ran.panicked = Some(injected),
            }
        }
        Adapter::Ordered => {
            let stream = pin!(items.try_map_scoped_concurrent(limit, acquire, body));
            lazy()?;
            drain(stream, feeder, &mut ran)?;
        }
        Adapter::Unordered => {
            let stream = pin!(items.try_map_scoped_unordered(limit, acquire, body));
            lazy()?;
            drain(stream, feeder, &mut ran)?;
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
    input: &Input,
    acquire: impl ScriptedAcquire,
) -> Result<(), TestCaseError> {
    let ran = on_input!(input, h, scripts.len(), |items, feeder| run_adapter(
        items,
        feeder,
        Adapter::ForEach,
        limit,
        acquire,
        h.async_body(),
        || check_lazy(h),
        |_| Ok(()),
    ))?;
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
    for (index, &script) in scripts.iter().enumerate() {
        let seen = events_of(&events, index);
        let model = model_item(index, script, release);
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
                let at = events
                    .iter()
                    .position(|&event| event == step)
                    .expect("ended");
                failed_at.push((at, index));
                must_report.insert(index);
            }
            continue;
        }
        // Cancelled: the acquire dropped (nothing), or the body dropped and the
        // resource released — by the release call (a bracket) or by `Drop`.
        prop_assert!(
            !failures.is_empty(),
            "item {} cancelled, yet nothing failed: {:?} against {:?}",
            index,
            seen,
            model.events
        );
        let acquired = vec![Event::Acquire(index)];
        let released = vec![Event::Acquire(index), Event::Release(index)];
        let cancelled_shape = match release {
            Release::Bracket => seen.is_empty() || seen == released,
            // Released through the (dropping) release, or dropped with the
            // scope when the whole adapter was.
            Release::Drop => seen.is_empty() || seen == acquired || seen == released,
        };
        prop_assert!(
            cancelled_shape,
            "item {} neither ran to its end ({:?}) nor was cancelled: {:?}",
            index,
            model.events,
            seen
        );
        if seen == released && script.release == Act::Err {
            must_report.insert(index);
        }
    }
    // Nothing lost: every failure of an item is reported, once.
    let reported: Vec<usize> = failures.iter().map(Failure::index).collect();
    let reported_set: BTreeSet<usize> = reported.iter().copied().collect();
    prop_assert_eq!(
        reported.len(),
        reported_set.len(),
        "a failure reported twice"
    );
    prop_assert_eq!(
        &reported_set,
        &must_report,
        "invariant 3: the failures reported"
    );
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
    input: &Input,
) -> Result<(), TestCaseError> {
    let h = Harness::with_yields(scripts, release, yields);
    with_acquire!(release, h, |acquire| for_each_with(
        &h, scripts, release, limit, input, acquire
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
    input: &Input,
    acquire: impl ScriptedAcquire,
) -> Result<(), TestCaseError> {
    let ran = on_input!(input, h, scripts.len(), |items, feeder| run_adapter(
        items,
        feeder,
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
    ))?;
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
    input: &Input,
) -> Result<(), TestCaseError> {
    let h = Harness::with_yields(scripts, release, yields);
    with_acquire!(release, h, |acquire| map_with(
        &h, scripts, release, limit, adapter, input, acquire
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
        None,
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
        None,
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
                // Held by its body, or already in its release (cut off at one
                // of the release's own polls): either way the release is
                // handed to the runtime and completes.
                let running = at_drop.contains(&Note::ReleaseStarted(index));
                prop_assert!(
                    after.contains(&Note::ReleaseDone(index)),
                    "invariant 6: item {}'s resource was {} when the adapter was dropped \
                     after {} polls, but its async release never completed",
                    index,
                    if running {
                        "being released"
                    } else {
                        "held by its body"
                    },
                    cap
                );
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
    #![proptest_config(config(256))]

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
        within_time_limit("for_each_concurrent_fails_fast_and_quiesces", move || {
            check_for_each(&scripts, &yields, release, limit, &Input::Iter)
        })?;
    }

    /// Invariants 1–5 for `try_map_scoped_concurrent`: one result per item, the
    /// model's, in input order, each yielded after its release completed.
    #[test]
    fn try_map_concurrent_yields_every_result_in_input_order(
        (release, scripts) in release_and_scripts(),
        yields in yields(MAX_YIELDS),
        limit in limits(),
    ) {
        within_time_limit("try_map_concurrent_yields_every_result_in_input_order", move || {
            check_map(&scripts, &yields, release, limit, Adapter::Ordered, &Input::Iter)
        })?;
    }

    /// Invariants 1–5 for `try_map_scoped_unordered`: the same results as a
    /// multiset, in the order the items' scopes ended.
    #[test]
    fn try_map_unordered_yields_every_result_in_completion_order(
        (release, scripts) in release_and_scripts(),
        yields in yields(MAX_YIELDS),
        limit in limits(),
    ) {
        within_time_limit("try_map_unordered_yields_every_result_in_completion_order", move || {
            check_map(&scripts, &yields, release, limit, Adapter::Unordered, &Input::Iter)
        })?;
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
        within_time_limit("panics_resume_and_release_everything", move || {
            check_panics(&scripts, &yields, release, limit, adapter)
        })?;
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
        within_time_limit("the_cap_is_reached_when_work_allows", move || {
            check_peak_reached(n, limit, &yields, adapter)
        })?;
    }

    /// Invariant 1, reached at once: one poll acquires `min(limit, n)` resources.
    #[test]
    fn the_cap_is_reached_in_the_first_poll(
        n in 0..=MAX_ITEMS,
        limit in limits(),
        adapter in adapters(),
    ) {
        within_time_limit("the_cap_is_reached_in_the_first_poll", move || {
            check_cap_reached_at_the_first_poll(n, limit, adapter)
        })?;
    }
}

// Each case of these two runs the adapter once per poll of a full run; the
// default 256 cases still take well under a second.
proptest! {
    #![proptest_config(config(256))]

    /// Invariant 6 (release by `Drop` or an async bracket): each adapter dropped
    /// after every possible number of polls.
    #[test]
    fn cancelled_at_every_poll_releases_everything(
        (release, scripts) in release_and_scripts(),
        yields in yields(MAX_YIELDS),
        limit in limits(),
        adapter in adapters(),
    ) {
        within_time_limit("cancelled_at_every_poll_releases_everything", move || {
            check_cancellation(&scripts, &yields, release, limit, adapter)
        })?;
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
        within_time_limit("cancelled_at_every_poll_spawns_the_async_releases", move || {
            check_spawn_on_cancel(&scripts, &yields, limit, adapter)
        })?;
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
    within_time_limit("a_limit_of_0_panics_for_for_each_scoped_concurrent", || {
        assert!(panics_about_the_limit(|| {
            // Polled too, in case the check were made at the first poll.
            let _ = block_on(stream::iter([1_u8]).for_each_scoped_concurrent(
                0,
                noop_acquire(),
                noop_body(),
            ));
        }));
    });
}

#[test]
fn a_limit_of_0_panics_for_try_map_scoped_concurrent() {
    within_time_limit("a_limit_of_0_panics_for_try_map_scoped_concurrent", || {
        assert!(panics_about_the_limit(|| {
            let mut results = pin!(stream::iter([1_u8]).try_map_scoped_concurrent(
                0,
                noop_acquire(),
                noop_body()
            ));
            let _ = block_on(results.next());
        }));
    });
}

#[test]
fn a_limit_of_0_panics_for_try_map_scoped_unordered() {
    within_time_limit("a_limit_of_0_panics_for_try_map_scoped_unordered", || {
        assert!(panics_about_the_limit(|| {
            let mut results =
                pin!(stream::iter([1_u8]).try_map_scoped_unordered(0, noop_acquire(), noop_body()));
            let _ = block_on(results.next());
        }));
    });
}

// ---------------------------------------------------------------- pending inputs

/// Scripts as `release_and_scripts`, or (one case in two) scripts where nothing
/// fails, so that a fail-fast run goes through the whole input.
fn release_and_scripts_often_ok() -> impl Strategy<Value = (Release, Vec<ItemScript>)> {
    let ok = ItemScript {
        acquire: Act::Ok,
        body: Act::Ok,
        release: Act::Ok,
    };
    prop_oneof![
        release_and_scripts(),
        (releases(), 0..=MAX_ITEMS).prop_map(move |(release, n)| (release, vec![ok; n])),
    ]
}

// An input that is `Pending` between items — as a socket or a channel is —
// with nothing in flight at times: the engine must wait for it (its waker is
// the input's), not end, and lose no wake-up. `stream::iter` is never
// `Pending`, so the properties above cannot see this.
proptest! {
    #![proptest_config(config(256))]

    /// Invariants 1–5 for `for_each_scoped_concurrent` over a pending input
    /// (stuttering, or a channel fed as the run goes): every item runs unless
    /// one fails; the same checks as over `stream::iter`.
    #[test]
    fn for_each_concurrent_waits_for_a_pending_input(
        (release, scripts) in release_and_scripts_often_ok(),
        yields in yields(MAX_YIELDS),
        limit in limits(),
        input in pending_inputs(),
    ) {
        within_time_limit("for_each_concurrent_waits_for_a_pending_input", move || {
            check_for_each(&scripts, &yields, release, limit, &input)
        })?;
    }

    /// Invariants 1–5 for `try_map_scoped_concurrent` over a pending input:
    /// one result per item, the model's, in input order.
    #[test]
    fn try_map_concurrent_waits_for_a_pending_input(
        (release, scripts) in release_and_scripts_often_ok(),
        yields in yields(MAX_YIELDS),
        limit in limits(),
        input in pending_inputs(),
    ) {
        within_time_limit("try_map_concurrent_waits_for_a_pending_input", move || {
            check_map(&scripts, &yields, release, limit, Adapter::Ordered, &input)
        })?;
    }

    /// Invariants 1–5 for `try_map_scoped_unordered` over a pending input:
    /// one result per item, the model's, in the order the scopes ended.
    #[test]
    fn try_map_unordered_waits_for_a_pending_input(
        (release, scripts) in release_and_scripts_often_ok(),
        yields in yields(MAX_YIELDS),
        limit in limits(),
        input in pending_inputs(),
    ) {
        within_time_limit("try_map_unordered_waits_for_a_pending_input", move || {
            check_map(&scripts, &yields, release, limit, Adapter::Unordered, &input)
        })?;
    }
}

// ---------------------------------------------------------------- the probe

// The properties below script each item directly — what each step does, and
// how many polls it waits first — and log every step, every item the adapter
// pulls from its input, and what each async release is told, in one log. So a
// check can ask what happened *after* a given moment: an item pulled or an
// acquire started after the first failure, a release not yet completed when
// the adapter returned. The probe is `Send + Sync` and its closures own what
// they capture, so the spawned adapters run it too.

/// What one step of an item does in the probe's properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Does {
    Ok,
    Err,
    /// Panics with an `InjectedFault` payload.
    Panic,
    /// Never ends: `Pending` forever, never woken — a stuck peer. (A release
    /// never hangs: one already running is never cut off, so it would hang
    /// the adapter by design.)
    Hang,
}

/// What an item does: each step, after waiting its polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    acquire: Does,
    body: Does,
    /// Ignored for a release by `Drop`.
    release: Does,
    waits: Yields,
}

impl Plan {
    /// Every step succeeds at once.
    const OK: Plan = Plan {
        acquire: Does::Ok,
        body: Does::Ok,
        release: Does::Ok,
        waits: Yields {
            acquire: 0,
            body: 0,
            release: 0,
        },
    };

    /// Every step succeeds, after these waits.
    fn ok_after(waits: Yields) -> Plan {
        Plan { waits, ..Plan::OK }
    }
}

/// An entry of the probe's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    /// The adapter took item `i` from its input.
    Pulled(usize),
    /// A step of item `i` began (at its first poll).
    Start(Step, usize),
    /// A step of item `i` ended: `true` when it succeeded. (A step that
    /// panics logs its end, `false`, just before.)
    End(Step, usize, bool),
    /// Item `i`'s async release was told how the item ended.
    Told(usize, Outcome),
}

/// How many items of an endless input the adapter may pull before the input
/// gives up with a panic: far more than any property allows, far fewer than
/// would make a run that never stops slow to fail.
const ENDLESS_CAP: usize = 5_000;

/// How many finished results may wait for their turn per slot of the limit in
/// the input-order adapters ("at most 32 × `limit` finished results wait", in
/// the rustdoc of `try_map_scoped_concurrent`): bounds what an input-order
/// stream pulls beyond its first `Err`.
const WAITING_PER_SLOT: usize = 32;

/// An item's resource: its position, and a tracked resource.
#[derive(Debug)]
struct Res {
    index: usize,
    tracked: Tracked,
}

/// The items' plans, a tracker for their resources, and the log.
#[derive(Clone)]
struct Probe {
    plans: Arc<dyn Fn(usize) -> Plan + Send + Sync>,
    log: Arc<Mutex<Vec<Ev>>>,
    tracker: Tracker,
}

/// The adapters' error with the probe's acquire and body, whose release error
/// is `R` (`InjectedFault` for an async bracket, `Infallible` for `Drop`).
type ProbeError<R> = ScopedError<InjectedFault, InjectedFault, R>;

impl Probe {
    fn new(plans: impl Fn(usize) -> Plan + Send + Sync + 'static) -> Self {
        Self {
            plans: Arc::new(plans),
            log: Arc::default(),
            tracker: Tracker::new(),
        }
    }

    /// A probe whose item `i` follows `plans[i]` (and `Plan::OK` beyond).
    fn of(plans: Vec<Plan>) -> Self {
        Self::new(move |index| plans.get(index).copied().unwrap_or(Plan::OK))
    }

    fn plan(&self, index: usize) -> Plan {
        (self.plans)(index)
    }

    fn record(&self, event: Ev) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }

    fn log(&self) -> Log {
        Log(self
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    fn pull(&self, index: usize) -> usize {
        self.record(Ev::Pulled(index));
        index
    }

    /// The items `0..n`, logged as pulled when the adapter takes them.
    fn items(&self, n: usize) -> impl Iterator<Item = usize> + Send + Unpin + use<> {
        let probe = self.clone();
        (0..n).map(move |index| probe.pull(index))
    }

    /// The items `0, 1, 2, …` without end (up to [`ENDLESS_CAP`], where it
    /// panics: the adapter did not stop pulling), logged as pulled.
    fn endless(&self) -> impl Stream<Item = usize> + Send + use<> {
        let probe = self.clone();
        stream::iter(0..).map(move |index| {
            assert!(
                index < ENDLESS_CAP,
                "the adapter pulled {ENDLESS_CAP} items of an endless input: it does not \
                 stop pulling after a failure"
            );
            probe.pull(index)
        })
    }

    /// Runs one step of item `index`: logs its start, waits, and does `does`.
    async fn step(
        &self,
        step: Step,
        index: usize,
        does: Does,
        waits: usize,
    ) -> Result<(), InjectedFault> {
        self.record(Ev::Start(step, index));
        yield_n(waits).await;
        let fault = InjectedFault::new(step, index);
        match does {
            Does::Ok => {
                self.record(Ev::End(step, index, true));
                Ok(())
            }
            Does::Err => {
                self.record(Ev::End(step, index, false));
                Err(fault)
            }
            Does::Panic => {
                self.record(Ev::End(step, index, false));
                panic::panic_any(fault)
            }
            Does::Hang => std::future::pending().await,
        }
    }

    async fn acquire(&self, index: usize) -> Result<Res, InjectedFault> {
        let plan = self.plan(index);
        self.step(Step::Acquire, index, plan.acquire, plan.waits.acquire)
            .await?;
        Ok(Res {
            index,
            tracked: self.tracker.acquire(),
        })
    }

    async fn work(&self, resource: &mut Res) -> Result<usize, InjectedFault> {
        let index = resource.index;
        let plan = self.plan(index);
        self.step(Step::Use, index, plan.body, plan.waits.body)
            .await?;
        Ok(index)
    }

    /// An async release: logs what it is told and its start, waits, releases
    /// the resource, logs its end, and then fails or panics as planned.
    async fn release(&self, resource: Res, outcome: Outcome) -> Result<(), InjectedFault> {
        let index = resource.index;
        let plan = self.plan(index);
        self.record(Ev::Told(index, outcome));
        self.record(Ev::Start(Step::Release, index));
        yield_n(plan.waits.release).await;
        resource.tracked.release();
        let fault = InjectedFault::new(Step::Release, index);
        match plan.release {
            Does::Ok | Does::Hang => {
                self.record(Ev::End(Step::Release, index, true));
                Ok(())
            }
            Does::Err => {
                self.record(Ev::End(Step::Release, index, false));
                Err(fault)
            }
            Does::Panic => {
                self.record(Ev::End(Step::Release, index, false));
                panic::panic_any(fault)
            }
        }
    }

    /// A plain async acquire closure: the resource is released by `Drop`.
    fn drop_acquire(
        &self,
    ) -> impl SpawnAcquire<usize, Resource = Res, Error = InjectedFault, ReleaseError = Infallible> + use<>
    {
        let probe = self.clone();
        async move |index: usize| probe.acquire(index).await
    }

    /// `async_bracket(acquire).release_with(release)`.
    fn bracket_acquire(
        &self,
    ) -> impl SpawnAcquire<
        usize,
        Resource = Res,
        Error = InjectedFault,
        ReleaseError = InjectedFault,
    > + use<> {
        let (probe, releasing) = (self.clone(), self.clone());
        async_bracket(async move |index: usize| probe.acquire(index).await).release_with(
            move |resource: Res, outcome: Outcome| {
                let probe = releasing.clone();
                async move { probe.release(resource, outcome).await }
            },
        )
    }

    fn body(
        &self,
    ) -> impl AsyncFnOnce(&mut Res) -> Result<usize, InjectedFault>
    + for<'r> SpawnBody<'r, Res, usize, InjectedFault>
    + Clone
    + Send
    + Sync
    + use<> {
        let probe = self.clone();
        async move |resource: &mut Res| probe.work(resource).await
    }
}

/// Evaluates `$run` with `$acquire` bound to `$probe`'s async bracket or its
/// plain acquire (release by `Drop`), as the [`Release`] `$release` says.
macro_rules! with_probe {
    ($release:expr, $probe:expr, |$acquire:ident| $run:expr) => {
        match $release {
            Release::Bracket => {
                let $acquire = $probe.bracket_acquire();
                $run
            }
            Release::Drop => {
                let $acquire = $probe.drop_acquire();
                $run
            }
        }
    };
}

/// A failure an adapter reported, or must report, unwrapped to what the
/// checks compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Reported {
    index: usize,
    kind: Kind,
    /// The error carries a failed release: `Release`, or `Use` / `Cancelled`
    /// with their `release`.
    release_failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Acquire,
    Use,
    Release,
    Cancelled,
}

/// The fault inside a release error.
trait ReleaseFault: std::fmt::Debug {
    fn fault(&self) -> InjectedFault;
}

impl ReleaseFault for InjectedFault {
    fn fault(&self) -> InjectedFault {
        *self
    }
}

impl ReleaseFault for Infallible {
    fn fault(&self) -> InjectedFault {
        match *self {}
    }
}

/// Unwraps an adapter's error, checking that each fault in it is its item's
/// own, at the right step.
fn reported<R: ReleaseFault>(error: &ProbeError<R>) -> Result<Reported, TestCaseError> {
    let own = |fault: InjectedFault, step: Step, index: usize| {
        prop_assert_eq!(
            fault,
            InjectedFault::new(step, index),
            "invariant 3: the error of item {} carries another fault: {:?}",
            index,
            error
        );
        Ok(())
    };
    let release_of = |release: &Option<R>, index: usize| match release {
        Some(release) => own(release.fault(), Step::Release, index).map(|()| true),
        None => Ok(false),
    };
    let (index, kind, release_failed) = match error {
        ScopedError::Acquire { index, source } => {
            own(*source, Step::Acquire, *index)?;
            (*index, Kind::Acquire, false)
        }
        ScopedError::Use {
            index,
            source,
            release,
        } => {
            own(*source, Step::Use, *index)?;
            (*index, Kind::Use, release_of(release, *index)?)
        }
        ScopedError::Release { index, source } => {
            own(source.fault(), Step::Release, *index)?;
            (*index, Kind::Release, true)
        }
        ScopedError::Cancelled { index, release } => {
            (*index, Kind::Cancelled, release_of(release, *index)?)
        }
        other => {
            return Err(TestCaseError::fail(format!(
                "a ScopedError variant these tests do not know: {other:?}"
            )));
        }
    };
    Ok(Reported {
        index,
        kind,
        release_failed,
    })
}

/// A copy of the probe's log, and what it says.
#[derive(Debug)]
struct Log(Vec<Ev>);

impl Log {
    /// How step `step` of item `index` ended: `Some(true)` if it succeeded,
    /// `None` if it did not end.
    fn ended(&self, step: Step, index: usize) -> Option<bool> {
        self.0.iter().find_map(|&event| match event {
            Ev::End(s, i, ok) if s == step && i == index => Some(ok),
            _ => None,
        })
    }

    /// The items whose acquire was called.
    fn started(&self) -> BTreeSet<usize> {
        self.0
            .iter()
            .filter_map(|&event| match event {
                Ev::Start(Step::Acquire, index) => Some(index),
                _ => None,
            })
            .collect()
    }

    /// The items that acquired a resource.
    fn acquired(&self) -> Vec<usize> {
        self.0
            .iter()
            .filter_map(|&event| match event {
                Ev::End(Step::Acquire, index, true) => Some(index),
                _ => None,
            })
            .collect()
    }

    fn pulled(&self) -> usize {
        self.count_after(None, |event| matches!(event, Ev::Pulled(_)))
    }

    /// How many entries after position `at` (all, for `None`) match.
    fn count_after(&self, at: Option<usize>, matches: impl Fn(Ev) -> bool) -> usize {
        let from = at.map_or(0, |at| at + 1);
        self.0[from.min(self.0.len())..]
            .iter()
            .filter(|&&event| matches(event))
            .count()
    }

    /// The position of the last entry of item `index`'s scope: the moment it
    /// ended (for a release by `Drop`, the drop follows in the same poll).
    fn scope_end(&self, index: usize) -> Option<usize> {
        self.0.iter().rposition(|&event| match event {
            Ev::Start(_, i) | Ev::End(_, i, _) | Ev::Told(i, _) => i == index,
            Ev::Pulled(_) => false,
        })
    }

    /// Where item `index`'s scope ended, unless it was cut off in a step
    /// (its last event a `Start`: cancelled there, at a moment not logged).
    fn scope_end_unless_cut(&self, index: usize) -> Option<usize> {
        let end = self.scope_end(index)?;
        match self.0[end] {
            Ev::Start(..) => None,
            _ => Some(end),
        }
    }

    /// The position of the first failing acquire or body.
    fn first_failing_acquire_or_body(&self) -> Option<usize> {
        self.0
            .iter()
            .position(|event| matches!(event, Ev::End(Step::Acquire | Step::Use, _, false)))
    }

    /// The position of the first failing step (acquire, body or release).
    fn first_failing_step(&self) -> Option<usize> {
        self.0
            .iter()
            .position(|event| matches!(event, Ev::End(_, _, false)))
    }

    /// The failures the adapter must report, from what each item did: a
    /// failed acquire; a failed body, with its release's failure if any; a
    /// failed release after a body `Ok`; and an item cancelled in its body
    /// whose release failed. A cancelled item whose release succeeded is no
    /// failure.
    fn expected_failures(&self) -> Vec<Reported> {
        let mut expected = Vec::new();
        for index in self.started() {
            let release_failed = self.ended(Step::Release, index) == Some(false);
            let kind = match (
                self.ended(Step::Acquire, index),
                self.ended(Step::Use, index),
            ) {
                (Some(false), _) => Some(Kind::Acquire),
                (Some(true), Some(false)) => Some(Kind::Use),
                (Some(true), Some(true)) => release_failed.then_some(Kind::Release),
                (Some(true), None) => release_failed.then_some(Kind::Cancelled),
                (None, _) => None,
            };
            if let Some(kind) = kind {
                expected.push(Reported {
                    index,
                    kind,
                    release_failed: release_failed && kind != Kind::Acquire,
                });
            }
        }
        expected
    }
}

/// Invariants 2 and 5 at the moment the adapter returned (or its panic came
/// out): nothing live, every resource released exactly once, never more than
/// `limit` live — and every async release *completed*: each called once, and
/// each ended.
fn check_quiescent(
    probe: &Probe,
    log: &Log,
    limit: usize,
    release: Release,
    when: &str,
) -> Result<(), TestCaseError> {
    check_resources(&probe.tracker, limit, when)?;
    if release == Release::Bracket {
        for index in log.acquired() {
            let calls = log.count_after(None, |event| event == Ev::Start(Step::Release, index));
            prop_assert_eq!(
                calls,
                1,
                "invariant 2: item {}'s release was called {} times ({})",
                index,
                calls,
                when
            );
            prop_assert!(
                log.ended(Step::Release, index).is_some(),
                "invariant 5: item {}'s async release had not completed {}",
                index,
                when
            );
        }
    }
    Ok(())
}

/// What each async release was told: `Completed` or `Failed` after its body
/// ended, `Panicked` after its body panicked, `Cancelled` when the body was
/// dropped (cancelled) before it ended.
fn check_told(probe: &Probe, log: &Log) -> Result<(), TestCaseError> {
    for &event in &log.0 {
        let Ev::Told(index, outcome) = event else {
            continue;
        };
        let expected = match log.ended(Step::Use, index) {
            Some(true) => Outcome::Completed,
            Some(false) if probe.plan(index).body == Does::Panic => Outcome::Panicked,
            Some(false) => Outcome::Failed,
            None => Outcome::Cancelled,
        };
        prop_assert_eq!(
            outcome,
            expected,
            "invariant 5: item {}'s release was told {:?}",
            index,
            outcome
        );
    }
    Ok(())
}

/// The fail-fast runs: `for_each_scoped_concurrent`, and `try_collect_all` on
/// each mapping stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailFast {
    ForEach,
    CollectOrdered,
    CollectUnordered,
}

fn fail_fasts() -> impl Strategy<Value = FailFast> {
    prop_oneof![
        Just(FailFast::ForEach),
        Just(FailFast::CollectOrdered),
        Just(FailFast::CollectUnordered),
    ]
}

/// Runs a fail-fast adapter on `block_on` to its end: the values collected
/// (none for `for_each`), or its failures.
fn run_fail_fast<A, B>(
    input: impl Stream<Item = usize>,
    which: FailFast,
    limit: usize,
    acquire: A,
    body: B,
) -> Result<Vec<usize>, Failures<ProbeError<A::ReleaseError>>>
where
    A: AsyncAcquire<usize, Resource = Res, Error = InjectedFault>,
    B: AsyncFnOnce(&mut Res) -> Result<usize, InjectedFault> + Clone,
{
    match which {
        FailFast::ForEach => {
            block_on(input.for_each_scoped_concurrent(limit, acquire, body)).map(|()| Vec::new())
        }
        FailFast::CollectOrdered => block_on(
            input
                .try_map_scoped_concurrent(limit, acquire, body)
                .try_collect_all(),
        ),
        FailFast::CollectUnordered => block_on(
            input
                .try_map_scoped_unordered(limit, acquire, body)
                .try_collect_all(),
        ),
    }
}

/// Where a fail-fast run stopped.
#[derive(Debug, Clone, Copy)]
struct Stopped {
    /// The item whose failure is reported first.
    first: usize,
    /// The position in the log of the moment the adapter had to stop: for
    /// `for_each`, the end of the first failing step; for `try_collect_all`,
    /// the moment the stream yielded its first `Err`.
    at: usize,
}

/// Checks a fail-fast run right after it returned (`n`: the input's length,
/// `None` for an endless one): quiescence; what the releases were told; nothing
/// lost — the failures reported are exactly those the log shows, each once,
/// the right one first; and the stop — no acquire started, and nothing pulled,
/// after the moment the adapter had to stop (`try_map_scoped_concurrent` may
/// pull up to `limit` items it never starts: its `Err` waited for its turn).
/// Returns where it stopped, if it failed.
fn check_fail_fast<R: ReleaseFault>(
    probe: &Probe,
    which: FailFast,
    limit: usize,
    release: Release,
    n: Option<usize>,
    result: Result<Vec<usize>, Failures<ProbeError<R>>>,
) -> Result<Option<Stopped>, TestCaseError> {
    let log = probe.log();
    check_quiescent(probe, &log, limit, release, "when the adapter returned")?;
    check_told(probe, &log)?;
    let mut expected = log.expected_failures();
    let failures = match result {
        Ok(collected) => {
            prop_assert!(
                expected.is_empty(),
                "invariant 3: returned Ok, but these failed: {:?}",
                expected
            );
            let n = n.expect("an endless input never ends");
            prop_assert_eq!(log.pulled(), n, "returned Ok before pulling every item");
            prop_assert_eq!(
                log.acquired().len(),
                n,
                "returned Ok before acquiring every item"
            );
            let mut collected = collected;
            match which {
                FailFast::ForEach => {}
                FailFast::CollectOrdered => {
                    prop_assert_eq!(
                        collected,
                        (0..n).collect::<Vec<_>>(),
                        "collected in input order"
                    );
                }
                FailFast::CollectUnordered => {
                    collected.sort_unstable();
                    prop_assert_eq!(
                        collected,
                        (0..n).collect::<Vec<_>>(),
                        "collected every value"
                    );
                }
            }
            return Ok(None);
        }
        Err(failures) => failures,
    };
    let mut seen = failures
        .iter()
        .map(reported)
        .collect::<Result<Vec<_>, _>>()?;
    let first = seen[0];
    seen.sort_unstable();
    expected.sort_unstable();
    prop_assert_eq!(
        &seen,
        &expected,
        "invariant 3: the failures reported (each exactly once) are those that happened"
    );
    prop_assert_ne!(first.kind, Kind::Cancelled, "a cancellation reported first");

    // The failure that stopped the run, and the moment it had to stop.
    let failed = |reported: &&Reported| reported.kind != Kind::Cancelled;
    let scope_end = |index: usize| log.scope_end(index).expect("an item that failed started");
    let (expected_first, at) = match which {
        FailFast::ForEach => {
            let at = log.first_failing_step().expect("a failure was logged");
            let (Ev::End(_, index, _) | Ev::Start(_, index)) = log.0[at] else {
                unreachable!("a failing step is an `End`")
            };
            (index, at)
        }
        FailFast::CollectUnordered => {
            // Its `Err` is yielded the moment its scope ends.
            let index = expected
                .iter()
                .filter(failed)
                .min_by_key(|reported| scope_end(reported.index))
                .expect("a failure")
                .index;
            (index, scope_end(index))
        }
        FailFast::CollectOrdered => {
            // Its `Err` is yielded once it and every item before it ended.
            let index = expected.iter().find(failed).expect("a failure").index;
            let in_order = (0..=index)
                .map(|index| log.scope_end_unless_cut(index))
                .collect::<Option<Vec<_>>>();
            let at = match in_order {
                Some(ends) => ends.into_iter().max().expect("at least one item"),
                // An item before it was cut off in a step, so cancelled: by
                // a failing acquire or body, which stopped the run at once
                // (an `Err` yielded in order would need that item ended).
                None => log
                    .first_failing_acquire_or_body()
                    .expect("a failing step cancelled the item cut off"),
            };
            (index, at)
        }
    };
    prop_assert_eq!(
        first.index,
        expected_first,
        "invariant 3: first, the failure that stopped the run ({:?})",
        which
    );
    let acquires_after = log.count_after(Some(at), |event| {
        matches!(event, Ev::Start(Step::Acquire, _))
    });
    prop_assert_eq!(
        acquires_after,
        0,
        "invariant 4: {} acquire(s) started after the run had to stop ({:?}, item {}): {:?}",
        acquires_after,
        which,
        expected_first,
        log
    );
    let pulled_after = log.count_after(Some(at), |event| matches!(event, Ev::Pulled(_)));
    let may_pull = if which == FailFast::CollectOrdered {
        limit
    } else {
        0
    };
    prop_assert!(
        pulled_after <= may_pull,
        "invariant 4: {} item(s) pulled after the run had to stop ({:?}, item {}): {:?}",
        pulled_after,
        which,
        expected_first,
        log
    );
    Ok(Some(Stopped {
        first: expected_first,
        at,
    }))
}

// ---------------------------------------------------------------- the probe's strategies

/// `Ok` `ok_weight` times in `ok_weight + 1`, else `Err`.
fn does(ok_weight: u32) -> impl Strategy<Value = Does> {
    prop_oneof![
        ok_weight => Just(Does::Ok),
        1 => Just(Does::Err),
    ]
}

/// Waits of 0 to `max` polls for each step.
fn waits(max: usize) -> impl Strategy<Value = Yields> {
    (0..=max, 0..=max, 0..=max).prop_map(|(acquire, body, release)| Yields {
        acquire,
        body,
        release,
    })
}

/// Plans for 0 to [`MAX_ITEMS`] items, each step failing one time in
/// `weight + 1` (the weight drawn per case, from 1 to 12), after waits.
fn failing_plans() -> impl Strategy<Value = Vec<Plan>> {
    (1_u32..=12).prop_flat_map(|weight| {
        proptest::collection::vec(
            (does(weight), does(weight), does(weight), waits(MAX_YIELDS)).prop_map(
                |(acquire, body, release, waits)| Plan {
                    acquire,
                    body,
                    release,
                    waits,
                },
            ),
            0..=MAX_ITEMS,
        )
    })
}

/// Plans for 1 to [`MAX_ITEMS`] items whose releases fail one time in two
/// (bodies one in six, acquires one in nine), after waits.
fn plans_with_failing_releases() -> impl Strategy<Value = Vec<Plan>> {
    proptest::collection::vec(
        (does(8), does(5), does(1), waits(MAX_YIELDS)).prop_map(
            |(acquire, body, release, waits)| Plan {
                acquire,
                body,
                release,
                waits,
            },
        ),
        1..=MAX_ITEMS,
    )
}

/// The step at which the failing item of a run fails: a release can fail
/// only in an async bracket.
fn failing_steps(release: Release) -> BoxedStrategy<Step> {
    match release {
        Release::Bracket => {
            prop_oneof![Just(Step::Acquire), Just(Step::Use), Just(Step::Release)].boxed()
        }
        Release::Drop => prop_oneof![Just(Step::Acquire), Just(Step::Use)].boxed(),
    }
}

/// A release mode and a failing step that goes with it.
fn release_and_failing_step() -> impl Strategy<Value = (Release, Step)> {
    releases().prop_flat_map(|release| (Just(release), failing_steps(release)))
}

/// The plan of an item that fails at `step` (a release: after its body
/// succeeded), after `waits`.
fn failing_at(step: Step, waits: Yields) -> Plan {
    let plan = Plan::ok_after(waits);
    match step {
        Step::Acquire => Plan {
            acquire: Does::Err,
            ..plan
        },
        Step::Use => Plan {
            body: Does::Err,
            ..plan
        },
        _ => Plan {
            release: Does::Err,
            ..plan
        },
    }
}

/// Plans for the items after the failing one of an endless run (repeated):
/// they succeed after waits, but a release fails one time in four.
fn sibling_plans() -> impl Strategy<Value = Vec<Plan>> {
    proptest::collection::vec(
        (
            waits(MAX_YIELDS),
            prop_oneof![3 => Just(Does::Ok), 1 => Just(Does::Err)],
        )
            .prop_map(|(waits, release)| Plan {
                release,
                ..Plan::ok_after(waits)
            }),
        1..=8,
    )
}

/// The plans of an endless run: the items before `k` succeed at once, item `k`
/// fails at once at `step` (its release after `k_release_waits` polls), and
/// the items after it follow `siblings`, repeated.
fn endless_plans(
    k: usize,
    step: Step,
    k_release_waits: usize,
    siblings: Vec<Plan>,
) -> impl Fn(usize) -> Plan + Send + Sync + 'static {
    move |index| match index.cmp(&k) {
        std::cmp::Ordering::Less => Plan::OK,
        std::cmp::Ordering::Equal => failing_at(
            step,
            Yields {
                acquire: 0,
                body: 0,
                release: k_release_waits,
            },
        ),
        std::cmp::Ordering::Greater => siblings[(index - k - 1) % siblings.len()],
    }
}

// ---------------------------------------------------------------- stopping

/// Invariant 4 on an endless input (`stream::iter(0..)`) whose item `k` fails
/// at `step`, the items before it at once: the fail-fast run returns — it does
/// not pull the input forever — with item `k`'s failure first, having pulled
/// fewer than `k + limit + 1` items, and nothing after the moment it had to
/// stop; quiescent, and nothing lost.
fn check_endless(
    which: FailFast,
    release: Release,
    limit: usize,
    k: usize,
    step: Step,
    siblings: Vec<Plan>,
) -> Result<(), TestCaseError> {
    let probe = Probe::new(endless_plans(k, step, 0, siblings));
    let stopped = with_probe!(release, probe, |acquire| {
        let result = run_fail_fast(probe.endless(), which, limit, acquire, probe.body());
        check_fail_fast(&probe, which, limit, release, None, result)?
    });
    let stopped = stopped.expect("an endless input never ends Ok");
    prop_assert_eq!(stopped.first, k, "the failure reported first");
    let pulled = probe.log().pulled();
    prop_assert!(
        pulled < k + limit + 1,
        "invariant 4: {:?} pulled {} items of an endless input whose item {} fails, limit {}",
        which,
        pulled,
        k,
        limit
    );
    Ok(())
}

/// Invariants 3–5 for a fail-fast run over `plans` (`check_fail_fast`);
/// returns the probe, for more checks, and where the run stopped.
fn check_fail_fast_run(
    which: FailFast,
    release: Release,
    limit: usize,
    plans: Vec<Plan>,
) -> Result<(Probe, Option<Stopped>), TestCaseError> {
    let n = plans.len();
    let probe = Probe::of(plans);
    let stopped = with_probe!(release, probe, |acquire| {
        let input = stream::iter(probe.items(n));
        let result = run_fail_fast(input, which, limit, acquire, probe.body());
        check_fail_fast(&probe, which, limit, release, Some(n), result)?
    });
    Ok((probe, stopped))
}

/// Invariant 4 at the failing step: item `k`'s body fails, and its async
/// release then takes `slow` polls, while its siblings' steps are quick — so
/// an engine that stopped only at the end of that release would have started
/// more. `for_each_scoped_concurrent` starts no acquire, and pulls nothing,
/// after the body's failure; and returns only after the slow release.
fn check_slow_release(
    limit: usize,
    n: usize,
    k: usize,
    slow: usize,
    k_waits: Yields,
    siblings: &[Yields],
) -> Result<(), TestCaseError> {
    let plans = (0..n)
        .map(|index| {
            if index == k {
                failing_at(
                    Step::Use,
                    Yields {
                        release: slow,
                        ..k_waits
                    },
                )
            } else {
                Plan::ok_after(siblings[index])
            }
        })
        .collect();
    let (probe, stopped) = check_fail_fast_run(FailFast::ForEach, Release::Bracket, limit, plans)?;
    let Some(stopped) = stopped else {
        return Err(TestCaseError::fail("returned Ok, yet item k fails"));
    };
    prop_assert_eq!(stopped.first, k);
    // The slow release had begun when the run stopped, and ended before it
    // returned (`check_fail_fast` checked both ends).
    let log = probe.log();
    let release_start = log
        .0
        .iter()
        .position(|&event| event == Ev::Start(Step::Release, k))
        .expect("item k's release was called");
    prop_assert!(
        stopped.at < release_start,
        "the body's failure comes before its release"
    );
    Ok(())
}

/// The guide's "stop at once" for `try_collect_all` ("a fail-fast adapter —
/// `for_each_scoped_concurrent`, `for_each_scoped_spawned`, `try_collect_all`
/// — acquires nothing after the moment an acquire or a body fails — not after
/// that item's release") and DESIGN invariant 4: item `k`'s body fails, its
/// async release then takes `slow` polls, its siblings are quick, and one of
/// them may be stuck in its body (`stuck`). Run on a strict executor (polled
/// only when woken), `try_collect_all` on either mapping stream must return —
/// not wait forever for the stuck item — with item `k`'s failure first,
/// having started no acquire after item `k`'s body failed, quiescent.
#[allow(clippy::too_many_arguments)]
fn check_collect_stops_at_the_step(
    ordered: bool,
    limit: usize,
    n: usize,
    k: usize,
    slow: usize,
    stuck: Option<usize>,
    k_waits: Yields,
    siblings: &[Yields],
) -> Result<(), TestCaseError> {
    let plans: Vec<Plan> = (0..n)
        .map(|index| {
            if index == k {
                failing_at(
                    Step::Use,
                    Yields {
                        release: slow,
                        ..k_waits
                    },
                )
            } else if Some(index) == stuck {
                Plan {
                    body: Does::Hang,
                    ..Plan::ok_after(siblings[index])
                }
            } else {
                Plan::ok_after(siblings[index])
            }
        })
        .collect();
    let probe = Probe::of(plans);
    let (acquire, body) = (probe.bracket_acquire(), probe.body());
    let input = stream::iter(probe.items(n));
    let returned = if ordered {
        let mut collect = pin!(
            input
                .try_map_scoped_concurrent(limit, acquire, body)
                .try_collect_all::<Vec<usize>>()
        );
        run_until_stalled(|cx| collect.as_mut().poll(cx))
    } else {
        let mut collect = pin!(
            input
                .try_map_scoped_unordered(limit, acquire, body)
                .try_collect_all::<Vec<usize>>()
        );
        run_until_stalled(|cx| collect.as_mut().poll(cx))
    };
    let which = if ordered {
        "try_map_scoped_concurrent"
    } else {
        "try_map_scoped_unordered"
    };
    let log = probe.log();
    let Some(result) = returned else {
        return Err(TestCaseError::fail(format!(
            "invariants 4 and 5: {which}(..).try_collect_all() waits forever (pending, not \
             woken) although item {k}'s body failed: it did not cancel the item stuck in \
             its body ({stuck:?}); log {log:?}"
        )));
    };
    let failures = match result {
        Ok(_) => return Err(TestCaseError::fail("returned Ok, yet item k fails")),
        Err(failures) => failures,
    };
    prop_assert_eq!(failures.index(), k, "the failure reported first");
    let failed_at = log
        .0
        .iter()
        .position(|&event| event == Ev::End(Step::Use, k, false))
        .expect("item k's body failed");
    let acquires_after = log.count_after(Some(failed_at), |event| {
        matches!(event, Ev::Start(Step::Acquire, _))
    });
    prop_assert_eq!(
        acquires_after,
        0,
        "invariant 4 (guide: stop at once): {}(..).try_collect_all() started {} acquire(s) after \
         item {}'s body failed (limit {}, its release {} polls): {:?}",
        which,
        acquires_after,
        k,
        limit,
        slow,
        log
    );
    check_quiescent(
        &probe,
        &log,
        limit,
        Release::Bracket,
        "when try_collect_all returned",
    )?;
    check_told(&probe, &log)
}

/// Stuck items — an acquire or a body that never ends, and is never woken —
/// beside item `k`, which fails: the fail-fast run still returns, with `k`'s
/// failure first; every stuck item it started is cancelled: a stuck body is
/// dropped and its resource released (an async release told `Cancelled`, and
/// awaited before the run returned), a stuck acquire is dropped.
#[allow(clippy::too_many_arguments)]
fn check_stuck(
    which: FailFast,
    release: Release,
    limit: usize,
    n: usize,
    k: usize,
    k_fails_at_acquire: bool,
    stuck: &[(usize, bool)],
    yields: &[Yields],
) -> Result<(), TestCaseError> {
    let mut plans: Vec<Plan> = yields[..n]
        .iter()
        .map(|&waits| Plan::ok_after(waits))
        .collect();
    let step = if k_fails_at_acquire {
        Step::Acquire
    } else {
        Step::Use
    };
    plans[k] = failing_at(step, yields[k]);
    let mut stuck_items = BTreeSet::new();
    for &(at, in_acquire) in stuck {
        // After `k` in input order for `try_map_scoped_concurrent`, whose
        // `Err` waits for every item before it (its `try_collect_all` stops
        // at the first `Err` it yields; one stuck before `k` is the case of
        // `try_collect_all_stops_acquiring_at_the_failing_step`).
        let index = match which {
            FailFast::CollectOrdered => k + 1 + at % (n - k - 1),
            FailFast::ForEach | FailFast::CollectUnordered => at % n,
        };
        if index == k {
            continue;
        }
        stuck_items.insert(index);
        plans[index] = if in_acquire {
            Plan {
                acquire: Does::Hang,
                ..plans[index]
            }
        } else {
            Plan {
                body: Does::Hang,
                ..plans[index]
            }
        };
    }
    let (probe, stopped) = check_fail_fast_run(which, release, limit, plans)?;
    let Some(stopped) = stopped else {
        return Err(TestCaseError::fail("returned Ok, yet item k fails"));
    };
    prop_assert_eq!(stopped.first, k);
    let log = probe.log();
    for &index in &stuck_items {
        let acquired = log.ended(Step::Acquire, index) == Some(true);
        if !acquired {
            // Never started, or its stuck acquire was dropped: nothing to release.
            continue;
        }
        prop_assert_eq!(log.ended(Step::Use, index), None, "a stuck body ended");
        if release == Release::Bracket {
            prop_assert!(
                log.0.contains(&Ev::Told(index, Outcome::Cancelled))
                    && log.ended(Step::Release, index).is_some(),
                "invariant 5: stuck item {}'s resource was not released, told `Cancelled`, \
                 before the run returned: {:?}",
                index,
                log
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- panics with items in flight

/// How many times an adapter is polled on after the panic it resumed, before
/// it counts as waiting forever.
const POLLS_AFTER_PANIC: usize = 1_000;

/// Installs, once, a panic hook that stays silent for the panics an adapter
/// polled after a panic is expected to raise, and hands every other panic on.
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        loopscope::testing::silence_injected_panics();
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            let expected =
                message.contains("after a panic") || message.contains("resumed after panicking");
            if !expected {
                previous(info);
            }
        }));
    });
}

/// Invariant 5 at the moment a panic came out of an adapter: it is item
/// `expected`'s injected panic, and every resource acquired was released —
/// every async release completed, the others' told `Cancelled`.
fn check_panicked(
    probe: &Probe,
    limit: usize,
    release: Release,
    panicked: Option<InjectedFault>,
    expected: InjectedFault,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(panicked, Some(expected), "the panic that came out");
    let log = probe.log();
    check_quiescent(probe, &log, limit, release, "when the panic came out")?;
    check_told(probe, &log)
}

/// Invariant 8: polled on after the panic it resumed (with a no-op waker, as
/// a consumer that caught the panic would), an adapter panics or ends — it
/// neither yields an item nor stays `Pending`. `poll` polls it once: `true`
/// when it ended.
fn check_polled_on(
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<bool>,
) -> Result<(), TestCaseError> {
    quiet_expected_panics();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    for _ in 0..POLLS_AFTER_PANIC {
        match panic::catch_unwind(AssertUnwindSafe(|| poll(&mut cx))) {
            Err(_) | Ok(Poll::Ready(true)) => return Ok(()),
            Ok(Poll::Ready(false)) => {
                return Err(TestCaseError::fail(
                    "invariant 8: polled on after the panic it resumed, it yielded an item",
                ));
            }
            Ok(Poll::Pending) => {}
        }
    }
    Err(TestCaseError::fail(format!(
        "invariant 8: still Pending after {POLLS_AFTER_PANIC} polls that followed the panic it \
         resumed: a consumer that polls on would wait forever"
    )))
}

/// Drains `stream` on `block_on` until a `next()` panics (the panic, caught)
/// or it ends (`None`).
fn drain_to_panic<S: Stream>(mut stream: Pin<&mut S>) -> Option<InjectedFault> {
    loop {
        match catch(|| block_on(stream.next())) {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(injected) => return Some(injected),
        }
    }
}

/// Runs `adapter` over items following `plans`, one of which panics with
/// `expected`, until the panic comes out — of the future, or of a `next()` of
/// the stream drained — and checks the moment it does (`check_panicked`);
/// with `poll_on`, then polls it on (`check_polled_on`).
fn check_panic_run(
    adapter: Adapter,
    release: Release,
    limit: usize,
    plans: Vec<Plan>,
    expected: InjectedFault,
    poll_on: bool,
) -> Result<(), TestCaseError> {
    let n = plans.len();
    let probe = Probe::of(plans);
    with_probe!(release, probe, |acquire| {
        let input = stream::iter(probe.items(n));
        let body = probe.body();
        match adapter {
            Adapter::ForEach => {
                let mut future = pin!(input.for_each_scoped_concurrent(limit, acquire, body));
                let panicked = catch(|| block_on(future.as_mut())).err();
                check_panicked(&probe, limit, release, panicked, expected)?;
                if poll_on {
                    check_polled_on(|cx| future.as_mut().poll(cx).map(|_| true))?;
                }
            }
            Adapter::Ordered => {
                let mut stream = pin!(input.try_map_scoped_concurrent(limit, acquire, body));
                let panicked = drain_to_panic(stream.as_mut());
                check_panicked(&probe, limit, release, panicked, expected)?;
                if poll_on {
                    check_polled_on(|cx| stream.as_mut().poll_next(cx).map(|item| item.is_none()))?;
                }
            }
            Adapter::Unordered => {
                let mut stream = pin!(input.try_map_scoped_unordered(limit, acquire, body));
                let panicked = drain_to_panic(stream.as_mut());
                check_panicked(&probe, limit, release, panicked, expected)?;
                if poll_on {
                    check_polled_on(|cx| stream.as_mut().poll_next(cx).map(|item| item.is_none()))?;
                }
            }
        }
        Ok(())
    })
}

/// A run with a panic: `n` items, item `k` panicking in its acquire or its
/// body, up to `limit - 1` others stuck (an acquire or a body that never ends,
/// so that the item `k` still gets a slot), every step after its waits, the
/// releases after `slow` waits.
#[derive(Debug, Clone)]
struct PanicCase {
    adapter: Adapter,
    release: Release,
    limit: usize,
    plans: Vec<Plan>,
    expected: InjectedFault,
}

fn panic_cases() -> impl Strategy<Value = PanicCase> {
    (adapters(), releases(), limits(), 1..=MAX_ITEMS).prop_flat_map(
        |(adapter, release, limit, n)| {
            (
                0..n,
                any::<bool>(),
                proptest::collection::vec((any::<usize>(), any::<bool>()), 0..limit),
                yields(MAX_YIELDS),
                proptest::collection::vec(0_usize..=12, MAX_ITEMS),
            )
                .prop_map(move |(k, in_acquire, stuck, yields, slow)| {
                    let mut plans: Vec<Plan> = (0..n)
                        .map(|index| {
                            Plan::ok_after(Yields {
                                release: slow[index],
                                ..yields[index]
                            })
                        })
                        .collect();
                    for (at, stuck_in_acquire) in stuck {
                        let index = at % n;
                        if index != k {
                            plans[index] = if stuck_in_acquire {
                                Plan {
                                    acquire: Does::Hang,
                                    ..plans[index]
                                }
                            } else {
                                Plan {
                                    body: Does::Hang,
                                    ..plans[index]
                                }
                            };
                        }
                    }
                    let step = if in_acquire { Step::Acquire } else { Step::Use };
                    plans[k] = if in_acquire {
                        Plan {
                            acquire: Does::Panic,
                            ..plans[k]
                        }
                    } else {
                        Plan {
                            body: Does::Panic,
                            ..plans[k]
                        }
                    };
                    PanicCase {
                        adapter,
                        release,
                        limit,
                        plans,
                        expected: InjectedFault::new(step, k),
                    }
                })
        },
    )
}

// ---------------------------------------------------------------- the spawned adapters

/// Invariant 4 for the spawned adapters (feature `tokio`) on an endless input
/// whose item `k` fails at `step` (its release after `k_release_waits`
/// polls), on a `current_thread` or a two-worker runtime: the run returns,
/// item `k`'s failure first, quiescent, nothing lost; and it stopped at once.
/// `for_each_scoped_spawned`: after the failing step, on `current_thread`,
/// nothing pulled and no acquire started; on two workers, whose tasks race
/// the cancellation, at most `limit` pulled and `limit - 1` acquires started
/// (tasks already past their cancellation check — as its docs say).
/// `try_map_scoped_spawned(..).try_collect_all()`: it pulled no more than `k + 1`
/// items plus what may be in flight and waiting for its turn when its `Err`
/// is yielded, `limit × (1 + WAITING_PER_SLOT)`.
#[allow(clippy::too_many_arguments)]
fn check_spawned_stop(
    two_workers: bool,
    collect: bool,
    release: Release,
    limit: usize,
    k: usize,
    step: Step,
    k_release_waits: usize,
    siblings: Vec<Plan>,
) -> Result<(), TestCaseError> {
    let runtime = if two_workers {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread().build()
    }
    .expect("a runtime");
    let probe = Probe::new(endless_plans(k, step, k_release_waits, siblings));
    with_probe!(release, probe, |acquire| {
        let input = probe.endless();
        let result = if collect {
            runtime.block_on(
                input
                    .try_map_scoped_spawned(limit, acquire, probe.body())
                    .try_collect_all::<Vec<usize>>(),
            )
        } else {
            runtime
                .block_on(input.for_each_scoped_spawned(limit, acquire, probe.body()))
                .map(|()| Vec::new())
        };
        check_spawned(
            &probe,
            two_workers,
            collect,
            release,
            limit,
            k,
            step,
            result,
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn check_spawned<R: ReleaseFault>(
    probe: &Probe,
    two_workers: bool,
    collect: bool,
    release: Release,
    limit: usize,
    k: usize,
    step: Step,
    result: Result<Vec<usize>, Failures<ProbeError<R>>>,
) -> Result<(), TestCaseError> {
    let log = probe.log();
    check_quiescent(
        probe,
        &log,
        limit,
        release,
        "when the spawned adapter returned",
    )?;
    check_told(probe, &log)?;
    let failures = match result {
        Ok(_) => return Err(TestCaseError::fail("an endless input ended Ok")),
        Err(failures) => failures,
    };
    let mut seen = failures
        .iter()
        .map(reported)
        .collect::<Result<Vec<_>, _>>()?;
    prop_assert_eq!(seen[0].index, k, "invariant 3: the failure reported first");
    seen.sort_unstable();
    let mut expected = log.expected_failures();
    expected.sort_unstable();
    prop_assert_eq!(seen, expected, "invariant 3: the failures reported");
    let pulled = log.pulled();
    if collect {
        let may_pull = k + 1 + limit * (1 + WAITING_PER_SLOT);
        prop_assert!(
            pulled <= may_pull,
            "invariant 4: try_collect_all pulled {} items of an endless input whose item {} \
             fails, limit {}",
            pulled,
            k,
            limit
        );
        return Ok(());
    }
    let at = log
        .0
        .iter()
        .position(|&event| event == Ev::End(step, k, false))
        .expect("item k failed");
    let (may_pull, may_acquire) = if two_workers {
        (limit, limit - 1)
    } else {
        (0, 0)
    };
    let pulled_after = log.count_after(Some(at), |event| matches!(event, Ev::Pulled(_)));
    let acquires_after = log.count_after(Some(at), |event| {
        matches!(event, Ev::Start(Step::Acquire, _))
    });
    prop_assert!(
        pulled_after <= may_pull && acquires_after <= may_acquire,
        "invariant 4: for_each_scoped_spawned ({}) pulled {} items and started {} acquires \
         after item {}'s failing {:?}: {:?}",
        if two_workers {
            "two workers"
        } else {
            "current_thread"
        },
        pulled_after,
        acquires_after,
        k,
        step,
        log
    );
    Ok(())
}

// ---------------------------------------------------------------- the properties of the probe

// Fail-fast: the first failure stops the run at once — nothing pulled, no
// acquire started after it, also from an endless input — the items in flight
// are cancelled (a stuck one too), every release is awaited, and every
// failure is reported.
/// A case proptest found: under `try_collect_all` on the ordered map, item
/// 1's release fails while item 0 is still acquiring, and item 2's acquire
/// fails. Item 1's `Err` waits for item 0, so it is item 2's failing acquire
/// that stops the run (and cuts item 0's acquire off). The model once took
/// item 0's cut-off acquire for the end of its scope, and so expected the run
/// to stop at item 1's release.
#[test]
fn an_item_cut_off_before_the_first_failure_in_order() {
    let waiting = Plan {
        waits: Yields {
            acquire: 3,
            body: 0,
            release: 0,
        },
        ..Plan::OK
    };
    let failing_release = Plan {
        release: Does::Err,
        ..Plan::OK
    };
    let failing_acquire = Plan {
        acquire: Does::Err,
        ..Plan::OK
    };
    for which in [
        FailFast::ForEach,
        FailFast::CollectOrdered,
        FailFast::CollectUnordered,
    ] {
        let plans = vec![waiting, failing_release, failing_acquire];
        if let Err(failed) = check_fail_fast_run(which, Release::Bracket, 4, plans) {
            panic!("{which:?}: {failed}");
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Invariant 4: `for_each_scoped_concurrent` over an endless input whose
    /// item `k` fails returns, having pulled fewer than `k + limit + 1` items,
    /// none after the failing step.
    #[test]
    fn for_each_concurrent_stops_pulling_an_endless_input(
        (release, step) in release_and_failing_step(),
        limit in limits(),
        k in 0_usize..=10,
        siblings in sibling_plans(),
    ) {
        within_time_limit("for_each_concurrent_stops_pulling_an_endless_input", move || {
            check_endless(FailFast::ForEach, release, limit, k, step, siblings)
        })?;
    }

    /// Invariant 4: `try_collect_all` on either mapping stream over an endless
    /// input whose item `k` fails returns, having pulled fewer than
    /// `k + limit + 1` items, none after its first `Err`.
    #[test]
    fn try_collect_all_stops_pulling_an_endless_input(
        ordered in any::<bool>(),
        (release, step) in release_and_failing_step(),
        limit in limits(),
        k in 0_usize..=10,
        siblings in sibling_plans(),
    ) {
        let which = if ordered { FailFast::CollectOrdered } else { FailFast::CollectUnordered };
        within_time_limit("try_collect_all_stops_pulling_an_endless_input", move || {
            check_endless(which, release, limit, k, step, siblings)
        })?;
    }

    /// Invariants 3–5 for the fail-fast runs over finite inputs whose steps
    /// fail at random: no item pulled and no acquire started after the
    /// failing step returned (`try_collect_all`: after its first `Err`); every
    /// failure reported once, the right one first; quiescent on return.
    #[test]
    fn fail_fast_starts_nothing_after_the_first_failure(
        which in fail_fasts(),
        release in releases(),
        limit in limits(),
        plans in failing_plans(),
    ) {
        within_time_limit("fail_fast_starts_nothing_after_the_first_failure", move || {
            check_fail_fast_run(which, release, limit, plans).map(drop)
        })?;
    }

    /// Invariant 4 at the step: a failing body whose async release is slow,
    /// siblings quick to acquire: `for_each_scoped_concurrent` acquires
    /// nothing after the body's failure, and returns after the release.
    #[test]
    fn a_failing_body_with_a_slow_release_stops_acquiring_at_once(
        limit in limits(),
        k in 0_usize..=8,
        extra in 0_usize..=6,
        slow in 1_usize..=16,
        k_waits in waits(MAX_YIELDS),
        siblings in proptest::collection::vec(waits(2), MAX_ITEMS),
    ) {
        let n = k + 1 + extra;
        within_time_limit("a_failing_body_with_a_slow_release_stops_acquiring_at_once", move || {
            check_slow_release(limit, n, k, slow, k_waits, &siblings)
        })?;
    }

    /// Invariant 4 at the step, and 5, for `try_collect_all` on either mapping
    /// stream, as the guide promises for every fail-fast adapter: a failing
    /// body whose async release is slow, quick siblings (one maybe stuck):
    /// no acquire starts after the body's failure, and a stuck sibling is
    /// cancelled rather than waited for.
    #[test]
    fn try_collect_all_stops_acquiring_at_the_failing_step(
        ordered in any::<bool>(),
        limit in 2_usize..=5,
        k in 0_usize..=8,
        extra in 0_usize..=6,
        slow in 1_usize..=16,
        stuck in proptest::option::of(0_usize..MAX_ITEMS),
        k_waits in waits(MAX_YIELDS),
        siblings in proptest::collection::vec(waits(2), MAX_ITEMS),
    ) {
        let n = k + 1 + extra;
        let stuck = stuck.map(|at| at % n).filter(|&index| index != k);
        within_time_limit("try_collect_all_stops_acquiring_at_the_failing_step", move || {
            check_collect_stops_at_the_step(ordered, limit, n, k, slow, stuck, k_waits, &siblings)
        })?;
    }

    /// Stuck items (an acquire or a body pending forever, never woken) beside
    /// a failing one: each fail-fast run still returns, the stuck items
    /// cancelled and their resources released (told `Cancelled`) before it
    /// does. (For `try_map_scoped_concurrent`, whose `Err` waits for the items
    /// before it, the stuck items come after the failing one: see
    /// `try_collect_all_stops_acquiring_at_the_failing_step` for one before.)
    #[test]
    fn stuck_items_are_cancelled_and_released(
        (which, release, limit, n, k) in (fail_fasts(), releases(), 2_usize..=5, 2..=MAX_ITEMS)
            .prop_flat_map(|(which, release, limit, n)| {
                let last = if which == FailFast::CollectOrdered { n - 2 } else { n - 1 };
                (Just(which), Just(release), Just(limit), Just(n), 0..=last)
            }),
        k_fails_at_acquire in any::<bool>(),
        stuck in proptest::collection::vec((any::<usize>(), any::<bool>()), 1..5),
        yields in yields(MAX_YIELDS),
    ) {
        // At most `limit - 1` stuck: item `k` must get a slot.
        let stuck: Vec<_> = stuck.into_iter().take(limit - 1).collect();
        within_time_limit("stuck_items_are_cancelled_and_released", move || {
            check_stuck(which, release, limit, n, k, k_fails_at_acquire, &stuck, &yields)
        })?;
    }

    /// Invariant 3 with many failing releases (one in two), some failing
    /// bodies, items cancelled mid-body: every failed release is in the
    /// returned `Failures` exactly once, with its item's index (as `Release`,
    /// in `Use { release }`, or in `Cancelled { release }`).
    #[test]
    fn every_failing_release_is_reported_once(
        which in fail_fasts(),
        limit in limits(),
        plans in plans_with_failing_releases(),
    ) {
        within_time_limit("every_failing_release_is_reported_once", move || {
            check_fail_fast_run(which, Release::Bracket, limit, plans).map(drop)
        })?;
    }
}

// Panics with other items in flight (stuck ones too, and slow releases).
proptest! {
    #![proptest_config(config(256))]

    /// Invariant 5 for panics: when the panic comes out of any of the three
    /// adapters, every resource acquired has been released — every async
    /// release completed (the panicking item's told `Panicked`, the items
    /// cancelled told `Cancelled`).
    #[test]
    fn a_panic_resumes_only_after_every_release_completed(case in panic_cases()) {
        within_time_limit("a_panic_resumes_only_after_every_release_completed", move || {
            check_panic_run(case.adapter, case.release, case.limit, case.plans, case.expected, false)
        })?;
    }

    /// Invariant 8: a consumer that catches the panic (`catch_unwind` around
    /// `block_on(stream.next())`) and polls on gets a panic or the end, never
    /// an item, never `Pending` forever.
    #[test]
    fn polled_after_a_panic_an_adapter_panics_or_ends(case in panic_cases()) {
        within_time_limit("polled_after_a_panic_an_adapter_panics_or_ends", move || {
            check_panic_run(case.adapter, case.release, case.limit, case.plans, case.expected, true)
        })?;
    }
}

// The spawned adapters: one runtime per case.
proptest! {
    #![proptest_config(config(128))]

    /// Invariant 4 for `for_each_scoped_spawned` and
    /// `try_map_scoped_spawned(..).try_collect_all()`, on a `current_thread`
    /// or a two-worker runtime: an endless input whose item `k` fails (its
    /// release maybe slow) — the run returns, stopped at once.
    #[test]
    fn spawned_adapters_stop_at_once(
        two_workers in any::<bool>(),
        collect in any::<bool>(),
        release in releases(),
        limit in limits(),
        k in 0_usize..=10,
        step in prop_oneof![Just(Step::Acquire), Just(Step::Use)],
        k_release_waits in 0_usize..=8,
        siblings in proptest::collection::vec(waits(MAX_YIELDS).prop_map(Plan::ok_after), 1..=8),
    ) {
        within_time_limit("spawned_adapters_stop_at_once", move || {
            check_spawned_stop(
                two_workers, collect, release, limit, k, step, k_release_waits, siblings,
            )
        })?;
    }
}

// ---------------------------------------------------------------- behind a stuck item

/// Invariants 1 and 8 behind an item stuck in its body (pending forever, never
/// woken) — whose result, in `try_map_scoped_concurrent`, holds up every later
/// one: a finished item whose result waits for its turn holds no slot of the
/// limit, so the stream keeps its other slots busy. Polled only when its waker
/// was woken (`inputs::run_until_stalled`), it must run every other item —
/// acquired, used, released, its result yielded or waiting — before it waits
/// for the stuck one alone; dropped, it releases that one too.
fn check_fills_behind_a_stuck_item(
    adapter: Adapter,
    limit: usize,
    n: usize,
    stuck: usize,
    yields: &[Yields],
) -> Result<(), TestCaseError> {
    let tracker = Tracker::new();
    let acquire = async |index: usize| {
        yield_n(yields[index].acquire).await;
        Ok::<_, Infallible>((index, tracker.acquire()))
    };
    let body = async |resource: &mut (usize, Tracked)| {
        if resource.0 == stuck {
            std::future::pending::<()>().await;
        }
        yield_n(yields[resource.0].body).await;
        Ok::<_, Infallible>(resource.0)
    };
    let mut yielded = Vec::new();
    let mut drain = |mut stream: Pin<
        &mut DynResults<'_, usize, ScopedError<Infallible, Infallible, Infallible>>,
    >| {
        run_until_stalled(|cx| {
            loop {
                match stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(result)) => yielded.push(index_of_infallible(&result)),
                    Poll::Ready(None) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
    };
    let (ended, acquired, live) = match adapter {
        Adapter::Ordered => {
            let mut stream =
                pin!(stream::iter(0..n).try_map_scoped_concurrent(limit, acquire, body));
            let ended = drain(stream.as_mut());
            (ended, tracker.acquired().len(), tracker.live())
        }
        Adapter::Unordered => {
            let mut stream =
                pin!(stream::iter(0..n).try_map_scoped_unordered(limit, acquire, body));
            let ended = drain(stream.as_mut());
            (ended, tracker.acquired().len(), tracker.live())
        }
        Adapter::ForEach => unreachable!("a stream adapter"),
    };
    prop_assert!(ended.is_none(), "the stream ended, yet an item is stuck");
    // With a limit of 1 the stuck item holds the only slot.
    let runnable = if limit == 1 { stuck + 1 } else { n };
    prop_assert_eq!(
        acquired,
        runnable,
        "invariants 1 and 8: {:?}, limit {}, item {} of {} stuck: the stream waits (pending, \
         not woken) having acquired {} items, though a slot is free and the input ready",
        adapter,
        limit,
        stuck,
        n,
        acquired
    );
    prop_assert_eq!(live, 1, "only the stuck item holds its resource");
    let expected: Vec<usize> = match adapter {
        Adapter::Ordered => (0..stuck).collect(),
        _ => (0..runnable).filter(|&index| index != stuck).collect(),
    };
    yielded.sort_unstable();
    prop_assert_eq!(
        yielded,
        expected,
        "the results yielded before the stuck one"
    );
    check_resources(&tracker, limit, "after the stream was dropped")
}

fn index_of_infallible(
    result: &Result<usize, ScopedError<Infallible, Infallible, Infallible>>,
) -> usize {
    match result {
        Ok(index) => *index,
        Err(error) => error.index(),
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Invariants 1 and 8 for both mapping streams: behind an item stuck in
    /// its body, the other items all run before the stream waits for it alone.
    #[test]
    fn mapping_streams_fill_their_slots_behind_a_stuck_item(
        ordered in any::<bool>(),
        limit in limits(),
        (n, stuck) in (1..=MAX_ITEMS).prop_flat_map(|n| (Just(n), 0..n)),
        yields in yields(MAX_YIELDS),
    ) {
        let adapter = if ordered { Adapter::Ordered } else { Adapter::Unordered };
        within_time_limit("mapping_streams_fill_their_slots_behind_a_stuck_item", move || {
            check_fills_behind_a_stuck_item(adapter, limit, n, stuck, &yields)
        })?;
    }
}
