#![cfg(all(feature = "stream", feature = "tokio"))]
//! Structured concurrency in the concurrent stream adapters, as a service
//! author meets it: real tokio runtimes, real timers (or tokio's paused clock
//! where a count or a duration must be exact), `tokio::spawn`, closures
//! borrowing locals, real files and a loopback TCP connection.
//!
//! - Fail-fast: the moment an acquire or a body fails, `for_each_scoped_concurrent`
//!   and `for_each_scoped_spawned` acquire nothing more, cancel the bodies in
//!   flight (their releases told `Outcome::Cancelled`), await every release,
//!   and return every failure (`Failures`), each with its index.
//! - A body panic cancels the other items and resumes only once every release
//!   has completed; a mapping stream polled again after its panic panics
//!   instead of hanging.
//! - `try_collect_all` returns only once every release has completed.
//! - In `try_map_scoped_concurrent`, a finished item waiting for its turn holds
//!   no slot of the limit.
//! - `.spawn_on_cancel_in(&tracker)`: a release already *running* when the
//!   adapter is dropped is handed to the runtime and completes (a flush, a
//!   connection returned to its pool, a TCP shutdown), and the caller can wait
//!   for it before retrying on an exclusive resource.
//! - A panicking `Drop` of one resource does not leak the others when the
//!   adapter is dropped, and does not abort the process while a body's panic
//!   unwinds (checked in a child process: this test binary run again).
//!
//! Each test's doc comment says what a user saw before. Every test is bounded
//! by a time limit, so that a hang fails in seconds.

use std::any::Any;
use std::future::Future;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use futures::stream::{self, StreamExt as _};
use loopscope::prelude::*;
use loopscope::{Failures, Outcome};
use tokio::fs::File;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::yield_now;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::task::TaskTracker;

#[path = "common/watchdog.rs"]
mod watchdog;

// How long any test may wait for a result before it counts as hung.
use watchdog::time_limit;

/// The error of an adapter whose acquire, body and release fail with `io::Error`.
type Error = ScopedError<io::Error, io::Error, io::Error>;

/// Awaits `future`, failing the test if it takes longer than [`time_limit`].
async fn within<F: Future>(future: F) -> F::Output {
    timeout(time_limit(), future)
        .await
        .expect("hung: no result within the time limit")
}

/// The message of a caught panic.
fn message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "<a panic without a message>".to_owned()
    }
}

// ============================================================== 1. fail-fast

/// What the items of a fail-fast run did.
#[derive(Default)]
struct Tally {
    /// Set by item 0's body just before it returns its `Err`.
    failed: AtomicBool,
    acquired: AtomicUsize,
    /// Acquires that started after `failed` was set.
    acquired_after_failure: AtomicUsize,
    released: AtomicUsize,
}

impl Tally {
    fn acquire(&self) {
        self.acquired.fetch_add(1, SeqCst);
        if self.failed.load(SeqCst) {
            self.acquired_after_failure.fetch_add(1, SeqCst);
        }
    }
}

/// Item 0's release (a slow close: 75 ms); the others close at once.
fn close_time(id: u32) -> Duration {
    if id == 0 {
        Duration::from_millis(75)
    } else {
        Duration::ZERO
    }
}

/// Item 0's body fails after 5 ms; the others take 1–5 ms.
async fn fetch(id: u32, tally: &Tally) -> io::Result<()> {
    if id == 0 {
        sleep(Duration::from_millis(5)).await;
        tally.failed.store(true, SeqCst);
        return Err(io::Error::other("item 0: bad header"));
    }
    sleep(Duration::from_millis(1 + u64::from(id % 5))).await;
    Ok(())
}

/// 100 requests, 2 at a time; item 0's body fails while its slow release
/// (75 ms) then runs. Before, the adapter noticed the failure only when item
/// 0's result came back, after its release: meanwhile the other slot went on
/// acquiring, about 15 items after the failure. Now it stops at the failure:
/// 0.
#[tokio::test]
async fn for_each_scoped_concurrent_acquires_nothing_after_a_body_fails() {
    let tally = &Tally::default();
    let connections = async_bracket(async |id: u32| {
        tally.acquire();
        Ok::<_, io::Error>(id)
    })
    .release(move |id: u32| async move {
        sleep(close_time(id)).await;
        tally.released.fetch_add(1, SeqCst);
        Ok::<_, io::Error>(())
    });
    let result = within(stream::iter(0..100).for_each_scoped_concurrent(
        2,
        connections,
        async |id: &mut u32| fetch(*id, tally).await,
    ))
    .await;

    let failures = result.expect_err("item 0 fails");
    assert!(
        matches!(failures.first(), ScopedError::Use { index: 0, .. }),
        "{failures:?}"
    );
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        tally.acquired_after_failure.load(SeqCst),
        0,
        "items acquired after item 0's body failed"
    );
    assert_eq!(
        tally.released.load(SeqCst),
        tally.acquired.load(SeqCst),
        "returned before every release completed"
    );
}

/// The connections of the spawned adapters' tests: as in the test above, with
/// `Arc` handles on the tally, so that the closures are `'static`.
fn spawnable_connections(
    tally: &Arc<Tally>,
) -> impl loopscope::SpawnAcquire<u32, Resource = u32, Error = io::Error, ReleaseError = io::Error>
{
    async_bracket({
        let tally = Arc::clone(tally);
        async move |id: u32| {
            tally.acquire();
            Ok::<_, io::Error>(id)
        }
    })
    .release({
        let tally = Arc::clone(tally);
        move |id: u32| {
            let tally = Arc::clone(&tally);
            async move {
                sleep(close_time(id)).await;
                tally.released.fetch_add(1, SeqCst);
                Ok::<_, io::Error>(())
            }
        }
    })
}

/// As above with `for_each_scoped_spawned`, each item a task of a
/// multi-thread runtime, the adapter itself inside `tokio::spawn`. Before, the
/// tasks in flight ran to their end and the engine pulled new items until item
/// 0's result arrived after its release: about 15 acquired after the
/// failure. Now: 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_spawned_acquires_nothing_after_a_body_fails() {
    let tally = Arc::new(Tally::default());
    let connections = spawnable_connections(&tally);
    let body = {
        let tally = Arc::clone(&tally);
        async move |id: &mut u32| fetch(*id, &tally).await
    };
    let task = tokio::spawn(stream::iter(0..100).for_each_scoped_spawned(2, connections, body));
    let result = within(task).await.expect("no panic");

    let failures = result.expect_err("item 0 fails");
    assert!(
        matches!(failures.first(), ScopedError::Use { index: 0, .. }),
        "{failures:?}"
    );
    assert_eq!(
        tally.acquired_after_failure.load(SeqCst),
        0,
        "items acquired after item 0's body failed"
    );
    assert_eq!(
        tally.released.load(SeqCst),
        tally.acquired.load(SeqCst),
        "returned before every release completed"
    );
}

