//! The fair baselines: each adapter's guarantees, written by hand with
//! futures-util (and, for the spawned adapter, tokio's `JoinSet` and
//! `Semaphore`), calling the same closures and returning the same
//! [`ScopedError`] as the adapter it is measured against.
//!
//! What each one guarantees, as its adapter does:
//!
//! - the item's index, counted from 0, in every error, which is the adapter's
//!   `ScopedError` (`Acquire`, `Use` with the release error kept when both
//!   failed, `Release`);
//! - released by `Drop` (the `*_scoped` functions without a `release`
//!   argument): the resource dropped at the end of each item, on every path;
//! - with an async release (`bracket_*`, the concurrent and spawned ones): the
//!   body runs under `catch_unwind`, and the release is awaited after `Ok`,
//!   after `Err` and after a panic, which then resumes (`resume_unwind`);
//! - concurrent map (`try_map_concurrent`, `try_map_unordered`):
//!   `enumerate().map(..).buffered(n)` (or `buffer_unordered(n)`), one
//!   `Result` per item; after a body's panic nothing more is acquired, the
//!   items in flight finish with their releases (a quiescent drain), and then
//!   the panic resumes;
//! - concurrent for-each (`for_each_concurrent`, `for_each_spawned`): a
//!   quiescent `for_each_concurrent` (`JoinSet` + `Semaphore` for the spawned
//!   one): after the first failure — an acquire or a body, before its release;
//!   or a release — nothing more is acquired, the items in flight finish and
//!   are released, and every error is kept ([`Failures`]: the first, and a
//!   `Vec` of the others). A panic stops it the same way, then resumes.
//!
//! Where they differ from the adapters, on purpose (the adapters' extra work
//! on failure paths is part of what they cost, not of what the baselines must
//! match on the success path being measured): the concurrent baselines let the
//! items in flight run to their end rather than cancelling them at their
//! `.await`, so they never report `ScopedError::Cancelled`; and the `Drop`
//! baselines let a body's panic unwind through the resource's `Drop` without
//! catching it (the adapters catch it, so that a `Drop` that panics too cannot
//! abort the process).
//!
//! loopscope's `Failures` has no public constructor: the concurrent baselines
//! return this module's [`Failures`], the same two fields.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, resume_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use futures::{FutureExt as _, Stream, StreamExt as _};
use loopscope::ScopedError;

/// The error of the baselines whose resource is released by `Drop`.
pub type DropError<EA, EU> = ScopedError<EA, EU, Infallible>;

/// A panic's payload, caught to be resumed later.
pub type Panic = Box<dyn Any + Send>;

/// One item of a concurrent map: its result, `None` if it was skipped (after
/// a panic), or its panic.
pub type ItemResult<T, EA, EU, ER> = Result<Option<Result<T, ScopedError<EA, EU, ER>>>, Panic>;

/// Every failure of a fail-fast concurrent baseline: the first, and the others
/// in the order they were seen (as loopscope's `Failures`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failures<E> {
    pub first: E,
    pub others: Vec<E>,
}

impl<E> Failures<E> {
    /// Keeps `error`: the first one, or one of the others.
    pub fn keep(failures: &mut Option<Self>, error: E) {
        match failures {
            None => {
                *failures = Some(Self {
                    first: error,
                    others: Vec::new(),
                });
            }
            Some(failures) => failures.others.push(error),
        }
    }

    /// 1 and the others.
    #[allow(clippy::len_without_is_empty)] // never empty: there is a first
    pub fn len(&self) -> usize {
        1 + self.others.len()
    }

    /// Every failure, the first one first.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        std::iter::once(&self.first).chain(&self.others)
    }
}

// ---------------------------------------------------------------------------
// One item's scope.

/// One item, released by `Drop`: acquire, use, drop; errors wrapped with the
/// index.
#[inline]
async fn drop_scope<I, R, T, EA, EU>(
    index: usize,
    item: I,
    acquire: impl AsyncFnOnce(I) -> Result<R, EA>,
    body: impl AsyncFnOnce(&mut R) -> Result<T, EU>,
) -> Result<T, DropError<EA, EU>> {
    let mut resource = acquire(item)
        .await
        .map_err(|source| ScopedError::Acquire { index, source })?;
    body(&mut resource)
        .await
        .map_err(|source| ScopedError::Use {
            index,
            source,
            release: None,
        })
}

