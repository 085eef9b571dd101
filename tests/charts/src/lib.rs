//! Helpers of the chart tests: rendering the charts with the pinned helm, applying what they
//! render with kubectl, finding the controller binaries, and waiting for the cluster.

#![warn(missing_docs)]

mod binaries;
mod helm;
mod kubectl;
mod wait;

use std::path::PathBuf;

pub use binaries::controller_binary;
pub use helm::{Chart, Helm, PROVISIONER_REQUIRED, Rendered};
pub use kubectl::{apply_and_establish, kubectl};
pub use wait::{eventually, free_port, http_status};

/// What a command printed and whether it succeeded.
#[derive(Clone, Debug)]
pub struct Output {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Output {
    /// Standard output and standard error together, for assertions and messages.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Fails unless the command succeeded, quoting what it printed.
    pub fn ok(self, what: &str) -> Result<Self, Error> {
        if self.success {
            Ok(self)
        } else {
            Err(Error::Failed {
                what: what.to_owned(),
                output: self.text(),
            })
        }
    }
}

/// Everything that can go wrong in the helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command could not be started or fed.
    #[error("running {what}: {source}")]
    Io {
        /// The command.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command exited with an error.
    #[error("{what} failed:\n{output}")]
    Failed {
        /// The command.
        what: String,
        /// What it printed.
        output: String,
    },
    /// Rendered YAML could not be read.
    #[error("reading rendered YAML: {0}")]
    Yaml(#[from] yaml_serde::Error),
    /// A document could not be converted.
    #[error("converting a document: {0}")]
    Json(#[from] serde_json::Error),
    /// The rendered chart lacks an object or a field.
    #[error("the rendered chart has no {0}")]
    Missing(String),
    /// The test cluster failed.
    #[error(transparent)]
    Cluster(#[from] kaito_testenv::Error),
    /// A controller binary could not be found or built.
    #[error("no {name} binary: {reason}")]
    Binary {
        /// The binary.
        name: String,
        /// Why.
        reason: String,
    },
    /// What was waited for did not happen.
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        seconds: u64,
    },
}

/// The root of the repository (the charts live in `charts/` below it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
