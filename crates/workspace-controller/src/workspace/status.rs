//! The Workspace status: conditions, state and worker nodes computed from what was
//! observed (pure), then written whole by server-side apply when it changed.

use std::time::Duration;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kaito_api::{
    NodeRequestKind, Preset, Workspace, WorkspaceStatus,
    conditions::{NewCondition, find, reasons as r, status as s, types as t},
    labels::FIELD_MANAGER_WORKSPACE,
    workspace::{WorkloadMode, WorkspaceState},
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};

use super::{
    nodes::NodePlan,
    readiness::{JobProgress, PodProblem, Replicas},
};
use crate::error::Error;

/// What the inference workload looks like.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InferenceView {
    /// Replica counts, when the workload exists.
    pub replicas: Option<Replicas>,
    /// The first pod problem, if any.
    pub problem: Option<PodProblem>,
}

/// Everything status is computed from.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Node decisions.
    pub plan: NodePlan,
    /// Inference workload, for inference Workspaces.
    pub inference: Option<InferenceView>,
    /// Tuning Job progress, for tuning Workspaces.
    pub job: Option<JobProgress>,
    /// Why the spec cannot be run, when it cannot.
    pub invalid: Option<String>,
    /// Why the workload cannot be built although the spec is valid.
    pub blocked: Option<(String, String)>,
    /// Whether the Workspace is being deleted.
    pub deleting: bool,
}

fn node_request_condition(kind: NodeRequestKind, plan: &NodePlan) -> NewCondition {
    let (ty, pending, failed) = match kind {
        NodeRequestKind::Machine => (
            t::MACHINE_READY,
            r::CREATE_MACHINE_PENDING,
            r::CHECK_MACHINE_STATUS_FAILED,
        ),
        NodeRequestKind::NodeClaim => (
            t::NODE_CLAIM_READY,
            r::CREATE_NODE_CLAIM_PENDING,
            r::CHECK_NODE_CLAIM_STATUS_FAILED,
        ),
    };
    let noun = match kind {
        NodeRequestKind::Machine => "machines",
        NodeRequestKind::NodeClaim => "nodeclaims",
    };
    if let Some((name, message)) = &plan.failed_request {
        return NewCondition::new(ty, s::FALSE, failed, format!("{noun} {name}: {message}"));
    }
    if plan.resource_ready() {
        let msg = format!("{} of {} nodes ready", plan.selected.len(), plan.needed);
        return NewCondition::new(ty, s::TRUE, r::INSTALL_NODE_PLUGINS_SUCCESS, msg);
    }
    let all_ready = plan.to_create == 0
        && plan.active_requests > 0
        && plan.ready_requests >= plan.active_requests;
    let message = if all_ready {
        // The requests are done; what is missing is on their nodes.
        let nodes = if plan.waiting_for_gpus.is_empty() {
            "their nodes".to_owned()
        } else {
            format!(
                "nvidia.com/gpu on nodes {}",
                plan.waiting_for_gpus.join(", ")
            )
        };
        format!(
            "{} of {} {noun} ready; waiting for {nodes}",
            plan.ready_requests, plan.active_requests
        )
    } else {
        let waiting = plan.active_requests.max(plan.to_create);
        let detail = plan
            .pending_request
            .as_ref()
            .map(|(reason, msg)| format!(": {reason} {msg}").trim_end().to_owned())
            .unwrap_or_default();
        format!("waiting for {waiting} {noun}{detail}")
    };
    NewCondition::new(ty, s::UNKNOWN, pending, message)
}

fn resource_condition(plan: &NodePlan) -> NewCondition {
    if plan.resource_ready() {
        let msg = format!(
            "{} of {} nodes ready: {}",
            plan.selected.len(),
            plan.needed,
            plan.selected.join(", ")
        );
        return NewCondition::new(t::RESOURCE_READY, s::TRUE, r::RESOURCE_STATUS_SUCCESS, msg);
    }
    let msg = if let Some((name, message)) = &plan.failed_request {
        format!("node request {name} failed: {message}")
    } else if !plan.waiting_for_gpus.is_empty() {
        format!(
            "waiting for nvidia.com/gpu on nodes {}",
            plan.waiting_for_gpus.join(", ")
        )
    } else {
        let pending = plan
            .pending_request
            .as_ref()
            .map(|(_, m)| format!(" ({m})"))
            .unwrap_or_default();
        format!(
            "{} of {} nodes ready{pending}",
            plan.selected.len(),
            plan.needed
        )
    };
    NewCondition::new(t::RESOURCE_READY, s::FALSE, r::RESOURCE_STATUS_FAILED, msg)
}

