//! Shared by the property tests of the sync adapters: a fault script per item, its
//! proptest strategy, a model of what the adapters must do with it, a harness whose
//! acquire, body and release follow the script, and the checks of invariants 1–4
//! of the design (peak, exactly once, nothing lost, order and laziness).
//!
//! Each item of the input is `(position, script)`. The harness's acquire, body and
//! release look at the script to succeed, fail with an error naming the item's
//! position, or panic with an [`Injected`] payload; they log every call, so the
//! order of the calls can be compared with the model's.

// Each test crate that includes this module uses a different part of it.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use loopscope::ScopedError;
use loopscope::testing::{Tracked, Tracker};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The async harness of the stream adapters' property tests.
#[cfg(feature = "stream")]
pub mod stream;

/// What one step of an item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Ok,
    Err,
    Panic,
}

/// What acquire, body and release do for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemScript {
    pub acquire: Step,
    pub body: Step,
    /// Ignored (always `Ok`) when the resource is released by `Drop`.
    pub release: Step,
}

/// How the adapter is given its acquire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// `bracket(acquire).release(release)`: the release closure follows the script.
    Bracket,
    /// A plain acquire closure: the resource is released by `Drop`, which cannot
    /// fail (`ReleaseError = Infallible`).
    Drop,
}

/// The step in which a panic was injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Acquire,
    Body,
    Release,
}

/// The payload of every injected panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injected {
    pub index: usize,
    pub stage: Stage,
}

/// The acquire error of the item at this position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquireFailed(pub usize);

/// The body's error for the item at this position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyFailed(pub usize);

/// The release error for the item at this position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseFailed(pub usize);

impl From<Infallible> for ReleaseFailed {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}

/// The body's value for the item at this position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used(pub usize);

/// A call made by the adapter, with the position of the item it was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Acquire(usize),
    Body(usize),
    /// The bracket's release closure (resources released by `Drop` log nothing;
    /// the tracker sees them).
    Release(usize),
}

/// A [`ScopedError`] with its errors converted to comparable types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Acquire {
        index: usize,
        source: AcquireFailed,
    },
    Use {
        index: usize,
        source: BodyFailed,
        release: Option<ReleaseFailed>,
    },
    Release {
        index: usize,
        source: ReleaseFailed,
    },
}

/// How a call ended: returned `Ok`, returned `Err`, or panicked (with an injected
/// payload; any other panic is not caught and fails the test case).
pub type Ending<T> = Result<Result<T, Failure>, Injected>;

/// The input items: `(position, script)`.
pub type Item = (usize, ItemScript);

/// The adapter's error type for these tests, with release error `R`.
pub type Error<R> = ScopedError<AcquireFailed, BodyFailed, R>;

// ---------------------------------------------------------------- strategies

fn step(ok_weight: u32) -> impl Strategy<Value = Step> {
    prop_oneof![
        ok_weight => Just(Step::Ok),
        1 => Just(Step::Err),
        1 => Just(Step::Panic),
    ]
}

fn item_script(ok_weight: u32, release: Release) -> impl Strategy<Value = ItemScript> {
    let release_step = match release {
        Release::Bracket => step(ok_weight).boxed(),
        Release::Drop => Just(Step::Ok).boxed(),
    };
    (step(ok_weight), step(ok_weight), release_step).prop_map(|(acquire, body, release)| {
        ItemScript {
            acquire,
            body,
            release,
        }
    })
}

/// The most items in a generated input.
pub const MAX_ITEMS: usize = 15;

/// Scripts for 0 to [`MAX_ITEMS`] items. How often a step fails varies from case to case
/// (from 2 in 3 to 1 in 11), so that fail-fast runs sometimes get far.
pub fn scripts(release: Release) -> impl Strategy<Value = Vec<ItemScript>> {
    (1_u32..=20).prop_flat_map(move |ok_weight| {
        proptest::collection::vec(item_script(ok_weight, release), 0..=MAX_ITEMS)
    })
}

/// Scripts, and how many times a consumer calls `next()`: any number from 0 to
/// `len` (so it may stop early and drop the iterator). The number is drawn as a
/// fraction of `len` in `(MAX_ITEMS + 1)`ths, so that every number is possible,
/// which shrinks better than a range that depends on `len`.
pub fn scripts_and_calls(release: Release) -> impl Strategy<Value = (Vec<ItemScript>, usize)> {
    (scripts(release), 0..=MAX_ITEMS + 1).prop_map(|(scripts, parts)| {
        let calls = scripts.len() * parts / (MAX_ITEMS + 1);
        (scripts, calls)
    })
}

// ---------------------------------------------------------------- the model

