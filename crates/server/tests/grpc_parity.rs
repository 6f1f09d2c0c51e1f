//! The same scenarios through REST and through gRPC reach the same verdicts, record the same events (ids and
//! instants aside) and write audit entries that differ only by channel (and request id): the two doors share one
//! application layer. Each door works in its own org with the same policy bundle, so the two runs cannot touch
//! each other's state.
//!
//! Scenarios: dry run, create, idempotent repeat, refusal with every violation, stale `expected_version`,
//! operation in progress, another org's id, viewer write.

use polaris_app::caller::Role as TokenRole;
use polaris_domain::OrgId;
use polaris_domain::policy::{Bounds, Location, PolicyRules};
use polaris_grpc::pb;
use polaris_grpc::pb::cluster_service_client::ClusterServiceClient;
use polaris_server::Role;
use polaris_test_support::harness::{Harness, new_org, new_token, register_local_targets};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// One scenario's verdict: the stable code (`OK` when accepted) and, for a policy refusal, the fields at fault.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    scenario: &'static str,
    code: String,
    fields: Vec<String>,
}

fn rules() -> PolicyRules {
    PolicyRules {
        allowed_locations: Some(vec![Location { provider: "aws".into(), region: "eu-west-1".into() }]),
        allowed_kafka_versions: Some(vec!["4.3.1".into()]),
        brokers: Some(Bounds { min: Some(3), max: Some(5) }),
        storage_gib: Some(Bounds { min: Some(10), max: Some(100) }),
        deletion_protection_required_for: Some("^prod-".into()),
        ..PolicyRules::default()
    }
}

/// An org with the scenario's bundle, local targets and an operator and a viewer token.
async fn org(h: &Harness, name: &str) -> (OrgId, String, String) {
    let org = new_org(&h.db, name).await;
    register_local_targets(&h.db, org).await;
    polaris_app::policies::publish(&h.db.pool, org, &rules(), "parity").await.expect("bundle");
    let operator = new_token(&h.db, org, TokenRole::Operator).await;
    let viewer = new_token(&h.db, org, TokenRole::Viewer).await;
    (org, operator, viewer)
}

const GOOD: &str =
    r#"{"name": "orders", "provider": "aws", "region": "eu-west-1", "kafka_version": "4.3.1", "brokers": 3}"#;
/// Breaks all five rules: location, version, brokers, storage, deletion protection for `prod-*`.
const BAD: &str = r#"{"name": "prod-orders", "provider": "gcp", "region": "europe-west1", "kafka_version": "4.2.0", "brokers": 9, "storage_gib": 500}"#;

fn create_request(json: &str, dry_run: bool) -> pb::CreateClusterRequest {
    let v: Value = serde_json::from_str(json).expect("json");
    pb::CreateClusterRequest {
        name: v["name"].as_str().unwrap_or_default().into(),
        provider: v["provider"].as_str().unwrap_or_default().into(),
        region: v["region"].as_str().unwrap_or_default().into(),
        kafka_version: v["kafka_version"].as_str().map(Into::into),
        brokers: v["brokers"].as_u64().unwrap_or_default() as u32,
        storage_gib: v["storage_gib"].as_u64().map(|s| s as u32),
        dry_run,
        ..Default::default()
    }
}