// ============================================= 2. a slow sibling is cancelled

/// Limit 2: item 0 fails after 10 ms while item 1's body would take 2 s.
/// Before, the adapter waited for item 1's body: it returned after 2 s, and
/// item 1's release was told `Completed`. Now item 1's body is cancelled at
/// once, its release told `Outcome::Cancelled`, and the adapter returns after
/// 10 ms (tokio's paused clock: the time is exact).
#[tokio::test(start_paused = true)]
async fn a_failure_cancels_a_slow_sibling_and_releases_it_as_cancelled() {
    for spawned in [false, true] {
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let transactions = async_bracket(async |id: u32| Ok::<_, io::Error>(id)).release_with({
            let outcomes = Arc::clone(&outcomes);
            move |id: u32, outcome: Outcome| {
                let outcomes = Arc::clone(&outcomes);
                async move {
                    sleep(Duration::from_millis(1)).await; // commit or roll back
                    outcomes.lock().unwrap().push((id, outcome));
                    Ok::<_, io::Error>(())
                }
            }
        });
        let body = async |id: &mut u32| {
            if *id == 0 {
                sleep(Duration::from_millis(10)).await;
                return Err(io::Error::other("item 0: upstream refused"));
            }
            sleep(Duration::from_secs(2)).await;
            Ok::<_, io::Error>(())
        };
        let started = Instant::now();
        let result = if spawned {
            within(stream::iter(0..2).for_each_scoped_spawned(2, transactions, body)).await
        } else {
            within(stream::iter(0..2).for_each_scoped_concurrent(2, transactions, body)).await
        };
        let elapsed = started.elapsed();

        let failures = result.expect_err("item 0 fails");
        assert!(
            matches!(failures.first(), ScopedError::Use { index: 0, .. }),
            "spawned={spawned}: {failures:?}"
        );
        assert!(
            elapsed < Duration::from_millis(500),
            "spawned={spawned}: returned after {elapsed:?}, waiting for item 1's 2 s body"
        );
        let mut outcomes = outcomes.lock().unwrap().clone();
        outcomes.sort_by_key(|&(id, _)| id);
        assert_eq!(
            outcomes,
            [(0, Outcome::Failed), (1, Outcome::Cancelled)],
            "spawned={spawned}"
        );
    }
}

// ================================================ 3. no failure is dropped

/// Limit 2, two files whose release (`sync_all`) fails. Before, the caller got
/// one `ScopedError`: the other item's failed fsync was dropped (1 of 2). Now
/// `Failures` holds both, each with its index.
#[tokio::test]
async fn every_failed_release_reaches_the_caller_with_its_index() {
    for spawned in [false, true] {
        let files =
            async_bracket(async |id: u32| Ok::<_, io::Error>(id)).release(async |id: u32| {
                sleep(Duration::from_millis(1 + u64::from(id) * 2)).await;
                Err::<(), _>(io::Error::other(format!("fsync of item {id} failed")))
            });
        let body = async |_id: &mut u32| {
            sleep(Duration::from_millis(5)).await;
            Ok::<_, io::Error>(())
        };
        let result = if spawned {
            within(stream::iter(0..2).for_each_scoped_spawned(2, files, body)).await
        } else {
            within(stream::iter(0..2).for_each_scoped_concurrent(2, files, body)).await
        };

        let failures: Failures<Error> = result.expect_err("both releases fail");
        let mut reported: Vec<(usize, String)> = failures
            .iter()
            .map(|error| {
                let release = error.release_error().expect("a release error");
                (error.index(), release.to_string())
            })
            .collect();
        reported.sort();
        assert_eq!(
            reported,
            [
                (0, "fsync of item 0 failed".to_owned()),
                (1, "fsync of item 1 failed".to_owned())
            ],
            "spawned={spawned}: {failures:?}"
        );
        assert!(
            failures.to_string().starts_with("2 failures, the first: "),
            "spawned={spawned}: {failures}"
        );
    }
}

// =================================== 4. a panic waits for every release

/// What a run with a panic left behind.
#[derive(Default)]
struct Counts {
    acquired: AtomicUsize,
    released: AtomicUsize,
}

/// An async bracket over `counts` whose release takes 5 ms.
macro_rules! counted_bracket {
    ($counts:expr) => {
        async_bracket({
            let counts = Arc::clone(&$counts);
            async move |id: u32| {
                counts.acquired.fetch_add(1, SeqCst);
                Ok::<_, io::Error>(id)
            }
        })
        .release({
            let counts = Arc::clone(&$counts);
            move |_id: u32| {
                let counts = Arc::clone(&counts);
                async move {
                    sleep(Duration::from_millis(5)).await;
                    counts.released.fetch_add(1, SeqCst);
                    Ok::<_, io::Error>(())
                }
            }
        })
    };
}

/// Item 2's body panics after 5 ms; the others would run for 2 s.
async fn parse_page(id: u32) -> io::Result<u32> {
    if id == 2 {
        sleep(Duration::from_millis(5)).await;
        panic!("item 2: corrupt page");
    }
    sleep(Duration::from_secs(2)).await;
    Ok(id)
}

