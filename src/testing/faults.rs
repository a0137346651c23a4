//! Fault injection: wrap a real acquire and body so that chosen items fail,
//! panic or wait, and record every call the adapter makes.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};
use std::task::{Context, Poll};

#[cfg(feature = "stream")]
use crate::AsyncAcquire;
use crate::{Acquire, Outcome};

/// One of the three steps of an item's scope.
///
/// # Examples
///
/// ```
/// use loopscope::testing::Step;
///
/// assert!(Step::Acquire < Step::Use && Step::Use < Step::Release);
/// assert_eq!(Step::Use.to_string(), "use");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Acquiring the item's resource.
    Acquire,
    /// The body, using the resource.
    Use,
    /// Releasing the resource.
    Release,
}

impl Step {
    const ALL: [Step; 3] = [Step::Acquire, Step::Use, Step::Release];

    fn slot(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Acquire => "acquire",
            Step::Use => "use",
            Step::Release => "release",
        })
    }
}

/// What a [`Faults`] plan makes a step do instead of succeeding.
///
/// # Examples
///
/// ```
/// use loopscope::testing::{Fault, Faults, Step};
///
/// let faults = Faults::new().fail_acquire([1]).panic_use([2]);
/// assert_eq!(faults.planned(Step::Acquire, 1), Some(Fault::Fail));
/// assert_eq!(faults.planned(Step::Use, 2), Some(Fault::Panic));
/// assert_eq!(faults.planned(Step::Use, 1), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The step returns `Err(Injected::Fault(..))`.
    Fail,
    /// The step panics with an [`InjectedFault`] payload.
    Panic,
}

/// An injected failure: which step of which item. It is the error inside
/// [`Injected::Fault`], and the payload of an injected panic.
///
/// # Examples
///
/// ```
/// use loopscope::testing::{InjectedFault, Step};
///
/// let fault = InjectedFault::new(Step::Release, 7);
/// assert_eq!((fault.step, fault.index), (Step::Release, 7));
/// assert_eq!(fault.to_string(), "injected fault at the release of item 7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("injected fault at the {step} of item {index}")]
#[non_exhaustive]
pub struct InjectedFault {
    /// The step that failed or panicked.
    pub step: Step,
    /// The item's position: the number of acquire calls before its own.
    pub index: usize,
}

impl InjectedFault {
    /// The fault of `step` for the item at position `index`.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::{InjectedFault, Step};
    ///
    /// assert_eq!(InjectedFault::new(Step::Use, 3).index, 3);
    /// ```
    #[must_use]
    pub fn new(step: Step, index: usize) -> Self {
        Self { step, index }
    }
}

/// The error of a wrapped step: a fault the plan injected, or the wrapped
/// code's own error `E`, passed through.
///
/// An enum rather than a bound `E: From<InjectedFault>`, so that any error type
/// works as it is — `io::Error`, `()`, `Infallible` — and a test can tell an
/// injected failure from a real one by its variant.
///
/// # Examples
///
/// ```
/// use loopscope::testing::{Injected, InjectedFault, Step};
///
/// let injected: Injected<&str> = Injected::Fault(InjectedFault::new(Step::Use, 2));
/// assert_eq!(injected.fault().map(|fault| fault.index), Some(2));
/// assert_eq!(Injected::Inner("disk full").into_inner(), Some("disk full"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Injected<E> {
    /// A failure the plan injected.
    #[error(transparent)]
    Fault(InjectedFault),
    /// The wrapped code's own error.
    #[error(transparent)]
    Inner(E),
}

impl<E> Injected<E> {
    /// The injected fault, if this is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::Injected;
    ///
    /// assert!(Injected::Inner(()).fault().is_none());
    /// ```
    #[must_use]
    pub fn fault(&self) -> Option<InjectedFault> {
        match self {
            Injected::Fault(fault) => Some(*fault),
            Injected::Inner(_) => None,
        }
    }

    /// The wrapped code's own error, if this is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::Injected;
    ///
    /// assert_eq!(Injected::Inner(5).into_inner(), Some(5));
    /// ```
    #[must_use]
    pub fn into_inner(self) -> Option<E> {
        match self {
            Injected::Fault(_) => None,
            Injected::Inner(error) => Some(error),
        }
    }
}

