#![cfg(all(feature = "tracing", feature = "stream"))]
//! The `tracing` feature: every scoped adapter, sync and async, sequential and
//! concurrent, puts each item in a span `item` with its `index`, and emits an
//! event at each step — `acquired`, `acquire failed`, `body failed`,
//! `body panicked`, `released`, `release failed`, `release panicked` — inside it.
//!
//! A capturing [`Layer`] records every span and event with the index of the item
//! span it belongs to; each test installs it with
//! [`tracing::subscriber::with_default`], so that tests running in parallel do
//! not see each other's events. A property test runs random fault scripts (each
//! item's acquire, body and release succeed or fail) and checks the log against
//! what the adapter did.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/watchdog.rs"]
mod watchdog;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::executor::block_on;
use futures::stream::{self, StreamExt as _};
use loopscope::prelude::*;
use proptest::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt as _};
use tracing_subscriber::registry::{LookupSpan, Registry};
use watchdog::watchdog;

// ---------------------------------------------------------------- the capturing layer

/// One thing the subscriber saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Record {
    /// A new span, with its target, name and `index` field.
    Span {
        target: String,
        name: &'static str,
        index: Option<u64>,
    },
    /// An event, with the `index` of the item span it is in (`item`), and its
    /// own fields.
    Event {
        item: Option<u64>,
        target: String,
        level: Level,
        message: String,
        index: Option<u64>,
        outcome: Option<String>,
    },
}

/// The `index` of an item span, kept in the span's extensions.
struct SpanIndex(u64);

/// Records the fields this test looks at.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    index: Option<u64>,
    outcome: Option<String>,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "index" {
            self.index = Some(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = Some(format!("{value:?}")),
            "outcome" => self.outcome = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

/// A layer that appends every span and event to a shared log.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Record>>>);

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(index), Some(span)) = (fields.index, ctx.span(id)) {
            span.extensions_mut().insert(SpanIndex(index));
        }
        self.0.lock().unwrap().push(Record::Span {
            target: attrs.metadata().target().to_owned(),
            name: attrs.metadata().name(),
            index: fields.index,
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        // The event's span, explicit parent or the current one, and the nearest
        // item span around it (a user's own span may sit in between).
        let item = ctx.event_span(event).and_then(|span| {
            span.scope()
                .find_map(|span| span.extensions().get::<SpanIndex>().map(|index| index.0))
        });
        self.0.lock().unwrap().push(Record::Event {
            item,
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            message: fields.message.unwrap_or_default(),
            index: fields.index,
            outcome: fields.outcome,
        });
    }
}

/// Runs `f` with the capturing layer as this thread's subscriber, and returns
/// its result and the log.
fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<Record>) {
    let capture = Capture::default();
    let subscriber = Registry::default().with(capture.clone());
    let result = tracing::subscriber::with_default(subscriber, f);
    let log = capture.0.lock().unwrap().clone();
    (result, log)
}

// ---------------------------------------------------------------- expected records

/// An event of the crate, as the tests spell it: `(item, level, message, index
/// field, outcome field)`.
type Ev = (
    Option<u64>,
    Level,
    &'static str,
    Option<u64>,
    Option<&'static str>,
);

/// An event as logged: an [`Ev`] with owned strings.
type Logged = (Option<u64>, Level, String, Option<u64>, Option<String>);

fn acquired(i: u64) -> Ev {
    (Some(i), Level::TRACE, "acquired", None, None)
}
fn acquire_failed(i: u64) -> Ev {
    (Some(i), Level::WARN, "acquire failed", Some(i), None)
}
fn body_failed(i: u64) -> Ev {
    (Some(i), Level::WARN, "body failed", Some(i), None)
}
fn body_panicked(i: u64) -> Ev {
    (Some(i), Level::ERROR, "body panicked", Some(i), None)
}
fn released(i: u64, outcome: &'static str) -> Ev {
    (Some(i), Level::TRACE, "released", None, Some(outcome))
}
fn release_failed(i: u64, outcome: &'static str) -> Ev {
    (
        Some(i),
        Level::WARN,
        "release failed",
        Some(i),
        Some(outcome),
    )
}
fn release_panicked(i: u64) -> Ev {
    (Some(i), Level::ERROR, "release panicked", Some(i), None)
}
fn user(i: u64, message: &'static str) -> Ev {
    (Some(i), Level::INFO, message, None, None)
}

