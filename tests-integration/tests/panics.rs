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
