//! The errors of [`Both`](super::Both): which of its two acquires or releases
//! failed, with every error kept.

use core::fmt;

use crate::cause::{Message, source_below};

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
/// The `Display` text names the acquire, then gives its error's message, and
/// the release error's when there is one; [`source`](core::error::Error::source)
/// is the failed acquire's error's own source, as for
/// [`ScopedError`](crate::ScopedError#messages-and-).
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
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BothAcquireError<E1, E2, R1> {
    /// The first acquire failed: nothing was acquired, nothing released.
    First {
        /// The first acquire's error.
        source: E1,
    },
    /// The second acquire failed; the first resource was released, and if that
    /// failed too, its error is kept in `release`.
    Second {
        /// The second acquire's error.
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

impl<E1, E2, R1> fmt::Display for BothAcquireError<E1, E2, R1>
where
    E1: fmt::Display + 'static,
    E2: fmt::Display + 'static,
    R1: fmt::Display + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::First { source } => {
                write!(
                    f,
                    "failed to acquire the first resource: {}",
                    Message(source)
                )
            }
            Self::Second { source, release } => {
                f.write_str("failed to acquire the second resource")?;
                if let Some(release) = release {
                    // Before the acquire's error, whose causes come next in a chain.
                    write!(f, " (releasing the first failed too: {})", Message(release))?;
                }
                write!(f, ": {}", Message(source))
            }
        }
    }
}

impl<E1, E2, R1> core::error::Error for BothAcquireError<E1, E2, R1>
where
    E1: fmt::Debug + fmt::Display + 'static,
    E2: fmt::Debug + fmt::Display + 'static,
    R1: fmt::Debug + fmt::Display + 'static,
{
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::First { source } => source_below(source),
            Self::Second { source, .. } => source_below(source),
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
/// The `Display` text names the release, then gives the message of the error of
/// the release that failed first in time — the second resource's, when both
/// failed — then the first resource's when both failed;
/// [`source`](core::error::Error::source) is the first error's own source, as
/// for [`ScopedError`](crate::ScopedError#messages-and-).
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
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BothReleaseError<R1, R2> {
    /// Releasing the first resource failed; the second was released.
    First {
        /// The first resource's release error.
        source: R1,
    },
    /// Releasing the second resource failed; the first was released.
    Second {
        /// The second resource's release error.
        source: R2,
    },
    /// Releasing both resources failed.
    Both {
        /// The first resource's release error (the later of the two).
        first: R1,
        /// The second resource's release error (the earlier of the two).
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

impl<R1, R2> fmt::Display for BothReleaseError<R1, R2>
where
    R1: fmt::Display + 'static,
    R2: fmt::Display + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::First { source } => {
                write!(
                    f,
                    "failed to release the first resource: {}",
                    Message(source)
                )
            }
            Self::Second { source } => {
                write!(
                    f,
                    "failed to release the second resource: {}",
                    Message(source)
                )
            }
            // The first's error before the second's, whose causes come next in a chain.
            Self::Both { first, second } => write!(
                f,
                "failed to release the second resource (releasing the first failed too: {}): {}",
                Message(first),
                Message(second)
            ),
        }
    }
}

impl<R1, R2> core::error::Error for BothReleaseError<R1, R2>
where
    R1: fmt::Debug + fmt::Display + 'static,
    R2: fmt::Debug + fmt::Display + 'static,
{
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::First { source } => source_below(source),
            Self::Second { source } | Self::Both { second: source, .. } => source_below(source),
        }
    }
}

/// `?` from a `both` error into [`std::io::Error`], when every part is an
/// `io::Error`, [`Infallible`](core::convert::Infallible), (feature `tokio`) a
/// `ReleaseTimeoutError<io::Error>`, or, nested, a `both` error of such parts.
#[cfg(feature = "std")]
mod io_conversions {
    use std::error::Error;
    use std::io;

    use super::{BothAcquireError, BothReleaseError};
    use crate::io_kind::IoKind;

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
}
