//! No heap allocation per item (DESIGN.md, "Performance contract").
//!
//! A counting global allocator wraps [`System`] and counts, per thread, every
//! `alloc`, `alloc_zeroed` and `realloc`. Each test builds its input first, then
//! counts the allocations made by the current thread while one adapter runs over
//! 10 items and while it runs over 1,000, and asserts the two counts are equal:
//! a constant setup cost per call (the executor's waker, say) is allowed, an
//! allocation per item is not. The sync adapters must not allocate at all.
//!
//! The counter is thread-local, so the other tests that the harness runs at the
//! same time, on other threads, do not disturb the counts.

#[path = "common/watchdog.rs"]
mod watchdog;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::hint::black_box;

use loopscope::prelude::*;
// Only the async tests, behind `stream`, have a time limit.
#[cfg(feature = "stream")]
use watchdog::watchdog;

struct CountingAllocator;

thread_local! {
    /// Allocations made by this thread so far. A `const`-initialised `Cell`
    /// without a destructor: reading it never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the allocator may run while the thread is being torn down.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every call is forwarded unchanged to `System`; the counting touches
// only a thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The allocations the current thread makes while `run` runs.
fn allocations_during<R>(run: impl FnOnce() -> R) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    black_box(run());
    ALLOCATIONS.with(Cell::get) - before
}

/// Runs `run` on 10 items and on 1,000 (after one uncounted warm-up run), and
/// returns the allocations of both; asserts they are equal, so that no
/// allocation happens per item. `run` gets the pre-built items and returns a
/// checksum, checked against `expected`.
fn assert_no_allocation_per_item(
    name: &str,
    run: impl Fn(&[u64]) -> u64,
    expected: impl Fn(&[u64]) -> u64,
) -> u64 {
    let few: Vec<u64> = (0..10).collect();
    let many: Vec<u64> = (0..1_000).collect();
    let (want_few, want_many) = (expected(&few), expected(&many));
    // Warm-up: lazy one-time initialisation (thread-locals of the executor).
    assert_eq!(run(&few), want_few, "{name}: wrong result");

    let mut result = 0;
    let with_few = allocations_during(|| result = run(&few));
    assert_eq!(result, want_few, "{name}: wrong result on 10 items");
    let with_many = allocations_during(|| result = run(&many));
    assert_eq!(result, want_many, "{name}: wrong result on 1,000 items");
    assert_eq!(
        with_few, with_many,
        "{name}: {with_few} allocations on 10 items, {with_many} on 1,000: \
         allocation per item"
    );
    with_many
}

/// A resource that owns nothing on the heap.
struct Resource {
    key: u64,
    acc: u64,
}

impl Drop for Resource {
    fn drop(&mut self) {
        black_box(self.acc ^ self.key);
    }
}

fn acquire(item: u64) -> Result<Resource, Infallible> {
    Ok(Resource {
        key: item,
        acc: item.wrapping_mul(3),
    })
}

fn body(resource: &mut Resource) -> Result<u64, Infallible> {
    resource.acc = resource.acc.wrapping_add(resource.key);
    Ok(resource.acc)
}

fn release(resource: Resource) -> Result<(), Infallible> {
    drop(resource);
    Ok(())
}

/// What `body` returns for every item, summed: `3 * item + item`.
fn expected_sum(items: &[u64]) -> u64 {
    items.iter().map(|item| 4 * item).sum()
}

#[test]
fn the_counter_sees_this_threads_allocations() {
    let count = allocations_during(|| black_box(vec![1u8; 64]));
    assert!(count >= 1, "the counting allocator is not in use");
}

/// The check itself: a body that boxes each item is caught.
#[test]
#[should_panic(expected = "allocation per item")]
fn an_allocation_per_item_is_detected() {
    let run = |items: &[u64]| {
        let mut sum = 0;
        items
            .iter()
            .copied()
            .for_each_scoped(acquire, |resource| {
                body(resource).map(|value| sum += *black_box(Box::new(value)))
            })
            .expect("no item fails");
        sum
    };
    assert_no_allocation_per_item("boxing body", run, expected_sum);
}