/// Four items in flight with a 5 ms async release; item 2's body panics while
/// the others run (2 s). Before, the panic reached the caller of
/// `for_each_scoped_concurrent` and of the mapping streams as soon as item 2's
/// own release had run, the others' resources dropped unreleased: 1 of 4
/// releases completed; the spawned adapters let the other bodies run to their
/// end, 2 s. Now, in every concurrent adapter, the others are cancelled at
/// once and every release has completed when the panic arrives.
#[tokio::test]
async fn a_body_panic_reaches_the_caller_after_every_release() {
    let adapters = [
        "for_each_scoped_concurrent",
        "for_each_scoped_spawned",
        "try_map_scoped_concurrent",
        "try_map_scoped_unordered",
        "try_map_scoped_spawned",
    ];
    for adapter in adapters {
        let counts = Arc::new(Counts::default());
        let pages = counted_bracket!(counts);
        let body = async |id: &mut u32| parse_page(*id).await;
        let items = stream::iter(0..4);
        let started = Instant::now();
        let caught = match adapter {
            "for_each_scoped_concurrent" => {
                let run = items.for_each_scoped_concurrent(4, pages, body);
                within(AssertUnwindSafe(run).catch_unwind()).await.map(drop)
            }
            "for_each_scoped_spawned" => {
                let run = items.for_each_scoped_spawned(4, pages, body);
                within(AssertUnwindSafe(run).catch_unwind()).await.map(drop)
            }
            "try_map_scoped_concurrent" => {
                let run = items
                    .try_map_scoped_concurrent(4, pages, body)
                    .collect::<Vec<_>>();
                within(AssertUnwindSafe(run).catch_unwind()).await.map(drop)
            }
            "try_map_scoped_unordered" => {
                let run = items
                    .try_map_scoped_unordered(4, pages, body)
                    .collect::<Vec<_>>();
                within(AssertUnwindSafe(run).catch_unwind()).await.map(drop)
            }
            "try_map_scoped_spawned" => {
                let run = items
                    .try_map_scoped_spawned(4, pages, body)
                    .collect::<Vec<_>>();
                within(AssertUnwindSafe(run).catch_unwind()).await.map(drop)
            }
            _ => unreachable!(),
        };
        // Read the moment the panic arrives, before anything else runs.
        let (acquired, released) = (counts.acquired.load(SeqCst), counts.released.load(SeqCst));
        let elapsed = started.elapsed();

        let panic = caught.expect_err("item 2's panic reaches the caller");
        assert_eq!(message(&*panic), "item 2: corrupt page", "{adapter}");
        assert_eq!(acquired, 4, "{adapter}");
        assert_eq!(
            released, acquired,
            "{adapter}: releases completed when the panic arrived"
        );
        assert!(
            elapsed < Duration::from_secs(1),
            "{adapter}: the panic arrived after {elapsed:?}: the other bodies were not cancelled"
        );
    }
}

// ============================ 5. a release running at the drop is handed over

/// 16 MiB, written in the body into a `BufWriter` that holds all of it, so
/// that all of it reaches the file through the release's `flush`.
const REPORT_SIZE: usize = 16 << 20;

/// A report of 16 MiB is buffered in a `tokio::io::BufWriter<tokio::fs::File>`
/// and released by `flush().await` and `sync_all().await`; the adapter is
/// dropped (the caller's deadline, or a shutdown signal) while the flush runs.
/// Before, the flush was cut off where it stood: only what tokio had already
/// handed to its blocking pool reached the file (2 MiB of 16 here). Now
/// the running release is handed to the runtime with `.spawn_on_cancel_in`,
/// and once the tracker has no task left the file is complete: 16 MiB.
#[tokio::test]
async fn a_flush_running_when_the_adapter_is_dropped_completes() {
    // The drop must land while the flush runs. On a loaded machine the
    // blocking pool can write all of it before this task is polled again;
    // such an attempt shows nothing, and is made again.
    for _attempt in 0..20 {
        if drop_during_a_flush().await {
            return;
        }
    }
    panic!("in 20 attempts, the flush always completed before the adapter was dropped");
}

/// One attempt of `a_flush_running_when_the_adapter_is_dropped_completes`:
/// `false` if the flush completed before the drop (nothing shown).
async fn drop_during_a_flush() -> bool {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("report.bin");
    let tracker = TaskTracker::new();
    let release_started = Arc::new(Semaphore::new(0));
    let flushed = Arc::new(AtomicBool::new(false));
    let reports = async_bracket(async |path: PathBuf| {
        let file = File::create(&path).await?;
        Ok::<_, io::Error>(BufWriter::with_capacity(REPORT_SIZE + 1, file))
    })
    .release({
        let (release_started, flushed) = (Arc::clone(&release_started), Arc::clone(&flushed));
        move |mut writer: BufWriter<File>| {
            let (release_started, flushed) = (Arc::clone(&release_started), Arc::clone(&flushed));
            async move {
                release_started.add_permits(1);
                writer.flush().await?;
                flushed.store(true, SeqCst);
                writer.into_inner().sync_all().await
            }
        }
    })
    .spawn_on_cancel_in(&tracker);
    let write_report = async |writer: &mut BufWriter<File>| {
        let chunk = vec![b'r'; 64 << 10];
        for _ in 0..REPORT_SIZE / chunk.len() {
            writer.write_all(&chunk).await?;
        }
        Ok::<_, io::Error>(())
    };
    let work = stream::iter([path.clone()]).for_each_scoped(reports, write_report);
    within(async {
        tokio::select! {
            biased;
            // The deadline fires while the flush runs: `work` is dropped.
            _ = release_started.acquire_many(1) => {}
            result = work => panic!("the adapter finished before it was dropped: {result:?}"),
        }
    })
    .await;
    let flushed_before_the_drop = flushed.load(SeqCst);
    tracker.close();
    within(tracker.wait()).await;
    if flushed_before_the_drop {
        // Only the `sync_all` was handed over: this attempt shows nothing.
        return false;
    }
    let on_disk = std::fs::metadata(&path).expect("the report").len();
    assert_eq!(
        on_disk, REPORT_SIZE as u64,
        "bytes on disk after the handed-over release"
    );
    assert!(flushed.load(SeqCst));
    true
}

/// A connection taken from a tiny pool.
#[derive(Debug)]
struct Conn(u32);

