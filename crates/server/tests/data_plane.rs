//! The Kafka behind READY is real: a cluster Polaris provisions runs real brokers (strimzi-sim's data plane), and
//! every claim of a workflow is checked on those brokers with a Kafka client: produce and consume with the admin
//! credentials Polaris generated, topics as recorded, replicas moved by scaling, brokers rolled by an upgrade,
//! authentication enforced, clusters surviving a restart of strimzi-sim, and nothing left after a delete.
//!
//! One cluster goes through every step in turn: real clusters are costly on this machine (see docs/DATA-PLANE.md).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::ListParams;
use polaris_domain::naming::{BROKER_POOL, CONTROLLER_POOL};
use polaris_test_support::eventually;
use polaris_test_support::harness::{
    ALL, Harness, drift_detected_count, get, kube_client, kubectl, prepare_faults, send, unique_name, wait_for_status,
    wait_open_drift, wait_operation_for,
};
use polaris_test_support::prometheus::TestPrometheus;
use polaris_workers::resources::CLUSTER_ID_LABEL;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TARGET: &str = "aws-eu-west-1";
const TOPIC: &str = "orders.v1";
/// The deadline of a scale or an upgrade on real brokers.
const LONG: Duration = Duration::from_secs(400);

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

/// A client of the cluster's users' listener, as `user` with `password` (SCRAM-SHA-512).
fn client(bootstrap: &str, user: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "SCRAM-SHA-512")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("log.connection.close", "false");
    c
}

/// Whether a client configured so can read the cluster's metadata (authentication succeeded).
fn can_connect(config: &ClientConfig) -> bool {
    let consumer: BaseConsumer = config.clone().set("group.id", "auth-probe").create().expect("consumer");
    consumer.fetch_metadata(None, Duration::from_secs(5)).is_ok()
}

/// Produces `count` messages `<run>-<n>` with acks=all; returns the payloads Kafka acknowledged.
async fn produce(producer: &FutureProducer, run: &str, count: usize) -> BTreeSet<String> {
    let sends = (0..count).map(|n| {
        let payload = format!("{run}-{n}");
        async move {
            let record = FutureRecord::to(TOPIC).key(&payload).payload(&payload);
            producer.send(record, Duration::from_secs(60)).await.ok().map(|_| payload.clone())
        }
    });
    futures::future::join_all(sends).await.into_iter().flatten().collect()
}

