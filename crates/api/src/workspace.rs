//! The `Workspace` custom resource (`kaito.sh`), whose fields sit beside `metadata`.
// Each printcolumn(...) repeats `type_`; clippy reads that as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::{collections::BTreeMap, fmt};

use k8s_openapi::{
    api::core::v1::PodTemplateSpec,
    apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector},
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;

/// Instance type used when a Workspace names none.
pub const DEFAULT_INSTANCE_TYPE: &str = "Standard_NC24ads_A100_v4";
/// Most adapters one inference Workspace may carry.
pub const MAX_ADAPTERS: usize = 10;
/// Strength of an adapter that does not state one.
pub const DEFAULT_ADAPTER_STRENGTH: &str = "1.0";

/// A model to serve or fine-tune, and the GPU nodes to run it on.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kaito.sh",
    version = "v1beta1",
    kind = "Workspace",
    plural = "workspaces",
    singular = "workspace",
    namespaced,
    no_spec,
    status = "WorkspaceStatus",
    shortname = "wk",
    shortname = "wks",
    category = "workspace",
    derive = "PartialEq",
    derive = "Default",
    doc = "A model to serve or fine-tune on GPU nodes, with the nodes it needs.",
    printcolumn(
        name = "Instance",
        type_ = "string",
        json_path = ".resource.instanceType"
    ),
    printcolumn(
        name = "ResourceReady",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"ResourceReady\")].status"
    ),
    printcolumn(
        name = "InferenceReady",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"InferenceReady\")].status"
    ),
    printcolumn(
        name = "WorkspaceReady",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"WorkspaceReady\")].status"
    ),
    printcolumn(
        name = "JobStarted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"JobStarted\")].status",
        priority = "1"
    ),
    printcolumn(
        name = "WorkspaceSucceeded",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"WorkspaceSucceeded\")].status",
        priority = "1"
    ),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.state",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSpec {
    /// GPU nodes the workload needs: instance type, count and how to select them.
    #[serde(default)]
    pub resource: ResourceSpec,
    /// Serve a model. Exactly one of inference and tuning must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceSpec>,
    /// Fine-tune a model. Exactly one of inference and tuning must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<TuningSpec>,
}

/// The GPU nodes a Workspace runs on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpec {
    /// Number of GPU nodes, and replicas of an inference workload. Defaults to 1.
    #[serde(default = "default_count", skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// GPU virtual machine size, matched against the node label
    /// node.kubernetes.io/instance-type (case-insensitive).
    #[serde(
        default = "default_instance_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub instance_type: Option<String>,
    /// Selects candidate nodes; its labels are also put on nodes provisioned for the Workspace.
    pub label_selector: LabelSelector,
    /// Names of existing nodes to use first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_nodes: Option<Vec<String>>,
}

#[allow(clippy::unnecessary_wraps)]
fn default_count() -> Option<i32> {
    Some(1)
}

#[allow(clippy::unnecessary_wraps)]
fn default_instance_type() -> Option<String> {
    Some(DEFAULT_INSTANCE_TYPE.to_owned())
}

impl ResourceSpec {
    /// Node count, 1 when unset.
    pub fn count(&self) -> i32 {
        self.count.unwrap_or(1)
    }

    /// Instance type, the default when unset.
    pub fn instance_type(&self) -> &str {
        self.instance_type
            .as_deref()
            .unwrap_or(DEFAULT_INSTANCE_TYPE)
    }
}

/// How a Workspace serves a model.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InferenceSpec {
    /// A built-in model preset. Exactly one of preset and template must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<PresetSpec>,
    /// A custom pod to run instead of a preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_object")]
    pub template: Option<PodTemplateSpec>,
    /// Name of a ConfigMap in the Workspace namespace with key inference_config.yaml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// LoRA adapters merged into the model at start-up (at most 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapters: Option<Vec<AdapterSpec>>,
}

/// A model preset and how to get its image.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresetSpec {
    /// Name of a supported preset, for example phi-3-mini-4k-instruct.
    pub name: String,
    /// public (the project's image) or private (an image the user supplies).
    #[serde(
        default = "default_access_mode",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_mode: Option<AccessMode>,
    /// Image, pull secrets and model access secret of the preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset_options: Option<PresetOptions>,
}

#[allow(clippy::unnecessary_wraps)]
fn default_access_mode() -> Option<AccessMode> {
    Some(AccessMode::Public)
}

impl PresetSpec {
    /// Access mode, public when unset.
    pub fn access_mode(&self) -> AccessMode {
        self.access_mode.unwrap_or_default()
    }

    /// The private image, if one is given.
    pub fn image(&self) -> Option<&str> {
        self.preset_options
            .as_ref()?
            .image
            .as_deref()
            .filter(|i| !i.is_empty())
    }

    /// Pull secrets of the preset image.
    pub fn image_pull_secrets(&self) -> &[String] {
        self.preset_options
            .as_ref()
            .and_then(|o| o.image_pull_secrets.as_deref())
            .unwrap_or_default()
    }

    /// Name of the Secret holding HF_TOKEN, if one is given.
    pub fn model_access_secret(&self) -> Option<&str> {
        self.preset_options
            .as_ref()?
            .model_access_secret
            .as_deref()
            .filter(|s| !s.is_empty())
    }
}