/// Whether an item's body completed, failed or panicked; with the release's
/// result, the item's result (or its panic, returned rather than resumed).
#[inline]
fn settle<T, EA, EU, ER>(
    index: usize,
    used: Result<Result<T, EU>, Panic>,
    released: Result<(), ER>,
) -> Result<Result<T, ScopedError<EA, EU, ER>>, Panic> {
    Ok(match used? {
        Ok(value) => match released {
            Ok(()) => Ok(value),
            Err(source) => Err(ScopedError::Release { index, source }),
        },
        Err(source) => Err(ScopedError::Use {
            index,
            source,
            release: released.err(),
        }),
    })
}

/// One item with an async release: acquire; the body under `catch_unwind`;
/// the release awaited after `Ok`, `Err` or a panic. A panic is returned
/// (after the release) for the caller to resume.
#[inline]
async fn bracket_scope_catching<I, R, T, EA, EU, ER>(
    index: usize,
    item: I,
    acquire: impl AsyncFnOnce(I) -> Result<R, EA>,
    body: impl AsyncFnOnce(&mut R) -> Result<T, EU>,
    release: impl AsyncFnOnce(R) -> Result<(), ER>,
) -> Result<Result<T, ScopedError<EA, EU, ER>>, Panic> {
    let mut resource = match acquire(item).await {
        Ok(resource) => resource,
        Err(source) => return Ok(Err(ScopedError::Acquire { index, source })),
    };
    let used = AssertUnwindSafe(body(&mut resource)).catch_unwind().await;
    let released = release(resource).await;
    settle(index, used, released)
}

/// [`bracket_scope_catching`], the panic resumed after the release.
#[inline]
async fn bracket_scope<I, R, T, EA, EU, ER>(
    index: usize,
    item: I,
    acquire: impl AsyncFnOnce(I) -> Result<R, EA>,
    body: impl AsyncFnOnce(&mut R) -> Result<T, EU>,
    release: impl AsyncFnOnce(R) -> Result<(), ER>,
) -> Result<T, ScopedError<EA, EU, ER>> {
    match bracket_scope_catching(index, item, acquire, body, release).await {
        Ok(result) => result,
        Err(panic) => resume_unwind(panic),
    }
}

// ---------------------------------------------------------------------------
// Sequential, released by `Drop`: against `for_each_scoped`, `try_fold_scoped`
// and `try_map_scoped` with an async closure acquire.

/// `for_each_scoped(acquire, body)` by hand: a `while let` loop with the index.
pub async fn for_each_scoped<S, R, T, EA, EU>(
    stream: S,
    mut acquire: impl AsyncFnMut(S::Item) -> Result<R, EA>,
    mut body: impl AsyncFnMut(&mut R) -> Result<T, EU>,
) -> Result<(), DropError<EA, EU>>
where
    S: Stream,
{
    let mut stream = pin!(stream);
    let mut index = 0;
    while let Some(item) = stream.next().await {
        let mut resource = acquire(item)
            .await
            .map_err(|source| ScopedError::Acquire { index, source })?;
        body(&mut resource)
            .await
            .map_err(|source| ScopedError::Use {
                index,
                source,
                release: None,
            })?;
        index += 1;
    }
    Ok(())
}

/// `try_fold_scoped(init, acquire, body)` by hand.
pub async fn try_fold_scoped<S, Acc, R, EA, EU>(
    stream: S,
    init: Acc,
    mut acquire: impl AsyncFnMut(S::Item) -> Result<R, EA>,
    mut body: impl AsyncFnMut(Acc, &mut R) -> Result<Acc, EU>,
) -> Result<Acc, DropError<EA, EU>>
where
    S: Stream,
{
    let mut stream = pin!(stream);
    let mut index = 0;
    let mut acc = init;
    while let Some(item) = stream.next().await {
        let mut resource = acquire(item)
            .await
            .map_err(|source| ScopedError::Acquire { index, source })?;
        acc = body(acc, &mut resource)
            .await
            .map_err(|source| ScopedError::Use {
                index,
                source,
                release: None,
            })?;
        index += 1;
    }
    Ok(acc)
}

/// `try_map_scoped(acquire, body)` by hand: `enumerate().then(..)`, calling a
/// copy of each closure per item, as the adapter does (the stream it returns
/// owns them).
pub fn try_map_scoped<S, A, B, R, T, EA, EU>(
    stream: S,
    acquire: A,
    body: B,
) -> impl Stream<Item = Result<T, DropError<EA, EU>>>
where
    S: Stream,
    A: AsyncFnOnce(S::Item) -> Result<R, EA> + Clone,
    B: AsyncFnOnce(&mut R) -> Result<T, EU> + Clone,
{
    stream.enumerate().then(move |(index, item)| {
        let (acquire, body) = (acquire.clone(), body.clone());
        drop_scope(index, item, acquire, body)
    })
}

