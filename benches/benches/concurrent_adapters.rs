//! The concurrent stream adapters side by side with the hand-written futures
//! code they replace.
//!
//! The same design as `benches/benches/stream_adapters.rs`: every executor
//! workload is a trio of functions doing exactly the same work on the same
//! input — the same async acquire, body and release functions, the same
//! consumer — each trio one criterion group: `naive` (the futures-util
//! combinator with the body inline, awaiting `release(resource)` explicitly,
//! also when the body fails), `fair` (`loopscope_benches::fair`: the same
//! closures with the adapter's guarantees — the index and the same
//! `ScopedError`, the body under `catch_unwind` and the release awaited on
//! `Ok`, `Err` and panic; the items in flight cancelled at the first failure
//! (for-each) or panic (maps), as the adapters do; the for-each ones
//! fail-fast, keeping every error) and `adapter`. Every run handles 1,000 items with a
//! concurrency limit of 8; the adapters get
//! `async_bracket(acquire).release(release)`.
//!
//! On the executor alone (`futures::executor::block_on`, a trivial resource whose
//! `Drop` does a `black_box`ed write, a body doing a little arithmetic, so that
//! nothing hides the adapters' overhead):
//!
//! - `concurrent_try_map_sum`: `try_map_scoped_concurrent(8, ..)`, summed,
//!   against `stream.map(async |item| { acquire; body; release }).buffered(8)`.
//! - `unordered_try_map_sum`: `try_map_scoped_unordered(8, ..)` against the same
//!   with `.buffer_unordered(8)`.
//! - `spawned_for_each` (feature `tokio`): `for_each_scoped_spawned(8, ..)`
//!   against `JoinSet` + `Semaphore(8)` (naive: stop at the first error) and
//!   `fair::for_each_spawned`, on a current-thread runtime so that callgrind
//!   counts the tasks.
//! - `concurrent_for_each`: `for_each_scoped_concurrent(8, ..)` against
//!   `stream.map(Ok).try_for_each_concurrent(8, ..)`.
//! - `concurrent_for_each_draining`: the same, its fair baseline
//!   `fair::for_each_concurrent_draining` (DESIGN.md's, word for word: skip
//!   after the first error and drain, cancelling nothing).
//!
//! On I/O-bound items (a tokio multi-thread runtime with 2 workers; criterion
//! only, see below), `for_each_scoped_concurrent(8, ..)` driven by the runtime's
//! `block_on`, against a `JoinSet` and a `Semaphore` of 8 permits: for each item
//! a permit is acquired, then a task spawned that acquires, uses and releases the
//! resource and drops the permit.
//!
//! - `tokio_yield_for_each`: acquire, body and release each wait for the runtime
//!   (`tokio::task::yield_now`, 4 times per item in all), as a socket that is not
//!   ready yet would; the scheduling overhead dominates.
//! - `tokio_sleep_for_each`: the body sleeps `tokio::time::sleep(50 µs)` (the
//!   timer rounds it up to its 1 ms tick); the waiting dominates, as with a
//!   remote server.
//!
//! With the feature `tokio`, `for_each_scoped_spawned(8, ..)`, which runs each
//! item's scope as a `tokio::spawn`ed task of the caller's runtime, against the
//! same `JoinSet` + `Semaphore(8)` loop, with `for_each_scoped_concurrent(8, ..)`
//! (every item on the thread that polls it) for reference: one criterion group
//! per workload, with the functions `naive` (the `JoinSet`), `fair`
//! (`fair::for_each_spawned`), `adapter` (spawned) and `concurrent`, on
//! the first 400 items, on the same 2-worker runtime, all three driven by its
//! `block_on`.
//!
//! - `tokio_spawned_io_for_each`: the body sleeps 1 ms (`tokio::time::sleep`);
//!   acquire and release do not wait. I/O-bound: the tasks mostly wait.
//! - `tokio_spawned_cpu_for_each`: the body spins about 50 µs of arithmetic
//!   (`black_box`ed, never yielding). CPU-bound: the `JoinSet` and the spawned
//!   adapter can use both workers, `for_each_scoped_concurrent` one thread.
//!
//! The performance contract (DESIGN.md) asks for adapter / fair ≤ 1.05×,
//! and `for_each_scoped_concurrent` no slower than `JoinSet` + `Semaphore` on
//! I/O-bound items.
//!
//! ```text
//! cargo bench --features tokio --bench concurrent_adapters            # criterion
//! cargo bench --features tokio --bench concurrent_adapters -- tokio   # a filter
//! cargo bench --features tokio --bench concurrent_adapters -- spawned # spawned only
//! LOOPSCOPE_CALLGRIND_FEATURES=tokio \
//!     bash benches/callgrind.sh --bench concurrent_adapters           # instructions
//! ```
//!
//! # Instruction counting
//!
//! As in `benches/benches/stream_adapters.rs`: with `LOOPSCOPE_CALLGRIND=<workload>/<variant>`
//! the binary skips criterion, runs that one function once as an uncounted
//! warm-up, and then calls it `LOOPSCOPE_CALLGRIND_REPS` times (default 10)
//! inside [`callgrind_measured`](common::callgrind_measured), the only function
//! whose instructions `benches/callgrind.sh` has callgrind count.
//! `LOOPSCOPE_CALLGRIND=list` prints the executor workloads only. The tokio
//! workloads (`tokio_*`, the spawned ones included) are left out of this mode:
//! `JoinSet` runs the items on the runtime's worker threads, outside
//! `callgrind_measured`, so callgrind would not count them (the hand-written
//! variant would look almost free), and their timers and work stealing make the
//! counts vary from run to run; criterion's wall-clock time is the meaningful
//! measure for them.
//!
//! The harness and the trivial resource (with its async acquire, body and
//! release; the I/O-bound workloads use the same resource) are shared with the
//! other benches: they live in `benches/benches/common/mod.rs`.

