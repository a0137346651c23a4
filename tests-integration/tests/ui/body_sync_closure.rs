// A sync body on a stream: rustc says its `Result` is not a future, and names
// the `AsyncFnOnce` bound of the body.
use futures::stream;
use loopscope::prelude::*;

async fn run() {
    let _ = stream::iter(["a", "bb"])
        .for_each_scoped(
            async |name: &str| Ok::<_, std::io::Error>(name.to_owned()),
            |owned: &mut String| Ok::<_, std::io::Error>(owned.len()),
        )
        .await;
}

fn main() {
    futures::executor::block_on(run());
}
