//! The one application error. Every use case answers `Result<_, AppError>`; each front door maps it once: REST to
//! RFC 9457 problem+json (`polaris_api::error`), gRPC to `google.rpc.Status` (`polaris_grpc::status`). The
//! stable `code`, the HTTP-equivalent status (what audit entries record, whatever the channel) and the sentence a
//! client sees are decided here, so the two doors cannot disagree. Internal details go to the log, never to the
//! client.

use serde::Serialize;
use utoipa::ToSchema;

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

#[derive(Debug, thiserror::Error)]
pub enum AppError {
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

impl AppError {
    pub fn validation(detail: impl Into<String>, field: Option<&str>) -> Self {
        AppError::Validation { detail: detail.into(), field: field.map(str::to_owned) }
    }

    /// The HTTP-equivalent status, the stable code and a title.
    pub fn parts(&self) -> (u16, &'static str, &'static str) {
        match self {
            AppError::Validation { .. } => (400, "VALIDATION_FAILED", "Validation failed"),
            AppError::Unauthenticated => (401, "UNAUTHENTICATED", "Unauthenticated"),
            AppError::Forbidden | AppError::NotPermitted(_) => (403, "FORBIDDEN", "Forbidden"),
            AppError::NotFound(_) => (404, "NOT_FOUND", "Not found"),
            AppError::Conflict(_) => (409, "ALREADY_EXISTS", "Already exists"),
            AppError::VersionConflict { .. } => (409, "VERSION_CONFLICT", "Version conflict"),
            AppError::OperationInProgress(_) => (409, "OPERATION_IN_PROGRESS", "Operation in progress"),
            AppError::DeletionProtected => (409, "DELETION_PROTECTED", "Deletion protected"),
            AppError::Busy(_) => (409, "REPLAY_IN_PROGRESS", "Replay in progress"),
            AppError::Unprocessable { code, .. } => (422, code, "Unprocessable request"),
            AppError::PolicyViolation(_) => (422, "POLICY_VIOLATION", "Policy violation"),
            AppError::IdempotencyKeyReused => (422, "IDEMPOTENCY_KEY_REUSED", "Idempotency key reused"),
            AppError::IdempotencyKeyInProgress => (409, "IDEMPOTENCY_KEY_IN_PROGRESS", "Idempotency key in progress"),
            AppError::RateLimited(_) => (429, "RATE_LIMITED", "Rate limited"),
            AppError::PayloadTooLarge => (413, "PAYLOAD_TOO_LARGE", "Payload too large"),
            AppError::UnsupportedMediaType(_) => (415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
            AppError::MethodNotAllowed => (405, "METHOD_NOT_ALLOWED", "Method not allowed"),
            AppError::Unavailable(_) => (503, "DEPENDENCY_UNAVAILABLE", "Dependency unavailable"),
            AppError::Internal(_) => (500, "INTERNAL", "Internal error"),
        }
    }
}

impl From<polaris_store::DbError> for AppError {
    fn from(e: polaris_store::DbError) -> Self {
        AppError::Unavailable(format!("postgres: {e}"))
    }
}

impl AppError {
    pub fn status(&self) -> u16 {
        self.parts().0
    }

    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    /// What the client is told, and, for an internal error, the id it was logged under. Internals are logged here
    /// and never shown: a dependency's failure is a stable sentence, an internal error names its correlation id.
    pub fn public_detail(&self) -> (String, Option<uuid::Uuid>) {
        match self {
            AppError::Unavailable(internal) => {
                tracing::error!(error = %internal, "request failed on a dependency");
                ("a service Polaris depends on is unavailable; retry later".to_owned(), None)
            }
            AppError::Internal(internal) => {
                let id = uuid::Uuid::new_v4();
                tracing::error!(error = %internal, correlation_id = %id, "internal error");
                (format!("Polaris failed on this request; report correlation id {id}"), Some(id))
            }
            other => (other.to_string(), None),
        }
    }

    /// The request field the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::Validation { field, .. } | AppError::Unprocessable { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// Whether the request was refused for what it asked (a client error) rather than failed.
    pub fn is_refusal(&self) -> bool {
        (400..500).contains(&self.status())
    }
}
