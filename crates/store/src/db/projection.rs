//! The projector's writes to the read models (`clusters`, `brokers`, `topics`, `kafka_users`, `operations`) and its position
//! (`projector_offsets`), and the rows it folds in memory between them. Every change to a row is guarded by the
//! aggregate's sequence: a change at or below the row's version is a redelivery and changes nothing (the folds
//! answer false). The projector decides what each event means; the SQL is here, beside the API's reads of the
//! same rows.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use polaris_domain::cluster::ClusterRequested;
use polaris_domain::topic::TopicRequested;
use polaris_domain::user::UserRequested;
use sqlx::query_builder::Separated;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::operations::Step;

/// Records how far the projector got in each partition of a batch (never backwards), in one statement.
pub async fn record_offsets(
    conn: &mut PgConnection,
    group: &str,
    offsets: &[(&str, i32, i64)],
) -> Result<(), sqlx::Error> {
    if offsets.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO projector_offsets (consumer_group, topic, partition, next_offset, updated_at) \
         SELECT $1, topic, partition, next_offset, now() FROM unnest($2::text[], $3::int4[], $4::int8[]) \
           AS u(topic, partition, next_offset) \
         ON CONFLICT (consumer_group, topic, partition) \
         DO UPDATE SET next_offset = GREATEST(projector_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
    )
    .bind(group)
    .bind(offsets.iter().map(|(topic, _, _)| *topic).collect::<Vec<_>>())
    .bind(offsets.iter().map(|(_, partition, _)| *partition).collect::<Vec<_>>())
    .bind(offsets.iter().map(|(_, _, next)| *next).collect::<Vec<_>>())
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

// The projector applies a batch of events to rows it holds in memory: each row a batch names is read (and locked)
// once, by one statement per table (`lock_*`), folded by every event of the batch in commit order, and written
// back by one statement per table: `insert_*` for the rows the batch created (as folded, so a row is written once
// however many of the batch's events change it), then `save_*` for the rows it changed that already existed.
// Every change is guarded by the aggregate's sequence: a change at or below the row's version is a redelivery and
// changes nothing.

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

/// A `clusters` row as a batch folds it: its version, and each column the batch changed (`None`: as stored).
#[derive(Clone, Debug, Default)]
pub struct ClusterFold {
    pub version: i64,
    pub status: Option<String>,
    pub status_reason: Option<Option<String>>,
    pub current_operation_id: Option<Option<Uuid>>,
    pub brokers: Option<i32>,
    pub bootstrap_servers: Option<Option<String>>,
    pub kafka_version: Option<String>,
    pub metadata_version: Option<String>,
    pub deletion_protection: Option<bool>,
    pub updated_at: Option<DateTime<Utc>>,
    /// When the cluster was deleted, as stored or as the batch folded it: a topic or user requested on it is
    /// created deleted (see [`MemberFold::cluster_deleted`]).
    pub deleted_at: Option<DateTime<Utc>>,
}

impl ClusterFold {
    /// Moves the row to `at` with `change`; false when it already has this event.
    pub fn advance(&mut self, at: At, change: &ClusterChange<'_>) -> bool {
        if at.sequence <= self.version {
            return false;
        }
        let owned = |v: Option<&str>| v.map(str::to_owned);
        if let Some(v) = change.status {
            self.status = Some(v.to_owned());
        }
        if let Some(v) = change.status_reason {
            self.status_reason = Some(owned(v));
        }
        if let Some(v) = change.current_operation_id {
            self.current_operation_id = Some(v);
        }
        if let Some(v) = change.brokers {
            self.brokers = Some(v);
        }
        if let Some(v) = change.bootstrap_servers {
            self.bootstrap_servers = Some(owned(v));
        }
        if let Some(v) = change.kafka_version {
            self.kafka_version = Some(v.to_owned());
        }
        if let Some(v) = change.metadata_version {
            self.metadata_version = Some(v.to_owned());
        }
        if let Some(v) = change.deletion_protection {
            self.deletion_protection = Some(v);
        }
        if change.status == Some("DELETED") {
            self.deleted_at = Some(at.occurred_at);
        }
        self.version = at.sequence;
        self.updated_at = Some(at.occurred_at);
        true
    }

    /// Whether the batch changed the row (a row it only created is written by the insert).
    pub fn changed(&self) -> bool {
        self.updated_at.is_some()
    }
}

/// The advisory lock that orders a batch deleting a cluster row it created against a batch projecting a member
/// whose cluster row it could not see: the first key is Polaris' ("pola"), the second the schema the batch writes
/// (`current_schema()`, so that a replay's schema and the live one do not wait on each other).
const CLUSTER_CREATION: &str = "1886350433, hashtext(current_schema())";

/// Taken (shared) by a batch before it deletes the members of a cluster whose row it created, and held until it
/// commits. Such batches do not wait on each other; they wait for, and hold back, [`await_cluster_creations`].
pub async fn share_cluster_creation(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SELECT pg_advisory_xact_lock_shared({CLUSTER_CREATION})")).execute(&mut *conn).await?;
    Ok(())
}

/// Taken (exclusive) by a batch that projects a topic's or user's request whose cluster row it did not find: it
/// waits until every batch that holds [`share_cluster_creation`] has committed (or rolled back), and any batch that
/// asks for it later waits until this one commits. So the cluster row, read again after it, is there with its
/// deletion, or the cascade that deletes it runs after this batch's member row is committed, and finds it.
pub async fn await_cluster_creations(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SELECT pg_advisory_xact_lock({CLUSTER_CREATION})")).execute(&mut *conn).await?;
    Ok(())
}

/// The versions of these clusters' rows, and when each deleted one was deleted, locked for the rest of the
/// transaction (a missing row is absent).
pub async fn lock_clusters(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, i64, Option<DateTime<Utc>>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, version, CASE WHEN status = 'DELETED' THEN updated_at END FROM clusters \
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
}

/// The `clusters` rows requests start, as the batch folded them (a row created and changed in one batch is written
/// once), in one statement; a row that exists already stays as it is. Answers the ids it inserted.
pub async fn insert_clusters(
    conn: &mut PgConnection,
    rows: &[(At, &ClusterRequested, &ClusterFold)],
) -> Result<BTreeSet<Uuid>, sqlx::Error> {
    insert_rows(
        conn,
        "INSERT INTO clusters (id, org_id, name, provider, region, target_id, kafka_version, metadata_version, \
           brokers, controllers, storage_gib, config, deletion_protection, status, status_reason, version, \
           current_operation_id, bootstrap_servers, created_at, updated_at, namespace) ",
        rows,
        |mut b, (at, e, fold)| {
            b.push_bind(e.cluster_id.as_uuid())
                .push_bind(e.org_id.as_uuid())
                .push_bind(e.name.as_str().to_owned())
                .push_bind(e.provider.as_str().to_owned())
                .push_bind(e.region.as_str().to_owned())
                // A cluster requested before placement existed (upcast from version 1) has no target: NULL, not
                // the nil id.
                .push_bind((e.target_id != polaris_domain::TargetId::UNPLACED).then(|| e.target_id.as_uuid()))
                .push_bind(fold.kafka_version.clone().unwrap_or_else(|| e.kafka_version.clone()))
                .push_bind(fold.metadata_version.clone().unwrap_or_else(|| e.metadata_version.clone()))
                .push_bind(fold.brokers.unwrap_or(e.brokers as i32))
                .push_bind(e.controllers as i32)
                .push_bind(e.storage_gib as i32)
                .push_bind(sqlx::types::Json(e.config.clone()))
                .push_bind(fold.deletion_protection.unwrap_or(e.deletion_protection))
                .push_bind(fold.status.clone().unwrap_or_else(|| "REQUESTED".into()))
                .push_bind(fold.status_reason.clone().flatten())
                .push_bind(fold.version.max(at.sequence))
                .push_bind(fold.current_operation_id.unwrap_or(Some(e.operation_id.as_uuid())))
                .push_bind(fold.bootstrap_servers.clone().flatten())
                .push_bind(at.occurred_at)
                .push_bind(fold.updated_at.unwrap_or(at.occurred_at))
                .push_bind(e.namespace.clone());
        },
    )
    .await
}

/// Writes the changed columns of these clusters' rows, in one statement.
pub async fn save_clusters(conn: &mut PgConnection, rows: &[(Uuid, &ClusterFold)]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: &dyn Fn(&ClusterFold) -> Option<String>| rows.iter().map(|(_, r)| f(r)).collect::<Vec<_>>();
    let set = |f: &dyn Fn(&ClusterFold) -> bool| rows.iter().map(|(_, r)| f(r)).collect::<Vec<_>>();
    sqlx::query(
        "UPDATE clusters c SET status = COALESCE(u.status, c.status), \
           status_reason = CASE WHEN u.set_reason THEN u.status_reason ELSE c.status_reason END, \
           current_operation_id = CASE WHEN u.set_operation THEN u.operation ELSE c.current_operation_id END, \
           brokers = COALESCE(u.brokers, c.brokers), \
           bootstrap_servers = CASE WHEN u.set_bootstrap THEN u.bootstrap ELSE c.bootstrap_servers END, \
           kafka_version = COALESCE(u.kafka_version, c.kafka_version), \
           metadata_version = COALESCE(u.metadata_version, c.metadata_version), \
           deletion_protection = COALESCE(u.protection, c.deletion_protection), \
           version = u.version, updated_at = u.updated_at, projected_at = clock_timestamp() \
         FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::text[], $5::bool[], $6::uuid[], $7::int4[], $8::bool[], \
           $9::text[], $10::text[], $11::text[], $12::bool[], $13::int8[], $14::timestamptz[]) \
           AS u(id, status, set_reason, status_reason, set_operation, operation, brokers, set_bootstrap, bootstrap, \
             kafka_version, metadata_version, protection, version, updated_at) \
         WHERE c.id = u.id",
    )
    .bind(rows.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(col(&|r| r.status.clone()))
    .bind(set(&|r| r.status_reason.is_some()))
    .bind(col(&|r| r.status_reason.clone().flatten()))
    .bind(set(&|r| r.current_operation_id.is_some()))
    .bind(rows.iter().map(|(_, r)| r.current_operation_id.flatten()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.brokers).collect::<Vec<_>>())
    .bind(set(&|r| r.bootstrap_servers.is_some()))
    .bind(col(&|r| r.bootstrap_servers.clone().flatten()))
    .bind(col(&|r| r.kafka_version.clone()))
    .bind(col(&|r| r.metadata_version.clone()))
    .bind(rows.iter().map(|(_, r)| r.deletion_protection).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.version).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.updated_at).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rows per multi-row INSERT (PostgreSQL takes at most 65,535 parameters per statement).
const INSERT_CHUNK: usize = 1000;

/// Inserts `rows` with one multi-row statement per [`INSERT_CHUNK`] rows; `head` is `INSERT INTO table (columns) `
/// and `push` binds one row's values. A row whose id exists already stays as it is: the answer holds the ids
/// inserted, so the caller can write its changes to the others as updates.
pub(crate) async fn insert_rows<T>(
    conn: &mut PgConnection,
    head: &str,
    rows: &[T],
    mut push: impl FnMut(Separated<'_, '_, Postgres, &'static str>, &T),
) -> Result<BTreeSet<Uuid>, sqlx::Error> {
    let mut inserted = BTreeSet::new();
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut q = QueryBuilder::<Postgres>::new(head);
        q.push_values(chunk, &mut push);
        q.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
        inserted.extend(q.build_query_scalar::<Uuid>().fetch_all(&mut *conn).await?);
    }
    Ok(inserted)
}

/// What every event moves in a topic's or user's row: its status, its version and `updated_at`.
#[derive(Clone, Debug)]
pub struct MemberFold {
    pub cluster_id: Uuid,
    pub version: i64,
    pub status: String,
    pub updated_at: DateTime<Utc>,
    /// Whether the batch changed the row.
    pub changed: bool,
}

impl MemberFold {
    fn created(cluster_id: Uuid, at: At) -> Self {
        MemberFold {
            cluster_id,
            version: at.sequence,
            status: "REQUESTED".into(),
            updated_at: at.occurred_at,
            changed: false,
        }
    }

    /// Moves the row to `at`, taking `status`; false when it already has this event. DELETED stays: the
    /// cluster's deletion marks its topics and users deleted, and a late event of theirs must not bring one back,
    /// whichever of the two the projector meets first (live and in a replay they differ); on a deleted row
    /// `updated_at` is the later of the two times, so both orders leave the same row.
    fn moves(&mut self, status: Option<&str>, at: At) -> bool {
        if at.sequence <= self.version {
            return false;
        }
        let deleted = self.status == "DELETED";
        if let (Some(v), false) = (status, deleted) {
            self.status = v.to_owned();
        }
        self.version = at.sequence;
        self.updated_at = if deleted { self.updated_at.max(at.occurred_at) } else { at.occurred_at };
        self.changed = true;
        true
    }

    /// The row's cluster was deleted at `at` (the statement `delete_members_of` runs for the rows not in memory;
    /// a row created after the cluster's deletion is created with this).
    pub fn cluster_deleted(&mut self, at: DateTime<Utc>) {
        self.status = "DELETED".into();
        self.updated_at = self.updated_at.max(at);
        self.changed = true;
    }
}

/// The `topics` or `kafka_users` rows of these ids, locked for the rest of the transaction.
pub async fn lock_members(
    conn: &mut PgConnection,
    table: Members,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, MemberFold)>, sqlx::Error> {
    type Row = (Uuid, Uuid, i64, String, DateTime<Utc>);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT id, cluster_id, version, status, updated_at FROM {} WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        table.table()
    ))
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, cluster_id, version, status, updated_at)| {
            (id, MemberFold { cluster_id, version, status, updated_at, changed: false })
        })
        .collect())
}

