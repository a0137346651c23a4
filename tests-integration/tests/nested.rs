#![cfg(feature = "testing")]
//! `nested`: an inner resource acquired from the outer one (a transaction on its
//! connection), released first — lent the outer resource again — then the
//! outer one; a failed inner acquire releases the outer resource, no error is
//! lost, and a cancellation between or during the steps releases what was
//! acquired.
//!
//! The property tests give every item a script — the outer and the inner
//! acquire, the body and the two releases each succeed, fail (or, in the sync
//! tests, panic) — run the adapters on `nested(outer, inner)`, and compare the
//! log of every call (with the `Outcome` each release was told) and every result
//! with a model of what must happen. The inner part gets only the outer
//! resource, never the item: it reads the item's script from the outer resource
//! and marks it "inside a transaction" until the inner release (or
//! `release_on_cancel`) ends it; the outer release logs whether it was ended
//! first. Every resource also holds a `testing::Tracker` resource, for live,
//! peak and exactly-once counts.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/watchdog.rs"]
mod watchdog;

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use loopscope::prelude::*;
use loopscope::testing::{Tracked, Tracker};
use loopscope::{Acquire, AcquireOn, BothAcquireError, BothReleaseError, Outcome, nested};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
#[cfg(feature = "stream")]
use watchdog::watchdog;

/// What one step of an item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Ok,
    Err,
    /// Only in the sync tests (a second panic while the first unwinds would
    /// abort in the async ones, where nothing catches a release's panic).
    Panic,
}

/// What the outer and inner acquires, the body and the inner and outer
/// releases do for one item. Index 0 is the outer part, 1 the inner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Script {
    acquire: [Step; 2],
    body: Step,
    release: [Step; 2],
}

const OK: Script = Script {
    acquire: [Step::Ok; 2],
    body: Step::Ok,
    release: [Step::Ok; 2],
};

type Item = (usize, Script);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Acquire(u8),
    Body,
    Release(u8),
}

/// Every error of the harness, and every injected panic's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fail(Stage, usize);

/// One call, as the log records it; the outer part is 1, the inner 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Acquire(u8, usize),
    Body(usize),
    Release(u8, usize, Outcome),
    /// `release_on_cancel` (async only).
    Cancel(u8, usize),
    /// The resource was dropped.
    Drop(u8, usize),
}

type Error =
    loopscope::ScopedError<BothAcquireError<Fail, Fail, Fail>, Fail, BothReleaseError<Fail, Fail>>;

#[derive(Debug, Clone, PartialEq)]
enum End {
    Value(usize),
    Error(Error),
    Panic(Fail),
}

#[derive(Debug, Default)]
struct State {
    events: Vec<Event>,
    /// Outer resources released (or cancelled) while their inner step was
    /// still open: a connection handed back inside its transaction.
    released_inside: Vec<usize>,
}

/// The log every part writes to, and the tracker of every resource.
#[derive(Debug, Default)]
struct Log {
    state: Mutex<State>,
    tracker: Tracker,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn push(&self, event: Event) {
        self.lock().events.push(event);
    }
    fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }
}

/// The outer resource (a connection): its item's script, and whether the
/// inner step (a transaction) is open on it.
#[derive(Debug)]
struct Outer<'a> {
    index: usize,
    script: Script,
    inner_open: bool,
    log: &'a Log,
    _tracked: Tracked,
}

impl Drop for Outer<'_> {
    fn drop(&mut self) {
        self.log.push(Event::Drop(1, self.index));
    }
}

/// The inner resource (a transaction token); it does not borrow the outer one.
#[derive(Debug)]
struct Inner<'a> {
    index: usize,
    log: &'a Log,
    _tracked: Tracked,
}

impl Drop for Inner<'_> {
    fn drop(&mut self) {
        self.log.push(Event::Drop(2, self.index));
    }
}

fn step_result(step: Step, fail: Fail) -> Result<(), Fail> {
    match step {
        Step::Ok => Ok(()),
        Step::Err => Err(fail),
        Step::Panic => panic::panic_any(fail),
    }
}

/// The outer part: acquires from the item.
#[derive(Debug, Clone, Copy)]
struct OuterPart<'a> {
    log: &'a Log,
}