/// What the adapter must do with one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemModel {
    pub ending: Ending<Used>,
    pub events: Vec<Event>,
    /// Whether a resource is acquired (and so must be released).
    pub acquires: bool,
}

/// The model of one item's scope: acquire, use, release.
///
/// - acquire `Err`: `Acquire { index }`, nothing to release; acquire panics: the
///   panic propagates, nothing acquired;
/// - the body panics: the release runs (its error or panic is discarded), then
///   the body's panic resumes;
/// - otherwise the release runs in the open: its panic propagates; its error is
///   `Release { index }` after a body `Ok`, kept in `Use { release }` after a body
///   `Err`.
pub fn model_item(index: usize, script: ItemScript, release: Release) -> ItemModel {
    let release_step = match release {
        Release::Bracket => script.release,
        Release::Drop => Step::Ok,
    };
    let panic = |stage| Err(Injected { index, stage });
    let mut events = vec![Event::Acquire(index)];
    let ending = match script.acquire {
        Step::Err => Ok(Err(Failure::Acquire {
            index,
            source: AcquireFailed(index),
        })),
        Step::Panic => panic(Stage::Acquire),
        Step::Ok => {
            events.push(Event::Body(index));
            if release == Release::Bracket {
                events.push(Event::Release(index));
            }
            match (script.body, release_step) {
                (Step::Panic, _) => panic(Stage::Body),
                (_, Step::Panic) => panic(Stage::Release),
                (Step::Ok, Step::Ok) => Ok(Ok(Used(index))),
                (Step::Ok, Step::Err) => Ok(Err(Failure::Release {
                    index,
                    source: ReleaseFailed(index),
                })),
                (Step::Err, release_step) => Ok(Err(Failure::Use {
                    index,
                    source: BodyFailed(index),
                    release: (release_step == Step::Err).then_some(ReleaseFailed(index)),
                })),
            }
        }
    };
    ItemModel {
        ending,
        events,
        acquires: script.acquire == Step::Ok,
    }
}

/// What a whole run must do: how it ends, the calls it makes, how many resources
/// it acquires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunModel<T> {
    pub ending: Ending<T>,
    pub events: Vec<Event>,
    pub acquired: usize,
}

/// The model of `for_each_scoped`: the items in order, up to and including the
/// first that fails or panics; nothing after it is touched.
pub fn model_for_each(scripts: &[ItemScript], release: Release) -> RunModel<()> {
    let mut run = RunModel {
        ending: Ok(Ok(())),
        events: Vec::new(),
        acquired: 0,
    };
    for (index, &script) in scripts.iter().enumerate() {
        let item = model_item(index, script, release);
        run.events.extend(item.events);
        run.acquired += usize::from(item.acquires);
        match item.ending {
            Ok(Ok(Used(_))) => {}
            Ok(Err(failure)) => {
                run.ending = Ok(Err(failure));
                break;
            }
            Err(injected) => {
                run.ending = Err(injected);
                break;
            }
        }
    }
    run
}

/// What `try_map_scoped` must do for a consumer that calls `next()` a number of
/// times: what each call yields, the calls to acquire, body and release, and how
/// many resources are acquired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryMapModel {
    /// `Some(item's ending)` for each item, then `None` once the input is done.
    pub yields: Vec<Option<Ending<Used>>>,
    pub events: Vec<Event>,
    pub acquired: usize,
}

/// The model of `try_map_scoped` after `calls` calls to `next()` (each caught if
/// it panics): call `k` handles item `k`, and only it; `None` once the input is
/// done.
pub fn model_try_map(scripts: &[ItemScript], release: Release, calls: usize) -> TryMapModel {
    let mut run = TryMapModel {
        yields: Vec::new(),
        events: Vec::new(),
        acquired: 0,
    };
    for call in 0..calls {
        match scripts.get(call) {
            Some(&script) => {
                let item = model_item(call, script, release);
                run.yields.push(Some(item.ending));
                run.events.extend(item.events);
                run.acquired += usize::from(item.acquires);
            }
            None => run.yields.push(None),
        }
    }
    run
}

// ---------------------------------------------------------------- the harness

/// Installs, once, a panic hook that stays silent for [`Injected`] panics and
/// hands every other panic to the default hook.
pub fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Injected>().is_none() {
                default(info);
            }
        }));
    });
}

fn inject(index: usize, stage: Stage) -> ! {
    panic::panic_any(Injected { index, stage })
}

/// The resource of one item: a [`Tracked`] and the item's script.
#[derive(Debug)]
pub struct Resource {
    index: usize,
    script: ItemScript,
    tracked: Tracked,
}

