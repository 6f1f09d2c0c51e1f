//! The outbox relay: publishes committed events from PostgreSQL to the bootstrap Kafka topic.
//!
//! Order and completeness come from transaction ids, not from the position sequence: a sequence value is taken
//! at insert time, so a transaction holding position 10 may commit after one holding 11. The relay reads only
//! events whose `xid` is below `pg_snapshot_xmin(pg_current_snapshot())` (every transaction below it has
//! finished, so no new row can appear there) and walks them in `(xid, position)` order from a durable cursor.
//! A late-committing transaction is simply not visible yet; it is published when it has finished, never
//! skipped.
//!
//! Delivery is at-least-once: the cursor moves only after Kafka acknowledged the events (idempotent producer,
//! `acks=all`), so a crash between publish and checkpoint republishes, and consumers deduplicate on
//! `(aggregate_id, sequence)`. The key is the aggregate id, which keeps each aggregate's events in order.

use std::time::Duration;

use polaris_domain::envelope::headers;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::{EnvelopeError, STORED_EVENT_COLUMNS, StoredEvent};

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("serializing envelope: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Names the durable cursor in `relay_progress`; one relay per name runs at a time.
    pub name: String,
    pub bootstrap_servers: String,
    pub topic: String,
    pub batch_size: i64,
    pub idle_poll: Duration,
    /// The shortest time from one cycle's start to the next while the relay keeps up (its last batch was not
    /// full): events committed meanwhile go out in one batch (one fetch, one produce request, one checkpoint, and
    /// one projector transaction downstream) instead of a cycle each. Without it a cycle took a few milliseconds, so
    /// at 1,500 commands a second each moved about seven events, and a command cost about a quarter more CPU
    /// (docs/LOAD-AND-FAULTS.md, stop 33). An event that arrives while the relay is idle still waits at most
    /// `idle_poll`.
    pub gather: Duration,
}

impl RelayConfig {
    pub fn new(bootstrap_servers: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            name: "default".into(),
            bootstrap_servers: bootstrap_servers.into(),
            topic: topic.into(),
            batch_size: 500,
            idle_poll: Duration::from_millis(20),
            gather: Duration::from_millis(25),
        }
    }
}

#[derive(Clone)]
pub struct RelayMetrics {
    pub published: Counter,
    pub lag_events: Gauge,
    pub lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub publish_seconds: Histogram,
}

impl Default for RelayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RelayMetrics {
    pub fn new() -> Self {
        Self {
            published: Counter::default(),
            lag_events: Gauge::default(),
            lag_seconds: Gauge::default(),
            publish_seconds: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0005, 2.0, 16,
            )),
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register("polaris_relay_events_published", "Events acknowledged by Kafka", self.published.clone());
        registry.register("polaris_outbox_lag_events", "Committed events not yet published", self.lag_events.clone());
        registry.register(
            "polaris_outbox_lag_seconds",
            "Age of the oldest committed event not yet published",
            self.lag_seconds.clone(),
        );
        registry.register(
            "polaris_relay_publish_latency_seconds",
            "Time from sending a batch to Kafka to its acknowledgement",
            self.publish_seconds.clone(),
        );
    }
}

/// An event ready to publish, with the cursor value that covers it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub xid: String,
    pub position: i64,
    pub key: String,
    pub event_type: String,
    pub event_version: String,
    pub body: Vec<u8>,
}

/// Events after the relay's durable cursor (`$1` = relay name; the start of history for a relay that never ran).
/// The cursor is compared as a row of two scalar subqueries, which PostgreSQL evaluates once and uses as the
/// `(xid, position)` index condition: a join against the cursor table would scan the index from the start on
/// every poll (91 ms per poll at 200,000 events, growing with history).
const AFTER_CURSOR: &str = "(xid, position) > (\
     (SELECT COALESCE(max(last_xid), '0'::xid8) FROM relay_progress WHERE relay = $1), \
     (SELECT COALESCE(max(last_position), 0) FROM relay_progress WHERE relay = $1))";

pub struct Relay {
    pool: PgPool,
    producer: FutureProducer,
    config: RelayConfig,
    metrics: RelayMetrics,
}

