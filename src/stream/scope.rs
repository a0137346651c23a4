//! One item's async scope: acquire, use, release — the step every stream adapter
//! repeats, sequential or concurrent.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;

use crate::{AsyncAcquire, Outcome, ScopedError};

/// The error of the stream adapters with the acquire `A`.
// Only the spawned adapters' helpers (feature `tokio`) name it: the public
// signatures write `ScopedError<A::Error, EU, A::ReleaseError>`, which rustdoc
// shows as written, where it expands this private alias.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
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

/// Drops the resource of a body that panicked — its release — once the
/// unwinding is over, catching a panic of its `Drop` (which during the
/// unwinding would abort the process), then resumes the body's panic.
#[cfg(not(feature = "tracing"))]
#[cold]
pub(crate) fn drop_after_panic<R>(resource: R, panic: Box<dyn core::any::Any + Send>) -> ! {
    drop(std::panic::catch_unwind(AssertUnwindSafe(move || {
        drop(resource)
    })));
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
/// Two forms:
///
/// - `scope!(by_drop, ..)`, a sequential adapter's scope when the release is
///   only `Drop` (chosen by [`AsyncAcquire::RELEASE_IS_DROP`]: see
///   `release_path::by_release!`): the resource is a plain local, which
///   cancellation drops — its release. A body's panic is caught, the resource
///   dropped after the unwinding, and the panic resumed ([`body_by_drop!`]). Every
///   error is returned from the adapter's `async` block at once, as `?` would
///   ([`fail!`]). It buys the sequential adapters 16–31 instructions an item
///   over `guarded` (BENCHMARKS.md); the concurrent ones, none, so they always
///   use `guarded`.
/// - `scope!(guarded, ..)`, for an async release, and for every concurrent
///   item: the resource is guarded, so
///   that a cancelled scope hands it to [`AsyncAcquire::release_on_cancel`]; the body
///   runs under `catch_unwind`, so that its panic waits for the awaited release.
///   If the scope is dropped during the release, the release future is dropped
///   with the resource it owns (a `spawn_on_cancel` bracket's release future
///   hands itself to the runtime instead: `crate::tokio`).
///
/// With `cancel: $cancel` — the item of a concurrent adapter — the scope is
/// one of several cancelled together (`super::cancel`): it acquires nothing
/// once they are cancelled, races its acquire and its body against the
/// cancellation (a cancelled body's resource is released told
/// [`Outcome::Cancelled`], and the scope ends as
/// `ScopedError::Cancelled`), reports a failing acquire or body at the moment
/// it returns (a fail-fast adapter then cancels the others), and a panicking
/// body before its release is awaited.
///
/// A macro rather than an `async fn`: every nested `async fn` is a state machine
/// of its own, which the optimiser does not merge into the caller's, and on a
/// cheap resource that costs several times the hand-written loop. `$acquire` is
/// cloned where it is used, and each clone, like the body, is moved into the call:
/// no future borrows the adapter's closures, which is what keeps the adapters'
/// futures `Send` with closures that capture by reference (a future borrowing a
/// closure across an `.await` is "not general enough" for rustc). Each step's
/// result is unwrapped inside a block of its own, with a labelled break for its
/// error, as `?` would: a local (or a `match` scrutinee) still in scope at a
/// later `.await` keeps its own room in the state machine.
/// `tests-integration/tests/spawnable.rs` holds the `Send` promise.
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
    (by_drop, $acquire:expr, $body:expr, $item:expr, $index:expr) => {{
        // Every error exit is a `return` (see `fail!`).
        #[allow(unused_labels)]
        let scoped = 'scope: {
            $crate::trace::item_span!(span, $index);
            // Each step's result is unwrapped inside a block, so that its
            // locals end there: a local still in scope at a later `.await`
            // keeps its own room in the state machine.
            let mut resource = {
                let acquired = $crate::trace::instrument!(
                    span,
                    $crate::AsyncAcquire::acquire(::core::clone::Clone::clone(&$acquire), $item)
                )
                .await;
                match acquired {
                    Ok(resource) => resource,
                    Err(source) => {
                        $crate::trace::acquire_failed!(span, $index);
                        $crate::stream::scope::fail!('scope, $crate::ScopedError::Acquire {
                            index: $index,
                            source,
                        });
                    }
                }
            };
            $crate::trace::acquired!(span);
            let used = $crate::stream::scope::body_by_drop!(
                $crate::trace::instrument!(span, ($body)(&mut resource)),
                span,
                $index,
                resource
            );
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
                    $crate::trace::drop_released!(span, resource, $crate::Outcome::Failed);
                    $crate::stream::scope::fail!('scope, $crate::ScopedError::Use {
                        index: $index,
                        source,
                        release: None,
                    })
                }
            }
        };
        scoped
    }};
    (guarded, $acquire:expr, $body:expr, $item:expr, $index:expr $(, cancel: $cancel:ident)?) => {{
        // Without `$cancel` every error exit is a `return` (see `fail!`).
        #[allow(unused_labels)]
        let scoped = 'scope: {
            $crate::trace::item_span!(span, $index);
            $(
                if $cancel.is_cancelled() {
                    break 'scope $cancel.cancelled($index, None);
                }
            )?
            // Each step's result is unwrapped inside a block: see `by_drop`.
            let resource = {
                let acquired = $crate::stream::scope::raced!(
                    $crate::trace::instrument!(
                        span,
                        $crate::AsyncAcquire::acquire(::core::clone::Clone::clone(&$acquire), $item)
                    )
                    $(, $cancel)?
                )
                .await;
                $(
                    let Ok(acquired) = acquired else {
                        break 'scope $cancel.cancelled($index, None);
                    };
                )?
                match acquired {
                    Ok(resource) => resource,
                    Err(source) => {
                        $crate::trace::acquire_failed!(span, $index);
                        $( $cancel.failed($index); )?
                        $crate::stream::scope::fail!('scope, $crate::ScopedError::Acquire {
                            index: $index,
                            source,
                        } $(, $cancel)?);
                    }
                }
            };
            $crate::trace::acquired!(span);
            // If this future is dropped while the body runs (cancelled), the
            // guard hands the resource to `release_on_cancel`.
            let mut guard = ::scopeguard::guard(
                (::core::clone::Clone::clone(&$acquire), resource),
                |(handle, resource)| $crate::AsyncAcquire::release_on_cancel(handle, resource),
            );
            let used = {
                let used = ::futures_util::FutureExt::catch_unwind(
                    ::std::panic::AssertUnwindSafe($crate::stream::scope::raced!(
                        $crate::trace::instrument!(span, ($body)(&mut guard.1))
                        $(, $cancel)?
                    )),
                )
                .await;
                let used = match used {
                    Ok(used) => used,
                    Err(panic) => {
                        $crate::trace::body_panicked!(span, $index);
                        // A panic cancels the other items at once, fail-fast
                        // or not, and is the one that resumes.
                        $( $cancel.fail($index); )?
                        let (handle, resource) = ::scopeguard::ScopeGuard::into_inner(guard);
                        // Boxed: this cold path would otherwise be the largest
                        // state of every item's future, which is moved (and,
                        // when concurrent, pushed) once per item.
                        ::std::boxed::Box::pin($crate::stream::scope::call_release_after_panic!(
                            span, $index, handle, resource
                        ))
                        .await;
                        ::std::panic::resume_unwind(panic)
                    }
                };
                $(
                    let Ok(used) = used else {
                        let (handle, resource) = ::scopeguard::ScopeGuard::into_inner(guard);
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
                used
            };
            let (handle, resource) = ::scopeguard::ScopeGuard::into_inner(guard);
            $crate::trace::body_result!(span, &used, $index);
            let outcome = $crate::scope::outcome_of(&used);
            let released = $crate::trace::instrument!(
                span,
                $crate::AsyncAcquire::release(handle, resource, outcome)
            )
            .await;
            $crate::trace::released!(span, &released, outcome, $index);
            match $crate::scope::conclude(used, released, $index) {
                Ok(value) => Ok(value),
                Err(error) => $crate::stream::scope::fail!('scope, error $(, $cancel)?),
            }
        };
        scoped
    }};
}

