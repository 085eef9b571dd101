//! Launch: from a node request to the agent pool create body (pure), and what to do next
//! given what the cloud reports (pure).

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::jiff::{Timestamp, tz::TimeZone};
use kaito_api::{
    Cloud, NodeRequestKind,
    conditions::karpenter as k,
    labels::{self, ANNOTATION_NODE_IMAGE_FAMILY},
};

use crate::{
    arm::{AgentPool, AgentPoolBody, AgentPoolProperties, ArmError},
    intent::Intent,
    request::{Request, Step},
};

/// The pattern ARM requires of agent pool names.
pub const POOL_NAME_PATTERN: &str = "^[a-z][a-z0-9]{0,11}$";
/// AKS's smallest OS disk, in GiB.
pub const MIN_DISK_GIB: u64 = 30;
/// AKS's largest OS disk, in GiB.
pub const MAX_DISK_GIB: u64 = 2048;
/// Label domains AKS refuses in `nodeLabels`.
const RESERVED_LABEL_DOMAINS: [&str; 1] = ["kubernetes.azure.com/"];

/// A node request that cannot become an agent pool as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    /// The name breaks ARM's path rule.
    #[error("agentpool name({0}) is invalid, must match regex pattern: {POOL_NAME_PATTERN}")]
    PoolName(String),
    /// No instance type requirement.
    #[error("no requirement for instance type")]
    NoInstanceType,
    /// Storage absent or zero on a NodeClaim.
    #[error("storage request of nodeclaim({0}) should be more than 0")]
    NoStorage(String),
    /// Storage is not a quantity.
    #[error("storage request of {name} is invalid: {reason}")]
    BadStorage {
        /// Request name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Storage outside AKS's range.
    #[error(
        "storage request of {name} is {gib} GiB, outside the {MIN_DISK_GIB}-{MAX_DISK_GIB} GiB \
         AKS allows for an OS disk"
    )]
    DiskOutOfRange {
        /// Request name.
        name: String,
        /// Requested size rounded up to GiB.
        gib: u64,
    },
}

impl InvalidRequest {
    /// Stable category for events and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            InvalidRequest::PoolName(_) => "InvalidPoolName",
            InvalidRequest::NoInstanceType => "NoInstanceType",
            InvalidRequest::NoStorage(_)
            | InvalidRequest::BadStorage { .. }
            | InvalidRequest::DiskOutOfRange { .. } => "InvalidStorage",
        }
    }
}

/// Whether a name is a valid agent pool name (`^[a-z][a-z0-9]{0,11}$`).
pub fn valid_pool_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    first_ok && name.len() <= 12 && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// The OS disk size to send: `None` for the AKS default (Machines with no or zero storage).
pub fn disk_size<R: Request>(request: &R) -> Result<Option<i32>, InvalidRequest> {
    let name = request.name_any();
    let bytes = match request.storage() {
        None => 0,
        Some(Ok(size)) => size.bytes(),
        Some(Err(e)) => {
            return Err(InvalidRequest::BadStorage {
                name,
                reason: e.to_string(),
            });
        }
    };
    if bytes == 0 {
        return match R::KIND {
            NodeRequestKind::Machine => Ok(None),
            NodeRequestKind::NodeClaim => Err(InvalidRequest::NoStorage(name)),
        };
    }
    let gib = kaito_api::quantity::ByteSize(bytes).ceil_gib();
    if !(MIN_DISK_GIB..=MAX_DISK_GIB).contains(&gib) {
        return Err(InvalidRequest::DiskOutOfRange { name, gib });
    }
    Ok(i32::try_from(gib).ok())
}

/// `kaito.sh/node-image-family` to an AKS osSKU; unknown families fall back to Ubuntu.
pub fn os_sku(family: Option<&str>) -> &'static str {
    match family {
        Some(f) if f.eq_ignore_ascii_case("azurelinux") => "AzureLinux",
        _ => "Ubuntu",
    }
}

/// The creation time as a label value: `2025-05-02T10-04-05Z`.
pub fn creation_label(created: Timestamp) -> String {
    created
        .to_zoned(TimeZone::UTC)
        .strftime("%Y-%m-%dT%H-%M-%SZ")
        .to_string()
}

/// Parses a `kaito.sh/creation-timestamp` label value.
pub fn parse_creation_label(value: &str) -> Option<Timestamp> {
    let date = value.get(..10)?;
    let time = value.get(11..19)?.replace('-', ":");
    format!("{date}T{time}Z").parse().ok()
}

