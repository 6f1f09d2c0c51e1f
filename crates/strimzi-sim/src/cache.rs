//! What a pass reads, kept the way Strimzi's operators keep it: an informer per kind (a watch, and a store it keeps
//! current) instead of a LIST of every Kafka, topic, user, rebalance and namespace on each pass, and a LIST of a
//! cluster's node pools for each Kafka. A test run leaves hundreds of clusters on the API servers: listing them
//! five times a second kept this process, the kube-apiserver and etcd busy on a core of the machine's two while nothing
//! changed, and made each pass (and so every status) slower as the suite went on.
//!
//! What must be read fresh is read per pass (see [`crate::Sim::pass`]): the fault annotations, which a test
//! writes before the resource it is about.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use polaris_workers::strimzi::{CLUSTER_LABEL, Kafka, KafkaNodePool, KafkaRebalance, KafkaTopic, KafkaUser};
use serde::de::DeserializeOwned;

use crate::FAULTS_NAMESPACE;

/// The informers of one API server.
pub struct Caches {
    pub kafkas: Store<Kafka>,
    pub pools: Store<KafkaNodePool>,
    pub topics: Store<KafkaTopic>,
    pub users: Store<KafkaUser>,
    pub rebalances: Store<KafkaRebalance>,
    /// Namespaces' metadata: their annotations tell a pass which resources changed; a resource that did is
    /// reconciled with its namespace's annotations read fresh.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Bumped by every event of every watch, the faults' ConfigMaps' included (those are listed fresh, and
    /// watched only for this).
    changes: Arc<AtomicU64>,
}

impl Caches {
    /// Starts a watch per kind; each keeps its store current, and lists again after the API server comes back.
    pub fn start(client: &Client, target: &str) -> Self {
        let changes = Arc::new(AtomicU64::new(0));
        let c = &changes;
        watch(Api::<ConfigMap>::namespaced(client.clone(), FAULTS_NAMESPACE), target, c, |events| events.boxed());
        Self {
            kafkas: informer(Api::all(client.clone()), target, c),
            pools: informer(Api::all(client.clone()), target, c),
            topics: informer(Api::all(client.clone()), target, c),
            users: informer(Api::all(client.clone()), target, c),
            rebalances: informer(Api::all(client.clone()), target, c),
            namespaces: informer(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), target, c),
            changes,
        }
    }

    /// How many watch events have arrived so far.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// Whether every store has been listed once. Until then a pass would take every cluster for deleted.
    pub fn synced(&self) -> bool {
        let ready = |r: Option<Result<(), reflector::store::WriterDropped>>| matches!(r, Some(Ok(())));
        ready(self.kafkas.wait_until_ready().now_or_never())
            && ready(self.pools.wait_until_ready().now_or_never())
            && ready(self.topics.wait_until_ready().now_or_never())
            && ready(self.users.wait_until_ready().now_or_never())
            && ready(self.rebalances.wait_until_ready().now_or_never())
            && ready(self.namespaces.wait_until_ready().now_or_never())
    }

    /// Each cluster's node pools, by `(namespace, strimzi.io/cluster)`.
    pub fn pools_by_cluster(&self) -> HashMap<(String, String), Vec<Arc<KafkaNodePool>>> {
        let mut by: HashMap<(String, String), Vec<Arc<KafkaNodePool>>> = HashMap::new();
        for pool in self.pools.state() {
            let Some(cluster) = pool.labels().get(CLUSTER_LABEL).cloned() else { continue };
            by.entry((pool.namespace().unwrap_or_default(), cluster)).or_default().push(pool);
        }
        by
    }
}

/// A watch of `api` kept in a store.
fn informer<K>(api: Api<K>, target: &str, changes: &Arc<AtomicU64>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (store, writer) = reflector::store();
    watch(api, target, changes, |events| events.reflect(writer).boxed());
    store
}

/// Drives a watch of `api` (through `with`, which may keep a store) for as long as the process runs, counting
/// its events in `changes`.
fn watch<K>(
    api: Api<K>,
    target: &str,
    changes: &Arc<AtomicU64>,
    with: impl FnOnce(
        BoxStream<'static, watcher::Result<watcher::Event<K>>>,
    ) -> BoxStream<'static, watcher::Result<watcher::Event<K>>>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let target = target.to_owned();
    let changes = changes.clone();
    let events = with(watcher(api, watcher::Config::default()).default_backoff().boxed());
    tokio::spawn(events.for_each(move |event| {
        changes.fetch_add(1, Ordering::SeqCst);
        // The API server restarting (the chaos run restarts it): the watcher backs off and lists again.
        if let Err(e) = event {
            tracing::debug!(target = %target, kind = %kind, error = %e, "watch interrupted");
        }
        futures::future::ready(())
    }));
}
