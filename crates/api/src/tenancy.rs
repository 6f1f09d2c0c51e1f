//! Organizations (platform admins) and API tokens (admins of an org). A token's secret is returned once, at
//! creation; only its SHA-256 hash is stored. Revoking a token takes effect on its next request.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use polaris_domain::OrgId;
use polaris_store::db::{self, tenancy::OrgRow, tenancy::TokenRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Caller, Role, new_token_secret, store_token};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, IdPath};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// Unique among orgs.
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length = 63)]
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrgView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<OrgRow> for OrgView {
    fn from(r: OrgRow) -> Self {
        OrgView { id: r.id, name: r.name, created_at: r.created_at }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrgList {
    pub items: Vec<OrgView>,
}

/// A DNS-1123 label of at most 63 characters.
pub(crate) fn dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(crate) fn platform_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.platform_admin { Ok(()) } else { Err(ApiError::Forbidden) }
}

/// Create an organization (platform admins).
#[utoipa::path(
    post, path = "/v1/orgs", operation_id = "orgs_create", tag = "tenancy",
    request_body = CreateOrg,
    responses(
        (status = 201, description = "Created", body = OrgView),
        (status = 409, description = "An org with this name exists", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateOrg>,
) -> Result<(StatusCode, Json<OrgView>), ApiError> {
    platform_admin(&caller)?;
    if !dns_label(&body.name) {
        return Err(ApiError::validation("name must be a DNS-1123 label (a-z, 0-9, '-'; 1 to 63)", Some("name")));
    }
    let mut tx = state.pool.begin().await?;
    crate::audit::claim_key(&mut tx, &caller).await?;
    let org = db::tenancy::create_org(&mut tx, &body.name)
        .await?
        .map(OrgView::from)
        .ok_or_else(|| ApiError::Conflict(format!("an org named {:?} exists", body.name)))?;
    tx.commit().await?;
    caller.note(|d| d.resource = Some(format!("/v1/orgs/{}", org.id)));
    Ok((StatusCode::CREATED, Json(org)))
}

/// List organizations (platform admins).
#[utoipa::path(
    get, path = "/v1/orgs", operation_id = "orgs_list", tag = "tenancy",
    responses((status = 200, description = "Every org", body = OrgList)),
    security(("bearer" = []))
)]
pub async fn list_orgs(State(state): State<AppState>, caller: Caller) -> Result<Json<OrgList>, ApiError> {
    platform_admin(&caller)?;
    let items = db::tenancy::orgs(&state.pool).await?.into_iter().map(OrgView::from).collect();
    Ok(Json(OrgList { items }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for, for people (shown in audit entries as the actor).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,63}$")]
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    #[schema(schema_with = role_schema)]
    pub role: String,
    /// Platform admins only: the org the token belongs to (default: the caller's).
    pub org_id: Option<Uuid>,
}

fn role_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["viewer", "operator", "admin"]))
        .build()
        .into()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenRow> for TokenView {
    fn from(r: TokenRow) -> Self {
        TokenView {
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            role: r.role,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A new token: the only time its secret is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub token: TokenView,
    /// Send as `Authorization: Bearer <secret>`. Not stored; it cannot be shown again, so a replay of the request
    /// (same Idempotency-Key) answers without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenView>,
}

/// Create an API token (admins; a platform admin may name another org).
#[utoipa::path(
    post, path = "/v1/tokens", operation_id = "tokens_create", tag = "tenancy",
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; the secret is in this answer only", body = TokenCreated),
        (status = 404, description = "No such org", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    caller.require(Role::Admin)?;
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::validation("role must be viewer, operator or admin", Some("role")))?;
    let valid_name = (1..=63).contains(&body.name.len())
        && body.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid_name {
        return Err(ApiError::validation("name is 1 to 63 letters, digits, '.', '_' or '-'", Some("name")));
    }
    let org = match body.org_id {
        Some(org) if org != caller.org_id.as_uuid() => {
            platform_admin(&caller)?;
            if !db::tenancy::org_exists(&state.pool, org).await? {
                return Err(ApiError::NotFound("org"));
            }
            OrgId::from_uuid(org)
        }
        _ => caller.org_id,
    };
    let secret = new_token_secret();
    let mut tx = state.pool.begin().await?;
    crate::audit::claim_key(&mut tx, &caller).await?;
    let id = store_token(&mut *tx, org, &body.name, role, false, &secret).await?;
    let token = TokenView::from(db::tenancy::token(&mut tx, id).await?);
    tx.commit().await?;
    caller.note(|d| d.resource = Some(format!("/v1/tokens/{id}")));
    Ok((StatusCode::CREATED, Json(TokenCreated { token, secret: Some(secret) })))
}

/// The org's tokens, without their secrets (admins).
#[utoipa::path(
    get, path = "/v1/tokens", operation_id = "tokens_list", tag = "tenancy",
    responses((status = 200, description = "Tokens, revoked ones included", body = TokenList)),
    security(("bearer" = []))
)]
pub async fn list_tokens(State(state): State<AppState>, caller: Caller) -> Result<Json<TokenList>, ApiError> {
    caller.require(Role::Admin)?;
    let items =
        db::tenancy::tokens(&state.pool, caller.org_id.as_uuid()).await?.into_iter().map(TokenView::from).collect();
    Ok(Json(TokenList { items }))
}

/// Revoke a token of the org (admins). It stops working at once.
#[utoipa::path(
    delete, path = "/v1/tokens/{id}", operation_id = "tokens_delete", tag = "tenancy",
    params(("id" = Uuid, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token in this org", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let mut tx = state.pool.begin().await?;
    crate::audit::claim_key(&mut tx, &caller).await?;
    if !db::tenancy::revoke_token(&mut tx, id, caller.org_id.as_uuid()).await? {
        return Err(ApiError::NotFound("token"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
