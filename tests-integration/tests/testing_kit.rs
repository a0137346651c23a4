#![cfg(all(feature = "testing", feature = "stream"))]
//! Tests of the test kit itself, `loopscope::testing`: the fault wrappers inject
//! exactly at the items planned and pass every other call through unchanged, the
//! delays take exactly the polls planned, the wrappers keep `Send`, and
//! `cancel_at_every_poll` visits every poll point and catches a future that
//! leaks.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/watchdog.rs"]
mod watchdog;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::mem;

use futures::executor::block_on;
use futures::stream::{self, StreamExt as _};
use loopscope::prelude::*;
use loopscope::testing::{
    Call, Fault, Faults, FaultyAcquire, Indexed, Injected, InjectedFault, Step, Tracked, Tracker,
    YieldN, cancel_at_every_poll, cancel_stream_at_every_poll, catch_injected,
    try_cancel_at_every_poll, yield_n,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use watchdog::watchdog;

/// The wrapped code's own error: item positions whose inner step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Own(usize);

const STEPS: [Step; 3] = [Step::Acquire, Step::Use, Step::Release];

/// A plan: for each step, the items that fail and those that panic (a panic
/// planned for an item overrides a failure).
#[derive(Debug, Clone)]
struct Plan {
    len: usize,
    fail: [BTreeSet<usize>; 3],
    panic: [BTreeSet<usize>; 3],
    /// Items whose wrapped step fails on its own (with `Own`), at each step.
    own: [BTreeSet<usize>; 3],
}

impl Plan {
    fn faults(&self) -> Faults {
        STEPS.iter().fold(Faults::new(), |faults, &step| {
            let slot = step as usize;
            faults
                .fail(step, self.fail[slot].iter().copied())
                .panic(step, self.panic[slot].iter().copied())
        })
    }

    fn planned(&self, step: Step, index: usize) -> Option<Fault> {
        let slot = step as usize;
        if self.panic[slot].contains(&index) {
            Some(Fault::Panic)
        } else if self.fail[slot].contains(&index) {
            Some(Fault::Fail)
        } else {
            None
        }
    }

    fn own_fails(&self, step: Step, index: usize) -> bool {
        self.own[step as usize].contains(&index)
    }
}

fn plans() -> impl Strategy<Value = Plan> {
    (0_usize..12).prop_flat_map(|len| {
        let set = move || proptest::collection::btree_set(0..len.max(1), 0..=len / 2);
        (
            [set(), set(), set()],
            [set(), set(), set()],
            [set(), set(), set()],
        )
            .prop_map(move |(fail, panic, own)| Plan {
                len,
                fail,
                panic,
                own,
            })
    })
}

/// What the model says one item's scope ends with, in `try_map_scoped` with a
/// bracket: the body's value (`index * 10`), an error naming the failed steps,
/// or the fault of a panic.
type Outcome =
    Result<Result<usize, (Step, Option<Injected<Own>>, Option<Injected<Own>>)>, InjectedFault>;

/// The model of item `index`: a planned fault replaces the acquire or the body
/// call; the release is always called, and a planned fault replaces its result.
fn model(plan: &Plan, index: usize) -> (Outcome, Vec<(Step, usize)>) {
    let fault = |step| InjectedFault::new(step, index);
    let step_result = |step| match plan.planned(step, index) {
        Some(Fault::Panic) => Err(fault(step)),
        Some(Fault::Fail) => Ok(Some(Injected::Fault(fault(step)))),
        // `Fault` is `#[non_exhaustive]`; this plan makes only the two above.
        Some(other) => unreachable!("a fault the plan never makes: {other:?}"),
        None if plan.own_fails(step, index) => Ok(Some(Injected::Inner(Own(index)))),
        None => Ok(None),
    };
    let mut calls = vec![(Step::Acquire, index)];
    match step_result(Step::Acquire) {
        Err(panic) => return (Err(panic), calls),
        Ok(Some(error)) => return (Ok(Err((Step::Acquire, Some(error), None))), calls),
        Ok(None) => {}
    }
    calls.push((Step::Use, index));
    calls.push((Step::Release, index));
    let used = step_result(Step::Use);
    let released = step_result(Step::Release);
    let outcome = match (used, released) {
        (Err(panic), _) => Err(panic),
        (Ok(_), Err(panic)) => Err(panic),
        (Ok(None), Ok(None)) => Ok(Ok(index * 10)),
        (Ok(None), Ok(Some(release))) => Ok(Err((Step::Release, None, Some(release)))),
        (Ok(Some(body)), Ok(release)) => Ok(Err((Step::Use, Some(body), release))),
    };
    (outcome, calls)
}

/// The adapter's error, in the model's terms.
fn flatten(
    error: ScopedError<Injected<Own>, Injected<Own>, Injected<Own>>,
) -> (Step, Option<Injected<Own>>, Option<Injected<Own>>) {
    match error {
        ScopedError::Acquire { source, .. } => (Step::Acquire, Some(source), None),
        ScopedError::Use {
            source, release, ..
        } => (Step::Use, Some(source), release),
        ScopedError::Release { source, .. } => (Step::Release, None, Some(source)),
        other => panic!("unknown variant {other:?}"),
    }
}

fn check_item(
    plan: &Plan,
    index: usize,
    outcome: Outcome,
    faults: &Faults,
    calls_before: usize,
) -> Result<(), TestCaseError> {
    let (expected, calls) = model(plan, index);
    prop_assert_eq!(outcome, expected, "item {}", index);
    prop_assert_eq!(
        &faults.ended()[calls_before..],
        &calls[..],
        "the calls of item {}",
        index
    );
    Ok(())
}

/// Sync wrappers around a bracket whose own steps fail for some items: each
/// item ends as the model says, the calls are recorded, nothing leaks.
fn check_sync(plan: &Plan) -> Result<(), TestCaseError> {
    let tracker = Tracker::new();
    let faults = plan.faults();
    let own = plan.clone();
    let own_release = plan.clone();
    let own_body = plan.clone();
    // The wrapped code numbers items by their input position, which must agree
    // with the kit's numbering by call count.
    let acquire = faults.acquire(
        bracket(|index: usize| {
            if own.own_fails(Step::Acquire, index) {
                Err(Own(index))
            } else {
                Ok((index, tracker.acquire()))
            }
        })
        .release(|(index, tracked): (usize, Tracked)| {
            tracked.release();
            if own_release.own_fails(Step::Release, index) {
                Err(Own(index))
            } else {
                Ok(())
            }
        }),
    );
    let body = faults.body(|&mut (index, _): &mut (usize, Tracked)| {
        if own_body.own_fails(Step::Use, index) {
            Err(Own(index))
        } else {
            Ok(index * 10)
        }
    });
    let mut results = (0..plan.len).try_map_scoped(acquire, body);
    for index in 0..plan.len {
        let before = faults.ended().len();
        let outcome = catch_injected(|| results.next())
            .map(|next| next.expect("one result per item").map_err(flatten));
        check_item(plan, index, outcome, &faults, before)?;
        prop_assert_eq!(tracker.live(), 0);
    }
    prop_assert!(results.next().is_none());
    prop_assert!(tracker.check_released_exactly_once().is_ok());
    Ok(())
}

/// The same with the async wrappers on the sequential stream adapter, each step
/// waiting a few polls: the same outcomes, and a full run takes exactly the
/// polls planned.
fn check_async(plan: &Plan, waits: [usize; 3]) -> Result<(), TestCaseError> {
    let tracker = Tracker::new();
    let faults = plan
        .faults()
        .yield_at(Step::Acquire, move |index| (index + waits[0]) % 3)
        .yield_at(Step::Use, move |index| (index + waits[1]) % 3)
        .yield_at(Step::Release, move |index| (index + waits[2]) % 3);
    let (own, own_release, own_body) = (plan.clone(), plan.clone(), plan.clone());
    let make_acquire = || {
        faults.acquire(
            async_bracket(async |index: usize| {
                if own.own_fails(Step::Acquire, index) {
                    Err(Own(index))
                } else {
                    Ok((index, tracker.acquire()))
                }
            })
            .release(|(index, tracked): (usize, Tracked)| {
                tracked.release();
                let fails = own_release.own_fails(Step::Release, index);
                async move { if fails { Err(Own(index)) } else { Ok(()) } }
            }),
        )
    };
    let body = faults.async_body(async |&mut (index, _): &mut (usize, Tracked)| {
        if own_body.own_fails(Step::Use, index) {
            Err(Own(index))
        } else {
            Ok(index * 10)
        }
    });

    let mut results =
        Box::pin(stream::iter(0..plan.len).try_map_scoped(make_acquire(), body.clone()));
    let mut panicked = false;
    for index in 0..plan.len {
        let before = faults.ended().len();
        let outcome = catch_injected(|| block_on(results.next()))
            .map(|next| next.expect("one result per item").map_err(flatten));
        panicked = outcome.is_err();
        check_item(plan, index, outcome, &faults, before)?;
        prop_assert_eq!(tracker.live(), 0);
        if panicked {
            break; // a stream that panicked is not polled again
        }
    }
    if !panicked {
        prop_assert!(block_on(results.next()).is_none());
    }
    drop(results);
    prop_assert!(tracker.check_released_exactly_once().is_ok());

    // Without panics, a full run of `for_each_scoped` polls once per planned
    // wait of each step run, and once more to return.
    if plan.panic.iter().all(BTreeSet::is_empty) {
        faults.clear_calls();
        let polls = cancel_at_every_poll(
            || stream::iter(0..plan.len).for_each_scoped(make_acquire(), body.clone()),
            |_| assert_eq!(tracker.live(), 0),
        );
        // The calls of the last (full) run, after the `polls` runs cut short.
        let calls = faults.calls();
        let last_run = calls
            .iter()
            .rposition(|&call| call == Call::Start(Step::Acquire, 0))
            .unwrap_or(calls.len());
        let waited: usize = calls[last_run..]
            .iter()
            .filter_map(|&call| match call {
                Call::Start(step, index) => Some(faults.yields(step, index)),
                _ => None,
            })
            .sum();
        prop_assert_eq!(polls, waited + 1, "one poll per wait, and one to return");
        prop_assert!(tracker.check_released_exactly_once().is_ok());
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases::config(256))]

    /// The sync wrappers fail or panic exactly at the planned step of the planned
    /// items, pass the wrapped code's own results and errors through otherwise,
    /// record each call, and run the wrapped release before a release fault.
    #[test]
    fn sync_wrappers_inject_exactly_as_planned(plan in plans()) {
        check_sync(&plan)?;
    }

    /// The async wrappers do the same, and wait exactly the polls planned.
    #[test]
    fn async_wrappers_inject_exactly_as_planned(plan in plans(), waits in [0_usize..3, 0..3, 0..3]) {
        let _watchdog = watchdog("async_wrappers_inject_exactly_as_planned");
        check_async(&plan, waits)?;
    }
}

