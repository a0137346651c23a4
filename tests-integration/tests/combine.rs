//! `both`: two resources per item, acquired in order and released in reverse,
//! with a failed second acquire releasing the first and no error lost.
//!
//! The property tests give every item a script — each of the two acquires, the
//! body and each of the two releases succeeds, fails (or, in the sync tests with
//! `std`, panics) — run the adapters on `both(part 1, part 2)`, and compare the
//! log of every call (with the `Outcome` each release was told: the body's, but
//! `Failed` for the first resource when the body completed and the second
//! release failed) and every result with a model of what must happen. The log also counts live resources,
//! for the peak.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/watchdog.rs"]
mod watchdog;

use std::convert::Infallible;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, PoisonError};

use loopscope::prelude::*;
use loopscope::{Acquire, BothAcquireError, BothReleaseError, Outcome, both};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
// Only the async tests, behind `stream`, have a time limit.
#[cfg(feature = "stream")]
use watchdog::watchdog;

/// What one step of an item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Ok,
    Err,
    /// Only in the sync tests with `std` (without it, a second panic while the
    /// first unwinds aborts, by design).
    Panic,
}

/// What both acquires, the body and both releases do for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Script {
    acquire: [Step; 2],
    body: Step,
    release: [Step; 2],
}

/// The adapters' item: its position and its script.
type Item = (usize, Script);

/// Which step failed (or panicked), for the item at which position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Acquire(u8),
    Body,
    Release(u8),
}

/// Every error of the harness, and every injected panic's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fail(Stage, usize);

/// One call, as the log records it; parts are numbered 1 and 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Acquire(u8, usize),
    Body(usize),
    Release(u8, usize, Outcome),
    /// `release_on_cancel` (async only).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    Cancel(u8, usize),
    /// The resource was dropped: it is no longer live.
    Drop(u8, usize),
}

type Error =
    loopscope::ScopedError<BothAcquireError<Fail, Fail, Fail>, Fail, BothReleaseError<Fail, Fail>>;

/// How one item ended.
#[derive(Debug, Clone, PartialEq)]
enum End {
    Value(usize),
    Error(Error),
    Panic(Fail),
}

#[derive(Debug, Default)]
struct State {
    events: Vec<Event>,
    live: usize,
    peak: usize,
}

/// The log every part writes to.
#[derive(Debug, Default)]
struct Log(Mutex<State>);

impl Log {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn push(&self, event: Event) {
        self.lock().events.push(event);
    }
    fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }
    fn live(&self) -> usize {
        self.lock().live
    }
    fn peak(&self) -> usize {
        self.lock().peak
    }
}

/// A resource of one part for one item; live until dropped.
#[derive(Debug)]
struct Resource<'a> {
    part: u8,
    index: usize,
    release: Step,
    log: &'a Log,
}

impl Drop for Resource<'_> {
    fn drop(&mut self) {
        let mut state = self.log.lock();
        state.live -= 1;
        state.events.push(Event::Drop(self.part, self.index));
    }
}

/// One of the two acquires given to `both`: follows each item's script, logs every
/// call, and sees the `Outcome` of each release.
#[derive(Debug, Clone, Copy)]
struct Part<'a> {
    part: u8,
    log: &'a Log,
}

fn step_result(step: Step, fail: Fail) -> Result<(), Fail> {
    match step {
        Step::Ok => Ok(()),
        Step::Err => Err(fail),
        Step::Panic => panic::panic_any(fail),
    }
}

impl<'a> Part<'a> {
    fn acquire_now(&self, (index, script): Item) -> Result<Resource<'a>, Fail> {
        self.log.push(Event::Acquire(self.part, index));
        let stage = Stage::Acquire(self.part);
        step_result(
            script.acquire[usize::from(self.part - 1)],
            Fail(stage, index),
        )?;
        let mut state = self.log.lock();
        state.live += 1;
        state.peak = state.peak.max(state.live);
        Ok(Resource {
            part: self.part,
            index,
            release: script.release[usize::from(self.part - 1)],
            log: self.log,
        })
    }

    fn release_now(&self, resource: Resource<'a>, outcome: Outcome) -> Result<(), Fail> {
        self.release_start(&resource, outcome);
        self.release_end(resource)
    }

    /// Logs the release: from here on the release owns the resource.
    fn release_start(&self, resource: &Resource<'a>, outcome: Outcome) {
        assert_eq!(
            resource.part, self.part,
            "a resource released by the other part"
        );
        self.log
            .push(Event::Release(resource.part, resource.index, outcome));
    }

    fn release_end(&self, resource: Resource<'a>) -> Result<(), Fail> {
        let (part, index) = (resource.part, resource.index);
        // A panicking release drops the resource while unwinding.
        let released = step_result(resource.release, Fail(Stage::Release(part), index));
        drop(resource);
        released
    }

    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    fn cancel_now(&self, resource: Resource<'a>) {
        self.log.push(Event::Cancel(resource.part, resource.index));
    }
}

impl<'a> Acquire<Item> for Part<'a> {
    type Resource = Resource<'a>;
    type Error = Fail;
    type ReleaseError = Fail;

    fn acquire(&mut self, item: Item) -> Result<Resource<'a>, Fail> {
        self.acquire_now(item)
    }

    fn release(&mut self, resource: Resource<'a>, outcome: Outcome) -> Result<(), Fail> {
        self.release_now(resource, outcome)
    }
}

/// The body: logs, then follows the script; its value is the item's position.
fn body_now(
    log: &Log,
    (first, second): &mut (Resource<'_>, Resource<'_>),
    script: Script,
) -> Result<usize, Fail> {
    assert_eq!((first.part, second.part), (1, 2));
    assert_eq!(
        first.index, second.index,
        "resources of two items lent together"
    );
    let index = first.index;
    log.push(Event::Body(index));
    step_result(script.body, Fail(Stage::Body, index))?;
    Ok(index)
}

