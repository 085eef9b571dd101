//! ARM error bodies (`{"error": {code, message, target, details}}`) and the errors AKS answers.

use axum::{
    Json,
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::pools::validate::NAME_PATTERN;

/// The inner object of an ARM error body, also the `error` of a failed operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `QuotaExceeded`.
    pub code: String,
    /// What happened, for people.
    pub message: String,
    /// The offending field or resource, when there is one.
    #[serde(default)]
    pub target: Option<String>,
    /// Nested errors.
    #[serde(default)]
    pub details: Vec<ErrorBody>,
}

impl ErrorBody {
    /// An error with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            target: None,
            details: Vec::new(),
        }
    }
}

/// An ARM error response: a status, a body and any extra headers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ArmError {
    pub status: StatusCode,
    /// Boxed: errors travel in `Result`s on every path, which should stay small.
    pub body: Box<ErrorBody>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ArmError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody::new(code, message)),
            headers: Vec::new(),
        }
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.body.target = Some(target.into());
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl ToString) -> Self {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            self.headers.push((HeaderName::from_static(name), value));
        }
        self
    }

    pub fn invalid_parameter(target: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameter", message).with_target(target)
    }

    pub fn invalid_pool_name(name: &str) -> Self {
        let message = format!(
            "The agent pool name '{name}' is invalid: it must match the regex pattern \
             {NAME_PATTERN} (1 to 12 lowercase letters and digits, starting with a letter)."
        );
        Self::invalid_parameter("agentPoolName", message)
    }

    pub fn pool_not_found(cluster: &str, name: &str) -> Self {
        let message = format!(
            "Agent Pool not found: managed cluster '{cluster}' has no agent pool '{name}'."
        );
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// What AKS answers to a PUT or DELETE while another operation runs on the pool.
    pub fn in_progress(verb: &str, operation: &str, pool: &str) -> Self {
        let message = format!(
            "Operation is not allowed because there's an in progress {verb} node pool operation \
             (operation id {operation}) on agent pool '{pool}'. Wait until it has finished."
        );
        Self::new(StatusCode::CONFLICT, "OperationNotAllowed", message)
    }

    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            message,
        )
    }

    /// ARM's own throttling answer.
    pub fn throttled(class: &str, subscription: &str, actor: &str, retry_after: u64) -> Self {
        let message = format!(
            "Too many '{class}' requests for subscription '{subscription}' by actor '{actor}'; \
             try again after {retry_after} seconds."
        );
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "SubscriptionRequestsThrottled",
            message,
        )
        .with_header("retry-after", retry_after)
    }

    /// A server-side failure with the code ARM uses for the status.
    pub fn server(status: StatusCode, retry_after: Option<u64>) -> Self {
        let (code, message) = match status.as_u16() {
            408 => (
                "RequestTimeout",
                "The request timed out before the server answered.",
            ),
            502 => (
                "BadGateway",
                "The gateway could not reach the resource provider.",
            ),
            503 => (
                "ServiceUnavailable",
                "The service is unavailable; try again later.",
            ),
            504 => (
                "GatewayTimeout",
                "The resource provider did not answer in time.",
            ),
            _ => (
                "InternalServerError",
                "An internal error occurred; try again later.",
            ),
        };
        let error = Self::new(status, code, message);
        match retry_after {
            Some(seconds) => error.with_header("retry-after", seconds),
            None => error,
        }
    }

    pub fn missing_api_version() -> Self {
        let message = "The request needs the api-version query parameter (?api-version=...).";
        Self::new(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            message,
        )
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.body }))).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_always_carries_code_message_target_and_details() {
        let body = serde_json::to_value(ErrorBody::new("NotFound", "gone")).unwrap();
        assert_eq!(
            body,
            json!({"code": "NotFound", "message": "gone", "target": null, "details": []})
        );
    }

    #[test]
    fn the_in_progress_conflict_names_the_running_operation_kind() {
        let error = ArmError::in_progress("create", "op-1", "ws1");
        assert_eq!(error.status, StatusCode::CONFLICT);
        assert_eq!(error.body.code, "OperationNotAllowed");
        assert!(error.body.message.starts_with(
            "Operation is not allowed because there's an in progress create node pool operation"
        ));
    }
}
