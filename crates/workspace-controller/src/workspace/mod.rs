//! Reconciling one Workspace: observe, decide, apply, report. A reconcile never waits: it
//! creates what is missing, writes status once, and returns; watches wake it again.

pub mod apply;
mod events;
mod finalize;
pub mod inference;
pub mod node_requests;
pub mod nodes;
pub mod placement;
pub mod readiness;
pub mod revision;
pub mod status;
pub mod tuning;
mod workload;

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{api::core::v1::Node, jiff::Timestamp};
use kaito_api::{
    Workspace, defaults,
    labels::{ANNOTATION_HASH, LABEL_ACCELERATOR, WORKSPACE_FINALIZER},
    validation,
    workspace::{WorkloadMode, WorkspaceState},
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{controller::Action, reflector::ObjectRef},
};

use crate::{context::Context, error::Error};

/// How often a Workspace is looked at again while something may time out.
const PENDING_RESYNC: Duration = Duration::from_secs(30);
/// How often a settled Workspace is looked at again anyway.
const SETTLED_RESYNC: Duration = Duration::from_secs(600);

/// Reconciles one Workspace.
pub async fn reconcile(obj: Arc<Workspace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.stores.synced() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let started = Instant::now();
    let key = ObjectRef::from_obj(obj.as_ref());
    let ws = defaults::defaulted(&obj);
    let result = if ws.metadata.deletion_timestamp.is_some() {
        finalize::run(&ws, &ctx).await
    } else {
        run(&ws, &ctx).await
    };
    match &result {
        Ok(_) => {
            ctx.backoff.reset(&key);
            ctx.metrics
                .reconcile
                .success("workspace", started.elapsed());
        }
        Err(e) => ctx
            .metrics
            .reconcile
            .failure("workspace", e.category(), started.elapsed()),
    }
    result
}

/// Retries a failed reconcile after a per-Workspace exponential delay.
pub fn error_policy(obj: Arc<Workspace>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(obj.as_ref());
    let delay = ctx.backoff.fail(&key);
    tracing::warn!(
        workspace = %key,
        category = error.category(),
        error = %error,
        retry_in = ?delay,
        "Reconcile failed"
    );
    Action::requeue(delay)
}

async fn run(ws: &Workspace, ctx: &Context) -> Result<Action, Error> {
    // So that node events find this Workspace without walking all of them.
    (ctx.stores.selectors).record_selector(ws, &ws.spec.resource.label_selector);
    ensure_finalizer(ws, ctx).await?;
    let vctx = validation::Context {
        cloud: ctx.config.cloud,
        config_maps: None,
    };
    // A spec this controller already ran stays runnable when a later version adds rules;
    // rules judge new specs, which the webhook also saw.
    let hash = revision::spec_hash(&ws.spec)?;
    let already_ran = ws.annotations().get(ANNOTATION_HASH) == Some(&hash);
    let verdict = if already_ran {
        Ok(())
    } else {
        validation::validate_create(ws, &vctx)
    };
    if let Err(errors) = verdict {
        let obs = status::Observed {
            invalid: Some(format!(
                "{errors}; change the spec, or delete and recreate the Workspace where the \
                 field cannot change"
            )),
            ..Default::default()
        };
        report(ws, &obs, ctx).await?;
        return Ok(Action::await_change());
    }
    let revision = revision::ensure(ws, &hash, ctx).await?;

    let plan = ensure_node_requests(ws, ctx).await?;
    label_accelerators(&plan.needs_accelerator_label, ctx).await?;

    let mut obs = status::Observed {
        plan,
        ..Default::default()
    };
    let built = match ws.mode() {
        WorkloadMode::Inference => workload::inference(ws, ctx, revision, &mut obs).await,
        WorkloadMode::Tuning => workload::tuning(ws, ctx, revision, &mut obs).await,
    };
    match built {
        // Retrying cannot fix what the API server refuses: say why on the Workspace instead.
        Err(e) if e.is_invalid() => workload::refused(&mut obs, &e),
        other => other?,
    }
    let state = report(ws, &obs, ctx).await?;
    Ok(match state {
        Some(WorkspaceState::Ready | WorkspaceState::Succeeded | WorkspaceState::Failed) => {
            Action::requeue(SETTLED_RESYNC)
        }
        _ => Action::requeue(PENDING_RESYNC),
    })
}

