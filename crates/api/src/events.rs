//! The event feed endpoint: the REST adapter of `polaris_app::events`.

use axum::Json;
use axum::extract::State;
use polaris_app::Caller;
use polaris_app::events::{self, EventPage, EventQuery};

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;

/// The org's events in commit order.
#[utoipa::path(
    get, path = "/v1/events", operation_id = "events_list", tag = "events",
    params(EventQuery),
    responses(
        (status = 200, description = "Events in commit order, and where to continue", body = EventPage),
        (status = 400, description = "Invalid filter or page token", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org (`cluster_id`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<EventPage>, ApiError> {
    Ok(Json(events::list(&state.app, &caller, q).await?))
}
