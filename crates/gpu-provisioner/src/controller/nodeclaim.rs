//! The NodeClaim (karpenter.sh/v1) kind: conditions with observedGeneration, pending steps
//! Unknown, request labels, annotations and taints merged onto the node.

use k8s_openapi::jiff::Timestamp;
use kaito_api::{
    NodeClaim, NodeRequest,
    conditions::status,
    karpenter::{self, is_kaito_owned},
    labels,
};
use serde_json::{Value, json};

use crate::request::{Desired, LabelsOrEmpty, Request, steps, word};

impl Request for NodeClaim {
    const CONTROLLER: &'static str = "nodeclaim";
    const PENDING: &'static str = status::UNKNOWN;

    fn is_ours(&self) -> bool {
        is_kaito_owned(self.labels_or_empty(), Some(&self.spec.node_class_ref))
    }

    fn default_label() -> (&'static str, &'static str) {
        (labels::LABEL_NODEPOOL, labels::NODEPOOL_KAITO)
    }

    fn status_apply(&self, desired: &Desired, now: Timestamp) -> Value {
        let previous = self
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let generation = self.metadata.generation;
        let conditions: Vec<_> = steps(Self::KIND, desired)
            .into_iter()
            .map(|(type_, step)| {
                let word = word(step.state, Self::PENDING);
                karpenter::node_claim_condition(
                    &previous,
                    type_,
                    word,
                    &step.reason,
                    &step.message,
                    generation,
                    now,
                )
            })
            .collect();
        json!({
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodeClaim",
            "status": {
                "providerID": desired.provider_id,
                "nodeName": desired.node_name,
                "imageID": desired.image_id,
                "capacity": desired.capacity,
                "allocatable": desired.allocatable,
                "conditions": conditions,
            }
        })
    }

    fn copies_metadata_to_node() -> bool {
        true
    }
}
