//! Wiring for `polaris-server`: configuration, the roles, and the probes `/readyz` uses. Kept in a library so
//! the end-to-end tests start exactly what the binary starts.

mod prometheus;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use polaris_api::{ApiMetrics, AppState, AppStateInner, DependencyProbe};
use polaris_app::App;
use polaris_app::ratelimit::RateLimiter;
use polaris_projector::{Projector, ProjectorConfig, ProjectorMetrics};
use polaris_store::Pool as PgPool;
use polaris_store::relay::RelayMetrics;
use polaris_store::{Relay, RelayConfig};
use prometheus_client::registry::Registry;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Api,
    Relay,
    Projector,
    Worker,
}

#[derive(Clone, Debug, clap::Args)]
pub struct Settings {
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub kafka_bootstrap: String,
    /// The bootstrap topic every event is published to.
    #[arg(long, env = "POLARIS_EVENTS_TOPIC", default_value = "polaris.events")]
    pub events_topic: String,
    #[arg(long, env = "POLARIS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[arg(long, env = "POLARIS_PROJECTOR_GROUP", default_value = "polaris-projector")]
    pub projector_group: String,
    #[arg(long, env = "POLARIS_RELAY_NAME", default_value = "default")]
    pub relay_name: String,
    /// `host:port` of the Temporal frontend.
    #[arg(long, env = "TEMPORAL_ADDRESS", default_value = "127.0.0.1:7233")]
    pub temporal_address: String,
    #[arg(long, env = "TEMPORAL_NAMESPACE", default_value = "default")]
    pub temporal_namespace: String,
    #[arg(long, env = "POLARIS_TASK_QUEUE", default_value = "polaris-workers")]
    pub task_queue: String,
    #[arg(long, env = "POLARIS_WORKER_GROUP", default_value = "polaris-workers")]
    pub worker_group: String,
    /// Seconds a cluster may take to become Ready before its operation is marked stalled.
    #[arg(long, env = "POLARIS_READY_TIMEOUT_SECS", default_value_t = 600)]
    pub ready_timeout_secs: u64,
    /// API requests per second each token may make on average (bursts of twice that), across all API replicas.
    #[arg(long, env = "POLARIS_RATE_LIMIT_PER_SEC", default_value_t = 1000)]
    pub rate_limit_per_sec: u32,
    /// Requests per second a client address may make without a valid token (bursts of twice that), across all API
    /// replicas.
    #[arg(long, env = "POLARIS_UNAUTHENTICATED_RATE_PER_SEC", default_value_t = 20)]
    pub unauthenticated_rate_per_sec: u32,
    /// How many API replicas share the limits: each enforces its share (the Helm chart sets it from `api.replicas`).
    #[arg(long, env = "POLARIS_API_REPLICAS", default_value_t = 1)]
    pub api_replicas: u32,
    /// The dashboard's built assets, served at `/` by the API role (absent: the API serves only itself).
    #[arg(long, env = "POLARIS_DASHBOARD_DIR", default_value = "dashboard/dist")]
    pub dashboard_dir: std::path::PathBuf,
    /// The directory targets' kubeconfigs live in; a target's registered path is relative to it and never leaves it.
    #[arg(long, env = "POLARIS_TARGETS_DIR", default_value = "/etc/polaris/targets")]
    pub targets_dir: std::path::PathBuf,
    /// Development mode: accept target kubeconfigs that skip TLS verification (`insecure-skip-tls-verify`).
    #[arg(long, env = "POLARIS_DEVELOPMENT", default_value_t = false)]
    pub development: bool,
    /// The Prometheus that scrapes the managed brokers (its HTTP API), for the charts on a cluster's page.
    #[arg(long, env = "POLARIS_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// A file holding the platform's credentials key (at least 32 bytes): Kafka user passwords are derived from
    /// it by the api role (to answer them once) and the worker role (to write them into the users' Secrets).
    /// Without it, Kafka users cannot be created.
    #[arg(long, env = "POLARIS_CREDENTIALS_KEY_FILE")]
    pub credentials_key_file: Option<std::path::PathBuf>,
    /// Seconds between two passes of the drift detector over each target (the worker role); 0 turns the
    /// detector and its watches off.
    #[arg(long, env = "POLARIS_DRIFT_INTERVAL_SECS", default_value_t = 60)]
    pub drift_interval_secs: u64,
}

