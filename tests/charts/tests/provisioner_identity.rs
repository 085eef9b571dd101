//! The gpu-provisioner chart's RBAC is enough for the real provisioner: the binary runs as a
//! process with the chart's environment (private-cloud endpoints pointed at the AKS stand-in)
//! and the identity of the chart's ServiceAccount, and realises a NodeClaim from launch to
//! deletion with leader election on.
// Test code fails loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{collections::BTreeMap, process::Command, time::Duration};

use aks_sim::{AksSim, SimConfig};
use k8s_openapi::{
    api::{coordination::v1::Lease, core::v1::Node},
    apimachinery::pkg::api::resource::Quantity,
};
use kaito_api::{
    NodeClaim, NodeRequest,
    karpenter::{NodeClaimSpec, NodeClassRef, Requirement, ResourceRequests, Taint},
    labels,
};
use kaito_chart_tests::{
    Chart, Helm, apply_and_establish, controller_binary, eventually, free_port, http_status,
};
use kaito_testenv::{Cluster, ClusterOptions, Identity, Supervisor, create_namespace};
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams},
};

const RELEASE: &str = "gpu-provisioner";
const NAMESPACE: &str = "gpu-provisioner";
const SERVICE_ACCOUNT: &str = "gpu-provisioner";
const CLAIM: &str = "wsidentity0";
const GPU_SKU: &str = "Standard_NC24ads_A100_v4";
/// What the AKS workload identity webhook would inject for the identity.
const CLIENT_ID: &str = "5a0e2a1c-6d0b-4b0e-9c55-2f0f3c3d4e5f";
const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const WAIT: Duration = Duration::from_secs(120);

/// A NodeClaim as the workspace controller makes them.
fn node_claim() -> NodeClaim {
    let mut claim = NodeClaim::new(
        CLAIM,
        NodeClaimSpec {
            node_class_ref: NodeClassRef {
                group: "kaito.sh".into(),
                kind: "KaitoNodeClass".into(),
                name: "default".into(),
            },
            requirements: vec![
                Requirement::is_in(labels::LABEL_INSTANCE_TYPE, &[GPU_SKU]),
                Requirement::is_in(labels::LABEL_NODEPOOL, &[labels::NODEPOOL_KAITO]),
            ],
            resources: Some(ResourceRequests {
                requests: Some(BTreeMap::from([(
                    labels::RESOURCE_STORAGE.to_owned(),
                    Quantity("50Gi".to_owned()),
                )])),
            }),
            taints: Some(vec![Taint::sku_gpu()]),
            ..NodeClaimSpec::default()
        },
    );
    claim.metadata.labels = Some(BTreeMap::from([
        (labels::LABEL_WORKSPACE.to_owned(), "identity".to_owned()),
        (
            labels::LABEL_WORKSPACE_NAMESPACE.to_owned(),
            "default".to_owned(),
        ),
        (
            labels::LABEL_NODEPOOL.to_owned(),
            labels::NODEPOOL_KAITO.to_owned(),
        ),
    ]));
    claim
}

