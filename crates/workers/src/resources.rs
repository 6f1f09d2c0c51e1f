//! The Strimzi resources a cluster consists of, built from its spec. Pure functions, so the exact objects
//! Polaris applies can be checked against the real CRDs without running a workflow.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize};

use polaris_domain::cluster::ClusterMesh;

use crate::istio::{
    AuthorizationPolicy, AuthorizationPolicySpec, ClientTls, DestinationRule, DestinationRuleSpec,
    EXCLUDE_INBOUND_PORTS, From, INJECTION_LABEL, KAFKA_PORTS, MutualTls, PeerAuthentication, PeerAuthenticationSpec,
    PortSelector, PortTrafficPolicy, Rule, Source, TrafficPolicy,
};
use crate::monitoring::{self, PodMonitor};
use crate::strimzi::{
    CLUSTER_LABEL, Enabled, EntityOperatorSpec, GenericKafkaListener, Kafka, KafkaAuthorization, KafkaClusterSpec,
    KafkaClusterTemplate, KafkaNodePool, KafkaNodePoolSpec, KafkaSpec, KafkaUser, KafkaUserAuthentication,
    KafkaUserSpec, KeyRef, MetadataTemplate, MetricsConfig, MetricsValueFrom, PasswordSource, PodTemplate, ProcessRole,
    SecretValueFrom, Storage, TypeOnly,
};

/// Label on every resource Polaris creates, naming the cluster it belongs to.
pub const CLUSTER_ID_LABEL: &str = "polaris.dev/cluster-id";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The key of a user's password in its Secret.
pub const USER_PASSWORD_KEY: &str = "password";
/// The credentials' generation, on a user's password Secret and on the Secret the User Operator makes.
pub const GENERATION_ANNOTATION: &str = "polaris.dev/credentials-generation";

/// SCRAM-SHA-512 with the password in `key` of the Secret `secret`.
fn scram(secret: &str, key: &str) -> KafkaUserAuthentication {
    KafkaUserAuthentication {
        type_: "scram-sha-512".into(),
        password: Some(PasswordSource {
            value_from: SecretValueFrom { secret_key_ref: KeyRef { name: secret.into(), key: key.into() } },
        }),
    }
}

/// A domain ACL word as serde spells it (Strimzi's spelling: `Read`, `prefix`, `allow`).
fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

pub use polaris_domain::naming::{BROKER_POOL, CONTROLLER_POOL, kafka_topic_resource_name};
pub const PLAIN_LISTENER: &str = "plain";
/// Polaris' own Kafka user on every cluster it provisions: a SCRAM super user whose password Polaris generates
/// and keeps only in the Secret [`ADMIN_PASSWORD_SECRET`] of the cluster's namespace.
pub use polaris_domain::naming::{ADMIN_PASSWORD_SECRET, ADMIN_USER};
pub const ADMIN_PASSWORD_KEY: &str = "password";
/// The ConfigMap key holding the JMX Prometheus exporter's rules, as in Strimzi's examples.
pub const METRICS_CONFIG_KEY: &str = "kafka-metrics-config.yml";
/// The exporter rules every cluster gets (deploy/kafka-metrics/kafka-metrics-config.yml).
pub const METRICS_RULES: &str = include_str!("../../../deploy/kafka-metrics/kafka-metrics-config.yml");

/// What a cluster should look like on its target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterSpec {
    pub cluster_id: uuid::Uuid,
    pub name: String,
    pub kafka_version: String,
    pub metadata_version: String,
    pub brokers: u32,
    pub controllers: u32,
    pub storage_gib: u32,
    pub config: BTreeMap<String, String>,
    /// The namespace the cluster owns alone on its target, as `ClusterRequested` recorded it.
    pub namespace: String,
    /// The cluster's mesh membership, as `ClusterRequested` recorded it; `None`: no mesh objects.
    #[serde(default)]
    pub mesh: Option<ClusterMesh>,
}

/// The Istio objects of a cluster in a mesh, all named after the cluster, in its namespace.
#[derive(Clone, Debug)]
pub struct MeshObjects {
    pub peer_authentication: PeerAuthentication,
    pub authorization_policy: AuthorizationPolicy,
    pub destination_rule: DestinationRule,
}