mod common;

use std::cell::Cell;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::trivial::{Fail, Resource};
use common::{Fixture, Trio};
use criterion::Criterion;
use futures::executor::block_on;
use futures::stream::{self, StreamExt as _, TryStreamExt as _};
use loopscope::prelude::*;
use loopscope_benches::fair;

/// The concurrency limit of every workload.
const LIMIT: usize = 8;

/// The executor-only workloads: criterion and instruction counts. With the
/// feature `tokio`, also `spawned_for_each` (on a current-thread runtime, so
/// that callgrind counts the tasks too).
fn trios() -> Vec<Trio> {
    #[allow(unused_mut)] // pushed to with the feature `tokio`
    let mut trios = vec![
        Trio {
            name: "concurrent_try_map_sum",
            naive: trivial::try_map_sum_buffered,
            fair: Some(trivial::try_map_sum_fair),
            adapter: trivial::try_map_sum_adapter,
            files: false,
        },
        Trio {
            name: "unordered_try_map_sum",
            naive: trivial::try_map_sum_buffer_unordered,
            fair: Some(trivial::try_map_sum_unordered_fair),
            adapter: trivial::try_map_sum_unordered_adapter,
            files: false,
        },
        Trio {
            name: "concurrent_for_each",
            naive: trivial::for_each_try_for_each_concurrent,
            fair: Some(trivial::for_each_fair),
            adapter: trivial::for_each_adapter,
            files: false,
        },
        // The same adapter against DESIGN.md's fair baseline read word for
        // word: a draining `for_each_concurrent` that cancels nothing.
        Trio {
            name: "concurrent_for_each_draining",
            naive: trivial::for_each_try_for_each_concurrent,
            fair: Some(trivial::for_each_draining),
            adapter: trivial::for_each_adapter,
            files: false,
        },
    ];
    #[cfg(feature = "tokio")]
    trios.push(Trio {
        name: "spawned_for_each",
        naive: spawned_trivial::join_set,
        fair: Some(spawned_trivial::fair),
        adapter: spawned_trivial::adapter,
        files: false,
    });
    trios
}

/// One run of a tokio workload on the given runtime; returns a checksum.
type TokioWorkload = fn(&tokio::runtime::Runtime, &Fixture) -> u64;

/// A tokio workload: `JoinSet` + `Semaphore` and the adapter doing the same work.
struct TokioPair {
    name: &'static str,
    hand_written: TokioWorkload,
    adapter: TokioWorkload,
    /// Criterion's samples: the sleeping workload takes over 100 ms per run.
    sample_size: usize,
}

/// The I/O-bound workloads: criterion only (see the crate docs).
const TOKIO_PAIRS: &[TokioPair] = &[
    TokioPair {
        name: "tokio_yield_for_each",
        hand_written: io::join_set::<false>,
        adapter: io::adapter::<false>,
        sample_size: 30,
    },
    TokioPair {
        name: "tokio_sleep_for_each",
        hand_written: io::join_set::<true>,
        adapter: io::adapter::<true>,
        sample_size: 10,
    },
];

/// The trivial resource of `common::trivial`, with its async acquire, body and
/// release: the adapters' own overhead, with nothing to hide it.
mod trivial {
    use super::*;
    use common::trivial::{acquire, body, release};