/// A call a wrapper saw: recorded by every wrapper of a [`Faults`] plan, read
/// back with [`Faults::calls`].
///
/// `Start` is recorded when the step begins (for an async step, at its first
/// poll, before any delay), `End` when it ends: after the wrapped call returned,
/// or when a fault is injected (before the panic, for an injected panic). A
/// wrapped call that panics on its own records no `End`.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use loopscope::prelude::*;
/// use loopscope::testing::{Call, Faults, Step};
///
/// let faults = Faults::new();
/// [10].into_iter().for_each_scoped(
///     faults.acquire(|n: i32| Ok::<_, Infallible>(n)),
///     faults.body(|_n: &mut i32| Ok::<_, Infallible>(())),
/// )?;
/// assert_eq!(faults.ended(), [(Step::Acquire, 0), (Step::Use, 0), (Step::Release, 0)]);
/// assert_eq!(faults.calls()[0], Call::Start(Step::Acquire, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Call {
    /// The step of the item at this position began.
    Start(Step, usize),
    /// The step of the item at this position ended.
    End(Step, usize),
}

/// How many polls a step waits, by item position.
type Delay = Arc<dyn Fn(usize) -> usize + Send + Sync>;

/// A plan of faults to inject, by step and item position, and the wrappers
/// that inject them into your own acquire and body.
///
/// Build the plan — which items fail or panic at acquire, use or release, and
/// how many polls each async step waits first — then wrap:
///
/// - [`acquire`](Faults::acquire) wraps an [`Acquire`] (a closure or a
///   [`bracket`](crate::bracket)), and with the `stream` feature an
///   `AsyncAcquire` (an async closure or an
///   `async_bracket`);
/// - [`body`](Faults::body) wraps a sync body, and with the `stream` feature
///   `async_body` an async one.
///
/// **Items are identified by position**: the wrapped acquire counts its calls, so
/// the item whose acquire is called first is item 0, the next item 1, and so on —
/// the item's index in the input, for every adapter (they all call acquire in
/// input order). The wrapped acquire hands out each resource as an
/// [`Indexed`] that carries this position, so that the body and the release know
/// which item they serve, also when the concurrent adapters finish items out of
/// order. So wrap the *whole* acquire, once — `faults.acquire(both(a, b))`, not
/// `both(faults.acquire(a), faults.acquire(b))`: see
/// [`acquire`](Faults::acquire) for why.
///
/// A fault at **acquire** or **use** replaces the call: the wrapped acquire or
/// body is not called. A fault at **release** comes after it: the wrapped release
/// runs (the resource is really released), then the step fails or panics instead
/// of returning the wrapped release's result. A delay comes first, before
/// anything else the step does; only the async wrappers wait (a sync step
/// cannot).
///
/// A `Faults` is `Send + Sync` and cheap to clone; clones share the log of
/// [`calls`](Faults::calls) (like a [`Tracker`](super::Tracker) shares its
/// counts). Planning a step of an item twice keeps the last plan.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use loopscope::prelude::*;
/// use loopscope::testing::{Faults, Injected, InjectedFault, Step, Tracker};
///
/// let tracker = Tracker::new();
/// let faults = Faults::new().fail_acquire([1]).fail_use([3]).fail_release([3]);
/// let results: Vec<_> = (0..5)
///     .try_map_scoped(
///         faults.acquire(|_| Ok::<_, Infallible>(tracker.acquire())),
///         faults.body(|_resource| Ok::<_, Infallible>("done")),
///     )
///     .collect();
///
/// assert!(matches!(
///     &results[1],
///     Err(ScopedError::Acquire { index: 1, source: Injected::Fault(_) })
/// ));
/// // Item 3: the body failed and so did its release; both errors are kept.
/// let error = results[3].as_ref().unwrap_err();
/// assert_eq!(error.release_error(), Some(&Injected::Fault(InjectedFault::new(Step::Release, 3))));
/// assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 3);
/// // Whatever failed, every resource acquired was released exactly once.
/// assert_eq!(tracker.acquired().len(), 4);
/// tracker.assert_released_exactly_once();
/// ```
#[derive(Clone, Default)]
#[must_use = "a plan does nothing until it wraps an acquire or a body"]
pub struct Faults {
    planned: BTreeMap<(Step, usize), Fault>,
    delays: [Option<Delay>; 3],
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Faults {
    /// A plan with no faults and no delays: the wrappers only record calls.
    ///
    /// # Examples
    ///
    /// ```
    /// let faults = loopscope::testing::Faults::new();
    /// assert!(faults.calls().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `step` fail for the items at these positions: it returns
    /// `Err(Injected::Fault(InjectedFault { step, index }))`.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::{Fault, Faults, Step};
    ///
    /// let faults = Faults::new().fail(Step::Use, 0..3);
    /// assert_eq!(faults.planned(Step::Use, 2), Some(Fault::Fail));
    /// ```
    pub fn fail(self, step: Step, items: impl IntoIterator<Item = usize>) -> Self {
        self.plan(step, items, Fault::Fail)
    }

    /// Makes `step` panic for the items at these positions, with an
    /// [`InjectedFault`] payload (see [`catch_injected`] and
    /// [`silence_injected_panics`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::{Fault, Faults, Step};
    ///
    /// let faults = Faults::new().panic(Step::Release, [4]);
    /// assert_eq!(faults.planned(Step::Release, 4), Some(Fault::Panic));
    /// ```
    pub fn panic(self, step: Step, items: impl IntoIterator<Item = usize>) -> Self {
        self.plan(step, items, Fault::Panic)
    }

    /// `fail(Step::Acquire, items)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::{Fault, Faults, Step};
    ///
    /// assert_eq!(Faults::new().fail_acquire([3]).planned(Step::Acquire, 3), Some(Fault::Fail));
    /// ```
    pub fn fail_acquire(self, items: impl IntoIterator<Item = usize>) -> Self {
        self.fail(Step::Acquire, items)
    }

    /// `fail(Step::Use, items)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::{Fault, Faults, Step};
    ///
    /// assert_eq!(Faults::new().fail_use([3]).planned(Step::Use, 3), Some(Fault::Fail));
    /// ```
    pub fn fail_use(self, items: impl IntoIterator<Item = usize>) -> Self {
        self.fail(Step::Use, items)
    }

    /// `fail(Step::Release, items)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::{Fault, Faults, Step};
    ///
    /// assert_eq!(Faults::new().fail_release([3]).planned(Step::Release, 3), Some(Fault::Fail));
    /// ```
    pub fn fail_release(self, items: impl IntoIterator<Item = usize>) -> Self {
        self.fail(Step::Release, items)
    }

    /// `panic(Step::Acquire, items)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::{Fault, Faults, Step};
    ///
    /// assert_eq!(Faults::new().panic_acquire([3]).planned(Step::Acquire, 3), Some(Fault::Panic));
    /// ```
    pub fn panic_acquire(self, items: impl IntoIterator<Item = usize>) -> Self {
        self.panic(Step::Acquire, items)
    }

    /// `panic(Step::Use, items)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::{Fault, Faults, Step};
    ///
    /// assert_eq!(Faults::new().panic_use([3]).planned(Step::Use, 3), Some(Fault::Panic));
    /// ```
    pub fn panic_use(self, items: impl IntoIterator<Item = usize>) -> Self {
        self.panic(Step::Use, items)
    }

    /// `panic(Step::Release, items)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::{Fault, Faults, Step};
    ///
    /// assert_eq!(Faults::new().panic_release([3]).planned(Step::Release, 3), Some(Fault::Panic));
    /// ```
    pub fn panic_release(self, items: impl IntoIterator<Item = usize>) -> Self {
        self.panic(Step::Release, items)
    }

    fn plan(mut self, step: Step, items: impl IntoIterator<Item = usize>, fault: Fault) -> Self {
        for index in items {
            self.planned.insert((step, index), fault);
        }
        self
    }

    /// Makes the async wrappers' `step` wait `polls(index)` polls before it does
    /// anything else: a future that wakes itself and returns `Pending` that many
    /// times (see [`yield_n`]), so the delay works on any executor, or polled by
    /// hand. The sync wrappers ignore delays.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::{Faults, Step};
    ///
    /// // Every third item's body waits two polls.
    /// let faults = Faults::new().yield_at(Step::Use, |index| if index % 3 == 0 { 2 } else { 0 });
    /// assert_eq!((faults.yields(Step::Use, 3), faults.yields(Step::Use, 4)), (2, 0));
    /// ```
    pub fn yield_at(
        mut self,
        step: Step,
        polls: impl Fn(usize) -> usize + Send + Sync + 'static,
    ) -> Self {
        self.delays[step.slot()] = Some(Arc::new(polls));
        self
    }

    /// The fault planned for `step` of the item at position `index`, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::{Faults, Step};
    ///
    /// assert_eq!(Faults::new().planned(Step::Acquire, 0), None);
    /// ```
    #[must_use]
    pub fn planned(&self, step: Step, index: usize) -> Option<Fault> {
        self.planned.get(&(step, index)).copied()
    }

    /// How many polls `step` of the item at position `index` waits first.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::testing::{Faults, Step};
    ///
    /// let faults = Faults::new().yield_at(Step::Acquire, |index| index);
    /// assert_eq!((faults.yields(Step::Acquire, 5), faults.yields(Step::Use, 5)), (5, 0));
    /// ```
    #[must_use]
    pub fn yields(&self, step: Step, index: usize) -> usize {
        self.delays[step.slot()]
            .as_ref()
            .map_or(0, |polls| polls(index))
    }

    /// Every call the wrappers of this plan (and of its clones) saw, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use loopscope::prelude::*;
    /// use loopscope::testing::{Call, Faults, Step};
    ///
    /// let faults = Faults::new().fail_acquire([0]);
    /// let result = [1, 2].into_iter().for_each_scoped(
    ///     faults.acquire(|n: i32| Ok::<_, Infallible>(n)),
    ///     |_n| Ok::<_, Infallible>(()),
    /// );
    /// assert!(result.is_err());
    /// // Fail-fast: item 1 was never acquired.
    /// assert_eq!(faults.calls(), [Call::Start(Step::Acquire, 0), Call::End(Step::Acquire, 0)]);
    /// ```
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        self.log().clone()
    }

