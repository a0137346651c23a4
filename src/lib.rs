//! Scoped-resource loops: for each item, **acquire** a resource, **use** it,
//! **release** it — and only then move on.
//!
//! A batch job that opens a file per item can hoard them all without meaning to:
//! `paths.iter().map(File::open).collect::<Result<Vec<_>, _>>()` holds every
//! descriptor at once, until `too many open files` (Go programmers know it as
//! "defer in a loop"). And a release that can fail — a `BufWriter`'s final flush, a
//! file's `sync_all`, a commit — is silently swallowed when it is left to `Drop`.
//!
//! `loopscope` gives every [`Iterator`] two adapters that keep **at most one
//! resource live**, on every path (success, error, panic, early stop), and let
//! release fail loudly:
//!
//! - [`for_each_scoped`](ScopedIterExt::for_each_scoped) — run each item through
//!   its own scope; stop at the first error.
//! - [`try_map_scoped`](ScopedIterExt::try_map_scoped) — a lazy iterator of one
//!   `Result` per item.
//!
//! With the `stream` feature (on by default), every [`futures::Stream`] gets the
//! same two adapters as [`ScopedStreamExt`], taking async closures, and three
//! concurrent ones that keep **at most `limit` resources live**:
//! [`for_each_scoped_concurrent`], [`try_map_scoped_concurrent`] (input order)
//! and [`try_map_scoped_unordered`]. An [`async_bracket`]`(acquire).release(release)`
//! awaits an async release, such as a socket's `shutdown().await`; when an
//! adapter's future completes, every release has completed. With the `tokio`
//! feature, [`for_each_scoped_spawned`] and [`try_map_scoped_spawned`] run each
//! item's scope as a task of the runtime, at most `limit` at once.
//!
//! Resources are acquired by a closure (released by `Drop`) or by a
//! [`bracket`]`(acquire).release(release)` whose release returns a `Result`;
//! [`release_with`](Bracket::release_with) is also told the item's [`Outcome`],
//! to commit what completed and roll back the rest. Two resources per item take
//! [`both`]`(first, second)`: acquired in order, released in reverse; when the
//! second is acquired from the first — a transaction on its connection — take
//! [`nested`]`(outer, inner)`. Errors are
//! a [`ScopedError`] that names the step and the item's index, and keeps both
//! errors when the body and the release both fail.
//!
//! # Pick an adapter
//!
//! | items run | for each (stops at the first error) | map (one `Result` per item) | replaces | pick it when |
//! | --- | --- | --- | --- | --- |
//! | one at a time ([`Iterator`] or `Stream`) | [`for_each_scoped`](ScopedIterExt::for_each_scoped); fold: [`try_fold_scoped`] (`Stream`) | [`try_map_scoped`](ScopedIterExt::try_map_scoped) | a `for` or `while let` loop; `map`, `then`, `try_fold` | one resource at a time is enough, or the items must not overlap |
//! | up to `n` at once, results in input order | [`for_each_scoped_concurrent`] | [`try_map_scoped_concurrent`] | `buffered(n)`, `try_for_each_concurrent(n, ..)` | I/O-bound items and a consumer that keeps up: the items make progress only while it polls |
//! | up to `n` at once, results as they finish | ([`for_each_scoped_concurrent`]: a for-each has no order) | [`try_map_scoped_unordered`] | `buffer_unordered(n)` | as above, and a slow item should not hold back the results after it |
//! | up to `n` tokio tasks (feature `tokio`) | [`for_each_scoped_spawned`] | [`try_map_scoped_spawned`] (input order) | a `JoinSet` and a `Semaphore(n)` | a slow consumer, or CPU-bound bodies: the items run on the runtime's workers and release their resources without waiting for the consumer; needs `Send + 'static` items, resources and closures |
//!
//! Every concurrent adapter keeps at most `n` resources live — acquired and
//! not yet released — and, at the first failure of a for-each, cancels the
//! items in flight and awaits their releases before it returns (see the
//! guide's [When an item fails](guide#when-an-item-fails-structured-concurrency)).
//! With each of them the release can be async:
//! [`async_bracket`]`(acquire).release(release)`.
//!
//! # Usage
//!
//! ```toml
//! [dependencies]
//! loopscope = "0.1"
//! ```
//!
//! ```
//! use loopscope::prelude::*;
//! ```
//!
//! # Example
//!
//! Count the lines of a thousand logs with one file open at a time, and report
//! which file failed:
//!
//! ```
//! use std::fs::File;
//! use std::io::{self, BufRead, BufReader};
//! use loopscope::prelude::*;
//!
//! # let dir = tempfile::tempdir()?;
//! # let paths: Vec<_> = (0..1000).map(|i| dir.path().join(format!("{i}.log"))).collect();
//! # for path in &paths { std::fs::write(path, "GET /\nPOST /login\n")?; }
//! let mut lines = 0;
//! paths.iter().for_each_scoped(
//!     |path| File::open(path).map(BufReader::new),
//!     |reader| {
//!         for line in reader.lines() {
//!             line?;
//!             lines += 1;
//!         }
//!         Ok::<_, io::Error>(())
//!     },
//! )?;
//! assert_eq!(lines, 2000);
//! # Ok::<(), io::Error>(())
//! ```
//!
//! A release that can fail, with its error kept:
//!
//! ```
//! use std::fs::File;
//! use std::io::{self, Write};
//! use loopscope::prelude::*;
//!
//! let dir = tempfile::tempdir()?;
//! ["a", "b"].iter().for_each_scoped(
//!     bracket(|name: &&str| File::create(dir.path().join(name)))
//!         .release(|file: File| file.sync_all()),
//!     |file| file.write_all(b"payload"),
//! )?;
//! assert_eq!(std::fs::read(dir.path().join("b"))?, b"payload");
//! # Ok::<(), io::Error>(())
//! ```
//!
//! # Replacing manual loops
//!
//! | you wrote | and got | write instead |
//! | --- | --- | --- |
//! | `paths.iter().map(File::open).collect::<Result<Vec<_>, _>>()?`, then a loop | every file open at once | `paths.iter().for_each_scoped(File::open, body)`, or `try_map_scoped` |
//! | `join_all(items.map(open_and_use))` | every connection open at once | `stream.for_each_scoped_concurrent(limit, open, body)` |
//! | `.map(open_and_use).buffer_unordered(n)` | a resource that `Drop` closes later stays open past the cap — a `tokio::fs::File` until its last write is done — and its error is lost | `.try_map_scoped_unordered(n, async_bracket(open).release(close), body)` |
//! | a `BufWriter` dropped at the end of the loop body | its final flush error swallowed | `bracket(create).release(\|w\| w.into_inner()..)` |
//! | a connection dropped at the end of the loop body | no `shutdown().await` | `async_bracket(connect).release(\|c\| async move { c.shutdown().await })` |
//!
//! Each one, before and after, as code that runs:
//! [Replacing manual loops](guide#replacing-manual-loops) in the [`guide`].
//! The guide also shows how to [prove your loop](guide#prove-your-loop) with
//! the test kit — a counting `Tracker`, fault injection, a future cancelled at
//! every `.await` — and what the `tracing` feature [records](guide#tracing).
//!
//! # Crate features
//!
//! - **`std`** *(default)*: `catch_unwind`, so that a release which panics while
//!   the body's panic unwinds cannot abort the process; conversions of
//!   [`ScopedError`] into `std::io::Error`. Without it the crate is `#![no_std]`.
//! - **`stream`** *(default)*: [`ScopedStreamExt`] on every `futures::Stream`,
//!   [`AsyncAcquire`] and [`async_bracket`]. Needs `std`.
//! - **`tokio`**: for async brackets, `.spawn_on_cancel()` — when an adapter
//!   is dropped mid-item, the async release is spawned on the current tokio
//!   runtime rather than left to `Drop` — and `.release_timeout(duration)`, which
//!   abandons a release that does not finish in time; and the spawned adapters
//!   `try_map_scoped_spawned` and `for_each_scoped_spawned`, which run each
//!   item's scope as a task, so that no resource sits idle while a slow consumer
//!   is busy. Needs `stream`.
//! - **`testing`**: the `testing` module, to [prove your own
//!   loops](guide#prove-your-loop) — a `Tracker` that records live, peak,
//!   acquired and released resources, `Faults` that inject failures, panics and
//!   delays into your acquire and body, and `cancel_at_every_poll`. Needs `std`.
//! - **`tracing`**: a [`tracing`] span per item and events for its acquire,
//!   release and failures; see [Tracing](guide#tracing). Needs `std`. Without it
//!   nothing of `tracing` is compiled in.
//!
//! # Rust version
//!
//! Rust 1.85 or newer (edition 2024).
//!
//! [`futures::Stream`]: https://docs.rs/futures/0.3/futures/stream/trait.Stream.html
//! [`tracing`]: https://docs.rs/tracing
//
// The stream items exist only with the `stream` feature: without it, link to
// their docs.rs pages, so that `cargo doc --no-default-features` has no broken
// links.
#![cfg_attr(
    feature = "stream",
    doc = "[`ScopedStreamExt`]: ScopedStreamExt
