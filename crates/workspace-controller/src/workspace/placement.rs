//! Where workload pods go: node affinity from the Workspace selector, GPU tolerations, and
//! how many GPUs a pod asks for. Inference and tuning pods share these, so the same
//! `resource` places both the same way.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
        Toleration,
    },
    apimachinery::pkg::api::resource::Quantity,
};
use kaito_api::{Cloud, Workspace, labels};

use crate::error::Error;

/// Required node affinity: one `In` expression per selector label (matchLabels and
/// single-value `In` expressions alike).
pub fn node_affinity(ws: &Workspace) -> Affinity {
    let exprs = ws
        .selector_labels()
        .into_iter()
        .map(|(key, value)| NodeSelectorRequirement {
            key,
            operator: "In".into(),
            values: Some(vec![value]),
        })
        .collect();
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(exprs),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Tolerations of GPU pods: the NVIDIA device taint and the `sku=gpu` taint of node requests.
pub fn gpu_tolerations() -> Vec<Toleration> {
    vec![
        Toleration {
            key: Some(labels::RESOURCE_NVIDIA_GPU.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        },
        Toleration {
            key: Some(labels::TAINT_SKU_KEY.into()),
            operator: Some("Equal".into()),
            value: Some(labels::TAINT_SKU_VALUE.into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        },
    ]
}

/// The `nvidia.com/gpu` allocatable of a node, zero when absent or unparsable.
pub fn node_gpus(node: &Node) -> u32 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get(labels::RESOURCE_NVIDIA_GPU))
        .and_then(|q| q.0.trim().parse::<u32>().ok())
        .unwrap_or(0)
}

/// GPUs each pod requests: the SKU's count from the catalog, else the GPUs the selected
/// nodes report (the smallest of them). Refuses to guess when neither is known.
pub fn gpus_per_pod(ws: &Workspace, cloud: Cloud, nodes: &[&Node]) -> Result<u32, Error> {
    let sku = ws.spec.resource.instance_type();
    if let Some(found) = cloud.sku(sku).filter(|s| s.is_nvidia()) {
        return Ok(found.gpu_count());
    }
    nodes
        .iter()
        .map(|n| node_gpus(n))
        .filter(|g| *g > 0)
        .min()
        .ok_or_else(|| {
            Error::UnknownGpuCount(format!(
                "instance type {sku} is not in the {cloud} catalog and the selected nodes report \
                 no nvidia.com/gpu allocatable, so the GPU request cannot be sized"
            ))
        })
}

/// A resource map requesting `gpus` NVIDIA GPUs.
pub fn gpu_resources(gpus: u32) -> BTreeMap<String, Quantity> {
    BTreeMap::from([(
        labels::RESOURCE_NVIDIA_GPU.to_owned(),
        Quantity(gpus.to_string()),
    )])
}

/// Labels every workload object and pod of a Workspace carries.
pub fn workspace_labels(ws: &Workspace) -> BTreeMap<String, String> {
    BTreeMap::from([(
        labels::LABEL_WORKSPACE.to_owned(),
        ws.metadata.name.clone().unwrap_or_default(),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(yaml: &str) -> Workspace {
        yaml_serde::from_str(yaml).expect("workspace")
    }

    #[test]
    fn affinity_honours_match_labels_and_single_value_in_expressions() {
        let w = ws(
            "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: w}\n\
                    resource:\n  labelSelector:\n    matchLabels: {apps: tune-gpu}\n    \
                    matchExpressions:\n    - {key: tier, operator: In, values: [a100]}\n",
        );
        let aff = node_affinity(&w);
        let terms = aff
            .node_affinity
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .map(|s| s.node_selector_terms)
            .unwrap_or_default();
        let exprs = terms[0].match_expressions.clone().unwrap_or_default();
        let pairs: Vec<(String, Vec<String>)> = exprs
            .into_iter()
            .map(|e| (e.key, e.values.unwrap_or_default()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("apps".into(), vec!["tune-gpu".into()]),
                ("tier".into(), vec!["a100".into()])
            ]
        );
    }

    #[test]
    fn tolerations_cover_the_gpu_and_sku_taints() {
        let t = gpu_tolerations();
        assert_eq!(t[0].key.as_deref(), Some("nvidia.com/gpu"));
        assert_eq!(t[0].operator.as_deref(), Some("Exists"));
        assert_eq!(
            (t[1].key.as_deref(), t[1].value.as_deref()),
            (Some("sku"), Some("gpu"))
        );
    }
}
