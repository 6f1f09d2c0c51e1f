//! `polaris-bench`: measures Polaris on the real local services (start them with `./dev/up`) and prints
//! figures. Each run gets its own database, topic and consumer groups, like the tests.
//!
//! - `append`: N cluster requests through the HTTP API at a given concurrency: commands per second with events
//!   committed, p50/p99 command latency, and commit-to-read-model lag p50/p99 (event `recorded_at` to read-model
//!   `projected_at`), checking that every event reached Kafka and the read model; and the CPU a command cost (the
//!   machine's, and this process's: the clients with the Polaris roles they call).
//! - `provision`: N clusters from POST to READY through Temporal, the workers, a real kube-apiserver and
//!   strimzi-sim; p50/p99 time to READY, and how fast the subscriber started the workflows.
//! - `replay`: a synthetic history of N clusters (9 events each) written to the event store, projected live,
//!   then rebuilt by `admin replay`: events per second of the replay, and whether it is identical.
//! - `lag`: a steady rate of cluster requests through the API for a while: commit-to-read-model lag p50/p99.
//! - `limit`: the machine's own limits first (the append+outbox transaction on the project's PostgreSQL, 8
//!   clients, synchronous commit; the ordered scan of the event table), then Polaris against them: commands/s
//!   through REST and gRPC at concurrency 8 and 32 (with p99), replay events/s, the relay's publish rate and the
//!   projector's catch-up rate on a backlog, each with its ratio to the limit it is bounded by (the commands'
//!   against the append limit measured in slices taken in turn with them, `Turns`). The append limit and each
//!   command round also print how busy the CPUs were and the CPU time of one transaction or command: on a machine
//!   near 100% busy, that time is what bounds the rate.
//! - `drift`: N clusters on one target; the time of one detector pass over all of them, then M drifts injected
//!   one after another (a label changed on a Kafka resource by another field manager): detection latency p50/p99,
//!   from the change to the drift in the API.
//! - `chaos`: a mixed workload through the API while faults are injected (kill -9 of each role process, restarts
//!   of PostgreSQL, Kafka, Temporal, a kube-apiserver and strimzi-sim, latency and resets through toxiproxy), then
//!   the checks: nothing acknowledged lost, every event in Kafka, read models equal a replay, no operation stuck,
//!   no Kubernetes object duplicated or orphaned, hash chains intact, no 5xx but 503 (chaos.rs).
//! - `cli`: the built `polaris` binary: wall time of `clusters list` (process start, HTTP, output) and how long
//!   `events tail` takes to print an event after its command was accepted.

mod chaos;

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures::StreamExt;
use polaris_server::Role;
use polaris_test_support::harness::{ALL, Harness};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "polaris-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Via {
    Api,
    Grpc,
    Handler,
}

#[derive(Subcommand)]
enum Command {
    /// Cluster requests through the API: throughput, latency, commit-to-read-model lag.
    Append {
        #[arg(long, default_value_t = 10_000)]
        commands: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// `api`: HTTP requests to POST /v1/clusters. `grpc`: ClusterService/CreateCluster on the same port.
        /// `handler`: the command handler (aggregate + event store) called in-process, without a front door, auth
        /// and the read-back. Several (`--via api,grpc`) run one after another against one Polaris, at the same
        /// concurrency.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "api")]
        via: Vec<Via>,
    },
    /// How fast the event subscriber starts workflows: a burst of recorded ClusterRequested events, handled one
    /// after another as the subscriber's loop does (the workflows go to a task queue no worker polls).
    Subscriber {
        #[arg(long, default_value_t = 200)]
        workflows: usize,
    },
    /// Rebuild the read models from a synthetic history (N clusters x 9 events) with `admin replay`.
    Replay {
        #[arg(long, default_value_t = 22_300)]
        clusters: usize,
        #[arg(long, default_value_t = polaris_projector::replay::DEFAULT_BATCH)]
        batch_size: i64,
    },
    /// Projector lag under a steady command load.
    Lag {
        /// Cluster requests per second.
        #[arg(long, default_value_t = 100)]
        rate: u32,
        #[arg(long, default_value_t = 60)]
        seconds: u32,
    },
    /// The `polaris` CLI binary (build it first: `cargo build --release -p polaris-cli`; or set POLARIS_CLI).
    Cli {
        /// `clusters list` runs, and cluster requests followed by `events tail`.
        #[arg(long, default_value_t = 50)]
        runs: usize,
    },
    /// Real clusters (strimzi-sim's real brokers), one at a time: POST -> READY, then a scale 3 -> 4 with a
    /// topic of `partitions` partitions (RF 3), then delete.
    Real {
        #[arg(long, default_value_t = 5)]
        clusters: usize,
        #[arg(long, default_value_t = 100)]
        partitions: u32,
    },
    /// The machine's limits, then Polaris against them (issue #17's goals). Run it on PostgreSQL with production's
    /// durable settings (`./dev/down && PG_DURABLE=1 ./dev/up`): the development cluster's asynchronous commit
    /// is no limit a durable Polaris can be compared with.
    Limit {
        /// Seconds of each PostgreSQL limit measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Cluster requests per door and concurrency.
        #[arg(long, default_value_t = 5_000)]
        commands: usize,
        /// The backlog for the relay, the projector and the replay (events; 9 per synthetic cluster).
        #[arg(long, default_value_t = 100_000)]
        backlog: usize,
        /// Pairs for the goal at 8: the limit and a REST and a gRPC round at 8, each pair in slices taken in turn.
        #[arg(long, default_value_t = 5)]
        pairs: usize,
    },
    /// Drift detection: one detector pass over N clusters, and the detection latency of M injected drifts.
    Drift {
        #[arg(long, default_value_t = 100)]
        clusters: usize,
        #[arg(long, default_value_t = 50)]
        drifts: usize,
    },
    /// A mixed workload while faults are injected, then the checks and two tables (faults by kind with their
    /// longest recovery; the checks). Needs PostgreSQL durable (`./dev/down && PG_DURABLE=1 ./dev/up`) and
    /// `cargo build -p polaris-server`.
    Chaos {
        /// How long faults are injected (one of each kind at least; one every 30 s in a longer run).
        #[arg(long, default_value_t = 3.0)]
        minutes: f64,
        /// Commands a second through the API: creates, scales, topics, users, deletes.
        #[arg(long, default_value_t = 3.0)]
        rate: f64,
        /// The workload's choices.
        #[arg(long, default_value_t = 17)]
        seed: u64,
        /// How long to wait afterwards for every operation to end before checking.
        #[arg(long, default_value_t = 10)]
        settle_minutes: u64,
        /// The provisioning deadline of the role processes: a cluster not READY by then (every cluster requested
        /// while strimzi-sim fails) is STALLED with its reason. The checks wait for it, so it bounds the run.
        #[arg(long, default_value_t = 300)]
        ready_timeout_secs: u64,
    },
    /// Clusters from POST to READY on the local stack.
    Provision {
        #[arg(long, default_value_t = 20)]
        clusters: usize,
        #[arg(long, default_value_t = 10)]
        concurrency: usize,
    },
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

async fn post_cluster(h: &Harness, name: &str, provider: &str, region: &str) -> anyhow::Result<Value> {
    post_cluster_to(&h.http, &h.url("/v1/clusters"), &h.admin_token, name, provider, region).await
}

async fn post_cluster_to(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    name: &str,
    provider: &str,
    region: &str,
) -> anyhow::Result<Value> {
    let resp = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({"name": name, "provider": provider, "region": region, "brokers": 3}))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 202, "POST /v1/clusters answered {}: {}", resp.status(), resp.text().await?);
    Ok(resp.json().await?)
}

