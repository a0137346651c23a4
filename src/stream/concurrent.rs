//! The engine of the concurrent adapters: pulls items while fewer than `limit`
//! are running, runs each item's scope, and yields each finished item — and on
//! a panic, cancels the others and waits for them before resuming it.
//!
//! The futures in flight need the acquire and the body. For the fail-fast
//! `for_each_scoped_concurrent` they borrow them from the adapter's `async`
//! block, beside the engine (only the compiler's state machines may borrow from
//! themselves without `unsafe`); the mapping streams give each item's future
//! its own copies.

use core::any::Any;
use core::cmp::Ordering;
use core::future::Future;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll, Waker, ready};
use std::collections::BinaryHeap;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use futures_util::stream::FuturesUnordered;
use futures_util::{Stream, StreamExt as _};
use pin_project_lite::pin_project;

use super::cancel::{Cancellation, Polling};
use crate::{Failures, ScopedError};

/// A panic caught in an item's future, to be resumed by the adapter.
type Panic = Box<dyn Any + Send>;

/// How many finished results may wait for their turn (input order) per slot of
/// the limit, in `try_map_scoped_concurrent`: they hold no resource, but they
/// hold memory, so beyond this the adapter acquires nothing until the item at
/// the head of the order finishes.
pub(super) const WAITING_PER_SLOT: usize = 32;

/// Checks a concurrency limit where the adapter is called, so that a limit of 0
/// panics at the caller's line rather than at the first poll.
#[track_caller]
pub(super) fn limit(limit: usize) -> NonZeroUsize {
    NonZeroUsize::new(limit)
        .expect("the concurrency limit must be at least 1: a limit of 0 would never acquire")
}

pin_project! {
    /// One item's future in a set in flight. Its panic becomes its output, so
    /// that the engine can cancel the other items and wait for them before it
    /// resumes the panic; and it can be dropped on its own, its drop's panic
    /// caught, so that one panicking drop does not leave the rest of the set
    /// undropped (a `FuturesUnordered` stops dropping at the first panic).
    struct Slot<F> {
        #[pin]
        future: Option<F>,
        // The item's position in the input.
        index: usize,
        // The waker of its last pending poll: the engine wakes it when the
        // items are cancelled, so that the item sees it (see `super::cancel`).
        waker: Option<Waker>,
    }
}

/// An item's output, or its index and its panic.
type Ended<T> = Result<T, (usize, Panic)>;

impl<F: Future> Future for Slot<F> {
    type Output = Ended<F::Output>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A slot is cleared only when its set is dropped: never polled after.
        let this = self.project();
        let Some(future) = this.future.as_pin_mut() else {
            return Poll::Pending;
        };
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => {
                // A set gives each of its futures one waker for good: cloned
                // once per item, not per poll.
                match this.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    waker => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Err(panic) => Poll::Ready(Err((*this.index, panic))),
        }
    }
}

impl<F> Slot<F> {
    fn new(future: F, index: usize) -> Self {
        Self {
            future: Some(future),
            index,
            waker: None,
        }
    }

    /// Wakes the item, if it is waiting.
    fn wake(self: Pin<&mut Self>) {
        if let Some(waker) = self.project().waker.take() {
            waker.wake();
        }
    }

    /// Drops the future, and returns the panic of its drop, if any.
    fn clear(self: Pin<&mut Self>) -> Option<Panic> {
        let mut future = self.project().future;
        catch_unwind(AssertUnwindSafe(|| future.set(None))).err()
    }
}

/// Drops every slot of `slots` on its own, then resumes the first panic of
/// those drops, unless a panic is already unwinding.
fn clear_all<'a, F: 'a>(slots: impl Iterator<Item = Pin<&'a mut Slot<F>>>) {
    let mut first_panic = None;
    for slot in slots {
        if let Some(panic) = slot.clear() {
            first_panic.get_or_insert(panic);
        }
    }
    if let Some(panic) = first_panic
        && !std::thread::panicking()
    {
        resume_unwind(panic);
    }
}

/// A set of item futures in flight, yielding their outputs (or panics).
pub(super) trait InFlight<F: Future>: Default {
    /// Starts `future`, the item at `index` (the next one in input order).
    fn push(&mut self, future: F, index: usize);
    /// Whether another item may start, with at most `limit` running.
    fn has_room(&self, limit: NonZeroUsize) -> bool;
    /// The next output in the set's order, or a panic at once; `None` when
    /// nothing is running.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Ended<F::Output>>>;
    /// Wakes every item waiting, so that each one sees the cancellation.
    fn wake_all(&mut self);
}

