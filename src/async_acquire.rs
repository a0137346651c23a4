//! How a resource is acquired for an item and released again, asynchronously.
//!
//! Every stream adapter takes an [`AsyncAcquire`]: an async closure
//! `AsyncFnOnce(Item) -> Result<R, E> + Clone` (the resource is released by
//! dropping it), or an [`async_bracket`] whose release is a closure returning a
//! future — closing a connection or flushing a file is `async`, and Rust has no
//! async `Drop`.
//!
//! # Why `self` by value, and `Clone`
//!
//! The adapters call a *copy* of the acquire (and of the body) for each item,
//! rather than borrowing one closure across the item's `.await`s. A future that
//! borrows a closure the adapter owns is what rustc cannot prove `Send` inside
//! `tokio::spawn` ("implementation of `Send` is not general enough"); a future
//! that owns its copy, it can. A closure that captures only references (`&config`,
//! `&Mutex<..>`, `&AtomicUsize`) is `Copy`, so the copy costs nothing; one that
//! captures an `Arc` pays a reference-count increment per call.

use core::convert::Infallible;
use core::fmt;
use core::future::{self, Future};
use core::marker::PhantomData;

use crate::{Outcome, WithOutcome};

/// Acquires a resource for an item and releases it when the item is done, both
/// asynchronously: the async counterpart of [`Acquire`](crate::Acquire), taken
/// by every stream adapter, sequential and concurrent.
///
/// For each item, the adapters call [`acquire`](AsyncAcquire::acquire) on a
/// clone of the acquire, lend the resource to the body, and then await
/// [`release`](AsyncAcquire::release) (on another clone) exactly once — whether
/// the body returned `Ok` or `Err`, or panicked. If the adapter is dropped
/// mid-item (cancelled), the resource goes to
/// [`release_on_cancel`](AsyncAcquire::release_on_cancel), which by default
/// drops it.
///
/// The methods take `self` by value so that their futures own what they use and
/// borrow nothing from the adapter: that keeps the adapters' futures `Send`
/// whenever the acquire, its resources and what it captures are (see the
/// [guide](crate::guide#running-inside-tokiospawn)). Implement it for a `Copy` handle, such
/// as `&Pool`, or for a type whose clone is cheap (an `Arc`).
///
/// It is implemented for:
///
/// - every async closure `AsyncFnOnce(Item) -> Result<R, E> + Clone` — every
///   `async |item| ..` that does not mutate what it captures: the resource is
///   released by dropping it, and the release cannot fail;
/// - [`async_bracket`]`(acquire).release(release)`, whose `release` closure
///   `Fn(R) -> impl Future<Output = Result<(), E>>` is awaited instead of
///   `Drop`, so that a `shutdown().await` or a `sync_all().await` happens and its
///   error reaches the caller.
///
/// Not for an [`async_bracket`]`(acquire)` without its release, which would
/// leave an async resource to `Drop` unnoticed, nor for a sync closure or
/// [`bracket`](crate::bracket) (those are for iterators): given one, a stream
/// adapter does not compile, and the compiler's error says what to write
/// instead.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use futures::stream::{self, StreamExt};
/// use loopscope::{AsyncAcquire, Outcome};
/// use loopscope::prelude::*;
///
/// /// Hands out connections and counts those still open.
/// #[derive(Default)]
/// struct Pool {
///     open: AtomicUsize,
/// }
///
/// // For `&Pool`, a `Copy` handle: the pool is lent to the adapter and read
/// // afterwards.
/// impl AsyncAcquire<u32> for &Pool {
///     type Resource = u32;
///     type Error = Infallible;
///     type ReleaseError = Infallible;
///
///     async fn acquire(self, item: u32) -> Result<u32, Infallible> {
///         self.open.fetch_add(1, Ordering::SeqCst);
///         Ok(item)
///     }
///
///     async fn release(self, _connection: u32, _outcome: Outcome) -> Result<(), Infallible> {
///         self.open.fetch_sub(1, Ordering::SeqCst);
///         Ok(())
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let pool = Pool::default();
/// stream::iter(1..=10)
///     .for_each_scoped_concurrent(3, &pool, async |_connection| Ok::<_, Infallible>(()))
///     .await?;
/// assert_eq!(pool.open.load(Ordering::SeqCst), 0);
/// # Ok::<(), loopscope::Failures<ScopedError<Infallible, Infallible, Infallible>>>(())
/// # }).unwrap();
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot acquire a resource for a stream item of type `{Item}`",
    label = "not an async acquire for `{Item}`",
    note = "a stream adapter takes an async closure `async |item| ..` that does not mutate \
            what it captures (`AsyncFnOnce(Item) -> Result<R, E> + Clone`), \
            or `async_bracket(acquire).release(release)`",
    note = "a sync `bracket(..)` or a sync closure `|item| ..` is for iterators: \
            on a stream, write `async_bracket(async |item| ..).release(async |resource| ..)`",
    note = "`async_bracket(acquire)` needs its `.release(..)` or `.release_with(..)`; \
            to release by `Drop`, pass the async closure `acquire` itself"
)]
pub trait AsyncAcquire<Item>: Clone {
    /// The resource lent to the body.
    type Resource;
    /// The error of a failed acquire.
    type Error;
    /// The error of a failed release.
    type ReleaseError;