/// A tiny pool (one connection, or two); the release returns the connection
/// to the pool after a few yields (a `ROLLBACK` round trip, say), and the
/// adapter is dropped mid-release, sequential (one connection) or concurrent
/// (two).
/// Before, the release was cut off and the connection lost with it: 0 back in
/// the pool. Now the running releases complete on the runtime, and once the
/// tracker has no task left every connection is back.
#[tokio::test]
async fn a_connection_being_returned_when_the_adapter_is_dropped_reaches_the_pool() {
    for concurrent in [false, true] {
        let taken = if concurrent { 2 } else { 1 };
        let pool = Arc::new(Mutex::new((1..=taken).map(Conn).collect::<Vec<_>>()));
        let tracker = TaskTracker::new();
        let release_started = Arc::new(Semaphore::new(0));
        let connections = async_bracket({
            let pool = Arc::clone(&pool);
            async move |_job: u32| {
                let taken = pool.lock().unwrap().pop();
                taken.ok_or_else(|| io::Error::other("the pool is empty"))
            }
        })
        .release({
            let (pool, release_started) = (Arc::clone(&pool), Arc::clone(&release_started));
            move |conn: Conn| {
                let (pool, release_started) = (Arc::clone(&pool), Arc::clone(&release_started));
                async move {
                    release_started.add_permits(1);
                    for _ in 0..5 {
                        yield_now().await;
                    }
                    pool.lock().unwrap().push(conn);
                    Ok::<_, io::Error>(())
                }
            }
        })
        .spawn_on_cancel_in(&tracker);
        let query = async |_conn: &mut Conn| {
            yield_now().await;
            Ok::<_, io::Error>(())
        };
        let jobs = stream::iter(0..taken);
        within(async {
            if concurrent {
                tokio::select! {
                    biased;
                    _ = release_started.acquire_many(taken) => {}
                    result = jobs.for_each_scoped_concurrent(2, connections, query) => {
                        panic!("finished before it was dropped: {result:?}")
                    }
                }
            } else {
                tokio::select! {
                    biased;
                    _ = release_started.acquire_many(taken) => {}
                    result = jobs.for_each_scoped(connections, query) => {
                        panic!("finished before it was dropped: {result:?}")
                    }
                }
            }
        })
        .await;
        assert_eq!(
            pool.lock().unwrap().len(),
            0,
            "concurrent={concurrent}: a release had completed before the drop"
        );

        tracker.close();
        within(tracker.wait()).await;
        let mut back: Vec<u32> = pool.lock().unwrap().iter().map(|conn| conn.0).collect();
        back.sort_unstable();
        assert_eq!(
            back,
            (1..=taken).collect::<Vec<_>>(),
            "concurrent={concurrent}: connections back in the pool"
        );
    }
}

// ============================== 6. retry after a timeout, exclusive resource

/// One exclusive connection: the acquire marks it busy, and counts the
/// attempts that found it busy; the async release (20 ms) frees it.
struct Exclusive {
    busy: AtomicBool,
    found_busy: AtomicUsize,
}

/// Runs 20 rounds of: an attempt cut off by `tokio::time::timeout` (during the
/// body in even rounds, during the release in odd ones), then — once the
/// tracker has no task left — a retry at once. Returns how many retries found
/// the connection busy.
async fn retry_after_timeouts(spawned: bool) -> usize {
    let connection = Arc::new(Exclusive {
        busy: AtomicBool::new(false),
        found_busy: AtomicUsize::new(0),
    });
    let tracker = TaskTracker::new();
    let lease = async_bracket({
        let connection = Arc::clone(&connection);
        async move |_job: u32| {
            if connection.busy.swap(true, SeqCst) {
                connection.found_busy.fetch_add(1, SeqCst);
                return Err(io::Error::other("the connection is busy"));
            }
            Ok(())
        }
    })
    .release({
        let connection = Arc::clone(&connection);
        move |()| {
            let connection = Arc::clone(&connection);
            async move {
                sleep(Duration::from_millis(20)).await; // a slow close
                connection.busy.store(false, SeqCst);
                Ok::<_, io::Error>(())
            }
        }
    })
    .spawn_on_cancel_in(&tracker);
    let query = async |_: &mut ()| {
        sleep(Duration::from_millis(5)).await;
        Ok::<_, io::Error>(())
    };
    let run = async |job: u32| {
        if spawned {
            stream::iter([job])
                .for_each_scoped_spawned(1, lease.clone(), query)
                .await
                .map_err(Failures::into_first)
        } else {
            stream::iter([job])
                .for_each_scoped(lease.clone(), query)
                .await
        }
    };
    let mut busy_retries = 0;
    for round in 0..20 {
        // 2 ms: in the body (5 ms); 10 ms: in the release (5..25 ms).
        let deadline = Duration::from_millis(if round % 2 == 0 { 2 } else { 10 });
        let attempt = timeout(deadline, run(round)).await;
        assert!(
            attempt.is_err(),
            "round {round}: finished before its deadline"
        );
        tracker.close();
        within(tracker.wait()).await;
        tracker.reopen();
        let found_before = connection.found_busy.load(SeqCst);
        let retry = within(run(round)).await;
        if connection.found_busy.load(SeqCst) > found_before {
            busy_retries += 1;
            // Let the pending close end, so that the next round starts free.
            within(async {
                while connection.busy.load(SeqCst) {
                    sleep(Duration::from_millis(1)).await;
                }
            })
            .await;
        } else {
            retry.expect("the retry succeeds");
        }
    }
    busy_retries
}

/// The sequential `for_each_scoped`: a timeout drops it mid-item, the release
/// handed to the runtime is tracked, and the caller waits on the tracker
/// before retrying. Before, a release cut off mid-way never freed the
/// connection, and a body's release spawned on cancel was not waited for: 20
/// retries of 20 found it busy. Now none does.
#[tokio::test(start_paused = true)]
async fn a_retry_after_a_timeout_never_finds_the_connection_busy_for_each_scoped() {
    assert_eq!(
        retry_after_timeouts(false).await,
        0,
        "retries that found the connection busy"
    );
}

/// As above with `for_each_scoped_spawned`: the same pattern, each item a task.
#[tokio::test(start_paused = true)]
async fn a_retry_after_a_timeout_never_finds_the_connection_busy_for_each_scoped_spawned() {
    assert_eq!(
        retry_after_timeouts(true).await,
        0,
        "retries that found the connection busy"
    );
}

// ============================================ 7. try_collect_all waits

/// `try_map_scoped_unordered(2, ..)`: item 0 fails after 1 ms while item 1
/// runs for 50 ms; each release takes 10 ms. `try_collect_all` returns item
/// 0's failure only once both releases have completed (2 of 2).
///
/// Plain `try_collect` (the only way before) returns at the first `Err` and
/// drops the stream, item 1's release abandoned — 1 of 2:
///
/// ```text
/// let result = pages.try_collect::<Vec<_>>().await;   // released: 1
/// ```
#[tokio::test]
async fn try_collect_all_returns_once_every_release_completed() {
    let released = &AtomicUsize::new(0);
    let pages = stream::iter(0..2).try_map_scoped_unordered(
        2,
        async_bracket(async |id: u32| Ok::<_, io::Error>(id)).release(move |_id| async move {
            sleep(Duration::from_millis(10)).await;
            released.fetch_add(1, SeqCst);
            Ok::<_, io::Error>(())
        }),
        async |id: &mut u32| {
            if *id == 0 {
                sleep(Duration::from_millis(1)).await;
                return Err(io::Error::other("item 0: not found"));
            }
            sleep(Duration::from_millis(50)).await;
            Ok(*id)
        },
    );
    let result = within(pages.try_collect_all::<Vec<_>>()).await;
    let released_at_return = released.load(SeqCst);

    let failures = result.expect_err("item 0 fails");
    assert!(
        matches!(failures.first(), ScopedError::Use { index: 0, .. }),
        "{failures:?}"
    );
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        released_at_return, 2,
        "releases completed when try_collect_all returned"
    );
}

