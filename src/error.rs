//! The error of a scoped adapter: which step failed, and for which item.

use core::fmt;

/// The error of a scoped adapter: the step that failed, the item's index, and the
/// error (or errors) it returned.
///
/// `A` is the acquire error, `U` the body's ("use") error and `R` the release
/// error ([`Infallible`](core::convert::Infallible) when resources are released by
/// `Drop`). The index is the item's position in the input, counting from 0.
///
/// No error is lost: when the body fails and the release of its resource fails too,
/// [`ScopedError::Use`] keeps both, as Java keeps suppressed exceptions.
///
/// [`source`](core::error::Error::source) is the failing step's error; the `Display`
/// text says which step failed for which item, and adds the release error when it
/// was kept beside the body's.
///
/// With the `std` feature, a `ScopedError` whose acquire and use errors are
/// [`std::io::Error`] — and whose release error is `io::Error` or `Infallible` —
/// converts into `io::Error` with the [`ErrorKind`] of the step that failed, so
/// `?` works in a function returning `io::Result`.
///
/// # Examples
///
/// ```
/// use loopscope::prelude::*;
///
/// let result = ["1", "x", "3"].into_iter().for_each_scoped(
///     |text: &str| text.parse::<u32>(),
///     |_number| Ok::<_, std::fmt::Error>(()),
/// );
/// match result {
///     Err(ScopedError::Acquire { index, source }) => {
///         assert_eq!(index, 1);
///         assert_eq!(source.to_string(), "invalid digit found in string");
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
// Without `std` (a `no_std` build) there is no `std` path to link to.
#[cfg_attr(
    feature = "std",
    doc = "[`std::io::Error`]: std::io::Error\n[`ErrorKind`]: std::io::ErrorKind"
)]
#[cfg_attr(
    not(feature = "std"),
    doc = "[`std::io::Error`]: https://doc.rust-lang.org/std/io/struct.Error.html\n[`ErrorKind`]: https://doc.rust-lang.org/std/io/enum.ErrorKind.html"
)]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopedError<A, U, R> {
    /// Acquiring the item's resource failed: nothing was acquired, nothing released.
    Acquire {
        /// The item's position in the input.
        index: usize,
        /// The acquire error.
        #[source]
        source: A,
    },
    /// The body failed; its resource was released, and if that failed too, the
    /// release error is kept in `release`.
    Use {
        /// The item's position in the input.
        index: usize,
        /// The body's error.
        #[source]
        source: U,
        /// The release error, when the release failed after the body did.
        release: Option<R>,
    },
    /// The body succeeded, but releasing its resource failed.
    Release {
        /// The item's position in the input.
        index: usize,
        /// The release error.
        #[source]
        source: R,
    },
    /// A concurrent adapter cancelled the item before its scope completed —
    /// another item failed or panicked, or the stream was
    /// [stopped](crate::ScopedStream::stop) — and released its resource, if it
    /// had acquired one, told [`Outcome::Cancelled`](crate::Outcome::Cancelled).
    ///
    /// A fail-fast adapter reports a cancelled item among the
    /// [`Failures`](crate::Failures) only when its release failed; a stopped
    /// mapping stream yields one for every item it had pulled and not finished.
    Cancelled {
        /// The item's position in the input.
        index: usize,
        /// The release error, when the release of the cancelled item's
        /// resource failed.
        #[source]
        release: Option<R>,
    },
}

impl<A, U, R> ScopedError<A, U, R> {
    /// The position in the input of the item whose scope failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::ScopedError;
    ///
    /// let error: ScopedError<&str, &str, &str> = ScopedError::Release { index: 7, source: "eio" };
    /// assert_eq!(error.index(), 7);
    /// ```
    #[must_use]
    pub fn index(&self) -> usize {
        match self {
            Self::Acquire { index, .. }
            | Self::Use { index, .. }
            | Self::Release { index, .. }
            | Self::Cancelled { index, .. } => *index,
        }
    }

    /// The release error, if releasing the item's resource failed — on its own
    /// ([`Release`](Self::Release)) or after the body failed ([`Use`](Self::Use)).
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::ScopedError;
    ///
    /// let both: ScopedError<(), &str, &str> =
    ///     ScopedError::Use { index: 0, source: "parse", release: Some("flush") };
    /// assert_eq!(both.release_error(), Some(&"flush"));
    ///
    /// let acquire: ScopedError<&str, (), ()> = ScopedError::Acquire { index: 0, source: "open" };
    /// assert_eq!(acquire.release_error(), None);
    /// ```
    #[must_use]
    pub fn release_error(&self) -> Option<&R> {
        match self {
            Self::Release { source, .. } => Some(source),
            Self::Use { release, .. } | Self::Cancelled { release, .. } => release.as_ref(),
            Self::Acquire { .. } => None,
        }
    }

    /// Takes the release error out, if releasing the item's resource failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::ScopedError;
    ///
    /// let error: ScopedError<(), (), String> =
    ///     ScopedError::Release { index: 2, source: "close failed".to_string() };
    /// assert_eq!(error.into_release_error().as_deref(), Some("close failed"));
    /// ```
    #[must_use]
    pub fn into_release_error(self) -> Option<R> {
        match self {
            Self::Release { source, .. } => Some(source),
            Self::Use { release, .. } | Self::Cancelled { release, .. } => release,
            Self::Acquire { .. } => None,
        }
    }
}

impl<A, U, R: fmt::Display> fmt::Display for ScopedError<A, U, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Acquire { index, .. } => {
                write!(f, "failed to acquire the resource for item {index}")
            }
            Self::Use { index, release, .. } => {
                write!(f, "failed to use the resource for item {index}")?;
                match release {
                    // The release error is not on the `source` chain, so say it here.
                    Some(release) => write!(f, ", and releasing it failed too: {release}"),
                    None => Ok(()),
                }
            }
            Self::Release { index, .. } => {
                write!(f, "failed to release the resource for item {index}")
            }
            Self::Cancelled { index, release } => {
                write!(f, "item {index} was cancelled before its scope completed")?;
                if release.is_some() {
                    write!(f, ", and releasing its resource failed")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(feature = "std")]
mod io_conversions {
    use super::ScopedError;
    use std::convert::Infallible;
    use std::io;

    impl<R> ScopedError<io::Error, io::Error, R> {
        pub(crate) fn io_kind(
            &self,
            release_kind: impl FnOnce(&R) -> io::ErrorKind,
        ) -> io::ErrorKind {
            match self {
                Self::Acquire { source, .. } | Self::Use { source, .. } => source.kind(),
                Self::Release { source, .. } => release_kind(source),
                Self::Cancelled {
                    release: Some(source),
                    ..
                } => release_kind(source),
                Self::Cancelled { release: None, .. } => io::ErrorKind::Interrupted,
            }
        }
    }

    /// Keeps the [`ErrorKind`](io::ErrorKind) of the step that failed.
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    impl From<ScopedError<io::Error, io::Error, io::Error>> for io::Error {
        fn from(error: ScopedError<io::Error, io::Error, io::Error>) -> Self {
            io::Error::new(error.io_kind(io::Error::kind), error)
        }
    }

    /// Keeps the [`ErrorKind`](io::ErrorKind) of the step that failed.
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    impl From<ScopedError<io::Error, io::Error, Infallible>> for io::Error {
        fn from(error: ScopedError<io::Error, io::Error, Infallible>) -> Self {
            io::Error::new(error.io_kind(|never| match *never {}), error)
        }
    }
}
