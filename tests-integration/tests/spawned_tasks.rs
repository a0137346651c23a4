#![cfg(feature = "tokio")]
//! The spawned adapters run each item as a task of the caller's tokio runtime,
//! not on a thread of their own (issue: "spawned adapters are not tasks"):
//!
//! - 100 spawned adapters running at once add no OS thread to the process;
//! - on a multi-thread runtime, the items of one adapter run in parallel;
//! - when the runtime is dropped, every resource its tasks held has been
//!   released (by `Drop`) before `drop(runtime)` returns;
//! - under tokio's paused clock, a release deadline does not fire while the
//!   release makes progress.
//!
//! The thread count and the runtime drop are checked in a child process (this
//! test binary run again with one test selected), so that the threads and
//! resources of the other tests cannot blur the count.

#[path = "common/watchdog.rs"]
mod watchdog;

use std::convert::Infallible;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use futures::stream;
use loopscope::prelude::*;
use watchdog::watchdog;

/// Names the scenario a child process runs.
const SCENARIO: &str = "LOOPSCOPE_SPAWNED_SCENARIO";

/// Runs `scenario` in a child process — this test binary, running only the
/// test `child` — and returns what it printed, after checking that it passed.
fn run_child(scenario: &str) -> String {
    let output = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, scenario)
        .output()
        .expect("the child process runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "scenario {scenario} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The entry point of the child processes; does nothing in the parent's run.
#[test]
fn child() {
    let _watchdog = watchdog("child");
    match std::env::var(SCENARIO).as_deref() {
        Ok("threads") => threads_scenario(),
        Ok("runtime_drop_current_thread") => runtime_drop_scenario(false),
        Ok("runtime_drop_multi_thread") => runtime_drop_scenario(true),
        Ok(other) => panic!("unknown scenario {other}"),
        Err(_) => {}
    }
}

/// A multi-thread runtime with two workers, as the machine has two cores.
fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

#[cfg(target_os = "linux")]
fn threads_of_the_process() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("procfs")
        .count()
}

#[cfg(target_os = "linux")]
fn threads_scenario() {
    const ADAPTERS: usize = 100;
    let runtime = two_workers();
    let running = Arc::new(AtomicUsize::new(0));
    let (before, during) = runtime.block_on(async {
        // The runtime's workers are all up once a task has run on each.
        tokio::task::yield_now().await;
        let before = threads_of_the_process();
        let adapters: Vec<_> = (0..ADAPTERS)
            .map(|_| {
                let running = Arc::clone(&running);
                tokio::spawn(stream::iter(0..4).for_each_scoped_spawned(
                    2,
                    async |item: u32| Ok::<_, Infallible>(item),
                    async move |_item| {
                        running.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(())
                    },
                ))
            })
            .collect();
        // Wait until every adapter has its items running, then count.
        while running.load(Ordering::SeqCst) < ADAPTERS * 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let during = threads_of_the_process();
        for adapter in adapters {
            adapter.await.expect("no panic").expect("no error");
        }
        (before, during)
    });
    println!("threads before={before} during={during}");
    assert_eq!(
        during, before,
        "spawned adapters started threads of their own"
    );
}

#[cfg(not(target_os = "linux"))]
fn threads_scenario() {
    println!("threads before=0 during=0");
}

/// A resource whose `Drop` is counted in a process-wide counter.
struct Connection;

static LIVE: AtomicUsize = AtomicUsize::new(0);