    /// Whether [`release`](Self::release) and
    /// [`release_on_cancel`](Self::release_on_cancel) do nothing but drop the
    /// resource (and so cannot fail). The sequential adapters then hold the
    /// resource as a plain local, with no cancellation guard and no release
    /// future to await, and may drop it without calling `release`:
    /// cancellation drops it, which is its release.
    /// This keeps the per-item cost of a plain async closure at that of a
    /// hand-written loop. (The concurrent adapters call `release` either way:
    /// the shortcut buys them nothing.)
    ///
    /// `false` unless overridden, which is always correct; the async closures
    /// set it to `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::AsyncAcquire;
    /// use loopscope::prelude::*;
    ///
    /// fn release_is_drop<A: AsyncAcquire<u32>>(_: &A) -> bool {
    ///     A::RELEASE_IS_DROP
    /// }
    ///
    /// let open = async |id: u32| Ok::<_, ()>(id);
    /// assert!(release_is_drop(&open));
    /// let closing = async_bracket(open).release(|_id| async { Ok::<_, ()>(()) });
    /// assert!(!release_is_drop(&closing));
    /// ```
    const RELEASE_IS_DROP: bool = false;

    /// Acquires the resource for one item.
    ///
    /// # Errors
    ///
    /// Whatever the implementation reports; the adapters wrap it in
    /// [`ScopedError::Acquire`](crate::ScopedError::Acquire) and release nothing.
    ///
    /// # Examples
    ///
    /// What an adapter does with each item, by hand:
    ///
    /// ```
    /// use loopscope::{AsyncAcquire, Outcome};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let connections = async_bracket(async |port: u16| Ok::<_, String>(format!("conn:{port}")))
    ///     .release(|conn: String| async move { if conn.is_empty() { Err(conn) } else { Ok(()) } });
    /// let mut conn = connections.clone().acquire(80).await?;
    /// conn.push_str("/ping"); // the body
    /// connections.release(conn, Outcome::Completed).await?;
    /// # Ok::<(), String>(())
    /// # }).unwrap();
    /// ```
    fn acquire(self, item: Item) -> impl Future<Output = Result<Self::Resource, Self::Error>>;

