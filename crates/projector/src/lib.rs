//! The projector: follows `polaris.events` in a consumer group and turns events into read models
//! (`clusters`, `operations`).
//!
//! Each message is applied in one PostgreSQL transaction together with the projector's position
//! (`projector_offsets`), so the read model and the record of how far it got can never disagree. Delivery is
//! at-least-once (the relay may republish, Kafka may redeliver after a rebalance or crash), so every change is
//! guarded by the aggregate's last applied sequence: an event at or below it is acknowledged and ignored.
//! The Kafka group offset is committed after the Postgres transaction; if that commit is lost, the event comes
//! again and is ignored.

pub mod replay;

use std::time::Duration;

use polaris_domain::EventEnvelope;
use polaris_domain::cluster::ClusterStatus;
use polaris_domain::cluster::ClusterStatus as S;
use polaris_domain::cluster::{ClusterEvent, ClusterRequested, ClusterStalled, OperationFailed};
use polaris_domain::drift::{DriftEvent, DriftResolution};
use polaris_domain::lifecycle::{OperationState as OpState, StepState, TopicStatus as T};
use polaris_domain::topic::TopicEvent;
use polaris_domain::user::UserEvent;
use polaris_store::db::projection::{self as db, ClusterChange, OperationProgress, TopicChange, UserChange};
use polaris_store::{Connection, DbError, Pool};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("database: {0}")]
    Database(#[from] DbError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("event {aggregate_id}/{sequence} ({event_type}) has a payload this projector cannot read: {reason}")]
    Payload { aggregate_id: uuid::Uuid, sequence: u64, event_type: String, reason: String },
    #[error("replay: {0}")]
    Replay(String),
}

/// What applying one envelope did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// The aggregate already reflects this sequence: a redelivery.
    AlreadyApplied,
    /// No read model cares about this event type.
    Skipped,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::AlreadyApplied => "duplicate",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ProjectorConfig {
    pub bootstrap_servers: String,
    pub topic: String,
    pub group_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadModelLabels {
    read_model: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AggregateLabels {
    aggregate_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkflowLabels {
    kind: String,
    outcome: String,
}

fn workflow_histogram() -> Histogram {
    Histogram::new([0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0])
}

#[derive(Clone)]
pub struct ProjectorMetrics {
    events: Family<OutcomeLabels, prometheus_client::metrics::counter::Counter>,
    lag_seconds: Family<ReadModelLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    stalled: Family<AggregateLabels, prometheus_client::metrics::counter::Counter>,
    workflows: Family<WorkflowLabels, Histogram, fn() -> Histogram>,
}

impl Default for ProjectorMetrics {
    fn default() -> Self {
        Self {
            events: Family::default(),
            lag_seconds: Family::default(),
            stalled: Family::default(),
            workflows: Family::new_with_constructor(workflow_histogram),
        }
    }
}

/// Events that can end an operation (each operation is one workflow).
const FINISHING_EVENTS: [&str; 18] = [
    "ClusterReady",
    "RebalanceCompleted",
    "BrokersRemoved",
    "KafkaVersionRolled",
    "MetadataVersionBumped",
    "ClusterDeleted",
    "ClusterStalled",
    "OperationFailed",
    "TopicReady",
    "TopicDeleted",
    "TopicStalled",
    "TopicOperationFailed",
    "UserReady",
    "UserDeleted",
    "UserStalled",
    "UserOperationFailed",
    "DriftResolved",
    "DriftRevertStalled",
];

impl ProjectorMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "polaris_projector_events",
            "Events handled by the projector, by outcome",
            self.events.clone(),
        );
        registry.register(
            "polaris_projector_lag_seconds",
            "Time from an event's occurrence to its application, per read model (last event)",
            self.lag_seconds.clone(),
        );
        // Zero from the start, so `increase()` sees the first stall.
        for aggregate_type in ["cluster", "topic", "user"] {
            let _ = self.stalled.get_or_create(&AggregateLabels { aggregate_type: aggregate_type.into() });
        }
        registry.register(
            "polaris_workflow_duration_seconds",
            "Operations that finished (one workflow each), from the accepted command to the event that ended it, \
             by kind (provision, scale, upgrade, delete, topic_*, user_*) and outcome (succeeded, failed, stalled)",
            self.workflows.clone(),
        );
        registry.register(
            "polaris_operations_stalled",
            "Operations that passed a deadline (ClusterStalled, TopicStalled, UserStalled), by aggregate type",
            self.stalled.clone(),
        );
    }
}

