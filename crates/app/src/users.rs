//! Kafka users: client identities on a cluster with ACL rules and quotas (Strimzi's `KafkaUser`). The user
//! workflow writes the password into a Secret in the cluster's namespace and applies the KafkaUser that names
//! it; the password is answered once, in the response to the create or rotate that made it, and stored nowhere
//! but in that Secret (see `polaris_domain::credentials`).

use chrono::{DateTime, Utc};
use polaris_domain::acl::{AclRule, UserQuotas, password_secret_name};
use polaris_domain::policy::Subject;
use polaris_domain::user::{CreateUser, KafkaUser, UpdateUser, UserAuthentication, UserCommand, UserError, user_id};
use polaris_domain::{ClusterId, OperationId};
use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use polaris_store::db::{self, users::UserRow};

use crate::App;
use crate::caller::{Caller, Role};
use crate::clusters::{Changed, OperationAccepted};
use crate::dryrun::Plan;
use crate::error::AppError;
use crate::operations::OperationView;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// The Kafka principal's name (`User:<name>`): lowercase letters, digits, `-` and `.`, at most 64; names
    /// starting with `polaris-` are Polaris' own.
    #[schema(example = "orders-app", pattern = "^[a-z0-9]([a-z0-9.-]{0,62}[a-z0-9])?$")]
    pub name: String,
    /// `scram-sha-512` (the default; the only one offered so far).
    #[schema(value_type = Option<AuthenticationDoc>)]
    pub authentication: Option<UserAuthentication>,
    /// The rules Kafka's authorizer applies to the user (none: the user may do nothing).
    #[schema(value_type = Option<Vec<AclRuleDoc>>)]
    pub acls: Option<Vec<AclRule>>,
    #[schema(value_type = Option<QuotasDoc>)]
    pub quotas: Option<UserQuotas>,
}

/// A change to a user: `acls` and `quotas` each replace the user's whole set when given.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    #[schema(value_type = Option<Vec<AclRuleDoc>>)]
    pub acls: Option<Vec<AclRule>>,
    #[schema(value_type = Option<QuotasDoc>)]
    pub quotas: Option<UserQuotas>,
    /// The version the change is based on; same as `If-Match`.
    pub expected_version: Option<u64>,
}

/// A rotation (the body may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateCredentialsRequest {
    /// The version the rotation is based on; same as `If-Match`.
    pub expected_version: Option<u64>,
}

/// How the user authenticates.
#[derive(Deserialize, ToSchema)]
#[schema(as = UserAuthentication)]
#[allow(dead_code)]
pub enum AuthenticationDoc {
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    #[serde(rename = "tls")]
    Tls,
}

/// One ACL rule, as Strimzi's `KafkaUser` spells it.
#[derive(Deserialize, ToSchema)]
#[schema(as = AclRule)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct AclRuleDoc {
    resource: AclResourceDoc,
    /// Valid for the resource type, following Kafka's operation matrix (topic: Read, Write, Create, Delete,
    /// Alter, Describe, DescribeConfigs, AlterConfigs; group: Read, Describe, Delete; cluster: Create, Alter,
    /// Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite; transactional_id: Write,
    /// Describe; `All` on each).
    #[schema(min_items = 1)]
    operations: Vec<AclOperationDoc>,
    /// The client host (`*`, the default: any).
    #[schema(example = "*", schema_with = crate::schema::text_or_null)]
    host: Option<String>,
    effect: Option<AclEffectDoc>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = AclResource)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct AclResourceDoc {
    #[serde(rename = "type")]
    type_: AclResourceTypeDoc,
    /// The resource name (for `cluster`: none); with `pattern: prefix`, every name starting with it.
    #[schema(example = "orders.", schema_with = crate::schema::text_or_null)]
    name: Option<String>,
    pattern: Option<AclPatternDoc>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = AclResourceType)]
#[allow(dead_code)]
pub enum AclResourceTypeDoc {
    #[serde(rename = "topic")]
    Topic,
    #[serde(rename = "group")]
    Group,
    #[serde(rename = "cluster")]
    Cluster,
    #[serde(rename = "transactional_id")]
    TransactionalId,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = AclPattern)]
#[allow(dead_code)]
pub enum AclPatternDoc {
    #[serde(rename = "literal")]
    Literal,
    #[serde(rename = "prefix")]
    Prefix,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = AclEffect)]
#[allow(dead_code)]
pub enum AclEffectDoc {
    #[serde(rename = "allow")]
    Allow,
    #[serde(rename = "deny")]
    Deny,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = AclOperation)]