    /// The steps that ended, in order: the [`Call::End`]s of
    /// [`calls`](Faults::calls).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use loopscope::prelude::*;
    /// use loopscope::testing::{Faults, Step};
    ///
    /// let faults = Faults::new();
    /// [1].into_iter().for_each_scoped(
    ///     faults.acquire(|n: i32| Ok::<_, Infallible>(n)),
    ///     |_n| Ok::<_, Infallible>(()),
    /// )?;
    /// // The body was not wrapped, so only the acquire and release are seen.
    /// assert_eq!(faults.ended(), [(Step::Acquire, 0), (Step::Release, 0)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn ended(&self) -> Vec<(Step, usize)> {
        self.log()
            .iter()
            .filter_map(|&call| match call {
                Call::End(step, index) => Some((step, index)),
                Call::Start(..) => None,
            })
            .collect()
    }

    /// Forgets the calls recorded so far, to reuse the plan for another run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use loopscope::Acquire;
    /// use loopscope::testing::Faults;
    ///
    /// let faults = Faults::new();
    /// let mut acquire = faults.acquire(|n: i32| Ok::<_, Infallible>(n));
    /// let _ = acquire.acquire(1);
    /// faults.clear_calls();
    /// assert!(faults.calls().is_empty());
    /// ```
    pub fn clear_calls(&self) {
        self.log().clear();
    }

    /// Wraps an acquire, so that its steps follow the plan. The result
    /// implements each of [`Acquire`] and `AsyncAcquire`
    /// (feature `stream`) that `acquire` implements; its resource is an
    /// [`Indexed`] around `acquire`'s, its errors are [`Injected`] around
    /// `acquire`'s.
    ///
    /// An async acquire that releases by `Drop` (a plain async closure) keeps
    /// doing so: the adapters then drop the resource rather than call a release,
    /// so there is no release to fail, panic or wait. Planning a release fault
    /// for it panics at its first acquire; wrap an
    /// `async_bracket(..).release(..)` instead.
    ///
    /// # Wrap the whole acquire
    ///
    /// The wrapper numbers items by counting its *own* calls, so it must be
    /// called exactly once per item: wrap the acquire that the adapter is given,
    /// not a part of it. Wrap [`both`](crate::both)`(a, b)` as
    /// `faults.acquire(both(a, b))`, never as
    /// `both(faults.acquire(a), faults.acquire(b))`: when `a` fails, `both` does
    /// not call `b`, so `b`'s wrapper falls one call behind from that item on.
    /// With `fail_acquire([1])` over four items, item 1 fails in `a`, item 2
    /// fails too (`b`'s wrapper, called for the second time, numbers it 1), and
    /// item 3's parts are numbered 3 and 2. The same goes for any combinator that may skip a part.
    ///
    /// The wrappers do not detect this: two wrappers of one plan may also be
    /// two loops sharing it, and each rerun of a loop (as
    /// [`cancel_at_every_poll`](super::cancel_at_every_poll) makes) wraps again
    /// and numbers from 0 again, which a check could not tell from the misuse.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use loopscope::prelude::*;
    /// use loopscope::testing::{Faults, Tracker};
    ///
    /// let tracker = Tracker::new();
    /// let faults = Faults::new().fail_release([0]);
    /// let error = [1].into_iter()
    ///     .for_each_scoped(
    ///         faults.acquire(
    ///             bracket(|_n: i32| Ok::<_, Infallible>(tracker.acquire()))
    ///                 .release(|resource| Ok::<_, Infallible>(resource.release())),
    ///         ),
    ///         |resource| Ok::<_, Infallible>(assert_eq!(resource.index(), 0)),
    ///     )
    ///     .unwrap_err();
    /// assert!(matches!(error, ScopedError::Release { index: 0, .. }));
    /// // The release ran before the injected fault: nothing leaked.
    /// tracker.assert_released_exactly_once();
    /// ```
    pub fn acquire<A>(&self, acquire: A) -> FaultyAcquire<A> {
        FaultyAcquire {
            inner: acquire,
            faults: self.clone(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Wraps a sync body, so that its use step follows the plan; the body then
    /// takes the [`Indexed`] resources of a wrapped acquire. The wrapper owns a
    /// clone of the plan: it does not borrow `self`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use loopscope::prelude::*;
    /// use loopscope::testing::{Faults, Injected, InjectedFault, Step};
    ///
    /// let faults = Faults::new().fail_use([1]);
    /// let results: Vec<_> = ["a", "b"].into_iter()
    ///     .try_map_scoped(
    ///         faults.acquire(|s: &str| Ok::<_, Infallible>(s.to_owned())),
    ///         faults.body(|s: &mut String| Ok::<_, std::fmt::Error>(s.len())),
    ///     )
    ///     .collect();
    /// assert_eq!(results[0].as_ref().ok(), Some(&1));
    /// let Err(ScopedError::Use { source, .. }) = &results[1] else { panic!() };
    /// assert_eq!(*source, Injected::Fault(InjectedFault::new(Step::Use, 1)));
    /// ```
    #[must_use = "a body does nothing until it is given to a scoped adapter"]
    pub fn body<R, T, E, B>(
        &self,
        mut body: B,
    ) -> impl FnMut(&mut Indexed<R>) -> Result<T, Injected<E>> + use<R, T, E, B>
    where
        B: FnMut(&mut R) -> Result<T, E>,
    {
        let faults = self.clone();
        move |resource: &mut Indexed<R>| {
            let index = resource.index;
            faults.record(Call::Start(Step::Use, index));
            let result = match faults.deliver(Step::Use, index) {
                Err(fault) => Err(Injected::Fault(fault)),
                Ok(()) => body(&mut resource.resource).map_err(Injected::Inner),
            };
            faults.record(Call::End(Step::Use, index));
            result
        }
    }

    /// Wraps an async body (`AsyncFnOnce + Clone`, as every stream adapter
    /// takes), so that its use step waits and fails or panics as planned.
    ///
    /// The wrapper is an opaque `impl AsyncFnOnce`, and rustc cannot see whether
    /// the futures of an opaque async closure are `Send`: an adapter's future
    /// built with it works on `block_on`, a current-thread runtime or a
    /// `LocalSet`, but cannot be given to `tokio::spawn` on a multi-threaded
    /// runtime. There, call [`inject`](Faults::inject) at the start of a body of
    /// your own instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    /// use loopscope::testing::{Faults, Step, Tracker};
    ///
    /// # futures::executor::block_on(async {
    /// let tracker = Tracker::new();
    /// let faults = Faults::new().fail_use([4]).yield_at(Step::Use, |index| index % 3);
    /// let result = stream::iter(0..10)
    ///     .for_each_scoped_concurrent(
    ///         3,
    ///         faults.acquire(async |_| Ok::<_, Infallible>(tracker.acquire())),
    ///         faults.async_body(async |_resource| Ok::<_, Infallible>(())),
    ///     )
    ///     .await;
    /// assert_eq!(result.unwrap_err().index(), 4);
    /// assert!(tracker.peak() <= 3);
    /// tracker.assert_released_exactly_once();
    /// # });
    /// ```
    #[cfg(feature = "stream")]
    #[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
    #[must_use = "a body does nothing until it is given to a scoped adapter"]
    pub fn async_body<R, T, E, B>(
        &self,
        body: B,
    ) -> impl AsyncFnOnce(&mut Indexed<R>) -> Result<T, Injected<E>> + Clone + use<R, T, E, B>
    where
        B: AsyncFnOnce(&mut R) -> Result<T, E> + Clone,
    {
        let faults = self.clone();
        async move |resource: &mut Indexed<R>| {
            let index = resource.index;
            let result = match faults.begin(Step::Use, index).await {
                Err(fault) => Err(Injected::Fault(fault)),
                Ok(()) => body(&mut resource.resource).await.map_err(Injected::Inner),
            };
            faults.record(Call::End(Step::Use, index));
            result
        }
    }

    /// The planned delay and fault of `step` for the item at position `index`,
    /// for code of your own: records the step's start, waits the planned polls,
    /// then panics, returns the fault, or returns `Ok(())` (and records the
    /// step's end).
    ///
    /// The future is `Send + 'static`, so a body that calls it first stays
    /// `Send` — use it where [`async_body`](Faults::async_body)'s wrapper cannot
    /// go, such as `tokio::spawn` on a multi-threaded runtime.
    ///
    /// # Errors
    ///
    /// The [`InjectedFault`] when the plan makes the step fail.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    /// use loopscope::testing::{Faults, Indexed, Injected, Step};
    ///
    /// # futures::executor::block_on(async {
    /// let faults = Faults::new().fail_use([1]);
    /// let body_faults = faults.clone();
    /// let result = stream::iter(0..3)
    ///     .for_each_scoped_concurrent(
    ///         2,
    ///         faults.acquire(async |n: u32| Ok::<_, Infallible>(n)),
    ///         async move |n: &mut Indexed<u32>| {
    ///             body_faults.inject(Step::Use, n.index()).await.map_err(Injected::Fault)?;
    ///             Ok::<_, Injected<Infallible>>(**n * 2)
    ///         },
    ///     )
    ///     .await;
    /// assert_eq!(result.unwrap_err().index(), 1);
    /// # });
    /// ```
    #[cfg(feature = "stream")]
    #[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
    pub fn inject(
        &self,
        step: Step,
        index: usize,
    ) -> impl Future<Output = Result<(), InjectedFault>> + Send + 'static {
        let faults = self.clone();
        async move {
            let result = faults.begin(step, index).await;
            faults.record(Call::End(step, index));
            result
        }
    }

    /// Starts an async `step` for item `index`: records its start, waits the
    /// planned polls, and delivers the planned fault — the shared first half of
    /// every async wrapper and of [`inject`](Faults::inject).
    #[cfg(feature = "stream")]
    async fn begin(&self, step: Step, index: usize) -> Result<(), InjectedFault> {
        self.record(Call::Start(step, index));
        yield_n(self.yields(step, index)).await;
        self.deliver(step, index)
    }

    fn log(&self) -> MutexGuard<'_, Vec<Call>> {
        // A push cannot leave the log half-done, so a poisoned lock is still good.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, call: Call) {
        self.log().push(call);
    }

    /// The planned fault of `step` for item `index`, delivered: records the
    /// step's end and panics for [`Fault::Panic`]; returns the error to report
    /// for [`Fault::Fail`].
    fn deliver(&self, step: Step, index: usize) -> Result<(), InjectedFault> {
        let fault = InjectedFault::new(step, index);
        match self.planned(step, index) {
            None => Ok(()),
            Some(Fault::Fail) => Err(fault),
            Some(Fault::Panic) => {
                self.record(Call::End(step, index));
                panic::panic_any(fault)
            }
        }
    }

    /// Whether any release fault is planned; `Release` sorts last, so a range
    /// lookup finds one without a scan (it runs at every async acquire).
    #[cfg(feature = "stream")]
    fn plans_release_faults(&self) -> bool {
        self.planned.range((Step::Release, 0)..).next().is_some()
    }
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let delayed: Vec<Step> = Step::ALL
            .into_iter()
            .filter(|step| self.delays[step.slot()].is_some())
            .collect();
        f.debug_struct("Faults")
            .field("planned", &self.planned)
            .field("delayed", &delayed)
            .field("calls", &self.log().len())
            .finish()
    }
}

