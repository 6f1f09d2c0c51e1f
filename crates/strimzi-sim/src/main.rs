//! `strimzi-sim`: a clearly named stand-in for the Strimzi cluster operator, for development and tests only.
//!
//! The local Kubernetes API servers have no kubelets, so the real operator cannot run its pods. This program
//! watches Kafka, KafkaNodePool and KafkaTopic resources on each API server it is given and writes their status
//! the way Strimzi does (field names from the real CRDs): node ids per pool, the `Ready` condition with
//! `observedGeneration`, listener bootstrap addresses, `kafkaVersion` and `kafkaMetadataVersion`.
//!
//! It refuses to lower a broker pool whose brokers still hold partition replicas, as Strimzi does: a broker is
//! empty once a `remove-brokers` KafkaRebalance naming it is Ready. KafkaRebalances go through Strimzi's states
//! (`PendingProposal`, `ProposalReady`, then `Rebalancing` once approved with `strimzi.io/rebalance=approve`,
//! then `Ready`). It also finalizes deleted namespaces, the part of kube-controller-manager a namespace
//! deletion needs, since none runs locally.
//!
//! Tests drive faults with annotations on a resource, on its namespace, or on a ConfigMap named after the cluster
//! in the namespace `strimzi-sim-faults` (a cluster's namespace carries its id, so a test cannot create it ahead
//! of the request, and Polaris would refuse a namespace it did not create):
//! - `strimzi-sim.polaris.dev/fault: stall`: never becomes Ready (stays `NotReady`, reason `Creating`);
//! - `strimzi-sim.polaris.dev/fault: fail`: reports `NotReady` with a failure reason and message;
//! - `strimzi-sim.polaris.dev/topic-fault: stall` on a namespace: its KafkaTopics never become Ready;
//! - `strimzi-sim.polaris.dev/delay-seconds: "N"`: becomes Ready N seconds after it is first seen at its
//!   current generation (slow).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::PostParams;
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, ResourceExt};
use polaris_workers::istio::{AuthorizationPolicy, DestinationRule, PeerAuthentication};
use polaris_workers::strimzi::{
    CLUSTER_LABEL, Condition, Kafka, KafkaNodePool, KafkaNodePoolStatus, KafkaRebalance, KafkaRebalanceStatus,
    KafkaStatus, KafkaTopic, KafkaTopicStatus, ListenerStatus, ProcessRole, UsedNodePoolStatus,
};
use serde_json::json;

pub const FAULT: &str = "strimzi-sim.polaris.dev/fault";
/// On a namespace: its KafkaTopics never become Ready (its Kafka is unaffected).
pub const TOPIC_FAULT: &str = "strimzi-sim.polaris.dev/topic-fault";
pub const DELAY: &str = "strimzi-sim.polaris.dev/delay-seconds";
/// ConfigMaps here, named after a cluster, carry fault annotations for that cluster's resources.
pub const FAULTS_NAMESPACE: &str = "strimzi-sim-faults";
const OPERATOR_VERSION: &str = "1.3.0-strimzi-sim";