/// An Azure tag key for a label key: tags may not contain `/`.
pub fn tag_key(label: &str) -> String {
    label.replace('/', "_")
}

/// Validates the request and builds the agent pool create body.
pub fn build<R: Request>(request: &R, now: Timestamp) -> Result<AgentPoolBody, InvalidRequest> {
    let name = request.name_any();
    if !valid_pool_name(&name) {
        return Err(InvalidRequest::PoolName(name));
    }
    let vm_size = request
        .instance_type()
        .ok_or(InvalidRequest::NoInstanceType)?
        .to_owned();
    let os_disk_size_gb = disk_size(request)?;
    let created = request
        .meta()
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let node_labels = node_labels(request, &vm_size, created);
    let tags = ownership_tags(&node_labels);
    let family = request
        .annotations()
        .get(ANNOTATION_NODE_IMAGE_FAMILY)
        .map(String::as_str);
    let os_sku = match R::KIND {
        NodeRequestKind::Machine if family.is_none() => None,
        _ => Some(os_sku(family).to_owned()),
    };
    let taints = request.taints().iter().chain(request.startup_taints());
    let node_taints: Vec<String> = taints.map(|t| t.to_aks_string()).collect();
    Ok(AgentPoolBody {
        properties: AgentPoolProperties {
            type_: Some("VirtualMachineScaleSets".into()),
            count: Some(1),
            vm_size: Some(vm_size),
            os_type: Some("Linux".into()),
            os_sku,
            os_disk_size_gb,
            mode: Some("User".into()),
            node_labels: Some(node_labels),
            node_taints: (!node_taints.is_empty()).then_some(node_taints),
            tags: Some(tags),
            ..AgentPoolProperties::default()
        },
    })
}

/// The pool's node labels: the kind's default, the request's labels (without domains AKS
/// refuses), the machine type from the SKU catalog and the creation time.
fn node_labels<R: Request>(
    request: &R,
    vm_size: &str,
    created: Timestamp,
) -> BTreeMap<String, String> {
    let (key, value) = R::default_label();
    let mut out = BTreeMap::from([(key.to_owned(), value.to_owned())]);
    for (k, v) in request.labels() {
        if RESERVED_LABEL_DOMAINS.iter().any(|d| k.starts_with(d)) {
            tracing::debug!(label = %k, "Leaving out a label AKS refuses");
            continue;
        }
        out.insert(k.clone(), v.clone());
    }
    let gpu = Cloud::Azure.sku(vm_size).is_some_and(|s| s.gpu_count() > 0);
    let machine_type = if gpu {
        labels::MACHINE_TYPE_GPU
    } else {
        labels::MACHINE_TYPE_CPU
    };
    out.insert(labels::LABEL_MACHINE_TYPE.into(), machine_type.into());
    out.insert(
        labels::LABEL_CREATION_TIMESTAMP.into(),
        creation_label(created),
    );
    out
}

/// Tags marking the pool as ours, so orphans can be found from the Azure side.
fn ownership_tags(node_labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    const OWNERSHIP: [&str; 6] = [
        labels::LABEL_WORKSPACE,
        labels::LABEL_WORKSPACE_NAMESPACE,
        labels::LABEL_RAGENGINE,
        labels::LABEL_NODEPOOL,
        labels::LABEL_PROVISIONER_NAME,
        labels::LABEL_CREATION_TIMESTAMP,
    ];
    OWNERSHIP
        .iter()
        .filter_map(|key| Some((tag_key(key), node_labels.get(*key)?.clone())))
        .collect()
}

/// What the launch step does next.
#[derive(Clone, Debug, PartialEq)]
pub enum LaunchAction {
    /// Send the create.
    Create,
    /// The pool exists and is busy: poll again later.
    Wait(Duration),
    /// The pool was created.
    Launched(Box<AgentPool>),
    /// The pool's create failed: read why, then delete it so a later create starts afresh.
    Failed(Box<AgentPool>),
    /// A terminal failure is recent: wait before trying again.
    Hold(Duration),
}

/// Decides from the observed pool (None when absent) and the recorded intent.
pub fn decide(
    pool: Option<&AgentPool>,
    intent: Option<&Intent>,
    now: Timestamp,
    retry_interval: Duration,
    poll: Duration,
) -> LaunchAction {
    match pool {
        Some(p) if p.succeeded() => LaunchAction::Launched(Box::new(p.clone())),
        Some(p) if p.failed() => LaunchAction::Failed(Box::new(p.clone())),
        Some(_) => LaunchAction::Wait(poll),
        None => match intent.and_then(|i| i.failed_at) {
            Some(failed) => match remaining(failed, now, retry_interval) {
                Some(left) => LaunchAction::Hold(left),
                None => LaunchAction::Create,
            },
            None => LaunchAction::Create,
        },
    }
}

