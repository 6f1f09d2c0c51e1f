//! Drift (issue #15): what the detector found on a cluster's target, and its resolution by a person.
//!
//! - `revert` asks for the recorded state to be applied again: a `drift_revert` operation (`202`).
//! - `adopt` records the live value as the resource's ordinary event (a topic's config or partitions, the broker
//!   count), by actor `drift-adopt:<caller>`, through the same use case a request would take: judged by the
//!   org's policy, so drift is never adopted into a violation. Only fields the org's `drift.adopt` lists are
//!   adopted (`spec.config.*` matches every key below it).
//! - `ignore` records who and why (`200`).

use chrono::{DateTime, Utc};
use polaris_domain::drift::{Drift, DriftCommand, DriftError, DriftResolution};
use polaris_domain::ids::OperationId;
use polaris_store::db;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::caller::{Caller, Role};
use crate::error::AppError;
use crate::operations::OperationView;
use crate::{App, clusters, topics};

/// The actor prefix of an adoption.
pub const ADOPT: &str = "drift-adopt";

/// A difference between what a cluster's events say one of its objects must be and what its target holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DriftView {
    pub id: Uuid,
    pub cluster_id: Uuid,
    /// `Kind/namespace/name` of the Kubernetes object.
    #[schema(example = "KafkaNodePool/polaris-orders-1a2b3c4d/broker")]
    pub resource: String,
    /// The field's path in the object (`spec.replicas`); empty for a whole object (missing or unexplained).
    #[schema(example = "spec.replicas")]
    pub field: String,
    /// What the events say (`null`: no event explains the object). A Secret's value is only ever its hash.
    pub expected: Option<Value>,
    /// What the target holds (`null`: the object is missing).
    pub actual: Option<Value>,
    /// The field manager that last wrote the field, from `managedFields`.
    pub changed_by: Option<String>,
    /// open, reverted, adopted or ignored.
    #[schema(pattern = "^(open|reverted|adopted|ignored)$")]
    pub status: String,
    /// An object no event explains: reported, never deleted.
    pub unexplained: bool,
    /// A revert is running (`operation_id`).
    pub reverting: bool,
    pub detected_at: DateTime<Utc>,
    /// When the live value was last seen.
    pub observed_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub reason: Option<String>,
    /// The revert or adoption operation.
    pub operation_id: Option<Uuid>,
}

