//! The ProvisionCluster workflow and the activities it runs.
//!
//! Every activity is safe to run twice: resources are applied with server-side apply under one field manager
//! (`polaris`), and reports go through the command path, where the aggregate records a step once and ignores
//! its repetition. A killed worker resumes from Temporal history; a retried wait keeps the original deadline,
//! because the deadline travels as an absolute time.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use cqrs_es_compat::AggregateError;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Api;
use polaris_domain::{ClusterCommand, ClusterError, CommandMetadata, OperationId, OrgId};
use polaris_store::ClusterCqrs;
use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, ApplicationFailure, WorkflowContext, WorkflowResult};
use uuid::Uuid;

use crate::istio::{AuthorizationPolicy, DestinationRule, PeerAuthentication};
use crate::kinds;
use crate::monitoring::PodMonitor;
use crate::ownership;
use crate::resources::{ADMIN_PASSWORD_SECRET, ADMIN_USER, BROKER_POOL, CONTROLLER_POOL, ClusterSpec, PLAIN_LISTENER};
use crate::strimzi::{Kafka, KafkaNodePool, KafkaUser, condition_summary, ready_for_generation};
use crate::target::TargetRef;

mod cqrs_es_compat {
    pub use polaris_store::cqrs_es::AggregateError;
}

pub const FIELD_MANAGER: &str = "polaris";

/// Everything the workflow needs, fixed when it starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProvisionInput {
    pub spec: ClusterSpec,
    pub target: TargetRef,
    pub cause: Cause,
    /// How long the cluster may take to become Ready before the operation is marked stalled.
    pub ready_timeout_secs: u64,
}

/// The operation a workflow works for and the chain of cause its reports belong to: the org, the operation, the
/// request's correlation id, and the event that started the workflow (its `event_id`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    pub org_id: Uuid,
    pub operation_id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
}

impl Cause {
    pub fn operation(&self) -> OperationId {
        OperationId::from_uuid(self.operation_id)
    }

