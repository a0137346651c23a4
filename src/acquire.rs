//! How a resource is acquired for an item and released again.
//!
//! Every scoped adapter takes an [`Acquire`]: a plain closure
//! `FnMut(Item) -> Result<R, E>` (the resource is released by dropping it), or a
//! [`bracket`] whose release is a closure of its own that may fail.

use core::convert::Infallible;
use core::fmt;
use core::marker::PhantomData;

/// How an item's scope ended, as seen by the release of its resource.
///
/// Every [`Acquire::release`] is told the outcome, so that an implementation can,
/// for example, commit a transaction when the body completed and roll it back
/// otherwise. A closure given to [`Bracket::release_with`] (or its async
/// counterpart) is told it too; one given to [`Bracket::release`] is not.
///
/// # Examples
///
/// ```
/// use loopscope::Outcome;
///
/// let outcome = Outcome::Completed;
/// assert!(outcome.is_completed());
/// assert!(!Outcome::Failed.is_completed());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The body returned `Ok`.
    Completed,
    /// The body returned `Err`.
    Failed,
    /// The body panicked; the panic resumes once the release has run.
    Panicked,
    /// The item's work was dropped before it finished. A concurrent adapter
    /// cancels the bodies in flight when another item fails or panics (or its
    /// stream is stopped), and awaits their releases told this; an async
    /// bracket built with `.release_with(..).spawn_on_cancel()` (feature
    /// `tokio`) passes it to the release it spawns when the adapter itself is
    /// dropped mid-item. The sync adapters run each item's scope to its end
    /// within one call and never see it.
    Cancelled,
}

impl Outcome {
    /// Returns `true` when the body returned `Ok`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(loopscope::Outcome::Completed.is_completed());
    /// assert!(!loopscope::Outcome::Panicked.is_completed());
    /// ```
    #[must_use]
    pub fn is_completed(self) -> bool {
        self == Outcome::Completed
    }
}

/// Acquires a resource for an item and releases it when the item is done.
///
/// The scoped adapters call [`acquire`](Acquire::acquire) once per item, lend the
/// resource to the body, and then call [`release`](Acquire::release) exactly once —
/// whether the body returned `Ok` or `Err`, or panicked — before they touch the next
/// item.
///
/// You rarely implement this trait yourself. It is implemented for:
///
/// - every closure `FnMut(Item) -> Result<R, E>`: the resource is released by
///   dropping it, and the release cannot fail
///   ([`ReleaseError`](Acquire::ReleaseError) is [`Infallible`]);
/// - [`bracket`]`(acquire)`, the same as `acquire` itself;
/// - [`bracket`]`(acquire).release(release)`, whose `release` closure
///   `FnMut(R) -> Result<(), E>` is called instead of `Drop`, so that a final flush,
///   `fsync` or commit can report its error.
///
/// # Examples
///
/// A type of your own, which keeps a journal and tells completed work apart
/// from work that failed:
///
/// ```
/// use std::convert::Infallible;
/// use loopscope::{Acquire, Outcome};
/// use loopscope::prelude::*;
///
/// struct Journal<'a> {
///     lines: &'a mut Vec<String>,
/// }
///
/// impl Acquire<u32> for Journal<'_> {
///     type Resource = String;
///     type Error = Infallible;
///     type ReleaseError = Infallible;
///
///     fn acquire(&mut self, item: u32) -> Result<String, Infallible> {
///         Ok(format!("item {item}"))
///     }
///
///     fn release(&mut self, entry: String, outcome: Outcome) -> Result<(), Infallible> {
///         let verdict = if outcome.is_completed() { "committed" } else { "rolled back" };
///         self.lines.push(format!("{entry}: {verdict}"));
///         Ok(())
///     }
/// }
///
/// let mut lines = Vec::new();
/// let results: Vec<_> = [1, 2]
///     .into_iter()
///     .try_map_scoped(Journal { lines: &mut lines }, |entry| {
///         if entry.ends_with('2') { Err("odd one out") } else { Ok(entry.len()) }
///     })
///     .collect();
/// assert!(results[0].is_ok() && results[1].is_err());
/// assert_eq!(lines, ["item 1: committed", "item 2: rolled back"]);
/// ```
///
/// An `async_bracket(..)` or an async closure is not an `Acquire`: they are for
/// streams (`ScopedStreamExt`, feature `stream`), and the compiler says so when
/// one is given to an iterator adapter.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot acquire a resource for an iterator item of type `{Item}`",
    label = "not a sync acquire for `{Item}`",
    note = "an iterator adapter takes a closure `FnMut({Item}) -> Result<R, E>` \
            or `bracket(acquire).release(release)` whose acquire takes `{Item}`: \
            check the type of the closure's argument (`&T` against `&&T`)",
    note = "an `async_bracket(..)` or an `async |item| ..` closure is for streams: \
            turn the iterator into one with `futures::stream::iter(..)`, \
            or use a sync `bracket(..)` and sync closures"
)]
pub trait Acquire<Item> {
    /// The resource lent to the body.
    type Resource;
    /// The error of a failed acquire.
    type Error;
    /// The error of a failed release.
    type ReleaseError;

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
    /// use loopscope::{Acquire, Outcome, bracket};
    ///
    /// let mut numbers = bracket(|text: &str| text.parse::<u32>())
    ///     .release(|n: u32| if n % 2 == 0 { Ok(()) } else { Err("odd") });
    /// let mut n = numbers.acquire("41")?;
    /// n += 1; // the body
    /// assert_eq!(numbers.release(n, Outcome::Completed), Ok(()));
    /// assert!(numbers.acquire("forty-one").is_err());
    /// # Ok::<(), std::num::ParseIntError>(())
    /// ```
    fn acquire(&mut self, item: Item) -> Result<Self::Resource, Self::Error>;

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
    /// use loopscope::{Acquire, Outcome, bracket};
    ///
    /// let mut files = bracket(|name: &str| Ok::<_, ()>(name.to_owned()))
    ///     .release_with(|name, outcome| match outcome {
    ///         Outcome::Completed => Ok(()),
    ///         _ => Err(format!("{name}: rolled back")),
    ///     });
    /// let name = files.acquire("a.txt").unwrap();
    /// assert_eq!(files.release(name, Outcome::Failed), Err("a.txt: rolled back".to_owned()));
    /// ```
    fn release(
        &mut self,
        resource: Self::Resource,
        outcome: Outcome,
    ) -> Result<(), Self::ReleaseError>;
}

