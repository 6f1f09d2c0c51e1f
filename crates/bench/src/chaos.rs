//! `polaris-bench chaos`: a mixed workload through the API while faults are injected on a schedule, then the
//! checks that say what the faults cost.
//!
//! Polaris runs here as four processes, one per role (`polaris-server serve --roles <role>`), supervised as a
//! Deployment would be: a role that exits is started again a second later. They reach PostgreSQL and Kafka through
//! toxiproxy (`v2.12.0`, built by `./dev/up` from the Go module proxy), so latency and connection resets can be put
//! between them; the bootstrap Kafka's second listener advertises the proxy's port, so every broker connection goes
//! through it too. Service restarts go through `dev/fault restart <service>` (the same functions `./dev/up` uses).
//!
//! The faults, in an order that makes neighbours differ: kill -9 of each role; restarts (a crash, then a start) of
//! PostgreSQL, the bootstrap Kafka, Temporal, a kube-apiserver and strimzi-sim; latency and connection resets
//! between Polaris and PostgreSQL, and between Polaris and Kafka; and strimzi-sim's own faults, annotated on the
//! clusters requested while one lasts: a slow operator (Ready 20 s late) and a failing one (`NotReady` with
//! `FatalProblem` until the provisioning deadline stalls the operation, with its reason). They overlap: the next one is injected on time
//! whether the last has recovered or not. The recovery time of a fault is from its injection until a cluster
//! requested after the fault healed is READY (POST, the event store, the relay, Kafka, the projector, Temporal, the
//! workers, the kube-apiserver and strimzi-sim: the whole path).
//!
//! Afterwards, once every operation has ended (or the settle deadline passed), it checks and prints: every
//! acknowledged command has its events; every event reached Kafka (duplicates counted); the read models equal a
//! replay (checksums); no operation is open, and a STALLED one has a reason; no Kubernetes object is duplicated or
//! orphaned; both hash chains verify; no response was a 5xx other than 503.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use polaris_test_support::harness::{Harness, kube_client, try_prepare_faults};
use polaris_test_support::prometheus::free_port;
use serde_json::{Value, json};

const TOXIPROXY_API: &str = "127.0.0.1:58474";
const PG_UPSTREAM: &str = "127.0.0.1:55432";
const PG_PROXY: &str = "127.0.0.1:55433";
/// The bootstrap Kafka's PROXIED listener (dev/lib/services.sh), and the proxy's port it advertises.
const KAFKA_UPSTREAM: &str = "127.0.0.1:59094";
const KAFKA_PROXY: &str = "127.0.0.1:59095";
const ROLES: [&str; 4] = ["api", "relay", "projector", "worker"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Fault {
    KillApi,
    KillRelay,
    KillProjector,
    KillWorker,
    RestartPostgres,
    RestartKafka,
    RestartTemporal,
    RestartKube,
    RestartStrimziSim,
    PostgresLatency,
    PostgresReset,
    KafkaLatency,
    KafkaReset,
    SimSlow,
    SimFail,
}

/// The schedule's order: neighbours differ in what they hit.
const SCHEDULE: [Fault; 15] = [
    Fault::KillApi,
    Fault::SimFail,
    Fault::PostgresLatency,
    Fault::RestartKafka,
    Fault::KillWorker,
    Fault::PostgresReset,
    Fault::RestartTemporal,
    Fault::KillRelay,
    Fault::KafkaLatency,
    Fault::RestartPostgres,
    Fault::KillProjector,
    Fault::KafkaReset,
    Fault::RestartKube,
    Fault::RestartStrimziSim,
    Fault::SimSlow,
];

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Fault::KillApi => "kill -9 api",
            Fault::KillRelay => "kill -9 relay",
            Fault::KillProjector => "kill -9 projector",
            Fault::KillWorker => "kill -9 worker",
            Fault::RestartPostgres => "restart postgres",
            Fault::RestartKafka => "restart kafka",
            Fault::RestartTemporal => "restart temporal",
            Fault::RestartKube => "restart kube-apiserver",
            Fault::RestartStrimziSim => "restart strimzi-sim",
            Fault::PostgresLatency => "postgres latency",
            Fault::PostgresReset => "postgres resets",
            Fault::KafkaLatency => "kafka latency",
            Fault::KafkaReset => "kafka resets",
            Fault::SimSlow => "strimzi-sim slow",
            Fault::SimFail => "strimzi-sim fails",
        }
    }
}

/// The repository (dev/fault, the toxiproxy cache).
fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Kills the child when dropped (toxiproxy, the role processes), so a failed run leaves nothing behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// toxiproxy's HTTP API.
struct Toxiproxy {
    http: reqwest::Client,
    _server: Reaped,
}

