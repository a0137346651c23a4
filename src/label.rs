//! [`Labelled`]: an error with the label of the item it happened on — a path,
//! a host — attached where the item is still at hand.

use std::fmt;
use std::io;

use crate::cause::{Message, source_below};

/// An error with a label saying which item it happened on: `"logs/b.log: No
/// such file or directory (os error 2)"`.
///
/// A [`ScopedError`](crate::ScopedError) gives the item's index, but in a
/// stream of values that are not `Clone` the index alone does not say which
/// item it was: the item went into the acquire. Label the error there, with
/// [`LabelExt::with_label`] on the acquire's `Result`; to label the body's and
/// the release's errors too, let the acquire return the label with the
/// resource (`(path, file)`), as the guide's
/// [Which item failed](crate::guide#which-item-failed) shows. (With anyhow,
/// its `with_context` does the same.)
///
/// The `Display` text is the label, `": "`, then the error's message; `source`
/// is the error's own source, as for
/// [`ScopedError`](crate::ScopedError#messages-and-). A `Labelled<io::Error>`
/// converts into an `io::Error` of the same [`ErrorKind`](io::ErrorKind), and
/// `?` turns a [`ScopedError`](crate::ScopedError) holding one into an
/// `io::Error` too.
///
/// # Examples
///
/// ```
/// use std::fs::File;
/// use std::path::PathBuf;
/// use loopscope::LabelExt;
/// use loopscope::prelude::*;
///
/// let paths = vec![PathBuf::from("no/such/dir/a.log")];
/// let error = paths
///     .into_iter()
///     .for_each_scoped(
///         |path: PathBuf| File::open(&path).with_label(|| path.display().to_string()),
///         |_file| Ok::<_, std::io::Error>(()),
///     )
///     .unwrap_err();
/// assert!(error.to_string().starts_with(
///     "failed to acquire the resource for item 0: no/such/dir/a.log: "
/// ));
/// // `?` into `io::Error` keeps the kind.
/// assert_eq!(std::io::Error::from(error).kind(), std::io::ErrorKind::NotFound);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled<E> {
    label: String,
    error: E,
}

impl<E> Labelled<E> {
    /// `error`, labelled `label`.
    pub fn new(label: impl Into<String>, error: E) -> Self {
        Self {
            label: label.into(),
            error,
        }
    }

    /// The label: which item the error happened on.
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The error.
    #[must_use]
    pub fn error(&self) -> &E {
        &self.error
    }

    /// The error, without its label.
    #[must_use]
    pub fn into_error(self) -> E {
        self.error
    }

    /// The label and the error.
    #[must_use]
    pub fn into_parts(self) -> (String, E) {
        (self.label, self.error)
    }
}

impl<E: fmt::Display + 'static> fmt::Display for Labelled<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.label, Message(&self.error))
    }
}

/// An [`Error`](std::error::Error) whenever `E` is `Debug + Display + 'static`,
/// as [`ScopedError`](crate::ScopedError#messages-and-) is.
impl<E: fmt::Debug + fmt::Display + 'static> std::error::Error for Labelled<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        source_below(&self.error)
    }
}

impl crate::io_kind::IoKind for Labelled<io::Error> {
    fn io_kind(&self) -> io::ErrorKind {
        self.error.kind()
    }
}

/// Keeps the error's [`ErrorKind`](io::ErrorKind); the label goes into the
/// message.
impl From<Labelled<io::Error>> for io::Error {
    fn from(labelled: Labelled<io::Error>) -> Self {
        io::Error::new(labelled.error.kind(), labelled)
    }
}

/// Labels the error of a `Result` with the item it happened on.
///
/// Implemented for every `Result`; in scope with `use loopscope::LabelExt`.
pub trait LabelExt<T, E> {
    /// Labels the error, if any, with `label`.
    ///
    /// # Errors
    ///
    /// The error of `self`, labelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use loopscope::LabelExt;
    ///
    /// let parsed = "x".parse::<u8>().label("port");
    /// assert_eq!(parsed.unwrap_err().to_string(), "port: invalid digit found in string");
    /// ```
    fn label(self, label: impl Into<String>) -> Result<T, Labelled<E>>;

    /// Labels the error, if any, with the label `label` makes — called only
    /// when there is an error, so nothing is formatted or allocated on success.
    ///
    /// # Errors
    ///
    /// The error of `self`, labelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::Path;
    /// use loopscope::LabelExt;
    ///
    /// let path = Path::new("no/such/file");
    /// let opened = std::fs::File::open(path).with_label(|| path.display().to_string());
    /// assert!(opened.unwrap_err().to_string().starts_with("no/such/file: "));
    /// ```
    fn with_label<L: Into<String>>(self, label: impl FnOnce() -> L) -> Result<T, Labelled<E>>;
}

impl<T, E> LabelExt<T, E> for Result<T, E> {
    fn label(self, label: impl Into<String>) -> Result<T, Labelled<E>> {
        self.map_err(|error| Labelled::new(label, error))
    }

    fn with_label<L: Into<String>>(self, label: impl FnOnce() -> L) -> Result<T, Labelled<E>> {
        self.map_err(|error| Labelled::new(label(), error))
    }
}
