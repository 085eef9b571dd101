//! Shared set-up of the controller's integration tests: one real local cluster per test
//! binary, the controller running in-process against it, and a small stand-in provisioner
//! that turns node requests into simulated GPU nodes.

#![allow(dead_code)]

pub mod provisioner;

use std::{
    future::Future,
    sync::OnceLock,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Namespace;
use kaito_api::{NodeRequestKind, Workspace};
use kaito_testenv::{Cluster, ClusterOptions, shared_cluster_with};
use kube::{Api, Client, api::PostParams};
use prometheus_client::registry::Registry;
use tokio::sync::OnceCell;
use workspace_controller::{config::Config, controller, metrics::Metrics};

pub const WORKSPACE_CRD: &str =
    include_str!("../../../../charts/workspace/templates/crds/kaito.sh_workspaces.yaml");
pub const MACHINE_CRD: &str =
    include_str!("../../../../charts/gpu-provisioner/templates/crds/karpenter.sh_machines.yaml");
pub const NODECLAIM_CRD: &str =
    include_str!("../../../../charts/gpu-provisioner/templates/crds/karpenter.sh_nodeclaims.yaml");

/// Namespace the controller treats as its own (default ConfigMaps, webhook Secret).
pub const SYSTEM_NAMESPACE: &str = "kaito-system";

/// The cluster of this test binary, with the controller and the stand-in provisioner.
pub struct Env {
    pub cluster: &'static Cluster,
    /// An admin client bound to the calling test's runtime.
    pub client: Client,
    pub kind: NodeRequestKind,
}

static CLUSTER: OnceCell<&'static Cluster> = OnceCell::const_new();
static BACKGROUND: OnceLock<()> = OnceLock::new();

fn options(kind: NodeRequestKind) -> ClusterOptions {
    let request_crd = match kind {
        NodeRequestKind::Machine => MACHINE_CRD,
        NodeRequestKind::NodeClaim => NODECLAIM_CRD,
    };
    ClusterOptions::default()
        .crd(WORKSPACE_CRD)
        .crd(request_crd)
}

/// Controller flags for tests: the given node-request kind, no webhook unless asked.
pub fn config(kind: NodeRequestKind, extra: &[&str]) -> Config {
    let mut args = vec![
        "workspace-controller",
        "--node-request-api",
        kind.as_str(),
        "--system-namespace",
        SYSTEM_NAMESPACE,
        "--webhook",
        "false",
        "--preset-registry",
        "mcr.microsoft.com/aks/kaito",
        "--data-tool-image",
        "ghcr.io/kaito-rs/kaito-data:test",
    ];
    args.extend_from_slice(extra);
    <Config as clap::Parser>::try_parse_from(args).expect("test flags parse")
}

/// Starts (once per binary) the cluster, the controller and the stand-in provisioner, and
/// returns them with a client for the calling test (clients belong to one runtime).
pub async fn env(kind: NodeRequestKind) -> Env {
    env_with(kind, false).await
}

/// Like [`env`], and also serves the admission webhook in-process, registered by URL.
pub async fn env_with_webhook(kind: NodeRequestKind) -> Env {
    env_with(kind, true).await
}

async fn env_with(kind: NodeRequestKind, webhook: bool) -> Env {
    let cluster = *CLUSTER
        .get_or_init(|| async move {
            let cluster = shared_cluster_with(options(kind))
                .await
                .expect("cluster starts");
            ensure_namespace(&cluster.client().expect("client"), SYSTEM_NAMESPACE).await;
            let port = webhook.then(free_port);
            start_background(cluster, kind, port);
            if port.is_some() {
                wait_for_webhook(cluster).await;
            }
            cluster
        })
        .await;
    Env {
        cluster,
        client: cluster.client().expect("admin client"),
        kind,
    }
}

/// Runs the controller, the stand-in provisioner and optionally the webhook on a thread of
/// their own, so they outlive the test that started them.
fn start_background(cluster: &'static Cluster, kind: NodeRequestKind, webhook_port: Option<u16>) {
    BACKGROUND.get_or_init(|| {
        std::thread::Builder::new()
            .name("controller-under-test".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let client = cluster.client().expect("client");
                    tokio::spawn(provisioner::run(client.clone(), kind));
                    if let Some(port) = webhook_port {
                        tokio::spawn(serve_webhook(client.clone(), port));
                    }
                    let mut registry = Registry::default();
                    let metrics = Metrics::register(&mut registry);
                    let never = std::future::pending::<()>();
                    if let Err(e) = controller::run(client, config(kind, &[]), metrics, never).await
                    {
                        eprintln!("controller stopped: {e}");
                    }
                });
            })
            .expect("thread");
    });
}

