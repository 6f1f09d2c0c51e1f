//! Cluster endpoints. Writes go through the command path (aggregate -> event store); reads come from the
//! `clusters` read model, which the projector builds from `polaris.events`, so a cluster appears in reads
//! shortly after its request is accepted.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use polaris_domain::cluster::{ClusterEvent, ClusterRequested, ClusterStatus};
use polaris_domain::policy::Subject;
use polaris_domain::{Cluster, ClusterCommand, ClusterError, ClusterId, OperationId, Provider, RequestCluster};
use polaris_store::db::{self, clusters::ClusterFilter, clusters::ClusterRow};
use polaris_store::{Cursor, CursorKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::App;
use crate::caller::{Caller, Role};
use crate::dryrun::Plan;
use crate::error::AppError;
use crate::operations::OperationView;

/// A cluster request. Unknown fields are refused, so a misspelt option never passes silently.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCluster {
    /// DNS-1123 label of at most 54 characters, unique in the org among clusters not deleted. Its namespace is
    /// `polaris-<name>-<first 8 hex digits of the cluster id>`, so clusters of one name in two orgs never share one.
    #[schema(example = "orders", pattern = "^[a-z0-9]([-a-z0-9]{0,52}[a-z0-9])?$", max_length = 54)]
    pub name: String,
    /// One of `aws`, `gcp`, `azure`, `onprem`.
    #[schema(example = "aws", schema_with = crate::schema::provider)]
    pub provider: String,
    #[schema(example = "eu-west-1", pattern = "^[a-z0-9-]*[a-z0-9-]$", max_length = 63)]
    pub region: String,
    /// Defaults to the newest supported version.
    #[schema(example = "4.3.1", schema_with = crate::schema::kafka_version_or_default)]
    pub kafka_version: Option<String>,
    /// Broker count, 1 to 100.
    #[schema(example = 3, minimum = 1, maximum = 100)]
    pub brokers: u32,
    /// KRaft controllers: 1, 3 (default) or 5.
    #[schema(schema_with = crate::schema::controllers_or_default)]
    pub controllers: Option<u32>,
    /// Storage per broker in GiB (default 100).
    #[schema(minimum = 1, maximum = 65536)]
    pub storage_gib: Option<u32>,
    /// Kafka broker configuration.
    #[schema(schema_with = crate::schema::config)]
    pub config: Option<BTreeMap<String, String>>,
    pub deletion_protection: Option<bool>,
}

