//! The projector: follows `polaris.events` in a consumer group and turns events into read models
//! (`clusters`, `operations`).
//!
//! Each message is applied in one PostgreSQL transaction together with the projector's position
//! (`projector_offsets`), so the read model and the record of how far it got can never disagree. Delivery is
//! at-least-once (the relay may republish, Kafka may redeliver after a rebalance or crash), so every change is
//! guarded by the aggregate's last applied sequence: an event at or below it is acknowledged and ignored.
//! The Kafka group offset is committed after the Postgres transaction, at most once a second
//! (`polaris_store::commits`); what comes again after a restart or a lost commit is ignored.

pub mod replay;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use polaris_domain::EventEnvelope;
use polaris_domain::cluster::ClusterStatus;
use polaris_domain::cluster::ClusterStatus as S;
use polaris_domain::cluster::{ClusterEvent, ClusterRequested, ClusterStalled, OperationFailed};
use polaris_domain::drift::{DriftEvent, DriftResolution};
use polaris_domain::lifecycle::{OperationState as OpState, StepState, TopicStatus as T};
use polaris_domain::topic::{TopicEvent, TopicRequested};
use polaris_domain::user::{UserEvent, UserRequested};
use polaris_store::commits::PacedCommits;
use polaris_store::db::projection::{
    self as db, ClusterChange, ClusterFold, MemberFold, Members, NodesFold, OperationProgress, TopicChange, TopicFold,
    UserChange, UserFold,
};
use polaris_store::{Connection, DbError, Pool};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use tokio::sync::watch;
use uuid::Uuid;

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

/// What applying a batch did: each message's outcome, and the operations its events finished.
#[derive(Debug, Default)]
pub struct Applied {
    pub outcomes: Vec<Outcome>,
    pub finished: Vec<Finished>,
}

/// An operation an event of the batch finished: its kind, final state, and how long it took.
#[derive(Clone, Debug)]
pub struct Finished {
    pub kind: String,
    pub state: String,
    pub seconds: f64,
}

/// Applies a batch (`(topic, partition, offset, envelope)`; `None` for a message that is not an envelope) and
/// records each partition's position, in one transaction.
pub async fn apply_batch(
    pool: &Pool,
    group: &str,
    batch: &[(&str, i32, i64, Option<EventEnvelope>)],
) -> Result<Applied, ProjectorError> {
    let mut tx = pool.begin().await?;
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for (topic, partition, offset, _) in batch {
        let entry = next.entry((topic, *partition)).or_insert(offset + 1);
        *entry = (*entry).max(offset + 1);
    }
    let mut applier = Batch::new(&mut tx);
    let envelopes: Vec<&EventEnvelope> = batch.iter().filter_map(|(_, _, _, e)| e.as_ref()).collect();
    let mut applied = applier.apply_all(&envelopes).await?.into_iter();
    let outcomes = batch
        .iter()
        .map(|(_, _, _, e)| match e {
            Some(_) => applied.next().unwrap_or(Outcome::Skipped),
            None => Outcome::Skipped,
        })
        .collect();
    let finished = applier.flush().await?;
    let next: Vec<_> = next.into_iter().map(|((topic, partition), offset)| (topic, partition, offset)).collect();
    db::record_offsets(&mut tx, group, &next).await?;
    tx.commit().await?;
    Ok(Applied { outcomes, finished })
}

