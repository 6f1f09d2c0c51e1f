//! The gRPC API (SPEC.md §2b): the services of `proto/polaris/v1`, served beside REST on the API's port (h2c),
//! with `grpc.health.v1` and server reflection. Every method parses its message, calls the application layer
//! (`polaris-app`, the same use cases REST calls) and maps the one application error to a `google.rpc.Status`
//! (`status`). Authentication, rate limits, idempotency and the audit entry (channel `grpc`) are the
//! application layer's, reached through `door`.

pub mod audit;
pub mod clusters;
pub mod codec;
pub mod convert;
pub mod door;
pub mod drift;
pub mod events;
pub mod operations;
pub mod policies;
pub mod status;
pub mod topics;
pub mod users;

pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("polaris.v1");

    /// The file descriptor set of `proto/polaris/v1`, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/polaris_descriptor.bin"));
}

use polaris_app::App;

pub use door::Door;

/// The fully qualified names of Polaris' services.
pub const SERVICES: [&str; 8] = [
    "polaris.v1.ClusterService",
    "polaris.v1.TopicService",
    "polaris.v1.UserService",
    "polaris.v1.DriftService",
    "polaris.v1.OperationService",
    "polaris.v1.EventService",
    "polaris.v1.PolicyService",
    "polaris.v1.AuditService",
];

/// The gRPC services as an axum router without a fallback, to merge into the REST router (one port; gRPC
/// requests are told apart by their paths, `/polaris.v1.*/`, `/grpc.health.v1.Health/`,
/// `/grpc.reflection.v1*/`).
pub fn router(app: App) -> axum::Router {
    let door = Door { app };
    let (health_reporter, health) = tonic_health::server::health_reporter();
    // Every service is SERVING for as long as the process serves: readiness of dependencies is /readyz's.
    let reporter = health_reporter.clone();
    tokio::spawn(async move {
        reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
        for service in SERVICES {
            reporter.set_service_status(service, tonic_health::ServingStatus::Serving).await;
        }
    });
    let described = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = described().build_v1().expect("the compiled descriptor sets are valid");
    let reflection_alpha = described().build_v1alpha().expect("the compiled descriptor sets are valid");
    tonic::service::Routes::from(axum::Router::new())
        .add_service(pb::cluster_service_server::ClusterServiceServer::new(door.clone()))
        .add_service(pb::topic_service_server::TopicServiceServer::new(door.clone()))
        .add_service(pb::user_service_server::UserServiceServer::new(door.clone()))
        .add_service(pb::drift_service_server::DriftServiceServer::new(door.clone()))
        .add_service(pb::operation_service_server::OperationServiceServer::new(door.clone()))
        .add_service(pb::event_service_server::EventServiceServer::new(door.clone()))
        .add_service(pb::policy_service_server::PolicyServiceServer::new(door.clone()))
        .add_service(pb::audit_service_server::AuditServiceServer::new(door))
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .into_axum_router()
}
