//! The audit log and idempotency keys: one middleware around every mutating request.
//!
//! Every `POST`/`PUT`/`PATCH`/`DELETE` under `/v1` writes one audit entry (accepted, rejected, deduplicated,
//! dry run, or error) with actor, org, channel, request id, command, outcome and, when a policy judged it, the
//! bundle version and its violations. Requests without a valid token have no org and are not audited (they
//! are counted in the request metrics).
//!
//! `Idempotency-Key`: the same key and the same request (method, path, query, body) answer the first response
//! again and append nothing; the same key with another request is `422 IDEMPOTENCY_KEY_REUSED`. Commands that
//! append events store the key in the events' transaction (see `polaris_store::repository`); the response is
//! filled in right after.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use polaris_store::db;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, Problem, ProblemCode, ViolationView};
use crate::extract::ApiQuery;

/// What the handler learnt about a request, for its audit entry.
#[derive(Clone, Debug, Default)]
pub struct AuditDraft {
    /// Org, actor and token id, once the token is known.
    pub caller: Option<(Uuid, String, Uuid)>,
    pub policy_version: Option<i64>,
    pub violations: Vec<ViolationView>,
    pub dry_run: bool,
    /// The resource the request created or changed, when the path does not name it (a create).
    pub resource: Option<String>,
    /// What the middleware knows of the request before the handler runs.
    pub request: Option<RequestFacts>,
    /// The id of the entry a command wrote in its events' transaction (see `Caller::metadata_map`): the middleware
    /// writes no second one.
    pub written_in_transaction: Option<Uuid>,
}

/// The parts of an audit entry the middleware knows before the handler runs.
#[derive(Clone, Debug)]
pub struct RequestFacts {
    pub channel: String,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub command: &'static str,
    pub idempotency_key: Option<String>,
}