#[test]
fn sync_for_each_scoped_does_not_allocate() {
    let run = |items: &[u64]| {
        let mut sum = 0;
        items
            .iter()
            .copied()
            .for_each_scoped(acquire, |resource| body(resource).map(|value| sum += value))
            .expect("no item fails");
        sum
    };
    let count = assert_no_allocation_per_item("sync for_each_scoped", run, expected_sum);
    assert_eq!(count, 0, "sync for_each_scoped allocated");

    let run_bracket = |items: &[u64]| {
        let mut sum = 0;
        items
            .iter()
            .copied()
            .for_each_scoped(bracket(acquire).release(release), |resource| {
                body(resource).map(|value| sum += value)
            })
            .expect("no item fails");
        sum
    };
    let count =
        assert_no_allocation_per_item("sync for_each_scoped, bracket", run_bracket, expected_sum);
    assert_eq!(count, 0, "sync for_each_scoped with a bracket allocated");
}

#[test]
fn sync_try_map_scoped_does_not_allocate() {
    let run = |items: &[u64]| {
        items
            .iter()
            .copied()
            .try_map_scoped(acquire, body)
            .map(|result| result.expect("no item fails"))
            .sum()
    };
    let count = assert_no_allocation_per_item("sync try_map_scoped", run, expected_sum);
    assert_eq!(count, 0, "sync try_map_scoped allocated");

    let run_bracket = |items: &[u64]| {
        items
            .iter()
            .copied()
            .try_map_scoped(bracket(acquire).release(release), body)
            .map(|result| result.expect("no item fails"))
            .sum()
    };
    let count =
        assert_no_allocation_per_item("sync try_map_scoped, bracket", run_bracket, expected_sum);
    assert_eq!(count, 0, "sync try_map_scoped with a bracket allocated");
}

#[cfg(feature = "stream")]
mod stream {
    use std::pin::pin;

    use std::sync::atomic::{AtomicU64, Ordering};

    use futures::executor::block_on;
    use futures::stream::{self, StreamExt as _};

    use super::*;

    async fn acquire_async(item: u64) -> Result<Resource, Infallible> {
        acquire(item)
    }

    #[test]
    fn stream_for_each_scoped_does_not_allocate_per_item() {
        let _watchdog = watchdog("stream_for_each_scoped_does_not_allocate_per_item");
        let run = |items: &[u64]| {
            block_on(async {
                // A body may not mutate what it captures: it adds to an atomic.
                let sum = AtomicU64::new(0);
                stream::iter(items.iter().copied())
                    .for_each_scoped(
                        async |item| acquire_async(item).await,
                        async |resource| {
                            body(resource).map(|value| sum.fetch_add(value, Ordering::Relaxed))
                        },
                    )
                    .await
                    .expect("no item fails");
                sum.into_inner()
            })
        };
        assert_no_allocation_per_item("stream for_each_scoped", run, expected_sum);

        let run_fold = |items: &[u64]| {
            block_on(stream::iter(items.iter().copied()).try_fold_scoped(
                0,
                async |item| acquire_async(item).await,
                async |sum, resource| body(resource).map(|value| sum + value),
            ))
            .expect("no item fails")
        };
        assert_no_allocation_per_item("stream try_fold_scoped", run_fold, expected_sum);

        let run_bracket = |items: &[u64]| {
            block_on(async {
                let sum = AtomicU64::new(0);
                stream::iter(items.iter().copied())
                    .for_each_scoped(
                        async_bracket(async |item| acquire_async(item).await)
                            .release(|resource| async move { release(resource) }),
                        async |resource| {
                            body(resource).map(|value| sum.fetch_add(value, Ordering::Relaxed))
                        },
                    )
                    .await
                    .expect("no item fails");
                sum.into_inner()
            })
        };
        assert_no_allocation_per_item(
            "stream for_each_scoped, async_bracket",
            run_bracket,
            expected_sum,
        );
    }

