// The same, annotated: a sync closure cannot return a future that borrows its
// argument. A borrow-checker error, which no trait of the crate can change.
use futures::stream;
use loopscope::prelude::*;

async fn run() {
    let _ = stream::iter(["a", "bb"])
        .for_each_scoped(
            async |name: &str| Ok::<_, std::io::Error>(name.to_owned()),
            |owned: &mut String| async move { Ok::<_, std::io::Error>(owned.len()) },
        )
        .await;
}

fn main() {
    futures::executor::block_on(run());
}
