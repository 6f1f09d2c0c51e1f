//! The Polaris REST API (SPEC.md §2). It records intent and reads read models; it never talks to Kafka
//! producers, Kubernetes or Temporal (ARCHITECTURE.md). Long work returns `202` with an operation to follow.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod clusters;
pub mod dashboard;
pub mod drift;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod operations;
pub mod policies;
pub mod preconditions;
pub mod targets;
pub mod tenancy;
pub mod topics;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
pub use polaris_app::App;
use prometheus_client::registry::Registry;

pub use health::DependencyProbe;
pub use metrics::ApiMetrics;
pub use openapi::ApiDoc;

/// Request bodies above this are refused with `413 PAYLOAD_TOO_LARGE`.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// What every handler reads, behind one `Arc`: axum clones the state for each request's middleware and extractors
/// (four or five times a request), which for the fields themselves was some twenty reference counts and a path's
/// allocation each time, and as many again to drop them (0.7% of a command's CPU under load, `perf`).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl AppState {
    pub fn new(inner: AppStateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

pub struct AppStateInner {
    /// The application layer every handler calls.
    pub app: App,
    pub metrics: ApiMetrics,
    pub registry: Arc<Registry>,
    /// Dependencies `/readyz` checks besides PostgreSQL (Kafka, Temporal), supplied by the server.
    pub probes: Arc<Vec<Box<dyn DependencyProbe>>>,
    /// Rebuilds read models for `POST /v1/admin/replay` (supplied by the server).
    pub replay: Option<Arc<dyn admin::ReplayRunner>>,
    /// The dashboard's built assets (`index.html` and its files); the API works without them.
    pub dashboard_dir: Option<std::path::PathBuf>,
}

/// What a process without the API role serves on its listen address: liveness, readiness and metrics, for
/// Kubernetes probes and Prometheus.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(health::not_found)
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    let (routes, _) = openapi::routes().split_for_parts();
    routes
        // Swagger UI from vendored assets (no download at build or run time); it also serves the document.
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi::openapi()))
        .fallback(dashboard::fallback)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), audit::mutations))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn(health::limit_body))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(health::panic_response))
        .with_state(state)
}
