//! Shared by the property tests of the sync adapters: a fault script per item, its
//! proptest strategy, a model of what the adapters must do with it, a harness that
//! turns the scripts into a `loopscope::testing::Faults` plan around a tracked
//! acquire and body, and the checks of invariants 1–4 of the design (peak, exactly
//! once, nothing lost, order and laziness).
//!
//! The input items are their positions, `0..len`. The kit's wrappers make each
//! item's acquire, body and release succeed, fail with an `InjectedFault` naming
//! the step and the item, or panic with one, as the item's script says; they
//! record every call, so the order of the calls can be compared with the model's.

// Each test crate that includes this module uses a different part of it.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::convert::Infallible;

use loopscope::testing::{
    Faults, Indexed, Injected, InjectedFault, Step, Tracked, Tracker, catch_injected,
};
use loopscope::{Acquire, ScopedError, bracket};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The async harness of the stream adapters' property tests.
#[cfg(feature = "stream")]
pub mod stream;

/// What one step of an item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Ok,
    Err,
    Panic,
}

/// What acquire, body and release do for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemScript {
    pub acquire: Act,
    pub body: Act,
    /// Ignored (always `Ok`) when the resource is released by `Drop`.
    pub release: Act,
}

impl ItemScript {
    /// What the script says for `step`.
    pub fn act(&self, step: Step) -> Act {
        match step {
            Step::Acquire => self.acquire,
            Step::Use => self.body,
            Step::Release => self.release,
            step => unreachable!("no script for {step:?}"),
        }
    }
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

/// The body's value for the item at this position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used(pub usize);

/// A call made by the adapter, with the position of the item it was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Acquire(usize),
    Body(usize),
    /// A call to the release (a release by `Drop` in the async adapters makes
    /// none; the tracker sees it).
    Release(usize),
}

impl Event {
    fn of(step: Step, index: usize) -> Self {
        match step {
            Step::Acquire => Event::Acquire(index),
            Step::Use => Event::Body(index),
            Step::Release => Event::Release(index),
            step => unreachable!("no event for {step:?}"),
        }
    }
}

/// A [`ScopedError`] with its errors unwrapped to the faults injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Acquire {
        index: usize,
        source: InjectedFault,
    },
    Use {
        index: usize,
        source: InjectedFault,
        release: Option<InjectedFault>,
    },
    Release {
        index: usize,
        source: InjectedFault,
    },
    /// Cancelled by a concurrent adapter (another item failed), its release
    /// error kept.
    Cancelled {
        index: usize,
        release: Option<InjectedFault>,
    },
}

impl Failure {
    pub fn index(&self) -> usize {
        match *self {
            Failure::Acquire { index, .. }
            | Failure::Use { index, .. }
            | Failure::Release { index, .. }
            | Failure::Cancelled { index, .. } => index,
        }
    }
}

/// How a call ended: returned `Ok`, returned `Err`, or panicked (with an injected
/// payload; any other panic is not caught and fails the test case).
pub type Ending<T> = Result<Result<T, Failure>, InjectedFault>;

/// The errors of the wrapped steps: only injected faults, the harness's own
/// steps never fail.
pub type Fault = Injected<Infallible>;

/// The adapters' error type for these tests.
pub type Error = ScopedError<Fault, Fault, Fault>;

// ---------------------------------------------------------------- strategies

fn act(ok_weight: u32) -> impl Strategy<Value = Act> {
    prop_oneof![
        ok_weight => Just(Act::Ok),
        1 => Just(Act::Err),
        1 => Just(Act::Panic),
    ]
}

