// The hints must not cost inference: an async body with no annotations
// compiles with every adapter, also inside `tokio::spawn`.
use futures::stream::{self, StreamExt};
use loopscope::prelude::*;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let open = async |name: &str| Ok::<_, std::io::Error>(name.to_owned());
    let closing = async_bracket(open).release(async |_conn| Ok::<_, std::io::Error>(()));
    stream::iter(["a", "bb"])
        .for_each_scoped(open, async |conn| Ok::<_, std::io::Error>(conn.len()))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let config = String::from("db");
        let open = async |name: &str| Ok::<_, std::io::Error>(format!("{config}/{name}"));
        let closing = async_bracket(open).release(async |_conn| Ok::<_, std::io::Error>(()));
        stream::iter(["a", "bb"])
            .for_each_scoped_concurrent(2, closing, async |conn| Ok::<_, std::io::Error>(conn.len()))
            .await
            .unwrap();
        let lengths: Vec<_> = stream::iter(["a", "bb"])
            .try_map_scoped(open, async |conn| Ok::<_, std::io::Error>(conn.len()))
            .collect()
            .await;
        assert_eq!(lengths.len(), 2);
    });
    task.await.unwrap();
    stream::iter(["a", "bb"])
        .for_each_scoped_spawned(
            2,
            async |name: &str| Ok::<_, std::io::Error>(name.to_owned()),
            async |conn| Ok::<_, std::io::Error>(conn.len()),
        )
        .await
        .unwrap();
    stream::iter(["a", "bb"])
        .for_each_scoped(closing, async |conn| Ok::<_, std::io::Error>(conn.len()))
        .await
        .unwrap();
}
