//! `strimzi-sim`: a clearly named stand-in for the Strimzi cluster operator, for development and tests only.
//!
//! The local Kubernetes API servers have no kubelets, so the real operator cannot run its pods. This program
//! watches Kafka, KafkaNodePool, KafkaTopic, KafkaUser and KafkaRebalance resources on each API server it is
//! given and writes their status the way Strimzi does (field names from the real CRDs): node ids per pool, the
//! `Ready` condition with `observedGeneration`, listener bootstrap addresses, `kafkaVersion` and
//! `kafkaMetadataVersion`.
//!
//! Behind that status the data plane is real ([`dataplane`]): each Kafka resource runs real Apache Kafka
//! processes on loopback, of the version it asks for; KafkaTopics are created, grown and reconfigured on those
//! brokers; KafkaUsers get their SCRAM credentials there; a KafkaRebalance moves real replicas with Kafka's own
//! reassignment tool; a broker pool is lowered only once the leaving brokers hold no replica, as the cluster
//! reports it. `--data-plane status` (or the annotation `strimzi-sim.polaris.dev/data-plane: status` on a
//! cluster) keeps the old status-only behaviour for suites that test the control plane alone: its status then
//! names a `*.svc` address that nothing serves.
//!
//! KafkaRebalances go through Strimzi's states (`PendingProposal`, `ProposalReady`, then `Rebalancing` once
//! approved with `strimzi.io/rebalance=approve`, then `Ready`). It also finalizes deleted namespaces, the part of
//! kube-controller-manager a namespace deletion needs, since none runs locally.
//!
//! Tests drive faults with annotations on a resource, on its namespace, or on a ConfigMap named after the cluster
//! in the namespace `strimzi-sim-faults` (a cluster's namespace carries its id, so a test cannot create it ahead
//! of the request, and Polaris would refuse a namespace it did not create):
//! - `strimzi-sim.polaris.dev/fault: stall`: never becomes Ready (stays `NotReady`, reason `Creating`);
//! - `strimzi-sim.polaris.dev/fault: fail`: reports `NotReady` with a failure reason and message;
//! - `strimzi-sim.polaris.dev/topic-fault: stall` on a namespace: its KafkaTopics never become Ready;
//! - `strimzi-sim.polaris.dev/delay-seconds: "N"`: becomes Ready N seconds after it is first seen at its
//!   current generation (slow);
//! - `strimzi-sim.polaris.dev/data-plane: real|status`: whether the cluster runs real brokers (the default is
//!   `--data-plane`).

mod cache;
mod dataplane;
mod pods;
mod rebalance;
mod topics;
mod users;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::PostParams;
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::{Api, Client, ResourceExt};
use polaris_workers::istio::{AuthorizationPolicy, DestinationRule, PeerAuthentication};
use polaris_workers::monitoring::PodMonitor;
use polaris_workers::strimzi::{
    CLUSTER_LABEL, Condition, Kafka, KafkaNodePool, KafkaNodePoolStatus, KafkaRebalance, KafkaRebalanceStatus,
    KafkaStatus, KafkaTopic, KafkaTopicStatus, KafkaUser, KafkaUserStatus, ListenerStatus, ProcessRole,
    UsedNodePoolStatus,
};

use dataplane::{DataPlane, Desired};
use serde_json::json;

