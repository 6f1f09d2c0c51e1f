//! Drift (issue #15): a difference between what a cluster's event history says one field of one of its
//! Kubernetes objects must be and what the target's API server holds. One aggregate per `(cluster, object,
//! field)`: its id is derived from them, so the detector reporting the same difference again finds the drift it
//! opened. A drift is open until it is resolved: reverted (the recorded state applied again, or the live value
//! found back at the recorded one), adopted (the live value recorded as an ordinary event of its resource) or
//! ignored (with who and why).
//!
//! Values are JSON as the object holds them; a Secret's value is only ever its hash (the detector compares
//! hashes), so no event holds a secret. An object that no event explains has no expected value.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::ids::{ClusterId, OperationId, OrgId};

/// The drift id of `field` of `object` (`Kind/namespace/name`) of a cluster: the same inputs, the same id.
pub fn drift_id(cluster: ClusterId, object: &str, field: &str) -> Uuid {
    Uuid::new_v5(&cluster.as_uuid(), format!("drift:{object}#{field}").as_bytes())
}

/// How a drift ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftResolution {
    /// The recorded state is in force again: re-applied by a workflow, or found back by the detector.
    Reverted,
    /// The live value was recorded as an event of the resource (judged by the policy like any request).
    Adopted,
    /// Left as it is, on purpose: the event says who decided and why.
    Ignored,
}

impl DriftResolution {
    /// The drift's status once resolved so (SPEC.md §1: open, reverted, adopted, ignored).
    pub fn status(self) -> &'static str {
        match self {
            DriftResolution::Reverted => "reverted",
            DriftResolution::Adopted => "adopted",
            DriftResolution::Ignored => "ignored",
        }
    }
}

/// What the detector observed.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectDrift {
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    /// `Kind/namespace/name` of the Kubernetes object.
    pub object: String,
    /// The field path inside the object (`spec.replicas`, `spec.config.retention.ms`); empty for a whole object
    /// that is missing or that no event explains.
    pub field: String,
    /// What the events say (`None`: the object is unexplained).
    pub expected: Option<Value>,
    /// What the API server holds (`None`: the object is missing).
    pub actual: Option<Value>,
    /// The field manager that last wrote the field, from `managedFields`, when it says.
    pub changed_by: Option<String>,
    pub observed_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DriftCommand {
    Detect(DetectDrift),
    Resolve {
        how: DriftResolution,
        by: String,
        /// Why (required to ignore).
        reason: Option<String>,
        /// The operation that reverted or adopted it.
        operation_id: Option<OperationId>,
    },
    /// Apply the recorded state again, through the revert workflow (operation `operation_id`).
    Revert {
        operation_id: OperationId,
        by: String,
    },
    /// The revert could not finish within its deadline.
    RevertStalled {
        operation_id: OperationId,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub enum DriftEvent {
    DriftDetected(DriftDetected),
    DriftRevertRequested(DriftRevertRequested),
    DriftRevertStalled(DriftRevertStalled),
    DriftResolved(DriftResolved),
}

/// Someone (or the org's `revert` mode) asked for the recorded state to be applied again; the revert workflow
/// runs as operation `operation_id` of the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftRevertRequested {
    pub operation_id: OperationId,
    pub cluster_id: ClusterId,
    pub by: String,
}

/// The revert did not finish within its deadline; the drift stays open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftRevertStalled {
    pub operation_id: OperationId,
    pub reason: String,
}

/// A field of a cluster's object differs from what the events say (again with a new value, while open).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftDetected {
    pub drift_id: Uuid,
    pub cluster_id: ClusterId,
    pub org_id: OrgId,
    pub object: String,
    pub field: String,
    pub expected: Option<Value>,
    pub actual: Option<Value>,
    pub changed_by: Option<String>,
    pub observed_at: DateTime<Utc>,
}

/// The observation as it is recorded: the same fields, with the drift id they derive.
impl From<DetectDrift> for DriftDetected {
    fn from(d: DetectDrift) -> Self {
        DriftDetected {
            drift_id: drift_id(d.cluster_id, &d.object, &d.field),
            cluster_id: d.cluster_id,
            org_id: d.org_id,
            object: d.object,
            field: d.field,
            expected: d.expected,
            actual: d.actual,
            changed_by: d.changed_by,
            observed_at: d.observed_at,
        }
    }
}

/// A drift ended: how, by whom and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftResolved {
    pub how: DriftResolution,
    pub by: String,
    pub reason: Option<String>,
    pub operation_id: Option<OperationId>,
}

