// A body written `|c| async move { .. }` instead of `async |c| ..`. No trait of
// the crate fails here: rustc cannot infer the closure's argument type (it does
// not deduce a sync closure's signature from an `AsyncFnOnce` bound).
use futures::stream;
use loopscope::prelude::*;

async fn run() {
    let _ = stream::iter(["a", "bb"])
        .for_each_scoped(
            async |name: &str| Ok::<_, std::io::Error>(name.to_owned()),
            |owned| async move { Ok::<_, std::io::Error>(owned.len()) },
        )
        .await;
}

fn main() {
    futures::executor::block_on(run());
}
