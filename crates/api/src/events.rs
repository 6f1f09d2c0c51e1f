//! The org's event feed, in commit order, for `polaris events tail` and other followers that speak HTTP rather
//! than Kafka. Like the relay, it only shows events whose transaction is older than every running one, so a page
//! token never moves past an event that commits later.

use axum::Json;
use axum::extract::State;
use polaris_store::db;
use polaris_store::{Cursor, CursorKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::clusters::HistoryEntry;
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;

/// One event of the feed: which aggregate, and the event as a cluster's history shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeedEvent {
    /// `cluster` or `topic`.
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    #[serde(flatten)]
    pub event: HistoryEntry,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<FeedEvent>,
    /// Where to continue: always present, so a follower polls with it until new events arrive.
    pub next_page_token: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only this cluster's events and its topics' events.
    pub cluster_id: Option<Uuid>,
    /// `beginning` (default) or `end`: with `end` and no page_token, the answer has no events and a token at
    /// the newest one, to follow only what happens from now on.
    #[param(schema_with = start_schema)]
    pub start: Option<String>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
    /// From the previous page's `next_page_token`.
    #[param(pattern = "^[0-9]{1,18}:[0-9]{1,18}$")]
    pub page_token: Option<String>,
}

fn start_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["beginning", "end"]))
        .build()
        .into()
}

/// The org's events in commit order.
#[utoipa::path(
    get, path = "/v1/events", operation_id = "events_list", tag = "events",
    params(EventQuery),
    responses(
        (status = 200, description = "Events in commit order, and where to continue", body = EventPage),
        (status = 400, description = "Invalid filter or page token", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org (`cluster_id`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<EventPage>, ApiError> {
    caller.require(Role::Viewer)?;
    let page_size = crate::paging::page_size(q.page_size)?;
    if let Some(cluster) = q.cluster_id {
        // Another org's cluster answers 404 here too, as everywhere.
        crate::clusters::current(&state, &caller, cluster).await?;
    }
    let org = caller.org_id.as_uuid();
    let from = crate::paging::cursor(q.page_token.as_deref(), CursorKind::Commit)?.and_then(|c| c.commit());
    let (xid, position) = match (from, q.start.as_deref()) {
        (Some(from), _) => from,
        (None, None | Some("beginning")) => (0, 0),
        (None, Some("end")) => {
            let token = db::events::feed_end(&state.pool, org).await?.encode();
            return Ok(Json(EventPage { items: Vec::new(), next_page_token: token }));
        }
        (None, Some(_)) => return Err(ApiError::validation("start must be beginning or end", Some("start"))),
    };
    let rows = db::events::feed(&state.pool, org, (xid, position), q.cluster_id, i64::from(page_size)).await?;
    let next_page_token = rows.last().map_or(Cursor::Commit { xid, position }, db::events::commit_cursor).encode();
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let e = row.to_envelope().map_err(|e| ApiError::Internal(e.to_string()))?;
        items.push(FeedEvent {
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id,
            event: e.into(),
        });
    }
    Ok(Json(EventPage { items, next_page_token }))
}