/// Where the model image of a preset comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    /// The project's public image.
    #[default]
    Public,
    /// An image the user builds and supplies.
    Private,
}

/// Options of a preset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresetOptions {
    /// Full image reference, required for private presets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Names of Secrets in the Workspace namespace for pulling the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<String>>,
    /// Name of a Secret in the Workspace namespace with key HF_TOKEN for gated weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_access_secret: Option<String>,
}

/// A LoRA adapter of an inference Workspace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdapterSpec {
    /// Where the adapter comes from: a name and an image whose /data holds the adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DataSource>,
    /// Weight of the adapter, a decimal between 0 and 1 written as a string. Defaults to "1.0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<String>,
}

impl AdapterSpec {
    /// Name of the adapter, empty when missing.
    pub fn name(&self) -> &str {
        self.source
            .as_ref()
            .and_then(|s| s.name.as_deref())
            .unwrap_or_default()
    }

    /// Strength, the default when unset.
    pub fn strength(&self) -> &str {
        self.strength.as_deref().unwrap_or(DEFAULT_ADAPTER_STRENGTH)
    }
}

/// How a Workspace fine-tunes a model.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TuningSpec {
    /// The base model to tune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<PresetSpec>,
    /// Tuning method: lora or qlora (any casing, stored lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Name of a ConfigMap in the Workspace namespace with key training_config.yaml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Training data.
    pub input: DataSource,
    /// Where the trained adapter goes.
    pub output: DataDestination,
}

/// Training data or an adapter: URLs, a volume or an image.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataSource {
    /// Identifier; for adapters the init-container name and the strength variable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Public http(s) URLs of data files, downloaded before training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// A volume holding the data (not implemented yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_object")]
    pub volume_source: Option<serde_json::Value>,
    /// Image whose /data directory holds the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Names of Secrets in the Workspace namespace for pulling the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<String>>,
}

/// Where a tuning result goes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataDestination {
    /// A volume for the result (not implemented yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_object")]
    pub volume_source: Option<serde_json::Value>,
    /// Image reference the adapter is pushed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Name of a kubernetes.io/dockerconfigjson Secret used to push the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_push_secret: Option<String>,
}

/// Observed state of a Workspace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// Sorted names of the nodes selected for the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_nodes: Option<Vec<String>>,
    /// Latest observations of the Workspace's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Number of nodes the controller decided the Workspace needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_node_count: Option<i32>,
    /// High-level state: Pending, Ready, NotReady, Running, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<WorkspaceState>,
    /// Results of post-load benchmarks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<BTreeMap<String, serde_json::Value>>,
}

/// High-level state of a Workspace.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum WorkspaceState {
    /// Not started yet (inference never Ready, tuning Job not started).
    Pending,
    /// Inference is serving.
    Ready,
    /// Inference was serving and is not any more.
    NotReady,
    /// The tuning Job is running.
    Running,
    /// The tuning Job succeeded.
    Succeeded,
    /// The tuning Job failed.
    Failed,
}

impl WorkspaceState {
    /// The state as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceState::Pending => "Pending",
            WorkspaceState::Ready => "Ready",
            WorkspaceState::NotReady => "NotReady",
            WorkspaceState::Running => "Running",
            WorkspaceState::Succeeded => "Succeeded",
            WorkspaceState::Failed => "Failed",
        }
    }
}

impl fmt::Display for WorkspaceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tuning methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TuningMethod {
    /// Low-rank adaptation.
    Lora,
    /// Quantised low-rank adaptation.
    Qlora,
}

impl TuningMethod {
    /// Parses a method in any casing.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "lora" => Some(TuningMethod::Lora),
            "qlora" => Some(TuningMethod::Qlora),
            _ => None,
        }
    }

    /// The method as stored (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            TuningMethod::Lora => "lora",
            TuningMethod::Qlora => "qlora",
        }
    }
}

/// Which workload a Workspace describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadMode {
    /// Serving a model.
    Inference,
    /// Fine-tuning a model.
    Tuning,
}

impl Workspace {
    /// Inference or tuning; inference when neither or both are set (validation rejects those).
    pub fn mode(&self) -> WorkloadMode {
        if self.spec.tuning.is_some() && self.spec.inference.is_none() {
            WorkloadMode::Tuning
        } else {
            WorkloadMode::Inference
        }
    }

    /// The preset of the workload, if it uses one.
    pub fn preset(&self) -> Option<&PresetSpec> {
        match self.mode() {
            WorkloadMode::Inference => self.spec.inference.as_ref()?.preset.as_ref(),
            WorkloadMode::Tuning => self.spec.tuning.as_ref()?.preset.as_ref(),
        }
    }

    /// Adapters of an inference Workspace.
    pub fn adapters(&self) -> &[AdapterSpec] {
        self.spec
            .inference
            .as_ref()
            .and_then(|i| i.adapters.as_deref())
            .unwrap_or_default()
    }

    /// `matchLabels` of the selector plus single-value `In` expressions, as one map.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        crate::selector::as_map(&self.spec.resource.label_selector).unwrap_or_default()
    }
}