/// A resource handed out by a [`FaultyAcquire`]: the wrapped acquire's resource,
/// and the position of the item it was acquired for.
///
/// It derefs to the resource, so a body that was not wrapped can use it as it
/// is; [`Faults::body`] and its async siblings unwrap it for the wrapped body.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use loopscope::prelude::*;
/// use loopscope::testing::Faults;
///
/// let faults = Faults::new();
/// let lengths: Vec<_> = ["a", "bb"].into_iter()
///     .try_map_scoped(
///         faults.acquire(|s: &str| Ok::<_, Infallible>(s.to_owned())),
///         |owned| Ok::<_, Infallible>((owned.index(), owned.len())),
///     )
///     .map(Result::unwrap)
///     .collect();
/// assert_eq!(lengths, [(0, 1), (1, 2)]);
/// ```
#[derive(Debug)]
pub struct Indexed<R> {
    index: usize,
    resource: R,
}

impl<R> Indexed<R> {
    /// The position of the item this resource was acquired for.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use loopscope::Acquire;
    /// use loopscope::testing::Faults;
    ///
    /// let mut acquire = Faults::new().acquire(|n: u8| Ok::<_, Infallible>(n));
    /// let (first, second) = (acquire.acquire(7)?, acquire.acquire(7)?);
    /// assert_eq!((first.index(), second.index()), (0, 1));
    /// # Ok::<(), loopscope::testing::Injected<Infallible>>(())
    /// ```
    #[must_use]
    pub fn index(&self) -> usize {
        self.index
    }

