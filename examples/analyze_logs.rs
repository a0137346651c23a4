//! Analyze a batch of access logs with one file open at a time — `loopscope`'s
//! story, end to end, on real files.
//!
//! In Go, `defer f.Close()` inside a `for` loop runs when the *function* returns,
//! so a batch of a thousand logs holds a thousand descriptors until the process hits
//! `too many open files`. Rust's `Drop` is block-scoped, so that exact bug cannot
//! happen — but the same leak comes back through adapters:
//!
//! ```text
//! let files = paths.iter().map(File::open).collect::<io::Result<Vec<_>>>()?;
//! for file in files { /* ... */ }     // every file is open at once
//! ```
//!
//! `paths.iter().for_each_scoped(open, body)` opens a file, lends it to `body`,
//! closes it, and only then opens the next: one descriptor, however many files.
//!
//! This example writes N synthetic access logs (a few hundred lines each) into a
//! temporary directory, then counts their lines and their 5xx responses with
//! `for_each_scoped`, sampling the number of open descriptors from inside the body.
//! With `--limit N` (Linux) it first lowers the soft `RLIMIT_NOFILE` to N and runs
//! the hoarding `collect` beside it, which fails with "Too many open files".
//!
//! ```text
//! cargo run --example analyze_logs
//! cargo run --example analyze_logs -- --files 5000
//! cargo run --release --example analyze_logs -- --files 10000 --limit 256
//! cargo run --example analyze_logs -- --help
//! ```
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use loopscope::prelude::*;

const USAGE: &str = "\
Analyze synthetic access logs with one file open at a time (loopscope's for_each_scoped).

Usage: analyze_logs [--files N] [--limit N]

Options:
  --files N   how many log files to write and analyze (default 1000)
  --limit N   (Linux) first lower the soft RLIMIT_NOFILE to N, and show the
              hoarding `collect` of opened files failing beside the scoped loop
  -h, --help  print this help";

const DEFAULT_FILES: usize = 1_000;
/// Runs with at least this many files show progress on a terminal.
const PROGRESS_FROM: usize = 2_000;

fn main() -> io::Result<()> {
    let parsed = parse_args(std::env::args().skip(1)).and_then(|args| {
        if let Some(limit) = args.as_ref().and_then(|args| args.limit) {
            check_limit(limit)?;
        }
        Ok(args)
    });
    let args = match parsed {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(UsageError(message)) => {
            eprintln!(
                "error: {message}\n\nUsage: analyze_logs [--files N] [--limit N]   (--help for more)"
            );
            std::process::exit(2);
        }
    };
    run(&args)
}

/// Writes the logs, shows the hoarding version failing under `--limit`, then
/// analyzes the logs one file at a time and prints the report.
fn run(args: &Args) -> io::Result<()> {
    let dir = tempfile::Builder::new().prefix("analyze_logs-").tempdir()?;
    println!(
        "analyze_logs: {} access logs, one file open at a time\n",
        thousands(args.files as u64)
    );

    let started = Instant::now();
    let (paths, bytes) = write_logs(
        dir.path(),
        args.files,
        &mut Progress::new("writing logs", args.files),
    )?;
    println!(
        "  {:<14} {} files, {} in {}",
        "wrote",
        thousands(paths.len() as u64),
        megabytes(bytes),
        seconds(started.elapsed()),
    );

    if let Some(limit) = args.limit {
        println!();
        compare_under_limit(&paths, limit)?;
    }

    let started = Instant::now();
    let report = analyze(&paths, &mut Progress::new("analyzing", paths.len()))?;
    let elapsed = started.elapsed();

    if args.limit.is_some() {
        println!(
            "  {:<14} ok: read all {} files under the same limit\n",
            "",
            thousands(report.files as u64),
        );
    } else {
        println!();
    }
    print_report(&report, elapsed);
    Ok(())
}

