//! What a finished job holds: per-layer statistics, bound checks, sweep points; JSON or CSV.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::extract::{Params, Path};
use super::responses::{BadPath, BadQuery, Internal, JobNotFound, Timeout};
use super::schema::{BoundChecksPage, ErrorBody, GeometryPage, LayersPage, SearchPage, SweepPage, WorstCasePage};
use super::{ApiError, AppState};
use crate::analysis::sweep::PointReport;
use crate::spec::Kind;
use crate::store::ResultFamily;
use crate::theory::bounds::Bound;

/// Per-layer statistics as CSV columns: JSON pointers into a layer report; the header is the
/// pointer with `/` replaced by `_`.
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
    "/predicted/forward/p05",
    "/predicted/forward/p95",
    "/predicted/forward/std_within_network",
    "/predicted/forward/std_between_networks",
    "/predicted/gradient/std",
    "/predicted/gradient/p05",
    "/predicted/gradient/p95",
    "/predicted/gradient/standard_error",
    "/predicted/gradient/mean_field/mean",
    "/predicted/forward/mean_field/mean",
];

/// Sweep points as CSV columns; each bound adds its guaranteed epsilon and minimal width.
fn sweep_columns() -> Vec<String> {
    let fixed = [
        "/point",
        "/width",
        "/depth",
        "/seed",
        "/engine",
        "/forward_deviation/mean",
        "/forward_deviation/std",
        "/forward_deviation/p95",
        "/forward_deviation/max",
        "/gradient_deviation/mean",
        "/gradient_deviation/std",
        "/gradient_deviation/p95",
        "/gradient_deviation/max",
        "/max_deviation",
        "/all_within/epsilon",
        "/all_within/trials",
        "/all_within/successes",
        "/all_within/probability",
        "/all_within/ci_low",
        "/all_within/ci_high",
        "/residual/blocks",
        "/residual/forward_mean",
        "/residual/forward_rms",
        "/residual/predicted_forward_mean",
        "/residual/predicted_forward_rms",
        "/residual/backward_mean",
        "/residual/backward_rms",
        "/residual/predicted_backward_rms",
    ];
    let mut columns: Vec<String> = fixed.iter().map(|c| c.to_string()).collect();
    for quantity in ["guaranteed_epsilon", "min_width"] {
        columns.extend(Bound::ALL.iter().map(|b| format!("/{quantity}/{}", b.name())));
    }
    columns
}

/// Render rows as CSV with a header row; columns are JSON pointers, headers the pointer with
/// `/` replaced by `_`. Missing or null values are empty cells.
fn to_csv<S: AsRef<str>>(rows: &[Value], columns: &[S]) -> String {
    let mut out = String::new();
    let header: Vec<String> = columns
        .iter()
        .map(|c| c.as_ref().trim_start_matches('/').replace('/', "_"))
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for row in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match row.pointer(c.as_ref()) {
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

crate::spec::names::string_enum! {
    /// How `/layers` and `/sweep` render: JSON (the default) or CSV with a header row.
    pub enum ResultFormat {
        Json = "json",
        Csv = "csv",
    }
}

crate::spec::names::string_enum! {
    /// What a row of `/search`'s CSV is (the JSON always holds cells with their probes).
    pub enum SearchRows {
        Cells = "cells",
        Probes = "probes",
    }
}

fn wants_csv(params: &Params) -> Result<bool, ApiError> {
    params.only(&["format"])?;
    Ok(params.parse_name::<ResultFormat>("format")? == Some(ResultFormat::Csv))
}

/// A CSV download of job `id`'s `what`.
fn csv_response(id: &str, what: &str, body: String) -> Response {
    let disposition = format!("inline; filename=\"widthlab-{id}-{what}.csv\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// Per-layer statistics: JSON, or CSV with a header row (`?format=csv`).
#[utoipa::path(get, path = "/v1/jobs/{id}/layers", tag = "results",
    params(("id" = String, Path, description = "the job's id"),
        ("format" = inline(Option<ResultFormat>), Query, description = "json (default) or csv")),
    responses(
        (status = 200, description = "The layers (empty until the job succeeds): JSON, or with format=csv one CSV row \
            per layer under a header row (columns: the JSON fields, nested names joined by `_`; null is an empty cell)",
            content(
                (LayersPage = "application/json"),
                (String = "text/csv"),
            )),
        BadQuery, JobNotFound, Timeout,
        (status = 422, body = ErrorBody, description = "invalid_spec: an unknown format (`field`: format)"),
        Internal))]
pub async fn layers(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&params)?;
    let job = state.jobs.job(&id).await?;
    let layers = state.jobs.result_documents(&id, ResultFamily::Layer).await?;
    if csv {
        return Ok(csv_response(&id, "layers", to_csv(&layers, LAYER_COLUMNS)));
    }
    Ok(Json(LayersPage {
        job_id: id,
        status: job.status,
        layers,
    })
    .into_response())
}

/// The bound checks stored for a job.
#[utoipa::path(get, path = "/v1/jobs/{id}/bound-checks", tag = "results", params(("id" = String, Path, description = "the job's id")),
    responses((status = 200, body = BoundChecksPage), BadPath, JobNotFound, Timeout, Internal))]
