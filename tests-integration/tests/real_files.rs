//! The adapters on real files and real descriptors.
//!
//! The descriptor test runs in a child process: it lowers the soft
//! `RLIMIT_NOFILE` to 64, shows that hoarding 10,000 opened files with `collect`
//! fails with `EMFILE`, and that `for_each_scoped` reads them all with at most one
//! more descriptor open than before the loop. Counting `/proc/self/fd` is only
//! reliable in a process that runs nothing else, and the lowered limit must not
//! reach the other tests; hence the child, which is this test binary re-run on
//! that one test with `--test-threads=1`.
#![cfg(all(target_os = "linux", feature = "testing"))]

use std::convert::Infallible;
use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use loopscope::prelude::*;
use loopscope::testing::open_fds;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Set (to the directory of the files) in the child process only.
const CHILD_DIR_VAR: &str = "LOOPSCOPE_REAL_FILES_CHILD_DIR";
/// The name of the test the child re-runs; `--exact` matches it in full.
const DESCRIPTOR_TEST: &str = "hoarding_hits_emfile_but_for_each_scoped_holds_one_descriptor";
/// Printed by the child as its last line, so that the parent can tell a child
/// that passed from one whose test filter matched nothing.
const CHILD_DONE: &str = "real_files child: all checks passed";

const FILES: usize = 10_000;
const SOFT_LIMIT: u64 = 64;

fn file_name(index: usize) -> String {
    format!("{index:05}.log")
}

/// What file `index` holds: a line or two, of a length that varies by file.
fn contents(index: usize) -> String {
    let mut text = format!("file {index}: GET /orders/{} 200\n", index * 7);
    if index % 3 == 0 {
        text.push_str("file continues on a second line\n");
    }
    text
}

fn paths_in(dir: &Path, count: usize) -> Vec<PathBuf> {
    (0..count).map(|i| dir.join(file_name(i))).collect()
}

#[test]
fn hoarding_hits_emfile_but_for_each_scoped_holds_one_descriptor() {
    match std::env::var_os(CHILD_DIR_VAR) {
        Some(dir) => descriptor_checks_in_child(Path::new(&dir)),
        None => run_child(),
    }
}

/// The parent: writes the files, runs the child on them, checks it passed.
fn run_child() {
    let dir = tempfile::tempdir().expect("create a temp dir");
    for (index, path) in paths_in(dir.path(), FILES).iter().enumerate() {
        fs::write(path, contents(index)).expect("write a test file");
    }

    let output = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args([
            "--exact",
            DESCRIPTOR_TEST,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VAR, dir.path())
        .output()
        .expect("run the test binary as a child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(CHILD_DONE),
        "the child process failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status,
    );
    // Shown with `--nocapture`.
    println!("{stdout}");
}

/// The child: lowers the descriptor limit, then checks both loops.
fn descriptor_checks_in_child(dir: &Path) {
    let paths = paths_in(dir, FILES);

    let limit = getrlimit(Resource::Nofile);
    let soft = limit
        .maximum
        .map_or(SOFT_LIMIT, |hard| hard.min(SOFT_LIMIT));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: limit.maximum,
        },
    )
    .expect("lower the soft RLIMIT_NOFILE");
    assert_eq!(getrlimit(Resource::Nofile).current, Some(soft));
    println!(
        "soft RLIMIT_NOFILE lowered to {soft} (hard {:?})",
        limit.maximum
    );

    // (a) The hoarding shape holds every file open at once, and runs out.
    let mut attempted = 0;
    let hoarded = paths
        .iter()
        .map(|path| {
            attempted += 1;
            File::open(path)
        })
        .collect::<Result<Vec<_>, _>>();
    let error = hoarded.expect_err("10,000 files cannot all be open under a limit of 64");
    assert_eq!(
        error.raw_os_error(),
        Some(rustix::io::Errno::MFILE.raw_os_error()),
        "expected EMFILE, got {error}",
    );
    let soft = usize::try_from(soft).expect("the limit fits in usize");
    assert!(
        attempted <= soft,
        "open #{attempted} failed, but the limit is {soft}"
    );
    println!("hoarding: open #{attempted} of {FILES} failed: {error}");

    // (b) One file at a time: every file is read, at most one descriptor more.
    let baseline = open_fds().expect("count open descriptors");
    let mut peak = baseline;
    let mut files_read = 0;
    let mut bytes = 0;
    let mut buffer = Vec::new();
    paths
        .iter()
        .for_each_scoped(File::open, |file| {
            peak = peak.max(open_fds()?);
            buffer.clear();
            bytes += file.read_to_end(&mut buffer)?;
            files_read += 1;
            Ok::<_, io::Error>(())
        })
        .expect("every file is read under the lowered limit");

    let expected_bytes: usize = (0..FILES).map(|i| contents(i).len()).sum();
    assert_eq!(files_read, FILES);
    assert_eq!(bytes, expected_bytes);
    assert!(
        peak <= baseline + 1,
        "open descriptors reached {peak} in the body; the baseline was {baseline}",
    );
    assert_eq!(open_fds().expect("count open descriptors"), baseline);
    println!(
        "for_each_scoped: read {files_read} files ({bytes} bytes); \
         descriptors: baseline {baseline}, peak {peak}"
    );
    println!("{CHILD_DONE}");
}

