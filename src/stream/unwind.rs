//! What a sequential adapter does while a panic of its item unwinds out of
//! `poll`: it drops the spent item future ([`Unwinding`]), so that a later poll
//! finds nothing in flight and panics with a clear message rather than resuming
//! a future that panicked.
//!
//! The resource is not this guard's business: the scope catches the body's
//! panic, drops its resource once that unwinding is over, and resumes the
//! panic (`scope::body_by_drop!`), since a resource dropped by the unwinding
//! itself, whose `Drop` panicked too, would abort the process. What is left
//! for this guard to drop is the spent future. It is held on the stack while
//! the adapter polls, and forgotten on the normal path, so it costs nothing
//! there — where a flag set and cleared around every poll would cost a store
//! each time.

use core::mem;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::panic::{AssertUnwindSafe, catch_unwind};

use pin_project_lite::pin_project;

/// A value that a panic can leave spent: its future dropped, and a state in
/// its place that a later poll reports.
pub(super) trait Spend {
    /// Drops the future, leaving the spent state.
    fn spend(self: Pin<&mut Self>);
}

impl<F> Spend for Option<F> {
    fn spend(mut self: Pin<&mut Self>) {
        self.set(None);
    }
}

/// While a panic unwinds, spends the value in `0` under `catch_unwind`.
/// Forgotten on the normal path: see the module docs.
pub(super) struct Unwinding<'a, T: Spend>(pub(super) Pin<&'a mut T>);

impl<T: Spend> Drop for Unwinding<'_, T> {
    #[cold]
    fn drop(&mut self) {
        // Only reached while a panic unwinds. The spent future's own drop
        // should not panic; if it does, the panic that unwinds goes on.
        drop(catch_unwind(AssertUnwindSafe(|| self.0.as_mut().spend())));
    }
}

impl<T: Spend> Unwinding<'_, T> {
    /// Runs `poll` on the value; a panic of it leaves the value spent.
    #[inline]
    pub(super) fn poll<R>(mut self, poll: impl FnOnce(Pin<&mut T>) -> R) -> R {
        let polled = poll(self.0.as_mut());
        mem::forget(self);
        polled
    }
}

pin_project! {
    /// A sequential adapter's future, dropped while a panic unwinds out of its
    /// `poll`, so that a poll after the panic panics clearly (see the module
    /// docs).
    pub(super) struct DropOnUnwind<F> {
        #[pin]
        future: Option<F>,
    }
}

impl<F> DropOnUnwind<F> {
    pub(super) fn new(future: F) -> Self {
        Self {
            future: Some(future),
        }
    }
}

impl<F: Future> Future for DropOnUnwind<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Unwinding(self.project().future).poll(|future| {
            future
                .as_pin_mut()
                .expect("a sequential scoped adapter was polled after a panic it resumed")
                .poll(cx)
        })
    }
}
