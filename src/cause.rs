//! How the crate's errors show the error they wrap: its message in their own
//! `Display`, and the rest of its chain as their `source()`.
//!
//! A `ScopedError<A, U, R>` is generic over the user's error types, and those
//! are not always `std::error::Error`s: `anyhow::Error` and
//! `Box<dyn Error + Send + Sync>` are not, and they are the two most common
//! error types of applications. So the crate's errors implement `Error`
//! whenever the wrapped errors are `Debug + Display + 'static`, which lets `?`
//! convert them into `anyhow::Error` or a boxed error — and then no trait bound
//! can say whether the wrapped error has a `source()` (no impl can cover both
//! "every `E: Error`" and `anyhow::Error`: coherence forbids it).
//!
//! Hence the rule every error of the crate follows, the one `io::Error` follows
//! for the error it wraps:
//!
//! - its `Display` includes the wrapped error's message (with `{:#}` for a type
//!   the crate cannot see into, so that an `anyhow::Error` shows its context
//!   chain there);
//! - its `source()` is the wrapped error's *own* source, where the crate can
//!   reach it: for an `io::Error` and a boxed `dyn Error`, found at run time by
//!   their `TypeId`. Other types end the chain with their message, which is
//!   already in the `Display`, so nothing reads twice.

use core::any::Any;
use core::error::Error;
use core::fmt;

/// `error` as a `dyn Error`, when it is one of the types the crate can see into
/// without an `E: Error` bound.
fn as_dyn_error<E: 'static>(error: &E) -> Option<&(dyn Error + 'static)> {
    let any: &dyn Any = error;
    #[cfg(feature = "std")]
    {
        if let Some(error) = any.downcast_ref::<std::io::Error>() {
            return Some(error);
        }
        if let Some(error) = any.downcast_ref::<Box<dyn Error + Send + Sync>>() {
            return Some(&**error);
        }
        if let Some(error) = any.downcast_ref::<Box<dyn Error + Send>>() {
            return Some(&**error);
        }
        if let Some(error) = any.downcast_ref::<Box<dyn Error>>() {
            return Some(&**error);
        }
    }
    // Without `std` there is no `io::Error` and no `Box`.
    let _ = any;
    None
}

/// The wrapped error's own source: what comes after its message in a chain.
pub(crate) fn source_below<E: 'static>(error: &E) -> Option<&(dyn Error + 'static)> {
    as_dyn_error(error).and_then(Error::source)
}

/// The wrapped error's message, as it goes into the wrapping error's `Display`.
pub(crate) struct Message<'a, E>(pub(crate) &'a E);

impl<E: fmt::Display + 'static> fmt::Display for Message<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match as_dyn_error(self.0) {
            // Its source comes next in the chain: its own message only.
            Some(error) => write!(f, "{error}"),
            // The chain ends here, so the message carries the rest: an
            // `anyhow::Error` shows its whole context chain with `{:#}`.
            None => write!(f, "{:#}", self.0),
        }
    }
}
