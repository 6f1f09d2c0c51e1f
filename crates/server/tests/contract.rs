//! The API contract a careful client relies on (SPEC.md §2, §3), on the real services: policies report every
//! violated rule and record nothing, idempotency keys replay the first answer, concurrent writers with the same
//! expected version cannot both win, another org's objects are 404 everywhere, roles are enforced, every
//! mutating request leaves one audit entry, and a token over its rate gets 429 with Retry-After.

use std::time::Duration;

use polaris_app::caller::Role as TokenRole;
use polaris_server::Role;
use polaris_test_support::eventually;
use polaris_test_support::harness::{Harness, cluster_body, new_org, new_token, unique_name};
use reqwest::StatusCode;
use serde_json::{Value, json};

const API_ONLY: [Role; 3] = [Role::Api, Role::Relay, Role::Projector];

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn count(h: &Harness, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&h.db.pool).await.expect("count");
    n
}

async fn audit(h: &Harness, query: &str) -> Vec<Value> {
    let (s, page) = send(h.http.get(h.url(&format!("/v1/audit?{query}"))).bearer_auth(&h.admin_token)).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    page["items"].as_array().expect("items").clone()
}

/// Waits until the read model has the cluster (reads come from projections).
async fn visible(h: &Harness, id: &str) -> Value {
    eventually(&format!("cluster {id} in the read model"), Duration::from_secs(20), || async {
        let r = h.http.get(h.url(&format!("/v1/clusters/{id}"))).bearer_auth(&h.admin_token).send().await.ok()?;
        if r.status() != StatusCode::OK {
            return None;
        }
        r.json::<Value>().await.ok()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policies_report_every_violated_rule_and_record_nothing_but_the_audit_entry() {
    let h = Harness::start(&API_ONLY).await;
    let rules = json!({
        "allowed_locations": [{"provider": "aws", "region": "eu-west-1"}, {"provider": "gcp", "region": "europe-west1"}],
        "topic_name_pattern": "^[a-z][a-z0-9.-]+$",
        "min_replication_factor": 3,
        "max_partitions_per_topic": 1000,
        "retention_ms": {"finite": true},
    });
    let (s, bundle) = send(h.http.put(h.url("/v1/policies")).bearer_auth(&h.admin_token).json(&rules)).await;
    assert_eq!((s, bundle["version"].as_i64()), (StatusCode::OK, Some(1)), "{bundle}");

    // A region outside the allow-list: exactly one violation, nothing recorded.
    let outside = json!({"name": unique_name(), "provider": "aws", "region": "us-east-1", "brokers": 3});
    let (s, p) = send(h.http.post(h.url("/v1/clusters")).bearer_auth(&h.admin_token).json(&outside)).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("POLICY_VIOLATION")), "{p}");
    let v = p["violations"].as_array().expect("violations");
    assert_eq!(v.len(), 1, "{p}");
    assert_eq!((v[0]["policy"].as_str(), v[0]["policy_version"].as_i64()), (Some("allowed_locations"), Some(1)));
    assert_eq!((v[0]["field"].as_str(), v[0]["actual"].as_str()), (Some("region"), Some("aws/us-east-1")));
    assert!(v[0]["constraint"].as_str().is_some_and(|c| c.contains("aws/eu-west-1")) && v[0]["message"].is_string());
    assert_eq!(count(&h, "SELECT COUNT(*) FROM events").await, 0, "a refused command appends nothing");

    // A cluster the policy allows; its event records the bundle version that judged it.
    let name = unique_name();
    let (s, accepted) =
        send(h.http.post(h.url("/v1/clusters")).bearer_auth(&h.admin_token).json(&cluster_body(&name))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["cluster"]["id"].as_str().expect("id").to_owned();
    visible(&h, &id).await;
    let (_, history) = send(h.http.get(h.url(&format!("/v1/clusters/{id}/history"))).bearer_auth(&h.admin_token)).await;
    assert_eq!(history["items"][0]["policy_version"].as_i64(), Some(1), "{history}");

    // A topic breaking four rules: four violations, no topic event, no workflow to start.
    let bad = json!({"name": "Orders_Bad", "partitions": 5000, "replication_factor": 1,
        "config": {"retention.ms": "-1"}});
    let (s, p) =
        send(h.http.post(h.url(&format!("/v1/clusters/{id}/topics"))).bearer_auth(&h.admin_token).json(&bad)).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("POLICY_VIOLATION")), "{p}");
    let mut rules: Vec<&str> =
        p["violations"].as_array().expect("violations").iter().map(|v| v["policy"].as_str().expect("policy")).collect();
    rules.sort();
    assert_eq!(rules, ["max_partitions_per_topic", "min_replication_factor", "retention_ms", "topic_name_pattern"]);
    assert_eq!(count(&h, "SELECT COUNT(*) FROM events WHERE aggregate_type = 'topic'").await, 0);

    // The same verdict from the evaluation endpoint, which records nothing either.
    let (s, verdict) = send(
        h.http
            .post(h.url(&format!("/v1/policies/evaluate?cluster_id={id}")))
            .bearer_auth(&h.admin_token)
            .json(&json!({"command": "create_topic", "input": bad})),
    )
    .await;
    assert_eq!((s, verdict["allowed"].as_bool()), (StatusCode::OK, Some(false)), "{verdict}");
    assert_eq!(verdict["violations"].as_array().map(Vec::len), Some(4));

    // One audit entry per request, with its verdict.
    let rejected = audit(&h, "outcome=rejected").await;
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0]["command"], "clusters_create");
    assert_eq!(rejected[0]["violations"].as_array().map(Vec::len), Some(1));
    assert_eq!(rejected[1]["command"], "topics_create");
    assert_eq!(rejected[1]["violations"].as_array().map(Vec::len), Some(4));
    assert_eq!(rejected[1]["policy_version"].as_i64(), Some(1));
    assert!(rejected[1]["resource"].as_str().is_some_and(|r| r.contains(&id)));
    let accepted = audit(&h, "outcome=accepted&resource=/v1/clusters/").await;
    assert!(
        accepted.iter().any(|e| e["command"] == "clusters_create" && e["resource"] == format!("/v1/clusters/{id}"))
    );
    assert!(accepted.iter().all(|e| e["resource"].as_str().is_some_and(|r| r.contains("/v1/clusters/"))));
    let all_accepted = audit(&h, "outcome=accepted").await;
    assert!(all_accepted.iter().any(|e| e["command"] == "policies_update" && e["policy_version"] == 1));
    assert_eq!(audit(&h, "outcome=dry_run").await.len(), 1, "the evaluation is audited as a dry run");

    // A bundle that cannot work is refused at publication.
    let (s, p) = send(
        h.http.put(h.url("/v1/policies")).bearer_auth(&h.admin_token).json(&json!({"topic_name_pattern": "([a-z"})),
    )
    .await;
    assert_eq!(
        (s, p["code"].as_str(), p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("INVALID_POLICY"), Some("topic_name_pattern")),
        "{p}"
    );
    // YAML works too, and a stale If-Match loses.
    let yaml = "min_replication_factor: 2\nbrokers: {min: 1, max: 9}\n";
    let put_yaml = |etag: &str| {
        h.http
            .put(h.url("/v1/policies"))
            .bearer_auth(&h.admin_token)
            .header("content-type", "application/yaml")
            .header("if-match", etag)
            .body(yaml)
    };
    let (s, b) = send(put_yaml("\"1\"")).await;
    assert_eq!(
        (s, b["version"].as_i64(), b["rules"]["min_replication_factor"].as_i64()),
        (StatusCode::OK, Some(2), Some(2))
    );
    let (s, p) = send(put_yaml("\"1\"")).await;
    assert_eq!(
        (s, p["code"].as_str(), p["current_version"].as_u64()),
        (StatusCode::CONFLICT, Some("VERSION_CONFLICT"), Some(2))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotency_key_replays_the_first_answer_even_under_concurrency() {
    let h = Harness::start(&API_ONLY).await;
    let body = cluster_body(&unique_name());
    let post = |key: &str, body: &Value| {
        h.http.post(h.url("/v1/clusters")).bearer_auth(&h.admin_token).header("idempotency-key", key).json(body)
    };
    let (s1, first) = send(post("k-1", &body)).await;
    assert_eq!(s1, StatusCode::ACCEPTED, "{first}");
    let resp = post("k-1", &body).send().await.expect("repeat");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(resp.headers().get("location").is_some(), "the replay carries the Location too");
    let again: Value = resp.json().await.expect("json");
    assert_eq!(again, first, "the same key and body answer the first response");
    assert_eq!(count(&h, "SELECT COUNT(*) FROM events").await, 1, "and append nothing");
    let id = first["cluster"]["id"].as_str().expect("id").to_owned();
    let (key_aggregate,): (Option<String>,) =
        sqlx::query_as("SELECT aggregate_id FROM idempotency_keys WHERE key = 'k-1'")
            .fetch_one(&h.db.pool)
            .await
            .expect("key");
    assert_eq!(key_aggregate.as_deref(), Some(id.as_str()), "the key was stored with the events it produced");

    let other = cluster_body(&unique_name());
    let (s, p) = send(post("k-1", &other)).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("IDEMPOTENCY_KEY_REUSED")), "{p}");

    // Eight concurrent requests with one new key: one command, eight identical answers.
    let racing = cluster_body(&unique_name());
    let answers = futures::future::join_all((0..8).map(|_| send(post("k-race", &racing)))).await;
    let ops: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(s, b)| {
            assert_eq!(*s, StatusCode::ACCEPTED, "{b}");
            b["operation"]["id"].as_str().expect("operation").to_owned()
        })
        .collect();
    assert_eq!(ops.len(), 1, "every answer names the same operation: {ops:?}");
    assert_eq!(count(&h, "SELECT COUNT(*) FROM events").await, 2, "exactly one more cluster requested");
    let deduplicated = audit(&h, "outcome=deduplicated").await;
    assert!(
        deduplicated.len() >= 8,
        "the repeat and the racers that lost are audited as deduplicated: {}",
        deduplicated.len()
    );
    assert!(deduplicated.iter().all(|e| e["idempotency_key"].is_string()));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_versions_and_lost_races_are_version_conflicts() {
    let h = Harness::start(&API_ONLY).await;
    let (s, accepted) =
        send(h.http.post(h.url("/v1/clusters")).bearer_auth(&h.admin_token).json(&cluster_body(&unique_name()))).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let id = accepted["cluster"]["id"].as_str().expect("id").to_owned();
    visible(&h, &id).await;
    let patch = |etag: &str, on: bool| {
        h.http
            .patch(h.url(&format!("/v1/clusters/{id}")))
            .bearer_auth(&h.admin_token)
            .header("if-match", etag)
            .json(&json!({"deletion_protection": on}))
    };
    let (s, p) = send(patch("\"7\"", true)).await;
    assert_eq!(
        (s, p["code"].as_str(), p["current_version"].as_u64()),
        (StatusCode::CONFLICT, Some("VERSION_CONFLICT"), Some(1)),
        "{p}"
    );

    // Two writers, both based on version 1: exactly one wins.
    let (a, b) = tokio::join!(send(patch("\"1\"", true)), send(patch("\"1\"", true)));
    let statuses = [a.0, b.0];
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{a:?} {b:?}");
    let loser = if a.0 == StatusCode::OK { &b.1 } else { &a.1 };
    assert_eq!(
        (loser["code"].as_str(), loser["current_version"].as_u64()),
        (Some("VERSION_CONFLICT"), Some(2)),
        "{loser}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_orgs_objects_are_not_found_on_every_path_and_roles_are_enforced() {
    let h = Harness::start(&API_ONLY).await;
    let (_, accepted) =
        send(h.http.post(h.url("/v1/clusters")).bearer_auth(&h.admin_token).json(&cluster_body(&unique_name()))).await;
    let id = accepted["cluster"]["id"].as_str().expect("id").to_owned();
    let op = accepted["operation"]["id"].as_str().expect("op").to_owned();
    visible(&h, &id).await;

    let other_org = new_org(&h.db, "globex").await;
    let stranger = new_token(&h.db, other_org, TokenRole::Admin).await;
    let c = format!("/v1/clusters/{id}");
    let json_body = json!({"brokers": 5});
    let requests: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("get cluster", h.http.get(h.url(&c))),
        ("get as_of", h.http.get(h.url(&format!("{c}?as_of=2030-01-01T00:00:00Z")))),
        ("history", h.http.get(h.url(&format!("{c}/history")))),
        ("brokers", h.http.get(h.url(&format!("{c}/brokers")))),
        ("topics", h.http.get(h.url(&format!("{c}/topics")))),
        ("topic", h.http.get(h.url(&format!("{c}/topics/orders")))),
        ("operation", h.http.get(h.url(&format!("/v1/operations/{op}")))),
        ("scale", h.http.post(h.url(&format!("{c}/scale"))).json(&json_body)),
        ("upgrade", h.http.post(h.url(&format!("{c}/upgrade"))).json(&json!({"kafka_version": "4.3.1"}))),
        ("patch", h.http.patch(h.url(&c)).json(&json!({"deletion_protection": true}))),
        ("delete", h.http.delete(h.url(&c))),
        (
            "create topic",
            h.http
                .post(h.url(&format!("{c}/topics")))
                .json(&json!({"name": "x", "partitions": 1, "replication_factor": 1})),
        ),
        (
            "evaluate",
            h.http
                .post(h.url(&format!("/v1/policies/evaluate?cluster_id={id}")))
                .json(&json!({"command": "scale_cluster", "input": {"brokers": 5}})),
        ),
    ];
    for (what, req) in requests {
        let (s, p) = send(req.bearer_auth(&stranger)).await;
        assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")), "{what}: {p}");
    }
    let (s, page) = send(h.http.get(h.url("/v1/clusters")).bearer_auth(&stranger)).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let items = page["items"].as_array().expect("items");
    assert!(items.iter().all(|i| !i.to_string().contains(&id)), "the list shows nothing of the other org: {page}");
    // Filtering a list by another org's cluster is asking about that cluster: 404, like every other path.
    for list in [format!("/v1/operations?cluster_id={id}"), format!("/v1/events?cluster_id={id}")] {
        let (s, p) = send(h.http.get(h.url(&list)).bearer_auth(&stranger)).await;
        assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")), "{list}: {p}");
    }

    let (_, page) = send(h.http.get(h.url("/v1/audit")).bearer_auth(&stranger)).await;
    let entries = page["items"].as_array().expect("items");
    assert!(!entries.is_empty(), "the stranger's own refused requests are in its audit log");
    assert!(entries.iter().all(|e| e["org_id"] == other_org.to_string()), "and only its own: {page}");

    // Roles: a viewer cannot write, an operator cannot change policies.
    let viewer = new_token(&h.db, h.org, TokenRole::Viewer).await;
    let operator = new_token(&h.db, h.org, TokenRole::Operator).await;
    let (s, p) =
        send(h.http.post(h.url("/v1/clusters")).bearer_auth(&viewer).json(&cluster_body(&unique_name()))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")), "{p}");
    let (s, _) = send(h.http.get(h.url(&c)).bearer_auth(&viewer)).await;
    assert_eq!(s, StatusCode::OK, "a viewer reads");
    let (s, p) = send(h.http.put(h.url("/v1/policies")).bearer_auth(&operator).json(&json!({}))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")), "{p}");
    let (s, p) = send(
        h.http
            .post(h.url("/v1/targets"))
            .bearer_auth(&operator)
            .json(&json!({"name": "t", "provider": "aws", "region": "x"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    let (s, _) = send(h.http.get(h.url("/v1/policies")).bearer_auth(&viewer)).await;
    assert_eq!(s, StatusCode::OK, "a viewer reads policies");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_over_its_rate_gets_429_with_retry_after() {
    let h = Harness::start_full(&[Role::Api], 60, 5).await;
    let mut limited = None;
    for _ in 0..40 {
        let resp = h.http.get(h.url("/v1/clusters")).bearer_auth(&h.admin_token).send().await.expect("GET");
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(resp);
            break;
        }
    }
    let resp = limited.expect("40 requests at once exceed 5/s with bursts of 10");
    let retry: u64 = resp.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let p: Value = resp.json().await.expect("problem");
    assert_eq!(p["code"], "RATE_LIMITED");
    let other = new_token(&h.db, h.org, TokenRole::Viewer).await;
    let (s, _) = send(h.http.get(h.url("/v1/clusters")).bearer_auth(&other)).await;
    assert_eq!(s, StatusCode::OK, "the limit is per token");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_answers_the_plan_and_records_nothing_but_its_audit_entry() {
    let h = Harness::start(&API_ONLY).await;
    let name = unique_name();
    let (s, plan) =
        send(h.http.post(h.url("/v1/clusters?dry_run=true")).bearer_auth(&h.admin_token).json(&cluster_body(&name)))
            .await;
    assert_eq!((s, plan["dry_run"].as_bool()), (StatusCode::OK, Some(true)), "{plan}");
    let events: Vec<&str> =
        plan["events"].as_array().expect("events").iter().map(|e| e["event_type"].as_str().expect("type")).collect();
    assert_eq!(events, ["ClusterRequested"]);
    assert_eq!(plan["events"][0]["payload"]["brokers"], 3);
    let kinds: Vec<&str> =
        plan["kubernetes"].as_array().expect("k8s").iter().map(|c| c["kind"].as_str().expect("kind")).collect();
    assert_eq!(
        kinds,
        ["Namespace", "Secret", "KafkaUser", "ConfigMap", "PodMonitor", "KafkaNodePool", "KafkaNodePool", "Kafka"],
        "node pools before Kafka"
    );
    let namespace = plan["kubernetes"][0]["name"].as_str().expect("namespace");
    assert!(namespace.starts_with(&format!("polaris-{name}-")), "the namespace carries the cluster id: {namespace}");
    assert_eq!(count(&h, "SELECT COUNT(*) FROM events").await, 0, "a dry run records nothing");
    let entries = audit(&h, "outcome=dry_run").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["command"], "clusters_create");

    // A dry run is judged like the real thing.
    let (s, p) = send(
        h.http
            .post(h.url("/v1/clusters?dry_run=true"))
            .bearer_auth(&h.admin_token)
            .json(&json!({"name": "Bad_Name", "provider": "aws", "region": "eu-west-1", "brokers": 3})),
    )
    .await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")), "{p}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orgs_and_tokens_secrets_are_shown_once_stored_hashed_and_revocable() {
    let h = Harness::start(&[Role::Api]).await;
    let platform = polaris_app::caller::new_token_secret();
    polaris_app::caller::store_token(&h.db.pool, h.org, "platform", TokenRole::Admin, true, &platform)
        .await
        .expect("token");

    // Only a platform admin creates orgs.
    let (s, p) =
        send(h.http.post(h.url("/v1/orgs")).bearer_auth(&h.admin_token).json(&json!({"name": "initech"}))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")), "{p}");
    let (s, org) = send(h.http.post(h.url("/v1/orgs")).bearer_auth(&platform).json(&json!({"name": "initech"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{org}");
    let org_id = org["id"].as_str().expect("id").to_owned();

    // A platform admin gives the new org its first admin token; the secret comes back once.
    let (s, created) = send(
        h.http
            .post(h.url("/v1/tokens"))
            .bearer_auth(&platform)
            .json(&json!({"name": "initech-admin", "role": "admin", "org_id": org_id})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let token_id = created["id"].as_str().expect("id").to_owned();
    let (stored,): (Vec<u8>,) = sqlx::query_as("SELECT token_hash FROM api_tokens WHERE id = $1::uuid")
        .bind(&token_id)
        .fetch_one(&h.db.pool)
        .await
        .expect("row");
    assert_eq!(stored, polaris_app::caller::hash_token(&secret), "only the hash is stored");
    let dump: (String,) =
        sqlx::query_as("SELECT string_agg(t::text, ' ') FROM api_tokens t").fetch_one(&h.db.pool).await.expect("dump");
    assert!(!dump.0.contains(&secret), "the secret is nowhere in the table");

    // Asked again with an Idempotency-Key: the repeat answers the same token without its secret, and the secret
    // is not kept with the key either.
    let keyed = || {
        h.http
            .post(h.url("/v1/tokens"))
            .bearer_auth(&platform)
            .header("idempotency-key", "token-1")
            .json(&json!({"name": "ci", "role": "viewer"}))
    };
    let (s, first) = send(keyed()).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let first_secret = first["secret"].as_str().expect("secret shown the first time").to_owned();
    let (s, again) = send(keyed()).await;
    assert_eq!((s, &again["id"]), (StatusCode::CREATED, &first["id"]), "{again}");
    assert!(again.get("secret").is_none(), "a replay does not show the secret again: {again}");
    let keys: (String,) = sqlx::query_as("SELECT string_agg(k::text, ' ') FROM idempotency_keys k")
        .fetch_one(&h.db.pool)
        .await
        .expect("keys");
    assert!(!keys.0.contains(&first_secret), "the secret is not stored with the key");

    // The new token works in its own org only, and lists tokens without secrets.
    let (s, list) = send(h.http.get(h.url("/v1/tokens")).bearer_auth(&secret)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert!(
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|t| t.get("secret").is_none() && t["org_id"] == org_id.as_str())
    );
    let (s, _) = send(h.http.post(h.url("/v1/orgs")).bearer_auth(&secret).json(&json!({"name": "x"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an org admin is not a platform admin");

    // Another org's token is not found; an operator may not create tokens; revoked tokens stop at once.
    let (s, _) = send(h.http.delete(h.url(&format!("/v1/tokens/{token_id}"))).bearer_auth(&h.admin_token)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let operator = new_token(&h.db, h.org, TokenRole::Operator).await;
    let (s, _) =
        send(h.http.post(h.url("/v1/tokens")).bearer_auth(&operator).json(&json!({"name": "x", "role": "viewer"})))
            .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let resp =
        h.http.delete(h.url(&format!("/v1/tokens/{token_id}"))).bearer_auth(&secret).send().await.expect("revoke");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (s, p) = send(h.http.get(h.url("/v1/tokens")).bearer_auth(&secret)).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")), "{p}");
    h.stop().await;
}

/// A token lookup is cached for a second (`polaris_app::caller::BearerCache`): a revocation made here applies at
/// once (the test above), one made by another process (an API replica; plain SQL here, so this process is not
/// told) within the cache's TTL, and never later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_by_another_process_is_refused_within_the_token_cache_ttl() {
    let h = Harness::start(&API_ONLY).await;
    let secret = new_token(&h.db, h.org, TokenRole::Viewer).await;
    let (s, _) = send(h.http.get(h.url("/v1/clusters")).bearer_auth(&secret)).await;
    assert_eq!(s, StatusCode::OK, "the token works (and its lookup is cached)");
    let revoked = sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE token_hash = $1")
        .bind(polaris_app::caller::hash_token(&secret))
        .execute(&h.db.pool)
        .await
        .expect("revoke in SQL");
    assert_eq!(revoked.rows_affected(), 1);
    let since = std::time::Instant::now();
    let deadline = polaris_app::caller::BearerCache::TTL + Duration::from_millis(500);
    eventually("the revoked token refused", deadline, || async {
        let (s, p) = send(h.http.get(h.url("/v1/clusters")).bearer_auth(&secret)).await;
        if s == StatusCode::OK {
            return None;
        }
        assert_eq!((s, p["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")), "{p}");
        Some(())
    })
    .await;
    assert!(since.elapsed() <= deadline, "refused only after {:?}", since.elapsed());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_page_at_most_100_with_tokens_that_walk_every_item_once() {
    let h = Harness::start(&API_ONLY).await;
    for _ in 0..3 {
        let (s, _) =
            send(h.http.post(h.url("/v1/clusters")).bearer_auth(&h.admin_token).json(&cluster_body(&unique_name())))
                .await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }
    eventually("three clusters and operations in the read model", Duration::from_secs(20), || async {
        let both =
            count(&h, "SELECT COUNT(*) FROM operations").await + count(&h, "SELECT COUNT(*) FROM clusters").await;
        (both == 6).then_some(())
    })
    .await;
    for list in ["/v1/operations", "/v1/clusters", "/v1/audit"] {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let sep = if list.contains('?') { '&' } else { '?' };
            let url = match &token {
                Some(t) => format!("{list}{sep}page_size=2&page_token={t}"),
                None => format!("{list}{sep}page_size=2"),
            };
            let (s, page) = send(h.http.get(h.url(&url)).bearer_auth(&h.admin_token)).await;
            assert_eq!(s, StatusCode::OK, "{url}: {page}");
            let items = page["items"].as_array().expect("items");
            assert!(items.len() <= 2);
            seen.extend(items.iter().map(|i| i["id"].as_str().expect("id").to_owned()));
            match page["next_page_token"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        let unique: std::collections::BTreeSet<&String> = seen.iter().collect();
        assert_eq!((seen.len(), unique.len()), (3, 3), "{list}: every item once: {seen:?}");
    }
    let (s, p) = send(h.http.get(h.url("/v1/operations?page_size=101")).bearer_auth(&h.admin_token)).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")), "{p}");
    h.stop().await;
}
