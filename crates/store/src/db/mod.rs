//! The datastore: the SQL of the read models and of the queries over the event log, next to the row types that
//! both their writers (the projector) and their readers (the API, the workers) use. Code above the store calls
//! these functions; it does not write SQL of its own.
//!
//! Moving every statement here is in progress (issue #12): `events` (with the feed), `clusters`, `operations`,
//! `topics`, `targets`, `policies` and `tenancy` (orgs, tokens) are here; the audit log and idempotency keys still
//! hold SQL in `crates/api`, and the projector and the workers' subscriber still write their own.

pub mod clusters;
pub mod events;
pub mod operations;
pub mod policies;
pub mod targets;
pub mod tenancy;
pub mod topics;
