// `async_bracket(acquire)` without `.release(..)` would leave the resource to
// `Drop` unnoticed: refused, with the two ways to write it.
use futures::stream;
use loopscope::prelude::*;

async fn run() {
    let _ = stream::iter(["a", "bb"])
        .for_each_scoped(
            async_bracket(async |name: &str| Ok::<_, std::io::Error>(name.to_owned())),
            async |owned| Ok::<_, std::io::Error>(owned.len()),
        )
        .await;
}

fn main() {
    futures::executor::block_on(run());
}