/// The two read models whose rows belong to a cluster and follow it into deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Members {
    Topics,
    Users,
}

impl Members {
    fn table(self) -> &'static str {
        match self {
            Members::Topics => "topics",
            Members::Users => "kafka_users",
        }
    }
}

/// Every topic or user of a deleted cluster is deleted with it (its KafkaTopics, KafkaUsers and Secrets went with
/// the namespace).
pub async fn delete_members_of(
    conn: &mut PgConnection,
    table: Members,
    cluster: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE {} SET status = 'DELETED', updated_at = GREATEST(updated_at, $2) WHERE cluster_id = $1",
        table.table()
    ))
    .bind(cluster)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What an event changes in its `topics` row.
#[derive(Clone, Debug, Default)]
pub struct TopicChange<'a> {
    pub status: Option<&'a str>,
    pub partitions: Option<i32>,
    pub config: Option<&'a BTreeMap<String, String>>,
    pub deletion_protection: Option<bool>,
}

/// A `topics` row as a batch folds it.
#[derive(Clone, Debug)]
pub struct TopicFold {
    pub member: MemberFold,
    pub partitions: Option<i32>,
    pub config: Option<BTreeMap<String, String>>,
    pub deletion_protection: Option<bool>,
}

impl From<MemberFold> for TopicFold {
    fn from(member: MemberFold) -> Self {
        TopicFold { member, partitions: None, config: None, deletion_protection: None }
    }
}

