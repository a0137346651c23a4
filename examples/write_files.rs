//! Write many files with tokio, at most `--limit` open at once, each one flushed
//! and synced before its slot is reused — and every file complete on disk the
//! moment the loop returns.
//!
//! A `tokio::io::BufWriter<tokio::fs::File>` that is dropped loses what it still
//! buffers: `Drop` cannot run `flush().await`, nor `sync_all().await`, and their
//! errors would have nowhere to go. `try_map_scoped_concurrent` awaits an async
//! release for each file and reports its error with the file's index; when the
//! stream ends, every release has completed.
//!
//! This example writes N files of 50 short lines each (one small write per line)
//! into a temporary directory, releases each with `flush` + `sync_all`, then reads
//! every file back with `std::fs` right after the stream ends. For contrast it
//! writes a few files whose writers are only dropped, and counts those left short.
//!
//! ```text
//! cargo run --example write_files
//! cargo run --example write_files -- --files 10000 --limit 64
//! cargo run --example write_files -- --help
//! ```
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{self, TryStreamExt};
use loopscope::prelude::*;
use tokio::fs::File;
use tokio::io::{AsyncWriteExt, BufWriter};

const USAGE: &str = "\
Write files with tokio, at most --limit open at once, each released by
flush + sync_all (loopscope's try_map_scoped_concurrent), then check them all.

Usage: write_files [--files N] [--limit N]

Options:
  --files N   how many files to write (default 2000)
  --limit N   the most files open at once (default 16)
  -h, --help  print this help";

const DEFAULT_FILES: usize = 2_000;
const DEFAULT_LIMIT: usize = 16;
/// Lines per file, one write each.
const LINES: usize = 50;
/// The writer's buffer: smaller than a file, so its tail is written by the flush.
const BUFFER: usize = 512;
/// Files written without a release, for contrast.
const DROPPED: usize = 20;

#[tokio::main]
async fn main() -> io::Result<()> {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(UsageError(message)) => {
            eprintln!(
                "error: {message}\n\nUsage: write_files [--files N] [--limit N]   (--help for more)"
            );
            std::process::exit(2);
        }
    };
    run(&args).await
}

async fn run(args: &Args) -> io::Result<()> {
    let dir = tempfile::Builder::new().prefix("write_files-").tempdir()?;
    println!(
        "write_files: {} files, at most {} open at once, each flushed and synced\n",
        thousands(args.files as u64),
        args.limit,
    );
    let row = |label: &str, value: String| println!("  {label:<14} {value}");

    let live = Live::default();
    let started = Instant::now();
    let bytes = write_all(dir.path(), &live, args).await?;
    let elapsed = started.elapsed();
    row(
        "files",
        format!(
            "{} written, {} ({} writes of one line)",
            thousands(args.files as u64),
            megabytes(bytes),
            thousands((args.files * LINES) as u64),
        ),
    );
    row(
        "peak open",
        format!(
            "{} files (limit {})",
            live.peak.load(Ordering::SeqCst),
            args.limit
        ),
    );
    row("elapsed", seconds(elapsed));

    // Right after the stream ended: no waiting, no retries.
    let started = Instant::now();
    let (complete, short) = verify(dir.path(), 0..args.files)?;
    row(
        "verified",
        format!(
            "{} of {} files complete on disk, {} short ({})",
            thousands(complete as u64),
            thousands(args.files as u64),
            thousands(short as u64),
            seconds(started.elapsed()),
        ),
    );

    // For contrast: the same files, the writers only dropped.
    let first = args.files;
    stream::iter(first..first + DROPPED)
        .for_each_scoped(
            async |index: usize| create(dir.path(), &Live::default(), index).await,
            async |output| write_lines(output).await,
        )
        .await?;
    let (_, dropped_short) = verify(dir.path(), first..first + DROPPED)?;
    row(
        "drop only",
        format!("{dropped_short} of {DROPPED} files short on disk when the writer is just dropped"),
    );

    if short > 0 {
        return Err(io::Error::other(format!("{short} files incomplete")));
    }
    Ok(())
}

/// Writes the files, at most `args.limit` open at once; returns the bytes written.
async fn write_all(dir: &Path, live: &Live, args: &Args) -> io::Result<u64> {
    stream::iter(0..args.files)
        .try_map_scoped_concurrent(
            args.limit,
            async_bracket(async |index: usize| create(dir, live, index).await)
                // Release: the buffer into the file, then the file to the disk.
                .release(|output| finish(output, live)),
            async |output| write_lines(output).await,
        )
        // A `ScopedError` of `io::Error`s becomes an `io::Error`.
        .map_err(io::Error::from)
        .try_fold(0, async |total, bytes| Ok::<_, io::Error>(total + bytes))
        .await
}

/// Files open now and at most.
#[derive(Debug, Default)]
struct Live {
    current: AtomicUsize,
    peak: AtomicUsize,
}

/// A file being written.
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

async fn finish(mut output: Output, live: &Live) -> io::Result<()> {
    let result = async {
        output.writer.flush().await?;
        output.writer.get_mut().sync_all().await
    }
    .await;
    live.current.fetch_sub(1, Ordering::SeqCst);
    result
}

/// The body: one small write per line; returns the bytes written.
async fn write_lines(output: &mut Output) -> io::Result<u64> {
    let mut bytes = 0;
    for n in 0..LINES {
        let line = line(output.index, n);
        output.writer.write_all(line.as_bytes()).await?;
        bytes += line.len() as u64;
    }
    Ok(bytes)
}

/// Reads the files back with `std::fs`; returns how many are complete and how
/// many are short.
fn verify(dir: &Path, indices: std::ops::Range<usize>) -> io::Result<(usize, usize)> {
    let (mut complete, mut short) = (0, 0);
    for index in indices {
        let text = std::fs::read_to_string(path(dir, index))?;
        let expected: String = (0..LINES).map(|n| line(index, n)).collect();
        if text == expected {
            complete += 1;
        } else {
            short += 1;
        }
    }
    Ok((complete, short))
}

fn line(index: usize, n: usize) -> String {
    format!("file {index:06} line {n:02}: the quick brown fox\n")
}

fn path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("file-{index:06}.txt"))
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn seconds(elapsed: Duration) -> String {
    if elapsed < Duration::from_secs(1) {
        format!("{:.1} ms", elapsed.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", elapsed.as_secs_f64())
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The command line.
#[derive(Debug)]
struct Args {
    files: usize,
    limit: usize,
}

/// Why the command line was rejected; shown with the usage hint, exit code 2.
#[derive(Debug)]
struct UsageError(String);

/// Parses the arguments after the program name; `Ok(None)` means `--help`.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, UsageError> {
    let mut parsed = Args {
        files: DEFAULT_FILES,
        limit: DEFAULT_LIMIT,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Both `--files 10` and `--files=10`.
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.into())),
            _ => (arg, None),
        };
        let value = || {
            inline_value
                .or_else(|| args.next())
                .ok_or_else(|| UsageError(format!("{flag} needs a number")))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--files" => parsed.files = parse_number(&flag, &value()?, 1)?,
            "--limit" => parsed.limit = parse_number(&flag, &value()?, 1)?,
            other => return Err(UsageError(format!("unknown argument `{other}`"))),
        }
    }
    Ok(Some(parsed))
}

fn parse_number(flag: &str, text: &str, min: usize) -> Result<usize, UsageError> {
    match text.replace('_', "").parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(UsageError(format!(
            "{flag} must be at least {min}, got {text}"
        ))),
        Err(_) => Err(UsageError(format!("{flag} needs a number, got `{text}`"))),
    }
}
