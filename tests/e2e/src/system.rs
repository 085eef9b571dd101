//! The whole system on one machine: the local control plane, the AKS stand-in, and both
//! controllers as processes configured the way their charts configure them.

use std::{
    collections::BTreeMap,
    ops::Deref,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use aks_sim::{AksSim, SimConfig, SimHandle};
use anyhow::{Context as _, bail};
use k8s_openapi::api::{
    admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
    core::v1::{ConfigMap, Namespace},
};
use kaito_api::{NodeRequestKind, Workspace, templates};
use kaito_testenv::{Cluster, ClusterOptions, Identity, Supervisor};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use tempfile::TempDir;
use workspace_controller::webhook::registration;

/// Namespace of the workspace controller (its default ConfigMaps and webhook Secret).
pub const WORKSPACE_NAMESPACE: &str = "kaito-workspace";
/// Namespace of the GPU provisioner.
pub const PROVISIONER_NAMESPACE: &str = "gpu-provisioner";
/// ServiceAccount identity of the workspace chart.
pub const WORKSPACE_SA: (&str, &str) = (WORKSPACE_NAMESPACE, "kaito-workspace-sa");
/// ServiceAccount identity of the provisioner chart.
pub const PROVISIONER_SA: (&str, &str) = (PROVISIONER_NAMESPACE, "gpu-provisioner");
/// Registry the demo's public preset images are named after.
pub const PRESET_REGISTRY: &str = "mcr.microsoft.com/aks/kaito";
/// Image of the tuning data tool.
pub const DATA_TOOL_IMAGE: &str = "ghcr.io/kaito-rs/kaito-data:0.1.0";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID: &str = "5a0e2a1c-6d0b-4b0e-9c55-2f0f3c3d4e5f";

/// The CRDs both charts ship.
pub fn cluster_options() -> ClusterOptions {
    ClusterOptions::default()
        .crd(include_str!(
            "../../../charts/workspace/templates/crds/kaito.sh_workspaces.yaml"
        ))
        .crd(include_str!(
            "../../../charts/gpu-provisioner/templates/crds/karpenter.sh_machines.yaml"
        ))
        .crd(include_str!(
            "../../../charts/gpu-provisioner/templates/crds/karpenter.sh_nodeclaims.yaml"
        ))
        .identity(Identity::service_account(WORKSPACE_SA.0, WORKSPACE_SA.1))
        .identity(Identity::service_account(
            PROVISIONER_SA.0,
            PROVISIONER_SA.1,
        ))
}

/// How to run the system.
#[derive(Clone, Debug)]
pub struct Options {
    /// Node-request kind the workspace controller creates.
    pub node_request_api: NodeRequestKind,
    /// How long the stand-in takes to create or delete an agent pool.
    pub cloud_delay: Duration,
    /// Run the workspace controller as this identity instead of the administrator.
    pub workspace_identity: Option<String>,
    /// Run the provisioner as this identity instead of the administrator.
    pub provisioner_identity: Option<String>,
    /// Directory of the controller binaries (default: next to this executable).
    pub bin_dir: Option<PathBuf>,
    /// Extra `KEY=value` settings of the workspace controller.
    pub workspace_env: Vec<(String, String)>,
    /// Extra `KEY=value` settings of the provisioner.
    pub provisioner_env: Vec<(String, String)>,
    /// Workspace controller processes; more than one elect a leader.
    pub workspace_replicas: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            node_request_api: NodeRequestKind::Machine,
            cloud_delay: Duration::from_millis(500),
            workspace_identity: None,
            provisioner_identity: None,
            bin_dir: None,
            workspace_env: Vec::new(),
            provisioner_env: Vec::new(),
            workspace_replicas: 1,
        }
    }
}

/// A cluster the system runs on: its own, or a test binary's shared one.
pub enum ClusterRef {
    /// Started for this system and stopped with it.
    Owned(Box<Cluster>),
    /// Shared by the tests of one binary.
    Shared(&'static Cluster),
}

impl Deref for ClusterRef {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        match self {
            ClusterRef::Owned(c) => c,
            ClusterRef::Shared(c) => c,
        }
    }
}

/// The running system.
pub struct System {
    // Field order: controllers stop before the stand-in and the cluster go.
    supervisor: Supervisor,
    /// The AKS stand-in.
    pub sim: SimHandle,
    cluster: ClusterRef,
    _dir: TempDir,
    /// Admin port (/metrics, /readyz) of the workspace controller.
    pub workspace_admin_port: u16,
    /// Admin port (/metrics, /readyz) of the provisioner.
    pub provisioner_admin_port: u16,
    /// gRPC port of the provisioner.
    pub provisioner_grpc_port: u16,
}

