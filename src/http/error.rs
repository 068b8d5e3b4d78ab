//! The one error type of the HTTP boundary, rendered as `{"error": {code, message, field}}`.

use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::jobs::JobError;
use crate::spec::SpecError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("{message}")]
    BadRequest { field: Option<String>, message: String },
    #[error("a bearer token is required for this endpoint")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Invalid(SpecError),
    #[error("the queue is full ({0} jobs queued); try again later")]
    QueueFull(i64),
    #[error("{0}")]
    Quota(String),
    /// The server cannot store anything now (its disk is full); nothing was changed.
    #[error("the server cannot store anything now: its disk is full; nothing was changed, try again later")]
    StorageFull,
    /// A shared resource stayed taken for longer than a request waits (the database's write
    /// lock, the permits of sample downloads); nothing was changed.
    #[error("{0}; nothing was changed, try again in a few seconds")]
    Busy(String),
    #[error("this method is not allowed on this route; see /openapi.json")]
    MethodNotAllowed,
    #[error("the request took longer than {0} s")]
    Timeout(u64),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::QueueFull(_) | ApiError::StorageFull | ApiError::Quota(_) | ApiError::Busy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { code, .. } => code,
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Invalid(_) => "invalid_spec",
            ApiError::QueueFull(_) => "queue_full",
            ApiError::StorageFull => "storage_full",
            ApiError::Busy(_) => "busy",
            ApiError::Quota(_) => "quota_exceeded",
            ApiError::Timeout(_) => "timeout",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Internal(_) => "internal",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::Invalid(e) => Some(e.field.as_str()),
            ApiError::BadRequest { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid(SpecError::new(field, message))
    }

    /// 409 `wrong_kind`: job `id` is a `got` job, and `what` exist for `want` jobs only.
    pub fn wrong_kind(id: &str, got: crate::spec::Kind, want: crate::spec::Kind, what: &str) -> Self {
        ApiError::Conflict {
            code: "wrong_kind",
            message: format!("job {id} is a {got} job; {what} exist for {want} jobs"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            // Internals are logged, never sent.
            tracing::error!(error = %detail, "internal error");
        }
        let message = match &self {
            ApiError::Invalid(e) => e.message.clone(),
            other => other.to_string(),
        };
        let body = json!({"error": {"code": self.code(), "message": message, "field": self.field()}});
        let mut response = (self.status_code(), Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"widthlab\""),
            );
        }
        if matches!(
            self,
            ApiError::QueueFull(_) | ApiError::StorageFull | ApiError::Quota(_)
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        if matches!(self, ApiError::Busy(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::IdempotencyConflict => ApiError::Conflict {
                code: "idempotency_conflict",
                message: "this Idempotency-Key was used with a different body".into(),
            },
            StoreError::QueueFull(n) => ApiError::QueueFull(n),
            StoreError::Quota(m) => ApiError::Quota(m),
            StoreError::Full(detail) => {
                tracing::error!(error = %detail, "a write failed: the database's disk is full");
                ApiError::StorageFull
            }
            StoreError::Database(e) if is_locked(&e) => {
                tracing::warn!(error = %e, "a request gave up waiting for the database's write lock");
                ApiError::Busy("the database stayed locked by other writes for longer than a request waits".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// SQLite's SQLITE_BUSY (5) and its extended codes (x + 256 k): the lock wait ran out.
fn is_locked(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<u32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::InvalidSpec(s) => ApiError::Invalid(s),
            JobError::QueueFull(n) => ApiError::QueueFull(n),
            JobError::IdempotencyConflict => StoreError::IdempotencyConflict.into(),
            JobError::NotFound(id) => ApiError::NotFound(format!("no job with id {id}")),
            JobError::WrongState { id, status } => ApiError::Conflict {
                code: "wrong_state",
                message: format!("job {id} is {status}"),
            },
            JobError::Store(s) => s.into(),
            JobError::Internal(m) => ApiError::Internal(m),
            JobError::Forbidden(m) => ApiError::Forbidden(m),
            JobError::Quota(m) => ApiError::Quota(m),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(0)
        } else {
            ApiError::BadRequest {
                field: None,
                message: format!("could not read the request body: {}", r.body_text()),
            }
        }
    }
}
