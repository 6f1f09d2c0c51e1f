//! Drift endpoints: the REST adapter of `polaris_app::drift`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use polaris_app::Caller;
use polaris_app::drift::{self, DriftList, DriftResolutionAnswer, ListDriftQuery, ResolveDrift, Resolved};

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, IdPath};
use crate::topics::cluster_id;

/// A cluster's drift: where its objects on the target differ from what its events say, open ones first.
#[utoipa::path(
    get, path = "/v1/clusters/{id}/drift", operation_id = "drift_list", tag = "drift",
    params(("id" = Uuid, Path, description = "Cluster id"), ListDriftQuery),
    responses(
        (status = 200, description = "Open and past drift of the cluster's resources", body = DriftList),
        (status = 400, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_drift(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(cluster): IdPath,
    ApiQuery(q): ApiQuery<ListDriftQuery>,
) -> Result<Json<DriftList>, ApiError> {
    Ok(Json(drift::list(&state.app, &caller, cluster, q).await?))
}

/// Resolve an open drift: revert it (re-apply the recorded state), adopt the live value (recorded as the
/// resource's own event, judged by the policy), or ignore it with a reason.
#[utoipa::path(
    post, path = "/v1/clusters/{id}/drift/{drift_id}/resolve", operation_id = "drift_resolve", tag = "drift",
    params(("id" = Uuid, Path, description = "Cluster id"), ("drift_id" = Uuid, Path, description = "Drift id")),
    request_body = ResolveDrift,
    responses(
        (status = 200, description = "Ignored, on record", body = DriftResolutionAnswer),
        (status = 202, description = "Reverting, or adopted: the operation to follow", body = DriftResolutionAnswer,
            headers(("Location" = String, description = "The operation to follow"))),
        (status = 400, description = "Invalid request (ignoring needs a reason)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too low", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org, or no such drift", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The adopted change lost a race (`VERSION_CONFLICT`, `OPERATION_IN_PROGRESS`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`POLICY_VIOLATION` (the live value breaks the org's policy), `NOT_ADOPTABLE`, \
            `UNEXPLAINED_OBJECT` (nothing to revert to), `INVALID_STATE` (not open, or already reverting)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn resolve_drift(
    State(state): State<AppState>,
    caller: Caller,
    Path((cluster, drift_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ResolveDrift>,
) -> Result<Response, ApiError> {
    let cluster = cluster_id(&cluster)?;
    let drift_id = drift_id.parse().map_err(|_| polaris_app::AppError::NotFound("drift"))?;
    match drift::resolve(&state.app, &caller, cluster, drift_id, body).await? {
        Resolved::Done(answer) => Ok((StatusCode::OK, Json(answer)).into_response()),
        Resolved::Accepted(answer) => match answer.operation.as_ref().map(|o| o.id) {
            Some(op) => Ok((StatusCode::ACCEPTED, crate::operations::location(op)?, Json(answer)).into_response()),
            None => Ok((StatusCode::ACCEPTED, Json(answer)).into_response()),
        },
    }
}