impl Settings {
    /// The worker role's configuration; its metrics are not registered anywhere (see `Server::worker_config`).
    pub fn worker_config(&self) -> polaris_workers::WorkerConfig {
        polaris_workers::WorkerConfig {
            temporal_address: self.temporal_address.clone(),
            namespace: self.temporal_namespace.clone(),
            task_queue: self.task_queue.clone(),
            kafka_bootstrap: self.kafka_bootstrap.clone(),
            events_topic: self.events_topic.clone(),
            subscriber_group: self.worker_group.clone(),
            ready_timeout: Duration::from_secs(self.ready_timeout_secs),
            metrics: polaris_workers::WorkerMetrics::default(),
            store_metrics: polaris_store::StoreMetrics::default(),
            targets: polaris_workers::target::TargetsConfig {
                dir: self.targets_dir.clone(),
                allow_insecure: self.development,
            },
            credentials: None,
            drift_interval: (self.drift_interval_secs > 0).then(|| Duration::from_secs(self.drift_interval_secs)),
        }
    }
}

/// Checks that the Kafka cluster answers a metadata request for the events topic.
pub struct KafkaProbe {
    consumer: BaseConsumer,
    topic: String,
}

impl KafkaProbe {
    pub fn new(bootstrap: &str, topic: &str) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
        Ok(Self { consumer, topic: topic.to_owned() })
    }
}

impl DependencyProbe for KafkaProbe {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| {
                let md = self
                    .consumer
                    .fetch_metadata(Some(&self.topic), Duration::from_secs(2))
                    .map_err(|e| e.to_string())?;
                match md.topics().first() {
                    Some(t) if t.error().is_none() => Ok(()),
                    Some(t) => Err(format!("topic {}: {:?}", self.topic, t.error())),
                    None => Err(format!("topic {} not found", self.topic)),
                }
            })
        })
    }
}

/// `POST /v1/admin/replay`: one replay at a time, with the projector's own code, settling for at most 30 s.
struct Replayer {
    pool: PgPool,
    running: tokio::sync::Mutex<()>,
}

impl polaris_api::admin::ReplayRunner for Replayer {
    fn replay(&self) -> polaris_api::admin::ReplayOutcome<'_> {
        Box::pin(async move {
            let Ok(_guard) = self.running.try_lock() else { return Ok(None) };
            let options = polaris_projector::replay::ReplayOptions {
                settle_timeout: Duration::from_secs(30),
                ..Default::default()
            };
            let report =
                polaris_projector::replay::replay(&self.pool, &options, |_, _| {}).await.map_err(|e| e.to_string())?;
            let value = serde_json::to_value(&report).map_err(|e| e.to_string())?;
            Ok(Some((report.identical, value)))
        })
    }
}

/// Everything a running server holds.
pub struct Server {
    pub pool: PgPool,
    pub settings: Settings,
    pub registry: Arc<Registry>,
    pub api_metrics: ApiMetrics,
    pub relay_metrics: RelayMetrics,
    pub projector_metrics: ProjectorMetrics,
    pub worker_metrics: polaris_workers::WorkerMetrics,
    pub store_metrics: polaris_store::StoreMetrics,
    pub credentials: Option<Arc<polaris_domain::credentials::CredentialsKey>>,
    /// Published policy bundles by (org, version), for every door of this process.
    pub policy_bundles: Arc<polaris_app::policies::BundleCache>,
    pub placements: Arc<polaris_app::targets::PlacementCache>,
    /// Token lookups, shared like the bundles and placements.
    pub bearers: Arc<polaris_app::caller::BearerCache>,
}

/// The credentials key from its file, if one is configured.
fn credentials_key(
    path: Option<&std::path::Path>,
) -> anyhow::Result<Option<Arc<polaris_domain::credentials::CredentialsKey>>> {
    let Some(path) = path else { return Ok(None) };
    let raw = std::fs::read(path).with_context(|| format!("reading the credentials key {}", path.display()))?;
    let key = polaris_domain::credentials::CredentialsKey::from_bytes(&raw)
        .with_context(|| format!("the credentials key {}", path.display()))?;
    Ok(Some(Arc::new(key)))
}

