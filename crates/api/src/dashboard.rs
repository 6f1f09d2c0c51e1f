//! The dashboard's built assets (`dashboard/dist`), served at `/` for any path the API does not own. A path
//! without a file is a dashboard route and gets `index.html`. Without the assets, or under `/v1/`, the answer
//! is the API's own `404 NOT_FOUND` problem.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::AppState;
use crate::error::{ApiError, AppError};

pub async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path();
    let api_path = path == "/v1" || path.starts_with("/v1/");
    let readable = req.method() == Method::GET || req.method() == Method::HEAD;
    match state.dashboard_dir.as_deref() {
        Some(dir) if readable && !api_path && dir.join("index.html").is_file() => {
            let index = ServeFile::new(dir.join("index.html"));
            match ServeDir::new(dir).fallback(index).oneshot(req).await {
                Ok(resp) => resp.into_response(),
                Err(e) => ApiError(AppError::Internal(format!("dashboard assets: {e}"))).into_response(),
            }
        }
        _ => ApiError(AppError::NotFound("route")).into_response(),
    }
}
