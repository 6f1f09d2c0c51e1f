//! Policy bundles: versioned per org, never changed once published.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One published bundle version, its rules as stored (JSON of the domain's `PolicyRules`).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct BundleRow {
    pub version: i64,
    pub rules: serde_json::Value,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Version `version` of the org's bundle, or its newest when `None`.
pub async fn bundle(pool: &PgPool, org: Uuid, version: Option<i64>) -> Result<Option<BundleRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT version, rules, created_by, created_at FROM policy_bundles WHERE org_id = $1 \
         AND ($2::bigint IS NULL OR version = $2) ORDER BY version DESC LIMIT 1",
    )
    .bind(org)
    .bind(version)
    .fetch_optional(pool)
    .await
}

/// Publishes `rules` as version `version` of the org's bundle; false when that version exists already (another
/// publication won).
pub async fn insert(
    conn: &mut PgConnection,
    org: Uuid,
    version: i64,
    rules: &serde_json::Value,
    by: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO policy_bundles (org_id, version, rules, created_by) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (org_id, version) DO NOTHING",
    )
    .bind(org)
    .bind(version)
    .bind(rules)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() > 0)
}

/// Publishes `rules` as the org's next version, whatever it is (development bootstrap and tests).
pub async fn append(pool: &PgPool, org: Uuid, rules: &serde_json::Value, by: &str) -> Result<i64, sqlx::Error> {
    let (version,): (i64,) = sqlx::query_as(
        "INSERT INTO policy_bundles (org_id, version, rules, created_by) \
         SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3 FROM policy_bundles WHERE org_id = $1 RETURNING version",
    )
    .bind(org)
    .bind(rules)
    .bind(by)
    .fetch_one(pool)
    .await?;
    Ok(version)
}
