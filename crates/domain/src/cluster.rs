//! The Cluster aggregate. It decides whether a cluster request is acceptable and records what was decided as
//! events; every other view of a cluster (read models, status, history) is derived from those events.
//! Rules live in `handle`; `apply` only assigns, so replaying history never re-judges it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::ids::{ClusterId, ClusterName, NameError, OperationId, OrgId, Provider, Region, TargetId};

/// Kafka versions the Strimzi release Polaris targets can run (its CRDs list them); the last is the default.
pub const SUPPORTED_KAFKA_VERSIONS: [&str; 4] = ["4.2.0", "4.2.1", "4.3.0", "4.3.1"];
pub const DEFAULT_KAFKA_VERSION: &str = "4.3.1";
pub const BROKERS_MIN: u32 = 1;
pub const BROKERS_MAX: u32 = 100;
pub const CONTROLLERS_ALLOWED: [u32; 3] = [1, 3, 5];
pub const DEFAULT_CONTROLLERS: u32 = 3;
pub const STORAGE_GIB_MIN: u32 = 1;
pub const STORAGE_GIB_MAX: u32 = 65_536;
pub const DEFAULT_STORAGE_GIB: u32 = 100;

/// The KRaft metadata version a new cluster starts with: the release's own (`4.3` for 4.3.x), which Kafka maps
/// to that release's latest metadata level.
pub fn metadata_version_for(kafka_version: &str) -> String {
    kafka_version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".")
}

/// Lifecycle states of SPEC.md §1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClusterStatus {
    #[default]
    Requested,
    Provisioning,
    Ready,
    Scaling,
    Rebalancing,
    Upgrading,
    Deleting,
    Deleted,
    Stalled,
    Failed,
    Degraded,
}

impl ClusterStatus {
    pub const fn as_str(&self) -> &'static str {
        match self {
            ClusterStatus::Requested => "REQUESTED",
            ClusterStatus::Provisioning => "PROVISIONING",
            ClusterStatus::Ready => "READY",
            ClusterStatus::Scaling => "SCALING",
            ClusterStatus::Rebalancing => "REBALANCING",
            ClusterStatus::Upgrading => "UPGRADING",
            ClusterStatus::Deleting => "DELETING",
            ClusterStatus::Deleted => "DELETED",
            ClusterStatus::Stalled => "STALLED",
            ClusterStatus::Failed => "FAILED",
            ClusterStatus::Degraded => "DEGRADED",
        }
    }
}

/// Request a new cluster. Values arrive unvalidated from the edge; `handle` judges them.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestCluster {
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    pub operation_id: OperationId,
    /// The target chosen by placement (provider and region); `None` when no target matches.
    pub target_id: Option<TargetId>,
    pub name: String,
    pub provider: String,
    pub region: String,
    pub kafka_version: Option<String>,
    pub brokers: u32,
    pub controllers: Option<u32>,
    pub storage_gib: Option<u32>,
    pub config: BTreeMap<String, String>,
    pub deletion_protection: bool,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

/// Commands the provisioning workflow sends back through the command path. Each names the operation it
/// belongs to; repeating one (an activity retried after a crash) records nothing new.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterCommand {
    Request(RequestCluster),
    StartProvisioning { operation_id: OperationId, workflow_id: String },
    RecordResourcesApplied { operation_id: OperationId, namespace: String, resources: Vec<String> },
    MarkReady { operation_id: OperationId, broker_ids: Vec<i32>, controller_ids: Vec<i32>, bootstrap_servers: String },
    MarkStalled { operation_id: OperationId, step: String, reason: String },
    MarkFailed { operation_id: OperationId, step: String, reason: String },
}

/// What happened to a cluster. Events carry resulting values, so read models never recompute them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClusterEvent {
    ClusterRequested(ClusterRequested),
    ClusterProvisioningStarted(ClusterProvisioningStarted),
    StrimziResourcesApplied(StrimziResourcesApplied),
    ClusterReady(ClusterReady),
    ClusterStalled(ClusterStalled),
    OperationFailed(OperationFailed),
}

/// The provisioning workflow has started working on the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterProvisioningStarted {
    pub operation_id: OperationId,
    pub workflow_id: String,
}

/// The namespace, node pools and Kafka resource were applied to the target (not yet ready).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrimziResourcesApplied {
    pub operation_id: OperationId,
    pub namespace: String,
    /// `Kind/name` of each resource applied, in the order applied.
    pub resources: Vec<String>,
}

