//! The audit log and idempotency keys over HTTP: one middleware around every mutating request. What an entry
//! holds, how keys are claimed and answers stored, and the entry's writing are the application layer's
//! (`polaris_app::audit`); this side knows HTTP: which route is which command, the request's hash, and turning
//! a stored answer back into a response.

use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
pub use polaris_app::audit::IDEMPOTENCY_KEY_PATTERN;
use polaris_app::audit::{self, AuditPage, AuditQuery, AuditSlot, IdempotencyClaim, RequestFacts};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, AppError, Problem, ProblemCode};
use crate::extract::ApiQuery;

/// The caller this middleware already authenticated (keyed requests), for the `Caller` extractor.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Caller);

/// The request id `metrics::track` assigned.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn is_mutating(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// The operation id of a route, the `command` of its audit entries; `None` for a method the route does not
/// serve (answered `405` and neither audited nor keyed). Read from the routes' own registration.
fn command_name(method: &Method, route: &str) -> Option<&'static str> {
    crate::openapi::commands().get(&(method.as_str().to_owned(), route.to_owned())).copied()
}

/// Which client sent the request: `X-Polaris-Channel` (the CLI and dashboard set it), else `api`.
fn channel(headers: &HeaderMap) -> String {
    match headers.get("x-polaris-channel").and_then(|v| v.to_str().ok()) {
        Some(c @ ("cli" | "dashboard" | "api")) => c.to_owned(),
        _ => "api".to_owned(),
    }
}

/// What makes two requests the same request: method, path, query, the headers that change their meaning
/// (`If-Match`, `Content-Type`) and the body.
fn request_hash(parts: &axum::http::request::Parts, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [
        parts.method.as_str().as_bytes(),
        parts.uri.path().as_bytes(),
        parts.uri.query().unwrap_or("").as_bytes(),
        parts.headers.get(header::IF_MATCH).map_or(&b"-"[..], |v| v.as_bytes()),
        parts.headers.get(header::CONTENT_TYPE).map_or(&b"-"[..], |v| v.as_bytes()),
    ] {
        h.update(part);
        h.update([0]);
    }
    h.update(body);
    hex::encode(h.finalize())
}

/// The first response for this key, once recorded, as HTTP.
async fn replay(state: &AppState, org: Uuid, claim: &IdempotencyClaim) -> Result<Option<Response>, ApiError> {
    let Some(answer) = audit::stored_answer(&state.app.pool, org, claim).await? else { return Ok(None) };
    let status = StatusCode::from_u16(answer.status).map_err(|e| AppError::Internal(e.to_string()))?;
    let mut resp = match answer.body {
        Some(body) => (status, Json(body)).into_response(),
        None => status.into_response(),
    };
    if let Some(loc) = answer.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(Some(resp))
}

async fn remember(state: &AppState, org: Uuid, claim: &IdempotencyClaim, resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::from(AppError::Internal("response body unreadable".into())).into_response();
    };
    let answer = audit::StoredAnswer {
        status: parts.status.as_u16(),
        body: serde_json::from_slice(&bytes).ok(),
        location: parts.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned),
    };
    audit::remember_answer(&state.app.pool, org, claim, answer).await;
    Response::from_parts(parts, Body::from(bytes))
}

/// Runs a keyed request once: the first response for `(org, key)` is stored and answered again to every
/// repeat. True in the second place when this answer is a replay.
async fn idempotent(state: &AppState, org: Uuid, key: String, req: Request, next: Next) -> (Response, bool) {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, crate::BODY_LIMIT_BYTES).await.unwrap_or_default();
    let claim = IdempotencyClaim { key, request_hash: request_hash(&parts, &bytes) };
    match replay(state, org, &claim).await {
        Err(e) => (e.into_response(), false),
        Ok(Some(resp)) => (resp, true),
        Ok(None) => {
            let mut req = Request::from_parts(parts, Body::from(bytes));
            req.extensions_mut().insert(claim.clone());
            let resp = next.run(req).await;
            if resp.status().is_success() {
                return (remember(state, org, &claim, resp).await, false);
            }
            // A concurrent request with the same key may have won the race: answer as it did.
            match replay(state, org, &claim).await {
                Ok(Some(replayed)) => (replayed, true),
                Ok(None) => (resp, false),
                Err(e) => (e.into_response(), false),
            }
        }
    }
}

/// The middleware: idempotency, then the handler, then the audit entry.
pub async fn mutations(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !is_mutating(req.method()) || !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let Some(command) = command_name(&method, &route) else { return next.run(req).await };
    let resource = req.uri().path().to_owned();
    let request_id =
        req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_else(|| Uuid::new_v4().to_string());
    let channel = channel(req.headers());
    let slot = AuditSlot::default();
    let key_header = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    slot.update(|d| {
        d.request = Some(RequestFacts {
            channel: channel.clone(),
            request_id: request_id.clone(),
            method: method.as_str().to_owned(),
            path: resource.clone(),
            command,
            idempotency_key: key_header,
        })
    });
    let mut req = req;
    req.extensions_mut().insert(slot.clone());
    let mut key_used = None;
    let mut deduplicated = false;

    let key = req.headers().contains_key("idempotency-key");
    let resp = if !key {
        next.run(req).await
    } else {
        let dry_run = req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "dry_run=true"));
        match state.app.authenticate(crate::auth::authorization(req.headers())).await {
            // Let the handler give the 401 (and it is not audited: no org).
            Err(_) => next.run(req).await,
            Ok(caller) => {
                let org = caller.org_id.as_uuid();
                slot.update(|d| d.caller = Some((org, caller.actor(), caller.token_id)));
                // The handler's `Caller` extractor takes this one instead of looking the token up again.
                req.extensions_mut().insert(Authenticated(caller));
                match audit::idempotency_key(req.headers().get("idempotency-key").map(|v| v.as_bytes())) {
                    Err(e) => ApiError::from(e).into_response(),
                    Ok(_) if dry_run => next.run(req).await,
                    Ok(None) => next.run(req).await,
                    Ok(Some(key)) => {
                        key_used = Some(key.clone());
                        let (resp, replayed) = idempotent(&state, org, key, req, next).await;
                        deduplicated = replayed;
                        resp
                    }
                }
            }
        }
    };

    let code = resp.extensions().get::<ProblemCode>().map(|c| c.0);
    audit::finish(&state.app.pool, &slot, resp.status().as_u16(), code, deduplicated, key_used.as_deref()).await;
    resp
}

/// The org's audit log, oldest first.
#[utoipa::path(
    get, path = "/v1/audit", operation_id = "audit_list", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "Audit entries, oldest first", body = AuditPage),
        (status = 400, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    Ok(Json(audit::list(&state.app, &caller, q).await?))
}