impl Toxiproxy {
    async fn start() -> anyhow::Result<Self> {
        let bin = std::env::var_os("TOXIPROXY_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join(".polaris/cache/toxiproxy-v2.12.0/server"));
        anyhow::ensure!(
            bin.exists(),
            "toxiproxy is not built at {}: run ./dev/up (or set TOXIPROXY_BIN)",
            bin.display()
        );
        let (host, port) = TOXIPROXY_API.split_once(':').expect("host:port");
        let log = std::fs::File::create(root().join(".polaris/logs/chaos-toxiproxy.log"))?;
        let server = std::process::Command::new(&bin)
            .args(["-host", host, "-port", port])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let proxy = Self { http: reqwest::Client::new(), _server: Reaped(server) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while proxy.http.get(format!("http://{TOXIPROXY_API}/version")).send().await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "toxiproxy did not answer on {TOXIPROXY_API}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (name, listen, upstream) in [("postgres", PG_PROXY, PG_UPSTREAM), ("kafka", KAFKA_PROXY, KAFKA_UPSTREAM)] {
            let body = json!({"name": name, "listen": listen, "upstream": upstream, "enabled": true});
            let resp = proxy.http.post(format!("http://{TOXIPROXY_API}/proxies")).json(&body).send().await?;
            anyhow::ensure!(resp.status().is_success(), "toxiproxy refused the {name} proxy: {}", resp.text().await?);
        }
        Ok(proxy)
    }

    async fn add(&self, proxy: &str, toxic: Value) -> anyhow::Result<()> {
        let resp = self.http.post(format!("http://{TOXIPROXY_API}/proxies/{proxy}/toxics")).json(&toxic).send().await?;
        anyhow::ensure!(resp.status().is_success(), "toxiproxy refused {toxic}: {}", resp.text().await?);
        Ok(())
    }

    async fn remove(&self, proxy: &str, toxic: &str) -> anyhow::Result<()> {
        let resp = self.http.delete(format!("http://{TOXIPROXY_API}/proxies/{proxy}/toxics/{toxic}")).send().await?;
        anyhow::ensure!(resp.status().is_success(), "toxiproxy kept {proxy}/{toxic}: {}", resp.text().await?);
        Ok(())
    }
}

/// The four role processes, started again a second after one exits (as a Deployment's pod would be).
struct Roles {
    binary: PathBuf,
    env: Vec<(String, String)>,
    ports: BTreeMap<&'static str, u16>,
    children: Mutex<BTreeMap<&'static str, Reaped>>,
    /// Kills this run asked for, per role (a child that exits otherwise is an unexpected exit).
    killed: Mutex<BTreeMap<&'static str, u32>>,
    unexpected_exits: Mutex<BTreeMap<&'static str, u32>>,
}

impl Roles {
    fn spawn(&self, role: &'static str) -> anyhow::Result<Reaped> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root().join(format!(".polaris/logs/chaos-{role}.log")))?;
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.args(["serve", "--roles", role])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("POLARIS_LISTEN", format!("127.0.0.1:{}", self.ports[role]))
            .env("RUST_LOG", "info,rdkafka=warn,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(Reaped(cmd.spawn().with_context(|| format!("starting {} --roles {role}", self.binary.display()))?))
    }

    fn start_all(&self) -> anyhow::Result<()> {
        let mut children = self.children.lock().expect("roles");
        for role in ROLES {
            children.insert(role, self.spawn(role)?);
        }
        Ok(())
    }

    /// kill -9 of one role's process.
    fn kill(&self, role: &'static str) {
        let mut children = self.children.lock().expect("roles");
        if let Some(child) = children.get_mut(role) {
            *self.killed.lock().expect("killed").entry(role).or_default() += 1;
            let _ = child.0.kill();
        }
    }

    /// One supervision round: every role that has exited is started again.
    fn supervise(&self) {
        let mut children = self.children.lock().expect("roles");
        for role in ROLES {
            let exited = children.get_mut(role).is_none_or(|c| matches!(c.0.try_wait(), Ok(Some(_))));
            if !exited {
                continue;
            }
            let mut killed = self.killed.lock().expect("killed");
            match killed.get_mut(role) {
                Some(n) if *n > 0 => *n -= 1,
                _ => *self.unexpected_exits.lock().expect("exits").entry(role).or_default() += 1,
            }
            drop(killed);
            match self.spawn(role) {
                Ok(child) => {
                    children.insert(role, child);
                }
                Err(e) => eprintln!("chaos: starting {role} again: {e:#}"),
            }
        }
    }

    async fn ready(&self, role: &'static str) -> bool {
        let url = format!("http://127.0.0.1:{}/readyz", self.ports[role]);
        let probe = reqwest::Client::new().get(url).timeout(Duration::from_secs(2)).send().await;
        matches!(probe, Ok(r) if r.status().is_success())
    }
}

/// What the workload asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Create,
    Scale,
    Topic,
    User,
    Delete,
}

/// An acknowledged command: what, when, and the operation it started.
#[derive(Clone, Debug)]
struct Ack {
    at: Instant,
    operation_id: String,
}

#[derive(Default)]
struct Tally {
    sent: BTreeMap<Action, u32>,
    acked: Vec<Ack>,
    /// 4xx by status (the cluster was busy or gone: the workload picks clusters blindly).
    refused: BTreeMap<u16, u32>,
    unavailable_503: u32,
    /// No answer: connection refused or reset, or the 20 s timeout (the API process was down).
    no_answer: u32,
    server_errors: Vec<String>,
}

/// The workload's view of the clusters it made: id and broker count, while not deleted.
#[derive(Default)]
struct Fleet {
    clusters: Vec<(String, u32)>,
}

struct Run {
    base: String,
    token: String,
    http: reqwest::Client,
    tally: Mutex<Tally>,
    fleet: Mutex<Fleet>,
    names: std::sync::atomic::AtomicU64,
    prefix: String,
    /// The target's API server, for strimzi-sim's fault annotations.
    kube: kube::Client,
    /// The strimzi-sim fault each cluster requested now gets (annotation, value), while one lasts.
    sim_fault: Mutex<Option<(&'static str, &'static str)>>,
}

impl Run {
    fn next_name(&self, kind: char) -> String {
        let n = self.names.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{kind}{}-{n}", self.prefix)
    }

