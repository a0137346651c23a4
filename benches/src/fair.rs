//! The fair baselines: each adapter's guarantees, written by hand with
//! futures-util (and, for the spawned adapter, tokio's `JoinSet` and
//! `Semaphore`), calling the same closures and returning the same
//! [`ScopedError`] as the adapter it is measured against.
//!
//! What each one guarantees, as its adapter does:
//!
//! - the item's index, counted from 0, in every error, which is the adapter's
//!   `ScopedError` (`Acquire`, `Use` with the release error kept when both
//!   failed, `Release`, and `Cancelled` for a concurrent for-each's item
//!   cancelled in its body whose release failed);
//! - released by `Drop` (the `*_scoped` functions without a `release`
//!   argument): the resource dropped at the end of each item, on every path;
//! - with an async release (`bracket_*`, the concurrent and spawned ones): the
//!   body runs under `catch_unwind`, and the release is awaited after `Ok`,
//!   after `Err`, after a panic (which then resumes, `resume_unwind`) and,
//!   for the concurrent ones, after a cancellation;
//! - concurrent map (`try_map_concurrent`, `try_map_unordered`):
//!   `enumerate().map(..).buffered(n)` (or `buffer_unordered(n)`), one
//!   `Result` per item; a body's panic cancels the other items at once
//!   (errors do not: each is its item's result), nothing more is acquired, a
//!   cancelled item yields nothing, and once the items in flight are released
//!   (a quiescent drain) the panic resumes;
//! - concurrent for-each (`for_each_concurrent`, `for_each_spawned`): a
//!   quiescent `for_each_concurrent` (`JoinSet` + `Semaphore` for the spawned
//!   one), fail-fast: the first failure — an acquire or a body, the moment it
//!   returns, before its release; or a release — cancels the items in flight
//!   and nothing more is acquired; every item is released, and every error is
//!   kept ([`Failures`]: the first, and a `Vec` of the others; a cancelled
//!   item whose release failed as `ScopedError::Cancelled`, one whose release
//!   succeeded is no failure, as in loopscope's `Failures`). A panic cancels
//!   the same way, and resumes after every release.
//!
//! - [`for_each_concurrent_draining`]: DESIGN.md's fair baseline for the
//!   concurrent for-each read word for word — skip after the first error,
//!   drain, keep every error — which cancels nothing; measured beside the one
//!   above, since it does less.
//!
//! The concurrent ones cancel their siblings as the adapters do, the way one
//! would by hand with tokio-util's `CancellationToken` and a flag beside it
//! ([`Cancel`], one per run): an item that starts after the cancellation
//! acquires nothing (the flag); its acquire and its
//! body are each raced against the token, the step polled first, so that a
//! step that is ready at once costs nothing of the token (`unless_cancelled`);
//! an item cancelled while acquiring has nothing to release, one cancelled in
//! its body is dropped at its `.await` and its resource released.
//!
//! Where they differ from the adapters: in the `Drop` baselines a body's panic
//! unwinds through the resource's `Drop`, so a `Drop` that panics too aborts
//! the process there; the adapters catch the body's panic and drop the
//! resource after the unwinding (which costs them no instruction, measured).
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
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// The error of the baselines whose resource is released by `Drop`.
pub type DropError<EA, EU> = ScopedError<EA, EU, Infallible>;

/// A panic's payload, caught to be resumed later.
pub type Panic = Box<dyn Any + Send>;

/// One item of a concurrent baseline: its result, `None` if it was cancelled
/// before it had a resource, or its panic.
pub type ItemResult<T, EA, EU, ER> = Result<Option<Result<T, ScopedError<EA, EU, ER>>>, Panic>;

/// Every failure of a fail-fast concurrent baseline: the first, and the others
/// in the order they were seen (as loopscope's `Failures`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failures<E> {
    pub first: E,
    pub others: Vec<E>,
}

impl<A, U, R> Failures<ScopedError<A, U, R>> {
    /// Keeps `error`: the first one, or one of the others. A cancelled item's
    /// failed release may finish before the failure that cancelled it: a
    /// cancellation does not stay first when a failure comes (as in
    /// loopscope's `Failures`).
    pub fn keep(failures: &mut Option<Self>, error: ScopedError<A, U, R>) {
        let Some(failures) = failures else {
            *failures = Some(Self {
                first: error,
                others: Vec::new(),
            });
            return;
        };
        let cancelled =
            |error: &ScopedError<A, U, R>| matches!(error, ScopedError::Cancelled { .. });
        if cancelled(&failures.first) && !cancelled(&error) {
            let first = std::mem::replace(&mut failures.first, error);
            failures.others.insert(0, first);
        } else {
            failures.others.push(error);
        }
    }
}

impl<E> Failures<E> {
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

/// The cancellation of a concurrent baseline's items, as written by hand for
/// speed: a flag that each item checks before it acquires (a load), and
/// tokio-util's token, which wakes the items that wait (its own
/// `is_cancelled` locks a mutex).
#[derive(Debug, Default)]
pub struct Cancel {
    cancelled: AtomicBool,
    token: CancellationToken,
}

impl Cancel {
    /// Whether the items are cancelled.
    #[inline]
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Cancels the items, and wakes those that wait.
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.token.cancel();
    }
}

