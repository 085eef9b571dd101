//! What every controller, the collector and the servers share.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kaito_runtime::{admin::Health, backoff::Backoff};
use kube::{
    Client,
    runtime::events::{Recorder, Reporter},
};
use tokio::sync::OwnedMutexGuard;

use crate::{arm::AgentPools, inventory::Inventory, metrics::Metrics};

/// Name of the readiness check that the controllers are running.
pub const CHECK_CONTROLLER: &str = "controller";
/// Name of the readiness check that ARM answers.
pub const CHECK_CLOUD: &str = "cloud";

/// Timings the controllers follow.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Wait after a terminal launch failure before trying again.
    pub launch_retry_interval: Duration,
    /// Poll interval of running operations when ARM names none.
    pub poll_interval: Duration,
    /// How long a node may take to report its GPUs.
    pub initialization_deadline: Duration,
    /// Age an ownerless pool must reach before it is collected.
    pub gc_grace_period: Duration,
}

/// Shared state of the provisioner.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// The agent pools API.
    pub cloud: Arc<dyn AgentPools>,
    /// Timings.
    pub settings: Settings,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Per-object failure backoff.
    pub backoff: Backoff<String>,
    /// Readiness checks.
    pub health: Arc<Health>,
    /// What the provisioner knows of its pools, for the gRPC API.
    pub inventory: Inventory,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    polls: Mutex<HashMap<String, Instant>>,
    refused: Mutex<HashSet<String>>,
}

impl Context {
    /// A context over the given client, cloud and settings.
    pub fn new(
        client: Client,
        cloud: Arc<dyn AgentPools>,
        settings: Settings,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Arc<Self> {
        let reporter = Reporter {
            controller: "gpu-provisioner".into(),
            instance: Some(instance_name()),
        };
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            cloud,
            settings,
            metrics,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(120)),
            health,
            inventory: Inventory::default(),
            locks: Mutex::new(HashMap::new()),
            polls: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashSet::new()),
        })
    }

    /// The pool's mutation lock, if no other mutating call on the pool is in flight.
    pub fn try_lock_pool(&self, pool: &str) -> Option<OwnedMutexGuard<()>> {
        let lock = {
            let mut locks = self.locks.lock().ok()?;
            locks.entry(pool.to_owned()).or_default().clone()
        };
        lock.try_lock_owned().ok()
    }

    /// Remembers not to ask the cloud about `pool` again before `after` has passed.
    pub fn schedule_poll(&self, pool: &str, after: Duration) {
        if let Ok(mut polls) = self.polls.lock() {
            polls.insert(pool.to_owned(), Instant::now() + after);
        }
    }

    /// Time left before the cloud may be asked about `pool` again.
    pub fn poll_wait(&self, pool: &str) -> Option<Duration> {
        let polls = self.polls.lock().ok()?;
        let at = polls.get(pool)?;
        at.checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Records whether this process's last create of `pool` was refused outright (so no
    /// pool can exist from it and the next attempt needs no read first).
    pub fn set_create_refused(&self, pool: &str, refused: bool) {
        if let Ok(mut set) = self.refused.lock() {
            if refused {
                set.insert(pool.to_owned());
            } else {
                set.remove(pool);
            }
        }
    }

    /// Whether this process's last create of `pool` was refused outright.
    pub fn create_refused(&self, pool: &str) -> bool {
        self.refused.lock().is_ok_and(|set| set.contains(pool))
    }

    /// Forgets a pool that is gone.
    pub fn forget_pool(&self, pool: &str) {
        if let Ok(mut polls) = self.polls.lock() {
            polls.remove(pool);
        }
        if let Ok(mut locks) = self.locks.lock() {
            locks.remove(pool);
        }
        self.set_create_refused(pool, false);
        self.inventory.forget(pool);
    }
}

/// This process's name in events and leases: the pod name, or host name and pid.
pub fn instance_name() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .map(|h| format!("{h}-{}", std::process::id()))
        .unwrap_or_else(|_| format!("gpu-provisioner-{}", std::process::id()))
}
