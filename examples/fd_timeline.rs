//! Measure, item by item, how many file descriptors three loops over the same
//! files hold open, and draw the result as an SVG line chart
//! (`docs/fd_timeline.svg`, shown in the README).
//!
//! The three loops read the same N real files from a temporary directory:
//!
//! 1. **collect, then read**: `paths.iter().map(File::open).collect::<Result<Vec<_>, _>>()`,
//!    then read each file. Every file is open before the first is read, so the
//!    count climbs to N, and a large N runs out of descriptors ("Too many open
//!    files"; the chart then marks where).
//! 2. **`for_each_scoped`**: one file open at a time; the count stays at 1.
//! 3. **`for_each_scoped_concurrent(8, ..)`** on a stream, run by
//!    `futures::executor::block_on`: each body yields to the executor a few times
//!    before it reads, as a body awaiting I/O would, so up to eight files are open
//!    at once, and never more. The count wobbles below 8 because several items can
//!    finish between two opens.
//!
//! Each point is a measurement, not a computation: right after item *i*'s file is
//! opened (inside the `map` closure for the first loop, at the start of the body
//! for the others), the example counts the entries of `/proc/self/fd` (with
//! `loopscope::testing::open_fds` when the `testing` feature is on) and subtracts
//! the count taken just before that loop began. It prints each loop's peak and
//! writes the chart as hand-written SVG on a white background, so that it reads on
//! light and dark pages alike. Counting needs `/proc`: on systems other than Linux
//! the example only says so.
//!
//! ```text
//! cargo run --example fd_timeline
//! cargo run --example fd_timeline -- --files 1000 --out fds.svg
//! cargo run --example fd_timeline -- --help
//! ```

const USAGE: &str = "\
Count the open file descriptors item by item for three loops over the same
files, and draw them as an SVG line chart.

Usage: fd_timeline [--files N] [--out PATH]

Options:
  --files N    how many files each loop reads (default 200)
  --out PATH   where to write the chart (default docs/fd_timeline.svg in the crate)
  -h, --help   print this help";

const DEFAULT_FILES: usize = 200;
/// The concurrent loop's limit.
const LIMIT: usize = 8;