/// Strimzi reports the cluster ready: brokers by Kafka node id, and where clients connect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterReady {
    pub operation_id: OperationId,
    pub broker_ids: Vec<i32>,
    pub controller_ids: Vec<i32>,
    pub bootstrap_servers: String,
}

/// An operation stopped making progress within its deadline. Nothing else was touched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterStalled {
    pub operation_id: OperationId,
    pub step: String,
    pub reason: String,
}

/// An operation failed for a reason retrying cannot fix (for example a resource the API server refuses).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationFailed {
    pub operation_id: OperationId,
    pub step: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRequested {
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

impl DomainEvent for ClusterEvent {
    fn event_type(&self) -> String {
        match self {
            ClusterEvent::ClusterRequested(_) => "ClusterRequested",
            ClusterEvent::ClusterProvisioningStarted(_) => "ClusterProvisioningStarted",
            ClusterEvent::StrimziResourcesApplied(_) => "StrimziResourcesApplied",
            ClusterEvent::ClusterReady(_) => "ClusterReady",
            ClusterEvent::ClusterStalled(_) => "ClusterStalled",
            ClusterEvent::OperationFailed(_) => "OperationFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Why a cluster command was refused. Each variant names the offending field, so the API can point at it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster {0} already exists")]
    AlreadyExists(ClusterId),
    #[error("name {name:?} is not a DNS-1123 label: {reason}")]
    InvalidName { name: String, reason: NameError },
    #[error("provider {provider:?} is not one of aws, gcp, azure, onprem")]
    UnknownProvider { provider: String },
    #[error("region {region:?} is invalid: {reason}")]
    InvalidRegion { region: String, reason: NameError },
    #[error("brokers must be between {BROKERS_MIN} and {BROKERS_MAX}, got {requested}")]
    BrokersOutOfRange { requested: u32 },
    #[error("controllers must be one of 1, 3 or 5, got {requested}")]
    ControllersNotAllowed { requested: u32 },
    #[error("storage_gib must be between {STORAGE_GIB_MIN} and {STORAGE_GIB_MAX}, got {requested}")]
    StorageOutOfRange { requested: u32 },
    #[error("kafka_version {requested:?} is not supported; supported: 4.2.0, 4.2.1, 4.3.0, 4.3.1")]
    UnsupportedKafkaVersion { requested: String },
    #[error("config key {key:?} is invalid: keys are non-empty Kafka property names")]
    InvalidConfigKey { key: String },
    #[error("no target serves provider {provider} in region {region}")]
    NoTarget { provider: String, region: String },
    #[error("cluster does not exist")]
    NotFound,
    #[error("operation {got} is not the cluster's current operation ({current:?})")]
    NotCurrentOperation { got: OperationId, current: Option<OperationId> },
    #[error("cluster is {status:?}; {action} is not possible now")]
    InvalidTransition { status: ClusterStatus, action: &'static str },
}

impl ClusterError {
    /// The request field the error is about (`None` when it is about the whole resource).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ClusterError::AlreadyExists(_) => None,
            ClusterError::InvalidName { .. } => Some("name"),
            ClusterError::UnknownProvider { .. } => Some("provider"),
            ClusterError::InvalidRegion { .. } => Some("region"),
            ClusterError::BrokersOutOfRange { .. } => Some("brokers"),
            ClusterError::ControllersNotAllowed { .. } => Some("controllers"),
            ClusterError::StorageOutOfRange { .. } => Some("storage_gib"),
            ClusterError::UnsupportedKafkaVersion { .. } => Some("kafka_version"),
            ClusterError::InvalidConfigKey { .. } => Some("config"),
            ClusterError::NoTarget { .. } => Some("region"),
            ClusterError::NotFound
            | ClusterError::NotCurrentOperation { .. }
            | ClusterError::InvalidTransition { .. } => None,
        }
    }
}

/// The aggregate's state: only what its rules need.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: Option<ClusterId>,
    pub org_id: Option<OrgId>,
    pub name: Option<ClusterName>,
    pub status: ClusterStatus,
    pub brokers: u32,
    pub kafka_version: String,
    pub current_operation: Option<OperationId>,
    pub resources_applied: bool,
}

