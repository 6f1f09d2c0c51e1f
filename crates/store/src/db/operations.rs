//! The `operations` read model as the API reads it. Its steps are the [`Step`]s the event store and the
//! projector write.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::operations::Step;

/// One row of `operations`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OperationRow {
    pub id: Uuid,
    pub kind: String,
    pub cluster_id: Uuid,
    pub topic_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub state: String,
    pub steps: sqlx::types::Json<Vec<Step>>,
    pub error: Option<String>,
    pub requested_by: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, kind, cluster_id, topic_id, user_id, state, steps, error, requested_by, started_at, finished_at";

/// Up to `limit` of the org's operations (of one cluster, if given), newest first, before `before`.
pub async fn list(
    pool: &PgPool,
    org: Uuid,
    cluster: Option<Uuid>,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<OperationRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM operations WHERE org_id = $1 AND ($2::uuid IS NULL OR cluster_id = $2) \
         AND ($3::timestamptz IS NULL OR (started_at, id) < ($3, $4)) ORDER BY started_at DESC, id DESC LIMIT $5"
    );
    sqlx::query_as(&sql)
        .bind(org)
        .bind(cluster)
        .bind(before.map(|(at, _)| at))
        .bind(before.map(|(_, id)| id))
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// One operation of the org.
pub async fn get(pool: &PgPool, org: Uuid, id: Uuid) -> Result<Option<OperationRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM operations WHERE id = $1 AND org_id = $2");
    sqlx::query_as(&sql).bind(id).bind(org).fetch_optional(pool).await
}
