#![cfg(feature = "stream")]
//! Every stream adapter runs inside `tokio::spawn` with closures that borrow
//! what the spawned task owns: DESIGN.md invariant 7 — an adapter's future or
//! stream is `Send` whenever the same closures in a hand-written loop are.
//!
//! This is a compile-time test as much as a runtime one: each test spawns its
//! work with `tokio::spawn`, whose `Send + 'static` bound is the claim under
//! test, so a regression shows up as a build error ("implementation of `Send`
//! is not general enough", "future cannot be sent between threads safely")
//! located in the test named after the adapter and the capture pattern. At run
//! time each test then checks that the adapter did its work: values, counts,
//! what the bodies recorded, and, with the pool, that every resource came back
//! and how many were live at once.
//!
//! Tests are named `<adapter>_<pattern>`:
//!
//! - `a`: the acquire borrows a `String` local to the task;
//! - `b`: the body borrows a `Mutex<Vec<_>>` and pushes into it;
//! - `c`: the body borrows an `AtomicUsize`;
//! - `d`: an `async_bracket` whose acquire and release borrow a `&Pool`
//!   (`let pool = &*arc;` inside the task);
//! - `f`: a `&self` method of a `Service`, its closures using `self.config`
//!   and `self.hits`, run as `tokio::spawn(async move { service.run(..).await })`
//!   with an `Arc<Service>`;
//! - `g`: a generic library function taking the caller's stream and a
//!   `&Config`, called in a spawned task.
//!
//! The spawned adapters (feature `tokio`) need `'static` closures: they are
//! tested with `async move` closures owning `Arc` clones (`arc`, `arc_pool`,
//! `arc_service`), also inside `tokio::spawn`.
//!
//! A body that mutates a captured local (`total += ..`) is not `Clone`, so no
//! adapter takes it; it is not tested here.
//!
//! Every test is bounded by a 10 s timeout, so that a hang fails quickly.

#[path = "common/watchdog.rs"]
mod watchdog;

use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, Stream, TryStreamExt as _};
use loopscope::Outcome;
use loopscope::prelude::*;
use tokio::task::{JoinHandle, yield_now};
use tokio::time::timeout;
use watchdog::watchdog;

/// The items of every test.
const N: u32 = 8;
/// The concurrency limit of the concurrent adapters.
const LIMIT: usize = 4;
/// How long a test may take before it counts as hung.
const TIME_LIMIT: Duration = Duration::from_secs(10);

/// The error of an adapter whose resources are released by `Drop`.
type Error = ScopedError<io::Error, io::Error, Infallible>;
/// The error of an adapter with an `async_bracket(..).release(..)`.
type BracketError = ScopedError<io::Error, io::Error, io::Error>;

/// Awaits a spawned task's output; fails if it panicked or hangs.
async fn join<T>(task: JoinHandle<T>) -> T {
    timeout(TIME_LIMIT, task)
        .await
        .expect("timed out after 10 s")
        .expect("the spawned task panicked")
}

/// `conn-0`..`conn-7`: what the acquire of patterns a-d makes of items `0..N`.
fn conn_names() -> Vec<String> {
    (0..N).map(|i| format!("conn-{i}")).collect()
}

/// The body of pattern a: fails on item 5's connection, so the error's index
/// shows the acquire saw the borrowed prefix.
fn fail_on_conn_5(conn: &str) -> io::Result<()> {
    if conn == "conn-5" {
        return Err(io::Error::other("reset by peer"));
    }
    Ok(())
}

fn sorted<T: Ord>(mut values: Vec<T>) -> Vec<T> {
    values.sort();
    values
}

// ----------------------------------------------------------------- the pool

/// A tiny connection pool: `take` hands out an idle connection or opens one,
/// `put` gives it back; it counts how many are live and the peak.
#[derive(Debug, Default)]
struct Pool {
    idle: Mutex<Vec<String>>,
    opened: AtomicUsize,
    returned: AtomicUsize,
    live: AtomicUsize,
    peak: AtomicUsize,
    rolled_back: AtomicUsize,
}

/// A pooled connection lent for one item.
#[derive(Debug)]
struct Lease {
    conn: String,
    item: u32,
}

/// A snapshot of a [`Pool`]'s counters.
#[derive(Debug, PartialEq, Eq)]
struct Stats {
    opened: usize,
    returned: usize,
    live: usize,
    peak: usize,
    idle: usize,
    rolled_back: usize,
}

impl Stats {
    /// After `N` items, at most `peak` at a time, all returned: a connection is
    /// reused as soon as it comes back, so exactly `peak` were ever opened.
    fn settled(peak: usize) -> Self {
        Stats {
            opened: peak,
            returned: N as usize,
            live: 0,
            peak,
            idle: peak,
            rolled_back: 0,
        }
    }
}

impl Pool {
    fn take(&self, item: u32) -> Lease {
        let now = self.live.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        let conn = self.idle.lock().unwrap().pop();
        let conn = conn.unwrap_or_else(|| format!("conn#{}", self.opened.fetch_add(1, SeqCst)));
        Lease { conn, item }
    }

    fn put(&self, lease: Lease) {
        self.idle.lock().unwrap().push(lease.conn);
        self.returned.fetch_add(1, SeqCst);
        self.live.fetch_sub(1, SeqCst);
    }

    fn stats(&self) -> Stats {
        Stats {
            opened: self.opened.load(SeqCst),
            returned: self.returned.load(SeqCst),
            live: self.live.load(SeqCst),
            peak: self.peak.load(SeqCst),
            idle: self.idle.lock().unwrap().len(),
            rolled_back: self.rolled_back.load(SeqCst),
        }
    }
}

// -------------------------------------------------------------- the service

struct Config {
    prefix: String,
    limit: usize,
}

impl Config {
    fn new() -> Self {
        Config {
            prefix: String::from("svc-"),
            limit: LIMIT,
        }
    }
}

/// A service whose `&self` methods run an adapter with closures using
/// `self.config` and `self.hits` (pattern f).
struct Service {
    config: Config,
    hits: AtomicUsize,
}

/// `svc-0`..`svc-7`: what the service's acquire makes of items `0..N`.
fn svc_names() -> Vec<String> {
    (0..N).map(|i| format!("svc-{i}")).collect()
}

impl Service {
    fn new() -> Arc<Self> {
        Arc::new(Service {
            config: Config::new(),
            hits: AtomicUsize::new(0),
        })
    }

    async fn run_for_each_scoped(&self, ids: Vec<u32>) -> Result<(), Error> {
        stream::iter(ids)
            .for_each_scoped(
                async |id: u32| Ok::<_, io::Error>(format!("{}{id}", self.config.prefix)),
                async |_conn: &mut String| {
                    self.hits.fetch_add(1, SeqCst);
                    Ok::<_, io::Error>(())
                },
            )
            .await
    }

    async fn run_try_map_scoped(&self, ids: Vec<u32>) -> Result<Vec<String>, Error> {
        stream::iter(ids)
            .try_map_scoped(
                async |id: u32| Ok::<_, io::Error>(format!("{}{id}", self.config.prefix)),
                async |conn: &mut String| {
                    self.hits.fetch_add(1, SeqCst);
                    Ok::<_, io::Error>(conn.clone())
                },
            )
            .try_collect()
            .await
    }

    async fn run_for_each_scoped_concurrent(&self, ids: Vec<u32>) -> Result<(), Error> {
        stream::iter(ids)
            .for_each_scoped_concurrent(
                self.config.limit,
                async |id: u32| Ok::<_, io::Error>(format!("{}{id}", self.config.prefix)),
                async |_conn: &mut String| {
                    self.hits.fetch_add(1, SeqCst);
                    Ok::<_, io::Error>(())
                },
            )
            .await
            .map_err(Failures::into_first)
    }

