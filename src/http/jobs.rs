//! Job endpoints: submit, list, get, results, cancel, delete.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::extract::{JsonBody, Params, Path};
use super::schema::{BoundChecksPage, ErrorBody, JobList, LayersPage};
use super::{ApiError, AppState};
use crate::jobs::{job_view, JobView};
use crate::spec::JobSpecInput;
use crate::store::{JobRow, ListQuery, Status};

/// Hard cap on `limit` of `GET /v1/jobs`.
pub const MAX_PAGE: u32 = 100;
const DEFAULT_PAGE: u32 = 20;
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Submit a job spec, or `{"preset": NAME, ...overrides}`.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    request_body(content = JobSpecInput, description = "A job spec (product.md), or {\"preset\": NAME} with any spec fields as overrides"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body: the original job (200); different body: 409")),
    responses(
        (status = 202, description = "Queued; Location: /v1/jobs/{id}", body = JobView),
        (status = 200, description = "Idempotent replay: the original job", body = JobView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Token required (WIDTHLAB_TOKENS set)", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 422, description = "Invalid spec: names the field and the allowed range", body = ErrorBody),
        (status = 503, description = "Queue full", body = ErrorBody),
    ))]
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
                .ok_or_else(|| ApiError::BadRequest {
                    field: Some("Idempotency-Key".into()),
                    message: format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
                })?;
            Some(k.to_string())
        }
    };
    let (spec, _preset) = crate::presets::expand(&body).map_err(ApiError::Invalid)?;
    let (row, created) = state.jobs.submit(&spec, key.as_deref()).await?;
    let status = if created { StatusCode::ACCEPTED } else { StatusCode::OK };
    let location = format!("/v1/jobs/{}", row.id);
    Ok((status, [(header::LOCATION, location)], Json(job_view(&row))).into_response())
}

/// List jobs, newest first, with keyset pagination.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(
        ("status" = Option<String>, Query, description = "queued | running | succeeded | failed | cancelled"),
        ("kind" = Option<String>, Query, description = "norms | width_sweep"),
        ("limit" = Option<u32>, Query, description = "1..=100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, params: Params) -> Result<Json<JobList>, ApiError> {
    params.only(&["status", "kind", "limit", "cursor"])?;
    let status = match params.get("status") {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "status",
                format!("unknown status {s:?}; allowed: queued, running, succeeded, failed, cancelled"),
            )
        })?),
    };
    let kind = params.get("kind");
    if let Some(k) = kind {
        if k != "norms" && k != "width_sweep" {
            return Err(ApiError::invalid(
                "kind",
                format!("unknown kind {k:?}; allowed: norms, width_sweep"),
            ));
        }
    }
    let limit: u32 = params
        .parse("limit", &format!("an integer in [1, {MAX_PAGE}]"))?
        .unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be an integer in [1, {MAX_PAGE}], got {limit}"),
        ));
    }
    let before_seq: Option<i64> = params.parse("cursor", "a cursor returned as next_cursor by this endpoint")?;
    // One row more than the page tells whether another page exists.
    let mut rows = state
        .jobs
        .store()
        .list_jobs(&ListQuery {
            status,
            kind,
            limit: limit + 1,
            before_seq,
        })
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    Ok(Json(JobList {
        jobs: rows.iter().map(job_view).collect(),
        next_cursor,
    }))
}

/// The job with this id, or 404.
pub(super) async fn find(state: &AppState, id: &str) -> Result<JobRow, ApiError> {
    state
        .jobs
        .store()
        .job(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job with id {id}")))
}

/// One job.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
pub async fn get_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    Ok(Json(job_view(&find(&state, &id).await?)))
}

/// Per-layer statistics as CSV columns: header name and JSON pointer into a layer report.
const LAYER_COLUMNS: &[&str] = &[
    "/layer",
    "/width",
    "/fan_in",
    "/weight_variance",
    "/forward/count",
    "/forward/undefined",
    "/forward/mean",
    "/forward/std",
    "/forward/min",
    "/forward/max",
    "/forward/p01",
    "/forward/p05",
    "/forward/p50",
    "/forward/p95",
    "/forward/p99",
    "/gradient/count",
    "/gradient/undefined",
    "/gradient/mean",
    "/gradient/std",
    "/gradient/min",
    "/gradient/max",
    "/gradient/p01",
    "/gradient/p05",
    "/gradient/p50",
    "/gradient/p95",
    "/gradient/p99",
    "/within_epsilon/forward",
    "/within_epsilon/gradient",
    "/predicted/forward/mean",
    "/predicted/forward/std",
    "/predicted/forward/mean_square",
    "/predicted/gradient/mean",
    "/across_trials/forward_mean/std",
    "/across_trials/gradient_mean/std",
];

/// Render rows as CSV with a header row; columns are JSON pointers, headers the pointer with
/// `/` replaced by `_`. Missing or null values are empty cells.
pub(super) fn to_csv(rows: &[Value], columns: &[&str]) -> String {
    let mut out = String::new();
    let header: Vec<String> = columns
        .iter()
        .map(|c| c.trim_start_matches('/').replace('/', "_"))
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for row in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match row.pointer(c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => csv_quote(s),
                Some(v) => v.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(super) fn wants_csv(params: &Params) -> Result<bool, ApiError> {
    params.only(&["format"])?;
    match params.get("format") {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(other) => Err(ApiError::invalid(
            "format",
            format!("unknown format {other:?}; allowed: json, csv"),
        )),
    }
}

/// Per-layer statistics: JSON, or CSV with a header row (`?format=csv`).
#[utoipa::path(get, path = "/v1/jobs/{id}/layers", tag = "results",
    params(("id" = String, Path), ("format" = Option<String>, Query, description = "json (default) | csv")),
    responses(
        (status = 200, body = LayersPage, description = "JSON, or text/csv with one row per layer"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn layers(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&params)?;
    let job = find(&state, &id).await?;
    let layers = state.jobs.store().layers(&id).await?;
    if csv {
        let body = to_csv(&layers, LAYER_COLUMNS);
        let disposition = format!("inline; filename=\"widthlab-{id}-layers.csv\"");
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            body,
        )
            .into_response());
    }
    Ok(Json(LayersPage {
        job_id: id,
        status: job.status,
        layers,
    })
    .into_response())
}

/// The bound checks stored for a job.
#[utoipa::path(get, path = "/v1/jobs/{id}/bound-checks", tag = "results", params(("id" = String, Path)),
    responses((status = 200, body = BoundChecksPage), (status = 404, body = ErrorBody)))]
pub async fn bound_checks(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BoundChecksPage>, ApiError> {
    let job = find(&state, &id).await?;
    let bound_checks = state.jobs.store().bound_checks(&id).await?;
    Ok(Json(BoundChecksPage {
        job_id: id,
        status: job.status,
        bound_checks,
    }))
}

/// Cancel: a queued job at once (200), a running one at its next layer (202).
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path)),
    responses(
        (status = 200, body = JobView, description = "Cancelled"),
        (status = 202, body = JobView, description = "Cancel requested; the job stops at its next layer"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Already terminal")))]
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = state.jobs.cancel(&id).await?;
    // A queued job is cancelled at once (200); a running one stops at its next layer (202).
    let status = if row.status().is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(job_view(&row))).into_response())
}

/// Delete a finished job and its results.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not terminal")))]
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.jobs.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
