//! What the CLI and the dashboard need from the API besides the resources: the event feed (`polaris events
//! tail`), the platform checks (`polaris admin verify|replay`) and the dashboard's assets at `/`.

use std::time::Duration;

use polaris_app::caller::Role as TokenRole;
use polaris_test_support::eventually;
use polaris_test_support::harness::{
    ALL, Harness, create, new_org, new_token, send, unique_name, wait_for_status, wait_operation,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn feed(h: &Harness, token: &str, query: &str) -> (StatusCode, Value) {
    let resp = h.http.get(h.url(&format!("/v1/events{query}"))).bearer_auth(token).send().await.expect("feed");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_event_feed_follows_the_org_in_commit_order_and_filters_by_cluster() {
    let h = Harness::start(&ALL).await;
    // From the end: no events, a token at the head.
    let (s, start) = feed(&h, &h.admin_token, "?start=end").await;
    assert_eq!(s, StatusCode::OK, "{start}");
    assert_eq!(start["items"], serde_json::json!([]));
    let token = start["next_page_token"].as_str().expect("token").to_owned();

    let (a, _) = create(&h, &unique_name(), ("aws", "eu-west-1")).await;
    let (b, _) = create(&h, &unique_name(), ("gcp", "europe-west1")).await;
    wait_for_status(&h, &a, "READY", Duration::from_secs(90)).await;
    wait_for_status(&h, &b, "READY", Duration::from_secs(90)).await;
    let (s, topic) = send(
        &h,
        h.http
            .post(h.url(&format!("/v1/clusters/{a}/topics")))
            .json(&serde_json::json!({"name": "orders.events", "partitions": 3, "replication_factor": 3})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{topic}");

    // Everything after the token, page by page (2 at a time), in commit order: each aggregate's sequences rise.
    let all = eventually("the feed to show both clusters ready and the topic", Duration::from_secs(60), || async {
        let mut items: Vec<Value> = Vec::new();
        let mut next = token.clone();
        loop {
            let (s, page) = feed(&h, &h.admin_token, &format!("?page_size=2&page_token={next}")).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            let got = page["items"].as_array().expect("items").clone();
            next = page["next_page_token"].as_str().expect("token").to_owned();
            if got.is_empty() {
                break;
            }
            items.extend(got);
        }
        let ready = items.iter().filter(|e| e["event_type"] == "ClusterReady").count();
        let topic = items.iter().any(|e| e["event_type"] == "TopicRequested");
        (ready == 2 && topic).then_some(items)
    })
    .await;
    let mut last: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for e in &all {
        let id = e["aggregate_id"].as_str().expect("id").to_owned();
        let seq = e["sequence"].as_u64().expect("sequence");
        assert!(last.insert(id, seq).is_none_or(|prev| prev + 1 == seq), "out of order: {e}");
    }

    // The cluster filter: cluster a and its topic's events, nothing of b.
    let (_, only_a) = feed(&h, &h.admin_token, &format!("?cluster_id={a}&page_size=100")).await;
    let items = only_a["items"].as_array().expect("items");
    assert!(items.iter().all(|e| e["aggregate_id"] == a.as_str() || e["aggregate_type"] == "topic"), "{only_a}");
    assert!(items.iter().any(|e| e["aggregate_type"] == "topic"), "the topic's events are the cluster's: {only_a}");
    assert!(items.iter().any(|e| e["event_type"] == "ClusterRequested"));

    // Another org sees none of it; a token that was not issued is refused.
    let other = new_org(&h.db, "other").await;
    let other_token = new_token(&h.db, other, TokenRole::Viewer).await;
    let (s, theirs) = feed(&h, &other_token, "?page_size=100").await;
    assert_eq!((s, theirs["items"].clone()), (StatusCode::OK, serde_json::json!([])));
    let (s, bad) = feed(&h, &h.admin_token, "?page_token=12").await;
    assert_eq!((s, bad["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")));
    let (s, bad) = feed(&h, &h.admin_token, "?start=middle").await;
    assert_eq!((s, bad["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn platform_checks_are_for_platform_admins_and_report_a_sound_installation() {
    let h = Harness::start(&ALL).await;
    let (id, _) = create(&h, &unique_name(), ("aws", "eu-west-1")).await;
    wait_for_status(&h, &id, "READY", Duration::from_secs(90)).await;
    // A Kafka user with its rotation, so the replay rebuilds kafka_users and user operations too.
    let user = json!({"name": "orders-app", "acls": [{"resource": {"type": "topic", "name": "orders."}, "operations": ["Write"]}]});
    let (s, created) = send(&h, h.http.post(h.url(&format!("/v1/clusters/{id}/users"))).json(&user)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    wait_operation(&h, created["operation"]["id"].as_str().expect("operation"), "succeeded").await;
    let (s, rotated) = send(&h, h.http.post(h.url(&format!("/v1/clusters/{id}/users/orders-app/rotate")))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{rotated}");
    wait_operation(&h, rotated["operation"]["id"].as_str().expect("operation"), "succeeded").await;

    // An org admin is not a platform admin.
    for path in ["/v1/admin/verify", "/v1/admin/replay"] {
        let (s, body) = send(&h, h.http.post(h.url(path))).await;
        assert_eq!((s, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")), "{path}");
    }
    let platform = polaris_app::caller::new_token_secret();
    polaris_app::caller::store_token(&h.db.pool, h.org, "platform", TokenRole::Admin, true, &platform)
        .await
        .expect("platform token");
    let post = |path: &str| h.http.post(h.url(path)).bearer_auth(&platform).send();

    let verified: Value = eventually("every committed row to be sealed", Duration::from_secs(30), || async {
        let v: Value = post("/v1/admin/verify").await.ok()?.json().await.ok()?;
        v["chains"].as_array()?.iter().all(|c| c["pending"] == 0).then_some(v)
    })
    .await;
    assert_eq!(verified["intact"], true, "{verified}");
    let events = verified["chains"].as_array().expect("chains").iter().find(|c| c["chain"] == "events").cloned();
    assert!(events.expect("events chain")["rows"].as_i64().expect("rows") >= 4, "{verified}");

    let resp = post("/v1/admin/replay").await.expect("replay");
    assert_eq!(resp.status(), StatusCode::OK);
    let replayed: Value = resp.json().await.expect("json");
    assert_eq!(replayed["identical"], true, "{replayed}");
    assert!(replayed["report"]["events_total"].as_u64().expect("total") >= 4, "{replayed}");
    let tables = replayed["report"]["tables"].as_array().expect("tables");
    let users = tables.iter().find(|t| t["table"] == "kafka_users").expect("kafka_users is compared");
    assert_eq!((users["live_rows"].as_i64(), users["live_md5"] == users["replayed_md5"]), (Some(1), true), "{users}");

    // Platform checks are audited like every mutating request, and their Idempotency-Key is checked.
    let bad_key =
        h.http.post(h.url("/v1/admin/verify")).bearer_auth(&platform).header("idempotency-key", "k".repeat(300)).send();
    assert_eq!(bad_key.await.expect("verify").status(), StatusCode::BAD_REQUEST);
    let audit: Value = eventually("the checks' audit entries", Duration::from_secs(10), || async {
        let r = h.http.get(h.url("/v1/audit?resource=/v1/admin/&page_size=100")).bearer_auth(&platform).send();
        let a: Value = r.await.ok()?.json().await.ok()?;
        let commands: Vec<&str> = a["items"].as_array()?.iter().filter_map(|e| e["command"].as_str()).collect();
        (commands.contains(&"admin_verify") && commands.contains(&"admin_replay")).then_some(a.clone())
    })
    .await;
    assert!(audit["items"].as_array().expect("items").iter().any(|e| e["code"] == "FORBIDDEN"), "{audit}");

    // A sealed event altered by hand: verify says so.
    sqlx::query(
        "UPDATE events SET payload = jsonb_set(payload::jsonb, '{ClusterRequested,brokers}', '9')::json \
         WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(&id)
    .execute(&h.db.pool)
    .await
    .expect("tamper");
    let tampered: Value = post("/v1/admin/verify").await.expect("verify").json().await.expect("json");
    assert_eq!(tampered["intact"], false, "{tampered}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_at_the_root_when_built_and_the_api_is_unchanged_either_way() {
    let h = Harness::start(&[polaris_server::Role::Api]).await;
    let get = |path: &str| h.http.get(h.url(path)).send();

    // Not built: the root is the API's own 404 problem.
    let resp = get("/").await.expect("GET /");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    let dir = &h.settings.dashboard_dir;
    std::fs::create_dir_all(dir.join("assets")).expect("dist");
    std::fs::write(dir.join("index.html"), "<!doctype html><title>polaris-dashboard-marker</title>").expect("index");
    std::fs::write(dir.join("assets/app.js"), "console.log('polaris')").expect("asset");

    for path in ["/", "/index.html", "/clusters/0b6f"] {
        let resp = get(path).await.expect("GET");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(resp.headers()["content-type"].to_str().expect("ct").starts_with("text/html"), "{path}");
        assert!(resp.text().await.expect("text").contains("polaris-dashboard-marker"), "{path}");
    }
    let js = get("/assets/app.js").await.expect("asset");
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.headers()["content-type"].to_str().expect("ct").contains("javascript"));

    // The API's paths are untouched: unknown /v1 paths stay problems, the document and health still answer.
    let resp = get("/v1/nothing-here").await.expect("GET");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(get("/openapi.json").await.expect("doc").status(), StatusCode::OK);
    assert_eq!(get("/healthz").await.expect("health").status(), StatusCode::OK);
    let resp = h.http.post(h.url("/")).send().await.expect("POST /");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    // Nothing outside the assets folder is served.
    let resp = get("/..%2f..%2fetc%2fpasswd").await.expect("GET");
    assert!(!resp.text().await.expect("text").contains("root:"), "path traversal");
    let _ = std::fs::remove_dir_all(dir);
    h.stop().await;
}