/// Counts the lines and 5xx responses of every log, one file open at a time.
fn analyze(paths: &[PathBuf], progress: &mut Progress) -> io::Result<Report> {
    let baseline = open_fds();
    let mut report = Report::default();
    let mut line = String::new();

    // The acquire opens one file; the body reads it; the file is closed (dropped)
    // before the next one is opened. Any error says which file failed, and `?`
    // turns it into an `io::Error` with the same `ErrorKind`.
    paths.iter().for_each_scoped(
        |path| Ok::<_, io::Error>((path, BufReader::new(File::open(path)?))),
        |(path, reader)| {
            if let (Some(baseline), Some(now)) = (baseline, open_fds()) {
                let peak = report.fds.map_or(0, |(_, peak)| peak);
                report.fds = Some((baseline, peak.max(now.saturating_sub(baseline))));
            }
            let (mut lines, mut server_errors) = (0, 0);
            loop {
                line.clear();
                let read = reader.read_line(&mut line)?;
                if read == 0 {
                    break;
                }
                report.bytes += read as u64;
                lines += 1;
                if status(&line).is_some_and(|status| (500..600).contains(&status)) {
                    server_errors += 1;
                }
            }
            report.files += 1;
            report.lines += lines;
            report.server_errors += server_errors;
            if server_errors > 0 {
                report.files_with_errors += 1;
            }
            if report.worst.as_ref().is_none_or(|w| server_errors > w.1) {
                report.worst = Some((file_name(path), server_errors, lines));
            }
            progress.tick();
            Ok::<_, io::Error>(())
        },
    )?;
    progress.finish();
    Ok(report)
}

/// The status code of a Common Log Format line:
/// `host - user [time] "request" status bytes`.
fn status(line: &str) -> Option<u16> {
    let mut fields = line.rsplit(' ');
    let _bytes = fields.next()?;
    fields.next()?.parse().ok()
}

/// Lowers the descriptor limit, then shows the hoarding `collect` failing; the
/// scoped analysis that follows runs under the same limit.
#[cfg(target_os = "linux")]
fn compare_under_limit(paths: &[PathBuf], limit: u64) -> io::Result<()> {
    let already_open = open_fds().unwrap_or(0);
    let hard = lower_fd_limit(limit)?;
    println!(
        "  {:<14} soft limit lowered to {limit} (hard limit {}); {already_open} descriptors already open",
        "RLIMIT_NOFILE",
        hard.map_or_else(|| "unlimited".to_owned(), |hard| hard.to_string()),
    );
    println!();

    println!(
        "  {:<14} paths.iter().map(File::open).collect::<io::Result<Vec<File>>>()",
        "hoarding"
    );
    match hoard(paths) {
        Some((held, path, error)) => {
            println!(
                "  {:<14} FAILED opening file {} of {} ({}): {error}",
                "",
                thousands(held as u64 + 1),
                thousands(paths.len() as u64),
                file_name(path),
            );
            println!(
                "  {:<14} it held {} files open at once when it failed",
                "",
                thousands(held as u64)
            );
        }
        None => println!(
            "  {:<14} did not fail: all {} files fit under the limit (raise --files or lower --limit)",
            "",
            thousands(paths.len() as u64),
        ),
    }
    println!();
    println!(
        "  {:<14} paths.iter().for_each_scoped(File::open, |file| ...)",
        "scoped"
    );
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn compare_under_limit(_paths: &[PathBuf], _limit: u64) -> io::Result<()> {
    println!(
        "  {:<14} skipped: lowering RLIMIT_NOFILE and counting /proc/self/fd are Linux-only in this example",
        "--limit",
    );
    Ok(())
}

/// The hoarding version: every file opened (and kept open) before any is read.
///
/// Returns how many files it held when it failed, the failing path and the
/// error, or `None` if every file could be opened at once.
#[cfg(target_os = "linux")]
fn hoard(paths: &[PathBuf]) -> Option<(usize, &Path, io::Error)> {
    // `paths.iter().map(File::open).collect()`, counting the opens so that the
    // failing one can be named.
    let mut attempted = 0;
    let opened = paths
        .iter()
        .map(|path| {
            attempted += 1;
            File::open(path)
        })
        .collect::<io::Result<Vec<File>>>();
    // On error, `collect` drops (closes) the files it had opened so far.
    match opened {
        Ok(_all_at_once) => None,
        Err(error) => Some((attempted - 1, &paths[attempted - 1], error)),
    }
}

/// Lowers the soft `RLIMIT_NOFILE` to `limit`, keeping the hard limit; returns the
/// hard limit (`None`: unlimited).
#[cfg(target_os = "linux")]
fn lower_fd_limit(limit: u64) -> io::Result<Option<u64>> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    let current = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: current.maximum,
        },
    )?;
    Ok(current.maximum)
}

