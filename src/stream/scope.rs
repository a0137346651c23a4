//! One item's async scope: acquire, use, release — the step every stream adapter
//! repeats, sequential or concurrent.

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use core::task::{Context, Poll};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::{AsyncAcquire, Outcome, ScopedError};

/// The error of the stream adapters with the acquire `A`.
pub(crate) type AsyncScopeError<A, Item, U> =
    ScopedError<<A as AsyncAcquire<Item>>::Error, U, <A as AsyncAcquire<Item>>::ReleaseError>;

/// Awaits the release of a resource whose body panicked; its own panic or error
/// has nowhere to go, since the caller gets the body's panic.
#[cfg(not(feature = "tracing"))]
#[cold]
pub(crate) async fn release_after_panic<Item, A: AsyncAcquire<Item>>(
    acquire: A,
    resource: A::Resource,
) {
    let release = async { acquire.release(resource, Outcome::Panicked).await };
    drop(AssertUnwindSafe(release).catch_unwind().await);
}

/// Awaits the release of a resource whose body panicked, in the item's `span`,
/// and reports how it ended: the `tracing` events are the only place its error
/// or panic goes, since the caller gets the body's panic.
///
/// A version of its own rather than the plain one returning the release's fate:
/// a different output type of this (never run) future changes how the adapters'
/// hot paths compile, and the feature must leave them exactly as they are.
#[cfg(feature = "tracing")]
#[cold]
pub(crate) async fn release_after_panic<Item, A: AsyncAcquire<Item>>(
    acquire: A,
    resource: A::Resource,
    span: tracing::Span,
    index: usize,
) {
    let release = async { acquire.release(resource, Outcome::Panicked).await };
    let release = tracing::Instrument::instrument(release, span.clone());
    let fate = AssertUnwindSafe(release).catch_unwind().await.map_err(drop);
    crate::trace::released_after_panic!(span, &fate, index);
}

/// `release_after_panic(handle, resource)`, given the item's span and index
/// with the `tracing` feature.
#[cfg(not(feature = "tracing"))]
macro_rules! call_release_after_panic {
    ($span:ident, $index:expr, $handle:ident, $resource:ident) => {
        $crate::stream::scope::release_after_panic($handle, $resource)
    };
}
#[cfg(feature = "tracing")]
macro_rules! call_release_after_panic {
    ($span:ident, $index:expr, $handle:ident, $resource:ident) => {
        $crate::stream::scope::release_after_panic($handle, $resource, $span, $index)
    };
}

/// What the item scopes of one concurrent adapter share: the token that
/// cancels them all.
///
/// It is cancelled at the first panic of any item, and — when `FAIL_FAST` — at
/// the first failing acquire or body, at the moment the step returns (before
/// that item's release, so that the adapter stops acquiring at once). A
/// cancelled scope that has not acquired yet acquires nothing; one that is
/// acquiring or running its body drops that future at its current `.await`,
/// releases the resource told [`Outcome::Cancelled`], and ends as
/// [`ScopedError::Cancelled`]. A release already running is never cut off.
///
/// tokio-util's `CancellationToken` rather than a flag of our own: waking every
/// waiting scope, on any runtime and across the threads of the spawned
/// adapters, without an allocation per item, is what it is built for.
#[derive(Clone, Debug, Default)]
pub(crate) struct Siblings<const FAIL_FAST: bool> {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    token: CancellationToken,
    // The index of the item whose failure cancelled the others, or
    // `usize::MAX`: the failure that is reported first, whichever item's
    // result arrives first.
    first_failure: AtomicUsize,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            token: CancellationToken::new(),
            first_failure: AtomicUsize::new(usize::MAX),
        }
    }
}