impl Server {
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let pool = polaris_store::connect(&settings.database_url, 20)
            .await
            .with_context(|| "connecting to PostgreSQL (DATABASE_URL); is it running? ./dev/up starts it")?;
        polaris_store::MIGRATOR.run(&pool).await.context("applying migrations")?;
        let credentials = credentials_key(settings.credentials_key_file.as_deref())?;
        let mut registry = Registry::default();
        let api_metrics = ApiMetrics::default();
        let relay_metrics = RelayMetrics::new();
        let projector_metrics = ProjectorMetrics::default();
        let worker_metrics = polaris_workers::WorkerMetrics::default();
        worker_metrics.register(&mut registry);
        let store_metrics = polaris_store::StoreMetrics::default();
        store_metrics.register(&mut registry);
        api_metrics.register(&mut registry);
        relay_metrics.register(&mut registry);
        projector_metrics.register(&mut registry);
        Ok(Self {
            pool,
            settings,
            registry: Arc::new(registry),
            api_metrics,
            relay_metrics,
            projector_metrics,
            worker_metrics,
            store_metrics,
            credentials,
            policy_bundles: Arc::default(),
            placements: Arc::default(),
            bearers: Arc::default(),
        })
    }

    /// The application layer, shared by the REST and gRPC doors of this process (one rate limit, one set of
    /// command metrics).
    pub fn app(&self) -> App {
        let direct = polaris_store::DirectPool::beside(&self.pool);
        App {
            pool: self.pool.clone(),
            direct: direct.clone(),
            bearers: self.bearers.clone(),
            clusters: Arc::new(polaris_store::cluster_cqrs(
                self.pool.clone(),
                direct.clone(),
                self.store_metrics.clone(),
            )),
            topics: Arc::new(polaris_store::topic_cqrs(self.pool.clone(), direct.clone(), self.store_metrics.clone())),
            users: Arc::new(polaris_store::user_cqrs(self.pool.clone(), direct.clone(), self.store_metrics.clone())),
            drifts: Arc::new(polaris_store::drift_cqrs(self.pool.clone(), direct.clone(), self.store_metrics.clone())),
            credentials: self.credentials.clone(),
            metrics: self.api_metrics.commands.clone(),
            rate_limiter: Arc::new(RateLimiter::share(
                self.settings.rate_limit_per_sec,
                self.settings.rate_limit_per_sec.saturating_mul(2),
                self.settings.api_replicas,
            )),
            anonymous_limiter: Arc::new(RateLimiter::share(
                self.settings.unauthenticated_rate_per_sec,
                self.settings.unauthenticated_rate_per_sec.saturating_mul(2),
                self.settings.api_replicas,
            )),
            policy_bundles: self.policy_bundles.clone(),
            placements: self.placements.clone(),
            prometheus: self.settings.prometheus_url.as_deref().map(|url| {
                Arc::new(prometheus::PrometheusHttp::new(url)) as Arc<dyn polaris_app::kafka_metrics::MetricsSource>
            }),
        }
    }

    pub fn app_state(&self, app: App) -> anyhow::Result<AppState> {
        let probe = KafkaProbe::new(&self.settings.kafka_bootstrap, &self.settings.events_topic)?;
        Ok(AppState::new(AppStateInner {
            app,
            metrics: self.api_metrics.clone(),
            registry: self.registry.clone(),
            probes: Arc::new(vec![Box::new(probe)]),
            replay: Some(Arc::new(Replayer { pool: self.pool.clone(), running: tokio::sync::Mutex::new(()) })),
            dashboard_dir: Some(self.settings.dashboard_dir.clone()),
        }))
    }

    pub fn relay(&self) -> anyhow::Result<Relay> {
        let mut config = RelayConfig::new(&self.settings.kafka_bootstrap, &self.settings.events_topic);
        config.name = self.settings.relay_name.clone();
        Ok(Relay::new(self.pool.clone(), config, self.relay_metrics.clone())?)
    }

    pub fn projector(&self) -> anyhow::Result<Projector> {
        let config = ProjectorConfig {
            bootstrap_servers: self.settings.kafka_bootstrap.clone(),
            topic: self.settings.events_topic.clone(),
            group_id: self.settings.projector_group.clone(),
        };
        Ok(Projector::new(self.pool.clone(), config, self.projector_metrics.clone())?)
    }

    /// Starts the given roles as tasks; they stop when `shutdown` turns true.
    pub async fn spawn_roles(
        &self,
        roles: &[Role],
        listener: Option<tokio::net::TcpListener>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let mut tasks = Vec::new();
        if roles.contains(&Role::Relay) {
            tasks.push(tokio::spawn(self.relay()?.run(shutdown.clone())));
        }
        if roles.contains(&Role::Projector) {
            tasks.push(tokio::spawn(self.projector()?.run(shutdown.clone())));
        }
        if roles.contains(&Role::Worker) {
            let mut config = self.settings.worker_config();
            config.metrics = self.worker_metrics.clone();
            config.store_metrics = self.store_metrics.clone();
            config.credentials = self.credentials.clone();
            let (pool, stop) = (self.pool.clone(), shutdown.clone());
            // The Temporal worker's run future is not Send; it gets a thread of its own that drives it on the
            // shared runtime.
            let handle = tokio::runtime::Handle::current();
            tasks.push(tokio::task::spawn_blocking(move || {
                if let Err(e) = handle.block_on(polaris_workers::run(pool, config, stop)) {
                    tracing::error!(error = %e, "worker role stopped");
                }
            }));
        }
        // Every process listens: the API role serves the API; any other serves only /healthz, /readyz and
        // /metrics (its probes and its scrape target).
        {
            let listener = match listener {
                Some(l) => l,
                None => tokio::net::TcpListener::bind(&self.settings.listen)
                    .await
                    .with_context(|| format!("binding {}", self.settings.listen))?,
            };
            let app = if roles.contains(&Role::Api) {
                tracing::info!(addr = %listener.local_addr()?, "api listening (REST and gRPC)");
                // One port, two doors over one application layer: gRPC requests are told apart by their paths.
                let app = self.app();
                polaris_api::router(self.app_state(app.clone())?).merge(polaris_grpc::router(app))
            } else {
                tracing::info!(addr = %listener.local_addr()?, "health and metrics listening");
                polaris_api::ops_router(self.app_state(self.app())?)
            };
            // The worker role answers Prometheus' discovery of the managed brokers (see polaris_workers::monitoring).
            let app = if roles.contains(&Role::Worker) {
                app.merge(kafka_sd_router(self.pool.clone(), self.settings.worker_config().targets))
            } else {
                app
            };
            let mut stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let graceful = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                // The peer address keys the rate limit of requests without a valid token.
                let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
                // No Nagle: an HTTP/2 answer is several small writes (HEADERS, DATA, trailers), and with Nagle
                // each after the first waits for the client's delayed ACK (about 40 ms per gRPC call at low
                // concurrency, found by `polaris-bench limit`).
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY not set");
                    }
                });
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(graceful).await {
                    tracing::error!(error = %e, "api server failed");
                }
            }));
        }
        Ok(tasks)
    }
}

/// `GET /sd/kafka`: the managed Kafka processes as Prometheus `http_sd` target groups, with the labels the
/// clusters' PodMonitors give in production.
fn kafka_sd_router(pool: PgPool, targets: polaris_workers::target::TargetsConfig) -> axum::Router {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let handler = move || {
        let (pool, targets) = (pool.clone(), targets.clone());
        async move {
            match polaris_workers::monitoring::all_scrape_targets(&pool, &targets).await {
                Ok(groups) => axum::Json(groups).into_response(),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "kafka service discovery failed");
                    (StatusCode::SERVICE_UNAVAILABLE, "the targets could not be listed").into_response()
                }
            }
        }
    };
    axum::Router::new().route("/sd/kafka", axum::routing::get(handler))
}
