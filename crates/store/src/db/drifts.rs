//! The `drifts` read model: written by the projector from the drift aggregate's events, read by the API (a
//! cluster's drift list, one drift) and by the detector (which drifts of a cluster are open).

use chrono::{DateTime, Utc};
use polaris_domain::drift::{DriftDetected, DriftResolved};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::projection::At;

/// One row of `drifts`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DriftRow {
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub object: String,
    pub field: String,
    pub expected: Option<sqlx::types::Json<serde_json::Value>>,
    pub actual: Option<sqlx::types::Json<serde_json::Value>>,
    pub changed_by: Option<String>,
    pub status: String,
    pub detected_at: DateTime<Utc>,
    pub observed_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub reason: Option<String>,
    pub operation_id: Option<Uuid>,
    pub version: i64,
}

const COLUMNS: &str = "id, cluster_id, object, field, expected, actual, changed_by, status, detected_at, observed_at, \
     resolved_at, resolved_by, reason, operation_id, version";

/// A cluster's drifts, open ones first, then the newest; `open_only` narrows to the open ones.
pub async fn list(pool: &PgPool, cluster: Uuid, open_only: bool, limit: i64) -> Result<Vec<DriftRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM drifts WHERE cluster_id = $1 AND (NOT $2 OR status = 'open') \
         ORDER BY status <> 'open', detected_at DESC, id LIMIT $3"
    );
    sqlx::query_as(&sql).bind(cluster).bind(open_only).bind(limit).fetch_all(pool).await
}

/// One drift of a cluster.
pub async fn get(pool: &PgPool, cluster: Uuid, id: Uuid) -> Result<Option<DriftRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM drifts WHERE cluster_id = $1 AND id = $2");
    sqlx::query_as(&sql).bind(cluster).bind(id).fetch_optional(pool).await
}

/// Open drifts per org over clusters that are not deleted: what `polaris_drift_open` reports.
pub async fn open_counts(pool: &PgPool) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.org_id, count(*) FROM drifts d JOIN clusters c ON c.id = d.cluster_id \
         WHERE d.status = 'open' AND c.status NOT IN ('DELETING', 'DELETED') GROUP BY d.org_id ORDER BY d.org_id",
    )
    .fetch_all(pool)
    .await
}

/// A detection: the row opens (again) with this observation; false when it already has this event.
pub async fn detected(conn: &mut PgConnection, at: At, e: &DriftDetected) -> Result<bool, sqlx::Error> {
    let written = sqlx::query(
        "INSERT INTO drifts (id, org_id, cluster_id, object, field, expected, actual, changed_by, status, detected_at, \
           observed_at, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $9, $10, $11, $11) \
         ON CONFLICT (id) DO UPDATE SET expected = EXCLUDED.expected, actual = EXCLUDED.actual, \
           changed_by = EXCLUDED.changed_by, observed_at = EXCLUDED.observed_at, version = EXCLUDED.version, \
           updated_at = EXCLUDED.updated_at, \
           detected_at = CASE WHEN drifts.status = 'open' THEN drifts.detected_at ELSE EXCLUDED.detected_at END, \
           status = 'open', resolved_at = NULL, resolved_by = NULL, reason = NULL, operation_id = NULL \
         WHERE drifts.version < EXCLUDED.version",
    )
    .bind(e.drift_id)
    .bind(e.org_id.as_uuid())
    .bind(e.cluster_id.as_uuid())
    .bind(&e.object)
    .bind(&e.field)
    .bind(e.expected.as_ref().map(sqlx::types::Json))
    .bind(e.actual.as_ref().map(sqlx::types::Json))
    .bind(&e.changed_by)
    .bind(e.observed_at)
    .bind(at.sequence)
    .bind(at.occurred_at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(written > 0)
}

/// A revert started (`Some`: the drift is reverting) or stalled (`None`: open and not reverting; the operation
/// keeps its record).
pub async fn reverting(conn: &mut PgConnection, at: At, operation: Option<Uuid>) -> Result<bool, sqlx::Error> {
    let written = sqlx::query(
        "UPDATE drifts SET operation_id = $2, version = $3, updated_at = $4 \
         WHERE id = $1 AND version < $3",
    )
    .bind(at.id)
    .bind(operation)
    .bind(at.sequence)
    .bind(at.occurred_at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(written > 0)
}

/// The drift ended as `e` says.
pub async fn resolved(conn: &mut PgConnection, at: At, e: &DriftResolved) -> Result<bool, sqlx::Error> {
    let written = sqlx::query(
        "UPDATE drifts SET status = $2, resolved_at = $3, resolved_by = $4, reason = $5, \
           operation_id = coalesce($6, operation_id), version = $7, updated_at = $3 \
         WHERE id = $1 AND version < $7",
    )
    .bind(at.id)
    .bind(e.how.status())
    .bind(at.occurred_at)
    .bind(&e.by)
    .bind(&e.reason)
    .bind(e.operation_id.map(|o| o.as_uuid()))
    .bind(at.sequence)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(written > 0)
}

/// The clusters on `target` the detector looks at (the events of each decide whether it is steady).
pub async fn detector_clusters(pool: &PgPool, target: Uuid) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, org_id FROM clusters WHERE target_id = $1 AND status NOT IN ('DELETING', 'DELETED', 'FAILED') \
         ORDER BY id",
    )
    .bind(target)
    .fetch_all(pool)
    .await
}

/// The ids of a cluster's topics and users that are not deleted.
pub async fn members(pool: &PgPool, cluster: Uuid) -> Result<(Vec<Uuid>, Vec<Uuid>), sqlx::Error> {
    let topics = sqlx::query_scalar("SELECT id FROM topics WHERE cluster_id = $1 AND status <> 'DELETED' ORDER BY id")
        .bind(cluster)
        .fetch_all(pool)
        .await?;
    let users =
        sqlx::query_scalar("SELECT id FROM kafka_users WHERE cluster_id = $1 AND status <> 'DELETED' ORDER BY id")
            .bind(cluster)
            .fetch_all(pool)
            .await?;
    Ok((topics, users))
}

/// An open drift as the detector needs it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OpenDrift {
    pub id: Uuid,
    pub object: String,
    pub field: String,
    /// The revert running now, if any.
    pub operation_id: Option<Uuid>,
}

/// A cluster's open drifts.
pub async fn open_of_cluster(pool: &PgPool, cluster: Uuid) -> Result<Vec<OpenDrift>, sqlx::Error> {
    sqlx::query_as("SELECT id, object, field, operation_id FROM drifts WHERE cluster_id = $1 AND status = 'open'")
        .bind(cluster)
        .fetch_all(pool)
        .await
}
