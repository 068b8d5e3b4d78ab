//! Job endpoints: submit, list, get, cancel, delete, and the preset catalogue.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::extract::{JsonBody, Params, Path};
use super::schema::{ErrorBody, JobList, JobView, PresetList};
use super::{ApiError, AppState};
use crate::jobs::Caller;
use crate::spec::presets::presets;
use crate::spec::{JobSpecInput, Kind};
use crate::store::{ListQuery, Status};

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
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            // Visible ASCII only: no spaces, tabs or control characters.
            let k = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY && k.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| ApiError::BadRequest {
                    field: Some("Idempotency-Key".into()),
                    message: format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
                })?;
            Some(k.to_string())
        }
    };
    let (row, created) = state.jobs.submit(&body, key.as_deref(), &caller).await?;
    let status = if created { StatusCode::ACCEPTED } else { StatusCode::OK };
    let location = format!("/v1/jobs/{}", row.id);
    Ok((status, [(header::LOCATION, location)], Json(JobView::from(&row))).into_response())
}

/// List jobs, newest first, with keyset pagination.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(
        ("status" = Option<Status>, Query, description = "a job state"),
        ("kind" = Option<Kind>, Query, description = "a job kind"),
        ("owner" = Option<String>, Query, description = "the name of the token that submitted the job"),
        ("limit" = Option<u32>, Query, description = "1..=100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, params: Params) -> Result<Json<JobList>, ApiError> {
    params.only(&["status", "kind", "owner", "limit", "cursor"])?;
    let status: Option<Status> = params.parse_name("status")?;
    let kind: Option<Kind> = params.parse_name("kind")?;
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
        .list(&ListQuery {
            status,
            kind,
            owner: params.get("owner").map(str::to_string),
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
        jobs: rows.iter().map(JobView::from).collect(),
        next_cursor,
    }))
}

/// One job.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
pub async fn get_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    Ok(Json(JobView::from(&state.jobs.job(&id).await?)))
}

/// Cancel: a queued job at once (200), a running one at its next layer (202).
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path)),
    responses(
        (status = 200, body = JobView, description = "Cancelled"),
        (status = 202, body = JobView, description = "Cancel requested; the job stops at its next layer"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Already terminal")))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = state.jobs.cancel(&id, &caller).await?;
    // A queued job is cancelled at once (200); a running one stops at its next layer (202).
    let status = if row.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(JobView::from(&row))).into_response())
}

/// Delete a finished job and its results.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not terminal")))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.jobs.delete(&id, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The named paper configurations.
#[utoipa::path(get, path = "/v1/presets", tag = "jobs", responses((status = 200, body = PresetList)))]
pub async fn list_presets() -> Json<PresetList> {
    Json(PresetList { presets: presets() })
}
