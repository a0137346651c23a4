//! The [`io::ErrorKind`] an error of the crate converts into, so that `?`
//! turns it into an `io::Error` that keeps the kind of the error that occurred
//! first.

use std::convert::Infallible;
use std::io;

/// The [`io::ErrorKind`] of the error that occurred first.
///
/// Public in a private module: the `From` impls can name it in their bounds,
/// and no one outside the crate can implement it (sealed).
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

/// A release built with `.release_timeout(d)` (feature `tokio`): a release past
/// its deadline is [`TimedOut`](io::ErrorKind::TimedOut), as `?` on the error
/// alone makes it.
#[cfg(feature = "tokio")]
impl IoKind for crate::ReleaseTimeoutError<io::Error> {
    fn io_kind(&self) -> io::ErrorKind {
        match self {
            Self::Failed(source) => source.kind(),
            Self::TimedOut { .. } => io::ErrorKind::TimedOut,
        }
    }
}
