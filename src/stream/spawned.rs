//! The engine of the spawned adapters (feature `tokio`): each item's scope runs
//! as a task of the caller's tokio runtime, so that it makes progress — and
//! releases its resource — while the consumer of the results is busy elsewhere,
//! and so that the items of one adapter run in parallel on a multi-thread
//! runtime.
//!
//! It is the concurrent engine ([`concurrent::drive`]) with each item's future
//! being the handle of a task: at most `limit` tasks exist, the set of handles
//! gives the order (input or completion), and a handle aborts its task when it
//! is dropped (tokio-util's [`AbortOnDropHandle`]), so that dropping the adapter
//! cancels its tasks; their resources are then released by `Drop` (or
//! [`AsyncAcquire::release_on_cancel`](crate::AsyncAcquire::release_on_cancel))
//! where the runtime drops the task — also when the runtime itself shuts down.
//!
//! `tokio::spawn` needs a `Send + 'static` future: [`SpawnAcquire`] and
//! [`SpawnBody`] are the bounds that let a generic adapter prove it (see
//! `crate::spawn`).

use core::future::{Future, poll_fn};
use core::num::NonZeroUsize;
use core::pin::pin;
use std::panic::resume_unwind;

use futures_util::future::Map;
use futures_util::{FutureExt as _, Stream};
use tokio::runtime::Handle;
use tokio::task::JoinError;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use super::ScopedStream;
use super::cancel::Siblings;
use super::concurrent::{self, CompletionOrder, InputOrder, Order};
use super::scope::{AsyncScopeError, scope};
use crate::Failures;
use crate::spawn::{Sending, SpawnAcquire, SpawnBody, call_body};

/// The output of a task, or how it failed to give one.
type Joined<Out> = Result<Out, JoinError>;

/// A task's handle, resuming the task's panic where it is awaited.
type Task<Out> = Map<AbortOnDropHandle<Out>, fn(Joined<Out>) -> Out>;

/// Spawns `task(item, index, siblings)` on the runtime found at the first
/// item, for every item, at most `limit` at a time, and yields each task's
/// output in the order `O`. A task's panic is resumed in the engine, which
/// cancels the other tasks and waits for them first.
// The engine's type is spelled out, not `impl Stream`, so that the fail-fast
// adapter can call `Drive::fail`; its closure has no name to factor out.
#[allow(clippy::type_complexity)]
fn spawn_each<O, St, S, F>(
    stream: St,
    limit: NonZeroUsize,
    fail_fast: bool,
    tracker: Option<TaskTracker>,
    mut task: S,
) -> concurrent::Drive<
    St,
    <O as Order>::Set<Task<F::Output>>,
    impl FnMut(St::Item, usize) -> Task<F::Output>,
    Siblings,
>
where
    O: Order,
    St: Stream,
    S: FnMut(St::Item, usize, &Siblings) -> F,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut runtime = None;
    // Shared by the engine and every task: the tasks run on any thread.
    let siblings = Siblings::new(fail_fast);
    concurrent::drive::<O, _, _, Task<F::Output>, _>(
        stream,
        limit,
        siblings.clone(),
        move |item, index| {
            let runtime: &Handle = runtime.get_or_insert_with(current_runtime);
            let task = task(item, index, &siblings);
            // Spawned items log to the caller's subscriber, not the worker's default.
            #[cfg(feature = "tracing")]
            let task = tracing::instrument::WithSubscriber::with_current_subscriber(task);
            let handle = match &tracker {
                // Tracked until the runtime drops the task: an aborted task
                // hands its release over (tracked too) only then.
                Some(tracker) => runtime.spawn(tracker.track_future(task)),
                None => runtime.spawn(task),
            };
            AbortOnDropHandle::new(handle).map(output as fn(_) -> _)
        },
    )
}

#[track_caller]
fn current_runtime() -> Handle {
    Handle::try_current().unwrap_or_else(|_| {
        panic!(
            "the spawned adapters (`try_map_scoped_spawned`, `for_each_scoped_spawned`) \
             must be polled inside a tokio runtime"
        )
    })
}

/// A task's output, or its panic resumed; a task is cancelled only by its
/// handle's drop or by the runtime's shutdown, and the adapter drops no handle
/// it still polls.
fn output<Out>(joined: Joined<Out>) -> Out {
    match joined {
        Ok(output) => output,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => resume_unwind(panic),
            Err(_cancelled) => {
                panic!(
                    "a spawned adapter's task was cancelled: is the tokio runtime shutting down?"
                )
            }
        },
    }
}

/// The body of a spawned item, as an async closure the item scope can call: it
/// calls `body` through [`SpawnBody`], whose future is `Send`. With `drop`, the
/// body's value is dropped as soon as it is made, so that it need not be `Send`.
macro_rules! sending_body {
    ($body:ident) => {
        async move |resource: &mut _| call_body($body, resource).await
    };
    ($body:ident, drop) => {
        async move |resource: &mut _| call_body($body, resource).await.map(drop)
    };
}

pub(super) fn try_map<St, A, B, T, EU>(
    stream: St,
    limit: NonZeroUsize,
    acquire: A,
    body: B,
) -> impl ScopedStream<T, A::Error, EU, A::ReleaseError>
where
    St: Stream,
    St::Item: Send + 'static,
    A: SpawnAcquire<St::Item>,
    A::Resource: Send,
    A::Error: Send + 'static,
    A::ReleaseError: Send + 'static,
    B: for<'r> SpawnBody<'r, A::Resource, T, EU> + Clone + Send + Sync + 'static,
    T: Send + 'static,
    EU: Send + 'static,
{
    spawn_each::<InputOrder, _, _, _>(
        stream,
        limit,
        false,
        acquire.task_tracker().cloned(),
        move |item, index, siblings: &Siblings| {
            let (acquire, body, siblings) =
                (Sending(acquire.clone()), body.clone(), siblings.clone());
            async move {
                let body = sending_body!(body);
                scope!(guarded, acquire, body, item, index, cancel: siblings)
            }
        },
    )
}

pub(super) fn for_each<St, A, B, T, EU>(
    stream: St,
    limit: NonZeroUsize,
    acquire: A,
    body: B,
) -> impl Future<Output = Result<(), Failures<AsyncScopeError<A, St::Item, EU>>>>
where
    St: Stream,
    St::Item: Send + 'static,
    A: SpawnAcquire<St::Item>,
    A::Resource: Send,
    A::Error: Send + 'static,
    A::ReleaseError: Send + 'static,
    B: for<'r> SpawnBody<'r, A::Resource, T, EU> + Clone + Send + Sync + 'static,
    EU: Send + 'static,
{
    let tracker = acquire.task_tracker().cloned();
    // Fail-fast: the task whose acquire or body fails cancels the
    // others (and the engine pulls no more) before its release.
    let start = move |item, index, siblings: &Siblings| {
        let (acquire, body, siblings) = (Sending(acquire.clone()), body.clone(), siblings.clone());
        async move {
            let body = sending_body!(body, drop);
            scope!(guarded, acquire, body, item, index, cancel: siblings)
        }
    };
    async move {
        let mut tasks = pin!(spawn_each::<CompletionOrder, _, _, _>(
            stream, limit, true, tracker, start
        ));
        let mut failures = None;
        poll_fn(|cx| tasks.as_mut().poll_failures(cx, &mut failures)).await;
        failures.map_or(Ok(()), Err)
    }
}
