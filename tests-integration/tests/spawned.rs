#![cfg(feature = "tokio")]
//! The spawned adapters, `try_map_scoped_spawned` and `for_each_scoped_spawned`,
//! on a real multi-threaded tokio runtime and real time.
//!
//! - A slow consumer: the spawned adapter's resources live about as long as the
//!   work they do, while those of `try_map_scoped_concurrent` (the `buffered`
//!   shape) also live through the consumer's sleeps.
//! - Property tests: the peak never exceeds the limit and reaches it; every
//!   resource is released exactly once; results in input order with their
//!   indices; fail-fast with quiescence; a body's panic resumes after its
//!   release; cancellation releases everything and leaves no task running.
//! - The adapters are `Send`, and limit 0 and a missing runtime panic.
//!   (`spawned_tasks.rs` shows the items are tasks of the caller's runtime.)
//!
//! Each resource is a `Conn` whose `Drop` is its release (also behind an async
//! bracket, whose release awaits once and then drops it), logged in one
//! `Harness`: live and peak counts, and the sequence of acquire and release
//! events.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/watchdog.rs"]
mod watchdog;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::stream::{self, Stream, StreamExt as _};
use futures::{FutureExt as _, future};
use loopscope::prelude::*;
use loopscope::{SpawnAcquire, SpawnBody};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tokio::runtime::Runtime;
use watchdog::watchdog;

// ---------------------------------------------------------------- the harness

/// What the harness saw, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// Item `i`'s acquire was called.
    Start(usize),
    /// Item `i` acquired its resource.
    Acquire(usize),
    /// Item `i`'s acquire failed.
    AcquireFailed(usize),
    /// Item `i`'s async release began.
    AsyncRelease(usize),
    /// Item `i`'s resource was released (dropped).
    Release(usize),
}

/// Counts live resources and logs every acquire and release.
#[derive(Debug, Default)]
struct Harness {
    live: AtomicUsize,
    peak: AtomicUsize,
    log: Mutex<Vec<(Event, Instant)>>,
}

impl Harness {
    fn record(&self, event: Event) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((event, Instant::now()));
    }

    fn events(&self) -> Vec<Event> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|&(event, _)| event)
            .collect()
    }

    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// How long each item's resource was live, by index.
    fn lifetimes(&self) -> BTreeMap<usize, Duration> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let mut acquired = BTreeMap::new();
        let mut lifetimes = BTreeMap::new();
        for &(event, at) in log.iter() {
            match event {
                Event::Acquire(index) => drop(acquired.insert(index, at)),
                Event::Release(index) => {
                    lifetimes.insert(index, at - acquired[&index]);
                }
                Event::Start(_) | Event::AcquireFailed(_) | Event::AsyncRelease(_) => {}
            }
        }
        lifetimes
    }

    /// Every resource acquired was released exactly once (and nothing else was).
    fn check_released_exactly_once(&self) -> Result<(), TestCaseError> {
        let events = self.events();
        let mut acquired: Vec<_> = events
            .iter()
            .filter_map(|event| match event {
                Event::Acquire(index) => Some(*index),
                _ => None,
            })
            .collect();
        let mut released: Vec<_> = events
            .iter()
            .filter_map(|event| match event {
                Event::Release(index) => Some(*index),
                _ => None,
            })
            .collect();
        acquired.sort_unstable();
        released.sort_unstable();
        prop_assert_eq!(acquired, released, "events: {:?}", events);
        prop_assert_eq!(self.live(), 0);
        Ok(())
    }
}

/// A resource: live from its acquire to its drop.
#[derive(Debug)]
struct Conn {
    index: usize,
    harness: Arc<Harness>,
}

