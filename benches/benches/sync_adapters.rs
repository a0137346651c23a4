//! The sync adapters side by side with the hand-written code they replace.
//!
//! Every workload is a trio of functions doing exactly the same work on the same
//! input — the same acquire, body and release functions, the same consumer —
//! written by hand (`naive`; for the sync adapters the fair baseline is the
//! same loop, see [`TRIOS`]) and with a `loopscope` adapter (`adapter`). Each
//! workload is one criterion group, so the variants are measured in the same
//! run, one right after the other:
//!
//! - `trivial_*`: 1,000 items; the resource is a small struct built from the item,
//!   whose `Drop` does a `black_box`ed write, and the body does a little
//!   arithmetic. This shows the adapters' own overhead, with nothing to hide it.
//! - `files_*`: 1,000 small real files in a temporary directory, each opened and
//!   read to the end. Here the system calls dominate.
//!
//! The performance contract (DESIGN.md) asks for adapter / hand-written ≤ 1.02×.
//!
//! ```text
//! cargo bench --bench sync_adapters               # criterion, all workloads
//! cargo bench --bench sync_adapters -- files_     # criterion, a filter
//! bash benches/callgrind.sh                       # instruction counts
//! ```
//!
//! # Instruction counting
//!
//! Time is noisy on a shared machine; instruction counts are not. With the
//! environment variable `LOOPSCOPE_CALLGRIND=<workload>/<variant>` (for example
//! `trivial_for_each/adapter`; the variants are `naive` and `adapter`) the binary skips criterion, builds the same fixture,
//! runs that one function once as a warm-up, and then calls it
//! `LOOPSCOPE_CALLGRIND_REPS` times (default 10) inside
//! [`callgrind_measured`](common::callgrind_measured).
//! `LOOPSCOPE_CALLGRIND=list` prints the workload names. This harness, the
//! fixture and the trivial resource are shared with the other benches: they live
//! in `benches/benches/common/mod.rs`.
//!
//! Why the counts are attributable: `benches/callgrind.sh` runs the binary under
//! `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*callgrind_measured*'`, so callgrind counts only the
//! instructions executed from the entry to the exit of `callgrind_measured`
//! (an `#[inline(never)]`, non-generic function, so its symbol exists under that
//! name), including everything it calls: the workload, the std and libc code it
//! runs. Process start-up, the fixture (creating the files), the environment
//! parsing and the warm-up call — which takes any lazy one-time initialisation
//! out of the count — all run with collection off. The workload is called
//! through a function pointer in both variants, so the loop around it costs the
//! same few instructions for each; total / reps is the cost of one run of the
//! workload (1,000 items). Kernel time is invisible to callgrind: for the file
//! workloads the counts are the user-space work around the system calls.

mod common;

use std::convert::Infallible;
use std::fs::File;
use std::hint::black_box;
use std::io::{self, Read};
use std::path::PathBuf;

use common::{FILE_LEN, Fixture, Trio};
use loopscope::prelude::*;

/// The workloads: criterion and instruction counts.
///
/// The fair baseline of a sync adapter is the naive loop (`fair: None`): a
/// `for` loop or `map` calling the same functions, which the adapters already
/// match instruction for instruction (their index and error wrapping cost
/// nothing on the success path), so it is not written out twice.
const TRIOS: &[Trio] = &[
    Trio {
        name: "trivial_for_each",
        naive: trivial::for_each_naive,
        fair: None,
        adapter: trivial::for_each_adapter,
        files: false,
    },
    Trio {
        name: "trivial_try_map_sum",
        naive: trivial::try_map_sum_naive,
        fair: None,
        adapter: trivial::try_map_sum_adapter,
        files: false,
    },
    Trio {
        name: "trivial_try_map_collect",
        naive: trivial::try_map_collect_naive,
        fair: None,
        adapter: trivial::try_map_collect_adapter,
        files: false,
    },
    Trio {
        name: "trivial_bracket_for_each",
        naive: trivial::bracket_for_each_naive,
        fair: None,
        adapter: trivial::bracket_for_each_adapter,
        files: false,
    },
    Trio {
        name: "trivial_bracket_try_map_sum",
        naive: trivial::bracket_try_map_sum_naive,
        fair: None,
        adapter: trivial::bracket_try_map_sum_adapter,
        files: false,
    },
    Trio {
        name: "files_for_each",
        naive: files::for_each_naive,
        fair: None,
        adapter: files::for_each_adapter,
        files: true,
    },
    Trio {
        name: "files_try_map_sum",
        naive: files::try_map_sum_naive,
        fair: None,
        adapter: files::try_map_sum_adapter,
        files: true,
    },
];

/// A trivial resource (`common::trivial`'s): the adapters' own overhead, with
/// nothing to hide it. Acquired, used and released here by synchronous
/// functions.
///
/// Every function that can fail checks for an input that never occurs but that
/// the optimiser cannot rule out (the items pass through `black_box`), so the
/// error paths exist in both variants, as in real code.
mod trivial {
    use super::*;
    use common::trivial::{Fail, Resource};

    #[inline]
    fn acquire(item: u64) -> Result<Resource, Fail> {
        if item == u64::MAX {
            return Err(Fail);
        }
        Ok(Resource {
            key: item,
            acc: item.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        })
    }

    #[inline]
    fn body(resource: &mut Resource) -> Result<u64, Fail> {
        if resource.key == u64::MAX - 1 {
            return Err(Fail);
        }
        resource.acc = resource.acc.rotate_left(17) ^ resource.key;
        // Below 2^32, so that 1,000 of them add up without overflow.
        Ok(resource.acc >> 32)
    }

    #[inline]
    fn release(resource: Resource) -> Result<(), Fail> {
        if resource.key == u64::MAX - 2 {
            return Err(Fail);
        }
        drop(resource);
        Ok(())
    }

