//! Temporal workers: they react to events by running durable workflows that drive Strimzi resources on the
//! target Kubernetes clusters, and report every step back through the command path.

pub mod drift;
pub mod facts;
pub mod istio;
pub mod kinds;
pub mod monitoring;
pub mod operations;
pub mod ownership;
pub mod provision;
pub mod resources;
pub mod strimzi;
pub mod subscriber;
pub mod target;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use polaris_store::Pool as PgPool;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use tokio::sync::watch;

use crate::operations::{
    ApplyTopic, DeleteCluster, DeleteTopic, OperationActivities, ScaleCluster, TopicActivities, TopicDeleteActivities,
    UpgradeCluster,
};
use crate::provision::{ClusterActivities, ProvisionCluster};
use crate::subscriber::Subscriber;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct StartLabels {
    /// The workflow kind (`provision`, `scale`, ...); for `unrunnable`, the event type.
    pub kind: String,
    /// `started`, `duplicate` (a redelivered event whose workflow already exists) or `unrunnable` (its cluster
    /// or target is unknown here; the event was skipped).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct DriftPassLabels {
    /// `compared` (the cluster was compared with its target) or `skipped` (an operation or a revert is running).
    pub outcome: &'static str,
}

/// Metrics of the worker role.
#[derive(Clone, Debug, Default)]
pub struct WorkerMetrics {
    pub workflow_starts:
        prometheus_client::metrics::family::Family<StartLabels, prometheus_client::metrics::counter::Counter>,
    /// Drift detector passes over one cluster, by outcome.
    pub drift_passes:
        prometheus_client::metrics::family::Family<DriftPassLabels, prometheus_client::metrics::counter::Counter>,
}

impl WorkerMetrics {
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "polaris_workflow_starts",
            "Workflows the event subscriber started, by kind and outcome",
            self.workflow_starts.clone(),
        );
        registry.register(
            "polaris_drift_passes",
            "Drift detector passes over one cluster, by outcome (compared or skipped)",
            self.drift_passes.clone(),
        );
    }
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// `host:port` of the Temporal frontend.
    pub temporal_address: String,
    pub namespace: String,
    pub task_queue: String,
    pub kafka_bootstrap: String,
    pub events_topic: String,
    pub subscriber_group: String,
    /// How long a cluster may take to become Ready before its operation is marked stalled.
    pub ready_timeout: Duration,
    pub metrics: WorkerMetrics,
    /// The command path's metrics (events appended by the workers' reports).
    pub store_metrics: polaris_store::StoreMetrics,
    /// Where targets' kubeconfigs live, and whether one may skip TLS verification.
    pub targets: target::TargetsConfig,
    /// The platform's credentials key: Kafka user passwords are derived from it (`None`: user workflows fail).
    pub credentials: Option<Arc<polaris_domain::credentials::CredentialsKey>>,
    /// How often the drift detector passes over each target; `None`: no detector (nor watches) in this process.
    pub drift_interval: Option<Duration>,
}

pub async fn temporal_client(config: &WorkerConfig) -> anyhow::Result<Client> {
    let url = format!("http://{}", config.temporal_address);
    let conn_opts = ConnectionOptions::new(url.parse::<temporalio_client::Url>()?)
        .identity(format!("polaris-worker@{}", std::process::id()))
        .build();
    let connection = Connection::connect(conn_opts)
        .await
        .with_context(|| format!("connecting to Temporal at {}; ./dev/up starts it", config.temporal_address))?;
    Ok(Client::new(connection, ClientOptions::new(config.namespace.clone()).build())?)
}

