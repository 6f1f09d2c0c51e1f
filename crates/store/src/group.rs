//! Group commit: the appends of concurrent commands that wait while others are being written go to PostgreSQL
//! together, as one statement and one transaction, so they share its round trip, its executor start, its commit
//! and its WAL flush.
//!
//! There is no timer and no standing task. An append that arrives when nothing is being written is written at
//! once, alone, by a writer task of its own. While a writer's statement runs, the appends that arrive queue; when
//! it ends, the same writer takes everything queued (at most [`GROUP_MAX`]) and writes it as its next statement,
//! until the queue is empty. A second writer starts only when [`FOLLOW_MIN`] appends are queued behind a running
//! one, so that two statements can be in flight (one executing while the other waits for its WAL flush) without
//! splitting the queue into groups of one. The statement runs in the writer's task, so a caller who goes away does
//! not cut the others' statement short; an append whose caller went away before a writer took it is not written.
//!
//! All or nothing holds per group, and each command must still get its own answer. So a group that PostgreSQL
//! refused (a taken name, a sequence a concurrent command took, a used idempotency key: nothing was written) tells
//! each of its appends to run again alone, which gives each command exactly the answer it would have had alone. An
//! error that is not PostgreSQL's refusal (the connection broke, no connection came) leaves the outcome unknown,
//! for the group as for an append alone, and each of its commands gets that error.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::DirectPool;
use crate::invariants::Append;

/// At most this many writers (so group statements) run at once.
pub const WRITERS: usize = 2;

/// A writer starts beside a running one only when this many appends wait: two statements then overlap (one
/// executes while the other waits for its WAL flush) only when the queue is long enough to make the second group
/// worth its statement, and a slow statement does not hold up every append of the process. With a second writer
/// for any append that waits, most groups were of one or two; with one writer only, every append waited for one
/// WAL flush at a time (docs/LOAD-AND-FAULTS.md, stops 38 and 39).
pub const FOLLOW_MIN: usize = 3;

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

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    writers: usize,
}

impl Queue {
    /// The next group, taken by a writer. An append whose caller went away before a writer took it is dropped
    /// unwritten, as it was before it was sent when each append went alone (it would otherwise go out with a later
    /// group, from state since gone).
    fn take(&mut self) -> Vec<Waiting> {
        let taken = self.waiting.len().min(GROUP_MAX);
        self.waiting.drain(..taken).filter(|w| !w.outcome.is_closed()).collect()
    }
}

/// The appends waiting to be written by a process' command handlers (one per [`DirectPool`]).
#[derive(Default)]
pub(crate) struct Appends {
    queue: Mutex<Queue>,
}

