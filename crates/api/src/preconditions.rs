//! Conditional requests over HTTP: the `If-Match` header (checked by `polaris_app::preconditions`) and the `ETag`
//! every versioned resource answers with.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::error::{ApiError, AppError};

/// The request's `If-Match`, as sent (a value that is not text reads as empty, which the check refuses).
pub fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).map(|v| v.to_str().unwrap_or(""))
}

/// `ETag: "<version>"`.
pub fn etag(version: i64) -> Result<HeaderMap, ApiError> {
    let mut headers = HeaderMap::new();
    let v = HeaderValue::from_str(&format!("\"{version}\"")).map_err(|e| AppError::Internal(e.to_string()))?;
    headers.insert(header::ETAG, v);
    Ok(headers)
}

/// The answer to a change of a versioned resource: `202` with the operation's `Location` when the change started
/// one, else `200` (nothing for Kafka to do); the resource's new version as `ETag` either way.
pub fn changed<T: serde::Serialize>(
    version: i64,
    operation: Option<uuid::Uuid>,
    body: T,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let mut headers = etag(version)?;
    let status = match operation {
        Some(id) => {
            headers.extend(crate::operations::location(id)?);
            axum::http::StatusCode::ACCEPTED
        }
        None => axum::http::StatusCode::OK,
    };
    Ok((status, headers, axum::Json(body)).into_response())
}
