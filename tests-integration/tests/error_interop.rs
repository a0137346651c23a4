//! `?` from every adapter into the error types applications use — anyhow,
//! `Box<dyn Error + Send + Sync>`, `io::Error`, a `thiserror` enum of their
//! own — with no hand-written `match`, and messages that name the step, the
//! item and the cause. Real files in a temporary directory, a real runtime.
#![cfg(feature = "std")]

use std::convert::Infallible;
use std::error::Error;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, ErrorKind};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use loopscope::prelude::*;
use loopscope::{LabelExt, Labelled};

/// Two logs: `a.log` has a header, `b.log` does not.
fn logs() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.log"), "#v1\nGET /\n").unwrap();
    fs::write(dir.path().join("b.log"), "GET /\n").unwrap();
    let paths = vec![dir.path().join("a.log"), dir.path().join("b.log")];
    (dir, paths)
}

fn first_line(file: &mut File) -> io::Result<String> {
    let mut line = String::new();
    BufReader::new(file).read_line(&mut line)?;
    Ok(line)
}

mod anyhow_errors {
    use super::*;

    /// A service function as anyhow users write it: `?` on the adapter's
    /// result, `.context(..)` on it, a body that returns `anyhow::Result`.
    fn check_headers(paths: &[PathBuf]) -> anyhow::Result<usize> {
        paths
            .iter()
            .for_each_scoped(File::open, |file| {
                let line = first_line(file)?;
                anyhow::ensure!(line.starts_with("#v1"), "bad header {:?}", line.trim_end());
                Ok(())
            })
            .context("checking the log headers")?;
        Ok(paths.len())
    }

    #[test]
    fn question_mark_and_context_on_the_sync_adapter() {
        let (_dir, paths) = logs();
        assert_eq!(check_headers(&paths[..1]).unwrap(), 1);

        let error = check_headers(&paths).unwrap_err();
        assert_eq!(error.to_string(), "checking the log headers");
        assert_eq!(
            format!("{error:#}"),
            "checking the log headers: failed to use the resource for item 1: bad header \"GET /\""
        );
        // The typed error is still inside, index and all.
        let scoped = error
            .downcast_ref::<ScopedError<io::Error, anyhow::Error, Infallible>>()
            .unwrap();
        assert_eq!(scoped.index(), 1);
    }

    #[test]
    fn the_bodys_context_chain_is_in_the_message_in_cause_order() {
        let (_dir, paths) = logs();
        let error = paths
            .iter()
            .try_map_scoped(File::open, |file| {
                let line = first_line(file).context("reading the header")?;
                line.parse::<u32>().context("parsing the header")
            })
            .next()
            .unwrap()
            .unwrap_err();
        let error = anyhow::Error::from(error).context("importing a.log");
        assert_eq!(
            format!("{error:#}"),
            "importing a.log: failed to use the resource for item 0: parsing the header: \
             invalid digit found in string"
        );
    }

    #[test]
    fn question_mark_from_the_async_adapters_inside_tokio_spawn() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (_dir, paths) = logs();
        let outcome = runtime.block_on(async move {
            tokio::spawn(async move {
                let sequential: anyhow::Result<()> = async {
                    futures::stream::iter(&paths)
                        .for_each_scoped(
                            async |path: &PathBuf| tokio::fs::read_to_string(path).await,
                            async |text: &mut String| -> anyhow::Result<()> {
                                anyhow::ensure!(text.starts_with("#v1"), "bad header");
                                Ok(())
                            },
                        )
                        .await
                        .context("sequential")?;
                    Ok(())
                }
                .await;
                let concurrent: anyhow::Result<()> = async {
                    futures::stream::iter(&paths)
                        .for_each_scoped_concurrent(
                            2,
                            async |path: &PathBuf| tokio::fs::read_to_string(path).await,
                            async |text: &mut String| -> anyhow::Result<()> {
                                anyhow::ensure!(text.starts_with("#v1"), "bad header");
                                Ok(())
                            },
                        )
                        .await
                        .context("concurrent")?;
                    Ok(())
                }
                .await;
                (sequential, concurrent)
            })
            .await
            .unwrap()
        });
        let (sequential, concurrent) = outcome;
        assert_eq!(
            format!("{:#}", sequential.unwrap_err()),
            "sequential: failed to use the resource for item 1: bad header"
        );
        assert_eq!(
            format!("{:#}", concurrent.unwrap_err()),
            "concurrent: failed to use the resource for item 1: bad header"
        );
    }

    #[test]
    fn anyhow_errors_from_acquire_and_release() {
        let error = [1, 2]
            .into_iter()
            .for_each_scoped(
                bracket(|n: u32| -> anyhow::Result<u32> { Ok(n) }).release(
                    |n| -> anyhow::Result<()> {
                        anyhow::ensure!(n != 2, "flush failed on close");
                        Ok(())
                    },
                ),
                |_n| Ok::<_, anyhow::Error>(()),
            )
            .unwrap_err();
        let error = anyhow::Error::from(error);
        assert_eq!(
            format!("{error:#}"),
            "failed to release the resource for item 1: flush failed on close"
        );
    }
}

mod boxed_errors {
    use super::*;

    type BoxError = Box<dyn Error + Send + Sync>;

