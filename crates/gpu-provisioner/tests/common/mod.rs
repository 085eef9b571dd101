//! The harness of the end-to-end tests: the shared local control plane, an AKS stand-in
//! per test, and the real `gpu-provisioner` binary as a process authenticating with a
//! federated token file through the stand-in's token endpoint.
// Harness code fails the test loudly, like the tests themselves.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{
    collections::BTreeMap,
    future::Future,
    net::TcpListener,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use aks_sim::{AksSim, SimConfig, SimHandle};
use k8s_openapi::{api::core::v1::Node, apimachinery::pkg::api::resource::Quantity};
use kaito_api::{
    Machine, NodeClaim, NodeRequest,
    karpenter::{MachineSpec, NodeClaimSpec, NodeClassRef, Requirement, ResourceRequests, Taint},
    labels,
};
use kaito_testenv::{Cluster, ClusterOptions, shared_cluster_with};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
};
use tempfile::TempDir;
use tokio::{process::Child, sync::Mutex};

/// Tests of one binary share a cluster and run one at a time: every provisioner acts on
/// every node request of the cluster.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The instance type the tests ask for.
pub const GPU_SKU: &str = "Standard_NC24ads_A100_v4";

/// A tenant id of the right shape.
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "5a0e2a1c-6d0b-4b0e-9c55-2f0f3c3d4e5f";

/// The shared cluster, with the node-request CRDs of the chart installed.
pub async fn cluster() -> &'static Cluster {
    let options = ClusterOptions::default()
        .crd(include_str!(
            "../../../../charts/gpu-provisioner/templates/crds/karpenter.sh_machines.yaml"
        ))
        .crd(include_str!(
            "../../../../charts/gpu-provisioner/templates/crds/karpenter.sh_nodeclaims.yaml"
        ));
    shared_cluster_with(options)
        .await
        .expect("the test cluster starts")
}

/// Timings of a provisioner under test (short, so tests run in seconds).
#[derive(Clone, Debug)]
pub struct Timings {
    pub gc_interval: &'static str,
    pub gc_grace: &'static str,
    pub launch_retry: &'static str,
    pub poll: &'static str,
    pub probe: &'static str,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            gc_interval: "2s",
            gc_grace: "10m",
            launch_retry: "3s",
            poll: "1s",
            probe: "1s",
        }
    }
}

/// One test's world: the cluster, a stand-in, and (usually) a provisioner.
pub struct World {
    pub cluster: &'static Cluster,
    pub client: Client,
    pub sim: SimHandle,
    pub dir: TempDir,
    pub timings: Timings,
    pub grpc_port: u16,
    pub admin_port: u16,
    provisioner: Option<Child>,
    starts: u32,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl World {
    /// A stand-in joined to the shared cluster, without a provisioner yet.
    pub async fn new(timings: Timings) -> World {
        let serial = SERIAL.lock().await;
        let cluster = cluster().await;
        let client = cluster.client().expect("an admin client");
        let settings = aks_sim::Settings {
            create_delay: Duration::from_millis(500),
            delete_delay: Duration::from_millis(500),
            ..aks_sim::Settings::default()
        };
        let config = SimConfig::default()
            .with_kube(client.clone())
            .with_settings(settings);
        let sim = AksSim::start(config).await.expect("the stand-in starts");
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("ca.pem"), sim.ca_pem()).expect("CA written");
        // A JWT-shaped projected service-account token, as the kubelet would project it.
        std::fs::write(
            dir.path().join("token"),
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0In0.c2ln",
        )
        .expect("token written");
        World {
            cluster,
            client,
            sim,
            dir,
            timings,
            grpc_port: free_port(),
            admin_port: free_port(),
            provisioner: None,
            starts: 0,
            _serial: serial,
        }
    }

    /// A world with a running provisioner.
    pub async fn started(timings: Timings) -> World {
        let mut world = World::new(timings).await;
        world.start_provisioner();
        world.wait_until_ready().await;
        world
    }

    /// Starts the real binary against the stand-in and the cluster.
    pub fn start_provisioner(&mut self) {
        self.starts += 1;
        let log = self
            .dir
            .path()
            .join(format!("provisioner-{}.log", self.starts));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        eprintln!("provisioner log: {}", log.display());
        let cloud = self.sim.cloud().clone();
        let t = &self.timings;
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gpu-provisioner"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ARM_SUBSCRIPTION_ID", &cloud.subscription)
            .env("ARM_RESOURCE_GROUP", &cloud.resource_group)
            .env("AZURE_CLUSTER_NAME", &cloud.cluster)
            .env("LOCATION", &cloud.location)
            .env("ARM_ENDPOINT", self.sim.base_url())
            .env("AZURE_AUTHORITY_HOST", self.sim.authority_host())
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", CLIENT)
            .env("AZURE_FEDERATED_TOKEN_FILE", self.dir.path().join("token"))
            .env("AZURE_CA_BUNDLE", self.dir.path().join("ca.pem"))
            .env("KUBECONFIG", self.cluster.kubeconfig_path())
            .env("METRICS_PORT", self.admin_port.to_string())
            .env("HEALTH_PROBE_PORT", self.admin_port.to_string())
            .env("GRPC_PORT", self.grpc_port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("LEADER_ELECT", "false")
            .env("LOG_FORMAT", "text")
            .env("LOG_LEVEL", "info,gpu_provisioner=debug")
            .env("GC_INTERVAL", t.gc_interval)
            .env("GC_GRACE_PERIOD", t.gc_grace)
            .env("LAUNCH_RETRY_INTERVAL", t.launch_retry)
            .env("OPERATION_POLL_INTERVAL", t.poll)
            .env("CLOUD_PROBE_INTERVAL", t.probe)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("the provisioner starts");
        self.provisioner = Some(child);
    }