    type Error = ScopedError<Fail, Fail, Infallible>;
    type BracketError = ScopedError<Fail, Fail, Fail>;

    pub fn for_each_naive(fixture: &Fixture) -> u64 {
        fn run(items: &[u64]) -> Result<u64, Fail> {
            let mut sum = 0;
            for &item in items {
                let mut resource = acquire(item)?;
                sum += body(&mut resource)?;
            }
            Ok(sum)
        }
        run(black_box(&fixture.items)).expect("no item fails")
    }

    pub fn for_each_adapter(fixture: &Fixture) -> u64 {
        let mut sum = 0;
        black_box(&fixture.items)
            .iter()
            .copied()
            .for_each_scoped(acquire, |resource| body(resource).map(|value| sum += value))
            .expect("no item fails");
        sum
    }

    pub fn try_map_sum_naive(fixture: &Fixture) -> u64 {
        black_box(&fixture.items)
            .iter()
            .copied()
            .map(|item| {
                let mut resource = acquire(item)?;
                body(&mut resource)
            })
            .sum::<Result<u64, Fail>>()
            .expect("no item fails")
    }

    pub fn try_map_sum_adapter(fixture: &Fixture) -> u64 {
        black_box(&fixture.items)
            .iter()
            .copied()
            .try_map_scoped(acquire, body)
            .sum::<Result<u64, Error>>()
            .expect("no item fails")
    }

    pub fn try_map_collect_naive(fixture: &Fixture) -> u64 {
        let values = black_box(&fixture.items)
            .iter()
            .copied()
            .map(|item| {
                let mut resource = acquire(item)?;
                body(&mut resource)
            })
            .collect::<Result<Vec<u64>, Fail>>()
            .expect("no item fails");
        black_box(&values).len() as u64
    }

    pub fn try_map_collect_adapter(fixture: &Fixture) -> u64 {
        let values = black_box(&fixture.items)
            .iter()
            .copied()
            .try_map_scoped(acquire, body)
            .collect::<Result<Vec<u64>, Error>>()
            .expect("no item fails");
        black_box(&values).len() as u64
    }

    pub fn bracket_for_each_naive(fixture: &Fixture) -> u64 {
        // Released explicitly, also when the body fails; the body's error first.
        fn run(items: &[u64]) -> Result<u64, Fail> {
            let mut sum = 0;
            for &item in items {
                let mut resource = acquire(item)?;
                let used = body(&mut resource);
                let released = release(resource);
                sum += used?;
                released?;
            }
            Ok(sum)
        }
        run(black_box(&fixture.items)).expect("no item fails")
    }

    pub fn bracket_for_each_adapter(fixture: &Fixture) -> u64 {
        let mut sum = 0;
        black_box(&fixture.items)
            .iter()
            .copied()
            .for_each_scoped(bracket(acquire).release(release), |resource| {
                body(resource).map(|value| sum += value)
            })
            .expect("no item fails");
        sum
    }

    pub fn bracket_try_map_sum_naive(fixture: &Fixture) -> u64 {
        black_box(&fixture.items)
            .iter()
            .copied()
            .map(|item| {
                let mut resource = acquire(item)?;
                let used = body(&mut resource);
                let released = release(resource);
                let value = used?;
                released?;
                Ok(value)
            })
            .sum::<Result<u64, Fail>>()
            .expect("no item fails")
    }

    pub fn bracket_try_map_sum_adapter(fixture: &Fixture) -> u64 {
        black_box(&fixture.items)
            .iter()
            .copied()
            .try_map_scoped(bracket(acquire).release(release), body)
            .sum::<Result<u64, BracketError>>()
            .expect("no item fails")
    }
}

/// Real files: open, read to the end, close. Each run allocates one buffer,
/// cleared before each file, in both variants.
mod files {
    use super::*;

    pub fn for_each_naive(fixture: &Fixture) -> u64 {
        fn run(paths: &[PathBuf], buf: &mut Vec<u8>) -> io::Result<u64> {
            let mut total = 0;
            for path in paths {
                let mut file = File::open(path)?;
                buf.clear();
                total += file.read_to_end(buf)? as u64;
            }
            Ok(total)
        }
        let mut buf = Vec::with_capacity(4 * FILE_LEN);
        run(black_box(&fixture.paths), &mut buf).expect("the files are readable")
    }

    pub fn for_each_adapter(fixture: &Fixture) -> u64 {
        let mut buf = Vec::with_capacity(4 * FILE_LEN);
        let mut total = 0;
        black_box(&fixture.paths)
            .iter()
            .for_each_scoped(File::open, |file| {
                buf.clear();
                file.read_to_end(&mut buf).map(|n| total += n as u64)
            })
            .expect("the files are readable");
        total
    }

    pub fn try_map_sum_naive(fixture: &Fixture) -> u64 {
        let mut buf = Vec::with_capacity(4 * FILE_LEN);
        black_box(&fixture.paths)
            .iter()
            .map(|path| {
                let mut file = File::open(path)?;
                buf.clear();
                file.read_to_end(&mut buf).map(|n| n as u64)
            })
            .sum::<io::Result<u64>>()
            .expect("the files are readable")
    }

    pub fn try_map_sum_adapter(fixture: &Fixture) -> u64 {
        let mut buf = Vec::with_capacity(4 * FILE_LEN);
        black_box(&fixture.paths)
            .iter()
            .try_map_scoped(File::open, |file| {
                buf.clear();
                file.read_to_end(&mut buf).map(|n| n as u64)
            })
            .sum::<Result<u64, ScopedError<io::Error, io::Error, Infallible>>>()
            .expect("the files are readable")
    }
}

fn main() {
    common::main(TRIOS, |_, _| {});
}