/// Applies a batch (`(topic, partition, offset, envelope)`; `None` for a message that is not an envelope) and
/// records each partition's position, in one transaction.
pub async fn apply_batch(
    pool: &Pool,
    group: &str,
    batch: &[(&str, i32, i64, Option<EventEnvelope>)],
) -> Result<Vec<Outcome>, ProjectorError> {
    let mut tx = pool.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut next: std::collections::BTreeMap<(&str, i32), i64> = std::collections::BTreeMap::new();
    let mut applier = Batch::new(&mut tx);
    for (topic, partition, offset, envelope) in batch {
        outcomes.push(match envelope {
            Some(env) => apply_envelope(&mut applier, env).await?,
            None => Outcome::Skipped,
        });
        let entry = next.entry((topic, *partition)).or_insert(offset + 1);
        *entry = (*entry).max(offset + 1);
    }
    applier.flush().await?;
    for ((topic, partition), next_offset) in next {
        db::record_offset(&mut tx, group, topic, partition, next_offset).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// A batch of events applied in one transaction. The operations the batch touches are folded in memory: each is
/// read (and locked) once, when an event first names it, changed by every event of the batch that names it, and
/// written back with one statement by [`Batch::flush`], which the caller runs before it commits. A batch of one
/// event is the per-event path; replay and the live projector run the same code on batches of any size.
pub struct Batch<'c> {
    conn: &'c mut Connection,
    operations: std::collections::HashMap<uuid::Uuid, OperationProgress>,
    /// The operations changed since the last flush, in the order they were first changed.
    changed: Vec<uuid::Uuid>,
}

impl<'c> Batch<'c> {
    pub fn new(conn: &'c mut Connection) -> Self {
        Self { conn, operations: Default::default(), changed: Vec::new() }
    }

    /// Writes every operation the batch changed (one statement), so the transaction holds them.
    pub async fn flush(&mut self) -> Result<(), ProjectorError> {
        if self.changed.is_empty() {
            return Ok(());
        }
        let rows: Vec<(uuid::Uuid, &OperationProgress)> =
            self.changed.iter().filter_map(|id| self.operations.get(id).map(|op| (*id, op))).collect();
        db::save_operations(&mut *self.conn, &rows).await?;
        self.changed.clear();
        Ok(())
    }
}

/// Applies one envelope and records the consumer position, in one transaction.
pub async fn apply_message(
    pool: &Pool,
    group: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    envelope: &EventEnvelope,
) -> Result<Outcome, ProjectorError> {
    let outcomes = apply_batch(pool, group, &[(topic, partition, offset, Some(envelope.clone()))]).await?;
    Ok(outcomes.first().copied().unwrap_or(Outcome::Skipped))
}

/// Applies an envelope to the read models inside the caller's transaction. The envelope is decoded to its
/// aggregate's event enum and matched exhaustively: an event type added to the domain does not compile until the
/// projector says what it does to the read models. Only an event this build does not know at all (written by a
/// newer one) is skipped.
pub async fn apply_envelope(tx: &mut Batch<'_>, env: &EventEnvelope) -> Result<Outcome, ProjectorError> {
    match decode(env)? {
        Some(Decoded::Cluster(event)) => apply_cluster(tx, env, event).await,
        Some(Decoded::Topic(event)) => apply_topic(tx, env, event).await,
        Some(Decoded::User(event)) => apply_user(tx, env, event).await,
        Some(Decoded::Drift(event)) => apply_drift(tx, env, event).await,
        None => Ok(Outcome::Skipped),
    }
}

/// An envelope as its aggregate's event.
enum Decoded {
    Cluster(ClusterEvent),
    Topic(TopicEvent),
    User(UserEvent),
    Drift(DriftEvent),
}

/// The envelope's event, upcast to its current version; `None` for an aggregate or event type this build does
/// not know. A known type that does not decode is an error: skipping it would lose a change.
fn decode(env: &EventEnvelope) -> Result<Option<Decoded>, ProjectorError> {
    if polaris_domain::events::current_version(&env.event_type).is_none() {
        tracing::warn!(event_type = %env.event_type, aggregate_id = %env.aggregate_id, "projector: unknown event type skipped");
        return Ok(None);
    }
    let malformed = |e: polaris_domain::events::UpcastError| ProjectorError::Payload {
        aggregate_id: env.aggregate_id,
        sequence: env.sequence,
        event_type: env.event_type.clone(),
        reason: e.to_string(),
    };
    Ok(match env.aggregate_type.as_str() {
        "cluster" => Some(Decoded::Cluster(env.decode().map_err(malformed)?)),
        "topic" => Some(Decoded::Topic(env.decode().map_err(malformed)?)),
        "user" => Some(Decoded::User(env.decode().map_err(malformed)?)),
        "drift" => Some(Decoded::Drift(env.decode().map_err(malformed)?)),
        _ => None,
    })
}

async fn apply_cluster(
    tx: &mut Batch<'_>,
    env: &EventEnvelope,
    event: ClusterEvent,
) -> Result<Outcome, ProjectorError> {
    match event {
        ClusterEvent::ClusterRequested(e) => cluster_requested(tx, env, e).await,
        ClusterEvent::ClusterProvisioningStarted(e) => {
            let change = ClusterChange {
                status: Some(S::Provisioning.as_str()),
                status_reason: Some(None),
                ..Default::default()
            };
            if !advance(tx, env, &change).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                op.state = OpState::Running.as_str().into();
                op.start_step("apply-resources", env.occurred_at);
            })
            .await?;
            Ok(Outcome::Applied)
        }
        ClusterEvent::StrimziResourcesApplied(e) => {
            if !advance(tx, env, &ClusterChange::default()).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                op.finish_step("apply-resources", StepState::Succeeded, Some(e.resources.join(", ")), env.occurred_at);
                op.start_step("wait-ready", env.occurred_at);
            })
            .await?;
            Ok(Outcome::Applied)
        }
        ClusterEvent::ClusterReady(e) => {
            let change = ClusterChange {
                brokers: Some(e.broker_ids.len() as i32),
                bootstrap_servers: Some(Some(&e.bootstrap_servers)),
                status_reason: Some(None),
                ..settled()
            };
            let applied = advance(tx, env, &change).await?;
            if !applied {
                return Ok(Outcome::AlreadyApplied);
            }
            db::delete_nodes(&mut *tx.conn, env.aggregate_id, None).await?;
            db::insert_nodes(&mut *tx.conn, env.aggregate_id, &e.broker_ids, "broker").await?;
            db::insert_nodes(&mut *tx.conn, env.aggregate_id, &e.controller_ids, "controller").await?;
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                op.finish_step(
                    "wait-ready",
                    StepState::Succeeded,
                    Some(format!("bootstrap {}", e.bootstrap_servers)),
                    env.occurred_at,
                );
                op.state = OpState::Succeeded.as_str().into();
                op.finished_at = Some(env.occurred_at);
            })
            .await?;
            Ok(Outcome::Applied)
        }
        ClusterEvent::ClusterStalled(ClusterStalled { operation_id, step, reason }) => {
            operation_ended(
                tx,
                env,
                operation_id,
                &step,
                &reason,
                (ClusterStatus::Stalled, OpState::Stalled, StepState::Stalled),
            )
            .await
        }
        ClusterEvent::OperationFailed(OperationFailed { operation_id, step, reason }) => {
            operation_ended(
                tx,
                env,
                operation_id,
                &step,
                &reason,
                (ClusterStatus::Failed, OpState::Failed, StepState::Failed),
            )
            .await
        }
        ClusterEvent::ClusterScaleRequested(e) => start_operation(tx, env, e.operation_id.as_uuid(), S::Scaling).await,
        ClusterEvent::BrokersAdded(e) => {
            let change = ClusterChange { brokers: Some(e.broker_ids.len() as i32), ..Default::default() };
            let applied = advance(tx, env, &change).await?;
            if !applied {
                return Ok(Outcome::AlreadyApplied);
            }
            set_brokers(tx, env.aggregate_id, &e.broker_ids).await?;
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                op.finish_step(
                    "scale-broker-pool",
                    StepState::Succeeded,
                    Some(format!("added node ids {:?}", e.node_ids)),
                    env.occurred_at,
                );
                op.start_step("rebalance-add-brokers", env.occurred_at);
            })
            .await?;
            Ok(Outcome::Applied)
        }
        ClusterEvent::RebalanceCompleted(e) => {
            let adding = e.mode == "add-brokers";
            let change = if adding { settled() } else { ClusterChange::default() };
            if !advance(tx, env, &change).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                let detail = Some(format!("{} for node ids {:?}", e.mode, e.node_ids));
                op.finish_step(&format!("rebalance-{}", e.mode), StepState::Succeeded, detail, env.occurred_at);
                if adding {
                    op.succeed(env.occurred_at);
                } else {
                    op.start_step("scale-broker-pool", env.occurred_at);
                }
            })
            .await?;
            Ok(Outcome::Applied)
        }
        ClusterEvent::BrokersRemoved(e) => {
            let change = ClusterChange { brokers: Some(e.broker_ids.len() as i32), ..settled() };
            let applied = advance(tx, env, &change).await?;
            if !applied {
                return Ok(Outcome::AlreadyApplied);
            }
            set_brokers(tx, env.aggregate_id, &e.broker_ids).await?;
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                op.finish_step(
                    "scale-broker-pool",
                    StepState::Succeeded,
                    Some(format!("removed node ids {:?}", e.node_ids)),
                    env.occurred_at,
                );
                op.succeed(env.occurred_at);
            })
            .await?;
            Ok(Outcome::Applied)
        }
        ClusterEvent::ClusterUpgradeRequested(e) => {
            start_operation(tx, env, e.operation_id.as_uuid(), S::Upgrading).await
        }
        ClusterEvent::KafkaVersionRolled(e) => {
            let change = ClusterChange { kafka_version: Some(&e.kafka_version), ..Default::default() };
            let applied = advance(tx, env, &change).await?;
            if !applied {
                return Ok(Outcome::AlreadyApplied);
            }
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                op.finish_step(
                    "roll-kafka-version",
                    StepState::Succeeded,
                    Some(format!("brokers run {}", e.kafka_version)),
                    env.occurred_at,
                );
                op.start_step("bump-metadata-version", env.occurred_at);
            })
            .await?;
            Ok(Outcome::Applied)
        }
        ClusterEvent::MetadataVersionBumped(e) => {
            let change = ClusterChange { metadata_version: Some(&e.metadata_version), ..settled() };
            let applied = advance(tx, env, &change).await?;
            if !applied {
                return Ok(Outcome::AlreadyApplied);
            }
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                op.finish_step(
                    "bump-metadata-version",
                    StepState::Succeeded,
                    Some(format!("metadata version {}", e.metadata_version)),
                    env.occurred_at,
                );
                op.succeed(env.occurred_at);
            })
            .await?;
            Ok(Outcome::Applied)
        }
        ClusterEvent::ClusterDeletionRequested(e) => {
            start_operation(tx, env, e.operation_id.as_uuid(), S::Deleting).await
        }
        ClusterEvent::ClusterDeleted(e) => {
            let change = ClusterChange {
                status: Some(S::Deleted.as_str()),
                current_operation_id: Some(None),
                bootstrap_servers: Some(None),
                ..Default::default()
            };
            if !advance(tx, env, &change).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            db::delete_nodes(&mut *tx.conn, env.aggregate_id, None).await?;
            db::delete_topics_of(&mut *tx.conn, env.aggregate_id, env.occurred_at).await?;
            db::delete_users_of(&mut *tx.conn, env.aggregate_id, env.occurred_at).await?;
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                op.finish_step("delete-resources", StepState::Succeeded, None, env.occurred_at);
                op.succeed(env.occurred_at);
            })
            .await?;
            Ok(Outcome::Applied)
        }
        ClusterEvent::DeletionProtectionChanged(e) => {
            let change = ClusterChange { deletion_protection: Some(e.enabled), ..Default::default() };
            let applied = advance(tx, env, &change).await?;
            Ok(if applied { Outcome::Applied } else { Outcome::AlreadyApplied })
        }
    }
}

