//! A real local Kubernetes control plane for tests: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok (simulated kubelets) on 127.0.0.1.
//!
//! The binaries come from the tools cache that `make tools` fills. A test binary usually
//! shares one cluster between its tests:
//!
//! ```no_run
//! # async fn example() -> Result<(), kaito_testenv::Error> {
//! use kaito_testenv::{SimNode, shared_cluster};
//!
//! let cluster = shared_cluster().await?;
//! cluster.add_node(&SimNode::gpu("gpu-0", "Standard_NC24ads_A100_v4", 1)).await?;
//! let client = cluster.client()?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod audit;
mod auth;
mod certs;
mod cluster;
mod components;
mod crds;
mod kubectl;
mod namespaces;
mod nodes;
mod process;
mod shared;
mod stages;
mod supervisor;
mod tools;
mod workdir;

use std::{io, path::PathBuf};

pub use auth::{ADMIN_USER, Identity};
pub use cluster::{Cluster, ClusterOptions, install_crypto_provider};
pub use components::KWOK_NODE_ANNOTATION;
pub use crds::{apply_crds, parse_crds};
pub use kubectl::kubectl;
pub use namespaces::create_namespace;
pub use nodes::{GPU_RESOURCE, SimNode, add_node, is_node_ready, wait_node_ready};
pub use shared::{shared_cluster, shared_cluster_with};
pub use supervisor::Supervisor;
pub use tools::{Tools, cache_dir, tools, version};

/// Everything that can go wrong while starting or using a test cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pinned binary is not in the tools cache.
    #[error("{} is missing: run `make tools` to build the pinned tools", .0.display())]
    MissingTool(PathBuf),
    /// `scripts/versions.env` lacks the named version.
    #[error("scripts/versions.env has no {0}")]
    MissingVersion(String),
    /// Neither a tools cache nor `HOME` is set.
    #[error("cannot find the tools cache: set HOME or KAITO_TOOLS_CACHE")]
    NoHome,
    /// A file system or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Generating key material failed.
    #[error("generating certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A component could not be started.
    #[error("starting {component}: {source}")]
    Spawn {
        /// The component, e.g. `kube-apiserver`.
        component: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A component exited while the cluster was starting.
    #[error("{component} exited ({status}); its log is {}, ending with:\n{tail}", log.display())]
    ComponentExited {
        /// The component, e.g. `kube-apiserver`.
        component: String,
        /// How it exited.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// What was waited for did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The cluster did not start; its temp dir is kept for the logs.
    #[error("the test cluster did not start (logs in {}): {source}", logs.display())]
    StartFailed {
        /// The dir of the component logs.
        logs: PathBuf,
        /// Why it did not start.
        source: Box<Error>,
    },
    /// The shared cluster failed to start (for an earlier test already).
    #[error("the shared test cluster failed to start: {0}")]
    SharedCluster(String),
    /// The shared cluster was asked for with options other than those it started with.
    #[error("the shared test cluster was already started with other options")]
    SharedClusterOptions,
    /// A tokio runtime could not be built.
    #[error("building a tokio runtime: {0}")]
    Runtime(io::Error),
    /// A call to the apiserver failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Watching for a condition failed.
    #[error("watching: {0}")]
    Wait(String),
    /// An identity that was not in the cluster options was asked for.
    #[error("no identity named {0} was configured in the cluster options")]
    UnknownIdentity(String),
    /// The apiserver URL could not be parsed.
    #[error("invalid apiserver URL {0}")]
    InvalidUrl(String),
    /// A CRD document was of another kind (named here) or had no name.
    #[error("expected a named CustomResourceDefinition, found {0}")]
    NotACrd(String),
    /// YAML could not be parsed or written.
    #[error(transparent)]
    Yaml(#[from] yaml_serde::Error),
    /// JSON could not be parsed or written.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Whether a component failed because another process took its port first.
    fn is_port_clash(&self) -> bool {
        match self {
            Error::ComponentExited { tail, .. } => tail.contains("address already in use"),
            Error::StartFailed { source, .. } => source.is_port_clash(),
            _ => false,
        }
    }
}

/// Wraps an I/O error with what was being done.
fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
