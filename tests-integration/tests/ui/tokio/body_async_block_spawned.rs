// `|c| async move { .. }` as the body of a spawned adapter: the same inference
// error as for the other adapters; `SpawnBody`'s hint is not reached.
use futures::stream;
use loopscope::prelude::*;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = stream::iter(["a", "bb"])
        .for_each_scoped_spawned(
            2,
            async |name: &str| Ok::<_, std::io::Error>(name.to_owned()),
            |owned| async move { Ok::<_, std::io::Error>(owned.len()) },
        )
        .await;
}
