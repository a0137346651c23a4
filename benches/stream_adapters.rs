//! The sequential stream adapters side by side with the hand-written async code
//! they replace.
//!
//! The same design as `benches/sync_adapters.rs`: every workload is a pair of
//! functions doing exactly the same work on the same input — the same async
//! acquire, body and release functions, the same consumer — once written by hand
//! (`hand_written`) and once with a `loopscope` adapter (`adapter`), each pair one
//! criterion group. Every run drives a `futures::stream::iter` over 1,000 items
//! to completion with `futures::executor::block_on`; the resource is a small
//! struct built from the item, whose `Drop` does a `black_box`ed write, and the
//! body does a little arithmetic, so that nothing hides the adapters' overhead.
//!
//! - `stream_for_each`: `for_each_scoped` with an async closure acquire (release
//!   by `Drop`), against `while let Some(item) = stream.next().await { .. }`.
//! - `stream_try_map_sum`: `try_map_scoped`, summed, against `stream.then(..)`.
//! - `stream_bracket_*`: the same, with
//!   `async_bracket(acquire).release(release)`, against an explicit
//!   `release(resource).await` in the hand-written code.
//!
//! The performance contract (DESIGN.md) asks for adapter / hand-written ≤ 1.05×.
//!
//! ```text
//! cargo bench --bench stream_adapters                 # criterion, all workloads
//! cargo bench --bench stream_adapters -- bracket      # criterion, a filter
//! bash benches/callgrind.sh --bench stream_adapters   # instruction counts
//! ```
//!
//! # Instruction counting
//!
//! As in `benches/sync_adapters.rs`: with `LOOPSCOPE_CALLGRIND=<workload>/<variant>`
//! (for example `stream_for_each/adapter`) the binary skips criterion, runs that
//! one function once as an uncounted warm-up, and then calls it
//! `LOOPSCOPE_CALLGRIND_REPS` times (default 10) inside [`callgrind_measured`],
//! the only function whose instructions `benches/callgrind.sh` has callgrind
//! count. `LOOPSCOPE_CALLGRIND=list` prints the workload names. Each run includes
//! one `block_on` (the executor's set-up around the loop), in both variants.

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::pin;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use futures::StreamExt as _;
use futures::executor::block_on;
use futures::stream;
use loopscope::prelude::*;

/// Items per run of every workload.
const ITEMS: usize = 1_000;

/// The input, built once.
struct Fixture {
    items: Vec<u64>,
}

impl Fixture {
    fn new() -> Self {
        Self {
            items: (0..ITEMS as u64).collect(),
        }
    }
}

/// One run of a workload (all of its items); returns a checksum.
type Workload = fn(&Fixture) -> u64;

/// A workload: the hand-written code and the adapter doing the same work.
struct Pair {
    name: &'static str,
    hand_written: Workload,
    adapter: Workload,
}

const PAIRS: &[Pair] = &[
    Pair {
        name: "stream_for_each",
        hand_written: trivial::for_each_hand_written,
        adapter: trivial::for_each_adapter,
    },
    Pair {
        name: "stream_try_map_sum",
        hand_written: trivial::try_map_sum_hand_written,
        adapter: trivial::try_map_sum_adapter,
    },
    Pair {
        name: "stream_bracket_for_each",
        hand_written: trivial::bracket_for_each_hand_written,
        adapter: trivial::bracket_for_each_adapter,
    },
    Pair {
        name: "stream_bracket_try_map_sum",
        hand_written: trivial::bracket_try_map_sum_hand_written,
        adapter: trivial::bracket_try_map_sum_adapter,
    },
];

/// A trivial resource: the adapters' own overhead, with nothing to hide it.
///
/// Every function that can fail checks for an input that never occurs but that
/// the optimiser cannot rule out (the items pass through `black_box`), so the
/// error paths exist in both variants, as in real code.
mod trivial {
    use super::*;

    /// Never returned: the error paths only need to exist.
    #[derive(Debug)]
    pub struct Fail;

    pub struct Resource {
        key: u64,
        acc: u64,
    }

    impl Drop for Resource {
        fn drop(&mut self) {
            // A write the optimiser must keep.
            black_box(self.acc ^ self.key);
        }
    }

    #[inline]
    async fn acquire(item: u64) -> Result<Resource, Fail> {
        if item == u64::MAX {
            return Err(Fail);
        }
        Ok(Resource {
            key: item,
            acc: item.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        })
    }

    #[inline]
    async fn body(resource: &mut Resource) -> Result<u64, Fail> {
        if resource.key == u64::MAX - 1 {
            return Err(Fail);
        }
        resource.acc = resource.acc.rotate_left(17) ^ resource.key;
        // Below 2^32, so that 1,000 of them add up without overflow.
        Ok(resource.acc >> 32)
    }

    #[inline]
    async fn release(resource: Resource) -> Result<(), Fail> {
        if resource.key == u64::MAX - 2 {
            return Err(Fail);
        }
        drop(resource);
        Ok(())
    }

    type Error = ScopedError<Fail, Fail, Infallible>;
    type BracketError = ScopedError<Fail, Fail, Fail>;

    pub fn for_each_hand_written(fixture: &Fixture) -> u64 {
        async fn run(items: &[u64]) -> Result<u64, Fail> {
            let mut items = pin!(stream::iter(items.iter().copied()));
            let mut sum = 0;
            while let Some(item) = items.next().await {
                let mut resource = acquire(item).await?;
                sum += body(&mut resource).await?;
            }
            Ok(sum)
        }
        block_on(run(black_box(&fixture.items))).expect("no item fails")
    }

