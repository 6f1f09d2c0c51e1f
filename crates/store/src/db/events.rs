//! Queries over the event log that are not the command path's: one aggregate's events (for a fold at a version
//! or an instant, a dry run, a history, the workers' facts) and its head.

use sqlx::PgPool;
use uuid::Uuid;

use crate::{Cursor, STORED_EVENT_COLUMNS, StoredEvent};

/// Committed and visible to a reader: older than every running transaction (as the relay reads), and the org's.
const VISIBLE: &str = "xid < pg_snapshot_xmin(pg_current_snapshot()) AND metadata->>'org_id' = $1::text";

/// The cursor after an event (its transaction id as PostgreSQL prints an `xid8`).
pub fn commit_cursor(event: &StoredEvent) -> Cursor {
    Cursor::Commit { xid: event.xid.parse().unwrap_or_default(), position: event.position }
}

/// Up to `limit` of the org's events (of one cluster and its topics, if given) in commit order, after `after`
/// (`(xid, position)`). Only events older than every running transaction are visible, so an event whose
/// transaction commits late is never skipped: the feed waits for it.
pub async fn feed(
    pool: &PgPool,
    org: Uuid,
    after: (u64, i64),
    cluster: Option<Uuid>,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = format!(
        "SELECT {STORED_EVENT_COLUMNS} FROM events WHERE (xid, position) > ($2::text::xid8, $3) AND {VISIBLE} \
         AND ($4::text IS NULL OR (aggregate_type = 'cluster' AND aggregate_id = $4) \
              OR (aggregate_type = 'topic' AND aggregate_id IN (SELECT t.aggregate_id FROM events t \
                  WHERE t.aggregate_type = 'topic' AND t.sequence = 1 \
                  AND t.payload -> 'TopicRequested' ->> 'cluster_id' = $4))) \
         ORDER BY events.xid, events.position LIMIT $5"
    );
    sqlx::query_as(&sql)
        .bind(org.to_string())
        .bind(after.0.to_string())
        .bind(after.1)
        .bind(cluster.map(|c| c.to_string()))
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// The cursor after the org's last visible event (the feed's start, when there is none).
pub async fn feed_end(pool: &PgPool, org: Uuid) -> Result<Cursor, sqlx::Error> {
    let sql = format!(
        "SELECT {STORED_EVENT_COLUMNS} FROM events WHERE {VISIBLE} ORDER BY events.xid DESC, events.position DESC LIMIT 1"
    );
    let last: Option<StoredEvent> = sqlx::query_as(&sql).bind(org.to_string()).fetch_optional(pool).await?;
    Ok(last.as_ref().map_or(Cursor::COMMIT_START, commit_cursor))
}

/// The events of one aggregate in sequence order, up to `up_to` (all of them when `None`).
pub async fn of_aggregate(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    up_to: Option<u64>,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = format!(
        "SELECT {STORED_EVENT_COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
         AND ($3::int8 IS NULL OR sequence <= $3) ORDER BY sequence"
    );
    sqlx::query_as(&sql)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(up_to.map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
        .fetch_all(pool)
        .await
}

/// The last sequence an aggregate's events reached (0 when it has none): what a read model must have applied to
/// be current. One index lookup.
pub async fn head_sequence(pool: &PgPool, aggregate_type: &str, aggregate_id: &str) -> Result<i64, sqlx::Error> {
    let (head,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(sequence) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2")
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_one(pool)
            .await?;
    Ok(head.unwrap_or(0))
}
