//! Workloads, custom resources and RBAC against the cluster all tests of this binary share.
//!
//! Each test works in its own namespace, on simulated nodes only its own pods select.

// Helpers of integration tests are not `#[test]` functions, so the lint exemption for tests
// does not reach them; failing loudly is what a test helper is for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::BTreeSet, future::Future, process::Command, time::Duration};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        batch::v1::Job,
        core::v1::{Pod, Secret},
        rbac::v1::{Role, RoleBinding},
    },
    apimachinery::pkg::api::resource::Quantity,
};
use kaito_testenv::{
    Cluster, ClusterOptions, GPU_RESOURCE, Identity, SimNode, create_namespace,
    shared_cluster_with, tools, wait_node_ready,
};
use kube::{
    Api, Client, CustomResource, CustomResourceExt, Resource,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    runtime::wait::{Condition, await_condition},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How long any single expectation in these tests may take to come true.
const WAIT: Duration = Duration::from_secs(60);

/// A label each test puts on its own simulated nodes and selects in its own pods.
const POOL_LABEL: &str = "testenv.kaito.sh/pool";

/// The namespace and service account of the identity with restricted RBAC.
const READER_NAMESPACE: &str = "rbac-reader";
const READER: &str = "pod-reader";

/// A user whose requests the audit-log test looks for.
const AUDITED: &str = "audited-user";

/// A tiny custom resource with a status subresource.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "testenv.kaito.sh",
    version = "v1",
    kind = "Widget",
    namespaced
)]
#[kube(status = "WidgetStatus")]
struct WidgetSpec {
    size: u32,
}

/// The status of a Widget.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
struct WidgetStatus {
    phase: String,
}

fn options() -> ClusterOptions {
    ClusterOptions::default()
        .crd(yaml_serde::to_string(&Widget::crd()).unwrap())
        .identity(Identity::service_account(READER_NAMESPACE, READER))
        .identity(Identity::user(AUDITED, &[]))
        .audit_log()
}

async fn cluster() -> &'static Cluster {
    shared_cluster_with(options()).await.unwrap()
}

#[tokio::test]
async fn a_gpu_deployment_lands_on_the_two_labelled_gpu_nodes_and_becomes_ready() {
    let client = cluster().await.client().unwrap();
    let namespace = "gpu-deployment";
    create_namespace(&client, namespace).await.unwrap();
    for name in ["gpu-deployment-0", "gpu-deployment-1"] {
        let node = SimNode::gpu(name, "Standard_NC24ads_A100_v4", 1)
            .label(POOL_LABEL, namespace)
            .taint("sku", "gpu", "NoSchedule");
        cluster().await.add_node(&node).await.unwrap();
        // kwok makes the node Ready and leaves the GPUs its creator gave it.
        let ready = wait_node_ready(&client, name, WAIT).await.unwrap();
        let allocatable = ready.status.unwrap().allocatable.unwrap();
        assert_eq!(allocatable[GPU_RESOURCE], Quantity("1".into()));
    }
    // A GPU node without the label: the required affinity must keep pods off it.
    let decoy = SimNode::gpu("gpu-deployment-decoy", "Standard_NC24ads_A100_v4", 1);
    let decoy = decoy.taint("sku", "gpu", "NoSchedule");
    cluster().await.add_node(&decoy).await.unwrap();

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = deployment("inference", namespace, 1);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let ready = await_condition(deployments, "inference", ready_replicas(2));
    within("two ready replicas", ready).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let nodes: BTreeSet<String> = pods
        .list(&ListParams::default().labels("app=inference"))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|pod| pod.spec?.node_name)
        .collect();
    assert_eq!(
        nodes,
        BTreeSet::from(["gpu-deployment-0".into(), "gpu-deployment-1".into()])
    );
}

