//! The public shape of an event on `polaris.events` (SPEC.md §4). The relay builds it from a stored event;
//! every consumer (projector, workers, subscribers) reads it and is idempotent on `(aggregate_id, sequence)`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Kafka header names carried by every published event.
pub mod headers {
    pub const EVENT_TYPE: &str = "event_type";
    pub const EVENT_VERSION: &str = "event_version";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const CONTENT_TYPE_JSON: &str = "application/json";
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventEnvelope {
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub sequence: u64,
    pub event_type: String,
    pub event_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub org_id: Uuid,
    pub actor: String,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub operation_id: Option<Uuid>,
    /// The policy bundle version that judged the command (absent for worker reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<i64>,
    pub payload: serde_json::Value,
}
