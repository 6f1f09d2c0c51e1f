//! A consumer group's position committed to Kafka at a pace, not after every batch.
//!
//! The projector and the workers' subscriber committed after each batch they handled. At 1,000 commands a second
//! that was hundreds of OffsetCommit requests a second to the group coordinator, on the connection that also
//! carries the consumer's heartbeats. A broker answers a connection's requests one at a time, so the heartbeats
//! queued behind the commits; after 6 s without an answer the consumer's session timed out, it gave up its
//! partitions, and the read models stopped for the rest of the load (`polaris-bench lag`, docs/LOAD-AND-FAULTS.md).
//!
//! Committed at most once a [`COMMIT_EVERY`], the position Kafka holds is at most that far behind what was
//! handled. Whatever comes again after a restart or a rebalance was handled already, and both consumers ignore a
//! redelivery (the projector by each aggregate's last applied sequence, the subscriber by workflow id).

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use tokio::time::Instant;

/// How often a consumer commits, at most.
pub const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// The commits of one consumer: [`handled`](Self::handled) after each batch, [`due`](Self::due) as a branch of
/// the consume loop's `select!`, [`commit`](Self::commit) when either says so and once more when the loop ends.
#[derive(Debug)]
pub struct PacedCommits {
    last: Instant,
    pending: bool,
}

impl Default for PacedCommits {
    fn default() -> Self {
        Self { last: Instant::now(), pending: false }
    }
}

impl PacedCommits {
    /// A batch was handled. True when its position is to be committed now (the last commit is [`COMMIT_EVERY`]
    /// old); otherwise [`Self::due`] resolves when it is.
    pub fn handled(&mut self) -> bool {
        self.pending = true;
        self.last.elapsed() >= COMMIT_EVERY
    }

    /// Resolves once a handled position has waited [`COMMIT_EVERY`] uncommitted; never while there is none.
    pub async fn due(&self) {
        match self.due_at() {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending::<()>().await,
        }
    }

    /// When [`Self::due`] resolves: a period after the last commit, if a handled position waits.
    fn due_at(&self) -> Option<Instant> {
        self.pending.then_some(self.last + COMMIT_EVERY)
    }

    /// Commits what was handled, if anything was since the last commit. Asynchronously: a commit that is lost
    /// only means a redelivery, which is ignored.
    pub fn commit(&mut self, consumer: &StreamConsumer) -> KafkaResult<()> {
        if !self.pending {
            return Ok(());
        }
        self.last = Instant::now();
        self.pending = false;
        consumer.commit_consumer_state(CommitMode::Async)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The clock is not paused (tokio's test-util would give the test builds a tokio of their own features, and so
    // a second build of everything above it): the test checks when `due` is set to resolve, not how long it waited.
    #[test]
    fn a_handled_position_waits_for_its_period_and_nothing_handled_is_never_due() {
        let mut busy = PacedCommits::default();
        assert!(!busy.handled(), "a batch handled right after the last commit is not committed at once");
        assert_eq!(busy.due_at(), Some(busy.last + COMMIT_EVERY), "due when the handled position has waited a period");

        let quiet = PacedCommits::default();
        assert_eq!(quiet.due_at(), None, "nothing handled is never due");
        let mut quiet = PacedCommits { last: Instant::now() - COMMIT_EVERY, ..quiet };
        assert!(quiet.handled(), "the first batch after a quiet period is committed at once");
    }
}