/// The inner part: acquires from the outer resource, never sees the item.
#[derive(Debug, Clone, Copy)]
struct InnerPart<'a> {
    log: &'a Log,
}

impl<'a> OuterPart<'a> {
    fn acquire_now(&self, (index, script): Item) -> Result<Outer<'a>, Fail> {
        self.log.push(Event::Acquire(1, index));
        step_result(script.acquire[0], Fail(Stage::Acquire(1), index))?;
        Ok(Outer {
            index,
            script,
            inner_open: false,
            log: self.log,
            _tracked: self.log.tracker.acquire(),
        })
    }

    fn release_start(&self, outer: &Outer<'a>, outcome: Outcome) {
        self.log.push(Event::Release(1, outer.index, outcome));
        if outer.inner_open {
            self.log.lock().released_inside.push(outer.index);
        }
    }

    fn release_end(outer: Outer<'a>) -> Result<(), Fail> {
        let (step, index) = (outer.script.release[0], outer.index);
        // A panicking release drops the resource while unwinding.
        let released = step_result(step, Fail(Stage::Release(1), index));
        drop(outer);
        released
    }

    fn release_now(&self, outer: Outer<'a>, outcome: Outcome) -> Result<(), Fail> {
        self.release_start(&outer, outcome);
        Self::release_end(outer)
    }

    fn cancel_now(&self, outer: Outer<'a>) {
        self.log.push(Event::Cancel(1, outer.index));
        if outer.inner_open {
            self.log.lock().released_inside.push(outer.index);
        }
    }
}

impl<'a> InnerPart<'a> {
    fn acquire_now(&self, outer: &mut Outer<'a>) -> Result<Inner<'a>, Fail> {
        assert!(!outer.inner_open, "an inner step opened twice");
        let index = outer.index;
        self.log.push(Event::Acquire(2, index));
        step_result(outer.script.acquire[1], Fail(Stage::Acquire(2), index))?;
        outer.inner_open = true;
        Ok(Inner {
            index,
            log: self.log,
            _tracked: self.log.tracker.acquire(),
        })
    }

    fn release_start(&self, inner: &Inner<'a>, outer: &mut Outer<'a>, outcome: Outcome) {
        assert_eq!(
            inner.index, outer.index,
            "released on another item's outer resource"
        );
        assert!(outer.inner_open, "the inner step was not open");
        self.log.push(Event::Release(2, inner.index, outcome));
        outer.inner_open = false; // COMMIT or ROLLBACK, either way the step ends
    }

    fn release_end(inner: Inner<'a>, outer: &Outer<'a>) -> Result<(), Fail> {
        let index = inner.index;
        let released = step_result(outer.script.release[1], Fail(Stage::Release(2), index));
        drop(inner);
        released
    }

    fn release_now(
        &self,
        inner: Inner<'a>,
        outer: &mut Outer<'a>,
        outcome: Outcome,
    ) -> Result<(), Fail> {
        self.release_start(&inner, outer, outcome);
        Self::release_end(inner, outer)
    }

    fn cancel_now(&self, inner: Inner<'a>, outer: &mut Outer<'a>) {
        assert_eq!(inner.index, outer.index);
        self.log.push(Event::Cancel(2, inner.index));
        outer.inner_open = false; // a synchronous rollback
    }
}

impl<'a> Acquire<Item> for OuterPart<'a> {
    type Resource = Outer<'a>;
    type Error = Fail;
    type ReleaseError = Fail;

    fn acquire(&mut self, item: Item) -> Result<Outer<'a>, Fail> {
        self.acquire_now(item)
    }

    fn release(&mut self, outer: Outer<'a>, outcome: Outcome) -> Result<(), Fail> {
        self.release_now(outer, outcome)
    }
}

impl<'a> AcquireOn<Outer<'a>> for InnerPart<'a> {
    type Resource = Inner<'a>;
    type Error = Fail;
    type ReleaseError = Fail;

    fn acquire(&mut self, outer: &mut Outer<'a>) -> Result<Inner<'a>, Fail> {
        self.acquire_now(outer)
    }

    fn release(
        &mut self,
        inner: Inner<'a>,
        outer: &mut Outer<'a>,
        outcome: Outcome,
    ) -> Result<(), Fail> {
        self.release_now(inner, outer, outcome)
    }
}