/// What must happen to one item: the calls in order, and how it ends. `sync`
/// tells where a panic of the second acquire leaves the first resource: the sync
/// `both` releases it (`Outcome::Panicked`); the async one's future is dropped
/// while unwinding, so it goes to `release_on_cancel`.
fn model_item(index: usize, script: Script, events: &mut Vec<Event>) -> End {
    events.push(Event::Acquire(1, index));
    match script.acquire[0] {
        Step::Ok => {}
        Step::Err => {
            return End::Error(Error::Acquire {
                index,
                source: BothAcquireError::First {
                    source: Fail(Stage::Acquire(1), index),
                },
            });
        }
        Step::Panic => return End::Panic(Fail(Stage::Acquire(1), index)),
    }
    events.push(Event::Acquire(2, index));
    let release1 = |outcome, events: &mut Vec<Event>| {
        events.push(Event::Release(1, index, outcome));
        events.push(Event::Drop(1, index));
        script.release[0]
    };
    match script.acquire[1] {
        Step::Ok => {}
        Step::Err => {
            return match release1(Outcome::Failed, events) {
                Step::Panic => End::Panic(Fail(Stage::Release(1), index)),
                step => End::Error(Error::Acquire {
                    index,
                    source: BothAcquireError::Second {
                        source: Fail(Stage::Acquire(2), index),
                        release: (step == Step::Err).then_some(Fail(Stage::Release(1), index)),
                    },
                }),
            };
        }
        Step::Panic => {
            release1(Outcome::Panicked, events);
            return End::Panic(Fail(Stage::Acquire(2), index));
        }
    }
    events.push(Event::Body(index));
    let outcome = match script.body {
        Step::Ok => Outcome::Completed,
        Step::Err => Outcome::Failed,
        Step::Panic => Outcome::Panicked,
    };
    events.push(Event::Release(2, index, outcome));
    events.push(Event::Drop(2, index));
    let outcome1 = match (script.release[1], outcome) {
        // The sync `both` releases the first resource while the panic unwinds.
        (Step::Panic, _) => Outcome::Panicked,
        // The body completed but the item fails (`ScopedError::Release`): the
        // first resource must not, say, commit.
        (Step::Err, Outcome::Completed) => Outcome::Failed,
        _ => outcome,
    };
    release1(outcome1, events);

    // The first panic in time is the one the caller gets.
    let panicked = [
        (script.body, Stage::Body),
        (script.release[1], Stage::Release(2)),
        (script.release[0], Stage::Release(1)),
    ]
    .into_iter()
    .find(|&(step, _)| step == Step::Panic);
    if let Some((_, stage)) = panicked {
        return End::Panic(Fail(stage, index));
    }
    let release_failed = |part: u8| Err(Fail(Stage::Release(part), index));
    let released = BothReleaseResult::of(
        if script.release[0] == Step::Err {
            release_failed(1)
        } else {
            Ok(())
        },
        if script.release[1] == Step::Err {
            release_failed(2)
        } else {
            Ok(())
        },
    );
    match (script.body, released) {
        (Step::Ok, Ok(())) => End::Value(index),
        (Step::Ok, Err(source)) => End::Error(Error::Release { index, source }),
        (_, released) => End::Error(Error::Use {
            index,
            source: Fail(Stage::Body, index),
            release: released.err(),
        }),
    }
}

/// The model's own pairing of two release results, written independently of the
/// crate's.
struct BothReleaseResult;

impl BothReleaseResult {
    fn of(
        first: Result<(), Fail>,
        second: Result<(), Fail>,
    ) -> Result<(), BothReleaseError<Fail, Fail>> {
        match (first, second) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(source), Ok(())) => Err(BothReleaseError::First { source }),
            (Ok(()), Err(source)) => Err(BothReleaseError::Second { source }),
            (Err(first), Err(second)) => Err(BothReleaseError::Both { first, second }),
        }
    }
}

/// The model of a whole run: each item's calls and end, stopping after the first
/// error when `fail_fast`, and always after a panic.
fn model(scripts: &[Script], fail_fast: bool) -> (Vec<Event>, Vec<End>) {
    let mut events = Vec::new();
    let mut ends = Vec::new();
    for (index, &script) in scripts.iter().enumerate() {
        let end = model_item(index, script, &mut events);
        let stop = matches!(end, End::Panic(_)) || (fail_fast && matches!(end, End::Error(_)));
        ends.push(end);
        if stop {
            break;
        }
    }
    (events, ends)
}

fn step(panics: bool) -> impl Strategy<Value = Step> {
    // Mostly `Ok`, so that runs go on for several items.
    if panics && cfg!(feature = "std") {
        prop_oneof![6 => Just(Step::Ok), 2 => Just(Step::Err), 1 => Just(Step::Panic)].boxed()
    } else {
        prop_oneof![3 => Just(Step::Ok), 1 => Just(Step::Err)].boxed()
    }
}

fn scripts(panics: bool) -> impl Strategy<Value = Vec<Script>> {
    let script = (
        step(panics),
        step(panics),
        step(panics),
        step(panics),
        step(panics),
    )
        .prop_map(|(acquire1, acquire2, body, release1, release2)| Script {
            acquire: [acquire1, acquire2],
            body,
            release: [release1, release2],
        });
    prop::collection::vec(script, 0..12)
}

fn items(scripts: &[Script]) -> impl Iterator<Item = Item> + '_ {
    scripts.iter().copied().enumerate()
}

fn parts(log: &Log) -> (Part<'_>, Part<'_>) {
    (Part { part: 1, log }, Part { part: 2, log })
}

/// Checks what every run must show: the log as modelled, nothing live, and at
/// most the two resources of one item live at once (`limit` items, concurrent).
fn check_log(log: &Log, expected: &[Event], limit: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.events(), expected);
    prop_assert_eq!(log.live(), 0, "resources left live");
    prop_assert!(
        log.peak() <= 2 * limit,
        "peak {} over {}",
        log.peak(),
        2 * limit
    );
    Ok(())
}

