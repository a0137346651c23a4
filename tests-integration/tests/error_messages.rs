//! Snapshots of every error message of the crate: `Display`, `{:#}` through
//! anyhow (which walks the `source` chain), and `Debug`, for every variant.
//! A change to any of them shows up here as a snapshot diff (`insta`; the
//! snapshots are in `snapshots/`).
#![cfg(feature = "std")]

use std::fmt::Write as _;
use std::io::{self, ErrorKind};

use loopscope::prelude::*;
use loopscope::{BothAcquireError, BothReleaseError, Labelled};

/// "bad header", caused by "unexpected end of file": an error with a cause.
#[derive(Debug, thiserror::Error)]
#[error("bad header")]
struct BadHeader(#[source] io::Error);

fn bad_header() -> io::Error {
    io::Error::new(
        ErrorKind::InvalidData,
        BadHeader(io::Error::new(
            ErrorKind::UnexpectedEof,
            "unexpected end of file",
        )),
    )
}

fn flush_failed() -> io::Error {
    io::Error::other("flush failed on close")
}

/// The three renderings of `error`, one after the other.
fn render<E: std::error::Error + Send + Sync + 'static>(error: E) -> String {
    let debug = format!("Debug: {error:?}\n");
    render_messages(error) + &debug
}

/// `Display`, then `{:#}` through anyhow: the whole `source` chain.
fn render_messages<E: std::error::Error + Send + Sync + 'static>(error: E) -> String {
    let mut text = String::new();
    writeln!(text, "Display: {error}").unwrap();
    let chained = anyhow::Error::from(error);
    writeln!(text, "anyhow {{:#}}: {chained:#}").unwrap();
    text
}

type IoScoped = ScopedError<io::Error, io::Error, io::Error>;

#[test]
fn scoped_error_variants() {
    let variants: [(&str, IoScoped); 6] = [
        (
            "acquire",
            ScopedError::Acquire {
                index: 0,
                source: io::Error::new(ErrorKind::NotFound, "No such file or directory"),
            },
        ),
        (
            "use",
            ScopedError::Use {
                index: 1,
                source: bad_header(),
                release: None,
            },
        ),
        (
            "use_and_release",
            ScopedError::Use {
                index: 2,
                source: bad_header(),
                release: Some(flush_failed()),
            },
        ),
        (
            "release",
            ScopedError::Release {
                index: 3,
                source: flush_failed(),
            },
        ),
        (
            "cancelled",
            ScopedError::Cancelled {
                index: 4,
                release: None,
            },
        ),
        (
            "cancelled_release",
            ScopedError::Cancelled {
                index: 5,
                release: Some(flush_failed()),
            },
        ),
    ];
    for (name, error) in variants {
        insta::assert_snapshot!(format!("scoped_error_{name}"), render(error));
    }
}

#[test]
fn scoped_error_of_anyhow_errors() {
    let body = anyhow::Error::new(BadHeader(io::Error::new(
        ErrorKind::UnexpectedEof,
        "unexpected end of file",
    )))
    .context("parsing a.log");
    let error: ScopedError<anyhow::Error, anyhow::Error, anyhow::Error> = ScopedError::Use {
        index: 7,
        source: body,
        release: Some(anyhow::anyhow!("flush failed on close")),
    };
    // Not `Debug`: an `anyhow::Error`'s shows a backtrace when the environment
    // asks for one.
    insta::assert_snapshot!(render_messages(error));
}

#[test]
fn scoped_error_of_boxed_errors() {
    let error: ScopedError<io::Error, Box<dyn std::error::Error + Send + Sync>, io::Error> =
        ScopedError::Use {
            index: 8,
            source: Box::new(BadHeader(io::Error::other("unexpected end of file"))),
            release: None,
        };
    insta::assert_snapshot!(render(error));
}

#[test]
fn failures() {
    use futures::stream;
    let failures = futures::executor::block_on(stream::iter([0, 1, 2]).for_each_scoped_concurrent(
        3,
        async_bracket(async |item: u32| Ok::<_, io::Error>(item)).release(async |item: u32| {
            if item == 0 {
                Err(flush_failed())
            } else {
                Ok(())
            }
        }),
        async |item: &mut u32| {
            if *item == 2 {
                return Err(bad_header());
            }
            std::future::pending::<()>().await;
            Ok(())
        },
    ))
    .unwrap_err();
    insta::assert_snapshot!(render(failures));
}

#[test]
fn both_errors() {
    let acquire: BothAcquireError<io::Error, io::Error, io::Error> = BothAcquireError::Second {
        source: io::Error::new(ErrorKind::StorageFull, "No space left on device"),
        release: Some(flush_failed()),
    };
    insta::assert_snapshot!(
        "both_acquire",
        render(ScopedError::<_, io::Error, io::Error>::Acquire {
            index: 0,
            source: acquire
        })
    );
    let release: BothReleaseError<io::Error, io::Error> = BothReleaseError::Both {
        first: io::Error::other("close input"),
        second: io::Error::other("sync output"),
    };
    insta::assert_snapshot!(
        "both_release",
        render(ScopedError::<io::Error, io::Error, _>::Release {
            index: 1,
            source: release
        })
    );
}

#[test]
fn labelled() {
    let error: ScopedError<Labelled<io::Error>, io::Error, io::Error> = ScopedError::Acquire {
        index: 2,
        source: Labelled::new(
            "logs/b.log",
            io::Error::new(ErrorKind::NotFound, "No such file or directory"),
        ),
    };
    insta::assert_snapshot!(render(error));
}

#[cfg(feature = "tokio")]
#[test]
fn release_timeout() {
    use loopscope::ReleaseTimeoutError;
    let timed_out: ScopedError<io::Error, io::Error, ReleaseTimeoutError<io::Error>> =
        ScopedError::Release {
            index: 3,
            source: ReleaseTimeoutError::TimedOut {
                after: std::time::Duration::from_secs(5),
            },
        };
    insta::assert_snapshot!("release_timeout_timed_out", render(timed_out));
    let failed: ScopedError<io::Error, io::Error, ReleaseTimeoutError<io::Error>> =
        ScopedError::Release {
            index: 4,
            source: ReleaseTimeoutError::Failed(flush_failed()),
        };
    insta::assert_snapshot!("release_timeout_failed", render(failed));
}
