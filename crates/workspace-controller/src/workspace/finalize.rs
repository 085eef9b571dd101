//! Deleting a Workspace: its node requests go first (their nodes and cloud pools with them),
//! then our finalizer, and only ours. Owned workloads follow through owner references.

use std::time::Duration;

use kaito_api::{Workspace, labels::WORKSPACE_FINALIZER};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{controller::Action, reflector::ObjectRef},
};

use super::{node_requests, status};
use crate::{
    context::Context,
    error::{Error, is_not_found},
};

/// How often deletion looks again while node requests are still going away.
const DELETE_POLL: Duration = Duration::from_secs(5);

/// Runs one step of deletion.
pub async fn run(ws: &Workspace, ctx: &Context) -> Result<Action, Error> {
    let Some(index) = ws
        .finalizers()
        .iter()
        .position(|f| f == WORKSPACE_FINALIZER)
    else {
        return Ok(Action::await_change());
    };
    let obs = status::Observed {
        deleting: true,
        ..Default::default()
    };
    let st = status::compute(
        ws,
        &obs,
        ctx.config.node_request_api,
        k8s_openapi::jiff::Timestamp::now(),
    );
    if let Err(e) = status::write(ws, &st, &ctx.client).await {
        tracing::debug!(error = %e, "Cannot mark workspace deleting");
    }
    let key = ObjectRef::from_obj(ws);
    let remaining = node_requests::delete_all(ws, ctx).await?;
    if remaining > 0 {
        tracing::info!(workspace = %key, remaining, "Waiting for node requests to go");
        return Ok(Action::requeue(DELETE_POLL));
    }
    remove_finalizer(ws, index, ctx).await?;
    ctx.expectations.forget(&key);
    ctx.stores.owners.forget(&key);
    ctx.metrics.set_state(
        &format!("{}/{}", ws.namespace().unwrap_or_default(), ws.name_any()),
        None,
    );
    tracing::info!(workspace = %key, "Workspace deleted");
    Ok(Action::await_change())
}

/// Removes our finalizer at `index`, checking it is still there so no other is touched.
async fn remove_finalizer(ws: &Workspace, index: usize, ctx: &Context) -> Result<(), Error> {
    let api: Api<Workspace> =
        Api::namespaced(ctx.client.clone(), &ws.namespace().unwrap_or_default());
    let path = format!("/metadata/finalizers/{index}");
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        { "op": "test", "path": path, "value": WORKSPACE_FINALIZER },
        { "op": "remove", "path": path }
    ]))
    .map_err(|source| Error::Serialize {
        what: "finalizer patch",
        source,
    })?;
    match api
        .patch(
            &ws.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::kube("remove workspace finalizer", e)),
    }
}
