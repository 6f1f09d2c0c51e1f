//! Persistence for Polaris: the migrations, the event store (postgres-es over one shared `PgPool`), the
//! conversion from a stored event to the published envelope, and the relay that moves committed events to
//! Kafka in commit order.

pub mod relay;
pub mod repository;

use std::collections::HashMap;
use std::time::Duration;

use cqrs_es::CqrsFramework;
use cqrs_es::persist::PersistedEventStore;
use polaris_domain::topic::Topic;
use polaris_domain::{Cluster, CommandMetadata, EventEnvelope};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use cqrs_es;
pub use relay::{Relay, RelayConfig, RelayError};

/// The SQL migrations under `migrations/`, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

pub use repository::EventRepository;

pub type ClusterCqrs = CqrsFramework<Cluster, PersistedEventStore<EventRepository, Cluster>>;

/// The command path for clusters: load, handle, and append events (with their outbox columns) in one
/// transaction. No cqrs-es queries are attached: read models are fed from Kafka, never in-process.
pub fn cluster_cqrs(pool: PgPool) -> ClusterCqrs {
    CqrsFramework::new(PersistedEventStore::new_event_store(EventRepository::new(pool)), vec![], ())
}

pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(database_url)
        .await
}

pub type TopicCqrs = CqrsFramework<Topic, PersistedEventStore<EventRepository, Topic>>;

/// The command path for topics.
pub fn topic_cqrs(pool: PgPool) -> TopicCqrs {
    CqrsFramework::new(PersistedEventStore::new_event_store(EventRepository::new(pool)), vec![], ())
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
        let bad = |reason: String| EnvelopeError::Malformed {
            aggregate_id: self.aggregate_id.clone(),
            sequence: self.sequence,
            reason,
        };
        let payload = match &self.payload {
            serde_json::Value::Object(m) if m.len() == 1 => m.values().next().cloned().unwrap_or_default(),
            other => other.clone(),
        };
        let map: HashMap<String, String> =
            serde_json::from_value(self.metadata.clone()).map_err(|e| bad(format!("metadata: {e}")))?;
        let md = CommandMetadata::from_map(&map).map_err(|e| bad(e.to_string()))?;
        Ok(EventEnvelope {
            event_id: self.event_id,
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.parse().map_err(|e| bad(format!("aggregate_id: {e}")))?,
            sequence: u64::try_from(self.sequence).map_err(|e| bad(format!("sequence: {e}")))?,
            event_type: self.event_type.clone(),
            event_version: self.event_version.parse().map_err(|e| bad(format!("event_version: {e}")))?,
            occurred_at: md.occurred_at,
            org_id: md.org_id.as_uuid(),
            actor: md.actor,
            correlation_id: md.correlation_id,
            causation_id: md.causation_id,
            operation_id: md.operation_id.map(|o| o.as_uuid()),
            policy_version: md.policy_version,
            payload,
        })
    }
}

/// The columns `StoredEvent` reads, for queries over `events`.
pub const STORED_EVENT_COLUMNS: &str = "position, xid::text AS xid, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload::jsonb AS payload, metadata::jsonb AS metadata";