/// Acquire, body and release that follow the scripts, a [`Tracker`] for the
/// resources, a log of the calls, and a count of the items pulled from the input.
#[derive(Debug, Default)]
pub struct Harness {
    pub tracker: Tracker,
    log: RefCell<Vec<Event>>,
    pulled: Cell<usize>,
}

impl Harness {
    pub fn new() -> Self {
        quiet_injected_panics();
        Self::default()
    }

    /// The input: `(position, script)` for each script, counting the items pulled.
    pub fn items<'a>(&'a self, scripts: &'a [ItemScript]) -> impl Iterator<Item = Item> + 'a {
        scripts
            .iter()
            .copied()
            .enumerate()
            .inspect(|_| self.pulled.set(self.pulled.get() + 1))
    }

    fn log(&self, event: Event) {
        self.log.borrow_mut().push(event);
    }

    pub fn events(&self) -> Vec<Event> {
        self.log.borrow().clone()
    }

    /// How many items were pulled from the input.
    pub fn pulled(&self) -> usize {
        self.pulled.get()
    }

    pub fn acquire(&self, (index, script): Item) -> Result<Resource, AcquireFailed> {
        self.log(Event::Acquire(index));
        match script.acquire {
            Step::Ok => Ok(Resource {
                index,
                script,
                tracked: self.tracker.acquire(),
            }),
            Step::Err => Err(AcquireFailed(index)),
            Step::Panic => inject(index, Stage::Acquire),
        }
    }

    pub fn body(&self, resource: &mut Resource) -> Result<Used, BodyFailed> {
        let index = resource.index;
        self.log(Event::Body(index));
        match resource.script.body {
            Step::Ok => Ok(Used(index)),
            Step::Err => Err(BodyFailed(index)),
            Step::Panic => inject(index, Stage::Body),
        }
    }

    /// The bracket's release: releases the tracked resource, then returns or
    /// panics as scripted.
    pub fn release(&self, resource: Resource) -> Result<(), ReleaseFailed> {
        let Resource {
            index,
            script,
            tracked,
        } = resource;
        self.log(Event::Release(index));
        tracked.release();
        match script.release {
            Step::Ok => Ok(()),
            Step::Err => Err(ReleaseFailed(index)),
            Step::Panic => inject(index, Stage::Release),
        }
    }
}

/// Runs `f`, catching an [`Injected`] panic; any other panic resumes.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Injected> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        match payload.downcast::<Injected>() {
            Ok(injected) => *injected,
            Err(other) => panic::resume_unwind(other),
        }
    })
}

/// Converts the adapter's error, so that it can be compared with the model's.
pub fn failure<R: Into<ReleaseFailed> + std::fmt::Debug>(error: Error<R>) -> Failure {
    match error {
        ScopedError::Acquire { index, source } => Failure::Acquire { index, source },
        ScopedError::Use {
            index,
            source,
            release,
        } => Failure::Use {
            index,
            source,
            release: release.map(Into::into),
        },
        ScopedError::Release { index, source } => Failure::Release {
            index,
            source: source.into(),
        },
        other => panic!("a ScopedError variant these tests do not know: {other:?}"),
    }
}

// ---------------------------------------------------------------- the checks

/// Invariants 1 and 2 once the adapter is done (returned, panicked or dropped):
/// never more than one resource live, nothing live now, every resource acquired
/// released exactly once, and as many acquired as the model says.
pub fn check_resources(harness: &Harness, acquired: usize) -> Result<(), TestCaseError> {
    let tracker = &harness.tracker;
    prop_assert!(
        tracker.peak() <= 1,
        "invariant 1 (peak): {} resources were live at once",
        tracker.peak()
    );
    prop_assert_eq!(tracker.live(), 0, "invariant 2: resources left live");
    tracker.check_released_exactly_once().map_err(|mismatch| {
        TestCaseError::fail(format!("invariant 2 (exactly once): {mismatch}"))
    })?;
    prop_assert_eq!(
        tracker.acquired().len(),
        acquired,
        "invariants 2 and 4: resources acquired"
    );
    Ok(())
}

/// Invariants 2 and 4: the adapter made exactly the model's calls, in order —
/// a bracket's release closure once per resource acquired, right after its body;
/// nothing after a fail-fast error; no item before it is asked for — and pulled
/// from the input only the items it tried to acquire.
pub fn check_calls(harness: &Harness, events: &[Event]) -> Result<(), TestCaseError> {
    let pulled = events
        .iter()
        .filter(|event| matches!(event, Event::Acquire(_)))
        .count();
    prop_assert_eq!(
        harness.events(),
        events,
        "invariants 2 and 4: the calls made (acquire, body, release closure), in order"
    );
    prop_assert_eq!(
        harness.pulled(),
        pulled,
        "invariant 4: items pulled from the input"
    );
    Ok(())
}
