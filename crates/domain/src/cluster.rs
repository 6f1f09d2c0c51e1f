//! The Cluster aggregate. It decides whether a cluster request is acceptable and records what was decided as
//! events; every other view of a cluster (read models, status, history) is derived from those events.
//! Rules live in `handle`; `apply` only assigns, so replaying history never re-judges it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use schemars::JsonSchema;
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
    /// Every status, in lifecycle order (the OpenAPI enum and the gRPC enum list them in this order).
    pub const ALL: [ClusterStatus; 11] = [
        ClusterStatus::Requested,
        ClusterStatus::Provisioning,
        ClusterStatus::Ready,
        ClusterStatus::Scaling,
        ClusterStatus::Rebalancing,
        ClusterStatus::Upgrading,
        ClusterStatus::Deleting,
        ClusterStatus::Deleted,
        ClusterStatus::Stalled,
        ClusterStatus::Failed,
        ClusterStatus::Degraded,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

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
    /// The org policy's mesh setting when the request was judged; `None` (or mode `off`): no mesh.
    pub mesh: Option<crate::policy::MeshPolicy>,
}

/// Commands on a cluster. `Request*` come from users through the API; the others are workflows reporting a
/// step's outcome. Each report names the operation it belongs to; repeating one (an activity retried after a
/// crash) records nothing new.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterCommand {
    Request(RequestCluster),
    RequestScale {
        operation_id: OperationId,
        brokers: u32,
        expected_version: Option<u64>,
        requested_by: String,
        /// The largest replication factor among the cluster's topics: the floor for scaling down.
        largest_topic_rf: u32,
    },
    RequestUpgrade {
        operation_id: OperationId,
        kafka_version: String,
        expected_version: Option<u64>,
        requested_by: String,
    },
    RequestDeletion {
        operation_id: OperationId,
        expected_version: Option<u64>,
        requested_by: String,
    },
    /// Turn deletion protection on or off. Not disruptive: allowed while an operation runs.
    SetDeletionProtection {
        enabled: bool,
        expected_version: Option<u64>,
        requested_by: String,
    },
    StartProvisioning {
        operation_id: OperationId,
        workflow_id: String,
    },
    RecordBrokersAdded {
        operation_id: OperationId,
        node_ids: Vec<i32>,
    },
    RecordRebalanceCompleted {
        operation_id: OperationId,
        mode: String,
        node_ids: Vec<i32>,
    },
    RecordBrokersRemoved {
        operation_id: OperationId,
        node_ids: Vec<i32>,
    },
    RecordKafkaVersionRolled {
        operation_id: OperationId,
        kafka_version: String,
    },
    RecordMetadataVersionBumped {
        operation_id: OperationId,
        metadata_version: String,
    },
    RecordDeleted {
        operation_id: OperationId,
    },
    RecordResourcesApplied {
        operation_id: OperationId,
        namespace: String,
        resources: Vec<String>,
    },
    MarkReady {
        operation_id: OperationId,
        broker_ids: Vec<i32>,
        controller_ids: Vec<i32>,
        bootstrap_servers: String,
    },
    MarkStalled {
        operation_id: OperationId,
        step: String,
        reason: String,
    },
    MarkFailed {
        operation_id: OperationId,
        step: String,
        reason: String,
    },
}

/// What happened to a cluster. Events carry resulting values, so read models never recompute them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub enum ClusterEvent {
    ClusterRequested(ClusterRequested),
    ClusterProvisioningStarted(ClusterProvisioningStarted),
    StrimziResourcesApplied(StrimziResourcesApplied),
    ClusterReady(ClusterReady),
    ClusterStalled(ClusterStalled),
    OperationFailed(OperationFailed),
    ClusterScaleRequested(ClusterScaleRequested),
    BrokersAdded(BrokersAdded),
    RebalanceCompleted(RebalanceCompleted),
    BrokersRemoved(BrokersRemoved),
    ClusterUpgradeRequested(ClusterUpgradeRequested),
    KafkaVersionRolled(KafkaVersionRolled),
    MetadataVersionBumped(MetadataVersionBumped),
    ClusterDeletionRequested(ClusterDeletionRequested),
    ClusterDeleted(ClusterDeleted),
    DeletionProtectionChanged(DeletionProtectionChanged),
}

/// Deletion protection was switched on or off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeletionProtectionChanged {
    pub enabled: bool,
    pub changed_by: String,
}

/// A change of broker count was accepted; `from` and `to` are broker counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterScaleRequested {
    pub operation_id: OperationId,
    pub from: u32,
    pub to: u32,
    pub requested_by: String,
}

