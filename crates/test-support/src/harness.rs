//! A whole Polaris (chosen roles) on the real local services, with its own database, topic, task queue and
//! consumer groups, plus the helpers the end-to-end tests and the benchmarks share.

use std::time::Duration;

use polaris_app::caller::{self, Role as TokenRole};
use polaris_domain::OrgId;
use std::collections::BTreeMap;

use crate::eventually;
use crate::{TestDb, kafka_bootstrap, unique_topic};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use polaris_server::{Role, Server, Settings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

pub const ALL: [Role; 4] = [Role::Api, Role::Relay, Role::Projector, Role::Worker];

pub struct Harness {
    pub settings: Settings,
    pub db: TestDb,
    pub topic: String,
    pub base: String,
    pub http: reqwest::Client,
    pub org: OrgId,
    pub admin_token: String,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn start(roles: &[Role]) -> Self {
        Self::start_with(roles, 60).await
    }

    /// Like `start`, with the deadline for a cluster to become Ready.
    pub async fn start_with(roles: &[Role], ready_timeout_secs: u64) -> Self {
        Self::start_full(roles, ready_timeout_secs, 1000).await
    }

    /// Like `start_with`, with the per-token API rate limit.
    pub async fn start_full(roles: &[Role], ready_timeout_secs: u64, rate_limit_per_sec: u32) -> Self {
        Self::start_configured(roles, |s| {
            s.ready_timeout_secs = ready_timeout_secs;
            s.rate_limit_per_sec = rate_limit_per_sec;
        })
        .await
    }

    /// Starts with the test defaults, changed by `configure`.
    pub async fn start_configured(roles: &[Role], configure: impl FnOnce(&mut Settings)) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,rdkafka=error".into()),
            )
            .with_test_writer()
            .try_init();
        let db = TestDb::new().await;
        let topic = unique_topic(3).await;
        let settings = Settings {
            database_url: db.url.clone(),
            kafka_bootstrap: kafka_bootstrap(),
            events_topic: topic.clone(),
            listen: "127.0.0.1:0".into(),
            projector_group: format!("projector-{}", Uuid::new_v4().simple()),
            relay_name: "default".into(),
            temporal_address: std::env::var("TEMPORAL_ADDRESS").unwrap_or_else(|_| "127.0.0.1:57233".into()),
            temporal_namespace: "default".into(),
            task_queue: format!("polaris-test-{}", Uuid::new_v4().simple()),
            worker_group: format!("workers-{}", Uuid::new_v4().simple()),
            ready_timeout_secs: 60,
            rate_limit_per_sec: 1000,
            // Absent until a test writes assets there: the API serves only itself.
            dashboard_dir: std::env::temp_dir().join(format!("polaris-dashboard-{}", Uuid::new_v4().simple())),
            targets_dir: kubeconfig_dir().into(),
            unauthenticated_rate_per_sec: 1000,
            api_replicas: 1,
            development: false,
            prometheus_url: None,
            credentials_key_file: Some(test_credentials_key()),
            // Off unless a test turns it on: the drift tests run it every second.
            drift_interval_secs: 0,
        };
        let mut settings = settings;
        configure(&mut settings);
        let server = Server::connect(settings.clone()).await.expect("server connects");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stop_rx) = watch::channel(false);
        let tasks = server.spawn_roles(roles, Some(listener), stop_rx).await.expect("roles start");
        let org = new_org(&db, "acme").await;
        let admin_token = new_token(&db, org, TokenRole::Admin).await;
        register_local_targets(&db, org).await;
        Self { settings, db, topic, base, http: reqwest::Client::new(), org, admin_token, stop, tasks }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

/// A credentials key for test servers (a file of random hex, made once per process).
pub fn test_credentials_key() -> std::path::PathBuf {
    static KEY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("polaris-test-credentials-{}", Uuid::new_v4().simple()));
        let key = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        std::fs::write(&path, key).expect("write the test credentials key");
        path
    })
    .clone()
}

pub async fn new_org(db: &TestDb, name: &str) -> OrgId {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO orgs (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(format!("{name}-{id}"))
        .execute(&db.pool)
        .await
        .expect("insert org");
    OrgId::from_uuid(id)
}

pub async fn new_token(db: &TestDb, org: OrgId, role: TokenRole) -> String {
    let secret = caller::new_token_secret();
    caller::store_token(&db.pool, org, &format!("{}-token", role.as_str()), role, false, &secret).await.expect("token");
    secret
}

pub fn cluster_body(name: &str) -> serde_json::Value {
    serde_json::json!({"name": name, "provider": "aws", "region": "eu-west-1", "brokers": 3})
}

/// The two local Kubernetes API servers `./dev/up` starts, as this org's targets.
pub fn kubeconfig_dir() -> String {
    std::env::var("POLARIS_KUBECONFIG_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../.polaris/kube").into())
}