#[test]
fn the_concurrent_adapters_number_items_by_input_position() {
    let _watchdog = watchdog("the_concurrent_adapters_number_items_by_input_position");
    // Item 0 waits longest, so items finish out of order; the bodies still see
    // the resource of their own item.
    let faults = Faults::new()
        .yield_at(Step::Acquire, |index| 10 - index)
        .fail_use([2]);
    let seen = std::sync::Mutex::new(Vec::new());
    let results: Vec<_> = block_on(
        stream::iter(0..6)
            .try_map_scoped_unordered(
                6,
                faults.acquire(async |item: usize| Ok::<_, Infallible>(item)),
                faults.async_body(async |item: &mut usize| {
                    seen.lock().unwrap().push(*item);
                    Ok::<_, Infallible>(*item)
                }),
            )
            .collect(),
    );
    for result in &results {
        match result {
            Ok(item) => assert_ne!(*item, 2),
            Err(error) => assert_eq!(error.index(), 2),
        }
    }
    let mut seen = seen.into_inner().unwrap();
    assert_eq!(seen[0], 5, "the item that waited least ran first");
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 3, 4, 5]);
}

#[test]
fn the_wrappers_keep_send_on_a_multi_threaded_runtime() {
    let _watchdog = watchdog("the_wrappers_keep_send_on_a_multi_threaded_runtime");
    fn assert_send<T: Send>(value: T) -> T {
        value
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let tracker = Tracker::new();
    let faults = Faults::new()
        .fail_use([3])
        .fail_release([5])
        .yield_at(Step::Use, |index| index % 3)
        .yield_at(Step::Release, |_| 1);
    let future = assert_send(
        stream::iter(0..20).for_each_scoped_concurrent(
            4,
            faults.acquire(
                async_bracket({
                    let tracker = tracker.clone();
                    async move |_item: usize| Ok::<_, Infallible>(tracker.acquire())
                })
                .release(|tracked: Tracked| async move {
                    tokio::task::yield_now().await;
                    tracked.release();
                    Ok::<_, Infallible>(())
                }),
            ),
            // `async_body`'s opaque wrapper cannot be proven `Send`; a body of
            // our own that calls `inject` can.
            {
                let faults = faults.clone();
                async move |tracked: &mut Indexed<Tracked>| {
                    faults
                        .inject(Step::Use, tracked.index())
                        .await
                        .map_err(Injected::Fault)?;
                    tokio::task::yield_now().await;
                    Ok::<_, Injected<Infallible>>(())
                }
            },
        ),
    );
    let error = runtime
        .block_on(runtime.spawn(future))
        .unwrap()
        .unwrap_err();
    assert!(error.index() == 3 || error.index() == 5, "{error:?}");
    assert!(tracker.peak() <= 4);
    tracker.assert_released_exactly_once();
}

#[test]
#[should_panic(expected = "releases by `Drop`")]
fn a_release_fault_for_an_acquire_that_releases_by_drop_panics() {
    let _watchdog = watchdog("a_release_fault_for_an_acquire_that_releases_by_drop_panics");
    let faults = Faults::new().fail_release([0]);
    let _ = block_on(stream::iter(0..1).for_each_scoped(
        faults.acquire(async |item: usize| Ok::<_, Infallible>(item)),
        async |_item| Ok::<_, Infallible>(()),
    ));
}

#[test]
fn catch_injected_resumes_other_panics() {
    let other = std::panic::catch_unwind(|| catch_injected(|| panic!("a real bug")));
    let payload = other.expect_err("the panic resumed");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"a real bug"));
}

