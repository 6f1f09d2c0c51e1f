//! Persistence for Polaris: the migrations, the event store (postgres-es over one shared `PgPool`), the
//! conversion from a stored event to the published envelope, and the relay that moves committed events to
//! Kafka in commit order.

pub mod chain;
pub mod commits;
pub mod cursor;
pub mod db;
pub mod direct;
mod group;
mod invariants;
pub mod operations;
pub mod relay;
pub mod repository;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::CqrsFramework;
use cqrs_es::persist::{EventUpcaster, PersistedEventStore, SerializedEvent};
use polaris_domain::topic::Topic;
use polaris_domain::user::KafkaUser;
use polaris_domain::{Cluster, CommandMetadata, EventEnvelope};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use cqrs_es;
pub use cursor::{Cursor, CursorKind, InvalidCursor};
pub use direct::DirectPool;
pub use relay::{Relay, RelayConfig, RelayError};
/// The database handles code above the store holds without depending on sqlx: it passes them to the
/// datastore's functions and runs no statement of its own.
pub use sqlx::{Error as DbError, PgConnection as Connection, PgExecutor as Executor, PgPool as Pool};

/// The SQL migrations under `migrations/`, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

pub use repository::{AuditRecord, EventRepository, InvariantViolation, StoreMetrics, capture_appended, creating};

pub type ClusterCqrs = CqrsFramework<Cluster, PersistedEventStore<EventRepository, Cluster>>;

/// The command path for clusters: load, handle, and append events (with their outbox columns) in one
/// transaction. No cqrs-es queries are attached: read models are fed from Kafka, never in-process.
pub fn cluster_cqrs(pool: PgPool, direct: Arc<DirectPool>, metrics: StoreMetrics) -> ClusterCqrs {
    CqrsFramework::new(event_store(pool, direct, metrics), vec![], ())
}

/// The session settings of every Polaris connection, sent with the startup message (no round trip).
///
/// `random_page_cost`: Polaris' working set (the read models, the newest events) is in memory, where a page read
/// at random costs about what a sequential one does. With PostgreSQL's default of 4, the projector's set-based
/// statements (a table joined to `unnest` of a batch's ids) were planned as a hash join over a sequential scan
/// of the whole table: 38 ms for the brokers of 250 clusters among 10,000, against 3 ms by the primary key.
pub const SESSION_SETTINGS: [(&str, &str); 1] = [("random_page_cost", "1.1")];

/// A pooled connection idle this long is pinged before it is handed out.
pub const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// The pool every Polaris role uses (and the test databases' pools).
///
/// sqlx pings a connection when it goes back to the pool, so a connection a failed statement broke is dropped
/// there. One that breaks while idle (PostgreSQL restarted) is caught by a ping before it is handed out again,
/// but only once it has been idle for [`PING_IDLE_AFTER`]: sqlx's default pings on every acquire, a round trip
/// before each statement. A restart takes longer than that, so every connection it cut has been idle for longer
/// by the time PostgreSQL answers again. The command path's own two statements run on a [`DirectPool`], which
/// does not ping after each statement either.
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: sqlx::postgres::PgConnectOptions = database_url.parse()?;
    pool_options(max_connections).connect_with(options.options(SESSION_SETTINGS)).await
}

pub type TopicCqrs = CqrsFramework<Topic, PersistedEventStore<EventRepository, Topic>>;

/// The command path for topics.
pub fn topic_cqrs(pool: PgPool, direct: Arc<DirectPool>, metrics: StoreMetrics) -> TopicCqrs {
    CqrsFramework::new(event_store(pool, direct, metrics), vec![], ())
}

pub type UserCqrs = CqrsFramework<KafkaUser, PersistedEventStore<EventRepository, KafkaUser>>;

/// The command path for Kafka users.
pub fn user_cqrs(pool: PgPool, direct: Arc<DirectPool>, metrics: StoreMetrics) -> UserCqrs {
    CqrsFramework::new(event_store(pool, direct, metrics), vec![], ())
}

/// A stored event that cannot be turned into an envelope: a bug or a tampered row, never user input.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("event {aggregate_id}/{sequence}: {reason}")]
    Malformed { aggregate_id: String, sequence: i64, reason: String },
}

/// One row of the `events` table, as the relay and history readers select it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub position: i64,
    pub xid: String,
    pub event_id: uuid::Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
}

