//! How the items in flight of a concurrent adapter are cancelled together.
//!
//! They are cancelled at the first panic of any item, and — in a fail-fast
//! adapter (the for-each ones, and a mapping stream collected by
//! `try_collect_all`) — at the first failing acquire or body, at the moment the
//! step returns (before that item's release, so that the adapter stops
//! acquiring at once). A cancelled item that has not acquired yet acquires
//! nothing; one that is acquiring or running its body drops that future at its
//! current `.await`, releases the resource told
//! [`Outcome::Cancelled`](crate::Outcome::Cancelled), and ends as
//! [`ScopedError::Cancelled`]. A release already running is never cut off.
//!
//! Two sides: the engine's ([`Cancellation`]: whether its items are cancelled,
//! which item failed first) and each item scope's (the `cancel:` argument of
//! `scope!`: [`Engine`] or [`Siblings`]), which checks for the cancellation
//! while it waits and reports its own failure.
//!
//! - The items of [`Drive`](super::concurrent::Drive)'s own adapters are all
//!   polled by the engine, inside its `poll_next`. The engine tells them
//!   whether they are cancelled, and they tell it their failures, through a
//!   thread-local set for the duration of that poll ([`Polling`]) — as tokio's
//!   cooperative budget reaches the futures a task polls. An item then holds
//!   nothing for it (no reference, no reference count), and a check is a
//!   thread-local read. The engine wakes the items that wait when it sees the
//!   cancellation, so that each one sees it at its next poll.
//! - The items of the spawned adapters are tasks of their own, on any thread:
//!   they share [`Siblings`], whose tokio-util `CancellationToken` wakes the
//!   waiting ones (it is built for exactly that).

use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::ScopedError;

/// The engine's side: whether its items are cancelled, and why.
pub(super) trait Cancellation {
    /// Whether the items are cancelled: the engine acquires no more.
    fn is_cancelled(&self) -> bool;
    /// What to tell the items about to be polled, through the thread-local
    /// ([`Polling`]): [`CANCELLED`], [`ARMED`] (fail-fast) or [`RUNNING`].
    fn told(&self) -> usize;
    /// Makes the first failing acquire or body cancel the items.
    fn make_fail_fast(&mut self);
    /// Cancels the items.
    fn cancel(&mut self);
    /// Cancels the items because item `index` failed (kept if it is the first).
    fn fail(&mut self, index: usize);
    /// The index of the item whose failure cancelled the others, if any.
    fn first_failure(&self) -> Option<usize>;
}

/// The cancellation of an engine whose items it polls itself.
#[derive(Debug, Default)]
pub(super) struct Local {
    // What the items are told: `RUNNING`, `ARMED` or `CANCELLED`, kept in the
    // form the thread-local takes, since it is read before every poll.
    told: usize,
    first_failure: Option<usize>,
}

impl Local {
    /// The cancellation of a fail-fast engine.
    pub(super) fn fail_fast() -> Self {
        Self {
            told: ARMED,
            first_failure: None,
        }
    }
}

impl Cancellation for Local {
    #[inline]
    fn is_cancelled(&self) -> bool {
        self.told >= CANCELLED
    }

    #[inline]
    fn told(&self) -> usize {
        self.told
    }

    fn make_fail_fast(&mut self) {
        if self.told == RUNNING {
            self.told = ARMED;
        }
    }

    fn cancel(&mut self) {
        self.told = CANCELLED;
    }

    fn fail(&mut self, index: usize) {
        self.told = CANCELLED;
        self.first_failure.get_or_insert(index);
    }

    fn first_failure(&self) -> Option<usize> {
        self.first_failure
    }
}

// What the engine polling its items on this thread and those items tell each
// other, in one word (it is written twice and read at least twice per item):
// `RUNNING` (a failure is the item's own), `ARMED` (fail-fast: a failure
// cancels the items), `CANCELLED`, or `FAILED + index` — cancelled because the
// item at `index` failed (fail-fast) or panicked in this poll.
const RUNNING: usize = 0;
const ARMED: usize = 1;
const CANCELLED: usize = 2;
const FAILED: usize = 3;

std::thread_local! {
    static POLLED: Cell<usize> = const { Cell::new(RUNNING) };
}