// ============================ 8. a finished item waiting holds no slot

/// `try_map_scoped_concurrent(2, ..)`: item 0 takes 100 ms, items 1–50 take
/// 1 ms each (tokio's paused clock, so every duration is exact). Before, item
/// 1, finished but waiting for item 0's turn, kept its slot: one resource live
/// at 40 ms, and items 2–50 ran only after item 0, ending at 125 ms (about
/// 155 ms on real timers). Now items 1–50 run in the second slot beside item
/// 0: 2 live at 40 ms, all 51 done at 100 ms, still in input order.
#[tokio::test(start_paused = true)]
async fn a_finished_item_waiting_for_its_turn_frees_its_slot() {
    let live = Arc::new(AtomicUsize::new(0));
    let sampler = tokio::spawn({
        let live = Arc::clone(&live);
        async move {
            sleep(Duration::from_millis(40)).await;
            live.load(SeqCst)
        }
    });
    let started = Instant::now();
    let live_ref = &*live;
    let results: Vec<_> = within(
        stream::iter(0..51)
            .try_map_scoped_concurrent(
                2,
                async_bracket(async |id: u32| {
                    live_ref.fetch_add(1, SeqCst);
                    Ok::<_, io::Error>(id)
                })
                .release(move |_id| async move {
                    live_ref.fetch_sub(1, SeqCst);
                    Ok::<_, io::Error>(())
                }),
                async |id: &mut u32| {
                    let millis = if *id == 0 { 100 } else { 1 };
                    sleep(Duration::from_millis(millis)).await;
                    Ok::<_, io::Error>(*id)
                },
            )
            .collect(),
    )
    .await;
    let elapsed = started.elapsed();
    let live_at_40_ms = within(sampler).await.expect("the sampler ran");

    let values: Vec<u32> = results
        .into_iter()
        .map(|result| result.expect("no failure"))
        .collect();
    assert_eq!(
        values,
        (0..51).collect::<Vec<_>>(),
        "results in input order"
    );
    assert_eq!(
        live_at_40_ms, 2,
        "resources live at 40 ms (the 51 items took {elapsed:?})"
    );
    // Exact on the paused clock: 100 ms; the old engine took 125 ms.
    assert!(
        elapsed <= Duration::from_millis(105),
        "51 items took {elapsed:?}, not about item 0's 100 ms (live at 40 ms: {live_at_40_ms})"
    );
}

// ==================================== 9. polled again after a panic

/// A consumer catches a body panic out of `try_map_scoped_concurrent(3, ..)`
/// — item 0's, the head of the input order — and polls the stream again.
/// Before, that poll waited forever for item 0's result, which would never
/// come. Now it panics ("polled after a panic") at once — or the stream ends.
#[tokio::test]
async fn polling_a_mapping_stream_again_after_its_panic_does_not_hang() {
    let released = &AtomicUsize::new(0);
    let mut pages = pin!(stream::iter(0..6).try_map_scoped_concurrent(
        3,
        async_bracket(async |id: u32| Ok::<_, io::Error>(id)).release(move |_id| async move {
            sleep(Duration::from_millis(1)).await;
            released.fetch_add(1, SeqCst);
            Ok::<_, io::Error>(())
        }),
        async |id: &mut u32| {
            if *id == 0 {
                sleep(Duration::from_millis(2)).await;
                panic!("page 0: malformed");
            }
            sleep(Duration::from_millis(20)).await;
            Ok::<_, io::Error>(*id)
        },
    ));
    let first = within(AssertUnwindSafe(pages.next()).catch_unwind()).await;
    let panic = first.expect_err("page 0's panic");
    assert_eq!(message(&*panic), "page 0: malformed");
    assert_eq!(
        released.load(SeqCst),
        3,
        "every release completed before the panic"
    );

    let again = timeout(
        Duration::from_secs(3),
        AssertUnwindSafe(pages.next()).catch_unwind(),
    )
    .await
    .expect("the poll after the panic hung");
    match again {
        Err(panic) => assert!(
            message(&*panic).contains("polled after a panic"),
            "{}",
            message(&*panic)
        ),
        Ok(None) => {}
        Ok(Some(result)) => panic!("yielded {result:?} after its panic"),
    }
}

// ==================== 10. a panicking Drop does not leak the other resources

/// Live resources and the ones dropped; resource 3's `Drop` panics.
#[derive(Default)]
struct DropCounts {
    live: AtomicUsize,
    /// Resources other than 3 that were dropped.
    others_dropped: AtomicUsize,
}

/// A connection whose `Drop` (a close) panics for connection 3.
struct Fragile<'a> {
    id: u32,
    counts: &'a DropCounts,
}

impl<'a> Fragile<'a> {
    fn open(id: u32, counts: &'a DropCounts) -> Self {
        counts.live.fetch_add(1, SeqCst);
        Self { id, counts }
    }
}

impl Drop for Fragile<'_> {
    fn drop(&mut self) {
        self.counts.live.fetch_sub(1, SeqCst);
        if self.id == 3 {
            panic!("closing connection 3 failed");
        }
        self.counts.others_dropped.fetch_add(1, SeqCst);
    }
}

/// Drops `adapter` inside `catch_unwind`, and returns the message of the
/// panic that resumed out of the drop.
fn drop_and_catch<T>(adapter: T) -> String {
    let panic = std::panic::catch_unwind(AssertUnwindSafe(move || drop(adapter)))
        .expect_err("the panic of connection 3's Drop resumes");
    message(&*panic)
}

