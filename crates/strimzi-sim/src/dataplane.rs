//! The real data plane behind strimzi-sim: for each `Kafka` resource, real Apache Kafka processes (KRaft) on
//! loopback, run from the jars of the version the resource asks for.
//!
//! A cluster is one controller process (standing in for the whole controller pool: the status says so in a
//! `Warning` condition) and one broker process per node id of the broker pool, each with its own data directory
//! under `<root>/<target>/<namespace>/<name>/`. A small TCP forwarder on a fixed port stands in for the
//! `<name>-kafka-bootstrap` Service: it hands each connection to a running broker, and clients then talk to every
//! broker on its own advertised loopback address, as they would to the pods.
//!
//! Listeners, as Strimzi sets them up:
//! - `CONTROLPLANE-9090` (controller quorum) and `REPLICATION-9091` (inter-broker, and strimzi-sim's own admin
//!   connection): SASL PLAIN with a password strimzi-sim generates per cluster, standing in for Strimzi's
//!   cluster-CA mTLS; that principal is a super user, as Strimzi's cluster operator is;
//! - `PLAIN-9092`: SASL SCRAM-SHA-512, the users' listener (credentials from KafkaUser resources).
//!
//! Each cluster is driven by its own task: it converges the processes on what the resources ask for (start,
//! add and remove brokers, roll them one at a time onto another version with a controlled shutdown and in-sync
//! replicas in between, raise the metadata version) and reports what it observed. A restarted strimzi-sim finds
//! the clusters on disk and brings them back with their data: live processes are adopted, dead ones started.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub const FEATURE_COMMAND: &str = "org.apache.kafka.tools.FeatureCommand";
pub const REASSIGN_COMMAND: &str = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand";
pub const CONFIG_COMMAND: &str = "kafka.admin.ConfigCommand";
pub const CLUSTER_TOOL: &str = "org.apache.kafka.tools.ClusterTool";
pub const ACL_COMMAND: &str = "org.apache.kafka.tools.AclCommand";

/// The principal strimzi-sim (and the brokers among themselves) use on the internal listeners.
pub const INTERNAL_USER: &str = "strimzi-sim";

/// How the data plane is run.
#[derive(Debug)]
pub struct Settings {
    /// Clusters' data directories live under here.
    pub root: PathBuf,
    /// Kafka's jars, by version: `<cache>/kafka-<version>/libs`.
    pub jars: PathBuf,
    /// At most this many clusters run at once, over all targets; more stay NotReady.
    pub max_clusters: usize,
    /// `target/namespace/name` of every cluster running, over all targets.
    pub running: Mutex<BTreeSet<String>>,
    /// The JMX Prometheus exporter agent's jar, when brokers export metrics.
    pub jmx_agent: Option<PathBuf>,
    /// Maximum heap of each process.
    pub heap_mb: u32,
}

/// What the resources ask of one cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    pub generation: i64,
    pub version: String,
    pub metadata_version: Option<String>,
    pub controllers: Vec<i32>,
    pub brokers: Vec<i32>,
    /// Principal names (`User:` is added).
    pub super_users: Vec<String>,
    /// `spec.kafka.config`.
    pub config: BTreeMap<String, String>,
    /// The exporter's rules (from the ConfigMap `metricsConfig` names), when metrics are on.
    pub metrics_rules: Option<String>,
}

/// What the cluster's task last saw.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The `Desired` this describes (a pool's node ids change without the Kafka's generation).
    pub desired: Desired,
    /// Every broker of `Desired` runs the desired version and is registered with the controller.
    pub ready: bool,
    /// The version every process runs, once they all run the same.
    pub kafka_version: Option<String>,
    pub metadata_version: Option<String>,
    pub bootstrap: String,
    /// The TLS listener's bootstrap address, and the cluster CA (PEM) its certificate chains to.
    pub tls_bootstrap: String,
    pub cluster_ca: Option<String>,
    /// Why it is not ready, or what it is doing.
    pub message: Option<String>,
    /// Partition replicas per registered broker, from the last metadata read.
    pub replicas: BTreeMap<i32, usize>,
    /// `metrics` port of each process, by node id, for Prometheus' discovery.
    pub metrics_ports: BTreeMap<i32, u16>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Node {
    id: i32,
    version: String,
    /// REPLICATION-9091 on brokers, CONTROLPLANE-9090 on the controller.
    internal_port: u16,
    /// PLAIN-9092 (brokers only).
    plain_port: u16,
    /// TLS-9093 (brokers only).
    tls_port: u16,
    metrics_port: u16,
}

/// What a cluster keeps on disk (`state.json`), so a restarted strimzi-sim finds it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct State {
    kraft_cluster_id: String,
    internal_password: String,
    bootstrap_port: u16,
    tls_bootstrap_port: u16,
    controller: Option<Node>,
    brokers: BTreeMap<i32, Node>,
    metadata_version: Option<String>,
}

