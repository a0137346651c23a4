//! Convert a batch of log files — read an input, write an output, per item — with
//! at most one input and one output open at a time, and every output synced
//! before the next item starts.
//!
//! Two resources per item is where a loop most easily goes wrong: the output is
//! created, the input turns out to be unreadable, and the output is left open; or
//! the output's `sync_all` fails, and `Drop` swallows the error. `both(open_input,
//! create_output)` acquires the input, then the output; releases the output, then
//! the input; closes the input at once if the output cannot be created; and
//! reports every error with the index of its file — both errors when two fail.
//!
//! This example writes N small access logs into a temporary directory, then
//! uppercases each into `out/`, releasing each output with `sync_all`. On Linux it
//! samples the number of open descriptors from inside the body: the peak is two
//! above the baseline, however many files there are. Then it checks every output
//! on disk.
//!
//! ```text
//! cargo run --example convert_files
//! cargo run --release --example convert_files -- --files 5000
//! cargo run --example convert_files -- --help
//! ```
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use loopscope::both;
use loopscope::prelude::*;

const USAGE: &str = "\
Uppercase log files into out/, one input and one output open at a time, each
output synced before the next (loopscope's both + for_each_scoped).

Usage: convert_files [--files N]

Options:
  --files N   how many log files to write and convert (default 100)
  -h, --help  print this help";

const DEFAULT_FILES: usize = 100;

fn main() -> io::Result<()> {
    let files = match parse_args(std::env::args().skip(1)) {
        Ok(Some(files)) => files,
        Ok(None) => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(message) => {
            eprintln!("error: {message}\n\nUsage: convert_files [--files N]   (--help for more)");
            std::process::exit(2);
        }
    };

    let dir = tempfile::Builder::new()
        .prefix("convert_files-")
        .tempdir()?;
    let inputs = write_logs(dir.path(), files)?;
    let out = dir.path().join("out");
    fs::create_dir(&out)?;
    let output_of = |input: &PathBuf| out.join(input.file_name().expect("a file name"));

    let baseline = open_fds();
    let mut peak = baseline;
    let mut converted = 0;
    let mut bytes = 0;
    let started = Instant::now();

    // Per file: open the input, create the output; uppercase one into the other;
    // sync and close the output, then close the input. `?` turns the error —
    // which step failed, for which file — into an `io::Error`.
    inputs.iter().for_each_scoped(
        both(
            File::open,
            bracket(|input: &PathBuf| File::create(output_of(input)))
                .release(|output: File| output.sync_all()),
        ),
        |(input, output)| {
            peak = peak.max(open_fds());
            let mut text = String::new();
            input.read_to_string(&mut text)?;
            output.write_all(text.to_uppercase().as_bytes())?;
            converted += 1;
            bytes += text.len();
            Ok::<_, io::Error>(())
        },
    )?;
    let elapsed = started.elapsed();

    // Every output is complete on disk the moment the loop returns.
    for input in &inputs {
        let expected = fs::read_to_string(input)?.to_uppercase();
        assert_eq!(fs::read_to_string(output_of(input))?, expected);
    }

    println!("convert_files: {files} logs uppercased into out/, each output synced\n");
    println!("  converted      {converted} files, {bytes} bytes, in {elapsed:.1?}");
    match (baseline, peak) {
        (Some(baseline), Some(peak)) => println!(
            "  descriptors    {baseline} before the loop, at most {peak} during it (+{})",
            peak - baseline
        ),
        _ => println!("  descriptors    not counted (needs Linux's /proc/self/fd)"),
    }
    println!("  outputs        all {converted} checked on disk");
    Ok(())
}

/// Writes `count` small access logs into `dir`.
fn write_logs(dir: &Path, count: usize) -> io::Result<Vec<PathBuf>> {
    (0..count)
        .map(|i| {
            let path = dir.join(format!("access-{i:05}.log"));
            let lines: String = (0..5 + i % 7)
                .map(|line| format!("get /orders/{} {}\n", i * 7 + line, 200 + (line % 3) * 100))
                .collect();
            fs::write(&path, lines)?;
            Ok(path)
        })
        .collect()
}

/// The descriptors this process has open, from `/proc/self/fd` (Linux); the
/// one reading the directory needs is not counted.
fn open_fds() -> Option<usize> {
    let entries = fs::read_dir("/proc/self/fd").ok()?.count();
    Some(entries - 1)
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<usize>, String> {
    let mut files = DEFAULT_FILES;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Both `--files 10` and `--files=10`.
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.into())),
            _ => (arg, None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--files" => {
                let text: String = inline_value
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a number"))?;
                files = match text.replace('_', "").parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => return Err(format!("{flag} needs a number of at least 1, got `{text}`")),
                };
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Some(files))
}