/// Four connections live in a `for_each_scoped_concurrent(4, ..)` (plain
/// async acquire, and async bracket) and in a `try_map_scoped_unordered(4, ..)`
/// when the adapter is dropped; connection 3's `Drop` panics. Before, dropping
/// stopped at that panic and the others leaked, never dropped (0 of the 3
/// others dropped, 3 still live). Now the 3 others are dropped, then the panic
/// resumes.
#[tokio::test]
async fn a_panicking_drop_does_not_leak_the_other_resources() {
    let stuck = async |_connection: &mut Fragile<'_>| {
        sleep(Duration::from_secs(3600)).await;
        Ok::<_, io::Error>(())
    };

    // A plain async acquire: released by `Drop`.
    let counts = &DropCounts::default();
    let mut adapter = Box::pin(stream::iter(0..4).for_each_scoped_concurrent(
        4,
        async |id: u32| Ok::<_, io::Error>(Fragile::open(id, counts)),
        stuck,
    ));
    assert!(futures::poll!(adapter.as_mut()).is_pending());
    assert_eq!(counts.live.load(SeqCst), 4);
    assert_eq!(drop_and_catch(adapter), "closing connection 3 failed");
    assert_eq!(counts.others_dropped.load(SeqCst), 3, "plain acquire");
    assert_eq!(counts.live.load(SeqCst), 0, "plain acquire");

    // An async bracket: cancelled mid-body, its resources are dropped too.
    let counts = &DropCounts::default();
    let mut adapter = Box::pin(stream::iter(0..4).for_each_scoped_concurrent(
        4,
        async_bracket(async |id: u32| Ok::<_, io::Error>(Fragile::open(id, counts))).release(
            |connection: Fragile<'_>| async move {
                drop(connection);
                Ok::<_, io::Error>(())
            },
        ),
        stuck,
    ));
    assert!(futures::poll!(adapter.as_mut()).is_pending());
    assert_eq!(counts.live.load(SeqCst), 4);
    assert_eq!(drop_and_catch(adapter), "closing connection 3 failed");
    assert_eq!(counts.others_dropped.load(SeqCst), 3, "async bracket");
    assert_eq!(counts.live.load(SeqCst), 0, "async bracket");

    // A mapping stream.
    let counts = &DropCounts::default();
    let mut results = Box::pin(stream::iter(0..4).try_map_scoped_unordered(
        4,
        async |id: u32| Ok::<_, io::Error>(Fragile::open(id, counts)),
        stuck,
    ));
    assert!(futures::poll!(results.next()).is_pending());
    assert_eq!(counts.live.load(SeqCst), 4);
    assert_eq!(drop_and_catch(results), "closing connection 3 failed");
    assert_eq!(
        counts.others_dropped.load(SeqCst),
        3,
        "try_map_scoped_unordered"
    );
    assert_eq!(counts.live.load(SeqCst), 0, "try_map_scoped_unordered");
}

// ========== 11. a panicking Drop during a body's panic does not abort (child)

/// Names the scenario a child process runs.
const SCENARIO: &str = "LOOPSCOPE_STRUCTURED_SCENARIO";

/// Runs `scenario` in a child process — this test binary, running only the
/// test `child` — and returns its exit status and what it printed; kills it
/// and fails if it runs longer than [`time_limit`].
fn run_child(scenario: &str) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child process runs");
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).expect("the child's output");
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("piped")));
    let stderr = read(Box::new(child.stderr.take().expect("piped")));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            break status;
        }
        if started.elapsed() > time_limit() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{scenario}: the child process hung for 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let printed = format!(
        "{}\n--- stderr ---\n{}",
        stdout.join().expect("stdout read"),
        stderr.join().expect("stderr read")
    );
    (status, printed)
}

/// The entry point of the child processes; does nothing in the parent's run.
#[test]
fn child() {
    match std::env::var(SCENARIO).as_deref() {
        Ok("drop_panics_sequential") => drop_panics_during_unwind(false),
        Ok("drop_panics_concurrent") => drop_panics_during_unwind(true),
        Ok("drop_panics_first_poll") => drop_panics_in_the_first_poll(),
        Ok(other) => panic!("unknown scenario {other}"),
        Err(_) => {}
    }
}

/// A connection whose `Drop` panics for connection 0.
struct Unclosable(u32);

impl Drop for Unclosable {
    fn drop(&mut self) {
        if self.0 == 0 {
            panic!("closing connection {} failed", self.0);
        }
    }
}

/// Item 0's body panics; its resource, released by `Drop`, panics too. The
/// body's panic must reach the caller, and the process go on.
fn drop_panics_during_unwind(concurrent: bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let caught = runtime.block_on(async {
        let open = async |id: u32| Ok::<_, io::Error>(Unclosable(id));
        let body = async |connection: &mut Unclosable| {
            yield_now().await;
            if connection.0 == 0 {
                panic!("body of item {} panicked", connection.0);
            }
            sleep(Duration::from_millis(20)).await;
            Ok::<_, io::Error>(())
        };
        if concurrent {
            let run = stream::iter(0..2).for_each_scoped_concurrent(2, open, body);
            AssertUnwindSafe(run).catch_unwind().await.map(drop)
        } else {
            let run = stream::iter(0..2).for_each_scoped(open, body);
            AssertUnwindSafe(run).catch_unwind().await.map(drop)
        }
    });
    let panic = caught.expect_err("the body's panic reaches the caller");
    println!("caught: {}", message(&*panic));
}

/// Checks that the child of `scenario` exited normally, the body's panic
/// caught, rather than being killed by `SIGABRT`.
fn assert_not_aborted(scenario: &str) {
    let (status, printed) = run_child(scenario);
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(
            status.signal(),
            None,
            "{scenario}: killed by a signal\n{printed}"
        );
    }
    assert!(status.success(), "{scenario}: {status}\n{printed}");
    assert!(
        printed.contains("caught: body of item 0 panicked"),
        "{scenario}\n{printed}"
    );
}

/// `for_each_scoped`, plain async acquire: the body panics, then the
/// resource's `Drop` panics while that panic unwinds. Before, a panic in a
/// destructor during unwinding aborted the process (`SIGABRT`). Now the
/// `Drop`'s panic is caught and the body's panic reaches the caller.
#[test]
fn a_panicking_drop_during_a_body_panic_does_not_abort_for_each_scoped() {
    assert_not_aborted("drop_panics_sequential");
}

/// As above with `for_each_scoped_concurrent(2, ..)`.
#[test]
fn a_panicking_drop_during_a_body_panic_does_not_abort_for_each_scoped_concurrent() {
    assert_not_aborted("drop_panics_concurrent");
}

/// As above, each sequential adapter, the body panicking in the adapter's
/// first poll (no `.await` pending before it) under `block_on`: a resource
/// dropped by the unwinding itself would abort ("panic in a destructor during
/// cleanup"), whatever catches the panic further out.
#[test]
fn a_panicking_drop_during_a_first_poll_body_panic_does_not_abort() {
    assert_not_aborted("drop_panics_first_poll");
}

