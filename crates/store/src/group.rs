//! Group commit: the appends of concurrent commands that wait while others are being written go to PostgreSQL
//! together, as one statement and one transaction, so they share its round trip, its executor start, its commit
//! and its WAL flush.
//!
//! There is no timer and no standing task. An append joins the queue, then waits for its outcome or for one of
//! [`LEADERS`] slots, whichever comes first. The one that gets a slot takes everything queued (its own append, or
//! the ones that arrived after a leader took it) and writes it, from a task of its own so that a caller who goes
//! away does not cut the others' statement short. An append that arrives when nothing is being written is written
//! at once, alone, as before. One whose caller went away before a leader took it is not written.
//!
//! All or nothing holds per group, and each command must still get its own answer. So a group that PostgreSQL
//! refused (a taken name, a sequence a concurrent command took, a used idempotency key: nothing was written) tells
//! each of its appends to run again alone, which gives each command exactly the answer it would have had alone. An
//! error that is not PostgreSQL's refusal (the connection broke, no connection came) leaves the outcome unknown,
//! for the group as for an append alone, and each of its commands gets that error.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::DirectPool;
use crate::invariants::Append;

/// At most this many group statements are written at once. While they run, the appends that arrive wait and
/// form the next groups.
pub const LEADERS: usize = 2;

/// At most this many appends go in one statement (a statement carries at most 65,535 parameters, and a command
/// about twenty); the rest wait for the next.
pub const GROUP_MAX: usize = 32;

/// What became of an append given to [`Appends::write`].
pub(crate) enum Outcome {
    /// Written (committed), or failed with this error, the outcome of its group's statement.
    Done(Result<(), sqlx::Error>),
    /// Its group was refused by PostgreSQL and nothing was written: the caller runs its append again, alone.
    Alone,
}

struct Waiting {
    append: Append,
    outcome: oneshot::Sender<Outcome>,
}

/// The appends waiting to be written by a process' command handlers (one per [`DirectPool`]).
pub(crate) struct Appends {
    queue: Mutex<Vec<Waiting>>,
    leaders: Arc<Semaphore>,
}

impl Default for Appends {
    fn default() -> Self {
        Self { queue: Mutex::new(Vec::new()), leaders: Arc::new(Semaphore::new(LEADERS)) }
    }
}

impl Appends {
    /// Writes `append`, with whatever other appends wait at the same time.
    pub(crate) async fn write(&self, pool: &Arc<DirectPool>, append: Append) -> Outcome {
        let (sender, mut outcome) = oneshot::channel();
        self.lock().push(Waiting { append, outcome: sender });
        let permit = tokio::select! {
            biased;
            done = &mut outcome => return done.unwrap_or_else(|_| lost()),
            permit = self.leaders.clone().acquire_owned() => permit.expect("the leaders' semaphore is never closed"),
        };
        // An append whose caller went away before a leader took it is dropped unwritten, as it was before it was
        // sent when each append went alone (it would otherwise go out with a later group, from state since gone).
        let group: Vec<Waiting> = {
            let mut queue = self.lock();
            let taken = queue.len().min(GROUP_MAX);
            queue.drain(..taken).filter(|w| !w.outcome.is_closed()).collect()
        };
        if group.is_empty() {
            // Another leader took this append; its outcome is on the way.
            drop(permit);
        } else {
            tokio::spawn(write_group(pool.clone(), group, permit));
        }
        outcome.await.unwrap_or_else(|_| lost())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The outcome of an append whose group's task ended without one (it panicked): unknown, as for a broken
/// connection.
fn lost() -> Outcome {
    Outcome::Done(Err(sqlx::Error::Protocol("the append's group ended without an outcome".into())))
}

async fn write_group(pool: Arc<DirectPool>, group: Vec<Waiting>, _leader: OwnedSemaphorePermit) {
    let (appends, senders): (Vec<Append>, Vec<oneshot::Sender<Outcome>>) =
        group.into_iter().map(|w| (w.append, w.outcome)).unzip();
    let mut query = Append::statement(appends);
    let result = pool.run(async |conn| query.build().execute(conn).await.map(drop)).await;
    match result {
        Err(sqlx::Error::Database(_)) if senders.len() > 1 => {
            for sender in senders {
                let _ = sender.send(Outcome::Alone);
            }
        }
        Ok(()) => {
            for sender in senders {
                let _ = sender.send(Outcome::Done(Ok(())));
            }
        }
        Err(e) => {
            let mut senders = senders.into_iter();
            let first = senders.next();
            for sender in senders {
                let _ = sender.send(Outcome::Done(Err(same_error(&e))));
            }
            if let Some(sender) = first {
                let _ = sender.send(Outcome::Done(Err(e)));
            }
        }
    }
}

/// An error of the same kind as `e` (sqlx's errors are not `Clone`), for each command of a group whose statement
/// failed without PostgreSQL refusing it. The kind decides the caller's answer (`repository::db_error`).
fn same_error(e: &sqlx::Error) -> sqlx::Error {
    match e {
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        sqlx::Error::Tls(tls) => sqlx::Error::Io(std::io::Error::other(tls.to_string())),
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}
