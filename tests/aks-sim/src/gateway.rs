//! The way in for every request but the control API: it is counted, meets the outage switch,
//! is authenticated (ARM), meets the fault rules and ARM's request limits, then is answered.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Json,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    arm::{
        self, ArmRequest,
        error::ArmError,
        path::{ArmPath, Endpoint},
    },
    auth::{self, AadError, Caller, TokenRequest},
    faults::{Class, FaultAction, Outage},
    ids::guid,
    requests::CLIENT_CLOSED,
    sim::{Sim, lock},
};

/// Request bodies larger than this are refused.
const BODY_LIMIT: usize = 1 << 20;

/// Records a request when dropped, so that requests whose client went away count too.
struct Tally<'a> {
    sim: &'a Sim,
    method: String,
    kind: &'static str,
    status: Option<u16>,
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        let status = self.status.unwrap_or(CLIENT_CLOSED);
        lock(&self.sim.requests).record(&self.method, self.kind, status);
    }
}

/// The fallback handler of the router.
pub(crate) async fn entry(State(sim): State<Arc<Sim>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let endpoint = Endpoint::parse(parts.uri.path());
    let kind = endpoint.kind(parts.method.as_str());
    let mut tally = Tally {
        sim: &sim,
        method: parts.method.to_string(),
        kind,
        status: None,
    };
    let mut response = respond(&sim, &endpoint, kind, &parts, body).await;
    add_request_ids(response.headers_mut(), &parts.headers);
    tally.status = Some(response.status().as_u16());
    response
}

async fn respond(
    sim: &Arc<Sim>,
    endpoint: &Endpoint,
    kind: &str,
    parts: &Parts,
    body: Body,
) -> Response {
    let outage = sim.faults().outage;
    if outage != Outage::None {
        let retry_after = sim.settings().retry_after_secs;
        return fault(sim, endpoint, parts, 503, Some(retry_after), None);
    }
    let caller = match endpoint {
        Endpoint::Arm(_) => {
            let challenge = format!(
                "{}{}",
                sim.authority(),
                sim.auth.tenant.as_deref().unwrap_or("common")
            );
            match sim
                .tokens()
                .check(parts.headers.get(header::AUTHORIZATION), &challenge)
            {
                Ok(caller) => Some(caller),
                Err(error) => return error.into_response(),
            }
        }
        _ => None,
    };
    let triggered = sim.faults().trigger(kind);
    if let Some(delay) = triggered.hang {
        hang(sim, delay).await;
    }
    if let Some(action) = triggered.answer {
        return match action {
            FaultAction::Status {
                status,
                retry_after_secs,
            } => fault(
                sim,
                endpoint,
                parts,
                status,
                retry_after_secs,
                caller.as_ref(),
            ),
            FaultAction::InProgress => in_progress(endpoint),
            // Never an answer: `trigger` returns hangs apart, and they were waited above.
            FaultAction::Hang { .. } => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
    }
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        let message = "The request body could not be read or is larger than 1 MiB.";
        return ArmError::new(StatusCode::BAD_REQUEST, "InvalidRequestContent", message)
            .into_response();
    };
    match endpoint {
        Endpoint::Arm(path) => serve_arm(sim, path, parts, body, caller.as_ref()),
        _ => serve_aad(sim, endpoint, parts, &body),
    }
}

async fn hang(sim: &Sim, delay: Duration) {
    tokio::select! {
        _ = sim.cancel.cancelled() => {}
        _ = tokio::time::sleep(delay) => {}
    }
}

fn serve_arm(
    sim: &Arc<Sim>,
    path: &ArmPath,
    parts: &Parts,
    body: axum::body::Bytes,
    caller: Option<&Caller>,
) -> Response {
    let class = Class::of(parts.method.as_str());
    let limits = sim.settings().rate_limits;
    let remaining = match limits {
        None => None,
        Some(limits) => {
            let admitted = sim.faults().admit(
                &limits,
                path.subscription(),
                class,
                tokio::time::Instant::now(),
            );
            match admitted {
                Ok(remaining) => Some(remaining),
                Err(wait) => {
                    let actor = caller.map_or("unknown", |caller| caller.client_id.as_str());
                    let error = ArmError::throttled(class.word(), path.subscription(), actor, wait);
                    return with_remaining(error.into_response(), class, 0);
                }
            }
        }
    };
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let request = ArmRequest {
        method: &parts.method,
        path: parts.uri.path(),
        query,
        headers: &parts.headers,
        body,
    };
    let response = arm::serve(sim, path, &request);
    match remaining {
        Some(remaining) => with_remaining(response, class, remaining),
        None => response,
    }
}