/// The broker pool grew and Strimzi reports the new brokers, by Kafka node id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrokersAdded {
    pub operation_id: OperationId,
    pub node_ids: Vec<i32>,
    pub broker_ids: Vec<i32>,
}

/// A Cruise Control rebalance (`add-brokers` or `remove-brokers`) for these node ids finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RebalanceCompleted {
    pub operation_id: OperationId,
    pub mode: String,
    pub node_ids: Vec<i32>,
}

/// The emptied brokers were removed from the pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrokersRemoved {
    pub operation_id: OperationId,
    pub node_ids: Vec<i32>,
    pub broker_ids: Vec<i32>,
}

/// A Kafka version upgrade (or rollback) was accepted; `metadata_version_to` is raised after the roll.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterUpgradeRequested {
    pub operation_id: OperationId,
    pub from: String,
    pub to: String,
    pub metadata_version_to: String,
    pub requested_by: String,
}

/// Every broker runs the new Kafka version (`status.kafkaVersion`). Rollback is still possible.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaVersionRolled {
    pub operation_id: OperationId,
    pub kafka_version: String,
}

/// The KRaft metadata version was raised, its own step after the roll.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataVersionBumped {
    pub operation_id: OperationId,
    pub metadata_version: String,
}

/// Deletion was accepted: topics, then Kafka and node pools, then the namespace will be deleted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterDeletionRequested {
    pub operation_id: OperationId,
    pub requested_by: String,
}

/// Topics, Kafka, node pools and the namespace are gone from the target. The history stays.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterDeleted {
    pub operation_id: OperationId,
}

/// The provisioning workflow has started working on the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterProvisioningStarted {
    pub operation_id: OperationId,
    pub workflow_id: String,
}

/// The namespace, node pools and Kafka resource were applied to the target (not yet ready).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrimziResourcesApplied {
    pub operation_id: OperationId,
    pub namespace: String,
    /// `Kind/name` of each resource applied, in the order applied.
    pub resources: Vec<String>,
}

/// Strimzi reports the cluster ready: brokers by Kafka node id, and where clients connect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterReady {
    pub operation_id: OperationId,
    pub broker_ids: Vec<i32>,
    pub controller_ids: Vec<i32>,
    pub bootstrap_servers: String,
}

/// An operation stopped making progress within its deadline. Nothing else was touched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterStalled {
    pub operation_id: OperationId,
    pub step: String,
    pub reason: String,
}

/// An operation failed for a reason retrying cannot fix (for example a resource the API server refuses).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationFailed {
    pub operation_id: OperationId,
    pub step: String,
    pub reason: String,
}

/// How a cluster joins the Istio mesh, fixed when it is requested (the org policy's `mesh` then).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterMesh {
    /// `strict` or `permissive`; a cluster outside the mesh has no `mesh` at all.
    pub mode: crate::policy::MeshMode,
    /// Namespaces besides the cluster's own whose workloads may call it through the mesh.
    pub client_namespaces: Vec<String>,
}

impl ClusterMesh {
    /// Istio's mTLS mode for the cluster's namespace.
    pub fn mtls_mode(&self) -> &'static str {
        match self.mode {
            crate::policy::MeshMode::Permissive => "PERMISSIVE",
            crate::policy::MeshMode::Strict | crate::policy::MeshMode::Off => "STRICT",
        }
    }

    /// The namespaces whose workloads may call the cluster through the mesh: its own, then its clients.
    pub fn callers(&self, own_namespace: &str) -> Vec<String> {
        let mut namespaces = vec![own_namespace.to_owned()];
        namespaces.extend(self.client_namespaces.iter().filter(|n| *n != own_namespace).cloned());
        namespaces
    }

    /// The mesh a policy setting gives a new cluster: none when absent or `off`.
    pub fn from_policy(policy: Option<&crate::policy::MeshPolicy>) -> Option<Self> {
        let p = policy.filter(|p| p.mode != crate::policy::MeshMode::Off)?;
        let mut client_namespaces = p.client_namespaces.clone();
        client_namespaces.sort();
        client_namespaces.dedup();
        Some(ClusterMesh { mode: p.mode, client_namespaces })
    }
}

