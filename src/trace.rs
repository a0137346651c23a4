//! The `tracing` feature: a span per item, events for acquire, release and errors.
//!
//! Every scope — the sync one in `crate::scope` and the async `scope!` macro —
//! calls the macros below at its steps. With the feature on they create the span
//! and emit the events; with it off they expand to nothing (or to their future
//! argument, unchanged), so that the adapters compile to exactly the code they
//! were without the feature: not a field, a branch or a call more. Keep it so
//! when changing a scope: even a different type on a path the benches never run
//! (the output of `release_after_panic`) changes their instruction counts, so
//! check them with `benches/callgrind.sh` before and after.
//!
//! Names, fields and levels (the crate docs' `# Tracing` section tells users the
//! same; keep the two in step). Every span and event has the target `loopscope`.
//!
//! | what | level | fields |
//! | --- | --- | --- |
//! | span `item`, one per item, around its acquire, body and release | `DEBUG` | `index` |
//! | event `acquired` | `TRACE` | |
//! | event `released` | `TRACE` | `outcome` |
//! | event `acquire failed` | `WARN` | `index` |
//! | event `body failed` | `WARN` | `index` |
//! | event `release failed` | `WARN` | `index`, `outcome` |
//! | event `body panicked` | `ERROR` | `index` |
//! | event `release panicked` (caught while the body's panic unwinds) | `ERROR` | `index` |
//!
//! The failure events repeat the index, so that they say which item failed also
//! when a filter leaves the `DEBUG` span out. The error values themselves are not
//! recorded: the adapters put no `Debug` or `Display` bound on them (a feature
//! must not add bounds), and the caller gets every one of them anyway — except a
//! release's after a panic, which only the `release failed` event reports.
//!
//! The sync scope enters its span for the whole item, so events of the user's own
//! acquire, body and release are inside it. An async scope cannot hold a span
//! entered across an `.await`: it instruments the acquire, body and release
//! futures with the span instead, and gives its own events the span as explicit
//! parent. An item cancelled mid-way (its future dropped) emits no release
//! event: its span just closes.

