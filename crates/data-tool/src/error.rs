//! What can end a subcommand, with a stable category and the process exit code for each.

use std::{io, path::PathBuf};

use crate::{download::DownloadFailure, registry::RegistryError};

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or environment variable has an unusable value.
    #[error("{0}")]
    InvalidArgument(String),
    /// The docker config file cannot be read or parsed.
    #[error("docker config {}: {reason}", path.display())]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file the adapter consists of is missing or empty in the results directory.
    #[error("no adapter to push: {} {problem}", path.display())]
    AdapterMissing {
        /// The file that should be there.
        path: PathBuf,
        /// `is missing`, `is empty`, ...
        problem: String,
    },
    /// At least one URL could not be downloaded.
    #[error("{} of {total} downloads failed: {}", failures.len(), summary(failures))]
    Download {
        /// Each failed URL.
        failures: Vec<DownloadFailure>,
        /// URLs asked for.
        total: usize,
    },
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: io::Error,
    },
}

fn summary(failures: &[DownloadFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// A stable PascalCase name for logs and the termination message.
    pub fn category(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::DockerConfig { .. } => "InvalidDockerConfig",
            Error::AdapterMissing { .. } => "AdapterMissing",
            Error::Download { .. } => "DownloadFailed",
            Error::Registry(err) => err.category(),
            Error::Io { .. } => "FileError",
        }
    }

    /// The process exit code: 2 for bad input, 3 for a missing adapter, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::InvalidArgument(_) | Error::DockerConfig { .. } => 2,
            Error::AdapterMissing { .. } => 3,
            Error::Download { .. } | Error::Registry(_) | Error::Io { .. } => 1,
        }
    }
}

/// Wraps an I/O error with what was being done.
pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// An error with its chain of causes, `outer: inner: root`.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some libraries repeat their cause in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The kubelet's limit on a termination message.
const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// Writes `Category: message` to the container's termination log so the failure shows in
/// the pod status; skipped when the file does not exist (not in a container).
pub fn write_termination_message(path: &std::path::Path, err: &Error) {
    if !path.is_file() {
        return;
    }
    let mut message = format!("{}: {err}", err.category());
    if message.len() > TERMINATION_MESSAGE_LIMIT {
        let mut end = TERMINATION_MESSAGE_LIMIT;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    if let Err(write_err) = std::fs::write(path, message) {
        tracing::warn!(path = %path.display(), error = %write_err,
            "Cannot write the termination message");
    }
}
