//! Condition types and reasons written by both deployables, and condition-list helpers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Workspace condition types.
pub mod types {
    /// Required nodes are selected and Ready.
    pub const RESOURCE_READY: &str = "ResourceReady";
    /// Machines (karpenter.sh/v1alpha5) for the Workspace are ready.
    pub const MACHINE_READY: &str = "MachineReady";
    /// NodeClaims (karpenter.sh/v1) for the Workspace are ready.
    pub const NODE_CLAIM_READY: &str = "NodeClaimReady";
    /// The inference workload has all replicas ready.
    pub const INFERENCE_READY: &str = "InferenceReady";
    /// The tuning Job is running or finished.
    pub const JOB_STARTED: &str = "JobStarted";
    /// Seed-era summary condition, mirrored from WorkspaceSucceeded.
    pub const WORKSPACE_READY: &str = "WorkspaceReady";
    /// Summary condition of the Workspace.
    pub const WORKSPACE_SUCCEEDED: &str = "WorkspaceSucceeded";
    /// The Workspace is being deleted.
    pub const WORKSPACE_DELETING: &str = "WorkspaceDeleting";
}

/// Workspace condition reasons.
pub mod reasons {
    /// Node requests are being created or waited for.
    pub const CREATE_MACHINE_PENDING: &str = "CreateMachinePending";
    /// NodeClaims are being created or waited for.
    pub const CREATE_NODE_CLAIM_PENDING: &str = "CreateNodeClaimPending";
    /// A Machine could not be created.
    pub const MACHINE_FAILED_CREATION: &str = "machineFailedCreation";
    /// A NodeClaim could not be created.
    pub const NODE_CLAIM_FAILED_CREATION: &str = "nodeClaimFailedCreation";
    /// A Machine reports a failure.
    pub const CHECK_MACHINE_STATUS_FAILED: &str = "checkMachineStatusFailed";
    /// A NodeClaim reports a failure.
    pub const CHECK_NODE_CLAIM_STATUS_FAILED: &str = "checkNodeClaimStatusFailed";
    /// Nodes are ready with their GPU plugin.
    pub const INSTALL_NODE_PLUGINS_SUCCESS: &str = "installNodePluginsSuccess";
    /// Nodes are not (yet) ready.
    pub const RESOURCE_STATUS_FAILED: &str = "workspaceResourceStatusFailed";
    /// Nodes are ready.
    pub const RESOURCE_STATUS_SUCCESS: &str = "workspaceResourceStatusSuccess";
    /// The inference workload is not ready.
    pub const INFERENCE_STATUS_FAILED: &str = "WorkspaceInferenceStatusFailed";
    /// The inference workload is being rolled out.
    pub const INFERENCE_STATUS_PENDING: &str = "WorkspaceInferenceStatusPending";
    /// The inference workload is ready.
    pub const INFERENCE_STATUS_SUCCESS: &str = "WorkspaceInferenceStatusSuccess";
    /// The tuning Job failed.
    pub const TUNING_JOB_STATUS_FAILED: &str = "WorkspaceTuningJobStatusFailed";
    /// The tuning Job is not started yet.
    pub const TUNING_JOB_STATUS_PENDING: &str = "WorkspaceTuningJobStatusPending";
    /// The tuning Job started.
    pub const TUNING_JOB_STATUS_STARTED: &str = "WorkspaceTuningJobStatusStarted";
    /// The Workspace failed.
    pub const WORKSPACE_FAILED: &str = "workspaceFailed";
    /// The Workspace is still progressing.
    pub const WORKSPACE_PENDING: &str = "workspacePending";
    /// The Workspace succeeded.
    pub const WORKSPACE_SUCCEEDED: &str = "workspaceSucceeded";
    /// Seed-era reason of WorkspaceReady=True.
    pub const WORKSPACE_READY: &str = "workspaceReady";
    /// The Workspace is being deleted.
    pub const WORKSPACE_DELETED: &str = "workspaceDeleted";
    /// The Workspace spec is invalid.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The API server refused a workload object built from an admitted spec.
    pub const WORKLOAD_INVALID: &str = "WorkloadInvalid";
    /// A container was killed for using too much memory.
    pub const CONTAINER_OOM_KILLED: &str = "ContainerOOMKilled";
    /// A container keeps crashing.
    pub const CONTAINER_CRASH_LOOP_BACK_OFF: &str = "ContainerCrashLoopBackOff";
    /// An image cannot be pulled.
    pub const IMAGE_PULL_ERROR: &str = "ImagePullError";
    /// A pod cannot be scheduled.
    pub const UNSCHEDULABLE: &str = "Unschedulable";
}

/// Condition types and reasons of node requests.
pub mod karpenter {
    /// Machine: the instance was launched.
    pub const MACHINE_LAUNCHED: &str = "MachineLaunched";
    /// Machine: the node registered.
    pub const MACHINE_REGISTERED: &str = "MachineRegistered";
    /// Machine: the node is initialized.
    pub const MACHINE_INITIALIZED: &str = "MachineInitialized";
    /// NodeClaim: the instance was launched.
    pub const LAUNCHED: &str = "Launched";
    /// NodeClaim: the node registered.
    pub const REGISTERED: &str = "Registered";
    /// NodeClaim: the node is initialized.
    pub const INITIALIZED: &str = "Initialized";
    /// Both kinds: all of the above.
    pub const READY: &str = "Ready";