impl Conn {
    fn open(index: usize, harness: &Arc<Harness>) -> Self {
        let now = harness.live.fetch_add(1, Ordering::SeqCst) + 1;
        harness.peak.fetch_max(now, Ordering::SeqCst);
        harness.record(Event::Acquire(index));
        Self {
            index,
            harness: Arc::clone(harness),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Logged before the count drops, so that `live() == 0` implies the log
        // is complete.
        self.harness.record(Event::Release(self.index));
        self.harness.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What an item's body does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Ok,
    Err,
    Panic,
    /// Never finishes (for the cancellation properties).
    Stuck,
}

/// One input item: its position, whether its acquire fails, what its body does
/// and for how long (in ms) it works first.
#[derive(Debug, Clone, Copy)]
struct Script {
    index: usize,
    acquire_fails: bool,
    body: Body,
    work_ms: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct AcquireFailed(usize);
#[derive(Debug, PartialEq, Eq)]
struct BodyFailed(usize);
#[derive(Debug, PartialEq, Eq)]
struct Injected(usize);

/// Items with these scripts, as the stream the adapters take.
fn items(scripts: &[Script]) -> impl Stream<Item = Script> + Send + use<> {
    stream::iter(scripts.to_vec())
}

/// The acquire: a plain async closure (release by `Drop`).
fn by_drop(
    harness: &Arc<Harness>,
) -> impl SpawnAcquire<Script, Resource = Conn, Error = AcquireFailed, ReleaseError = Infallible> + use<>
{
    let harness = Arc::clone(harness);
    async move |script: Script| {
        harness.record(Event::Start(script.index));
        tokio::task::yield_now().await;
        if script.acquire_fails {
            harness.record(Event::AcquireFailed(script.index));
            return Err(AcquireFailed(script.index));
        }
        Ok(Conn::open(script.index, &harness))
    }
}

/// The acquire behind an async bracket, whose release awaits once and then drops
/// the resource.
fn bracketed(
    harness: &Arc<Harness>,
) -> impl SpawnAcquire<Script, Resource = Conn, Error = AcquireFailed, ReleaseError = Infallible> + use<>
{
    bracket_of!(harness)
}

/// The same bracket, whose release is spawned on the runtime when the adapter is
/// dropped mid-item.
fn spawning_on_cancel(
    harness: &Arc<Harness>,
) -> impl SpawnAcquire<Script, Resource = Conn, Error = AcquireFailed, ReleaseError = Infallible> + use<>
{
    bracket_of!(harness).spawn_on_cancel()
}

/// The async bracket of `bracketed` (a macro: its type has no name).
macro_rules! bracket_of {
    ($harness:expr) => {{
        let acquire = by_drop($harness);
        async_bracket(async move |script: Script| acquire.acquire_send(script).await).release(
            |conn: Conn| async move {
                conn.harness.record(Event::AsyncRelease(conn.index));
                tokio::task::yield_now().await;
                drop(conn);
                Ok(())
            },
        )
    }};
}
use bracket_of;

/// The body: works `work_ms`, then does what the script says.
async fn body(conn: &mut Conn, script: Script) -> Result<usize, BodyFailed> {
    tokio::time::sleep(Duration::from_millis(script.work_ms)).await;
    match script.body {
        Body::Ok => Ok(conn.index),
        Body::Err => Err(BodyFailed(conn.index)),
        Body::Panic => std::panic::panic_any(Injected(conn.index)),
        Body::Stuck => future::pending().await,
    }
}

/// The scripts by position, shared with the body (which only sees the resource).
fn body_for(
    scripts: &[Script],
) -> impl AsyncFnOnce(&mut Conn) -> Result<usize, BodyFailed>
+ for<'r> SpawnBody<'r, Conn, usize, BodyFailed>
+ Clone
+ Send
+ Sync
+ use<> {
    let scripts: Arc<[Script]> = scripts.into();
    async move |conn: &mut Conn| {
        let script = scripts
            .get(conn.index)
            .copied()
            .unwrap_or_else(|| endless_ok(conn.index));
        body(conn, script).await
    }
}

/// The script of an item past the generated ones, in an endless tail.
fn endless_ok(index: usize) -> Script {
    Script {
        index,
        acquire_fails: false,
        body: Body::Ok,
        work_ms: 1,
    }
}

/// One multi-threaded runtime for all the tests.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// Taken for reading by every test, and for writing by the one that counts the
/// worker threads of the process.
static THREADS: RwLock<()> = RwLock::new(());

fn shared<T>(test: impl FnOnce() -> T) -> T {
    let _shared = THREADS.read().unwrap_or_else(PoisonError::into_inner);
    test()
}

/// Waits up to a second for the worker threads to drop what they hold.
async fn until_released(harness: &Harness) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while harness.live() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn panic_payload(payload: &(dyn std::any::Any + Send)) -> Option<usize> {
    payload
        .downcast_ref::<Injected>()
        .map(|injected| injected.0)
}

/// Silences the default hook's report of the injected panics.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Injected>().is_none() {
                default(info);
            }
        }));
    });
}