/// A cluster as the read model knows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    pub id: Uuid,
    pub org: Uuid,
    pub name: String,
    /// The Kubernetes namespace on the target that this cluster owns alone (`polaris-<name>-<id prefix>`; clusters
    /// requested before namespaces carried the id keep `polaris-<name>`). Fixed for the cluster's life.
    pub namespace: String,
    pub provider: String,
    pub region: String,
    pub target_id: Option<Uuid>,
    pub kafka_version: String,
    pub metadata_version: String,
    pub brokers: u32,
    pub controllers: u32,
    pub storage_gib: u32,
    pub config: BTreeMap<String, String>,
    pub deletion_protection: bool,
    /// REQUESTED, PROVISIONING, READY, SCALING, REBALANCING, UPGRADING, DELETING, DELETED, STALLED, FAILED, DEGRADED.
    #[schema(schema_with = crate::schema::cluster_status_field)]
    pub status: String,
    pub status_reason: Option<String>,
    /// The aggregate's last event sequence; send it back in `If-Match` for optimistic concurrency.
    pub version: i64,
    pub current_operation_id: Option<Uuid>,
    pub bootstrap_servers: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Open drifts of the cluster's objects on its target (`GET /v1/clusters/{id}/drift`); a READY cluster with
    /// any is DEGRADED.
    #[serde(default)]
    pub open_drifts: u32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClusterAccepted {
    pub cluster: ClusterView,
    pub operation: OperationView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClusterList {
    pub items: Vec<ClusterView>,
    /// Pass as `page_token` to get the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListClustersQuery {
    /// Only clusters in this status.
    #[param(schema_with = crate::schema::cluster_status)]
    pub status: Option<String>,
    #[param(schema_with = crate::schema::provider)]
    pub provider: Option<String>,
    #[param(pattern = "^[^\\u0000]*$")]
    pub region: Option<String>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
    /// From the previous page's `next_page_token`.
    #[param(pattern = "^[0-9]{1,16}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub page_token: Option<String>,
}

impl From<ClusterRow> for ClusterView {
    fn from(r: ClusterRow) -> Self {
        ClusterView {
            id: r.id,
            org: r.org_id,
            name: r.name,
            namespace: r.namespace,
            provider: r.provider,
            region: r.region,
            target_id: r.target_id,
            kafka_version: r.kafka_version,
            metadata_version: r.metadata_version,
            brokers: r.brokers.max(0) as u32,
            controllers: r.controllers.max(0) as u32,
            storage_gib: r.storage_gib.max(0) as u32,
            config: r.config.0,
            deletion_protection: r.deletion_protection,
            status: r.status,
            status_reason: r.status_reason,
            version: r.version,
            current_operation_id: r.current_operation_id,
            bootstrap_servers: r.bootstrap_servers,
            created_at: r.created_at,
            updated_at: r.updated_at,
            open_drifts: r.open_drifts.max(0) as u32,
        }
    }
}

impl ClusterView {
    /// The state a just-accepted request describes, built from the event it produced.
    fn requested(e: &ClusterRequested, version: i64) -> Self {
        ClusterView {
            id: e.cluster_id.as_uuid(),
            org: e.org_id.as_uuid(),
            name: e.name.to_string(),
            namespace: e.namespace.clone(),
            provider: e.provider.to_string(),
            region: e.region.to_string(),
            target_id: Some(e.target_id.as_uuid()),
            kafka_version: e.kafka_version.clone(),
            metadata_version: e.metadata_version.clone(),
            brokers: e.brokers,
            controllers: e.controllers,
            storage_gib: e.storage_gib,
            config: e.config.clone(),
            deletion_protection: e.deletion_protection,
            status: ClusterStatus::Requested.as_str().to_owned(),
            status_reason: None,
            version,
            current_operation_id: Some(e.operation_id.as_uuid()),
            bootstrap_servers: None,
            created_at: e.requested_at,
            updated_at: e.requested_at,
            open_drifts: 0,
        }
    }
}

/// What a cluster request answers: accepted (the cluster and its provisioning operation), or, for a dry run,
/// the plan.
pub enum Requested {
    Accepted(Box<ClusterAccepted>),
    Planned(Plan),
}

/// Requests a cluster (operator): judged by the org's policies, placed on a target, recorded as
/// `ClusterRequested`; answers what was recorded, read back from the event store.
pub async fn request(app: &App, caller: &Caller, body: CreateCluster, dry_run: bool) -> Result<Requested, AppError> {
    caller.require(Role::Operator)?;
    let started = Instant::now();
    let result = request_cluster(app, caller, body, dry_run).await;
    let outcome = match &result {
        Ok(Requested::Planned(_)) => "dry_run",
        Ok(Requested::Accepted(_)) => "accepted",
        Err(e) if e.is_refusal() => "rejected",
        Err(_) => "error",
    };
    app.metrics.observe("RequestCluster", outcome, started.elapsed());
    result
}

async fn request_cluster(
    app: &App,
    caller: &Caller,
    body: CreateCluster,
    dry_run: bool,
) -> Result<Requested, AppError> {
    let bundle = crate::policies::judge_by_bundle(
        app,
        caller,
        &Subject::cluster_request(
            &body.name,
            &body.provider,
            &body.region,
            body.kafka_version.as_deref(),
            body.brokers,
            body.storage_gib,
            body.deletion_protection,
        ),
    )
    .await?;
    let policy_version = bundle.version;
    // The name is reserved in the transaction that appends ClusterRequested (polaris_store::invariants), not
    // checked here against a read model that may lag: of concurrent requests for one name exactly one is accepted.
    let target_id = app.placements.place(&app.pool, caller, &body.provider, &body.region).await?;
    let cluster_id = ClusterId::from_uuid(Uuid::new_v4());
    let operation_id = OperationId::from_uuid(Uuid::new_v4());
    let metadata = caller.command_metadata(Some(operation_id), Some(policy_version));
    let now = metadata.occurred_at;
    if !dry_run {
        caller.note(|d| d.resource = Some(format!("/v1/clusters/{cluster_id}")));
    }
    let cluster_name = body.name.clone();
    let command = ClusterCommand::Request(RequestCluster {
        cluster_id,
        org_id: caller.org_id,
        operation_id,
        target_id,
        name: body.name,
        provider: body.provider,
        region: body.region,
        kafka_version: body.kafka_version,
        brokers: body.brokers,
        controllers: body.controllers,
        storage_gib: body.storage_gib,
        config: body.config.unwrap_or_default(),
        deletion_protection: body.deletion_protection.unwrap_or(false),
        requested_by: caller.actor(),
        requested_at: now,
        mesh: bundle.rules.mesh,
    });
    if dry_run {
        caller.note(|d| d.dry_run = true);
        let events =
            crate::dryrun::decide::<Cluster>(&app.pool, &cluster_id.to_string(), command, AppError::from).await?;
        return Ok(Requested::Planned(crate::dryrun::cluster_plan(&cluster_name, "", &events, Some(policy_version))?));
    }
    // The cluster's id is new (random above): its aggregate is not read back from the event store.
    let execution = execute(app, caller, cluster_id.as_uuid(), command, &metadata, None);
    let (executed, appended) =
        polaris_store::capture_appended(polaris_store::creating(cluster_id.as_uuid().to_string(), execution)).await;
    executed?;

    // The response describes exactly what was recorded: the event as the append stored it (no read-back), rather
    // than defaults derived again here.
    let stored = appended.last().ok_or_else(|| AppError::Internal("the request appended no event".to_owned()))?;
    let sequence = stored.sequence as i64;
    let event = match serde_json::from_value::<ClusterEvent>(stored.payload.clone()) {
        Ok(ClusterEvent::ClusterRequested(event)) => event,
        Ok(other) => return Err(AppError::Internal(format!("expected ClusterRequested, found {other:?}"))),
        Err(e) => return Err(AppError::Internal(format!("appended event unreadable: {e}"))),
    };
    Ok(Requested::Accepted(Box::new(ClusterAccepted {
        cluster: ClusterView::requested(&event, sequence),
        operation: OperationView::pending_provision(&event),
    })))
}

/// Executes a cluster command (a race lost to a concurrent command is a `VERSION_CONFLICT` naming the version
/// that won).
async fn execute(
    app: &App,
    caller: &Caller,
    id: Uuid,
    command: ClusterCommand,
    metadata: &polaris_domain::CommandMetadata,
    expected: Option<u64>,
) -> Result<(), AppError> {
    let metadata = caller.metadata_map(metadata);
    crate::command::execute(&app.clusters, &app.pool, &id.to_string(), command, metadata, expected).await
}

/// What each of the Cluster aggregate's refusals means to the caller.
impl From<ClusterError> for AppError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::VersionConflict { expected, current } => AppError::VersionConflict { expected, current },
            ClusterError::OperationInProgress { operation_id } => AppError::OperationInProgress(operation_id.as_uuid()),
            ClusterError::DeletionProtected => AppError::DeletionProtected,
            ClusterError::NotFound => AppError::NotFound("cluster"),
            e @ ClusterError::InvalidTransition { .. } => {
                AppError::Unprocessable { code: "INVALID_STATE", detail: e.to_string(), field: None }
            }
            // Well-formed requests the cluster's current state cannot honour.
            e @ ClusterError::NoChange { .. } => {
                AppError::Unprocessable { code: "NO_CHANGE", detail: e.to_string(), field: Some("brokers".into()) }
            }
            e @ ClusterError::BelowReplicationFactor { .. } => AppError::Unprocessable {
                code: "BELOW_REPLICATION_FACTOR",
                detail: e.to_string(),
                field: Some("brokers".into()),
            },
            e @ ClusterError::SameVersion { .. } => AppError::Unprocessable {
                code: "NO_CHANGE",
                detail: e.to_string(),
                field: Some("kafka_version".into()),
            },
            e @ ClusterError::Downgrade { .. } => AppError::Unprocessable {
                code: "DOWNGRADE_UNSUPPORTED",
                detail: e.to_string(),
                field: Some("kafka_version".into()),
            },
            ClusterError::AlreadyExists(id) => AppError::Conflict(format!("cluster {id} already exists")),
            e @ ClusterError::NoTarget { .. } => AppError::Unprocessable {
                code: "NO_TARGET",
                detail: format!("{e}; an admin can register one with POST /v1/targets"),
                field: e.field().map(str::to_owned),
            },
            e => AppError::validation(e.to_string(), e.field()),
        }
    }
}