/// The body: checks it holds one item's pair with the inner step open, logs,
/// then follows the script; its value is the item's position.
fn body_now(log: &Log, (outer, inner): &mut (Outer<'_>, Inner<'_>)) -> Result<usize, Fail> {
    assert_eq!(
        outer.index, inner.index,
        "resources of two items lent together"
    );
    assert!(outer.inner_open, "the body ran outside the inner step");
    let index = outer.index;
    log.push(Event::Body(index));
    step_result(outer.script.body, Fail(Stage::Body, index))?;
    Ok(index)
}

/// What must happen to one item: the calls in order, and how it ends. The
/// same rules as `both`'s, with the inner part in the second place.
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
        (Step::Panic, _) => Outcome::Panicked,
        // A failed COMMIT: the item fails, the outer release must not see success.
        (Step::Err, Outcome::Completed) => Outcome::Failed,
        _ => outcome,
    };
    release1(outcome1, events);

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
    let failed =
        |step: Step, part: u8| (step == Step::Err).then_some(Fail(Stage::Release(part), index));
    let released = match (failed(script.release[0], 1), failed(script.release[1], 2)) {
        (None, None) => None,
        (Some(source), None) => Some(BothReleaseError::First { source }),
        (None, Some(source)) => Some(BothReleaseError::Second { source }),
        (Some(first), Some(second)) => Some(BothReleaseError::Both { first, second }),
    };
    match (script.body, released) {
        (Step::Ok, None) => End::Value(index),
        (Step::Ok, Some(source)) => End::Error(Error::Release { index, source }),
        (_, release) => End::Error(Error::Use {
            index,
            source: Fail(Stage::Body, index),
            release,
        }),
    }
}

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
    if panics {
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

fn parts(log: &Log) -> (OuterPart<'_>, InnerPart<'_>) {
    (OuterPart { log }, InnerPart { log })
}

/// What every run must show: the log as modelled, no outer resource released
/// inside its inner step, every resource released exactly once, and at most
/// the two resources of `limit` items live at once.
fn check(log: &Log, expected: &[Event], limit: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.events(), expected);
    check_counts(log, limit)
}

fn check_counts(log: &Log, limit: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(&log.lock().released_inside, &Vec::<usize>::new());
    prop_assert_eq!(log.tracker.live(), 0, "resources left live");
    prop_assert!(
        log.tracker.peak() <= 2 * limit,
        "peak {} over {}",
        log.tracker.peak(),
        2 * limit
    );
    if let Err(mismatch) = log.tracker.check_released_exactly_once() {
        return Err(TestCaseError::fail(mismatch.to_string()));
    }
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

    /// `for_each_scoped`: order, the inner part released first on the outer
    /// resource, outcomes, every error and panic, fail-fast.
    #[test]
    fn sync_for_each_scoped_matches_the_model(scripts in scripts(true)) {
        quiet_injected_panics();
        let log = Log::default();
        let (outer, inner) = parts(&log);
        let run = panic::catch_unwind(AssertUnwindSafe(|| {
            items(&scripts).for_each_scoped(nested(outer, inner), |pair| body_now(&log, pair).map(drop))
        }));
        let (expected, ends) = model(&scripts, true);
        let end = match run {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(End::Error(error)),
            Err(payload) => Some(End::Panic(panic_payload(payload))),
        };
        prop_assert_eq!(end, ends.into_iter().find(|end| !matches!(end, End::Value(_))));
        check(&log, &expected, 1)?;
    }

    /// `try_map_scoped`: one result per item, every error kept with its index.
    #[test]
    fn sync_try_map_scoped_matches_the_model(scripts in scripts(false)) {
        let log = Log::default();
        let (outer, inner) = parts(&log);
        let ends: Vec<End> = items(&scripts)
            .try_map_scoped(nested(outer, inner), |pair| body_now(&log, pair))
            .map(|result| result.map_or_else(End::Error, End::Value))
            .collect();
        let (expected, expected_ends) = model(&scripts, false);
        prop_assert_eq!(ends, expected_ends);
        check(&log, &expected, 1)?;
    }
}

