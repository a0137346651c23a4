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

use core::future::Future;
use core::num::NonZeroUsize;
use core::pin::pin;
use core::sync::atomic::{AtomicBool, Ordering};
use std::panic::resume_unwind;
use std::sync::Arc;

use futures_util::{Stream, StreamExt as _};
use tokio::runtime::Handle;
use tokio::task::JoinError;
use tokio_util::task::AbortOnDropHandle;

use super::concurrent::{self, CompletionOrder, InputOrder, Order};
use super::scope::{AsyncScopeError, by_release, scope};
use crate::spawn::{Sending, SpawnAcquire, SpawnBody, call_body};

/// The output of a task, or how it failed to give one.
type Joined<Out> = Result<Out, JoinError>;

/// The set of task handles in flight, in the order `O`.
type Tasks<O, Out> = <O as Order>::Set<AbortOnDropHandle<Out>>;

/// Spawns `task(item, index)` on the runtime found at the first item, for
/// every item, at most `limit` at a time, and yields each task's output in the
/// order `O`.
// The engine's type is spelled out, not `impl Stream`, so that the fail-fast
// adapter can call `Drive::stop`; its closure has no name to factor out.
#[allow(clippy::type_complexity)]
fn spawn_each<O, St, S, F>(
    stream: St,
    limit: NonZeroUsize,
    mut task: S,
) -> concurrent::Drive<
    St,
    Tasks<O, F::Output>,
    impl FnMut(St::Item, usize) -> AbortOnDropHandle<F::Output>,
>
where
    O: Order,
    St: Stream,
    S: FnMut(St::Item, usize) -> F,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut runtime = None;
    concurrent::drive::<O, _, _, _>(stream, limit, move |item, index| {
        let runtime: &Handle = runtime.get_or_insert_with(current_runtime);
        let task = task(item, index);
        // Spawned items log to the caller's subscriber, not the worker's default.
        #[cfg(feature = "tracing")]
        let task = tracing::instrument::WithSubscriber::with_current_subscriber(task);
        AbortOnDropHandle::new(runtime.spawn(task))
    })
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
fn output<Out>(joined: Joined<Out>) -> Result<Out, Box<dyn std::any::Any + Send>> {
    match joined {
        Ok(output) => Ok(output),
        Err(error) => match error.try_into_panic() {
            Ok(panic) => Err(panic),
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
) -> impl Stream<Item = Result<T, AsyncScopeError<A, St::Item, EU>>>
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
    macro_rules! build {
        ($path:ident) => {
            spawn_each::<InputOrder, _, _, _>(stream, limit, move |item, index| {
                let (acquire, body) = (Sending(acquire.clone()), body.clone());
                async move {
                    let body = sending_body!(body);
                    scope!($path, acquire, body, item, index)
                }
            })
        };
    }
    by_release!(A::RELEASE_IS_DROP, build)
        .map(|joined| output(joined).unwrap_or_else(|panic| resume_unwind(panic)))
}

pub(super) fn for_each<St, A, B, T, EU>(
    stream: St,
    limit: NonZeroUsize,
    acquire: A,
    body: B,
) -> impl Future<Output = Result<(), AsyncScopeError<A, St::Item, EU>>>
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
    // Set at the first failure: the tasks that have not acquired yet skip
    // their item.
    let failed = Arc::new(AtomicBool::new(false));
    macro_rules! run {
        ($path:ident) => {{
            let start = {
                let failed = Arc::clone(&failed);
                move |item, index| {
                    let (acquire, body) = (Sending(acquire.clone()), body.clone());
                    let failed = Arc::clone(&failed);
                    async move {
                        if failed.load(Ordering::Relaxed) {
                            return None;
                        }
                        let body = sending_body!(body, drop);
                        let result = scope!($path, acquire, body, item, index);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        Some(result)
                    }
                }
            };
            async move {
                let mut tasks = pin!(spawn_each::<CompletionOrder, _, _, _>(stream, limit, start));
                let (mut first_error, mut first_panic) = (None, None);
                while let Some(joined) = tasks.next().await {
                    match output(joined) {
                        Ok(None | Some(Ok(()))) => continue,
                        Ok(Some(Err(error))) => {
                            first_error.get_or_insert(error);
                        }
                        Err(panic) => {
                            first_panic.get_or_insert(panic);
                        }
                    }
                    failed.store(true, Ordering::Relaxed);
                    tasks.as_mut().stop();
                }
                if let Some(panic) = first_panic {
                    resume_unwind(panic);
                }
                first_error.map_or(Ok(()), Err)
            }
        }};
    }
    by_release!(A::RELEASE_IS_DROP, run)
}
