//! What the spawned adapters (feature `tokio`) need to run each item as a task
//! of the caller's runtime: an acquire and a body whose futures are `Send`.
//!
//! `tokio::spawn` takes only `Send` futures, and a generic adapter must prove
//! that from its bounds. An async closure's future has no name on stable Rust
//! (`AsyncFnOnce::CallOnceFuture` is unstable, and so is return type notation,
//! `B(..): Send`), so no bound on `AsyncFnOnce` alone can say it is `Send`. But
//! every async closure is also an `FnOnce` returning its future, and a bound on
//! that future *can* be written: [`SpawnAcquire`] and [`SpawnBody`] are those
//! bounds, with blanket implementations — users never implement or name them
//! unless they write an [`AsyncAcquire`] of their own.

use core::future::{self, Future};

use crate::{AsyncAcquire, AsyncRelease, AsyncWithRelease, Outcome};

/// An [`AsyncAcquire`] whose futures are `Send`, so that the spawned adapters
/// can run each item's scope with `tokio::spawn`.
///
/// Implemented for every async closure and every
/// [`async_bracket`](crate::async_bracket)`(..)` with
/// `.release(..)`/`.release_with(..)`/`.spawn_on_cancel()`/`.release_timeout(..)`
/// whose futures are `Send` and that is `Send + Sync + 'static` itself. As
/// for [`AsyncAcquire`], a sync `bracket` or closure, or an `async_bracket`
/// without its release, is refused with a hint.
///
/// For an [`AsyncAcquire`] of your own, implement it with the same bodies as
/// the `AsyncAcquire` methods: rustc then checks that they are `Send`.
///
/// # Examples
///
/// ```
/// use loopscope::{AsyncAcquire, Outcome, SpawnAcquire};
///
/// #[derive(Clone, Copy)]
/// struct Ports;
///
/// impl AsyncAcquire<u16> for Ports {
///     type Resource = u16;
///     type Error = std::io::Error;
///     type ReleaseError = std::io::Error;
///
///     async fn acquire(self, port: u16) -> std::io::Result<u16> {
///         Ok(port)
///     }
///     async fn release(self, _port: u16, _outcome: Outcome) -> std::io::Result<()> {
///         Ok(())
///     }
/// }
///
/// impl SpawnAcquire<u16> for Ports {
///     fn acquire_send(self, port: u16) -> impl Future<Output = std::io::Result<u16>> + Send {
///         self.acquire(port)
///     }
///     fn release_send(
///         self,
///         port: u16,
///         outcome: Outcome,
///     ) -> impl Future<Output = std::io::Result<()>> + Send {
///         self.release(port, outcome)
///     }
/// }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot acquire resources for stream items of type `{Item}` inside tokio tasks",
    label = "not an async acquire whose futures are `Send`, or not `Send + Sync + 'static`",
    note = "a spawned adapter runs each item with `tokio::spawn`: the acquire must own what it \
            captures (`async move` with `Arc` clones) and its futures and resources must be `Send`",
    note = "it takes an async closure `async |item| ..` or `async_bracket(acquire).release(release)`; \
            a sync `bracket(..)` or a sync closure `|item| ..` is for iterators, \
            and `async_bracket(acquire)` needs its `.release(..)`"
)]
pub trait SpawnAcquire<Item>: AsyncAcquire<Item> + Send + Sync + 'static {
    /// [`AsyncAcquire::acquire`], with a future known to be `Send`.
    ///
    /// # Errors
    ///
    /// As [`AsyncAcquire::acquire`].
    fn acquire_send(
        self,
        item: Item,
    ) -> impl Future<Output = Result<Self::Resource, Self::Error>> + Send;

    /// [`AsyncAcquire::release`], with a future known to be `Send`.
    ///
    /// # Errors
    ///
    /// As [`AsyncAcquire::release`].
    fn release_send(
        self,
        resource: Self::Resource,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), Self::ReleaseError>> + Send;

    /// The tracker of the releases this acquire hands to the runtime when
    /// cancelled ([`spawn_on_cancel_in`](crate::AsyncWithRelease::spawn_on_cancel_in)),
    /// if any: a spawned adapter tracks its item tasks with it too, so that
    /// waiting on the tracker also waits for the tasks a dropped adapter
    /// aborted — whose releases are handed over only once the runtime drops
    /// them.
    #[doc(hidden)]
    fn task_tracker(&self) -> Option<&tokio_util::task::TaskTracker> {
        None
    }
}

