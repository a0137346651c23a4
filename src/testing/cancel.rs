//! Cancellation at every poll point: drop a future (or a stream) after each
//! possible number of polls, and check what it left behind each time.
//!
//! The check runs right after the drop, so it sees what the drop released
//! *synchronously*. That is all of it for the adapters that run their scopes
//! inside the future they return, not for the spawned adapters (feature
//! `tokio`), whose scopes run on a worker thread that releases their resources
//! shortly after the drop: see "Spawned adapters" at [`cancel_at_every_poll`].

use std::convert::Infallible;
use std::future::Future;
#[cfg(feature = "stream")]
use std::task::Poll;
use std::task::{Context, Waker};

/// The most polls a full run may take; beyond it the future is taken to wait on
/// something that a do-nothing waker never wakes (a timer, a socket).
const MAX_POLLS: usize = 10_000;

/// Drops a fresh future after every possible number of polls, and calls `check`
/// after each drop; returns `n`, the number of polls a full run takes.
///
/// For `k = 0, 1, 2, …`, `make` builds the future, which is polled `k` times
/// (with a waker that does nothing), then dropped, then `check(k)` runs: at
/// `k = 0` the future was never polled, and each `k < n` cancels it at one of
/// its `n` poll points (each `.await` that returned `Pending`). The last run,
/// `k = n`, is the one that completes: it is dropped and checked too. So `check`
/// sees every way the future can end — a typical check is that nothing is left
/// live, `tracker.live() == 0`.
///
/// `make` must build the same future each time, one that makes progress when it
/// is polled again (as [`yield_n`](super::yield_n) and the fault wrappers'
/// delays do, and channels or locks woken by the future itself); a future that
/// waits on a timer or on I/O never completes this way. `make` is called
/// `n + 1` times; the runs poll `(n + 1)(n + 2) / 2` times in all.
///
/// # Spawned adapters
///
/// `check` runs right after the drop, so it sees only what the drop released
/// *synchronously*. The spawned adapters (`try_map_scoped_spawned` and
/// `for_each_scoped_spawned`, feature `tokio`) run their scopes on a worker
/// thread: after a drop that thread releases what the scopes held shortly
/// after, not before the drop returns, so a check such as
/// `tracker.live() == 0` made at once fails now and then. For them, wait for
/// the releases in `check` before checking — poll the tracker until
/// `live() == 0`, with a timeout that fails the check.
///
/// The scopes also make progress on that thread whether or not the future is
/// polled, so the `k`-th poll is not the same point in every run, and `n`
/// varies from call to call. Their first item must be pulled inside a tokio
/// runtime: enter one around the call.
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # fn main() {
/// use std::convert::Infallible;
/// use std::time::{Duration, Instant};
/// use futures::stream;
/// use loopscope::prelude::*;
/// use loopscope::testing::{Tracker, cancel_at_every_poll, yield_n};
///
/// let runtime = tokio::runtime::Runtime::new().unwrap();
/// let _inside = runtime.enter();
/// let tracker = Tracker::new();
/// cancel_at_every_poll(
///     || {
///         let tracker = tracker.clone();
///         stream::iter(0..3).for_each_scoped_spawned(
///             2,
///             async move |_item: i32| Ok::<_, Infallible>(tracker.acquire()),
///             async |_resource| Ok::<_, Infallible>(yield_n(1).await),
///         )
///     },
///     |_polls| {
///         // The worker thread releases what the drop left shortly after it.
///         let deadline = Instant::now() + Duration::from_secs(5);
///         while tracker.live() > 0 && Instant::now() < deadline {
///             std::thread::sleep(Duration::from_millis(1));
///         }
///         assert_eq!(tracker.live(), 0, "not released within 5 s of the drop");
///     },
/// );
/// tracker.assert_released_exactly_once();
/// # }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
///
/// # Panics
///
/// When the future has not completed after 10,000 polls. A panic in `make`,
/// in a poll or in `check` propagates.
///
/// # Examples
///
/// A sequential adapter, cancelled at each of its awaits, leaves nothing live and
/// releases each resource exactly once:
///
/// ```
/// # #[cfg(feature = "stream")]
/// # fn main() {
/// use std::convert::Infallible;
/// use futures::stream::{self, StreamExt};
/// use loopscope::prelude::*;
/// use loopscope::testing::{Faults, Step, Tracker, cancel_at_every_poll};
///
/// let tracker = Tracker::new();
/// // Every step waits a poll, so that there is a poll point inside each of them.
/// let faults = Faults::new()
///     .yield_at(Step::Acquire, |_| 1)
///     .yield_at(Step::Use, |_| 1)
///     .yield_at(Step::Release, |_| 1);
/// let polls = cancel_at_every_poll(
///     || {
///         stream::iter(0..3).for_each_scoped(
///             faults.acquire(
///                 async_bracket(async |_| Ok::<_, Infallible>(tracker.acquire()))
///                     .release(|resource| async move { Ok::<_, Infallible>(resource.release()) }),
///             ),
///             faults.async_body(async |_resource| Ok::<_, Infallible>(())),
///         )
///     },
///     |_polls| {
///         assert_eq!(tracker.live(), 0);
///         assert!(tracker.peak() <= 1);
///     },
/// );
/// assert_eq!(polls, 3 * 3 + 1); // a wait in each step of each item, and the last poll
/// tracker.assert_released_exactly_once();
/// # }
/// # #[cfg(not(feature = "stream"))]
/// # fn main() {}
/// ```
pub fn cancel_at_every_poll<F: Future>(
    make: impl FnMut() -> F,
    mut check: impl FnMut(usize),
) -> usize {
    let checked = try_cancel_at_every_poll(make, |polls| {
        check(polls);
        Ok::<(), Infallible>(())
    });
    match checked {
        Ok(polls) => polls,
        Err(never) => match never {},
    }
}

