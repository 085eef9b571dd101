//! Leader election on a coordination.k8s.io Lease, so two replicas never both act.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::{sync::watch, task::JoinHandle};

/// Lease timing: held for 15 s, renewed 5 s before it lapses.
const LEASE_SECONDS: u64 = 15;
const GRACE_SECONDS: u64 = 5;

/// Leadership held by this process.
pub struct Leadership {
    state: watch::Receiver<bool>,
    _task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    /// Waits until this process holds the lease `name` in `namespace`.
    pub async fn acquire(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
    ) -> Result<Self, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .build()
            .await?;
        let (mut state, task) = manager.watch().await;
        tracing::info!(lease = name, identity, "Waiting for leadership");
        while !*state.borrow_and_update() {
            if state.changed().await.is_err() {
                break;
            }
        }
        tracing::info!(lease = name, identity, "Acquired leadership");
        Ok(Leadership { state, _task: task })
    }

    /// Resolves when leadership is lost; the caller then stops acting (and usually exits).
    pub async fn lost(&mut self) {
        loop {
            if !*self.state.borrow_and_update() {
                break;
            }
            if self.state.changed().await.is_err() {
                break;
            }
        }
        tracing::warn!("Lost leadership");
    }
}
