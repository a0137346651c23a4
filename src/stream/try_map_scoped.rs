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
        // The future of the item in flight, or of the last one once it has
        // finished (`running` is then false): leaving a finished future in place
        // until the next item replaces it saves dropping it twice per item.
        #[pin]
        in_flight: Option<Fut>,
        running: bool,
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
            running: false,
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

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let mut this = self.project();
        if !*this.running {
            let Some(item) = ready!(this.stream.as_mut().poll_next(cx)) else {
                return Poll::Ready(None);
            };
            // Counted before the scope runs, like the sync adapter's index.
            let index = *this.index;
            *this.index += 1;
            this.in_flight.set(Some((this.step)(item, index)));
            *this.running = true;
        }
        // A body's panic (resumed by the scope once its resource is released)
        // drops the spent item future while it unwinds: polled again, the
        // stream then finds no future in flight.
        let polled = Unwinding(this.in_flight.as_mut()).poll(
            cx,
            "`try_map_scoped` polled again after an item's body panicked",
        );
        let result = ready!(polled);
        *this.running = false;
        Poll::Ready(Some(result))
    }

    /// One result per input item, plus the one in flight.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let in_flight = usize::from(self.running);
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
            .field("in_flight", &self.running)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}
