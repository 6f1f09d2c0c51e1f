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
use sqlx::PgConnection;

use crate::StoredEvent;
use crate::operations::OperationStart;
use crate::repository::db_error;

fn malformed(what: &str, e: impl std::fmt::Display) -> PersistenceError {
    PersistenceError::UnknownError(format!("{what}: {e}").into())
}

/// Enforces and records what `event` implies, in the append's transaction.
pub(crate) async fn enforce(
    conn: &mut PgConnection,
    aggregate_type: &str,
    event: &SerializedEvent,
    metadata: &Value,
) -> Result<(), PersistenceError> {
    match (aggregate_type, event.event_type.as_str()) {
        ("cluster", "ClusterRequested") => {
            let inner = event.payload.get("ClusterRequested").cloned().unwrap_or(Value::Null);
            let e: ClusterRequested = serde_json::from_value(inner).map_err(|e| malformed("ClusterRequested", e))?;
            sqlx::query("INSERT INTO cluster_names (org_id, name, cluster_id) VALUES ($1, $2, $3)")
                .bind(e.org_id.as_uuid())
                .bind(e.name.as_str())
                .bind(e.cluster_id.as_uuid())
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            sqlx::query("INSERT INTO cluster_namespaces (target_id, namespace, cluster_id) VALUES ($1, $2, $3)")
                .bind(e.target_id.as_uuid())
                .bind(&e.namespace)
                .bind(e.cluster_id.as_uuid())
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
        }
        ("cluster", "ClusterDeleted") => {
            let id: uuid::Uuid = event.aggregate_id.parse().map_err(|e| malformed("cluster id", e))?;
            sqlx::query("DELETE FROM cluster_names WHERE cluster_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            sqlx::query("DELETE FROM cluster_namespaces WHERE cluster_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
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
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?
        .flatten()
        .and_then(|c| c.parse().ok()),
        _ => None,
    };
    let envelope = stored.to_envelope().map_err(|e| malformed("event", e))?;
    if let Some(op) = OperationStart::of(&envelope, || member_cluster) {
        op.insert(conn).await.map_err(db_error)?;
    }
    Ok(())
}
