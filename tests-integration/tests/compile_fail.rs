// The expected errors list the other implementations of the traits, which
// depend on the features (`SpawnOnCancel` with `tokio`, `FaultyAcquire` with
// `testing`): the cases are pinned for `cargo test --all-features`.
#![cfg(all(feature = "stream", feature = "tokio", feature = "testing"))]
//! The compiler's messages for the common misuses of the adapters, pinned:
//! each `ui/*.rs` case must fail to compile with the error in its `.stderr`.
//!
//! - the crate's hints (`#[diagnostic::on_unimplemented]` on `Acquire`,
//!   `AsyncAcquire` and `SpawnAcquire`): a sync bracket or closure given to a
//!   stream adapter, an async bracket or closure given to an iterator adapter,
//!   an `async_bracket(acquire)` without its `.release(..)`;
//! - what rustc says, unchanged, where no trait of the crate is what fails: a
//!   body written `|c| async move { .. }` (with and without annotations), a
//!   sync body, a body that returns no `Result`. Bodies are bound by std's
//!   `AsyncFnOnce(&mut R) -> Result<T, E>`, the only kind of bound from which
//!   rustc infers the argument types of `async |c| ..`; a trait of the crate in
//!   its place could carry a hint, but would cost that inference. And
//!   `|c| async move { .. }` fails before any trait is checked: in inference
//!   (rustc does not deduce a sync closure's signature from an `AsyncFnOnce`
//!   bound) or, annotated, in the borrow checker (a sync closure cannot return
//!   a future that borrows its argument).
//!
//! `ui/tokio/` holds the cases of the spawned adapters, and
//! `ui/tokio/pass_*.rs` checks that bodies without annotations still compile,
//! with every adapter and inside `tokio::spawn`.
//!
//! trybuild builds the cases against this package's library (the empty
//! `src/lib.rs`), which passes the test's features on to `loopscope`.
//!
//! The `.stderr` files depend on the rustc version. They were written by
//! `TRYBUILD=overwrite cargo test -p loopscope-tests --all-features --test
//! compile_fail` with **rustc 1.95.0 (59807616e 2026-04-14)**, and are compared
//! only under that toolchain: another one (the MSRV, a nightly) skips the
//! comparison with a note, unless `LOOPSCOPE_UI_ANY_RUSTC=1` is set. After a
//! toolchain upgrade, regenerate them with the command above, read the diff,
//! and update the version here and in `PINNED_RUSTC`.

use std::process::Command;

/// The toolchain that wrote the `.stderr` files: `rustc --version`'s prefix.
const PINNED_RUSTC: &str = "rustc 1.95.0 ";

fn pinned_toolchain() -> bool {
    if std::env::var_os("LOOPSCOPE_UI_ANY_RUSTC").is_some() {
        return true;
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    if version.starts_with(PINNED_RUSTC) {
        true
    } else {
        eprintln!(
            "compile_fail: skipped, the .stderr files were written by {PINNED_RUSTC}and this is {}",
            version.trim()
        );
        false
    }
}

#[test]
fn misuses_are_refused_with_hints() {
    if !pinned_toolchain() {
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.compile_fail("tests/ui/tokio/[!p]*.rs");
    cases.pass("tests/ui/tokio/pass_*.rs");
}
