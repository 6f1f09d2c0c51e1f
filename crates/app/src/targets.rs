//! Targets: the Kubernetes clusters Polaris deploys into. They are platform infrastructure: only platform admins
//! register them, from credentials the platform installed (a kubeconfig path relative to the server's targets
//! directory, or a Kubernetes Secret reference; never an arbitrary file on the workers' machines), and grant
//! orgs their use. Placement puts a cluster on a target granted to its org for its `(provider, region)`. Org
//! callers see their granted targets without the credentials' locations.

use polaris_domain::{OrgId, Provider, Region, TargetId};
use polaris_store::db::{self, targets::TargetRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::App;
use crate::caller::{Caller, Role};
use crate::error::AppError;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTarget {
    #[schema(example = "aws-eu-west-1", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length = 63)]
    pub name: String,
    #[schema(example = "aws", schema_with = crate::schema::provider)]
    pub provider: String,
    #[schema(example = "eu-west-1", pattern = "^[a-z0-9-]*[a-z0-9-]$", max_length = 63)]
    pub region: String,
    /// The kubeconfig context to use; the file's current context when absent.
    #[schema(pattern = "^[ -~]{1,4096}$")]
    pub kube_context: Option<String>,
    /// Path of the kubeconfig file relative to the server's targets directory (`POLARIS_TARGETS_DIR`); absolute
    /// paths and `..` are refused. Give this or `kubeconfig_secret`.
    #[schema(
        example = "aws-eu-west-1.kubeconfig",
        max_length = 4096,
        pattern = "^([ -\\-0-~][ -.0-~]*|\\.[ -\\-0-~][ -.0-~]*|\\.\\.[ -.0-~]+)(/([ -\\-0-~][ -.0-~]*|\\.[ -\\-0-~][ -.0-~]*|\\.\\.[ -.0-~]+))*$"
    )]
    pub kubeconfig: Option<String>,
    /// `namespace/name` of a Kubernetes Secret (key `kubeconfig`) the workers read with their own credentials.
    #[schema(
        example = "polaris/target-aws-eu-west-1",
        pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/[a-z0-9.-]{1,253}$"
    )]
    pub kubeconfig_secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TargetView {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    pub region: String,
    /// Platform admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_context: Option<String>,
    /// Platform admins only: where the credentials are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// Platform admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret: Option<String>,
    pub status: String,
}

impl From<TargetRow> for TargetView {
    fn from(r: TargetRow) -> Self {
        TargetView {
            id: r.id,
            name: r.name,
            provider: r.provider,
            region: r.region,
            kube_context: r.kube_context,
            kubeconfig: r.kubeconfig,
            kubeconfig_secret: r.kubeconfig_secret,
            status: r.status,
        }
    }
}

