//! Clusters in an Istio mesh, on the real services: the org's policy says `mesh`, the cluster records it when it
//! is requested, provisioning labels its namespace for injection and applies its PeerAuthentication,
//! AuthorizationPolicy and DestinationRule (validated by the local API servers against Istio's real CRDs), and
//! deleting the cluster deletes them. A bad `mesh` value is refused with a problem that names the field.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use polaris_server::Role;
use polaris_test_support::harness::{ALL, Harness, cluster_body, kube_client, send, unique_name, wait_for_status};
use polaris_workers::istio::{AuthorizationPolicy, DestinationRule, EXCLUDE_INBOUND_PORTS, PeerAuthentication};
use polaris_workers::resources::CLUSTER_ID_LABEL;
use polaris_workers::strimzi::Kafka;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn publish(h: &Harness, rules: Value) -> (StatusCode, Value) {
    send(h, h.http.put(h.url("/v1/policies")).json(&rules)).await
}

/// The kinds of a dry run's planned Kubernetes changes.
async fn planned_kinds(h: &Harness) -> Vec<String> {
    let (s, plan) = send(h, h.http.post(h.url("/v1/clusters?dry_run=true")).json(&cluster_body(&unique_name()))).await;
    assert_eq!(s, StatusCode::OK, "{plan}");
    let changes = plan["kubernetes"].as_array().expect("changes");
    changes.iter().map(|c| c["kind"].as_str().expect("kind").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_under_a_mesh_policy_gets_its_mesh_objects_and_they_go_with_it() {
    let h = Harness::start(&ALL).await;
    assert!(!planned_kinds(&h).await.contains(&"PeerAuthentication".to_owned()), "no mesh policy, no mesh objects");
    let (s, bundle) =
        publish(&h, json!({"mesh": {"mode": "strict", "client_namespaces": ["payments", "payments", "orders-app"]}}))
            .await;
    assert_eq!(s, StatusCode::OK, "{bundle}");
    assert_eq!(bundle["rules"]["mesh"]["mode"], "strict");
    let kinds = planned_kinds(&h).await;
    for kind in ["PeerAuthentication", "AuthorizationPolicy", "DestinationRule"] {
        assert!(kinds.contains(&kind.to_owned()), "the dry run plans {kind}: {kinds:?}");
    }

    let name = unique_name();
    let (s, created) = send(&h, h.http.post(h.url("/v1/clusters")).json(&cluster_body(&name))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let id = created["cluster"]["id"].as_str().expect("id").to_owned();
    let ns = created["cluster"]["namespace"].as_str().expect("namespace").to_owned();

    // The decision is recorded with the request (sorted, without repeats), not looked up again later.
    let payload: Value = sqlx::query_scalar(
        "SELECT payload::jsonb FROM events WHERE aggregate_id = $1 AND event_type = 'ClusterRequested'",
    )
    .bind(&id)
    .fetch_one(&h.db.pool)
    .await
    .expect("ClusterRequested");
    assert_eq!(
        payload["ClusterRequested"]["mesh"],
        json!({"mode": "strict", "client_namespaces": ["orders-app", "payments"]})
    );
    wait_for_status(&h, &id, "READY", Duration::from_secs(90)).await;

    let aws = kube_client("aws-eu-west-1").await;
    let namespace = Api::<Namespace>::all(aws.clone()).get(&ns).await.expect("namespace");
    assert_eq!(namespace.metadata.labels.as_ref().expect("labels")["istio-injection"], "enabled");
    let peer = Api::<PeerAuthentication>::namespaced(aws.clone(), &ns).get(&name).await.expect("PeerAuthentication");
    assert_eq!(peer.spec.mtls.as_ref().expect("mtls").mode, "STRICT");
    let authz = Api::<AuthorizationPolicy>::namespaced(aws.clone(), &ns).get(&name).await.expect("AuthorizationPolicy");
    assert_eq!(authz.spec.action, "ALLOW");
    assert_eq!(authz.spec.rules[0].from[0].source.namespaces, [ns.clone(), "orders-app".into(), "payments".into()]);
    let rule = Api::<DestinationRule>::namespaced(aws.clone(), &ns).get(&name).await.expect("DestinationRule");
    let ports: Vec<u32> =
        rule.spec.traffic_policy.as_ref().expect("policy").port_level_settings.iter().map(|p| p.port.number).collect();
    assert_eq!(ports, [9090, 9091, 9092, 9093]);
    for labels in [&peer.metadata.labels, &authz.metadata.labels, &rule.metadata.labels] {
        assert_eq!(labels.as_ref().expect("labels")[CLUSTER_ID_LABEL], id);
    }
    let kafka = Api::<Kafka>::namespaced(aws.clone(), &ns).get(&name).await.expect("kafka");
    let template = kafka.spec.kafka.template.expect("pod template");
    let annotations = template.pod.and_then(|p| p.metadata).expect("pod metadata").annotations;
    assert_eq!(annotations[EXCLUDE_INBOUND_PORTS], "9090,9091,9092,9093");

    let (s, deleted) = send(&h, h.http.delete(h.url(&format!("/v1/clusters/{id}")))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{deleted}");
    wait_for_status(&h, &id, "DELETED", Duration::from_secs(90)).await;
    assert!(Api::<PeerAuthentication>::namespaced(aws.clone(), &ns).get_opt(&name).await.expect("kube").is_none());
    assert!(Api::<AuthorizationPolicy>::namespaced(aws.clone(), &ns).get_opt(&name).await.expect("kube").is_none());
    assert!(Api::<DestinationRule>::namespaced(aws.clone(), &ns).get_opt(&name).await.expect("kube").is_none());
    assert!(Api::<Namespace>::all(aws).get_opt(&ns).await.expect("kube").is_none(), "the namespace is gone");

    // `off` takes clusters requested from now on out of the mesh.
    let (s, _) = publish(&h, json!({"mesh": {"mode": "off"}})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!planned_kinds(&h).await.contains(&"PeerAuthentication".to_owned()));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_mesh_value_is_refused_with_a_problem_naming_the_field() {
    let h = Harness::start(&[Role::Api]).await;
    let cases = [
        (json!({"mesh": {"mode": "strictest"}}), StatusCode::BAD_REQUEST, "VALIDATION_FAILED", "mesh.mode"),
        (json!({"mesh": {}}), StatusCode::BAD_REQUEST, "VALIDATION_FAILED", "mesh.mode"),
        (json!({"mesh": "strict"}), StatusCode::BAD_REQUEST, "VALIDATION_FAILED", "mesh"),
        (
            json!({"mesh": {"mode": "strict", "client_namespaces": "payments"}}),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            "mesh.client_namespaces",
        ),
        (
            json!({"mesh": {"mode": "strict", "client_namespaces": ["Payments_Team"]}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_POLICY",
            "mesh.client_namespaces",
        ),
    ];
    for (rules, status, code, field) in cases {
        let (s, problem) = publish(&h, rules.clone()).await;
        assert_eq!(
            (s, problem["code"].as_str(), problem["field"].as_str()),
            (status, Some(code), Some(field)),
            "{rules}: {problem}"
        );
    }
    // Nothing was published.
    let (s, current) = send(&h, h.http.get(h.url("/v1/policies"))).await;
    assert_eq!((s, current["version"].as_i64()), (StatusCode::OK, Some(0)), "{current}");
    h.stop().await;
}
