//! A cluster's state as users see it, folded from its events alone by the Cluster aggregate's own `apply` (the
//! one fold of a cluster). Used to answer "what did this cluster look like at instant T" (`as_of`): the events up
//! to T are folded, so the answer comes from history itself, not from a read model that only knows the present.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cqrs_es::Aggregate;

use crate::cluster::{Cluster, ClusterEvent, ClusterStatus};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    pub id: uuid::Uuid,
    pub org_id: uuid::Uuid,
    pub name: String,
    pub namespace: String,
    pub provider: String,
    pub region: String,
    pub target_id: uuid::Uuid,
    pub kafka_version: String,
    pub metadata_version: String,
    pub brokers: u32,
    pub controllers: u32,
    pub storage_gib: u32,
    pub config: BTreeMap<String, String>,
    pub deletion_protection: bool,
    pub status: ClusterStatus,
    pub status_reason: Option<String>,
    pub version: u64,
    pub current_operation_id: Option<uuid::Uuid>,
    pub bootstrap_servers: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ClusterSnapshot {
    /// Folds events (in sequence order, each with when it occurred) with the Cluster aggregate's own `apply`.
    /// `None` before the cluster was requested.
    pub fn fold<'a>(events: impl IntoIterator<Item = (&'a ClusterEvent, DateTime<Utc>)>) -> Option<Self> {
        let mut cluster = Cluster::default();
        let mut times: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
        for (event, at) in events {
            if cluster.requested.is_none() && !matches!(event, ClusterEvent::ClusterRequested(_)) {
                continue;
            }
            cluster.apply(event.clone());
            times = Some((times.map_or(at, |(created, _)| created), at));
        }
        let (created_at, updated_at) = times?;
        Self::of(cluster, created_at, updated_at)
    }

    /// The aggregate's state as users see it; `None` before the cluster was requested.
    pub fn of(cluster: Cluster, created_at: DateTime<Utc>, updated_at: DateTime<Utc>) -> Option<Self> {
        let r = cluster.requested?;
        Some(ClusterSnapshot {
            id: r.cluster_id.as_uuid(),
            org_id: r.org_id.as_uuid(),
            name: r.name.to_string(),
            namespace: r.namespace,
            provider: r.provider.to_string(),
            region: r.region.to_string(),
            target_id: r.target_id.as_uuid(),
            kafka_version: cluster.kafka_version,
            metadata_version: cluster.metadata_version,
            brokers: cluster.brokers,
            controllers: r.controllers,
            storage_gib: r.storage_gib,
            config: r.config,
            deletion_protection: cluster.deletion_protection,
            status: cluster.status,
            status_reason: cluster.status_reason,
            version: cluster.version,
            current_operation_id: cluster.current_operation.map(|o| o.as_uuid()),
            bootstrap_servers: cluster.bootstrap_servers,
            created_at,
            updated_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{BrokersAdded, ClusterScaleRequested};
    use crate::ids::OperationId;

    #[test]
    fn folding_up_to_an_instant_gives_the_state_then() {
        let requested: ClusterEvent = serde_json::from_value(serde_json::json!({"ClusterRequested": {
            "cluster_id": uuid::Uuid::from_u128(1), "org_id": uuid::Uuid::from_u128(2),
            "operation_id": uuid::Uuid::from_u128(3), "target_id": uuid::Uuid::from_u128(4), "name": "orders",
            "provider": "aws", "region": "eu-west-1", "kafka_version": "4.3.1", "metadata_version": "4.3",
            "brokers": 3, "controllers": 3, "storage_gib": 100, "config": {}, "deletion_protection": false,
            "requested_by": "u", "requested_at": "2026-11-26T10:00:00Z", "namespace": "polaris-orders-00000000"
        }}))
        .unwrap();
        let op = OperationId::from_uuid(uuid::Uuid::from_u128(9));
        let scale = ClusterEvent::ClusterScaleRequested(ClusterScaleRequested {
            operation_id: op,
            from: 3,
            to: 5,
            requested_by: "u".into(),
        });
        let added = ClusterEvent::BrokersAdded(BrokersAdded {
            operation_id: op,
            node_ids: vec![6, 7],
            broker_ids: vec![3, 4, 5, 6, 7],
        });
        let t =
            |m: u32| DateTime::parse_from_rfc3339(&format!("2026-11-26T10:{m:02}:00Z")).unwrap().with_timezone(&Utc);
        let history = [(&requested, t(0)), (&scale, t(5)), (&added, t(6))];
        let before = ClusterSnapshot::fold(history.iter().copied().filter(|(_, at)| *at <= t(4))).unwrap();
        assert_eq!((before.brokers, before.status, before.version), (3, ClusterStatus::Requested, 1));
        let after = ClusterSnapshot::fold(history.iter().copied()).unwrap();
        assert_eq!((after.brokers, after.status, after.version), (5, ClusterStatus::Scaling, 3));
        assert!(ClusterSnapshot::fold(history.iter().copied().filter(|(_, at)| *at < t(0))).is_none());
    }
}
