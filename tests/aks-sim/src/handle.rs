//! The library face of a running simulator: URLs, knobs, faults, counts and state.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    Error,
    arm::error::ArmError,
    config::{CloudIds, QuotaCode, RateLimits, Settings},
    faults::{ActiveRule, FaultRule, OperationFailure, Outage},
    pools::{Ctx, validate},
    requests::{PutRecord, RequestCounts},
    server::{self, Listener},
    sim::{Sim, lock},
};

/// A pool to store directly, as if someone had created it earlier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolSeed {
    /// Pool name (taken from the path in the control API).
    #[serde(default)]
    pub name: String,
    /// The `properties` object, validated like a PUT body.
    pub properties: Value,
    /// The `provisioningState` it is in; `Succeeded` by default.
    #[serde(default = "succeeded")]
    pub provisioning_state: String,
    /// Whether its nodes exist (are joined to the cluster) too.
    #[serde(default)]
    pub join_nodes: bool,
}

fn succeeded() -> String {
    "Succeeded".to_owned()
}

impl PoolSeed {
    /// A succeeded pool without nodes.
    pub fn new(name: &str, properties: Value) -> Self {
        Self {
            name: name.to_owned(),
            properties,
            provisioning_state: succeeded(),
            join_nodes: false,
        }
    }

    /// Also joins its nodes.
    pub fn with_nodes(mut self) -> Self {
        self.join_nodes = true;
        self
    }

    /// Puts it in another state, e.g. `Creating` or `Failed`.
    pub fn in_state(mut self, state: &str) -> Self {
        self.provisioning_state = state.to_owned();
        self
    }
}

impl Sim {
    /// What scripts need to reach and trust the simulator.
    pub(crate) fn info(&self) -> Value {
        json!({
            "baseUrl": self.base_url,
            "authorityHost": self.authority(),
            "cloud": self.cloud,
            "agentPoolsUrl": agent_pools_url(&self.base_url, &self.cloud),
            "caPem": self.ca_pem,
        })
    }

    /// Applies a JSON merge patch to the settings.
    pub(crate) fn patch_settings(&self, patch: &Value) -> Result<Settings, String> {
        let mut settings = lock(&self.settings);
        let mut merged = json!(*settings);
        merge(&mut merged, patch);
        let updated: Settings = serde_json::from_value(merged).map_err(|e| e.to_string())?;
        *settings = updated.clone();
        Ok(updated)
    }

    pub(crate) fn finish_operations(&self) -> usize {
        let finished = self.state().hurry_all();
        self.wake_timers();
        finished
    }

    pub(crate) fn pool_bodies(&self) -> Vec<Value> {
        self.state()
            .list()
            .map(|pool| pool.render(&self.cloud))
            .collect()
    }

    pub(crate) async fn seed_pool(&self, seed: PoolSeed) -> Result<Value, ArmError> {
        if !validate::is_valid_name(&seed.name) {
            return Err(ArmError::invalid_pool_name(&seed.name));
        }
        let parsed = validate::pool_body(&seed.name, &json!({ "properties": seed.properties }))?;
        let settings = self.settings();
        let ctx = Ctx {
            cloud: &self.cloud,
            settings: &settings,
        };
        let state = &seed.provisioning_state;
        let (uid, planned) = self
            .state()
            .seed(&ctx, &seed.name, parsed, state, seed.join_nodes)?;
        self.nodes.join(uid, planned, settings.gpu_delay).await;
        let body = self
            .state()
            .get(&seed.name)
            .map(|pool| pool.render(&self.cloud));
        Ok(body.unwrap_or(Value::Null))
    }

    pub(crate) async fn remove_pool(&self, name: &str) -> bool {
        let Some(nodes) = self.state().remove(name) else {
            return false;
        };
        self.nodes.remove(nodes).await;
        true
    }
}

/// RFC 7386 merge: objects merge key by key, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

fn agent_pools_url(base_url: &str, cloud: &CloudIds) -> String {
    format!(
        "{base_url}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/\
         managedClusters/{}/agentPools",
        cloud.subscription, cloud.resource_group, cloud.cluster
    )
}

/// A running simulator. Dropping it stops the server and every timer; [`SimHandle::stop`]
/// also waits for the listener to close.
#[derive(Debug)]
pub struct SimHandle {
    pub(crate) sim: Arc<Sim>,
    pub(crate) listener: Arc<Listener>,
}

