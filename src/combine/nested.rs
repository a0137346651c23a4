//! [`nested`]: an inner resource acquired from an outer one — a connection,
//! then a transaction on it.

use core::fmt;

use scopeguard::ScopeGuard;

use super::error::{BothAcquireError, BothReleaseError};
use super::inner::AcquireOn;
use super::{first_outcome, release_while_unwinding};
use crate::{Acquire, Outcome};

/// Acquires an outer resource per item, then an inner resource *from* it, and
/// releases them in reverse order: a connection, then a transaction on that
/// connection; a file, then a lock on it; a session, then a channel.
///
/// [`both`](super::both) gives each of its two acquires the item, so a second
/// step that needs the first resource — `BEGIN` on *this* connection — had to
/// live inside one unguarded acquire, and a failure or a cancellation between
/// the two steps left the first resource in a state nobody released (a pooled
/// connection going back to its pool inside a transaction). `nested` makes the
/// two steps two guarded parts:
///
/// - `outer` is anything a scoped adapter takes as its acquire: a closure, a
///   [`bracket`](crate::bracket), an [`Acquire`] of your own — or, with the
///   `stream` feature, an async closure or [`async_bracket`]. It gets the item
///   (no `Clone` needed).
/// - `inner` is acquired from the outer resource, `&mut Outer`, and released
///   with it lent again: a closure `FnMut(&mut Outer) -> Result<R, E>`
///   (released by `Drop`), a [`bracket_on`](super::bracket_on)`(begin)` with
///   `.release(|r, outer| ..)` or `.release_with(|r, outer, outcome| ..)`, or
///   an [`AcquireOn`] of your own; async: an async closure or
///   [`async_bracket_on`]. Both sync, or both async.
///
/// The inner resource never borrows the outer one (a resource cannot borrow
/// its neighbour): it is what the release needs to end the inner step — often
/// `()`, or a savepoint name — and the release runs `COMMIT` or `ROLLBACK` *on
/// the outer resource* it is lent.
///
/// Per item:
///
/// 1. `outer` is acquired; if that fails, nothing else happens:
///    [`BothAcquireError::First`].
/// 2. `inner` is acquired from it; if that fails, the outer resource is
///    released before the error is returned — told [`Outcome::Failed`] — and
///    [`BothAcquireError::Second`] keeps its release error too, if any.
/// 3. The body gets both, `&mut (Outer, Inner)`: `|(conn, tx)| ..`.
/// 4. The inner resource is released first, lent the outer one, told the
///    body's [`Outcome`]: [`Completed`](Outcome::Completed) (`COMMIT`),
///    [`Failed`](Outcome::Failed) or [`Panicked`](Outcome::Panicked)
///    (`ROLLBACK`). Then the outer resource is released, told the body's
///    outcome too — except that when the body completed but the inner release
///    failed (a `COMMIT` that failed), it is told `Failed`: the item failed.
///    The outer one is released even when the inner release failed;
///    [`BothReleaseError`] says which failed, and keeps both errors when both
///    did.
///
/// The errors are those of [`both`](super::both): the outer resource is the
/// "first", the inner one the "second". So `?` turns them into an
/// `std::io::Error` as it does `both`'s, when every part's errors are
/// `io::Error` or [`Infallible`](core::convert::Infallible).
///
/// **Panics.** If the body panics, both releases run (told `Panicked`), then the
/// panic resumes. If the inner acquire or release panics, the outer resource is
/// still released before the panic goes on: told `Panicked` when the parts are
/// sync; when they are async, the unwinding drops the future, and the outer
/// resource goes to its part's `release_on_cancel`, as on cancellation.
///
/// **Cancellation** (async). An adapter dropped while the inner acquire is
/// awaited — between the two steps — hands the outer resource to its part's
/// `release_on_cancel`. Dropped while the body runs, it hands the inner
/// resource to [`AsyncAcquireOn::release_on_cancel`], lent the outer one (by
/// default the inner resource is dropped), then the outer one to its part's
/// `release_on_cancel`. Dropped while the inner release is awaited, the inner
/// resource goes with that release's future, and the outer one to its part's
/// `release_on_cancel`. So the outer part's `release_on_cancel` is where a
/// connection whose transaction may still be open is rolled back or discarded
/// rather than handed back to its pool: an [`AsyncAcquire`] of your own, or an
/// outer [`async_bracket`] built with `.release_with(..).spawn_on_cancel()`
/// (feature `tokio`), whose release is then spawned, told
/// [`Outcome::Cancelled`]. A concurrent adapter that cancels the items in
/// flight at a failure awaits both releases, told `Cancelled`.
///
/// For three levels, nest again: in `nested(nested(a, b), c)`, `c` is acquired
/// from `&mut (A, B)` and sees both; the body gets `&mut ((A, B), C)`; the
/// releases run `c`, `b`, `a`.
///
/// # Examples
///
/// A connection per item, and a transaction on it committed only when the body
/// completed (the connection here is a stand-in that records its statements):
///
/// ```
/// use std::cell::RefCell;
/// use loopscope::{Outcome, bracket_on, nested};
/// use loopscope::prelude::*;
///
/// struct Connection {
///     id: u32,
///     statements: Vec<String>,
/// }
///
/// impl Connection {
///     fn open(id: u32) -> Result<Self, String> {
///         Ok(Connection { id, statements: Vec::new() })
///     }
///     fn execute(&mut self, sql: &str) -> Result<(), String> {
///         self.statements.push(sql.to_owned());
///         Ok(())
///     }
/// }
///
/// let closed = RefCell::new(Vec::new());
/// let results: Vec<_> = [1, 2]
///     .into_iter()
///     .try_map_scoped(
///         nested(
///             bracket(Connection::open).release(|conn| {
///                 closed.borrow_mut().push(conn.statements.join("; "));
///                 Ok::<_, String>(())
///             }),
///             bracket_on(|conn: &mut Connection| conn.execute("BEGIN")).release_with(
///                 |(), conn, outcome| {
///                     conn.execute(if outcome == Outcome::Completed { "COMMIT" } else { "ROLLBACK" })
///                 },
///             ),
///         ),
///         |(conn, ())| {
///             conn.execute(&format!("INSERT {}", conn.id))?;
///             if conn.id == 2 { Err("constraint violated".to_owned()) } else { Ok(conn.id) }
///         },
///     )
///     .collect();
/// assert!(results[0].is_ok() && results[1].is_err());
/// assert_eq!(
///     closed.into_inner(),
///     ["BEGIN; INSERT 1; COMMIT", "BEGIN; INSERT 2; ROLLBACK"],
/// );
/// ```
///
/// A `BEGIN` that fails: the connection is released at once, told `Failed`,
/// and the error says which step failed:
///
/// ```
/// use loopscope::{BothAcquireError, Outcome, nested};
/// use loopscope::prelude::*;
///
/// let mut released = Vec::new();
/// let error = [1]
///     .into_iter()
///     .for_each_scoped(
///         nested(
///             bracket(|id: u32| Ok::<_, &str>(id))
///                 .release_with(|id, outcome| Ok::<_, &str>(released.push((id, outcome)))),
///             |_conn: &mut u32| Err::<(), _>("database is locked"),
///         ),
///         |_pair| Ok::<_, &str>(()),
///     )
///     .unwrap_err();
/// assert!(matches!(
///     error,
///     ScopedError::Acquire {
///         index: 0,
///         source: BothAcquireError::Second { source: "database is locked", release: None },
///     }
/// ));
/// assert_eq!(released, [(1, Outcome::Failed)]);
/// ```
#[cfg_attr(
    feature = "stream",
    doc = "[`AsyncAcquire`]: crate::AsyncAcquire\n[`async_bracket`]: crate::async_bracket\n[`async_bracket_on`]: crate::async_bracket_on\n[`AsyncAcquireOn::release_on_cancel`]: crate::AsyncAcquireOn::release_on_cancel"
)]
#[cfg_attr(
    not(feature = "stream"),
    doc = "[`AsyncAcquire`]: https://docs.rs/loopscope/0.1/loopscope/trait.AsyncAcquire.html\n[`async_bracket`]: https://docs.rs/loopscope/0.1/loopscope/fn.async_bracket.html\n[`async_bracket_on`]: https://docs.rs/loopscope/0.1/loopscope/fn.async_bracket_on.html\n[`AsyncAcquireOn::release_on_cancel`]: https://docs.rs/loopscope/0.1/loopscope/trait.AsyncAcquireOn.html#method.release_on_cancel"
)]
#[doc(alias("then", "and_then", "dependent", "transaction"))]
pub fn nested<A1, A2>(outer: A1, inner: A2) -> Nested<A1, A2> {
    Nested { outer, inner }
}

