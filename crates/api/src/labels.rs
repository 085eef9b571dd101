//! Label, annotation, finalizer and field-manager names shared by both deployables.

/// Finalizer the workspace controller puts on every Workspace.
pub const WORKSPACE_FINALIZER: &str = "workspace.finalizer.kaito.sh";
/// Finalizer the provisioner puts on node requests and their Nodes.
pub const TERMINATION_FINALIZER: &str = "karpenter.sh/termination";

/// Label naming the Workspace that owns an object.
pub const LABEL_WORKSPACE: &str = "kaito.sh/workspace";
/// Label naming the namespace of the owning Workspace (on cluster-scoped objects).
pub const LABEL_WORKSPACE_NAMESPACE: &str = "kaito.sh/workspacenamespace";
/// Label naming the RAGEngine that owns a node request.
pub const LABEL_RAGENGINE: &str = "kaito.sh/ragengine";
/// Label naming the namespace of the owning RAGEngine.
pub const LABEL_RAGENGINE_NAMESPACE: &str = "kaito.sh/ragenginenamespace";
/// Label and requirement marking GPU machines made for KAITO.
pub const LABEL_MACHINE_TYPE: &str = "kaito.sh/machine-type";
/// Label on agent pools and nodes holding the node request's creation time.
pub const LABEL_CREATION_TIMESTAMP: &str = "kaito.sh/creation-timestamp";
/// Karpenter Machine-era provisioner label.
pub const LABEL_PROVISIONER_NAME: &str = "karpenter.sh/provisioner-name";
/// Karpenter NodeClaim-era node pool label.
pub const LABEL_NODEPOOL: &str = "karpenter.sh/nodepool";
/// Label set on a node once it is registered to a node request.
pub const LABEL_REGISTERED: &str = "karpenter.sh/registered";
/// Label set on a node once it is initialized.
pub const LABEL_INITIALIZED: &str = "karpenter.sh/initialized";
/// Label that keeps Karpenter from syncing taints to a node.
pub const LABEL_DO_NOT_SYNC_TAINTS: &str = "karpenter.sh/do-not-sync-taints";
/// Capacity type label (spot, on-demand, reserved).
pub const LABEL_CAPACITY_TYPE: &str = "karpenter.sh/capacity-type";
/// Well-known instance type label of a node.
pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
/// Deprecated instance type label that AKS still sets.
pub const LABEL_INSTANCE_TYPE_BETA: &str = "beta.kubernetes.io/instance-type";
/// Operating system label of a node.
pub const LABEL_OS: &str = "kubernetes.io/os";
/// CPU architecture label of a node.
pub const LABEL_ARCH: &str = "kubernetes.io/arch";
/// Host name label of a node.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// Azure SKU requirement key used on NodeClaims.
pub const LABEL_AZURE_SKU_NAME: &str = "karpenter.azure.com/sku-name";
/// AWS GPU count requirement key used on NodeClaims.
pub const LABEL_AWS_INSTANCE_GPU_COUNT: &str = "karpenter.k8s.aws/instance-gpu-count";
/// Agent pool label AKS puts on its nodes.
pub const LABEL_AGENTPOOL: &str = "agentpool";
/// Agent pool label AKS puts on its nodes (namespaced form).
pub const LABEL_AKS_AGENTPOOL: &str = "kubernetes.azure.com/agentpool";
/// Label added to selected NVIDIA GPU nodes.
pub const LABEL_ACCELERATOR: &str = "accelerator";
/// Label of pods created by a StatefulSet, naming the pod.
pub const LABEL_STATEFULSET_POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
/// Label on ControllerRevisions naming their Workspace.
pub const LABEL_REVISION_WORKSPACE: &str = "workspace.kaito.io/name";

/// Annotation asking for a LoadBalancer Service (value `True`, any casing).
pub const ANNOTATION_ENABLE_LB: &str = "kaito.sh/enablelb";
/// Annotation holding the revision number of a Workspace's spec.
pub const ANNOTATION_REVISION: &str = "workspace.kaito.io/revision";
/// Annotation holding the sha256 of a Workspace's spec.
pub const ANNOTATION_HASH: &str = "workspace.kaito.io/hash";
/// Annotation choosing the node image family (`ubuntu` or `azurelinux`).
pub const ANNOTATION_NODE_IMAGE_FAMILY: &str = "kaito.sh/node-image-family";
/// Annotation choosing the inference runtime (`transformers` or `vllm`).
pub const ANNOTATION_RUNTIME: &str = "kaito.sh/runtime";
/// Annotation keeping Karpenter from disrupting a node request.
pub const ANNOTATION_DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
/// Annotation linking a Machine to an existing instance.
pub const ANNOTATION_LINKED: &str = "karpenter.sh/linked";
/// Annotation recording the termination deadline of a NodeClaim.
pub const ANNOTATION_TERMINATION_TIMESTAMP: &str = "karpenter.sh/nodeclaim-termination-timestamp";

/// Value of [`LABEL_NODEPOOL`] on KAITO NodeClaims (a pool Karpenter itself never scales).
pub const NODEPOOL_KAITO: &str = "kaito";
/// Value of [`LABEL_PROVISIONER_NAME`] on KAITO Machines.
pub const PROVISIONER_DEFAULT: &str = "default";
/// Value of [`LABEL_MACHINE_TYPE`] for GPU machines.
pub const MACHINE_TYPE_GPU: &str = "gpu";
/// Value of [`LABEL_MACHINE_TYPE`] for CPU machines.
pub const MACHINE_TYPE_CPU: &str = "cpu";

/// Taint key put on every GPU node request.
pub const TAINT_SKU_KEY: &str = "sku";
/// Taint value put on every GPU node request.
pub const TAINT_SKU_VALUE: &str = "gpu";
/// Taint Karpenter puts on nodes before registration.
pub const TAINT_UNREGISTERED: &str = "karpenter.sh/unregistered";
/// Taint Karpenter puts on nodes that are being disrupted.
pub const TAINT_DISRUPTED: &str = "karpenter.sh/disrupted";

/// Extended resource name of NVIDIA GPUs.
pub const RESOURCE_NVIDIA_GPU: &str = "nvidia.com/gpu";
/// Resource name of a node request's disk.
pub const RESOURCE_STORAGE: &str = "storage";

/// Field manager of the workspace controller.
pub const FIELD_MANAGER_WORKSPACE: &str = "kaito-workspace-controller";
/// Field manager of the GPU provisioner.
pub const FIELD_MANAGER_PROVISIONER: &str = "kaito-gpu-provisioner";

/// Label keys a user may not steer through `resource.labelSelector.matchLabels`.
pub const RESERVED_SELECTOR_KEYS: [&str; 4] = [
    LABEL_WORKSPACE,
    LABEL_WORKSPACE_NAMESPACE,
    LABEL_RAGENGINE,
    LABEL_RAGENGINE_NAMESPACE,
];

/// Whether a label value asks for a LoadBalancer (`true` in any casing).
pub fn is_truthy(value: &str) -> bool {
    value.eq_ignore_ascii_case("true")
}