impl StoredEvent {
    /// The SPEC.md §4 envelope. cqrs-es stores the event enum externally tagged (`{"ClusterRequested": {..}}`);
    /// the envelope's payload is the inner object, since `event_type` already names it.
    pub fn to_envelope(&self) -> Result<EventEnvelope, EnvelopeError> {
        self.clone().into_envelope()
    }

    /// [`Self::to_envelope`], taking the row (no copy of its payload; the replay and the relay own their rows).
    pub fn into_envelope(self) -> Result<EventEnvelope, EnvelopeError> {
        let bad = |reason: String| EnvelopeError::Malformed {
            aggregate_id: self.aggregate_id.clone(),
            sequence: self.sequence,
            reason,
        };
        let map: HashMap<String, String> =
            serde_json::from_value(self.metadata.clone()).map_err(|e| bad(format!("metadata: {e}")))?;
        let md = CommandMetadata::from_map(&map).map_err(|e| bad(e.to_string()))?;
        let aggregate_id = self.aggregate_id.parse().map_err(|e| bad(format!("aggregate_id: {e}")))?;
        let sequence = u64::try_from(self.sequence).map_err(|e| bad(format!("sequence: {e}")))?;
        let event_version = self.event_version.parse().map_err(|e| bad(format!("event_version: {e}")))?;
        let payload = match self.payload {
            serde_json::Value::Object(m) if m.len() == 1 => m.into_iter().next().map(|(_, v)| v).unwrap_or_default(),
            other => other,
        };
        EventEnvelope {
            event_id: self.event_id,
            aggregate_type: self.aggregate_type,
            aggregate_id,
            sequence,
            event_type: self.event_type,
            event_version,
            occurred_at: md.occurred_at,
            org_id: md.org_id.as_uuid(),
            actor: md.actor,
            correlation_id: md.correlation_id,
            causation_id: md.causation_id,
            operation_id: md.operation_id.map(|o| o.as_uuid()),
            policy_version: md.policy_version,
            payload,
        }
        .into_current()
        .map_err(|e| bad(e.to_string()))
    }

    /// The event as its aggregate's event enum (`ClusterEvent`, `TopicEvent`), upcast to the current version.
    pub fn decode<E: serde::de::DeserializeOwned>(&self) -> Result<E, EnvelopeError> {
        self.to_envelope()?.decode().map_err(|e| EnvelopeError::Malformed {
            aggregate_id: self.aggregate_id.clone(),
            sequence: self.sequence,
            reason: e.to_string(),
        })
    }
}

/// Upcasts old stored versions when cqrs-es loads an aggregate (see `polaris_domain::events`). The stored row is
/// never rewritten. An event that cannot be upcast is passed on unchanged and fails to deserialize by name.
pub struct Upcaster;

impl EventUpcaster for Upcaster {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        let current = polaris_domain::events::current_version(event_type);
        matches!((current, event_version.parse::<u32>()), (Some(c), Ok(v)) if v < c)
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        let Ok(version) = event.event_version.parse::<u32>() else { return event };
        let payload = std::mem::take(&mut event.payload);
        match polaris_domain::events::upcast_tagged(&event.event_type, version, payload.clone()) {
            Ok((version, payload)) => {
                event.event_version = version.to_string();
                event.payload = payload;
            }
            Err(_) => event.payload = payload,
        }
        event
    }
}

fn event_store<A: cqrs_es::Aggregate>(
    pool: PgPool,
    direct: Arc<DirectPool>,
    metrics: StoreMetrics,
) -> PersistedEventStore<EventRepository, A> {
    PersistedEventStore::new_event_store(EventRepository::new(pool, direct, metrics))
        .with_upcasters(vec![Box::new(Upcaster)])
}

/// The columns `StoredEvent` reads, for queries over `events`.
///
/// `payload` and `metadata` are `json` columns (postgres-es' schema) and are read as stored: a `::jsonb` cast would
/// make PostgreSQL parse each one and print it again (json_lex and escape_json showed in a profile of a replay).
/// The decoded values are the same: serde_json's maps are ordered by key either way.
pub const STORED_EVENT_COLUMNS: &str = "position, xid::text AS xid, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata";

pub type DriftCqrs =
    CqrsFramework<polaris_domain::drift::Drift, PersistedEventStore<EventRepository, polaris_domain::drift::Drift>>;

/// The command path for drift (the detector's observations and their resolutions).
pub fn drift_cqrs(pool: PgPool, direct: Arc<DirectPool>, metrics: StoreMetrics) -> DriftCqrs {
    CqrsFramework::new(event_store(pool, direct, metrics), vec![], ())
}