impl TopicFold {
    /// The row a request creates.
    pub fn created(e: &TopicRequested, at: At) -> Self {
        MemberFold::created(e.cluster_id.as_uuid(), at).into()
    }

    /// Moves the row to `at` with `change`; false when it already has this event.
    pub fn advance(&mut self, at: At, change: &TopicChange<'_>) -> bool {
        if !self.member.moves(change.status, at) {
            return false;
        }
        self.partitions = change.partitions.or(self.partitions);
        self.config = change.config.cloned().or(self.config.take());
        self.deletion_protection = change.deletion_protection.or(self.deletion_protection);
        true
    }
}

/// The `topics` rows requests start, as the batch folded them, in one statement; a row that exists already stays as
/// it is. Answers the ids it inserted.
pub async fn insert_topics(
    conn: &mut PgConnection,
    rows: &[(At, &TopicRequested, &TopicFold)],
) -> Result<BTreeSet<Uuid>, sqlx::Error> {
    insert_rows(
        conn,
        "INSERT INTO topics (id, org_id, cluster_id, name, partitions, replication_factor, config, \
           deletion_protection, status, version, created_at, updated_at) ",
        rows,
        |mut b, (at, e, fold)| {
            b.push_bind(e.topic_id)
                .push_bind(e.org_id.as_uuid())
                .push_bind(e.cluster_id.as_uuid())
                .push_bind(e.name.as_str().to_owned())
                .push_bind(fold.partitions.unwrap_or(e.partitions as i32))
                .push_bind(e.replication_factor as i32)
                .push_bind(sqlx::types::Json(fold.config.clone().unwrap_or_else(|| e.config.clone())))
                .push_bind(fold.deletion_protection.unwrap_or(e.deletion_protection))
                .push_bind(fold.member.status.clone())
                .push_bind(fold.member.version)
                .push_bind(at.occurred_at)
                .push_bind(fold.member.updated_at);
        },
    )
    .await
}

