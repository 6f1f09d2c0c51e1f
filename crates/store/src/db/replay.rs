//! The SQL of a read-model replay (`polaris_projector::replay`): a schema of empty twins of the read models, its
//! bookkeeping row in `replays` (how far it got, so a replay resumes), the events in commit order, connections
//! whose `search_path` writes into the twins, and the checksums that compare twin and original in one snapshot.

use sqlx::{ConnectOptions, Connection as _, PgConnection, PgPool};

use crate::{STORED_EVENT_COLUMNS, StoredEvent};

/// The columns left out of a comparison: set from the wall clock when a row is projected, not from events.
const WALL_CLOCK_COLUMNS: &str = "'projected_at'";

/// The unfinished replay named `name`, or the newest unfinished one.
pub async fn unfinished(pool: &PgPool, name: Option<&str>) -> Result<Option<String>, sqlx::Error> {
    match name {
        Some(name) => {
            sqlx::query_scalar("SELECT schema_name FROM replays WHERE schema_name = $1 AND finished_at IS NULL")
                .bind(name)
                .fetch_optional(pool)
                .await
        }
        None => {
            sqlx::query_scalar(
                "SELECT schema_name FROM replays WHERE finished_at IS NULL ORDER BY started_at DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await
        }
    }
}

/// Creates schema `name` (already checked to be a replay schema name) with an empty twin of each table, and its
/// `replays` row, in one transaction.
pub async fn create(pool: &PgPool, name: &str, tables: &[&str]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut *tx).await?;
    for table in tables {
        sqlx::query(&format!("CREATE TABLE {name}.{table} (LIKE public.{table} INCLUDING ALL)"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("INSERT INTO replays (schema_name) VALUES ($1)").bind(name).execute(&mut *tx).await?;
    tx.commit().await
}

/// `n` connections that write into `schema`'s twins (and read everything else from `public`).
pub async fn connections(pool: &PgPool, schema: &str, n: usize) -> Result<Vec<PgConnection>, sqlx::Error> {
    let options = pool.connect_options().as_ref().clone().options([
        ("search_path", format!("{schema},public")),
        ("plan_cache_mode", "force_custom_plan".into()),
        // The partitions' commits return before their WAL is flushed; the cursor's commit (on the pool,
        // synchronous, made after them) flushes it. A crash between the two loses only a batch the cursor
        // has not passed, which resume applies again.
        ("synchronous_commit", "off".into()),
    ]);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(options.connect().await?);
    }
    Ok(conns)
}

/// Where the replay into `schema` got to in the commit order: `(xid, position)` of the last event applied.
pub async fn cursor(pool: &PgPool, schema: &str) -> Result<(String, i64), sqlx::Error> {
    sqlx::query_as("SELECT last_xid::text, last_position FROM public.replays WHERE schema_name = $1")
        .bind(schema)
        .fetch_one(pool)
        .await
}

/// Up to `limit` events after `(xid, position)` in commit order, of transactions older than every running one.
pub async fn events_after(
    pool: &PgPool,
    (xid, position): (&str, i64),
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let select = format!(
        "SELECT {STORED_EVENT_COLUMNS} FROM public.events \
         WHERE (xid, position) > ($1::xid8, $2) AND xid < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY events.xid, events.position LIMIT $3"
    );
    sqlx::query_as(&select).bind(xid).bind(position).bind(limit).fetch_all(pool).await
}

/// Moves the replay's cursor past `applied` more events; answers how many it has applied in all.
pub async fn advance(
    pool: &PgPool,
    schema: &str,
    (xid, position): (&str, i64),
    applied: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE public.replays SET last_xid = $2::xid8, last_position = $3, \
         events_applied = events_applied + $4 WHERE schema_name = $1 RETURNING events_applied",
    )
    .bind(schema)
    .bind(xid)
    .bind(position)
    .bind(applied)
    .fetch_one(pool)
    .await
}

/// The cluster named by a topic's, user's or drift's first event (its `payload` column).
const FIRST_EVENT_CLUSTER: &str = "coalesce(payload::jsonb #>> '{TopicRequested,cluster_id}', \
     payload::jsonb #>> '{UserRequested,cluster_id}', payload::jsonb #>> '{DriftDetected,cluster_id}')";

/// The cluster a topic, user or drift belongs to, read from its first event (`TopicRequested`, `UserRequested`,
/// `DriftDetected`).
pub async fn member_cluster(pool: &PgPool, aggregate_type: &str, id: &str) -> Result<Option<String>, sqlx::Error> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT {FIRST_EVENT_CLUSTER} FROM public.events \
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = 1"
    ))
    .bind(aggregate_type)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .flatten())
}

/// Runs `work` in a transaction on `conn`, committing when it succeeds.
pub async fn in_transaction<'c, T, E: From<sqlx::Error>>(
    conn: &'c mut PgConnection,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
) -> Result<T, E> {
    let mut tx = conn.begin().await?;
    let out = work(&mut tx).await?;
    tx.commit().await?;
    Ok(out)
}

