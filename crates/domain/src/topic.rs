//! The Topic aggregate. A topic belongs to a cluster; its id is derived from the cluster and the topic name,
//! so requesting the same topic twice finds the first one instead of creating a twin.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{ClusterId, OperationId, OrgId};

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

#[derive(Clone, Debug, PartialEq)]
pub enum TopicCommand {
    Create(CreateTopic),
    /// The topic workflow reports the KafkaTopic Ready.
    MarkReady {
        operation_id: OperationId,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TopicEvent {
    TopicRequested(TopicRequested),
    TopicReady(TopicReady),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicReady {
    pub operation_id: OperationId,
}

impl DomainEvent for TopicEvent {
    fn event_type(&self) -> String {
        match self {
            TopicEvent::TopicRequested(_) => "TopicRequested",
            TopicEvent::TopicReady(_) => "TopicReady",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
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
}

impl TopicError {
    pub fn field(&self) -> Option<&'static str> {
        match self {
            TopicError::InvalidName { .. } => Some("name"),
            TopicError::PartitionsOutOfRange { .. } => Some("partitions"),
            TopicError::ReplicationFactorAboveBrokers { .. } | TopicError::ReplicationFactorZero => {
                Some("replication_factor")
            }
            TopicError::AlreadyExists(_) | TopicError::NotFound | TopicError::NotCurrentOperation(_) => None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Topic {
    pub name: Option<TopicName>,
    pub ready: bool,
    pub current_operation: Option<OperationId>,
}

impl Topic {
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
        let event = match command {
            TopicCommand::Create(cmd) => Some(self.create(cmd)?),
            TopicCommand::MarkReady { operation_id } => {
                if self.name.is_none() {
                    return Err(TopicError::NotFound);
                }
                match self.current_operation {
                    Some(current) if current == operation_id => {
                        Some(TopicEvent::TopicReady(TopicReady { operation_id }))
                    }
                    // Already recorded (the operation finished): a repeat records nothing.
                    None if self.ready => None,
                    _ => return Err(TopicError::NotCurrentOperation(operation_id)),
                }
            }
        };
        if let Some(event) = event {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            TopicEvent::TopicRequested(e) => {
                self.name = Some(e.name);
                self.current_operation = Some(e.operation_id);
            }
            TopicEvent::TopicReady(_) => {
                self.ready = true;
                self.current_operation = None;
            }
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