    /// The resource itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use loopscope::Acquire;
    /// use loopscope::testing::Faults;
    ///
    /// let mut acquire = Faults::new().acquire(|n: u8| Ok::<_, Infallible>(n * 2));
    /// assert_eq!(acquire.acquire(4)?.into_inner(), 8);
    /// # Ok::<(), loopscope::testing::Injected<Infallible>>(())
    /// ```
    #[must_use]
    pub fn into_inner(self) -> R {
        self.resource
    }
}

impl<R> Deref for Indexed<R> {
    type Target = R;

    fn deref(&self) -> &R {
        &self.resource
    }
}

impl<R> DerefMut for Indexed<R> {
    fn deref_mut(&mut self) -> &mut R {
        &mut self.resource
    }
}

/// The wrapped acquire's result, its resource numbered.
fn indexed<R, E>(index: usize, acquired: Result<R, E>) -> Result<Indexed<R>, Injected<E>> {
    acquired
        .map(|resource| Indexed { index, resource })
        .map_err(Injected::Inner)
}

/// An acquire whose steps follow a [`Faults`] plan; made by
/// [`Faults::acquire`].
///
/// It counts its acquire calls to number the items, and is `Send`/`Sync` when
/// the wrapped acquire is (the count is atomic, the plan's log a mutex).
/// Because it counts its own calls, it must wrap the whole acquire the adapter
/// is given — all of a [`both`](crate::both), not one of its parts, which
/// `both` skips for an item whose first part failed (see "Wrap the whole
/// acquire" at [`Faults::acquire`]).
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use loopscope::Acquire;
/// use loopscope::testing::{Faults, Injected};
///
/// let mut acquire = Faults::new().fail_acquire([1]).acquire(|n: u8| Ok::<_, Infallible>(n));
/// assert!(acquire.acquire(10).is_ok());
/// assert!(matches!(acquire.acquire(11), Err(Injected::Fault(_))));
/// assert!(acquire.acquire(12).is_ok());
/// ```
///
/// Two resources per item: one wrapper around the whole `both`, so that the
/// fault planned for item 1 hits item 1 only:
///
/// ```
/// use std::convert::Infallible;
/// use loopscope::both;
/// use loopscope::prelude::*;
/// use loopscope::testing::{Faults, Tracker};
///
/// let tracker = Tracker::new();
/// let faults = Faults::new().fail_acquire([1]);
/// let positions: Vec<_> = (0..4)
///     .try_map_scoped(
///         faults.acquire(both(
///             |_: i32| Ok::<_, Infallible>(tracker.acquire()),
///             |_: i32| Ok::<_, Infallible>(tracker.acquire()),
///         )),
///         |pair| Ok::<_, Infallible>(pair.index()),
///     )
///     .map(Result::ok)
///     .collect();
/// assert_eq!(positions, [Some(0), None, Some(2), Some(3)]);
/// tracker.assert_released_exactly_once();
/// ```
#[must_use = "an acquire does nothing until it is given to a scoped adapter"]
pub struct FaultyAcquire<A> {
    inner: A,
    faults: Faults,
    // Shared by the clones the adapters call, so that items are numbered in
    // the order their acquires are called.
    next: Arc<AtomicUsize>,
}

