//! The AKS agentPools API: a small trait the controllers use, and its ARM implementation.

pub mod client;
pub mod error;
pub mod types;

use std::time::Duration;

pub use client::ArmClient;
pub use error::{ArmError, ErrorClass};
pub use types::{AgentPool, AgentPoolBody, AgentPoolProperties, CloudErrorBody, OperationStatus};

/// A long-running operation ARM accepted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accepted {
    /// The pool as the response described it (PUT only).
    pub pool: Option<AgentPool>,
    /// The `Azure-AsyncOperation` (or `Location`) URL to follow.
    pub operation_url: Option<String>,
    /// How long ARM asked to wait before polling.
    pub retry_after: Option<Duration>,
}

/// The agent pools of one managed cluster.
#[async_trait::async_trait]
pub trait AgentPools: Send + Sync {
    /// The pool, or `None` when it does not exist.
    async fn get(&self, name: &str) -> Result<Option<AgentPool>, ArmError>;
    /// Creates the pool; never overwrites an existing one (`If-None-Match: *`).
    async fn create(&self, name: &str, body: &AgentPoolBody) -> Result<Accepted, ArmError>;
    /// Deletes the pool, only if it still has `etag` when one is given.
    async fn delete(&self, name: &str, etag: Option<&str>) -> Result<Accepted, ArmError>;
    /// The status of an operation URL.
    async fn operation(&self, url: &str) -> Result<OperationStatus, ArmError>;
    /// Every pool of the cluster.
    async fn list(&self) -> Result<Vec<AgentPool>, ArmError>;
}
