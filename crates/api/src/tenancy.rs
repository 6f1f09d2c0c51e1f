//! Org and token endpoints: the REST adapter of `polaris_app::tenancy`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use polaris_app::Caller;
use polaris_app::tenancy::{self, CreateOrg, CreateToken, OrgList, OrgView, TokenCreated, TokenList};

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, IdPath};

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
    Ok((StatusCode::CREATED, Json(tenancy::create_org(&state.app, &caller, body).await?)))
}

/// List organizations (platform admins).
#[utoipa::path(
    get, path = "/v1/orgs", operation_id = "orgs_list", tag = "tenancy",
    responses((status = 200, description = "Every org", body = OrgList)),
    security(("bearer" = []))
)]
pub async fn list_orgs(State(state): State<AppState>, caller: Caller) -> Result<Json<OrgList>, ApiError> {
    Ok(Json(tenancy::list_orgs(&state.app, &caller).await?))
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
    Ok((StatusCode::CREATED, Json(tenancy::create_token(&state.app, &caller, body).await?)))
}

/// The org's tokens, without their secrets (admins).
#[utoipa::path(
    get, path = "/v1/tokens", operation_id = "tokens_list", tag = "tenancy",
    responses((status = 200, description = "Tokens, revoked ones included", body = TokenList)),
    security(("bearer" = []))
)]
pub async fn list_tokens(State(state): State<AppState>, caller: Caller) -> Result<Json<TokenList>, ApiError> {
    Ok(Json(tenancy::list_tokens(&state.app, &caller).await?))
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
    tenancy::revoke_token(&state.app, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