    /// Releases the resource of one item, told how the item's body ended.
    ///
    /// # Errors
    ///
    /// Whatever the implementation reports; the adapters wrap it in
    /// [`ScopedError::Release`](crate::ScopedError::Release), or keep it beside the
    /// body's error in [`ScopedError::Use`](crate::ScopedError::Use).
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::{AsyncAcquire, Outcome};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let transactions = async_bracket(async |id: u32| Ok::<_, ()>(id))
    ///     .release_with(|id, outcome| async move {
    ///         if outcome.is_completed() { Ok(()) } else { Err(format!("rolled back {id}")) }
    ///     });
    /// let id = transactions.clone().acquire(7).await.unwrap();
    /// assert_eq!(transactions.release(id, Outcome::Failed).await, Err("rolled back 7".to_owned()));
    /// # });
    /// ```
    fn release(
        self,
        resource: Self::Resource,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), Self::ReleaseError>>;

    /// Releases the resource of an item whose adapter was dropped while the body
    /// held it (a timeout, a `select!`), where nothing can await a release.
    ///
    /// The default drops the resource. A bracket built with `.spawn_on_cancel()`
    /// (feature `tokio`) spawns its async release on the current runtime instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::AsyncAcquire;
    ///
    /// let open = async |name: &'static str| Ok::<_, ()>(name.to_owned());
    /// // Nothing to await: the resource is dropped.
    /// AsyncAcquire::<&'static str>::release_on_cancel(open, "conn".to_owned());
    /// ```
    fn release_on_cancel(self, resource: Self::Resource) {
        drop(resource);
    }
}

// `do_not_recommend`: when a value is not an `AsyncAcquire`, rustc names the
// trait and its hints above, not a closure bound of this impl that it could not
// meet ("`Result<String, io::Error>` is not a future" for a sync closure).
#[diagnostic::do_not_recommend]
impl<Item, R, E, F> AsyncAcquire<Item> for F
where
    F: AsyncFnOnce(Item) -> Result<R, E> + Clone,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = Infallible;
    const RELEASE_IS_DROP: bool = true;

    #[inline]
    fn acquire(self, item: Item) -> impl Future<Output = Result<R, E>> {
        self(item)
    }

    #[inline]
    fn release(
        self,
        resource: R,
        _outcome: Outcome,
    ) -> impl Future<Output = Result<(), Infallible>> {
        drop(resource);
        future::ready(Ok(()))
    }
}

/// Starts an async bracket: `acquire` now, an async release of your choice to
/// follow.
///
/// `acquire` is an async closure `AsyncFnOnce(Item) -> Result<R, E> + Clone`
/// (any `async |item| ..` that does not mutate what it captures). Call
/// [`.release(..)`](AsyncBracket::release) (or
/// [`.release_with(..)`](AsyncBracket::release_with)) to release each resource
/// with a closure that returns a future, awaited by the adapter before its result
/// is reported. Without one, an async bracket is not an [`AsyncAcquire`] and no
/// adapter takes it: a resource whose release is async would otherwise be left
/// to `Drop` without a word. To release by `Drop`, give the adapter `acquire`
/// itself.
///
/// Neither closure may mutate what it captures: the adapters call a copy of the
/// bracket per item (see [`AsyncAcquire`]), which also lets one bracket serve the
/// sequential and the concurrent adapters alike. An acquire or release that must
/// count or collect can use a `Mutex` or an atomic, or be an [`AsyncAcquire`] of
/// its own.
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
/// let closed = Mutex::new(Vec::new());
/// stream::iter(["a", "b"])
///     .for_each_scoped(
///         async_bracket(async |name: &str| Ok::<_, io::Error>(format!("connection to {name}")))
///             .release(|connection| {
///                 closed.lock().unwrap().push(connection);
///                 async { Ok::<_, io::Error>(()) } // e.g. `stream.shutdown().await`
///             }),
///         async |connection| Ok::<_, io::Error>(connection.len()),
///     )
///     .await?;
/// assert_eq!(closed.into_inner().unwrap(), ["connection to a", "connection to b"]);
/// # Ok::<(), io::Error>(())
/// # }).unwrap();
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
#[doc(alias("defer", "using", "with", "try-with-resources"))]
pub fn async_bracket<Item, R, E, A>(acquire: A) -> AsyncBracket<A, R>
where
    A: AsyncFnOnce(Item) -> Result<R, E> + Clone,
{
    AsyncBracket {
        acquire,
        resource: PhantomData,
    }
}

