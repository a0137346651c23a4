//! The harness shared by the three benches (`sync_adapters`, `stream_adapters`,
//! `concurrent_adapters`), each of which includes it with `mod common;`, and
//! the trivial resource of their `trivial_*`, `stream_*` and executor workloads.
//!
//! A bench declares its workloads as a table of [`Trio`]s (naive, fair,
//! adapter) and hands it to [`main`], which either runs criterion over them
//! (one group per trio), or, with `LOOPSCOPE_CALLGRIND=<workload>/<variant>`
//! (or `list`), runs one variant under [`callgrind_measured`] for
//! `benches/callgrind.sh` (see the top of `benches/benches/sync_adapters.rs`),
//! or, with `LOOPSCOPE_INTERLEAVE=<rounds>`, times the variants interleaved and
//! prints their medians in ns per item ([`interleaved`]).
//!
//! Every bench compiles this module on its own, and none uses all of it: the
//! items only some benches use carry `#[allow(dead_code)]`, each with the reason.

use std::hint::black_box;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tempfile::TempDir;

/// Items per run of every workload.
pub const ITEMS: usize = 1_000;
/// Bytes in each file of the file workloads.
pub const FILE_LEN: usize = 128;

/// The inputs, built once: the items of every workload, and the temporary files
/// of the `files_*` ones.
pub struct Fixture {
    pub items: Vec<u64>,
    /// Empty when no workload needs the files.
    // Only the file workloads (`files_*`, `stream_files_*`) read the paths.
    #[allow(dead_code)]
    pub paths: Vec<PathBuf>,
    /// Keeps the files alive; `None` when no workload needs them.
    _dir: Option<TempDir>,
}

impl Fixture {
    pub fn new(with_files: bool) -> io::Result<Self> {
        let items = (0..ITEMS as u64).collect();
        if !with_files {
            return Ok(Self {
                items,
                paths: Vec::new(),
                _dir: None,
            });
        }
        let dir = tempfile::tempdir()?;
        let mut paths = Vec::with_capacity(ITEMS);
        for i in 0..ITEMS {
            let path = dir.path().join(format!("{i:04}.log"));
            let mut line = format!("GET /item/{i} 200\n").into_bytes();
            line.resize(FILE_LEN, b'.');
            std::fs::write(&path, line)?;
            paths.push(path);
        }
        Ok(Self {
            items,
            paths,
            _dir: Some(dir),
        })
    }
}

/// One run of a workload (all of its items); returns a checksum.
pub type Workload = fn(&Fixture) -> u64;

/// A workload, three ways, doing the same work on the same input:
///
/// - `naive`: the plain loop, the body inline (`for`, `while let`, `then`,
///   `buffered`, `try_for_each_concurrent`): what the adapter's guarantees
///   cost;
/// - `fair`: the same closures with the same guarantees, by hand
///   (`loopscope_benches::fair`): what the adapter itself costs. `None` where
///   the fair loop is the naive one (the sync adapters: a `for` loop calling
///   the same functions);
/// - `adapter`: the loopscope adapter.
pub struct Trio {
    pub name: &'static str,
    pub naive: Workload,
    pub fair: Option<Workload>,
    pub adapter: Workload,
    /// Whether the workload reads the fixture's files (`files_*`,
    /// `stream_files_*`): the fixture then creates them, and criterion takes
    /// fewer, longer samples.
    pub files: bool,
}

impl Trio {
    /// The variants, by name: `naive`, `fair` (if any), `adapter`.
    pub fn variants(&self) -> Vec<(&'static str, Workload)> {
        let mut variants = vec![("naive", self.naive)];
        if let Some(fair) = self.fair {
            variants.push(("fair", fair));
        }
        variants.push(("adapter", self.adapter));
        variants
    }
}

/// One criterion group `name` with the given functions, after checking that
/// they agree: the same work, the same result. Criterion measures them one
/// after the other; `LOOPSCOPE_INTERLEAVE` (see [`interleaved`]) alternates
/// them.
pub fn bench_group(
    c: &mut Criterion,
    name: &str,
    sample_size: usize,
    measurement_time: Duration,
    variants: &[(&str, &dyn Fn() -> u64)],
) {
    let expected = (variants[0].1)();
    for (variant, run) in variants {
        assert_eq!(run(), expected, "{name}: {variant} disagrees");
    }
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(ITEMS as u64));
    group
        .warm_up_time(Duration::from_secs(1))
        .sample_size(sample_size)
        .measurement_time(measurement_time);
    for (variant, run) in variants {
        group.bench_function(*variant, |b| b.iter(run));
    }
    group.finish();
}

