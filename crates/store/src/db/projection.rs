//! The projector's writes to the read models (`clusters`, `brokers`, `topics`, `kafka_users`, `operations`) and its position
//! (`projector_offsets`). Every change to a row is guarded by the aggregate's sequence: a change at or below the
//! row's version is a redelivery and changes nothing (the functions answer false). The projector decides what
//! each event means; the SQL is here, beside the API's reads of the same rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use polaris_domain::cluster::ClusterRequested;
use polaris_domain::topic::TopicRequested;
use polaris_domain::user::UserRequested;
use sqlx::query_builder::Separated;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::operations::Step;

/// Records how far the projector got in a partition (never backwards).
pub async fn record_offset(
    conn: &mut PgConnection,
    group: &str,
    topic: &str,
    partition: i32,
    next_offset: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projector_offsets (consumer_group, topic, partition, next_offset, updated_at) \
         VALUES ($1, $2, $3, $4, now()) ON CONFLICT (consumer_group, topic, partition) \
         DO UPDATE SET next_offset = GREATEST(projector_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
    )
    .bind(group)
    .bind(topic)
    .bind(partition)
    .bind(next_offset)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where an event moves a row: its aggregate, sequence and time.
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub id: Uuid,
    pub sequence: i64,
    pub occurred_at: DateTime<Utc>,
}

/// What an event changes in its `clusters` row; `None` leaves a column as it is.
#[derive(Clone, Debug, Default)]
pub struct ClusterChange<'a> {
    pub status: Option<&'a str>,
    pub status_reason: Option<Option<&'a str>>,
    pub current_operation_id: Option<Option<Uuid>>,
    pub brokers: Option<i32>,
    pub bootstrap_servers: Option<Option<&'a str>>,
    pub kafka_version: Option<&'a str>,
    pub metadata_version: Option<&'a str>,
    pub deletion_protection: Option<bool>,
}

/// Moves the cluster's row to `at` with `change`; false when it already has this event (or is missing).
pub async fn advance_cluster(conn: &mut PgConnection, at: At, change: &ClusterChange<'_>) -> Result<bool, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new("UPDATE clusters SET ");
    {
        let mut set = q.separated(", ");
        if let Some(v) = change.status {
            set.push("status = ").push_bind_unseparated(v.to_owned());
        }
        if let Some(v) = change.status_reason {
            set.push("status_reason = ").push_bind_unseparated(v.map(str::to_owned));
        }
        if let Some(v) = change.current_operation_id {
            set.push("current_operation_id = ").push_bind_unseparated(v);
        }
        if let Some(v) = change.brokers {
            set.push("brokers = ").push_bind_unseparated(v);
        }
        if let Some(v) = change.bootstrap_servers {
            set.push("bootstrap_servers = ").push_bind_unseparated(v.map(str::to_owned));
        }
        if let Some(v) = change.kafka_version {
            set.push("kafka_version = ").push_bind_unseparated(v.to_owned());
        }
        if let Some(v) = change.metadata_version {
            set.push("metadata_version = ").push_bind_unseparated(v.to_owned());
        }
        if let Some(v) = change.deletion_protection {
            set.push("deletion_protection = ").push_bind_unseparated(v);
        }
        set.push("version = ").push_bind_unseparated(at.sequence);
        set.push("updated_at = ").push_bind_unseparated(at.occurred_at);
        set.push("projected_at = clock_timestamp()");
    }
    q.push(" WHERE id = ").push_bind(at.id).push(" AND version < ").push_bind(at.sequence);
    Ok(q.build().execute(conn).await?.rows_affected() > 0)
}

/// What an event changes in its `topics` row.
#[derive(Clone, Debug, Default)]
pub struct TopicChange<'a> {
    pub status: Option<&'a str>,
    pub partitions: Option<i32>,
    pub config: Option<&'a BTreeMap<String, String>>,
    pub deletion_protection: Option<bool>,
}

/// What every event moves in a topic's or user's row: its status, its version and `updated_at`. DELETED stays:
/// the cluster's deletion marks its topics and users deleted, and a late event of theirs must not bring one back,
/// whichever of the two the projector meets first (live and in a replay they differ); on a deleted row
/// `updated_at` is the later of the two times, so both orders leave the same row.
fn member_moves(set: &mut Separated<'_, '_, Postgres, &'static str>, status: Option<&str>, at: At) {
    if let Some(v) = status {
        set.push("status = CASE WHEN status = 'DELETED' THEN status ELSE ")
            .push_bind_unseparated(v.to_owned())
            .push_unseparated(" END");
    }
    set.push("version = ").push_bind_unseparated(at.sequence);
    set.push("updated_at = CASE WHEN status = 'DELETED' THEN GREATEST(updated_at, ")
        .push_bind_unseparated(at.occurred_at)
        .push_unseparated(") ELSE ")
        .push_bind_unseparated(at.occurred_at)
        .push_unseparated(" END");
}

