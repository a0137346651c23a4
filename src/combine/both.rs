//! [`both`]: two acquires as one, for two resources per item.

use core::fmt;

use scopeguard::ScopeGuard;

use super::error::{BothAcquireError, BothReleaseError};
use super::{first_outcome, release_while_unwinding};
use crate::{Acquire, Outcome};

/// Acquires two resources per item, in order, and releases them in reverse order.
///
/// `first` and `second` are anything a scoped adapter takes as its acquire: plain
/// closures (released by `Drop`), [`bracket`](crate::bracket)s with a release of
/// their own, a type implementing [`Acquire`] — and, with the `stream` feature,
/// async closures and [`async_bracket`]s (both parts sync,
/// or both async). Each one gets the item (a clone of it for `first`, hence
/// `Item: Clone`: pass `&Path`s, indexes, ids). The body gets `&mut (R1, R2)`,
/// which it can take apart: `|(input, output)| ...`.
///
/// Per item:
///
/// 1. `first` is acquired; if that fails, nothing else happens:
///    [`BothAcquireError::First`].
/// 2. `second` is acquired; if that fails, the first resource is released before
///    the error is returned — told [`Outcome::Failed`] — and
///    [`BothAcquireError::Second`] keeps the release error too, if any.
/// 3. After the body, the second resource is released, then the first, both told
///    the body's [`Outcome`]. The first is released even when releasing the second
///    failed; [`BothReleaseError`] says which failed, and keeps both errors when
///    both did.
/// 4. When the body completed but releasing the second resource failed, the item
///    fails ([`ScopedError::Release`](crate::ScopedError::Release)), so the first
///    resource's release is told [`Outcome::Failed`], not `Completed`: a
///    transaction released with [`release_with`](crate::Bracket::release_with)
///    rolls back rather than commits when the output file it goes with could not
///    be synced. (A failed or panicked body stays `Failed` or `Panicked`.)
///
/// If the second acquire or release panics, the first resource is still released
/// before the panic goes on: told [`Outcome::Panicked`] when the parts are sync;
/// when they are async, the unwinding drops the future, and the first resource
/// goes to its part's `release_on_cancel`, as on cancellation. A cancelled async
/// adapter hands each resource it holds to its part's `release_on_cancel`, second
/// one first.
///
/// For three resources or more, nest: `both(a, both(b, c))` lends
/// `&mut (ra, (rb, rc))`, acquires `a`, `b`, `c` and releases `c`, `b`, `a`.
///
/// # Examples
///
/// Copy each input file to an output file, each output synced before the next
/// item — at most one input and one output open at a time:
///
/// ```
/// use std::fs::{self, File};
/// use std::io;
/// use std::path::PathBuf;
/// use loopscope::both;
/// use loopscope::prelude::*;
///
/// # let dir = tempfile::tempdir()?;
/// # for name in ["a.log", "b.log"] { fs::write(dir.path().join(name), "GET /\n")?; }
/// let out = dir.path().join("out");
/// fs::create_dir(&out)?;
/// let inputs = [dir.path().join("a.log"), dir.path().join("b.log")];
/// inputs.iter().for_each_scoped(
///     both(
///         File::open,
///         bracket(|path: &PathBuf| File::create(out.join(path.file_name().unwrap())))
///             .release(|file: File| file.sync_all()),
///     ),
///     |(input, output)| io::copy(input, output).map(drop),
/// )?;
/// assert_eq!(fs::read_to_string(out.join("b.log"))?, "GET /\n");
/// # Ok::<(), io::Error>(())
/// ```
///
/// A transaction and an output file per item: when the output cannot be synced,
/// the item fails, so its transaction — the first resource — rolls back:
///
/// ```
/// use std::cell::RefCell;
/// use std::io;
/// use loopscope::{Outcome, both};
/// use loopscope::prelude::*;
///
/// let committed = RefCell::new(Vec::new());
/// let transaction = bracket(|id: u32| Ok::<_, io::Error>(id)).release_with(|id, outcome| {
///     if outcome == Outcome::Completed {
///         committed.borrow_mut().push(id); // COMMIT
///     } // otherwise ROLLBACK
///     Ok::<_, io::Error>(())
/// });
/// let output = bracket(|id: u32| Ok::<_, io::Error>(id)).release(|id| {
///     // `output.sync_all()`, on a disk that fills up at item 2
///     if id == 2 { Err(io::Error::other("disk full")) } else { Ok(()) }
/// });
/// let results: Vec<_> = [1, 2, 3]
///     .into_iter()
///     .try_map_scoped(both(transaction, output), |(id, _output)| Ok::<_, io::Error>(*id))
///     .collect();
/// assert!(results[1].is_err()); // the body completed, the output's release failed
/// assert_eq!(committed.into_inner(), [1, 3]);
/// ```
///
/// Three resources, and the order they are acquired and released in; `?` turns
/// the nested errors into an `io::Error` too:
///
/// ```
/// use std::cell::RefCell;
/// use std::io;
/// use loopscope::both;
/// use loopscope::prelude::*;
///
/// let log = RefCell::new(Vec::new());
/// let part = |name: &'static str| {
///     let log = &log;
///     bracket(move |_item: u8| {
///         log.borrow_mut().push(format!("acquire {name}"));
///         Ok::<_, io::Error>(name)
///     })
///     .release(move |name| {
///         log.borrow_mut().push(format!("release {name}"));
///         Ok::<_, io::Error>(())
///     })
/// };
/// [0].into_iter().for_each_scoped(
///     both(part("a"), both(part("b"), part("c"))),
///     |(a, (b, c))| Ok::<_, io::Error>(log.borrow_mut().push(format!("use {a} {b} {c}"))),
/// )?;
/// assert_eq!(
///     log.into_inner(),
///     ["acquire a", "acquire b", "acquire c", "use a b c", "release c", "release b", "release a"],
/// );
/// # Ok::<(), io::Error>(())
/// ```
#[cfg_attr(feature = "stream", doc = "[`async_bracket`]: crate::async_bracket")]
#[cfg_attr(
    not(feature = "stream"),
    doc = "[`async_bracket`]: https://docs.rs/loopscope/0.1/loopscope/fn.async_bracket.html"
)]
pub fn both<A1, A2>(first: A1, second: A2) -> Both<A1, A2> {
    Both { first, second }
}

