//! The engine of the spawned adapters (feature `tokio`): each item's scope runs
//! as a tokio task, so that it makes progress — and releases its resource —
//! while the consumer of the results is busy elsewhere.
//!
//! # Why a worker thread, and not `tokio::spawn`
//!
//! `tokio::spawn` needs a `Send` future, and a generic adapter cannot prove that
//! an item's scope is `Send`: the futures of an `AsyncFn` body and of a
//! [`ConcurrentAcquire`](crate::ConcurrentAcquire)'s `acquire` have no name on
//! stable Rust, so no bound can say they are `Send` (that needs return type
//! notation, `B(..): Send`, still unstable). What *is* `Send` is what an item's
//! scope is built from: the shared acquire and body (`Send + Sync`), the item
//! and the index. So the adapter sends those to a thread of its own, which
//! builds each item's scope there and runs it as a local task
//! (`tokio::task::spawn_local`) of a [`LocalSet`] that it drives with the
//! caller's runtime ([`Handle::block_on`]), so the scopes use that runtime's
//! timers and I/O. A scope never leaves that thread, so it need not be `Send`;
//! its result and a body's panic come back through a oneshot channel.
//!
//! The thread is started at the first item and ends when the adapter ends or is
//! dropped. On a drop — abort on drop — no scope is polled again (one being
//! polled at that moment finishes that poll), and the thread drops the
//! [`LocalSet`] with the scopes still in flight, which releases their
//! resources by `Drop` or
//! [`release_on_cancel`](crate::ConcurrentAcquire::release_on_cancel) (inside
//! the runtime, so that a `.spawn_on_cancel()` release can be spawned).

use core::future::{Future, poll_fn};
use core::mem;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::pin::pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, ready};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread;

use futures_util::{FutureExt as _, Stream, StreamExt as _};
use pin_project_lite::pin_project;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::LocalSet;

use super::concurrent::{CompletionOrder, InFlight, InputOrder, Order};
use super::scope::{ConcurrentScopeError, by_release, scope};
use crate::ConcurrentAcquire;

/// What an item's task hands back: its scope's result, or its body's panic.
pub(super) type Finished<Out> = thread::Result<Out>;

/// The receiving end of one item's result.
type Reply<Out> = oneshot::Receiver<Finished<Out>>;

/// One item sent to the worker thread.
struct Job<Item, Out> {
    item: Item,
    index: usize,
    reply: oneshot::Sender<Finished<Out>>,
}

/// The worker thread, from the adapter's side.
enum Worker<S, Item, Out> {
    /// Not started yet: no item has been pulled. Holds what builds each item's
    /// scope, to be moved to the thread. `None` once the adapter has ended.
    Idle(Option<S>),
    /// Started: items go to it through this channel.
    Running(Jobs<Item, Out>),
    /// Told that no more items come: it is dropping what it holds — the
    /// acquire and the body, with everything they captured — and says so
    /// through this channel when it is done.
    Closing(oneshot::Receiver<()>),
}

/// The adapter's end of the worker thread. Dropping it — the adapter ended or
/// was dropped — ends the thread, and stops the tasks at once: from then on no
/// item's scope is polled again (one being polled on the worker thread at that
/// moment finishes its poll), and the worker drops them all as soon as it sees
/// the channel closed.
struct Jobs<Item, Out> {
    sender: mpsc::UnboundedSender<Job<Item, Out>>,
    cancelled: Arc<AtomicBool>,
    // Fires once the worker has dropped the acquire, the body and its tasks.
    // Taken by `close`; a dropped adapter does not wait for it.
    closed: Option<oneshot::Receiver<()>>,
}

impl<Item, Out> Jobs<Item, Out> {
    /// Tells the worker that no more items come — once every task has
    /// finished — and returns what says when it has let go of everything.
    fn close(mut self) -> Option<oneshot::Receiver<()>> {
        self.closed.take()
    }
}

impl<Item, Out> Drop for Jobs<Item, Out> {
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Release);
    }
}

