//! An aggregate as it stood at an instant, folded from its events: time travel (`as_of`), and the answer right
//! after a change, before the read model has it.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use uuid::Uuid;

use crate::App;
use crate::caller::Caller;
use crate::error::AppError;

/// Aggregate `id` of the caller's org with every event up to `as_of` applied, and the instants of its first and
/// last of those events; `NotFound(what)` when it had none by then, or belongs to another org.
pub async fn as_of<A: Aggregate>(
    app: &App,
    caller: &Caller,
    id: Uuid,
    as_of: DateTime<Utc>,
    what: &'static str,
) -> Result<(A, DateTime<Utc>, DateTime<Utc>), AppError> {
    let rows = polaris_store::db::events::of_aggregate(&app.pool, A::TYPE, &id.to_string(), None).await?;
    let mut aggregate = A::default();
    let mut span: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    for row in rows {
        let envelope = row.to_envelope().map_err(|e| AppError::Internal(e.to_string()))?;
        if envelope.org_id != caller.org_id.as_uuid() {
            return Err(AppError::NotFound(what));
        }
        if envelope.occurred_at > as_of {
            break;
        }
        let event: A::Event = envelope.decode().map_err(|e| AppError::Internal(e.to_string()))?;
        aggregate.apply(event);
        span = Some((span.map_or(envelope.occurred_at, |(first, _)| first), envelope.occurred_at));
    }
    let (created_at, updated_at) = span.ok_or(AppError::NotFound(what))?;
    Ok((aggregate, created_at, updated_at))
}
