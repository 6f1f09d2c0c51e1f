//! Target endpoints: the REST adapter of `polaris_app::targets`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use polaris_app::Caller;
use polaris_app::targets::{self, CreateTarget, GrantTarget, TargetGrant, TargetList, TargetView};

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, IdPath};

/// Register a target (platform admins).
#[utoipa::path(
    post, path = "/v1/targets", operation_id = "targets_create", tag = "targets",
    request_body = CreateTarget,
    responses(
        (status = 201, description = "Registered", body = TargetView),
        (status = 400, description = "Invalid request (a kubeconfig path outside the targets directory)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A target with this name exists", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_target(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTarget>,
) -> Result<(StatusCode, Json<TargetView>), ApiError> {
    Ok((StatusCode::CREATED, Json(targets::create_target(&state.app, &caller, body).await?)))
}

/// Grant an org the use of a target (platform admins).
#[utoipa::path(
    post, path = "/v1/targets/{id}/grants", operation_id = "targets_grant", tag = "targets",
    params(("id" = Uuid, Path, description = "Target id")),
    request_body = GrantTarget,
    responses(
        (status = 201, description = "Granted (a repeat answers the same)", body = TargetGrant),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such target or org", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn grant_target(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<GrantTarget>,
) -> Result<(StatusCode, Json<TargetGrant>), ApiError> {
    Ok((StatusCode::CREATED, Json(targets::grant_target(&state.app, &caller, id, body).await?)))
}

/// List targets: platform admins see every target with its credentials' location; others the targets granted
/// to their org, without it.
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
    Ok(Json(targets::list_targets(&state.app, &caller).await?))
}