    /// Kills the provisioner at once, as a crash or an eviction would.
    pub async fn kill_provisioner(&mut self) {
        if let Some(mut child) = self.provisioner.take() {
            let _ = child.kill().await;
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_until_ready(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.admin_port);
        eventually(
            "the provisioner to be ready",
            Duration::from_secs(60),
            || async { http_status(&url).await == Some(200) },
        )
        .await;
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.admin_port))
            .await
            .unwrap_or_default()
    }

    /// Deletes every node request the test made and waits until they are gone.
    pub async fn clean_up(&self, names: &[&str]) {
        let claims: Api<NodeClaim> = Api::all(self.client.clone());
        let machines: Api<Machine> = Api::all(self.client.clone());
        for name in names {
            let _ = claims.delete(name, &DeleteParams::default()).await;
            let _ = machines.delete(name, &DeleteParams::default()).await;
        }
        eventually(
            "the node requests to be gone",
            Duration::from_secs(90),
            || async {
                let mut gone = true;
                for name in names {
                    gone &= claims.get_opt(name).await.ok().flatten().is_none();
                    gone &= machines.get_opt(name).await.ok().flatten().is_none();
                }
                gone
            },
        )
        .await;
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// Polls `check` until it holds, failing the test after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn http_get(url: &str) -> Option<String> {
    let response = reqwest::get(url).await.ok()?;
    response.text().await.ok()
}

async fn http_status(url: &str) -> Option<u16> {
    Some(reqwest::get(url).await.ok()?.status().as_u16())
}

/// KAITO's labels on a node request of workspace `ws`.
fn kaito_labels(workspace: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::LABEL_WORKSPACE.to_owned(), workspace.to_owned()),
        (
            labels::LABEL_WORKSPACE_NAMESPACE.to_owned(),
            "default".to_owned(),
        ),
        ("apps".to_owned(), workspace.to_owned()),
    ])
}

fn storage(size: Option<&str>) -> Option<ResourceRequests> {
    size.map(|s| ResourceRequests {
        requests: Some(BTreeMap::from([(
            labels::RESOURCE_STORAGE.to_owned(),
            Quantity(s.into()),
        )])),
    })
}

/// A KAITO NodeClaim for the GPU SKU.
pub fn node_claim(name: &str, disk: Option<&str>) -> NodeClaim {
    let mut claim = NodeClaim::new(
        name,
        NodeClaimSpec {
            node_class_ref: NodeClassRef {
                group: "kaito.sh".into(),
                kind: "KaitoNodeClass".into(),
                name: "default".into(),
            },
            requirements: vec![
                Requirement::is_in(labels::LABEL_INSTANCE_TYPE, &[GPU_SKU]),
                Requirement::is_in(labels::LABEL_NODEPOOL, &["kaito"]),
            ],
            resources: storage(disk),
            taints: Some(vec![Taint::sku_gpu()]),
            ..NodeClaimSpec::default()
        },
    );
    let mut labels = kaito_labels(name);
    labels.insert(labels::LABEL_NODEPOOL.into(), labels::NODEPOOL_KAITO.into());
    claim.metadata.labels = Some(labels);
    claim
}

/// A KAITO Machine for the GPU SKU.
pub fn machine(name: &str, disk: Option<&str>) -> Machine {
    let mut machine = Machine::new(
        name,
        MachineSpec {
            requirements: Some(vec![Requirement::is_in(
                labels::LABEL_INSTANCE_TYPE,
                &[GPU_SKU],
            )]),
            resources: storage(disk),
            taints: Some(vec![Taint::sku_gpu()]),
            ..MachineSpec::default()
        },
    );
    machine.metadata.labels = Some(kaito_labels(name));
    machine
}

/// Creates a node request.
pub async fn create<
    R: NodeRequest + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
>(
    client: &Client,
    request: &R,
) -> R {
    let api: Api<R> = Api::all(client.clone());
    api.create(&PostParams::default(), request)
        .await
        .expect("the node request is created")
}

/// The current node request.
pub async fn get<R: NodeRequest + serde::de::DeserializeOwned + std::fmt::Debug>(
    client: &Client,
    name: &str,
) -> Option<R> {
    Api::<R>::all(client.clone())
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

/// Waits until the node request is Ready and returns it.
pub async fn wait_ready<R: NodeRequest + serde::de::DeserializeOwned + std::fmt::Debug>(
    client: &Client,
    name: &str,
    within: Duration,
) -> R {
    let api: Api<R> = Api::all(client.clone());
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(request)) = api.get_opt(name).await
            && request.is_ready()
        {
            return request;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name} to be Ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The nodes of an agent pool.
pub async fn pool_nodes(client: &Client, pool: &str) -> Vec<Node> {
    let api: Api<Node> = Api::all(client.clone());
    let params = ListParams::default().labels(&format!("{}={pool}", labels::LABEL_AKS_AGENTPOOL));
    api.list(&params).await.map(|l| l.items).unwrap_or_default()
}

/// The node's name, for messages.
pub fn names(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(|n| n.name_any()).collect()
}

/// Temp-dir path of a file, for messages.
pub fn path(world: &World, file: &str) -> PathBuf {
    world.dir.path().join(file)
}
