//! Topic endpoints. A topic is requested on a READY cluster of the caller's org; the topic workflow applies
//! its KafkaTopic and reports it Ready.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use polaris_domain::policy::Subject;
use polaris_domain::topic::{CreateTopic, Topic, TopicCommand, TopicError, TopicEvent, UpdateTopic, topic_id};
use polaris_domain::{ClusterId, OperationId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use polaris_store::db::{self, topics::TopicRow};

use crate::App;
use crate::caller::{Caller, Role};
use crate::clusters::{Changed, OperationAccepted};
use crate::dryrun::Plan;
use crate::error::AppError;
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
    #[schema(schema_with = crate::schema::topic_status)]
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

/// The cluster's status, broker count and name, if it is the caller's.
async fn cluster_of(app: &App, caller: &Caller, id: Uuid) -> Result<(String, i32, String), AppError> {
    let c = crate::clusters::current(app, caller, id).await?;
    Ok((c.status, c.brokers as i32, c.namespace))
}

/// What each of the Topic aggregate's refusals means to the caller.
impl From<TopicError> for AppError {
    fn from(e: TopicError) -> Self {
        match e {
            e @ TopicError::AlreadyExists(_) => AppError::Conflict(e.to_string()),
            e @ TopicError::PartitionDecrease { .. } => AppError::Unprocessable {
                code: "PARTITION_DECREASE_UNSUPPORTED",
                detail: format!("{e}; Kafka cannot remove partitions (create a new topic instead)"),
                field: Some("partitions".into()),
            },
            TopicError::VersionConflict { expected, current } => AppError::VersionConflict { expected, current },
            TopicError::OperationInProgress { operation_id } => AppError::OperationInProgress(operation_id.as_uuid()),
            TopicError::DeletionProtected => AppError::DeletionProtected,
            TopicError::NotFound => AppError::NotFound("topic"),
            e @ TopicError::ReplicationFactorAboveBrokers { .. } => AppError::Unprocessable {
                code: "REPLICATION_FACTOR_ABOVE_BROKERS",
                detail: e.to_string(),
                field: Some("replication_factor".into()),
            },
            e @ TopicError::Deleting => {
                AppError::Unprocessable { code: "INVALID_STATE", detail: e.to_string(), field: None }
            }
            e => AppError::validation(e.to_string(), e.field()),
        }
    }
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

/// A topic's state at an instant, folded from its events (time travel, and the answer right after a change).
async fn topic_as_of(
    app: &App,
    caller: &Caller,
    cluster: Uuid,
    name: &str,
    as_of: DateTime<Utc>,
) -> Result<TopicView, AppError> {
    let id = topic_id(ClusterId::from_uuid(cluster), name);
    let (topic, created_at, updated_at) = crate::fold::as_of::<Topic>(app, caller, id, as_of, "topic").await?;
    let Some(name) = topic.name.clone() else { return Err(AppError::NotFound("topic")) };
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

/// A dry run's answer: the events and KafkaTopic changes the command would make.
async fn plan(
    app: &App,
    caller: &Caller,
    cluster_namespace: &str,
    id: Uuid,
    name: &str,
    command: TopicCommand,
    policy_version: Option<i64>,
) -> Result<Plan, AppError> {
    caller.note(|d| d.dry_run = true);
    let events = crate::dryrun::decide::<Topic>(&app.pool, &id.to_string(), command, AppError::from).await?;
    crate::dryrun::topic_plan(cluster_namespace, id, name, &events, policy_version)
}

/// What a topic request answers: accepted (the topic and its operation), or, for a dry run, the plan.
pub enum TopicRequested {
    Accepted(Box<TopicAccepted>),
    Planned(Plan),
}

/// What a topic change answers: the topic after it (with the operation applying it, when Kafka has something to
/// do), or, for a dry run, the plan.
pub enum TopicUpdated {
    Changed(Box<TopicChanged>),
    Planned(Plan),
}

/// Requests a topic on a READY cluster of the caller's org (operator).
pub async fn create(
    app: &App,
    caller: &Caller,
    cluster: Uuid,
    body: CreateTopicRequest,
    dry_run: bool,
) -> Result<TopicRequested, AppError> {
    caller.require(Role::Operator)?;
    let (status, brokers, cluster_namespace) = cluster_of(app, caller, cluster).await?;
    let policy_version = crate::policies::judge(
        app,
        caller,
        &Subject::Topic {
            name: &body.name,
            partitions: Some(body.partitions),
            replication_factor: Some(body.replication_factor),
            config: body.config.as_ref(),
            cluster_brokers: Some(brokers.max(0) as u32),
        },
    )
    .await?;
    if status != "READY" && status != "DEGRADED" {
        return Err(AppError::Unprocessable {
            code: "INVALID_STATE",
            detail: format!("the cluster is {status}; topics can be created on READY (or DEGRADED) clusters"),
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
    if dry_run {
        let plan = plan(app, caller, &cluster_namespace, id, &topic_name, command, Some(policy_version)).await?;
        return Ok(TopicRequested::Planned(plan));
    }
    // A create expects the topic to have no events yet: a create that loses a race finds it existing.
    let metadata_map = caller.metadata_map(&metadata);
    crate::command::execute(&app.topics, &app.pool, &id.to_string(), command, metadata_map, Some(0)).await?;
    let requested = db::events::of_aggregate(&app.pool, "topic", &id.to_string(), Some(1)).await?;
    let e = match requested.first().map(|r| r.decode::<TopicEvent>()) {
        Some(Ok(TopicEvent::TopicRequested(e))) => e,
        other => return Err(AppError::Internal(format!("expected TopicRequested, found {other:?}"))),
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
    Ok(TopicRequested::Accepted(Box::new(TopicAccepted { topic, operation })))
}

/// A cluster's topics by name, a page at a time.
pub async fn list(app: &App, caller: &Caller, cluster: Uuid, q: ListTopicsQuery) -> Result<TopicList, AppError> {
    cluster_of(app, caller, cluster).await?;
    let page_size = crate::paging::page_size(q.page_size)?;
    // The cursor is the last name of the previous page.
    let after = crate::paging::cursor(q.page_token.as_deref(), polaris_store::CursorKind::Name)?.map(|c| c.encode());
    let mut rows = db::topics::list(&app.pool, cluster, after.as_deref(), i64::from(page_size) + 1).await?;
    let next_page_token =
        crate::paging::next_token(&mut rows, page_size, |r| polaris_store::Cursor::Name(r.name.clone()));
    Ok(TopicList { items: rows.into_iter().map(TopicView::from).collect(), next_page_token })
}

/// One topic of a cluster of the caller's org, now or (with `as_of`) as it was then.
pub async fn get(
    app: &App,
    caller: &Caller,
    cluster: Uuid,
    name: &str,
    as_of: Option<DateTime<Utc>>,
) -> Result<TopicView, AppError> {
    cluster_of(app, caller, cluster).await?;
    if let Some(as_of) = as_of {
        return topic_as_of(app, caller, cluster, name, as_of).await;
    }
    let row = db::topics::get(&app.pool, cluster, name).await?;
    // Read your own writes: a read model behind the topic's last event answers from the events instead.
    let id = topic_id(ClusterId::from_uuid(cluster), name).to_string();
    let head = db::events::head_sequence(&app.pool, "topic", &id).await?;
    match row {
        Some(row) if row.version >= head => Ok(TopicView::from(row)),
        _ => topic_as_of(app, caller, cluster, name, Utc::now()).await,
    }
}

/// Changes a topic (operator): grows its partitions, replaces its config, or sets deletion protection.
pub async fn update(
    app: &App,
    caller: &Caller,
    cluster: Uuid,
    name: &str,
    body: PatchTopic,
    if_match: Option<&str>,
    dry_run: bool,
) -> Result<TopicUpdated, AppError> {
    caller.require(Role::Operator)?;
    let (_, brokers, cluster_namespace) = cluster_of(app, caller, cluster).await?;
    let expected_version = crate::preconditions::expected_version(if_match, body.expected_version)?;
    let policy_version = if body.partitions.is_some() || body.config.is_some() {
        let subject = Subject::Topic {
            name,
            partitions: body.partitions,
            replication_factor: None,
            config: body.config.as_ref(),
            cluster_brokers: Some(brokers.max(0) as u32),
        };
        crate::policies::judge(app, caller, &subject).await?
    } else {
        crate::policies::version_in_force(app, caller).await?
    };
    let id = topic_id(ClusterId::from_uuid(cluster), name);
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
    if dry_run {
        let plan = plan(app, caller, &cluster_namespace, id, name, command, Some(policy_version)).await?;
        return Ok(TopicUpdated::Planned(plan));
    }
    let metadata_map = caller.metadata_map(&metadata);
    crate::command::execute(&app.topics, &app.pool, &id.to_string(), command, metadata_map, expected_version).await?;
    let topic = topic_as_of(app, caller, cluster, name, Utc::now()).await?;
    let operation = if (topic.status == "UPDATING" || topic.status == "REQUESTED")
        && db::topics::operation_changed_topic(&app.pool, id, operation_id.as_uuid()).await?
    {
        Some(OperationView::pending(operation_id.as_uuid(), "topic_apply", cluster, Some(id), caller.actor(), now))
    } else {
        None
    };
    Ok(TopicUpdated::Changed(Box::new(TopicChanged { topic, operation })))
}

/// Deletes a topic (operator; refused while deletion protection is on).
pub async fn delete(
    app: &App,
    caller: &Caller,
    cluster: Uuid,
    name: &str,
    expected_version: Option<u64>,
    if_match: Option<&str>,
    dry_run: bool,
) -> Result<Changed, AppError> {
    caller.require(Role::Operator)?;
    let (_, _, cluster_namespace) = cluster_of(app, caller, cluster).await?;
    let expected_version = crate::preconditions::expected_version(if_match, expected_version)?;
    let id = topic_id(ClusterId::from_uuid(cluster), name);
    let operation_id = OperationId::from_uuid(Uuid::new_v4());
    let policy_version = crate::policies::version_in_force(app, caller).await?;
    let metadata = caller.command_metadata(Some(operation_id), Some(policy_version));
    let command = TopicCommand::RequestDeletion { operation_id, expected_version, requested_by: caller.actor() };
    if dry_run {
        return Ok(Changed::Planned(
            plan(app, caller, &cluster_namespace, id, name, command, Some(policy_version)).await?,
        ));
    }
    let metadata_map = caller.metadata_map(&metadata);
    crate::command::execute(&app.topics, &app.pool, &id.to_string(), command, metadata_map, expected_version).await?;
    let operation = OperationView::pending(
        operation_id.as_uuid(),
        "topic_delete",
        cluster,
        Some(id),
        caller.actor(),
        metadata.occurred_at,
    );
    Ok(Changed::Accepted(OperationAccepted { operation }))
}
