//! The error of a fail-fast concurrent adapter: its first failure, and every
//! other failure of the items that were in flight when it stopped.

use std::error::Error;
use std::fmt;
use std::io;

use crate::ScopedError;

/// The first failure of a fail-fast concurrent adapter, with every other
/// failure of the items that were in flight when it stopped — as Java keeps
/// suppressed exceptions, and Python's exception groups keep every error.
///
/// At its first failure, a fail-fast adapter
/// ([`for_each_scoped_concurrent`](crate::ScopedStreamExt::for_each_scoped_concurrent),
/// [`ScopedStream::try_collect_all`](crate::ScopedStream::try_collect_all), ...)
/// stops acquiring and cancels the items in flight, awaiting their releases.
/// Those items may fail too — a body that failed at the same moment, a release
/// that failed or timed out — and none of these errors is dropped: the first is
/// [`first`](Failures::first), the rest are [`others`](Failures::others), in
/// the order they happened, each with its item's index. A cancelled item whose
/// release succeeded is not a failure and is not listed.
///
/// `Display` shows the first failure, and counts them all when there are
/// others ("3 failures, the first: …"); `Debug` shows them all. [`source`](Error::source) is the first
/// failure's source, so that an error report reads as the first failure's.
/// Nothing is allocated unless a second failure happens.
///
/// With the `std` feature, a `Failures` of [`ScopedError`]s that convert into
/// [`io::Error`] converts too, so `?` works in a function returning
/// `io::Result`: the [`ErrorKind`](io::ErrorKind) is the first failure's, and
/// the other failures stay reachable through [`io::Error::get_ref`] (see the
/// `From` impl).
///
/// # Examples
///
/// ```
/// use futures::stream;
/// use loopscope::prelude::*;
///
/// # futures::executor::block_on(async {
/// // Item 1's body fails; item 0, cancelled, fails to release too.
/// let result = stream::iter([0, 1]).for_each_scoped_concurrent(
///     2,
///     async_bracket(async |item: u32| Ok::<_, String>(item))
///         .release(async |item: u32| if item == 0 { Err("flush failed") } else { Ok(()) }),
///     async |item: &mut u32| {
///         if *item == 1 {
///             return Err("bad header");
///         }
///         std::future::pending::<()>().await;
///         Ok(())
///     },
/// );
/// let failures = result.await.unwrap_err();
/// assert_eq!(failures.index(), 1);
/// assert_eq!(failures.others().len(), 1);
/// assert!(matches!(failures.others()[0], ScopedError::Cancelled { index: 0, release: Some("flush failed") }));
/// assert_eq!(
///     failures.to_string(),
///     "2 failures, the first: failed to use the resource for item 1: bad header"
/// );
/// # });
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Failures<E> {
    first: E,
    others: Vec<E>,
}

impl<E> Failures<E> {
    /// A failure with no others yet.
    pub(crate) fn new(first: E) -> Self {
        Self {
            first,
            others: Vec::new(),
        }
    }

    /// Records another failure of an item that was in flight.
    pub(crate) fn push(&mut self, other: E) {
        self.others.push(other);
    }

    /// The first failure: the one that stopped the adapter.
    #[must_use]
    pub fn first(&self) -> &E {
        &self.first
    }

    /// The failures of the other items in flight, in the order they happened.
    #[must_use]
    pub fn others(&self) -> &[E] {
        &self.others
    }

    /// How many failures there are: 1 and the others.
    #[must_use]
    #[allow(clippy::len_without_is_empty)] // never empty: there is a first
    pub fn len(&self) -> usize {
        1 + self.others.len()
    }

    /// Every failure, the first one first.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        core::iter::once(&self.first).chain(&self.others)
    }

    /// The first failure, dropping the others.
    #[must_use]
    pub fn into_first(self) -> E {
        self.first
    }

    /// The first failure and the others.
    #[must_use]
    pub fn into_parts(self) -> (E, Vec<E>) {
        (self.first, self.others)
    }
}

impl<A, U, R> Failures<ScopedError<A, U, R>> {
    /// Keeps `error` in `failures`. First comes the failure of item
    /// `first_failure` (the one that cancelled the others, when known), else
    /// the first failure to arrive that is not a cancellation (a cancelled
    /// item's failed release may finish before the failure that cancelled it).
    /// A cancelled item whose release succeeded is no failure.
    pub(crate) fn keep(
        failures: &mut Option<Self>,
        error: ScopedError<A, U, R>,
        first_failure: Option<usize>,
    ) {
        let cancelled = matches!(error, ScopedError::Cancelled { .. });
        if cancelled && error.release_error().is_none() {
            return;
        }
        let Some(failures) = failures else {
            *failures = Some(Self::new(error));
            return;
        };
        let goes_first = !cancelled
            && (first_failure == Some(error.index())
                || matches!(failures.first, ScopedError::Cancelled { .. }));
        if goes_first && first_failure != Some(failures.first.index()) {
            let previous = core::mem::replace(&mut failures.first, error);
            failures.others.insert(0, previous);
        } else {
            failures.push(error);
        }
    }

    /// The index of the item whose failure stopped the adapter.
    #[must_use]
    pub fn index(&self) -> usize {
        self.first.index()
    }
}

impl<E> IntoIterator for Failures<E> {
    type Item = E;
    type IntoIter = core::iter::Chain<core::iter::Once<E>, std::vec::IntoIter<E>>;

    /// Every failure, the first one first.
    fn into_iter(self) -> Self::IntoIter {
        core::iter::once(self.first).chain(self.others)
    }
}

impl<E: fmt::Debug> fmt::Debug for Failures<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failures")
            .field("first", &self.first)
            .field("others", &self.others)
            .finish()
    }
}

impl<E: fmt::Display> fmt::Display for Failures<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The count before the first failure, not after: the first failure's
        // causes come next in a chain (`source`), and must follow its message.
        if !self.others.is_empty() {
            write!(f, "{} failures, the first: ", self.len())?;
        }
        fmt::Display::fmt(&self.first, f)
    }
}

impl<E: Error> Error for Failures<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.first.source()
    }
}

/// Keeps the [`ErrorKind`](io::ErrorKind) of the first failure. With no other
/// failure, the result is the first failure's own conversion; with others, it
/// wraps a `Failures<io::Error>` holding every failure converted, reachable
/// with [`io::Error::get_ref`] and `downcast_ref`.
impl<E> From<Failures<E>> for io::Error
where
    io::Error: From<E>,
{
    fn from(failures: Failures<E>) -> Self {
        let (first, others) = failures.into_parts();
        let first = io::Error::from(first);
        if others.is_empty() {
            return first;
        }
        let kind = first.kind();
        let failures = Failures {
            first,
            others: others.into_iter().map(io::Error::from).collect(),
        };
        io::Error::new(kind, failures)
    }
}
