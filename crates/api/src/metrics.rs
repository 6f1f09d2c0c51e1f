//! Request and command metrics, and the request id every response carries (`x-request-id`) and every log line
//! of the request is tagged with.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::Instrument;
use uuid::Uuid;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrgLabels {
    pub org_id: String,
}

#[derive(Clone, Default)]
pub struct ApiMetrics {
    requests: Family<HttpLabels, Counter>,
    /// Open drifts per org over clusters not being deleted, read from the `drifts` read model at each scrape.
    pub drift_open: Family<OrgLabels, Gauge>,
    /// The application layer's command metrics (every door's commands), registered with the API's.
    pub commands: polaris_app::CommandMetrics,
}

impl ApiMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register("polaris_api_requests", "API requests by route and status", self.requests.clone());
        registry.register(
            "polaris_drift_open",
            "Open drifts of managed clusters' objects, per org (GET /v1/clusters/{id}/drift)",
            self.drift_open.clone(),
        );
        self.commands.register(registry);
    }
}

pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let request_id = Uuid::new_v4().to_string();
    let method = req.method().to_string();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!("request", id = %request_id, %method, %route);
    let started = Instant::now();
    let mut req = req;
    req.extensions_mut().insert(crate::audit::RequestId(request_id.clone()));
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    span.in_scope(|| tracing::debug!(status, took_ms = started.elapsed().as_millis() as u64, "request done"));
    state.metrics.requests.get_or_create(&HttpLabels { method, route, status }).inc();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Sets `polaris_drift_open` from the read model (an org whose drifts all closed drops to 0, then out).
pub async fn refresh_drift(state: &AppState) {
    match polaris_app::drift::open_counts(&state.app).await {
        Ok(counts) => {
            state.metrics.drift_open.clear();
            for (org, n) in counts {
                state.metrics.drift_open.get_or_create(&OrgLabels { org_id: org.to_string() }).set(n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading open drifts for polaris_drift_open"),
    }
}
