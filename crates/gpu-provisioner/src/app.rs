//! Start-up pieces `main` wires together: the kube client, the cloud client, the context,
//! CRD discovery and the controllers of whichever node-request kinds are installed.

use std::{sync::Arc, time::Duration};

use kaito_api::{Machine, NodeClaim, NodeRequestKind};
use kaito_runtime::admin::Health;
use kube::{Client, config::Kubeconfig};
use prometheus_client::registry::Registry;

use crate::{
    arm::{ArmClient, client::ArmTarget},
    auth,
    config::Config,
    context::{CHECK_CLOUD, CHECK_CONTROLLER, Context, Settings},
    controller,
    metrics::Metrics,
};

/// How often missing node-request CRDs are looked for again.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// Why the process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// No in-cluster or default configuration was found.
    #[error("kubernetes configuration: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    /// The client could not be built.
    #[error("kubernetes client: {0}")]
    Client(#[from] kube::Error),
    /// The HTTP transport for Azure could not be built.
    #[error(transparent)]
    Transport(#[from] auth::AuthError),
}

/// The Kubernetes client from `--kubeconfig`, or the in-cluster/default configuration.
pub async fn kube_client(config: &Config) -> Result<Client, StartError> {
    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(file, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(Client::try_from(kube_config)?)
}

/// Builds the shared context: metrics, transport, credential, ARM client.
pub fn context(
    config: &Config,
    client: Client,
    registry: &mut Registry,
) -> Result<Arc<Context>, StartError> {
    let metrics = Arc::new(Metrics::register(registry));
    let transport = auth::transport(config.ca_bundle.as_deref(), config.arm_timeout)?;
    let credential = auth::LazyCredential::new(config, transport.clone());
    let target = ArmTarget {
        endpoint: config.arm_endpoint.clone(),
        subscription_id: config.subscription_id.clone(),
        resource_group: config.resource_group.clone(),
        cluster_name: config.cluster_name.clone(),
        api_version: config.arm_api_version.clone(),
    };
    let cloud = ArmClient::new(
        target,
        credential,
        auth::scope(&config.arm_audience),
        transport,
        config.arm_concurrency,
        config.arm_timeout,
        metrics.clone(),
    );
    let settings = Settings {
        launch_retry_interval: config.launch_retry_interval,
        poll_interval: config.operation_poll_interval,
        initialization_deadline: config.initialization_deadline,
        gc_grace_period: config.gc_grace_period,
    };
    let health = Health::new(&[CHECK_CONTROLLER, CHECK_CLOUD]);
    Ok(Context::new(
        client,
        Arc::new(cloud),
        settings,
        metrics,
        health,
    ))
}

/// Whether the CRD of a kind is served.
pub async fn is_installed(client: &Client, kind: NodeRequestKind) -> bool {
    let (version, plural) = match kind {
        NodeRequestKind::Machine => ("karpenter.sh/v1alpha5", "machines"),
        NodeRequestKind::NodeClaim => ("karpenter.sh/v1", "nodeclaims"),
    };
    match client.list_api_group_resources(version).await {
        Ok(list) => list.resources.iter().any(|r| r.name == plural),
        Err(_) => false,
    }
}

/// Starts a controller for each installed kind and keeps looking for the missing ones; a
/// missing CRD is not fatal. Returns when every controller has stopped.
pub async fn run_controllers(ctx: Arc<Context>) {
    let mut started: Vec<NodeRequestKind> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        for kind in [NodeRequestKind::NodeClaim, NodeRequestKind::Machine] {
            if started.contains(&kind) || !is_installed(&ctx.client, kind).await {
                continue;
            }
            match kind {
                NodeRequestKind::Machine => tasks.spawn(controller::run::<Machine>(ctx.clone())),
                NodeRequestKind::NodeClaim => {
                    tasks.spawn(controller::run::<NodeClaim>(ctx.clone()))
                }
            };
            started.push(kind);
        }
        ctx.health.set(CHECK_CONTROLLER, true);
        if started.len() == 2 {
            break;
        }
        tracing::info!(running = ?started, "Some node-request CRDs are missing; looking later");
        tokio::time::sleep(DISCOVERY_INTERVAL).await;
    }
    while tasks.join_next().await.is_some() {}
    ctx.health.set(CHECK_CONTROLLER, false);
}
