//! A synthetic but well-formed event history, written straight into the event store (through the same insert
//! and hash-chain trigger as the command path), for the replay tests and benchmarks. Each cluster gets the
//! events a provisioned and scaled cluster with one topic has: 9 events, one in ten of them starting with a
//! version 1 `ClusterRequested` (no target) as an old database would hold. A second history deletes a cluster
//! whose topic and user were requested before (`seed_members_of_a_deleted_cluster`).

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use polaris_domain::cluster::{
    BrokersAdded, ClusterDeleted, ClusterDeletionRequested, ClusterProvisioningStarted, ClusterReady, ClusterRequested,
    ClusterScaleRequested, RebalanceCompleted, StrimziResourcesApplied,
};
use polaris_domain::topic::{TopicEvent, TopicName, TopicReady, TopicRequested};
use polaris_domain::user::{UserEvent, UserReady, UserRequested};
use polaris_domain::{
    ClusterEvent, ClusterId, ClusterName, CommandMetadata, OperationId, OrgId, Provider, Region, TargetId,
};
use sqlx::PgPool;
use uuid::Uuid;

pub const EVENTS_PER_CLUSTER: u64 = 9;

struct Row {
    aggregate_type: &'static str,
    aggregate_id: Uuid,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: serde_json::Value,
    metadata: serde_json::Value,
}

fn metadata(org: OrgId, operation: OperationId, at: chrono::DateTime<Utc>) -> serde_json::Value {
    let md = CommandMetadata {
        org_id: org,
        actor: "seed:history".into(),
        correlation_id: Uuid::new_v4(),
        causation_id: Uuid::new_v4(),
        operation_id: Some(operation),
        occurred_at: at,
        policy_version: Some(1),
    };
    serde_json::to_value(md.to_map()).unwrap_or_default()
}

/// A three-broker cluster's request, as the seeded histories make it.
fn cluster_requested(
    (org, cluster, operation): (OrgId, ClusterId, OperationId),
    target: TargetId,
    name: &str,
    at: chrono::DateTime<Utc>,
) -> ClusterRequested {
    ClusterRequested {
        cluster_id: cluster,
        org_id: org,
        operation_id: operation,
        target_id: target,
        name: ClusterName::parse(name).unwrap_or_else(|e| panic!("name: {e}")),
        provider: Provider::Aws,
        region: Region::parse("eu-west-1").unwrap_or_else(|e| panic!("region: {e}")),
        kafka_version: "4.1.0".into(),
        metadata_version: "4.1".into(),
        brokers: 3,
        controllers: 3,
        storage_gib: 100,
        config: BTreeMap::new(),
        deletion_protection: false,
        requested_by: "seed:history".into(),
        requested_at: at,
        namespace: polaris_domain::naming::cluster_namespace(name, cluster.as_uuid()),
        mesh: None,
    }
}

/// The request of a topic "orders" with six partitions.
fn topic_requested(
    (org, cluster, operation): (OrgId, ClusterId, OperationId),
    topic: Uuid,
    at: chrono::DateTime<Utc>,
) -> TopicRequested {
    TopicRequested {
        topic_id: topic,
        cluster_id: cluster,
        org_id: org,
        operation_id: operation,
        name: TopicName::parse("orders").unwrap_or_else(|e| panic!("topic name: {e}")),
        partitions: 6,
        replication_factor: 3,
        config: BTreeMap::new(),
        deletion_protection: false,
        requested_by: "seed:history".into(),
        requested_at: at,
    }
}

