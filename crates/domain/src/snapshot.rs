//! A cluster's state as users see it, folded from its events alone. Used to answer "what did this cluster look
//! like at instant T" (`as_of`): the events up to T are folded here, so the answer comes from history itself,
//! not from a read model that only knows the present.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterEvent, ClusterStatus};

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
    /// Folds events (in sequence order, each with when it occurred). `None` before the cluster was requested.
    pub fn fold<'a>(events: impl IntoIterator<Item = (&'a ClusterEvent, DateTime<Utc>)>) -> Option<Self> {
        let mut snapshot: Option<Self> = None;
        for (event, at) in events {
            match (event, snapshot.as_mut()) {
                (ClusterEvent::ClusterRequested(e), None) => {
                    snapshot = Some(ClusterSnapshot {
                        id: e.cluster_id.as_uuid(),
                        org_id: e.org_id.as_uuid(),
                        name: e.name.to_string(),
                        namespace: e.namespace.clone(),
                        provider: e.provider.to_string(),
                        region: e.region.to_string(),
                        target_id: e.target_id.as_uuid(),
                        kafka_version: e.kafka_version.clone(),
                        metadata_version: e.metadata_version.clone(),
                        brokers: e.brokers,
                        controllers: e.controllers,
                        storage_gib: e.storage_gib,
                        config: e.config.clone(),
                        deletion_protection: e.deletion_protection,
                        status: ClusterStatus::Requested,
                        status_reason: None,
                        version: 1,
                        current_operation_id: Some(e.operation_id.as_uuid()),
                        bootstrap_servers: None,
                        created_at: at,
                        updated_at: at,
                    });
                }
                (_, Some(s)) => {
                    s.version += 1;
                    s.updated_at = at;
                    s.apply(event);
                }
                (_, None) => {}
            }
        }
        snapshot
    }

    fn finish(&mut self, status: ClusterStatus) {
        self.status = status;
        self.current_operation_id = None;
    }

    fn apply(&mut self, event: &ClusterEvent) {
        match event {
            ClusterEvent::ClusterRequested(_) => {}
            ClusterEvent::ClusterProvisioningStarted(_) => self.status = ClusterStatus::Provisioning,
            ClusterEvent::StrimziResourcesApplied(_) => {}
            ClusterEvent::ClusterReady(e) => {
                self.brokers = e.broker_ids.len() as u32;
                self.bootstrap_servers = Some(e.bootstrap_servers.clone());
                self.status_reason = None;
                self.finish(ClusterStatus::Ready);
            }
            ClusterEvent::ClusterStalled(e) => {
                self.status_reason = Some(e.reason.clone());
                self.finish(ClusterStatus::Stalled);
            }
            ClusterEvent::OperationFailed(e) => {
                self.status_reason = Some(e.reason.clone());
                self.finish(ClusterStatus::Failed);
            }
            ClusterEvent::ClusterScaleRequested(e) => {
                self.status = ClusterStatus::Scaling;
                self.status_reason = None;
                self.current_operation_id = Some(e.operation_id.as_uuid());
            }
            ClusterEvent::BrokersAdded(e) => self.brokers = e.broker_ids.len() as u32,
            ClusterEvent::RebalanceCompleted(e) => {
                if e.mode == "add-brokers" {
                    self.finish(ClusterStatus::Ready);
                }
            }
            ClusterEvent::BrokersRemoved(e) => {
                self.brokers = e.broker_ids.len() as u32;
                self.finish(ClusterStatus::Ready);
            }
            ClusterEvent::ClusterUpgradeRequested(e) => {
                self.status = ClusterStatus::Upgrading;
                self.status_reason = None;
                self.current_operation_id = Some(e.operation_id.as_uuid());
            }
            ClusterEvent::KafkaVersionRolled(e) => self.kafka_version = e.kafka_version.clone(),
            ClusterEvent::MetadataVersionBumped(e) => {
                self.metadata_version = e.metadata_version.clone();
                self.finish(ClusterStatus::Ready);
            }
            ClusterEvent::ClusterDeletionRequested(e) => {
                self.status = ClusterStatus::Deleting;
                self.status_reason = None;
                self.current_operation_id = Some(e.operation_id.as_uuid());
            }
            ClusterEvent::ClusterDeleted(_) => {
                self.bootstrap_servers = None;
                self.finish(ClusterStatus::Deleted);
            }
            ClusterEvent::DeletionProtectionChanged(e) => self.deletion_protection = e.enabled,
        }
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
