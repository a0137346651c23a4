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
#[cold]
pub(crate) async fn release_after_panic<Item, H: Handle<Item>>(handle: H, resource: H::Resource) {
    let release = async { handle.release(resource, Outcome::Panicked).await };
    drop(AssertUnwindSafe(release).catch_unwind().await);
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
macro_rules! scope {
    (by_drop, $handle:expr, $body:expr, $item:expr, $index:expr) => {
        'scope: {
            let mut resource = match $crate::stream::scope::Handle::acquire($handle, $item).await {
                Ok(resource) => resource,
                Err(source) => {
                    break 'scope Err($crate::ScopedError::Acquire {
                        index: $index,
                        source,
                    });
                }
            };
            // The resource is dropped — released — at the end of this block,
            // before the item's result is reported.
            match $body(&mut resource).await {
                Ok(value) => Ok(value),
                Err(source) => Err($crate::ScopedError::Use {
                    index: $index,
                    source,
                    release: None,
                }),
            }
        }
    };
    (guarded, $handle:expr, $body:expr, $item:expr, $index:expr) => {
        'scope: {
            use $crate::stream::scope::{Handle, release_after_panic};
            let resource = match Handle::acquire($handle, $item).await {
                Ok(resource) => resource,
                Err(source) => {
                    break 'scope Err($crate::ScopedError::Acquire {
                        index: $index,
                        source,
                    });
                }
            };
            // If this future is dropped while the body runs (cancelled), the
            // guard hands the resource to `release_on_cancel`.
            let mut guard = ::scopeguard::guard(($handle, resource), |(handle, resource)| {
                Handle::release_on_cancel(handle, resource);
            });
            let used = ::futures_util::FutureExt::catch_unwind(::std::panic::AssertUnwindSafe(
                $body(&mut guard.1),
            ))
            .await;
            let (handle, resource) = ::scopeguard::ScopeGuard::into_inner(guard);
            match used {
                Ok(used) => {
                    let outcome = $crate::scope::outcome_of(&used);
                    let released = Handle::release(handle, resource, outcome).await;
                    $crate::scope::conclude(used, released, $index)
                }
                Err(panic) => {
                    // Boxed: this cold path would otherwise be the largest state
                    // of every item's future, which is moved (and, when
                    // concurrent, pushed) once per item.
                    ::std::boxed::Box::pin(release_after_panic(handle, resource)).await;
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
pub(crate) use {by_release, scope};