fn inference_condition(
    view: &InferenceView,
    plan: &NodePlan,
    previous: &[Condition],
    timeout: Duration,
    now: Timestamp,
) -> NewCondition {
    let cond = |status, reason: &str, msg: String| {
        NewCondition::new(t::INFERENCE_READY, status, reason, msg)
    };
    let Some(replicas) = view.replicas else {
        let msg = if plan.resource_ready() {
            "creating the workload"
        } else {
            "waiting for nodes"
        };
        return cond(s::FALSE, r::INFERENCE_STATUS_PENDING, msg.into());
    };
    if replicas.all_ready() && view.problem.is_none() {
        return cond(
            s::TRUE,
            r::INFERENCE_STATUS_SUCCESS,
            format!("{} of {} replicas ready", replicas.ready, replicas.desired),
        );
    }
    if let Some(p) = &view.problem {
        return cond(s::FALSE, p.reason, p.message.clone());
    }
    if replicas.stalled {
        return cond(
            s::FALSE,
            r::INFERENCE_STATUS_FAILED,
            "the rollout exceeded its progress deadline".into(),
        );
    }
    let since = find(previous, t::INFERENCE_READY)
        .filter(|c| c.status == s::FALSE)
        .map_or(now, |c| c.last_transition_time.0);
    let overdue =
        now.duration_since(since).as_secs() > i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX);
    let msg = format!("{} of {} replicas ready", replicas.ready, replicas.desired);
    if overdue {
        cond(
            s::FALSE,
            r::INFERENCE_STATUS_FAILED,
            format!("{msg} after {} minutes", timeout.as_secs() / 60),
        )
    } else {
        cond(s::FALSE, r::INFERENCE_STATUS_PENDING, msg)
    }
}

fn job_conditions(job: &JobProgress) -> (NewCondition, NewCondition) {
    let started =
        |status, reason: &str, msg: &str| NewCondition::new(t::JOB_STARTED, status, reason, msg);
    let summary = |status, reason: &str, msg: String| {
        NewCondition::new(t::WORKSPACE_SUCCEEDED, status, reason, msg)
    };
    match job {
        JobProgress::Pending => (
            started(
                s::FALSE,
                r::TUNING_JOB_STATUS_PENDING,
                "the tuning job has not started",
            ),
            summary(
                s::FALSE,
                r::WORKSPACE_PENDING,
                "waiting for the tuning job to start".into(),
            ),
        ),
        JobProgress::Running { active, ready } => (
            started(
                s::TRUE,
                r::TUNING_JOB_STATUS_STARTED,
                "the tuning job is running",
            ),
            summary(
                s::FALSE,
                r::WORKSPACE_PENDING,
                format!("tuning job running: {active} active, {ready} ready pods"),
            ),
        ),
        JobProgress::Succeeded => (
            started(
                s::TRUE,
                r::TUNING_JOB_STATUS_STARTED,
                "the tuning job started",
            ),
            summary(
                s::TRUE,
                r::WORKSPACE_SUCCEEDED,
                "the tuning job succeeded".into(),
            ),
        ),
        JobProgress::Failed(why) => (
            started(
                s::FALSE,
                r::TUNING_JOB_STATUS_FAILED,
                "the tuning job failed",
            ),
            summary(s::FALSE, r::WORKSPACE_FAILED, why.clone()),
        ),
    }
}

fn mirror_ready(summary: &NewCondition) -> NewCondition {
    let reason = if summary.status == s::TRUE {
        r::WORKSPACE_READY
    } else {
        summary.reason.as_str()
    };
    NewCondition::new(
        t::WORKSPACE_READY,
        summary.status,
        reason,
        summary.message.clone(),
    )
}

fn inference_state(ready: bool, previous: Option<WorkspaceState>) -> WorkspaceState {
    match (ready, previous) {
        (true, _) => WorkspaceState::Ready,
        (false, Some(WorkspaceState::Ready | WorkspaceState::NotReady)) => WorkspaceState::NotReady,
        (false, _) => WorkspaceState::Pending,
    }
}

