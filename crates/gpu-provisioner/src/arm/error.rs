//! ARM failures and their classification by HTTP status and `error.code`, never by the
//! English text of a message.

use std::time::Duration;

use super::types::CloudErrorBody;

/// What a failed ARM call means for the node request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The resource does not exist.
    NotFound,
    /// ARM or AKS throttled the call; wait `Retry-After`.
    Throttled,
    /// Another operation runs on the pool or cluster; poll, do not resend.
    InProgress,
    /// An `If-Match`/`If-None-Match` precondition failed; re-read and decide again.
    Precondition,
    /// Quota, SKU availability or allocation: terminal until capacity changes.
    Capacity,
    /// The request itself is invalid: terminal until the node request changes.
    InvalidRequest,
    /// Credentials were refused or could not be obtained.
    Auth,
    /// A server error, timeout or broken connection.
    Transient,
}

impl ErrorClass {
    /// Whether the error is final for this node request (until capacity or input change).
    pub fn is_terminal(self) -> bool {
        matches!(self, ErrorClass::Capacity | ErrorClass::InvalidRequest)
    }

    /// Stable PascalCase name, used as metric label and event reason.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::NotFound => "NotFound",
            ErrorClass::Throttled => "Throttled",
            ErrorClass::InProgress => "OperationInProgress",
            ErrorClass::Precondition => "PreconditionFailed",
            ErrorClass::Capacity => "InsufficientCapacity",
            ErrorClass::InvalidRequest => "InvalidRequest",
            ErrorClass::Auth => "AuthenticationFailed",
            ErrorClass::Transient => "CloudUnavailable",
        }
    }
}

/// Codes that mean quota, SKU availability or allocation failures.
const CAPACITY_CODES: [&str; 11] = [
    "QuotaExceeded",
    "ErrCode_InsufficientVCPUQuota",
    "OperationNotAllowedQuotaExceeded",
    "SkuNotAvailable",
    "SkuNotSupported",
    "VMSizeNotSupported",
    "AllocationFailed",
    "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest",
    "InsufficientCapacity",
];

/// Codes that mean another operation holds the pool or cluster.
const IN_PROGRESS_CODES: [&str; 5] = [
    "AnotherOperationInProgress",
    "OperationPreempted",
    "Conflict",
    "EtagMismatch",
    "OriginalEtagNotExpect",
];

/// Codes that mean the request is malformed.
const INVALID_CODES: [&str; 6] = [
    "InvalidParameter",
    "BadRequest",
    "InvalidRequestContent",
    "InvalidRequestFormat",
    "PropertyChangeNotAllowed",
    "InvalidTemplate",
];

/// Codes that mean the caller is not allowed or not authenticated.
const AUTH_CODES: [&str; 4] = [
    "AuthorizationFailed",
    "InvalidAuthenticationToken",
    "InvalidAuthenticationTokenTenant",
    "AuthenticationFailed",
];

/// Whether an `OperationNotAllowed` error is about the cores quota.
///
/// The one place a message is read: AKS sends `409 OperationNotAllowed` both for "another
/// operation is in progress" and for a Compute quota refusal passed through, with no
/// distinguishing code or detail. Only the word `quota` is looked for, and only under that
/// code; every other error is classified by status and code alone.
fn names_quota(error: &CloudErrorBody) -> bool {
    std::iter::once(error)
        .chain(&error.details)
        .any(|e| e.message.to_ascii_lowercase().contains("quota"))
}

/// Classifies an ARM error response.
///
/// `OperationNotAllowed` is AKS's code both for "an operation is in progress" (409) and for
/// quota or VM-size refusals (400/403, or 409 for a Compute quota error passed through; see
/// [`names_quota`]). Nested detail codes such as `QuotaExceeded` win over the top level.
pub fn classify(status: u16, error: &CloudErrorBody) -> ErrorClass {
    let codes = std::iter::once(error.code.as_str())
        .chain(error.details.iter().map(|d| d.code.as_str()))
        .collect::<Vec<_>>();
    let has = |list: &[&str]| {
        codes
            .iter()
            .any(|c| list.iter().any(|l| l.eq_ignore_ascii_case(c)))
    };
    if status == 404 || has(&["NotFound", "ResourceNotFound"]) {
        return ErrorClass::NotFound;
    }
    if status == 429 || has(&["TooManyRequests", "Throttled"]) {
        return ErrorClass::Throttled;
    }
    if has(&CAPACITY_CODES) {
        return ErrorClass::Capacity;
    }
    if status == 412 || has(&["PreconditionFailed"]) {
        return ErrorClass::Precondition;
    }
    if error.code.eq_ignore_ascii_case("OperationNotAllowed") {
        return if status != 409 || names_quota(error) {
            ErrorClass::Capacity
        } else {
            ErrorClass::InProgress
        };
    }
    if status == 409 || has(&IN_PROGRESS_CODES) {
        return ErrorClass::InProgress;
    }
    if status == 401 || status == 403 || has(&AUTH_CODES) {
        return ErrorClass::Auth;
    }
    if status == 400 || status == 422 || has(&INVALID_CODES) {
        return ErrorClass::InvalidRequest;
    }
    ErrorClass::Transient
}

