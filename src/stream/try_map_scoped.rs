use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use futures_util::Stream;
use pin_project_lite::pin_project;

pin_project! {
    /// The stream of [`try_map_scoped`](crate::ScopedStreamExt::try_map_scoped):
    /// one scope — acquire, use, release — per item.
    ///
    /// The future of the item in flight borrows the acquire and the body across
    /// its `.await`s, and a struct cannot lend its own fields to another of its
    /// fields without `unsafe`. So that future *owns* them while the item runs
    /// and hands them back when it ends: `parts` holds them between items. The
    /// future is an `async` block, whose type has no name: `step` is the closure
    /// `(parts, item, index) -> Fut` that makes it, and `S` its type.
    pub(super) struct TryMapScoped<St, A, B, S, Fut> {
        #[pin]
        stream: St,
        parts: Option<(A, B)>,
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

impl<St, A, B, S, Fut> TryMapScoped<St, A, B, S, Fut> {
    pub(super) fn new(stream: St, acquire: A, body: B, step: S) -> Self {
        Self {
            stream,
            parts: Some((acquire, body)),
            in_flight: None,
            running: false,
            step,
            index: 0,
        }
    }
}

impl<St, A, B, S, Fut, Y> Stream for TryMapScoped<St, A, B, S, Fut>
where
    St: Stream,
    S: FnMut((A, B), St::Item, usize) -> Fut,
    Fut: Future<Output = (Y, (A, B))>,
{
    type Item = Y;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Y>> {
        let mut this = self.project();
        if !*this.running {
            let Some(item) = ready!(this.stream.as_mut().poll_next(cx)) else {
                return Poll::Ready(None);
            };
            let parts = this
                .parts
                .take()
                .expect("`try_map_scoped` polled again after an item's body panicked");
            // Counted before the scope runs, like the sync adapter's index.
            let index = *this.index;
            *this.index += 1;
            this.in_flight.set(Some((this.step)(parts, item, index)));
            *this.running = true;
        }
        let in_flight = this
            .in_flight
            .as_mut()
            .as_pin_mut()
            .expect("an item is in flight");
        let (result, parts) = ready!(in_flight.poll(cx));
        *this.running = false;
        *this.parts = Some(parts);
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

impl<St: fmt::Debug, A, B, S, Fut> fmt::Debug for TryMapScoped<St, A, B, S, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMapScoped")
            .field("stream", &self.stream)
            .field("in_flight", &self.running)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}
