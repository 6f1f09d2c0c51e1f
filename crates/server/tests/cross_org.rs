//! Every route of the API, called by one org with another org's ids, answers 404 and records nothing. The
//! matrix is built from the OpenAPI document, so a new route is covered as soon as it is documented (and a new
//! mutating route with an id must say which body to send, or this test fails naming it).

use std::time::Duration;

use polaris_app::caller::Role as TokenRole;
use polaris_test_support::harness::{
    ALL, Harness, cluster_body, new_org, new_token, register_local_targets, unique_name,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A valid body for each mutating operation that names an object, so validation never answers before the
/// ownership check does.
fn body_for(operation_id: &str, org: uuid::Uuid) -> Option<Option<Value>> {
    Some(match operation_id {
        "clusters_update" => Some(json!({"deletion_protection": true})),
        "clusters_scale" => Some(json!({"brokers": 4})),
        "clusters_upgrade" => Some(json!({"kafka_version": "4.3.1"})),
        "clusters_delete" | "topics_delete" | "tokens_delete" | "users_delete" | "users_rotate" => None,
        "users_create" => Some(json!({"name": "stolen-user"})),
        "users_update" => Some(json!({"acls": []})),
        "topics_create" => Some(json!({"name": "stolen.topic", "partitions": 1, "replication_factor": 1})),
        "topics_update" => Some(json!({"partitions": 12})),
        "targets_grant" => Some(json!({"org_id": org})),
        "policies_evaluate" => Some(json!({"command": "scale_cluster", "input": {"brokers": 4}})),
        "drift_resolve" => Some(json!({"action": "ignore", "reason": "not mine to ignore"})),
        _ => return None,
    })
}

/// Everything the API can record, counted.
async fn recorded(h: &Harness) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in ["events", "operations", "idempotency_keys", "policy_bundles", "target_grants", "cluster_names"] {
        counts.push(
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&h.db.pool).await.expect("count"),
        );
    }
    counts.push(
        sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NOT NULL")
            .fetch_one(&h.db.pool)
            .await
            .expect("count"),
    );
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_called_with_another_orgs_ids_answers_404_and_records_nothing() {
    let h = Harness::start(&ALL).await;
    // The other org: a READY cluster, its provisioning operation, a topic, a token.
    let other = new_org(&h.db, "other").await;
    let other_token = new_token(&h.db, other, TokenRole::Admin).await;
    register_local_targets(&h.db, other).await;
    let resp = h
        .http
        .post(h.url("/v1/clusters"))
        .bearer_auth(&other_token)
        .json(&cluster_body(&unique_name()))
        .send()
        .await
        .expect("create");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let created: Value = resp.json().await.expect("json");
    let cluster = created["cluster"]["id"].as_str().expect("id").to_owned();
    let operation = created["operation"]["id"].as_str().expect("op").to_owned();
    let ready = polaris_test_support::eventually("the other org's cluster", Duration::from_secs(90), || async {
        let r = h.http.get(h.url(&format!("/v1/clusters/{cluster}"))).bearer_auth(&other_token).send().await.ok()?;
        let c: Value = r.json().await.ok()?;
        (c["status"] == "READY").then_some(c)
    })
    .await;
    let topic = "orders.events";
    let resp = h
        .http
        .post(h.url(&format!("/v1/clusters/{cluster}/topics")))
        .bearer_auth(&other_token)
        .json(&json!({"name": topic, "partitions": 1, "replication_factor": 1}))
        .send()
        .await
        .expect("topic");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let topic_op: Value = resp.json().await.expect("json");
    let other_admin: (uuid::Uuid,) = sqlx::query_as("SELECT id FROM api_tokens WHERE org_id = $1 LIMIT 1")
        .bind(other.as_uuid())
        .fetch_one(&h.db.pool)
        .await
        .expect("the other org's token");
    // Settle: the topic's operation ends, so nothing moves while the matrix runs.
    let _ = wait_operation_as(&h, &other_token, topic_op["operation"]["id"].as_str().expect("op")).await;
    let target: (uuid::Uuid,) =
        sqlx::query_as("SELECT id FROM targets LIMIT 1").fetch_one(&h.db.pool).await.expect("t");
    // A drift of the other org's cluster, recorded through the command path as the detector records one.
    let drift = polaris_test_support::harness::record_drift(&h, other, &cluster, &other_token).await;

    let doc: Value = serde_json::from_str(&polaris_api::openapi::openapi_document()).expect("the OpenAPI document");
    let before = recorded(&h).await;
    let mut called = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            let operation_id = op["operationId"].as_str().expect("operationId");
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let names_an_object = |p: &Value| {
                let name = p["name"].as_str().unwrap_or("");
                (p["in"] == "path") || (p["in"] == "query" && name.ends_with("_id") && name != "org_id")
            };
            if !params.iter().any(names_an_object) {
                continue;
            }
            // The other org's ids wherever the route takes one.
            let mut url = path.clone();
            let mut query = Vec::new();
            for p in params.iter().filter(|p| names_an_object(p)) {
                let name = p["name"].as_str().expect("name");
                let value = match (path.as_str(), name) {
                    (_, "cluster_id") => cluster.clone(),
                    (_, "name") => topic.to_owned(),
                    (p, "id") if p.starts_with("/v1/clusters/") => cluster.clone(),
                    (p, "id") if p.starts_with("/v1/operations/") => operation.clone(),
                    (p, "id") if p.starts_with("/v1/tokens/") => other_admin.0.to_string(),
                    (p, "id") if p.starts_with("/v1/targets/") => target.0.to_string(),
                    (_, "drift_id") => drift.clone(),
                    other => panic!("{operation_id}: no id of the other org for {other:?}; add one here"),
                };
                if p["in"] == "path" {
                    url = url.replace(&format!("{{{name}}}"), &value);
                } else {
                    query.push((name.to_owned(), value));
                }
            }
            let mut req = h.http.request(method.clone(), h.url(&url)).query(&query).bearer_auth(&h.admin_token);
            if method != Method::GET {
                let body = body_for(operation_id, h.org.as_uuid())
                    .unwrap_or_else(|| panic!("{operation_id} names an object: give it a valid body in body_for"));
                if let Some(body) = body {
                    req = req.json(&body);
                }
                if matches!(operation_id, "clusters_scale" | "clusters_upgrade" | "clusters_update") {
                    req = req.header("If-Match", format!("\"{}\"", ready["version"]));
                }
            }
            let resp = req.send().await.expect("request");
            let status = resp.status();
            let problem: Value = resp.json().await.unwrap_or(Value::Null);
            // Targets are platform infrastructure, not an org's: granting one is a platform admin's act.
            let expected = if path.starts_with("/v1/targets/") {
                (StatusCode::FORBIDDEN, "FORBIDDEN")
            } else {
                (StatusCode::NOT_FOUND, "NOT_FOUND")
            };
            assert_eq!(
                (status, problem["code"].as_str().unwrap_or("")),
                expected,
                "{method} {url}?{query:?}: {problem}"
            );
            called.push(format!("{method} {path}"));
        }
    }
    assert!(called.len() >= 15, "the matrix covers the routes that name objects: {called:?}");
    assert_eq!(recorded(&h).await, before, "nothing was recorded by {called:?}");
    h.stop().await;
}

async fn wait_operation_as(h: &Harness, token: &str, op: &str) -> Value {
    polaris_test_support::eventually(&format!("operation {op} to end"), Duration::from_secs(90), || async {
        let r = h.http.get(h.url(&format!("/v1/operations/{op}"))).bearer_auth(token).send().await.ok()?;
        let o: Value = r.json().await.ok()?;
        (o["finished_at"].is_string()).then_some(o)
    })
    .await
}
