//! The ARM endpoints: the managed cluster, its agentPools (PUT, GET, LIST, DELETE, abort)
//! and the status URLs of long-running operations.

pub(crate) mod error;
pub(crate) mod path;

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    body::Bytes,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use self::{
    error::ArmError,
    path::{ArmPath, ClusterPath},
};
use crate::{
    operations,
    pools::{Begun, Ctx, OpStatus, OperationKind, Preconditions, validate},
    requests::PutRecord,
    sim::{Sim, lock},
};

/// What the ARM handlers need of a request.
pub(crate) struct ArmRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: HashMap<String, String>,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

impl ArmRequest<'_> {
    fn api_version(&self) -> Option<&str> {
        self.query.get("api-version").map(String::as_str)
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Answers an authenticated ARM request.
pub(crate) fn serve(sim: &Arc<Sim>, target: &ArmPath, request: &ArmRequest<'_>) -> Response {
    match answer(sim, target, request) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn answer(
    sim: &Arc<Sim>,
    target: &ArmPath,
    request: &ArmRequest<'_>,
) -> Result<Response, ArmError> {
    check_api_version(sim, target, request)?;
    check_scope(sim, target)?;
    let method = request.method.as_str();
    match (target, method) {
        (ArmPath::Cluster(_), "GET") => Ok(get_cluster(sim)),
        (ArmPath::Pools(_), "GET") => Ok(list_pools(sim, request)),
        (ArmPath::Pool(_, name), "GET") => get_pool(sim, name),
        (ArmPath::Pool(_, name), "PUT") => Ok(put_pool(sim, name, request)),
        (ArmPath::Pool(_, name), "DELETE") => delete_pool(sim, name, request),
        (ArmPath::Abort(_, name), "POST") => abort_pool(sim, name),
        (ArmPath::Operation { id, .. }, "GET") => get_operation(sim, id),
        (ArmPath::OperationResult { id, .. }, "GET") => get_operation_result(sim, id),
        _ => {
            let message = format!("The HTTP method {method} is not supported for this resource.");
            Err(ArmError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                message,
            ))
        }
    }
}

/// Whether an api-version looks like `2024-01-01` or `2024-01-01-preview`.
fn is_well_formed(version: &str) -> bool {
    let date = version.strip_suffix("-preview").unwrap_or(version);
    let digits =
        |part: &str, len: usize| part.len() == len && part.chars().all(|c| c.is_ascii_digit());
    let parts: Vec<&str> = date.split('-').collect();
    matches!(parts.as_slice(), [y, m, d] if digits(y, 4) && digits(m, 2) && digits(d, 2))
}

fn check_api_version(
    sim: &Sim,
    target: &ArmPath,
    request: &ArmRequest<'_>,
) -> Result<(), ArmError> {
    let version = request
        .api_version()
        .ok_or_else(ArmError::missing_api_version)?;
    if !is_well_formed(version) {
        let message =
            format!("The api-version '{version}' is invalid: use a date such as 2024-01-01.");
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            message,
        ));
    }
    let operations = matches!(
        target,
        ArmPath::Operation { .. } | ArmPath::OperationResult { .. }
    );
    if operations || sim.api_versions.is_empty() || sim.api_versions.iter().any(|v| v == version) {
        return Ok(());
    }
    let message = format!(
        "Microsoft.ContainerService in '{}' serves managedClusters at api-versions '{}', not \
         '{version}'.",
        sim.cloud.location,
        sim.api_versions.join(", "),
    );
    Err(ArmError::new(
        StatusCode::BAD_REQUEST,
        "NoRegisteredProviderFound",
        message,
    ))
}

/// Paths of another subscription, resource group or cluster name nothing here.
fn check_scope(sim: &Sim, target: &ArmPath) -> Result<(), ArmError> {
    let subscription = target.subscription();
    if !subscription.eq_ignore_ascii_case(&sim.cloud.subscription) {
        let message = format!("No subscription '{subscription}' exists here.");
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            message,
        ));
    }
    let cluster = match target {
        ArmPath::Cluster(path)
        | ArmPath::Pools(path)
        | ArmPath::Pool(path, _)
        | ArmPath::Abort(path, _) => path,
        ArmPath::Operation { .. } | ArmPath::OperationResult { .. } => return Ok(()),
    };
    let ClusterPath {
        resource_group,
        cluster,
        ..
    } = cluster;
    if !resource_group.eq_ignore_ascii_case(&sim.cloud.resource_group) {
        let message = format!("No resource group '{resource_group}' exists in the subscription.");
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            message,
        ));
    }
    if !cluster.eq_ignore_ascii_case(&sim.cloud.cluster) {
        let message = format!(
            "No managed cluster (Microsoft.ContainerService/managedClusters) '{cluster}' \
             exists in resource group '{resource_group}'."
        );
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            message,
        ));
    }
    Ok(())
}