/// Runs `step` unless `cancel` is cancelled first: `Some` of its output, or
/// `None`, the step dropped at its current `.await`. Biased towards the step:
/// it is polled first, and the token's future is made only once the step is
/// pending, so that a step that is ready at once costs nothing of the token,
/// and one that completes as the token is cancelled counts as completed.
/// (tokio-util's `run_until_cancelled`, from 0.7.12, makes the token's future
/// up front.)
#[inline]
fn unless_cancelled<F: Future>(cancel: &Cancel, step: F) -> UnlessCancelled<'_, F> {
    UnlessCancelled {
        step,
        cancelled: None,
        cancel,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`unless_cancelled`]: a struct rather than an `async fn`,
    /// which would keep room for `step` twice (its argument and its local).
    struct UnlessCancelled<'a, F> {
        #[pin]
        step: F,
        // Made at the step's first `Pending`.
        #[pin]
        cancelled: Option<WaitForCancellationFuture<'a>>,
        cancel: &'a Cancel,
    }
}

impl<F: Future> Future for UnlessCancelled<'_, F> {
    type Output = Option<F::Output>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(output) = this.step.poll(cx) {
            return Poll::Ready(Some(output));
        }
        if this.cancelled.is_none() {
            this.cancelled.set(Some(this.cancel.token.cancelled()));
        }
        let cancelled = this.cancelled.as_pin_mut().expect("made above");
        cancelled.poll(cx).map(|()| None)
    }
}

/// One item of a concurrent baseline, cancelled by `cancel`. An item that
/// starts after the cancellation acquires nothing; its acquire and its body
/// are each raced against `cancel` ([`unless_cancelled`]): cancelled while
/// acquiring, it has nothing to release; cancelled in its body, the body is
/// dropped at its `.await` and the resource released, as after `Ok` or `Err`.
///
/// A panic of the body cancels the others at once, before this item's
/// release; with `fail_fast` (the for-each ones), so does a failing acquire or
/// body, and a failing release.
///
/// Returns the item's result — `None` if it was cancelled before it had a
/// resource, `ScopedError::Cancelled` (with the release's error, if any) if
/// cancelled in its body — or its panic, after the release, for the caller to
/// resume.
#[inline]
async fn cancellable_scope<I, R, T, EA, EU, ER>(
    index: usize,
    item: I,
    cancel: &Cancel,
    fail_fast: bool,
    acquire: impl AsyncFnOnce(I) -> Result<R, EA>,
    body: impl AsyncFnOnce(&mut R) -> Result<T, EU>,
    release: impl AsyncFnOnce(R) -> Result<(), ER>,
) -> ItemResult<T, EA, EU, ER> {
    // Started after the cancellation: it acquires nothing.
    if cancel.is_cancelled() {
        return Ok(None);
    }
    let mut resource = match unless_cancelled(cancel, acquire(item)).await {
        Some(Ok(resource)) => resource,
        Some(Err(source)) => {
            if fail_fast {
                cancel.cancel();
            }
            return Ok(Some(Err(ScopedError::Acquire { index, source })));
        }
        // Cancelled while acquiring: the acquire dropped, nothing to release.
        None => return Ok(None),
    };
    let body = AssertUnwindSafe(body(&mut resource)).catch_unwind();
    let used = unless_cancelled(cancel, body).await;
    // The moment the body returns, before this item's release, as the
    // adapters do (cancelling a cancelled token does nothing).
    match &used {
        Some(Err(_panic)) => cancel.cancel(),
        Some(Ok(Err(_))) if fail_fast => cancel.cancel(),
        _ => {}
    }
    let released = release(resource).await;
    if fail_fast && released.is_err() {
        cancel.cancel();
    }
    match used {
        Some(used) => settle(index, used, released).map(Some),
        None => Ok(Some(Err(ScopedError::Cancelled {
            index,
            release: released.err(),
        }))),
    }
}