/// The inner acquire and release are given the outer resource itself, by
/// `&mut`, with closures and `bracket_on`: what they do to it, the body and the
/// outer release see.
#[test]
fn closures_get_the_outer_resource_by_mut() {
    let released = Mutex::new(Vec::new());
    let results: Vec<_> = ["a", "b"]
        .into_iter()
        .try_map_scoped(
            nested(
                bracket(|name: &str| Ok::<_, ()>(vec![name.to_owned()])).release_with(
                    |log, outcome| {
                        released.lock().unwrap().push((log.join(" "), outcome));
                        Ok::<_, ()>(())
                    },
                ),
                loopscope::bracket_on(|log: &mut Vec<String>| {
                    log.push("BEGIN".to_owned());
                    Ok::<_, ()>(log.len())
                })
                .release_with(|begun_at, log, outcome| {
                    assert_eq!(log[begun_at - 1], "BEGIN");
                    log.push(
                        if outcome.is_completed() {
                            "COMMIT"
                        } else {
                            "ROLLBACK"
                        }
                        .to_owned(),
                    );
                    Ok::<_, ()>(())
                }),
            ),
            |(log, _begun_at)| {
                log.push("INSERT".to_owned());
                if log[0] == "b" {
                    Err(())
                } else {
                    Ok(log.len())
                }
            },
        )
        .collect();
    assert_eq!(results[0], Ok(3));
    assert!(results[1].is_err());
    assert_eq!(
        released.into_inner().unwrap(),
        [
            ("a BEGIN INSERT COMMIT".to_owned(), Outcome::Completed),
            ("b BEGIN INSERT ROLLBACK".to_owned(), Outcome::Failed),
        ]
    );

    // A plain closure as the inner part: released by `Drop`, after the body,
    // before the outer release.
    let order = Arc::new(Mutex::new(Vec::new()));
    [1].into_iter()
        .for_each_scoped(
            nested(
                bracket(|_: i32| Ok::<_, ()>(Arc::clone(&order))).release(|order| {
                    order.lock().unwrap().push("outer released");
                    Ok::<_, ()>(())
                }),
                |order: &mut Order| Ok::<_, ()>(Named("inner dropped", Arc::clone(order))),
            ),
            |(order, _inner)| {
                order.lock().unwrap().push("body");
                Ok::<_, ()>(())
            },
        )
        .unwrap();
    assert_eq!(
        *order.lock().unwrap(),
        ["body", "inner dropped", "outer released"]
    );
}

type Order = Arc<Mutex<Vec<&'static str>>>;

