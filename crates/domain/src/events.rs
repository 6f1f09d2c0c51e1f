//! The event stream as a public interface (SPEC.md §4): every event type and version with its JSON Schema, the
//! AsyncAPI document of the topic, and the upcasters that turn an old version into the current one on read.
//!
//! Stored events are never rewritten. A reader (the event store's loader, the relay, the projector, the
//! workers, the history endpoints) passes what it read through [`upcast`] and only ever sees current versions.
//! Adding a version means: bump it in [`CURRENT`], keep the old payload type here as `<Event>V<n>`, add its
//! step to [`upcast`], and regenerate `schemas/` (see the README).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, schema_for};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cluster::{self, ClusterEvent};
use crate::drift::{self, DriftEvent};
use crate::envelope::{EventEnvelope, headers};
use crate::ids::{ClusterId, ClusterName, OperationId, OrgId, Provider, Region, TargetId};
use crate::topic::{self, TopicEvent};
use crate::user::{self, UserEvent};

/// Every event type with its aggregate and current version.
pub const CURRENT: &[(&str, &str, u32)] = &[
    ("cluster", "ClusterRequested", 4),
    ("cluster", "ClusterProvisioningStarted", 1),
    ("cluster", "StrimziResourcesApplied", 1),
    ("cluster", "ClusterReady", 1),
    ("cluster", "ClusterStalled", 1),
    ("cluster", "OperationFailed", 1),
    ("cluster", "ClusterScaleRequested", 1),
    ("cluster", "BrokersAdded", 1),
    ("cluster", "RebalanceCompleted", 1),
    ("cluster", "BrokersRemoved", 1),
    ("cluster", "ClusterUpgradeRequested", 1),
    ("cluster", "KafkaVersionRolled", 1),
    ("cluster", "MetadataVersionBumped", 1),
    ("cluster", "ClusterDeletionRequested", 1),
    ("cluster", "ClusterDeleted", 1),
    ("cluster", "DeletionProtectionChanged", 1),
    ("topic", "TopicRequested", 1),
    ("topic", "TopicReady", 1),
    ("topic", "TopicPartitionsIncreased", 1),
    ("topic", "TopicConfigChanged", 1),
    ("topic", "TopicDeletionProtectionChanged", 1),
    ("topic", "TopicDeletionRequested", 1),
    ("topic", "TopicDeleted", 1),
    ("topic", "TopicStalled", 1),
    ("topic", "TopicOperationFailed", 1),
    ("user", "UserRequested", 1),
    ("user", "UserReady", 1),
    ("user", "UserAclsChanged", 1),
    ("user", "UserQuotasChanged", 1),
    ("user", "UserCredentialsRotated", 1),
    ("user", "UserDeletionRequested", 1),
    ("user", "UserDeleted", 1),
    ("user", "UserStalled", 1),
    ("user", "UserOperationFailed", 1),
    ("drift", "DriftDetected", 1),
    ("drift", "DriftRevertRequested", 1),
    ("drift", "DriftRevertStalled", 1),
    ("drift", "DriftResolved", 1),
];

/// The current version of an event type, if this build knows it.
pub fn current_version(event_type: &str) -> Option<u32> {
    CURRENT.iter().find(|(_, name, _)| *name == event_type).map(|(_, _, v)| *v)
}

/// `ClusterRequested` version 1, written before clusters were placed on a registered target: no `target_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterRequestedV1 {
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    pub operation_id: OperationId,
    pub name: ClusterName,
    pub provider: Provider,
    pub region: Region,
    pub kafka_version: String,
    pub metadata_version: String,
    pub brokers: u32,
    pub controllers: u32,
    pub storage_gib: u32,
    pub config: BTreeMap<String, String>,
    pub deletion_protection: bool,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

