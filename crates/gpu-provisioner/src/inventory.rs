//! What the provisioner last saw of its pools and of the node requests and nodes behind
//! them, for the gRPC API.

use std::{collections::BTreeMap, sync::RwLock};

use k8s_openapi::jiff::Timestamp;

use crate::arm::AgentPool;

/// One pool as last listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolView {
    /// provisioningState.
    pub state: String,
    /// powerState code.
    pub power: String,
    /// VM size.
    pub vm_size: String,
    /// When it was observed.
    pub observed_at: Option<Timestamp>,
}

/// The node request and node of a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerView {
    /// `Machine` or `NodeClaim`.
    pub kind: String,
    /// Node request name.
    pub request: String,
    /// Node name.
    pub node: String,
    /// providerID.
    pub provider_id: String,
}

/// Pools and owners by pool name.
#[derive(Debug, Default)]
pub struct Inventory {
    pools: RwLock<BTreeMap<String, PoolView>>,
    owners: RwLock<BTreeMap<String, OwnerView>>,
}

impl Inventory {
    /// Records one observed pool.
    pub fn observe(&self, pool: &AgentPool, now: Timestamp) {
        let view = PoolView {
            state: pool.state().to_owned(),
            power: pool
                .properties
                .power_state
                .as_ref()
                .map(|p| p.code.clone())
                .unwrap_or_default(),
            vm_size: pool.properties.vm_size.clone().unwrap_or_default(),
            observed_at: Some(now),
        };
        if let Ok(mut pools) = self.pools.write() {
            pools.insert(pool.name.clone(), view);
        }
    }

    /// Replaces the pools with a full list, keeping only those of ours (`keep`).
    pub fn replace(&self, pools: &[AgentPool], keep: impl Fn(&AgentPool) -> bool, now: Timestamp) {
        if let Ok(mut map) = self.pools.write() {
            map.clear();
        }
        for pool in pools.iter().filter(|p| keep(p)) {
            self.observe(pool, now);
        }
    }

    /// Records the node request (and node) behind a pool.
    pub fn own(&self, pool: &str, owner: OwnerView) {
        if let Ok(mut owners) = self.owners.write() {
            owners.insert(pool.to_owned(), owner);
        }
    }

    /// Forgets a pool and its owner.
    pub fn forget(&self, pool: &str) {
        if let Ok(mut pools) = self.pools.write() {
            pools.remove(pool);
        }
        if let Ok(mut owners) = self.owners.write() {
            owners.remove(pool);
        }
    }

    /// Every known pool with its owner, by pool name.
    pub fn snapshot(&self) -> Vec<(String, PoolView, Option<OwnerView>)> {
        let pools = self.pools.read().map(|p| p.clone()).unwrap_or_default();
        let owners = self.owners.read().map(|o| o.clone()).unwrap_or_default();
        let mut names: Vec<&String> = pools.keys().chain(owners.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|n| {
                (
                    n.clone(),
                    pools.get(n).cloned().unwrap_or_default(),
                    owners.get(n).cloned(),
                )
            })
            .collect()
    }
}