    /// One item by hand: acquire, use, release (also when the body fails; the
    /// body's error first).
    #[inline]
    async fn scope(item: u64) -> Result<u64, Fail> {
        let mut resource = acquire(item).await?;
        let used = body(&mut resource).await;
        let released = release(resource).await;
        let value = used?;
        released?;
        Ok(value)
    }

    type Error = ScopedError<Fail, Fail, Fail>;

    pub fn try_map_sum_buffered(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(
                stream::iter(black_box(&fixture.items).iter().copied())
                    .map(async |item| scope(item).await)
                    .buffered(LIMIT)
            );
            let mut sum = 0;
            while let Some(value) = values.next().await {
                sum += value.expect("no item fails");
            }
            sum
        })
    }

    pub fn try_map_sum_fair(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(fair::try_map_concurrent(
                stream::iter(black_box(&fixture.items).iter().copied()),
                LIMIT,
                acquire,
                release,
                async |resource: &mut Resource| body(resource).await,
            ));
            let mut sum = 0;
            while let Some(value) = values.next().await {
                let value: Result<u64, Error> = value;
                sum += value.expect("no item fails");
            }
            sum
        })
    }

    pub fn try_map_sum_adapter(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(
                stream::iter(black_box(&fixture.items).iter().copied()).try_map_scoped_concurrent(
                    LIMIT,
                    async_bracket(acquire).release(release),
                    async |resource| body(resource).await,
                )
            );
            let mut sum = 0;
            while let Some(value) = values.next().await {
                let value: Result<u64, Error> = value;
                sum += value.expect("no item fails");
            }
            sum
        })
    }

    pub fn try_map_sum_buffer_unordered(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(
                stream::iter(black_box(&fixture.items).iter().copied())
                    .map(async |item| scope(item).await)
                    .buffer_unordered(LIMIT)
            );
            let mut sum = 0;
            while let Some(value) = values.next().await {
                sum += value.expect("no item fails");
            }
            sum
        })
    }

    pub fn try_map_sum_unordered_fair(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(fair::try_map_unordered(
                stream::iter(black_box(&fixture.items).iter().copied()),
                LIMIT,
                acquire,
                release,
                async |resource: &mut Resource| body(resource).await,
            ));
            let mut sum = 0;
            while let Some(value) = values.next().await {
                let value: Result<u64, Error> = value;
                sum += value.expect("no item fails");
            }
            sum
        })
    }

    pub fn try_map_sum_unordered_adapter(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(
                stream::iter(black_box(&fixture.items).iter().copied()).try_map_scoped_unordered(
                    LIMIT,
                    async_bracket(acquire).release(release),
                    async |resource| body(resource).await,
                )
            );
            let mut sum = 0;
            while let Some(value) = values.next().await {
                let value: Result<u64, Error> = value;
                sum += value.expect("no item fails");
            }
            sum
        })
    }

    pub fn for_each_try_for_each_concurrent(fixture: &Fixture) -> u64 {
        block_on(async {
            let sum = Cell::new(0);
            stream::iter(black_box(&fixture.items).iter().copied())
                .map(Ok::<u64, Fail>)
                .try_for_each_concurrent(LIMIT, async |item| {
                    let mut resource = acquire(item).await?;
                    let used = body(&mut resource)
                        .await
                        .map(|value| sum.set(sum.get() + value));
                    let released = release(resource).await;
                    used?;
                    released
                })
                .await
                .expect("no item fails");
            sum.get()
        })
    }

    pub fn for_each_fair(fixture: &Fixture) -> u64 {
        block_on(async {
            let sum = Cell::new(0);
            fair::for_each_concurrent(
                stream::iter(black_box(&fixture.items).iter().copied()),
                LIMIT,
                acquire,
                release,
                async |resource: &mut Resource| {
                    body(resource).await.map(|value| sum.set(sum.get() + value))
                },
            )
            .await
            .map_err(|error: fair::Failures<Error>| error)
            .expect("no item fails");
            sum.get()
        })
    }

    pub fn for_each_draining(fixture: &Fixture) -> u64 {
        block_on(async {
            let sum = Cell::new(0);
            fair::for_each_concurrent_draining(
                stream::iter(black_box(&fixture.items).iter().copied()),
                LIMIT,
                acquire,
                release,
                async |resource: &mut Resource| {
                    body(resource).await.map(|value| sum.set(sum.get() + value))
                },
            )
            .await
            .map_err(|error: fair::Failures<Error>| error)
            .expect("no item fails");
            sum.get()
        })
    }

    pub fn for_each_adapter(fixture: &Fixture) -> u64 {
        block_on(async {
            let sum = Cell::new(0);
            stream::iter(black_box(&fixture.items).iter().copied())
                .for_each_scoped_concurrent(
                    LIMIT,
                    async_bracket(acquire).release(release),
                    async |resource| body(resource).await.map(|value| sum.set(sum.get() + value)),
                )
                .await
                .map_err(|error: Failures<Error>| error)
                .expect("no item fails");
            sum.get()
        })
    }
}

