//! One item's scope: acquire, use, release — the step every sync adapter repeats.

use scopeguard::ScopeGuard;

use crate::{Acquire, Outcome, ScopedError, trace};

/// The error type of a scope run with the acquire `A` and a body failing with `U`.
pub(crate) type ScopeError<A, Item, U> =
    ScopedError<<A as Acquire<Item>>::Error, U, <A as Acquire<Item>>::ReleaseError>;

/// Acquires the resource for `item`, lends it to `body`, and releases it before
/// returning — also when `body` panics, in which case the panic resumes after the
/// release.
#[inline]
pub(crate) fn run<Item, A, B, T, U>(
    acquire: &mut A,
    body: &mut B,
    item: Item,
    index: usize,
) -> Result<T, ScopeError<A, Item, U>>
where
    A: Acquire<Item>,
    B: FnMut(&mut A::Resource) -> Result<T, U>,
{
    trace::item_span!(span, index);
    trace::enter!(span);
    let resource = acquire.acquire(item).map_err(|source| {
        trace::acquire_failed!(span, index);
        ScopedError::Acquire { index, source }
    })?;
    trace::acquired!(span);

    // The guard only ever fires while `body` unwinds: on every other path it is
    // disarmed by `into_inner` below, and the release runs in the open, where its
    // error can be returned.
    // Guarding the resource alone (not a tuple with `acquire`) keeps the loop from
    // storing an extra pointer per item.
    let mut armed = scopeguard::guard(resource, |resource| {
        trace::body_panicked!(span, index);
        let fate = release_while_unwinding(acquire, resource);
        trace::released_after_panic!(span, &fate, index);
        drop(fate);
    });
    let used = body(&mut armed);
    let resource = ScopeGuard::into_inner(armed);
    trace::body_result!(span, &used, index);

    let released = acquire.release(resource, outcome_of(&used));
    trace::released!(span, &released, outcome_of(&used), index);
    conclude(used, released, index)
}

/// How a body that returned `used` ended, for its release.
#[inline]
pub(crate) fn outcome_of<T, U>(used: &Result<T, U>) -> Outcome {
    if used.is_ok() {
        Outcome::Completed
    } else {
        Outcome::Failed
    }
}

/// The result of an item's scope, from its body's result and its release's:
/// the body's value only if both succeeded, and every error kept.
#[inline]
pub(crate) fn conclude<T, EA, U, ER>(
    used: Result<T, U>,
    released: Result<(), ER>,
    index: usize,
) -> Result<T, ScopedError<EA, U, ER>> {
    match (used, released) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(source)) => Err(ScopedError::Release { index, source }),
        (Err(source), released) => Err(ScopedError::Use {
            index,
            source,
            release: released.err(),
        }),
    }
}

/// How a release run while the body's panic unwinds ended: its result, or
/// `Err(())` if it panicked too. Only the `tracing` feature looks at it: the
/// caller gets the body's panic, not a `Result`.
type Fate<E> = Result<Result<(), E>, ()>;

/// Releases a resource while the body's panic unwinds.
///
/// A panic escaping a destructor during unwinding aborts the process, so with
/// `std` a panicking release is caught and dropped: the body's panic is the one
/// that resumes. The release error has nowhere to go either, since the caller gets
/// the panic, not a `Result`.
#[cfg(feature = "std")]
#[cold]
fn release_while_unwinding<Item, A: Acquire<Item>>(
    acquire: &mut A,
    resource: A::Resource,
) -> Fate<A::ReleaseError> {
    let release = std::panic::AssertUnwindSafe(|| acquire.release(resource, Outcome::Panicked));
    std::panic::catch_unwind(release).map_err(drop)
}

/// Releases a resource while the body's panic unwinds.
///
/// Without `std` there is no `catch_unwind`: a release that panics here aborts, as
/// any destructor that panics during unwinding does.
#[cfg(not(feature = "std"))]
#[cold]
fn release_while_unwinding<Item, A: Acquire<Item>>(
    acquire: &mut A,
    resource: A::Resource,
) -> Fate<A::ReleaseError> {
    Ok(acquire.release(resource, Outcome::Panicked))
}
