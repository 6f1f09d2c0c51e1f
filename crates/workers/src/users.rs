//! The Kafka user workflows. ApplyUser (a create, a change or a rotation): the password Secret of the current
//! credentials' generation, then the KafkaUser that names it, then wait until the User Operator reports it Ready
//! for its generation. DeleteUser: the KafkaUser (the User Operator takes the credential, ACLs and quotas off the
//! brokers), then the Secret.
//!
//! The password never travels: no workflow input, activity result or log holds it. The activity derives it from
//! the platform's credentials key, the user id, the generation and its salt (`polaris_domain::credentials`), the
//! same way the API derived the one it answered, and writes it straight into the Secret.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use polaris_domain::acl::{AclRule, UserQuotas, password_secret_name};
use polaris_domain::credentials::CredentialsKey;
use polaris_domain::user::UserCommand;
use polaris_store::cqrs_es::AggregateError;
use serde::{Deserialize, Serialize};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{WorkflowContext, WorkflowResult};
use uuid::Uuid;

use crate::operations::{StepOutcome, kube_options, now_ms};
use crate::ownership;
use crate::provision::{Cause, classify_kube, non_retryable, report_options, retryable, target_error};
use crate::resources::{ClusterSpec, GENERATION_ANNOTATION};
use crate::strimzi::{KafkaUser, condition_summary, ready_for_generation};
use crate::target::TargetRef;

/// Input of the user workflows: the user as its events say now. The salt is no secret (see the module doc).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserInput {
    pub cluster: ClusterSpec,
    pub target: TargetRef,
    pub user_id: Uuid,
    pub name: String,
    pub acls: Vec<AclRule>,
    pub quotas: UserQuotas,
    pub generation: u32,
    pub salt: String,
    pub cause: Cause,
    pub timeout_secs: u64,
    pub deadline_unix_ms: u64,
}

/// What a user workflow reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum UserReport {
    Ready,
    Deleted,
    Stalled(String),
    Failed(String),
}

pub struct UserActivities {
    pub users: Arc<polaris_store::UserCqrs>,
    pub key: Option<Arc<CredentialsKey>>,
}

/// The generation a Secret was written for (0: not annotated).
fn secret_generation(secret: &Secret) -> u32 {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(GENERATION_ANNOTATION))
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

