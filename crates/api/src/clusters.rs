//! Cluster endpoints: the REST adapter of `polaris_app::clusters`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use polaris_app::Caller;
use polaris_app::clusters::{
    self, BrokerList, Changed, ClusterAccepted, ClusterList, ClusterView, CreateCluster, GetClusterQuery, History,
    ListClustersQuery, OperationAccepted, PatchCluster, Requested, ScaleCluster, UpgradeCluster,
};
use polaris_app::dryrun::{DryRunQuery, Plan};
use polaris_app::kafka_metrics::{self, ClusterMetrics, MetricsQuery};

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, IdPath};
use crate::preconditions::if_match;

/// Request a cluster.
///
/// Validates the request, records `ClusterRequested` and returns at once with the provisioning operation
/// to follow; the cluster is built asynchronously.
#[utoipa::path(
    post, path = "/v1/clusters", operation_id = "clusters_create", tag = "clusters",
    params(DryRunQuery),
    request_body = CreateCluster,
    responses(
        (status = 200, description = "Dry run: what the request would do", body = Plan),
        (status = 202, description = "Accepted; provisioning starts", body = ClusterAccepted,
            headers(("Location" = String, description = "The operation to follow"))),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too low", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No target serves the provider and region (`NO_TARGET`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DryRunQuery>,
    ApiJson(body): ApiJson<CreateCluster>,
) -> Result<Response, ApiError> {
    match clusters::request(&state.app, &caller, body, q.on()).await? {
        Requested::Planned(plan) => Ok((StatusCode::OK, Json(plan)).into_response()),
        Requested::Accepted(accepted) => {
            Ok((StatusCode::ACCEPTED, crate::operations::location(accepted.operation.id)?, Json(accepted))
                .into_response())
        }
    }
}