/// Two acquires as one: the first resource, then the second, released in reverse
/// order; made by [`both`].
///
/// Its resource is the pair `(R1, R2)`; its errors are [`BothAcquireError`] and
/// [`BothReleaseError`]. Each release is told the body's [`Outcome`], except that
/// the first resource's is told [`Outcome::Failed`] when the body completed but
/// releasing the second resource failed (the item as a whole failed), and
/// [`Outcome::Panicked`] when that release panicked. It implements [`Acquire`] when both parts do, and with
/// the `stream` feature [`AsyncAcquire`] when both
/// parts do; the item
/// type must be `Clone` in every case.
///
/// Its async implementations never claim
/// [`RELEASE_IS_DROP`], even when both
/// parts release by `Drop`: dropping the pair would drop the first resource
/// before the second, and `Both` keeps the reverse order on every path. The cost
/// is the adapter's guarded path (a cancellation guard and `catch_unwind` per
/// item), which is small beside two real acquires.
///
/// A cancelled async adapter hands the second resource, then the first, to
/// their parts' `release_on_cancel`. Two parts built with `.spawn_on_cancel()`
/// (feature `tokio`) spawn their releases as two tasks, which the runtime may run
/// in either order.
///
/// A closure part that calls a method on the item needs the item's type written
/// out (`|path: &PathBuf| ...`): `both` cannot tell the closure what the adapter
/// will pass it, as [`bracket`](crate::bracket) cannot either.
///
/// # Examples
///
/// ```
/// use loopscope::both;
/// use loopscope::prelude::*;
///
/// let pairs: Vec<_> = [1, 2]
///     .into_iter()
///     .try_map_scoped(
///         both(|n: u32| Ok::<_, ()>(n * 10), |n: u32| Ok::<_, ()>(n.to_string())),
///         |(tens, text)| Ok::<_, ()>(format!("{tens}/{text}")),
///     )
///     .collect();
/// assert_eq!(pairs, [Ok("10/1".to_owned()), Ok("20/2".to_owned())]);
/// ```
///
/// Async parts, here a connection closed by an awaited release and a scratch
/// buffer, with at most 4 items — 8 resources — live at once:
///
/// ```
/// use std::sync::Mutex;
/// use futures::stream::{self, StreamExt};
/// use loopscope::both;
/// use loopscope::prelude::*;
///
/// # futures::executor::block_on(async {
/// let closed = Mutex::new(0);
/// let connections = async_bracket(async |id: u32| Ok::<_, String>(format!("connection {id}")))
///     .release(|_connection| {
///         *closed.lock().unwrap() += 1;
///         async { Ok::<_, String>(()) } // e.g. `stream.shutdown().await`
///     });
/// let scratch = async |_id: u32| Ok::<_, String>(Vec::<u8>::with_capacity(64));
/// stream::iter(0..10)
///     .for_each_scoped_concurrent(4, both(connections, scratch), async |(connection, buffer)| {
///         buffer.extend_from_slice(connection.as_bytes());
///         Ok::<_, String>(())
///     })
///     .await
///     .map_err(|error| error.to_string())?;
/// assert_eq!(*closed.lock().unwrap(), 10);
/// # Ok::<(), String>(())
/// # }).unwrap();
/// ```
// The async traits exist only with the `stream` feature.
#[cfg_attr(
    feature = "stream",
    doc = "[`AsyncAcquire`]: crate::AsyncAcquire\n[`RELEASE_IS_DROP`]: crate::AsyncAcquire::RELEASE_IS_DROP"
)]
#[cfg_attr(
    not(feature = "stream"),
    doc = "[`AsyncAcquire`]: https://docs.rs/loopscope/0.1/loopscope/trait.AsyncAcquire.html\n[`RELEASE_IS_DROP`]: https://docs.rs/loopscope/0.1/loopscope/trait.AsyncAcquire.html#associatedconstant.RELEASE_IS_DROP"
)]
#[must_use = "`both` does nothing until it is given to a scoped adapter"]
#[derive(Clone)]
pub struct Both<A1, A2> {
    first: A1,
    second: A2,
}

