//! The adapters' futures and streams are `Send` when what they hold is, so that
//! they can be spawned on a multi-threaded runtime.
#![cfg(feature = "stream")]

use std::convert::Infallible;
use std::io;

use futures::stream::{self, Stream};
use loopscope::prelude::*;

fn assert_send<T: Send>(_: &T) {}

fn items() -> impl Stream<Item = u32> + Send {
    stream::iter(0..4)
}

#[test]
fn sequential_adapters_are_send() {
    assert_send(&items().for_each_scoped(
        async |n: u32| Ok::<_, io::Error>(n.to_string()),
        async |text| Ok::<_, io::Error>(text.len()),
    ));
    assert_send(&items().try_map_scoped(
        async_bracket(async |n: u32| Ok::<_, io::Error>(vec![n])).release(|buffer| async move {
            drop(buffer);
            Ok::<_, io::Error>(())
        }),
        async |buffer| Ok::<_, io::Error>(buffer.len()),
    ));
}

#[test]
fn concurrent_adapters_are_send() {
    assert_send(&items().for_each_scoped_concurrent(
        2,
        async |n: u32| Ok::<_, Infallible>(n),
        async |n| Ok::<_, Infallible>(*n + 1),
    ));
    assert_send(&items().try_map_scoped_concurrent(
        2,
        async |n: u32| Ok::<_, Infallible>(n),
        async |n| Ok::<_, Infallible>(*n + 1),
    ));
    assert_send(
        &items().try_map_scoped_unordered(
            2,
            async_bracket(async |n: u32| Ok::<_, Infallible>(n))
                .release(|_n| async { Ok::<_, Infallible>(()) }),
            async |n| Ok::<_, Infallible>(*n + 1),
        ),
    );
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adapter_runs_as_a_spawned_task() {
    let task = tokio::spawn(
        items().for_each_scoped_concurrent(
            2,
            async_bracket(async |n: u32| Ok::<_, io::Error>(n))
                .release(|_n| async { Ok::<_, io::Error>(()) })
                .spawn_on_cancel(),
            async |n| {
                tokio::task::yield_now().await;
                Ok::<_, io::Error>(*n)
            },
        ),
    );
    task.await.unwrap().unwrap();
}