pin_project! {
    /// Runs `start(item, index)` for every item of a stream as a task on the
    /// worker thread, at most `limit` at a time, and yields each task's
    /// [`Finished`] in the order of the set `Set` ([`Order::Set`]); ends once the
    /// stream is exhausted (or [`stop`](Spawned::stop) was called) and every task
    /// has finished — so every release has completed.
    ///
    /// Items are pulled only while it is polled; the tasks run whether it is
    /// polled or not. A finished task keeps its slot until its result is
    /// yielded, so at most `limit` results wait for the consumer.
    pub(super) struct Spawned<St: Stream, Set, S, Out> {
        #[pin]
        stream: St,
        // The stream is exhausted, or `stop` was called: pull no more.
        pulled_all: bool,
        in_flight: Set,
        worker: Worker<S, St::Item, Out>,
        limit: NonZeroUsize,
        // The position in the input of the next item.
        index: usize,
    }
}

/// The engine keeping its items in flight in the order `O`.
type SpawnedIn<O, St, S, Out> = Spawned<St, <O as Order>::Set<Reply<Out>>, S, Out>;

/// The engine for `stream`, keeping the items in flight in the order `O`.
pub(super) fn spawned<O, St, S, F>(
    stream: St,
    limit: NonZeroUsize,
    start: S,
) -> SpawnedIn<O, St, S, F::Output>
where
    O: Order,
    St: Stream,
    St::Item: Send + 'static,
    S: FnMut(St::Item, usize) -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    Spawned {
        stream,
        pulled_all: false,
        in_flight: Default::default(),
        worker: Worker::Idle(Some(start)),
        limit,
        index: 0,
    }
}

impl<St: Stream, Set, S, Out> Spawned<St, Set, S, Out> {
    /// Pulls no more items; the tasks in flight still run to their end.
    pub(super) fn stop(self: Pin<&mut Self>) {
        *self.project().pulled_all = true;
    }
}

impl<St, Set, S, F> Stream for Spawned<St, Set, S, F::Output>
where
    St: Stream,
    St::Item: Send + 'static,
    S: FnMut(St::Item, usize) -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
    Set: InFlight<Reply<F::Output>>,
{
    type Item = Finished<F::Output>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        // Fill every free slot first, so that the cap is reached when the stream
        // allows it.
        while !*this.pulled_all && this.in_flight.len() < this.limit.get() {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let (reply, result) = oneshot::channel();
                    let job = Job {
                        item,
                        index: *this.index,
                        reply,
                    };
                    // The worker ends only once the sender is dropped — or if
                    // the runtime it drives is shut down under it.
                    if this.worker.jobs().sender.send(job).is_err() {
                        panic!(
                            "a spawned adapter's worker thread has stopped: \
                             is the tokio runtime shutting down?"
                        );
                    }
                    this.in_flight.push(result);
                    *this.index += 1;
                }
                Poll::Ready(None) => *this.pulled_all = true,
                Poll::Pending => break,
            }
        }
        match Pin::new(&mut *this.in_flight).poll_next(cx) {
            Poll::Ready(Some(Ok(finished))) => Poll::Ready(Some(finished)),
            // The task was dropped before it finished: only the worker's end
            // does that, and the worker ends only when the adapter does — or
            // when the runtime it drives is shut down under it.
            Poll::Ready(Some(Err(oneshot::error::RecvError { .. }))) => {
                panic!("a spawned adapter's task was dropped: is the tokio runtime shutting down?")
            }
            Poll::Ready(None) if *this.pulled_all => {
                // Done: end the worker thread now rather than when the adapter
                // is dropped, and end the stream only once it has dropped the
                // acquire and the body — a pool or a connection they own is
                // closed by then, not behind the caller's back.
                match mem::replace(this.worker, Worker::Idle(None)) {
                    Worker::Running(jobs) => {
                        if let Some(closed) = jobs.close() {
                            *this.worker = Worker::Closing(closed);
                        }
                    }
                    // Closing already (polled again while it lets go), or
                    // never started.
                    other => *this.worker = other,
                }
                if let Worker::Closing(closed) = this.worker {
                    // An error means the worker is gone: it let go too.
                    let _ = ready!(Pin::new(closed).poll(cx));
                    *this.worker = Worker::Idle(None);
                }
                Poll::Ready(None)
            }
            // Nothing in flight, and the stream is pending: its waker is set.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    /// One result per input item still to come, plus those in flight.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let in_flight = self.in_flight.len();
        let (lower, upper) = if self.pulled_all {
            (0, Some(0))
        } else {
            self.stream.size_hint()
        };
        (
            lower.saturating_add(in_flight),
            upper.and_then(|upper| upper.checked_add(in_flight)),
        )
    }
}

