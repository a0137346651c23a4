//! The engine of the concurrent adapters: pulls items while fewer than `limit`
//! are in flight, runs each item's scope, and yields each finished item.
//!
//! The futures in flight borrow the acquire and the body. Both live in the
//! adapter's `async` block beside the engine, because only the compiler's state
//! machines may borrow from themselves without `unsafe`.

use core::future::{Future, poll_fn};
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_util::Stream;
use futures_util::stream::{FuturesOrdered, FuturesUnordered};

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

/// Runs `start(item, index)` for every item of a stream, at most `limit` at a
/// time, and yields each output in the order `O` keeps; ends once the stream is
/// exhausted (or [`stop`](Drive::stop) was called) and every item in flight has
/// finished — so every release has completed.
///
/// A plain struct rather than an `async fn`: the compiler proves `Send` for a
/// struct field by field, while for an `async fn` generic over closures that
/// return borrowing futures it cannot (its "not general enough" limitation), and
/// the adapters must be spawnable.
pub(super) struct Drive<'s, O: Order, St, S, F: Future> {
    /// `None` once the stream is exhausted, or once [`stop`](Drive::stop) was called.
    pending_items: Option<Pin<&'s mut St>>,
    in_flight: O::Set<F>,
    start: S,
    limit: NonZeroUsize,
    /// The position in the input of the next item.
    index: usize,
}

impl<'s, O, St, S, F> Drive<'s, O, St, S, F>
where
    O: Order,
    St: Stream,
    S: FnMut(St::Item, usize) -> F,
    F: Future,
{
    pub(super) fn new(stream: Pin<&'s mut St>, limit: NonZeroUsize, start: S) -> Self {
        Self {
            pending_items: Some(stream),
            in_flight: O::Set::<F>::default(),
            start,
            limit,
            index: 0,
        }
    }

    /// Pulls no more items; those in flight still run to their end.
    pub(super) fn stop(&mut self) {
        self.pending_items = None;
    }

    /// The next finished item, or `None` when there is nothing left to run.
    pub(super) fn poll_next_finished(&mut self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        // Fill every free slot first, so that the cap is reached when the stream
        // allows it.
        while self.in_flight.len() < self.limit.get() {
            let Some(stream) = self.pending_items.as_mut() else {
                break;
            };
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    self.in_flight.push((self.start)(item, self.index));
                    self.index += 1;
                }
                Poll::Ready(None) => self.pending_items = None,
                Poll::Pending => break,
            }
        }
        match Pin::new(&mut self.in_flight).poll_next(cx) {
            Poll::Ready(Some(output)) => Poll::Ready(Some(output)),
            // Nothing in flight and nothing more to pull: done.
            Poll::Ready(None) if self.pending_items.is_none() => Poll::Ready(None),
            // Nothing in flight, and the stream is pending: its waker is set.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    /// The next finished item, or `None` when there is nothing left to run.
    pub(super) async fn next_finished(&mut self) -> Option<F::Output> {
        poll_fn(|cx| self.poll_next_finished(cx)).await
    }
}
