#![cfg(feature = "stream")]
//! Outcome-aware release (`release_with`): every adapter tells each release how
//! its item's body ended, on every path.
//!
//! Each item's body is scripted to return `Ok`, return `Err` or panic, and its
//! release to succeed or fail. The release records `(item, outcome)`; the
//! properties check that every acquired item was released exactly once, with
//! `Completed` after `Ok`, `Failed` after `Err` and `Panicked` after a panic,
//! for the sync adapters, the sequential stream adapters (with a few yields at
//! every step, so the release really is awaited) and the concurrent ones — and
//! that the release's own error still reaches the caller at the item's index.
//! A cancelled adapter whose bracket spawns its release on cancellation tells
//! the spawned release `Cancelled`.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/watchdog.rs"]
mod watchdog;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use futures::executor::block_on;
use futures::stream::{self, StreamExt as _};
use loopscope::Outcome;
use loopscope::prelude::*;
use proptest::prelude::*;
use watchdog::watchdog;

/// How one item's body ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Body {
    Ok,
    Err,
    Panic,
}

impl Body {
    fn outcome(self) -> Outcome {
        match self {
            Body::Ok => Outcome::Completed,
            Body::Err => Outcome::Failed,
            Body::Panic => Outcome::Panicked,
        }
    }

    fn run(self, item: usize) -> Result<usize, String> {
        match self {
            Body::Ok => Ok(item),
            Body::Err => Err(format!("body {item}")),
            Body::Panic => panic!("body {item} panicked"),
        }
    }
}

#[derive(Debug, Clone)]
struct Script {
    bodies: Vec<Body>,
    /// Whether each item's release fails.
    release_fails: Vec<bool>,
}

/// At most one panic, anywhere: a panic ends the run.
fn scripts() -> impl Strategy<Value = Script> {
    (1usize..12)
        .prop_flat_map(|len| {
            (
                prop::collection::vec(prop_oneof![3 => Just(Body::Ok), 2 => Just(Body::Err)], len),
                prop::collection::vec(prop::bool::weighted(0.25), len),
                prop::option::of(0..len),
            )
        })
        .prop_map(|(mut bodies, release_fails, panic_at)| {
            if let Some(at) = panic_at {
                bodies[at] = Body::Panic;
            }
            Script {
                bodies,
                release_fails,
            }
        })
}

/// What the releases were told, in the order they ran.
type Log = Mutex<Vec<(usize, Outcome)>>;

fn release(log: &Log, script: &Script, item: usize, outcome: Outcome) -> Result<(), String> {
    log.lock().unwrap().push((item, outcome));
    if script.release_fails[item] {
        Err(format!("release {item}"))
    } else {
        Ok(())
    }
}

/// Returns `Pending` `n` times, waking itself: a step that takes several polls.
struct Yield(usize);