#[allow(dead_code)]
pub enum AclOperationDoc {
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    All,
}

/// Client quotas, enforced by each broker.
#[derive(Deserialize, ToSchema)]
#[schema(as = UserQuotas)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct QuotasDoc {
    /// Bytes per second the user's producers may send to each broker.
    #[schema(minimum = 1)]
    producer_byte_rate: Option<u64>,
    /// Bytes per second the user's consumers may fetch from each broker.
    #[schema(minimum = 1)]
    consumer_byte_rate: Option<u64>,
    /// Percent of a broker's request-handler and network threads' time (per thread, summed over the threads).
    #[schema(minimum = 1, maximum = 10000)]
    request_percentage: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub name: String,
    #[schema(value_type = AuthenticationDoc)]
    pub authentication: UserAuthentication,
    #[schema(value_type = Vec<AclRuleDoc>)]
    pub acls: Vec<AclRule>,
    #[schema(value_type = QuotasDoc)]
    pub quotas: UserQuotas,
    /// Which credentials are in force: 1 at creation, one more per rotation.
    pub credentials_generation: u32,
    /// The Secret in the cluster's namespace that holds the password.
    pub secret_name: String,
    /// REQUESTED, READY, UPDATING, DELETING, DELETED, STALLED, FAILED.
    #[schema(schema_with = crate::schema::topic_status)]
    pub status: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The credentials a create or rotate made, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// `SCRAM-SHA-512`.
    pub mechanism: String,
    /// `SASL_PLAINTEXT` on the cluster's plain listener.
    pub security_protocol: String,
    /// The cluster's bootstrap address, once it has one.
    pub bootstrap_servers: Option<String>,
    pub generation: u32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserAccepted {
    pub user: UserView,
    pub operation: OperationView,
    /// The password, this once. A repeat of the request with the same `Idempotency-Key` answers without it.
    pub credentials: Option<Credentials>,
    /// False on a repeat: the credentials were shown to the first request only.
    pub credentials_shown: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CredentialsRotated {
    pub operation: OperationView,
    /// The new password, this once; the old one stops working when the operation succeeds.
    pub credentials: Option<Credentials>,
    /// False on a repeat: the credentials were shown to the first request only.
    pub credentials_shown: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserChanged {
    pub user: UserView,
    /// The operation applying the change; absent when nothing changed.
    pub operation: Option<OperationView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
    /// Pass as `page_token` to get the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListUsersQuery {
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
    /// From the previous page's `next_page_token`.
    #[param(pattern = "^[a-z0-9.-]{1,64}$")]
    pub page_token: Option<String>,
}

/// What a create or rotate answers, or, for a dry run, the plan.
pub enum UserRequested {
    Accepted(Box<UserAccepted>),
    Planned(Plan),
}

pub enum UserRotated {
    Rotated(Box<CredentialsRotated>),
    Planned(Plan),
}

pub enum UserUpdated {
    Changed(Box<UserChanged>),
    Planned(Plan),
}

/// A stored answer never holds a password: the credentials go, and the answer says they were shown before.
pub fn without_credentials(body: &mut serde_json::Map<String, serde_json::Value>) {
    if body.remove("credentials").is_some() {
        body.insert("credentials".into(), serde_json::Value::Null);
        body.insert("credentials_shown".into(), serde_json::Value::Bool(false));
    }
}

impl From<UserError> for AppError {
    fn from(e: UserError) -> Self {
        match e {
            e @ UserError::AlreadyExists(_) => AppError::Conflict(e.to_string()),
            UserError::InvalidName { name, reason } => {
                AppError::validation(format!("user name {name:?} is invalid: {reason}"), Some("name"))
            }
            UserError::Invalid(problems) => match problems.as_slice() {
                [one] => AppError::validation(format!("{}: {}", one.field, one.detail), Some(one.field.as_str())),
                _ => AppError::validation(
                    problems.iter().map(|p| format!("{}: {}", p.field, p.detail)).collect::<Vec<_>>().join("; "),
                    problems.first().map(|p| p.field.as_str()),
                ),
            },
            UserError::NotFound => AppError::NotFound("user"),
            UserError::VersionConflict { expected, current } => AppError::VersionConflict { expected, current },
            UserError::OperationInProgress { operation_id } => AppError::OperationInProgress(operation_id.as_uuid()),
            e @ UserError::Deleting => {
                AppError::Unprocessable { code: "INVALID_STATE", detail: e.to_string(), field: None }
            }
            e @ UserError::NotCurrentOperation(_) => AppError::Conflict(e.to_string()),
        }
    }
}

fn view_of(id: Uuid, cluster: Uuid, user: &KafkaUser, at: (DateTime<Utc>, DateTime<Utc>)) -> Option<UserView> {
    let name = user.name.clone()?;
    Some(UserView {
        id,
        cluster_id: cluster,
        secret_name: password_secret_name(&name),
        name,
        authentication: user.authentication,
        acls: user.acls.clone(),
        quotas: user.quotas.clone(),
        credentials_generation: user.generation,
        status: user.status().to_owned(),
        version: user.version as i64,
        created_at: at.0,
        updated_at: at.1,
    })
}

impl From<UserRow> for UserView {
    fn from(r: UserRow) -> Self {
        UserView {
            id: r.id,
            cluster_id: r.cluster_id,
            secret_name: password_secret_name(&r.name),
            name: r.name,
            authentication: serde_json::from_value(serde_json::Value::String(r.authentication)).unwrap_or_default(),
            acls: r.acls.0,
            quotas: r.quotas.0,
            credentials_generation: r.generation.max(0) as u32,
            status: r.status,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A user's state at an instant, folded from its events (the answer right after a change, and time travel).
async fn user_as_of(
    app: &App,
    caller: &Caller,
    cluster: Uuid,
    name: &str,
    as_of: DateTime<Utc>,
) -> Result<UserView, AppError> {
    let id = user_id(ClusterId::from_uuid(cluster), name);
    let (user, created_at, updated_at) = crate::fold::as_of::<KafkaUser>(app, caller, id, as_of, "user").await?;
    view_of(id, cluster, &user, (created_at, updated_at)).ok_or(AppError::NotFound("user"))
}

/// The key passwords are derived with; without it no credentials can be made here.
fn key(app: &App) -> Result<&polaris_domain::credentials::CredentialsKey, AppError> {
    app.credentials.as_deref().ok_or_else(|| {
        AppError::Unavailable("no credentials key is configured (POLARIS_CREDENTIALS_KEY_FILE)".to_owned())
    })
}

/// 128 random bits for a new generation of credentials.
fn new_salt() -> String {
    hex::encode(rand::rng().random::<[u8; 16]>())
}

fn credentials(
    app: &App,
    user: Uuid,
    name: &str,
    generation: u32,
    salt: &str,
    bootstrap: Option<String>,
) -> Result<Credentials, AppError> {
    Ok(Credentials {
        username: name.to_owned(),
        password: key(app)?.password(user, generation, salt),
        mechanism: "SCRAM-SHA-512".into(),
        security_protocol: "SASL_PLAINTEXT".into(),
        bootstrap_servers: bootstrap,
        generation,
    })
}

/// Malformed ACL rules or quotas are a bad request, answered before any policy judges them.
fn validate(acls: Option<&[AclRule]>, quotas: Option<&UserQuotas>) -> Result<(), AppError> {
    Ok(polaris_domain::user::validate(acls, quotas)?)
}

/// Whether the caller is an admin (some user rules let only admins grant `All`).
fn by_admin(caller: &Caller) -> bool {
    caller.role >= Role::Admin
}

async fn plan(
    app: &App,
    caller: &Caller,
    namespace: &str,
    id: Uuid,
    name: &str,
    command: UserCommand,
    policy_version: i64,
) -> Result<Plan, AppError> {
    caller.note(|d| d.dry_run = true);
    let events = crate::dryrun::decide::<KafkaUser>(&app.pool, &id.to_string(), command, AppError::from).await?;
    crate::dryrun::user_plan(namespace, name, &events, Some(policy_version))
}

/// Creates a Kafka user on a READY cluster of the caller's org (operator), and answers its password once.
pub async fn create(
    app: &App,
    caller: &Caller,
    cluster: Uuid,
    body: CreateUserRequest,
    dry_run: bool,
) -> Result<UserRequested, AppError> {
    caller.require(Role::Operator)?;
    let c = crate::clusters::current(app, caller, cluster).await?;
    let acls = body.acls.unwrap_or_default();
    let quotas = body.quotas.unwrap_or_default();
    validate(Some(&acls), Some(&quotas))?;
    let subject = Subject::User { acls: Some(&acls), quotas: Some(&quotas), by_admin: by_admin(caller) };
    let policy_version = crate::policies::judge(app, caller, &subject).await?;
    let authentication = body.authentication.unwrap_or_default();
    if authentication != UserAuthentication::ScramSha512 {
        return Err(AppError::Unprocessable {
            code: "UNSUPPORTED_AUTHENTICATION",
            detail: "only scram-sha-512 users are offered so far (tls client certificates are not built)".into(),
            field: Some("authentication".into()),
        });
    }
    if c.status != "READY" && c.status != "DEGRADED" {
        return Err(AppError::Unprocessable {
            code: "INVALID_STATE",
            detail: format!("the cluster is {}; users can be created on READY (or DEGRADED) clusters", c.status),
            field: None,
        });
    }
    let cluster_id = ClusterId::from_uuid(cluster);
    let id = user_id(cluster_id, &body.name);
    let operation_id = OperationId::from_uuid(Uuid::new_v4());
    let metadata = caller.command_metadata(Some(operation_id), Some(policy_version));
    let now = metadata.occurred_at;
    let salt = new_salt();
    let name = body.name.clone();
    let command = UserCommand::Create(CreateUser {
        cluster_id,
        org_id: caller.org_id,
        operation_id,
        name: body.name,
        authentication,
        acls: acls.clone(),
        quotas: quotas.clone(),
        salt: salt.clone(),
        requested_by: caller.actor(),
        requested_at: now,
    });
    if dry_run {
        return Ok(UserRequested::Planned(plan(app, caller, &c.namespace, id, &name, command, policy_version).await?));
    }
    // Without the key there is no password to answer: refuse before anything is recorded.
    key(app)?;
    let metadata_map = caller.metadata_map(&metadata);
    crate::command::execute(&app.users, &app.pool, &id.to_string(), command, metadata_map, Some(0)).await?;
    let user = UserView {
        id,
        cluster_id: cluster,
        secret_name: password_secret_name(&name),
        name: name.clone(),
        authentication,
        acls,
        quotas,
        credentials_generation: 1,
        status: "REQUESTED".into(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let operation = OperationView::pending_user(operation_id.as_uuid(), "user_apply", cluster, id, caller.actor(), now);
    let credentials = credentials(app, id, &name, 1, &salt, c.bootstrap_servers)?;
    Ok(UserRequested::Accepted(Box::new(UserAccepted {
        user,
        operation,
        credentials: Some(credentials),
        credentials_shown: true,
    })))
}

/// A cluster's users by name, a page at a time.
pub async fn list(app: &App, caller: &Caller, cluster: Uuid, q: ListUsersQuery) -> Result<UserList, AppError> {
    crate::clusters::current(app, caller, cluster).await?;
    let page_size = crate::paging::page_size(q.page_size)?;
    let after = crate::paging::cursor(q.page_token.as_deref(), polaris_store::CursorKind::Name)?.map(|c| c.encode());
    let mut rows = db::users::list(&app.pool, cluster, after.as_deref(), i64::from(page_size) + 1).await?;
    let next_page_token =
        crate::paging::next_token(&mut rows, page_size, |r| polaris_store::Cursor::Name(r.name.clone()));
    Ok(UserList { items: rows.into_iter().map(UserView::from).collect(), next_page_token })
}

/// One user of a cluster of the caller's org, now or (with `as_of`) as it was then.
pub async fn get(
    app: &App,
    caller: &Caller,
    cluster: Uuid,
    name: &str,
    as_of: Option<DateTime<Utc>>,
) -> Result<UserView, AppError> {
    crate::clusters::current(app, caller, cluster).await?;
    if let Some(as_of) = as_of {
        return user_as_of(app, caller, cluster, name, as_of).await;
    }
    let row = db::users::get(&app.pool, cluster, name).await?;
    let id = user_id(ClusterId::from_uuid(cluster), name).to_string();
    let head = db::events::head_sequence(&app.pool, "user", &id).await?;
    match row {
        Some(row) if row.version >= head => Ok(UserView::from(row)),
        _ => user_as_of(app, caller, cluster, name, Utc::now()).await,
    }
}

/// Replaces a user's ACLs and/or quotas (operator).
pub async fn update(
    app: &App,
    caller: &Caller,
    cluster: Uuid,
    name: &str,
    body: PatchUser,
    if_match: Option<&str>,
    dry_run: bool,
) -> Result<UserUpdated, AppError> {
    caller.require(Role::Operator)?;
    let c = crate::clusters::current(app, caller, cluster).await?;
    let expected_version = crate::preconditions::expected_version(if_match, body.expected_version)?;
    let subject =
        Subject::User { acls: body.acls.as_deref(), quotas: body.quotas.as_ref(), by_admin: by_admin(caller) };
    let policy_version = crate::policies::judge(app, caller, &subject).await?;
    let id = user_id(ClusterId::from_uuid(cluster), name);
    let operation_id = OperationId::from_uuid(Uuid::new_v4());
    let metadata = caller.command_metadata(Some(operation_id), Some(policy_version));
    let now = metadata.occurred_at;
    let command = UserCommand::Update(UpdateUser {
        operation_id,
        acls: body.acls,
        quotas: body.quotas,
        expected_version,
        requested_by: caller.actor(),
    });
    if dry_run {
        return Ok(UserUpdated::Planned(plan(app, caller, &c.namespace, id, name, command, policy_version).await?));
    }
    let before = db::events::head_sequence(&app.pool, "user", &id.to_string()).await?;
    let metadata_map = caller.metadata_map(&metadata);
    crate::command::execute(&app.users, &app.pool, &id.to_string(), command, metadata_map, expected_version).await?;
    let user = user_as_of(app, caller, cluster, name, Utc::now()).await?;
    // A change that recorded events started the operation; one that changed nothing recorded none.
    let operation = (user.version > before)
        .then(|| OperationView::pending_user(operation_id.as_uuid(), "user_apply", cluster, id, caller.actor(), now));
    Ok(UserUpdated::Changed(Box::new(UserChanged { user, operation })))
}

/// New credentials for a user (operator), answered once; the old ones stop working when the operation succeeds.
pub async fn rotate(
    app: &App,
    caller: &Caller,
    cluster: Uuid,
    name: &str,
    body: RotateCredentialsRequest,
    if_match: Option<&str>,
    dry_run: bool,
) -> Result<UserRotated, AppError> {
    caller.require(Role::Operator)?;
    let c = crate::clusters::current(app, caller, cluster).await?;
    let expected_version = crate::preconditions::expected_version(if_match, body.expected_version)?;
    let policy_version = crate::policies::version_in_force(app, caller).await?;
    let id = user_id(ClusterId::from_uuid(cluster), name);
    let operation_id = OperationId::from_uuid(Uuid::new_v4());
    let metadata = caller.command_metadata(Some(operation_id), Some(policy_version));
    let salt = new_salt();
    let command = UserCommand::RotateCredentials {
        operation_id,
        salt: salt.clone(),
        expected_version,
        requested_by: caller.actor(),
    };
    if dry_run {
        return Ok(UserRotated::Planned(plan(app, caller, &c.namespace, id, name, command, policy_version).await?));
    }
    key(app)?;
    let metadata_map = caller.metadata_map(&metadata);
    crate::command::execute(&app.users, &app.pool, &id.to_string(), command, metadata_map, expected_version).await?;
    let user = user_as_of(app, caller, cluster, name, Utc::now()).await?;
    let generation = user.credentials_generation;
    let operation = OperationView::pending_user(
        operation_id.as_uuid(),
        "user_rotate",
        cluster,
        id,
        caller.actor(),
        metadata.occurred_at,
    );
    let credentials = credentials(app, id, name, generation, &salt, c.bootstrap_servers)?;
    Ok(UserRotated::Rotated(Box::new(CredentialsRotated {
        operation,
        credentials: Some(credentials),
        credentials_shown: true,
    })))
}

/// Deletes a user (operator): its KafkaUser, then its Secret; its credentials stop working.
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
    let c = crate::clusters::current(app, caller, cluster).await?;
    let expected_version = crate::preconditions::expected_version(if_match, expected_version)?;
    let id = user_id(ClusterId::from_uuid(cluster), name);
    let operation_id = OperationId::from_uuid(Uuid::new_v4());
    let policy_version = crate::policies::version_in_force(app, caller).await?;
    let metadata = caller.command_metadata(Some(operation_id), Some(policy_version));
    let command = UserCommand::RequestDeletion { operation_id, expected_version, requested_by: caller.actor() };
    if dry_run {
        return Ok(Changed::Planned(plan(app, caller, &c.namespace, id, name, command, policy_version).await?));
    }
    let metadata_map = caller.metadata_map(&metadata);
    crate::command::execute(&app.users, &app.pool, &id.to_string(), command, metadata_map, expected_version).await?;
    let operation = OperationView::pending_user(
        operation_id.as_uuid(),
        "user_delete",
        cluster,
        id,
        caller.actor(),
        metadata.occurred_at,
    );
    Ok(Changed::Accepted(OperationAccepted { operation }))
}