#[derive(Parser)]
#[command(name = "strimzi-sim", about = "Strimzi stand-in for local API servers (development and tests only)")]
struct Args {
    /// Kubeconfig of an API server to reconcile; repeat for each target.
    #[arg(long = "kubeconfig", required = true)]
    kubeconfigs: Vec<String>,
    /// Milliseconds between reconcile passes.
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let mut sims = Vec::new();
    for path in &args.kubeconfigs {
        let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {path}"))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        sims.push(Sim { name: path.clone(), client: Client::try_from(config)?, first_seen: HashMap::new() });
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
    /// When each (uid, generation) was first seen, for `delay-seconds`.
    first_seen: HashMap<(String, i64), Instant>,
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
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let all_namespaces = namespaces.list(&ListParams::default()).await?;
        for ns in all_namespaces.iter().filter(|n| n.metadata.deletion_timestamp.is_some()) {
            // What kube-controller-manager's namespace controller does: delete the content, and only once it is
            // gone (finalizers included), drop the namespace's own finalizer.
            if self.empty_namespace(&ns.name_any()).await? {
                finalize_namespace(&namespaces, ns).await?;
            }
        }
        // Every resource is listed before the namespaces' annotations are read: a fault annotated on a namespace
        // before a resource was created in it is then always seen with that resource.
        let rebalance_list = Api::<KafkaRebalance>::all(self.client.clone()).list(&ListParams::default()).await?;
        let kafka_list = Api::<Kafka>::all(self.client.clone()).list(&ListParams::default()).await?;
        let topic_list = Api::<KafkaTopic>::all(self.client.clone()).list(&ListParams::default()).await?;
        let ns_annotations: HashMap<String, BTreeMap<String, String>> = namespaces
            .list(&ListParams::default())
            .await?
            .into_iter()
            .map(|n| (n.name_any(), n.annotations().clone()))
            .collect();
        let cluster_faults: HashMap<String, BTreeMap<String, String>> =
            Api::<ConfigMap>::namespaced(self.client.clone(), FAULTS_NAMESPACE)
                .list(&ListParams::default())
                .await
                .map(|l| l.into_iter().map(|c| (c.name_any(), c.annotations().clone())).collect())
                .unwrap_or_default();
        // A resource's faults: its namespace's, its cluster's, then its own.
        let faults = |ns: &str, cluster: Option<&String>, own: &BTreeMap<String, String>| {
            let mut annotations = ns_annotations.get(ns).cloned().unwrap_or_default();
            annotations.extend(cluster.and_then(|c| cluster_faults.get(c)).cloned().unwrap_or_default());
            annotations.extend(own.clone());
            annotations
        };
        for rebalance in rebalance_list {
            let ns = rebalance.namespace().unwrap_or_default();
            let annotations = faults(&ns, rebalance.labels().get(CLUSTER_LABEL), rebalance.annotations());
            self.reconcile_rebalance(&rebalance, &ns, &annotations).await?;
        }
        for kafka in kafka_list {
            let ns = kafka.namespace().unwrap_or_default();
            let annotations = faults(&ns, Some(&kafka.name_any()), kafka.annotations());
            if let Err(e) = self.reconcile_kafka(&kafka, &ns, &annotations).await {
                tracing::warn!(kafka = %kafka.name_any(), namespace = %ns, error = %e, "reconcile failed");
            }
        }
        for topic in topic_list {
            let ns = topic.namespace().unwrap_or_default();
            let annotations = faults(&ns, topic.labels().get(CLUSTER_LABEL), topic.annotations());
            let stalled = annotations.get(TOPIC_FAULT).map(String::as_str) == Some("stall")
                || topic.annotations().get(FAULT).map(String::as_str) == Some("stall");
            match self.reconcile_topic(&topic, stalled).await {
                Ok(()) => {}
                // Left behind in a namespace that no longer exists (dev data from older builds): nothing to do.
                Err(e)
                    if e.downcast_ref::<kube::Error>()
                        .is_some_and(|k| matches!(k, kube::Error::Api(a) if a.code == 404)) => {}
                Err(e) => {
                    tracing::warn!(topic = %topic.name_any(), namespace = %ns, error = %e, "topic reconcile failed")
                }
            }
        }
        Ok(())
    }

    /// Deletes the Strimzi resources (and the Istio objects Polaris writes) left in a terminating namespace; true
    /// once none is left.
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
            + sweep(Api::<PeerAuthentication>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<AuthorizationPolicy>::namespaced(c.clone(), ns)).await?
            + sweep(Api::<DestinationRule>::namespaced(c.clone(), ns)).await?;
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

