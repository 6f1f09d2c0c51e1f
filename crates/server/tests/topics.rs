//! A topic's whole life on the real services: created, partitions grown, config changed, a decrease refused
//! with nothing applied, deletion protection, deletion, and its state at a past instant.

use std::time::Duration;

use kube::Api;
use polaris_test_support::eventually;
use polaris_test_support::harness::{
    ALL, Harness, create, kube_client, send, unique_name, wait_for_status, wait_operation, wait_operation_for,
};
use polaris_workers::strimzi::KafkaTopic;
use reqwest::StatusCode;
use serde_json::json;

async fn kafka_topic(ns: &str, name_prefix: &str) -> Option<KafkaTopic> {
    let api: Api<KafkaTopic> = Api::namespaced(kube_client("aws-eu-west-1").await, ns);
    let list = api.list(&Default::default()).await.expect("list KafkaTopics");
    list.items.into_iter().find(|t| t.spec.topic_name.as_deref() == Some(name_prefix))
}

async fn topic_event_count(h: &Harness) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE aggregate_type = 'topic'")
        .fetch_one(&h.db.pool)
        .await
        .expect("count");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_topic_grows_changes_refuses_to_shrink_and_is_deleted_only_when_unprotected() {
    let h = Harness::start(&ALL).await;
    let name = unique_name();
    let (id, _) = create(&h, &name, ("aws", "eu-west-1")).await;
    let ready = wait_for_status(&h, &id, "READY", Duration::from_secs(60)).await;
    let ns = ready["namespace"].as_str().expect("namespace").to_owned();
    let topics = format!("/v1/clusters/{id}/topics");
    let topic = format!("{topics}/orders.events");

    // Dry runs on a READY cluster: the plan, and nothing recorded.
    let cluster_events = |h: &Harness| {
        let pool = h.db.pool.clone();
        let id = id.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE aggregate_id = $1")
                .bind(&id)
                .fetch_one(&pool)
                .await
                .expect("count");
            n
        }
    };
    let before = cluster_events(&h).await;
    let (s, plan) =
        send(&h, h.http.post(h.url(&format!("/v1/clusters/{id}/scale?dry_run=true"))).json(&json!({"brokers": 5})))
            .await;
    assert_eq!(
        (s, plan["events"][0]["event_type"].as_str()),
        (StatusCode::OK, Some("ClusterScaleRequested")),
        "{plan}"
    );
    let steps: Vec<(&str, &str)> = plan["kubernetes"]
        .as_array()
        .expect("k8s")
        .iter()
        .map(|c| (c["kind"].as_str().expect("kind"), c["detail"].as_str().expect("detail")))
        .collect();
    assert_eq!(steps[0], ("KafkaNodePool", "replicas 3 -> 5"), "{plan}");
    assert_eq!(steps[1].0, "KafkaRebalance", "{plan}");
    let (s, plan) = send(
        &h,
        h.http
            .post(h.url(&format!("{topics}?dry_run=true")))
            .json(&json!({"name": "orders.events", "partitions": 3, "replication_factor": 3})),
    )
    .await;
    assert_eq!((s, plan["kubernetes"][0]["kind"].as_str()), (StatusCode::OK, Some("KafkaTopic")), "{plan}");
    assert_eq!(cluster_events(&h).await, before, "dry runs record nothing");
    assert_eq!(topic_event_count(&h).await, 0);

    let (s, body) = send(
        &h,
        h.http.post(h.url(&topics)).json(&json!({"name": "orders.events", "partitions": 3, "replication_factor": 3})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    wait_operation(&h, body["operation"]["id"].as_str().expect("op"), "succeeded").await;
    let (_, created) = send(&h, h.http.get(h.url(&topic))).await;
    assert_eq!((created["status"].as_str(), created["version"].as_i64()), (Some("READY"), Some(2)), "{created}");
    let before_growth = chrono::Utc::now();

    // Grow partitions and change config in one request: one operation, applied to the KafkaTopic.
    let (s, changed) = send(
        &h,
        h.http
            .patch(h.url(&topic))
            .header("if-match", "\"2\"")
            .json(&json!({"partitions": 12, "config": {"retention.ms": "86400000"}})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{changed}");
    assert_eq!(changed["topic"]["partitions"], 12);
    wait_operation(&h, changed["operation"]["id"].as_str().expect("op"), "succeeded").await;
    // The request appended two events in one statement: each aggregate's positions follow its sequences, which is
    // the order the relay publishes and the projector applies.
    let (out_of_order,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT position, lag(position) OVER (PARTITION BY aggregate_type, aggregate_id \
         ORDER BY sequence) AS before FROM events) e WHERE position < before",
    )
    .fetch_one(&h.db.pool)
    .await
    .expect("events");
    assert_eq!(out_of_order, 0, "events whose position is below their previous sequence's");
    let (_, read) = send(&h, h.http.get(h.url(&topic))).await;
    assert_eq!(
        (read["partitions"].as_i64(), read["config"]["retention.ms"].as_str()),
        (Some(12), Some("86400000")),
        "{read}"
    );
    let kt = kafka_topic(&ns, "orders.events").await.expect("KafkaTopic");
    assert_eq!(kt.spec.partitions, Some(12));
    assert_eq!(kt.spec.config.get("retention.ms"), Some(&json!(86400000)));

    // Shrinking is refused and nothing is recorded or applied.
    let events = topic_event_count(&h).await;
    let (s, p) = send(&h, h.http.patch(h.url(&topic)).json(&json!({"partitions": 6}))).await;
    assert_eq!(
        (s, p["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("PARTITION_DECREASE_UNSUPPORTED")),
        "{p}"
    );
    assert_eq!(topic_event_count(&h).await, events, "no event");
    let (s, plan) =
        send(&h, h.http.patch(h.url(&format!("{topic}?dry_run=true"))).json(&json!({"partitions": 24}))).await;
    assert_eq!((s, plan["kubernetes"][0]["detail"].as_str()), (StatusCode::OK, Some("partitions 12 -> 24")), "{plan}");
    assert_eq!(topic_event_count(&h).await, events, "a dry run records nothing");
    assert_eq!(kafka_topic(&ns, "orders.events").await.expect("KafkaTopic").spec.partitions, Some(12));
    let (s, p) =
        send(&h, h.http.patch(h.url(&topic)).header("if-match", "\"2\"").json(&json!({"partitions": 20}))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("VERSION_CONFLICT")), "{p}");

    // Time travel: before the growth, three partitions.
    let (s, then) = send(
        &h,
        h.http.get(
            h.url(&format!("{topic}?as_of={}", before_growth.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))),
        ),
    )
    .await;
    assert_eq!((s, then["partitions"].as_i64()), (StatusCode::OK, Some(3)), "{then}");

    // Deletion protection, then deletion.
    let (s, p) = send(&h, h.http.patch(h.url(&topic)).json(&json!({"deletion_protection": true}))).await;
    assert_eq!((s, p["topic"]["deletion_protection"].as_bool()), (StatusCode::OK, Some(true)), "{p}");
    let (s, p) = send(&h, h.http.delete(h.url(&topic))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("DELETION_PROTECTED")), "{p}");
    assert!(kafka_topic(&ns, "orders.events").await.is_some());
    send(&h, h.http.patch(h.url(&topic)).json(&json!({"deletion_protection": false}))).await;
    let (s, deleting) = send(&h, h.http.delete(h.url(&topic))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{deleting}");
    wait_operation(&h, deleting["operation"]["id"].as_str().expect("op"), "succeeded").await;
    assert!(kafka_topic(&ns, "orders.events").await.is_none(), "the KafkaTopic is gone");
    eventually("the topic to read DELETED", Duration::from_secs(20), || async {
        let (_, t) = send(&h, h.http.get(h.url(&topic))).await;
        (t["status"] == "DELETED").then_some(())
    })
    .await;
    h.stop().await;
}

/// A READY cluster whose namespace tells strimzi-sim never to ready a topic, and a topic `name` requested on it:
/// the cluster's id and the topic's operation.
async fn topic_the_operator_never_readies(h: &Harness, name: &str) -> (String, String) {
    let (id, _) = create(h, &unique_name(), ("aws", "eu-west-1")).await;
    let ready = wait_for_status(h, &id, "READY", Duration::from_secs(60)).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(kube_client("aws-eu-west-1").await);
    let patch = json!({"metadata": {"annotations": {"strimzi-sim.polaris.dev/topic-fault": "stall"}}});
    let ns = ready["namespace"].as_str().expect("namespace");
    namespaces
        .patch(ns, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("annotate namespace");
    let (s, body) = send(
        h,
        h.http
            .post(h.url(&format!("/v1/clusters/{id}/topics")))
            .json(&json!({"name": name, "partitions": 1, "replication_factor": 1})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    (id, body["operation"]["id"].as_str().expect("op").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_topic_the_operator_never_readies_is_stalled_at_its_deadline_and_the_cluster_is_untouched() {
    let h = Harness::start_with(&ALL, 8).await;
    let (id, topic_op) = topic_the_operator_never_readies(&h, "stuck").await;
    let op = wait_operation(&h, &topic_op, "stalled").await;
    assert!(op["error"].as_str().is_some_and(|e| e.contains("not Ready before the deadline")), "{op}");
    assert_eq!(op["steps"][0]["state"], "stalled", "{op}");
    let (_, topic) = send(&h, h.http.get(h.url(&format!("/v1/clusters/{id}/topics/stuck")))).await;
    assert_eq!(topic["status"], "STALLED", "{topic}");
    let (_, cluster) = send(&h, h.http.get(h.url(&format!("/v1/clusters/{id}")))).await;
    assert_eq!(cluster["status"], "READY", "the cluster is not touched: {cluster}");
    h.stop().await;
}

/// Found by `polaris-bench chaos`: a topic requested just before its cluster's deletion stayed `running` for ever
/// (its KafkaTopic went with the cluster, the activity failed and so did the workflow, with nothing recorded). The
/// operation now fails with the reason, as the topic's own event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_topic_operation_open_when_its_cluster_is_deleted_fails_with_the_reason() {
    let h = Harness::start_with(&ALL, 120).await;
    // The operator never readies the topic, so its operation is still running when the deletion comes.
    let (id, topic_op) = topic_the_operator_never_readies(&h, "orphan").await;
    wait_operation(&h, &topic_op, "running").await;

    let (s, body) = send(&h, h.http.delete(h.url(&format!("/v1/clusters/{id}")))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    wait_for_status(&h, &id, "DELETED", Duration::from_secs(60)).await;
    let op = wait_operation_for(&h, &topic_op, "failed", Duration::from_secs(30)).await;
    assert!(
        op["error"].as_str().is_some_and(|e| e.contains("was deleted while it was applied")),
        "the reason names what happened: {op}"
    );
    assert!(op["finished_at"].is_string(), "{op}");
    assert_eq!(op["steps"][0]["state"], "failed", "{op}");
    h.stop().await;
}