// ---------------------------------------------------------------- strategies

fn scripts_with(bodies: impl Strategy<Value = Body>) -> impl Strategy<Value = Vec<Script>> {
    prop::collection::vec((prop::bool::weighted(0.15), bodies, 0_u64..4), 0..12).prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .map(|(index, (acquire_fails, body, work_ms))| Script {
                index,
                acquire_fails,
                body,
                work_ms,
            })
            .collect()
    })
}

fn failing_bodies() -> impl Strategy<Value = Body> {
    prop_oneof![4 => Just(Body::Ok), 1 => Just(Body::Err)]
}

fn config() -> ProptestConfig {
    cases::config(40)
}

/// The result a script must give in `try_map_scoped_spawned`.
fn expected(script: Script) -> Result<usize, (&'static str, usize)> {
    if script.acquire_fails {
        Err(("acquire", script.index))
    } else if script.body == Body::Err {
        Err(("use", script.index))
    } else {
        Ok(script.index)
    }
}

fn observed<A>(
    result: &Result<usize, ScopedError<AcquireFailed, BodyFailed, A>>,
) -> Result<usize, (&'static str, usize)> {
    match result {
        Ok(index) => Ok(*index),
        Err(ScopedError::Acquire { index, source }) => {
            assert_eq!(source.0, *index);
            Err(("acquire", *index))
        }
        Err(ScopedError::Use { index, source, .. }) => {
            assert_eq!(source.0, *index);
            Err(("use", *index))
        }
        Err(error) => Err(("release", error.index())),
    }
}

// ---------------------------------------------------------------- a slow consumer

/// The work each item's body does, and the time the consumer spends on each
/// result.
const WORK: Duration = Duration::from_millis(20);
const CONSUMER: Duration = Duration::from_millis(50);

/// Runs `results` with a consumer that sleeps `CONSUMER` after each result.
async fn consume_slowly<T>(results: impl Stream<Item = T>) {
    let mut results = pin!(results);
    while let Some(_result) = results.next().await {
        tokio::time::sleep(CONSUMER).await;
    }
}

fn slow_items(
    harness: &Arc<Harness>,
) -> (
    impl Stream<Item = Script> + Send,
    impl SpawnAcquire<Script, Resource = Conn, Error = AcquireFailed, ReleaseError = Infallible>
    + 'static,
) {
    let scripts: Vec<_> = (0..8)
        .map(|index| Script {
            index,
            acquire_fails: false,
            body: Body::Ok,
            work_ms: 0,
        })
        .collect();
    (items(&scripts), by_drop(harness))
}

async fn work(_conn: &mut Conn) -> Result<(), BodyFailed> {
    tokio::time::sleep(WORK).await;
    Ok(())
}

