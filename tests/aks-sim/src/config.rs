//! What a simulator is started with, and the settings that can change while it runs.

use std::{
    collections::BTreeMap,
    fmt,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::faults::FaultRule;

/// Where the simulated cluster lives in Azure: the names that appear in ARM paths and on nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudIds {
    /// Subscription id (`ARM_SUBSCRIPTION_ID`).
    pub subscription: String,
    /// Resource group of the managed cluster (`ARM_RESOURCE_GROUP`), not the node resource group.
    pub resource_group: String,
    /// Managed cluster name (`AZURE_CLUSTER_NAME`).
    pub cluster: String,
    /// Region, e.g. `eastus`.
    pub location: String,
    /// Node resource group (`MC_<rg>_<cluster>_<region>`), the `kubernetes.azure.com/cluster`
    /// label of every node.
    pub node_resource_group: String,
}

impl CloudIds {
    /// Ids for a cluster, with the node resource group AKS would derive from them.
    pub fn new(subscription: &str, resource_group: &str, cluster: &str, location: &str) -> Self {
        Self {
            subscription: subscription.to_owned(),
            resource_group: resource_group.to_owned(),
            cluster: cluster.to_owned(),
            location: location.to_owned(),
            node_resource_group: format!("MC_{resource_group}_{cluster}_{location}"),
        }
    }
}

impl Default for CloudIds {
    fn default() -> Self {
        Self::new(
            "00000000-0000-4000-8000-000000000001",
            "kaito-rg",
            "kaito-aks",
            "eastus",
        )
    }
}

/// Which credentials the token endpoint accepts; `None` accepts any value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfig {
    /// The only tenant the token endpoint knows.
    pub tenant: Option<String>,
    /// The only client (application) id the tenant knows.
    pub client_id: Option<String>,
    /// The client secret that must accompany `client_secret` requests.
    pub client_secret: Option<String>,
}

/// Everything needed to start a simulator.
#[derive(Clone)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Subscription, resource groups, cluster and region.
    pub cloud: CloudIds,
    /// Credentials the token endpoint accepts.
    pub auth: AuthConfig,
    /// Accepted `api-version` values for ARM calls; empty accepts any well-formed version.
    pub api_versions: Vec<String>,
    /// Settings that can also be changed at run time.
    pub settings: Settings,
    /// Faults active from the start.
    pub faults: Vec<FaultRule>,
    /// The cluster nodes join; `None` simulates the cloud only.
    pub kube: Option<kube::Client>,
    /// Where to write the test CA certificate (PEM) for clients to trust.
    pub ca_out: Option<PathBuf>,
    /// Where to write the base URL, for scripts.
    pub url_out: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            cloud: CloudIds::default(),
            auth: AuthConfig::default(),
            api_versions: Vec::new(),
            settings: Settings::default(),
            faults: Vec::new(),
            kube: None,
            ca_out: None,
            url_out: None,
        }
    }
}

impl SimConfig {
    /// Joins the nodes of succeeded pools to the cluster this client talks to.
    pub fn with_kube(mut self, client: kube::Client) -> Self {
        self.kube = Some(client);
        self
    }

    /// Replaces the settings.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("listen", &self.listen)
            .field("cloud", &self.cloud)
            .field("settings", &self.settings)
            .field("faults", &self.faults)
            .field("kube", &self.kube.is_some())
            .finish_non_exhaustive()
    }
}

