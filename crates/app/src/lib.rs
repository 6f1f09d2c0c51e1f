//! The application layer (ARCHITECTURE.md): one function per use case, called by every front door. Each takes
//! the caller and a typed input and answers a typed output or the one [`AppError`]. Authorization, policy
//! judgement, idempotency claims, the audit entry's facts, the aggregate call and the read-back happen here,
//! once, so REST (`polaris-api`) and gRPC (`polaris-grpc`) only parse, call and map.

pub mod admin;
pub mod audit;
pub mod cache;
pub mod caller;
pub mod clusters;
pub mod command;
pub mod drift;
pub mod dryrun;
pub mod error;
pub mod events;
pub mod fold;
pub mod input;
pub mod kafka_metrics;
pub mod metrics;
pub mod operations;
pub mod paging;
pub mod policies;
pub mod preconditions;
pub mod ratelimit;
pub mod schema;
pub mod targets;
pub mod tenancy;
pub mod topics;
pub mod users;

use std::sync::Arc;

use polaris_store::{ClusterCqrs, DirectPool, DriftCqrs, Pool, TopicCqrs, UserCqrs};

pub use caller::{Caller, Role};
pub use error::AppError;
pub use metrics::CommandMetrics;

/// What every use case runs against: the database, the aggregates' command handlers, the rate limits and the
/// command metrics. Cheap to clone; one per process, shared by the front doors.
#[derive(Clone)]
pub struct App {
    pub pool: Pool,
    /// The command path's connections: the token lookup's and the appends' (see `polaris_store::direct`).
    pub direct: Arc<DirectPool>,
    /// Token lookups read recently, shared by this process' doors.
    pub bearers: Arc<caller::BearerCache>,
    pub clusters: Arc<ClusterCqrs>,
    pub topics: Arc<TopicCqrs>,
    pub users: Arc<UserCqrs>,
    pub drifts: Arc<DriftCqrs>,
    /// The platform's key Kafka user passwords are derived with (`None`: users cannot be created here).
    pub credentials: Option<Arc<polaris_domain::credentials::CredentialsKey>>,
    pub metrics: CommandMetrics,
    /// The per-token request limit (this replica's share).
    pub rate_limiter: Arc<ratelimit::RateLimiter>,
    /// The per-address limit of requests without a valid token (this replica's share).
    pub anonymous_limiter: Arc<ratelimit::RateLimiter>,
    /// The Prometheus that scrapes the managed brokers, for the cluster page's charts (`None`: not configured).
    pub prometheus: Option<Arc<dyn kafka_metrics::MetricsSource>>,
    /// Published policy bundles by (org, version), shared by this process' doors.
    pub policy_bundles: Arc<policies::BundleCache>,
    /// Placements by (org, provider, region, placement epoch), shared by this process' doors.
    pub placements: Arc<targets::PlacementCache>,
}

impl App {
    /// The caller a request's `authorization` value names, not yet admitted (see [`caller::authenticate`]).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AppError> {
        caller::authenticate(&self.direct, &self.bearers, authorization).await
    }

    /// Authenticates a request's `authorization` value and admits its caller (see [`Caller::admit`]). A missing
    /// or bad token from `address` counts against the per-address limit.
    pub async fn caller(
        &self,
        authorization: Option<&str>,
        address: Option<std::net::IpAddr>,
        audit: Option<audit::AuditSlot>,
        idempotency: Option<audit::IdempotencyClaim>,
    ) -> Result<Caller, AppError> {
        match self.authenticate(authorization).await {
            Ok(caller) => caller.admit(audit, idempotency, &self.rate_limiter),
            Err(e @ AppError::Unauthenticated) => {
                if let Some(ip) = address {
                    ratelimit::check(&self.anonymous_limiter, ratelimit::RateKey::Address(ip))?;
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}
