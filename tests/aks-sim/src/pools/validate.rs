//! What AKS checks in an agent pool name and body before it accepts a PUT.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::arm::error::ArmError;

/// The ARM path-parameter rule for agent pool names.
pub const NAME_PATTERN: &str = "^[a-z][a-z0-9]{0,11}$";

/// Windows pools have shorter names (their computer-name prefix is limited).
const WINDOWS_NAME_MAX: usize = 6;

/// OS SKUs per OS type.
const LINUX_SKUS: [&str; 6] = [
    "Ubuntu",
    "Ubuntu2204",
    "Ubuntu2404",
    "AzureLinux",
    "AzureLinux3",
    "CBLMariner",
];
const WINDOWS_SKUS: [&str; 4] = ["Windows2019", "Windows2022", "Windows2025", "WindowsAnnual"];
const POOL_TYPES: [&str; 3] = [
    "VirtualMachineScaleSets",
    "AvailabilitySet",
    "VirtualMachines",
];
const MODES: [&str; 2] = ["System", "User"];
const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
/// Label domains AKS keeps for itself.
const RESERVED_LABEL_PREFIXES: [&str; 1] = ["kubernetes.azure.com/"];

/// The operating system of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Os {
    Linux,
    Windows,
}

impl Os {
    pub fn label(self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::Windows => "windows",
        }
    }
}

/// A node taint in AKS form, `key=value:Effect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TaintSpec {
    pub key: String,
    pub value: String,
    pub effect: String,
}

/// The fields of a validated PUT body the simulator acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PoolSpec {
    pub vm_size: String,
    pub count: u32,
    pub os: Os,
    pub os_sku: String,
    pub mode: String,
    /// 0 means the VM default.
    pub os_disk_gb: u32,
    pub max_pods: u32,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<TaintSpec>,
    pub zones: Vec<String>,
    pub spot: bool,
}

/// Whether a name matches `^[a-z][a-z0-9]{0,11}$`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    first_ok && name.len() <= 12 && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Checks a PUT body; answers the spec and the `properties` object as sent.
pub(crate) fn pool_body(
    name: &str,
    body: &Value,
) -> Result<(PoolSpec, Map<String, Value>), ArmError> {
    let properties = match body.get("properties") {
        Some(Value::Object(properties)) => properties.clone(),
        Some(_) => {
            return Err(ArmError::invalid_parameter(
                "properties",
                "properties must be an object.",
            ));
        }
        None => Map::new(),
    };
    let os = os_type(&properties)?;
    if os == Os::Windows && name.len() > WINDOWS_NAME_MAX {
        let message = format!("Windows agent pool name '{name}' may have at most 6 characters.");
        return Err(ArmError::invalid_parameter("agentPoolName", message));
    }
    let spec = PoolSpec {
        vm_size: vm_size(&properties)?,
        count: count(&properties)?,
        os,
        os_sku: os_sku(&properties, os)?,
        mode: one_of(&properties, "mode", &MODES)?.unwrap_or_else(|| "User".to_owned()),
        os_disk_gb: os_disk(&properties)?,
        max_pods: max_pods(&properties)?,
        labels: labels(&properties)?,
        taints: taints(&properties)?,
        zones: zones(&properties)?,
        spot: one_of(&properties, "scaleSetPriority", &["Regular", "Spot"])?.as_deref()
            == Some("Spot"),
    };
    one_of(&properties, "type", &POOL_TYPES)?;
    if spec.mode == "System" && spec.count == 0 {
        return Err(ArmError::invalid_parameter(
            "properties.count",
            "A System pool needs count >= 1.",
        ));
    }
    Ok((spec, properties))
}

fn target(field: &str) -> String {
    format!("properties.{field}")
}

fn invalid(field: &str, message: impl Into<String>) -> ArmError {
    ArmError::invalid_parameter(&target(field), message)
}

