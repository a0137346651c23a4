//! Empty: the integration tests of `loopscope` are in `tests/`.
//!
//! This library exists for trybuild (`tests/compile_fail.rs`). trybuild builds
//! its ui cases in a project of its own, which depends on the tested package's
//! *library* with the features enabled for the test (`stream`, `tokio`, ...),
//! and through it on `loopscope` with the same features. A package without a
//! library passes no feature on, and the cases would see a `loopscope` without
//! its `stream` adapters.