/// Which set to keep the items in flight in: it decides the order of the results.
pub(super) trait Order {
    type Set<F: Future>: InFlight<F>;
}

/// Results in completion order, as `buffer_unordered` gives them.
pub(super) enum CompletionOrder {}

impl Order for CompletionOrder {
    type Set<F: Future> = Unordered<F>;
}

/// Results in input order, as `buffered` gives them.
pub(super) enum InputOrder {}

impl Order for InputOrder {
    type Set<F: Future> = Ordered<F>;
}

/// The items in flight, their outputs in completion order.
pub(super) struct Unordered<F> {
    running: FuturesUnordered<Slot<F>>,
    // How many items run. Counted here because the engine asks before every
    // pull, and `FuturesUnordered::len` reads it through atomic loads of the
    // head of its task list: about 30 instructions an item (callgrind).
    count: usize,
}

impl<F> Default for Unordered<F> {
    fn default() -> Self {
        Self {
            running: FuturesUnordered::new(),
            count: 0,
        }
    }
}

impl<F: Future> InFlight<F> for Unordered<F> {
    fn push(&mut self, future: F, index: usize) {
        self.running.push(Slot::new(future, index));
        self.count += 1;
    }

    #[inline]
    fn has_room(&self, limit: NonZeroUsize) -> bool {
        self.count < limit.get()
    }

    #[inline]
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Ended<F::Output>>> {
        let polled = self.running.poll_next_unpin(cx);
        if let Poll::Ready(Some(_)) = polled {
            self.count -= 1;
        }
        polled
    }

    fn wake_all(&mut self) {
        Pin::new(&mut self.running)
            .iter_pin_mut()
            .for_each(Slot::wake);
    }
}

impl<F> Drop for Unordered<F> {
    fn drop(&mut self) {
        clear_all(Pin::new(&mut self.running).iter_pin_mut());
    }
}

pin_project! {
    /// An item's future, its output numbered with the item's position.
    struct Numbered<F> {
        #[pin]
        slot: Slot<F>,
    }
}

impl<F: Future> Future for Numbered<F> {
    type Output = (usize, Ended<F::Output>);

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let slot = self.project().slot;
        let index = slot.index;
        let output = ready!(slot.poll(cx));
        Poll::Ready((index, output))
    }
}

/// A finished item's output, waiting for its turn.
struct Waiting<T> {
    number: usize,
    output: T,
}

// Ordered by number, reversed: `BinaryHeap` is a max-heap, and the lowest
// number is next.
impl<T> Ord for Waiting<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.number.cmp(&self.number)
    }
}

impl<T> PartialOrd for Waiting<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> PartialEq for Waiting<T> {
    fn eq(&self, other: &Self) -> bool {
        self.number == other.number
    }
}

impl<T> Eq for Waiting<T> {}

/// The items in flight, their outputs in input order. Unlike `FuturesOrdered`,
/// a finished item waiting for its turn does not count as running: it has
/// released its resource, so it frees its slot of the limit. At most
/// [`WAITING_PER_SLOT`] × `limit` outputs wait.
pub(super) struct Ordered<F: Future> {
    running: FuturesUnordered<Numbered<F>>,
    // How many items run (see `Unordered::count`).
    count: usize,
    waiting: BinaryHeap<Waiting<F::Output>>,
    // The position of the next output to yield.
    yielded: usize,
}

impl<F: Future> Default for Ordered<F> {
    fn default() -> Self {
        Self {
            running: FuturesUnordered::new(),
            count: 0,
            waiting: BinaryHeap::new(),
            yielded: 0,
        }
    }
}

impl<F: Future> InFlight<F> for Ordered<F> {
    fn push(&mut self, future: F, index: usize) {
        self.running.push(Numbered {
            slot: Slot::new(future, index),
        });
        self.count += 1;
    }