/// One RequestCluster straight into the command handler, as the API would send it.
async fn handle_directly(
    cqrs: &polaris_store::ClusterCqrs,
    org: polaris_domain::OrgId,
    target: uuid::Uuid,
    name: String,
) -> anyhow::Result<()> {
    use polaris_domain::{ClusterCommand, ClusterId, CommandMetadata, OperationId, RequestCluster, TargetId};
    let id = ClusterId::from_uuid(uuid::Uuid::new_v4());
    let op = OperationId::from_uuid(uuid::Uuid::new_v4());
    let now = chrono::Utc::now();
    let correlation = uuid::Uuid::new_v4();
    let md = CommandMetadata {
        org_id: org,
        actor: "bench".into(),
        correlation_id: correlation,
        causation_id: correlation,
        operation_id: Some(op),
        occurred_at: now,
        policy_version: None,
    };
    let cmd = ClusterCommand::Request(RequestCluster {
        cluster_id: id,
        org_id: org,
        operation_id: op,
        target_id: Some(TargetId::from_uuid(target)),
        name,
        provider: "aws".into(),
        region: "eu-west-1".into(),
        kafka_version: None,
        brokers: 3,
        controllers: None,
        storage_gib: None,
        config: Default::default(),
        deletion_protection: false,
        requested_by: "bench".into(),
        requested_at: now,
        mesh: None,
    });
    cqrs.execute_with_metadata(&id.to_string(), cmd, md.to_map()).await.map_err(|e| anyhow::anyhow!("{e}"))
}

/// A Polaris for the throughput benches: the test defaults, with the per-token rate limit (1,000 requests a second
/// by default, bursts of 2,000) lifted out of the way, since these measure the command path, not the limiter. One
/// token sends every request here, and a machine that runs more than 1,000 commands a second would see 429s.
async fn throughput_harness(roles: &[Role]) -> Harness {
    Harness::start_configured(roles, |s| s.rate_limit_per_sec = 1_000_000).await
}

async fn append(commands: usize, concurrency: usize, vias: Vec<Via>) -> anyhow::Result<()> {
    let h = throughput_harness(&[Role::Api, Role::Relay, Role::Projector]).await;
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let doors = warm_up(&h, &run).await?;
    let mut total = 50;
    for (round, via) in vias.into_iter().enumerate() {
        let (elapsed, lat, cpu) = doors.round(via, &format!("b{run}-{round}"), commands, concurrency).await?;
        total += commands;
        polaris_test_support::eventually("every request in the read model", Duration::from_secs(300), || async {
            let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM clusters").fetch_one(&h.db.pool).await.ok()?;
            (n as usize == total).then_some(())
        })
        .await;
        let lags = commit_to_read_lags(&h.db.pool, &format!("b{run}-{round}-%")).await?;
        let (events,): (i64,) = sqlx::query_as("SELECT count(*) FROM events").fetch_one(&h.db.pool).await?;
        let messages = polaris_test_support::read_all(&h.topic).len();
        let lag = sorted(lags.into_iter().map(|(l,)| l).collect());
        let path = match via {
            Via::Api => "POST /v1/clusters",
            Via::Grpc => "gRPC ClusterService/CreateCluster",
            Via::Handler => "the command handler",
        };
        println!("append: {commands} cluster requests through {path}, concurrency {concurrency}");
        println!(
            "  throughput        {:.0} commands/s ({:.2} s)",
            commands as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64()
        );
        println!("  {} a command", cpu_text(cpu.and_then(|c| c.per(commands))));
        println!(
            "  command latency   p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
            percentile(&lat, 50.0),
            percentile(&lat, 99.0),
            lat.last().copied().unwrap_or(f64::NAN)
        );
        println!(
            "  commit->read lag  p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
            percentile(&lag, 50.0),
            percentile(&lag, 99.0),
            lag.last().copied().unwrap_or(f64::NAN)
        );
        println!(
            "  events {events}, Kafka messages {messages}, read-model rows {total}, lost {}",
            total as i64 - events.min(messages as i64)
        );
    }
    h.stop().await;
    Ok(())
}

/// The platform's aws/eu-west-1 target (the one placement chooses for the benches' requests).
async fn aws_target(pool: &sqlx::PgPool) -> anyhow::Result<uuid::Uuid> {
    Ok(polaris_store::db::targets::by_name(pool, "aws-eu-west-1")
        .await?
        .ok_or_else(|| anyhow::anyhow!("the aws-eu-west-1 target is not registered"))?
        .id)
}

/// A warmed-up Polaris (connections, prepared statements, the consumer group join: 50 requests named
/// `w<run>-<i>`) and what each door needs: the command handler, the target, a gRPC channel.
async fn warm_up(h: &Harness, run: &str) -> anyhow::Result<Doors> {
    for i in 0..50 {
        post_cluster(h, &format!("w{run}-{i}"), "aws", "eu-west-1").await?;
    }
    Ok(Doors(std::sync::Arc::new(DoorsInner {
        http: h.http.clone(),
        clusters_url: h.url("/v1/clusters"),
        token: h.admin_token.clone(),
        org: h.org,
        cqrs: polaris_store::cluster_cqrs(
            h.db.pool.clone(),
            polaris_store::DirectPool::beside(&h.db.pool),
            Default::default(),
        ),
        target: aws_target(&h.db.pool).await?,
        grpc: tonic::transport::Endpoint::from_shared(h.base.clone())?.connect().await?,
    })))
}

/// Each cluster's commit-to-read-model lag in ms (its first event's commit to its row's projection), for the
/// clusters whose name is `LIKE name`. The tables are analyzed first: a test database filled by the run has no
/// statistics, and without them the join was once planned as a scan of the events per cluster (65 s for 30,000).
async fn commit_to_read_lags(pool: &sqlx::PgPool, name: &str) -> anyhow::Result<Vec<(f64,)>> {
    sqlx::query("ANALYZE clusters, events").execute(pool).await?;
    Ok(sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM c.projected_at - e.recorded_at)::float8 * 1000 FROM clusters c \
         JOIN events e ON e.aggregate_type = 'cluster' AND e.aggregate_id = c.id::text AND e.sequence = 1 \
         WHERE c.name LIKE $1",
    )
    .bind(name)
    .fetch_all(pool)
    .await?)
}