/// Process name of workspace controller replica `n` (the first keeps the plain name).
pub fn controller_name(n: usize) -> String {
    match n {
        0 => "workspace-controller".to_owned(),
        n => format!("workspace-controller-{n}"),
    }
}

/// Where the controller binaries are: `KAITO_BIN_DIR`, else the first directory up from this
/// executable that holds them (cargo puts test executables one level below the binaries).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KAITO_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("locate this executable")?;
    exe.ancestors()
        .skip(1)
        .find(|d| d.join("workspace-controller").is_file() && d.join("gpu-provisioner").is_file())
        .map(Path::to_path_buf)
        .context("workspace-controller and gpu-provisioner are not built: run `cargo build --bins`")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).context(format!("create namespace {name}")),
    }
}

/// What the workspace chart installs besides the controller: the default parameter
/// ConfigMaps and the webhook configurations (here by URL; the controller adds the CA).
async fn install_chart_objects(client: &Client, webhook_url: &str) -> anyhow::Result<()> {
    let params = PatchParams::apply("kaito-e2e").force();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), WORKSPACE_NAMESPACE);
    for (name, key, text) in templates::DEFAULT_CONFIG_MAPS {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(key.to_owned(), text.to_owned())])),
            ..Default::default()
        };
        api.patch(name, &params, &Patch::Apply(&cm))
            .await
            .context(format!("apply {name}"))?;
    }
    let validating = registration::validating(webhook_url, "");
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(
            registration::VALIDATING_NAME,
            &params,
            &Patch::Apply(&validating),
        )
        .await
        .context("apply the validating webhook configuration")?;
    let mutating = registration::mutating(webhook_url, "");
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch(
            registration::MUTATING_NAME,
            &params,
            &Patch::Apply(&mutating),
        )
        .await
        .context("apply the mutating webhook configuration")?;
    Ok(())
}