    /// Launch failed with an error that may pass.
    pub const REASON_LAUNCH_FAILED: &str = "LaunchFailed";
    /// Launch failed for lack of quota or capacity; terminal until that changes.
    pub const REASON_INSUFFICIENT_CAPACITY: &str = "InsufficientCapacity";
    /// Launch refused because the request is invalid.
    pub const REASON_INVALID_REQUEST: &str = "InvalidRequest";
    /// Launch is in progress.
    pub const REASON_LAUNCHING: &str = "Launching";
    /// Nothing has reconciled this condition yet.
    pub const REASON_AWAITING_RECONCILIATION: &str = "AwaitingReconciliation";
    /// No node with the request's providerID exists yet.
    pub const REASON_NODE_NOT_FOUND: &str = "NodeNotFound";
    /// Several nodes claim the same providerID.
    pub const REASON_MULTIPLE_NODES_FOUND: &str = "MultipleNodesFound";
    /// The node is not Ready.
    pub const REASON_NODE_NOT_READY: &str = "NodeNotReady";
    /// Startup taints are still on the node.
    pub const REASON_STARTUP_TAINTS_EXIST: &str = "StartupTaintsExist";
    /// Known ephemeral taints are still on the node.
    pub const REASON_EPHEMERAL_TAINTS_EXIST: &str = "KnownEphemeralTaintsExist";
    /// A requested resource is not registered on the node yet.
    pub const REASON_RESOURCE_NOT_REGISTERED: &str = "ResourceNotRegistered";
    /// The instance was not launched yet.
    pub const REASON_NOT_LAUNCHED: &str = "MachineNotLaunched";
    /// Phrase KAITO looks for to stop waiting for a launch.
    pub const UNAVAILABLE_PHRASE: &str =
        "all requested instance types were unavailable during launch";
}

/// Condition status strings.
pub mod status {
    /// Condition holds.
    pub const TRUE: &str = "True";
    /// Condition does not hold.
    pub const FALSE: &str = "False";
    /// Not known yet.
    pub const UNKNOWN: &str = "Unknown";
}

/// Longest message, in bytes, a condition or event carries in this project: the API server
/// refuses longer event notes (conditions would allow 32768).
pub const MAX_MESSAGE_LEN: usize = 1024;

/// Cuts a message to [`MAX_MESSAGE_LEN`] bytes at a character boundary, marking the cut.
pub fn trim_message(message: &str) -> String {
    const MARK: &str = "…";
    if message.len() <= MAX_MESSAGE_LEN {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE_LEN - MARK.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &message[..end])
}

/// A condition about to be written: the parts that decide whether it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCondition {
    /// Condition type.
    pub type_: &'static str,
    /// True, False or Unknown.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl NewCondition {
    /// A condition with the given parts.
    pub fn new(
        type_: &'static str,
        status: &'static str,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        NewCondition {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// Turns it into a `metav1.Condition`, keeping the transition time of `previous` when
    /// the status is unchanged.
    pub fn into_condition(self, previous: &[Condition], generation: i64, now: Time) -> Condition {
        let last = previous
            .iter()
            .find(|c| c.type_ == self.type_ && c.status == self.status)
            .map(|c| c.last_transition_time.clone());
        Condition {
            type_: self.type_.to_owned(),
            status: self.status.to_owned(),
            reason: self.reason,
            message: trim_message(&self.message),
            observed_generation: Some(generation),
            last_transition_time: last.unwrap_or(now),
        }
    }
}

/// The condition of a type in a list.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of a type is True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == status::TRUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default())
    }

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let first = NewCondition::new(types::INFERENCE_READY, status::TRUE, "R", "m")
            .into_condition(&[], 1, time(10));
        let again = NewCondition::new(types::INFERENCE_READY, status::TRUE, "R2", "m2")
            .into_condition(std::slice::from_ref(&first), 2, time(20));
        assert_eq!(again.last_transition_time, time(10));
        assert_eq!(again.observed_generation, Some(2));
        let flipped = NewCondition::new(types::INFERENCE_READY, status::FALSE, "R", "m")
            .into_condition(&[again], 2, time(30));
        assert_eq!(flipped.last_transition_time, time(30));
    }

    #[test]
    fn long_messages_are_trimmed_to_the_byte_limit_at_a_character_boundary() {
        assert_eq!(trim_message("quota"), "quota");
        let exact = "a".repeat(MAX_MESSAGE_LEN);
        assert_eq!(trim_message(&exact), exact);
        // Two-byte characters: a cut by characters would still be too long for an event.
        let trimmed = trim_message(&"é".repeat(MAX_MESSAGE_LEN));
        assert!(trimmed.len() <= MAX_MESSAGE_LEN, "{}", trimmed.len());
        assert!(trimmed.starts_with("éé") && trimmed.ends_with('…'));
    }
}
