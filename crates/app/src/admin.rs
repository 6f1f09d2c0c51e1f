//! Platform operator checks over the whole installation (platform admins only): verify the hash chains of
//! events and audit entries, and rebuild every read model from the events to compare with the live ones, and
//! whether the database answers (readiness).

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::App;
use crate::caller::Caller;
use crate::error::AppError;
use crate::tenancy::platform_admin;

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

/// Verifies the hash chains of events and audit entries (platform admins).
pub async fn verify(app: &App, caller: &Caller) -> Result<VerifyResult, AppError> {
    platform_admin(caller)?;
    let reports = polaris_store::chain::verify(&app.pool).await?;
    let intact = reports.iter().all(|r| r.intact());
    let chains = reports
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(VerifyResult { intact, chains })
}

/// Rebuilds every read model with `runner` and compares it with the live one (platform admins).
pub async fn replay(caller: &Caller, runner: Option<&dyn ReplayRunner>) -> Result<ReplayResult, AppError> {
    platform_admin(caller)?;
    let runner = runner.ok_or_else(|| AppError::Unavailable("replay is not available".into()))?;
    match runner.replay().await {
        Ok(Some((identical, report))) => Ok(ReplayResult { identical, report }),
        Ok(None) => Err(AppError::Busy("a replay is already running; try again when it has finished".into())),
        Err(e) => Err(AppError::Unavailable(e)),
    }
}

/// Whether PostgreSQL answers within `limit`: `Err` says why not.
pub async fn database_ready(app: &App, limit: std::time::Duration) -> Result<(), String> {
    match tokio::time::timeout(limit, polaris_store::db::ping(&app.pool)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}
