//! How Polaris names what it creates in Kubernetes. Shared by the workers (which create it) and the API's dry
//! runs (which describe it), so the two cannot disagree.

/// The namespace a cluster's resources live in: `polaris-<name>-<first 8 hex digits of the cluster id>`, a
/// DNS label of at most 63 characters. The id makes it unique across every org on a target, so two orgs' clusters
/// of one name never share a namespace. It is fixed when the cluster is requested and recorded in
/// `ClusterRequested` (v3), so it never changes for the cluster's life.
pub fn cluster_namespace(cluster_name: &str, cluster_id: uuid::Uuid) -> String {
    // "polaris-" (8) + name (at most 45) + "-" + 8 hex digits = at most 62.
    let mut base = cluster_name.to_owned();
    base.truncate(45);
    let base = base.trim_end_matches('-');
    format!("polaris-{base}-{}", &cluster_id.simple().to_string()[..8])
}

/// The namespace of a cluster requested before namespaces carried the cluster id (`ClusterRequested` v1 and v2):
/// `polaris-<name>`. Old clusters keep it for life; their events are upcast with it.
pub fn legacy_cluster_namespace(cluster_name: &str) -> String {
    format!("polaris-{cluster_name}")
}

/// The KafkaNodePool of KRaft controllers.
pub const CONTROLLER_POOL: &str = "controllers";
/// The KafkaNodePool of brokers.
/// Polaris' own Kafka user on every cluster it provisions, and the Secret holding its generated password.
pub const ADMIN_USER: &str = "polaris-admin";
pub const ADMIN_PASSWORD_SECRET: &str = "polaris-admin-password";

/// The ConfigMap with the JMX Prometheus exporter's rules of the cluster `cluster`.
pub fn metrics_config_map(cluster: &str) -> String {
    format!("{cluster}-kafka-metrics")
}

pub const BROKER_POOL: &str = "brokers";

/// A DNS-safe `metadata.name` for a KafkaTopic: Kafka names may hold `.`, `_` and capitals, Kubernetes names
/// may not. The topic id's first 8 hex digits keep two names that map alike (`a.b`, `a_b`) apart; the real
/// name goes in `spec.topicName`.
pub fn kafka_topic_resource_name(topic_name: &str, topic_id: uuid::Uuid) -> String {
    let mut base: String =
        topic_name.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    base.truncate(50);
    let base = base.trim_matches('-');
    let suffix = &topic_id.simple().to_string()[..8];
    if base.is_empty() { format!("topic-{suffix}") } else { format!("{base}-{suffix}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_carry_the_cluster_id_and_stay_dns_labels() {
        let id = uuid::Uuid::from_u128(0xabcdef12_0000_0000_0000_000000000001);
        assert_eq!(cluster_namespace("orders", id), "polaris-orders-abcdef12");
        let long = "a".repeat(44) + "-" + &"b".repeat(9);
        let ns = cluster_namespace(&long, id);
        assert!(ns.len() <= 63, "{ns}");
        assert_eq!(ns, format!("polaris-{}-abcdef12", "a".repeat(44)));
        let other = uuid::Uuid::from_u128(0x12345678_0000_0000_0000_000000000001);
        assert_ne!(cluster_namespace("orders", id), cluster_namespace("orders", other));
    }
}
