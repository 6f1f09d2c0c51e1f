//! How Prometheus finds a managed cluster's brokers.
//!
//! In production the Prometheus Operator does: provisioning writes a `PodMonitor` (`monitoring.coreos.com/v1`,
//! fields from the operator's CRD, which ./dev/up installs in the local API servers so the object is validated by
//! the real schema) selecting the cluster's Strimzi pods by `strimzi.io/kind` and `strimzi.io/cluster`, scraping
//! their `tcp-prometheus` port. A target without the operator's CRDs gets none (nothing there would read it).
//!
//! Locally no operator runs, so the worker role answers Prometheus' `http_sd` from the same pods
//! ([`scrape_targets`]). Both give every series the same labels ([`SCRAPE_LABELS`]), so the Grafana dashboard and
//! the cluster page's charts query the same names either way.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, CustomResource, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::resources::CLUSTER_ID_LABEL;
use crate::strimzi::CLUSTER_LABEL;

/// The label Strimzi puts on a Kafka cluster's pods.
pub const KIND_LABEL: &str = "strimzi.io/kind";
pub const POOL_LABEL: &str = "strimzi.io/pool-name";
pub const BROKER_ROLE_LABEL: &str = "strimzi.io/broker-role";
/// The exporter's port on a Strimzi Kafka pod.
pub const METRICS_PORT_NAME: &str = "tcp-prometheus";

/// The labels every managed broker's series carry, and the pod fact each comes from: `(label, Prometheus
/// Kubernetes meta label)`. `node_id` is the pod name's last segment (`<cluster>-<pool>-<node id>`).
pub const SCRAPE_LABELS: [(&str, &str); 6] = [
    ("namespace", "__meta_kubernetes_namespace"),
    ("pod", "__meta_kubernetes_pod_name"),
    ("kafka_cluster", "__meta_kubernetes_pod_label_strimzi_io_cluster"),
    ("kafka_pool", "__meta_kubernetes_pod_label_strimzi_io_pool_name"),
    // "true" on brokers, "false" on controllers (which export broker metrics too, all zero).
    ("kafka_broker", "__meta_kubernetes_pod_label_strimzi_io_broker_role"),
    ("polaris_cluster_id", "__meta_kubernetes_pod_label_polaris_dev_cluster_id"),
];

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelabelConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    pub target_label: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetricsEndpoint {
    pub port: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabelings: Vec<RelabelConfig>,
}

/// Which pods the Prometheus Operator scrapes, and how.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(group = "monitoring.coreos.com", version = "v1", kind = "PodMonitor", namespaced)]
#[kube(plural = "podmonitors", schema = "disabled")]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    pub selector: LabelSelector,
    pub pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
}

/// The PodMonitor spec of the Strimzi cluster `cluster`'s pods.
pub fn pod_monitor_spec(cluster: &str) -> PodMonitorSpec {
    let mut relabelings: Vec<RelabelConfig> = SCRAPE_LABELS
        .iter()
        .map(|(label, meta)| RelabelConfig {
            source_labels: vec![(*meta).to_owned()],
            target_label: (*label).to_owned(),
            ..Default::default()
        })
        .collect();
    relabelings.push(RelabelConfig {
        source_labels: vec!["__meta_kubernetes_pod_name".into()],
        regex: Some(".*-([0-9]+)".into()),
        replacement: Some("$1".into()),
        target_label: "node_id".into(),
    });
    PodMonitorSpec {
        selector: LabelSelector {
            match_labels: BTreeMap::from([
                (KIND_LABEL.to_owned(), "Kafka".to_owned()),
                (CLUSTER_LABEL.to_owned(), cluster.to_owned()),
            ]),
        },
        pod_metrics_endpoints: vec![PodMetricsEndpoint {
            port: METRICS_PORT_NAME.into(),
            path: "/metrics".into(),
            relabelings,
        }],
    }
}

/// One `http_sd` target group (<https://prometheus.io/docs/prometheus/latest/http_sd/>).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// The `http_sd` group of a running Strimzi Kafka pod that Polaris manages, with the labels its PodMonitor
/// would give it; `None` for a pod without an IP, without the exporter's port, or not Polaris'.
pub fn target_group(pod: &Pod) -> Option<TargetGroup> {
    let labels = pod.labels();
    let cluster_id = labels.get(CLUSTER_ID_LABEL)?;
    let ip = pod.status.as_ref()?.pod_ip.as_deref()?;
    let port = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(METRICS_PORT_NAME))?
        .container_port;
    let name = pod.name_any();
    let node_id = name.rsplit('-').next().filter(|id| id.parse::<u32>().is_ok())?;
    let out = BTreeMap::from([
        ("namespace".to_owned(), pod.namespace().unwrap_or_default()),
        ("pod".to_owned(), name.clone()),
        ("kafka_cluster".to_owned(), labels.get(CLUSTER_LABEL).cloned().unwrap_or_default()),
        ("kafka_pool".to_owned(), labels.get(POOL_LABEL).cloned().unwrap_or_default()),
        ("kafka_broker".to_owned(), labels.get(BROKER_ROLE_LABEL).cloned().unwrap_or_default()),
        ("polaris_cluster_id".to_owned(), cluster_id.clone()),
        ("node_id".to_owned(), node_id.to_owned()),
    ]);
    Some(TargetGroup { targets: vec![format!("{ip}:{port}")], labels: out })
}