impl ClusterSpec {
    /// The cluster as it was requested.
    pub fn from_requested(e: &polaris_domain::cluster::ClusterRequested) -> Self {
        ClusterSpec {
            cluster_id: e.cluster_id.as_uuid(),
            name: e.name.to_string(),
            kafka_version: e.kafka_version.clone(),
            metadata_version: e.metadata_version.clone(),
            brokers: e.brokers,
            controllers: e.controllers,
            storage_gib: e.storage_gib,
            config: e.config.clone(),
            namespace: e.namespace.clone(),
            mesh: e.mesh.clone(),
        }
    }

    pub fn namespace(&self) -> String {
        self.namespace.clone()
    }

    fn labels(&self, with_cluster: bool) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (CLUSTER_ID_LABEL.to_owned(), self.cluster_id.to_string()),
            (MANAGED_BY_LABEL.to_owned(), "polaris".to_owned()),
        ]);
        if with_cluster {
            labels.insert(CLUSTER_LABEL.to_owned(), self.name.clone());
        }
        labels
    }

    fn meta(&self, name: &str, with_cluster: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.namespace()),
            labels: Some(self.labels(with_cluster)),
            ..Default::default()
        }
    }

    pub fn namespace_object(&self) -> Namespace {
        let mut labels = self.labels(false);
        if self.mesh.is_some() {
            labels.insert(INJECTION_LABEL.to_owned(), "enabled".to_owned());
        }
        Namespace {
            metadata: ObjectMeta { name: Some(self.namespace()), labels: Some(labels), ..Default::default() },
            ..Default::default()
        }
    }

    /// The controller pool and the broker pool. Both are applied before the Kafka resource: Strimzi needs the
    /// pools to exist when it reconciles the cluster, or it reports the cluster invalid.
    pub fn node_pools(&self) -> [KafkaNodePool; 2] {
        let pool = |name: &str, replicas: u32, role: ProcessRole, size: String| KafkaNodePool {
            metadata: self.meta(name, true),
            spec: KafkaNodePoolSpec {
                replicas: replicas as i32,
                roles: vec![role],
                storage: Storage { type_: "persistent-claim".into(), size: Some(size), delete_claim: Some(true) },
            },
            status: None,
        };
        [
            pool(CONTROLLER_POOL, self.controllers, ProcessRole::Controller, "10Gi".into()),
            pool(BROKER_POOL, self.brokers, ProcessRole::Broker, format!("{}Gi", self.storage_gib)),
        ]
    }

    pub fn kafka(&self) -> Kafka {
        let config = self.config.iter().map(|(k, v)| (k.clone(), typed_config_value(v))).collect();
        Kafka {
            metadata: self.meta(&self.name, false),
            spec: KafkaSpec {
                kafka: KafkaClusterSpec {
                    version: Some(self.kafka_version.clone()),
                    metadata_version: Some(self.metadata_version.clone()),
                    listeners: vec![
                        GenericKafkaListener {
                            name: PLAIN_LISTENER.into(),
                            port: 9092,
                            type_: "internal".into(),
                            tls: false,
                            authentication: Some(TypeOnly { type_: "scram-sha-512".into() }),
                        },
                        GenericKafkaListener {
                            name: "tls".into(),
                            port: 9093,
                            type_: "internal".into(),
                            tls: true,
                            authentication: Some(TypeOnly { type_: "tls".into() }),
                        },
                    ],
                    authorization: Some(KafkaAuthorization {
                        type_: "simple".into(),
                        super_users: vec![ADMIN_USER.into()],
                    }),
                    metrics_config: Some(MetricsConfig {
                        type_: "jmxPrometheusExporter".into(),
                        value_from: MetricsValueFrom {
                            config_map_key_ref: KeyRef {
                                name: self.metrics_config_map(),
                                key: METRICS_CONFIG_KEY.into(),
                            },
                        },
                    }),
                    config,
                    template: self.mesh.as_ref().map(|_| kafka_pods_outside_the_sidecar()),
                },
                entity_operator: Some(EntityOperatorSpec {
                    topic_operator: Some(Enabled::default()),
                    user_operator: Some(Enabled::default()),
                }),
                cruise_control: Some(Enabled::default()),
            },
            status: None,
        }
    }
}

impl ClusterSpec {
    /// The ConfigMap with the exporter rules the brokers' `metricsConfig` names.
    pub fn metrics_config_map(&self) -> String {
        polaris_domain::naming::metrics_config_map(&self.name)
    }

