//! Karpenter's node-request kinds, `Machine` (v1alpha5) and `NodeClaim` (v1), and one view of
// Each printcolumn(...) repeats `type_`; clippy reads that as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]
//! both so the two controllers can handle either.

use std::collections::BTreeMap;

use k8s_openapi::{
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Time},
    jiff::Timestamp,
};
use kube::{CustomResource, KubeSchema, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{conditions, labels, quantity::ByteSize};

/// A taint a node request puts on its node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
    /// When the taint was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_added: Option<Time>,
}

impl Taint {
    /// The taint as AKS writes it: `key=value:Effect`.
    pub fn to_aks_string(&self) -> String {
        format!(
            "{}={}:{}",
            self.key,
            self.value.as_deref().unwrap_or_default(),
            self.effect
        )
    }

    /// The `sku=gpu:NoSchedule` taint of every GPU node request.
    pub fn sku_gpu() -> Self {
        Taint {
            key: labels::TAINT_SKU_KEY.into(),
            value: Some(labels::TAINT_SKU_VALUE.into()),
            effect: "NoSchedule".into(),
            time_added: None,
        }
    }
}

/// A node requirement (a NodeSelectorRequirement, plus Karpenter's `minValues`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// In, NotIn, Exists, DoesNotExist, Gt or Lt.
    pub operator: String,
    /// Values the operator compares with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// Least number of distinct values to consider (NodeClaim only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_values: Option<i32>,
}

impl Requirement {
    /// An `In` requirement with the given values.
    pub fn is_in(key: &str, values: &[&str]) -> Self {
        Requirement {
            key: key.into(),
            operator: "In".into(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
            min_values: None,
        }
    }
}

/// Resources a node request asks for.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequests {
    /// Requested quantities by resource name, for example `storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, Quantity>>,
}

/// A knative-style condition, as Machines carry them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineCondition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// Error, Warning or Info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// One-word reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A condition as NodeClaims carry them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimCondition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// One-word reason (may be empty).
    #[serde(default)]
    pub reason: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: Time,
    /// Generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Reference to the template of a Machine.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineTemplateRef {
    /// API version of the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the template.
    pub name: String,
}

/// A request for one node (Karpenter v0.29 API).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "karpenter.sh",
    version = "v1alpha5",
    kind = "Machine",
    plural = "machines",
    singular = "machine",
    status = "MachineStatus",
    category = "karpenter",
    doc = "A request for one node, fulfilled by a Karpenter-compatible provisioner.",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".metadata.labels.node\\.kubernetes\\.io/instance-type"
    ),
    printcolumn(
        name = "Zone",
        type_ = "string",
        json_path = ".metadata.labels.topology\\.kubernetes\\.io/zone"
    ),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.nodeName"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Capacity",
        type_ = "string",
        json_path = ".metadata.labels.karpenter\\.sh/capacity-type",
        priority = "1"
    ),
    printcolumn(
        name = "Provisioner",
        type_ = "string",
        json_path = ".metadata.labels.karpenter\\.sh/provisioner-name",
        priority = "1"
    ),
    printcolumn(
        name = "Template",
        type_ = "string",
        json_path = ".spec.machineTemplateRef.name",
        priority = "1"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MachineSpec {
    /// Taints the node gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taints: Option<Vec<Taint>>,
    /// Taints another agent removes before the node counts as initialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_taints: Option<Vec<Taint>>,
    /// Requirements the node must meet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<Vec<Requirement>>,
    /// Resources the node must provide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequests>,
    /// Kubelet settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<KubeletConfiguration>,
    /// Provider-specific template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_template_ref: Option<MachineTemplateRef>,
}

/// Kubelet settings of a Machine.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfiguration {
    /// Cluster DNS server addresses.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "clusterDNS"
    )]
    pub cluster_dns: Option<Vec<String>>,
    /// Container runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_runtime: Option<String>,
    /// Whether CPU CFS quota is enforced.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "cpuCFSQuota"
    )]
    pub cpu_cfs_quota: Option<bool>,
    /// Hard eviction thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_hard: Option<BTreeMap<String, String>>,
    /// Soft eviction thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_soft: Option<BTreeMap<String, String>>,
    /// Grace periods of the soft thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_soft_grace_period: Option<BTreeMap<String, String>>,
    /// Longest pod grace period during soft eviction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_max_pod_grace_period: Option<i32>,
    /// Disk use above which image GC always runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub image_gc_high_threshold_percent: Option<i32>,
    /// Disk use below which image GC never runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub image_gc_low_threshold_percent: Option<i32>,
    /// Resources reserved for Kubernetes daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_reserved: Option<BTreeMap<String, String>>,
    /// Resources reserved for the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_reserved: Option<BTreeMap<String, String>>,
    /// Most pods on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_pods: Option<i32>,
    /// Most pods per core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub pods_per_core: Option<i32>,
}