fn vm_size(properties: &Map<String, Value>) -> Result<String, ArmError> {
    match properties.get("vmSize") {
        Some(Value::String(size)) if !size.trim().is_empty() => Ok(size.trim().to_owned()),
        _ => Err(invalid(
            "vmSize",
            "The agent pool needs a vmSize, e.g. Standard_NC24ads_A100_v4.",
        )),
    }
}

/// An optional integer field within `range`.
fn integer(
    properties: &Map<String, Value>,
    field: &str,
    valid: impl Fn(i64) -> bool,
    rule: &str,
) -> Result<Option<u32>, ArmError> {
    let Some(value) = properties.get(field) else {
        return Ok(None);
    };
    let number = value
        .as_i64()
        .filter(|n| valid(*n))
        .and_then(|n| u32::try_from(n).ok());
    match number {
        Some(number) => Ok(Some(number)),
        None => Err(invalid(
            field,
            format!("{field} is {value}; it must be {rule}."),
        )),
    }
}

fn count(properties: &Map<String, Value>) -> Result<u32, ArmError> {
    let count = integer(
        properties,
        "count",
        |n| (0..=1000).contains(&n),
        "between 0 and 1000",
    )?;
    Ok(count.unwrap_or(1))
}

fn os_disk(properties: &Map<String, Value>) -> Result<u32, ArmError> {
    let valid = |n: i64| n == 0 || (30..=2048).contains(&n);
    let size = integer(
        properties,
        "osDiskSizeGB",
        valid,
        "0 (the VM default) or 30 to 2048",
    )?;
    Ok(size.unwrap_or(0))
}

fn max_pods(properties: &Map<String, Value>) -> Result<u32, ArmError> {
    let pods = integer(
        properties,
        "maxPods",
        |n| (10..=250).contains(&n),
        "between 10 and 250",
    )?;
    Ok(pods.unwrap_or(250))
}

/// An optional enum field, compared without case; answers the canonical spelling.
fn one_of(
    properties: &Map<String, Value>,
    field: &str,
    allowed: &[&str],
) -> Result<Option<String>, ArmError> {
    let Some(value) = properties.get(field) else {
        return Ok(None);
    };
    let found = value.as_str().and_then(|text| {
        allowed
            .iter()
            .find(|candidate| candidate.eq_ignore_ascii_case(text))
    });
    match found {
        Some(canonical) => Ok(Some((*canonical).to_owned())),
        None => {
            let message = format!(
                "{field} is {value}; allowed values: {}.",
                allowed.join(", ")
            );
            Err(invalid(field, message))
        }
    }
}

fn os_type(properties: &Map<String, Value>) -> Result<Os, ArmError> {
    let os = one_of(properties, "osType", &["Linux", "Windows"])?;
    Ok(if os.as_deref() == Some("Windows") {
        Os::Windows
    } else {
        Os::Linux
    })
}

fn os_sku(properties: &Map<String, Value>, os: Os) -> Result<String, ArmError> {
    let allowed: &[&str] = match os {
        Os::Linux => &LINUX_SKUS,
        Os::Windows => &WINDOWS_SKUS,
    };
    let default = allowed.first().copied().unwrap_or("Ubuntu");
    Ok(one_of(properties, "osSKU", allowed)?.unwrap_or_else(|| default.to_owned()))
}

fn labels(properties: &Map<String, Value>) -> Result<BTreeMap<String, String>, ArmError> {
    let Some(value) = properties.get("nodeLabels") else {
        return Ok(BTreeMap::new());
    };
    let Some(object) = value.as_object() else {
        return Err(invalid(
            "nodeLabels",
            "nodeLabels must be an object of strings.",
        ));
    };
    let mut labels = BTreeMap::new();
    for (key, value) in object {
        let Some(value) = value.as_str() else {
            return Err(invalid(
                "nodeLabels",
                format!("The value of label {key} must be a string."),
            ));
        };
        check_label(key, value)?;
        labels.insert(key.clone(), value.to_owned());
    }
    Ok(labels)
}