/// I/O-bound items on a tokio runtime: each acquire, body and release waits for
/// the runtime, as a socket or a file would.
mod io {
    use tokio::sync::Semaphore;
    use tokio::task::JoinSet;

    use super::*;

    /// One wait for the runtime: a yield (`SLEEP = false`), or a 50 µs sleep.
    #[inline]
    async fn wait<const SLEEP: bool>() {
        if SLEEP {
            tokio::time::sleep(Duration::from_micros(50)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }

    async fn acquire<const SLEEP: bool>(item: u64) -> Result<Resource, Fail> {
        if item == u64::MAX {
            return Err(Fail);
        }
        if !SLEEP {
            wait::<false>().await;
        }
        Ok(Resource {
            key: item,
            acc: item.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        })
    }

    async fn body<const SLEEP: bool>(resource: &mut Resource) -> Result<u64, Fail> {
        if resource.key == u64::MAX - 1 {
            return Err(Fail);
        }
        wait::<SLEEP>().await;
        if !SLEEP {
            wait::<false>().await;
        }
        resource.acc = resource.acc.rotate_left(17) ^ resource.key;
        Ok(resource.acc >> 32)
    }

    async fn release<const SLEEP: bool>(resource: Resource) -> Result<(), Fail> {
        if resource.key == u64::MAX - 2 {
            return Err(Fail);
        }
        if !SLEEP {
            wait::<false>().await;
        }
        drop(resource);
        Ok(())
    }

    /// A multi-thread runtime with 2 workers and the timer.
    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("a tokio runtime")
    }

    pub fn join_set<const SLEEP: bool>(
        runtime: &tokio::runtime::Runtime,
        fixture: &Fixture,
    ) -> u64 {
        runtime.block_on(async {
            let sum = Arc::new(AtomicU64::new(0));
            let permits = Arc::new(Semaphore::new(LIMIT));
            let mut tasks = JoinSet::new();
            let mut first_error = None;
            for &item in black_box(&fixture.items) {
                let permit = Arc::clone(&permits)
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let sum = Arc::clone(&sum);
                tasks.spawn(async move {
                    let _permit = permit;
                    let mut resource = acquire::<SLEEP>(item).await?;
                    let used = body::<SLEEP>(&mut resource)
                        .await
                        .map(|value| sum.fetch_add(value, Ordering::Relaxed));
                    let released = release::<SLEEP>(resource).await;
                    used?;
                    released
                });
                // Reap the finished tasks, and stop at the first error.
                while let Some(finished) = tasks.try_join_next() {
                    if let Err(error) = finished.expect("no task panics") {
                        first_error.get_or_insert(error);
                    }
                }
                if first_error.is_some() {
                    break;
                }
            }
            while let Some(finished) = tasks.join_next().await {
                if let Err(error) = finished.expect("no task panics") {
                    first_error.get_or_insert(error);
                }
            }
            assert!(first_error.is_none(), "no item fails");
            sum.load(Ordering::Relaxed)
        })
    }

    pub fn adapter<const SLEEP: bool>(runtime: &tokio::runtime::Runtime, fixture: &Fixture) -> u64 {
        runtime.block_on(async {
            let sum = AtomicU64::new(0);
            let done: Result<(), Failures<ScopedError<Fail, Fail, Fail>>> =
                stream::iter(black_box(&fixture.items).iter().copied())
                    .for_each_scoped_concurrent(
                        LIMIT,
                        async_bracket(async |item| acquire::<SLEEP>(item).await)
                            .release(|resource| async move { release::<SLEEP>(resource).await }),
                        async |resource| {
                            body::<SLEEP>(resource)
                                .await
                                .map(|value| sum.fetch_add(value, Ordering::Relaxed))
                        },
                    )
                    .await;
            done.expect("no item fails");
            sum.load(Ordering::Relaxed)
        })
    }
}

/// Criterion over the tokio workloads.
fn tokio_benches(c: &mut Criterion, fixture: &Fixture) {
    let runtime = io::runtime();
    for pair in TOKIO_PAIRS {
        common::bench_pair(
            c,
            pair.name,
            pair.sample_size,
            Duration::from_secs(3),
            || (pair.hand_written)(&runtime, black_box(fixture)),
            || (pair.adapter)(&runtime, black_box(fixture)),
        );
    }
    #[cfg(feature = "tokio")]
    spawned_benches(c, &runtime, fixture);
    slow_head::bench(c, &runtime);
}

/// Input order with a slow head: 51 items, a limit of 2, item 0 taking 100 ms
/// and the others 1 ms (each a timer sleep in the body). `buffered(2)` holds a
/// slot for every finished result waiting behind item 0, so the other slot
/// alone works through the 50 quick items after item 0 ends (about 155 ms);
/// `try_map_scoped_concurrent(2, ..)` frees the slot of a finished item
/// (its resource is released), so it runs them meanwhile and takes about as
/// long as `try_map_scoped_unordered(2, ..)` (about 100 ms).
mod slow_head {
    use super::*;

