//! The admission webhook: validating and defaulting Workspaces with the api crate's
//! functions, served over TLS with a certificate the controller issues and rotates itself.

pub mod certs;
pub mod registration;

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Json, Router, extract::State, routing::post};
use axum_server::tls_rustls::RustlsConfig;
use k8s_openapi::api::core::v1::ConfigMap;
use kaito_api::{Cloud, Workspace, WorkspaceSpec, WorkspaceStatus, defaults, sku, validation};
use kube::{
    Api, Client,
    core::{
        DynamicObject,
        admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation},
    },
};

/// Path of the validating webhook.
pub const VALIDATE_PATH: &str = "/validate/workspace.kaito.sh";
/// Path of the defaulting webhook.
pub const MUTATE_PATH: &str = "/mutate/workspace.kaito.sh";
/// How often the certificate is checked for renewal.
const ROTATION_CHECK: Duration = Duration::from_secs(6 * 3600);

/// Webhook settings.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Address to serve on.
    pub addr: SocketAddr,
    /// Namespace of the certificate Secret.
    pub namespace: String,
    /// Service fronting the webhook in-cluster.
    pub service: String,
    /// URL to register instead of the Service (local runs).
    pub url: Option<String>,
    /// Cloud whose catalog validation uses.
    pub cloud: Cloud,
}

#[derive(Clone)]
struct Handler {
    client: Client,
    cloud: Cloud,
}

/// Serves the webhook until the process ends, rotating the certificate as it ages.
pub async fn serve(client: Client, cfg: WebhookConfig) -> anyhow::Result<()> {
    let names = certs::dns_names(&cfg.service, &cfg.namespace);
    let cert = certs::load_or_issue(&client, &cfg.namespace, &names).await?;
    registration::register(&client, &cfg, &cert.ca_pem).await?;
    let tls = RustlsConfig::from_pem(
        cert.cert_pem.clone().into_bytes(),
        cert.key_pem.clone().into_bytes(),
    )
    .await?;
    tokio::spawn(rotate(
        client.clone(),
        cfg.clone(),
        names,
        tls.clone(),
        cert,
    ));
    let app = router(Handler {
        client,
        cloud: cfg.cloud,
    });
    tracing::info!(address = %cfg.addr, "Serving admission webhook");
    axum_server::bind_rustls(cfg.addr, tls)
        .serve(app.into_make_service())
        .await?;
    Ok(())
}

async fn rotate(
    client: Client,
    cfg: WebhookConfig,
    names: Vec<String>,
    tls: RustlsConfig,
    mut current: certs::ServingCert,
) {
    loop {
        tokio::time::sleep(ROTATION_CHECK).await;
        let next = match certs::load_or_issue(&client, &cfg.namespace, &names).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot renew the webhook certificate");
                continue;
            }
        };
        if next == current {
            continue;
        }
        let reloaded = tls
            .reload_from_pem(
                next.cert_pem.clone().into_bytes(),
                next.key_pem.clone().into_bytes(),
            )
            .await;
        let registered = registration::register(&client, &cfg, &next.ca_pem).await;
        match (reloaded, registered) {
            (Ok(()), Ok(())) => {
                tracing::info!(not_after = %next.not_after, "Rotated the webhook certificate");
                current = next;
            }
            (Err(e), _) => tracing::warn!(error = %e, "Cannot load the renewed certificate"),
            (_, Err(e)) => tracing::warn!(error = %e, "Cannot register the renewed CA"),
        }
    }
}

fn router(handler: Handler) -> Router {
    Router::new()
        .route(VALIDATE_PATH, post(validate))
        .route(MUTATE_PATH, post(mutate))
        .with_state(Arc::new(handler))
}

/// An admission request with its Workspace objects read.
struct Parsed {
    req: AdmissionRequest<DynamicObject>,
    new: Option<Workspace>,
    old: Option<Workspace>,
}

/// The path of the field that does not fit its type, as the other denials write it
/// (`resource.count`). The Workspace's fields sit beside `metadata`, where serde cannot
/// follow a path, so the spec and the status are read again on their own.
fn unreadable_field(value: &serde_json::Value) -> Option<String> {
    let mut spec = value.clone();
    if let Some(fields) = spec.as_object_mut() {
        for key in ["apiVersion", "kind", "metadata", "status"] {
            fields.remove(key);
        }
    }
    if let Err(e) = serde_path_to_error::deserialize::<_, WorkspaceSpec>(spec) {
        return Some(e.path().to_string());
    }
    let status = value.get("status").filter(|s| !s.is_null())?.clone();
    serde_path_to_error::deserialize::<_, WorkspaceStatus>(status)
        .err()
        .map(|e| format!("status.{}", e.path()))
}