    async fn run_try_map_scoped_concurrent(&self, ids: Vec<u32>) -> Result<Vec<String>, Error> {
        stream::iter(ids)
            .try_map_scoped_concurrent(
                self.config.limit,
                async |id: u32| Ok::<_, io::Error>(format!("{}{id}", self.config.prefix)),
                async |conn: &mut String| {
                    self.hits.fetch_add(1, SeqCst);
                    Ok::<_, io::Error>(conn.clone())
                },
            )
            .try_collect()
            .await
    }

    async fn run_try_map_scoped_unordered(&self, ids: Vec<u32>) -> Result<Vec<String>, Error> {
        stream::iter(ids)
            .try_map_scoped_unordered(
                self.config.limit,
                async |id: u32| Ok::<_, io::Error>(format!("{}{id}", self.config.prefix)),
                async |conn: &mut String| {
                    self.hits.fetch_add(1, SeqCst);
                    Ok::<_, io::Error>(conn.clone())
                },
            )
            .try_collect()
            .await
    }
}

// ------------------------------------------------- the library functions (g)

/// `db0`..`db7`: the names fed to the library functions.
fn db_names() -> Vec<String> {
    (0..N).map(|i| format!("db{i}")).collect()
}

/// `svc-db0`..`svc-db7`: what the library functions' acquire makes of them.
fn svc_db_names() -> Vec<String> {
    (0..N).map(|i| format!("svc-db{i}")).collect()
}

/// Returns the total length of the connections it used.
async fn process_all_for_each_scoped<S: Stream<Item = String> + Send>(
    s: S,
    cfg: &Config,
) -> Result<usize, Error> {
    let total = AtomicUsize::new(0);
    s.for_each_scoped(
        async |name: String| Ok::<_, io::Error>(format!("{}{name}", cfg.prefix)),
        async |conn: &mut String| {
            total.fetch_add(conn.len(), SeqCst);
            Ok::<_, io::Error>(())
        },
    )
    .await?;
    Ok(total.into_inner())
}

async fn process_all_try_map_scoped<S: Stream<Item = String> + Send>(
    s: S,
    cfg: &Config,
) -> Result<Vec<String>, Error> {
    s.try_map_scoped(
        async |name: String| Ok::<_, io::Error>(format!("{}{name}", cfg.prefix)),
        async |conn: &mut String| Ok::<_, io::Error>(conn.clone()),
    )
    .try_collect()
    .await
}

/// Returns the total length of the connections it used.
async fn process_all_for_each_scoped_concurrent<S: Stream<Item = String> + Send>(
    s: S,
    cfg: &Config,
) -> Result<usize, Error> {
    let total = AtomicUsize::new(0);
    s.for_each_scoped_concurrent(
        cfg.limit,
        async |name: String| Ok::<_, io::Error>(format!("{}{name}", cfg.prefix)),
        async |conn: &mut String| {
            total.fetch_add(conn.len(), SeqCst);
            Ok::<_, io::Error>(())
        },
    )
    .await
    .map_err(Failures::into_first)?;
    Ok(total.into_inner())
}

async fn process_all_try_map_scoped_concurrent<S: Stream<Item = String> + Send>(
    s: S,
    cfg: &Config,
) -> Result<Vec<String>, Error> {
    s.try_map_scoped_concurrent(
        cfg.limit,
        async |name: String| Ok::<_, io::Error>(format!("{}{name}", cfg.prefix)),
        async |conn: &mut String| Ok::<_, io::Error>(conn.clone()),
    )
    .try_collect()
    .await
}

async fn process_all_try_map_scoped_unordered<S: Stream<Item = String> + Send>(
    s: S,
    cfg: &Config,
) -> Result<Vec<String>, Error> {
    s.try_map_scoped_unordered(
        cfg.limit,
        async |name: String| Ok::<_, io::Error>(format!("{}{name}", cfg.prefix)),
        async |conn: &mut String| Ok::<_, io::Error>(conn.clone()),
    )
    .try_collect()
    .await
}