/// An outer acquire and an inner one acquired from its resource; released
/// inner first; made by [`nested`].
///
/// Its resource is the pair `(Outer, Inner)`; its errors are
/// [`BothAcquireError`] and [`BothReleaseError`] (the outer part is the
/// "first"). It implements [`Acquire`] when `outer` does and `inner` is an
/// [`AcquireOn`] of its resource, and with the `stream` feature
/// [`AsyncAcquire`] when `outer` is an [`AsyncAcquire`] and `inner` an
/// [`AsyncAcquireOn`]. See [`nested`] for the steps, the outcomes, panics and
/// cancellation.
///
/// Its async implementation never claims [`RELEASE_IS_DROP`], as
/// [`Both`](super::Both)'s does not: dropping the pair would drop the outer
/// resource before the inner one.
///
/// # Examples
///
/// ```
/// use loopscope::nested;
/// use loopscope::prelude::*;
///
/// let lines: Vec<_> = ["a\nb", "c"]
///     .into_iter()
///     .try_map_scoped(
///         nested(|text: &str| Ok::<_, ()>(text.to_owned()), |text: &mut String| {
///             Ok::<_, ()>(text.lines().count())
///         }),
///         |(text, lines)| Ok::<_, ()>(format!("{}: {lines}", text.len())),
///     )
///     .collect();
/// assert_eq!(lines, [Ok("3: 2".to_owned()), Ok("1: 1".to_owned())]);
/// ```
#[cfg_attr(
    feature = "stream",
    doc = "[`AsyncAcquire`]: crate::AsyncAcquire\n[`AsyncAcquireOn`]: crate::AsyncAcquireOn\n[`RELEASE_IS_DROP`]: crate::AsyncAcquire::RELEASE_IS_DROP"
)]
#[cfg_attr(
    not(feature = "stream"),
    doc = "[`AsyncAcquire`]: https://docs.rs/loopscope/0.1/loopscope/trait.AsyncAcquire.html\n[`AsyncAcquireOn`]: https://docs.rs/loopscope/0.1/loopscope/trait.AsyncAcquireOn.html\n[`RELEASE_IS_DROP`]: https://docs.rs/loopscope/0.1/loopscope/trait.AsyncAcquire.html#associatedconstant.RELEASE_IS_DROP"
)]
#[must_use = "`nested` does nothing until it is given to a scoped adapter"]
#[derive(Clone)]
pub struct Nested<A1, A2> {
    outer: A1,
    inner: A2,
}