/// A new cluster was accepted and placed on a target; provisioning follows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    /// The Kubernetes namespace the cluster owns alone on its target (`naming::cluster_namespace`), fixed here for
    /// the cluster's life.
    pub namespace: String,
    /// The cluster's mesh membership (version 4); `null`: not in a mesh.
    pub mesh: Option<ClusterMesh>,
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
            ClusterEvent::ClusterScaleRequested(_) => "ClusterScaleRequested",
            ClusterEvent::BrokersAdded(_) => "BrokersAdded",
            ClusterEvent::RebalanceCompleted(_) => "RebalanceCompleted",
            ClusterEvent::BrokersRemoved(_) => "BrokersRemoved",
            ClusterEvent::ClusterUpgradeRequested(_) => "ClusterUpgradeRequested",
            ClusterEvent::KafkaVersionRolled(_) => "KafkaVersionRolled",
            ClusterEvent::MetadataVersionBumped(_) => "MetadataVersionBumped",
            ClusterEvent::ClusterDeletionRequested(_) => "ClusterDeletionRequested",
            ClusterEvent::ClusterDeleted(_) => "ClusterDeleted",
            ClusterEvent::DeletionProtectionChanged(_) => "DeletionProtectionChanged",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::events::current_version(&self.event_type()).unwrap_or(1).to_string()
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
    #[error("operation {operation_id} is still running on this cluster")]
    OperationInProgress { operation_id: OperationId },
    #[error("the cluster is at version {current}, not {expected}")]
    VersionConflict { expected: u64, current: u64 },
    #[error("the cluster already has {brokers} brokers")]
    NoChange { brokers: u32 },
    #[error("cannot scale to {requested} brokers: a topic has replication factor {largest_rf}")]
    BelowReplicationFactor { requested: u32, largest_rf: u32 },
    #[error("the cluster already runs Kafka {version}")]
    SameVersion { version: String },
    #[error("downgrading from {from} to {to} is not supported once the metadata version was raised")]
    Downgrade { from: String, to: String },
    #[error("deletion protection is on; turn it off first")]
    DeletionProtected,
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
            ClusterError::NoChange { .. } | ClusterError::BelowReplicationFactor { .. } => Some("brokers"),
            ClusterError::SameVersion { .. } | ClusterError::Downgrade { .. } => Some("kafka_version"),
            ClusterError::NotFound
            | ClusterError::NotCurrentOperation { .. }
            | ClusterError::InvalidTransition { .. }
            | ClusterError::OperationInProgress { .. }
            | ClusterError::VersionConflict { .. }
            | ClusterError::DeletionProtected => None,
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
    pub broker_ids: Vec<i32>,
    pub kafka_version: String,
    pub metadata_version: String,
    pub deletion_protection: bool,
    /// The last event's sequence: what `If-Match` / `expected_version` is compared with.
    pub version: u64,
    pub current_operation: Option<OperationId>,
    /// The operation that finished last; late repeats of its reports are ignored.
    pub finished_operation: Option<OperationId>,
    /// Steps of the current operation already recorded, so a repeated report records nothing.
    pub steps_done: Vec<String>,
    /// The request as recorded: where the cluster lives and how it was shaped. The one fold of a cluster's
    /// events is this aggregate's `apply`: `as_of` snapshots and the workers' facts read this state.
    #[serde(default)]
    pub requested: Option<ClusterRequested>,
    /// Why the cluster is STALLED or FAILED.
    #[serde(default)]
    pub status_reason: Option<String>,
    #[serde(default)]
    pub bootstrap_servers: Option<String>,
}

