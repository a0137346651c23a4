#![cfg(feature = "tokio")]
//! Release deadlines (`release_timeout`): a release that does not finish in
//! time is abandoned — its future dropped, and the resource with it — reported
//! as `ReleaseTimeoutError::TimedOut` at the item's index, and its slot under
//! the limit is free for the next item.
//!
//! Runs on tokio's current-thread runtime with paused time, so "slow" is
//! virtual and the tests are deterministic and fast.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/watchdog.rs"]
mod watchdog;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::stream::{self, StreamExt as _};
use loopscope::ReleaseTimeoutError;
use loopscope::prelude::*;
use proptest::prelude::*;
use tokio::time::{Instant, sleep};
use watchdog::watchdog;

const DEADLINE: Duration = Duration::from_millis(100);

/// Counts live resources and their peak.
#[derive(Default)]
struct Live {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// A resource that counts itself live until dropped.
struct Resource {
    item: usize,
    live: Arc<Live>,
}

impl Resource {
    fn new(item: usize, live: &Arc<Live>) -> Self {
        let now = live.now.fetch_add(1, Ordering::SeqCst) + 1;
        live.peak.fetch_max(now, Ordering::SeqCst);
        Self {
            item,
            live: Arc::clone(live),
        }
    }
}

impl Drop for Resource {
    fn drop(&mut self) {
        self.live.now.fetch_sub(1, Ordering::SeqCst);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("build a runtime")
}

/// Release times that are clearly inside or clearly past the deadline (no ties,
/// which the timer could resolve either way); `None` never finishes.
fn release_times() -> impl Strategy<Value = Vec<Option<u64>>> {
    prop::collection::vec(
        prop_oneof![
            3 => (0u64..90).prop_map(Some),
            2 => (110u64..400).prop_map(Some),
            1 => Just(None),
        ],
        1..16,
    )
}

fn in_time(release: Option<u64>) -> bool {
    release.is_some_and(|ms| ms < 100)
}

proptest! {
    #![proptest_config(cases::config(128))]

    /// Every item whose release overruns gets `TimedOut` at its own index, the
    /// others their own result; every resource is dropped by the end; the peak
    /// stays within the limit.
    #[test]
    fn an_overrunning_release_times_out_at_its_index(
        releases in release_times(),
        limit in 1usize..4,
        fail_in_time in prop::collection::vec(any::<bool>(), 16),
    ) {
        let _watchdog = watchdog("an_overrunning_release_times_out_at_its_index");
        let live = Arc::new(Live::default());
        let results: Vec<_> = runtime().block_on(async {
            let bracket = async_bracket(async |item: usize| Ok::<_, String>(Resource::new(item, &live)))
                .release(|resource: Resource| {
                    let release = releases[resource.item];
                    let fails = fail_in_time[resource.item];
                    async move {
                        match release {
                            Some(ms) => sleep(Duration::from_millis(ms)).await,
                            None => std::future::pending().await,
                        }
                        let item = resource.item;
                        drop(resource);
                        if fails { Err(format!("close {item}")) } else { Ok(()) }
                    }
                })
                .release_timeout(DEADLINE);
            stream::iter(0..releases.len())
                .try_map_scoped_concurrent(limit, bracket, async |resource| Ok::<_, String>(resource.item))
                .collect()
                .await
        });
        prop_assert_eq!(live.now.load(Ordering::SeqCst), 0, "a resource outlived the run");
        prop_assert!(live.peak.load(Ordering::SeqCst) <= limit);
        prop_assert_eq!(results.len(), releases.len());
        for (item, result) in results.into_iter().enumerate() {
            match result {
                Ok(value) => prop_assert!(value == item && in_time(releases[item]) && !fail_in_time[item]),
                Err(ScopedError::Release { index, source: ReleaseTimeoutError::TimedOut { after } }) => {
                    prop_assert!(index == item && !in_time(releases[item]) && after == DEADLINE);
                }
                Err(ScopedError::Release { index, source: ReleaseTimeoutError::Failed(error) }) => {
                    prop_assert!(index == item && in_time(releases[item]) && fail_in_time[item]);
                    prop_assert_eq!(error, format!("close {item}"));
                }
                Err(other) => prop_assert!(false, "item {item}: unexpected {other:?}"),
            }
        }
    }
}

/// With a limit of 1, an item whose release never finishes would hold the one
/// slot for ever; with a deadline, the next item starts once it passes.
#[test]
fn a_stuck_release_frees_its_slot_at_the_deadline() {
    let _watchdog = watchdog("a_stuck_release_frees_its_slot_at_the_deadline");
    runtime().block_on(async {
        let started = Instant::now();
        let starts = std::sync::Mutex::new(Vec::new());
        let result = stream::iter(0..3)
            .for_each_scoped_concurrent(
                1,
                async_bracket(async |item: usize| {
                    starts.lock().unwrap().push((item, started.elapsed()));
                    Ok::<_, ()>(item)
                })
                .release(async |item: usize| {
                    if item == 0 {
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, ()>(())
                })
                .release_timeout(DEADLINE),
                async |_item| Ok::<_, ()>(()),
            )
            .await;
        let error = result.unwrap_err().into_first();
        assert_eq!(error.index(), 0);
        assert!(matches!(
            error.release_error(),
            Some(ReleaseTimeoutError::TimedOut { .. })
        ));
        // Fail-fast: item 1 was not started, and the run ended at the deadline.
        assert_eq!(*starts.lock().unwrap(), [(0, Duration::ZERO)]);
        assert_eq!(started.elapsed(), DEADLINE);
    });
    // Not fail-fast: the items after the stuck one run once the slot is free.
    runtime().block_on(async {
        let started = Instant::now();
        let finished: Vec<_> = stream::iter(0..3)
            .try_map_scoped_concurrent(
                1,
                async_bracket(async |item: usize| Ok::<_, ()>(item))
                    .release(async |item: usize| {
                        if item == 0 {
                            std::future::pending::<()>().await;
                        }
                        Ok::<_, ()>(())
                    })
                    .release_timeout(DEADLINE),
                async |item| Ok::<_, ()>((*item, started.elapsed())),
            )
            .collect()
            .await;
        assert!(finished[0].is_err());
        assert_eq!(finished[1].as_ref().ok(), Some(&(1, DEADLINE)));
        assert_eq!(finished[2].as_ref().ok(), Some(&(2, DEADLINE)));
    });
}

/// The deadline composes with `spawn_on_cancel`: the release spawned for a
/// cancelled item is abandoned at the deadline too, and drops the resource.
#[test]
fn a_spawned_release_has_the_deadline_too() {
    let _watchdog = watchdog("a_spawned_release_has_the_deadline_too");
    let live = Arc::new(Live::default());
    runtime().block_on(async {
        let work = stream::iter(0..2).for_each_scoped(
            async_bracket(async |item: usize| Ok::<_, ()>(Resource::new(item, &live)))
                .release(async |resource: Resource| {
                    std::future::pending::<()>().await; // never finishes
                    drop(resource);
                    Ok::<_, ()>(())
                })
                .release_timeout(DEADLINE)
                .spawn_on_cancel(),
            async |_resource| {
                std::future::pending::<()>().await; // cancelled mid-body
                Ok::<_, ()>(())
            },
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(10), work)
                .await
                .is_err()
        );
        // The spawned release holds the resource until its deadline...
        assert_eq!(live.now.load(Ordering::SeqCst), 1);
        sleep(DEADLINE).await;
        tokio::task::yield_now().await;
        // ...and then drops it.
        assert_eq!(live.now.load(Ordering::SeqCst), 0);
    });
}

/// `?` in an `io::Result` function: a stuck release is `ErrorKind::TimedOut`.
#[test]
fn a_timed_out_release_is_an_io_timed_out() {
    let _watchdog = watchdog("a_timed_out_release_is_an_io_timed_out");
    use std::io;

    async fn run() -> io::Result<()> {
        stream::iter([0])
            .for_each_scoped(
                async_bracket(async |item: u32| Ok::<_, io::Error>(item))
                    .release(async |_item: u32| std::future::pending::<io::Result<()>>().await)
                    .release_timeout(DEADLINE),
                async |_item| Ok::<_, io::Error>(()),
            )
            .await?;
        Ok(())
    }
    let error = runtime().block_on(run()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    assert!(error.to_string().contains("item 0"), "{error}");
}
