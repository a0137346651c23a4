//! A body's panic releases the resource and then resumes; a release that panics
//! while the body's panic unwinds does not abort the process.
#![cfg(feature = "testing")]

use std::convert::Infallible;
use std::panic::{self, AssertUnwindSafe};

use loopscope::prelude::*;
use loopscope::testing::Tracker;

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<not a string>")
}

#[test]
fn body_panic_releases_then_resumes() {
    let tracker = Tracker::new();
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        (0..3).for_each_scoped(
            |_| Ok::<_, Infallible>(tracker.acquire()),
            |resource| {
                if resource.id() == 1 {
                    panic!("body of item 1");
                }
                Ok::<_, Infallible>(())
            },
        )
    }))
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "body of item 1");
    assert_eq!(tracker.acquired(), [0, 1]);
    tracker.assert_released_exactly_once();
}

#[test]
fn release_panic_during_body_panic_does_not_abort() {
    let tracker = Tracker::new();
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        (0..3)
            .try_map_scoped(
                bracket(|_| Ok::<_, Infallible>(tracker.acquire())).release(|resource| {
                    resource.release();
                    panic!("release panics too");
                    #[allow(unreachable_code)]
                    Ok::<_, Infallible>(())
                }),
                |_resource| -> Result<(), Infallible> { panic!("the original panic") },
            )
            .next()
    }))
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "the original panic");
    tracker.assert_released_exactly_once();
}

/// The stream adapters whose resource is released by `Drop`: a body's panic
/// releases the resource before it reaches whoever catches it — also when the
/// adapter outlives the catch (a future or stream kept and polled by hand) —
/// and polled again, the adapter panics rather than hang.
#[cfg(feature = "stream")]
mod stream_drop_release {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use futures::Stream;
    use futures::stream;

    use super::*;

    /// Polls `future` once inside `catch_unwind`: its panic's message.
    fn panic_of_poll<F: Future>(future: std::pin::Pin<&mut F>) -> String {
        let mut cx = Context::from_waker(Waker::noop());
        let payload = panic::catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx).is_ready()))
            .expect_err("the poll panics");
        panic_message(&*payload).to_owned()
    }

    fn body_panics_at_1(resource: &mut loopscope::testing::Tracked) -> Result<(), Infallible> {
        if resource.id() == 1 {
            panic!("body of item 1");
        }
        Ok(())
    }

    #[test]
    fn for_each_scoped_releases_before_the_panic_is_caught() {
        let tracker = Tracker::new();
        let run = stream::iter(0..3).for_each_scoped(
            async |_| Ok::<_, Infallible>(tracker.acquire()),
            async |resource| body_panics_at_1(resource),
        );
        let mut run = pin!(run);
        assert_eq!(panic_of_poll(run.as_mut()), "body of item 1");
        // The adapter is still alive: the resource was released before the
        // panic resumed.
        assert_eq!(tracker.live(), 0);
        tracker.assert_released_exactly_once();
        assert_eq!(
            panic_of_poll(run.as_mut()),
            "a sequential scoped adapter was polled after a panic it resumed"
        );
    }

    #[test]
    fn try_fold_scoped_releases_before_the_panic_is_caught() {
        let tracker = Tracker::new();
        let run = stream::iter(0..3).try_fold_scoped(
            0,
            async |_| Ok::<_, Infallible>(tracker.acquire()),
            async |count, resource| body_panics_at_1(resource).map(|()| count + 1),
        );
        let mut run = pin!(run);
        assert_eq!(panic_of_poll(run.as_mut()), "body of item 1");
        assert_eq!(tracker.live(), 0);
        tracker.assert_released_exactly_once();
    }

    #[test]
    fn try_map_scoped_releases_before_the_panic_is_caught() {
        let tracker = Tracker::new();
        let mut results = pin!(stream::iter(0..3).try_map_scoped(
            async |_| Ok::<_, Infallible>(tracker.acquire()),
            async |resource| body_panics_at_1(resource),
        ));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            results.as_mut().poll_next(&mut cx),
            Poll::Ready(Some(Ok(())))
        ));
        let payload = panic::catch_unwind(AssertUnwindSafe(|| {
            results.as_mut().poll_next(&mut cx).is_ready()
        }))
        .expect_err("item 1's body panics");
        assert_eq!(panic_message(&*payload), "body of item 1");
        assert_eq!(tracker.live(), 0);
        tracker.assert_released_exactly_once();
        let payload = panic::catch_unwind(AssertUnwindSafe(|| {
            results.as_mut().poll_next(&mut cx).is_ready()
        }))
        .expect_err("polled again");
        assert_eq!(
            panic_message(&*payload),
            "`try_map_scoped` polled again after an item's body panicked"
        );
    }
}
