//! What the controllers need from either node-request kind beyond `kaito_api::NodeRequest`:
//! ownership, the kind's condition semantics and its status shape.

use std::{collections::BTreeMap, fmt::Debug};

use k8s_openapi::{apimachinery::pkg::api::resource::Quantity, jiff::Timestamp};
use kaito_api::{
    NodeRequest, NodeRequestKind,
    conditions::{karpenter as k, status},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// The outcome of one step (launch, registration, initialization).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Whether the step is done, failed, or not yet done.
    pub state: StepState,
    /// PascalCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

/// The three outcomes of a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepState {
    /// Done.
    Done,
    /// Failed for good (until the input or the cloud changes).
    Failed,
    /// Not done yet; written as each kind writes pending steps.
    Pending,
}

impl Step {
    /// A finished step.
    pub fn done(reason: &str) -> Self {
        Step {
            state: StepState::Done,
            reason: reason.into(),
            message: String::new(),
        }
    }

    /// A step still under way.
    pub fn pending(reason: &str, message: impl Into<String>) -> Self {
        Step {
            state: StepState::Pending,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A step that failed for good.
    pub fn failed(reason: &str, message: impl Into<String>) -> Self {
        Step {
            state: StepState::Failed,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// Whether the step is done.
    pub fn is_done(&self) -> bool {
        self.state == StepState::Done
    }
}

/// The status a reconcile wants the node request to have.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// providerID of the node.
    pub provider_id: Option<String>,
    /// Name of the node.
    pub node_name: Option<String>,
    /// Image of the node (NodeClaim only).
    pub image_id: Option<String>,
    /// Capacity of the node.
    pub capacity: Option<BTreeMap<String, Quantity>>,
    /// Allocatable of the node.
    pub allocatable: Option<BTreeMap<String, Quantity>>,
    /// Launch step.
    pub launched: Step,
    /// Registration step.
    pub registered: Step,
    /// Initialization step.
    pub initialized: Step,
}

impl Desired {
    /// The root `Ready` step: done when all three are, failed when one failed.
    pub fn ready(&self) -> Step {
        let steps = [&self.launched, &self.registered, &self.initialized];
        if steps.iter().all(|s| s.is_done()) {
            return Step::done(k::READY);
        }
        let first = steps.iter().find(|s| s.state == StepState::Failed);
        let first = first.or_else(|| steps.iter().find(|s| !s.is_done()));
        match first {
            Some(s) if s.state == StepState::Failed => Step::failed(&s.reason, s.message.clone()),
            Some(s) => Step::pending(&s.reason, s.message.clone()),
            None => Step::done(k::READY),
        }
    }
}

/// A node-request kind the provisioner handles.
pub trait Request:
    NodeRequest + Serialize + DeserializeOwned + Debug + Send + Sync + 'static
{
    /// Controller name, for logs and metrics.
    const CONTROLLER: &'static str;
    /// Status word of a pending registration or initialization step.
    const PENDING: &'static str;

    /// Whether the request belongs to KAITO (and so to this provisioner).
    fn is_ours(&self) -> bool;

    /// The default node label of this kind (`karpenter.sh/nodepool: kaito` for NodeClaims).
    fn default_label() -> (&'static str, &'static str);

    /// The whole status as a server-side-apply body.
    fn status_apply(&self, desired: &Desired, now: Timestamp) -> Value;

    /// Whether the request's labels and annotations are copied onto its node.
    fn copies_metadata_to_node() -> bool;
}

/// Status word of a step for a kind whose pending steps read `pending`.
pub(crate) fn word(state: StepState, pending: &'static str) -> &'static str {
    match state {
        StepState::Done => status::TRUE,
        StepState::Failed => status::FALSE,
        StepState::Pending => pending,
    }
}

/// The four conditions in order, with the kind's type names.
pub(crate) fn steps(kind: NodeRequestKind, desired: &Desired) -> [(&'static str, Step); 4] {
    let [launched, registered, initialized] = kind.step_conditions();
    [
        (launched, desired.launched.clone()),
        (registered, desired.registered.clone()),
        (initialized, desired.initialized.clone()),
        (k::READY, desired.ready()),
    ]
}

/// Labels of an object, or an empty map.
pub(crate) trait LabelsOrEmpty {
    fn labels_or_empty(&self) -> &BTreeMap<String, String>;
}

impl<T: kube::Resource> LabelsOrEmpty for T {
    fn labels_or_empty(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.meta().labels.as_ref().unwrap_or(&EMPTY)
    }
}

#[cfg(test)]
mod tests {
    use kaito_api::{Machine, NodeClaim, labels};

    use super::*;

    fn desired(launched: Step) -> Desired {
        Desired {
            provider_id: None,
            node_name: None,
            image_id: None,
            capacity: None,
            allocatable: None,
            launched,
            registered: Step::pending(k::REASON_NODE_NOT_FOUND, ""),
            initialized: Step::pending(k::REASON_NODE_NOT_FOUND, ""),
        }
    }

    #[test]
    fn a_failed_launch_makes_ready_false_with_its_reason() {
        let d = desired(Step::failed(k::REASON_INSUFFICIENT_CAPACITY, "quota"));
        let ready = d.ready();
        assert_eq!(ready.state, StepState::Failed);
        assert_eq!(ready.reason, k::REASON_INSUFFICIENT_CAPACITY);
    }

    #[test]
    fn nodeclaim_conditions_use_v1_names_and_machine_conditions_use_machine_names() {
        let d = desired(Step::failed(k::REASON_INVALID_REQUEST, "bad name"));
        let now = Timestamp::UNIX_EPOCH;
        let claim = NodeClaim::new("ws1", Default::default());
        let body = claim.status_apply(&d, now);
        let types: Vec<_> = body["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            types,
            [
                ("Launched", "False"),
                ("Registered", "Unknown"),
                ("Initialized", "Unknown"),
                ("Ready", "False")
            ]
        );
        let machine = Machine::new("ws1", Default::default());
        let body = machine.status_apply(&desired(Step::pending("Launching", "")), now);
        let launched = &body["status"]["conditions"][0];
        assert_eq!(launched["type"], "MachineLaunched");
        assert_eq!(launched["status"], "Unknown");
        assert_eq!(body["status"]["conditions"][1]["status"], "False");
    }

    #[test]
    fn ownership_follows_kaito_labels_or_the_kaito_node_class() {
        let mut claim = NodeClaim::new("a", Default::default());
        assert!(!claim.is_ours());
        claim.spec.node_class_ref.group = "kaito.sh".into();
        claim.spec.node_class_ref.kind = "KaitoNodeClass".into();
        assert!(claim.is_ours());
        let mut machine = Machine::new("b", Default::default());
        assert!(!machine.is_ours());
        machine.metadata.labels =
            Some([(labels::LABEL_WORKSPACE.to_owned(), "w".to_owned())].into());
        assert!(machine.is_ours());
    }
}
