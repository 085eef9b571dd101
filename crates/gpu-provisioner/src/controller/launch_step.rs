//! The launch step: validate, then create the agent pool without ever waiting for the
//! operation; later reconciles read the pool until it is created or has failed.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kaito_api::conditions::{karpenter as k, status};

use super::{error::ReconcileError, kube_io};
use crate::{
    arm::{AgentPool, AgentPoolBody, ArmError, ErrorClass},
    context::Context,
    intent::Intent,
    launch::{self, LaunchAction},
    request::{Request, Step},
};

/// Short wait after a precondition failure: re-read the pool and decide again.
const REREAD: Duration = Duration::from_secs(1);

/// The launch step and how long until it should be looked at again.
pub async fn run<R: Request>(
    request: &R,
    ctx: &Context,
    now: Timestamp,
) -> Result<(Step, Option<Duration>), ReconcileError> {
    if current(request).is_done() {
        return Ok((Step::done(k::LAUNCHED), None));
    }
    let body = match launch::build(request, now) {
        Ok(body) => body,
        Err(invalid) => return Ok((refuse(request, ctx, &invalid).await, None)),
    };
    let pool = request.name_any();
    if let Some(left) = ctx.poll_wait(&pool) {
        return Ok((current(request), Some(left)));
    }
    let intent = Intent::of(request);
    // No create was ever recorded, or this process saw its last create refused outright:
    // nothing can exist, so skip the read. After a restart the read always comes first.
    let observed = match &intent {
        None => None,
        Some(_) if ctx.create_refused(&pool) => None,
        Some(_) => observe(ctx, &pool).await?,
    };
    let settings = &ctx.settings;
    let action = launch::decide(
        observed.as_ref(),
        intent.as_ref(),
        now,
        settings.launch_retry_interval,
        settings.poll_interval,
    );
    tracing::debug!(request = %pool, ?action, "Launch decision");
    match action {
        LaunchAction::Create => create(request, ctx, &body, intent, now).await,
        LaunchAction::Wait(poll) => {
            ctx.schedule_poll(&pool, poll);
            let state = observed
                .as_ref()
                .map(AgentPool::state)
                .unwrap_or_default()
                .to_owned();
            let message = format!("agent pool {pool} is {state}");
            Ok((Step::pending(k::REASON_LAUNCHING, message), Some(poll)))
        }
        LaunchAction::Launched(created) => {
            let vm_size = created.properties.vm_size.as_deref().unwrap_or_default();
            tracing::info!(request = %pool, vm_size, "Agent pool created");
            Ok((Step::done(k::LAUNCHED), None))
        }
        LaunchAction::Failed(failed) => failed_pool(request, ctx, &failed, intent, now).await,
        LaunchAction::Hold(left) => Ok((current(request), Some(left))),
    }
}

/// The launch step as the status now says.
fn current<R: Request>(request: &R) -> Step {
    match request.condition(R::KIND.step_conditions()[0]) {
        Some(c) if c.status == status::TRUE => Step::done(k::LAUNCHED),
        Some(c) if c.status == status::FALSE => Step::failed(&c.reason, c.message),
        Some(c) if !c.reason.is_empty() => Step::pending(&c.reason, c.message),
        _ => Step::pending(k::REASON_LAUNCHING, "launching"),
    }
}

/// Reads the pool, recording it for the gRPC API.
async fn observe(ctx: &Context, pool: &str) -> Result<Option<AgentPool>, ReconcileError> {
    let observed = ctx.cloud.get(pool).await?;
    if let Some(p) = &observed {
        ctx.inventory.observe(p, Timestamp::now());
    }
    Ok(observed)
}

/// Answers bad input: a failed launch, an event, no cloud call.
async fn refuse<R: Request>(request: &R, ctx: &Context, invalid: &launch::InvalidRequest) -> Step {
    let step = Step::failed(k::REASON_INVALID_REQUEST, invalid.to_string());
    if current(request) != step {
        tracing::warn!(request = %request.name_any(), error = %invalid, "Refusing node request");
        kube_io::event(ctx, request, true, invalid.category(), invalid.to_string()).await;
    }
    step
}

