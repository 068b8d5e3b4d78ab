//! Extractors whose rejections are our error format, not axum's plain text.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde_json::Value;

use super::{ApiError, AppState};

/// A JSON request body parsed into a `Value`: 400 if malformed, 413 if over the limit.
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(state.config.max_body_bytes)
            } else {
                ApiError::from(r)
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError::MalformedJson(
                "the request body is empty; send a JSON job spec".into(),
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::MalformedJson(e.to_string()))
    }
}

/// Query parameters as strings; each handler parses and names its own fields.
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Params(q))
            .map_err(|e| ApiError::BadRequest {
                field: None,
                message: format!("bad query string: {}", e.body_text()),
            })
    }
}

impl Params {
    /// Refuse parameters the endpoint does not know, naming them.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(ApiError::BadRequest {
                field: Some(k.clone()),
                message: format!("unknown query parameter {k:?}; allowed: {}", known.join(", ")),
            }),
            None => Ok(()),
        }
    }

    /// The parameters without the empty ones (a GET form sends its blank fields as `name=`).
    pub fn without_empty(mut self) -> Params {
        self.0.retain(|_, v| !v.is_empty());
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Parse a parameter, with a 422 naming it and the allowed range when it does not parse.
    pub fn parse<T: std::str::FromStr>(&self, name: &str, allowed: &str) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse::<T>()
                .map(Some)
                .map_err(|_| ApiError::invalid(name, format!("{raw:?} is not valid; allowed: {allowed}"))),
        }
    }

    /// Parse a parameter naming a value of a string enum: 422 naming it and the allowed names.
    pub fn parse_name<T>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T: std::str::FromStr<Err = crate::spec::names::UnknownName>,
    {
        self.get(name)
            .map(|raw| raw.parse::<T>().map_err(|e| ApiError::invalid(name, e.to_string())))
            .transpose()
    }

    pub fn require<T: std::str::FromStr>(&self, name: &str, allowed: &str) -> Result<T, ApiError> {
        self.parse(name, allowed)?
            .ok_or_else(|| ApiError::invalid(name, format!("required; allowed: {allowed}")))
    }
}

/// Path parameters whose rejection (e.g. a segment that is not UTF-8) is a JSON 400.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| ApiError::BadRequest {
                field: Some("id".into()),
                message: format!("bad path: {}", e.body_text()),
            })
    }
}
