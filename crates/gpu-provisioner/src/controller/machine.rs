//! The Machine (karpenter.sh/v1alpha5) kind: knative conditions, pending steps False, no
//! request metadata copied to the node (the pool's node labels carry it).

use k8s_openapi::jiff::Timestamp;
use kaito_api::{
    Machine, NodeRequest,
    conditions::{karpenter as k, status},
    karpenter::{self, is_kaito_owned},
    labels,
};
use serde_json::{Value, json};

use crate::request::{Desired, LabelsOrEmpty, Request, steps, word};

impl Request for Machine {
    const CONTROLLER: &'static str = "machine";
    const PENDING: &'static str = status::FALSE;

    fn is_ours(&self) -> bool {
        is_kaito_owned(self.labels_or_empty(), None)
    }

    fn default_label() -> (&'static str, &'static str) {
        (labels::LABEL_PROVISIONER_NAME, labels::PROVISIONER_DEFAULT)
    }

    fn status_apply(&self, desired: &Desired, now: Timestamp) -> Value {
        let previous = self
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let conditions: Vec<_> = steps(Self::KIND, desired)
            .into_iter()
            .map(|(type_, step)| {
                // A launch still under way is Unknown, never a failure.
                let pending = if type_ == k::MACHINE_LAUNCHED || type_ == k::READY {
                    status::UNKNOWN
                } else {
                    Self::PENDING
                };
                let word = word(step.state, pending);
                karpenter::machine_condition(
                    &previous,
                    type_,
                    word,
                    &step.reason,
                    &step.message,
                    now,
                )
            })
            .collect();
        json!({
            "apiVersion": "karpenter.sh/v1alpha5",
            "kind": "Machine",
            "status": {
                "providerID": desired.provider_id,
                "nodeName": desired.node_name,
                "capacity": desired.capacity,
                "allocatable": desired.allocatable,
                "conditions": conditions,
            }
        })
    }

    fn copies_metadata_to_node() -> bool {
        false
    }
}