pub async fn bound_checks(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BoundChecksPage>, ApiError> {
    let job = state.jobs.job(&id).await?;
    let bound_checks = state.jobs.result_documents(&id, ResultFamily::BoundCheck).await?;
    Ok(Json(BoundChecksPage {
        job_id: id,
        status: job.status,
        bound_checks,
    }))
}

/// The points of a `width_sweep` (stored as each completes) and the frontier; `?format=csv`.
#[utoipa::path(get, path = "/v1/jobs/{id}/sweep", tag = "results",
    params(("id" = String, Path, description = "the job's id"),
        ("format" = inline(Option<ResultFormat>), Query, description = "json (default) or csv")),
    responses(
        (status = 200, description = "The points stored so far and the frontier: JSON, or with format=csv one CSV row \
            per point under a header row (each bound adds guaranteed_epsilon_NAME and min_width_NAME columns)",
            content(
                (SweepPage = "application/json"),
                (String = "text/csv"),
            )),
        BadQuery, JobNotFound, Timeout,
        (status = 409, body = ErrorBody, description = "wrong_kind: not a width_sweep job (see /layers)"),
        (status = 422, body = ErrorBody, description = "invalid_spec: an unknown format (`field`: format)"),
        Internal))]
pub async fn sweep(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&params)?;
    let job = state.jobs.job(&id).await?;
    if job.kind != Kind::WidthSweep {
        return Err(ApiError::wrong_kind(&id, job.kind, Kind::WidthSweep, "sweep points"));
    }
    let points: Vec<PointReport> = state.jobs.results(&id, ResultFamily::SweepPoint).await?;
    let rows: Vec<Value> = points.iter().map(PointReport::to_flat_json).collect();
    if csv {
        return Ok(csv_response(&id, "sweep", to_csv(&rows, &sweep_columns())));
    }
    let frontier = state.jobs.frontier(&job, &points).await?;
    Ok(Json(SweepPage {
        job_id: id,
        status: job.status,
        points: rows,
        frontier,
    })
    .into_response())
}

/// Geometry rows as CSV columns.
const GEOMETRY_COLUMNS: &[&str] = &[
    "/angle_deg",
    "/initial_cosine",
    "/layer",
    "/width",
    "/networks",
    "/pairs",
    "/undefined",
    "/cosine/mean",
    "/cosine/std",
    "/cosine/standard_error",
    "/cosine/min",
    "/cosine/max",
    "/predicted/cosine",
    "/cosine_z",
    "/distance_ratio/mean",
    "/distance_ratio/std",
    "/distance_ratio/standard_error",
    "/distance_ratio/min",
    "/distance_ratio/max",
    "/distance_ratio/rms",
    "/distance_ratio/rms_standard_error",
    "/predicted/distance_ratio",
    "/predicted/norm_ratio_squared",
];

/// The rows of a `geometry` job (per initial angle and layer: cosine and distance ratio beside the
/// arc-cosine map's prediction); `?format=csv`.
#[utoipa::path(get, path = "/v1/jobs/{id}/geometry", tag = "results",
    params(("id" = String, Path, description = "the job's id"),
        ("format" = inline(Option<ResultFormat>), Query, description = "json (default) or csv")),
    responses(
        (status = 200, description = "The rows (empty until the job succeeds), angle by angle and layer by layer \
            (layer 0: the inputs): JSON, or with format=csv one CSV row per (angle, layer) under a header row \
            (columns: the JSON fields, nested names joined by `_`; null is an empty cell)",
            content(
                (GeometryPage = "application/json"),
                (String = "text/csv"),
            )),
        BadQuery, JobNotFound, Timeout,
        (status = 409, body = ErrorBody, description = "wrong_kind: not a geometry job"),
        (status = 422, body = ErrorBody, description = "invalid_spec: an unknown format (`field`: format)"),
        Internal))]