/// The `index` of every item span, in creation order; panics on any other span.
fn item_spans(log: &[Record]) -> Vec<u64> {
    log.iter()
        .filter_map(|record| match record {
            Record::Span {
                target,
                name,
                index,
            } => {
                assert_eq!((target.as_str(), *name), ("loopscope", "item"));
                Some(index.expect("an item span has an index"))
            }
            Record::Event { .. } => None,
        })
        .collect()
}

/// Every event, as an [`Ev`]-like tuple; the crate's must have target
/// `loopscope`, the user's (level `INFO`) come from this test.
fn events(log: &[Record]) -> Vec<Logged> {
    log.iter()
        .filter_map(|record| match record {
            Record::Event {
                item,
                target,
                level,
                message,
                index,
                outcome,
            } => {
                if *level != Level::INFO {
                    assert_eq!(target, "loopscope", "{message}");
                }
                Some((*item, *level, message.clone(), *index, outcome.clone()))
            }
            Record::Span { .. } => None,
        })
        .collect()
}

fn owned(expected: &[Ev]) -> Vec<Logged> {
    expected
        .iter()
        .map(|&(item, level, message, index, outcome)| {
            (
                item,
                level,
                message.to_owned(),
                index,
                outcome.map(str::to_owned),
            )
        })
        .collect()
}

/// The events of item `i` only, in order.
fn events_of(log: &[Record], i: u64) -> Vec<Logged> {
    events(log)
        .into_iter()
        .filter(|event| event.0 == Some(i))
        .collect()
}

/// Returns `Pending` once (waking itself), so that concurrent items interleave.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn yield_once() -> YieldOnce {
    YieldOnce(false)
}

// ---------------------------------------------------------------- sync adapters

#[test]
fn sync_for_each_scoped_spans_and_events() {
    let (result, log) = capture(|| {
        [0_u64, 1, 2, 3].into_iter().for_each_scoped(
            bracket(|n: u64| Ok::<_, &str>(n)).release(|n: u64| {
                tracing::info!("releasing");
                if n == 1 { Err("close failed") } else { Ok(()) }
            }),
            |n| {
                tracing::info!("in body");
                if *n == 2 { Err("broken") } else { Ok(()) }
            },
        )
    });
    // Item 1's release fails, and `for_each_scoped` stops there.
    assert!(matches!(result, Err(ScopedError::Release { index: 1, .. })));
    assert_eq!(item_spans(&log), [0, 1]);
    assert_eq!(
        events(&log),
        owned(&[
            acquired(0),
            user(0, "in body"),
            user(0, "releasing"),
            released(0, "Completed"),
            acquired(1),
            user(1, "in body"),
            user(1, "releasing"),
            release_failed(1, "Completed"),
        ])
    );
}

#[test]
fn sync_try_map_scoped_every_step_failing() {
    let (results, log) = capture(|| {
        [0_u64, 1, 2, 3]
            .into_iter()
            .try_map_scoped(
                bracket(|n: u64| if n == 1 { Err("refused") } else { Ok(n) })
                    .release(|n: u64| if n == 3 { Err("close failed") } else { Ok(()) }),
                |n| if *n >= 2 { Err("broken") } else { Ok(*n) },
            )
            .collect::<Vec<_>>()
    });
    assert_eq!(results.len(), 4);
    assert_eq!(item_spans(&log), [0, 1, 2, 3]);
    assert_eq!(
        events(&log),
        owned(&[
            acquired(0),
            released(0, "Completed"),
            acquire_failed(1),
            acquired(2),
            body_failed(2),
            released(2, "Failed"),
            acquired(3),
            body_failed(3),
            release_failed(3, "Failed"),
        ])
    );
}