impl ClusterRequestedV1 {
    /// Version 2 adds `target_id`. A version 1 cluster was never placed on a registered target, so it gets
    /// [`TargetId::UNPLACED`]: the workers refuse to act on it ("target ... is not registered") rather than guess.
    fn upcast(self) -> ClusterRequestedV2 {
        ClusterRequestedV2 {
            cluster_id: self.cluster_id,
            org_id: self.org_id,
            operation_id: self.operation_id,
            target_id: TargetId::UNPLACED,
            name: self.name,
            provider: self.provider,
            region: self.region,
            kafka_version: self.kafka_version,
            metadata_version: self.metadata_version,
            brokers: self.brokers,
            controllers: self.controllers,
            storage_gib: self.storage_gib,
            config: self.config,
            deletion_protection: self.deletion_protection,
            requested_by: self.requested_by,
            requested_at: self.requested_at,
        }
    }
}

/// `ClusterRequested` version 2, written before each cluster's namespace carried its id: no `namespace`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterRequestedV2 {
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    pub operation_id: OperationId,
    pub target_id: TargetId,
    pub name: ClusterName,
    pub provider: Provider,
    pub region: Region,
    pub kafka_version: String,
    pub metadata_version: String,
    pub brokers: u32,
    pub controllers: u32,
    pub storage_gib: u32,
    pub config: BTreeMap<String, String>,
    pub deletion_protection: bool,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

impl ClusterRequestedV2 {
    /// Version 3 adds `namespace`. A version 2 cluster was provisioned into `polaris-<name>` (the old rule) and keeps
    /// that namespace for life, so its workflows keep finding its resources.
    fn upcast(self) -> ClusterRequestedV3 {
        ClusterRequestedV3 {
            namespace: crate::naming::legacy_cluster_namespace(self.name.as_str()),
            cluster_id: self.cluster_id,
            org_id: self.org_id,
            operation_id: self.operation_id,
            target_id: self.target_id,
            name: self.name,
            provider: self.provider,
            region: self.region,
            kafka_version: self.kafka_version,
            metadata_version: self.metadata_version,
            brokers: self.brokers,
            controllers: self.controllers,
            storage_gib: self.storage_gib,
            config: self.config,
            deletion_protection: self.deletion_protection,
            requested_by: self.requested_by,
            requested_at: self.requested_at,
        }
    }
}

/// `ClusterRequested` version 3, written before clusters could join a mesh: no `mesh`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterRequestedV3 {
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    pub operation_id: OperationId,
    pub target_id: TargetId,
    pub name: ClusterName,
    pub provider: Provider,
    pub region: Region,
    pub kafka_version: String,
    pub metadata_version: String,
    pub brokers: u32,
    pub controllers: u32,
    pub storage_gib: u32,
    pub config: BTreeMap<String, String>,
    pub deletion_protection: bool,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub namespace: String,
}

impl ClusterRequestedV3 {
    /// Version 4 adds `mesh`; a cluster requested before it is outside any mesh.
    fn upcast(self) -> cluster::ClusterRequested {
        cluster::ClusterRequested {
            cluster_id: self.cluster_id,
            org_id: self.org_id,
            operation_id: self.operation_id,
            target_id: self.target_id,
            name: self.name,
            provider: self.provider,
            region: self.region,
            kafka_version: self.kafka_version,
            metadata_version: self.metadata_version,
            brokers: self.brokers,
            controllers: self.controllers,
            storage_gib: self.storage_gib,
            config: self.config,
            deletion_protection: self.deletion_protection,
            requested_by: self.requested_by,
            requested_at: self.requested_at,
            namespace: self.namespace,
            mesh: None,
        }
    }
}

/// Why a stored or published event cannot be read as its current version.
#[derive(Debug, thiserror::Error)]
pub enum UpcastError {
    #[error("{event_type} version {version} is not known to this build (current is {current})")]
    UnknownVersion { event_type: String, version: u32, current: u32 },
    #[error("{event_type} version {version} does not match its schema: {reason}")]
    Malformed { event_type: String, version: u32, reason: String },
}

