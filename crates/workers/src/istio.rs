//! Typed bindings for the Istio resources Polaris writes for a cluster in a mesh (`security.istio.io/v1`,
//! `networking.istio.io/v1`), covering the fields Polaris sets. Field names and enum values follow Istio's CRDs
//! (`istio.io/api` `kubernetes/customresourcedefinitions.gen.yaml`), which ./dev/up installs in the local API
//! servers, so every object here is validated by a real schema in the tests.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The namespace label that asks Istio to inject sidecars into the namespace's pods.
pub const INJECTION_LABEL: &str = "istio-injection";
/// The pod annotation that keeps inbound ports out of the sidecar.
pub const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
/// Kafka's own ports on a Strimzi broker or controller: control plane, replication, the plain and tls listeners.
/// Their traffic stays on Kafka's own TLS and authentication, outside the sidecar (see deploy/MESH.md).
pub const KAFKA_PORTS: [u16; 4] = [9090, 9091, 9092, 9093];

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// `STRICT`, `PERMISSIVE`, `DISABLE` or `UNSET`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MutualTls {
    pub mode: String,
}

/// How a namespace's workloads accept connections: mutual TLS required, or accepted beside plain text.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(group = "security.istio.io", version = "v1", kind = "PeerAuthentication", namespaced)]
#[kube(plural = "peerauthentications", schema = "disabled")]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthenticationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct From {
    pub source: Source,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<From>,
}

/// Who may call a namespace's workloads through the mesh. An `ALLOW` policy denies whatever its rules do not
/// match.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(group = "security.istio.io", version = "v1", kind = "AuthorizationPolicy", namespaced)]
#[kube(plural = "authorizationpolicies", schema = "disabled")]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// `ALLOW`, `DENY`, `AUDIT` or `CUSTOM`.
    pub action: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PortSelector {
    pub number: u32,
}

/// `DISABLE`, `SIMPLE`, `MUTUAL` or `ISTIO_MUTUAL`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientTls {
    pub mode: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PortTrafficPolicy {
    pub port: PortSelector,
    pub tls: ClientTls,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

/// How clients' sidecars talk to a host: here, that Kafka's ports carry Kafka's own TLS, not Istio's.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(group = "networking.istio.io", version = "v1", kind = "DestinationRule", namespaced)]
#[kube(plural = "destinationrules", schema = "disabled")]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}