pub async fn kube_client(target: &str) -> kube::Client {
    let path = format!("{}/{target}.kubeconfig", kubeconfig_dir());
    let kc = kube::config::Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("kubeconfig {path}: {e}; {}", crate::START_HINT));
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kube config");
    kube::Client::try_from(config).expect("kube client")
}

pub async fn register_local_targets(db: &TestDb, org: OrgId) {
    let dir = kubeconfig_dir();
    for (provider, region, file) in [("aws", "eu-west-1", "aws-eu-west-1"), ("gcp", "europe-west1", "gcp-europe-west1")]
    {
        let path = format!("{dir}/{file}.kubeconfig");
        assert!(std::path::Path::new(&path).exists(), "kubeconfig {path} missing; {}", crate::START_HINT);
        // Platform targets, registered once per database (relative to the targets directory) and granted.
        let credentials = polaris_store::db::targets::Credentials {
            kubeconfig: Some(format!("{file}.kubeconfig")),
            ..Default::default()
        };
        let provider = polaris_domain::Provider::parse(provider).expect("provider");
        let region = polaris_domain::Region::parse(region).expect("region");
        polaris_store::db::targets::register(&db.pool, file, provider, &region, credentials)
            .await
            .expect("register target");
        let target = polaris_store::db::targets::by_name(&db.pool, file).await.expect("target").expect("registered");
        let mut conn = db.pool.acquire().await.expect("connection");
        polaris_store::db::targets::grant(&mut conn, target.id, org.as_uuid(), "test").await.expect("grant");
    }
    // Written beside the application layer: its cached token lookups (placement epoch) must not outlive this.
    polaris_app::caller::bearers_changed();
}

pub fn unique_name() -> String {
    format!("t{}", &Uuid::new_v4().simple().to_string()[..10])
}

pub async fn create(h: &Harness, name: &str, region: (&str, &str)) -> (String, String) {
    let resp = h
        .http
        .post(h.url("/v1/clusters"))
        .bearer_auth(&h.admin_token)
        .json(&json!({"name": name, "provider": region.0, "region": region.1, "brokers": 3}))
        .send()
        .await
        .expect("POST /v1/clusters");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let body: Value = resp.json().await.expect("json");
    (body["cluster"]["id"].as_str().expect("id").to_owned(), body["operation"]["id"].as_str().expect("op").to_owned())
}

pub async fn get(h: &Harness, path: &str) -> Value {
    let resp = h.http.get(h.url(path)).bearer_auth(&h.admin_token).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
    resp.json().await.expect("json")
}

pub async fn wait_for_status(h: &Harness, id: &str, status: &str, deadline: Duration) -> Value {
    eventually(&format!("cluster {id} to be {status}"), deadline, || async {
        let r = h.http.get(h.url(&format!("/v1/clusters/{id}"))).bearer_auth(&h.admin_token).send().await.ok()?;
        let c: Value = r.json().await.ok()?;
        (c["status"] == status).then_some(c)
    })
    .await
}

/// Gives the cluster named `name` strimzi-sim fault annotations ahead of its request: a ConfigMap named after it
/// in strimzi-sim's faults namespace (the cluster's own namespace carries its id, unknown before the request).
pub async fn prepare_faults(target: &str, name: &str, annotations: &[(&str, &str)]) {
    try_prepare_faults(&kube_client(target).await, name, annotations).await.expect("faults ConfigMap");
}

/// Like [`prepare_faults`], answering an error (the kube-apiserver is down, say) instead of failing the test.
pub async fn try_prepare_faults(
    client: &kube::Client,
    name: &str,
    annotations: &[(&str, &str)],
) -> Result<(), kube::Error> {
    let ns = Namespace {
        metadata: ObjectMeta { name: Some(FAULTS_NAMESPACE.into()), ..Default::default() },
        ..Default::default()
    };
    match Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    let faults = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            annotations: Some(
                annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), FAULTS_NAMESPACE).create(&PostParams::default(), &faults).await?;
    Ok(())
}

/// strimzi-sim's faults namespace (see its module documentation).
pub const FAULTS_NAMESPACE: &str = "strimzi-sim-faults";

