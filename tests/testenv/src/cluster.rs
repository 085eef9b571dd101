//! Starting, using and stopping one local cluster.

use std::{
    collections::BTreeMap,
    fs,
    future::Future,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{
    Api, Client, Config,
    api::{DeleteParams, PostParams},
};
use serde_json::json;

use crate::{
    Error, audit,
    auth::{self, Credential, Identity},
    certs, components,
    components::Layout,
    crds, io_error,
    nodes::{self, SimNode},
    process::{self, Launcher, Process},
    stages,
    tools::{self, Tools},
    workdir::WorkDir,
};

/// How often start-up checks whether a component is ready yet.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How many times a start is tried when another process took one of the chosen ports.
const START_ATTEMPTS: u32 = 3;

/// The node and pod that prove scheduling and the simulated kubelet work before tests run.
const PROBE: &str = "kaito-testenv-probe";

/// A taint that keeps test workloads off the probe node while it is being removed.
const PROBE_TAINT: &str = "testenv.kaito.sh/probe";

/// What to set up in a cluster beyond the bare control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Multi-document YAML strings of CRDs to apply and wait for.
    pub crds: Vec<String>,
    /// Identities that get a bearer token (and a kubeconfig) besides the administrator.
    pub identities: Vec<Identity>,
    /// How long the whole start may take before it fails.
    pub start_timeout: Duration,
    /// Make the apiserver write an audit log (every request at the Metadata level, one JSON
    /// line per stage) to [`Cluster::audit_log_path`].
    pub audit_log: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            crds: Vec::new(),
            identities: Vec::new(),
            start_timeout: Duration::from_secs(180),
            audit_log: false,
        }
    }
}

impl ClusterOptions {
    /// Adds CRDs (a multi-document YAML string).
    pub fn crd(mut self, yaml: impl Into<String>) -> Self {
        self.crds.push(yaml.into());
        self
    }

    /// Adds an identity.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identities.push(identity);
        self
    }

    /// Turns the apiserver's audit log on.
    pub fn audit_log(mut self) -> Self {
        self.audit_log = true;
        self
    }
}

/// A running local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
/// kwok. Dropping it stops every process and removes its temp dir (kept if a test panicked).
#[derive(Debug)]
pub struct Cluster {
    // Field order matters: the processes stop before the launcher thread (whose exit would
    // kill them) ends, and both before the temp dir goes.
    processes: Vec<Process>,
    launcher: Launcher,
    work_dir: WorkDir,
    layout: Layout,
    server_url: String,
    ca_pem: String,
    ca_der: Vec<u8>,
    admin: Credential,
    identities: BTreeMap<String, (Credential, PathBuf)>,
    start_duration: Duration,
}

