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
    match Append::execute_all(appends, &pool).await {
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

#[cfg(test)]
mod tests {
    //! Against the PostgreSQL `DATABASE_URL` names (the development one by default), in a table of the test's own.

    use std::time::{Duration, Instant};

    use sqlx::{Connection, PgConnection, PgPool};

    use super::*;

    fn database_url() -> String {
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://polaris@127.0.0.1:55432/polaris".into())
    }

    fn insert(table: &str, x: i32) -> Append {
        let mut append = Append::new();
        let head = format!("INSERT INTO {table} (x) VALUES (");
        append.part(move |q| {
            q.push(head).push_bind(x).push(")");
        });
        append
    }

    async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done().await {
            assert!(Instant::now() < deadline, "not within 20 s: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_that_wait_together_commit_together_and_an_abandoned_one_is_not_written() {
        let url = database_url();
        let pool = PgPool::connect(&url).await.unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e}"));
        let table = format!("group_commit_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE TABLE {table} (x int PRIMARY KEY)")).execute(&pool).await.expect("table");
        let direct = DirectPool::beside(&pool);
        let write = |x: i32| {
            let (direct, append) = (direct.clone(), insert(&table, x));
            tokio::spawn(async move {
                match direct.appends.write(&direct, append).await {
                    Outcome::Done(result) => result.map_err(|e| e.to_string()),
                    Outcome::Alone => Err("refused as a group".to_owned()),
                }
            })
        };
        let blocked = async || -> i64 {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'",
            )
            .bind(&table)
            .fetch_one(&pool)
            .await
            .expect("pg_stat_activity")
        };

        // While the table is locked, every write waits: the first two hold both leader slots.
        let mut holder = PgConnection::connect(&url).await.expect("a connection to hold the lock");
        let mut lock = holder.begin().await.expect("begin");
        sqlx::query(&format!("LOCK TABLE {table} IN SHARE MODE")).execute(&mut *lock).await.expect("lock");
        let first = write(1);
        until("the first write waits on the lock", async || blocked().await == 1).await;
        let second = write(2);
        until("the second write waits on the lock", async || blocked().await == 2).await;
        assert_eq!(LEADERS, 2, "this test fills every leader slot");

        // Three more queue behind them, and a fourth whose caller goes away while it waits.
        let queued: Vec<_> = (3..=5).map(write).collect();
        let abandoned = write(6);
        until("four appends queued", async || direct.appends.lock().len() == 4).await;
        abandoned.abort();
        assert!(abandoned.await.expect_err("aborted").is_cancelled());
        lock.rollback().await.expect("release the lock");

        for (x, task) in [first, second].into_iter().chain(queued).enumerate() {
            assert_eq!(task.await.expect("task"), Ok(()), "write {}", x + 1);
        }
        let rows: Vec<(i32, String)> = sqlx::query_as(&format!("SELECT x, xmin::text FROM {table} ORDER BY x"))
            .fetch_all(&pool)
            .await
            .expect("rows");
        let xs: Vec<i32> = rows.iter().map(|(x, _)| *x).collect();
        assert_eq!(xs, [1, 2, 3, 4, 5], "every write but the abandoned one, once");
        assert!(
            rows[2].1 == rows[3].1 && rows[3].1 == rows[4].1,
            "the three queued appends in one transaction: {rows:?}"
        );
        assert_ne!(rows[0].1, rows[2].1, "{rows:?}");
        sqlx::query(&format!("DROP TABLE {table}")).execute(&pool).await.expect("drop");
    }
}