/// A failed ARM call.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{operation}: {}", self.describe())]
pub struct ArmError {
    /// Operation name, e.g. `PutAgentPool`.
    pub operation: &'static str,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// ARM error code and message, when the body had one.
    pub body: CloudErrorBody,
    /// What the failure means.
    pub class: ErrorClass,
    /// How long ARM asked to wait.
    pub retry_after: Option<Duration>,
}

impl ArmError {
    /// An error from an HTTP response.
    pub fn from_response(
        operation: &'static str,
        status: u16,
        body: CloudErrorBody,
        retry_after: Option<Duration>,
    ) -> Self {
        let class = classify(status, &body);
        ArmError {
            operation,
            status: Some(status),
            body,
            class,
            retry_after,
        }
    }

    /// An error without a response (connection, timeout, credential).
    pub fn without_response(operation: &'static str, class: ErrorClass, message: String) -> Self {
        let body = CloudErrorBody {
            code: class.as_str().to_owned(),
            message,
            details: Vec::new(),
        };
        ArmError {
            operation,
            status: None,
            body,
            class,
            retry_after: None,
        }
    }

    /// `Code: message`, with the status when there is no code.
    pub fn describe(&self) -> String {
        match (self.body.code.is_empty(), self.status) {
            (false, _) => format!("{}: {}", self.body.code, self.body.message),
            (true, Some(status)) => format!("HTTP {status}: {}", self.body.message),
            (true, None) => self.body.message.clone(),
        }
    }

    /// Whether the resource was not found.
    pub fn is_not_found(&self) -> bool {
        self.class == ErrorClass::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str) -> CloudErrorBody {
        CloudErrorBody {
            code: code.into(),
            message: "text is ignored".into(),
            details: vec![],
        }
    }

    #[test]
    fn quota_and_sku_refusals_are_capacity_failures() {
        assert_eq!(
            classify(400, &body("OperationNotAllowed")),
            ErrorClass::Capacity
        );
        assert_eq!(classify(409, &body("QuotaExceeded")), ErrorClass::Capacity);
        assert_eq!(
            classify(400, &body("SkuNotAvailable")),
            ErrorClass::Capacity
        );
        assert_eq!(
            classify(200, &body("AllocationFailed")),
            ErrorClass::Capacity
        );
        let nested = CloudErrorBody {
            details: vec![body("QuotaExceeded")],
            ..body("OperationNotAllowed")
        };
        assert_eq!(classify(409, &nested), ErrorClass::Capacity);
    }

    #[test]
    fn a_quota_refusal_passed_through_as_a_conflict_is_a_capacity_failure() {
        let quota = CloudErrorBody {
            code: "OperationNotAllowed".into(),
            message: "results in exceeding approved Total Regional Cores quota".into(),
            details: vec![],
        };
        assert_eq!(classify(409, &quota), ErrorClass::Capacity);
        let busy = CloudErrorBody {
            code: "OperationNotAllowed".into(),
            message: "there's an in progress create node pool operation".into(),
            details: vec![],
        };
        assert_eq!(classify(409, &busy), ErrorClass::InProgress);
    }

    #[test]
    fn an_operation_in_progress_is_transient() {
        assert_eq!(
            classify(409, &body("OperationNotAllowed")),
            ErrorClass::InProgress
        );
        assert_eq!(
            classify(409, &body("AnotherOperationInProgress")),
            ErrorClass::InProgress
        );
        assert!(!ErrorClass::InProgress.is_terminal());
    }

    #[test]
    fn throttling_server_errors_and_timeouts_are_transient() {
        assert_eq!(classify(429, &body("")), ErrorClass::Throttled);
        for status in [500, 502, 503, 504, 408] {
            assert_eq!(
                classify(status, &body("InternalServerError")),
                ErrorClass::Transient
            );
        }
        assert!(!ErrorClass::Throttled.is_terminal());
    }

    #[test]
    fn bad_input_is_an_invalid_request_and_missing_is_not_found() {
        assert_eq!(
            classify(400, &body("InvalidParameter")),
            ErrorClass::InvalidRequest
        );
        assert_eq!(classify(400, &body("")), ErrorClass::InvalidRequest);
        assert_eq!(classify(404, &body("NotFound")), ErrorClass::NotFound);
        assert_eq!(classify(412, &body("")), ErrorClass::Precondition);
        assert_eq!(
            classify(403, &body("AuthorizationFailed")),
            ErrorClass::Auth
        );
    }
}