// ---------------------------------------------------------------------------
// Sequential, with an async release: against the same adapters given
// `async_bracket(acquire).release(release)`.

/// `for_each_scoped(async_bracket(acquire).release(release), body)` by hand.
pub async fn bracket_for_each_scoped<S, R, T, EA, EU, ER>(
    stream: S,
    mut acquire: impl AsyncFnMut(S::Item) -> Result<R, EA>,
    mut release: impl AsyncFnMut(R) -> Result<(), ER>,
    mut body: impl AsyncFnMut(&mut R) -> Result<T, EU>,
) -> Result<(), ScopedError<EA, EU, ER>>
where
    S: Stream,
{
    let mut stream = pin!(stream);
    let mut index = 0;
    while let Some(item) = stream.next().await {
        let mut resource = acquire(item)
            .await
            .map_err(|source| ScopedError::Acquire { index, source })?;
        let used = AssertUnwindSafe(body(&mut resource)).catch_unwind().await;
        let released = release(resource).await;
        match settle(index, used, released) {
            Ok(result) => result?,
            Err(panic) => resume_unwind(panic),
        };
        index += 1;
    }
    Ok(())
}

/// `try_fold_scoped(init, async_bracket(acquire).release(release), body)` by
/// hand. The accumulator is moved into the body; a body that fails or panics
/// consumes it, as in the adapter.
pub async fn bracket_try_fold_scoped<S, Acc, R, EA, EU, ER>(
    stream: S,
    init: Acc,
    mut acquire: impl AsyncFnMut(S::Item) -> Result<R, EA>,
    mut release: impl AsyncFnMut(R) -> Result<(), ER>,
    mut body: impl AsyncFnMut(Acc, &mut R) -> Result<Acc, EU>,
) -> Result<Acc, ScopedError<EA, EU, ER>>
where
    S: Stream,
{
    let mut stream = pin!(stream);
    let mut index = 0;
    let mut acc = init;
    while let Some(item) = stream.next().await {
        let mut resource = acquire(item)
            .await
            .map_err(|source| ScopedError::Acquire { index, source })?;
        let used = AssertUnwindSafe(body(acc, &mut resource))
            .catch_unwind()
            .await;
        let released = release(resource).await;
        acc = match settle(index, used, released) {
            Ok(result) => result?,
            Err(panic) => resume_unwind(panic),
        };
        index += 1;
    }
    Ok(acc)
}

/// `try_map_scoped(async_bracket(acquire).release(release), body)` by hand.
pub fn bracket_try_map_scoped<S, A, Rel, B, R, T, EA, EU, ER>(
    stream: S,
    acquire: A,
    release: Rel,
    body: B,
) -> impl Stream<Item = Result<T, ScopedError<EA, EU, ER>>>
where
    S: Stream,
    A: AsyncFnOnce(S::Item) -> Result<R, EA> + Clone,
    Rel: AsyncFnOnce(R) -> Result<(), ER> + Clone,
    B: AsyncFnOnce(&mut R) -> Result<T, EU> + Clone,
{
    stream.enumerate().then(move |(index, item)| {
        let (acquire, body, release) = (acquire.clone(), body.clone(), release.clone());
        bracket_scope(index, item, acquire, body, release)
    })
}

// ---------------------------------------------------------------------------
// Concurrent, with an async release: against `try_map_scoped_concurrent`,
// `try_map_scoped_unordered` and `for_each_scoped_concurrent`.

pin_project_lite::pin_project! {
    /// The items' results, until one panics: then nothing more is acquired
    /// (the items check `stop`), the rest are drained, and the panic resumes.
    pub struct DrainOnPanic<St> {
        #[pin]
        items: St,
        stop: Arc<AtomicBool>,
        panic: Option<Panic>,
    }
}