/// Observed state of a Machine.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineStatus {
    /// Name of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Cloud identifier of the instance, copied from the node.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "providerID"
    )]
    pub provider_id: Option<String>,
    /// Capacity of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<BTreeMap<String, Quantity>>,
    /// Allocatable resources of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocatable: Option<BTreeMap<String, Quantity>>,
    /// Launched, Registered, Initialized and Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<MachineCondition>>,
}

/// The node class a NodeClaim refers to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeClassRef {
    /// API group of the node class.
    #[x_kube(validation = Rule::new("self != ''").message("group may not be empty"))]
    #[x_kube(validation = Rule::new("!self.contains('/')").message("group may not contain '/'"))]
    pub group: String,
    /// Kind of the node class.
    #[x_kube(validation = Rule::new("self != ''").message("kind may not be empty"))]
    pub kind: String,
    /// Name of the node class.
    #[x_kube(validation = Rule::new("self != ''").message("name may not be empty"))]
    pub name: String,
}

/// A request for one node (Karpenter v1 API).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "karpenter.sh",
    version = "v1",
    kind = "NodeClaim",
    plural = "nodeclaims",
    singular = "nodeclaim",
    status = "NodeClaimStatus",
    category = "karpenter",
    doc = "A request for one node, fulfilled by a Karpenter-compatible provisioner.",
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".metadata.labels.node\\.kubernetes\\.io/instance-type"
    ),
    printcolumn(
        name = "Capacity",
        type_ = "string",
        json_path = ".metadata.labels.karpenter\\.sh/capacity-type"
    ),
    printcolumn(
        name = "Zone",
        type_ = "string",
        json_path = ".metadata.labels.topology\\.kubernetes\\.io/zone"
    ),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.nodeName"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "ImageID",
        type_ = "string",
        json_path = ".status.imageID",
        priority = "1"
    ),
    printcolumn(
        name = "ID",
        type_ = "string",
        json_path = ".status.providerID",
        priority = "1"
    ),
    printcolumn(
        name = "NodePool",
        type_ = "string",
        json_path = ".metadata.labels.karpenter\\.sh/nodepool",
        priority = "1"
    ),
    printcolumn(
        name = "NodeClass",
        type_ = "string",
        json_path = ".spec.nodeClassRef.name",
        priority = "1"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("spec is immutable"))]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimSpec {
    /// The node class that carries provider settings.
    pub node_class_ref: NodeClassRef,
    /// Requirements the node must meet.
    #[schemars(length(max = 100))]
    pub requirements: Vec<Requirement>,
    /// Resources the node must provide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequests>,
    /// Taints the node gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taints: Option<Vec<Taint>>,
    /// Taints another agent removes before the node counts as initialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_taints: Option<Vec<Taint>>,
    /// Longest time the node may take to drain when deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    pub termination_grace_period: Option<String>,
    /// Lifetime of the node; Never keeps it.
    #[serde(
        default = "default_expire_after",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = r"^(([0-9]+(s|m|h))+|Never)$"))]
    pub expire_after: Option<String>,
}

#[allow(clippy::unnecessary_wraps)]
fn default_expire_after() -> Option<String> {
    Some("720h".into())
}

/// Observed state of a NodeClaim.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimStatus {
    /// Name of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Cloud identifier of the instance, copied from the node.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "providerID"
    )]
    pub provider_id: Option<String>,
    /// Image the node runs.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "imageID")]
    pub image_id: Option<String>,
    /// Capacity of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<BTreeMap<String, Quantity>>,
    /// Allocatable resources of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocatable: Option<BTreeMap<String, Quantity>>,
    /// Launched, Registered, Initialized and Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<NodeClaimCondition>>,
    /// Last time a pod was scheduled to or removed from the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pod_event_time: Option<Time>,
}

