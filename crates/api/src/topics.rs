//! Topic endpoints: the REST adapter of `polaris_app::topics`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use polaris_app::Caller;
use polaris_app::clusters::{GetClusterQuery, OperationAccepted};
use polaris_app::dryrun::{DryRunQuery, Plan};
use polaris_app::topics::{
    self, CreateTopicRequest, ListTopicsQuery, PatchTopic, TopicAccepted, TopicChanged, TopicList, TopicRequested,
    TopicUpdateAnswer, TopicUpdated, TopicView,
};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, AppError, Problem};
use crate::extract::{ApiJson, ApiQuery, IdPath};
use crate::preconditions::if_match;

/// Create a topic on a cluster.
#[utoipa::path(
    post, path = "/v1/clusters/{id}/topics", operation_id = "topics_create", tag = "topics",
    params(("id" = Uuid, Path, description = "Cluster id"), DryRunQuery),
    request_body = CreateTopicRequest,
    responses(
        (status = 200, description = "Dry run: what the request would do", body = Plan),
        (status = 202, description = "Accepted; the KafkaTopic is being applied", body = TopicAccepted,
            headers(("Location" = String, description = "The operation to follow"))),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too low", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The topic exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The cluster is not READY", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_topic(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(cluster): IdPath,
    ApiQuery(q): ApiQuery<DryRunQuery>,
    ApiJson(body): ApiJson<CreateTopicRequest>,
) -> Result<Response, ApiError> {
    match topics::create(&state.app, &caller, cluster, body, q.on()).await? {
        TopicRequested::Planned(plan) => Ok((StatusCode::OK, Json(plan)).into_response()),
        TopicRequested::Accepted(accepted) => {
            Ok((StatusCode::ACCEPTED, crate::operations::location(accepted.operation.id)?, Json(accepted))
                .into_response())
        }
    }
}

/// List a cluster's topics.
#[utoipa::path(
    get, path = "/v1/clusters/{id}/topics", operation_id = "topics_list", tag = "topics",
    params(("id" = Uuid, Path, description = "Cluster id"), ListTopicsQuery),
    responses(
        (status = 200, description = "Topics", body = TopicList),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_topics(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(cluster): IdPath,
    ApiQuery(q): ApiQuery<ListTopicsQuery>,
) -> Result<Json<TopicList>, ApiError> {
    Ok(Json(topics::list(&state.app, &caller, cluster, q).await?))
}

/// Get one topic by name.
#[utoipa::path(
    get, path = "/v1/clusters/{id}/topics/{name}", operation_id = "topics_get", tag = "topics",
    params(("id" = Uuid, Path, description = "Cluster id"), ("name" = String, Path, description = "Topic name"),
        GetClusterQuery),
    responses(
        (status = 200, description = "The topic", body = TopicView,
            headers(("ETag" = String, description = "The topic's version, quoted"))),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such topic on a cluster of this org", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_topic(
    State(state): State<AppState>,
    caller: Caller,
    Path((cluster, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<GetClusterQuery>,
) -> Result<(HeaderMap, Json<TopicView>), ApiError> {
    let cluster = cluster_id(&cluster)?;
    let view = topics::get(&state.app, &caller, cluster, &name, q.as_of).await?;
    Ok((crate::preconditions::etag(view.version)?, Json(view)))
}

/// The cluster id in a topic's or user's path: one that is not a UUID names no cluster.
pub(crate) fn cluster_id(raw: &str) -> Result<Uuid, ApiError> {
    Ok(raw.parse().map_err(|_| AppError::NotFound("cluster"))?)
}

/// Change a topic: grow its partitions, replace its config, or set deletion protection.
#[utoipa::path(
    patch, path = "/v1/clusters/{id}/topics/{name}", operation_id = "topics_update", tag = "topics",
    params(("id" = Uuid, Path, description = "Cluster id"), ("name" = String, Path, description = "Topic name"),
        ("If-Match" = Option<String>, Header, description = "The version the change is based on, quoted"),
        DryRunQuery),
    request_body = PatchTopic,
    responses(
        (status = 202, description = "Accepted; the change is being applied", body = TopicChanged),
        (status = 200, description = "Only deletion protection changed (or nothing); or, with `dry_run=true`, the plan", body = TopicUpdateAnswer),
        (status = 404, description = "No such topic on a cluster of this org", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`VERSION_CONFLICT` or `OPERATION_IN_PROGRESS`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`PARTITION_DECREASE_UNSUPPORTED`, `POLICY_VIOLATION` or `INVALID_STATE`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn update_topic(
    State(state): State<AppState>,
    caller: Caller,
    Path((cluster, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<DryRunQuery>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PatchTopic>,
) -> Result<Response, ApiError> {
    let cluster = cluster_id(&cluster)?;
    match topics::update(&state.app, &caller, cluster, &name, body, if_match(&headers), q.on()).await? {
        TopicUpdated::Planned(plan) => Ok((StatusCode::OK, Json(plan)).into_response()),
        TopicUpdated::Changed(changed) => {
            crate::preconditions::changed(changed.topic.version, changed.operation.as_ref().map(|o| o.id), changed)
        }
    }
}

/// Delete a topic (refused while deletion protection is on).
#[utoipa::path(
    delete, path = "/v1/clusters/{id}/topics/{name}", operation_id = "topics_delete", tag = "topics",
    params(("id" = Uuid, Path, description = "Cluster id"), ("name" = String, Path, description = "Topic name"),
        ("If-Match" = Option<String>, Header, description = "The version the change is based on, quoted"),
        DryRunQuery),
    responses(
        (status = 200, description = "Dry run: what the request would do", body = Plan),
        (status = 202, description = "Accepted; the KafkaTopic is being deleted", body = OperationAccepted),
        (status = 404, description = "No such topic on a cluster of this org", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`DELETION_PROTECTED`, `VERSION_CONFLICT` or `OPERATION_IN_PROGRESS`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_topic(
    State(state): State<AppState>,
    caller: Caller,
    Path((cluster, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<DryRunQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cluster = cluster_id(&cluster)?;
    crate::clusters::changed(
        topics::delete(&state.app, &caller, cluster, &name, None, if_match(&headers), q.on()).await?,
    )
}