impl Appends {
    /// Writes `append`, with whatever other appends wait at the same time.
    pub(crate) async fn write(&self, pool: &Arc<DirectPool>, append: Append) -> Outcome {
        let (sender, outcome) = oneshot::channel();
        let group = {
            let mut queue = self.lock();
            queue.waiting.push(Waiting { append, outcome: sender });
            let start = queue.writers == 0 || (queue.writers < WRITERS && queue.waiting.len() >= FOLLOW_MIN);
            start.then(|| {
                queue.writers += 1;
                queue.take()
            })
        };
        if let Some(group) = group {
            tokio::spawn(writer(pool.clone(), group));
        }
        outcome.await.unwrap_or_else(|_| lost())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The outcome of an append whose group's task ended without one (it panicked): unknown, as for a broken
/// connection.
fn lost() -> Outcome {
    Outcome::Done(Err(sqlx::Error::Protocol("the append's group ended without an outcome".into())))
}

/// Writes `group`, then each group that queued meanwhile, until none waits.
async fn writer(pool: Arc<DirectPool>, mut group: Vec<Waiting>) {
    /// If the writer ends by a panic (a bug; its group's callers then get [`lost`]), counts it out and hands what
    /// queued behind it to a writer of its own, so that those appends are not left waiting for the next append to
    /// start one.
    struct Running(Option<Arc<DirectPool>>);
    impl Drop for Running {
        fn drop(&mut self) {
            let Some(pool) = self.0.take() else { return };
            let next = {
                let mut queue = pool.appends.lock();
                queue.writers -= 1;
                (!queue.waiting.is_empty()).then(|| {
                    queue.writers += 1;
                    queue.take()
                })
            };
            if let Some(group) = next {
                tokio::spawn(writer(pool, group));
            }
        }
    }
    let mut running = Running(Some(pool.clone()));
    loop {
        if !group.is_empty() {
            write_group(&pool, group).await;
        }
        let mut queue = pool.appends.lock();
        if queue.waiting.is_empty() {
            queue.writers -= 1;
            running.0 = None;
            return;
        }
        group = queue.take();
    }
}

async fn write_group(pool: &DirectPool, group: Vec<Waiting>) {
    let (appends, senders): (Vec<Append>, Vec<oneshot::Sender<Outcome>>) =
        group.into_iter().map(|w| (w.append, w.outcome)).unzip();
    match Append::execute_all(appends, pool).await {
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

    /// A table of the test's own, dropped when the test ends, also when it fails: from a thread and a connection
    /// of its own, since a failing test's runtime and pool may be gone.
    struct OwnTable {
        name: String,
    }

    impl OwnTable {
        async fn create(pool: &PgPool, prefix: &str) -> Self {
            let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE TABLE {name} (x int PRIMARY KEY)")).execute(pool).await.expect("table");
            Self { name }
        }
    }

    impl Drop for OwnTable {
        fn drop(&mut self) {
            let (url, name) = (database_url(), self.name.clone());
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async {
                    let mut conn = PgConnection::connect(&url).await.map_err(|e| e.to_string())?;
                    // Never a hang: if a lock a failed test held has not gone with its connection within 10 s,
                    // the table is left, and named below.
                    sqlx::query("SET lock_timeout = '10s'").execute(&mut conn).await.map_err(|e| e.to_string())?;
                    sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
                        .execute(&mut conn)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("the test's table {} was not dropped: {dropped:?}", self.name);
            }
        }
    }

    /// The PostgreSQL the test runs against (its URL and a pool), a direct pool beside it, and `N` tables of the
    /// test's own.
    async fn own_tables<const N: usize>(prefix: &str) -> (String, PgPool, Arc<DirectPool>, [OwnTable; N]) {
        let url = database_url();
        let pool = PgPool::connect(&url).await.unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e}"));
        let mut own = Vec::with_capacity(N);
        for _ in 0..N {
            own.push(OwnTable::create(&pool, prefix).await);
        }
        let own = own.try_into().unwrap_or_else(|_| unreachable!("{N} tables were created"));
        let direct = DirectPool::beside(&pool);
        (url, pool, direct, own)
    }

    fn insert(table: &str, x: i32) -> Append {
        let mut append = Append::new();
        let head = format!("INSERT INTO {table} (x) VALUES (");
        append.part(move |q| {
            q.push(head).push_bind(x).push(")");
        });
        append
    }

    /// Writes `append` through the process' group commit, from a task of its own: its outcome as a test reads it.
    fn spawn_write(direct: &Arc<DirectPool>, append: Append) -> tokio::task::JoinHandle<Result<(), String>> {
        let direct = direct.clone();
        tokio::spawn(async move {
            match direct.appends.write(&direct, append).await {
                Outcome::Done(result) => result.map_err(|e| e.to_string()),
                Outcome::Alone => Err("refused as a group".to_owned()),
            }
        })
    }

    /// How many statements that name `table` wait on a lock.
    async fn waiting_on_locks(pool: &PgPool, table: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'",
        )
        .bind(table)
        .fetch_one(pool)
        .await
        .expect("pg_stat_activity")
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
        let (url, pool, direct, own) = own_tables::<1>("group_commit_test").await;
        let table = own[0].name.clone();
        let write = |x: i32| spawn_write(&direct, insert(&table, x));
        let blocked = async || waiting_on_locks(&pool, &table).await;

        // While the table is locked, every statement waits. The first write starts a writer alone; the next ones
        // queue behind it until FOLLOW_MIN of them start the second writer together.
        assert_eq!(WRITERS, 2, "this test fills every writer");
        let mut holder = PgConnection::connect(&url).await.expect("a connection to hold the lock");
        let mut lock = holder.begin().await.expect("begin");
        sqlx::query(&format!("LOCK TABLE {table} IN SHARE MODE")).execute(&mut *lock).await.expect("lock");
        let mut tasks = vec![write(1)];
        until("the first write waits on the lock", async || blocked().await == 1).await;
        let second_group = 2..=1 + FOLLOW_MIN as i32;
        for x in second_group.clone() {
            tasks.push(write(x));
            if x < *second_group.end() {
                until("a write queues", async || direct.appends.lock().waiting.len() == x as usize - 1).await;
                assert_eq!(blocked().await, 1, "fewer than FOLLOW_MIN queued appends start no other writer");
            }
        }
        until("the second writer waits on the lock", async || blocked().await == 2).await;

        // Two more queue behind both writers, and a third whose caller goes away while it waits.
        let third_group = second_group.end() + 1..=second_group.end() + 2;
        tasks.extend(third_group.clone().map(write));
        let abandoned = write(third_group.end() + 1);
        until("three appends queued", async || direct.appends.lock().waiting.len() == 3).await;
        abandoned.abort();
        assert!(abandoned.await.expect_err("aborted").is_cancelled());
        lock.rollback().await.expect("release the lock");

        for (x, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.expect("task"), Ok(()), "write {}", x + 1);
        }
        let rows: Vec<(i32, String)> = sqlx::query_as(&format!("SELECT x, xmin::text FROM {table} ORDER BY x"))
            .fetch_all(&pool)
            .await
            .expect("rows");
        let xs: Vec<i32> = rows.iter().map(|(x, _)| *x).collect();
        assert_eq!(xs, (1..=*third_group.end()).collect::<Vec<_>>(), "every write but the abandoned one, once");
        let xid = |x: i32| rows[x as usize - 1].1.as_str();
        let groups = [1..=1, second_group, third_group].map(|g| g.map(xid).collect::<Vec<_>>());
        for group in &groups {
            assert!(group.iter().all(|x| *x == group[0]), "each group in one transaction: {rows:?}");
        }
        let firsts = [groups[0][0], groups[1][0], groups[2][0]];
        assert!(firsts[0] != firsts[1] && firsts[1] != firsts[2] && firsts[0] != firsts[2], "{rows:?}");
        until("both writers end with the queue empty", async || direct.appends.lock().writers == 0).await;
    }