#[test]
fn a_slow_consumer_does_not_keep_spawned_resources_alive() {
    let _watchdog = watchdog("a_slow_consumer_does_not_keep_spawned_resources_alive");
    shared(|| {
        runtime().block_on(async {
            let spawned = Arc::new(Harness::default());
            let (scripts, acquire) = slow_items(&spawned);
            consume_slowly(
                scripts.try_map_scoped_spawned(4, acquire, async |conn| work(conn).await),
            )
            .await;

            let buffered = Arc::new(Harness::default());
            let (scripts, acquire) = slow_items(&buffered);
            consume_slowly(
                scripts.try_map_scoped_concurrent(4, acquire, async |conn| work(conn).await),
            )
            .await;

            let spawned_max = spawned.lifetimes().into_values().max().unwrap();
            let buffered_max = buffered.lifetimes().into_values().max().unwrap();
            println!(
                "longest resource lifetime: spawned {spawned_max:?}, buffered {buffered_max:?}"
            );
            assert_eq!(spawned.lifetimes().len(), 8);
            assert_eq!(buffered.lifetimes().len(), 8);
            // Each resource lives for its work, not for the consumer's sleeps...
            assert!(spawned_max < 2 * WORK, "spawned: {spawned_max:?}");
            // ...where the buffered shape holds them through those sleeps (which
            // shows that this test can fail).
            assert!(buffered_max > CONSUMER, "buffered: {buffered_max:?}");
            assert_eq!(spawned.peak(), 4);
            assert_eq!((spawned.live(), buffered.live()), (0, 0));
        });
    });
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(config())]

    /// `try_map_scoped_spawned`: one result per item, in input order, with its
    /// index; the peak never exceeds the limit, and reaches it when every item
    /// acquires and works a while; every resource is released exactly once, all
    /// of them by the end of the stream; with a consumer that takes its time.
    #[test]
    fn try_map_spawned_keeps_order_peak_and_releases(
        scripts in scripts_with(failing_bodies()),
        limit in 1_usize..=5,
        bracket in any::<bool>(),
        consumer_ms in prop::collection::vec(0_u64..3, 12),
    ) {
        let _watchdog = watchdog("try_map_spawned_keeps_order_peak_and_releases");
        shared(|| runtime().block_on(async {
            let harness = Arc::new(Harness::default());
            let results: Vec<_> = if bracket {
                collect_slowly(items(&scripts).try_map_scoped_spawned(limit, bracketed(&harness), body_for(&scripts)), &consumer_ms).await
            } else {
                collect_slowly(items(&scripts).try_map_scoped_spawned(limit, by_drop(&harness), body_for(&scripts)), &consumer_ms).await
            };
            // The stream has ended: every release has completed.
            harness.check_released_exactly_once()?;
            prop_assert_eq!(results, scripts.iter().map(|&script| expected(script)).collect::<Vec<_>>());
            prop_assert!(harness.peak() <= limit, "peak {} > limit {}", harness.peak(), limit);
            let all_work = scripts.iter().all(|script| !script.acquire_fails && script.work_ms >= 2);
            if all_work {
                prop_assert_eq!(harness.peak(), limit.min(scripts.len()));
            }
            Ok(())
        }))?;
    }

    /// `for_each_scoped_spawned`: `Ok` exactly when no item fails, else the
    /// error of an item that fails; when it returns, every resource acquired has
    /// been released (quiescence); no acquire starts after the first failing
    /// scope has ended (those already started go on); it stops pulling (endless
    /// items follow a failing one); the peak never exceeds the limit.
    ///
    /// The tasks of one adapter run in parallel on the runtime's workers, so a
    /// task on another worker may check the failure flag in the instant between
    /// the failing step's own report (inside the user's closure, which the
    /// harness records) and the adapter setting the flag: such a task was
    /// already running, and starts its acquire. The check allows those — at
    /// most one per task in flight besides the failing one — and no more: an
    /// adapter that kept starting items after a failure starts many.
    #[test]
    fn for_each_spawned_fails_fast_with_quiescence(
        scripts in scripts_with(failing_bodies()),
        limit in 1_usize..=5,
        bracket in any::<bool>(),
    ) {
        let _watchdog = watchdog("for_each_spawned_fails_fast_with_quiescence");
        shared(|| runtime().block_on(async {
            let harness = Arc::new(Harness::default());
            let fails = |script: &Script| script.acquire_fails || script.body == Body::Err;
            // When an item fails, endless items follow it: the adapter must stop
            // pulling them to return at all.
            let tail = stream::iter(scripts.len()..)
                .map(endless_ok)
                .take(if scripts.iter().any(fails) { usize::MAX } else { 0 });
            let input = items(&scripts).chain(tail);
            let run = async {
                if bracket {
                    input.for_each_scoped_spawned(limit, bracketed(&harness), body_for(&scripts)).await
                } else {
                    input.for_each_scoped_spawned(limit, by_drop(&harness), body_for(&scripts)).await
                }
            };
            let result = tokio::time::timeout(Duration::from_secs(5), run).await;
            prop_assert!(result.is_ok(), "it went on pulling after a failure");
            let result = result.unwrap();
            // Checked at once, without waiting: quiescence.
            harness.check_released_exactly_once()?;
            prop_assert!(harness.peak() <= limit);
            match result {
                Ok(()) => prop_assert!(!scripts.iter().any(fails)),
                Err(error) => {
                    let script = scripts[error.index()];
                    prop_assert!(fails(&script), "{:?} from {:?}", error, script);
                }
            }
            // No acquire started after the first failing item's scope ended: its
            // failed acquire, or the release after its failed body.
            let events = harness.events();
            let first_failure = events.iter().position(|event| match *event {
                Event::AcquireFailed(_) => true,
                Event::Release(index) => scripts.get(index).is_some_and(|script| script.body == Body::Err),
                Event::Start(_) | Event::Acquire(_) | Event::AsyncRelease(_) => false,
            });
            if let Some(first) = first_failure {
                let late: Vec<_> = events[first..].iter().filter(|event| matches!(event, Event::Start(_))).collect();
                prop_assert!(late.len() < limit, "acquired after the first failure: {:?} in {:?}", late, events);
            }
            Ok(())
        }))?;
    }

    /// A body's panic resumes in the consumer after its resource was released:
    /// out of `poll_next` for `try_map_scoped_spawned`, and for
    /// `for_each_scoped_spawned` once every task has finished.
    #[test]
    fn a_body_panic_resumes_after_its_release(
        // No failed acquires: `for_each_scoped_spawned` would stop at them.
        scripts in scripts_with(prop_oneof![6 => Just(Body::Ok), 1 => Just(Body::Panic)])
            .prop_map(|mut scripts| {
                scripts.iter_mut().for_each(|script| script.acquire_fails = false);
                scripts
            }),
        limit in 1_usize..=5,
        bracket in any::<bool>(),
        for_each in any::<bool>(),
    ) {
        let _watchdog = watchdog("a_body_panic_resumes_after_its_release");
        quiet_panics();
        shared(|| runtime().block_on(async {
            let harness = Arc::new(Harness::default());
            let panicking = |index: usize| scripts[index].body == Body::Panic && !scripts[index].acquire_fails;
            let panicked = if for_each {
                let run = async {
                    if bracket {
                        items(&scripts).for_each_scoped_spawned(limit, bracketed(&harness), body_for(&scripts)).await
                    } else {
                        items(&scripts).for_each_scoped_spawned(limit, by_drop(&harness), body_for(&scripts)).await
                    }
                };
                match AssertUnwindSafe(run).catch_unwind().await {
                    Ok(_) => None,
                    Err(payload) => {
                        // Every task had finished.
                        harness.check_released_exactly_once()?;
                        Some(panic_payload(&*payload).expect("an injected panic"))
                    }
                }
            } else if bracket {
                first_panic(items(&scripts).try_map_scoped_spawned(limit, bracketed(&harness), body_for(&scripts)), &harness).await?
            } else {
                first_panic(items(&scripts).try_map_scoped_spawned(limit, by_drop(&harness), body_for(&scripts)), &harness).await?
            };
            match panicked {
                Some(index) => prop_assert!(panicking(index)),
                None => prop_assert!(!(0..scripts.len()).any(panicking)),
            }
            until_released(&harness).await;
            harness.check_released_exactly_once()
        }))?;
    }

    /// Dropping the adapter mid-way (after `k` results, or at a timeout) aborts
    /// its tasks, stuck bodies included: every resource is released — by the
    /// spawned async release for `.spawn_on_cancel()` — and nothing is acquired
    /// after that.
    #[test]
    fn cancellation_releases_everything_and_stops_the_tasks(
        scripts in scripts_with(prop_oneof![3 => Just(Body::Ok), 1 => Just(Body::Stuck)]),
        limit in 1_usize..=5,
        // By `Drop`, an async bracket, or one that spawns its release on cancel.
        acquire in 0_u8..3,
        for_each in any::<bool>(),
        stop_after in 0_usize..6,
        timeout_ms in 0_u64..6,
    ) {
        let _watchdog = watchdog("cancellation_releases_everything_and_stops_the_tasks");
        shared(|| runtime().block_on(async {
            let harness = Arc::new(Harness::default());
            let timeout = Duration::from_millis(timeout_ms);
            macro_rules! run {
                ($acquire:expr) => {
                    if for_each {
                        let run = items(&scripts).for_each_scoped_spawned(limit, $acquire, body_for(&scripts));
                        drop(tokio::time::timeout(timeout, run).await);
                    } else {
                        let results = items(&scripts).try_map_scoped_spawned(limit, $acquire, body_for(&scripts));
                        drop(tokio::time::timeout(timeout, results.take(stop_after).collect::<Vec<_>>()).await);
                    }
                };
            }
            match acquire {
                0 => run!(by_drop(&harness)),
                1 => run!(bracketed(&harness)),
                _ => run!(spawning_on_cancel(&harness)),
            }
            until_released(&harness).await;
            harness.check_released_exactly_once()?;
            if acquire == 2 {
                // Every release was the async one: awaited, or spawned for the
                // tasks aborted mid-body.
                let events = harness.events();
                for event in &events {
                    if let Event::Release(index) = *event {
                        prop_assert!(events.contains(&Event::AsyncRelease(index)), "item {} released by Drop: {:?}", index, events);
                    }
                }
            }
            let acquired = harness.events().len();
            tokio::time::sleep(Duration::from_millis(5)).await;
            prop_assert_eq!(harness.events().len(), acquired, "a task ran on after the drop");
            Ok(())
        }))?;
    }
}

