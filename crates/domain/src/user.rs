//! The Kafka user aggregate: a client identity on one cluster with its ACL rules and quotas (Strimzi's
//! `KafkaUser`). Its id is derived from the cluster and the name, so asking for the same user twice finds the
//! first one.
//!
//! No event carries a credential. A user's credentials have a `generation` (1 at creation, one more per
//! rotation): the event says a new generation was asked for, and the credentials themselves exist only in the
//! Kubernetes Secret the workflow writes, and once in the response to the request that asked for them.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::acl::{AclProblem, AclRule, UserQuotas, acl_problems, quota_problems, user_name_problem};
use crate::ids::{ClusterId, OperationId, OrgId};
use crate::lifecycle::{OperationTrack, WorkflowReport};

/// How a user proves who it is: a SCRAM-SHA-512 password, or a client certificate from the clients CA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UserAuthentication {
    #[default]
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    #[serde(rename = "tls")]
    Tls,
}

/// The user id for a name on a cluster: the same inputs always give the same id (and never a topic's).
pub fn user_id(cluster: ClusterId, name: &str) -> Uuid {
    Uuid::new_v5(&cluster.as_uuid(), format!("kafka-user:{name}").as_bytes())
}

#[derive(Clone, Debug, PartialEq)]
pub struct CreateUser {
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    pub operation_id: OperationId,
    pub name: String,
    pub authentication: UserAuthentication,
    pub acls: Vec<AclRule>,
    pub quotas: UserQuotas,
    /// The first generation's salt (see [`UserRequested::salt`]).
    pub salt: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

/// A change to a user: its ACL rules (replaced as a whole), its quotas (replaced as a whole), or both.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateUser {
    pub operation_id: OperationId,
    pub acls: Option<Vec<AclRule>>,
    pub quotas: Option<UserQuotas>,
    pub expected_version: Option<u64>,
    pub requested_by: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum UserCommand {
    Create(CreateUser),
    Update(UpdateUser),
    /// New credentials: the old ones stop working once the operation succeeds.
    RotateCredentials {
        operation_id: OperationId,
        /// The new generation's salt.
        salt: String,
        expected_version: Option<u64>,
        requested_by: String,
    },
    RequestDeletion {
        operation_id: OperationId,
        expected_version: Option<u64>,
        requested_by: String,
    },
    /// The user workflow reports the KafkaUser Ready (after a create, a change or a rotation).
    MarkReady {
        operation_id: OperationId,
    },
    /// The user workflow reports the KafkaUser and its Secret gone.
    MarkDeleted {
        operation_id: OperationId,
    },
    MarkStalled {
        operation_id: OperationId,
        reason: String,
    },
    MarkFailed {
        operation_id: OperationId,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub enum UserEvent {
    UserRequested(UserRequested),
    UserReady(UserReady),
    UserAclsChanged(UserAclsChanged),
    UserQuotasChanged(UserQuotasChanged),
    UserCredentialsRotated(UserCredentialsRotated),
    UserDeletionRequested(UserDeletionRequested),
    UserDeleted(UserDeleted),
    UserStalled(UserStalled),
    UserOperationFailed(UserOperationFailed),
}

/// A new Kafka user was accepted on a cluster. Its first credentials are generation 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRequested {
    pub user_id: Uuid,
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    pub operation_id: OperationId,
    pub name: String,
    pub authentication: UserAuthentication,
    pub acls: Vec<AclRule>,
    pub quotas: UserQuotas,
    /// Random, drawn for this generation: with the platform's credentials key it derives the password (which
    /// is no secret without that key, and never in an event).
    pub salt: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

/// Strimzi reports the KafkaUser Ready: credentials, ACLs and quotas are in force on the brokers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserReady {
    pub operation_id: OperationId,
}

/// The user's ACL rules were replaced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserAclsChanged {
    pub operation_id: OperationId,
    /// The whole new set of rules.
    pub acls: Vec<AclRule>,
    pub requested_by: String,
}

/// The user's quotas were replaced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserQuotasChanged {
    pub operation_id: OperationId,
    pub quotas: UserQuotas,
    pub requested_by: String,
}

