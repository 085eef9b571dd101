//! Counting requests by method, operation kind and status, and the PUT bodies received.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Names of the operation kinds requests are counted under.
pub mod operation {
    /// `POST /{tenant}/oauth2/v2.0/token`.
    pub const TOKEN: &str = "token";
    /// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
    pub const OPENID_CONFIGURATION: &str = "openidConfiguration";
    /// `GET /{tenant}/discovery/v2.0/keys`.
    pub const KEYS: &str = "keys";
    /// `GET /common/discovery/instance`.
    pub const INSTANCE_DISCOVERY: &str = "instanceDiscovery";
    /// `GET` of the managed cluster.
    pub const CLUSTER_GET: &str = "managedClusters.get";
    /// `PUT` of an agent pool.
    pub const POOL_PUT: &str = "agentPools.put";
    /// `GET` of an agent pool.
    pub const POOL_GET: &str = "agentPools.get";
    /// `GET` of the agent pool collection (every page).
    pub const POOL_LIST: &str = "agentPools.list";
    /// `DELETE` of an agent pool.
    pub const POOL_DELETE: &str = "agentPools.delete";
    /// `POST` of `abort`.
    pub const POOL_ABORT: &str = "agentPools.abort";
    /// `GET` of an `Azure-AsyncOperation` URL.
    pub const OPERATION_GET: &str = "operations.get";
    /// `GET` of a `Location` URL.
    pub const OPERATION_RESULT_GET: &str = "operationResults.get";
    /// Anything else.
    pub const UNKNOWN: &str = "unknown";
}

/// The status recorded for a request whose client went away before the answer.
pub const CLIENT_CLOSED: u16 = 499;

/// One counted combination.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestKey {
    /// HTTP method, e.g. `PUT`.
    pub method: String,
    /// Operation kind, one of [`operation`].
    pub operation: String,
    /// HTTP status answered ([`CLIENT_CLOSED`] when none was).
    pub status: u16,
}

/// A count, as the control API lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    /// HTTP method.
    pub method: String,
    /// Operation kind.
    pub operation: String,
    /// HTTP status.
    pub status: u16,
    /// Requests seen.
    pub count: u64,
}

/// Requests seen since the start or the last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    counts: BTreeMap<RequestKey, u64>,
}

impl RequestCounts {
    pub(crate) fn record(&mut self, method: &str, operation: &str, status: u16) {
        let key = RequestKey {
            method: method.to_owned(),
            operation: operation.to_owned(),
            status,
        };
        *self.counts.entry(key).or_default() += 1;
    }

    /// Every request.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Requests of one operation kind, any status.
    pub fn of(&self, operation: &str) -> u64 {
        self.matching(|key| key.operation == operation)
    }

    /// Requests of one operation kind answered with `status`.
    pub fn with_status(&self, operation: &str, status: u16) -> u64 {
        self.matching(|key| key.operation == operation && key.status == status)
    }

    /// Requests answered with `status`, any kind.
    pub fn status(&self, status: u16) -> u64 {
        self.matching(|key| key.status == status)
    }

    fn matching(&self, wanted: impl Fn(&RequestKey) -> bool) -> u64 {
        self.counts
            .iter()
            .filter(|(key, _)| wanted(key))
            .map(|(_, count)| count)
            .sum()
    }

    /// Every count, ordered by method, kind and status.
    pub fn entries(&self) -> Vec<RequestCount> {
        let entry = |(key, count): (&RequestKey, &u64)| RequestCount {
            method: key.method.clone(),
            operation: key.operation.clone(),
            status: key.status,
            count: *count,
        };
        self.counts.iter().map(entry).collect()
    }
}

/// An agent pool PUT as received, whatever it was answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutRecord {
    /// The pool name from the path.
    pub pool: String,
    /// The body: JSON when it parsed, otherwise the raw text as a JSON string.
    pub body: Value,
    /// The `api-version` query parameter.
    pub api_version: Option<String>,
    /// The `If-Match` header.
    pub if_match: Option<String>,
    /// The `If-None-Match` header.
    pub if_none_match: Option<String>,
    /// The status answered.
    pub status: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_by_kind_and_status() {
        let mut counts = RequestCounts::default();
        counts.record("PUT", operation::POOL_PUT, 201);
        counts.record("PUT", operation::POOL_PUT, 429);
        counts.record("GET", operation::OPERATION_GET, 200);
        assert_eq!(counts.total(), 3);
        assert_eq!(counts.of(operation::POOL_PUT), 2);
        assert_eq!(counts.with_status(operation::POOL_PUT, 429), 1);
        assert_eq!(counts.status(200), 1);
        assert_eq!(counts.entries().len(), 3);
    }
}
