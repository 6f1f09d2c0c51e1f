//! The row an operation starts with, written by two hands from one definition: the event store, in the same
//! transaction as the event that starts the operation (so the `Location` of a `202` answers at once: read your
//! own writes), and the projector, which builds the same row when it applies that event (so a replay into an
//! empty schema writes it too), moved along by any later event of the same batch. Both insert with
//! `ON CONFLICT DO NOTHING`; whichever comes second changes nothing, and every later change to the row is the
//! projector's.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use polaris_domain::EventEnvelope;
use polaris_domain::cluster::{
    ClusterDeletionRequested, ClusterRequested, ClusterScaleRequested, ClusterUpgradeRequested,
};
use polaris_domain::topic::{TopicConfigChanged, TopicDeletionRequested, TopicPartitionsIncreased, TopicRequested};
use polaris_domain::user::{
    UserAclsChanged, UserCredentialsRotated, UserDeletionRequested, UserQuotasChanged, UserRequested,
};
use serde::de::DeserializeOwned;
use sqlx::query_builder::Separated;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::db::projection::OperationProgress;

/// An operation's step as stored in `operations.steps`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub name: String,
    pub state: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub detail: Option<String>,
}

impl Step {
    pub fn running(name: &str, at: DateTime<Utc>) -> Self {
        Step { name: name.into(), state: "running".into(), started_at: Some(at), finished_at: None, detail: None }
    }
}

/// A new `operations` row.
#[derive(Clone, Debug)]
pub struct OperationStart {
    pub id: Uuid,
    pub org_id: Uuid,
    pub kind: &'static str,
    pub cluster_id: Uuid,
    pub topic_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub state: &'static str,
    pub steps: Vec<Step>,
    pub requested_by: String,
    pub started_at: DateTime<Utc>,
}

fn decode<T: DeserializeOwned>(env: &EventEnvelope) -> Option<T> {
    serde_json::from_value(env.payload.clone()).ok()
}

