//! The version a caller says it saw: `expected_version` in the request, or, over REST, `If-Match`. One rule for
//! clusters, topics and policies.

use crate::error::AppError;

/// The expected version of a change: `if_match` (`"<version>"` or `W/"<version>"`, as sent; gRPC has none) or
/// `expected_version` from the body; both must agree.
pub fn expected_version(if_match: Option<&str>, body: Option<u64>) -> Result<Option<u64>, AppError> {
    let header = match if_match {
        None => None,
        Some(v) => {
            let raw = v.trim();
            let raw = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
            Some(raw.parse::<u64>().map_err(|_| {
                AppError::validation("If-Match must be a quoted version, for example \"3\"", Some("If-Match"))
            })?)
        }
    };
    match (header, body) {
        (Some(h), Some(b)) if h != b => Err(AppError::Unprocessable {
            code: "IF_MATCH_DISAGREES",
            detail: format!("If-Match says version {h}, expected_version says {b}; send one, or the same in both"),
            field: Some("expected_version".into()),
        }),
        (h, b) => Ok(h.or(b)),
    }
}