/// Moves the topic's row to `at` with `change`; false when it already has this event (or is missing).
pub async fn advance_topic(conn: &mut PgConnection, at: At, change: &TopicChange<'_>) -> Result<bool, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new("UPDATE topics SET ");
    {
        let mut set = q.separated(", ");
        if let Some(v) = change.partitions {
            set.push("partitions = ").push_bind_unseparated(v);
        }
        if let Some(v) = change.config {
            set.push("config = ").push_bind_unseparated(sqlx::types::Json(v.clone()));
        }
        if let Some(v) = change.deletion_protection {
            set.push("deletion_protection = ").push_bind_unseparated(v);
        }
        member_moves(&mut set, change.status, at);
    }
    q.push(" WHERE id = ").push_bind(at.id).push(" AND version < ").push_bind(at.sequence);
    Ok(q.build().execute(conn).await?.rows_affected() > 0)
}

/// The `clusters` row a request starts; false when it exists already (a redelivery).
pub async fn insert_cluster(conn: &mut PgConnection, at: At, e: &ClusterRequested) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO clusters (id, org_id, name, provider, region, target_id, kafka_version, metadata_version, \
           brokers, controllers, storage_gib, config, deletion_protection, status, version, current_operation_id, \
           created_at, updated_at, namespace) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'REQUESTED', $14, $15, $16, $16, $17) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(e.cluster_id.as_uuid())
    .bind(e.org_id.as_uuid())
    .bind(e.name.as_str())
    .bind(e.provider.as_str())
    .bind(e.region.as_str())
    // A cluster requested before placement existed (upcast from version 1) has no target: NULL, not the nil id.
    .bind((e.target_id != polaris_domain::TargetId::UNPLACED).then(|| e.target_id.as_uuid()))
    .bind(&e.kafka_version)
    .bind(&e.metadata_version)
    .bind(e.brokers as i32)
    .bind(e.controllers as i32)
    .bind(e.storage_gib as i32)
    .bind(sqlx::types::Json(&e.config))
    .bind(e.deletion_protection)
    .bind(at.sequence)
    .bind(e.operation_id.as_uuid())
    .bind(at.occurred_at)
    .bind(&e.namespace)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// The `topics` row a request starts; false when it exists already (a redelivery).
