//! The audit log (one entry per request that tried to change something) and the idempotency keys that make a
//! repeated request answer like the first.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Claims `(org, key)` for a request with this hash, in the transaction of the command it guards. False when a
/// request with this key got there first.
pub async fn claim_key(conn: &mut PgConnection, org: Uuid, key: &str, request_hash: &str) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query("INSERT INTO idempotency_keys (org_id, key, request_hash) VALUES ($1, $2, $3)")
        .bind(org)
        .bind(key)
        .bind(request_hash)
        .execute(conn)
        .await;
    match claimed {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23505") => Ok(false),
        Err(e) => Err(e),
    }
}

/// What is stored for a key: the request's hash, and the first response once it is recorded.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredResponse {
    pub request_hash: String,
    pub status: Option<i32>,
    pub body: Option<serde_json::Value>,
    pub location: Option<String>,
}

pub async fn stored_response(pool: &PgPool, org: Uuid, key: &str) -> Result<Option<StoredResponse>, sqlx::Error> {
    sqlx::query_as(
        "SELECT request_hash, response_status AS status, response_body AS body, response_location AS location \
         FROM idempotency_keys WHERE org_id = $1 AND key = $2",
    )
    .bind(org)
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// Records the first response for `(org, key)`; a later one, or one for another request hash, changes nothing.
pub async fn remember_response(
    pool: &PgPool,
    org: Uuid,
    key: &str,
    request_hash: &str,
    status: i32,
    body: Option<&serde_json::Value>,
    location: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO idempotency_keys (org_id, key, request_hash, response_status, response_body, response_location) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, key) DO UPDATE SET \
         response_status = excluded.response_status, response_body = excluded.response_body, \
         response_location = excluded.response_location \
         WHERE idempotency_keys.request_hash = excluded.request_hash AND idempotency_keys.response_status IS NULL",
    )
    .bind(org)
    .bind(key)
    .bind(request_hash)
    .bind(status)
    .bind(body)
    .bind(location)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether the audit entry `id` exists (a command writes its entry in its own transaction).
pub async fn entry_exists(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM audit_entries WHERE id = $1").bind(id).fetch_optional(pool).await?;
    Ok(found.is_some())
}

/// One audit entry to write.
#[derive(Clone, Debug)]
pub struct NewEntry<'a> {
    pub org_id: Uuid,
    pub actor: &'a str,
    pub channel: &'a str,
    pub request_id: &'a str,
    pub method: &'a str,
    pub resource: &'a str,
    pub command: &'a str,
    pub outcome: &'a str,
    pub status: i32,
    pub code: Option<&'a str>,
    pub policy_version: Option<i64>,
    pub violations: serde_json::Value,
    pub idempotency_key: Option<&'a str>,
}

pub async fn write_entry(pool: &PgPool, e: NewEntry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_entries (id, org_id, actor, channel, at, request_id, method, resource, command, outcome, \
         status, code, policy_version, violations, idempotency_key) \
         VALUES ($1, $2, $3, $4, now(), $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(Uuid::new_v4())
    .bind(e.org_id)
    .bind(e.actor)
    .bind(e.channel)
    .bind(e.request_id)
    .bind(e.method)
    .bind(e.resource)
    .bind(e.command)
    .bind(e.outcome)
    .bind(e.status)
    .bind(e.code)
    .bind(e.policy_version)
    .bind(sqlx::types::Json(e.violations))
    .bind(e.idempotency_key)
    .execute(pool)
    .await?;
    Ok(())
}

/// What the org's audit log is narrowed to; `None` matches everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct EntryFilter<'a> {
    pub actor: Option<&'a str>,
    /// A substring of the resource.
    pub resource: Option<&'a str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub outcome: Option<&'a str>,
}

/// Up to `limit` of the org's entries after position `after`, in order: `(position, the entry as JSON)`.
pub async fn entries(
    pool: &PgPool,
    org: Uuid,
    filter: EntryFilter<'_>,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, serde_json::Value)>, sqlx::Error> {
    let rows: Vec<(i64, sqlx::types::Json<serde_json::Value>)> = sqlx::query_as(
        "SELECT position, to_jsonb(a) - 'position' FROM audit_entries a WHERE org_id = $1 AND position > $2 \
         AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR strpos(resource, $4) > 0) \
         AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6) \
         AND ($7::text IS NULL OR outcome = $7) ORDER BY position LIMIT $8",
    )
    .bind(org)
    .bind(after)
    .bind(filter.actor)
    .bind(filter.resource)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.outcome)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(p, j)| (p, j.0)).collect())
}