pub const FAULT: &str = "strimzi-sim.polaris.dev/fault";
/// On a namespace: its KafkaTopics never become Ready (its Kafka is unaffected).
pub const TOPIC_FAULT: &str = "strimzi-sim.polaris.dev/topic-fault";
pub const DELAY: &str = "strimzi-sim.polaris.dev/delay-seconds";
/// `real` or `status`: whether a cluster runs real brokers.
pub const DATA_PLANE: &str = "strimzi-sim.polaris.dev/data-plane";
/// ConfigMaps here, named after a cluster, carry fault annotations for that cluster's resources.
pub const FAULTS_NAMESPACE: &str = "strimzi-sim-faults";
const OPERATOR_VERSION: &str = "1.3.0-strimzi-sim";
/// The longest an idle target goes without a pass.
const RESYNC: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(name = "strimzi-sim", about = "Strimzi stand-in for local API servers (development and tests only)")]
struct Args {
    /// Kubeconfig of an API server to reconcile; repeat for each target.
    #[arg(long = "kubeconfig", required = true)]
    kubeconfigs: Vec<String>,
    /// Milliseconds between reconcile passes.
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
    /// `real`: each Kafka resource runs real brokers; `status`: status only (a cluster's `data-plane` annotation
    /// overrides it).
    #[arg(long, default_value = "real", value_parser = ["real", "status"])]
    data_plane: String,
    /// Where the clusters' data directories live.
    #[arg(long, default_value = ".polaris/data/strimzi-sim")]
    data_dir: PathBuf,
    /// Kafka's jars by version (`kafka-<version>/libs`), as dev/lib/install-kafka.sh caches them.
    #[arg(long, default_value = ".polaris/cache")]
    kafka_jars: PathBuf,
    /// Real clusters running at once, over all targets; more stay NotReady until one is deleted.
    #[arg(long, default_value_t = 3)]
    max_clusters: usize,
    /// Maximum heap of each broker and controller process, in MiB.
    #[arg(long, default_value_t = 192)]
    heap_mb: u32,
    /// The JMX Prometheus exporter agent's jar; brokers of clusters with `metricsConfig` run it.
    #[arg(long)]
    jmx_agent: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let mut sims = Vec::new();
    let settings = Arc::new(dataplane::Settings {
        root: std::path::absolute(&args.data_dir)?,
        jars: std::path::absolute(&args.kafka_jars)?,
        max_clusters: args.max_clusters,
        running: Default::default(),
        jmx_agent: args.jmx_agent.as_ref().map(std::path::absolute).transpose()?,
        heap_mb: args.heap_mb,
    });
    for path in &args.kubeconfigs {
        let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {path}"))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        let target = std::path::Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.clone());
        let client = Client::try_from(config)?;
        sims.push(Sim {
            name: path.clone(),
            caches: cache::Caches::start(&client, &target),
            settled: HashMap::new(),
            changes_seen: 0,
            idle: false,
            last_pass: Instant::now(),
            client,
            first_seen: HashMap::new(),
            plane: DataPlane::new(settings.clone(), &target),
            default_real: args.data_plane == "real",
            wanted_pods: BTreeMap::new(),
            users: HashMap::new(),
            rebalances: HashMap::new(),
        });
    }
    // Announced once every store is listed (./dev/up waits for this line); a target that is down by then is
    // reconciled as soon as its stores are.
    let listed = Instant::now() + Duration::from_secs(30);
    while !sims.iter().all(|s| s.caches.synced()) && Instant::now() < listed {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(targets = sims.len(), "strimzi-sim reconciling");
    loop {
        for sim in &mut sims {
            if let Err(e) = sim.pass().await {
                tracing::warn!(target = %sim.name, error = %e, "reconcile pass failed");
            }
        }
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
}

struct Sim {
    name: String,
    client: Client,
    caches: cache::Caches,
    /// Status-only resources whose last reconcile wrote nothing, by `kind/uid`: the fingerprint of what it read
    /// ([`Faults::fingerprint`]). They are passed over until it changes.
    settled: HashMap<String, u64>,
    /// [`cache::Caches::changes`] when the last pass began.
    changes_seen: u64,
    /// The last pass left every resource settled, no namespace terminating and no deleted user on the brokers.
    idle: bool,
    last_pass: Instant,
    /// When each (uid, generation) was first seen, for `delay-seconds`.
    first_seen: HashMap<(String, i64), Instant>,
    plane: DataPlane,
    default_real: bool,
    /// The Pods each Kafka reconciled in this pass should have ([`pods`]).
    wanted_pods: BTreeMap<(String, String), Vec<Pod>>,
    /// KafkaUser uid -> what was last applied on the brokers for it.
    users: HashMap<String, AppliedUser>,
    /// KafkaRebalance uid -> the moves it executes.
    rebalances: HashMap<String, Vec<rebalance::Move>>,
}

/// What strimzi-sim last applied on the brokers for a KafkaUser.
#[derive(Clone, Debug, PartialEq)]
struct AppliedUser {
    ns: String,
    cluster: String,
    name: String,
    /// SHA-256 of the password.
    password: Option<String>,
    /// The ACL bindings and quotas, as JSON (`None`: not applied yet).
    rules: Option<String>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Keeps a condition's `lastTransitionTime` when its type and status did not change, as Strimzi does.
fn condition(
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> Condition {
    let since = previous
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_) && c.status.as_deref() == Some(status))
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(now);
    Condition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: reason.map(Into::into),
        message: message.map(Into::into),
        last_transition_time: Some(since),
    }
}

impl Sim {
    async fn pass(&mut self) -> anyhow::Result<()> {
        if !self.caches.synced() {
            return Ok(());
        }
        // No watch event since a pass that left every resource settled: nothing can need work, but a pass runs at
        // least every RESYNC all the same, as informers resync.
        let changes = self.caches.changes();
        if self.idle && changes == self.changes_seen && self.last_pass.elapsed() < RESYNC {
            return Ok(());
        }
        // Read before anything else: an event arriving during this pass makes the next one run.
        self.changes_seen = changes;
        self.last_pass = Instant::now();
        self.idle = false;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        // Only the terminating ones: listing every namespace twice a pass, of the hundreds a test run leaves, kept
        // this process and the API server busy while nothing changed.
        let terminating = namespaces.list(&ListParams::default().fields("status.phase=Terminating")).await?;
        for ns in terminating.iter().filter(|n| n.metadata.deletion_timestamp.is_some()) {
            // What kube-controller-manager's namespace controller does: delete the content, and only once it is
            // gone (finalizers included), drop the namespace's own finalizer.
            if self.empty_namespace(&ns.name_any()).await? {
                finalize_namespace(&namespaces, ns).await?;
            }
        }
        // Every resource is read before the fault annotations are: a fault annotated before a resource was created
        // is then always seen with that resource. Kafkas, pools, topics, users, rebalances and namespaces come from
        // the informers ([`cache`]); the faults' ConfigMaps are listed fresh.
        let rebalance_list = self.caches.rebalances.state();
        let kafka_list = self.caches.kafkas.state();
        let mut pools = self.caches.pools_by_cluster();
        let topic_list = self.caches.topics.state();
        let user_list = self.caches.users.state();
        let cluster_faults: HashMap<String, BTreeMap<String, String>> =
            Api::<ConfigMap>::namespaced(self.client.clone(), FAULTS_NAMESPACE)
                .list(&ListParams::default())
                .await
                .map(|l| l.into_iter().map(|c| (c.name_any(), c.annotations().clone())).collect())
                .unwrap_or_default();
        let mut faults = Faults::new(namespaces, &self.caches, cluster_faults);
        let mut seen = BTreeSet::new();
        for rebalance in rebalance_list {
            let ns = rebalance.namespace().unwrap_or_default();
            let cluster = rebalance.labels().get(CLUSTER_LABEL);
            let print = faults.fingerprint(&*rebalance, &[], &ns, cluster);
            let Some(key) = self.unsettled(&mut seen, "rebalance", rebalance.uid(), print) else { continue };
            let annotations = faults.fresh(&ns, cluster, rebalance.annotations()).await?;
            let wrote = self.reconcile_rebalance(&rebalance, &ns, &annotations).await?;
            self.settle(key, print, !wrote && self.status_only(&ns, cluster));
        }
        let live: BTreeSet<(String, String)> =
            kafka_list.iter().map(|k| (k.namespace().unwrap_or_default(), k.name_any())).collect();
        self.plane.remove_others(&live).await;
        self.wanted_pods.clear();
        for kafka in kafka_list {
            let ns = kafka.namespace().unwrap_or_default();
            let name = kafka.name_any();
            let pools = pools.remove(&(ns.clone(), name.clone())).unwrap_or_default();
            let print = faults.fingerprint(&*kafka, &pools, &ns, Some(&name));
            // A status-only cluster whose resources and faults are as they were when its status last needed no
            // write: nothing to do (its Pods, if any, are left as they are).
            let Some(key) = self.unsettled(&mut seen, "kafka", kafka.uid(), print) else { continue };
            let annotations = match faults.fresh(&ns, Some(&name), kafka.annotations()).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(kafka = %name, namespace = %ns, error = %e, "reading the namespace's faults");
                    continue;
                }
            };
            match self.reconcile_kafka(&kafka, &ns, &annotations, pools).await {
                Ok(settled) => self.settle(key, print, settled),
                Err(e) => tracing::warn!(kafka = %name, namespace = %ns, error = %e, "reconcile failed"),
            }
        }
        let pods_reconciled = pods::reconcile(&self.client, &self.wanted_pods, &live).await;
        if let Err(e) = &pods_reconciled {
            tracing::warn!(error = %e, "pods reconcile failed");
        }
        for topic in topic_list {
            let ns = topic.namespace().unwrap_or_default();
            let cluster = topic.labels().get(CLUSTER_LABEL);
            let print = faults.fingerprint(&*topic, &[], &ns, cluster);
            let Some(key) = self.unsettled(&mut seen, "topic", topic.uid(), print) else { continue };
            let result = match faults.fresh(&ns, cluster, topic.annotations()).await {
                Ok(annotations) => {
                    let stalled = annotations.get(TOPIC_FAULT).map(String::as_str) == Some("stall")
                        || topic.annotations().get(FAULT).map(String::as_str) == Some("stall");
                    self.reconcile_topic(&topic, stalled).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(wrote) => self.settle(key, print, !wrote && self.status_only(&ns, cluster)),
                // Left behind in a namespace that no longer exists (dev data from older builds): nothing to do.
                Err(e)
                    if e.downcast_ref::<kube::Error>()
                        .is_some_and(|k| matches!(k, kube::Error::Api(a) if a.code == 404)) =>
                {
                    self.settle(key, print, true)
                }
                Err(e) => {
                    tracing::warn!(topic = %topic.name_any(), namespace = %ns, error = %e, "topic reconcile failed")
                }
            }
        }
        for user in &user_list {
            let ns = user.namespace().unwrap_or_default();
            let cluster = user.labels().get(CLUSTER_LABEL);
            let print = faults.fingerprint(&**user, &[], &ns, cluster);
            let Some(key) = self.unsettled(&mut seen, "user", user.uid(), print) else { continue };
            match self.reconcile_user(user).await {
                Ok(wrote) => self.settle(key, print, !wrote && self.status_only(&ns, cluster)),
                Err(e) => tracing::warn!(user = %user.name_any(), error = %format!("{e:#}"), "user reconcile failed"),
            }
        }
        let users_removed = self.remove_deleted_users(&user_list).await;
        self.settled.retain(|k, _| seen.contains(k));
        let unsettled = seen.iter().filter(|k| !self.settled.contains_key(*k)).count();
        self.idle = pods_reconciled.is_ok() && users_removed && terminating.items.is_empty() && unsettled == 0;
        let ms = self.last_pass.elapsed().as_millis();
        tracing::debug!(target = %self.name, resources = seen.len(), unsettled, ms, "pass");
        Ok(())
    }

