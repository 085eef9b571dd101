//! The launch intent recorded on a node request before any create is sent, so a restarted
//! provisioner resumes an accepted create instead of repeating it.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

/// Annotation holding the intent as JSON.
pub const ANNOTATION_LAUNCH: &str = "gpu-provisioner.kaito.sh/launch";

/// What the provisioner has asked of the cloud for one node request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    /// Pool the request maps to.
    #[serde(default)]
    pub pool: String,
    /// When the first create was about to be sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// Operation URL ARM returned for the create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// When the last create failed for good (quota, SKU, bad input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Timestamp>,
}

impl Intent {
    /// The intent recorded on an object, if any (an unreadable one counts as none).
    pub fn of<R: ResourceExt>(object: &R) -> Option<Intent> {
        let text = object.annotations().get(ANNOTATION_LAUNCH)?;
        serde_json::from_str(text).ok()
    }

    /// The annotation value.
    pub fn to_value(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intent_round_trips_through_its_annotation() {
        let intent = Intent {
            pool: "ws1".into(),
            started_at: Some(Timestamp::UNIX_EPOCH),
            operation: Some("https://arm/operations/1".into()),
            failed_at: None,
        };
        let mut claim = kaito_api::NodeClaim::new("ws1", Default::default());
        claim
            .annotations_mut()
            .insert(ANNOTATION_LAUNCH.into(), intent.to_value());
        assert_eq!(Intent::of(&claim), Some(intent));
    }
}