    /// Returns the pools, and why the cluster cannot be reconciled if a pool may not shrink.
    async fn reconcile_pools(&self, ns: &str, cluster: &str) -> anyhow::Result<(Vec<KafkaNodePool>, Option<String>)> {
        let emptied = self.emptied_brokers(ns, cluster).await?;
        let mut blocked = None;
        let api: Api<KafkaNodePool> = Api::namespaced(self.client.clone(), ns);
        let mut pools = api.list(&ListParams::default().labels(&format!("{CLUSTER_LABEL}={cluster}"))).await?.items;
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
            let holding: Vec<i32> = removing.iter().copied().filter(|id| !emptied.contains(id)).collect();
            if pool.spec.roles.contains(&ProcessRole::Broker) && !holding.is_empty() {
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
            let desired = KafkaNodePoolStatus {
                conditions: vec![],
                observed_generation: if blocked.is_some() {
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
            }
        }
        Ok((pools, blocked))
    }

    async fn reconcile_kafka(
        &mut self,
        kafka: &Kafka,
        ns: &str,
        annotations: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let name = kafka.name_any();
        let (pools, blocked) = self.reconcile_pools(ns, &name).await?;
        let previous = kafka.status.clone().unwrap_or_default();
        let generation = kafka.metadata.generation.unwrap_or(0);
        let key = (kafka.uid().unwrap_or_default(), generation);
        let first_seen = *self.first_seen.entry(key).or_insert_with(Instant::now);
        let delay = annotations.get(DELAY).and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
        let has_role = |role: ProcessRole| pools.iter().any(|p| p.spec.roles.contains(&role) && p.spec.replicas > 0);

        let cond = match annotations.get(FAULT).map(String::as_str) {
            Some("stall") => condition(&previous.conditions, "NotReady", "True", Some("Creating"), None),
            Some("fail") => condition(
                &previous.conditions,
                "NotReady",
                "True",
                Some("FatalProblem"),
                Some("strimzi-sim was told to fail this resource"),
            ),
            _ if blocked.is_some() => condition(
                &previous.conditions,
                "NotReady",
                "True",
                Some("InvalidResourceException"),
                blocked.as_deref(),
            ),
            _ if !has_role(ProcessRole::Controller) || !has_role(ProcessRole::Broker) => condition(
                &previous.conditions,
                "NotReady",
                "True",
                Some("InvalidResourceException"),
                Some("The Kafka cluster needs node pools with the controller and broker roles"),
            ),
            _ if first_seen.elapsed() < Duration::from_secs(delay) => {
                condition(&previous.conditions, "NotReady", "True", Some("Creating"), None)
            }
            _ => condition(&previous.conditions, "Ready", "True", None, None),
        };
        let ready = cond.type_.as_deref() == Some("Ready");
        let bootstrap = |port: u16| format!("{name}-kafka-bootstrap.{ns}.svc:{port}");
        let desired = KafkaStatus {
            conditions: vec![cond],
            observed_generation: Some(generation),
            listeners: if ready {
                vec![
                    ListenerStatus { name: Some("plain".into()), bootstrap_servers: Some(bootstrap(9092)) },
                    ListenerStatus { name: Some("tls".into()), bootstrap_servers: Some(bootstrap(9093)) },
                ]
            } else {
                previous.listeners.clone()
            },
            kafka_node_pools: pools.iter().map(|p| UsedNodePoolStatus { name: Some(p.name_any()) }).collect(),
            cluster_id: Some(cluster_id(ns, &name)),
            // Strimzi reports the version it has rolled the brokers to, so it only moves once Ready.
            kafka_version: if ready { kafka.spec.kafka.version.clone() } else { previous.kafka_version.clone() },
            kafka_metadata_version: if ready {
                kafka.spec.kafka.metadata_version.clone()
            } else {
                previous.kafka_metadata_version.clone()
            },
            operator_last_successful_version: Some(OPERATOR_VERSION.into()),
        };
        if kafka.status.as_ref() != Some(&desired) {
            let api: Api<Kafka> = Api::namespaced(self.client.clone(), ns);
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": desired}))).await?;
            tracing::info!(kafka = %name, namespace = %ns, ready, "status written");
        }
        Ok(())
    }

    /// PendingProposal -> ProposalReady -> (approved) Rebalancing -> Ready, one step per pass.
    async fn reconcile_rebalance(
        &self,
        rebalance: &KafkaRebalance,
        ns: &str,
        annotations: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let api: Api<KafkaRebalance> = Api::namespaced(self.client.clone(), ns);
        let name = rebalance.name_any();
        let previous = rebalance.status.clone().unwrap_or_default();
        let approved = rebalance.annotations().get("strimzi.io/rebalance").map(String::as_str) == Some("approve");
        let next = match (state(rebalance), annotations.get(FAULT).map(String::as_str)) {
            (_, Some("stall")) | (None, _) => "PendingProposal",
            (Some("PendingProposal"), _) => "ProposalReady",
            (Some("ProposalReady"), _) if approved => "Rebalancing",
            (Some("Rebalancing"), _) => "Ready",
            (Some(other), _) => other,
        }
        .to_owned();
        if next == "Rebalancing" {
            // Strimzi consumes the approval annotation.
            let clear = json!({"metadata": {"annotations": {"strimzi.io/rebalance": null}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(clear)).await?;
        }
        let optimization = if next == "PendingProposal" {
            None
        } else {
            Some(BTreeMap::from([
                ("numReplicaMovements".to_owned(), json!(12)),
                ("dataToMoveMB".to_owned(), json!(0)),
                ("brokers".to_owned(), json!(rebalance.spec.brokers)),
            ]))
        };
        let desired = KafkaRebalanceStatus {
            conditions: vec![condition(&previous.conditions, &next, "True", None, None)],
            observed_generation: rebalance.metadata.generation,
            session_id: previous.session_id.clone().or_else(|| Some(uuid::Uuid::new_v4().to_string())),
            optimization_result: optimization,
        };
        if rebalance.status.as_ref() != Some(&desired) {
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": desired}))).await?;
        }
        Ok(())
    }

    async fn reconcile_topic(&self, topic: &KafkaTopic, stalled: bool) -> anyhow::Result<()> {
        // Like the Topic Operator: a finalizer on every KafkaTopic, removed once the topic is deleted in Kafka.
        let api: Api<KafkaTopic> = Api::namespaced(self.client.clone(), &topic.namespace().unwrap_or_default());
        let finalizers = topic.metadata.finalizers.clone().unwrap_or_default();
        let has_finalizer = finalizers.iter().any(|f| f == TOPIC_FINALIZER);
        if topic.metadata.deletion_timestamp.is_some() {
            if has_finalizer {
                let rest: Vec<&String> = finalizers.iter().filter(|f| *f != TOPIC_FINALIZER).collect();
                let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": topic.resource_version()}});
                api.patch(&topic.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
            }
            return Ok(());
        }
        if stalled {
            return Ok(());
        }
        if !has_finalizer {
            let mut all = finalizers.clone();
            all.push(TOPIC_FINALIZER.to_owned());
            let patch = json!({"metadata": {"finalizers": all, "resourceVersion": topic.resource_version()}});
            api.patch(&topic.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
        }
        let desired = KafkaTopicStatus {
            conditions: vec![condition(
                &topic.status.clone().unwrap_or_default().conditions,
                "Ready",
                "True",
                None,
                None,
            )],
            observed_generation: topic.metadata.generation,
            topic_name: Some(topic.spec.topic_name.clone().unwrap_or_else(|| topic.name_any())),
            topic_id: Some(
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, topic.uid().unwrap_or_default().as_bytes()).to_string(),
            ),
        };
        if topic.status.as_ref() != Some(&desired) {
            api.patch_status(&topic.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": desired})))
                .await?;
        }
        Ok(())
    }
}

const TOPIC_FINALIZER: &str = "strimzi.io/topic-operator";

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