impl From<db::drifts::DriftRow> for DriftView {
    fn from(r: db::drifts::DriftRow) -> Self {
        DriftView {
            id: r.id,
            cluster_id: r.cluster_id,
            unexplained: r.expected.is_none(),
            reverting: r.status == "open" && r.operation_id.is_some(),
            resource: r.object,
            field: r.field,
            expected: r.expected.map(|j| j.0),
            actual: r.actual.map(|j| j.0),
            changed_by: r.changed_by,
            status: r.status,
            detected_at: r.detected_at,
            observed_at: r.observed_at,
            resolved_at: r.resolved_at,
            resolved_by: r.resolved_by,
            reason: r.reason,
            operation_id: r.operation_id,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DriftList {
    /// Open drifts first, then the newest.
    pub items: Vec<DriftView>,
    /// How many are open.
    pub open: u32,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListDriftQuery {
    /// `open` for the open ones only; `all` (the default) for every drift.
    #[param(inline)]
    pub status: Option<DriftFilter>,
}

/// Which drifts a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftFilter {
    Open,
    All,
}

/// How to resolve a drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftAction {
    /// Apply the recorded state again (an operation).
    Revert,
    /// Record the live value as the resource's event, if the org's policy allows it.
    Adopt,
    /// Leave it, on record (a reason is required).
    Ignore,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveDrift {
    pub action: DriftAction,
    /// Why; required to ignore.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DriftResolutionAnswer {
    pub drift: DriftView,
    /// The revert, or the change that adopted the live value.
    pub operation: Option<OperationView>,
}

/// `Accepted`: an operation follows (`202`); `Done`: recorded (`200`).
pub enum Resolved {
    Accepted(DriftResolutionAnswer),
    Done(DriftResolutionAnswer),
}

impl From<DriftError> for AppError {
    fn from(e: DriftError) -> Self {
        match e {
            e @ DriftError::ReasonRequired => AppError::validation(e.to_string(), Some("reason")),
            e @ DriftError::Unexplained => AppError::Unprocessable {
                code: "UNEXPLAINED_OBJECT",
                detail: e.to_string(),
                field: Some("action".into()),
            },
            e @ (DriftError::NotOpen | DriftError::Reverting) => {
                AppError::Unprocessable { code: "INVALID_STATE", detail: e.to_string(), field: None }
            }
            e => AppError::Internal(e.to_string()),
        }
    }
}

/// A cluster's drifts (viewer).
pub async fn list(app: &App, caller: &Caller, cluster: Uuid, q: ListDriftQuery) -> Result<DriftList, AppError> {
    clusters::current(app, caller, cluster).await?;
    let open_only = q.status == Some(DriftFilter::Open);
    let rows = db::drifts::list(&app.pool, cluster, open_only, 500).await?;
    let items: Vec<DriftView> = rows.into_iter().map(DriftView::from).collect();
    let open = items.iter().filter(|d| d.status == "open").count() as u32;
    Ok(DriftList { items, open })
}

/// Open drifts per org over clusters not being deleted (what `polaris_drift_open` reports).
pub async fn open_counts(app: &App) -> Result<Vec<(Uuid, i64)>, AppError> {
    Ok(db::drifts::open_counts(&app.pool).await?)
}

/// Whether `field` is among the org's adoptable fields (`spec.config.*` covers every key below `spec.config`).
pub fn adoptable(adopt: &[String], field: &str) -> bool {
    adopt.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => field.starts_with(prefix),
        None => a == field,
    })
}

/// A live value as a topic config value (Kafka's configs are strings).
fn config_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Resolves an open drift (operator).
pub async fn resolve(
    app: &App,
    caller: &Caller,
    cluster: Uuid,
    drift_id: Uuid,
    body: ResolveDrift,
) -> Result<Resolved, AppError> {
    caller.require(Role::Operator)?;
    clusters::current(app, caller, cluster).await?;
    let row = db::drifts::get(&app.pool, cluster, drift_id).await?.ok_or(AppError::NotFound("drift"))?;
    if body.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(AppError::validation("reason is at most 500 characters", Some("reason")));
    }
    // What is resolved, and what adopting records, is the drift as its events say now: the read model may not
    // have the latest observation (or the resolution) yet.
    let (drift, _, _) = crate::fold::as_of::<Drift>(app, caller, drift_id, Utc::now(), "drift").await?;
    let Some(observed) = drift.observed else {
        return Err(AppError::Unprocessable {
            code: "INVALID_STATE",
            detail: format!("the drift is {} already", drift.status().unwrap_or("resolved")),
            field: None,
        });
    };
    let mut view = DriftView::from(row);
    view.expected = observed.expected;
    view.actual = observed.actual;
    view.changed_by = observed.changed_by;
    view.observed_at = observed.observed_at;
    view.unexplained = view.expected.is_none();
    view.reverting = drift.reverting.is_some();
    let policy_version = crate::policies::version_in_force(app, caller).await?;
    let resolve = async |how, operation_id: Option<OperationId>| -> Result<(), AppError> {
        let command = DriftCommand::Resolve { how, by: caller.actor(), reason: body.reason.clone(), operation_id };
        let md = caller.command_metadata(operation_id, Some(policy_version));
        let map = caller.metadata_map(&md);
        crate::command::execute::<Drift, _>(&app.drifts, &app.pool, &drift_id.to_string(), command, map, None).await
    };
    match body.action {
        DriftAction::Ignore => {
            resolve(DriftResolution::Ignored, None).await?;
            view.status = "ignored".into();
            view.resolved_by = Some(caller.actor());
            view.reason = body.reason.clone();
            view.resolved_at = Some(Utc::now());
            Ok(Resolved::Done(DriftResolutionAnswer { drift: view, operation: None }))
        }
        DriftAction::Revert => {
            let operation_id = OperationId::from_uuid(Uuid::new_v4());
            let md = caller.command_metadata(Some(operation_id), Some(policy_version));
            let now = md.occurred_at;
            let map = caller.metadata_map(&md);
            let command = DriftCommand::Revert { operation_id, by: caller.actor() };
            crate::command::execute::<Drift, _>(&app.drifts, &app.pool, &drift_id.to_string(), command, map, None)
                .await?;
            view.reverting = true;
            view.operation_id = Some(operation_id.as_uuid());
            let operation =
                OperationView::pending(operation_id.as_uuid(), "drift_revert", cluster, None, caller.actor(), now);
            Ok(Resolved::Accepted(DriftResolutionAnswer { drift: view, operation: Some(operation) }))
        }
        DriftAction::Adopt => {
            let operation = adopt(app, caller, cluster, &view).await?;
            resolve(DriftResolution::Adopted, operation.as_ref().map(|o| OperationId::from_uuid(o.id))).await?;
            view.status = "adopted".into();
            view.resolved_by = Some(caller.actor());
            view.resolved_at = Some(Utc::now());
            view.operation_id = operation.as_ref().map(|o| o.id);
            Ok(Resolved::Accepted(DriftResolutionAnswer { drift: view, operation }))
        }
    }
}

