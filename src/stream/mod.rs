//! Scoped adapters for every [`Stream`].

mod scope;
mod try_map_scoped;

use core::future::Future;
use core::pin::pin;

use futures_util::{Stream, StreamExt as _};

use self::scope::AsyncScopeError;
use self::try_map_scoped::TryMapScoped;
use crate::AsyncAcquire;

/// Scoped-resource adapters on every [`Stream`]: each item acquires a resource
/// asynchronously, lends it to an async body, and awaits its release before the
/// next item is touched.
///
/// Brought into scope by `use loopscope::prelude::*;`. Needs the `stream` feature
/// (on by default).
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub trait ScopedStreamExt: Stream + Sized {
    /// For each item, acquires a resource, lends it to the async `body`, and
    /// awaits its release before the next item; stops at the first error.
    ///
    /// Similar to `while let Some(item) = stream.next().await { .. }` with an
    /// acquire, a body and a release written out, but the release may be async
    /// and may fail ([`async_bracket`](crate::async_bracket)`(..).release(..)`),
    /// its error reaches the caller, and every error says which item failed. At
    /// most one resource is live at any time.
    ///
    /// - `acquire` is any [`AsyncAcquire`]: an async closure
    ///   `AsyncFnMut(Item) -> Result<R, EA>` (release by `Drop`), or
    ///   `async_bracket(acquire).release(release)`.
    /// - `body` is an async closure lent the resource as `&mut R`, returning
    ///   `Result<T, EU>`; the value `T` is discarded.
    ///
    /// When the returned future completes — `Ok` or `Err` — every release has
    /// completed. If `body` panics, the resource's release is awaited and then
    /// the panic resumes. If the future is dropped mid-item (a timeout, a
    /// `select!`), the resource is released by its `Drop`.
    ///
    /// # Errors
    ///
    /// The first failure, as a [`ScopedError`](crate::ScopedError) with the item's
    /// index; nothing is acquired after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let mut log = Vec::new();
    /// let result = stream::iter(["ok", "broken", "never"])
    ///     .for_each_scoped(
    ///         async |name: &str| Ok::<_, io::Error>(name.to_owned()),
    ///         async |connection| {
    ///             log.push(connection.clone());
    ///             if connection == "broken" {
    ///                 return Err(io::Error::other("reset by peer"));
    ///             }
    ///             Ok(())
    ///         },
    ///     )
    ///     .await;
    /// assert!(matches!(result, Err(ScopedError::Use { index: 1, .. })));
    /// assert_eq!(log, ["ok", "broken"]); // fail-fast: "never" was not acquired
    /// # });
    /// ```
    #[inline]
    fn for_each_scoped<A, B, T, EU>(
        self,
        mut acquire: A,
        mut body: B,
    ) -> impl Future<Output = Result<(), AsyncScopeError<A, Self::Item, EU>>>
    where
        A: AsyncAcquire<Self::Item>,
        B: AsyncFnMut(&mut A::Resource) -> Result<T, EU>,
    {
        async move {
            let mut stream = pin!(self);
            let mut index = 0;
            while let Some(item) = stream.next().await {
                scope::run(&mut acquire, &mut body, item, index).await?;
                index += 1;
            }
            Ok(())
        }
    }

    /// Maps each item through its own async scope: every item acquires one
    /// resource, lends it to the async `body`, awaits its release, and yields
    /// `body`'s result.
    ///
    /// Similar to `stream.then(async |x| { .. })` with an acquire, a body and a
    /// release written out, but the release may be async and may fail, and every
    /// error carries the item's index. Unlike
    /// [`for_each_scoped`](Self::for_each_scoped) it does not stop at an error:
    /// each input item yields one `Result`, in input order. Nothing is acquired
    /// before the stream is polled; a result is yielded only once its release has
    /// completed; and a consumer that drops the stream mid-item releases the
    /// resource by its `Drop`.
    ///
    /// `acquire` and `body` are as for [`for_each_scoped`](Self::for_each_scoped).
    /// The stream is not `Unpin`: pin it (`std::pin::pin!`) to call `next()` on it.
    ///
    /// # Panics
    ///
    /// If `body` panics, the release is awaited and the panic resumes out of
    /// `poll_next`; polling the stream again after that panics too.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::pin::pin;
    /// use futures::stream::{self, StreamExt};
    /// use loopscope::prelude::*;
    ///
    /// # futures::executor::block_on(async {
    /// let mut results = pin!(stream::iter(["4", "four", "99"]).try_map_scoped(
    ///     async |text: &str| text.parse::<u8>(),
    ///     async |n| n.checked_mul(3).ok_or("overflow"),
    /// ));
    /// assert_eq!(results.next().await.unwrap().ok(), Some(12));
    /// assert!(matches!(results.next().await, Some(Err(ScopedError::Acquire { index: 1, .. }))));
    /// assert!(matches!(results.next().await, Some(Err(ScopedError::Use { index: 2, .. }))));
    /// assert!(results.next().await.is_none());
    /// # });
    /// ```
    #[inline]
    fn try_map_scoped<A, B, T, EU>(
        self,
        acquire: A,
        body: B,
    ) -> impl Stream<Item = Result<T, AsyncScopeError<A, Self::Item, EU>>>
    where
        A: AsyncAcquire<Self::Item>,
        B: AsyncFnMut(&mut A::Resource) -> Result<T, EU>,
    {
        TryMapScoped::new(
            self,
            acquire,
            body,
            try_map_scoped::step::<Self::Item, A, B, T, EU>,
        )
    }
}

impl<St: Stream> ScopedStreamExt for St {}
