//! The `clusters` and `brokers` read models as the API reads them (a cluster through `clusters_shown`, which
//! composes its status with its open drift): one row type and its columns, the org's list
//! in creation order, one cluster, its nodes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// One row of `clusters`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClusterRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub namespace: String,
    pub provider: String,
    pub region: String,
    pub target_id: Option<Uuid>,
    pub kafka_version: String,
    pub metadata_version: String,
    pub brokers: i32,
    pub controllers: i32,
    pub storage_gib: i32,
    pub config: sqlx::types::Json<BTreeMap<String, String>>,
    pub deletion_protection: bool,
    pub status: String,
    pub status_reason: Option<String>,
    pub version: i64,
    pub current_operation_id: Option<Uuid>,
    pub bootstrap_servers: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Open drifts of the cluster's objects (a READY cluster with any is shown DEGRADED).
    pub open_drifts: i32,
}

const COLUMNS: &str = "id, org_id, name, namespace, provider, region, target_id, kafka_version, metadata_version, \
     brokers, controllers, storage_gib, config, deletion_protection, status, status_reason, version, \
     current_operation_id, bootstrap_servers, created_at, updated_at, open_drifts";

/// What an org's cluster list is narrowed to; `None` matches everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClusterFilter<'a> {
    pub status: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub region: Option<&'a str>,
}

/// Up to `limit` of the org's clusters in `(created_at, id)` order, after `after`.
pub async fn list(
    pool: &PgPool,
    org: Uuid,
    filter: ClusterFilter<'_>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ClusterRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM clusters_shown WHERE org_id = $1 \
           AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR provider = $3) \
           AND ($4::text IS NULL OR region = $4) \
           AND ($5::timestamptz IS NULL OR (created_at, id) > ($5, $6)) \
         ORDER BY created_at, id LIMIT $7"
    );
    sqlx::query_as(&sql)
        .bind(org)
        .bind(filter.status)
        .bind(filter.provider)
        .bind(filter.region)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// One cluster of the org, as the read model has it.
pub async fn get(pool: &PgPool, org: Uuid, id: Uuid) -> Result<Option<ClusterRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM clusters_shown WHERE id = $1 AND org_id = $2");
    sqlx::query_as(&sql).bind(id).bind(org).fetch_optional(pool).await
}

/// One row of `brokers`: a node of a cluster.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct NodeRow {
    /// The Kafka node id.
    pub id: i32,
    /// `broker` or `controller`.
    pub role: String,
    pub status: String,
}

/// A cluster's nodes by node id.
pub async fn nodes(pool: &PgPool, cluster: Uuid) -> Result<Vec<NodeRow>, sqlx::Error> {
    sqlx::query_as("SELECT node_id AS id, role, status FROM brokers WHERE cluster_id = $1 ORDER BY node_id")
        .bind(cluster)
        .fetch_all(pool)
        .await
}
