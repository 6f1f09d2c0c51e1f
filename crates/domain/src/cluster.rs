//! The Cluster aggregate. It decides whether a cluster request is acceptable and records what was decided as
//! events; every other view of a cluster (read models, status, history) is derived from those events.
//! Rules live in `handle`; `apply` only assigns, so replaying history never re-judges it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::ids::{ClusterId, ClusterName, NameError, OperationId, OrgId, Provider, Region};

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

#[derive(Clone, Debug, PartialEq)]
pub enum ClusterCommand {
    Request(RequestCluster),
}

/// What happened to a cluster. Events carry resulting values, so read models never recompute them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClusterEvent {
    ClusterRequested(ClusterRequested),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRequested {
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

impl DomainEvent for ClusterEvent {
    fn event_type(&self) -> String {
        match self {
            ClusterEvent::ClusterRequested(_) => "ClusterRequested".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        match self {
            ClusterEvent::ClusterRequested(_) => "1".to_owned(),
        }
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
}

impl Cluster {
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
        Ok(ClusterRequested {
            cluster_id: cmd.cluster_id,
            org_id: cmd.org_id,
            operation_id: cmd.operation_id,
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
            }
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
    fn event_names_are_past_tense_and_versioned() {
        assert_eq!(requested().event_type(), "ClusterRequested");
        assert_eq!(requested().event_version(), "1");
    }
}
