//! Async brackets that lean on the tokio runtime (feature `tokio`): a release
//! spawned on cancellation, and a deadline for a release.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use pin_project_lite::pin_project;
use tokio_util::task::TaskTracker;

use crate::async_acquire::sealed::Sealed;
use crate::{AsyncAcquire, AsyncRelease, AsyncWithRelease, Outcome, SpawnAcquire};

#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl<A, R, F> AsyncWithRelease<A, R, F> {
    /// When the adapter is dropped mid-item (a timeout, a `select!`), spawns the
    /// async release of the resource the body held on the current tokio runtime,
    /// so that the `shutdown().await` or `sync_all().await` still happens.
    ///
    /// A release already *running* when the adapter is dropped (the body had
    /// ended, the `flush().await` was under way) is handed over too: its future,
    /// which owns the resource, is spawned as it stands and completes, rather
    /// than being cut off mid-way. To wait for every release handed over this
    /// way — so that a retry does not race a pending close — use
    /// [`spawn_on_cancel_in`](Self::spawn_on_cancel_in) with a `TaskTracker`.
    ///
    /// Outside a runtime (or while it shuts down) the resource is released by its
    /// `Drop`, as without this option. A release given by `.release_with(..)` is
    /// told [`Outcome::Cancelled`] when the body was cancelled. A handed-over
    /// release's error has no caller to go to: with the `tracing` feature it is
    /// reported as a `release failed` event (`WARN`, target `loopscope`), and
    /// otherwise dropped.
    ///
    /// The release future must be `Send + 'static`, as any spawned task. Each
    /// release future is boxed (one allocation per item), so that a running one
    /// can be moved to the runtime.
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
        SpawnOnCancel {
            bracket: self,
            tracker: None,
        }
    }

    /// As [`spawn_on_cancel`](Self::spawn_on_cancel), with every release handed
    /// to the runtime tracked by `tracker` (tokio-util's
    /// [`TaskTracker`]), so that the caller can
    /// wait for them: `tracker.close(); tracker.wait().await` returns once every
    /// release a cancelled adapter handed over has completed.
    ///
    /// The pattern is a retry after a timeout on an exclusive resource (a single
    /// database connection, a lock file): the timeout drops the adapter, its
    /// releases are handed over, and the retry must not start before they have
    /// closed what they hold. See the guide,
    /// [Retrying after a timeout](crate::guide#retrying-after-a-timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::Duration;
    /// use futures::stream;
    /// use loopscope::prelude::*;
    /// use tokio_util::task::TaskTracker;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let busy = Arc::new(AtomicBool::new(false)); // one exclusive connection
    /// let tracker = TaskTracker::new();
    /// let connection = async_bracket({
    ///     let busy = Arc::clone(&busy);
    ///     async move |_job: u32| {
    ///         assert!(!busy.swap(true, Ordering::SeqCst), "the connection is busy");
    ///         Ok::<_, ()>(())
    ///     }
    /// })
    /// .release({
    ///     let busy = Arc::clone(&busy);
    ///     move |()| {
    ///         let busy = Arc::clone(&busy);
    ///         async move {
    ///             tokio::time::sleep(Duration::from_millis(20)).await; // a slow close
    ///             busy.store(false, Ordering::SeqCst);
    ///             Ok::<_, ()>(())
    ///         }
    ///     }
    /// })
    /// .spawn_on_cancel_in(&tracker);
    /// let stuck = async |_: &mut ()| {
    ///     tokio::time::sleep(Duration::from_secs(3600)).await;
    ///     Ok::<_, ()>(())
    /// };
    /// let first = stream::iter([1]).for_each_scoped(connection.clone(), stuck);
    /// assert!(tokio::time::timeout(Duration::from_millis(10), first).await.is_err());
    /// // Wait for the handed-over close before retrying.
    /// tracker.close();
    /// tracker.wait().await;
    /// tracker.reopen();
    /// assert!(!busy.load(Ordering::SeqCst));
    /// # }
    /// ```
    pub fn spawn_on_cancel_in(self, tracker: &TaskTracker) -> SpawnOnCancel<A, R, F> {
        SpawnOnCancel {
            bracket: self,
            tracker: Some(tracker.clone()),
        }
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
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[must_use = "a bracket does nothing until it is given to a scoped adapter"]
pub struct SpawnOnCancel<A, R, F> {
    bracket: AsyncWithRelease<A, R, F>,
    // Tracks the releases handed to the runtime, for `spawn_on_cancel_in`.
    tracker: Option<TaskTracker>,
}

impl<A, R, F> SpawnOnCancel<A, R, F> {
    /// Gives each release a deadline, as
    /// [`AsyncWithRelease::release_timeout`] does — the spawned release too:
    /// `.spawn_on_cancel().release_timeout(d)` is
    /// `.release_timeout(d).spawn_on_cancel()`.
    ///
    /// # Panics
    ///
    /// As [`AsyncWithRelease::release_timeout`]: a release started outside a
    /// tokio runtime with the time driver enabled panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::ReleaseTimeoutError;
    /// use loopscope::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let error = stream::iter([7])
    ///     .for_each_scoped(
    ///         async_bracket(async |id: u32| Ok::<_, ()>(id))
    ///             .release(async |_id: u32| std::future::pending::<Result<(), ()>>().await)
    ///             .spawn_on_cancel()
    ///             .release_timeout(Duration::from_secs(1)),
    ///         async |_id| Ok::<_, ()>(()),
    ///     )
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(error.release_error(), Some(ReleaseTimeoutError::TimedOut { .. })));
    /// # }
    /// ```
    pub fn release_timeout(self, after: Duration) -> SpawnOnCancel<A, R, ReleaseTimeout<F>> {
        SpawnOnCancel {
            bracket: self.bracket.release_timeout(after),
            tracker: self.tracker,
        }
    }
}