#[tokio::test]
async fn a_job_runs_to_success() {
    let client = cluster().await.client().unwrap();
    let namespace = "job";
    create_namespace(&client, namespace).await.unwrap();
    let node = SimNode::new("job-0", "Standard_D4s_v3").label(POOL_LABEL, namespace);
    cluster().await.add_node(&node).await.unwrap();

    let jobs: Api<Job> = Api::namespaced(client, namespace);
    let job: Job = serde_json::from_value(json!({
        "metadata": { "name": "tuning" },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": { POOL_LABEL: namespace },
                    "containers": [{ "name": "tune", "image": "example.com/tune:1" }],
                },
            },
        },
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();

    let succeeded = |job: Option<&Job>| {
        job.and_then(|job| job.status.as_ref()?.succeeded)
            .is_some_and(|count| count == 1)
    };
    let done = await_condition(jobs, "tuning", succeeded);
    within("the job to succeed", done).await.unwrap();
}

#[tokio::test]
async fn deleting_a_deployment_garbage_collects_its_pods() {
    let client = cluster().await.client().unwrap();
    let namespace = "garbage-collection";
    create_namespace(&client, namespace).await.unwrap();
    let node = SimNode::new("garbage-collection-0", "Standard_D4s_v3").label(POOL_LABEL, namespace);
    cluster().await.add_node(&node).await.unwrap();

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let web = deployment("web", namespace, 0);
    deployments
        .create(&PostParams::default(), &web)
        .await
        .unwrap();
    let ready = await_condition(deployments.clone(), "web", ready_replicas(2));
    within("two ready replicas", ready).await.unwrap();

    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let gone = poll(|| async {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .is_empty()
    });
    within("the pods to be collected", gone).await;
}

#[tokio::test]
async fn a_custom_resource_is_created_listed_watched_and_status_patched() {
    let client = cluster().await.client().unwrap();
    let namespace = "custom-resources";
    create_namespace(&client, namespace).await.unwrap();
    let widgets: Api<Widget> = Api::namespaced(client, namespace);
    let mut events = widgets
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();

    let widget = Widget::new("small", WidgetSpec { size: 1 });
    widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();

    let listed = widgets.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].spec, WidgetSpec { size: 1 });
    let added = async {
        while let Some(event) = events.try_next().await.unwrap() {
            if let WatchEvent::Added(widget) = event {
                return widget;
            }
        }
        panic!("the watch ended");
    };
    let seen = within("the watch event", added).await;
    assert_eq!(seen.meta().name.as_deref(), Some("small"));

    let status = json!({ "status": { "phase": "Ready" } });
    let patched = widgets
        .patch_status("small", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(
        patched.status,
        Some(WidgetStatus {
            phase: "Ready".into()
        })
    );
    // Through the status subresource the spec, and so the generation, stay as they were.
    assert_eq!(patched.meta().generation, Some(1));
    assert_eq!(patched.spec, WidgetSpec { size: 1 });
}

#[tokio::test]
async fn an_identity_with_a_pod_reader_role_may_list_pods_but_not_secrets_or_create_deployments() {
    let cluster = cluster().await;
    let admin = cluster.client().unwrap();
    create_namespace(&admin, READER_NAMESPACE).await.unwrap();
    grant_pod_reading(&admin, READER_NAMESPACE, READER).await;
    let identity = Identity::service_account(READER_NAMESPACE, READER);
    let reader = cluster.client_as(&identity.name).unwrap();

    // RBAC reaches the authorizer through a watch: wait until the grant is in effect.
    let pods: Api<Pod> = Api::namespaced(reader.clone(), READER_NAMESPACE);
    let allowed = poll(|| async { pods.list(&ListParams::default()).await.is_ok() });
    within("the role binding to take effect", allowed).await;

    let secrets: Api<Secret> = Api::namespaced(reader.clone(), READER_NAMESPACE);
    assert_forbidden(secrets.list(&ListParams::default()).await);
    let deployments: Api<Deployment> = Api::namespaced(reader.clone(), READER_NAMESPACE);
    let not_allowed = deployment("not-allowed", READER_NAMESPACE, 0);
    assert_forbidden(
        deployments
            .create(&PostParams::default(), &not_allowed)
            .await,
    );
    let elsewhere: Api<Pod> = Api::namespaced(reader, "default");
    assert_forbidden(elsewhere.list(&ListParams::default()).await);
}

