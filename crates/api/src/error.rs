//! The REST door's one translation of the application error: RFC 9457 problem+json with the stable `code` the
//! application layer decided (`polaris_app::AppError`). Handlers return `Result<_, ApiError>`; only
//! `IntoResponse for ApiError` knows HTTP.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
pub use polaris_app::error::{AppError, ViolationView};
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

/// The stable code of an error response, left on the response for the audit log.
#[derive(Clone, Copy, Debug)]
pub struct ProblemCode(pub &'static str);

/// An application error on its way to an HTTP client.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl ApiError {
    pub fn validation(detail: impl Into<String>, field: Option<&str>) -> Self {
        ApiError(AppError::validation(detail, field))
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let (status, code, title) = e.parts();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (detail, correlation_id) = e.public_detail();
        let problem = Problem {
            problem_type: format!("https://polaris.dev/problems/{}", code.to_lowercase().replace('_', "-")),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            field: e.field().map(str::to_owned),
            current_version: match &e {
                AppError::VersionConflict { current, .. } => Some(*current),
                _ => None,
            },
            operation_id: match &e {
                AppError::OperationInProgress(id) => Some(*id),
                _ => None,
            },
            violations: match &e {
                AppError::PolicyViolation(v) => Some(v.clone()),
                _ => None,
            },
            correlation_id,
        };
        let mut resp = (status, Json(problem)).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        // A dependency being down is worth a retry; an internal error (a bug) carries no retry hint.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let AppError::RateLimited(secs) = &e {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        resp.extensions_mut().insert(ProblemCode(code));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parts(e: AppError) -> (StatusCode, HeaderMapLite, serde_json::Value) {
        let resp = ApiError(e).into_response();
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
            parts(AppError::Internal("stored event unreadable: secret detail".into())).await;
        assert_eq!((status, problem["code"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("INTERNAL")));
        assert_eq!(headers.retry_after, None, "retrying will not help");
        let id = problem["correlation_id"].as_str().expect("a correlation id");
        assert!(problem["detail"].as_str().expect("detail").contains(id), "{problem}");
        assert!(!problem.to_string().contains("secret detail"), "internals stay in the log: {problem}");
    }

    #[tokio::test]
    async fn only_an_unavailable_dependency_is_503_with_retry_after() {
        let (status, headers, problem) = parts(AppError::Unavailable("postgres: connection refused".into())).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("DEPENDENCY_UNAVAILABLE"))
        );
        assert_eq!(headers.retry_after.as_deref(), Some("1"));
        assert!(problem.get("correlation_id").is_none());
    }
}