    /// The key (`kind/uid`) of a resource this pass reconciles, or `None` when it is settled at `print`.
    fn unsettled(
        &mut self,
        seen: &mut BTreeSet<String>,
        kind: &str,
        uid: Option<String>,
        print: u64,
    ) -> Option<String> {
        let key = format!("{kind}/{}", uid.unwrap_or_default());
        seen.insert(key.clone());
        if self.settled.get(&key) == Some(&print) {
            return None;
        }
        self.settled.remove(&key);
        Some(key)
    }

    /// Whether the resource of cluster `ns/cluster` is status only (no real brokers behind it).
    fn status_only(&self, ns: &str, cluster: Option<&String>) -> bool {
        cluster.is_none_or(|c| self.plane.get(ns, c).is_none())
    }

    /// Records that the resource `key` needs nothing while its fingerprint stays `print`, or forgets it.
    fn settle(&mut self, key: String, print: u64, settled: bool) {
        if settled {
            self.settled.insert(key, print);
        } else {
            self.settled.remove(&key);
        }
    }

    /// The User Operator: SCRAM credentials, ACLs and client quotas on the brokers (each applied again only when
    /// it changed), its Secret, and `Ready` with the username.
    async fn reconcile_user(&mut self, user: &KafkaUser) -> anyhow::Result<bool> {
        let ns = user.namespace().unwrap_or_default();
        let name = user.name_any();
        let uid = user.uid().unwrap_or_default();
        if user.metadata.deletion_timestamp.is_some() {
            return Ok(false);
        }
        let cluster_name = user.labels().get(CLUSTER_LABEL).cloned().unwrap_or_default();
        let cluster = self.plane.get(&ns, &cluster_name);
        let generation = user.metadata.generation.unwrap_or(0);
        if let Some(c) = cluster {
            if !c.observed.borrow().ready {
                return Ok(false);
            }
            let mut applied = self.users.get(&uid).cloned().unwrap_or(AppliedUser {
                ns: ns.clone(),
                cluster: cluster_name.clone(),
                name: name.clone(),
                password: None,
                rules: None,
            });
            let password = users::password(&self.client, &ns, user).await?;
            let fingerprint = password.as_deref().map(users::fingerprint);
            if let Some(password) = &password
                && applied.password != fingerprint
            {
                users::set_scram(c, &name, password).await?;
                users::write_user_secret(&self.client, &ns, user, password).await?;
                tracing::info!(user = %name, namespace = %ns, "SCRAM-SHA-512 credentials set on the brokers");
                // Recorded at once: a failure below does not set the same credential again.
                applied.password = fingerprint;
                self.users.insert(uid.clone(), applied.clone());
            }
            let acls = user.spec.authorization.as_ref().map(|a| a.acls.clone()).unwrap_or_default();
            let rules = serde_json::to_string(&(&acls, &user.spec.quotas))?;
            // A user first seen without ACLs or quotas (Polaris' own admin, a super user) costs no tool runs.
            let nothing = acls.is_empty() && user.spec.quotas.is_none();
            let changed = match &applied.rules {
                Some(r) => *r != rules,
                None => !nothing,
            };
            if changed {
                users::apply_acls(c, &name, &users::desired_bindings(&acls)).await?;
                users::apply_quotas(c, &name, user.spec.quotas.as_ref()).await?;
                tracing::info!(user = %name, namespace = %ns, rules = acls.len(), "ACLs and quotas set on the brokers");
            }
            applied.rules = Some(rules);
            self.users.insert(uid, applied);
        }
        let previous = user.status.clone().unwrap_or_default();
        let desired = KafkaUserStatus {
            conditions: vec![condition(&previous.conditions, "Ready", "True", None, None)],
            observed_generation: Some(generation),
            username: Some(name.clone()),
            secret: Some(name.clone()),
        };
        if user.status.as_ref() != Some(&desired) {
            let api: Api<KafkaUser> = Api::namespaced(self.client.clone(), &ns);
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": desired}))).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// KafkaUsers applied on the brokers that are gone (or going): their credentials, ACLs and quotas leave the
    /// brokers and their Secret goes, as the User Operator does on a delete. True when none is left to remove.
    async fn remove_deleted_users(&mut self, users: &[Arc<KafkaUser>]) -> bool {
        let live: BTreeSet<String> =
            users.iter().filter(|u| u.metadata.deletion_timestamp.is_none()).filter_map(|u| u.uid()).collect();
        let gone: Vec<(String, AppliedUser)> =
            self.users.iter().filter(|(uid, _)| !live.contains(*uid)).map(|(k, v)| (k.clone(), v.clone())).collect();
        for (uid, user) in gone {
            let cluster = self.plane.get(&user.ns, &user.cluster);
            match users::remove_user(&self.client, cluster, &user.ns, &user.name).await {
                Ok(()) => {
                    tracing::info!(user = %user.name, namespace = %user.ns, "user removed from the brokers");
                    self.users.remove(&uid);
                }
                Err(e) => tracing::warn!(user = %user.name, error = %format!("{e:#}"), "removing a deleted user"),
            }
        }
        self.users.keys().all(|uid| live.contains(uid))
    }

    /// Deletes what is left in a terminating namespace (the Strimzi resources, the Istio and Prometheus Operator
    /// objects Polaris writes, Pods, Secrets and ConfigMaps); true once none is left. Without it they would
    /// outlive the namespace in etcd, and a cluster created again under the same name would find them.
    async fn empty_namespace(&self, ns: &str) -> anyhow::Result<bool> {
        async fn sweep<K>(api: Api<K>) -> anyhow::Result<usize>
        where
            K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
                + Clone
                + for<'de> k8s_openapi::serde::Deserialize<'de>
                + std::fmt::Debug,
            <K as kube::Resource>::DynamicType: Default,
        {
            let left = match api.list(&ListParams::default()).await {
                Ok(list) => list.items.len(),
                // A kind the API server does not serve (Istio's, where its CRDs are not installed): nothing left.
                Err(kube::Error::Api(e)) if e.code == 404 => 0,
                Err(e) => return Err(e.into()),
            };
            if left > 0 {
                api.delete_collection(&kube::api::DeleteParams::background(), &ListParams::default()).await?;
            }
            Ok(left)
        }
        let c = &self.client;
        let left = sweep(Api::<KafkaTopic>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<KafkaRebalance>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<Kafka>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<KafkaNodePool>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<KafkaUser>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<PeerAuthentication>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<AuthorizationPolicy>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<DestinationRule>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<PodMonitor>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<Pod>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<Secret>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<ConfigMap>::namespaced(c.clone(), ns)).await?;
        Ok(left == 0)
    }

    /// Node ids are unique within a cluster, kept for as long as a node exists, and new nodes take the lowest
    /// free ids. Pools are numbered controller pools first, then by creation time and name, so ids are
    /// deterministic (a 3+3 cluster has controllers 0-2 and brokers 3-5).
    /// Brokers a Ready `remove-brokers` rebalance has emptied.
    async fn emptied_brokers(&self, ns: &str, cluster: &str) -> anyhow::Result<Vec<i32>> {
        let api: Api<KafkaRebalance> = Api::namespaced(self.client.clone(), ns);
        let list = api.list(&ListParams::default().labels(&format!("{CLUSTER_LABEL}={cluster}"))).await?;
        Ok(list
            .into_iter()
            .filter(|r| r.spec.mode.as_deref() == Some("remove-brokers") && state(r) == Some("Ready"))
            .flat_map(|r| r.spec.brokers)
            .collect())
    }

    /// Of `removing`, the brokers that still hold partition replicas: on a real cluster as its brokers report
    /// it; status only, those no Ready `remove-brokers` rebalance has emptied.
    async fn holding_replicas(
        &self,
        ns: &str,
        cluster: &str,
        real: bool,
        removing: &[i32],
    ) -> anyhow::Result<Vec<i32>> {
        if removing.is_empty() {
            return Ok(vec![]);
        }
        if real {
            let Some(c) = self.plane.get(ns, cluster) else { return Ok(removing.to_vec()) };
            let partitions = match c.partitions().await {
                Ok(p) => p,
                // Not reachable: nothing is known to be empty.
                Err(_) => return Ok(removing.to_vec()),
            };
            return Ok(removing
                .iter()
                .copied()
                .filter(|id| partitions.iter().any(|p| p.replicas.contains(id)))
                .collect());
        }
        let emptied = self.emptied_brokers(ns, cluster).await?;
        Ok(removing.iter().copied().filter(|id| !emptied.contains(id)).collect())
    }

    /// Returns the pools, why the cluster cannot be reconciled if a pool may not shrink, and whether a pool's
    /// status was written.
    async fn reconcile_pools(
        &self,
        ns: &str,
        cluster: &str,
        real: bool,
        pools: Vec<Arc<KafkaNodePool>>,
    ) -> anyhow::Result<(Vec<KafkaNodePool>, Option<String>, bool)> {
        let mut blocked = None;
        let mut wrote = false;
        let api: Api<KafkaNodePool> = Api::namespaced(self.client.clone(), ns);
        let mut pools: Vec<KafkaNodePool> = pools.iter().map(|p| KafkaNodePool::clone(p)).collect();
        pools.sort_by_key(|p| {
            let controller = p.spec.roles.contains(&ProcessRole::Controller);
            (!controller, p.metadata.creation_timestamp.clone().map(|t| t.0), p.name_any())
        });
        let mut taken: Vec<i32> =
            pools.iter().flat_map(|p| p.status.as_ref().map(|s| s.node_ids.clone()).unwrap_or_default()).collect();
        for pool in &mut pools {
            let status = pool.status.clone().unwrap_or_default();
            let mut ids = status.node_ids.clone();
            let replicas = pool.spec.replicas.max(0) as usize;
            while ids.len() < replicas {
                let next = (0..).find(|i| !taken.contains(i)).unwrap_or(0);
                taken.push(next);
                ids.push(next);
            }
            ids.sort_unstable();
            let removing: Vec<i32> = ids.iter().rev().take(ids.len().saturating_sub(replicas)).copied().collect();
            let is_broker = pool.spec.roles.contains(&ProcessRole::Broker);
            let holding = if is_broker { self.holding_replicas(ns, cluster, real, &removing).await? } else { vec![] };
            if is_broker && !holding.is_empty() {
                // As Strimzi: brokers that still hold partition replicas are not removed.
                let mut holding = holding;
                holding.sort_unstable();
                blocked = Some(format!(
                    "Cannot scale-down Kafka brokers {holding:?} because they have assigned partition-replicas"
                ));
            } else {
                for id in removing {
                    ids.retain(|i| *i != id);
                    taken.retain(|i| *i != id);
                }
            }
            // As Strimzi, which writes a pool's status at the end of the reconciliation that scaled it: on real
            // brokers the pool is observed at its generation only once the processes run exactly its node ids
            // (until then a scale-down's leaving brokers may still be up, and a reader must not see it done).
            let converged = !real
                || self.plane.get(ns, cluster).is_some_and(|c| {
                    let o = c.observed.borrow();
                    let running = if is_broker { &o.desired.brokers } else { &o.desired.controllers };
                    o.ready && *running == ids
                });
            let desired = KafkaNodePoolStatus {
                conditions: vec![],
                observed_generation: if blocked.is_some() || !converged {
                    status.observed_generation
                } else {
                    pool.metadata.generation
                },
                node_ids: ids,
                cluster_id: Some(cluster_id(ns, cluster)),
                roles: pool.spec.roles.clone(),
                replicas: Some(pool.spec.replicas),
            };
            if pool.status.as_ref() != Some(&desired) {
                api.patch_status(&pool.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": desired})))
                    .await?;
                pool.status = Some(desired);
                wrote = true;
            }
        }
        Ok((pools, blocked, wrote))
    }

    /// Whether the cluster `ns/name` runs real brokers: it already does, or its annotation or the default say so.
    fn is_real(&self, ns: &str, name: &str, annotations: &BTreeMap<String, String>) -> bool {
        self.plane.exists(ns, name)
            || match annotations.get(DATA_PLANE).map(String::as_str) {
                Some("real") => true,
                Some("status") => false,
                _ => self.default_real,
            }
    }

    /// Writes the cluster's pools' and its own status as Strimzi would, and converges its real brokers. True
    /// when it is settled: status only, nothing written, and no `delay-seconds` still running out.
    async fn reconcile_kafka(
        &mut self,
        kafka: &Kafka,
        ns: &str,
        annotations: &BTreeMap<String, String>,
        pools: Vec<Arc<KafkaNodePool>>,
    ) -> anyhow::Result<bool> {
        let name = kafka.name_any();
        let real = self.is_real(ns, &name, annotations);
        let (pools, blocked, pools_written) = self.reconcile_pools(ns, &name, real, pools).await?;
        let previous = kafka.status.clone().unwrap_or_default();
        let generation = kafka.metadata.generation.unwrap_or(0);
        let key = (kafka.uid().unwrap_or_default(), generation);
        let first_seen = *self.first_seen.entry(key).or_insert_with(Instant::now);
        let delay = annotations.get(DELAY).and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
        let delayed = first_seen.elapsed() < Duration::from_secs(delay);
        let has_role = |role: ProcessRole| pools.iter().any(|p| p.spec.roles.contains(&role) && p.spec.replicas > 0);
        let node_ids = |role: ProcessRole| -> Vec<i32> {
            pools
                .iter()
                .filter(|p| p.spec.roles.contains(&role))
                .flat_map(|p| p.status.as_ref().map(|s| s.node_ids.clone()).unwrap_or_default())
                .collect()
        };
        let not_ready = |reason: &str, message: Option<&str>| {
            condition(&previous.conditions, "NotReady", "True", Some(reason), message)
        };

        let fault = annotations.get(FAULT).map(String::as_str);
        let structural = match fault {
            Some("stall") => Some(not_ready("Creating", None)),
            Some("fail") => Some(not_ready("FatalProblem", Some("strimzi-sim was told to fail this resource"))),
            _ if blocked.is_some() => Some(not_ready("InvalidResourceException", blocked.as_deref())),
            _ if !has_role(ProcessRole::Controller) || !has_role(ProcessRole::Broker) => Some(not_ready(
                "InvalidResourceException",
                Some("The Kafka cluster needs node pools with the controller and broker roles"),
            )),
            _ if delayed => Some(not_ready("Creating", None)),
            _ => None,
        };
        let version = kafka.spec.kafka.version.clone().unwrap_or_else(|| "4.3.1".into());
        let mut listeners = previous.listeners.clone();
        let mut kafka_version = previous.kafka_version.clone();
        let mut metadata_version = previous.kafka_metadata_version.clone();
        let mut warnings = Vec::new();
        if !real {
            self.wanted_pods.insert((ns.to_owned(), name.clone()), vec![]);
        }
        let cond = if real && fault != Some("stall") && fault != Some("fail") {
            // A blocked scale-down keeps the brokers it may not remove running: the desired state is the pools'
            // node ids as they stand.
            let metrics_rules = self.metrics_rules(kafka, ns).await;
            let desired = Desired {
                generation,
                version: version.clone(),
                metadata_version: kafka.spec.kafka.metadata_version.clone(),
                controllers: node_ids(ProcessRole::Controller),
                brokers: node_ids(ProcessRole::Broker),
                super_users: kafka.spec.kafka.authorization.as_ref().map(|a| a.super_users.clone()).unwrap_or_default(),
                config: kafka
                    .spec
                    .kafka
                    .config
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
                    .collect(),
                metrics_rules,
            };
            let controllers = desired.controllers.clone();
            let asked = desired.clone();
            if structural.is_some() && desired.controllers.is_empty() {
                structural.clone().unwrap_or_else(|| not_ready("Creating", None))
            } else {
                match self.plane.ensure(ns, &name, desired) {
                    Err(full) => not_ready("InsufficientResources", Some(&full)),
                    Ok(cluster) => {
                        let observed = cluster.observed.borrow().clone();
                        let processes = observed.metrics_ports.iter().filter_map(|(id, port)| {
                            let pool =
                                pools.iter().find(|p| p.status.as_ref().is_some_and(|s| s.node_ids.contains(id)))?;
                            Some(pods::Process {
                                pool: pool.name_any(),
                                node_id: *id,
                                broker: pool.spec.roles.contains(&ProcessRole::Broker),
                                metrics_port: *port,
                            })
                        });
                        let running = observed.kafka_version.clone().unwrap_or_else(|| version.clone());
                        let wanted = processes.map(|p| pods::pod(ns, &name, kafka.labels(), &running, &p)).collect();
                        self.wanted_pods.insert((ns.to_owned(), name.clone()), wanted);
                        if controllers.len() > 1 {
                            warnings.push(condition(
                                &previous.conditions,
                                "Warning",
                                "True",
                                Some("ControllerPoolSimulated"),
                                Some(&format!(
                                    "strimzi-sim runs one controller process (node id {}) for the controller pool's \
                                     {} node ids {controllers:?}",
                                    controllers[0],
                                    controllers.len()
                                )),
                            ));
                        }
                        if observed.kafka_version.is_some() {
                            kafka_version = observed.kafka_version.clone();
                        }
                        if observed.metadata_version.is_some() {
                            metadata_version = observed.metadata_version.clone();
                        }
                        let here = observed.desired == asked && observed.ready;
                        match structural {
                            Some(c) => c,
                            None if here => {
                                listeners = vec![
                                    ListenerStatus {
                                        name: Some("plain".into()),
                                        bootstrap_servers: Some(observed.bootstrap.clone()),
                                        certificates: vec![],
                                    },
                                    ListenerStatus {
                                        name: Some("tls".into()),
                                        bootstrap_servers: Some(observed.tls_bootstrap.clone()),
                                        certificates: observed.cluster_ca.iter().cloned().collect(),
                                    },
                                ];
                                condition(&previous.conditions, "Ready", "True", None, None)
                            }
                            None => not_ready("Creating", observed.message.as_deref()),
                        }
                    }
                }
            }
        } else {
            let cond = structural.unwrap_or_else(|| condition(&previous.conditions, "Ready", "True", None, None));
            if cond.type_.as_deref() == Some("Ready") {
                // Status only: names the Service a real Strimzi would create; nothing serves it here.
                let bootstrap = |port: u16| format!("{name}-kafka-bootstrap.{ns}.svc:{port}");
                listeners = vec![
                    ListenerStatus {
                        name: Some("plain".into()),
                        bootstrap_servers: Some(bootstrap(9092)),
                        certificates: vec![],
                    },
                    ListenerStatus {
                        name: Some("tls".into()),
                        bootstrap_servers: Some(bootstrap(9093)),
                        certificates: vec![],
                    },
                ];
                // Strimzi reports the version it has rolled the brokers to, so it only moves once Ready.
                kafka_version = Some(version.clone());
                metadata_version = kafka.spec.kafka.metadata_version.clone();
            }
            cond
        };
        let mut conditions = warnings;
        conditions.push(cond);
        let ready = conditions.last().and_then(|c| c.type_.as_deref()) == Some("Ready");
        let desired = KafkaStatus {
            conditions,
            observed_generation: Some(generation),
            listeners,
            kafka_node_pools: pools.iter().map(|p| UsedNodePoolStatus { name: Some(p.name_any()) }).collect(),
            cluster_id: Some(cluster_id(ns, &name)),
            kafka_version,
            kafka_metadata_version: metadata_version,
            operator_last_successful_version: Some(OPERATOR_VERSION.into()),
        };
        if kafka.status.as_ref() != Some(&desired) {
            let api: Api<Kafka> = Api::namespaced(self.client.clone(), ns);
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": desired}))).await?;
            tracing::info!(kafka = %name, namespace = %ns, ready, real, "status written");
            return Ok(false);
        }
        // Settled: status only, nothing written, and no delay still running out.
        Ok(!real && !pools_written && !delayed)
    }

    /// The exporter rules the Kafka's `metricsConfig` names, if any.
    async fn metrics_rules(&self, kafka: &Kafka, ns: &str) -> Option<String> {
        let config = kafka.spec.kafka.metrics_config.as_ref()?;
        let key = &config.value_from.config_map_key_ref;
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        maps.get_opt(&key.name).await.ok().flatten()?.data?.get(&key.key).cloned()
    }

    /// PendingProposal -> ProposalReady -> (approved) Rebalancing -> Ready. On a real cluster the proposal is
    /// computed from the partitions its brokers report ([`rebalance::plan`]), approval executes it with Kafka's
    /// reassignment tool, and `Ready` waits until every moved replica is in sync.
    async fn reconcile_rebalance(
        &mut self,
        rebalance: &KafkaRebalance,
        ns: &str,
        annotations: &BTreeMap<String, String>,
    ) -> anyhow::Result<bool> {
        let api: Api<KafkaRebalance> = Api::namespaced(self.client.clone(), ns);
        let name = rebalance.name_any();
        let uid = rebalance.uid().unwrap_or_default();
        let previous = rebalance.status.clone().unwrap_or_default();
        let approved = rebalance.annotations().get("strimzi.io/rebalance").map(String::as_str) == Some("approve");
        let cluster_name = rebalance.labels().get(CLUSTER_LABEL).cloned().unwrap_or_default();
        let mode = rebalance.spec.mode.clone().unwrap_or_else(|| "full".into());
        let named = rebalance.spec.brokers.clone();
        let mut not_ready: Option<String> = None;
        let mut movements: Option<usize> = None;
        let current = state(rebalance).map(str::to_owned);
        let next = match (current.as_deref(), annotations.get(FAULT).map(String::as_str)) {
            (_, Some("stall")) | (None, _) => "PendingProposal".to_owned(),
            (Some("PendingProposal"), _) => match self.plane.get(ns, &cluster_name) {
                None => "ProposalReady".to_owned(),
                Some(c) => match c.partitions().await {
                    Ok(parts) => match rebalance::plan(&mode, &named, &c.desired.borrow().brokers, &parts) {
                        Ok(moves) => {
                            movements = Some(moves.iter().map(|m| m.replicas.len()).sum());
                            "ProposalReady".to_owned()
                        }
                        Err(e) => {
                            not_ready = Some(e);
                            "NotReady".to_owned()
                        }
                    },
                    Err(_) => "PendingProposal".to_owned(),
                },
            },
            // Executed already, and the informer has not seen the status that says so yet.
            (Some("ProposalReady"), _) if approved && self.rebalances.contains_key(&uid) => "Rebalancing".to_owned(),
            (Some("ProposalReady"), _) if approved => {
                if let Some(c) = self.plane.get(ns, &cluster_name) {
                    let parts = c.partitions().await?;
                    let moves = rebalance::plan(&mode, &named, &c.desired.borrow().brokers, &parts)
                        .map_err(anyhow::Error::msg)?;
                    if !moves.is_empty() {
                        let file = c.dir.join(format!("reassignment-{uid}.json"));
                        std::fs::write(&file, rebalance::reassignment_json(&moves).to_string())?;
                        let file = file.display().to_string();
                        let version = c.desired.borrow().version.clone();
                        c.tool(
                            &version,
                            dataplane::REASSIGN_COMMAND,
                            &["--execute", "--reassignment-json-file", &file],
                        )
                        .await?;
                        tracing::info!(rebalance = %name, namespace = %ns, moves = moves.len(), "reassignment started");
                    }
                    self.rebalances.insert(uid.clone(), moves);
                }
                "Rebalancing".to_owned()
            }
            (Some("Rebalancing"), _) => match self.plane.get(ns, &cluster_name) {
                None => "Ready".to_owned(),
                Some(c) => {
                    let parts = c.partitions().await?;
                    // After a restart the moves are read back from the file the execution wrote.
                    let moves = match self.rebalances.get(&uid) {
                        Some(m) => m.clone(),
                        None => std::fs::read(c.dir.join(format!("reassignment-{uid}.json")))
                            .ok()
                            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                            .and_then(|v| serde_json::from_value(v["partitions"].clone()).ok())
                            .unwrap_or_default(),
                    };
                    if rebalance::done(&moves, &parts) { "Ready".to_owned() } else { "Rebalancing".to_owned() }
                }
            },
            (Some(other), _) => other.to_owned(),
        };
        let mut wrote = false;
        if next == "Rebalancing" && current.as_deref() != Some("Rebalancing") {
            // Strimzi consumes the approval annotation.
            let clear = json!({"metadata": {"annotations": {"strimzi.io/rebalance": null}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(clear)).await?;
            wrote = true;
        }
        let optimization = if next == "PendingProposal" || next == "NotReady" {
            None
        } else {
            let moved = movements
                .or_else(|| {
                    previous
                        .optimization_result
                        .as_ref()
                        .and_then(|o| o.get("numReplicaMovements"))
                        .and_then(serde_json::Value::as_u64)
                        .map(|n| n as usize)
                })
                .unwrap_or(0);
            Some(BTreeMap::from([
                ("numReplicaMovements".to_owned(), json!(moved)),
                ("dataToMoveMB".to_owned(), json!(0)),
                ("brokers".to_owned(), json!(rebalance.spec.brokers)),
            ]))
        };
        let desired = KafkaRebalanceStatus {
            conditions: vec![condition(&previous.conditions, &next, "True", None, not_ready.as_deref())],
            observed_generation: rebalance.metadata.generation,
            session_id: previous.session_id.clone().or_else(|| Some(uuid::Uuid::new_v4().to_string())),
            optimization_result: optimization,
        };
        if rebalance.status.as_ref() != Some(&desired) {
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": desired}))).await?;
            wrote = true;
        }
        Ok(wrote)
    }

    async fn reconcile_topic(&self, topic: &KafkaTopic, stalled: bool) -> anyhow::Result<bool> {
        // Like the Topic Operator: a finalizer on every KafkaTopic, removed once the topic is deleted in Kafka.
        let ns = topic.namespace().unwrap_or_default();
        let api: Api<KafkaTopic> = Api::namespaced(self.client.clone(), &ns);
        let finalizers = topic.metadata.finalizers.clone().unwrap_or_default();
        let has_finalizer = finalizers.iter().any(|f| f == TOPIC_FINALIZER);
        let topic_name = topic.spec.topic_name.clone().unwrap_or_else(|| topic.name_any());
        let cluster = topic.labels().get(CLUSTER_LABEL).and_then(|c| self.plane.get(&ns, c));
        if topic.metadata.deletion_timestamp.is_some() {
            if has_finalizer && let Some(c) = cluster {
                topics::delete(c, &topic_name).await?;
            }
            if has_finalizer {
                let rest: Vec<&String> = finalizers.iter().filter(|f| *f != TOPIC_FINALIZER).collect();
                let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": topic.resource_version()}});
                api.patch(&topic.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
                return Ok(true);
            }
            return Ok(false);
        }
        if stalled {
            return Ok(false);
        }
        let mut wrote = false;
        if !has_finalizer {
            let mut all = finalizers.clone();
            all.push(TOPIC_FINALIZER.to_owned());
            let patch = json!({"metadata": {"finalizers": all, "resourceVersion": topic.resource_version()}});
            api.patch(&topic.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
            wrote = true;
        }
        let previous = topic.status.clone().unwrap_or_default();
        let reconciled = previous.observed_generation == topic.metadata.generation
            && previous
                .conditions
                .iter()
                .any(|c| c.type_.as_deref() == Some("Ready") && c.status.as_deref() == Some("True"));
        let cond = match cluster {
            // Status only, or already in Kafka as this generation asks.
            None => condition(&previous.conditions, "Ready", "True", None, None),
            Some(_) if reconciled => condition(&previous.conditions, "Ready", "True", None, None),
            Some(c) => {
                if !c.observed.borrow().ready {
                    // The Topic Operator waits for its Kafka.
                    return Ok(wrote);
                }
                match topics::apply(c, &topic_name, &topic.spec).await {
                    Ok(()) => condition(&previous.conditions, "Ready", "True", None, None),
                    Err(refused) => {
                        condition(&previous.conditions, "Ready", "False", Some(&refused.reason), Some(&refused.message))
                    }
                }
            }
        };
        let desired = KafkaTopicStatus {
            conditions: vec![cond],
            observed_generation: topic.metadata.generation,
            topic_name: Some(topic_name),
            topic_id: Some(
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, topic.uid().unwrap_or_default().as_bytes()).to_string(),
            ),
        };
        if topic.status.as_ref() != Some(&desired) {
            api.patch_status(&topic.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": desired})))
                .await?;
            return Ok(true);
        }
        Ok(wrote)
    }
}

const TOPIC_FINALIZER: &str = "strimzi.io/topic-operator";

/// A pass' view of the fault annotations. A resource's faults are its namespace's, its cluster's (the ConfigMap
/// named after the cluster in `strimzi-sim-faults`, listed fresh each pass), then its own.
struct Faults {
    api: Api<Namespace>,
    /// Namespaces' metadata as the informer has it: what a fingerprint reads.
    cached: HashMap<String, Arc<PartialObjectMeta<Namespace>>>,
    clusters: HashMap<String, BTreeMap<String, String>>,
    /// Namespaces' annotations read from the API server in this pass.
    fresh: HashMap<String, BTreeMap<String, String>>,
}

impl Faults {
    fn new(api: Api<Namespace>, caches: &cache::Caches, clusters: HashMap<String, BTreeMap<String, String>>) -> Self {
        let cached = caches.namespaces.state().into_iter().map(|n| (n.name_any(), n)).collect();
        Self { api, cached, clusters, fresh: HashMap::new() }
    }

    /// What a status-only resource's reconcile reads: its own version (its spec, status and annotations), its
    /// node pools' versions, and its faults as the informers and this pass' ConfigMaps have them.
    fn fingerprint<K: kube::Resource>(
        &self,
        resource: &K,
        pools: &[Arc<KafkaNodePool>],
        ns: &str,
        cluster: Option<&String>,
    ) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        resource.resource_version().hash(&mut h);
        for pool in pools {
            pool.resource_version().hash(&mut h);
        }
        self.cached.get(ns).map(|n| n.annotations()).hash(&mut h);
        cluster.and_then(|c| self.clusters.get(c)).hash(&mut h);
        h.finish()
    }

    /// The faults of a resource about to be reconciled, its namespace's annotations read fresh (once a pass): a
    /// namespace annotated just before the resource was created may not have reached the informer yet.
    async fn fresh(
        &mut self,
        ns: &str,
        cluster: Option<&String>,
        own: &BTreeMap<String, String>,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        if !self.fresh.contains_key(ns) {
            let annotations = if ns.is_empty() {
                BTreeMap::new()
            } else {
                self.api.get_metadata_opt(ns).await?.map(|n| n.annotations().clone()).unwrap_or_default()
            };
            self.fresh.insert(ns.to_owned(), annotations);
        }
        let mut annotations = self.fresh.get(ns).cloned().unwrap_or_default();
        annotations.extend(cluster.and_then(|c| self.clusters.get(c)).cloned().unwrap_or_default());
        annotations.extend(own.clone());
        Ok(annotations)
    }
}

/// The rebalance's current state: the type of its condition with status True.
fn state(r: &KafkaRebalance) -> Option<&str> {
    r.status.as_ref()?.conditions.iter().find(|c| c.status.as_deref() == Some("True"))?.type_.as_deref()
}

/// What kube-controller-manager's namespace controller does once a namespace is empty: drop the `kubernetes`
/// finalizer so the namespace goes away.
async fn finalize_namespace(api: &Api<Namespace>, ns: &Namespace) -> anyhow::Result<()> {
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.clone()).unwrap_or_default();
    if finalizers.is_empty() {
        return Ok(());
    }
    let mut finalized = ns.clone();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = Some(vec![]);
    }
    let _: Namespace = api.replace_subresource("finalize", &ns.name_any(), &PostParams::default(), &finalized).await?;
    Ok(())
}

/// A stable cluster id per Kafka resource, like the one Strimzi generates once.
fn cluster_id(ns: &str, name: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{ns}/{name}").as_bytes()).simple().to_string()[..22]
        .to_owned()
}
