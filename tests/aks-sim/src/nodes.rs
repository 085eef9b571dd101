//! Joining nodes like AKS: one kwok-managed Node per VMSS instance, named, labelled and
//! sized as AKS does, created when a pool's create succeeds and deleted with the pool.
//!
//! One worker applies joins and removals in order, so a removal can never overtake the join
//! of the same pool; a join that arrives after its pool started deleting is dropped.

use std::{sync::Weak, time::Duration};

use k8s_openapi::api::core::v1::Node;
use kaito_api::{Cloud, labels};
use kaito_testenv::{GPU_RESOURCE, SimNode};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{
    config::CloudIds,
    ids::base36,
    pools::{Ctx, NodeSlot, Pool, quota},
    sim::Sim,
};

/// Attempts per node create or delete before giving up (the apiserver may be restarting).
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The Node name of a VMSS instance: the scale set name plus six base-36 characters.
pub(crate) fn node_name(scale_set: &str, instance: u32) -> String {
    format!("{scale_set}{}", base36(instance))
}

/// The `spec.providerID` AKS nodes carry; the resource group appears in lower case.
pub(crate) fn provider_id(cloud: &CloudIds, scale_set: &str, instance: u32) -> String {
    format!(
        "azure:///subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/\
         virtualMachineScaleSets/{scale_set}/virtualMachines/{instance}",
        cloud.subscription,
        cloud.node_resource_group.to_lowercase()
    )
}

/// A node ready to be created, and GPUs it reports only later (0 for none).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Planned {
    pub node: SimNode,
    pub late_gpus: u32,
}

/// Builds the Node of one instance of a pool.
pub(crate) fn plan(ctx: &Ctx<'_>, pool: &Pool, slot: &NodeSlot) -> Planned {
    let spec = &pool.spec;
    let sku = Cloud::Azure.sku(&spec.vm_size);
    let instance_type = sku.map_or(spec.vm_size.as_str(), |sku| sku.name);
    let gpus = sku
        .filter(|sku| sku.is_nvidia())
        .map_or(0, |sku| sku.gpu_count());
    let pool_labels = spec
        .labels
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()));
    // The pool's labels first: the ones AKS sets itself win.
    let mut node = SimNode::new(&slot.name, instance_type)
        .labels(pool_labels)
        .labels(
            system_labels(ctx.cloud, pool, slot)
                .iter()
                .map(|(k, v)| (*k, v.as_str())),
        )
        .provider_id(&provider_id(ctx.cloud, &pool.scale_set, slot.instance));
    if let Some(sku) = sku {
        let vendor = if sku.is_nvidia() { "nvidia" } else { "amd" };
        node = node.label("kubernetes.azure.com/accelerator", vendor);
    }
    for taint in &spec.taints {
        node = node.taint(&taint.key, &taint.value, &taint.effect);
    }
    if spec.spot {
        node = node
            .label("kubernetes.azure.com/scalesetpriority", "spot")
            .taint(
                "kubernetes.azure.com/scalesetpriority",
                "spot",
                "NoSchedule",
            );
    }
    for (resource, amount) in capacity(ctx, pool, gpus > 0) {
        node = node.resource(resource, &amount);
    }
    let late = !ctx.settings.gpu_delay.is_zero();
    if gpus > 0 && !late {
        node = node.resource(GPU_RESOURCE, &gpus.to_string());
    }
    Planned {
        node,
        late_gpus: if late { gpus } else { 0 },
    }
}

