//! Extractors whose rejections are problem+json: axum's own answer plain text with varying statuses.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, AppError};

/// JSON body: malformed JSON, wrong types and unknown fields are `400 VALIDATION_FAILED`; a body over the
/// limit is `413 PAYLOAD_TOO_LARGE`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        polaris_app::input::object_body(&value)?;
        polaris_app::input::normalize(&mut value)?;
        serde_json::from_value(value).map(ApiJson).map_err(|e| ApiError::validation(e.to_string(), None))
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError(AppError::PayloadTooLarge),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError(AppError::UnsupportedMediaType(
            "request bodies must be sent with Content-Type: application/json".into(),
        )),
        _ => match r {
            JsonRejection::JsonDataError(e) => ApiError::validation(e.body_text(), None),
            JsonRejection::JsonSyntaxError(e) => ApiError::validation(e.body_text(), None),
            other => ApiError::validation(other.body_text(), None),
        },
    }
}

/// Query string: bad values are `400 VALIDATION_FAILED`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        if query.contains("%00") || query.contains('\0') {
            return Err(AppError::validation("text may not contain NUL characters", None).into());
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r: QueryRejection| ApiError::validation(r.body_text(), None))
    }
}

/// A resource id in the path. An id that is not a UUID names no resource: `404 NOT_FOUND`.
pub struct IdPath(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<uuid::Uuid>::from_request_parts(parts, state)
            .await
            .map(|p| IdPath(p.0))
            .map_err(|_: PathRejection| ApiError(AppError::NotFound("resource")))
    }
}