impl<S, Item, Out> Worker<S, Item, Out> {
    /// The channel to the worker thread, started at the first call.
    fn jobs<F>(&mut self) -> &Jobs<Item, Out>
    where
        Item: Send + 'static,
        S: FnMut(Item, usize) -> F + Send + 'static,
        F: Future<Output = Out> + 'static,
        Out: Send + 'static,
    {
        if let Self::Idle(start) = self {
            let start = start
                .take()
                .expect("a spawned adapter pulled an item after it ended");
            *self = Self::Running(start_worker(start));
        }
        match self {
            Self::Running(jobs) => jobs,
            Self::Idle(_) | Self::Closing(_) => unreachable!("the worker was just started"),
        }
    }
}

/// Starts the worker thread on the current runtime; returns its job channel.
fn start_worker<Item, Out, S, F>(start: S) -> Jobs<Item, Out>
where
    Item: Send + 'static,
    S: FnMut(Item, usize) -> F + Send + 'static,
    F: Future<Output = Out> + 'static,
    Out: Send + 'static,
{
    let Ok(runtime) = Handle::try_current() else {
        panic!(
            "the spawned adapters (`try_map_scoped_spawned`, `for_each_scoped_spawned`) \
             must be polled inside a tokio runtime"
        );
    };
    let (sender, received) = mpsc::unbounded_channel();
    let (closing, closed) = oneshot::channel();
    let cancelled = Arc::new(AtomicBool::new(false));
    // The caller's subscriber and span, so that the items' spans and events
    // (and the body's own) go where the caller's do, nested in its span.
    #[cfg(feature = "tracing")]
    let (dispatch, caller) = (
        tracing::dispatcher::get_default(Clone::clone),
        tracing::Span::current(),
    );
    let worker = {
        let cancelled = Arc::clone(&cancelled);
        move || {
            #[cfg(feature = "tracing")]
            let _subscriber = tracing::dispatcher::set_default(&dispatch);
            #[cfg(feature = "tracing")]
            let _caller = caller.enter();
            run_worker(&runtime, received, &cancelled, start);
            // The acquire, the body and the tasks are dropped: say so (to an
            // adapter that is still there to hear it).
            let _ = closing.send(());
        }
    };
    thread::Builder::new()
        .name("loopscope-spawned".into())
        .spawn(worker)
        .expect("failed to spawn the worker thread of a spawned adapter");
    Jobs {
        sender,
        cancelled,
        closed: Some(closed),
    }
}

/// The worker thread: runs each job's scope as a local task until the adapter
/// drops its sender, then drops the tasks still in flight.
fn run_worker<Item, Out, S, F>(
    runtime: &Handle,
    mut jobs: mpsc::UnboundedReceiver<Job<Item, Out>>,
    cancelled: &Arc<AtomicBool>,
    mut start: S,
) where
    S: FnMut(Item, usize) -> F,
    F: Future<Output = Out> + 'static,
    Out: 'static,
{
    let tasks = LocalSet::new();
    runtime.block_on(tasks.run_until(async {
        while let Some(Job { item, index, reply }) = jobs.recv().await {
            // The panic of a body is caught here, after the scope has released
            // its resource, and resumed by the adapter.
            let scope = AssertUnwindSafe(start(item, index)).catch_unwind();
            let cancelled = Arc::clone(cancelled);
            // Detached: the reply carries the result. If the adapter is gone,
            // nobody wants it.
            drop(tokio::task::spawn_local(async move {
                let mut scope = pin!(scope);
                let finished = poll_fn(|cx| {
                    if cancelled.load(Ordering::Acquire) {
                        // Dropped below, as if aborted.
                        return Poll::Ready(None);
                    }
                    scope.as_mut().poll(cx).map(Some)
                })
                .await;
                if let Some(finished) = finished {
                    drop(reply.send(finished));
                }
            }));
        }
    }));
    // The adapter was dropped (or has ended, and then no task is left): drop the
    // tasks in flight, inside the runtime, so that a `release_on_cancel` can
    // spawn its release there; then what builds the scopes — the acquire and
    // the body.
    let _runtime = runtime.enter();
    drop(tasks);
    drop(start);
}