// `do_not_recommend`: when a value is not an `Acquire`, rustc names the trait
// and its hint above, not a closure bound of this impl that it could not meet
// ("expected a `FnMut(&str)` closure, found `AsyncWithRelease<..>`").
#[diagnostic::do_not_recommend]
impl<Item, R, E, F> Acquire<Item> for F
where
    F: FnMut(Item) -> Result<R, E>,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = Infallible;

    #[inline]
    fn acquire(&mut self, item: Item) -> Result<R, E> {
        self(item)
    }

    #[inline]
    fn release(&mut self, resource: R, _outcome: Outcome) -> Result<(), Infallible> {
        drop(resource);
        Ok(())
    }
}

/// Starts a bracket: `acquire` now, a release of your choice to follow.
///
/// `acquire` is a closure `FnMut(Item) -> Result<R, E>`. On its own,
/// `bracket(acquire)` behaves like `acquire` (the resource is released by `Drop`). Call [`.release(..)`](Bracket::release) to release it with a
/// closure that may fail instead, so that errors `Drop` would swallow — a
/// `BufWriter`'s final flush, a file's `sync_all` — reach the caller.
///
/// # Examples
///
/// ```
/// use std::io::{self, BufWriter, Write};
/// use loopscope::prelude::*;
///
/// let mut outputs: Vec<Vec<u8>> = Vec::new();
/// ["alpha", "beta"].iter().for_each_scoped(
///     bracket(|_name: &&str| Ok::<_, io::Error>(BufWriter::new(Vec::new())))
///         .release(|writer: BufWriter<Vec<u8>>| {
///             // `into_inner` flushes and reports the error that `Drop` would ignore.
///             outputs.push(writer.into_inner().map_err(io::IntoInnerError::into_error)?);
///             Ok::<_, io::Error>(())
///         }),
///     |writer| writeln!(writer, "done"),
/// )?;
/// assert_eq!(outputs, [b"done\n".to_vec(), b"done\n".to_vec()]);
/// # Ok::<(), io::Error>(())
/// ```
#[doc(alias("defer", "using", "with", "try-with-resources"))]
pub fn bracket<Item, R, E, A>(acquire: A) -> Bracket<A, R>
where
    A: FnMut(Item) -> Result<R, E>,
{
    Bracket {
        acquire,
        resource: PhantomData,
    }
}