/// A producer that keeps sending until stopped, one message at a time with acks=all; its acknowledged payloads.
fn background_producer(
    producer: FutureProducer,
    run: String,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<BTreeSet<String>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut acked = BTreeSet::new();
        let mut n = 0usize;
        while !flag.load(Ordering::Relaxed) {
            let batch: Vec<String> = (n..n + 20).map(|i| format!("{run}-{i}")).collect();
            n += 20;
            let sends =
                batch.iter().map(|p| producer.send(FutureRecord::to(TOPIC).key(p).payload(p), Duration::from_secs(60)));
            for (p, r) in batch.iter().zip(futures::future::join_all(sends).await) {
                if r.is_ok() {
                    acked.insert(p.clone());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        acked
    });
    (stop, task)
}

/// Every payload in the topic, read from the beginning to the high watermark of each partition.
fn consume_all(config: &ClientConfig) -> BTreeSet<String> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = consumer.fetch_metadata(Some(TOPIC), Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    let mut expected = 0usize;
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(TOPIC, p.id(), Duration::from_secs(10)).expect("watermarks");
        expected += (high - low) as usize;
        tpl.add_partition_offset(TOPIC, p.id(), Offset::Beginning).expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = BTreeSet::new();
    let mut read = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while read < expected {
        assert!(Instant::now() < deadline, "read {read} of {expected} messages before the deadline");
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m.expect("message");
            read += 1;
            out.insert(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    out
}

/// Replicas per broker of the cluster's topics, and the brokers it reports.
fn replicas(config: &ClientConfig) -> (BTreeMap<i32, usize>, BTreeSet<i32>) {
    let consumer: BaseConsumer = config.clone().set("group.id", "replicas").create().expect("consumer");
    let md = consumer.fetch_metadata(None, Duration::from_secs(10)).expect("metadata");
    let mut per_broker = BTreeMap::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        for r in p.replicas() {
            *per_broker.entry(*r).or_insert(0) += 1;
        }
    }
    (per_broker, md.brokers().iter().map(|b| b.id()).collect())
}

/// The replicas per broker once exactly `brokers` are registered and unfenced. A broker the controller fenced for a
/// missed heartbeat (two loaded cores, seven JVMs) is left out of the metadata until it is unfenced again, which
/// READY a moment earlier does not rule out; a broker that never comes back still fails here, after a minute.
async fn serving(admin: &ClientConfig, brokers: &[i32]) -> BTreeMap<i32, usize> {
    let want: BTreeSet<i32> = brokers.iter().copied().collect();
    let started = Instant::now();
    let per_broker = eventually(&format!("brokers {want:?} serving"), Duration::from_secs(60), || {
        let c = admin.clone();
        let want = want.clone();
        async move {
            let (per_broker, brokers) = tokio::task::spawn_blocking(move || replicas(&c)).await.ok()?;
            (brokers == want).then_some(per_broker)
        }
    })
    .await;
    if started.elapsed() > Duration::from_secs(1) {
        println!("brokers {want:?} all serving {:.1} s after READY", started.elapsed().as_secs_f64());
    }
    per_broker
}

/// `metadata.version` as `FeatureCommand describe` reports it, run from the cluster's own jars.
fn finalized_metadata_version(bootstrap: &str, password: &str, version: &str) -> String {
    let dir = std::env::temp_dir().join(format!("features-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let props = dir.join("admin.properties");
    std::fs::write(
        &props,
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.\
             security.scram.ScramLoginModule required username=\"polaris-admin\" password=\"{password}\";\n"
        ),
    )
    .expect("props");
    let out = std::process::Command::new("java")
        .args(["-Xmx128m", "-cp", &format!("{}/*", repo(&format!(".polaris/cache/kafka-{version}/libs")).display())])
        .args(["org.apache.kafka.tools.FeatureCommand", "--bootstrap-server", bootstrap, "--command-config"])
        .arg(&props)
        .arg("describe")
        .output()
        .expect("java");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "FeatureCommand describe: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.contains("metadata.version")).unwrap_or_else(|| panic!("{stdout}"));
    line.split("FinalizedVersionLevel:")
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A KafkaUser (written here as Polaris' user workflow will write it: a Secret with the password, the KafkaUser
/// naming it) with Write and Read on the prefix `orders.`, Read on the group `orders-app`, and a produce quota of
/// 100 KiB/s: the brokers enforce each, a rotation retires the old password, and a delete every credential.
/// A Kafka user made through Polaris' API, checked on the real brokers: its ACLs allow and refuse, its quota
/// throttles, a rotation retires the old password, a delete retires the user. Answers every password it was given.
async fn users_on_the_brokers(
    h: &Harness,
    cluster_id: &str,
    admin: &ClientConfig,
    bootstrap: &str,
    ns: &str,
) -> Vec<String> {
    const USER: &str = "orders-app";
    const QUOTA: u64 = 100 * 1024;
    let users = format!("/v1/clusters/{cluster_id}/users");
    let body = json!({
        "name": USER,
        "acls": [
            {"resource": {"type": "topic", "name": "orders.", "pattern": "prefix"}, "operations": ["Write", "Read", "Describe"]},
            {"resource": {"type": "group", "name": USER}, "operations": ["Read"]}
        ],
        "quotas": {"producer_byte_rate": QUOTA}
    });
    let key = format!("user-{}", uuid::Uuid::new_v4().simple());
    let (s, created) = send(h, h.http.post(h.url(&users)).header("idempotency-key", &key).json(&body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["credentials_shown"], true);
    assert_eq!(created["credentials"]["username"], USER);
    assert_eq!(created["credentials"]["mechanism"], "SCRAM-SHA-512");
    assert_eq!(created["credentials"]["bootstrap_servers"], bootstrap);
    let first_password = created["credentials"]["password"].as_str().expect("the password, once").to_owned();
    // The same request again: the same answer, without the password, saying so.
    let (s, again) = send(h, h.http.post(h.url(&users)).header("idempotency-key", &key).json(&body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{again}");
    assert_eq!((again["credentials"].clone(), again["credentials_shown"].clone()), (Value::Null, json!(false)));
    assert_eq!(again["operation"]["id"], created["operation"]["id"]);
    let operation = created["operation"]["id"].as_str().expect("operation").to_owned();
    wait_operation_for(h, &operation, "succeeded", Duration::from_secs(120)).await;
    let user = get(h, &format!("{users}/{USER}")).await;
    assert_eq!((user["status"].as_str(), user["credentials_generation"].as_u64()), (Some("READY"), Some(1)), "{user}");
    assert!(user.get("credentials").is_none() && !user.to_string().contains(&first_password));
    let kube = kube_client(TARGET).await;
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), ns);
    let written = secrets.get("polaris-user-orders-app").await.expect("the user's password Secret");
    assert_eq!(
        written.data.expect("data")["password"].0,
        first_password.as_bytes(),
        "the worker wrote the password the API answered"
    );

    // A topic the user has no ACL on, made by the admin (a super user).
    let kafka_admin: AdminClient<DefaultClientContext> = admin.create().expect("admin client");
    let payments = rdkafka::admin::NewTopic::new("payments.v1", 1, rdkafka::admin::TopicReplication::Fixed(3));
    kafka_admin.create_topics([&payments], &AdminOptions::new()).await.expect("create payments.v1");

    let as_user = client(bootstrap, USER, &first_password);
    let producer: FutureProducer = as_user.clone().set("acks", "all").create().expect("producer");
    let send_to = |topic: &'static str, payload: Vec<u8>| {
        let producer = producer.clone();
        async move {
            producer
                .send(FutureRecord::<(), [u8]>::to(topic).payload(&payload), Duration::from_secs(30))
                .await
                .map(|_| ())
                .map_err(|(e, _)| e.to_string())
        }
    };
    send_to(TOPIC, b"from orders-app".to_vec()).await.expect("Write on the prefix orders.");
    let refused = send_to("payments.v1", b"not allowed".to_vec()).await.expect_err("no ACL on payments.v1");
    assert!(refused.contains("Authorization"), "{refused}");

    // The README's way: kcat (./dev/kcat) with the credentials the API printed, produce then consume.
    let line = format!("kcat-{}", uuid::Uuid::new_v4().simple());
    let sasl = [
        "-b",
        bootstrap,
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanisms=SCRAM-SHA-512",
        "-X",
        &format!("sasl.username={USER}"),
        "-X",
        &format!("sasl.password={first_password}"),
        "-t",
        TOPIC,
    ];
    let produced = kcat(&[&sasl[..], &["-P"]].concat(), &line);
    assert!(produced.status.success(), "kcat -P: {}", String::from_utf8_lossy(&produced.stderr));
    let consumed = kcat(&[&sasl[..], &["-C", "-o", "beginning", "-e", "-q"]].concat(), "");
    assert!(consumed.status.success(), "kcat -C: {}", String::from_utf8_lossy(&consumed.stderr));
    assert!(String::from_utf8_lossy(&consumed.stdout).lines().any(|l| l == line), "kcat read back what it wrote");

    // Read with its own group; another group is refused.
    let reader = as_user.clone();
    let read_with = move |group: &str| {
        let consumer: BaseConsumer = reader
            .clone()
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        consumer.subscribe(&[TOPIC]).expect("subscribe");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(_)) => return Ok(()),
                Some(Err(e)) if e.to_string().contains("Authorization") => return Err(e.to_string()),
                _ if Instant::now() > deadline => return Err("nothing read before the deadline".to_owned()),
                _ => {}
            }
        }
    };
    let (own, other) =
        tokio::task::spawn_blocking(move || (read_with(USER), read_with("someone-else"))).await.expect("consumers");
    own.expect("Read on its own group and the topic");
    let other = other.expect_err("another group is refused");
    assert!(other.contains("Group") && other.contains("Authorization"), "{other}");

    // The produce quota (per broker, so one partition, one leader): a producer that would send 400 KiB/s, four
    // times the quota, for 15 s. Kafka throttles after the fact, so the first second runs ahead and is paid back
    // by later delays; without the quota the rate would be 400 KiB/s.
    let chunk = vec![7u8; 16 * 1024];
    let pace = Duration::from_millis(40);
    let started = Instant::now();
    let mut sent = 0usize;
    for n in 0u32.. {
        if started.elapsed() >= Duration::from_secs(15) {
            break;
        }
        tokio::time::sleep_until((started + pace * n).into()).await;
        let record = FutureRecord::<(), [u8]>::to(TOPIC).partition(0).payload(&chunk);
        producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("a produce within the quota");
        sent += chunk.len();
    }
    let rate = sent as f64 / started.elapsed().as_secs_f64();
    println!("figure: produce asking 400 KiB/s under a 100 KiB/s quota: {:.0} KiB/s over 15 s", rate / 1024.0);
    assert!(
        rate > QUOTA as f64 / 2.0 && rate < QUOTA as f64 * 2.0,
        "measured {rate:.0} B/s against a quota of {QUOTA} B/s"
    );

    // Rotation through the API: a new password, once; when the operation succeeds the old one no longer
    // authenticates and the new one does.
    let (s, rotated) = send(h, h.http.post(h.url(&format!("{users}/{USER}/rotate")))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{rotated}");
    assert_eq!(rotated["credentials"]["generation"], 2);
    let second_password = rotated["credentials"]["password"].as_str().expect("the new password").to_owned();
    assert_ne!(second_password, first_password);
    let operation = rotated["operation"]["id"].as_str().expect("operation").to_owned();
    wait_operation_for(h, &operation, "succeeded", Duration::from_secs(120)).await;
    let (old, new) = (client(bootstrap, USER, &first_password), client(bootstrap, USER, &second_password));
    // SCRAM credentials reach every broker through the metadata log: a few milliseconds after the operation.
    eventually("the rotated password in force", Duration::from_secs(15), || {
        let (old, new) = (old.clone(), new.clone());
        async move {
            tokio::task::spawn_blocking(move || (!can_connect(&old) && can_connect(&new)).then_some(())).await.ok()?
        }
    })
    .await;

    // Delete through the API: the credentials, the ACLs and both Secrets are gone.
    let (s, deleted) = send(h, h.http.delete(h.url(&format!("{users}/{USER}")))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{deleted}");
    let operation = deleted["operation"]["id"].as_str().expect("operation").to_owned();
    wait_operation_for(h, &operation, "succeeded", Duration::from_secs(120)).await;
    eventually("the deleted user refused", Duration::from_secs(15), || {
        let new = new.clone();
        async move { tokio::task::spawn_blocking(move || (!can_connect(&new)).then_some(())).await.ok()? }
    })
    .await;
    // Polaris' Secret goes within the operation; the User Operator's own goes once it has noticed the delete.
    assert!(
        secrets.get_opt("polaris-user-orders-app").await.expect("secrets").is_none(),
        "the password Secret is gone"
    );
    eventually("the User Operator's Secret removed", Duration::from_secs(30), || async {
        secrets.get_opt(USER).await.ok()?.is_none().then_some(())
    })
    .await;
    vec![first_password, second_password]
}

/// Runs `./dev/kcat` (Debian's kcat with a current librdkafka) with `stdin`.
fn kcat(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(repo("dev/kcat"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run dev/kcat");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("kcat output")
}

/// None of `secrets` is anywhere Polaris records things: the org's events, the cluster's history, the audit log,
/// any table of the database, the events topic on the bootstrap Kafka, and the log files of the local services
/// (strimzi-sim's included).
/// Reverts a drift through the API and waits for the revert to succeed.
async fn revert(h: &Harness, id: &str, drift: &Value) {
    let path = format!("/v1/clusters/{id}/drift/{}/resolve", drift["id"].as_str().expect("drift id"));
    let (s, body) = send(h, h.http.post(h.url(&path)).json(&json!({"action": "revert"}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    wait_operation_for(h, body["operation"]["id"].as_str().expect("op"), "succeeded", LONG).await;
}

/// Drift where it reaches Kafka: nothing was recorded through the scale and the upgrade; a KafkaTopic deleted with
/// kubectl is reverted and the topic is on the brokers again; a broker added with kubectl is reverted, emptied
/// and stopped.
async fn drift_on_the_brokers(h: &Harness, id: &str, ns: &str, admin: &ClientConfig) {
    assert_eq!(
        drift_detected_count(h).await,
        0,
        "DriftDetected while nothing drifted (through a scale and an upgrade on real brokers)"
    );
    let topic_on_brokers = |name: &'static str| {
        let c = admin.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let consumer: BaseConsumer = c.clone().set("group.id", "drift-probe").create().expect("consumer");
                let md = consumer.fetch_metadata(None, Duration::from_secs(10)).expect("metadata");
                md.topics().iter().find(|t| t.name() == name).map(|t| t.partitions().len())
            })
            .await
            .expect("metadata")
        }
    };
    let (s, t) = send(
        h,
        h.http.post(h.url(&format!("/v1/clusters/{id}/topics"))).json(&json!({
            "name": "drift.check", "partitions": 3, "replication_factor": 3
        })),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    wait_operation_for(h, t["operation"]["id"].as_str().expect("op"), "succeeded", Duration::from_secs(120)).await;
    let topics: Api<polaris_workers::strimzi::KafkaTopic> = Api::namespaced(kube_client(TARGET).await, ns);
    let object = topics
        .list(&ListParams::default())
        .await
        .expect("KafkaTopics")
        .items
        .into_iter()
        .find(|t| t.spec.topic_name.as_deref() == Some("drift.check"))
        .and_then(|t| t.metadata.name)
        .expect("the KafkaTopic of drift.check");
    let (ok, out) = kubectl(TARGET, &["delete", "kafkatopic", &object, "-n", ns, "--wait=true"], "");
    assert!(ok, "{out}");
    eventually("drift.check gone from the brokers", Duration::from_secs(60), || async {
        topic_on_brokers("drift.check").await.is_none().then_some(())
    })
    .await;
    let drift = wait_open_drift(h, id, &object, "", Duration::from_secs(30)).await;
    assert_eq!(drift["actual"], Value::Null, "{drift}");
    revert(h, id, &drift).await;
    let partitions = eventually("drift.check on the brokers again", Duration::from_secs(60), || async {
        topic_on_brokers("drift.check").await
    })
    .await;
    assert_eq!(partitions, 3);

    // A fourth broker with kubectl: it starts; the revert empties it (remove-brokers) and the pool is 3 again.
    let patch = r#"{"spec":{"replicas":4}}"#;
    let (ok, out) =
        kubectl(TARGET, &["patch", "kafkanodepool", BROKER_POOL, "-n", ns, "--type", "merge", "-p", patch], "");
    assert!(ok, "{out}");
    let drift = wait_open_drift(h, id, BROKER_POOL, "spec.replicas", Duration::from_secs(30)).await;
    assert_eq!((drift["expected"].as_i64(), drift["actual"].as_i64()), (Some(3), Some(4)), "{drift}");
    let c = admin.clone();
    let joined = eventually("the added broker serving", Duration::from_secs(120), || {
        let c = c.clone();
        async move {
            let (_, brokers) = tokio::task::spawn_blocking(move || replicas(&c)).await.ok()?;
            (brokers.len() == 4).then_some(brokers)
        }
    })
    .await;
    println!("brokers after kubectl raised the pool: {joined:?}");
    revert(h, id, &drift).await;
    let c = admin.clone();
    eventually("the added broker stopped and unregistered", Duration::from_secs(30), || {
        let c = c.clone();
        async move {
            let (_, brokers) = tokio::task::spawn_blocking(move || replicas(&c)).await.ok()?;
            (brokers == BTreeSet::from([3, 4, 5])).then_some(())
        }
    })
    .await;
    wait_for_status(h, id, "READY", Duration::from_secs(60)).await;
}

async fn secrets_nowhere(h: &Harness, cluster_id: &str, secrets: &[String]) {
    let mut seen = Vec::new();
    // Every page of a feed, followed to its end.
    async fn pages(h: &Harness, path: &str, done: impl Fn(&Value) -> bool) -> String {
        let (mut all, mut token) = (String::new(), None::<String>);
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &token {
                Some(t) => format!("{path}{sep}page_size=100&page_token={t}"),
                None => format!("{path}{sep}page_size=100"),
            };
            let page = get(h, &url).await;
            all.push_str(&page.to_string());
            if done(&page) {
                return all;
            }
            token = page["next_page_token"].as_str().map(str::to_owned);
        }
    }
    let no_items = |p: &Value| p["items"].as_array().is_none_or(|i| i.is_empty());
    seen.push(("GET /v1/events", pages(h, "/v1/events", no_items).await));
    seen.push(("history", get(h, &format!("/v1/clusters/{cluster_id}/history")).await.to_string()));
    seen.push(("audit", pages(h, "/v1/audit", |p| p["next_page_token"].is_null()).await));
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&h.db.pool)
    .await
    .expect("tables");
    for table in &tables {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT t::text FROM {table} t")).fetch_all(&h.db.pool).await.expect("rows");
        seen.push(("a database table", format!("{table}: {}", rows.join("\n"))));
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", polaris_test_support::kafka_bootstrap())
        .set("group.id", format!("secrets-{}", uuid::Uuid::new_v4().simple()))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let md = consumer.fetch_metadata(Some(&h.topic), Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0i64;
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(&h.topic, p.id(), Duration::from_secs(10)).expect("watermarks");
        remaining += high - low;
        tpl.add_partition_offset(&h.topic, p.id(), Offset::Beginning).expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut published = String::new();
    while remaining > 0 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            remaining -= 1;
            published.push_str(&String::from_utf8_lossy(m.payload().unwrap_or_default()));
        }
    }
    assert_eq!(remaining, 0, "read the whole events topic {}", h.topic);
    assert!(published.contains("UserCredentialsRotated"), "the events topic has the user's events");
    seen.push(("the events topic", published));
    for entry in std::fs::read_dir(repo(".polaris/logs")).expect("the local services' logs") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        seen.push(("a log file", format!("{}: {}", path.display(), String::from_utf8_lossy(&bytes))));
    }
    for secret in secrets {
        for (place, text) in &seen {
            assert!(!text.contains(secret.as_str()), "a user's password appears in {place}");
        }
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("port of {addr}"))
}

/// Kills strimzi-sim (-9) and starts it again exactly as it was started, as ./dev/up would.
fn restart_strimzi_sim() {
    let pidfile = repo(".polaris/pids/strimzi-sim.pid");
    let pid = std::fs::read_to_string(&pidfile).expect("strimzi-sim pid file (./dev/up starts it)").trim().to_owned();
    let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .expect("strimzi-sim runs")
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd");
    let status = std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("kill");
    assert!(status.success());
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z")
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::OpenOptions::new().append(true).open(repo(".polaris/logs/strimzi-sim.log")).expect("log");
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().expect("restart strimzi-sim");
    std::fs::write(&pidfile, child.id().to_string()).expect("pid file");
    // It outlives the test (./dev/down stops it); reaped here if it exits sooner.
    std::thread::spawn(move || child.wait());
}

/// If the test fails: deletes the cluster's Kafka resource, and kills whatever of its brokers still runs a minute
/// later, so they do not run on (and take the machine's cores) through the suites that come after it. strimzi-sim
/// stops them once it sees the deletion; in a failed run of stop 45 they were still running as the later tests
/// timed out.
struct StopBrokersOnFailure {
    cluster_id: String,
    /// The Kafka resource's name: the brokers' command lines name their data directory,
    /// `strimzi-sim/<target>/<namespace>/<name>/<node>/server.properties`.
    name: String,
}

impl Drop for StopBrokersOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let label = format!("{CLUSTER_ID_LABEL}={}", self.cluster_id);
        let (ok, out) = kubectl(TARGET, &["delete", "kafka", "-A", "-l", &label, "--wait=false"], "");
        eprintln!("deleting the failed test's Kafka ({label}): {}", if ok { "done" } else { out.as_str() });
        let pattern = format!("strimzi-sim/{TARGET}/[^/]*/{}/.*server.properties", self.name);
        let running =
            || std::process::Command::new("pgrep").args(["-f", &pattern]).output().is_ok_and(|o| o.status.success());
        let until = Instant::now() + Duration::from_secs(60);
        while running() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(500));
        }
        if running() {
            let killed = std::process::Command::new("pkill").args(["-KILL", "-f", &pattern]).status();
            eprintln!("the failed test's brokers still ran a minute after the deletion; killed: {killed:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_cluster_serves_kafka_through_scale_upgrade_restart_and_delete() {
    // A Prometheus of the test's own discovers the brokers through this Polaris' http_sd endpoint, and the API
    // charts from it.
    let prometheus_port = polaris_test_support::prometheus::free_port();
    // The drift detector passes every second all along: through a scale and an upgrade it must record nothing.
    let h = Harness::start_configured(&ALL, |s| {
        s.ready_timeout_secs = 300;
        s.prometheus_url = Some(format!("http://127.0.0.1:{prometheus_port}"));
        s.drift_interval_secs = 1;
    })
    .await;
    let prometheus = TestPrometheus::start(prometheus_port, &h.url("/sd/kafka")).await;
    let name = unique_name();
    prepare_faults(TARGET, &name, &[("strimzi-sim.polaris.dev/data-plane", "real")]).await;

    // Provision a real 3-broker cluster on the older supported release.
    let posted = Instant::now();
    let (s, body) = send(
        &h,
        h.http.post(h.url("/v1/clusters")).json(&json!({
            "name": name, "provider": "aws", "region": "eu-west-1", "brokers": 3, "kafka_version": "4.2.1"
        })),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let id = body["cluster"]["id"].as_str().expect("id").to_owned();
    let _brokers = StopBrokersOnFailure { cluster_id: id.clone(), name: name.clone() };
    let ready = wait_for_status(&h, &id, "READY", Duration::from_secs(300)).await;
    println!("figure: POST -> READY of a real 3-broker cluster: {:.1} s", posted.elapsed().as_secs_f64());
    let bootstrap = ready["bootstrap_servers"].as_str().expect("bootstrap").to_owned();
    assert!(bootstrap.starts_with("127.0.0.1:"), "Polaris reports the real loopback address: {bootstrap}");
    let ns = ready["namespace"].as_str().expect("namespace").to_owned();

    // The admin password lives only in the Secret provisioning wrote.
    let secrets: Api<Secret> = Api::namespaced(kube_client(TARGET).await, &ns);
    let secret = secrets.get("polaris-admin-password").await.expect("the admin Secret");
    let password = String::from_utf8(secret.data.expect("data")["password"].0.clone()).expect("utf-8");
    assert!(password.len() >= 32);
    let admin = client(&bootstrap, "polaris-admin", &password);
    let admin_ready = eventually("the admin user's SCRAM credentials on the brokers", Duration::from_secs(120), || {
        let c = admin.clone();
        async move { tokio::task::spawn_blocking(move || can_connect(&c)).await.ok()?.then_some(()) }
    });
    admin_ready.await;

    // Authentication is enforced: no credentials, or wrong ones, are refused.
    let mut anonymous = ClientConfig::new();
    anonymous.set("bootstrap.servers", &bootstrap).set("log.connection.close", "false");
    let wrong = client(&bootstrap, "polaris-admin", "not-the-password");
    let (a, w) =
        tokio::task::spawn_blocking(move || (can_connect(&anonymous), can_connect(&wrong))).await.expect("probe");
    assert!(!a && !w, "without credentials: connected={a}; with a wrong password: connected={w}");

    // The TLS listener: its certificate chains to the cluster CA its status reports, and it asks for a client
    // certificate from the clients CA (`authentication: tls`); a client without one is refused.
    let kafkas: Api<polaris_workers::strimzi::Kafka> = Api::namespaced(kube_client(TARGET).await, &ns);
    let status = kafkas.get(&name).await.expect("Kafka").status.expect("status");
    let tls = status.listeners.iter().find(|l| l.name.as_deref() == Some("tls")).expect("the tls listener");
    let tls_bootstrap = tls.bootstrap_servers.clone().expect("tls bootstrap");
    let ca_file = std::env::temp_dir().join(format!("cluster-ca-{}.crt", uuid::Uuid::new_v4().simple()));
    std::fs::write(&ca_file, tls.certificates.first().expect("the cluster CA")).expect("ca file");
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &tls_bootstrap, "-verify_return_error", "-CAfile"])
        .arg(&ca_file)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Verify return code: 0 (ok)"), "the TLS listener's certificate: {text}");
    assert!(text.contains("CN = clients-ca v0"), "the TLS listener asks for no client certificate: {text}");
    let mut no_cert = ClientConfig::new();
    no_cert
        .set("bootstrap.servers", &tls_bootstrap)
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", ca_file.display().to_string())
        .set("log.connection.close", "false");
    let refused = tokio::task::spawn_blocking(move || !can_connect(&no_cert)).await.expect("probe");
    assert!(refused, "a TLS client without a certificate was let in");
    let _ = std::fs::remove_file(&ca_file);

    // A topic through Polaris: RF 3, min.insync.replicas 2; on the brokers exactly as recorded.
    let (s, t) = send(
        &h,
        h.http.post(h.url(&format!("/v1/clusters/{id}/topics"))).json(&json!({
            "name": TOPIC, "partitions": 6, "replication_factor": 3, "config": {"min.insync.replicas": "2"}
        })),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    wait_operation_for(&h, t["operation"]["id"].as_str().expect("op"), "succeeded", Duration::from_secs(120)).await;
    let recorded = get(&h, &format!("/v1/clusters/{id}/topics/{TOPIC}")).await;
    let kafka_admin: AdminClient<DefaultClientContext> = admin.create().expect("admin client");
    let described = kafka_admin
        .describe_configs([&ResourceSpecifier::Topic(TOPIC)], &AdminOptions::new())
        .await
        .expect("describe configs")
        .remove(0)
        .expect("topic config");
    let min_isr = described.get("min.insync.replicas").and_then(|e| e.value.clone());
    assert_eq!(min_isr.as_deref(), recorded["config"]["min.insync.replicas"].as_str(), "{recorded}");
    let c = admin.clone();
    let md_partitions = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = c.clone().set("group.id", "describe").create().expect("consumer");
        let md = consumer.fetch_metadata(Some(TOPIC), Duration::from_secs(10)).expect("metadata");
        md.topics()[0].partitions().iter().map(|p| p.replicas().len()).collect::<Vec<_>>()
    })
    .await
    .expect("metadata");
    assert_eq!(md_partitions.len() as i64, recorded["partitions"].as_i64().expect("partitions"));
    assert!(md_partitions.iter().all(|r| *r as i64 == recorded["replication_factor"].as_i64().expect("rf")));

    // What Kafka refuses, the KafkaTopic's status says, as the Topic Operator reports it.
    let kafka_topics: Api<polaris_workers::strimzi::KafkaTopic> = Api::namespaced(kube_client(TARGET).await, &ns);
    let refused: polaris_workers::strimzi::KafkaTopic = serde_json::from_value(json!({
        "apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
        "metadata": {"name": "refused", "labels": {"strimzi.io/cluster": name}},
        "spec": {"topicName": "refused", "partitions": 1, "replicas": 3, "config": {"retention.ms": "-5"}}
    }))
    .expect("KafkaTopic");
    kafka_topics.create(&Default::default(), &refused).await.expect("create KafkaTopic");
    let condition = eventually("the refused KafkaTopic's condition", Duration::from_secs(60), || async {
        let t = kafka_topics.get("refused").await.ok()?;
        t.status?
            .conditions
            .into_iter()
            .find(|c| c.type_.as_deref() == Some("Ready") && c.status.as_deref() == Some("False"))
    })
    .await;
    assert_eq!(condition.reason.as_deref(), Some("KafkaError"), "{condition:?}");
    assert!(condition.message.as_deref().unwrap_or_default().contains("InvalidConfig"), "{condition:?}");
    kafka_topics.delete("refused", &Default::default()).await.expect("delete KafkaTopic");

    // Produce 10,000 messages with acks=all, read every one back.
    let producer: FutureProducer = admin
        .clone()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer");
    let first = produce(&producer, "first", 10_000).await;
    assert_eq!(first.len(), 10_000, "every message acknowledged");
    let c = admin.clone();
    let read = tokio::task::spawn_blocking(move || consume_all(&c)).await.expect("consume");
    assert!(first.is_subset(&read), "{} of 10000 acknowledged messages read back", first.intersection(&read).count());

    // The README's quickstart: `./dev/kafka <id> produce|consume <topic>` (Kafka's console tools, the admin user).
    let token_file = std::env::temp_dir().join(format!("token-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&token_file, &h.admin_token).expect("token file");
    let dev_kafka = |verb: &str, input: Option<&str>| {
        let mut cmd = std::process::Command::new(repo("dev/kafka"));
        cmd.args([id.as_str(), verb, TOPIC])
            .env("POLARIS_API_URL", &h.base)
            .env("POLARIS_TOKEN_FILE", &token_file)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("dev/kafka");
        if let Some(text) = input {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("dev/kafka")
    };
    let out = dev_kafka("produce", Some("quickstart-1\nquickstart-2\n"));
    assert!(out.status.success(), "dev/kafka produce: {}", String::from_utf8_lossy(&out.stderr));
    let out = dev_kafka("consume", None);
    let consumed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        consumed.lines().any(|l| l == "quickstart-2") && consumed.lines().count() >= 10_002,
        "dev/kafka consume read {} lines: {}",
        consumed.lines().count(),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&token_file);

    // strimzi-sim's User Operator on the real brokers: SCRAM credentials, ACLs and quotas, rotation and delete.
    let passwords = users_on_the_brokers(&h, &id, &admin, &bootstrap, &ns).await;
    secrets_nowhere(&h, &id, &passwords).await;

    // Every broker and the controller run the JMX Prometheus exporter with the cluster's rules, strimzi-sim
    // writes their Pods as Strimzi would, and Prometheus finds them through Polaris' http_sd endpoint: up == 1
    // for each, labelled with the cluster's id and the node id.
    let pods: Api<Pod> = Api::namespaced(kube_client(TARGET).await, &ns);
    let listed = pods.list(&ListParams::default().labels(&format!("strimzi.io/cluster={name}"))).await.expect("pods");
    let mut pod_names: Vec<String> = listed.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect();
    pod_names.sort();
    assert_eq!(
        pod_names,
        [
            format!("{name}-{BROKER_POOL}-3"),
            format!("{name}-{BROKER_POOL}-4"),
            format!("{name}-{BROKER_POOL}-5"),
            format!("{name}-{CONTROLLER_POOL}-0")
        ],
        "a Pod per real process"
    );
    // Production's path to the same Pods: the PodMonitor provisioning wrote (validated by the Prometheus
    // Operator's real CRD) selects exactly these Pods, on the port they expose.
    let monitors: Api<polaris_workers::monitoring::PodMonitor> = Api::namespaced(kube_client(TARGET).await, &ns);
    let monitor = monitors.get(&name).await.expect("the cluster's PodMonitor");
    for pod in &listed {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert!(
            monitor.spec.selector.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)),
            "the PodMonitor selects {:?}",
            pod.metadata.name
        );
        let ports = &pod.spec.as_ref().expect("spec").containers[0].ports;
        assert!(ports.iter().flatten().any(|p| p.name.as_deref() == Some(&monitor.spec.pod_metrics_endpoints[0].port)));
    }
    let up = format!("up{{job=\"kafka\",polaris_cluster_id=\"{id}\"}} == 1");
    let nodes = eventually("Prometheus scrapes every process of the cluster", Duration::from_secs(60), || async {
        let result = prometheus.query(&up).await?;
        let mut nodes: Vec<String> =
            result.iter().filter_map(|r| r["metric"]["node_id"].as_str().map(str::to_owned)).collect();
        nodes.sort();
        (nodes.len() == 4).then_some(nodes)
    })
    .await;
    assert_eq!(nodes, ["0", "3", "4", "5"]);

    // The Grafana dashboard for managed clusters: every metric it names is one the exporter really produces
    // (read from a broker's and the controller's /metrics), and every panel's query has data for this cluster.
    // A broker registers some MBeans (the replica manager's) only once it has caught up after a start, so the
    // endpoints are read again until every named metric is there, or the deadline names what never appeared.
    let dir = repo(&format!(".polaris/data/strimzi-sim/{TARGET}/{ns}/{name}"));
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join("state.json")).expect("state")).expect("json");
    let ports: Vec<u64> = [&state["brokers"]["3"]["metrics_port"], &state["controller"]["metrics_port"]]
        .iter()
        .map(|p| p.as_u64().expect("metrics port"))
        .collect();
    let named: BTreeSet<(String, String)> = polaris_app::kafka_metrics::PANELS
        .iter()
        .flat_map(|panel| {
            polaris_test_support::metrics_in(&panel.expr, "kafka_").into_iter().map(|m| (panel.title.to_owned(), m))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut exported = BTreeSet::new();
        for port in &ports {
            let text = h.http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.expect("scrape");
            for line in text.text().await.expect("text").lines().filter(|l| !l.starts_with('#')) {
                exported.insert(line.split(['{', ' ']).next().unwrap_or_default().to_owned());
            }
        }
        let missing: Vec<_> = named.iter().filter(|(_, metric)| !exported.contains(metric)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "panels use metrics the exporter does not produce: {missing:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for panel in polaris_app::kafka_metrics::PANELS.iter() {
        let query = panel.query(uuid::Uuid::parse_str(&id).expect("uuid"));
        eventually(&format!("data for panel {:?}: {query}", panel.title), Duration::from_secs(60), || async {
            prometheus.query(&query).await.filter(|r| !r.is_empty())
        })
        .await;
    }

    let panel = |title: &str| {
        let p = polaris_app::kafka_metrics::PANELS.iter().find(|p| p.title == title).expect("panel");
        p.query(uuid::Uuid::parse_str(&id).expect("uuid"))
    };
    let active = prometheus.query(&panel("Active controllers")).await.expect("Prometheus answers");
    assert_eq!(active[0]["value"][1], "1", "exactly one active controller: {active:?}");

    // The cluster page's charts through the API: one per panel, a series per broker, from that Prometheus.
    let (s, charts) = send(&h, h.http.get(h.url(&format!("/v1/clusters/{id}/metrics?minutes=5")))).await;
    assert_eq!(s, StatusCode::OK, "{charts}");
    let charts = charts["charts"].as_array().expect("charts").clone();
    assert_eq!(charts.len(), polaris_app::kafka_metrics::PANELS.len());
    let bytes_in = charts.iter().find(|c| c["title"] == "Bytes in per broker").expect("bytes in");
    let labels: BTreeSet<&str> =
        bytes_in["series"].as_array().expect("series").iter().map(|s| s["label"].as_str().expect("label")).collect();
    assert_eq!(labels, BTreeSet::from(["broker 3", "broker 4", "broker 5"]), "{bytes_in}");
    assert!(bytes_in["series"][0]["points"].as_array().is_some_and(|p| !p.is_empty()), "{bytes_in}");
    let (s, problem) = send(&h, h.http.get(h.url(&format!("/v1/clusters/{id}/metrics?minutes=0")))).await;
    assert_eq!((s, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_FAILED")), "{problem}");

    let scale = |n: u32| h.http.post(h.url(&format!("/v1/clusters/{id}/scale"))).json(&json!({"brokers": n}));
    let mut acknowledged = first;

    // Scale 3 -> 5 with a producer running: after READY the new node ids hold replicas.
    let (stop, task) = background_producer(producer.clone(), "scale-up".into());
    let started = Instant::now();
    let (s, accepted) = send(&h, scale(5)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    wait_operation_for(&h, accepted["operation"]["id"].as_str().expect("op"), "succeeded", LONG).await;
    println!("figure: scale 3 -> 5 (6 partitions + internal topics): {:.1} s", started.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    acknowledged.extend(task.await.expect("producer"));
    let per_broker = serving(&admin, &[3, 4, 5, 6, 7]).await;
    assert!(
        per_broker.get(&6).copied().unwrap_or(0) > 0 && per_broker.get(&7).copied().unwrap_or(0) > 0,
        "{per_broker:?}"
    );

    // Scale 5 -> 3 with a producer running: the leaving brokers are emptied before they stop.
    let (stop, task) = background_producer(producer.clone(), "scale-down".into());
    let (s, accepted) = send(&h, scale(3)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    wait_operation_for(&h, accepted["operation"]["id"].as_str().expect("op"), "succeeded", LONG).await;
    stop.store(true, Ordering::Relaxed);
    acknowledged.extend(task.await.expect("producer"));
    let per_broker = serving(&admin, &[3, 4, 5]).await;
    assert!(!per_broker.contains_key(&6) && !per_broker.contains_key(&7), "{per_broker:?}");
    let c = admin.clone();
    let read = tokio::task::spawn_blocking(move || consume_all(&c)).await.expect("consume");
    let lost: Vec<&String> = acknowledged.difference(&read).take(5).collect();
    assert!(lost.is_empty(), "acknowledged but not read after scaling: {lost:?}");

    // Upgrade 4.2.1 -> 4.3.1 with a producer running: the brokers roll, then the metadata version is raised.
    assert!(finalized_metadata_version(&bootstrap, &password, "4.3.1").starts_with("4.2"));
    let (stop, task) = background_producer(producer.clone(), "upgrade".into());
    let started = Instant::now();
    let (s, accepted) =
        send(&h, h.http.post(h.url(&format!("/v1/clusters/{id}/upgrade"))).json(&json!({"kafka_version": "4.3.1"})))
            .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    wait_operation_for(&h, accepted["operation"]["id"].as_str().expect("op"), "succeeded", LONG).await;
    println!("figure: upgrade 4.2.1 -> 4.3.1, 3 brokers + controller: {:.1} s", started.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    acknowledged.extend(task.await.expect("producer"));
    let mv = finalized_metadata_version(&bootstrap, &password, "4.3.1");
    assert!(mv.starts_with("4.3"), "metadata.version after the upgrade: {mv}");
    let c = admin.clone();
    let read = tokio::task::spawn_blocking(move || consume_all(&c)).await.expect("consume");
    let lost: Vec<&String> = acknowledged.difference(&read).take(5).collect();
    assert!(lost.is_empty(), "acknowledged but not read after the upgrade: {lost:?}");

    drift_on_the_brokers(&h, &id, &ns, &admin).await;

    // strimzi-sim killed and restarted: the cluster, its topic and its messages are intact.
    restart_strimzi_sim();
    let c = admin.clone();
    let after = eventually("the cluster to serve again after strimzi-sim restarted", Duration::from_secs(120), || {
        let c = c.clone();
        async move { tokio::task::spawn_blocking(move || can_connect(&c).then(|| consume_all(&c))).await.ok()? }
    })
    .await;
    assert!(acknowledged.is_subset(&after), "messages lost across the restart");
    let kafka = eventually("the Kafka resource Ready after the restart", Duration::from_secs(60), || async {
        let k: Api<polaris_workers::strimzi::Kafka> = Api::namespaced(kube_client(TARGET).await, &ns);
        let k = k.get(&name).await.ok()?;
        let s = k.status?;
        s.conditions.iter().any(|c| c.type_.as_deref() == Some("Ready")).then_some(s)
    })
    .await;
    assert_eq!(kafka.listeners[0].bootstrap_servers.as_deref(), Some(bootstrap.as_str()));

    // The admin password is in no event, no history entry, and no log of strimzi-sim or of the brokers.
    let history = get(&h, &format!("/v1/clusters/{id}/history")).await.to_string();
    let events = get(&h, &format!("/v1/events?cluster_id={id}&page_size=100")).await.to_string();
    assert!(!history.contains(&password) && !events.contains(&password), "the admin password is in an event");
    let mut logs = vec![repo(".polaris/logs/strimzi-sim.log")];
    logs.extend(
        std::fs::read_dir(&dir).expect("cluster dir").filter_map(Result::ok).map(|e| e.path().join("server.log")),
    );
    for log in logs.iter().filter(|l| l.exists()) {
        let text = std::fs::read_to_string(log).expect("log");
        assert!(!text.contains(&password), "the admin password is in {}", log.display());
    }

    // Delete: the processes stop, their ports are free, their data is gone.
    assert!(dir.join("state.json").exists(), "{}", dir.display());
    let state: Value = serde_json::from_slice(&std::fs::read(dir.join("state.json")).expect("state")).expect("json");
    let mut ports = vec![port_of(&bootstrap)];
    for b in state["brokers"].as_object().expect("brokers").values() {
        ports.push(b["plain_port"].as_u64().expect("port") as u16);
        ports.push(b["internal_port"].as_u64().expect("port") as u16);
    }
    ports.push(state["controller"]["internal_port"].as_u64().expect("port") as u16);
    let (s, accepted) = send(&h, h.http.delete(h.url(&format!("/v1/clusters/{id}")))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    wait_for_status(&h, &id, "DELETED", Duration::from_secs(120)).await;
    eventually("the cluster's data directory removed", Duration::from_secs(60), || async {
        (!dir.exists()).then_some(())
    })
    .await;
    for port in ports {
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers");
    }
    // Its Pods are gone with it, and with them its scrape targets.
    let left = pods.list(&ListParams::default()).await.expect("pods");
    assert!(
        left.items.is_empty(),
        "Pods left in {ns}: {:?}",
        left.items.iter().map(|p| &p.metadata.name).collect::<Vec<_>>()
    );
    let sd: Value = h.http.get(h.url("/sd/kafka")).send().await.expect("sd").json().await.expect("json");
    assert!(!sd.to_string().contains(&id), "http_sd still lists the deleted cluster: {sd}");
    drop(prometheus);
    h.stop().await;
}
