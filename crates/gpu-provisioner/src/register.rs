//! Registration and initialization: finding the node an agent pool produced, what to change
//! on it, and whether it is initialized. Everything here is pure.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    api::core::v1::{Node, Taint},
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::OwnerReference},
    jiff::Timestamp,
};
use kaito_api::{
    Cloud,
    conditions::karpenter as k,
    labels::{self, TERMINATION_FINALIZER},
};
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::request::{Request, Step};

/// Label the stand-in and AKS put on the Node of the node resource group's image version.
pub const LABEL_NODE_IMAGE_VERSION: &str = "kubernetes.azure.com/node-image-version";

/// Taints that must be gone before a node counts as initialized: (key, effect).
const EPHEMERAL_TAINTS: [(&str, &str); 5] = [
    ("node.kubernetes.io/not-ready", "NoSchedule"),
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoSchedule"),
    (
        "node.cloudprovider.kubernetes.io/uninitialized",
        "NoSchedule",
    ),
    (labels::TAINT_UNREGISTERED, "NoExecute"),
];

/// Which node a request's pool produced.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeMatch {
    /// None yet.
    None,
    /// Exactly one node with a providerID.
    One(Box<Node>),
    /// Several: something is wrong.
    Multiple(Vec<String>),
}

/// Picks the node among the pool's nodes: the one with the recorded providerID if known,
/// else the only one that has a providerID.
pub fn find_node(nodes: &[Node], provider_id: Option<&str>) -> NodeMatch {
    let with_id: Vec<&Node> = nodes
        .iter()
        .filter(|n| node_provider_id(n).is_some())
        .collect();
    if let Some(id) = provider_id
        && let Some(node) = with_id.iter().find(|n| node_provider_id(n) == Some(id))
    {
        return NodeMatch::One(Box::new((*node).clone()));
    }
    match with_id.as_slice() {
        [] => NodeMatch::None,
        [one] => NodeMatch::One(Box::new((*one).clone())),
        many => NodeMatch::Multiple(many.iter().map(|n| n.name_any()).collect()),
    }
}

/// The node's providerID, when set.
pub fn node_provider_id(node: &Node) -> Option<&str> {
    node.spec
        .as_ref()?
        .provider_id
        .as_deref()
        .filter(|p| !p.is_empty())
}

/// The owner reference a node gets to its request.
pub fn owner_reference<R: Request>(request: &R) -> OwnerReference {
    OwnerReference {
        api_version: R::api_version(&()).into_owned(),
        kind: R::kind(&()).into_owned(),
        name: request.name_any(),
        uid: request.uid().unwrap_or_default(),
        block_owner_deletion: Some(true),
        controller: None,
    }
}

/// A merge patch bringing the node to what registration (and initialization) require, or
/// `None` when it already is. Lists are sent whole with the resourceVersion they were
/// computed from, so a concurrent change makes the patch fail instead of being lost.
pub fn node_patch<R: Request>(node: &Node, request: &R, initialized: bool) -> Option<Value> {
    let mut labels = BTreeMap::from([(labels::LABEL_REGISTERED.to_owned(), "true".to_owned())]);
    if initialized {
        labels.insert(labels::LABEL_INITIALIZED.into(), "true".into());
    }
    let mut annotations = BTreeMap::new();
    if R::copies_metadata_to_node() {
        labels.extend(request.labels().iter().map(|(k, v)| (k.clone(), v.clone())));
        annotations.extend(
            request
                .annotations()
                .iter()
                .filter(|(k, _)| copyable(k))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    let node_labels = node.labels();
    let node_annotations = node.annotations();
    labels.retain(|k, v| node_labels.get(k) != Some(v));
    annotations.retain(|k, v| node_annotations.get(k) != Some(v));

    let mut finalizers = node.finalizers().to_vec();
    let add_finalizer = !finalizers.iter().any(|f| f == TERMINATION_FINALIZER);
    if add_finalizer {
        finalizers.push(TERMINATION_FINALIZER.into());
    }
    let owner = owner_reference(request);
    let mut owners = node.owner_references().to_vec();
    let add_owner = !owners.iter().any(|o| o.uid == owner.uid);
    if add_owner {
        owners.push(owner);
    }
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let taints = desired_taints(node, request, &current);
    let taints_change = taints != current;

    if labels.is_empty() && annotations.is_empty() && !add_finalizer && !add_owner && !taints_change
    {
        return None;
    }
    let mut metadata = json!({ "resourceVersion": node.resource_version() });
    if !labels.is_empty() {
        metadata["labels"] = json!(labels);
    }
    if !annotations.is_empty() {
        metadata["annotations"] = json!(annotations);
    }
    if add_finalizer {
        metadata["finalizers"] = json!(finalizers);
    }
    if add_owner {
        metadata["ownerReferences"] = json!(owners);
    }
    let mut patch = json!({ "metadata": metadata });
    if taints_change {
        patch["spec"] = json!({ "taints": taints });
    }
    Some(patch)
}

/// Annotations of the request that belong on the node (not our bookkeeping).
fn copyable(key: &str) -> bool {
    key != crate::intent::ANNOTATION_LAUNCH
        && key != "kubectl.kubernetes.io/last-applied-configuration"
}

/// The node's taints after registration: `karpenter.sh/unregistered` removed and, for kinds
/// that sync them, the request's taints and startup taints added once.
fn desired_taints<R: Request>(node: &Node, request: &R, current: &[Taint]) -> Vec<Taint> {
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| t.key != labels::TAINT_UNREGISTERED)
        .cloned()
        .collect();
    let no_sync = node
        .labels()
        .get(labels::LABEL_DO_NOT_SYNC_TAINTS)
        .is_some_and(|v| v == "true");
    // Startup taints are merged only at first registration: once another agent removed them
    // they must stay removed.
    let first_registration = !node.labels().contains_key(labels::LABEL_REGISTERED);
    if R::copies_metadata_to_node() && !no_sync {
        let startup = if first_registration {
            request.startup_taints()
        } else {
            &[]
        };
        for t in request.taints().iter().chain(startup) {
            let exists = taints
                .iter()
                .any(|n| n.key == t.key && n.effect == t.effect);
            if !exists {
                taints.push(Taint {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: t.effect.clone(),
                    time_added: None,
                });
            }
        }
    }
    taints
}

/// Status fields copied from the node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeFacts {
    /// providerID.
    pub provider_id: Option<String>,
    /// Node name.
    pub node_name: Option<String>,
    /// Capacity.
    pub capacity: Option<BTreeMap<String, Quantity>>,
    /// Allocatable.
    pub allocatable: Option<BTreeMap<String, Quantity>>,
    /// Image of the node.
    pub image_id: Option<String>,
}

