//! Entry point: parse flags, start logging, serve health, metrics and the webhook, and run
//! the controller while this replica leads.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use clap::Parser;
use kaito_api::Preset;
use kaito_runtime::{admin, leader::Leadership, shutdown_signal, telemetry};
use prometheus_client::registry::Registry;
use workspace_controller::{config::Config, controller, metrics::Metrics, webhook};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse().resolve().map_err(anyhow::Error::msg)?;
    if config.list_presets {
        Preset::supported_list()
            .split(", ")
            .for_each(|p| println!("{p}"));
        return Ok(());
    }
    kaito_runtime::install_crypto_provider();
    telemetry::init(config.log_format, &config.log_level);
    let client = match &config.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).context("read kubeconfig")?;
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
            kube::Client::try_from(cfg)?
        }
        None => kube::Client::try_default()
            .await
            .context("connect to the API server")?,
    };

    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let registry = Arc::new(registry);
    let health = admin::Health::new(&["controller"]);
    tokio::spawn(admin::serve(
        config.metrics_bind_address,
        registry.clone(),
        health.clone(),
    ));
    if config.health_probe_bind_address != config.metrics_bind_address {
        tokio::spawn(admin::serve(
            config.health_probe_bind_address,
            registry,
            health.clone(),
        ));
    }
    if config.webhook {
        let addr: SocketAddr =
            format!("{}:{}", config.webhook_bind_host, config.webhook_port).parse()?;
        let cfg = webhook::WebhookConfig {
            addr,
            namespace: config.system_namespace.clone(),
            service: config.webhook_service.clone(),
            url: config.webhook_url.clone(),
            cloud: config.cloud,
        };
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = webhook::serve(client, cfg).await {
                tracing::error!(error = %e, "Webhook stopped");
            }
        });
    }

    // Readiness means "serving": a standby replica answers webhook calls while it waits for
    // the Lease, so it is ready before it leads.
    health.set("controller", true);
    let mut leadership = if config.leader_elect {
        let identity = if config.pod_name.is_empty() {
            hostname()
        } else {
            config.pod_name.clone()
        };
        Some(
            Leadership::acquire(
                client.clone(),
                &config.system_namespace,
                &config.leader_election_id,
                &identity,
            )
            .await?,
        )
    } else {
        None
    };
    let lost = async move {
        match leadership.as_mut() {
            Some(l) => l.lost().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = controller::run(client, config, metrics, shutdown_signal()) => result,
        () = lost => anyhow::bail!("lost leadership; exiting so another replica takes over"),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| format!("workspace-controller-{}", std::process::id()))
}