impl<A: Clone, R, F: Clone> Clone for SpawnOnCancel<A, R, F> {
    fn clone(&self) -> Self {
        Self {
            bracket: self.bracket.clone(),
            tracker: self.tracker.clone(),
        }
    }
}

impl<A, R, F> fmt::Debug for SpawnOnCancel<A, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnOnCancel").finish_non_exhaustive()
    }
}

/// Spawns `release` on the current runtime, tracked by `tracker` if given, or
/// drops it (and the resource it owns) when there is no runtime. Its error has
/// no caller left: the `tracing` feature reports it.
fn hand_over<Fut, E>(release: Fut, tracker: Option<&TaskTracker>)
where
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let release = async move {
        let released = release.await;
        #[cfg(feature = "tracing")]
        if released.is_err() {
            tracing::warn!(
                target: "loopscope",
                "release failed (a release handed to the runtime by a cancelled adapter)"
            );
        }
        drop(released);
    };
    // The task is detached: the tracker, if any, is how the caller awaits it.
    drop(match tracker {
        Some(tracker) => runtime.spawn(tracker.track_future(release)),
        None => runtime.spawn(release),
    });
}

/// The release future of a [`SpawnOnCancel`] bracket: if it is dropped before
/// it completes — its adapter was dropped mid-release — the rest of it is
/// handed to the runtime, as it stands, rather than cut off.
struct HandOff<Fut: Future<Output = Result<(), E>> + Send + 'static, E: Send + 'static> {
    // Boxed, so that a release already polled can still be moved to a task.
    release: Option<Pin<Box<Fut>>>,
    tracker: Option<TaskTracker>,
}

impl<Fut, E> Future for HandOff<Fut, E>
where
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    type Output = Result<(), E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let release = self
            .release
            .as_mut()
            .expect("a release polled after it completed");
        let released = ready!(release.as_mut().poll(cx));
        self.release = None;
        Poll::Ready(released)
    }
}

impl<Fut, E> Drop for HandOff<Fut, E>
where
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            hand_over(release, self.tracker.as_ref());
        }
    }
}

impl<A, R, F> SpawnOnCancel<A, R, F> {
    /// The release of `resource`, handed to the runtime if it is dropped
    /// before it completes.
    fn release_handing_off(self, resource: R, outcome: Outcome) -> HandOff<F::Future, F::Error>
    where
        F: AsyncRelease<R>,
        F::Future: Send + 'static,
        F::Error: Send + 'static,
    {
        HandOff {
            release: Some(Box::pin(self.bracket.release.release(resource, outcome))),
            tracker: self.tracker,
        }
    }
}