    fn keyed(mut append: Append, key: &str) -> Append {
        append.key(|| key.to_owned());
        append
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_groups_that_contend_for_the_same_keys_in_crossed_orders_do_not_deadlock() {
        let (url, pool, direct, own) = own_tables::<2>("group_order_test").await;
        let (table, hold) = (own[0].name.clone(), own[1].name.clone());
        let blocked = async || waiting_on_locks(&pool, &table).await;
        // Each group stops between its two contended inserts, at a row of `hold` that this test's transaction has
        // inserted and not committed; the two groups list the contended rows 1 and 3 in crossed orders.
        let mut holder = PgConnection::connect(&url).await.expect("a connection to hold the rows");
        sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
        sqlx::query(&format!("INSERT INTO {hold} (x) VALUES (1), (2)")).execute(&mut holder).await.expect("hold");
        let group = |rows: [(&str, i32, &str); 3]| -> Vec<Append> {
            rows.map(|(table, x, key)| keyed(insert(table, x), key)).into()
        };
        let first = group([(&table, 1, "1"), (&hold, 1, "2"), (&table, 3, "3")]);
        let second = group([(&table, 3, "3"), (&hold, 2, "2"), (&table, 1, "1")]);
        let spawn = |appends: Vec<Append>| {
            let direct = direct.clone();
            tokio::spawn(async move { Append::execute_all(appends, &direct).await })
        };
        let first = spawn(first);
        until("the first group waits at the held row", async || blocked().await == 1).await;
        let second = spawn(second);
        until("the second group waits too", async || blocked().await == 2).await;
        sqlx::query("ROLLBACK").execute(&mut holder).await.expect("release the held rows");

        let code = |result: Result<(), sqlx::Error>| match result {
            Ok(()) => "written".to_owned(),
            Err(sqlx::Error::Database(e)) => e.code().map_or_else(|| e.to_string(), |c| c.into_owned()),
            Err(e) => e.to_string(),
        };
        let outcomes = [code(first.await.expect("task")), code(second.await.expect("task"))];
        // In the keys' order both take row 1 (or both row 3) first: the second waits for the first, which commits,
        // and is then refused (23505, unique_violation). In the crossed orders each took one row and waited for
        // the other's: PostgreSQL's deadlock check failed one (40P01) after a second.
        assert_eq!(outcomes, ["written".to_owned(), "23505".to_owned()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_queued_behind_a_writer_that_panicked_is_still_written() {
        let (url, pool, direct, own) = own_tables::<2>("group_panic_test").await;
        let (first, second) = (own[0].name.clone(), own[1].name.clone());
        let write = |append: Append| spawn_write(&direct, append);
        let queued = || direct.appends.lock().waiting.len();
        let mut holders = Vec::new();
        for table in [&first, &second] {
            let mut holder = PgConnection::connect(&url).await.expect("a connection to hold a lock");
            sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
            sqlx::query(&format!("LOCK TABLE {table} IN SHARE MODE")).execute(&mut holder).await.expect("lock");
            holders.push(holder);
        }

        // Writer A waits on the first table, writer B (FOLLOW_MIN appends) on the second, which stays locked: B
        // cannot take what queues after them.
        let a = write(insert(&first, 1));
        until("writer A starts", async || direct.appends.lock().writers == 1).await;
        let b: Vec<_> = (2..2 + FOLLOW_MIN as i32).map(|x| write(insert(&second, x))).collect();
        until("writer B starts", async || direct.appends.lock().writers == 2 && queued() == 0).await;
        // A's next group: an append whose statement panics while it is built, and GROUP_MAX - 1 more. One more
        // queues behind that group.
        let mut bug = Append::new();
        bug.part(|_| panic!("a bug while building an append's statement (this test's)"));
        let mut panicked = vec![write(bug)];
        until("the append with the bug queued", async || queued() == 1).await;
        panicked.extend((100..100 + GROUP_MAX as i32 - 1).map(|x| write(insert(&first, x))));
        until("a full group queued", async || queued() == GROUP_MAX).await;
        let behind = write(insert(&first, 1000));
        until("one more queued behind it", async || queued() == GROUP_MAX + 1).await;

        sqlx::query("ROLLBACK").execute(&mut holders[0]).await.expect("release the first table");
        assert_eq!(a.await.expect("task"), Ok(()));
        for task in panicked {
            let outcome = task.await.expect("task");
            assert!(outcome.as_ref().is_err_and(|e| e.contains("without an outcome")), "{outcome:?}");
        }
        let written = tokio::time::timeout(Duration::from_secs(20), behind).await;
        assert_eq!(
            written.map(|task| task.expect("task")),
            Ok(Ok(())),
            "the append queued behind a writer that panicked, with the other writer still busy"
        );

        sqlx::query("ROLLBACK").execute(&mut holders[1]).await.expect("release the second table");
        for task in b {
            assert_eq!(task.await.expect("task"), Ok(()));
        }
        until("both writers end with the queue empty", async || direct.appends.lock().writers == 0).await;
        let rows: Vec<i32> =
            sqlx::query_scalar(&format!("SELECT x FROM {first} ORDER BY x")).fetch_all(&pool).await.expect("rows");
        assert_eq!(rows, [1, 1000], "nothing of the group that panicked was written");
    }
}
