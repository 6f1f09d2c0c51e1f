//! The Topic aggregate. A topic belongs to a cluster; its id is derived from the cluster and the topic name,
//! so requesting the same topic twice finds the first one instead of creating a twin.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{ClusterId, OperationId, OrgId};
use crate::lifecycle::{OperationTrack, WorkflowReport};

pub const PARTITIONS_MAX: u32 = 10_000;

/// A Kafka topic name: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicName(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("must be 1 to 249 characters")]
    Length,
    #[error("may contain only letters, digits, '.', '_' and '-'")]
    Characters,
    #[error("'.' and '..' are not topic names")]
    Reserved,
}

impl TopicName {
    pub fn parse(s: &str) -> Result<Self, TopicNameError> {
        if s.is_empty() || s.len() > 249 {
            return Err(TopicNameError::Length);
        }
        if s == "." || s == ".." {
            return Err(TopicNameError::Reserved);
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Err(TopicNameError::Characters);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl JsonSchema for TopicName {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TopicName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A Kafka topic name: 1 to 249 characters of [a-zA-Z0-9._-], not . or ..",
            "type": "string",
            "minLength": 1,
            "maxLength": 249,
            "pattern": "^[a-zA-Z0-9._-]+$"
        })
    }
}

impl TryFrom<String> for TopicName {
    type Error = TopicNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TopicName> for String {
    fn from(n: TopicName) -> Self {
        n.0
    }
}

/// The topic id for a name on a cluster: the same inputs always give the same id.
pub fn topic_id(cluster: ClusterId, name: &str) -> Uuid {
    Uuid::new_v5(&cluster.as_uuid(), name.as_bytes())
}

#[derive(Clone, Debug, PartialEq)]
pub struct CreateTopic {
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    pub operation_id: OperationId,
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    pub config: BTreeMap<String, String>,
    pub deletion_protection: bool,
    /// The cluster's broker count when the command is judged: the ceiling for the replication factor.
    pub cluster_brokers: u32,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

/// A change to a topic: any of partitions (grow only), config (replaces the whole map), deletion protection.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateTopic {
    pub operation_id: OperationId,
    pub partitions: Option<u32>,
    pub config: Option<BTreeMap<String, String>>,
    pub deletion_protection: Option<bool>,
    pub expected_version: Option<u64>,
    pub requested_by: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TopicCommand {
    Create(CreateTopic),
    Update(UpdateTopic),
    RequestDeletion {
        operation_id: OperationId,
        expected_version: Option<u64>,
        requested_by: String,
    },
    /// The topic workflow reports the KafkaTopic Ready (after a create or a change).
    MarkReady {
        operation_id: OperationId,
    },
    /// The topic workflow reports the KafkaTopic gone.
    MarkDeleted {
        operation_id: OperationId,
    },
    /// The topic workflow passed its deadline; the operation stops and nothing else is touched.
    MarkStalled {
        operation_id: OperationId,
        reason: String,
    },
    /// The topic workflow could not do its work (an object of another owner in the way: `OWNERSHIP_CONFLICT`);
    /// the operation fails and nothing was touched.
    MarkFailed {
        operation_id: OperationId,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub enum TopicEvent {
    TopicRequested(TopicRequested),
    TopicReady(TopicReady),
    TopicPartitionsIncreased(TopicPartitionsIncreased),
    TopicConfigChanged(TopicConfigChanged),
    TopicDeletionProtectionChanged(TopicDeletionProtectionChanged),
    TopicDeletionRequested(TopicDeletionRequested),
    TopicDeleted(TopicDeleted),
    TopicStalled(TopicStalled),
    TopicOperationFailed(TopicOperationFailed),
}

/// A topic operation failed (for example `OWNERSHIP_CONFLICT`: the KafkaTopic belongs to another cluster); the
/// topic is FAILED until a new change succeeds, and nothing was touched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicOperationFailed {
    pub operation_id: OperationId,
    /// Why, starting with the stable code (`OWNERSHIP_CONFLICT: KafkaTopic <namespace>/<name> ...`).
    pub reason: String,
}

/// A topic operation passed its deadline; the topic is STALLED and nothing else was touched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicStalled {
    pub operation_id: OperationId,
    pub reason: String,
}

/// The partition count was raised (partitions never decrease).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicPartitionsIncreased {
    pub operation_id: OperationId,
    pub from: u32,
    pub to: u32,
    pub requested_by: String,
}

/// The topic config was replaced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicConfigChanged {
    pub operation_id: OperationId,
    /// The whole new config.
    pub config: BTreeMap<String, String>,
    pub requested_by: String,
}