impl AuditDraft {
    /// The `accepted` entry of a command about to append its events, answered with `status`; `None` outside an
    /// audited request. The entry commits with the events, so it exists even if the process dies before it answers.
    pub fn accepted_record(&self, policy_version: Option<i64>) -> Option<polaris_store::AuditRecord> {
        let (org_id, actor, _) = self.caller.clone()?;
        let facts = self.request.clone()?;
        let status = if facts.command == "clusters_update" { 200 } else { 202 };
        Some(polaris_store::AuditRecord {
            id: Uuid::new_v4(),
            org_id,
            actor,
            channel: facts.channel,
            request_id: facts.request_id,
            method: facts.method,
            resource: self.resource.clone().unwrap_or(facts.path),
            command: facts.command.to_owned(),
            status,
            policy_version: policy_version.or(self.policy_version),
            idempotency_key: facts.idempotency_key,
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct AuditSlot(Arc<Mutex<AuditDraft>>);

impl AuditSlot {
    pub fn update(&self, f: impl FnOnce(&mut AuditDraft)) {
        if let Ok(mut d) = self.0.lock() {
            f(&mut d);
        }
    }

    pub fn get(&self) -> AuditDraft {
        self.take()
    }

    fn take(&self) -> AuditDraft {
        self.0.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

/// Claims the request's `Idempotency-Key` (if it has one) in the transaction of an effect that appends no events
/// (orgs, tokens, policies, targets), so the key commits exactly when the effect does: a retry after a crash
/// between the commit and the answer is never executed twice. The response is filled in by the middleware.
pub async fn claim_key(conn: &mut polaris_store::Connection, caller: &Caller) -> Result<(), ApiError> {
    let Some(claim) = &caller.idempotency else { return Ok(()) };
    if db::audit::claim_key(conn, caller.org_id.as_uuid(), &claim.key, &claim.request_hash).await? {
        Ok(())
    } else {
        // A concurrent request with this key got there first: the middleware answers as it does.
        Err(ApiError::IdempotencyKeyInProgress)
    }
}

/// A request's `Idempotency-Key` and the hash of what it asked.
#[derive(Clone, Debug)]
pub struct IdempotencyClaim {
    pub key: String,
    pub request_hash: String,
}

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
/// serve (answered `405` and neither audited nor keyed).
fn command_name(method: &Method, route: &str) -> Option<&'static str> {
    let name = match (method.as_str(), route) {
        ("POST", "/v1/clusters") => "clusters_create",
        ("PATCH", "/v1/clusters/{id}") => "clusters_update",
        ("DELETE", "/v1/clusters/{id}") => "clusters_delete",
        ("POST", "/v1/clusters/{id}/scale") => "clusters_scale",
        ("POST", "/v1/clusters/{id}/upgrade") => "clusters_upgrade",
        ("POST", "/v1/clusters/{id}/topics") => "topics_create",
        ("PATCH", "/v1/clusters/{id}/topics/{name}") => "topics_update",
        ("DELETE", "/v1/clusters/{id}/topics/{name}") => "topics_delete",
        ("PUT", "/v1/policies") => "policies_update",
        ("POST", "/v1/policies/evaluate") => "policies_evaluate",
        ("POST", "/v1/targets") => "targets_create",
        ("POST", "/v1/targets/{id}/grants") => "targets_grant",
        ("POST", "/v1/orgs") => "orgs_create",
        ("POST", "/v1/tokens") => "tokens_create",
        ("DELETE", "/v1/tokens/{id}") => "tokens_delete",
        ("POST", "/v1/admin/verify") => "admin_verify",
        ("POST", "/v1/admin/replay") => "admin_replay",
        _ => return None,
    };
    Some(name)
}

/// Which client sent the request: `X-Polaris-Channel` (the CLI and dashboard set it), else `api`.
fn channel(headers: &HeaderMap) -> String {
    match headers.get("x-polaris-channel").and_then(|v| v.to_str().ok()) {
        Some(c @ ("cli" | "dashboard" | "api")) => c.to_owned(),
        _ => "api".to_owned(),
    }
}

/// What the OpenAPI document says an `Idempotency-Key` is: visible ASCII, inner spaces allowed, 1 to 255.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]([ -~]{0,253}[!-~])?$";

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key = v.to_str().unwrap_or("");
    let visible = |c: char| c.is_ascii_graphic();
    let valid = (1..=255).contains(&key.len())
        && key.chars().all(|c| c == ' ' || visible(c))
        && key.starts_with(visible)
        && key.ends_with(visible);
    if !valid {
        return Err(ApiError::validation(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (spaces only inside)",
            Some("Idempotency-Key"),
        ));
    }
    Ok(Some(key.to_owned()))
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

/// The first response for this key, once recorded (a concurrent first request may still be finishing).
async fn replay(state: &AppState, org: Uuid, key: &str, hash: &str) -> Result<Option<Response>, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let Some(s) = db::audit::stored_response(&state.pool, org, key).await? else { return Ok(None) };
        if s.request_hash != hash {
            return Err(ApiError::IdempotencyKeyReused);
        }
        if let Some(status) = s.status {
            let status = StatusCode::from_u16(status as u16).map_err(|e| ApiError::Internal(e.to_string()))?;
            let mut resp = match s.body {
                Some(body) => (status, Json(body)).into_response(),
                None => status.into_response(),
            };
            if let Some(loc) = s.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                resp.headers_mut().insert(header::LOCATION, loc);
            }
            resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(Some(resp));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ApiError::IdempotencyKeyInProgress);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn remember(state: &AppState, org: Uuid, claim: &IdempotencyClaim, resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::Internal("response body unreadable".into()).into_response();
    };
    let mut json: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    // A token's secret is shown once and never stored: the stored answer (and so a replay) goes without it.
    if let Some(serde_json::Value::Object(body)) = json.as_mut() {
        body.remove("secret");
    }
    let location = parts.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let status = i32::from(parts.status.as_u16());
    let saved = db::audit::remember_response(
        &state.pool,
        org,
        &claim.key,
        &claim.request_hash,
        status,
        json.as_ref(),
        location.as_deref(),
    )
    .await;
    if let Err(e) = saved {
        tracing::warn!(error = %e, "idempotency response not saved; a retry with this key will wait, then get 409");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Runs a keyed request once: the first response for `(org, key)` is stored and answered again to every
/// repeat. True in the second place when this answer is a replay.
async fn idempotent(state: &AppState, org: Uuid, key: String, req: Request, next: Next) -> (Response, bool) {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, crate::BODY_LIMIT_BYTES).await.unwrap_or_default();
    let claim = IdempotencyClaim { key, request_hash: request_hash(&parts, &bytes) };
    match replay(state, org, &claim.key, &claim.request_hash).await {
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
            match replay(state, org, &claim.key, &claim.request_hash).await {
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
        match crate::auth::authenticate(&state.pool, req.headers()).await {
            // Let the handler give the 401 (and it is not audited: no org).
            Err(_) => next.run(req).await,
            Ok(caller) => {
                let org = caller.org_id.as_uuid();
                slot.update(|d| d.caller = Some((org, caller.actor(), caller.token_id)));
                // The handler's `Caller` extractor takes this one instead of looking the token up again.
                req.extensions_mut().insert(Authenticated(caller));
                match idempotency_key(req.headers()) {
                    Err(e) => e.into_response(),
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

    let draft = slot.take();
    let Some((org, actor, _token)) = draft.caller.clone() else { return resp };
    let status = resp.status();
    let outcome = if deduplicated {
        "deduplicated"
    } else if status.is_success() {
        if draft.dry_run { "dry_run" } else { "accepted" }
    } else if status.is_server_error() {
        "error"
    } else {
        "rejected"
    };
    if let Some(id) = draft.written_in_transaction {
        // The command wrote its entry with its events. If it answered an error anyway, the entry exists only if
        // the transaction committed (a failure after the commit); otherwise this request still needs one.
        let committed = outcome == "accepted" || db::audit::entry_exists(&state.pool, id).await.unwrap_or(false);
        if committed {
            return resp;
        }
    }
    let code = resp.extensions().get::<ProblemCode>().map(|c| c.0);
    let violations = serde_json::to_value(&draft.violations).unwrap_or_default();
    let entry = db::audit::NewEntry {
        org_id: org,
        actor: &actor,
        channel: &channel,
        request_id: &request_id,
        method: method.as_str(),
        resource: draft.resource.as_deref().unwrap_or(&resource),
        command,
        outcome,
        status: i32::from(status.as_u16()),
        code,
        policy_version: draft.policy_version,
        violations,
        idempotency_key: key_used.as_deref(),
    };
    let written = db::audit::write_entry(&state.pool, entry).await;
    if let Err(e) = written {
        tracing::error!(error = %e, request_id, "audit entry not written");
    }
    resp
}

/// One audited request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    pub org_id: Uuid,
    /// The token that made the request (never its secret).
    pub actor: String,
    /// `api`, `cli` or `dashboard`.
    pub channel: String,
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub method: String,
    /// The request path: the resource the command addressed.
    pub resource: String,
    /// The operation id of the endpoint, for example `clusters_scale`.
    pub command: String,
    /// `accepted`, `rejected`, `deduplicated`, `dry_run` or `error`.
    pub outcome: String,
    pub status: i32,
    /// The problem code of a refused request.
    pub code: Option<String>,
    /// The policy bundle version that judged the command, when one did.
    pub policy_version: Option<i64>,
    pub violations: Vec<ViolationView>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries by this actor.
    #[param(pattern = "^[^\\u0000]*$")]
    pub actor: Option<String>,
    /// Only entries whose resource path contains this (a cluster id, a topic name).
    #[param(pattern = "^[^\\u0000]*$")]
    pub resource: Option<String>,
    /// Only entries at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only entries before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// `accepted`, `rejected`, `deduplicated`, `dry_run` or `error`.
    #[param(schema_with = outcome_schema)]
    pub outcome: Option<String>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
    /// From the previous page's `next_page_token`.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub page_token: Option<String>,
}

fn outcome_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["accepted", "rejected", "deduplicated", "dry_run", "error"]))
        .build()
        .into()
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
    caller.require(Role::Viewer)?;
    if let Some(o) = &q.outcome
        && !["accepted", "rejected", "deduplicated", "dry_run", "error"].contains(&o.as_str())
    {
        return Err(ApiError::validation(
            "outcome must be accepted, rejected, deduplicated, dry_run or error",
            Some("outcome"),
        ));
    }
    let page_size = crate::paging::page_size(q.page_size)?;
    let after = match crate::paging::cursor(q.page_token.as_deref(), polaris_store::CursorKind::Position)? {
        Some(polaris_store::Cursor::Position(p)) => p,
        _ => 0,
    };
    let filter = db::audit::EntryFilter {
        actor: q.actor.as_deref(),
        resource: q.resource.as_deref(),
        from: q.from,
        to: q.to,
        outcome: q.outcome.as_deref(),
    };
    let rows =
        db::audit::entries(&state.pool, caller.org_id.as_uuid(), filter, after, i64::from(page_size) + 1).await?;
    let more = rows.len() > page_size as usize;
    let mut items = Vec::with_capacity(rows.len());
    let mut last = None;
    for (position, json) in rows.into_iter().take(page_size as usize) {
        last = Some(position);
        items.push(serde_json::from_value(json).map_err(|e| ApiError::Internal(format!("audit row: {e}")))?);
    }
    let next_page_token = if more { last.map(|p| polaris_store::Cursor::Position(p).encode()) } else { None };
    Ok(Json(AuditPage { items, next_page_token }))
}
