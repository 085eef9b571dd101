//! The node-request controllers: one generic reconcile over `Request`, run once per
//! installed kind. A reconcile reads as: observe, decide, apply, report.

pub mod error;
pub(crate) mod kube_io;
mod launch_step;
pub mod machine;
pub mod nodeclaim;
mod register_step;

use std::{sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt};
use k8s_openapi::{api::core::v1::Node, jiff::Timestamp};
use kaito_api::labels;
use kube::{
    Api, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};

pub use self::error::ReconcileError;
use self::kube_io::PoolIndex;
use crate::{
    context::Context,
    inventory::OwnerView,
    request::{Desired, Request, Step},
    terminate,
};

/// Upper bound of any requeue, so a lost watch event is never fatal.
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a request is looked at again while the node cache has not listed yet.
const CACHE_WAIT: Duration = Duration::from_millis(200);

/// What the reconciles of one kind share: the process-wide context and a cache of nodes.
pub struct KindContext {
    /// The process-wide context.
    pub shared: Arc<Context>,
    /// Every node, kept current by the watch that also wakes the requests.
    pub nodes: Store<Node>,
    /// The nodes of each agent pool, by name.
    pub pools: PoolIndex,
}

/// Runs the controller of kind `R` until its watch stream ends.
pub async fn run<R: Request>(ctx: Arc<Context>) {
    let requests: Api<R> = Api::all(ctx.client.clone());
    let (nodes, writer) = reflector::store();
    // Registration reads nodes from this cache: a node watch event wakes the request anyway,
    // and listing nodes from the API server on every wake-up costs it work that grows with
    // the number of nodes.
    let node_events = watcher(
        Api::<Node>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .modify(|node| node.managed_fields_mut().clear())
    .default_backoff()
    .reflect(writer)
    .touched_objects();
    tracing::info!(controller = R::CONTROLLER, "Starting controller");
    let pools = PoolIndex::default();
    let kind_ctx = Arc::new(KindContext {
        shared: ctx,
        nodes,
        pools: pools.clone(),
    });
    Controller::new(requests, watcher::Config::default())
        .watches_stream(node_events, move |node| {
            pools.record(&node);
            node_to_request::<R>(node)
        })
        .with_config(controller::Config::default().concurrency(16))
        .run(reconcile::<R>, error_policy::<R>, kind_ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The request a node belongs to: by owner reference, else by its agent pool label.
fn node_to_request<R: Request>(node: Node) -> Option<ObjectRef<R>> {
    let kind = R::kind(&());
    if let Some(owner) = node.owner_references().iter().find(|o| o.kind == kind) {
        return Some(ObjectRef::new(&owner.name));
    }
    let labels = node.labels();
    let pool = labels
        .get(labels::LABEL_AKS_AGENTPOOL)
        .or_else(|| labels.get(labels::LABEL_AGENTPOOL))?;
    Some(ObjectRef::new(pool))
}

fn key<R: Request>(request: &R) -> String {
    format!("{}/{}", R::CONTROLLER, request.name_any())
}

async fn reconcile<R: Request>(
    request: Arc<R>,
    kind_ctx: Arc<KindContext>,
) -> Result<Action, ReconcileError> {
    // Until the node cache has its first list, registration would see no node at all.
    let cache_ready = kind_ctx.nodes.wait_until_ready().now_or_never();
    if !matches!(cache_ready, Some(Ok(()))) {
        return Ok(Action::requeue(CACHE_WAIT));
    }
    let ctx = &kind_ctx.shared;
    let started = std::time::Instant::now();
    let result = reconcile_request(request.as_ref(), ctx, &kind_ctx).await;
    match &result {
        Ok(_) => {
            ctx.metrics
                .reconciles
                .success(R::CONTROLLER, started.elapsed());
            ctx.backoff.reset(&key(request.as_ref()));
        }
        Err(e) => ctx
            .metrics
            .reconciles
            .failure(R::CONTROLLER, e.category(), started.elapsed()),
    }
    result
}

fn error_policy<R: Request>(
    request: Arc<R>,
    error: &ReconcileError,
    kind_ctx: Arc<KindContext>,
) -> Action {
    let ctx = &kind_ctx.shared;
    // ARM's Retry-After is followed as asked; only failures without one back off further.
    let wait = match error.retry_after() {
        Some(asked) => asked,
        None => ctx.backoff.fail(&key(request.as_ref())),
    };
    let (request, category) = (request.name_any(), error.category());
    let retry_in_ms = wait.as_millis() as u64;
    if category == "Conflict" {
        // Written from a copy that changed meanwhile (kubelets and controllers update nodes
        // all the time): expected, and the retry reads the newer copy.
        tracing::debug!(controller = R::CONTROLLER, %request, %error, retry_in_ms, "Conflict");
    } else {
        tracing::warn!(
            controller = R::CONTROLLER,
            %request,
            category,
            %error,
            retry_in_ms,
            "Reconcile failed"
        );
    }
    Action::requeue(wait)
}

/// Leaves others' requests alone, terminates deleted ones, and otherwise: finalizer before
/// any cloud call, launch, register and initialize, then writes the status once.
async fn reconcile_request<R: Request>(
    request: &R,
    ctx: &Context,
    kind_ctx: &KindContext,
) -> Result<Action, ReconcileError> {
    if !request.is_ours() {
        return Ok(Action::await_change());
    }
    if request.meta().deletion_timestamp.is_some() {
        return terminate::run(request, ctx).await;
    }
    let request = kube_io::ensure_finalizer(request, ctx).await?;
    let now = Timestamp::now();
    let (launched, launch_wait) = launch_step::run(&request, ctx, now).await?;
    let (desired, register_wait) = if launched.is_done() {
        match register_step::run(&request, ctx, kind_ctx, launched, now).await? {
            register_step::Outcome::Status(desired, wait) => (*desired, wait),
            register_step::Outcome::Deleted => return Ok(Action::await_change()),
        }
    } else {
        (not_launched::<R>(launched), None)
    };
    kube_io::apply_status(&request, ctx, &desired, now).await?;
    report(&request, ctx, &desired);
    let wait = [launch_wait, register_wait].into_iter().flatten().min();
    Ok(Action::requeue(wait.unwrap_or(RESYNC).min(RESYNC)))
}

/// The status of a request whose pool is not created yet.
fn not_launched<R: Request>(launched: Step) -> Desired {
    use kaito_api::{NodeRequestKind, conditions::karpenter as k};
    let init_reason = match R::KIND {
        NodeRequestKind::Machine => k::REASON_NOT_LAUNCHED,
        NodeRequestKind::NodeClaim => k::REASON_NODE_NOT_FOUND,
    };
    Desired {
        provider_id: None,
        node_name: None,
        image_id: None,
        capacity: None,
        allocatable: None,
        launched,
        registered: Step::pending(k::REASON_NODE_NOT_FOUND, "agent pool is not launched yet"),
        initialized: Step::pending(init_reason, "agent pool is not launched yet"),
    }
}

/// Records the request and node behind the pool for the gRPC API.
fn report<R: Request>(request: &R, ctx: &Context, desired: &Desired) {
    let owner = OwnerView {
        kind: R::kind(&()).into_owned(),
        request: request.name_any(),
        node: desired.node_name.clone().unwrap_or_default(),
        provider_id: desired.provider_id.clone().unwrap_or_default(),
    };
    ctx.inventory.own(&request.name_any(), owner);
}
