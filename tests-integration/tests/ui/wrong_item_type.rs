// A sync bracket whose acquire takes `&&PathBuf` on an iterator of `&PathBuf`
// (the `&&str` of `["a"].iter()` copied to a `Vec<PathBuf>`): the hint names
// the item type the acquire must take.
use std::fs::File;
use std::path::PathBuf;
use loopscope::prelude::*;

fn main() {
    let paths = vec![PathBuf::from("a.log")];
    let _ = paths.iter().for_each_scoped(
        bracket(|path: &&PathBuf| File::open(path)).release(|file: File| file.sync_all()),
        |_file| Ok::<_, std::io::Error>(()),
    );
}
