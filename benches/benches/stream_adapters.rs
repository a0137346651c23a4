//! The sequential stream adapters side by side with the hand-written async code
//! they replace.
//!
//! The same design as `benches/benches/sync_adapters.rs`: every workload is a trio
//! of functions doing exactly the same work on the same input — the same async
//! acquire, body and release functions, the same consumer — written three ways,
//! each trio one criterion group: `naive`, the plain `while let` or `then` with
//! the body inline (what the guarantees cost); `fair`, the same closures with
//! the same guarantees by hand (`loopscope_benches::fair`: the index, the same
//! `ScopedError`, for an async release the body under `catch_unwind` and the
//! release awaited on `Ok`, `Err` and panic — what the adapter itself costs);
//! and `adapter`, the `loopscope` adapter. Every run drives a `futures::stream::iter` over 1,000 items
//! to completion with `futures::executor::block_on`; the resource is a small
//! struct built from the item, whose `Drop` does a `black_box`ed write, and the
//! body does a little arithmetic, so that nothing hides the adapters' overhead.
//!
//! - `stream_for_each`: `for_each_scoped` with an async closure acquire (release
//!   by `Drop`), against `while let Some(item) = stream.next().await { .. }`.
//!   The adapter's body is an async closure that adds to a captured sum.
//! - `stream_fn_for_each`: the same, but both variants call the same async
//!   functions and nothing else: the adapter is given `acquire` and `body`
//!   themselves, with no closure around them.
//! - `stream_try_map_sum`: `try_map_scoped(acquire, body)`, summed, against
//!   `stream.then(..)` calling the same functions.
//! - `stream_bracket_*`: the same, with
//!   `async_bracket(acquire).release(release)`, against an explicit
//!   `release(resource).await` in the hand-written code.
//! - `stream_files_bracket_for_each`: 1,000 small real files, each opened,
//!   read to the end and closed through an async bracket, against the same
//!   `while let` loop written out.
//!
//! The performance contract (DESIGN.md) asks for adapter / fair ≤ 1.05×; adapter
//! − naive is reported, not targeted.
//!
//! ```text
//! cargo bench --bench stream_adapters                 # criterion, all workloads
//! cargo bench --bench stream_adapters -- bracket      # criterion, a filter
//! bash benches/callgrind.sh --bench stream_adapters   # instruction counts
//! ```
//!
//! # Instruction counting
//!
//! As in `benches/benches/sync_adapters.rs`: with `LOOPSCOPE_CALLGRIND=<workload>/<variant>`
//! (for example `stream_for_each/adapter`; the variants are `naive`, `fair` and `adapter`) the binary skips criterion, runs that
//! one function once as an uncounted warm-up, and then calls it
//! `LOOPSCOPE_CALLGRIND_REPS` times (default 10) inside
//! [`callgrind_measured`](common::callgrind_measured), the only function whose
//! instructions `benches/callgrind.sh` has callgrind count.
//! `LOOPSCOPE_CALLGRIND=list` prints the workload names. Each run includes one
//! `block_on` (the executor's set-up around the loop), in both variants. The
//! harness and the trivial resource (with its async acquire, body and release)
//! are shared with the other benches: they live in `benches/benches/common/mod.rs`.

mod common;

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::pin;

use common::{Fixture, Trio};
use futures::StreamExt as _;
use futures::executor::block_on;
use futures::stream;
use loopscope::prelude::*;
use loopscope_benches::fair;