impl Drop for Connection {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn runtime_drop_scenario(multi_thread: bool) {
    let runtime = if multi_thread {
        two_workers()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    };
    // As `#[tokio::main]` does when `main` returns while a spawned task runs
    // an adapter whose bodies never end.
    runtime.block_on(async {
        tokio::spawn(stream::iter(0..10).for_each_scoped_spawned(
            4,
            async |_: u32| {
                LIVE.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(Connection)
            },
            async |_connection| {
                std::future::pending::<()>().await;
                Ok::<_, Infallible>(())
            },
        ));
        while LIVE.load(Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let held = LIVE.load(Ordering::SeqCst);
    drop(runtime);
    let after = LIVE.load(Ordering::SeqCst);
    println!("held={held} after_drop={after}");
    assert_eq!((held, after), (4, 0));
}

#[test]
fn spawned_adapters_add_no_threads() {
    let printed = run_child("threads");
    assert!(printed.contains("threads before="), "{printed}");
}

#[test]
fn dropping_a_current_thread_runtime_releases_every_resource() {
    let printed = run_child("runtime_drop_current_thread");
    assert!(printed.contains("held=4 after_drop=0"), "{printed}");
}

#[test]
fn dropping_a_multi_thread_runtime_releases_every_resource() {
    let printed = run_child("runtime_drop_multi_thread");
    assert!(printed.contains("held=4 after_drop=0"), "{printed}");
}

/// Two bodies meet at a rendezvous that each waits for with a blocking wait: it
/// is reached only if two of them run at the same moment on two threads, which
/// one thread per adapter can never do.
#[test]
fn the_items_of_one_adapter_run_in_parallel() {
    let _watchdog = watchdog("the_items_of_one_adapter_run_in_parallel");
    let runtime = two_workers();
    let rendezvous = Arc::new((Mutex::new(0_usize), Condvar::new()));
    let met = Arc::new(AtomicUsize::new(0));
    let body = {
        let (rendezvous, met) = (Arc::clone(&rendezvous), Arc::clone(&met));
        async move |_item: &mut u32| {
            let (arrived, all_here) = &*rendezvous;
            let mut arrived = arrived.lock().unwrap();
            *arrived += 1;
            all_here.notify_all();
            // A blocking wait, as CPU-bound work blocks its worker.
            let (arrived, _) = all_here
                .wait_timeout_while(arrived, Duration::from_secs(5), |n| *n < 2)
                .unwrap();
            if *arrived >= 2 {
                met.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<_, Infallible>(())
        }
    };
    runtime
        .block_on(stream::iter(0..2).for_each_scoped_spawned(
            2,
            async |item: u32| Ok::<_, Infallible>(item),
            body,
        ))
        .expect("no error");
    assert_eq!(
        met.load(Ordering::SeqCst),
        2,
        "the two bodies never ran at once"
    );
}

/// Under the paused clock, the runtime advances time only when it is idle: a
/// release that only yields is progress the runtime sees, so its deadline does
/// not fire (before, the items ran on a thread the runtime did not see, and the
/// clock jumped to the deadline at once).
#[tokio::test(start_paused = true)]
async fn a_release_deadline_waits_for_a_yielding_release_under_the_paused_clock() {
    let _watchdog =
        watchdog("a_release_deadline_waits_for_a_yielding_release_under_the_paused_clock");
    let acquire = async_bracket(async |item: u32| Ok::<_, Infallible>(item))
        .release(|_item| async {
            // 20 ms of real work in small steps, each a point where the
            // runtime may look at its clock.
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(1));
                tokio::task::yield_now().await;
            }
            Ok::<_, Infallible>(())
        })
        .release_timeout(Duration::from_secs(1));
    let results: Vec<_> = futures::StreamExt::collect(stream::iter(0..8).try_map_scoped_spawned(
        4,
        acquire,
        async |item| Ok::<_, Infallible>(*item),
    ))
    .await;
    let values: Vec<u32> = results
        .into_iter()
        .map(|result| result.expect("no release timed out"))
        .collect();
    assert_eq!(values, (0..8).collect::<Vec<_>>());
}

/// The deadline still fires for a release that is stuck.
#[tokio::test(start_paused = true)]
async fn a_release_deadline_fires_for_a_stuck_release_under_the_paused_clock() {
    let _watchdog = watchdog("a_release_deadline_fires_for_a_stuck_release_under_the_paused_clock");
    let acquire = async_bracket(async |item: u32| Ok::<_, Infallible>(item))
        .release(|_item| std::future::pending::<Result<(), Infallible>>())
        .release_timeout(Duration::from_secs(1));
    let started = tokio::time::Instant::now();
    let result = stream::iter(0..1)
        .for_each_scoped_spawned(1, acquire, async |_item| Ok::<_, Infallible>(()))
        .await;
    assert!(matches!(
        result.map_err(loopscope::Failures::into_first),
        Err(ScopedError::Release {
            index: 0,
            source: loopscope::ReleaseTimeoutError::TimedOut { .. },
            ..
        })
    ));
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}