#[test]
fn sync_release_panic_after_a_body_panic_is_reported() {
    let (caught, log) = capture(|| {
        catch_unwind(AssertUnwindSafe(|| {
            [0_u64].into_iter().for_each_scoped(
                bracket(|n: u64| Ok::<_, ()>(n))
                    .release(|_n: u64| -> Result<(), ()> { panic!("release panics too") }),
                |_n| -> Result<(), ()> { panic!("body panics") },
            )
        }))
    });
    assert!(caught.is_err());
    assert_eq!(
        events(&log),
        owned(&[acquired(0), body_panicked(0), release_panicked(0)])
    );
}

#[test]
fn sync_release_error_after_a_panic_is_reported() {
    let (caught, log) = capture(|| {
        catch_unwind(AssertUnwindSafe(|| {
            [0_u64].into_iter().for_each_scoped(
                bracket(|n: u64| Ok::<_, ()>(n)).release(|_n: u64| Err::<(), _>("lost")),
                |_n| -> Result<(), ()> { panic!("body panics") },
            )
        }))
    });
    assert!(caught.is_err());
    assert_eq!(
        events(&log),
        owned(&[acquired(0), body_panicked(0), release_failed(0, "Panicked"),])
    );
}

// ---------------------------------------------------------------- stream adapters

#[test]
fn stream_for_each_scoped_with_async_release() {
    let _watchdog = watchdog("stream_for_each_scoped_with_async_release");
    let (result, log) = capture(|| {
        block_on(
            stream::iter([0_u64, 1, 2]).for_each_scoped(
                async_bracket(async |n: u64| {
                    tracing::info!("acquiring");
                    yield_once().await;
                    Ok::<_, &str>(n)
                })
                .release(|_n: u64| async move {
                    yield_once().await;
                    tracing::info!("releasing");
                    Ok::<_, &str>(())
                }),
                async |n| {
                    yield_once().await;
                    tracing::info!("in body");
                    if *n == 2 { Err("broken") } else { Ok(()) }
                },
            ),
        )
    });
    assert!(matches!(result, Err(ScopedError::Use { index: 2, .. })));
    assert_eq!(item_spans(&log), [0, 1, 2]);
    let mut expected = Vec::new();
    for i in 0..3 {
        expected.extend([user(i, "acquiring"), acquired(i), user(i, "in body")]);
        if i == 2 {
            expected.push(body_failed(i));
        }
        expected.push(user(i, "releasing"));
        expected.push(released(i, if i == 2 { "Failed" } else { "Completed" }));
    }
    assert_eq!(events(&log), owned(&expected));
}

#[test]
fn stream_try_map_scoped_with_release_by_drop() {
    let _watchdog = watchdog("stream_try_map_scoped_with_release_by_drop");
    let (results, log) = capture(|| {
        block_on(
            stream::iter([0_u64, 1, 2])
                .try_map_scoped(
                    async |n: u64| if n == 1 { Err("refused") } else { Ok(n) },
                    async |n| {
                        tracing::info!("in body");
                        if *n == 2 { Err("broken") } else { Ok(*n) }
                    },
                )
                .collect::<Vec<_>>(),
        )
    });
    assert_eq!(results.len(), 3);
    assert_eq!(item_spans(&log), [0, 1, 2]);
    assert_eq!(
        events(&log),
        owned(&[
            acquired(0),
            user(0, "in body"),
            released(0, "Completed"),
            acquire_failed(1),
            acquired(2),
            user(2, "in body"),
            body_failed(2),
            released(2, "Failed"),
        ])
    );
}