async fn serve_webhook(client: Client, port: u16) {
    let cfg = workspace_controller::webhook::WebhookConfig {
        addr: ([127, 0, 0, 1], port).into(),
        namespace: SYSTEM_NAMESPACE.into(),
        service: "kaito-workspace".into(),
        url: Some(format!("https://127.0.0.1:{port}")),
        cloud: kaito_api::Cloud::Azure,
    };
    if let Err(e) = workspace_controller::webhook::serve(client, cfg).await {
        eprintln!("webhook stopped: {e}");
    }
}

pub async fn ensure_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

/// Parses a Workspace from YAML and creates it in `namespace`.
pub async fn create_workspace(client: &Client, namespace: &str, yaml: &str) -> Workspace {
    let mut ws: Workspace = yaml_serde::from_str(yaml).expect("workspace yaml");
    ws.metadata.namespace = Some(namespace.into());
    Api::<Workspace>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &ws)
        .await
        .expect("create workspace")
}

/// Polls `check` until it returns `Some`, failing the test with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The condition status of a Workspace, if it has that condition.
pub fn condition<'a>(
    ws: &'a Workspace,
    ty: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    ws.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
}

/// Waits until the Workspace has condition `ty` with `status`, and returns the Workspace.
pub async fn wait_condition(
    client: &Client,
    ns: &str,
    name: &str,
    ty: &str,
    status: &str,
) -> Workspace {
    let api: Api<Workspace> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("{ns}/{name} {ty}={status}"),
        Duration::from_secs(90),
        || {
            let api = api.clone();
            async move {
                let ws = api.get_opt(name).await.ok().flatten()?;
                (condition(&ws, ty)?.status == status).then_some(ws)
            }
        },
    )
    .await
}

/// A controller context whose caches never fill: the view of a controller whose watches lag
/// behind the API server for as long as the test runs.
pub fn stale_context(
    client: Client,
    kind: NodeRequestKind,
) -> std::sync::Arc<workspace_controller::context::Context> {
    use kube::runtime::{events::Reporter, reflector};
    use workspace_controller::context::{Context, Expectations, Stores};
    let stores = Stores {
        nodes: reflector::store().0,
        machines: Some(reflector::store().0),
        node_claims: Some(reflector::store().0),
        deployments: reflector::store().0,
        stateful_sets: reflector::store().0,
        services: reflector::store().0,
        jobs: reflector::store().0,
        pods: reflector::store().0,
        revisions: reflector::store().0,
        owners: Default::default(),
        node_labels: Default::default(),
        selectors: Default::default(),
    };
    let reporter = Reporter {
        controller: "stale-test".into(),
        instance: None,
    };
    let mut registry = Registry::default();
    std::sync::Arc::new(Context {
        reporter,
        client,
        config: config(kind, &[]),
        stores,
        expectations: Expectations::default(),
        backoff: kaito_runtime::backoff::Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(10),
        ),
        metrics: Metrics::register(&mut registry),
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until the API server routes Workspace admission through the webhook: a dry-run
/// create of an invalid Workspace is denied by it.
async fn wait_for_webhook(cluster: &Cluster) {
    let client = cluster.client().expect("client");
    let api: Api<Workspace> = Api::namespaced(client, "default");
    let probe: Workspace = yaml_serde::from_str(
        "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: webhook-probe}\n\
         resource: {labelSelector: {matchLabels: {a: b}}}\n\
         inference: {preset: {name: not-a-real-model}}\n",
    )
    .expect("probe");
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    eventually(
        "the webhook to deny a probe",
        Duration::from_secs(60),
        || {
            let api = api.clone();
            let probe = probe.clone();
            let params = params.clone();
            async move {
                match api.create(&params, &probe).await {
                    Err(kube::Error::Api(s))
                        if s.message.contains("validation.workspace.kaito.sh") =>
                    {
                        Some(())
                    }
                    _ => None,
                }
            }
        },
    )
    .await;
}