/// Writes these topics' rows back, in one statement.
pub async fn save_topics(conn: &mut PgConnection, rows: &[(Uuid, &TopicFold)]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (ids, status, version, updated_at) = member_columns(rows.iter().map(|(id, r)| (*id, &r.member)));
    sqlx::query(
        "UPDATE topics t SET status = u.status, version = u.version, updated_at = u.updated_at, \
           partitions = COALESCE(u.partitions, t.partitions), config = COALESCE(u.config, t.config), \
           deletion_protection = COALESCE(u.protection, t.deletion_protection) \
         FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::timestamptz[], $5::int4[], $6::jsonb[], $7::bool[]) \
           AS u(id, status, version, updated_at, partitions, config, protection) \
         WHERE t.id = u.id",
    )
    .bind(ids)
    .bind(status)
    .bind(version)
    .bind(updated_at)
    .bind(rows.iter().map(|(_, r)| r.partitions).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.config.as_ref().map(|c| sqlx::types::Json(c.clone()))).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.deletion_protection).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The columns every member row writes back: ids, statuses, versions and times.
type MemberColumns = (Vec<Uuid>, Vec<String>, Vec<i64>, Vec<DateTime<Utc>>);

fn member_columns<'a>(rows: impl Iterator<Item = (Uuid, &'a MemberFold)>) -> MemberColumns {
    let mut columns: MemberColumns = Default::default();
    for (id, m) in rows {
        columns.0.push(id);
        columns.1.push(m.status.clone());
        columns.2.push(m.version);
        columns.3.push(m.updated_at);
    }
    columns
}

