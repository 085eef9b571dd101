//! Errors of a reconcile, each with a stable category for events and metrics.

use std::time::Duration;

use crate::arm::ArmError;

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An ARM call failed in a way the step does not absorb.
    #[error(transparent)]
    Cloud(#[from] ArmError),
    /// Another mutating call on the pool is in flight.
    #[error("agent pool {0} is busy with another call")]
    PoolBusy(String),
    /// A body could not be serialised.
    #[error("serialising {what}: {source}")]
    Serialise {
        /// What was serialised.
        what: &'static str,
        /// Cause.
        source: serde_json::Error,
    },
}

impl ReconcileError {
    /// Stable PascalCase category.
    pub fn category(&self) -> &'static str {
        match self {
            ReconcileError::Kube(kube::Error::Api(s)) if s.code == 409 => "Conflict",
            ReconcileError::Kube(_) => "KubeApiFailed",
            ReconcileError::Cloud(e) => e.class.as_str(),
            ReconcileError::PoolBusy(_) => "PoolBusy",
            ReconcileError::Serialise { .. } => "SerialisationFailed",
        }
    }

    /// The least wait before retrying that the failure itself asks for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ReconcileError::Cloud(e) => e.retry_after,
            ReconcileError::Kube(kube::Error::Api(s)) if s.code == 409 => {
                Some(Duration::from_millis(200))
            }
            ReconcileError::PoolBusy(_) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

/// Whether a Kubernetes error is a 404.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 404)
}