/// Deletion protection of the topic was switched on or off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicDeletionProtectionChanged {
    pub enabled: bool,
    pub requested_by: String,
}

/// Deletion of the topic was accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicDeletionRequested {
    pub operation_id: OperationId,
    pub requested_by: String,
}

/// The KafkaTopic is gone from the target. The history stays.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicDeleted {
    pub operation_id: OperationId,
}

/// A new topic was accepted on a cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicRequested {
    pub topic_id: Uuid,
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    pub operation_id: OperationId,
    pub name: TopicName,
    pub partitions: u32,
    pub replication_factor: u32,
    pub config: BTreeMap<String, String>,
    pub deletion_protection: bool,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

/// Strimzi reports the KafkaTopic Ready (after a create or a change).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicReady {
    pub operation_id: OperationId,
}

impl DomainEvent for TopicEvent {
    fn event_type(&self) -> String {
        match self {
            TopicEvent::TopicRequested(_) => "TopicRequested",
            TopicEvent::TopicReady(_) => "TopicReady",
            TopicEvent::TopicPartitionsIncreased(_) => "TopicPartitionsIncreased",
            TopicEvent::TopicConfigChanged(_) => "TopicConfigChanged",
            TopicEvent::TopicDeletionProtectionChanged(_) => "TopicDeletionProtectionChanged",
            TopicEvent::TopicDeletionRequested(_) => "TopicDeletionRequested",
            TopicEvent::TopicDeleted(_) => "TopicDeleted",
            TopicEvent::TopicStalled(_) => "TopicStalled",
            TopicEvent::TopicOperationFailed(_) => "TopicOperationFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::events::current_version(&self.event_type()).unwrap_or(1).to_string()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic {0:?} already exists on this cluster")]
    AlreadyExists(String),
    #[error("topic name {name:?} is invalid: {reason}")]
    InvalidName { name: String, reason: TopicNameError },
    #[error("partitions must be between 1 and {PARTITIONS_MAX}, got {requested}")]
    PartitionsOutOfRange { requested: u32 },
    #[error("replication_factor {requested} is more than the cluster's {brokers} brokers")]
    ReplicationFactorAboveBrokers { requested: u32, brokers: u32 },
    #[error("replication_factor must be at least 1")]
    ReplicationFactorZero,
    #[error("topic does not exist")]
    NotFound,
    #[error("operation {0} is not the topic's current operation")]
    NotCurrentOperation(OperationId),
    #[error("partitions can only grow: the topic has {current}, the request asks for {requested}")]
    PartitionDecrease { current: u32, requested: u32 },
    #[error("the topic is at version {current}; the request expected {expected}")]
    VersionConflict { expected: u64, current: u64 },
    #[error("operation {operation_id} is still running on this topic")]
    OperationInProgress { operation_id: OperationId },
    #[error("deletion protection is on")]
    DeletionProtected,
    #[error("the topic is being deleted")]
    Deleting,
}