/// The engine polling its items, from [`enter`](Self::enter) to the drop:
/// meanwhile the items are told whether they are cancelled, or whether a
/// failure cancels them, and tell the engine their failures. The drop restores
/// the previous state (also when unwinding): an item's body may itself run a
/// concurrent adapter, whose engine then does the same inside this one's.
///
/// One for a whole poll of the engine, not one per poll of its set of items:
/// a for-each engine goes from item to item without returning, and the
/// thread-local is then written only when the cancellation changes.
#[must_use = "the items are told only while it lives"]
pub(super) struct Polling {
    outer: usize,
}

impl Polling {
    /// Tells the items what `cancellation` says, until the drop.
    #[inline]
    pub(super) fn enter(cancellation: &impl Cancellation) -> Self {
        Self {
            outer: POLLED.replace(cancellation.told()),
        }
    }

    /// The index of the first item that failed (fail-fast) or panicked since
    /// the items were last told, if any.
    #[inline]
    pub(super) fn failure(&self) -> Option<usize> {
        POLLED.get().checked_sub(FAILED)
    }

    /// Tells the items what `cancellation` says now.
    #[inline]
    pub(super) fn tell(&self, cancellation: &impl Cancellation) {
        POLLED.set(cancellation.told());
    }
}

impl Drop for Polling {
    #[inline]
    fn drop(&mut self) {
        POLLED.set(self.outer);
    }
}

/// The scope's side for an item polled by the engine ([`Polling`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Engine;

impl Engine {
    /// Whether the items are cancelled.
    #[inline]
    pub(crate) fn is_cancelled(self) -> bool {
        POLLED.get() >= CANCELLED
    }

    /// A step of item `index` failed: in a fail-fast engine, that cancels the
    /// items.
    #[cold]
    pub(crate) fn failed(self, index: usize) {
        if POLLED.get() == ARMED {
            POLLED.set(index.saturating_add(FAILED));
        }
    }

    /// Cancels the items because item `index` panicked.
    #[cold]
    pub(crate) fn fail(self, index: usize) {
        // The first failure of the poll is kept.
        if POLLED.get() < FAILED {
            POLLED.set(index.saturating_add(FAILED));
        }
    }

    /// Runs `work` until it ends (`Ok`) or the items are cancelled (`Err`).
    #[inline]
    pub(crate) fn race<F: Future>(self, work: F) -> EngineRace<F> {
        EngineRace { work }
    }

    /// The result of item `index`, cancelled; `release` is its release error,
    /// if it had a resource and releasing it failed.
    #[cold]
    pub(crate) fn cancelled<T, A, U, R>(
        self,
        index: usize,
        release: Option<R>,
    ) -> Result<T, ScopedError<A, U, R>> {
        Err(ScopedError::Cancelled { index, release })
    }
}

/// The scopes were cancelled.
#[derive(Debug)]
pub(crate) struct Cancelled;

pin_project! {
    /// A step of a scope raced against the cancellation of the items: see
    /// [`Engine::race`].
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct EngineRace<F> {
        #[pin]
        work: F,
    }
}

