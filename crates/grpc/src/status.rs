//! The gRPC door's one translation of the application error (SPEC.md §2b): a `google.rpc.Status` whose
//! `ErrorInfo.reason` is the REST code, with `BadRequest` for validation and policy violations,
//! `PreconditionFailure` for `VERSION_CONFLICT` and `RetryInfo` for `RATE_LIMITED` and an unavailable dependency.

use std::collections::HashMap;
use std::time::Duration;

use polaris_app::AppError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every Polaris error.
pub const DOMAIN: &str = "polaris.dev";

/// The gRPC code of an application error: 400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED,
/// 404 NOT_FOUND, 409 ABORTED (version) or FAILED_PRECONDITION (state), 422 FAILED_PRECONDITION (policy, state)
/// or INVALID_ARGUMENT (a request that contradicts itself), 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, 500 INTERNAL.
pub fn code(e: &AppError) -> Code {
    match (e.status(), e.code()) {
        (400 | 413 | 415, _) => Code::InvalidArgument,
        (401, _) => Code::Unauthenticated,
        (403, _) => Code::PermissionDenied,
        (404, _) => Code::NotFound,
        (405, _) => Code::Unimplemented,
        (409, "VERSION_CONFLICT" | "IDEMPOTENCY_KEY_IN_PROGRESS") => Code::Aborted,
        (409, _) => Code::FailedPrecondition,
        (422, "IDEMPOTENCY_KEY_REUSED" | "IF_MATCH_DISAGREES" | "INVALID_POLICY") => Code::InvalidArgument,
        (422, _) => Code::FailedPrecondition,
        (429, _) => Code::ResourceExhausted,
        (503, _) => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// The status a client receives for `e`.
pub fn status(e: &AppError) -> Status {
    let (message, correlation_id) = e.public_detail();
    let mut metadata = HashMap::new();
    metadata.insert("status".to_owned(), e.status().to_string());
    if let Some(field) = e.field() {
        metadata.insert("field".to_owned(), field.to_owned());
    }
    if let Some(id) = correlation_id {
        metadata.insert("correlation_id".to_owned(), id.to_string());
    }
    match e {
        AppError::VersionConflict { current, .. } => {
            metadata.insert("current_version".to_owned(), current.to_string());
        }
        AppError::OperationInProgress(id) => {
            metadata.insert("operation_id".to_owned(), id.to_string());
        }
        _ => {}
    }
    let mut details = ErrorDetails::with_error_info(e.code(), DOMAIN, metadata);
    match e {
        AppError::Validation { detail, field } => {
            details.add_bad_request_violation(field.clone().unwrap_or_default(), detail.clone());
        }
        AppError::Unprocessable { detail, field: Some(field), .. } => {
            details.add_bad_request_violation(field.clone(), detail.clone());
        }
        AppError::PolicyViolation(violations) => {
            for v in violations {
                details.add_bad_request_violation(v.field.clone(), format!("{} ({})", v.message, v.policy));
            }
        }
        AppError::VersionConflict { expected, current } => {
            details.add_precondition_failure_violation(
                "VERSION",
                "expected_version",
                format!("expected version {expected}, the resource is at {current}"),
            );
        }
        AppError::RateLimited(secs) => {
            details.set_retry_info(Some(Duration::from_secs(*secs)));
        }
        AppError::Unavailable(_) => {
            details.set_retry_info(Some(Duration::from_secs(1)));
        }
        _ => {}
    }
    Status::with_error_details(code(e), message, details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polaris_app::error::ViolationView;

    fn details(e: AppError) -> (Code, ErrorDetails) {
        let s = status(&e);
        (s.code(), s.get_error_details())
    }

    #[test]
    fn every_error_carries_its_rest_code_as_error_info() {
        let cases = [
            (AppError::validation("bad", Some("name")), Code::InvalidArgument, "VALIDATION_FAILED"),
            (AppError::Unauthenticated, Code::Unauthenticated, "UNAUTHENTICATED"),
            (AppError::Forbidden, Code::PermissionDenied, "FORBIDDEN"),
            (AppError::NotFound("cluster"), Code::NotFound, "NOT_FOUND"),
            (AppError::Conflict("taken".into()), Code::FailedPrecondition, "ALREADY_EXISTS"),
            (AppError::VersionConflict { expected: 1, current: 2 }, Code::Aborted, "VERSION_CONFLICT"),
            (AppError::OperationInProgress(uuid::Uuid::nil()), Code::FailedPrecondition, "OPERATION_IN_PROGRESS"),
            (AppError::IdempotencyKeyReused, Code::InvalidArgument, "IDEMPOTENCY_KEY_REUSED"),
            (AppError::IdempotencyKeyInProgress, Code::Aborted, "IDEMPOTENCY_KEY_IN_PROGRESS"),
            (AppError::RateLimited(3), Code::ResourceExhausted, "RATE_LIMITED"),
            (AppError::Unavailable("pg down".into()), Code::Unavailable, "DEPENDENCY_UNAVAILABLE"),
            (AppError::Internal("bug".into()), Code::Internal, "INTERNAL"),
        ];
        for (e, code, reason) in cases {
            let (got, details) = details(e);
            assert_eq!(got, code, "{reason}");
            let info = details.error_info().expect("ErrorInfo");
            assert_eq!((info.reason.as_str(), info.domain.as_str()), (reason, DOMAIN));
        }
    }

    #[test]
    fn the_details_say_what_to_fix_or_when_to_retry() {
        let (_, d) = details(AppError::RateLimited(3));
        assert_eq!(d.retry_info().and_then(|r| r.retry_delay), Some(Duration::from_secs(3)));
        let (_, d) = details(AppError::VersionConflict { expected: 1, current: 2 });
        assert_eq!(d.precondition_failure().expect("PreconditionFailure").violations[0].r#type, "VERSION");
        assert_eq!(d.error_info().expect("info").metadata.get("current_version").map(String::as_str), Some("2"));
        let violation = |field: &str| ViolationView {
            policy: "brokers".into(),
            policy_version: 1,
            field: field.into(),
            constraint: "3..5".into(),
            actual: "9".into(),
            message: "too many".into(),
        };
        let (code, d) = details(AppError::PolicyViolation(vec![violation("brokers"), violation("region")]));
        assert_eq!(code, Code::FailedPrecondition);
        let fields: Vec<&str> =
            d.bad_request().expect("BadRequest").field_violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["brokers", "region"]);
        let (_, d) = details(AppError::Internal("secret detail".into()));
        assert!(d.error_info().expect("info").metadata.contains_key("correlation_id"));
    }

    #[test]
    fn internals_never_reach_the_client() {
        for e in [AppError::Internal("secret detail".into()), AppError::Unavailable("secret detail".into())] {
            assert!(!status(&e).message().contains("secret detail"));
        }
    }
}