    const ITEMS: u64 = 51;
    const LIMIT: usize = 2;

    async fn work(item: u64) -> u64 {
        let millis = if item == 0 { 100 } else { 1 };
        tokio::time::sleep(Duration::from_millis(millis)).await;
        item
    }

    fn buffered(runtime: &tokio::runtime::Runtime) -> u64 {
        runtime.block_on(async {
            stream::iter(0..ITEMS)
                .map(async |item| Ok::<_, ()>(work(item).await))
                .buffered(LIMIT)
                .fold(0, async |sum, value| sum + value.expect("no item fails"))
                .await
        })
    }

    fn concurrent(runtime: &tokio::runtime::Runtime) -> u64 {
        runtime.block_on(async {
            stream::iter(0..ITEMS)
                .try_map_scoped_concurrent(
                    LIMIT,
                    async |item: u64| Ok::<_, ()>(item),
                    async |item: &mut u64| Ok::<_, ()>(work(*item).await),
                )
                .fold(0, async |sum, value| sum + value.expect("no item fails"))
                .await
        })
    }

    fn unordered(runtime: &tokio::runtime::Runtime) -> u64 {
        runtime.block_on(async {
            stream::iter(0..ITEMS)
                .try_map_scoped_unordered(
                    LIMIT,
                    async |item: u64| Ok::<_, ()>(item),
                    async |item: &mut u64| Ok::<_, ()>(work(*item).await),
                )
                .fold(0, async |sum, value| sum + value.expect("no item fails"))
                .await
        })
    }

    pub fn bench(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
        let mut group = c.benchmark_group("tokio_slow_head_map");
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(3));
        type Run = fn(&tokio::runtime::Runtime) -> u64;
        let variants: [(&str, Run); 3] = [
            ("buffered", buffered),
            ("try_map_scoped_concurrent", concurrent),
            ("try_map_scoped_unordered", unordered),
        ];
        for (variant, run) in variants {
            group.bench_function(variant, |b| b.iter(|| run(runtime)));
        }
        group.finish();
    }
}

/// A spawned workload: `JoinSet` + `Semaphore`, `for_each_scoped_spawned` and
/// `for_each_scoped_concurrent` doing the same work on the first
/// [`spawned::ITEMS`] items.
#[cfg(feature = "tokio")]
struct SpawnedWorkload {
    name: &'static str,
    /// The naive baseline.
    join_set: TokioWorkload,
    /// The fair baseline: `fair::for_each_spawned`.
    fair: TokioWorkload,
    /// The adapter.
    spawned: TokioWorkload,
    concurrent: TokioWorkload,
    sample_size: usize,
    measurement_time: Duration,
}

/// The spawned workloads: criterion only, as the other tokio ones.
#[cfg(feature = "tokio")]
const SPAWNED_WORKLOADS: &[SpawnedWorkload] = &[
    SpawnedWorkload {
        name: "tokio_spawned_io_for_each",
        join_set: spawned::join_set::<false>,
        fair: spawned::fair::<false>,
        spawned: spawned::spawned::<false>,
        concurrent: spawned::concurrent::<false>,
        // About 50-100 ms per run: 400 items, 8 at a time, 1 ms (one timer
        // tick or two) each.
        sample_size: 10,
        measurement_time: Duration::from_secs(6),
    },
    SpawnedWorkload {
        name: "tokio_spawned_cpu_for_each",
        join_set: spawned::join_set::<true>,
        fair: spawned::fair::<true>,
        spawned: spawned::spawned::<true>,
        concurrent: spawned::concurrent::<true>,
        // About 10-20 ms per run: 400 items of 50 µs on one or two threads.
        sample_size: 20,
        measurement_time: Duration::from_secs(5),
    },
];

