//! Delivery guarantees between PostgreSQL and Kafka and into the read model, on the real services:
//! late commits are neither skipped nor reordered, a relay crash loses nothing, a redelivery changes nothing, and
//! a cluster's and its members' events met out of commit order project as a replay does.

use chrono::Utc;
use polaris_domain::{ClusterId, CommandMetadata, EventEnvelope, OrgId};
use polaris_projector::replay::{ReplayOptions, replay};
use polaris_projector::{Outcome, apply_batch, apply_message};
use polaris_store::db::replay::events_after;
use polaris_store::relay::RelayMetrics;
use polaris_store::{Relay, RelayConfig};
use polaris_test_support::history::seed_members_of_a_deleted_cluster;
use polaris_test_support::{TestDb, eventually, kafka_bootstrap, read_all, unique_topic};
use rdkafka::Message;
use sqlx::PgConnection;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn relay(db: &TestDb, topic: &str) -> Relay {
    Relay::new(db.pool.clone(), RelayConfig::new(kafka_bootstrap(), topic), RelayMetrics::new()).expect("relay")
}

fn metadata(org: Uuid) -> serde_json::Value {
    let id = Uuid::new_v4();
    let md = CommandMetadata {
        org_id: OrgId::from_uuid(org),
        actor: "test".into(),
        correlation_id: id,
        causation_id: id,
        operation_id: None,
        occurred_at: Utc::now(),
        policy_version: None,
    };
    serde_json::to_value(md.to_map()).expect("metadata json")
}

/// Appends one event row the way postgres-es does (its seven columns; the outbox columns take their defaults).
async fn append(conn: &mut PgConnection, aggregate_id: Uuid, sequence: i64, marker: &str) -> i64 {
    let (position,): (i64,) = sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('test', $1, $2, 'TestHappened', '1', $3, $4) RETURNING position",
    )
    .bind(aggregate_id.to_string())
    .bind(sequence)
    .bind(serde_json::json!({"TestHappened": {"marker": marker}}))
    .bind(metadata(Uuid::new_v4()))
    .fetch_one(conn)
    .await
    .expect("append event");
    position
}

/// Runs relay cycles until `expected` events are published, within a deadline. The high-water mark is
/// cluster-wide: any transaction open anywhere in the server (another test, a running Polaris) holds it back
/// for a moment, so a cycle that publishes nothing is normal; a relay that never catches up is the failure.
async fn publish_all(relay: &Relay, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut published = 0;
    while published < expected {
        assert!(Instant::now() < deadline, "the relay published {published} of {expected} events within 20s");
        let n = relay.run_once().await.expect("relay cycle");
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        published += n;
    }
    assert_eq!(published, expected, "no more than what was committed");
}

/// The first batch the relay can see, within a deadline (same reason as [`publish_all`]).
async fn first_batch(relay: &Relay) -> Vec<polaris_store::relay::Pending> {
    eventually("the relay to see the committed event", Duration::from_secs(20), || async {
        let batch = relay.fetch_batch().await.expect("fetch");
        (!batch.is_empty()).then_some(batch)
    })
    .await
}