fn cluster_rows(org: OrgId, target: TargetId, n: usize, start: chrono::DateTime<Utc>) -> Vec<Row> {
    let cluster = ClusterId::from_uuid(Uuid::new_v4());
    let (provision, scale) = (op(), op());
    let at = |i: i64| start + Duration::milliseconds(i);
    let requested = cluster_requested((org, cluster, provision), target, &format!("seed-{n}"), at(0));
    let mut first = serde_json::to_value(ClusterEvent::ClusterRequested(requested)).unwrap_or_default();
    let mut first_version = "4";
    // Version 3: written before clusters could join a mesh; version 2 also before namespaces carried the cluster
    // id; version 1 also before clusters had a target.
    if n % 10 <= 2
        && let Some(inner) = first.get_mut("ClusterRequested").and_then(|v| v.as_object_mut())
    {
        inner.remove("mesh");
        first_version = "3";
        if n % 10 <= 1 {
            inner.remove("namespace");
            first_version = "2";
        }
        if n.is_multiple_of(10) {
            inner.remove("target_id");
            first_version = "1";
        }
    }
    let ready = ClusterReady {
        operation_id: provision,
        broker_ids: vec![0, 1, 2],
        controller_ids: vec![3, 4, 5],
        bootstrap_servers: format!("seed-{n}-kafka-bootstrap.polaris-seed-{n}.svc:9092"),
    };
    let cluster_events = [
        ClusterEvent::ClusterProvisioningStarted(ClusterProvisioningStarted {
            operation_id: provision,
            workflow_id: format!("provision-{cluster}-1"),
        }),
        ClusterEvent::StrimziResourcesApplied(StrimziResourcesApplied {
            operation_id: provision,
            namespace: format!("polaris-seed-{n}"),
            resources: vec!["Namespace/polaris-seed".into(), "Kafka/seed".into()],
        }),
        ClusterEvent::ClusterReady(ready),
        ClusterEvent::ClusterScaleRequested(ClusterScaleRequested {
            operation_id: scale,
            from: 3,
            to: 4,
            requested_by: "seed:history".into(),
        }),
        ClusterEvent::BrokersAdded(BrokersAdded {
            operation_id: scale,
            node_ids: vec![6],
            broker_ids: vec![0, 1, 2, 6],
        }),
        ClusterEvent::RebalanceCompleted(RebalanceCompleted {
            operation_id: scale,
            mode: "add-brokers".into(),
            node_ids: vec![6],
        }),
    ];
    let mut rows = vec![Row {
        aggregate_type: "cluster",
        aggregate_id: cluster.as_uuid(),
        sequence: 1,
        event_type: "ClusterRequested".into(),
        event_version: first_version.into(),
        payload: first,
        metadata: metadata(org, provision, at(0)),
    }];
    for (i, e) in cluster_events.into_iter().enumerate() {
        let operation = if i < 3 { provision } else { scale };
        rows.push(row(("cluster", cluster.as_uuid(), i as i64 + 2), e, (org, operation, at(i as i64 + 1))));
    }
    let topic = Uuid::new_v4();
    let topic_op = op();
    let topic_events = [
        TopicEvent::TopicRequested(TopicRequested {
            config: BTreeMap::from([("retention.ms".to_owned(), "604800000".to_owned())]),
            ..topic_requested((org, cluster, topic_op), topic, at(10))
        }),
        TopicEvent::TopicReady(TopicReady { operation_id: topic_op }),
    ];
    for (i, e) in topic_events.into_iter().enumerate() {
        rows.push(row(("topic", topic, i as i64 + 1), e, (org, topic_op, at(i as i64 + 10))));
    }
    rows
}

