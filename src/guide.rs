//! Guides: the hand-written loops this crate replaces, how to prove your own
//! loop, and what the `tracing` feature records. This module holds
//! documentation only.
//!
//! - [Replacing manual loops](#replacing-manual-loops): six loops that compile,
//!   pass their tests and still hoard resources or lose errors, each beside its
//!   replacement.
//! - [Errors: `?`, messages, and which item failed](#errors--messages-and-which-item-failed):
//!   `?` into `io::Error`, anyhow or a boxed error, what the messages say, and
//!   how to [label an error with its item](#which-item-failed).
//! - [When an item fails: structured concurrency](#when-an-item-fails-structured-concurrency):
//!   what the concurrent adapters do at a failure, a panic or a drop, and how
//!   to [retry after a timeout](#retrying-after-a-timeout) without racing a
//!   pending close.
//! - [Running inside `tokio::spawn`](#running-inside-tokiospawn): which closures
//!   keep an adapter's future `Send`, the errors rustc gives when they do not,
//!   and the fixes.
//! - [Prove your loop](#prove-your-loop): the test kit (feature `testing`).
//! - [Tracing](#tracing): the spans and events (feature `tracing`).
//!
//! # Replacing manual loops
//!
//! Each "before" below compiles and runs; the comments say what is wrong with
//! it. Each "after" is the same work with this crate, and runs as a test.
//!
//! ## Collecting opened files
//!
//! Before: every file is open at once, until `too many open files`; and an
//! error does not say which path failed.
//!
//! ```
//! use std::fs::File;
//! use std::io::{self, Read};
//!
//! # let dir = tempfile::tempdir()?;
//! # let paths: Vec<_> = (0..100).map(|i| dir.path().join(format!("{i}.log"))).collect();
//! # for path in &paths { std::fs::write(path, "GET /\n")?; }
//! let files = paths.iter().map(File::open).collect::<io::Result<Vec<_>>>()?;
//! // All 100 files are open here; with 100,000 paths, the process runs out.
//! let mut text = String::new();
//! for mut file in files {
//!     file.read_to_string(&mut text)?;
//! }
//! # Ok::<(), io::Error>(())
//! ```
//!
//! After: one file open at a time, and the error names the item.
//! `for_each_scoped` stops at the first error; `try_map_scoped` is lazy and
//! yields one `Result` per item.
//!
//! ```
//! use std::fs::File;
//! use std::io::{self, Read};
//! use loopscope::prelude::*;
//!
//! # let dir = tempfile::tempdir()?;
//! # let paths: Vec<_> = (0..100).map(|i| dir.path().join(format!("{i}.log"))).collect();
//! # for path in &paths { std::fs::write(path, "GET /\n")?; }
//! let mut text = String::new();
//! paths.iter().for_each_scoped(File::open, |file| file.read_to_string(&mut text))?;
//!
//! let sizes = paths
//!     .iter()
//!     .try_map_scoped(File::open, |file| file.read_to_end(&mut Vec::new()))
//!     .collect::<Result<Vec<usize>, _>>()?;
//! assert_eq!(sizes.len(), 100);
//!
//! let missing = [dir.path().join("0.log"), dir.path().join("gone.log")];
//! let error = missing.iter().for_each_scoped(File::open, |_file| Ok::<_, io::Error>(())).unwrap_err();
//! assert_eq!(error.index(), 1); // `missing[1]` could not be opened
//! # Ok::<(), io::Error>(())
//! ```
//!
//! ## Connections, and how many are open
//!
//! In the next two examples, `connect`, `Connection::get` and
//! `Connection::close` stand in for a network client's (they are hidden in the
//! code). A `Connection` that is dropped rather than closed is closed by a task
//! in the background, a while later — as a `tokio::fs::File` dropped after a
//! write stays open until tokio's blocking pool has done that write
//! (`tests-integration/tests/close_left_to_drop.rs` measures it; a tokio
//! `TcpStream`, in contrast, closes in `Drop`). `peak()` is the most
//! connections that were open — or still closing — at once.
//!
//! ### `join_all` over per-item futures
//!
//! Before: every future runs at once, and so every connection is open at once.
//!
//! ```
//! # use std::io;
//! # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
//! # static OPEN: AtomicUsize = AtomicUsize::new(0);
//! # static PEAK: AtomicUsize = AtomicUsize::new(0);
//! # fn peak() -> usize { PEAK.load(SeqCst) }
//! # async fn some_polls() { for _ in 0..20 { tokio::task::yield_now().await; } }
//! # struct Connection { closed: bool }
//! # async fn connect(_port: u16) -> io::Result<Connection> {
//! #     PEAK.fetch_max(OPEN.fetch_add(1, SeqCst) + 1, SeqCst);
//! #     Ok(Connection { closed: false })
//! # }
//! # impl Connection {
//! #     async fn get(&mut self, path: &str) -> io::Result<String> {
//! #         tokio::task::yield_now().await;
//! #         Ok(format!("200 {path}"))
//! #     }
//! # }
//! # impl Drop for Connection {
//! #     fn drop(&mut self) {
//! #         if !self.closed {
//! #             tokio::spawn(async { some_polls().await; OPEN.fetch_sub(1, SeqCst) });
//! #         }
//! #     }
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> io::Result<()> {
//! let replies = futures::future::join_all((0..100).map(|port| async move {
//!     let mut connection = connect(port).await?;
//!     connection.get("/status").await
//! }))
//! .await;
//! assert!(replies.iter().all(Result::is_ok));
//! assert_eq!(peak(), 100); // all of them at once
//! # Ok(())
//! # }
//! ```
//!
//! After: at most 8 connections — counting those being closed, since each
//! close is awaited before its slot takes the next item.
//!
//! ```
//! # use std::io;
//! # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
//! # static OPEN: AtomicUsize = AtomicUsize::new(0);
//! # static PEAK: AtomicUsize = AtomicUsize::new(0);
//! # fn peak() -> usize { PEAK.load(SeqCst) }
//! # async fn some_polls() { for _ in 0..20 { tokio::task::yield_now().await; } }
//! # struct Connection { closed: bool }
//! # async fn connect(_port: u16) -> io::Result<Connection> {
//! #     PEAK.fetch_max(OPEN.fetch_add(1, SeqCst) + 1, SeqCst);
//! #     Ok(Connection { closed: false })
//! # }
//! # impl Connection {
//! #     async fn get(&mut self, path: &str) -> io::Result<String> {
//! #         tokio::task::yield_now().await;
//! #         Ok(format!("200 {path}"))
//! #     }
//! #     async fn close(mut self) -> io::Result<()> {
//! #         some_polls().await;
//! #         self.closed = true;
//! #         OPEN.fetch_sub(1, SeqCst);
//! #         Ok(())
//! #     }
//! # }
//! # impl Drop for Connection {
//! #     fn drop(&mut self) {
//! #         if !self.closed {
//! #             tokio::spawn(async { some_polls().await; OPEN.fetch_sub(1, SeqCst) });
//! #         }
//! #     }
//! # }
//! use futures::stream;
//! use loopscope::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> io::Result<()> {
//! stream::iter(0..100)
//!     .for_each_scoped_concurrent(
//!         8,
//!         async_bracket(connect).release(Connection::close),
//!         async |connection| connection.get("/status").await,
//!     )
//!     .await?;
//! assert!(peak() <= 8);
//! # Ok(())
//! # }
//! ```
//!
//! ### `buffer_unordered(n)`
//!
//! Before: `buffer_unordered(8)` caps the *futures* at 8, but each future
//! leaves its connection to `Drop`: the closes pile up in the background, so
//! far more than 8 connections are open at once — and a failed close is never
//! seen.
//!
//! ```
//! # use std::io;
//! # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
//! # static OPEN: AtomicUsize = AtomicUsize::new(0);
//! # static PEAK: AtomicUsize = AtomicUsize::new(0);
//! # fn peak() -> usize { PEAK.load(SeqCst) }
//! # async fn some_polls() { for _ in 0..20 { tokio::task::yield_now().await; } }
//! # struct Connection { closed: bool }
//! # async fn connect(_port: u16) -> io::Result<Connection> {
//! #     PEAK.fetch_max(OPEN.fetch_add(1, SeqCst) + 1, SeqCst);
//! #     Ok(Connection { closed: false })
//! # }
//! # impl Connection {
//! #     async fn get(&mut self, path: &str) -> io::Result<String> {
//! #         tokio::task::yield_now().await;
//! #         Ok(format!("200 {path}"))
//! #     }
//! # }
//! # impl Drop for Connection {
//! #     fn drop(&mut self) {
//! #         if !self.closed {
//! #             tokio::spawn(async { some_polls().await; OPEN.fetch_sub(1, SeqCst) });
//! #         }
//! #     }
//! # }
//! use futures::stream::{self, StreamExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> io::Result<()> {
//! let replies: Vec<io::Result<String>> = stream::iter(0..100)
//!     .map(|port| async move {
//!         let mut connection = connect(port).await?;
//!         connection.get("/status").await
//!     }) // `connection` dropped: closed some time later, if at all
//!     .buffer_unordered(8)
//!     .collect()
//!     .await;
//! assert_eq!(replies.len(), 100);
//! assert!(peak() > 8);
//! # Ok(())
//! # }
//! ```
//!
//! After: `try_map_scoped_unordered(8, ..)` yields the results in completion
//! order too, but a result comes only once its connection's close has been
//! awaited, so at most 8 are open; a failed close is the item's error, which
//! carries its index.
//!
//! ```
//! # use std::io;
//! # use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
//! # static OPEN: AtomicUsize = AtomicUsize::new(0);
//! # static PEAK: AtomicUsize = AtomicUsize::new(0);
//! # fn peak() -> usize { PEAK.load(SeqCst) }
//! # async fn some_polls() { for _ in 0..20 { tokio::task::yield_now().await; } }
//! # struct Connection { closed: bool }
//! # async fn connect(_port: u16) -> io::Result<Connection> {
//! #     PEAK.fetch_max(OPEN.fetch_add(1, SeqCst) + 1, SeqCst);
//! #     Ok(Connection { closed: false })
//! # }
//! # impl Connection {
//! #     async fn get(&mut self, path: &str) -> io::Result<String> {
//! #         tokio::task::yield_now().await;
//! #         Ok(format!("200 {path}"))
//! #     }
//! #     async fn close(mut self) -> io::Result<()> {
//! #         some_polls().await;
//! #         self.closed = true;
//! #         OPEN.fetch_sub(1, SeqCst);
//! #         Ok(())
//! #     }
//! # }
//! # impl Drop for Connection {
//! #     fn drop(&mut self) {
//! #         if !self.closed {
//! #             tokio::spawn(async { some_polls().await; OPEN.fetch_sub(1, SeqCst) });
//! #         }
//! #     }
//! # }
//! use futures::stream::{self, StreamExt};
//! use loopscope::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> io::Result<()> {
//! let replies: Vec<_> = stream::iter(0..100)
//!     .try_map_scoped_unordered(
//!         8,
//!         async_bracket(connect).release(Connection::close),
//!         async |connection| connection.get("/status").await,
//!     )
//!     .collect()
//!     .await;
//! assert!(replies.iter().all(Result::is_ok));
//! assert!(peak() <= 8);
//! # Ok(())
//! # }
//! ```
//!
//! When the consumer of the results is slow, the connections in flight sit
//! idle while it works, as with `buffer_unordered`; with the `tokio` feature,
//! `try_map_scoped_spawned` runs each item as a task, so that it finishes and
//! closes meanwhile.
//!
//! ## A `BufWriter` whose flush error `Drop` swallows
//!
//! Before: dropping a `BufWriter` flushes it and ignores the error. Here the
//! "disk" has room for 4 bytes, the loop reports success, and the rest of the
//! data is gone:
//!
//! ```
//! use std::io::{self, BufWriter, Write};
//!
//! let mut disk = [0u8; 4];
//! {
//!     let mut writer = BufWriter::new(&mut disk[..]);
//!     writer.write_all(b"hello world")?; // buffered: fine so far
//! } // dropped: the flush fails, and nobody hears of it
//! assert_eq!(&disk, b"hell");
//! # Ok::<(), io::Error>(())
//! ```
//!
//! After: the release takes the writer back with `into_inner`, which flushes
//! and reports the error, then syncs the file:
//!
//! ```
//! use std::fs::File;
//! use std::io::{self, BufWriter, Write};
//! use std::path::PathBuf;
//! use loopscope::prelude::*;
//!
//! # let dir = tempfile::tempdir()?;
//! # let paths: Vec<PathBuf> = ["a.csv", "b.csv"].iter().map(|name| dir.path().join(name)).collect();
//! paths.iter().for_each_scoped(
//!     bracket(|path: &PathBuf| File::create(path).map(BufWriter::new)).release(
//!         |writer: BufWriter<File>| writer.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all(),
//!     ),
//!     |writer| writeln!(writer, "id,total"),
//! )?;
//! # assert_eq!(std::fs::read_to_string(&paths[1])?, "id,total\n");
//! # Ok::<(), io::Error>(())
//! ```
//!
//! On the 4-byte disk, the same release turns the lost bytes into an error of
//! the item:
//!
//! ```
//! use std::io::{self, BufWriter, Cursor, Write};
//! use loopscope::prelude::*;
//!
//! let error = [1, 2]
//!     .into_iter()
//!     .for_each_scoped(
//!         bracket(|_id: u32| Ok::<_, io::Error>(BufWriter::new(Cursor::new([0u8; 4])))).release(
//!             |writer: BufWriter<Cursor<[u8; 4]>>| writer.into_inner().map(drop).map_err(io::IntoInnerError::into_error),
//!         ),
//!         |writer| writer.write_all(b"hello world"),
//!     )
//!     .unwrap_err();
//! assert!(matches!(error, ScopedError::Release { index: 0, .. }));
//! assert_eq!(io::Error::from(error).kind(), io::ErrorKind::WriteZero);
//! ```
//!
//! ## A connection whose async close was left to `Drop`
//!
//! Before: Rust has no async `Drop`, so a dropped `TcpStream` is closed without
//! a `shutdown().await`, and whatever that would have reported is lost.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use tokio::io::AsyncWriteExt;
//! use tokio::net::TcpStream;
//!
//! async fn ping_all(peers: &[SocketAddr]) -> std::io::Result<()> {
//!     for peer in peers {
//!         let mut connection = TcpStream::connect(peer).await?;
//!         connection.write_all(b"ping\n").await?;
//!     } // dropped: no `shutdown().await`
//!     Ok(())
//! }
//! ```
//!
//! After: an async release, awaited before the next item — here on a real
//! socket on the loopback interface. With the `tokio` feature,
//! `.spawn_on_cancel()` after `.release(..)` also runs the shutdown when the
//! loop is cancelled mid-item (a timeout, a `select!`).
//!
//! ```
//! # #[cfg(feature = "stream")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use std::net::SocketAddr;
//! use futures::stream;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::{TcpListener, TcpStream};
//! use loopscope::prelude::*;
//!
//! # let listener = TcpListener::bind("127.0.0.1:0").await?;
//! # let server = listener.local_addr()?;
//! # let received = tokio::spawn(async move {
//! #     let mut received = Vec::new();
//! #     for _ in 0..3 {
//! #         let (mut socket, _) = listener.accept().await?;
//! #         socket.read_to_end(&mut received).await?;
//! #     }
//! #     std::io::Result::Ok(received)
//! # });
//! let peers = [server; 3];
//! stream::iter(peers)
//!     .for_each_scoped(
//!         async_bracket(async |peer: SocketAddr| TcpStream::connect(peer).await)
//!             .release(|mut connection: TcpStream| async move { connection.shutdown().await }),
//!         async |connection| connection.write_all(b"ping\n").await,
//!     )
//!     .await?;
//! # assert_eq!(received.await.unwrap()?, b"ping\nping\nping\n");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "stream"))]
//! # fn main() {}
//! ```
//!
//! ## A transaction begun inside the connection's acquire
//!
//! Before: a connection, then `BEGIN` on it, in one acquire. The acquire is
//! not guarded against itself: a step that fails after `BEGIN` (here a
//! `SET`), or — async — a cancellation while it awaits, drops the connection
//! without its release, and the pool takes it back still inside the
//! transaction. The next item's `BEGIN` fails on it; every later user of the
//! pool sees the half-done work.
//!
//! ```
//! # use std::cell::RefCell;
//! # #[derive(Default)]
//! # struct Connection { in_transaction: bool }
//! # impl Connection {
//! #     fn execute(&mut self, sql: &str) -> Result<(), String> {
//! #         match sql {
//! #             "BEGIN" if self.in_transaction => return Err("already in a transaction".into()),
//! #             "BEGIN" => self.in_transaction = true,
//! #             "COMMIT" | "ROLLBACK" => self.in_transaction = false,
//! #             "SET lock_timeout = 0" => return Err("lock timeout".into()),
//! #             _ => {}
//! #         }
//! #         Ok(())
//! #     }
//! # }
//! # /// A connection lent by the pool; its `Drop` hands it back as it is.
//! # struct Pooled<'p> { connection: Option<Connection>, pool: &'p RefCell<Vec<Connection>> }
//! # impl std::ops::Deref for Pooled<'_> {
//! #     type Target = Connection;
//! #     fn deref(&self) -> &Connection { self.connection.as_ref().unwrap() }
//! # }
//! # impl std::ops::DerefMut for Pooled<'_> {
//! #     fn deref_mut(&mut self) -> &mut Connection { self.connection.as_mut().unwrap() }
//! # }
//! # impl Drop for Pooled<'_> {
//! #     fn drop(&mut self) { self.pool.borrow_mut().push(self.connection.take().unwrap()) }
//! # }
//! # let pool = RefCell::new(vec![Connection::default()]);
//! # let get = || Ok::<_, String>(Pooled { connection: pool.borrow_mut().pop(), pool: &pool });
//! use loopscope::prelude::*;
//!
//! let result = [1, 2].into_iter().for_each_scoped(
//!     bracket(|_id: u32| {
//!         let mut connection = get()?;
//!         connection.execute("BEGIN")?;
//!         connection.execute("SET lock_timeout = 0")?; // fails: `connection` is dropped here
//!         Ok::<_, String>(connection)
//!     })
//!     .release_with(|mut connection, outcome| {
//!         connection.execute(if outcome.is_completed() { "COMMIT" } else { "ROLLBACK" })
//!     }),
//!     |connection| connection.execute("INSERT INTO done VALUES (1)"),
//! );
//! assert!(result.is_err());
//! assert!(pool.borrow()[0].in_transaction); // back in the pool, mid-transaction
//! ```
//!
//! After: [`nested`](crate::nested) makes the connection and the transaction
//! two guarded steps. The inner part is acquired from the connection
//! (`BEGIN` on `&mut Connection`), and its release is lent the connection
//! again, told the item's [`Outcome`](crate::Outcome): `COMMIT` when the body
//! completed, `ROLLBACK` when it failed or panicked — always before the
//! connection itself is released. A failed `BEGIN` releases the connection at
//! once, told `Failed`. Async, with
//! [`async_bracket_on`], a cancellation between the
//! two steps hands the connection to its part's `release_on_cancel`, and the
//! connection's release — spawned with `.spawn_on_cancel()`, feature `tokio` —
//! is told `Cancelled`: roll back or discard it there.
//!
//! ```
//! # use std::cell::RefCell;
//! # #[derive(Default)]
//! # struct Connection { in_transaction: bool }
//! # impl Connection {
//! #     fn execute(&mut self, sql: &str) -> Result<(), String> {
//! #         match sql {
//! #             "BEGIN" if self.in_transaction => return Err("already in a transaction".into()),
//! #             "BEGIN" => self.in_transaction = true,
//! #             "COMMIT" | "ROLLBACK" => self.in_transaction = false,
//! #             "SET lock_timeout = 0" => return Err("lock timeout".into()),
//! #             _ => {}
//! #         }
//! #         Ok(())
//! #     }
//! # }
//! # /// A connection lent by the pool; its `Drop` hands it back as it is.
//! # struct Pooled<'p> { connection: Option<Connection>, pool: &'p RefCell<Vec<Connection>> }
//! # impl std::ops::Deref for Pooled<'_> {
//! #     type Target = Connection;
//! #     fn deref(&self) -> &Connection { self.connection.as_ref().unwrap() }
//! # }
//! # impl std::ops::DerefMut for Pooled<'_> {
//! #     fn deref_mut(&mut self) -> &mut Connection { self.connection.as_mut().unwrap() }
//! # }
//! # impl Drop for Pooled<'_> {
//! #     fn drop(&mut self) { self.pool.borrow_mut().push(self.connection.take().unwrap()) }
//! # }
//! # let pool = RefCell::new(vec![Connection::default()]);
//! # let get = || Ok::<_, String>(Pooled { connection: pool.borrow_mut().pop(), pool: &pool });
//! use loopscope::{bracket_on, nested};
//! use loopscope::prelude::*;
//!
//! let result = [1, 2].into_iter().for_each_scoped(
//!     nested(
//!         |_id: u32| get(),
//!         bracket_on(|connection: &mut Pooled| connection.execute("BEGIN")).release_with(
//!             |(), connection, outcome| {
//!                 connection.execute(if outcome.is_completed() { "COMMIT" } else { "ROLLBACK" })
//!             },
//!         ),
//!     ),
//!     |(connection, ())| {
//!         connection.execute("SET lock_timeout = 0")?; // fails: rolled back
//!         connection.execute("INSERT INTO done VALUES (1)")
//!     },
//! );
//! assert!(result.is_err());
//! assert!(!pool.borrow()[0].in_transaction); // back in the pool, clean
//! ```
//!
//! # Errors: `?`, messages, and which item failed
//!
//! Every adapter's error converts with `?` into what the surrounding function
//! returns, with no `match`:
//!
//! - `io::Error` (feature `std`), keeping the failing step's
//!   [`ErrorKind`], when the acquire, body and release
//!   errors are `io::Error`s (or `Infallible`, or [`Labelled`]
//!   `io::Error`s);
//! - `anyhow::Error` or `Box<dyn Error + Send + Sync>`, whatever the three
//!   error types are, as long as they are `Debug + Display + Send + Sync +
//!   'static` — `anyhow::Error` and boxed errors included — and anyhow's
//!   `.context(..)` applies to the adapter's result;
//! - an error enum of your own, with `#[from] ScopedError<..>` (thiserror).
//!
//! The message names the step, the item and the cause, and reads in cause
//! order under anyhow's `{:#}`: "checking the log headers: failed to use the
//! resource for item 1: bad header". When the body and its release both fail,
//! the release's error goes before the body's: "failed to use the resource for
//! item 0 (its release failed too: flush failed on close): bad header". The
//! typed errors stay in the variants' fields
//! ([`ScopedError`](crate::ScopedError#messages-and-) has the rules).
//!
//! ```
//! use std::fs::File;
//! use std::io::Read;
//! use anyhow::Context;
//! use loopscope::prelude::*;
//!
//! fn check_headers(paths: &[std::path::PathBuf]) -> anyhow::Result<()> {
//!     paths
//!         .iter()
//!         .for_each_scoped(File::open, |file| {
//!             let mut header = [0; 3];
//!             file.read_exact(&mut header).context("reading the header")?;
//!             anyhow::ensure!(&header == b"#v1", "bad header");
//!             Ok(())
//!         })
//!         .context("checking the log headers")?;
//!     Ok(())
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("a.log"), "#v1 GET /")?;
//! std::fs::write(dir.path().join("b.log"), "GET /")?;
//! let error = check_headers(&[dir.path().join("a.log"), dir.path().join("b.log")]).unwrap_err();
//! assert_eq!(
//!     format!("{error:#}"),
//!     "checking the log headers: failed to use the resource for item 1: bad header"
//! );
//! # Ok(())
//! # }
//! ```
//!
//! ## Which item failed
//!
//! The error gives the item's index. When the items are a slice, `paths[error.index()]`
//! is the item; when they are a stream of owned values that are not `Clone`,
//! they went into the acquire and the index cannot find them again. Label the
//! error where the item is still at hand: [`LabelExt::with_label`]
//! on the acquire's `Result` (or anyhow's `with_context`), and, for the body's
//! and the release's errors, return the label with the resource:
//!
//! ```
//! # #[cfg(feature = "stream")]
//! # fn main() -> std::io::Result<()> {
//! use std::path::PathBuf;
//! use futures::stream::{self, StreamExt};
//! use loopscope::prelude::*;
//! use loopscope::{LabelExt, Labelled};
//!
//! # let dir = tempfile::tempdir()?;
//! # std::fs::write(dir.path().join("a.log"), "#v1 GET /")?;
//! # let incoming: Vec<PathBuf> = vec![dir.path().join("a.log"), dir.path().join("gone.log")];
//! # futures::executor::block_on(async {
//! // `incoming`: a stream of owned `PathBuf`s, e.g. from a channel.
//! let results: Vec<_> = stream::iter(incoming)
//!     .try_map_scoped(
//!         async |path: PathBuf| {
//!             let name = path.file_name().unwrap().to_string_lossy().into_owned();
//!             let text = std::fs::read_to_string(&path).label(name.clone())?;
//!             Ok::<_, Labelled<std::io::Error>>((name, text))
//!         },
//!         async |(name, text): &mut (String, String)| {
//!             if text.starts_with("#v1") { Ok(text.len()) } else { Err(Labelled::new(name.clone(), "bad header")) }
//!         },
//!     )
//!     .collect()
//!     .await;
//! assert!(results[1]
//!     .as_ref()
//!     .unwrap_err()
//!     .to_string()
//!     .starts_with("failed to acquire the resource for item 1: gone.log: "));
//! # });
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "stream"))]
//! # fn main() {}
//! ```
//!
//! # When an item fails: structured concurrency
//!
//! The concurrent adapters keep the promise of the sequential ones — every
//! release completes, every error reaches the caller — also when one of several
//! items in flight fails, panics, or the adapter is dropped. As in
//! `try_for_each_concurrent`, cats-effect's `parTraverseN` and Trio's nurseries,
//! the items in flight are the adapter's children: it does not return before
//! they have ended.
//!
//! - **Stop at once.** A fail-fast adapter
//!   ([`for_each_scoped_concurrent`],
//!   [`for_each_scoped_spawned`],
//!   [`try_collect_all`]) acquires nothing
//!   after the moment an acquire or a body fails — not after that item's
//!   release, which may take a while.
//! - **Cancel the siblings.** The bodies (and acquires) in flight are dropped
//!   at their current `.await`, and each one's resource released, told
//!   [`Outcome::Cancelled`](crate::Outcome::Cancelled) (roll back, don't
//!   commit); the adapter returns once every release has completed. A release
//!   that has started is never cut off.
//! - **Keep every error.** The error is [`Failures`]: the
//!   first failure, with every other failure of the items that were in flight —
//!   a body that failed at the same moment, a release that failed or timed
//!   out (a cancelled item's as [`ScopedError::Cancelled`](crate::ScopedError::Cancelled)).
//! - **Panics wait too.** A body's panic cancels the others, waits for every
//!   release, then resumes. Polled again after that, a concurrent stream panics
//!   ("polled after a panic") — it never waits forever. A resource released by
//!   `Drop` whose `Drop` panics while a body's panic unwinds does not abort the
//!   process, and one panicking `Drop` among the resources of a dropped adapter
//!   does not keep the others from being dropped.
//! - **Dropping is cancellation too.** A dropped adapter (a timeout, a
//!   `select!`) cannot await anything: each resource goes to its `Drop`, or,
//!   with [`spawn_on_cancel`]
//!   (feature `tokio`), its release is handed to the runtime — also a release
//!   that was already running.
//!
//! The mapping streams do not stop at an error: each item yields its own
//! `Result`. Stopping early by dropping them (`try_collect` does, at the first
//! `Err`) abandons the releases in flight; [`ScopedStream::try_collect_all`]
//! stops at the first error *and* waits:
//!
//! ```
//! use futures::stream;
//! use loopscope::prelude::*;
//!
//! # futures::executor::block_on(async {
//! let failures = stream::iter(["a.csv", "b.csv", "broken", "d.csv"])
//!     .try_map_scoped_unordered(
//!         2,
//!         async |name: &str| {
//!             if name == "broken" { Err(format!("cannot open {name}")) } else { Ok(name.len()) }
//!         },
//!         async |size: &mut usize| Ok::<_, String>(*size),
//!     )
//!     .try_collect_all::<Vec<usize>>()
//!     .await
//!     .unwrap_err();
//! // Every release had completed when the error came back.
//! assert_eq!(failures.index(), 2);
//! assert_eq!(failures.to_string(), "failed to acquire the resource for item 2: cannot open broken");
//! # });
//! ```
//!
//! ## Retrying after a timeout
//!
//! A dropped adapter hands its async releases to the runtime
//! ([`spawn_on_cancel`]): they
//! complete, but after the drop. On an exclusive resource — a single database
//! connection, a lock file, a port — a caller that retries at once races them
//! and finds the resource still busy. Track the handed-over releases with a
//! tokio-util [`TaskTracker`]
//! ([`spawn_on_cancel_in`]), and
//! wait for them before the retry:
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use futures::stream;
//! use loopscope::prelude::*;
//! use tokio::sync::Semaphore;
//! use tokio_util::task::TaskTracker;
//!
//! // One connection: whoever holds the permit holds it.
//! let connection = Arc::new(Semaphore::new(1));
//! let tracker = TaskTracker::new();
//! let exclusive = async_bracket({
//!     let connection = Arc::clone(&connection);
//!     async move |_job: u32| connection.clone().try_acquire_owned().map_err(|_| "busy")
//! })
//! .release(|permit| async move {
//!     tokio::time::sleep(Duration::from_millis(20)).await; // a slow close
//!     drop(permit);
//!     Ok::<_, &str>(())
//! })
//! .spawn_on_cancel_in(&tracker);
//!
//! for attempt in 1..=3 {
//!     let work = stream::iter([attempt]).for_each_scoped(exclusive.clone(), async |_permit| {
//!         tokio::time::sleep(Duration::from_millis(if attempt < 3 { 50 } else { 1 })).await;
//!         Ok::<_, &str>(())
//!     });
//!     match tokio::time::timeout(Duration::from_millis(10 * attempt as u64 + 10), work).await {
//!         Ok(done) => {
//!             done.expect("the connection was free");
//!             break;
//!         }
//!         Err(_timed_out) => {
//!             // The close was handed over: wait for it before retrying.
//!             tracker.close();
//!             tracker.wait().await;
//!             tracker.reopen();
//!         }
//!     }
//! }
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! # Running inside `tokio::spawn`
//!
//! Every adapter's future or stream is `Send` when its input, its resources and
//! what its closures capture are — also when the closures capture by reference
//! (`&config`, `&Mutex<..>`, `&AtomicUsize`, `&self`), as service code does:
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! use std::sync::Mutex;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use futures::stream::{self, StreamExt};
//! use loopscope::prelude::*;
//!
//! struct Config { prefix: String }
//!
//! let task = tokio::spawn(async move {
//!     let config = Config { prefix: "conn".into() };
//!     let (seen, hits) = (Mutex::new(Vec::new()), AtomicUsize::new(0));
//!     stream::iter(0..10)
//!         .for_each_scoped_concurrent(
//!             4,
//!             async |id: u32| Ok::<_, std::io::Error>(format!("{}-{id}", config.prefix)),
//!             async |connection| {
//!                 tokio::task::yield_now().await;
//!                 hits.fetch_add(1, Ordering::Relaxed);
//!                 seen.lock().unwrap().push(connection.clone());
//!                 Ok::<_, std::io::Error>(())
//!             },
//!         )
//!         .await?;
//!     Ok::<_, Failures<ScopedError<_, _, _>>>(hits.into_inner())
//! });
//! assert_eq!(task.await.unwrap().unwrap(), 10);
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! **The rule.** The adapters call a copy of the acquire and of the body for
//! each item (their bounds are `AsyncFnOnce(..) + Clone`), so that no future
//! borrows a closure the adapter owns — a future that did is one rustc cannot
//! prove `Send` ([rust-lang/rust#110338]). A closure that captures only
//! references or `Copy` values is `Copy`, and its copy is free. So a closure
//! may *read* what it captures, and change it through a `Mutex` or an atomic,
//! but may not mutate a captured variable directly.
//!
//! **What rustc still cannot prove, and the fixes.**
//!
//! - A body that mutates a captured local (`total += n`, `log.push(..)` on a
//!   captured `Vec`) does not compile, spawned or not:
//!
//!   ```text
//!   error[E0277]: the trait bound `&mut u64: Clone` is not satisfied in `{async closure@..}`
//!   ```
//!
//!   Thread the state through
//!   [`try_fold_scoped`] instead
//!   (`async |total, file| Ok(total + file.len())`), or keep it in an atomic or
//!   a `Mutex` the closure borrows. No structure of the adapter can lend a
//!   captured `&mut` to one item at a time and keep its future `Send` on stable
//!   Rust: the `&mut` borrow would outlive each call in the adapter's state.
//! - Holding something that is not `Send` (a `std::sync::MutexGuard`, an `Rc`,
//!   a `RefCell` borrow) across an `.await` in a body makes the future not
//!   `Send`, as in any async code: `future cannot be sent between threads
//!   safely … has type MutexGuard<'_, ..> which is not Send`. Drop the guard
//!   before the `.await`, or use `tokio::sync::Mutex`.
//! - A *resource type* that borrows from the task (`Counted<'a>` holding a
//!   `&'a AtomicUsize`, a transaction borrowing its connection) released by an
//!   [`async_bracket`]`(..).release(..)` is not yet
//!   spawnable, though the same closures in a hand-written loop are:
//!
//!   ```text
//!   error: implementation of `FnOnce` is not general enough
//!     = note: closure with signature `fn(Counted<'0>) -> {async block@..}` must implement `FnOnce<(Counted<'1>,)>`, for any two lifetimes `'0` and `'1`...
//!   ```
//!
//!   Own what the resource holds (an `Arc` clone), or release it by `Drop`
//!   (a plain async closure as the acquire), which is spawnable with a
//!   borrowing resource.
//! - Before this version, the adapters borrowed their closures, and borrowing
//!   closures inside `tokio::spawn` failed with
//!
//!   ```text
//!   error: implementation of `std::marker::Send` is not general enough
//!     = note: `std::marker::Send` would have to be implemented for the type `&'0 Config`, for any lifetime `'0`...
//!     = note: ...but `std::marker::Send` is actually implemented for the type `&'1 Config`, for some specific lifetime `'1`
//!   ```
//!
//!   or `error: higher-ranked lifetime error`. If you still see these, an
//!   acquire of your own is the cause: implement
//!   [`AsyncAcquire`] for a `Copy` handle (`&Pool`) or an
//!   `Arc`, whose methods take `self` by value and whose futures own what they
//!   use, rather than returning futures that borrow a closure kept elsewhere.
//!
//! **The spawned adapters** (`for_each_scoped_spawned`,
//! `try_map_scoped_spawned`, feature `tokio`) run each item as a task of its
//! own, so their closures must be `Send + Sync + 'static` (`async move` with
//! owned or `Arc` data), and their resources, items and errors `Send`; the
//! bounds that prove the tasks' futures `Send` are
//! [`SpawnAcquire`] and [`SpawnBody`],
//! both implemented for every async closure and bracket whose futures are.
//!
//! [rust-lang/rust#110338]: https://github.com/rust-lang/rust/issues/110338
//!
//! # Prove your loop
//!
//! A loop that hoards can pass every test that only looks at its results. With
//! the `testing` feature, the kit this crate proves its own adapters with is
//! yours: a [`Tracker`] counts the resources live, [`Faults`] makes chosen
//! items fail, panic or wait at acquire, use or release, and
//! [`cancel_at_every_poll`] drops a future at each of its `.await`s. Keep a
//! tracked resource beside your real one, inject the faults, and assert what
//! must hold — at most one (or `limit`) live, every resource released exactly
//! once:
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
//! [`ScopedError`]: crate::ScopedError
//! [`Outcome`]: crate::Outcome
//! [`TaskTracker`]: https://docs.rs/tokio-util/0.7/tokio_util/task/task_tracker/struct.TaskTracker.html
//
// The test kit's items exist only with the `testing` feature, the stream
// adapters' only with `stream`, the spawned ones' only with `tokio`: without
// it, link to their docs.rs pages, so that `cargo doc` with any features has no
// broken links.
#![cfg_attr(
    feature = "testing",
    doc = "[`Tracker`]: crate::testing::Tracker\n[`Faults`]: crate::testing::Faults\n[`cancel_at_every_poll`]: crate::testing::cancel_at_every_poll"
)]
#![cfg_attr(
    not(feature = "testing"),
    doc = "[`Tracker`]: https://docs.rs/loopscope/0.1/loopscope/testing/struct.Tracker.html\n[`Faults`]: https://docs.rs/loopscope/0.1/loopscope/testing/struct.Faults.html\n[`cancel_at_every_poll`]: https://docs.rs/loopscope/0.1/loopscope/testing/fn.cancel_at_every_poll.html"
)]
#![cfg_attr(
    feature = "stream",
    doc = "[`async_bracket_on`]: crate::async_bracket_on\n[`ErrorKind`]: std::io::ErrorKind\n[`Labelled`]: crate::Labelled\n[`LabelExt::with_label`]: crate::LabelExt::with_label\n[`for_each_scoped_concurrent`]: crate::ScopedStreamExt::for_each_scoped_concurrent\n[`try_collect_all`]: crate::ScopedStream::try_collect_all\n[`ScopedStream::try_collect_all`]: crate::ScopedStream::try_collect_all\n[`Failures`]: crate::Failures\n[`try_fold_scoped`]: crate::ScopedStreamExt::try_fold_scoped\n[`async_bracket`]: crate::async_bracket\n[`AsyncAcquire`]: crate::AsyncAcquire"
)]
#![cfg_attr(
    not(feature = "stream"),
    doc = "[`async_bracket_on`]: https://docs.rs/loopscope/0.1/loopscope/fn.async_bracket_on.html\n[`ErrorKind`]: https://doc.rust-lang.org/std/io/enum.ErrorKind.html\n[`Labelled`]: https://docs.rs/loopscope/0.1/loopscope/struct.Labelled.html\n[`LabelExt::with_label`]: https://docs.rs/loopscope/0.1/loopscope/trait.LabelExt.html#tymethod.with_label\n[`for_each_scoped_concurrent`]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStreamExt.html#method.for_each_scoped_concurrent\n[`try_collect_all`]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStream.html#method.try_collect_all\n[`ScopedStream::try_collect_all`]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStream.html#method.try_collect_all\n[`Failures`]: https://docs.rs/loopscope/0.1/loopscope/struct.Failures.html\n[`try_fold_scoped`]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStreamExt.html#method.try_fold_scoped\n[`async_bracket`]: https://docs.rs/loopscope/0.1/loopscope/fn.async_bracket.html\n[`AsyncAcquire`]: https://docs.rs/loopscope/0.1/loopscope/trait.AsyncAcquire.html"
)]
#![cfg_attr(
    feature = "tokio",
    doc = "[`SpawnAcquire`]: crate::SpawnAcquire\n[`SpawnBody`]: crate::SpawnBody\n[`for_each_scoped_spawned`]: crate::ScopedStreamExt::for_each_scoped_spawned\n[`spawn_on_cancel`]: crate::AsyncWithRelease::spawn_on_cancel\n[`spawn_on_cancel_in`]: crate::AsyncWithRelease::spawn_on_cancel_in"
)]
#![cfg_attr(
    not(feature = "tokio"),
    doc = "[`SpawnAcquire`]: https://docs.rs/loopscope/0.1/loopscope/trait.SpawnAcquire.html\n[`SpawnBody`]: https://docs.rs/loopscope/0.1/loopscope/trait.SpawnBody.html\n[`for_each_scoped_spawned`]: https://docs.rs/loopscope/0.1/loopscope/trait.ScopedStreamExt.html#method.for_each_scoped_spawned\n[`spawn_on_cancel`]: https://docs.rs/loopscope/0.1/loopscope/struct.AsyncWithRelease.html#method.spawn_on_cancel\n[`spawn_on_cancel_in`]: https://docs.rs/loopscope/0.1/loopscope/struct.AsyncWithRelease.html#method.spawn_on_cancel_in"
)]
