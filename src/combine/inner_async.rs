//! The async inner part of [`nested`](super::nested): a resource acquired from
//! the outer one by an async closure, and released by one, lent the outer
//! resource again.

use core::convert::Infallible;
use core::fmt;
use core::future::Future;
use core::marker::PhantomData;

use crate::{Outcome, WithOutcome};

/// Acquires a resource from an outer resource, and releases it with the outer
/// resource lent again, both asynchronously: the async inner part of
/// [`nested`](super::nested), beside an outer [`AsyncAcquire`](crate::AsyncAcquire).
///
/// The async counterpart of [`AcquireOn`](super::AcquireOn); as
/// [`AsyncAcquire`](crate::AsyncAcquire), its methods take `self` by value (the
/// adapters call a copy per item) and it is `Clone`. Its futures borrow the
/// outer resource, `&mut Outer`, for as long as they run.
///
/// It is implemented for:
///
/// - every async closure `AsyncFnOnce(&mut Outer) -> Result<R, E> + Clone`: the
///   inner resource is released by dropping it;
/// - [`async_bracket_on`]`(acquire)`, the same as `acquire` itself;
/// - [`async_bracket_on`]`(acquire).release(release)`, whose `release` is an
///   async closure `AsyncFn(R, &mut Outer) -> Result<(), E>`, awaited instead of
///   `Drop`, and `.release_with(release)`, whose closure is also told the
///   item's [`Outcome`].
///
/// # Examples
///
/// ```
/// use loopscope::{AsyncAcquireOn, Outcome, async_bracket_on};
///
/// # futures::executor::block_on(async {
/// let transaction = async_bracket_on(async |log: &mut Vec<&str>| Ok::<_, ()>(log.push("BEGIN")))
///     .release_with(async |(), log, outcome| {
///         log.push(if outcome.is_completed() { "COMMIT" } else { "ROLLBACK" });
///         Ok::<_, ()>(())
///     });
/// let mut log = Vec::new();
/// let begun = transaction.clone().acquire(&mut log).await?;
/// transaction.release(begun, &mut log, Outcome::Failed).await?;
/// assert_eq!(log, ["BEGIN", "ROLLBACK"]);
/// # Ok::<(), ()>(())
/// # }).unwrap();
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub trait AsyncAcquireOn<Outer>: Clone {
    /// The inner resource, lent to the body beside the outer one.
    type Resource;
    /// The error of a failed acquire.
    type Error;
    /// The error of a failed release.
    type ReleaseError;

    /// Acquires the inner resource from the outer one.
    ///
    /// # Errors
    ///
    /// Whatever the implementation reports; [`Nested`](super::Nested) then
    /// releases the outer resource (told [`Outcome::Failed`]) and keeps both
    /// errors in [`BothAcquireError::Second`](super::BothAcquireError::Second).
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::AsyncAcquireOn;
    ///
    /// let count = async |text: &mut String| Ok::<_, ()>(text.lines().count());
    /// # futures::executor::block_on(async {
    /// assert_eq!(count.acquire(&mut "a\nb".to_owned()).await, Ok(2));
    /// # });
    /// ```
    fn acquire(
        self,
        outer: &mut Outer,
    ) -> impl Future<Output = Result<Self::Resource, Self::Error>>;

    /// Releases the inner resource, with the outer one lent again, told how the
    /// item's body ended.
    ///
    /// # Errors
    ///
    /// Whatever the implementation reports; the outer resource is released
    /// after it either way.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::{AsyncAcquireOn, Outcome, async_bracket_on};
    ///
    /// let lock = async_bracket_on(async |file: &mut String| Ok::<_, ()>(file.push('!')))
    ///     .release(async |(), file| Ok::<_, ()>(file.push('.')));
    /// let mut file = String::new();
    /// # futures::executor::block_on(async {
    /// lock.release((), &mut file, Outcome::Completed).await.unwrap();
    /// # });
    /// assert_eq!(file, ".");
    /// ```
    fn release(
        self,
        resource: Self::Resource,
        outer: &mut Outer,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), Self::ReleaseError>>;

    /// Releases the inner resource of an item whose adapter was dropped while
    /// the body held it, where nothing can await a release (dropped while the
    /// inner release runs, that release's future drops it); the outer resource
    /// goes to its own part's
    /// [`release_on_cancel`](crate::AsyncAcquire::release_on_cancel) right
    /// after.
    ///
    /// The default drops the inner resource. Implement the trait to do
    /// something synchronous on the outer resource (mark a pooled connection
    /// as needing a rollback); an outer part built with
    /// `.release_with(..).spawn_on_cancel()` (feature `tokio`) is then told
    /// [`Outcome::Cancelled`] in its spawned release.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::AsyncAcquireOn;
    ///
    /// let begin = async |_conn: &mut u32| Ok::<_, ()>("tx");
    /// // Nothing to await: the inner resource is dropped.
    /// AsyncAcquireOn::<u32>::release_on_cancel(begin, "tx", &mut 7);
    /// ```
    fn release_on_cancel(self, resource: Self::Resource, outer: &mut Outer) {
        let _ = outer;
        drop(resource);
    }
}