fn check_label(key: &str, value: &str) -> Result<(), ArmError> {
    if let Some(prefix) = RESERVED_LABEL_PREFIXES
        .iter()
        .find(|p| key.starts_with(**p))
    {
        let message = format!("Label {key} uses the domain {prefix}, which AKS reserves.");
        return Err(invalid("nodeLabels", message));
    }
    let (prefix, name) = key
        .rsplit_once('/')
        .map_or((None, key), |(p, n)| (Some(p), n));
    let prefix_ok = prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && is_dns_subdomain(p));
    if !prefix_ok || !is_label_name(name) {
        return Err(invalid(
            "nodeLabels",
            format!("{key} is not a valid Kubernetes label key."),
        ));
    }
    if !value.is_empty() && !is_label_name(value) {
        let message = format!("{value:?} (label {key}) is not a valid Kubernetes label value.");
        return Err(invalid("nodeLabels", message));
    }
    Ok(())
}

/// 1 to 63 alphanumerics, `-`, `_` or `.`, starting and ending alphanumeric.
fn is_label_name(text: &str) -> bool {
    let edges_ok = text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric());
    let chars_ok = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    edges_ok && chars_ok && text.len() <= 63
}

fn is_dns_subdomain(text: &str) -> bool {
    text.split('.').all(|part| {
        let chars_ok = part
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        !part.is_empty() && chars_ok && !part.starts_with('-') && !part.ends_with('-')
    })
}

fn taints(properties: &Map<String, Value>) -> Result<Vec<TaintSpec>, ArmError> {
    let Some(value) = properties.get("nodeTaints") else {
        return Ok(Vec::new());
    };
    let Some(items) = value.as_array() else {
        return Err(invalid(
            "nodeTaints",
            "nodeTaints must be an array of key=value:Effect.",
        ));
    };
    items
        .iter()
        .map(|item| {
            item.as_str()
                .and_then(parse_taint)
                .ok_or_else(|| bad_taint(item))
        })
        .collect()
}

fn bad_taint(item: &Value) -> ArmError {
    let message = format!(
        "Taint {item} is invalid: use key=value:Effect with Effect one of {}.",
        EFFECTS.join(", ")
    );
    invalid("nodeTaints", message)
}

/// Parses `key=value:Effect` or `key:Effect`.
pub(crate) fn parse_taint(text: &str) -> Option<TaintSpec> {
    let (pair, effect) = text.rsplit_once(':')?;
    let effect = EFFECTS.iter().find(|e| e.eq_ignore_ascii_case(effect))?;
    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
    let (prefix, name) = key
        .rsplit_once('/')
        .map_or((None, key), |(p, n)| (Some(p), n));
    let key_ok = is_label_name(name) && prefix.is_none_or(is_dns_subdomain);
    let value_ok = value.is_empty() || is_label_name(value);
    (key_ok && value_ok).then(|| TaintSpec {
        key: key.to_owned(),
        value: value.to_owned(),
        effect: (*effect).to_owned(),
    })
}

