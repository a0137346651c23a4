//! The streams of the concurrent mapping adapters: a way to stop them that
//! waits for every release, and a fail-fast collect built on it.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::cancel::Cancellation;
use super::concurrent::{Drive, InFlight};
use crate::{Failures, ScopedError};

/// The stream of a concurrent mapping adapter
/// ([`try_map_scoped_concurrent`](crate::ScopedStreamExt::try_map_scoped_concurrent),
/// [`try_map_scoped_unordered`](crate::ScopedStreamExt::try_map_scoped_unordered),
/// and, with the `tokio` feature, `try_map_scoped_spawned`):
/// a stream of `Result<T, ScopedError<A, U, R>>` that can be stopped without
/// abandoning a release.
///
/// Dropping such a stream early — as `try_collect` does at the first `Err` —
/// cancels the items in flight, but cannot *await* their async releases: they
/// are dropped (or handed to the runtime, with `spawn_on_cancel`, feature
/// `tokio`). To stop
/// and wait, [`stop`](ScopedStream::stop) the stream and poll it to its end, or
/// collect it with [`try_collect_all`](ScopedStream::try_collect_all), the
/// fail-fast collect that does both.
///
/// This trait is sealed: the crate's adapters implement it.
pub trait ScopedStream<T, A, U, R>:
    futures_util::Stream<Item = Result<T, ScopedError<A, U, R>>> + sealed::Sealed
{
    /// Stops the stream: it pulls no more items, and cancels those in flight —
    /// each body is dropped at its current `.await`, and its resource released,
    /// told [`Outcome::Cancelled`](crate::Outcome::Cancelled). Polled on, the
    /// stream then yields the results of the items it had pulled (those it
    /// cancelled as [`ScopedError::Cancelled`], with their release error if
    /// the release failed) and ends once every release has completed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::pin::pin;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let mut results = pin!(stream::iter(0..100).try_map_scoped_unordered(
    ///     4,
    ///     async |item: u32| Ok::<_, ()>(item),
    ///     async |item: &mut u32| Ok::<_, ()>(*item),
    /// ));
    /// assert!(results.next().await.is_some());
    /// results.as_mut().stop();
    /// // The items already pulled end (here: they had finished, or are
    /// // cancelled); nothing more is pulled.
    /// let rest: Vec<_> = results.collect().await;
    /// assert!(rest.len() < 100);
    /// # });
    /// ```
    fn stop(self: Pin<&mut Self>);

    /// Makes the stream fail-fast before its first poll: the first failing
    /// acquire or body cancels the items in flight at once (see
    /// [`try_collect_all`](ScopedStream::try_collect_all)).
    #[doc(hidden)]
    fn make_fail_fast(self: Pin<&mut Self>);

    /// Collects the values into `C`, fail-fast: the moment an item's acquire or
    /// body fails (or at the first `Err` of any kind) it acquires nothing more,
    /// cancels the items in flight (told
    /// [`Outcome::Cancelled`](crate::Outcome::Cancelled)), waits for every one
    /// of them to end — every release completed — and returns the first
    /// failure with every other failure of those items ([`Failures`]).
    ///
    /// Where `try_collect` returns at the first `Err` and drops the items in
    /// flight (their async releases abandoned), this returns only when nothing
    /// is left running, so a caller that retries at once does not race a
    /// pending close.
    ///
    /// # Errors
    ///
    /// [`Failures`]: the first failure, and the failures of the items that
    /// were in flight (a cancelled item only when its release failed).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::stream;
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let failures = stream::iter(["7", "x", "9"])
    ///     .try_map_scoped_concurrent(
    ///         2,
    ///         async |text: &str| text.parse::<u32>(),
    ///         async |number: &mut u32| Ok::<_, std::convert::Infallible>(*number * 2),
    ///     )
    ///     .try_collect_all::<Vec<u32>>()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(failures.index(), 1);
    /// assert!(matches!(failures.first(), ScopedError::Acquire { index: 1, .. }));
    /// # });
    /// ```
    fn try_collect_all<C>(self) -> TryCollectAll<Self, C, ScopedError<A, U, R>>
    where
        Self: Sized,
        C: Default + Extend<T>,
    {
        TryCollectAll {
            stream: self,
            collected: Some(C::default()),
            failures: None,
            armed: false,
        }
    }
}

pin_project! {
    /// The future of [`ScopedStream::try_collect_all`]: `Send` when the stream,
    /// the collection and the errors are (a plain struct, so that the bound
    /// holds for an adapter whose closures borrow, inside `tokio::spawn`).
    #[must_use = "futures do nothing unless polled"]
    pub struct TryCollectAll<St, C, E> {
        #[pin]
        stream: St,
        // Taken when the future completes.
        collected: Option<C>,
        failures: Option<Failures<E>>,
        // The stream was made fail-fast (before its first poll).
        armed: bool,
    }
}

impl<St, C, T, A, U, R> Future for TryCollectAll<St, C, ScopedError<A, U, R>>
where
    // The item type names `T`; `ScopedStream`'s parameters do not.
    St: futures_util::Stream<Item = Result<T, ScopedError<A, U, R>>> + ScopedStream<T, A, U, R>,
    C: Default + Extend<T>,
{
    type Output = Result<C, Failures<ScopedError<A, U, R>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.armed {
            this.stream.as_mut().make_fail_fast();
            *this.armed = true;
        }
        while let Some(result) = ready!(this.stream.as_mut().poll_next(cx)) {
            match result {
                Ok(value) if this.failures.is_none() => {
                    let collected = this.collected.as_mut().expect("polled after completion");
                    collected.extend(Some(value));
                }
                // A value finished after the failure: the caller gets the
                // failure, not a partial collection.
                Ok(_) => {}
                Err(error) => {
                    this.stream.as_mut().stop();
                    Failures::keep(this.failures, error, None);
                }
            }
        }
        Poll::Ready(match this.failures.take() {
            Some(failures) => Err(failures),
            None => Ok(this.collected.take().expect("polled after completion")),
        })
    }
}

impl<St: fmt::Debug, C, E> fmt::Debug for TryCollectAll<St, C, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryCollectAll")
            .field("stream", &self.stream)
            .field("failed", &self.failures.is_some())
            .finish_non_exhaustive()
    }
}

impl<St, Set, S, F, C, T, A, U, R> ScopedStream<T, A, U, R> for Drive<St, Set, S, C>
where
    C: Cancellation,
    St: futures_util::Stream,
    S: FnMut(St::Item, usize) -> F,
    F: Future<Output = Result<T, ScopedError<A, U, R>>>,
    Set: InFlight<F>,
{
    fn stop(self: Pin<&mut Self>) {
        self.cancel();
    }

    fn make_fail_fast(self: Pin<&mut Self>) {
        Drive::make_fail_fast(self);
    }
}

mod sealed {
    use crate::stream::concurrent::Drive;

    pub trait Sealed {}

    impl<St, Set, S, C> Sealed for Drive<St, Set, S, C> {}
}