impl<Item, A, R, E, F> AsyncAcquire<Item> for SpawnOnCancel<A, R, F>
where
    A: AsyncFnOnce(Item) -> Result<R, E> + Clone,
    F: AsyncRelease<R> + Clone,
    F::Future: Send + 'static,
    F::Error: Send + 'static,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = F::Error;

    #[inline]
    fn acquire(self, item: Item) -> impl Future<Output = Result<R, E>> {
        self.bracket.acquire(item)
    }

    #[inline]
    fn release(self, resource: R, outcome: Outcome) -> impl Future<Output = Result<(), F::Error>> {
        self.release_handing_off(resource, outcome)
    }

    fn release_on_cancel(self, resource: R) {
        let release = self.bracket.release.release(resource, Outcome::Cancelled);
        hand_over(release, self.tracker.as_ref());
    }
}

impl<Item, A, R, E, F, Fut> SpawnAcquire<Item> for SpawnOnCancel<A, R, F>
where
    A: AsyncFnOnce(Item) -> Result<R, E> + FnOnce(Item) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send,
    F: AsyncRelease<R> + Clone + Send + Sync + 'static,
    F::Future: Send + 'static,
    F::Error: Send + 'static,
    R: 'static,
{
    #[inline]
    fn acquire_send(self, item: Item) -> impl Future<Output = Result<R, E>> + Send {
        self.bracket.acquire_send(item)
    }

    #[inline]
    fn release_send(
        self,
        resource: R,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), F::Error>> + Send {
        self.release_handing_off(resource, outcome)
    }

    fn task_tracker(&self) -> Option<&TaskTracker> {
        self.tracker.as_ref()
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl<A, R, F> AsyncWithRelease<A, R, F> {
    /// Gives each release a deadline: a release that has not finished `after`
    /// it started is abandoned — its future is dropped, and the resource with it
    /// — and reported as [`ReleaseTimeoutError::TimedOut`], so that the item
    /// ends and its slot under the limit is free for the next one.
    ///
    /// A release that finishes in time reports its own error as
    /// [`ReleaseTimeoutError::Failed`]. Combine with
    /// [`spawn_on_cancel`](AsyncWithRelease::spawn_on_cancel) by calling this
    /// first: `.release(..).release_timeout(d).spawn_on_cancel()`; the spawned
    /// release then has the deadline too.
    ///
    /// # Panics
    ///
    /// The deadline is a tokio timer: a release started outside a tokio runtime
    /// with the time driver enabled panics, as `tokio::time::timeout` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::ReleaseTimeoutError;
    /// use loopscope::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let results: Vec<_> = stream::iter([1, 2])
    ///     .try_map_scoped(
    ///         async_bracket(async |id: u32| Ok::<_, ()>(id))
    ///             .release(async |id: u32| {
    ///                 if id == 1 {
    ///                     std::future::pending::<()>().await; // a peer that never answers
    ///                 }
    ///                 Ok::<_, ()>(())
    ///             })
    ///             .release_timeout(Duration::from_secs(5)),
    ///         async |id| Ok::<_, ()>(*id),
    ///     )
    ///     .collect()
    ///     .await;
    /// let error = results[0].as_ref().unwrap_err();
    /// assert_eq!(
    ///     error.release_error(),
    ///     Some(&ReleaseTimeoutError::TimedOut { after: Duration::from_secs(5) }),
    /// );
    /// assert_eq!(results[1], Ok(2)); // the next item went on
    /// # }
    /// ```
    pub fn release_timeout(self, after: Duration) -> AsyncWithRelease<A, R, ReleaseTimeout<F>> {
        AsyncWithRelease {
            acquire: self.acquire,
            release: ReleaseTimeout {
                release: self.release,
                after,
            },
            resource: core::marker::PhantomData,
        }
    }
}

/// A release with a deadline; made by
/// [`AsyncWithRelease::release_timeout`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::stream::{self, StreamExt};
/// use loopscope::{AsyncWithRelease, ReleaseTimeout};
/// use loopscope::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let connections: AsyncWithRelease<_, u32, ReleaseTimeout<_>> =
///     async_bracket(async |port: u32| Ok::<_, std::io::Error>(port))
///         .release(async |_port: u32| Ok::<_, std::io::Error>(())) // quick: in time
///         .release_timeout(Duration::from_secs(2));
/// stream::iter([80, 443])
///     .for_each_scoped_concurrent(2, connections, async |_port| Ok::<_, std::io::Error>(()))
///     .await?;
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Clone)]
pub struct ReleaseTimeout<F> {
    release: F,
    after: Duration,
}

impl<F> fmt::Debug for ReleaseTimeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleaseTimeout")
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl<R, F: AsyncRelease<R>> Sealed<R> for ReleaseTimeout<F> {}

