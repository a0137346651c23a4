//! How many cases each property test runs.
//!
//! Every `proptest!` block names its own default count, chosen so that
//! `cargo test` stays fast. When `LOOPSCOPE_PROPTEST_CASES` is set, it replaces
//! every one of those defaults at once: the extended proof run
//! (`scripts/proof-run.sh`) sets it to 10,000. (Proptest's own `PROPTEST_CASES`
//! cannot do this: an explicit count in a test's config overrides it.)
//!
//! Included by each property test file with `#[path = "common/cases.rs"]`, so it
//! does not pull the rest of `common` into files that don't use it.

use proptest::test_runner::Config;

/// The variable that overrides every property test's case count.
pub const VAR: &str = "LOOPSCOPE_PROPTEST_CASES";

/// Proptest's default configuration with `default` cases, or the count in
/// `LOOPSCOPE_PROPTEST_CASES` when that is set.
///
/// # Panics
///
/// When the variable is set to something other than a positive number: a typo
/// must not silently run the default count in a proof run.
#[must_use]
pub fn config(default: u32) -> Config {
    Config {
        cases: cases(default),
        ..Config::default()
    }
}

/// `default`, or the count in `LOOPSCOPE_PROPTEST_CASES` when that is set.
#[must_use]
pub fn cases(default: u32) -> u32 {
    match std::env::var(VAR) {
        Ok(text) => match text.trim().parse() {
            Ok(count) if count > 0 => count,
            _ => panic!("{VAR}={text:?} is not a positive number of cases"),
        },
        Err(_) => default,
    }
}