/// `for_each_scoped_spawned(8, ..)` against a hand-written `JoinSet` +
/// `Semaphore(8)` loop doing the same work, with `for_each_scoped_concurrent(8, ..)`
/// for reference, on I/O-bound (`CPU = false`: a 1 ms sleep) and CPU-bound
/// (`CPU = true`: about 50 µs of arithmetic) items. Each variant acquires the
/// same trivial resource, runs the same body and awaits the same async release.
#[cfg(feature = "tokio")]
mod spawned {
    use tokio::sync::Semaphore;
    use tokio::task::JoinSet;

    use super::*;

    /// Items per run: the first 400 of the fixture's.
    pub const ITEMS: usize = 400;

    /// Rounds of [`spin`] in a CPU-bound body: about 50 µs on the bench machine
    /// (2 cores, AMD EPYC).
    pub const SPIN_ROUNDS: u64 = 43_000;

    /// `rounds` of dependent arithmetic that the optimiser must keep.
    #[inline(never)]
    pub fn spin(seed: u64, rounds: u64) -> u64 {
        let mut x = seed;
        for round in 0..rounds {
            x = black_box(x.rotate_left(5) ^ round).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        x
    }

    fn items(fixture: &Fixture) -> &[u64] {
        &black_box(&fixture.items)[..ITEMS]
    }

    async fn acquire(item: u64) -> Result<Resource, Fail> {
        if item == u64::MAX {
            return Err(Fail);
        }
        Ok(Resource {
            key: item,
            acc: item.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        })
    }

    async fn body<const CPU: bool>(resource: &mut Resource) -> Result<u64, Fail> {
        if resource.key == u64::MAX - 1 {
            return Err(Fail);
        }
        if CPU {
            resource.acc = spin(resource.acc, SPIN_ROUNDS);
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        resource.acc = resource.acc.rotate_left(17) ^ resource.key;
        // Below 2^32: 400 of them add up without overflow.
        Ok(resource.acc >> 32)
    }

    async fn release(resource: Resource) -> Result<(), Fail> {
        if resource.key == u64::MAX - 2 {
            return Err(Fail);
        }
        drop(resource);
        Ok(())
    }

    /// For each item: a permit, then a task that acquires, uses and releases
    /// the resource (also when the body fails) and drops the permit; the
    /// finished tasks reaped as it goes, stopping at the first error.
    pub fn join_set<const CPU: bool>(runtime: &tokio::runtime::Runtime, fixture: &Fixture) -> u64 {
        runtime.block_on(async {
            let sum = Arc::new(AtomicU64::new(0));
            let permits = Arc::new(Semaphore::new(LIMIT));
            let mut tasks = JoinSet::new();
            let mut first_error = None;
            for &item in items(fixture) {
                let permit = Arc::clone(&permits)
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let sum = Arc::clone(&sum);
                tasks.spawn(async move {
                    let _permit = permit;
                    let mut resource = acquire(item).await?;
                    let used = body::<CPU>(&mut resource)
                        .await
                        .map(|value| sum.fetch_add(value, Ordering::Relaxed));
                    let released = release(resource).await;
                    used?;
                    released
                });
                while let Some(finished) = tasks.try_join_next() {
                    if let Err(error) = finished.expect("no task panics") {
                        first_error.get_or_insert(error);
                    }
                }
                if first_error.is_some() {
                    break;
                }
            }
            while let Some(finished) = tasks.join_next().await {
                if let Err(error) = finished.expect("no task panics") {
                    first_error.get_or_insert(error);
                }
            }
            assert!(first_error.is_none(), "no item fails");
            sum.load(Ordering::Relaxed)
        })
    }

    /// The fair baseline: `JoinSet` + `Semaphore(8)` with the adapter's
    /// guarantees (`fair::for_each_spawned`).
    pub fn fair<const CPU: bool>(runtime: &tokio::runtime::Runtime, fixture: &Fixture) -> u64 {
        runtime.block_on(async {
            let sum = Arc::new(AtomicU64::new(0));
            let total = Arc::clone(&sum);
            let done: Result<(), fair::Failures<ScopedError<Fail, Fail, Fail>>> =
                fair::for_each_spawned(
                    stream::iter(items(fixture).iter().copied()),
                    LIMIT,
                    acquire,
                    release,
                    async move |resource: &mut Resource| {
                        body::<CPU>(resource)
                            .await
                            .map(|value| total.fetch_add(value, Ordering::Relaxed))
                    },
                )
                .await;
            done.expect("no item fails");
            sum.load(Ordering::Relaxed)
        })
    }

    /// `for_each_scoped_spawned(8, ..)`: each item's scope a task of `runtime`.
    pub fn spawned<const CPU: bool>(runtime: &tokio::runtime::Runtime, fixture: &Fixture) -> u64 {
        runtime.block_on(async {
            let sum = Arc::new(AtomicU64::new(0));
            let total = Arc::clone(&sum);
            let done: Result<(), Failures<ScopedError<Fail, Fail, Fail>>> =
                stream::iter(items(fixture).iter().copied())
                    .for_each_scoped_spawned(
                        LIMIT,
                        async_bracket(acquire).release(release),
                        async move |resource: &mut Resource| {
                            body::<CPU>(resource)
                                .await
                                .map(|value| total.fetch_add(value, Ordering::Relaxed))
                        },
                    )
                    .await;
            done.expect("no item fails");
            sum.load(Ordering::Relaxed)
        })
    }

    /// `for_each_scoped_concurrent(8, ..)`: every item on the thread in
    /// `block_on`.
    pub fn concurrent<const CPU: bool>(
        runtime: &tokio::runtime::Runtime,
        fixture: &Fixture,
    ) -> u64 {
        runtime.block_on(async {
            let sum = AtomicU64::new(0);
            let done: Result<(), Failures<ScopedError<Fail, Fail, Fail>>> =
                stream::iter(items(fixture).iter().copied())
                    .for_each_scoped_concurrent(
                        LIMIT,
                        async_bracket(acquire).release(release),
                        async |resource| {
                            body::<CPU>(resource)
                                .await
                                .map(|value| sum.fetch_add(value, Ordering::Relaxed))
                        },
                    )
                    .await;
            done.expect("no item fails");
            sum.load(Ordering::Relaxed)
        })
    }
}

/// `spawned_for_each`: `for_each_scoped_spawned(8, ..)` on the trivial
/// resource, against `JoinSet` + `Semaphore(8)` (naive: stop at the first
/// error) and `fair::for_each_spawned`, on a current-thread runtime (one per
/// thread, built by the uncounted warm-up), so that the tasks run inside
/// `callgrind_measured` and callgrind counts them.
#[cfg(feature = "tokio")]
mod spawned_trivial {
    use tokio::sync::Semaphore;
    use tokio::task::JoinSet;

    use super::*;
    use common::trivial::{acquire, body, release};

    type Error = ScopedError<Fail, Fail, Fail>;

    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime");
    }

    pub fn join_set(fixture: &Fixture) -> u64 {
        RUNTIME.with(|runtime| {
            runtime.block_on(async {
                let sum = Arc::new(AtomicU64::new(0));
                let permits = Arc::new(Semaphore::new(LIMIT));
                let mut tasks = JoinSet::new();
                let mut first_error = None;
                for &item in black_box(&fixture.items) {
                    let permit = Arc::clone(&permits)
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    let sum = Arc::clone(&sum);
                    tasks.spawn(async move {
                        let _permit = permit;
                        let mut resource = acquire(item).await?;
                        let used = body(&mut resource)
                            .await
                            .map(|value| sum.fetch_add(value, Ordering::Relaxed));
                        let released = release(resource).await;
                        used?;
                        released
                    });
                    while let Some(finished) = tasks.try_join_next() {
                        if let Err(error) = finished.expect("no task panics") {
                            first_error.get_or_insert(error);
                        }
                    }
                    if first_error.is_some() {
                        break;
                    }
                }
                while let Some(finished) = tasks.join_next().await {
                    if let Err(error) = finished.expect("no task panics") {
                        first_error.get_or_insert(error);
                    }
                }
                assert!(first_error.is_none(), "no item fails");
                sum.load(Ordering::Relaxed)
            })
        })
    }

    pub fn fair(fixture: &Fixture) -> u64 {
        RUNTIME.with(|runtime| {
            runtime.block_on(async {
                let sum = Arc::new(AtomicU64::new(0));
                let total = Arc::clone(&sum);
                let done: Result<(), fair::Failures<Error>> = fair::for_each_spawned(
                    stream::iter(black_box(&fixture.items).iter().copied()),
                    LIMIT,
                    acquire,
                    release,
                    async move |resource: &mut Resource| {
                        body(resource)
                            .await
                            .map(|value| total.fetch_add(value, Ordering::Relaxed))
                    },
                )
                .await;
                done.expect("no item fails");
                sum.load(Ordering::Relaxed)
            })
        })
    }

    pub fn adapter(fixture: &Fixture) -> u64 {
        RUNTIME.with(|runtime| {
            runtime.block_on(async {
                let sum = Arc::new(AtomicU64::new(0));
                let total = Arc::clone(&sum);
                let done: Result<(), Failures<Error>> =
                    stream::iter(black_box(&fixture.items).iter().copied())
                        .for_each_scoped_spawned(
                            LIMIT,
                            async_bracket(acquire).release(release),
                            async move |resource: &mut Resource| {
                                body(resource)
                                    .await
                                    .map(|value| total.fetch_add(value, Ordering::Relaxed))
                            },
                        )
                        .await;
                done.expect("no item fails");
                sum.load(Ordering::Relaxed)
            })
        })
    }
}

/// Criterion over the spawned workloads: one group each, with the functions
/// `join_set`, `spawned` and `concurrent`, after checking that they agree.
#[cfg(feature = "tokio")]
fn spawned_benches(c: &mut Criterion, runtime: &tokio::runtime::Runtime, fixture: &Fixture) {
    for workload in SPAWNED_WORKLOADS {
        // naive: `JoinSet` + `Semaphore`; fair: the same with the adapter's
        // guarantees; adapter: `for_each_scoped_spawned`; concurrent:
        // `for_each_scoped_concurrent`, for reference.
        let variants: [(&str, TokioWorkload); 4] = [
            ("naive", workload.join_set),
            ("fair", workload.fair),
            ("adapter", workload.spawned),
            ("concurrent", workload.concurrent),
        ];
        let expected = (workload.join_set)(runtime, fixture);
        for (variant, run) in variants {
            assert_eq!(
                run(runtime, fixture),
                expected,
                "{}: {variant} disagrees with the naive JoinSet",
                workload.name
            );
        }
        let mut group = c.benchmark_group(workload.name);
        group.throughput(criterion::Throughput::Elements(spawned::ITEMS as u64));
        group
            .warm_up_time(Duration::from_secs(1))
            .sample_size(workload.sample_size)
            .measurement_time(workload.measurement_time);
        for (variant, run) in variants {
            group.bench_function(variant, |b| b.iter(|| run(runtime, black_box(fixture))));
        }
        group.finish();
    }
}

fn main() {
    if let Some(spec) = common::callgrind_spec() {
        let name = spec.split_once('/').map_or(spec.as_str(), |(name, _)| name);
        #[cfg(feature = "tokio")]
        let spawned = SPAWNED_WORKLOADS
            .iter()
            .any(|workload| workload.name == name);
        #[cfg(not(feature = "tokio"))]
        let spawned = false;
        if spawned || TOKIO_PAIRS.iter().any(|pair| pair.name == name) {
            panic!(
                "{name}: the tokio workloads are measured by criterion only (see the crate docs)"
            );
        }
    }
    common::main(&trios(), tokio_benches);
    #[cfg(feature = "tokio")]
    if let Ok(rounds) = std::env::var("LOOPSCOPE_INTERLEAVE") {
        spawned_interleaved(
            rounds
                .parse()
                .expect("LOOPSCOPE_INTERLEAVE: a number of rounds"),
        );
    }
}

/// `LOOPSCOPE_INTERLEAVE=<rounds>` for the spawned workloads, which criterion
/// alone measures one variant after the other: each round runs every variant
/// once, in an order that rotates from round to round, on the same 2-worker
/// runtime; prints the median of each in µs per run of [`spawned::ITEMS`]
/// items, the adapter against the fair baseline and against the `JoinSet`.
#[cfg(feature = "tokio")]
fn spawned_interleaved(rounds: usize) {
    let only = std::env::var("LOOPSCOPE_ONLY").unwrap_or_default();
    let runtime = io::runtime();
    let fixture = Fixture::new(false).expect("the fixture");
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>10} {:>10}   (µs per run of {} items, medians of {rounds} interleaved rounds)",
        "workload",
        "join_set",
        "fair",
        "adapter",
        "/fair",
        "/join_set",
        spawned::ITEMS
    );
    for workload in SPAWNED_WORKLOADS
        .iter()
        .filter(|workload| workload.name.contains(only.as_str()))
    {
        let variants: [TokioWorkload; 3] = [workload.join_set, workload.fair, workload.spawned];
        let expected = (workload.join_set)(&runtime, &fixture);
        let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
        for round in 0..rounds {
            for k in 0..variants.len() {
                let v = (round + k) % variants.len();
                let start = std::time::Instant::now();
                assert_eq!(variants[v](&runtime, black_box(&fixture)), expected);
                samples[v].push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
        let [join_set, fair, adapter] = [0, 1, 2].map(|v| common::median(&mut samples[v]));
        println!(
            "{:<32} {join_set:>10.0} {fair:>10.0} {adapter:>10.0} {:>10.3} {:>10.3}",
            workload.name,
            adapter / fair,
            adapter / join_set,
        );
    }
}
