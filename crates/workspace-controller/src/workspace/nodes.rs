//! Deciding which nodes a Workspace uses and how many node requests it still needs.
//! Everything here is pure: it reads snapshots and returns a plan.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;
use kaito_api::{Cloud, NodeRequest, Workspace, karpenter::StepCondition, labels, selector, sku};

use super::placement::node_gpus;

/// A node request of the Workspace, whichever kind it is.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestView {
    /// Object name.
    pub name: String,
    /// Whether it is being deleted.
    pub deleting: bool,
    /// Whether its Ready condition is True.
    pub ready: bool,
    /// Node it produced, if any.
    pub node_name: Option<String>,
    /// First launch/registration/initialization step that is not True.
    pub pending_step: Option<StepCondition>,
    /// The launch step, when it is False (a failure the provisioner gave up on for now).
    pub launch_failed: Option<StepCondition>,
}

impl RequestView {
    /// Reads any node request through the common trait.
    pub fn of<R: NodeRequest>(r: &R) -> Self {
        RequestView {
            name: r.meta().name.clone().unwrap_or_default(),
            deleting: r.meta().deletion_timestamp.is_some(),
            ready: r.is_ready(),
            node_name: r.node_name().map(str::to_owned),
            pending_step: r.first_pending_step(),
            launch_failed: r.launch_failed(),
        }
    }
}

/// What the Workspace's nodes look like and what to do about them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodePlan {
    /// Nodes chosen for the workload, sorted by name.
    pub selected: Vec<String>,
    /// Nodes the Workspace needs.
    pub needed: usize,
    /// New node requests to create now.
    pub to_create: usize,
    /// Node requests that exist and are not being deleted.
    pub active_requests: usize,
    /// Of those, the ones that are Ready.
    pub ready_requests: usize,
    /// A request whose launch failed: (name, message).
    pub failed_request: Option<(String, String)>,
    /// Why the first unready request is not ready yet: (reason, message).
    pub pending_request: Option<(String, String)>,
    /// Matching Ready nodes that do not report GPUs yet.
    pub waiting_for_gpus: Vec<String>,
    /// Selected NVIDIA nodes that lack the `accelerator=nvidia` label.
    pub needs_accelerator_label: Vec<String>,
}

impl NodePlan {
    /// Whether enough usable nodes are selected.
    pub fn resource_ready(&self) -> bool {
        self.selected.len() >= self.needed
    }
}