pin_project_lite::pin_project! {
    /// The items' results, until one panics (the panicking item has cancelled
    /// the others): then the rest are drained, and the panic resumes.
    pub struct DrainOnPanic<St> {
        #[pin]
        items: St,
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
                // Cancelled or skipped, or finished after a panic: drained.
                Some(Ok(_)) => {}
                Some(Err(panic)) => {
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

/// The concurrent maps' items: each one's [`cancellable_scope`], not
/// fail-fast (an error is that item's result); a cancelled item (after a
/// panic) yields nothing.
fn concurrent_items<S, A, Rel, B, R, T, EA, EU, ER>(
    stream: S,
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
    // One cancellation for the run, shared by the items, which own their
    // futures: an `Arc` of it, since a clone of a `CancellationToken` would
    // lock its mutex, and so would its drop, for every item.
    let cancel = Arc::new(Cancel::default());
    stream.enumerate().map(move |(index, item)| {
        let (acquire, body, release) = (acquire.clone(), body.clone(), release.clone());
        let cancel = Arc::clone(&cancel);
        async move {
            let result =
                cancellable_scope(index, item, &cancel, false, acquire, body, release).await;
            match result {
                Ok(Some(Err(ScopedError::Cancelled { .. }))) => Ok(None),
                result => result,
            }
        }
    })
}

/// `try_map_scoped_concurrent(limit, async_bracket(acquire).release(release),
/// body)` by hand: `enumerate().map(..).buffered(limit)`; a panic cancels
/// the others, which are drained, and then resumes.
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
    DrainOnPanic {
        items: concurrent_items(stream, acquire, release, body).buffered(limit),
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
    DrainOnPanic {
        items: concurrent_items(stream, acquire, release, body).buffer_unordered(limit),
        panic: None,
    }
}

/// The failure of one item of a fail-fast for-each, if it failed: none for a
/// success, nor for an item cancelled before it had a resource or whose
/// release succeeded (no failure, as in loopscope's `Failures`).
#[inline]
fn failure<T, EA, EU, ER>(
    result: ItemResult<T, EA, EU, ER>,
) -> Result<Option<ScopedError<EA, EU, ER>>, Panic> {
    Ok(match result? {
        None | Some(Ok(_)) | Some(Err(ScopedError::Cancelled { release: None, .. })) => None,
        Some(Err(error)) => Some(error),
    })
}

/// `for_each_scoped_concurrent(limit, async_bracket(acquire).release(release),
/// body)` by hand: a quiescent `for_each_concurrent`, fail-fast. The first
/// failure (or panic) cancels the items in flight and no item acquires after
/// it; every item is released; every error is kept; a panic resumes at the
/// end.
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
    // One cancellation for the run, borrowed by the items, as the closures are.
    let cancel = Cancel::default();
    let failures = RefCell::new(None);
    let panic = RefCell::new(None);
    stream
        .enumerate()
        .for_each_concurrent(limit, async |(index, item)| {
            let result =
                cancellable_scope(index, item, &cancel, true, &acquire, &body, &release).await;
            match failure(result) {
                Ok(None) => {}
                Ok(Some(error)) => Failures::keep(&mut failures.borrow_mut(), error),
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

/// DESIGN.md's fair baseline for `for_each_scoped_concurrent`, word for word:
/// a quiescent `for_each_concurrent` that skips after the first error and
/// drains. After the first failure (or panic) no item acquires; the items in
/// flight are *not* cancelled: they finish and are released; every error is
/// kept; a panic resumes at the end. It does less than the adapter (nothing
/// is cancelled), so it is cheaper; the benches measure the adapter against
/// it too (`concurrent_for_each_draining`).
pub async fn for_each_concurrent_draining<S, R, T, EA, EU, ER>(
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
    fn reap<EA, EU, ER>(
        finished: Result<Result<(), ScopedError<EA, EU, ER>>, tokio::task::JoinError>,
        cancel: &Cancel,
        failures: &mut Option<Failures<ScopedError<EA, EU, ER>>>,
        panic: &mut Option<Panic>,
    ) {
        match finished {
            Ok(Ok(())) => {}
            // The task has cancelled the others already.
            Ok(Err(error)) => Failures::keep(failures, error),
            Err(error) => {
                // A panic of the body has cancelled the others already; one
                // of the acquire or the release (outside `catch_unwind`)
                // cancels them here.
                cancel.cancel();
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
    /// `JoinSet` task that runs the item's `cancellable_scope` (fail-fast)
    /// and drops the permit. The first failure or panic cancels the tasks in
    /// flight and no item acquires after it; every task is joined; every
    /// error is kept; a panic resumes at the end.
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
        // One cancellation for the run; each task owns an `Arc` of it (a
        // clone of the token would lock its mutex, and so would its drop).
        let cancel = Arc::new(Cancel::default());
        let mut tasks = JoinSet::new();
        let mut failures = None;
        let mut panic = None;
        let mut items = pin!(stream.enumerate());
        while let Some((index, item)) = items.next().await {
            if cancel.is_cancelled() {
                break;
            }
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let (acquire, release, body) = (acquire.clone(), release.clone(), body.clone());
            let task_cancel = Arc::clone(&cancel);
            tasks.spawn(async move {
                let _permit = permit;
                // As async closures (`A` and `Rel` are plain closures
                // returning futures, `B` a `SendBody`).
                let acquire = move |item| acquire(item);
                let release = move |resource| release(resource);
                let body = async move |resource: &mut R| call_body(body, resource).await;
                // A failure while the loop waited for this task's permit, or
                // before the task's first poll, has cancelled it: it acquires
                // nothing.
                let result =
                    cancellable_scope(index, item, &task_cancel, true, acquire, body, release)
                        .await;
                match failure(result) {
                    Ok(failure) => failure.map_or(Ok(()), Err),
                    Err(payload) => resume_unwind(payload),
                }
            });
            while let Some(finished) = tasks.try_join_next() {
                reap(finished, &cancel, &mut failures, &mut panic);
            }
        }
        while let Some(finished) = tasks.join_next().await {
            reap(finished, &cancel, &mut failures, &mut panic);
        }
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
        failures.map_or(Ok(()), Err)
    }
}
