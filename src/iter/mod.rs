//! Scoped adapters for every [`Iterator`].

mod try_map_scoped;

pub use self::try_map_scoped::TryMapScoped;

use crate::Acquire;
use crate::scope::{self, ScopeError};

/// Scoped-resource adapters on every [`Iterator`]: each item acquires a resource,
/// lends it to a body, and releases it before the next item is touched.
///
/// Brought into scope by `use loopscope::prelude::*;`.
///
/// # Examples
///
/// ```
/// use loopscope::prelude::*;
///
/// let mut log = Vec::new();
/// ["a", "b"].into_iter().for_each_scoped(
///     |name: &str| Ok::<_, ()>(format!("open {name}")),
///     |resource| Ok::<_, ()>(log.push(resource.clone())),
/// )?;
/// assert_eq!(log, ["open a", "open b"]);
/// # Ok::<(), ScopedError<(), (), std::convert::Infallible>>(())
/// ```
#[doc(alias("defer", "bracket"))]
pub trait ScopedIterExt: Iterator + Sized {
    /// For each item, acquires a resource, lends it to `body`, and releases it
    /// before the next item; stops at the first error.
    ///
    /// Similar to `for item in iter { let mut r = acquire(item)?; body(&mut r)?; }`,
    /// but a release that can fail ([`bracket`](crate::bracket)`(..).release(..)`)
    /// reports its error instead of having it swallowed by `Drop`, and the error
    /// says which item failed. At most one resource is live at any time.
    ///
    /// - `acquire` is any [`Acquire`]: a closure `FnMut(Item) -> Result<R, EA>`
    ///   (release by `Drop`), or `bracket(acquire).release(release)`.
    /// - `body` is lent the resource as `&mut R` and returns `Result<T, EU>`; the
    ///   value `T` is discarded. The borrow keeps the resource from escaping the item.
    ///
    /// The resource of a failing item is released before the error is returned, and
    /// no item after it is acquired. If `body` panics, the resource is released and
    /// then the panic resumes; with `std`, a panic in that release is dropped, so it
    /// cannot abort the process.
    ///
    /// # Errors
    ///
    /// The first failure, as a [`ScopedError`](crate::ScopedError) with the item's
    /// index: [`Acquire`](crate::ScopedError::Acquire),
    /// [`Use`](crate::ScopedError::Use) (with the release error too, if both failed)
    /// or [`Release`](crate::ScopedError::Release).
    ///
    /// # Examples
    ///
    /// One file open at a time, however many paths there are:
    ///
    /// ```
    /// use std::fs::File;
    /// use std::io::{self, Read};
    /// use loopscope::prelude::*;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let paths: Vec<_> = (0..3).map(|i| dir.path().join(format!("{i}.log"))).collect();
    /// for path in &paths {
    ///     std::fs::write(path, "one line\n")?;
    /// }
    ///
    /// let mut text = String::new();
    /// paths.iter().for_each_scoped(File::open, |file| file.read_to_string(&mut text))?;
    /// assert_eq!(text.lines().count(), 3);
    /// # Ok::<(), io::Error>(())
    /// ```
    ///
    /// The error tells which item failed and at which step:
    ///
    /// ```
    /// use std::fs::File;
    /// use std::io::{ErrorKind, Read};
    /// use loopscope::prelude::*;
    ///
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("a"), "a")?;
    /// let paths = [dir.path().join("a"), dir.path().join("missing")];
    ///
    /// let error = paths
    ///     .iter()
    ///     .for_each_scoped(File::open, |file| file.read_to_end(&mut Vec::new()))
    ///     .unwrap_err();
    /// assert!(matches!(error, ScopedError::Acquire { index: 1, .. }));
    /// assert_eq!(std::io::Error::from(error).kind(), ErrorKind::NotFound);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[doc(alias("defer", "bracket", "with", "using"))]
    #[inline]
    fn for_each_scoped<A, B, T, EU>(
        self,
        mut acquire: A,
        mut body: B,
    ) -> Result<(), ScopeError<A, Self::Item, EU>>
    where
        A: Acquire<Self::Item>,
        B: FnMut(&mut A::Resource) -> Result<T, EU>,
    {
        // `try_for_each` rather than a `for` loop: it lets adapters such as `Chain`
        // drive their own loops (internal iteration).
        self.enumerate().try_for_each(|(index, item)| {
            scope::run(&mut acquire, &mut body, item, index).map(drop)
        })
    }

    /// Lazily maps each item through its own scope: every `next()` acquires one
    /// resource, lends it to `body`, releases it, and yields `body`'s result.
    ///
    /// Similar to `iter.map(|x| { let mut r = acquire(x)?; body(&mut r) })`, but the
    /// release may fail and report its error, and every error carries the item's
    /// index. Unlike [`for_each_scoped`](Self::for_each_scoped) it does not stop at
    /// an error: each input item yields one `Result`, in input order, so the
    /// consumer decides — `collect::<Result<Vec<_>, _>>()` stops at the first
    /// error, a `for` loop can skip failures. Nothing is acquired before `next()` is
    /// called, and a consumer that stops early leaves nothing open.
    ///
    /// `acquire` and `body` are as for [`for_each_scoped`](Self::for_each_scoped).
    /// If `body` panics, the resource is released and then the panic resumes out of
    /// `next()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::fs::File;
    /// use std::io::{self, Read};
    /// use loopscope::prelude::*;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let paths: Vec<_> = (1..=3).map(|i| dir.path().join(format!("{i}.txt"))).collect();
    /// for (i, path) in paths.iter().enumerate() {
    ///     std::fs::write(path, "x".repeat(i + 1))?;
    /// }
    ///
    /// let sizes = paths
    ///     .iter()
    ///     .try_map_scoped(File::open, |file| file.read_to_end(&mut Vec::new()))
    ///     .collect::<Result<Vec<usize>, _>>()?;
    /// assert_eq!(sizes, [1, 2, 3]);
    /// # Ok::<(), io::Error>(())
    /// ```
    ///
    /// Errors are yielded in place, and the iteration goes on:
    ///
    /// ```
    /// use loopscope::prelude::*;
    ///
    /// let results: Vec<_> = ["4", "four", "99"]
    ///     .into_iter()
    ///     .try_map_scoped(str::parse::<u8>, |n| n.checked_mul(3).ok_or("overflow"))
    ///     .collect();
    /// assert_eq!(results[0].as_ref().ok(), Some(&12));
    /// assert!(matches!(results[1], Err(ScopedError::Acquire { index: 1, .. })));
    /// assert!(matches!(results[2], Err(ScopedError::Use { index: 2, source: "overflow", .. })));
    /// ```
    #[doc(alias("bracket", "with"))]
    #[inline]
    fn try_map_scoped<A, B, T, EU>(self, acquire: A, body: B) -> TryMapScoped<Self, A, B>
    where
        A: Acquire<Self::Item>,
        B: FnMut(&mut A::Resource) -> Result<T, EU>,
    {
        TryMapScoped::new(self, acquire, body)
    }
}

impl<I: Iterator> ScopedIterExt for I {}