/// Timings, limits and refusals; all of them can be changed while the simulator runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// How long a pool stays `Creating` (or `Updating`) before its operation ends.
    #[serde(rename = "createDelayMs", with = "millis")]
    pub create_delay: Duration,
    /// How long a pool stays `Deleting` before it is gone.
    #[serde(rename = "deleteDelayMs", with = "millis")]
    pub delete_delay: Duration,
    /// How long a pool stays `Canceling` after an abort.
    #[serde(rename = "abortDelayMs", with = "millis")]
    pub abort_delay: Duration,
    /// Delay between a pool's create succeeding and its nodes existing. With zero the nodes
    /// exist before the operation reports `Succeeded`, as on AKS.
    #[serde(rename = "nodeJoinDelayMs", with = "millis")]
    pub node_join_delay: Duration,
    /// Delay between a GPU node existing and it reporting `nvidia.com/gpu` (the device plugin).
    #[serde(rename = "gpuDelayMs", with = "millis")]
    pub gpu_delay: Duration,
    /// The `Retry-After` seconds sent with long-running operations and throttling.
    pub retry_after_secs: u64,
    /// Pools per page of a LIST before a `nextLink` is given.
    pub page_size: usize,
    /// Lifetime of issued access tokens, in seconds (`expires_in`).
    pub token_lifetime_secs: u64,
    /// Refuse workload-identity assertions as AAD does when no federated credential matches.
    pub reject_client_assertions: bool,
    /// Kubernetes version reported for pools.
    pub kubernetes_version: String,
    /// VM sizes refused with "not allowed in your subscription in location" (any case).
    pub not_allowed_vm_sizes: Vec<String>,
    /// The regional cores quota.
    pub quota: Quota,
    /// ARM's per-subscription request limits; `None` never throttles on its own.
    pub rate_limits: Option<RateLimits>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            create_delay: Duration::from_secs(1),
            delete_delay: Duration::from_secs(1),
            abort_delay: Duration::ZERO,
            node_join_delay: Duration::ZERO,
            gpu_delay: Duration::ZERO,
            retry_after_secs: 1,
            page_size: 50,
            token_lifetime_secs: 3599,
            reject_client_assertions: false,
            kubernetes_version: "1.33.5".to_owned(),
            not_allowed_vm_sizes: Vec::new(),
            quota: Quota::default(),
            rate_limits: Some(RateLimits::default()),
        }
    }
}

/// The regional (total) cores quota of the subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Quota {
    /// Cores the subscription may use in the region; `None` is unlimited.
    pub limit_cores: Option<u64>,
    /// How the excess is reported.
    pub code: QuotaCode,
    /// vCPUs per VM size (any case); other sizes are read from the size name
    /// (`Standard_NC24ads_A100_v4` has 24) or fall back to `default_vcpus`.
    pub vcpus: BTreeMap<String, u32>,
    /// vCPUs of a size whose name carries no figure.
    pub default_vcpus: u32,
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            limit_cores: None,
            code: QuotaCode::QuotaExceeded,
            vcpus: BTreeMap::new(),
            default_vcpus: 8,
        }
    }
}

/// The two ways AKS reports a create that would exceed the cores quota.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuotaCode {
    /// `400 QuotaExceeded`: the agent pool preflight check of AKS.
    #[default]
    QuotaExceeded,
    /// `409 OperationNotAllowed`: the Compute error passed through (case R-04).
    OperationNotAllowed,
}

/// ARM's token buckets per subscription and region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    /// GET requests.
    pub reads: Bucket,
    /// PUT, PATCH and POST requests.
    pub writes: Bucket,
    /// DELETE requests.
    pub deletes: Bucket,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            reads: Bucket {
                capacity: 250,
                refill_per_sec: 25,
            },
            writes: Bucket {
                capacity: 200,
                refill_per_sec: 10,
            },
            deletes: Bucket {
                capacity: 200,
                refill_per_sec: 10,
            },
        }
    }
}

/// One token bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// Requests allowed in a burst.
    pub capacity: u32,
    /// Requests added back per second.
    pub refill_per_sec: u32,
}

/// Durations as whole milliseconds in JSON.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// Parses `250ms`, `5s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        "h" => Ok(Duration::from_secs(number * 3600)),
        _ => Err(format!("{text:?}: the unit must be ms, s, m or h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn settings_travel_as_camel_case_json_with_millisecond_delays() {
        let json = serde_json::to_value(Settings::default()).unwrap();
        assert_eq!(json["createDelayMs"], 1000);
        assert_eq!(json["quota"]["code"], "QuotaExceeded");
        let back: Settings = serde_json::from_value(json).unwrap();
        assert_eq!(back, Settings::default());
    }

    #[test]
    fn the_node_resource_group_is_derived_like_aks_does() {
        let ids = CloudIds::new("sub", "rg", "aks", "westus3");
        assert_eq!(ids.node_resource_group, "MC_rg_aks_westus3");
    }
}
