//! The datastore: the SQL of the read models and of the queries over the event log, next to the row types that
//! both their writers (the projector) and their readers (the API, the workers) use. Code above the store calls
//! these functions; it does not write SQL of its own.
//!
//! Moving every statement here is in progress (issue #12): every statement `crates/api` ran is here (`events` with
//! the feed, `clusters`, `operations`, `topics`, `targets`, `policies`, `tenancy`, `audit`), apart from the
//! readiness probe's `SELECT 1`; the projector and the workers' subscriber still write their own, and the API
//! still holds a `PgPool` and transactions.

pub mod audit;
pub mod clusters;
pub mod events;
pub mod operations;
pub mod policies;
pub mod targets;
pub mod tenancy;
pub mod topics;
