//! Scale, upgrade and delete on the real services, one disruptive operation at a time.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use polaris_test_support::harness::{
    ALL, Harness, get, kube_client, send, unique_name, wait_for_status, wait_operation,
};
use polaris_workers::strimzi::{Kafka, KafkaRebalance, KafkaTopic};
use reqwest::StatusCode;
use serde_json::json;

async fn history_types(h: &Harness, id: &str) -> Vec<String> {
    let history = get(h, &format!("/v1/clusters/{id}/history")).await;
    history["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["event_type"].as_str().expect("t").to_owned())
        .collect()
}

async fn node_ids(h: &Harness, id: &str, role: &str) -> Vec<i64> {
    let nodes = get(h, &format!("/v1/clusters/{id}/brokers")).await;
    nodes["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|b| b["role"] == role)
        .map(|b| b["id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_up_then_down_upgrade_and_delete_one_operation_at_a_time() {
    let h = Harness::start(&ALL).await;
    let name = unique_name();
    let (s, body) = send(
        &h,
        h.http.post(h.url("/v1/clusters")).json(&json!({
            "name": name, "provider": "aws", "region": "eu-west-1", "brokers": 3, "kafka_version": "4.2.1"
        })),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let id = body["cluster"]["id"].as_str().expect("id").to_owned();
    let ready = wait_for_status(&h, &id, "READY", Duration::from_secs(90)).await;
    // A topic with replication factor 3: the floor for scaling down.
    let (s, t) = send(
        &h,
        h.http.post(h.url(&format!("/v1/clusters/{id}/topics"))).json(&json!({
            "name": "orders.events", "partitions": 6, "replication_factor": 3
        })),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    let (s, p) = send(
        &h,
        h.http.post(h.url(&format!("/v1/clusters/{id}/topics"))).json(&json!({
            "name": "too.wide", "partitions": 1, "replication_factor": 4
        })),
    )
    .await;
    assert_eq!(
        (s, p["code"].as_str(), p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("REPLICATION_FACTOR_ABOVE_BROKERS"), Some("replication_factor")),
        "{p}"
    );
    let topic_op = t["operation"]["id"].as_str().expect("op").to_owned();
    wait_operation(&h, &topic_op, "succeeded").await;
    let topic = get(&h, &format!("/v1/clusters/{id}/topics/orders.events")).await;
    assert_eq!(topic["status"], "READY");
    let version = get(&h, &format!("/v1/clusters/{id}")).await["version"].as_i64().expect("version");
    assert_eq!(version, ready["version"].as_i64().expect("version"), "a topic is not a change of the cluster");
    let (s, p) = send(&h, h.http.post(h.url(&format!("/v1/clusters/{id}/scale"))).json(&json!({"brokers": 2}))).await;
    assert_eq!(
        (s, p["code"].as_str(), p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("BELOW_REPLICATION_FACTOR"), Some("brokers")),
        "{p}"
    );
    assert!(p["detail"].as_str().expect("detail").contains("replication factor 3"), "{p}");

    // A stale If-Match loses, naming the current version.
    let version = ready["version"].as_i64().expect("version");
    let scale = |n: u32| h.http.post(h.url(&format!("/v1/clusters/{id}/scale"))).json(&json!({"brokers": n}));
    let (s, p) = send(&h, scale(5).header("If-Match", format!("\"{}\"", version - 1))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("VERSION_CONFLICT")));
    assert_eq!(p["current_version"], version);

    // Scale 3 -> 5; while it runs, a second disruptive command is refused, naming the running operation.
    let (s, accepted) = send(&h, scale(5).header("If-Match", format!("\"{version}\""))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let scale_op = accepted["operation"]["id"].as_str().expect("op").to_owned();
    let upgrade = || h.http.post(h.url(&format!("/v1/clusters/{id}/upgrade"))).json(&json!({"kafka_version": "4.3.1"}));
    let (s, p) = send(&h, upgrade()).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("OPERATION_IN_PROGRESS")), "{p}");
    assert_eq!(p["operation_id"], scale_op.as_str());
    let (s, p) = send(&h, h.http.delete(h.url(&format!("/v1/clusters/{id}")))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("OPERATION_IN_PROGRESS")));

    let op = wait_operation(&h, &scale_op, "succeeded").await;
    let steps: Vec<&str> = op["steps"].as_array().expect("steps").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(steps, ["scale-broker-pool", "rebalance-add-brokers"]);
    let cluster = wait_for_status(&h, &id, "READY", Duration::from_secs(30)).await;
    assert_eq!(cluster["brokers"], 5);
    assert_eq!(node_ids(&h, &id, "broker").await, [3, 4, 5, 6, 7]);
    // Time travel: as of the moment the cluster became READY it had 3 brokers; now it has 5.
    let history = get(&h, &format!("/v1/clusters/{id}/history")).await;
    let ready_at = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["event_type"] == "ClusterReady")
        .and_then(|e| e["occurred_at"].as_str())
        .expect("ClusterReady")
        .to_owned();
    let then = get(&h, &format!("/v1/clusters/{id}?as_of={ready_at}")).await;
    assert_eq!((then["brokers"].as_i64(), then["status"].as_str()), (Some(3), Some("READY")), "{then}");
    let (s, p) = send(&h, h.http.get(h.url(&format!("/v1/clusters/{id}?as_of=yesterday")))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")));
    let (s, _) = send(&h, h.http.get(h.url(&format!("/v1/clusters/{id}?as_of=2000-01-01T00:00:00Z")))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the cluster did not exist yet");

    let ns = cluster["namespace"].as_str().expect("namespace").to_owned();
    let aws = kube_client("aws-eu-west-1").await;
    let rebalances = Api::<KafkaRebalance>::namespaced(aws.clone(), &ns).list(&Default::default()).await.expect("list");
    let add = rebalances.items.iter().find(|r| r.spec.mode.as_deref() == Some("add-brokers")).expect("add-brokers");
    assert_eq!(add.spec.brokers, [6, 7], "the rebalance names exactly the new node ids");

    // Scale 5 -> 3: remove-brokers first, the pool shrinks only after.
    let (s, accepted) = send(&h, scale(3)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let down_op = accepted["operation"]["id"].as_str().expect("op").to_owned();
    let op = wait_operation(&h, &down_op, "succeeded").await;
    let steps: Vec<&str> = op["steps"].as_array().expect("steps").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(steps, ["rebalance-remove-brokers", "scale-broker-pool"]);
    assert_eq!(node_ids(&h, &id, "broker").await, [3, 4, 5]);
    let rebalances = Api::<KafkaRebalance>::namespaced(aws.clone(), &ns).list(&Default::default()).await.expect("list");
    let remove = rebalances.items.iter().find(|r| r.spec.mode.as_deref() == Some("remove-brokers")).expect("remove");
    assert_eq!(remove.spec.brokers, [6, 7]);
    let types = history_types(&h, &id).await;
    let pos = |t: &str| types.iter().rposition(|x| x == t).unwrap_or_else(|| panic!("{t} in {types:?}"));
    assert!(pos("RebalanceCompleted") < pos("BrokersRemoved"), "{types:?}");

    // Upgrade: the version rolls, then the metadata version, two recorded steps.
    let (s, accepted) = send(&h, upgrade()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let up_op = accepted["operation"]["id"].as_str().expect("op").to_owned();
    let op = wait_operation(&h, &up_op, "succeeded").await;
    let steps: Vec<&str> = op["steps"].as_array().expect("steps").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(steps, ["roll-kafka-version", "bump-metadata-version"]);
    let cluster = wait_for_status(&h, &id, "READY", Duration::from_secs(30)).await;
    assert_eq!((cluster["kafka_version"].as_str(), cluster["metadata_version"].as_str()), (Some("4.3.1"), Some("4.3")));
    let kafka = Api::<Kafka>::namespaced(aws.clone(), &ns).get(&name).await.expect("kafka");
    assert_eq!(kafka.spec.kafka.version.as_deref(), Some("4.3.1"));
    assert_eq!(kafka.spec.kafka.metadata_version.as_deref(), Some("4.3"));
    let types = history_types(&h, &id).await;
    assert!(pos_of(&types, "KafkaVersionRolled") < pos_of(&types, "MetadataVersionBumped"));

    let topics = Api::<KafkaTopic>::namespaced(aws.clone(), &ns);
    assert_eq!(topics.list(&Default::default()).await.expect("topics").items.len(), 1, "the topic is on the cluster");

    // Deletion protection: on, a delete is refused; off again, it goes ahead.
    let protect =
        |on: bool| h.http.patch(h.url(&format!("/v1/clusters/{id}"))).json(&json!({"deletion_protection": on}));
    let (s, c) = send(&h, protect(true)).await;
    assert_eq!((s, c["deletion_protection"].as_bool()), (StatusCode::OK, Some(true)), "{c}");
    let (s, p) = send(&h, h.http.delete(h.url(&format!("/v1/clusters/{id}")))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("DELETION_PROTECTED")), "{p}");
    let (s, c) = send(&h, protect(false)).await;
    assert_eq!((s, c["deletion_protection"].as_bool()), (StatusCode::OK, Some(false)), "{c}");

    // Delete: everything goes from the target; the history stays readable.
    let (s, accepted) = send(&h, h.http.delete(h.url(&format!("/v1/clusters/{id}")))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    wait_for_status(&h, &id, "DELETED", Duration::from_secs(60)).await;
    assert!(topics.get_opt("orders-events").await.expect("aws").is_none(), "topic gone");
    assert!(Api::<Namespace>::all(aws).get_opt(&ns).await.expect("aws").is_none(), "namespace gone");
    let types = history_types(&h, &id).await;
    assert_eq!(types.last().map(String::as_str), Some("ClusterDeleted"));
    assert_eq!(types.first().map(String::as_str), Some("ClusterRequested"));
    h.stop().await;
}

fn pos_of(types: &[String], t: &str) -> usize {
    types.iter().position(|x| x == t).unwrap_or_else(|| panic!("{t} in {types:?}"))
}
