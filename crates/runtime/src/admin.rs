//! The admin HTTP server: Prometheus `/metrics`, `/livez` and `/readyz`, kept apart so a
//! slow dependency makes a pod unready without getting it killed.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, RwLock},
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use prometheus_client::{encoding::text::encode, registry::Registry};

/// Named readiness checks; the process is ready when every check is.
#[derive(Debug, Default)]
pub struct Health {
    checks: RwLock<BTreeMap<&'static str, bool>>,
}

impl Health {
    /// A health record with the named checks, all not ready.
    pub fn new(checks: &[&'static str]) -> Arc<Self> {
        let map = checks.iter().map(|c| (*c, false)).collect();
        Arc::new(Health {
            checks: RwLock::new(map),
        })
    }

    /// Sets one check.
    pub fn set(&self, check: &'static str, ready: bool) {
        if let Ok(mut map) = self.checks.write() {
            map.insert(check, ready);
        }
    }

    /// Names of the checks that are not ready.
    pub fn failing(&self) -> Vec<&'static str> {
        self.checks
            .read()
            .map(|m| m.iter().filter(|(_, ok)| !**ok).map(|(k, _)| *k).collect())
            .unwrap_or_else(|_| vec!["health-lock"])
    }

    /// Whether every check is ready.
    pub fn is_ready(&self) -> bool {
        self.failing().is_empty()
    }
}

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    health: Arc<Health>,
}

/// The admin routes, for serving or for tests.
pub fn router(registry: Arc<Registry>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AdminState { registry, health })
}

/// Serves the admin routes on `addr` until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    health: Arc<Health>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "Serving metrics and health");
    axum::serve(listener, router(registry, health)).await
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            "cannot encode metrics".to_owned(),
        ),
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let failing = state.health.failing();
    if failing.is_empty() {
        (StatusCode::OK, "ok".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}", failing.join(", ")),
        )
    }
}
