//! The few ARM agentPools shapes the provisioner reads and writes, typed by hand.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An agent pool as ARM returns it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentPool {
    /// Resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Pool name.
    #[serde(default)]
    pub name: String,
    /// Pool properties.
    #[serde(default)]
    pub properties: AgentPoolProperties,
}

/// Properties of an agent pool: what the PUT sends and what AKS reports back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentPoolProperties {
    /// `VirtualMachineScaleSets`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Number of nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// VM size (SKU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_size: Option<String>,
    /// `Linux`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    /// `Ubuntu` or `AzureLinux`.
    #[serde(default, rename = "osSKU", skip_serializing_if = "Option::is_none")]
    pub os_sku: Option<String>,
    /// OS disk size in GB (AKS means GiB); absent for the VM default.
    #[serde(
        default,
        rename = "osDiskSizeGB",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_disk_size_gb: Option<i32>,
    /// `User`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Labels every node of the pool gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_labels: Option<BTreeMap<String, String>>,
    /// Taints every node of the pool gets, as `key=value:Effect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_taints: Option<Vec<String>>,
    /// Azure tags of the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Read-only: Creating, Succeeded, Deleting, Failed…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// Read-only: Running or Stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<PowerState>,
    /// Read-only: node image version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_image_version: Option<String>,
    /// Read-only: entity tag for conditional requests.
    #[serde(default, rename = "eTag", skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
}

/// Power state of a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerState {
    /// Running or Stopped.
    #[serde(default)]
    pub code: String,
}

/// The body the PUT sends: only the properties.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentPoolBody {
    /// Properties of the new pool.
    pub properties: AgentPoolProperties,
}

/// A page of the agentPools list.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentPoolList {
    /// Pools on this page.
    #[serde(default)]
    pub value: Vec<AgentPool>,
    /// URL of the next page.
    #[serde(default)]
    pub next_link: Option<String>,
}

/// The body of an `Azure-AsyncOperation` status URL.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct OperationStatus {
    /// InProgress, Succeeded, Failed, Canceled or any other non-terminal word.
    #[serde(default)]
    pub status: String,
    /// Why the operation failed.
    #[serde(default)]
    pub error: Option<CloudErrorBody>,
}

/// An ARM error response: `{"error": {...}}`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CloudError {
    /// The error.
    #[serde(default)]
    pub error: Option<CloudErrorBody>,
}

/// Code, message and nested details of an ARM error.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct CloudErrorBody {
    /// Machine-readable code, e.g. `QuotaExceeded`.
    #[serde(default)]
    pub code: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Nested errors.
    #[serde(default)]
    pub details: Vec<CloudErrorBody>,
}

/// Provisioning states after which nothing more happens to a pool on its own.
pub const TERMINAL_STATES: [&str; 3] = ["Succeeded", "Failed", "Canceled"];

impl AgentPool {
    /// The provisioning state, empty when absent.
    pub fn state(&self) -> &str {
        self.properties
            .provisioning_state
            .as_deref()
            .unwrap_or_default()
    }

    /// Whether an operation is still running on the pool.
    pub fn is_busy(&self) -> bool {
        !TERMINAL_STATES
            .iter()
            .any(|s| s.eq_ignore_ascii_case(self.state()))
    }

    /// Whether the pool is being deleted.
    pub fn is_deleting(&self) -> bool {
        self.state().eq_ignore_ascii_case("Deleting")
    }

    /// Whether the pool was created.
    pub fn succeeded(&self) -> bool {
        self.state().eq_ignore_ascii_case("Succeeded")
    }

    /// Whether the last operation on the pool failed.
    pub fn failed(&self) -> bool {
        ["Failed", "Canceled"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(self.state()))
    }

    /// Whether the pool is stopped.
    pub fn is_stopped(&self) -> bool {
        self.properties
            .power_state
            .as_ref()
            .is_some_and(|p| p.code.eq_ignore_ascii_case("Stopped"))
    }

    /// A node label of the pool.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.properties
            .node_labels
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }
}

/// Whether an operation status is terminal.
pub fn operation_done(status: &str) -> bool {
    TERMINAL_STATES
        .iter()
        .any(|s| s.eq_ignore_ascii_case(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_response_reads_state_power_and_etag() {
        let pool: AgentPool = serde_json::from_value(serde_json::json!({
            "id": "/subscriptions/s/.../agentPools/ws1",
            "name": "ws1",
            "properties": {
                "provisioningState": "Creating",
                "powerState": {"code": "Running"},
                "eTag": "abc",
                "osDiskSizeGB": 300,
                "osSKU": "Ubuntu",
                "nodeLabels": {"kaito.sh/workspace": "w"}
            }
        }))
        .unwrap();
        assert!(pool.is_busy());
        assert!(!pool.is_stopped());
        assert_eq!(pool.properties.e_tag.as_deref(), Some("abc"));
        assert_eq!(pool.properties.os_disk_size_gb, Some(300));
        assert_eq!(pool.label("kaito.sh/workspace"), Some("w"));
    }

    #[test]
    fn a_body_serialises_with_arm_field_names() {
        let body = AgentPoolBody {
            properties: AgentPoolProperties {
                os_disk_size_gb: Some(233),
                os_sku: Some("AzureLinux".into()),
                type_: Some("VirtualMachineScaleSets".into()),
                ..AgentPoolProperties::default()
            },
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["properties"]["osDiskSizeGB"], 233);
        assert_eq!(json["properties"]["osSKU"], "AzureLinux");
        assert_eq!(json["properties"]["type"], "VirtualMachineScaleSets");
        assert!(json["properties"].get("provisioningState").is_none());
    }
}
