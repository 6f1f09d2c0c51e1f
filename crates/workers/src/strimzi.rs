//! Typed bindings for the Strimzi custom resources Polaris writes (`kafka.strimzi.io/v1`), covering the fields
//! Polaris sets and the status fields it reads. Field names follow the real CRDs; free-form maps (broker and
//! topic `config`) keep unknown fields, as Strimzi's schema does.
//!
//! The same types generate CRDs (`polaris-crds`), so a local API server can be given Strimzi's kinds even where
//! the real CRDs (../shared/strimzi-crds) are not at hand.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "kafka.strimzi.io";
pub const VERSION: &str = "v1";
/// The label tying node pools, topics and rebalances to their Kafka cluster.
pub const CLUSTER_LABEL: &str = "strimzi.io/cluster";

fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A status condition, as every Strimzi resource reports them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessRole {
    Controller,
    Broker,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// `ephemeral`, `persistent-claim` or `jbod`.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_claim: Option<bool>,
}

/// A pool of Kafka nodes with the same roles and storage.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(group = "kafka.strimzi.io", version = "v1", kind = "KafkaNodePool", namespaced, plural = "kafkanodepools")]
#[kube(status = "KafkaNodePoolStatus", shortname = "knp", category = "strimzi")]
#[serde(rename_all = "camelCase")]
pub struct KafkaNodePoolSpec {
    pub replicas: i32,
    pub roles: Vec<ProcessRole>,
    pub storage: Storage,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaNodePoolStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_ids: Vec<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<ProcessRole>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenericKafkaListener {
    pub name: String,
    pub port: i32,
    /// `internal`, `route`, `loadbalancer`, `nodeport`, `ingress`, `cluster-ip`.
    #[serde(rename = "type")]
    pub type_: String,
    pub tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<TypeOnly>,
}

/// An object whose only field here is its `type` (a listener's `authentication`, a user's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TypeOnly {
    #[serde(rename = "type")]
    pub type_: String,
}

/// `spec.kafka.authorization`: `simple` is Kafka's own authorizer; super users are principal names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaAuthorization {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub super_users: Vec<String>,
}

/// A key of a ConfigMap or a Secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsValueFrom {
    pub config_map_key_ref: KeyRef,
}

/// `spec.kafka.metricsConfig`: `jmxPrometheusExporter` with its rules in a ConfigMap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsConfig {
    #[serde(rename = "type")]
    pub type_: String,
    pub value_from: MetricsValueFrom,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_version: Option<String>,
    pub listeners: Vec<GenericKafkaListener>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<KafkaAuthorization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_config: Option<MetricsConfig>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "free_form_object")]
    pub config: BTreeMap<String, serde_json::Value>,
    /// What Strimzi adds to the objects it makes for the brokers and controllers (only pod metadata here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<KafkaClusterTemplate>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodTemplate>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetadataTemplate>,
}

/// Labels and annotations Strimzi adds to an object it makes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetadataTemplate {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An empty object that switches a component on (`cruiseControl: {}`, `entityOperator.topicOperator: {}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Enabled {}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityOperatorSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_operator: Option<Enabled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_operator: Option<Enabled>,
}

/// A Kafka cluster; its nodes come from the node pools labelled with its name.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(group = "kafka.strimzi.io", version = "v1", kind = "Kafka", namespaced, plural = "kafkas")]
#[kube(status = "KafkaStatus", shortname = "k", category = "strimzi")]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    pub kafka: KafkaClusterSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_operator: Option<EntityOperatorSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cruise_control: Option<Enabled>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// The CA certificates (PEM) a TLS listener's certificate chains to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsedNodePoolStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kafka_node_pools: Vec<UsedNodePoolStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_metadata_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_last_successful_version: Option<String>,
}

/// A topic, managed by the Topic Operator. `metadata.name` must be DNS-safe; `spec.topicName` carries the
/// real Kafka name.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(group = "kafka.strimzi.io", version = "v1", kind = "KafkaTopic", namespaced, plural = "kafkatopics")]
#[kube(status = "KafkaTopicStatus", shortname = "kt", category = "strimzi")]
#[serde(rename_all = "camelCase")]
pub struct KafkaTopicSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "free_form_object")]
    pub config: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTopicStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
}