/// `let $span = <the item span of item $index>;` — nothing without the feature.
#[cfg(feature = "tracing")]
macro_rules! item_span {
    ($span:ident, $index:expr) => {
        let $span = ::tracing::span!(
            target: "loopscope",
            ::tracing::Level::DEBUG,
            "item",
            index = $index
        );
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! item_span {
    ($span:ident, $index:expr) => {};
}

/// Enters `$span` until the end of the enclosing block (sync scopes only: a span
/// entered across an `.await` would leak into other tasks).
#[cfg(feature = "tracing")]
macro_rules! enter {
    ($span:ident) => {
        let _entered = $span.enter();
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! enter {
    ($span:ident) => {};
}

/// `$future`, instrumented with `$span` — `$future` itself without the feature.
#[cfg(feature = "tracing")]
// Used by the async scopes only.
#[cfg_attr(not(feature = "stream"), allow(unused_macros))]
macro_rules! instrument {
    ($span:ident, $future:expr) => {
        ::tracing::Instrument::instrument($future, ::core::clone::Clone::clone(&$span))
    };
}
#[cfg(not(feature = "tracing"))]
#[cfg_attr(not(feature = "stream"), allow(unused_macros))]
macro_rules! instrument {
    ($span:ident, $future:expr) => {
        $future
    };
}

/// An event in the item span `$span`, with target `loopscope`.
#[cfg(feature = "tracing")]
macro_rules! event {
    ($span:ident, $level:ident, $($rest:tt)+) => {
        ::tracing::event!(
            target: "loopscope",
            parent: &$span,
            ::tracing::Level::$level,
            $($rest)+
        )
    };
}

/// The event `acquired`.
#[cfg(feature = "tracing")]
macro_rules! acquired {
    ($span:ident) => {
        $crate::trace::event!($span, TRACE, "acquired")
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! acquired {
    ($span:ident) => {};
}

/// The event `acquire failed`.
#[cfg(feature = "tracing")]
macro_rules! acquire_failed {
    ($span:ident, $index:expr) => {
        $crate::trace::event!($span, WARN, index = $index, "acquire failed")
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! acquire_failed {
    ($span:ident, $index:expr) => {};
}

/// The event `body failed`.
#[cfg(feature = "tracing")]
#[cfg_attr(not(feature = "stream"), allow(unused_macros))]
macro_rules! body_failed {
    ($span:ident, $index:expr) => {
        $crate::trace::event!($span, WARN, index = $index, "body failed")
    };
}
#[cfg(not(feature = "tracing"))]
#[cfg_attr(not(feature = "stream"), allow(unused_macros))]
macro_rules! body_failed {
    ($span:ident, $index:expr) => {};
}

/// The event `body failed`, if the body's result `$used` (a `&Result`) is an
/// error.
#[cfg(feature = "tracing")]
macro_rules! body_result {
    ($span:ident, $used:expr, $index:expr) => {
        if ::core::result::Result::is_err($used) {
            $crate::trace::body_failed!($span, $index);
        }
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! body_result {
    ($span:ident, $used:expr, $index:expr) => {};
}

/// The event `body panicked`.
#[cfg(feature = "tracing")]
macro_rules! body_panicked {
    ($span:ident, $index:expr) => {
        $crate::trace::event!($span, ERROR, index = $index, "body panicked")
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! body_panicked {
    ($span:ident, $index:expr) => {};
}

/// The event `released` or `release failed`, from the release's result
/// `$released` (a `&Result`) and the `$outcome` it was given.
#[cfg(feature = "tracing")]
macro_rules! released {
    ($span:ident, $released:expr, $outcome:expr, $index:expr) => {
        match $released {
            ::core::result::Result::Ok(_) => {
                $crate::trace::event!($span, TRACE, outcome = ?$outcome, "released")
            }
            ::core::result::Result::Err(_) => $crate::trace::event!(
                $span,
                WARN,
                index = $index,
                outcome = ?$outcome,
                "release failed"
            ),
        }
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! released {
    ($span:ident, $released:expr, $outcome:expr, $index:expr) => {};
}

/// The events of a release run while the body's panic unwinds, from its fate
/// `$fate`: a `&Result<Result<(), ER>, ()>`, `Err` if the release panicked.
#[cfg(feature = "tracing")]
macro_rules! released_after_panic {
    ($span:ident, $fate:expr, $index:expr) => {
        match $fate {
            ::core::result::Result::Ok(released) => {
                $crate::trace::released!($span, released, $crate::Outcome::Panicked, $index)
            }
            ::core::result::Result::Err(()) => {
                $crate::trace::event!($span, ERROR, index = $index, "release panicked")
            }
        }
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! released_after_panic {
    ($span:ident, $fate:expr, $index:expr) => {};
}

/// For a release by `Drop` (the async `by_drop` scope): drops `$resource` and
/// emits `released` with `$outcome`. Without the feature, nothing: the resource
/// is then dropped where it goes out of scope, as it always was.
#[cfg(feature = "tracing")]
// Used by the async scopes only.
#[cfg_attr(not(feature = "stream"), allow(unused_macros))]
macro_rules! drop_released {
    ($span:ident, $resource:ident, $outcome:expr) => {
        ::core::mem::drop($resource);
        $crate::trace::event!($span, TRACE, outcome = ?$outcome, "released");
    };
}
#[cfg(not(feature = "tracing"))]
#[cfg_attr(not(feature = "stream"), allow(unused_macros))]
macro_rules! drop_released {
    ($span:ident, $resource:ident, $outcome:expr) => {};
}

#[cfg(feature = "tracing")]
pub(crate) use event;
pub(crate) use {
    acquire_failed, acquired, body_panicked, body_result, enter, item_span, released,
    released_after_panic,
};
// Used by the async scopes only.
#[cfg_attr(not(feature = "stream"), allow(unused_imports))]
pub(crate) use {body_failed, drop_released, instrument};