/// The scenario of `a_panicking_drop_during_a_first_poll_body_panic_does_not_abort`:
/// items 0, 1 and 2, all ready; item 1's body panics, and so does the `Drop`
/// of its resource.
fn drop_panics_in_the_first_poll() {
    /// Closing connection 1 panics.
    struct Connection(u32);
    impl Drop for Connection {
        fn drop(&mut self) {
            if self.0 == 1 {
                panic!("closing connection 1 failed");
            }
        }
    }
    let open = async |id: u32| Ok::<_, ()>(Connection(id));
    let body = async |connection: &mut Connection| {
        if connection.0 == 1 {
            panic!("body of item 0 panicked");
        }
        Ok::<_, ()>(connection.0)
    };
    let caught = |adapter: &str, run: &mut dyn FnMut()| {
        let panic = std::panic::catch_unwind(AssertUnwindSafe(run))
            .expect_err("the body's panic reaches the caller");
        println!("{adapter}: caught: {}", message(&*panic));
    };
    caught("for_each_scoped", &mut || {
        drop(futures::executor::block_on(
            stream::iter(0..3).for_each_scoped(open, body),
        ))
    });
    caught("try_fold_scoped", &mut || {
        drop(futures::executor::block_on(
            stream::iter(0..3).try_fold_scoped(0, open, async |sum, connection| {
                body(connection).await.map(|id| sum + id)
            }),
        ))
    });
    caught("try_map_scoped", &mut || {
        drop(futures::executor::block_on(
            stream::iter(0..3)
                .try_map_scoped(open, body)
                .collect::<Vec<_>>(),
        ))
    });
}

// ============================================= loopback TCP: a clean close

/// The final message a client sends in its release before `shutdown()`:
/// 16 MiB, more than the socket buffers hold while the server is not reading,
/// so the release is still writing when the adapter is dropped.
fn final_message() -> Vec<u8> {
    let mut message = b"BYE ".to_vec();
    message.extend((0..16 << 20).map(|n: u32| b'a' + (n % 26) as u8));
    message.push(b'\n');
    message
}

/// A client sends a request in its body and, in its async release, a final
/// message and then `shutdown().await`. The caller's 200 ms deadline drops the
/// adapter while the release is still writing (the server reads nothing until
/// then). Before, the release was cut off: the server got part of the final
/// message. Now, with `.spawn_on_cancel_in(&tracker)`, the release completes on
/// the runtime: once the tracker has no task left, the server has the whole
/// message and a clean EOF (a `FIN`, not a reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_cut_off_by_a_dropped_adapter_still_reaches_the_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a listener");
    let address = listener.local_addr().expect("its address");
    let (start_reading, told_to_read) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let _ = told_to_read.await;
        let mut received = Vec::new();
        // `Ok` at a clean EOF; a reset fails with `ConnectionReset`.
        let end = socket.read_to_end(&mut received).await.map(drop);
        Ok::<_, io::Error>((received, end))
    });

    let message = Arc::new(final_message());
    let tracker = TaskTracker::new();
    let release_started = Arc::new(AtomicBool::new(false));
    let release_done = Arc::new(AtomicBool::new(false));
    let connections = async_bracket(async |address: SocketAddr| TcpStream::connect(address).await)
        .release({
            let (message, started, done) = (
                Arc::clone(&message),
                Arc::clone(&release_started),
                Arc::clone(&release_done),
            );
            move |mut stream: TcpStream| {
                let (message, started, done) = (
                    Arc::clone(&message),
                    Arc::clone(&started),
                    Arc::clone(&done),
                );
                async move {
                    started.store(true, SeqCst);
                    stream.write_all(&message).await?;
                    stream.shutdown().await?;
                    done.store(true, SeqCst);
                    Ok::<_, io::Error>(())
                }
            }
        })
        .spawn_on_cancel_in(&tracker);
    let request = async |stream: &mut TcpStream| stream.write_all(b"GET /report\n").await;
    let work = stream::iter([address]).for_each_scoped(connections, request);
    let outcome = timeout(Duration::from_millis(200), work).await;
    assert!(outcome.is_err(), "the release finished: {outcome:?}");
    assert!(
        release_started.load(SeqCst),
        "the deadline fired before the release"
    );
    assert!(
        !release_done.load(SeqCst),
        "the release was done before the drop"
    );

    start_reading.send(()).expect("the server waits");
    tracker.close();
    within(tracker.wait()).await;
    assert!(release_done.load(SeqCst));
    let (received, end) = within(server)
        .await
        .expect("the server did not panic")
        .expect("the server accepted");
    end.expect("a clean EOF, not a reset");
    let mut expected = b"GET /report\n".to_vec();
    expected.extend_from_slice(&message);
    assert_eq!(received.len(), expected.len(), "bytes the server received");
    assert!(received == expected, "the server received other bytes");
}

// ============================================ a failed release, and which failure is first

/// Item 0's body succeeds but its release fails; the input never ends. Both
/// fail-fast adapters stop at that failure (a release's failure is one too)
/// rather than pull the endless input, and return it.
#[tokio::test(start_paused = true)]
async fn a_failed_release_stops_a_fail_fast_adapter_over_an_endless_input() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let input = {
        let pulled = Arc::clone(&pulled);
        stream::iter(0_u32..).inspect(move |_| {
            pulled.fetch_add(1, SeqCst);
        })
    };
    let connections =
        async_bracket(async |id: u32| Ok::<_, io::Error>(id)).release(|id: u32| async move {
            sleep(Duration::from_millis(1)).await;
            if id == 0 {
                Err(io::Error::other("fsync of item 0 failed"))
            } else {
                Ok(())
            }
        });
    let body = async |_: &mut u32| {
        sleep(Duration::from_millis(5)).await;
        Ok::<_, io::Error>(())
    };

    let spawned = within(input.for_each_scoped_spawned(2, connections.clone(), body)).await;
    let failures = spawned.expect_err("item 0's release fails");
    assert!(
        matches!(failures.first(), ScopedError::Release { index: 0, .. }),
        "{failures:?}"
    );
    assert!(
        pulled.load(SeqCst) < 10,
        "pulled {} items",
        pulled.load(SeqCst)
    );

    pulled.store(0, SeqCst);
    let input = {
        let pulled = Arc::clone(&pulled);
        stream::iter(0_u32..).inspect(move |_| {
            pulled.fetch_add(1, SeqCst);
        })
    };
    let concurrent = within(input.for_each_scoped_concurrent(2, connections, body)).await;
    let failures = concurrent.expect_err("item 0's release fails");
    assert!(
        matches!(failures.first(), ScopedError::Release { index: 0, .. }),
        "{failures:?}"
    );
    assert!(
        pulled.load(SeqCst) < 10,
        "pulled {} items",
        pulled.load(SeqCst)
    );
}