/// New credentials were asked for (the secret itself is never in an event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCredentialsRotated {
    pub operation_id: OperationId,
    /// The new credentials' generation (the first are 1).
    pub generation: u32,
    /// The new generation's salt (see [`UserRequested::salt`]).
    pub salt: String,
    pub requested_by: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserDeletionRequested {
    pub operation_id: OperationId,
    pub requested_by: String,
}

/// The KafkaUser and its Secret are gone: the credentials no longer authenticate. The history stays.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserDeleted {
    pub operation_id: OperationId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserStalled {
    pub operation_id: OperationId,
    pub reason: String,
}

/// A user operation failed (for example `OWNERSHIP_CONFLICT`); nothing was touched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserOperationFailed {
    pub operation_id: OperationId,
    pub reason: String,
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            UserEvent::UserRequested(_) => "UserRequested",
            UserEvent::UserReady(_) => "UserReady",
            UserEvent::UserAclsChanged(_) => "UserAclsChanged",
            UserEvent::UserQuotasChanged(_) => "UserQuotasChanged",
            UserEvent::UserCredentialsRotated(_) => "UserCredentialsRotated",
            UserEvent::UserDeletionRequested(_) => "UserDeletionRequested",
            UserEvent::UserDeleted(_) => "UserDeleted",
            UserEvent::UserStalled(_) => "UserStalled",
            UserEvent::UserOperationFailed(_) => "UserOperationFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::events::current_version(&self.event_type()).unwrap_or(1).to_string()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("user {0:?} already exists on this cluster")]
    AlreadyExists(String),
    #[error("user name {name:?} is invalid: {reason}")]
    InvalidName { name: String, reason: String },
    /// Every problem of the ACL rules and quotas, each with its field.
    #[error("{}", .0.iter().map(|p| format!("{}: {}", p.field, p.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<AclProblem>),
    #[error("user does not exist")]
    NotFound,
    #[error("operation {0} is not the user's current operation")]
    NotCurrentOperation(OperationId),
    #[error("the user is at version {current}; the request expected {expected}")]
    VersionConflict { expected: u64, current: u64 },
    #[error("operation {operation_id} is still running on this user")]
    OperationInProgress { operation_id: OperationId },
    #[error("the user is being deleted")]
    Deleting,
}