fn system_labels(cloud: &CloudIds, pool: &Pool, slot: &NodeSlot) -> Vec<(&'static str, String)> {
    let spec = &pool.spec;
    let zone = match spec.zones.len() {
        0 => "0".to_owned(),
        n => format!(
            "{}-{}",
            cloud.location,
            spec.zones[slot.instance as usize % n]
        ),
    };
    let image = pool
        .properties
        .get("nodeImageVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    vec![
        (labels::LABEL_AGENTPOOL, pool.name.clone()),
        (labels::LABEL_AKS_AGENTPOOL, pool.name.clone()),
        (labels::LABEL_OS, spec.os.label().to_owned()),
        ("beta.kubernetes.io/os", spec.os.label().to_owned()),
        (labels::LABEL_ARCH, quota::arch(&spec.vm_size).to_owned()),
        (
            "beta.kubernetes.io/arch",
            quota::arch(&spec.vm_size).to_owned(),
        ),
        ("topology.kubernetes.io/region", cloud.location.clone()),
        ("topology.kubernetes.io/zone", zone.clone()),
        (
            "failure-domain.beta.kubernetes.io/region",
            cloud.location.clone(),
        ),
        ("failure-domain.beta.kubernetes.io/zone", zone),
        (
            "kubernetes.azure.com/cluster",
            cloud.node_resource_group.clone(),
        ),
        ("kubernetes.azure.com/mode", spec.mode.to_lowercase()),
        ("kubernetes.azure.com/role", "agent".to_owned()),
        ("kubernetes.azure.com/os-sku", spec.os_sku.clone()),
        ("kubernetes.azure.com/node-image-version", image.to_owned()),
        (
            "kubernetes.azure.com/nodepool-type",
            "VirtualMachineScaleSets".to_owned(),
        ),
    ]
}

/// CPU, memory, pods and disk of a node. Memory is an estimate from the vCPUs (8 GiB each on
/// GPU sizes, 4 GiB otherwise); nothing here depends on its exact value.
fn capacity(ctx: &Ctx<'_>, pool: &Pool, gpu: bool) -> [(&'static str, String); 4] {
    let spec = &pool.spec;
    let vcpus = quota::vcpus(&ctx.settings.quota, &spec.vm_size);
    let memory_per_cpu = if gpu { 8 } else { 4 };
    let disk = pool
        .properties
        .get("osDiskSizeGB")
        .and_then(|v| v.as_u64())
        .unwrap_or(128);
    [
        ("cpu", vcpus.to_string()),
        ("memory", format!("{}Gi", u64::from(vcpus) * memory_per_cpu)),
        ("pods", spec.max_pods.to_string()),
        ("ephemeral-storage", format!("{disk}Gi")),
    ]
}

enum Command {
    Join {
        pool_uid: u64,
        nodes: Vec<Planned>,
        gpu_delay: Duration,
        done: oneshot::Sender<()>,
    },
    Remove {
        names: Vec<String>,
        done: oneshot::Sender<()>,
    },
}

/// Sends joins and removals to the worker; without a cluster it does nothing.
#[derive(Debug)]
pub(crate) struct Joiner {
    commands: Option<mpsc::UnboundedSender<Command>>,
}

impl Joiner {
    /// A joiner for a simulator without a cluster.
    pub fn disabled() -> Self {
        Self { commands: None }
    }

    /// Starts the worker that creates and deletes Nodes through `client`.
    pub fn start(client: Client, sim: Weak<Sim>, cancel: CancellationToken) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        tokio::spawn(work(client, sim, receiver, cancel));
        Self {
            commands: Some(commands),
        }
    }

    /// Creates the nodes unless the pool started deleting first; returns once done.
    pub async fn join(&self, pool_uid: u64, nodes: Vec<Planned>, gpu_delay: Duration) {
        if nodes.is_empty() {
            return;
        }
        self.send(|done| Command::Join {
            pool_uid,
            nodes,
            gpu_delay,
            done,
        })
        .await;
    }

    /// Deletes the nodes (a node with finalizers stays until they are removed).
    pub async fn remove(&self, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        self.send(|done| Command::Remove { names, done }).await;
    }

    async fn send(&self, command: impl FnOnce(oneshot::Sender<()>) -> Command) {
        let Some(commands) = &self.commands else {
            return;
        };
        let (done, finished) = oneshot::channel();
        if commands.send(command(done)).is_ok() {
            let _ = finished.await;
        }
    }
}

