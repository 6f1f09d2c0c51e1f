//! Kafka user endpoints: the REST adapter of `polaris_app::users`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use polaris_app::Caller;
use polaris_app::clusters::{GetClusterQuery, OperationAccepted};
use polaris_app::dryrun::{DryRunQuery, Plan};
use polaris_app::users::{
    self, CreateUserRequest, CredentialsRotated, ListUsersQuery, PatchUser, RotateCredentialsRequest, UserAccepted,
    UserChanged, UserList, UserRequested, UserRotated, UserUpdated, UserView,
};

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, IdPath};
use crate::preconditions::if_match;
use crate::topics::cluster_id;

/// Create a Kafka user on a cluster. The answer carries its password, this once.
#[utoipa::path(
    post, path = "/v1/clusters/{id}/users", operation_id = "users_create", tag = "users",
    params(("id" = Uuid, Path, description = "Cluster id"), DryRunQuery),
    request_body = CreateUserRequest,
    responses(
        (status = 200, description = "Dry run: what the request would do", body = Plan),
        (status = 202, description = "Accepted; the Secret and KafkaUser are being applied. `credentials` holds the \
            password this once; a repeat with the same Idempotency-Key answers `credentials: null, \
            credentials_shown: false`", body = UserAccepted,
            headers(("Location" = String, description = "The operation to follow"))),
        (status = 400, description = "Invalid request (an ACL operation the resource type does not have names its field)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too low", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The user exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`POLICY_VIOLATION`, `INVALID_STATE` (the cluster is not READY) or `UNSUPPORTED_AUTHENTICATION` (tls)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable, or no credentials key configured", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(cluster): IdPath,
    ApiQuery(q): ApiQuery<DryRunQuery>,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<Response, ApiError> {
    match users::create(&state.app, &caller, cluster, body, q.on()).await? {
        UserRequested::Planned(plan) => Ok((StatusCode::OK, Json(plan)).into_response()),
        UserRequested::Accepted(accepted) => {
            Ok((StatusCode::ACCEPTED, crate::operations::location(accepted.operation.id)?, Json(accepted))
                .into_response())
        }
    }
}

/// List a cluster's Kafka users.
#[utoipa::path(
    get, path = "/v1/clusters/{id}/users", operation_id = "users_list", tag = "users",
    params(("id" = Uuid, Path, description = "Cluster id"), ListUsersQuery),
    responses(
        (status = 200, description = "Users (never their passwords)", body = UserList),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(cluster): IdPath,
    ApiQuery(q): ApiQuery<ListUsersQuery>,
) -> Result<Json<UserList>, ApiError> {
    Ok(Json(users::list(&state.app, &caller, cluster, q).await?))
}

/// Get one Kafka user by name (never its password).
#[utoipa::path(
    get, path = "/v1/clusters/{id}/users/{name}", operation_id = "users_get", tag = "users",
    params(("id" = Uuid, Path, description = "Cluster id"), ("name" = String, Path, description = "User name"),
        GetClusterQuery),
    responses(
        (status = 200, description = "The user", body = UserView,
            headers(("ETag" = String, description = "The user's version, quoted"))),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user on a cluster of this org", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path((cluster, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<GetClusterQuery>,
) -> Result<(HeaderMap, Json<UserView>), ApiError> {
    let view = users::get(&state.app, &caller, cluster_id(&cluster)?, &name, q.as_of).await?;
    Ok((crate::preconditions::etag(view.version)?, Json(view)))
}

/// Change a Kafka user: replace its ACL rules and/or its quotas.
#[utoipa::path(
    patch, path = "/v1/clusters/{id}/users/{name}", operation_id = "users_update", tag = "users",
    params(("id" = Uuid, Path, description = "Cluster id"), ("name" = String, Path, description = "User name"),
        ("If-Match" = Option<String>, Header, description = "The version the change is based on, quoted"),
        DryRunQuery),
    request_body = PatchUser,
    responses(
        (status = 202, description = "Accepted; the KafkaUser is being applied", body = UserChanged),
        (status = 200, description = "Nothing changed; or, with `dry_run=true`, the plan", body = UserChanged),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user on a cluster of this org", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`VERSION_CONFLICT` or `OPERATION_IN_PROGRESS`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`POLICY_VIOLATION` or `INVALID_STATE`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path((cluster, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<DryRunQuery>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PatchUser>,
) -> Result<Response, ApiError> {
    let cluster = cluster_id(&cluster)?;
    match users::update(&state.app, &caller, cluster, &name, body, if_match(&headers), q.on()).await? {
        UserUpdated::Planned(plan) => Ok((StatusCode::OK, Json(plan)).into_response()),
        UserUpdated::Changed(changed) => {
            crate::preconditions::changed(changed.user.version, changed.operation.as_ref().map(|o| o.id), changed)
        }
    }
}

/// New credentials for a Kafka user, answered this once; the old password stops working when the operation
/// succeeds.
#[utoipa::path(
    post, path = "/v1/clusters/{id}/users/{name}/rotate", operation_id = "users_rotate", tag = "users",
    params(("id" = Uuid, Path, description = "Cluster id"), ("name" = String, Path, description = "User name"),
        ("If-Match" = Option<String>, Header, description = "The version the rotation is based on, quoted"),
        DryRunQuery),
    responses(
        (status = 200, description = "Dry run: what the request would do", body = Plan),
        (status = 202, description = "Accepted; the new password is being applied. A repeat with the same \
            Idempotency-Key answers `credentials: null, credentials_shown: false`", body = CredentialsRotated,
            headers(("Location" = String, description = "The operation to follow"))),
        (status = 404, description = "No such user on a cluster of this org", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`VERSION_CONFLICT` or `OPERATION_IN_PROGRESS`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable, or no credentials key configured", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn rotate_user(
    State(state): State<AppState>,
    caller: Caller,
    Path((cluster, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<DryRunQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cluster = cluster_id(&cluster)?;
    // No body: the version the rotation is based on comes in `If-Match`.
    let body = RotateCredentialsRequest::default();
    match users::rotate(&state.app, &caller, cluster, &name, body, if_match(&headers), q.on()).await? {
        UserRotated::Planned(plan) => Ok((StatusCode::OK, Json(plan)).into_response()),
        UserRotated::Rotated(rotated) => {
            Ok((StatusCode::ACCEPTED, crate::operations::location(rotated.operation.id)?, Json(rotated))
                .into_response())
        }
    }
}

/// Delete a Kafka user: its KafkaUser, then its Secret; its credentials stop working.
#[utoipa::path(
    delete, path = "/v1/clusters/{id}/users/{name}", operation_id = "users_delete", tag = "users",
    params(("id" = Uuid, Path, description = "Cluster id"), ("name" = String, Path, description = "User name"),
        ("If-Match" = Option<String>, Header, description = "The version the change is based on, quoted"),
        DryRunQuery),
    responses(
        (status = 200, description = "Dry run: what the request would do", body = Plan),
        (status = 202, description = "Accepted; the KafkaUser is being deleted", body = OperationAccepted),
        (status = 404, description = "No such user on a cluster of this org", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`VERSION_CONFLICT` or `OPERATION_IN_PROGRESS`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path((cluster, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<DryRunQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cluster = cluster_id(&cluster)?;
    crate::clusters::changed(
        users::delete(&state.app, &caller, cluster, &name, None, if_match(&headers), q.on()).await?,
    )
}
