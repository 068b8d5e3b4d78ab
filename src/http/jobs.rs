//! Job endpoints: submit, list, get, cancel, delete, and the preset catalogue.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::extract::{JsonBody, Params, Path};
use super::responses::{
    BadPath, BadQuery, Forbidden, Internal, JobNotFound, PayloadTooLarge, StorageFull, Timeout, Unauthorized,
};
use super::schema::{ErrorBody, JobList, JobRequest, JobView, PresetList};
use super::{ApiError, AppState};
use crate::jobs::Caller;
use crate::spec::labels::{parse_tag, MAX_NAME_CHARS};
use crate::spec::presets::presets;
use crate::spec::Kind;
use crate::store::{JobRow, ListQuery, Status};

/// Hard cap on `limit` of `GET /v1/jobs`.
pub const MAX_PAGE: u32 = 100;
const DEFAULT_PAGE: u32 = 20;
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Submit a job spec, or `{"preset": NAME, ...overrides}`.
///
/// The body is a job spec or a preset request (see `JobRequest`). A body that matches the schema
/// can still be refused with 422, for what a schema does not say: the job's estimated memory or
/// work over the server's limits, `init` together with `weight_norm` (or neither), `depth` +
/// `width` together with `widths`, fields one kind does not use (the sweep fields for `norms`,
/// `width`/`widths` for `width_sweep`), a grid of more than 64 points, `method: exact` for weights
/// it cannot sample (orthogonal, weight norm), `fan` or `gain` or `variance` with another scheme.
/// The 422 names the field and what is allowed.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    request_body(content = JobRequest, description = "A job spec, or {\"preset\": NAME} with any spec fields as overrides",
        examples(
            ("spec" = (summary = "A job spec: one small He network",
                value = json!({"network": {"input_dim": 50, "depth": 4, "width": 32, "init": {"scheme": "he", "fan": "out"}},
                               "samples": 200, "trials": 2, "seed": 7}))),
            ("preset" = (summary = "A preset with an override",
                value = json!({"preset": "arpit2019-fig1", "samples": 50}))),
            ("sweep" = (summary = "A small width sweep",
                value = json!({"kind": "width_sweep",
                               "network": {"input_dim": 20, "depth": 3, "widths_to_sweep": [8, 16, 32],
                                           "init": {"scheme": "he", "fan": "out"}},
                               "samples": 100, "trials": 4, "seed": 11}))),
        )),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "1 to 255 visible ASCII characters. Same key and body: the original job (200); different body: 409")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued", body = JobView,
            headers(("Location" = String, description = "/v1/jobs/{id}"))),
        (status = 200, description = "Idempotent replay: the original job", body = JobView,
            headers(("Location" = String, description = "/v1/jobs/{id}"))),
        (status = 400, description = "malformed_json: the body is empty or not JSON; bad_request: a malformed Idempotency-Key", body = ErrorBody),
        Unauthorized,
        Timeout,
        (status = 409, description = "idempotency_conflict: the Idempotency-Key was used with another body", body = ErrorBody),
        (status = 413, description = "payload_too_large: the body is over the limit (--max-body-bytes, 1 MiB by default)", body = ErrorBody),
        (status = 422, description = "invalid_spec: names the field (`field`) and what is allowed. Also for schema-valid \
            bodies the server cannot run: estimated memory or work over its limits (or over the owner's work quota by itself), init with weight_norm, depth + width \
            with widths, a field the kind does not use, method exact where it is unavailable", body = ErrorBody),
        (status = 503, description = "queue_full: too many queued jobs; quota_exceeded: the token's queued jobs or work \
            over its quota; storage_full: the disk is full (Retry-After: 30); busy: the database stayed locked by other \
            writes for longer than a request waits (Retry-After: 5). Nothing was queued", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))),
        Internal,
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
        ("preset" = Option<String>, Query, description = "the preset the job was submitted from"),
        ("name" = Option<String>, Query, max_length = 120, description = "part of the job's name (ASCII case ignored)"),
        ("tag" = Option<String>, Query, pattern = "^[A-Za-z0-9_.-]{1,40}$", description = "a tag the job carries (exact)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "page size, default 20"),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,18}$", description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, body = JobList),
        BadQuery,
        Timeout,
        (status = 422, description = "invalid_spec: a parameter's value is not allowed (named in `field`)", body = ErrorBody),
        Internal,
    ))]
