//! Property tests of `for_each_scoped` against a model, for invariants 1–4 of the
//! design: at most one resource live, every resource released exactly once, every
//! error surfaced with its index (both errors kept when body and release fail),
//! the items handled in input order and nothing acquired after the first failure.
//!
//! Each item's acquire, body and release succeed, fail or panic as a generated
//! script says, injected by the `loopscope::testing` fault wrappers; see `common`
//! for the scripts, the model and the checks.
#![cfg(feature = "testing")]

#[path = "common/cases.rs"]
mod cases;

mod common;

use common::{
    Ending, Harness, ItemScript, Release, RunModel, catch, check_calls, check_resources, failure,
    model_for_each, release_is_called, scripts,
};
use loopscope::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Runs `for_each_scoped` over the scripted items and checks it against the model.
fn check(scripts: &[ItemScript], release: Release) -> Result<(), TestCaseError> {
    let h = Harness::new(scripts, release);
    let ending: Ending<()> = catch(|| match release {
        Release::Bracket => h
            .items()
            .for_each_scoped(h.bracket_acquire(), h.body())
            .map_err(failure),
        Release::Drop => h
            .items()
            .for_each_scoped(h.drop_acquire(), h.body())
            .map_err(failure),
    });

    let RunModel {
        ending: expected,
        events,
        acquired,
    } = model_for_each(scripts, release, release_is_called(release, true));
    prop_assert_eq!(
        ending,
        expected,
        "invariant 3: the error (step, index, both errors) or panic payload"
    );
    check_resources(&h, acquired)?;
    check_calls(&h, &events)
}

proptest! {
    #![proptest_config(cases::config(256))]

    /// With `bracket(acquire).release(release)`, where each of the three steps may
    /// succeed, fail or panic.
    #[test]
    fn matches_the_model_with_a_bracket(scripts in scripts(Release::Bracket)) {
        check(&scripts, Release::Bracket)?;
    }

    /// With a plain acquire closure: resources released by `Drop`.
    #[test]
    fn matches_the_model_with_release_by_drop(scripts in scripts(Release::Drop)) {
        check(&scripts, Release::Drop)?;
    }
}
