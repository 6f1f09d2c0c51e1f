//! Targets: the Kubernetes clusters an org deploys into. Placement puts a cluster on the org's target for its
//! `(provider, region)`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use polaris_domain::{OrgId, Provider, Region, TargetId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;

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
    /// Path of the kubeconfig file on the workers' machines.
    #[schema(pattern = "^[ -~]{1,4096}$")]
    pub kubeconfig: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct TargetView {
    pub id: Uuid,
    pub name: String,
    pub provider: String,
    pub region: String,
    pub kube_context: Option<String>,
    pub kubeconfig: Option<String>,
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TargetList {
    pub items: Vec<TargetView>,
}

/// The org's target for a provider and region, if any.
pub async fn place(
    pool: &sqlx::PgPool,
    org: OrgId,
    provider: &str,
    region: &str,
) -> Result<Option<TargetId>, sqlx::Error> {
    let row: Option<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM targets WHERE org_id = $1 AND provider = $2 AND region = $3 AND status = 'active'",
    )
    .bind(org.as_uuid())
    .bind(provider)
    .bind(region)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id,)| TargetId::from_uuid(id)))
}

/// Register a target (admin).
#[utoipa::path(
    post, path = "/v1/targets", operation_id = "targets_create", tag = "targets",
    request_body = CreateTarget,
    responses(
        (status = 201, description = "Registered", body = TargetView),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A target with this name or provider and region exists", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_target(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTarget>,
) -> Result<(StatusCode, Json<TargetView>), ApiError> {
    caller.require(Role::Admin)?;
    let provider = Provider::parse(&body.provider).ok_or_else(|| {
        ApiError::validation(
            format!("provider {:?} is not one of aws, gcp, azure, onprem", body.provider),
            Some("provider"),
        )
    })?;
    let region =
        Region::parse(&body.region).map_err(|e| ApiError::validation(format!("region: {e}"), Some("region")))?;
    let name = body.name.as_str();
    if !crate::tenancy::dns_label(name) {
        return Err(ApiError::validation("name must be a DNS-1123 label (a-z, 0-9, '-'; 1 to 63)", Some("name")));
    }
    let printable = |s: &Option<String>| {
        s.as_deref().is_none_or(|s| (1..=4096).contains(&s.len()) && s.chars().all(|c| (' '..='~').contains(&c)))
    };
    if !printable(&body.kube_context) || !printable(&body.kubeconfig) {
        return Err(ApiError::validation("kube_context and kubeconfig are 1 to 4096 printable ASCII characters", None));
    }
    let target = register(&state.pool, caller.org_id, name, provider, &region, body.kube_context, body.kubeconfig)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!("a target named {name:?} or serving {provider}/{region} already exists"))
        })?;
    Ok((StatusCode::CREATED, Json(target)))
}

/// Stores a target; `None` when the org already has one with this name or `(provider, region)`.
pub async fn register(
    pool: &sqlx::PgPool,
    org: OrgId,
    name: &str,
    provider: Provider,
    region: &Region,
    kube_context: Option<String>,
    kubeconfig: Option<String>,
) -> Result<Option<TargetView>, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO targets (id, org_id, name, provider, region, kube_context, kubeconfig) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING \
         RETURNING id, name, provider, region, kube_context, kubeconfig, status",
    )
    .bind(Uuid::new_v4())
    .bind(org.as_uuid())
    .bind(name)
    .bind(provider.as_str())
    .bind(region.as_str())
    .bind(kube_context)
    .bind(kubeconfig)
    .fetch_optional(pool)
    .await
}

/// List the org's targets.
#[utoipa::path(
    get, path = "/v1/targets", operation_id = "targets_list", tag = "targets",
    responses(
        (status = 200, description = "Targets", body = TargetList),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_targets(State(state): State<AppState>, caller: Caller) -> Result<Json<TargetList>, ApiError> {
    let items: Vec<TargetView> = sqlx::query_as(
        "SELECT id, name, provider, region, kube_context, kubeconfig, status FROM targets WHERE org_id = $1 \
         ORDER BY provider, region",
    )
    .bind(caller.org_id.as_uuid())
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(TargetList { items }))
}
