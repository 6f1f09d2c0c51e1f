//! The words of the lifecycle every front door and read model shares: topic statuses, operation kinds, operation
//! states and step states (cluster statuses are `cluster::ClusterStatus`). Stored and sent as their `as_str`
//! text; the OpenAPI document lists them as enums from `ALL`, and the dashboard's badge table is typed by them.

macro_rules! words {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// Every value's text, in lifecycle order.
            pub fn texts() -> impl Iterator<Item = &'static str> {
                Self::ALL.iter().map(|v| v.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(
    /// A topic's status (SPEC.md §1), as `topic::Topic::status` derives it; a Kafka user's too
    /// (`user::KafkaUser::status`).
    TopicStatus {
        Requested => "REQUESTED",
        Ready => "READY",
        Updating => "UPDATING",
        Deleting => "DELETING",
        Deleted => "DELETED",
        Stalled => "STALLED",
        Failed => "FAILED",
    }
);

words!(
    /// What an operation does.
    OperationKind {
        Provision => "provision",
        Scale => "scale",
        Upgrade => "upgrade",
        Delete => "delete",
        TopicApply => "topic_apply",
        TopicDelete => "topic_delete",
        UserApply => "user_apply",
        UserRotate => "user_rotate",
        UserDelete => "user_delete",
        DriftRevert => "drift_revert",
    }
);

words!(
    /// Where an operation is.
    OperationState {
        Pending => "pending",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Stalled => "stalled",
        Cancelled => "cancelled",
    }
);

impl OperationState {
    /// No further progress will be reported.
    pub fn finished(self) -> bool {
        matches!(self, OperationState::Succeeded | OperationState::Failed | OperationState::Cancelled)
    }
}

words!(
    /// Where one step of an operation is.
    StepState {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Stalled => "stalled",
    }
);

/// What a workflow reports about the operation it runs on a topic or a Kafka user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkflowReport {
    Ready,
    Deleted,
    Stalled,
    Failed,
}

/// Where an aggregate that runs one operation at a time stands, to judge a workflow's report against.
#[derive(Clone, Copy, Debug)]
pub struct OperationTrack {
    pub current: Option<crate::ids::OperationId>,
    pub ready: bool,
    pub deleting: bool,
    pub deleted: bool,
}

impl OperationTrack {
    /// `Ok(true)`: record the report. `Ok(false)`: record nothing (a repeat of what is recorded, or a stall or
    /// failure of an operation that has finished after all). `Err`: the report names an operation that is not
    /// the current one.
    pub fn judge(
        &self,
        operation: crate::ids::OperationId,
        report: WorkflowReport,
    ) -> Result<bool, crate::ids::OperationId> {
        let current = self.current == Some(operation);
        match report {
            WorkflowReport::Ready if current && !self.deleting => Ok(true),
            WorkflowReport::Ready if self.current.is_none() && self.ready => Ok(false),
            WorkflowReport::Deleted if self.deleted => Ok(false),
            WorkflowReport::Deleted if current && self.deleting => Ok(true),
            WorkflowReport::Ready | WorkflowReport::Deleted => Err(operation),
            WorkflowReport::Stalled | WorkflowReport::Failed => Ok(current),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back() {
        for s in TopicStatus::texts().chain(OperationKind::texts()).chain(OperationState::texts()) {
            assert!(
                TopicStatus::parse(s).is_some()
                    || OperationKind::parse(s).is_some()
                    || OperationState::parse(s).is_some()
            );
        }
        assert_eq!(OperationState::parse("succeeded"), Some(OperationState::Succeeded));
        assert_eq!(StepState::parse("nope"), None);
        assert!(OperationState::Cancelled.finished() && !OperationState::Stalled.finished());
    }

    #[test]
    fn a_workflow_report_is_recorded_once_and_only_for_the_running_operation() {
        use crate::ids::OperationId;
        let (a, b) =
            (OperationId::from_uuid(uuid::Uuid::from_u128(1)), OperationId::from_uuid(uuid::Uuid::from_u128(2)));
        let running = OperationTrack { current: Some(a), ready: false, deleting: false, deleted: false };
        assert_eq!(running.judge(a, WorkflowReport::Ready), Ok(true));
        assert_eq!(running.judge(b, WorkflowReport::Ready), Err(b));
        assert_eq!(running.judge(a, WorkflowReport::Deleted), Err(a), "not being deleted");
        assert_eq!(running.judge(b, WorkflowReport::Stalled), Ok(false), "another operation's stall says nothing");
        let done = OperationTrack { current: None, ready: true, deleting: false, deleted: false };
        assert_eq!(done.judge(a, WorkflowReport::Ready), Ok(false), "a repeat records nothing");
        assert_eq!(done.judge(a, WorkflowReport::Failed), Ok(false));
        let deleting = OperationTrack { current: Some(a), ready: true, deleting: true, deleted: false };
        assert_eq!(deleting.judge(a, WorkflowReport::Ready), Err(a));
        assert_eq!(deleting.judge(a, WorkflowReport::Deleted), Ok(true));
        let gone = OperationTrack { current: None, ready: true, deleting: true, deleted: true };
        assert_eq!(gone.judge(b, WorkflowReport::Deleted), Ok(false));
    }
}
