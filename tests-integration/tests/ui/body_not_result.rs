// A body that returns a value, not a `Result`.
use futures::stream;
use loopscope::prelude::*;

async fn run() {
    let _ = stream::iter(["a", "bb"])
        .for_each_scoped(
            async |name: &str| Ok::<_, std::io::Error>(name.to_owned()),
            async |owned| owned.len(),
        )
        .await;
}

fn main() {
    futures::executor::block_on(run());
}