fn serve_aad(sim: &Sim, endpoint: &Endpoint, parts: &Parts, body: &[u8]) -> Response {
    let authority = sim.authority();
    match endpoint {
        Endpoint::Token { tenant } if parts.method == "POST" => {
            let media = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let form_encoded = media
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded");
            let request = TokenRequest {
                tenant,
                form_encoded,
                body,
            };
            let settings = sim.settings();
            let granted = sim.tokens().grant(
                &sim.auth,
                settings.reject_client_assertions,
                settings.token_lifetime_secs,
                &request,
            );
            match granted {
                Ok(body) => Json(body).into_response(),
                Err(error) => error.into_response(&authority),
            }
        }
        Endpoint::OpenIdConfiguration { tenant } if auth::is_tenant(tenant) => {
            Json(auth::openid_configuration(&authority, tenant)).into_response()
        }
        Endpoint::Keys => Json(json!({ "keys": [] })).into_response(),
        Endpoint::InstanceDiscovery => {
            let host = parts.uri.authority().map_or_else(
                || sim.base_url.trim_start_matches("https://").to_owned(),
                |a| a.to_string(),
            );
            let query: HashMap<String, String> =
                url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            let tenant = query
                .get("authorization_endpoint")
                .and_then(|endpoint| url::Url::parse(endpoint).ok())
                .and_then(|url| url.path_segments()?.next().map(str::to_owned))
                .unwrap_or_else(|| "common".to_owned());
            Json(auth::instance_discovery(&authority, &host, &tenant)).into_response()
        }
        _ => {
            let message = format!(
                "Nothing here answers {} {}.",
                parts.method,
                parts.uri.path()
            );
            ArmError::new(StatusCode::NOT_FOUND, "NotFound", message).into_response()
        }
    }
}

/// The answer of a status fault or an outage, shaped like the service that would give it.
fn fault(
    sim: &Sim,
    endpoint: &Endpoint,
    parts: &Parts,
    status: u16,
    retry_after: Option<u64>,
    caller: Option<&Caller>,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let default_retry = sim.settings().retry_after_secs;
    let retry_after = match status.as_u16() {
        429 | 503 => Some(retry_after.unwrap_or(default_retry)),
        _ => retry_after,
    };
    let Endpoint::Arm(path) = endpoint else {
        let mut response = AadError::unavailable(status).into_response(&sim.authority());
        if let Some(seconds) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        return response;
    };
    let class = Class::of(parts.method.as_str());
    if status == StatusCode::TOO_MANY_REQUESTS {
        let actor = caller.map_or("unknown", |caller| caller.client_id.as_str());
        let error = ArmError::throttled(
            class.word(),
            path.subscription(),
            actor,
            retry_after.unwrap_or(1),
        );
        return with_remaining(error.into_response(), class, 0);
    }
    ArmError::server(status, retry_after).into_response()
}

fn in_progress(endpoint: &Endpoint) -> Response {
    let pool = match endpoint {
        Endpoint::Arm(ArmPath::Pool(_, name) | ArmPath::Abort(_, name)) => name.as_str(),
        _ => "unknown",
    };
    ArmError::in_progress("create", &guid(), pool).into_response()
}

/// ARM's remaining-requests headers, per subscription and globally.
fn with_remaining(mut response: Response, class: Class, remaining: u32) -> Response {
    let suffix = class.header_suffix();
    for scope in ["subscription", "subscription-global"] {
        let name = format!("x-ms-ratelimit-remaining-{scope}-{suffix}");
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(name),
            HeaderValue::from_str(&remaining.to_string()),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Request ids ARM returns on every answer; client and correlation ids are echoed.
fn add_request_ids(headers: &mut HeaderMap, request: &HeaderMap) {
    let echo = |name: &str| request.get(name).cloned();
    let fresh = || HeaderValue::from_str(&guid()).ok();
    let ids = [
        ("x-ms-request-id", fresh()),
        (
            "x-ms-correlation-request-id",
            echo("x-ms-correlation-request-id").or_else(fresh),
        ),
        ("x-ms-client-request-id", echo("x-ms-client-request-id")),
    ];
    for (name, value) in ids {
        if let Some(value) = value {
            headers.insert(name, value);
        }
    }
}
