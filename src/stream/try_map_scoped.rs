use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use futures_util::Stream;
use pin_project_lite::pin_project;

use super::unwind::Unwinding;

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
        // The future of the item in flight, if any: `Some(None)` once a
        // panic of its poll has spent it.
        #[pin]
        in_flight: Option<Option<Fut>>,
        step: S,
        // The position in the input of the next item.
        index: usize,
    }
}

impl<St, S, Fut> TryMapScoped<St, S, Fut> {
    pub(super) fn new(stream: St, step: S) -> Self {
        Self {
            stream,
            in_flight: None,
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
        if this.in_flight.is_none() {
            let Some(item) = ready!(this.stream.as_mut().poll_next(cx)) else {
                return Poll::Ready(None);
            };
            // Counted before the scope runs, like the sync adapter's index.
            let index = *this.index;
            *this.index += 1;
            this.in_flight.set(Some(Some((this.step)(item, index))));
        }
        let Some(in_flight) = this.in_flight.as_mut().as_pin_mut() else {
            unreachable!("an item in flight: it was just set")
        };
        // A body's panic (resumed by the scope once its resource is released)
        // spends the item's future while it unwinds: polled again, the stream
        // then panics rather than resume a future that panicked.
        let polled = Unwinding(in_flight).poll(
            cx,
            "`try_map_scoped` polled again after an item's body panicked",
        );
        let result = ready!(polled);
        this.in_flight.set(None);
        Poll::Ready(Some(result))
    }

    /// One result per input item, plus the one in flight.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let in_flight = usize::from(self.in_flight.as_ref().is_some_and(Option::is_some));
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
                &self.in_flight.as_ref().is_some_and(Option::is_some),
            )
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}
