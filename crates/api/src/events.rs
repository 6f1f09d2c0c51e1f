//! The org's event feed, in commit order, for `polaris events tail` and other followers that speak HTTP rather
//! than Kafka. Like the relay, it only shows events whose transaction is older than every running one, so a page
//! token never moves past an event that commits later.

use axum::Json;
use axum::extract::State;
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

/// Committed and visible to a reader: older than every running transaction (as the relay reads).
const VISIBLE: &str = "xid < pg_snapshot_xmin(pg_current_snapshot()) AND metadata->>'org_id' = $1::text";

/// The cursor after an event (its transaction id as PostgreSQL prints an `xid8`).
fn commit_cursor(xid: &str, position: i64) -> Cursor {
    Cursor::Commit { xid: xid.parse().unwrap_or_default(), position }
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
    let org = caller.org_id.as_uuid().to_string();
    let from = crate::paging::cursor(q.page_token.as_deref(), CursorKind::Commit)?.and_then(|c| c.commit());
    let (xid, position) = match (from, q.start.as_deref()) {
        (Some(from), _) => from,
        (None, None | Some("beginning")) => (0, 0),
        (None, Some("end")) => {
            let head: Option<(String, i64)> = sqlx::query_as(&format!(
                "SELECT xid::text, position FROM events WHERE {VISIBLE} \
                 ORDER BY events.xid DESC, events.position DESC LIMIT 1"
            ))
            .bind(&org)
            .fetch_optional(&state.pool)
            .await?;
            let token = head.map_or(Cursor::COMMIT_START, |(x, p)| commit_cursor(&x, p)).encode();
            return Ok(Json(EventPage { items: Vec::new(), next_page_token: token }));
        }
        (None, Some(_)) => return Err(ApiError::validation("start must be beginning or end", Some("start"))),
    };
    let sql = format!(
        "SELECT {} FROM events WHERE (xid, position) > ($2::text::xid8, $3) AND {VISIBLE} \
         AND ($4::text IS NULL OR (aggregate_type = 'cluster' AND aggregate_id = $4) \
              OR (aggregate_type = 'topic' AND aggregate_id IN (SELECT t.aggregate_id FROM events t \
                  WHERE t.aggregate_type = 'topic' AND t.sequence = 1 \
                  AND t.payload -> 'TopicRequested' ->> 'cluster_id' = $4))) \
         ORDER BY events.xid, events.position LIMIT $5",
        polaris_store::STORED_EVENT_COLUMNS
    );
    let rows: Vec<polaris_store::StoredEvent> = sqlx::query_as(&sql)
        .bind(&org)
        .bind(xid.to_string())
        .bind(position)
        .bind(q.cluster_id.map(|c| c.to_string()))
        .bind(i64::from(page_size))
        .fetch_all(&state.pool)
        .await?;
    let next_page_token =
        rows.last().map_or(Cursor::Commit { xid, position }, |r| commit_cursor(&r.xid, r.position)).encode();
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
