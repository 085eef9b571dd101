//! The control API under `/_sim`: JSON routes for knobs, faults, counts and state. It needs no
//! token, is not counted and ignores faults and outages (except a refused connection).

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    faults::{FaultRule, OperationFailure, Outage},
    handle::PoolSeed,
    server,
    sim::{Sim, lock},
};

/// Pause before a refusing outage closes the listener, so that its own answer gets out.
const CLOSE_GRACE: Duration = Duration::from_millis(100);

pub(crate) fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/info", get(info))
        .route("/settings", get(settings).patch(patch_settings))
        .route("/faults", get(faults).post(add_fault).delete(clear_faults))
        .route("/operations/fail", post(fail_operations))
        .route("/operations/finish", post(finish_operations))
        .route("/outage", get(outage).put(set_outage))
        .route("/requests", get(requests).delete(reset_requests))
        .route("/pools", get(pools))
        .route(
            "/pools/{name}",
            get(pool).put(seed_pool).delete(remove_pool),
        )
        .route("/put-bodies", get(put_bodies).delete(clear_put_bodies))
        .route("/tokens", post(mint_token))
        .route("/tokens/expire", post(expire_tokens))
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.into() })),
    )
        .into_response()
}

async fn info(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(sim.info())
}

async fn settings(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!(sim.settings()))
}

/// A JSON merge patch over the settings, e.g. `{"createDelayMs": 5000}`.
async fn patch_settings(State(sim): State<Arc<Sim>>, Json(patch): Json<Value>) -> Response {
    match sim.patch_settings(&patch) {
        Ok(settings) => Json(json!(settings)).into_response(),
        Err(error) => bad_request(error),
    }
}

async fn faults(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({ "rules": sim.faults().rules() }))
}

async fn add_fault(State(sim): State<Arc<Sim>>, Json(rule): Json<FaultRule>) -> Json<Value> {
    Json(json!({ "id": sim.faults().add(rule) }))
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.faults().clear();
    StatusCode::NO_CONTENT
}

async fn fail_operations(
    State(sim): State<Arc<Sim>>,
    Json(failure): Json<OperationFailure>,
) -> StatusCode {
    sim.faults().add_failure(failure);
    StatusCode::NO_CONTENT
}

async fn finish_operations(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({ "finished": sim.finish_operations() }))
}

async fn outage(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({ "mode": sim.faults().outage }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutageRequest {
    mode: Outage,
    /// How long a `refuse` outage lasts; required, since the control API goes down with it.
    for_ms: Option<u64>,
}

async fn set_outage(State(sim): State<Arc<Sim>>, Json(request): Json<OutageRequest>) -> Response {
    if request.mode != Outage::Refuse {
        return match server::set_outage(&sim, request.mode).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(error) => bad_request(error.to_string()),
        };
    }
    let Some(for_ms) = request.for_ms else {
        return bad_request("mode refuse needs forMs: the control API is unreachable meanwhile");
    };
    tokio::spawn(async move {
        tokio::time::sleep(CLOSE_GRACE).await;
        let refused = server::set_outage(&sim, Outage::Refuse).await;
        tokio::time::sleep(Duration::from_millis(for_ms)).await;
        let restored = server::set_outage(&sim, Outage::None).await;
        if let Err(error) = refused.and(restored) {
            tracing::error!(%error, "Ending the refusing outage failed");
        }
    });
    StatusCode::ACCEPTED.into_response()
}

async fn requests(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let counts = lock(&sim.requests).clone();
    Json(json!({ "total": counts.total(), "requests": counts.entries() }))
}

async fn reset_requests(State(sim): State<Arc<Sim>>) -> StatusCode {
    *lock(&sim.requests) = Default::default();
    StatusCode::NO_CONTENT
}

async fn pools(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({ "value": sim.pool_bodies() }))
}

async fn pool(State(sim): State<Arc<Sim>>, Path(name): Path<String>) -> Response {
    let body = sim.state().get(&name).map(|pool| pool.render(&sim.cloud));
    match body {
        Some(body) => Json(body).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such pool" })),
        )
            .into_response(),
    }
}

/// Stores a pool directly: `{"properties": {...}, "provisioningState": "Succeeded",
/// "joinNodes": true}`.
async fn seed_pool(
    State(sim): State<Arc<Sim>>,
    Path(name): Path<String>,
    Json(mut seed): Json<PoolSeed>,
) -> Response {
    seed.name = name;
    match sim.seed_pool(seed).await {
        Ok(body) => (StatusCode::CREATED, Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn remove_pool(State(sim): State<Arc<Sim>>, Path(name): Path<String>) -> StatusCode {
    if sim.remove_pool(&name).await {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn put_bodies(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({ "value": lock(&sim.puts).clone() }))
}

async fn clear_put_bodies(State(sim): State<Arc<Sim>>) -> StatusCode {
    lock(&sim.puts).clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MintRequest {
    #[serde(default = "default_client")]
    client_id: String,
    lifetime_secs: Option<u64>,
}

fn default_client() -> String {
    "aks-sim-client".to_owned()
}

/// A valid ARM token without the AAD round trip, for scripts: `{"accessToken": "..."}`.
async fn mint_token(State(sim): State<Arc<Sim>>, Json(request): Json<MintRequest>) -> Json<Value> {
    let lifetime = request
        .lifetime_secs
        .unwrap_or_else(|| sim.settings().token_lifetime_secs);
    Json(json!({ "accessToken": sim.tokens().mint(&request.client_id, lifetime) }))
}

async fn expire_tokens(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.tokens().expire_all();
    StatusCode::NO_CONTENT
}
