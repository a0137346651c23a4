//! How the items in flight of a concurrent adapter are cancelled together.
//!
//! They are cancelled at the first panic of any item, and — in a fail-fast
//! adapter — at the first failing acquire or body, at the moment the step
//! returns (before that item's release, so that the adapter stops acquiring at
//! once). A cancelled item that has not acquired yet acquires nothing; one that
//! is acquiring or running its body drops that future at its current `.await`,
//! releases the resource told [`Outcome::Cancelled`](crate::Outcome::Cancelled),
//! and ends as [`ScopedError::Cancelled`]. A release already running is never
//! cut off.
//!
//! Two sides: the engine's ([`Cancellation`]: whether its items are cancelled,
//! which item failed first) and each item scope's (the `cancel:` argument of
//! `scope!`: [`Engine`] or [`Siblings`]), which checks for the cancellation
//! while it waits and reports its own failure.
//!
//! - The items of [`Drive`](super::concurrent::Drive)'s own adapters are all
//!   polled by the engine, inside its `poll_next`. The engine tells them
//!   whether they are cancelled, and they tell it their failures, through a
//!   thread-local set for the duration of that poll ([`polling`]) — as tokio's
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
    cancelled: bool,
    first_failure: Option<usize>,
}

impl Cancellation for Local {
    #[inline]
    fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    fn cancel(&mut self) {
        self.cancelled = true;
    }

    fn fail(&mut self, index: usize) {
        self.cancelled = true;
        self.first_failure.get_or_insert(index);
    }

    fn first_failure(&self) -> Option<usize> {
        self.first_failure
    }
}

/// What the items an engine is polling told it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Polled {
    /// The first item that failed (fail-fast) or panicked in this poll.
    pub(super) failure: Option<usize>,
}

// What the engine polling its items on this thread and those items tell each
// other, in one word (it is written twice and read at least twice per item):
// `NOT_CANCELLED`, `CANCELLED`, or `FAILED + index` — cancelled because the
// item at `index` failed in this poll.
const NOT_CANCELLED: usize = 0;
const CANCELLED: usize = 1;
const FAILED: usize = 2;

std::thread_local! {
    static POLLED: Cell<usize> = const { Cell::new(NOT_CANCELLED) };
}

/// Runs `poll` — the engine polling its items — with the items told whether
/// they are `cancelled`, and returns what they reported. The previous state is
/// restored afterwards (also if `poll` unwinds): an item's body may itself run
/// a concurrent adapter.
#[inline]
pub(super) fn polling<R>(cancelled: bool, poll: impl FnOnce() -> R) -> (R, Polled) {
    let outer = POLLED.replace(if cancelled { CANCELLED } else { NOT_CANCELLED });
    let restore = scopeguard::guard(outer, |outer| POLLED.set(outer));
    let polled = poll();
    let told = POLLED.replace(scopeguard::ScopeGuard::into_inner(restore));
    let failure = told.checked_sub(FAILED);
    (polled, Polled { failure })
}

/// The scope's side for an item polled by the engine ([`polling`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Engine<const FAIL_FAST: bool>;

impl<const FAIL_FAST: bool> Engine<FAIL_FAST> {
    /// Whether the items are cancelled.
    #[inline]
    pub(crate) fn is_cancelled(self) -> bool {
        POLLED.get() != NOT_CANCELLED
    }

    /// A step of item `index` failed: a fail-fast adapter cancels the items.
    #[inline]
    pub(crate) fn failed(self, index: usize) {
        if FAIL_FAST {
            self.fail(index);
        }
    }

    /// Cancels the items because item `index` failed (or panicked).
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
            Poll::Pending if POLLED.get() != NOT_CANCELLED => Poll::Ready(Err(Cancelled)),
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
    #[derive(Debug, Default)]
    pub(crate) struct Siblings<const FAIL_FAST: bool> {
        shared: Arc<Shared>,
    }

    // Not derived: a derive would not see that the const parameter needs no bound.
    impl<const FAIL_FAST: bool> Clone for Siblings<FAIL_FAST> {
        fn clone(&self) -> Self {
            Self {
                shared: Arc::clone(&self.shared),
            }
        }
    }

    #[derive(Debug, Default)]
    struct Shared {
        cancelled: AtomicBool,
        // The index of the item whose failure cancelled the others, plus one
        // (0: none yet).
        first_failure: AtomicUsize,
        // Wakes the scopes waiting for their step.
        token: CancellationToken,
    }

    impl<const FAIL_FAST: bool> Siblings<FAIL_FAST> {
        /// Whether the items are cancelled.
        #[inline]
        pub(crate) fn is_cancelled(&self) -> bool {
            self.shared.cancelled.load(Ordering::Acquire)
        }

        /// A step of item `index` failed: a fail-fast adapter cancels the items.
        #[inline]
        pub(crate) fn failed(&self, index: usize) {
            if FAIL_FAST {
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
                waiter: self.shared.token.cancelled(),
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

    impl<const FAIL_FAST: bool> Cancellation for Siblings<FAIL_FAST> {
        fn is_cancelled(&self) -> bool {
            Siblings::is_cancelled(self)
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
            // Registered with the token while the step waits.
            #[pin]
            waiter: WaitForCancellationFuture<'a>,
        }
    }

    impl<F: Future> Future for TaskRace<'_, F> {
        type Output = Result<F::Output, Cancelled>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            if let Poll::Ready(output) = this.work.poll(cx) {
                return Poll::Ready(Ok(output));
            }
            if this.cancelled.load(Ordering::Acquire) || this.waiter.poll(cx).is_ready() {
                return Poll::Ready(Err(Cancelled));
            }
            Poll::Pending
        }
    }
}