/// The scrape targets of every Polaris-managed Kafka pod on one target's API server.
pub async fn scrape_targets(client: kube::Client) -> Result<Vec<TargetGroup>, kube::Error> {
    let pods: Api<Pod> = Api::all(client);
    let selector = format!("{KIND_LABEL}=Kafka,{CLUSTER_ID_LABEL}");
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    Ok(list.items.iter().filter_map(target_group).collect())
}

/// Prometheus' `http_sd` answer: the scrape targets of the managed Kafka pods on every registered target. A
/// target that cannot be reached is left out (and logged), so one unreachable region does not hide the others'
/// brokers; the targets list itself failing is an error (Prometheus then keeps the last good answer).
pub async fn all_scrape_targets(
    pool: &polaris_store::Pool,
    config: &crate::target::TargetsConfig,
) -> anyhow::Result<Vec<TargetGroup>> {
    let mut groups = Vec::new();
    for row in polaris_store::db::targets::list(pool, None).await? {
        let found = async {
            let Some(target) = crate::target::load(pool, row.id, config).await? else { return Ok(vec![]) };
            anyhow::Ok(scrape_targets(target.client().await?).await?)
        };
        match found.await {
            Ok(found) => groups.extend(found),
            Err(e) => tracing::warn!(target = %row.name, error = %format!("{e:#}"), "no scrape targets from target"),
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, PodStatus};
    use kube::api::ObjectMeta;

    fn pod(name: &str, ip: Option<&str>, labels: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("polaris-orders".into()),
                labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "kafka".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some(METRICS_PORT_NAME.into()),
                        container_port: 41234,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus { pod_ip: ip.map(Into::into), ..Default::default() }),
        }
    }

    #[test]
    fn a_running_managed_pod_is_a_target_with_the_pod_monitors_labels() {
        let labels =
            [(CLUSTER_ID_LABEL, "c-1"), (CLUSTER_LABEL, "orders"), (POOL_LABEL, "broker"), (BROKER_ROLE_LABEL, "true")];
        let group = target_group(&pod("orders-broker-4", Some("127.0.0.1"), &labels)).expect("a target");
        assert_eq!(group.targets, vec!["127.0.0.1:41234"]);
        let names: Vec<&str> = group.labels.keys().map(String::as_str).collect();
        let mut expected: Vec<&str> = SCRAPE_LABELS.iter().map(|(l, _)| *l).chain(["node_id"]).collect();
        expected.sort();
        assert_eq!(names, expected, "http_sd gives the labels the PodMonitor's relabelings give");
        assert_eq!(group.labels["node_id"], "4");
        assert_eq!(group.labels["polaris_cluster_id"], "c-1");
        assert_eq!(group.labels["kafka_pool"], "broker");
        assert_eq!(group.labels["kafka_broker"], "true");
    }

    #[test]
    fn pods_without_an_ip_or_not_polaris_are_not_targets() {
        let labels = [(CLUSTER_ID_LABEL, "c-1"), (CLUSTER_LABEL, "orders")];
        assert!(target_group(&pod("orders-broker-4", None, &labels)).is_none());
        assert!(target_group(&pod("orders-broker-4", Some("10.0.0.1"), &[(CLUSTER_LABEL, "orders")])).is_none());
        assert!(target_group(&pod("orders-entity-operator", Some("10.0.0.1"), &labels)).is_none());
    }

    #[test]
    fn the_pod_monitor_selects_the_clusters_kafka_pods_and_names_the_same_labels() {
        let spec = pod_monitor_spec("orders");
        assert_eq!(spec.selector.match_labels[CLUSTER_LABEL], "orders");
        assert_eq!(spec.selector.match_labels[KIND_LABEL], "Kafka");
        let targets: Vec<&str> =
            spec.pod_metrics_endpoints[0].relabelings.iter().map(|r| r.target_label.as_str()).collect();
        assert_eq!(
            targets,
            ["namespace", "pod", "kafka_cluster", "kafka_pool", "kafka_broker", "polaris_cluster_id", "node_id"]
        );
    }
}
