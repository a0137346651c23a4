//! A cap on futures is not a cap on resources whose close `Drop` leaves to a
//! background task — the README's claim, on a real client: `tokio::fs::File`.
//!
//! A `tokio::fs::File` write returns as soon as its bytes are handed to the
//! blocking pool; the pool's task holds the descriptor until the write is done.
//! So a file dropped right after `write_all(..).await` is still open, and still
//! being written, after the future that wrote it has completed: a
//! `buffer_unordered(n)` over such futures yields results for files that are
//! neither closed nor complete, and has more than `n` descriptors open. (A
//! `TcpStream`, by contrast, closes its descriptor in `Drop` itself: there a
//! cap on futures is a cap on sockets.)
//!
//! `try_map_scoped_unordered(n, async_bracket(create).release(shutdown), ..)`
//! awaits `shutdown()` — which waits for the write in flight — before it yields
//! an item's result: every result comes with its file closed and complete, and
//! at most `n` files are open. The test checks both at every acquire and every
//! result, with the descriptors of this process (`/proc/self/fd`, Linux) and
//! the file sizes on disk; with the release left to `Drop` (`create` alone as
//! the acquire) it fails.
#![cfg(all(feature = "stream", target_os = "linux"))]

#[path = "common/watchdog.rs"]
mod watchdog;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream::{self, StreamExt};
use loopscope::prelude::*;
use tokio::fs::File;
use tokio::io::AsyncWriteExt;
use watchdog::watchdog;

/// Files per test.
const FILES: usize = 64;
/// Bytes per file: one write, handed to the blocking pool in one piece
/// (tokio's limit per write is 2 MiB).
const SIZE: usize = 256 * 1024;
/// Files in flight.
const LIMIT: usize = 4;

/// The descriptors of this process open on a path under `prefix` — a file, or
/// every file of a directory. Only the paths are compared, so the other tests
/// of this binary, running at the same time, do not count.
fn descriptors_on(prefix: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        // A descriptor closed between the listing and `read_link` is skipped.
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(prefix))
        .count()
}

/// The size of a file on disk, as another process would see it now.
fn size_on_disk(path: &Path) -> usize {
    let length = std::fs::metadata(path).expect("file exists").len();
    usize::try_from(length).expect("fits in usize")
}

fn paths(dir: &Path) -> Vec<PathBuf> {
    (0..FILES)
        .map(|index| dir.join(format!("{index:03}.bin")))
        .collect()
}

/// What a run saw, counted at each acquire and at each result.
#[derive(Debug, Default)]
struct Seen {
    /// The most descriptors open on the directory, at an acquire or a result.
    peak: AtomicUsize,
    /// Results that came while their file was still open.
    open_at_result: AtomicUsize,
    /// Results that came while their file was not yet complete on disk.
    short_at_result: AtomicUsize,
}

impl Seen {
    fn open_now(&self, dir: &Path) {
        self.peak.fetch_max(descriptors_on(dir), Ordering::SeqCst);
    }

    /// An item's result has come: its file is done, as far as the loop knows.
    fn result(&self, dir: &Path, path: &Path) {
        self.open_now(dir);
        if descriptors_on(path) > 0 {
            self.open_at_result.fetch_add(1, Ordering::SeqCst);
        }
        if size_on_disk(path) < SIZE {
            self.short_at_result.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_unordered_yields_each_file_closed_and_complete() {
    let _watchdog = watchdog("try_map_scoped_unordered_yields_each_file_closed_and_complete");
    let dir = tempfile::tempdir().expect("temp dir");
    let (dir, seen, data) = (dir.path(), Seen::default(), vec![7_u8; SIZE]);
    let (seen, data) = (&seen, &data);

    let create = async |path: PathBuf| {
        let file = File::create(&path).await?;
        seen.open_now(dir);
        io::Result::Ok((path, file))
    };
    let mut results = std::pin::pin!(stream::iter(paths(dir)).try_map_scoped_unordered(
        LIMIT,
        async_bracket(create).release(async |(_path, mut file): (PathBuf, File)| {
            // Waits for the write in flight, then the file is dropped: closed.
            file.shutdown().await
        }),
        async |(path, file): &mut (PathBuf, File)| {
            file.write_all(data).await?;
            io::Result::Ok(path.clone())
        },
    ));
    let mut done = 0;
    while let Some(result) = results.next().await {
        let path = result.expect("file written");
        seen.result(dir, &path);
        done += 1;
    }

    assert_eq!(done, FILES);
    assert_eq!(
        seen.open_at_result.load(Ordering::SeqCst),
        0,
        "results with the file open"
    );
    assert_eq!(
        seen.short_at_result.load(Ordering::SeqCst),
        0,
        "results with the file short"
    );
    let peak = seen.peak.load(Ordering::SeqCst);
    assert!(peak <= LIMIT, "{peak} files open at once, limit {LIMIT}");
    assert_eq!(descriptors_on(dir), 0, "files open after the loop");
}

/// The hand-written loop it replaces, with each file left to `Drop`: its
/// results come while their files are still being written. Not a property of
/// this crate but of `tokio::fs::File` — if a tokio release ever closed files
/// synchronously, this test would say that the README's claim no longer holds.
///
/// Asserted loosely (one result of 64 suffices) so that a fast blocking pool
/// cannot make it flaky: on a 2-core VM, 32 to 60 of the 64 results came with
/// their file still open and short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_unordered_yields_files_still_open_and_short() {
    let _watchdog = watchdog("buffer_unordered_yields_files_still_open_and_short");
    let dir = tempfile::tempdir().expect("temp dir");
    let (dir, seen) = (dir.path(), Seen::default());
    let data = Arc::new(vec![7_u8; SIZE]);

    let mut results = stream::iter(paths(dir))
        .map(|path| {
            let data = Arc::clone(&data);
            async move {
                let mut file = File::create(&path).await?;
                file.write_all(&data).await?;
                io::Result::Ok(path)
            } // `file` dropped: its write is still running on the blocking pool
        })
        .buffer_unordered(LIMIT);
    while let Some(result) = results.next().await {
        seen.result(dir, &result.expect("file written"));
    }

    let open = seen.open_at_result.load(Ordering::SeqCst);
    let short = seen.short_at_result.load(Ordering::SeqCst);
    eprintln!(
        "buffer_unordered({LIMIT}): {open} of {FILES} results with the file open, {short} short, \
         peak {} open",
        seen.peak.load(Ordering::SeqCst)
    );
    assert!(open > 0, "every file was closed when its result came");
    assert!(short > 0, "every file was complete when its result came");
}