/// An acquire waiting for its release; made by [`bracket`].
///
/// It already implements [`Acquire`] with release by `Drop`;
/// [`release`](Bracket::release) gives it a release that may fail.
///
/// `R` is the resource type, named here so that the release closure's argument
/// needs no type annotation.
///
/// # Examples
///
/// ```
/// use loopscope::prelude::*;
///
/// // Without `.release(..)`, a bracket releases by `Drop`, like the closure alone.
/// let doubled: Vec<_> = [1, 2]
///     .into_iter()
///     .try_map_scoped(bracket(|n: i32| Ok::<_, ()>(vec![n; 2])), |v| Ok::<_, ()>(v.len()))
///     .collect();
/// assert_eq!(doubled, [Ok(2), Ok(2)]);
/// ```
#[must_use = "a bracket does nothing until it is given to a scoped adapter"]
pub struct Bracket<A, R> {
    acquire: A,
    resource: PhantomData<fn() -> R>,
}

impl<A, R> Bracket<A, R> {
    /// Releases each resource with `release` instead of dropping it.
    ///
    /// `release` takes the resource by value and returns `Result<(), E>`; an `Err`
    /// reaches the caller as [`ScopedError::Release`](crate::ScopedError::Release),
    /// or beside the body's error in [`ScopedError::Use`](crate::ScopedError::Use).
    /// It runs exactly once per acquired resource, also when the body fails or
    /// panics (its error is then lost with the panic).
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::prelude::*;
    ///
    /// let mut closed = Vec::new();
    /// let result = [1, 2, 3].into_iter().for_each_scoped(
    ///     bracket(|id: i32| Ok::<_, &str>(id)).release(|id| {
    ///         closed.push(id);
    ///         if id == 2 { Err("close failed") } else { Ok(()) }
    ///     }),
    ///     |_id| Ok::<_, &str>(()),
    /// );
    /// let error = result.unwrap_err();
    /// assert_eq!((error.index(), error.release_error()), (1, Some(&"close failed")));
    /// assert_eq!(closed, [1, 2]); // fail-fast: item 3 was never acquired
    /// ```
    pub fn release<F, E>(self, release: F) -> WithRelease<A, R, F>
    where
        F: FnMut(R) -> Result<(), E>,
    {
        WithRelease {
            acquire: self.acquire,
            release,
            resource: PhantomData,
        }
    }
}

impl<A, R> Bracket<A, R> {
    /// Like [`release`](Bracket::release), but `release` is also told how the
    /// item's body ended, as an [`Outcome`]: commit what completed, roll back what
    /// failed or panicked.
    ///
    /// `release` takes the resource by value and the outcome, and returns
    /// `Result<(), E>`; it runs exactly once per acquired resource, with
    /// [`Outcome::Completed`] when the body returned `Ok`, [`Outcome::Failed`]
    /// when it returned `Err`, and [`Outcome::Panicked`] when it panicked (the
    /// panic resumes after the release).
    ///
    /// # Examples
    ///
    /// A transaction per item, committed only when the item's work completed:
    ///
    /// ```
    /// use loopscope::Outcome;
    /// use loopscope::prelude::*;
    ///
    /// let mut committed = Vec::new();
    /// let results: Vec<_> = [1, 2, 3]
    ///     .into_iter()
    ///     .try_map_scoped(
    ///         bracket(|id: u32| Ok::<_, String>(vec![id])).release_with(|rows, outcome| {
    ///             if outcome == Outcome::Completed {
    ///                 committed.extend(rows); // commit
    ///             } // otherwise: roll back, by dropping the rows
    ///             Ok::<_, String>(())
    ///         }),
    ///         |rows| {
    ///             rows.push(rows[0] * 10);
    ///             if rows[0] == 2 { Err("constraint violated") } else { Ok(rows.len()) }
    ///         },
    ///     )
    ///     .collect();
    /// assert!(results[1].is_err());
    /// assert_eq!(committed, [1, 10, 3, 30]);
    /// ```
    pub fn release_with<F, E>(self, release: F) -> WithRelease<A, R, WithOutcome<F>>
    where
        F: FnMut(R, Outcome) -> Result<(), E>,
    {
        WithRelease {
            acquire: self.acquire,
            release: WithOutcome { release },
            resource: PhantomData,
        }
    }
}

impl<A: Clone, R> Clone for Bracket<A, R> {
    fn clone(&self) -> Self {
        Self {
            acquire: self.acquire.clone(),
            resource: PhantomData,
        }
    }
}