/// What an event changes in its `kafka_users` row.
#[derive(Clone, Debug, Default)]
pub struct UserChange<'a> {
    pub status: Option<&'a str>,
    pub acls: Option<&'a [polaris_domain::acl::AclRule]>,
    pub quotas: Option<&'a polaris_domain::acl::UserQuotas>,
    pub generation: Option<u32>,
}

/// A `kafka_users` row as a batch folds it.
#[derive(Clone, Debug)]
pub struct UserFold {
    pub member: MemberFold,
    pub acls: Option<Vec<polaris_domain::acl::AclRule>>,
    pub quotas: Option<polaris_domain::acl::UserQuotas>,
    pub generation: Option<i32>,
}

impl From<MemberFold> for UserFold {
    fn from(member: MemberFold) -> Self {
        UserFold { member, acls: None, quotas: None, generation: None }
    }
}

impl UserFold {
    /// The row a request creates.
    pub fn created(e: &UserRequested, at: At) -> Self {
        MemberFold::created(e.cluster_id.as_uuid(), at).into()
    }

    /// Moves the row to `at` with `change`; false when it already has this event.
    pub fn advance(&mut self, at: At, change: &UserChange<'_>) -> bool {
        if !self.member.moves(change.status, at) {
            return false;
        }
        if let Some(v) = change.acls {
            self.acls = Some(v.to_vec());
        }
        if let Some(v) = change.quotas {
            self.quotas = Some(v.clone());
        }
        if let Some(v) = change.generation {
            self.generation = Some(v as i32);
        }
        true
    }
}