/// Every cluster status (SPEC.md §1), as the domain lists them.
pub fn known_statuses() -> impl Iterator<Item = &'static str> {
    ClusterStatus::ALL.iter().map(ClusterStatus::as_str)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetClusterQuery {
    /// RFC 3339 instant: the cluster as it was then, computed from its events (time travel).
    pub as_of: Option<DateTime<Utc>>,
}

impl From<polaris_domain::snapshot::ClusterSnapshot> for ClusterView {
    fn from(s: polaris_domain::snapshot::ClusterSnapshot) -> Self {
        ClusterView {
            id: s.id,
            org: s.org_id,
            name: s.name,
            namespace: s.namespace,
            provider: s.provider,
            region: s.region,
            target_id: Some(s.target_id),
            kafka_version: s.kafka_version,
            metadata_version: s.metadata_version,
            brokers: s.brokers,
            controllers: s.controllers,
            storage_gib: s.storage_gib,
            config: s.config,
            deletion_protection: s.deletion_protection,
            status: s.status.as_str().to_owned(),
            status_reason: s.status_reason,
            version: s.version as i64,
            current_operation_id: s.current_operation_id,
            bootstrap_servers: s.bootstrap_servers,
            created_at: s.created_at,
            updated_at: s.updated_at,
            open_drifts: 0,
        }
    }
}

