//! The Topic Operator's work on a real cluster: a KafkaTopic's topic is created, grown and reconfigured on the
//! brokers with Kafka's admin API, and what Kafka refuses is reported as Strimzi's Topic Operator reports it.

use std::time::Duration;

use rdkafka::admin::{AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::dataplane::Cluster;
use polaris_workers::strimzi::KafkaTopicSpec;

/// What Kafka (or the operator's own rules) refused: the condition's reason and message.
pub struct Refused {
    pub reason: String,
    pub message: String,
}

fn kafka_error(code: RDKafkaErrorCode) -> Refused {
    Refused { reason: "KafkaError".into(), message: format!("{code:?}: {code}") }
}

fn client_error(e: KafkaError) -> Refused {
    match e.rdkafka_error_code() {
        Some(code) => kafka_error(code),
        None => Refused { reason: "KafkaError".into(), message: e.to_string() },
    }
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))).request_timeout(Some(Duration::from_secs(30)))
}

fn config_value(v: &serde_json::Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
}

/// Makes the topic on the brokers what `spec` says: created with its partitions, replicas and config; more
/// partitions when it asks for more; its config set to exactly `spec.config`.
pub async fn apply(cluster: &Cluster, name: &str, spec: &KafkaTopicSpec) -> Result<(), Refused> {
    let admin = cluster.admin().map_err(|e| Refused { reason: "KafkaError".into(), message: format!("{e:#}") })?;
    let partitions =
        cluster.partitions().await.map_err(|e| Refused { reason: "KafkaError".into(), message: format!("{e:#}") })?;
    let existing: Vec<_> = partitions.iter().filter(|p| p.topic == name).collect();
    let wanted_partitions = spec.partitions.unwrap_or(1).max(1);
    let wanted_replicas = spec.replicas.unwrap_or(1).max(1);
    let config: Vec<(String, String)> = spec.config.iter().map(|(k, v)| (k.clone(), config_value(v))).collect();
    if existing.is_empty() {
        let mut topic = NewTopic::new(name, wanted_partitions, TopicReplication::Fixed(wanted_replicas));
        for (k, v) in &config {
            topic = topic.set(k, v);
        }
        let results = admin.create_topics([&topic], &options()).await.map_err(client_error)?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(kafka_error(code)),
            }
        }
        return Ok(());
    }
    let current_partitions = existing.len() as i32;
    let current_replicas = existing.iter().map(|p| p.replicas.len()).max().unwrap_or(0) as i32;
    if wanted_partitions < current_partitions {
        return Err(Refused { reason: "NotSupported".into(), message: "Decreasing partitions not supported".into() });
    }
    if wanted_replicas != current_replicas {
        return Err(Refused {
            reason: "NotSupported".into(),
            message: "Replication factor change not supported, but required for reconciliation".into(),
        });
    }
    if wanted_partitions > current_partitions {
        let grow = NewPartitions::new(name, wanted_partitions as usize);
        for r in admin.create_partitions([&grow], &options()).await.map_err(client_error)? {
            if let Err((_, code)) = r {
                return Err(kafka_error(code));
            }
        }
    }
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(name));
    for (k, v) in &config {
        alter = alter.set(k, v);
    }
    for r in admin.alter_configs([&alter], &options()).await.map_err(client_error)? {
        if let Err((_, code)) = r {
            return Err(kafka_error(code));
        }
    }
    Ok(())
}

/// Deletes the topic from the brokers; a topic that is not there is fine.
pub async fn delete(cluster: &Cluster, name: &str) -> anyhow::Result<()> {
    let admin = cluster.admin()?;
    for r in admin.delete_topics(&[name], &options()).await? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((_, code)) => anyhow::bail!("deleting topic {name}: {code}"),
        }
    }
    Ok(())
}