/// Records the live value as the resource's own event, through the use case a request would take.
async fn adopt(app: &App, caller: &Caller, cluster: Uuid, d: &DriftView) -> Result<Option<OperationView>, AppError> {
    let refuse =
        |detail: String| AppError::Unprocessable { code: "NOT_ADOPTABLE", detail, field: Some("action".into()) };
    let (Some(actual), Some(_)) = (&d.actual, &d.expected) else {
        return Err(refuse(format!(
            "{} is {}: there is no live value to adopt; revert or ignore it",
            d.resource,
            if d.actual.is_none() { "missing" } else { "unexplained" }
        )));
    };
    let (bundle, _) = crate::policies::current_bundle(&app.pool, caller.org_id).await?;
    let allowed = bundle.rules.drift.as_ref().map(|p| p.adopt.clone()).unwrap_or_default();
    if !adoptable(&allowed, &d.field) {
        return Err(refuse(format!(
            "the org's drift policy does not list {} in drift.adopt ({allowed:?}); revert or ignore it",
            d.field
        )));
    }
    // The adopting change is one command of this request; the request's Idempotency-Key is claimed once, by the
    // resolution that follows it.
    let adopting = Caller { acting_through: Some(ADOPT), idempotency: None, ..caller.clone() };
    let kind = d.resource.split('/').next().unwrap_or_default();
    let object_name = d.resource.rsplit('/').next().unwrap_or_default();
    match kind {
        "KafkaTopic" => {
            let topic = db::topics::list(&app.pool, cluster, None, 10_000)
                .await?
                .into_iter()
                .find(|t| polaris_domain::naming::kafka_topic_resource_name(&t.name, t.id) == object_name)
                .ok_or_else(|| refuse(format!("no topic of the cluster is applied as {}", d.resource)))?;
            let mut patch = topics::PatchTopic {
                partitions: None,
                config: None,
                deletion_protection: None,
                expected_version: None,
            };
            if let Some(key) = d.field.strip_prefix("spec.config.") {
                let mut config = topic.config.0.clone();
                config.insert(key.to_owned(), config_text(actual));
                patch.config = Some(config);
            } else if d.field == "spec.partitions" {
                let n = actual
                    .as_u64()
                    .filter(|n| *n <= 10_000)
                    .ok_or_else(|| refuse("partitions is not a count".into()))?;
                patch.partitions = Some(n as u32);
            } else {
                return Err(refuse(format!(
                    "{} of a KafkaTopic cannot be adopted (its config and partitions can)",
                    d.field
                )));
            }
            match topics::update(app, &adopting, cluster, &topic.name, patch, None, false).await? {
                topics::TopicUpdated::Changed(changed) => Ok(changed.operation),
                topics::TopicUpdated::Planned(_) => Ok(None),
            }
        }
        "KafkaNodePool" if object_name == polaris_domain::naming::BROKER_POOL && d.field == "spec.replicas" => {
            let brokers = actual
                .as_u64()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| refuse("replicas is not a broker count".into()))?;
            let body = clusters::ScaleCluster { brokers: brokers as u32, expected_version: None };
            match clusters::scale(app, &adopting, cluster, body, None, false).await? {
                clusters::Changed::Accepted(accepted) => Ok(Some(accepted.operation)),
                clusters::Changed::Planned(_) => Ok(None),
            }
        }
        _ => Err(refuse(format!(
            "{} of {} cannot be adopted: a topic's config and partitions and the broker pool's replicas can",
            d.field, d.resource
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adoptable_fields_are_exact_or_a_prefix_with_a_star() {
        let adopt = vec!["spec.replicas".to_owned(), "spec.config.*".to_owned()];
        assert!(adoptable(&adopt, "spec.replicas"));
        assert!(adoptable(&adopt, "spec.config.retention.ms"));
        assert!(!adoptable(&adopt, "spec.partitions"));
        assert!(!adoptable(&[], "spec.replicas"));
        assert_eq!(config_text(&serde_json::json!(86400000)), "86400000");
        assert_eq!(config_text(&serde_json::json!("delete")), "delete");
    }
}