impl<A1, A2> Both<A1, A2> {
    /// The two acquires, first and second.
    ///
    /// # Examples
    ///
    /// ```
    /// let pair = loopscope::both(1, "two");
    /// assert_eq!(pair.into_parts(), (1, "two"));
    /// ```
    #[must_use]
    pub fn into_parts(self) -> (A1, A2) {
        (self.first, self.second)
    }
}

impl<A1, A2> fmt::Debug for Both<A1, A2> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Acquires are mostly closures, which have no `Debug`.
        f.debug_struct("Both").finish_non_exhaustive()
    }
}

impl<Item, A1, A2> Acquire<Item> for Both<A1, A2>
where
    Item: Clone,
    A1: Acquire<Item>,
    A2: Acquire<Item>,
{
    type Resource = (A1::Resource, A2::Resource);
    type Error = BothAcquireError<A1::Error, A2::Error, A1::ReleaseError>;
    type ReleaseError = BothReleaseError<A1::ReleaseError, A2::ReleaseError>;

    #[inline]
    fn acquire(&mut self, item: Item) -> Result<Self::Resource, Self::Error> {
        let Self { first, second } = self;
        let resource1 = first
            .acquire(item.clone())
            .map_err(|source| BothAcquireError::First { source })?;
        // The guard only fires if the second acquire panics; every other path
        // disarms it and releases the first resource in the open.
        let armed = scopeguard::guard(resource1, |resource1| {
            release_while_unwinding(first, resource1);
        });
        let acquired = second.acquire(item);
        let resource1 = ScopeGuard::into_inner(armed);
        match acquired {
            Ok(resource2) => Ok((resource1, resource2)),
            Err(source) => Err(BothAcquireError::Second {
                source,
                release: first.release(resource1, Outcome::Failed).err(),
            }),
        }
    }

    #[inline]
    fn release(
        &mut self,
        (resource1, resource2): Self::Resource,
        outcome: Outcome,
    ) -> Result<(), Self::ReleaseError> {
        let Self { first, second } = self;
        // As in `acquire`: released in the open unless the second release panics.
        let armed = scopeguard::guard(resource1, |resource1| {
            release_while_unwinding(first, resource1);
        });
        let released2 = second.release(resource2, outcome);
        let resource1 = ScopeGuard::into_inner(armed);
        let released1 = first.release(resource1, first_outcome(outcome, &released2));
        BothReleaseError::check(released1, released2)
    }
}

