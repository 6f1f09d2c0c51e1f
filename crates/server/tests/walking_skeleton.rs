//! The first slice end to end on the real services: API -> event store -> relay -> Kafka -> projector ->
//! read model -> API.

use std::time::Duration;

use polaris_app::caller::Role as TokenRole;
use polaris_domain::EventEnvelope;
use polaris_server::Role;
use polaris_test_support::harness::{Harness, cluster_body, new_org, new_token};
use polaris_test_support::{eventually, read_all};
use rdkafka::Message;
use rdkafka::message::Headers;
use reqwest::StatusCode;
use serde_json::Value;

const ALL: [Role; 3] = [Role::Api, Role::Relay, Role::Projector];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_request_reaches_kafka_once_and_the_read_model() {
    let h = Harness::start(&ALL).await;

    let resp = h
        .http
        .post(h.url("/v1/clusters"))
        .bearer_auth(&h.admin_token)
        .json(&serde_json::json!({
            "name": "orders", "provider": "aws", "region": "eu-west-1", "brokers": 3,
            "config": {"min.insync.replicas": "2"}
        }))
        .send()
        .await
        .expect("POST /v1/clusters");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = resp.headers()["location"].to_str().expect("location").to_owned();
    let body: Value = resp.json().await.expect("json");
    let cluster_id = body["cluster"]["id"].as_str().expect("cluster id").to_owned();
    let operation_id = body["operation"]["id"].as_str().expect("operation id").to_owned();
    assert_eq!(location, format!("/v1/operations/{operation_id}"));
    assert_eq!(body["cluster"]["status"], "REQUESTED");
    assert_eq!(body["cluster"]["kafka_version"], "4.3.1");
    assert_eq!(body["cluster"]["controllers"], 3);
    assert_eq!(body["cluster"]["version"], 1);
    assert_eq!(body["operation"]["state"], "pending");
    assert_eq!(body["operation"]["kind"], "provision");

    // The event is in Postgres, once, with its outbox identity.
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT event_type, sequence, xid::text FROM events WHERE aggregate_type = 'cluster' AND aggregate_id = $1",
    )
    .bind(&cluster_id)
    .fetch_all(&h.db.pool)
    .await
    .expect("events");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("ClusterRequested", 1));

    // The read model has it within a deadline (a single GET would also answer from the events before that).
    eventually("the cluster in the read model", Duration::from_secs(30), || async {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM clusters WHERE id = $1::uuid")
            .bind(&cluster_id)
            .fetch_one(&h.db.pool)
            .await
            .ok()?;
        (n == 1).then_some(())
    })
    .await;
    let cluster: Value = eventually("the cluster through the API", Duration::from_secs(30), || async {
        let r =
            h.http.get(h.url(&format!("/v1/clusters/{cluster_id}"))).bearer_auth(&h.admin_token).send().await.ok()?;
        if r.status() != StatusCode::OK {
            return None;
        }
        assert_eq!(r.headers()["etag"], "\"1\"");
        r.json().await.ok()
    })
    .await;
    assert_eq!(cluster["name"], "orders");
    assert_eq!(cluster["status"], "REQUESTED");
    assert_eq!(cluster["brokers"], 3);
    assert_eq!(cluster["config"]["min.insync.replicas"], "2");
    assert_eq!(cluster["org"], h.org.to_string());

    let list: Value = h
        .http
        .get(h.url("/v1/clusters"))
        .bearer_auth(&h.admin_token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"].as_array().expect("items").len(), 1);
    assert!(list["next_page_token"].is_null());

    let op: Value = h
        .http
        .get(h.url(&location))
        .bearer_auth(&h.admin_token)
        .send()
        .await
        .expect("operation")
        .json()
        .await
        .expect("json");
    assert_eq!(op["state"], "pending");
    assert_eq!(op["cluster_id"], cluster_id.as_str());

    // Exactly one message reached the topic (the projector saw it, so the relay has published it), with the
    // aggregate id as key, the SPEC envelope, and the headers.
    let messages = read_all(&h.topic);
    assert_eq!(messages.len(), 1, "exactly one message on {}", h.topic);
    let m = &messages[0];
    assert_eq!(m.key(), Some(cluster_id.as_bytes()));
    let envelope: EventEnvelope = serde_json::from_slice(m.payload().expect("payload")).expect("an envelope");
    assert_eq!(envelope.aggregate_id.to_string(), cluster_id);
    assert_eq!(envelope.aggregate_type, "cluster");
    assert_eq!(envelope.sequence, 1);
    assert_eq!(envelope.event_type, "ClusterRequested");
    assert_eq!(envelope.event_version, 4, "ClusterRequested is at version 4 (target_id, namespace, mesh)");
    assert_eq!(envelope.org_id, h.org.as_uuid());
    assert_eq!(envelope.operation_id.map(|o| o.to_string()), Some(operation_id.clone()));
    assert!(envelope.actor.starts_with("token:admin-token:"), "{}", envelope.actor);
    assert_eq!(envelope.payload["name"], "orders");
    assert_eq!(envelope.payload["brokers"], 3);
    let raw: Value = serde_json::from_slice(m.payload().expect("payload")).expect("json");
    for field in ["event_id", "occurred_at", "correlation_id", "causation_id"] {
        assert!(!raw[field].is_null(), "envelope has {field}");
    }
    let headers = m.headers().expect("headers");
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| panic!("header {name}"))
    };
    assert_eq!(header("event_type"), "ClusterRequested");
    assert_eq!(header("event_version"), "4");
    assert_eq!(header("content-type"), "application/json");

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_get_problem_json_with_stable_codes_and_write_nothing() {
    let h = Harness::start(&[Role::Api]).await;
    let post = |body: reqwest::Body, token: Option<&str>| {
        let mut r = h.http.post(h.url("/v1/clusters")).header("content-type", "application/json").body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    async fn problem(resp: reqwest::Response) -> (StatusCode, Value) {
        let status = resp.status();
        assert_eq!(resp.headers()["content-type"], "application/problem+json", "status {status}");
        (status, resp.json().await.expect("problem json"))
    }
    let token = Some(h.admin_token.as_str());

    let (s, p) = problem(post("{not json".into(), token).await.expect("send")).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")));

    let mut unknown = cluster_body("orders");
    unknown["replicas"] = 3.into();
    let (s, p) = problem(post(unknown.to_string().into(), token).await.expect("send")).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")));
    assert!(p["detail"].as_str().expect("detail").contains("replicas"), "{p}");

    let mut wrong_type = cluster_body("orders");
    wrong_type["brokers"] = "three".into();
    let (s, p) = problem(post(wrong_type.to_string().into(), token).await.expect("send")).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")));

    let mut negative = cluster_body("orders");
    negative["brokers"] = (-3).into();
    let (s, p) = problem(post(negative.to_string().into(), token).await.expect("send")).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")), "negative brokers");

    for (field, value) in [
        ("brokers", Value::from(0)),
        ("brokers", Value::from(101)),
        ("name", Value::from("Orders_EU")),
        ("name", Value::from("a".repeat(55))),
        ("name", Value::from("")),
        ("provider", Value::from("ibm")),
        ("region", Value::from("")),
    ] {
        let mut body = cluster_body("orders");
        body[field] = value.clone();
        let (s, p) = problem(post(body.to_string().into(), token).await.expect("send")).await;
        assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")), "{field}={value}");
        assert_eq!(p["field"], field, "{p}");
    }

    // Well-formed, but no target serves the place: 422 NO_TARGET, naming the field.
    let mut nowhere = cluster_body("orders");
    nowhere["provider"] = "azure".into();
    nowhere["region"] = "westeurope".into();
    let (s, p) = problem(post(nowhere.to_string().into(), token).await.expect("send")).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("NO_TARGET")), "{p}");
    assert_eq!(p["field"], "region");

    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let (s, p) = problem(post(big.into(), token).await.expect("send")).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("PAYLOAD_TOO_LARGE")));

    let (s, p) = problem(post(cluster_body("orders").to_string().into(), None).await.expect("send")).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")));
    let (s, p) = problem(post(cluster_body("orders").to_string().into(), Some("pol_nope")).await.expect("send")).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")));

    let viewer = new_token(&h.db, h.org, TokenRole::Viewer).await;
    let (s, p) = problem(post(cluster_body("orders").to_string().into(), Some(&viewer)).await.expect("send")).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")));

    for path in ["/v1/clusters/7f0b8a53-4a4e-4a55-9d76-9e5c00000000", "/v1/clusters/not-a-uuid", "/v1/nothing-here"] {
        let r = h.http.get(h.url(path)).bearer_auth(&h.admin_token).send().await.expect("send");
        let (s, p) = problem(r).await;
        assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")), "{path}");
    }

    let r = h.http.get(h.url("/v1/clusters?page_size=101")).bearer_auth(&h.admin_token).send().await.expect("send");
    let (s, p) = problem(r).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")));

    let count: (i64,) = sqlx::query_as("SELECT count(*) FROM events").fetch_one(&h.db.pool).await.expect("count");
    assert_eq!(count.0, 0, "no rejected request wrote an event");

    // Another org's cluster answers 404, exactly like a missing one.
    let accepted = post(cluster_body("mine").to_string().into(), token).await.expect("send");
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let body: Value = accepted.json().await.expect("json");
    let other_org = new_org(&h.db, "other").await;
    let other = new_token(&h.db, other_org, TokenRole::Admin).await;
    let op = body["operation"]["id"].as_str().expect("op");
    for path in
        [format!("/v1/clusters/{}", body["cluster"]["id"].as_str().expect("id")), format!("/v1/operations/{op}")]
    {
        let r = h.http.get(h.url(&path)).bearer_auth(&other).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_readiness_metrics_and_openapi_are_served() {
    let h = Harness::start(&[Role::Api]).await;
    let r = h.http.get(h.url("/healthz")).send().await.expect("healthz");
    assert_eq!(r.status(), StatusCode::OK);
    let r = h.http.get(h.url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), StatusCode::OK);
    let ready: Value = r.json().await.expect("json");
    let names: Vec<&str> =
        ready["dependencies"].as_array().expect("deps").iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(names, ["postgres", "kafka"]);
    let metrics = h.http.get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("polaris_api_requests_total"), "{metrics}");
    let doc: Value = h.http.get(h.url("/openapi.json")).send().await.expect("openapi").json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/clusters"]["post"].is_object());
    let docs = h.http.get(h.url("/docs/")).send().await.expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.expect("html").contains("swagger-ui"), "Swagger UI is served at /docs");
    h.stop().await;
}