/// Converts an event payload (the inner object, as in the envelope) of `version` to the current version.
/// Returns the current version and its payload; a current event comes back unchanged, and so does an event
/// type this build does not know (the relay passes it on; whoever decodes it names the type).
pub fn upcast(event_type: &str, version: u32, payload: Value) -> Result<(u32, Value), UpcastError> {
    let Some(current) = current_version(event_type) else { return Ok((version, payload)) };
    let malformed = |version: u32, e: serde_json::Error| UpcastError::Malformed {
        event_type: event_type.to_owned(),
        version,
        reason: e.to_string(),
    };
    let (mut version, mut payload) = (version, payload);
    while version < current {
        payload = match (event_type, version) {
            ("ClusterRequested", 1) => {
                let v1: ClusterRequestedV1 = serde_json::from_value(payload).map_err(|e| malformed(1, e))?;
                serde_json::to_value(v1.upcast()).map_err(|e| malformed(1, e))?
            }
            ("ClusterRequested", 2) => {
                let v2: ClusterRequestedV2 = serde_json::from_value(payload).map_err(|e| malformed(2, e))?;
                serde_json::to_value(v2.upcast()).map_err(|e| malformed(2, e))?
            }
            ("ClusterRequested", 3) => {
                let v3: ClusterRequestedV3 = serde_json::from_value(payload).map_err(|e| malformed(3, e))?;
                serde_json::to_value(v3.upcast()).map_err(|e| malformed(3, e))?
            }
            _ => break,
        };
        version += 1;
    }
    if version != current {
        return Err(UpcastError::UnknownVersion { event_type: event_type.to_owned(), version, current });
    }
    Ok((version, payload))
}

/// Like [`upcast`], for the form cqrs-es stores: the enum externally tagged, `{"ClusterRequested": {..}}`.
pub fn upcast_tagged(event_type: &str, version: u32, tagged: Value) -> Result<(u32, Value), UpcastError> {
    let inner = match tagged {
        Value::Object(mut m) if m.len() == 1 && m.contains_key(event_type) => m.remove(event_type).unwrap_or_default(),
        other => other,
    };
    let (version, inner) = upcast(event_type, version, inner)?;
    Ok((version, json!({ event_type: inner })))
}

impl EventEnvelope {
    /// This envelope with its payload converted to the current version of its event type.
    pub fn into_current(mut self) -> Result<Self, UpcastError> {
        let (version, payload) = upcast(&self.event_type, self.event_version, std::mem::take(&mut self.payload))?;
        self.event_version = version;
        self.payload = payload;
        Ok(self)
    }

    /// The payload as the aggregate's event enum (`ClusterEvent`, `TopicEvent`), after upcasting.
    pub fn decode<E: serde::de::DeserializeOwned>(&self) -> Result<E, UpcastError> {
        let (version, payload) = upcast(&self.event_type, self.event_version, self.payload.clone())?;
        serde_json::from_value(json!({ self.event_type.clone(): payload })).map_err(|e| UpcastError::Malformed {
            event_type: self.event_type.clone(),
            version,
            reason: e.to_string(),
        })
    }
}

/// One event type at one version, with its JSON Schema (draft 2020-12).
#[derive(Clone, Debug)]
pub struct EventSchema {
    pub aggregate_type: &'static str,
    pub event_type: &'static str,
    pub version: u32,
    pub schema: Value,
}

impl EventSchema {
    /// The file name under `schemas/events/`.
    pub fn file_name(&self) -> String {
        format!("{}.v{}.json", self.event_type, self.version)
    }

    pub fn description(&self) -> String {
        self.schema.get("description").and_then(Value::as_str).unwrap_or(self.event_type).to_owned()
    }
}

fn entry<T: JsonSchema>(aggregate_type: &'static str, event_type: &'static str, version: u32) -> EventSchema {
    let mut schema = serde_json::to_value(schema_for!(T)).unwrap_or_default();
    if let Some(map) = schema.as_object_mut() {
        map.insert("$id".into(), json!(format!("https://polaris.dev/schemas/events/{event_type}.v{version}.json")));
        map.insert("title".into(), json!(event_type));
        map.insert("x-polaris-aggregate-type".into(), json!(aggregate_type));
        map.insert("x-polaris-event-version".into(), json!(version));
    }
    EventSchema { aggregate_type, event_type, version, schema }
}

