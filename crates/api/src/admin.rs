//! Platform operator checks over the whole installation (platform admins only): verify the hash chains of
//! events and audit entries, and rebuild every read model from the events to compare with the live ones. The
//! same checks as `polaris-server admin verify|replay`, for the `polaris admin` CLI: the REST adapter of
//! `polaris_app::admin`.

use axum::Json;
use axum::extract::State;
pub use polaris_app::admin::{ReplayOutcome, ReplayResult, ReplayRunner, VerifyResult};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Problem};

/// Verify the hash chains of events and audit entries.
#[utoipa::path(
    post, path = "/v1/admin/verify", operation_id = "admin_verify", tag = "admin",
    responses(
        (status = 200, description = "The chains' reports; `intact` is false when anything was altered or removed", body = VerifyResult),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform admin", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn verify(State(state): State<AppState>, caller: Caller) -> Result<Json<VerifyResult>, ApiError> {
    Ok(Json(polaris_app::admin::verify(&state.app, &caller).await?))
}

/// Rebuild every read model from the events into a scratch schema and compare it with the live one.
#[utoipa::path(
    post, path = "/v1/admin/replay", operation_id = "admin_replay", tag = "admin",
    responses(
        (status = 200, description = "The comparison; `identical` is false when a read model differs (the scratch schema is kept)", body = ReplayResult),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A replay is already running", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn replay(State(state): State<AppState>, caller: Caller) -> Result<Json<ReplayResult>, ApiError> {
    Ok(Json(polaris_app::admin::replay(&caller, state.replay.as_deref()).await?))
}