/// A Cruise Control rebalance. Approved by the annotation `strimzi.io/rebalance=approve` once its status
/// reaches `ProposalReady`.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(group = "kafka.strimzi.io", version = "v1", kind = "KafkaRebalance", namespaced, plural = "kafkarebalances")]
#[kube(status = "KafkaRebalanceStatus", shortname = "kr", category = "strimzi")]
#[serde(rename_all = "camelCase")]
pub struct KafkaRebalanceSpec {
    /// `full`, `add-brokers`, `remove-brokers` or `remove-disks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaRebalanceStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub optimization_result: Option<BTreeMap<String, serde_json::Value>>,
}

/// A Kafka user, managed by the User Operator: SCRAM credentials from a Secret Polaris writes.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(group = "kafka.strimzi.io", version = "v1", kind = "KafkaUser", namespaced, plural = "kafkausers")]
#[kube(status = "KafkaUserStatus", shortname = "ku", category = "strimzi")]
#[serde(rename_all = "camelCase")]
pub struct KafkaUserSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<KafkaUserAuthentication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<KafkaUserAuthorization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<KafkaUserQuotas>,
    /// How the User Operator makes the user's Secret (Polaris annotates it with the credentials' generation, so
    /// a rotation changes the spec and the User Operator's `observedGeneration` says when it was applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<KafkaUserTemplate>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KafkaUserTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<PodTemplate>,
}

/// `authorization: {type: simple, acls: [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KafkaUserAuthorization {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub acls: Vec<AclRuleSpec>,
}

/// One ACL rule as Strimzi spells it: `type` allow|deny, `resource` {type topic|group|cluster|transactionalId,
/// name, patternType literal|prefix}, `operations` (Read, Write, ...), `host`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AclRuleSpec {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    pub resource: AclResourceSpec,
    pub operations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AclResourceSpec {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern_type: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaUserQuotas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_byte_rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_byte_rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_percentage: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KafkaUserAuthentication {
    /// `scram-sha-512`, `tls` or `tls-external`.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSource>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSource {
    pub value_from: SecretValueFrom,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretValueFrom {
    pub secret_key_ref: KeyRef,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaUserStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The last condition as `Type=Status message`, for stall reasons and heartbeats.
pub fn condition_summary(conditions: &[Condition]) -> String {
    conditions
        .last()
        .map(|c| {
            format!(
                "{}={} {}",
                c.type_.as_deref().unwrap_or("?"),
                c.status.as_deref().unwrap_or("?"),
                c.message.as_deref().or(c.reason.as_deref()).unwrap_or("")
            )
        })
        .unwrap_or_else(|| "no status yet".into())
}

/// Strimzi's "done": `Ready=True` reported for the resource's current generation, not an older one.
pub fn ready_for_generation(conditions: &[Condition], observed: Option<i64>, generation: Option<i64>) -> bool {
    observed == generation
        && conditions.iter().any(|c| c.type_.as_deref() == Some("Ready") && c.status.as_deref() == Some("True"))
}

/// The CRDs of the kinds above, as a `v1/List` a client can apply in one request.
pub fn generated_crds() -> serde_json::Value {
    use kube::CustomResourceExt;
    let items = [Kafka::crd(), KafkaNodePool::crd(), KafkaTopic::crd(), KafkaRebalance::crd(), KafkaUser::crd()];
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_crds_cover_the_five_kinds_at_v1_with_status() {
        let list = generated_crds();
        let items = list["items"].as_array().unwrap();
        let names: Vec<&str> = items.iter().map(|c| c["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "kafkas.kafka.strimzi.io",
                "kafkanodepools.kafka.strimzi.io",
                "kafkatopics.kafka.strimzi.io",
                "kafkarebalances.kafka.strimzi.io",
                "kafkausers.kafka.strimzi.io"
            ]
        );
        for crd in items {
            let v = &crd["spec"]["versions"][0];
            assert_eq!(
                (v["name"].as_str(), v["served"].as_bool(), v["storage"].as_bool()),
                (Some("v1"), Some(true), Some(true))
            );
            assert!(v["subresources"]["status"].is_object(), "{}", crd["metadata"]["name"]);
        }
    }

    #[test]
    fn node_pool_serializes_with_strimzi_field_names() {
        let pool = KafkaNodePool::new(
            "brokers",
            KafkaNodePoolSpec {
                replicas: 3,
                roles: vec![ProcessRole::Broker],
                storage: Storage { type_: "ephemeral".into(), size: None, delete_claim: None },
            },
        );
        let json = serde_json::to_value(&pool).unwrap();
        assert_eq!(json["apiVersion"], "kafka.strimzi.io/v1");
        assert_eq!(json["spec"]["roles"][0], "broker");
        assert_eq!(json["spec"]["storage"]["type"], "ephemeral");
    }
}