    pub fn metrics_rules(&self) -> ConfigMap {
        ConfigMap {
            metadata: self.meta(&self.metrics_config_map(), false),
            data: Some(BTreeMap::from([(METRICS_CONFIG_KEY.to_owned(), METRICS_RULES.to_owned())])),
            ..Default::default()
        }
    }

    /// The PodMonitor through which a Prometheus Operator scrapes the cluster's brokers and controllers.
    pub fn pod_monitor(&self) -> PodMonitor {
        PodMonitor { metadata: self.meta(&self.name, false), spec: monitoring::pod_monitor_spec(&self.name) }
    }

    /// The Secret holding Polaris' admin password: written once with a fresh password, never overwritten, never
    /// returned by an activity (Temporal would keep it in the workflow's history).
    pub fn admin_password_secret(&self, password: &str) -> Secret {
        Secret {
            metadata: self.meta(ADMIN_PASSWORD_SECRET, false),
            data: Some(BTreeMap::from([(ADMIN_PASSWORD_KEY.to_owned(), ByteString(password.as_bytes().to_vec()))])),
            type_: Some("Opaque".into()),
            ..Default::default()
        }
    }

    /// Polaris' own user: SCRAM-SHA-512, its password taken from [`ADMIN_PASSWORD_SECRET`]; a super user of the
    /// cluster (`spec.kafka.authorization.superUsers`), so it needs no ACLs.
    pub fn admin_user(&self) -> KafkaUser {
        KafkaUser {
            metadata: self.meta(ADMIN_USER, true),
            spec: KafkaUserSpec {
                authentication: Some(scram(ADMIN_PASSWORD_SECRET, ADMIN_PASSWORD_KEY)),
                authorization: None,
                quotas: None,
                template: None,
            },
            status: None,
        }
    }

    /// The Secret holding a Kafka user's password of `generation` (the generation is annotated, so a rotation
    /// can tell a Secret it has already written from an older one).
    pub fn user_password_secret(&self, user: &str, password: &str, generation: u32) -> Secret {
        let mut metadata = self.meta(&polaris_domain::acl::password_secret_name(user), false);
        metadata.annotations = Some(BTreeMap::from([(GENERATION_ANNOTATION.to_owned(), generation.to_string())]));
        Secret {
            metadata,
            data: Some(BTreeMap::from([(USER_PASSWORD_KEY.to_owned(), ByteString(password.as_bytes().to_vec()))])),
            type_: Some("Opaque".into()),
            ..Default::default()
        }
    }

    /// A Kafka user: SCRAM-SHA-512 with its password from [`Self::user_password_secret`], its ACL rules
    /// (`authorization: simple`) and quotas, and the credentials' generation on the Secret the User Operator makes.
    pub fn kafka_user(
        &self,
        user: &str,
        acls: &[polaris_domain::acl::AclRule],
        quotas: &polaris_domain::acl::UserQuotas,
        generation: u32,
    ) -> KafkaUser {
        use crate::strimzi::{
            AclResourceSpec, AclRuleSpec, KafkaUserAuthorization, KafkaUserQuotas, KafkaUserTemplate,
        };
        let acls = acls
            .iter()
            .map(|r| AclRuleSpec {
                type_: Some(word(&r.effect)),
                resource: AclResourceSpec {
                    type_: match r.resource.type_ {
                        polaris_domain::acl::AclResourceType::TransactionalId => "transactionalId".into(),
                        t => word(&t),
                    },
                    name: r.resource.name.clone(),
                    pattern_type: r.resource.name.as_ref().map(|_| word(&r.resource.pattern)),
                },
                operations: r.operations.iter().map(word).collect(),
                host: Some(r.host.clone()),
            })
            .collect();
        let quotas = (*quotas != Default::default()).then_some(KafkaUserQuotas {
            producer_byte_rate: quotas.producer_byte_rate,
            consumer_byte_rate: quotas.consumer_byte_rate,
            request_percentage: quotas.request_percentage,
        });
        let annotations = BTreeMap::from([(GENERATION_ANNOTATION.to_owned(), generation.to_string())]);
        KafkaUser {
            metadata: self.meta(user, true),
            spec: KafkaUserSpec {
                authentication: Some(scram(&polaris_domain::acl::password_secret_name(user), USER_PASSWORD_KEY)),
                authorization: Some(KafkaUserAuthorization { type_: "simple".into(), acls }),
                quotas,
                template: Some(KafkaUserTemplate {
                    secret: Some(PodTemplate {
                        metadata: Some(MetadataTemplate { annotations, ..Default::default() }),
                    }),
                }),
            },
            status: None,
        }
    }