/// Logs its name to `order` when dropped.
struct Named(&'static str, Order);

impl Drop for Named {
    fn drop(&mut self) {
        self.1.lock().unwrap().push(self.0);
    }
}

/// The async implementation, sequential and concurrent.
#[cfg(feature = "stream")]
mod stream {
    use std::task::Context;

    use futures::executor::block_on;
    use futures::stream::{self, StreamExt};
    use loopscope::testing::{cancel_at_every_poll, yield_n};
    use loopscope::{AsyncAcquire, AsyncAcquireOn};

    use super::*;

    impl<'a> AsyncAcquire<Item> for OuterPart<'a> {
        type Resource = Outer<'a>;
        type Error = Fail;
        type ReleaseError = Fail;

        async fn acquire(self, item: Item) -> Result<Outer<'a>, Fail> {
            yield_n(1).await;
            self.acquire_now(item)
        }

        async fn release(self, outer: Outer<'a>, outcome: Outcome) -> Result<(), Fail> {
            self.release_start(&outer, outcome);
            // Cancelled here, the release future drops the resource it owns.
            yield_n(1).await;
            OuterPart::release_end(outer)
        }

        fn release_on_cancel(self, outer: Outer<'a>) {
            self.cancel_now(outer);
        }
    }

    impl<'a> AsyncAcquireOn<Outer<'a>> for InnerPart<'a> {
        type Resource = Inner<'a>;
        type Error = Fail;
        type ReleaseError = Fail;

        async fn acquire(self, outer: &mut Outer<'a>) -> Result<Inner<'a>, Fail> {
            // A poll point between the two steps: cancelled here, only the
            // outer resource is held.
            yield_n(1).await;
            self.acquire_now(outer)
        }

        async fn release(
            self,
            inner: Inner<'a>,
            outer: &mut Outer<'a>,
            outcome: Outcome,
        ) -> Result<(), Fail> {
            self.release_start(&inner, outer, outcome);
            yield_n(1).await;
            InnerPart::release_end(inner, outer)
        }

        fn release_on_cancel(self, inner: Inner<'a>, outer: &mut Outer<'a>) {
            self.cancel_now(inner, outer);
        }
    }

    async fn body_async(log: &Log, pair: &mut (Outer<'_>, Inner<'_>)) -> Result<usize, Fail> {
        yield_n(1).await;
        body_now(log, pair)
    }

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
            let (outer, inner) = parts(&log);
            let result = block_on(
                stream::iter(items(&scripts))
                    .for_each_scoped(nested(outer, inner), async |pair| body_async(&log, pair).await.map(drop)),
            );
            let (expected, ends) = model(&scripts, true);
            let expected_end = ends.into_iter().find(|end| !matches!(end, End::Value(_)));
            prop_assert_eq!(result.err().map(End::Error), expected_end);
            check(&log, &expected, 1)?;
        }

        #[test]
        fn stream_try_map_scoped_matches_the_model(scripts in scripts(false)) {
            let _watchdog = watchdog("stream_try_map_scoped_matches_the_model");
            let log = Log::default();
            let (outer, inner) = parts(&log);
            let ends: Vec<End> = block_on(
                stream::iter(items(&scripts))
                    .try_map_scoped(nested(outer, inner), async |pair| body_async(&log, pair).await)
                    .map(|result| result.map_or_else(End::Error, End::Value))
                    .collect(),
            );
            let (expected, expected_ends) = model(&scripts, false);
            prop_assert_eq!(ends, expected_ends);
            check(&log, &expected, 1)?;
        }

        /// Concurrent, in input order: each item's calls as modelled (items
        /// interleave), one result per item, at most `2 × limit` live.
        #[test]
        fn concurrent_try_map_scoped_matches_the_model(scripts in scripts(false), limit in 1_usize..4) {
            let _watchdog = watchdog("concurrent_try_map_scoped_matches_the_model");
            let log = Log::default();
            let (outer, inner) = parts(&log);
            let ends: Vec<End> = block_on(
                stream::iter(items(&scripts))
                    .try_map_scoped_concurrent(limit, nested(outer, inner), async |pair| body_async(&log, pair).await)
                    .map(|result| result.map_or_else(End::Error, End::Value))
                    .collect(),
            );
            let (expected, expected_ends) = model(&scripts, false);
            prop_assert_eq!(ends, expected_ends);
            let events = log.events();
            for index in 0..scripts.len() {
                prop_assert_eq!(item_events(&events, index), item_events(&expected, index), "item {}", index);
            }
            check_counts(&log, limit)?;
        }

        /// Concurrent and fail-fast: the items in flight at the first failure
        /// are cancelled, and both their releases awaited, inner first, told
        /// `Cancelled`; every other item ran as modelled.
        #[test]
        fn concurrent_for_each_scoped_cancels_in_flight_items_inner_first(
            scripts in scripts(false),
            limit in 1_usize..4,
        ) {
            let _watchdog = watchdog("concurrent_for_each_scoped_cancels_in_flight_items_inner_first");
            let log = Log::default();
            let (outer, inner) = parts(&log);
            let result = block_on(
                stream::iter(items(&scripts))
                    .for_each_scoped_concurrent(limit, nested(outer, inner), async |pair| {
                        body_async(&log, pair).await.map(drop)
                    }),
            );
            let (expected, ends) = model(&scripts, false);
            let events = log.events();
            for index in 0..scripts.len() {
                let seen = item_events(&events, index);
                if seen.is_empty() || seen == item_events(&expected, index) {
                    continue;
                }
                prop_assert!(result.is_err(), "item {} cancelled without a failure: {:?}", index, seen);
                // Cancelled mid-item: whatever it held released in order.
                let releases: Vec<_> = seen
                    .iter()
                    .filter(|e| matches!(e, Event::Release(..) | Event::Cancel(..)))
                    .copied()
                    .collect();
                // Cancelled in its outer acquire (nothing held), between the
                // two steps (the outer resource to `release_on_cancel`), or in
                // its body (both releases awaited, inner first).
                let allowed = [
                    vec![],
                    vec![Event::Cancel(1, index)],
                    vec![
                        Event::Release(2, index, Outcome::Cancelled),
                        Event::Release(1, index, Outcome::Cancelled),
                    ],
                ];
                prop_assert!(allowed.contains(&releases), "item {}: {:?}", index, seen);
            }
            match result {
                Ok(()) => prop_assert!(ends.iter().all(|end| matches!(end, End::Value(_)))),
                Err(failures) => {
                    let index = failures.index();
                    prop_assert_eq!(End::Error(failures.into_first()), ends[index].clone());
                }
            }
            check_counts(&log, limit)?;
        }
    }

    /// Dropped after every number of polls (`testing::cancel_at_every_poll`):
    /// whatever the adapter holds goes to `release_on_cancel` — inner first,
    /// lent the outer resource, then the outer one — exactly once, and no
    /// outer resource is released inside its inner step. Both cancel points are
    /// reached: between the two steps (only the outer resource held) and with
    /// both held.
    #[test]
    fn cancelled_at_every_poll_releases_what_was_acquired() {
        let _watchdog = watchdog("cancelled_at_every_poll_releases_what_was_acquired");
        let scripts = [OK, OK];
        let log = Log::default();
        let mut between_steps = 0;
        let mut both_held = 0;
        let polls = cancel_at_every_poll(
            || {
                let (outer, inner) = parts(&log);
                log.lock().events.clear();
                stream::iter(items(&scripts)).for_each_scoped(nested(outer, inner), async |pair| {
                    body_async(&log, pair).await.map(drop)
                })
            },
            |polls| {
                let events = log.events();
                assert_eq!(log.tracker.live(), 0, "after {polls} polls: {events:?}");
                assert_eq!(
                    log.lock().released_inside,
                    Vec::<usize>::new(),
                    "{events:?}"
                );
                let cancels: Vec<_> = events
                    .iter()
                    .filter(|e| matches!(e, Event::Cancel(..)))
                    .copied()
                    .collect();
                match cancels.as_slice() {
                    [] => {}
                    [Event::Cancel(1, _)] => between_steps += 1,
                    [Event::Cancel(2, i), Event::Cancel(1, j)] if i == j => both_held += 1,
                    other => panic!("after {polls} polls, cancelled {other:?}"),
                }
                for part in [1, 2] {
                    for i in 0..scripts.len() {
                        let count = |matches: &dyn Fn(&Event) -> bool| {
                            events.iter().filter(|e| matches(e)).count()
                        };
                        let acquired = count(&|e| *e == Event::Drop(part, i));
                        let ended = count(
                            &|e| matches!(*e, Event::Release(p, j, _) | Event::Cancel(p, j) if p == part && j == i),
                        );
                        assert!(
                            acquired <= 1 && ended == acquired,
                            "after {polls} polls, part {part} item {i}: {events:?}"
                        );
                    }
                }
            },
        );
        assert!(polls > 10, "{polls} polls");
        assert!(
            between_steps > 0 && both_held > 0,
            "{between_steps} {both_held}"
        );
        log.tracker.assert_released_exactly_once();
    }

    /// Panics on the async path: a body's panic waits for both releases, inner
    /// first (told `Panicked`); a panicking inner acquire or release leaves the
    /// outer resource to `release_on_cancel`, as the unwinding drops the future.
    #[test]
    fn async_panics_still_release_the_outer_resource() {
        let _watchdog = watchdog("async_panics_still_release_the_outer_resource");
        quiet_injected_panics();
        let cases = [
            (
                Script {
                    body: Step::Panic,
                    ..OK
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
                    ..OK
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
                    ..OK
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
            let (outer, inner) = parts(&log);
            let scripts = [script];
            let run = panic::catch_unwind(AssertUnwindSafe(|| {
                block_on(
                    stream::iter(items(&scripts))
                        .for_each_scoped(nested(outer, inner), async |pair| {
                            body_async(&log, pair).await.map(drop)
                        }),
                )
            }));
            assert_eq!(
                panic_payload(run.expect_err("the injected panic resumes")),
                Fail(stage, 0)
            );
            assert_eq!(log.events(), expected, "{stage:?}");
            assert_eq!(log.tracker.live(), 0);
            log.tracker.assert_released_exactly_once();
        }
    }

    /// Async closures and `async_bracket_on`: the inner part gets the outer
    /// resource by `&mut`; plain async closures are dropped inner first, also
    /// when cancelled.
    #[test]
    fn async_closures_and_brackets_on_the_outer_resource() {
        let _watchdog = watchdog("async_closures_and_brackets_on_the_outer_resource");
        let closed = Mutex::new(Vec::new());
        let results: Vec<_> = block_on(
            stream::iter([1, 2])
                .try_map_scoped_concurrent(
                    2,
                    nested(
                        async_bracket(async |id: u32| Ok::<_, ()>(vec![format!("connect {id}")]))
                            .release_with(|log, outcome| {
                                closed.lock().unwrap().push((log.join("; "), outcome));
                                async { Ok::<_, ()>(()) }
                            }),
                        loopscope::async_bracket_on(async |log: &mut Vec<String>| {
                            yield_n(1).await;
                            log.push("BEGIN".to_owned());
                            Ok::<_, ()>(())
                        })
                        .release_with(async |(), log, outcome| {
                            yield_n(1).await;
                            log.push(
                                if outcome.is_completed() {
                                    "COMMIT"
                                } else {
                                    "ROLLBACK"
                                }
                                .to_owned(),
                            );
                            Ok::<_, ()>(())
                        }),
                    ),
                    async |(log, ())| {
                        yield_n(1).await;
                        if log[0].ends_with('2') {
                            Err("duplicate key")
                        } else {
                            Ok(log.len())
                        }
                    },
                )
                .collect(),
        );
        assert_eq!(results[0], Ok(2));
        assert!(results[1].is_err());
        let mut closed = closed.into_inner().unwrap();
        closed.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            closed,
            [
                ("connect 1; BEGIN; COMMIT".to_owned(), Outcome::Completed),
                ("connect 2; BEGIN; ROLLBACK".to_owned(), Outcome::Failed),
            ]
        );

        // Plain async closures, released by `Drop`: inner first.
        let order: Order = Arc::default();
        let make = || {
            stream::iter([0]).for_each_scoped(
                nested(
                    async |_: i32| Ok::<_, ()>(Named("outer", Arc::clone(&order))),
                    async |outer: &mut Named| Ok::<_, ()>(Named("inner", Arc::clone(&outer.1))),
                ),
                async |_pair| {
                    yield_n(1).await;
                    Ok::<_, ()>(())
                },
            )
        };
        block_on(make()).unwrap();
        assert_eq!(*order.lock().unwrap(), ["inner", "outer"]);
        order.lock().unwrap().clear();
        let mut future = Box::pin(make());
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        drop(future);
        assert_eq!(*order.lock().unwrap(), ["inner", "outer"]);
    }

    fn assert_send<T: Send>(_: &T) {}

    /// The adapters' futures stay `Send` with `nested` parts that borrow, and
    /// run inside `tokio::spawn`.
    #[test]
    fn adapters_given_nested_are_send() {
        let _watchdog = watchdog("adapters_given_nested_are_send");
        let items = || stream::iter(0_u32..4);
        let begin =
            loopscope::async_bracket_on(async |n: &mut u32| Ok::<_, std::io::Error>(*n * 10))
                .release_with(async |_tens, n, _outcome| {
                    *n += 1;
                    Ok::<_, std::io::Error>(())
                });
        assert_send(&items().for_each_scoped(
            nested(async |n: u32| Ok::<_, std::io::Error>(n), begin.clone()),
            async |(n, tens)| Ok::<_, std::io::Error>(*n as usize + *tens as usize),
        ));
        assert_send(&items().try_map_scoped_concurrent(
            2,
            nested(async |n: u32| Ok::<_, std::io::Error>(n), begin.clone()),
            async |(n, tens)| Ok::<_, std::io::Error>(*n + *tens),
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
                            nested(async |n: u32| Ok::<_, std::io::Error>(n), begin),
                            async |(n, tens)| {
                                tokio::task::yield_now().await;
                                Ok::<_, std::io::Error>(*n + *tens)
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