fn panic_payload(payload: Box<dyn std::any::Any + Send>) -> Fail {
    match payload.downcast::<Fail>() {
        Ok(fail) => *fail,
        Err(other) => panic::resume_unwind(other),
    }
}

/// Silences the default hook for the injected panics only.
fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Fail>().is_none() {
                default(info);
            }
        }));
    });
}

proptest! {
    #![proptest_config(cases::config(512))]

    /// `for_each_scoped`: order, reverse release, the first released when the
    /// second acquire fails, outcomes, every error and panic, fail-fast.
    #[test]
    fn sync_for_each_scoped_matches_the_model(scripts in scripts(true)) {
        quiet_injected_panics();
        let log = Log::default();
        let (first, second) = parts(&log);
        let run = panic::catch_unwind(AssertUnwindSafe(|| {
            items(&scripts).for_each_scoped(both(first, second), |pair| {
                let script = scripts[pair.0.index];
                body_now(&log, pair, script).map(drop)
            })
        }));
        let (expected, ends) = model(&scripts, true);
        let end = match run {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(End::Error(error)),
            Err(payload) => Some(End::Panic(panic_payload(payload))),
        };
        let expected_end = ends.into_iter().find(|end| !matches!(end, End::Value(_)));
        prop_assert_eq!(end, expected_end);
        check_log(&log, &expected, 1)?;
    }

    /// `try_map_scoped`: one result per item, every error with its index.
    #[test]
    fn sync_try_map_scoped_matches_the_model(scripts in scripts(false)) {
        let log = Log::default();
        let (first, second) = parts(&log);
        let ends: Vec<End> = items(&scripts)
            .try_map_scoped(both(first, second), |pair| {
                let script = scripts[pair.0.index];
                body_now(&log, pair, script)
            })
            .map(|result| result.map_or_else(End::Error, End::Value))
            .collect();
        let (expected, expected_ends) = model(&scripts, false);
        prop_assert_eq!(ends, expected_ends);
        check_log(&log, &expected, 1)?;
    }
}

/// A second acquire that fails releases the first resource at once, told
/// `Failed`, and keeps that release's error beside its own.
#[test]
fn failed_second_acquire_releases_the_first_and_keeps_both_errors() {
    let log = Log::default();
    let (first, second) = parts(&log);
    let script = Script {
        acquire: [Step::Ok, Step::Err],
        body: Step::Ok,
        release: [Step::Err, Step::Ok],
    };
    let error = [(0, script)]
        .into_iter()
        .for_each_scoped(both(first, second), |_pair| Ok::<_, Fail>(()))
        .unwrap_err();
    assert_eq!(
        error,
        Error::Acquire {
            index: 0,
            source: BothAcquireError::Second {
                source: Fail(Stage::Acquire(2), 0),
                release: Some(Fail(Stage::Release(1), 0)),
            },
        }
    );
    assert_eq!(
        log.events(),
        [
            Event::Acquire(1, 0),
            Event::Acquire(2, 0),
            Event::Release(1, 0, Outcome::Failed),
            Event::Drop(1, 0),
        ]
    );
}

/// Three resources by nesting: acquired a, b, c; released c, b, a.
#[test]
fn nested_both_releases_three_in_reverse_order() {
    let log = Mutex::new(Vec::new());
    let part = |name: char| {
        let log = &log;
        bracket(move |item: usize| {
            log.lock().unwrap().push(format!("+{name}{item}"));
            Ok::<_, Infallible>(name)
        })
        .release(move |name| {
            log.lock().unwrap().push(format!("-{name}"));
            Ok::<_, Infallible>(())
        })
    };
    (0..2)
        .for_each_scoped(
            both(part('a'), both(part('b'), part('c'))),
            |(a, (b, c))| {
                log.lock().unwrap().push(format!("{a}{b}{c}"));
                Ok::<_, Infallible>(())
            },
        )
        .unwrap();
    let log = log.into_inner().unwrap().join(" ");
    assert_eq!(log, "+a0 +b0 +c0 abc -c -b -a +a1 +b1 +c1 abc -c -b -a");
}

/// Plain closures release by `Drop`, and still in reverse order.
#[test]
fn drop_released_parts_are_dropped_second_first() {
    let log = Log::default();
    let (first, second) = parts(&log);
    let ok = Script {
        acquire: [Step::Ok; 2],
        body: Step::Ok,
        release: [Step::Ok; 2],
    };
    [(0, ok)]
        .into_iter()
        .for_each_scoped(
            both(
                |item| first.acquire_now(item),
                |item| second.acquire_now(item),
            ),
            |_pair| Ok::<_, Fail>(()),
        )
        .unwrap();
    assert_eq!(
        log.events(),
        [
            Event::Acquire(1, 0),
            Event::Acquire(2, 0),
            Event::Drop(2, 0),
            Event::Drop(1, 0)
        ]
    );
}

/// The reviewer's case, with a real database: a transaction (committed only when
/// told `Completed`) and an output whose release fails. The item fails, so its
/// transaction rolls back; the items around it commit.
#[test]
fn a_failed_second_release_rolls_back_the_first_resources_transaction() {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch("CREATE TABLE done (item INTEGER NOT NULL)")
        .unwrap();
    let transaction = bracket(|item: u32| db.execute_batch("BEGIN").map(|()| item)).release_with(
        |_item, outcome: Outcome| {
            db.execute_batch(if outcome.is_completed() {
                "COMMIT"
            } else {
                "ROLLBACK"
            })
        },
    );
    // Stands in for `output.sync_all()` failing (a full disk) on item 2.
    let output = bracket(|item: u32| Ok::<_, std::io::Error>(item)).release(|item| {
        if item == 2 {
            Err(std::io::Error::other("sync failed"))
        } else {
            Ok(())
        }
    });
    let results: Vec<_> = [1, 2, 3]
        .into_iter()
        .try_map_scoped(both(transaction, output), |(item, _output)| {
            db.execute("INSERT INTO done (item) VALUES (?1)", [*item])
        })
        .collect();
    assert!(results[0].is_ok() && results[2].is_ok());
    let error = results[1].as_ref().unwrap_err();
    assert!(matches!(
        error,
        loopscope::ScopedError::Release {
            index: 1,
            source: BothReleaseError::Second { .. }
        }
    ));
    let mut select = db.prepare("SELECT item FROM done ORDER BY item").unwrap();
    let committed: Vec<u32> = select
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(committed, [1, 3]);
}