pub async fn list(State(state): State<AppState>, params: Params) -> Result<Json<JobList>, ApiError> {
    params.only(LIST_PARAMS)?;
    let query = list_query(&params, DEFAULT_PAGE)?;
    let (rows, next_cursor) = list_page(&state, query).await?;
    Ok(Json(JobList {
        jobs: rows.iter().map(JobView::from).collect(),
        next_cursor,
    }))
}

/// The query parameters of a job listing (the API and the index page).
pub const LIST_PARAMS: &[&str] = &["status", "kind", "owner", "preset", "name", "tag", "limit", "cursor"];

/// The filters and page of a job listing from its query parameters (422 naming a bad one).
pub fn list_query(params: &Params, default_limit: u32) -> Result<ListQuery, ApiError> {
    let status: Option<Status> = params.parse_name("status")?;
    let kind: Option<Kind> = params.parse_name("kind")?;
    let limit: u32 = params
        .parse("limit", &format!("an integer in [1, {MAX_PAGE}]"))?
        .unwrap_or(default_limit);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be an integer in [1, {MAX_PAGE}], got {limit}"),
        ));
    }
    // A cursor is the decimal sequence number of the last job of the previous page.
    let before_seq: Option<i64> = match params.get("cursor") {
        None => None,
        Some(c) if (1..=18).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) => c.parse().ok(),
        Some(c) => {
            return Err(ApiError::invalid(
                "cursor",
                format!("{c:?} is not valid; allowed: a cursor returned as next_cursor by this endpoint"),
            ))
        }
    };
    let name_contains = params.get("name").map(str::to_string);
    if name_contains
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NAME_CHARS)
    {
        return Err(ApiError::invalid(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters (part of a job's name)"),
        ));
    }
    let tag = params
        .get("tag")
        .map(|t| parse_tag(t).map_err(|e| ApiError::invalid("tag", e)))
        .transpose()?;
    Ok(ListQuery {
        status,
        kind,
        owner: params.get("owner").map(str::to_string),
        preset: params.get("preset").map(str::to_string),
        name_contains: name_contains.filter(|n| !n.is_empty()),
        tag,
        limit,
        before_seq,
    })
}

/// One page of a listing, and the cursor of the next page if there is one.
pub async fn list_page(state: &AppState, mut query: ListQuery) -> Result<(Vec<JobRow>, Option<String>), ApiError> {
    let limit = query.limit;
    // One row more than the page tells whether another page exists.
    query.limit = limit + 1;
    let mut rows = state.jobs.list(&query).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    Ok((rows, next_cursor))
}

/// One job.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "the job's id")),
    responses((status = 200, body = JobView), BadPath, JobNotFound, Timeout, Internal))]
pub async fn get_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    Ok(Json(JobView::from(&state.jobs.job(&id).await?)))
}

/// Cancel: a queued job at once (200), a running one at its next layer (202).
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path, description = "the job's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = JobView, description = "Cancelled"),
        (status = 202, body = JobView, description = "Cancel requested; the job stops at its next layer"),
        BadPath, Unauthorized, Forbidden, JobNotFound, Timeout,
        (status = 409, body = ErrorBody, description = "wrong_state: the job has finished already"),
        PayloadTooLarge,
        StorageFull, Internal))]
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
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "the job's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        BadPath, Unauthorized, Forbidden, JobNotFound, Timeout,
        (status = 409, body = ErrorBody, description = "wrong_state: the job is queued or running (cancel it first)"),
        PayloadTooLarge,
        StorageFull, Internal))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.jobs.delete(&id, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The named paper configurations.
#[utoipa::path(get, path = "/v1/presets", tag = "jobs", responses((status = 200, body = PresetList), Timeout))]
pub async fn list_presets() -> Json<PresetList> {
    Json(PresetList { presets: presets() })
}