/// A batch of events applied in one transaction, with the rows they change held in memory. Every row the batch
/// names is read (and locked) once: those its events name are read up front with one statement per table, and
/// any other (a topic's cluster's operation, say) when an event first needs it. Each event folds its rows in
/// commit order, and [`Batch::flush`] writes them back with one statement per table, which the caller runs before
/// it commits. Replay and the live projector run this same code on batches of any size; a batch of one event is
/// the per-event path.
pub struct Batch<'c> {
    conn: &'c mut Connection,
    /// Each row read, or `None` when it does not exist.
    clusters: BTreeMap<Uuid, Option<ClusterFold>>,
    topics: BTreeMap<Uuid, Option<TopicFold>>,
    users: BTreeMap<Uuid, Option<UserFold>>,
    operations: BTreeMap<Uuid, Option<OperationProgress>>,
    /// The rows the batch creates (written by the flush's inserts, before its updates).
    new_clusters: Vec<(db::At, ClusterRequested)>,
    new_topics: Vec<(db::At, TopicRequested)>,
    new_users: Vec<(db::At, UserRequested)>,
    new_operations: Vec<OperationStart>,
    /// The operations the batch changed, and those of them it finished.
    changed_operations: BTreeSet<Uuid>,
    finished: BTreeSet<Uuid>,
    /// The clusters whose node rows the batch replaces.
    nodes: BTreeMap<Uuid, NodesFold>,
    /// Whether the batch holds `db::share_cluster_creation` (until its transaction ends).
    shares_creation: bool,
}

impl<'c> Batch<'c> {
    pub fn new(conn: &'c mut Connection) -> Self {
        Self {
            conn,
            clusters: BTreeMap::new(),
            topics: BTreeMap::new(),
            users: BTreeMap::new(),
            operations: BTreeMap::new(),
            new_clusters: Vec::new(),
            new_topics: Vec::new(),
            new_users: Vec::new(),
            new_operations: Vec::new(),
            changed_operations: BTreeSet::new(),
            finished: BTreeSet::new(),
            nodes: BTreeMap::new(),
            shares_creation: false,
        }
    }

