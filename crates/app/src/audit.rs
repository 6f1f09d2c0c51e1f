//! The audit log and idempotency keys, the same for every front door.
//!
//! Every mutating request writes one audit entry (accepted, rejected, deduplicated, dry run, or error) with actor,
//! org, channel, request id, command, outcome and, when a policy judged it, the bundle version and its violations.
//! The entry names the command by its REST operation id and the resource by its REST path, whatever the channel,
//! so a gRPC request's entry differs from the same REST request's only by `channel`. Requests without a valid
//! token have no org and are not audited.
//!
//! `Idempotency-Key`: the same key and the same request answer the first response again and append nothing; the
//! same key with another request is `422 IDEMPOTENCY_KEY_REUSED`. Commands that append events store the key in the
//! events' transaction (see `polaris_store::repository`); the response is filled in right after.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use polaris_store::db;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{AppError, ViolationView};

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
pub async fn claim_key(conn: &mut polaris_store::Connection, caller: &crate::caller::Caller) -> Result<(), AppError> {
    let Some(claim) = &caller.idempotency else { return Ok(()) };
    if db::audit::claim_key(conn, caller.org_id.as_uuid(), &claim.key, &claim.request_hash).await? {
        Ok(())
    } else {
        // A concurrent request with this key got there first: the middleware answers as it does.
        Err(AppError::IdempotencyKeyInProgress)
    }
}

/// A request's `Idempotency-Key` and the hash of what it asked.
#[derive(Clone, Debug)]
pub struct IdempotencyClaim {
    pub key: String,
    pub request_hash: String,
}

/// What the OpenAPI document says an `Idempotency-Key` is: visible ASCII, inner spaces allowed, 1 to 255.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]([ -~]{0,253}[!-~])?$";

/// An `Idempotency-Key` as sent (REST header or gRPC metadata), checked.
pub fn idempotency_key(raw: Option<&[u8]>) -> Result<Option<String>, AppError> {
    let Some(raw) = raw else { return Ok(None) };
    let key = std::str::from_utf8(raw).unwrap_or("");
    let visible = |c: char| c.is_ascii_graphic();
    let valid = (1..=255).contains(&key.len())
        && key.chars().all(|c| c == ' ' || visible(c))
        && key.starts_with(visible)
        && key.ends_with(visible);
    if !valid {
        return Err(AppError::validation(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (spaces only inside)",
            Some("Idempotency-Key"),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// The first answer stored for `(org, key)`.
#[derive(Clone, Debug)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: Option<serde_json::Value>,
    pub location: Option<String>,
}

/// The first answer for this key, once recorded (a concurrent first request may still be finishing): `None` when
/// the key is new, `IDEMPOTENCY_KEY_REUSED` when it was used for another request.
pub async fn stored_answer(
    pool: &polaris_store::Pool,
    org: Uuid,
    claim: &IdempotencyClaim,
) -> Result<Option<StoredAnswer>, AppError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let Some(s) = db::audit::stored_response(pool, org, &claim.key).await? else { return Ok(None) };
        if s.request_hash != claim.request_hash {
            return Err(AppError::IdempotencyKeyReused);
        }
        if let Some(status) = s.status {
            let status = u16::try_from(status).map_err(|e| AppError::Internal(e.to_string()))?;
            return Ok(Some(StoredAnswer { status, body: s.body, location: s.location }));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(AppError::IdempotencyKeyInProgress);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stores a successful first answer for its key. A token's secret and a Kafka user's credentials are shown once
/// and never stored: the stored answer (and so a replay) goes without them, and says so.
pub async fn remember_answer(
    pool: &polaris_store::Pool,
    org: Uuid,
    claim: &IdempotencyClaim,
    mut answer: StoredAnswer,
) {
    if let Some(serde_json::Value::Object(body)) = answer.body.as_mut() {
        body.remove("secret");
        crate::users::without_credentials(body);
    }
    let saved = db::audit::remember_response(
        pool,
        org,
        &claim.key,
        &claim.request_hash,
        i32::from(answer.status),
        answer.body.as_ref(),
        answer.location.as_deref(),
    )
    .await;
    if let Err(e) = saved {
        tracing::warn!(error = %e, "idempotency response not saved; a retry with this key will wait, then get 409");
    }
}

/// How a request ended, as its audit entry says.
pub fn outcome(status: u16, deduplicated: bool, dry_run: bool) -> &'static str {
    if deduplicated {
        "deduplicated"
    } else if (200..300).contains(&status) {
        if dry_run { "dry_run" } else { "accepted" }
    } else if status >= 500 {
        "error"
    } else {
        "rejected"
    }
}

/// Writes a request's audit entry, once it has answered `status` (with the problem `code` when refused), unless
/// the command already wrote it in its events' transaction.
pub async fn finish(
    pool: &polaris_store::Pool,
    slot: &AuditSlot,
    status: u16,
    code: Option<&str>,
    deduplicated: bool,
    key_used: Option<&str>,
) {
    let draft = slot.get();
    let Some((org, actor, _token)) = draft.caller.clone() else { return };
    let Some(facts) = draft.request.clone() else { return };
    let outcome = outcome(status, deduplicated, draft.dry_run);
    if let Some(id) = draft.written_in_transaction {
        // The command wrote its entry with its events. If it answered an error anyway, the entry exists only if
        // the transaction committed (a failure after the commit); otherwise this request still needs one.
        let committed = outcome == "accepted" || db::audit::entry_exists(pool, id).await.unwrap_or(false);
        if committed {
            return;
        }
    }
    let violations = serde_json::to_value(&draft.violations).unwrap_or_default();
    let entry = db::audit::NewEntry {
        org_id: org,
        actor: &actor,
        channel: &facts.channel,
        request_id: &facts.request_id,
        method: &facts.method,
        resource: draft.resource.as_deref().unwrap_or(&facts.path),
        command: facts.command,
        outcome,
        status: i32::from(status),
        code,
        policy_version: draft.policy_version,
        violations,
        idempotency_key: key_used,
    };
    if let Err(e) = db::audit::write_entry(pool, entry).await {
        tracing::error!(error = %e, request_id = facts.request_id, "audit entry not written");
    }
}

/// Every outcome an audit entry may record.
pub const OUTCOMES: [&str; 5] = ["accepted", "rejected", "deduplicated", "dry_run", "error"];

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
    #[schema(schema_with = crate::schema::audit_outcome_field)]
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
    #[param(schema_with = crate::schema::audit_outcome)]
    pub outcome: Option<String>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
    /// From the previous page's `next_page_token`.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub page_token: Option<String>,
}

/// The org's audit log, oldest first (viewer), a page at a time.
pub async fn list(app: &crate::App, caller: &crate::caller::Caller, q: AuditQuery) -> Result<AuditPage, AppError> {
    caller.require(crate::caller::Role::Viewer)?;
    if let Some(o) = &q.outcome
        && !OUTCOMES.contains(&o.as_str())
    {
        return Err(AppError::validation(
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
    let rows = db::audit::entries(&app.pool, caller.org_id.as_uuid(), filter, after, i64::from(page_size) + 1).await?;
    let more = rows.len() > page_size as usize;
    let mut items = Vec::with_capacity(rows.len());
    let mut last = None;
    for (position, json) in rows.into_iter().take(page_size as usize) {
        last = Some(position);
        items.push(serde_json::from_value(json).map_err(|e| AppError::Internal(format!("audit row: {e}")))?);
    }
    let next_page_token = if more { last.map(|p| polaris_store::Cursor::Position(p).encode()) } else { None };
    Ok(AuditPage { items, next_page_token })
}
