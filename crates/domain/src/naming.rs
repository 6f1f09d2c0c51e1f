//! How Polaris names what it creates in Kubernetes. Shared by the workers (which create it) and the API's dry
//! runs (which describe it), so the two cannot disagree.

/// The namespace a cluster's resources live in.
pub fn cluster_namespace(cluster_name: &str) -> String {
    format!("polaris-{cluster_name}")
}

/// The KafkaNodePool of KRaft controllers.
pub const CONTROLLER_POOL: &str = "controllers";
/// The KafkaNodePool of brokers.
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
