//! Termination of a node request: nodes first, then the agent pool, and the finalizer only
//! once ARM says the pool is gone. Only metadata is written here, never the status.

use std::time::Duration;

use kaito_api::{conditions::karpenter as k, labels::TERMINATION_FINALIZER};
use kube::runtime::controller::Action;

use crate::{
    arm::{AgentPool, ErrorClass},
    context::Context,
    controller::{ReconcileError, kube_io},
    launch::valid_pool_name,
    request::Request,
};

/// How soon deleted nodes are looked for again.
const NODE_WAIT: Duration = Duration::from_secs(2);

/// What termination does next, decided from what is known.
#[derive(Clone, Debug, PartialEq)]
pub enum TerminateAction {
    /// Nothing was ever created: drop the finalizer now.
    Release,
    /// The launch failed for good: one best-effort delete, then drop the finalizer.
    BestEffortDelete,
    /// Delete these nodes and wait for them to go.
    DeleteNodes,
    /// Follow the pool: read it and delete it when it is idle.
    FollowPool,
}

/// Decides the first move of a termination.
pub fn decide(
    pool_name_valid: bool,
    launch_failed_for_good: bool,
    has_nodes: bool,
) -> TerminateAction {
    match (pool_name_valid, has_nodes, launch_failed_for_good) {
        (false, false, _) => TerminateAction::Release,
        (_, true, _) => TerminateAction::DeleteNodes,
        (true, false, true) => TerminateAction::BestEffortDelete,
        (true, false, false) => TerminateAction::FollowPool,
    }
}

/// What to do with the pool as read.
#[derive(Clone, Debug, PartialEq)]
pub enum PoolAction {
    /// Gone: the finalizer may go.
    Gone,
    /// An operation runs (creating or deleting): look again later.
    Wait,
    /// Idle: delete it, only if it is still this version.
    Delete(Option<String>),
}

/// Decides from the pool as read.
pub fn decide_pool(pool: Option<&AgentPool>) -> PoolAction {
    match pool {
        None => PoolAction::Gone,
        Some(p) if p.is_busy() => PoolAction::Wait,
        Some(p) => PoolAction::Delete(p.properties.e_tag.clone()),
    }
}

/// Whether the request's launch failed for good and nothing was launched.
fn failed_for_good<R: Request>(request: &R) -> bool {
    request.provider_id().is_none()
        && request.launch_failed().is_some_and(|c| {
            c.reason == k::REASON_INSUFFICIENT_CAPACITY || c.reason == k::REASON_INVALID_REQUEST
        })
}

/// Runs one termination step for a request being deleted.
pub async fn run<R: Request>(request: &R, ctx: &Context) -> Result<Action, ReconcileError> {
    if !request
        .finalizers()
        .iter()
        .any(|f| f == TERMINATION_FINALIZER)
    {
        return Ok(Action::await_change());
    }
    let pool = request.name_any();
    let valid = valid_pool_name(&pool);
    let nodes = if valid || request.provider_id().is_some() {
        kube_io::pool_nodes(ctx, &pool, request.provider_id()).await?
    } else {
        Vec::new()
    };
    match decide(valid, failed_for_good(request), !nodes.is_empty()) {
        TerminateAction::Release => release(request, ctx).await,
        TerminateAction::DeleteNodes => {
            for node in &nodes {
                kube_io::release_node(ctx, node).await?;
            }
            Ok(Action::requeue(NODE_WAIT))
        }
        TerminateAction::BestEffortDelete => {
            if let Err(error) = ctx.cloud.delete(&pool, None).await
                && !error.is_not_found()
            {
                tracing::info!(request = %pool, %error, "Best-effort pool delete failed");
            }
            release(request, ctx).await
        }
        TerminateAction::FollowPool => follow_pool(request, ctx, &pool).await,
    }
}

/// Reads the pool and deletes it when idle; drops the finalizer once it is gone.
async fn follow_pool<R: Request>(
    request: &R,
    ctx: &Context,
    pool: &str,
) -> Result<Action, ReconcileError> {
    if let Some(left) = ctx.poll_wait(pool) {
        return Ok(Action::requeue(left));
    }
    let observed = ctx.cloud.get(pool).await?;
    let poll = ctx.settings.poll_interval;
    match decide_pool(observed.as_ref()) {
        PoolAction::Gone => {
            // A node that joined while the pool was going is deleted before the finalizer goes.
            let late = kube_io::pool_nodes(ctx, pool, request.provider_id()).await?;
            if !late.is_empty() {
                return Ok(Action::requeue(Duration::ZERO));
            }
            release(request, ctx).await
        }
        PoolAction::Wait => {
            ctx.schedule_poll(pool, poll);
            Ok(Action::requeue(poll))
        }
        PoolAction::Delete(etag) => {
            let _guard = ctx
                .try_lock_pool(pool)
                .ok_or_else(|| ReconcileError::PoolBusy(pool.to_owned()))?;
            match ctx.cloud.delete(pool, etag.as_deref()).await {
                Ok(accepted) => {
                    let wait = accepted.retry_after.unwrap_or(poll);
                    ctx.schedule_poll(pool, wait);
                    tracing::info!(request = %pool, "Deleting agent pool");
                    kube_io::event(
                        ctx,
                        request,
                        false,
                        "DeletingAgentPool",
                        format!("deleting agent pool {pool}"),
                    )
                    .await;
                    Ok(Action::requeue(wait))
                }
                Err(e) if e.is_not_found() => Ok(Action::requeue(Duration::ZERO)),
                Err(e) if matches!(e.class, ErrorClass::Precondition | ErrorClass::InProgress) => {
                    Ok(Action::requeue(e.retry_after.unwrap_or(poll)))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

async fn release<R: Request>(request: &R, ctx: &Context) -> Result<Action, ReconcileError> {
    kube_io::remove_finalizer(request, ctx).await?;
    ctx.forget_pool(&request.name_any());
    tracing::info!(request = %request.name_any(), kind = R::CONTROLLER, "Released node request");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_that_never_had_a_valid_name_is_released_at_once() {
        assert_eq!(decide(false, true, false), TerminateAction::Release);
    }

    #[test]
    fn nodes_go_before_anything_else() {
        assert_eq!(decide(true, false, true), TerminateAction::DeleteNodes);
        assert_eq!(decide(true, true, true), TerminateAction::DeleteNodes);
    }

    #[test]
    fn a_permanently_failed_launch_gets_one_best_effort_delete() {
        assert_eq!(decide(true, true, false), TerminateAction::BestEffortDelete);
        assert_eq!(decide(true, false, false), TerminateAction::FollowPool);
    }

    #[test]
    fn a_pool_being_created_is_waited_for_and_an_idle_one_deleted_by_etag() {
        let mut pool = AgentPool::default();
        pool.properties.provisioning_state = Some("Creating".into());
        assert_eq!(decide_pool(Some(&pool)), PoolAction::Wait);
        pool.properties.provisioning_state = Some("Deleting".into());
        assert_eq!(decide_pool(Some(&pool)), PoolAction::Wait);
        pool.properties.provisioning_state = Some("Succeeded".into());
        pool.properties.e_tag = Some("e1".into());
        assert_eq!(
            decide_pool(Some(&pool)),
            PoolAction::Delete(Some("e1".into()))
        );
        assert_eq!(decide_pool(None), PoolAction::Gone);
    }
}