    #[inline]
    fn has_room(&self, limit: NonZeroUsize) -> bool {
        self.count < limit.get()
            && self.waiting.len() < limit.get().saturating_mul(WAITING_PER_SLOT)
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Ended<F::Output>>> {
        loop {
            if self
                .waiting
                .peek()
                .is_some_and(|head| head.number == self.yielded)
            {
                let head = self.waiting.pop().expect("peeked");
                self.yielded += 1;
                return Poll::Ready(Some(Ok(head.output)));
            }
            // `None` once nothing runs: then nothing waits either, except
            // after a panic (whose item never takes its turn), when the
            // outputs left are dropped with the adapter.
            let Some((number, finished)) = ready!(self.running.poll_next_unpin(cx)) else {
                return Poll::Ready(None);
            };
            self.count -= 1;
            match finished {
                Ok(output) if number == self.yielded => {
                    self.yielded += 1;
                    return Poll::Ready(Some(Ok(output)));
                }
                Ok(output) => self.waiting.push(Waiting { number, output }),
                // A panic does not wait for its turn: the adapter cancels the
                // rest at once.
                Err(panic) => return Poll::Ready(Some(Err(panic))),
            }
        }
    }

    fn wake_all(&mut self) {
        Pin::new(&mut self.running)
            .iter_pin_mut()
            .for_each(|numbered| numbered.project().slot.wake());
    }
}

impl<F: Future> Drop for Ordered<F> {
    fn drop(&mut self) {
        clear_all(
            Pin::new(&mut self.running)
                .iter_pin_mut()
                .map(|numbered| numbered.project().slot),
        );
    }
}

pin_project! {
    /// Runs `start(item, index)` for every item of a stream, at most `limit`
    /// at a time, and yields each output in the order of the set `Set`
    /// ([`Order::Set`]) — as a `Stream`, or keeping only the failures
    /// ([`poll_failures`](Drive::poll_failures), for the for-each
    /// adapters); ends once the stream is exhausted (or the items were
    /// cancelled, see [`Drive::cancel`]) and every item in flight has finished
    /// — so every release has completed.
    ///
    /// `cancellation` says whether the items are cancelled (see
    /// `super::cancel`): then it pulls no more, and wakes the items that wait,
    /// so that they see it. When an item panics, the engine cancels the others,
    /// waits for every one of them to end (their releases awaited), and then
    /// resumes the first panic; polled again after that, it panics.
    ///
    /// A plain struct rather than an `async fn`: the compiler proves `Send` for a
    /// struct field by field, while for an `async fn` generic over closures that
    /// return borrowing futures it cannot (its "not general enough" limitation),
    /// and the adapters must be spawnable.
    pub(super) struct Drive<St, Set, S, C> {
        #[pin]
        stream: St,
        // The stream is exhausted: pull no more.
        pulled_all: bool,
        in_flight: Set,
        start: S,
        limit: NonZeroUsize,
        // The position in the input of the next item.
        index: usize,
        cancellation: C,
        // The cancellation was seen, and every item woken to see it.
        woken: bool,
        // The first panic of an item (with its index), resumed once no item is
        // left running.
        panic: Option<(usize, Panic)>,
        // The panic was resumed.
        poisoned: bool,
    }
}

/// The engine for `stream`, keeping the items in flight in the order `O`.
pub(super) fn drive<O, St, S, F, C>(
    stream: St,
    limit: NonZeroUsize,
    cancellation: C,
    start: S,
) -> Drive<St, O::Set<F>, S, C>
where
    O: Order,
    St: Stream,
    S: FnMut(St::Item, usize) -> F,
    F: Future,
    C: Cancellation,
{
    Drive {
        stream,
        pulled_all: false,
        in_flight: O::Set::<F>::default(),
        start,
        limit,
        index: 0,
        cancellation,
        woken: false,
        panic: None,
        poisoned: false,
    }
}

impl<St, Set, S, F, C> Drive<St, Set, S, C>
where
    St: Stream,
    S: FnMut(St::Item, usize) -> F,
    F: Future,
    Set: InFlight<F>,
    C: Cancellation,
{
    /// Pulls no more items, and cancels those in flight: each one's body is
    /// dropped at its current `.await` and its release awaited. The stream
    /// ends once they have all ended.
    pub(super) fn cancel(self: Pin<&mut Self>) {
        let this = self.project();
        this.cancellation.cancel();
        wake_once(this.in_flight, this.woken);
    }

    /// As [`cancel`](Self::cancel), because item `index` failed (a failure the
    /// item's scope did not report itself: a failed release).
    pub(super) fn fail(self: Pin<&mut Self>, index: usize) {
        let this = self.project();
        this.cancellation.fail(index);
        wake_once(this.in_flight, this.woken);
    }

    /// The index of the item whose failure cancelled the others, if any.
    pub(super) fn first_failure(&self) -> Option<usize> {
        self.cancellation.first_failure()
    }

    /// Makes the first failing acquire or body cancel the others.
    pub(super) fn make_fail_fast(self: Pin<&mut Self>) {
        self.project().cancellation.make_fail_fast();
    }

    /// The engine's loop: yields what `pick` picks of the next output, in the
    /// set's order. An output it does not pick is dropped, and the engine goes
    /// on to the next item without returning: a for-each engine returns only
    /// with a failure, or once it must wait.
    #[inline]
    fn poll_next_picked<Out>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut pick: impl FnMut(F::Output) -> Option<Out>,
    ) -> Poll<Option<Out>> {
        let mut this = self.project();
        // The items polled below are told whether they are cancelled, until
        // this poll returns (see `super::cancel`).
        let polling = Polling::enter(&*this.cancellation);
        // Once a panic was resumed, the items are cancelled and none is left:
        // a poll after it pulls nothing and reaches `None` below, where it
        // panics (checked there, not on every poll).
        loop {
            // Fill every free slot first, so that the cap is reached when the
            // stream allows it; once the items are cancelled, pull no more.
            let mut stream_pending = false;
            while this.in_flight.has_room(*this.limit)
                && !*this.pulled_all
                && !this.cancellation.is_cancelled()
            {
                match this.stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => {
                        let future = (this.start)(item, *this.index);
                        this.in_flight.push(future, *this.index);
                        *this.index += 1;
                    }
                    Poll::Ready(None) => *this.pulled_all = true,
                    Poll::Pending => {
                        stream_pending = true;
                        break;
                    }
                }
            }
            let polled = this.in_flight.poll_next(cx);
            // An item failed (fail-fast) or panicked in that poll and cancelled
            // the others: tell those polled from now on, and wake those that
            // wait, so that they see it. (The items of the spawned adapters are
            // tasks, woken by their own token.)
            if let Some(index) = polling.failure() {
                this.cancellation.fail(index);
                polling.tell(&*this.cancellation);
                wake_once(this.in_flight, this.woken);
            }
            let Poll::Ready(polled) = polled else {
                // Items finished without an output to give yet (in input
                // order, they wait for the head): their slots are free, so
                // fill them — the stream's waker is not set, nothing else
                // would wake this task for it.
                let refill = !stream_pending
                    && !*this.pulled_all
                    && !this.cancellation.is_cancelled()
                    && this.in_flight.has_room(*this.limit);
                if refill {
                    continue;
                }
                return Poll::Pending;
            };
            match polled {
                // While a panic waits for the other items, their outputs are
                // dropped: the caller gets the panic.
                Some(Ok(output)) => {
                    if this.panic.is_none()
                        && let Some(picked) = pick(output)
                    {
                        return Poll::Ready(Some(picked));
                    }
                }
                Some(Err((index, panic))) => {
                    this.cancellation.fail(index);
                    polling.tell(&*this.cancellation);
                    wake_once(this.in_flight, this.woken);
                    // The panic of the item that failed first (its own scope
                    // reported it, then awaited its release) wins over one
                    // that reached the engine sooner: say, the panic of a
                    // release it cancelled.
                    let first = this.cancellation.first_failure();
                    match this.panic {
                        Some((kept, _)) if first != Some(index) || first == Some(*kept) => {}
                        _ => *this.panic = Some((index, panic)),
                    }
                }
                None => {
                    assert!(
                        !*this.poisoned,
                        "a concurrent scoped adapter was polled after a panic it resumed"
                    );
                    if let Some((_, panic)) = this.panic.take() {
                        *this.poisoned = true;
                        resume_unwind(panic);
                    }
                    if *this.pulled_all || this.cancellation.is_cancelled() {
                        return Poll::Ready(None);
                    }
                    // Nothing in flight, and the stream is pending: its waker
                    // is set.
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Wakes every item of `in_flight` to see the cancellation, unless `woken`
/// says it was done (an item woken since would have seen it).
fn wake_once<F: Future>(in_flight: &mut impl InFlight<F>, woken: &mut bool) {
    if !*woken {
        *woken = true;
        in_flight.wake_all();
    }
}

impl<St, Set, S, F, C, T, A, U, R> Drive<St, Set, S, C>
where
    St: Stream,
    S: FnMut(St::Item, usize) -> F,
    F: Future<Output = Result<T, ScopedError<A, U, R>>>,
    Set: InFlight<F>,
    C: Cancellation,
{
    /// Runs every item to its end, keeping each failure in `failures`: the
    /// loop of the fail-fast for-each adapters. Each success is dropped on the
    /// way, without returning; a failure the items did not report themselves
    /// (a failed release) cancels the others too.
    pub(super) fn poll_failures(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        failures: &mut Option<Failures<ScopedError<A, U, R>>>,
    ) -> Poll<()> {
        while let Some(error) = ready!(self.as_mut().poll_next_picked(cx, Result::err)) {
            self.as_mut().fail(error.index());
            Failures::keep(failures, error, self.first_failure());
        }
        Poll::Ready(())
    }
}

impl<St, Set, S, F, C> Stream for Drive<St, Set, S, C>
where
    St: Stream,
    S: FnMut(St::Item, usize) -> F,
    F: Future,
    Set: InFlight<F>,
    C: Cancellation,
{
    type Item = F::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        self.poll_next_picked(cx, Some)
    }
}