impl<F: Future> Future for EngineRace<F> {
    type Output = Result<F::Output, Cancelled>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The work first: a step that is ready costs no more than it did.
        match self.project().work.poll(cx) {
            Poll::Ready(output) => Poll::Ready(Ok(output)),
            Poll::Pending if POLLED.get() >= CANCELLED => Poll::Ready(Err(Cancelled)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(feature = "tokio")]
pub(crate) use self::tasks::Siblings;

#[cfg(feature = "tokio")]
mod tasks {
    use core::future::Future;
    use core::pin::Pin;
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use core::task::{Context, Poll};
    use std::sync::Arc;

    use pin_project_lite::pin_project;
    use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

    use super::{Cancellation, Cancelled};
    use crate::ScopedError;

    /// What the items of a spawned adapter — tasks of their own — share: the
    /// engine's side ([`Cancellation`]) and each scope's.
    #[derive(Debug, Clone)]
    pub(crate) struct Siblings {
        shared: Arc<Shared>,
    }

    #[derive(Debug, Default)]
    struct Shared {
        cancelled: AtomicBool,
        // Whether the first failing acquire or body cancels the items.
        fail_fast: AtomicBool,
        // The index of the item whose failure cancelled the others, plus one
        // (0: none yet).
        first_failure: AtomicUsize,
        // Wakes the scopes waiting for their step.
        token: CancellationToken,
    }

    impl Siblings {
        /// The siblings of the items of an adapter, fail-fast or not.
        pub(crate) fn new(fail_fast: bool) -> Self {
            Self {
                shared: Arc::new(Shared {
                    fail_fast: AtomicBool::new(fail_fast),
                    ..Shared::default()
                }),
            }
        }

        /// Whether the items are cancelled.
        #[inline]
        pub(crate) fn is_cancelled(&self) -> bool {
            self.shared.cancelled.load(Ordering::Acquire)
        }

        /// A step of item `index` failed: a fail-fast adapter cancels the items.
        #[cold]
        pub(crate) fn failed(&self, index: usize) {
            if self.shared.fail_fast.load(Ordering::Acquire) {
                self.fail(index);
            }
        }

        /// Cancels the items because item `index` failed (or panicked).
        #[cold]
        pub(crate) fn fail(&self, index: usize) {
            let _already_failed = self.shared.first_failure.compare_exchange(
                0,
                index.saturating_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            self.cancel();
        }

        #[cold]
        fn cancel(&self) {
            self.shared.cancelled.store(true, Ordering::Release);
            self.shared.token.cancel();
        }

        /// Runs `work` until it ends (`Ok`) or the items are cancelled (`Err`).
        #[inline]
        pub(crate) fn race<F: Future>(&self, work: F) -> TaskRace<'_, F> {
            TaskRace {
                work,
                cancelled: &self.shared.cancelled,
                token: &self.shared.token,
                waiter: None,
            }
        }

        /// The result of item `index`, cancelled; `release` is its release
        /// error, if it had a resource and releasing it failed.
        #[cold]
        pub(crate) fn cancelled<T, A, U, R>(
            &self,
            index: usize,
            release: Option<R>,
        ) -> Result<T, ScopedError<A, U, R>> {
            Err(ScopedError::Cancelled { index, release })
        }
    }

    impl Cancellation for Siblings {
        fn is_cancelled(&self) -> bool {
            Siblings::is_cancelled(self)
        }

        /// Nothing: the items are tasks of their own, which never read the
        /// thread-local (the engine polls only their join handles).
        fn told(&self) -> usize {
            super::RUNNING
        }

        fn make_fail_fast(&mut self) {
            self.shared.fail_fast.store(true, Ordering::Release);
        }

        fn cancel(&mut self) {
            Siblings::cancel(self);
        }

        fn fail(&mut self, index: usize) {
            Siblings::fail(self, index);
        }

        fn first_failure(&self) -> Option<usize> {
            let plus_one = self.shared.first_failure.load(Ordering::Relaxed);
            plus_one.checked_sub(1)
        }
    }

    pin_project! {
        /// A step of a spawned scope raced against the cancellation of the
        /// items: see [`Siblings::race`].
        #[must_use = "futures do nothing unless polled"]
        pub(crate) struct TaskRace<'a, F> {
            #[pin]
            work: F,
            cancelled: &'a AtomicBool,
            token: &'a CancellationToken,
            // Registered with the token once the step waits, and made only
            // then: most steps of a spawned task never wait.
            #[pin]
            waiter: Option<WaitForCancellationFuture<'a>>,
        }
    }

    impl<F: Future> Future for TaskRace<'_, F> {
        type Output = Result<F::Output, Cancelled>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let mut this = self.project();
            if let Poll::Ready(output) = this.work.poll(cx) {
                return Poll::Ready(Ok(output));
            }
            if this.cancelled.load(Ordering::Acquire) {
                return Poll::Ready(Err(Cancelled));
            }
            if this.waiter.is_none() {
                this.waiter.set(Some(this.token.cancelled()));
            }
            let waiter = this.waiter.as_pin_mut().expect("set above");
            if waiter.poll(cx).is_ready() {
                return Poll::Ready(Err(Cancelled));
            }
            Poll::Pending
        }
    }
}