/// What a disruptive request needs before it can start.
struct Start {
    operation_id: OperationId,
    expected_version: Option<u64>,
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
        let target_id = cmd
            .target_id
            .ok_or_else(|| ClusterError::NoTarget { provider: provider.to_string(), region: region.to_string() })?;
        let namespace = crate::naming::cluster_namespace(name.as_str(), cmd.cluster_id.as_uuid());
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
            namespace,
            mesh: ClusterMesh::from_policy(cmd.mesh.as_ref()),
        })
    }

    /// One disruptive operation at a time, from a settled state, on the version the caller saw.
    fn can_start(&self, start: &Start, action: &'static str) -> Result<(), ClusterError> {
        if self.id.is_none() || self.status == ClusterStatus::Deleted {
            return Err(ClusterError::NotFound);
        }
        if let Some(expected) = start.expected_version
            && expected != self.version
        {
            return Err(ClusterError::VersionConflict { expected, current: self.version });
        }
        if let Some(operation_id) = self.current_operation {
            return Err(ClusterError::OperationInProgress { operation_id });
        }
        let _ = start.operation_id;
        match self.status {
            ClusterStatus::Ready | ClusterStatus::Degraded => Ok(()),
            ClusterStatus::Stalled | ClusterStatus::Failed if action == "deletion" => Ok(()),
            status => Err(ClusterError::InvalidTransition { status, action }),
        }
    }

    fn scale(&self, start: Start, to: u32, largest_rf: u32, by: String) -> Result<ClusterEvent, ClusterError> {
        self.can_start(&start, "scaling")?;
        if !(BROKERS_MIN..=BROKERS_MAX).contains(&to) {
            return Err(ClusterError::BrokersOutOfRange { requested: to });
        }
        if to == self.brokers {
            return Err(ClusterError::NoChange { brokers: to });
        }
        if to < largest_rf {
            return Err(ClusterError::BelowReplicationFactor { requested: to, largest_rf });
        }
        Ok(ClusterEvent::ClusterScaleRequested(ClusterScaleRequested {
            operation_id: start.operation_id,
            from: self.brokers,
            to,
            requested_by: by,
        }))
    }

    fn upgrade(&self, start: Start, to: String, by: String) -> Result<ClusterEvent, ClusterError> {
        self.can_start(&start, "upgrading")?;
        if !SUPPORTED_KAFKA_VERSIONS.contains(&to.as_str()) {
            return Err(ClusterError::UnsupportedKafkaVersion { requested: to });
        }
        if to == self.kafka_version {
            return Err(ClusterError::SameVersion { version: to });
        }
        let metadata_version_to = metadata_version_for(&to);
        if release(&metadata_version_to) < release(&self.metadata_version) {
            return Err(ClusterError::Downgrade { from: self.kafka_version.clone(), to });
        }
        Ok(ClusterEvent::ClusterUpgradeRequested(ClusterUpgradeRequested {
            operation_id: start.operation_id,
            from: self.kafka_version.clone(),
            to,
            metadata_version_to,
            requested_by: by,
        }))
    }

    fn delete(&self, start: Start, by: String) -> Result<ClusterEvent, ClusterError> {
        self.can_start(&start, "deletion")?;
        if self.deletion_protection {
            return Err(ClusterError::DeletionProtected);
        }
        Ok(ClusterEvent::ClusterDeletionRequested(ClusterDeletionRequested {
            operation_id: start.operation_id,
            requested_by: by,
        }))
    }

    /// Decides what a workflow report records. `Ok(None)`: already recorded, or a late repeat for an operation
    /// that has finished; nothing new.
    fn report(&self, cmd: ClusterCommand) -> Result<Option<ClusterEvent>, ClusterError> {
        let (operation_id, step) = match &cmd {
            ClusterCommand::StartProvisioning { operation_id, .. } => (*operation_id, "started"),
            ClusterCommand::RecordResourcesApplied { operation_id, .. } => (*operation_id, "resources-applied"),
            ClusterCommand::MarkReady { operation_id, .. } => (*operation_id, "ready"),
            ClusterCommand::MarkStalled { operation_id, .. } => (*operation_id, "stalled"),
            ClusterCommand::MarkFailed { operation_id, .. } => (*operation_id, "failed"),
            ClusterCommand::RecordBrokersAdded { operation_id, .. } => (*operation_id, "brokers-added"),
            ClusterCommand::RecordRebalanceCompleted { operation_id, .. } => (*operation_id, "rebalance-completed"),
            ClusterCommand::RecordBrokersRemoved { operation_id, .. } => (*operation_id, "brokers-removed"),
            ClusterCommand::RecordKafkaVersionRolled { operation_id, .. } => (*operation_id, "version-rolled"),
            ClusterCommand::RecordMetadataVersionBumped { operation_id, .. } => (*operation_id, "metadata-bumped"),
            ClusterCommand::RecordDeleted { operation_id } => (*operation_id, "deleted"),
            ClusterCommand::Request(_)
            | ClusterCommand::RequestScale { .. }
            | ClusterCommand::RequestUpgrade { .. }
            | ClusterCommand::RequestDeletion { .. }
            | ClusterCommand::SetDeletionProtection { .. } => {
                return Err(ClusterError::InvalidTransition { status: self.status, action: "reporting" });
            }
        };
        if self.id.is_none() {
            return Err(ClusterError::NotFound);
        }
        if self.finished_operation == Some(operation_id) {
            return Ok(None);
        }
        if self.current_operation != Some(operation_id) {
            return Err(ClusterError::NotCurrentOperation { got: operation_id, current: self.current_operation });
        }
        if self.steps_done.iter().any(|s| s == step) {
            return Ok(None);
        }
        let wrong = |action| ClusterError::InvalidTransition { status: self.status, action };
        use ClusterStatus::*;
        let event = match cmd {
            ClusterCommand::StartProvisioning { workflow_id, .. } if self.status == Requested => {
                ClusterEvent::ClusterProvisioningStarted(ClusterProvisioningStarted { operation_id, workflow_id })
            }
            ClusterCommand::RecordResourcesApplied { namespace, resources, .. } if self.status == Provisioning => {
                ClusterEvent::StrimziResourcesApplied(StrimziResourcesApplied { operation_id, namespace, resources })
            }
            ClusterCommand::MarkReady { broker_ids, controller_ids, bootstrap_servers, .. }
                if self.status == Provisioning =>
            {
                ClusterEvent::ClusterReady(ClusterReady { operation_id, broker_ids, controller_ids, bootstrap_servers })
            }
            ClusterCommand::MarkStalled { step, reason, .. } => {
                ClusterEvent::ClusterStalled(ClusterStalled { operation_id, step, reason })
            }
            ClusterCommand::MarkFailed { step, reason, .. } => {
                ClusterEvent::OperationFailed(OperationFailed { operation_id, step, reason })
            }
            ClusterCommand::RecordBrokersAdded { node_ids, .. } if self.status == Scaling => {
                let mut broker_ids = self.broker_ids.clone();
                broker_ids.extend(node_ids.iter().filter(|id| !self.broker_ids.contains(id)));
                broker_ids.sort_unstable();
                ClusterEvent::BrokersAdded(BrokersAdded { operation_id, node_ids, broker_ids })
            }
            ClusterCommand::RecordRebalanceCompleted { mode, node_ids, .. } if self.status == Scaling => {
                ClusterEvent::RebalanceCompleted(RebalanceCompleted { operation_id, mode, node_ids })
            }
            ClusterCommand::RecordBrokersRemoved { node_ids, .. } if self.status == Scaling => {
                let broker_ids = self.broker_ids.iter().copied().filter(|id| !node_ids.contains(id)).collect();
                ClusterEvent::BrokersRemoved(BrokersRemoved { operation_id, node_ids, broker_ids })
            }
            ClusterCommand::RecordKafkaVersionRolled { kafka_version, .. } if self.status == Upgrading => {
                ClusterEvent::KafkaVersionRolled(KafkaVersionRolled { operation_id, kafka_version })
            }
            ClusterCommand::RecordMetadataVersionBumped { metadata_version, .. } if self.status == Upgrading => {
                ClusterEvent::MetadataVersionBumped(MetadataVersionBumped { operation_id, metadata_version })
            }
            ClusterCommand::RecordDeleted { .. } if self.status == Deleting => {
                ClusterEvent::ClusterDeleted(ClusterDeleted { operation_id })
            }
            _ => return Err(wrong(step_action(step))),
        };
        Ok(Some(event))
    }

    fn finish(&mut self, status: ClusterStatus) {
        self.status = status;
        self.finished_operation = self.current_operation.take();
        self.steps_done.clear();
    }

    fn done(&mut self, step: &str) {
        self.steps_done.push(step.to_owned());
    }
}