/// Runs the Temporal worker and the event subscriber until `shutdown` turns true.
pub async fn run(pool: PgPool, config: WorkerConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let client = temporal_client(&config).await?;
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let direct = polaris_store::DirectPool::beside(&pool);
    let activities = ClusterActivities {
        cqrs: Arc::new(polaris_store::cluster_cqrs(pool.clone(), direct.clone(), config.store_metrics.clone())),
        topics: Arc::new(polaris_store::topic_cqrs(pool.clone(), direct.clone(), config.store_metrics.clone())),
    };
    let detector = Arc::new(drift::Detector {
        pool: pool.clone(),
        drifts: Arc::new(polaris_store::drift_cqrs(pool.clone(), direct.clone(), config.store_metrics.clone())),
        key: config.credentials.clone(),
        targets: config.targets.clone(),
        metrics: config.metrics.clone(),
    });
    let options = WorkerOptions::new(config.task_queue.clone())
        .register_workflow::<ProvisionCluster>()?
        .register_workflow::<ScaleCluster>()?
        .register_workflow::<UpgradeCluster>()?
        .register_workflow::<DeleteCluster>()?
        .register_workflow::<ApplyTopic>()?
        .register_workflow::<DeleteTopic>()?
        .register_workflow::<users::ApplyUser>()?
        .register_workflow::<users::DeleteUser>()?
        .register_workflow::<drift::DriftDetector>()?
        .register_workflow::<drift::RevertDrift>()?
        .register_activities(activities)
        .register_activities(OperationActivities)
        .register_activities(TopicActivities)
        .register_activities(TopicDeleteActivities)
        .register_activities(users::UserActivities {
            users: Arc::new(polaris_store::user_cqrs(pool.clone(), direct.clone(), config.store_metrics.clone())),
            key: config.credentials.clone(),
        })
        .register_activities(drift::DriftActivities { detector: detector.clone() })
        .build();
    let mut worker = Worker::new(&runtime, client.clone(), options)?;
    let client = Arc::new(client);
    if let Some(interval) = config.drift_interval {
        tokio::spawn(drift_schedules(detector, client.clone(), config.clone(), interval, shutdown.clone()));
    }
    let subscriber = Subscriber { pool, client, config: config.clone() };
    let mut sub_shutdown = shutdown.clone();
    let sub = tokio::spawn(async move {
        if let Err(e) = subscriber.run(sub_shutdown.clone()).await {
            tracing::error!(error = %e, "event subscriber stopped");
        }
        let _ = sub_shutdown.wait_for(|s| *s).await;
    });
    tracing::info!(task_queue = %config.task_queue, "temporal worker started");
    let mut stop = shutdown.clone();
    tokio::select! {
        r = worker.run() => r?,
        _ = stop.wait_for(|s| *s) => {}
    }
    let _ = sub.await;
    Ok(())
}

/// Keeps one detector workflow running per registered target (a target registered later gets its own within two
/// intervals, at most a minute), and a watch per target in this process.
async fn drift_schedules(
    detector: Arc<drift::Detector>,
    client: Arc<Client>,
    config: WorkerConfig,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut watched = std::collections::BTreeSet::new();
    loop {
        match polaris_store::db::targets::list(&detector.pool, None).await {
            Ok(targets) => {
                for t in targets {
                    let options = temporalio_client::WorkflowStartOptions::new(
                        config.task_queue.clone(),
                        format!("drift-detector-{}-{}", config.task_queue, t.id),
                    )
                    .id_reuse_policy(temporalio_client::WorkflowIdReusePolicy::AllowDuplicate)
                    .build();
                    let input = drift::DetectorInput { target_id: t.id, interval_secs: interval.as_secs().max(1) };
                    match client.start_workflow(drift::DriftDetector::run, input, options).await {
                        Ok(_) => tracing::info!(target = %t.name, "drift detector started"),
                        Err(temporalio_client::errors::WorkflowStartError::AlreadyStarted { .. }) => {}
                        Err(e) => tracing::warn!(target = %t.name, error = %e, "starting the drift detector"),
                    }
                    if watched.insert(t.id) {
                        match target::load(&detector.pool, t.id, &config.targets).await {
                            Ok(Some(target_ref)) => {
                                let (d, stop) = (detector.clone(), shutdown.clone());
                                tokio::spawn(async move {
                                    if let Err(e) = drift::watch_target(d, target_ref, stop).await {
                                        tracing::warn!(error = %e, "drift watch stopped");
                                    }
                                });
                            }
                            Ok(None) => {}
                            Err(e) => tracing::warn!(target = %t.name, error = %e, "no drift watch"),
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing targets for the drift detector"),
        }
        tokio::select! {
            _ = tokio::time::sleep((interval * 2).clamp(Duration::from_secs(2), Duration::from_secs(60))) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
