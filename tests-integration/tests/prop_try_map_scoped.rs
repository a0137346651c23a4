//! Property tests of `try_map_scoped` against a model, for invariants 1–4 of the
//! design: at most one resource live, every resource released exactly once (also
//! when the consumer stops early and drops the iterator), every error surfaced with
//! its index (both errors kept when body and release fail), one result per item in
//! input order, and nothing acquired — nor pulled from the input — before `next()`.
//!
//! Each item's acquire, body and release succeed, fail or panic as a generated
//! script says, injected by the `loopscope::testing` fault wrappers; a panic out of `next()` is caught and the consumer goes on. See
//! `common` for the scripts, the model and the checks.
#![cfg(feature = "testing")]

#[path = "common/cases.rs"]
mod cases;

mod common;

use common::{
    Ending, Error, Harness, ItemScript, Release, Used, catch, check_calls, check_resources,
    failure, model_try_map, release_is_called, scripts, scripts_and_calls,
};
use loopscope::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Calls `next()` `calls` times (catching injected panics and going on), checking
/// after each call the result, the calls made so far and that nothing is live;
/// then drops the iterator and checks the resources.
fn consume(
    harness: &Harness,
    mut results: impl Iterator<Item = Result<Used, Error>>,
    scripts: &[ItemScript],
    release: Release,
    calls: usize,
) -> Result<(), TestCaseError> {
    // Lazy: nothing acquired, nothing pulled from the input, before `next()`.
    check_calls(harness, &[])?;
    prop_assert!(
        harness.tracker().acquired().is_empty(),
        "invariant 4: acquired before the first next()"
    );

    let model = |calls| model_try_map(scripts, release, release_is_called(release, true), calls);
    for (call, expected) in model(calls).yields.iter().enumerate() {
        let ending: Option<Ending<Used>> = match catch(|| results.next()) {
            Ok(next) => next.map(|result| Ok(result.map_err(failure))),
            Err(injected) => Some(Err(injected)),
        };
        prop_assert_eq!(
            &ending,
            expected,
            "invariants 3 and 4: next() call {} yields item {}'s result (None past the end)",
            call,
            call
        );
        // Each next() handles exactly one item, and releases it before returning.
        check_calls(harness, &model(call + 1).events)?;
        prop_assert_eq!(
            harness.tracker().live(),
            0,
            "invariant 2: a resource live after next() call {}",
            call
        );
    }
    drop(results);
    check_resources(harness, model(calls).acquired)
}

/// Runs `try_map_scoped` over the scripted items and checks it against the model.
fn check(scripts: &[ItemScript], release: Release, calls: usize) -> Result<(), TestCaseError> {
    let h = Harness::new(scripts, release);
    match release {
        Release::Bracket => {
            let results = h.items().try_map_scoped(h.bracket_acquire(), h.body());
            consume(&h, results, scripts, release, calls)
        }
        Release::Drop => {
            let results = h.items().try_map_scoped(h.drop_acquire(), h.body());
            consume(&h, results, scripts, release, calls)
        }
    }
}

proptest! {
    #![proptest_config(cases::config(256))]

    /// Drained to the end (and one `next()` more, which yields `None`), with
    /// `bracket(acquire).release(release)` and each step succeeding, failing or
    /// panicking.
    #[test]
    fn drained_matches_the_model_with_a_bracket(scripts in scripts(Release::Bracket)) {
        let calls = scripts.len() + 1;
        check(&scripts, Release::Bracket, calls)?;
    }

    /// Drained to the end, with a plain acquire closure (release by `Drop`).
    #[test]
    fn drained_matches_the_model_with_release_by_drop(scripts in scripts(Release::Drop)) {
        let calls = scripts.len() + 1;
        check(&scripts, Release::Drop, calls)?;
    }

    /// The consumer calls `next()` 0 to `len` times, then drops the iterator:
    /// nothing is left live, and no item beyond those asked for was touched.
    #[test]
    fn stopped_early_leaves_nothing_live_with_a_bracket(
        (scripts, calls) in scripts_and_calls(Release::Bracket)
    ) {
        check(&scripts, Release::Bracket, calls)?;
    }

    /// The same, with release by `Drop`.
    #[test]
    fn stopped_early_leaves_nothing_live_with_release_by_drop(
        (scripts, calls) in scripts_and_calls(Release::Drop)
    ) {
        check(&scripts, Release::Drop, calls)?;
    }
}
