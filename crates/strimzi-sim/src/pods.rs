//! The Pods Strimzi would run, one per real Kafka process: named `<cluster>-<pool>-<node id>`, labelled as
//! Strimzi labels them (`strimzi.io/cluster`, `strimzi.io/kind: Kafka`, `strimzi.io/pool-name`, the role labels,
//! and the Kafka resource's own labels), with the exporter's `tcp-prometheus` port and `status.podIP`.
//!
//! No kubelet runs here, so these Pods only describe processes strimzi-sim runs on loopback: `podIP` is
//! 127.0.0.1 and `tcp-prometheus` is that process's own metrics port (every process has its own, where Strimzi's
//! pods each have their own IP and share 9404). They are what a `PodMonitor` selects in production, and what
//! Polaris' `http_sd` endpoint reads locally, so the same labels reach Prometheus either way. Only processes that
//! really run get a Pod: the one controller process standing in for a controller pool has one, under its own
//! node id.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodCondition, PodIP, PodSpec, PodStatus};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use polaris_workers::monitoring::{BROKER_ROLE_LABEL, KIND_LABEL, METRICS_PORT_NAME, POOL_LABEL};
use polaris_workers::strimzi::CLUSTER_LABEL;
use serde_json::json;
const LOOPBACK: &str = "127.0.0.1";

/// One real process of a cluster.
pub struct Process {
    pub pool: String,
    pub node_id: i32,
    pub broker: bool,
    pub metrics_port: u16,
}

/// The Pod of `process`, a process of the Kafka `cluster` (whose labels it carries) at `version`.
pub fn pod(ns: &str, cluster: &str, kafka_labels: &BTreeMap<String, String>, version: &str, process: &Process) -> Pod {
    let mut labels: BTreeMap<String, String> = kafka_labels
        .iter()
        .filter(|(k, _)| !k.starts_with("strimzi.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend([
        (CLUSTER_LABEL.to_owned(), cluster.to_owned()),
        (KIND_LABEL.to_owned(), "Kafka".to_owned()),
        ("strimzi.io/name".to_owned(), format!("{cluster}-kafka")),
        ("strimzi.io/component-type".to_owned(), "kafka".to_owned()),
        (POOL_LABEL.to_owned(), process.pool.clone()),
        (BROKER_ROLE_LABEL.to_owned(), process.broker.to_string()),
        ("strimzi.io/controller-role".to_owned(), (!process.broker).to_string()),
        ("app.kubernetes.io/name".to_owned(), "kafka".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), cluster.to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), format!("strimzi-{cluster}")),
        ("app.kubernetes.io/managed-by".to_owned(), "strimzi-cluster-operator".to_owned()),
    ]);
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{cluster}-{}-{}", process.pool, process.node_id)),
            namespace: Some(ns.to_owned()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "kafka".into(),
                image: Some(format!("quay.io/strimzi/kafka:0.49.0-kafka-{version}")),
                ports: Some(vec![ContainerPort {
                    name: Some(METRICS_PORT_NAME.into()),
                    container_port: i32::from(process.metrics_port),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

fn running() -> PodStatus {
    PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some(LOOPBACK.into()),
        pod_ips: Some(vec![PodIP { ip: LOOPBACK.into() }]),
        conditions: Some(vec![PodCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() }]),
        ..Default::default()
    }
}

fn metrics_port(pod: &Pod) -> Option<i32> {
    pod.spec.as_ref()?.containers.first()?.ports.as_ref()?.first().map(|p| p.container_port)
}

fn image(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.containers.first()?.image.as_deref()
}

/// Makes the Kafka Pods on this API server what `wanted` says: `(namespace, cluster)` to the Pods it should
/// have. Pods of clusters in `keep` that are not in `wanted` (their reconcile failed this pass) are left alone;
/// every other Kafka Pod is deleted.
pub async fn reconcile(
    client: &Client,
    wanted: &BTreeMap<(String, String), Vec<Pod>>,
    keep: &BTreeSet<(String, String)>,
) -> anyhow::Result<()> {
    let all: Api<Pod> = Api::all(client.clone());
    let existing = all.list(&ListParams::default().labels(&format!("{KIND_LABEL}=Kafka"))).await?;
    let mut seen = BTreeSet::new();
    for pod in existing {
        let ns = pod.namespace().unwrap_or_default();
        let cluster = pod.labels().get(CLUSTER_LABEL).cloned().unwrap_or_default();
        let key = (ns.clone(), cluster);
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let want = match wanted.get(&key) {
            Some(pods) => pods.iter().find(|p| p.metadata.name == pod.metadata.name),
            None if keep.contains(&key) => {
                seen.insert((ns, pod.name_any()));
                continue;
            }
            None => None,
        };
        let Some(want) = want.filter(|w| metrics_port(w) == metrics_port(&pod)) else {
            // Gone, or its port changed (container ports cannot be updated): deleted; recreated next pass.
            if pod.metadata.deletion_timestamp.is_none() {
                api.delete(&pod.name_any(), &DeleteParams::default()).await?;
            }
            continue;
        };
        seen.insert((ns, pod.name_any()));
        if image(want) != image(&pod) {
            let patch = json!({"spec": {"containers": [{"name": "kafka", "image": image(want)}]}});
            api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await?;
        }
        if pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()) != Some(LOOPBACK) {
            api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": running()})))
                .await?;
        }
    }
    for ((ns, _), pods) in wanted {
        for want in pods {
            let name = want.name_any();
            if seen.contains(&(ns.clone(), name.clone())) {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), ns);
            match api.create(&PostParams::default(), want).await {
                Ok(_) => {}
                // A previous pod of that name is still terminating, or the namespace is: next pass.
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 || e.code == 404 => continue,
                Err(e) => return Err(e.into()),
            }
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": running()}))).await?;
        }
    }
    Ok(())
}
