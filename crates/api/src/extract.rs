//! Extractors whose rejections are problem+json: axum's own answer plain text with varying statuses.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

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
        object_body(&value)?;
        normalize(&mut value)?;
        serde_json::from_value(value).map(ApiJson).map_err(|e| ApiError::validation(e.to_string(), None))
    }
}

/// Every request body is a JSON object (serde would also read a struct from an array of its fields).
pub(crate) fn object_body(value: &serde_json::Value) -> Result<(), ApiError> {
    if !value.is_object() {
        return Err(ApiError::validation("the request body must be a JSON object", None));
    }
    // The one nested body: `{"command", "input"}` of a policy evaluation.
    match value.get("input") {
        Some(input) if !input.is_object() => Err(ApiError::validation("input must be a JSON object", Some("input"))),
        _ => Ok(()),
    }
}

/// JSON Schema calls `3.0` an integer, serde does not: whole numbers written with a fraction become integers.
/// Text with NUL characters is refused (PostgreSQL cannot store it, and no name or value needs it).
pub(crate) fn normalize(value: &mut serde_json::Value) -> Result<(), ApiError> {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *value = if f < 0.0 { Value::from(f as i64) } else { Value::from(f as u64) };
            }
            Ok(())
        }
        Value::String(s) if s.contains('\0') => Err(no_nul()),
        Value::Array(items) => items.iter_mut().try_for_each(normalize),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                return Err(no_nul());
            }
            map.values_mut().try_for_each(normalize)
        }
        _ => Ok(()),
    }
}

fn no_nul() -> ApiError {
    ApiError::validation("text may not contain NUL characters", None)
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("request bodies must be sent with Content-Type: application/json".into())
        }
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
            return Err(no_nul());
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
            .map_err(|_: PathRejection| ApiError::NotFound("resource"))
    }
}
