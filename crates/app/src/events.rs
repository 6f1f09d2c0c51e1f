//! The org's event feed, in commit order, for `polaris events tail` and other followers that speak HTTP rather
//! than Kafka. Like the relay, it only shows events whose transaction is older than every running one, so a page
//! token never moves past an event that commits later.

use polaris_store::db;
use polaris_store::{Cursor, CursorKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::App;
use crate::caller::{Caller, Role};
use crate::clusters::HistoryEntry;
use crate::error::AppError;

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

/// The org's events in commit order from a page token (or the beginning, or the end), a page at a time. The page
/// token always says where to continue; it never passes an event whose transaction is still running.
pub async fn list(app: &App, caller: &Caller, q: EventQuery) -> Result<EventPage, AppError> {
    let (items, next_page_token) = page(app, caller, q).await?;
    Ok(EventPage { items: items.into_iter().map(|(e, _)| e).collect(), next_page_token })
}

/// Like [`list`], with each event's position: the page token that continues right after it (what a stream
/// resumes from).
pub async fn page(app: &App, caller: &Caller, q: EventQuery) -> Result<(Vec<(FeedEvent, String)>, String), AppError> {
    caller.require(Role::Viewer)?;
    let page_size = crate::paging::page_size(q.page_size)?;
    if let Some(cluster) = q.cluster_id {
        // Another org's cluster answers 404 here too, as everywhere.
        crate::clusters::current(app, caller, cluster).await?;
    }
    let org = caller.org_id.as_uuid();
    let from = crate::paging::cursor(q.page_token.as_deref(), CursorKind::Commit)?.and_then(|c| c.commit());
    let (xid, position) = match (from, q.start.as_deref()) {
        (Some(from), _) => from,
        (None, None | Some("beginning")) => (0, 0),
        (None, Some("end")) => return Ok((Vec::new(), db::events::feed_end(&app.pool, org).await?.encode())),
        (None, Some(_)) => return Err(AppError::validation("start must be beginning or end", Some("start"))),
    };
    let rows = db::events::feed(&app.pool, org, (xid, position), q.cluster_id, i64::from(page_size)).await?;
    let next_page_token = rows.last().map_or(Cursor::Commit { xid, position }, db::events::commit_cursor).encode();
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let at = db::events::commit_cursor(&row).encode();
        let e = row.to_envelope().map_err(|e| AppError::Internal(e.to_string()))?;
        let event =
            FeedEvent { aggregate_type: e.aggregate_type.clone(), aggregate_id: e.aggregate_id, event: e.into() };
        items.push((event, at));
    }
    Ok((items, next_page_token))
}
