// An `async_bracket(..).release(..)` given to an iterator adapter: use `bracket`,
// or make the iterator a stream.
use loopscope::prelude::*;

fn main() {
    let _ = ["a", "bb"].into_iter().for_each_scoped(
        async_bracket(async |name: &str| Ok::<_, std::io::Error>(name.to_owned()))
            .release(async |_owned| Ok::<_, std::io::Error>(())),
        |owned| Ok::<_, std::io::Error>(owned.len()),
    );
}
