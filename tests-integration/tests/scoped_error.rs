//! `ScopedError`: its messages, its `source` chain, its helpers, and its
//! conversion into `io::Error` (feature `std`).
#![cfg(feature = "std")]

use std::convert::Infallible;
use std::io::{self, ErrorKind};

use loopscope::prelude::*;

type IoScopedError = ScopedError<io::Error, io::Error, io::Error>;

fn io_error(kind: ErrorKind, text: &str) -> io::Error {
    io::Error::new(kind, text.to_owned())
}

#[test]
fn display_names_the_step_the_item_and_the_cause() {
    let acquire: IoScopedError = ScopedError::Acquire {
        index: 3,
        source: io_error(ErrorKind::NotFound, "no such file"),
    };
    assert_eq!(
        acquire.to_string(),
        "failed to acquire the resource for item 3: no such file"
    );

    let release: IoScopedError = ScopedError::Release {
        index: 4,
        source: io_error(ErrorKind::Other, "fsync failed"),
    };
    assert_eq!(
        release.to_string(),
        "failed to release the resource for item 4: fsync failed"
    );

    let use_only: IoScopedError = ScopedError::Use {
        index: 5,
        source: io_error(ErrorKind::InvalidData, "bad line"),
        release: None,
    };
    assert_eq!(
        use_only.to_string(),
        "failed to use the resource for item 5: bad line"
    );
}

#[test]
fn use_error_keeps_the_release_error_in_display_and_accessors() {
    let both: IoScopedError = ScopedError::Use {
        index: 6,
        source: io_error(ErrorKind::InvalidData, "bad line"),
        release: Some(io_error(ErrorKind::Other, "flush failed")),
    };
    // The body's error is the primary one: its message ends the text.
    assert_eq!(
        both.to_string(),
        "failed to use the resource for item 6 (its release failed too: flush failed): bad line"
    );
    assert_eq!(both.index(), 6);
    assert_eq!(both.release_error().unwrap().to_string(), "flush failed");
    assert_eq!(
        both.into_release_error().unwrap().to_string(),
        "flush failed"
    );
}

/// An error with a cause: "bad header", caused by "unexpected end of file".
#[derive(Debug, thiserror::Error)]
#[error("bad header")]
struct BadHeader(#[source] io::Error);

fn bad_header() -> io::Error {
    io::Error::new(
        ErrorKind::InvalidData,
        BadHeader(io_error(ErrorKind::UnexpectedEof, "unexpected end of file")),
    )
}

fn chain(error: &dyn std::error::Error) -> Vec<String> {
    let mut chain = vec![error.to_string()];
    let mut next = error.source();
    while let Some(cause) = next {
        chain.push(cause.to_string());
        next = cause.source();
    }
    chain
}

#[test]
fn source_is_the_cause_below_the_failing_steps_error() {
    // The failing step's message is in the error's own; its cause comes next.
    let acquire: IoScopedError = ScopedError::Acquire {
        index: 0,
        source: bad_header(),
    };
    assert_eq!(
        chain(&acquire),
        [
            "failed to acquire the resource for item 0: bad header",
            "unexpected end of file"
        ]
    );
    assert!(acquire.release_error().is_none());

    // Both failed: the chain is the body's; the release's error is in the
    // message, before the body's, so that the body's causes follow its message.
    let both: IoScopedError = ScopedError::Use {
        index: 1,
        source: bad_header(),
        release: Some(io_error(ErrorKind::Other, "flush failed on close")),
    };
    assert_eq!(
        chain(&both),
        [
            "failed to use the resource for item 1 (its release failed too: flush failed on close): bad header",
            "unexpected end of file"
        ]
    );

    // A leaf error ends the chain: nothing reads twice.
    let release: IoScopedError = ScopedError::Release {
        index: 0,
        source: io_error(ErrorKind::Other, "close"),
    };
    assert_eq!(
        chain(&release),
        ["failed to release the resource for item 0: close"]
    );
    assert_eq!(release.release_error().unwrap().to_string(), "close");
}

#[test]
fn into_io_error_keeps_the_kind_of_the_failing_step() {
    let cases: [(IoScopedError, ErrorKind); 3] = [
        (
            ScopedError::Acquire {
                index: 1,
                source: io_error(ErrorKind::NotFound, "a"),
            },
            ErrorKind::NotFound,
        ),
        (
            ScopedError::Use {
                index: 2,
                source: io_error(ErrorKind::InvalidData, "u"),
                release: Some(io_error(ErrorKind::PermissionDenied, "r")),
            },
            ErrorKind::InvalidData,
        ),
        (
            ScopedError::Release {
                index: 3,
                source: io_error(ErrorKind::WriteZero, "r"),
            },
            ErrorKind::WriteZero,
        ),
    ];
    for (error, kind) in cases {
        let text = error.to_string();
        let converted = io::Error::from(error);
        assert_eq!(converted.kind(), kind);
        assert_eq!(converted.to_string(), text);
        // The whole ScopedError is still inside, index and all.
        let inner = converted
            .get_ref()
            .unwrap()
            .downcast_ref::<IoScopedError>()
            .unwrap();
        assert_eq!(inner.to_string(), text);
    }
}

#[test]
fn drop_released_errors_convert_with_question_mark() {
    fn open_all(paths: &[&str]) -> io::Result<()> {
        paths
            .iter()
            .for_each_scoped(std::fs::File::open, |_file| Ok::<_, io::Error>(()))?;
        Ok(())
    }
    let missing = tempfile::tempdir().unwrap().path().join("missing");
    let error = open_all(&[missing.to_str().unwrap()]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    let inner = error
        .get_ref()
        .unwrap()
        .downcast_ref::<ScopedError<io::Error, io::Error, Infallible>>()
        .unwrap();
    assert_eq!(inner.index(), 0);
}

#[test]
fn scoped_error_is_a_std_error_that_can_be_boxed() {
    fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        [1].into_iter().for_each_scoped(
            bracket(|n: i32| Ok::<_, io::Error>(n))
                .release(|_| Err(io_error(ErrorKind::Other, "x"))),
            |_| Ok::<_, io::Error>(()),
        )?;
        Ok(())
    }
    let error = boxed().unwrap_err();
    assert_eq!(
        error.to_string(),
        "failed to release the resource for item 0: x"
    );
    assert!(
        error.source().is_none(),
        "`x` is in the message, not again below it"
    );
}