/// The `kafka_users` rows requests start, as the batch folded them, in one statement; a row that exists already
/// stays as it is. Answers the ids it inserted.
pub async fn insert_users(
    conn: &mut PgConnection,
    rows: &[(At, &UserRequested, &UserFold)],
) -> Result<BTreeSet<Uuid>, sqlx::Error> {
    insert_rows(
        conn,
        "INSERT INTO kafka_users (id, org_id, cluster_id, name, authentication, acls, quotas, generation, status, \
           version, created_at, updated_at) ",
        rows,
        |mut b, (at, e, fold)| {
            let authentication = serde_json::to_value(e.authentication)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            b.push_bind(e.user_id)
                .push_bind(e.org_id.as_uuid())
                .push_bind(e.cluster_id.as_uuid())
                .push_bind(e.name.clone())
                .push_bind(authentication)
                .push_bind(sqlx::types::Json(fold.acls.clone().unwrap_or_else(|| e.acls.clone())))
                .push_bind(sqlx::types::Json(fold.quotas.clone().unwrap_or_else(|| e.quotas.clone())))
                .push_bind(fold.generation.unwrap_or(1))
                .push_bind(fold.member.status.clone())
                .push_bind(fold.member.version)
                .push_bind(at.occurred_at)
                .push_bind(fold.member.updated_at);
        },
    )
    .await
}

/// Writes these users' rows back, in one statement.
pub async fn save_users(conn: &mut PgConnection, rows: &[(Uuid, &UserFold)]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (ids, status, version, updated_at) = member_columns(rows.iter().map(|(id, r)| (*id, &r.member)));
    sqlx::query(
        "UPDATE kafka_users k SET status = u.status, version = u.version, updated_at = u.updated_at, \
           acls = COALESCE(u.acls, k.acls), quotas = COALESCE(u.quotas, k.quotas), \
           generation = COALESCE(u.generation, k.generation) \
         FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::timestamptz[], $5::jsonb[], $6::jsonb[], $7::int4[]) \
           AS u(id, status, version, updated_at, acls, quotas, generation) \
         WHERE k.id = u.id",
    )
    .bind(ids)
    .bind(status)
    .bind(version)
    .bind(updated_at)
    .bind(rows.iter().map(|(_, r)| r.acls.as_ref().map(sqlx::types::Json)).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.quotas.as_ref().map(sqlx::types::Json)).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.generation).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A cluster's node rows as a batch leaves them: each role the batch replaced, with its node ids.
#[derive(Clone, Debug, Default)]
pub struct NodesFold {
    pub brokers: Option<Vec<i32>>,
    pub controllers: Option<Vec<i32>>,
}

