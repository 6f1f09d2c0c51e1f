//! Errors are translated once, here. Handlers return `Result<_, ApiError>`; only `IntoResponse for ApiError`
//! knows status codes, and it writes RFC 9457 problem+json with a stable `code`. Internal details go to the log,
//! never to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document. `code` is stable and meant for programs; `detail` is for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable error code, for example `VALIDATION_FAILED` or `NOT_FOUND`.
    pub code: String,
    /// The request field the problem is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// With `VERSION_CONFLICT`: the resource's current version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// With `OPERATION_IN_PROGRESS`: the running operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<uuid::Uuid>,
    /// With `POLICY_VIOLATION`: every violated rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<Vec<ViolationView>>,
    /// With `INTERNAL`: the id the server logged the failure under; quote it when reporting the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<uuid::Uuid>,
}

/// One violated policy rule.
#[derive(Clone, Debug, Serialize, serde::Deserialize, ToSchema, PartialEq, Eq)]
pub struct ViolationView {
    /// The rule's name in the bundle, for example `allowed_locations`.
    pub policy: String,
    pub policy_version: i64,
    /// The request field at fault.
    pub field: String,
    /// What the rule requires.
    pub constraint: String,
    /// What the request asked for.
    pub actual: String,
    pub message: String,
}

impl From<polaris_domain::policy::Violation> for ViolationView {
    fn from(v: polaris_domain::policy::Violation) -> Self {
        let polaris_domain::policy::Violation { policy, policy_version, field, constraint, actual, message } = v;
        ViolationView { policy, policy_version, field, constraint, actual, message }
    }
}

/// The stable code of an error response, left on the response for the audit log.
#[derive(Clone, Copy, Debug)]
pub struct ProblemCode(pub &'static str);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Validation { detail: String, field: Option<String> },
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    #[error("this token's role may not do this")]
    Forbidden,
    /// Forbidden, with the reason (for example: targets are platform infrastructure).
    #[error("{0}")]
    NotPermitted(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("the resource is at version {current}; your If-Match or expected_version was {expected}")]
    VersionConflict { expected: u64, current: u64 },
    #[error("operation {0} is still running on this cluster; wait for it to finish")]
    OperationInProgress(uuid::Uuid),
    #[error("deletion protection is on; turn it off with PATCH first")]
    DeletionProtected,
    /// A platform check (replay) is already running.
    #[error("{0}")]
    Busy(String),
    /// A well-formed request the current state cannot honour (`422`), with its stable code.
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String, field: Option<String> },
    #[error("the request breaks {} policy rule(s) of bundle version {}", .0.len(), .0.first().map_or(0, |v| v.policy_version))]
    PolicyViolation(Vec<ViolationView>),
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    IdempotencyKeyInProgress,
    #[error("too many requests for this token; retry after {0} s")]
    RateLimited(u64),
    #[error("request body is larger than 1 MiB")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("a dependency is unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn validation(detail: impl Into<String>, field: Option<&str>) -> Self {
        ApiError::Validation { detail: detail.into(), field: field.map(str::to_owned) }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Validation { .. } => (StatusCode::BAD_REQUEST, "VALIDATION_FAILED", "Validation failed"),
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "Unauthenticated"),
            ApiError::Forbidden | ApiError::NotPermitted(_) => (StatusCode::FORBIDDEN, "FORBIDDEN", "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND", "Not found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "ALREADY_EXISTS", "Already exists"),
            ApiError::VersionConflict { .. } => (StatusCode::CONFLICT, "VERSION_CONFLICT", "Version conflict"),
            ApiError::OperationInProgress(_) => {
                (StatusCode::CONFLICT, "OPERATION_IN_PROGRESS", "Operation in progress")
            }
            ApiError::DeletionProtected => (StatusCode::CONFLICT, "DELETION_PROTECTED", "Deletion protected"),
            ApiError::Busy(_) => (StatusCode::CONFLICT, "REPLAY_IN_PROGRESS", "Replay in progress"),
            ApiError::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code, "Unprocessable request"),
            ApiError::PolicyViolation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "POLICY_VIOLATION", "Policy violation"),
            ApiError::IdempotencyKeyReused => {
                (StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED", "Idempotency key reused")
            }
            ApiError::IdempotencyKeyInProgress => {
                (StatusCode::CONFLICT, "IDEMPOTENCY_KEY_IN_PROGRESS", "Idempotency key in progress")
            }
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", "Rate limited"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "Payload too large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "Method not allowed"),
            ApiError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "DEPENDENCY_UNAVAILABLE", "Dependency unavailable")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "Internal error"),
        }
    }
}