/// The error types: messages, `source` chains, helpers.
mod errors {
    use std::error::Error as _;
    use std::io;

    use super::*;

    type AcquireError = BothAcquireError<&'static str, &'static str, &'static str>;
    type ReleaseError = BothReleaseError<&'static str, &'static str>;

    /// A `&str` as an error with a `source`-less `Display`, for the chains.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("{0}")]
    struct Text(&'static str);

    #[test]
    fn acquire_error_names_the_failed_acquire_and_keeps_the_release_error() {
        let first: AcquireError = BothAcquireError::First { source: "open" };
        assert_eq!(
            first.to_string(),
            "failed to acquire the first resource: open"
        );
        assert_eq!(first.release_error(), None);

        let second: AcquireError = BothAcquireError::Second {
            source: "create",
            release: None,
        };
        assert_eq!(
            second.to_string(),
            "failed to acquire the second resource: create"
        );

        let both: AcquireError = BothAcquireError::Second {
            source: "create",
            release: Some("close"),
        };
        assert_eq!(
            both.to_string(),
            "failed to acquire the second resource (releasing the first failed too: close): create"
        );
        assert_eq!(both.release_error(), Some(&"close"));
        assert_eq!(both.clone().into_release_error(), Some("close"));

        // The message includes the failed acquire's; the chain goes on below
        // it (the crate sees into an `io::Error` with its `std` feature).
        let chained = BothAcquireError::<io::Error, Text, Text>::First {
            source: io::Error::other(Text("disk gone")),
        };
        assert_eq!(
            chained.to_string(),
            "failed to acquire the first resource: disk gone"
        );
        assert!(chained.source().is_none(), "`disk gone` has no source");
    }

    #[test]
    fn release_error_keeps_one_error_or_both() {
        let first: ReleaseError = BothReleaseError::First { source: "a" };
        let second: ReleaseError = BothReleaseError::Second { source: "b" };
        let both: ReleaseError = BothReleaseError::Both {
            first: "a",
            second: "b",
        };
        assert_eq!(first.to_string(), "failed to release the first resource: a");
        assert_eq!(
            second.to_string(),
            "failed to release the second resource: b"
        );
        assert_eq!(
            both.to_string(),
            "failed to release the second resource (releasing the first failed too: a): b"
        );
        assert_eq!(first.into_parts(), (Some("a"), None));
        assert_eq!(second.into_parts(), (None, Some("b")));
        assert_eq!((both.first(), both.second()), (Some(&"a"), Some(&"b")));

        // The second resource is released first: its error's chain goes on
        // below (the crate sees into an `io::Error` with its `std` feature).
        let chained = BothReleaseError::<Text, io::Error>::Both {
            first: Text("a"),
            second: io::Error::other(Outer::default()),
        };
        if cfg!(feature = "std") {
            assert_eq!(chained.source().unwrap().to_string(), "b");
        } else {
            assert!(chained.source().is_none());
        }
    }

    /// An error whose message is "outer" and whose source is "b".
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Text);

    impl Default for Outer {
        fn default() -> Self {
            Self(Text("b"))
        }
    }

    #[test]
    fn scoped_error_message_reaches_the_failed_part() {
        let error = [0]
            .into_iter()
            .for_each_scoped(
                both(
                    |_: i32| Ok::<_, Text>(()),
                    |_: i32| Err::<(), _>(Text("no space")),
                ),
                |_pair| Ok::<_, Text>(()),
            )
            .unwrap_err();
        let mut chain = Vec::new();
        let mut next: Option<&dyn std::error::Error> = Some(&error);
        while let Some(error) = next {
            chain.push(error.to_string());
            next = error.source();
        }
        // One message, in cause order, each error's text once.
        assert_eq!(
            chain,
            [
                "failed to acquire the resource for item 0: failed to acquire the second resource: no space"
            ]
        );
    }
}

/// `?` into `io::Error`, keeping the kind of the error that occurred first.
#[cfg(feature = "std")]
mod io_errors {
    use std::fs::File;
    use std::io::{self, ErrorKind};
    use std::path::{Path, PathBuf};

    use super::*;

    fn error(kind: ErrorKind, text: &str) -> io::Error {
        io::Error::new(kind, text.to_owned())
    }

