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
//! [`for_each_scoped_concurrent`](ScopedStreamExt::for_each_scoped_concurrent),
//! [`try_map_scoped_concurrent`](ScopedStreamExt::try_map_scoped_concurrent)
//! (input order) and
//! [`try_map_scoped_unordered`](ScopedStreamExt::try_map_scoped_unordered). An
//! [`async_bracket`]`(acquire).release(release)` awaits an async release, such as
//! a socket's `shutdown().await`; when an adapter's future completes, every
//! release has completed.
//!
//! [`futures::Stream`]: https://docs.rs/futures/0.3/futures/stream/trait.Stream.html
//!
//! Resources are acquired by a closure (released by `Drop`) or by a
//! [`bracket`]`(acquire).release(release)` whose release returns a `Result`;
//! [`bracket`]`(acquire).release_with(..)` is also told the item's [`Outcome`],
//! to commit what completed and roll back the rest. Two resources per item — an
//! input and an output — take [`both`]`(first, second)`: acquired in order,
//! released in reverse, and a failed second acquire releases the first at once.
//! Errors are a [`ScopedError`] that names the step and the item's index, and
//! keeps both errors when the body and the release both fail.
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
//! # Prove your loop
//!
//! A loop that hoards can pass every test that only looks at its results. With
//! the `testing` feature, the kit this crate proves its own adapters with is
//! yours: a `Tracker` counts the resources live, `Faults` makes chosen items
//! fail, panic or wait at acquire, use or release, and `cancel_at_every_poll`
//! drops a future at each of its `.await`s. Keep a tracked resource beside your
//! real one, inject the faults, and assert what must hold — at most one (or
//! `limit`) live, every resource released exactly once:
//!
//! ```
//! # #[cfg(feature = "testing")]
//! # fn main() -> std::io::Result<()> {
//! use std::fs::File;
//! use std::io::{self, Read};
//! use std::path::PathBuf;
//! use loopscope::prelude::*;
//! use loopscope::testing::{Faults, Tracker, catch_injected};
//!
//! # let dir = tempfile::tempdir()?;
//! # let paths: Vec<_> = (0..10).map(|i| dir.path().join(format!("{i}.log"))).collect();
//! # for path in &paths { std::fs::write(path, "GET /\n")?; }
//! let tracker = Tracker::new();
//! // Item 2's open fails, item 3's body fails, item 6's release fails, item 8's body panics.
//! let faults = Faults::new().fail_acquire([2]).fail_use([3]).fail_release([6]).panic_use([8]);
//! let mut read = 0;
//! let panicked = catch_injected(|| {
//!     let results = paths.iter().try_map_scoped(
//!         faults.acquire(|path: &PathBuf| Ok::<_, io::Error>((File::open(path)?, tracker.acquire()))),
//!         faults.body(|(file, _tracked): &mut (File, _)| file.read(&mut [0; 64])),
//!     );
//!     for result in results {
//!         read += result.map_or(0, |bytes| bytes);
//!     }
//! });
//! assert_eq!(panicked.unwrap_err().index, 8); // the injected panic, at item 8
//! assert_eq!(read, 5 * 6); // items 0, 1, 4, 5 and 7 read their 6 bytes
//! assert_eq!(tracker.peak(), 1);
//! tracker.assert_released_exactly_once();
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "testing"))]
//! # fn main() {}
//! ```
//!
//! An async loop, too, with the steps waiting a few polls, the future dropped
//! after each possible number of polls, and nothing left live each time:
//!
//! ```
//! # #[cfg(all(feature = "testing", feature = "stream"))]
//! # fn main() {
//! use std::convert::Infallible;
//! use futures::stream::{self, StreamExt};
//! use loopscope::prelude::*;
//! use loopscope::testing::{Faults, Step, Tracker, cancel_at_every_poll};
//!
//! let tracker = Tracker::new();
//! let faults = Faults::new()
//!     .fail_use([6])
//!     .yield_at(Step::Use, |index| index % 4)
//!     .yield_at(Step::Release, |_| 1);
//! let polls = cancel_at_every_poll(
//!     || {
//!         stream::iter(0..20).for_each_scoped_concurrent(
//!             4,
//!             faults.acquire(
//!                 async_bracket(async |_id: u32| Ok::<_, Infallible>(tracker.acquire()))
//!                     .release(|conn| async move { Ok::<_, Infallible>(conn.release()) }),
//!             ),
//!             faults.async_body(async |_conn| Ok::<_, Infallible>(())),
//!         )
//!     },
//!     |_polls| assert_eq!(tracker.live(), 0),
//! );
//! // Dropped at each of its `polls` poll points, it never left one live.
//! assert!(polls > 1);
//! assert!(tracker.peak() <= 4);
//! tracker.assert_released_exactly_once();
//! # }
//! # #[cfg(not(all(feature = "testing", feature = "stream")))]
//! # fn main() {}
//! ```
//!
//! # Crate features
//!
//! - **`std`** *(default)*: `catch_unwind`, so that a release which panics while
//!   the body's panic unwinds cannot abort the process; conversions of
//!   [`ScopedError`] into [`std::io::Error`]. Without it the crate is `#![no_std]`.
//! - **`stream`** *(default)*: [`ScopedStreamExt`] on every `futures::Stream`,
//!   [`AsyncAcquire`] and [`async_bracket`]. Needs `std`.
//! - **`tokio`**: for async brackets, `.spawn_on_cancel()` — when an adapter
//!   is dropped mid-item, the async release is spawned on the current tokio
//!   runtime rather than left to `Drop` — and `.release_timeout(duration)`, which
//!   abandons a release that does not finish in time; and the spawned adapters
//!   `try_map_scoped_spawned` and `for_each_scoped_spawned`, which run each
//!   item's scope as a task, so that no resource sits idle while a slow consumer
//!   is busy.
//! - **`testing`**: the `testing` module, to prove your own loops (see
//!   [above](#prove-your-loop)) — a `Tracker` that records live, peak, acquired
//!   and released resources, `Faults` that inject failures, panics and delays
//!   into your acquire and body, and `cancel_at_every_poll`. Needs `std`.
//! - **`tracing`**: a [`tracing`] span per item and events for its acquire,
//!   release and failures; see [Tracing](#tracing). Needs `std`. Without it
//!   nothing of `tracing` is compiled in.
//!
//! # Tracing
//!
//! With the `tracing` feature, every scoped adapter — sync and async, sequential
//! and concurrent — runs each item in a [`tracing`] span and emits an event at
//! each of its steps. All of them have the target `loopscope`:
//!
//! | span / event | level | fields | when |
//! | --- | --- | --- | --- |
//! | span `item` | `DEBUG` | `index` | around the item's acquire, body and release |
//! | `acquired` | `TRACE` | | the acquire succeeded |
//! | `released` | `TRACE` | `outcome` | the release succeeded (or, for a release by `Drop`, the resource was dropped) |
//! | `acquire failed` | `WARN` | `index` | the acquire returned `Err` |
//! | `body failed` | `WARN` | `index` | the body returned `Err` |
//! | `release failed` | `WARN` | `index`, `outcome` | the release returned `Err` |
//! | `body panicked` | `ERROR` | `index` | the body panicked; the release follows, then the panic resumes |
//! | `release panicked` | `ERROR` | `index` | the release run after a body's panic panicked too (caught, with `std`) |
//!
//! `index` is the item's position in the input, as in [`ScopedError`];
//! `outcome` is the [`Outcome`] the release was given, recorded with `Debug`.
//! The failure events carry `index` themselves, so that they still say which
//! item failed when a filter leaves the `DEBUG` spans out (`RUST_LOG=warn`). The
//! errors themselves are not recorded — the adapters put no `Debug` bound on
//! them, and the caller gets each one in the returned [`ScopedError`] — except
//! that a release error or panic after a body's panic, which the caller cannot
//! get, is reported by its event.
//!
//! Your own acquire, body and release run inside the item's span, so their
//! events and spans nest under it: the sync adapters enter the span for the whole
//! item, and the async ones instrument the acquire, body and release futures with
//! it (an async scope never holds a span entered across an `.await`). A
//! concurrent adapter's items have one span each, so their interleaved events
//! stay apart. An item cancelled mid-way (the async adapter dropped) emits no
//! event for its release; its span closes when the item's future is dropped.
//!
//! Without the feature the adapters compile to exactly the same code: the span
//! and event sites are macros that expand to nothing, and the crate does not
//! depend on `tracing`.
//!
//! [`tracing`]: https://docs.rs/tracing
//!
//! # Rust version
//!
//! Rust 1.85 or newer (edition 2024).
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod acquire;
#[cfg(feature = "stream")]
mod async_acquire;
mod combine;
mod error;
mod iter;
mod scope;
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
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use self::tokio::{ReleaseTimeout, ReleaseTimeoutError, SpawnOnCancel, TimedRelease};
#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub use self::{
    async_acquire::{
        AsyncAcquire, AsyncBracket, AsyncRelease, AsyncWithRelease, ConcurrentAcquire,
        async_bracket,
    },
    stream::ScopedStreamExt,
};

/// The extension traits, [`bracket`], [`both`], [`async_bracket`] and
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
    pub use crate::{ScopedError, ScopedIterExt, both, bracket};
    #[cfg(feature = "stream")]
    pub use crate::{ScopedStreamExt, async_bracket};
}

// Runs the README's code blocks as doctests, so the README cannot drift from the API.
// They use every feature, as `cargo test --all-features` does.
#[cfg(all(doctest, feature = "tokio", feature = "testing"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