/// The status the Workspace should have.
pub fn compute(
    ws: &Workspace,
    obs: &Observed,
    kind: NodeRequestKind,
    now: Timestamp,
) -> WorkspaceStatus {
    let old = ws.status.clone().unwrap_or_default();
    let previous = old.conditions.clone().unwrap_or_default();
    let generation = ws.metadata.generation.unwrap_or_default();
    if obs.deleting {
        return deleting(old, generation, now);
    }
    let mut conds = Vec::new();
    let state;
    if let Some(message) = &obs.invalid {
        // The state agrees with the summary: this spec will not run as it is.
        state = Some(match ws.mode() {
            WorkloadMode::Inference => inference_state(false, old.state),
            WorkloadMode::Tuning => WorkspaceState::Failed,
        });
        let summary = NewCondition::new(
            t::WORKSPACE_SUCCEEDED,
            s::FALSE,
            r::INVALID_SPEC,
            message.clone(),
        );
        conds.push(mirror_ready(&summary));
        conds.push(summary);
    } else {
        conds.push(resource_condition(&obs.plan));
        conds.push(node_request_condition(kind, &obs.plan));
        let summary = if let Some(view) = &obs.inference {
            let timeout = ws
                .preset()
                .and_then(|p| Preset::find(&p.name))
                .map_or(Duration::from_secs(600), |p| p.readiness_timeout);
            let inference = inference_condition(view, &obs.plan, &previous, timeout, now);
            let ready = inference.status == s::TRUE && obs.plan.resource_ready();
            state = Some(inference_state(ready, old.state));
            let summary = match (&obs.blocked, ready) {
                (Some((reason, msg)), _) => NewCondition::new(
                    t::WORKSPACE_SUCCEEDED,
                    s::FALSE,
                    reason.clone(),
                    msg.clone(),
                ),
                (None, true) => NewCondition::new(
                    t::WORKSPACE_SUCCEEDED,
                    s::TRUE,
                    r::WORKSPACE_SUCCEEDED,
                    "the model is being served",
                ),
                (None, false) => NewCondition::new(
                    t::WORKSPACE_SUCCEEDED,
                    s::FALSE,
                    r::WORKSPACE_PENDING,
                    inference.message.clone(),
                ),
            };
            conds.push(inference);
            summary
        } else {
            let job = obs.job.clone().unwrap_or(JobProgress::Pending);
            let (started, summary) = job_conditions(&job);
            state = Some(match job {
                JobProgress::Pending => WorkspaceState::Pending,
                JobProgress::Running { .. } => WorkspaceState::Running,
                JobProgress::Succeeded => WorkspaceState::Succeeded,
                JobProgress::Failed(_) => WorkspaceState::Failed,
            });
            conds.push(started);
            match &obs.blocked {
                Some((reason, msg)) => NewCondition::new(
                    t::WORKSPACE_SUCCEEDED,
                    s::FALSE,
                    reason.clone(),
                    msg.clone(),
                ),
                None => summary,
            }
        };
        conds.push(mirror_ready(&summary));
        conds.push(summary);
    }
    let conditions = conds
        .into_iter()
        .map(|c| c.into_condition(&previous, generation, Time(now)))
        .collect();
    WorkspaceStatus {
        worker_nodes: Some(obs.plan.selected.clone()).filter(|n| !n.is_empty()),
        conditions: Some(conditions),
        target_node_count: Some(i32::try_from(obs.plan.needed).unwrap_or(1)),
        state: state.or(Some(WorkspaceState::Pending)),
        performance: old.performance,
    }
}

/// The status of a Workspace being deleted: what it had, plus WorkspaceDeleting.
fn deleting(mut old: WorkspaceStatus, generation: i64, now: Timestamp) -> WorkspaceStatus {
    let mut conds = old.conditions.take().unwrap_or_default();
    let cond = NewCondition::new(
        t::WORKSPACE_DELETING,
        s::TRUE,
        r::WORKSPACE_DELETED,
        "deleting the workspace and its node requests",
    )
    .into_condition(&conds, generation, Time(now));
    conds.retain(|c| c.type_ != t::WORKSPACE_DELETING);
    conds.push(cond);
    old.conditions = Some(conds);
    old
}

/// Writes the status by server-side apply if it differs from what the object has.
pub async fn write(
    ws: &Workspace,
    status: &WorkspaceStatus,
    client: &kube::Client,
) -> Result<bool, Error> {
    if ws.status.as_ref() == Some(status) {
        return Ok(false);
    }
    let api: Api<Workspace> = Api::namespaced(client.clone(), &ws.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER_WORKSPACE).force();
    api.patch_status(&ws.name_any(), &params, &Patch::Apply(&patch))
        .await
        .map_err(|e| Error::kube("write workspace status", e))?;
    Ok(true)
}

#[cfg(test)]
mod tests;