impl Future for Yield {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The items a sequential run reaches: up to and including the first panic,
/// and, when `fail_fast`, up to and including the first failure of the body or
/// the release.
fn reached(script: &Script, fail_fast: bool) -> usize {
    let mut reached = 0;
    for (item, body) in script.bodies.iter().enumerate() {
        reached += 1;
        let failed = *body != Body::Ok || script.release_fails[item];
        if *body == Body::Panic || (fail_fast && failed) {
            break;
        }
    }
    reached
}

fn expected_log(script: &Script, items: usize) -> Vec<(usize, Outcome)> {
    (0..items)
        .map(|i| (i, script.bodies[i].outcome()))
        .collect()
}

fn sorted(mut log: Vec<(usize, Outcome)>) -> Vec<(usize, Outcome)> {
    log.sort_by_key(|(item, _)| *item);
    log
}

/// Checks one item's result of a `try_map_scoped*` run against its script.
fn check_item<T: PartialEq<usize> + std::fmt::Debug>(
    script: &Script,
    item: usize,
    result: &Result<T, ScopedError<(), String, String>>,
) -> Result<(), TestCaseError> {
    let release_fails = script.release_fails[item];
    match (script.bodies[item], result) {
        (Body::Ok, Ok(value)) => prop_assert!(!release_fails && *value == item),
        (Body::Ok, Err(ScopedError::Release { index, .. })) => {
            prop_assert!(release_fails && *index == item);
        }
        (Body::Err, Err(ScopedError::Use { index, release, .. })) => {
            prop_assert_eq!(*index, item);
            prop_assert_eq!(release.is_some(), release_fails);
        }
        (body, result) => prop_assert!(false, "item {item}: body {body:?} gave {result:?}"),
    }
    Ok(())
}

use proptest::test_runner::TestCaseError;

proptest! {
    #![proptest_config(cases::config(256))]

    #[test]
    fn sync_try_map_scoped_tells_each_release_its_outcome(script in scripts()) {
        let log = Log::default();
        let mut results = Vec::new();
        let run = catch_unwind(AssertUnwindSafe(|| {
            let items = (0..script.bodies.len()).try_map_scoped(
                bracket(Ok::<usize, ()>)
                    .release_with(|item, outcome| release(&log, &script, item, outcome)),
                |item| script.bodies[*item].run(*item),
            );
            for result in items {
                results.push(result);
            }
        }));
        let items = reached(&script, false);
        prop_assert_eq!(run.is_err(), script.bodies.contains(&Body::Panic));
        prop_assert_eq!(log.into_inner().unwrap(), expected_log(&script, items));
        for (item, result) in results.iter().enumerate() {
            check_item(&script, item, result)?;
        }
    }

    #[test]
    fn sync_for_each_scoped_tells_each_release_its_outcome(script in scripts()) {
        let log = Log::default();
        let run = catch_unwind(AssertUnwindSafe(|| {
            (0..script.bodies.len()).for_each_scoped(
                bracket(Ok::<usize, ()>)
                    .release_with(|item, outcome| release(&log, &script, item, outcome)),
                |item| script.bodies[*item].run(*item),
            )
        }));
        let items = reached(&script, true);
        prop_assert_eq!(log.into_inner().unwrap(), expected_log(&script, items));
        match run {
            Err(_) => prop_assert_eq!(script.bodies[items - 1], Body::Panic),
            Ok(Ok(())) => prop_assert!(items == script.bodies.len()),
            Ok(Err(error)) => prop_assert_eq!(error.index(), items - 1),
        }
    }

    #[test]
    fn stream_try_map_scoped_awaits_each_release_with_its_outcome(
        script in scripts(),
        polls in 0usize..3,
    ) {
        let _watchdog = watchdog("stream_try_map_scoped_awaits_each_release_with_its_outcome");
        let log = Log::default();
        let mut results = Vec::new();
        let run = catch_unwind(AssertUnwindSafe(|| block_on(async {
            let mut items = std::pin::pin!(stream::iter(0..script.bodies.len()).try_map_scoped(
                async_bracket(async |item: usize| {
                    Yield(polls).await;
                    Ok::<_, ()>(item)
                })
                .release_with(|item, outcome| {
                    let released = release(&log, &script, item, outcome);
                    async move {
                        Yield(polls).await;
                        released
                    }
                }),
                async |item| {
                    Yield(polls).await;
                    script.bodies[*item].run(*item)
                },
            ));
            while let Some(result) = items.next().await {
                results.push(result);
            }
        })));
        prop_assert_eq!(run.is_err(), script.bodies.contains(&Body::Panic));
        prop_assert_eq!(log.into_inner().unwrap(), expected_log(&script, reached(&script, false)));
        for (item, result) in results.iter().enumerate() {
            check_item(&script, item, result)?;
        }
    }

    #[test]
    fn concurrent_adapters_tell_each_release_its_outcome(
        script in scripts(),
        limit in 1usize..4,
        unordered in any::<bool>(),
    ) {
        let _watchdog = watchdog("concurrent_adapters_tell_each_release_its_outcome");
        let log = Log::default();
        let mut results = Vec::new();
        let run = catch_unwind(AssertUnwindSafe(|| block_on(async {
            let bracket = async_bracket(async |item: usize| {
                Yield(item % 3).await;
                Ok::<_, ()>(item)
            })
            .release_with(|item, outcome| {
                let released = release(&log, &script, item, outcome);
                async move {
                    Yield(item % 2).await;
                    released
                }
            });
            let body = async |item: &mut usize| {
                Yield(*item % 4).await;
                script.bodies[*item].run(*item)
            };
            let items = stream::iter(0..script.bodies.len());
            if unordered {
                let mut items = std::pin::pin!(items.try_map_scoped_unordered(limit, bracket, body));
                while let Some(result) = items.next().await {
                    results.push(result);
                }
            } else {
                let mut items = std::pin::pin!(items.try_map_scoped_concurrent(limit, bracket, body));
                while let Some(result) = items.next().await {
                    results.push(result);
                }
            }
        })));
        let log = sorted(log.into_inner().unwrap());
        if script.bodies.contains(&Body::Panic) {
            // Which items ran before the panic resumed depends on the interleaving;
            // every one of them was told its own outcome, or `Cancelled` (the
            // panic cancels the items in flight), and the panicking one
            // `Panicked`.
            prop_assert!(run.is_err());
            for (item, outcome) in &log {
                prop_assert!(
                    *outcome == script.bodies[*item].outcome() || *outcome == Outcome::Cancelled,
                    "item {} told {:?}", item, outcome
                );
            }
            prop_assert!(log.iter().any(|(_, outcome)| *outcome == Outcome::Panicked));
        } else {
            prop_assert!(run.is_ok());
            prop_assert_eq!(log, expected_log(&script, script.bodies.len()));
            prop_assert_eq!(results.len(), script.bodies.len());
            for result in &results {
                let item = match result {
                    Ok(value) => *value,
                    Err(error) => error.index(),
                };
                check_item(&script, item, result)?;
            }
        }
    }
}

/// A cancelled adapter cannot await a release; with `.spawn_on_cancel()`, the
/// spawned release is told `Cancelled` — here for each of the `limit` items in
/// flight.
#[cfg(feature = "tokio")]
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_spawned_release_is_told_cancelled() {
    let _watchdog = watchdog("a_spawned_release_is_told_cancelled");
    use std::sync::Arc;
    use std::time::Duration;

    let log = Arc::new(Log::default());
    let bracket = async_bracket(async |item: usize| Ok::<_, ()>(item))
        .release_with({
            let log = Arc::clone(&log);
            move |item, outcome| {
                let log = Arc::clone(&log);
                async move {
                    log.lock().unwrap().push((item, outcome));
                    Ok::<_, ()>(())
                }
            }
        })
        .spawn_on_cancel();
    let work = stream::iter(0..10).for_each_scoped_concurrent(3, bracket, async |item| {
        if *item >= 4 {
            std::future::pending::<()>().await; // stuck: the timeout cancels it
        }
        Ok::<_, ()>(())
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(1), work)
            .await
            .is_err()
    );
    // Let the spawned releases run.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let log = sorted(Arc::try_unwrap(log).unwrap().into_inner().unwrap());
    let completed = (0..4).map(|item| (item, Outcome::Completed));
    let cancelled = (4..7).map(|item| (item, Outcome::Cancelled));
    assert_eq!(log, completed.chain(cancelled).collect::<Vec<_>>());
}

/// A panic in a body still resumes after `release_with` was told `Panicked`.
#[test]
fn the_panic_resumes_after_the_release_is_told_panicked() {
    let _watchdog = watchdog("the_panic_resumes_after_the_release_is_told_panicked");
    let log = Log::default();
    let panic = catch_unwind(AssertUnwindSafe(|| {
        block_on(stream::iter([0usize]).for_each_scoped(
            async_bracket(async |item: usize| Ok::<_, ()>(item)).release_with(|item, outcome| {
                log.lock().unwrap().push((item, outcome));
                async { Ok::<_, ()>(()) }
            }),
            async |_item| -> Result<(), ()> { resume_unwind(Box::new("boom")) },
        ))
    }))
    .unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom"));
    assert_eq!(log.into_inner().unwrap(), [(0, Outcome::Panicked)]);
}
