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
    /// A topic's status (SPEC.md §1), as `topic::Topic::status` derives it.
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
}