    /// The cluster's Istio objects when it is in a mesh (see deploy/MESH.md):
    /// - a `PeerAuthentication` for the namespace in the mode the policy gave (`STRICT` or `PERMISSIVE`);
    /// - an `AuthorizationPolicy` admitting only the namespace itself and the policy's client namespaces;
    /// - a `DestinationRule` telling clients' sidecars that Kafka's ports carry Kafka's own TLS (the brokers keep
    ///   those ports out of their sidecar), so the sidecar passes them through instead of wrapping them in Istio's.
    pub fn mesh_objects(&self) -> Option<MeshObjects> {
        let mesh = self.mesh.as_ref()?;
        let ns = self.namespace();
        let mode = mesh.mtls_mode();
        let namespaces = mesh.callers(&ns);
        let port = |number: u16| PortTrafficPolicy {
            port: PortSelector { number: u32::from(number) },
            tls: ClientTls { mode: "DISABLE".into() },
        };
        Some(MeshObjects {
            peer_authentication: PeerAuthentication {
                metadata: self.meta(&self.name, false),
                spec: PeerAuthenticationSpec { selector: None, mtls: Some(MutualTls { mode: mode.into() }) },
            },
            authorization_policy: AuthorizationPolicy {
                metadata: self.meta(&self.name, false),
                spec: AuthorizationPolicySpec {
                    selector: None,
                    action: "ALLOW".into(),
                    rules: vec![Rule { from: vec![From { source: Source { namespaces } }] }],
                },
            },
            destination_rule: DestinationRule {
                metadata: self.meta(&self.name, false),
                spec: DestinationRuleSpec {
                    host: format!("*.{ns}.svc.cluster.local"),
                    traffic_policy: Some(TrafficPolicy {
                        port_level_settings: KAFKA_PORTS.into_iter().map(port).collect(),
                    }),
                },
            },
        })
    }

    pub fn kafka_topic(
        &self,
        topic_id: uuid::Uuid,
        name: &str,
        partitions: u32,
        replicas: u32,
        config: &BTreeMap<String, String>,
    ) -> crate::strimzi::KafkaTopic {
        let config = config.iter().map(|(k, v)| (k.clone(), typed_config_value(v))).collect();
        crate::strimzi::KafkaTopic {
            metadata: self.meta(&kafka_topic_resource_name(name, topic_id), true),
            spec: crate::strimzi::KafkaTopicSpec {
                topic_name: Some(name.to_owned()),
                partitions: Some(partitions as i32),
                replicas: Some(replicas as i32),
                config,
            },
            status: None,
        }
    }
}

/// Broker and controller pods keep Kafka's ports out of their sidecar: Kafka's own TLS and authentication guard
/// them, and clients reach each broker by its own address, which a sidecar in the way would break.
fn kafka_pods_outside_the_sidecar() -> KafkaClusterTemplate {
    let ports: Vec<String> = KAFKA_PORTS.iter().map(u16::to_string).collect();
    KafkaClusterTemplate {
        pod: Some(PodTemplate {
            metadata: Some(MetadataTemplate {
                labels: BTreeMap::new(),
                annotations: BTreeMap::from([(EXCLUDE_INBOUND_PORTS.to_owned(), ports.join(","))]),
            }),
        }),
    }
}