    #[test]
    fn question_mark_keeps_the_kind_of_the_first_error() {
        fn copy_all(inputs: &[PathBuf], out: &Path) -> io::Result<()> {
            inputs.iter().for_each_scoped(
                both(
                    File::open,
                    bracket(|input: &PathBuf| File::create(out.join(input.file_name().unwrap())))
                        .release(|output: File| output.sync_all()),
                ),
                |(input, output)| io::copy(input, output).map(drop),
            )?;
            Ok(())
        }
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        std::fs::write(&input, "x").unwrap();

        // The second acquire fails: its output directory does not exist.
        let missing = dir.path().join("missing");
        let converted = copy_all(std::slice::from_ref(&input), &missing).unwrap_err();
        assert_eq!(converted.kind(), ErrorKind::NotFound);
        assert_eq!(
            converted.to_string(),
            "failed to acquire the resource for item 0: failed to acquire the second resource: No such file or directory (os error 2)"
        );
        type Inner = loopscope::ScopedError<
            BothAcquireError<io::Error, io::Error, Infallible>,
            io::Error,
            BothReleaseError<Infallible, io::Error>,
        >;
        let inner = converted
            .get_ref()
            .unwrap()
            .downcast_ref::<Inner>()
            .unwrap();
        assert!(matches!(
            inner,
            Inner::Acquire {
                index: 0,
                source: BothAcquireError::Second { .. }
            }
        ));

        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        copy_all(&[input], &out).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("in.txt")).unwrap(), "x");
    }

    #[test]
    fn kinds_follow_the_order_of_the_errors() {
        let acquire: BothAcquireError<io::Error, io::Error, io::Error> = BothAcquireError::Second {
            source: error(ErrorKind::StorageFull, "create"),
            release: Some(error(ErrorKind::BrokenPipe, "close")),
        };
        let converted = io::Error::from(acquire);
        assert_eq!(converted.kind(), ErrorKind::StorageFull);
        assert_eq!(
            converted.to_string(),
            "failed to acquire the second resource (releasing the first failed too: close): create"
        );

        let release: BothReleaseError<io::Error, io::Error> = BothReleaseError::Both {
            first: error(ErrorKind::BrokenPipe, "close input"),
            second: error(ErrorKind::StorageFull, "sync output"),
        };
        assert_eq!(io::Error::from(release).kind(), ErrorKind::StorageFull);

        let first_only: BothReleaseError<io::Error, Infallible> = BothReleaseError::First {
            source: error(ErrorKind::BrokenPipe, "close input"),
        };
        assert_eq!(io::Error::from(first_only).kind(), ErrorKind::BrokenPipe);

        // In a `ScopedError`: the failing step's kind, the body's before a release's.
        type Scoped = loopscope::ScopedError<
            BothAcquireError<io::Error, io::Error, Infallible>,
            io::Error,
            BothReleaseError<Infallible, io::Error>,
        >;
        let used: Scoped = Scoped::Use {
            index: 2,
            source: error(ErrorKind::InvalidData, "bad line"),
            release: Some(BothReleaseError::Second {
                source: error(ErrorKind::StorageFull, "sync"),
            }),
        };
        assert_eq!(io::Error::from(used).kind(), ErrorKind::InvalidData);
        let released: Scoped = Scoped::Release {
            index: 2,
            source: BothReleaseError::Second {
                source: error(ErrorKind::StorageFull, "sync"),
            },
        };
        assert_eq!(io::Error::from(released).kind(), ErrorKind::StorageFull);
        let acquired: Scoped = Scoped::Acquire {
            index: 2,
            source: BothAcquireError::First {
                source: error(ErrorKind::NotFound, "open"),
            },
        };
        assert_eq!(io::Error::from(acquired).kind(), ErrorKind::NotFound);

        // Nested: the innermost failed acquire's kind.
        let nested: BothAcquireError<
            io::Error,
            BothAcquireError<io::Error, io::Error, Infallible>,
            io::Error,
        > = BothAcquireError::Second {
            source: BothAcquireError::Second {
                source: error(ErrorKind::PermissionDenied, "c"),
                release: None,
            },
            release: None,
        };
        assert_eq!(io::Error::from(nested).kind(), ErrorKind::PermissionDenied);
    }
}

/// The async implementations, sequential and concurrent.
#[cfg(feature = "stream")]
mod stream {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::executor::block_on;
    use futures::stream::{self, StreamExt};
    use loopscope::AsyncAcquire;

    use super::*;

    /// Returns `Pending` once (waking at once), so that every step is a point
    /// where a concurrent adapter switches items, or a future can be dropped.
    #[derive(Default)]
    struct YieldNow(bool);

    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    impl<'a> AsyncAcquire<Item> for Part<'a> {
        type Resource = Resource<'a>;
        type Error = Fail;
        type ReleaseError = Fail;

        async fn acquire(self, item: Item) -> Result<Resource<'a>, Fail> {
            YieldNow::default().await;
            self.acquire_now(item)
        }

        async fn release(self, resource: Resource<'a>, outcome: Outcome) -> Result<(), Fail> {
            self.release_start(&resource, outcome);
            // Cancelled here, the release future drops the resource it owns.
            YieldNow::default().await;
            self.release_end(resource)
        }