    fn count_requests(paths: &[PathBuf]) -> Result<usize, BoxError> {
        let mut total = 0;
        paths.iter().for_each_scoped(File::open, |file| {
            let line = first_line(file)?;
            if !line.starts_with("#v1") {
                return Err(BoxError::from(format!("bad header {:?}", line.trim_end())));
            }
            total += 1;
            Ok(())
        })?;
        Ok(total)
    }

    #[test]
    fn question_mark_into_a_boxed_error() {
        let (_dir, paths) = logs();
        assert_eq!(count_requests(&paths[..1]).unwrap(), 1);
        let error = count_requests(&paths).unwrap_err();
        assert_eq!(
            error.to_string(),
            "failed to use the resource for item 1: bad header \"GET /\""
        );
        assert!(error.is::<ScopedError<io::Error, BoxError, Infallible>>());
    }

    #[test]
    fn a_boxed_errors_cause_comes_next_in_the_chain() {
        let error = ["x"]
            .into_iter()
            .for_each_scoped(
                |_: &str| -> Result<(), BoxError> {
                    Err(Box::new(io::Error::other(BadLog(io::Error::other("eof")))))
                },
                |()| Ok::<_, BoxError>(()),
            )
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "failed to acquire the resource for item 0: bad log"
        );
        assert_eq!(error.source().unwrap().to_string(), "eof");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("bad log")]
    struct BadLog(#[source] io::Error);
}

mod io_errors {
    use super::*;

    fn first_lines(paths: &[PathBuf]) -> io::Result<Vec<String>> {
        paths
            .iter()
            .try_map_scoped(
                |path: &PathBuf| File::open(path).with_label(|| file_name(path)),
                first_line,
            )
            .map(|line| line.map_err(io::Error::from))
            .collect()
    }

    fn file_name(path: &Path) -> String {
        path.file_name().unwrap().to_string_lossy().into_owned()
    }

    #[test]
    fn question_mark_into_io_error_keeps_the_kind_and_the_label() {
        let (dir, mut paths) = logs();
        assert_eq!(first_lines(&paths).unwrap(), ["#v1\n", "GET /\n"]);

        paths.push(dir.path().join("missing.log"));
        let error = first_lines(&paths).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotFound);
        assert!(
            error
                .to_string()
                .starts_with("failed to acquire the resource for item 2: missing.log: "),
            "{error}"
        );
    }
}

mod thiserror_enums {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum ImportError {
        #[error("the header is not #v1")]
        BadHeader,
        #[error(transparent)]
        Io(#[from] io::Error),
    }

    #[derive(Debug, thiserror::Error)]
    enum AppError {
        #[error("import failed")]
        Import(#[from] ScopedError<io::Error, ImportError, Infallible>),
    }

    fn import(paths: &[PathBuf]) -> Result<(), AppError> {
        paths.iter().for_each_scoped(File::open, |file| {
            if first_line(file)?.starts_with("#v1") {
                Ok(())
            } else {
                Err(ImportError::BadHeader)
            }
        })?;
        Ok(())
    }

    #[test]
    fn question_mark_into_the_users_own_enum() {
        let (_dir, paths) = logs();
        let error = import(&paths).unwrap_err();
        assert_eq!(error.to_string(), "import failed");
        assert_eq!(
            error.source().unwrap().to_string(),
            "failed to use the resource for item 1: the header is not #v1"
        );
        let AppError::Import(scoped) = error;
        assert!(matches!(
            scoped,
            ScopedError::Use {
                index: 1,
                source: ImportError::BadHeader,
                release: None,
            }
        ));
    }
}

mod labels {
    use super::*;
    use futures::stream::{self, StreamExt};

    /// A file that is not `Clone`: the stream's items are owned and go into
    /// the acquire, so the index alone cannot say which one failed.
    struct Log {
        path: PathBuf,
    }

    #[test]
    fn labels_say_which_item_failed_in_a_stream_of_owned_items() {
        let (dir, _paths) = logs();
        let logs = ["a.log", "b.log", "gone.log"].map(|name| Log {
            path: dir.path().join(name),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let results: Vec<_> = runtime.block_on(
            stream::iter(logs)
                .try_map_scoped(
                    // The label goes with the resource, for the body's errors too.
                    async |log: Log| {
                        let label = log.path.file_name().unwrap().to_string_lossy().into_owned();
                        let text = tokio::fs::read_to_string(&log.path)
                            .await
                            .label(label.clone())?;
                        Ok::<_, Labelled<io::Error>>((label, text))
                    },
                    async |(label, text): &mut (String, String)| {
                        if text.starts_with("#v1") {
                            Ok(text.len())
                        } else {
                            Err(Labelled::new(label.clone(), "bad header"))
                        }
                    },
                )
                .collect(),
        );
        assert_eq!(*results[0].as_ref().unwrap(), 10);
        assert_eq!(
            results[1].as_ref().unwrap_err().to_string(),
            "failed to use the resource for item 1: b.log: bad header"
        );
        let missing = results[2].as_ref().unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("failed to acquire the resource for item 2: gone.log: "),
            "{missing}"
        );
        let ScopedError::Acquire { source, .. } = missing else {
            panic!("{missing:?}")
        };
        assert_eq!(source.label(), "gone.log");
        assert_eq!(source.error().kind(), ErrorKind::NotFound);
    }
}