/// Which node-request kind a deployment uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NodeRequestKind {
    /// `machines.karpenter.sh` (v1alpha5).
    #[default]
    Machine,
    /// `nodeclaims.karpenter.sh` (v1).
    NodeClaim,
}

impl NodeRequestKind {
    /// The name used in flags and values (`machine`, `nodeclaim`).
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRequestKind::Machine => "machine",
            NodeRequestKind::NodeClaim => "nodeclaim",
        }
    }

    /// Name of the CRD of this kind.
    pub fn crd_name(self) -> &'static str {
        match self {
            NodeRequestKind::Machine => "machines.karpenter.sh",
            NodeRequestKind::NodeClaim => "nodeclaims.karpenter.sh",
        }
    }

    /// Condition types of the launch, registration and initialization steps.
    pub fn step_conditions(self) -> [&'static str; 3] {
        use conditions::karpenter as k;
        match self {
            NodeRequestKind::Machine => [
                k::MACHINE_LAUNCHED,
                k::MACHINE_REGISTERED,
                k::MACHINE_INITIALIZED,
            ],
            NodeRequestKind::NodeClaim => [k::LAUNCHED, k::REGISTERED, k::INITIALIZED],
        }
    }
}

/// A node-request condition, read the same way from either kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepCondition {
    /// Condition type.
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// Reason, empty when absent.
    pub reason: String,
    /// Message, empty when absent.
    pub message: String,
}

/// What both controllers need to know of a Machine or NodeClaim.
pub trait NodeRequest: Resource<DynamicType = ()> + ResourceExt + Clone {
    /// The kind.
    const KIND: NodeRequestKind;

    /// Requirements of the request.
    fn requirements(&self) -> &[Requirement];
    /// Taints of the request.
    fn taints(&self) -> &[Taint];
    /// Startup taints of the request.
    fn startup_taints(&self) -> &[Taint];
    /// Requested resources.
    fn requests(&self) -> Option<&BTreeMap<String, Quantity>>;
    /// Node name from status.
    fn node_name(&self) -> Option<&str>;
    /// Provider ID from status.
    fn provider_id(&self) -> Option<&str>;
    /// Conditions from status, in one shape.
    fn step_conditions(&self) -> Vec<StepCondition>;

    /// The first value of the instance-type requirement.
    fn instance_type(&self) -> Option<&str> {
        self.requirements()
            .iter()
            .find(|r| r.key == labels::LABEL_INSTANCE_TYPE && r.operator == "In")
            .and_then(|r| r.values.as_ref()?.first().map(String::as_str))
    }

    /// The requested storage, if present and parseable.
    fn storage(&self) -> Option<Result<ByteSize, crate::quantity::InvalidSize>> {
        self.requests()?
            .get(labels::RESOURCE_STORAGE)
            .map(ByteSize::from_quantity)
    }

    /// The condition of a type.
    fn condition(&self, type_: &str) -> Option<StepCondition> {
        self.step_conditions()
            .into_iter()
            .find(|c| c.type_ == type_)
    }

    /// Whether `Ready` is True and the request is not being deleted.
    fn is_ready(&self) -> bool {
        self.meta().deletion_timestamp.is_none()
            && self
                .condition(conditions::karpenter::READY)
                .is_some_and(|c| c.status == conditions::status::TRUE)
    }

    /// The first launch, registration or initialization condition that is not True,
    /// skipping ones nobody has reconciled yet.
    fn first_pending_step(&self) -> Option<StepCondition> {
        let conds = self.step_conditions();
        Self::KIND
            .step_conditions()
            .iter()
            .find_map(|t| {
                conds.iter().find(|c| {
                    c.type_ == *t
                        && c.status != conditions::status::TRUE
                        && c.reason != conditions::karpenter::REASON_AWAITING_RECONCILIATION
                })
            })
            .cloned()
    }

    /// Whether the launch failed for good (KAITO's terminal phrase, or a False launch).
    fn launch_failed(&self) -> Option<StepCondition> {
        let launched = self.condition(Self::KIND.step_conditions()[0])?;
        (launched.status == conditions::status::FALSE).then_some(launched)
    }