#[test]
fn stream_body_panic_is_reported_on_both_release_paths() {
    let _watchdog = watchdog("stream_body_panic_is_reported_on_both_release_paths");
    // Release by `Drop`.
    let (caught, log) = capture(|| {
        catch_unwind(AssertUnwindSafe(|| {
            block_on(stream::iter([0_u64]).for_each_scoped(
                async |n: u64| Ok::<_, ()>(n),
                async |_n| -> Result<(), ()> { panic!("body panics") },
            ))
        }))
    });
    assert!(caught.is_err());
    assert_eq!(
        events(&log),
        owned(&[acquired(0), body_panicked(0), released(0, "Panicked")])
    );

    // An async release that fails.
    let (caught, log) = capture(|| {
        catch_unwind(AssertUnwindSafe(|| {
            block_on(
                stream::iter([0_u64]).for_each_scoped(
                    async_bracket(async |n: u64| Ok::<_, ()>(n))
                        .release(|_n: u64| async { Err::<(), _>("lost") }),
                    async |_n| -> Result<(), ()> { panic!("body panics") },
                ),
            )
        }))
    });
    assert!(caught.is_err());
    assert_eq!(
        events(&log),
        owned(&[acquired(0), body_panicked(0), release_failed(0, "Panicked")])
    );
}

#[test]
fn concurrent_items_each_have_their_own_span() {
    let _watchdog = watchdog("concurrent_items_each_have_their_own_span");
    let (results, log) = capture(|| {
        block_on(
            stream::iter(0_u64..6)
                .try_map_scoped_concurrent(
                    3,
                    async_bracket(async |n: u64| {
                        yield_once().await;
                        if n == 4 { Err("refused") } else { Ok(n) }
                    })
                    .release(|n: u64| async move {
                        yield_once().await;
                        tracing::info!("releasing");
                        if n == 5 { Err("close failed") } else { Ok(()) }
                    }),
                    async |n| {
                        yield_once().await;
                        tracing::info!("in body");
                        if *n == 3 { Err("broken") } else { Ok(*n) }
                    },
                )
                .collect::<Vec<_>>(),
        )
    });
    assert_eq!(results.len(), 6);
    let mut spans = item_spans(&log);
    spans.sort_unstable();
    assert_eq!(spans, [0, 1, 2, 3, 4, 5]);
    // The items interleave: check each one's events, in order.
    for i in 0..6 {
        let expected = match i {
            4 => vec![acquire_failed(4)],
            3 => vec![
                acquired(3),
                user(3, "in body"),
                body_failed(3),
                user(3, "releasing"),
                released(3, "Failed"),
            ],
            5 => vec![
                acquired(5),
                user(5, "in body"),
                user(5, "releasing"),
                release_failed(5, "Completed"),
            ],
            _ => vec![
                acquired(i),
                user(i, "in body"),
                user(i, "releasing"),
                released(i, "Completed"),
            ],
        };
        assert_eq!(events_of(&log, i), owned(&expected), "item {i}");
    }
    assert!(events(&log).iter().all(|event| event.0.is_some()));
}

#[test]
fn concurrent_for_each_reports_the_failing_index() {
    let _watchdog = watchdog("concurrent_for_each_reports_the_failing_index");
    let (result, log) = capture(|| {
        block_on(stream::iter(0_u64..4).for_each_scoped_concurrent(
            2,
            async |n: u64| Ok::<_, &str>(n),
            async |n| {
                yield_once().await;
                if *n == 1 { Err("broken") } else { Ok(()) }
            },
        ))
    });
    assert!(matches!(
        result.map_err(loopscope::Failures::into_first),
        Err(ScopedError::Use { index: 1, .. })
    ));
    let failures: Vec<_> = events(&log)
        .into_iter()
        .filter(|event| event.1 == Level::WARN)
        .collect();
    assert_eq!(failures, owned(&[body_failed(1)]));
}