#[tokio::test]
async fn the_provisioner_realises_a_node_claim_with_only_the_rights_its_chart_grants() {
    let identity = Identity::service_account(NAMESPACE, SERVICE_ACCOUNT);
    let cluster = Cluster::start(ClusterOptions::default().identity(identity.clone()))
        .await
        .expect("the cluster starts");
    let admin = cluster.client().unwrap();
    create_namespace(&admin, NAMESPACE).await.unwrap();

    let settings = aks_sim::Settings {
        create_delay: Duration::from_millis(500),
        delete_delay: Duration::from_millis(500),
        ..aks_sim::Settings::default()
    };
    let sim = AksSim::start(
        SimConfig::default()
            .with_kube(admin.clone())
            .with_settings(settings),
    )
    .await
    .expect("the AKS stand-in starts");
    let cloud = sim.cloud().clone();
    let authority = sim.authority_host();
    let sets = [
        ("azure.subscriptionId", cloud.subscription.as_str()),
        ("azure.resourceGroup", cloud.resource_group.as_str()),
        ("azure.clusterName", cloud.cluster.as_str()),
        ("azure.location", cloud.location.as_str()),
        ("azure.clientId", CLIENT_ID),
        ("azure.tenantId", TENANT_ID),
        // The private-cloud settings, pointed at the stand-in.
        ("azure.armEndpoint", sim.base_url()),
        ("azure.authorityHost", authority.as_str()),
        ("azure.caBundle.configMapName", "aks-sim-ca"),
        ("controller.settings.operationPollInterval", "1s"),
        ("logFormat", "text"),
        ("logLevel", "debug"),
    ];
    let rendered = Helm::offline()
        .template(Chart::GpuProvisioner, RELEASE, NAMESPACE, &sets)
        .expect("the chart renders");
    let yaml = rendered.to_yaml(|doc| doc["kind"] != "Deployment").unwrap();
    let kubeconfig = cluster.kubeconfig_path();
    apply_and_establish(
        kubeconfig,
        &yaml,
        &["crd/nodeclaims.karpenter.sh", "crd/machines.karpenter.sh"],
    )
    .unwrap();

    // What the kubelet and the workload identity webhook would provide in a pod.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0In0.c2ln").unwrap();
    let (admin_port, grpc_port) = (free_port().unwrap(), free_port().unwrap());
    let mut env = rendered
        .container_env(RELEASE, NAMESPACE, "gpu-provisioner-0")
        .unwrap();
    assert!(env.contains(&("ARM_ENDPOINT".to_owned(), sim.base_url().to_owned())));
    assert!(env.contains(&("LEADER_ELECT".to_owned(), "true".to_owned())));
    let local = [
        ("METRICS_PORT", admin_port.to_string()),
        ("HEALTH_PROBE_PORT", admin_port.to_string()),
        ("GRPC_PORT", grpc_port.to_string()),
        ("BIND_ADDRESS", "127.0.0.1".to_owned()),
        ("AZURE_CA_BUNDLE", ca.display().to_string()),
        ("AZURE_CLIENT_ID", CLIENT_ID.to_owned()),
        ("AZURE_TENANT_ID", TENANT_ID.to_owned()),
        ("AZURE_FEDERATED_TOKEN_FILE", token.display().to_string()),
        (
            "KUBECONFIG",
            cluster
                .kubeconfig_for(&identity.name)
                .unwrap()
                .display()
                .to_string(),
        ),
    ];
    for (name, value) in local {
        env.retain(|(existing, _)| existing != name);
        env.push((name.to_owned(), value));
    }
    let mut command = Command::new(controller_binary("gpu-provisioner").unwrap());
    command.env_clear().envs(env);
    let mut supervisor = Supervisor::new(&cluster.log_dir()).unwrap();
    supervisor.spawn("gpu-provisioner", command).unwrap();
    let log = supervisor.log_of("gpu-provisioner");
    eprintln!("provisioner log: {}", log.display());

    let readyz = format!("http://127.0.0.1:{admin_port}/readyz");
    let ready = eventually("the provisioner to be ready", WAIT, || async {
        (http_status(&readyz).await == Some(200)).then_some(())
    })
    .await;
    if ready.is_err() {
        supervisor.check_running().unwrap();
    }
    ready.unwrap();
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NAMESPACE);
    assert!(
        leases
            .get_opt("gpu-provisioner-leader-election")
            .await
            .unwrap()
            .is_some(),
        "the leader holds the chart's Lease"
    );

    let claims: Api<NodeClaim> = Api::all(admin.clone());
    claims
        .create(&PostParams::default(), &node_claim())
        .await
        .unwrap();
    let claim = eventually("the NodeClaim to be Ready", WAIT, || async {
        let claim = claims.get_opt(CLAIM).await.ok()??;
        claim.is_ready().then_some(claim)
    })
    .await
    .unwrap();
    let node_name = claim
        .status
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .expect("a node name");
    let nodes: Api<Node> = Api::all(admin.clone());
    assert!(nodes.get_opt(&node_name).await.unwrap().is_some());

    claims
        .delete(CLAIM, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the claim, its pool and its node to be gone",
        WAIT,
        || async {
            let claim_gone = claims.get_opt(CLAIM).await.ok()?.is_none();
            let node_gone = nodes.get_opt(&node_name).await.ok()?.is_none();
            let pools_gone = sim.pools().is_empty();
            (claim_gone && node_gone && pools_gone).then_some(())
        },
    )
    .await
    .unwrap();
    let left = nodes
        .list(&ListParams::default().labels(labels::LABEL_WORKSPACE))
        .await
        .unwrap();
    assert!(left.items.is_empty());

    supervisor.check_running().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let denied: Vec<&str> = text
        .lines()
        .filter(|line| line.to_ascii_lowercase().contains("forbidden"))
        .collect();
    assert!(
        denied.is_empty(),
        "the provisioner was refused:\n{}",
        denied.join("\n")
    );
    drop(supervisor);
    sim.stop().await;
}
