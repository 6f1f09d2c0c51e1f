//! What travels with every command besides its payload: who, when, in which org, and which chain of cause
//! it belongs to. Stored beside each event (cqrs-es metadata) and copied into the published envelope.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ids::{OperationId, OrgId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandMetadata {
    pub org_id: OrgId,
    pub actor: String,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub operation_id: Option<OperationId>,
    pub occurred_at: DateTime<Utc>,
    /// The policy bundle version that judged the command; absent for commands no policy judges (worker reports).
    pub policy_version: Option<i64>,
}

const ORG_ID: &str = "org_id";
const ACTOR: &str = "actor";
const CORRELATION_ID: &str = "correlation_id";
const CAUSATION_ID: &str = "causation_id";
const OPERATION_ID: &str = "operation_id";
const OCCURRED_AT: &str = "occurred_at";
const POLICY_VERSION: &str = "policy_version";

/// A stored metadata map that lacks a field or holds a bad value.
#[derive(Debug, thiserror::Error)]
#[error("event metadata field `{field}` is missing or malformed")]
pub struct MetadataError {
    pub field: &'static str,
}

impl CommandMetadata {
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::from([
            (ORG_ID.to_owned(), self.org_id.to_string()),
            (ACTOR.to_owned(), self.actor.clone()),
            (CORRELATION_ID.to_owned(), self.correlation_id.to_string()),
            (CAUSATION_ID.to_owned(), self.causation_id.to_string()),
            (OCCURRED_AT.to_owned(), self.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        ]);
        if let Some(op) = self.operation_id {
            m.insert(OPERATION_ID.to_owned(), op.to_string());
        }
        if let Some(v) = self.policy_version {
            m.insert(POLICY_VERSION.to_owned(), v.to_string());
        }
        m
    }

    pub fn from_map(m: &HashMap<String, String>) -> Result<Self, MetadataError> {
        fn get<'a>(m: &'a HashMap<String, String>, field: &'static str) -> Result<&'a str, MetadataError> {
            m.get(field).map(String::as_str).ok_or(MetadataError { field })
        }
        fn uuid(m: &HashMap<String, String>, field: &'static str) -> Result<Uuid, MetadataError> {
            get(m, field)?.parse().map_err(|_| MetadataError { field })
        }
        Ok(Self {
            org_id: OrgId::from_uuid(uuid(m, ORG_ID)?),
            actor: get(m, ACTOR)?.to_owned(),
            correlation_id: uuid(m, CORRELATION_ID)?,
            causation_id: uuid(m, CAUSATION_ID)?,
            operation_id: match m.get(OPERATION_ID) {
                Some(_) => Some(OperationId::from_uuid(uuid(m, OPERATION_ID)?)),
                None => None,
            },
            occurred_at: DateTime::parse_from_rfc3339(get(m, OCCURRED_AT)?)
                .map_err(|_| MetadataError { field: OCCURRED_AT })?
                .with_timezone(&Utc),
            policy_version: match m.get(POLICY_VERSION) {
                Some(v) => Some(v.parse().map_err(|_| MetadataError { field: POLICY_VERSION })?),
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_the_stored_map() {
        let md = CommandMetadata {
            org_id: OrgId::from_uuid(Uuid::new_v4()),
            actor: "token:ci".into(),
            correlation_id: Uuid::new_v4(),
            causation_id: Uuid::new_v4(),
            operation_id: Some(OperationId::from_uuid(Uuid::new_v4())),
            occurred_at: DateTime::parse_from_rfc3339("2026-11-26T10:00:00.123456Z").unwrap().with_timezone(&Utc),
            policy_version: Some(3),
        };
        assert_eq!(CommandMetadata::from_map(&md.to_map()).unwrap(), md);
        let mut broken = md.to_map();
        broken.remove("actor");
        assert_eq!(CommandMetadata::from_map(&broken).unwrap_err().field, "actor");
    }
}
