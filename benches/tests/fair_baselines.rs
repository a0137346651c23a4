//! The fair baselines (`loopscope_benches::fair`) keep the guarantees they are
//! measured for, so that they cannot quietly do less than the adapters: each
//! releases every acquired resource exactly once on `Ok`, on an acquire, body
//! or release error and on a panic (resumed only after the release), wraps
//! every error with its item's index, and the fail-fast concurrent ones stop
//! acquiring after the first failure and keep every error. The concurrent
//! ones cancel their siblings as the adapters do: at the first failure (a
//! panic, for the maps) an item stuck in its acquire or its body is dropped
//! there and released, and no item acquires after it.
//!
//! Plain counters: an acquire, a body and a release that log what they do,
//! with failures, panics and steps that never finish planned per item. Every
//! run has a timeout, so that a baseline that does not cancel a stuck item
//! fails its test instead of hanging the suite.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt as _};
use loopscope::ScopedError;
use loopscope_benches::fair;

/// What happened, per item.
#[derive(Debug, Default)]
struct Log {
    acquired: Vec<usize>,
    /// Async releases (`release` called).
    released: Vec<usize>,
    /// Resources dropped (after an async release too).
    dropped: Vec<usize>,
    /// How many items had acquired when the first planned failure (an
    /// acquire's or a body's error, or a body's panic) happened.
    acquired_at_failure: Option<usize>,
}

impl Log {
    /// Notes that a planned failure happens now.
    fn failing(&mut self) {
        let acquired = self.acquired.len();
        self.acquired_at_failure.get_or_insert(acquired);
    }
}