fn markers(topic: &str) -> Vec<String> {
    read_all(topic)
        .iter()
        .map(|m| {
            let e: EventEnvelope = serde_json::from_slice(m.payload().expect("payload")).expect("envelope");
            e.payload["marker"].as_str().expect("marker").to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_takes_a_lower_position_and_commits_late_is_published_first_and_not_skipped() {
    let db = TestDb::new().await;
    let topic = unique_topic(1).await;
    let relay = relay(&db, &topic);

    let mut a = db.pool.begin().await.expect("tx A");
    let pos_a = append(&mut a, Uuid::new_v4(), 1, "A").await;
    let mut b = db.pool.begin().await.expect("tx B");
    let pos_b = append(&mut b, Uuid::new_v4(), 1, "B").await;
    assert!(pos_a < pos_b, "A took the lower position");
    b.commit().await.expect("B commits first");

    // B is committed but A, below it, still runs: publishing B now and moving the cursor past A's position is
    // exactly how a bare-sequence relay loses A. This relay must publish nothing yet.
    assert_eq!(relay.run_once().await.expect("relay cycle"), 0);
    a.commit().await.expect("A commits late");

    publish_all(&relay, 2).await;
    assert_eq!(relay.run_once().await.expect("relay cycle"), 0, "nothing left");
    assert_eq!(markers(&topic), ["A", "B"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_stops_after_commit_and_before_publish_publishes_on_restart() {
    let db = TestDb::new().await;
    let topic = unique_topic(1).await;
    let mut conn = db.pool.acquire().await.expect("conn");
    append(&mut conn, Uuid::new_v4(), 1, "committed").await;

    // The first relay reads the committed event and dies before publishing it.
    let first = relay(&db, &topic);
    assert_eq!(first_batch(&first).await.len(), 1);
    drop(first);
    assert!(markers(&topic).is_empty());

    let second = relay(&db, &topic);
    publish_all(&second, 1).await;
    assert_eq!(second.run_once().await.expect("relay cycle"), 0);
    assert_eq!(markers(&topic), ["committed"], "published exactly once after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_stops_after_publish_and_before_checkpoint_republishes_and_loses_nothing() {
    let db = TestDb::new().await;
    let topic = unique_topic(1).await;
    let mut conn = db.pool.acquire().await.expect("conn");
    append(&mut conn, Uuid::new_v4(), 1, "one").await;

    let first = relay(&db, &topic);
    let batch = first_batch(&first).await;
    assert_eq!(first.publish(&batch).await.expect("publish"), 1);
    drop(first); // no checkpoint

    append(&mut conn, Uuid::new_v4(), 1, "two").await;
    let second = relay(&db, &topic);
    publish_all(&second, 2).await;
    // At-least-once: "one" twice (consumers deduplicate on aggregate id and sequence), "two" once, in order.
    assert_eq!(markers(&topic), ["one", "one", "two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_applies_a_redelivered_envelope_once() {
    let db = TestDb::new().await;
    let cluster = Uuid::new_v4();
    let operation = Uuid::new_v4();
    let org = Uuid::new_v4();
    let envelope = EventEnvelope {
        event_id: Uuid::new_v4(),
        aggregate_type: "cluster".into(),
        aggregate_id: cluster,
        sequence: 1,
        event_type: "ClusterRequested".into(),
        event_version: 3,
        occurred_at: Utc::now(),
        org_id: org,
        actor: "test".into(),
        correlation_id: operation,
        causation_id: operation,
        operation_id: Some(operation),
        policy_version: None,
        payload: serde_json::json!({
            "cluster_id": cluster, "org_id": org, "operation_id": operation, "target_id": Uuid::new_v4(), "name": "orders", "provider": "gcp",
            "region": "europe-west1", "kafka_version": "4.3.1", "metadata_version": "4.3", "brokers": 3,
            "controllers": 3, "storage_gib": 100, "config": {}, "deletion_protection": false,
            "requested_by": "test", "requested_at": Utc::now(), "namespace": "polaris-orders-00000001",
        }),
    };
    let first = apply_message(&db.pool, "g", "t", 0, 41, &envelope).await.expect("apply");
    let second = apply_message(&db.pool, "g", "t", 0, 42, &envelope).await.expect("apply again");
    assert_eq!((first, second), (Outcome::Applied, Outcome::AlreadyApplied));

    let (clusters, operations): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM clusters WHERE id = $1), (SELECT count(*) FROM operations WHERE cluster_id = $1)",
    )
    .bind(cluster)
    .fetch_one(&db.pool)
    .await
    .expect("counts");
    assert_eq!((clusters, operations), (1, 1));
    let (version, updated_at): (i64, chrono::DateTime<Utc>) =
        sqlx::query_as("SELECT version, updated_at FROM clusters WHERE id = $1")
            .bind(cluster)
            .fetch_one(&db.pool)
            .await
            .expect("row");
    assert_eq!(version, 1);
    assert_eq!(updated_at.timestamp_micros(), envelope.occurred_at.timestamp_micros());
    // The position moved with each message, including the ignored one, in the same transactions.
    let (next,): (i64,) = sqlx::query_as("SELECT next_offset FROM projector_offsets WHERE consumer_group = 'g'")
        .fetch_one(&db.pool)
        .await
        .expect("offset");
    assert_eq!(next, 43);
}

/// The relay's batch query orders by the xid8 column, never by the `xid::text` output column of the same name
/// (text order puts "100000" before "99999", which would let the cursor skip an earlier transaction).
#[tokio::test]
async fn the_relay_orders_by_xid8_not_by_its_text() {
    fn sort_keys(plan: &serde_json::Value, out: &mut Vec<String>) {
        match plan {
            serde_json::Value::Object(m) => {
                if let Some(keys) = m.get("Sort Key").and_then(|k| k.as_array()) {
                    out.extend(keys.iter().filter_map(|k| k.as_str().map(str::to_owned)));
                }
                m.values().for_each(|v| sort_keys(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| sort_keys(v, out)),
            _ => {}
        }
    }
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("connection");
    for _ in 0..3 {
        append(&mut conn, Uuid::new_v4(), 1, "order").await;
    }
    let sql = format!("EXPLAIN (FORMAT JSON) {}", polaris_store::Relay::fetch_sql());
    for setting in ["enable_seqscan", "enable_sort"] {
        let mut tx = db.pool.begin().await.expect("tx");
        // Either plan shape: a sort by the xid8 column (small tables), or the (xid, position) index in order.
        sqlx::query(&format!("SET LOCAL {setting} = off")).execute(&mut *tx).await.expect("set");
        let (plan,): (serde_json::Value,) =
            sqlx::query_as(&sql).bind("default").bind(500i64).fetch_one(&mut *tx).await.expect("explain");
        let mut keys = Vec::new();
        sort_keys(&plan, &mut keys);
        if setting == "enable_sort" {
            assert!(keys.is_empty() && plan.to_string().contains("events_relay_order"), "index order: {plan}");
        } else {
            assert!(keys.is_empty() || keys == ["events.xid", "events.\"position\""], "sorted by xid8: {plan}");
        }
    }
}

/// A cluster's, its topic's and its user's seeded history (`seed_members_of_a_deleted_cluster`), as envelopes in
/// commit order.
async fn members_of_a_deleted_cluster(db: &TestDb) -> (ClusterId, Vec<EventEnvelope>) {
    let cluster = seed_members_of_a_deleted_cluster(&db.pool, OrgId::from_uuid(Uuid::new_v4())).await;
    // Events are read below every running transaction's id, and another test's may be open for a moment.
    let rows = eventually("the seeded events are readable in commit order", Duration::from_secs(30), || async {
        events_after(&db.pool, ("0", 0), 100).await.ok().filter(|rows| rows.len() == 7)
    })
    .await;
    (cluster, rows.into_iter().map(|r| r.into_envelope().expect("an envelope")).collect())
}

/// The cluster's topic and user are `DELETED`, and a replay of the seven events builds the same read models.
async fn assert_members_deleted_as_a_replay_leaves_them(db: &TestDb, cluster: ClusterId) {
    let statuses: Vec<String> = sqlx::query_scalar(
        "SELECT status FROM topics WHERE cluster_id = $1 \
         UNION ALL SELECT status FROM kafka_users WHERE cluster_id = $1",
    )
    .bind(cluster.as_uuid())
    .fetch_all(&db.pool)
    .await
    .expect("the members' rows");
    assert_eq!(statuses, ["DELETED", "DELETED"]);
    let options = ReplayOptions { settle_timeout: Duration::from_secs(2), ..Default::default() };
    let report = replay(&db.pool, &options, |_, _| {}).await.expect("replay runs");
    assert_eq!(report.events_applied, 7);
    assert!(report.identical, "{report:#?}");
}

/// Live, the relay keys events by aggregate, so a cluster's events and its topic's and user's travel on different
/// partitions, and the projector can meet the cluster's deletion before members requested earlier. A replay
/// meets them in commit order. Either way the read models end the same: the members deleted with their cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_met_after_their_clusters_deletion_end_as_a_replay_leaves_them() {
    let db = TestDb::new().await;
    let (cluster, envelopes) = members_of_a_deleted_cluster(&db).await;
    // The cluster's partition is consumed first, the members' after it.
    let (clusters, members): (Vec<_>, Vec<_>) = envelopes.iter().partition(|e| e.aggregate_type == "cluster");
    for (offset, envelope) in clusters.into_iter().chain(members).enumerate() {
        let outcome = apply_message(&db.pool, "g", "t", 0, offset as i64, envelope).await.expect("apply");
        assert_eq!(outcome, Outcome::Applied, "{}", envelope.event_type);
    }
    assert_members_deleted_as_a_replay_leaves_them(&db, cluster).await;
}

/// How many of this test database's connections wait on a lock.
async fn waiting_on_locks(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await
    .expect("pg_stat_activity")
}

/// Two projector processes, each consuming its own partitions: one applies a cluster's whole life (its request
/// to its deletion) in one batch, as after an outage, while the other applies its topic's and user's requests. The
/// members' batch cannot see a row the other has not committed, and the cascade of the cluster's batch cannot see
/// members the other has not committed: the members must still end deleted, as a replay leaves them.
#[tokio::test]
async fn members_projected_beside_a_batch_that_creates_and_deletes_their_cluster_end_deleted() {
    let db = TestDb::new().await;
    let (cluster, envelopes) = members_of_a_deleted_cluster(&db).await;
    let batch = |partition: i32, of_cluster: bool| -> Vec<(&'static str, i32, i64, Option<EventEnvelope>)> {
        let events = envelopes.iter().filter(|e| (e.aggregate_type == "cluster") == of_cluster);
        events.enumerate().map(|(offset, e)| ("t", partition, offset as i64, Some(e.clone()))).collect()
    };
    let (cluster_batch, member_batch) = (batch(0, true), batch(1, false));

    // The cluster's batch is held before it commits: its last statement records partition 0's offset, a row that
    // a transaction of the test's own has inserted and not committed.
    let mut holder = db.pool.begin().await.expect("a transaction");
    sqlx::query(
        "INSERT INTO projector_offsets (consumer_group, topic, partition, next_offset, updated_at) \
         VALUES ('g', 't', 0, 0, now())",
    )
    .execute(&mut *holder)
    .await
    .expect("the held offset row");
    let pool = db.pool.clone();
    let clusters = tokio::spawn(async move { apply_batch(&pool, "g", &cluster_batch).await.map(|a| a.outcomes) });
    eventually("the cluster's batch to wait before its commit", Duration::from_secs(30), || async {
        (waiting_on_locks(&db.pool).await == 1).then_some(())
    })
    .await;
    let pool = db.pool.clone();
    let members = tokio::spawn(async move { apply_batch(&pool, "g", &member_batch).await.map(|a| a.outcomes) });
    // The members' batch ends (it did not wait for the cluster's) or waits for it.
    eventually("the members' batch to end or to wait", Duration::from_secs(30), || async {
        (members.is_finished() || waiting_on_locks(&db.pool).await == 2).then_some(())
    })
    .await;
    holder.rollback().await.expect("release the offset row");
    let outcomes = clusters.await.expect("the cluster's batch").expect("applied");
    assert_eq!(outcomes, [Outcome::Applied; 3]);
    let outcomes = members.await.expect("the members' batch").expect("applied");
    assert_eq!(outcomes, [Outcome::Applied; 4]);

    assert_members_deleted_as_a_replay_leaves_them(&db, cluster).await;
}