impl<Outer, R, E, F> AsyncAcquireOn<Outer> for F
where
    F: AsyncFnOnce(&mut Outer) -> Result<R, E> + Clone,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = Infallible;

    #[inline]
    fn acquire(self, outer: &mut Outer) -> impl Future<Output = Result<R, E>> {
        self(outer)
    }

    #[inline]
    fn release(
        self,
        resource: R,
        _outer: &mut Outer,
        _outcome: Outcome,
    ) -> impl Future<Output = Result<(), Infallible>> {
        drop(resource);
        core::future::ready(Ok(()))
    }
}

/// Starts an async inner bracket for [`nested`](super::nested): `acquire` from
/// the outer resource now, an async release of your choice to follow.
///
/// `acquire` is an async closure `AsyncFnOnce(&mut Outer) -> Result<R, E> +
/// Clone` (any `async |conn: &mut Connection| ..` that does not mutate what it
/// captures); write the outer resource's type on its argument. On its own,
/// `async_bracket_on(acquire)` behaves like `acquire` (the inner resource is
/// released by `Drop`). [`.release(..)`](AsyncBracketOn::release) and
/// [`.release_with(..)`](AsyncBracketOn::release_with) give it an async release
/// that is lent the outer resource again and may fail, such as
/// `COMMIT`/`ROLLBACK` on the connection.
///
/// # Examples
///
/// ```
/// use std::sync::Mutex;
/// use futures::stream::{self, StreamExt};
/// use loopscope::{Outcome, async_bracket_on, nested};
/// use loopscope::prelude::*;
///
/// # futures::executor::block_on(async {
/// let closed = Mutex::new(Vec::new());
/// let connections = async_bracket(async |id: u32| Ok::<_, String>(vec![format!("connect {id}")]))
///     .release(|conn| {
///         closed.lock().unwrap().push(conn.join("; "));
///         async { Ok::<_, String>(()) } // e.g. `conn.close().await`
///     });
/// let transactions = async_bracket_on(async |conn: &mut Vec<String>| {
///     conn.push("BEGIN".to_owned()); // e.g. `conn.execute("BEGIN").await`
///     Ok::<_, String>(())
/// })
/// .release_with(async |(), conn, outcome| {
///     conn.push(if outcome == Outcome::Completed { "COMMIT" } else { "ROLLBACK" }.to_owned());
///     Ok::<_, String>(())
/// });
/// let results: Vec<_> = stream::iter([1, 2])
///     .try_map_scoped(nested(connections, transactions), async |(conn, ())| {
///         conn.push("INSERT".to_owned());
///         if conn.len() > 10 { Ok(()) } else { Err("duplicate key") }
///     })
///     .collect()
///     .await;
/// assert!(results.iter().all(Result::is_err));
/// assert_eq!(
///     closed.into_inner().unwrap(),
///     ["connect 1; BEGIN; INSERT; ROLLBACK", "connect 2; BEGIN; INSERT; ROLLBACK"],
/// );
/// # });
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
#[doc(alias("then", "dependent", "savepoint"))]
pub fn async_bracket_on<Outer, R, E, A>(acquire: A) -> AsyncBracketOn<A, Outer, R>
where
    A: AsyncFnOnce(&mut Outer) -> Result<R, E> + Clone,
{
    AsyncBracketOn {
        acquire,
        types: PhantomData,
    }
}