#[tokio::test]
async fn the_audit_log_names_the_user_verb_and_resource_of_each_request() {
    let cluster = cluster().await;
    let audited = cluster.client_as(AUDITED).unwrap();
    // Without a role the request is refused, and audited all the same.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(audited);
    assert_forbidden(namespaces.list(&ListParams::default()).await);

    let log = cluster
        .audit_log_path()
        .expect("the options ask for an audit log");
    let logged = poll(|| async {
        std::fs::read_to_string(log).unwrap().lines().any(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            event["user"]["username"] == AUDITED
                && event["verb"] == "list"
                && event["objectRef"]["resource"] == "namespaces"
                && event["responseStatus"]["code"] == 403
        })
    });
    within("the request to reach the audit log", logged).await;
}

#[tokio::test]
async fn the_tests_of_one_binary_share_one_cluster_that_kubectl_reaches() {
    let first = cluster().await;
    let second = shared_cluster_with(options()).await.unwrap();
    assert!(std::ptr::eq(first, second));
    assert!(
        shared_cluster_with(ClusterOptions::default())
            .await
            .is_err()
    );

    let kubectl = tools().unwrap().kubectl;
    let whoami = |kubeconfig: &std::path::Path| {
        let output = Command::new(&kubectl)
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args([
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(whoami(first.kubeconfig_path()), kaito_testenv::ADMIN_USER);
    let reader = Identity::service_account(READER_NAMESPACE, READER).name;
    assert_eq!(whoami(first.kubeconfig_for(&reader).unwrap()), reader);
}

/// A Deployment of two replicas that require nodes of `pool`; with `gpus` above zero each pod
/// requests that many GPUs and tolerates the `sku=gpu:NoSchedule` taint of GPU nodes.
fn deployment(name: &str, pool: &str, gpus: u32) -> Deployment {
    let mut pod_spec = json!({
        "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{ "matchExpressions": [
                { "key": POOL_LABEL, "operator": "In", "values": [pool] },
            ]}],
        }}},
        "containers": [{ "name": "main", "image": format!("example.com/{name}:1") }],
    });
    if gpus > 0 {
        let gpus = json!({ "nvidia.com/gpu": gpus.to_string() });
        pod_spec["containers"][0]["resources"] = json!({ "requests": gpus, "limits": gpus });
        pod_spec["tolerations"] =
            json!([{ "key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule" }]);
    }
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": pod_spec },
        },
    }))
    .unwrap()
}

/// Lets the service account get and list pods in its namespace, and nothing else.
async fn grant_pod_reading(admin: &Client, namespace: &str, account: &str) {
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": "pod-reader" },
        "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"] }],
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "pod-reader" },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "pod-reader",
        },
        "subjects": [{ "kind": "ServiceAccount", "name": account, "namespace": namespace }],
    }))
    .unwrap();
    let params = PostParams::default();
    Api::<Role>::namespaced(admin.clone(), namespace)
        .create(&params, &role)
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .create(&params, &binding)
        .await
        .unwrap();
}

fn ready_replicas(count: i32) -> impl Condition<Deployment> {
    move |deployment: Option<&Deployment>| {
        deployment
            .and_then(|deployment| deployment.status.as_ref()?.ready_replicas)
            .is_some_and(|ready| ready == count)
    }
}

fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) {
    match result {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

/// Runs `future` to completion within [`WAIT`], or fails naming what it waited for.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Re-checks `ready` every 100 ms until it holds; always bounded by [`within`].
async fn poll<F, Fut>(mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    while !ready().await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