pub async fn geometry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&params)?;
    let job = state.jobs.job(&id).await?;
    if job.kind != Kind::Geometry {
        return Err(ApiError::wrong_kind(
            &id,
            job.kind,
            Kind::Geometry,
            "angles and distances",
        ));
    }
    let layers = state.jobs.result_documents(&id, ResultFamily::GeometryLayer).await?;
    if csv {
        return Ok(csv_response(&id, "geometry", to_csv(&layers, GEOMETRY_COLUMNS)));
    }
    Ok(Json(GeometryPage {
        job_id: id,
        status: job.status,
        layers,
    })
    .into_response())
}

/// Worst-case rows as CSV columns.
const WORST_CASE_COLUMNS: &[&str] = &[
    "/point",
    "/input_dim",
    "/width",
    "/depth",
    "/layer",
    "/seed",
    "/networks",
    "/sqrt_input_dim_over_width",
    "/found_max/mean",
    "/found_max/std",
    "/found_max/min",
    "/found_max/max",
    "/random_max/mean",
    "/random_max/max",
    "/found_min/mean",
    "/found_min/std",
    "/found_min/min",
    "/found_min/max",
    "/random_min/mean",
    "/random_min/min",
    "/certified_max/mean",
    "/certified_max/min",
    "/certified_max/max",
    "/sigma_lo/mean",
    "/sigma_hi/mean",
    "/spectral_accuracy",
    "/certified_accuracy",
    "/worst_deviation/mean",
    "/worst_deviation/std",
    "/worst_deviation/max",
    "/random_deviation/mean",
    "/random_deviation/std",
    "/random_deviation/max",
    "/bracket_holds",
    "/search_at_least_random",
];

/// The rows of a `worst_case` job (per grid point and layer: the extremes found over the unit
/// sphere, the random inputs' extremes, the certified upper bound); `?format=csv`.
#[utoipa::path(get, path = "/v1/jobs/{id}/worst_case", tag = "results",
    params(("id" = String, Path, description = "the job's id"),
        ("format" = inline(Option<ResultFormat>), Query, description = "json (default) or csv")),
    responses(
        (status = 200, description = "The rows (empty until the job succeeds), grid point by grid point and layer by \
            layer, with K_n as the authors' script computes it: JSON, or with format=csv one CSV row per (point, layer) \
            under a header row (columns: the JSON fields, nested names joined by `_`; null is an empty cell)",
            content(
                (WorstCasePage = "application/json"),
                (String = "text/csv"),
            )),
        BadQuery, JobNotFound, Timeout,
        (status = 409, body = ErrorBody, description = "wrong_kind: not a worst_case job"),
        (status = 422, body = ErrorBody, description = "invalid_spec: an unknown format (`field`: format)"),
        Internal))]
pub async fn worst_case(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&params)?;
    let job = state.jobs.job(&id).await?;
    if job.kind != Kind::WorstCase {
        return Err(ApiError::wrong_kind(
            &id,
            job.kind,
            Kind::WorstCase,
            "worst cases over the sphere",
        ));
    }
    let layers = state.jobs.result_documents(&id, ResultFamily::WorstCaseLayer).await?;
    if csv {
        return Ok(csv_response(&id, "worst_case", to_csv(&layers, WORST_CASE_COLUMNS)));
    }
    let spec = crate::jobs::stored_spec(&job)
        .ok_or_else(|| ApiError::Internal(format!("the stored spec of job {id} does not parse")))?;
    let search = spec
        .worst_case()
        .ok_or_else(|| ApiError::Internal(format!("the stored spec of job {id} is not a worst_case spec")))?;
    Ok(Json(WorstCasePage {
        job_id: id,
        status: job.status,
        k_n: crate::jobs::kinds::worst_case::k_n_values(search),
        k_n_note: crate::jobs::kinds::worst_case::K_N_NOTE.to_string(),
        method: crate::jobs::kinds::worst_case::method_note(search),
        layers,
    })
    .into_response())
}