impl Cluster {
    /// A report from the workflow must be about the operation in progress.
    fn check_operation(&self, operation_id: OperationId) -> Result<(), ClusterError> {
        if self.id.is_none() {
            return Err(ClusterError::NotFound);
        }
        if self.current_operation != Some(operation_id) {
            return Err(ClusterError::NotCurrentOperation { got: operation_id, current: self.current_operation });
        }
        Ok(())
    }

    /// Decides what a workflow report records. `Ok(None)`: already recorded, nothing new.
    fn report(&self, cmd: ClusterCommand) -> Result<Option<ClusterEvent>, ClusterError> {
        use ClusterStatus::*;
        let ended = |s: ClusterStatus| matches!(s, Ready | Stalled | Failed);
        match cmd {
            ClusterCommand::Request(_) => unreachable!("handled by request"),
            ClusterCommand::StartProvisioning { operation_id, workflow_id } => {
                self.check_operation(operation_id)?;
                match self.status {
                    Requested => Ok(Some(ClusterEvent::ClusterProvisioningStarted(ClusterProvisioningStarted {
                        operation_id,
                        workflow_id,
                    }))),
                    _ => Ok(None),
                }
            }
            ClusterCommand::RecordResourcesApplied { operation_id, namespace, resources } => {
                self.check_operation(operation_id)?;
                match self.status {
                    Provisioning if !self.resources_applied => {
                        Ok(Some(ClusterEvent::StrimziResourcesApplied(StrimziResourcesApplied {
                            operation_id,
                            namespace,
                            resources,
                        })))
                    }
                    Provisioning => Ok(None),
                    s if ended(s) => Ok(None),
                    status => Err(ClusterError::InvalidTransition { status, action: "recording applied resources" }),
                }
            }
            ClusterCommand::MarkReady { operation_id, broker_ids, controller_ids, bootstrap_servers } => {
                self.check_operation(operation_id)?;
                match self.status {
                    Provisioning => Ok(Some(ClusterEvent::ClusterReady(ClusterReady {
                        operation_id,
                        broker_ids,
                        controller_ids,
                        bootstrap_servers,
                    }))),
                    s if ended(s) => Ok(None),
                    status => Err(ClusterError::InvalidTransition { status, action: "marking ready" }),
                }
            }
            ClusterCommand::MarkStalled { operation_id, step, reason } => {
                self.check_operation(operation_id)?;
                match self.status {
                    Requested | Provisioning => {
                        Ok(Some(ClusterEvent::ClusterStalled(ClusterStalled { operation_id, step, reason })))
                    }
                    _ => Ok(None),
                }
            }
            ClusterCommand::MarkFailed { operation_id, step, reason } => {
                self.check_operation(operation_id)?;
                match self.status {
                    Requested | Provisioning => {
                        Ok(Some(ClusterEvent::OperationFailed(OperationFailed { operation_id, step, reason })))
                    }
                    _ => Ok(None),
                }
            }
        }
    }

    fn request(&self, cmd: RequestCluster) -> Result<ClusterRequested, ClusterError> {
        if self.id.is_some() {
            return Err(ClusterError::AlreadyExists(cmd.cluster_id));
        }
        let name = ClusterName::parse(&cmd.name)
            .map_err(|reason| ClusterError::InvalidName { name: cmd.name.clone(), reason })?;
        let provider = Provider::parse(&cmd.provider)
            .ok_or_else(|| ClusterError::UnknownProvider { provider: cmd.provider.clone() })?;
        let region = Region::parse(&cmd.region)
            .map_err(|reason| ClusterError::InvalidRegion { region: cmd.region.clone(), reason })?;
        if !(BROKERS_MIN..=BROKERS_MAX).contains(&cmd.brokers) {
            return Err(ClusterError::BrokersOutOfRange { requested: cmd.brokers });
        }
        let controllers = cmd.controllers.unwrap_or(DEFAULT_CONTROLLERS);
        if !CONTROLLERS_ALLOWED.contains(&controllers) {
            return Err(ClusterError::ControllersNotAllowed { requested: controllers });
        }
        let storage_gib = cmd.storage_gib.unwrap_or(DEFAULT_STORAGE_GIB);
        if !(STORAGE_GIB_MIN..=STORAGE_GIB_MAX).contains(&storage_gib) {
            return Err(ClusterError::StorageOutOfRange { requested: storage_gib });
        }
        let kafka_version = cmd.kafka_version.unwrap_or_else(|| DEFAULT_KAFKA_VERSION.to_owned());
        if !SUPPORTED_KAFKA_VERSIONS.contains(&kafka_version.as_str()) {
            return Err(ClusterError::UnsupportedKafkaVersion { requested: kafka_version });
        }
        let valid_key = |k: &str| {
            !k.is_empty()
                && k.len() <= 255
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
        };
        if let Some(key) = cmd.config.keys().find(|k| !valid_key(k)) {
            return Err(ClusterError::InvalidConfigKey { key: key.clone() });
        }
        let target_id = cmd
            .target_id
            .ok_or_else(|| ClusterError::NoTarget { provider: provider.to_string(), region: region.to_string() })?;
        Ok(ClusterRequested {
            cluster_id: cmd.cluster_id,
            org_id: cmd.org_id,
            operation_id: cmd.operation_id,
            target_id,
            name,
            provider,
            region,
            metadata_version: metadata_version_for(&kafka_version),
            kafka_version,
            brokers: cmd.brokers,
            controllers,
            storage_gib,
            config: cmd.config,
            deletion_protection: cmd.deletion_protection,
            requested_by: cmd.requested_by,
            requested_at: cmd.requested_at,
        })
    }
}