/// Decides which nodes the Workspace uses and creates the node requests still missing.
pub async fn ensure_node_requests(ws: &Workspace, ctx: &Context) -> Result<nodes::NodePlan, Error> {
    let plan = plan_nodes(ws, ctx);
    if plan.to_create > 0 {
        let uid = ws.uid().ok_or(Error::MissingField("metadata.uid"))?;
        let mut taken = node_requests::all_names(ws, ctx);
        taken.extend(ctx.expectations.unseen(&ObjectRef::from_obj(ws), &[]));
        let names = node_requests::next_names(&uid, &taken, plan.to_create);
        node_requests::create(ws, &names, ctx).await?;
        events::node_requests_created(ws, ctx, &names).await;
    }
    Ok(plan)
}

/// Node decisions from the caches and the record of unseen creations.
fn plan_nodes(ws: &Workspace, ctx: &Context) -> nodes::NodePlan {
    let requests = node_requests::observed(ws, ctx);
    let seen: Vec<String> = node_requests::all_names(ws, ctx).into_iter().collect();
    let unseen = ctx.expectations.unseen(&ObjectRef::from_obj(ws), &seen);
    let selector = &ws.spec.resource.label_selector;
    let all = ctx.stores.node_labels.labelled(selector, &ctx.stores.nodes);
    let refs: Vec<&Node> = all.iter().map(AsRef::as_ref).collect();
    nodes::plan(ws, ctx.config.cloud, &refs, &requests, unseen.len())
}

/// Computes the status, emits events for changed conditions and writes it.
async fn report(
    ws: &Workspace,
    obs: &status::Observed,
    ctx: &Context,
) -> Result<Option<WorkspaceState>, Error> {
    let status = status::compute(ws, obs, ctx.config.node_request_api, Timestamp::now());
    let written = status::write(ws, &status, &ctx.client).await?;
    if written {
        events::conditions_changed(ws, &status, ctx).await;
    }
    let key = format!("{}/{}", ws.namespace().unwrap_or_default(), ws.name_any());
    ctx.metrics
        .set_state(&key, status.state.map(|s| s.as_str()));
    Ok(status.state)
}

async fn ensure_finalizer(ws: &Workspace, ctx: &Context) -> Result<(), Error> {
    if ws.finalizers().iter().any(|f| f == WORKSPACE_FINALIZER) {
        return Ok(());
    }
    let api: Api<Workspace> =
        Api::namespaced(ctx.client.clone(), &ws.namespace().unwrap_or_default());
    let rv = ws.resource_version().unwrap_or_default();
    let patch: json_patch::Patch = serde_json::from_value(if ws.finalizers().is_empty() {
        serde_json::json!([
            { "op": "test", "path": "/metadata/resourceVersion", "value": rv },
            { "op": "add", "path": "/metadata/finalizers", "value": [WORKSPACE_FINALIZER] }
        ])
    } else {
        serde_json::json!([
            { "op": "test", "path": "/metadata/resourceVersion", "value": rv },
            { "op": "add", "path": "/metadata/finalizers/-", "value": WORKSPACE_FINALIZER }
        ])
    })
    .map_err(|source| Error::Serialize {
        what: "finalizer patch",
        source,
    })?;
    api.patch(
        &ws.name_any(),
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await
    .map_err(|e| Error::kube("add workspace finalizer", e))?;
    Ok(())
}

/// Labels selected NVIDIA nodes `accelerator=nvidia`, as KAITO does for its GPU plugin.
async fn label_accelerators(names: &[String], ctx: &Context) -> Result<(), Error> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let unique: BTreeSet<&String> = names.iter().collect();
    for name in unique {
        let patch =
            serde_json::json!({ "metadata": { "labels": { LABEL_ACCELERATOR: "nvidia" } } });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::kube(format!("label node {name}"), e))?;
    }
    Ok(())
}