fn rest_verdict(scenario: &'static str, status: StatusCode, body: &Value) -> Verdict {
    if status.is_success() {
        return Verdict { scenario, code: "OK".into(), fields: vec![] };
    }
    let mut fields: Vec<String> = body["violations"]
        .as_array()
        .map(|v| v.iter().map(|v| v["field"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default();
    if body["code"] == "VALIDATION_FAILED" {
        fields.extend(body["field"].as_str().map(str::to_owned));
    }
    fields.sort();
    Verdict { scenario, code: body["code"].as_str().unwrap_or("?").to_owned(), fields }
}

/// The gRPC verdict, checking on the way that the gRPC code is the one SPEC.md §2b names for the REST code.
fn grpc_verdict<T>(scenario: &'static str, result: Result<T, tonic::Status>) -> Verdict {
    let status = match result {
        Ok(_) => return Verdict { scenario, code: "OK".into(), fields: vec![] },
        Err(status) => status,
    };
    let details = status.get_error_details();
    let info = details.error_info().expect("every error carries ErrorInfo");
    assert_eq!(info.domain, "polaris.dev");
    let expected_code = match info.reason.as_str() {
        "POLICY_VIOLATION" | "OPERATION_IN_PROGRESS" | "INVALID_STATE" => tonic::Code::FailedPrecondition,
        "VALIDATION_FAILED" => tonic::Code::InvalidArgument,
        "VERSION_CONFLICT" => tonic::Code::Aborted,
        "NOT_FOUND" => tonic::Code::NotFound,
        "FORBIDDEN" => tonic::Code::PermissionDenied,
        other => panic!("unexpected reason {other} in {status:?}"),
    };
    assert_eq!(status.code(), expected_code, "{scenario}: {status:?}");
    if info.reason == "VERSION_CONFLICT" {
        let failure = details.precondition_failure().expect("VERSION_CONFLICT carries PreconditionFailure");
        assert_eq!(failure.violations[0].r#type, "VERSION");
        assert_eq!(info.metadata.get("current_version").map(String::as_str), Some("1"));
    }
    let mut fields: Vec<String> =
        details.bad_request().map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect()).unwrap_or_default();
    if info.reason != "POLICY_VIOLATION" && info.reason != "VALIDATION_FAILED" {
        fields.clear();
    }
    fields.sort();
    Verdict { scenario, code: info.reason.clone(), fields }
}

async fn rest(
    h: &Harness,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = h.http.request(method, h.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body.to_owned());
    }
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let resp = req.send().await.expect("REST request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn authorized<T>(message: T, token: &str, key: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
    if let Some(key) = key {
        req.metadata_mut().insert("idempotency-key", key.parse().expect("metadata"));
    }
    req
}

/// The scenarios over REST; answers the verdicts and the id of the cluster it created.
async fn over_rest(h: &Harness, operator: &str, viewer: &str, foreign: &str) -> (Vec<Verdict>, String) {
    let post = reqwest::Method::POST;
    let mut v = Vec::new();
    let (s, b) = rest(h, operator, post.clone(), "/v1/clusters?dry_run=true", Some(GOOD), None).await;
    assert_eq!(b["dry_run"], true, "{b}");
    v.push(rest_verdict("dry run", s, &b));
    let (s, created) = rest(h, operator, post.clone(), "/v1/clusters", Some(GOOD), Some("parity-1")).await;
    v.push(rest_verdict("create", s, &created));
    let id = created["cluster"]["id"].as_str().expect("cluster id").to_owned();
    let (s, again) = rest(h, operator, post.clone(), "/v1/clusters", Some(GOOD), Some("parity-1")).await;
    assert_eq!(again["cluster"]["id"], created["cluster"]["id"], "the repeat answers the first answer");
    v.push(rest_verdict("idempotent repeat", s, &again));
    let (s, b) = rest(h, operator, post.clone(), "/v1/clusters", Some(BAD), None).await;
    v.push(rest_verdict("every violation", s, &b));
    let scale = format!("/v1/clusters/{id}/scale");
    let (s, b) = rest(h, operator, post.clone(), &scale, Some(r#"{"brokers": 4, "expected_version": 7}"#), None).await;
    assert_eq!(b["current_version"], 1, "{b}");
    v.push(rest_verdict("stale expected_version", s, &b));
    let (s, b) = rest(h, operator, post.clone(), &scale, Some(r#"{"brokers": 4}"#), None).await;
    v.push(rest_verdict("operation in progress", s, &b));
    let (s, b) = rest(h, operator, reqwest::Method::GET, &format!("/v1/clusters/{foreign}"), None, None).await;
    v.push(rest_verdict("another org's id", s, &b));
    let (s, b) = rest(h, viewer, post, "/v1/clusters", Some(GOOD), None).await;
    v.push(rest_verdict("viewer write", s, &b));
    (v, id)
}

/// The same scenarios over gRPC.
async fn over_grpc(
    client: &mut ClusterServiceClient<Channel>,
    operator: &str,
    viewer: &str,
    foreign: &str,
) -> (Vec<Verdict>, String) {
    use pb::create_cluster_response::Result as R;
    let mut v = Vec::new();
    let planned = client.create_cluster(authorized(create_request(GOOD, true), operator, None)).await;
    assert!(matches!(planned.as_ref().map(|r| &r.get_ref().result), Ok(Some(R::Plan(_)))), "{planned:?}");
    v.push(grpc_verdict("dry run", planned));
    let created = client.create_cluster(authorized(create_request(GOOD, false), operator, Some("parity-1"))).await;
    let id = match created.as_ref().map(|r| &r.get_ref().result) {
        Ok(Some(R::Accepted(a))) => a.cluster.as_ref().expect("cluster").id.clone(),
        other => panic!("create: {other:?}"),
    };
    v.push(grpc_verdict("create", created));
    let again = client.create_cluster(authorized(create_request(GOOD, false), operator, Some("parity-1"))).await;
    match again.as_ref().map(|r| &r.get_ref().result) {
        Ok(Some(R::Accepted(a))) => {
            assert_eq!(a.cluster.as_ref().expect("cluster").id, id, "the repeat answers the first answer")
        }
        other => panic!("repeat: {other:?}"),
    }
    v.push(grpc_verdict("idempotent repeat", again));
    v.push(grpc_verdict(
        "every violation",
        client.create_cluster(authorized(create_request(BAD, false), operator, None)).await,
    ));
    let stale = pb::ScaleClusterRequest { id: id.clone(), brokers: 4, expected_version: Some(7), dry_run: false };
    v.push(grpc_verdict("stale expected_version", client.scale_cluster(authorized(stale, operator, None)).await));
    let busy = pb::ScaleClusterRequest { id: id.clone(), brokers: 4, expected_version: None, dry_run: false };
    v.push(grpc_verdict("operation in progress", client.scale_cluster(authorized(busy, operator, None)).await));
    let other = pb::GetClusterRequest { id: foreign.to_owned(), as_of: None };
    v.push(grpc_verdict("another org's id", client.get_cluster(authorized(other, operator, None)).await));
    v.push(grpc_verdict(
        "viewer write",
        client.create_cluster(authorized(create_request(GOOD, false), viewer, None)).await,
    ));
    (v, id)
}

/// A value with every id, instant and actor taken out: what two orgs' identical requests share.
fn without_ids(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !(k.ends_with("_id") || k.ends_with("_at") || *k == "namespace" || k.ends_with("_by")))
                .map(|(k, v)| (k.clone(), without_ids(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_ids).collect()),
        other => other.clone(),
    }
}

async fn events(h: &Harness, token: &str, id: &str) -> Vec<Value> {
    let (s, history) = rest(h, token, reqwest::Method::GET, &format!("/v1/clusters/{id}/history"), None, None).await;
    assert_eq!(s, StatusCode::OK, "{history}");
    history["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| json!({"type": e["event_type"], "version": e["event_version"], "payload": without_ids(&e["payload"])}))
        .collect()
}

/// The org's audit entries with ids, instants and the channel taken out, and the channels seen.
async fn audit(h: &Harness, admin: &str) -> (Vec<Value>, Vec<String>) {
    let (s, page) = rest(h, admin, reqwest::Method::GET, "/v1/audit?page_size=100", None, None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let mut entries = Vec::new();
    let mut channels = Vec::new();
    for e in page["items"].as_array().expect("items") {
        channels.push(e["channel"].as_str().unwrap_or_default().to_owned());
        let resource = e["resource"].as_str().unwrap_or_default();
        entries.push(json!({
            "command": e["command"], "method": e["method"], "outcome": e["outcome"], "status": e["status"],
            "code": e["code"], "policy_version": e["policy_version"], "idempotency_key": e["idempotency_key"],
            "violations": e["violations"].as_array().map(|v| v.iter().map(|v| v["field"].clone()).collect::<Vec<_>>()),
            "resource": mask_uuids(resource),
        }));
    }
    (entries, channels)
}

/// `resource` with each UUID replaced by `{id}`.
fn mask_uuids(resource: &str) -> String {
    resource
        .split('/')
        .map(|part| if uuid::Uuid::parse_str(part).is_ok() { "{id}" } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn rest_and_grpc_reach_the_same_verdicts_events_and_audit_entries() {
    let h = Harness::start(&[Role::Api]).await;
    let (rest_org, rest_operator, rest_viewer) = org(&h, "parity-rest").await;
    let (grpc_org, grpc_operator, grpc_viewer) = org(&h, "parity-grpc").await;
    let channel = tonic::transport::Endpoint::from_shared(h.base.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("gRPC connects");
    let mut client = ClusterServiceClient::new(channel);

    // Each door's "another org's id" is a cluster of the other org: made first, outside both runs' audit.
    let outsider = new_org(&h.db, "outsider").await;
    register_local_targets(&h.db, outsider).await;
    let outsider_token = new_token(&h.db, outsider, TokenRole::Operator).await;
    let (s, foreign) = rest(&h, &outsider_token, reqwest::Method::POST, "/v1/clusters", Some(GOOD), None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{foreign}");
    let foreign = foreign["cluster"]["id"].as_str().expect("id").to_owned();

    let (rest_verdicts, rest_cluster) = over_rest(&h, &rest_operator, &rest_viewer, &foreign).await;
    let (grpc_verdicts, grpc_cluster) = over_grpc(&mut client, &grpc_operator, &grpc_viewer, &foreign).await;
    assert_eq!(rest_verdicts, grpc_verdicts, "the same verdicts through both doors");
    let violation = rest_verdicts.iter().find(|v| v.scenario == "every violation").expect("scenario");
    assert_eq!(violation.code, "POLICY_VIOLATION");
    assert_eq!(violation.fields.len(), 5, "every rule is reported: {violation:?}");

    let rest_admin = new_token(&h.db, rest_org, TokenRole::Admin).await;
    let grpc_admin = new_token(&h.db, grpc_org, TokenRole::Admin).await;
    let rest_events = events(&h, &rest_admin, &rest_cluster).await;
    let grpc_events = events(&h, &grpc_admin, &grpc_cluster).await;
    assert_eq!(rest_events.len(), 1, "one create recorded once: {rest_events:?}");
    assert_eq!(rest_events, grpc_events, "the same events, ids aside");

    let (rest_audit, rest_channels) = audit(&h, &rest_admin).await;
    let (grpc_audit, grpc_channels) = audit(&h, &grpc_admin).await;
    assert_eq!(rest_audit.len(), 7, "every write is audited once (the read is not): {rest_audit:#?}");
    assert_eq!(rest_audit, grpc_audit, "audit entries differ only by channel");
    assert!(rest_channels.iter().all(|c| c == "api"), "{rest_channels:?}");
    assert!(grpc_channels.iter().all(|c| c == "grpc"), "{grpc_channels:?}");
    h.stop().await;
}

/// Rules for Kafka users, on top of the cluster rules.
fn user_rules() -> PolicyRules {
    PolicyRules {
        users: Some(polaris_domain::policy::UserRules {
            no_wildcard_topic_acls: true,
            allowed_topic_prefixes: Some(vec!["orders.".into()]),
            max_byte_rate: Some(1 << 20),
            all_operations_need_admin: true,
        }),
        ..rules()
    }
}

const USER_GOOD: &str = r#"{"name": "orders-app", "acls": [{"resource": {"type": "topic", "name": "orders.", "pattern": "prefix"}, "operations": ["Write"]}], "quotas": {"producer_byte_rate": 1024, "consumer_byte_rate": 1024}}"#;
/// Breaks every user rule: a wildcard topic, outside the prefixes, All without admin, no consumer rate, a
/// producer rate above the maximum.
const USER_BAD: &str = r#"{"name": "orders-app", "acls": [{"resource": {"type": "topic", "name": "*"}, "operations": ["All"]}], "quotas": {"producer_byte_rate": 4194304}}"#;
/// Write is no operation of a consumer group (Kafka's operation matrix).
const USER_INVALID: &str = r#"{"name": "orders-app", "acls": [{"resource": {"type": "group", "name": "g"}, "operations": ["Read", "Write"]}]}"#;

fn user_request(cluster: &str, json: &str) -> pb::CreateUserRequest {
    let v: Value = serde_json::from_str(json).expect("json");
    let acls = v["acls"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| pb::AclRule {
                    resource: Some(pb::AclResource {
                        r#type: r["resource"]["type"].as_str().unwrap_or_default().into(),
                        name: r["resource"]["name"].as_str().map(Into::into),
                        pattern: r["resource"]["pattern"].as_str().unwrap_or_default().into(),
                    }),
                    operations: r["operations"]
                        .as_array()
                        .map(|o| o.iter().map(|o| o.as_str().unwrap_or_default().to_owned()).collect())
                        .unwrap_or_default(),
                    ..Default::default()
                })
                .collect()
        })
        .unwrap_or_default();
    let q = &v["quotas"];
    pb::CreateUserRequest {
        cluster_id: cluster.to_owned(),
        name: v["name"].as_str().unwrap_or_default().into(),
        acls,
        quotas: q.is_object().then(|| pb::UserQuotas {
            producer_byte_rate: q["producer_byte_rate"].as_u64(),
            consumer_byte_rate: q["consumer_byte_rate"].as_u64(),
            request_percentage: None,
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn rest_and_grpc_give_kafka_users_the_same_verdicts() {
    use polaris_grpc::pb::user_service_client::UserServiceClient;
    let h = Harness::start(&[Role::Api]).await;
    let org = new_org(&h.db, "parity-users").await;
    register_local_targets(&h.db, org).await;
    polaris_app::policies::publish(&h.db.pool, org, &user_rules(), "parity").await.expect("bundle");
    let operator = new_token(&h.db, org, TokenRole::Operator).await;
    let viewer = new_token(&h.db, org, TokenRole::Viewer).await;
    let post = reqwest::Method::POST;
    // A cluster that stays REQUESTED (no worker here), and another org's cluster.
    let (s, created) = rest(&h, &operator, post.clone(), "/v1/clusters", Some(GOOD), None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    let cluster = created["cluster"]["id"].as_str().expect("id").to_owned();
    let outsider = new_org(&h.db, "outsider").await;
    register_local_targets(&h.db, outsider).await;
    let outsider_token = new_token(&h.db, outsider, TokenRole::Operator).await;
    let (_, foreign) = rest(&h, &outsider_token, post.clone(), "/v1/clusters", Some(GOOD), None).await;
    let foreign = foreign["cluster"]["id"].as_str().expect("id").to_owned();

    let scenarios: [(&'static str, &str, &str, &str); 5] = [
        ("every user violation", &operator, &cluster, USER_BAD),
        ("an operation the resource type does not have", &operator, &cluster, USER_INVALID),
        ("a cluster that is not READY", &operator, &cluster, USER_GOOD),
        ("another org's cluster", &operator, &foreign, USER_GOOD),
        ("viewer write", &viewer, &cluster, USER_GOOD),
    ];
    let channel = tonic::transport::Endpoint::from_shared(h.base.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("gRPC connects");
    let mut client = UserServiceClient::new(channel);
    let (mut over_rest, mut over_grpc) = (Vec::new(), Vec::new());
    for (scenario, token, cluster, body) in scenarios {
        let (s, b) = rest(&h, token, post.clone(), &format!("/v1/clusters/{cluster}/users"), Some(body), None).await;
        over_rest.push(rest_verdict(scenario, s, &b));
        let answer = client.create_user(authorized(user_request(cluster, body), token, None)).await;
        over_grpc.push(grpc_verdict(scenario, answer));
    }
    assert_eq!(over_rest, over_grpc, "the same verdicts through both doors");
    let expected =
        [("POLICY_VIOLATION", 5), ("VALIDATION_FAILED", 1), ("INVALID_STATE", 0), ("NOT_FOUND", 0), ("FORBIDDEN", 0)];
    let got: Vec<(&str, usize)> = over_rest.iter().map(|v| (v.code.as_str(), v.fields.len())).collect();
    assert_eq!(got, expected, "{over_rest:#?}");
    assert_eq!(over_rest[1].fields, ["acls[0].operations[1]"], "the invalid operation's field is named");
    h.stop().await;
}