/// Calls `f` as an `FnOnce`: the closures below implement `AsyncFnOnce` too, and
/// a call through this function picks the `FnOnce` whose future is nameable.
#[inline]
fn call_once<F: FnOnce(I) -> O, I, O>(f: F, input: I) -> O {
    f(input)
}

impl<Item, R, E, F, Fut> SpawnAcquire<Item> for F
where
    F: AsyncFnOnce(Item) -> Result<R, E> + FnOnce(Item) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send,
{
    #[inline]
    fn acquire_send(self, item: Item) -> impl Future<Output = Result<R, E>> + Send {
        call_once(self, item)
    }

    #[inline]
    fn release_send(
        self,
        resource: R,
        _outcome: Outcome,
    ) -> impl Future<Output = Result<(), core::convert::Infallible>> + Send {
        drop(resource);
        future::ready(Ok(()))
    }
}

impl<Item, R, E, A, Fut, F> SpawnAcquire<Item> for AsyncWithRelease<A, R, F>
where
    A: AsyncFnOnce(Item) -> Result<R, E> + FnOnce(Item) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send,
    F: AsyncRelease<R> + Clone + Send + Sync + 'static,
    F::Future: Send,
    R: 'static,
{
    #[inline]
    fn acquire_send(self, item: Item) -> impl Future<Output = Result<R, E>> + Send {
        call_once(self.acquire, item)
    }

    #[inline]
    fn release_send(
        self,
        resource: R,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), F::Error>> + Send {
        self.release.release(resource, outcome)
    }
}

/// A body that the spawned adapters can run inside `tokio::spawn`: an
/// `FnOnce(&'r mut R)` — every async closure `async |resource| ..` is one —
/// whose future is `Send`.
///
/// Written as a trait with a lifetime, bounded `for<'r> SpawnBody<'r, ..>`,
/// because the future borrows the resource: `for<'r> FnOnce(&'r mut R) -> Fut`
/// cannot say that `Fut` depends on `'r`. It has a blanket implementation;
/// nothing implements it by hand.
///
/// # Examples
///
/// ```
/// use loopscope::SpawnBody;
///
/// fn runs_in_tasks<B: for<'r> SpawnBody<'r, String, usize, std::io::Error>>(_: &B) {}
///
/// runs_in_tasks(&async |line: &mut String| Ok::<_, std::io::Error>(line.len()));
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[diagnostic::on_unimplemented(
    message = "this body cannot run inside tokio tasks",
    label = "its future is not `Send`, or it is not an async closure",
    note = "write the body as `async |resource| ..` (or `async move |resource| ..`), \
            and hold nothing that is not `Send` (an `Rc`, a `RefCell` borrow, a std \
            `MutexGuard`) across an `.await`"
)]
pub trait SpawnBody<'r, R: 'r, T, E>: FnOnce(&'r mut R) -> Self::Future {
    /// The future of one call, borrowing the resource for `'r`.
    type Future: Future<Output = Result<T, E>> + Send + 'r;
}

impl<'r, R: 'r, T, E, B, Fut> SpawnBody<'r, R, T, E> for B
where
    B: FnOnce(&'r mut R) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'r,
{
    type Future = Fut;
}

/// Calls `body` through its [`SpawnBody`] impl, whose future is `Send`.
#[inline]
pub(crate) fn call_body<'r, R, T, E, B: SpawnBody<'r, R, T, E>>(
    body: B,
    resource: &'r mut R,
) -> B::Future {
    body(resource)
}

/// An [`AsyncAcquire`] that calls the `Send` futures of a [`SpawnAcquire`]:
/// what the spawned adapters run inside their tasks, so that the one item
/// scope of every stream adapter serves them too.
#[derive(Clone)]
pub(crate) struct Sending<A>(pub(crate) A);

impl<Item, A: SpawnAcquire<Item>> AsyncAcquire<Item> for Sending<A> {
    type Resource = A::Resource;
    type Error = A::Error;
    type ReleaseError = A::ReleaseError;
    const RELEASE_IS_DROP: bool = A::RELEASE_IS_DROP;

    #[inline]
    fn acquire(self, item: Item) -> impl Future<Output = Result<A::Resource, A::Error>> {
        self.0.acquire_send(item)
    }

    #[inline]
    fn release(
        self,
        resource: A::Resource,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), A::ReleaseError>> {
        self.0.release_send(resource, outcome)
    }

    #[inline]
    fn release_on_cancel(self, resource: A::Resource) {
        self.0.release_on_cancel(resource);
    }
}
