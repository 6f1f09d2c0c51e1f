//! Connections for the command path's statements, handed back without sqlx's ping.
//!
//! sqlx's pool sends a Sync and waits for PostgreSQL's answer every time a connection goes back to it, from a task
//! it spawns for that (sqlx-core 0.8 `return_to_pool`, unconditional): one more round trip after every statement.
//! A command runs two statements, the token lookup and the append, so half of its round trips were those pings.
//!
//! Here a connection goes back as it is once its statement has finished, answered or refused by PostgreSQL: sqlx
//! drains what is left of an answer before it sends the next statement anyway (`wait_until_ready`), which is all
//! the ping does. A connection whose statement did not finish (the caller went away mid-statement, the socket
//! broke, the answer made no sense) is closed instead of reused. One idle for [`crate::PING_IDLE_AFTER`] is
//! pinged before it is handed out again, as the main pool does, so the connections a PostgreSQL restart cut are
//! replaced before a statement meets them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Semaphore;

/// How long a statement waits for a connection, or for a new one to open, before it fails as the main pool's
/// would (`PoolTimedOut`: the caller answers 503).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many connections of a process run command statements at once; more wait. Two cores' PostgreSQL
/// gains nothing from more.
pub const DIRECT_CONNECTIONS: usize = 16;

/// A small pool of connections without the ping on release (see the module).
pub struct DirectPool {
    options: PgConnectOptions,
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    permits: Semaphore,
    /// The appends waiting to be written together (`crate::group`).
    pub(crate) appends: crate::group::Appends,
}

impl DirectPool {
    /// A pool opening connections as `pool` does (same server, user and session settings), at most
    /// [`DIRECT_CONNECTIONS`] at once. A process shares one between its command handlers.
    pub fn beside(pool: &PgPool) -> Arc<Self> {
        Arc::new(DirectPool {
            options: (*pool.connect_options()).clone(),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(DIRECT_CONNECTIONS),
            appends: Default::default(),
        })
    }

    /// Runs one statement on a connection of the pool. The connection goes back to the pool when the statement
    /// finished, with an answer or PostgreSQL's refusal; otherwise it is closed.
    pub async fn run<T>(
        &self,
        statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let _permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let mut conn = self.take().await?;
        // Dropped (closed) if this future is dropped before the statement finishes.
        let result = statement(&mut conn).await;
        if matches!(result, Ok(_) | Err(sqlx::Error::Database(_))) {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push((conn, Instant::now()));
        }
        result
    }

    /// An idle connection that answers, or a new one.
    async fn take(&self) -> Result<PgConnection, sqlx::Error> {
        loop {
            let next = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some((mut conn, since)) = next else { break };
            if since.elapsed() < crate::PING_IDLE_AFTER || conn.ping().await.is_ok() {
                return Ok(conn);
            }
        }
        tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&self.options))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }
}