/// The body's future `$body` of a `by_drop` scope, awaited under
/// `catch_unwind`: evaluates to its output.
///
/// A body's panic is caught so that the resource is dropped after the
/// unwinding, not during it. Dropped during it — by the unwinding itself,
/// which drops the scope's live locals — a `Drop` that panics too aborts the
/// process ("panic in a destructor during cleanup"), and no `catch_unwind`
/// further out can prevent that.
macro_rules! body_by_drop {
    ($body:expr, $span:ident, $index:expr, $resource:ident) => {
        match ::futures_util::FutureExt::catch_unwind(::std::panic::AssertUnwindSafe($body)).await {
            Ok(used) => used,
            Err(panic) => {
                $crate::stream::scope::call_drop_after_panic!($span, $index, $resource, panic)
            }
        }
    };
}

/// Ends a scope with the error `$error`. A concurrent item's scope (`$cancel`
/// given) breaks out of its block `$scope` with it, to be reported as the
/// item's result. A sequential scope returns it from the adapter's `async`
/// block at once, as `?` would — its caller would only pass it on with `?` —
/// which leaves the scope's value always `Ok`, with nothing for the caller's
/// `?` to test (3–5 instructions an item: BENCHMARKS.md).
macro_rules! fail {
    ($scope:lifetime, $error:expr) => {
        return ::core::result::Result::Err($error)
    };
    ($scope:lifetime, $error:expr, $cancel:ident) => {
        break $scope::core::result::Result::Err($error)
    };
}

/// `$future`, raced against the cancellation `$cancel` when one is given (a
/// concurrent adapter's item): an expression, not a `let`, so that the future
/// is stored once in the scope's state machine (a local moved into an
/// `.await` keeps its own slot there, and the item futures of the concurrent
/// adapters are moved, and allocated, once per item).
macro_rules! raced {
    ($future:expr) => {
        $future
    };
    ($future:expr, $cancel:ident) => {
        $cancel.race($future)
    };
}

pub(crate) use {
    body_by_drop, call_drop_after_panic, call_release_after_panic, fail, raced, scope,
};