#[test]
fn failure_events_name_the_item_when_spans_are_filtered_out() {
    // Only `WARN` and above: no `DEBUG` item span, yet each failure carries its
    // index.
    let capture = Capture::default();
    let subscriber = Registry::default().with(capture.clone().with_filter(LevelFilter::WARN));
    tracing::subscriber::with_default(subscriber, || {
        [0_u64, 1, 2]
            .into_iter()
            .try_map_scoped(
                |n: u64| if n == 1 { Err("refused") } else { Ok(n) },
                |n| if *n == 2 { Err("broken") } else { Ok(()) },
            )
            .for_each(drop);
    });
    let log = capture.0.lock().unwrap().clone();
    assert_eq!(item_spans(&log), [] as [u64; 0]);
    assert_eq!(
        events(&log),
        [
            (
                None,
                Level::WARN,
                "acquire failed".to_owned(),
                Some(1),
                None
            ),
            (None, Level::WARN, "body failed".to_owned(), Some(2), None),
        ]
    );
}

// ---------------------------------------------------------------- property test

/// One item's script: whether its acquire, body and release succeed.
#[derive(Debug, Clone, Copy)]
struct Script {
    acquire: bool,
    body: bool,
    release: bool,
}

fn scripts() -> impl Strategy<Value = Vec<Script>> {
    proptest::collection::vec(
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(acquire, body, release)| Script {
            acquire,
            body,
            release,
        }),
        0..8,
    )
}

/// The events item `i` of `script` must emit; `by_drop` when the release is
/// `Drop` (it cannot fail).
fn expected_item(i: u64, script: Script, by_drop: bool) -> Vec<Ev> {
    if !script.acquire {
        return vec![acquire_failed(i)];
    }
    let mut expected = vec![acquired(i)];
    let outcome = if script.body {
        "Completed"
    } else {
        expected.push(body_failed(i));
        "Failed"
    };
    expected.push(if by_drop || script.release {
        released(i, outcome)
    } else {
        release_failed(i, outcome)
    });
    expected
}

/// The events of `try_map_scoped` (which goes through every item) in order.
fn expected_all(scripts: &[Script], by_drop: bool) -> Vec<Ev> {
    (0_u64..)
        .zip(scripts)
        .flat_map(|(i, &script)| expected_item(i, script, by_drop))
        .collect()
}

/// The events of `for_each_scoped`, which stops after the first failing item.
fn expected_until_failure(scripts: &[Script], by_drop: bool) -> (Vec<Ev>, usize) {
    let mut expected = Vec::new();
    for (i, &script) in (0_u64..).zip(scripts) {
        expected.extend(expected_item(i, script, by_drop));
        if !(script.acquire && script.body && (by_drop || script.release)) {
            return (expected, i as usize + 1);
        }
    }
    (expected, scripts.len())
}