async fn apply_topic(tx: &mut Batch<'_>, env: &EventEnvelope, event: TopicEvent) -> Result<Outcome, ProjectorError> {
    match event {
        TopicEvent::TopicRequested(e) => {
            let inserted = db::insert_topic(&mut *tx.conn, at(env), &e).await?;
            if !inserted {
                return Ok(Outcome::AlreadyApplied);
            }
            start_operation_row(tx, env, || None).await?;
            Ok(Outcome::Applied)
        }
        TopicEvent::TopicReady(e) => {
            let ready = TopicChange { status: Some(T::Ready.as_str()), ..Default::default() };
            if !advance_topic(tx, env, &ready).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                op.finish_step("apply-kafkatopic", StepState::Succeeded, None, env.occurred_at);
                op.succeed(env.occurred_at);
            })
            .await?;
            Ok(Outcome::Applied)
        }
        // Either change starts (or joins) the operation applying the KafkaTopic.
        TopicEvent::TopicPartitionsIncreased(e) => {
            let change =
                TopicChange { partitions: Some(e.to as i32), status: Some(T::Updating.as_str()), ..Default::default() };
            if !advance_topic(tx, env, &change).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            topic_operation(tx, env).await?;
            Ok(Outcome::Applied)
        }
        TopicEvent::TopicConfigChanged(e) => {
            let change =
                TopicChange { config: Some(&e.config), status: Some(T::Updating.as_str()), ..Default::default() };
            if !advance_topic(tx, env, &change).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            topic_operation(tx, env).await?;
            Ok(Outcome::Applied)
        }
        TopicEvent::TopicDeletionProtectionChanged(e) => {
            let change = TopicChange { deletion_protection: Some(e.enabled), ..Default::default() };
            let applied = advance_topic(tx, env, &change).await?;
            Ok(if applied { Outcome::Applied } else { Outcome::AlreadyApplied })
        }
        TopicEvent::TopicDeletionRequested(_) => {
            if !advance_topic(tx, env, &TopicChange { status: Some(T::Deleting.as_str()), ..Default::default() })
                .await?
            {
                return Ok(Outcome::AlreadyApplied);
            }
            topic_operation(tx, env).await?;
            Ok(Outcome::Applied)
        }
        TopicEvent::TopicStalled(e) => {
            if !advance_topic(tx, env, &TopicChange { status: Some(T::Stalled.as_str()), ..Default::default() }).await?
            {
                return Ok(Outcome::AlreadyApplied);
            }
            member_operation_ended(tx, env, e.operation_id, &e.reason, (OpState::Stalled, StepState::Stalled)).await
        }
        TopicEvent::TopicOperationFailed(e) => {
            if !advance_topic(tx, env, &TopicChange { status: Some(T::Failed.as_str()), ..Default::default() }).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            member_operation_ended(tx, env, e.operation_id, &e.reason, (OpState::Failed, StepState::Failed)).await
        }
        TopicEvent::TopicDeleted(e) => {
            if !advance_topic(tx, env, &TopicChange { status: Some(T::Deleted.as_str()), ..Default::default() }).await?
            {
                return Ok(Outcome::AlreadyApplied);
            }
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                op.finish_step("delete-kafkatopic", StepState::Succeeded, None, env.occurred_at);
                op.succeed(env.occurred_at);
            })
            .await?;
            Ok(Outcome::Applied)
        }
    }
}