#[activities]
impl UserActivities {
    /// Writes the password Secret (unless it already holds this generation), applies the KafkaUser, and waits
    /// until the User Operator reports it Ready for its generation.
    #[activity]
    pub async fn apply_user(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: UserInput,
    ) -> Result<StepOutcome, ActivityError> {
        let key = self.key.as_deref().ok_or_else(|| {
            non_retryable("no credentials key is configured for the worker role (POLARIS_CREDENTIALS_KEY_FILE)")
        })?;
        let client = input.target.client().await.map_err(target_error)?;
        let ns = input.cluster.namespace();
        let id = input.cluster.cluster_id;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let secret_name = password_secret_name(&input.name);
        let make = || {
            let password = key.password(input.user_id, input.generation, &input.salt);
            input.cluster.user_password_secret(&input.name, &password, input.generation)
        };
        match secrets.get_opt(&secret_name).await.map_err(classify_kube)? {
            // A newer generation's Secret is never replaced by an older one's (a late retry of a past rotation).
            Some(existing) if secret_generation(&existing) >= input.generation => {
                if let Err(conflict) = ownership::check(&existing, id) {
                    return Ok(StepOutcome::Conflict { reason: conflict.to_string() });
                }
            }
            Some(_) => {
                if let Err(conflict) = ownership::apply(&secrets, &secret_name, &make(), id).await? {
                    return Ok(StepOutcome::Conflict { reason: conflict.to_string() });
                }
            }
            None => {
                if let Err(conflict) = ownership::create_once(&secrets, &secret_name, id, make).await? {
                    return Ok(StepOutcome::Conflict { reason: conflict.to_string() });
                }
            }
        }
        let users: Api<KafkaUser> = Api::namespaced(client, &ns);
        let user = input.cluster.kafka_user(&input.name, &input.acls, &input.quotas, input.generation);
        if let Err(conflict) = ownership::apply(&users, &input.name, &user, id).await? {
            return Ok(StepOutcome::Conflict { reason: conflict.to_string() });
        }
        loop {
            let current = users.get(&input.name).await.map_err(classify_kube)?;
            let status = current.status.clone().unwrap_or_default();
            if ready_for_generation(&status.conditions, status.observed_generation, current.metadata.generation) {
                return Ok(StepOutcome::Done { node_ids: vec![] });
            }
            let last = condition_summary(&status.conditions);
            let _ = ctx.record_heartbeat(last.clone()).await;
            if now_ms() >= input.deadline_unix_ms {
                return Ok(StepOutcome::Stalled {
                    reason: format!("KafkaUser {} was not Ready before the deadline: {last}", input.name),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Deletes the KafkaUser and waits until it is gone, then deletes the password Secret.
    #[activity]
    pub async fn delete_user(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: UserInput,
    ) -> Result<StepOutcome, ActivityError> {
        let client = input.target.client().await.map_err(target_error)?;
        let ns = input.cluster.namespace();
        let id = input.cluster.cluster_id;
        let users: Api<KafkaUser> = Api::namespaced(client.clone(), &ns);
        if let Err(conflict) = ownership::delete(&users, &input.name, id).await? {
            return Ok(StepOutcome::Conflict { reason: conflict.to_string() });
        }
        while users.get_opt(&input.name).await.map_err(classify_kube)?.is_some() {
            let _ = ctx.record_heartbeat(format!("waiting for KafkaUser {} to go", input.name)).await;
            if now_ms() >= input.deadline_unix_ms {
                return Ok(StepOutcome::Stalled {
                    reason: format!("KafkaUser {} was still present at the deadline", input.name),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let secrets: Api<Secret> = Api::namespaced(client, &ns);
        if let Err(conflict) = ownership::delete(&secrets, &password_secret_name(&input.name), id).await? {
            return Ok(StepOutcome::Conflict { reason: conflict.to_string() });
        }
        Ok(StepOutcome::Done { node_ids: vec![] })
    }

    /// Records the workflow's outcome on the user through the command path.
    #[activity]
    pub async fn report_user(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: (Uuid, Cause, UserReport),
    ) -> Result<(), ActivityError> {
        let (user, cause, report) = input;
        let operation_id = cause.operation();
        let command = match report {
            UserReport::Ready => UserCommand::MarkReady { operation_id },
            UserReport::Deleted => UserCommand::MarkDeleted { operation_id },
            UserReport::Stalled(reason) => UserCommand::MarkStalled { operation_id, reason },
            UserReport::Failed(reason) => UserCommand::MarkFailed { operation_id, reason },
        };
        match self.users.execute_with_metadata(&user.to_string(), command, cause.metadata().to_map()).await {
            Ok(()) => Ok(()),
            Err(AggregateError::UserError(e)) => Err(non_retryable(e)),
            Err(e) => Err(retryable(e)),
        }
    }
}

/// A user workflow's absolute deadline, from workflow time (so a replay computes the same one).
fn deadline<W>(ctx: &WorkflowContext<W>, timeout_secs: u64) -> u64 {
    let now = ctx.workflow_time().unwrap_or(UNIX_EPOCH);
    (now + Duration::from_secs(timeout_secs)).duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Reports the step's outcome (`done` on success) and answers the workflow's result.
async fn finish<W>(
    ctx: &WorkflowContext<W>,
    input: &UserInput,
    outcome: StepOutcome,
    done: UserReport,
) -> WorkflowResult<String> {
    let (report, result) = match outcome {
        StepOutcome::Done { .. } => {
            let result = if done == UserReport::Deleted { "deleted" } else { "ready" };
            (done, result)
        }
        StepOutcome::Stalled { reason } => {
            tracing::warn!(user = %input.name, %reason, "user operation stalled");
            (UserReport::Stalled(reason), "stalled")
        }
        StepOutcome::Conflict { reason } => {
            tracing::warn!(user = %input.name, %reason, "user operation failed");
            (UserReport::Failed(reason), "failed")
        }
    };
    ctx.execute_activity(UserActivities::report_user, (input.user_id, input.cause.clone(), report), report_options())
        .await?;
    Ok(result.into())
}

#[workflow]
#[derive(Default)]
pub struct ApplyUser;

#[workflow_methods]
impl ApplyUser {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, mut input: UserInput) -> WorkflowResult<String> {
        input.deadline_unix_ms = deadline(ctx, input.timeout_secs);
        let outcome = crate::operations::given_up(
            ctx.execute_activity(UserActivities::apply_user, input.clone(), kube_options(input.timeout_secs)).await,
        );
        finish(ctx, &input, outcome, UserReport::Ready).await
    }
}

#[workflow]
#[derive(Default)]
pub struct DeleteUser;

#[workflow_methods]
impl DeleteUser {
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, mut input: UserInput) -> WorkflowResult<String> {
        input.deadline_unix_ms = deadline(ctx, input.timeout_secs);
        let outcome = crate::operations::given_up(
            ctx.execute_activity(UserActivities::delete_user, input.clone(), kube_options(input.timeout_secs)).await,
        );
        finish(ctx, &input, outcome, UserReport::Deleted).await
    }
}
