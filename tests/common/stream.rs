//! Shared by the property tests of the stream adapters, sequential and concurrent:
//! per-step waits counted in polls, the scripted [`Harness`] behind async acquire,
//! body and release closures, and hand-polling with a no-op waker for the
//! cancellation properties.
//!
//! The acquire, body and release first wait a generated number of polls (a future
//! that returns `Pending` that many times, waking itself) and then call the
//! scripted harness of the sync tests. Everything runs on one thread,
//! deterministically.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use futures::stream::Stream;
use futures::task::noop_waker_ref;
use loopscope::prelude::*;
use loopscope::{AsyncAcquire, ConcurrentAcquire};
use proptest::prelude::*;

use super::{
    AcquireFailed, BodyFailed, Harness, Item, ItemScript, MAX_ITEMS, Release, ReleaseFailed,
    Resource, Step, Used, scripts,
};

// ---------------------------------------------------------------- waiting

/// How many times each step of an item returns `Pending` before it calls the
/// harness.
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

/// A future that returns `Pending` `n` times, waking itself each time, then
/// `Ready(())`.
#[derive(Debug)]
pub struct YieldN(pub usize);

impl Future for YieldN {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            Poll::Ready(())
        } else {
            self.0 -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Scripts whose steps succeed or fail, but never panic.
pub fn scripts_without_panics(release: Release) -> impl Strategy<Value = Vec<ItemScript>> {
    let calm = |step| match step {
        Step::Panic => Step::Err,
        step => step,
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

impl Resource {
    /// The position of the item this resource was acquired for, so that an async
    /// body or release can look up how long to wait before it calls the harness.
    pub fn index(&self) -> usize {
        self.index
    }
}

/// An acquire of the scripted [`Resource`]s with release error `E`, for the
/// sequential and the concurrent adapters alike.
pub trait ScriptedAcquire<E>:
    AsyncAcquire<Item, Resource = Resource, Error = AcquireFailed, ReleaseError = E>
    + ConcurrentAcquire<Item, Resource = Resource, Error = AcquireFailed, ReleaseError = E>
{
}

impl<A, E> ScriptedAcquire<E> for A where
    A: AsyncAcquire<Item, Resource = Resource, Error = AcquireFailed, ReleaseError = E>
        + ConcurrentAcquire<Item, Resource = Resource, Error = AcquireFailed, ReleaseError = E>
{
}

/// The scripted [`Harness`], and a log of when each acquire *started*: the
/// harness logs each call when it completes (after its wait).
#[derive(Debug, Default)]
pub struct AsyncHarness {
    pub h: Harness,
    /// `(item, how many harness events had been logged when its acquire started)`.
    starts: RefCell<Vec<(usize, usize)>>,
}

impl AsyncHarness {
    pub fn new() -> Self {
        Self {
            h: Harness::new(),
            starts: RefCell::default(),
        }
    }

    fn start(&self, index: usize) {
        let logged = self.h.events().len();
        self.starts.borrow_mut().push((index, logged));
    }

    /// The acquires started so far: `(item, events logged before it started)`.
    pub fn started(&self) -> Vec<(usize, usize)> {
        self.starts.borrow().clone()
    }

    /// `async_bracket(acquire).release(release)`, both waiting as `yields` says
    /// and then following the script.
    pub fn bracket_acquire<'a>(
        &'a self,
        yields: &'a [Yields],
    ) -> impl ScriptedAcquire<ReleaseFailed> + 'a {
        async_bracket(async |item: Item| {
            self.start(item.0);
            YieldN(yields[item.0].acquire).await;
            self.h.acquire(item)
        })
        .release(move |resource: Resource| async move {
            YieldN(yields[resource.index()].release).await;
            // Logs `Release` when the release completes.
            self.h.release(resource)
        })
    }

    /// A plain async acquire closure: the resource is released by `Drop`.
    pub fn drop_acquire<'a>(
        &'a self,
        yields: &'a [Yields],
    ) -> impl ScriptedAcquire<Infallible> + 'a {
        async move |item: Item| {
            self.start(item.0);
            YieldN(yields[item.0].acquire).await;
            self.h.acquire(item)
        }
    }

    /// The async body: waits, then follows the script.
    pub fn body<'a>(
        &'a self,
        yields: &'a [Yields],
    ) -> impl AsyncFn(&mut Resource) -> Result<Used, BodyFailed> + 'a {
        async move |resource: &mut Resource| {
            YieldN(yields[resource.index()].body).await;
            self.h.body(resource)
        }
    }
}

/// Evaluates `$run` with `$acquire` bound to `$harness`'s async bracket or its
/// plain acquire closure (release by `Drop`), as the [`Release`] `$release` says.
/// A macro because the two acquires have different types.
#[allow(unused_macros)]
macro_rules! with_acquire {
    ($release:expr, $harness:expr, $yields:expr, |$acquire:ident| $run:expr) => {
        match $release {
            $crate::common::Release::Bracket => {
                let $acquire = $harness.bracket_acquire($yields);
                $run
            }
            $crate::common::Release::Drop => {
                let $acquire = $harness.drop_acquire($yields);
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
    let mut cx = Context::from_waker(noop_waker_ref());
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
    let mut cx = Context::from_waker(noop_waker_ref());
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