// ============================================================ for_each_scoped

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_a() {
    let _watchdog = watchdog("for_each_scoped_a");
    let task = tokio::spawn(async move {
        let prefix = String::from("conn-");
        stream::iter(0..N)
            .for_each_scoped(
                async |id: u32| Ok::<_, io::Error>(format!("{prefix}{id}")),
                async |conn: &mut String| fail_on_conn_5(conn),
            )
            .await
    });
    let error = join(task).await.unwrap_err();
    assert!(
        matches!(error, ScopedError::Use { index: 5, .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_b() {
    let _watchdog = watchdog("for_each_scoped_b");
    let task = tokio::spawn(async move {
        let seen = Mutex::new(Vec::new());
        let result = stream::iter(0..N)
            .for_each_scoped(
                async |id: u32| Ok::<_, io::Error>(format!("conn-{id}")),
                async |conn: &mut String| {
                    seen.lock().unwrap().push(conn.clone());
                    Ok::<_, io::Error>(())
                },
            )
            .await;
        (result, seen.into_inner().unwrap())
    });
    let (result, seen) = join(task).await;
    result.unwrap();
    assert_eq!(seen, conn_names());
}

/// Pattern e, the body that keeps a running total: a body may not mutate what
/// it captures, so the total is threaded through `try_fold_scoped`, which is
/// spawnable, with an acquire borrowing the task's `&String` and a body
/// borrowing its `Mutex`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_fold_scoped_e() {
    let _watchdog = watchdog("try_fold_scoped_e");
    let task = tokio::spawn(async move {
        let prefix = String::from("conn");
        let seen = Mutex::new(Vec::new());
        let total = stream::iter(0..N)
            .try_fold_scoped(
                0,
                async |id: u32| Ok::<_, io::Error>(format!("{prefix}-{id}")),
                async |total, conn: &mut String| {
                    tokio::task::yield_now().await;
                    seen.lock().unwrap().push(conn.clone());
                    Ok::<_, io::Error>(total + conn.len())
                },
            )
            .await;
        (total, seen.into_inner().unwrap())
    });
    let (total, seen) = join(task).await;
    assert_eq!(total.unwrap(), 6 * N as usize);
    assert_eq!(seen, conn_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_c() {
    let _watchdog = watchdog("for_each_scoped_c");
    let task = tokio::spawn(async move {
        let hits = AtomicUsize::new(0);
        let result = stream::iter(0..N)
            .for_each_scoped(
                async |id: u32| Ok::<_, io::Error>(format!("conn-{id}")),
                async |_conn: &mut String| {
                    hits.fetch_add(1, SeqCst);
                    Ok::<_, io::Error>(())
                },
            )
            .await;
        (result, hits.into_inner())
    });
    let (result, hits) = join(task).await;
    result.unwrap();
    assert_eq!(hits, N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_d() {
    let _watchdog = watchdog("for_each_scoped_d");
    let pool = Arc::new(Pool::default());
    let task = tokio::spawn({
        let pool = Arc::clone(&pool);
        async move {
            let pool = &*pool;
            stream::iter(0..N)
                .for_each_scoped(
                    async_bracket(async |item: u32| Ok::<_, io::Error>(pool.take(item))).release(
                        |lease| async move {
                            pool.put(lease);
                            Ok::<_, io::Error>(())
                        },
                    ),
                    async |lease: &mut Lease| {
                        yield_now().await;
                        Ok::<_, io::Error>(lease.item)
                    },
                )
                .await
        }
    });
    let result: Result<(), BracketError> = join(task).await;
    result.unwrap();
    // Each connection came back before the next item took one: one was enough.
    assert_eq!(pool.stats(), Stats::settled(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_f() {
    let _watchdog = watchdog("for_each_scoped_f");
    let service = Service::new();
    let task = tokio::spawn({
        let service = Arc::clone(&service);
        async move { service.run_for_each_scoped((0..N).collect()).await }
    });
    join(task).await.unwrap();
    assert_eq!(service.hits.load(SeqCst), N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_g() {
    let _watchdog = watchdog("for_each_scoped_g");
    let config = Arc::new(Config::new());
    let task = tokio::spawn(async move {
        let cfg = &*config;
        process_all_for_each_scoped(stream::iter(db_names()), cfg).await
    });
    assert_eq!(join(task).await.unwrap(), N as usize * "svc-db0".len());
}

// ============================================================= try_map_scoped

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_a() {
    let _watchdog = watchdog("try_map_scoped_a");
    let task = tokio::spawn(async move {
        let prefix = String::from("conn-");
        stream::iter(0..N)
            .try_map_scoped(
                async |id: u32| Ok::<_, io::Error>(format!("{prefix}{id}")),
                async |conn: &mut String| Ok::<_, io::Error>(conn.clone()),
            )
            .try_collect::<Vec<_>>()
            .await
    });
    assert_eq!(join(task).await.unwrap(), conn_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_b() {
    let _watchdog = watchdog("try_map_scoped_b");
    let task = tokio::spawn(async move {
        let seen = Mutex::new(Vec::new());
        let lengths = stream::iter(0..N)
            .try_map_scoped(
                async |id: u32| Ok::<_, io::Error>(format!("conn-{id}")),
                async |conn: &mut String| {
                    seen.lock().unwrap().push(conn.clone());
                    Ok::<_, io::Error>(conn.len())
                },
            )
            .try_collect::<Vec<_>>()
            .await;
        (lengths, seen.into_inner().unwrap())
    });
    let (lengths, seen) = join(task).await;
    assert_eq!(lengths.unwrap(), [6; N as usize]);
    assert_eq!(seen, conn_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_c() {
    let _watchdog = watchdog("try_map_scoped_c");
    let task = tokio::spawn(async move {
        let hits = AtomicUsize::new(0);
        let counts = stream::iter(0..N)
            .try_map_scoped(
                async |id: u32| Ok::<_, io::Error>(format!("conn-{id}")),
                async |_conn: &mut String| Ok::<_, io::Error>(hits.fetch_add(1, SeqCst)),
            )
            .try_collect::<Vec<_>>()
            .await;
        (counts, hits.into_inner())
    });
    let (counts, hits) = join(task).await;
    // One body after another, in input order.
    assert_eq!(counts.unwrap(), (0..N as usize).collect::<Vec<_>>());
    assert_eq!(hits, N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_d() {
    let _watchdog = watchdog("try_map_scoped_d");
    let pool = Arc::new(Pool::default());
    let task = tokio::spawn({
        let pool = Arc::clone(&pool);
        async move {
            let pool = &*pool;
            stream::iter(0..N)
                .try_map_scoped(
                    async_bracket(async |item: u32| Ok::<_, io::Error>(pool.take(item))).release(
                        |lease| async move {
                            pool.put(lease);
                            Ok::<_, io::Error>(())
                        },
                    ),
                    async |lease: &mut Lease| {
                        yield_now().await;
                        Ok::<_, io::Error>(lease.item)
                    },
                )
                .try_collect::<Vec<_>>()
                .await
        }
    });
    let items: Result<_, BracketError> = join(task).await;
    assert_eq!(items.unwrap(), (0..N).collect::<Vec<_>>());
    assert_eq!(pool.stats(), Stats::settled(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_f() {
    let _watchdog = watchdog("try_map_scoped_f");
    let service = Service::new();
    let task = tokio::spawn({
        let service = Arc::clone(&service);
        async move { service.run_try_map_scoped((0..N).collect()).await }
    });
    assert_eq!(join(task).await.unwrap(), svc_names());
    assert_eq!(service.hits.load(SeqCst), N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_g() {
    let _watchdog = watchdog("try_map_scoped_g");
    let config = Arc::new(Config::new());
    let task = tokio::spawn(async move {
        let cfg = &*config;
        process_all_try_map_scoped(stream::iter(db_names()), cfg).await
    });
    assert_eq!(join(task).await.unwrap(), svc_db_names());
}

// ================================================= for_each_scoped_concurrent

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_concurrent_a() {
    let _watchdog = watchdog("for_each_scoped_concurrent_a");
    let task = tokio::spawn(async move {
        let prefix = String::from("conn-");
        stream::iter(0..N)
            .for_each_scoped_concurrent(
                LIMIT,
                async |id: u32| Ok::<_, io::Error>(format!("{prefix}{id}")),
                async |conn: &mut String| fail_on_conn_5(conn),
            )
            .await
    });
    let error = join(task).await.unwrap_err();
    assert!(
        matches!(error.first(), ScopedError::Use { index: 5, .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_concurrent_b() {
    let _watchdog = watchdog("for_each_scoped_concurrent_b");
    let task = tokio::spawn(async move {
        let seen = Mutex::new(Vec::new());
        let result = stream::iter(0..N)
            .for_each_scoped_concurrent(
                LIMIT,
                async |id: u32| Ok::<_, io::Error>(format!("conn-{id}")),
                async |conn: &mut String| {
                    seen.lock().unwrap().push(conn.clone());
                    Ok::<_, io::Error>(())
                },
            )
            .await;
        (result, seen.into_inner().unwrap())
    });
    let (result, seen) = join(task).await;
    result.unwrap();
    assert_eq!(sorted(seen), conn_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_concurrent_c() {
    let _watchdog = watchdog("for_each_scoped_concurrent_c");
    let task = tokio::spawn(async move {
        let hits = AtomicUsize::new(0);
        let result = stream::iter(0..N)
            .for_each_scoped_concurrent(
                LIMIT,
                async |id: u32| Ok::<_, io::Error>(format!("conn-{id}")),
                async |_conn: &mut String| {
                    hits.fetch_add(1, SeqCst);
                    Ok::<_, io::Error>(())
                },
            )
            .await;
        (result, hits.into_inner())
    });
    let (result, hits) = join(task).await;
    result.unwrap();
    assert_eq!(hits, N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_concurrent_d() {
    let _watchdog = watchdog("for_each_scoped_concurrent_d");
    let pool = Arc::new(Pool::default());
    let task = tokio::spawn({
        let pool = Arc::clone(&pool);
        async move {
            let pool = &*pool;
            stream::iter(0..N)
                .for_each_scoped_concurrent(
                    LIMIT,
                    async_bracket(async |item: u32| Ok::<_, io::Error>(pool.take(item))).release(
                        |lease| async move {
                            pool.put(lease);
                            Ok::<_, io::Error>(())
                        },
                    ),
                    async |lease: &mut Lease| {
                        yield_now().await;
                        Ok::<_, io::Error>(lease.item)
                    },
                )
                .await
        }
    });
    let result: Result<(), Failures<BracketError>> = join(task).await;
    result.unwrap();
    // `LIMIT` live at once (every body yields once), never more.
    assert_eq!(pool.stats(), Stats::settled(LIMIT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_concurrent_f() {
    let _watchdog = watchdog("for_each_scoped_concurrent_f");
    let service = Service::new();
    let task = tokio::spawn({
        let service = Arc::clone(&service);
        async move {
            service
                .run_for_each_scoped_concurrent((0..N).collect())
                .await
        }
    });
    join(task).await.unwrap();
    assert_eq!(service.hits.load(SeqCst), N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_concurrent_g() {
    let _watchdog = watchdog("for_each_scoped_concurrent_g");
    let config = Arc::new(Config::new());
    let task = tokio::spawn(async move {
        let cfg = &*config;
        process_all_for_each_scoped_concurrent(stream::iter(db_names()), cfg).await
    });
    assert_eq!(join(task).await.unwrap(), N as usize * "svc-db0".len());
}

// ================================================== try_map_scoped_concurrent

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_concurrent_a() {
    let _watchdog = watchdog("try_map_scoped_concurrent_a");
    let task = tokio::spawn(async move {
        let prefix = String::from("conn-");
        stream::iter(0..N)
            .try_map_scoped_concurrent(
                LIMIT,
                async |id: u32| Ok::<_, io::Error>(format!("{prefix}{id}")),
                async |conn: &mut String| Ok::<_, io::Error>(conn.clone()),
            )
            .try_collect::<Vec<_>>()
            .await
    });
    assert_eq!(join(task).await.unwrap(), conn_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_concurrent_b() {
    let _watchdog = watchdog("try_map_scoped_concurrent_b");
    let task = tokio::spawn(async move {
        let seen = Mutex::new(Vec::new());
        let lengths = stream::iter(0..N)
            .try_map_scoped_concurrent(
                LIMIT,
                async |id: u32| Ok::<_, io::Error>(format!("conn-{id}")),
                async |conn: &mut String| {
                    seen.lock().unwrap().push(conn.clone());
                    Ok::<_, io::Error>(conn.len())
                },
            )
            .try_collect::<Vec<_>>()
            .await;
        (lengths, seen.into_inner().unwrap())
    });
    let (lengths, seen) = join(task).await;
    assert_eq!(lengths.unwrap(), [6; N as usize]);
    assert_eq!(sorted(seen), conn_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_concurrent_c() {
    let _watchdog = watchdog("try_map_scoped_concurrent_c");
    let task = tokio::spawn(async move {
        let hits = AtomicUsize::new(0);
        let counts = stream::iter(0..N)
            .try_map_scoped_concurrent(
                LIMIT,
                async |id: u32| Ok::<_, io::Error>(format!("conn-{id}")),
                async |_conn: &mut String| Ok::<_, io::Error>(hits.fetch_add(1, SeqCst)),
            )
            .try_collect::<Vec<_>>()
            .await;
        (counts, hits.into_inner())
    });
    let (counts, hits) = join(task).await;
    // Every body ran once, each saw a different count.
    assert_eq!(sorted(counts.unwrap()), (0..N as usize).collect::<Vec<_>>());
    assert_eq!(hits, N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_concurrent_d() {
    let _watchdog = watchdog("try_map_scoped_concurrent_d");
    let pool = Arc::new(Pool::default());
    let task = tokio::spawn({
        let pool = Arc::clone(&pool);
        async move {
            let pool = &*pool;
            stream::iter(0..N)
                .try_map_scoped_concurrent(
                    LIMIT,
                    async_bracket(async |item: u32| Ok::<_, io::Error>(pool.take(item))).release(
                        |lease| async move {
                            pool.put(lease);
                            Ok::<_, io::Error>(())
                        },
                    ),
                    async |lease: &mut Lease| {
                        yield_now().await;
                        Ok::<_, io::Error>(lease.item)
                    },
                )
                .try_collect::<Vec<_>>()
                .await
        }
    });
    let items: Result<_, BracketError> = join(task).await;
    assert_eq!(items.unwrap(), (0..N).collect::<Vec<_>>(), "input order");
    assert_eq!(pool.stats(), Stats::settled(LIMIT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_concurrent_f() {
    let _watchdog = watchdog("try_map_scoped_concurrent_f");
    let service = Service::new();
    let task = tokio::spawn({
        let service = Arc::clone(&service);
        async move {
            service
                .run_try_map_scoped_concurrent((0..N).collect())
                .await
        }
    });
    assert_eq!(join(task).await.unwrap(), svc_names());
    assert_eq!(service.hits.load(SeqCst), N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_concurrent_g() {
    let _watchdog = watchdog("try_map_scoped_concurrent_g");
    let config = Arc::new(Config::new());
    let task = tokio::spawn(async move {
        let cfg = &*config;
        process_all_try_map_scoped_concurrent(stream::iter(db_names()), cfg).await
    });
    assert_eq!(join(task).await.unwrap(), svc_db_names());
}

// =================================================== try_map_scoped_unordered

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_unordered_a() {
    let _watchdog = watchdog("try_map_scoped_unordered_a");
    let task = tokio::spawn(async move {
        let prefix = String::from("conn-");
        stream::iter(0..N)
            .try_map_scoped_unordered(
                LIMIT,
                async |id: u32| Ok::<_, io::Error>(format!("{prefix}{id}")),
                async |conn: &mut String| Ok::<_, io::Error>(conn.clone()),
            )
            .try_collect::<Vec<_>>()
            .await
    });
    assert_eq!(sorted(join(task).await.unwrap()), conn_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_unordered_b() {
    let _watchdog = watchdog("try_map_scoped_unordered_b");
    let task = tokio::spawn(async move {
        let seen = Mutex::new(Vec::new());
        let lengths = stream::iter(0..N)
            .try_map_scoped_unordered(
                LIMIT,
                async |id: u32| Ok::<_, io::Error>(format!("conn-{id}")),
                async |conn: &mut String| {
                    seen.lock().unwrap().push(conn.clone());
                    Ok::<_, io::Error>(conn.len())
                },
            )
            .try_collect::<Vec<_>>()
            .await;
        (lengths, seen.into_inner().unwrap())
    });
    let (lengths, seen) = join(task).await;
    assert_eq!(lengths.unwrap(), [6; N as usize]);
    assert_eq!(sorted(seen), conn_names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_unordered_c() {
    let _watchdog = watchdog("try_map_scoped_unordered_c");
    let task = tokio::spawn(async move {
        let hits = AtomicUsize::new(0);
        let counts = stream::iter(0..N)
            .try_map_scoped_unordered(
                LIMIT,
                async |id: u32| Ok::<_, io::Error>(format!("conn-{id}")),
                async |_conn: &mut String| Ok::<_, io::Error>(hits.fetch_add(1, SeqCst)),
            )
            .try_collect::<Vec<_>>()
            .await;
        (counts, hits.into_inner())
    });
    let (counts, hits) = join(task).await;
    assert_eq!(sorted(counts.unwrap()), (0..N as usize).collect::<Vec<_>>());
    assert_eq!(hits, N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_unordered_d() {
    let _watchdog = watchdog("try_map_scoped_unordered_d");
    let pool = Arc::new(Pool::default());
    let task = tokio::spawn({
        let pool = Arc::clone(&pool);
        async move {
            let pool = &*pool;
            stream::iter(0..N)
                .try_map_scoped_unordered(
                    LIMIT,
                    async_bracket(async |item: u32| Ok::<_, io::Error>(pool.take(item))).release(
                        |lease| async move {
                            pool.put(lease);
                            Ok::<_, io::Error>(())
                        },
                    ),
                    async |lease: &mut Lease| {
                        yield_now().await;
                        Ok::<_, io::Error>(lease.item)
                    },
                )
                .try_collect::<Vec<_>>()
                .await
        }
    });
    let items: Result<_, BracketError> = join(task).await;
    assert_eq!(sorted(items.unwrap()), (0..N).collect::<Vec<_>>());
    assert_eq!(pool.stats(), Stats::settled(LIMIT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_unordered_f() {
    let _watchdog = watchdog("try_map_scoped_unordered_f");
    let service = Service::new();
    let task = tokio::spawn({
        let service = Arc::clone(&service);
        async move { service.run_try_map_scoped_unordered((0..N).collect()).await }
    });
    assert_eq!(sorted(join(task).await.unwrap()), svc_names());
    assert_eq!(service.hits.load(SeqCst), N as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_unordered_g() {
    let _watchdog = watchdog("try_map_scoped_unordered_g");
    let config = Arc::new(Config::new());
    let task = tokio::spawn(async move {
        let cfg = &*config;
        process_all_try_map_scoped_unordered(stream::iter(db_names()), cfg).await
    });
    assert_eq!(sorted(join(task).await.unwrap()), svc_db_names());
}

// ======================================================== the spawned adapters

/// `for_each_scoped_spawned` and `try_map_scoped_spawned` run each item as a
/// task, so their closures own `Arc` clones (`async move`) instead of
/// borrowing; the adapters themselves still run inside `tokio::spawn`.
///
/// Their bodies wait on a `Barrier` of `LIMIT`: a test passes only if `LIMIT`
/// items are in flight at once (otherwise it hangs, and times out).
#[cfg(feature = "tokio")]
mod spawned {
    use futures::StreamExt as _;
    use loopscope::Outcome;
    use tokio::sync::Barrier;

    use super::*;

    impl Service {
        /// The spawned adapters need `'static` closures: an `Arc<Self>` method
        /// hands them clones of `self`.
        async fn run_for_each_scoped_spawned(self: Arc<Self>, ids: Vec<u32>) -> Result<(), Error> {
            let (for_acquire, for_body) = (Arc::clone(&self), Arc::clone(&self));
            let barrier = Arc::new(Barrier::new(self.config.limit));
            stream::iter(ids)
                .for_each_scoped_spawned(
                    self.config.limit,
                    async move |id: u32| {
                        Ok::<_, io::Error>(format!("{}{id}", for_acquire.config.prefix))
                    },
                    async move |_conn: &mut String| {
                        barrier.wait().await;
                        for_body.hits.fetch_add(1, SeqCst);
                        Ok::<_, io::Error>(())
                    },
                )
                .await
                .map_err(Failures::into_first)
        }

        async fn run_try_map_scoped_spawned(
            self: Arc<Self>,
            ids: Vec<u32>,
        ) -> Result<Vec<String>, Error> {
            let (for_acquire, for_body) = (Arc::clone(&self), Arc::clone(&self));
            let barrier = Arc::new(Barrier::new(self.config.limit));
            stream::iter(ids)
                .try_map_scoped_spawned(
                    self.config.limit,
                    async move |id: u32| {
                        Ok::<_, io::Error>(format!("{}{id}", for_acquire.config.prefix))
                    },
                    async move |conn: &mut String| {
                        barrier.wait().await;
                        for_body.hits.fetch_add(1, SeqCst);
                        Ok::<_, io::Error>(conn.clone())
                    },
                )
                .try_collect()
                .await
        }
    }

    /// An `async_bracket` over an `Arc<Pool>` whose release, told the outcome,
    /// counts the rollbacks; `.spawn_on_cancel()` needs the release's future
    /// to own its `Arc`.
    macro_rules! arc_pool_bracket {
        ($pool:expr) => {{
            let (taking, returning) = (Arc::clone($pool), Arc::clone($pool));
            async_bracket(async move |item: u32| Ok::<_, io::Error>(taking.take(item)))
                .release_with(move |lease, outcome: Outcome| {
                    let pool = Arc::clone(&returning);
                    async move {
                        if !outcome.is_completed() {
                            pool.rolled_back.fetch_add(1, SeqCst);
                        }
                        pool.put(lease);
                        Ok::<_, io::Error>(())
                    }
                })
                .spawn_on_cancel()
        }};
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn for_each_scoped_spawned_arc() {
        let _watchdog = watchdog("for_each_scoped_spawned_arc");
        let task = tokio::spawn(async move {
            let prefix = Arc::new(String::from("conn-"));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let barrier = Arc::new(Barrier::new(LIMIT));
            let acquire = {
                let prefix = Arc::clone(&prefix);
                async move |id: u32| Ok::<_, io::Error>(format!("{prefix}{id}"))
            };
            let body = {
                let seen = Arc::clone(&seen);
                async move |conn: &mut String| {
                    barrier.wait().await;
                    seen.lock().unwrap().push(conn.clone());
                    Ok::<_, io::Error>(())
                }
            };
            let result = stream::iter(0..N)
                .for_each_scoped_spawned(LIMIT, acquire, body)
                .await;
            let seen = seen.lock().unwrap().clone();
            (result, seen)
        });
        let (result, seen) = join(task).await;
        result.unwrap();
        assert_eq!(sorted(seen), conn_names());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn try_map_scoped_spawned_arc() {
        let _watchdog = watchdog("try_map_scoped_spawned_arc");
        let task = tokio::spawn(async move {
            let prefix = Arc::new(String::from("conn-"));
            let hits = Arc::new(AtomicUsize::new(0));
            let barrier = Arc::new(Barrier::new(LIMIT));
            let acquire = {
                let prefix = Arc::clone(&prefix);
                async move |id: u32| Ok::<_, io::Error>(format!("{prefix}{id}"))
            };
            let body = {
                let hits = Arc::clone(&hits);
                async move |conn: &mut String| {
                    barrier.wait().await;
                    hits.fetch_add(1, SeqCst);
                    Ok::<_, io::Error>(conn.clone())
                }
            };
            let names = stream::iter(0..N)
                .try_map_scoped_spawned(LIMIT, acquire, body)
                .try_collect::<Vec<_>>()
                .await;
            (names, hits)
        });
        let (names, hits) = join(task).await;
        assert_eq!(names.unwrap(), conn_names(), "input order");
        assert_eq!(hits.load(SeqCst), N as usize);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn for_each_scoped_spawned_arc_pool() {
        let _watchdog = watchdog("for_each_scoped_spawned_arc_pool");
        let pool = Arc::new(Pool::default());
        let task = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move {
                let barrier = Arc::new(Barrier::new(LIMIT));
                stream::iter(0..N)
                    .for_each_scoped_spawned(
                        LIMIT,
                        arc_pool_bracket!(&pool),
                        async move |lease: &mut Lease| {
                            barrier.wait().await;
                            Ok::<_, io::Error>(lease.item)
                        },
                    )
                    .await
            }
        });
        let result: Result<(), Failures<BracketError>> = join(task).await;
        result.unwrap();
        assert_eq!(pool.stats(), Stats::settled(LIMIT));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn try_map_scoped_spawned_arc_pool() {
        let _watchdog = watchdog("try_map_scoped_spawned_arc_pool");
        let pool = Arc::new(Pool::default());
        let task = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move {
                let barrier = Arc::new(Barrier::new(LIMIT));
                stream::iter(0..N)
                    .try_map_scoped_spawned(
                        LIMIT,
                        arc_pool_bracket!(&pool),
                        async move |lease: &mut Lease| {
                            barrier.wait().await;
                            if lease.item == 5 {
                                return Err(io::Error::other("duplicate key"));
                            }
                            Ok(lease.item)
                        },
                    )
                    .collect::<Vec<_>>()
                    .await
            }
        });
        let results: Vec<Result<u32, BracketError>> = join(task).await;
        // One result per item, in input order; item 5's body failed.
        let indices: Vec<_> = results
            .iter()
            .map(|result| match result {
                Ok(item) => Ok(*item as usize),
                Err(error) => Err(error.index()),
            })
            .collect();
        assert_eq!(
            indices,
            [Ok(0), Ok(1), Ok(2), Ok(3), Ok(4), Err(5), Ok(6), Ok(7)]
        );
        assert!(
            matches!(results[5], Err(ScopedError::Use { .. })),
            "{:?}",
            results[5]
        );
        // Item 5's release was told its body failed.
        assert_eq!(
            pool.stats(),
            Stats {
                rolled_back: 1,
                ..Stats::settled(LIMIT)
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn for_each_scoped_spawned_arc_service() {
        let _watchdog = watchdog("for_each_scoped_spawned_arc_service");
        let service = Service::new();
        let task = tokio::spawn({
            let service = Arc::clone(&service);
            async move { service.run_for_each_scoped_spawned((0..N).collect()).await }
        });
        join(task).await.unwrap();
        assert_eq!(service.hits.load(SeqCst), N as usize);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn try_map_scoped_spawned_arc_service() {
        let _watchdog = watchdog("try_map_scoped_spawned_arc_service");
        let service = Service::new();
        let task = tokio::spawn({
            let service = Arc::clone(&service);
            async move { service.run_try_map_scoped_spawned((0..N).collect()).await }
        });
        assert_eq!(join(task).await.unwrap(), svc_names());
        assert_eq!(service.hits.load(SeqCst), N as usize);
    }
}

// ------------------------------------------- failures with items in flight

/// A resource that counts itself live until it is dropped, borrowing the
/// task's counter.
struct Counted<'a> {
    live: &'a AtomicUsize,
}

impl<'a> Counted<'a> {
    fn open(live: &'a AtomicUsize, peak: &AtomicUsize) -> Self {
        let now = live.fetch_add(1, SeqCst) + 1;
        peak.fetch_max(now, SeqCst);
        Counted { live }
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.live.fetch_sub(1, SeqCst);
    }
}

/// Live, peak, acquired and released-by-the-async-release counts.
#[derive(Default)]
struct Counts {
    live: AtomicUsize,
    peak: AtomicUsize,
    acquired: AtomicUsize,
    released: AtomicUsize,
}

/// A resource that counts itself live until it is dropped, owning a handle on
/// the counts: the resource of an async bracket inside `tokio::spawn` (a
/// resource type that borrows, released by an async release, is not yet
/// spawnable).
struct Owned(Arc<Counts>);

impl Owned {
    fn open(counts: &Arc<Counts>) -> Self {
        counts.acquired.fetch_add(1, SeqCst);
        let now = counts.live.fetch_add(1, SeqCst) + 1;
        counts.peak.fetch_max(now, SeqCst);
        Owned(Arc::clone(counts))
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, SeqCst);
    }
}

/// Inside `tokio::spawn`, with closures borrowing the task's data: item 1's
/// body fails while the other items are in flight and every release takes
/// 20 ms. The adapter returns item 1's error only once every async release has
/// completed (invariant 5, quiescence: dropping them would not do), never with
/// more than `LIMIT` live; a run without the failure ends the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_scoped_concurrent_fails_with_slow_releases_in_flight() {
    let _watchdog = watchdog("for_each_scoped_concurrent_fails_with_slow_releases_in_flight");
    for failing in [None, Some(1)] {
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn({
            let counts = Arc::clone(&counts);
            async move {
                let (counts, failing) = (&counts, &failing);
                let result = stream::iter(0..N)
                    .for_each_scoped_concurrent(
                        LIMIT,
                        async_bracket(async |item: u32| {
                            Ok::<_, io::Error>((item, Owned::open(counts)))
                        })
                        .release(|(_item, resource)| async move {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            resource.0.released.fetch_add(1, SeqCst);
                            drop(resource);
                            Ok::<_, io::Error>(())
                        }),
                        async |(item, _resource)| {
                            yield_now().await;
                            if Some(*item) == *failing {
                                return Err(io::Error::other("reset by peer"));
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            Ok(())
                        },
                    )
                    .await;
                // Read at once, before anything else can run: quiescence.
                let acquired = counts.acquired.load(SeqCst);
                (result, acquired, counts.released.load(SeqCst))
            }
        });
        let (result, acquired, released) = join(task).await;
        assert_eq!(
            released, acquired,
            "returned before every release completed"
        );
        assert_eq!(counts.live.load(SeqCst), 0);
        match failing {
            None => assert!(result.is_ok(), "{result:?}"),
            Some(_) => assert!(
                matches!(
                    result.as_ref().map_err(Failures::first),
                    Err(ScopedError::Use { index: 1, .. })
                ),
                "{result:?}"
            ),
        }
        assert!(counts.peak.load(SeqCst) <= LIMIT);
    }
}

/// Inside `tokio::spawn`, with closures borrowing the task's counters: item 2's
/// body panics while the other items sleep in their bodies. The panic reaches
/// the task's `JoinHandle`, and every resource acquired has been released
/// exactly once by then (invariant 2) — the others by `Drop`, for every
/// adapter that runs items concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_panic_with_items_in_flight_releases_every_resource() {
    let _watchdog = watchdog("a_body_panic_with_items_in_flight_releases_every_resource");
    for unordered in [false, true] {
        let counters = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let task = tokio::spawn({
            let counters = Arc::clone(&counters);
            async move {
                let (live, peak) = &*counters;
                let acquire =
                    async |item: u32| Ok::<_, io::Error>((item, Counted::open(live, peak)));
                let body = async |(item, _counted): &mut (u32, Counted<'_>)| {
                    yield_now().await;
                    if *item == 2 {
                        panic!("a body panicked");
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Ok::<_, io::Error>(())
                };
                if unordered {
                    let _ = stream::iter(0..N)
                        .try_map_scoped_unordered(LIMIT, acquire, body)
                        .try_collect::<Vec<()>>()
                        .await;
                } else {
                    let _ = stream::iter(0..N)
                        .for_each_scoped_concurrent(LIMIT, acquire, body)
                        .await;
                }
            }
        });
        let joined = timeout(TIME_LIMIT, task).await.expect("no hang");
        assert!(joined.expect_err("the panic reached the handle").is_panic());
        assert_eq!(counters.0.load(SeqCst), 0, "unordered: {unordered}");
        assert!(counters.1.load(SeqCst) <= LIMIT);
    }
}

/// Inside `tokio::spawn`, each sequential adapter (`for_each_scoped`,
/// `try_fold_scoped`, and `try_map_scoped` collected by `try_collect`), with
/// an async bracket whose release takes 20 ms and closures borrowing the
/// task's `&str` config, a `Mutex` log and the counts: item 2's body fails.
/// The adapter returns item 2's error only once its release has completed,
/// told `Failed` (invariants 3, 5); nothing is acquired after it (4); never
/// more than one resource live (1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequential_failure_awaits_the_slow_release_with_borrowing_closures() {
    let _watchdog =
        watchdog("a_sequential_failure_awaits_the_slow_release_with_borrowing_closures");
    for adapter in ["for_each", "fold", "map"] {
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn({
            let counts = Arc::clone(&counts);
            async move {
                let (counts, prefix, log) = (&counts, "db", &Mutex::new(Vec::new()));
                let acquire = async_bracket(async |item: u32| {
                    Ok::<_, io::Error>((item, Owned::open(counts)))
                })
                .release_with(async |resource, outcome| slow_release(log, resource, outcome).await);
                let body = async |(item, _): &mut (u32, Owned)| {
                    yield_now().await;
                    if *item == 2 {
                        return Err(io::Error::other(format!("{prefix}: reset by peer")));
                    }
                    Ok(*item)
                };
                let index = match adapter {
                    "for_each" => stream::iter(0..N)
                        .for_each_scoped(acquire, body)
                        .await
                        .map_err(|error| error.index()),
                    "fold" => stream::iter(0..N)
                        .try_fold_scoped(0, acquire, async |sum, resource| {
                            body(resource).await.map(|item| sum + item)
                        })
                        .await
                        .map(drop)
                        .map_err(|error| error.index()),
                    _ => stream::iter(0..N)
                        .try_map_scoped(acquire, body)
                        .try_collect::<Vec<u32>>()
                        .await
                        .map(drop)
                        .map_err(|error| error.index()),
                };
                // Read at once, before anything else can run: quiescence.
                let released = counts.released.load(SeqCst);
                (index, released, log.lock().unwrap().clone())
            }
        });
        let (index, released, log) = join(task).await;
        assert_eq!(index, Err(2), "{adapter}");
        assert_eq!(
            released, 3,
            "{adapter}: returned before item 2's release completed"
        );
        assert_eq!(
            counts.acquired.load(SeqCst),
            3,
            "{adapter}: acquired after the failure"
        );
        assert_eq!(
            log,
            [
                (0, Outcome::Completed),
                (1, Outcome::Completed),
                (2, Outcome::Failed)
            ],
            "{adapter}"
        );
        assert_eq!(counts.live.load(SeqCst), 0, "{adapter}");
        assert_eq!(counts.peak.load(SeqCst), 1, "{adapter}");
    }
}

// ------------------------------- structured concurrency inside `tokio::spawn`

/// The release of the stuck-sibling tests: logs the item and how it ended,
/// after 20 ms (a slow close), then drops the resource.
async fn slow_release(
    log: &Mutex<Vec<(u32, Outcome)>>,
    (item, resource): (u32, Owned),
    outcome: Outcome,
) -> io::Result<()> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    log.lock().unwrap().push((item, outcome));
    resource.0.released.fetch_add(1, SeqCst);
    Ok(())
}

/// The bodies of the stuck-sibling tests: item 0 fails (or panics) after
/// 5 ms; every other item is stuck forever, until it is cancelled.
async fn fail_or_stick(item: u32, prefix: &str, panics: bool) -> io::Result<String> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    if item != 0 {
        std::future::pending::<()>().await;
    }
    if panics {
        panic!("{prefix}: item 0 panicked");
    }
    Err(io::Error::other(format!("{prefix}: item 0 failed")))
}

/// Inside `tokio::spawn`, every concurrent adapter, with closures borrowing the
/// task's `&str` config, a `Mutex` log and the counts: item 0 fails while its
/// siblings are stuck and every release takes 20 ms. Each adapter (the
/// mapping ones through `try_collect_all`) returns item 0's failure at once
/// — the stuck siblings cancelled, told `Cancelled`, every release completed
/// (invariants 3–5, 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_cancels_stuck_siblings_with_borrowing_closures() {
    let _watchdog = watchdog("a_failure_cancels_stuck_siblings_with_borrowing_closures");
    for adapter in ["for_each", "ordered", "unordered"] {
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn({
            let counts = Arc::clone(&counts);
            async move {
                let (prefix, log) = ("db", Mutex::new(Vec::new()));
                let (counts, log) = (&counts, &log);
                let bracket = async_bracket(async |item: u32| {
                    Ok::<_, io::Error>((item, Owned::open(counts)))
                })
                .release_with(async |resource, outcome| slow_release(log, resource, outcome).await);
                let body =
                    async |(item, _): &mut (u32, Owned)| fail_or_stick(*item, prefix, false).await;
                let started = tokio::time::Instant::now();
                let failures = match adapter {
                    "for_each" => stream::iter(0..N)
                        .for_each_scoped_concurrent(
                            LIMIT,
                            bracket,
                            async |resource: &mut (u32, Owned)| body(resource).await.map(drop),
                        )
                        .await
                        .map(drop),
                    "ordered" => stream::iter(0..N)
                        .try_map_scoped_concurrent(LIMIT, bracket, body)
                        .try_collect_all::<Vec<String>>()
                        .await
                        .map(drop),
                    _ => stream::iter(0..N)
                        .try_map_scoped_unordered(LIMIT, bracket, body)
                        .try_collect_all::<Vec<String>>()
                        .await
                        .map(drop),
                }
                .expect_err("item 0 fails");
                let elapsed = started.elapsed();
                let acquired = counts.acquired.load(SeqCst);
                let released = counts.released.load(SeqCst);
                let outcomes = log.lock().unwrap().clone();
                (
                    failures.index(),
                    failures.to_string(),
                    elapsed,
                    acquired,
                    released,
                    outcomes,
                )
            }
        });
        let (index, message, elapsed, acquired, released, mut outcomes) = join(task).await;
        assert_eq!(index, 0, "{adapter}: {message}");
        assert!(message.contains("item 0"), "{adapter}: {message}");
        assert!(
            elapsed < Duration::from_secs(1),
            "{adapter}: took {elapsed:?}"
        );
        assert_eq!(
            released, acquired,
            "{adapter}: returned before every release"
        );
        assert_eq!(acquired, LIMIT, "{adapter}: acquired after the failure");
        outcomes.sort_by_key(|&(item, _)| item);
        let mut expected = vec![(0, Outcome::Failed)];
        expected.extend((1..LIMIT as u32).map(|item| (item, Outcome::Cancelled)));
        assert_eq!(outcomes, expected, "{adapter}");
        assert_eq!(counts.live.load(SeqCst), 0);
    }
}

/// As above, item 0's body panics: the panic reaches the task's `JoinHandle`
/// only once the stuck siblings were cancelled and every release (each
/// 20 ms) has completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_cancels_stuck_siblings_with_borrowing_closures() {
    let _watchdog = watchdog("a_panic_cancels_stuck_siblings_with_borrowing_closures");
    for adapter in ["for_each", "ordered", "unordered"] {
        let counts = Arc::new(Counts::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (counts, log) = (Arc::clone(&counts), Arc::clone(&log));
            async move {
                let prefix = "db";
                let (counts, log) = (&counts, &*log);
                let bracket = async_bracket(async |item: u32| {
                    Ok::<_, io::Error>((item, Owned::open(counts)))
                })
                .release_with(async |resource, outcome| slow_release(log, resource, outcome).await);
                let body =
                    async |(item, _): &mut (u32, Owned)| fail_or_stick(*item, prefix, true).await;
                match adapter {
                    "for_each" => drop(
                        stream::iter(0..N)
                            .for_each_scoped_concurrent(LIMIT, bracket, body)
                            .await,
                    ),
                    "ordered" => drop(
                        stream::iter(0..N)
                            .try_map_scoped_concurrent(LIMIT, bracket, body)
                            .try_collect_all::<Vec<String>>()
                            .await,
                    ),
                    _ => drop(
                        stream::iter(0..N)
                            .try_map_scoped_unordered(LIMIT, bracket, body)
                            .try_collect_all::<Vec<String>>()
                            .await,
                    ),
                }
            }
        });
        let joined = timeout(TIME_LIMIT, task).await.expect("no hang");
        assert!(joined.expect_err("the panic reached the handle").is_panic());
        assert_eq!(
            counts.released.load(SeqCst),
            counts.acquired.load(SeqCst),
            "{adapter}: the panic resumed before every release completed"
        );
        let mut outcomes = log.lock().unwrap().clone();
        outcomes.sort_by_key(|&(item, _)| item);
        let mut expected = vec![(0, Outcome::Panicked)];
        expected.extend((1..LIMIT as u32).map(|item| (item, Outcome::Cancelled)));
        assert_eq!(outcomes, expected, "{adapter}");
    }
}

/// As `a_failure_cancels_stuck_siblings_with_borrowing_closures`, with
/// resources released by `Drop` (a plain async closure acquire, which the
/// concurrent adapters run through the same guarded scope as a bracket): item
/// 0 fails or panics while its siblings are stuck; each adapter ends at once,
/// the siblings cancelled and every resource dropped before it returns (or
/// before the panic reaches the task's `JoinHandle`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_cancels_stuck_siblings_released_by_drop() {
    let _watchdog = watchdog("a_failure_cancels_stuck_siblings_released_by_drop");
    for panics in [false, true] {
        for adapter in ["for_each", "ordered", "unordered"] {
            let counts = Arc::new(Counts::default());
            let task = tokio::spawn({
                let counts = Arc::clone(&counts);
                async move {
                    let (prefix, counts) = ("db", &counts);
                    let open = async |item: u32| Ok::<_, io::Error>((item, Owned::open(counts)));
                    let body = async |(item, _): &mut (u32, Owned)| {
                        fail_or_stick(*item, prefix, panics).await
                    };
                    let started = tokio::time::Instant::now();
                    let failed = match adapter {
                        "for_each" => stream::iter(0..N)
                            .for_each_scoped_concurrent(LIMIT, open, body)
                            .await
                            .map_err(|failures| failures.index()),
                        "ordered" => stream::iter(0..N)
                            .try_map_scoped_concurrent(LIMIT, open, body)
                            .try_collect_all::<Vec<String>>()
                            .await
                            .map(drop)
                            .map_err(|failures| failures.index()),
                        _ => stream::iter(0..N)
                            .try_map_scoped_unordered(LIMIT, open, body)
                            .try_collect_all::<Vec<String>>()
                            .await
                            .map(drop)
                            .map_err(|failures| failures.index()),
                    };
                    // Read here, in the task: every resource must be gone
                    // when the adapter returns.
                    let live = counts.live.load(SeqCst);
                    (failed, live, started.elapsed())
                }
            });
            let joined = timeout(TIME_LIMIT, task).await.expect("no hang");
            let case = format!("{adapter}, panics: {panics}");
            if panics {
                assert!(joined.expect_err("the panic reached the handle").is_panic());
            } else {
                let (failed, live, elapsed) = joined.expect("no panic");
                assert_eq!(failed, Err(0), "{case}");
                assert_eq!(live, 0, "{case}: returned with resources live");
                assert!(elapsed < Duration::from_secs(1), "{case}: took {elapsed:?}");
            }
            assert_eq!(counts.live.load(SeqCst), 0, "{case}");
            assert_eq!(
                counts.acquired.load(SeqCst),
                LIMIT,
                "{case}: acquired after the failure"
            );
        }
    }
}

/// A service whose syncs borrow what it holds through `&self`: the config's
/// prefix, the release log and the counts (pattern `f` of the tests above,
/// here with failures).
struct Syncer {
    prefix: String,
    log: Mutex<Vec<(u32, Outcome)>>,
    // Each release's start and end, in order: `(item, true)` when it starts.
    releases: Mutex<Vec<(u32, bool)>>,
    counts: Arc<Counts>,
}

impl Syncer {
    /// One sync through `adapter`: item 0 fails (or panics) after 5 ms while
    /// its siblings are stuck and every release takes 20 ms.
    async fn sync(&self, adapter: &str, panics: bool) -> Result<(), BracketError> {
        let bracket =
            async_bracket(async |item: u32| Ok::<_, io::Error>((item, Owned::open(&self.counts))))
                .release_with(async |resource: (u32, Owned), outcome| {
                    let item = resource.0;
                    self.releases.lock().unwrap().push((item, true));
                    let released = slow_release(&self.log, resource, outcome).await;
                    self.releases.lock().unwrap().push((item, false));
                    released
                });
        // Unlike `fail_or_stick`, the siblings are stuck from their first poll:
        // when item 0 fails, 5 ms later, none of them is polled with it, so the
        // engine itself must wake them to see the cancellation.
        let body = async |(item, _): &mut (u32, Owned)| {
            if *item != 0 {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            if panics {
                panic!("{}: item 0 panicked", self.prefix);
            }
            Err::<String, _>(io::Error::other(format!("{}: item 0 failed", self.prefix)))
        };
        let items = stream::iter(0..N);
        match adapter {
            "for_each" => items
                .for_each_scoped_concurrent(LIMIT, bracket, async |resource: &mut (u32, Owned)| {
                    body(resource).await.map(drop)
                })
                .await
                .map_err(Failures::into_first),
            "ordered" => items
                .try_map_scoped_concurrent(LIMIT, bracket, body)
                .try_collect_all::<Vec<String>>()
                .await
                .map(drop)
                .map_err(Failures::into_first),
            _ => items
                .try_map_scoped_unordered(LIMIT, bracket, body)
                .try_collect_all::<Vec<String>>()
                .await
                .map(drop)
                .map_err(Failures::into_first),
        }
    }
}

/// The stuck-sibling failure and panic through a `&self` method, run as
/// `tokio::spawn(async move { service.sync(..).await })`: each adapter ends
/// with item 0's error (or its panic) only once the stuck siblings were
/// cancelled, told `Cancelled`, and every 20 ms release has completed. The
/// siblings are cancelled at once — their releases start while item 0's own
/// still runs — and nothing is acquired after the failure (invariants 3–5, 7,
/// 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_through_self_cancels_stuck_siblings() {
    let _watchdog = watchdog("a_failure_through_self_cancels_stuck_siblings");
    for panics in [false, true] {
        for adapter in ["for_each", "ordered", "unordered"] {
            let service = Arc::new(Syncer {
                prefix: "svc".to_owned(),
                log: Mutex::new(Vec::new()),
                releases: Mutex::new(Vec::new()),
                counts: Arc::new(Counts::default()),
            });
            let task = tokio::spawn({
                let service = Arc::clone(&service);
                async move { service.sync(adapter, panics).await }
            });
            let joined = timeout(TIME_LIMIT, task).await.expect("no hang");
            let case = format!("{adapter}, panics: {panics}");
            if panics {
                assert!(
                    joined.expect_err("the panic reached the handle").is_panic(),
                    "{case}"
                );
            } else {
                let error = joined.expect("no panic").expect_err("item 0 fails");
                assert_eq!(error.index(), 0, "{case}: {error}");
                assert_eq!(
                    error.to_string(),
                    "failed to use the resource for item 0: svc: item 0 failed",
                    "{case}"
                );
            }
            let counts = &service.counts;
            assert_eq!(
                counts.released.load(SeqCst),
                counts.acquired.load(SeqCst),
                "{case}: returned before every release completed"
            );
            assert_eq!(
                counts.acquired.load(SeqCst),
                LIMIT,
                "{case}: acquired after the failure"
            );
            assert_eq!(counts.live.load(SeqCst), 0, "{case}");
            let mut outcomes = service.log.lock().unwrap().clone();
            outcomes.sort_by_key(|&(item, _)| item);
            let first = if panics {
                Outcome::Panicked
            } else {
                Outcome::Failed
            };
            let mut expected = vec![(0, first)];
            expected.extend((1..LIMIT as u32).map(|item| (item, Outcome::Cancelled)));
            assert_eq!(outcomes, expected, "{case}");
            let releases = service.releases.lock().unwrap().clone();
            let item_0_released = releases
                .iter()
                .position(|&release| release == (0, false))
                .expect("item 0 released");
            let started_before: Vec<u32> = releases[..item_0_released]
                .iter()
                .filter(|&&(item, starts)| starts && item != 0)
                .map(|&(item, _)| item)
                .collect();
            assert_eq!(
                sorted(started_before),
                (1..LIMIT as u32).collect::<Vec<_>>(),
                "{case}: the siblings were not cancelled while item 0's release ran: {releases:?}"
            );
        }
    }
}

/// A resource released by `Drop`, holding the task's counter, whose `Drop`
/// panics when `panics` is set.
struct Fragile {
    live: Arc<AtomicUsize>,
    panics: bool,
}

impl Drop for Fragile {
    fn drop(&mut self) {
        self.live.fetch_sub(1, SeqCst);
        if self.panics {
            panic!("the resource's Drop panicked too");
        }
    }
}

/// Inside `tokio::spawn`, each sequential adapter with closures borrowing the
/// task's counter and config: item 1's body panics. Its resource, released by
/// `Drop`, is dropped before the panic reaches the task's `JoinHandle`, and a
/// `Drop` that panics too does not abort the process: the body's panic is the
/// one the handle gets (invariants 2, 5, 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequential_body_panic_drops_the_resource_inside_tokio_spawn() {
    let _watchdog = watchdog("a_sequential_body_panic_drops_the_resource_inside_tokio_spawn");
    for drop_panics in [false, true] {
        for adapter in ["for_each", "fold", "map"] {
            let live = Arc::new(AtomicUsize::new(0));
            let task = tokio::spawn({
                let live = Arc::clone(&live);
                async move {
                    let (live, prefix) = (&live, "db");
                    let open = async |item: u32| {
                        live.fetch_add(1, SeqCst);
                        let live = Arc::clone(live);
                        // Only item 1's, whose body panics: its drop runs
                        // once that panic is caught.
                        let panics = drop_panics && item == 1;
                        Ok::<_, io::Error>((item, Fragile { live, panics }))
                    };
                    let body = async |(item, _): &mut (u32, Fragile)| {
                        yield_now().await;
                        if *item == 1 {
                            panic!("{prefix}: the body of item 1 panicked");
                        }
                        Ok::<_, io::Error>(*item)
                    };
                    match adapter {
                        "for_each" => drop(stream::iter(0..N).for_each_scoped(open, body).await),
                        "fold" => drop(
                            stream::iter(0..N)
                                .try_fold_scoped(0, open, async |sum, resource| {
                                    body(resource).await.map(|item| sum + item)
                                })
                                .await,
                        ),
                        _ => drop(
                            stream::iter(0..N)
                                .try_map_scoped(open, body)
                                .try_collect::<Vec<u32>>()
                                .await,
                        ),
                    }
                }
            });
            let joined = timeout(TIME_LIMIT, task).await.expect("no hang");
            let case = format!("{adapter}, Drop panics: {drop_panics}");
            let panic = joined
                .expect_err("the panic reached the handle")
                .into_panic();
            assert_eq!(
                panic.downcast_ref::<String>().map(String::as_str),
                Some("db: the body of item 1 panicked"),
                "{case}"
            );
            assert_eq!(live.load(SeqCst), 0, "{case}: a resource left live");
        }
    }
}
