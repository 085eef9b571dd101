//! `aks-sim`: serves the AKS simulator until SIGTERM or SIGINT.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use aks_sim::{
    AksSim, AuthConfig, CloudIds, FaultRule, QuotaCode, Settings, SimConfig, parse_duration,
};
use anyhow::Context;
use clap::Parser;
use kaito_runtime::{shutdown_signal, telemetry};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// An HTTPS stand-in for Azure AD and the AKS agentPools API that joins kwok-managed nodes.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "AKS_SIM_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Kubeconfig of the cluster nodes join; without it no nodes are made.
    #[arg(long, env = "AKS_SIM_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Subscription id.
    #[arg(
        long,
        env = "AKS_SIM_SUBSCRIPTION",
        default_value = "00000000-0000-4000-8000-000000000001"
    )]
    subscription: String,
    /// Resource group of the managed cluster.
    #[arg(long, env = "AKS_SIM_RESOURCE_GROUP", default_value = "kaito-rg")]
    resource_group: String,
    /// Managed cluster name.
    #[arg(long, env = "AKS_SIM_CLUSTER", default_value = "kaito-aks")]
    cluster: String,
    /// Region.
    #[arg(long, env = "AKS_SIM_LOCATION", default_value = "eastus")]
    location: String,
    /// Node resource group [default: MC_<resource group>_<cluster>_<location>].
    #[arg(long, env = "AKS_SIM_NODE_RESOURCE_GROUP")]
    node_resource_group: Option<String>,
    /// The only tenant the token endpoint accepts (any when unset).
    #[arg(long, env = "AKS_SIM_TENANT")]
    tenant: Option<String>,
    /// The only client id the token endpoint accepts (any when unset).
    #[arg(long, env = "AKS_SIM_CLIENT_ID")]
    client_id: Option<String>,
    /// The client secret the token endpoint requires (any when unset).
    #[arg(long, env = "AKS_SIM_CLIENT_SECRET")]
    client_secret: Option<String>,
    /// Write the test CA certificate (PEM) here.
    #[arg(long, env = "AKS_SIM_CA_OUT")]
    ca_out: Option<PathBuf>,
    /// Write the base URL here.
    #[arg(long, env = "AKS_SIM_URL_OUT")]
    url_out: Option<PathBuf>,
    /// How long pools stay Creating/Updating (e.g. 500ms, 5s, 2m).
    #[arg(long, env = "AKS_SIM_CREATE_DELAY", default_value = "1s", value_parser = parse_duration)]
    create_delay: Duration,
    /// How long pools stay Deleting.
    #[arg(long, env = "AKS_SIM_DELETE_DELAY", default_value = "1s", value_parser = parse_duration)]
    delete_delay: Duration,
    /// How long pools stay Canceling after an abort.
    #[arg(long, env = "AKS_SIM_ABORT_DELAY", default_value = "0s", value_parser = parse_duration)]
    abort_delay: Duration,
    /// Delay between a create succeeding and its nodes existing.
    #[arg(
        long,
        env = "AKS_SIM_NODE_JOIN_DELAY",
        default_value = "0s",
        value_parser = parse_duration
    )]
    node_join_delay: Duration,
    /// Delay between a GPU node existing and it reporting nvidia.com/gpu.
    #[arg(long, env = "AKS_SIM_GPU_DELAY", default_value = "0s", value_parser = parse_duration)]
    gpu_delay: Duration,
    /// Retry-After seconds of long-running operations and throttling.
    #[arg(long, env = "AKS_SIM_RETRY_AFTER", default_value_t = 1)]
    retry_after: u64,
    /// Pools per LIST page.
    #[arg(long, env = "AKS_SIM_PAGE_SIZE", default_value_t = 50)]
    page_size: usize,
    /// Access token lifetime in seconds.
    #[arg(long, env = "AKS_SIM_TOKEN_LIFETIME", default_value_t = 3599)]
    token_lifetime: u64,
    /// Kubernetes version reported for pools.
    #[arg(long, env = "AKS_SIM_KUBERNETES_VERSION", default_value = "1.33.5")]
    kubernetes_version: String,
    /// VM sizes refused as not allowed in the subscription and location (repeat or comma-separate).
    #[arg(long, env = "AKS_SIM_NOT_ALLOWED_VM_SIZES", value_delimiter = ',')]
    not_allowed_vm_size: Vec<String>,
    /// Regional cores quota (unlimited when unset).
    #[arg(long, env = "AKS_SIM_QUOTA_CORES")]
    quota_cores: Option<u64>,
    /// How a quota excess is reported: QuotaExceeded (400) or OperationNotAllowed (409).
    #[arg(
        long,
        env = "AKS_SIM_QUOTA_CODE",
        default_value = "QuotaExceeded",
        value_parser = quota_code
    )]
    quota_code: QuotaCode,
    /// vCPUs of a VM size, SIZE=N (repeatable); others are read from the size name.
    #[arg(long, value_parser = vcpus)]
    vcpus: Vec<(String, u32)>,
    /// vCPUs of a size whose name carries no figure.
    #[arg(long, default_value_t = 8)]
    default_vcpus: u32,
    /// Never throttle on ARM's request limits.
    #[arg(long, env = "AKS_SIM_NO_RATE_LIMITS")]
    no_rate_limits: bool,
    /// Refuse workload-identity assertions (no matching federated credential).
    #[arg(long)]
    reject_client_assertions: bool,
    /// Accepted api-versions (repeatable; any well-formed one when unset).
    #[arg(long)]
    api_version: Vec<String>,
    /// A fault rule as control-API JSON, e.g. '{"action":"status","status":429,"times":3}'.
    #[arg(long, value_parser = fault_rule)]
    fault: Vec<FaultRule>,
    /// Log format.
    #[arg(long, env = "AKS_SIM_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: telemetry::LogFormat,
    /// Log filter.
    #[arg(long, env = "AKS_SIM_LOG", default_value = "info")]
    log: String,
}