/// Time left until `since + interval`, or `None` once it has passed.
pub fn remaining(since: Timestamp, now: Timestamp, interval: Duration) -> Option<Duration> {
    let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO);
    interval.checked_sub(elapsed).filter(|d| !d.is_zero())
}

/// The launch condition for a cloud error: terminal classes are failures carrying KAITO's
/// phrase (capacity) and the ARM code and message; everything else is still pending.
pub fn error_step(error: &ArmError) -> Step {
    use crate::arm::ErrorClass;
    let detail = error.describe();
    match error.class {
        ErrorClass::Capacity => {
            let msg = format!("{}: {detail}", k::UNAVAILABLE_PHRASE);
            Step::failed(k::REASON_INSUFFICIENT_CAPACITY, msg)
        }
        ErrorClass::InvalidRequest => Step::failed(k::REASON_INVALID_REQUEST, detail),
        _ => Step::pending(k::REASON_LAUNCH_FAILED, detail),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Time};
    use kaito_api::{
        Machine, NodeClaim,
        karpenter::{NodeClaimSpec, Requirement, ResourceRequests, Taint},
    };

    use super::*;
    use crate::arm::{CloudErrorBody, ErrorClass};

    fn claim(name: &str, storage: Option<&str>) -> NodeClaim {
        let mut c = NodeClaim::new(
            name,
            NodeClaimSpec {
                requirements: vec![Requirement::is_in(
                    labels::LABEL_INSTANCE_TYPE,
                    &["Standard_NC24ads_A100_v4"],
                )],
                resources: storage.map(|s| ResourceRequests {
                    requests: Some(BTreeMap::from([("storage".into(), Quantity(s.into()))])),
                }),
                taints: Some(vec![Taint::sku_gpu()]),
                ..NodeClaimSpec::default()
            },
        );
        c.metadata.labels = Some(BTreeMap::from([
            (labels::LABEL_WORKSPACE.into(), "ws-big".into()),
            (labels::LABEL_WORKSPACE_NAMESPACE.into(), "default".into()),
            ("kubernetes.azure.com/scalesetpriority".into(), "x".into()),
        ]));
        let created: Timestamp = "2025-05-02T10:04:05Z".parse().unwrap();
        c.metadata.creation_timestamp = Some(Time(created));
        c
    }

    #[test]
    fn only_lowercase_names_of_up_to_twelve_characters_are_pool_names() {
        for bad in ["ws-a1b2c3", "wsa1b2c3d4e5f6", "Wsabc", "", "1ws"] {
            assert!(!valid_pool_name(bad), "{bad}");
        }
        for good in ["ws1a2b3c4d5", "a", "abcdefghijkl"] {
            assert!(valid_pool_name(good), "{good}");
        }
        let error = build(&claim("ws-a1b2c3", Some("300Gi")), Timestamp::UNIX_EPOCH).unwrap_err();
        assert_eq!(
            error.to_string(),
            "agentpool name(ws-a1b2c3) is invalid, must match regex pattern: ^[a-z][a-z0-9]{0,11}$"
        );
    }

    #[test]
    fn storage_rounds_up_to_whole_gibibytes_within_the_aks_range() {
        assert_eq!(disk_size(&claim("a", Some("300Gi"))), Ok(Some(300)));
        assert_eq!(disk_size(&claim("a", Some("250G"))), Ok(Some(233)));
        assert_eq!(
            disk_size(&claim("a", None)),
            Err(InvalidRequest::NoStorage("a".into()))
        );
        assert_eq!(
            disk_size(&claim("a", Some("0"))),
            Err(InvalidRequest::NoStorage("a".into()))
        );
        assert!(matches!(
            disk_size(&claim("a", Some("10Gi"))),
            Err(InvalidRequest::DiskOutOfRange { gib: 10, .. })
        ));
        assert!(matches!(
            disk_size(&claim("a", Some("3Ti"))),
            Err(InvalidRequest::DiskOutOfRange { .. })
        ));
    }

    #[test]
    fn a_machine_without_storage_gets_the_aks_default_disk() {
        let machine = Machine::new("a", Default::default());
        assert_eq!(disk_size(&machine), Ok(None));
    }

    #[test]
    fn the_body_carries_size_disk_labels_taints_mode_and_tags() {
        let body = build(&claim("ws1", Some("300Gi")), Timestamp::UNIX_EPOCH).unwrap();
        let p = &body.properties;
        assert_eq!(p.vm_size.as_deref(), Some("Standard_NC24ads_A100_v4"));
        assert_eq!(p.count, Some(1));
        assert_eq!(p.os_sku.as_deref(), Some("Ubuntu"));
        assert_eq!(p.os_disk_size_gb, Some(300));
        assert_eq!(p.mode.as_deref(), Some("User"));
        let labels = p.node_labels.as_ref().unwrap();
        assert_eq!(labels["karpenter.sh/nodepool"], "kaito");
        assert_eq!(labels["kaito.sh/machine-type"], "gpu");
        assert_eq!(
            labels["kaito.sh/creation-timestamp"],
            "2025-05-02T10-04-05Z"
        );
        assert_eq!(labels["kaito.sh/workspace"], "ws-big");
        assert!(!labels.contains_key("kubernetes.azure.com/scalesetpriority"));
        assert_eq!(
            p.node_taints.as_deref(),
            Some(&["sku=gpu:NoSchedule".to_owned()][..])
        );
        assert_eq!(p.tags.as_ref().unwrap()["kaito.sh_workspace"], "ws-big");
    }

    #[test]
    fn image_family_picks_the_os_sku_case_insensitively() {
        assert_eq!(os_sku(Some("AzureLinux")), "AzureLinux");
        assert_eq!(os_sku(Some("ubuntu")), "Ubuntu");
        assert_eq!(os_sku(Some("flatcar")), "Ubuntu");
        assert_eq!(os_sku(None), "Ubuntu");
    }

    #[test]
    fn creation_labels_round_trip() {
        let t: Timestamp = "2025-05-02T10:04:05Z".parse().unwrap();
        assert_eq!(parse_creation_label(&creation_label(t)), Some(t));
        assert_eq!(parse_creation_label("garbage"), None);
    }

    #[test]
    fn a_recent_terminal_failure_holds_and_an_old_one_creates_again() {
        let failed: Timestamp = "2025-05-02T10:00:00Z".parse().unwrap();
        let intent = Intent {
            failed_at: Some(failed),
            ..Intent::default()
        };
        let soon: Timestamp = "2025-05-02T10:01:00Z".parse().unwrap();
        let later: Timestamp = "2025-05-02T10:06:00Z".parse().unwrap();
        let five = Duration::from_secs(300);
        let poll = Duration::from_secs(10);
        assert_eq!(
            decide(None, Some(&intent), soon, five, poll),
            LaunchAction::Hold(Duration::from_secs(240))
        );
        assert_eq!(
            decide(None, Some(&intent), later, five, poll),
            LaunchAction::Create
        );
        assert_eq!(decide(None, None, soon, five, poll), LaunchAction::Create);
    }

    #[test]
    fn a_busy_pool_is_polled_and_a_finished_one_is_launched() {
        let mut pool = AgentPool::default();
        pool.properties.provisioning_state = Some("Creating".into());
        let now = Timestamp::UNIX_EPOCH;
        let poll = Duration::from_secs(3);
        assert_eq!(
            decide(Some(&pool), None, now, poll, poll),
            LaunchAction::Wait(poll)
        );
        pool.properties.provisioning_state = Some("Succeeded".into());
        assert!(matches!(
            decide(Some(&pool), None, now, poll, poll),
            LaunchAction::Launched(_)
        ));
        pool.properties.provisioning_state = Some("Failed".into());
        assert!(matches!(
            decide(Some(&pool), None, now, poll, poll),
            LaunchAction::Failed(_)
        ));
    }

    #[test]
    fn quota_errors_fail_the_launch_with_kaitos_phrase_and_the_arm_message() {
        let body = CloudErrorBody {
            code: "OperationNotAllowed".into(),
            message: "exceeding approved Total Regional Cores quota".into(),
            details: vec![],
        };
        let error = ArmError::from_response("PutAgentPool", 400, body, None);
        assert_eq!(error.class, ErrorClass::Capacity);
        let step = error_step(&error);
        assert_eq!(step.reason, "InsufficientCapacity");
        assert!(step.message.contains(k::UNAVAILABLE_PHRASE));
        assert!(step.message.contains("OperationNotAllowed"));
        assert!(step.message.contains("quota"));
        let throttled =
            ArmError::from_response("PutAgentPool", 429, CloudErrorBody::default(), None);
        assert_eq!(
            error_step(&throttled).state,
            crate::request::StepState::Pending
        );
    }
}