/// A cluster's identity and connection facts, shared with the reconcile pass.
pub struct Cluster {
    pub dir: PathBuf,
    pub desired: watch::Sender<Desired>,
    pub observed: watch::Receiver<Observed>,
    stop: watch::Sender<bool>,
    internal_password: String,
    internal_ports: Arc<Mutex<Vec<u16>>>,
    admin: Mutex<Option<Arc<AdminClient<DefaultClientContext>>>>,
    jars: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Cluster {
    /// The brokers' internal listeners, for strimzi-sim's own admin connection.
    pub fn internal_bootstrap(&self) -> String {
        loopback_list(&self.internal_ports)
    }

    /// An admin client on the internal listener, as strimzi-sim's super user.
    pub fn admin(&self) -> anyhow::Result<Arc<AdminClient<DefaultClientContext>>> {
        let mut admin = self.admin.lock().expect("admin");
        if let Some(a) = admin.as_ref() {
            return Ok(a.clone());
        }
        let client: AdminClient<DefaultClientContext> = self.client_config().create()?;
        let client = Arc::new(client);
        *admin = Some(client.clone());
        Ok(client)
    }

    fn client_config(&self) -> ClientConfig {
        internal_client_config(&self.internal_bootstrap(), &self.internal_password)
    }

    /// Runs one of Kafka's own tools (from the jars of the version `version`) against the internal listener.
    pub async fn tool(&self, version: &str, class: &str, args: &[&str]) -> anyhow::Result<String> {
        run_tool(&self.dir, &self.jars, &self.internal_ports, version, class, args).await
    }

    /// The cluster's partitions as the brokers report them.
    pub async fn partitions(&self) -> anyhow::Result<Vec<Partition>> {
        let admin = self.admin()?;
        tokio::task::spawn_blocking(move || partitions(&admin)).await?
    }
}

/// One partition: its replicas (in assignment order) and in-sync replicas.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

fn partitions(admin: &AdminClient<DefaultClientContext>) -> anyhow::Result<Vec<Partition>> {
    let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10))?;
    let mut out = Vec::new();
    for t in metadata.topics() {
        if let Some(e) = t.error() {
            bail!("metadata of topic {}: {e:?}", t.name());
        }
        for p in t.partitions() {
            out.push(Partition {
                topic: t.name().to_owned(),
                partition: p.id(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
            });
        }
    }
    Ok(out)
}

fn registered_brokers(admin: &AdminClient<DefaultClientContext>) -> anyhow::Result<BTreeSet<i32>> {
    let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10))?;
    Ok(metadata.brokers().iter().map(|b| b.id()).collect())
}

/// `127.0.0.1:<port>,...` of the ports the brokers listen on now.
fn loopback_list(ports: &Mutex<Vec<u16>>) -> String {
    ports.lock().expect("ports").iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
}

fn internal_client_config(bootstrap: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", INTERNAL_USER)
        .set("sasl.password", password)
        .set("log.connection.close", "false")
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Critical);
    c
}

/// The clusters of one target.
pub struct DataPlane {
    settings: Arc<Settings>,
    target: String,
    clusters: HashMap<(String, String), Cluster>,
}

impl DataPlane {
    pub fn new(settings: Arc<Settings>, target: &str) -> Self {
        Self { settings, target: target.to_owned(), clusters: HashMap::new() }
    }

    fn dir(&self, ns: &str, name: &str) -> PathBuf {
        self.settings.root.join(&self.target).join(ns).join(name)
    }

    pub fn get(&self, ns: &str, name: &str) -> Option<&Cluster> {
        self.clusters.get(&(ns.to_owned(), name.to_owned()))
    }

    /// Whether `ns/name` has real processes (running, or on disk from an earlier strimzi-sim).
    pub fn exists(&self, ns: &str, name: &str) -> bool {
        self.get(ns, name).is_some() || self.dir(ns, name).join("state.json").exists()
    }