async fn apply_user(tx: &mut Batch<'_>, env: &EventEnvelope, event: UserEvent) -> Result<Outcome, ProjectorError> {
    let status = |s: T| UserChange { status: Some(s.as_str()), ..Default::default() };
    match event {
        UserEvent::UserRequested(e) => {
            if !db::insert_user(&mut *tx.conn, at(env), &e).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            start_operation_row(tx, env, || None).await?;
            Ok(Outcome::Applied)
        }
        UserEvent::UserReady(e) => {
            if !advance_user(tx, env, &status(T::Ready)).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                op.finish_step("apply-kafkauser", StepState::Succeeded, None, env.occurred_at);
                op.succeed(env.occurred_at);
            })
            .await?;
            Ok(Outcome::Applied)
        }
        // Each change starts (or joins) the operation applying the KafkaUser.
        UserEvent::UserAclsChanged(e) => {
            user_changed(tx, env, UserChange { acls: Some(&e.acls), ..status(T::Updating) }).await
        }
        UserEvent::UserQuotasChanged(e) => {
            user_changed(tx, env, UserChange { quotas: Some(&e.quotas), ..status(T::Updating) }).await
        }
        UserEvent::UserCredentialsRotated(e) => {
            user_changed(tx, env, UserChange { generation: Some(e.generation), ..status(T::Updating) }).await
        }
        UserEvent::UserDeletionRequested(_) => user_changed(tx, env, status(T::Deleting)).await,
        UserEvent::UserStalled(e) => {
            if !advance_user(tx, env, &status(T::Stalled)).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            member_operation_ended(tx, env, e.operation_id, &e.reason, (OpState::Stalled, StepState::Stalled)).await
        }
        UserEvent::UserOperationFailed(e) => {
            if !advance_user(tx, env, &status(T::Failed)).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            member_operation_ended(tx, env, e.operation_id, &e.reason, (OpState::Failed, StepState::Failed)).await
        }
        UserEvent::UserDeleted(e) => {
            if !advance_user(tx, env, &status(T::Deleted)).await? {
                return Ok(Outcome::AlreadyApplied);
            }
            update_operation(tx, e.operation_id.as_uuid(), env, |op| {
                op.finish_step("delete-kafkauser", StepState::Succeeded, None, env.occurred_at);
                op.succeed(env.occurred_at);
            })
            .await?;
            Ok(Outcome::Applied)
        }
    }
}