impl<A1, A2> Nested<A1, A2> {
    /// The two acquires, outer and inner.
    ///
    /// # Examples
    ///
    /// ```
    /// let pair = loopscope::nested(1, "two");
    /// assert_eq!(pair.into_parts(), (1, "two"));
    /// ```
    #[must_use]
    pub fn into_parts(self) -> (A1, A2) {
        (self.outer, self.inner)
    }
}

impl<A1, A2> fmt::Debug for Nested<A1, A2> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Acquires are mostly closures, which have no `Debug`.
        f.debug_struct("Nested").finish_non_exhaustive()
    }
}

impl<Item, A1, A2> Acquire<Item> for Nested<A1, A2>
where
    A1: Acquire<Item>,
    A2: AcquireOn<A1::Resource>,
{
    type Resource = (A1::Resource, A2::Resource);
    type Error = BothAcquireError<A1::Error, A2::Error, A1::ReleaseError>;
    type ReleaseError = BothReleaseError<A1::ReleaseError, A2::ReleaseError>;

    #[inline]
    fn acquire(&mut self, item: Item) -> Result<Self::Resource, Self::Error> {
        let Self { outer, inner } = self;
        let resource1 = outer
            .acquire(item)
            .map_err(|source| BothAcquireError::First { source })?;
        // The guard only fires if the inner acquire panics; every other path
        // disarms it and releases the outer resource in the open.
        let mut armed = scopeguard::guard(resource1, |resource1| {
            release_while_unwinding(outer, resource1);
        });
        let acquired = inner.acquire(&mut armed);
        let resource1 = ScopeGuard::into_inner(armed);
        match acquired {
            Ok(resource2) => Ok((resource1, resource2)),
            Err(source) => Err(BothAcquireError::Second {
                source,
                release: outer.release(resource1, Outcome::Failed).err(),
            }),
        }
    }

    #[inline]
    fn release(
        &mut self,
        (resource1, resource2): Self::Resource,
        outcome: Outcome,
    ) -> Result<(), Self::ReleaseError> {
        let Self { outer, inner } = self;
        // As in `acquire`: released in the open unless the inner release panics.
        let mut armed = scopeguard::guard(resource1, |resource1| {
            release_while_unwinding(outer, resource1);
        });
        let released2 = inner.release(resource2, &mut armed, outcome);
        let resource1 = ScopeGuard::into_inner(armed);
        let released1 = outer.release(resource1, first_outcome(outcome, &released2));
        BothReleaseError::check(released1, released2)
    }
}

