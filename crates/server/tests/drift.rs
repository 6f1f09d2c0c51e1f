//! Drift (issue #15) on the real services: someone changes a cluster's objects behind Polaris with kubectl; the
//! detector (every second here) records it, the cluster is DEGRADED, and each drift is reverted, adopted or
//! ignored through the API. Status-only brokers: what reaches Kafka itself is in `data_plane.rs`.

use std::time::{Duration, Instant};

use polaris_domain::naming::BROKER_POOL;
use polaris_test_support::eventually;
use polaris_test_support::harness::{
    ALL, Harness, drift_detected_count, get, kubectl, kubectl_env, new_org, new_token, send, unique_name,
    wait_for_status, wait_open_drift, wait_operation,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TARGET: &str = "aws-eu-west-1";
/// The detector's interval in this test.
const INTERVAL: Duration = Duration::from_secs(1);

async fn harness() -> Harness {
    Harness::start_configured(&ALL, |s| s.drift_interval_secs = INTERVAL.as_secs()).await
}

/// Waits until the cluster has an open drift of `field` on an object whose id contains `object`; the time it took
/// is the detection latency (kubectl's change to the API's answer, through the event store and the projector).
async fn wait_drift(h: &Harness, id: &str, object: &str, field: &str) -> (Value, Duration) {
    let started = Instant::now();
    let drift = wait_open_drift(h, id, object, field, INTERVAL + Duration::from_secs(5)).await;
    (drift, started.elapsed())
}

async fn resolve(h: &Harness, id: &str, drift: &Value, body: Value) -> (StatusCode, Value) {
    let drift_id = drift["id"].as_str().expect("drift id");
    send(h, h.http.post(h.url(&format!("/v1/clusters/{id}/drift/{drift_id}/resolve"))).json(&body)).await
}

async fn drift_status(h: &Harness, id: &str, drift: &Value) -> String {
    let list = get(h, &format!("/v1/clusters/{id}/drift")).await;
    let found = list["items"].as_array().expect("items").iter().find(|d| d["id"] == drift["id"]).cloned();
    found.map(|d| d["status"].as_str().unwrap_or_default().to_owned()).unwrap_or_default()
}

async fn wait_drift_status(h: &Harness, id: &str, drift: &Value, status: &str) {
    eventually(&format!("drift {} {status}", drift["id"]), Duration::from_secs(60), || async {
        (drift_status(h, id, drift).await == status).then_some(())
    })
    .await;
}

/// `polaris_drift_passes_total{outcome}` as this process counts it.
async fn passes(h: &Harness, outcome: &str) -> f64 {
    let text = h.http.get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let prefix = format!("polaris_drift_passes_total{{outcome=\"{outcome}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

/// `kubectl patch` of a KafkaTopic's `retention.ms`, as someone behind Polaris would.
fn set_retention(ns: &str, object: &str, ms: i64) {
    let patch = format!(r#"{{"spec":{{"config":{{"retention.ms":{ms}}}}}}}"#);
    kubectl_ok(&["patch", "kafkatopic", object, "-n", ns, "--type", "merge", "-p", &patch], "");
}

fn kubectl_ok(args: &[&str], input: &str) -> String {
    let (ok, out) = kubectl(TARGET, args, input);
    assert!(ok, "kubectl {args:?}: {out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drift_is_detected_degrades_the_cluster_and_is_reverted_adopted_or_ignored() {
    let h = harness().await;
    let rules = json!({
        "retention_ms": {"finite": true},
        "drift": {"mode": "report", "adopt": ["spec.config.*", "spec.replicas"]},
    });
    let (s, body) = send(&h, h.http.put(h.url("/v1/policies")).json(&rules)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
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
    let ns = body["cluster"]["namespace"].as_str().expect("namespace").to_owned();
    wait_for_status(&h, &id, "READY", Duration::from_secs(90)).await;
    let (s, t) = send(
        &h,
        h.http.post(h.url(&format!("/v1/clusters/{id}/topics"))).json(&json!({
            "name": "orders.events", "partitions": 3, "replication_factor": 3, "config": {"retention.ms": "86400000"}
        })),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    wait_operation(&h, t["operation"]["id"].as_str().expect("op"), "succeeded").await;
    let topic_object = kubectl_ok(&["get", "kafkatopics", "-n", &ns, "-o", "name"], "");
    let topic_object = topic_object.trim().rsplit('/').next().expect("the topic's KafkaTopic").to_owned();

    // No false positives: a scale and an upgrade run while the detector passes every second.
    let compared_before = passes(&h, "compared").await;
    eventually("a pass that compared the steady cluster", Duration::from_secs(30), || async {
        (passes(&h, "compared").await > compared_before).then_some(())
    })
    .await;
    let (skipped, detected) = (passes(&h, "skipped").await, drift_detected_count(&h).await);
    let (s, op) = send(&h, h.http.post(h.url(&format!("/v1/clusters/{id}/scale"))).json(&json!({"brokers": 4}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{op}");
    wait_operation(&h, op["operation"]["id"].as_str().expect("op"), "succeeded").await;
    let (s, op) =
        send(&h, h.http.post(h.url(&format!("/v1/clusters/{id}/upgrade"))).json(&json!({"kafka_version": "4.3.1"})))
            .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{op}");
    wait_operation(&h, op["operation"]["id"].as_str().expect("op"), "succeeded").await;
    let compared = passes(&h, "compared").await;
    eventually("a pass that compared the cluster after the upgrade", Duration::from_secs(30), || async {
        (passes(&h, "compared").await > compared).then_some(())
    })
    .await;
    assert!(
        passes(&h, "skipped").await > skipped,
        "the detector passed (and skipped the cluster) during the operations"
    );
    assert_eq!(drift_detected_count(&h).await, detected, "no DriftDetected while a scale and an upgrade ran");
    assert_eq!(get(&h, &format!("/v1/clusters/{id}")).await["status"], "READY");

    // A topic's retention changed with kubectl: detected within the interval plus 5 s, who did it, DEGRADED.
    set_retention(&ns, &topic_object, 172800000);
    let (drift, latency) = wait_drift(&h, &id, &topic_object, "spec.config.retention.ms").await;
    println!("detected a retention.ms change in {latency:?}");
    assert_eq!((drift["expected"].clone(), drift["actual"].clone()), (json!(86400000), json!(172800000)), "{drift}");
    assert_eq!(drift["changed_by"], "kubectl-patch", "{drift}");
    let cluster = get(&h, &format!("/v1/clusters/{id}")).await;
    assert_eq!(cluster["status"], "DEGRADED", "{cluster}");
    assert!(cluster["status_reason"].as_str().is_some_and(|r| r.contains(&topic_object)), "{cluster}");
    assert_eq!(cluster["open_drifts"], 1);
    let metrics = h.http.get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains(&format!("polaris_drift_open{{org_id=\"{}\"}} 1", h.org)), "polaris_drift_open");

    // Another org sees neither the drift nor the cluster.
    let other = new_org(&h.db, &format!("other-{}", unique_name())).await;
    let other_token = new_token(&h.db, other, polaris_app::caller::Role::Admin).await;
    let r = h.http.get(h.url(&format!("/v1/clusters/{id}/drift"))).bearer_auth(&other_token).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Adopt: the live value becomes the topic's TopicConfigChanged, by drift-adopt:<caller>.
    // With an Idempotency-Key: the adoption and the resolution are one request, and its repeat answers the same.
    let path = format!("/v1/clusters/{id}/drift/{}/resolve", drift["id"].as_str().expect("drift id"));
    let keyed = || h.http.post(h.url(&path)).header("idempotency-key", "adopt-1").json(&json!({"action": "adopt"}));
    let (s, adopted) = send(&h, keyed()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{adopted}");
    let (s, again) = send(&h, keyed()).await;
    assert_eq!((s, &again["operation"]["id"]), (StatusCode::ACCEPTED, &adopted["operation"]["id"]), "{again}");
    wait_operation(&h, adopted["operation"]["id"].as_str().expect("op"), "succeeded").await;
    let topic = get(&h, &format!("/v1/clusters/{id}/topics/orders.events")).await;
    assert_eq!(topic["config"]["retention.ms"], "172800000", "{topic}");
    let actor: String = sqlx::query_scalar(
        "SELECT metadata::jsonb ->> 'actor' FROM events WHERE event_type = 'TopicConfigChanged' ORDER BY position DESC LIMIT 1",
    )
    .fetch_one(&h.db.pool)
    .await
    .expect("TopicConfigChanged");
    assert!(actor.starts_with("drift-adopt:token:"), "{actor}");
    wait_drift_status(&h, &id, &drift, "adopted").await;
    wait_for_status(&h, &id, "READY", Duration::from_secs(30)).await;

    // Infinite retention is never adopted under a `finite` rule; ignoring needs a reason, and stays ignored.
    set_retention(&ns, &topic_object, -1);
    let (drift, _) = wait_drift(&h, &id, &topic_object, "spec.config.retention.ms").await;
    let (s, p) = resolve(&h, &id, &drift, json!({"action": "adopt"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("POLICY_VIOLATION")), "{p}");
    assert_eq!(drift_status(&h, &id, &drift).await, "open");
    let (s, p) = resolve(&h, &id, &drift, json!({"action": "ignore"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")), "{p}");
    let (s, ignored) = resolve(&h, &id, &drift, json!({"action": "ignore", "reason": "load test, until Friday"})).await;
    assert_eq!(s, StatusCode::OK, "{ignored}");
    assert_eq!(ignored["drift"]["status"], "ignored");
    let (s, p) = resolve(&h, &id, &drift, json!({"action": "ignore", "reason": "again"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("INVALID_STATE")), "{p}");
    let compared = passes(&h, "compared").await;
    eventually("two more passes", Duration::from_secs(30), || async {
        (passes(&h, "compared").await >= compared + 2.0).then_some(())
    })
    .await;
    assert_eq!(drift_status(&h, &id, &drift).await, "ignored", "the same difference stays ignored");
    let row = get(&h, &format!("/v1/clusters/{id}/drift")).await;
    let row = row["items"].as_array().expect("items").iter().find(|d| d["id"] == drift["id"]).cloned().expect("row");
    assert_eq!(row["reason"], "load test, until Friday");
    assert!(row["resolved_by"].as_str().is_some_and(|b| b.starts_with("token:")), "{row}");

    // The broker pool's replicas, changed with `kubectl edit` (its editor scripted): detected, reverted by a
    // drift_revert operation, the pool back at 4.
    let editor = std::env::temp_dir().join(format!("polaris-editor-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/^  replicas: 4$/  replicas: 6/' \"$1\"\n").expect("editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let editor = editor.to_str().expect("path").to_owned();
    let (ok, out) =
        kubectl_env(TARGET, &["edit", "kafkanodepool", BROKER_POOL, "-n", &ns], "", &[("KUBE_EDITOR", &editor)]);
    assert!(ok, "kubectl edit: {out}");
    let (drift, latency) = wait_drift(&h, &id, "KafkaNodePool", "spec.replicas").await;
    println!("detected a replicas change in {latency:?}");
    assert_eq!((drift["expected"].clone(), drift["actual"].clone()), (json!(4), json!(6)), "{drift}");
    assert_eq!(drift["changed_by"], "kubectl-edit", "{drift}");
    let (s, reverting) = resolve(&h, &id, &drift, json!({"action": "revert"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{reverting}");
    assert_eq!(reverting["operation"]["kind"], "drift_revert");
    let op = wait_operation(&h, reverting["operation"]["id"].as_str().expect("op"), "succeeded").await;
    assert_eq!(op["cluster_id"], id.as_str());
    let replicas = kubectl_ok(&["get", "kafkanodepool", BROKER_POOL, "-n", &ns, "-o", "jsonpath={.spec.replicas}"], "");
    assert_eq!(replicas.trim(), "4");
    wait_drift_status(&h, &id, &drift, "reverted").await;

    // A deleted KafkaTopic is missing; revert applies it again.
    kubectl_ok(&["delete", "kafkatopic", &topic_object, "-n", &ns, "--wait=true"], "");
    let (drift, _) = wait_drift(&h, &id, &topic_object, "").await;
    assert_eq!(drift["actual"], Value::Null, "{drift}");
    let (s, reverting) = resolve(&h, &id, &drift, json!({"action": "revert"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{reverting}");
    wait_operation(&h, reverting["operation"]["id"].as_str().expect("op"), "succeeded").await;
    let back = kubectl_ok(
        &["get", "kafkatopic", &topic_object, "-n", &ns, "-o", "jsonpath={.spec.config.retention\\.ms}"],
        "",
    );
    assert_eq!(back.trim(), "172800000", "recreated with the recorded (adopted) config");

    // A KafkaTopic labelled for the cluster that no event explains: reported, never reverted nor deleted.
    let extra = format!(
        "apiVersion: kafka.strimzi.io/v1\nkind: KafkaTopic\nmetadata:\n  name: stray-topic\n  namespace: {ns}\n  labels:\n    \
         polaris.dev/cluster-id: \"{id}\"\n    strimzi.io/cluster: {name}\nspec:\n  partitions: 1\n  replicas: 1\n"
    );
    kubectl_ok(&["apply", "-f", "-"], &extra);
    let (drift, _) = wait_drift(&h, &id, "stray-topic", "").await;
    assert_eq!((drift["expected"].clone(), drift["unexplained"].clone()), (Value::Null, json!(true)), "{drift}");
    let (s, p) = resolve(&h, &id, &drift, json!({"action": "revert"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("UNEXPLAINED_OBJECT")), "{p}");
    let (s, p) = resolve(&h, &id, &drift, json!({"action": "adopt"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("NOT_ADOPTABLE")), "{p}");
    kubectl_ok(&["get", "kafkatopic", "stray-topic", "-n", &ns], "");

    // Under `drift.mode: revert` the detector reverts by itself.
    let rules = json!({"retention_ms": {"finite": true}, "drift": {"mode": "revert"}});
    let (s, body) = send(&h, h.http.put(h.url("/v1/policies")).json(&rules)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, _) = resolve(&h, &id, &drift, json!({"action": "ignore", "reason": "a test's own object"})).await;
    assert_eq!(s, StatusCode::OK);
    set_retention(&ns, &topic_object, 999);
    eventually("the detector's own revert", Duration::from_secs(60), || async {
        let list = get(&h, &format!("/v1/clusters/{id}/drift")).await;
        list["items"].as_array()?.iter().find(|d| {
            d["field"] == "spec.config.retention.ms"
                && d["status"] == "reverted"
                && d["resolved_by"] == "policy:drift-revert"
        })?;
        Some(())
    })
    .await;
    let back = kubectl_ok(
        &["get", "kafkatopic", &topic_object, "-n", &ns, "-o", "jsonpath={.spec.config.retention\\.ms}"],
        "",
    );
    assert_eq!(back.trim(), "172800000");
    wait_for_status(&h, &id, "READY", Duration::from_secs(30)).await;
    kubectl_ok(&["delete", "kafkatopic", "stray-topic", "-n", &ns], "");

    // Every drift episode and its resolution is rebuilt exactly from the events by replay.
    let platform = polaris_app::caller::new_token_secret();
    polaris_app::caller::store_token(&h.db.pool, h.org, "platform", polaris_app::caller::Role::Admin, true, &platform)
        .await
        .expect("platform token");
    let replayed: Value = h
        .http
        .post(h.url("/v1/admin/replay"))
        .bearer_auth(&platform)
        .send()
        .await
        .expect("replay")
        .json()
        .await
        .expect("json");
    assert_eq!(replayed["identical"], true, "{replayed}");
    let tables = replayed["report"]["tables"].as_array().expect("tables");
    let drifts = tables.iter().find(|t| t["table"] == "drifts").expect("drifts is compared");
    assert!(drifts["live_rows"].as_i64().is_some_and(|n| n >= 4), "{drifts}");
    assert_eq!(drifts["live_md5"], drifts["replayed_md5"], "{drifts}");
    h.stop().await;
}