impl<const FAIL_FAST: bool> Siblings<FAIL_FAST> {
    /// Whether the scopes are cancelled.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.shared.token.is_cancelled()
    }

    /// Cancels every scope.
    pub(crate) fn cancel(&self) {
        self.shared.token.cancel();
    }

    /// A step of item `index` failed: a fail-fast adapter cancels every
    /// scope, and remembers the first item that failed.
    #[inline]
    pub(crate) fn failed(&self, index: usize) {
        if FAIL_FAST {
            self.fail(index);
        }
    }

    /// Cancels every scope because item `index` failed.
    #[cold]
    pub(crate) fn fail(&self, index: usize) {
        let _already_failed = self.shared.first_failure.compare_exchange(
            usize::MAX,
            index,
            AtomicOrdering::Relaxed,
            AtomicOrdering::Relaxed,
        );
        self.shared.token.cancel();
    }

    /// The index of the item whose failure cancelled the others, if any.
    pub(crate) fn first_failure(&self) -> Option<usize> {
        let index = self.shared.first_failure.load(AtomicOrdering::Relaxed);
        (index != usize::MAX).then_some(index)
    }

    /// Runs `work` until it ends (`Ok`) or the scopes are cancelled (`Err`).
    #[inline]
    pub(crate) fn race<F: Future>(&self, work: F) -> Race<'_, F> {
        Race {
            work,
            cancelled: self.shared.token.cancelled(),
        }
    }

    /// The result of the scope of item `index`, cancelled; `release` is its
    /// release error, if it had a resource and releasing it failed.
    #[cold]
    pub(crate) fn cancelled<T, A, U, R>(
        &self,
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
    /// A step of a scope (acquire or body) raced against the cancellation of
    /// the scopes; see [`Siblings::race`].
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct Race<'a, F> {
        #[pin]
        work: F,
        #[pin]
        cancelled: WaitForCancellationFuture<'a>,
    }
}

impl<F: Future> Future for Race<'_, F> {
    type Output = Result<F::Output, Cancelled>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The work first: a step that is ready costs no more than it did, and
        // the token's waiter is registered only while the step is pending.
        if let Poll::Ready(output) = this.work.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        this.cancelled.poll(cx).map(|()| Err(Cancelled))
    }
}

/// Drops the resource of a body that panicked — its release — once the
/// unwinding is over, catching a panic of its `Drop` (which during the
/// unwinding would abort the process), then resumes the body's panic.
#[cfg(not(feature = "tracing"))]
#[cold]
pub(crate) fn drop_after_panic<R>(resource: R, panic: Box<dyn core::any::Any + Send>) -> ! {
    drop(std::panic::catch_unwind(AssertUnwindSafe(move || drop(resource))));
    std::panic::resume_unwind(panic)
}

/// Drops the resource of a body that panicked, as the plain version does, and
/// reports both in the item's `span`.
#[cfg(feature = "tracing")]
#[cold]
pub(crate) fn drop_after_panic<R>(
    resource: R,
    panic: Box<dyn core::any::Any + Send>,
    span: tracing::Span,
    index: usize,
) -> ! {
    crate::trace::body_panicked!(span, index);
    let fate = std::panic::catch_unwind(AssertUnwindSafe(move || drop(resource)))
        .map(Ok::<(), core::convert::Infallible>)
        .map_err(drop);
    crate::trace::released_after_panic!(span, &fate, index);
    std::panic::resume_unwind(panic)
}

/// `drop_after_panic(resource, panic)`, given the item's span and index with
/// the `tracing` feature.
#[cfg(not(feature = "tracing"))]
macro_rules! call_drop_after_panic {
    ($span:ident, $index:expr, $resource:ident, $panic:ident) => {
        $crate::stream::scope::drop_after_panic($resource, $panic)
    };
}
#[cfg(feature = "tracing")]
macro_rules! call_drop_after_panic {
    ($span:ident, $index:expr, $resource:ident, $panic:ident) => {
        $crate::stream::scope::drop_after_panic($resource, $panic, $span, $index)
    };
}