    /// Metadata of a report: the worker as actor, at the time of reporting.
    pub(crate) fn metadata(&self) -> CommandMetadata {
        CommandMetadata {
            org_id: OrgId::from_uuid(self.org_id),
            actor: "worker:polaris".into(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            operation_id: Some(self.operation()),
            occurred_at: chrono::SubsecRound::trunc_subsecs(Utc::now(), 6),
            policy_version: None,
        }
    }
}

/// A step's outcome, reported back through the command path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Report {
    Started { workflow_id: String },
    ResourcesApplied { namespace: String, resources: Vec<String> },
    Ready { broker_ids: Vec<i32>, controller_ids: Vec<i32>, bootstrap_servers: String },
    Stalled { step: String, reason: String },
    Failed { step: String, reason: String },
    BrokersAdded { node_ids: Vec<i32> },
    RebalanceCompleted { mode: String, node_ids: Vec<i32> },
    BrokersRemoved { node_ids: Vec<i32> },
    VersionRolled { kafka_version: String },
    MetadataBumped { metadata_version: String },
    Deleted,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportInput {
    pub cluster_id: Uuid,
    pub cause: Cause,
    pub report: Report,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WaitInput {
    pub spec: ClusterSpec,
    pub target: TargetRef,
    /// Unix milliseconds; the same for every attempt of the activity.
    pub deadline_unix_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WaitOutcome {
    Ready { broker_ids: Vec<i32>, controller_ids: Vec<i32>, bootstrap_servers: String },
    Stalled { reason: String },
}

pub struct ClusterActivities {
    pub cqrs: Arc<ClusterCqrs>,
    pub topics: Arc<polaris_store::TopicCqrs>,
}

/// Who a topic report is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicReportInput {
    pub topic_id: Uuid,
    pub cause: Cause,
}

pub(crate) fn retryable(e: impl std::fmt::Display) -> ActivityError {
    ActivityError::application(ApplicationFailure::new(anyhow::anyhow!("{e}")))
}

pub(crate) fn non_retryable(e: impl std::fmt::Display) -> ActivityError {
    ActivityError::application(ApplicationFailure::non_retryable(anyhow::anyhow!("{e}")))
}

/// A target whose credentials are refused (outside the targets directory, skipping TLS verification) will be
/// refused again; anything else (the API server unreachable) may pass later.
pub(crate) fn target_error(e: anyhow::Error) -> ActivityError {
    if e.downcast_ref::<crate::target::TargetError>().is_some() { non_retryable(e) } else { retryable(e) }
}

/// The API server refusing a resource (invalid, forbidden) will refuse it again; anything else may pass later.
pub(crate) fn classify_kube(e: kube::Error) -> ActivityError {
    match &e {
        kube::Error::Api(status) if (400..500).contains(&status.code) && ![409, 429].contains(&status.code) => {
            non_retryable(format!("the API server refused the resource: {e}"))
        }
        _ => retryable(e),
    }
}

/// The Kafka resource's last condition, and whether it is Ready for its current generation.
fn is_ready(kafka: &Kafka) -> Option<(String, bool)> {
    let status = kafka.status.as_ref()?;
    let ready = ready_for_generation(&status.conditions, status.observed_generation, kafka.metadata.generation);
    Some((condition_summary(&status.conditions), ready))
}

#[activities]
impl ClusterActivities {
    /// Turns a step's outcome into a command on the cluster aggregate. Repeating a report records nothing.
    #[activity]
    pub async fn report(self: Arc<Self>, _ctx: ActivityContext, input: ReportInput) -> Result<(), ActivityError> {
        let operation_id = input.cause.operation();
        let command = match input.report {
            Report::Started { workflow_id } => ClusterCommand::StartProvisioning { operation_id, workflow_id },
            Report::ResourcesApplied { namespace, resources } => {
                ClusterCommand::RecordResourcesApplied { operation_id, namespace, resources }
            }
            Report::Ready { broker_ids, controller_ids, bootstrap_servers } => {
                ClusterCommand::MarkReady { operation_id, broker_ids, controller_ids, bootstrap_servers }
            }
            Report::Stalled { step, reason } => ClusterCommand::MarkStalled { operation_id, step, reason },
            Report::Failed { step, reason } => ClusterCommand::MarkFailed { operation_id, step, reason },
            Report::BrokersAdded { node_ids } => ClusterCommand::RecordBrokersAdded { operation_id, node_ids },
            Report::RebalanceCompleted { mode, node_ids } => {
                ClusterCommand::RecordRebalanceCompleted { operation_id, mode, node_ids }
            }
            Report::BrokersRemoved { node_ids } => ClusterCommand::RecordBrokersRemoved { operation_id, node_ids },
            Report::VersionRolled { kafka_version } => {
                ClusterCommand::RecordKafkaVersionRolled { operation_id, kafka_version }
            }
            Report::MetadataBumped { metadata_version } => {
                ClusterCommand::RecordMetadataVersionBumped { operation_id, metadata_version }
            }
            Report::Deleted => ClusterCommand::RecordDeleted { operation_id },
        };
        let metadata = input.cause.metadata();
        match self.cqrs.execute_with_metadata(&input.cluster_id.to_string(), command, metadata.to_map()).await {
            Ok(()) => Ok(()),
            Err(AggregateError::UserError(e @ (ClusterError::NotCurrentOperation { .. } | ClusterError::NotFound))) => {
                Err(non_retryable(e))
            }
            Err(AggregateError::UserError(e)) => Err(non_retryable(e)),
            // A concurrent report on the same cluster: run again against the new state.
            Err(e) => Err(retryable(e)),
        }
    }

    /// Records the topic Ready through the command path; a repeat records nothing.
    #[activity]
    pub async fn report_topic_ready(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: TopicReportInput,
    ) -> Result<(), ActivityError> {
        let metadata = input.cause.metadata();
        let command = polaris_domain::topic::TopicCommand::MarkReady { operation_id: input.cause.operation() };
        match self.topics.execute_with_metadata(&input.topic_id.to_string(), command, metadata.to_map()).await {
            Ok(()) => Ok(()),
            Err(AggregateError::UserError(e)) => Err(non_retryable(e)),
            Err(e) => Err(retryable(e)),
        }
    }

    /// Reports a topic operation past its deadline: `TopicStalled`.
    #[activity]
    pub async fn report_topic_stalled(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: (TopicReportInput, String),
    ) -> Result<(), ActivityError> {
        let (input, reason) = input;
        let metadata = input.cause.metadata();
        let command =
            polaris_domain::topic::TopicCommand::MarkStalled { operation_id: input.cause.operation(), reason };
        match self.topics.execute_with_metadata(&input.topic_id.to_string(), command, metadata.to_map()).await {
            Ok(()) => Ok(()),
            Err(AggregateError::UserError(e)) => Err(non_retryable(e)),
            Err(e) => Err(retryable(e)),
        }
    }

    /// Reports a topic operation that could not do its work (`OWNERSHIP_CONFLICT`): `TopicOperationFailed`.
    #[activity]
    pub async fn report_topic_failed(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: (TopicReportInput, String),
    ) -> Result<(), ActivityError> {
        let (input, reason) = input;
        let metadata = input.cause.metadata();
        let command = polaris_domain::topic::TopicCommand::MarkFailed { operation_id: input.cause.operation(), reason };
        match self.topics.execute_with_metadata(&input.topic_id.to_string(), command, metadata.to_map()).await {
            Ok(()) => Ok(()),
            Err(AggregateError::UserError(e)) => Err(non_retryable(e)),
            Err(e) => Err(retryable(e)),
        }
    }

    /// Reports a topic's KafkaTopic gone: `TopicDeleted`.
    #[activity]
    pub async fn report_topic_deleted(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: TopicReportInput,
    ) -> Result<(), ActivityError> {
        let metadata = input.cause.metadata();
        let command = polaris_domain::topic::TopicCommand::MarkDeleted { operation_id: input.cause.operation() };
        match self.topics.execute_with_metadata(&input.topic_id.to_string(), command, metadata.to_map()).await {
            Ok(()) => Ok(()),
            Err(AggregateError::UserError(e)) => Err(non_retryable(e)),
            Err(e) => Err(retryable(e)),
        }
    }

    /// Applies the namespace, both node pools, then the Kafka resource (see [`apply_cluster_resources`]).
    #[activity]
    pub async fn apply_resources(
        _ctx: ActivityContext,
        input: (ClusterSpec, TargetRef),
    ) -> Result<Applied, ActivityError> {
        let (spec, target) = input;
        let client = target.client().await.map_err(crate::provision::target_error)?;
        apply_cluster_resources(client, &spec).await
    }

    /// Waits until Strimzi reports the Kafka resource Ready for its current generation and the broker pool has
    /// its node ids; or until the deadline, which is a stall, not an error.
    #[activity]
    pub async fn wait_ready(ctx: ActivityContext, input: WaitInput) -> Result<WaitOutcome, ActivityError> {
        let client = input.target.client().await.map_err(crate::provision::target_error)?;
        let ns = input.spec.namespace();
        let kafkas: Api<Kafka> = Api::namespaced(client.clone(), &ns);
        let pools: Api<KafkaNodePool> = Api::namespaced(client, &ns);
        let mut last = "no status yet".to_owned();
        loop {
            let _ = ctx.record_heartbeat(last.clone()).await;
            if let Some(kafka) = kafkas.get_opt(&input.spec.name).await.map_err(classify_kube)? {
                if let Some((condition, ready)) = is_ready(&kafka) {
                    last = condition;
                    if ready {
                        let ids =
                            |p: Option<KafkaNodePool>| p.and_then(|p| p.status).map(|s| s.node_ids).unwrap_or_default();
                        let broker_ids = ids(pools.get_opt(BROKER_POOL).await.map_err(classify_kube)?);
                        let controller_ids = ids(pools.get_opt(CONTROLLER_POOL).await.map_err(classify_kube)?);
                        let bootstrap = kafka
                            .status
                            .as_ref()
                            .and_then(|s| s.listeners.iter().find(|l| l.name.as_deref() == Some(PLAIN_LISTENER)))
                            .and_then(|l| l.bootstrap_servers.clone());
                        if let Some(bootstrap_servers) = bootstrap
                            && broker_ids.len() == input.spec.brokers as usize
                        {
                            return Ok(WaitOutcome::Ready { broker_ids, controller_ids, bootstrap_servers });
                        }
                        last = format!(
                            "Ready, but broker pool reports {} of {} node ids",
                            broker_ids.len(),
                            input.spec.brokers
                        );
                    }
                }
            } else {
                last = format!("Kafka {ns}/{} not found", input.spec.name);
            }
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
            if now_ms >= input.deadline_unix_ms {
                return Ok(WaitOutcome::Stalled {
                    reason: format!(
                        "Kafka {ns}/{} was not Ready before the deadline; last status: {last}",
                        input.spec.name
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// What applying a cluster's resources came to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Applied {
    /// `Kind/name` of each resource applied.
    Resources(Vec<String>),
    /// Nothing was written, and retrying will not help: an object of another owner is in the way
    /// (`OWNERSHIP_CONFLICT`), or the cluster needs a kind its target does not serve (`MESH_UNAVAILABLE`).
    Conflict { reason: String },
}

/// The stable code an operation's failure reason starts with when a cluster in a mesh is placed on a target
/// without Istio's CRDs.
pub const MESH_UNAVAILABLE: &str = "MESH_UNAVAILABLE";

/// Applies the namespace, the mesh objects (for a cluster in a mesh), the admin Secret and KafkaUser, the
/// exporter rules, a PodMonitor (where the target serves the kind), both node pools, then the Kafka resource,
/// all labelled with the cluster's id. Every object is checked before anything is written, so an object of
/// another owner anywhere leaves all of them as they were.
pub async fn apply_cluster_resources(client: kube::Client, spec: &ClusterSpec) -> Result<Applied, ActivityError> {
    let ns = spec.namespace();
    let id = spec.cluster_id;
    let namespaces = Api::<Namespace>::all(client.clone());
    let pools: Api<KafkaNodePool> = Api::namespaced(client.clone(), &ns);
    let kafkas: Api<Kafka> = Api::namespaced(client.clone(), &ns);
    let peer: Api<PeerAuthentication> = Api::namespaced(client.clone(), &ns);
    let authz: Api<AuthorizationPolicy> = Api::namespaced(client.clone(), &ns);
    let rules: Api<DestinationRule> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let users: Api<KafkaUser> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let monitors: Api<PodMonitor> = Api::namespaced(client, &ns);
    // In production the Prometheus Operator scrapes the brokers through a PodMonitor; a target without its CRDs
    // gets none (see `monitoring`).
    let monitored = kinds::served(&monitors).await?;
    let mesh = spec.mesh_objects();
    if mesh.is_some() {
        for (kind, served) in [
            ("PeerAuthentication.security.istio.io/v1", kinds::served(&peer).await?),
            ("AuthorizationPolicy.security.istio.io/v1", kinds::served(&authz).await?),
            ("DestinationRule.networking.istio.io/v1", kinds::served(&rules).await?),
        ] {
            if !served {
                let reason = format!(
                    "{MESH_UNAVAILABLE}: the cluster is in a mesh (its org's policy), but its target does not serve \
                     {kind}: install Istio's CRDs on the target; nothing was written"
                );
                return Ok(Applied::Conflict { reason });
            }
        }
    }
    let mut existing = vec![ownership::check_existing(&namespaces, &ns, id).await?];
    for pool in [CONTROLLER_POOL, BROKER_POOL] {
        existing.push(ownership::check_existing(&pools, pool, id).await?);
    }
    existing.push(ownership::check_existing(&kafkas, &spec.name, id).await?);
    existing.push(ownership::check_existing(&secrets, ADMIN_PASSWORD_SECRET, id).await?);
    existing.push(ownership::check_existing(&users, ADMIN_USER, id).await?);
    existing.push(ownership::check_existing(&config_maps, &spec.metrics_config_map(), id).await?);
    if monitored {
        existing.push(ownership::check_existing(&monitors, &spec.name, id).await?);
    }
    if mesh.is_some() {
        existing.push(ownership::check_existing(&peer, &spec.name, id).await?);
        existing.push(ownership::check_existing(&authz, &spec.name, id).await?);
        existing.push(ownership::check_existing(&rules, &spec.name, id).await?);
    }
    if let Some(Err(conflict)) = existing.into_iter().find(Result::is_err) {
        return Ok(Applied::Conflict { reason: conflict.to_string() });
    }
    let conflict = |c: ownership::Conflict| Ok(Applied::Conflict { reason: c.to_string() });
    if let Err(c) = ownership::apply(&namespaces, &ns, &spec.namespace_object(), id).await? {
        return conflict(c);
    }
    let mut applied = vec![format!("Namespace/{ns}")];
    if let Some(m) = mesh {
        if let Err(c) = ownership::apply(&peer, &spec.name, &m.peer_authentication, id).await? {
            return conflict(c);
        }
        applied.push(format!("PeerAuthentication/{}", spec.name));
        if let Err(c) = ownership::apply(&authz, &spec.name, &m.authorization_policy, id).await? {
            return conflict(c);
        }
        applied.push(format!("AuthorizationPolicy/{}", spec.name));
        if let Err(c) = ownership::apply(&rules, &spec.name, &m.destination_rule, id).await? {
            return conflict(c);
        }
        applied.push(format!("DestinationRule/{}", spec.name));
    }
    // The admin password is generated here, inside the activity, and goes only into the Secret: created once and
    // never overwritten, so a retried activity keeps the password the brokers already know.
    if let Err(c) =
        ownership::create_once(&secrets, ADMIN_PASSWORD_SECRET, id, || spec.admin_password_secret(&new_password()))
            .await?
    {
        return conflict(c);
    }
    applied.push(format!("Secret/{ADMIN_PASSWORD_SECRET}"));
    if let Err(c) = ownership::apply(&users, ADMIN_USER, &spec.admin_user(), id).await? {
        return conflict(c);
    }
    applied.push(format!("KafkaUser/{ADMIN_USER}"));
    let metrics = spec.metrics_config_map();
    if let Err(c) = ownership::apply(&config_maps, &metrics, &spec.metrics_rules(), id).await? {
        return conflict(c);
    }
    applied.push(format!("ConfigMap/{metrics}"));
    if monitored {
        if let Err(c) = ownership::apply(&monitors, &spec.name, &spec.pod_monitor(), id).await? {
            return conflict(c);
        }
        applied.push(format!("PodMonitor/{}", spec.name));
    }
    for pool in spec.node_pools() {
        let name = pool.metadata.name.clone().unwrap_or_default();
        if let Err(c) = ownership::apply(&pools, &name, &pool, id).await? {
            return conflict(c);
        }
        applied.push(format!("KafkaNodePool/{name}"));
    }
    if let Err(c) = ownership::apply(&kafkas, &spec.name, &spec.kafka(), id).await? {
        return conflict(c);
    }
    applied.push(format!("Kafka/{}", spec.name));
    Ok(Applied::Resources(applied))
}

/// 244 random bits (two version-4 UUIDs), hex: a password for Polaris' own Kafka user.
fn new_password() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

pub(crate) fn report_options() -> ActivityOptions {
    let mut o = ActivityOptions::start_to_close_timeout(Duration::from_secs(30));
    o.retry_policy = Some(RetryPolicy::builder().maximum_interval(Duration::from_secs(10)).build());
    o
}

#[workflow]
#[derive(Default)]
pub struct ProvisionCluster;

#[workflow_methods]
impl ProvisionCluster {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: ProvisionInput) -> WorkflowResult<String> {
        let workflow_id = ctx.workflow_id().to_owned();
        report(ctx, input.spec.cluster_id, &input.cause, Report::Started { workflow_id }).await?;

        let mut apply_opts = ActivityOptions::start_to_close_timeout(Duration::from_secs(60));
        apply_opts.retry_policy =
            Some(RetryPolicy::builder().maximum_attempts(10).maximum_interval(Duration::from_secs(10)).build());
        let applied = ctx
            .execute_activity(
                ClusterActivities::apply_resources,
                (input.spec.clone(), input.target.clone()),
                apply_opts,
            )
            .await;
        let resources = match applied {
            Ok(Applied::Resources(r)) => r,
            Ok(Applied::Conflict { reason }) => {
                let failed = Report::Failed { step: "apply-resources".into(), reason };
                report(ctx, input.spec.cluster_id, &input.cause, failed).await?;
                return Ok("failed".into());
            }
            Err(e) => {
                let reason = format!("applying Strimzi resources failed: {e}");
                report(
                    ctx,
                    input.spec.cluster_id,
                    &input.cause,
                    Report::Failed { step: "apply-resources".into(), reason },
                )
                .await?;
                return Ok("failed".into());
            }
        };
        let namespace = input.spec.namespace();
        report(ctx, input.spec.cluster_id, &input.cause, Report::ResourcesApplied { namespace, resources }).await?;

        let now = ctx.workflow_time().unwrap_or(UNIX_EPOCH);
        let deadline = now + Duration::from_secs(input.ready_timeout_secs);
        let deadline_unix_ms = deadline.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut wait_opts = ActivityOptions::start_to_close_timeout(Duration::from_secs(input.ready_timeout_secs + 60));
        wait_opts.heartbeat_timeout = Some(Duration::from_secs(10));
        wait_opts.retry_policy = Some(RetryPolicy::builder().maximum_interval(Duration::from_secs(5)).build());
        let wait = WaitInput { spec: input.spec.clone(), target: input.target.clone(), deadline_unix_ms };
        match ctx.execute_activity(ClusterActivities::wait_ready, wait, wait_opts).await? {
            WaitOutcome::Ready { broker_ids, controller_ids, bootstrap_servers } => {
                report(
                    ctx,
                    input.spec.cluster_id,
                    &input.cause,
                    Report::Ready { broker_ids, controller_ids, bootstrap_servers },
                )
                .await?;
                Ok("ready".into())
            }
            WaitOutcome::Stalled { reason } => {
                report(ctx, input.spec.cluster_id, &input.cause, Report::Stalled { step: "wait-ready".into(), reason })
                    .await?;
                Ok("stalled".into())
            }
        }
    }
}

/// Records a step's outcome on a cluster through the command path (retried until the store takes it).
pub(crate) async fn report<W>(
    ctx: &WorkflowContext<W>,
    cluster_id: Uuid,
    cause: &Cause,
    report: Report,
) -> WorkflowResult<()> {
    let r = ReportInput { cluster_id, cause: cause.clone(), report };
    ctx.execute_activity(ClusterActivities::report, r, report_options()).await?;
    Ok(())
}
