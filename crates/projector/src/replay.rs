//! `polaris admin replay`: proves the read models can be rebuilt exactly from the event log (ARCHITECTURE.md
//! rule 3).
//!
//! Every read model table is created empty in a fresh schema (`polaris_replay_<time>`, same columns, keys and
//! indexes as the live one), and every stored event is applied to it with the projector's own code, in commit
//! order (the relay's `(xid, position)` walk below `pg_snapshot_xmin`, so a late-committing transaction is never
//! skipped), each cluster's events on one of a few connections. The position is committed after each batch, so
//! a killed replay resumes where it stopped.
//!
//! Then each table is compared with the live one by a canonical checksum: md5 over the rows as jsonb text
//! (sorted, UTC, without the wall-clock `projected_at`). Commands may keep arriving meanwhile, so the comparison
//! is made per cluster (a cluster's row, operations, brokers, topics and users) and repeated until every cluster agrees
//! or the settle deadline passes. A cluster whose newest events one side has not applied yet (committed after the
//! replay's last pass, or not yet projected live) is left out of that round: it differs only until both have caught
//! up, and a stream of commands always has some.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use polaris_domain::EventEnvelope;
use polaris_store::db::replay as db;
use polaris_store::{Connection, Pool};
use serde::Serialize;
use uuid::Uuid;

use crate::{Batch, ProjectorError};

/// The read models, each with the column naming the cluster its rows belong to.
pub const READ_MODELS: [(&str, &str); 6] = [
    ("clusters", "id"),
    ("operations", "cluster_id"),
    ("brokers", "cluster_id"),
    ("topics", "cluster_id"),
    ("kafka_users", "cluster_id"),
    ("drifts", "cluster_id"),
];

/// Events read and applied per batch: each batch costs about fifteen statements per partition and a cursor commit
/// whatever its size (`polaris-bench replay` on 90,000 events: 14,700 events/s at 1,000, 16,200 at 5,000).
pub const DEFAULT_BATCH: i64 = 5000;

#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Resume (or create) this schema; by default the newest unfinished replay is resumed, else a new one starts.
    pub schema: Option<String>,
    pub batch_size: i64,
    /// How long to keep comparing while the live read models or the replay are still catching up.
    pub settle_timeout: Duration,
    /// Keep the replay schema even when it is identical (it is always kept when it differs).
    pub keep: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self { schema: None, batch_size: DEFAULT_BATCH, settle_timeout: Duration::from_secs(60), keep: false }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TableChecksum {
    pub table: String,
    pub live_rows: i64,
    pub replayed_rows: i64,
    pub live_md5: String,
    pub replayed_md5: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    pub schema: String,
    pub resumed: bool,
    /// Events applied by this run (a resumed run does not count what an earlier run applied).
    pub events_applied: u64,
    /// Events the replay schema holds in total.
    pub events_total: u64,
    pub replay_seconds: f64,
    pub events_per_second: f64,
    pub compare_rounds: u32,
    pub tables: Vec<TableChecksum>,
    /// Clusters whose rows still differ at the deadline.
    pub differing_clusters: Vec<String>,
    /// Clusters left out of the last comparison: they had events one side had not applied yet, committed after the
    /// replay's last pass or not yet projected live (the table checksums above include them).
    pub clusters_in_flight: usize,
    pub identical: bool,
    pub schema_dropped: bool,
}

fn valid_schema_name(name: &str) -> bool {
    name.strip_prefix("polaris_replay_").is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 40
            && rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    })
}

