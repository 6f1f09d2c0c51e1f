//! Executing an aggregate's command, and what a failure means to the caller, written once for every aggregate:
//! each aggregate's own refusals map to problems through its `From<..> for AppError`; a race lost to a
//! concurrent command is `ALREADY_EXISTS` for a create (the aggregate exists now) and otherwise a
//! `VERSION_CONFLICT` naming the version that won; an invariant the append's transaction refused, an unreachable
//! database or anything else map the same way for clusters and topics.

use std::collections::HashMap;

use cqrs_es::{Aggregate, AggregateError, CqrsFramework, EventStore};

use crate::error::AppError;

/// Executes `command` on aggregate `id` with `metadata`. `expected` is the version the caller said it saw, if
/// any; `Some(0)` for a create.
pub async fn execute<A, ES>(
    cqrs: &CqrsFramework<A, ES>,
    pool: &polaris_store::Pool,
    id: &str,
    command: A::Command,
    metadata: HashMap<String, String>,
    expected: Option<u64>,
) -> Result<(), AppError>
where
    A: Aggregate,
    A::Error: Into<AppError>,
    ES: EventStore<A>,
{
    match cqrs.execute_with_metadata(id, command, metadata).await {
        Ok(()) => Ok(()),
        Err(AggregateError::AggregateConflict) if expected == Some(0) => {
            Err(AppError::Conflict(format!("the {} was created by a concurrent request", A::TYPE)))
        }
        Err(AggregateError::AggregateConflict) => {
            let current = polaris_store::db::events::head_sequence(pool, A::TYPE, id).await?.max(0) as u64;
            Err(AppError::VersionConflict { expected: expected.unwrap_or(current.saturating_sub(1)), current })
        }
        Err(e) => Err(aggregate_error(e)),
    }
}

/// A command's failure as a problem.
pub fn aggregate_error<E: Into<AppError> + std::error::Error>(e: AggregateError<E>) -> AppError {
    match e {
        AggregateError::UserError(e) => e.into(),
        AggregateError::AggregateConflict => AppError::Conflict("changed while the command ran; retry".to_owned()),
        AggregateError::DatabaseConnectionError(e) => AppError::Unavailable(e.to_string()),
        AggregateError::UnexpectedError(e) => match e.downcast_ref::<polaris_store::InvariantViolation>() {
            Some(v) => invariant_error(v),
            None => AppError::Internal(e.to_string()),
        },
        other => AppError::Internal(other.to_string()),
    }
}

/// An invariant the append's own transaction refused (nothing was recorded).
pub fn invariant_error(v: &polaris_store::InvariantViolation) -> AppError {
    match v {
        polaris_store::InvariantViolation::ClusterNameTaken { .. } => {
            AppError::Conflict("a cluster with this name already exists in this org".to_owned())
        }
        polaris_store::InvariantViolation::NamespaceTaken { .. } => {
            AppError::Conflict("the cluster's namespace already belongs to another cluster on its target".to_owned())
        }
    }
}