/// An async acquire waiting for its release; made by [`async_bracket`].
///
/// [`release`](AsyncBracket::release) or
/// [`release_with`](AsyncBracket::release_with) gives it an async release that
/// may fail, and makes it an [`AsyncAcquire`]. It is not one on its own: an
/// adapter given `async_bracket(acquire)` without a release does not compile
/// (`AsyncBracket<..> cannot acquire a resource for a stream item`), since the
/// only reason to write one is its async release. To release by `Drop`, give
/// the adapter the async closure itself.
///
/// `R` is the resource type, named here so that the release closure's argument
/// needs no type annotation.
///
/// # Examples
///
/// ```
/// use futures::stream::{self, StreamExt};
/// use loopscope::prelude::*;
///
/// # futures::executor::block_on(async {
/// let open = async |s: &str| Ok::<_, ()>(s.to_owned());
/// // Released by `Drop`: the async closure alone.
/// let lengths: Vec<_> = stream::iter(["a", "bb"])
///     .try_map_scoped(open, async |owned| Ok::<_, ()>(owned.len()))
///     .collect()
///     .await;
/// assert_eq!(lengths, [Ok(1), Ok(2)]);
/// // Released by an async closure of yours: `async_bracket` with its release.
/// let lengths: Vec<_> = stream::iter(["a", "bb"])
///     .try_map_scoped(
///         async_bracket(open).release(async |_owned| Ok::<_, ()>(())),
///         async |owned| Ok::<_, ()>(owned.len()),
///     )
///     .collect()
///     .await;
/// assert_eq!(lengths, [Ok(1), Ok(2)]);
/// # });
/// ```
///
/// Without a release, it is refused:
///
/// ```compile_fail
/// use futures::stream::{self, StreamExt};
/// use loopscope::prelude::*;
///
/// # futures::executor::block_on(async {
/// let _ = stream::iter(["a", "bb"])
///     .try_map_scoped(
///         async_bracket(async |s: &str| Ok::<_, ()>(s.to_owned())),
///         async |owned| Ok::<_, ()>(owned.len()),
///     )
///     .collect::<Vec<_>>()
///     .await;
/// # });
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
#[must_use = "an async bracket does nothing until it has a `.release(..)` and is given to a scoped adapter"]
pub struct AsyncBracket<A, R> {
    pub(crate) acquire: A,
    resource: PhantomData<fn() -> R>,
}

impl<A, R> AsyncBracket<A, R> {
    /// Releases each resource with the future `release` returns, instead of
    /// dropping it.
    ///
    /// `release` (a `Fn`) takes the resource by value and returns a future of
    /// `Result<(), E>`, such as `|mut stream| async move { stream.shutdown().await }`.
    /// The adapter awaits it before it acquires the next item; an `Err` reaches the
    /// caller as [`ScopedError::Release`](crate::ScopedError::Release), or beside the
    /// body's error in [`ScopedError::Use`](crate::ScopedError::Use). It runs exactly
    /// once per acquired resource, also when the body fails or panics. If the
    /// adapter is dropped mid-item, the resource is released by its `Drop` instead
    /// — or, after `.spawn_on_cancel()` (feature `tokio`), by this release spawned
    /// on the current runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let error = stream::iter([1, 2, 3])
    ///     .for_each_scoped(
    ///         async_bracket(async |id: i32| Ok::<_, &str>(id))
    ///             .release(|id| async move { if id == 2 { Err("close failed") } else { Ok(()) } }),
    ///         async |_id| Ok::<_, &str>(()),
    ///     )
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!((error.index(), error.release_error()), (1, Some(&"close failed")));
    /// # });
    /// ```
    pub fn release<F, Fut, E>(self, release: F) -> AsyncWithRelease<A, R, F>
    where
        F: Fn(R) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        AsyncWithRelease {
            acquire: self.acquire,
            release,
            resource: PhantomData,
        }
    }
}