[`for_each_scoped_concurrent`]: ScopedStreamExt::for_each_scoped_concurrent
[`try_map_scoped_concurrent`]: ScopedStreamExt::try_map_scoped_concurrent
[`try_map_scoped_unordered`]: ScopedStreamExt::try_map_scoped_unordered
[`async_bracket`]: async_bracket
[`AsyncAcquire`]: AsyncAcquire
[`try_fold_scoped`]: ScopedStreamExt::try_fold_scoped"
)]
#![cfg_attr(
    not(feature = "stream"),
    doc = "[`ScopedStreamExt`]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStreamExt.html
[`for_each_scoped_concurrent`]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStreamExt.html#method.for_each_scoped_concurrent
[`try_map_scoped_concurrent`]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStreamExt.html#method.try_map_scoped_concurrent
[`try_map_scoped_unordered`]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStreamExt.html#method.try_map_scoped_unordered
[`async_bracket`]: https://docs.rs/loopscope/0.1/loopscope/fn.async_bracket.html
[`AsyncAcquire`]: https://docs.rs/loopscope/0.1/loopscope/trait.AsyncAcquire.html
[`try_fold_scoped`]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStreamExt.html#method.try_fold_scoped"
)]
#![cfg_attr(
    feature = "tokio",
    doc = "[`for_each_scoped_spawned`]: ScopedStreamExt::for_each_scoped_spawned
