//! Conditional requests: the version a caller saw (`If-Match`, or `expected_version` in the body) and the `ETag`
//! every versioned resource answers with. One rule for clusters, topics and policies.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::error::ApiError;

/// `If-Match: "<version>"` (or `W/"<version>"`), or `expected_version` in the body; both must agree.
pub fn expected_version(headers: &HeaderMap, body: Option<u64>) -> Result<Option<u64>, ApiError> {
    let header = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => {
            let raw = v.to_str().unwrap_or("").trim();
            let raw = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
            Some(raw.parse::<u64>().map_err(|_| {
                ApiError::validation("If-Match must be a quoted version, for example \"3\"", Some("If-Match"))
            })?)
        }
    };
    match (header, body) {
        (Some(h), Some(b)) if h != b => Err(ApiError::Unprocessable {
            code: "IF_MATCH_DISAGREES",
            detail: format!("If-Match says version {h}, expected_version says {b}; send one, or the same in both"),
            field: Some("expected_version".into()),
        }),
        (h, b) => Ok(h.or(b)),
    }
}

/// `ETag: "<version>"`.
pub fn etag(version: i64) -> Result<HeaderMap, ApiError> {
    let mut headers = HeaderMap::new();
    let v = HeaderValue::from_str(&format!("\"{version}\"")).map_err(|e| ApiError::Internal(e.to_string()))?;
    headers.insert(header::ETAG, v);
    Ok(headers)
}