fn checked_name(name: &str) -> Result<(), ArmError> {
    if validate::is_valid_name(name) {
        Ok(())
    } else {
        Err(ArmError::invalid_pool_name(name))
    }
}

fn preconditions(request: &ArmRequest<'_>) -> Preconditions {
    Preconditions {
        if_match: request
            .header(header::IF_MATCH)
            .map(Preconditions::parse_tags),
        if_none_match: request
            .header(header::IF_NONE_MATCH)
            .map(Preconditions::parse_tags),
    }
}

fn get_cluster(sim: &Sim) -> Response {
    let cloud = &sim.cloud;
    let settings = sim.settings();
    let profiles: Vec<Value> = sim
        .state()
        .list()
        .map(|pool| {
            let mut profile = pool.render(cloud)["properties"].clone();
            profile["name"] = json!(pool.name);
            profile
        })
        .collect();
    let body = json!({
        "id": format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/\
             managedClusters/{}",
            cloud.subscription, cloud.resource_group, cloud.cluster
        ),
        "name": cloud.cluster,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "location": cloud.location,
        "properties": {
            "provisioningState": "Succeeded",
            "powerState": { "code": "Running" },
            "kubernetesVersion": settings.kubernetes_version,
            "currentKubernetesVersion": settings.kubernetes_version,
            "nodeResourceGroup": cloud.node_resource_group,
            "dnsPrefix": cloud.cluster,
            "agentPoolProfiles": profiles,
        },
    });
    Json(body).into_response()
}

fn get_pool(sim: &Sim, name: &str) -> Result<Response, ArmError> {
    checked_name(name)?;
    let body = sim.state().get(name).map(|pool| pool.render(&sim.cloud));
    match body {
        Some(body) => Ok(Json(body).into_response()),
        None => Err(ArmError::pool_not_found(&sim.cloud.cluster, name)),
    }
}

fn list_pools(sim: &Sim, request: &ArmRequest<'_>) -> Response {
    let skip: usize = request
        .query
        .get("$skipToken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let page_size = sim.settings().page_size.max(1);
    let (value, total): (Vec<Value>, usize) = {
        let state = sim.state();
        let page = state
            .list()
            .skip(skip)
            .take(page_size)
            .map(|p| p.render(&sim.cloud))
            .collect();
        (page, state.list().count())
    };
    let mut body = json!({ "value": value });
    if skip + page_size < total {
        let version = request.api_version().unwrap_or_default();
        let next = format!(
            "{}{}?api-version={version}&$skipToken={}",
            sim.base_url,
            request.path,
            skip + page_size
        );
        body["nextLink"] = json!(next);
    }
    Json(body).into_response()
}

fn put_pool(sim: &Arc<Sim>, name: &str, request: &ArmRequest<'_>) -> Response {
    let parsed = serde_json::from_slice::<Value>(&request.body);
    let response = match begin_put(sim, name, request, parsed.as_ref().ok()) {
        Ok(begun) => {
            let status = if begun.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let headers = [("azure-asyncoperation", sim.operation_url(&begun.operation))];
            with_headers((status, Json(begun.body)).into_response(), sim, &headers)
        }
        Err(error) => error.into_response(),
    };
    let body =
        parsed.unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&request.body).into()));
    let record = PutRecord {
        pool: name.to_owned(),
        body,
        api_version: request.api_version().map(str::to_owned),
        if_match: request.header(header::IF_MATCH).map(str::to_owned),
        if_none_match: request.header(header::IF_NONE_MATCH).map(str::to_owned),
        status: response.status().as_u16(),
    };
    lock(&sim.puts).push(record);
    response
}

fn begin_put(
    sim: &Arc<Sim>,
    name: &str,
    request: &ArmRequest<'_>,
    body: Option<&Value>,
) -> Result<Begun, ArmError> {
    checked_name(name)?;
    let media = request
        .header(header::CONTENT_TYPE)
        .unwrap_or("application/json");
    let media = media.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/json") {
        let message = format!(
            "Content type '{media}' cannot be read here: send the body as application/json."
        );
        return Err(ArmError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        ));
    }
    let Some(body) = body.filter(|body| body.is_object()) else {
        let message =
            "The request content was invalid and could not be deserialized as an agent pool.";
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            message,
        ));
    };
    let parsed = validate::pool_body(name, body)?;
    let settings = sim.settings();
    let ctx = Ctx {
        cloud: &sim.cloud,
        settings: &settings,
    };
    let mut failure = |kind: OperationKind| sim.faults().take_failure(kind);
    let begun = sim
        .state()
        .put(&ctx, name, parsed, &preconditions(request), &mut failure)?;
    operations::spawn(sim, &begun.operation);
    Ok(begun)
}

