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
/// that a single [`run`] serves both.
pub(crate) trait Handle<Item> {
    type Resource;
    type Error;
    type ReleaseError;
    const RELEASE_IS_DROP: bool;

    fn acquire(&mut self, item: Item) -> impl Future<Output = Result<Self::Resource, Self::Error>>;

    fn release(
        &mut self,
        resource: Self::Resource,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), Self::ReleaseError>>;

    fn release_on_cancel(&mut self, resource: Self::Resource);
}

impl<Item, A: AsyncAcquire<Item>> Handle<Item> for &mut A {
    type Resource = A::Resource;
    type Error = A::Error;
    type ReleaseError = A::ReleaseError;
    const RELEASE_IS_DROP: bool = A::RELEASE_IS_DROP;

    #[inline]
    fn acquire(&mut self, item: Item) -> impl Future<Output = Result<Self::Resource, Self::Error>> {
        AsyncAcquire::acquire(&mut **self, item)
    }

    #[inline]
    fn release(
        &mut self,
        resource: Self::Resource,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), Self::ReleaseError>> {
        AsyncAcquire::release(&mut **self, resource, outcome)
    }

    #[inline]
    fn release_on_cancel(&mut self, resource: Self::Resource) {
        AsyncAcquire::release_on_cancel(&mut **self, resource);
    }
}

impl<Item, A: ConcurrentAcquire<Item>> Handle<Item> for &A {
    type Resource = A::Resource;
    type Error = A::Error;
    type ReleaseError = A::ReleaseError;
    const RELEASE_IS_DROP: bool = A::RELEASE_IS_DROP;

    #[inline]
    fn acquire(&mut self, item: Item) -> impl Future<Output = Result<Self::Resource, Self::Error>> {
        ConcurrentAcquire::acquire(*self, item)
    }

    #[inline]
    fn release(
        &mut self,
        resource: Self::Resource,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), Self::ReleaseError>> {
        ConcurrentAcquire::release(*self, resource, outcome)
    }

    #[inline]
    fn release_on_cancel(&mut self, resource: Self::Resource) {
        ConcurrentAcquire::release_on_cancel(*self, resource);
    }
}

/// Holds the resource while the body runs; if the scope's future is dropped
/// then (cancelled), hands it to [`Handle::release_on_cancel`].
pub(crate) struct CancelGuard<Item, H: Handle<Item>> {
    pub(crate) handle: H,
    pub(crate) resource: Option<H::Resource>,
}

impl<Item, H: Handle<Item>> CancelGuard<Item, H> {
    /// The resource, lent to the body.
    #[inline]
    pub(crate) fn resource(&mut self) -> &mut H::Resource {
        self.resource
            .as_mut()
            .expect("the resource is held until the body ends")
    }

    /// Takes the resource back for its release.
    #[inline]
    pub(crate) fn disarm(&mut self) -> H::Resource {
        self.resource
            .take()
            .expect("the resource is held until the body ends")
    }
}

impl<Item, H: Handle<Item>> Drop for CancelGuard<Item, H> {
    #[inline]
    fn drop(&mut self) {
        if let Some(resource) = self.resource.take() {
            self.handle.release_on_cancel(resource);
        }
    }
}

/// Whether the handle's release is only `Drop`; see
/// [`AsyncAcquire::RELEASE_IS_DROP`].
#[inline]
pub(crate) fn releases_by_drop<Item, H: Handle<Item>>(_: &H) -> bool {
    H::RELEASE_IS_DROP
}

/// Awaits the release of a resource whose body panicked; its own panic or error
/// has nowhere to go, since the caller gets the body's panic.
#[cold]
pub(crate) async fn release_after_panic<Item, H: Handle<Item>>(
    handle: &mut H,
    resource: H::Resource,
) {
    let release = async { handle.release(resource, Outcome::Panicked).await };
    drop(AssertUnwindSafe(release).catch_unwind().await);
}

/// One item's scope, written out in the calling `async` block: acquires the
/// resource for `$item` through the handle `$handle` (`&mut A` or `&A`), lends it
/// to the body behind the reference `$body` (`&mut B` or `&B`), and awaits its
/// release — also when the body panics, in which case the panic resumes after
/// the release. Evaluates to the item's `Result`.
///
/// A macro rather than an `async fn`: every nested `async fn` is a state machine
/// of its own, which the optimiser does not merge into the caller's, and on a
/// cheap resource that costs several times the hand-written loop. The body is
/// called through `(*$body)`, on the closure type itself: calling it through
/// std's `AsyncFnMut for &F` makes rustc unable to prove the adapters' futures
/// `Send` ("implementation is not general enough"); `tests/auto_traits.rs`
/// holds this.
///
/// If the calling future is dropped while the body runs, the resource goes to
/// [`Handle::release_on_cancel`] (or is dropped, when the release is only
/// `Drop`); if it is dropped during the release, the release future is dropped
/// with the resource it owns.
macro_rules! scope {
    ($handle:expr, $body:expr, $item:expr, $index:expr) => {{
        use $crate::stream::scope::{CancelGuard, Handle, release_after_panic, releases_by_drop};
        let index: usize = $index;
        let mut handle = $handle;
        let body = $body;
        match Handle::acquire(&mut handle, $item).await {
            Err(source) => Err($crate::ScopedError::Acquire { index, source }),
            // A release that is only `Drop` needs neither a guard nor
            // `catch_unwind`: cancellation and unwinding drop the resource, which
            // is its release. This path costs what the hand-written loop does.
            Ok(mut resource) if releases_by_drop(&handle) => {
                let used = (*body)(&mut resource).await;
                drop(resource);
                $crate::scope::conclude(used, Ok(()), index)
            }
            Ok(resource) => {
                let mut guard = CancelGuard {
                    handle,
                    resource: Some(resource),
                };
                let used = ::futures_util::FutureExt::catch_unwind(::std::panic::AssertUnwindSafe(
                    (*body)(guard.resource()),
                ))
                .await;
                let resource = guard.disarm();
                match used {
                    Ok(used) => {
                        let outcome = $crate::scope::outcome_of(&used);
                        let released = Handle::release(&mut guard.handle, resource, outcome).await;
                        $crate::scope::conclude(used, released, index)
                    }
                    Err(panic) => {
                        release_after_panic(&mut guard.handle, resource).await;
                        ::std::panic::resume_unwind(panic)
                    }
                }
            }
        }
    }};
}
pub(crate) use scope;
