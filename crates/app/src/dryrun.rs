//! Dry runs (`?dry_run=true`): a command goes through every check a real one does (role, policy, placement,
//! the aggregate's rules against its current state) and the answer is the plan: the events it would record
//! and the Kubernetes changes the workers would make. Nothing is stored, nothing is started.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use polaris_domain::cluster::ClusterEvent;
use polaris_domain::naming::{
    ADMIN_PASSWORD_SECRET, ADMIN_USER, BROKER_POOL, CONTROLLER_POOL, kafka_topic_resource_name, metrics_config_map,
};
use polaris_domain::topic::TopicEvent;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::AppError;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DryRunQuery {
    /// `true`: check the command and answer the plan (`200`) instead of executing it.
    pub dry_run: Option<bool>,
}

impl DryRunQuery {
    pub fn on(&self) -> bool {
        self.dry_run == Some(true)
    }
}

/// What a command would do.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    /// Always true: nothing was recorded.
    pub dry_run: bool,
    /// The policy bundle version that judged the command.
    pub policy_version: Option<i64>,
    /// The events the command would record, in order.
    pub events: Vec<PlannedEvent>,
    /// The Kubernetes changes the workers would make, in order.
    pub kubernetes: Vec<PlannedChange>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlannedEvent {
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlannedChange {
    /// `apply`, `create` or `delete` (server-side apply with field manager `polaris` for `apply`).
    pub action: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// What changes, for people.
    pub detail: String,
}

fn change(action: &str, kind: &str, namespace: Option<&str>, name: &str, detail: String) -> PlannedChange {
    PlannedChange {
        action: action.to_owned(),
        kind: kind.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
        detail,
    }
}

/// Runs a command against an aggregate's current state (folded from its events) without storing anything.
pub async fn decide<A>(
    pool: &polaris_store::Pool,
    aggregate_id: &str,
    command: A::Command,
    map_error: impl FnOnce(A::Error) -> AppError,
) -> Result<Vec<A::Event>, AppError>
where
    A: Aggregate<Services = ()>,
{
    let rows = polaris_store::db::events::of_aggregate(pool, A::TYPE, aggregate_id, None).await?;
    let mut aggregate = A::default();
    for row in rows {
        aggregate.apply(row.decode().map_err(|e| AppError::Internal(e.to_string()))?);
    }
    let sink = EventSink::default();
    aggregate.handle(command, &(), &sink).await.map_err(map_error)?;
    Ok(sink.collect().await)
}

fn planned<E: DomainEvent>(events: &[E]) -> Result<Vec<PlannedEvent>, AppError> {
    events
        .iter()
        .map(|e| {
            let tagged = serde_json::to_value(e).map_err(|e| AppError::Internal(e.to_string()))?;
            // Externally tagged like the store keeps it; the plan shows the inner object, as the envelope does.
            let payload = match tagged {
                serde_json::Value::Object(m) if m.len() == 1 => {
                    m.into_iter().next().map(|(_, v)| v).unwrap_or_default()
                }
                other => other,
            };
            Ok(PlannedEvent { event_type: e.event_type(), payload })
        })
        .collect()
}

/// The plan of a cluster command on the cluster `cluster_name` in `namespace` (a request's own event names the
/// namespace it fixes).
pub fn cluster_plan(
    cluster_name: &str,
    namespace: &str,
    events: &[ClusterEvent],
    policy_version: Option<i64>,
) -> Result<Plan, AppError> {
    let requested = events.iter().find_map(|e| match e {
        ClusterEvent::ClusterRequested(r) => Some(r.namespace.clone()),
        _ => None,
    });
    let namespace = requested.unwrap_or_else(|| namespace.to_owned());
    let ns = Some(namespace.as_str());
    let mut k8s = Vec::new();
    for event in events {
        match event {
            ClusterEvent::ClusterRequested(e) => {
                let injection = if e.mesh.is_some() { ", istio-injection=enabled" } else { "" };
                k8s.push(change(
                    "apply",
                    "Namespace",
                    None,
                    &namespace,
                    format!("labelled with cluster {}{injection}", e.cluster_id),
                ));
                if let Some(mesh) = &e.mesh {
                    let mode = mesh.mtls_mode();
                    k8s.push(change("apply", "PeerAuthentication", ns, cluster_name, format!("mtls {mode}")));
                    let detail = format!("ALLOW from namespaces [{}]", mesh.callers(&namespace).join(", "));
                    k8s.push(change("apply", "AuthorizationPolicy", ns, cluster_name, detail));
                    let detail = "Kafka ports 9090-9093 keep Kafka's own TLS (tls DISABLE)".to_owned();
                    k8s.push(change("apply", "DestinationRule", ns, cluster_name, detail));
                }
                // Polaris' own Kafka user: its password is generated when the Secret is written, never shown.
                k8s.push(change(
                    "apply",
                    "Secret",
                    ns,
                    ADMIN_PASSWORD_SECRET,
                    "the admin user's password, generated once, kept only here".into(),
                ));
                k8s.push(change("apply", "KafkaUser", ns, ADMIN_USER, "SCRAM-SHA-512, a super user".into()));
                k8s.push(change(
                    "apply",
                    "ConfigMap",
                    ns,
                    &metrics_config_map(cluster_name),
                    "JMX Prometheus exporter rules".into(),
                ));
                k8s.push(change(
                    "apply",
                    "PodMonitor",
                    ns,
                    cluster_name,
                    "the brokers' tcp-prometheus port, where the target serves monitoring.coreos.com/v1".into(),
                ));
                k8s.push(change(
                    "apply",
                    "KafkaNodePool",
                    ns,
                    CONTROLLER_POOL,
                    format!("roles [controller], replicas {}", e.controllers),
                ));
                k8s.push(change(
                    "apply",
                    "KafkaNodePool",
                    ns,
                    BROKER_POOL,
                    format!("roles [broker], replicas {}, storage {} GiB", e.brokers, e.storage_gib),
                ));
                k8s.push(change(
                    "apply",
                    "Kafka",
                    ns,
                    cluster_name,
                    format!(
                        "version {}, metadataVersion {}, listeners plain (scram-sha-512) and tls (tls), authorization \
                         simple, metrics jmxPrometheusExporter, cruiseControl on",
                        e.kafka_version, e.metadata_version
                    ),
                ));
            }
            ClusterEvent::ClusterScaleRequested(e) if e.to > e.from => {
                k8s.push(change("apply", "KafkaNodePool", ns, BROKER_POOL, format!("replicas {} -> {}", e.from, e.to)));
                k8s.push(change(
                    "create",
                    "KafkaRebalance",
                    ns,
                    &format!("{cluster_name}-add-…"),
                    format!("mode add-brokers for the {} new node ids, approved", e.to - e.from),
                ));
            }
            ClusterEvent::ClusterScaleRequested(e) => {
                k8s.push(change(
                    "create",
                    "KafkaRebalance",
                    ns,
                    &format!("{cluster_name}-remove-…"),
                    format!("mode remove-brokers for the {} highest broker node ids, approved", e.from - e.to),
                ));
                k8s.push(change(
                    "apply",
                    "KafkaNodePool",
                    ns,
                    BROKER_POOL,
                    format!("replicas {} -> {} once those brokers are empty", e.from, e.to),
                ));
            }
            ClusterEvent::ClusterUpgradeRequested(e) => {
                k8s.push(change(
                    "apply",
                    "Kafka",
                    ns,
                    cluster_name,
                    format!("spec.kafka.version {} -> {}", e.from, e.to),
                ));
                k8s.push(change(
                    "apply",
                    "Kafka",
                    ns,
                    cluster_name,
                    format!("spec.kafka.metadataVersion -> {} once every broker runs {}", e.metadata_version_to, e.to),
                ));
            }
            ClusterEvent::ClusterDeletionRequested(_) => {
                for kind in ["KafkaTopic", "Kafka", "KafkaNodePool"] {
                    k8s.push(change("delete", kind, ns, "*", format!("every {kind} of the cluster")));
                }
                k8s.push(change("delete", "Namespace", None, &namespace, "the namespace".into()));
            }
            _ => {}
        }
    }
    Ok(Plan { dry_run: true, policy_version, events: planned(events)?, kubernetes: k8s })
}

/// The plan of a topic command.
pub fn topic_plan(
    cluster_namespace: &str,
    topic_id: uuid::Uuid,
    topic_name: &str,
    events: &[TopicEvent],
    policy_version: Option<i64>,
) -> Result<Plan, AppError> {
    let ns = cluster_namespace.to_owned();
    let resource = kafka_topic_resource_name(topic_name, topic_id);
    let mut k8s = Vec::new();
    for event in events {
        let detail = match event {
            TopicEvent::TopicRequested(e) => Some(format!(
                "spec.topicName {topic_name}, partitions {}, replicas {}, config {:?}",
                e.partitions, e.replication_factor, e.config
            )),
            TopicEvent::TopicPartitionsIncreased(e) => Some(format!("partitions {} -> {}", e.from, e.to)),
            TopicEvent::TopicConfigChanged(e) => Some(format!("config {:?}", e.config)),
            _ => None,
        };
        if let Some(detail) = detail {
            k8s.push(change("apply", "KafkaTopic", Some(&ns), &resource, detail));
        }
        if let TopicEvent::TopicDeletionRequested(_) = event {
            k8s.push(change("delete", "KafkaTopic", Some(&ns), &resource, "the topic and its data".into()));
        }
    }
    Ok(Plan { dry_run: true, policy_version, events: planned(events)?, kubernetes: k8s })
}

/// The plan of a Kafka user command: its events, and the Secret and KafkaUser it would write or remove.
pub fn user_plan(
    cluster_namespace: &str,
    user_name: &str,
    events: &[polaris_domain::user::UserEvent],
    policy_version: Option<i64>,
) -> Result<Plan, AppError> {
    use polaris_domain::user::UserEvent as E;
    let ns = cluster_namespace.to_owned();
    let secret = polaris_domain::acl::password_secret_name(user_name);
    let mut k8s = Vec::new();
    for event in events {
        match event {
            E::UserRequested(e) => {
                k8s.push(change("create", "Secret", Some(&ns), &secret, "the password (generation 1)".into()));
                let detail = format!("{} ACL rules, quotas {:?}", e.acls.len(), e.quotas);
                k8s.push(change("apply", "KafkaUser", Some(&ns), user_name, detail));
            }
            E::UserAclsChanged(e) => {
                let detail = format!("spec.authorization.acls: {} rules", e.acls.len());
                k8s.push(change("apply", "KafkaUser", Some(&ns), user_name, detail));
            }
            E::UserQuotasChanged(e) => {
                k8s.push(change("apply", "KafkaUser", Some(&ns), user_name, format!("spec.quotas {:?}", e.quotas)));
            }
            E::UserCredentialsRotated(e) => {
                let detail = format!("a new password (generation {})", e.generation);
                k8s.push(change("replace", "Secret", Some(&ns), &secret, detail));
            }
            E::UserDeletionRequested(_) => {
                let detail = "its credentials, ACLs and quotas leave the brokers".to_owned();
                k8s.push(change("delete", "KafkaUser", Some(&ns), user_name, detail));
                k8s.push(change("delete", "Secret", Some(&ns), &secret, "the password".into()));
            }
            _ => {}
        }
    }
    Ok(Plan { dry_run: true, policy_version, events: planned(events)?, kubernetes: k8s })
}
