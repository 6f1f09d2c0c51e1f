//! Tenant isolation on the data plane, and the write path's invariants, on the real services: two orgs' clusters
//! of one name on one target, the ownership guard, name uniqueness under concurrency, platform targets, the audit
//! entry of a command killed before it answered, and reading one's own writes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use polaris_app::caller::Role as TokenRole;
use polaris_server::Role;
use polaris_test_support::eventually;
use polaris_test_support::harness::{
    ALL, Harness, cluster_body, kube_client, new_org, new_token, register_local_targets, send, unique_name,
    wait_for_status, wait_operation,
};
use polaris_workers::provision::{Applied, apply_cluster_resources};
use polaris_workers::resources::{CLUSTER_ID_LABEL, ClusterSpec};
use polaris_workers::strimzi::{Kafka, KafkaNodePool, KafkaTopic, KafkaTopicSpec};
use reqwest::StatusCode;
use serde_json::{Value, json};

const API_ONLY: [Role; 1] = [Role::Api];

/// Sends as the holder of `token`: status and JSON body.
async fn send_as(token: &str, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.bearer_auth(token).send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get_as(h: &Harness, token: &str, path: &str) -> Value {
    let (s, body) = send_as(token, h.http.get(h.url(path))).await;
    assert_eq!(s, StatusCode::OK, "GET {path}: {body}");
    body
}

/// A new READY cluster of the harness org: its id and namespace.
async fn ready_cluster(h: &Harness) -> (String, String) {
    let (s, created) = send(h, h.http.post(h.url("/v1/clusters")).json(&cluster_body(&unique_name()))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let id = created["cluster"]["id"].as_str().expect("id").to_owned();
    let ready = wait_for_status(h, &id, "READY", Duration::from_secs(90)).await;
    (id, ready["namespace"].as_str().expect("namespace").to_owned())
}

/// `POST /v1/clusters` of each of `names`, all at once: the answers, in the order of `names`.
async fn creates_at_once(h: &Harness, names: &[String]) -> Vec<(StatusCode, Value)> {
    let requests =
        names.iter().map(|name| send_as(&h.admin_token, h.http.post(h.url("/v1/clusters")).json(&cluster_body(name))));
    futures::future::join_all(requests).await
}

async fn count(h: &Harness, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&h.db.pool).await.expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_orgs_with_one_cluster_name_on_one_target_each_own_their_resources() {
    let h = Harness::start(&ALL).await;
    let beta = new_org(&h.db, "beta").await;
    let beta_token = new_token(&h.db, beta, TokenRole::Admin).await;
    register_local_targets(&h.db, beta).await;
    let name = unique_name();
    let body = |brokers: u32| json!({"name": name, "provider": "aws", "region": "eu-west-1", "brokers": brokers});
    let (s, a) = send_as(&h.admin_token, h.http.post(h.url("/v1/clusters")).json(&body(3))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{a}");
    let (s, b) = send_as(&beta_token, h.http.post(h.url("/v1/clusters")).json(&body(5))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "the other org may use the name: {b}");
    let (a_id, b_id) = (a["cluster"]["id"].as_str().expect("id"), b["cluster"]["id"].as_str().expect("id"));
    let (a_ns, b_ns) =
        (a["cluster"]["namespace"].as_str().expect("ns"), b["cluster"]["namespace"].as_str().expect("ns"));
    assert_ne!(a_ns, b_ns, "one namespace per cluster");
    wait_for_status(&h, a_id, "READY", Duration::from_secs(90)).await;
    eventually("beta's cluster to be READY", Duration::from_secs(90), || async {
        let c = get_as(&h, &beta_token, &format!("/v1/clusters/{b_id}")).await;
        (c["status"] == "READY").then_some(())
    })
    .await;

    // Each org's Strimzi resources carry its own cluster id and its own replica count.
    let aws = kube_client("aws-eu-west-1").await;
    for (ns, id, brokers) in [(a_ns, a_id, 3), (b_ns, b_id, 5)] {
        let pool = Api::<KafkaNodePool>::namespaced(aws.clone(), ns).get("brokers").await.expect("broker pool");
        assert_eq!(pool.spec.replicas, brokers, "{ns}");
        assert_eq!(pool.metadata.labels.as_ref().expect("labels")[CLUSTER_ID_LABEL], id, "{ns}");
        let kafka = Api::<Kafka>::namespaced(aws.clone(), ns).get(&name).await.expect("kafka");
        assert_eq!(kafka.metadata.labels.as_ref().expect("labels")[CLUSTER_ID_LABEL], id, "{ns}");
    }

    // Deleting one leaves the other's resources intact.
    let (s, d) = send_as(&h.admin_token, h.http.delete(h.url(&format!("/v1/clusters/{a_id}")))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{d}");
    wait_for_status(&h, a_id, "DELETED", Duration::from_secs(90)).await;
    let namespaces = Api::<Namespace>::all(aws.clone());
    assert!(namespaces.get_opt(a_ns).await.expect("kube").is_none(), "the deleted cluster's namespace is gone");
    let pool = Api::<KafkaNodePool>::namespaced(aws.clone(), b_ns).get("brokers").await.expect("beta's pool");
    assert_eq!((pool.spec.replicas, pool.metadata.deletion_timestamp.is_none()), (5, true));
    assert!(Api::<Kafka>::namespaced(aws, b_ns).get_opt(&name).await.expect("kube").is_some());
    assert_eq!(get_as(&h, &beta_token, &format!("/v1/clusters/{b_id}")).await["status"], "READY");

    // The name is free again in the first org once its cluster is deleted.
    let (s, again) = send_as(&h.admin_token, h.http.post(h.url("/v1/clusters")).json(&body(3))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{again}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_of_another_cluster_in_the_way_fails_the_operation_and_is_left_unchanged() {
    let h = Harness::start(&ALL).await;
    let (id, ns) = ready_cluster(&h).await;

    // Someone relabels the broker pool as another cluster's; a scale must not touch it.
    let aws = kube_client("aws-eu-west-1").await;
    let pools = Api::<KafkaNodePool>::namespaced(aws.clone(), &ns);
    let stranger = uuid::Uuid::new_v4().to_string();
    let relabel = json!({"metadata": {"labels": {CLUSTER_ID_LABEL: stranger}}});
    pools.patch("brokers", &PatchParams::default(), &Patch::Merge(&relabel)).await.expect("relabel");
    let before = pools.get("brokers").await.expect("pool");

    let (s, scale) =
        send(&h, h.http.post(h.url(&format!("/v1/clusters/{id}/scale"))).json(&json!({"brokers": 4}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{scale}");
    let op = wait_operation(&h, scale["operation"]["id"].as_str().expect("op"), "failed").await;
    let error = op["error"].as_str().expect("error");
    assert!(error.starts_with("OWNERSHIP_CONFLICT: KafkaNodePool"), "{error}");
    assert!(
        error.contains(&format!("{ns}/brokers")) && error.contains(&stranger),
        "the event names the object: {error}"
    );
    let history = polaris_test_support::harness::get(&h, &format!("/v1/clusters/{id}/history")).await;
    let failed = history["items"].as_array().expect("items").last().expect("event").clone();
    assert_eq!(failed["event_type"], "OperationFailed");
    assert!(failed["payload"]["reason"].as_str().expect("reason").starts_with("OWNERSHIP_CONFLICT"), "{failed}");

    let after = pools.get("brokers").await.expect("pool");
    assert_eq!(after.spec.replicas, 3, "the pool was not scaled");
    // Not written at all: the same spec generation and labels (strimzi-sim may write its status meanwhile).
    assert_eq!(
        (after.metadata.generation, &after.metadata.labels),
        (before.metadata.generation, &before.metadata.labels)
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kafka_topic_of_another_cluster_where_a_new_topic_would_go_fails_the_topic_and_is_left_unchanged() {
    let h = Harness::start(&ALL).await;
    let (id, ns) = ready_cluster(&h).await;

    // Pre-create the KafkaTopic the topic would be applied as, labelled with another cluster's id.
    let cluster_id = polaris_domain::ClusterId::from_uuid(id.parse().expect("uuid"));
    let resource = polaris_domain::naming::kafka_topic_resource_name(
        "orders.events",
        polaris_domain::topic::topic_id(cluster_id, "orders.events"),
    );
    let topics = Api::<KafkaTopic>::namespaced(kube_client("aws-eu-west-1").await, &ns);
    let stranger = uuid::Uuid::new_v4().to_string();
    let mut squatter = KafkaTopic::new(
        &resource,
        KafkaTopicSpec {
            topic_name: Some("orders.events".into()),
            partitions: Some(1),
            replicas: Some(1),
            config: Default::default(),
        },
    );
    squatter.metadata.labels = Some([(CLUSTER_ID_LABEL.to_owned(), stranger.clone())].into());
    let before = topics.create(&PostParams::default(), &squatter).await.expect("pre-create the KafkaTopic");

    let topic = json!({"name": "orders.events", "partitions": 6, "replication_factor": 3});
    let (s, accepted) = send(&h, h.http.post(h.url(&format!("/v1/clusters/{id}/topics"))).json(&topic)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let op = wait_operation(&h, accepted["operation"]["id"].as_str().expect("op"), "failed").await;
    let error = op["error"].as_str().expect("error");
    assert!(error.starts_with(&format!("OWNERSHIP_CONFLICT: KafkaTopic {ns}/{resource}")), "{error}");
    assert!(error.contains(&stranger), "{error}");
    let view = polaris_test_support::harness::get(&h, &format!("/v1/clusters/{id}/topics/orders.events")).await;
    assert_eq!(view["status"], "FAILED", "{view}");
    // Not written: the same spec generation and labels (strimzi-sim may have written its status meanwhile).
    let after = topics.get(&resource).await.expect("the KafkaTopic is still there");
    assert_eq!(
        (after.metadata.generation, &after.metadata.labels),
        (before.metadata.generation, &before.metadata.labels)
    );
    assert_eq!(after.spec, before.spec);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_into_a_namespace_of_another_owner_changes_nothing() {
    let client = kube_client("gcp-europe-west1").await;
    let namespaces = Api::<Namespace>::all(client.clone());
    for owner in [Some(uuid::Uuid::new_v4().to_string()), None] {
        let name = unique_name();
        let cluster_id = uuid::Uuid::new_v4();
        let spec = ClusterSpec {
            cluster_id,
            name: name.clone(),
            kafka_version: "4.3.1".into(),
            metadata_version: "4.3".into(),
            brokers: 3,
            controllers: 1,
            storage_gib: 10,
            config: Default::default(),
            namespace: polaris_domain::naming::cluster_namespace(&name, cluster_id),
            mesh: None,
        };
        // The namespace the cluster would write exists already: another cluster's, or nobody's.
        let labels = owner.clone().map(|o| [(CLUSTER_ID_LABEL.to_owned(), o)].into());
        let ns = Namespace {
            metadata: ObjectMeta { name: Some(spec.namespace.clone()), labels, ..Default::default() },
            ..Default::default()
        };
        namespaces.create(&PostParams::default(), &ns).await.expect("pre-create the namespace");
        let before = namespaces.get(&spec.namespace).await.expect("namespace");

        let reason = match apply_cluster_resources(client.clone(), &spec).await.expect("the API server answers") {
            Applied::Conflict { reason } => reason,
            other => panic!("applied into another owner's namespace: {other:?}"),
        };
        assert!(reason.starts_with(&format!("OWNERSHIP_CONFLICT: Namespace {}", spec.namespace)), "{reason}");
        match &owner {
            Some(o) => assert!(reason.contains(o), "{reason}"),
            None => assert!(reason.contains("without the polaris.dev/cluster-id label"), "{reason}"),
        }
        let after = namespaces.get(&spec.namespace).await.expect("namespace");
        assert_eq!(after.metadata.resource_version, before.metadata.resource_version, "the namespace is unchanged");
        let pools = Api::<KafkaNodePool>::namespaced(client.clone(), &spec.namespace);
        assert!(pools.list(&Default::default()).await.expect("list").items.is_empty(), "no pool was created");
        namespaces.delete(&spec.namespace, &Default::default()).await.expect("clean up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_sixteen_concurrent_creates_of_one_name_exactly_one_is_accepted() {
    let h = Harness::start(&API_ONLY).await;
    for round in 0..20 {
        let answers = creates_at_once(&h, &vec![unique_name(); 16]).await;
        let accepted = answers.iter().filter(|(s, _)| *s == StatusCode::ACCEPTED).count();
        assert_eq!(accepted, 1, "round {round}: {answers:?}");
        for (s, body) in answers.iter().filter(|(s, _)| *s != StatusCode::ACCEPTED) {
            assert_eq!((*s, body["code"].as_str()), (StatusCode::CONFLICT, Some("ALREADY_EXISTS")), "{body}");
        }
    }
    let requested = count(&h, "SELECT COUNT(*) FROM events WHERE event_type = 'ClusterRequested'").await;
    assert_eq!(requested, 20, "one cluster per name was recorded");
    h.stop().await;
}

/// Concurrent appends may be written together (polaris_store's group commit; that they are is tested there): a
/// group that one taken name refuses still gives every other command of it its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_creates_only_those_of_a_taken_name_are_refused() {
    let h = Harness::start(&API_ONLY).await;
    for round in 0..10 {
        let shared = unique_name();
        let names: Vec<String> = (0..16).map(|i| if i % 2 == 0 { shared.clone() } else { unique_name() }).collect();
        let answers: Vec<(String, StatusCode, Value)> =
            names.iter().cloned().zip(creates_at_once(&h, &names).await).map(|(n, (s, body))| (n, s, body)).collect();
        let accepted_shared = answers.iter().filter(|(n, s, _)| *n == shared && *s == StatusCode::ACCEPTED).count();
        assert_eq!(accepted_shared, 1, "round {round}: one create of the shared name: {answers:?}");
        for (name, s, body) in &answers {
            if *name != shared {
                assert_eq!(*s, StatusCode::ACCEPTED, "round {round}: a name of its own is accepted: {body}");
            } else if *s != StatusCode::ACCEPTED {
                assert_eq!((*s, body["code"].as_str()), (StatusCode::CONFLICT, Some("ALREADY_EXISTS")), "{body}");
            }
        }
        let ids: Vec<String> = answers
            .iter()
            .filter(|(_, s, _)| *s == StatusCode::ACCEPTED)
            .map(|(_, _, body)| body["cluster"]["id"].as_str().expect("cluster id").to_owned())
            .collect();
        let rows: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE aggregate_type = 'cluster' AND aggregate_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_one(&h.db.pool)
        .await
        .expect("events of the round");
        assert_eq!(rows, 9, "round {round}: each accepted create recorded once");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn targets_are_registered_by_platform_admins_from_the_targets_directory_and_granted_to_orgs() {
    let h = Harness::start(&API_ONLY).await;
    let target = |kubeconfig: &str| json!({"name": unique_name(), "provider": "aws", "region": "eu-west-1", "kubeconfig": kubeconfig});
    // An org admin cannot register one, whatever it points at.
    let (s, p) = send(&h, h.http.post(h.url("/v1/targets")).json(&target("aws-eu-west-1.kubeconfig"))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")), "{p}");
    assert!(p["detail"].as_str().expect("detail").contains("platform admin"), "{p}");

    let platform = polaris_app::caller::new_token_secret();
    polaris_app::caller::store_token(&h.db.pool, h.org, "platform", TokenRole::Admin, true, &platform)
        .await
        .expect("platform token");
    for bad in ["../../etc/passwd", "/etc/kubernetes/admin.conf", "a/../../b"] {
        let (s, p) = send_as(&platform, h.http.post(h.url("/v1/targets")).json(&target(bad))).await;
        assert_eq!(
            (s, p["code"].as_str(), p["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED"), Some("kubeconfig")),
            "{bad}: {p}"
        );
        assert!(p["detail"].as_str().expect("detail").contains("targets directory"), "{p}");
    }
    let before = count(&h, "SELECT COUNT(*) FROM targets").await;
    let (s, created) =
        send_as(&platform, h.http.post(h.url("/v1/targets")).json(&target("aws-eu-west-1.kubeconfig"))).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(count(&h, "SELECT COUNT(*) FROM targets").await, before + 1);

    // A new org has no target until a platform admin grants one.
    let gamma = new_org(&h.db, "gamma").await;
    let gamma_token = new_token(&h.db, gamma, TokenRole::Admin).await;
    let (s, p) = send_as(&gamma_token, h.http.post(h.url("/v1/clusters")).json(&cluster_body(&unique_name()))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("NO_TARGET")), "{p}");
    assert!(get_as(&h, &gamma_token, "/v1/targets").await["items"].as_array().expect("items").is_empty());
    let grant = json!({"org_id": gamma.as_uuid()});
    let path = format!("/v1/targets/{}/grants", created["id"].as_str().expect("id"));
    let (s, p) = send_as(&gamma_token, h.http.post(h.url(&path)).json(&grant)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an org admin cannot grant itself a target: {p}");
    let (s, p) = send_as(&platform, h.http.post(h.url(&path)).json(&grant)).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, p) = send_as(&gamma_token, h.http.post(h.url("/v1/clusters")).json(&cluster_body(&unique_name()))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{p}");

    // Org callers see their granted targets without where the credentials are; platform admins see it.
    let seen = get_as(&h, &gamma_token, "/v1/targets").await;
    let items = seen["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{seen}");
    assert!(items[0].get("kubeconfig").is_none() && items[0].get("kube_context").is_none(), "{seen}");
    let all = get_as(&h, &platform, "/v1/targets").await;
    assert!(all["items"].as_array().expect("items").iter().all(|t| t["kubeconfig"].is_string()), "{all}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_api_killed_between_the_commit_and_the_response_leaves_the_audit_entry() {
    let h = Harness::start(&API_ONLY).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let s = &h.settings;
    let mut api = std::process::Command::new(env!("CARGO_BIN_EXE_polaris-server"))
        .args(["serve", "--roles", "api"])
        .env("DATABASE_URL", &s.database_url)
        .env("KAFKA_BOOTSTRAP", &s.kafka_bootstrap)
        .env("POLARIS_EVENTS_TOPIC", &s.events_topic)
        .env("TEMPORAL_ADDRESS", &s.temporal_address)
        .env("POLARIS_LISTEN", addr.to_string())
        .env("POLARIS_FAILPOINTS", "abort-after-commit")
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("spawn polaris-server");
    let base = format!("http://{addr}");
    eventually("the API to answer", Duration::from_secs(30), || async {
        h.http.get(format!("{base}/healthz")).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
    })
    .await;
    let name = unique_name();
    let answer =
        h.http.post(format!("{base}/v1/clusters")).bearer_auth(&h.admin_token).json(&cluster_body(&name)).send().await;
    assert!(answer.is_err(), "the process died before it answered: {answer:?}");
    let status = api.wait().expect("the API process ended");
    assert!(!status.success(), "aborted: {status:?}");

    // The command committed, and with it its audit entry.
    let cluster: String = sqlx::query_scalar(
        "SELECT aggregate_id FROM events WHERE event_type = 'ClusterRequested' AND payload::jsonb->'ClusterRequested'->>'name' = $1",
    )
    .bind(&name)
    .fetch_one(&h.db.pool)
    .await
    .expect("the ClusterRequested event committed");
    let (outcome, status, resource): (String, i32, String) =
        sqlx::query_as("SELECT outcome, status, resource FROM audit_entries WHERE command = 'clusters_create'")
            .fetch_one(&h.db.pool)
            .await
            .expect("exactly one audit entry");
    assert_eq!((outcome.as_str(), status, resource), ("accepted", 202, format!("/v1/clusters/{cluster}")));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn right_after_a_202_its_location_and_its_resource_answer_with_at_least_what_it_described() {
    let h = Harness::start(&ALL).await;
    let mut checked = 0;
    let location_of = |resp: &reqwest::Response| {
        resp.headers().get("location").and_then(|l| l.to_str().ok()).expect("Location").to_owned()
    };
    // A GET that must answer 200 at once (no retry).
    let now = |path: String| {
        let req = h.http.get(h.url(&path)).bearer_auth(&h.admin_token);
        async move {
            let r = req.send().await.expect("GET");
            assert_eq!(r.status(), StatusCode::OK, "GET {path} right after the 202");
            r.json::<Value>().await.expect("json")
        }
    };
    // 150 creates, then 50 topic creates and scales on the first 50 once READY: 200 accepted commands, each read
    // back at once.
    let mut clusters = Vec::new();
    for _ in 0..150 {
        let resp = h
            .http
            .post(h.url("/v1/clusters"))
            .bearer_auth(&h.admin_token)
            .json(&cluster_body(&unique_name()))
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let location = location_of(&resp);
        let body: Value = resp.json().await.expect("json");
        let op = now(location).await;
        assert_eq!((op["id"].clone(), op["kind"].as_str()), (body["operation"]["id"].clone(), Some("provision")));
        let id = body["cluster"]["id"].as_str().expect("id").to_owned();
        let cluster = now(format!("/v1/clusters/{id}")).await;
        assert!(cluster["version"].as_i64() >= body["cluster"]["version"].as_i64(), "{cluster}");
        clusters.push(id);
        checked += 1;
    }
    for id in &clusters[..50] {
        wait_for_status(&h, id, "READY", Duration::from_secs(120)).await;
    }
    for (i, id) in clusters[..50].iter().enumerate() {
        let before = now(format!("/v1/clusters/{id}")).await["version"].as_i64().expect("version");
        let resp = if i % 2 == 0 {
            let topic = json!({"name": "orders.events", "partitions": 3, "replication_factor": 3});
            h.http.post(h.url(&format!("/v1/clusters/{id}/topics"))).bearer_auth(&h.admin_token).json(&topic)
        } else {
            h.http
                .post(h.url(&format!("/v1/clusters/{id}/scale")))
                .bearer_auth(&h.admin_token)
                .json(&json!({"brokers": 4}))
        }
        .send()
        .await
        .expect("POST");
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let location = location_of(&resp);
        let body: Value = resp.json().await.expect("json");
        let op = now(location).await;
        assert_eq!(op["id"], body["operation"]["id"]);
        if i % 2 == 0 {
            assert_eq!(op["kind"], "topic_apply");
            let topic = now(format!("/v1/clusters/{id}/topics/orders.events")).await;
            assert!(topic["version"].as_i64() >= body["topic"]["version"].as_i64(), "{topic}");
        } else {
            assert_eq!(op["kind"], "scale");
            let cluster = now(format!("/v1/clusters/{id}")).await;
            assert!(cluster["version"].as_i64().expect("version") > before, "the scale is visible: {cluster}");
        }
        checked += 1;
    }
    assert_eq!(checked, 200);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_bad_tokens_is_limited_per_client_address_and_valid_tokens_still_pass() {
    let h = Harness::start_configured(&API_ONLY, |s| s.unauthenticated_rate_per_sec = 5).await;
    let mut limited = None;
    for i in 0..60 {
        let r =
            h.http.get(h.url("/v1/clusters")).bearer_auth(format!("pol_not-a-token-{i}")).send().await.expect("GET");
        match r.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                limited = Some(r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned));
                break;
            }
            other => panic!("request {i}: {other}"),
        }
    }
    let retry_after = limited.expect("the flood was limited within 60 requests (burst 10)");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)), "with Retry-After");
    // The limit is per address and for requests without a valid token: the holder of a token is unaffected.
    let (s, _) = send(&h, h.http.get(h.url("/v1/clusters"))).await;
    assert_eq!(s, StatusCode::OK);
    h.stop().await;
}