impl SimHandle {
    /// `https://127.0.0.1:<port>`: the ARM endpoint (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.sim.base_url
    }

    /// The authority host for AAD clients (`AZURE_AUTHORITY_HOST`), with a trailing slash.
    pub fn authority_host(&self) -> String {
        self.sim.authority()
    }

    /// The token endpoint of a tenant.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}{tenant}/oauth2/v2.0/token", self.sim.authority())
    }

    /// The test CA (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.sim.ca_pem
    }

    /// Subscription, resource groups, cluster and region.
    pub fn cloud(&self) -> &CloudIds {
        &self.sim.cloud
    }

    /// The agentPools collection URL, without `api-version`.
    pub fn agent_pools_url(&self) -> String {
        agent_pools_url(&self.sim.base_url, &self.sim.cloud)
    }

    /// One agent pool's URL, without `api-version`.
    pub fn agent_pool_url(&self, name: &str) -> String {
        format!("{}/{name}", self.agent_pools_url())
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        self.sim.settings()
    }

    /// Changes settings; operations already running keep their deadlines.
    pub fn update_settings(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut lock(&self.sim.settings));
    }

    /// How long new pools stay `Creating` (and updates `Updating`).
    pub fn set_create_delay(&self, delay: Duration) {
        self.update_settings(|s| s.create_delay = delay);
    }

    /// How long pools stay `Deleting`.
    pub fn set_delete_delay(&self, delay: Duration) {
        self.update_settings(|s| s.delete_delay = delay);
    }

    /// Delay between a create succeeding and its nodes existing.
    pub fn set_node_join_delay(&self, delay: Duration) {
        self.update_settings(|s| s.node_join_delay = delay);
    }

    /// Delay between a GPU node existing and it reporting `nvidia.com/gpu`.
    pub fn set_gpu_delay(&self, delay: Duration) {
        self.update_settings(|s| s.gpu_delay = delay);
    }

    /// Pools per LIST page.
    pub fn set_page_size(&self, page_size: usize) {
        self.update_settings(|s| s.page_size = page_size);
    }

    /// The regional cores quota; `None` is unlimited.
    pub fn set_quota_limit(&self, cores: Option<u64>) {
        self.update_settings(|s| s.quota.limit_cores = cores);
    }

    /// How a quota excess is reported.
    pub fn set_quota_code(&self, code: QuotaCode) {
        self.update_settings(|s| s.quota.code = code);
    }

    /// VM sizes refused as not allowed in the subscription and location.
    pub fn set_not_allowed_vm_sizes<S: Into<String>>(&self, sizes: impl IntoIterator<Item = S>) {
        let sizes = sizes.into_iter().map(Into::into).collect();
        self.update_settings(|s| s.not_allowed_vm_sizes = sizes);
    }

    /// ARM's request limits; `None` never throttles on its own.
    pub fn set_rate_limits(&self, limits: Option<RateLimits>) {
        self.update_settings(|s| s.rate_limits = limits);
    }

    /// Refuses workload-identity assertions (no matching federated credential).
    pub fn set_reject_client_assertions(&self, reject: bool) {
        self.update_settings(|s| s.reject_client_assertions = reject);
    }

    /// Adds a fault rule; answers its id.
    pub fn add_fault(&self, rule: FaultRule) -> u64 {
        self.sim.faults().add(rule)
    }

    /// The active fault rules.
    pub fn faults(&self) -> Vec<ActiveRule> {
        self.sim.faults().rules()
    }

    /// Removes every fault rule and pending operation failure.
    pub fn clear_faults(&self) {
        self.sim.faults().clear();
    }

    /// Makes upcoming operations end `Failed` with the given error.
    pub fn fail_next_operations(&self, failure: OperationFailure) {
        self.sim.faults().add_failure(failure);
    }

    /// Makes every running operation due now; answers how many there were.
    pub fn finish_operations(&self) -> usize {
        self.sim.finish_operations()
    }

    /// The current outage mode.
    pub fn outage(&self) -> Outage {
        self.sim.faults().outage
    }

    /// Makes the cloud unavailable (503), unreachable (connections refused), or well again.
    pub async fn set_outage(&self, outage: Outage) -> Result<(), Error> {
        server::set_outage(&self.sim, outage).await
    }

    /// Requests counted since the start or the last reset.
    pub fn requests(&self) -> RequestCounts {
        lock(&self.sim.requests).clone()
    }

    /// Forgets the counted requests.
    pub fn reset_requests(&self) {
        *lock(&self.sim.requests) = RequestCounts::default();
    }

    /// Full ARM bodies of every pool, ordered by name.
    pub fn pools(&self) -> Vec<Value> {
        self.sim.pool_bodies()
    }

    /// The full ARM body of one pool.
    pub fn pool(&self, name: &str) -> Option<Value> {
        self.sim
            .state()
            .get(name)
            .map(|pool| pool.render(&self.sim.cloud))
    }

    /// Names of the nodes a pool has joined (or is joining).
    pub fn pool_nodes(&self, name: &str) -> Vec<String> {
        let state = self.sim.state();
        let pool = state.get(name);
        pool.map(|p| p.nodes.iter().map(|slot| slot.name.clone()).collect())
            .unwrap_or_default()
    }

    /// Every agent pool PUT received, in order.
    pub fn put_bodies(&self) -> Vec<PutRecord> {
        lock(&self.sim.puts).clone()
    }

    /// Forgets the recorded PUTs.
    pub fn clear_put_bodies(&self) {
        lock(&self.sim.puts).clear();
    }

    /// Stores a pool directly (and joins its nodes if asked); answers its body.
    pub async fn insert_pool(&self, seed: PoolSeed) -> Result<Value, Error> {
        self.sim
            .seed_pool(seed)
            .await
            .map_err(|error| Error::Rejected {
                status: error.status.as_u16(),
                error: *error.body,
            })
    }

    /// Removes a pool at once and deletes its nodes; false when there was none.
    pub async fn remove_pool(&self, name: &str) -> bool {
        self.sim.remove_pool(name).await
    }

    /// A valid ARM access token, without the AAD round trip.
    pub fn issue_token(&self, client_id: &str) -> String {
        let lifetime = self.sim.settings().token_lifetime_secs;
        self.sim.tokens().mint(client_id, lifetime)
    }

    /// Makes every issued token expired.
    pub fn expire_tokens(&self) {
        self.sim.tokens().expire_all();
    }

    /// Stops serving and every timer, and waits for the listener to close.
    pub async fn stop(self) {
        self.sim.cancel.cancel();
        self.listener.close().await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.sim.cancel.cancel();
        self.listener.shutdown_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_replaces_leaves_and_keeps_the_rest() {
        let mut target = json!({"a": 1, "quota": {"limitCores": null, "defaultVcpus": 8}});
        merge(
            &mut target,
            &json!({"quota": {"limitCores": 24}, "b": null}),
        );
        assert_eq!(
            target,
            json!({"a": 1, "quota": {"limitCores": 24, "defaultVcpus": 8}})
        );
    }
}
