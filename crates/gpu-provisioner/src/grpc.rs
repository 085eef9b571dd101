//! The gRPC server: `grpc.health.v1` (SERVING only while the controllers run and ARM
//! answers) and the provisioner's own read-only API, on one port.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use k8s_openapi::jiff::Timestamp;
use tonic::{Request, Response, Status, transport::Server};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    context::{CHECK_CLOUD, Context},
    gc,
};

/// Code generated from `proto/kaito/provisioner/v1/provisioner.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("kaito.provisioner.v1");
}

use proto::{
    ArmCallCount, GetCountersRequest, GetCountersResponse, Instance, ListInstancesRequest,
    ListInstancesResponse,
    provisioner_server::{Provisioner, ProvisionerServer},
};

/// Full name of the provisioner service, as health clients name it.
pub const SERVICE_NAME: &str = "kaito.provisioner.v1.Provisioner";

/// The provisioner API over the shared context.
pub struct ProvisionerService {
    ctx: Arc<Context>,
}

#[tonic::async_trait]
impl Provisioner for ProvisionerService {
    async fn list_instances(
        &self,
        _: Request<ListInstancesRequest>,
    ) -> Result<Response<ListInstancesResponse>, Status> {
        let instances = self
            .ctx
            .inventory
            .snapshot()
            .into_iter()
            .map(|(pool, view, owner)| {
                let owner = owner.unwrap_or_default();
                Instance {
                    pool,
                    provisioning_state: view.state,
                    power_state: view.power,
                    vm_size: view.vm_size,
                    node_request_kind: owner.kind,
                    node_request: owner.request,
                    node: owner.node,
                    provider_id: owner.provider_id,
                    observed_at: view.observed_at.map(|t| t.to_string()).unwrap_or_default(),
                }
            })
            .collect();
        Ok(Response::new(ListInstancesResponse { instances }))
    }

    async fn get_counters(
        &self,
        _: Request<GetCountersRequest>,
    ) -> Result<Response<GetCountersResponse>, Status> {
        let arm_calls = self
            .ctx
            .metrics
            .arm_counts()
            .into_iter()
            .map(|((operation, code), count)| ArmCallCount {
                operation,
                code,
                count,
            })
            .collect();
        let (creates, deletes, collections) = self.ctx.metrics.totals();
        Ok(Response::new(GetCountersResponse {
            arm_calls,
            creates,
            deletes,
            collections,
        }))
    }
}

/// Serves health and the provisioner API on `addr` until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    ctx: Arc<Context>,
    reporter: HealthReporter,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) -> Result<(), tonic::transport::Error> {
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
        .await;
    tracing::info!(address = %addr, "Serving gRPC");
    Server::builder()
        .add_service(health)
        .add_service(ProvisionerServer::new(ProvisionerService { ctx }))
        .serve(addr)
        .await
}

/// Probes ARM every `interval` with a pool list (which also refreshes the inventory and the
/// pool gauge) and keeps readiness and gRPC health in step with the result.
pub async fn probe_cloud(ctx: Arc<Context>, reporter: HealthReporter, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up = None;
    loop {
        ticker.tick().await;
        let up = match ctx.cloud.list().await {
            Ok(pools) => {
                let ours: Vec<_> = pools.iter().filter(|p| gc::is_ours(p)).collect();
                ctx.metrics.set_pools(ours.iter().map(|p| p.state()));
                ctx.inventory.replace(&pools, gc::is_ours, Timestamp::now());
                true
            }
            Err(error) => {
                if was_up != Some(false) {
                    tracing::warn!(category = error.class.as_str(), %error, "ARM is unreachable");
                }
                false
            }
        };
        if was_up != Some(up) && up {
            tracing::info!("ARM is reachable");
        }
        was_up = Some(up);
        ctx.metrics.set_cloud_reachable(up);
        ctx.health.set(CHECK_CLOUD, up);
        let serving = ctx.health.is_ready();
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
        reporter.set_service_status(SERVICE_NAME, status).await;
    }
}
