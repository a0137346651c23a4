// A sync bracket given to a spawned adapter.
use futures::stream;
use loopscope::prelude::*;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = stream::iter(["a", "bb"])
        .for_each_scoped_spawned(
            2,
            bracket(|name: &str| Ok::<_, std::io::Error>(name.to_owned()))
                .release(|_owned| Ok::<_, std::io::Error>(())),
            async |owned| Ok::<_, std::io::Error>(owned.len()),
        )
        .await;
}