/// The async implementation, for the stream adapters.
#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
impl<Item, A1, A2> crate::AsyncAcquire<Item> for Both<A1, A2>
where
    Item: Clone,
    A1: crate::AsyncAcquire<Item>,
    A2: crate::AsyncAcquire<Item>,
{
    type Resource = (A1::Resource, A2::Resource);
    type Error = BothAcquireError<A1::Error, A2::Error, A1::ReleaseError>;
    type ReleaseError = BothReleaseError<A1::ReleaseError, A2::ReleaseError>;

    // Never `true`, even when both parts release by `Drop`: the adapters
    // would then drop the pair, first resource first — the wrong order.
    const RELEASE_IS_DROP: bool = false;

    async fn acquire(self, item: Item) -> Result<Self::Resource, Self::Error> {
        let Self { first, second } = self;
        let resource1 = match first.clone().acquire(item.clone()).await {
            Ok(resource) => resource,
            Err(source) => return Err(BothAcquireError::First { source }),
        };
        // If this future is dropped (cancelled) while the second acquire
        // runs, or that acquire panics, the guard hands the first resource
        // to its `release_on_cancel`.
        let armed = scopeguard::guard((first, resource1), |(first, resource1)| {
            first.release_on_cancel(resource1);
        });
        let acquired = second.acquire(item).await;
        let (first, resource1) = ScopeGuard::into_inner(armed);
        match acquired {
            Ok(resource2) => Ok((resource1, resource2)),
            Err(source) => Err(BothAcquireError::Second {
                source,
                release: first.release(resource1, Outcome::Failed).await.err(),
            }),
        }
    }

    async fn release(
        self,
        (resource1, resource2): Self::Resource,
        outcome: Outcome,
    ) -> Result<(), Self::ReleaseError> {
        let Self { first, second } = self;
        // As in `acquire`, while the second resource's release is awaited.
        let armed = scopeguard::guard((first, resource1), |(first, resource1)| {
            first.release_on_cancel(resource1);
        });
        let released2 = second.release(resource2, outcome).await;
        let (first, resource1) = ScopeGuard::into_inner(armed);
        let outcome1 = first_outcome(outcome, &released2);
        let released1 = first.release(resource1, outcome1).await;
        BothReleaseError::check(released1, released2)
    }

    fn release_on_cancel(self, (resource1, resource2): Self::Resource) {
        // Unguarded: if the second one panics, the first resource is
        // dropped by the unwinding — a `release_on_cancel` of its own could
        // panic as well, which during unwinding would abort.
        self.second.release_on_cancel(resource2);
        self.first.release_on_cancel(resource1);
    }
}