/// Every problem of the ACL rules and quotas given (either may be absent in a change), each with its field.
pub fn validate(acls: Option<&[AclRule]>, quotas: Option<&UserQuotas>) -> Result<(), UserError> {
    let mut problems = acls.map(acl_problems).unwrap_or_default();
    problems.extend(quotas.map(quota_problems).unwrap_or_default());
    if problems.is_empty() { Ok(()) } else { Err(UserError::Invalid(problems)) }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KafkaUser {
    pub name: Option<String>,
    pub authentication: UserAuthentication,
    pub acls: Vec<AclRule>,
    pub quotas: UserQuotas,
    /// The credentials' generation (1 at creation, one more per rotation).
    pub generation: u32,
    /// The current generation's salt.
    pub salt: String,
    pub ready: bool,
    pub current_operation: Option<OperationId>,
    pub deleting: bool,
    pub deleted: bool,
    pub stalled: bool,
    pub failed: bool,
    /// The number of events applied: the user's version for optimistic concurrency.
    pub version: u64,
}

impl KafkaUser {
    /// REQUESTED, READY, UPDATING, DELETING, DELETED, STALLED, FAILED (the topic's words).
    pub fn status(&self) -> &'static str {
        match (self.deleted, self.deleting, self.current_operation, self.ready) {
            (true, ..) => "DELETED",
            _ if self.stalled => "STALLED",
            _ if self.failed => "FAILED",
            (_, true, ..) => "DELETING",
            (_, _, Some(_), false) => "REQUESTED",
            (_, _, Some(_), true) => "UPDATING",
            _ => "READY",
        }
    }

    /// A workflow's report on `operation`, judged against the running operation (see [`OperationTrack`]).
    fn judge(&self, operation: OperationId, report: WorkflowReport) -> Result<bool, UserError> {
        let track = OperationTrack {
            current: self.current_operation,
            ready: self.ready,
            deleting: self.deleting,
            deleted: self.deleted,
        };
        track.judge(operation, report).map_err(UserError::NotCurrentOperation)
    }

    fn live(&self, expected_version: Option<u64>) -> Result<(), UserError> {
        if self.name.is_none() || self.deleted {
            return Err(UserError::NotFound);
        }
        if self.deleting {
            return Err(UserError::Deleting);
        }
        match expected_version {
            Some(expected) if expected != self.version => {
                Err(UserError::VersionConflict { expected, current: self.version })
            }
            _ => Ok(()),
        }
    }

    fn idle(&self) -> Result<(), UserError> {
        match self.current_operation {
            Some(operation_id) => Err(UserError::OperationInProgress { operation_id }),
            None => Ok(()),
        }
    }

    fn create(&self, cmd: CreateUser) -> Result<UserEvent, UserError> {
        if let Some(name) = &self.name {
            return Err(UserError::AlreadyExists(name.clone()));
        }
        if let Some(reason) = user_name_problem(&cmd.name) {
            return Err(UserError::InvalidName { name: cmd.name, reason });
        }
        validate(Some(&cmd.acls), Some(&cmd.quotas))?;
        Ok(UserEvent::UserRequested(UserRequested {
            user_id: user_id(cmd.cluster_id, &cmd.name),
            cluster_id: cmd.cluster_id,
            org_id: cmd.org_id,
            operation_id: cmd.operation_id,
            name: cmd.name,
            authentication: cmd.authentication,
            acls: cmd.acls,
            quotas: cmd.quotas,
            salt: cmd.salt,
            requested_by: cmd.requested_by,
            requested_at: cmd.requested_at,
        }))
    }

    fn update(&self, cmd: UpdateUser) -> Result<Vec<UserEvent>, UserError> {
        self.live(cmd.expected_version)?;
        validate(cmd.acls.as_deref(), cmd.quotas.as_ref())?;
        let mut events = Vec::new();
        if let Some(acls) = cmd.acls.filter(|a| *a != self.acls) {
            events.push(UserEvent::UserAclsChanged(UserAclsChanged {
                operation_id: cmd.operation_id,
                acls,
                requested_by: cmd.requested_by.clone(),
            }));
        }
        if let Some(quotas) = cmd.quotas.filter(|q| *q != self.quotas) {
            events.push(UserEvent::UserQuotasChanged(UserQuotasChanged {
                operation_id: cmd.operation_id,
                quotas,
                requested_by: cmd.requested_by,
            }));
        }
        if !events.is_empty() {
            self.idle()?;
        }
        Ok(events)
    }
}