// ---------------------------------------------------------------- cancel at every poll

#[test]
fn cancel_at_every_poll_visits_every_poll_point_once() {
    let _watchdog = watchdog("cancel_at_every_poll_visits_every_poll_point_once");
    let polls = Cell::new(0);
    let counted = || async {
        for _ in 0..5 {
            polls.set(polls.get() + 1);
            yield_n(1).await;
        }
    };
    let mut checked = Vec::new();
    let n = cancel_at_every_poll(counted, |k| {
        // Run k polled the future exactly k times (polls counted on entry of
        // each resumption, so at most k; the full run counts 5).
        checked.push((k, polls.replace(0)));
    });
    assert_eq!(n, 6, "five waits and the poll that completes");
    assert_eq!(
        checked,
        [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 5)]
    );
}

#[test]
fn cancel_at_every_poll_of_a_ready_future_checks_twice() {
    let _watchdog = watchdog("cancel_at_every_poll_of_a_ready_future_checks_twice");
    let mut checked = Vec::new();
    let n = cancel_at_every_poll(|| async {}, |k| checked.push(k));
    assert_eq!((n, checked), (1, vec![0, 1]));
}

#[test]
fn cancel_stream_at_every_poll_counts_items_and_waits() {
    let _watchdog = watchdog("cancel_stream_at_every_poll_counts_items_and_waits");
    let mut checked = Vec::new();
    let n = cancel_stream_at_every_poll(
        || stream::iter(0..3).then(|item| async move { yield_n(item).await }),
        |k| checked.push(k),
    );
    // Items 0, 1, 2 wait 0, 1, 2 polls; three items and the end.
    assert_eq!(n, 3 + 3 + 1);
    assert_eq!(checked, (0..=n).collect::<Vec<_>>());
}

