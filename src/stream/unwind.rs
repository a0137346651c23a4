//! [`DropOnUnwind`]: drops a sequential adapter's item future — its resource
//! with it — while a panic of that future unwinds out of `poll`.
//!
//! A resource released by `Drop` must be released before the body's panic
//! resumes, and must not abort the process if its `Drop` panics too (a panic
//! escaping a destructor during unwinding aborts). A sequential scope could
//! catch the body's panic with `catch_unwind` and drop the resource after it,
//! but that costs every item a `catch_unwind` around every poll of its body.
//! The adapter instead holds a guard on its stack while it polls: on the normal
//! path the guard is forgotten (it costs nothing), and only while a panic
//! unwinds out of the poll does its `Drop` run, dropping the future in flight
//! under `catch_unwind`: the resource is dropped during the unwinding, before
//! the panic reaches whoever catches it, and a panic of that drop is caught and
//! dropped (the body's panic is the one that goes on).

use core::mem;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::panic::{AssertUnwindSafe, catch_unwind};

use pin_project_lite::pin_project;

/// While a panic unwinds, drops the future in `0` under `catch_unwind`.
/// Forgotten on the normal path: see the module docs.
pub(super) struct Unwinding<'a, F>(pub(super) Pin<&'a mut Option<F>>);

impl<F> Drop for Unwinding<'_, F> {
    #[cold]
    fn drop(&mut self) {
        // Only reached while a panic unwinds: the body's panic goes on, a
        // panic of the resource's `Drop` is dropped.
        drop(catch_unwind(AssertUnwindSafe(|| self.0.set(None))));
    }
}

impl<F: Future> Unwinding<'_, F> {
    /// Polls the future in flight; `message` is the panic of a poll after a
    /// panic, when the future is gone.
    #[inline]
    pub(super) fn poll(mut self, cx: &mut Context<'_>, message: &str) -> Poll<F::Output> {
        let polled = self.0.as_mut().as_pin_mut().expect(message).poll(cx);
        mem::forget(self);
        polled
    }
}

pin_project! {
    /// A sequential adapter's future, dropped while a panic unwinds out of its
    /// `poll` (see the module docs).
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
        Unwinding(self.project().future).poll(
            cx,
            "a sequential scoped adapter was polled after a panic it resumed",
        )
    }
}
