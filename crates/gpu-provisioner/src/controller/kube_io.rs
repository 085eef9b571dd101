//! The Kubernetes writes of the controllers: finalizers and annotations by merge patch
//! (metadata only), status by server-side apply, node lookups and events.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use k8s_openapi::{api::core::v1::Node, jiff::Timestamp};
use kaito_api::labels::{self, FIELD_MANAGER_PROVISIONER, TERMINATION_FINALIZER};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    runtime::{
        events::{Event, EventType},
        reflector::{ObjectRef, Store},
    },
};
use serde_json::{Value, json};

use super::error::{ReconcileError, is_not_found};
use crate::{
    context::Context,
    intent::{ANNOTATION_LAUNCH, Intent},
    request::{Desired, Request},
};

/// Adds the termination finalizer (with the resourceVersion read, so a concurrent change
/// fails the patch) and returns the updated object.
pub async fn ensure_finalizer<R: Request>(request: &R, ctx: &Context) -> Result<R, ReconcileError> {
    if request
        .finalizers()
        .iter()
        .any(|f| f == TERMINATION_FINALIZER)
    {
        return Ok(request.clone());
    }
    let mut finalizers = request.finalizers().to_vec();
    finalizers.push(TERMINATION_FINALIZER.into());
    let patch = json!({ "metadata": {
        "finalizers": finalizers,
        "resourceVersion": request.resource_version(),
    }});
    let api: Api<R> = Api::all(ctx.client.clone());
    let updated = api
        .patch(
            &request.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    tracing::info!(request = %request.name_any(), kind = R::CONTROLLER, "Added finalizer");
    Ok(updated)
}

/// Removes the termination finalizer; a request already gone is fine.
pub async fn remove_finalizer<R: Request>(
    request: &R,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    let finalizers: Vec<&String> = request
        .finalizers()
        .iter()
        .filter(|f| *f != TERMINATION_FINALIZER)
        .collect();
    let patch = json!({ "metadata": {
        "finalizers": finalizers,
        "resourceVersion": request.resource_version(),
    }});
    let api: Api<R> = Api::all(ctx.client.clone());
    match api
        .patch(
            &request.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Records the launch intent on the request, with the instance type it launches as its
/// `node.kubernetes.io/instance-type` label (the TYPE column of `kubectl get`), as Karpenter
/// labels the requests it launches.
pub async fn set_intent<R: Request>(
    request: &R,
    ctx: &Context,
    intent: &Intent,
    instance_type: Option<&str>,
) -> Result<(), ReconcileError> {
    let mut patch =
        json!({ "metadata": { "annotations": { ANNOTATION_LAUNCH: intent.to_value() } } });
    if let Some(instance_type) = instance_type {
        patch["metadata"]["labels"] = json!({ labels::LABEL_INSTANCE_TYPE: instance_type });
    }
    let api: Api<R> = Api::all(ctx.client.clone());
    api.patch(
        &request.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Writes the whole status by server-side apply with the provisioner's field manager.
pub async fn apply_status<R: Request>(
    request: &R,
    ctx: &Context,
    desired: &Desired,
    now: Timestamp,
) -> Result<(), ReconcileError> {
    let mut body = request.status_apply(desired, now);
    strip_nulls(&mut body);
    if status_unchanged(request, &body) {
        return Ok(());
    }
    let api: Api<R> = Api::all(ctx.client.clone());
    let params = PatchParams::apply(FIELD_MANAGER_PROVISIONER).force();
    api.patch_status(&request.name_any(), &params, &Patch::Apply(&body))
        .await?;
    Ok(())
}

/// Whether the request's status already is exactly the status of an apply body. Every wake-up
/// of a settled request (its node changed, its own status write came back) computes the same
/// status again; writing it would cost a request that changes nothing.
pub fn status_unchanged<R: Request>(request: &R, body: &Value) -> bool {
    let Ok(mut current) = serde_json::to_value(request) else {
        return false;
    };
    strip_nulls(&mut current);
    current.get("status").is_some() && current.get("status") == body.get("status")
}

/// Removes null members, which server-side apply would otherwise read as fields to own.
pub fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The nodes of a pool: by either AKS agent pool label, plus the one with `provider_id`.
pub async fn pool_nodes(
    ctx: &Context,
    pool: &str,
    provider_id: Option<&str>,
) -> Result<Vec<Node>, ReconcileError> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let mut nodes = Vec::new();
    for label in [labels::LABEL_AKS_AGENTPOOL, labels::LABEL_AGENTPOOL] {
        let params = ListParams::default().labels(&format!("{label}={pool}"));
        for node in api.list(&params).await?.items {
            if !nodes.iter().any(|n: &Node| n.name_any() == node.name_any()) {
                nodes.push(node);
            }
        }
    }
    if let Some(id) = provider_id
        && !nodes
            .iter()
            .any(|n| crate::register::node_provider_id(n) == Some(id))
    {
        let all = api.list(&ListParams::default()).await?.items;
        nodes.extend(
            all.into_iter()
                .filter(|n| crate::register::node_provider_id(n) == Some(id)),
        );
    }
    Ok(nodes)
}

/// The nodes seen with each agent pool label, recorded as node watch events arrive, so that
/// a reconcile finds its pool's nodes without walking every node.
#[derive(Clone, Debug, Default)]
pub struct PoolIndex {
    names: Arc<Mutex<HashMap<String, BTreeSet<String>>>>,
}

impl PoolIndex {
    /// Records the pools a node names in its labels.
    pub fn record(&self, node: &Node) {
        let Ok(mut names) = self.names.lock() else {
            return;
        };
        for label in [labels::LABEL_AKS_AGENTPOOL, labels::LABEL_AGENTPOOL] {
            if let Some(pool) = node.labels().get(label) {
                names
                    .entry(pool.clone())
                    .or_default()
                    .insert(node.name_any());
            }
        }
    }

    fn names(&self, pool: &str) -> Vec<String> {
        let names = self.names.lock().ok();
        names
            .and_then(|n| n.get(pool).map(|s| s.iter().cloned().collect()))
            .unwrap_or_default()
    }

    /// Forgets a node that is gone or left the pool.
    fn forget(&self, pool: &str, node: &str) {
        if let Ok(mut names) = self.names.lock()
            && let Some(set) = names.get_mut(pool)
        {
            set.remove(node);
            if set.is_empty() {
                names.remove(pool);
            }
        }
    }
}

fn in_pool(node: &Node, pool: &str) -> bool {
    let labels = node.labels();
    [labels::LABEL_AKS_AGENTPOOL, labels::LABEL_AGENTPOOL]
        .iter()
        .any(|l| labels.get(*l).is_some_and(|p| p == pool))
}

/// The nodes of a pool from the node cache, chosen as [`pool_nodes`] chooses them.
pub fn cached_pool_nodes(
    cache: &Store<Node>,
    index: &PoolIndex,
    pool: &str,
    provider_id: Option<&str>,
) -> Vec<Node> {
    let mut found = Vec::new();
    for name in index.names(pool) {
        match cache.get(&ObjectRef::new(&name)) {
            Some(node) if in_pool(&node, pool) => found.push(node.as_ref().clone()),
            _ => index.forget(pool, &name),
        }
    }
    if let Some(id) = provider_id
        && !found
            .iter()
            .any(|n| crate::register::node_provider_id(n) == Some(id))
    {
        // A node without the pool label: only its providerID names it, so look at them all.
        found.extend(
            cache
                .state()
                .iter()
                .filter(|n| crate::register::node_provider_id(n) == Some(id))
                .map(|n| n.as_ref().clone()),
        );
    }
    found
}

/// Deletes a node and drops the provisioner's finalizer from it: its request is going away,
/// so nothing else will finalize it.
// TODO(#5): drain pods through the eviction API before the node goes, as Karpenter does.
pub async fn release_node(ctx: &Context, node: &Node) -> Result<(), ReconcileError> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let name = node.name_any();
    if node.meta().deletion_timestamp.is_none() {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(node = %name, "Deleted node"),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    if node.finalizers().iter().any(|f| f == TERMINATION_FINALIZER) {
        let rest: Vec<&String> = node
            .finalizers()
            .iter()
            .filter(|f| *f != TERMINATION_FINALIZER)
            .collect();
        let patch = json!({ "metadata": { "finalizers": rest } });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Publishes an event on the request; a failure to publish is only logged.
pub async fn event<R: Request>(
    ctx: &Context,
    request: &R,
    warning: bool,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(kaito_api::conditions::trim_message(&note)),
        action: reason.into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &request.object_ref(&())).await {
        tracing::warn!(%error, reason, "Cannot publish event");
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::NodeSpec;
    use kaito_api::{Machine, NodeClaim, conditions::karpenter as k};
    use kube::api::ObjectMeta;

    use super::*;
    use crate::request::Step;

    fn node(name: &str, pool_label: Option<(&str, &str)>, provider_id: Option<&str>) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: pool_label.map(|(k, v)| [(k.to_owned(), v.to_owned())].into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                provider_id: provider_id.map(str::to_owned),
                ..Default::default()
            }),
            status: None,
        })
    }

    #[test]
    fn cached_pool_nodes_are_found_by_either_pool_label_or_the_provider_id() {
        let (cache, mut writer) = kube::runtime::reflector::store();
        let index = PoolIndex::default();
        for n in [
            node("a", Some((labels::LABEL_AKS_AGENTPOOL, "ws1")), None),
            node("b", Some((labels::LABEL_AGENTPOOL, "ws1")), None),
            node(
                "c",
                Some((labels::LABEL_AGENTPOOL, "ws2")),
                Some("azure:///c"),
            ),
            node("d", None, Some("azure:///d")),
        ] {
            index.record(&n);
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(n.as_ref().clone()));
        }
        let names =
            |found: Vec<Node>| -> Vec<String> { found.iter().map(|n| n.name_any()).collect() };
        assert_eq!(
            names(cached_pool_nodes(&cache, &index, "ws1", None)),
            ["a", "b"]
        );
        assert_eq!(
            names(cached_pool_nodes(&cache, &index, "ws1", Some("azure:///d"))),
            ["a", "b", "d"]
        );
        assert!(cached_pool_nodes(&cache, &index, "ws9", None).is_empty());

        // A node gone from the cache is forgotten.
        let gone = node("a", Some((labels::LABEL_AKS_AGENTPOOL, "ws1")), None);
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Delete(
            gone.as_ref().clone(),
        ));
        assert_eq!(names(cached_pool_nodes(&cache, &index, "ws1", None)), ["b"]);
        assert_eq!(index.names("ws1"), ["b"]);
    }

    fn desired(launched: Step) -> Desired {
        Desired {
            provider_id: Some("azure:///n".into()),
            node_name: Some("n".into()),
            image_id: None,
            capacity: None,
            allocatable: None,
            launched,
            registered: Step::done(k::REGISTERED),
            initialized: Step::pending(k::REASON_NODE_NOT_FOUND, "waiting"),
        }
    }

    /// The request as it reads after its status was applied from `body`.
    fn written<R: Request>(mut request: R, body: &Value) -> R {
        let mut value = serde_json::to_value(&request).unwrap();
        value["status"] = body["status"].clone();
        request = serde_json::from_value(value).unwrap();
        request
    }

    #[test]
    fn a_status_already_written_is_not_written_again_and_a_changed_one_is() {
        let now = Timestamp::UNIX_EPOCH;
        let later = Timestamp::from_second(3600).unwrap();
        let machine = Machine::new("ws1", Default::default());
        let mut body = machine.status_apply(&desired(Step::done(k::LAUNCHED)), now);
        strip_nulls(&mut body);
        assert!(!status_unchanged(&machine, &body), "nothing written yet");
        let machine = written(machine, &body);
        let mut again = machine.status_apply(&desired(Step::done(k::LAUNCHED)), later);
        strip_nulls(&mut again);
        assert!(status_unchanged(&machine, &again));
        let mut changed = machine.status_apply(&desired(Step::pending("Launching", "")), later);
        strip_nulls(&mut changed);
        assert!(!status_unchanged(&machine, &changed));

        let claim = NodeClaim::new("ws2", Default::default());
        let mut body = claim.status_apply(&desired(Step::done(k::LAUNCHED)), now);
        strip_nulls(&mut body);
        let claim = written(claim, &body);
        let mut again = claim.status_apply(&desired(Step::done(k::LAUNCHED)), later);
        strip_nulls(&mut again);
        assert!(status_unchanged(&claim, &again));
    }
}