/// Every event type and every version this build can read, current versions and old ones.
pub fn catalog() -> Vec<EventSchema> {
    use cluster as c;
    use topic as t;
    use user as u;
    vec![
        entry::<ClusterRequestedV1>("cluster", "ClusterRequested", 1),
        entry::<ClusterRequestedV2>("cluster", "ClusterRequested", 2),
        entry::<ClusterRequestedV3>("cluster", "ClusterRequested", 3),
        entry::<c::ClusterRequested>("cluster", "ClusterRequested", 4),
        entry::<c::ClusterProvisioningStarted>("cluster", "ClusterProvisioningStarted", 1),
        entry::<c::StrimziResourcesApplied>("cluster", "StrimziResourcesApplied", 1),
        entry::<c::ClusterReady>("cluster", "ClusterReady", 1),
        entry::<c::ClusterStalled>("cluster", "ClusterStalled", 1),
        entry::<c::OperationFailed>("cluster", "OperationFailed", 1),
        entry::<c::ClusterScaleRequested>("cluster", "ClusterScaleRequested", 1),
        entry::<c::BrokersAdded>("cluster", "BrokersAdded", 1),
        entry::<c::RebalanceCompleted>("cluster", "RebalanceCompleted", 1),
        entry::<c::BrokersRemoved>("cluster", "BrokersRemoved", 1),
        entry::<c::ClusterUpgradeRequested>("cluster", "ClusterUpgradeRequested", 1),
        entry::<c::KafkaVersionRolled>("cluster", "KafkaVersionRolled", 1),
        entry::<c::MetadataVersionBumped>("cluster", "MetadataVersionBumped", 1),
        entry::<c::ClusterDeletionRequested>("cluster", "ClusterDeletionRequested", 1),
        entry::<c::ClusterDeleted>("cluster", "ClusterDeleted", 1),
        entry::<c::DeletionProtectionChanged>("cluster", "DeletionProtectionChanged", 1),
        entry::<t::TopicRequested>("topic", "TopicRequested", 1),
        entry::<t::TopicReady>("topic", "TopicReady", 1),
        entry::<t::TopicPartitionsIncreased>("topic", "TopicPartitionsIncreased", 1),
        entry::<t::TopicConfigChanged>("topic", "TopicConfigChanged", 1),
        entry::<t::TopicDeletionProtectionChanged>("topic", "TopicDeletionProtectionChanged", 1),
        entry::<t::TopicDeletionRequested>("topic", "TopicDeletionRequested", 1),
        entry::<t::TopicDeleted>("topic", "TopicDeleted", 1),
        entry::<t::TopicStalled>("topic", "TopicStalled", 1),
        entry::<t::TopicOperationFailed>("topic", "TopicOperationFailed", 1),
        entry::<u::UserRequested>("user", "UserRequested", 1),
        entry::<u::UserReady>("user", "UserReady", 1),
        entry::<u::UserAclsChanged>("user", "UserAclsChanged", 1),
        entry::<u::UserQuotasChanged>("user", "UserQuotasChanged", 1),
        entry::<u::UserCredentialsRotated>("user", "UserCredentialsRotated", 1),
        entry::<u::UserDeletionRequested>("user", "UserDeletionRequested", 1),
        entry::<u::UserDeleted>("user", "UserDeleted", 1),
        entry::<u::UserStalled>("user", "UserStalled", 1),
        entry::<u::UserOperationFailed>("user", "UserOperationFailed", 1),
        entry::<drift::DriftDetected>("drift", "DriftDetected", 1),
        entry::<drift::DriftRevertRequested>("drift", "DriftRevertRequested", 1),
        entry::<drift::DriftRevertStalled>("drift", "DriftRevertStalled", 1),
        entry::<drift::DriftResolved>("drift", "DriftResolved", 1),
    ]
}

/// The variant names of the aggregates' event enums, read from their own schemas (so a new variant without a
/// catalog entry is noticed by the tests).
pub fn enum_variants() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (aggregate, schema) in [
        ("cluster", schema_for!(ClusterEvent)),
        ("topic", schema_for!(TopicEvent)),
        ("user", schema_for!(UserEvent)),
        ("drift", schema_for!(DriftEvent)),
    ] {
        let value: Value = serde_json::to_value(schema).unwrap_or_default();
        for variant in value.get("oneOf").and_then(Value::as_array).into_iter().flatten() {
            for name in variant.get("required").and_then(Value::as_array).into_iter().flatten() {
                if let Some(name) = name.as_str() {
                    out.push((aggregate, name.to_owned()));
                }
            }
        }
    }
    out
}

