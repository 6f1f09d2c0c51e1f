//! Targets (the Kubernetes clusters Polaris places Kafka clusters on) and the grants that let an org use them.

use polaris_domain::{OrgId, Provider, Region, TargetId};
use sqlx::PgPool;
use uuid::Uuid;

/// One row of `targets`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TargetRow {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    pub region: String,
    pub kube_context: Option<String>,
    /// Relative to the targets directory.
    pub kubeconfig: Option<String>,
    /// `namespace/name` of a Secret.
    pub kubeconfig_secret: Option<String>,
    pub status: String,
}

const TARGET_COLUMNS: &str = "id, name, provider, region, kube_context, kubeconfig, kubeconfig_secret, status";

/// Where a target's credentials are.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub kube_context: Option<String>,
    /// Relative to the targets directory.
    pub kubeconfig: Option<String>,
    /// `namespace/name` of a Secret.
    pub secret: Option<String>,
}

/// Where a target's credentials are; `None` for an unknown target.
pub async fn credentials(pool: &PgPool, target: Uuid) -> Result<Option<Credentials>, sqlx::Error> {
    let row: Option<(Option<String>, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT kubeconfig, kube_context, kubeconfig_secret FROM targets WHERE id = $1")
            .bind(target)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(kubeconfig, kube_context, secret)| Credentials { kube_context, kubeconfig, secret }))
}

/// The org's target for a provider and region, if one is granted to it (the oldest, when several are).
pub async fn place(pool: &PgPool, org: OrgId, provider: &str, region: &str) -> Result<Option<TargetId>, sqlx::Error> {
    let row: Option<(Uuid,)> = sqlx::query_as(
        "SELECT t.id FROM targets t JOIN target_grants g ON g.target_id = t.id \
         WHERE g.org_id = $1 AND t.provider = $2 AND t.region = $3 AND t.status = 'active' \
         ORDER BY t.created_at, t.id LIMIT 1",
    )
    .bind(org.as_uuid())
    .bind(provider)
    .bind(region)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id,)| TargetId::from_uuid(id)))
}

/// Stores a platform target; `None` when one with this name exists.
pub async fn register(
    conn: impl sqlx::PgExecutor<'_>,
    name: &str,
    provider: Provider,
    region: &Region,
    credentials: Credentials,
) -> Result<Option<TargetRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO targets (id, org_id, name, provider, region, kube_context, kubeconfig, kubeconfig_secret) \
         VALUES ($1, NULL, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING {TARGET_COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(name)
    .bind(provider.as_str())
    .bind(region.as_str())
    .bind(credentials.kube_context)
    .bind(credentials.kubeconfig)
    .bind(credentials.secret)
    .fetch_optional(conn)
    .await
}

/// Grants `org` the use of a target (a repeat changes nothing). False when the target or the org does not exist.
pub async fn grant(conn: &mut sqlx::PgConnection, target: Uuid, org: Uuid, by: &str) -> Result<bool, sqlx::Error> {
    let granted = sqlx::query(
        "INSERT INTO target_grants (target_id, org_id, granted_by) \
         SELECT t.id, o.id, $3 FROM targets t, orgs o WHERE t.id = $1 AND o.id = $2 ON CONFLICT DO NOTHING",
    )
    .bind(target)
    .bind(org)
    .bind(by)
    .execute(&mut *conn)
    .await?;
    if granted.rows_affected() > 0 {
        return Ok(true);
    }
    let (exists,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM target_grants WHERE target_id = $1 AND org_id = $2)")
            .bind(target)
            .bind(org)
            .fetch_one(&mut *conn)
            .await?;
    Ok(exists)
}

/// The platform target named `name`, if any.
pub async fn by_name(pool: &PgPool, name: &str) -> Result<Option<TargetRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {TARGET_COLUMNS} FROM targets WHERE name = $1 AND org_id IS NULL"))
        .bind(name)
        .fetch_optional(pool)
        .await
}

/// Every target (`org` `None`), or the targets granted to `org`, by provider, region and name.
pub async fn list(pool: &PgPool, org: Option<Uuid>) -> Result<Vec<TargetRow>, sqlx::Error> {
    let columns = TARGET_COLUMNS.split(", ").map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", ");
    match org {
        None => {
            sqlx::query_as(&format!("SELECT {columns} FROM targets t ORDER BY t.provider, t.region, t.name"))
                .fetch_all(pool)
                .await
        }
        Some(org) => {
            sqlx::query_as(&format!(
                "SELECT {columns} FROM targets t JOIN target_grants g ON g.target_id = t.id WHERE g.org_id = $1 \
                 ORDER BY t.provider, t.region, t.name"
            ))
            .bind(org)
            .fetch_all(pool)
            .await
        }
    }
}
