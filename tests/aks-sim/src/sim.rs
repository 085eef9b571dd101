//! The state one simulator shares between its server, its timers and its handle.

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::Tokens,
    config::{AuthConfig, CloudIds, Settings},
    faults::Faults,
    nodes::Joiner,
    pools::PoolStore,
    requests::{PutRecord, RequestCounts},
    server::Listener,
};

/// The api-version of operation status and result URLs.
pub(crate) const OPERATIONS_API_VERSION: &str = "2017-08-31";

/// Locks a mutex; a panic elsewhere while it was held leaves usable data here.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One running simulator. Locks are taken one at a time, or `state` before `faults`.
#[derive(Debug)]
pub(crate) struct Sim {
    pub cloud: CloudIds,
    pub auth: AuthConfig,
    pub api_versions: Vec<String>,
    /// `https://127.0.0.1:<port>`, without a trailing slash.
    pub base_url: String,
    /// The CA clients must trust.
    pub ca_pem: String,
    pub settings: Mutex<Settings>,
    pub state: Mutex<PoolStore>,
    pub faults: Mutex<Faults>,
    pub tokens: Mutex<Tokens>,
    pub requests: Mutex<RequestCounts>,
    pub puts: Mutex<Vec<PutRecord>>,
    pub nodes: Joiner,
    /// Bumped when operation deadlines change, to wake their timers.
    pub wake: watch::Sender<u64>,
    /// Ends every task of the simulator.
    pub cancel: CancellationToken,
    /// The listener, set once it runs (closed and reopened by outages).
    pub listener: OnceLock<Weak<Listener>>,
}

impl Sim {
    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    pub fn state(&self) -> MutexGuard<'_, PoolStore> {
        lock(&self.state)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub fn tokens(&self) -> MutexGuard<'_, Tokens> {
        lock(&self.tokens)
    }

    /// The authority host URL (with a trailing slash), for `AZURE_AUTHORITY_HOST`.
    pub fn authority(&self) -> String {
        format!("{}/", self.base_url)
    }

    /// The `Azure-AsyncOperation` URL of an operation.
    pub fn operation_url(&self, id: &str) -> String {
        self.operations_url("operations", id)
    }

    /// The `Location` URL of an operation.
    pub fn operation_result_url(&self, id: &str) -> String {
        self.operations_url("operationresults", id)
    }

    fn operations_url(&self, collection: &str, id: &str) -> String {
        format!(
            "{}/subscriptions/{}/providers/Microsoft.ContainerService/locations/{}/{collection}/\
             {id}?api-version={OPERATIONS_API_VERSION}",
            self.base_url, self.cloud.subscription, self.cloud.location
        )
    }

    /// Wakes the operation timers to re-read their deadlines.
    pub fn wake_timers(&self) {
        self.wake.send_modify(|generation| *generation += 1);
    }
}
