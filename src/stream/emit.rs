//! A stream whose items are produced by an `async` block: the engine future puts
//! each item into a shared slot and pauses once, and the stream hands the item
//! out. Stable Rust has no async generators; this is the smallest safe stand-in.

use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::Stream;
use futures_util::stream::FusedStream;
use pin_project_lite::pin_project;

/// Where the engine leaves the next item for the stream to hand out.
#[derive(Debug)]
pub(super) struct Slot<Y> {
    item: Mutex<Option<Y>>,
}

impl<Y> Slot<Y> {
    /// Leaves `item` for the stream and pauses the engine until the consumer asks
    /// for the next one.
    pub(super) async fn put(&self, item: Y) {
        *self.lock() = Some(item);
        let mut paused = false;
        core::future::poll_fn(|_| {
            // No waker is needed: the stream returns the item at once, and polls
            // the engine again on the consumer's next `poll_next`.
            if paused {
                Poll::Ready(())
            } else {
                paused = true;
                Poll::Pending
            }
        })
        .await;
    }

    fn take(&self) -> Option<Y> {
        self.lock().take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Y>> {
        self.item.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pin_project! {
    /// The items an engine future puts into its [`Slot`], as a stream.
    pub(super) struct Emit<E, Y> {
        #[pin]
        engine: Option<E>,
        slot: Arc<Slot<Y>>,
    }
}

/// Makes the stream of the items that the future `engine(slot)` puts in `slot`.
pub(super) fn emit<Y, E: Future<Output = ()>>(
    engine: impl FnOnce(Arc<Slot<Y>>) -> E,
) -> Emit<E, Y> {
    let slot = Arc::new(Slot {
        item: Mutex::new(None),
    });
    Emit {
        engine: Some(engine(Arc::clone(&slot))),
        slot,
    }
}

impl<E: Future<Output = ()>, Y> Stream for Emit<E, Y> {
    type Item = Y;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Y>> {
        let mut this = self.project();
        let Some(engine) = this.engine.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        match engine.poll(cx) {
            Poll::Ready(()) => {
                this.engine.set(None);
                Poll::Ready(None)
            }
            Poll::Pending => this
                .slot
                .take()
                .map_or(Poll::Pending, |item| Poll::Ready(Some(item))),
        }
    }
}

impl<E: Future<Output = ()>, Y> FusedStream for Emit<E, Y> {
    fn is_terminated(&self) -> bool {
        self.engine.is_none()
    }
}