/// Sends a request as the harness admin: status and JSON body (Null when there is none).
pub async fn send(h: &Harness, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.bearer_auth(&h.admin_token).send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Waits (90 s at most) until an operation reaches `state`; on timeout, shows the operation as last seen.
pub async fn wait_operation(h: &Harness, op: &str, state: &str) -> Value {
    wait_operation_for(h, op, state, Duration::from_secs(90)).await
}

/// Like [`wait_operation`], with its own deadline (operations on real brokers take longer).
pub async fn wait_operation_for(h: &Harness, op: &str, state: &str, within: Duration) -> Value {
    let deadline = std::time::Instant::now() + within;
    let mut last = Value::Null;
    loop {
        if let Ok(r) = h.http.get(h.url(&format!("/v1/operations/{op}"))).bearer_auth(&h.admin_token).send().await
            && let Ok(o) = r.json::<Value>().await
        {
            if o["state"] == state {
                return o;
            }
            last = o;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "operation {op} did not become {state} within {within:?}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs kubectl (what `./dev/up` installs) against `target`'s local API server with `input` on stdin: whether it
/// succeeded, and its output.
pub fn kubectl(target: &str, args: &[&str], input: &str) -> (bool, String) {
    kubectl_env(target, args, input, &[])
}

/// [`kubectl`] with environment variables (`KUBE_EDITOR` for a scripted `kubectl edit`).
pub fn kubectl_env(target: &str, args: &[&str], input: &str, env: &[(&str, &str)]) -> (bool, String) {
    use std::io::Write;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let kubeconfig = std::path::PathBuf::from(kubeconfig_dir()).join(format!("{target}.kubeconfig"));
    assert!(kubeconfig.exists(), "{} is missing; {}", kubeconfig.display(), crate::START_HINT);
    let mut child = std::process::Command::new(root.join(".polaris/cache/venv/bin/kubectl"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs (./dev/up installs it)");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("kubectl finishes");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// Records a drift of `cluster` (of org `org`, whose `token` reads it) through the command path as the detector
/// would, and waits until the API shows it: its id.
pub async fn record_drift(h: &Harness, org: polaris_domain::OrgId, cluster: &str, token: &str) -> String {
    use polaris_domain::drift::{DetectDrift, DriftCommand, drift_id};
    let cluster_id = polaris_domain::ClusterId::from_uuid(cluster.parse().expect("cluster id"));
    let (object, field) = ("KafkaNodePool/ns/brokers", "spec.replicas");
    let id = drift_id(cluster_id, object, field);
    let now = chrono::Utc::now();
    let md = polaris_domain::CommandMetadata {
        org_id: org,
        actor: "worker:drift-detector".into(),
        correlation_id: uuid::Uuid::new_v4(),
        causation_id: uuid::Uuid::new_v4(),
        operation_id: None,
        occurred_at: now,
        policy_version: None,
    };
    let command = DriftCommand::Detect(DetectDrift {
        cluster_id,
        org_id: org,
        object: object.into(),
        field: field.into(),
        expected: Some(json!(3)),
        actual: Some(json!(5)),
        changed_by: Some("kubectl-edit".into()),
        observed_at: now,
    });
    polaris_store::drift_cqrs(h.db.pool.clone(), polaris_store::DirectPool::beside(&h.db.pool), Default::default())
        .execute_with_metadata(&id.to_string(), command, md.to_map())
        .await
        .expect("DriftDetected");
    eventually("the other org's drift", Duration::from_secs(30), || async {
        let r = h.http.get(h.url(&format!("/v1/clusters/{cluster}/drift"))).bearer_auth(token).send().await.ok()?;
        let list: Value = r.json().await.ok()?;
        list["items"].as_array()?.iter().any(|d| d["id"] == id.to_string().as_str()).then_some(())
    })
    .await;
    id.to_string()
}

/// The open drift of `field` of an object of cluster `id` whose `Kind/namespace/name` contains `object`, once the
/// API shows it (within `within`).
pub async fn wait_open_drift(h: &Harness, id: &str, object: &str, field: &str, within: Duration) -> Value {
    eventually(&format!("an open drift of {object} {field:?}"), within, || async {
        let list = get(h, &format!("/v1/clusters/{id}/drift?status=open")).await;
        list["items"]
            .as_array()?
            .iter()
            .find(|d| d["resource"].as_str().is_some_and(|r| r.contains(object)) && d["field"] == field)
            .cloned()
    })
    .await
}

/// How many `DriftDetected` events the harness' event store holds.
pub async fn drift_detected_count(h: &Harness) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'DriftDetected'")
        .fetch_one(&h.db.pool)
        .await
        .expect("count DriftDetected")
}