fn quota_code(text: &str) -> Result<QuotaCode, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("{text:?}: expected QuotaExceeded or OperationNotAllowed"))
}

fn vcpus(text: &str) -> Result<(String, u32), String> {
    let (size, count) = text.split_once('=').ok_or("expected SIZE=N")?;
    Ok((
        size.to_owned(),
        count
            .parse()
            .map_err(|_| format!("{count:?} is not a number"))?,
    ))
}

fn fault_rule(text: &str) -> Result<FaultRule, String> {
    serde_json::from_str(text).map_err(|error| error.to_string())
}

impl Args {
    async fn into_config(self) -> anyhow::Result<SimConfig> {
        let kube = match &self.kubeconfig {
            Some(path) => Some(client(path).await?),
            None => None,
        };
        let mut cloud = CloudIds::new(
            &self.subscription,
            &self.resource_group,
            &self.cluster,
            &self.location,
        );
        if let Some(group) = self.node_resource_group {
            cloud.node_resource_group = group;
        }
        let mut settings = Settings {
            create_delay: self.create_delay,
            delete_delay: self.delete_delay,
            abort_delay: self.abort_delay,
            node_join_delay: self.node_join_delay,
            gpu_delay: self.gpu_delay,
            retry_after_secs: self.retry_after,
            page_size: self.page_size,
            token_lifetime_secs: self.token_lifetime,
            reject_client_assertions: self.reject_client_assertions,
            kubernetes_version: self.kubernetes_version,
            not_allowed_vm_sizes: self.not_allowed_vm_size,
            ..Settings::default()
        };
        settings.quota.limit_cores = self.quota_cores;
        settings.quota.code = self.quota_code;
        settings.quota.vcpus = self.vcpus.into_iter().collect();
        settings.quota.default_vcpus = self.default_vcpus;
        if self.no_rate_limits {
            settings.rate_limits = None;
        }
        let auth = AuthConfig {
            tenant: self.tenant,
            client_id: self.client_id,
            client_secret: self.client_secret,
        };
        Ok(SimConfig {
            listen: self.listen,
            cloud,
            auth,
            api_versions: self.api_version,
            settings,
            faults: self.fault,
            kube,
            ca_out: self.ca_out,
            url_out: self.url_out,
        })
    }
}

async fn client(path: &PathBuf) -> anyhow::Result<kube::Client> {
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kaito_runtime::install_crypto_provider();
    let args = Args::parse();
    telemetry::init(args.log_format, &args.log);
    let sim = AksSim::start(args.into_config().await?).await?;
    shutdown_signal().await;
    sim.stop().await;
    Ok(())
}