    pub fn for_each_adapter(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut sum = 0;
            stream::iter(black_box(&fixture.items).iter().copied())
                .for_each_scoped(acquire, async |resource| {
                    body(resource).await.map(|value| sum += value)
                })
                .await
                .expect("no item fails");
            sum
        })
    }

    pub fn try_map_sum_hand_written(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(
                stream::iter(black_box(&fixture.items).iter().copied()).then(async |item| {
                    let mut resource = acquire(item).await?;
                    body(&mut resource).await
                })
            );
            let mut sum = 0;
            while let Some(value) = values.next().await {
                sum += value.expect("no item fails");
            }
            sum
        })
    }

    pub fn try_map_sum_adapter(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(
                stream::iter(black_box(&fixture.items).iter().copied())
                    .try_map_scoped(acquire, async |resource| body(resource).await,)
            );
            let mut sum = 0;
            while let Some(value) = values.next().await {
                let value: Result<u64, Error> = value;
                sum += value.expect("no item fails");
            }
            sum
        })
    }

    pub fn bracket_for_each_hand_written(fixture: &Fixture) -> u64 {
        // Released explicitly, also when the body fails; the body's error first.
        async fn run(items: &[u64]) -> Result<u64, Fail> {
            let mut items = pin!(stream::iter(items.iter().copied()));
            let mut sum = 0;
            while let Some(item) = items.next().await {
                let mut resource = acquire(item).await?;
                let used = body(&mut resource).await;
                let released = release(resource).await;
                sum += used?;
                released?;
            }
            Ok(sum)
        }
        block_on(run(black_box(&fixture.items))).expect("no item fails")
    }

    pub fn bracket_for_each_adapter(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut sum = 0;
            stream::iter(black_box(&fixture.items).iter().copied())
                .for_each_scoped(async_bracket(acquire).release(release), async |resource| {
                    body(resource).await.map(|value| sum += value)
                })
                .await
                .expect("no item fails");
            sum
        })
    }

    pub fn bracket_try_map_sum_hand_written(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(
                stream::iter(black_box(&fixture.items).iter().copied()).then(async |item| {
                    let mut resource = acquire(item).await?;
                    let used = body(&mut resource).await;
                    let released = release(resource).await;
                    let value = used?;
                    released?;
                    Ok::<_, Fail>(value)
                })
            );
            let mut sum = 0;
            while let Some(value) = values.next().await {
                sum += value.expect("no item fails");
            }
            sum
        })
    }

    pub fn bracket_try_map_sum_adapter(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(
                stream::iter(black_box(&fixture.items).iter().copied())
                    .try_map_scoped(async_bracket(acquire).release(release), async |resource| {
                        body(resource).await
                    },)
            );
            let mut sum = 0;
            while let Some(value) = values.next().await {
                let value: Result<u64, BracketError> = value;
                sum += value.expect("no item fails");
            }
            sum
        })
    }
}

fn benches(c: &mut Criterion) {
    let fixture = Fixture::new();
    for pair in PAIRS {
        // The same work: the same result.
        assert_eq!(
            (pair.hand_written)(&fixture),
            (pair.adapter)(&fixture),
            "{}: the two variants disagree",
            pair.name
        );
        let mut group = c.benchmark_group(pair.name);
        group.throughput(Throughput::Elements(ITEMS as u64));
        group
            .warm_up_time(Duration::from_secs(1))
            .sample_size(100)
            .measurement_time(Duration::from_secs(3));
        group.bench_function("hand_written", |b| {
            b.iter(|| (pair.hand_written)(black_box(&fixture)));
        });
        group.bench_function("adapter", |b| {
            b.iter(|| (pair.adapter)(black_box(&fixture)));
        });
        group.finish();
    }
}

/// Runs `workload` `reps` times. Under callgrind only the instructions executed
/// inside this function (and what it calls) are counted: see the crate docs.
#[inline(never)]
fn callgrind_measured(workload: Workload, fixture: &Fixture, reps: u32) -> u64 {
    let mut checksum = 0u64;
    for _ in 0..reps {
        checksum = checksum.wrapping_add(black_box(workload)(black_box(fixture)));
    }
    checksum
}

/// `LOOPSCOPE_CALLGRIND=<workload>/<variant>` or `list`.
fn callgrind_mode(spec: &str) {
    if spec == "list" {
        for pair in PAIRS {
            println!("{}", pair.name);
        }
        return;
    }
    let (name, variant) = spec
        .split_once('/')
        .unwrap_or_else(|| panic!("LOOPSCOPE_CALLGRIND={spec}: expected <workload>/<variant>"));
    let pair = PAIRS
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
    let fixture = Fixture::new();
    // Warm-up, not counted: lazy one-time initialisation (the executor's
    // thread-local waker), first allocations.
    let expected = workload(&fixture);
    let checksum = callgrind_measured(workload, &fixture, reps);
    assert_eq!(checksum, expected.wrapping_mul(u64::from(reps)));
    println!("{name}/{variant}: {reps} reps, checksum {checksum}");
}

fn main() {
    if let Ok(spec) = std::env::var("LOOPSCOPE_CALLGRIND") {
        callgrind_mode(&spec);
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