/// One item's scope, written out in the calling `async` block: acquires the
/// resource for `$item` through a clone of the acquire `$acquire` (a place), lends
/// it to the body `$body` (an expression evaluated once, at the call: the copy of
/// the body for this item), and releases it — also when the body panics, in which case the panic resumes
/// after the release. Evaluates to the item's `Result`.
///
/// Two forms, chosen once per adapter by [`AsyncAcquire::RELEASE_IS_DROP`]
/// (see [`by_release!`]), so that each adapter's state machine holds only the
/// path it runs:
///
/// - `scope!(by_drop, ..)`, for a release that is only `Drop`: the resource is a
///   plain local, which cancellation and unwinding drop — its release. This path
///   costs about what a hand-written loop does.
/// - `scope!(guarded, ..)`, for an async release: the resource is guarded, so
///   that a cancelled scope hands it to [`AsyncAcquire::release_on_cancel`]; the body
///   runs under `catch_unwind`, so that its panic waits for the awaited release.
///   If the scope is dropped during the release, the release future is dropped
///   with the resource it owns.
///
/// A macro rather than an `async fn`: every nested `async fn` is a state machine
/// of its own, which the optimiser does not merge into the caller's, and on a
/// cheap resource that costs several times the hand-written loop. `$acquire` is
/// cloned where it is used, and each clone, like the body, is moved into the call:
/// no future borrows the adapter's closures, which is what keeps the adapters'
/// futures `Send` with closures that capture by reference (a future borrowing a
/// closure across an `.await` is "not general enough" for rustc); the acquire is matched inside a `let`, with a labelled
/// break for its error, as `?` would, because the scrutinee of a `match`
/// statement lives through its arms and so across their `.await`s.
/// `tests/spawnable.rs` holds the `Send` promise.
///
/// With the `tracing` feature (see `crate::trace`), each scope makes the item's
/// span, instruments the acquire, body and release futures with it — never
/// entering it across an `.await` — and emits its events with the span as
/// explicit parent; the `by_drop` form then also catches the body's panic, to
/// report it and the drop that releases the resource before it resumes. Without
/// the feature every `trace::` macro expands to nothing (or to its future,
/// unchanged), and the scope compiles as it did before: the benches' instruction
/// counts are the same to the instruction.
macro_rules! scope {
    (by_drop, $acquire:expr, $body:expr, $item:expr, $index:expr $(, cancel: $cancel:ident)?) => {
        'scope: {
            $crate::trace::item_span!(span, $index);
            $(
                if $cancel.is_cancelled() {
                    break 'scope $cancel.cancelled($index, None);
                }
            )?
            let acquiring = $crate::trace::instrument!(
                span,
                $crate::AsyncAcquire::acquire(::core::clone::Clone::clone(&$acquire), $item)
            );
            $( let acquiring = $cancel.race(acquiring); )?
            let acquired = acquiring.await;
            $(
                let Ok(acquired) = acquired else {
                    break 'scope $cancel.cancelled($index, None);
                };
            )?
            let mut resource = match acquired {
                Ok(resource) => resource,
                Err(source) => {
                    $crate::trace::acquire_failed!(span, $index);
                    $( $cancel.failed($index); )?
                    break 'scope Err($crate::ScopedError::Acquire {
                        index: $index,
                        source,
                    });
                }
            };
            $crate::trace::acquired!(span);
            let using = $crate::trace::instrument!(span, ($body)(&mut resource));
            $( let using = $cancel.race(using); )?
            // The body's panic is caught so that the resource is dropped after
            // the unwinding, not during it: a `Drop` that panicked then would
            // abort the process.
            let used = match ::futures_util::FutureExt::catch_unwind(
                ::std::panic::AssertUnwindSafe(using),
            )
            .await
            {
                Ok(used) => used,
                Err(panic) => $crate::stream::scope::call_drop_after_panic!(
                    span, $index, resource, panic
                ),
            };
            $(
                let Ok(used) = used else {
                    $crate::trace::drop_released!(span, resource, $crate::Outcome::Cancelled);
                    break 'scope $cancel.cancelled($index, None);
                };
            )?
            // The resource is dropped — released — at the end of this block,
            // before the item's result is reported (with `tracing`, in the
            // arms, so that the `released` event follows the drop).
            match used {
                Ok(value) => {
                    $crate::trace::drop_released!(span, resource, $crate::Outcome::Completed);
                    Ok(value)
                }
                Err(source) => {
                    $crate::trace::body_failed!(span, $index);
                    $( $cancel.failed($index); )?
                    $crate::trace::drop_released!(span, resource, $crate::Outcome::Failed);
                    Err($crate::ScopedError::Use {
                        index: $index,
                        source,
                        release: None,
                    })
                }
            }
        }
    };
    (guarded, $acquire:expr, $body:expr, $item:expr, $index:expr $(, cancel: $cancel:ident)?) => {
        'scope: {
            $crate::trace::item_span!(span, $index);
            $(
                if $cancel.is_cancelled() {
                    break 'scope $cancel.cancelled($index, None);
                }
            )?
            let acquiring = $crate::trace::instrument!(
                span,
                $crate::AsyncAcquire::acquire(::core::clone::Clone::clone(&$acquire), $item)
            );
            $( let acquiring = $cancel.race(acquiring); )?
            let acquired = acquiring.await;
            $(
                let Ok(acquired) = acquired else {
                    break 'scope $cancel.cancelled($index, None);
                };
            )?
            let resource = match acquired {
                Ok(resource) => resource,
                Err(source) => {
                    $crate::trace::acquire_failed!(span, $index);
                    $( $cancel.failed($index); )?
                    break 'scope Err($crate::ScopedError::Acquire {
                        index: $index,
                        source,
                    });
                }
            };
            $crate::trace::acquired!(span);
            // If this future is dropped while the body runs (cancelled), the
            // guard hands the resource to `release_on_cancel`.
            let mut guard = ::scopeguard::guard(
                (::core::clone::Clone::clone(&$acquire), resource),
                |(handle, resource)| $crate::AsyncAcquire::release_on_cancel(handle, resource),
            );
            let using = $crate::trace::instrument!(span, ($body)(&mut guard.1));
            $( let using = $cancel.race(using); )?
            let used = ::futures_util::FutureExt::catch_unwind(::std::panic::AssertUnwindSafe(
                using,
            ))
            .await;
            let (handle, resource) = ::scopeguard::ScopeGuard::into_inner(guard);
            match used {
                Ok(used) => {
                    $(
                        let Ok(used) = used else {
                            let released = $crate::trace::instrument!(
                                span,
                                $crate::AsyncAcquire::release(
                                    handle,
                                    resource,
                                    $crate::Outcome::Cancelled
                                )
                            )
                            .await;
                            $crate::trace::released!(
                                span,
                                &released,
                                $crate::Outcome::Cancelled,
                                $index
                            );
                            break 'scope $cancel.cancelled($index, released.err());
                        };
                        if used.is_err() {
                            $cancel.failed($index);
                        }
                    )?
                    $crate::trace::body_result!(span, &used, $index);
                    let outcome = $crate::scope::outcome_of(&used);
                    let released = $crate::trace::instrument!(
                        span,
                        $crate::AsyncAcquire::release(handle, resource, outcome)
                    )
                    .await;
                    $crate::trace::released!(span, &released, outcome, $index);
                    $crate::scope::conclude(used, released, $index)
                }
                Err(panic) => {
                    $crate::trace::body_panicked!(span, $index);
                    // A panic cancels the other items at once, fail-fast or
                    // not, and is the one that resumes.
                    $( $cancel.fail($index); )?
                    // Boxed: this cold path would otherwise be the largest state
                    // of every item's future, which is moved (and, when
                    // concurrent, pushed) once per item.
                    ::std::boxed::Box::pin($crate::stream::scope::call_release_after_panic!(
                        span, $index, handle, resource
                    ))
                    .await;
                    ::std::panic::resume_unwind(panic)
                }
            }
        }
    };
}

/// Builds an adapter twice — `$build!(by_drop)` and `$build!(guarded)`, where
/// `$build` is a local macro passing its argument on to [`scope!`] — and keeps
/// the one that `$release_is_drop` (a constant) selects, as an `Either`: only
/// that one is ever run, and neither carries the other's states.
macro_rules! by_release {
    ($release_is_drop:expr, $build:ident) => {
        if $release_is_drop {
            ::futures_util::future::Either::Left($build!(by_drop))
        } else {
            ::futures_util::future::Either::Right($build!(guarded))
        }
    };
}
pub(crate) use {by_release, call_drop_after_panic, call_release_after_panic, scope};