impl OperationStart {
    /// The operation `env` starts, if it starts one. A topic's or user's events after its request do not carry
    /// the cluster: `member_cluster` gives it (the caller looks it up its own way).
    pub fn of(env: &EventEnvelope, member_cluster: impl FnOnce() -> Option<Uuid>) -> Option<Self> {
        let at = env.occurred_at;
        let cluster_op = |id: Uuid, kind: &'static str, first: &str, by: String| OperationStart {
            id,
            org_id: env.org_id,
            kind,
            cluster_id: env.aggregate_id,
            topic_id: None,
            user_id: None,
            state: "running",
            steps: vec![Step::running(first, at)],
            requested_by: by,
            started_at: at,
        };
        let topic_op = |id: Uuid, kind: &'static str, first: &str, by: String, cluster_id: Uuid| OperationStart {
            id,
            org_id: env.org_id,
            kind,
            cluster_id,
            topic_id: Some(env.aggregate_id),
            user_id: None,
            state: "running",
            steps: vec![Step::running(first, at)],
            requested_by: by,
            started_at: at,
        };
        let user_op = |id: Uuid, kind: &'static str, first: &str, by: String, cluster_id: Uuid| OperationStart {
            id,
            org_id: env.org_id,
            kind,
            cluster_id,
            topic_id: None,
            user_id: Some(env.aggregate_id),
            state: "running",
            steps: vec![Step::running(first, at)],
            requested_by: by,
            started_at: at,
        };
        match (env.aggregate_type.as_str(), env.event_type.as_str()) {
            ("cluster", "ClusterRequested") => {
                let e: ClusterRequested = decode(env)?;
                Some(OperationStart {
                    id: e.operation_id.as_uuid(),
                    org_id: e.org_id.as_uuid(),
                    kind: "provision",
                    cluster_id: e.cluster_id.as_uuid(),
                    topic_id: None,
                    user_id: None,
                    state: "pending",
                    steps: vec![],
                    requested_by: e.requested_by,
                    started_at: at,
                })
            }
            ("cluster", "ClusterScaleRequested") => {
                let e: ClusterScaleRequested = decode(env)?;
                let first = if e.to > e.from { "scale-broker-pool" } else { "rebalance-remove-brokers" };
                Some(cluster_op(e.operation_id.as_uuid(), "scale", first, e.requested_by))
            }
            ("cluster", "ClusterUpgradeRequested") => {
                let e: ClusterUpgradeRequested = decode(env)?;
                Some(cluster_op(e.operation_id.as_uuid(), "upgrade", "roll-kafka-version", e.requested_by))
            }
            ("cluster", "ClusterDeletionRequested") => {
                let e: ClusterDeletionRequested = decode(env)?;
                Some(cluster_op(e.operation_id.as_uuid(), "delete", "delete-resources", e.requested_by))
            }
            ("topic", "TopicRequested") => {
                let e: TopicRequested = decode(env)?;
                let cluster = e.cluster_id.as_uuid();
                Some(topic_op(e.operation_id.as_uuid(), "topic_apply", "apply-kafkatopic", e.requested_by, cluster))
            }
            ("topic", "TopicPartitionsIncreased") => {
                let e: TopicPartitionsIncreased = decode(env)?;
                let cluster = member_cluster()?;
                Some(topic_op(e.operation_id.as_uuid(), "topic_apply", "apply-kafkatopic", e.requested_by, cluster))
            }
            ("topic", "TopicConfigChanged") => {
                let e: TopicConfigChanged = decode(env)?;
                let cluster = member_cluster()?;
                Some(topic_op(e.operation_id.as_uuid(), "topic_apply", "apply-kafkatopic", e.requested_by, cluster))
            }
            ("topic", "TopicDeletionRequested") => {
                let e: TopicDeletionRequested = decode(env)?;
                let cluster = member_cluster()?;
                Some(topic_op(e.operation_id.as_uuid(), "topic_delete", "delete-kafkatopic", e.requested_by, cluster))
            }
            ("user", "UserRequested") => {
                let e: UserRequested = decode(env)?;
                let cluster = e.cluster_id.as_uuid();
                Some(user_op(e.operation_id.as_uuid(), "user_apply", "apply-kafkauser", e.requested_by, cluster))
            }
            ("user", "UserAclsChanged") => {
                let e: UserAclsChanged = decode(env)?;
                let cluster = member_cluster()?;
                Some(user_op(e.operation_id.as_uuid(), "user_apply", "apply-kafkauser", e.requested_by, cluster))
            }
            ("user", "UserQuotasChanged") => {
                let e: UserQuotasChanged = decode(env)?;
                let cluster = member_cluster()?;
                Some(user_op(e.operation_id.as_uuid(), "user_apply", "apply-kafkauser", e.requested_by, cluster))
            }
            ("user", "UserCredentialsRotated") => {
                let e: UserCredentialsRotated = decode(env)?;
                let cluster = member_cluster()?;
                Some(user_op(e.operation_id.as_uuid(), "user_rotate", "apply-kafkauser", e.requested_by, cluster))
            }
            ("user", "UserDeletionRequested") => {
                let e: UserDeletionRequested = decode(env)?;
                let cluster = member_cluster()?;
                Some(user_op(e.operation_id.as_uuid(), "user_delete", "delete-kafkauser", e.requested_by, cluster))
            }
            ("drift", "DriftRevertRequested") => {
                let e: polaris_domain::drift::DriftRevertRequested = decode(env)?;
                Some(OperationStart {
                    cluster_id: e.cluster_id.as_uuid(),
                    ..cluster_op(e.operation_id.as_uuid(), "drift_revert", "reapply-recorded-state", e.by)
                })
            }
            _ => None,
        }
    }

    /// Inserts the rows, each with its progress (the batch may have moved it since it started), one statement per
    /// thousand; a row that exists already stays as it is. Answers the ids it inserted.
    pub async fn insert_all(
        conn: &mut PgConnection,
        ops: &[(&OperationStart, &OperationProgress)],
    ) -> Result<BTreeSet<Uuid>, sqlx::Error> {
        crate::db::projection::insert_rows(conn, INSERT_HEAD, ops, |b, (op, progress)| push_row(b, op, progress)).await
    }

    /// The same insert as one sub-statement of a command's append, with the row as it starts.
    pub(crate) fn push_insert(&self, q: &mut QueryBuilder<'static, Postgres>) {
        let progress = self.progress();
        q.push(INSERT_HEAD);
        q.push_values(std::iter::once(self), |b, op| push_row(b, op, &progress));
        q.push(" ON CONFLICT (id) DO NOTHING");
    }

    /// The progress of the row this inserts, before any event moves it.
    pub fn progress(&self) -> OperationProgress {
        OperationProgress {
            kind: self.kind.to_owned(),
            started_at: self.started_at,
            state: self.state.to_owned(),
            steps: self.steps.clone(),
            error: None,
            finished_at: None,
        }
    }
}

const INSERT_HEAD: &str = "INSERT INTO operations (id, org_id, kind, cluster_id, topic_id, user_id, state, steps, \
     error, requested_by, started_at, finished_at) ";

/// The values of one operation row, in [`INSERT_HEAD`]'s order: who and what from the start, where it is from
/// `progress`.
fn push_row(mut b: Separated<'_, '_, Postgres, &'static str>, op: &OperationStart, progress: &OperationProgress) {
    b.push_bind(op.id)
        .push_bind(op.org_id)
        .push_bind(op.kind)
        .push_bind(op.cluster_id)
        .push_bind(op.topic_id)
        .push_bind(op.user_id)
        .push_bind(progress.state.clone())
        .push_bind(sqlx::types::Json(progress.steps.clone()))
        .push_bind(progress.error.clone())
        .push_bind(op.requested_by.clone())
        .push_bind(op.started_at)
        .push_bind(progress.finished_at);
}