/// The async implementation, for the stream adapters.
#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
impl<Item, A1, A2> crate::AsyncAcquire<Item> for Nested<A1, A2>
where
    A1: crate::AsyncAcquire<Item>,
    A2: super::AsyncAcquireOn<A1::Resource>,
{
    type Resource = (A1::Resource, A2::Resource);
    type Error = BothAcquireError<A1::Error, A2::Error, A1::ReleaseError>;
    type ReleaseError = BothReleaseError<A1::ReleaseError, A2::ReleaseError>;

    // Never `true`, even when both parts release by `Drop`: the adapters
    // would then drop the pair, outer resource first — the wrong order.
    const RELEASE_IS_DROP: bool = false;

    async fn acquire(self, item: Item) -> Result<Self::Resource, Self::Error> {
        let Self { outer, inner } = self;
        let resource1 = match outer.clone().acquire(item).await {
            Ok(resource) => resource,
            Err(source) => return Err(BothAcquireError::First { source }),
        };
        // If this future is dropped (cancelled) while the inner acquire runs —
        // between the two steps — or that acquire panics, the guard hands the
        // outer resource to its `release_on_cancel`.
        let mut armed = scopeguard::guard((outer, resource1), |(outer, resource1)| {
            outer.release_on_cancel(resource1);
        });
        let acquired = inner.acquire(&mut armed.1).await;
        let (outer, resource1) = ScopeGuard::into_inner(armed);
        match acquired {
            Ok(resource2) => Ok((resource1, resource2)),
            Err(source) => Err(BothAcquireError::Second {
                source,
                release: outer.release(resource1, Outcome::Failed).await.err(),
            }),
        }
    }

    async fn release(
        self,
        (resource1, resource2): Self::Resource,
        outcome: Outcome,
    ) -> Result<(), Self::ReleaseError> {
        let Self { outer, inner } = self;
        // As in `acquire`, while the inner resource's release is awaited (its
        // future owns the inner resource, and drops it if cancelled).
        let mut armed = scopeguard::guard((outer, resource1), |(outer, resource1)| {
            outer.release_on_cancel(resource1);
        });
        let released2 = inner.release(resource2, &mut armed.1, outcome).await;
        let (outer, resource1) = ScopeGuard::into_inner(armed);
        let released1 = outer
            .release(resource1, first_outcome(outcome, &released2))
            .await;
        BothReleaseError::check(released1, released2)
    }

    fn release_on_cancel(self, (mut resource1, resource2): Self::Resource) {
        // Unguarded, as `Both`'s: if the inner one panics, the outer resource
        // is dropped by the unwinding — a `release_on_cancel` of its own could
        // panic as well, which during unwinding would abort.
        self.inner.release_on_cancel(resource2, &mut resource1);
        self.outer.release_on_cancel(resource1);
    }
}