/// [`bench_group`] with two functions, `hand_written` and `adapter` (the
/// tokio workloads against `JoinSet` + `Semaphore`).
// Only `concurrent_adapters` has such pairs.
#[allow(dead_code)]
pub fn bench_pair(
    c: &mut Criterion,
    name: &str,
    sample_size: usize,
    measurement_time: Duration,
    hand_written: impl Fn() -> u64,
    adapter: impl Fn() -> u64,
) {
    bench_group(
        c,
        name,
        sample_size,
        measurement_time,
        &[("hand_written", &hand_written), ("adapter", &adapter)],
    );
}

/// Criterion over `trios`, on one fixture (with the files only if a trio reads
/// them).
fn benches(c: &mut Criterion, trios: &[Trio], fixture: &Fixture) {
    for trio in trios {
        // A run over the files is milliseconds of system calls: fewer, longer
        // samples; a run of tens of milliseconds (the sockets), the fewest
        // criterion takes.
        let start = Instant::now();
        black_box((trio.naive)(fixture));
        let (sample_size, measurement_time) = if start.elapsed() > Duration::from_millis(10) {
            (10, Duration::from_secs(5))
        } else if trio.files {
            (30, Duration::from_secs(4))
        } else {
            (100, Duration::from_secs(3))
        };
        let runs: Vec<_> = trio
            .variants()
            .into_iter()
            .map(|(variant, workload)| (variant, move || workload(black_box(fixture))))
            .collect();
        let variants: Vec<(&str, &dyn Fn() -> u64)> = runs
            .iter()
            .map(|(variant, run)| (*variant, run as &dyn Fn() -> u64))
            .collect();
        bench_group(c, trio.name, sample_size, measurement_time, &variants);
    }
}

/// Runs `workload` `reps` times. Under callgrind only the instructions executed
/// inside this function (and what it calls) are counted: see the top of
/// `benches/benches/sync_adapters.rs`.
#[inline(never)]
pub fn callgrind_measured(workload: Workload, fixture: &Fixture, reps: u32) -> u64 {
    let mut checksum = 0u64;
    for _ in 0..reps {
        checksum = checksum.wrapping_add(black_box(workload)(black_box(fixture)));
    }
    checksum
}

/// `LOOPSCOPE_CALLGRIND=<workload>/<variant>`, or `list`: one line per
/// workload, its name and its variants (`naive,fair,adapter`, or
/// `naive,adapter` where the fair loop is the naive one).
fn callgrind_mode(spec: &str, trios: &[Trio]) {
    if spec == "list" {
        for trio in trios {
            let variants: Vec<_> = trio.variants().iter().map(|(name, _)| *name).collect();
            println!("{} {}", trio.name, variants.join(","));
        }
        return;
    }
    let (name, variant) = spec
        .split_once('/')
        .unwrap_or_else(|| panic!("LOOPSCOPE_CALLGRIND={spec}: expected <workload>/<variant>"));
    let trio = trios
        .iter()
        .find(|trio| trio.name == name)
        .unwrap_or_else(|| panic!("no workload {name:?}; try LOOPSCOPE_CALLGRIND=list"));
    let workload = trio
        .variants()
        .into_iter()
        .find(|(candidate, _)| *candidate == variant)
        .unwrap_or_else(|| panic!("{name}: no variant {variant:?}"))
        .1;
    let reps = match std::env::var("LOOPSCOPE_CALLGRIND_REPS") {
        Ok(reps) => reps.parse().expect("LOOPSCOPE_CALLGRIND_REPS: a number"),
        Err(_) => 10,
    };
    let fixture = Fixture::new(trio.files).expect("create the temporary files");
    // Warm-up, not counted: lazy one-time initialisation (in the async benches,
    // the executor's thread-local waker), first allocations.
    let expected = workload(&fixture);
    let checksum = callgrind_measured(workload, &fixture, reps);
    assert_eq!(checksum, expected.wrapping_mul(u64::from(reps)));
    println!("{name}/{variant}: {reps} reps, checksum {checksum}");
}

/// The `LOOPSCOPE_CALLGRIND` spec (the bench's `name/variant`, or `list`), if
/// set: the bench then runs in instruction-counting mode.
pub fn callgrind_spec() -> Option<String> {
    std::env::var("LOOPSCOPE_CALLGRIND").ok()
}

