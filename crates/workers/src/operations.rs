//! The day-2 workflows: ScaleCluster, UpgradeCluster and DeleteCluster, with the Kubernetes activities they
//! use. Same rules as provisioning: server-side apply under one field manager, absolute deadlines that survive
//! a retried activity, every outcome reported through the command path, a missed deadline is a stall that
//! touches nothing else.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};
use uuid::Uuid;

use crate::istio::{AuthorizationPolicy, DestinationRule, PeerAuthentication};
use crate::kinds;
use crate::monitoring::PodMonitor;
use crate::ownership;
use crate::provision::{Cause, Report, classify_kube, report};
use crate::resources::{BROKER_POOL, CLUSTER_ID_LABEL, ClusterSpec};
use crate::strimzi::{
    CLUSTER_LABEL, Kafka, KafkaNodePool, KafkaRebalance, KafkaRebalanceSpec, KafkaTopic, KafkaUser, condition_summary,
    ready_for_generation,
};
use crate::target::TargetRef;

/// Common input of the day-2 workflows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationInput {
    /// The cluster as it is before the operation.
    pub spec: ClusterSpec,
    pub broker_ids: Vec<i32>,
    pub target: TargetRef,
    pub cause: Cause,
    /// Deadline of each wait.
    pub timeout_secs: u64,
    /// Scale: the new broker count. Upgrade: ignored.
    pub brokers: u32,
    /// Upgrade: the new Kafka version and metadata version.
    pub kafka_version: String,
    pub metadata_version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KubeStep {
    pub spec: ClusterSpec,
    pub target: TargetRef,
    pub deadline_unix_ms: u64,
    /// Rebalance mode and node ids, for `rebalance`.
    pub mode: String,
    pub node_ids: Vec<i32>,
    /// The rebalance's name (derived from the operation, so a retry finds the same one).
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StepOutcome {
    Done {
        node_ids: Vec<i32>,
    },
    Stalled {
        reason: String,
    },
    /// An object of another owner is in the way (`OWNERSHIP_CONFLICT`); nothing was changed.
    Conflict {
        reason: String,
    },
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub struct OperationActivities;

/// Whether Kafka is Ready for its current generation with `spec`'s versions and the broker pool has exactly
/// `spec.brokers` node ids: the node ids when it is, and what was seen either way.
pub(crate) async fn converged(
    client: &kube::Client,
    spec: &ClusterSpec,
) -> Result<(Option<Vec<i32>>, String), ActivityError> {
    let ns = spec.namespace();
    let kafka = Api::<Kafka>::namespaced(client.clone(), &ns).get(&spec.name).await.map_err(classify_kube)?;
    let pool = Api::<KafkaNodePool>::namespaced(client.clone(), &ns).get(BROKER_POOL).await.map_err(classify_kube)?;
    let status = kafka.status.clone().unwrap_or_default();
    let ready = ready_for_generation(&status.conditions, status.observed_generation, kafka.metadata.generation);
    let ids = pool.status.as_ref().map(|s| s.node_ids.clone()).unwrap_or_default();
    let pool_current = pool.status.as_ref().and_then(|s| s.observed_generation) == pool.metadata.generation;
    let versions = status.kafka_version.as_deref() == Some(spec.kafka_version.as_str())
        && status.kafka_metadata_version.as_deref() == Some(spec.metadata_version.as_str());
    let seen = format!(
        "{}; broker pool has {} of {} node ids; kafkaVersion {:?}, kafkaMetadataVersion {:?}",
        condition_summary(&status.conditions),
        ids.len(),
        spec.brokers,
        status.kafka_version,
        status.kafka_metadata_version
    );
    let done = ready && pool_current && versions && ids.len() == spec.brokers as usize;
    Ok((done.then_some(ids), seen))
}

#[activities]
impl OperationActivities {
    /// Applies the broker pool at `spec.brokers` replicas (server-side apply: the same call twice is a no-op),
    /// unless the pool belongs to another cluster.
    #[activity]
    pub async fn apply_broker_pool(_ctx: ActivityContext, step: KubeStep) -> Result<StepOutcome, ActivityError> {
        let client = step.target.client().await.map_err(crate::provision::target_error)?;
        let pools: Api<KafkaNodePool> = Api::namespaced(client, &step.spec.namespace());
        let [_, brokers] = step.spec.node_pools();
        Ok(guarded(ownership::apply(&pools, BROKER_POOL, &brokers, step.spec.cluster_id).await?))
    }

    /// Applies the Kafka resource with `spec`'s versions, unless it belongs to another cluster.
    #[activity]
    pub async fn apply_kafka(_ctx: ActivityContext, step: KubeStep) -> Result<StepOutcome, ActivityError> {
        let client = step.target.client().await.map_err(crate::provision::target_error)?;
        let kafkas: Api<Kafka> = Api::namespaced(client, &step.spec.namespace());
        Ok(guarded(ownership::apply(&kafkas, &step.spec.name, &step.spec.kafka(), step.spec.cluster_id).await?))
    }

    /// Waits until Kafka is Ready for its current generation, reports `spec`'s versions, and the broker pool has
    /// exactly `spec.brokers` node ids. Returns the broker node ids.
    #[activity]
    pub async fn wait_converged(ctx: ActivityContext, step: KubeStep) -> Result<StepOutcome, ActivityError> {
        let client = step.target.client().await.map_err(crate::provision::target_error)?;
        let ns = step.spec.namespace();
        loop {
            let (node_ids, last) = converged(&client, &step.spec).await?;
            if let Some(node_ids) = node_ids {
                return Ok(StepOutcome::Done { node_ids });
            }
            let _ = ctx.record_heartbeat(last.clone()).await;
            if now_ms() >= step.deadline_unix_ms {
                return Ok(StepOutcome::Stalled {
                    reason: format!("Kafka {ns}/{} did not converge before the deadline: {last}", step.spec.name),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Creates (or finds) a KafkaRebalance for `node_ids`, approves its proposal, and waits until it is Ready.
    #[activity]
    pub async fn rebalance(ctx: ActivityContext, step: KubeStep) -> Result<StepOutcome, ActivityError> {
        let client = step.target.client().await.map_err(crate::provision::target_error)?;
        let ns = step.spec.namespace();
        let api: Api<KafkaRebalance> = Api::namespaced(client, &ns);
        let mut rebalance = KafkaRebalance::new(
            &step.name,
            KafkaRebalanceSpec { mode: Some(step.mode.clone()), brokers: step.node_ids.clone() },
        );
        rebalance.metadata.namespace = Some(ns.clone());
        rebalance.metadata.labels = Some(
            [
                (CLUSTER_LABEL.to_owned(), step.spec.name.clone()),
                (CLUSTER_ID_LABEL.to_owned(), step.spec.cluster_id.to_string()),
            ]
            .into(),
        );
        if let Err(conflict) = ownership::apply(&api, &step.name, &rebalance, step.spec.cluster_id).await? {
            return Ok(StepOutcome::Conflict { reason: conflict.to_string() });
        }
        loop {
            let current = api.get(&step.name).await.map_err(classify_kube)?;
            let conditions = current.status.map(|s| s.conditions).unwrap_or_default();
            let state = conditions
                .iter()
                .find(|c| c.status.as_deref() == Some("True"))
                .and_then(|c| c.type_.clone())
                .unwrap_or_default();
            match state.as_str() {
                "Ready" => return Ok(StepOutcome::Done { node_ids: step.node_ids.clone() }),
                "ProposalReady" => {
                    let approve = serde_json::json!({"metadata": {"annotations": {"strimzi.io/rebalance": "approve"}}});
                    api.patch(&step.name, &PatchParams::default(), &Patch::Merge(approve))
                        .await
                        .map_err(classify_kube)?;
                }
                _ => {}
            }
            let last = condition_summary(&conditions);
            let _ = ctx.record_heartbeat(last.clone()).await;
            if now_ms() >= step.deadline_unix_ms {
                return Ok(StepOutcome::Stalled {
                    reason: format!(
                        "KafkaRebalance {ns}/{} ({}) was not Ready before the deadline: {last}",
                        step.name, step.mode
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Deletes the cluster's topics and users, then Kafka, rebalances, node pools and mesh objects, then the namespace, and
    /// waits until the namespace is gone. Only objects labelled with the cluster's id are deleted; a namespace of
    /// another owner, or one that still holds another owner's Strimzi or mesh objects, is a conflict and nothing
    /// more is deleted.
    #[activity]
    pub async fn delete_resources(ctx: ActivityContext, step: KubeStep) -> Result<StepOutcome, ActivityError> {
        let client = step.target.client().await.map_err(crate::provision::target_error)?;
        let ns = step.spec.namespace();
        let id = step.spec.cluster_id;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        if let Err(conflict) = ownership::check_existing(&namespaces, &ns, id).await? {
            return Ok(StepOutcome::Conflict { reason: conflict.to_string() });
        }
        let dp = DeleteParams::background();
        let own = ListParams::default().labels(&ownership::selector(id));
        let topics: Api<KafkaTopic> = Api::namespaced(client.clone(), &ns);
        topics.delete_collection(&dp, &own).await.map_err(classify_kube)?;
        // Users (Polaris' own admin and the org's): the User Operator takes them off the brokers.
        let users: Api<KafkaUser> = Api::namespaced(client.clone(), &ns);
        users.delete_collection(&dp, &own).await.map_err(classify_kube)?;
        let kafkas: Api<Kafka> = Api::namespaced(client.clone(), &ns);
        kafkas.delete_collection(&dp, &own).await.map_err(classify_kube)?;
        let rebalances: Api<KafkaRebalance> = Api::namespaced(client.clone(), &ns);
        rebalances.delete_collection(&dp, &own).await.map_err(classify_kube)?;
        // Rebalances of clusters from before rebalances carried the id: the cluster's name in its own namespace.
        let legacy = ListParams::default().labels(&format!("{CLUSTER_LABEL}={},!{CLUSTER_ID_LABEL}", step.spec.name));
        rebalances.delete_collection(&dp, &legacy).await.map_err(classify_kube)?;
        let pools: Api<KafkaNodePool> = Api::namespaced(client.clone(), &ns);
        pools.delete_collection(&dp, &own).await.map_err(classify_kube)?;
        // The mesh objects of a cluster in a mesh; a target without Istio's CRDs has none.
        let peer: Api<PeerAuthentication> = Api::namespaced(client.clone(), &ns);
        let authz: Api<AuthorizationPolicy> = Api::namespaced(client.clone(), &ns);
        let rules: Api<DestinationRule> = Api::namespaced(client.clone(), &ns);
        kinds::delete_if_served(&peer, &own).await?;
        kinds::delete_if_served(&authz, &own).await?;
        kinds::delete_if_served(&rules, &own).await?;
        let monitors: Api<PodMonitor> = Api::namespaced(client.clone(), &ns);
        kinds::delete_if_served(&monitors, &own).await?;
        loop {
            match namespaces.get_opt(&ns).await.map_err(classify_kube)? {
                None => return Ok(StepOutcome::Done { node_ids: vec![] }),
                Some(n) if n.metadata.deletion_timestamp.is_none() => {
                    // Deleting the namespace deletes what is in it: only when nothing of another owner is left.
                    let all = ListParams::default();
                    let strangers = [
                        foreign(&topics.list(&all).await.map_err(classify_kube)?.items, id),
                        foreign(&users.list(&all).await.map_err(classify_kube)?.items, id),
                        foreign(&kafkas.list(&all).await.map_err(classify_kube)?.items, id),
                        foreign(&pools.list(&all).await.map_err(classify_kube)?.items, id),
                        foreign(&rebalances.list(&all).await.map_err(classify_kube)?.items, id),
                        foreign(&kinds::list_if_served(&peer, &all).await?, id),
                        foreign(&kinds::list_if_served(&authz, &all).await?, id),
                        foreign(&kinds::list_if_served(&rules, &all).await?, id),
                        foreign(&kinds::list_if_served(&monitors, &all).await?, id),
                    ];
                    if let Some(conflict) = strangers.into_iter().flatten().next() {
                        return Ok(StepOutcome::Conflict { reason: conflict.to_string() });
                    }
                    if let Err(conflict) = ownership::delete(&namespaces, &ns, id).await? {
                        return Ok(StepOutcome::Conflict { reason: conflict.to_string() });
                    }
                }
                Some(_) => {}
            }
            let _ = ctx.record_heartbeat(format!("waiting for namespace {ns} to go")).await;
            if now_ms() >= step.deadline_unix_ms {
                return Ok(StepOutcome::Stalled { reason: format!("namespace {ns} was not gone before the deadline") });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The first object (not being deleted) that does not belong to cluster `id`.
fn foreign<K: kube::Resource<DynamicType = ()>>(items: &[K], id: Uuid) -> Option<ownership::Conflict> {
    items.iter().filter(|o| o.meta().deletion_timestamp.is_none()).find_map(|o| ownership::check(o, id).err())
}

/// An apply's outcome as a step's.
fn guarded(applied: Result<(), ownership::Conflict>) -> StepOutcome {
    match applied {
        Ok(()) => StepOutcome::Done { node_ids: vec![] },
        Err(conflict) => StepOutcome::Conflict { reason: conflict.to_string() },
    }
}

pub(crate) fn kube_options(timeout_secs: u64) -> ActivityOptions {
    let mut o = ActivityOptions::start_to_close_timeout(Duration::from_secs(timeout_secs + 60));
    o.heartbeat_timeout = Some(Duration::from_secs(10));
    o.retry_policy = Some(RetryPolicy::builder().maximum_interval(Duration::from_secs(5)).maximum_attempts(20).build());
    o
}

fn step<W>(ctx: &WorkflowContext<W>, input: &OperationInput, spec: ClusterSpec) -> KubeStep {
    let now = ctx.workflow_time().unwrap_or(UNIX_EPOCH);
    let deadline = now + Duration::from_secs(input.timeout_secs);
    KubeStep {
        spec,
        target: input.target.clone(),
        deadline_unix_ms: deadline.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        mode: String::new(),
        node_ids: vec![],
        name: String::new(),
    }
}

/// Applies the broker pool at `spec`'s replicas; `Some(reason)` when an object of another owner is in the way.
async fn apply_pool<W>(
    ctx: &WorkflowContext<W>,
    input: &OperationInput,
    spec: ClusterSpec,
    opts: ActivityOptions,
) -> WorkflowResult<Option<String>> {
    match ctx.execute_activity(OperationActivities::apply_broker_pool, step(ctx, input, spec), opts).await? {
        StepOutcome::Conflict { reason } => Ok(Some(reason)),
        _ => Ok(None),
    }
}

/// Reports the operation failed at `step_name` (an ownership conflict) and ends the workflow.
async fn failed<W>(
    ctx: &WorkflowContext<W>,
    input: &OperationInput,
    step_name: &str,
    reason: String,
) -> WorkflowResult<String> {
    report(ctx, input.spec.cluster_id, &input.cause, Report::Failed { step: step_name.into(), reason }).await?;
    Ok("failed".into())
}

/// Reports a stall for `step_name` and ends the workflow; nothing else is touched.
async fn stalled<W>(
    ctx: &WorkflowContext<W>,
    input: &OperationInput,
    step_name: &str,
    reason: String,
) -> WorkflowResult<String> {
    report(ctx, input.spec.cluster_id, &input.cause, Report::Stalled { step: step_name.into(), reason }).await?;
    Ok("stalled".into())
}

#[workflow]
#[derive(Default)]
pub struct ScaleCluster;

#[workflow_methods]
impl ScaleCluster {
    /// Up: raise the broker pool, wait, then `add-brokers` for the new node ids. Down: `remove-brokers` for the
    /// highest node ids first, and only when it is done lower the pool.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: OperationInput) -> WorkflowResult<String> {
        let opts = kube_options(input.timeout_secs);
        let rebalance_name = |mode: &str| {
            format!("{}-{}-{}", input.spec.name, mode, &input.cause.operation_id.simple().to_string()[..8])
        };
        let target_spec = ClusterSpec { brokers: input.brokers, ..input.spec.clone() };
        if input.brokers > input.spec.brokers {
            if let Some(reason) = apply_pool(ctx, &input, target_spec.clone(), opts.clone()).await? {
                return failed(ctx, &input, "scale-broker-pool", reason).await;
            }
            let node_ids = match ctx
                .execute_activity(
                    OperationActivities::wait_converged,
                    step(ctx, &input, target_spec.clone()),
                    opts.clone(),
                )
                .await?
            {
                StepOutcome::Done { node_ids } => node_ids,
                StepOutcome::Stalled { reason } => return stalled(ctx, &input, "scale-broker-pool", reason).await,
                StepOutcome::Conflict { reason } => return failed(ctx, &input, "scale-broker-pool", reason).await,
            };
            let added: Vec<i32> = node_ids.into_iter().filter(|id| !input.broker_ids.contains(id)).collect();
            report(ctx, input.spec.cluster_id, &input.cause, Report::BrokersAdded { node_ids: added.clone() }).await?;
            let mut rb = step(ctx, &input, target_spec);
            (rb.mode, rb.node_ids, rb.name) = ("add-brokers".into(), added.clone(), rebalance_name("add"));
            match ctx.execute_activity(OperationActivities::rebalance, rb, opts).await? {
                StepOutcome::Done { .. } => {
                    report(
                        ctx,
                        input.spec.cluster_id,
                        &input.cause,
                        Report::RebalanceCompleted { mode: "add-brokers".into(), node_ids: added },
                    )
                    .await?;
                    Ok("scaled up".into())
                }
                StepOutcome::Stalled { reason } => stalled(ctx, &input, "rebalance-add-brokers", reason).await,
                StepOutcome::Conflict { reason } => failed(ctx, &input, "rebalance-add-brokers", reason).await,
            }
        } else {
            let mut ids = input.broker_ids.clone();
            ids.sort_unstable();
            let removed: Vec<i32> = ids.split_off(input.brokers as usize);
            let mut rb = step(ctx, &input, input.spec.clone());
            (rb.mode, rb.node_ids, rb.name) = ("remove-brokers".into(), removed.clone(), rebalance_name("remove"));
            match ctx.execute_activity(OperationActivities::rebalance, rb, opts.clone()).await? {
                StepOutcome::Done { .. } => {
                    report(
                        ctx,
                        input.spec.cluster_id,
                        &input.cause,
                        Report::RebalanceCompleted { mode: "remove-brokers".into(), node_ids: removed.clone() },
                    )
                    .await?
                }
                StepOutcome::Stalled { reason } => {
                    return stalled(ctx, &input, "rebalance-remove-brokers", reason).await;
                }
                StepOutcome::Conflict { reason } => {
                    return failed(ctx, &input, "rebalance-remove-brokers", reason).await;
                }
            }
            // The rebalance is Ready: the brokers hold no replicas any more, so the pool may shrink.
            if let Some(reason) = apply_pool(ctx, &input, target_spec.clone(), opts.clone()).await? {
                return failed(ctx, &input, "scale-broker-pool", reason).await;
            }
            match ctx
                .execute_activity(OperationActivities::wait_converged, step(ctx, &input, target_spec), opts)
                .await?
            {
                StepOutcome::Done { .. } => {
                    report(ctx, input.spec.cluster_id, &input.cause, Report::BrokersRemoved { node_ids: removed })
                        .await?;
                    Ok("scaled down".into())
                }
                StepOutcome::Stalled { reason } => stalled(ctx, &input, "scale-broker-pool", reason).await,
                StepOutcome::Conflict { reason } => failed(ctx, &input, "scale-broker-pool", reason).await,
            }
        }
    }
}

#[workflow]
#[derive(Default)]
pub struct UpgradeCluster;

#[workflow_methods]
impl UpgradeCluster {
    /// Roll the brokers to the new version first; raise the metadata version only once every broker runs it,
    /// as a step of its own (until then a rollback is still possible).
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: OperationInput) -> WorkflowResult<String> {
        let opts = kube_options(input.timeout_secs);
        let rolled = ClusterSpec { kafka_version: input.kafka_version.clone(), ..input.spec.clone() };
        if let StepOutcome::Conflict { reason } = ctx
            .execute_activity(OperationActivities::apply_kafka, step(ctx, &input, rolled.clone()), opts.clone())
            .await?
        {
            return failed(ctx, &input, "roll-kafka-version", reason).await;
        }
        match ctx
            .execute_activity(OperationActivities::wait_converged, step(ctx, &input, rolled.clone()), opts.clone())
            .await?
        {
            StepOutcome::Done { .. } => {
                report(
                    ctx,
                    input.spec.cluster_id,
                    &input.cause,
                    Report::VersionRolled { kafka_version: input.kafka_version.clone() },
                )
                .await?
            }
            StepOutcome::Stalled { reason } => return stalled(ctx, &input, "roll-kafka-version", reason).await,
            StepOutcome::Conflict { reason } => return failed(ctx, &input, "roll-kafka-version", reason).await,
        }
        let bumped = ClusterSpec { metadata_version: input.metadata_version.clone(), ..rolled };
        if let StepOutcome::Conflict { reason } = ctx
            .execute_activity(OperationActivities::apply_kafka, step(ctx, &input, bumped.clone()), opts.clone())
            .await?
        {
            return failed(ctx, &input, "bump-metadata-version", reason).await;
        }
        match ctx.execute_activity(OperationActivities::wait_converged, step(ctx, &input, bumped), opts).await? {
            StepOutcome::Done { .. } => {
                report(
                    ctx,
                    input.spec.cluster_id,
                    &input.cause,
                    Report::MetadataBumped { metadata_version: input.metadata_version.clone() },
                )
                .await?;
                Ok("upgraded".into())
            }
            StepOutcome::Stalled { reason } => stalled(ctx, &input, "bump-metadata-version", reason).await,
            StepOutcome::Conflict { reason } => failed(ctx, &input, "bump-metadata-version", reason).await,
        }
    }
}

#[workflow]
#[derive(Default)]
pub struct DeleteCluster;

#[workflow_methods]
impl DeleteCluster {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: OperationInput) -> WorkflowResult<String> {
        let opts = kube_options(input.timeout_secs);
        match ctx
            .execute_activity(OperationActivities::delete_resources, step(ctx, &input, input.spec.clone()), opts)
            .await?
        {
            StepOutcome::Done { .. } => {
                report(ctx, input.spec.cluster_id, &input.cause, Report::Deleted).await?;
                Ok("deleted".into())
            }
            StepOutcome::Stalled { reason } => stalled(ctx, &input, "delete-resources", reason).await,
            StepOutcome::Conflict { reason } => failed(ctx, &input, "delete-resources", reason).await,
        }
    }
}

/// Input of the topic workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicInput {
    pub cluster: ClusterSpec,
    pub target: TargetRef,
    pub topic_id: Uuid,
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    pub config: std::collections::BTreeMap<String, String>,
    pub cause: Cause,
    pub timeout_secs: u64,
    pub deadline_unix_ms: u64,
}

#[activities]
impl TopicActivities {
    /// Applies the KafkaTopic, then waits until the Topic Operator reports it Ready for its generation.
    #[activity]
    pub async fn apply_topic(ctx: ActivityContext, input: TopicInput) -> Result<StepOutcome, ActivityError> {
        let client = input.target.client().await.map_err(crate::provision::target_error)?;
        let api: Api<KafkaTopic> = Api::namespaced(client, &input.cluster.namespace());
        let topic = input.cluster.kafka_topic(
            input.topic_id,
            &input.name,
            input.partitions,
            input.replication_factor,
            &input.config,
        );
        let name = topic.metadata.name.clone().unwrap_or_default();
        if let Err(conflict) = ownership::apply(&api, &name, &topic, input.cluster.cluster_id).await? {
            return Ok(StepOutcome::Conflict { reason: conflict.to_string() });
        }
        loop {
            let Some(current) = api.get_opt(&name).await.map_err(classify_kube)? else {
                // Deleted under the operation: its cluster's deletion removes every KafkaTopic it labelled.
                return Ok(StepOutcome::Conflict {
                    reason: format!(
                        "KafkaTopic {name} was deleted while it was applied (is its cluster being deleted?)"
                    ),
                });
            };
            let status = current.status.clone().unwrap_or_default();
            let ready =
                ready_for_generation(&status.conditions, status.observed_generation, current.metadata.generation);
            if ready {
                return Ok(StepOutcome::Done { node_ids: vec![] });
            }
            let last = condition_summary(&status.conditions);
            let _ = ctx.record_heartbeat(last.clone()).await;
            if now_ms() >= input.deadline_unix_ms {
                return Ok(StepOutcome::Stalled {
                    reason: format!("KafkaTopic {name} was not Ready before the deadline: {last}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

pub struct TopicActivities;

#[activities]
impl TopicDeleteActivities {
    /// Deletes the KafkaTopic and waits until it is gone (the Topic Operator removes its finalizer once the
    /// topic is deleted in Kafka).
    #[activity]
    pub async fn delete_topic(ctx: ActivityContext, input: TopicInput) -> Result<StepOutcome, ActivityError> {
        let client = input.target.client().await.map_err(crate::provision::target_error)?;
        let api: Api<KafkaTopic> = Api::namespaced(client, &input.cluster.namespace());
        let name = crate::resources::kafka_topic_resource_name(&input.name, input.topic_id);
        if let Err(conflict) = ownership::delete(&api, &name, input.cluster.cluster_id).await? {
            return Ok(StepOutcome::Conflict { reason: conflict.to_string() });
        }
        loop {
            match api.get_opt(&name).await.map_err(classify_kube)? {
                None => return Ok(StepOutcome::Done { node_ids: vec![] }),
                Some(_) => {
                    let _ = ctx.record_heartbeat(format!("waiting for KafkaTopic {name} to go")).await;
                    if now_ms() >= input.deadline_unix_ms {
                        return Ok(StepOutcome::Stalled {
                            reason: format!("KafkaTopic {name} was still present at the deadline"),
                        });
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

pub struct TopicDeleteActivities;

/// A topic's or user's step whose activity failed for good (a refusal of the API server, or its retries spent): the
/// operation fails with the error, recorded as its aggregate's own event, instead of the workflow failing with
/// nothing recorded and the operation left running for ever (found by `polaris-bench chaos`).
pub(crate) fn given_up<E: std::fmt::Display>(result: Result<StepOutcome, E>) -> StepOutcome {
    result.unwrap_or_else(|e| StepOutcome::Conflict { reason: format!("the step failed for good: {e}") })
}

/// A topic workflow's absolute deadline, from workflow time (so a replay computes the same one).
fn topic_deadline<W>(ctx: &WorkflowContext<W>, timeout_secs: u64) -> u64 {
    let now = ctx.workflow_time().unwrap_or(UNIX_EPOCH);
    (now + Duration::from_secs(timeout_secs)).duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn topic_report(input: &TopicInput) -> crate::provision::TopicReportInput {
    crate::provision::TopicReportInput { topic_id: input.topic_id, cause: input.cause.clone() }
}

/// A topic operation found another owner's KafkaTopic in its way: `TopicOperationFailed`; nothing was touched.
async fn topic_failed<W>(ctx: &WorkflowContext<W>, input: &TopicInput, reason: String) -> WorkflowResult<String> {
    tracing::warn!(topic = %input.name, %reason, "topic operation failed");
    ctx.execute_activity(
        crate::provision::ClusterActivities::report_topic_failed,
        (topic_report(input), reason),
        crate::provision::report_options(),
    )
    .await?;
    Ok("failed".into())
}

/// A topic operation passed its deadline: `TopicStalled`, and nothing else is touched.
async fn topic_stalled<W>(ctx: &WorkflowContext<W>, input: &TopicInput, reason: String) -> WorkflowResult<String> {
    tracing::warn!(topic = %input.name, %reason, "topic operation stalled");
    ctx.execute_activity(
        crate::provision::ClusterActivities::report_topic_stalled,
        (topic_report(input), reason),
        crate::provision::report_options(),
    )
    .await?;
    Ok("stalled".into())
}

#[workflow]
#[derive(Default)]
pub struct DeleteTopic;

#[workflow_methods]
impl DeleteTopic {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, mut input: TopicInput) -> WorkflowResult<String> {
        input.deadline_unix_ms = topic_deadline(ctx, input.timeout_secs);
        match given_up(
            ctx.execute_activity(TopicDeleteActivities::delete_topic, input.clone(), kube_options(input.timeout_secs))
                .await,
        ) {
            StepOutcome::Done { .. } => {
                ctx.execute_activity(
                    crate::provision::ClusterActivities::report_topic_deleted,
                    topic_report(&input),
                    crate::provision::report_options(),
                )
                .await?;
                Ok("deleted".into())
            }
            StepOutcome::Stalled { reason } => topic_stalled(ctx, &input, reason).await,
            StepOutcome::Conflict { reason } => topic_failed(ctx, &input, reason).await,
        }
    }
}

#[workflow]
#[derive(Default)]
pub struct ApplyTopic;

#[workflow_methods]
impl ApplyTopic {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, mut input: TopicInput) -> WorkflowResult<String> {
        input.deadline_unix_ms = topic_deadline(ctx, input.timeout_secs);
        match given_up(
            ctx.execute_activity(TopicActivities::apply_topic, input.clone(), kube_options(input.timeout_secs)).await,
        ) {
            StepOutcome::Done { .. } => {
                ctx.execute_activity(
                    crate::provision::ClusterActivities::report_topic_ready,
                    topic_report(&input),
                    crate::provision::report_options(),
                )
                .await?;
                Ok("ready".into())
            }
            StepOutcome::Stalled { reason } => topic_stalled(ctx, &input, reason).await,
            StepOutcome::Conflict { reason } => topic_failed(ctx, &input, reason).await,
        }
    }
}
