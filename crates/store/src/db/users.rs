//! The `kafka_users` read model as the API reads it. No credential is stored anywhere here: a row says which
//! generation of credentials is in force, and the password itself lives only in the user's Kubernetes Secret.

use chrono::{DateTime, Utc};
use polaris_domain::acl::{AclRule, UserQuotas};
use sqlx::PgPool;
use uuid::Uuid;

/// One row of `kafka_users`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub name: String,
    pub authentication: String,
    pub acls: sqlx::types::Json<Vec<AclRule>>,
    pub quotas: sqlx::types::Json<UserQuotas>,
    pub generation: i32,
    pub status: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, cluster_id, name, authentication, acls, quotas, generation, status, version, created_at, updated_at";

/// Up to `limit` of a cluster's users in name order, after the name `after`.
pub async fn list(pool: &PgPool, cluster: Uuid, after: Option<&str>, limit: i64) -> Result<Vec<UserRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM kafka_users WHERE cluster_id = $1 AND ($2::text IS NULL OR name > $2) \
         ORDER BY name LIMIT $3"
    );
    sqlx::query_as(&sql).bind(cluster).bind(after).bind(limit).fetch_all(pool).await
}

/// A cluster's user by name.
pub async fn get(pool: &PgPool, cluster: Uuid, name: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM kafka_users WHERE cluster_id = $1 AND name = $2");
    sqlx::query_as(&sql).bind(cluster).bind(name).fetch_optional(pool).await
}
