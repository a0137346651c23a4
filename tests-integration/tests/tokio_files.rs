//! The stream adapters on real files written with `tokio::fs`.
//!
//! A `tokio::io::BufWriter<tokio::fs::File>` dropped with data in it loses that
//! data: `Drop` cannot flush asynchronously, and even a flushed `tokio::fs::File`
//! may still have a write in flight on the blocking pool. Here each file is
//! written with many small writes and released by `flush().await` and
//! `sync_all().await`; the tests check that the moment the adapter is done, every
//! file is complete on disk, read back with `std::fs`.
//!
//! The writer's buffer is smaller than a file, so each file reaches the `File`
//! through several writes, and its tail only through the release's flush.
#![cfg(feature = "stream")]

#[path = "common/watchdog.rs"]
mod watchdog;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use loopscope::prelude::*;
use tokio::fs::File;
use tokio::io::{AsyncWriteExt, BufWriter};
use watchdog::watchdog;

/// Writes per file, one line each.
const LINES: usize = 50;
/// Smaller than a file (`LINES` lines of ~40 bytes), so that the body's writes
/// reach the file in several chunks and the last one is left to the release.
const BUFFER: usize = 512;
/// A hang fails the test instead of stalling it.
const DEADLINE: Duration = Duration::from_secs(60);

fn line(index: usize, n: usize) -> String {
    format!("file {index:05} line {n:02}: the quick brown fox\n")
}

fn expected(index: usize) -> String {
    (0..LINES).map(|n| line(index, n)).collect()
}

fn path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("file-{index:05}.txt"))
}

/// Files open from the start of acquire to the end of release.
#[derive(Debug, Default)]
struct Live {
    current: AtomicUsize,
    peak: AtomicUsize,
    released: AtomicUsize,
}

/// One file being written, with the index of its item.
#[derive(Debug)]
struct Output {
    index: usize,
    writer: BufWriter<File>,
}

async fn create(dir: &Path, live: &Live, index: usize) -> io::Result<Output> {
    let file = File::create(path(dir, index)).await?;
    let now = live.current.fetch_add(1, Ordering::SeqCst) + 1;
    live.peak.fetch_max(now, Ordering::SeqCst);
    Ok(Output {
        index,
        writer: BufWriter::with_capacity(BUFFER, file),
    })
}

/// The release: flush the buffer into the file, then the file to the disk.
async fn finish(mut output: Output, live: &Live) -> io::Result<()> {
    let result = async {
        output.writer.flush().await?;
        output.writer.get_mut().sync_all().await
    }
    .await;
    live.current.fetch_sub(1, Ordering::SeqCst);
    live.released.fetch_add(1, Ordering::SeqCst);
    result
}

/// The body: many small writes.
async fn write_lines(output: &mut Output) -> io::Result<usize> {
    for n in 0..LINES {
        output
            .writer
            .write_all(line(output.index, n).as_bytes())
            .await?;
    }
    Ok(output.index)
}

/// Every file, read back with `std::fs`, is complete.
fn assert_complete(dir: &Path, count: usize) {
    for index in 0..count {
        let text = std::fs::read_to_string(path(dir, index))
            .unwrap_or_else(|error| panic!("reading file {index}: {error}"));
        assert!(
            text == expected(index),
            "file {index} is incomplete: {} of {} bytes",
            text.len(),
            expected(index).len(),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_scoped_concurrent_leaves_every_file_complete_on_disk() {
    let _watchdog = watchdog("try_map_scoped_concurrent_leaves_every_file_complete_on_disk");
    const FILES: usize = 2_000;
    const LIMIT: usize = 16;
    let dir = tempfile::tempdir().expect("temp dir");
    let (dir_path, live) = (dir.path(), Live::default());
    let live_ref = &live;

    let indices: Vec<usize> = tokio::time::timeout(
        DEADLINE,
        stream::iter(0..FILES)
            .try_map_scoped_concurrent(
                LIMIT,
                async_bracket(async |index: usize| create(dir_path, live_ref, index).await)
                    .release(move |output| finish(output, live_ref)),
                async |output| write_lines(output).await,
            )
            .map(|result| result.expect("file written"))
            .collect(),
    )
    .await
    .expect("finished in time");

    // Checked right after the stream ended, with no waiting.
    assert_eq!(indices, (0..FILES).collect::<Vec<_>>());
    assert_complete(dir_path, FILES);
    assert_eq!(live.released.load(Ordering::SeqCst), FILES);
    assert_eq!(live.current.load(Ordering::SeqCst), 0);
    // At most, and reaching, the limit: the items overlap on the blocking pool.
    assert_eq!(live.peak.load(Ordering::SeqCst), LIMIT, "peak open files");
}

#[tokio::test]
async fn sequential_for_each_scoped_leaves_every_file_complete_on_disk() {
    let _watchdog = watchdog("sequential_for_each_scoped_leaves_every_file_complete_on_disk");
    const FILES: usize = 200;
    let dir = tempfile::tempdir().expect("temp dir");
    let (dir_path, live) = (dir.path(), Live::default());
    let live_ref = &live;

    tokio::time::timeout(
        DEADLINE,
        stream::iter(0..FILES).for_each_scoped(
            async_bracket(async |index: usize| create(dir_path, live_ref, index).await)
                .release(move |output| finish(output, live_ref)),
            async |output| {
                write_lines(output).await?;
                // Sequential: the previous file is already complete on disk.
                if output.index > 0 {
                    let previous = std::fs::read_to_string(path(dir_path, output.index - 1))?;
                    assert!(
                        previous == expected(output.index - 1),
                        "file {} incomplete",
                        output.index - 1
                    );
                }
                Ok::<_, io::Error>(())
            },
        ),
    )
    .await
    .expect("finished in time")
    .expect("every file written");

    assert_complete(dir_path, FILES);
    assert_eq!(live.released.load(Ordering::SeqCst), FILES);
    assert_eq!(live.current.load(Ordering::SeqCst), 0);
    assert_eq!(live.peak.load(Ordering::SeqCst), 1);
}

/// Negative control: the check above has teeth. Released by `Drop` instead, the
/// writer's buffered tail is lost, and every file is short on disk.
#[tokio::test]
async fn released_by_drop_the_buffered_tail_is_lost() {
    let _watchdog = watchdog("released_by_drop_the_buffered_tail_is_lost");
    const FILES: usize = 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let (dir_path, live) = (dir.path(), Live::default());
    let live_ref = &live;

    stream::iter(0..FILES)
        .for_each_scoped(
            async |index: usize| create(dir_path, live_ref, index).await,
            async |output| write_lines(output).await,
        )
        .await
        .expect("every file written");

    for index in 0..FILES {
        let written = std::fs::read_to_string(path(dir_path, index)).expect("read");
        assert!(
            written.len() < expected(index).len(),
            "file {index} is complete although its writer was only dropped"
        );
    }
}