#[test]
fn try_map_scoped_reports_a_missing_file_at_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path(), 5);
    for (index, path) in paths.iter().enumerate().filter(|&(index, _)| index != 2) {
        fs::write(path, contents(index)).unwrap();
    }

    let results: Vec<_> = paths
        .iter()
        .try_map_scoped(File::open, |file| {
            let mut text = String::new();
            file.read_to_string(&mut text).map(|_| text)
        })
        .collect();

    assert_eq!(results.len(), 5, "one result per input item");
    for index in [0, 1, 3, 4] {
        assert_eq!(results[index].as_ref().ok(), Some(&contents(index)));
    }
    let error = results.into_iter().nth(2).unwrap().unwrap_err();
    match &error {
        ScopedError::Acquire { index, source } => {
            assert_eq!(*index, 2);
            assert_eq!(source.kind(), ErrorKind::NotFound);
        }
        other => panic!("expected an acquire error, got {other:?}"),
    }
    assert_eq!(error.index(), 2);
    assert_eq!(error.release_error(), None);

    let io_error = io::Error::from(error);
    assert_eq!(io_error.kind(), ErrorKind::NotFound);
    assert!(
        io_error.to_string().contains("item 2"),
        "the message names the item: {io_error}",
    );
    let inner = io_error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ScopedError<io::Error, io::Error, Infallible>>())
        .expect("the io::Error wraps the ScopedError");
    assert_eq!(inner.index(), 2);
}

#[test]
fn for_each_scoped_stops_at_a_missing_file_and_opens_nothing_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path(), 6);
    for (index, path) in paths.iter().enumerate().filter(|&(index, _)| index != 3) {
        fs::write(path, contents(index)).unwrap();
    }

    let mut opened = Vec::new();
    let mut read = 0;
    let result: io::Result<()> = paths
        .iter()
        .for_each_scoped(
            |path: &PathBuf| {
                opened.push(path.clone());
                File::open(path)
            },
            |file| file.read_to_end(&mut Vec::new()).map(|_| read += 1),
        )
        .map_err(io::Error::from);

    assert_eq!(result.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        opened,
        paths[..4],
        "nothing is opened after the failing item"
    );
    assert_eq!(read, 3);
}

#[test]
fn bracket_sync_all_release_leaves_every_file_complete() {
    const WRITTEN: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let paths = paths_in(dir.path(), WRITTEN);

    let mut next = 0;
    let mut released = 0;
    paths
        .iter()
        .for_each_scoped(
            bracket(File::create).release(|file| {
                released += 1;
                file.sync_all()
            }),
            |file| {
                let index = next;
                next += 1;
                // Several writes per file, so that a file cut short would show.
                for line in contents(index).lines() {
                    writeln!(file, "{line}")?;
                }
                file.write_all(b"end\n")
            },
        )
        .map_err(io::Error::from)
        .expect("write and sync every file");

    assert_eq!((next, released), (WRITTEN, WRITTEN));
    for (index, path) in paths.iter().enumerate() {
        let expected = format!("{}end\n", contents(index));
        assert_eq!(
            fs::read_to_string(path).unwrap(),
            expected,
            "{}",
            path.display()
        );
    }
}
