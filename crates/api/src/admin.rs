//! Platform operator checks over the whole installation (platform admins only): verify the hash chains of
//! events and audit entries, and rebuild every read model from the events to compare with the live ones. The
//! same checks as `polaris-server admin verify|replay`, for the `polaris admin` CLI.

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, AppError, Problem};
use polaris_app::tenancy::platform_admin;

/// What a replay answers: `Ok(None)` when one is already running; otherwise whether the rebuild is identical,
/// and its report.
pub type ReplayOutcome<'a> =
    Pin<Box<dyn Future<Output = Result<Option<(bool, serde_json::Value)>, String>> + Send + 'a>>;

/// Rebuilds the read models from the events (the server supplies it: the projector's own code does the work).
pub trait ReplayRunner: Send + Sync {
    fn replay(&self) -> ReplayOutcome<'_>;
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyResult {
    /// Every chain is intact.
    pub intact: bool,
    /// One report per chain (`events`, `audit`): rows checked, rows not sealed yet, the head, the problems.
    #[schema(value_type = Vec<Object>)]
    pub chains: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayResult {
    /// The rebuilt read models equal the live ones.
    pub identical: bool,
    /// Events applied, rate, per-table checksums and the clusters that differ.
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}

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
    platform_admin(&caller)?;
    let reports = polaris_store::chain::verify(&state.app.pool).await?;
    let intact = reports.iter().all(|r| r.intact());
    let chains = reports
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError(AppError::Internal(e.to_string())))?;
    Ok(Json(VerifyResult { intact, chains }))
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
    platform_admin(&caller)?;
    let runner =
        state.replay.as_ref().ok_or_else(|| ApiError(AppError::Unavailable("replay is not available".into())))?;
    match runner.replay().await {
        Ok(Some((identical, report))) => Ok(Json(ReplayResult { identical, report })),
        Ok(None) => Err(ApiError(AppError::Busy("a replay is already running; try again when it has finished".into()))),
        Err(e) => Err(ApiError(AppError::Unavailable(e))),
    }
}