/// [`cancel_at_every_poll`] with a check that returns `Result`: stops at the
/// first `Err`, and returns it.
///
/// As there, `check` sees only what a drop released synchronously; for the
/// spawned adapters, wait for their releases first (see
/// [Spawned adapters](cancel_at_every_poll#spawned-adapters)).
///
/// # Errors
///
/// The first error `check` returns.
///
/// # Examples
///
/// A future that leaks a resource (here with `mem::forget`) once it has been
/// polled twice is caught:
///
/// ```
/// use loopscope::testing::{Tracker, try_cancel_at_every_poll, yield_n};
///
/// let tracker = Tracker::new();
/// let leaky = || async {
///     let resource = tracker.acquire();
///     yield_n(1).await;
///     std::mem::forget(resource);
///     yield_n(1).await;
/// };
/// let failed = try_cancel_at_every_poll(leaky, |polls| {
///     if tracker.live() == 0 { Ok(()) } else { Err(polls) }
/// });
/// assert_eq!(failed, Err(2)); // dropped after 2 polls: one resource left live
/// ```
pub fn try_cancel_at_every_poll<F: Future, E>(
    mut make: impl FnMut() -> F,
    check: impl FnMut(usize) -> Result<(), E>,
) -> Result<usize, E> {
    every_poll(
        || {
            // Boxed so that the run can own it; one allocation per run.
            let mut future = Box::pin(make());
            move |cx: &mut Context<'_>| future.as_mut().poll(cx).is_ready()
        },
        check,
    )
}

/// [`cancel_at_every_poll`] for a stream: each run polls it `k` times (each
/// `poll_next` that yields an item or returns `Pending` counts one), or until it
/// ends; returns the number of polls a full run takes, the one that returns
/// `Ready(None)` included.
///
/// As with [`cancel_at_every_poll`], `check` sees only what a drop released
/// synchronously; for `try_map_scoped_spawned`, wait for its releases first
/// (see [Spawned adapters](cancel_at_every_poll#spawned-adapters)).
///
/// # Panics
///
/// As [`cancel_at_every_poll`].
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use futures::stream::{self, StreamExt};
/// use loopscope::prelude::*;
/// use loopscope::testing::{Faults, Step, Tracker, cancel_stream_at_every_poll};
///
/// let tracker = Tracker::new();
/// let faults = Faults::new().yield_at(Step::Use, |index| index);
/// let polls = cancel_stream_at_every_poll(
///     || {
///         stream::iter(0..4).try_map_scoped_concurrent(
///             2,
///             faults.acquire(async |_| Ok::<_, Infallible>(tracker.acquire())),
///             faults.async_body(async |_resource| Ok::<_, Infallible>(())),
///         )
///     },
///     |_polls| assert_eq!(tracker.live(), 0),
/// );
/// assert!(polls > 4);
/// assert!(tracker.peak() <= 2);
/// tracker.assert_released_exactly_once();
/// ```
#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub fn cancel_stream_at_every_poll<S: futures_util::Stream>(
    make: impl FnMut() -> S,
    mut check: impl FnMut(usize),
) -> usize {
    let checked = try_cancel_stream_at_every_poll(make, |polls| {
        check(polls);
        Ok::<(), Infallible>(())
    });
    match checked {
        Ok(polls) => polls,
        Err(never) => match never {},
    }
}

/// [`cancel_stream_at_every_poll`] with a check that returns `Result`: stops at
/// the first `Err`, and returns it.
///
/// As there, `check` sees only what a drop released synchronously (see
/// [Spawned adapters](cancel_at_every_poll#spawned-adapters)).
///
/// # Errors
///
/// The first error `check` returns.
///
/// # Examples
///
/// ```
/// use futures::stream::{self, StreamExt};
/// use loopscope::testing::try_cancel_stream_at_every_poll;
///
/// let polls = try_cancel_stream_at_every_poll(|| stream::iter([1, 2]), |_| Ok::<_, ()>(()));
/// assert_eq!(polls, Ok(3)); // two items, then the end
/// ```
#[cfg(feature = "stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub fn try_cancel_stream_at_every_poll<S: futures_util::Stream, E>(
    mut make: impl FnMut() -> S,
    check: impl FnMut(usize) -> Result<(), E>,
) -> Result<usize, E> {
    every_poll(
        || {
            let mut stream = Box::pin(make());
            move |cx: &mut Context<'_>| matches!(stream.as_mut().poll_next(cx), Poll::Ready(None))
        },
        check,
    )
}

/// The engine of the four functions: `start` builds a run, a closure that polls
/// it once and says whether it is done; the run is dropped with the closure.
fn every_poll<P, E>(
    mut start: impl FnMut() -> P,
    mut check: impl FnMut(usize) -> Result<(), E>,
) -> Result<usize, E>
where
    P: FnMut(&mut Context<'_>) -> bool,
{
    for polls in 0..=MAX_POLLS {
        let finished = polls_to_finish(start(), polls);
        check(polls)?;
        if finished {
            return Ok(polls);
        }
    }
    panic!(
        "cancel_at_every_poll: the future did not complete within {MAX_POLLS} polls; \
         does it wait on a timer or on I/O, which the do-nothing waker never wakes?"
    )
}

/// Polls a run at most `cap` times, and says whether it finished. The run (and
/// so the future) is dropped on return.
fn polls_to_finish(mut poll: impl FnMut(&mut Context<'_>) -> bool, cap: usize) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    (0..cap).any(|_| poll(&mut cx))
}
