//! Topic endpoints. A topic is requested on a READY cluster of the caller's org; the topic workflow applies
//! its KafkaTopic and reports it Ready.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use polaris_domain::policy::Subject;
use polaris_domain::topic::{CreateTopic, Topic, TopicCommand, TopicError, TopicEvent, UpdateTopic, topic_id};
use polaris_domain::{ClusterId, OperationId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use polaris_store::db::{self, topics::TopicRow};

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::dryrun::{DryRunQuery, Plan};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, IdPath};
use crate::operations::OperationView;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopicRequest {
    /// A Kafka topic name (letters, digits, `.`, `_`, `-`).
    #[schema(
        example = "orders.events",
        pattern = "^([a-zA-Z0-9_-][a-zA-Z0-9._-]{0,248}|\\.[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,247}|\\.\\.[a-zA-Z0-9._-]{1,247})$"
    )]
    pub name: String,
    #[schema(example = 6, minimum = 1, maximum = 10000)]
    pub partitions: u32,
    /// At most the cluster's broker count (`422 REPLICATION_FACTOR_ABOVE_BROKERS` otherwise).
    #[schema(example = 3, minimum = 1, maximum = 100)]
    pub replication_factor: u32,
    #[schema(schema_with = crate::schema::config)]
    pub config: Option<BTreeMap<String, String>>,
    pub deletion_protection: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopicView {
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    pub config: BTreeMap<String, String>,
    pub deletion_protection: bool,
    /// REQUESTED, READY, UPDATING, DELETING, DELETED, STALLED, FAILED.
    pub status: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopicAccepted {
    pub topic: TopicView,
    pub operation: OperationView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopicList {
    pub items: Vec<TopicView>,
    /// Pass as `page_token` to get the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

impl From<TopicRow> for TopicView {
    fn from(r: TopicRow) -> Self {
        TopicView {
            id: r.id,
            cluster_id: r.cluster_id,
            name: r.name,
            partitions: r.partitions.max(0) as u32,
            replication_factor: r.replication_factor.max(0) as u32,
            config: r.config.0,
            deletion_protection: r.deletion_protection,
            status: r.status,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The cluster's status and broker count, if it is the caller's.
/// The cluster's status, broker count and name, if it is the caller's.
async fn cluster_of(state: &AppState, caller: &Caller, id: Uuid) -> Result<(String, i32, String), ApiError> {
    let c = crate::clusters::current(state, caller, id).await?;
    Ok((c.status, c.brokers as i32, c.namespace))
}

/// What each of the Topic aggregate's refusals means to the caller.
impl From<TopicError> for ApiError {
    fn from(e: TopicError) -> Self {
        match e {
            e @ TopicError::AlreadyExists(_) => ApiError::Conflict(e.to_string()),
            e @ TopicError::PartitionDecrease { .. } => ApiError::Unprocessable {
                code: "PARTITION_DECREASE_UNSUPPORTED",
                detail: format!("{e}; Kafka cannot remove partitions (create a new topic instead)"),
                field: Some("partitions".into()),
            },
            TopicError::VersionConflict { expected, current } => ApiError::VersionConflict { expected, current },
            TopicError::OperationInProgress { operation_id } => ApiError::OperationInProgress(operation_id.as_uuid()),
            TopicError::DeletionProtected => ApiError::DeletionProtected,
            TopicError::NotFound => ApiError::NotFound("topic"),
            e @ TopicError::ReplicationFactorAboveBrokers { .. } => ApiError::Unprocessable {
                code: "REPLICATION_FACTOR_ABOVE_BROKERS",
                detail: e.to_string(),
                field: Some("replication_factor".into()),
            },
            e @ TopicError::Deleting => {
                ApiError::Unprocessable { code: "INVALID_STATE", detail: e.to_string(), field: None }
            }
            e => ApiError::validation(e.to_string(), e.field()),
        }
    }
}

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
    caller.require(Role::Operator)?;
    let (status, brokers, cluster_namespace) = cluster_of(&state, &caller, cluster).await?;
    let policy_version = crate::policies::judge(
        &state,
        &caller,
        &Subject::Topic {
            name: &body.name,
            partitions: Some(body.partitions),
            replication_factor: Some(body.replication_factor),
            config: body.config.as_ref(),
            cluster_brokers: Some(brokers.max(0) as u32),
        },
    )
    .await?;
    if status != "READY" {
        return Err(ApiError::Unprocessable {
            code: "INVALID_STATE",
            detail: format!("the cluster is {status}; topics can be created on READY clusters"),
            field: None,
        });
    }
    let cluster_id = ClusterId::from_uuid(cluster);
    let id = topic_id(cluster_id, &body.name);
    let topic_name = body.name.clone();
    let operation_id = OperationId::from_uuid(Uuid::new_v4());
    let metadata = caller.command_metadata(Some(operation_id), Some(policy_version));
    let now = metadata.occurred_at;
    let command = TopicCommand::Create(CreateTopic {
        cluster_id,
        org_id: caller.org_id,
        operation_id,
        name: body.name,
        partitions: body.partitions,
        replication_factor: body.replication_factor,
        config: body.config.unwrap_or_default(),
        deletion_protection: body.deletion_protection.unwrap_or(false),
        cluster_brokers: brokers.max(0) as u32,
        requested_by: caller.actor(),
        requested_at: now,
    });
    if q.on() {
        return plan(&state, &caller, &cluster_namespace, id, &topic_name, command, Some(policy_version)).await;
    }
    // A create expects the topic to have no events yet: a create that loses a race finds it existing.
    let metadata_map = caller.metadata_map(&metadata);
    crate::command::execute(&state.topics, &state.pool, &id.to_string(), command, metadata_map, Some(0)).await?;
    let requested = db::events::of_aggregate(&state.pool, "topic", &id.to_string(), Some(1)).await?;
    let e = match requested.first().map(|r| r.decode::<TopicEvent>()) {
        Some(Ok(TopicEvent::TopicRequested(e))) => e,
        other => return Err(ApiError::Internal(format!("expected TopicRequested, found {other:?}"))),
    };
    let topic = TopicView {
        id,
        cluster_id: cluster,
        name: e.name.as_str().to_owned(),
        partitions: e.partitions,
        replication_factor: e.replication_factor,
        config: e.config,
        deletion_protection: e.deletion_protection,
        status: "REQUESTED".into(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let operation =
        OperationView::pending(operation_id.as_uuid(), "topic_apply", cluster, Some(id), caller.actor(), now);
    Ok((StatusCode::ACCEPTED, crate::operations::location(operation.id)?, Json(TopicAccepted { topic, operation }))
        .into_response())
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
    cluster_of(&state, &caller, cluster).await?;
    let page_size = crate::paging::page_size(q.page_size)?;
    // The cursor is the last name of the previous page.
    let after = crate::paging::cursor(q.page_token.as_deref(), polaris_store::CursorKind::Name)?.map(|c| c.encode());
    let mut rows = db::topics::list(&state.pool, cluster, after.as_deref(), i64::from(page_size) + 1).await?;
    let next_page_token =
        crate::paging::next_token(&mut rows, page_size, |r| polaris_store::Cursor::Name(r.name.clone()));
    Ok(Json(TopicList { items: rows.into_iter().map(TopicView::from).collect(), next_page_token }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListTopicsQuery {
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
    /// From the previous page's `next_page_token`.
    #[param(pattern = "^[a-zA-Z0-9._-]{1,249}$")]
    pub page_token: Option<String>,
}

/// Get one topic by name.
#[utoipa::path(
    get, path = "/v1/clusters/{id}/topics/{name}", operation_id = "topics_get", tag = "topics",
    params(("id" = Uuid, Path, description = "Cluster id"), ("name" = String, Path, description = "Topic name"),
        crate::clusters::GetClusterQuery),
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
    ApiQuery(q): ApiQuery<crate::clusters::GetClusterQuery>,
) -> Result<(HeaderMap, Json<TopicView>), ApiError> {
    let cluster: Uuid = cluster.parse().map_err(|_| ApiError::NotFound("cluster"))?;
    cluster_of(&state, &caller, cluster).await?;
    if let Some(as_of) = q.as_of {
        let view = topic_as_of(&state, &caller, cluster, &name, as_of).await?;
        return Ok((crate::preconditions::etag(view.version)?, Json(view)));
    }
    let row = db::topics::get(&state.pool, cluster, &name).await?;
    // Read your own writes: a read model behind the topic's last event answers from the events instead.
    let id = topic_id(ClusterId::from_uuid(cluster), &name).to_string();
    let head = db::events::head_sequence(&state.pool, "topic", &id).await?;
    let view = match row {
        Some(row) if row.version >= head => TopicView::from(row),
        _ => topic_as_of(&state, &caller, cluster, &name, Utc::now()).await?,
    };
    Ok((crate::preconditions::etag(view.version)?, Json(view)))
}

/// A topic's state at an instant, folded from its events (time travel, and the answer right after a change).
async fn topic_as_of(
    state: &AppState,
    caller: &Caller,
    cluster: Uuid,
    name: &str,
    as_of: DateTime<Utc>,
) -> Result<TopicView, ApiError> {
    let id = topic_id(ClusterId::from_uuid(cluster), name);
    let rows = polaris_store::db::events::of_aggregate(&state.pool, "topic", &id.to_string(), None).await?;
    let mut topic = Topic::default();
    let (mut created_at, mut updated_at) = (None, None);
    for row in rows {
        let envelope = row.to_envelope().map_err(|e| ApiError::Internal(e.to_string()))?;
        if envelope.org_id != caller.org_id.as_uuid() {
            return Err(ApiError::NotFound("topic"));
        }
        if envelope.occurred_at > as_of {
            break;
        }
        let event: TopicEvent = envelope.decode().map_err(|e| ApiError::Internal(e.to_string()))?;
        cqrs_es::Aggregate::apply(&mut topic, event);
        created_at.get_or_insert(envelope.occurred_at);
        updated_at = Some(envelope.occurred_at);
    }
    let (Some(name), Some(created_at), Some(updated_at)) = (topic.name.clone(), created_at, updated_at) else {
        return Err(ApiError::NotFound("topic"));
    };
    Ok(TopicView {
        id,
        cluster_id: cluster,
        name: name.as_str().to_owned(),
        partitions: topic.partitions,
        replication_factor: topic.replication_factor,
        config: topic.config.clone(),
        deletion_protection: topic.deletion_protection,
        status: topic.status().to_owned(),
        version: topic.version as i64,
        created_at,
        updated_at,
    })
}

/// A change to a topic. Partitions only grow; `config` replaces the topic's whole config.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTopic {
    #[schema(minimum = 1, maximum = 10000)]
    pub partitions: Option<u32>,
    #[schema(schema_with = crate::schema::config)]
    pub config: Option<BTreeMap<String, String>>,
    pub deletion_protection: Option<bool>,
    /// The version the change is based on; same as `If-Match`.
    pub expected_version: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopicChanged {
    pub topic: TopicView,
    /// The operation applying the change to the KafkaTopic; absent when only deletion protection changed.
    pub operation: Option<OperationView>,
}

/// The `200` answers of a topic change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TopicUpdateAnswer {
    Changed(Box<TopicChanged>),
    Plan(Plan),
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
    caller.require(Role::Operator)?;
    let cluster: Uuid = cluster.parse().map_err(|_| ApiError::NotFound("cluster"))?;
    let (_, brokers, cluster_namespace) = cluster_of(&state, &caller, cluster).await?;
    let expected_version = crate::preconditions::expected_version(&headers, body.expected_version)?;
    let policy_version = if body.partitions.is_some() || body.config.is_some() {
        let subject = Subject::Topic {
            name: &name,
            partitions: body.partitions,
            replication_factor: None,
            config: body.config.as_ref(),
            cluster_brokers: Some(brokers.max(0) as u32),
        };
        crate::policies::judge(&state, &caller, &subject).await?
    } else {
        crate::policies::version_in_force(&state, &caller).await?
    };
    let id = topic_id(ClusterId::from_uuid(cluster), &name);
    let operation_id = OperationId::from_uuid(Uuid::new_v4());
    let metadata = caller.command_metadata(Some(operation_id), Some(policy_version));
    let now = metadata.occurred_at;
    let command = TopicCommand::Update(UpdateTopic {
        operation_id,
        partitions: body.partitions,
        config: body.config,
        deletion_protection: body.deletion_protection,
        expected_version,
        requested_by: caller.actor(),
    });
    if q.on() {
        return plan(&state, &caller, &cluster_namespace, id, &name, command, Some(policy_version)).await;
    }
    let metadata_map = caller.metadata_map(&metadata);
    crate::command::execute(&state.topics, &state.pool, &id.to_string(), command, metadata_map, expected_version)
        .await?;
    let topic = topic_as_of(&state, &caller, cluster, &name, Utc::now()).await?;
    let headers = crate::preconditions::etag(topic.version)?;
    if (topic.status == "UPDATING" || topic.status == "REQUESTED")
        && db::topics::operation_changed_topic(&state.pool, id, operation_id.as_uuid()).await?
    {
        let operation =
            OperationView::pending(operation_id.as_uuid(), "topic_apply", cluster, Some(id), caller.actor(), now);
        let mut headers = headers;
        headers.extend(crate::operations::location(operation_id.as_uuid())?);
        return Ok(
            (StatusCode::ACCEPTED, headers, Json(TopicChanged { topic, operation: Some(operation) })).into_response()
        );
    }
    Ok((StatusCode::OK, headers, Json(TopicChanged { topic, operation: None })).into_response())
}

/// Delete a topic (refused while deletion protection is on).
#[utoipa::path(
    delete, path = "/v1/clusters/{id}/topics/{name}", operation_id = "topics_delete", tag = "topics",
    params(("id" = Uuid, Path, description = "Cluster id"), ("name" = String, Path, description = "Topic name"),
        ("If-Match" = Option<String>, Header, description = "The version the change is based on, quoted"),
        DryRunQuery),
    responses(
        (status = 200, description = "Dry run: what the request would do", body = Plan),
        (status = 202, description = "Accepted; the KafkaTopic is being deleted", body = crate::clusters::OperationAccepted),
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
    caller.require(Role::Operator)?;
    let cluster: Uuid = cluster.parse().map_err(|_| ApiError::NotFound("cluster"))?;
    let (_, _, cluster_namespace) = cluster_of(&state, &caller, cluster).await?;
    let expected_version = crate::preconditions::expected_version(&headers, None)?;
    let id = topic_id(ClusterId::from_uuid(cluster), &name);
    let operation_id = OperationId::from_uuid(Uuid::new_v4());
    let policy_version = crate::policies::version_in_force(&state, &caller).await?;
    let metadata = caller.command_metadata(Some(operation_id), Some(policy_version));
    let command = TopicCommand::RequestDeletion { operation_id, expected_version, requested_by: caller.actor() };
    if q.on() {
        return plan(&state, &caller, &cluster_namespace, id, &name, command, Some(policy_version)).await;
    }
    let metadata_map = caller.metadata_map(&metadata);
    crate::command::execute(&state.topics, &state.pool, &id.to_string(), command, metadata_map, expected_version)
        .await?;
    let operation = OperationView::pending(
        operation_id.as_uuid(),
        "topic_delete",
        cluster,
        Some(id),
        caller.actor(),
        metadata.occurred_at,
    );
    Ok((
        StatusCode::ACCEPTED,
        crate::operations::location(operation.id)?,
        Json(crate::clusters::OperationAccepted { operation }),
    )
        .into_response())
}

/// A dry run's answer: the events and KafkaTopic changes the command would make.
async fn plan(
    state: &AppState,
    caller: &Caller,
    cluster_namespace: &str,
    id: Uuid,
    name: &str,
    command: TopicCommand,
    policy_version: Option<i64>,
) -> Result<Response, ApiError> {
    caller.note(|d| d.dry_run = true);
    let events = crate::dryrun::decide::<Topic>(&state.pool, &id.to_string(), command, ApiError::from).await?;
    let plan = crate::dryrun::topic_plan(cluster_namespace, id, name, &events, policy_version)?;
    Ok((StatusCode::OK, Json(plan)).into_response())
}
