//! One item's async scope: acquire, use, release — the step every stream adapter
//! repeats, sequential or concurrent.

use core::future::Future;
use core::marker::PhantomData;
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
    const RELEASE_IS_DROP: bool;

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
    const RELEASE_IS_DROP: bool = A::RELEASE_IS_DROP;

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
    const RELEASE_IS_DROP: bool = A::RELEASE_IS_DROP;

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

/// The item, and its type as a zero-sized value that costs nothing to keep
/// across an `.await` once the item has moved on. By value, not `&item`: a local
/// that was ever borrowed is kept in the state machine across every later
/// `.await` of its scope.
#[inline]
pub(crate) fn typed<Item>(item: Item) -> (Item, PhantomData<fn(Item)>) {
    (item, PhantomData)
}

/// Whether the handle's release is only `Drop`
/// ([`AsyncAcquire::RELEASE_IS_DROP`]); a constant once compiled.
#[inline]
pub(crate) fn releases_by_drop<Item, H: Handle<Item>>(_: &H, _: PhantomData<fn(Item)>) -> bool {
    H::RELEASE_IS_DROP
}

/// The outcome of a release that is only `Drop`: it cannot fail.
#[inline]
pub(crate) fn dropped<Item, H: Handle<Item>>(
    _: &H,
    _: PhantomData<fn(Item)>,
) -> Result<(), H::ReleaseError> {
    Ok(())
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
/// and awaits its release — also when the body panics, in which case the panic
/// resumes after the release. Evaluates to the item's `Result`.
///
/// A macro rather than an `async fn`: every nested `async fn` is a state machine
/// of its own, which the optimiser does not merge into the caller's, and on a
/// cheap resource that costs several times the hand-written loop. `$handle` and
/// `$body` are evaluated afresh where they are used, so that no reference is kept
/// in the state machine. The body is called on the closure type itself: calling
/// it through std's `AsyncFnMut for &F` makes rustc unable to prove the adapters'
/// futures `Send` ("implementation is not general enough");
/// `tests/auto_traits.rs` holds this.
///
/// If the calling future is dropped while the body runs, the resource goes to
/// [`Handle::release_on_cancel`] (or is dropped, when the release is only
/// `Drop`); if it is dropped during the release, the release future is dropped
/// with the resource it owns.
macro_rules! scope {
    ($handle:expr, $body:expr, $item:expr, $index:expr) => {{
        use $crate::stream::scope::{
            Handle, dropped, release_after_panic, releases_by_drop, typed,
        };
        let (item, item_type) = typed($item);
        // The acquire is matched inside a `let`, with a labelled break for its
        // error, as `?` would: the scrutinee of a `match` statement lives through
        // its arms, and so in the state machine across their `.await`s. Likewise
        // the branch is a constant taken before the first `.await`, so that
        // neither it nor the other branch's values are stored.
        'scope: {
            if releases_by_drop(&$handle, item_type) {
                // A release that is only `Drop` needs neither a guard nor
                // `catch_unwind`: cancellation and unwinding drop the resource,
                // which is its release. This path costs what a hand-written loop
                // does.
                let mut resource = match Handle::acquire($handle, item).await {
                    Ok(resource) => resource,
                    Err(source) => {
                        break 'scope Err($crate::ScopedError::Acquire {
                            index: $index,
                            source,
                        });
                    }
                };
                // The resource is dropped — released — at the end of this
                // block, before the item's result is reported.
                match $body(&mut resource).await {
                    Ok(value) => Ok(value),
                    Err(source) => Err($crate::ScopedError::Use {
                        index: $index,
                        source,
                        release: dropped(&$handle, item_type).err(),
                    }),
                }
            } else {
                let resource = match Handle::acquire($handle, item).await {
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
                        // Boxed: this cold path would otherwise be the largest
                        // state of every item's future, which is moved (and,
                        // when concurrent, pushed) once per item.
                        ::std::boxed::Box::pin(release_after_panic(handle, resource)).await;
                        ::std::panic::resume_unwind(panic)
                    }
                }
            }
        }
    }};
}
pub(crate) use scope;
