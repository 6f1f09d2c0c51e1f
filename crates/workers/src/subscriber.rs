//! The event subscriber: follows `polaris.events` in its own consumer group and starts the workflow each event
//! calls for. The workflow id is derived from the event (`provision-<cluster id>-<sequence>`) and ids are
//! never reused, so a redelivered event cannot start a second workflow. The offset is committed only after
//! Temporal accepted (or already had) the workflow.

use std::sync::Arc;
use std::time::Duration;

use polaris_domain::EventEnvelope;
use polaris_domain::cluster::ClusterRequested;
use polaris_store::Pool as PgPool;
use polaris_store::commits::PacedCommits;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use temporalio_client::errors::WorkflowStartError;
use temporalio_client::{Client, WorkflowIdReusePolicy, WorkflowStartOptions};
use tokio::sync::watch;

use polaris_domain::ClusterEvent;

use crate::operations::{
    ApplyTopic, DeleteCluster, DeleteTopic, OperationInput, ScaleCluster, TopicInput, UpgradeCluster,
};
use crate::provision::{Cause, ProvisionCluster, ProvisionInput};
use crate::resources::ClusterSpec;
use crate::{WorkerConfig, facts, target};

/// The cause a workflow started by `env` reports under: the request's correlation, the event as causation.
fn cause(env: &EventEnvelope, operation_id: uuid::Uuid) -> Cause {
    Cause { org_id: env.org_id, operation_id, correlation_id: env.correlation_id, causation_id: env.event_id }
}

/// `<kind>-<aggregate id>-<sequence>`: one workflow per triggering event, ever.
pub fn workflow_id(kind: &str, env: &EventEnvelope) -> String {
    format!("{kind}-{}-{}", env.aggregate_id, env.sequence)
}

/// An event whose workflow can never run (its cluster or target is unknown here): retrying cannot help, so the
/// subscriber logs it, counts it and moves on instead of holding up every later event.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unrunnable(pub String);

fn unrunnable(message: String) -> anyhow::Error {
    Unrunnable(message).into()
}

/// What handling an event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    /// A new workflow with this id.
    New(String),
    /// The event had already started this workflow (a redelivery): nothing was started.
    AlreadyStarted(String),
}

pub struct Subscriber {
    pub pool: PgPool,
    pub client: Arc<Client>,
    pub config: WorkerConfig,
}