/// List the org's clusters, oldest first.
#[utoipa::path(
    get, path = "/v1/clusters", operation_id = "clusters_list", tag = "clusters",
    params(ListClustersQuery),
    responses(
        (status = 200, description = "A page of clusters", body = ClusterList),
        (status = 400, description = "Invalid filter or page", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_clusters(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListClustersQuery>,
) -> Result<Json<ClusterList>, ApiError> {
    Ok(Json(clusters::list(&state.app, &caller, q).await?))
}

/// Get one cluster, now or (with `as_of`) at any past instant.
#[utoipa::path(
    get, path = "/v1/clusters/{id}", operation_id = "clusters_get", tag = "clusters",
    params(("id" = Uuid, Path, description = "Cluster id"), GetClusterQuery),
    responses(
        (status = 200, description = "The cluster", body = ClusterView,
            headers(("ETag" = String, description = "The cluster's version, quoted"))),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "`as_of` is not an RFC 3339 instant", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org (or not yet at `as_of`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_cluster(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<GetClusterQuery>,
) -> Result<(HeaderMap, Json<ClusterView>), ApiError> {
    let view = clusters::get(&state.app, &caller, id, q.as_of).await?;
    Ok((crate::preconditions::etag(view.version)?, Json(view)))
}

/// Scale the broker count.
///
/// Scaling up raises the broker pool, then rebalances partitions onto the new brokers (`add-brokers`).
/// Scaling down first moves partitions off the brokers to remove (`remove-brokers`), and lowers the pool only
/// once they are empty; never below the largest topic replication factor.
#[utoipa::path(
    post, path = "/v1/clusters/{id}/scale", operation_id = "clusters_scale", tag = "clusters",
    params(("id" = Uuid, Path, description = "Cluster id"),
        ("If-Match" = Option<String>, Header, description = "The version the change is based on, quoted"),
        DryRunQuery),
    request_body = ScaleCluster,
    responses(
        (status = 200, description = "Dry run: what the request would do", body = Plan),
        (status = 202, description = "Accepted", body = OperationAccepted),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too low", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`VERSION_CONFLICT` or `OPERATION_IN_PROGRESS`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not possible in the cluster's state", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn scale_cluster(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<DryRunQuery>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ScaleCluster>,
) -> Result<Response, ApiError> {
    changed(clusters::scale(&state.app, &caller, id, body, if_match(&headers), q.on()).await?)
}

/// A change's answer: `202` with the operation to follow, or `200` with a dry run's plan.
pub(crate) fn changed(answer: Changed) -> Result<Response, ApiError> {
    match answer {
        Changed::Planned(plan) => Ok((StatusCode::OK, Json(plan)).into_response()),
        Changed::Accepted(accepted) => {
            Ok((StatusCode::ACCEPTED, crate::operations::location(accepted.operation.id)?, Json(accepted))
                .into_response())
        }
    }
}

/// Upgrade Kafka: roll the brokers to the new version, then raise the metadata version as its own step.
#[utoipa::path(
    post, path = "/v1/clusters/{id}/upgrade", operation_id = "clusters_upgrade", tag = "clusters",
    params(("id" = Uuid, Path, description = "Cluster id"),
        ("If-Match" = Option<String>, Header, description = "The version the change is based on, quoted"),
        DryRunQuery),
    request_body = UpgradeCluster,
    responses(
        (status = 200, description = "Dry run: what the request would do", body = Plan),
        (status = 202, description = "Accepted", body = OperationAccepted),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too low", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`VERSION_CONFLICT` or `OPERATION_IN_PROGRESS`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not possible in the cluster's state", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn upgrade_cluster(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<DryRunQuery>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpgradeCluster>,
) -> Result<Response, ApiError> {
    changed(clusters::upgrade(&state.app, &caller, id, body, if_match(&headers), q.on()).await?)
}

/// Delete a cluster: its topics, the Kafka resource and node pools, then its namespace. The history stays.
#[utoipa::path(
    delete, path = "/v1/clusters/{id}", operation_id = "clusters_delete", tag = "clusters",
    params(("id" = Uuid, Path, description = "Cluster id"),
        ("If-Match" = Option<String>, Header, description = "The version the change is based on, quoted"),
        DryRunQuery),
    responses(
        (status = 200, description = "Dry run: what the request would do", body = Plan),
        (status = 202, description = "Accepted", body = OperationAccepted),
        (status = 400, description = "Invalid If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too low", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`VERSION_CONFLICT`, `OPERATION_IN_PROGRESS` or `DELETION_PROTECTED`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not possible in the cluster's state", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_cluster(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<DryRunQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    changed(clusters::delete(&state.app, &caller, id, None, if_match(&headers), q.on()).await?)
}

/// Change a cluster's settings: deletion protection.
#[utoipa::path(
    patch, path = "/v1/clusters/{id}", operation_id = "clusters_update", tag = "clusters",
    params(("id" = Uuid, Path, description = "Cluster id"),
        ("If-Match" = Option<String>, Header, description = "The version the change is based on, quoted")),
    request_body = PatchCluster,
    responses(
        (status = 200, description = "The cluster after the change", body = ClusterView),
        (status = 422, description = "`NOT_SUPPORTED` (config), `POLICY_VIOLATION` (deletion protection required)", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too low", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`VERSION_CONFLICT`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn patch_cluster(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PatchCluster>,
) -> Result<(HeaderMap, Json<ClusterView>), ApiError> {
    let view = clusters::patch(&state.app, &caller, id, body, if_match(&headers)).await?;
    Ok((crate::preconditions::etag(view.version)?, Json(view)))
}

/// A cluster's events, oldest first, from the event store itself (not a read model), so the history of a
/// deleted cluster stays readable.
#[utoipa::path(
    get, path = "/v1/clusters/{id}/history", operation_id = "clusters_history", tag = "clusters",
    params(("id" = Uuid, Path, description = "Cluster id")),
    responses(
        (status = 200, description = "The cluster's events, oldest first", body = History),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cluster_history(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<History>, ApiError> {
    Ok(Json(clusters::history(&state.app, &caller, id).await?))
}

/// A cluster's nodes by Kafka node id.
#[utoipa::path(
    get, path = "/v1/clusters/{id}/brokers", operation_id = "clusters_brokers", tag = "clusters",
    params(("id" = Uuid, Path, description = "Cluster id")),
    responses(
        (status = 200, description = "Brokers and controllers", body = BrokerList),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Dependency unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cluster_brokers(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<BrokerList>, ApiError> {
    Ok(Json(clusters::brokers(&state.app, &caller, id).await?))
}

/// The cluster page's charts: the panels of the managed-cluster Grafana dashboard (under-replicated partitions,
/// bytes in and out per broker, produce latency p99, active controllers) for this cluster, from the configured
/// Prometheus.
#[utoipa::path(
    get, path = "/v1/clusters/{id}/metrics", operation_id = "clusters_metrics", tag = "clusters",
    params(("id" = Uuid, Path, description = "Cluster id"), MetricsQuery),
    responses(
        (status = 200, description = "One chart per dashboard panel, a series per broker", body = ClusterMetrics),
        (status = 400, description = "Invalid window", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster in this org", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Prometheus unreachable or not configured", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cluster_metrics(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<MetricsQuery>,
) -> Result<Json<ClusterMetrics>, ApiError> {
    Ok(Json(kafka_metrics::cluster_metrics(&state.app, &caller, id, q).await?))
}