/// The workloads: criterion and instruction counts.
const TRIOS: &[Trio] = &[
    Trio {
        name: "stream_for_each",
        naive: trivial::for_each_naive,
        fair: Some(trivial::for_each_fair),
        adapter: trivial::for_each_adapter,
        files: false,
    },
    Trio {
        name: "stream_try_map_sum",
        naive: trivial::try_map_sum_naive,
        fair: Some(trivial::try_map_sum_fair),
        adapter: trivial::try_map_sum_adapter,
        files: false,
    },
    Trio {
        name: "stream_fn_for_each",
        naive: trivial::fn_for_each_naive,
        fair: Some(trivial::fn_for_each_fair),
        adapter: trivial::fn_for_each_adapter,
        files: false,
    },
    Trio {
        name: "stream_bracket_for_each",
        naive: trivial::bracket_for_each_naive,
        fair: Some(trivial::bracket_for_each_fair),
        adapter: trivial::bracket_for_each_adapter,
        files: false,
    },
    Trio {
        name: "stream_bracket_try_map_sum",
        naive: trivial::bracket_try_map_sum_naive,
        fair: Some(trivial::bracket_try_map_sum_fair),
        adapter: trivial::bracket_try_map_sum_adapter,
        files: false,
    },
    Trio {
        name: "stream_files_bracket_for_each",
        naive: files::for_each_naive,
        fair: Some(files::for_each_fair),
        adapter: files::for_each_adapter,
        files: true,
    },
];

/// The trivial resource of `common::trivial`, with its async acquire, body and
/// release: the adapters' own overhead, with nothing to hide it.
mod trivial {
    use super::*;
    use common::trivial::{Fail, acquire, body, release};

    type Error = ScopedError<Fail, Fail, Infallible>;
    type BracketError = ScopedError<Fail, Fail, Fail>;