/// The ways a cluster request reaches the command handler, each request its own task (the benches' main future runs
/// on the main thread, which would otherwise drive every request's client side alone).
#[derive(Clone)]
struct Doors(std::sync::Arc<DoorsInner>);

struct DoorsInner {
    http: reqwest::Client,
    clusters_url: String,
    token: String,
    org: polaris_domain::OrgId,
    cqrs: polaris_store::ClusterCqrs,
    target: uuid::Uuid,
    grpc: tonic::transport::Channel,
}

impl Doors {
    /// `commands` cluster requests named `<prefix>-<i>` through `via`, `concurrency` at a time: the wall time and
    /// each request's latency in ms, sorted.
    async fn round(
        &self,
        via: Via,
        prefix: &str,
        commands: usize,
        concurrency: usize,
    ) -> anyhow::Result<(Duration, Vec<f64>, Option<CpuSpent>)> {
        let cpu = CpuMeter::start();
        let started = Instant::now();
        let latencies: Vec<f64> = futures::stream::iter(0..commands)
            .map(|i| {
                let (d, name) = (self.0.clone(), format!("{prefix}-{i}"));
                tokio::spawn(async move {
                    let t = Instant::now();
                    match via {
                        Via::Api => {
                            post_cluster_to(&d.http, &d.clusters_url, &d.token, &name, "aws", "eu-west-1").await?;
                        }
                        Via::Grpc => create_over_grpc(&d.grpc, &d.token, name).await?,
                        Via::Handler => handle_directly(&d.cqrs, d.org, d.target, name).await?,
                    }
                    anyhow::Ok(t.elapsed().as_secs_f64() * 1e3)
                })
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(|joined| joined?)
            .collect::<anyhow::Result<_>>()?;
        let elapsed = started.elapsed();
        Ok((elapsed, sorted(latencies), cpu.and_then(CpuMeter::stop)))
    }
}

/// One cluster request through the gRPC door (the channel multiplexes every request over one HTTP/2 connection).
async fn create_over_grpc(channel: &tonic::transport::Channel, token: &str, name: String) -> anyhow::Result<()> {
    use polaris_grpc::pb;
    let mut client = pb::cluster_service_client::ClusterServiceClient::new(channel.clone());
    let mut req = tonic::Request::new(pb::CreateClusterRequest {
        name,
        provider: "aws".into(),
        region: "eu-west-1".into(),
        brokers: 3,
        ..Default::default()
    });
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
    match client.create_cluster(req).await?.into_inner().result {
        Some(pb::create_cluster_response::Result::Accepted(_)) => Ok(()),
        other => anyhow::bail!("expected an accepted request, got {other:?}"),
    }
}

async fn provision(clusters: usize, concurrency: usize) -> anyhow::Result<()> {
    let h = Harness::start(&ALL).await;
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let started = Instant::now();
    let times: Vec<f64> = futures::stream::iter(0..clusters)
        .map(|i| {
            let h = &h;
            let run = &run;
            async move {
                let (provider, region) = if i % 2 == 0 { ("aws", "eu-west-1") } else { ("gcp", "europe-west1") };
                let t = Instant::now();
                let body = post_cluster(h, &format!("p{run}-{i}"), provider, region).await?;
                let id = body["cluster"]["id"].as_str().unwrap_or_default().to_owned();
                polaris_test_support::harness::wait_for_status(h, &id, "READY", Duration::from_secs(300)).await;
                Ok(t.elapsed().as_secs_f64())
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<anyhow::Result<f64>>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let wall = started.elapsed().as_secs_f64();
    // Subscriber rate: from each ClusterRequested being recorded to its ClusterProvisioningStarted (the first
    // thing the workflow does), over the whole burst.
    let (first, last): (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM min(recorded_at))::float8, EXTRACT(EPOCH FROM max(recorded_at))::float8 \
         FROM events WHERE event_type = 'ClusterProvisioningStarted'",
    )
    .fetch_one(&h.db.pool)
    .await?;
    let t = sorted(times);
    println!("provision: {clusters} clusters of 3 brokers, {concurrency} at a time, both targets");
    println!(
        "  POST -> READY     p50 {:.2} s   p99 {:.2} s   max {:.2} s",
        percentile(&t, 50.0),
        percentile(&t, 99.0),
        t.last().copied().unwrap_or(f64::NAN)
    );
    println!("  wall time         {wall:.2} s ({:.1} clusters/s)", clusters as f64 / wall);
    if let (Some(first), Some(last)) = (first, last) {
        let span = (last - first).max(1e-3);
        println!(
            "  workflows started {clusters} in {span:.2} s between the first and last start ({:.1}/s)",
            (clusters - 1).max(1) as f64 / span
        );
    }
    h.stop().await;
    Ok(())
}

/// Sends a request as the harness admin and expects `202 Accepted`; the operation's id.
async fn accepted(h: &Harness, req: reqwest::RequestBuilder) -> anyhow::Result<String> {
    let resp = req.bearer_auth(&h.admin_token).send().await?;
    anyhow::ensure!(resp.status() == 202, "answered {}: {}", resp.status(), resp.text().await?);
    let body: Value = resp.json().await?;
    Ok(body["operation"]["id"].as_str().unwrap_or_default().to_owned())
}

async fn real(clusters: usize, partitions: u32) -> anyhow::Result<()> {
    use polaris_test_support::harness::{prepare_faults, wait_for_status, wait_operation_for};
    let h = Harness::start_with(&ALL, 600).await;
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let (mut ready, mut scale, mut delete) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..clusters {
        let name = format!("r{run}-{i}");
        prepare_faults("aws-eu-west-1", &name, &[("strimzi-sim.polaris.dev/data-plane", "real")]).await;
        let t = Instant::now();
        let body = post_cluster(&h, &name, "aws", "eu-west-1").await?;
        let id = body["cluster"]["id"].as_str().unwrap_or_default().to_owned();
        wait_for_status(&h, &id, "READY", Duration::from_secs(600)).await;
        ready.push(t.elapsed().as_secs_f64());
        if i == 0 {
            let topic = h.http.post(h.url(&format!("/v1/clusters/{id}/topics"))).json(&json!({
                "name": "bench.partitions", "partitions": partitions, "replication_factor": 3
            }));
            let op = accepted(&h, topic).await?;
            wait_operation_for(&h, &op, "succeeded", Duration::from_secs(600)).await;
            let t = Instant::now();
            let op = accepted(&h, h.http.post(h.url(&format!("/v1/clusters/{id}/scale"))).json(&json!({"brokers": 4})))
                .await?;
            wait_operation_for(&h, &op, "succeeded", Duration::from_secs(900)).await;
            scale.push(t.elapsed().as_secs_f64());
        }
        let t = Instant::now();
        accepted(&h, h.http.delete(h.url(&format!("/v1/clusters/{id}")))).await?;
        wait_for_status(&h, &id, "DELETED", Duration::from_secs(300)).await;
        delete.push(t.elapsed().as_secs_f64());
    }
    let r = sorted(ready);
    println!("real: {clusters} clusters of 3 brokers + 1 controller process, one at a time, aws/eu-west-1");
    println!(
        "  POST -> READY     p50 {:.1} s   p99 {:.1} s   max {:.1} s",
        percentile(&r, 50.0),
        percentile(&r, 99.0),
        r.last().copied().unwrap_or(f64::NAN)
    );
    if let Some(s) = scale.first() {
        println!(
            "  scale 3 -> 4      {s:.1} s with a {partitions}-partition topic (RF 3), until the operation succeeded"
        );
    }
    let d = sorted(delete);
    println!("  DELETE -> DELETED p50 {:.1} s", percentile(&d, 50.0));
    h.stop().await;
    Ok(())
}

async fn subscriber(workflows: usize) -> anyhow::Result<()> {
    let h = Harness::start(&[Role::Api]).await;
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    for i in 0..workflows {
        post_cluster(&h, &format!("s{run}-{i}"), "aws", "eu-west-1").await?;
    }
    let sql = format!(
        "SELECT {} FROM events WHERE event_type = 'ClusterRequested' ORDER BY position",
        polaris_store::STORED_EVENT_COLUMNS
    );
    let stored: Vec<polaris_store::StoredEvent> = sqlx::query_as(&sql).fetch_all(&h.db.pool).await?;
    let envelopes = stored.iter().map(|e| e.to_envelope()).collect::<Result<Vec<_>, _>>()?;
    let config = h.settings.worker_config();
    let sub = polaris_workers::subscriber::Subscriber {
        pool: h.db.pool.clone(),
        client: std::sync::Arc::new(polaris_workers::temporal_client(&config).await?),
        config,
    };
    let started = Instant::now();
    let mut new = 0;
    for env in &envelopes {
        if let Some(polaris_workers::subscriber::Started::New(_)) = sub.handle(env).await? {
            new += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // Handled again: every one is recognised as already started.
    let again = Instant::now();
    for env in &envelopes {
        sub.handle(env).await?;
    }
    println!("subscriber: {} ClusterRequested events handled in order, as the subscriber loop does", envelopes.len());
    println!("  workflow starts   {new} in {secs:.2} s = {:.0} starts/s", new as f64 / secs);
    println!("  redelivered       {} in {:.2} s, 0 new workflows", envelopes.len(), again.elapsed().as_secs_f64());
    h.stop().await;
    Ok(())
}

async fn replay(clusters: usize, batch_size: i64) -> anyhow::Result<()> {
    let h = Harness::start(&[Role::Relay, Role::Projector]).await;
    let pool = h.db.pool.clone();
    let target = aws_target(&pool).await?;
    let busy = busy_before().await;
    let t = Instant::now();
    let seeded = polaris_test_support::history::seed_history(
        &pool,
        h.org,
        polaris_domain::TargetId::from_uuid(target),
        clusters,
    )
    .await;
    let seed_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    polaris_test_support::eventually("the live projector applies the history", Duration::from_secs(1800), || async {
        let (c,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM topics WHERE status = 'READY'").fetch_one(&pool).await.ok()?;
        (c as usize >= clusters).then_some(())
    })
    .await;
    let live_secs = t.elapsed().as_secs_f64();
    let options = polaris_projector::replay::ReplayOptions { batch_size, ..Default::default() };
    let report = polaris_projector::replay::replay(&pool, &options, |_, _| {}).await?;
    println!("replay: {clusters} synthetic clusters, {seeded} events (1 in 10 clusters starts with a v1 event)");
    if let Some(busy) = busy {
        println!("  machine           {busy:.0}% of the CPUs busy before the run (other processes)");
    }
    println!("  seeding           {seed_secs:.1} s ({:.0} events/s into the event store)", seeded as f64 / seed_secs);
    println!(
        "  live projection   relay -> Kafka -> projector ran during the seeding and caught up {live_secs:.1} s after it \
         ({:.0} events/s over both)",
        seeded as f64 / (seed_secs + live_secs)
    );
    println!(
        "  replay            {} events in {:.1} s = {:.0} events/s (batch {batch_size})",
        report.events_applied, report.replay_seconds, report.events_per_second
    );
    println!(
        "  identical         {} after {} comparison round(s) ({} cluster(s) in flight left out of the last)",
        report.identical, report.compare_rounds, report.clusters_in_flight
    );
    for t in &report.tables {
        println!("    {:<11} {:>7} rows  md5 {}", t.table, t.replayed_rows, t.replayed_md5);
    }
    h.stop().await;
    anyhow::ensure!(report.identical, "the replay differs from the live read models");
    Ok(())
}

async fn lag(rate: u32, seconds: u32) -> anyhow::Result<()> {
    let h = throughput_harness(&[Role::Api, Role::Relay, Role::Projector]).await;
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let total = (rate * seconds) as usize;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = futures::stream::FuturesUnordered::new();
    let started = Instant::now();
    let mut failed = 0;
    for i in 0..total {
        ticker.tick().await;
        let (http, url, token, name) =
            (h.http.clone(), h.url("/v1/clusters"), h.admin_token.clone(), format!("l{run}-{i}"));
        // Each request its own task, so the main thread is not the client's only one.
        inflight.push(tokio::spawn(async move {
            post_cluster_to(&http, &url, &token, &name, "aws", "eu-west-1").await.is_ok()
        }));
        while let Some(Some(ok)) = futures::FutureExt::now_or_never(inflight.next()) {
            if !ok.unwrap_or(false) {
                failed += 1;
            }
        }
    }
    while let Some(ok) = inflight.next().await {
        if !ok.unwrap_or(false) {
            failed += 1;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    polaris_test_support::eventually("the projector applies every request", Duration::from_secs(120), || async {
        let (c,): (i64,) = sqlx::query_as("SELECT count(*) FROM clusters").fetch_one(&h.db.pool).await.ok()?;
        (c as usize + failed >= total).then_some(())
    })
    .await;
    let lags = commit_to_read_lags(&h.db.pool, "%").await?;
    let lag = sorted(lags.into_iter().map(|(l,)| l).collect());
    println!(
        "lag: {total} cluster requests at {rate}/s for {seconds} s through POST /v1/clusters ({wall:.1} s, {failed} failed)"
    );
    println!(
        "  commit -> read model  p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        percentile(&lag, 50.0),
        percentile(&lag, 99.0),
        lag.last().copied().unwrap_or(f64::NAN)
    );
    h.stop().await;
    anyhow::ensure!(failed == 0, "{failed} requests failed");
    Ok(())
}

/// The `polaris` binary beside this one (same profile), or POLARIS_CLI.
fn cli_binary() -> anyhow::Result<std::path::PathBuf> {
    let path = match std::env::var_os("POLARIS_CLI") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::env::current_exe()?.with_file_name("polaris"),
    };
    anyhow::ensure!(path.is_file(), "no polaris binary at {} (cargo build --release -p polaris-cli)", path.display());
    Ok(path)
}

async fn cli(runs: usize) -> anyhow::Result<()> {
    use std::io::BufRead;
    let bin = cli_binary()?;
    let h = Harness::start(&[Role::Api, Role::Relay, Role::Projector]).await;
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    for i in 0..20 {
        post_cluster(&h, &format!("c{run}-seed{i}"), "aws", "eu-west-1").await?;
    }
    let polaris = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(args).env("POLARIS_API_URL", &h.base).env("POLARIS_TOKEN", &h.admin_token);
        cmd
    };
    let mut list = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let out = polaris(&["clusters", "list", "--output", "json"]).output()?;
        list.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(out.status.success(), "clusters list failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let list = sorted(list);

    // events tail from now on: each accepted request's ClusterRequested, timed from the 202 to the printed line.
    let mut tail = polaris(&["events", "tail", "--output", "json", "--count", &runs.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = tail.stdout.take().ok_or_else(|| anyhow::anyhow!("tail stdout"))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(e) = serde_json::from_str::<Value>(&line) else { continue };
            if e["event_type"] == "ClusterRequested" {
                let _ = tx.send((e["aggregate_id"].as_str().unwrap_or_default().to_owned(), Instant::now()));
            }
        }
    });
    polaris_test_support::eventually("events tail to ask for its starting point", Duration::from_secs(30), || async {
        let m = h.http.get(h.url("/metrics")).send().await.ok()?.text().await.ok()?;
        m.lines()
            .any(|l| l.starts_with("polaris_api_requests_total{") && l.contains(r#"route="/v1/events""#))
            .then_some(())
    })
    .await;
    let mut accepted = std::collections::HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    for i in 0..runs {
        ticker.tick().await;
        let body = post_cluster(&h, &format!("c{run}-{i}"), "aws", "eu-west-1").await?;
        accepted.insert(body["cluster"]["id"].as_str().unwrap_or_default().to_owned(), Instant::now());
    }
    let mut lags = Vec::with_capacity(runs);
    while lags.len() < runs {
        let Ok(Some((id, at))) = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await else {
            anyhow::bail!("events tail printed {} of {runs} events within 30 s", lags.len());
        };
        if let Some(sent) = accepted.get(&id) {
            lags.push(at.saturating_duration_since(*sent).as_secs_f64() * 1000.0);
        }
    }
    let _ = tail.wait();
    let lags = sorted(lags);
    println!("cli: {}", bin.display());
    println!(
        "  clusters list --output json (20 clusters), {runs} runs: p50 {:.1} ms   p99 {:.1} ms",
        percentile(&list, 50.0),
        percentile(&list, 99.0)
    );
    println!(
        "  202 -> printed by events tail (polls every 500 ms when idle), {runs} events at 10/s: p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        percentile(&lags, 50.0),
        percentile(&lags, 99.0),
        lags.last().copied().unwrap_or(f64::NAN)
    );
    h.stop().await;
    Ok(())
}

/// Starts a measured phase with what the phases before it left behind done: the tables they wrote vacuumed and
/// analyzed (as pgbench vacuums before its runs), then the WAL checkpointed. Otherwise autovacuum's pass over the
/// last phase's rows, or a checkpoint's writes, lands in this phase at a moment of its own choosing (autovacuum
/// visits a database once a minute): a cause of the spread between `limit` runs. The phase's own maintenance is
/// left to autovacuum, as in production. On a connection of its own that does not log its statements (a vacuum
/// takes a second or two, which sqlx would report as slow).
async fn settle(url: &str) {
    use sqlx::{ConnectOptions, Connection};
    let connected = match url.parse::<sqlx::postgres::PgConnectOptions>() {
        Ok(options) => options.disable_statement_logging().connect().await,
        Err(e) => Err(e),
    };
    let mut conn = match connected {
        Ok(conn) => conn,
        Err(e) => return println!("  (no VACUUM or CHECKPOINT before this phase: {e})"),
    };
    for statement in ["VACUUM (ANALYZE)", "CHECKPOINT"] {
        if let Err(e) = sqlx::raw_sql(statement).execute(&mut conn).await {
            println!("  (no {statement} before this phase: {e})");
        }
    }
    let _ = conn.close().await;
}

/// The append+outbox write on its own: one event row (global position, xid8, the row the relay publishes) per
/// synchronous-commit transaction, into a table shaped exactly as `events` (its columns, identity, defaults, keys
/// and indexes), from `clients` connections for `seconds`. Transactions per second, and the CPU they used.
async fn append_limit(url: &str, clients: usize, seconds: u64) -> anyhow::Result<(f64, Option<CpuUse>)> {
    let mut limit = LimitClients::connect(url, clients).await?;
    let (written, elapsed, cpu) = limit.write_for(Duration::from_secs(seconds)).await?;
    limit.close().await;
    Ok((written as f64 / elapsed.as_secs_f64(), cpu.and_then(|c| c.per(written as usize))))
}

/// The append limit's clients: each writes one event row a transaction into `bench_limit`. They connect and write
/// one transaction each before any window is timed, as the command rounds' connections are warm before theirs,
/// so a window times only the writes.
struct LimitClients {
    conns: Vec<sqlx::PgConnection>,
    payload: Value,
    metadata: Value,
}

impl LimitClients {
    async fn connect(url: &str, clients: usize) -> anyhow::Result<Self> {
        use sqlx::Connection;
        let mut setup = sqlx::PgConnection::connect(url).await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS bench_limit (LIKE events INCLUDING ALL)").execute(&mut setup).await?;
        setup.close().await?;
        let payload = json!({"ClusterRequested": {
            "cluster_id": uuid::Uuid::new_v4(), "org_id": uuid::Uuid::new_v4(), "operation_id": uuid::Uuid::new_v4(),
            "target_id": uuid::Uuid::new_v4(), "name": "orders-eu", "provider": "aws", "region": "eu-west-1",
            "kafka_version": "4.3.1", "metadata_version": "4.3", "brokers": 3, "controllers": 3, "storage_gib": 100,
            "config": {"min.insync.replicas": "2"}, "deletion_protection": false,
            "namespace": "polaris-orders-eu-1a2b3c4d", "requested_by": "token:bench:00000000-0000-0000-0000-000000000000",
            "requested_at": chrono::Utc::now(),
        }});
        let metadata = json!({"org_id": uuid::Uuid::new_v4(), "actor": "token:bench",
            "correlation_id": uuid::Uuid::new_v4(), "causation_id": uuid::Uuid::new_v4(),
            "operation_id": uuid::Uuid::new_v4(), "occurred_at": chrono::Utc::now(), "policy_version": "1"});
        let mut conns = Vec::with_capacity(clients);
        for _ in 0..clients {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query("SET synchronous_commit = on").execute(&mut conn).await?;
            Self::write(&mut conn, &payload, &metadata).await?;
            conns.push(conn);
        }
        Ok(Self { conns, payload, metadata })
    }

    /// One transaction: one event row, committed.
    async fn write(conn: &mut sqlx::PgConnection, payload: &Value, metadata: &Value) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO bench_limit (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
             metadata) VALUES ('cluster', $1, 1, 'ClusterRequested', '4', $2, $3)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(payload)
        .bind(metadata)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every client writes until `window` has passed: the transactions written, the time until the last one
    /// committed, and the CPU they used.
    async fn write_for(&mut self, window: Duration) -> anyhow::Result<(u64, Duration, Option<CpuSpent>)> {
        let (payload, metadata) = (&self.payload, &self.metadata);
        let cpu = CpuMeter::start();
        let started = Instant::now();
        let deadline = started + window;
        let counts = futures::future::join_all(self.conns.iter_mut().map(|conn| async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                Self::write(conn, payload, metadata).await?;
                n += 1;
            }
            anyhow::Ok(n)
        }))
        .await;
        let elapsed = started.elapsed();
        let written: u64 = counts.into_iter().collect::<anyhow::Result<Vec<_>>>()?.into_iter().sum();
        Ok((written, elapsed, cpu.and_then(CpuMeter::stop)))
    }

    async fn close(self) {
        use sqlx::Connection;
        for conn in self.conns {
            let _ = conn.close().await;
        }
    }
}

/// The raw ordered scan of an event table: every row in position order, a page of 1,000 at a time by keyset, with
/// the columns the relay and the replay read, decoded as they decode them (`StoredEvent`). Rows and rows per second.
async fn scan_limit(pool: &sqlx::PgPool, table: &str) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let (mut after, mut rows) = (0i64, 0u64);
    loop {
        let page: Vec<polaris_store::StoredEvent> = sqlx::query_as(&format!(
            "SELECT {} FROM {table} WHERE position > $1 ORDER BY position LIMIT 1000",
            polaris_store::STORED_EVENT_COLUMNS
        ))
        .bind(after)
        .fetch_all(pool)
        .await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        rows += page.len() as u64;
    }
    Ok((rows, rows as f64 / started.elapsed().as_secs_f64()))
}

/// How busy the machine is before a run: the share of all CPUs' time, over one second, not idle (from
/// `/proc/stat`). Every figure here shares the machine with whatever else runs (a development stack's
/// strimzi-sim resyncing hundreds of leftover namespaces once cost about a third of it), so it is printed with them.
async fn busy_before() -> Option<f64> {
    let meter = CpuMeter::start()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Some(meter.stop()?.per(1)?.busy)
}

/// All CPUs' time (total, idle) in ticks, from the first line of `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are idle time.
    let idle = fields.get(3)? + fields.get(4)?;
    Some((fields.iter().take(8).sum(), idle))
}

/// This process's CPU time (user + system) in ticks, from `/proc/self/stat`.
fn process_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name in parentheses: state is the first field, utime the 12th and stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Where the CPU went while a measurement ran: the whole machine's (PostgreSQL, Kafka, this process and
/// anything else) and this process's (the bench's clients with the Polaris roles it runs). A measurement whose
/// machine is near 100% busy is bound by CPU, and its CPU time per command is what a faster path must cut.
#[derive(Clone, Copy)]
struct CpuMeter {
    machine: (u64, u64),
    process: u64,
}

struct CpuUse {
    /// Share of all CPUs' time not idle, in percent.
    busy: f64,
    /// CPU time per unit of work (command, transaction), in ms: the machine's and this process's.
    machine_ms: f64,
    process_ms: f64,
}

impl CpuMeter {
    /// /proc counts in USER_HZ ticks, 100 a second on Linux.
    const MS_PER_TICK: f64 = 10.0;

    fn start() -> Option<Self> {
        Some(Self { machine: machine_ticks()?, process: process_ticks()? })
    }

    /// The CPU spent since `start`.
    fn stop(self) -> Option<CpuSpent> {
        let ((total, idle), process) = (machine_ticks()?, process_ticks()?);
        let total = total.checked_sub(self.machine.0)?;
        let busy = total.saturating_sub(idle.saturating_sub(self.machine.1));
        Some(CpuSpent { total, busy, process: process.saturating_sub(self.process) })
    }
}

/// The CPU ticks one measurement spent (or several, added): all CPUs' time, the part of it not idle, and this
/// process's.
#[derive(Clone, Copy, Default)]
struct CpuSpent {
    total: u64,
    busy: u64,
    process: u64,
}

impl std::ops::Add for CpuSpent {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self { total: self.total + other.total, busy: self.busy + other.busy, process: self.process + other.process }
    }
}

impl CpuSpent {
    /// The CPU used per one of `units` (commands or transactions); none if no tick passed.
    fn per(self, units: usize) -> Option<CpuUse> {
        let per_unit = |ticks: u64| ticks as f64 * CpuMeter::MS_PER_TICK / units.max(1) as f64;
        (self.total > 0).then(|| CpuUse {
            busy: 100.0 * self.busy as f64 / self.total as f64,
            machine_ms: per_unit(self.busy),
            process_ms: per_unit(self.process),
        })
    }
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CPU {:.0}% busy, {:.3} ms each (this process {:.3} ms)", self.busy, self.machine_ms, self.process_ms)
    }
}

/// A figure's CPU use, or why it is missing.
fn cpu_text(cpu: Option<CpuUse>) -> String {
    cpu.map_or_else(|| "CPU use unknown (no /proc)".to_owned(), |c| c.to_string())
}

fn ratio(value: f64, limit: f64) -> String {
    format!("{:.2} x the limit", value / limit)
}

async fn limit(seconds: u64, commands: usize, backlog: usize, pairs: usize) -> anyhow::Result<()> {
    let h = throughput_harness(&[Role::Api, Role::Relay, Role::Projector]).await;
    let settings: Vec<(String,)> = sqlx::query_as(
        "SELECT name || '=' || setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes') \
         ORDER BY name",
    )
    .fetch_all(&h.db.pool)
    .await?;
    let settings: Vec<String> = settings.into_iter().map(|(s,)| s).collect();
    let durable = settings.iter().all(|s| s.ends_with("=on"));
    println!(
        "limit: PostgreSQL {} ({})",
        settings.join(", "),
        if durable {
            "durable: production's settings"
        } else {
            "NOT durable: restart it with PG_DURABLE=1 ./dev/up for figures comparable with production"
        }
    );
    match busy_before().await {
        Some(busy) => println!("  machine: {busy:.0}% of the CPUs busy before the run (other processes)"),
        None => println!("  machine: CPU use unknown (no /proc/stat)"),
    }
    settle(&h.db.url).await;
    let (append, cpu) = append_limit(&h.db.url, 8, seconds).await?;
    println!("  limit: append+outbox transaction, 8 clients, synchronous commit   {append:.0} tx/s");
    println!("      {} a transaction", cpu_text(cpu));
    let (rows, scan) = scan_limit(&h.db.pool, "bench_limit").await?;
    println!("  limit: ordered scan of the event table ({rows} rows, pages of 1000)  {scan:.0} rows/s");

    // Commands through each door at 8 and 32 at a time.
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let doors = warm_up(&h, &run).await?;
    let mut clients = LimitClients::connect(&h.db.url, 8).await?;
    let turns =
        Turns { window: Duration::from_secs(seconds).div_f64(SLICES as f64), commands: commands.div_ceil(SLICES) };
    // The first slice after the checkpoint pays most of the full-page writes that follow one: a door's, not the
    // limit's.
    for (turn, concurrency) in [(1, 8), (2, 32)] {
        settle(&h.db.url).await;
        let [limit, rest, grpc] =
            turns.measure(&doors, &mut clients, &format!("l{run}-{concurrency}"), turn, concurrency).await?;
        println!(
            "  at {concurrency}, in {SLICES} slices taken in turn with the limit ({:.0} tx/s in them):",
            limit.rate()
        );
        for (name, door) in [("REST", rest), ("gRPC", grpc)] {
            println!(
                "  commands via {name:<4} at {concurrency:>2}: {:>6.0}/s ({}; goal 0.45)   p50 {:.1} ms   p99 {:.1} ms{}",
                door.rate(),
                ratio(door.rate(), limit.rate()),
                percentile(&door.latencies, 50.0),
                percentile(&door.latencies, 99.0),
                if concurrency == 8 { " (goal p99 <= 25 ms)" } else { "" }
            );
            println!("      {} a command", cpu_text(door.cpu.and_then(|c| c.per(door.units as usize))));
        }
    }
    paired_at_8(&h, &doors, &mut clients, &turns, &run, pairs).await?;
    clients.close().await;
    h.stop().await;

    // A backlog: the relay publishes it, the projector catches up on it, the replay rebuilds it.
    let b = Harness::start(&[Role::Api]).await;
    let target = aws_target(&b.db.pool).await?;
    let clusters = backlog.div_ceil(9);
    let seeded = polaris_test_support::history::seed_history(
        &b.db.pool,
        b.org,
        polaris_domain::TargetId::from_uuid(target),
        clusters,
    )
    .await;
    let (raw_rows, raw_scan) = scan_limit(&b.db.pool, "events").await?;
    println!(
        "  backlog: {seeded} events ({clusters} synthetic clusters); ordered scan of it {raw_scan:.0} rows/s ({raw_rows} rows)"
    );
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let server = polaris_server::Server::connect(b.settings.clone()).await?;
    let started = Instant::now();
    let relay = server.spawn_roles(&[Role::Relay], None, stop_rx.clone()).await?;
    let published =
        polaris_test_support::eventually("the relay to publish the backlog", Duration::from_secs(1800), || async {
            let (published,): (i64,) =
                sqlx::query_as("SELECT coalesce(sum(published_total), 0)::bigint FROM relay_progress")
                    .fetch_one(&b.db.pool)
                    .await
                    .ok()?;
            (published as u64 >= seeded).then_some(started.elapsed())
        })
        .await;
    let relay_rate = seeded as f64 / published.as_secs_f64();
    println!("  relay: published the backlog at {relay_rate:.0} events/s ({})", ratio(relay_rate, raw_scan));
    let started = Instant::now();
    let projector = server.spawn_roles(&[Role::Projector], None, stop_rx).await?;
    let caught_up =
        polaris_test_support::eventually("the projector to catch up", Duration::from_secs(1800), || async {
            let (c,): (i64,) = sqlx::query_as("SELECT count(*) FROM topics WHERE status = 'READY'")
                .fetch_one(&b.db.pool)
                .await
                .ok()?;
            (c as usize >= clusters).then_some(started.elapsed())
        })
        .await;
    let projector_rate = seeded as f64 / caught_up.as_secs_f64();
    println!(
        "  projector: caught up on the backlog at {projector_rate:.0} events/s ({}; goal >= 10,000/s)",
        ratio(projector_rate, raw_scan)
    );
    let options = polaris_projector::replay::ReplayOptions::default();
    let report = polaris_projector::replay::replay(&b.db.pool, &options, |_, _| {}).await?;
    println!(
        "  replay: {:.0} events/s over {} events ({}; goals >= 25,000/s and >= 0.15), identical: {}",
        report.events_per_second,
        report.events_applied,
        ratio(report.events_per_second, raw_scan),
        report.identical
    );
    let _ = stop.send(true);
    for t in relay.into_iter().chain(projector) {
        let _ = t.await;
    }
    b.stop().await;
    Ok(())
}

/// The slices of one measurement in turn.
const SLICES: usize = 6;

/// The append limit and cluster requests through REST and through gRPC, measured in [`SLICES`] slices taken in turn
/// (the limit, REST, gRPC; each slice starts one further on in the turn), each door's rate compared with the
/// limit's over the same slices. On this machine a second's append limit moves by up to a quarter from one second
/// to the next, and its correlation with the second before fades within about five (docs/LOAD-AND-FAULTS.md, stop
/// 45): a limit measured in one window and a round in another, seconds apart, each carry their own seconds' speed
/// into the ratio. Slices spread over the same half-minute carry the same.
struct Turns {
    /// The limit's share of a slice.
    window: Duration,
    /// Each door's commands in a slice.
    commands: usize,
}

/// What one of a measurement's three (the limit, REST, gRPC) did over its slices.
#[derive(Default)]
struct Measured {
    /// Transactions or commands.
    units: u64,
    took: Duration,
    /// Each command's latency in ms, sorted (none for the limit).
    latencies: Vec<f64>,
    cpu: Option<CpuSpent>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.units as f64 / self.took.as_secs_f64()
    }
}

impl Turns {
    /// The limit's, REST's and gRPC's figures, the doors at `concurrency`; `turn` chooses which goes first.
    async fn measure(
        &self,
        doors: &Doors,
        limit: &mut LimitClients,
        prefix: &str,
        turn: usize,
        concurrency: usize,
    ) -> anyhow::Result<[Measured; 3]> {
        let mut measured: [Measured; 3] = Default::default();
        for m in &mut measured {
            m.cpu = Some(CpuSpent::default());
        }
        for slice in 0..SLICES {
            for step in 0..3 {
                let kind = (turn + slice + step) % 3;
                let (units, took, latencies, cpu) = match kind {
                    0 => {
                        let (written, took, cpu) = limit.write_for(self.window).await?;
                        (written, took, Vec::new(), cpu)
                    }
                    _ => {
                        let (via, name) = if kind == 1 { (Via::Api, "rest") } else { (Via::Grpc, "grpc") };
                        let slice_prefix = format!("{prefix}-{name}-{slice}");
                        let (took, latencies, cpu) =
                            doors.round(via, &slice_prefix, self.commands, concurrency).await?;
                        (self.commands as u64, took, latencies, cpu)
                    }
                };
                let m = &mut measured[kind];
                m.units += units;
                m.took += took;
                m.latencies.extend(latencies);
                m.cpu = m.cpu.zip(cpu).map(|(a, b)| a + b);
            }
        }
        Ok(measured.map(|m| Measured { latencies: sorted(m.latencies), ..m }))
    }
}

/// The goal at 8 measured again, `pairs` times: each pair the limit and a REST and a gRPC round at 8 in slices
/// taken in turn ([`Turns`]), then the median of each door's ratios.
async fn paired_at_8(
    h: &Harness,
    doors: &Doors,
    limit: &mut LimitClients,
    turns: &Turns,
    run: &str,
    pairs: usize,
) -> anyhow::Result<()> {
    let (mut rest, mut grpc) = (Vec::new(), Vec::new());
    for pair in 1..=pairs {
        settle(&h.db.url).await;
        let [limit_rate, rest_rate, grpc_rate] =
            turns.measure(doors, limit, &format!("p{run}-{pair}"), pair, 8).await?.map(|m| m.rate());
        rest.push(rest_rate / limit_rate);
        grpc.push(grpc_rate / limit_rate);
        println!(
            "  pair {pair}: limit {limit_rate:.0} tx/s; REST at 8 {rest_rate:.0}/s ({:.2}); gRPC at 8 {grpc_rate:.0}/s \
             ({:.2})",
            rest_rate / limit_rate,
            grpc_rate / limit_rate
        );
    }
    for (name, ratios) in [("REST", rest), ("gRPC", grpc)] {
        let ratios = sorted(ratios);
        if let (Some(low), Some(high)) = (ratios.first(), ratios.last()) {
            println!(
                "  paired at 8, {name}: median {:.2} x the limit over {pairs} pairs (lowest {low:.2}, highest \
                 {high:.2}; goal 0.45)",
                percentile(&ratios, 50.0)
            );
        }
    }
    Ok(())
}

async fn drift(clusters: usize, drifts: usize) -> anyhow::Result<()> {
    use kube::api::{Api, Patch, PatchParams};
    use polaris_test_support::harness::{kube_client, wait_for_status};
    const TARGET: &str = "aws-eu-west-1";
    // The schedule every 60 s (the default): what detects an injected drift at once is the watch.
    let h = Harness::start_configured(&ALL, |s| s.drift_interval_secs = 60).await;
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let started = Instant::now();
    let ids: Vec<(String, String, String)> = futures::stream::iter(0..clusters)
        .map(|i| {
            let (h, run) = (&h, &run);
            async move {
                let name = format!("d{run}-{i}");
                let body = post_cluster(h, &name, "aws", "eu-west-1").await?;
                let id = body["cluster"]["id"].as_str().unwrap_or_default().to_owned();
                let ns = body["cluster"]["namespace"].as_str().unwrap_or_default().to_owned();
                wait_for_status(h, &id, "READY", Duration::from_secs(600)).await;
                Ok((id, ns, name))
            }
        })
        .buffer_unordered(10)
        .collect::<Vec<anyhow::Result<_>>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    println!("drift: {clusters} clusters READY on {TARGET} in {:.1} s", started.elapsed().as_secs_f64());

    let target = aws_target(&h.db.pool).await?;
    let detector = polaris_workers::drift::Detector {
        pool: h.db.pool.clone(),
        drifts: std::sync::Arc::new(polaris_store::drift_cqrs(
            h.db.pool.clone(),
            polaris_store::DirectPool::beside(&h.db.pool),
            Default::default(),
        )),
        key: None,
        targets: h.settings.worker_config().targets,
        metrics: Default::default(),
    };
    let mut passes = Vec::new();
    for _ in 0..5 {
        let summary = detector.pass_target(target).await?;
        anyhow::ensure!(summary.detected == 0, "a pass over steady clusters detected drift: {summary:?}");
        println!(
            "  one pass: {} clusters ({} skipped), {} objects compared, {} ms",
            summary.clusters, summary.skipped, summary.objects, summary.millis
        );
        passes.push(summary.millis as f64);
    }
    let passes = sorted(passes);
    println!(
        "  pass over {clusters} clusters  p50 {:.0} ms   max {:.0} ms",
        percentile(&passes, 50.0),
        passes[passes.len() - 1]
    );

    let client = kube_client(TARGET).await;
    let mut latencies = Vec::new();
    for i in 0..drifts {
        let (id, ns, name) = &ids[i % ids.len()];
        let kafkas: Api<polaris_workers::strimzi::Kafka> = Api::namespaced(client.clone(), ns);
        let value = format!("bench-{i}");
        let patch = json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": value}}});
        let t = Instant::now();
        kafkas
            .patch(
                name,
                &PatchParams { field_manager: Some("bench".into()), ..Default::default() },
                &Patch::Merge(&patch),
            )
            .await?;
        loop {
            let list: Value = h
                .http
                .get(h.url(&format!("/v1/clusters/{id}/drift?status=open")))
                .bearer_auth(&h.admin_token)
                .send()
                .await?
                .json()
                .await?;
            let seen = list["items"].as_array().into_iter().flatten().any(|d| d["actual"] == value.as_str());
            if seen {
                break;
            }
            anyhow::ensure!(t.elapsed() < Duration::from_secs(120), "drift {i} not detected within 120 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let l = sorted(latencies);
    println!(
        "  detection latency over {drifts} drifts (change -> GET /drift shows it)  p50 {:.0} ms   p99 {:.0} ms   max {:.0} ms",
        percentile(&l, 50.0),
        percentile(&l, 99.0),
        l[l.len() - 1]
    );
    for (id, _, _) in &ids {
        let _ = h.http.delete(h.url(&format!("/v1/clusters/{id}"))).bearer_auth(&h.admin_token).send().await;
    }
    h.stop().await;
    Ok(())
}

/// mimalloc instead of glibc's malloc: a command allocates and frees many small objects (JSON values, HTTP
/// headers, futures) across two worker threads, and glibc's malloc took 18% of the process' CPU in a REST round
/// (`_int_malloc`, `_int_free`, `malloc_consolidate`, `unlink_chunk`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Append { commands, concurrency, via } => append(commands, concurrency, via).await,
        Command::Provision { clusters, concurrency } => provision(clusters, concurrency).await,
        Command::Real { clusters, partitions } => real(clusters, partitions).await,
        Command::Subscriber { workflows } => subscriber(workflows).await,
        Command::Replay { clusters, batch_size } => replay(clusters, batch_size).await,
        Command::Lag { rate, seconds } => lag(rate, seconds).await,
        Command::Cli { runs } => cli(runs).await,
        Command::Drift { clusters, drifts } => drift(clusters, drifts).await,
        Command::Limit { seconds, commands, backlog, pairs } => limit(seconds, commands, backlog, pairs).await,
        Command::Chaos { minutes, rate, seed, settle_minutes, ready_timeout_secs } => {
            chaos::chaos(minutes, rate, seed, settle_minutes, ready_timeout_secs).await
        }
    }
}