/// A drift's row follows its episodes; a revert is an operation of the drift's cluster (the cluster's status is
/// composed with its open drifts where it is read: `clusters_shown`).
async fn apply_drift(tx: &mut Batch<'_>, env: &EventEnvelope, event: DriftEvent) -> Result<Outcome, ProjectorError> {
    let applied = match &event {
        DriftEvent::DriftDetected(e) => polaris_store::db::drifts::detected(&mut *tx.conn, at(env), e).await?,
        DriftEvent::DriftRevertRequested(e) => {
            polaris_store::db::drifts::reverting(&mut *tx.conn, at(env), Some(e.operation_id.as_uuid())).await?
        }
        DriftEvent::DriftRevertStalled(_) => polaris_store::db::drifts::reverting(&mut *tx.conn, at(env), None).await?,
        DriftEvent::DriftResolved(e) => polaris_store::db::drifts::resolved(&mut *tx.conn, at(env), e).await?,
    };
    if !applied {
        return Ok(Outcome::AlreadyApplied);
    }
    match event {
        DriftEvent::DriftRevertRequested(_) => start_operation_row(tx, env, || None).await?,
        DriftEvent::DriftRevertStalled(e) => {
            let ended = (OpState::Stalled, StepState::Stalled);
            return member_operation_ended(tx, env, e.operation_id, &e.reason, ended).await;
        }
        DriftEvent::DriftResolved(e) => {
            if let (DriftResolution::Reverted, Some(operation_id)) = (e.how, e.operation_id) {
                update_operation(tx, operation_id.as_uuid(), env, |op| {
                    op.finish_step("reapply-recorded-state", StepState::Succeeded, None, env.occurred_at);
                    op.succeed(env.occurred_at);
                })
                .await?;
            }
        }
        DriftEvent::DriftDetected(_) => {}
    }
    Ok(Outcome::Applied)
}