/// An async inner acquire waiting for its release; made by
/// [`async_bracket_on`].
///
/// It already implements [`AsyncAcquireOn`] with release by `Drop`. `Outer`
/// and `R` are the outer and the inner resource's types, named here so that the
/// release closure's arguments need no type annotations.
///
/// # Examples
///
/// ```
/// use loopscope::{AsyncAcquireOn, async_bracket_on};
///
/// let len = async_bracket_on(async |s: &mut String| Ok::<_, ()>(s.len()));
/// # futures::executor::block_on(async {
/// assert_eq!(len.acquire(&mut "abc".to_owned()).await, Ok(3));
/// # });
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
#[must_use = "a bracket does nothing until it is given to a scoped adapter"]
pub struct AsyncBracketOn<A, Outer, R> {
    acquire: A,
    types: PhantomData<fn(&mut Outer) -> R>,
}

impl<A, Outer, R> AsyncBracketOn<A, Outer, R> {
    /// Releases each inner resource with the async closure `release`, lent the
    /// outer resource, instead of dropping it.
    ///
    /// `release` is `AsyncFn(R, &mut Outer) -> Result<(), E>`. The adapter
    /// awaits it before it releases the outer resource, also when the body
    /// fails or panics. If the adapter is dropped mid-item, it cannot be
    /// awaited: the inner resource goes to
    /// [`release_on_cancel`](AsyncAcquireOn::release_on_cancel) (dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::{async_bracket_on, nested};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let results: Vec<_> = stream::iter(["a", "b"])
    ///     .try_map_scoped(
    ///         nested(
    ///             async |name: &str| Ok::<_, ()>(name.to_owned()),
    ///             async_bracket_on(async |file: &mut String| Ok::<_, ()>(file.push_str(" locked")))
    ///                 .release(async |(), file| Ok::<_, ()>(file.push_str(", unlocked"))),
    ///         ),
    ///         async |(file, ())| Ok::<_, ()>(file.clone()),
    ///     )
    ///     .collect()
    ///     .await;
    /// assert_eq!(results, [Ok("a locked".to_owned()), Ok("b locked".to_owned())]);
    /// # });
    /// ```
    pub fn release<F, E>(self, release: F) -> AsyncWithReleaseOn<A, Outer, R, F>
    where
        F: AsyncFn(R, &mut Outer) -> Result<(), E>,
    {
        AsyncWithReleaseOn {
            acquire: self.acquire,
            release,
            types: PhantomData,
        }
    }

    /// Like [`release`](AsyncBracketOn::release), but `release` is also told
    /// how the item's body ended: `AsyncFn(R, &mut Outer, Outcome) -> Result<(),
    /// E>` — `COMMIT` on the connection when the body completed, `ROLLBACK`
    /// otherwise.
    ///
    /// It is awaited with [`Outcome::Completed`], [`Outcome::Failed`],
    /// [`Outcome::Panicked`], or — when a concurrent adapter cancels the items
    /// in flight at a failure — [`Outcome::Cancelled`].
    ///
    /// # Examples
    ///
    /// See [`async_bracket_on`].
    ///
    /// ```
    /// use loopscope::{AsyncAcquireOn, Outcome, async_bracket_on};
    ///
    /// let savepoint = async_bracket_on(async |log: &mut Vec<u8>| Ok::<_, ()>(log.len()))
    ///     .release_with(async |mark, log, outcome| {
    ///         if !outcome.is_completed() {
    ///             log.truncate(mark);
    ///         }
    ///         Ok::<_, ()>(())
    ///     });
    /// let mut log = vec![1];
    /// # futures::executor::block_on(async {
    /// let mark = savepoint.clone().acquire(&mut log).await.unwrap();
    /// log.push(2);
    /// savepoint.release(mark, &mut log, Outcome::Panicked).await.unwrap();
    /// # });
    /// assert_eq!(log, [1]);
    /// ```
    pub fn release_with<F, E>(self, release: F) -> AsyncWithReleaseOn<A, Outer, R, WithOutcome<F>>
    where
        F: AsyncFn(R, &mut Outer, Outcome) -> Result<(), E>,
    {
        AsyncWithReleaseOn {
            acquire: self.acquire,
            release: WithOutcome { release },
            types: PhantomData,
        }
    }
}