impl DomainEvent for DriftEvent {
    fn event_type(&self) -> String {
        match self {
            DriftEvent::DriftDetected(_) => "DriftDetected",
            DriftEvent::DriftRevertRequested(_) => "DriftRevertRequested",
            DriftEvent::DriftRevertStalled(_) => "DriftRevertStalled",
            DriftEvent::DriftResolved(_) => "DriftResolved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::events::current_version(&self.event_type()).unwrap_or(1).to_string()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriftError {
    #[error("no open drift")]
    NotOpen,
    #[error("ignoring a drift needs a reason")]
    ReasonRequired,
    #[error("a drift with neither an expected nor an actual value is no drift")]
    NoDifference,
    #[error("no event explains this object, so there is no recorded state to revert to; Polaris never deletes it")]
    Unexplained,
    #[error("a revert of this drift is already running")]
    Reverting,
    #[error("no revert of this drift is running")]
    NotReverting,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// The last observation, while open.
    pub observed: Option<DriftDetected>,
    /// How the last drift of this field ended.
    pub resolution: Option<DriftResolution>,
    /// The revert running now, if any.
    pub reverting: Option<OperationId>,
    /// The difference that was last ignored, `(expected, actual)`: observing exactly it again records nothing.
    pub ignored: Option<(Option<Value>, Option<Value>)>,
    pub version: u64,
}

impl Drift {
    pub fn is_open(&self) -> bool {
        self.observed.is_some()
    }

    /// open, reverted, adopted or ignored (SPEC.md §1); `None` before anything was detected.
    pub fn status(&self) -> Option<&'static str> {
        match (self.is_open(), self.resolution) {
            (true, _) => Some("open"),
            (false, how) => how.map(DriftResolution::status),
        }
    }
}

impl Aggregate for Drift {
    const TYPE: &'static str = "drift";
    type Command = DriftCommand;
    type Event = DriftEvent;
    type Error = DriftError;
    type Services = ();

