use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use futures_util::Stream;
use pin_project_lite::pin_project;

use super::unwind::{Spend, Unwinding};

pin_project! {
    /// The stream of [`try_map_scoped`](crate::ScopedStreamExt::try_map_scoped):
    /// one scope — acquire, use, release — per item.
    ///
    /// `step(item, index)` makes the future of one item's scope, which owns its
    /// copies of the acquire and the body: a struct cannot lend its own fields to
    /// another of its fields without `unsafe`, and a future that owns what it
    /// calls is also one rustc can prove `Send`. The future is an `async` block,
    /// whose type has no name: `S` is the type of `step`.
    pub(super) struct TryMapScoped<St, S, Fut> {
        #[pin]
        stream: St,
        #[pin]
        in_flight: InFlight<Fut>,
        step: S,
        // The position in the input of the next item.
        index: usize,
    }
}

pin_project! {
    /// The item in flight, if any.
    ///
    /// Each change of state replaces the value (`project_replace`) rather than
    /// setting it (`Pin::set`): the replace tests the variant it leaves where it
    /// stands, so that leaving `Idle` costs nothing, where `set` calls the drop
    /// of the whole value — out of line for a large future — on every item.
    #[project = InFlightProj]
    #[project_replace = InFlightReplace]
    enum InFlight<Fut> {
        Idle,
        Running { #[pin] future: Fut },
        // A poll of the item's future panicked, and the future was dropped
        // while that panic unwound (see `super::unwind`).
        Spent,
    }
}

impl<Fut> Spend for InFlight<Fut> {
    fn spend(self: Pin<&mut Self>) {
        self.project_replace(Self::Spent);
    }
}

impl<St, S, Fut> TryMapScoped<St, S, Fut> {
    pub(super) fn new(stream: St, step: S) -> Self {
        Self {
            stream,
            in_flight: InFlight::Idle,
            step,
            index: 0,
        }
    }
}

impl<St, S, Fut> Stream for TryMapScoped<St, S, Fut>
where
    St: Stream,
    S: FnMut(St::Item, usize) -> Fut,
    Fut: Future,
{
    type Item = Fut::Output;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let mut this = self.project();
        if let InFlightProj::Idle = this.in_flight.as_mut().project() {
            let Some(item) = ready!(this.stream.as_mut().poll_next(cx)) else {
                return Poll::Ready(None);
            };
            // Counted before the scope runs, like the sync adapter's index.
            let index = *this.index;
            *this.index += 1;
            let future = (this.step)(item, index);
            this.in_flight
                .as_mut()
                .project_replace(InFlight::Running { future });
        }
        // A body's panic (resumed by the scope once its resource is released)
        // spends the item's future while it unwinds: polled again, the stream
        // then panics rather than resume a future that panicked.
        let polled =
            Unwinding(this.in_flight.as_mut()).poll(|in_flight| match in_flight.project() {
                InFlightProj::Running { future } => future.poll(cx),
                _ => panic!("`try_map_scoped` polled again after an item's body panicked"),
            });
        let result = ready!(polled);
        this.in_flight.project_replace(InFlight::Idle);
        Poll::Ready(Some(result))
    }

    /// One result per input item, plus the one in flight.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let in_flight = usize::from(matches!(self.in_flight, InFlight::Running { .. }));
        let (lower, upper) = self.stream.size_hint();
        (
            lower.saturating_add(in_flight),
            upper.and_then(|upper| upper.checked_add(in_flight)),
        )
    }
}

impl<St: fmt::Debug, S, Fut> fmt::Debug for TryMapScoped<St, S, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMapScoped")
            .field("stream", &self.stream)
            .field(
                "in_flight",
                &matches!(self.in_flight, InFlight::Running { .. }),
            )
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}