    /// Sends one command and records its answer; the body when it was acknowledged.
    async fn command(&self, action: Action, req: reqwest::RequestBuilder) -> Option<Value> {
        *self.tally.lock().expect("tally").sent.entry(action).or_default() += 1;
        let resp = req.bearer_auth(&self.token).timeout(Duration::from_secs(20)).send().await;
        let mut tally = self.tally.lock().expect("tally");
        let resp = match resp {
            Ok(resp) => resp,
            Err(_) => {
                tally.no_answer += 1;
                return None;
            }
        };
        let status = resp.status().as_u16();
        drop(tally);
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let mut tally = self.tally.lock().expect("tally");
        match status {
            200..=299 => {
                let operation_id = body["operation"]["id"].as_str().unwrap_or_default().to_owned();
                tally.acked.push(Ack { at: Instant::now(), operation_id });
                Some(body)
            }
            503 => {
                tally.unavailable_503 += 1;
                None
            }
            500..=599 => {
                tally.server_errors.push(format!("{action:?} answered {status}: {body}"));
                None
            }
            _ => {
                *tally.refused.entry(status).or_default() += 1;
                None
            }
        }
    }

    async fn create(&self) -> Option<String> {
        let name = self.next_name('c');
        let fault = *self.sim_fault.lock().expect("sim fault");
        if let Some(annotation) = fault
            && let Err(e) = try_prepare_faults(&self.kube, &name, &[annotation]).await
        {
            // The API server is restarting: this cluster goes without the fault.
            println!("chaos: could not annotate {name} with {annotation:?}: {e}");
        }
        let body = json!({"name": name, "provider": "aws", "region": "eu-west-1", "brokers": 3});
        let accepted =
            self.command(Action::Create, self.http.post(format!("{}/v1/clusters", self.base)).json(&body)).await?;
        let id = accepted["cluster"]["id"].as_str()?.to_owned();
        self.fleet.lock().expect("fleet").clusters.push((id.clone(), 3));
        Some(id)
    }

    async fn act(&self, action: Action, pick: usize) {
        if action == Action::Create {
            self.create().await;
            return;
        }
        let Some((id, brokers)) = ({
            let fleet = self.fleet.lock().expect("fleet");
            (!fleet.clusters.is_empty()).then(|| fleet.clusters[pick % fleet.clusters.len()].clone())
        }) else {
            self.create().await;
            return;
        };
        let cluster = format!("{}/v1/clusters/{id}", self.base);
        match action {
            Action::Create => {}
            Action::Scale => {
                let to = if brokers == 3 { 4 } else { 3 };
                let req = self.http.post(format!("{cluster}/scale")).json(&json!({"brokers": to}));
                if self.command(action, req).await.is_some() {
                    let mut fleet = self.fleet.lock().expect("fleet");
                    if let Some(c) = fleet.clusters.iter_mut().find(|c| c.0 == id) {
                        c.1 = to;
                    }
                }
            }
            Action::Topic => {
                let body = json!({"name": self.next_name('t'), "partitions": 3, "replication_factor": 3});
                self.command(action, self.http.post(format!("{cluster}/topics")).json(&body)).await;
            }
            Action::User => {
                self.command(
                    action,
                    self.http.post(format!("{cluster}/users")).json(&json!({"name": self.next_name('u')})),
                )
                .await;
            }
            Action::Delete => {
                if self.command(action, self.http.delete(&cluster)).await.is_some() {
                    self.fleet.lock().expect("fleet").clusters.retain(|c| c.0 != id);
                }
            }
        }
    }

