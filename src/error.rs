//! The error of a scoped adapter: which step failed, and for which item.

use core::fmt;

use crate::cause::{Message, source_below};

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
/// # Messages and `?`
///
/// The `Display` text names the step, the item and the failing step's own
/// message: "failed to acquire the resource for item 3: No such file or
/// directory (os error 2)"; when the body and its release both failed, the
/// message is the body's, with the release's before it: "failed to use the
/// resource for item 0 (its release failed too: flush failed): bad header". The index
/// alone does not say *which* item it was in a stream of values that are not
/// `Clone`: label the error where the item is still at hand, with
/// [`LabelExt::with_label`] (or anyhow's
/// `with_context`) in the acquire, as the guide's
/// [Which item failed](crate::guide#which-item-failed) shows.
///
/// `ScopedError` is an [`Error`](core::error::Error) whenever its three error
/// types are `Debug + Display + 'static` — not only `Error`s, so that
/// `anyhow::Error` and `Box<dyn Error + Send + Sync>` work: `?` converts a
/// `ScopedError` of them into an `anyhow::Error` or a boxed error, and anyhow's
/// `.context(..)` applies to an adapter's result. Since its message already
/// includes the failing step's error, [`source`](core::error::Error::source) is
/// that error's own source — the cause below it — where the crate can reach it
/// (an `io::Error`, a boxed error); an `anyhow::Error` shows its whole context
/// chain in the message instead. So `{:#}` under anyhow, or any report that
/// walks the chain, reads in cause order and says nothing twice. The typed
/// errors are the variants' fields, and [`map_acquire`](Self::map_acquire),
/// [`map_use`](Self::map_use) and [`map_release`](Self::map_release) convert
/// them.
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
///     Err(error @ ScopedError::Acquire { .. }) => {
///         assert_eq!(error.index(), 1);
///         assert_eq!(
///             error.to_string(),
///             "failed to acquire the resource for item 1: invalid digit found in string",
///         );
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
// Without `std` (a `no_std` build) there is no `std` path to link to, nor the
// crate's `std` items: link to their pages.
#[cfg_attr(
    feature = "std",
    doc = "[`std::io::Error`]: std::io::Error\n[`ErrorKind`]: std::io::ErrorKind\n[`LabelExt::with_label`]: crate::LabelExt::with_label"
)]
#[cfg_attr(
    not(feature = "std"),
    doc = "[`std::io::Error`]: https://doc.rust-lang.org/std/io/struct.Error.html\n[`ErrorKind`]: https://doc.rust-lang.org/std/io/enum.ErrorKind.html\n[`LabelExt::with_label`]: https://docs.rs/loopscope/0.1/loopscope/trait.LabelExt.html#tymethod.with_label"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopedError<A, U, R> {
    /// Acquiring the item's resource failed: nothing was acquired, nothing released.
    Acquire {
        /// The item's position in the input.
        index: usize,
        /// The acquire error.
        source: A,
    },
    /// The body failed; its resource was released, and if that failed too, the
    /// release error is kept in `release`.
    Use {
        /// The item's position in the input.
        index: usize,
        /// The body's error.
        source: U,
        /// The release error, when the release failed after the body did.
        release: Option<R>,
    },
    /// The body succeeded, but releasing its resource failed.
    Release {
        /// The item's position in the input.
        index: usize,
        /// The release error.
        source: R,
    },
    /// A concurrent adapter cancelled the item before its scope completed —
    /// another item failed or panicked, or the stream was
    /// [stopped] — and released its resource, if it
    /// had acquired one, told [`Outcome::Cancelled`](crate::Outcome::Cancelled).
    ///
    /// A fail-fast adapter reports a cancelled item among the
    /// [`Failures`] only when its release failed; a stopped
    /// mapping stream yields one for every item it had pulled and not finished.
    ///
    // Only the stream adapters cancel, and only they exist with `stream`:
    // without it, link to their pages.
    #[cfg_attr(
        feature = "stream",
        doc = "[stopped]: crate::ScopedStream::stop\n[`Failures`]: crate::Failures"
    )]
    #[cfg_attr(
        not(feature = "stream"),
        doc = "[stopped]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStream.html#tymethod.stop\n[`Failures`]: https://docs.rs/loopscope/0.1/loopscope/struct.Failures.html"
    )]
    Cancelled {
        /// The item's position in the input.
        index: usize,
        /// The release error, when the release of the cancelled item's
        /// resource failed.
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

    /// Converts the acquire error with `f`, keeping everything else.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::ScopedError;
    ///
    /// let error: ScopedError<&str, &str, &str> = ScopedError::Acquire { index: 1, source: "refused" };
    /// let error = error.map_acquire(|source| format!("connect: {source}"));
    /// assert_eq!(error.to_string(), "failed to acquire the resource for item 1: connect: refused");
    /// ```
    pub fn map_acquire<A2>(self, f: impl FnOnce(A) -> A2) -> ScopedError<A2, U, R> {
        self.map_errors(f, |used| used, |release| release)
    }

    /// Converts the body's error with `f`, keeping everything else.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::ScopedError;
    ///
    /// let error: ScopedError<(), std::num::ParseIntError, ()> = ScopedError::Use {
    ///     index: 0,
    ///     source: "x".parse::<u8>().unwrap_err(),
    ///     release: None,
    /// };
    /// let error: ScopedError<(), String, ()> = error.map_use(|source| source.to_string());
    /// assert!(matches!(error, ScopedError::Use { ref source, .. } if source == "invalid digit found in string"));
    /// ```
    pub fn map_use<U2>(self, f: impl FnOnce(U) -> U2) -> ScopedError<A, U2, R> {
        self.map_errors(|acquire| acquire, f, |release| release)
    }

    /// Converts the release error with `f` — the one kept beside a body's error
    /// and a cancelled item's too — keeping everything else.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::ScopedError;
    ///
    /// let error: ScopedError<(), &str, &str> =
    ///     ScopedError::Use { index: 2, source: "bad header", release: Some("eio") };
    /// let error = error.map_release(|release| format!("close: {release}"));
    /// assert_eq!(error.release_error().map(String::as_str), Some("close: eio"));
    /// ```
    pub fn map_release<R2>(self, f: impl FnOnce(R) -> R2) -> ScopedError<A, U, R2> {
        self.map_errors(|acquire| acquire, |used| used, f)
    }

    /// Converts each error with its function, keeping the variant and index.
    fn map_errors<A2, U2, R2>(
        self,
        acquire: impl FnOnce(A) -> A2,
        used: impl FnOnce(U) -> U2,
        release: impl FnOnce(R) -> R2,
    ) -> ScopedError<A2, U2, R2> {
        match self {
            Self::Acquire { index, source } => ScopedError::Acquire {
                index,
                source: acquire(source),
            },
            Self::Use {
                index,
                source,
                release: released,
            } => ScopedError::Use {
                index,
                source: used(source),
                release: released.map(release),
            },
            Self::Release { index, source } => ScopedError::Release {
                index,
                source: release(source),
            },
            Self::Cancelled {
                index,
                release: released,
            } => ScopedError::Cancelled {
                index,
                release: released.map(release),
            },
        }
    }
}

