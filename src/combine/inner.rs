//! The inner part of [`nested`](super::nested): a resource acquired *from* the
//! outer one (a transaction from its connection, a lock from its file), and
//! released with the outer one lent again.

use core::convert::Infallible;
use core::fmt;
use core::marker::PhantomData;

use crate::{Outcome, WithOutcome};

/// Acquires a resource from an outer resource, and releases it with the outer
/// resource lent again: the inner part of [`nested`](super::nested).
///
/// A transaction that borrows its connection (rusqlite's `Transaction<'conn>`)
/// cannot sit beside that connection in one resource. So the inner resource is
/// what the transaction needs to be ended — often nothing, `()`, or a savepoint
/// name — and both [`acquire`](AcquireOn::acquire) (`BEGIN`) and
/// [`release`](AcquireOn::release) (`COMMIT` or `ROLLBACK`) are given the outer
/// resource, `&mut Outer`, to run on.
///
/// It is implemented for:
///
/// - every closure `FnMut(&mut Outer) -> Result<R, E>`: the inner resource is
///   released by dropping it, and the release cannot fail
///   ([`ReleaseError`](AcquireOn::ReleaseError) is [`Infallible`]);
/// - [`bracket_on`]`(acquire)`, the same as `acquire` itself;
/// - [`bracket_on`]`(acquire).release(release)`, whose `release` closure
///   `FnMut(R, &mut Outer) -> Result<(), E>` is called instead of `Drop`, and
///   `.release_with(release)`, whose closure is also told the item's
///   [`Outcome`]: `FnMut(R, &mut Outer, Outcome) -> Result<(), E>`.
///
/// # Examples
///
/// A type of your own: a savepoint on a journal, kept or dropped by outcome.
///
/// ```
/// use std::convert::Infallible;
/// use loopscope::{AcquireOn, Outcome};
///
/// struct Savepoint;
///
/// impl AcquireOn<Vec<String>> for Savepoint {
///     type Resource = usize;
///     type Error = Infallible;
///     type ReleaseError = Infallible;
///
///     fn acquire(&mut self, journal: &mut Vec<String>) -> Result<usize, Infallible> {
///         Ok(journal.len())
///     }
///
///     fn release(
///         &mut self,
///         mark: usize,
///         journal: &mut Vec<String>,
///         outcome: Outcome,
///     ) -> Result<(), Infallible> {
///         if !outcome.is_completed() {
///             journal.truncate(mark); // roll back to the savepoint
///         }
///         Ok(())
///     }
/// }
///
/// let mut journal = vec!["kept".to_owned()];
/// let mark = Savepoint.acquire(&mut journal)?;
/// journal.push("undone".to_owned());
/// Savepoint.release(mark, &mut journal, Outcome::Failed)?;
/// assert_eq!(journal, ["kept"]);
/// # Ok::<(), Infallible>(())
/// ```
pub trait AcquireOn<Outer> {
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
    /// use loopscope::{AcquireOn, bracket_on};
    ///
    /// let mut lines = bracket_on(|text: &mut String| Ok::<_, ()>(text.lines().count()));
    /// assert_eq!(lines.acquire(&mut "a\nb".to_owned()), Ok(2));
    /// ```
    fn acquire(&mut self, outer: &mut Outer) -> Result<Self::Resource, Self::Error>;

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
    /// use loopscope::{AcquireOn, Outcome, bracket_on};
    ///
    /// let mut commits = bracket_on(|log: &mut Vec<&str>| Ok::<_, ()>(log.push("BEGIN")))
    ///     .release_with(|(), log, outcome| {
    ///         log.push(if outcome.is_completed() { "COMMIT" } else { "ROLLBACK" });
    ///         Ok::<_, ()>(())
    ///     });
    /// let mut log = Vec::new();
    /// let begun = commits.acquire(&mut log).unwrap();
    /// commits.release(begun, &mut log, Outcome::Panicked).unwrap();
    /// assert_eq!(log, ["BEGIN", "ROLLBACK"]);
    /// ```
    fn release(
        &mut self,
        resource: Self::Resource,
        outer: &mut Outer,
        outcome: Outcome,
    ) -> Result<(), Self::ReleaseError>;
}

impl<Outer, R, E, F> AcquireOn<Outer> for F
where
    F: FnMut(&mut Outer) -> Result<R, E>,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = Infallible;

    #[inline]
    fn acquire(&mut self, outer: &mut Outer) -> Result<R, E> {
        self(outer)
    }

    #[inline]
    fn release(
        &mut self,
        resource: R,
        _outer: &mut Outer,
        _outcome: Outcome,
    ) -> Result<(), Infallible> {
        drop(resource);
        Ok(())
    }
}