/// Whether a node is Ready and not being deleted.
pub fn node_ready(node: &Node) -> bool {
    node.metadata.deletion_timestamp.is_none()
        && node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn instance_type(node: &Node) -> Option<&str> {
    node.metadata
        .labels
        .as_ref()?
        .get(labels::LABEL_INSTANCE_TYPE)
        .map(String::as_str)
}

fn provisioned(node: &Node) -> bool {
    node.metadata.labels.as_ref().is_some_and(|l| {
        l.contains_key(labels::LABEL_NODEPOOL) || l.contains_key(labels::LABEL_MACHINE_TYPE)
    })
}

/// Chooses nodes and counts the requests still needed.
pub fn plan(
    ws: &Workspace,
    cloud: Cloud,
    nodes: &[&Node],
    requests: &[RequestView],
    unseen_created: usize,
) -> NodePlan {
    let res = &ws.spec.resource;
    let needed = usize::try_from(res.count().max(1)).unwrap_or(1);
    let preferred: BTreeSet<&str> = res
        .preferred_nodes
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let workers: BTreeSet<&str> = ws
        .status
        .as_ref()
        .and_then(|s| s.worker_nodes.as_ref())
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let wants_gpu = cloud.sku(res.instance_type()).is_none_or(|s| s.is_nvidia());
    let empty = Default::default();

    let mut candidates: Vec<&Node> = nodes
        .iter()
        .copied()
        .filter(|n| node_ready(n))
        .filter(|n| {
            selector::matches(
                &res.label_selector,
                n.metadata.labels.as_ref().unwrap_or(&empty),
            )
        })
        .filter(|n| {
            let name = n.metadata.name.as_deref().unwrap_or_default();
            preferred.contains(name)
                || instance_type(n).is_some_and(|t| sku::same_instance_type(t, res.instance_type()))
        })
        .collect();
    let rank = |n: &Node| {
        let name = n.metadata.name.as_deref().unwrap_or_default();
        (
            !preferred.contains(name),
            !workers.contains(name),
            !provisioned(n),
            name.to_owned(),
        )
    };
    candidates.sort_by_key(|n| rank(n));

    let (usable, waiting): (Vec<&Node>, Vec<&Node>) = candidates
        .into_iter()
        .partition(|n| !wants_gpu || node_gpus(n) > 0);
    let chosen: Vec<&Node> = usable.into_iter().take(needed).collect();
    let mut selected: Vec<String> = chosen
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    selected.sort();

    let active: Vec<&RequestView> = requests.iter().filter(|r| !r.deleting).collect();
    let in_flight = active
        .iter()
        .filter(|r| !r.node_name.as_ref().is_some_and(|n| selected.contains(n)))
        .count()
        + unseen_created;
    let to_create = needed
        .saturating_sub(selected.len())
        .saturating_sub(in_flight);

    NodePlan {
        needed,
        to_create,
        active_requests: active.len(),
        ready_requests: active.iter().filter(|r| r.ready).count(),
        failed_request: active.iter().find_map(|r| {
            r.launch_failed
                .as_ref()
                .map(|c| (r.name.clone(), c.message.clone()))
        }),
        pending_request: active.iter().filter(|r| !r.ready).find_map(|r| {
            r.pending_step
                .as_ref()
                .map(|c| (c.reason.clone(), c.message.clone()))
        }),
        waiting_for_gpus: waiting
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect(),
        needs_accelerator_label: if wants_gpu {
            chosen
                .iter()
                .filter(|n| {
                    n.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(labels::LABEL_ACCELERATOR))
                        != Some(&"nvidia".to_owned())
                })
                .filter_map(|n| n.metadata.name.clone())
                .collect()
        } else {
            Vec::new()
        },
        selected,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::{
        api::core::v1::{NodeCondition, NodeStatus},
        apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
    };

    use super::*;

    fn ws(count: i32, extra: &str) -> Workspace {
        yaml_serde::from_str(&format!(
            "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {{name: w, namespace: d}}\n\
             resource:\n  count: {count}\n  instanceType: Standard_NC12s_v3\n  labelSelector:\n    \
             matchLabels: {{apps: phi}}\n{extra}inference:\n  preset: {{name: phi-2}}\n"
        ))
        .expect("workspace")
    }

    fn node(name: &str, sku: &str, gpus: u32, extra: &[(&str, &str)]) -> Node {
        let mut labels = BTreeMap::from([
            ("apps".to_owned(), "phi".to_owned()),
            (labels::LABEL_INSTANCE_TYPE.to_owned(), sku.to_owned()),
        ]);
        labels.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels),
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                allocatable: Some(BTreeMap::from([(
                    "nvidia.com/gpu".to_owned(),
                    Quantity(gpus.to_string()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn request(name: &str, ready: bool, node: Option<&str>) -> RequestView {
        RequestView {
            name: name.into(),
            deleting: false,
            ready,
            node_name: node.map(str::to_owned),
            pending_step: None,
            launch_failed: None,
        }
    }

    #[test]
    fn workspace_without_nodes_requests_one_node_per_count() {
        let p = plan(&ws(2, ""), Cloud::Azure, &[], &[], 0);
        assert_eq!((p.needed, p.to_create), (2, 2));
        assert!(!p.resource_ready());
    }

    #[test]
    fn in_flight_requests_and_unseen_creations_are_not_duplicated() {
        let reqs = [request("ws000000001", false, None)];
        assert_eq!(plan(&ws(2, ""), Cloud::Azure, &[], &reqs, 1).to_create, 0);
        assert_eq!(plan(&ws(2, ""), Cloud::Azure, &[], &reqs, 0).to_create, 1);
    }

    #[test]
    fn a_deleted_request_is_replaced_exactly_once() {
        let mut gone = request("ws000000001", false, None);
        gone.deleting = true;
        let reqs = [gone, request("ws000000002", false, None)];
        assert_eq!(plan(&ws(2, ""), Cloud::Azure, &[], &reqs, 0).to_create, 1);
    }

    #[test]
    fn matching_nodes_are_used_whatever_the_instance_type_casing() {
        let n = node("n1", "standard_nc12s_v3", 2, &[]);
        let p = plan(&ws(1, ""), Cloud::Azure, &[&n], &[], 0);
        assert_eq!(p.selected, ["n1"]);
        assert_eq!(p.to_create, 0);
        assert_eq!(p.needs_accelerator_label, ["n1"]);
    }

    #[test]
    fn nodes_count_only_once_they_report_gpus() {
        let n = node("n1", "Standard_NC12s_v3", 0, &[]);
        let p = plan(
            &ws(1, ""),
            Cloud::Azure,
            &[&n],
            &[request("r", false, Some("n1"))],
            0,
        );
        assert!(p.selected.is_empty());
        assert_eq!(p.waiting_for_gpus, ["n1"]);
        assert_eq!(
            p.to_create, 0,
            "the request of the waiting node is in flight"
        );
    }

    #[test]
    fn preferred_nodes_come_first_then_workers_then_provisioned_ones() {
        let a = node("a", "Standard_NC12s_v3", 2, &[]);
        let b = node(
            "b",
            "Standard_NC12s_v3",
            2,
            &[(labels::LABEL_NODEPOOL, "kaito")],
        );
        let c = node("c", "Other", 2, &[]);
        let w = ws(1, "  preferredNodes: [c]\n");
        assert_eq!(
            plan(&w, Cloud::Azure, &[&a, &b, &c], &[], 0).selected,
            ["c"]
        );
        assert_eq!(
            plan(&ws(1, ""), Cloud::Azure, &[&a, &b], &[], 0).selected,
            ["b"]
        );
    }

    #[test]
    fn nodes_outside_the_selector_or_not_ready_are_ignored() {
        let mut other = node("x", "Standard_NC12s_v3", 2, &[]);
        if let Some(l) = other.metadata.labels.as_mut() {
            l.insert("apps".into(), "falcon".into());
        }
        let mut down = node("y", "Standard_NC12s_v3", 2, &[]);
        if let Some(c) = down.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            c[0].status = "False".into();
        }
        let p = plan(&ws(1, ""), Cloud::Azure, &[&other, &down], &[], 0);
        assert!(p.selected.is_empty());
        assert_eq!(p.to_create, 1);
    }

    #[test]
    fn a_failed_launch_is_reported_and_not_retried_with_a_new_request() {
        let mut r = request("ws1", false, None);
        r.launch_failed = Some(StepCondition {
            type_: "Launched".into(),
            status: "False".into(),
            reason: "InsufficientCapacity".into(),
            message: "regional cores quota exceeded".into(),
        });
        let p = plan(&ws(1, ""), Cloud::Azure, &[], &[r], 0);
        assert_eq!(p.to_create, 0);
        assert_eq!(
            p.failed_request.map(|f| f.1),
            Some("regional cores quota exceeded".into())
        );
    }
}
