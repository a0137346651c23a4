//! The errors of [`Both`](super::Both): which of its two acquires or releases
//! failed, with every error kept.

use core::fmt;

/// The acquire error of [`both`](super::both)`(first, second)`: which of the two
/// acquires failed.
///
/// `E1` and `E2` are the acquire errors of `first` and `second`, and `R1` the
/// release error of `first` ([`Infallible`](core::convert::Infallible) when it is
/// released by `Drop`).
///
/// When the second acquire fails, the first resource has already been acquired:
/// it is released (its release is told [`Outcome::Failed`](crate::Outcome::Failed))
/// before this error is returned, and if that release fails too, its error is kept
/// in [`Second::release`](Self::Second::release) — never lost.
///
/// [`source`](core::error::Error::source) is the failed acquire's error; the
/// `Display` text names the acquire and adds the release error when there is one.
///
/// # Examples
///
/// ```
/// use loopscope::{BothAcquireError, both};
/// use loopscope::prelude::*;
///
/// let input = |name: &str| Ok::<_, String>(format!("input {name}"));
/// let output = |name: &str| {
///     if name == "b" { Err(format!("cannot create output {name}")) } else { Ok(()) }
/// };
/// let error = ["a", "b"]
///     .into_iter()
///     .for_each_scoped(both(input, output), |_pair| Ok::<_, String>(()))
///     .unwrap_err();
/// match error {
///     ScopedError::Acquire { index: 1, source: BothAcquireError::Second { source, release } } => {
///         assert_eq!(source, "cannot create output b");
///         assert_eq!(release, None); // the input was released (dropped) without error
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BothAcquireError<E1, E2, R1> {
    /// The first acquire failed: nothing was acquired, nothing released.
    First {
        /// The first acquire's error.
        #[source]
        source: E1,
    },
    /// The second acquire failed; the first resource was released, and if that
    /// failed too, its error is kept in `release`.
    Second {
        /// The second acquire's error.
        #[source]
        source: E2,
        /// The first resource's release error, when that release failed too.
        release: Option<R1>,
    },
}

impl<E1, E2, R1> BothAcquireError<E1, E2, R1> {
    /// The first resource's release error, if the second acquire failed and
    /// releasing the first resource failed too.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::BothAcquireError;
    ///
    /// let error: BothAcquireError<(), &str, &str> =
    ///     BothAcquireError::Second { source: "create", release: Some("close") };
    /// assert_eq!(error.release_error(), Some(&"close"));
    /// ```
    #[must_use]
    pub fn release_error(&self) -> Option<&R1> {
        match self {
            Self::First { .. } => None,
            Self::Second { release, .. } => release.as_ref(),
        }
    }

    /// Takes out the first resource's release error, if the second acquire failed
    /// and releasing the first resource failed too.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::BothAcquireError;
    ///
    /// let error: BothAcquireError<&str, (), ()> = BothAcquireError::First { source: "open" };
    /// assert_eq!(error.into_release_error(), None);
    /// ```
    #[must_use]
    pub fn into_release_error(self) -> Option<R1> {
        match self {
            Self::First { .. } => None,
            Self::Second { release, .. } => release,
        }
    }
}

impl<E1, E2, R1: fmt::Display> fmt::Display for BothAcquireError<E1, E2, R1> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::First { .. } => f.write_str("failed to acquire the first resource"),
            Self::Second { release, .. } => {
                f.write_str("failed to acquire the second resource")?;
                match release {
                    // The release error is not on the `source` chain, so say it here.
                    Some(release) => {
                        write!(f, ", and releasing the first failed too: {release}")
                    }
                    None => Ok(()),
                }
            }
        }
    }
}

