//! Operations: the long-running changes a caller follows after a `202`.

use chrono::{DateTime, Utc};
use polaris_domain::cluster::ClusterRequested;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use polaris_store::db::{self, operations::OperationRow};
use polaris_store::operations::Step;

use crate::App;
use crate::caller::Caller;
use crate::error::AppError;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationStep {
    pub name: String,
    #[schema(schema_with = crate::schema::step_state)]
    pub state: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub detail: Option<String>,
}

impl From<Step> for OperationStep {
    fn from(s: Step) -> Self {
        OperationStep {
            name: s.name,
            state: s.state,
            started_at: s.started_at,
            finished_at: s.finished_at,
            detail: s.detail,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationView {
    pub id: Uuid,
    #[schema(schema_with = crate::schema::operation_kind)]
    pub kind: String,
    pub cluster_id: Uuid,
    pub topic_id: Option<Uuid>,
    /// The Kafka user a `user_*` operation changes.
    pub user_id: Option<Uuid>,
    /// pending, running, succeeded, failed, stalled, cancelled.
    #[schema(schema_with = crate::schema::operation_state)]
    pub state: String,
    pub steps: Vec<OperationStep>,
    pub error: Option<String>,
    pub requested_by: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl OperationView {
    /// An operation just accepted, before any worker has touched it.
    pub fn pending(
        id: Uuid,
        kind: &str,
        cluster_id: Uuid,
        topic_id: Option<Uuid>,
        requested_by: String,
        at: DateTime<Utc>,
    ) -> Self {
        OperationView {
            id,
            kind: kind.into(),
            cluster_id,
            topic_id,
            user_id: None,
            state: "pending".into(),
            steps: vec![],
            error: None,
            requested_by,
            started_at: at,
            finished_at: None,
        }
    }

    /// A Kafka user operation just accepted.
    pub fn pending_user(
        id: Uuid,
        kind: &str,
        cluster_id: Uuid,
        user_id: Uuid,
        requested_by: String,
        at: DateTime<Utc>,
    ) -> Self {
        OperationView { user_id: Some(user_id), ..Self::pending(id, kind, cluster_id, None, requested_by, at) }
    }

    pub fn pending_provision(e: &ClusterRequested) -> Self {
        Self::pending(
            e.operation_id.as_uuid(),
            "provision",
            e.cluster_id.as_uuid(),
            None,
            e.requested_by.clone(),
            e.requested_at,
        )
    }
}

impl From<OperationRow> for OperationView {
    fn from(row: OperationRow) -> Self {
        OperationView {
            id: row.id,
            kind: row.kind,
            cluster_id: row.cluster_id,
            topic_id: row.topic_id,
            user_id: row.user_id,
            state: row.state,
            steps: row.steps.0.into_iter().map(OperationStep::from).collect(),
            error: row.error,
            requested_by: row.requested_by,
            started_at: row.started_at,
            finished_at: row.finished_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListOperationsQuery {
    /// Only operations on this cluster.
    pub cluster_id: Option<Uuid>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
    /// From the previous page's `next_page_token`.
    #[param(pattern = "^[0-9]{1,16}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OperationList {
    pub items: Vec<OperationView>,
    /// Pass as `page_token` to get the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

/// The org's operations, newest first (optionally one cluster's), a page at a time.
pub async fn list(app: &App, caller: &Caller, q: ListOperationsQuery) -> Result<OperationList, AppError> {
    let page_size = crate::paging::page_size(q.page_size)?;
    if let Some(cluster) = q.cluster_id {
        // Another org's cluster answers 404 here too, as everywhere.
        crate::clusters::current(app, caller, cluster).await?;
    }
    let before =
        crate::paging::cursor(q.page_token.as_deref(), polaris_store::CursorKind::Keyed)?.and_then(|c| c.keyed());
    let mut rows =
        db::operations::list(&app.pool, caller.org_id.as_uuid(), q.cluster_id, before, i64::from(page_size) + 1)
            .await?;
    let next_page_token = crate::paging::next_token(&mut rows, page_size, |r| polaris_store::Cursor::Keyed {
        at: r.started_at,
        id: r.id,
    });
    Ok(OperationList { items: rows.into_iter().map(OperationView::from).collect(), next_page_token })
}

/// One operation of the caller's org.
pub async fn get(app: &App, caller: &Caller, id: Uuid) -> Result<OperationView, AppError> {
    let row = db::operations::get(&app.pool, caller.org_id.as_uuid(), id).await?;
    row.map(OperationView::from).ok_or(AppError::NotFound("operation"))
}

/// Whether an operation has ended (no further progress will be reported).
pub fn finished(state: &str) -> bool {
    polaris_domain::lifecycle::OperationState::parse(state).is_some_and(|s| s.finished())
}
