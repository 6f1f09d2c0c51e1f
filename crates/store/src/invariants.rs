//! What the command's own transaction writes beside its events, derived from the events themselves:
//! - the reservations that make a cluster's name unique in its org and its namespace unique on its target (taken
//!   with `ClusterRequested`, released with `ClusterDeleted`); a taken one fails the whole append;
//! - the row of an operation the event starts (see [`crate::operations`]), so the `Location` a `202` names answers
//!   at once.
//!
//! Deriving them from the events (not from what the caller says) means no front door can forget them.

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use polaris_domain::cluster::ClusterRequested;
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::StoredEvent;
use crate::operations::OperationStart;
use crate::repository::db_error;

fn malformed(what: &str, e: impl std::fmt::Display) -> PersistenceError {
    PersistenceError::UnknownError(format!("{what}: {e}").into())
}

/// One command's append as one statement: its events, and beside them what they imply, its idempotency key and
/// its audit entry, each a data-modifying CTE (`WITH w0 AS (INSERT …), w1 AS (…) SELECT 1`). A statement is its own
/// transaction, so all of it commits or none does, in one round trip instead of a BEGIN, a COMMIT and one per row.
/// The sub-statements see the same snapshot and none reads what another writes; the unique keys (a taken name or
/// namespace, an event sequence, an idempotency key) still refuse the whole statement. They run in no order the
/// query promises (PostgreSQL runs them last first), so rows whose order matters, the events with their positions,
/// go in one multi-row INSERT.
///
/// Appends that wait together are written together, as one such statement (`crate::group`), in the order of
/// their keys (see [`Append::key`]).
pub(crate) struct Append {
    parts: Vec<Part>,
    key: String,
}

/// One sub-statement, written into the statement when it is built.
type Part = Box<dyn FnOnce(&mut QueryBuilder<'static, Postgres>) + Send>;

impl Append {
    pub(crate) fn new() -> Self {
        Self { parts: Vec::new(), key: String::new() }
    }

    /// Names the unique key this append would most likely contend for with a concurrent one (a cluster's name, else
    /// its aggregate's next events); the first one named stays. A group's appends are written in the order of
    /// their keys, so two groups that contend for the same two keys take them in the same order: the later one
    /// waits for the earlier one's commit and is then refused, instead of each waiting on the other until
    /// PostgreSQL's deadlock check (a second) fails one.
    pub(crate) fn key(&mut self, key: impl FnOnce() -> String) {
        if self.key.is_empty() {
            self.key = key();
        }
    }

    /// Adds one sub-statement, written by `write`.
    pub(crate) fn part(&mut self, write: impl FnOnce(&mut QueryBuilder<'static, Postgres>) + Send + 'static) {
        self.parts.push(Box::new(write));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The one statement that writes every sub-statement of `appends`, all or nothing.
    fn statement(mut appends: Vec<Append>) -> QueryBuilder<'static, Postgres> {
        appends.sort_by(|a, b| a.key.cmp(&b.key));
        let mut query = QueryBuilder::new("WITH ");
        for (n, part) in appends.into_iter().flat_map(|a| a.parts).enumerate() {
            if n > 0 {
                query.push(", ");
            }
            query.push(format!("w{n} AS ("));
            part(&mut query);
            query.push(")");
        }
        query.push(" SELECT 1");
        query
    }

    /// Writes this append alone.
    pub(crate) async fn execute(self, pool: &crate::DirectPool) -> Result<(), sqlx::Error> {
        if self.is_empty() {
            return Ok(());
        }
        Self::execute_all(vec![self], pool).await
    }

    /// Writes `appends` as one statement, so one transaction: all of them or none.
    pub(crate) async fn execute_all(appends: Vec<Append>, pool: &crate::DirectPool) -> Result<(), sqlx::Error> {
        let mut query = Self::statement(appends);
        pool.run(async |conn| query.build().execute(conn).await.map(drop)).await
    }
}

/// Adds to `append` what `event` implies: the reservations it takes or releases, and the operation it starts.
pub(crate) async fn enforce(
    pool: &PgPool,
    append: &mut Append,
    aggregate_type: &str,
    event: &SerializedEvent,
    metadata: &Value,
) -> Result<(), PersistenceError> {
    match (aggregate_type, event.event_type.as_str()) {
        ("cluster", "ClusterRequested") => {
            let inner = event.payload.get("ClusterRequested").cloned().unwrap_or(Value::Null);
            let e: ClusterRequested = serde_json::from_value(inner).map_err(|e| malformed("ClusterRequested", e))?;
            let (org, name, id) = (e.org_id.as_uuid(), e.name.as_str().to_owned(), e.cluster_id.as_uuid());
            append.key(|| format!("cluster_names/{org}/{name}"));
            append.part(move |q| {
                q.push("INSERT INTO cluster_names (org_id, name, cluster_id) VALUES (");
                q.separated(", ").push_bind(org).push_bind(name).push_bind(id);
                q.push(")");
            });
            let (target, namespace) = (e.target_id.as_uuid(), e.namespace);
            append.part(move |q| {
                q.push("INSERT INTO cluster_namespaces (target_id, namespace, cluster_id) VALUES (");
                q.separated(", ").push_bind(target).push_bind(namespace).push_bind(id);
                q.push(")");
            });
        }
        ("cluster", "ClusterDeleted") => {
            let id: uuid::Uuid = event.aggregate_id.parse().map_err(|e| malformed("cluster id", e))?;
            append.part(move |q| {
                q.push("DELETE FROM cluster_names WHERE cluster_id = ").push_bind(id);
            });
            append.part(move |q| {
                q.push("DELETE FROM cluster_namespaces WHERE cluster_id = ").push_bind(id);
            });
        }
        _ => {}
    }
    let starts_operation = matches!(
        event.event_type.as_str(),
        "ClusterRequested"
            | "ClusterScaleRequested"
            | "ClusterUpgradeRequested"
            | "ClusterDeletionRequested"
            | "TopicRequested"
            | "TopicPartitionsIncreased"
            | "TopicConfigChanged"
            | "TopicDeletionRequested"
            | "UserRequested"
            | "UserAclsChanged"
            | "UserQuotasChanged"
            | "UserCredentialsRotated"
            | "UserDeletionRequested"
    );
    if !starts_operation {
        return Ok(());
    }
    let stored = StoredEvent {
        position: 0,
        xid: String::new(),
        event_id: uuid::Uuid::nil(),
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: event.aggregate_id.clone(),
        sequence: event.sequence as i64,
        event_type: event.event_type.clone(),
        event_version: event.event_version.clone(),
        payload: event.payload.clone(),
        metadata: metadata.clone(),
    };
    // A topic's or user's first event names its cluster; later ones do not.
    let first_event = match aggregate_type {
        "topic" => Some("TopicRequested"),
        "user" => Some("UserRequested"),
        _ => None,
    };
    let member_cluster = match first_event {
        Some(first) if event.sequence > 1 => sqlx::query_scalar::<_, Option<String>>(
            "SELECT (payload::jsonb)->$3->>'cluster_id' FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = 1",
        )
        .bind(aggregate_type)
        .bind(&event.aggregate_id)
        .bind(first)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?
        .flatten()
        .and_then(|c| c.parse().ok()),
        _ => None,
    };
    let envelope = stored.to_envelope().map_err(|e| malformed("event", e))?;
    if let Some(op) = OperationStart::of(&envelope, || member_cluster) {
        append.part(move |q| op.push_insert(q));
    }
    Ok(())
}