impl Relay {
    pub fn new(pool: PgPool, config: RelayConfig, metrics: RelayMetrics) -> Result<Self, RelayError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("compression.type", "zstd")
            // The same partition for a key as Java clients choose, so any subscriber sees one order per aggregate.
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", "30000")
            .create()?;
        Ok(Self { pool, producer, config, metrics })
    }

    /// The query `fetch_batch` runs (`$1` relay name, `$2` batch size). The ORDER BY names `events.xid`: a bare
    /// `xid` would mean the output column `xid::text AS xid`, which sorts as text ("100000" before "99999"),
    /// cannot use the index, and could move the cursor past an earlier transaction at a digit boundary.
    pub fn fetch_sql() -> String {
        format!(
            "SELECT {STORED_EVENT_COLUMNS} FROM events \
             WHERE {AFTER_CURSOR} AND xid < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY events.xid, events.position LIMIT $2"
        )
    }

    /// Reads the next committed, unpublished events in `(xid, position)` order, after the durable cursor.
    pub async fn fetch_batch(&self) -> Result<Vec<Pending>, RelayError> {
        let sql = Self::fetch_sql();
        let rows: Vec<StoredEvent> =
            sqlx::query_as(&sql).bind(&self.config.name).bind(self.config.batch_size).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|row| {
                let (xid, position, key, event_type) =
                    (row.xid.clone(), row.position, row.aggregate_id.clone(), row.event_type.clone());
                let envelope = row.into_envelope()?;
                Ok(Pending {
                    xid,
                    position,
                    key,
                    event_type,
                    event_version: envelope.event_version.to_string(),
                    body: serde_json::to_vec(&envelope)?,
                })
            })
            .collect()
    }

    /// Sends the batch in order and waits for every acknowledgement. Returns how many events, from the start of
    /// the batch, Kafka acknowledged; the cursor may move past exactly those.
    pub async fn publish(&self, batch: &[Pending]) -> Result<usize, RelayError> {
        let started = std::time::Instant::now();
        let mut deliveries = Vec::with_capacity(batch.len());
        for p in batch {
            let headers = OwnedHeaders::new()
                .insert(Header { key: headers::EVENT_TYPE, value: Some(p.event_type.as_str()) })
                .insert(Header { key: headers::EVENT_VERSION, value: Some(p.event_version.as_str()) })
                .insert(Header { key: headers::CONTENT_TYPE, value: Some(headers::CONTENT_TYPE_JSON) });
            let record = FutureRecord::to(&self.config.topic).key(&p.key).payload(&p.body).headers(headers);
            // Enqueue synchronously, in order; librdkafka's idempotent producer keeps that order per partition.
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => {
                    tracing::warn!(error = %e, "relay: enqueue failed; publishing the rest of the batch later");
                    break;
                }
            }
        }
        let mut acknowledged = 0;
        let mut first_error = None;
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) if first_error.is_none() => acknowledged += 1,
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    first_error.get_or_insert(e);
                }
                Err(_canceled) => {
                    first_error.get_or_insert(KafkaError::Canceled);
                }
            }
        }
        self.metrics.publish_seconds.observe(started.elapsed().as_secs_f64());
        self.metrics.published.inc_by(acknowledged as u64);
        match first_error {
            Some(e) if acknowledged == 0 => Err(e.into()),
            Some(e) => {
                tracing::warn!(error = %e, acknowledged, "relay: partial batch acknowledged");
                Ok(acknowledged)
            }
            None => Ok(acknowledged),
        }
    }

    /// Durably records that everything up to and including `last` has been acknowledged.
    pub async fn checkpoint(&self, last: &Pending, count: usize) -> Result<(), RelayError> {
        sqlx::query(
            "INSERT INTO relay_progress (relay, last_xid, last_position, published_total, updated_at) \
             VALUES ($1, $2::xid8, $3, $4, now()) \
             ON CONFLICT (relay) DO UPDATE SET last_xid = EXCLUDED.last_xid, last_position = EXCLUDED.last_position, \
               published_total = relay_progress.published_total + EXCLUDED.published_total, updated_at = now()",
        )
        .bind(&self.config.name)
        .bind(&last.xid)
        .bind(last.position)
        .bind(count as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One cycle: fetch, publish, checkpoint. Returns the number of events published.
    pub async fn run_once(&self) -> Result<usize, RelayError> {
        let batch = self.fetch_batch().await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let acknowledged = self.publish(&batch).await?;
        if acknowledged > 0 {
            self.checkpoint(&batch[acknowledged - 1], acknowledged).await?;
        }
        Ok(acknowledged)
    }

    /// Refreshes the outbox lag gauges: committed events behind the cursor, and the age of the oldest.
    pub async fn measure_lag(&self) -> Result<(), RelayError> {
        let sql = format!(
            "SELECT count(*), EXTRACT(EPOCH FROM now() - min(recorded_at))::float8 FROM events WHERE {AFTER_CURSOR}"
        );
        let (count, age): (i64, Option<f64>) =
            sqlx::query_as(&sql).bind(&self.config.name).fetch_one(&self.pool).await?;
        self.metrics.lag_events.set(count);
        self.metrics.lag_seconds.set(age.unwrap_or(0.0));
        Ok(())
    }

    /// Runs until `shutdown` turns true. Errors (Kafka or Postgres away) are logged and retried with backoff;
    /// nothing is skipped, because the cursor only moves after acknowledgement.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        let mut last_lag = std::time::Instant::now() - Duration::from_secs(10);
        let mut last_seal = last_lag;
        tracing::info!(relay = %self.config.name, topic = %self.config.topic, "relay started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let started = std::time::Instant::now();
            let wait = match self.run_once().await {
                Ok(n) => {
                    backoff = Duration::from_millis(100);
                    match n {
                        0 => self.config.idle_poll,
                        n if n as i64 >= self.config.batch_size => Duration::ZERO,
                        _ => self.config.gather.saturating_sub(started.elapsed()),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay cycle failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    backoff
                }
            };
            // The hash chains follow the same commit order; sealing a few times a second keeps the window in
            // which a row is not yet tamper-evident short.
            if last_seal.elapsed() > Duration::from_millis(250) {
                last_seal = std::time::Instant::now();
                if let Err(e) = crate::chain::seal(&self.pool).await {
                    tracing::warn!(error = %e, "relay: sealing the hash chains failed; retrying");
                }
            }
            if last_lag.elapsed() > Duration::from_secs(1) {
                last_lag = std::time::Instant::now();
                if let Err(e) = self.measure_lag().await {
                    tracing::debug!(error = %e, "relay: lag measurement failed");
                }
            }
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        tracing::info!("relay stopped");
    }
}