    /// Applies the envelopes in order, after reading every row they name.
    pub async fn apply_all(&mut self, envelopes: &[&EventEnvelope]) -> Result<Vec<Outcome>, ProjectorError> {
        let (mut clusters, mut topics, mut users, mut operations) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut created, mut followed) = (BTreeSet::new(), BTreeSet::new());
        for env in envelopes {
            match env.aggregate_type.as_str() {
                "cluster" => clusters.push(env.aggregate_id),
                "topic" => topics.push(env.aggregate_id),
                "user" => users.push(env.aggregate_id),
                _ => {}
            }
            match env.event_type.as_str() {
                "ClusterRequested" => {
                    created.insert(env.aggregate_id);
                }
                // A request reads its cluster's row (see `follow_cluster`).
                "TopicRequested" | "UserRequested" => followed.extend(
                    env.payload.get("cluster_id").and_then(|v| v.as_str()).and_then(|v| v.parse::<Uuid>().ok()),
                ),
                _ => {}
            }
            let named = env.payload.get("operation_id").and_then(|v| v.as_str()).and_then(|v| v.parse().ok());
            operations.extend(env.operation_id.into_iter().chain(named));
        }
        clusters.extend(followed.iter().copied());
        self.load_clusters(clusters).await?;
        self.await_unseen_clusters(followed, &created).await?;
        self.load_members(Members::Topics, topics).await?;
        self.load_members(Members::Users, users).await?;
        self.load_operations(operations).await?;
        let mut outcomes = Vec::with_capacity(envelopes.len());
        for env in envelopes {
            outcomes.push(apply_envelope(self, env).await?);
        }
        Ok(outcomes)
    }

    /// Writes every row the batch created or changed (one statement per table), so the transaction holds them,
    /// and answers the operations it finished.
    pub async fn flush(&mut self) -> Result<Vec<Finished>, ProjectorError> {
        let conn = &mut *self.conn;
        // A row the batch created is inserted as the batch left it (its fold is in memory from its first event),
        // and saved only if the insert found it there already.
        let new: Vec<_> =
            self.new_clusters.iter().filter_map(|(at, e)| Some((*at, e, fold(&self.clusters, at)?))).collect();
        let inserted = db::insert_clusters(conn, &new).await?;
        db::save_clusters(conn, &not_in(changed(&self.clusters, ClusterFold::changed), &inserted)).await?;
        let new: Vec<_> =
            self.new_topics.iter().filter_map(|(at, e)| Some((*at, e, fold(&self.topics, at)?))).collect();
        let inserted = db::insert_topics(conn, &new).await?;
        db::save_topics(conn, &not_in(changed(&self.topics, |t| t.member.changed), &inserted)).await?;
        let new: Vec<_> = self.new_users.iter().filter_map(|(at, e)| Some((*at, e, fold(&self.users, at)?))).collect();
        let inserted = db::insert_users(conn, &new).await?;
        db::save_users(conn, &not_in(changed(&self.users, |u| u.member.changed), &inserted)).await?;
        let operation = |id: &Uuid| self.operations.get(id).and_then(Option::as_ref).map(|op| (*id, op));
        let new: Vec<_> =
            self.new_operations.iter().filter_map(|start| Some((start, operation(&start.id)?.1))).collect();
        let inserted = OperationStart::insert_all(conn, &new).await?;
        let operations: Vec<_> = self.changed_operations.iter().filter_map(operation).collect();
        db::save_operations(conn, &not_in(operations, &inserted)).await?;
        db::save_nodes(conn, &self.nodes.iter().map(|(id, n)| (*id, n)).collect::<Vec<_>>()).await?;
        let finished = self
            .finished
            .iter()
            .filter_map(operation)
            .filter_map(|(_, op)| {
                let seconds = (op.finished_at? - op.started_at).num_microseconds()? as f64 / 1e6;
                Some(Finished { kind: op.kind.clone(), state: op.state.clone(), seconds })
            })
            .collect();
        self.clear();
        Ok(finished)
    }

    /// Forgets every row (after the flush wrote them).
    fn clear(&mut self) {
        self.clusters.clear();
        self.topics.clear();
        self.users.clear();
        self.operations.clear();
        self.new_clusters.clear();
        self.new_topics.clear();
        self.new_users.clear();
        self.new_operations.clear();
        self.changed_operations.clear();
        self.finished.clear();
        self.nodes.clear();
    }

    async fn load_clusters(&mut self, ids: Vec<Uuid>) -> Result<(), ProjectorError> {
        let ids = unread(&self.clusters, ids);
        if ids.is_empty() {
            return Ok(());
        }
        let found: BTreeMap<Uuid, _> =
            db::lock_clusters(&mut *self.conn, &ids).await?.into_iter().map(|(id, v, d)| (id, (v, d))).collect();
        for id in ids {
            let fold =
                found.get(&id).map(|&(version, deleted_at)| ClusterFold { version, deleted_at, ..Default::default() });
            self.clusters.insert(id, fold);
        }
        Ok(())
    }

    /// A topic's or user's request whose cluster row is not there, and not created by this batch: the cluster's
    /// events are on another partition, and a batch of another projector process may be creating and deleting
    /// that row right now, unseen by this one (after an outage, a batch can hold a cluster's whole life). Waits
    /// for such a batch to commit, then reads the row again: either it is there now, with its deletion, or the
    /// cascade of any batch that creates and deletes it waits until this one commits, and sees the member's row
    /// (`delete_members_of`). Without it, the member would stay alive. A row another batch only creates needs
    /// no wait: the member is alive then, and a later batch's cascade finds it.
    async fn await_unseen_clusters(
        &mut self,
        followed: BTreeSet<Uuid>,
        created: &BTreeSet<Uuid>,
    ) -> Result<(), ProjectorError> {
        let unseen: Vec<Uuid> = followed
            .into_iter()
            .filter(|id| !created.contains(id) && self.clusters.get(id).is_some_and(Option::is_none))
            .collect();
        if unseen.is_empty() {
            return Ok(());
        }
        db::await_cluster_creations(&mut *self.conn).await?;
        for id in &unseen {
            self.clusters.remove(id);
        }
        self.load_clusters(unseen).await
    }

    async fn load_members(&mut self, table: Members, ids: Vec<Uuid>) -> Result<(), ProjectorError> {
        let ids = match table {
            Members::Topics => unread(&self.topics, ids),
            Members::Users => unread(&self.users, ids),
        };
        if ids.is_empty() {
            return Ok(());
        }
        let mut found: BTreeMap<Uuid, MemberFold> =
            db::lock_members(&mut *self.conn, table, &ids).await?.into_iter().collect();
        for id in ids {
            let member = found.remove(&id);
            if table == Members::Topics {
                self.topics.insert(id, member.map(TopicFold::from));
            } else {
                self.users.insert(id, member.map(UserFold::from));
            }
        }
        Ok(())
    }

    async fn load_operations(&mut self, ids: Vec<Uuid>) -> Result<(), ProjectorError> {
        let ids = unread(&self.operations, ids);
        if ids.is_empty() {
            return Ok(());
        }
        let mut found: BTreeMap<Uuid, OperationProgress> =
            db::lock_operations(&mut *self.conn, &ids).await?.into_iter().collect();
        for id in ids {
            let op = found.remove(&id);
            self.operations.insert(id, op);
        }
        Ok(())
    }

    async fn cluster(&mut self, id: Uuid) -> Result<Option<&mut ClusterFold>, ProjectorError> {
        self.load_clusters(vec![id]).await?;
        Ok(self.clusters.get_mut(&id).and_then(Option::as_mut))
    }

    async fn topic(&mut self, id: Uuid) -> Result<Option<&mut TopicFold>, ProjectorError> {
        self.load_members(Members::Topics, vec![id]).await?;
        Ok(self.topics.get_mut(&id).and_then(Option::as_mut))
    }

    async fn user(&mut self, id: Uuid) -> Result<Option<&mut UserFold>, ProjectorError> {
        self.load_members(Members::Users, vec![id]).await?;
        Ok(self.users.get_mut(&id).and_then(Option::as_mut))
    }

    /// The cluster's topics and users are deleted with it: those in memory here, the others in the database. When
    /// this batch also created the cluster's row, a member's batch in another process cannot have seen that row:
    /// the cascade then waits for any such batch (`await_unseen_clusters`) to commit, so that it sees its member.
    async fn delete_members_of(
        &mut self,
        cluster: Uuid,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ProjectorError> {
        if !self.shares_creation && self.new_clusters.iter().any(|(_, e)| e.cluster_id.as_uuid() == cluster) {
            db::share_cluster_creation(&mut *self.conn).await?;
            self.shares_creation = true;
        }
        for table in [Members::Topics, Members::Users] {
            db::delete_members_of(&mut *self.conn, table, cluster, at).await?;
        }
        let topics = self.topics.values_mut().flatten().map(|t| &mut t.member);
        for member in topics.chain(self.users.values_mut().flatten().map(|u| &mut u.member)) {
            if member.cluster_id == cluster {
                member.cluster_deleted(at);
            }
        }
        Ok(())
    }
}