impl<St, T> Stream for DrainOnPanic<St>
where
    St: Stream<Item = Result<Option<T>, Panic>>,
{
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut this = self.project();
        loop {
            match ready!(this.items.as_mut().poll_next(cx)) {
                Some(Ok(Some(result))) if this.panic.is_none() => return Poll::Ready(Some(result)),
                // Skipped, or finished after a panic: drained.
                Some(Ok(_)) => {}
                Some(Err(panic)) => {
                    this.stop.store(true, Ordering::Relaxed);
                    this.panic.get_or_insert(panic);
                }
                None => {
                    if let Some(panic) = this.panic.take() {
                        resume_unwind(panic);
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// The concurrent maps' items: each one's scope, skipped once `stop` is set.
fn concurrent_items<S, A, Rel, B, R, T, EA, EU, ER>(
    stream: S,
    stop: Arc<AtomicBool>,
    acquire: A,
    release: Rel,
    body: B,
) -> impl Stream<Item = impl Future<Output = ItemResult<T, EA, EU, ER>>>
where
    S: Stream,
    A: AsyncFnOnce(S::Item) -> Result<R, EA> + Clone,
    Rel: AsyncFnOnce(R) -> Result<(), ER> + Clone,
    B: AsyncFnOnce(&mut R) -> Result<T, EU> + Clone,
{
    stream.enumerate().map(move |(index, item)| {
        let (acquire, body, release) = (acquire.clone(), body.clone(), release.clone());
        let stop = Arc::clone(&stop);
        async move {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let result = bracket_scope_catching(index, item, acquire, body, release).await;
            if result.is_err() {
                // A panic: nothing more is acquired from now on.
                stop.store(true, Ordering::Relaxed);
            }
            result.map(Some)
        }
    })
}

/// `try_map_scoped_concurrent(limit, async_bracket(acquire).release(release),
/// body)` by hand: `enumerate().map(..).buffered(limit)`, draining on a panic.
pub fn try_map_concurrent<S, A, Rel, B, R, T, EA, EU, ER>(
    stream: S,
    limit: usize,
    acquire: A,
    release: Rel,
    body: B,
) -> DrainOnPanic<impl Stream<Item = ItemResult<T, EA, EU, ER>>>
where
    S: Stream,
    A: AsyncFnOnce(S::Item) -> Result<R, EA> + Clone,
    Rel: AsyncFnOnce(R) -> Result<(), ER> + Clone,
    B: AsyncFnOnce(&mut R) -> Result<T, EU> + Clone,
{
    let stop = Arc::new(AtomicBool::new(false));
    DrainOnPanic {
        items: concurrent_items(stream, Arc::clone(&stop), acquire, release, body).buffered(limit),
        stop,
        panic: None,
    }
}

/// `try_map_scoped_unordered(..)` by hand: the same with `buffer_unordered`.
pub fn try_map_unordered<S, A, Rel, B, R, T, EA, EU, ER>(
    stream: S,
    limit: usize,
    acquire: A,
    release: Rel,
    body: B,
) -> DrainOnPanic<impl Stream<Item = ItemResult<T, EA, EU, ER>>>
where
    S: Stream,
    A: AsyncFnOnce(S::Item) -> Result<R, EA> + Clone,
    Rel: AsyncFnOnce(R) -> Result<(), ER> + Clone,
    B: AsyncFnOnce(&mut R) -> Result<T, EU> + Clone,
{
    let stop = Arc::new(AtomicBool::new(false));
    DrainOnPanic {
        items: concurrent_items(stream, Arc::clone(&stop), acquire, release, body)
            .buffer_unordered(limit),
        stop,
        panic: None,
    }
}

/// `for_each_scoped_concurrent(limit, async_bracket(acquire).release(release),
/// body)` by hand: a quiescent `for_each_concurrent`. After the first failure
/// (or panic) no item acquires; the items in flight finish and are released;
/// every error is kept; a panic resumes at the end.
pub async fn for_each_concurrent<S, R, T, EA, EU, ER>(
    stream: S,
    limit: usize,
    acquire: impl AsyncFn(S::Item) -> Result<R, EA>,
    release: impl AsyncFn(R) -> Result<(), ER>,
    body: impl AsyncFn(&mut R) -> Result<T, EU>,
) -> Result<(), Failures<ScopedError<EA, EU, ER>>>
where
    S: Stream,
{
    let stopped = Cell::new(false);
    let failures = RefCell::new(None);
    let panic = RefCell::new(None);
    stream
        .enumerate()
        .for_each_concurrent(limit, async |(index, item)| {
            if stopped.get() {
                return;
            }
            let mut resource = match acquire(item).await {
                Ok(resource) => resource,
                Err(source) => {
                    stopped.set(true);
                    Failures::keep(
                        &mut failures.borrow_mut(),
                        ScopedError::Acquire { index, source },
                    );
                    return;
                }
            };
            let used = AssertUnwindSafe(body(&mut resource)).catch_unwind().await;
            if !matches!(used, Ok(Ok(_))) {
                // Stop before the release, as the adapter does.
                stopped.set(true);
            }
            let released = release(resource).await;
            match settle(index, used, released) {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    stopped.set(true);
                    Failures::keep(&mut failures.borrow_mut(), error);
                }
                Err(payload) => {
                    panic.borrow_mut().get_or_insert(payload);
                }
            }
        })
        .await;
    if let Some(payload) = panic.into_inner() {
        resume_unwind(payload);
    }
    failures.into_inner().map_or(Ok(()), Err)
}

// ---------------------------------------------------------------------------
// Spawned (feature `tokio`): against `for_each_scoped_spawned`.

#[cfg(feature = "tokio")]
pub use spawned::{SendBody, for_each_spawned};

#[cfg(feature = "tokio")]
mod spawned {
    use super::*;
    use tokio::sync::Semaphore;
    use tokio::task::JoinSet;

    /// A body whose future is `Send`, for any borrow of the resource: what a
    /// task needs (the same trick as loopscope's `SpawnBody`).
    pub trait SendBody<'r, R: 'r, T, E>: FnOnce(&'r mut R) -> Self::Future {
        type Future: Future<Output = Result<T, E>> + Send + 'r;
    }

    impl<'r, R: 'r, T, E, B, Fut> SendBody<'r, R, T, E> for B
    where
        B: FnOnce(&'r mut R) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'r,
    {
        type Future = Fut;
    }

    /// Calls `body` through its [`SendBody`] impl, whose future is `Send`.
    fn call_body<'r, R, T, E, B: SendBody<'r, R, T, E>>(body: B, resource: &'r mut R) -> B::Future {
        body(resource)
    }

    /// The result of one task: its item's error, or its panic.
    fn reap<E>(
        finished: Result<Result<(), E>, tokio::task::JoinError>,
        stop: &AtomicBool,
        failures: &mut Option<Failures<E>>,
        panic: &mut Option<Panic>,
    ) {
        match finished {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                stop.store(true, Ordering::Relaxed);
                Failures::keep(failures, error);
            }
            Err(error) => {
                stop.store(true, Ordering::Relaxed);
                match error.try_into_panic() {
                    Ok(payload) => {
                        panic.get_or_insert(payload);
                    }
                    // Aborted: never here, nothing aborts the tasks.
                    Err(error) => panic!("a task was cancelled: {error}"),
                }
            }
        }
    }

    /// `for_each_scoped_spawned(limit, async_bracket(acquire).release(release),
    /// body)` by hand: for each item a permit of a `Semaphore(limit)`, then a
    /// `JoinSet` task that acquires (unless a failure has stopped the loop),
    /// runs the body under `catch_unwind`, awaits the release, and drops the
    /// permit. After the first failure or panic nothing more is acquired;
    /// every task is joined; every error is kept; a panic resumes at the end.
    pub async fn for_each_spawned<S, A, FA, Rel, FR, B, R, T, EA, EU, ER>(
        stream: S,
        limit: usize,
        acquire: A,
        release: Rel,
        body: B,
    ) -> Result<(), Failures<ScopedError<EA, EU, ER>>>
    where
        S: Stream,
        S::Item: Send + 'static,
        A: Fn(S::Item) -> FA + Clone + Send + 'static,
        FA: Future<Output = Result<R, EA>> + Send,
        Rel: Fn(R) -> FR + Clone + Send + 'static,
        FR: Future<Output = Result<(), ER>> + Send,
        B: for<'r> SendBody<'r, R, T, EU> + Clone + Send + 'static,
        R: Send,
        T: Send,
        EA: Send + 'static,
        EU: Send + 'static,
        ER: Send + 'static,
    {
        let permits = Arc::new(Semaphore::new(limit));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        let mut failures = None;
        let mut panic = None;
        let mut items = pin!(stream.enumerate());
        while let Some((index, item)) = items.next().await {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let (acquire, release, body) = (acquire.clone(), release.clone(), body.clone());
            let task_stop = Arc::clone(&stop);
            tasks.spawn(async move {
                let _permit = permit;
                // A failure while this task waited for its permit.
                if task_stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let mut resource = acquire(item).await.map_err(|source| {
                    task_stop.store(true, Ordering::Relaxed);
                    ScopedError::Acquire { index, source }
                })?;
                let used = AssertUnwindSafe(call_body(body, &mut resource))
                    .catch_unwind()
                    .await;
                if !matches!(used, Ok(Ok(_))) {
                    task_stop.store(true, Ordering::Relaxed);
                }
                let released = release(resource).await;
                match settle(index, used, released) {
                    Ok(result) => result.map(drop),
                    Err(payload) => resume_unwind(payload),
                }
            });
            while let Some(finished) = tasks.try_join_next() {
                reap(finished, &stop, &mut failures, &mut panic);
            }
        }
        while let Some(finished) = tasks.join_next().await {
            reap(finished, &stop, &mut failures, &mut panic);
        }
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
        failures.map_or(Ok(()), Err)
    }
}