/// A future that acquires a resource at its first poll, a second at its
/// second, and at its third leaks the second.
async fn leaky(tracker: &Tracker) {
    let first = tracker.acquire();
    yield_n(1).await;
    drop(first);
    let second = tracker.acquire();
    yield_n(1).await;
    mem::forget(second);
    yield_n(1).await;
}

#[test]
fn try_cancel_at_every_poll_catches_a_leak_at_the_poll_it_happens() {
    let _watchdog = watchdog("try_cancel_at_every_poll_catches_a_leak_at_the_poll_it_happens");
    let tracker = Tracker::new();
    let failed = try_cancel_at_every_poll(
        || leaky(&tracker),
        |k| {
            if tracker.live() == 0 { Ok(()) } else { Err(k) }
        },
    );
    assert_eq!(
        failed,
        Err(3),
        "dropped after 3 polls, the second resource is leaked"
    );
}

#[test]
#[should_panic(expected = "left: 1")]
fn cancel_at_every_poll_fails_on_a_leak() {
    let _watchdog = watchdog("cancel_at_every_poll_fails_on_a_leak");
    let tracker = Tracker::new();
    cancel_at_every_poll(|| leaky(&tracker), |_| assert_eq!(tracker.live(), 0));
}

#[test]
#[should_panic(expected = "did not complete within")]
fn cancel_at_every_poll_gives_up_on_a_future_that_never_completes() {
    let _watchdog = watchdog("cancel_at_every_poll_gives_up_on_a_future_that_never_completes");
    cancel_at_every_poll(std::future::pending::<()>, |_| {});
}