impl<A, U, R> fmt::Display for ScopedError<A, U, R>
where
    A: fmt::Display + 'static,
    U: fmt::Display + 'static,
    R: fmt::Display + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Acquire { index, source } => write!(
                f,
                "failed to acquire the resource for item {index}: {}",
                Message(source)
            ),
            Self::Use {
                index,
                source,
                release,
            } => {
                write!(f, "failed to use the resource for item {index}")?;
                if let Some(release) = release {
                    // Before the body's error, not after it: the body's error's
                    // causes come next in a chain, and must follow its message.
                    write!(f, " (its release failed too: {})", Message(release))?;
                }
                write!(f, ": {}", Message(source))
            }
            Self::Release { index, source } => write!(
                f,
                "failed to release the resource for item {index}: {}",
                Message(source)
            ),
            Self::Cancelled { index, release } => {
                write!(f, "item {index} was cancelled before its scope completed")?;
                match release {
                    Some(release) => write!(f, ", and its release failed: {}", Message(release)),
                    None => Ok(()),
                }
            }
        }
    }
}

/// An [`Error`](core::error::Error) whenever the three error types are
/// `Debug + Display + 'static`, so that `anyhow::Error` and boxed errors work
/// (see [Messages and `?`](ScopedError#messages-and-)).
impl<A, U, R> core::error::Error for ScopedError<A, U, R>
where
    A: fmt::Debug + fmt::Display + 'static,
    U: fmt::Debug + fmt::Display + 'static,
    R: fmt::Debug + fmt::Display + 'static,
{
    /// The failing step's own source: its message is already in this error's.
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Acquire { source, .. } => source_below(source),
            Self::Use { source, .. } => source_below(source),
            Self::Release { source, .. }
            | Self::Cancelled {
                release: Some(source),
                ..
            } => source_below(source),
            Self::Cancelled { release: None, .. } => None,
        }
    }
}

/// `?` from a `ScopedError` into [`std::io::Error`], when each of its errors is
/// an `io::Error`, [`Infallible`](core::convert::Infallible), a
/// [`Labelled`](crate::Labelled) `io::Error`, (feature `tokio`) a
/// `ReleaseTimeoutError<io::Error>`, or a `both` error of such parts.
#[cfg(feature = "std")]
mod io_conversions {
    use std::error::Error;
    use std::io;

    use super::ScopedError;
    use crate::io_kind::IoKind;

    impl<A: IoKind, U: IoKind, R: IoKind> IoKind for ScopedError<A, U, R> {
        /// The failed step's: a release error kept beside the body's came after
        /// it; a cancelled item with no error of its own was interrupted.
        fn io_kind(&self) -> io::ErrorKind {
            match self {
                Self::Acquire { source, .. } => source.io_kind(),
                Self::Use { source, .. } => source.io_kind(),
                Self::Release { source, .. }
                | Self::Cancelled {
                    release: Some(source),
                    ..
                } => source.io_kind(),
                Self::Cancelled { release: None, .. } => io::ErrorKind::Interrupted,
            }
        }
    }

    /// Keeps the [`ErrorKind`](io::ErrorKind) of the step that failed, and the
    /// whole `ScopedError` as the `io::Error`'s inner error.
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    impl<A, U, R> From<ScopedError<A, U, R>> for io::Error
    where
        ScopedError<A, U, R>: IoKind + Error + Send + Sync + 'static,
    {
        fn from(error: ScopedError<A, U, R>) -> Self {
            io::Error::new(error.io_kind(), error)
        }
    }
}