/// `try_map_scoped_spawned`: each item's scope a task, results in input order.
pub(super) fn try_map<St, A, B, T, EU>(
    stream: St,
    limit: NonZeroUsize,
    acquire: A,
    body: B,
) -> impl Stream<Item = Result<T, ConcurrentScopeError<A, St::Item, EU>>>
where
    St: Stream,
    St::Item: Send + 'static,
    A: ConcurrentAcquire<St::Item> + Send + Sync + 'static,
    B: AsyncFn(&mut A::Resource) -> Result<T, EU> + Send + Sync + 'static,
    T: Send + 'static,
    EU: Send + 'static,
    A::Error: Send + 'static,
    A::ReleaseError: Send + 'static,
{
    // One `Arc` per adapter, cloned into each item's scope on the worker thread.
    let shared = Arc::new((acquire, body));
    macro_rules! build {
        ($path:ident) => {
            spawned::<InputOrder, _, _, _>(stream, limit, move |item, index| {
                let shared = Arc::clone(&shared);
                async move {
                    let (acquire, body) = &*shared;
                    scope!($path, acquire, (*body), item, index)
                }
            })
        };
    }
    // A body's panic resumes in the consumer, out of `poll_next`.
    by_release!(A::RELEASE_IS_DROP, build)
        .map(|finished| finished.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
}

/// `for_each_scoped_spawned`: each item's scope a task; fail-fast, returning
/// once every task has finished.
pub(super) fn for_each<St, A, B, T, EU>(
    stream: St,
    limit: NonZeroUsize,
    acquire: A,
    body: B,
) -> impl Future<Output = Result<(), ConcurrentScopeError<A, St::Item, EU>>>
where
    St: Stream,
    St::Item: Send + 'static,
    A: ConcurrentAcquire<St::Item> + Send + Sync + 'static,
    B: AsyncFn(&mut A::Resource) -> Result<T, EU> + Send + Sync + 'static,
    EU: Send + 'static,
    A::Error: Send + 'static,
    A::ReleaseError: Send + 'static,
{
    let shared = Arc::new((acquire, body));
    // Set at the first failure, by its task or by the adapter: the tasks that
    // start after it skip their item, so nothing is acquired after it.
    let failed = Arc::new(AtomicBool::new(false));
    macro_rules! run {
        ($path:ident) => {{
            let start = {
                let failed = Arc::clone(&failed);
                move |item, index| {
                    let (shared, failed) = (Arc::clone(&shared), Arc::clone(&failed));
                    async move {
                        if failed.load(Ordering::Relaxed) {
                            return None;
                        }
                        let (acquire, body) = &*shared;
                        // The value is dropped here, so that it need not be `Send`.
                        let result = scope!($path, acquire, (*body), item, index).map(drop);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        Some(result)
                    }
                }
            };
            async move {
                let mut tasks = pin!(spawned::<CompletionOrder, _, _, _>(stream, limit, start));
                let (mut first_error, mut first_panic) = (None, None);
                while let Some(finished) = tasks.next().await {
                    match finished {
                        Ok(None | Some(Ok(()))) => continue,
                        Ok(Some(Err(error))) => {
                            first_error.get_or_insert(error);
                        }
                        Err(panic) => {
                            first_panic.get_or_insert(panic);
                        }
                    }
                    // Stop pulling; the tasks in flight run to their end, so
                    // that every release has completed when this returns.
                    failed.store(true, Ordering::Relaxed);
                    tasks.as_mut().stop();
                }
                // A panic is a bug: it wins over an error.
                if let Some(panic) = first_panic {
                    std::panic::resume_unwind(panic);
                }
                first_error.map_or(Ok(()), Err)
            }
        }};
    }
    by_release!(A::RELEASE_IS_DROP, run)
}