impl<A, R> AsyncBracket<A, R> {
    /// Like [`release`](AsyncBracket::release), but `release` is also told how
    /// the item's body ended, as an [`Outcome`]: commit what completed, roll back
    /// what failed, panicked or was cancelled.
    ///
    /// `release` (a `Fn`) takes the resource and the outcome and returns a future
    /// of `Result<(), E>`. The adapter awaits it with [`Outcome::Completed`],
    /// [`Outcome::Failed`] or [`Outcome::Panicked`]. A cancelled adapter cannot
    /// await it: the resource is then dropped — or, after `.spawn_on_cancel()`
    /// (feature `tokio`), this release is spawned with [`Outcome::Cancelled`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::Outcome;
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let log = Mutex::new(Vec::new());
    /// let results: Vec<_> = stream::iter([1, 2])
    ///     .try_map_scoped(
    ///         async_bracket(async |id: u32| Ok::<_, ()>(id)).release_with(|id, outcome| {
    ///             let verdict = if outcome == Outcome::Completed { "commit" } else { "rollback" };
    ///             log.lock().unwrap().push(format!("{verdict} {id}"));
    ///             async { Ok::<_, ()>(()) } // e.g. `transaction.commit().await`
    ///         }),
    ///         async |id| if *id == 2 { Err("duplicate key") } else { Ok(*id) },
    ///     )
    ///     .collect()
    ///     .await;
    /// assert!(results[0].is_ok() && results[1].is_err());
    /// assert_eq!(*log.lock().unwrap(), ["commit 1", "rollback 2"]);
    /// # });
    /// ```
    pub fn release_with<F, Fut, E>(self, release: F) -> AsyncWithRelease<A, R, WithOutcome<F>>
    where
        F: Fn(R, Outcome) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        AsyncWithRelease {
            acquire: self.acquire,
            release: WithOutcome { release },
            resource: PhantomData,
        }
    }
}

impl<A: Clone, R> Clone for AsyncBracket<A, R> {
    fn clone(&self) -> Self {
        Self {
            acquire: self.acquire.clone(),
            resource: PhantomData,
        }
    }
}

impl<A, R> fmt::Debug for AsyncBracket<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncBracket").finish_non_exhaustive()
    }
}

/// An async acquire with an async release that may fail; made by
/// [`async_bracket`]`(acquire).release(release)`.
///
/// # Examples
///
/// ```
/// use futures::stream::{self, StreamExt};
/// use loopscope::prelude::*;
///
/// async fn open(id: u32) -> Result<Vec<u32>, String> {
///     Ok(vec![id])
/// }
/// async fn close(log: Vec<u32>) -> Result<(), String> {
///     if log.is_empty() { Err("nothing to close".into()) } else { Ok(()) }
/// }
///
/// # futures::executor::block_on(async {
/// // Async fns can be given as they are: they are async closures too.
/// let connections = async_bracket(open).release(close);
/// stream::iter([1, 2, 3])
///     .for_each_scoped_concurrent(2, connections, async |log| Ok::<_, String>(log.push(0)))
///     .await?;
/// # Ok::<(), loopscope::Failures<loopscope::ScopedError<String, String, String>>>(())
/// # }).unwrap();
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
#[must_use = "a bracket does nothing until it is given to a scoped adapter"]
pub struct AsyncWithRelease<A, R, F> {
    pub(crate) acquire: A,
    pub(crate) release: F,
    pub(crate) resource: PhantomData<fn() -> R>,
}