/// Runs a replay to the end and compares. `progress` is called after every batch with (events in the replay
/// schema, events per second of this run).
pub async fn replay(
    pool: &Pool,
    options: &ReplayOptions,
    mut progress: impl FnMut(u64, f64),
) -> Result<ReplayReport, ProjectorError> {
    let (schema, resumed) = open(pool, options.schema.as_deref()).await?;
    let started = Instant::now();
    let mut applier = Applier::connect(pool, &schema).await?;
    let mut applied = applier
        .catch_up(pool, &schema, options.batch_size, |total, n| {
            progress(total, n as f64 / started.elapsed().as_secs_f64().max(1e-9))
        })
        .await?;
    let replay_seconds = started.elapsed().as_secs_f64();

    let deadline = Instant::now() + options.settle_timeout;
    let mut rounds = 0;
    // Events after `since` may be in flight on either side; the first round excuses only those the replay has not
    // reached, later ones also those of the last catch-up that the live projector may not have applied yet.
    let mut since = db::cursor(pool, &schema).await?;
    let comparison = loop {
        rounds += 1;
        let comparison = compare(pool, &schema, (&since.0, since.1)).await?;
        if comparison.differing.is_empty() || Instant::now() >= deadline {
            break comparison;
        }
        // Something is in flight: let the live projector move on, and apply what has been committed since.
        tokio::time::sleep(Duration::from_millis(250)).await;
        since = db::cursor(pool, &schema).await?;
        applied += applier.catch_up(pool, &schema, options.batch_size, |_, _| {}).await?;
    };
    let identical = comparison.differing.is_empty();
    let events_total = db::events_applied(pool, &schema).await?;
    db::finish(pool, &schema, identical).await?;
    let drop = identical && !options.keep;
    if drop {
        db::drop_schema(pool, &schema).await?;
    }
    Ok(ReplayReport {
        schema,
        resumed,
        events_applied: applied,
        events_total: events_total.max(0) as u64,
        replay_seconds,
        events_per_second: if replay_seconds > 0.0 { applied as f64 / replay_seconds } else { 0.0 },
        compare_rounds: rounds,
        tables: comparison.tables,
        differing_clusters: comparison.differing.into_iter().collect(),
        clusters_in_flight: comparison.unapplied,
        identical,
        schema_dropped: drop,
    })
}

/// The schema to replay into, and whether it is resumed.
async fn open(pool: &Pool, requested: Option<&str>) -> Result<(String, bool), ProjectorError> {
    if let Some(name) = requested
        && !valid_schema_name(name)
    {
        return Err(ProjectorError::Replay(format!("schema name {name:?} must look like polaris_replay_<a-z0-9_>")));
    }
    let existing = db::unfinished(pool, requested).await?;
    if let Some(name) = existing {
        return Ok((name, true));
    }
    let name = match requested {
        Some(name) => name.to_owned(),
        None => format!("polaris_replay_{}", chrono::Utc::now().format("%Y%m%d_%H%M%S_%6f")),
    };
    let tables: Vec<&str> = READ_MODELS.iter().map(|(table, _)| *table).collect();
    db::create(pool, &name, &tables).await?;
    Ok((name, false))
}

/// Connections applying events side by side. Each cluster's events (and its topics' and users') go to one of them, in
/// commit order, so nothing that depends on order is ever split.
const PARTITIONS: usize = 4;

/// Applies stored events to the replay schema: connections whose search_path puts the replay schema first, and
/// each topic's cluster once looked up, both kept for the whole replay (the settle loop catches up repeatedly).
struct Applier {
    conns: Vec<Connection>,
    families: HashMap<Uuid, Uuid>,
}

impl Applier {
    async fn connect(pool: &Pool, schema: &str) -> Result<Self, ProjectorError> {
        // The projector's statements name tables unqualified, so they land in the replay schema. Set for the
        // session, so prepared statements stay valid between batches. Plans are made per execution: the replay
        // tables start empty, and a generic plan cached while they were (a sequential scan) would stay in use as
        // they grow, making every lookup slower than the last.
        let conns = db::connections(pool, schema, PARTITIONS).await?;
        Ok(Self { conns, families: HashMap::new() })
    }

