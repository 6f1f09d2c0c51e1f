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