/// Item 2's body fails at 10 ms (its release then takes 100 ms); item 1's
/// body succeeded at 5 ms, and its release — already running, so not
/// cancelled — fails at 15 ms. Item 1's failure reaches the adapter first,
/// but item 2's happened first and stopped the adapter: it is `first`, item
/// 1's among the others. Both adapters.
#[tokio::test(start_paused = true)]
async fn the_failure_that_stopped_the_adapter_comes_first() {
    let connections =
        async_bracket(async |id: u32| Ok::<_, io::Error>(id)).release(|id: u32| async move {
            match id {
                1 => {
                    sleep(Duration::from_millis(10)).await;
                    Err(io::Error::other("close of item 1 failed"))
                }
                2 => {
                    sleep(Duration::from_millis(100)).await;
                    Ok(())
                }
                _ => Ok(()),
            }
        });
    let body = async |id: &mut u32| match *id {
        1 => {
            sleep(Duration::from_millis(5)).await;
            Ok(())
        }
        2 => {
            sleep(Duration::from_millis(10)).await;
            Err(io::Error::other("item 2: bad header"))
        }
        _ => Ok(()),
    };
    let check = |failures: Failures<Error>| {
        assert!(
            matches!(failures.first(), ScopedError::Use { index: 2, .. }),
            "{failures:?}"
        );
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(
            matches!(failures.others()[0], ScopedError::Release { index: 1, .. }),
            "{failures:?}"
        );
    };
    let spawned = stream::iter(0_u32..3).for_each_scoped_spawned(3, connections.clone(), body);
    check(within(spawned).await.expect_err("items 1 and 2 fail"));
    let concurrent = stream::iter(0_u32..3).for_each_scoped_concurrent(3, connections, body);
    check(within(concurrent).await.expect_err("items 1 and 2 fail"));
}

/// Item 0's body panics while its async release then takes 50 ms; the other
/// items take 1 ms. A panic stops the adapter at once, like an error: nothing
/// is acquired after it (not only after item 0's release), the other items
/// are cancelled, and the panic resumes once every release has completed.
#[tokio::test(start_paused = true)]
async fn a_panic_stops_acquiring_at_once() {
    let panicked = &AtomicBool::new(false);
    let acquired_after = &AtomicUsize::new(0);
    let (acquired, released) = (&AtomicUsize::new(0), &AtomicUsize::new(0));
    let connections = async_bracket(async |id: u32| {
        acquired.fetch_add(1, SeqCst);
        if panicked.load(SeqCst) {
            acquired_after.fetch_add(1, SeqCst);
        }
        Ok::<_, io::Error>(id)
    })
    .release(move |id: u32| async move {
        if id == 0 {
            sleep(Duration::from_millis(50)).await;
        }
        released.fetch_add(1, SeqCst);
        Ok::<_, io::Error>(())
    });
    let body = async |id: &mut u32| {
        sleep(Duration::from_millis(1)).await;
        if *id == 0 {
            panicked.store(true, SeqCst);
            panic!("item 0: corrupt page");
        }
        Ok::<_, io::Error>(())
    };
    let run = stream::iter(0_u32..1_000).for_each_scoped_concurrent(2, connections, body);
    let panic = within(AssertUnwindSafe(run).catch_unwind())
        .await
        .expect_err("item 0's body panics");
    assert_eq!(message(&*panic), "item 0: corrupt page");
    assert_eq!(acquired_after.load(SeqCst), 0, "acquired after the panic");
    assert_eq!(
        released.load(SeqCst),
        acquired.load(SeqCst),
        "the panic resumed before every release completed"
    );
}

/// Items 0 and 1 both panic in the same poll of the adapter, item 0 first:
/// their acquires wait for a signal each, sent to item 0 and then to item 1,
/// so that the adapter polls them in that order. Item 0's release then waits
/// a little, so item 1's panic reaches the adapter first. The panic that
/// resumes is the first one, item 0's.
#[tokio::test]
async fn of_two_panics_the_first_resumes() {
    let (to_0, from_0) = oneshot::channel::<()>();
    let (to_1, from_1) = oneshot::channel::<()>();
    let signals = Mutex::new(vec![Some(from_0), Some(from_1)]);
    let connections = async_bracket(async |id: u32| {
        let signal = signals.lock().unwrap()[id as usize].take();
        if let Some(signal) = signal {
            signal.await.expect("the signal is sent");
        }
        Ok::<_, io::Error>(id)
    })
    .release(|id: u32| async move {
        if id == 0 {
            yield_now().await;
        }
        Ok::<_, io::Error>(())
    });
    let body = async |id: &mut u32| {
        if *id < 2 {
            panic!("item {id} panicked");
        }
        Ok::<_, io::Error>(())
    };
    let run = stream::iter(0_u32..2).for_each_scoped_concurrent(2, connections, body);
    let signal = async {
        yield_now().await;
        to_0.send(()).expect("item 0 waits");
        to_1.send(()).expect("item 1 waits");
    };
    let (panicked, ()) =
        within(async { tokio::join!(AssertUnwindSafe(run).catch_unwind(), signal) }).await;
    let panic = panicked.expect_err("the bodies panic");
    assert_eq!(message(&*panic), "item 0 panicked");
}

/// `try_map_scoped_spawned(..).try_collect_all()`: item 0's body fails while
/// its release then takes 75 ms, the others take 1–5 ms. The collect makes
/// the stream fail-fast before its first poll, so nothing is acquired after
/// the failing step — not only after item 0's result arrives.
#[tokio::test(start_paused = true)]
async fn try_collect_all_of_spawned_tasks_stops_at_the_failing_step() {
    let tally = Arc::new(Tally::default());
    let connections = spawnable_connections(&tally);
    let body = {
        let tally = Arc::clone(&tally);
        async move |id: &mut u32| fetch(*id, &tally).await.map(|()| *id)
    };
    let collected = within(
        stream::iter(0_u32..1_000)
            .try_map_scoped_spawned(2, connections, body)
            .try_collect_all::<Vec<u32>>(),
    )
    .await;
    let failures = collected.expect_err("item 0 fails");
    assert!(
        matches!(failures.first(), ScopedError::Use { index: 0, .. }),
        "{failures:?}"
    );
    assert_eq!(
        tally.acquired_after_failure.load(SeqCst),
        0,
        "acquired after the failure"
    );
    assert_eq!(tally.released.load(SeqCst), tally.acquired.load(SeqCst));
}