impl<A: Clone> Clone for FaultyAcquire<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            faults: self.faults.clone(),
            next: Arc::clone(&self.next),
        }
    }
}

impl<A> FaultyAcquire<A> {
    /// The position of the item being acquired now: one more each call.
    fn next_index(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The release's result once the wrapped release ran: the planned fault
    /// overrides it; the step's end recorded.
    fn released<E>(&self, index: usize, released: Result<(), E>) -> Result<(), Injected<E>> {
        let result = match self.faults.deliver(Step::Release, index) {
            Err(fault) => Err(Injected::Fault(fault)),
            Ok(()) => released.map_err(Injected::Inner),
        };
        self.faults.record(Call::End(Step::Release, index));
        result
    }
}

impl<A> fmt::Debug for FaultyAcquire<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyAcquire")
            .field("faults", &self.faults)
            .field("acquired", &self.next.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<Item, A: Acquire<Item>> Acquire<Item> for FaultyAcquire<A> {
    type Resource = Indexed<A::Resource>;
    type Error = Injected<A::Error>;
    type ReleaseError = Injected<A::ReleaseError>;

    fn acquire(&mut self, item: Item) -> Result<Self::Resource, Self::Error> {
        let index = self.next_index();
        self.faults.record(Call::Start(Step::Acquire, index));
        let result = match self.faults.deliver(Step::Acquire, index) {
            Err(fault) => Err(Injected::Fault(fault)),
            Ok(()) => indexed(index, self.inner.acquire(item)),
        };
        self.faults.record(Call::End(Step::Acquire, index));
        result
    }

    fn release(
        &mut self,
        resource: Self::Resource,
        outcome: Outcome,
    ) -> Result<(), Self::ReleaseError> {
        let Indexed { index, resource } = resource;
        self.faults.record(Call::Start(Step::Release, index));
        let released = self.inner.release(resource, outcome);
        self.released(index, released)
    }
}

#[cfg(feature = "stream")]
impl<A> FaultyAcquire<A> {
    fn check_release_faults(&self, release_is_drop: bool) {
        assert!(
            !(release_is_drop && self.faults.plans_release_faults()),
            "Faults: release faults were planned for an acquire that releases by `Drop`, \
             which has no release step to fail; wrap `async_bracket(..).release(..)` instead"
        );
    }
}

#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
impl<Item, A: AsyncAcquire<Item>> AsyncAcquire<Item> for FaultyAcquire<A> {
    type Resource = Indexed<A::Resource>;
    type Error = Injected<A::Error>;
    type ReleaseError = Injected<A::ReleaseError>;
    const RELEASE_IS_DROP: bool = A::RELEASE_IS_DROP;

    fn acquire(self, item: Item) -> impl Future<Output = Result<Self::Resource, Self::Error>> {
        self.check_release_faults(A::RELEASE_IS_DROP);
        // Numbered when called, not when first polled: the call order is the
        // input order.
        let index = self.next_index();
        async move {
            let result = match self.faults.begin(Step::Acquire, index).await {
                Err(fault) => Err(Injected::Fault(fault)),
                Ok(()) => indexed(index, self.inner.clone().acquire(item).await),
            };
            self.faults.record(Call::End(Step::Acquire, index));
            result
        }
    }

    async fn release(
        self,
        resource: Self::Resource,
        outcome: Outcome,
    ) -> Result<(), Self::ReleaseError> {
        let Indexed { index, resource } = resource;
        self.faults.record(Call::Start(Step::Release, index));
        yield_n(self.faults.yields(Step::Release, index)).await;
        let released = self.inner.clone().release(resource, outcome).await;
        self.released(index, released)
    }

    fn release_on_cancel(self, resource: Self::Resource) {
        self.inner.release_on_cancel(resource.resource);
    }
}

/// Returns a future that returns `Pending` `n` times, waking itself each time,
/// then `Ready(())`: a delay counted in polls, which works on any executor (and
/// when polled by hand) and needs no timer.
///
/// # Examples
///
/// ```
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
/// use loopscope::testing::yield_n;
///
/// let mut delay = pin!(yield_n(2));
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(delay.as_mut().poll(&mut cx).is_pending());
/// assert!(delay.as_mut().poll(&mut cx).is_pending());
/// assert_eq!(delay.as_mut().poll(&mut cx), Poll::Ready(()));
/// ```
pub fn yield_n(n: usize) -> YieldN {
    YieldN { left: n }
}

/// The future of [`yield_n`].
///
/// # Examples
///
/// ```
/// futures::executor::block_on(loopscope::testing::yield_n(3));
/// ```
#[derive(Debug, Clone)]
#[must_use = "futures do nothing unless polled"]
pub struct YieldN {
    left: usize,
}

impl Future for YieldN {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.left == 0 {
            Poll::Ready(())
        } else {
            self.left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Runs `f`, catching a panic injected by a [`Faults`] plan and returning its
/// [`InjectedFault`]; any other panic resumes.
///
/// # Errors
///
/// The injected fault, when `f` panicked with one.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use loopscope::prelude::*;
/// use loopscope::testing::{Faults, Step, catch_injected};
///
/// let faults = Faults::new().panic_use([1]);
/// let fault = catch_injected(|| {
///     (0..3).for_each_scoped(
///         faults.acquire(|n: i32| Ok::<_, Infallible>(n)),
///         faults.body(|_n: &mut i32| Ok::<_, Infallible>(())),
///     )
/// })
/// .unwrap_err();
/// assert_eq!((fault.step, fault.index), (Step::Use, 1));
/// ```
pub fn catch_injected<T>(f: impl FnOnce() -> T) -> Result<T, InjectedFault> {
    silence_injected_panics();
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        match payload.downcast::<InjectedFault>() {
            Ok(fault) => *fault,
            Err(other) => panic::resume_unwind(other),
        }
    })
}

/// Installs, once per process, a panic hook that stays silent for the panics a
/// [`Faults`] plan injects and hands every other panic to the hook that was
/// installed before. [`catch_injected`] calls it.
///
/// # Examples
///
/// ```
/// loopscope::testing::silence_injected_panics();
/// ```
pub fn silence_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<InjectedFault>().is_none() {
                previous(info);
            }
        }));
    });
}