    /// Applies every committed event the replay schema has not seen, batch by batch. Each batch is split by
    /// cluster over the partitions, applied in one transaction per partition, and then the cursor moves; the next
    /// batch is read while this one is applied. A batch cut short (a kill between the partitions' commits and the
    /// cursor) is applied again on resume, which the projector's sequence checks turn into no-ops for what was
    /// already applied, exactly as for a redelivered message. `progress` gets (events in the replay schema, events
    /// applied by this call). Returns how many events the cursor moved over.
    async fn catch_up(
        &mut self,
        pool: &Pool,
        schema: &str,
        batch_size: i64,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64, ProjectorError> {
        // The cursor is bound as constants, so the (xid, position) index serves a range scan; the ORDER BY names
        // `events.xid` (the xid8 column, not the `xid::text` output column of the same name).
        let mut applied = 0u64;
        let (cursor_xid, cursor_position) = db::cursor(pool, schema).await?;
        let mut rows = db::events_after(pool, (&cursor_xid, cursor_position), batch_size).await?;
        loop {
            let Some(last) = rows.last() else { return Ok(applied) };
            let (last_xid, last_position) = (last.xid.clone(), last.position);
            let full = rows.len() as i64 >= batch_size;
            let count = rows.len();
            let mut parts: Vec<Vec<EventEnvelope>> = vec![Vec::new(); PARTITIONS];
            for row in rows {
                let envelope = row.into_envelope().map_err(|e| ProjectorError::Replay(e.to_string()))?;
                let family = family_of(pool, &mut self.families, &envelope).await?;
                parts[(family.as_u128() % PARTITIONS as u128) as usize].push(envelope);
            }
            let apply =
                futures::future::try_join_all(self.conns.iter_mut().zip(parts).map(|(conn, envelopes)| async move {
                    db::in_transaction(conn, async |tx| {
                        let mut batch = Batch::new(tx);
                        batch.apply_all(&envelopes.iter().collect::<Vec<_>>()).await?;
                        batch.flush().await.map(|_| ())
                    })
                    .await
                }));
            // A short batch was the last one committed: nothing to read ahead.
            let next = async {
                match full {
                    true => db::events_after(pool, (&last_xid, last_position), batch_size).await.map(Some),
                    false => Ok(None),
                }
            };
            let (done, next) = tokio::join!(apply, next);
            done?;
            let total = db::advance(pool, schema, (&last_xid, last_position), count as i64).await?;
            applied += count as u64;
            progress(total.max(0) as u64, applied);
            match next? {
                Some(next) => rows = next,
                None => return Ok(applied),
            }
        }
    }
}

/// The cluster an event's read-model rows belong to: its own id for a cluster event, its cluster's for a topic
/// or user event (from `TopicRequested` / `UserRequested`, remembered, or read from the first event).
async fn family_of(
    pool: &Pool,
    families: &mut HashMap<Uuid, Uuid>,
    env: &EventEnvelope,
) -> Result<Uuid, ProjectorError> {
    if env.aggregate_type != "topic" && env.aggregate_type != "user" {
        return Ok(env.aggregate_id);
    }
    if let Some(cluster) = families.get(&env.aggregate_id) {
        return Ok(*cluster);
    }
    let cluster = match env.payload.get("cluster_id").and_then(|v| v.as_str()).filter(|_| env.sequence == 1) {
        Some(id) => Some(id.to_owned()),
        None => db::member_cluster(pool, &env.aggregate_type, &env.aggregate_id.to_string()).await?,
    };
    // A topic without a readable first event keeps to its own partition slot (its id); nothing depends on it.
    let cluster = cluster.and_then(|c| c.parse().ok()).unwrap_or(env.aggregate_id);
    families.insert(env.aggregate_id, cluster);
    Ok(cluster)
}

struct Comparison {
    tables: Vec<TableChecksum>,
    differing: BTreeSet<String>,
    unapplied: usize,
}

/// Compares each read model with its replayed twin in one snapshot: whole-table checksums, and per cluster.
/// A cluster with events after `since` that one side has not applied yet is left to a later round: under a steady
/// stream of commands some cluster always has, and the live side has a command's operation row from its commit,
/// before either projector.
async fn compare(pool: &Pool, schema: &str, since: (&str, i64)) -> Result<Comparison, ProjectorError> {
    let snapshot = db::checksums(pool, schema, &READ_MODELS, since).await?;
    let mut tables = Vec::new();
    let mut differing = BTreeSet::new();
    for ((table, _), (live, replayed)) in READ_MODELS.iter().zip(snapshot.checksums) {
        for key in live.per_family.keys().chain(replayed.per_family.keys()) {
            if live.per_family.get(key) != replayed.per_family.get(key) && !snapshot.unapplied.contains(key) {
                differing.insert(key.clone());
            }
        }
        tables.push(TableChecksum {
            table: (*table).to_owned(),
            live_rows: live.rows,
            replayed_rows: replayed.rows,
            live_md5: live.whole,
            replayed_md5: replayed.whole,
        });
    }
    Ok(Comparison { tables, differing, unapplied: snapshot.unapplied.len() })
}

#[cfg(test)]
mod tests {
    use super::valid_schema_name;

    #[test]
    fn only_replay_schema_names_are_accepted() {
        assert!(valid_schema_name("polaris_replay_20261126_1"));
        for bad in ["public", "polaris_replay_", "polaris_replay_x;drop", "polaris_replay_A", "x_polaris_replay_1"] {
            assert!(!valid_schema_name(bad), "{bad}");
        }
    }
}
