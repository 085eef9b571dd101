//! Reconcile errors, each with a stable category used as event reason and metric label.

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What the controller was doing.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// An object could not be serialized.
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The Workspace lacks something the controller needs (name, namespace, uid).
    #[error("workspace is missing {0}")]
    MissingField(&'static str),
    /// The selected nodes do not say how many GPUs they have.
    #[error("{0}")]
    UnknownGpuCount(String),
}

impl Error {
    /// Wraps a Kubernetes API error with what the controller was doing.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }

    /// Stable PascalCase category for events and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => match source {
                kube::Error::Api(status) if status.code == 409 => "Conflict",
                kube::Error::Api(status) if status.code == 403 => "Forbidden",
                kube::Error::Api(status) if status.code == 422 => "Invalid",
                kube::Error::Api(_) => "ApiError",
                _ => "ApiUnavailable",
            },
            Error::Serialize { .. } => "Serialization",
            Error::MissingField(_) => "MissingField",
            Error::UnknownGpuCount(_) => "UnknownGpuCount",
        }
    }

    /// Whether the API server refused an object as invalid (422): a spec the webhook admitted
    /// that still cannot become a valid workload. Retrying cannot help until the spec changes.
    pub fn is_invalid(&self) -> bool {
        self.category() == "Invalid"
    }
}

/// Whether an API error means the object does not exist.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether an API error means the object already exists.
pub fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

/// Whether an API error means the kind is not served (its CRD is not installed).
pub fn is_kind_missing(e: &kube::Error) -> bool {
    match e {
        // A group or version that is not served answers the collection with a bare 404.
        kube::Error::Api(s) => s.code == 404 && s.details.is_none(),
        _ => false,
    }
}