/// Records the intent, then sends the create (never overwriting an existing pool).
async fn create<R: Request>(
    request: &R,
    ctx: &Context,
    body: &AgentPoolBody,
    previous: Option<Intent>,
    now: Timestamp,
) -> Result<(Step, Option<Duration>), ReconcileError> {
    let pool = request.name_any();
    let instance_type = body.properties.vm_size.as_deref();
    let _guard = ctx
        .try_lock_pool(&pool)
        .ok_or_else(|| ReconcileError::PoolBusy(pool.clone()))?;
    let mut intent = Intent {
        pool: pool.clone(),
        started_at: Some(now),
        operation: None,
        failed_at: previous.as_ref().and_then(|i| i.failed_at),
    };
    kube_io::set_intent(request, ctx, &intent, instance_type).await?;
    let created = ctx.cloud.create(&pool, body).await;
    // A refusal other than "exists" or "busy" means no pool came of this create.
    let refused = created.as_ref().is_err_and(|e| {
        !matches!(e.class, ErrorClass::Precondition | ErrorClass::InProgress)
            && e.status.is_some_and(|s| s != 408 && s < 500)
    });
    ctx.set_create_refused(&pool, refused);
    match created {
        Ok(accepted) => {
            let wait = accepted.retry_after.unwrap_or(ctx.settings.poll_interval);
            intent.operation = accepted.operation_url;
            intent.failed_at = None;
            kube_io::set_intent(request, ctx, &intent, instance_type).await?;
            ctx.schedule_poll(&pool, wait);
            tracing::info!(request = %pool, "Creating agent pool");
            let note = format!("creating agent pool {pool}");
            kube_io::event(ctx, request, false, "CreatingAgentPool", note).await;
            Ok((
                Step::pending(k::REASON_LAUNCHING, format!("creating agent pool {pool}")),
                Some(wait),
            ))
        }
        Err(error) => create_failed(request, ctx, intent, error, now).await,
    }
}

/// Sorts a refused create: exists or busy ⇒ re-read; terminal ⇒ fail and hold; else retry.
async fn create_failed<R: Request>(
    request: &R,
    ctx: &Context,
    mut intent: Intent,
    error: ArmError,
    now: Timestamp,
) -> Result<(Step, Option<Duration>), ReconcileError> {
    let pool = request.name_any();
    match error.class {
        ErrorClass::Precondition => {
            tracing::info!(request = %pool, "Agent pool exists already; following it");
            Ok((current(request), Some(REREAD)))
        }
        ErrorClass::InProgress => {
            let wait = error.retry_after.unwrap_or(ctx.settings.poll_interval);
            ctx.schedule_poll(&pool, wait);
            Ok((
                Step::pending(k::REASON_LAUNCHING, error.describe()),
                Some(wait),
            ))
        }
        class if class.is_terminal() => {
            intent.failed_at = Some(now);
            kube_io::set_intent(request, ctx, &intent, None).await?;
            let step = launch::error_step(&error);
            tracing::warn!(request = %pool, error = %error, "Agent pool create refused");
            kube_io::event(ctx, request, true, class.as_str(), step.message.clone()).await;
            Ok((step, Some(ctx.settings.launch_retry_interval)))
        }
        _ => {
            let key = format!("{}/{pool}", R::CONTROLLER);
            let wait = match error.retry_after {
                Some(asked) => asked,
                None => ctx.backoff.fail(&key),
            };
            tracing::warn!(request = %pool, error = %error, retry_in_ms = wait.as_millis() as u64,
                "Agent pool create failed, retrying");
            Ok((launch::error_step(&error), Some(wait)))
        }
    }
}

/// A pool whose create failed: read why from the operation, delete the pool so the next
/// create starts afresh, and fail (terminal) or retry (transient).
async fn failed_pool<R: Request>(
    request: &R,
    ctx: &Context,
    pool: &AgentPool,
    intent: Option<Intent>,
    now: Timestamp,
) -> Result<(Step, Option<Duration>), ReconcileError> {
    let name = request.name_any();
    let error = match intent.as_ref().and_then(|i| i.operation.clone()) {
        Some(url) => ctx.cloud.operation(&url).await?.error.unwrap_or_default(),
        None => Default::default(),
    };
    let error = ArmError::from_response("PutAgentPool", 200, error, None);
    {
        let _guard = ctx
            .try_lock_pool(&name)
            .ok_or_else(|| ReconcileError::PoolBusy(name.clone()))?;
        match ctx
            .cloud
            .delete(&name, pool.properties.e_tag.as_deref())
            .await
        {
            Ok(accepted) => {
                ctx.schedule_poll(
                    &name,
                    accepted.retry_after.unwrap_or(ctx.settings.poll_interval),
                );
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut intent = intent.unwrap_or_default();
    intent.pool = name.clone();
    if error.class.is_terminal() {
        intent.failed_at = Some(now);
        kube_io::set_intent(request, ctx, &intent, None).await?;
        let step = launch::error_step(&error);
        kube_io::event(
            ctx,
            request,
            true,
            error.class.as_str(),
            step.message.clone(),
        )
        .await;
        return Ok((step, Some(ctx.settings.launch_retry_interval)));
    }
    tracing::warn!(request = %name, error = %error, "Agent pool create failed; recreating");
    Ok((launch::error_step(&error), Some(ctx.settings.poll_interval)))
}
