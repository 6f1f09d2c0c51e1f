//! Policy endpoints: the REST adapter of `polaris_app::policies` (reading a bundle from JSON or YAML is HTTP's).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use polaris_app::policies::{self, EvaluateQuery, EvaluateRequest, Evaluation, PolicyBundleView, PolicyRulesDoc};
use polaris_app::{Caller, Role};

use crate::AppState;
use crate::error::{ApiError, AppError, Problem};
use crate::extract::{ApiJson, ApiQuery};
use crate::preconditions::if_match;

/// The org's current policy bundle.
#[utoipa::path(
    get, path = "/v1/policies", operation_id = "policies_get", tag = "policies",
    responses(
        (status = 200, description = "The bundle in force", body = PolicyBundleView),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_policies(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(HeaderMap, Json<PolicyBundleView>), ApiError> {
    let view = policies::get(&state.app, &caller).await?;
    Ok((crate::preconditions::etag(view.version)?, Json(view)))
}

/// Publish a new bundle version (admin). The body is the rules document, as JSON (`application/json`) or YAML
/// (`application/yaml`). `If-Match: "<version>"` makes the publication conditional on the current version.
#[utoipa::path(
    put, path = "/v1/policies", operation_id = "policies_update", tag = "policies",
    params(("If-Match" = Option<String>, Header, description = "The version this one replaces, quoted")),
    request_body(content = PolicyRulesDoc, description = "The rules (also accepted as `application/yaml`)", content_type = "application/json"),
    responses(
        (status = 200, description = "The new version, now in force", body = PolicyBundleView),
        (status = 400, description = "Unreadable or unusable rules", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only admins publish policies", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`VERSION_CONFLICT`: another version was published first", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor YAML", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`IDEMPOTENCY_KEY_REUSED`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn put_policies(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(HeaderMap, Json<PolicyBundleView>), ApiError> {
    caller.require(Role::Admin)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let value: serde_json::Value = match mime.as_str() {
        "application/json" => serde_json::from_slice(&body)
            .map_err(|e| ApiError::validation(format!("the rules are not valid JSON: {e}"), None))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(&body)
            .map_err(|e| ApiError::validation(format!("the rules are not valid YAML: {e}"), None))?,
        _ => {
            return Err(AppError::UnsupportedMediaType(
                "send the rules as application/json or application/yaml".to_owned(),
            )
            .into());
        }
    };
    let view = policies::publish_document(&state.app, &caller, value, if_match(&headers)).await?;
    Ok((crate::preconditions::etag(view.version)?, Json(view)))
}

/// Judge a command without executing it: every violated rule, or none.
#[utoipa::path(
    post, path = "/v1/policies/evaluate", operation_id = "policies_evaluate", tag = "policies",
    params(EvaluateQuery),
    request_body = EvaluateRequest,
    responses(
        (status = 200, description = "The verdict", body = Evaluation),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such bundle version", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`IDEMPOTENCY_KEY_REUSED`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn evaluate(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EvaluateQuery>,
    ApiJson(body): ApiJson<EvaluateRequest>,
) -> Result<(StatusCode, Json<Evaluation>), ApiError> {
    Ok((StatusCode::OK, Json(policies::evaluate(&state.app, &caller, q, body).await?)))
}
