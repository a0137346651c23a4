use core::fmt;
use core::iter::FusedIterator;

use crate::Acquire;
use crate::scope::{self, ScopeError};

/// The lazy iterator of [`try_map_scoped`](crate::ScopedIterExt::try_map_scoped):
/// one scope — acquire, use, release — per `next()`.
///
/// # Examples
///
/// ```
/// use loopscope::prelude::*;
/// use loopscope::TryMapScoped;
///
/// let lengths: TryMapScoped<_, _, _> = ["ab", "c"]
///     .into_iter()
///     .try_map_scoped(|s: &str| Ok::<_, ()>(s.to_owned()), |s| Ok::<_, ()>(s.len()));
/// assert_eq!(lengths.map(Result::unwrap).collect::<Vec<_>>(), [2, 1]);
/// ```
#[must_use = "iterator adaptors are lazy and do nothing unless consumed"]
pub struct TryMapScoped<I, A, B> {
    iter: I,
    acquire: A,
    body: B,
    /// The position in the input of the next item.
    index: usize,
}

impl<I, A, B> TryMapScoped<I, A, B> {
    pub(crate) fn new(iter: I, acquire: A, body: B) -> Self {
        Self {
            iter,
            acquire,
            body,
            index: 0,
        }
    }
}

impl<I: fmt::Debug, A, B> fmt::Debug for TryMapScoped<I, A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMapScoped")
            .field("iter", &self.iter)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<I, A, B, T, EU> Iterator for TryMapScoped<I, A, B>
where
    I: Iterator,
    A: Acquire<I::Item>,
    B: FnMut(&mut A::Resource) -> Result<T, EU>,
{
    type Item = Result<T, ScopeError<A, I::Item, EU>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.iter.next()?;
        // Counted before the scope runs, so that after a panic in this item the
        // next one still gets its own index.
        let index = self.index;
        self.index += 1;
        Some(scope::run(&mut self.acquire, &mut self.body, item, index))
    }

    /// Exactly one result per input item: the inner iterator's hint.
    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

impl<I, A, B, T, EU> ExactSizeIterator for TryMapScoped<I, A, B>
where
    I: ExactSizeIterator,
    A: Acquire<I::Item>,
    B: FnMut(&mut A::Resource) -> Result<T, EU>,
{
}

impl<I, A, B, T, EU> FusedIterator for TryMapScoped<I, A, B>
where
    I: FusedIterator,
    A: Acquire<I::Item>,
    B: FnMut(&mut A::Resource) -> Result<T, EU>,
{
}
