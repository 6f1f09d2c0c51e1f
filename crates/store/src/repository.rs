//! The event repository behind both command paths: postgres-es for reading, and its own `persist` so a
//! command's idempotency key is written in the same transaction as the command's events.
//!
//! The key travels in the command metadata (`IDEMPOTENCY_KEY`, `REQUEST_HASH`); it is taken out before the
//! events are written, so events never carry it.

use cqrs_es::Aggregate;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot};
use postgres_es::PostgresEventRepository;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::Value;
use sqlx::PgPool;

use std::sync::Arc;

use crate::DirectPool;
use crate::group::Outcome;
use crate::invariants::Append;

/// Metadata key carrying the request's `Idempotency-Key`.
pub const IDEMPOTENCY_KEY: &str = "polaris.idempotency_key";
/// Metadata key carrying the SHA-256 of the request (method, path, body).
pub const REQUEST_HASH: &str = "polaris.request_hash";
/// Metadata key carrying the request's audit entry ([`AuditRecord`] as JSON): it commits with the events, so an
/// accepted command always has its entry, even when the process dies before it answers.
pub const AUDIT_ENTRY: &str = "polaris.audit";

/// The audit entry of an accepted command, written in the events' transaction.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    pub id: uuid::Uuid,
    pub org_id: uuid::Uuid,
    pub actor: String,
    pub channel: String,
    pub request_id: String,
    pub method: String,
    pub resource: String,
    pub command: String,
    pub status: i32,
    pub policy_version: Option<i64>,
    pub idempotency_key: Option<String>,
}

impl AuditRecord {
    /// The entry's insert, as `accepted`, as one sub-statement of the command's append.
    fn push_insert(self, q: &mut sqlx::QueryBuilder<'static, sqlx::Postgres>) {
        q.push(
            "INSERT INTO audit_entries (id, org_id, actor, channel, at, request_id, method, resource, command, \
             outcome, status, policy_version, idempotency_key) VALUES (",
        );
        let mut values = q.separated(", ");
        values.push_bind(self.id).push_bind(self.org_id).push_bind(self.actor).push_bind(self.channel).push("now()");
        values.push_bind(self.request_id).push_bind(self.method).push_bind(self.resource).push_bind(self.command);
        values.push("'accepted'").push_bind(self.status).push_bind(self.policy_version).push_bind(self.idempotency_key);
        q.push(") ON CONFLICT (id) DO NOTHING");
    }
}

/// An invariant the command's own transaction refused: nothing was appended.
#[derive(Debug, thiserror::Error)]
pub enum InvariantViolation {
    #[error("a cluster named {name:?} already exists in this org")]
    ClusterNameTaken { name: String },
    #[error("namespace {namespace:?} already belongs to another cluster on this target")]
    NamespaceTaken { namespace: String },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct AppendLabels {
    pub aggregate_type: String,
    pub event_type: String,
}

/// Metrics of the command path's event store.
#[derive(Clone, Debug, Default)]
pub struct StoreMetrics {
    pub events_appended: Family<AppendLabels, Counter>,
}

impl StoreMetrics {
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "polaris_events_appended",
            "Events committed to the event store by the command path, by aggregate and event type",
            self.events_appended.clone(),
        );
    }
}

pub struct EventRepository {
    inner: PostgresEventRepository,
    pool: PgPool,
    /// The appends' connections (no ping after each; see [`DirectPool`]).
    direct: Arc<DirectPool>,
    metrics: StoreMetrics,
}

impl EventRepository {
    pub fn new(pool: PgPool, direct: Arc<DirectPool>, metrics: StoreMetrics) -> Self {
        EventRepository { inner: PostgresEventRepository::new(pool.clone()), pool, direct, metrics }
    }
}

pub(crate) fn db_error(e: sqlx::Error) -> PersistenceError {
    match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("cluster_names_pkey") => {
            PersistenceError::UnknownError(Box::new(InvariantViolation::ClusterNameTaken { name: String::new() }))
        }
        sqlx::Error::Database(d) if d.constraint() == Some("cluster_namespaces_pkey") => {
            PersistenceError::UnknownError(Box::new(InvariantViolation::NamespaceTaken { namespace: String::new() }))
        }
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => PersistenceError::OptimisticLockError,
        // PostgreSQL starting, stopping or cut off (SQLSTATE classes 08 and 57, "the database system is starting
        // up"): unavailable, as a broken connection is, not a failure of Polaris.
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57")) => {
            PersistenceError::ConnectionError(Box::new(e))
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            PersistenceError::ConnectionError(Box::new(e))
        }
        _ => PersistenceError::UnknownError(Box::new(e)),
    }
}

/// Fault injection for the tests that kill the API between the events' commit and the response:
/// `POLARIS_FAILPOINTS=abort-after-commit` aborts the process right after an append commits. Read once; unset in
/// every deployment.
fn failpoint_abort_after_commit() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("POLARIS_FAILPOINTS").is_ok_and(|v| v.split(',').any(|f| f.trim() == "abort-after-commit"))
    })
}

/// The idempotency claim in an event's metadata, removed from it.
fn take_claim(metadata: &mut Value) -> Option<(String, String, String)> {
    let map = metadata.as_object_mut()?;
    let key = map.remove(IDEMPOTENCY_KEY);
    let hash = map.remove(REQUEST_HASH);
    let org = map.get("org_id").and_then(Value::as_str).map(str::to_owned);
    match (key, hash, org) {
        (Some(Value::String(k)), Some(Value::String(h)), Some(o)) => Some((o, k, h)),
        _ => None,
    }
}

tokio::task_local! {
    /// The events appended (committed) in this task, for a caller inside [`capture_appended`].
    static APPENDED: std::cell::RefCell<Vec<SerializedEvent>>;
}

