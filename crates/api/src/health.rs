//! Liveness, readiness, metrics, and the answers for paths and methods that do not exist.

use std::any::Any;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, AppError};

/// A dependency `/readyz` checks. The server supplies these (Kafka, Temporal) so the API crate stays free of
/// their clients.
pub trait DependencyProbe: Send + Sync {
    fn name(&self) -> &'static str;
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct DependencyStatus {
    pub name: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub status: String,
    pub dependencies: Vec<DependencyStatus>,
}

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/healthz", operation_id = "health_live", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Readiness: PostgreSQL and every configured dependency answer.
#[utoipa::path(get, path = "/readyz", operation_id = "health_ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is down", body = Readiness),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let mut deps = Vec::new();
    let pg = polaris_app::admin::database_ready(&state.app, std::time::Duration::from_secs(2)).await;
    deps.push(DependencyStatus { name: "postgres".into(), ok: pg.is_ok(), error: pg.err() });
    for probe in state.probes.iter() {
        let r = tokio::time::timeout(std::time::Duration::from_secs(3), probe.check()).await;
        let error = match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("timed out".into()),
        };
        deps.push(DependencyStatus { name: probe.name().into(), ok: error.is_none(), error });
    }
    let ready = deps.iter().all(|d| d.ok);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { status: if ready { "ready" } else { "not ready" }.into(), dependencies: deps }))
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics_get", tag = "health",
    responses((status = 200, description = "Metrics", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    crate::metrics::refresh_drift(&state).await;
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], out)
            .into_response(),
        Err(e) => ApiError(AppError::Internal(format!("encoding metrics: {e}"))).into_response(),
    }
}

/// Reads the body here, up to the 1 MiB limit. A larger body is read to its end (up to 64 MiB, within 10 s) and
/// discarded before the `413` goes out: answering while the client is still sending makes many clients see a
/// reset connection instead of the answer.
pub async fn limit_body(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use futures::StreamExt;
    const DRAIN_CAP: usize = 64 * 1024 * 1024;
    let (parts, body) = req.into_parts();
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0usize;
    let read = async {
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { return Err(()) };
            total += chunk.len();
            if total <= crate::BODY_LIMIT_BYTES {
                buf.extend_from_slice(&chunk);
            } else if total > DRAIN_CAP {
                break;
            }
        }
        Ok(())
    };
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), read).await;
    if total > crate::BODY_LIMIT_BYTES {
        return ApiError(AppError::PayloadTooLarge).into_response();
    }
    match outcome {
        Ok(Ok(())) => next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(buf))).await,
        Ok(Err(())) | Err(_) => ApiError::validation("the request body could not be read", None).into_response(),
    }
}

pub async fn not_found() -> ApiError {
    ApiError(AppError::NotFound("route"))
}

pub async fn method_not_allowed() -> ApiError {
    ApiError(AppError::MethodNotAllowed)
}

/// A panic is a bug; the client still gets a problem document, never a dropped connection or a stack trace.
pub fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    ApiError(AppError::Internal(format!("handler panicked: {msg}"))).into_response()
}
