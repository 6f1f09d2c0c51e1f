//! Orgs and their API tokens. Tokens are stored as hashes only; the secret is never written here.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One row of `orgs`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrgRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Creates an org; `None` when one with this name exists.
pub async fn create_org(conn: &mut PgConnection, name: &str) -> Result<Option<OrgRow>, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO orgs (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id, name, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(name)
    .fetch_optional(conn)
    .await
}

/// Every org (at most 1,000), oldest first.
/// Ensures an org with this id exists (named `name` when it is created).
pub async fn ensure_org(pool: &PgPool, id: Uuid, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO orgs (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn orgs(pool: &PgPool) -> Result<Vec<OrgRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, created_at FROM orgs ORDER BY created_at, id LIMIT 1000").fetch_all(pool).await
}

pub async fn org_exists(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    let found: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM orgs WHERE id = $1").bind(id).fetch_optional(pool).await?;
    Ok(found.is_some())
}

/// One row of `api_tokens`, without its hash.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TokenRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const TOKEN_COLUMNS: &str = "id, org_id, name, role, created_at, revoked_at";

/// A new token, by the hash of its secret.
#[derive(Clone, Copy, Debug)]
pub struct NewToken<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: &'a str,
    pub role: &'a str,
    pub platform_admin: bool,
    pub token_hash: &'a [u8],
}

/// Stores a token (a repeat of the same hash changes nothing).
pub async fn insert_token(conn: impl sqlx::PgExecutor<'_>, t: NewToken<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_tokens (id, org_id, name, role, platform_admin, token_hash) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (token_hash) DO NOTHING",
    )
    .bind(t.id)
    .bind(t.org_id)
    .bind(t.name)
    .bind(t.role)
    .bind(t.platform_admin)
    .bind(t.token_hash)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn token(conn: &mut PgConnection, id: Uuid) -> Result<TokenRow, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1")).bind(id).fetch_one(conn).await
}

/// The org's tokens (at most 1,000), revoked ones included, oldest first.
pub async fn tokens(pool: &PgPool, org: Uuid) -> Result<Vec<TokenRow>, sqlx::Error> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE org_id = $1 ORDER BY created_at, id LIMIT 1000");
    sqlx::query_as(&sql).bind(org).fetch_all(pool).await
}

/// Revokes a token of the org (a repeat keeps the first time); false when the org has no such token.
pub async fn revoke_token(conn: &mut PgConnection, id: Uuid, org: Uuid) -> Result<bool, sqlx::Error> {
    let found: Option<(Uuid,)> = sqlx::query_as(
        "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 AND org_id = $2 RETURNING id",
    )
    .bind(id)
    .bind(org)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// Who a live (not revoked) token with this hash belongs to.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Bearer {
    pub id: Uuid,
    pub name: String,
    pub org_id: Uuid,
    pub role: String,
    pub platform_admin: bool,
    /// The org's current policy bundle version (0: none published), read in the same round trip.
    pub policy_version: i64,
    /// The placement epoch (`placement_epoch`), read in the same round trip.
    pub placement_epoch: i64,
}

pub async fn bearer(conn: impl sqlx::PgExecutor<'_>, token_hash: &[u8]) -> Result<Option<Bearer>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.id, t.name, t.org_id, t.role, t.platform_admin, \
         COALESCE((SELECT max(p.version) FROM policy_bundles p WHERE p.org_id = t.org_id), 0) AS policy_version, \
         (SELECT e.epoch FROM placement_epoch e) AS placement_epoch \
         FROM api_tokens t WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}