/// Checks that `--limit` can be set, and leaves room for the scoped loop.
#[cfg(target_os = "linux")]
fn check_limit(limit: u64) -> Result<(), UsageError> {
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    if let Some(hard) = hard.filter(|&hard| limit > hard) {
        return Err(UsageError(format!(
            "--limit {limit} is above the hard limit of {hard} open files"
        )));
    }
    let already_open = open_fds().unwrap_or(3);
    // The scoped loop needs one descriptor for its file and one to count them,
    // and writing the logs needs a few (the temp dir, one file at a time).
    let needed = already_open as u64 + 4;
    if limit < needed {
        return Err(UsageError(format!(
            "--limit {limit} is too low: {already_open} descriptors are already open, \
             so the scoped loop needs a limit of at least {needed}"
        )));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn check_limit(_limit: u64) -> Result<(), UsageError> {
    Ok(())
}

/// The number of descriptors this process has open, from `/proc/self/fd`;
/// `None` where there is no such directory (or it cannot be read).
fn open_fds() -> Option<usize> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let entries = std::fs::read_dir("/proc/self/fd").ok()?.count();
    // One entry is the descriptor `read_dir` itself holds while counting.
    Some(entries.saturating_sub(1))
}

/// What the analysis found.
#[derive(Debug, Default)]
struct Report {
    files: usize,
    bytes: u64,
    lines: u64,
    server_errors: u64,
    files_with_errors: usize,
    /// The file with the most 5xx responses: (name, 5xx lines, lines).
    worst: Option<(String, u64, u64)>,
    /// Descriptors open before the loop, and the most open above that number,
    /// sampled in the body; `None` where they cannot be counted.
    fds: Option<(usize, usize)>,
}

fn print_report(report: &Report, elapsed: Duration) {
    let row = |label: &str, value: String| println!("  {label:<14} {value}");
    row("files", thousands(report.files as u64));
    row(
        "lines",
        format!("{} ({})", thousands(report.lines), megabytes(report.bytes)),
    );
    let share = report.server_errors as f64 * 100.0 / report.lines.max(1) as f64;
    row(
        "5xx errors",
        format!(
            "{} ({share:.2}% of lines, in {} files)",
            thousands(report.server_errors),
            thousands(report.files_with_errors as u64),
        ),
    );
    if let Some((name, errors, lines)) = &report.worst {
        row(
            "worst file",
            format!("{name}: {errors} of {lines} lines are 5xx"),
        );
    }
    row(
        "peak open fds",
        match report.fds {
            Some((baseline, peak)) => {
                format!("+{peak} above the {baseline} open before the loop (sampled in the body)")
            }
            None => "not measured (no /proc/self/fd on this system)".to_owned(),
        },
    );
    row("elapsed", seconds(elapsed));
}

/// Writes `count` access logs of a few hundred lines each; returns their paths
/// and total size in bytes.
fn write_logs(
    dir: &Path,
    count: usize,
    progress: &mut Progress,
) -> io::Result<(Vec<PathBuf>, u64)> {
    const PATHS: [&str; 8] = [
        "/",
        "/index.html",
        "/api/orders",
        "/api/orders/{id}",
        "/api/users/{id}",
        "/static/app.js",
        "/static/logo.png",
        "/login",
    ];
    const AGENT_HOSTS: [&str; 3] = ["203.0.113.", "198.51.100.", "192.0.2."];

    let width = count.saturating_sub(1).to_string().len().max(4);
    let mut paths = Vec::with_capacity(count);
    let mut total = 0;
    let mut line = String::new();
    for index in 0..count {
        let path = dir.join(format!("access-{index:0width$}.log"));
        let mut rng = SplitMix64(index as u64);
        // Most files are healthy; one in eleven is from a bad deploy.
        let error_percent = if index % 11 == 7 { 12 } else { rng.below(3) };
        let lines = 120 + rng.below(240);
        let mut out = BufWriter::new(File::create(&path)?);
        for n in 0..lines {
            let (hour, minute, second) = (n / 3600 % 24, n / 60 % 60, n % 60);
            let roll = rng.below(100);
            let status = if roll < error_percent {
                [500, 502, 503, 504][rng.below(4) as usize]
            } else {
                [200, 200, 200, 200, 200, 304, 301, 404, 401, 200][rng.below(10) as usize]
            };
            let target = PATHS[rng.below(PATHS.len() as u64) as usize]
                .replace("{id}", &rng.below(100_000).to_string());
            let method = if target == "/login" || rng.below(8) == 0 {
                "POST"
            } else {
                "GET"
            };
            let size = if status == 304 {
                0
            } else {
                200 + rng.below(20_000)
            };
            line.clear();
            let host = AGENT_HOSTS[rng.below(3) as usize];
            writeln!(
                line,
                "{host}{} - - [{:02}/Mar/2024:{hour:02}:{minute:02}:{second:02} +0000] \
                 \"{method} {target} HTTP/1.1\" {status} {size}",
                rng.below(254) + 1,
                1 + index % 28,
            )
            .expect("writing to a String cannot fail");
            out.write_all(line.as_bytes())?;
            total += line.len() as u64;
        }
        // `into_inner` flushes, and reports the error that dropping would swallow.
        out.into_inner().map_err(io::IntoInnerError::into_error)?;
        paths.push(path);
        progress.tick();
    }
    progress.finish();
    Ok((paths, total))
}

/// A tiny deterministic generator, so that each file's text depends on its index.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A single line on stderr, updated every 10%, for long runs on a terminal.
struct Progress {
    label: &'static str,
    total: usize,
    done: usize,
    shown: bool,
}

impl Progress {
    fn new(label: &'static str, total: usize) -> Self {
        let shown = total >= PROGRESS_FROM && io::stderr().is_terminal();
        Self {
            label,
            total,
            done: 0,
            shown,
        }
    }

    fn tick(&mut self) {
        self.done += 1;
        if self.shown && (self.done * 10 / self.total) > ((self.done - 1) * 10 / self.total) {
            eprint!(
                "\r  {} {:>3}% ({}/{})",
                self.label,
                self.done * 100 / self.total,
                self.done,
                self.total
            );
        }
    }

    fn finish(&mut self) {
        if self.shown {
            // Clear the progress line, so that the report starts on a clean one.
            eprint!("\r{:width$}\r", "", width = self.label.len() + 40);
            self.shown = false;
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// `1234567` as `1,234,567`.
fn thousands(n: impl Into<u64>) -> String {
    let digits = n.into().to_string();
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
    limit: Option<u64>,
}

/// Why the command line was rejected; shown with the usage hint, exit code 2.
#[derive(Debug)]
struct UsageError(String);

/// Parses the arguments after the program name; `Ok(None)` means `--help`.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, UsageError> {
    let mut parsed = Args {
        files: DEFAULT_FILES,
        limit: None,
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
            "--limit" => parsed.limit = Some(parse_number(&flag, &value()?, 1)?),
            other => return Err(UsageError(format!("unknown argument `{other}`"))),
        }
    }
    Ok(Some(parsed))
}

fn parse_number<N>(flag: &str, text: &str, min: N) -> Result<N, UsageError>
where
    N: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match text.replace('_', "").parse::<N>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(UsageError(format!(
            "{flag} must be at least {min}, got {text}"
        ))),
        Err(_) => Err(UsageError(format!("{flag} needs a number, got `{text}`"))),
    }
}
