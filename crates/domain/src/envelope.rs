//! The public shape of an event on `polaris.events` (SPEC.md §4). The relay builds it from a stored event;
//! every consumer (projector, workers, subscribers) reads it and is idempotent on `(aggregate_id, sequence)`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Kafka header names carried by every published event.
pub mod headers {
    pub const EVENT_TYPE: &str = "event_type";
    pub const EVENT_VERSION: &str = "event_version";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const CONTENT_TYPE_JSON: &str = "application/json";
}

/// One domain event as published on the event topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventEnvelope {
    /// Unique per event.
    pub event_id: Uuid,
    /// `cluster` or `topic`.
    pub aggregate_type: String,
    /// The aggregate the event belongs to; also the Kafka message key.
    pub aggregate_id: Uuid,
    /// The event's position within its aggregate, from 1, without gaps. Deduplicate on `(aggregate_id, sequence)`.
    pub sequence: u64,
    /// The event's name, past tense (`ClusterRequested`).
    pub event_type: String,
    /// The version of `payload`'s schema (`schemas/events/<event_type>.v<event_version>.json`).
    pub event_version: u32,
    /// When the command was accepted.
    pub occurred_at: DateTime<Utc>,
    /// The organization that owns the aggregate.
    pub org_id: Uuid,
    /// Who caused it: a token (`token:<name>:<id>`) or the workers (`worker:polaris`).
    pub actor: String,
    /// Shared by every event that follows from one request.
    pub correlation_id: Uuid,
    /// The request or event that directly caused this one.
    pub causation_id: Uuid,
    /// The long-running operation this event belongs to, if any.
    pub operation_id: Option<Uuid>,
    /// The policy bundle version that judged the command (absent for worker reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<i64>,
    /// The event itself, as described by its schema.
    pub payload: serde_json::Value,
}
