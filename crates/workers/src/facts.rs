//! What a workflow needs to know about a cluster, folded from the event store up to the triggering event.
//! Read from the events themselves (not a read model), so it is exact however far the projector has got.

use polaris_domain::ClusterEvent;
use polaris_domain::cluster::Cluster;
use polaris_store::Pool as PgPool;

use crate::resources::ClusterSpec;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterFacts {
    pub spec: Option<ClusterSpec>,
    pub target_id: Option<uuid::Uuid>,
    pub broker_ids: Vec<i32>,
}

pub async fn load(pool: &PgPool, cluster_id: uuid::Uuid, up_to: u64) -> anyhow::Result<ClusterFacts> {
    let rows = polaris_store::db::events::of_aggregate(pool, "cluster", &cluster_id.to_string(), Some(up_to)).await?;
    // The one fold of a cluster: the aggregate's own `apply`.
    let mut cluster = Cluster::default();
    for row in rows {
        let event: ClusterEvent = row.decode()?;
        polaris_store::cqrs_es::Aggregate::apply(&mut cluster, event);
    }
    Ok(ClusterFacts::of(&cluster))
}

impl ClusterFacts {
    /// What the workflows need of a cluster's state.
    pub fn of(cluster: &Cluster) -> Self {
        let Some(requested) = &cluster.requested else { return ClusterFacts::default() };
        let mut spec = ClusterSpec::from_requested(requested);
        spec.kafka_version = cluster.kafka_version.clone();
        spec.metadata_version = cluster.metadata_version.clone();
        // Once the cluster has run, its broker count is what Strimzi reported, not what was first requested.
        if !cluster.broker_ids.is_empty() {
            spec.brokers = cluster.broker_ids.len() as u32;
        }
        ClusterFacts {
            spec: Some(spec),
            target_id: Some(requested.target_id.as_uuid()),
            broker_ids: cluster.broker_ids.clone(),
        }
    }
}

/// A topic's or Kafka user's current desired state, folded from all its events.
pub async fn current<A: polaris_store::cqrs_es::Aggregate>(pool: &PgPool, id: uuid::Uuid) -> anyhow::Result<A> {
    let rows = polaris_store::db::events::of_aggregate(pool, A::TYPE, &id.to_string(), None).await?;
    let mut aggregate = A::default();
    for row in rows {
        aggregate.apply(row.decode()?);
    }
    Ok(aggregate)
}