impl<A: Clone, R, F: Clone> Clone for AsyncWithRelease<A, R, F> {
    fn clone(&self) -> Self {
        Self {
            acquire: self.acquire.clone(),
            release: self.release.clone(),
            resource: PhantomData,
        }
    }
}

impl<A, R, F> fmt::Debug for AsyncWithRelease<A, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncWithRelease").finish_non_exhaustive()
    }
}

impl<Item, A, R, E, F> AsyncAcquire<Item> for AsyncWithRelease<A, R, F>
where
    A: AsyncFnOnce(Item) -> Result<R, E> + Clone,
    F: AsyncRelease<R> + Clone,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = F::Error;

    #[inline]
    fn acquire(self, item: Item) -> impl Future<Output = Result<R, E>> {
        (self.acquire)(item)
    }

    #[inline]
    fn release(self, resource: R, outcome: Outcome) -> impl Future<Output = Result<(), F::Error>> {
        self.release.release(resource, outcome)
    }
}

/// The release of an [`AsyncWithRelease`]: what `async_bracket(..).release(..)`
/// and its variants await for each resource.
///
/// Implemented for every closure `Fn(R) -> Fut` with `Fut` a future of
/// `Result<(), E>` (given to [`AsyncBracket::release`], it never sees the
/// outcome), for [`WithOutcome`] (made by [`AsyncBracket::release_with`]), and,
/// with the `tokio` feature, for `ReleaseTimeout` (made by
/// `AsyncWithRelease::release_timeout`). It is sealed: the crate builds its
/// values, and may add methods to it.
///
/// # Examples
///
/// ```
/// use loopscope::{AsyncRelease, Outcome};
///
/// let close = |name: String| async move { if name.is_empty() { Err("no name") } else { Ok(()) } };
/// # futures::executor::block_on(async {
/// assert_eq!(close.release("db".to_owned(), Outcome::Completed).await, Ok(()));
/// # });
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub trait AsyncRelease<R>: sealed::Sealed<R> {
    /// The error of a failed release.
    type Error;
    /// The future of one release.
    type Future: Future<Output = Result<(), Self::Error>>;

    /// Starts releasing `resource`, whose item ended with `outcome`.
    ///
    /// # Examples
    ///
    /// A closure given to [`AsyncBracket::release`] is not told the outcome:
    ///
    /// ```
    /// use loopscope::{AsyncRelease, Outcome};
    ///
    /// let shutdown = |conn: String| async move {
    ///     if conn.is_empty() { Err("not connected") } else { Ok(()) }
    /// };
    /// # futures::executor::block_on(async {
    /// assert_eq!(shutdown.release(String::new(), Outcome::Completed).await, Err("not connected"));
    /// assert_eq!(shutdown.release("db".to_owned(), Outcome::Failed).await, Ok(()));
    /// # });
    /// ```
    fn release(&self, resource: R, outcome: Outcome) -> Self::Future;
}

impl<R, F, Fut, E> AsyncRelease<R> for F
where
    F: Fn(R) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    type Error = E;
    type Future = Fut;

    #[inline]
    fn release(&self, resource: R, _outcome: Outcome) -> Fut {
        self(resource)
    }
}

// Shown on `WithOutcome`, which exists without the feature.
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
impl<R, F, Fut, E> AsyncRelease<R> for WithOutcome<F>
where
    F: Fn(R, Outcome) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    type Error = E;
    type Future = Fut;

    #[inline]
    fn release(&self, resource: R, outcome: Outcome) -> Fut {
        (self.release)(resource, outcome)
    }
}

/// Keeps [`AsyncRelease`] to the crate's own release types.
pub(crate) mod sealed {
    use core::future::Future;

    use crate::{Outcome, WithOutcome};

    pub trait Sealed<R> {}

    impl<R, F, Fut, E> Sealed<R> for F
    where
        F: Fn(R) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
    }

    impl<R, F, Fut, E> Sealed<R> for WithOutcome<F>
    where
        F: Fn(R, Outcome) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
    }
}