/// What the request's status records about its node.
pub fn facts(node: &Node) -> NodeFacts {
    let status = node.status.as_ref();
    let image = node
        .labels()
        .get(LABEL_NODE_IMAGE_VERSION)
        .cloned()
        .or_else(|| {
            status
                .and_then(|s| s.node_info.as_ref())
                .map(|i| i.os_image.clone())
        });
    NodeFacts {
        provider_id: node_provider_id(node).map(str::to_owned),
        node_name: Some(node.name_any()),
        capacity: status.and_then(|s| s.capacity.clone()),
        allocatable: status.and_then(|s| s.allocatable.clone()),
        image_id: image.filter(|i| !i.is_empty()),
    }
}

/// Whether a quantity is non-zero.
fn non_zero(q: &Quantity) -> bool {
    q.0.chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .any(|c| ('1'..='9').contains(&c))
}

/// Whether the node's Ready condition is True.
pub fn node_ready(node: &Node) -> bool {
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The initialization step. `registered_for` is how long the node has been registered; past
/// `deadline` a NVIDIA node still without GPUs fails instead of waiting forever.
pub fn initialization<R: Request>(
    node: &Node,
    request: &R,
    registered_for: Duration,
    deadline: Duration,
) -> Step {
    if !node_ready(node) {
        return Step::pending(k::REASON_NODE_NOT_READY, "node is not ready");
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let startup = request.startup_taints();
    if let Some(t) = taints.iter().find(|t| {
        startup
            .iter()
            .any(|s| s.key == t.key && s.effect == t.effect)
    }) {
        return Step::pending(
            k::REASON_STARTUP_TAINTS_EXIST,
            format!("startup taint {} remains", t.key),
        );
    }
    if let Some(t) = taints
        .iter()
        .find(|t| EPHEMERAL_TAINTS.contains(&(t.key.as_str(), t.effect.as_str())))
    {
        return Step::pending(
            k::REASON_EPHEMERAL_TAINTS_EXIST,
            format!("taint {} remains", t.key),
        );
    }
    let allocatable = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.clone())
        .unwrap_or_default();
    let registered = |name: &str| allocatable.get(name).is_some_and(non_zero);
    let requested = request.requests().into_iter().flat_map(|r| r.keys());
    if let Some(missing) = requested
        .filter(|r| *r != labels::RESOURCE_STORAGE)
        .find(|r| !registered(r))
    {
        return Step::pending(
            k::REASON_RESOURCE_NOT_REGISTERED,
            format!("{missing} not registered"),
        );
    }
    let nvidia = request
        .instance_type()
        .and_then(|t| Cloud::Azure.sku(t))
        .is_some_and(|s| s.is_nvidia());
    if nvidia && !registered(labels::RESOURCE_NVIDIA_GPU) {
        let message = format!("{} not registered on the node", labels::RESOURCE_NVIDIA_GPU);
        if registered_for >= deadline {
            let message = format!("{message} after {}s", deadline.as_secs());
            return Step::failed(k::REASON_RESOURCE_NOT_REGISTERED, message);
        }
        return Step::pending(k::REASON_RESOURCE_NOT_REGISTERED, message);
    }
    Step::done(k::INITIALIZED)
}

/// How long ago `since` was.
pub fn elapsed(since: Option<Timestamp>, now: Timestamp) -> Duration {
    since
        .and_then(|s| Duration::try_from(now.duration_since(s)).ok())
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};
    use kaito_api::{
        NodeClaim,
        karpenter::{NodeClaimSpec, Requirement, Taint as RequestTaint},
    };

    use super::*;
    use crate::request::StepState;

    fn node(name: &str, provider: &str, gpus: &str, ready: bool) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.resource_version = Some("7".into());
        n.spec = Some(NodeSpec {
            provider_id: Some(provider.into()),
            ..NodeSpec::default()
        });
        n.status = Some(NodeStatus {
            allocatable: Some(BTreeMap::from([(
                "nvidia.com/gpu".into(),
                Quantity(gpus.into()),
            )])),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        });
        n
    }

    fn claim() -> NodeClaim {
        let mut c = NodeClaim::new(
            "ws1",
            NodeClaimSpec {
                requirements: vec![Requirement::is_in(
                    labels::LABEL_INSTANCE_TYPE,
                    &["Standard_NC24ads_A100_v4"],
                )],
                taints: Some(vec![RequestTaint::sku_gpu()]),
                ..NodeClaimSpec::default()
            },
        );
        c.metadata.uid = Some("uid-1".into());
        c.metadata.labels = Some(BTreeMap::from([("kaito.sh/workspace".into(), "w".into())]));
        c
    }

    #[test]
    fn one_node_with_a_provider_id_is_the_match_and_two_are_ambiguous() {
        let a = node("a", "azure:///a", "1", true);
        let b = node("b", "azure:///b", "1", true);
        assert!(matches!(
            find_node(std::slice::from_ref(&a), None),
            NodeMatch::One(_)
        ));
        assert!(matches!(
            find_node(&[a.clone(), b.clone()], None),
            NodeMatch::Multiple(_)
        ));
        assert!(matches!(find_node(&[a, b], Some("azure:///b")),
                NodeMatch::One(n) if n.name_any() == "b"));
        assert_eq!(find_node(&[], None), NodeMatch::None);
    }

    #[test]
    fn registration_adds_finalizer_owner_labels_and_taints_then_nothing_more() {
        let claim = claim();
        let n = node("a", "azure:///a", "1", true);
        let patch = node_patch(&n, &claim, false).unwrap();
        assert_eq!(
            patch["metadata"]["labels"]["karpenter.sh/registered"],
            "true"
        );
        assert_eq!(patch["metadata"]["labels"]["kaito.sh/workspace"], "w");
        assert_eq!(patch["metadata"]["finalizers"][0], TERMINATION_FINALIZER);
        assert_eq!(patch["metadata"]["ownerReferences"][0]["kind"], "NodeClaim");
        assert_eq!(patch["spec"]["taints"][0]["key"], "sku");
        assert_eq!(patch["metadata"]["resourceVersion"], "7");

        let mut done = n.clone();
        done.metadata.labels = Some(BTreeMap::from([
            ("karpenter.sh/registered".into(), "true".into()),
            ("kaito.sh/workspace".into(), "w".into()),
        ]));
        done.metadata.finalizers = Some(vec![TERMINATION_FINALIZER.into()]);
        done.metadata.owner_references = Some(vec![owner_reference(&claim)]);
        done.spec.as_mut().unwrap().taints = Some(vec![Taint {
            key: "sku".into(),
            value: Some("gpu".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        }]);
        assert_eq!(node_patch(&done, &claim, false), None);
    }

    #[test]
    fn the_unregistered_taint_is_removed() {
        let claim = claim();
        let mut n = node("a", "azure:///a", "1", true);
        n.spec.as_mut().unwrap().taints = Some(vec![Taint {
            key: labels::TAINT_UNREGISTERED.into(),
            effect: "NoExecute".into(),
            ..Taint::default()
        }]);
        let patch = node_patch(&n, &claim, false).unwrap();
        let taints = patch["spec"]["taints"].as_array().unwrap();
        assert!(
            taints
                .iter()
                .all(|t| t["key"] != labels::TAINT_UNREGISTERED)
        );
    }

    #[test]
    fn a_gpu_node_is_initialized_only_when_ready_with_gpus() {
        let claim = claim();
        let deadline = Duration::from_secs(1800);
        let ok = node("a", "p", "1", true);
        assert!(initialization(&ok, &claim, Duration::ZERO, deadline).is_done());
        let not_ready = node("a", "p", "1", false);
        let step = initialization(&not_ready, &claim, Duration::ZERO, deadline);
        assert_eq!(step.reason, k::REASON_NODE_NOT_READY);
        let no_gpu = node("a", "p", "0", true);
        let step = initialization(&no_gpu, &claim, Duration::from_secs(60), deadline);
        assert_eq!(step.state, StepState::Pending);
        let step = initialization(&no_gpu, &claim, deadline, deadline);
        assert_eq!(step.state, StepState::Failed);
        assert_eq!(step.reason, k::REASON_RESOURCE_NOT_REGISTERED);
    }
}
