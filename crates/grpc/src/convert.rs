//! Between the wire (proto/polaris/v1) and the application layer's typed inputs and outputs. Inputs are
//! checked as REST checks JSON: no text holds a NUL character, an id that is not a UUID names nothing (`NOT_FOUND`)
//! where REST has it in the path and is invalid (`VALIDATION_FAILED`) where REST has it in the query.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use polaris_app::AppError;
use polaris_app::clusters::{ClusterView, HistoryEntry};
use polaris_app::dryrun::Plan;
use polaris_app::error::ViolationView;
use polaris_app::operations::{OperationStep, OperationView};
use polaris_app::topics::TopicView;
use polaris_domain::cluster::ClusterStatus;
use uuid::Uuid;

use crate::pb;

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

/// An instant a client sent, checked.
pub fn instant(t: &prost_types::Timestamp, field: &str) -> Result<DateTime<Utc>, AppError> {
    u32::try_from(t.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .ok_or_else(|| AppError::validation(format!("{field} is not a valid instant"), Some(field)))
}

/// Text a client sent: refused when it holds a NUL character (PostgreSQL cannot store it; no name needs it).
pub fn text(s: String, field: &str) -> Result<String, AppError> {
    if s.contains('\0') {
        return Err(AppError::validation("text may not contain NUL characters", Some(field)));
    }
    Ok(s)
}

pub fn opt_text(s: Option<String>, field: &str) -> Result<Option<String>, AppError> {
    s.map(|s| text(s, field)).transpose()
}

pub fn config(map: HashMap<String, String>, field: &str) -> Result<BTreeMap<String, String>, AppError> {
    map.into_iter().map(|(k, v)| Ok((text(k, field)?, text(v, field)?))).collect()
}

/// An id in the place of a REST path segment: one that is not a UUID names no resource.
pub fn resource_id(id: &str, what: &'static str) -> Result<Uuid, AppError> {
    id.parse().map_err(|_| AppError::NotFound(what))
}

/// An id in the place of a REST query parameter: one that is not a UUID is invalid.
pub fn filter_id(id: Option<String>, field: &str) -> Result<Option<Uuid>, AppError> {
    id.map(|id| id.parse().map_err(|_| AppError::validation(format!("{field} must be a UUID"), Some(field))))
        .transpose()
}

fn json(value: &serde_json::Value) -> String {
    value.to_string()
}

pub fn cluster_status(s: &str) -> i32 {
    let status = match ClusterStatus::parse(s) {
        Some(ClusterStatus::Requested) => pb::ClusterStatus::Requested,
        Some(ClusterStatus::Provisioning) => pb::ClusterStatus::Provisioning,
        Some(ClusterStatus::Ready) => pb::ClusterStatus::Ready,
        Some(ClusterStatus::Scaling) => pb::ClusterStatus::Scaling,
        Some(ClusterStatus::Rebalancing) => pb::ClusterStatus::Rebalancing,
        Some(ClusterStatus::Upgrading) => pb::ClusterStatus::Upgrading,
        Some(ClusterStatus::Deleting) => pb::ClusterStatus::Deleting,
        Some(ClusterStatus::Deleted) => pb::ClusterStatus::Deleted,
        Some(ClusterStatus::Stalled) => pb::ClusterStatus::Stalled,
        Some(ClusterStatus::Failed) => pb::ClusterStatus::Failed,
        Some(ClusterStatus::Degraded) => pb::ClusterStatus::Degraded,
        None => pb::ClusterStatus::Unspecified,
    };
    status as i32
}

pub fn cluster(v: ClusterView) -> pb::Cluster {
    pb::Cluster {
        id: v.id.to_string(),
        org: v.org.to_string(),
        name: v.name,
        namespace: v.namespace,
        provider: v.provider,
        region: v.region,
        target_id: v.target_id.map(|t| t.to_string()),
        kafka_version: v.kafka_version,
        metadata_version: v.metadata_version,
        brokers: v.brokers,
        controllers: v.controllers,
        storage_gib: v.storage_gib,
        config: v.config.into_iter().collect(),
        deletion_protection: v.deletion_protection,
        status: cluster_status(&v.status),
        status_reason: v.status_reason,
        version: v.version,
        current_operation_id: v.current_operation_id.map(|o| o.to_string()),
        bootstrap_servers: v.bootstrap_servers,
        created_at: Some(timestamp(v.created_at)),
        updated_at: Some(timestamp(v.updated_at)),
    }
}

fn step(s: OperationStep) -> pb::OperationStep {
    pb::OperationStep {
        name: s.name,
        state: s.state,
        started_at: s.started_at.map(timestamp),
        finished_at: s.finished_at.map(timestamp),
        detail: s.detail,
    }
}

pub fn operation(v: OperationView) -> pb::Operation {
    pb::Operation {
        id: v.id.to_string(),
        kind: v.kind,
        cluster_id: v.cluster_id.to_string(),
        topic_id: v.topic_id.map(|t| t.to_string()),
        user_id: v.user_id.map(|u| u.to_string()),
        state: v.state,
        steps: v.steps.into_iter().map(step).collect(),
        error: v.error,
        requested_by: v.requested_by,
        started_at: Some(timestamp(v.started_at)),
        finished_at: v.finished_at.map(timestamp),
    }
}

pub fn plan(p: Plan) -> pb::Plan {
    pb::Plan {
        policy_version: p.policy_version,
        events: p
            .events
            .into_iter()
            .map(|e| pb::PlannedEvent { event_type: e.event_type, payload_json: json(&e.payload) })
            .collect(),
        kubernetes: p
            .kubernetes
            .into_iter()
            .map(|c| pb::PlannedChange {
                action: c.action,
                kind: c.kind,
                namespace: c.namespace,
                name: c.name,
                detail: c.detail,
            })
            .collect(),
    }
}

pub fn event(e: HistoryEntry) -> pb::Event {
    pb::Event {
        sequence: e.sequence,
        event_id: e.event_id.to_string(),
        event_type: e.event_type,
        event_version: e.event_version,
        occurred_at: Some(timestamp(e.occurred_at)),
        actor: e.actor,
        correlation_id: e.correlation_id.to_string(),
        causation_id: e.causation_id.to_string(),
        operation_id: e.operation_id.map(|o| o.to_string()),
        policy_version: e.policy_version,
        payload_json: json(&e.payload),
    }
}

pub fn topic(v: TopicView) -> pb::Topic {
    pb::Topic {
        id: v.id.to_string(),
        cluster_id: v.cluster_id.to_string(),
        name: v.name,
        partitions: v.partitions,
        replication_factor: v.replication_factor,
        config: v.config.into_iter().collect(),
        deletion_protection: v.deletion_protection,
        status: v.status,
        version: v.version,
        created_at: Some(timestamp(v.created_at)),
        updated_at: Some(timestamp(v.updated_at)),
    }
}

pub fn violation(v: ViolationView) -> pb::Violation {
    pb::Violation {
        policy: v.policy,
        policy_version: v.policy_version,
        field: v.field,
        constraint: v.constraint,
        actual: v.actual,
        message: v.message,
    }
}