    async fn handle(&mut self, command: Self::Command, _: &(), sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let event = match command {
            DriftCommand::Detect(d) => {
                if d.expected.is_none() && d.actual.is_none() {
                    return Err(DriftError::NoDifference);
                }
                // The same difference observed again records nothing; a new live value is a new observation. An
                // ignored difference stays ignored until the live value (or the recorded one) changes.
                if self.observed.as_ref().is_some_and(|o| o.actual == d.actual && o.expected == d.expected)
                    || self.ignored.as_ref().is_some_and(|(e, a)| *a == d.actual && *e == d.expected)
                {
                    return Ok(());
                }
                DriftEvent::DriftDetected(d.into())
            }
            DriftCommand::Resolve { how, by, reason, operation_id } => {
                if !self.is_open() {
                    return Err(DriftError::NotOpen);
                }
                let reason = reason.filter(|r| !r.trim().is_empty());
                if how == DriftResolution::Ignored && reason.is_none() {
                    return Err(DriftError::ReasonRequired);
                }
                DriftEvent::DriftResolved(DriftResolved { how, by, reason, operation_id })
            }
            DriftCommand::Revert { operation_id, by } => {
                let Some(observed) = &self.observed else { return Err(DriftError::NotOpen) };
                if observed.expected.is_none() {
                    return Err(DriftError::Unexplained);
                }
                if self.reverting.is_some() {
                    return Err(DriftError::Reverting);
                }
                DriftEvent::DriftRevertRequested(DriftRevertRequested {
                    operation_id,
                    cluster_id: observed.cluster_id,
                    by,
                })
            }
            DriftCommand::RevertStalled { operation_id, reason } => {
                if self.reverting != Some(operation_id) {
                    return Err(DriftError::NotReverting);
                }
                DriftEvent::DriftRevertStalled(DriftRevertStalled { operation_id, reason })
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            DriftEvent::DriftDetected(e) => {
                self.observed = Some(e);
                self.resolution = None;
                self.ignored = None;
            }
            DriftEvent::DriftRevertRequested(e) => self.reverting = Some(e.operation_id),
            DriftEvent::DriftRevertStalled(_) => self.reverting = None,
            DriftEvent::DriftResolved(e) => {
                let last = self.observed.take();
                self.ignored = last.filter(|_| e.how == DriftResolution::Ignored).map(|o| (o.expected, o.actual));
                self.resolution = Some(e.how);
                self.reverting = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use serde_json::json;

    use super::*;

    fn detect(actual: i64) -> DetectDrift {
        DetectDrift {
            cluster_id: ClusterId::from_uuid(Uuid::from_u128(1)),
            org_id: OrgId::from_uuid(Uuid::from_u128(2)),
            object: "KafkaNodePool/polaris-orders-00000000/broker".into(),
            field: "spec.replicas".into(),
            expected: Some(json!(3)),
            actual: Some(json!(actual)),
            changed_by: Some("kubectl-edit".into()),
            observed_at: DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z").unwrap().with_timezone(&Utc),
        }
    }

    fn detected(actual: i64) -> DriftEvent {
        DriftEvent::DriftDetected(detect(actual).into())
    }

    #[test]
    fn a_difference_opens_once_and_a_new_live_value_is_a_new_observation() {
        TestFramework::<Drift>::with(())
            .given_no_previous_events()
            .when(DriftCommand::Detect(detect(5)))
            .then_expect_events(vec![detected(5)]);
        TestFramework::<Drift>::with(())
            .given(vec![detected(5)])
            .when(DriftCommand::Detect(detect(5)))
            .then_expect_events(vec![]);
        TestFramework::<Drift>::with(())
            .given(vec![detected(5)])
            .when(DriftCommand::Detect(detect(6)))
            .then_expect_events(vec![detected(6)]);
    }

    #[test]
    fn ignoring_needs_a_reason_and_only_an_open_drift_is_resolved() {
        let ignore = |reason: Option<&str>| DriftCommand::Resolve {
            how: DriftResolution::Ignored,
            by: "token:ops".into(),
            reason: reason.map(str::to_owned),
            operation_id: None,
        };
        TestFramework::<Drift>::with(())
            .given(vec![detected(5)])
            .when(ignore(Some(" ")))
            .then_expect_error(DriftError::ReasonRequired);
        let resolved = DriftEvent::DriftResolved(DriftResolved {
            how: DriftResolution::Ignored,
            by: "token:ops".into(),
            reason: Some("load test".into()),
            operation_id: None,
        });
        TestFramework::<Drift>::with(())
            .given(vec![detected(5)])
            .when(ignore(Some("load test")))
            .then_expect_events(vec![resolved.clone()]);
        TestFramework::<Drift>::with(())
            .given(vec![detected(5), resolved.clone()])
            .when(ignore(Some("again")))
            .then_expect_error(DriftError::NotOpen);
        // Ignored stays ignored while the live value is the one ignored; another value opens it again.
        TestFramework::<Drift>::with(())
            .given(vec![detected(5), resolved.clone()])
            .when(DriftCommand::Detect(detect(5)))
            .then_expect_events(vec![]);
        TestFramework::<Drift>::with(())
            .given(vec![detected(5), resolved])
            .when(DriftCommand::Detect(detect(6)))
            .then_expect_events(vec![detected(6)]);
    }

    #[test]
    fn a_revert_needs_a_recorded_state_and_runs_once_at_a_time() {
        let op = OperationId::from_uuid(Uuid::from_u128(9));
        let revert = || DriftCommand::Revert { operation_id: op, by: "token:ops".into() };
        let requested = DriftEvent::DriftRevertRequested(DriftRevertRequested {
            operation_id: op,
            cluster_id: ClusterId::from_uuid(Uuid::from_u128(1)),
            by: "token:ops".into(),
        });
        TestFramework::<Drift>::with(())
            .given(vec![detected(5)])
            .when(revert())
            .then_expect_events(vec![requested.clone()]);
        TestFramework::<Drift>::with(())
            .given(vec![detected(5), requested.clone()])
            .when(revert())
            .then_expect_error(DriftError::Reverting);
        let stalled = DriftEvent::DriftRevertStalled(DriftRevertStalled { operation_id: op, reason: "late".into() });
        TestFramework::<Drift>::with(())
            .given(vec![detected(5), requested.clone()])
            .when(DriftCommand::RevertStalled { operation_id: op, reason: "late".into() })
            .then_expect_events(vec![stalled.clone()]);
        TestFramework::<Drift>::with(())
            .given(vec![detected(5), requested, stalled])
            .when(revert())
            .then_expect_events(vec![DriftEvent::DriftRevertRequested(DriftRevertRequested {
                operation_id: op,
                cluster_id: ClusterId::from_uuid(Uuid::from_u128(1)),
                by: "token:ops".into(),
            })]);
        let mut unexplained = detect(5);
        unexplained.expected = None;
        let unexplained = DriftEvent::DriftDetected(unexplained.into());
        TestFramework::<Drift>::with(())
            .given(vec![unexplained])
            .when(revert())
            .then_expect_error(DriftError::Unexplained);
    }

    #[test]
    fn the_id_is_the_objects_field_on_the_cluster() {
        let c = ClusterId::from_uuid(Uuid::from_u128(1));
        assert_eq!(
            drift_id(c, "KafkaTopic/ns/t", "spec.partitions"),
            drift_id(c, "KafkaTopic/ns/t", "spec.partitions")
        );
        assert_ne!(drift_id(c, "KafkaTopic/ns/t", "spec.partitions"), drift_id(c, "KafkaTopic/ns/t", "spec.replicas"));
        let mut d = Drift::default();
        assert_eq!(d.status(), None);
        d.apply(detected(5));
        assert_eq!(d.status(), Some("open"));
    }
}
