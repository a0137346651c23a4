//! Scoped adapters for every [`Stream`].

mod cancel;
mod concurrent;
mod release_path;
mod scope;
#[cfg(feature = "tokio")]
mod spawned;
mod try_map_scoped;
mod unwind;

mod scoped_stream;

use core::future::{Future, poll_fn};
use core::pin::pin;

use futures_util::{Stream, StreamExt as _};

use self::cancel::{Engine, Local};
use self::concurrent::{CompletionOrder, InputOrder, Order};
use self::release_path::{ReleaseIsDrop, by_release};
use self::scope::scope;
pub use self::scoped_stream::{ScopedStream, TryCollectAll};
use self::try_map_scoped::TryMapScoped;
use self::unwind::DropOnUnwind;
use crate::{AsyncAcquire, Failures, ScopedError};
#[cfg(feature = "tokio")]
use crate::{SpawnAcquire, SpawnBody};

/// Scoped-resource adapters on every [`Stream`]: each item acquires a resource
/// asynchronously, lends it to an async body, and awaits its release before the
/// next item is touched.
///
/// Brought into scope by `use loopscope::prelude::*;`. Needs the `stream` feature
/// (on by default).
///
/// Write bodies as async closures, `async |conn| ..`: a closure returning an
/// async block, `|conn| async move { .. }`, cannot return a future that
/// borrows its argument, and rustc says only "type annotations needed" or
/// "lifetime may not live long enough" (no hint of the crate's can reach
/// those). A release takes the resource by value, so either form works there.
///
/// # Examples
///
/// ```
/// use futures::stream::{self, StreamExt};
/// use loopscope::prelude::*;
///
/// # futures::executor::block_on(async {
/// let sizes: Vec<_> = stream::iter(["a", "bb", "ccc"])
///     .try_map_scoped_concurrent(
///         2,
///         async |name: &str| Ok::<_, ()>(name.to_owned()),
///         async |owned| Ok::<_, ()>(owned.len()),
///     )
///     .collect()
///     .await;
/// assert_eq!(sizes, [Ok(1), Ok(2), Ok(3)]);
/// # });
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub trait ScopedStreamExt: Stream + Sized {
    /// For each item, acquires a resource, lends it to the async `body`, and
    /// awaits its release before the next item; stops at the first error.
    ///
    /// Similar to `while let Some(item) = stream.next().await { .. }` with an
    /// acquire, a body and a release written out, but the release may be async
    /// and may fail ([`async_bracket`](crate::async_bracket)`(..).release(..)`),
    /// its error reaches the caller, and every error says which item failed. At
    /// most one resource is live at any time.
    ///
    /// - `acquire` is any [`AsyncAcquire`]: an async closure
    ///   `AsyncFnOnce(Item) -> Result<R, EA> + Clone` (release by `Drop`), or
    ///   `async_bracket(acquire).release(release)`.
    /// - `body` is an async closure `AsyncFnOnce(&mut R) -> Result<T, EU> + Clone`,
    ///   lent the resource; the value `T` is discarded.
    ///
    /// Both are called as a fresh copy per item, which is what keeps the future
    /// `Send` inside `tokio::spawn` when they capture by reference (see the
    /// [guide](crate::guide#running-inside-tokiospawn)). So neither may mutate
    /// what it captures: change shared state through a `Mutex` or an atomic, or
    /// thread it through [`try_fold_scoped`](Self::try_fold_scoped).
    ///
    /// When the returned future completes — `Ok` or `Err` — every release has
    /// completed. If `body` panics, the resource's release is awaited and then
    /// the panic resumes (a resource released by `Drop` is dropped while the
    /// panic unwinds out of `poll`, before it reaches whoever catches it, and a
    /// panic of that `Drop` is caught); polled again after that, the future
    /// panics. If the future is dropped mid-item (a timeout, a `select!`), the
    /// resource is released by its `Drop`.
    ///
    /// # Errors
    ///
    /// The first failure, as a [`ScopedError`](crate::ScopedError) with the item's
    /// index; nothing is acquired after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    /// use std::sync::Mutex;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// // Shared state through a `Mutex`: the body is called as a copy per item,
    /// // which keeps this future `Send` inside `tokio::spawn`.
    /// let log = Mutex::new(Vec::new());
    /// let result = stream::iter(["ok", "broken", "never"])
    ///     .for_each_scoped(
    ///         async |name: &str| Ok::<_, io::Error>(name.to_owned()),
    ///         async |connection| {
    ///             log.lock().unwrap().push(connection.clone());
    ///             if connection == "broken" {
    ///                 return Err(io::Error::other("reset by peer"));
    ///             }
    ///             Ok(())
    ///         },
    ///     )
    ///     .await;
    /// assert!(matches!(result, Err(ScopedError::Use { index: 1, .. })));
    /// // Fail-fast: "never" was not acquired.
    /// assert_eq!(log.into_inner().unwrap(), ["ok", "broken"]);
    /// # });
    /// ```
    #[doc(alias("defer", "bracket", "with", "using"))]
    #[inline]
    fn for_each_scoped<A, B, T, EU>(
        self,
        acquire: A,
        body: B,
    ) -> impl Future<Output = Result<(), ScopedError<A::Error, EU, A::ReleaseError>>>
    where
        A: AsyncAcquire<Self::Item>,
        B: AsyncFnOnce(&mut A::Resource) -> Result<T, EU> + Clone,
    {
        macro_rules! run {
            ($path:ident) => {
                DropOnUnwind::new(async move {
                    let mut stream = pin!(self);
                    let mut index = 0;
                    loop {
                        // `let .. else`, not `while let`: the temporary of a
                        // `while let` lives through the whole body, and so in the
                        // state machine.
                        let Some(item) = stream.next().await else {
                            break;
                        };
                        scope!($path, acquire, body.clone(), item, index)?;
                        index += 1;
                    }
                    Ok(())
                })
            };
        }
        by_release!(ReleaseIsDrop<A, Self::Item>, run)
    }

    /// Folds the items into an accumulator, each through its own async scope:
    /// every item acquires one resource, lends it with the accumulator to the
    /// async `body`, which returns the next accumulator, and awaits its release
    /// before the next item; stops at the first error.
    ///
    /// Similar to `TryStreamExt::try_fold`, with an acquire, a body and a release
    /// written out as in [`for_each_scoped`](Self::for_each_scoped). It is the
    /// form for a loop that keeps state from item to item (a total, a count, a
    /// list): the adapters call a copy of the body per item, so a body cannot
    /// mutate what it captures (`total += n` does not compile: "the trait bound
    /// `&mut u64: Clone` is not satisfied"), but it can thread the state through
    /// here — and the future stays `Send` inside `tokio::spawn`.
    ///
    /// - `init` is the first accumulator.
    /// - `acquire` is as for [`for_each_scoped`](Self::for_each_scoped).
    /// - `body` is an async closure `AsyncFnOnce(Acc, &mut R) -> Result<Acc, EU> + Clone`:
    ///   it takes the accumulator by value and returns the next one.
    ///
    /// When the returned future completes, every release has completed; if it is
    /// dropped mid-item, the resource is released as in
    /// [`for_each_scoped`](Self::for_each_scoped).
    ///
    /// # Errors
    ///
    /// The first failure, as a [`ScopedError`](crate::ScopedError) with the item's
    /// index; nothing is acquired after it, and the accumulator is dropped.
    ///
    /// # Panics
    ///
    /// If `body` panics, the resource's release is awaited and then the panic
    /// resumes (a resource released by `Drop`: as for
    /// [`for_each_scoped`](Self::for_each_scoped)); polled again after that,
    /// the future panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let total = stream::iter(["alpha", "beta"])
    ///     .try_fold_scoped(
    ///         0,
    ///         async |name: &str| Ok::<_, std::io::Error>(name.to_owned()), // open
    ///         async |total, file| Ok(total + file.len()),                  // read
    ///     )
    ///     .await?;
    /// assert_eq!(total, 9);
    /// # Ok::<(), ScopedError<std::io::Error, std::io::Error, std::convert::Infallible>>(())
    /// # }).unwrap();
    /// ```
    #[doc(alias("try_fold", "fold", "reduce"))]
    #[inline]
    fn try_fold_scoped<Acc, A, B, EU>(
        self,
        init: Acc,
        acquire: A,
        body: B,
    ) -> impl Future<Output = Result<Acc, ScopedError<A::Error, EU, A::ReleaseError>>>
    where
        A: AsyncAcquire<Self::Item>,
        B: AsyncFnOnce(Acc, &mut A::Resource) -> Result<Acc, EU> + Clone,
    {
        macro_rules! run {
            ($path:ident) => {
                DropOnUnwind::new(async move {
                    let mut stream = pin!(self);
                    let mut accumulator = init;
                    let mut index = 0;
                    loop {
                        let Some(item) = stream.next().await else {
                            break;
                        };
                        // This item's body: a copy of `body`, given the
                        // accumulator, called once by the scope once the
                        // resource is acquired — not before, where the copy
                        // and the accumulator would be held, with their drop
                        // flags, across the acquire's `.await`.
                        accumulator = scope!(
                            $path,
                            acquire,
                            |resource| body.clone()(accumulator, resource),
                            item,
                            index
                        )?;
                        index += 1;
                    }
                    Ok(accumulator)
                })
            };
        }
        by_release!(ReleaseIsDrop<A, Self::Item>, run)
    }

    /// Maps each item through its own async scope: every item acquires one
    /// resource, lends it to the async `body`, awaits its release, and yields
    /// `body`'s result.
    ///
    /// Similar to `stream.then(async |x| { .. })` with an acquire, a body and a
    /// release written out, but the release may be async and may fail, and every
    /// error carries the item's index. Unlike
    /// [`for_each_scoped`](Self::for_each_scoped) it does not stop at an error:
    /// each input item yields one `Result`, in input order. Nothing is acquired
    /// before the stream is polled; a result is yielded only once its release has
    /// completed; and a consumer that drops the stream mid-item releases the
    /// resource by its `Drop`.
    ///
    /// `acquire` and `body` are as for [`for_each_scoped`](Self::for_each_scoped).
    /// The stream is not `Unpin`: pin it (`std::pin::pin!`) to call `next()` on it.
    ///
    /// # Panics
    ///
    /// If `body` panics, the release is awaited and the panic resumes out of
    /// `poll_next` (a resource released by `Drop` is dropped while the panic
    /// unwinds out of it, with a panic of that `Drop` caught); polling the
    /// stream again after that panics too.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::pin::pin;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let mut results = pin!(stream::iter(["4", "four", "99"]).try_map_scoped(
    ///     async |text: &str| text.parse::<u8>(),
    ///     async |n| n.checked_mul(3).ok_or("overflow"),
    /// ));
    /// assert_eq!(results.next().await.unwrap().ok(), Some(12));
    /// assert!(matches!(results.next().await, Some(Err(ScopedError::Acquire { index: 1, .. }))));
    /// assert!(matches!(results.next().await, Some(Err(ScopedError::Use { index: 2, .. }))));
    /// assert!(results.next().await.is_none());
    /// # });
    /// ```
    #[doc(alias("bracket", "with"))]
    #[inline]
    fn try_map_scoped<A, B, T, EU>(
        self,
        acquire: A,
        body: B,
    ) -> impl Stream<Item = Result<T, ScopedError<A::Error, EU, A::ReleaseError>>>
    where
        A: AsyncAcquire<Self::Item>,
        B: AsyncFnOnce(&mut A::Resource) -> Result<T, EU> + Clone,
    {
        macro_rules! build {
            ($path:ident) => {
                // Each item's future owns its copies of the acquire and the body
                // (see `TryMapScoped`).
                TryMapScoped::new(self, move |item, index| {
                    let (acquire, body) = (acquire.clone(), body.clone());
                    async move { scope!($path, acquire, body, item, index) }
                })
            };
        }
        by_release!(ReleaseIsDrop<A, Self::Item>, build)
    }

    /// Like [`for_each_scoped`](Self::for_each_scoped), but runs up to `limit`
    /// items at once: at most `limit` resources are live, and `limit` are when
    /// the stream and the items allow it.
    ///
    /// Similar to `try_for_each_concurrent(limit, ..)`, but `limit` caps the live
    /// *resources*, each one's async release is awaited, and every error says
    /// which item failed. `acquire` and `body` are as for
    /// [`for_each_scoped`](Self::for_each_scoped): a copy of each runs per item.
    ///
    /// Fail-fast, with structured concurrency: the moment an acquire or a body
    /// fails — before that item's release — it stops acquiring; it cancels the
    /// items in flight (each body is dropped at its current `.await`, and its
    /// resource released, told [`Outcome::Cancelled`](crate::Outcome::Cancelled)),
    /// waits for every release, and only then returns. So when the future
    /// completes, `Ok` or `Err`, every release has completed, and a caller that
    /// reopens a resource cannot race a pending close. No error is dropped:
    /// the other failures of the items in flight come with the first one
    /// ([`Failures`]).
    ///
    /// # Cancellation
    ///
    /// If the future is dropped mid-way (a timeout, `select!`), every resource
    /// in flight is released by its `Drop`, or by
    /// [`AsyncAcquire::release_on_cancel`] (with `spawn_on_cancel`, feature
    /// `tokio`: a release already running is handed to the runtime and
    /// completes). A panic in one resource's `Drop` does not keep the others
    /// from being dropped; it resumes afterwards.
    ///
    /// # Panics
    ///
    /// When `limit` is 0. When a body panics, the other items are cancelled,
    /// every release (its own included) is awaited, and then the panic resumes.
    /// A resource released by `Drop` whose `Drop` panics after its body did is
    /// caught: the body's panic resumes, the process does not abort.
    ///
    /// # Errors
    ///
    /// [`Failures`]: the first failure, as a
    /// [`ScopedError`](crate::ScopedError) with the item's index, and every
    /// other failure of the items that were in flight (a body that failed too,
    /// a release that failed or timed out, of a cancelled item as
    /// [`ScopedError::Cancelled`](crate::ScopedError::Cancelled)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let (live, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
    /// stream::iter(0..100)
    ///     .for_each_scoped_concurrent(
    ///         8,
    ///         async_bracket(async |_request: i32| {
    ///             let now = live.fetch_add(1, Ordering::SeqCst) + 1;
    ///             peak.fetch_max(now, Ordering::SeqCst);
    ///             Ok::<_, std::io::Error>("connection")
    ///         })
    ///         .release(|_connection| {
    ///             live.fetch_sub(1, Ordering::SeqCst);
    ///             async { Ok::<_, std::io::Error>(()) }
    ///         }),
    ///         async |_connection| Ok::<_, std::io::Error>(()),
    ///     )
    ///     .await?;
    /// assert!(peak.load(Ordering::SeqCst) <= 8);
    /// assert_eq!(live.load(Ordering::SeqCst), 0);
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    #[doc(alias("for_each_concurrent", "try_for_each_concurrent", "join_all"))]
    #[track_caller]
    // Written out, not behind an alias, so that rustdoc shows which error is which.
    #[allow(
        clippy::type_complexity,
        reason = "the error type, spelled out for rustdoc"
    )]
    fn for_each_scoped_concurrent<A, B, T, EU>(
        self,
        limit: usize,
        acquire: A,
        body: B,
    ) -> impl Future<Output = Result<(), Failures<ScopedError<A::Error, EU, A::ReleaseError>>>>
    where
        A: AsyncAcquire<Self::Item>,
        B: AsyncFnOnce(&mut A::Resource) -> Result<T, EU> + Clone,
    {
        let limit = concurrent::limit(limit);
        async move {
            let start = |item, index| {
                let (acquire, body) = (&acquire, &body);
                let cancel = Engine;
                async move { scope!(guarded, *acquire, body.clone(), item, index, cancel: cancel) }
            };
            let mut drive = pin!(concurrent::drive::<CompletionOrder, _, _, _, _>(
                self,
                limit,
                // Fail-fast: the first failing acquire or body cancels
                // the others.
                Local::fail_fast(),
                start
            ));
            let mut failures = None;
            poll_fn(|cx| drive.as_mut().poll_failures(cx, &mut failures)).await;
            failures.map_or(Ok(()), Err)
        }
    }

    /// Like [`try_map_scoped`](Self::try_map_scoped), but runs up to `limit`
    /// items at once, and yields their results in input order.
    ///
    /// Similar to `stream.map(..).buffered(limit)`, but `limit` caps the live
    /// resources, each one's async release is awaited before its result is
    /// yielded, and every error carries the item's index. It does not stop at an
    /// error: each item yields one `Result`. As with `buffered`, the items in
    /// flight make progress only while the stream is polled. When the stream
    /// ends, every release has completed.
    ///
    /// Unlike `buffered`, `limit` counts live *resources*, not results: an item
    /// that has finished (its resource released) while an earlier one still
    /// runs waits for its turn without holding a slot, so a slow item at the
    /// head does not slow the rest. At most 32 × `limit` finished results wait;
    /// beyond that nothing more is acquired until the head finishes.
    ///
    /// `acquire` and `body` are as for
    /// [`for_each_scoped_concurrent`](Self::for_each_scoped_concurrent).
    ///
    /// # Stopping early
    ///
    /// `try_collect` returns at the first `Err` and drops the stream: the items
    /// in flight are then cancelled without their async releases being awaited
    /// (each resource goes to its `Drop`, or to
    /// [`AsyncAcquire::release_on_cancel`]). To stop at the first error *and*
    /// wait for every release, use [`ScopedStream::try_collect_all`] — or
    /// [`ScopedStream::stop`] the stream and poll it to its end.
    ///
    /// # Cancellation
    ///
    /// If the stream is dropped mid-way, every resource in flight is released
    /// by its `Drop` (or [`AsyncAcquire::release_on_cancel`]); a panic of one
    /// resource's `Drop` does not keep the others from being dropped, and
    /// resumes afterwards.
    ///
    /// # Panics
    ///
    /// When `limit` is 0. When a body panics, the other items are cancelled,
    /// every release (its own included) is awaited, and the panic resumes out of
    /// `poll_next`; polled again after that, the stream panics ("polled after a
    /// panic") rather than wait forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let lengths: Vec<_> = stream::iter(["a", "bb", "ccc"])
    ///     .try_map_scoped_concurrent(
    ///         2,
    ///         async |name: &str| Ok::<_, ()>(name.repeat(2)),
    ///         async |doubled| Ok::<_, ()>(doubled.len()),
    ///     )
    ///     .collect()
    ///     .await;
    /// assert_eq!(lengths, [Ok(2), Ok(4), Ok(6)]);
    /// # });
    /// ```
    #[doc(alias("buffered"))]
    #[track_caller]
    fn try_map_scoped_concurrent<A, B, T, EU>(
        self,
        limit: usize,
        acquire: A,
        body: B,
    ) -> impl ScopedStream<T, A::Error, EU, A::ReleaseError>
    where
        A: AsyncAcquire<Self::Item>,
        B: AsyncFnOnce(&mut A::Resource) -> Result<T, EU> + Clone,
    {
        map_concurrent::<InputOrder, _, _, _, _, _>(self, concurrent::limit(limit), acquire, body)
    }

    /// Like [`try_map_scoped_concurrent`](Self::try_map_scoped_concurrent), but
    /// yields each result as soon as its item is done (completion order).
    ///
    /// Similar to `stream.map(..).buffer_unordered(limit)`, with the same
    /// guarantees as [`try_map_scoped_concurrent`](Self::try_map_scoped_concurrent):
    /// stop it early with [`ScopedStream::try_collect_all`] or
    /// [`ScopedStream::stop`], not by dropping it, to wait for the releases.
    /// Use [`ScopedError::index`](crate::ScopedError::index) (or put the index in
    /// `T`) to tell the results apart.
    ///
    /// # Panics
    ///
    /// When `limit` is 0. When a body panics, the other items are cancelled,
    /// every release is awaited, and the panic resumes out of `poll_next`;
    /// polled again after that, the stream panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let mut sizes: Vec<usize> = stream::iter(["a", "bb", "ccc"])
    ///     .try_map_scoped_unordered(
    ///         3,
    ///         async |name: &str| Ok::<_, ()>(name.to_owned()),
    ///         async |name| Ok::<_, ()>(name.len()),
    ///     )
    ///     .map(Result::unwrap)
    ///     .collect()
    ///     .await;
    /// sizes.sort();
    /// assert_eq!(sizes, [1, 2, 3]);
    /// # });
    /// ```
    #[doc(alias("buffer_unordered"))]
    #[track_caller]
    fn try_map_scoped_unordered<A, B, T, EU>(
        self,
        limit: usize,
        acquire: A,
        body: B,
    ) -> impl ScopedStream<T, A::Error, EU, A::ReleaseError>
    where
        A: AsyncAcquire<Self::Item>,
        B: AsyncFnOnce(&mut A::Resource) -> Result<T, EU> + Clone,
    {
        map_concurrent::<CompletionOrder, _, _, _, _, _>(
            self,
            concurrent::limit(limit),
            acquire,
            body,
        )
    }

    /// Like [`try_map_scoped_concurrent`](Self::try_map_scoped_concurrent), but
    /// runs each item's whole scope — acquire, use, release — as a tokio task, so
    /// that it makes progress, and releases its resource, while the consumer of
    /// the results is busy elsewhere.
    ///
    /// With `buffered(limit)` or
    /// [`try_map_scoped_concurrent`](Self::try_map_scoped_concurrent), the items
    /// in flight run only while the stream is polled: a consumer that spends a
    /// while on each result keeps up to `limit` connections open and idle
    /// meanwhile. Here the tasks run on their own; the stream only pulls new
    /// items when it is polled, so at most `limit` tasks exist — at most `limit`
    /// live resources, and at most `limit` finished results waiting for the
    /// consumer — and `limit` do when the stream and the items allow it. Results
    /// come in input order, one `Result` per item, as with `buffered`; the stream
    /// does not stop at an error (stop it with [`ScopedStream::try_collect_all`]
    /// or [`ScopedStream::stop`], which wait for the releases). When it ends,
    /// every release has completed.
    ///
    /// Prefer it when the consumer is slow and the resources are scarce (pooled
    /// connections, file descriptors, locks), or when the bodies do CPU work
    /// that should use every worker. Its cost: a `tokio::spawn` per item — a
    /// few microseconds, noise beside a network round trip but far more than a
    /// trivial item costs in
    /// [`try_map_scoped_concurrent`](Self::try_map_scoped_concurrent) — and
    /// `Send + Sync + 'static` closures with `Send + 'static` items, resources,
    /// values and errors. When the consumer keeps up,
    /// [`try_map_scoped_concurrent`](Self::try_map_scoped_concurrent) does the
    /// same work for less.
    ///
    /// Each item's scope is a task of the runtime that polls the adapter
    /// (`tokio::spawn` on its [`Handle`](tokio::runtime::Handle)): the items of
    /// one adapter run in parallel on a multi-thread runtime, no thread is
    /// started for them, the paused clock of `#[tokio::test(start_paused =
    /// true)]` sees their work, and a runtime that shuts down drops them — and
    /// so releases their resources by `Drop` — before `drop(runtime)` returns.
    /// On a `current_thread` runtime the tasks run only while the thread in
    /// `Runtime::block_on` is not blocked: a consumer that *awaits* (a sleep, a
    /// write) lets them, one that blocks the thread holds them — and so their
    /// resources — until it yields.
    ///
    /// Dropping the stream (a timeout, a `select!`) aborts the tasks in flight
    /// (tokio-util's `AbortOnDropHandle`): none is polled again, and each held
    /// resource is released by its `Drop`, or by the async release of an
    /// [`async_bracket`](crate::async_bracket)`(..).release(..)`
    /// [`.spawn_on_cancel()`](crate::AsyncWithRelease::spawn_on_cancel) spawned
    /// on the runtime, where the runtime drops the aborted task — right after
    /// the drop, not during it; a task being polled at that moment finishes
    /// that poll first. With
    /// [`.spawn_on_cancel_in(&tracker)`](crate::AsyncWithRelease::spawn_on_cancel_in),
    /// the tasks themselves are tracked too, so that `tracker.wait()` also
    /// waits for the aborted tasks to hand their releases over.
    ///
    /// `acquire` is any [`SpawnAcquire`] — every async closure and bracket whose
    /// futures are `Send` — and `body` an async closure
    /// `AsyncFnOnce(&mut R) -> Result<T, EU>` whose future is `Send`
    /// ([`SpawnBody`]); a copy of each runs in each task. The
    /// [guide](crate::guide#running-inside-tokiospawn) says why these bounds.
    ///
    /// # Panics
    ///
    /// When `limit` is 0. When it pulls its first item outside a tokio runtime
    /// (its tasks run with that runtime's handle). When a body panics, its
    /// resource is released inside its task, the other tasks' bodies are
    /// cancelled and their releases awaited, and the panic resumes out of
    /// `poll_next`; polled again after that, the stream panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// # type Error = ScopedError<std::io::Error, std::io::Error, std::convert::Infallible>;
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Error> {
    /// let mut replies = std::pin::pin!(stream::iter(["/a", "/b", "/c"]).try_map_scoped_spawned(
    ///     2,
    ///     async |path: &str| Ok::<_, std::io::Error>(format!("connection for {path}")),
    ///     async |connection| Ok::<_, std::io::Error>(connection.len()),
    /// ));
    /// while let Some(reply) = replies.next().await {
    ///     let _length = reply?;
    ///     // A slow consumer: meanwhile the next items are fetched, and their
    ///     // connections closed, without waiting for it.
    ///     tokio::time::sleep(Duration::from_millis(1)).await;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    #[track_caller]
    fn try_map_scoped_spawned<A, B, T, EU>(
        self,
        limit: usize,
        acquire: A,
        body: B,
    ) -> impl ScopedStream<T, A::Error, EU, A::ReleaseError>
    where
        Self::Item: Send + 'static,
        A: SpawnAcquire<Self::Item>,
        A::Resource: Send,
        A::Error: Send + 'static,
        A::ReleaseError: Send + 'static,
        B: AsyncFnOnce(&mut A::Resource) -> Result<T, EU>
            + for<'r> SpawnBody<'r, A::Resource, T, EU>
            + Clone
            + Send
            + Sync
            + 'static,
        T: Send + 'static,
        EU: Send + 'static,
    {
        spawned::try_map(self, concurrent::limit(limit), acquire, body)
    }

    /// Like [`for_each_scoped_concurrent`](Self::for_each_scoped_concurrent), but
    /// runs each item's whole scope — acquire, use, release — as a tokio task.
    ///
    /// The tasks make progress on their own, also while the returned future is
    /// not polled (the task awaiting it is busy elsewhere); new items are pulled
    /// only while it is polled. At most `limit` tasks exist, so at most `limit`
    /// resources are live, and `limit` are when the stream and the items allow
    /// it. The tasks run as in
    /// [`try_map_scoped_spawned`](Self::try_map_scoped_spawned), which says
    /// when to prefer them, what they cost and what `acquire` and `body` may
    /// be; here the values of `body` are dropped in their task, so they need
    /// not be `Send`.
    ///
    /// Fail-fast, with structured concurrency, as
    /// [`for_each_scoped_concurrent`](Self::for_each_scoped_concurrent): the
    /// moment a task's acquire or body fails, no new item is pulled or acquired
    /// (on a multi-thread runtime a task running on another worker at that very
    /// instant may already be starting its acquire), the other tasks' bodies are
    /// cancelled and their releases awaited (told
    /// [`Outcome::Cancelled`](crate::Outcome::Cancelled)), and only then the
    /// error is returned, with every other failure. So when the future
    /// completes, `Ok` or `Err`, every release has completed. Dropping the
    /// future aborts the tasks in flight, whose resources are then released by
    /// `Drop` (or [`AsyncAcquire::release_on_cancel`]) where the runtime drops
    /// the aborted tasks, right after the drop.
    ///
    /// # Panics
    ///
    /// When `limit` is 0. When it pulls its first item outside a tokio runtime.
    /// When a body panics: its resource is released inside its task, no new
    /// item is pulled, the other tasks are cancelled as after an error, and
    /// then the panic resumes (a panic wins over an error).
    ///
    /// # Errors
    ///
    /// [`Failures`]: the first failure, as a
    /// [`ScopedError`](crate::ScopedError) with the item's index, and every other
    /// failure of the tasks that were in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use futures::stream;
    /// use loopscope::prelude::*;
    ///
    /// let runtime = tokio::runtime::Runtime::new()?;
    /// let open = Arc::new(AtomicUsize::new(0));
    /// let connections = {
    ///     let (opening, closing) = (Arc::clone(&open), Arc::clone(&open));
    ///     async_bracket(async move |id: u32| {
    ///         opening.fetch_add(1, Ordering::SeqCst);
    ///         Ok::<_, std::io::Error>(id)
    ///     })
    ///     .release(move |_id| {
    ///         closing.fetch_sub(1, Ordering::SeqCst);
    ///         async { Ok::<_, std::io::Error>(()) }
    ///     })
    /// };
    /// let result = runtime.block_on(stream::iter(0..20).for_each_scoped_spawned(
    ///     4,
    ///     connections,
    ///     async |id| {
    ///         tokio::task::yield_now().await;
    ///         if *id == 7 {
    ///             return Err(std::io::Error::other("reset by peer"));
    ///         }
    ///         Ok(())
    ///     },
    /// ));
    /// assert_eq!(result.unwrap_err().index(), 7);
    /// // Every task had released its connection when the error came back.
    /// assert_eq!(open.load(Ordering::SeqCst), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    #[track_caller]
    // Written out, not behind an alias, so that rustdoc shows which error is which.
    #[allow(
        clippy::type_complexity,
        reason = "the error type, spelled out for rustdoc"
    )]
    fn for_each_scoped_spawned<A, B, T, EU>(
        self,
        limit: usize,
        acquire: A,
        body: B,
    ) -> impl Future<Output = Result<(), Failures<ScopedError<A::Error, EU, A::ReleaseError>>>>
    where
        Self::Item: Send + 'static,
        A: SpawnAcquire<Self::Item>,
        A::Resource: Send,
        A::Error: Send + 'static,
        A::ReleaseError: Send + 'static,
        B: AsyncFnOnce(&mut A::Resource) -> Result<T, EU>
            + for<'r> SpawnBody<'r, A::Resource, T, EU>
            + Clone
            + Send
            + Sync
            + 'static,
        EU: Send + 'static,
    {
        spawned::for_each(self, concurrent::limit(limit), acquire, body)
    }
}

impl<St: Stream> ScopedStreamExt for St {}

/// The two concurrent mapping adapters, which differ only in the order `O`.
fn map_concurrent<O, St, A, B, T, EU>(
    stream: St,
    limit: core::num::NonZeroUsize,
    acquire: A,
    body: B,
) -> impl ScopedStream<T, A::Error, EU, A::ReleaseError>
where
    O: Order,
    St: Stream,
    A: AsyncAcquire<St::Item>,
    B: AsyncFnOnce(&mut A::Resource) -> Result<T, EU> + Clone,
{
    // Each item's future owns its copies of the acquire and the body: the
    // futures in flight live in the stream itself, so they cannot borrow from it.
    concurrent::drive::<O, _, _, _, _>(stream, limit, Local::default(), move |item, index| {
        let (acquire, body) = (acquire.clone(), body.clone());
        // Not fail-fast (unless collected by `try_collect_all`): an
        // item's failure is its own result.
        let cancel = Engine;
        async move { scope!(guarded, acquire, body, item, index, cancel: cancel) }
    })
}