    /// The Workspace (namespace, name) that owns the request, from its labels.
    fn workspace(&self) -> Option<(String, String)> {
        let labels = self.labels();
        Some((
            labels.get(labels::LABEL_WORKSPACE_NAMESPACE)?.clone(),
            labels.get(labels::LABEL_WORKSPACE)?.clone(),
        ))
    }
}

fn or_empty<T>(v: &Option<Vec<T>>) -> &[T] {
    v.as_deref().unwrap_or_default()
}

impl From<&MachineCondition> for StepCondition {
    fn from(c: &MachineCondition) -> Self {
        StepCondition {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        }
    }
}

impl From<&NodeClaimCondition> for StepCondition {
    fn from(c: &NodeClaimCondition) -> Self {
        StepCondition {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        }
    }
}

/// The accessors whose field paths both kinds share.
macro_rules! shared_accessors {
    () => {
        fn taints(&self) -> &[Taint] {
            or_empty(&self.spec.taints)
        }
        fn startup_taints(&self) -> &[Taint] {
            or_empty(&self.spec.startup_taints)
        }
        fn requests(&self) -> Option<&BTreeMap<String, Quantity>> {
            self.spec.resources.as_ref()?.requests.as_ref()
        }
        fn node_name(&self) -> Option<&str> {
            self.status.as_ref()?.node_name.as_deref()
        }
        fn provider_id(&self) -> Option<&str> {
            let id = self.status.as_ref()?.provider_id.as_deref();
            id.filter(|p| !p.is_empty())
        }
        fn step_conditions(&self) -> Vec<StepCondition> {
            let status = self.status.as_ref();
            let conds = status
                .and_then(|s| s.conditions.as_deref())
                .unwrap_or_default();
            conds.iter().map(StepCondition::from).collect()
        }
    };
}

impl NodeRequest for Machine {
    const KIND: NodeRequestKind = NodeRequestKind::Machine;

    fn requirements(&self) -> &[Requirement] {
        or_empty(&self.spec.requirements)
    }
    shared_accessors!();
}

impl NodeRequest for NodeClaim {
    const KIND: NodeRequestKind = NodeRequestKind::NodeClaim;

    fn requirements(&self) -> &[Requirement] {
        &self.spec.requirements
    }
    shared_accessors!();
}

/// Builds a Machine condition, keeping the transition time when the status is unchanged.
pub fn machine_condition(
    previous: &[MachineCondition],
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> MachineCondition {
    let kept = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone());
    MachineCondition {
        type_: type_.into(),
        status: status.into(),
        severity: (status != conditions::status::TRUE).then(|| "Info".to_owned()),
        last_transition_time: Some(kept.unwrap_or(Time(now))),
        reason: Some(reason.to_owned()).filter(|r| !r.is_empty()),
        message: Some(conditions::trim_message(message)).filter(|m| !m.is_empty()),
    }
}

/// Builds a NodeClaim condition, keeping the transition time when the status is unchanged.
pub fn node_claim_condition(
    previous: &[NodeClaimCondition],
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> NodeClaimCondition {
    let kept = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone());
    NodeClaimCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: conditions::trim_message(message),
        last_transition_time: kept.unwrap_or(Time(now)),
        observed_generation: generation,
    }
}

/// Whether a node request belongs to KAITO: a workspace or RAG engine label, or (for
/// NodeClaims) a reference to the `kaito.sh` `KaitoNodeClass`.
pub fn is_kaito_owned(
    labels: &BTreeMap<String, String>,
    node_class: Option<&NodeClassRef>,
) -> bool {
    labels.contains_key(labels::LABEL_WORKSPACE)
        || labels.contains_key(labels::LABEL_RAGENGINE)
        || node_class
            .is_some_and(|r| r.group == KAITO_NODE_CLASS_GROUP && r.kind == KAITO_NODE_CLASS_KIND)
}

/// Group of the node class KAITO NodeClaims refer to on Azure.
pub const KAITO_NODE_CLASS_GROUP: &str = "kaito.sh";
/// Kind of the node class KAITO NodeClaims refer to on Azure.
pub const KAITO_NODE_CLASS_KIND: &str = "KaitoNodeClass";
/// Name of the node class KAITO NodeClaims refer to.
pub const KAITO_NODE_CLASS_NAME: &str = "default";
