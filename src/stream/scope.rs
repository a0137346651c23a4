//! One item's async scope: acquire, use, release — the step every stream adapter
//! repeats, sequential or concurrent.

use core::any::Any;
use core::future::Future;
use std::panic::{self, AssertUnwindSafe};

use futures_util::FutureExt as _;

use crate::scope::{conclude, outcome_of};
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

/// The error of an item's scope run with the acquire handle `H`.
pub(crate) type HandleError<H, Item, U> =
    ScopedError<<H as Handle<Item>>::Error, U, <H as Handle<Item>>::ReleaseError>;

/// How one item's scope reaches the acquire: `&mut A` for the sequential adapters
/// ([`AsyncAcquire`]), `&A` for the concurrent ones ([`ConcurrentAcquire`]), so
/// that a single [`run`] serves both.
pub(crate) trait Handle<Item> {
    type Resource;
    type Error;
    type ReleaseError;

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
struct CancelGuard<Item, H: Handle<Item>> {
    handle: H,
    resource: Option<H::Resource>,
}

impl<Item, H: Handle<Item>> CancelGuard<Item, H> {
    /// Acquires the resource for `item`, guarded from the moment it exists.
    async fn acquire<U>(
        mut handle: H,
        item: Item,
        index: usize,
    ) -> Result<Self, HandleError<H, Item, U>> {
        let resource = handle
            .acquire(item)
            .await
            .map_err(|source| ScopedError::Acquire { index, source })?;
        Ok(Self {
            handle,
            resource: Some(resource),
        })
    }

    /// The resource, lent to the body.
    fn resource(&mut self) -> &mut H::Resource {
        self.resource
            .as_mut()
            .expect("the resource is held until the body ends")
    }

    /// Awaits the release of the resource after the body ended with `used` (or
    /// panicked), and concludes the item: its value, its error(s), or the body's
    /// panic resumed once the release is done.
    async fn release<T, U>(
        mut self,
        used: Result<Result<T, U>, Box<dyn Any + Send>>,
        index: usize,
    ) -> Result<T, HandleError<H, Item, U>> {
        let resource = self
            .resource
            .take()
            .expect("the resource is held until the body ends");
        match used {
            Ok(used) => {
                let released = self.handle.release(resource, outcome_of(&used)).await;
                conclude(used, released, index)
            }
            Err(panic) => {
                // The release is awaited, but its own panic or error has nowhere
                // to go: the caller gets the body's panic.
                let release = async { self.handle.release(resource, Outcome::Panicked).await };
                drop(AssertUnwindSafe(release).catch_unwind().await);
                panic::resume_unwind(panic)
            }
        }
    }
}

impl<Item, H: Handle<Item>> Drop for CancelGuard<Item, H> {
    fn drop(&mut self) {
        if let Some(resource) = self.resource.take() {
            self.handle.release_on_cancel(resource);
        }
    }
}

/// Acquires the resource for `item`, lends it to `body`, and awaits its release
/// before returning — also when `body` panics, in which case the panic resumes
/// after the release.
///
/// If this future is dropped while the body runs, the resource goes to
/// [`Handle::release_on_cancel`]; if it is dropped during the release, the
/// release future is dropped with the resource it owns.
///
/// The body comes as `&mut B` (and as `&B` in [`run_shared`]), with the bound on
/// the closure type `B` itself. Taking a generic body that is itself a reference
/// (`B = &F`, through std's `AsyncFnMut for &F`) compiles too, but then rustc
/// cannot prove the adapters' futures `Send` ("implementation is not general
/// enough"), and they could not be spawned; `tests/auto_traits.rs` holds this.
pub(crate) async fn run<Item, H, B, T, U>(
    handle: H,
    body: &mut B,
    item: Item,
    index: usize,
) -> Result<T, HandleError<H, Item, U>>
where
    H: Handle<Item>,
    B: AsyncFnMut(&mut H::Resource) -> Result<T, U>,
{
    let mut guard = CancelGuard::acquire(handle, item, index).await?;
    let used = AssertUnwindSafe(body(guard.resource()))
        .catch_unwind()
        .await;
    guard.release(used, index).await
}

/// [`run`] for the concurrent adapters, whose acquire and body are shared.
pub(crate) async fn run_shared<Item, A, B, T, U>(
    acquire: &A,
    body: &B,
    item: Item,
    index: usize,
) -> Result<T, ConcurrentScopeError<A, Item, U>>
where
    A: ConcurrentAcquire<Item>,
    B: AsyncFn(&mut A::Resource) -> Result<T, U>,
{
    let mut guard = CancelGuard::acquire(acquire, item, index).await?;
    let used = AssertUnwindSafe(body(guard.resource()))
        .catch_unwind()
        .await;
    guard.release(used, index).await
}