/// `(major, minor)` of a version string such as `4.3` or `4.3.1`, for ordering.
fn release(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn step_action(step: &str) -> &'static str {
    match step {
        "started" => "starting provisioning",
        "resources-applied" => "recording applied resources",
        "ready" => "marking ready",
        "brokers-added" | "rebalance-completed" | "brokers-removed" => "recording a scaling step",
        "version-rolled" | "metadata-bumped" => "recording an upgrade step",
        "deleted" => "recording deletion",
        _ => "recording a step",
    }
}

impl Aggregate for Cluster {
    const TYPE: &'static str = "cluster";
    type Command = ClusterCommand;
    type Event = ClusterEvent;
    type Error = ClusterError;
    type Services = ();

    async fn handle(&mut self, command: Self::Command, _: &(), sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let event = match command {
            ClusterCommand::Request(cmd) => Some(ClusterEvent::ClusterRequested(self.request(cmd)?)),
            ClusterCommand::RequestScale {
                operation_id,
                brokers,
                expected_version,
                requested_by,
                largest_topic_rf,
            } => Some(self.scale(Start { operation_id, expected_version }, brokers, largest_topic_rf, requested_by)?),
            ClusterCommand::RequestUpgrade { operation_id, kafka_version, expected_version, requested_by } => {
                Some(self.upgrade(Start { operation_id, expected_version }, kafka_version, requested_by)?)
            }
            ClusterCommand::RequestDeletion { operation_id, expected_version, requested_by } => {
                Some(self.delete(Start { operation_id, expected_version }, requested_by)?)
            }
            ClusterCommand::SetDeletionProtection { enabled, expected_version, requested_by } => {
                if self.id.is_none() || self.status == ClusterStatus::Deleted {
                    return Err(ClusterError::NotFound);
                }
                if let Some(expected) = expected_version
                    && expected != self.version
                {
                    return Err(ClusterError::VersionConflict { expected, current: self.version });
                }
                (enabled != self.deletion_protection).then_some(ClusterEvent::DeletionProtectionChanged(
                    DeletionProtectionChanged { enabled, changed_by: requested_by },
                ))
            }
            report => self.report(report)?,
        };
        if let Some(event) = event {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            ClusterEvent::ClusterRequested(e) => {
                self.id = Some(e.cluster_id);
                self.org_id = Some(e.org_id);
                self.name = Some(e.name.clone());
                self.status = ClusterStatus::Requested;
                self.brokers = e.brokers;
                self.kafka_version = e.kafka_version.clone();
                self.metadata_version = e.metadata_version.clone();
                self.deletion_protection = e.deletion_protection;
                self.current_operation = Some(e.operation_id);
                self.requested = Some(e);
            }
            ClusterEvent::ClusterProvisioningStarted(_) => {
                self.status = ClusterStatus::Provisioning;
                self.done("started");
            }
            ClusterEvent::StrimziResourcesApplied(_) => self.done("resources-applied"),
            ClusterEvent::ClusterReady(e) => {
                self.brokers = e.broker_ids.len() as u32;
                self.broker_ids = e.broker_ids;
                self.bootstrap_servers = Some(e.bootstrap_servers);
                self.status_reason = None;
                self.finish(ClusterStatus::Ready);
            }
            ClusterEvent::ClusterStalled(e) => {
                self.status_reason = Some(e.reason);
                self.finish(ClusterStatus::Stalled);
            }
            ClusterEvent::OperationFailed(e) => {
                self.status_reason = Some(e.reason);
                self.finish(ClusterStatus::Failed);
            }
            ClusterEvent::ClusterScaleRequested(e) => {
                self.status = ClusterStatus::Scaling;
                self.status_reason = None;
                self.current_operation = Some(e.operation_id);
            }
            ClusterEvent::BrokersAdded(e) => {
                self.brokers = e.broker_ids.len() as u32;
                self.broker_ids = e.broker_ids;
                self.done("brokers-added");
            }
            ClusterEvent::RebalanceCompleted(e) => {
                if e.mode == "add-brokers" {
                    self.finish(ClusterStatus::Ready);
                } else {
                    self.done("rebalance-completed");
                }
            }
            ClusterEvent::BrokersRemoved(e) => {
                self.brokers = e.broker_ids.len() as u32;
                self.broker_ids = e.broker_ids;
                self.finish(ClusterStatus::Ready);
            }
            ClusterEvent::ClusterUpgradeRequested(e) => {
                self.status = ClusterStatus::Upgrading;
                self.status_reason = None;
                self.current_operation = Some(e.operation_id);
            }
            ClusterEvent::KafkaVersionRolled(e) => {
                self.kafka_version = e.kafka_version;
                self.done("version-rolled");
            }
            ClusterEvent::MetadataVersionBumped(e) => {
                self.metadata_version = e.metadata_version;
                self.finish(ClusterStatus::Ready);
            }
            ClusterEvent::ClusterDeletionRequested(e) => {
                self.status = ClusterStatus::Deleting;
                self.status_reason = None;
                self.current_operation = Some(e.operation_id);
            }
            ClusterEvent::ClusterDeleted(_) => {
                self.bootstrap_servers = None;
                self.finish(ClusterStatus::Deleted);
            }
            ClusterEvent::DeletionProtectionChanged(e) => self.deletion_protection = e.enabled,
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
            mesh: None,
        }
    }