/// Probe CSV columns.
const PROBE_COLUMNS: &[&str] = &[
    "/cell",
    "/epsilon",
    "/depth",
    "/probe/index",
    "/probe/width",
    "/probe/networks",
    "/probe/successes",
    "/probe/looks",
    "/probe/lower_limit",
    "/probe/upper_limit",
    "/probe/look_alpha",
    "/probe/decision",
    "/probe/engine",
    "/probe/work_flops",
    "/probe/note",
];

/// Cell CSV columns; each bound adds its width and looseness.
fn cell_columns() -> Vec<String> {
    let fixed = [
        "/cell",
        "/epsilon",
        "/depth",
        "/width_range/0",
        "/width_range/1",
        "/confidence",
        "/bracket/fail",
        "/bracket/pass",
        "/bracket/exact",
        "/bracket/censoring",
        "/bracket/estimate",
        "/networks",
    ];
    let mut columns: Vec<String> = fixed.iter().map(|c| c.to_string()).collect();
    for (i, b) in Bound::ALL.iter().enumerate() {
        columns.push(format!("/bounds/{i}/min_width#{}", b.name()));
        columns.push(format!("/bounds/{i}/looseness#{}", b.name()));
    }
    columns
}

/// The cells of a `min_width` search (each probe as it is decided, the bracket, each bound's width
/// and looseness); `?format=csv` gives one row per cell, `&rows=probes` one per probe.
#[utoipa::path(get, path = "/v1/jobs/{id}/search", tag = "results",
    params(("id" = String, Path, description = "the job's id"),
        ("format" = inline(Option<ResultFormat>), Query, description = "json (default) or csv"),
        ("rows" = inline(Option<SearchRows>), Query, description = "with format=csv: a row per cell (default) or per \
            probe; the JSON always holds cells with their probes")),
    responses(
        (status = 200, description = "The cells decided so far: JSON, or with format=csv one CSV row per cell \
            (with rows=probes, one per probe) under a header row",
            content(
                (SearchPage = "application/json"),
                (String = "text/csv"),
            )),
        BadQuery, JobNotFound, Timeout,
        (status = 409, body = ErrorBody, description = "wrong_kind: not a min_width job"),
        (status = 422, body = ErrorBody, description = "invalid_spec: an unknown format or rows (`field` names it)"),
        Internal))]
pub async fn search(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    params.only(&["format", "rows"])?;
    let csv = params.parse_name::<ResultFormat>("format")? == Some(ResultFormat::Csv);
    let rows = params.parse_name::<SearchRows>("rows")?.unwrap_or(SearchRows::Cells);
    let job = state.jobs.job(&id).await?;
    if job.kind != Kind::MinWidth {
        return Err(ApiError::wrong_kind(&id, job.kind, Kind::MinWidth, "searches"));
    }
    let cells = state.jobs.search_cells(&job).await?;
    if csv {
        let values: Vec<Value> = cells
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
            .collect();
        return match rows {
            SearchRows::Cells => {
                // "#name" after a pointer only names the column.
                let columns = cell_columns();
                let body = to_csv_named(&values, &columns);
                Ok(csv_response(&id, "search", body))
            }
            SearchRows::Probes => {
                let rows: Vec<Value> = cells
                    .iter()
                    .flat_map(|c| {
                        c.probes.iter().map(move |p| {
                            serde_json::json!({"cell": c.cell, "epsilon": c.epsilon, "depth": c.depth, "probe": p})
                        })
                    })
                    .collect();
                Ok(csv_response(&id, "probes", to_csv(&rows, PROBE_COLUMNS)))
            }
        };
    }
    let target = crate::jobs::stored_spec(&job).map_or(f64::NAN, |s| 1.0 - s.delta);
    Ok(Json(SearchPage {
        job_id: id,
        status: job.status,
        target,
        cells,
    })
    .into_response())
}

/// [`to_csv`] where a column may be `pointer#header`.
fn to_csv_named(rows: &[Value], columns: &[String]) -> String {
    let pointers: Vec<&str> = columns.iter().map(|c| c.split('#').next().unwrap_or(c)).collect();
    let headers: Vec<String> = columns
        .iter()
        .map(|c| match c.split_once('#') {
            Some((p, name)) => format!("{}_{name}", p.trim_start_matches('/').rsplit('/').next().unwrap_or(p)),
            None => c.trim_start_matches('/').replace('/', "_"),
        })
        .collect();
    let body = to_csv(rows, &pointers);
    let mut lines = body.splitn(2, '\n');
    let _ = lines.next();
    format!("{}\n{}", headers.join(","), lines.next().unwrap_or(""))
}