/// The release error of [`both`](super::both)`(first, second)`: which of the two
/// releases failed — one, the other, or both.
///
/// The second resource is released first, then the first one, and the first
/// one's release runs even when the second one's failed — told
/// [`Outcome::Failed`](crate::Outcome::Failed) then, if the body had completed,
/// since the item fails; so both errors can occur, and [`Both`](Self::Both) keeps
/// them.
///
/// [`source`](core::error::Error::source) is the error of the release that failed
/// first in time — the second resource's, when both failed; the `Display` text
/// names the release and adds the first resource's error when both failed.
///
/// # Examples
///
/// ```
/// use loopscope::{BothReleaseError, both};
/// use loopscope::prelude::*;
///
/// let input = bracket(|n: u32| Ok::<_, ()>(n)).release(|_n| Err("close input"));
/// let output = bracket(|n: u32| Ok::<_, ()>(n)).release(|_n| Err("close output"));
/// let error = [7]
///     .into_iter()
///     .for_each_scoped(both(input, output), |_pair| Ok::<_, ()>(()))
///     .unwrap_err();
/// assert_eq!(
///     error.into_release_error(),
///     Some(BothReleaseError::Both { first: "close input", second: "close output" }),
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BothReleaseError<R1, R2> {
    /// Releasing the first resource failed; the second was released.
    First {
        /// The first resource's release error.
        #[source]
        source: R1,
    },
    /// Releasing the second resource failed; the first was released.
    Second {
        /// The second resource's release error.
        #[source]
        source: R2,
    },
    /// Releasing both resources failed.
    Both {
        /// The first resource's release error (the later of the two).
        first: R1,
        /// The second resource's release error (the earlier of the two).
        #[source]
        second: R2,
    },
}

impl<R1, R2> BothReleaseError<R1, R2> {
    /// The result of releasing the second resource, then the first: `Ok` when
    /// both succeeded, otherwise every error that occurred.
    pub(crate) fn check(first: Result<(), R1>, second: Result<(), R2>) -> Result<(), Self> {
        match (first, second) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(source), Ok(())) => Err(Self::First { source }),
            (Ok(()), Err(source)) => Err(Self::Second { source }),
            (Err(first), Err(second)) => Err(Self::Both { first, second }),
        }
    }

    /// The first resource's release error, if that release failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::BothReleaseError;
    ///
    /// let error: BothReleaseError<&str, &str> = BothReleaseError::Both { first: "a", second: "b" };
    /// assert_eq!((error.first(), error.second()), (Some(&"a"), Some(&"b")));
    /// ```
    #[must_use]
    pub fn first(&self) -> Option<&R1> {
        match self {
            Self::First { source } | Self::Both { first: source, .. } => Some(source),
            Self::Second { .. } => None,
        }
    }

    /// The second resource's release error, if that release failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::BothReleaseError;
    ///
    /// let error: BothReleaseError<&str, &str> = BothReleaseError::Second { source: "b" };
    /// assert_eq!((error.first(), error.second()), (None, Some(&"b")));
    /// ```
    #[must_use]
    pub fn second(&self) -> Option<&R2> {
        match self {
            Self::Second { source } | Self::Both { second: source, .. } => Some(source),
            Self::First { .. } => None,
        }
    }

    /// Both release errors, first resource's and second resource's; at least
    /// one is `Some`.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::BothReleaseError;
    ///
    /// let error: BothReleaseError<&str, &str> = BothReleaseError::First { source: "a" };
    /// assert_eq!(error.into_parts(), (Some("a"), None));
    /// ```
    #[must_use]
    pub fn into_parts(self) -> (Option<R1>, Option<R2>) {
        match self {
            Self::First { source } => (Some(source), None),
            Self::Second { source } => (None, Some(source)),
            Self::Both { first, second } => (Some(first), Some(second)),
        }
    }
}

impl<R1: fmt::Display, R2> fmt::Display for BothReleaseError<R1, R2> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::First { .. } => f.write_str("failed to release the first resource"),
            Self::Second { .. } => f.write_str("failed to release the second resource"),
            // The first resource's error is not on the `source` chain, so say it here.
            Self::Both { first, .. } => write!(
                f,
                "failed to release the second resource, and releasing the first failed too: {first}"
            ),
        }
    }
}

/// `?` from a `both` error into [`std::io::Error`], when every part is an
/// `io::Error`, [`Infallible`](core::convert::Infallible), (feature `tokio`) a
/// `ReleaseTimeoutError<io::Error>`, or, nested, a `both` error of such parts.
#[cfg(feature = "std")]
mod io_conversions {
    use std::convert::Infallible;
    use std::error::Error;
    use std::io;

    use super::{BothAcquireError, BothReleaseError};
    use crate::ScopedError;

    /// The [`io::ErrorKind`] of the error that occurred first.
    ///
    /// Public in a private module: the `From` impls below can name it in their
    /// bounds, and no one outside the crate can implement it (sealed).
    pub trait IoKind {
        /// The kind of the error that occurred first.
        fn io_kind(&self) -> io::ErrorKind;
    }

