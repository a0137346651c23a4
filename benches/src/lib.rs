//! Support for the benchmarks: the **fair baselines** ([`fair`]).
//!
//! Each async adapter is measured against two hand-written baselines
//! (DESIGN.md, "Performance contract"; BENCHMARKS.md):
//!
//! - **naive**: the plain loop with the body inline (`while let`, `then`,
//!   `buffered(n)`, `try_for_each_concurrent(n)`, `JoinSet` + `Semaphore`),
//!   written in each bench: what the adapters' guarantees cost;
//! - **fair**: the loop a careful user would write by hand, with futures-util
//!   (and tokio) and no loopscope engine, for the *same guarantees with the
//!   same closures*: what the adapter itself costs. Those are the functions of
//!   [`fair`], generic over the closures, returning the adapters' own
//!   [`ScopedError`](loopscope::ScopedError); `tests/fair_baselines.rs` checks
//!   that they release on `Ok`, `Err` and panic and wrap errors with the right
//!   index, so that they cannot quietly do less than the adapters.

pub mod fair;
