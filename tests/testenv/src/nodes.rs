//! Simulated nodes: Node objects that kwok keeps Ready, with GPU capacity for the scheduler.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    api::core::v1::{Node, NodeSpec, NodeStatus, Taint},
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    runtime::wait::{Condition, await_condition},
};
use serde_json::json;

use crate::{Error, components::KWOK_NODE_ANNOTATION};

/// The extended resource name of NVIDIA GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// A node for kwok to simulate, built up before it is added to a cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct SimNode {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    taints: Vec<Taint>,
    provider_id: String,
    capacity: BTreeMap<String, Quantity>,
}

impl SimNode {
    /// A CPU-only node of the given instance type (8 CPUs, 32Gi of memory, 110 pods).
    pub fn new(name: &str, instance_type: &str) -> Self {
        let labels = [
            ("node.kubernetes.io/instance-type", instance_type),
            ("beta.kubernetes.io/instance-type", instance_type),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            ("kubernetes.io/hostname", name),
        ];
        let capacity = [
            ("cpu", "8"),
            ("memory", "32Gi"),
            ("pods", "110"),
            ("ephemeral-storage", "100Gi"),
        ];
        let (annotation, managed) = KWOK_NODE_ANNOTATION;
        Self {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            annotations: BTreeMap::from([(annotation.to_owned(), managed.to_owned())]),
            taints: Vec::new(),
            provider_id: format!("kwok://{name}"),
            capacity: capacity
                .iter()
                .map(|(resource, amount)| ((*resource).to_owned(), Quantity((*amount).to_owned())))
                .collect(),
        }
    }

    /// A GPU node of the given instance type with `gpu_count` allocatable `nvidia.com/gpu`.
    pub fn gpu(name: &str, instance_type: &str, gpu_count: u32) -> Self {
        Self::new(name, instance_type).resource(GPU_RESOURCE, &gpu_count.to_string())
    }

    /// Adds or replaces a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds or replaces several labels.
    pub fn labels<'a>(mut self, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        for (key, value) in labels {
            self.labels.insert(key.to_owned(), value.to_owned());
        }
        self
    }

    /// Adds or replaces an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds a taint, e.g. `.taint("sku", "gpu", "NoSchedule")`.
    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.taints.push(Taint {
            key: key.to_owned(),
            value: Some(value.to_owned()),
            effect: effect.to_owned(),
            time_added: None,
        });
        self
    }

    /// Sets `spec.providerID` (by default `kwok://<name>`).
    pub fn provider_id(mut self, provider_id: &str) -> Self {
        self.provider_id = provider_id.to_owned();
        self
    }

    /// Sets the capacity (and allocatable) of one resource, e.g. `.resource("cpu", "24")`.
    pub fn resource(mut self, resource: &str, amount: &str) -> Self {
        self.capacity
            .insert(resource.to_owned(), Quantity(amount.to_owned()));
        self
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Node object, with its capacity and allocatable in the status.
    pub fn to_node(&self) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(self.labels.clone()),
                annotations: Some(self.annotations.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                provider_id: Some(self.provider_id.clone()),
                taints: (!self.taints.is_empty()).then(|| self.taints.clone()),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                capacity: Some(self.capacity.clone()),
                allocatable: Some(self.capacity.clone()),
                ..NodeStatus::default()
            }),
        }
    }
}

/// Creates the node, as a kubelet registers itself; kwok then makes and keeps it Ready.
pub async fn add_node(client: &Client, node: &SimNode) -> Result<Node, Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let wanted = node.to_node();
    let created = nodes.create(&PostParams::default(), &wanted).await?;
    let capacity = |node: &Node| {
        node.status
            .as_ref()
            .and_then(|status| status.capacity.clone())
    };
    if capacity(&created) == capacity(&wanted) {
        return Ok(created);
    }
    // Only reached if the apiserver dropped the status on create: set it the way a kubelet
    // updates it, through the status subresource.
    let status = json!({ "status": {
        "capacity": node.capacity,
        "allocatable": node.capacity,
    }});
    let params = PatchParams::default();
    Ok(nodes
        .patch_status(node.name(), &params, &Patch::Merge(&status))
        .await?)
}

/// Waits until the named node reports `Ready=True`.
pub async fn wait_node_ready(
    client: &Client,
    name: &str,
    timeout: Duration,
) -> Result<Node, Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let ready = await_condition(nodes, name, is_node_ready());
    match tokio::time::timeout(timeout, ready).await {
        Ok(Ok(Some(node))) => Ok(node),
        Ok(Ok(None)) => Err(Error::Timeout(format!("node {name} (it was deleted)"))),
        Ok(Err(error)) => Err(Error::Wait(error.to_string())),
        Err(_) => Err(Error::Timeout(format!("node {name} to become Ready"))),
    }
}

/// Whether a node reports `Ready=True`.
pub fn is_node_ready() -> impl Condition<Node> {
    |node: Option<&Node>| {
        let conditions = node.and_then(|node| node.status.as_ref()?.conditions.as_ref());
        conditions.is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_node_carries_its_gpus_in_capacity_and_allocatable() {
        let node = SimNode::gpu("gpu-0", "Standard_NC24ads_A100_v4", 1).to_node();
        let status = node.status.unwrap();
        let gpus = Some(&Quantity("1".to_owned()));
        assert_eq!(status.capacity.as_ref().unwrap().get(GPU_RESOURCE), gpus);
        assert_eq!(status.allocatable.as_ref().unwrap().get(GPU_RESOURCE), gpus);
        assert!(status.capacity.unwrap().contains_key("ephemeral-storage"));
    }

    #[test]
    fn a_node_is_labelled_like_a_cloud_node_and_marked_for_kwok() {
        let node = SimNode::gpu("gpu-0", "Standard_NC6s_v3", 1)
            .label("apps", "inference")
            .taint("sku", "gpu", "NoSchedule")
            .provider_id("azure:///subscriptions/s/vm-0")
            .to_node();
        let labels = node.metadata.labels.unwrap();
        assert_eq!(
            labels["node.kubernetes.io/instance-type"],
            "Standard_NC6s_v3"
        );
        assert_eq!(
            labels["beta.kubernetes.io/instance-type"],
            "Standard_NC6s_v3"
        );
        assert_eq!(labels["kubernetes.io/hostname"], "gpu-0");
        assert_eq!(labels["apps"], "inference");
        assert_eq!(
            node.metadata.annotations.unwrap()["kwok.x-k8s.io/node"],
            "fake"
        );
        let spec = node.spec.unwrap();
        assert_eq!(
            spec.provider_id.as_deref(),
            Some("azure:///subscriptions/s/vm-0")
        );
        assert_eq!(spec.taints.unwrap()[0].effect, "NoSchedule");
    }

    #[test]
    fn a_cpu_node_has_no_gpus() {
        let node = SimNode::new("cpu-0", "Standard_D4s_v3").to_node();
        assert!(
            !node
                .status
                .unwrap()
                .capacity
                .unwrap()
                .contains_key(GPU_RESOURCE)
        );
    }
}