impl Cluster {
    /// Starts a fresh cluster on free ports of 127.0.0.1 and waits until it is ready.
    pub async fn start(options: ClusterOptions) -> Result<Self, Error> {
        install_crypto_provider();
        let tools = tools::tools()?;
        let mut attempt = 1;
        loop {
            match Self::start_once(&tools, &options).await {
                Err(error) if error.is_port_clash() && attempt < START_ATTEMPTS => {
                    tracing::warn!(attempt, %error, "A port was taken during start, retrying");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(tools: &Tools, options: &ClusterOptions) -> Result<Self, Error> {
        let started = Instant::now();
        let mut cluster = Self::prepare(options)?;
        let deadline = started + options.start_timeout;
        if let Err(error) = cluster.boot(tools, options, deadline).await {
            // Keep the logs that explain the failure, unless a retry is coming.
            if !error.is_port_clash() {
                cluster.work_dir.keep();
            }
            let logs = cluster.log_dir();
            return Err(Error::StartFailed {
                logs,
                source: Box::new(error),
            });
        }
        cluster.start_duration = started.elapsed();
        let seconds = cluster.start_duration.as_secs_f32();
        tracing::info!(seconds, logs = %cluster.log_dir().display(), "Started test cluster");
        Ok(cluster)
    }

    /// Writes key material, tokens, kubeconfigs and stages into a fresh temp dir.
    fn prepare(options: &ClusterOptions) -> Result<Self, Error> {
        let work_dir = WorkDir::create()?;
        let root = work_dir.path().to_path_buf();
        for dir in ["logs", "etcd", "kwok", "kubeconfigs"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_error(format!("creating {}", path.display())))?;
        }
        let (pki, pki_files) = certs::generate(&root.join("pki"))?;
        let [etcd_client_port, etcd_peer_port, apiserver_port] = process::free_ports()?;
        let layout = Layout {
            pki: pki_files,
            token_file: root.join("tokens.csv"),
            kubeconfig: root.join("kubeconfig"),
            stages: root.join("kwok-stages.yaml"),
            audit_policy: root.join("audit-policy.yaml"),
            audit_log: options
                .audit_log
                .then(|| root.join("logs").join("audit.log")),
            etcd_data: root.join("etcd"),
            kwok_workdir: root.join("kwok"),
            etcd_client_port,
            etcd_peer_port,
            apiserver_port,
        };
        stages::write_config(&layout.stages)?;

        if options.audit_log {
            audit::write_policy(&layout.audit_policy)?;
        }
        let server_url = format!("https://127.0.0.1:{apiserver_port}");
        let admin = Credential::issue(Identity::admin());
        auth::write_kubeconfig(&layout.kubeconfig, &server_url, &pki.ca_pem, &admin)?;
        let identities = issue_credentials(options, &root, &server_url, &pki.ca_pem)?;
        let mut credentials = vec![admin.clone()];
        credentials.extend(
            identities
                .values()
                .map(|(credential, _)| credential.clone()),
        );
        auth::write_token_file(&layout.token_file, &credentials)?;

        Ok(Self {
            processes: Vec::new(),
            launcher: Launcher::new()?,
            work_dir,
            layout,
            server_url,
            ca_pem: pki.ca_pem,
            ca_der: pki.ca_der,
            admin,
            identities,
            start_duration: Duration::ZERO,
        })
    }

    /// Starts the components in dependency order, waiting for each to be usable.
    async fn boot(
        &mut self,
        tools: &Tools,
        options: &ClusterOptions,
        deadline: Instant,
    ) -> Result<(), Error> {
        self.launch("etcd", components::etcd(tools, &self.layout))?;
        let etcd_port = self.layout.etcd_client_port;
        self.poll_until("etcd to accept connections", deadline, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", etcd_port))
                .await
                .is_ok()
        })
        .await?;

        self.launch("kube-apiserver", components::apiserver(tools, &self.layout))?;
        let client = self.client()?;
        self.poll_until("kube-apiserver /readyz", deadline, || {
            is_apiserver_ready(&client)
        })
        .await?;

        self.launch(
            "kube-controller-manager",
            components::controller_manager(tools, &self.layout),
        )?;
        self.launch("kube-scheduler", components::scheduler(tools, &self.layout))?;
        self.launch("kwok", components::kwok(tools, &self.layout))?;
        self.probe(&client, deadline).await?;

        let remaining = deadline.saturating_duration_since(Instant::now());
        crds::apply_crds(&client, &options.crds, remaining).await
    }

    fn launch(&mut self, name: &str, command: std::process::Command) -> Result<(), Error> {
        let process = self.launcher.spawn(name, command, &self.log_dir())?;
        self.processes.push(process);
        Ok(())
    }

    /// Polls `ready` until it holds, failing early if any component has exited.
    async fn poll_until<F, Fut>(
        &mut self,
        what: &str,
        deadline: Instant,
        mut ready: F,
    ) -> Result<(), Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        loop {
            for process in &mut self.processes {
                process.check_running()?;
            }
            if ready().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(what.to_owned()));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Proves the rest of the cluster works end to end: a kwok node becomes Ready (kwok, the
    /// node lifecycle controller), a pod needing the namespace's service account (the
    /// controller manager) is scheduled onto it (the scheduler) and runs (kwok again).
    async fn probe(&mut self, client: &Client, deadline: Instant) -> Result<(), Error> {
        let probe_node = SimNode::new(PROBE, "kaito-testenv-probe")
            .label(PROBE_TAINT, "true")
            .taint(PROBE_TAINT, "true", "NoSchedule");
        nodes::add_node(client, &probe_node).await?;

        let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
        let pod = probe_pod()?;
        self.poll_until("the probe pod to be admitted", deadline, || {
            is_admitted(&pods, &pod)
        })
        .await?;
        self.poll_until("the probe pod to run", deadline, || {
            is_running(&pods, PROBE)
        })
        .await?;

        // Nothing waits for the removal: the taint keeps workloads off the node meanwhile.
        pods.delete(PROBE, &DeleteParams::default().grace_period(0))
            .await?;
        Api::<Node>::all(client.clone())
            .delete(PROBE, &DeleteParams::default())
            .await?;
        Ok(())
    }

    /// A client authenticated as the administrator (group `system:masters`).
    ///
    /// Each call builds a new client on the current tokio runtime, so a cluster shared by
    /// tests with their own runtimes never hands out a client bound to a finished runtime.
    pub fn client(&self) -> Result<Client, Error> {
        Ok(Client::try_from(self.config()?)?)
    }

    /// A client authenticated as one of [`ClusterOptions::identities`], by user name.
    pub fn client_as(&self, identity: &str) -> Result<Client, Error> {
        Ok(Client::try_from(self.config_as(identity)?)?)
    }

    /// The administrator's kube client config.
    pub fn config(&self) -> Result<Config, Error> {
        install_crypto_provider();
        self.admin.client_config(&self.server_url, &self.ca_der)
    }

    /// The kube client config of one of [`ClusterOptions::identities`], by user name.
    pub fn config_as(&self, identity: &str) -> Result<Config, Error> {
        install_crypto_provider();
        let (credential, _) = self.identity(identity)?;
        credential.client_config(&self.server_url, &self.ca_der)
    }

    /// The administrator's kubeconfig file, usable by kubectl and helm.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.layout.kubeconfig
    }

    /// The kubeconfig file of one of [`ClusterOptions::identities`], by user name.
    pub fn kubeconfig_for(&self, identity: &str) -> Result<&Path, Error> {
        Ok(&self.identity(identity)?.1)
    }

    fn identity(&self, name: &str) -> Result<&(Credential, PathBuf), Error> {
        self.identities
            .get(name)
            .ok_or_else(|| Error::UnknownIdentity(name.to_owned()))
    }

    /// The apiserver's URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The PEM of the CA that signed the apiserver's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The dir holding one `<component>.log` per process.
    pub fn log_dir(&self) -> PathBuf {
        self.work_dir.path().join("logs")
    }

    /// The cluster's temp dir (certificates, kubeconfigs, etcd data, logs).
    pub fn temp_dir(&self) -> &Path {
        self.work_dir.path()
    }

    /// The apiserver's audit log, when [`ClusterOptions::audit_log`] asked for one.
    pub fn audit_log_path(&self) -> Option<&Path> {
        self.layout.audit_log.as_deref()
    }

    /// How long the start took, from the call to a usable cluster.
    pub fn start_duration(&self) -> Duration {
        self.start_duration
    }

    /// Adds a simulated node, which kwok then makes and keeps Ready.
    pub async fn add_node(&self, node: &SimNode) -> Result<Node, Error> {
        nodes::add_node(&self.client()?, node).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        process::stop_all(&mut self.processes);
        if thread::panicking() {
            self.work_dir.keep();
            eprintln!(
                "kaito-testenv: cluster logs kept in {}",
                self.log_dir().display()
            );
        }
    }
}

async fn is_apiserver_ready(client: &Client) -> bool {
    let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    client
        .request_text(request)
        .await
        .is_ok_and(|body| body.trim() == "ok")
}

/// Creates the pod, or finds it created; false while admission refuses it.
async fn is_admitted(pods: &Api<Pod>, pod: &Pod) -> bool {
    match pods.create(&PostParams::default(), pod).await {
        Ok(_) => true,
        Err(kube::Error::Api(status)) => status.code == 409,
        Err(_) => false,
    }
}

async fn is_running(pods: &Api<Pod>, name: &str) -> bool {
    let pod = pods.get_opt(name).await.ok().flatten();
    let phase = pod.and_then(|pod| pod.status?.phase);
    phase.as_deref() == Some("Running")
}

fn probe_pod() -> Result<Pod, Error> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": PROBE },
        "spec": {
            "nodeSelector": { PROBE_TAINT: "true" },
            "tolerations": [{ "key": PROBE_TAINT, "operator": "Exists", "effect": "NoSchedule" }],
            "containers": [{ "name": "probe", "image": "kaito-testenv/probe" }],
        },
    }))?)
}

/// Gives every identity of the options a token and a kubeconfig, keyed by user name.
fn issue_credentials(
    options: &ClusterOptions,
    root: &Path,
    server_url: &str,
    ca_pem: &str,
) -> Result<BTreeMap<String, (Credential, PathBuf)>, Error> {
    let mut issued = BTreeMap::new();
    for identity in &options.identities {
        let credential = Credential::issue(identity.clone());
        let file = format!("{}.yaml", file_name(&identity.name));
        let kubeconfig = root.join("kubeconfigs").join(file);
        auth::write_kubeconfig(&kubeconfig, server_url, ca_pem, &credential)?;
        issued.insert(identity.name.clone(), (credential, kubeconfig));
    }
    Ok(issued)
}

/// Makes a user name usable as a file name (`system:serviceaccount:a:b` has colons).
fn file_name(user: &str) -> String {
    user.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Installs ring as the process's rustls crypto provider, unless one is installed already.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is all that is needed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
