//! Operation endpoints: the REST adapter of `polaris_app::operations`.

use axum::Json;
use axum::extract::State;
use polaris_app::Caller;
use polaris_app::operations::{self, ListOperationsQuery, OperationList, OperationView};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, AppError, Problem};
use crate::extract::{ApiQuery, IdPath};

/// `Location: /v1/operations/{id}` for a `202`.
pub fn location(operation_id: Uuid) -> Result<axum::http::HeaderMap, ApiError> {
    let mut headers = axum::http::HeaderMap::new();
    let value = axum::http::HeaderValue::from_str(&format!("/v1/operations/{operation_id}"))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    headers.insert(axum::http::header::LOCATION, value);
    Ok(headers)
}

/// List operations, newest first.
#[utoipa::path(
    get, path = "/v1/operations", operation_id = "operations_list", tag = "operations",
    params(ListOperationsQuery),
    responses(
        (status = 200, description = "Operations", body = OperationList),
        (status = 400, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org (`cluster_id`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_operations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListOperationsQuery>,
) -> Result<Json<OperationList>, ApiError> {
    Ok(Json(operations::list(&state.app, &caller, q).await?))
}

/// Get one operation.
#[utoipa::path(
    get, path = "/v1/operations/{id}", operation_id = "operations_get", tag = "operations",
    params(("id" = Uuid, Path, description = "Operation id")),
    responses(
        (status = 200, description = "The operation", body = OperationView),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such operation in this org", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_operation(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<OperationView>, ApiError> {
    Ok(Json(operations::get(&state.app, &caller, id).await?))
}
