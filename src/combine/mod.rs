//! Several resources per item: acquired in order, released in reverse.
//!
//! Many loops need more than one resource per item: read an input file and write
//! an output file, or hold a connection and a temporary file. [`both`]`(first,
//! second)` makes two acquires one, so that any scoped adapter can take it:
//!
//! - the first resource is acquired, then the second — each acquire gets the item;
//! - the body gets both, `|(input, output)| ...`;
//! - the second is released, then the first, also when the body fails or panics;
//! - each release is told the body's [`Outcome`](crate::Outcome), except that
//!   when the body completed but releasing the second resource failed, the first
//!   is told [`Outcome::Failed`](crate::Outcome::Failed): the item failed, so a
//!   transaction released with `release_with` rolls back rather than commits;
//! - if the second acquire fails, the first resource is released at once;
//! - no error is lost: [`BothAcquireError`] says which acquire failed and keeps
//!   the first resource's release error when that failed too, and
//!   [`BothReleaseError`] keeps one release error or both.
//!
//! Nest it for more: `both(a, both(b, c))`. With the `std` feature, `?` turns
//! these errors — and a [`ScopedError`](crate::ScopedError) holding them — into
//! an [`std::io::Error`] when every part is an `io::Error`,
//! [`Infallible`](core::convert::Infallible) or (feature `tokio`) a
//! `ReleaseTimeoutError<io::Error>`, keeping the
//! [`ErrorKind`](std::io::ErrorKind) of the error that occurred first — a
//! release past its deadline is `TimedOut`.
//!
//! When the second resource is acquired *from* the first — a transaction on a
//! connection, a lock on a file — [`nested`]`(outer, inner)` lends the inner
//! acquire and release the outer resource (`&mut Outer`); the order, the
//! outcomes and the errors are `both`'s.
//!
//! # Examples
//!
//! ```
//! use std::fs::{self, File};
//! use std::io::{self, Read, Write};
//! use std::path::PathBuf;
//! use loopscope::both;
//! use loopscope::prelude::*;
//!
//! # let dir = tempfile::tempdir()?;
//! # fs::write(dir.path().join("a.log"), "get /\n")?;
//! let inputs = [dir.path().join("a.log")];
//! let output_of = |input: &PathBuf| input.with_extension("upper");
//! inputs.iter().for_each_scoped(
//!     both(
//!         File::open,
//!         bracket(|input: &PathBuf| File::create(output_of(input)))
//!             .release(|output: File| output.sync_all()),
//!     ),
//!     |(input, output)| {
//!         let mut text = String::new();
//!         input.read_to_string(&mut text)?;
//!         output.write_all(text.to_uppercase().as_bytes())
//!     },
//! )?;
//! assert_eq!(fs::read_to_string(dir.path().join("a.upper"))?, "GET /\n");
//! # Ok::<(), io::Error>(())
//! ```

mod both;
mod error;
mod inner;
#[cfg(feature = "stream")]
mod inner_async;
mod nested;

pub use self::both::{Both, both};
pub use self::error::{BothAcquireError, BothReleaseError};
pub use self::inner::{AcquireOn, BracketOn, WithReleaseOn, bracket_on};
#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub use self::inner_async::{AsyncAcquireOn, AsyncBracketOn, AsyncWithReleaseOn, async_bracket_on};
pub use self::nested::{Nested, nested};

use crate::{Acquire, Outcome};

/// The [`Outcome`] the first (outer) resource's release is told, once the
/// second (inner) one's release has returned: the body's, except that a
/// completed body whose second release failed makes the item fail — `both` and
/// `nested` report it as an error, so the first resource must not, say, commit
/// a transaction that the caller sees fail.
#[inline]
pub(crate) fn first_outcome<E>(outcome: Outcome, released2: &Result<(), E>) -> Outcome {
    match (outcome, released2) {
        (Outcome::Completed, Err(_)) => Outcome::Failed,
        _ => outcome,
    }
}

/// Releases the first (outer) resource while a panic of the second (inner)
/// part unwinds.
///
/// A panic escaping a destructor during unwinding aborts the process, so with
/// `std` a panicking release is caught and dropped: the first panic is the one
/// that resumes. The release error has nowhere to go either.
#[cfg(feature = "std")]
#[cold]
pub(crate) fn release_while_unwinding<Item, A: Acquire<Item>>(
    acquire: &mut A,
    resource: A::Resource,
) {
    let release = std::panic::AssertUnwindSafe(|| acquire.release(resource, Outcome::Panicked));
    drop(std::panic::catch_unwind(release));
}

/// Releases the first (outer) resource while a panic of the second (inner)
/// part unwinds.
///
/// Without `std` there is no `catch_unwind`: a release that panics here aborts, as
/// any destructor that panics during unwinding does.
#[cfg(not(feature = "std"))]
#[cold]
pub(crate) fn release_while_unwinding<Item, A: Acquire<Item>>(
    acquire: &mut A,
    resource: A::Resource,
) {
    drop(acquire.release(resource, Outcome::Panicked));
}
