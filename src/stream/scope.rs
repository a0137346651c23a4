//! One item's async scope: acquire, use, release — the step every sequential
//! stream adapter repeats.

use std::panic::{self, AssertUnwindSafe};

use futures_util::FutureExt as _;

use crate::scope::{conclude, outcome_of};
use crate::{AsyncAcquire, Outcome, ScopedError};

/// The error type of an async scope run with the acquire `A` and a body failing
/// with `U`.
pub(crate) type AsyncScopeError<A, Item, U> =
    ScopedError<<A as AsyncAcquire<Item>>::Error, U, <A as AsyncAcquire<Item>>::ReleaseError>;

/// Acquires the resource for `item`, lends it to `body`, and awaits its release
/// before returning — also when `body` panics, in which case the panic resumes
/// after the release.
///
/// If this future is dropped mid-way, the resource (held in its state, or moved
/// into the pending release future) is released by its `Drop`.
pub(crate) async fn run<Item, A, B, T, U>(
    acquire: &mut A,
    body: &mut B,
    item: Item,
    index: usize,
) -> Result<T, AsyncScopeError<A, Item, U>>
where
    A: AsyncAcquire<Item>,
    B: AsyncFnMut(&mut A::Resource) -> Result<T, U>,
{
    let mut resource = acquire
        .acquire(item)
        .await
        .map_err(|source| ScopedError::Acquire { index, source })?;

    let used = match AssertUnwindSafe(body(&mut resource)).catch_unwind().await {
        Ok(used) => used,
        Err(panic) => {
            // The release is awaited, but its own panic or error has nowhere to go:
            // the caller gets the body's panic.
            let release = async { acquire.release(resource, Outcome::Panicked).await };
            drop(AssertUnwindSafe(release).catch_unwind().await);
            panic::resume_unwind(panic)
        }
    };
    let released = acquire.release(resource, outcome_of(&used)).await;
    conclude(used, released, index)
}