/// Moves the user's row to this event's sequence with `change`; false when it is already there.
async fn advance_user(
    tx: &mut Batch<'_>,
    env: &EventEnvelope,
    change: &UserChange<'_>,
) -> Result<bool, ProjectorError> {
    Ok(db::advance_user(&mut *tx.conn, at(env), change).await?)
}

/// A user change: the row moves, and the operation applying the KafkaUser starts for the user's cluster.
async fn user_changed(
    tx: &mut Batch<'_>,
    env: &EventEnvelope,
    change: UserChange<'_>,
) -> Result<Outcome, ProjectorError> {
    if !advance_user(tx, env, &change).await? {
        return Ok(Outcome::AlreadyApplied);
    }
    let cluster = db::user_cluster(&mut *tx.conn, env.aggregate_id).await?;
    start_operation_row(tx, env, || cluster).await?;
    Ok(Outcome::Applied)
}

/// A topic's or user's operation ended without succeeding: its running steps and the operation take the
/// states given, with the reason (a failure also finishes the operation; a stall leaves it open to a retry).
async fn member_operation_ended(
    tx: &mut Batch<'_>,
    env: &EventEnvelope,
    operation_id: polaris_domain::OperationId,
    reason: &str,
    (op_state, step_state): (OpState, StepState),
) -> Result<Outcome, ProjectorError> {
    update_operation(tx, operation_id.as_uuid(), env, |op| {
        let running: Vec<String> =
            op.steps.iter().filter(|s| s.state == StepState::Running.as_str()).map(|s| s.name.clone()).collect();
        for step in running {
            op.finish_step(&step, step_state, Some(reason.to_owned()), env.occurred_at);
        }
        op.state = op_state.as_str().into();
        op.error = Some(reason.to_owned());
        if op_state == OpState::Failed {
            op.finished_at = Some(env.occurred_at);
        }
    })
    .await?;
    Ok(Outcome::Applied)
}

/// A cluster operation ended without succeeding: the cluster and the operation take `(cluster status, operation
/// state)` with the reason.
async fn operation_ended(
    tx: &mut Batch<'_>,
    env: &EventEnvelope,
    operation_id: polaris_domain::OperationId,
    step: &str,
    reason: &str,
    (cluster_status, op_state, step_state): (ClusterStatus, OpState, StepState),
) -> Result<Outcome, ProjectorError> {
    let change = ClusterChange {
        status: Some(cluster_status.as_str()),
        status_reason: Some(Some(reason)),
        current_operation_id: Some(None),
        ..Default::default()
    };
    let applied = advance(tx, env, &change).await?;
    if !applied {
        return Ok(Outcome::AlreadyApplied);
    }
    update_operation(tx, operation_id.as_uuid(), env, |op| {
        op.finish_step(step, step_state, Some(reason.to_owned()), env.occurred_at);
        op.state = op_state.as_str().into();
        op.error = Some(reason.to_owned());
        op.finished_at = Some(env.occurred_at);
    })
    .await?;
    Ok(Outcome::Applied)
}

/// Moves the topic's row to this event's sequence with `change`; false when it is already there.
async fn advance_topic(
    tx: &mut Batch<'_>,
    env: &EventEnvelope,
    change: &TopicChange<'_>,
) -> Result<bool, ProjectorError> {
    Ok(db::advance_topic(&mut *tx.conn, at(env), change).await?)
}

/// The operation a topic change starts, with its one step running, for the topic's cluster.
async fn topic_operation(tx: &mut Batch<'_>, env: &EventEnvelope) -> Result<(), ProjectorError> {
    let cluster = db::topic_cluster(&mut *tx.conn, env.aggregate_id).await?;
    start_operation_row(tx, env, || cluster).await
}

