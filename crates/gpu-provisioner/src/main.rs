//! The `gpu-provisioner` binary: parses flags, starts logging, the servers, leadership,
//! the controllers and the collector, and waits for shutdown.

use std::sync::Arc;

use clap::Parser;
use gpu_provisioner::{app, config::Config, context, gc, grpc};
use kaito_runtime::{admin, leader::Leadership};
use prometheus_client::registry::Registry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    kaito_runtime::install_crypto_provider();
    kaito_runtime::telemetry::init(config.log_format, &config.log_level);

    let client = app::kube_client(&config).await?;
    let mut registry = Registry::with_prefix("gpu_provisioner");
    let ctx = app::context(&config, client.clone(), &mut registry)?;
    let registry = Arc::new(registry);
    let (reporter, health_service) = tonic_health::server::health_reporter();

    let mut servers = tokio::task::JoinSet::new();
    for addr in [config.metrics_addr(), config.health_addr()] {
        servers.spawn(admin::serve(addr, registry.clone(), ctx.health.clone()));
        if config.metrics_port == config.health_probe_port {
            break;
        }
    }
    let grpc = grpc::serve(
        config.grpc_addr(),
        ctx.clone(),
        reporter.clone(),
        health_service,
    );
    let probe = grpc::probe_cloud(ctx.clone(), reporter, config.cloud_probe_interval);

    let mut leadership = match config.leader_elect {
        true => Some(
            Leadership::acquire(
                client,
                &config.leader_election_namespace,
                &config.leader_election_name,
                &context::instance_name(),
            )
            .await?,
        ),
        false => None,
    };
    let lost = async {
        match leadership.as_mut() {
            Some(l) => l.lost().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = app::run_controllers(ctx.clone()) => tracing::error!("Controllers stopped"),
        _ = gc::run(ctx.clone(), config.gc_interval) => {},
        result = grpc => tracing::error!(?result, "gRPC server stopped"),
        _ = probe => {},
        Some(result) = servers.join_next() => tracing::error!(?result, "Admin server stopped"),
        _ = lost => anyhow::bail!("lost leadership"),
        _ = kaito_runtime::shutdown_signal() => {},
    }
    Ok(())
}