impl TargetView {
    /// What an org caller may see: the target, not where its credentials are.
    fn for_org(self) -> Self {
        TargetView { kube_context: None, kubeconfig: None, kubeconfig_secret: None, ..self }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TargetList {
    pub items: Vec<TargetView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantTarget {
    /// The org that may place clusters on the target.
    pub org_id: Uuid,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TargetGrant {
    pub target_id: Uuid,
    pub org_id: Uuid,
}

fn require_platform_admin(caller: &Caller) -> Result<(), AppError> {
    if caller.platform_admin {
        Ok(())
    } else {
        Err(AppError::NotPermitted(
            "targets are platform infrastructure: only a platform admin registers them and grants orgs their use"
                .to_owned(),
        ))
    }
}

/// A kubeconfig path as registered: relative to the targets directory, never leaving it. Segments of printable
/// ASCII between single slashes, none of them `.` or `..` (the OpenAPI pattern says the same).
pub fn valid_kubeconfig_path(path: &str) -> bool {
    path.chars().all(|c| (' '..='~').contains(&c))
        && path.split('/').all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

fn valid_secret_ref(s: &str) -> bool {
    let Some((ns, name)) = s.split_once('/') else { return false };
    crate::tenancy::dns_label(ns)
        && (1..=253).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// Register a target (platform admins).
pub async fn create_target(app: &App, caller: &Caller, body: CreateTarget) -> Result<TargetView, AppError> {
    caller.require(Role::Admin)?;
    require_platform_admin(caller)?;
    let provider = Provider::parse(&body.provider).ok_or_else(|| {
        AppError::validation(
            format!("provider {:?} is not one of aws, gcp, azure, onprem", body.provider),
            Some("provider"),
        )
    })?;
    let region =
        Region::parse(&body.region).map_err(|e| AppError::validation(format!("region: {e}"), Some("region")))?;
    let name = body.name.as_str();
    if !crate::tenancy::dns_label(name) {
        return Err(AppError::validation("name must be a DNS-1123 label (a-z, 0-9, '-'; 1 to 63)", Some("name")));
    }
    let printable = |s: &Option<String>| {
        s.as_deref().is_none_or(|s| (1..=4096).contains(&s.len()) && s.chars().all(|c| (' '..='~').contains(&c)))
    };
    if !printable(&body.kube_context) {
        return Err(AppError::validation("kube_context is 1 to 4096 printable ASCII characters", Some("kube_context")));
    }
    match (&body.kubeconfig, &body.kubeconfig_secret) {
        (Some(path), None) if path.len() <= 4096 && valid_kubeconfig_path(path) => {}
        (Some(_), None) => {
            return Err(AppError::validation(
                "kubeconfig must be a path relative to the server's targets directory (POLARIS_TARGETS_DIR), \
                 without '..' or a leading '/'",
                Some("kubeconfig"),
            ));
        }
        (None, Some(secret)) if valid_secret_ref(secret) => {}
        (None, Some(_)) => {
            return Err(AppError::validation(
                "kubeconfig_secret must be `namespace/name` of a Kubernetes Secret",
                Some("kubeconfig_secret"),
            ));
        }
        _ => {
            return Err(AppError::validation(
                "give exactly one of kubeconfig (a path in the targets directory) and kubeconfig_secret",
                Some("kubeconfig"),
            ));
        }
    }
    let mut tx = app.pool.begin().await?;
    crate::audit::claim_key(&mut tx, caller).await?;
    let target = db::targets::register(
        &mut *tx,
        name,
        provider,
        &region,
        db::targets::Credentials {
            kube_context: body.kube_context,
            kubeconfig: body.kubeconfig,
            secret: body.kubeconfig_secret,
        },
    )
    .await?
    .ok_or_else(|| AppError::Conflict(format!("a target named {name:?} already exists")))?;
    tx.commit().await?;
    crate::caller::bearers_changed();
    Ok(TargetView::from(target))
}

/// Grant an org the use of a target (platform admins).
pub async fn grant_target(app: &App, caller: &Caller, id: Uuid, body: GrantTarget) -> Result<TargetGrant, AppError> {
    require_platform_admin(caller)?;
    let mut tx = app.pool.begin().await?;
    crate::audit::claim_key(&mut tx, caller).await?;
    if !db::targets::grant(&mut tx, id, body.org_id, &caller.actor()).await? {
        return Err(AppError::NotFound("target or org"));
    }
    tx.commit().await?;
    crate::caller::bearers_changed();
    Ok(TargetGrant { target_id: id, org_id: body.org_id })
}

/// List targets: platform admins see every target with its credentials' location; others the targets granted
/// to their org, without it.
pub async fn list_targets(app: &App, caller: &Caller) -> Result<TargetList, AppError> {
    let items: Vec<TargetView> = if caller.platform_admin {
        db::targets::list(&app.pool, None).await?.into_iter().map(TargetView::from).collect()
    } else {
        let rows = db::targets::list(&app.pool, Some(caller.org_id.as_uuid())).await?;
        rows.into_iter().map(|r| TargetView::from(r).for_org()).collect()
    };
    Ok(TargetList { items })
}

/// The target that serves an org's provider and region, by (org, provider, region, placement epoch): the epoch
/// moves with every change to a target or a grant, so an entry is never stale.
#[derive(Default)]
pub struct PlacementCache(crate::cache::VersionedCache<(OrgId, String, String, i64), Option<TargetId>>);

impl PlacementCache {
    /// The caller's org's target for `provider` and `region` (`None`: no granted target serves them).
    pub async fn place(
        &self,
        pool: &polaris_store::Pool,
        caller: &Caller,
        provider: &str,
        region: &str,
    ) -> Result<Option<TargetId>, AppError> {
        let key = (caller.org_id, provider.to_owned(), region.to_owned(), caller.placement_epoch);
        let read = async { Ok(polaris_store::db::targets::place(pool, caller.org_id, provider, region).await?) };
        self.0.get_or_read(key, read).await
    }
}

#[cfg(test)]
mod tests {
    use super::valid_kubeconfig_path;

    #[test]
    fn a_kubeconfig_path_stays_inside_the_targets_directory() {
        for ok in ["aws.kubeconfig", "eu/aws.kubeconfig", "...", ".hidden", "a..b/c"] {
            assert!(valid_kubeconfig_path(ok), "{ok}");
        }
        for bad in ["", ".", "..", "/etc/passwd", "../x", "a/../b", "a//b", "a/", "./a", "caf\u{e9}"] {
            assert!(!valid_kubeconfig_path(bad), "{bad}");
        }
    }
}
