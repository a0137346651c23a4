//! Release on cancellation by spawning the async release on the current tokio
//! runtime (feature `tokio`).

use core::fmt;
use core::future::Future;

use crate::{AsyncAcquire, AsyncWithRelease, ConcurrentAcquire, Outcome};

impl<A, R, F> AsyncWithRelease<A, R, F> {
    /// When the adapter is dropped mid-item (a timeout, a `select!`), spawns the
    /// async release of the resource the body held on the current tokio runtime,
    /// so that the `shutdown().await` or `sync_all().await` still happens.
    ///
    /// Outside a runtime (or while it shuts down) the resource is released by its
    /// `Drop`, as without this option. The spawned release's error has no caller
    /// to go to, and is dropped. A release already running when the adapter is
    /// dropped is dropped with it: a release that must finish whatever happens
    /// can spawn itself (`|s| async move { tokio::spawn(close(s)).await.. }`).
    ///
    /// The release future must be `Send + 'static`, as any spawned task.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let closed = Arc::new(AtomicUsize::new(0));
    /// let work = stream::iter([1, 2, 3]).for_each_scoped(
    ///     async_bracket(async |id: u32| Ok::<_, ()>(id))
    ///         .release({
    ///             let closed = Arc::clone(&closed);
    ///             move |_id| {
    ///                 let closed = Arc::clone(&closed);
    ///                 async move {
    ///                     closed.fetch_add(1, Ordering::SeqCst);
    ///                     Ok::<_, ()>(())
    ///                 }
    ///             }
    ///         })
    ///         .spawn_on_cancel(),
    ///     async |_id| {
    ///         tokio::time::sleep(Duration::from_secs(3600)).await; // stuck
    ///         Ok::<_, ()>(())
    ///     },
    /// );
    /// // The body never finishes: the timeout drops the adapter mid-item...
    /// assert!(tokio::time::timeout(Duration::from_millis(10), work).await.is_err());
    /// // ...and the release of item 1's resource runs as a task of its own.
    /// tokio::task::yield_now().await;
    /// assert_eq!(closed.load(Ordering::SeqCst), 1);
    /// # }
    /// ```
    pub fn spawn_on_cancel(self) -> SpawnOnCancel<A, R, F> {
        SpawnOnCancel { bracket: self }
    }
}

/// An async bracket whose release is spawned on the current tokio runtime when
/// the adapter is dropped mid-item; made by
/// [`AsyncWithRelease::spawn_on_cancel`].
///
/// # Examples
///
/// ```
/// use loopscope::prelude::*;
/// use loopscope::SpawnOnCancel;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), loopscope::ScopedError<(), (), ()>> {
/// async fn connect(port: u16) -> Result<u16, ()> { Ok(port) }
/// async fn shut_down(_port: u16) -> Result<(), ()> { Ok(()) }
///
/// let connections = async_bracket(connect).release(shut_down).spawn_on_cancel();
/// futures::stream::iter([80, 443])
///     .for_each_scoped(connections, async |_port| Ok::<_, ()>(()))
///     .await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "a bracket does nothing until it is given to a scoped adapter"]
pub struct SpawnOnCancel<A, R, F> {
    bracket: AsyncWithRelease<A, R, F>,
}

impl<A: Clone, R, F: Clone> Clone for SpawnOnCancel<A, R, F> {
    fn clone(&self) -> Self {
        Self {
            bracket: self.bracket.clone(),
        }
    }
}

impl<A, R, F> fmt::Debug for SpawnOnCancel<A, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnOnCancel").finish_non_exhaustive()
    }
}

/// Spawns `release(resource)` on the current runtime, or drops the resource when
/// there is none.
fn spawn_release<R, F, Fut, E>(release: &F, resource: R)
where
    F: Fn(R) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        // The task is detached: nobody is left to await it.
        Ok(runtime) => drop(runtime.spawn(release(resource))),
        Err(_) => drop(resource),
    }
}

impl<Item, A, R, E, F, Fut, ER> AsyncAcquire<Item> for SpawnOnCancel<A, R, F>
where
    A: AsyncFn(Item) -> Result<R, E>,
    F: Fn(R) -> Fut,
    Fut: Future<Output = Result<(), ER>> + Send + 'static,
    ER: Send + 'static,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = ER;

    #[inline]
    fn acquire(&mut self, item: Item) -> impl Future<Output = Result<R, E>> {
        (self.bracket.acquire)(item)
    }

    #[inline]
    fn release(&mut self, resource: R, _outcome: Outcome) -> impl Future<Output = Result<(), ER>> {
        (self.bracket.release)(resource)
    }

    fn release_on_cancel(&mut self, resource: R) {
        spawn_release(&self.bracket.release, resource);
    }
}

impl<Item, A, R, E, F, Fut, ER> ConcurrentAcquire<Item> for SpawnOnCancel<A, R, F>
where
    A: AsyncFn(Item) -> Result<R, E>,
    F: Fn(R) -> Fut,
    Fut: Future<Output = Result<(), ER>> + Send + 'static,
    ER: Send + 'static,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = ER;

    #[inline]
    fn acquire(&self, item: Item) -> impl Future<Output = Result<R, E>> {
        (self.bracket.acquire)(item)
    }

    #[inline]
    fn release(&self, resource: R, _outcome: Outcome) -> impl Future<Output = Result<(), ER>> {
        (self.bracket.release)(resource)
    }

    fn release_on_cancel(&self, resource: R) {
        spawn_release(&self.bracket.release, resource);
    }
}