    fn requested() -> ClusterEvent {
        ClusterEvent::ClusterRequested(Cluster::default().request(request()).unwrap())
    }

    #[test]
    fn the_request_records_the_policys_mesh_and_off_is_no_mesh() {
        use crate::policy::{MeshMode, MeshPolicy};
        let with = |mesh: Option<MeshPolicy>| Cluster::default().request(RequestCluster { mesh, ..request() }).unwrap();
        assert_eq!(with(None).mesh, None);
        let off = MeshPolicy { mode: MeshMode::Off, client_namespaces: vec!["payments".into()] };
        assert_eq!(with(Some(off)).mesh, None, "off: no mesh, whatever the namespaces");
        let strict = MeshPolicy { mode: MeshMode::Strict, client_namespaces: vec!["b".into(), "a".into(), "b".into()] };
        assert_eq!(
            with(Some(strict)).mesh,
            Some(ClusterMesh { mode: MeshMode::Strict, client_namespaces: vec!["a".into(), "b".into()] }),
            "sorted, without repeats"
        );
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
            namespace: "polaris-orders-00000000".into(),
            mesh: None,
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

    fn ready() -> ClusterEvent {
        ClusterEvent::ClusterReady(ClusterReady {
            operation_id: op(),
            broker_ids: vec![3, 4, 5],
            controller_ids: vec![0, 1, 2],
            bootstrap_servers: "b:9092".into(),
        })
    }

    fn op2() -> OperationId {
        OperationId::from_uuid(Uuid::from_u128(20))
    }

    fn ready_cluster() -> Vec<ClusterEvent> {
        vec![requested(), started(), applied(), ready()]
    }

    fn scale(brokers: u32, expected_version: Option<u64>, largest_topic_rf: u32) -> ClusterCommand {
        ClusterCommand::RequestScale {
            operation_id: op2(),
            brokers,
            expected_version,
            requested_by: "u".into(),
            largest_topic_rf,
        }
    }

    fn scale_requested(from: u32, to: u32) -> ClusterEvent {
        ClusterEvent::ClusterScaleRequested(ClusterScaleRequested {
            operation_id: op2(),
            from,
            to,
            requested_by: "u".into(),
        })
    }

    fn given(events: Vec<ClusterEvent>, cmd: ClusterCommand) -> cqrs_es::test::AggregateResultValidator<Cluster> {
        TestFramework::<Cluster>::with(()).given(events).when(cmd)
    }

    #[test]
    fn given_ready_when_scale_up_then_scale_requested() {
        given(ready_cluster(), scale(5, Some(4), 0)).then_expect_events(vec![scale_requested(3, 5)]);
    }

    #[test]
    fn given_ready_when_scale_with_stale_version_then_version_conflict() {
        given(ready_cluster(), scale(5, Some(2), 0))
            .then_expect_error(ClusterError::VersionConflict { expected: 2, current: 4 });
    }

    #[test]
    fn given_scaling_when_another_disruptive_command_then_operation_in_progress() {
        let mut events = ready_cluster();
        events.push(scale_requested(3, 5));
        given(events.clone(), scale(4, None, 0))
            .then_expect_error(ClusterError::OperationInProgress { operation_id: op2() });
        given(
            events,
            ClusterCommand::RequestDeletion { operation_id: op(), expected_version: None, requested_by: "u".into() },
        )
        .then_expect_error(ClusterError::OperationInProgress { operation_id: op2() });
    }

    #[test]
    fn given_provisioning_when_scale_then_operation_in_progress() {
        given(vec![requested(), started()], scale(5, None, 0))
            .then_expect_error(ClusterError::OperationInProgress { operation_id: op() });
    }

    #[test]
    fn given_ready_when_scale_to_same_count_then_no_change() {
        given(ready_cluster(), scale(3, None, 0)).then_expect_error(ClusterError::NoChange { brokers: 3 });
    }

    #[test]
    fn given_ready_when_scale_below_largest_topic_rf_then_refused() {
        given(ready_cluster(), scale(2, None, 3))
            .then_expect_error(ClusterError::BelowReplicationFactor { requested: 2, largest_rf: 3 });
    }

    #[test]
    fn given_ready_when_scale_out_of_range_then_out_of_range() {
        given(ready_cluster(), scale(0, None, 0)).then_expect_error(ClusterError::BrokersOutOfRange { requested: 0 });
    }

    #[test]
    fn given_scaling_up_when_brokers_added_and_rebalanced_then_ready_with_new_ids() {
        let mut events = ready_cluster();
        events.push(scale_requested(3, 5));
        let added = ClusterEvent::BrokersAdded(BrokersAdded {
            operation_id: op2(),
            node_ids: vec![6, 7],
            broker_ids: vec![3, 4, 5, 6, 7],
        });
        given(events.clone(), ClusterCommand::RecordBrokersAdded { operation_id: op2(), node_ids: vec![6, 7] })
            .then_expect_events(vec![added.clone()]);
        events.push(added.clone());
        given(events.clone(), ClusterCommand::RecordBrokersAdded { operation_id: op2(), node_ids: vec![6, 7] })
            .then_expect_events(vec![]);
        let rebalanced = ClusterCommand::RecordRebalanceCompleted {
            operation_id: op2(),
            mode: "add-brokers".into(),
            node_ids: vec![6, 7],
        };
        given(events.clone(), rebalanced.clone()).then_expect_events(vec![ClusterEvent::RebalanceCompleted(
            RebalanceCompleted { operation_id: op2(), mode: "add-brokers".into(), node_ids: vec![6, 7] },
        )]);
        events.push(ClusterEvent::RebalanceCompleted(RebalanceCompleted {
            operation_id: op2(),
            mode: "add-brokers".into(),
            node_ids: vec![6, 7],
        }));
        // The operation has finished: a late repeat of its report records nothing, and a new one may start.
        given(events.clone(), rebalanced).then_expect_events(vec![]);
        let mut c = Cluster::default();
        for e in events {
            c.apply(e);
        }
        assert_eq!((c.status, c.brokers, c.current_operation), (ClusterStatus::Ready, 5, None));
    }

    #[test]
    fn given_scaling_down_when_brokers_removed_then_ready_without_them() {
        let mut events = ready_cluster();
        events.push(scale_requested(3, 2));
        events.push(ClusterEvent::RebalanceCompleted(RebalanceCompleted {
            operation_id: op2(),
            mode: "remove-brokers".into(),
            node_ids: vec![5],
        }));
        given(events, ClusterCommand::RecordBrokersRemoved { operation_id: op2(), node_ids: vec![5] })
            .then_expect_events(vec![ClusterEvent::BrokersRemoved(BrokersRemoved {
                operation_id: op2(),
                node_ids: vec![5],
                broker_ids: vec![3, 4],
            })]);
    }

    #[test]
    fn given_ready_when_upgrade_then_upgrade_requested_and_same_or_unknown_version_refused() {
        let upgrade = |v: &str| ClusterCommand::RequestUpgrade {
            operation_id: op2(),
            kafka_version: v.into(),
            expected_version: None,
            requested_by: "u".into(),
        };
        let events = vec![
            ClusterEvent::ClusterRequested(
                Cluster::default()
                    .request(RequestCluster { kafka_version: Some("4.2.1".into()), ..request() })
                    .unwrap(),
            ),
            started(),
            applied(),
            ready(),
        ];
        given(events.clone(), upgrade("4.3.1")).then_expect_events(vec![ClusterEvent::ClusterUpgradeRequested(
            ClusterUpgradeRequested {
                operation_id: op2(),
                from: "4.2.1".into(),
                to: "4.3.1".into(),
                metadata_version_to: "4.3".into(),
                requested_by: "u".into(),
            },
        )]);
        given(events.clone(), upgrade("4.2.1"))
            .then_expect_error(ClusterError::SameVersion { version: "4.2.1".into() });
        given(events, upgrade("9.9.9"))
            .then_expect_error(ClusterError::UnsupportedKafkaVersion { requested: "9.9.9".into() });
        given(ready_cluster(), upgrade("4.2.0"))
            .then_expect_error(ClusterError::Downgrade { from: "4.3.1".into(), to: "4.2.0".into() });
    }

    #[test]
    fn given_deletion_protection_when_delete_then_deletion_protected() {
        let protected = ClusterEvent::ClusterRequested(
            Cluster::default().request(RequestCluster { deletion_protection: true, ..request() }).unwrap(),
        );
        given(
            vec![protected, started(), applied(), ready()],
            ClusterCommand::RequestDeletion { operation_id: op2(), expected_version: None, requested_by: "u".into() },
        )
        .then_expect_error(ClusterError::DeletionProtected);
    }

    #[test]
    fn given_deleting_when_deleted_then_deleted_and_further_commands_not_found() {
        let mut events = ready_cluster();
        events.push(ClusterEvent::ClusterDeletionRequested(ClusterDeletionRequested {
            operation_id: op2(),
            requested_by: "u".into(),
        }));
        given(events.clone(), ClusterCommand::RecordDeleted { operation_id: op2() })
            .then_expect_events(vec![ClusterEvent::ClusterDeleted(ClusterDeleted { operation_id: op2() })]);
        events.push(ClusterEvent::ClusterDeleted(ClusterDeleted { operation_id: op2() }));
        given(events, scale(5, None, 0)).then_expect_error(ClusterError::NotFound);
    }

    #[test]
    fn given_protected_when_protection_turned_off_then_changed_and_deletion_allowed() {
        let protected = ClusterEvent::ClusterRequested(
            Cluster::default().request(RequestCluster { deletion_protection: true, ..request() }).unwrap(),
        );
        let mut events = vec![protected, started(), applied(), ready()];
        let off = ClusterCommand::SetDeletionProtection {
            enabled: false,
            expected_version: Some(4),
            requested_by: "u".into(),
        };
        let changed = ClusterEvent::DeletionProtectionChanged(DeletionProtectionChanged {
            enabled: false,
            changed_by: "u".into(),
        });
        given(events.clone(), off.clone()).then_expect_events(vec![changed.clone()]);
        events.push(changed);
        given(
            events.clone(),
            ClusterCommand::SetDeletionProtection { enabled: false, expected_version: None, requested_by: "u".into() },
        )
        .then_expect_events(vec![]);
        given(events.clone(), off).then_expect_error(ClusterError::VersionConflict { expected: 4, current: 5 });
        given(
            events,
            ClusterCommand::RequestDeletion { operation_id: op2(), expected_version: None, requested_by: "u".into() },
        )
        .then_expect_events(vec![ClusterEvent::ClusterDeletionRequested(ClusterDeletionRequested {
            operation_id: op2(),
            requested_by: "u".into(),
        })]);
    }

    #[test]
    fn event_names_are_past_tense_and_versioned() {
        assert_eq!(requested().event_type(), "ClusterRequested");
        assert_eq!(requested().event_version(), "4");
    }
}
