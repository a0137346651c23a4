// An async closure as the acquire of an iterator adapter.
use loopscope::prelude::*;

fn main() {
    let _ = ["a", "bb"].into_iter().for_each_scoped(
        async |name: &str| Ok::<_, std::io::Error>(name.to_owned()),
        |owned| Ok::<_, std::io::Error>(owned.len()),
    );
}
