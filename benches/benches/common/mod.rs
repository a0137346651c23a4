//! The harness shared by the three benches (`sync_adapters`, `stream_adapters`,
//! `concurrent_adapters`), each of which includes it with `mod common;`, and
//! the trivial resource of their `trivial_*`, `stream_*` and executor workloads.
//!
//! A bench declares its workloads as a table of [`Pair`]s and hands it to
//! [`main`], which either runs criterion over them or, with
//! `LOOPSCOPE_CALLGRIND=<workload>/<variant>` (or `list`), runs one variant
//! under [`callgrind_measured`] for `benches/callgrind.sh` (see the top of
//! `benches/benches/sync_adapters.rs`).
//!
//! Every bench compiles this module on its own, and none uses all of it: the
//! items only some benches use carry `#[allow(dead_code)]`, each with the reason.

use std::hint::black_box;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

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

/// A workload: the hand-written code and the adapter doing the same work.
pub struct Pair {
    pub name: &'static str,
    pub hand_written: Workload,
    pub adapter: Workload,
    /// Whether the workload reads the fixture's files (`files_*`,
    /// `stream_files_*`): the fixture then creates them, and criterion takes
    /// fewer, longer samples.
    pub files: bool,
}

/// One criterion group `name` with the functions `hand_written` and `adapter`,
/// after checking that they agree: the same work, the same result.
pub fn bench_pair(
    c: &mut Criterion,
    name: &str,
    sample_size: usize,
    measurement_time: Duration,
    hand_written: impl Fn() -> u64,
    adapter: impl Fn() -> u64,
) {
    assert_eq!(
        hand_written(),
        adapter(),
        "{name}: the two variants disagree"
    );
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(ITEMS as u64));
    group
        .warm_up_time(Duration::from_secs(1))
        .sample_size(sample_size)
        .measurement_time(measurement_time);
    group.bench_function("hand_written", |b| b.iter(&hand_written));
    group.bench_function("adapter", |b| b.iter(&adapter));
    group.finish();
}

/// Criterion over `pairs`, on one fixture (with the files only if a pair reads
/// them).
fn benches(c: &mut Criterion, pairs: &[Pair], fixture: &Fixture) {
    for pair in pairs {
        // A run over the files is milliseconds of system calls: fewer, longer
        // samples.
        let (sample_size, measurement_time) = if pair.files {
            (30, Duration::from_secs(4))
        } else {
            (100, Duration::from_secs(3))
        };
        bench_pair(
            c,
            pair.name,
            sample_size,
            measurement_time,
            || (pair.hand_written)(black_box(fixture)),
            || (pair.adapter)(black_box(fixture)),
        );
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

/// `LOOPSCOPE_CALLGRIND=<workload>/<variant>` or `list`.
fn callgrind_mode(spec: &str, pairs: &[Pair]) {
    if spec == "list" {
        for pair in pairs {
            println!("{}", pair.name);
        }
        return;
    }
    let (name, variant) = spec
        .split_once('/')
        .unwrap_or_else(|| panic!("LOOPSCOPE_CALLGRIND={spec}: expected <workload>/<variant>"));
    let pair = pairs
        .iter()
        .find(|pair| pair.name == name)
        .unwrap_or_else(|| panic!("no workload {name:?}; try LOOPSCOPE_CALLGRIND=list"));
    let workload = match variant {
        "hand_written" => pair.hand_written,
        "adapter" => pair.adapter,
        _ => panic!("no variant {variant:?}: expected hand_written or adapter"),
    };
    let reps = match std::env::var("LOOPSCOPE_CALLGRIND_REPS") {
        Ok(reps) => reps.parse().expect("LOOPSCOPE_CALLGRIND_REPS: a number"),
        Err(_) => 10,
    };
    let fixture = Fixture::new(pair.files).expect("create the temporary files");
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

/// A bench's `main`: with `LOOPSCOPE_CALLGRIND` set, the instruction-counting
/// mode over `pairs`; otherwise criterion over `pairs`, then `more` (the
/// bench's other criterion groups) on the same fixture.
pub fn main(pairs: &[Pair], more: impl FnOnce(&mut Criterion, &Fixture)) {
    if let Some(spec) = callgrind_spec() {
        callgrind_mode(&spec, pairs);
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    let files = pairs.iter().any(|pair| pair.files);
    let fixture = Fixture::new(files).expect("create the temporary files");
    benches(&mut criterion, pairs, &fixture);
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