/// Runs `f` (a command's execution) and returns its output with the events it appended and committed, exactly as
/// stored: the command path answers from them instead of reading the event store back.
pub async fn capture_appended<F: std::future::Future>(f: F) -> (F::Output, Vec<SerializedEvent>) {
    APPENDED
        .scope(std::cell::RefCell::new(Vec::new()), async move {
            let output = f.await;
            (output, APPENDED.with(|appended| appended.take()))
        })
        .await
}

tokio::task_local! {
    /// The aggregate id this task generated for the aggregate it creates (see [`creating`]).
    static CREATING: String;
}

/// Runs `f` (a create's execution) for an aggregate whose id was just generated at random for it (a v4 UUID): it
/// has no events, so loading it answers none without asking PostgreSQL, one round trip of a create's three. A
/// create whose id a client can name (a topic's or user's, derived from its name) does not use this: it must find
/// the aggregate that exists.
pub async fn creating<F: std::future::Future>(aggregate_id: String, f: F) -> F::Output {
    CREATING.scope(aggregate_id, f).await
}

impl EventRepository {
    /// The append of `events`: the events, what they imply (`crate::invariants`), the command's idempotency key
    /// and its audit entry, taken out of the events' metadata.
    async fn append_of<A: Aggregate>(&self, events: &[SerializedEvent]) -> Result<Append, PersistenceError> {
        let mut append = Append::new();
        let mut claim = None;
        let mut audit: Option<AuditRecord> = None;
        let mut rows = Vec::with_capacity(events.len());
        for event in events {
            let mut metadata = event.metadata.clone();
            if let Some(c) = take_claim(&mut metadata) {
                claim.get_or_insert((c, event.aggregate_id.clone(), event.sequence));
            }
            if let Some(Value::String(a)) = metadata.as_object_mut().and_then(|m| m.remove(AUDIT_ENTRY)) {
                let record = serde_json::from_str(&a)
                    .map_err(|e| PersistenceError::UnknownError(format!("audit entry in metadata: {e}").into()))?;
                audit.get_or_insert(record);
            }
            crate::invariants::enforce(&self.pool, &mut append, A::TYPE, event, &metadata).await?;
            rows.push((
                event.aggregate_id.clone(),
                event.sequence as i64,
                event.event_type.clone(),
                event.event_version.clone(),
                event.payload.clone(),
                metadata,
            ));
        }
        // The events in one multi-row INSERT, which takes their positions in the order of its rows: in sequence
        // order. (Separate sub-statements run in no order the query promises.)
        if let Some((aggregate_id, ..)) = rows.first() {
            append.key(|| format!("events/{}/{aggregate_id}", A::TYPE));
            append.part(move |q| {
                q.push(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
                     metadata) ",
                );
                q.push_values(
                    rows,
                    |mut values, (aggregate_id, sequence, event_type, event_version, payload, metadata)| {
                        values.push_bind(A::TYPE).push_bind(aggregate_id).push_bind(sequence);
                        values.push_bind(event_type).push_bind(event_version).push_bind(payload).push_bind(metadata);
                    },
                );
            });
        }
        if let Some(((org, key, hash), aggregate_id, sequence)) = claim {
            let org: uuid::Uuid =
                org.parse().map_err(|e| PersistenceError::UnknownError(format!("metadata org_id: {e}").into()))?;
            // A key already present (a concurrent request with the same key won) fails the whole append: the
            // caller sees a conflict and replays the winner's response.
            append.part(move |q| {
                q.push(
                    "INSERT INTO idempotency_keys (org_id, key, request_hash, aggregate_type, aggregate_id, sequence) \
                     VALUES (",
                );
                let mut values = q.separated(", ");
                values.push_bind(org).push_bind(key).push_bind(hash).push_bind(A::TYPE);
                values.push_bind(aggregate_id).push_bind(sequence as i64);
                q.push(")");
            });
        }
        if let Some(record) = audit {
            append.part(move |q| record.push_insert(q));
        }
        Ok(append)
    }
}

impl PersistedEventRepository for EventRepository {
    async fn get_events<A: Aggregate>(&self, aggregate_id: &str) -> Result<Vec<SerializedEvent>, PersistenceError> {
        if CREATING.try_with(|id| id == aggregate_id).unwrap_or(false) {
            return Ok(Vec::new());
        }
        self.inner.get_events::<A>(aggregate_id).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.inner.get_last_events::<A>(aggregate_id, last_sequence).await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        self.inner.get_snapshot::<A>(aggregate_id).await
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if snapshot_update.is_some() {
            return Err(PersistenceError::UnknownError("Polaris aggregates are not snapshotted".into()));
        }
        let append = self.append_of::<A>(events).await?;
        if !append.is_empty() {
            match self.direct.appends.write(&self.direct, append).await {
                Outcome::Done(result) => result.map_err(db_error)?,
                // Its group was refused and nothing was written: alone, the append says whether it was this one.
                Outcome::Alone => self.append_of::<A>(events).await?.execute(&self.direct).await.map_err(db_error)?,
            }
        }
        if failpoint_abort_after_commit() {
            // Fault tests: the process dies with the append committed and nobody told (see the function).
            std::process::abort();
        }
        let _ = APPENDED.try_with(|appended| appended.borrow_mut().extend(events.iter().cloned()));
        for event in events {
            let labels = AppendLabels { aggregate_type: A::TYPE.to_owned(), event_type: event.event_type.clone() };
            self.metrics.events_appended.get_or_create(&labels).inc();
        }
        Ok(())
    }

    async fn stream_events<A: Aggregate>(&self, aggregate_id: &str) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_all_events::<A>().await
    }
}
