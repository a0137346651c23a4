//! Shared by the property tests of the stream adapters, sequential and concurrent:
//! per-step waits counted in polls, and the async acquire and bodies of the
//! scripted [`Harness`].
//!
//! The kit's wrappers make each step first wait a generated number of polls
//! (`loopscope::testing::yield_n`: a future that returns `Pending` that many
//! times, waking itself) and then succeed, fail or panic as the item's script
//! says. Everything runs on one thread, deterministically.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use futures::stream::Stream;

use loopscope::AsyncAcquire;
use loopscope::prelude::*;
use loopscope::testing::{Call, Indexed, Step, Tracker};
use proptest::prelude::*;

use super::{Act, Fault, Harness, ItemScript, MAX_ITEMS, Release, Resource, Used, plan, scripts};

// ---------------------------------------------------------------- waiting

/// How many times each step of an item returns `Pending` before it goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Yields {
    pub acquire: usize,
    pub body: usize,
    pub release: usize,
}

/// Waits of 0 to `max_yields` polls per step for each of the [`MAX_ITEMS`]
/// possible items, looked up by position.
pub fn yields(max_yields: usize) -> impl Strategy<Value = Vec<Yields>> {
    proptest::collection::vec(
        (0..=max_yields, 0..=max_yields, 0..=max_yields).prop_map(|(acquire, body, release)| {
            Yields {
                acquire,
                body,
                release,
            }
        }),
        MAX_ITEMS,
    )
}

/// Scripts whose steps succeed or fail, but never panic.
pub fn scripts_without_panics(release: Release) -> impl Strategy<Value = Vec<ItemScript>> {
    let calm = |act| match act {
        Act::Panic => Act::Err,
        act => act,
    };
    scripts(release).prop_map(move |scripts| {
        scripts
            .into_iter()
            .map(|script| ItemScript {
                acquire: calm(script.acquire),
                body: calm(script.body),
                release: calm(script.release),
            })
            .collect()
    })
}

// ---------------------------------------------------------------- the async harness

/// An acquire of the scripted resources, for the sequential and the concurrent
/// adapters alike.
pub trait ScriptedAcquire:
    AsyncAcquire<usize, Resource = Indexed<Resource>, Error = Fault, ReleaseError = Fault>
{
}

impl<A> ScriptedAcquire for A where
    A: AsyncAcquire<usize, Resource = Indexed<Resource>, Error = Fault, ReleaseError = Fault>
{
}

fn resource(tracker: &Tracker, index: usize) -> Resource {
    Resource {
        index,
        tracked: tracker.acquire(),
    }
}

impl Harness {
    /// A harness whose steps follow the scripts, each async step first waiting
    /// as `yields` says.
    pub fn with_yields(scripts: &[ItemScript], release: Release, yields: &[Yields]) -> Self {
        let wait = |step: fn(&Yields) -> usize| {
            let yields = yields.to_vec();
            move |index: usize| step(&yields[index])
        };
        let faults = plan(scripts, release)
            .yield_at(Step::Acquire, wait(|y| y.acquire))
            .yield_at(Step::Use, wait(|y| y.body))
            .yield_at(Step::Release, wait(|y| y.release));
        Self::with_plan(scripts.len(), faults)
    }

    /// The acquires started so far: `(item, how many calls had ended when its
    /// acquire started)`.
    pub fn started(&self) -> Vec<(usize, usize)> {
        let mut ended = 0;
        let mut started = Vec::new();
        for call in self.faults.calls() {
            match call {
                Call::Start(Step::Acquire, index) => started.push((index, ended)),
                Call::End(..) => ended += 1,
                _ => {}
            }
        }
        started
    }

    /// `async_bracket(acquire).release(release)`, wrapped by the plan.
    pub fn async_bracket_acquire(&self) -> impl ScriptedAcquire + use<> {
        let tracker = self.tracker();
        self.faults.acquire(
            async_bracket(async move |index: usize| Ok::<_, Infallible>(resource(&tracker, index)))
                .release(|resource: Resource| async move {
                    resource.tracked.release();
                    Ok::<_, Infallible>(())
                }),
        )
    }

    /// A plain async acquire closure (release by `Drop`), wrapped by the plan.
    pub fn async_drop_acquire(&self) -> impl ScriptedAcquire + use<> {
        let tracker = self.tracker();
        self.faults
            .acquire(async move |index: usize| Ok::<_, Infallible>(resource(&tracker, index)))
    }

    /// The async body, wrapped by the plan.
    pub fn async_body(
        &self,
    ) -> impl AsyncFnOnce(&mut Indexed<Resource>) -> Result<Used, Fault> + Clone + use<> {
        self.faults
            .async_body(async |resource: &mut Resource| Ok::<_, Infallible>(Used(resource.index)))
    }
}

/// Evaluates `$run` with `$acquire` bound to `$harness`'s async bracket or its
/// plain acquire closure (release by `Drop`), as the [`Release`] `$release` says.
/// A macro because the two acquires have different types.
#[allow(unused_macros)]
macro_rules! with_acquire {
    ($release:expr, $harness:expr, |$acquire:ident| $run:expr) => {
        match $release {
            $crate::common::Release::Bracket => {
                let $acquire = $harness.async_bracket_acquire();
                $run
            }
            $crate::common::Release::Drop => {
                let $acquire = $harness.async_drop_acquire();
                $run
            }
        }
    };
}

// Each test crate that includes this module uses a different part of it.
#[allow(unused_imports)]
pub(crate) use with_acquire;

// ---------------------------------------------------------------- polling by hand

/// How a run polled by hand went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    pub polls: usize,
    pub finished: bool,
}

/// Polls `future` with a no-op waker until it is ready, at most `cap` times;
/// then drops it.
pub fn poll_future<F: Future>(future: F, cap: usize) -> Polled {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for poll in 1..=cap {
        if future.as_mut().poll(&mut cx).is_ready() {
            return Polled {
                polls: poll,
                finished: true,
            };
        }
    }
    Polled {
        polls: cap,
        finished: false,
    }
}

/// Polls `stream` with a no-op waker until it ends, at most `cap` times in all
/// (each `Ready(Some(_))` and each `Pending` counts one); then drops it.
pub fn poll_stream<S: Stream>(stream: S, cap: usize) -> Polled {
    let mut stream = pin!(stream);
    let mut cx = Context::from_waker(Waker::noop());
    for poll in 1..=cap {
        if let Poll::Ready(None) = stream.as_mut().poll_next(&mut cx) {
            return Polled {
                polls: poll,
                finished: true,
            };
        }
    }
    Polled {
        polls: cap,
        finished: false,
    }
}