/// The failures, panics and stuck steps to inject, by item.
#[derive(Debug, Default, Clone)]
struct Plan {
    fail_acquire: Vec<usize>,
    fail_body: Vec<usize>,
    panic_body: Vec<usize>,
    fail_release: Vec<usize>,
    /// Acquires that never finish.
    stuck_acquire: Vec<usize>,
    /// Bodies that never finish.
    stuck_body: Vec<usize>,
    /// Whether each body (and each release) yields to the runtime first, so
    /// that the concurrent items interleave.
    yields: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fail(&'static str, usize);

type Error = ScopedError<Fail, Fail, Fail>;
type DropError = ScopedError<Fail, Fail, std::convert::Infallible>;

struct Res {
    item: usize,
    log: Arc<Mutex<Log>>,
}

impl Drop for Res {
    fn drop(&mut self) {
        self.log.lock().unwrap().dropped.push(self.item);
    }
}

#[derive(Clone)]
struct Kit {
    log: Arc<Mutex<Log>>,
    plan: Arc<Plan>,
}

impl Kit {
    fn new(plan: Plan) -> Self {
        Self {
            log: Arc::default(),
            plan: Arc::new(plan),
        }
    }

    async fn acquire(&self, item: usize) -> Result<Res, Fail> {
        if self.plan.stuck_acquire.contains(&item) {
            std::future::pending::<()>().await;
        }
        if self.plan.fail_acquire.contains(&item) {
            self.log.lock().unwrap().failing();
            return Err(Fail("acquire", item));
        }
        self.log.lock().unwrap().acquired.push(item);
        Ok(Res {
            item,
            log: Arc::clone(&self.log),
        })
    }

    async fn body(&self, res: &mut Res) -> Result<usize, Fail> {
        if self.plan.yields {
            tokio::task::yield_now().await;
        }
        if self.plan.stuck_body.contains(&res.item) {
            std::future::pending::<()>().await;
        }
        if self.plan.panic_body.contains(&res.item) {
            self.log.lock().unwrap().failing();
            panic!("planned panic of item {}", res.item);
        }
        if self.plan.fail_body.contains(&res.item) {
            self.log.lock().unwrap().failing();
            return Err(Fail("body", res.item));
        }
        Ok(res.item * 10)
    }

    async fn release(&self, res: Res) -> Result<(), Fail> {
        if self.plan.yields {
            tokio::task::yield_now().await;
        }
        let item = res.item;
        self.log.lock().unwrap().released.push(item);
        drop(res);
        if self.plan.fail_release.contains(&item) {
            return Err(Fail("release", item));
        }
        Ok(())
    }

    fn acquired(&self) -> Vec<usize> {
        let mut acquired = self.log.lock().unwrap().acquired.clone();
        acquired.sort_unstable();
        acquired
    }

    /// No item acquired after the first planned failure, which cancelled the
    /// others (one thread: the log is in the order things happened).
    #[track_caller]
    fn assert_nothing_acquired_after_the_failure(&self) {
        let log = self.log.lock().unwrap();
        let at_failure = log.acquired_at_failure.expect("a planned failure happened");
        assert_eq!(
            log.acquired[..],
            log.acquired[..at_failure],
            "acquired after the failure: {:?}",
            &log.acquired[at_failure..]
        );
    }

    /// Every acquired resource released (by `release` if `async_release`,
    /// always dropped) exactly once; returns the acquired items.
    #[track_caller]
    fn assert_released_once(&self, async_release: bool) -> Vec<usize> {
        let log = self.log.lock().unwrap();
        let mut acquired = log.acquired.clone();
        acquired.sort_unstable();
        let mut dropped = log.dropped.clone();
        dropped.sort_unstable();
        assert_eq!(dropped, acquired, "each acquired resource dropped once");
        if async_release {
            let mut released = log.released.clone();
            released.sort_unstable();
            assert_eq!(released, acquired, "each acquired resource released once");
        }
        acquired
    }
}

/// Far longer than any run takes: a run that takes longer hangs.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `future` on a one-thread runtime, failing (with a panic) if it takes
/// longer than [`TIMEOUT`] rather than hanging the test suite.
fn run<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        // The timer is made inside the runtime.
        .block_on(async { tokio::time::timeout(TIMEOUT, future).await })
        .expect("the run hung: a stuck item was not cancelled")
}

/// Runs `f`, which must panic with the planned panic; returns nothing.
#[track_caller]
fn assert_panics<T>(f: impl FnOnce() -> T) {
    let Err(payload) = catch_unwind(AssertUnwindSafe(f)) else {
        panic!("the planned panic did not resume");
    };
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(message.starts_with("planned panic"), "{message}");
}

const ITEMS: usize = 6;

fn items() -> impl futures::Stream<Item = usize> {
    stream::iter(0..ITEMS)
}

// ---------------------------------------------------------------------------
// Sequential, released by `Drop`.

/// `for_each_scoped` and `try_fold_scoped` (the fold's sum is checked on Ok).
fn drop_loops(plan: Plan) -> [(Kit, Result<(), DropError>); 2] {
    let for_each = {
        let kit = Kit::new(plan.clone());
        let k = &kit;
        let result = run(fair::for_each_scoped(
            items(),
            async |item| k.acquire(item).await,
            async |res: &mut Res| k.body(res).await,
        ));
        (kit, result)
    };
    let fold = {
        let kit = Kit::new(plan);
        let k = &kit;
        let result = run(fair::try_fold_scoped(
            items(),
            0,
            async |item| k.acquire(item).await,
            async |sum, res: &mut Res| Ok::<_, Fail>(sum + k.body(res).await?),
        ))
        .map(|sum| assert_eq!(sum, (0..ITEMS).map(|i| i * 10).sum::<usize>()));
        (kit, result)
    };
    [for_each, fold]
}

#[test]
fn drop_loops_release_on_ok() {
    for (kit, result) in drop_loops(Plan::default()) {
        result.unwrap();
        assert_eq!(
            kit.assert_released_once(false),
            (0..ITEMS).collect::<Vec<_>>()
        );
    }
}

#[test]
fn drop_loops_wrap_errors_with_the_index() {
    for (kit, result) in drop_loops(Plan {
        fail_acquire: vec![3],
        ..Plan::default()
    }) {
        assert_eq!(
            result,
            Err(ScopedError::Acquire {
                index: 3,
                source: Fail("acquire", 3)
            })
        );
        assert_eq!(kit.assert_released_once(false), [0, 1, 2]);
    }
    for (kit, result) in drop_loops(Plan {
        fail_body: vec![2],
        ..Plan::default()
    }) {
        assert_eq!(
            result,
            Err(ScopedError::Use {
                index: 2,
                source: Fail("body", 2),
                release: None
            })
        );
        assert_eq!(kit.assert_released_once(false), [0, 1, 2]);
    }
}

#[test]
fn drop_loops_release_on_panic() {
    let plan = Plan {
        panic_body: vec![2],
        ..Plan::default()
    };
    let kit = Kit::new(plan.clone());
    let k = &kit;
    assert_panics(|| {
        run(fair::for_each_scoped(
            items(),
            async |item| k.acquire(item).await,
            async |res: &mut Res| k.body(res).await,
        ))
        .unwrap();
    });
    assert_eq!(kit.assert_released_once(false), [0, 1, 2]);
}

#[test]
fn drop_map_yields_one_result_per_item() {
    let kit = Kit::new(Plan {
        fail_acquire: vec![1],
        fail_body: vec![4],
        ..Plan::default()
    });
    let k = &kit;
    let results: Vec<Result<usize, DropError>> = run(fair::try_map_scoped(
        items(),
        async |item| k.acquire(item).await,
        async |res: &mut Res| k.body(res).await,
    )
    .collect());
    assert_eq!(
        results,
        [
            Ok(0),
            Err(ScopedError::Acquire {
                index: 1,
                source: Fail("acquire", 1)
            }),
            Ok(20),
            Ok(30),
            Err(ScopedError::Use {
                index: 4,
                source: Fail("body", 4),
                release: None
            }),
            Ok(50),
        ]
    );
    assert_eq!(kit.assert_released_once(false), [0, 2, 3, 4, 5]);
}

// ---------------------------------------------------------------------------
// Sequential, with an async release.

/// The three sequential bracket baselines, as one `Result<(), Error>` each:
/// for-each, fold, and the map collected up to its first error.
fn bracket_loops(plan: Plan) -> [(Kit, Result<(), Error>); 3] {
    let for_each = {
        let kit = Kit::new(plan.clone());
        let k = &kit;
        let result = run(fair::bracket_for_each_scoped(
            items(),
            async |item| k.acquire(item).await,
            async |res| k.release(res).await,
            async |res: &mut Res| k.body(res).await,
        ));
        (kit, result)
    };
    let fold = {
        let kit = Kit::new(plan.clone());
        let k = &kit;
        let result = run(fair::bracket_try_fold_scoped(
            items(),
            0,
            async |item| k.acquire(item).await,
            async |res| k.release(res).await,
            async |sum, res: &mut Res| Ok::<_, Fail>(sum + k.body(res).await?),
        ))
        .map(|sum| assert_eq!(sum, (0..ITEMS).map(|i| i * 10).sum::<usize>()));
        (kit, result)
    };
    let map = {
        let kit = Kit::new(plan);
        let k = &kit;
        let result = run(async {
            let mut values = std::pin::pin!(fair::bracket_try_map_scoped(
                items(),
                async |item| k.acquire(item).await,
                async |res| k.release(res).await,
                async |res: &mut Res| k.body(res).await,
            ));
            let mut index = 0;
            while let Some(value) = values.next().await {
                assert_eq!(value?, index * 10);
                index += 1;
            }
            Ok(())
        });
        (kit, result)
    };
    [for_each, fold, map]
}

#[test]
fn bracket_loops_release_on_ok() {
    for (kit, result) in bracket_loops(Plan::default()) {
        result.unwrap();
        assert_eq!(
            kit.assert_released_once(true),
            (0..ITEMS).collect::<Vec<_>>()
        );
    }
}

#[test]
fn bracket_loops_release_on_every_error() {
    let cases: [(Plan, Error, &[usize]); 4] = [
        (
            Plan {
                fail_acquire: vec![3],
                ..Plan::default()
            },
            ScopedError::Acquire {
                index: 3,
                source: Fail("acquire", 3),
            },
            &[0, 1, 2],
        ),
        (
            Plan {
                fail_body: vec![2],
                ..Plan::default()
            },
            ScopedError::Use {
                index: 2,
                source: Fail("body", 2),
                release: None,
            },
            &[0, 1, 2],
        ),
        (
            Plan {
                fail_release: vec![1],
                ..Plan::default()
            },
            ScopedError::Release {
                index: 1,
                source: Fail("release", 1),
            },
            &[0, 1],
        ),
        (
            Plan {
                fail_body: vec![4],
                fail_release: vec![4],
                ..Plan::default()
            },
            ScopedError::Use {
                index: 4,
                source: Fail("body", 4),
                release: Some(Fail("release", 4)),
            },
            &[0, 1, 2, 3, 4],
        ),
    ];
    for (plan, expected, acquired) in cases {
        for (kit, result) in bracket_loops(plan.clone()) {
            assert_eq!(result, Err(expected.clone()), "{plan:?}");
            assert_eq!(kit.assert_released_once(true), acquired, "{plan:?}");
        }
    }
}

#[test]
fn bracket_loops_release_before_a_panic_resumes() {
    let plan = Plan {
        panic_body: vec![2],
        yields: true,
        ..Plan::default()
    };
    let kit = Kit::new(plan.clone());
    let k = &kit;
    assert_panics(|| {
        run(fair::bracket_for_each_scoped(
            items(),
            async |item| k.acquire(item).await,
            async |res| k.release(res).await,
            async |res: &mut Res| k.body(res).await,
        ))
        .unwrap();
    });
    assert_eq!(kit.assert_released_once(true), [0, 1, 2]);

    let kit = Kit::new(plan.clone());
    let k = &kit;
    assert_panics(|| {
        run(fair::bracket_try_fold_scoped(
            items(),
            0,
            async |item| k.acquire(item).await,
            async |res| k.release(res).await,
            async |sum, res: &mut Res| Ok::<_, Fail>(sum + k.body(res).await?),
        ))
        .unwrap();
    });
    assert_eq!(kit.assert_released_once(true), [0, 1, 2]);

    let kit = Kit::new(plan);
    let k = &kit;
    assert_panics(|| {
        run(fair::bracket_try_map_scoped(
            items(),
            async |item| k.acquire(item).await,
            async |res| k.release(res).await,
            async |res: &mut Res| k.body(res).await,
        )
        .for_each(async |value: Result<usize, Error>| {
            value.unwrap();
        }));
    });
    assert_eq!(kit.assert_released_once(true), [0, 1, 2]);
}

// ---------------------------------------------------------------------------
// Concurrent maps: one `Result` per item, draining on a panic.

const LIMIT: usize = 3;
const MANY: usize = 20;

fn concurrent_maps(plan: Plan) -> [(Kit, Vec<Result<usize, Error>>); 2] {
    let ordered = {
        let kit = Kit::new(plan.clone());
        let k = &kit;
        let results = run(fair::try_map_concurrent(
            stream::iter(0..MANY),
            LIMIT,
            async |item| k.acquire(item).await,
            async |res| k.release(res).await,
            async |res: &mut Res| k.body(res).await,
        )
        .collect());
        (kit, results)
    };
    let unordered = {
        let kit = Kit::new(plan);
        let k = &kit;
        let mut results: Vec<Result<usize, Error>> = run(fair::try_map_unordered(
            stream::iter(0..MANY),
            LIMIT,
            async |item| k.acquire(item).await,
            async |res| k.release(res).await,
            async |res: &mut Res| k.body(res).await,
        )
        .collect());
        results.sort_by_key(|result| match result {
            Ok(value) => value / 10,
            Err(error) => error.index(),
        });
        (kit, results)
    };
    [ordered, unordered]
}

#[test]
fn concurrent_maps_release_and_index_every_result() {
    let plan = Plan {
        fail_acquire: vec![1],
        fail_body: vec![5, 9],
        fail_release: vec![9, 12],
        yields: true,
        ..Plan::default()
    };
    for (kit, results) in concurrent_maps(plan) {
        assert_eq!(results.len(), MANY);
        for (index, result) in results.into_iter().enumerate() {
            let expected = match index {
                1 => Err(ScopedError::Acquire {
                    index,
                    source: Fail("acquire", 1),
                }),
                5 => Err(ScopedError::Use {
                    index,
                    source: Fail("body", 5),
                    release: None,
                }),
                9 => Err(ScopedError::Use {
                    index,
                    source: Fail("body", 9),
                    release: Some(Fail("release", 9)),
                }),
                12 => Err(ScopedError::Release {
                    index,
                    source: Fail("release", 12),
                }),
                _ => Ok(index * 10),
            };
            assert_eq!(result, expected);
        }
        let all_but_1: Vec<_> = (0..MANY).filter(|&i| i != 1).collect();
        assert_eq!(kit.assert_released_once(true), all_but_1);
    }
}

/// Sums the values of a concurrent map baseline (`try_map_unordered` or
/// `try_map_concurrent`) over `MANY` items, each an error-free `Ok`.
fn sum_a_map(kit: &Kit, unordered: bool) -> usize {
    let acquire = async |item| kit.acquire(item).await;
    let release = async |res| kit.release(res).await;
    let body = async |res: &mut Res| kit.body(res).await;
    let sum = async |sum: usize, value: Result<usize, Error>| sum + value.unwrap();
    if unordered {
        run(
            fair::try_map_unordered(stream::iter(0..MANY), LIMIT, acquire, release, body)
                .fold(0, sum),
        )
    } else {
        run(
            fair::try_map_concurrent(stream::iter(0..MANY), LIMIT, acquire, release, body)
                .fold(0, sum),
        )
    }
}

#[test]
fn concurrent_maps_drain_then_resume_a_panic() {
    let plan = Plan {
        panic_body: vec![4],
        yields: true,
        ..Plan::default()
    };
    let run_map = |unordered: bool| {
        let kit = Kit::new(plan.clone());
        let k = &kit;
        assert_panics(|| sum_a_map(k, unordered));
        // Every resource in flight released before the panic resumed; nothing
        // acquired after it but what was already started.
        let acquired = kit.assert_released_once(true);
        assert!(acquired.contains(&4));
        assert!(
            acquired.iter().all(|&item| item < 4 + LIMIT),
            "{acquired:?}"
        );
    };
    run_map(false);
    run_map(true);
}

// ---------------------------------------------------------------------------
// Concurrent and spawned for-each: fail-fast, quiescent, every error kept.

type ForEach = fn(&Kit) -> Result<(), fair::Failures<Error>>;

fn concurrent_for_each(kit: &Kit) -> Result<(), fair::Failures<Error>> {
    run(fair::for_each_concurrent(
        stream::iter(0..MANY),
        LIMIT,
        async |item| kit.acquire(item).await,
        async |res| kit.release(res).await,
        async |res: &mut Res| kit.body(res).await,
    ))
}

/// DESIGN.md's draining baseline: fail-fast and quiescent, but it cancels
/// nothing, so only the tests that do not stick a sibling run it.
fn draining_for_each(kit: &Kit) -> Result<(), fair::Failures<Error>> {
    run(fair::for_each_concurrent_draining(
        stream::iter(0..MANY),
        LIMIT,
        async |item| kit.acquire(item).await,
        async |res| kit.release(res).await,
        async |res: &mut Res| kit.body(res).await,
    ))
}

#[cfg(feature = "tokio")]
fn spawned_for_each(kit: &Kit) -> Result<(), fair::Failures<Error>> {
    let (a, r, b) = (kit.clone(), kit.clone(), kit.clone());
    // One thread: the tasks interleave the same way every run.
    run(fair::for_each_spawned(
        stream::iter(0..MANY),
        LIMIT,
        move |item| {
            let kit = a.clone();
            async move { kit.acquire(item).await }
        },
        move |res| {
            let kit = r.clone();
            async move { kit.release(res).await }
        },
        async move |res: &mut Res| b.body(res).await,
    ))
}

fn for_eachs() -> Vec<(&'static str, ForEach)> {
    #[allow(unused_mut)] // pushed to with the feature `tokio`
    let mut all: Vec<(&'static str, ForEach)> = vec![("concurrent", concurrent_for_each)];
    #[cfg(feature = "tokio")]
    all.push(("spawned", spawned_for_each));
    all
}

/// The for-each baselines above, and the draining one.
fn for_eachs_and_draining() -> Vec<(&'static str, ForEach)> {
    let mut all = for_eachs();
    all.push(("draining", draining_for_each));
    all
}

#[test]
fn for_each_concurrent_releases_on_ok() {
    for (name, for_each) in for_eachs_and_draining() {
        let kit = Kit::new(Plan {
            yields: true,
            ..Plan::default()
        });
        for_each(&kit).unwrap();
        assert_eq!(
            kit.assert_released_once(true),
            (0..MANY).collect::<Vec<_>>(),
            "{name}"
        );
    }
}

#[test]
fn for_each_concurrent_stops_acquiring_after_the_first_failure() {
    let cases: [(Plan, Error); 3] = [
        (
            Plan {
                fail_acquire: vec![4],
                yields: true,
                ..Plan::default()
            },
            ScopedError::Acquire {
                index: 4,
                source: Fail("acquire", 4),
            },
        ),
        (
            Plan {
                fail_body: vec![4],
                yields: true,
                ..Plan::default()
            },
            ScopedError::Use {
                index: 4,
                source: Fail("body", 4),
                release: None,
            },
        ),
        (
            Plan {
                fail_release: vec![4],
                yields: true,
                ..Plan::default()
            },
            ScopedError::Release {
                index: 4,
                source: Fail("release", 4),
            },
        ),
    ];
    for (name, for_each) in for_eachs_and_draining() {
        for (plan, expected) in &cases {
            let kit = Kit::new(plan.clone());
            let failures = for_each(&kit).unwrap_err();
            assert_eq!(failures.first, *expected, "{name}: {plan:?}");
            assert!(failures.others.is_empty(), "{name}: {failures:?}");
            let acquired = kit.assert_released_once(true);
            // Items after the failing one start only while it is in flight
            // (its release, for a failed release): a few, never all.
            assert!(
                acquired.iter().all(|&item| item < 4 + 2 * LIMIT),
                "{name}: {plan:?}: acquired {acquired:?}"
            );
        }
    }
}

#[test]
fn for_each_concurrent_keeps_every_error() {
    for (name, for_each) in for_eachs_and_draining() {
        // Items 0 and 1 are in flight together, and both bodies fail; item 2's
        // release fails too.
        let kit = Kit::new(Plan {
            fail_body: vec![0, 1],
            fail_release: vec![1, 2],
            yields: true,
            ..Plan::default()
        });
        let failures = for_each(&kit).unwrap_err();
        let mut errors: Vec<Error> = failures.iter().cloned().collect();
        errors.sort_by_key(ScopedError::index);
        assert_eq!(
            errors,
            [
                ScopedError::Use {
                    index: 0,
                    source: Fail("body", 0),
                    release: None
                },
                ScopedError::Use {
                    index: 1,
                    source: Fail("body", 1),
                    release: Some(Fail("release", 1))
                },
                ScopedError::Release {
                    index: 2,
                    source: Fail("release", 2)
                },
            ],
            "{name}"
        );
        let acquired = kit.assert_released_once(true);
        if name == "draining" {
            // Nothing cancelled: the items started with the first ones
            // acquire, succeed and are released.
            assert!(acquired.starts_with(&[0, 1, 2]), "{name}: {acquired:?}");
        } else {
            assert_eq!(acquired, [0, 1, 2], "{name}");
        }
    }
}

#[test]
fn for_each_concurrent_releases_before_a_panic_resumes() {
    for (name, for_each) in for_eachs_and_draining() {
        let kit = Kit::new(Plan {
            panic_body: vec![4],
            yields: true,
            ..Plan::default()
        });
        assert_panics(|| drop(for_each(&kit)));
        let acquired = kit.assert_released_once(true);
        assert!(acquired.contains(&4), "{name}");
        assert!(
            acquired.iter().all(|&item| item < 4 + 2 * LIMIT),
            "{name}: {acquired:?}"
        );
        assert_eq!(kit.acquired(), acquired);
    }
}

// ---------------------------------------------------------------------------
// Cancellation: the first failure (a panic, for the maps) cancels a sibling
// stuck in its body or its acquire. Without the cancellation these runs never
// end, and fail at their timeout.

#[test]
fn for_each_concurrent_cancels_a_stuck_body() {
    for (name, for_each) in for_eachs() {
        for release_fails in [false, true] {
            // Item 0's body never finishes; item 1's fails.
            let kit = Kit::new(Plan {
                stuck_body: vec![0],
                fail_body: vec![1],
                fail_release: if release_fails { vec![0] } else { vec![] },
                yields: true,
                ..Plan::default()
            });
            let failures = for_each(&kit).unwrap_err();
            assert_eq!(
                failures.first,
                ScopedError::Use {
                    index: 1,
                    source: Fail("body", 1),
                    release: None
                },
                "{name}"
            );
            // Item 0, cancelled and released, is among the failures when its
            // release failed (as in loopscope's `Failures`, a cancelled item
            // whose release succeeded is no failure).
            let cancelled: &[Error] = if release_fails {
                &[ScopedError::Cancelled {
                    index: 0,
                    release: Some(Fail("release", 0)),
                }]
            } else {
                &[]
            };
            assert_eq!(failures.others, cancelled, "{name}");
            let acquired = kit.assert_released_once(true);
            assert!(acquired.contains(&0), "{name}: {acquired:?}");
            kit.assert_nothing_acquired_after_the_failure();
        }
    }
}

#[test]
fn for_each_concurrent_cancels_a_stuck_acquire() {
    for (name, for_each) in for_eachs() {
        // Item 0's acquire never finishes; item 1's body fails.
        let kit = Kit::new(Plan {
            stuck_acquire: vec![0],
            fail_body: vec![1],
            yields: true,
            ..Plan::default()
        });
        let failures = for_each(&kit).unwrap_err();
        assert_eq!(
            failures.first,
            ScopedError::Use {
                index: 1,
                source: Fail("body", 1),
                release: None
            },
            "{name}"
        );
        // Cancelled while acquiring: nothing acquired, nothing released, no
        // failure.
        assert!(failures.others.is_empty(), "{name}: {failures:?}");
        let acquired = kit.assert_released_once(true);
        assert!(!acquired.contains(&0), "{name}: {acquired:?}");
        kit.assert_nothing_acquired_after_the_failure();
    }
}

#[test]
fn concurrent_maps_cancel_a_stuck_body_on_a_panic() {
    for unordered in [false, true] {
        // Item 0's body never finishes; item 1's panics.
        let kit = Kit::new(Plan {
            stuck_body: vec![0],
            panic_body: vec![1],
            yields: true,
            ..Plan::default()
        });
        let k = &kit;
        // Item 0, cancelled, yields nothing: it is not an `Err`.
        assert_panics(|| sum_a_map(k, unordered));
        let acquired = kit.assert_released_once(true);
        assert!(acquired.contains(&0), "unordered {unordered}: {acquired:?}");
        kit.assert_nothing_acquired_after_the_failure();
    }
}

#[test]
fn concurrent_baselines_acquire_nothing_after_the_cancellation() {
    // Item 4 fails (panics, for the maps); the stream goes on, so that many
    // items start after the cancellation: none of them acquires.
    for (name, for_each) in for_eachs() {
        let kit = Kit::new(Plan {
            fail_body: vec![4],
            yields: true,
            ..Plan::default()
        });
        for_each(&kit).unwrap_err();
        kit.assert_released_once(true);
        kit.assert_nothing_acquired_after_the_failure();
        assert!(kit.acquired().len() < MANY, "{name}");
    }
    for unordered in [false, true] {
        let kit = Kit::new(Plan {
            panic_body: vec![4],
            yields: true,
            ..Plan::default()
        });
        let k = &kit;
        assert_panics(|| {
            let acquire = async |item| k.acquire(item).await;
            let release = async |res| k.release(res).await;
            let body = async |res: &mut Res| k.body(res).await;
            let count = async |count: usize, _: Result<usize, Error>| count + 1;
            if unordered {
                run(
                    fair::try_map_unordered(stream::iter(0..MANY), LIMIT, acquire, release, body)
                        .fold(0, count),
                );
            } else {
                run(
                    fair::try_map_concurrent(stream::iter(0..MANY), LIMIT, acquire, release, body)
                        .fold(0, count),
                );
            }
        });
        kit.assert_released_once(true);
        kit.assert_nothing_acquired_after_the_failure();
        assert!(kit.acquired().len() < MANY, "unordered {unordered}");
    }
}
