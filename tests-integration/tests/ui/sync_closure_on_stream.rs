// A sync closure as the acquire of a stream adapter: use an async closure.
use futures::stream;
use loopscope::prelude::*;

async fn run() {
    let _ = stream::iter(["a", "bb"])
        .for_each_scoped(
            |name: &str| Ok::<_, std::io::Error>(name.to_owned()),
            async |owned| Ok::<_, std::io::Error>(owned.len()),
        )
        .await;
}

fn main() {
    futures::executor::block_on(run());
}