/// Replaces the node rows of each (cluster, role) the batch changed, in two statements.
pub async fn save_nodes(conn: &mut PgConnection, clusters: &[(Uuid, &NodesFold)]) -> Result<(), sqlx::Error> {
    let (mut replaced, mut roles) = (Vec::new(), Vec::new());
    let (mut node_clusters, mut node_ids, mut node_roles) = (Vec::new(), Vec::new(), Vec::new());
    for (cluster, nodes) in clusters {
        for (role, ids) in [("broker", &nodes.brokers), ("controller", &nodes.controllers)] {
            let Some(ids) = ids else { continue };
            replaced.push(*cluster);
            roles.push(role);
            for id in ids {
                node_clusters.push(*cluster);
                node_ids.push(*id);
                node_roles.push(role);
            }
        }
    }
    if replaced.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM brokers b USING unnest($1::uuid[], $2::text[]) AS u(cluster_id, role) \
         WHERE b.cluster_id = u.cluster_id AND b.role = u.role",
    )
    .bind(replaced)
    .bind(roles)
    .execute(&mut *conn)
    .await?;
    if node_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO brokers (cluster_id, node_id, role, status) \
         SELECT cluster_id, node_id, role, 'READY' FROM unnest($1::uuid[], $2::int4[], $3::text[]) \
           AS u(cluster_id, node_id, role)",
    )
    .bind(node_clusters)
    .bind(node_ids)
    .bind(node_roles)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Where an operation is, as the projector changes it.
#[derive(Clone, Debug)]
pub struct OperationProgress {
    pub kind: String,
    pub started_at: DateTime<Utc>,
    pub state: String,
    pub steps: Vec<Step>,
    pub error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// These operations' progress, locked for the rest of the transaction (a missing operation is absent).
pub async fn lock_operations(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, OperationProgress)>, sqlx::Error> {
    type Row =
        (Uuid, String, DateTime<Utc>, String, sqlx::types::Json<Vec<Step>>, Option<String>, Option<DateTime<Utc>>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, kind, started_at, state, steps, error, finished_at FROM operations WHERE id = ANY($1) \
         ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, kind, started_at, state, steps, error, finished_at)| {
            (id, OperationProgress { kind, started_at, state, steps: steps.0, error, finished_at })
        })
        .collect())
}

/// Writes operations' progress back, all in one statement.
pub async fn save_operations(conn: &mut PgConnection, ops: &[(Uuid, &OperationProgress)]) -> Result<(), sqlx::Error> {
    if ops.is_empty() {
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(sequence: i64, second: i64) -> At {
        At { id: Uuid::nil(), sequence, occurred_at: DateTime::from_timestamp(second, 0).expect("time") }
    }

    #[test]
    fn a_cluster_row_takes_each_event_once_and_keeps_what_it_did_not_change() {
        let mut row = ClusterFold { version: 3, ..Default::default() };
        assert!(!row.advance(at(3, 10), &ClusterChange { status: Some("READY"), ..Default::default() }));
        assert!(!row.changed(), "a redelivery changes nothing");
        let ready = ClusterChange { status: Some("READY"), status_reason: Some(None), ..Default::default() };
        assert!(row.advance(at(4, 11), &ready));
        assert!(row.advance(at(5, 12), &ClusterChange { brokers: Some(5), ..Default::default() }));
        assert_eq!((row.version, row.status.as_deref(), row.brokers), (5, Some("READY"), Some(5)));
        assert_eq!(row.status_reason, Some(None), "a column set to NULL is set, not left as stored");
        assert_eq!(row.kafka_version, None, "a column no event named is left as stored");
        assert_eq!(row.updated_at, Some(at(5, 12).occurred_at));
    }

    #[test]
    fn a_deleted_member_stays_deleted_whichever_event_comes_first() {
        let cluster = Uuid::from_u128(7);
        let fresh = || MemberFold::created(cluster, at(1, 10));
        // The member's own late event, then its cluster's deletion.
        let mut first = fresh();
        assert!(first.moves(Some("READY"), at(2, 30)));
        first.cluster_deleted(DateTime::from_timestamp(20, 0).expect("time"));
        // The cluster's deletion, then the member's late event.
        let mut second = fresh();
        second.cluster_deleted(DateTime::from_timestamp(20, 0).expect("time"));
        assert!(second.moves(Some("READY"), at(2, 30)));
        for row in [&first, &second] {
            assert_eq!((row.status.as_str(), row.version), ("DELETED", 2));
            assert_eq!(row.updated_at, at(2, 30).occurred_at, "the later of the two times");
        }
        assert!(!second.moves(Some("READY"), at(2, 40)), "a redelivery changes nothing");
    }
}