/// Starts an inner bracket for [`nested`](super::nested): `acquire` from the
/// outer resource now, a release of your choice to follow.
///
/// `acquire` is a closure `FnMut(&mut Outer) -> Result<R, E>`; write the outer
/// resource's type on its argument (`|conn: &mut Connection| ..`), as
/// [`nested`](super::nested) cannot tell it the type. On its own,
/// `bracket_on(acquire)` behaves like `acquire` (the inner resource is released
/// by `Drop`). [`.release(..)`](BracketOn::release) and
/// [`.release_with(..)`](BracketOn::release_with) give it a release that is
/// lent the outer resource again and may fail.
///
/// # Examples
///
/// ```
/// use loopscope::{Outcome, bracket_on, nested};
/// use loopscope::prelude::*;
///
/// let mut done = Vec::new();
/// [1, 2].into_iter().for_each_scoped(
///     nested(
///         |id: u32| Ok::<_, ()>(vec![id]),
///         bracket_on(|rows: &mut Vec<u32>| Ok::<_, ()>(rows.len()))
///             .release_with(|start, rows, outcome| {
///                 if outcome == Outcome::Completed {
///                     done.extend_from_slice(&rows[start..]);
///                 }
///                 Ok::<_, ()>(())
///             }),
///     ),
///     |(rows, _start)| Ok::<_, ()>(rows.push(rows[0] * 10)),
/// ).unwrap();
/// assert_eq!(done, [10, 20]);
/// ```
#[doc(alias("then", "dependent", "savepoint"))]
pub fn bracket_on<Outer, R, E, A>(acquire: A) -> BracketOn<A, Outer, R>
where
    A: FnMut(&mut Outer) -> Result<R, E>,
{
    BracketOn {
        acquire,
        types: PhantomData,
    }
}

/// An inner acquire waiting for its release; made by [`bracket_on`].
///
/// It already implements [`AcquireOn`] with release by `Drop`. `Outer` and `R`
/// are the outer and the inner resource's types, named here so that the
/// release closure's arguments need no type annotations.
///
/// # Examples
///
/// ```
/// use loopscope::{AcquireOn, Outcome, bracket_on};
///
/// let mut len = bracket_on(|s: &mut String| Ok::<_, ()>(s.len()));
/// let mut text = "abc".to_owned();
/// let n = len.acquire(&mut text).unwrap();
/// // `BracketOn::release` builds a release: call the trait's method by its path.
/// assert_eq!(AcquireOn::release(&mut len, n, &mut text, Outcome::Completed), Ok(()));
/// ```
#[must_use = "a bracket does nothing until it is given to a scoped adapter"]
pub struct BracketOn<A, Outer, R> {
    acquire: A,
    types: PhantomData<fn(&mut Outer) -> R>,
}

impl<A, Outer, R> BracketOn<A, Outer, R> {
    /// Releases each inner resource with `release`, lent the outer resource,
    /// instead of dropping it.
    ///
    /// `release` is `FnMut(R, &mut Outer) -> Result<(), E>`, such as a file's
    /// unlock. It runs exactly once per inner resource acquired, before the
    /// outer resource is released — also when the body fails or panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::{bracket_on, nested};
    /// use loopscope::prelude::*;
    ///
    /// let mut unlocked = Vec::new();
    /// [7].into_iter().for_each_scoped(
    ///     nested(
    ///         |id: u32| Ok::<_, ()>(format!("file {id}")),
    ///         bracket_on(|file: &mut String| Ok::<_, ()>(file.push_str(" (locked)")))
    ///             .release(|(), file| Ok::<_, ()>(unlocked.push(file.clone()))),
    ///     ),
    ///     |(file, ())| Ok::<_, ()>(assert!(file.ends_with("(locked)"))),
    /// ).unwrap();
    /// assert_eq!(unlocked, ["file 7 (locked)"]);
    /// ```
    pub fn release<F, E>(self, release: F) -> WithReleaseOn<A, Outer, R, F>
    where
        F: FnMut(R, &mut Outer) -> Result<(), E>,
    {
        WithReleaseOn {
            acquire: self.acquire,
            release,
            types: PhantomData,
        }
    }

    /// Like [`release`](BracketOn::release), but `release` is also told how the
    /// item's body ended: `FnMut(R, &mut Outer, Outcome) -> Result<(), E>` —
    /// `COMMIT` on the connection when the body completed, `ROLLBACK` otherwise.
    ///
    /// It is told [`Outcome::Completed`] when the body returned `Ok`,
    /// [`Outcome::Failed`] when it returned `Err`, and [`Outcome::Panicked`]
    /// when it panicked (the panic resumes after both releases).
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::{Outcome, bracket_on, nested};
    /// use loopscope::prelude::*;
    ///
    /// let results: Vec<_> = [1, 2]
    ///     .into_iter()
    ///     .try_map_scoped(
    ///         nested(
    ///             |_id: u32| Ok::<_, ()>(Vec::<&str>::new()),
    ///             bracket_on(|log: &mut Vec<&str>| Ok::<_, ()>(log.push("BEGIN")))
    ///                 .release_with(|(), log, outcome| {
    ///                     log.push(if outcome == Outcome::Completed { "COMMIT" } else { "ROLLBACK" });
    ///                     assert_eq!(log.len(), 3);
    ///                     Ok::<_, ()>(())
    ///                 }),
    ///         ),
    ///         |(log, ())| {
    ///             log.push("INSERT");
    ///             if log.len() > 5 { Ok(()) } else { Err("constraint violated") }
    ///         },
    ///     )
    ///     .collect();
    /// assert!(results.iter().all(Result::is_err));
    /// ```
    pub fn release_with<F, E>(self, release: F) -> WithReleaseOn<A, Outer, R, WithOutcome<F>>
    where
        F: FnMut(R, &mut Outer, Outcome) -> Result<(), E>,
    {
        WithReleaseOn {
            acquire: self.acquire,
            release: WithOutcome { release },
            types: PhantomData,
        }
    }
}