/// A disruptive operation was accepted: the cluster enters `status` and the operation starts (its first step as
/// `OperationStart::of` says).
async fn start_operation(
    tx: &mut Batch<'_>,
    env: &EventEnvelope,
    operation_id: uuid::Uuid,
    status: ClusterStatus,
) -> Result<Outcome, ProjectorError> {
    let change = ClusterChange {
        status: Some(status.as_str()),
        status_reason: Some(None),
        current_operation_id: Some(Some(operation_id)),
        ..Default::default()
    };
    let applied = advance(tx, env, &change).await?;
    if !applied {
        return Ok(Outcome::AlreadyApplied);
    }
    start_operation_row(tx, env, || None).await?;
    Ok(Outcome::Applied)
}

/// Replaces the cluster's broker rows with these node ids, keeping its controllers.
async fn set_brokers(tx: &mut Batch<'_>, cluster_id: uuid::Uuid, broker_ids: &[i32]) -> Result<(), ProjectorError> {
    db::delete_nodes(&mut *tx.conn, cluster_id, Some("broker")).await?;
    Ok(db::insert_nodes(&mut *tx.conn, cluster_id, broker_ids, "broker").await?)
}

/// Where this event moves its aggregate's row.
fn at(env: &EventEnvelope) -> db::At {
    db::At { id: env.aggregate_id, sequence: env.sequence as i64, occurred_at: env.occurred_at }
}

/// An operation ended well: the cluster is READY with no operation running.
fn settled<'a>() -> ClusterChange<'a> {
    ClusterChange { status: Some(S::Ready.as_str()), current_operation_id: Some(None), ..Default::default() }
}

/// Moves the cluster's row to this event's sequence with `change`; false when it is already there (a redelivery).
async fn advance(tx: &mut Batch<'_>, env: &EventEnvelope, change: &ClusterChange<'_>) -> Result<bool, ProjectorError> {
    Ok(db::advance_cluster(&mut *tx.conn, at(env), change).await?)
}

async fn cluster_requested(
    tx: &mut Batch<'_>,
    env: &EventEnvelope,
    e: ClusterRequested,
) -> Result<Outcome, ProjectorError> {
    let inserted = db::insert_cluster(&mut *tx.conn, at(env), &e).await?;
    if !inserted {
        return Ok(Outcome::AlreadyApplied);
    }
    start_operation_row(tx, env, || None).await?;
    Ok(Outcome::Applied)
}

/// The operation `env` starts, as the event store also writes it in the command's transaction (one definition).
async fn start_operation_row(
    tx: &mut Batch<'_>,
    env: &EventEnvelope,
    topic_cluster: impl FnOnce() -> Option<uuid::Uuid>,
) -> Result<(), ProjectorError> {
    if let Some(op) = OperationStart::of(env, topic_cluster) {
        op.insert(&mut *tx.conn).await?;
    }
    Ok(())
}

pub use polaris_store::operations::{OperationStart, Step};

/// How the projector moves an operation's progress along.
trait Progress {
    fn start_step(&mut self, name: &str, at: chrono::DateTime<chrono::Utc>);
    fn succeed(&mut self, at: chrono::DateTime<chrono::Utc>);
    fn finish_step(&mut self, name: &str, state: StepState, detail: Option<String>, at: chrono::DateTime<chrono::Utc>);
}

impl Progress for OperationProgress {
    fn start_step(&mut self, name: &str, at: chrono::DateTime<chrono::Utc>) {
        if !self.steps.iter().any(|s| s.name == name) {
            self.steps.push(Step {
                name: name.into(),
                state: StepState::Running.as_str().into(),
                started_at: Some(at),
                finished_at: None,
                detail: None,
            });
        }
    }

    fn succeed(&mut self, at: chrono::DateTime<chrono::Utc>) {
        self.state = OpState::Succeeded.as_str().into();
        self.finished_at = Some(at);
    }

    fn finish_step(&mut self, name: &str, state: StepState, detail: Option<String>, at: chrono::DateTime<chrono::Utc>) {
        if !self.steps.iter().any(|s| s.name == name) {
            self.start_step(name, at);
        }
        if let Some(step) = self.steps.iter_mut().find(|s| s.name == name) {
            step.state = state.as_str().into();
            step.finished_at = Some(at);
            step.detail = detail;
        }
    }
}

async fn update_operation(
    tx: &mut Batch<'_>,
    operation_id: uuid::Uuid,
    env: &EventEnvelope,
    change: impl FnOnce(&mut OperationProgress),
) -> Result<(), ProjectorError> {
    if !tx.operations.contains_key(&operation_id) {
        let Some(op) = db::lock_operation(&mut *tx.conn, operation_id).await? else {
            tracing::warn!(%operation_id, aggregate_id = %env.aggregate_id, "projector: event names an unknown operation");
            return Ok(());
        };
        tx.operations.insert(operation_id, op);
    }
    if let Some(op) = tx.operations.get_mut(&operation_id) {
        change(op);
        if !tx.changed.contains(&operation_id) {
            tx.changed.push(operation_id);
        }
    }
    Ok(())
}