fn zones(properties: &Map<String, Value>) -> Result<Vec<String>, ArmError> {
    let Some(value) = properties.get("availabilityZones") else {
        return Ok(Vec::new());
    };
    let zones: Option<Vec<String>> = value.as_array().and_then(|items| {
        items
            .iter()
            .map(|zone| {
                zone.as_str()
                    .filter(|z| ["1", "2", "3"].contains(z))
                    .map(str::to_owned)
            })
            .collect()
    });
    zones.ok_or_else(|| {
        invalid(
            "availabilityZones",
            "availabilityZones must list \"1\", \"2\" or \"3\".",
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(properties: Value) -> Value {
        json!({ "properties": properties })
    }

    fn error_target(result: Result<(PoolSpec, Map<String, Value>), ArmError>) -> String {
        result.unwrap_err().body.target.unwrap_or_default()
    }

    #[test]
    fn names_follow_the_arm_path_rule() {
        for good in ["a", "ws1a2b3c4d5", "abcdefghijkl", "gpu0"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "ws-a1b2c3",
            "wsa1b2c3d4e5f6",
            "Wsabc",
            "1abc",
            "abcdefghijklm",
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_contract_example_body_is_accepted_with_its_values() {
        let (spec, _) = pool_body(
            "ws1a2b3c4d5",
            &body(json!({
                "type": "VirtualMachineScaleSets", "count": 1, "vmSize": "Standard_NC24ads_A100_v4",
                "osType": "Linux", "osSKU": "Ubuntu", "osDiskSizeGB": 300,
                "nodeLabels": {"kaito.sh/workspace": "ws-big", "apps": "big"},
                "nodeTaints": ["sku=gpu:NoSchedule"],
            })),
        )
        .unwrap();
        assert_eq!(spec.os_disk_gb, 300);
        assert_eq!(spec.mode, "User");
        assert_eq!(spec.labels["apps"], "big");
        assert_eq!(
            spec.taints[0],
            TaintSpec {
                key: "sku".into(),
                value: "gpu".into(),
                effect: "NoSchedule".into()
            }
        );
    }

    #[test]
    fn a_body_without_vm_size_is_refused() {
        assert_eq!(
            error_target(pool_body("a", &body(json!({"count": 1})))),
            "properties.vmSize"
        );
    }

    #[test]
    fn disk_sizes_must_be_zero_or_between_30_and_2048() {
        for ok in [0, 30, 300, 2048] {
            let result = pool_body("a", &body(json!({"vmSize": "x", "osDiskSizeGB": ok})));
            assert!(result.is_ok(), "{ok}");
        }
        for bad in [json!(29), json!(2049), json!(-1), json!("300")] {
            let result = pool_body("a", &body(json!({"vmSize": "x", "osDiskSizeGB": bad})));
            assert_eq!(error_target(result), "properties.osDiskSizeGB");
        }
    }

    #[test]
    fn counts_os_types_and_skus_are_checked() {
        let bad_count = pool_body("a", &body(json!({"vmSize": "x", "count": -1})));
        assert_eq!(error_target(bad_count), "properties.count");
        let bad_os = pool_body("a", &body(json!({"vmSize": "x", "osType": "Plan9"})));
        assert_eq!(error_target(bad_os), "properties.osType");
        let windows_sku = pool_body("a", &body(json!({"vmSize": "x", "osSKU": "Windows2022"})));
        assert_eq!(error_target(windows_sku), "properties.osSKU");
        let (spec, _) =
            pool_body("a", &body(json!({"vmSize": "x", "osSKU": "azurelinux"}))).unwrap();
        assert_eq!(spec.os_sku, "AzureLinux");
    }

    #[test]
    fn reserved_or_malformed_labels_and_taints_are_refused() {
        let reserved = json!({"vmSize": "x", "nodeLabels": {"kubernetes.azure.com/mode": "user"}});
        assert_eq!(
            error_target(pool_body("a", &body(reserved))),
            "properties.nodeLabels"
        );
        let bad_value = json!({"vmSize": "x", "nodeLabels": {"a": "has space"}});
        assert_eq!(
            error_target(pool_body("a", &body(bad_value))),
            "properties.nodeLabels"
        );
        let bad_taint = json!({"vmSize": "x", "nodeTaints": ["sku=gpu"]});
        assert_eq!(
            error_target(pool_body("a", &body(bad_taint))),
            "properties.nodeTaints"
        );
    }

    #[test]
    fn a_taint_without_value_is_accepted() {
        let taint = parse_taint("dedicated:NoExecute").unwrap();
        assert_eq!(
            (taint.key.as_str(), taint.value.as_str()),
            ("dedicated", "")
        );
    }
}