/// One table's checksums on one side: per family key (`family` column) a digest, and the row count and digest of
/// the whole table.
#[derive(Clone, Debug, Default)]
pub struct Checksums {
    pub per_family: std::collections::BTreeMap<String, String>,
    pub rows: i64,
    pub whole: String,
}

/// The clusters with an event committed after `since` (in commit order) that one side has not applied, as the
/// transaction's snapshot sees them: the replay into `schema` has not when the event is after its cursor, and the
/// live projector has not when its row's version is older than the event. A command writes its operation row with
/// its events, so the live side has that row before any projector runs.
async fn unapplied_clusters(
    conn: &mut PgConnection,
    schema: &str,
    (xid, position): (&str, i64),
) -> Result<std::collections::BTreeSet<String>, sqlx::Error> {
    let rows: Vec<Option<String>> = sqlx::query_scalar(&format!(
        "WITH fresh AS ( \
           SELECT e.aggregate_type AS kind, e.aggregate_id AS id, max(e.sequence) AS sequence, \
                  bool_or((e.xid, e.position) > (r.last_xid, r.last_position)) AS replay_behind \
           FROM public.events e JOIN public.replays r ON r.schema_name = $1 \
           WHERE (e.xid, e.position) > ($2::xid8, $3) AND e.aggregate_type IN ('cluster', 'topic', 'user', 'drift') \
           GROUP BY 1, 2) \
         SELECT DISTINCT CASE WHEN kind = 'cluster' THEN id ELSE \
           (SELECT {FIRST_EVENT_CLUSTER} FROM public.events f \
            WHERE f.aggregate_type = kind AND f.aggregate_id = id AND f.sequence = 1) END \
         FROM fresh \
         WHERE replay_behind OR coalesce(CASE kind \
           WHEN 'cluster' THEN (SELECT version FROM public.clusters t WHERE t.id = fresh.id::uuid) \
           WHEN 'topic' THEN (SELECT version FROM public.topics t WHERE t.id = fresh.id::uuid) \
           WHEN 'user' THEN (SELECT version FROM public.kafka_users t WHERE t.id = fresh.id::uuid) \
           ELSE (SELECT version FROM public.drifts t WHERE t.id = fresh.id::uuid) END, 0) < sequence",
    ))
    .bind(schema)
    .bind(xid)
    .bind(position)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().flatten().collect())
}

/// What one comparison read: the checksums of each `(table, family)` in `public` and in the replay's schema, and
/// the clusters with recent events one side had not applied yet, all in one snapshot.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub checksums: Vec<(Checksums, Checksums)>,
    pub unapplied: std::collections::BTreeSet<String>,
}

/// The checksums of each `(table, family)` in `public` and in `schema`, read in one REPEATABLE READ snapshot with
/// the clusters one side is behind on among those with events after `since`.
pub async fn checksums(
    pool: &PgPool,
    schema: &str,
    tables: &[(&str, &str)],
    since: (&str, i64),
) -> Result<Snapshot, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL timezone TO 'UTC'").execute(&mut *tx).await?;
    let unapplied = unapplied_clusters(&mut tx, schema, since).await?;
    let mut out = Vec::with_capacity(tables.len());
    for (table, family) in tables {
        let mut sides = Vec::with_capacity(2);
        for source in ["public", schema] {
            // One scan: a digest per family, and (the empty grouping set, GROUPING = 1) one over the whole table,
            // which is there even when the table is empty.
            let rows: Vec<(i32, Option<String>, Option<String>, i64)> = sqlx::query_as(&format!(
                "SELECT GROUPING({family}), {family}::text, md5(string_agg(r, E'\\n' ORDER BY r)), count(*) \
                 FROM (SELECT {family}, (to_jsonb(t) - {WALL_CLOCK_COLUMNS})::text AS r FROM {source}.{table} t) x \
                 GROUP BY GROUPING SETS (({family}), ())"
            ))
            .fetch_all(&mut *tx)
            .await?;
            let mut side = Checksums::default();
            let mut whole = None;
            for (is_whole, key, md5, n) in rows {
                if is_whole == 1 {
                    (side.rows, whole) = (n, md5);
                } else {
                    side.per_family.insert(key.unwrap_or_default(), md5.unwrap_or_default());
                }
            }
            side.whole = whole.unwrap_or_else(|| "empty".into());
            sides.push(side);
        }
        let replayed = sides.pop().unwrap_or_default();
        let live = sides.pop().unwrap_or_default();
        out.push((live, replayed));
    }
    tx.commit().await?;
    Ok(Snapshot { checksums: out, unapplied })
}

/// How many events the replay into `schema` applied in all.
pub async fn events_applied(pool: &PgPool, schema: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT events_applied FROM replays WHERE schema_name = $1").bind(schema).fetch_one(pool).await
}

/// Marks the replay finished, with its verdict.
pub async fn finish(pool: &PgPool, schema: &str, identical: bool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE replays SET finished_at = now(), identical = $2 WHERE schema_name = $1")
        .bind(schema)
        .bind(identical)
        .execute(pool)
        .await?;
    Ok(())
}

/// Drops the replay's schema (its name was checked when it was created).
pub async fn drop_schema(pool: &PgPool, schema: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(pool).await?;
    Ok(())
}