impl Subscriber {
    /// Starts the workflow an envelope calls for, if any. Ok(None): the event needs no workflow.
    pub async fn handle(&self, env: &EventEnvelope) -> anyhow::Result<Option<Started>> {
        if env.aggregate_type == "topic" {
            return match env.event_type.as_str() {
                "TopicRequested" | "TopicPartitionsIncreased" | "TopicConfigChanged" | "TopicDeletionRequested" => {
                    self.topic(env).await.map(Some)
                }
                _ => Ok(None),
            };
        }
        if env.aggregate_type == "user" {
            return match env.event_type.as_str() {
                "UserRequested"
                | "UserAclsChanged"
                | "UserQuotasChanged"
                | "UserCredentialsRotated"
                | "UserDeletionRequested" => self.user(env).await.map(Some),
                _ => Ok(None),
            };
        }
        if env.aggregate_type == "drift" {
            return match env.event_type.as_str() {
                "DriftRevertRequested" => self.revert_drift(env).await.map(Some),
                _ => Ok(None),
            };
        }
        if env.aggregate_type != "cluster" {
            return Ok(None);
        }
        match env.event_type.as_str() {
            "ClusterRequested" => self.provision(env).await.map(Some),
            "ClusterScaleRequested" | "ClusterUpgradeRequested" | "ClusterDeletionRequested" => {
                self.day2(env).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn start<W: temporalio_common::HasWorkflowDefinition>(
        &self,
        workflow: W,
        input: W::Input,
        id: String,
    ) -> anyhow::Result<Started>
    where
        W::Input: Send,
    {
        let options = WorkflowStartOptions::new(self.config.task_queue.clone(), id.clone())
            .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
            .build();
        let kind = id.split('-').next().unwrap_or_default().to_owned();
        let count = |outcome| {
            self.config.metrics.workflow_starts.get_or_create(&crate::StartLabels { kind: kind.clone(), outcome }).inc()
        };
        match self.client.start_workflow(workflow, input, options).await {
            Ok(_) => {
                count("started");
                tracing::info!(workflow_id = %id, "workflow started");
                Ok(Started::New(id))
            }
            Err(WorkflowStartError::AlreadyStarted { .. }) => {
                count("duplicate");
                tracing::info!(workflow_id = %id, "workflow already started for this event; nothing to do");
                Ok(Started::AlreadyStarted(id))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Scale, upgrade and delete: the cluster as it stood before the request, from the event store.
    async fn day2(&self, env: &EventEnvelope) -> anyhow::Result<Started> {
        let facts = facts::load(&self.pool, env.aggregate_id, env.sequence.saturating_sub(1)).await?;
        let (Some(spec), Some(target_id)) = (facts.spec, facts.target_id) else {
            return Err(unrunnable(format!(
                "cluster {} has no ClusterRequested before sequence {}",
                env.aggregate_id, env.sequence
            )));
        };
        let target = self.target(target_id).await?.ok_or_else(|| {
            unrunnable(format!("target {target_id} of cluster {} is not registered", env.aggregate_id))
        })?;
        let mut input = OperationInput {
            brokers: spec.brokers,
            kafka_version: spec.kafka_version.clone(),
            metadata_version: spec.metadata_version.clone(),
            spec,
            broker_ids: facts.broker_ids,
            target,
            cause: cause(env, env.operation_id.unwrap_or_default()),
            timeout_secs: self.config.ready_timeout.as_secs(),
        };
        let event: ClusterEvent = env.decode()?;
        match event {
            ClusterEvent::ClusterScaleRequested(e) => {
                input.brokers = e.to;
                input.cause.operation_id = e.operation_id.as_uuid();
                self.start(ScaleCluster::run, input, workflow_id("scale", env)).await
            }
            ClusterEvent::ClusterUpgradeRequested(e) => {
                input.kafka_version = e.to;
                input.metadata_version = e.metadata_version_to;
                input.cause.operation_id = e.operation_id.as_uuid();
                self.start(UpgradeCluster::run, input, workflow_id("upgrade", env)).await
            }
            ClusterEvent::ClusterDeletionRequested(e) => {
                input.cause.operation_id = e.operation_id.as_uuid();
                self.start(DeleteCluster::run, input, workflow_id("delete", env)).await
            }
            other => Err(unrunnable(format!("no workflow for {other:?}"))),
        }
    }

    /// A topic change: its KafkaTopic applied (or deleted) in its cluster's namespace, on the cluster's target,
    /// with the topic's state folded from all its events. One workflow per operation: a change that recorded
    /// two events (partitions and config) starts one.
    async fn topic(&self, env: &EventEnvelope) -> anyhow::Result<Started> {
        let topic: polaris_domain::topic::Topic = facts::current(&self.pool, env.aggregate_id).await?;
        let operation_id = env.operation_id.ok_or_else(|| unrunnable("topic event without an operation".to_owned()))?;
        let first = self.first_event(env, "topic").await?;
        let polaris_domain::topic::TopicEvent::TopicRequested(requested) = first.decode()? else {
            return Err(unrunnable(format!("topic {} does not start with TopicRequested", env.aggregate_id)));
        };
        let (cluster, target_id) = self.cluster_of(env, requested.cluster_id).await?;
        let target =
            self.target(target_id).await?.ok_or_else(|| unrunnable(format!("target {target_id} is not registered")))?;
        let name = topic.name.as_ref().map(|n| n.as_str().to_owned()).unwrap_or_default();
        let input = TopicInput {
            cluster,
            target,
            topic_id: env.aggregate_id,
            name,
            partitions: topic.partitions,
            replication_factor: topic.replication_factor,
            config: topic.config.clone(),
            cause: cause(env, operation_id),
            timeout_secs: self.config.ready_timeout.as_secs(),
            deadline_unix_ms: 0,
        };
        let id = |kind: &str| format!("{kind}-{}-{operation_id}", env.aggregate_id);
        if env.event_type == "TopicDeletionRequested" {
            self.start(DeleteTopic::run, input, id("topic_delete")).await
        } else {
            self.start(ApplyTopic::run, input, id("topic")).await
        }
    }

    /// The first stored event of the topic or user `env` is about (it names the cluster).
    async fn first_event(
        &self,
        env: &EventEnvelope,
        aggregate_type: &str,
    ) -> anyhow::Result<polaris_store::StoredEvent> {
        polaris_store::db::events::of_aggregate(&self.pool, aggregate_type, &env.aggregate_id.to_string(), Some(1))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| unrunnable(format!("{aggregate_type} {} is not in the event store", env.aggregate_id)))
    }

    /// The cluster a topic or user belongs to (as its events say now) and its target's id.
    async fn cluster_of(
        &self,
        env: &EventEnvelope,
        cluster_id: polaris_domain::ClusterId,
    ) -> anyhow::Result<(ClusterSpec, uuid::Uuid)> {
        let facts = facts::load(&self.pool, cluster_id.as_uuid(), u64::MAX).await?;
        match (facts.spec, facts.target_id) {
            (Some(cluster), Some(target_id)) => Ok((cluster, target_id)),
            _ => Err(unrunnable(format!(
                "{} {} names cluster {cluster_id} that was never requested",
                env.aggregate_type, env.aggregate_id
            ))),
        }
    }

    /// A drift's revert: the object's recorded state applied again (`RevertDrift`), one workflow per request.
    async fn revert_drift(&self, env: &EventEnvelope) -> anyhow::Result<Started> {
        let e: polaris_domain::drift::DriftRevertRequested = serde_json::from_value(env.payload.clone())?;
        let drift: polaris_domain::drift::Drift = facts::current(&self.pool, env.aggregate_id).await?;
        let object = drift
            .observed
            .map(|o| o.object)
            .ok_or_else(|| unrunnable(format!("drift {} is not open", env.aggregate_id)))?;
        let (_, target_id) = self.cluster_of(env, e.cluster_id).await?;
        let target =
            self.target(target_id).await?.ok_or_else(|| unrunnable(format!("target {target_id} is not registered")))?;
        let input = crate::drift::RevertInput {
            drift_id: env.aggregate_id,
            cluster_id: e.cluster_id.as_uuid(),
            object,
            target,
            cause: cause(env, e.operation_id.as_uuid()),
            by: e.by,
            timeout_secs: self.config.ready_timeout.as_secs(),
            deadline_unix_ms: 0,
        };
        self.start(crate::drift::RevertDrift::run, input, format!("drift_revert-{}", e.operation_id)).await
    }

    /// A Kafka user change: its Secret and KafkaUser applied (or deleted) in its cluster's namespace, with the
    /// user's state folded from all its events. One workflow per operation: a change that recorded two events
    /// (ACLs and quotas) starts one.
    async fn user(&self, env: &EventEnvelope) -> anyhow::Result<Started> {
        let user: polaris_domain::user::KafkaUser = facts::current(&self.pool, env.aggregate_id).await?;
        let operation_id = env.operation_id.ok_or_else(|| unrunnable("user event without an operation".to_owned()))?;
        let first = self.first_event(env, "user").await?;
        let polaris_domain::user::UserEvent::UserRequested(requested) = first.decode()? else {
            return Err(unrunnable(format!("user {} does not start with UserRequested", env.aggregate_id)));
        };
        let (cluster, target_id) = self.cluster_of(env, requested.cluster_id).await?;
        let target =
            self.target(target_id).await?.ok_or_else(|| unrunnable(format!("target {target_id} is not registered")))?;
        let input = crate::users::UserInput {
            cluster,
            target,
            user_id: env.aggregate_id,
            name: requested.name,
            acls: user.acls.clone(),
            quotas: user.quotas.clone(),
            generation: user.generation,
            salt: user.salt.clone(),
            cause: cause(env, operation_id),
            timeout_secs: self.config.ready_timeout.as_secs(),
            deadline_unix_ms: 0,
        };
        let id = |kind: &str| format!("{kind}-{}-{operation_id}", env.aggregate_id);
        if env.event_type == "UserDeletionRequested" {
            self.start(crate::users::DeleteUser::run, input, id("user_delete")).await
        } else {
            self.start(crate::users::ApplyUser::run, input, id("user")).await
        }
    }

    /// A target's connection details; credentials the platform did not install for it make the event unrunnable.
    async fn target(&self, target_id: uuid::Uuid) -> anyhow::Result<Option<target::TargetRef>> {
        target::load(&self.pool, target_id, &self.config.targets)
            .await
            .map_err(|e| if e.downcast_ref::<target::TargetError>().is_some() { unrunnable(e.to_string()) } else { e })
    }

    async fn provision(&self, env: &EventEnvelope) -> anyhow::Result<Started> {
        let e: ClusterRequested = serde_json::from_value(env.payload.clone())?;
        let target = self.target(e.target_id.as_uuid()).await?.ok_or_else(|| {
            unrunnable(format!("target {} of cluster {} is not registered", e.target_id, e.cluster_id))
        })?;
        let input = ProvisionInput {
            spec: ClusterSpec::from_requested(&e),
            target,
            cause: cause(env, e.operation_id.as_uuid()),
            ready_timeout_secs: self.config.ready_timeout.as_secs(),
        };
        self.start(ProvisionCluster::run, input, workflow_id("provision", env)).await
    }

    /// Consumes until `shutdown` turns true, in batches of whatever has arrived (up to 64 messages). A batch's
    /// events are grouped by aggregate: each aggregate's events start their workflows one after another, in
    /// order, and different aggregates' side by side (a start is a round trip to Temporal; one at a time, a burst
    /// after an outage took minutes to drain). The offsets are committed once the whole batch is handled, at most
    /// once a second (`polaris_store::commits`).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        use futures::StreamExt;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.config.kafka_bootstrap)
            .set("group.id", &self.config.subscriber_group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .create()?;
        consumer.subscribe(&[&self.config.events_topic])?;
        tracing::info!(group = %self.config.subscriber_group, "event subscriber started");
        let mut stream = consumer.stream().ready_chunks(64);
        let mut commits = PacedCommits::default();
        let commit = |commits: &mut PacedCommits| {
            if let Err(e) = commits.commit(&consumer) {
                tracing::debug!(error = %e, "subscriber: offset commit failed; the events may come again (harmless)");
            }
        };
        loop {
            let batch = tokio::select! {
                b = stream.next() => b,
                _ = commits.due() => {
                    commit(&mut commits);
                    continue;
                }
                _ = shutdown.changed() => break,
            };
            let Some(batch) = batch else { break };
            let mut groups: Vec<Vec<EventEnvelope>> = Vec::new();
            let mut group_of: std::collections::HashMap<uuid::Uuid, usize> = std::collections::HashMap::new();
            let mut received = 0;
            for msg in batch {
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "subscriber: receive failed");
                        continue;
                    }
                };
                received += 1;
                let Some(env) = decode(&msg) else { continue };
                let group = *group_of.entry(env.aggregate_id).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[group].push(env);
            }
            if received == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let this = &self;
            let handled = futures::future::join_all(groups.iter().map(|events| {
                let mut shutdown = shutdown.clone();
                async move {
                    for env in events {
                        if !this.start_for(env, &mut shutdown).await {
                            return false;
                        }
                    }
                    true
                }
            }))
            .await;
            if handled.contains(&false) {
                return Ok(());
            }
            if commits.handled() {
                commit(&mut commits);
            }
        }
        commit(&mut commits);
        Ok(())
    }

    /// Starts `env`'s workflow, retrying with backoff until Temporal has it or the event is unrunnable; false when
    /// `shutdown` came first.
    async fn start_for(&self, env: &EventEnvelope, shutdown: &mut watch::Receiver<bool>) -> bool {
        let mut backoff = Duration::from_millis(200);
        while let Err(e) = self.handle(env).await {
            if let Some(reason) = e.downcast_ref::<Unrunnable>() {
                tracing::error!(%reason, aggregate_id = %env.aggregate_id, sequence = env.sequence, event_type = %env.event_type, "subscriber: this event's workflow cannot run; skipped");
                let labels = crate::StartLabels { kind: env.event_type.clone(), outcome: "unrunnable" };
                self.config.metrics.workflow_starts.get_or_create(&labels).inc();
                break;
            }
            tracing::warn!(error = %e, aggregate_id = %env.aggregate_id, sequence = env.sequence, "subscriber: starting workflow failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return false,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        true
    }
}

/// A message's envelope, upcast to the current version; `None` (logged) for one this build cannot read.
fn decode(msg: &rdkafka::message::BorrowedMessage<'_>) -> Option<EventEnvelope> {
    msg.payload().and_then(|b| serde_json::from_slice::<EventEnvelope>(b).ok()).and_then(|e| match e.into_current() {
        Ok(e) => Some(e),
        Err(error) => {
            tracing::error!(%error, "subscriber: event cannot be read by this build; skipped");
            None
        }
    })
}