async fn work(
    client: Client,
    sim: Weak<Sim>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    cancel: CancellationToken,
) {
    loop {
        let command = tokio::select! {
            _ = cancel.cancelled() => return,
            command = commands.recv() => command,
        };
        match command {
            None => return,
            Some(Command::Join {
                pool_uid,
                nodes,
                gpu_delay,
                done,
            }) => {
                join_all(&client, &sim, pool_uid, nodes, gpu_delay, &cancel).await;
                let _ = done.send(());
            }
            Some(Command::Remove { names, done }) => {
                for name in names {
                    delete(&client, &name).await;
                }
                let _ = done.send(());
            }
        }
    }
}

async fn join_all(
    client: &Client,
    sim: &Weak<Sim>,
    pool_uid: u64,
    nodes: Vec<Planned>,
    gpu_delay: Duration,
    cancel: &CancellationToken,
) {
    for planned in nodes {
        let open = sim
            .upgrade()
            .is_some_and(|sim| sim.state().accepts_nodes(pool_uid));
        if !open {
            tracing::debug!(
                node = planned.node.name(),
                "Dropped a join: the pool is deleting"
            );
            return;
        }
        create(client, &planned.node).await;
        if planned.late_gpus > 0 {
            let (client, cancel) = (client.clone(), cancel.clone());
            let name = planned.node.name().to_owned();
            tokio::spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(gpu_delay) => {
                        report_gpus(&client, &name, planned.late_gpus).await;
                    }
                }
            });
        }
    }
}

async fn create(client: &Client, node: &SimNode) {
    for attempt in 0..ATTEMPTS {
        match kaito_testenv::add_node(client, node).await {
            Ok(_) => {
                tracing::info!(node = node.name(), "Joined node");
                return;
            }
            Err(kaito_testenv::Error::Kube(kube::Error::Api(status))) if status.code == 409 => {
                return;
            }
            Err(error) => {
                tracing::warn!(node = node.name(), %error, attempt, "Node create failed");
                tokio::time::sleep(FIRST_BACKOFF * 2u32.pow(attempt)).await;
            }
        }
    }
}

async fn delete(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    for attempt in 0..ATTEMPTS {
        match nodes.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(node = name, "Deleted node");
                return;
            }
            Err(kube::Error::Api(status)) if status.code == 404 => return,
            Err(error) => {
                tracing::warn!(node = name, %error, attempt, "Node delete failed");
                tokio::time::sleep(FIRST_BACKOFF * 2u32.pow(attempt)).await;
            }
        }
    }
}