impl TopicError {
    pub fn field(&self) -> Option<&'static str> {
        match self {
            TopicError::InvalidName { .. } => Some("name"),
            TopicError::PartitionsOutOfRange { .. } => Some("partitions"),
            TopicError::ReplicationFactorAboveBrokers { .. } | TopicError::ReplicationFactorZero => {
                Some("replication_factor")
            }
            TopicError::PartitionDecrease { .. } => Some("partitions"),
            TopicError::AlreadyExists(_)
            | TopicError::NotFound
            | TopicError::NotCurrentOperation(_)
            | TopicError::VersionConflict { .. }
            | TopicError::OperationInProgress { .. }
            | TopicError::DeletionProtected
            | TopicError::Deleting => None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Topic {
    pub name: Option<TopicName>,
    pub ready: bool,
    pub current_operation: Option<OperationId>,
    pub partitions: u32,
    pub replication_factor: u32,
    pub config: BTreeMap<String, String>,
    pub deletion_protection: bool,
    pub deleting: bool,
    pub deleted: bool,
    /// The number of events applied: the topic's version for optimistic concurrency.
    pub version: u64,
    /// The last operation passed its deadline.
    pub stalled: bool,
    /// The last operation failed.
    pub failed: bool,
}

impl Topic {
    /// REQUESTED (never applied yet), READY, UPDATING (a change is being applied), DELETING, DELETED, STALLED,
    /// FAILED.
    pub fn status(&self) -> &'static str {
        self.lifecycle_status().as_str()
    }

    pub fn lifecycle_status(&self) -> crate::lifecycle::TopicStatus {
        use crate::lifecycle::TopicStatus;
        match (self.deleted, self.deleting, self.current_operation, self.ready) {
            (true, ..) => TopicStatus::Deleted,
            _ if self.stalled => TopicStatus::Stalled,
            _ if self.failed => TopicStatus::Failed,
            (_, true, ..) => TopicStatus::Deleting,
            (_, _, Some(_), false) => TopicStatus::Requested,
            (_, _, Some(_), true) => TopicStatus::Updating,
            _ => TopicStatus::Ready,
        }
    }

    /// A workflow's report on `operation`, judged against the running operation (see [`OperationTrack`]).
    fn judge(&self, operation: OperationId, report: WorkflowReport) -> Result<bool, TopicError> {
        let track = OperationTrack {
            current: self.current_operation,
            ready: self.ready,
            deleting: self.deleting,
            deleted: self.deleted,
        };
        track.judge(operation, report).map_err(TopicError::NotCurrentOperation)
    }

    /// The topic exists, is not being deleted, and is at the expected version.
    fn live(&self, expected_version: Option<u64>) -> Result<(), TopicError> {
        if self.name.is_none() || self.deleted {
            return Err(TopicError::NotFound);
        }
        if self.deleting {
            return Err(TopicError::Deleting);
        }
        match expected_version {
            Some(expected) if expected != self.version => {
                Err(TopicError::VersionConflict { expected, current: self.version })
            }
            _ => Ok(()),
        }
    }

    fn update(&self, cmd: UpdateTopic) -> Result<Vec<TopicEvent>, TopicError> {
        self.live(cmd.expected_version)?;
        let mut events = Vec::new();
        let mut reconfigures = false;
        if let Some(p) = cmd.partitions {
            if p < self.partitions {
                return Err(TopicError::PartitionDecrease { current: self.partitions, requested: p });
            }
            if p > PARTITIONS_MAX {
                return Err(TopicError::PartitionsOutOfRange { requested: p });
            }
            if p > self.partitions {
                reconfigures = true;
                events.push(TopicEvent::TopicPartitionsIncreased(TopicPartitionsIncreased {
                    operation_id: cmd.operation_id,
                    from: self.partitions,
                    to: p,
                    requested_by: cmd.requested_by.clone(),
                }));
            }
        }
        if let Some(config) = cmd.config
            && config != self.config
        {
            reconfigures = true;
            events.push(TopicEvent::TopicConfigChanged(TopicConfigChanged {
                operation_id: cmd.operation_id,
                config,
                requested_by: cmd.requested_by.clone(),
            }));
        }
        if reconfigures && let Some(operation_id) = self.current_operation {
            return Err(TopicError::OperationInProgress { operation_id });
        }
        if let Some(enabled) = cmd.deletion_protection
            && enabled != self.deletion_protection
        {
            events.push(TopicEvent::TopicDeletionProtectionChanged(TopicDeletionProtectionChanged {
                enabled,
                requested_by: cmd.requested_by,
            }));
        }
        Ok(events)
    }

    fn create(&self, cmd: CreateTopic) -> Result<TopicEvent, TopicError> {
        if let Some(name) = &self.name {
            return Err(TopicError::AlreadyExists(name.as_str().to_owned()));
        }
        let name =
            TopicName::parse(&cmd.name).map_err(|reason| TopicError::InvalidName { name: cmd.name.clone(), reason })?;
        if !(1..=PARTITIONS_MAX).contains(&cmd.partitions) {
            return Err(TopicError::PartitionsOutOfRange { requested: cmd.partitions });
        }
        if cmd.replication_factor == 0 {
            return Err(TopicError::ReplicationFactorZero);
        }
        if cmd.replication_factor > cmd.cluster_brokers {
            return Err(TopicError::ReplicationFactorAboveBrokers {
                requested: cmd.replication_factor,
                brokers: cmd.cluster_brokers,
            });
        }
        Ok(TopicEvent::TopicRequested(TopicRequested {
            topic_id: topic_id(cmd.cluster_id, name.as_str()),
            cluster_id: cmd.cluster_id,
            org_id: cmd.org_id,
            operation_id: cmd.operation_id,
            name,
            partitions: cmd.partitions,
            replication_factor: cmd.replication_factor,
            config: cmd.config,
            deletion_protection: cmd.deletion_protection,
            requested_by: cmd.requested_by,
            requested_at: cmd.requested_at,
        }))
    }
}

impl Aggregate for Topic {
    const TYPE: &'static str = "topic";
    type Command = TopicCommand;
    type Event = TopicEvent;
    type Error = TopicError;
    type Services = ();

