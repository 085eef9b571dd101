//! Kubernetes Events for what users should see in `kubectl describe workspace`.

use kaito_api::{
    Workspace, WorkspaceStatus,
    conditions::{status as s, trim_message},
};
use kube::{
    Resource,
    runtime::events::{Event, EventType, Recorder},
};

use crate::context::Context;

async fn publish(
    ws: &Workspace,
    ctx: &Context,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(trim_message(&note)),
        action: action.into(),
        secondary: None,
    };
    // A recorder per event: kube-runtime's recorder keeps every event of the last minutes to
    // count repeats and walks all of them on each publish, a cost that grows with the number
    // of Workspaces. These events mark condition changes, which seldom repeat within minutes.
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    if let Err(e) = recorder.publish(&event, &ws.object_ref(&())).await {
        tracing::warn!(error = %e, "Cannot publish event");
    }
}

/// One event per condition whose status or reason changed.
pub async fn conditions_changed(ws: &Workspace, new: &WorkspaceStatus, ctx: &Context) {
    let old = ws
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for c in new.conditions.iter().flatten() {
        let before = old.iter().find(|o| o.type_ == c.type_);
        if before.is_some_and(|b| b.status == c.status && b.reason == c.reason) {
            continue;
        }
        let failing = c.status == s::FALSE && !c.reason.to_ascii_lowercase().contains("pending");
        let kind = if failing {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(
            ws,
            ctx,
            kind,
            &c.reason,
            &c.type_,
            format!("{} is {}: {}", c.type_, c.status, c.message),
        )
        .await;
    }
}

/// An event naming the node requests just created.
pub async fn node_requests_created(ws: &Workspace, ctx: &Context, names: &[String]) {
    let kind = ctx.config.node_request_api.as_str();
    let note = format!("created {kind} {}", names.join(", "));
    publish(
        ws,
        ctx,
        EventType::Normal,
        "NodeRequestCreated",
        "CreateNodeRequest",
        note,
    )
    .await;
}
