//! The registration and initialization steps: find the pool's node, bring it to what
//! Karpenter requires, and copy what it reports into the status.

use std::time::Duration;

use k8s_openapi::{api::core::v1::Node, jiff::Timestamp};
use kaito_api::conditions::karpenter as k;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};

use super::{
    KindContext,
    error::{ReconcileError, is_not_found},
    kube_io,
};
use crate::{
    context::Context,
    register::{self, NodeMatch},
    request::{Desired, Request, Step, StepState},
};

/// How often an uninitialized node is looked at even without a watch event.
const RECHECK: Duration = Duration::from_secs(30);

/// What the step produced.
pub enum Outcome {
    /// The status to write, and when to look again.
    Status(Box<Desired>, Option<Duration>),
    /// The node was being deleted by someone else, so the request was deleted too.
    Deleted,
}

/// Runs registration and initialization for a launched request.
pub async fn run<R: Request>(
    request: &R,
    ctx: &Context,
    cache: &KindContext,
    launched: Step,
    now: Timestamp,
) -> Result<Outcome, ReconcileError> {
    let pool = request.name_any();
    // From the cache: a node patch computed from a stale copy fails on its resourceVersion.
    let nodes =
        kube_io::cached_pool_nodes(&cache.nodes, &cache.pools, &pool, request.provider_id());
    let node = match register::find_node(&nodes, request.provider_id()) {
        NodeMatch::One(node) => node,
        NodeMatch::None => return Ok(waiting_for_node(launched)),
        NodeMatch::Multiple(names) => return Ok(several_nodes(launched, &names)),
    };
    if node.metadata.deletion_timestamp.is_some() {
        // Node finalization deletes the request, which deletes the pool.
        delete_request(request, ctx).await?;
        return Ok(Outcome::Deleted);
    }
    let age = register::elapsed(node.metadata.creation_timestamp.as_ref().map(|t| t.0), now);
    let initialized =
        register::initialization(&node, request, age, ctx.settings.initialization_deadline);
    if initialized.state == StepState::Failed && !was_failed(request) {
        kube_io::event(
            ctx,
            request,
            true,
            "GpuNotRegistered",
            initialized.message.clone(),
        )
        .await;
    }
    if let Some(patch) = register::node_patch(&node, request, initialized.is_done()) {
        patch_node(ctx, &node, &patch).await?;
        tracing::info!(request = %pool, node = %node.name_any(), "Registered node");
    }
    let facts = register::facts(&node);
    let wait = (!initialized.is_done()).then_some(RECHECK);
    let desired = Desired {
        provider_id: facts.provider_id,
        node_name: facts.node_name,
        image_id: facts.image_id,
        capacity: facts.capacity,
        allocatable: facts.allocatable,
        launched,
        registered: Step::done(k::REGISTERED),
        initialized,
    };
    Ok(Outcome::Status(Box::new(desired), wait))
}

fn waiting_for_node(launched: Step) -> Outcome {
    let message = "no node of the agent pool has registered yet";
    let desired = Desired {
        provider_id: None,
        node_name: None,
        image_id: None,
        capacity: None,
        allocatable: None,
        launched,
        registered: Step::pending(k::REASON_NODE_NOT_FOUND, message),
        initialized: Step::pending(k::REASON_NODE_NOT_FOUND, message),
    };
    // The node watch wakes the request when the node joins; the requeue only covers a
    // missed event.
    Outcome::Status(Box::new(desired), Some(RECHECK))
}

fn several_nodes(launched: Step, names: &[String]) -> Outcome {
    let message = format!("several nodes claim the agent pool: {}", names.join(", "));
    let desired = Desired {
        provider_id: None,
        node_name: None,
        image_id: None,
        capacity: None,
        allocatable: None,
        launched,
        registered: Step::failed(k::REASON_MULTIPLE_NODES_FOUND, message.clone()),
        initialized: Step::pending(k::REASON_NODE_NOT_FOUND, message),
    };
    Outcome::Status(Box::new(desired), Some(RECHECK))
}

/// Whether the status already reports the initialization as failed.
fn was_failed<R: Request>(request: &R) -> bool {
    request
        .condition(R::KIND.step_conditions()[2])
        .is_some_and(|c| {
            c.status == kaito_api::conditions::status::FALSE
                && c.reason == k::REASON_RESOURCE_NOT_REGISTERED
        })
}

async fn patch_node(
    ctx: &Context,
    node: &Node,
    patch: &serde_json::Value,
) -> Result<(), ReconcileError> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    api.patch(
        &node.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

async fn delete_request<R: Request>(request: &R, ctx: &Context) -> Result<(), ReconcileError> {
    let api: Api<R> = Api::all(ctx.client.clone());
    tracing::info!(request = %request.name_any(), "Node is being deleted; deleting its request");
    match api
        .delete(&request.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