/// Collects the stream, sleeping `consumer_ms[i]` after the `i`th result.
async fn collect_slowly<A>(
    results: impl Stream<Item = Result<usize, ScopedError<AcquireFailed, BodyFailed, A>>>,
    consumer_ms: &[u64],
) -> Vec<Result<usize, (&'static str, usize)>> {
    let mut results = pin!(results);
    let mut collected = Vec::new();
    while let Some(result) = results.next().await {
        collected.push(observed(&result));
        let ms = consumer_ms.get(collected.len()).copied().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    collected
}

/// Runs the stream to its end or its first panic, checking at the panic that
/// the panicking item's resource has been released; returns that item.
async fn first_panic<T, E>(
    results: impl Stream<Item = Result<T, E>>,
    harness: &Harness,
) -> Result<Option<usize>, TestCaseError> {
    let mut results = pin!(results);
    loop {
        match AssertUnwindSafe(results.next()).catch_unwind().await {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(None),
            Err(payload) => {
                let index = panic_payload(&*payload).expect("an injected panic");
                prop_assert!(
                    harness.events().contains(&Event::Release(index)),
                    "the panic of item {} resumed before its release",
                    index
                );
                return Ok(Some(index));
            }
        }
    }
}

// ---------------------------------------------------------------- the rest

fn assert_send<T: Send>(value: T) -> T {
    value
}

/// The adapters are `Send`: they run as tasks of a multi-threaded runtime.
#[test]
fn the_adapters_are_send_and_run_as_tasks() {
    let _watchdog = watchdog("the_adapters_are_send_and_run_as_tasks");
    shared(|| {
        runtime().block_on(async {
            let harness = Arc::new(Harness::default());
            let scripts: Vec<_> = (0..6)
                .map(|index| Script {
                    index,
                    acquire_fails: false,
                    body: Body::Ok,
                    work_ms: 1,
                })
                .collect();
            let stream = assert_send(items(&scripts).try_map_scoped_spawned(
                2,
                bracketed(&harness),
                body_for(&scripts),
            ));
            let collected = tokio::spawn(stream.collect::<Vec<_>>()).await.unwrap();
            assert_eq!(collected.len(), 6);
            let future = assert_send(items(&scripts).for_each_scoped_spawned(
                3,
                by_drop(&harness),
                body_for(&scripts),
            ));
            tokio::spawn(future).await.unwrap().unwrap();
            assert_eq!((harness.live(), harness.peak()), (0, 3));
        });
    });
}

/// When an adapter ends, the worker thread has let go of the acquire and the
/// body, and of everything they captured: a pool or a connection they own is
/// closed by then, not in the background after the caller went on.
#[test]
fn the_closures_are_dropped_when_the_adapter_ends() {
    let _watchdog = watchdog("the_closures_are_dropped_when_the_adapter_ends");
    shared(|| {
        runtime().block_on(async {
            for round in 0..20 {
                let pool = Arc::new(round);
                let acquire = {
                    let pool = Arc::clone(&pool);
                    async move |item: u32| Ok::<_, ()>(item + *pool)
                };
                let body = {
                    let pool = Arc::clone(&pool);
                    async move |value: &mut u32| Ok::<_, ()>(*value + *pool)
                };
                let results: Vec<_> = stream::iter(0..5u32)
                    .try_map_scoped_spawned(2, acquire, body)
                    .collect()
                    .await;
                assert_eq!(results.len(), 5);
                assert_eq!(Arc::strong_count(&pool), 1, "round {round}: try_map");

                let acquire = {
                    let pool = Arc::clone(&pool);
                    async move |item: u32| Ok::<_, ()>(item + *pool)
                };
                let body = {
                    let pool = Arc::clone(&pool);
                    async move |value: &mut u32| {
                        *value += *pool;
                        Ok::<_, ()>(())
                    }
                };
                stream::iter(0..5u32)
                    .for_each_scoped_spawned(2, acquire, body)
                    .await
                    .unwrap();
                assert_eq!(Arc::strong_count(&pool), 1, "round {round}: for_each");
            }
        });
    });
}

#[test]
#[should_panic(expected = "the concurrency limit must be at least 1")]
fn a_limit_of_zero_panics() {
    let harness = Arc::new(Harness::default());
    drop(items(&[]).try_map_scoped_spawned(0, by_drop(&harness), body_for(&[])));
}

#[test]
#[should_panic(expected = "must be polled inside a tokio runtime")]
fn polling_outside_a_runtime_panics() {
    let _watchdog = watchdog("polling_outside_a_runtime_panics");
    let harness = Arc::new(Harness::default());
    let scripts = [Script {
        index: 0,
        acquire_fails: false,
        body: Body::Ok,
        work_ms: 0,
    }];
    drop(futures::executor::block_on(
        items(&scripts).for_each_scoped_spawned(1, by_drop(&harness), body_for(&scripts)),
    ));
}

/// The time 1,000 trivial items take through each adapter (printed; run with
/// `--ignored --nocapture`).
#[test]
#[ignore = "a timing, not a test"]
fn timing_of_trivial_items() {
    let _watchdog = watchdog("timing_of_trivial_items");
    const ITEMS: usize = 1_000;
    runtime().block_on(async {
        for round in 0..3 {
            let started = Instant::now();
            let spawned = stream::iter(0..ITEMS)
                .try_map_scoped_spawned(8, async |n: usize| Ok::<_, Infallible>(n), async |n| Ok::<_, Infallible>(*n))
                .count()
                .await;
            let spawned_time = started.elapsed();
            let started = Instant::now();
            let concurrent = stream::iter(0..ITEMS)
                .try_map_scoped_concurrent(8, async |n: usize| Ok::<_, Infallible>(n), async |n| Ok::<_, Infallible>(*n))
                .count()
                .await;
            let concurrent_time = started.elapsed();
            // The hand-written shape with a `tokio::spawn` per item.
            let started = Instant::now();
            let tasks = stream::iter(0..ITEMS)
                .map(|n| tokio::spawn(async move { n }))
                .buffered(8)
                .count()
                .await;
            let tasks_time = started.elapsed();
            assert_eq!((spawned, concurrent, tasks), (ITEMS, ITEMS, ITEMS));
            println!("round {round}: tokio::spawn per item, buffered(8): {tasks_time:?}");
            println!("round {round}: {ITEMS} trivial items: spawned {spawned_time:?}, concurrent {concurrent_time:?}");
        }
    });
}
