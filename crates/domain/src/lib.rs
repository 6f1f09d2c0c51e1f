//! The Polaris domain: aggregates, their commands and events, typed identifiers and the rules that decide
//! whether a command is accepted. Pure by design: no I/O, no clock, no infrastructure crates. Time, actor and
//! correlation arrive with each command's metadata, so the same command always gets the same verdict and the
//! aggregate tests need nothing but memory.

pub mod acl;
pub mod cluster;
pub mod credentials;
pub mod drift;
pub mod envelope;
pub mod events;
pub mod ids;
pub mod lifecycle;
pub mod metadata;
pub mod naming;
pub mod policy;
pub mod snapshot;
pub mod topic;
pub mod user;

pub use cluster::{Cluster, ClusterCommand, ClusterError, ClusterEvent, RequestCluster};
pub use envelope::EventEnvelope;
pub use ids::{ClusterId, ClusterName, OperationId, OrgId, Provider, Region, TargetId};
pub use metadata::CommandMetadata;
