//! Organizations (platform admins) and API tokens (admins of an org). A token's secret is returned once, at
//! creation; only its SHA-256 hash is stored. Revoking a token takes effect on its next request.

use chrono::{DateTime, Utc};
use polaris_domain::OrgId;
use polaris_store::db::{self, tenancy::OrgRow, tenancy::TokenRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::App;
use crate::caller::{Caller, Role, new_token_secret, store_token};
use crate::error::AppError;

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
pub fn dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn platform_admin(caller: &Caller) -> Result<(), AppError> {
    if caller.platform_admin { Ok(()) } else { Err(AppError::Forbidden) }
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

/// Create an organization (platform admins).
pub async fn create_org(app: &App, caller: &Caller, body: CreateOrg) -> Result<OrgView, AppError> {
    platform_admin(caller)?;
    if !dns_label(&body.name) {
        return Err(AppError::validation("name must be a DNS-1123 label (a-z, 0-9, '-'; 1 to 63)", Some("name")));
    }
    let mut tx = app.pool.begin().await?;
    crate::audit::claim_key(&mut tx, caller).await?;
    let org = db::tenancy::create_org(&mut tx, &body.name)
        .await?
        .map(OrgView::from)
        .ok_or_else(|| AppError::Conflict(format!("an org named {:?} exists", body.name)))?;
    tx.commit().await?;
    caller.note(|d| d.resource = Some(format!("/v1/orgs/{}", org.id)));
    Ok(org)
}

/// List organizations (platform admins).
pub async fn list_orgs(app: &App, caller: &Caller) -> Result<OrgList, AppError> {
    platform_admin(caller)?;
    let items = db::tenancy::orgs(&app.pool).await?.into_iter().map(OrgView::from).collect();
    Ok(OrgList { items })
}

/// Create an API token (admins; a platform admin may name another org).
pub async fn create_token(app: &App, caller: &Caller, body: CreateToken) -> Result<TokenCreated, AppError> {
    caller.require(Role::Admin)?;
    let role = Role::parse(&body.role)
        .ok_or_else(|| AppError::validation("role must be viewer, operator or admin", Some("role")))?;
    let valid_name = (1..=63).contains(&body.name.len())
        && body.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid_name {
        return Err(AppError::validation("name is 1 to 63 letters, digits, '.', '_' or '-'", Some("name")));
    }
    let org = match body.org_id {
        Some(org) if org != caller.org_id.as_uuid() => {
            platform_admin(caller)?;
            if !db::tenancy::org_exists(&app.pool, org).await? {
                return Err(AppError::NotFound("org"));
            }
            OrgId::from_uuid(org)
        }
        _ => caller.org_id,
    };
    let secret = new_token_secret();
    let mut tx = app.pool.begin().await?;
    crate::audit::claim_key(&mut tx, caller).await?;
    let id = store_token(&mut *tx, org, &body.name, role, false, &secret).await?;
    let token = TokenView::from(db::tenancy::token(&mut tx, id).await?);
    tx.commit().await?;
    caller.note(|d| d.resource = Some(format!("/v1/tokens/{id}")));
    Ok(TokenCreated { token, secret: Some(secret) })
}

/// The org's tokens, without their secrets (admins).
pub async fn list_tokens(app: &App, caller: &Caller) -> Result<TokenList, AppError> {
    caller.require(Role::Admin)?;
    let items =
        db::tenancy::tokens(&app.pool, caller.org_id.as_uuid()).await?.into_iter().map(TokenView::from).collect();
    Ok(TokenList { items })
}

/// Revoke a token of the org (admins). It stops working at once in this process, and within
/// [`crate::caller::BearerCache::TTL`] in another.
pub async fn revoke_token(app: &App, caller: &Caller, id: Uuid) -> Result<(), AppError> {
    caller.require(Role::Admin)?;
    let mut tx = app.pool.begin().await?;
    crate::audit::claim_key(&mut tx, caller).await?;
    if !db::tenancy::revoke_token(&mut tx, id, caller.org_id.as_uuid()).await? {
        return Err(AppError::NotFound("token"));
    }
    tx.commit().await?;
    crate::caller::bearers_changed();
    Ok(())
}
