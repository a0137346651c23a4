//! The engine of the concurrent adapters: pulls items while fewer than `limit`
//! are in flight, runs each item's scope, and yields each finished item.
//!
//! The futures in flight need the acquire and the body. For the fail-fast
//! `for_each_scoped_concurrent` they borrow them from the adapter's `async`
//! block, beside the engine (only the compiler's state machines may borrow from
//! themselves without `unsafe`); the mapping streams share them through one
//! `Arc`, cloned into each item's future.

use core::future::Future;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_util::Stream;
use futures_util::stream::{FuturesOrdered, FuturesUnordered};
use pin_project_lite::pin_project;

/// Checks a concurrency limit where the adapter is called, so that a limit of 0
/// panics at the caller's line rather than at the first poll.
#[track_caller]
pub(super) fn limit(limit: usize) -> NonZeroUsize {
    NonZeroUsize::new(limit)
        .expect("the concurrency limit must be at least 1: a limit of 0 would never acquire")
}

/// A set of futures in flight, yielding their outputs.
pub(super) trait InFlight<F: Future>: Stream<Item = F::Output> + Unpin + Default {
    fn push(&mut self, future: F);
    fn len(&self) -> usize;
}

impl<F: Future> InFlight<F> for FuturesUnordered<F> {
    fn push(&mut self, future: F) {
        FuturesUnordered::push(self, future);
    }
    fn len(&self) -> usize {
        FuturesUnordered::len(self)
    }
}

impl<F: Future> InFlight<F> for FuturesOrdered<F> {
    fn push(&mut self, future: F) {
        self.push_back(future);
    }
    fn len(&self) -> usize {
        FuturesOrdered::len(self)
    }
}

/// Which set to keep the items in flight in: it decides the order of the results.
pub(super) trait Order {
    type Set<F: Future>: InFlight<F>;
}

/// Results in input order (`FuturesOrdered`, as `buffered` uses).
pub(super) enum InputOrder {}

impl Order for InputOrder {
    type Set<F: Future> = FuturesOrdered<F>;
}

/// Results in completion order (`FuturesUnordered`, as `buffer_unordered` uses).
pub(super) enum CompletionOrder {}

impl Order for CompletionOrder {
    type Set<F: Future> = FuturesUnordered<F>;
}

pin_project! {
    /// Runs `start(item, index)` for every item of a stream, at most `limit` at
    /// a time, and yields each output in the order of the set `Set`
    /// ([`Order::Set`]); ends once the stream is exhausted (or
    /// [`stop`](Drive::stop) was called) and every item in flight has finished —
    /// so every release has completed.
    ///
    /// A plain struct rather than an `async fn`: the compiler proves `Send` for a
    /// struct field by field, while for an `async fn` generic over closures that
    /// return borrowing futures it cannot (its "not general enough" limitation),
    /// and the adapters must be spawnable.
    pub(super) struct Drive<St, Set, S> {
        #[pin]
        stream: St,
        // The stream is exhausted, or `stop` was called: pull no more.
        pulled_all: bool,
        in_flight: Set,
        start: S,
        limit: NonZeroUsize,
        // The position in the input of the next item.
        index: usize,
    }
}

/// The engine for `stream`, keeping the items in flight in the order `O`.
pub(super) fn drive<O, St, S, F>(
    stream: St,
    limit: NonZeroUsize,
    start: S,
) -> Drive<St, O::Set<F>, S>
where
    O: Order,
    St: Stream,
    S: FnMut(St::Item, usize) -> F,
    F: Future,
{
    Drive {
        stream,
        pulled_all: false,
        in_flight: O::Set::<F>::default(),
        start,
        limit,
        index: 0,
    }
}

impl<St, Set, S> Drive<St, Set, S> {
    /// Pulls no more items; those in flight still run to their end.
    pub(super) fn stop(self: Pin<&mut Self>) {
        *self.project().pulled_all = true;
    }
}

impl<St, Set, S, F> Stream for Drive<St, Set, S>
where
    St: Stream,
    S: FnMut(St::Item, usize) -> F,
    F: Future,
    Set: InFlight<F>,
{
    type Item = F::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let mut this = self.project();
        // Fill every free slot first, so that the cap is reached when the stream
        // allows it.
        while !*this.pulled_all && this.in_flight.len() < this.limit.get() {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.in_flight.push((this.start)(item, *this.index));
                    *this.index += 1;
                }
                Poll::Ready(None) => *this.pulled_all = true,
                Poll::Pending => break,
            }
        }
        match Pin::new(this.in_flight).poll_next(cx) {
            Poll::Ready(Some(output)) => Poll::Ready(Some(output)),
            // Nothing in flight and nothing more to pull: done.
            Poll::Ready(None) if *this.pulled_all => Poll::Ready(None),
            // Nothing in flight, and the stream is pending: its waker is set.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}