impl Aggregate for Cluster {
    const TYPE: &'static str = "cluster";
    type Command = ClusterCommand;
    type Event = ClusterEvent;
    type Error = ClusterError;
    type Services = ();

    async fn handle(&mut self, command: Self::Command, _: &(), sink: &EventSink<Self>) -> Result<(), Self::Error> {
        match command {
            ClusterCommand::Request(cmd) => {
                let event = self.request(cmd)?;
                sink.write(ClusterEvent::ClusterRequested(event), self).await;
            }
            report => {
                if let Some(event) = self.report(report)? {
                    sink.write(event, self).await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ClusterEvent::ClusterRequested(e) => {
                self.id = Some(e.cluster_id);
                self.org_id = Some(e.org_id);
                self.name = Some(e.name);
                self.status = ClusterStatus::Requested;
                self.brokers = e.brokers;
                self.kafka_version = e.kafka_version;
                self.current_operation = Some(e.operation_id);
            }
            ClusterEvent::ClusterProvisioningStarted(_) => self.status = ClusterStatus::Provisioning,
            ClusterEvent::StrimziResourcesApplied(_) => self.resources_applied = true,
            ClusterEvent::ClusterReady(e) => {
                self.status = ClusterStatus::Ready;
                self.brokers = e.broker_ids.len() as u32;
            }
            ClusterEvent::ClusterStalled(_) => self.status = ClusterStatus::Stalled,
            ClusterEvent::OperationFailed(_) => self.status = ClusterStatus::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    use super::*;

    fn id() -> ClusterId {
        ClusterId::from_uuid(Uuid::from_u128(1))
    }

    fn request() -> RequestCluster {
        RequestCluster {
            cluster_id: id(),
            org_id: OrgId::from_uuid(Uuid::from_u128(2)),
            operation_id: OperationId::from_uuid(Uuid::from_u128(3)),
            target_id: Some(TargetId::from_uuid(Uuid::from_u128(4))),
            name: "orders".into(),
            provider: "aws".into(),
            region: "eu-west-1".into(),
            kafka_version: None,
            brokers: 3,
            controllers: None,
            storage_gib: None,
            config: BTreeMap::from([("min.insync.replicas".into(), "2".into())]),
            deletion_protection: false,
            requested_by: "token:test".into(),
            requested_at: DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().with_timezone(&Utc),
        }
    }

    fn requested() -> ClusterEvent {
        ClusterEvent::ClusterRequested(Cluster::default().request(request()).unwrap())
    }

    fn given_nothing_when(cmd: RequestCluster) -> cqrs_es::test::AggregateResultValidator<Cluster> {
        TestFramework::<Cluster>::with(()).given_no_previous_events().when(ClusterCommand::Request(cmd))
    }

    #[test]
    fn given_no_cluster_when_request_valid_then_cluster_requested_with_defaults() {
        let expected = ClusterEvent::ClusterRequested(ClusterRequested {
            cluster_id: id(),
            org_id: OrgId::from_uuid(Uuid::from_u128(2)),
            operation_id: OperationId::from_uuid(Uuid::from_u128(3)),
            target_id: TargetId::from_uuid(Uuid::from_u128(4)),
            name: ClusterName::parse("orders").unwrap(),
            provider: Provider::Aws,
            region: Region::parse("eu-west-1").unwrap(),
            kafka_version: "4.3.1".into(),
            metadata_version: "4.3".into(),
            brokers: 3,
            controllers: 3,
            storage_gib: 100,
            config: BTreeMap::from([("min.insync.replicas".into(), "2".into())]),
            deletion_protection: false,
            requested_by: "token:test".into(),
            requested_at: request().requested_at,
        });
        given_nothing_when(request()).then_expect_events(vec![expected]);
    }

    #[test]
    fn given_requested_cluster_when_request_again_then_already_exists() {
        TestFramework::<Cluster>::with(())
            .given(vec![requested()])
            .when(ClusterCommand::Request(request()))
            .then_expect_error(ClusterError::AlreadyExists(id()));
    }

    #[test]
    fn given_no_cluster_when_request_with_bad_name_then_invalid_name() {
        for (name, reason) in [
            ("Orders", NameError::BadCharacters),
            ("orders_eu", NameError::BadCharacters),
            ("-orders", NameError::BadCharacters),
            ("", NameError::Empty),
        ] {
            given_nothing_when(RequestCluster { name: name.into(), ..request() })
                .then_expect_error(ClusterError::InvalidName { name: name.into(), reason });
        }
    }

    #[test]
    fn given_no_cluster_when_request_with_zero_or_too_many_brokers_then_out_of_range() {
        for brokers in [0, 101] {
            given_nothing_when(RequestCluster { brokers, ..request() })
                .then_expect_error(ClusterError::BrokersOutOfRange { requested: brokers });
        }
    }

    #[test]
    fn given_no_cluster_when_request_with_edge_broker_counts_then_accepted() {
        for brokers in [1, 100] {
            let events = given_nothing_when(RequestCluster { brokers, ..request() }).inspect_result().unwrap();
            assert_eq!(events.len(), 1);
        }
    }

    #[test]
    fn given_no_cluster_when_request_with_unknown_provider_then_unknown_provider() {
        given_nothing_when(RequestCluster { provider: "ibm".into(), ..request() })
            .then_expect_error(ClusterError::UnknownProvider { provider: "ibm".into() });
    }

    #[test]
    fn given_no_cluster_when_request_with_empty_region_then_invalid_region() {
        given_nothing_when(RequestCluster { region: " ".into(), ..request() })
            .then_expect_error(ClusterError::InvalidRegion { region: " ".into(), reason: NameError::Empty });
    }

    #[test]
    fn given_no_cluster_when_request_with_even_controllers_then_not_allowed() {
        given_nothing_when(RequestCluster { controllers: Some(2), ..request() })
            .then_expect_error(ClusterError::ControllersNotAllowed { requested: 2 });
    }

    #[test]
    fn given_no_cluster_when_request_with_zero_storage_then_out_of_range() {
        given_nothing_when(RequestCluster { storage_gib: Some(0), ..request() })
            .then_expect_error(ClusterError::StorageOutOfRange { requested: 0 });
    }

    #[test]
    fn given_no_cluster_when_request_with_unknown_kafka_version_then_unsupported() {
        given_nothing_when(RequestCluster { kafka_version: Some("3.9.0".into()), ..request() })
            .then_expect_error(ClusterError::UnsupportedKafkaVersion { requested: "3.9.0".into() });
    }

    #[test]
    fn given_no_cluster_when_request_with_bad_config_key_then_invalid_config_key() {
        let config = BTreeMap::from([("bad key".into(), "1".into())]);
        given_nothing_when(RequestCluster { config, ..request() })
            .then_expect_error(ClusterError::InvalidConfigKey { key: "bad key".into() });
    }

    #[test]
    fn given_no_cluster_when_request_without_a_matching_target_then_no_target() {
        given_nothing_when(RequestCluster { target_id: None, ..request() })
            .then_expect_error(ClusterError::NoTarget { provider: "aws".into(), region: "eu-west-1".into() });
    }

    fn op() -> OperationId {
        OperationId::from_uuid(Uuid::from_u128(3))
    }

    fn started() -> ClusterEvent {
        ClusterEvent::ClusterProvisioningStarted(ClusterProvisioningStarted {
            operation_id: op(),
            workflow_id: "provision-1-1".into(),
        })
    }

    fn applied() -> ClusterEvent {
        ClusterEvent::StrimziResourcesApplied(StrimziResourcesApplied {
            operation_id: op(),
            namespace: "polaris-orders".into(),
            resources: vec!["Kafka/orders".into()],
        })
    }

    fn ready_cmd() -> ClusterCommand {
        ClusterCommand::MarkReady {
            operation_id: op(),
            broker_ids: vec![3, 4, 5],
            controller_ids: vec![0, 1, 2],
            bootstrap_servers: "orders-kafka-bootstrap.polaris-orders.svc:9092".into(),
        }
    }

    #[test]
    fn given_requested_when_start_provisioning_then_provisioning_started() {
        TestFramework::<Cluster>::with(())
            .given(vec![requested()])
            .when(ClusterCommand::StartProvisioning { operation_id: op(), workflow_id: "provision-1-1".into() })
            .then_expect_events(vec![started()]);
    }

    #[test]
    fn given_provisioning_when_start_provisioning_again_then_nothing_new() {
        TestFramework::<Cluster>::with(())
            .given(vec![requested(), started()])
            .when(ClusterCommand::StartProvisioning { operation_id: op(), workflow_id: "provision-1-1".into() })
            .then_expect_events(vec![]);
    }

    #[test]
    fn given_requested_when_report_for_another_operation_then_not_current_operation() {
        let other = OperationId::from_uuid(Uuid::from_u128(99));
        TestFramework::<Cluster>::with(())
            .given(vec![requested()])
            .when(ClusterCommand::StartProvisioning { operation_id: other, workflow_id: "x".into() })
            .then_expect_error(ClusterError::NotCurrentOperation { got: other, current: Some(op()) });
    }

    #[test]
    fn given_no_cluster_when_report_then_not_found() {
        TestFramework::<Cluster>::with(())
            .given_no_previous_events()
            .when(ready_cmd())
            .then_expect_error(ClusterError::NotFound);
    }

    #[test]
    fn given_resources_applied_when_recorded_again_then_nothing_new() {
        TestFramework::<Cluster>::with(())
            .given(vec![requested(), started(), applied()])
            .when(ClusterCommand::RecordResourcesApplied {
                operation_id: op(),
                namespace: "polaris-orders".into(),
                resources: vec![],
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn given_provisioning_when_mark_ready_then_ready_with_node_ids_and_bootstrap() {
        TestFramework::<Cluster>::with(())
            .given(vec![requested(), started(), applied()])
            .when(ready_cmd())
            .then_expect_events(vec![ClusterEvent::ClusterReady(ClusterReady {
                operation_id: op(),
                broker_ids: vec![3, 4, 5],
                controller_ids: vec![0, 1, 2],
                bootstrap_servers: "orders-kafka-bootstrap.polaris-orders.svc:9092".into(),
            })]);
    }

    #[test]
    fn given_requested_when_mark_ready_before_provisioning_then_invalid_transition() {
        TestFramework::<Cluster>::with(()).given(vec![requested()]).when(ready_cmd()).then_expect_error(
            ClusterError::InvalidTransition { status: ClusterStatus::Requested, action: "marking ready" },
        );
    }

    #[test]
    fn given_provisioning_when_mark_stalled_then_stalled_once() {
        let stall =
            || ClusterCommand::MarkStalled { operation_id: op(), step: "wait-ready".into(), reason: "deadline".into() };
        let stalled = ClusterEvent::ClusterStalled(ClusterStalled {
            operation_id: op(),
            step: "wait-ready".into(),
            reason: "deadline".into(),
        });
        TestFramework::<Cluster>::with(())
            .given(vec![requested(), started()])
            .when(stall())
            .then_expect_events(vec![stalled.clone()]);
        TestFramework::<Cluster>::with(())
            .given(vec![requested(), started(), stalled])
            .when(stall())
            .then_expect_events(vec![]);
    }

    #[test]
    fn given_provisioning_when_mark_failed_then_operation_failed() {
        TestFramework::<Cluster>::with(())
            .given(vec![requested(), started()])
            .when(ClusterCommand::MarkFailed { operation_id: op(), step: "apply".into(), reason: "refused".into() })
            .then_expect_events(vec![ClusterEvent::OperationFailed(OperationFailed {
                operation_id: op(),
                step: "apply".into(),
                reason: "refused".into(),
            })]);
    }

    #[test]
    fn event_names_are_past_tense_and_versioned() {
        assert_eq!(requested().event_type(), "ClusterRequested");
        assert_eq!(requested().event_version(), "1");
    }
}