/// The cluster as it was at `as_of`, folded from its events in the event store.
async fn cluster_as_of(app: &App, caller: &Caller, id: Uuid, as_of: DateTime<Utc>) -> Result<ClusterView, AppError> {
    let rows = db::events::of_aggregate(&app.pool, "cluster", &id.to_string(), None).await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let envelope = row.to_envelope().map_err(|e| AppError::Internal(e.to_string()))?;
        if envelope.org_id != caller.org_id.as_uuid() {
            return Err(AppError::NotFound("cluster"));
        }
        if envelope.occurred_at > as_of {
            break;
        }
        let event: ClusterEvent = envelope.decode().map_err(|e| AppError::Internal(e.to_string()))?;
        events.push((event, envelope.occurred_at));
    }
    polaris_domain::snapshot::ClusterSnapshot::fold(events.iter().map(|(e, at)| (e, *at)))
        .map(ClusterView::from)
        .ok_or(AppError::NotFound("cluster"))
}

/// A cluster of the caller's org as the read model has it, or, when the projector has not got to its last event
/// yet, as its events say: a client reads at least what it has just written (read your own writes).
pub async fn current(app: &App, caller: &Caller, id: Uuid) -> Result<ClusterView, AppError> {
    let row = db::clusters::get(&app.pool, caller.org_id.as_uuid(), id).await?;
    match row {
        Some(row) if row.version >= db::events::head_sequence(&app.pool, "cluster", &id.to_string()).await? => {
            Ok(row.into())
        }
        _ => cluster_as_of(app, caller, id, Utc::now()).await,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleCluster {
    /// The new broker count, 1 to 100.
    #[schema(example = 5, minimum = 1, maximum = 100)]
    pub brokers: u32,
    /// The version the change is based on; same as `If-Match`.
    pub expected_version: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeCluster {
    #[schema(example = "4.3.1", schema_with = crate::schema::kafka_version)]
    pub kafka_version: String,
    pub expected_version: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OperationAccepted {
    pub operation: OperationView,
}

/// What a change to a cluster answers: accepted (the operation to follow), or, for a dry run, the plan.
pub enum Changed {
    Accepted(OperationAccepted),
    Planned(Plan),
}

/// Runs a disruptive command on a cluster of the caller's org: accepted with the operation, or planned.
async fn disruptive(
    app: &App,
    caller: &Caller,
    id: Uuid,
    (kind, command_name): (&'static str, &'static str),
    subject: Option<Subject<'_>>,
    dry_run: bool,
    make: impl FnOnce(OperationId, String) -> ClusterCommand,
) -> Result<Changed, AppError> {
    caller.require(Role::Operator)?;
    let view = current(app, caller, id).await?;
    let (cluster_name, namespace) = (view.name, view.namespace);
    let started = Instant::now();
    let policy_version = Some(match subject {
        Some(subject) => crate::policies::judge(app, caller, &subject).await?,
        None => crate::policies::version_in_force(app, caller).await?,
    });
    let operation_id = OperationId::from_uuid(Uuid::new_v4());
    let metadata = caller.command_metadata(Some(operation_id), policy_version);
    let now = metadata.occurred_at;
    let command = make(operation_id, caller.actor());
    if dry_run {
        caller.note(|d| d.dry_run = true);
        let events = crate::dryrun::decide::<Cluster>(&app.pool, &id.to_string(), command, AppError::from).await?;
        let plan = crate::dryrun::cluster_plan(&cluster_name, &namespace, &events, policy_version)?;
        return Ok(Changed::Planned(plan));
    }
    let expected = match &command {
        ClusterCommand::RequestScale { expected_version, .. }
        | ClusterCommand::RequestUpgrade { expected_version, .. }
        | ClusterCommand::RequestDeletion { expected_version, .. } => *expected_version,
        _ => None,
    };
    let result = execute(app, caller, id, command, &metadata, expected).await;
    let outcome = if result.is_ok() { "accepted" } else { "rejected" };
    app.metrics.observe(command_name, outcome, started.elapsed());
    result?;
    let operation = OperationView::pending(operation_id.as_uuid(), kind, id, None, caller.actor(), now);
    Ok(Changed::Accepted(OperationAccepted { operation }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCluster {
    pub deletion_protection: Option<bool>,
    /// Broker configuration changes roll the brokers; not supported yet (refused with `422 NOT_SUPPORTED`).
    #[schema(schema_with = crate::schema::config)]
    pub config: Option<BTreeMap<String, String>>,
    pub expected_version: Option<u64>,
}

/// One event in a cluster's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    pub sequence: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub operation_id: Option<Uuid>,
    /// The policy bundle version that judged the command (absent for worker reports).
    pub policy_version: Option<i64>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<polaris_domain::EventEnvelope> for HistoryEntry {
    fn from(e: polaris_domain::EventEnvelope) -> Self {
        Self {
            sequence: e.sequence,
            event_id: e.event_id,
            event_type: e.event_type,
            event_version: e.event_version,
            occurred_at: e.occurred_at,
            actor: e.actor,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            operation_id: e.operation_id,
            policy_version: e.policy_version,
            payload: e.payload,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct History {
    pub items: Vec<HistoryEntry>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BrokerView {
    /// The Kafka node id: a broker's identity, never a pod ordinal.
    pub id: i32,
    /// `broker` or `controller`.
    pub role: String,
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BrokerList {
    pub items: Vec<BrokerView>,
}

/// The org's clusters, oldest first, a page at a time.
pub async fn list(app: &App, caller: &Caller, q: ListClustersQuery) -> Result<ClusterList, AppError> {
    let page_size = crate::paging::page_size(q.page_size)?;
    if let Some(s) = &q.status
        && ClusterStatus::parse(s).is_none()
    {
        return Err(AppError::validation(format!("unknown status {s:?}"), Some("status")));
    }
    if let Some(p) = &q.provider
        && Provider::parse(p).is_none()
    {
        return Err(AppError::validation(format!("unknown provider {p:?}"), Some("provider")));
    }
    let after = crate::paging::cursor(q.page_token.as_deref(), CursorKind::Keyed)?.and_then(|c| c.keyed());
    let filter =
        ClusterFilter { status: q.status.as_deref(), provider: q.provider.as_deref(), region: q.region.as_deref() };
    let mut rows =
        db::clusters::list(&app.pool, caller.org_id.as_uuid(), filter, after, i64::from(page_size) + 1).await?;
    let next_page_token =
        crate::paging::next_token(&mut rows, page_size, |r| Cursor::Keyed { at: r.created_at, id: r.id });
    Ok(ClusterList { items: rows.into_iter().map(ClusterView::from).collect(), next_page_token })
}

/// One cluster of the caller's org, now or (with `as_of`) as it was then.
pub async fn get(app: &App, caller: &Caller, id: Uuid, as_of: Option<DateTime<Utc>>) -> Result<ClusterView, AppError> {
    match as_of {
        Some(as_of) => cluster_as_of(app, caller, id, as_of).await,
        None => current(app, caller, id).await,
    }
}

/// Scales the broker count (operator). The change is based on `body.expected_version` or `if_match`.
pub async fn scale(
    app: &App,
    caller: &Caller,
    id: Uuid,
    body: ScaleCluster,
    if_match: Option<&str>,
    dry_run: bool,
) -> Result<Changed, AppError> {
    let expected_version = crate::preconditions::expected_version(if_match, body.expected_version)?;
    let largest_topic_rf = db::topics::largest_replication_factor(&app.pool, id).await?;
    let subject = Subject::Scale { brokers: body.brokers };
    let brokers = body.brokers;
    disruptive(app, caller, id, ("scale", "RequestScale"), Some(subject), dry_run, |operation_id, requested_by| {
        ClusterCommand::RequestScale { operation_id, brokers, expected_version, requested_by, largest_topic_rf }
    })
    .await
}

/// Upgrades Kafka (operator): the brokers roll to the new version, then the metadata version is raised.
pub async fn upgrade(
    app: &App,
    caller: &Caller,
    id: Uuid,
    body: UpgradeCluster,
    if_match: Option<&str>,
    dry_run: bool,
) -> Result<Changed, AppError> {
    let expected_version = crate::preconditions::expected_version(if_match, body.expected_version)?;
    let wanted = body.kafka_version.clone();
    let subject = Subject::Upgrade { kafka_version: &wanted };
    let kafka_version = body.kafka_version;
    disruptive(app, caller, id, ("upgrade", "RequestUpgrade"), Some(subject), dry_run, |operation_id, requested_by| {
        ClusterCommand::RequestUpgrade { operation_id, kafka_version, expected_version, requested_by }
    })
    .await
}

/// Deletes a cluster (operator): its topics, the Kafka resource and node pools, then its namespace.
pub async fn delete(
    app: &App,
    caller: &Caller,
    id: Uuid,
    expected_version: Option<u64>,
    if_match: Option<&str>,
    dry_run: bool,
) -> Result<Changed, AppError> {
    let expected_version = crate::preconditions::expected_version(if_match, expected_version)?;
    disruptive(app, caller, id, ("delete", "RequestDeletion"), None, dry_run, |operation_id, requested_by| {
        ClusterCommand::RequestDeletion { operation_id, expected_version, requested_by }
    })
    .await
}

/// Changes a cluster's settings (operator): deletion protection. Answers the cluster after the change.
pub async fn patch(
    app: &App,
    caller: &Caller,
    id: Uuid,
    body: PatchCluster,
    if_match: Option<&str>,
) -> Result<ClusterView, AppError> {
    caller.require(Role::Operator)?;
    if body.config.is_some() {
        return Err(AppError::Unprocessable {
            code: "NOT_SUPPORTED",
            detail: "changing a cluster's broker config is not supported yet".into(),
            field: Some("config".into()),
        });
    }
    let expected_version = crate::preconditions::expected_version(if_match, body.expected_version)?;
    let name = current(app, caller, id).await?.name;
    if let Some(enabled) = body.deletion_protection {
        let subject = Subject::ClusterProtection { name: &name, deletion_protection: enabled };
        let policy_version = crate::policies::judge(app, caller, &subject).await?;
        let metadata = caller.command_metadata(None, Some(policy_version));
        let command = ClusterCommand::SetDeletionProtection { enabled, expected_version, requested_by: caller.actor() };
        execute(app, caller, id, command, &metadata, expected_version).await?;
    }
    // The answer reflects the change at once: folded from the events, not from the read model that follows them.
    cluster_as_of(app, caller, id, Utc::now()).await
}

/// A cluster's events, oldest first, from the event store itself, so a deleted cluster's history stays readable.
pub async fn history(app: &App, caller: &Caller, id: Uuid) -> Result<History, AppError> {
    let rows = db::events::of_aggregate(&app.pool, "cluster", &id.to_string(), None).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let e = row.to_envelope().map_err(|e| AppError::Internal(e.to_string()))?;
        if e.org_id != caller.org_id.as_uuid() {
            return Err(AppError::NotFound("cluster"));
        }
        items.push(HistoryEntry::from(e));
    }
    if items.is_empty() {
        return Err(AppError::NotFound("cluster"));
    }
    Ok(History { items })
}

/// A cluster's nodes by Kafka node id.
pub async fn brokers(app: &App, caller: &Caller, id: Uuid) -> Result<BrokerList, AppError> {
    current(app, caller, id).await?;
    let nodes = db::clusters::nodes(&app.pool, id).await?;
    let items = nodes.into_iter().map(|n| BrokerView { id: n.id, role: n.role, status: n.status }).collect();
    Ok(BrokerList { items })
}