    pub fn for_each_naive(fixture: &Fixture) -> u64 {
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
            stream::iter(black_box(&fixture.items).iter().copied())
                .try_fold_scoped(0, acquire, async |sum, resource| {
                    body(resource).await.map(|value| sum + value)
                })
                .await
                .expect("no item fails")
        })
    }

    pub fn for_each_fair(fixture: &Fixture) -> u64 {
        block_on(fair::try_fold_scoped(
            stream::iter(black_box(&fixture.items).iter().copied()),
            0,
            acquire,
            async |sum, resource| body(resource).await.map(|value| sum + value),
        ))
        .expect("no item fails")
    }

    pub fn try_map_sum_naive(fixture: &Fixture) -> u64 {
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

    pub fn try_map_sum_fair(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(fair::try_map_scoped(
                stream::iter(black_box(&fixture.items).iter().copied()),
                acquire,
                body,
            ));
            let mut sum = 0;
            while let Some(value) = values.next().await {
                let value: Result<u64, Error> = value;
                sum += value.expect("no item fails");
            }
            sum
        })
    }

    pub fn try_map_sum_adapter(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(
                stream::iter(black_box(&fixture.items).iter().copied())
                    .try_map_scoped(acquire, body)
            );
            let mut sum = 0;
            while let Some(value) = values.next().await {
                let value: Result<u64, Error> = value;
                sum += value.expect("no item fails");
            }
            sum
        })
    }

    pub fn fn_for_each_naive(fixture: &Fixture) -> u64 {
        async fn run(items: &[u64]) -> Result<(), Fail> {
            let mut items = pin!(stream::iter(items.iter().copied()));
            while let Some(item) = items.next().await {
                let mut resource = acquire(item).await?;
                body(&mut resource).await?;
            }
            Ok(())
        }
        block_on(run(black_box(&fixture.items))).expect("no item fails");
        0
    }

    pub fn fn_for_each_fair(fixture: &Fixture) -> u64 {
        block_on(fair::for_each_scoped(
            stream::iter(black_box(&fixture.items).iter().copied()),
            acquire,
            body,
        ))
        .expect("no item fails");
        0
    }

    pub fn fn_for_each_adapter(fixture: &Fixture) -> u64 {
        block_on(async {
            stream::iter(black_box(&fixture.items).iter().copied())
                .for_each_scoped(acquire, body)
                .await
                .expect("no item fails");
            0
        })
    }

    pub fn bracket_for_each_naive(fixture: &Fixture) -> u64 {
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

    pub fn bracket_for_each_fair(fixture: &Fixture) -> u64 {
        block_on(fair::bracket_try_fold_scoped(
            stream::iter(black_box(&fixture.items).iter().copied()),
            0,
            acquire,
            release,
            async |sum, resource| body(resource).await.map(|value| sum + value),
        ))
        .expect("no item fails")
    }

    pub fn bracket_for_each_adapter(fixture: &Fixture) -> u64 {
        block_on(async {
            stream::iter(black_box(&fixture.items).iter().copied())
                .try_fold_scoped(
                    0,
                    async_bracket(acquire).release(release),
                    async |sum, resource| body(resource).await.map(|value| sum + value),
                )
                .await
                .expect("no item fails")
        })
    }

    pub fn bracket_try_map_sum_naive(fixture: &Fixture) -> u64 {
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

    pub fn bracket_try_map_sum_fair(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(fair::bracket_try_map_scoped(
                stream::iter(black_box(&fixture.items).iter().copied()),
                acquire,
                release,
                body,
            ));
            let mut sum = 0;
            while let Some(value) = values.next().await {
                let value: Result<u64, BracketError> = value;
                sum += value.expect("no item fails");
            }
            sum
        })
    }

    pub fn bracket_try_map_sum_adapter(fixture: &Fixture) -> u64 {
        block_on(async {
            let mut values = pin!(
                stream::iter(black_box(&fixture.items).iter().copied())
                    .try_map_scoped(async_bracket(acquire).release(release), body)
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

/// Real files, read through the sequential stream adapters: open, read to the
/// end, close, with an async bracket whose release syncs nothing but is awaited
/// (the guarded path). Blocking `std::fs` calls inside `async` functions, as in
/// the sync benches: the executor is `block_on`, and the system calls are the
/// same in both variants. Each run allocates one buffer, cleared per file.
mod files {
    use super::*;
    use std::fs::File;
    use std::io::{self, Read as _};
    use std::path::PathBuf;

    use common::FILE_LEN;

    async fn open(path: &PathBuf) -> io::Result<File> {
        File::open(path)
    }

    async fn close(file: File) -> io::Result<()> {
        drop(file);
        Ok(())
    }

    pub fn for_each_naive(fixture: &Fixture) -> u64 {
        async fn run(paths: &[PathBuf], buf: &mut Vec<u8>) -> io::Result<u64> {
            let mut paths = pin!(stream::iter(paths));
            let mut total = 0;
            while let Some(path) = paths.next().await {
                let mut file = open(path).await?;
                buf.clear();
                let read = file.read_to_end(buf);
                let closed = close(file).await;
                total += read? as u64;
                closed?;
            }
            Ok(total)
        }
        let mut buf = Vec::with_capacity(4 * FILE_LEN);
        block_on(run(black_box(&fixture.paths), &mut buf)).expect("the files are readable")
    }

    pub fn for_each_fair(fixture: &Fixture) -> u64 {
        let buf = Vec::with_capacity(4 * FILE_LEN);
        let (_, total) = block_on(fair::bracket_try_fold_scoped(
            stream::iter(black_box(&fixture.paths)),
            (buf, 0),
            open,
            close,
            async |(mut buf, total), file: &mut File| {
                buf.clear();
                let read = file.read_to_end(&mut buf)?;
                Ok::<_, std::io::Error>((buf, total + read as u64))
            },
        ))
        .expect("the files are readable");
        total
    }

    pub fn for_each_adapter(fixture: &Fixture) -> u64 {
        let buf = Vec::with_capacity(4 * FILE_LEN);
        let (_, total) = block_on(stream::iter(black_box(&fixture.paths)).try_fold_scoped(
            (buf, 0),
            async_bracket(open).release(close),
            async |(mut buf, total), file| {
                buf.clear();
                let read = file.read_to_end(&mut buf)?;
                Ok::<_, std::io::Error>((buf, total + read as u64))
            },
        ))
        .expect("the files are readable");
        total
    }
}

fn main() {
    common::main(TRIOS, |_, _| {});
}
