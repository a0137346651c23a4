//! The adapters' basic paths, checked without the `testing` feature, so that
//! `cargo test --no-default-features` exercises the `no_std` build of the core
//! (whose panic path releases without `catch_unwind`).

use std::cell::Cell;
use std::convert::Infallible;
use std::panic::{self, AssertUnwindSafe};

use loopscope::prelude::*;

/// Counts live resources and the peak, with plain cells.
#[derive(Default)]
struct Counts {
    live: Cell<usize>,
    peak: Cell<usize>,
    released: Cell<usize>,
}

struct Resource<'a>(&'a Counts);

impl<'a> Resource<'a> {
    fn new(counts: &'a Counts) -> Self {
        counts.live.set(counts.live.get() + 1);
        counts.peak.set(counts.peak.get().max(counts.live.get()));
        Resource(counts)
    }
}

impl Drop for Resource<'_> {
    fn drop(&mut self) {
        self.0.live.set(self.0.live.get() - 1);
        self.0.released.set(self.0.released.get() + 1);
    }
}

#[test]
fn fail_fast_releases_the_failing_item_and_stops() {
    let counts = Counts::default();
    let result = (0..10).for_each_scoped(
        |n| Ok::<_, Infallible>((n, Resource::new(&counts))),
        |(n, _)| if *n == 4 { Err("four") } else { Ok(()) },
    );
    assert!(matches!(
        result,
        Err(ScopedError::Use {
            index: 4,
            source: "four",
            release: None
        })
    ));
    assert_eq!(
        (counts.peak.get(), counts.live.get(), counts.released.get()),
        (1, 0, 5)
    );
}

#[test]
fn both_errors_are_kept() {
    let result = [7].into_iter().for_each_scoped(
        bracket(|n: i32| Ok::<_, Infallible>(n)).release(|_| Err("release")),
        |_| Err::<(), _>("body"),
    );
    assert!(matches!(
        result,
        Err(ScopedError::Use {
            index: 0,
            source: "body",
            release: Some("release")
        })
    ));
}

#[test]
fn lazy_map_yields_every_item_in_order() {
    let counts = Counts::default();
    let pulled = Cell::new(0);
    let mut results = (0..5)
        .inspect(|_| pulled.set(pulled.get() + 1))
        .try_map_scoped(
            |n| {
                if n == 2 {
                    Err(n)
                } else {
                    Ok((n, Resource::new(&counts)))
                }
            },
            |(n, _)| Ok::<_, Infallible>(*n * 10),
        );
    assert_eq!(
        (pulled.get(), counts.peak.get()),
        (0, 0),
        "nothing before next()"
    );
    assert_eq!(results.size_hint(), (5, Some(5)));
    assert!(matches!(results.next(), Some(Ok(0))));
    assert!(matches!(results.next(), Some(Ok(10))));
    assert!(matches!(
        results.next(),
        Some(Err(ScopedError::Acquire {
            index: 2,
            source: 2
        }))
    ));
    drop(results);
    assert_eq!(pulled.get(), 3);
    assert_eq!(
        (counts.peak.get(), counts.live.get(), counts.released.get()),
        (1, 0, 2)
    );
}

#[test]
fn body_panic_releases_before_resuming() {
    let counts = Counts::default();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        (0..3).for_each_scoped(
            |n| Ok::<_, Infallible>((n, Resource::new(&counts))),
            |(n, _)| -> Result<(), Infallible> {
                assert_ne!(*n, 1, "body panics at item 1");
                Ok(())
            },
        )
    }));
    assert!(caught.is_err());
    assert_eq!(
        (counts.peak.get(), counts.live.get(), counts.released.get()),
        (1, 0, 2)
    );
}