#[cfg(not(target_os = "linux"))]
fn main() {
    // `/proc/self/fd` is where the descriptors are counted.
    println!(
        "fd_timeline counts descriptors in /proc/self/fd, which needs Linux; nothing written."
    );
}

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    let args = match linux::parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(linux::UsageError(message)) => {
            eprintln!(
                "error: {message}\n\nUsage: fd_timeline [--files N] [--out PATH]   (--help for more)"
            );
            std::process::exit(2);
        }
    };
    linux::run(&args)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::File;
    use std::future::Future;
    use std::io::{self, Read};
    use std::path::{Path, PathBuf};
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll};

    use futures::stream;
    use loopscope::prelude::*;
    #[cfg(feature = "testing")]
    use loopscope::testing::open_fds;

    use super::{DEFAULT_FILES, LIMIT};

    /// One loop's measurements: `samples[i]` is the number of descriptors above
    /// the baseline right after item `i`'s file was opened.
    #[derive(Debug)]
    struct Series {
        label: String,
        color: &'static str,
        /// SVG `stroke-dasharray`, so the series differ by more than colour.
        dash: &'static str,
        samples: Vec<usize>,
        /// Why the loop stopped early, if it did.
        failure: Option<String>,
    }

    impl Series {
        fn peak(&self) -> usize {
            self.samples.iter().copied().max().unwrap_or(0)
        }
    }

    pub fn run(args: &Args) -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let paths = write_files(dir.path(), args.files)?;
        println!(
            "fd_timeline: {} files, descriptors counted in /proc/self/fd after each open\n",
            args.files
        );

        let series = [
            measure(collect_then_read(&paths))?,
            measure(scoped(&paths))?,
            measure(scoped_concurrent(&paths))?,
        ];
        for (baseline, after, series) in &series {
            let outcome = match &series.failure {
                Some(failure) => format!(", stopped early: {failure}"),
                None => String::new(),
            };
            println!(
                "  {:<34} peak {:>5} above baseline {baseline}, {} left open after{outcome}",
                series.label,
                series.peak(),
                after.saturating_sub(*baseline),
            );
        }

        let series = series.map(|(_, _, series)| series);
        let svg = chart(&series, args.files);
        if let Some(parent) = args.out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&args.out, svg)?;
        println!("\n  chart written to {}", args.out.display());
        Ok(())
    }

    /// Runs one loop between two counts of the descriptors: the baseline its
    /// samples are relative to, and what is left open once it has returned.
    fn measure(
        shape: impl FnOnce(usize) -> io::Result<Series>,
    ) -> io::Result<(usize, usize, Series)> {
        let baseline = open_fds()?;
        let series = shape(baseline)?;
        Ok((baseline, open_fds()?, series))
    }

    fn write_files(dir: &Path, count: usize) -> io::Result<Vec<PathBuf>> {
        (0..count)
            .map(|i| {
                let path = dir.join(format!("{i:05}.txt"));
                std::fs::write(&path, format!("file {i}\n").repeat(20))?;
                Ok(path)
            })
            .collect()
    }

    /// What `loopscope::testing::open_fds` does, for a build without the
    /// `testing` feature, so that `cargo run --example fd_timeline` needs no flag.
    #[cfg(not(feature = "testing"))]
    fn open_fds() -> io::Result<usize> {
        let entries = std::fs::read_dir("/proc/self/fd")?.count();
        // One of the entries is the directory handle `read_dir` holds while counting.
        Ok(entries - 1)
    }

    /// Counts the descriptors above `baseline`, now.
    fn above(baseline: usize) -> io::Result<usize> {
        Ok(open_fds()?.saturating_sub(baseline))
    }

    /// Shape 1: open every file, then read them. A failure (typically "too many
    /// open files", in the open or in the count) ends the series where it
    /// happened: that is the point of the picture, not an error of the example.
    fn collect_then_read(paths: &[PathBuf]) -> impl FnOnce(usize) -> io::Result<Series> {
        move |baseline| {
            let mut samples = Vec::with_capacity(paths.len());
            let opened = paths
                .iter()
                .map(|path| {
                    let file = File::open(path)?;
                    samples.push(above(baseline)?);
                    Ok(file)
                })
                .collect::<io::Result<Vec<_>>>();
            let failure = match opened {
                Ok(files) => {
                    let mut text = String::new();
                    for mut file in files {
                        file.read_to_string(&mut text)?;
                    }
                    None
                }
                // Items are numbered from 1, as on the chart.
                Err(error) => Some(format!("item {}: {error}", samples.len() + 1)),
            };
            Ok(Series {
                label: "collect, then read".into(),
                color: "#d55e00",
                dash: "none",
                samples,
                failure,
            })
        }
    }

    /// Shape 2: `for_each_scoped`, one file open at a time.
    fn scoped(paths: &[PathBuf]) -> impl FnOnce(usize) -> io::Result<Series> {
        move |baseline| {
            let mut samples = Vec::with_capacity(paths.len());
            let mut text = String::new();
            paths.iter().for_each_scoped(File::open, |file| {
                samples.push(above(baseline)?);
                file.read_to_string(&mut text)
            })?; // A `ScopedError` of `io::Error`s becomes an `io::Error`.
            Ok(Series {
                label: "for_each_scoped".into(),
                color: "#0072b2",
                dash: "none",
                samples,
                failure: None,
            })
        }
    }

    /// Shape 3: `for_each_scoped_concurrent(LIMIT, ..)` on a stream.
    fn scoped_concurrent(paths: &[PathBuf]) -> impl FnOnce(usize) -> io::Result<Series> {
        move |baseline| {
            // The body is an `AsyncFn` shared by the items in flight, so it
            // records through a lock; each item writes its own slot.
            let samples = Mutex::new(vec![0; paths.len()]);
            // `block_on` parks the thread rather than polling an epoll descriptor,
            // so the executor adds nothing to the count.
            futures::executor::block_on(
                stream::iter(paths.iter().enumerate()).for_each_scoped_concurrent(
                    LIMIT,
                    // The resource carries its item's index, for the body's sample.
                    async |(index, path): (usize, &PathBuf)| {
                        File::open(path).map(|file| (index, file))
                    },
                    async |(index, file)| {
                        let count = above(baseline)?;
                        samples.lock().expect("no panics while held")[*index] = count;
                        // Give the other items their turn while this file is open,
                        // as a body awaiting real I/O would, for a number of turns
                        // that varies as I/O times do, so the items don't all end
                        // together.
                        Yield {
                            times: 1 + *index * 7 % 5,
                        }
                        .await;
                        file.read_to_string(&mut String::new())
                    },
                ),
            )?;
            Ok(Series {
                label: format!("for_each_scoped_concurrent({LIMIT}, ..)"),
                color: "#009e73",
                dash: "7 4",
                samples: samples.into_inner().expect("no panics while held"),
                failure: None,
            })
        }
    }

    /// Returns `Pending` `times` times (waking itself each time), so the executor
    /// polls the other futures before this one goes on.
    struct Yield {
        times: usize,
    }

    impl Future for Yield {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.times == 0 {
                return Poll::Ready(());
            }
            self.times -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    // Chart geometry, in SVG user units.
    const WIDTH: f64 = 760.0;
    const HEIGHT: f64 = 440.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 64.0;
    const TOP: f64 = 64.0;
    const BOTTOM: f64 = 56.0;
    /// Space between the x axis and y = 0, so a series at 0 or 1 is not hidden
    /// by the axis.
    const FLOOR: f64 = 6.0;
    const LEGEND_WIDTH: f64 = 350.0;
    const LEGEND_ROW: f64 = 22.0;

    /// Draws the series as an SVG line chart: x = item number (from 1), y =
    /// descriptors above the baseline; the legend sits in the upper left, which
    /// a series climbing with the items leaves empty.
    fn chart(series: &[Series], files: usize) -> String {
        let plot_width = WIDTH - LEFT - RIGHT;
        let plot_height = HEIGHT - TOP - BOTTOM;
        let axis_y = TOP + plot_height;
        let y_max = nice_max(series.iter().map(Series::peak).max().unwrap_or(0).max(1));
        let x = |item: usize| LEFT + item as f64 / files as f64 * plot_width;
        let y = |count: usize| axis_y - FLOOR - count as f64 / y_max as f64 * (plot_height - FLOOR);
        let (middle, text, muted) = (LEFT + plot_width / 2.0, "#222222", "#555555");

        let noun = if files == 1 { "file" } else { "files" };
        // A white background, so the chart reads the same on light and dark pages.
        let mut svg = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="13">
<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>
<text x="{middle}" y="28" font-size="18" font-weight="bold" fill="{text}" text-anchor="middle">Open file descriptors per item</text>
<text x="{middle}" y="48" fill="{muted}" text-anchor="middle">{files} {noun}, counted in /proc/self/fd right after each file is opened</text>
"##
        );
        // Horizontal grid lines with their labels, then the ticks of the x axis.
        for tick in ticks(y_max) {
            svg.push_str(&format!(
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#e3e3e3"/><text x="{label_x}" y="{label_y:.1}" fill="{text}" text-anchor="end">{tick}</text>
"##,
                y = y(tick),
                right = LEFT + plot_width,
                label_x = LEFT - 8.0,
                label_y = y(tick) + 4.0,
            ));
        }
        for tick in ticks(files) {
            svg.push_str(&format!(
                r##"<line x1="{x:.1}" y1="{axis_y}" x2="{x:.1}" y2="{tick_end}" stroke="{text}"/><text x="{x:.1}" y="{label_y}" fill="{text}" text-anchor="middle">{tick}</text>
"##,
                x = x(tick),
                tick_end = axis_y + 5.0,
                label_y = axis_y + 20.0,
            ));
        }
        svg.push_str(&format!(
            r##"<path d="M{LEFT} {TOP} V{axis_y} H{right}" fill="none" stroke="{text}"/>
<text x="{middle}" y="{label_y}" fill="{text}" text-anchor="middle">item number</text>
<text transform="translate(22 {y_middle}) rotate(-90)" fill="{text}" text-anchor="middle">open descriptors above baseline</text>
"##,
            right = LEFT + plot_width,
            label_y = HEIGHT - 12.0,
            y_middle = TOP + plot_height / 2.0,
        ));

        // The concurrent loop's limit, for reference: a constant, not a measurement.
        svg.push_str(&format!(
            r##"<line x1="{LEFT}" y1="{limit_y:.1}" x2="{right}" y2="{limit_y:.1}" stroke="#888888" stroke-dasharray="2 3"/><text x="{label_x}" y="{label_y:.1}" fill="{muted}" font-size="12">limit {LIMIT}</text>
"##,
            limit_y = y(LIMIT),
            right = LEFT + plot_width,
            label_x = LEFT + plot_width + 6.0,
            label_y = y(LIMIT) + 4.0,
        ));
        for series in series {
            let points: Vec<_> = series
                .samples
                .iter()
                .enumerate()
                .map(|(item, &count)| format!("{:.1},{:.1}", x(item + 1), y(count)))
                .collect();
            svg.push_str(&format!(
                r##"<polyline fill="none" stroke="{}" stroke-width="2.5" stroke-dasharray="{}" stroke-linejoin="round" points="{}"/>
"##,
                series.color,
                series.dash,
                points.join(" "),
            ));
            // Where a loop failed (typically out of descriptors): a cross; the
            // legend says why.
            if let (Some(_), Some(&last)) = (&series.failure, series.samples.last()) {
                svg.push_str(&format!(
                    r##"<text x="{:.1}" y="{:.1}" fill="{}" font-size="20" font-weight="bold" text-anchor="middle">×</text>
"##,
                    x(series.samples.len()),
                    y(last) + 7.0,
                    series.color,
                ));
            }
        }

        // The legend: a sample of each line, its label and its peak; then why
        // any loop stopped early.
        let failures: Vec<_> = series
            .iter()
            .filter_map(|series| Some((series.color, series.failure.as_ref()?)))
            .collect();
        let (legend_x, legend_y) = (LEFT + 14.0, TOP + 8.0);
        svg.push_str(&format!(
            r##"<rect x="{legend_x}" y="{legend_y}" width="{LEGEND_WIDTH}" height="{}" fill="#ffffff" stroke="#cccccc"/>
"##,
            (series.len() + failures.len()) as f64 * LEGEND_ROW + 14.0,
        ));
        for (row, series) in series.iter().enumerate() {
            let row_y = legend_y + 18.0 + row as f64 * LEGEND_ROW;
            svg.push_str(&format!(
                r##"<line x1="{x1}" y1="{line_y:.1}" x2="{x2}" y2="{line_y:.1}" stroke="{color}" stroke-width="2.5" stroke-dasharray="{dash}"/><text x="{label_x}" y="{row_y:.1}" fill="{text}" font-family="Menlo, Consolas, monospace" font-size="12">{label}</text><text x="{peak_x}" y="{row_y:.1}" fill="{muted}" text-anchor="end">peak {peak}</text>
"##,
                x1 = legend_x + 10.0,
                x2 = legend_x + 38.0,
                line_y = row_y - 4.0,
                color = series.color,
                dash = series.dash,
                label_x = legend_x + 46.0,
                label = escape(&series.label),
                peak_x = legend_x + LEGEND_WIDTH - 10.0,
                peak = series.peak(),
            ));
        }
        for (row, (color, failure)) in failures.into_iter().enumerate() {
            svg.push_str(&format!(
                r##"<text x="{x:.1}" y="{y:.1}" fill="{color}" font-size="12">× {failure}</text>
"##,
                x = legend_x + 18.0,
                y = legend_y + 18.0 + (series.len() + row) as f64 * LEGEND_ROW,
                failure = escape(failure),
            ));
        }
        svg.push_str("</svg>\n");
        svg
    }

    /// The smallest "round" number (1, 2 or 5 times a power of ten) at or above
    /// `n`, so the axis ends on a tick.
    fn nice_max(n: usize) -> usize {
        let mut step = 1;
        loop {
            for factor in [1, 2, 5] {
                if factor * step >= n {
                    return factor * step;
                }
            }
            step *= 10;
        }
    }

    /// About five evenly spaced round ticks from 0 to `max`.
    fn ticks(max: usize) -> Vec<usize> {
        let step = nice_max(max.div_ceil(5)).max(1);
        (0..=max).step_by(step).collect()
    }

    fn escape(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    /// The command line.
    #[derive(Debug)]
    pub struct Args {
        files: usize,
        out: PathBuf,
    }

    /// Why the command line was rejected; shown with the usage hint, exit code 2.
    #[derive(Debug)]
    pub struct UsageError(pub String);

    /// Parses the arguments after the program name; `Ok(None)` means `--help`.
    pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, UsageError> {
        let mut parsed = Args {
            files: DEFAULT_FILES,
            out: Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fd_timeline.svg"),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            // Both `--files 10` and `--files=10`.
            let (flag, inline_value) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.into()))
                }
                _ => (arg, None),
            };
            let value = |what: &str| {
                inline_value
                    .or_else(|| args.next())
                    .ok_or_else(|| UsageError(format!("{flag} needs {what}")))
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(None),
                "--files" => {
                    let text = value("a number")?;
                    parsed.files = match text.replace('_', "").parse::<usize>() {
                        Ok(n) if n >= 1 => n,
                        _ => {
                            return Err(UsageError(format!(
                                "--files needs a number of at least 1, got `{text}`"
                            )));
                        }
                    };
                }
                "--out" => parsed.out = value("a path")?.into(),
                other => return Err(UsageError(format!("unknown argument `{other}`"))),
            }
        }
        Ok(Some(parsed))
    }
}