impl<A: Clone, Outer, R> Clone for AsyncBracketOn<A, Outer, R> {
    fn clone(&self) -> Self {
        Self {
            acquire: self.acquire.clone(),
            types: PhantomData,
        }
    }
}

impl<A, Outer, R> fmt::Debug for AsyncBracketOn<A, Outer, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncBracketOn").finish_non_exhaustive()
    }
}

impl<Outer, A, R, E> AsyncAcquireOn<Outer> for AsyncBracketOn<A, Outer, R>
where
    A: AsyncFnOnce(&mut Outer) -> Result<R, E> + Clone,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = Infallible;

    #[inline]
    fn acquire(self, outer: &mut Outer) -> impl Future<Output = Result<R, E>> {
        (self.acquire)(outer)
    }

    #[inline]
    fn release(
        self,
        resource: R,
        _outer: &mut Outer,
        _outcome: Outcome,
    ) -> impl Future<Output = Result<(), Infallible>> {
        drop(resource);
        core::future::ready(Ok(()))
    }
}

/// An async inner acquire with an async release that is lent the outer
/// resource and may fail; made by [`async_bracket_on`]`(acquire).release(..)`
/// or `.release_with(..)`.
///
/// # Examples
///
/// ```
/// use loopscope::{AsyncAcquireOn, AsyncWithReleaseOn, Outcome, async_bracket_on};
///
/// async fn begin(log: &mut Vec<&'static str>) -> Result<(), String> {
///     log.push("BEGIN");
///     Ok(())
/// }
/// async fn end((): (), log: &mut Vec<&'static str>, outcome: Outcome) -> Result<(), String> {
///     log.push(if outcome.is_completed() { "COMMIT" } else { "ROLLBACK" });
///     Ok(())
/// }
///
/// // Async fns can be given as they are.
/// let transactions: AsyncWithReleaseOn<_, Vec<&str>, (), _> =
///     async_bracket_on(begin).release_with(end);
/// let mut log = Vec::new();
/// # futures::executor::block_on(async {
/// transactions.clone().acquire(&mut log).await?;
/// transactions.release((), &mut log, Outcome::Completed).await?;
/// # Ok::<(), String>(())
/// # }).unwrap();
/// assert_eq!(log, ["BEGIN", "COMMIT"]);
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
#[must_use = "a bracket does nothing until it is given to a scoped adapter"]
pub struct AsyncWithReleaseOn<A, Outer, R, F> {
    acquire: A,
    release: F,
    types: PhantomData<fn(&mut Outer) -> R>,
}

impl<A: Clone, Outer, R, F: Clone> Clone for AsyncWithReleaseOn<A, Outer, R, F> {
    fn clone(&self) -> Self {
        Self {
            acquire: self.acquire.clone(),
            release: self.release.clone(),
            types: PhantomData,
        }
    }
}

impl<A, Outer, R, F> fmt::Debug for AsyncWithReleaseOn<A, Outer, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncWithReleaseOn").finish_non_exhaustive()
    }
}

impl<Outer, A, R, E, F, ER> AsyncAcquireOn<Outer> for AsyncWithReleaseOn<A, Outer, R, F>
where
    A: AsyncFnOnce(&mut Outer) -> Result<R, E> + Clone,
    F: AsyncFn(R, &mut Outer) -> Result<(), ER> + Clone,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = ER;

    #[inline]
    fn acquire(self, outer: &mut Outer) -> impl Future<Output = Result<R, E>> {
        (self.acquire)(outer)
    }

    async fn release(self, resource: R, outer: &mut Outer, _outcome: Outcome) -> Result<(), ER> {
        (self.release)(resource, outer).await
    }
}

impl<Outer, A, R, E, F, ER> AsyncAcquireOn<Outer>
    for AsyncWithReleaseOn<A, Outer, R, WithOutcome<F>>
where
    A: AsyncFnOnce(&mut Outer) -> Result<R, E> + Clone,
    F: AsyncFn(R, &mut Outer, Outcome) -> Result<(), ER> + Clone,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = ER;

    #[inline]
    fn acquire(self, outer: &mut Outer) -> impl Future<Output = Result<R, E>> {
        (self.acquire)(outer)
    }

    async fn release(self, resource: R, outer: &mut Outer, outcome: Outcome) -> Result<(), ER> {
        (self.release.release)(resource, outer, outcome).await
    }
}
