// A sync `bracket(..).release(..)` given to a stream adapter: use `async_bracket`.
use futures::stream;
use loopscope::prelude::*;

async fn run() {
    let _ = stream::iter(["a", "bb"])
        .for_each_scoped(
            bracket(|name: &str| Ok::<_, std::io::Error>(name.to_owned()))
                .release(|_owned| Ok::<_, std::io::Error>(())),
            async |owned| Ok::<_, std::io::Error>(owned.len()),
        )
        .await;
}

fn main() {
    futures::executor::block_on(run());
}