impl System {
    /// Starts the stand-in and both controllers on `cluster`, and waits until they serve.
    pub async fn start(cluster: ClusterRef, options: Options) -> anyhow::Result<System> {
        let client = cluster.client()?;
        // Inside the cluster's dir, so that a system kept in a static (never dropped) leaves
        // nothing the cluster's own clean-up misses.
        let dir = tempfile::Builder::new()
            .prefix("system-")
            .tempdir_in(cluster.temp_dir())?;
        let bins = options.bin_dir.clone().map_or_else(bin_dir, Ok)?;
        for ns in [WORKSPACE_NAMESPACE, PROVISIONER_NAMESPACE] {
            ensure_namespace(&client, ns).await?;
        }
        let webhook_port = free_port()?;
        let webhook_url = format!("https://127.0.0.1:{webhook_port}");
        install_chart_objects(&client, &webhook_url).await?;

        let settings = aks_sim::Settings {
            create_delay: options.cloud_delay,
            delete_delay: options.cloud_delay,
            ..aks_sim::Settings::default()
        };
        let sim = AksSim::start(
            SimConfig::default()
                .with_kube(client.clone())
                .with_settings(settings),
        )
        .await
        .context("start the AKS stand-in")?;
        std::fs::write(dir.path().join("ca.pem"), sim.ca_pem())?;
        // A JWT-shaped projected token, as the kubelet would project one for the pod.
        std::fs::write(
            dir.path().join("token"),
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0In0.c2ln",
        )?;

        let mut supervisor = Supervisor::new(&cluster.log_dir())?;
        let kubeconfig = |identity: &Option<String>| -> anyhow::Result<PathBuf> {
            Ok(match identity {
                Some(id) => cluster.kubeconfig_for(id)?.to_path_buf(),
                None => cluster.kubeconfig_path().to_path_buf(),
            })
        };
        let (padmin, pgrpc, wadmin) = (free_port()?, free_port()?, free_port()?);
        let cloud = sim.cloud().clone();
        let mut provisioner = Command::new(bins.join("gpu-provisioner"));
        provisioner
            .env_clear()
            .env("ARM_SUBSCRIPTION_ID", &cloud.subscription)
            .env("ARM_RESOURCE_GROUP", &cloud.resource_group)
            .env("AZURE_CLUSTER_NAME", &cloud.cluster)
            .env("LOCATION", &cloud.location)
            .env("ARM_ENDPOINT", sim.base_url())
            .env("AZURE_AUTHORITY_HOST", sim.authority_host())
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", CLIENT_ID)
            .env("AZURE_FEDERATED_TOKEN_FILE", dir.path().join("token"))
            .env("AZURE_CA_BUNDLE", dir.path().join("ca.pem"))
            .env("KUBECONFIG", kubeconfig(&options.provisioner_identity)?)
            .env("SYSTEM_NAMESPACE", PROVISIONER_NAMESPACE)
            .env("METRICS_PORT", padmin.to_string())
            .env("HEALTH_PROBE_PORT", padmin.to_string())
            .env("GRPC_PORT", pgrpc.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("LEADER_ELECT", "false")
            .env("OPERATION_POLL_INTERVAL", "1s")
            .env("GC_GRACE_PERIOD", "10m")
            .env("LOG_FORMAT", "text")
            .env("LOG_LEVEL", "info")
            .envs(
                options
                    .provisioner_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
        supervisor.spawn("gpu-provisioner", provisioner)?;

        // Replicas beyond the first elect a leader and leave the webhook to the first, as a
        // chart with several replicas would behind one Service.
        let replicas = options.workspace_replicas.max(1);
        for replica in 0..replicas {
            let name = controller_name(replica);
            let admin = if replica == 0 { wadmin } else { free_port()? };
            let mut controller = Command::new(bins.join("workspace-controller"));
            controller
                .env_clear()
                .env("NODE_REQUEST_API", options.node_request_api.as_str())
                .env("CLOUD_PROVIDER", "azure")
                .env("PRESET_REGISTRY_NAME", PRESET_REGISTRY)
                .env("DATA_TOOL_IMAGE", DATA_TOOL_IMAGE)
                .env("SYSTEM_NAMESPACE", WORKSPACE_NAMESPACE)
                .env("METRICS_BIND_ADDRESS", format!("127.0.0.1:{admin}"))
                .env("HEALTH_PROBE_BIND_ADDRESS", format!("127.0.0.1:{admin}"))
                .env("WEBHOOK_ENABLED", (replica == 0).to_string())
                .env("WEBHOOK_BIND_ADDRESS", "127.0.0.1")
                .env("WEBHOOK_PORT", webhook_port.to_string())
                .env("WEBHOOK_SERVICE", "kaito-workspace")
                .env("WEBHOOK_URL", &webhook_url)
                .env("LEADER_ELECT", (replicas > 1).to_string())
                .env("POD_NAME", &name)
                .env("KUBECONFIG_PATH", kubeconfig(&options.workspace_identity)?)
                .env("LOG_FORMAT", "text")
                .env("LOG_LEVEL", "info")
                .envs(
                    options
                        .workspace_env
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
            supervisor.spawn(&name, controller)?;
        }

        let system = System {
            supervisor,
            sim,
            cluster,
            _dir: dir,
            workspace_admin_port: wadmin,
            provisioner_admin_port: padmin,
            provisioner_grpc_port: pgrpc,
        };
        system.wait_ready(&client).await?;
        Ok(system)
    }

    async fn wait_ready(&self, client: &Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        for port in [self.workspace_admin_port, self.provisioner_admin_port] {
            while !readyz(port).await {
                if Instant::now() > deadline {
                    bail!(
                        "controller on port {port} not ready; logs in {}",
                        self.log_dir().display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        while !webhook_denies_probe(client).await {
            if Instant::now() > deadline {
                bail!(
                    "the webhook does not answer; logs in {}",
                    self.log_dir().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// A fresh admin client (clients belong to the runtime that made them).
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(self.cluster.client()?)
    }

    /// Where every component logs.
    pub fn log_dir(&self) -> PathBuf {
        self.cluster.log_dir()
    }

    /// The process id of a controller (`workspace-controller` or `gpu-provisioner`).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.supervisor.pid(name)
    }

    /// Kills a controller at once, as a crash or an eviction would.
    pub fn kill(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.pid(name).context(format!("no process {name}"))?;
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill {name} ({pid}) failed");
        Ok(())
    }

    /// Fails if a controller has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        Ok(self.supervisor.check_running()?)
    }

    /// Runs kubectl against the cluster with optional stdin; returns (success, output).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<(bool, String)> {
        kubectl(self.cluster.kubeconfig_path(), args, stdin)
    }
}

/// Runs kubectl with a kubeconfig and optional stdin; returns (success, stdout + stderr).
pub fn kubectl(
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<(bool, String)> {
    let out = kaito_testenv::kubectl(kubeconfig, args, stdin)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

async fn readyz(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200")
}

/// Whether the API server sends Workspaces through our webhook: an invalid dry-run create is
/// denied by it.
async fn webhook_denies_probe(client: &Client) -> bool {
    let probe: Result<Workspace, _> = yaml_serde::from_str(
        "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: webhook-probe}\n\
         resource: {labelSelector: {matchLabels: {a: b}}}\n\
         inference: {preset: {name: not-a-model}}\n",
    );
    let Ok(probe) = probe else { return false };
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match Api::<Workspace>::namespaced(client.clone(), "default")
        .create(&params, &probe)
        .await
    {
        Err(kube::Error::Api(s)) => s.message.contains(registration::VALIDATING_NAME),
        _ => false,
    }
}