    async fn handle(&mut self, command: Self::Command, _: &(), sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let events = match command {
            TopicCommand::Create(cmd) => vec![self.create(cmd)?],
            TopicCommand::Update(cmd) => self.update(cmd)?,
            TopicCommand::RequestDeletion { operation_id, expected_version, requested_by } => {
                // A deletion that stalled may be asked for again.
                let retry = self.deleting && !self.deleted && self.current_operation.is_none();
                if !retry {
                    self.live(expected_version)?;
                }
                if self.deletion_protection {
                    return Err(TopicError::DeletionProtected);
                }
                if let Some(operation_id) = self.current_operation {
                    return Err(TopicError::OperationInProgress { operation_id });
                }
                vec![TopicEvent::TopicDeletionRequested(TopicDeletionRequested { operation_id, requested_by })]
            }
            TopicCommand::MarkReady { operation_id } => {
                if self.name.is_none() {
                    return Err(TopicError::NotFound);
                }
                self.judge(operation_id, WorkflowReport::Ready)?
                    .then_some(TopicEvent::TopicReady(TopicReady { operation_id }))
                    .into_iter()
                    .collect()
            }
            TopicCommand::MarkDeleted { operation_id } => self
                .judge(operation_id, WorkflowReport::Deleted)?
                .then_some(TopicEvent::TopicDeleted(TopicDeleted { operation_id }))
                .into_iter()
                .collect(),
            TopicCommand::MarkStalled { operation_id, reason } => self
                .judge(operation_id, WorkflowReport::Stalled)?
                .then_some(TopicEvent::TopicStalled(TopicStalled { operation_id, reason }))
                .into_iter()
                .collect(),
            TopicCommand::MarkFailed { operation_id, reason } => self
                .judge(operation_id, WorkflowReport::Failed)?
                .then_some(TopicEvent::TopicOperationFailed(TopicOperationFailed { operation_id, reason }))
                .into_iter()
                .collect(),
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        self.stalled = matches!(event, TopicEvent::TopicStalled(_))
            || (self.stalled && matches!(event, TopicEvent::TopicDeletionProtectionChanged(_)));
        self.failed = matches!(event, TopicEvent::TopicOperationFailed(_))
            || (self.failed && matches!(event, TopicEvent::TopicDeletionProtectionChanged(_)));
        match event {
            TopicEvent::TopicRequested(e) => {
                self.name = Some(e.name);
                self.current_operation = Some(e.operation_id);
                self.partitions = e.partitions;
                self.replication_factor = e.replication_factor;
                self.config = e.config;
                self.deletion_protection = e.deletion_protection;
            }
            TopicEvent::TopicReady(_) => {
                self.ready = true;
                self.current_operation = None;
            }
            TopicEvent::TopicPartitionsIncreased(e) => {
                self.partitions = e.to;
                self.current_operation = Some(e.operation_id);
            }
            TopicEvent::TopicConfigChanged(e) => {
                self.config = e.config;
                self.current_operation = Some(e.operation_id);
            }
            TopicEvent::TopicDeletionProtectionChanged(e) => self.deletion_protection = e.enabled,
            TopicEvent::TopicDeletionRequested(e) => {
                self.deleting = true;
                self.current_operation = Some(e.operation_id);
            }
            TopicEvent::TopicDeleted(_) => {
                self.deleted = true;
                self.current_operation = None;
            }
            TopicEvent::TopicStalled(_) | TopicEvent::TopicOperationFailed(_) => self.current_operation = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn create() -> CreateTopic {
        CreateTopic {
            cluster_id: ClusterId::from_uuid(Uuid::from_u128(1)),
            org_id: OrgId::from_uuid(Uuid::from_u128(2)),
            operation_id: OperationId::from_uuid(Uuid::from_u128(3)),
            name: "orders.events_v1".into(),
            partitions: 6,
            replication_factor: 3,
            config: BTreeMap::new(),
            deletion_protection: false,
            cluster_brokers: 3,
            requested_by: "u".into(),
            requested_at: DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().with_timezone(&Utc),
        }
    }

    fn when(cmd: CreateTopic) -> cqrs_es::test::AggregateResultValidator<Topic> {
        TestFramework::<Topic>::with(()).given_no_previous_events().when(TopicCommand::Create(cmd))
    }

    #[test]
    fn given_no_topic_when_create_then_requested_with_an_id_from_cluster_and_name() {
        let events = when(create()).inspect_result().unwrap();
        let TopicEvent::TopicRequested(e) = &events[0] else { panic!("{events:?}") };
        assert_eq!(e.topic_id, topic_id(create().cluster_id, "orders.events_v1"));
        assert_ne!(e.topic_id, topic_id(create().cluster_id, "orders.events_v2"));
    }

    #[test]
    fn given_no_topic_when_create_with_rf_above_brokers_then_refused() {
        when(CreateTopic { replication_factor: 4, ..create() })
            .then_expect_error(TopicError::ReplicationFactorAboveBrokers { requested: 4, brokers: 3 });
    }

    #[test]
    fn given_no_topic_when_create_with_bad_values_then_typed_errors() {
        when(CreateTopic { replication_factor: 0, ..create() }).then_expect_error(TopicError::ReplicationFactorZero);
        when(CreateTopic { partitions: 0, ..create() })
            .then_expect_error(TopicError::PartitionsOutOfRange { requested: 0 });
        when(CreateTopic { name: "a b".into(), ..create() })
            .then_expect_error(TopicError::InvalidName { name: "a b".into(), reason: TopicNameError::Characters });
        when(CreateTopic { name: "..".into(), ..create() })
            .then_expect_error(TopicError::InvalidName { name: "..".into(), reason: TopicNameError::Reserved });
    }

    #[test]
    fn given_topic_when_create_again_then_already_exists() {
        let requested = when(create()).inspect_result().unwrap();
        TestFramework::<Topic>::with(())
            .given(requested)
            .when(TopicCommand::Create(create()))
            .then_expect_error(TopicError::AlreadyExists("orders.events_v1".into()));
    }

    fn update() -> UpdateTopic {
        UpdateTopic {
            operation_id: OperationId::from_uuid(Uuid::from_u128(9)),
            partitions: None,
            config: None,
            deletion_protection: None,
            expected_version: None,
            requested_by: "u".into(),
        }
    }

    fn ready_topic() -> Vec<TopicEvent> {
        let mut events = when(create()).inspect_result().unwrap();
        events.push(TopicEvent::TopicReady(TopicReady { operation_id: create().operation_id }));
        events
    }

    #[test]
    fn given_ready_topic_when_partitions_shrink_then_refused_and_when_they_grow_then_increased() {
        TestFramework::<Topic>::with(())
            .given(ready_topic())
            .when(TopicCommand::Update(UpdateTopic { partitions: Some(3), ..update() }))
            .then_expect_error(TopicError::PartitionDecrease { current: 6, requested: 3 });
        TestFramework::<Topic>::with(())
            .given(ready_topic())
            .when(TopicCommand::Update(UpdateTopic { partitions: Some(12), ..update() }))
            .then_expect_events(vec![TopicEvent::TopicPartitionsIncreased(TopicPartitionsIncreased {
                operation_id: update().operation_id,
                from: 6,
                to: 12,
                requested_by: "u".into(),
            })]);
        TestFramework::<Topic>::with(())
            .given(ready_topic())
            .when(TopicCommand::Update(UpdateTopic { partitions: Some(6), ..update() }))
            .then_expect_events(vec![]);
    }

    #[test]
    fn given_ready_topic_when_stale_version_or_running_operation_then_refused() {
        TestFramework::<Topic>::with(())
            .given(ready_topic())
            .when(TopicCommand::Update(UpdateTopic { partitions: Some(7), expected_version: Some(1), ..update() }))
            .then_expect_error(TopicError::VersionConflict { expected: 1, current: 2 });
        let mut busy = ready_topic();
        busy.pop();
        TestFramework::<Topic>::with(())
            .given(busy)
            .when(TopicCommand::Update(UpdateTopic { partitions: Some(7), ..update() }))
            .then_expect_error(TopicError::OperationInProgress { operation_id: create().operation_id });
    }

    #[test]
    fn given_protected_topic_when_delete_then_refused_until_unprotected() {
        let mut events = ready_topic();
        events.push(TopicEvent::TopicDeletionProtectionChanged(TopicDeletionProtectionChanged {
            enabled: true,
            requested_by: "u".into(),
        }));
        let delete = TopicCommand::RequestDeletion {
            operation_id: update().operation_id,
            expected_version: None,
            requested_by: "u".into(),
        };
        TestFramework::<Topic>::with(())
            .given(events)
            .when(delete.clone())
            .then_expect_error(TopicError::DeletionProtected);
        TestFramework::<Topic>::with(()).given(ready_topic()).when(delete).then_expect_events(vec![
            TopicEvent::TopicDeletionRequested(TopicDeletionRequested {
                operation_id: update().operation_id,
                requested_by: "u".into(),
            }),
        ]);
    }

    #[test]
    fn given_requested_when_ready_twice_then_one_event() {
        let mut events = when(create()).inspect_result().unwrap();
        let ready = TopicCommand::MarkReady { operation_id: create().operation_id };
        TestFramework::<Topic>::with(())
            .given(events.clone())
            .when(ready.clone())
            .then_expect_events(vec![TopicEvent::TopicReady(TopicReady { operation_id: create().operation_id })]);
        events.push(TopicEvent::TopicReady(TopicReady { operation_id: create().operation_id }));
        TestFramework::<Topic>::with(()).given(events).when(ready).then_expect_events(vec![]);
    }
}
