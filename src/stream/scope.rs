//! One item's async scope: acquire, use, release — the step every stream adapter
//! repeats, sequential or concurrent.

use core::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;

use crate::{AsyncAcquire, ConcurrentAcquire, Outcome, ScopedError};

/// The error of the sequential adapters with the acquire `A`.
pub(crate) type AsyncScopeError<A, Item, U> =
    ScopedError<<A as AsyncAcquire<Item>>::Error, U, <A as AsyncAcquire<Item>>::ReleaseError>;

/// The error of the concurrent adapters with the acquire `A`.
pub(crate) type ConcurrentScopeError<A, Item, U> = ScopedError<
    <A as ConcurrentAcquire<Item>>::Error,
    U,
    <A as ConcurrentAcquire<Item>>::ReleaseError,
>;

/// How one item's scope reaches the acquire: `&mut A` for the sequential adapters
/// ([`AsyncAcquire`]), `&A` for the concurrent ones ([`ConcurrentAcquire`]), so
/// that one [`scope!`] serves both.
///
/// The methods take the handle by value, a fresh reborrow at each use, so that
/// no copy of it has to be kept across an `.await` on the cheap path.
pub(crate) trait Handle<Item>: Sized {
    type Resource;
    type Error;
    type ReleaseError;

    fn acquire(self, item: Item) -> impl Future<Output = Result<Self::Resource, Self::Error>>;

    fn release(
        self,
        resource: Self::Resource,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), Self::ReleaseError>>;

    fn release_on_cancel(self, resource: Self::Resource);
}

impl<Item, A: AsyncAcquire<Item>> Handle<Item> for &mut A {
    type Resource = A::Resource;
    type Error = A::Error;
    type ReleaseError = A::ReleaseError;

    #[inline]
    fn acquire(self, item: Item) -> impl Future<Output = Result<Self::Resource, Self::Error>> {
        AsyncAcquire::acquire(self, item)
    }

    #[inline]
    fn release(
        self,
        resource: Self::Resource,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), Self::ReleaseError>> {
        AsyncAcquire::release(self, resource, outcome)
    }

    #[inline]
    fn release_on_cancel(self, resource: Self::Resource) {
        AsyncAcquire::release_on_cancel(self, resource);
    }
}

impl<Item, A: ConcurrentAcquire<Item>> Handle<Item> for &A {
    type Resource = A::Resource;
    type Error = A::Error;
    type ReleaseError = A::ReleaseError;

    #[inline]
    fn acquire(self, item: Item) -> impl Future<Output = Result<Self::Resource, Self::Error>> {
        ConcurrentAcquire::acquire(self, item)
    }

    #[inline]
    fn release(
        self,
        resource: Self::Resource,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), Self::ReleaseError>> {
        ConcurrentAcquire::release(self, resource, outcome)
    }

    #[inline]
    fn release_on_cancel(self, resource: Self::Resource) {
        ConcurrentAcquire::release_on_cancel(self, resource);
    }
}

/// Awaits the release of a resource whose body panicked; its own panic or error
/// has nowhere to go, since the caller gets the body's panic.
#[cfg(not(feature = "tracing"))]
#[cold]
pub(crate) async fn release_after_panic<Item, H: Handle<Item>>(handle: H, resource: H::Resource) {
    let release = async { handle.release(resource, Outcome::Panicked).await };
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
pub(crate) async fn release_after_panic<Item, H: Handle<Item>>(
    handle: H,
    resource: H::Resource,
    span: tracing::Span,
    index: usize,
) {
    let release = async { handle.release(resource, Outcome::Panicked).await };
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

/// One item's scope, written out in the calling `async` block: acquires the
/// resource for `$item` through the handle `$handle` (`&mut acquire` or a `&A`),
/// lends it to the body `$body` (the closure, or `(*body)` behind a reference),
/// and releases it — also when the body panics, in which case the panic resumes
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
///   that a cancelled scope hands it to [`Handle::release_on_cancel`]; the body
///   runs under `catch_unwind`, so that its panic waits for the awaited release.
///   If the scope is dropped during the release, the release future is dropped
///   with the resource it owns.
///
/// A macro rather than an `async fn`: every nested `async fn` is a state machine
/// of its own, which the optimiser does not merge into the caller's, and on a
/// cheap resource that costs several times the hand-written loop. `$handle` and
/// `$body` are evaluated afresh where they are used, so that no reference is kept
/// in the state machine; the acquire is matched inside a `let`, with a labelled
/// break for its error, as `?` would, because the scrutinee of a `match`
/// statement lives through its arms and so across their `.await`s. The body is
/// called on the closure type itself: calling it through std's
/// `AsyncFnMut for &F` makes rustc unable to prove the adapters' futures `Send`
/// ("implementation is not general enough"); `tests/auto_traits.rs` holds this.
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
    (by_drop, $handle:expr, $body:expr, $item:expr, $index:expr) => {
        'scope: {
            $crate::trace::item_span!(span, $index);
            let mut resource = match $crate::trace::instrument!(
                span,
                $crate::stream::scope::Handle::acquire($handle, $item)
            )
            .await
            {
                Ok(resource) => resource,
                Err(source) => {
                    $crate::trace::acquire_failed!(span, $index);
                    break 'scope Err($crate::ScopedError::Acquire {
                        index: $index,
                        source,
                    });
                }
            };
            $crate::trace::acquired!(span);
            // The resource is dropped — released — at the end of this block,
            // before the item's result is reported (with `tracing`, in the
            // arms, so that the `released` event follows the drop).
            match $crate::trace::await_body_by_drop!(span, $index, resource, $body(&mut resource)) {
                Ok(value) => {
                    $crate::trace::drop_released!(span, resource, $crate::Outcome::Completed);
                    Ok(value)
                }
                Err(source) => {
                    $crate::trace::body_failed!(span, $index);
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
    (guarded, $handle:expr, $body:expr, $item:expr, $index:expr) => {
        'scope: {
            use $crate::stream::scope::Handle;
            $crate::trace::item_span!(span, $index);
            let resource =
                match $crate::trace::instrument!(span, Handle::acquire($handle, $item)).await {
                    Ok(resource) => resource,
                    Err(source) => {
                        $crate::trace::acquire_failed!(span, $index);
                        break 'scope Err($crate::ScopedError::Acquire {
                            index: $index,
                            source,
                        });
                    }
                };
            $crate::trace::acquired!(span);
            // If this future is dropped while the body runs (cancelled), the
            // guard hands the resource to `release_on_cancel`.
            let mut guard = ::scopeguard::guard(($handle, resource), |(handle, resource)| {
                Handle::release_on_cancel(handle, resource);
            });
            let used = ::futures_util::FutureExt::catch_unwind(::std::panic::AssertUnwindSafe(
                $crate::trace::instrument!(span, $body(&mut guard.1)),
            ))
            .await;
            let (handle, resource) = ::scopeguard::ScopeGuard::into_inner(guard);
            match used {
                Ok(used) => {
                    $crate::trace::body_result!(span, &used, $index);
                    let outcome = $crate::scope::outcome_of(&used);
                    let released = $crate::trace::instrument!(
                        span,
                        Handle::release(handle, resource, outcome)
                    )
                    .await;
                    $crate::trace::released!(span, &released, outcome, $index);
                    $crate::scope::conclude(used, released, $index)
                }
                Err(panic) => {
                    $crate::trace::body_panicked!(span, $index);
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
pub(crate) use {by_release, call_release_after_panic, scope};