    #[test]
    fn stream_try_map_scoped_does_not_allocate_per_item() {
        let _watchdog = watchdog("stream_try_map_scoped_does_not_allocate_per_item");
        let run = |items: &[u64]| {
            block_on(async {
                let mut results = pin!(stream::iter(items.iter().copied()).try_map_scoped(
                    async |item| acquire_async(item).await,
                    async |resource| { body(resource) }
                ));
                let mut sum = 0;
                while let Some(result) = results.next().await {
                    sum += result.expect("no item fails");
                }
                sum
            })
        };
        assert_no_allocation_per_item("stream try_map_scoped", run, expected_sum);

        let run_bracket = |items: &[u64]| {
            block_on(async {
                let mut results = pin!(
                    stream::iter(items.iter().copied()).try_map_scoped(
                        async_bracket(async |item| acquire_async(item).await)
                            .release(|resource| async move { release(resource) }),
                        async |resource| body(resource),
                    )
                );
                let mut sum = 0;
                while let Some(result) = results.next().await {
                    sum += result.expect("no item fails");
                }
                sum
            })
        };
        assert_no_allocation_per_item(
            "stream try_map_scoped, async_bracket",
            run_bracket,
            expected_sum,
        );
    }
    /// The allocations of `run` on 10 items and on 1,000 (after one uncounted
    /// warm-up run), checking its result against [`expected_sum`].
    fn allocations_on_few_and_many(name: &str, run: impl Fn(&[u64]) -> u64) -> (u64, u64) {
        let few: Vec<u64> = (0..10).collect();
        let many: Vec<u64> = (0..1_000).collect();
        assert_eq!(run(&few), expected_sum(&few), "{name}: wrong result");
        let mut result = 0;
        let with_few = allocations_during(|| result = run(&few));
        assert_eq!(
            result,
            expected_sum(&few),
            "{name}: wrong result on 10 items"
        );
        let with_many = allocations_during(|| result = run(&many));
        assert_eq!(
            result,
            expected_sum(&many),
            "{name}: wrong result on 1,000 items"
        );
        (with_few, with_many)
    }

    /// The concurrent paths may allocate per item (`FuturesOrdered` boxes each
    /// future in flight in a task node), but no more than `buffered` doing the
    /// same work (DESIGN.md, "Performance contract").
    #[test]
    fn try_map_scoped_concurrent_allocates_no_more_per_item_than_buffered() {
        let _watchdog =
            watchdog("try_map_scoped_concurrent_allocates_no_more_per_item_than_buffered");
        const LIMIT: usize = 8;
        let buffered = |items: &[u64]| {
            block_on(async {
                let mut results = pin!(
                    stream::iter(items.iter().copied())
                        .map(async |item| {
                            let mut resource = acquire_async(item).await?;
                            let used = body(&mut resource);
                            let released = release(resource);
                            let value = used?;
                            released?;
                            Ok::<_, Infallible>(value)
                        })
                        .buffered(LIMIT)
                );
                let mut sum = 0;
                while let Some(result) = results.next().await {
                    sum += result.expect("no item fails");
                }
                sum
            })
        };
        let adapter = |items: &[u64]| {
            block_on(async {
                let mut results = pin!(
                    stream::iter(items.iter().copied()).try_map_scoped_concurrent(
                        LIMIT,
                        async_bracket(async |item| acquire_async(item).await)
                            .release(|resource| async move { release(resource) }),
                        async |resource| body(resource),
                    )
                );
                let mut sum = 0;
                while let Some(result) = results.next().await {
                    sum += result.expect("no item fails");
                }
                sum
            })
        };
        let (buffered_few, buffered_many) = allocations_on_few_and_many("buffered", buffered);
        let (adapter_few, adapter_many) =
            allocations_on_few_and_many("try_map_scoped_concurrent", adapter);
        // Per item: the difference between 1,000 items and 10, over 990 items.
        let per_item = |few: u64, many: u64| (many as f64 - few as f64) / 990.0;
        let (buffered_per_item, adapter_per_item) = (
            per_item(buffered_few, buffered_many),
            per_item(adapter_few, adapter_many),
        );
        println!(
            "allocations on 10 / 1,000 items (per item): \
             buffered({LIMIT}) {buffered_few} / {buffered_many} ({buffered_per_item:.3}), \
             try_map_scoped_concurrent({LIMIT}) {adapter_few} / {adapter_many} \
             ({adapter_per_item:.3})"
        );
        assert!(
            adapter_many - adapter_few.min(adapter_many)
                <= buffered_many - buffered_few.min(buffered_many),
            "try_map_scoped_concurrent allocates {adapter_per_item:.3} times per item, \
             buffered {buffered_per_item:.3} ({adapter_few} / {adapter_many} against \
             {buffered_few} / {buffered_many} on 10 / 1,000 items)"
        );
    }
}
