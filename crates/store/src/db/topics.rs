//! The `topics` read model as the API reads it, and the questions about topics that must be answered from the
//! event log because the read model may lag.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// One row of `topics`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TopicRow {
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub config: sqlx::types::Json<BTreeMap<String, String>>,
    pub deletion_protection: bool,
    pub status: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, cluster_id, name, partitions, replication_factor, config, deletion_protection, \
     status, version, created_at, updated_at";

/// Up to `limit` of a cluster's topics in name order, after the name `after`.
pub async fn list(pool: &PgPool, cluster: Uuid, after: Option<&str>, limit: i64) -> Result<Vec<TopicRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM topics WHERE cluster_id = $1 AND ($2::text IS NULL OR name > $2) ORDER BY name LIMIT $3"
    );
    sqlx::query_as(&sql).bind(cluster).bind(after).bind(limit).fetch_all(pool).await
}

/// A cluster's topic by name.
pub async fn get(pool: &PgPool, cluster: Uuid, name: &str) -> Result<Option<TopicRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM topics WHERE cluster_id = $1 AND name = $2");
    sqlx::query_as(&sql).bind(cluster).bind(name).fetch_optional(pool).await
}

/// The largest replication factor among a cluster's live topics: the floor for scaling it down. Read from the
/// event store (each topic's `TopicRequested`, indexed by cluster, and no `TopicDeleted`), not from the topics
/// read model, which may not have a topic whose request was just accepted.
pub async fn largest_replication_factor(pool: &PgPool, cluster: Uuid) -> Result<u32, sqlx::Error> {
    let (rf,): (Option<i32>,) = sqlx::query_as(
        "SELECT max((e.payload -> 'TopicRequested' ->> 'replication_factor')::int) FROM events e \
         WHERE e.aggregate_type = 'topic' AND e.sequence = 1 AND e.payload -> 'TopicRequested' ->> 'cluster_id' = $1 \
           AND NOT EXISTS (SELECT 1 FROM events d WHERE d.aggregate_type = 'topic' \
                           AND d.aggregate_id = e.aggregate_id AND d.event_type = 'TopicDeleted')",
    )
    .bind(cluster.to_string())
    .fetch_one(pool)
    .await?;
    Ok(rf.unwrap_or(0).max(0) as u32)
}

/// Whether operation `operation` changed topic `topic` (resized or reconfigured it): a patch that changed
/// nothing Kafka sees starts no operation.
pub async fn operation_changed_topic(pool: &PgPool, topic: Uuid, operation: Uuid) -> Result<bool, sqlx::Error> {
    let found: Option<(i64,)> = sqlx::query_as(
        "SELECT sequence FROM events WHERE aggregate_type = 'topic' AND aggregate_id = $1 \
         AND metadata::jsonb->>'operation_id' = $2 AND event_type IN ('TopicPartitionsIncreased', 'TopicConfigChanged') \
         LIMIT 1",
    )
    .bind(topic.to_string())
    .bind(operation.to_string())
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}