impl<A, R> fmt::Debug for Bracket<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bracket").finish_non_exhaustive()
    }
}

impl<Item, A, R, E> Acquire<Item> for Bracket<A, R>
where
    A: FnMut(Item) -> Result<R, E>,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = Infallible;

    #[inline]
    fn acquire(&mut self, item: Item) -> Result<R, E> {
        (self.acquire)(item)
    }

    #[inline]
    fn release(&mut self, resource: R, _outcome: Outcome) -> Result<(), Infallible> {
        drop(resource);
        Ok(())
    }
}

/// An acquire with a release that may fail; made by
/// [`bracket`]`(acquire).release(release)`.
///
/// # Examples
///
/// ```
/// use loopscope::prelude::*;
///
/// fn open(byte: u8) -> Result<Vec<u8>, String> {
///     Ok(vec![byte])
/// }
/// fn flush(buffer: Vec<u8>) -> Result<(), String> {
///     if buffer.is_empty() { Err("empty buffer".into()) } else { Ok(()) }
/// }
///
/// // Plain functions can be given as they are.
/// let buffers = bracket(open).release(flush);
/// [1, 2].into_iter().for_each_scoped(buffers, |buffer| Ok::<_, String>(buffer.push(0)))?;
/// # Ok::<(), ScopedError<String, String, String>>(())
/// ```
#[must_use = "a bracket does nothing until it is given to a scoped adapter"]
pub struct WithRelease<A, R, F> {
    acquire: A,
    release: F,
    resource: PhantomData<fn() -> R>,
}

impl<A: Clone, R, F: Clone> Clone for WithRelease<A, R, F> {
    fn clone(&self) -> Self {
        Self {
            acquire: self.acquire.clone(),
            release: self.release.clone(),
            resource: PhantomData,
        }
    }
}

impl<A, R, F> fmt::Debug for WithRelease<A, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithRelease").finish_non_exhaustive()
    }
}

impl<Item, A, R, E, F, ER> Acquire<Item> for WithRelease<A, R, F>
where
    A: FnMut(Item) -> Result<R, E>,
    F: FnMut(R) -> Result<(), ER>,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = ER;

    #[inline]
    fn acquire(&mut self, item: Item) -> Result<R, E> {
        (self.acquire)(item)
    }

    #[inline]
    fn release(&mut self, resource: R, _outcome: Outcome) -> Result<(), ER> {
        (self.release)(resource)
    }
}

/// A release closure that is told each item's [`Outcome`]; made by
/// [`Bracket::release_with`] (and, with the `stream` feature, by
/// `AsyncBracket::release_with`).
///
/// It only marks the closure as one that takes `(resource, outcome)`: a
/// [`WithRelease`] holding it passes the outcome on.
///
/// # Examples
///
/// ```
/// use loopscope::{Outcome, WithOutcome, WithRelease};
/// use loopscope::prelude::*;
///
/// fn open(id: u32) -> Result<u32, ()> { Ok(id) }
/// fn close(_id: u32, outcome: Outcome) -> Result<(), ()> {
///     if outcome.is_completed() { Ok(()) } else { Err(()) }
/// }
///
/// let brackets: WithRelease<_, u32, WithOutcome<_>> = bracket(open).release_with(close);
/// let error = [1, 2]
///     .into_iter()
///     .for_each_scoped(brackets, |id| if *id == 2 { Err(()) } else { Ok(()) })
///     .unwrap_err();
/// // Item 1's body failed, so `close` was told `Failed`, and failed too.
/// assert_eq!((error.index(), error.release_error()), (1, Some(&())));
/// ```
#[derive(Clone)]
pub struct WithOutcome<F> {
    pub(crate) release: F,
}

impl<F> fmt::Debug for WithOutcome<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithOutcome").finish_non_exhaustive()
    }
}

impl<Item, A, R, E, F, ER> Acquire<Item> for WithRelease<A, R, WithOutcome<F>>
where
    A: FnMut(Item) -> Result<R, E>,
    F: FnMut(R, Outcome) -> Result<(), ER>,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = ER;

    #[inline]
    fn acquire(&mut self, item: Item) -> Result<R, E> {
        (self.acquire)(item)
    }

    #[inline]
    fn release(&mut self, resource: R, outcome: Outcome) -> Result<(), ER> {
        (self.release.release)(resource, outcome)
    }
}