[`try_map_scoped_spawned`]: ScopedStreamExt::try_map_scoped_spawned"
)]
#![cfg_attr(
    not(feature = "tokio"),
    doc = "[`for_each_scoped_spawned`]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStreamExt.html#method.for_each_scoped_spawned
[`try_map_scoped_spawned`]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStreamExt.html#method.try_map_scoped_spawned"
)]
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod acquire;
#[cfg(feature = "stream")]
mod async_acquire;
mod cause;
mod combine;
mod error;
#[cfg(feature = "stream")]
mod failures;
pub mod guide;
#[cfg(feature = "std")]
mod io_kind;
mod iter;
#[cfg(feature = "std")]
mod label;
mod scope;
#[cfg(feature = "tokio")]
mod spawn;
#[cfg(feature = "stream")]
mod stream;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(feature = "tokio")]
mod tokio;
// Unconditional: its macros expand to nothing without the `tracing` feature.
mod trace;

pub use self::acquire::{Acquire, Bracket, Outcome, WithOutcome, WithRelease, bracket};
// Several resources per item: the public items of `combine`.
pub use self::combine::*;
pub use self::error::ScopedError;
pub use self::iter::{ScopedIterExt, TryMapScoped};
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub use self::label::{LabelExt, Labelled};
#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub use self::{
    async_acquire::{AsyncAcquire, AsyncBracket, AsyncRelease, AsyncWithRelease, async_bracket},
    failures::Failures,
    stream::{ScopedStream, ScopedStreamExt, TryCollectAll},
};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use self::{
    spawn::{SpawnAcquire, SpawnBody},
    tokio::{ReleaseTimeout, ReleaseTimeoutError, SpawnOnCancel, TimedRelease},
};

/// The extension traits, [`bracket`], [`both`], [`nested`], [`bracket_on`],
/// `async_bracket` and `async_bracket_on` (feature `stream`) and
/// [`ScopedError`], for a glob import.
///
/// ```
/// use loopscope::prelude::*;
///
/// let total: u32 = [1, 2].into_iter()
///     .try_map_scoped(|n: u32| Ok::<_, ()>(n * 10), |n| Ok::<_, ()>(*n))
///     .map(Result::unwrap)
///     .sum();
/// assert_eq!(total, 30);
/// ```
pub mod prelude {
    #[cfg(feature = "stream")]
    pub use crate::{Failures, ScopedStream, ScopedStreamExt, async_bracket, async_bracket_on};
    pub use crate::{ScopedError, ScopedIterExt, both, bracket, bracket_on, nested};
}

// Runs the README's code blocks as doctests, so the README cannot drift from the API.
// They use every feature, as `cargo test --all-features` does.
#[cfg(all(doctest, feature = "tokio", feature = "testing"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