impl Aggregate for KafkaUser {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(&mut self, command: Self::Command, _: &(), sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let events = match command {
            UserCommand::Create(cmd) => vec![self.create(cmd)?],
            UserCommand::Update(cmd) => self.update(cmd)?,
            UserCommand::RotateCredentials { operation_id, salt, expected_version, requested_by } => {
                self.live(expected_version)?;
                self.idle()?;
                let generation = self.generation + 1;
                vec![UserEvent::UserCredentialsRotated(UserCredentialsRotated {
                    operation_id,
                    generation,
                    salt,
                    requested_by,
                })]
            }
            UserCommand::RequestDeletion { operation_id, expected_version, requested_by } => {
                // A deletion that stalled may be asked for again.
                let retry = self.deleting && !self.deleted && self.current_operation.is_none();
                if !retry {
                    self.live(expected_version)?;
                }
                self.idle()?;
                vec![UserEvent::UserDeletionRequested(UserDeletionRequested { operation_id, requested_by })]
            }
            UserCommand::MarkReady { operation_id } => {
                if self.name.is_none() {
                    return Err(UserError::NotFound);
                }
                self.judge(operation_id, WorkflowReport::Ready)?
                    .then_some(UserEvent::UserReady(UserReady { operation_id }))
                    .into_iter()
                    .collect()
            }
            UserCommand::MarkDeleted { operation_id } => self
                .judge(operation_id, WorkflowReport::Deleted)?
                .then_some(UserEvent::UserDeleted(UserDeleted { operation_id }))
                .into_iter()
                .collect(),
            UserCommand::MarkStalled { operation_id, reason } => self
                .judge(operation_id, WorkflowReport::Stalled)?
                .then_some(UserEvent::UserStalled(UserStalled { operation_id, reason }))
                .into_iter()
                .collect(),
            UserCommand::MarkFailed { operation_id, reason } => self
                .judge(operation_id, WorkflowReport::Failed)?
                .then_some(UserEvent::UserOperationFailed(UserOperationFailed { operation_id, reason }))
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
        self.stalled = matches!(event, UserEvent::UserStalled(_));
        self.failed = matches!(event, UserEvent::UserOperationFailed(_));
        match event {
            UserEvent::UserRequested(e) => {
                self.name = Some(e.name);
                self.authentication = e.authentication;
                self.acls = e.acls;
                self.quotas = e.quotas;
                self.generation = 1;
                self.salt = e.salt;
                self.current_operation = Some(e.operation_id);
            }
            UserEvent::UserReady(_) => {
                self.ready = true;
                self.current_operation = None;
            }
            UserEvent::UserAclsChanged(e) => {
                self.acls = e.acls;
                self.current_operation = Some(e.operation_id);
            }
            UserEvent::UserQuotasChanged(e) => {
                self.quotas = e.quotas;
                self.current_operation = Some(e.operation_id);
            }
            UserEvent::UserCredentialsRotated(e) => {
                self.generation = e.generation;
                self.salt = e.salt;
                self.current_operation = Some(e.operation_id);
            }
            UserEvent::UserDeletionRequested(e) => {
                self.deleting = true;
                self.current_operation = Some(e.operation_id);
            }
            UserEvent::UserDeleted(_) => {
                self.deleted = true;
                self.current_operation = None;
            }
            UserEvent::UserStalled(_) | UserEvent::UserOperationFailed(_) => self.current_operation = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::acl::{AclEffect, AclOperation, AclPattern, AclResource, AclResourceType};

    fn op(n: u128) -> OperationId {
        OperationId::from_uuid(Uuid::from_u128(n))
    }

    fn write_orders() -> AclRule {
        AclRule {
            resource: AclResource {
                type_: AclResourceType::Topic,
                name: Some("orders.".into()),
                pattern: AclPattern::Prefix,
            },
            operations: vec![AclOperation::Write, AclOperation::Describe],
            host: "*".into(),
            effect: AclEffect::Allow,
        }
    }

    fn create() -> CreateUser {
        CreateUser {
            cluster_id: ClusterId::from_uuid(Uuid::from_u128(1)),
            org_id: OrgId::from_uuid(Uuid::from_u128(2)),
            operation_id: op(3),
            name: "orders-app".into(),
            authentication: UserAuthentication::ScramSha512,
            acls: vec![write_orders()],
            quotas: UserQuotas { producer_byte_rate: Some(102_400), ..Default::default() },
            salt: "00".into(),
            requested_by: "u".into(),
            requested_at: DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z").unwrap().with_timezone(&Utc),
        }
    }

    fn ready_user() -> Vec<UserEvent> {
        let mut events = TestFramework::<KafkaUser>::with(())
            .given_no_previous_events()
            .when(UserCommand::Create(create()))
            .inspect_result()
            .unwrap();
        events.push(UserEvent::UserReady(UserReady { operation_id: op(3) }));
        events
    }

    #[test]
    fn create_gives_an_id_from_cluster_and_name_distinct_from_a_topics() {
        let events = ready_user();
        let UserEvent::UserRequested(e) = &events[0] else { panic!("{events:?}") };
        assert_eq!(e.user_id, user_id(create().cluster_id, "orders-app"));
        assert_ne!(e.user_id, crate::topic::topic_id(create().cluster_id, "orders-app"));
    }

    #[test]
    fn invalid_acls_and_quotas_are_refused_with_every_field() {
        let mut bad = write_orders();
        bad.resource.type_ = AclResourceType::Group;
        let cmd = CreateUser {
            acls: vec![bad],
            quotas: UserQuotas { consumer_byte_rate: Some(0), ..Default::default() },
            ..create()
        };
        let err = TestFramework::<KafkaUser>::with(())
            .given_no_previous_events()
            .when(UserCommand::Create(cmd))
            .inspect_result()
            .unwrap_err();
        let UserError::Invalid(fields) = err else { panic!("{err:?}") };
        let fields: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["acls[0].operations[0]", "quotas.consumer_byte_rate"]);
        TestFramework::<KafkaUser>::with(())
            .given_no_previous_events()
            .when(UserCommand::Create(CreateUser { name: "Orders".into(), ..create() }))
            .then_expect_error_message("user name \"Orders\" is invalid: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (a Kubernetes name)");
    }

    #[test]
    fn rotation_raises_the_generation_and_waits_for_the_running_operation() {
        TestFramework::<KafkaUser>::with(())
            .given(ready_user())
            .when(UserCommand::RotateCredentials {
                operation_id: op(4),
                salt: "01".into(),
                expected_version: None,
                requested_by: "u".into(),
            })
            .then_expect_events(vec![UserEvent::UserCredentialsRotated(UserCredentialsRotated {
                operation_id: op(4),
                generation: 2,
                salt: "01".into(),
                requested_by: "u".into(),
            })]);
        let mut running = ready_user();
        running.pop();
        TestFramework::<KafkaUser>::with(())
            .given(running)
            .when(UserCommand::RotateCredentials {
                operation_id: op(4),
                salt: "01".into(),
                expected_version: None,
                requested_by: "u".into(),
            })
            .then_expect_error(UserError::OperationInProgress { operation_id: op(3) });
    }

    #[test]
    fn an_update_records_only_what_changed() {
        let read = AclRule { operations: vec![AclOperation::Read], ..write_orders() };
        TestFramework::<KafkaUser>::with(())
            .given(ready_user())
            .when(UserCommand::Update(UpdateUser {
                operation_id: op(5),
                acls: Some(vec![read.clone()]),
                quotas: Some(create().quotas),
                expected_version: Some(2),
                requested_by: "u".into(),
            }))
            .then_expect_events(vec![UserEvent::UserAclsChanged(UserAclsChanged {
                operation_id: op(5),
                acls: vec![read],
                requested_by: "u".into(),
            })]);
        TestFramework::<KafkaUser>::with(())
            .given(ready_user())
            .when(UserCommand::Update(UpdateUser {
                operation_id: op(5),
                acls: None,
                quotas: None,
                expected_version: Some(1),
                requested_by: "u".into(),
            }))
            .then_expect_error(UserError::VersionConflict { expected: 1, current: 2 });
    }

    #[test]
    fn deletion_then_deleted_and_nothing_after() {
        let mut events = ready_user();
        events.push(UserEvent::UserDeletionRequested(UserDeletionRequested {
            operation_id: op(6),
            requested_by: "u".into(),
        }));
        TestFramework::<KafkaUser>::with(())
            .given(events.clone())
            .when(UserCommand::MarkDeleted { operation_id: op(6) })
            .then_expect_events(vec![UserEvent::UserDeleted(UserDeleted { operation_id: op(6) })]);
        events.push(UserEvent::UserDeleted(UserDeleted { operation_id: op(6) }));
        TestFramework::<KafkaUser>::with(())
            .given(events)
            .when(UserCommand::RotateCredentials {
                operation_id: op(7),
                salt: "02".into(),
                expected_version: None,
                requested_by: "u".into(),
            })
            .then_expect_error(UserError::NotFound);
    }

    #[test]
    fn no_event_field_can_hold_a_credential() {
        // The payload schemas name every field an event can carry: none is a password, key or certificate.
        fn fields(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::Object(props)) = m.get("properties") {
                        out.extend(props.keys().cloned());
                    }
                    m.values().for_each(|v| fields(v, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| fields(v, out)),
                _ => {}
            }
        }
        let mut names = Vec::new();
        fields(&serde_json::to_value(schemars::schema_for!(UserEvent)).expect("schema"), &mut names);
        assert!(names.contains(&"generation".to_owned()), "{names:?}");
        // Event type names (the enum's tags, `UserCredentialsRotated`) are not fields.
        for name in names.iter().filter(|n| n.starts_with(|c: char| c.is_ascii_lowercase())) {
            for word in ["password", "secret", "key", "certificate", "credential", "token"] {
                assert!(!name.to_lowercase().contains(word), "a user event field looks like a credential: {name}");
            }
        }
    }
}