    /// From a fault's injection until a cluster requested after `healed` is READY: POST until one is accepted, then
    /// GET until READY. `None` when that did not happen within `within`.
    async fn recovery(&self, injected: Instant, healed: Instant, within: Duration) -> Option<Duration> {
        let deadline = healed + within;
        let id = loop {
            if let Some(id) = self.create().await {
                break id;
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let url = format!("{}/v1/clusters/{id}", self.base);
        while Instant::now() < deadline {
            if let Ok(resp) = self.http.get(&url).bearer_auth(&self.token).send().await
                && let Ok(body) = resp.json::<Value>().await
                && body["status"] == "READY"
            {
                return Some(injected.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        None
    }
}

/// One injected fault: when, and how long until the whole path served again.
struct Injected {
    fault: Fault,
    at: Instant,
    recovered_after: Option<Duration>,
    error: Option<String>,
}

/// A small xorshift: the workload's choices follow `--seed`.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn action(&mut self) -> Action {
        match self.next() % 100 {
            0..30 => Action::Create,
            30..55 => Action::Topic,
            55..70 => Action::User,
            70..85 => Action::Scale,
            _ => Action::Delete,
        }
    }
}

async fn inject(run: &Run, roles: &Roles, toxiproxy: &Toxiproxy, fault: Fault) -> anyhow::Result<()> {
    let toxic = |proxy: &str, kind: &str| match kind {
        "latency" => json!({"name": format!("{proxy}-latency"), "type": "latency", "stream": "downstream",
            "attributes": {"latency": 250, "jitter": 100}}),
        _ => json!({"name": format!("{proxy}-reset"), "type": "reset_peer", "stream": "downstream",
            "attributes": {"timeout": 0}}),
    };
    let held = |fault: Fault| if matches!(fault, Fault::PostgresLatency | Fault::KafkaLatency) { 15 } else { 5 };
    match fault {
        Fault::KillApi | Fault::KillRelay | Fault::KillProjector | Fault::KillWorker => {
            let role = match fault {
                Fault::KillApi => "api",
                Fault::KillRelay => "relay",
                Fault::KillProjector => "projector",
                _ => "worker",
            };
            roles.kill(role);
            let deadline = Instant::now() + Duration::from_secs(120);
            tokio::time::sleep(Duration::from_millis(200)).await;
            while !roles.ready(role).await {
                anyhow::ensure!(Instant::now() < deadline, "{role} was not ready again within 120 s");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Fault::PostgresLatency | Fault::PostgresReset | Fault::KafkaLatency | Fault::KafkaReset => {
            let proxy =
                if matches!(fault, Fault::PostgresLatency | Fault::PostgresReset) { "postgres" } else { "kafka" };
            let kind = if matches!(fault, Fault::PostgresLatency | Fault::KafkaLatency) { "latency" } else { "reset" };
            toxiproxy.add(proxy, toxic(proxy, kind)).await?;
            tokio::time::sleep(Duration::from_secs(held(fault))).await;
            toxiproxy.remove(proxy, &format!("{proxy}-{kind}")).await?;
        }
        Fault::SimSlow | Fault::SimFail => {
            let annotation = if fault == Fault::SimSlow {
                ("strimzi-sim.polaris.dev/delay-seconds", "20")
            } else {
                ("strimzi-sim.polaris.dev/fault", "fail")
            };
            *run.sim_fault.lock().expect("sim fault") = Some(annotation);
            tokio::time::sleep(Duration::from_secs(10)).await;
            *run.sim_fault.lock().expect("sim fault") = None;
        }
        Fault::RestartPostgres
        | Fault::RestartKafka
        | Fault::RestartTemporal
        | Fault::RestartKube
        | Fault::RestartStrimziSim => {
            let service = match fault {
                Fault::RestartPostgres => "postgres",
                Fault::RestartKafka => "kafka",
                Fault::RestartTemporal => "temporal",
                Fault::RestartKube => "kube",
                _ => "strimzi-sim",
            };
            let script = root().join("dev/fault");
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(script).args(["restart", service]).stdin(Stdio::null()).output()
            })
            .await??;
            anyhow::ensure!(
                out.status.success(),
                "dev/fault restart {service} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}

pub async fn chaos(
    minutes: f64,
    rate: f64,
    seed: u64,
    settle_minutes: u64,
    ready_timeout_secs: u64,
) -> anyhow::Result<()> {
    let h = Harness::start_configured(&[], |s| s.ready_timeout_secs = ready_timeout_secs).await;
    let pool = h.db.pool.clone();
    // The run restarts PostgreSQL: with the development cluster's asynchronous commit that would lose acknowledged
    // work for reasons that are not Polaris'.
    let (fsync,): (String,) = sqlx::query_as("SHOW fsync").fetch_one(&pool).await?;
    let (sync,): (String,) = sqlx::query_as("SHOW synchronous_commit").fetch_one(&pool).await?;
    anyhow::ensure!(
        fsync == "on" && sync == "on",
        "PostgreSQL runs with fsync={fsync}, synchronous_commit={sync}; this run restarts it, so start it durable: \
         ./dev/down && PG_DURABLE=1 ./dev/up"
    );
    anyhow::ensure!(
        tokio::net::TcpStream::connect(KAFKA_UPSTREAM).await.is_ok(),
        "the bootstrap Kafka has no PROXIED listener on {KAFKA_UPSTREAM} (started before it was added): \
         ./dev/down && ./dev/up"
    );
    let binary = std::env::current_exe()?.with_file_name("polaris-server");
    anyhow::ensure!(binary.exists(), "{} is not built: cargo build -p polaris-server", binary.display());
    let toxiproxy = Toxiproxy::start().await?;

    let s = &h.settings;
    let proxied_db = s.database_url.replace(PG_UPSTREAM, PG_PROXY);
    anyhow::ensure!(proxied_db != s.database_url, "DATABASE_URL does not point at {PG_UPSTREAM}: {}", s.database_url);
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", proxied_db),
        ("KAFKA_BOOTSTRAP", KAFKA_PROXY.to_owned()),
        ("POLARIS_EVENTS_TOPIC", s.events_topic.clone()),
        ("POLARIS_PROJECTOR_GROUP", s.projector_group.clone()),
        ("TEMPORAL_ADDRESS", s.temporal_address.clone()),
        ("POLARIS_TASK_QUEUE", s.task_queue.clone()),
        ("POLARIS_WORKER_GROUP", s.worker_group.clone()),
        ("POLARIS_READY_TIMEOUT_SECS", s.ready_timeout_secs.to_string()),
        ("POLARIS_TARGETS_DIR", s.targets_dir.display().to_string()),
        ("POLARIS_DRIFT_INTERVAL_SECS", "60".to_owned()),
        (
            "POLARIS_CREDENTIALS_KEY_FILE",
            s.credentials_key_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let ports: BTreeMap<&'static str, u16> = ROLES.iter().map(|r| (*r, free_port())).collect();
    let roles = Arc::new(Roles {
        binary,
        env,
        ports: ports.clone(),
        children: Mutex::default(),
        killed: Mutex::default(),
        unexpected_exits: Mutex::default(),
    });
    roles.start_all()?;
    let run = Arc::new(Run {
        base: format!("http://127.0.0.1:{}", ports["api"]),
        token: h.admin_token.clone(),
        http: reqwest::Client::new(),
        tally: Mutex::default(),
        fleet: Mutex::default(),
        names: Default::default(),
        prefix: uuid::Uuid::new_v4().simple().to_string()[..5].to_owned(),
        kube: kube_client("aws-eu-west-1").await,
        sim_fault: Mutex::default(),
    });
    for role in ROLES {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !roles.ready(role).await {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the {role} role was not ready within 60 s (.polaris/logs/chaos-{role}.log)"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let supervisor = {
        let roles = roles.clone();
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => roles.supervise(),
                    _ = stop_rx.changed() => return,
                }
            }
        })
    };

    let baseline = run.recovery(Instant::now(), Instant::now(), Duration::from_secs(120)).await;
    let baseline = baseline.context("no cluster became READY before any fault (see .polaris/logs/chaos-*.log)")?;
    println!("chaos: roles up; a cluster went POST -> READY in {:.1} s before any fault", baseline.as_secs_f64());

    // The workload: `rate` commands a second, each on its own task (an outage does not slow the schedule), at
    // most 64 in flight.
    let workload = {
        let run = run.clone();
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let mut dice = Dice(seed.max(1));
            let slots = Arc::new(tokio::sync::Semaphore::new(64));
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop_rx.changed() => return,
                }
                let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                let (action, pick) = (dice.action(), dice.next() as usize);
                let run = run.clone();
                tokio::spawn(async move {
                    run.act(action, pick).await;
                    drop(slot);
                });
            }
        })
    };

    // One of each kind at least; a longer run injects one every 30 s, cycling through the kinds.
    let total = Duration::from_secs_f64(minutes * 60.0);
    let every = (total / SCHEDULE.len() as u32).min(Duration::from_secs(30)).max(Duration::from_secs(1));
    let count = ((total.as_secs_f64() / every.as_secs_f64()) as usize).max(SCHEDULE.len());
    let started = Instant::now();
    // Each fault waits for its time, then runs (and measures its recovery) concurrently with the others.
    let faults = (0..count).map(|i| {
        let fault = SCHEDULE[i % SCHEDULE.len()];
        let (run, roles, toxiproxy) = (run.clone(), roles.clone(), &toxiproxy);
        async move {
            tokio::time::sleep_until((started + every * i as u32).into()).await;
            println!("chaos: {:>6.1} s  {}", started.elapsed().as_secs_f64(), fault.label());
            let injected = Instant::now();
            let (recovered_after, error) = match inject(&run, &roles, toxiproxy, fault).await {
                Ok(()) => (run.recovery(injected, Instant::now(), Duration::from_secs(600)).await, None),
                Err(e) => (None, Some(format!("{e:#}"))),
            };
            Injected { fault, at: injected, recovered_after, error }
        }
    });
    let injected = futures::future::join_all(faults).await;
    let _ = stop.send(true);
    let _ = workload.await;
    println!(
        "chaos: workload stopped after {:.0} s; settling (up to {settle_minutes} min)",
        started.elapsed().as_secs_f64()
    );

    let settle_deadline = Instant::now() + Duration::from_secs(settle_minutes * 60);
    let open_ops = loop {
        roles.supervise();
        let open: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(
            "SELECT id, kind, state FROM operations WHERE state IN ('pending', 'running') ORDER BY started_at",
        )
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        if open.is_empty() || Instant::now() > settle_deadline {
            break open;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let report = check(&h, &run, &open_ops).await?;
    supervisor.abort();
    let exits = roles.unexpected_exits.lock().expect("exits").clone();
    print_tables(&run, &injected, &report.lost, &exits, baseline);
    report.print();
    drop(toxiproxy);
    drop(roles);
    anyhow::ensure!(report.passed() && injected.iter().all(|f| f.error.is_none()), "chaos: checks failed (above)");
    Ok(())
}

struct Report {
    acked: usize,
    lost: Vec<String>,
    events: usize,
    missing_in_kafka: usize,
    kafka_duplicates: usize,
    replay_identical: bool,
    replay_tables: usize,
    /// The tables whose checksums differ, and the clusters whose rows do.
    replay_differs: Vec<String>,
    open_ops: Vec<String>,
    stalled_without_reason: Vec<String>,
    stalled: usize,
    kube_duplicated: Vec<String>,
    kube_orphaned: Vec<String>,
    kube_missing: Vec<String>,
    chains: Vec<String>,
    chains_intact: bool,
    server_errors: Vec<String>,
    unavailable: u32,
}

impl Report {
    fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.missing_in_kafka == 0
            && self.replay_identical
            && self.open_ops.is_empty()
            && self.stalled_without_reason.is_empty()
            && self.kube_duplicated.is_empty()
            && self.kube_orphaned.is_empty()
            && self.kube_missing.is_empty()
            && self.chains_intact
            && self.server_errors.is_empty()
    }

    fn print(&self) {
        let verdict = |ok: bool| if ok { "ok  " } else { "FAIL" };
        println!("\nchecks");
        println!(
            "  {} acknowledged commands with their events: {} acknowledged, {} lost",
            verdict(self.lost.is_empty()),
            self.acked,
            self.lost.len()
        );
        println!(
            "  {} events in Kafka: {} events, {} missing, {} duplicates",
            verdict(self.missing_in_kafka == 0),
            self.events,
            self.missing_in_kafka,
            self.kafka_duplicates
        );
        println!(
            "  {} read models equal a replay: {} ({} tables compared by checksum)",
            verdict(self.replay_identical),
            if self.replay_identical { "identical" } else { "DIFFERENT" },
            self.replay_tables
        );
        println!(
            "  {} operations ended: {} open, {} stalled ({} without a reason)",
            verdict(self.open_ops.is_empty() && self.stalled_without_reason.is_empty()),
            self.open_ops.len(),
            self.stalled,
            self.stalled_without_reason.len()
        );
        println!(
            "  {} Kubernetes objects: {} duplicated, {} orphaned, {} missing",
            verdict(self.kube_duplicated.is_empty() && self.kube_orphaned.is_empty() && self.kube_missing.is_empty()),
            self.kube_duplicated.len(),
            self.kube_orphaned.len(),
            self.kube_missing.len()
        );
        println!("  {} hash chains: {}", verdict(self.chains_intact), self.chains.join("; "));
        println!(
            "  {} responses: {} 5xx other than 503, {} 503 or no answer during outages",
            verdict(self.server_errors.is_empty()),
            self.server_errors.len(),
            self.unavailable
        );
        for (what, list) in [
            ("lost", &self.lost),
            ("differs from the replay", &self.replay_differs),
            ("open operation", &self.open_ops),
            ("stalled without a reason", &self.stalled_without_reason),
            ("duplicated", &self.kube_duplicated),
            ("orphaned", &self.kube_orphaned),
            ("missing", &self.kube_missing),
            ("5xx", &self.server_errors),
        ] {
            for item in list.iter().take(10) {
                println!("    {what}: {item}");
            }
        }
    }
}

async fn check(h: &Harness, run: &Run, open: &[(uuid::Uuid, String, String)]) -> anyhow::Result<Report> {
    let pool = &h.db.pool;
    let (ids, server_errors, unavailable) = {
        let tally = run.tally.lock().expect("tally");
        let ids: Vec<String> = tally.acked.iter().map(|a| a.operation_id.clone()).collect();
        (ids, tally.server_errors.clone(), tally.unavailable_503 + tally.no_answer)
    };
    // Every acknowledged command's operation has its events.
    let found: BTreeSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT DISTINCT metadata->>'operation_id' FROM events WHERE metadata->>'operation_id' = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let lost: Vec<String> = ids.iter().filter(|id| !found.contains(*id)).cloned().collect();

    // Every event reached Kafka: the relay has had until now; read the topic to its end and compare.
    let stored: Vec<(String, i64)> =
        sqlx::query_as("SELECT aggregate_id, sequence FROM events").fetch_all(pool).await?;
    let mut missing = usize::MAX;
    let mut duplicates = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let topic = h.topic.clone();
        let messages = tokio::task::spawn_blocking(move || polaris_test_support::read_all(&topic)).await?;
        let mut seen: HashMap<(String, i64), u32> = HashMap::new();
        for m in &messages {
            use rdkafka::Message;
            let Some(Ok(envelope)) = m.payload().map(serde_json::from_slice::<Value>) else { continue };
            let key = (
                envelope["aggregate_id"].as_str().unwrap_or_default().to_owned(),
                envelope["sequence"].as_i64().unwrap_or_default(),
            );
            *seen.entry(key).or_default() += 1;
        }
        missing = stored.iter().filter(|k| !seen.contains_key(*k)).count();
        duplicates = seen.values().map(|n| (n - 1) as usize).sum();
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // The read models equal a replay of the events.
    let options =
        polaris_projector::replay::ReplayOptions { settle_timeout: Duration::from_secs(120), ..Default::default() };
    let replay = polaris_projector::replay::replay(pool, &options, |_, _| {}).await?;

    let stalled: Vec<(uuid::Uuid, String, Option<String>)> =
        sqlx::query_as("SELECT id, kind, error FROM operations WHERE state = 'stalled'").fetch_all(pool).await?;
    let stalled_without_reason = stalled
        .iter()
        .filter(|(_, _, e)| e.as_deref().is_none_or(|e| e.trim().is_empty()))
        .map(|(id, kind, _)| format!("{kind} {id}"))
        .collect();

    let (duplicated, orphaned, kube_missing) = kube_objects(pool).await?;

    let chains = polaris_store::chain::verify(pool).await?;
    let chains_intact = chains.iter().all(|c| c.intact());
    Ok(Report {
        acked: ids.len(),
        lost,
        events: stored.len(),
        missing_in_kafka: missing,
        kafka_duplicates: duplicates,
        replay_identical: replay.identical,
        replay_tables: replay.tables.len(),
        replay_differs: replay
            .tables
            .iter()
            .filter(|t| t.live_md5 != t.replayed_md5)
            .map(|t| format!("table {}", t.table))
            .chain(replay.differing_clusters.iter().map(|c| format!("cluster {c}")))
            .collect(),
        open_ops: open.iter().map(|(id, kind, state)| format!("{kind} {id} {state}")).collect(),
        stalled_without_reason,
        stalled: stalled.len(),
        kube_duplicated: duplicated,
        kube_orphaned: orphaned,
        kube_missing,
        chains: chains
            .iter()
            .map(|c| format!("{} {} rows {}", c.chain, c.rows, if c.intact() { "intact" } else { "BROKEN" }))
            .collect(),
        chains_intact,
        server_errors,
        unavailable,
    })
}

/// The Strimzi objects and namespaces on the target labelled with this run's clusters: a cluster's objects in
/// more than one namespace or not in its recorded one (duplicated); objects of a DELETED cluster, other than a
/// namespace already terminating (orphaned); a READY cluster without its Kafka (missing).
async fn kube_objects(pool: &sqlx::PgPool) -> anyhow::Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let clusters: Vec<(uuid::Uuid, String, String)> =
        sqlx::query_as("SELECT id, status, namespace FROM clusters").fetch_all(pool).await?;
    let clusters: HashMap<String, (String, String)> =
        clusters.into_iter().map(|(id, status, ns)| (id.to_string(), (status, ns))).collect();
    let client = kube_client("aws-eu-west-1").await;
    let params = ListParams::default().labels(&format!("{}=polaris", polaris_workers::resources::MANAGED_BY_LABEL));
    let label = polaris_workers::resources::CLUSTER_ID_LABEL;
    let (mut duplicated, mut orphaned, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    let mut kafkas: HashMap<String, u32> = HashMap::new();
    let mut namespaces_of: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (kind, plural) in [
        ("Kafka", "kafkas"),
        ("KafkaNodePool", "kafkanodepools"),
        ("KafkaTopic", "kafkatopics"),
        ("KafkaUser", "kafkausers"),
    ] {
        let gvk = kube::api::GroupVersionKind::gvk("kafka.strimzi.io", "v1", kind);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk_with_plural(&gvk, plural));
        for obj in api.list(&params).await? {
            let Some(cluster) = obj.metadata.labels.as_ref().and_then(|l| l.get(label)).cloned() else { continue };
            let Some((status, _)) = clusters.get(&cluster) else { continue };
            let ns = obj.metadata.namespace.clone().unwrap_or_default();
            let name = format!("{kind} {ns}/{}", obj.metadata.name.clone().unwrap_or_default());
            namespaces_of.entry(cluster.clone()).or_default().insert(ns);
            if kind == "Kafka" {
                *kafkas.entry(cluster.clone()).or_default() += 1;
            }
            if status == "DELETED" && obj.metadata.deletion_timestamp.is_none() {
                orphaned.push(format!("{name} of deleted cluster {cluster}"));
            }
        }
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    for ns in namespaces.list(&params).await? {
        let Some(cluster) = ns.metadata.labels.as_ref().and_then(|l| l.get(label)).cloned() else { continue };
        let Some((status, _)) = clusters.get(&cluster) else { continue };
        if status == "DELETED" && ns.metadata.deletion_timestamp.is_none() {
            orphaned.push(format!("Namespace {} of deleted cluster {cluster}", ns.metadata.name.unwrap_or_default()));
        }
    }
    for (cluster, (status, recorded)) in &clusters {
        let found = namespaces_of.get(cluster).cloned().unwrap_or_default();
        if found.len() > 1 || found.iter().any(|ns| ns != recorded) {
            duplicated.push(format!("cluster {cluster}: objects in {found:?}, recorded namespace {recorded}"));
        }
        if kafkas.get(cluster).copied().unwrap_or(0) > 1 {
            duplicated.push(format!("cluster {cluster}: {} Kafka objects", kafkas[cluster]));
        }
        if status == "READY" && !kafkas.contains_key(cluster) {
            missing.push(format!("READY cluster {cluster} has no Kafka object"));
        }
    }
    Ok((duplicated, orphaned, missing))
}

fn print_tables(
    run: &Run,
    injected: &[Injected],
    lost: &[String],
    exits: &BTreeMap<&'static str, u32>,
    baseline: Duration,
) {
    let tally = run.tally.lock().expect("tally");
    let lost: BTreeSet<&str> = lost.iter().map(String::as_str).collect();
    println!("\nfaults (recovery: from the injection until a cluster requested after the fault healed is READY;");
    println!("        before any fault that took {:.1} s)", baseline.as_secs_f64());
    println!("  {:<24} {:>8} {:>14} {:>6} {:>16}", "fault", "injected", "acked during", "lost", "longest recovery");
    let mut by_kind: BTreeMap<Fault, Vec<&Injected>> = BTreeMap::new();
    for f in injected {
        by_kind.entry(f.fault).or_default().push(f);
    }
    for (fault, list) in &by_kind {
        let (mut acked, mut lost_here) = (0, 0);
        let mut longest: Option<Duration> = Some(Duration::ZERO);
        for f in list {
            let end = f.at + f.recovered_after.unwrap_or(Duration::from_secs(600));
            let during = || tally.acked.iter().filter(|a| a.at >= f.at && a.at <= end);
            acked += during().count();
            lost_here += during().filter(|a| lost.contains(a.operation_id.as_str())).count();
            longest = match (longest, f.recovered_after) {
                (Some(l), Some(r)) => Some(l.max(r)),
                _ => None,
            };
        }
        let longest = longest.map(|d| format!("{:.1} s", d.as_secs_f64())).unwrap_or_else(|| "NOT RECOVERED".into());
        println!("  {:<24} {:>8} {:>14} {:>6} {:>16}", fault.label(), list.len(), acked, lost_here, longest);
        for f in list.iter().filter(|f| f.error.is_some()) {
            println!("    injection failed: {}", f.error.as_deref().unwrap_or_default());
        }
    }
    println!("\nworkload");
    for (action, n) in &tally.sent {
        println!("  {action:?}: {n} sent");
    }
    println!(
        "  acknowledged {}; refused {:?} (4xx by status: the workload picks clusters blindly); 503 {}; no answer {}; \
         5xx other than 503: {}",
        tally.acked.len(),
        tally.refused,
        tally.unavailable_503,
        tally.no_answer,
        tally.server_errors.len()
    );
    if exits.is_empty() {
        println!("  role processes: none exited unless killed");
    } else {
        println!("  role processes that exited unless killed (started again): {exits:?}");
    }
}