        fn release_on_cancel(self, resource: Resource<'a>) {
            self.cancel_now(resource);
        }
    }

    async fn body_async(
        log: &Log,
        pair: &mut (Resource<'_>, Resource<'_>),
        scripts: &[Script],
    ) -> Result<usize, Fail> {
        YieldNow::default().await;
        let script = scripts[pair.0.index];
        body_now(log, pair, script)
    }

    /// The model's calls of one item.
    fn item_events(events: &[Event], index: usize) -> Vec<Event> {
        let of = |event: &Event| match *event {
            Event::Acquire(_, i)
            | Event::Body(i)
            | Event::Release(_, i, _)
            | Event::Cancel(_, i)
            | Event::Drop(_, i) => i,
        };
        events
            .iter()
            .copied()
            .filter(|event| of(event) == index)
            .collect()
    }

    proptest! {
        #![proptest_config(crate::cases::config(256))]

        #[test]
        fn stream_for_each_scoped_matches_the_model(scripts in scripts(false)) {
            let _watchdog = watchdog("stream_for_each_scoped_matches_the_model");
            let log = Log::default();
            let (first, second) = parts(&log);
            let result = block_on(
                stream::iter(items(&scripts))
                    .for_each_scoped(both(first, second), async |pair| body_async(&log, pair, &scripts).await.map(drop)),
            );
            let (expected, ends) = model(&scripts, true);
            let expected_end = ends.into_iter().find(|end| !matches!(end, End::Value(_)));
            prop_assert_eq!(result.err().map(End::Error), expected_end);
            check_log(&log, &expected, 1)?;
        }

        #[test]
        fn stream_try_map_scoped_matches_the_model(scripts in scripts(false)) {
            let _watchdog = watchdog("stream_try_map_scoped_matches_the_model");
            let log = Log::default();
            let (first, second) = parts(&log);
            let ends: Vec<End> = block_on(
                stream::iter(items(&scripts))
                    .try_map_scoped(both(first, second), async |pair| body_async(&log, pair, &scripts).await)
                    .map(|result| result.map_or_else(End::Error, End::Value))
                    .collect(),
            );
            let (expected, expected_ends) = model(&scripts, false);
            prop_assert_eq!(ends, expected_ends);
            check_log(&log, &expected, 1)?;
        }

        /// Concurrent, in input order: each item's calls as modelled (items
        /// interleave), one result per item, at most `2 × limit` resources live.
        #[test]
        fn concurrent_try_map_scoped_matches_the_model(scripts in scripts(false), limit in 1_usize..4) {
            let _watchdog = watchdog("concurrent_try_map_scoped_matches_the_model");
            let log = Log::default();
            let (first, second) = parts(&log);
            let ends: Vec<End> = block_on(
                stream::iter(items(&scripts))
                    .try_map_scoped_concurrent(limit, both(first, second), async |pair| {
                        body_async(&log, pair, &scripts).await
                    })
                    .map(|result| result.map_or_else(End::Error, End::Value))
                    .collect(),
            );
            let (expected, expected_ends) = model(&scripts, false);
            prop_assert_eq!(ends, expected_ends);
            let events = log.events();
            for index in 0..scripts.len() {
                prop_assert_eq!(item_events(&events, index), item_events(&expected, index), "item {}", index);
            }
            prop_assert_eq!(log.live(), 0);
            prop_assert!(log.peak() <= 2 * limit, "peak {} over {}", log.peak(), 2 * limit);
            if limit == 1 {
                prop_assert_eq!(events, expected);
            }
        }

        /// Concurrent and fail-fast, on a multi-threaded tokio runtime: every item
        /// started ran as modelled to its end, and the error is one of theirs.
        #[test]
        fn concurrent_for_each_scoped_on_tokio(scripts in scripts(false), limit in 1_usize..4) {
            let _watchdog = watchdog("concurrent_for_each_scoped_on_tokio");
            let log = Log::default();
            let (first, second) = parts(&log);
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            let result = runtime.block_on(
                stream::iter(items(&scripts)).for_each_scoped_concurrent(limit, both(first, second), async |pair| {
                    body_async(&log, pair, &scripts).await.map(drop)
                }),
            );
            let (expected, ends) = model(&scripts, false);
            let events = log.events();
            let mut started = Vec::new();
            for index in 0..scripts.len() {
                let seen = item_events(&events, index);
                if !seen.is_empty() {
                    // Started items ran to their modelled end, or were cancelled
                    // by another item's failure (their resources still released:
                    // `live` is 0 below).
                    if seen != item_events(&expected, index) {
                        prop_assert!(result.is_err(), "item {} cancelled without a failure", index);
                    }
                    started.push((index, seen == item_events(&expected, index)));
                }
            }
            match result {
                Ok(()) => prop_assert!(ends.iter().all(|end| matches!(end, End::Value(_)))),
                Err(failures) => {
                    // The first failure is an item that ran to its modelled end.
                    let index = failures.index();
                    prop_assert!(started.contains(&(index, true)));
                    prop_assert_eq!(End::Error(failures.into_first()), ends[index].clone());
                }
            }
            prop_assert_eq!(log.live(), 0);
            prop_assert!(log.peak() <= 2 * limit);
        }
    }

    /// Drops the adapter's future after each number of polls in turn: whatever
    /// it holds then goes to `release_on_cancel`, second resource first, exactly
    /// once.
    #[test]
    fn cancelled_at_every_poll_hands_both_to_release_on_cancel_in_reverse() {
        let _watchdog =
            watchdog("cancelled_at_every_poll_hands_both_to_release_on_cancel_in_reverse");
        let ok = Script {
            acquire: [Step::Ok; 2],
            body: Step::Ok,
            release: [Step::Ok; 2],
        };
        let mut saw_both_cancelled = false;
        let mut saw_first_cancelled_alone = false;
        for polls in 0..40 {
            let log = Log::default();
            let (first, second) = parts(&log);
            let scripts = [ok, ok];
            let mut future = Box::pin(
                stream::iter(items(&scripts)).for_each_scoped(both(first, second), async |pair| {
                    body_async(&log, pair, &scripts).await.map(drop)
                }),
            );
            let mut cx = Context::from_waker(futures::task::noop_waker_ref());
            let mut finished = false;
            for _ in 0..polls {
                if future.as_mut().poll(&mut cx).is_ready() {
                    finished = true;
                    break;
                }
            }
            drop(future);
            let events = log.events();
            assert_eq!(log.live(), 0, "after {polls} polls: {events:?}");
            let cancels: Vec<_> = events
                .iter()
                .filter(|e| matches!(e, Event::Cancel(..)))
                .collect();
            let index = |event: &&Event| match **event {
                Event::Cancel(_, i) => i,
                _ => unreachable!(),
            };
            match cancels.as_slice() {
                [] => {}
                [Event::Cancel(2, _), Event::Cancel(1, _)] => {
                    assert_eq!(index(&cancels[0]), index(&cancels[1]));
                    saw_both_cancelled = true;
                }
                [Event::Cancel(1, _)] => saw_first_cancelled_alone = true,
                other => panic!("after {polls} polls, cancelled {other:?}"),
            }
            // Every resource acquired (and so dropped: nothing is live, above)
            // was handed exactly once to its release or to `release_on_cancel`.
            for part in [1, 2] {
                for i in 0..2 {
                    let count = |matches: &dyn Fn(&Event) -> bool| {
                        events.iter().filter(|e| matches(e)).count()
                    };
                    let drops = count(&|e| *e == Event::Drop(part, i));
                    let ends = count(
                        &|e| matches!(*e, Event::Release(p, j, _) | Event::Cancel(p, j) if p == part && j == i),
                    );
                    assert!(
                        drops <= 1 && ends == drops,
                        "after {polls} polls, part {part} item {i}: {events:?}"
                    );
                }
            }
            if finished {
                break;
            }
        }
        // Both cancel points were reached: during the second acquire (only the
        // first resource held) and during the body (both held).
        assert!(saw_both_cancelled && saw_first_cancelled_alone);
    }

    /// Panics on the async path: a body's panic waits for both releases, second
    /// first (told `Panicked`); a panicking second acquire or release leaves the
    /// first resource to `release_on_cancel`, as the unwinding drops the future.
    #[cfg(feature = "std")]
    #[test]
    fn async_panics_still_release_the_first_resource() {
        let _watchdog = watchdog("async_panics_still_release_the_first_resource");
        quiet_injected_panics();
        let ok = Script {
            acquire: [Step::Ok; 2],
            body: Step::Ok,
            release: [Step::Ok; 2],
        };
        let cases = [
            (
                Script {
                    body: Step::Panic,
                    ..ok
                },
                Stage::Body,
                vec![
                    Event::Acquire(1, 0),
                    Event::Acquire(2, 0),
                    Event::Body(0),
                    Event::Release(2, 0, Outcome::Panicked),
                    Event::Drop(2, 0),
                    Event::Release(1, 0, Outcome::Panicked),
                    Event::Drop(1, 0),
                ],
            ),
            (
                Script {
                    acquire: [Step::Ok, Step::Panic],
                    ..ok
                },
                Stage::Acquire(2),
                vec![
                    Event::Acquire(1, 0),
                    Event::Acquire(2, 0),
                    Event::Cancel(1, 0),
                    Event::Drop(1, 0),
                ],
            ),
            (
                Script {
                    release: [Step::Ok, Step::Panic],
                    ..ok
                },
                Stage::Release(2),
                vec![
                    Event::Acquire(1, 0),
                    Event::Acquire(2, 0),
                    Event::Body(0),
                    Event::Release(2, 0, Outcome::Completed),
                    Event::Drop(2, 0),
                    Event::Cancel(1, 0),
                    Event::Drop(1, 0),
                ],
            ),
        ];
        for (script, stage, expected) in cases {
            let log = Log::default();
            let (first, second) = parts(&log);
            let scripts = [script];
            let run = panic::catch_unwind(AssertUnwindSafe(|| {
                block_on(
                    stream::iter(items(&scripts))
                        .for_each_scoped(both(first, second), async |pair| {
                            body_async(&log, pair, &scripts).await.map(drop)
                        }),
                )
            }));
            let payload = panic_payload(run.expect_err("the injected panic resumes"));
            assert_eq!(payload, Fail(stage, 0));
            assert_eq!(log.events(), expected, "{stage:?}");
            assert_eq!(log.live(), 0);
        }
    }

    /// The async `both` of plain async closures: dropped second first, on the
    /// normal path and on cancellation.
    #[test]
    fn async_closures_are_dropped_second_first() {
        let _watchdog = watchdog("async_closures_are_dropped_second_first");
        let log = Log::default();
        let (first, second) = parts(&log);
        let ok = Script {
            acquire: [Step::Ok; 2],
            body: Step::Ok,
            release: [Step::Ok; 2],
        };
        block_on(stream::iter([(0, ok)]).for_each_scoped(
            both(
                async |item| first.acquire_now(item),
                async |item| second.acquire_now(item),
            ),
            async |_pair| {
                YieldNow::default().await;
                Ok::<_, Fail>(())
            },
        ))
        .unwrap();
        assert_eq!(
            log.events(),
            [
                Event::Acquire(1, 0),
                Event::Acquire(2, 0),
                Event::Drop(2, 0),
                Event::Drop(1, 0)
            ]
        );

        // Cancelled while the body holds both.
        let log = Log::default();
        let (first, second) = parts(&log);
        let mut future = Box::pin(stream::iter([(0, ok)]).for_each_scoped(
            both(
                async |item| first.acquire_now(item),
                async |item| second.acquire_now(item),
            ),
            async |_pair| {
                YieldNow::default().await;
                Ok::<_, Fail>(())
            },
        ));
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        drop(future);
        assert_eq!(
            log.events(),
            [
                Event::Acquire(1, 0),
                Event::Acquire(2, 0),
                Event::Drop(2, 0),
                Event::Drop(1, 0)
            ]
        );
    }

    fn assert_send<T: Send>(_: &T) {}

    /// The adapters' futures stay `Send` with `both` of async closures and
    /// brackets, and run as spawned tasks.
    #[test]
    fn adapters_given_both_are_send() {
        let _watchdog = watchdog("adapters_given_both_are_send");
        let items = || stream::iter(0_u32..4);
        assert_send(&items().for_each_scoped(
            both(
                async |n: u32| Ok::<_, Infallible>(n),
                async |n: u32| Ok::<_, Infallible>(n.to_string()),
            ),
            async |(n, text)| Ok::<_, Infallible>(*n as usize + text.len()),
        ));
        let closing = async_bracket(async |n: u32| Ok::<_, std::io::Error>(vec![n])).release(
            |buffer| async move {
                drop(buffer);
                Ok::<_, std::io::Error>(())
            },
        );
        assert_send(&items().try_map_scoped(
            both(async |n: u32| Ok::<_, std::io::Error>(n), closing.clone()),
            async |(n, buffer)| Ok::<_, std::io::Error>(buffer.len() + *n as usize),
        ));
        assert_send(&items().try_map_scoped_concurrent(
            2,
            both(async |n: u32| Ok::<_, std::io::Error>(n), closing),
            async |(n, buffer)| Ok::<_, std::io::Error>(buffer.len() + *n as usize),
        ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let total = runtime
            .block_on(
                runtime.spawn(
                    items()
                        .try_map_scoped_unordered(
                            3,
                            both(
                                async |n: u32| Ok::<_, Infallible>(n),
                                async |n: u32| Ok::<_, Infallible>(n * 10),
                            ),
                            async |(n, tens)| {
                                tokio::task::yield_now().await;
                                Ok::<_, Infallible>(*n + *tens)
                            },
                        )
                        .map(Result::unwrap)
                        .fold(0, async |sum, n| sum + n),
                ),
            )
            .unwrap();
        assert_eq!(total, (0..4).map(|n| n * 11).sum::<u32>());
    }
}

/// Real files: an input read and an output written per item, with at most one of
/// each open. Descriptors are counted in a child process that runs nothing else
/// (other tests of this binary open descriptors of their own).
#[cfg(all(target_os = "linux", feature = "testing"))]
mod real_files {
    use std::fs::{self, File};
    use std::io::{self, Read, Write};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use loopscope::testing::open_fds;

    use super::*;

    const CHILD_DIR_VAR: &str = "LOOPSCOPE_COMBINE_CHILD_DIR";
    const TEST: &str = "real_files::inputs_and_outputs_one_of_each_open";
    const DONE: &str = "combine child: all checks passed";
    const FILES: usize = 200;

    #[test]
    fn inputs_and_outputs_one_of_each_open() {
        match std::env::var_os(CHILD_DIR_VAR) {
            Some(dir) => in_child(Path::new(&dir)).unwrap(),
            None => {
                let dir = tempfile::tempdir().unwrap();
                let output = Command::new(std::env::current_exe().unwrap())
                    .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
                    .env(CHILD_DIR_VAR, dir.path())
                    .output()
                    .unwrap();
                let stdout = String::from_utf8_lossy(&output.stdout);
                assert!(
                    output.status.success() && stdout.contains(DONE),
                    "the child failed ({}):\n{stdout}\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr),
                );
            }
        }
    }

    fn in_child(dir: &Path) -> io::Result<()> {
        let out = dir.join("out");
        fs::create_dir(&out)?;
        let inputs: Vec<PathBuf> = (0..FILES)
            .map(|i| dir.join(format!("{i:03}.log")))
            .collect();
        for (i, input) in inputs.iter().enumerate() {
            fs::write(input, format!("line {i}\n").repeat(i % 5 + 1))?;
        }
        let output_of = |input: &PathBuf| out.join(input.file_name().unwrap());

        let baseline = open_fds()?;
        let mut peak = 0;
        let mut converted = 0;
        inputs.iter().for_each_scoped(
            both(
                File::open,
                bracket(|input: &PathBuf| File::create(output_of(input)))
                    .release(|output: File| output.sync_all()),
            ),
            |(input, output)| {
                peak = peak.max(open_fds()?);
                let mut text = String::new();
                input.read_to_string(&mut text)?;
                output.write_all(text.to_uppercase().as_bytes())?;
                converted += 1;
                Ok::<_, io::Error>(())
            },
        )?;
        assert_eq!(converted, FILES);
        assert!(
            peak <= baseline + 2,
            "peak {peak} over baseline {baseline} + 2"
        );
        assert_eq!(open_fds()?, baseline);
        for (i, input) in inputs.iter().enumerate() {
            let expected = format!("LINE {i}\n").repeat(i % 5 + 1);
            assert_eq!(fs::read_to_string(output_of(input))?, expected);
        }

        // A failing second acquire closes the input before the error returns.
        fs::remove_dir_all(&out)?;
        let error = inputs.iter().for_each_scoped(
            both(File::open, |input: &PathBuf| File::create(output_of(input))),
            |_pair| Ok::<_, io::Error>(()),
        );
        let error = io::Error::from(error.unwrap_err());
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert_eq!(open_fds()?, baseline);
        println!("converted {converted} files, peak {peak} descriptors (baseline {baseline})");
        println!("{DONE}");
        Ok(())
    }
}

/// A part with a release deadline (`release_timeout`, feature `tokio`): `?`
/// reaches `io::Result`, and a release past its deadline is `TimedOut`.
#[cfg(feature = "tokio")]
mod release_timeout {
    use std::fs::File;
    use std::io::{self, ErrorKind, Read, Write};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use futures::stream;

    use super::*;

    /// How the output's release ends.
    #[derive(Clone, Copy)]
    enum Sync {
        Ok,
        Fails,
        Stuck,
    }

    /// Copies each input to `out`; the output's release syncs it, within 5 s.
    async fn copy_all(inputs: &[PathBuf], out: &Path, sync: Sync) -> io::Result<()> {
        stream::iter(inputs.to_vec())
            .for_each_scoped(
                both(
                    async |input: PathBuf| File::open(input),
                    async_bracket(async |input: PathBuf| {
                        File::create(out.join(input.file_name().unwrap()))
                    })
                    .release(move |output: File| async move {
                        match sync {
                            Sync::Ok => output.sync_all(),
                            Sync::Fails => Err(io::Error::from(ErrorKind::StorageFull)),
                            // A network file system that never answers.
                            Sync::Stuck => std::future::pending().await,
                        }
                    })
                    .release_timeout(Duration::from_secs(5)),
                ),
                async |(input, output)| {
                    let mut text = String::new();
                    input.read_to_string(&mut text)?;
                    output.write_all(text.as_bytes())
                },
            )
            .await?;
        Ok(())
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn question_mark_works_and_a_stuck_release_is_timed_out() {
        let _watchdog = watchdog("question_mark_works_and_a_stuck_release_is_timed_out");
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        std::fs::write(&input, "x").unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let inputs = [input];

        copy_all(&inputs, &out, Sync::Ok).await.unwrap();
        assert_eq!(std::fs::read_to_string(out.join("in.txt")).unwrap(), "x");

        let failed = copy_all(&inputs, &out, Sync::Fails).await.unwrap_err();
        assert_eq!(failed.kind(), ErrorKind::StorageFull);

        let started = tokio::time::Instant::now();
        let stuck = copy_all(&inputs, &out, Sync::Stuck).await.unwrap_err();
        assert_eq!(stuck.kind(), ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        type Inner = loopscope::ScopedError<
            BothAcquireError<io::Error, io::Error, Infallible>,
            io::Error,
            BothReleaseError<Infallible, loopscope::ReleaseTimeoutError<io::Error>>,
        >;
        let inner = stuck.get_ref().unwrap().downcast_ref::<Inner>().unwrap();
        assert!(matches!(
            inner,
            Inner::Release {
                index: 0,
                source: BothReleaseError::Second {
                    source: loopscope::ReleaseTimeoutError::TimedOut { .. }
                }
            }
        ));
    }
}