/// Strimzi's config is typed JSON; numbers and booleans go in as such.
fn typed_config_value(v: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(v)
        .ok()
        .filter(|j| j.is_number() || j.is_boolean())
        .unwrap_or_else(|| serde_json::Value::String(v.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClusterSpec {
        ClusterSpec {
            cluster_id: uuid::Uuid::from_u128(7),
            name: "orders".into(),
            kafka_version: "4.3.1".into(),
            metadata_version: "4.3".into(),
            brokers: 3,
            controllers: 3,
            storage_gib: 100,
            config: BTreeMap::from([
                ("min.insync.replicas".into(), "2".into()),
                ("auto.create.topics.enable".into(), "false".into()),
                ("compression.type".into(), "zstd".into()),
            ]),
            namespace: "polaris-orders".into(),
            mesh: None,
        }
    }

    #[test]
    fn resources_live_in_the_clusters_namespace_and_carry_its_labels() {
        let s = spec();
        let [controllers, brokers] = s.node_pools();
        assert_eq!(controllers.metadata.namespace.as_deref(), Some("polaris-orders"));
        assert_eq!(controllers.spec.roles, vec![ProcessRole::Controller]);
        assert_eq!(brokers.spec.replicas, 3);
        assert_eq!(brokers.spec.storage.size.as_deref(), Some("100Gi"));
        let labels = brokers.metadata.labels.unwrap();
        assert_eq!(labels[CLUSTER_LABEL], "orders");
        assert_eq!(labels[CLUSTER_ID_LABEL], s.cluster_id.to_string());
        let ns = s.namespace_object();
        assert_eq!(ns.metadata.labels.unwrap()[CLUSTER_ID_LABEL], s.cluster_id.to_string());
    }

    #[test]
    fn kafka_topic_names_are_dns_safe_and_keep_the_real_name() {
        let id = uuid::Uuid::from_u128(0xabcdef12_0000_0000_0000_000000000000);
        assert_eq!(kafka_topic_resource_name("Orders.Events_v1", id), "orders-events-v1-abcdef12");
        assert_eq!(kafka_topic_resource_name("__consumer", id), "consumer-abcdef12");
        assert_eq!(kafka_topic_resource_name("...", id), "topic-abcdef12");
        let t = spec().kafka_topic(id, "Orders.Events_v1", 6, 3, &BTreeMap::new());
        assert_eq!(t.spec.topic_name.as_deref(), Some("Orders.Events_v1"));
        assert_eq!(t.metadata.labels.unwrap()[CLUSTER_LABEL], "orders");
    }

    #[test]
    fn kafka_config_keeps_json_types() {
        let k = serde_json::to_value(spec().kafka()).unwrap();
        assert_eq!(k["spec"]["kafka"]["config"]["min.insync.replicas"], 2);
        assert_eq!(k["spec"]["kafka"]["config"]["auto.create.topics.enable"], false);
        assert_eq!(k["spec"]["kafka"]["config"]["compression.type"], "zstd");
        assert_eq!(k["spec"]["kafka"]["version"], "4.3.1");
        assert_eq!(k["spec"]["kafka"]["metadataVersion"], "4.3");
        assert_eq!(k["spec"]["cruiseControl"], serde_json::json!({}));
        assert!(k["spec"]["kafka"].get("template").is_none(), "no mesh, no pod annotations");
        assert!(spec().mesh_objects().is_none());
    }

    #[test]
    fn a_cluster_in_a_mesh_gets_injection_its_mesh_objects_and_kafka_ports_outside_the_sidecar() {
        let s = ClusterSpec {
            mesh: Some(ClusterMesh {
                mode: polaris_domain::policy::MeshMode::Permissive,
                client_namespaces: vec!["payments".into()],
            }),
            ..spec()
        };
        assert_eq!(s.namespace_object().metadata.labels.unwrap()[INJECTION_LABEL], "enabled");
        let k = serde_json::to_value(s.kafka()).unwrap();
        let annotations = &k["spec"]["kafka"]["template"]["pod"]["metadata"]["annotations"];
        assert_eq!(annotations[EXCLUDE_INBOUND_PORTS], "9090,9091,9092,9093");
        let m = s.mesh_objects().expect("in a mesh");
        assert_eq!(m.peer_authentication.spec.mtls.unwrap().mode, "PERMISSIVE");
        let from = &m.authorization_policy.spec.rules[0].from[0].source.namespaces;
        assert_eq!(from, &["polaris-orders".to_owned(), "payments".to_owned()]);
        assert_eq!(m.destination_rule.spec.host, "*.polaris-orders.svc.cluster.local");
        for meta in [&m.peer_authentication.metadata, &m.authorization_policy.metadata, &m.destination_rule.metadata] {
            assert_eq!(meta.namespace.as_deref(), Some("polaris-orders"));
            assert_eq!(meta.labels.as_ref().unwrap()[CLUSTER_ID_LABEL], s.cluster_id.to_string());
        }
    }
}