impl<A: Clone, Outer, R> Clone for BracketOn<A, Outer, R> {
    fn clone(&self) -> Self {
        Self {
            acquire: self.acquire.clone(),
            types: PhantomData,
        }
    }
}

impl<A, Outer, R> fmt::Debug for BracketOn<A, Outer, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BracketOn").finish_non_exhaustive()
    }
}

impl<Outer, A, R, E> AcquireOn<Outer> for BracketOn<A, Outer, R>
where
    A: FnMut(&mut Outer) -> Result<R, E>,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = Infallible;

    #[inline]
    fn acquire(&mut self, outer: &mut Outer) -> Result<R, E> {
        (self.acquire)(outer)
    }

    #[inline]
    fn release(
        &mut self,
        resource: R,
        _outer: &mut Outer,
        _outcome: Outcome,
    ) -> Result<(), Infallible> {
        drop(resource);
        Ok(())
    }
}

/// An inner acquire with a release that is lent the outer resource and may
/// fail; made by [`bracket_on`]`(acquire).release(release)` or
/// `.release_with(release)`.
///
/// # Examples
///
/// ```
/// use loopscope::{AcquireOn, Outcome, WithReleaseOn, bracket_on};
///
/// fn begin(log: &mut Vec<&'static str>) -> Result<(), String> {
///     log.push("BEGIN");
///     Ok(())
/// }
/// fn end((): (), log: &mut Vec<&'static str>, outcome: Outcome) -> Result<(), String> {
///     log.push(if outcome.is_completed() { "COMMIT" } else { "ROLLBACK" });
///     Ok(())
/// }
///
/// // Plain functions can be given as they are.
/// let mut transactions: WithReleaseOn<_, Vec<&str>, (), _> = bracket_on(begin).release_with(end);
/// let mut log = Vec::new();
/// transactions.acquire(&mut log)?;
/// transactions.release((), &mut log, Outcome::Completed)?;
/// assert_eq!(log, ["BEGIN", "COMMIT"]);
/// # Ok::<(), String>(())
/// ```
#[must_use = "a bracket does nothing until it is given to a scoped adapter"]
pub struct WithReleaseOn<A, Outer, R, F> {
    acquire: A,
    release: F,
    types: PhantomData<fn(&mut Outer) -> R>,
}

impl<A: Clone, Outer, R, F: Clone> Clone for WithReleaseOn<A, Outer, R, F> {
    fn clone(&self) -> Self {
        Self {
            acquire: self.acquire.clone(),
            release: self.release.clone(),
            types: PhantomData,
        }
    }
}

impl<A, Outer, R, F> fmt::Debug for WithReleaseOn<A, Outer, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithReleaseOn").finish_non_exhaustive()
    }
}

impl<Outer, A, R, E, F, ER> AcquireOn<Outer> for WithReleaseOn<A, Outer, R, F>
where
    A: FnMut(&mut Outer) -> Result<R, E>,
    F: FnMut(R, &mut Outer) -> Result<(), ER>,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = ER;

    #[inline]
    fn acquire(&mut self, outer: &mut Outer) -> Result<R, E> {
        (self.acquire)(outer)
    }

    #[inline]
    fn release(&mut self, resource: R, outer: &mut Outer, _outcome: Outcome) -> Result<(), ER> {
        (self.release)(resource, outer)
    }
}

impl<Outer, A, R, E, F, ER> AcquireOn<Outer> for WithReleaseOn<A, Outer, R, WithOutcome<F>>
where
    A: FnMut(&mut Outer) -> Result<R, E>,
    F: FnMut(R, &mut Outer, Outcome) -> Result<(), ER>,
{
    type Resource = R;
    type Error = E;
    type ReleaseError = ER;

    #[inline]
    fn acquire(&mut self, outer: &mut Outer) -> Result<R, E> {
        (self.acquire)(outer)
    }

    #[inline]
    fn release(&mut self, resource: R, outer: &mut Outer, outcome: Outcome) -> Result<(), ER> {
        (self.release.release)(resource, outer, outcome)
    }
}
