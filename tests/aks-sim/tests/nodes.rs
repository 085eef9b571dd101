//! Nodes join the real local cluster when a pool's create succeeds, and leave with the pool.
// Helpers outside #[test] functions fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aks_sim::SimConfig;
use common::{Arm, eventually, gpu_body, header, pool_url, start};
use k8s_openapi::{api::core::v1::Node, apimachinery::pkg::api::resource::Quantity};
use kaito_testenv::{GPU_RESOURCE, shared_cluster, wait_node_ready};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

async fn cluster_client() -> Client {
    kaito_runtime::install_crypto_provider();
    shared_cluster().await.unwrap().client().unwrap()
}

fn config(client: &Client) -> SimConfig {
    let mut config = common::quick().with_kube(client.clone());
    config.cloud.subscription = "5a1b2c3d-0000-4000-8000-00000000aaaa".to_owned();
    config
}

/// Creates a pool over HTTPS, follows its operation and answers the name of its one node.
async fn create_pool(arm: &Arm, sim: &aks_sim::SimHandle, name: &str, body: &Value) -> String {
    let created = arm.put(&pool_url(sim, name), body).await;
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let operation = header(&created, "azure-asyncoperation");
    assert_eq!(
        arm.follow(&operation).await.last().map(String::as_str),
        Some("Succeeded")
    );
    let nodes = sim.pool_nodes(name);
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    nodes[0].clone()
}

async fn delete_pool(arm: &Arm, sim: &aks_sim::SimHandle, name: &str) {
    let deleting = arm.delete(&pool_url(sim, name)).await;
    assert_eq!(deleting.status(), reqwest::StatusCode::ACCEPTED);
    let operation = header(&deleting, "azure-asyncoperation");
    assert_eq!(
        arm.follow(&operation).await.last().map(String::as_str),
        Some("Succeeded")
    );
}

async fn gone(nodes: &Api<Node>, name: &str) {
    eventually("the node to be deleted", || async {
        nodes.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_succeeded_pool_joins_a_ready_gpu_node_like_aks_that_leaves_with_the_pool() {
    let kube = cluster_client().await;
    let (sim, client) = start(config(&kube)).await;
    let arm = Arm::new(&sim, &client).await;
    let name = create_pool(&arm, &sim, "gpujoin1", &gpu_body("ws-big")).await;

    let node = wait_node_ready(&kube, &name, common::DEADLINE)
        .await
        .unwrap();
    let scale_set = name.strip_suffix(&name[name.len() - 6..]).unwrap();
    assert!(
        name.starts_with("aks-gpujoin1-") && scale_set.ends_with("-vmss"),
        "{name}"
    );
    let labels = node.metadata.labels.clone().unwrap();
    let expected = [
        ("agentpool", "gpujoin1"),
        ("kubernetes.azure.com/agentpool", "gpujoin1"),
        (
            "node.kubernetes.io/instance-type",
            "Standard_NC24ads_A100_v4",
        ),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/hostname", name.as_str()),
        (
            "kubernetes.azure.com/cluster",
            "MC_kaito-rg_kaito-aks_eastus",
        ),
        ("kubernetes.azure.com/mode", "user"),
        ("kubernetes.azure.com/accelerator", "nvidia"),
        ("topology.kubernetes.io/region", "eastus"),
        ("kaito.sh/workspace", "ws-big"),
        ("karpenter.sh/nodepool", "kaito"),
    ];
    for (key, value) in expected {
        assert_eq!(labels.get(key).map(String::as_str), Some(value), "{key}");
    }
    let spec = node.spec.clone().unwrap();
    let provider_id = spec.provider_id.unwrap();
    let instance = format!(
        "azure:///subscriptions/5a1b2c3d-0000-4000-8000-00000000aaaa/resourceGroups/\
         mc_kaito-rg_kaito-aks_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/\
         {scale_set}/virtualMachines/0"
    );
    assert_eq!(provider_id, instance);
    let taint = &spec.taints.unwrap()[0];
    assert_eq!(
        (taint.key.as_str(), taint.effect.as_str()),
        ("sku", "NoSchedule")
    );
    let allocatable = node.status.unwrap().allocatable.unwrap();
    assert_eq!(
        allocatable.get(GPU_RESOURCE),
        Some(&Quantity("1".to_owned()))
    );

    delete_pool(&arm, &sim, "gpujoin1").await;
    gone(&Api::all(kube), &name).await;
}

#[tokio::test]
async fn a_gpu_delay_makes_the_node_report_its_gpus_after_it_joined() {
    let kube = cluster_client().await;
    let mut config = config(&kube);
    config.settings.gpu_delay = Duration::from_secs(2);
    let (sim, client) = start(config).await;
    let arm = Arm::new(&sim, &client).await;
    let mut body = gpu_body("ws-late");
    body["properties"]["vmSize"] = json!("Standard_NC12s_v3");
    let name = create_pool(&arm, &sim, "gpulate1", &body).await;

    let nodes: Api<Node> = Api::all(kube.clone());
    let gpus = |node: &Node| {
        let allocatable = node.status.as_ref()?.allocatable.as_ref()?;
        allocatable.get(GPU_RESOURCE).cloned()
    };
    let joined = nodes.get(&name).await.unwrap();
    assert_eq!(gpus(&joined), None, "no GPUs right after joining");
    let reported = eventually("the GPUs to be reported", || async {
        gpus(&nodes.get(&name).await.unwrap())
    })
    .await;
    assert_eq!(reported, Quantity("2".to_owned()));

    delete_pool(&arm, &sim, "gpulate1").await;
    gone(&nodes, &name).await;
}

#[tokio::test]
async fn a_node_with_a_finalizer_outlives_its_pool_until_the_finalizer_goes() {
    let kube = cluster_client().await;
    let (sim, client) = start(config(&kube)).await;
    let arm = Arm::new(&sim, &client).await;
    let mut body = gpu_body("ws-fin");
    body["properties"]["vmSize"] = json!("Standard_D4s_v3");
    let name = create_pool(&arm, &sim, "finalize1", &body).await;
    let nodes: Api<Node> = Api::all(kube.clone());
    let cpu_node = nodes.get(&name).await.unwrap();
    assert!(
        !cpu_node
            .status
            .unwrap()
            .capacity
            .unwrap()
            .contains_key(GPU_RESOURCE)
    );
    let finalizer = json!({ "metadata": { "finalizers": ["karpenter.sh/termination"] } });
    nodes
        .patch(&name, &PatchParams::default(), &Patch::Merge(&finalizer))
        .await
        .unwrap();

    delete_pool(&arm, &sim, "finalize1").await;
    assert_eq!(
        arm.get(&pool_url(&sim, "finalize1")).await.status(),
        reqwest::StatusCode::NOT_FOUND
    );
    let terminating = eventually("the node to be marked for deletion", || async {
        let node = nodes.get(&name).await.unwrap();
        node.metadata.deletion_timestamp.is_some().then_some(node)
    })
    .await;
    assert_eq!(
        terminating.metadata.finalizers.unwrap(),
        ["karpenter.sh/termination"]
    );

    let release = json!({ "metadata": { "finalizers": null } });
    nodes
        .patch(&name, &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    gone(&nodes, &name).await;
}