    impl IoKind for io::Error {
        fn io_kind(&self) -> io::ErrorKind {
            self.kind()
        }
    }

    impl IoKind for Infallible {
        fn io_kind(&self) -> io::ErrorKind {
            match *self {}
        }
    }

    /// A part built with `.release_timeout(d)` (feature `tokio`): a release past
    /// its deadline is [`TimedOut`](io::ErrorKind::TimedOut), as `?` on the
    /// error alone makes it.
    #[cfg(feature = "tokio")]
    impl IoKind for crate::ReleaseTimeoutError<io::Error> {
        fn io_kind(&self) -> io::ErrorKind {
            match self {
                Self::Failed(source) => source.kind(),
                Self::TimedOut { .. } => io::ErrorKind::TimedOut,
            }
        }
    }

    impl<E1: IoKind, E2: IoKind, R1> IoKind for BothAcquireError<E1, E2, R1> {
        /// The failed acquire's: a release error came after it.
        fn io_kind(&self) -> io::ErrorKind {
            match self {
                Self::First { source } => source.io_kind(),
                Self::Second { source, .. } => source.io_kind(),
            }
        }
    }

    impl<R1: IoKind, R2: IoKind> IoKind for BothReleaseError<R1, R2> {
        /// The second resource's when both failed: it is released first.
        fn io_kind(&self) -> io::ErrorKind {
            match self {
                Self::First { source } => source.io_kind(),
                Self::Second { source } | Self::Both { second: source, .. } => source.io_kind(),
            }
        }
    }

    impl<A: IoKind, R: IoKind> IoKind for ScopedError<A, io::Error, R> {
        /// The failed step's: a release error kept beside the body's came after it.
        fn io_kind(&self) -> io::ErrorKind {
            match self {
                Self::Acquire { source, .. } => source.io_kind(),
                Self::Use { source, .. } => source.kind(),
                Self::Release { source, .. }
                | Self::Cancelled {
                    release: Some(source),
                    ..
                } => source.io_kind(),
                Self::Cancelled { release: None, .. } => io::ErrorKind::Interrupted,
            }
        }
    }

    /// Wraps `error` whole, with the kind of the error that occurred first.
    fn wrap<E: IoKind + Error + Send + Sync + 'static>(error: E) -> io::Error {
        io::Error::new(error.io_kind(), error)
    }

    /// Keeps the [`ErrorKind`](io::ErrorKind) of the failed acquire.
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    impl<E1, E2, R1> From<BothAcquireError<E1, E2, R1>> for io::Error
    where
        BothAcquireError<E1, E2, R1>: IoKind + Error + Send + Sync + 'static,
    {
        fn from(error: BothAcquireError<E1, E2, R1>) -> Self {
            wrap(error)
        }
    }

    /// Keeps the [`ErrorKind`](io::ErrorKind) of the release that failed first.
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    impl<R1, R2> From<BothReleaseError<R1, R2>> for io::Error
    where
        BothReleaseError<R1, R2>: IoKind + Error + Send + Sync + 'static,
    {
        fn from(error: BothReleaseError<R1, R2>) -> Self {
            wrap(error)
        }
    }

    /// Keeps the [`ErrorKind`](io::ErrorKind) of the step that failed, so that `?`
    /// works on an adapter given a [`both`](crate::both) in a function returning
    /// `io::Result`.
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    impl<E1, E2, R1, R> From<ScopedError<BothAcquireError<E1, E2, R1>, io::Error, R>> for io::Error
    where
        ScopedError<BothAcquireError<E1, E2, R1>, io::Error, R>:
            IoKind + Error + Send + Sync + 'static,
    {
        fn from(error: ScopedError<BothAcquireError<E1, E2, R1>, io::Error, R>) -> Self {
            wrap(error)
        }
    }

    /// Keeps the [`ErrorKind`](io::ErrorKind) of the step that failed (an
    /// [`Acquire`](crate::Acquire) of your own that releases a `both` pair).
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    impl<R1, R2> From<ScopedError<io::Error, io::Error, BothReleaseError<R1, R2>>> for io::Error
    where
        ScopedError<io::Error, io::Error, BothReleaseError<R1, R2>>:
            IoKind + Error + Send + Sync + 'static,
    {
        fn from(error: ScopedError<io::Error, io::Error, BothReleaseError<R1, R2>>) -> Self {
            wrap(error)
        }
    }
}