    /// The cluster `ns/name`, started (or found again on disk) if there is room; `Err(message)` when the limit
    /// of running clusters is reached.
    pub fn ensure(&mut self, ns: &str, name: &str, desired: Desired) -> Result<&Cluster, String> {
        let key = (ns.to_owned(), name.to_owned());
        if !self.clusters.contains_key(&key) {
            let on_disk = self.dir(ns, name).join("state.json").exists();
            let mut running = self.settings.running.lock().expect("running");
            if !on_disk && running.len() >= self.settings.max_clusters {
                return Err(format!(
                    "strimzi-sim runs at most {} real Kafka clusters at once (--max-clusters); running: {}. \
                     Delete one, or raise the limit",
                    self.settings.max_clusters,
                    running.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            running.insert(format!("{}/{ns}/{name}", self.target));
            drop(running);
            let cluster = spawn(self.settings.clone(), self.dir(ns, name), desired.clone())
                .map_err(|e| format!("strimzi-sim could not set up the cluster's processes: {e:#}"))?;
            self.clusters.insert(key.clone(), cluster);
        }
        let cluster = &self.clusters[&key];
        cluster.desired.send_if_modified(|d| {
            let changed = *d != desired;
            *d = desired;
            changed
        });
        Ok(cluster)
    }

    /// Stops and removes every cluster of this target that no Kafka resource asks for any more, including ones
    /// found on disk from an earlier run. `live` holds `(namespace, name)` of every Kafka resource.
    pub async fn remove_others(&mut self, live: &BTreeSet<(String, String)>) {
        let gone: Vec<(String, String)> = self.clusters.keys().filter(|k| !live.contains(*k)).cloned().collect();
        for key in gone {
            if let Some(cluster) = self.clusters.remove(&key) {
                self.settings.running.lock().expect("running").remove(&format!("{}/{}/{}", self.target, key.0, key.1));
                let _ = cluster.stop.send(true);
                let _ = cluster.task.await;
                tracing::info!(namespace = %key.0, kafka = %key.1, "cluster deleted: processes stopped, data removed");
            }
        }
        // Directories left by an earlier run whose resource is gone.
        let target_dir = self.settings.root.join(&self.target);
        for ns in read_dirs(&target_dir) {
            for name in read_dirs(&ns) {
                let key = (file_name(&ns), file_name(&name));
                if !live.contains(&key) && !self.clusters.contains_key(&key) {
                    stop_all_processes(&name).await;
                    let _ = std::fs::remove_dir_all(&name);
                    tracing::info!(dir = %name.display(), "removed the data of a deleted cluster");
                }
            }
            let _ = std::fs::remove_dir(&ns);
        }
    }
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default()
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Where processes' ports are picked: below the kernel's ephemeral range (32768 and up by default), where the
/// development services' fixed ports also are. A port from that range, free when picked, may be the local port of
/// some outgoing connection by the time its broker starts, or starts again after a roll or a crash: the broker
/// then cannot bind it, and fails the same way on every retry for as long as that connection lives.
const PORTS: std::ops::Range<u16> = 20000..32768;

/// The ports this process has handed out and not taken back: a cluster's while it exists (its state found on disk
/// after a restart counts), a node's until it is removed from its pool.
static PICKED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn picked() -> std::sync::MutexGuard<'static, BTreeSet<u16>> {
    PICKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A loopback port that is free now, from [`PORTS`] (or, if none of many tries is, from the kernel), and not one
/// this process has handed out and not taken back. A port is picked long before its process binds it (a
/// cluster's brokers get all their ports first, then start), so a pick that only tried to bind could hand out a
/// port picked a moment earlier for another broker: whichever bound it second could never start (broker 3 and
/// broker 5 of one cluster, both on 25588, in a `./dev/test` run of stop 45).
fn free_port() -> anyhow::Result<u16> {
    let mut picked = picked();
    let span = u128::from(PORTS.end - PORTS.start);
    for _ in 0..64 {
        let port = PORTS.start + (uuid::Uuid::new_v4().as_u128() % span) as u16;
        if !picked.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            picked.insert(port);
            return Ok(port);
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    picked.insert(port);
    Ok(port)
}

impl Node {
    fn ports(&self) -> [u16; 4] {
        [self.internal_port, self.plain_port, self.tls_port, self.metrics_port]
    }
}

impl State {
    /// Every port the cluster's processes listen on.
    fn ports(&self) -> Vec<u16> {
        let nodes = self.controller.iter().chain(self.brokers.values());
        [self.bootstrap_port, self.tls_bootstrap_port].into_iter().chain(nodes.flat_map(Node::ports)).collect()
    }
}

/// Ports of a cluster found on disk (a restarted strimzi-sim adopting its processes), never to be picked for
/// another while it exists.
fn hold_ports(ports: impl IntoIterator<Item = u16>) {
    picked().extend(ports);
}

/// Ports whose processes have exited for good (a deleted cluster, a node removed from its pool), free to be
/// picked again: the set stays as large as what runs, however many clusters come and go.
fn release_ports(ports: impl IntoIterator<Item = u16>) {
    let mut picked = picked();
    for port in ports {
        picked.remove(&port);
    }
}

/// The last lines of a process' `server.log` that say what went wrong, for a message about its failure.
fn failure_lines(node_dir: &Path) -> String {
    let log = std::fs::read(node_dir.join("server.log")).unwrap_or_default();
    let tail = String::from_utf8_lossy(&log[log.len().saturating_sub(16 * 1024)..]).into_owned();
    let lines: Vec<&str> = tail
        .lines()
        .filter(|l| ["ERROR", "FATAL", "Exception", "Error:"].iter().any(|w| l.contains(w)))
        .map(str::trim)
        .collect();
    let text = lines[lines.len().saturating_sub(3)..].join(" | ");
    if text.is_empty() { "nothing in its log".into() } else { text.chars().take(600).collect() }
}

/// A Kafka `Uuid` as Kafka prints it: 16 random bytes, URL-safe base64 without padding; like Kafka's own
/// `Uuid.randomUuid`, never one starting with `-`, which the tools would take for an option.
fn kafka_uuid() -> String {
    loop {
        let id = kafka_uuid_candidate();
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn kafka_uuid_candidate() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn spawn(settings: Arc<Settings>, dir: PathBuf, desired: Desired) -> anyhow::Result<Cluster> {
    std::fs::create_dir_all(&dir)?;
    let state_file = dir.join("state.json");
    let state: State = match std::fs::read(&state_file) {
        Ok(bytes) => {
            let state: State = serde_json::from_slice(&bytes).context("state.json")?;
            hold_ports(state.ports());
            state
        }
        Err(_) => {
            let state = State {
                kraft_cluster_id: kafka_uuid(),
                internal_password: format!("{}", uuid::Uuid::new_v4().simple()),
                bootstrap_port: free_port()?,
                tls_bootstrap_port: free_port()?,
                controller: None,
                brokers: BTreeMap::new(),
                metadata_version: None,
            };
            save(&dir, &state)?;
            state
        }
    };
    write_private(
        &dir.join("admin.properties"),
        &format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config={}\n",
            plain_jaas(&state.internal_password, false)
        ),
    )?;
    let (desired_tx, desired_rx) = watch::channel(desired);
    let (observed_tx, observed_rx) = watch::channel(Observed {
        bootstrap: format!("127.0.0.1:{}", state.bootstrap_port),
        tls_bootstrap: format!("127.0.0.1:{}", state.tls_bootstrap_port),
        ..Default::default()
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let internal_ports = Arc::new(Mutex::new(state.brokers.values().map(|b| b.internal_port).collect::<Vec<_>>()));
    let plain_ports = Arc::new(Mutex::new(state.brokers.values().map(|b| b.plain_port).collect::<Vec<_>>()));
    let tls_ports = Arc::new(Mutex::new(state.brokers.values().map(|b| b.tls_port).collect::<Vec<_>>()));
    for (port, brokers) in [(state.bootstrap_port, &plain_ports), (state.tls_bootstrap_port, &tls_ports)] {
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).with_context(|| format!("bootstrap port {port}"))?;
        listener.set_nonblocking(true)?;
        tokio::spawn(forward_bootstrap(tokio::net::TcpListener::from_std(listener)?, brokers.clone(), stop_rx.clone()));
    }
    let driver = Driver {
        settings,
        dir: dir.clone(),
        state,
        desired: desired_rx,
        observed: observed_tx,
        stop: stop_rx,
        internal_ports: internal_ports.clone(),
        plain_ports,
        tls_ports,
        admin: Mutex::new(None),
    };
    let password = driver.state.internal_password.clone();
    let jars = driver.settings.jars.clone();
    let task = tokio::spawn(driver.run());
    Ok(Cluster {
        dir,
        desired: desired_tx,
        observed: observed_rx,
        stop: stop_tx,
        internal_password: password,
        internal_ports,
        admin: Mutex::new(None),
        jars,
        task,
    })
}

fn save(dir: &Path, state: &State) -> anyhow::Result<()> {
    write_private(&dir.join("state.json"), &serde_json::to_string_pretty(state)?)
}

/// Writes a file only its owner may read (it may hold the internal password).
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

fn plain_jaas(password: &str, server: bool) -> String {
    let users = if server { format!(" user_{INTERNAL_USER}=\"{password}\"") } else { String::new() };
    format!(
        "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"{INTERNAL_USER}\" \
         password=\"{password}\"{users};"
    )
}

/// The `<name>-kafka-bootstrap` Service: each connection goes to the first broker that accepts it.
async fn forward_bootstrap(
    listener: tokio::net::TcpListener,
    brokers: Arc<Mutex<Vec<u16>>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((mut inbound, _)) = accepted else { continue };
        let ports = brokers.lock().expect("ports").clone();
        tokio::spawn(async move {
            for port in ports {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    return;
                }
            }
        });
    }
}

/// Converges one cluster's processes on what its resources ask for.
struct Driver {
    settings: Arc<Settings>,
    dir: PathBuf,
    state: State,
    desired: watch::Receiver<Desired>,
    observed: watch::Sender<Observed>,
    stop: watch::Receiver<bool>,
    internal_ports: Arc<Mutex<Vec<u16>>>,
    plain_ports: Arc<Mutex<Vec<u16>>>,
    tls_ports: Arc<Mutex<Vec<u16>>>,
    /// The admin client of the brokers it was made for (made again when the brokers change).
    admin: Mutex<Option<(String, Arc<AdminClient<DefaultClientContext>>)>>,
}

impl Driver {
    async fn run(mut self) {
        loop {
            if *self.stop.borrow() {
                stop_all_processes(&self.dir).await;
                let _ = std::fs::remove_dir_all(&self.dir);
                release_ports(self.state.ports());
                return;
            }
            let want = self.desired.borrow_and_update().clone();
            if let Err(e) = self.converge(&want).await {
                tracing::warn!(dir = %self.dir.display(), error = %format!("{e:#}"), "converging the cluster");
                self.observed.send_modify(|o| {
                    o.ready = false;
                    o.message = Some(format!("{e:#}"));
                });
            }
            tokio::select! {
                _ = self.desired.changed() => {}
                _ = self.stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    fn save(&self) -> anyhow::Result<()> {
        *self.internal_ports.lock().expect("ports") = self.state.brokers.values().map(|b| b.internal_port).collect();
        *self.plain_ports.lock().expect("ports") = self.state.brokers.values().map(|b| b.plain_port).collect();
        *self.tls_ports.lock().expect("ports") = self.state.brokers.values().map(|b| b.tls_port).collect();
        save(&self.dir, &self.state)
    }

    fn progress(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(dir = %self.dir.display(), "{message}");
        self.observed.send_modify(|o| o.message = Some(message));
    }

    fn admin(&self) -> anyhow::Result<Arc<AdminClient<DefaultClientContext>>> {
        let bootstrap = loopback_list(&self.internal_ports);
        let mut cached = self.admin.lock().expect("admin");
        if let Some((made_for, admin)) = cached.as_ref()
            && *made_for == bootstrap
        {
            return Ok(admin.clone());
        }
        let admin: Arc<AdminClient<DefaultClientContext>> =
            Arc::new(internal_client_config(&bootstrap, &self.state.internal_password).create()?);
        *cached = Some((bootstrap, admin.clone()));
        Ok(admin)
    }

    async fn registered(&self) -> anyhow::Result<BTreeSet<i32>> {
        let admin = self.admin()?;
        tokio::task::spawn_blocking(move || registered_brokers(&admin)).await?
    }

    async fn partitions(&self) -> anyhow::Result<Vec<Partition>> {
        let admin = self.admin()?;
        tokio::task::spawn_blocking(move || partitions(&admin)).await?
    }

    /// Waits until each of `nodes` is registered (unfenced) with the controller. A process that exits meanwhile
    /// fails the wait at once, with what its log says (the next pass starts it again).
    async fn wait_registered(&self, nodes: &[Node], deadline: Duration) -> anyhow::Result<()> {
        let ids: Vec<i32> = nodes.iter().map(|n| n.id).collect();
        let until = Instant::now() + deadline;
        loop {
            let registered = self.registered().await.unwrap_or_default();
            if ids.iter().all(|id| registered.contains(id)) {
                return Ok(());
            }
            if let Some(gone) = nodes.iter().find(|n| self.pid(n).is_none()) {
                let why = failure_lines(&self.node_dir(gone));
                bail!("broker {} exited before it registered: {why}", gone.id);
            }
            if Instant::now() > until {
                bail!("brokers {ids:?} did not register within {deadline:?} (registered: {registered:?})");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Waits until every partition has all its replicas in sync.
    async fn wait_in_sync(&self, deadline: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + deadline;
        loop {
            let lagging: Vec<String> = match self.partitions().await {
                Ok(ps) => ps
                    .iter()
                    .filter(|p| p.replicas.iter().any(|r| !p.isr.contains(r)))
                    .map(|p| format!("{}-{}", p.topic, p.partition))
                    .collect(),
                Err(e) => vec![format!("metadata: {e}")],
            };
            if lagging.is_empty() {
                return Ok(());
            }
            if Instant::now() > until {
                bail!("partitions not in sync within {deadline:?}: {}", lagging.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    fn node_dir(&self, node: &Node) -> PathBuf {
        self.dir.join(format!("node-{}", node.id))
    }

    fn new_node(&self, id: i32, version: &str) -> anyhow::Result<Node> {
        Ok(Node {
            id,
            version: version.to_owned(),
            internal_port: free_port()?,
            plain_port: free_port()?,
            tls_port: free_port()?,
            metrics_port: free_port()?,
        })
    }

    fn voters(&self) -> String {
        self.state.controller.as_ref().map(|c| format!("{}@127.0.0.1:{}", c.id, c.internal_port)).unwrap_or_default()
    }

    /// The node's `server.properties`, written afresh before each start.
    fn properties(&self, node: &Node, controller: bool, want: &Desired) -> String {
        let jaas = plain_jaas(&self.state.internal_password, true);
        let mut super_users = vec![format!("User:{INTERNAL_USER}")];
        super_users.extend(want.super_users.iter().map(|u| format!("User:{u}")));
        let rf = want.brokers.len().clamp(1, 3);
        let mut p: BTreeMap<String, String> = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            p.insert(k.to_owned(), v);
        };
        set("node.id", node.id.to_string());
        set("controller.quorum.voters", self.voters());
        set("controller.listener.names", "CONTROLPLANE-9090".into());
        set("sasl.mechanism.controller.protocol", "PLAIN".into());
        set("listener.name.controlplane-9090.sasl.enabled.mechanisms", "PLAIN".into());
        set("listener.name.controlplane-9090.plain.sasl.jaas.config", jaas.clone());
        set("log.dirs", self.node_dir(node).join("data").display().to_string());
        set("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer".into());
        set("super.users", super_users.join(";"));
        // Small and few: many processes share two cores.
        set("num.network.threads", "2".into());
        set("num.io.threads", "2".into());
        set("background.threads", "2".into());
        set("num.recovery.threads.per.data.dir", "1".into());
        set("log.cleaner.threads", "1".into());
        set("log.cleaner.dedupe.buffer.size", "4194304".into());
        set("log.segment.bytes", "16777216".into());
        if controller {
            set("process.roles", "controller".into());
            set("listeners", format!("CONTROLPLANE-9090://127.0.0.1:{}", node.internal_port));
            set("listener.security.protocol.map", "CONTROLPLANE-9090:SASL_PLAINTEXT".into());
        } else {
            set("process.roles", "broker".into());
            let listeners = format!(
                "REPLICATION-9091://127.0.0.1:{},PLAIN-9092://127.0.0.1:{},TLS-9093://127.0.0.1:{}",
                node.internal_port, node.plain_port, node.tls_port
            );
            set("listeners", listeners.clone());
            set("advertised.listeners", listeners);
            set(
                "listener.security.protocol.map",
                "CONTROLPLANE-9090:SASL_PLAINTEXT,REPLICATION-9091:SASL_PLAINTEXT,PLAIN-9092:SASL_PLAINTEXT,TLS-9093:SSL"
                    .into(),
            );
            // The TLS listener: the brokers' certificate from the cluster CA; clients authenticate with theirs,
            // which the clients CA signs (`authentication: tls`).
            let tls = self.dir.join("tls");
            set("listener.name.tls-9093.ssl.client.auth", "required".into());
            set("listener.name.tls-9093.ssl.keystore.type", "PKCS12".into());
            set("listener.name.tls-9093.ssl.keystore.location", tls.join("broker.p12").display().to_string());
            set("listener.name.tls-9093.ssl.keystore.password", self.state.internal_password.clone());
            set("listener.name.tls-9093.ssl.truststore.type", "PEM".into());
            set("listener.name.tls-9093.ssl.truststore.location", tls.join("clients-ca.crt").display().to_string());
            set("inter.broker.listener.name", "REPLICATION-9091".into());
            set("sasl.mechanism.inter.broker.protocol", "PLAIN".into());
            set("listener.name.replication-9091.sasl.enabled.mechanisms", "PLAIN".into());
            set("listener.name.replication-9091.plain.sasl.jaas.config", jaas);
            set("listener.name.plain-9092.sasl.enabled.mechanisms", "SCRAM-SHA-512".into());
            set(
                "listener.name.plain-9092.scram-sha-512.sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required;".into(),
            );
            set("num.replica.fetchers", "1".into());
            set("offsets.topic.num.partitions", "10".into());
            set("offsets.topic.replication.factor", rf.to_string());
            set("transaction.state.log.replication.factor", rf.to_string());
            set("transaction.state.log.min.isr", rf.min(2).to_string());
            set("share.coordinator.state.topic.replication.factor", rf.to_string());
            set("share.coordinator.state.topic.min.isr", rf.min(2).to_string());
            set("group.initial.rebalance.delay.ms", "0".into());
            // What the resource asks for comes last and wins (Strimzi forbids the listener and security keys).
            for (k, v) in &want.config {
                set(k, v.clone());
            }
        }
        p.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    fn classpath(&self, version: &str) -> anyhow::Result<String> {
        let libs = self.settings.jars.join(format!("kafka-{version}/libs"));
        if !libs.join(format!("kafka_2.13-{version}.jar")).exists() {
            bail!(
                "no Kafka {version} jars under {} (./dev/up and ./dev/test fetch every supported version)",
                libs.display()
            );
        }
        Ok(format!("{}/*", libs.display()))
    }

    /// Formats the node's storage if it was never formatted. A broker's storage is what `kafka-storage format`
    /// leaves in its log dir that a broker reads: `meta.properties` (version 1: cluster id, node id, directory
    /// id), written here without a JVM; the bootstrap checkpoint it also writes is read by the controller only.
    /// The controller's is formatted by Kafka's own StorageTool, with the metadata version.
    async fn format(&self, node: &Node, controller: bool, want: &Desired) -> anyhow::Result<()> {
        let dir = self.node_dir(node);
        if dir.join("data/meta.properties").exists() {
            return Ok(());
        }
        std::fs::create_dir_all(dir.join("data"))?;
        if !controller {
            let meta = format!(
                "#written by strimzi-sim as kafka-storage format writes it\nversion=1\ncluster.id={}\nnode.id={}\n\
                 directory.id={}\n",
                self.state.kraft_cluster_id,
                node.id,
                kafka_uuid()
            );
            let tmp = dir.join("data/meta.properties.tmp");
            std::fs::write(&tmp, meta)?;
            std::fs::rename(&tmp, dir.join("data/meta.properties"))?;
            return Ok(());
        }
        let conf = dir.join("server.properties");
        write_private(&conf, &self.properties(node, controller, want))?;
        let mut cmd = tokio::process::Command::new("java");
        cmd.args(["-Xms32m", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .args(["-cp", &self.classpath(&node.version)?, "kafka.tools.StorageTool", "format", "-t"])
            .arg(&self.state.kraft_cluster_id)
            .arg("-c")
            .arg(&conf);
        if let Some(mv) = self.state.metadata_version.as_ref().or(want.metadata_version.as_ref()) {
            cmd.args(["--release-version", mv]);
        }
        let out = cmd.output().await?;
        if !out.status.success() {
            bail!(
                "formatting node {}: {}{}",
                node.id,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The cluster CA and the brokers' certificate it signs (for 127.0.0.1), and the clients CA the TLS listener
    /// trusts: made once with the JDK's keytool, as Strimzi's cluster operator makes its CAs.
    async fn ensure_certificates(&self) -> anyhow::Result<()> {
        let tls = self.dir.join("tls");
        if tls.join("done").exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&tls)?;
        let cluster_dn = format!("CN={}-kafka,O=io.strimzi", file_name(&self.dir));
        let ca = ["-alias", "ca", "-keystore", "ca.p12"];
        let broker = ["-alias", "broker", "-keystore", "broker.p12"];
        let clients = ["-alias", "clients-ca", "-keystore", "clients-ca.p12"];
        let steps: Vec<Vec<&str>> = vec![
            [&["-genkeypair", "-dname", "CN=cluster-ca v0,O=io.strimzi", "-ext", "bc:c"][..], &ca].concat(),
            [&["-exportcert", "-rfc", "-file", "ca.crt"][..], &ca].concat(),
            [&["-genkeypair", "-dname", &cluster_dn][..], &broker].concat(),
            [&["-certreq", "-file", "broker.csr"][..], &broker].concat(),
            [&["-gencert", "-rfc", "-infile", "broker.csr", "-outfile", "broker.crt"][..], &ca].concat(),
            [&["-importcert", "-noprompt", "-file", "ca.crt"][..], &["-alias", "ca", "-keystore", "broker.p12"]]
                .concat(),
            [&["-importcert", "-noprompt", "-file", "broker.crt"][..], &broker].concat(),
            [&["-genkeypair", "-dname", "CN=clients-ca v0,O=io.strimzi", "-ext", "bc:c"][..], &clients].concat(),
            [&["-exportcert", "-rfc", "-file", "clients-ca.crt"][..], &clients].concat(),
        ];
        // Two independent chains: the cluster CA and the brokers' certificate, and the clients CA.
        let (cluster_chain, clients_chain) = steps.split_at(7);
        let (a, b) = tokio::join!(self.keytool(&tls, cluster_chain), self.keytool(&tls, clients_chain));
        a?;
        b?;
        std::fs::write(tls.join("done"), "")?;
        Ok(())
    }

    async fn keytool(&self, dir: &Path, steps: &[Vec<&str>]) -> anyhow::Result<()> {
        let pw = self.state.internal_password.as_str();
        for args in steps {
            let mut cmd = tokio::process::Command::new("keytool");
            cmd.current_dir(dir).args(args).args(["-storetype", "PKCS12", "-storepass", pw]);
            match args[0] {
                "-genkeypair" => {
                    cmd.args(["-keyalg", "EC", "-groupname", "secp256r1", "-validity", "365", "-keypass", pw]);
                }
                "-gencert" => {
                    cmd.args(["-ext", "san=ip:127.0.0.1,dns:localhost", "-validity", "365"]);
                }
                _ => {}
            }
            let out = cmd.output().await.context("keytool (the JDK's)")?;
            if !out.status.success() {
                bail!("keytool {}: {}", args[0], String::from_utf8_lossy(&out.stderr).replace(pw, "<redacted>"));
            }
        }
        Ok(())
    }

    fn pid(&self, node: &Node) -> Option<u32> {
        let dir = self.node_dir(node);
        let pid: u32 = std::fs::read_to_string(dir.join("pid")).ok()?.trim().parse().ok()?;
        alive(pid, &dir).then_some(pid)
    }

    async fn start(&self, node: &Node, controller: bool, want: &Desired) -> anyhow::Result<()> {
        if self.pid(node).is_some() {
            return Ok(());
        }
        self.format(node, controller, want).await?;
        let dir = self.node_dir(node);
        let conf = dir.join("server.properties");
        write_private(&conf, &self.properties(node, controller, want))?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log"))?;
        let mut cmd = std::process::Command::new("java");
        cmd.arg(format!("-Xmx{}m", self.settings.heap_mb))
            .args(["-Xms32m", "-Xss512k", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:MaxMetaspaceSize=128m"])
            .args(["-XX:ReservedCodeCacheSize=64m", "-XX:CICompilerCount=1", "-Djava.awt.headless=true"])
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn");
        if let (Some(agent), Some(rules)) = (&self.settings.jmx_agent, &want.metrics_rules) {
            let rules_file = dir.join("metrics-rules.yml");
            std::fs::write(&rules_file, rules)?;
            cmd.arg(format!("-javaagent:{}=127.0.0.1:{}:{}", agent.display(), node.metrics_port, rules_file.display()));
        }
        cmd.args(["-cp", &self.classpath(&node.version)?, "kafka.Kafka"])
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Its own process group: the brokers outlive a killed strimzi-sim, which adopts them when it comes back.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().context("starting java")?;
        std::fs::write(dir.join("pid"), child.id().to_string())?;
        // Reaped by a thread, so a stopped process leaves no zombie behind.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        Ok(())
    }

    /// SIGTERM (a broker shuts down in a controlled way: its leaderships move first), then waits for the exit.
    async fn stop_node(&self, node: &Node) -> anyhow::Result<()> {
        if let Some(pid) = self.pid(node) {
            terminate(pid, &self.node_dir(node), Duration::from_secs(120)).await;
        }
        Ok(())
    }

    async fn wait_port(&self, port: u16, deadline: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + deadline;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > until {
                bail!("nothing listens on 127.0.0.1:{port} after {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    async fn converge(&mut self, want: &Desired) -> anyhow::Result<()> {
        self.observed.send_modify(|o| {
            if o.desired != *want {
                o.ready = false;
            }
        });
        // The controller: one process for the controller pool.
        let controller_id = *want.controllers.first().context("the controller pool has no node ids yet")?;
        if self.state.controller.is_none() {
            self.state.controller = Some(self.new_node(controller_id, &want.version)?);
            if self.state.metadata_version.is_none() {
                self.state.metadata_version = want.metadata_version.clone();
            }
            self.save()?;
        }
        let controller = self.state.controller.clone().context("controller")?;
        if controller.version != want.version && self.pid(&controller).is_some() {
            self.progress(format!("rolling controller {} to Kafka {}", controller.id, want.version));
            self.stop_node(&controller).await?;
            self.state.controller.as_mut().context("controller")?.version = want.version.clone();
            self.save()?;
        }
        // The controller and every broker that is new, or whose process is gone (a restarted strimzi-sim, a
        // crash), start together: formatting and JVM start-up are most of a cluster's start, and brokers wait
        // for the controller by themselves.
        let controller = self.state.controller.clone().context("controller")?;
        for id in &want.brokers {
            if !self.state.brokers.contains_key(id) {
                let node = self.new_node(*id, &want.version)?;
                self.state.brokers.insert(*id, node);
                self.save()?;
            }
        }
        let controller_down = self.pid(&controller).is_none();
        let starting: Vec<Node> =
            want.brokers.iter().map(|id| self.state.brokers[id].clone()).filter(|n| self.pid(n).is_none()).collect();
        if controller_down || !starting.is_empty() {
            let ids: Vec<i32> = starting.iter().map(|n| n.id).collect();
            self.progress(format!(
                "starting {}brokers {ids:?}",
                if controller_down { format!("controller {} and ", controller.id) } else { String::new() }
            ));
            let controller_start =
                async { if controller_down { self.start(&controller, true, want).await } else { Ok(()) } };
            // The brokers' certificates and storage are made while the controller starts; then the brokers.
            let (certificates, c, formats) = tokio::join!(
                self.ensure_certificates(),
                controller_start,
                futures::future::join_all(starting.iter().map(|n| self.format(n, false, want)))
            );
            certificates?;
            c?;
            formats.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
            let started = futures::future::join_all(starting.iter().map(|n| self.start(n, false, want))).await;
            started.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
            self.wait_port(controller.internal_port, Duration::from_secs(90)).await?;
            self.wait_registered(&starting, Duration::from_secs(120)).await?;
        }

        // Brokers the pool no longer has (strimzi-sim only drops an id once its broker holds no replicas).
        let leaving: Vec<i32> = self.state.brokers.keys().filter(|id| !want.brokers.contains(id)).copied().collect();
        for id in leaving {
            let node = self.state.brokers[&id].clone();
            self.progress(format!("stopping broker {id} (removed from the pool)"));
            self.stop_node(&node).await?;
            // As Strimzi does for a removed node: the controller forgets its registration, or a later feature
            // upgrade would still count the versions it supported.
            let id_arg = id.to_string();
            run_tool_as(
                &self.dir,
                &self.settings.jars,
                &self.internal_ports,
                &want.version,
                CLUSTER_TOOL,
                &["unregister"],
                "--config",
                &["--id", &id_arg],
            )
            .await?;
            self.state.brokers.remove(&id);
            self.save()?;
            let _ = std::fs::remove_dir_all(self.node_dir(&node));
            release_ports(node.ports());
        }

        // A version change rolls the brokers one at a time: controlled shutdown, start on the new jars, and the
        // next only once every partition is back in sync.
        let behind: Vec<i32> =
            self.state.brokers.values().filter(|b| b.version != want.version).map(|b| b.id).collect();
        for id in behind {
            self.wait_in_sync(Duration::from_secs(180)).await?;
            let node = self.state.brokers[&id].clone();
            self.progress(format!("rolling broker {id} from Kafka {} to {}", node.version, want.version));
            self.stop_node(&node).await?;
            let node = Node { version: want.version.clone(), ..node };
            self.state.brokers.insert(id, node.clone());
            self.save()?;
            self.start(&node, false, want).await?;
            self.wait_registered(std::slice::from_ref(&node), Duration::from_secs(120)).await?;
            self.wait_in_sync(Duration::from_secs(180)).await?;
        }

        // The metadata version is a feature upgrade, once every process runs the new version.
        if let Some(mv) = &want.metadata_version
            && self.state.metadata_version.as_ref() != Some(mv)
        {
            self.progress(format!("raising the metadata version to {mv}"));
            let args = ["upgrade", "--metadata", mv.as_str()];
            run_tool(&self.dir, &self.settings.jars, &self.internal_ports, &want.version, FEATURE_COMMAND, &args)
                .await?;
            self.state.metadata_version = Some(mv.clone());
            self.save()?;
        }

        let registered = self.registered().await?;
        let mut replicas: BTreeMap<i32, usize> = registered.iter().map(|id| (*id, 0)).collect();
        for p in self.partitions().await? {
            for r in p.replicas {
                *replicas.entry(r).or_default() += 1;
            }
        }
        let ready = want.brokers.iter().all(|id| registered.contains(id));
        let mut metrics_ports: BTreeMap<i32, u16> =
            self.state.brokers.values().map(|b| (b.id, b.metrics_port)).collect();
        if let Some(c) = &self.state.controller {
            metrics_ports.insert(c.id, c.metrics_port);
        }
        if want.metrics_rules.is_none() || self.settings.jmx_agent.is_none() {
            metrics_ports.clear();
        }
        let all_on_version = self.state.brokers.values().all(|b| b.version == want.version)
            && self.state.controller.as_ref().is_some_and(|c| c.version == want.version);
        self.observed.send_modify(|o| {
            o.desired = want.clone();
            o.ready = ready && all_on_version;
            o.kafka_version = all_on_version.then(|| want.version.clone());
            o.metadata_version = self.state.metadata_version.clone();
            o.message = (!ready).then(|| format!("brokers registered: {registered:?} of {:?}", want.brokers));
            o.replicas = replicas;
            o.metrics_ports = metrics_ports;
            o.cluster_ca = std::fs::read_to_string(self.dir.join("tls/ca.crt")).ok();
        });
        Ok(())
    }
}

/// Runs one of Kafka's tools with strimzi-sim's admin connection (`admin.properties` in the cluster's
/// directory, which the tool reads; nothing secret goes on its command line).
async fn run_tool(
    dir: &Path,
    jars: &Path,
    ports: &Arc<Mutex<Vec<u16>>>,
    version: &str,
    class: &str,
    args: &[&str],
) -> anyhow::Result<String> {
    run_tool_as(dir, jars, ports, version, class, &[], "--command-config", args).await
}

/// [`run_tool`] for tools whose subcommand comes first (`before`) and whose client config flag is `config_flag`.
#[allow(clippy::too_many_arguments)]
async fn run_tool_as(
    dir: &Path,
    jars: &Path,
    ports: &Arc<Mutex<Vec<u16>>>,
    version: &str,
    class: &str,
    before: &[&str],
    config_flag: &str,
    args: &[&str],
) -> anyhow::Result<String> {
    let config = dir.join("admin.properties");
    let classpath = format!("{}/*", jars.join(format!("kafka-{version}/libs")).display());
    let bootstrap = loopback_list(ports);
    let mut cmd = tokio::process::Command::new("java");
    cmd.args(["-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .args(["-cp", &classpath, class])
        .args(before)
        .args(["--bootstrap-server", &bootstrap, config_flag])
        .arg(&config)
        .args(args)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .with_context(|| format!("{class} did not finish within 120 s"))??;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("{class} {}: {}{}", out.status, stdout.trim(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(stdout)
}

/// Whether `pid` is alive and is the Kafka process of `node_dir` (not a reused pid).
fn alive(pid: u32, node_dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie has exited.
    if stat.split_whitespace().nth(2) == Some("Z") {
        return false;
    }
    String::from_utf8_lossy(&cmdline).contains(&node_dir.join("server.properties").display().to_string())
}

/// kill(1): the crate has no unsafe code, so no kill(2).
async fn signal(pid: u32, name: &str) {
    let _ = tokio::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).output().await;
}

async fn terminate(pid: u32, node_dir: &Path, grace: Duration) {
    signal(pid, "TERM").await;
    let until = Instant::now() + grace;
    while alive(pid, node_dir) {
        if Instant::now() > until {
            signal(pid, "KILL").await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops every process of the cluster in `dir`: the brokers together, then the controller (a broker's controlled
/// shutdown needs it).
async fn stop_all_processes(dir: &Path) {
    let running = |controller: bool| {
        read_dirs(dir)
            .into_iter()
            .filter(|d| {
                let conf = std::fs::read_to_string(d.join("server.properties")).unwrap_or_default();
                conf.contains("process.roles=controller") == controller
            })
            .filter_map(|d| {
                let pid: u32 = std::fs::read_to_string(d.join("pid")).ok()?.trim().parse().ok()?;
                alive(pid, &d).then_some((pid, d))
            })
            .collect::<Vec<_>>()
    };
    for controller in [false, true] {
        let nodes = running(controller);
        futures::future::join_all(nodes.iter().map(|(pid, d)| terminate(*pid, d, Duration::from_secs(30)))).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_port_is_picked_twice() {
        // 2,000 picks from about 12,800 ports: picked at random and only checked by binding, some would repeat.
        let ports: Vec<u16> = (0..2000).map(|_| super::free_port().expect("a free port")).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was picked twice");
    }

    #[test]
    fn a_clusters_ports_are_held_while_it_exists_and_taken_back_when_it_is_deleted() {
        use super::{Node, State, hold_ports, picked, release_ports};
        // Ports no pick returns (above `PORTS` and the kernel's ephemeral range), so the test beside this one, which
        // picks thousands, cannot take one of them between two of its steps.
        let node = |id: i32| {
            let p = 61000 + 10 * id as u16;
            Node {
                id,
                version: "4.2.1".into(),
                internal_port: p,
                plain_port: p + 1,
                tls_port: p + 2,
                metrics_port: p + 3,
            }
        };
        let state = State {
            kraft_cluster_id: super::kafka_uuid(),
            internal_password: "p".into(),
            bootstrap_port: 61100,
            tls_bootstrap_port: 61101,
            controller: Some(node(0)),
            brokers: [(1, node(1)), (2, node(2))].into(),
            metadata_version: None,
        };
        let ports: std::collections::BTreeSet<u16> = state.ports().into_iter().collect();
        assert_eq!(ports.len(), 14, "two bootstrap ports and four a node, all different: {ports:?}");
        // Spawned from its state on disk (a restarted strimzi-sim adopting it): held.
        hold_ports(state.ports());
        assert!(ports.iter().all(|p| picked().contains(p)), "adopted, so held");
        // A broker leaves its pool: its ports only.
        release_ports(state.brokers[&2].ports());
        let left: std::collections::BTreeSet<u16> = ports.iter().copied().filter(|p| picked().contains(p)).collect();
        assert_eq!(left.len(), 10, "a removed broker's four ports taken back, the rest held: {left:?}");
        // Deleted: all of them.
        release_ports(state.ports());
        assert!(ports.iter().all(|p| !picked().contains(p)), "deleted, so free to be picked again");
    }

    #[test]
    fn kafka_uuids_are_22_url_safe_characters_and_never_start_with_a_dash() {
        for _ in 0..2000 {
            let id = super::kafka_uuid();
            assert_eq!(id.len(), 22, "{id}");
            assert!(!id.starts_with('-'), "{id}");
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{id}");
        }
    }
}
