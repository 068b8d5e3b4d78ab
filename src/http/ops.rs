//! Operations: liveness, readiness, metrics, the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::responses::{Internal, Timeout};
use super::schema::Health;
use super::{ApiError, AppState};

/// The OpenAPI document, rendered once.
static OPENAPI: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    super::documented_routes()
        .2
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".into())
});

/// The OpenAPI 3 document of this API, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object), Timeout))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI.as_str())
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health), Timeout))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: Some(env!("CARGO_PKG_VERSION").into()),
        error: None,
    })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, body = Health, description = "The database answers"),
        Timeout,
        (status = 503, body = Health, description = "The database does not answer (`error` says why)")))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match state.jobs.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ready".into(),
                version: None,
                error: None,
            }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable".into(),
                version: None,
                error: Some(e.to_string()),
            }),
        ),
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String), Timeout, Internal))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let by_status = state.jobs.count_by_status().await?;
    state.jobs.refresh_unit_metrics().await?;
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.jobs.metrics().render(&by_status),
    )
        .into_response())
}