fn item_script(ok_weight: u32, release: Release) -> impl Strategy<Value = ItemScript> {
    let release_step = match release {
        Release::Bracket => act(ok_weight).boxed(),
        Release::Drop => Just(Act::Ok).boxed(),
    };
    (act(ok_weight), act(ok_weight), release_step).prop_map(|(acquire, body, release)| ItemScript {
        acquire,
        body,
        release,
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

/// Whether the adapter calls a release that the harness sees: a bracket's
/// always; a release by `Drop` in the sync adapters too (they call
/// `Acquire::release`, which drops), but not in the async ones (an acquire whose
/// `RELEASE_IS_DROP` is `true` has its resource dropped in place).
pub fn release_is_called(release: Release, sync: bool) -> bool {
    release == Release::Bracket || sync
}

/// The model of one item's scope: acquire, use, release. `release_called`: see
/// [`release_is_called`].
///
/// - acquire `Err`: `Acquire { index }`, nothing to release; acquire panics: the
///   panic propagates, nothing acquired;
/// - the body panics: the release runs (its error or panic is discarded), then
///   the body's panic resumes;
/// - otherwise the release runs in the open: its panic propagates; its error is
///   `Release { index }` after a body `Ok`, kept in `Use { release }` after a body
///   `Err`.
pub fn model_item(
    index: usize,
    script: ItemScript,
    release: Release,
    release_called: bool,
) -> ItemModel {
    let release_act = match release {
        Release::Bracket => script.release,
        Release::Drop => Act::Ok,
    };
    let fault = |step| InjectedFault::new(step, index);
    let mut events = vec![Event::Acquire(index)];
    let ending = match script.acquire {
        Act::Err => Ok(Err(Failure::Acquire {
            index,
            source: fault(Step::Acquire),
        })),
        Act::Panic => Err(fault(Step::Acquire)),
        Act::Ok => {
            events.push(Event::Body(index));
            if release_called {
                events.push(Event::Release(index));
            }
            match (script.body, release_act) {
                (Act::Panic, _) => Err(fault(Step::Use)),
                (_, Act::Panic) => Err(fault(Step::Release)),
                (Act::Ok, Act::Ok) => Ok(Ok(Used(index))),
                (Act::Ok, Act::Err) => Ok(Err(Failure::Release {
                    index,
                    source: fault(Step::Release),
                })),
                (Act::Err, release_act) => Ok(Err(Failure::Use {
                    index,
                    source: fault(Step::Use),
                    release: (release_act == Act::Err).then_some(fault(Step::Release)),
                })),
            }
        }
    };
    ItemModel {
        ending,
        events,
        acquires: script.acquire == Act::Ok,
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
pub fn model_for_each(
    scripts: &[ItemScript],
    release: Release,
    release_called: bool,
) -> RunModel<()> {
    let mut run = RunModel {
        ending: Ok(Ok(())),
        events: Vec::new(),
        acquired: 0,
    };
    for (index, &script) in scripts.iter().enumerate() {
        let item = model_item(index, script, release, release_called);
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
pub fn model_try_map(
    scripts: &[ItemScript],
    release: Release,
    release_called: bool,
    calls: usize,
) -> TryMapModel {
    let mut run = TryMapModel {
        yields: Vec::new(),
        events: Vec::new(),
        acquired: 0,
    };
    for call in 0..calls {
        match scripts.get(call) {
            Some(&script) => {
                let item = model_item(call, script, release, release_called);
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

/// The resource of one item: its position and a [`Tracked`].
#[derive(Debug)]
pub struct Resource {
    pub index: usize,
    pub tracked: Tracked,
}

/// The scripts as a kit plan: each step of each item fails or panics as its
/// script says; the release's script is ignored for a release by `Drop`.
pub fn plan(scripts: &[ItemScript], release: Release) -> Faults {
    let steps: &[Step] = match release {
        Release::Bracket => &[Step::Acquire, Step::Use, Step::Release],
        Release::Drop => &[Step::Acquire, Step::Use],
    };
    let items = |step, act| {
        scripts
            .iter()
            .enumerate()
            .filter(move |(_, script)| script.act(step) == act)
            .map(|(index, _)| index)
    };
    steps.iter().fold(Faults::new(), |faults, &step| {
        faults
            .fail(step, items(step, Act::Err))
            .panic(step, items(step, Act::Panic))
    })
}

/// A [`Tracker`] for the resources and the kit's plan for the scripts (which
/// records the calls the adapter makes), and a count of the items pulled from
/// the input. [`reset`](Harness::reset) readies it for another run.
#[derive(Debug)]
pub struct Harness {
    len: usize,
    tracker: RefCell<Tracker>,
    pub faults: Faults,
    pulled: Cell<usize>,
}

impl Harness {
    pub fn new(scripts: &[ItemScript], release: Release) -> Self {
        Self::with_plan(scripts.len(), plan(scripts, release))
    }

    /// A harness for `len` items whose steps follow `faults`.
    pub fn with_plan(len: usize, faults: Faults) -> Self {
        Self {
            len,
            tracker: RefCell::default(),
            faults,
            pulled: Cell::new(0),
        }
    }

    /// Forgets the last run: a new tracker, no calls, nothing pulled.
    pub fn reset(&self) {
        self.tracker.replace(Tracker::new());
        self.faults.clear_calls();
        self.pulled.set(0);
    }

    pub fn tracker(&self) -> Tracker {
        self.tracker.borrow().clone()
    }

    /// The input: the items' positions, counting the items pulled.
    pub fn items(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).inspect(|_| self.pulled.set(self.pulled.get() + 1))
    }

    /// The calls that ended, in order.
    pub fn events(&self) -> Vec<Event> {
        self.faults
            .ended()
            .into_iter()
            .map(|(step, index)| Event::of(step, index))
            .collect()
    }

    /// How many items were pulled from the input.
    pub fn pulled(&self) -> usize {
        self.pulled.get()
    }

    /// A tracked resource for the item at `index`.
    fn resource(tracker: &Tracker, index: usize) -> Resource {
        Resource {
            index,
            tracked: tracker.acquire(),
        }
    }

    /// `bracket(acquire).release(release)`, wrapped by the plan.
    pub fn bracket_acquire(
        &self,
    ) -> impl Acquire<usize, Resource = Indexed<Resource>, Error = Fault, ReleaseError = Fault>
    {
        let tracker = self.tracker();
        self.faults.acquire(
            bracket(move |index: usize| Ok::<_, Infallible>(Self::resource(&tracker, index)))
                .release(|resource: Resource| {
                    resource.tracked.release();
                    Ok::<_, Infallible>(())
                }),
        )
    }

    /// A plain acquire closure (release by `Drop`), wrapped by the plan.
    pub fn drop_acquire(
        &self,
    ) -> impl Acquire<usize, Resource = Indexed<Resource>, Error = Fault, ReleaseError = Fault>
    {
        let tracker = self.tracker();
        self.faults
            .acquire(move |index: usize| Ok::<_, Infallible>(Self::resource(&tracker, index)))
    }

    /// The body, wrapped by the plan.
    pub fn body(&self) -> impl FnMut(&mut Indexed<Resource>) -> Result<Used, Fault> + use<> {
        self.faults
            .body(|resource: &mut Resource| Ok::<_, Infallible>(Used(resource.index)))
    }
}

/// Runs `f`, catching an injected panic; any other panic resumes.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, InjectedFault> {
    catch_injected(f)
}

/// The fault inside an error of a wrapped step.
pub fn injected(error: Fault) -> InjectedFault {
    match error {
        Injected::Fault(fault) => fault,
        Injected::Inner(never) => match never {},
        other => unreachable!("an error the kit does not make: {other:?}"),
    }
}

/// Converts the adapter's error, so that it can be compared with the model's.
pub fn failure(error: Error) -> Failure {
    match error {
        ScopedError::Acquire { index, source } => Failure::Acquire {
            index,
            source: injected(source),
        },
        ScopedError::Use {
            index,
            source,
            release,
        } => Failure::Use {
            index,
            source: injected(source),
            release: release.map(injected),
        },
        ScopedError::Release { index, source } => Failure::Release {
            index,
            source: injected(source),
        },
        ScopedError::Cancelled { index, release } => Failure::Cancelled {
            index,
            release: release.map(injected),
        },
        other => panic!("a ScopedError variant these tests do not know: {other:?}"),
    }
}

// ---------------------------------------------------------------- the checks

/// Invariants 1 and 2 once the adapter is done (returned, panicked or dropped):
/// never more than one resource live, nothing live now, every resource acquired
/// released exactly once, and as many acquired as the model says.
pub fn check_resources(harness: &Harness, acquired: usize) -> Result<(), TestCaseError> {
    let tracker = &harness.tracker();
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