pub struct Projector {
    pool: Pool,
    config: ProjectorConfig,
    consumer: StreamConsumer,
    metrics: ProjectorMetrics,
}

impl Projector {
    pub fn new(pool: Pool, config: ProjectorConfig, metrics: ProjectorMetrics) -> Result<Self, ProjectorError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .create()?;
        consumer.subscribe(&[&config.topic])?;
        Ok(Self { pool, config, consumer, metrics })
    }

    /// Applies a batch of messages in one transaction, with the position of each partition.
    async fn handle(&self, batch: &[BorrowedMessage<'_>]) -> Result<(), ProjectorError> {
        let mut items = Vec::with_capacity(batch.len());
        for msg in batch {
            let parsed = msg.payload().map(|body| {
                serde_json::from_slice::<EventEnvelope>(body)
                    .map_err(|e| e.to_string())
                    .and_then(|e| e.into_current().map_err(|e| e.to_string()))
            });
            let envelope = parsed.and_then(|parsed| match parsed {
                Ok(e) => Some(e),
                Err(e) => {
                    // A message that is not an envelope can never become one; holding the partition for it would
                    // stop every later event. It is logged with its coordinates and passed over.
                    tracing::error!(partition = msg.partition(), offset = msg.offset(), error = %e, "projector: not an event envelope");
                    None
                }
            });
            items.push((msg.topic(), msg.partition(), msg.offset(), envelope));
        }
        let outcomes = apply_batch(&self.pool, &self.config.group_id, &items).await?;
        let now = chrono::Utc::now();
        for (outcome, (_, _, _, envelope)) in outcomes.iter().zip(&items) {
            self.metrics.events.get_or_create(&OutcomeLabels { outcome: outcome.label() }).inc();
            if let (Outcome::Applied, Some(envelope)) = (outcome, envelope) {
                let lag = (now - envelope.occurred_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
                let read_models: &[&'static str] = match envelope.aggregate_type.as_str() {
                    "topic" => &["topics", "operations"],
                    "user" => &["kafka_users", "operations"],
                    "drift" => &["drifts", "operations"],
                    _ => &["clusters", "operations", "brokers"],
                };
                for &read_model in read_models {
                    self.metrics.lag_seconds.get_or_create(&ReadModelLabels { read_model }).set(lag);
                }
                if envelope.event_type.ends_with("Stalled") {
                    let labels = AggregateLabels { aggregate_type: envelope.aggregate_type.clone() };
                    self.metrics.stalled.get_or_create(&labels).inc();
                }
                if let (Some(operation_id), true) =
                    (envelope.operation_id, FINISHING_EVENTS.contains(&envelope.event_type.as_str()))
                {
                    self.observe_finished(operation_id, envelope.occurred_at).await;
                }
            }
        }
        Ok(())
    }

    /// Records the duration and outcome of an operation this event finished (a redelivery is `AlreadyApplied`
    /// and never gets here, so each operation is counted once).
    async fn observe_finished(&self, operation_id: uuid::Uuid, at: chrono::DateTime<chrono::Utc>) {
        let finished = db::finished_operation(&self.pool, operation_id, at).await;
        match finished {
            Ok(Some((kind, outcome, seconds))) => {
                self.metrics.workflows.get_or_create(&WorkflowLabels { kind, outcome }).observe(seconds.max(0.0));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, %operation_id, "projector: reading a finished operation for metrics"),
        }
    }

    /// Consumes until `shutdown` turns true, in batches of whatever has arrived (up to 500 messages) so a burst
    /// costs one transaction, not one per event. A failed apply (Postgres away) is retried for the same batch
    /// with backoff; the offsets do not move past an event that was not applied.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        use futures::StreamExt;
        tracing::info!(topic = %self.config.topic, group = %self.config.group_id, "projector started");
        let mut stream = self.consumer.stream().ready_chunks(500);
        loop {
            let batch = tokio::select! {
                b = stream.next() => b,
                _ = shutdown.changed() => break,
            };
            let Some(batch) = batch else { break };
            let mut messages = Vec::with_capacity(batch.len());
            for m in batch {
                match m {
                    Ok(m) => messages.push(m),
                    Err(e) => tracing::warn!(error = %e, "projector: receive failed"),
                }
            }
            if messages.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.handle(&messages).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, messages = messages.len(), "projector: apply failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            if let Some(last) = messages.last()
                && let Err(e) = self.consumer.commit_consumer_state(CommitMode::Async)
            {
                tracing::debug!(error = %e, offset = last.offset(), "projector: kafka offset commit failed (Postgres holds the position)");
            }
        }
        tracing::info!("projector stopped");
    }
}
