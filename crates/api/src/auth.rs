//! The caller of an HTTP request: its `Authorization: Bearer` token, authenticated and admitted by the
//! application layer (`polaris_app::caller`), bound to the request's audit entry and idempotency claim.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use polaris_app::audit::{AuditSlot, IdempotencyClaim};
pub use polaris_app::caller::{Caller, Role, hash_token, new_token_secret, store_token};

use crate::AppState;
use crate::audit::Authenticated;
use crate::error::ApiError;

/// The request's `Authorization` value (one that is not text reads as absent: no token).
pub fn authorization(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let audit = parts.extensions.get::<AuditSlot>().cloned();
        let idempotency = parts.extensions.get::<IdempotencyClaim>().cloned();
        if let Some(Authenticated(caller)) = parts.extensions.get::<Authenticated>() {
            return Ok(caller.clone().admit(audit, idempotency, &state.app.rate_limiter)?);
        }
        let address = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|axum::extract::ConnectInfo(addr)| addr.ip());
        Ok(state.app.caller(authorization(&parts.headers), address, audit, idempotency).await?)
    }
}