/// What the NVIDIA device plugin does once it has registered.
async fn report_gpus(client: &Client, name: &str, gpus: u32) {
    let nodes: Api<Node> = Api::all(client.clone());
    let count = gpus.to_string();
    let status = json!({ "status": {
        "capacity": { GPU_RESOURCE: count },
        "allocatable": { GPU_RESOURCE: count },
    }});
    match nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
    {
        Ok(_) => tracing::info!(node = name, gpus, "Reported GPUs"),
        Err(error) => tracing::warn!(node = name, %error, "Reporting GPUs failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use serde_json::json;

    use super::*;
    use crate::{
        config::Settings,
        pools::{PoolStore, Preconditions, validate},
    };

    fn pool(settings: &Settings, properties: serde_json::Value) -> (Pool, CloudIds) {
        let cloud = CloudIds::default();
        let ctx = Ctx {
            cloud: &cloud,
            settings,
        };
        let parsed = validate::pool_body("gpu1", &json!({ "properties": properties })).unwrap();
        let mut store = PoolStore::default();
        store
            .put(&ctx, "gpu1", parsed, &Preconditions::default(), &mut |_| {
                None
            })
            .unwrap();
        (store.get("gpu1").unwrap().clone(), cloud)
    }

    fn node_of(settings: &Settings, properties: serde_json::Value) -> (Planned, Pool) {
        let (pool, cloud) = pool(settings, properties);
        let ctx = Ctx {
            cloud: &cloud,
            settings,
        };
        let slot = NodeSlot {
            name: node_name(&pool.scale_set, 0),
            instance: 0,
        };
        (plan(&ctx, &pool, &slot), pool)
    }

    fn labels_of(planned: &Planned) -> BTreeMap<String, String> {
        planned.node.to_node().metadata.labels.unwrap()
    }

    #[test]
    fn a_gpu_node_is_named_labelled_and_sized_like_an_aks_node() {
        let settings = Settings::default();
        let (planned, pool) = node_of(
            &settings,
            json!({
                "vmSize": "standard_nc24ads_a100_v4", "osSKU": "AzureLinux",
                "nodeLabels": {"kaito.sh/workspace": "ws", "agentpool": "spoofed"},
                "nodeTaints": ["sku=gpu:NoSchedule"],
            }),
        );
        let node = planned.node.to_node();
        let name = node.metadata.name.clone().unwrap();
        assert_eq!(name, format!("{}000000", pool.scale_set));
        let labels = labels_of(&planned);
        assert_eq!(labels["agentpool"], "gpu1");
        assert_eq!(labels["kubernetes.azure.com/agentpool"], "gpu1");
        assert_eq!(
            labels["node.kubernetes.io/instance-type"],
            "Standard_NC24ads_A100_v4"
        );
        assert_eq!(labels["kubernetes.io/hostname"], name);
        assert_eq!(
            labels["kubernetes.azure.com/cluster"],
            "MC_kaito-rg_kaito-aks_eastus"
        );
        assert_eq!(labels["kubernetes.azure.com/mode"], "user");
        assert_eq!(labels["kubernetes.azure.com/os-sku"], "AzureLinux");
        assert_eq!(labels["kubernetes.azure.com/accelerator"], "nvidia");
        assert_eq!(labels["topology.kubernetes.io/zone"], "0");
        assert_eq!(labels["kaito.sh/workspace"], "ws");
        let spec = node.spec.unwrap();
        assert_eq!(spec.taints.unwrap()[0].key, "sku");
        let provider_id = spec.provider_id.unwrap();
        assert!(provider_id.starts_with("azure:///subscriptions/"));
        assert!(provider_id.contains("/resourceGroups/mc_kaito-rg_kaito-aks_eastus/"));
        assert!(provider_id.ends_with(&format!("/{}/virtualMachines/0", pool.scale_set)));
        let capacity = node.status.unwrap().capacity.unwrap();
        assert_eq!(capacity[GPU_RESOURCE], Quantity("1".into()));
        assert_eq!(capacity["cpu"], Quantity("24".into()));
    }

    #[test]
    fn cpu_and_unknown_sizes_have_no_gpus_or_accelerator() {
        let settings = Settings::default();
        for size in ["Standard_D4s_v3", "Standard_Q1_v1"] {
            let (planned, _) = node_of(&settings, json!({ "vmSize": size }));
            let capacity = planned.node.to_node().status.unwrap().capacity.unwrap();
            assert!(!capacity.contains_key(GPU_RESOURCE), "{size}");
            assert!(!labels_of(&planned).contains_key("kubernetes.azure.com/accelerator"));
        }
    }

    #[test]
    fn a_gpu_delay_holds_the_gpus_back_for_later() {
        let settings = Settings {
            gpu_delay: Duration::from_secs(5),
            ..Settings::default()
        };
        let (planned, _) = node_of(&settings, json!({ "vmSize": "Standard_NC12s_v3" }));
        let capacity = planned.node.to_node().status.unwrap().capacity.unwrap();
        assert!(!capacity.contains_key(GPU_RESOURCE));
        assert_eq!(planned.late_gpus, 2);
    }

    #[test]
    fn zonal_pools_spread_instances_over_their_zones() {
        let settings = Settings::default();
        let (pool, cloud) = pool(
            &settings,
            json!({ "vmSize": "Standard_D4s_v3", "availabilityZones": ["1", "2"] }),
        );
        let ctx = Ctx {
            cloud: &cloud,
            settings: &settings,
        };
        let zone = |instance| {
            let slot = NodeSlot {
                name: node_name(&pool.scale_set, instance),
                instance,
            };
            labels_of(&plan(&ctx, &pool, &slot))["topology.kubernetes.io/zone"].clone()
        };
        assert_eq!(
            (zone(0), zone(1), zone(2)),
            ("eastus-1".into(), "eastus-2".into(), "eastus-1".into())
        );
    }
}