impl From<polaris_store::DbError> for ApiError {
    fn from(e: polaris_store::DbError) -> Self {
        ApiError::Unavailable(format!("postgres: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, title) = self.parts();
        // An internal error is a bug: it is logged under a fresh id the client can quote, and carries no retry
        // hint (retrying will not help); a dependency being down is a 503 with `Retry-After`.
        let correlation_id = matches!(self, ApiError::Internal(_)).then(uuid::Uuid::new_v4);
        let detail = match &self {
            // Never leak internals: the log has them, the client gets a stable sentence.
            ApiError::Unavailable(internal) => {
                tracing::error!(error = %internal, "request failed on a dependency");
                "a service Polaris depends on is unavailable; retry later".to_owned()
            }
            ApiError::Internal(internal) => {
                let id = correlation_id.unwrap_or_default();
                tracing::error!(error = %internal, correlation_id = %id, "internal error");
                format!("Polaris failed on this request; report correlation id {id}")
            }
            other => other.to_string(),
        };
        let field = match &self {
            ApiError::Validation { field, .. } | ApiError::Unprocessable { field, .. } => field.clone(),
            _ => None,
        };
        let problem = Problem {
            problem_type: format!("https://polaris.dev/problems/{}", code.to_lowercase().replace('_', "-")),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            field,
            current_version: match &self {
                ApiError::VersionConflict { current, .. } => Some(*current),
                _ => None,
            },
            operation_id: match &self {
                ApiError::OperationInProgress(id) => Some(*id),
                _ => None,
            },
            violations: match &self {
                ApiError::PolicyViolation(v) => Some(v.clone()),
                _ => None,
            },
            correlation_id,
        };
        let mut resp = (status, Json(problem)).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::RateLimited(secs) = &self {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        resp.extensions_mut().insert(ProblemCode(code));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parts(e: ApiError) -> (StatusCode, HeaderMapLite, serde_json::Value) {
        let resp = e.into_response();
        let status = resp.status();
        let retry_after = resp.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap_or("").to_owned());
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
        (status, HeaderMapLite { retry_after }, serde_json::from_slice(&body).expect("problem json"))
    }

    struct HeaderMapLite {
        retry_after: Option<String>,
    }

    #[tokio::test]
    async fn an_internal_error_is_500_without_a_retry_hint_and_with_a_correlation_id() {
        let (status, headers, problem) =
            parts(ApiError::Internal("stored event unreadable: secret detail".into())).await;
        assert_eq!((status, problem["code"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("INTERNAL")));
        assert_eq!(headers.retry_after, None, "retrying will not help");
        let id = problem["correlation_id"].as_str().expect("a correlation id");
        assert!(problem["detail"].as_str().expect("detail").contains(id), "{problem}");
        assert!(!problem.to_string().contains("secret detail"), "internals stay in the log: {problem}");
    }

    #[tokio::test]
    async fn only_an_unavailable_dependency_is_503_with_retry_after() {
        let (status, headers, problem) = parts(ApiError::Unavailable("postgres: connection refused".into())).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("DEPENDENCY_UNAVAILABLE"))
        );
        assert_eq!(headers.retry_after.as_deref(), Some("1"));
        assert!(problem.get("correlation_id").is_none());
    }
}