/// The rows of `read` that exist and that `is_changed` says the batch changed.
fn changed<V>(read: &BTreeMap<Uuid, Option<V>>, is_changed: impl Fn(&V) -> bool) -> Vec<(Uuid, &V)> {
    read.iter().filter_map(|(id, row)| row.as_ref().filter(|r| is_changed(r)).map(|r| (*id, r))).collect()
}

/// The fold of the row the batch created at `at` (put in memory by the event that created it).
fn fold<'a, V>(read: &'a BTreeMap<Uuid, Option<V>>, at: &db::At) -> Option<&'a V> {
    read.get(&at.id).and_then(Option::as_ref)
}

/// The rows not among `inserted` (those the flush's inserts wrote as folded need no update).
fn not_in<V>(rows: Vec<(Uuid, V)>, inserted: &BTreeSet<Uuid>) -> Vec<(Uuid, V)> {
    rows.into_iter().filter(|(id, _)| !inserted.contains(id)).collect()
}

/// The ids a batch has not read yet, each once (sorted: rows are locked in one order).
fn unread<V>(read: &BTreeMap<Uuid, V>, mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.retain(|id| !read.contains_key(id));
    ids.sort_unstable();
    ids.dedup();
    ids
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
    let applied = apply_batch(pool, group, &[(topic, partition, offset, Some(envelope.clone()))]).await?;
    Ok(applied.outcomes.first().copied().unwrap_or(Outcome::Skipped))
}