impl<R, F: AsyncRelease<R>> AsyncRelease<R> for ReleaseTimeout<F> {
    type Error = ReleaseTimeoutError<F::Error>;
    type Future = TimedRelease<F::Future>;

    fn release(&self, resource: R, outcome: Outcome) -> Self::Future {
        TimedRelease {
            release: tokio::time::timeout(self.after, self.release.release(resource, outcome)),
            after: self.after,
        }
    }
}

pin_project! {
    /// The future of a release with a deadline: the [`AsyncRelease::Future`] of
    /// [`ReleaseTimeout`].
    ///
    /// # Examples
    ///
    /// A stuck release reaches `fn main() -> io::Result<()>` as
    /// [`ErrorKind::TimedOut`](std::io::ErrorKind::TimedOut):
    ///
    /// ```
    /// use std::io;
    /// use std::time::Duration;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// async fn run() -> io::Result<()> {
    ///     stream::iter([1])
    ///         .for_each_scoped(
    ///             async_bracket(async |id: u32| Ok::<_, io::Error>(id))
    ///                 .release(async |_id: u32| std::future::pending::<io::Result<()>>().await)
    ///                 .release_timeout(Duration::from_secs(1)),
    ///             async |_id| Ok::<_, io::Error>(()),
    ///         )
    ///         .await?;
    ///     Ok(())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// assert_eq!(run().await.unwrap_err().kind(), io::ErrorKind::TimedOut);
    /// # }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    #[must_use = "futures do nothing unless polled"]
    pub struct TimedRelease<Fut> {
        #[pin]
        release: tokio::time::Timeout<Fut>,
        after: Duration,
    }
}

impl<Fut> fmt::Debug for TimedRelease<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimedRelease")
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl<Fut, E> Future for TimedRelease<Fut>
where
    Fut: Future<Output = Result<(), E>>,
{
    type Output = Result<(), ReleaseTimeoutError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(match ready!(this.release.poll(cx)) {
            Ok(released) => released.map_err(ReleaseTimeoutError::Failed),
            Err(_elapsed) => Err(ReleaseTimeoutError::TimedOut { after: *this.after }),
        })
    }
}

/// The error of a release with a deadline
/// ([`AsyncWithRelease::release_timeout`]).
///
/// # Examples
///
/// ```
/// use std::io;
/// use std::time::Duration;
/// use loopscope::ReleaseTimeoutError;
///
/// let stuck: ReleaseTimeoutError<io::Error> =
///     ReleaseTimeoutError::TimedOut { after: Duration::from_secs(5) };
/// assert_eq!(stuck.to_string(), "the release did not finish within 5s; the resource was dropped");
/// // `?` in an `io::Result` function keeps it apart as `ErrorKind::TimedOut`.
/// assert_eq!(io::Error::from(stuck).kind(), io::ErrorKind::TimedOut);
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseTimeoutError<E> {
    /// The release finished in time, with this error. Its message and source
    /// are the error's own (transparent).
    Failed(E),
    /// The release did not finish within `after`: it was abandoned, and the
    /// resource dropped.
    TimedOut {
        /// The deadline that passed.
        after: Duration,
    },
}

impl<E: fmt::Display + 'static> fmt::Display for ReleaseTimeoutError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(source) => fmt::Display::fmt(&crate::cause::Message(source), f),
            Self::TimedOut { after } => write!(
                f,
                "the release did not finish within {after:?}; the resource was dropped"
            ),
        }
    }
}

/// An [`Error`](std::error::Error) whenever `E` is `Debug + Display + 'static`,
/// as [`ScopedError`](crate::ScopedError#messages-and-) is.
impl<E: fmt::Debug + fmt::Display + 'static> std::error::Error for ReleaseTimeoutError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed(source) => crate::cause::source_below(source),
            Self::TimedOut { .. } => None,
        }
    }
}

/// `Failed` gives back the release's own error; `TimedOut` becomes an error of
/// kind [`TimedOut`](std::io::ErrorKind::TimedOut).
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl From<ReleaseTimeoutError<std::io::Error>> for std::io::Error {
    fn from(error: ReleaseTimeoutError<std::io::Error>) -> Self {
        match error {
            ReleaseTimeoutError::Failed(source) => source,
            timed_out @ ReleaseTimeoutError::TimedOut { .. } => {
                std::io::Error::new(std::io::ErrorKind::TimedOut, timed_out)
            }
        }
    }
}
