//! The datastore: the SQL of the read models and of the queries over the event log, next to the row types that
//! both their writers (the projector) and their readers (the API, the workers) use. Code above the store calls
//! these functions; it does not write SQL of its own.
//!
//! Moving every statement here is in progress (issue #12): every statement `crates/api` ran is here (`events` with
//! the feed, `clusters`, `operations`, `topics`, `targets`, `policies`, `tenancy`, `audit`),  and the API no
//! longer depends on sqlx (it holds a [`crate::Pool`] and transactions); the projector and the workers'
//! subscriber still write their own.

pub mod audit;
pub mod clusters;
pub mod drifts;
pub mod events;
pub mod operations;
pub mod policies;
pub mod projection;
pub mod replay;
pub mod targets;
pub mod tenancy;
pub mod topics;
pub mod users;

/// Whether the database answers (the readiness probe).
pub async fn ping(pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}