/// The median of `values` (sorted in place).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// `LOOPSCOPE_INTERLEAVE=<rounds>` (and `LOOPSCOPE_ONLY=<substring>` to pick
/// workloads): time in ns per item, the variants interleaved. Each round times
/// one batch of runs of every variant of a workload, in an order that rotates
/// from round to round, so that a slow spell of the shared machine falls on
/// all of them alike; a batch is as many runs as take about 2 ms (at least
/// one). Prints, per workload, the median over the rounds of each variant in
/// ns per item, the ratio adapter / fair (or / naive), and the overhead
/// adapter − naive in ns per item.
pub fn interleaved(trios: &[Trio], rounds: usize) {
    let only = std::env::var("LOOPSCOPE_ONLY").unwrap_or_default();
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>10} {:>12}   (ns per item, medians of {rounds} interleaved rounds)",
        "workload", "naive", "fair", "adapter", "/fair", "-naive ns"
    );
    for trio in trios
        .iter()
        .filter(|trio| trio.name.contains(only.as_str()))
    {
        let fixture = Fixture::new(trio.files).expect("create the temporary files");
        let variants = trio.variants();
        let expected = (variants[0].1)(&fixture);
        // Warm-up, and the batch size from the slowest variant.
        let mut slowest = Duration::ZERO;
        for (name, workload) in &variants {
            let start = Instant::now();
            assert_eq!(
                workload(&fixture),
                expected,
                "{}: {name} disagrees",
                trio.name
            );
            slowest = slowest.max(start.elapsed());
        }
        let batch = (Duration::from_millis(2).as_nanos() / slowest.as_nanos().max(1)).max(1) as u32;
        let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
        for round in 0..rounds {
            for k in 0..variants.len() {
                let v = (round + k) % variants.len();
                let workload = variants[v].1;
                let start = Instant::now();
                for _ in 0..batch {
                    black_box(workload(black_box(&fixture)));
                }
                let ns = start.elapsed().as_nanos() as f64 / f64::from(batch) / ITEMS as f64;
                samples[v].push(ns);
            }
        }
        let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
        let naive = medians[0];
        let adapter = medians[medians.len() - 1];
        let fair = if medians.len() == 3 {
            Some(medians[1])
        } else {
            None
        };
        let against = fair.unwrap_or(naive);
        println!(
            "{:<32} {:>10.2} {:>10} {:>10.2} {:>10.3} {:>+12.2}",
            trio.name,
            naive,
            fair.map_or("=naive".to_string(), |fair| format!("{fair:.2}")),
            adapter,
            adapter / against,
            adapter - naive,
        );
    }
}

/// A bench's `main`: with `LOOPSCOPE_CALLGRIND` set, the instruction-counting
/// mode over `trios`; with `LOOPSCOPE_INTERLEAVE`, the interleaved timing;
/// otherwise criterion over `trios`, then `more` (the bench's other criterion
/// groups) on the same fixture.
pub fn main(trios: &[Trio], more: impl FnOnce(&mut Criterion, &Fixture)) {
    if let Some(spec) = callgrind_spec() {
        callgrind_mode(&spec, trios);
        return;
    }
    if let Ok(rounds) = std::env::var("LOOPSCOPE_INTERLEAVE") {
        interleaved(
            trios,
            rounds
                .parse()
                .expect("LOOPSCOPE_INTERLEAVE: a number of rounds"),
        );
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    let files = trios.iter().any(|trio| trio.files);
    let fixture = Fixture::new(files).expect("create the temporary files");
    benches(&mut criterion, trios, &fixture);
    more(&mut criterion, &fixture);
    criterion.final_summary();
}

/// A trivial resource: the adapters' own overhead, with nothing to hide it.
///
/// Every function that can fail checks for an input that never occurs but that
/// the optimiser cannot rule out (the items pass through `black_box`), so the
/// error paths exist in both variants, as in real code. `sync_adapters` has its
/// own, synchronous acquire, body and release around the same [`Resource`].
pub mod trivial {
    use std::hint::black_box;

    /// Never returned: the error paths only need to exist.
    #[derive(Debug)]
    pub struct Fail;

    pub struct Resource {
        pub key: u64,
        pub acc: u64,
    }

    impl Drop for Resource {
        fn drop(&mut self) {
            // A write the optimiser must keep.
            black_box(self.acc ^ self.key);
        }
    }

    // The async acquire, body and release: unused by `sync_adapters`.
    #[allow(dead_code)]
    #[inline]
    pub async fn acquire(item: u64) -> Result<Resource, Fail> {
        if item == u64::MAX {
            return Err(Fail);
        }
        Ok(Resource {
            key: item,
            acc: item.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        })
    }

    #[allow(dead_code)]
    #[inline]
    pub async fn body(resource: &mut Resource) -> Result<u64, Fail> {
        if resource.key == u64::MAX - 1 {
            return Err(Fail);
        }
        resource.acc = resource.acc.rotate_left(17) ^ resource.key;
        // Below 2^32, so that 1,000 of them add up without overflow.
        Ok(resource.acc >> 32)
    }

    #[allow(dead_code)]
    #[inline]
    pub async fn release(resource: Resource) -> Result<(), Fail> {
        if resource.key == u64::MAX - 2 {
            return Err(Fail);
        }
        drop(resource);
        Ok(())
    }
}
