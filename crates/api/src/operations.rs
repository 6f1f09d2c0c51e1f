//! Operations: the long-running changes a caller follows after a `202`.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use polaris_domain::cluster::ClusterRequested;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::IdPath;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationStep {
    pub name: String,
    pub state: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationView {
    pub id: Uuid,
    /// provision, scale, upgrade, delete, topic_apply, topic_delete.
    pub kind: String,
    pub cluster_id: Uuid,
    pub topic_id: Option<Uuid>,
    /// pending, running, succeeded, failed, stalled, cancelled.
    pub state: String,
    pub steps: Vec<OperationStep>,
    pub error: Option<String>,
    pub requested_by: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl OperationView {
    pub fn pending_provision(e: &ClusterRequested) -> Self {
        OperationView {
            id: e.operation_id.as_uuid(),
            kind: "provision".into(),
            cluster_id: e.cluster_id.as_uuid(),
            topic_id: None,
            state: "pending".into(),
            steps: vec![],
            error: None,
            requested_by: e.requested_by.clone(),
            started_at: e.requested_at,
            finished_at: None,
        }
    }
}

#[derive(sqlx::FromRow)]
struct OperationRow {
    id: Uuid,
    kind: String,
    cluster_id: Uuid,
    topic_id: Option<Uuid>,
    state: String,
    steps: sqlx::types::Json<Vec<OperationStep>>,
    error: Option<String>,
    requested_by: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

/// Get one operation.
#[utoipa::path(
    get, path = "/v1/operations/{id}", operation_id = "operations_get", tag = "operations",
    params(("id" = Uuid, Path, description = "Operation id")),
    responses(
        (status = 200, description = "The operation", body = OperationView),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such operation in this org", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_operation(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<OperationView>, ApiError> {
    let row: OperationRow = sqlx::query_as(
        "SELECT id, kind, cluster_id, topic_id, state, steps, error, requested_by, started_at, finished_at \
         FROM operations WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(caller.org_id.as_uuid())
    .fetch_optional(&state.pool)
    .await?
    .ok_or(ApiError::NotFound("operation"))?;
    Ok(Json(OperationView {
        id: row.id,
        kind: row.kind,
        cluster_id: row.cluster_id,
        topic_id: row.topic_id,
        state: row.state,
        steps: row.steps.0,
        error: row.error,
        requested_by: row.requested_by,
        started_at: row.started_at,
        finished_at: row.finished_at,
    }))
}