/// The envelope's schema with its `payload` left open (each message narrows it).
fn envelope_schema() -> Value {
    let schema: Schema = schema_for!(EventEnvelope);
    let mut value = serde_json::to_value(schema).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("$schema");
    }
    value
}

/// The AsyncAPI 3.0 document of the event topic: the envelope, the key, the headers and every message, each
/// message's payload being the envelope with `payload` narrowed to the event's schema (current versions; old
/// versions are listed under `x-polaris-previous-versions` since they are only ever read from the store).
pub fn asyncapi(topic: &str) -> Value {
    let mut messages = serde_json::Map::new();
    let mut channel_messages = serde_json::Map::new();
    let mut operation_messages = Vec::new();
    let mut schemas = serde_json::Map::new();
    schemas.insert("EventEnvelope".into(), envelope_schema());
    let catalog = catalog();
    for (aggregate, event_type, version) in CURRENT {
        let Some(current) = catalog.iter().find(|e| e.event_type == *event_type && e.version == *version) else {
            continue;
        };
        let previous: Vec<Value> = catalog
            .iter()
            .filter(|e| e.event_type == *event_type && e.version < *version)
            .map(|e| json!({ "version": e.version, "schema": format!("events/{}", e.file_name()) }))
            .collect();
        messages.insert(
            (*event_type).into(),
            json!({
                "name": event_type,
                "title": event_type,
                "summary": current.description(),
                "contentType": headers::CONTENT_TYPE_JSON,
                "headers": { "$ref": "#/components/schemas/EventHeaders" },
                "correlationId": { "location": "$message.payload#/correlation_id" },
                "payload": {
                    "allOf": [
                        { "$ref": "#/components/schemas/EventEnvelope" },
                        {
                            "type": "object",
                            "properties": {
                                "aggregate_type": { "const": aggregate },
                                "event_type": { "const": event_type },
                                "event_version": { "const": version },
                                "payload": { "$ref": format!("events/{}", current.file_name()) }
                            }
                        }
                    ]
                },
                "bindings": { "kafka": { "key": { "type": "string", "format": "uuid",
                    "description": "The aggregate id, so each aggregate's events stay in order" }, "bindingVersion": "0.5.0" } },
                "x-polaris-previous-versions": previous,
            }),
        );
        channel_messages.insert((*event_type).into(), json!({ "$ref": format!("#/components/messages/{event_type}") }));
        operation_messages.push(json!({ "$ref": format!("#/channels/events/messages/{event_type}") }));
    }
    schemas.insert(
        "EventHeaders".into(),
        json!({
            "type": "object",
            "required": [headers::EVENT_TYPE, headers::EVENT_VERSION, headers::CONTENT_TYPE],
            "properties": {
                headers::EVENT_TYPE: { "type": "string", "description": "Names the message, as event_type in the envelope" },
                headers::EVENT_VERSION: { "type": "string", "pattern": "^[0-9]+$", "description": "The payload's version, as event_version in the envelope" },
                headers::CONTENT_TYPE: { "const": headers::CONTENT_TYPE_JSON }
            }
        }),
    );
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Polaris domain events",
            "version": "1.0.0",
            "description": "Every accepted change in Polaris, published once (at least) in commit order per aggregate. \
                Consumers must be idempotent on (aggregate_id, sequence): delivery is at-least-once. \
                Old event versions are never rewritten in the store; the relay publishes the current version.",
        },
        "defaultContentType": headers::CONTENT_TYPE_JSON,
        "channels": {
            "events": {
                "address": topic,
                "description": "The bootstrap Kafka topic (configurable, POLARIS_EVENTS_TOPIC). Key: the aggregate id.",
                "messages": channel_messages,
                "bindings": { "kafka": { "topic": topic, "bindingVersion": "0.5.0" } }
            }
        },
        "operations": {
            "consumeEvents": {
                "action": "receive",
                "channel": { "$ref": "#/channels/events" },
                "summary": "Follow every domain event, in your own consumer group",
                "messages": operation_messages
            }
        },
        "components": { "messages": messages, "schemas": schemas }
    })
}
