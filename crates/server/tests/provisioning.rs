//! Provisioning on the real services: Temporal runs the workflow, the worker applies Strimzi resources to the
//! target's real kube-apiserver, strimzi-sim (the Strimzi stand-in `./dev/test` starts) reports status, and
//! every step comes back as events.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use polaris_server::Role;
use polaris_test_support::eventually;
use polaris_test_support::harness::{
    ALL, Harness, create, get, kube_client, prepare_faults, unique_name, wait_for_status, wait_operation,
};
use polaris_workers::strimzi::{Kafka, KafkaNodePool};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_broker_cluster_is_provisioned_on_its_target_only() {
    let h = Harness::start(&ALL).await;
    let name = unique_name();
    let (id, op) = create(&h, &name, ("aws", "eu-west-1")).await;

    let cluster = wait_for_status(&h, &id, "READY", Duration::from_secs(90)).await;
    // The cluster's namespace carries its id: no other cluster, of any org, can have it.
    let ns_name = cluster["namespace"].as_str().expect("namespace").to_owned();
    assert_eq!(ns_name, format!("polaris-{name}-{}", &id[..8]));
    assert_eq!(cluster["bootstrap_servers"], format!("{name}-kafka-bootstrap.{ns_name}.svc:9092"));
    assert!(cluster["current_operation_id"].is_null());

    // On the aws target: the namespace (labelled with the cluster id), both node pools and the Kafka resource.
    let aws = kube_client("aws-eu-west-1").await;
    let ns = Api::<Namespace>::all(aws.clone()).get(&ns_name).await.expect("namespace on aws");
    assert_eq!(ns.metadata.labels.expect("labels")["polaris.dev/cluster-id"], id);
    let pools = Api::<KafkaNodePool>::namespaced(aws.clone(), &ns_name);
    let controllers = pools.get("controllers").await.expect("controller pool");
    let brokers = pools.get("brokers").await.expect("broker pool");
    assert_eq!((controllers.spec.replicas, brokers.spec.replicas), (3, 3));
    let kafka = Api::<Kafka>::namespaced(aws, &ns_name).get(&name).await.expect("kafka");
    assert_eq!(kafka.spec.kafka.version.as_deref(), Some("4.3.1"));
    assert!(kafka.spec.cruise_control.is_some());
    // ... and nothing on the gcp target.
    let gcp = kube_client("gcp-europe-west1").await;
    assert!(Api::<Namespace>::all(gcp).get_opt(&ns_name).await.expect("gcp reachable").is_none());

    // Brokers by Kafka node id: controllers took 0..2 (their pool is applied first), brokers 3..5.
    let nodes = get(&h, &format!("/v1/clusters/{id}/brokers")).await;
    let ids: Vec<(i64, &str)> = nodes["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|b| (b["id"].as_i64().expect("id"), b["role"].as_str().expect("role")))
        .collect();
    assert_eq!(
        ids,
        [(0, "controller"), (1, "controller"), (2, "controller"), (3, "broker"), (4, "broker"), (5, "broker")]
    );

    // The history: every step in order, once, all with one correlation id.
    let history = get(&h, &format!("/v1/clusters/{id}/history")).await;
    let items = history["items"].as_array().expect("items");
    let types: Vec<&str> = items.iter().map(|e| e["event_type"].as_str().expect("type")).collect();
    assert_eq!(types, ["ClusterRequested", "ClusterProvisioningStarted", "StrimziResourcesApplied", "ClusterReady"]);
    let correlation = &items[0]["correlation_id"];
    assert!(items.iter().all(|e| &e["correlation_id"] == correlation), "one correlation id: {history}");
    assert!(items.iter().all(|e| e["operation_id"] == op.as_str()));
    assert!(items[1]["actor"].as_str().expect("actor").starts_with("worker:"));

    let operation = get(&h, &format!("/v1/operations/{op}")).await;
    assert_eq!(operation["state"], "succeeded");
    let steps: Vec<(&str, &str)> = operation["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["name"].as_str().expect("name"), s["state"].as_str().expect("state")))
        .collect();
    assert_eq!(steps, [("apply-resources", "succeeded"), ("wait-ready", "succeeded")]);
    let listed = get(&h, &format!("/v1/operations?cluster_id={id}")).await;
    assert_eq!(listed["items"].as_array().expect("items").len(), 1);

    let metrics = h.http.get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains(r#"polaris_workflow_starts_total{kind="provision",outcome="started"} 1"#), "{metrics}");

    // The same event delivered again starts nothing: the workflow id comes from the event.
    let sql =
        format!("SELECT {} FROM events WHERE aggregate_id = $1 AND sequence = 1", polaris_store::STORED_EVENT_COLUMNS);
    let stored: polaris_store::StoredEvent =
        sqlx::query_as(&sql).bind(&id).fetch_one(&h.db.pool).await.expect("ClusterRequested");
    let config = h.settings.worker_config();
    let subscriber = polaris_workers::subscriber::Subscriber {
        pool: h.db.pool.clone(),
        client: std::sync::Arc::new(polaris_workers::temporal_client(&config).await.expect("temporal")),
        config,
    };
    let again = subscriber.handle(&stored.to_envelope().expect("envelope")).await.expect("handled");
    assert_eq!(again, Some(polaris_workers::subscriber::Started::AlreadyStarted(format!("provision-{id}-1"))));

    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_strimzi_never_reports_ready_is_stalled_at_its_deadline_and_nothing_else_changes() {
    let h = Harness::start_with(&ALL, 6).await;
    let name = unique_name();
    prepare_faults("gcp-europe-west1", &name, &[("strimzi-sim.polaris.dev/fault", "stall")]).await;
    let (id, op) = create(&h, &name, ("gcp", "europe-west1")).await;

    let cluster = wait_for_status(&h, &id, "STALLED", Duration::from_secs(60)).await;
    let reason = cluster["status_reason"].as_str().expect("reason");
    assert!(reason.contains("not Ready before the deadline"), "{reason}");
    // The cluster reads from its events when the read model lags; the operation is the projector's: wait for it.
    let operation = wait_operation(&h, &op, "stalled").await;
    assert_eq!(operation["error"], reason);

    // Nothing else was touched: each resource is still at the generation Polaris first applied.
    let gcp = kube_client("gcp-europe-west1").await;
    let ns = cluster["namespace"].as_str().expect("namespace").to_owned();
    let kafka = Api::<Kafka>::namespaced(gcp.clone(), &ns).get(&name).await.expect("kafka");
    assert_eq!(kafka.metadata.generation, Some(1));
    for pool in ["controllers", "brokers"] {
        let p = Api::<KafkaNodePool>::namespaced(gcp.clone(), &ns).get(pool).await.expect("pool");
        assert_eq!(p.metadata.generation, Some(1), "{pool}");
    }
    let history = get(&h, &format!("/v1/clusters/{id}/history")).await;
    let last = history["items"].as_array().expect("items").last().expect("an event").clone();
    assert_eq!(last["event_type"], "ClusterStalled");
    h.stop().await;
}

/// A worker in a process of its own, so the test can kill it the hard way.
fn spawn_worker(h: &Harness) -> std::process::Child {
    let s = &h.settings;
    std::process::Command::new(env!("CARGO_BIN_EXE_polaris-server"))
        .args(["serve", "--roles", "worker"])
        .env("DATABASE_URL", &s.database_url)
        .env("KAFKA_BOOTSTRAP", &s.kafka_bootstrap)
        .env("POLARIS_EVENTS_TOPIC", &s.events_topic)
        .env("TEMPORAL_ADDRESS", &s.temporal_address)
        .env("POLARIS_TASK_QUEUE", &s.task_queue)
        .env("POLARIS_WORKER_GROUP", &s.worker_group)
        .env("POLARIS_READY_TIMEOUT_SECS", s.ready_timeout_secs.to_string())
        .env("POLARIS_TARGETS_DIR", &s.targets_dir)
        .env("RUST_LOG", "warn")
        // Its health and metrics listener on a free port (another Polaris may hold the default one).
        .env("POLARIS_LISTEN", "127.0.0.1:0")
        .spawn()
        .expect("start polaris-server --roles worker")
}

async fn event_types(h: &Harness, id: &str) -> Vec<String> {
    sqlx::query_as::<_, (String,)>(
        "SELECT event_type FROM events WHERE aggregate_type = 'cluster' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(id)
    .fetch_all(&h.db.pool)
    .await
    .expect("events")
    .into_iter()
    .map(|(t,)| t)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_provisioning_is_replaced_and_the_workflow_completes_without_repeating_a_step() {
    let h = Harness::start_with(&[Role::Api, Role::Relay, Role::Projector], 120).await;
    let name = unique_name();
    // Slow: Strimzi takes 8 s to report Ready, so the worker dies while it waits.
    prepare_faults("aws-eu-west-1", &name, &[("strimzi-sim.polaris.dev/delay-seconds", "8")]).await;
    let mut first = spawn_worker(&h);
    let (id, _op) = create(&h, &name, ("aws", "eu-west-1")).await;

    eventually("the resources to be applied", Duration::from_secs(60), || async {
        event_types(&h, &id).await.iter().any(|t| t == "StrimziResourcesApplied").then_some(())
    })
    .await;
    first.kill().expect("kill -9 the worker");
    let _ = first.wait();
    assert!(!event_types(&h, &id).await.iter().any(|t| t == "ClusterReady"), "killed before the end");

    let mut second = spawn_worker(&h);
    wait_for_status(&h, &id, "READY", Duration::from_secs(90)).await;
    second.kill().expect("stop the second worker");
    let _ = second.wait();

    assert_eq!(
        event_types(&h, &id).await,
        ["ClusterRequested", "ClusterProvisioningStarted", "StrimziResourcesApplied", "ClusterReady"],
        "no step recorded twice"
    );
    let aws = kube_client("aws-eu-west-1").await;
    let ns = get(&h, &format!("/v1/clusters/{id}")).await["namespace"].as_str().expect("namespace").to_owned();
    let kafka = Api::<Kafka>::namespaced(aws.clone(), &ns).get(&name).await.expect("kafka");
    assert_eq!(kafka.metadata.generation, Some(1), "the Kafka resource was not changed again");
    let pools = Api::<KafkaNodePool>::namespaced(aws, &ns).list(&Default::default()).await.expect("pools");
    assert_eq!(pools.items.len(), 2, "no pool duplicated");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stand_in_refuses_to_drop_brokers_that_still_hold_partitions_as_strimzi_does() {
    use kube::api::{Patch, PatchParams};
    use polaris_workers::resources::ClusterSpec;

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
    let client = kube_client("gcp-europe-west1").await;
    let ns = spec.namespace();
    let ssa = PatchParams::apply("polaris-test").force();
    Api::<Namespace>::all(client.clone()).patch(&ns, &ssa, &Patch::Apply(spec.namespace_object())).await.expect("ns");
    let pools = Api::<KafkaNodePool>::namespaced(client.clone(), &ns);
    for pool in spec.node_pools() {
        let pool_name = pool.metadata.name.clone().expect("name");
        pools.patch(&pool_name, &ssa, &Patch::Apply(&pool)).await.expect("pool");
    }
    let kafkas = Api::<Kafka>::namespaced(client.clone(), &ns);
    kafkas.patch(&name, &ssa, &Patch::Apply(spec.kafka())).await.expect("kafka");
    let ready =
        |k: &Kafka| k.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_.as_deref() == Some("Ready")));
    eventually("the stand-in to report the cluster Ready", Duration::from_secs(30), || async {
        kafkas.get(&name).await.ok().filter(|k| ready(k)).map(|_| ())
    })
    .await;

    // Lower the broker pool without a remove-brokers rebalance: the brokers still hold replicas.
    let [_, mut brokers] = spec.node_pools();
    brokers.spec.replicas = 2;
    pools.patch("brokers", &ssa, &Patch::Apply(&brokers)).await.expect("lower replicas");
    let message = eventually("the stand-in to refuse", Duration::from_secs(30), || async {
        let k = kafkas.get(&name).await.ok()?;
        let c = k.status?.conditions.into_iter().find(|c| c.type_.as_deref() == Some("NotReady"))?;
        c.message
    })
    .await;
    assert_eq!(message, "Cannot scale-down Kafka brokers [3] because they have assigned partition-replicas");
    let pool = pools.get("brokers").await.expect("pool");
    assert_eq!(pool.status.expect("status").node_ids, [1, 2, 3], "no broker was removed");
    Api::<Namespace>::all(client).delete(&ns, &Default::default()).await.expect("clean up");
}

/// Events whose workflow can never run (here: clusters on a target this installation does not know, as when a
/// topic outlives its database) are skipped and counted, not retried forever in front of every later event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_whose_target_is_unknown_is_skipped_and_later_clusters_still_provision() {
    let h = Harness::start(&ALL).await;
    let unknown = polaris_domain::TargetId::from_uuid(uuid::Uuid::new_v4());
    let seeded = polaris_test_support::history::seed_history(&h.db.pool, h.org, unknown, 2).await;
    assert!(seeded > 0);
    let (id, _) = create(&h, &unique_name(), ("aws", "eu-west-1")).await;
    wait_for_status(&h, &id, "READY", Duration::from_secs(90)).await;
    let metrics = h.http.get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(
        metrics.contains(r#"polaris_workflow_starts_total{kind="ClusterRequested",outcome="unrunnable"} 2"#),
        "{metrics}"
    );
    h.stop().await;
}