/// An event's row, at its event type's current version (version 1 for every event the histories write but the
/// old `ClusterRequested` versions, which `cluster_rows` writes by hand).
fn row<E: cqrs_es::DomainEvent>(
    (aggregate_type, aggregate_id, sequence): (&'static str, Uuid, i64),
    event: E,
    (org, operation, at): (OrgId, OperationId, chrono::DateTime<Utc>),
) -> Row {
    let event_type = event.event_type();
    let event_version = polaris_domain::events::current_version(&event_type).unwrap_or(1).to_string();
    Row {
        aggregate_type,
        aggregate_id,
        sequence,
        event_type,
        event_version,
        payload: serde_json::to_value(&event).unwrap_or_default(),
        metadata: metadata(org, operation, at),
    }
}

/// One unplaced cluster's history in which a topic and a user are requested, then the cluster is deleted, with
/// the user's `UserReady` committed between the deletion's request and `ClusterDeleted`; one event a millisecond.
/// Answers the cluster's id.
pub async fn seed_members_of_a_deleted_cluster(pool: &PgPool, org: OrgId) -> ClusterId {
    let cluster = ClusterId::from_uuid(Uuid::new_v4());
    let (topic, user) = (Uuid::new_v4(), Uuid::new_v4());
    let (provision, delete, topic_op, user_op) = (op(), op(), op(), op());
    let start = Utc::now() - Duration::hours(1);
    let at = |i: i64| start + Duration::milliseconds(i);
    let requested = cluster_requested((org, cluster, provision), TargetId::UNPLACED, "doomed", at(0));
    let topic_requested = topic_requested((org, cluster, topic_op), topic, at(1));
    let user_requested = UserRequested {
        user_id: user,
        cluster_id: cluster,
        org_id: org,
        operation_id: user_op,
        name: "billing".into(),
        authentication: Default::default(),
        acls: Vec::new(),
        quotas: Default::default(),
        salt: "00".repeat(16),
        requested_by: "seed:history".into(),
        requested_at: at(2),
    };
    let (c, t, u) = (cluster.as_uuid(), topic, user);
    let rows = vec![
        row(("cluster", c, 1), ClusterEvent::ClusterRequested(requested), (org, provision, at(0))),
        row(("topic", t, 1), TopicEvent::TopicRequested(topic_requested), (org, topic_op, at(1))),
        row(("user", u, 1), UserEvent::UserRequested(user_requested), (org, user_op, at(2))),
        row(("topic", t, 2), TopicEvent::TopicReady(TopicReady { operation_id: topic_op }), (org, topic_op, at(3))),
        row(
            ("cluster", c, 2),
            ClusterEvent::ClusterDeletionRequested(ClusterDeletionRequested {
                operation_id: delete,
                requested_by: "seed:history".into(),
            }),
            (org, delete, at(4)),
        ),
        row(("user", u, 2), UserEvent::UserReady(UserReady { operation_id: user_op }), (org, user_op, at(5))),
        row(
            ("cluster", c, 3),
            ClusterEvent::ClusterDeleted(ClusterDeleted { operation_id: delete }),
            (org, delete, at(6)),
        ),
    ];
    insert(pool, rows).await;
    cluster
}

fn op() -> OperationId {
    OperationId::from_uuid(Uuid::new_v4())
}

/// Writes `clusters` synthetic cluster histories for `org` (placed on `target`), in batches. Returns the
/// number of events written.
pub async fn seed_history(pool: &PgPool, org: OrgId, target: TargetId, clusters: usize) -> u64 {
    let start = Utc::now() - Duration::hours(1);
    let mut written = 0u64;
    let mut batch: Vec<Row> = Vec::new();
    for n in 0..clusters {
        batch.extend(cluster_rows(org, target, n, start + Duration::milliseconds(n as i64 * 20)));
        if batch.len() >= 4500 || n + 1 == clusters {
            written += insert(pool, std::mem::take(&mut batch)).await;
        }
    }
    written
}

async fn insert(pool: &PgPool, rows: Vec<Row>) -> u64 {
    let n = rows.len() as u64;
    let (mut types, mut ids, mut seqs, mut names, mut versions, mut payloads, mut metadata) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        types.push(r.aggregate_type);
        ids.push(r.aggregate_id.to_string());
        seqs.push(r.sequence);
        names.push(r.event_type);
        versions.push(r.event_version);
        payloads.push(r.payload.to_string());
        metadata.push(r.metadata.to_string());
    }
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT t, id, s, et, ev, p::json, m::json \
         FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) \
              AS x(t, id, s, et, ev, p, m)",
    )
    .bind(types)
    .bind(ids)
    .bind(seqs)
    .bind(names)
    .bind(versions)
    .bind(payloads)
    .bind(metadata)
    .execute(pool)
    .await
    .unwrap_or_else(|e| panic!("seeding events: {e}"));
    n
}
