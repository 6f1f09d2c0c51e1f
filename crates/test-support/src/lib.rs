//! Test helpers for the real services `./dev/up` (or `./dev/test`) starts. Each test gets its own database and
//! its own Kafka topic; waits poll a condition until a deadline. A service that cannot be reached fails the
//! test with its name and the command that starts it, never a silent pass.

pub mod harness;
pub mod history;
pub mod prometheus;

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

pub const START_HINT: &str = "start the local stack with ./dev/up (or run the suite through ./dev/test)";

pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://polaris@127.0.0.1:55432/polaris".into())
}

pub fn kafka_bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:59092".into())
}

/// A fresh, migrated database on the local PostgreSQL, named after the test run.
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
    pub name: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let admin_url = database_url();
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {admin_url}: {e}; {START_HINT}"));
        let name = format!("polaris_test_{}", Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL refused CREATE DATABASE: {e}"));
        admin.close().await;
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("DATABASE_URL {admin_url} has no database part"),
        };
        // With the store's pool and session settings, so statements run by tests and benches (a replay, say) plan and
        // reuse connections as Polaris'. A test waits longer for a connection than a role does.
        let options: sqlx::postgres::PgConnectOptions = url.parse().expect("the test database URL parses");
        let pool = polaris_store::pool_options(10)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.options(polaris_store::SESSION_SETTINGS))
            .await
            .expect("connect to the test database");
        polaris_store::MIGRATOR.run(&pool).await.expect("migrations apply to a fresh database");
        Self { pool, url, name }
    }
}

/// Creates a topic of its own for one test.
pub async fn unique_topic(partitions: i32) -> String {
    let bootstrap = kafka_bootstrap();
    let topic = format!("polaris.events.test-{}", Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap_or_else(|e| panic!("Kafka client for {bootstrap}: {e}"));
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&[NewTopic::new(&topic, partitions, TopicReplication::Fixed(1))], &opts)
        .await
        .unwrap_or_else(|e| panic!("Kafka is not reachable at {bootstrap}: {e}; {START_HINT}"));
    for r in results {
        if let Err((t, e)) = r {
            panic!("Kafka refused to create topic {t}: {e}");
        }
    }
    topic
}

/// Polls `f` until it returns `Some`, or panics naming `what` once `deadline` has passed.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message currently in `topic`, read from the beginning of each partition up to its high watermark.
/// Reading to the watermark (rather than "until nothing arrives for a while") makes "exactly N messages" a
/// fact, not a guess.
pub fn read_all(topic: &str) -> Vec<OwnedMessage> {
    let bootstrap = kafka_bootstrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("test-reader-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("kafka consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("Kafka metadata for {topic}: {e}; {START_HINT}"));
    let mut tpl = TopicPartitionList::new();
    let mut expected = 0;
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).expect("watermarks");
        expected += (high - low) as usize;
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning).expect("partition offset");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < expected {
        assert!(
            Instant::now() < deadline,
            "read {} of {expected} messages from {topic} before the deadline",
            out.len()
        );
        if let Some(r) = consumer.poll(Duration::from_millis(200)) {
            out.push(r.expect("kafka message").detach());
        }
    }
    out.sort_by_key(|m| (m.partition(), m.offset()));
    out
}

/// The metric names starting with `prefix` that a PromQL expression uses (label names, followed by `=`, `!=` or
/// `=~` in a selector, are not metrics).
pub fn metrics_in(expr: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find(prefix) {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let after = tail[end..].trim_start();
        if !(after.starts_with('=') || after.starts_with("!=")) {
            out.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}