#[test]
fn a_hoarding_loop_is_caught_by_the_peak() {
    // The bug the crate exists for: open every resource first, then use them.
    let tracker = Tracker::new();
    let hoarded: Vec<Tracked> = (0..10).map(|_| tracker.acquire()).collect();
    drop(hoarded);
    assert_eq!(tracker.peak(), 10);
    // The scoped loop, with faults injected, keeps it at one.
    let tracker = Tracker::new();
    let faults = Faults::new().fail_use([2, 7]).panic_release([4]);
    let _ = catch_injected(|| {
        (0..10)
            .try_map_scoped(
                faults.acquire(|_| Ok::<_, Infallible>(tracker.acquire())),
                faults.body(|_tracked: &mut Tracked| Ok::<_, Infallible>(())),
            )
            .count()
    });
    assert_eq!(tracker.peak(), 1);
    tracker.assert_released_exactly_once();
}

#[test]
fn the_kit_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Faults>();
    send_sync::<Tracker>();
    send_sync::<Tracked>();
    send_sync::<Indexed<Tracked>>();
    send_sync::<FaultyAcquire<fn(u8) -> Result<u8, ()>>>();
    send_sync::<Injected<std::io::Error>>();
    send_sync::<InjectedFault>();
    send_sync::<Call>();
    send_sync::<YieldN>();
}

/// The spawned adapters release what a drop leaves behind on their worker
/// thread, shortly after the drop: a check must wait for the releases.
#[cfg(feature = "tokio")]
#[test]
fn cancel_at_every_poll_on_a_spawned_adapter_waits_for_the_releases() {
    let _watchdog = watchdog("cancel_at_every_poll_on_a_spawned_adapter_waits_for_the_releases");
    use std::time::{Duration, Instant};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    // The adapter pulls its first item inside a runtime.
    let _inside = runtime.enter();
    let tracker = Tracker::new();
    let polls = cancel_at_every_poll(
        || {
            let tracker = tracker.clone();
            stream::iter(0..3).for_each_scoped_spawned(
                2,
                async move |_item: i32| Ok::<_, Infallible>(tracker.acquire()),
                async |_resource: &mut Tracked| {
                    yield_n(2).await;
                    Ok::<_, Infallible>(())
                },
            )
        },
        |_polls| {
            // Checking `live() == 0` at once would fail now and then: the worker
            // thread may not have dropped the cancelled scopes yet.
            let deadline = Instant::now() + Duration::from_secs(5);
            while tracker.live() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(tracker.live(), 0, "not released within 5 s of the drop");
        },
    );
    // The worker thread runs the scopes at its own pace, so the number of polls
    // a full run takes varies from run to run; it is at least one.
    assert!(polls >= 1);
    assert!(tracker.peak() <= 2);
    tracker.assert_released_exactly_once();
}

/// The positions `FaultyAcquire` gives, wrapped around a whole `both` and
/// around each of its parts: the documented reason to wrap the whole acquire.
#[test]
fn wrap_the_whole_both_not_its_parts() {
    use loopscope::both;

    let part = |tracker: &Tracker| {
        let tracker = tracker.clone();
        move |_: usize| Ok::<_, Infallible>(tracker.acquire())
    };

    let tracker = Tracker::new();
    let faults = Faults::new().fail_acquire([1]);
    let whole: Vec<_> = (0..4)
        .try_map_scoped(
            faults.acquire(both(part(&tracker), part(&tracker))),
            |pair| Ok::<_, Infallible>(pair.index()),
        )
        .map(Result::ok)
        .collect();
    assert_eq!(whole, [Some(0), None, Some(2), Some(3)]);
    tracker.assert_released_exactly_once();

    // Each part counts its own calls; the second is skipped for item 1, whose
    // first part failed, so it falls one behind.
    let tracker = Tracker::new();
    let faults = Faults::new().fail_acquire([1]);
    let parts: Vec<_> = (0..4)
        .try_map_scoped(
            both(
                faults.acquire(part(&tracker)),
                faults.acquire(part(&tracker)),
            ),
            |(first, second)| Ok::<_, Infallible>((first.index(), second.index())),
        )
        .map(Result::ok)
        .collect();
    assert_eq!(parts, [Some((0, 0)), None, None, Some((3, 2))]);
    tracker.assert_released_exactly_once();
}
