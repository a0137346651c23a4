//! [`ReleasePath`]: a sequential adapter built for both release paths — by
//! `Drop`, or guarded with an awaited release — that runs the one its
//! acquire's [`AsyncAcquire::RELEASE_IS_DROP`] names. (The concurrent adapters
//! run the guarded one for every acquire: the other buys them nothing.)
//!
//! The two paths are two types (each state machine holds only its own
//! states), so the adapter is an enum of them. Which variant it holds is known
//! at compile time, from the constant, and each `poll` dispatches on that
//! constant rather than on the variant: the other arm is a cold `unreachable!`
//! the optimiser keeps out of the way, where an `Either` polled per item costs
//! the sequential map five instructions (BENCHMARKS.md).

use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_util::Stream;
use pin_project_lite::pin_project;

use crate::AsyncAcquire;

/// The constant [`AsyncAcquire::RELEASE_IS_DROP`] of `A` for items `Item`, as
/// a type the adapters can carry.
pub(crate) struct ReleaseIsDrop<A, Item>(PhantomData<fn() -> (A, Item)>);

/// A type that names which release path an adapter runs.
pub(crate) trait Path {
    /// Whether the release is `Drop` alone.
    const RELEASE_IS_DROP: bool;
}

impl<A: AsyncAcquire<Item>, Item> Path for ReleaseIsDrop<A, Item> {
    const RELEASE_IS_DROP: bool = A::RELEASE_IS_DROP;
}

pin_project! {
    /// The adapter built for the release by `Drop` (`D`) or the guarded,
    /// awaited release (`G`), whichever `P` names.
    #[project = ReleasePathProj]
    pub(crate) enum ReleasePath<P, D, G> {
        ByDrop { #[pin] adapter: D, path: PhantomData<P> },
        Guarded { #[pin] adapter: G, path: PhantomData<P> },
    }
}

impl<P: Path, D, G> ReleasePath<P, D, G> {
    /// The adapter, as one of the two, pinned.
    #[inline]
    fn project_path(self: Pin<&mut Self>) -> Pinned<'_, D, G> {
        match (P::RELEASE_IS_DROP, self.project()) {
            (true, ReleasePathProj::ByDrop { adapter, .. }) => Pinned::ByDrop(adapter),
            (false, ReleasePathProj::Guarded { adapter, .. }) => Pinned::Guarded(adapter),
            _ => wrong_path(),
        }
    }
}

/// The adapter of a [`ReleasePath`], pinned.
enum Pinned<'a, D, G> {
    ByDrop(Pin<&'a mut D>),
    Guarded(Pin<&'a mut G>),
}

/// Unreachable: [`by_release!`] built the variant the constant names.
#[cold]
#[inline(never)]
fn wrong_path() -> ! {
    unreachable!("a ReleasePath holds the adapter of the path its constant names")
}

impl<P: Path, D, G> Future for ReleasePath<P, D, G>
where
    D: Future,
    G: Future<Output = D::Output>,
{
    type Output = D::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<D::Output> {
        match self.project_path() {
            Pinned::ByDrop(adapter) => adapter.poll(cx),
            Pinned::Guarded(adapter) => adapter.poll(cx),
        }
    }
}

impl<P: Path, D, G> Stream for ReleasePath<P, D, G>
where
    D: Stream,
    G: Stream<Item = D::Item>,
{
    type Item = D::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<D::Item>> {
        match self.project_path() {
            Pinned::ByDrop(adapter) => adapter.poll_next(cx),
            Pinned::Guarded(adapter) => adapter.poll_next(cx),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Self::ByDrop { adapter, .. } => adapter.size_hint(),
            Self::Guarded { adapter, .. } => adapter.size_hint(),
        }
    }
}

/// Builds an adapter for the release path `$path` names (a [`Path`] type,
/// usually `ReleaseIsDrop<A, Item>`): `$build!(by_drop)` or `$build!(guarded)`,
/// where `$build` is a local macro passing its argument on to `scope!`. Only
/// the one built is ever run; the `if` on a constant leaves the other out.
macro_rules! by_release {
    ($path:ty, $build:ident) => {
        if <$path as $crate::stream::release_path::Path>::RELEASE_IS_DROP {
            $crate::stream::release_path::ReleasePath::<$path, _, _>::ByDrop {
                adapter: $build!(by_drop),
                path: ::core::marker::PhantomData,
            }
        } else {
            $crate::stream::release_path::ReleasePath::<$path, _, _>::Guarded {
                adapter: $build!(guarded),
                path: ::core::marker::PhantomData,
            }
        }
    };
}
pub(crate) use by_release;