fn delete_pool(sim: &Arc<Sim>, name: &str, request: &ArmRequest<'_>) -> Result<Response, ArmError> {
    checked_name(name)?;
    let settings = sim.settings();
    let ctx = Ctx {
        cloud: &sim.cloud,
        settings: &settings,
    };
    let mut failure = |kind: OperationKind| sim.faults().take_failure(kind);
    let begun = sim
        .state()
        .delete(&ctx, name, &preconditions(request), &mut failure)?;
    let Some(begun) = begun else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    operations::spawn(sim, &begun.operation);
    Ok(accepted(sim, &begun.operation))
}

fn abort_pool(sim: &Arc<Sim>, name: &str) -> Result<Response, ArmError> {
    checked_name(name)?;
    let settings = sim.settings();
    let ctx = Ctx {
        cloud: &sim.cloud,
        settings: &settings,
    };
    let begun = sim.state().abort(&ctx, name)?;
    operations::spawn(sim, &begun.operation);
    Ok(accepted(sim, &begun.operation))
}

/// `202 Accepted` with both polling URLs.
fn accepted(sim: &Sim, operation: &str) -> Response {
    let headers = [
        ("azure-asyncoperation", sim.operation_url(operation)),
        ("location", sim.operation_result_url(operation)),
    ];
    with_headers(StatusCode::ACCEPTED.into_response(), sim, &headers)
}

/// Adds the polling headers and `Retry-After`.
fn with_headers(mut response: Response, sim: &Sim, headers: &[(&'static str, String)]) -> Response {
    let retry_after = sim.settings().retry_after_secs.to_string();
    let all = headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain([("retry-after", retry_after.as_str())]);
    for (name, value) in all {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn operation_not_found(id: &str) -> ArmError {
    let message = format!("The operation '{id}' could not be found.");
    ArmError::new(StatusCode::NOT_FOUND, "NotFound", message)
}

fn get_operation(sim: &Sim, id: &str) -> Result<Response, ArmError> {
    let state = sim.state();
    let operation = state.operation(id).ok_or_else(|| operation_not_found(id))?;
    let mut body = json!({
        "id": format!(
            "/subscriptions/{}/providers/Microsoft.ContainerService/locations/{}/operations/{id}",
            sim.cloud.subscription, sim.cloud.location
        ),
        "name": id,
        "status": operation.status.as_str(),
        "startTime": operation.start.to_string(),
    });
    if let Some(end) = operation.end {
        body["endTime"] = json!(end.to_string());
    }
    if let Some(error) = &operation.error {
        body["error"] = json!(error);
    }
    Ok(Json(body).into_response())
}

/// The `Location` protocol: 202 while running, then 204 (200 with the pool for a PUT), or the
/// error of a failed or canceled operation with status 400.
fn get_operation_result(sim: &Sim, id: &str) -> Result<Response, ArmError> {
    let state = sim.state();
    let operation = state.operation(id).ok_or_else(|| operation_not_found(id))?;
    match operation.status {
        OpStatus::InProgress => {
            let location = [("location", sim.operation_result_url(id))];
            drop(state);
            Ok(with_headers(
                StatusCode::ACCEPTED.into_response(),
                sim,
                &location,
            ))
        }
        OpStatus::Succeeded => {
            let put = matches!(
                operation.kind,
                OperationKind::Create | OperationKind::Update
            );
            let pool = state
                .get(&operation.pool)
                .filter(|_| put)
                .map(|p| p.render(&sim.cloud));
            Ok(pool.map_or_else(
                || StatusCode::NO_CONTENT.into_response(),
                |p| Json(p).into_response(),
            ))
        }
        OpStatus::Failed | OpStatus::Canceled => {
            let error = operation.error.clone().unwrap_or_else(|| {
                error::ErrorBody::new("OperationFailed", "The operation did not succeed.")
            });
            Ok((StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_are_dates_with_an_optional_preview_suffix() {
        assert!(is_well_formed("2024-01-01"));
        assert!(is_well_formed("2026-10-02-preview"));
        assert!(!is_well_formed("2024-1-1"));
        assert!(!is_well_formed("latest"));
    }
}