/// Applies an envelope to the read models inside the caller's transaction. The envelope is decoded to its
/// aggregate's event enum and matched exhaustively: an event type added to the domain does not compile until the
/// projector says what it does to the read models. Only an event this build does not know at all (written by a
/// newer one) is skipped.
async fn apply_envelope(tx: &mut Batch<'_>, env: &EventEnvelope) -> Result<Outcome, ProjectorError> {
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
            tx.nodes.insert(
                env.aggregate_id,
                NodesFold { brokers: Some(e.broker_ids.clone()), controllers: Some(e.controller_ids.clone()) },
            );
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
            set_brokers(tx, env.aggregate_id, &e.broker_ids);
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
            set_brokers(tx, env.aggregate_id, &e.broker_ids);
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
            tx.nodes.insert(env.aggregate_id, NodesFold { brokers: Some(vec![]), controllers: Some(vec![]) });
            tx.delete_members_of(env.aggregate_id, env.occurred_at).await?;
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
            if tx.topic(env.aggregate_id).await?.is_some() {
                return Ok(Outcome::AlreadyApplied);
            }
            let mut topic = TopicFold::created(&e, at(env));
            follow_cluster(tx, &mut topic.member).await?;
            tx.topics.insert(env.aggregate_id, Some(topic));
            tx.new_topics.push((at(env), e));
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
            if tx.user(env.aggregate_id).await?.is_some() {
                return Ok(Outcome::AlreadyApplied);
            }
            let mut user = UserFold::created(&e, at(env));
            follow_cluster(tx, &mut user.member).await?;
            tx.users.insert(env.aggregate_id, Some(user));
            tx.new_users.push((at(env), e));
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

/// A topic or user requested on a cluster that is already deleted here is created deleted, as of the later of
/// the two times: what the cluster's cascade (`delete_members_of`) leaves on a row that existed. Live, the
/// member's and the cluster's events travel on different partitions and arrive in either order; a replay meets
/// them in commit order. The cluster's row is locked, so a concurrent batch deleting it either waits for this
/// row or is seen.
async fn follow_cluster(tx: &mut Batch<'_>, member: &mut MemberFold) -> Result<(), ProjectorError> {
    if let Some(deleted_at) = tx.cluster(member.cluster_id).await?.and_then(|c| c.deleted_at) {
        member.cluster_deleted(deleted_at);
    }
    Ok(())
}

/// Moves the user's row to this event's sequence with `change`; false when it is already there.
async fn advance_user(
    tx: &mut Batch<'_>,
    env: &EventEnvelope,
    change: &UserChange<'_>,
) -> Result<bool, ProjectorError> {
    Ok(tx.user(env.aggregate_id).await?.is_some_and(|user| user.advance(at(env), change)))
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
    let cluster = tx.user(env.aggregate_id).await?.map(|user| user.member.cluster_id);
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
    Ok(tx.topic(env.aggregate_id).await?.is_some_and(|topic| topic.advance(at(env), change)))
}

/// The operation a topic change starts, with its one step running, for the topic's cluster.
async fn topic_operation(tx: &mut Batch<'_>, env: &EventEnvelope) -> Result<(), ProjectorError> {
    let cluster = tx.topic(env.aggregate_id).await?.map(|topic| topic.member.cluster_id);
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
fn set_brokers(tx: &mut Batch<'_>, cluster_id: uuid::Uuid, broker_ids: &[i32]) {
    tx.nodes.entry(cluster_id).or_default().brokers = Some(broker_ids.to_vec());
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
    Ok(tx.cluster(env.aggregate_id).await?.is_some_and(|cluster| cluster.advance(at(env), change)))
}

async fn cluster_requested(
    tx: &mut Batch<'_>,
    env: &EventEnvelope,
    e: ClusterRequested,
) -> Result<Outcome, ProjectorError> {
    if tx.cluster(env.aggregate_id).await?.is_some() {
        return Ok(Outcome::AlreadyApplied);
    }
    tx.clusters.insert(env.aggregate_id, Some(ClusterFold { version: at(env).sequence, ..Default::default() }));
    tx.new_clusters.push((at(env), e));
    start_operation_row(tx, env, || None).await?;
    Ok(Outcome::Applied)
}

/// The operation `env` starts, as the event store also writes it in the command's transaction (one definition).
async fn start_operation_row(
    tx: &mut Batch<'_>,
    env: &EventEnvelope,
    topic_cluster: impl FnOnce() -> Option<uuid::Uuid>,
) -> Result<(), ProjectorError> {
    let Some(op) = OperationStart::of(env, topic_cluster) else { return Ok(()) };
    // The event store wrote the row in the command's transaction, unless this is a replay: the row it wrote
    // stays, as an insert's `ON CONFLICT DO NOTHING` would leave it.
    tx.load_operations(vec![op.id]).await?;
    if tx.operations.get(&op.id).is_some_and(Option::is_none) {
        tx.operations.insert(op.id, Some(op.progress()));
        tx.new_operations.push(op);
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
    tx.load_operations(vec![operation_id]).await?;
    let Some(op) = tx.operations.get_mut(&operation_id).and_then(Option::as_mut) else {
        tracing::warn!(%operation_id, aggregate_id = %env.aggregate_id, "projector: event names an unknown operation");
        return Ok(());
    };
    let finished_before = op.finished_at;
    change(op);
    if op.finished_at.is_some() && op.finished_at != finished_before {
        tx.finished.insert(operation_id);
    }
    tx.changed_operations.insert(operation_id);
    Ok(())
}

/// The most messages one transaction applies. A backlog (a projector restarted behind, a new read model) is
/// applied in batches this large: each batch costs about fifteen statements whatever its size.
const BATCH_MAX: usize = 2000;

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
        let applied = apply_batch(&self.pool, &self.config.group_id, &items).await?;
        let now = chrono::Utc::now();
        for (outcome, (_, _, _, envelope)) in applied.outcomes.iter().zip(&items) {
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
            }
        }
        // Each operation the batch finished, once (a redelivery finds it finished and changes nothing).
        for Finished { kind, state, seconds } in applied.finished {
            self.metrics.workflows.get_or_create(&WorkflowLabels { kind, outcome: state }).observe(seconds.max(0.0));
        }
        Ok(())
    }

    /// Consumes until `shutdown` turns true, in batches of whatever has arrived (up to [`BATCH_MAX`] messages) so a burst
    /// costs one transaction, not one per event. A failed apply (Postgres away) is retried for the same batch
    /// with backoff; the offsets do not move past an event that was not applied.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        use futures::StreamExt;
        tracing::info!(topic = %self.config.topic, group = %self.config.group_id, "projector started");
        let mut stream = self.consumer.stream().ready_chunks(BATCH_MAX);
        let mut commits = PacedCommits::default();
        loop {
            let batch = tokio::select! {
                b = stream.next() => b,
                _ = commits.due() => {
                    self.commit_kafka_offsets(&mut commits);
                    continue;
                }
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
            if commits.handled() {
                self.commit_kafka_offsets(&mut commits);
            }
        }
        self.commit_kafka_offsets(&mut commits);
        tracing::info!("projector stopped");
    }

    fn commit_kafka_offsets(&self, commits: &mut PacedCommits) {
        if let Err(e) = commits.commit(&self.consumer) {
            tracing::debug!(error = %e, "projector: kafka offset commit failed (Postgres holds the position)");
        }
    }
}