/// Reads the request and its Workspace objects, or the response that refuses it.
fn parse(review: serde_json::Value) -> Result<Parsed, Box<AdmissionResponse>> {
    let invalid = |what: String| Box::new(AdmissionResponse::invalid(what));
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(review)
        .map_err(|e| invalid(format!("cannot read the admission review: {e}")))?;
    let req: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|e| invalid(format!("the admission review has no request: {e}")))?;
    let convert = |obj: &Option<DynamicObject>| {
        let Some(o) = obj else { return Ok(None) };
        let deny = |why: String| Box::new(AdmissionResponse::from(&req).deny(why));
        let value = serde_json::to_value(o)
            .map_err(|e| deny(format!("validation failed: cannot read the Workspace: {e}")))?;
        match serde_json::from_value::<Workspace>(value.clone()) {
            Ok(ws) => Ok(Some(ws)),
            Err(e) => {
                let field = unreadable_field(&value).map(|f| format!(": {f}"));
                let why = format!(
                    "validation failed: cannot read the Workspace: {e}{}",
                    field.unwrap_or_default()
                );
                Err(deny(why))
            }
        }
    };
    let new = convert(&req.object)?;
    let old = convert(&req.old_object)?;
    Ok(Parsed { req, new, old })
}

async fn config_maps(
    client: &Client,
    ws: &Workspace,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, kube::Error> {
    let ns = ws
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut out = BTreeMap::new();
    for name in validation::referenced_config_maps(ws) {
        if let Some(cm) = api.get_opt(&name).await? {
            out.insert(name, cm.data.unwrap_or_default());
        }
    }
    Ok(out)
}

async fn validate(
    State(h): State<Arc<Handler>>,
    Json(body): Json<serde_json::Value>,
) -> Json<AdmissionReview<DynamicObject>> {
    let Parsed { req, new, old } = match parse(body) {
        Ok(parts) => parts,
        Err(resp) => return Json(resp.into_review()),
    };
    let resp = AdmissionResponse::from(&req);
    let Some(mut new) = new else {
        return Json(resp.into_review());
    };
    if new.metadata.namespace.is_none() {
        new.metadata.namespace = req.namespace.clone();
    }
    let maps = match config_maps(&h.client, &new).await {
        Ok(maps) => maps,
        Err(e) => {
            return Json(
                resp.deny(format!("cannot look up ConfigMaps: {e}"))
                    .into_review(),
            );
        }
    };
    let ctx = validation::Context {
        cloud: h.cloud,
        config_maps: Some(maps),
    };
    let result = match (&req.operation, old) {
        (Operation::Update, Some(old)) => validation::validate_update(&old, &new, &ctx),
        _ => validation::validate_create(&new, &ctx),
    };
    let resp = match result {
        Ok(()) => resp,
        Err(errors) => {
            tracing::info!(
                namespace = req.namespace.as_deref().unwrap_or_default(),
                workspace = req.name.as_str(),
                reason = %errors,
                "Denied workspace"
            );
            resp.deny(errors.to_string())
        }
    };
    Json(resp.into_review())
}

async fn mutate(
    State(h): State<Arc<Handler>>,
    Json(body): Json<serde_json::Value>,
) -> Json<AdmissionReview<DynamicObject>> {
    let Parsed { req, new, old } = match parse(body) {
        Ok(parts) => parts,
        Err(resp) => return Json(resp.into_review()),
    };
    let resp = AdmissionResponse::from(&req);
    let (Some(new), Some(raw)) = (new, req.object.as_ref()) else {
        return Json(resp.into_review());
    };
    let raw = serde_json::to_value(raw).unwrap_or_default();
    let mut spec = defaults::defaulted(&new).spec;
    spell_instance_type(&mut spec, old.as_ref(), h.cloud);
    let defaulted = serde_json::to_value(spec).unwrap_or_default();
    let patch = defaulting_patch(&raw, &defaulted);
    let resp = if patch.0.is_empty() {
        resp
    } else {
        match resp.clone().with_patch(patch) {
            Ok(r) => r,
            Err(e) => resp.deny(format!("cannot build the defaulting patch: {e}")),
        }
    };
    Json(resp.into_review())
}

/// Stores the instance type in one spelling, so that nodes match it and the spec's hash does
/// not change with its case: the catalog's on create, and the stored one on an update that
/// only changes case or spaces (which would otherwise run the workload again).
fn spell_instance_type(spec: &mut WorkspaceSpec, old: Option<&Workspace>, cloud: Cloud) {
    let Some(name) = spec.resource.instance_type.as_deref() else {
        return;
    };
    let stored = old
        .and_then(|o| o.spec.resource.instance_type.as_deref())
        .filter(|o| sku::same_instance_type(o, name));
    let spelled = match stored {
        Some(stored) => stored.to_owned(),
        None => cloud.canonical_instance_type(name),
    };
    spec.resource.instance_type = Some(spelled);
}

/// The patch turning the spec fields of the object as sent into their defaulted form.
fn defaulting_patch(raw: &serde_json::Value, defaulted: &serde_json::Value) -> json_patch::Patch {
    let pick = |v: &serde_json::Value| {
        let fields = ["resource", "inference", "tuning"]
            .into_iter()
            .filter_map(|k| Some((k.to_owned(), v.get(k)?.clone())))
            .collect::<serde_json::Map<_, _>>();
        serde_json::Value::Object(fields)
    };
    json_patch::diff(&pick(raw), &pick(defaulted))
}

#[cfg(test)]
mod tests;
