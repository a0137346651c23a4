//! The engine of the concurrent adapters: pulls items while fewer than `limit`
//! are in flight, runs each item's scope, and hands each finished item to a sink.
//!
//! The engine is an `async fn`, not a hand-written `poll` state machine: the
//! futures in flight borrow the acquire and the body, which live in the same
//! async block, and only the compiler's state machines may borrow from
//! themselves without `unsafe`.

use core::future::{Future, poll_fn};
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::Poll;

use futures_util::Stream;
use futures_util::stream::{FuturesOrdered, FuturesUnordered};

/// Checks a concurrency limit where the adapter is called, so that a limit of 0
/// panics at the caller's line rather than at the first poll.
#[track_caller]
pub(super) fn limit(limit: usize) -> NonZeroUsize {
    NonZeroUsize::new(limit)
        .expect("the concurrency limit must be at least 1: a limit of 0 would never acquire")
}

/// Whether the engine goes on pulling items after a finished one.
pub(super) enum Flow {
    Continue,
    /// Pull no more items; the items in flight still run to their end.
    Stop,
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

/// Runs `start(item, index)` for every item of `stream`, at most `limit` at a
/// time, and gives each output to `sink` in the order `O` keeps. Returns once the
/// stream is exhausted (or `sink` said [`Flow::Stop`]) and every item in flight
/// has finished — so every release has completed.
pub(super) async fn drive<O, St, F, Y>(
    stream: Pin<&mut St>,
    limit: NonZeroUsize,
    mut start: impl FnMut(St::Item, usize) -> F,
    mut sink: impl AsyncFnMut(Y) -> Flow,
) where
    O: Order,
    St: Stream,
    F: Future<Output = Y>,
{
    let mut in_flight = O::Set::<F>::default();
    // `None` once the stream is exhausted, or once the sink said stop.
    let mut pending_items = Some(stream);
    let mut index = 0;
    loop {
        let finished = poll_fn(|cx| {
            // Fill every free slot first, so that the cap is reached when the
            // stream allows it.
            while in_flight.len() < limit.get() {
                let Some(stream) = pending_items.as_mut() else {
                    break;
                };
                match stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => {
                        in_flight.push(start(item, index));
                        index += 1;
                    }
                    Poll::Ready(None) => pending_items = None,
                    Poll::Pending => break,
                }
            }
            match Pin::new(&mut in_flight).poll_next(cx) {
                Poll::Ready(Some(output)) => Poll::Ready(Some(output)),
                // Nothing in flight and nothing more to pull: done.
                Poll::Ready(None) if pending_items.is_none() => Poll::Ready(None),
                // Nothing in flight, and the stream is pending: its waker is set.
                Poll::Ready(None) | Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match finished {
            None => return,
            Some(output) => {
                if let Flow::Stop = sink(output).await {
                    pending_items = None;
                }
            }
        }
    }
}