proptest! {
    #![proptest_config(cases::config(256))]

    #[test]
    fn sync_events_match_the_script(scripts in scripts()) {
        let s = &scripts;
        let acquire = || {
            bracket(move |i: usize| if s[i].acquire { Ok(i) } else { Err(()) })
                .release(move |i: usize| if s[i].release { Ok(()) } else { Err(()) })
        };
        let body = |i: &mut usize| if s[*i].body { Ok(()) } else { Err(()) };
        let (_, log) = capture(|| (0..s.len()).try_map_scoped(acquire(), body).count());
        prop_assert_eq!(item_spans(&log), (0..scripts.len() as u64).collect::<Vec<_>>());
        prop_assert_eq!(events(&log), owned(&expected_all(&scripts, false)));

        let (_, log) = capture(|| (0..s.len()).for_each_scoped(acquire(), body));
        let (expected, items) = expected_until_failure(&scripts, false);
        prop_assert_eq!(item_spans(&log), (0..items as u64).collect::<Vec<_>>());
        prop_assert_eq!(events(&log), owned(&expected));
    }

    #[test]
    fn stream_events_match_the_script(scripts in scripts()) {
        let _watchdog = watchdog("stream_events_match_the_script");
        let s = &scripts;
        let acquire = async |i: usize| {
            yield_once().await;
            if s[i].acquire { Ok(i) } else { Err(()) }
        };
        let release = |i: usize| async move {
            yield_once().await;
            if s[i].release { Ok(()) } else { Err(()) }
        };
        let body = async |i: &mut usize| {
            yield_once().await;
            if s[*i].body { Ok(()) } else { Err(()) }
        };
        let all: Vec<u64> = (0..scripts.len() as u64).collect();

        // Sequential, with an async release and with release by `Drop`.
        let (_, log) = capture(|| block_on(
            stream::iter(0..s.len()).try_map_scoped(async_bracket(acquire).release(release), body).count()
        ));
        prop_assert_eq!(item_spans(&log), all.clone());
        prop_assert_eq!(events(&log), owned(&expected_all(s, false)));
        let (_, log) = capture(|| block_on(
            stream::iter(0..s.len()).try_map_scoped(acquire, body).count()
        ));
        prop_assert_eq!(item_spans(&log), all.clone());
        prop_assert_eq!(events(&log), owned(&expected_all(s, true)));
        let (_, log) = capture(|| block_on(
            stream::iter(0..s.len()).for_each_scoped(async_bracket(acquire).release(release), body)
        ));
        let (expected, items) = expected_until_failure(s, false);
        prop_assert_eq!(item_spans(&log), all[..items].to_vec());
        prop_assert_eq!(events(&log), owned(&expected));

        // Concurrent: each item's events in order, items interleaved.
        for by_drop in [false, true] {
            let (_, log) = if by_drop {
                capture(|| block_on(
                    stream::iter(0..s.len()).try_map_scoped_unordered(3, acquire, body).count()
                ))
            } else {
                capture(|| block_on(
                    stream::iter(0..s.len())
                        .try_map_scoped_unordered(3, async_bracket(acquire).release(release), body)
                        .count()
                ))
            };
            let mut spans = item_spans(&log);
            spans.sort_unstable();
            prop_assert_eq!(spans, all.clone());
            prop_assert_eq!(events(&log).len(), expected_all(s, by_drop).len());
            for (i, &script) in (0_u64..).zip(s) {
                prop_assert_eq!(events_of(&log, i), owned(&expected_item(i, script, by_drop)));
            }
        }
    }
}

// ---------------------------------------------------------------- spawned adapters

/// The spawned adapters run each item's scope on a worker thread of their own:
/// the caller's subscriber (here a thread-local default, as in tests) must
/// follow it there, or their items would log nothing.
#[cfg(feature = "tokio")]
#[test]
fn spawned_items_log_to_the_callers_subscriber() {
    let _watchdog = watchdog("spawned_items_log_to_the_callers_subscriber");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("build a runtime");
    let (results, log) = capture(|| {
        runtime.block_on(async {
            stream::iter(0..4u64)
                .try_map_scoped_spawned(
                    2,
                    async |item: u64| Ok::<_, ()>(item),
                    async |item| {
                        tracing::info!("in body");
                        if *item == 2 { Err(()) } else { Ok(*item) }
                    },
                )
                .collect::<Vec<_>>()
                .await
        })
    });
    assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 3);
    let items: Vec<_> = log
        .iter()
        .filter_map(|record| match record {
            Record::Span {
                name: "item",
                index,
                ..
            } => *index,
            _ => None,
        })
        .collect();
    assert_eq!(items.len(), 4, "one item span per item: {log:?}");
    for item in 0..4 {
        // The body's own event, inside the item's span, and the adapter's.
        let events = |message: &str| {
            log.iter()
                .filter(|record| {
                    matches!(record, Record::Event { item: Some(i), message: m, .. }
                        if *i == item && m == message)
                })
                .count()
        };
        assert_eq!(events("in body"), 1, "item {item}: {log:?}");
        assert_eq!(events("acquired"), 1, "item {item}: {log:?}");
    }
    assert!(
        log.iter().any(|record| matches!(record,
            Record::Event { item: Some(2), message, index: Some(2), .. } if message == "body failed")),
        "{log:?}"
    );
}