pub async fn insert_topic(conn: &mut PgConnection, at: At, e: &TopicRequested) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO topics (id, org_id, cluster_id, name, partitions, replication_factor, config, \
           deletion_protection, status, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'REQUESTED', $9, $10, $10) ON CONFLICT (id) DO NOTHING",
    )
    .bind(e.topic_id)
    .bind(e.org_id.as_uuid())
    .bind(e.cluster_id.as_uuid())
    .bind(e.name.as_str())
    .bind(e.partitions as i32)
    .bind(e.replication_factor as i32)
    .bind(sqlx::types::Json(&e.config))
    .bind(e.deletion_protection)
    .bind(at.sequence)
    .bind(at.occurred_at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// Every topic of a deleted cluster is deleted with it.
pub async fn delete_topics_of(conn: &mut PgConnection, cluster: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE topics SET status = 'DELETED', updated_at = GREATEST(updated_at, $2) WHERE cluster_id = $1")
        .bind(cluster)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// What an event changes in its `kafka_users` row.
#[derive(Clone, Debug, Default)]
pub struct UserChange<'a> {
    pub status: Option<&'a str>,
    pub acls: Option<&'a [polaris_domain::acl::AclRule]>,
    pub quotas: Option<&'a polaris_domain::acl::UserQuotas>,
    pub generation: Option<u32>,
}

/// Moves the user's row to `at` with `change`; false when it already has this event (or is missing).
pub async fn advance_user(conn: &mut PgConnection, at: At, change: &UserChange<'_>) -> Result<bool, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new("UPDATE kafka_users SET ");
    {
        let mut set = q.separated(", ");
        if let Some(v) = change.acls {
            set.push("acls = ").push_bind_unseparated(sqlx::types::Json(v.to_vec()));
        }
        if let Some(v) = change.quotas {
            set.push("quotas = ").push_bind_unseparated(sqlx::types::Json(v.clone()));
        }
        if let Some(v) = change.generation {
            set.push("generation = ").push_bind_unseparated(v as i32);
        }
        member_moves(&mut set, change.status, at);
    }
    q.push(" WHERE id = ").push_bind(at.id).push(" AND version < ").push_bind(at.sequence);
    Ok(q.build().execute(conn).await?.rows_affected() > 0)
}

/// The `kafka_users` row a request starts; false when it exists already (a redelivery).
pub async fn insert_user(conn: &mut PgConnection, at: At, e: &UserRequested) -> Result<bool, sqlx::Error> {
    let authentication =
        serde_json::to_value(e.authentication).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let inserted = sqlx::query(
        "INSERT INTO kafka_users (id, org_id, cluster_id, name, authentication, acls, quotas, generation, status,            version, created_at, updated_at)          VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 'REQUESTED', $8, $9, $9) ON CONFLICT (id) DO NOTHING",
    )
    .bind(e.user_id)
    .bind(e.org_id.as_uuid())
    .bind(e.cluster_id.as_uuid())
    .bind(&e.name)
    .bind(authentication)
    .bind(sqlx::types::Json(&e.acls))
    .bind(sqlx::types::Json(&e.quotas))
    .bind(at.sequence)
    .bind(at.occurred_at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// Every user of a deleted cluster is deleted with it (its KafkaUsers and Secrets went with the namespace).
pub async fn delete_users_of(conn: &mut PgConnection, cluster: Uuid, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE kafka_users SET status = 'DELETED', updated_at = GREATEST(updated_at, $2) WHERE cluster_id = $1",
    )
    .bind(cluster)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The cluster a user belongs to.
pub async fn user_cluster(conn: &mut PgConnection, user: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT cluster_id FROM kafka_users WHERE id = $1").bind(user).fetch_optional(&mut *conn).await
}

/// The cluster a topic belongs to.
pub async fn topic_cluster(conn: &mut PgConnection, topic: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT cluster_id FROM topics WHERE id = $1").bind(topic).fetch_optional(&mut *conn).await
}

/// Removes a cluster's node rows: every node, or those of one role.
pub async fn delete_nodes(conn: &mut PgConnection, cluster: Uuid, role: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM brokers WHERE cluster_id = $1 AND ($2::text IS NULL OR role = $2)")
        .bind(cluster)
        .bind(role)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts READY nodes of one role, in one statement.
pub async fn insert_nodes(
    conn: &mut PgConnection,
    cluster: Uuid,
    node_ids: &[i32],
    role: &str,
) -> Result<(), sqlx::Error> {
    if node_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO brokers (cluster_id, node_id, role, status) SELECT $1, id, $3, 'READY' FROM UNNEST($2::int4[]) id",
    )
    .bind(cluster)
    .bind(node_ids)
    .bind(role)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Where an operation is, as the projector changes it.
#[derive(Clone, Debug)]
pub struct OperationProgress {
    pub state: String,
    pub steps: Vec<Step>,
    pub error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The operation's progress, locked for the rest of the transaction; `None` when no such operation exists.
pub async fn lock_operation(conn: &mut PgConnection, id: Uuid) -> Result<Option<OperationProgress>, sqlx::Error> {
    type Row = (String, sqlx::types::Json<Vec<Step>>, Option<String>, Option<DateTime<Utc>>);
    let row: Option<Row> =
        sqlx::query_as("SELECT state, steps, error, finished_at FROM operations WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(state, steps, error, finished_at)| OperationProgress { state, steps: steps.0, error, finished_at }))
}

/// Writes operations' progress back, all in one statement.
pub async fn save_operations(conn: &mut PgConnection, ops: &[(Uuid, &OperationProgress)]) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = ops.iter().map(|(id, _)| *id).collect();
    let states: Vec<&str> = ops.iter().map(|(_, op)| op.state.as_str()).collect();
    let steps: Vec<serde_json::Value> =
        ops.iter().map(|(_, op)| serde_json::to_value(&op.steps).unwrap_or_default()).collect();
    let errors: Vec<Option<&str>> = ops.iter().map(|(_, op)| op.error.as_deref()).collect();
    let finished: Vec<Option<DateTime<Utc>>> = ops.iter().map(|(_, op)| op.finished_at).collect();
    sqlx::query(
        "UPDATE operations o SET state = u.state, steps = u.steps, error = u.error, finished_at = u.finished_at \
         FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::text[], $5::timestamptz[]) \
           AS u(id, state, steps, error, finished_at) WHERE o.id = u.id",
    )
    .bind(ids)
    .bind(states)
    .bind(steps)
    .bind(errors)
    .bind(finished)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The kind, final state and duration in seconds of an operation that finished at `at`.
pub async fn finished_operation(
    pool: &PgPool,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<(String, String, f64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, state, EXTRACT(EPOCH FROM finished_at - started_at)::float8 FROM operations \
         WHERE id = $1 AND finished_at IS NOT NULL AND abs(EXTRACT(EPOCH FROM finished_at - $2)) < 0.001",
    )
    .bind(id)
    .bind(at)
    .fetch_optional(pool)
    .await
}
