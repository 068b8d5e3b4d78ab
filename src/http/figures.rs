//! `GET /v1/jobs/{id}/plot.svg`: the job's figure.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::extract::{Params, Path};
use super::responses::{BadPath, BadQuery, Internal, JobNotFound, Timeout};
use super::schema::ErrorBody;
use super::{ApiError, AppState};
use crate::analysis::geometry::GeometryLayer;
use crate::analysis::report::{BoundCheck, LayerReport};
use crate::analysis::sweep::PointReport;
use crate::analysis::worst_case::WorstCaseLayer;
use crate::figures::{
    self, blocks_svg, geometry_svg, map_svg, norms_svg, search_svg, sweep_svg, table_svg, worst_case_svg,
};
use crate::jobs::stored_spec;
use crate::spec::Kind;
use crate::store::{JobRow, ResultFamily};

/// The job's figure (SVG): per-layer ratios, deviation vs width, or a width x depth map.
/// A sweep's figure is drawn from the points stored so far and says when it is partial.
#[utoipa::path(get, path = "/v1/jobs/{id}/plot.svg", tag = "results", params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "An SVG document", content_type = "image/svg+xml", body = String),
        BadPath, JobNotFound, Timeout,
        (status = 409, body = ErrorBody, description = "not_ready: the job has no results to plot yet"),
        Internal))]
pub async fn plot(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = state.jobs.job(&id).await?;
    let spec =
        stored_spec(&job).ok_or_else(|| ApiError::Internal(format!("the stored spec of job {id} does not parse")))?;
    let title = figures::figure_title(&job.id, job.preset.as_deref(), Some(&spec));
    let not_ready = || ApiError::Conflict {
        code: "not_ready",
        message: format!("job {id} is {} and has no results to plot yet", job.status),
    };
    let status = job.status.to_string();
    let svg = match job.kind {
        Kind::WidthSweep => {
            let points: Vec<PointReport> = state.jobs.results(&id, ResultFamily::SweepPoint).await?;
            if points.is_empty() {
                return Err(not_ready());
            }
            let depths = spec.sweep().map_or(1, |sw| sw.depths.len());
            if spec.network.is_residual() {
                blocks_svg(&title, &spec, &points, &status)
            } else if depths > 1 {
                let rows = state.jobs.frontier(&job, &points).await?;
                map_svg(&title, &spec, &points, &rows, &status)
            } else {
                sweep_svg(&title, &spec, &points, &status)
            }
        }
        Kind::MinWidth => {
            let cells = state.jobs.search_cells(&job).await?;
            let target = 1.0 - spec.delta;
            match cells.as_slice() {
                [] => return Err(not_ready()),
                [one] if one.probes.is_empty() => return Err(not_ready()),
                [one] => search_svg(&title, one, target),
                many => table_svg(&title, many),
            }
        }
        Kind::Geometry => {
            let rows: Vec<GeometryLayer> = state.jobs.results(&id, ResultFamily::GeometryLayer).await?;
            if rows.is_empty() {
                return Err(not_ready());
            }
            geometry_svg(&title, &spec, &rows)
        }
        Kind::WorstCase => {
            let rows: Vec<WorstCaseLayer> = state.jobs.results(&id, ResultFamily::WorstCaseLayer).await?;
            if rows.is_empty() {
                return Err(not_ready());
            }
            worst_case_svg(&title, &spec, &rows)
        }
        Kind::Norms => {
            let layers: Vec<LayerReport> = state.jobs.results(&id, ResultFamily::Layer).await?;
            if layers.is_empty() {
                return Err(not_ready());
            }
            let checks: Vec<BoundCheck> = state.jobs.results(&id, ResultFamily::BoundCheck).await?;
            norms_svg(&title, &spec, &layers, &checks)
        }
    }
    .map_err(ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// Most jobs one comparison overlays.
pub const MAX_COMPARED: usize = figures::COMPARE_COLOURS.len();

/// The jobs of `ids` (comma-separated, 1 to 8, repeats dropped) with their per-layer results:
/// 422 for a malformed list, 404 for an unknown job, 409 for a job that is not a succeeded
/// `norms` job.
pub async fn compared_jobs(state: &AppState, ids: &str) -> Result<Vec<(JobRow, Vec<LayerReport>)>, ApiError> {
    let mut list: Vec<&str> = Vec::new();
    for id in ids.split(',').map(str::trim) {
        if id.is_empty() {
            return Err(ApiError::invalid(
                "ids",
                format!("a comma-separated list of 1 to {MAX_COMPARED} job ids, without empty entries"),
            ));
        }
        if !list.contains(&id) {
            list.push(id);
        }
    }
    if list.len() > MAX_COMPARED {
        return Err(ApiError::invalid(
            "ids",
            format!("at most {MAX_COMPARED} jobs can be compared, got {}", list.len()),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for id in list {
        let job = state.jobs.job(id).await?;
        if job.kind != Kind::Norms {
            return Err(ApiError::Conflict {
                code: "wrong_kind",
                message: format!("job {id} is a {} job; only norms jobs are compared", job.kind),
            });
        }
        let layers: Vec<LayerReport> = state.jobs.results(id, ResultFamily::Layer).await?;
        if layers.is_empty() {
            return Err(ApiError::Conflict {
                code: "not_ready",
                message: format!("job {id} is {} and has no layers yet", job.status),
            });
        }
        out.push((job, layers));
    }
    Ok(out)
}

/// The label of a job in a comparison: its name, else its preset or id.
pub fn compared_label(job: &JobRow) -> String {
    let short: String = job.id.chars().take(8).collect();
    match (&job.name, &job.preset) {
        (Some(n), _) => format!("{n} ({short})"),
        (None, Some(p)) => format!("{p} ({short})"),
        (None, None) => format!("job {short}"),
    }
}

/// Several `norms` jobs in one figure: per ratio, each job's mean per layer and its p05-p95
/// band (for example He vs Glorot vs weight norm).
#[utoipa::path(get, path = "/v1/compare/plot.svg", tag = "results",
    params(("ids" = String, Query, pattern = "^[^,]+(,[^,]+){0,7}$",
        description = "1 to 8 ids of norms jobs, comma-separated")),
    responses(
        (status = 200, description = "An SVG document", content_type = "image/svg+xml", body = String),
        BadQuery, Timeout,
        (status = 404, body = ErrorBody, description = "not_found: one of the jobs does not exist"),
        (status = 409, body = ErrorBody, description = "wrong_kind: a job is not a norms job; not_ready: a job has no layers yet"),
        (status = 422, body = ErrorBody, description = "invalid_spec: `ids` is missing, has an empty entry or more than 8 jobs"),
        Internal))]
pub async fn compare_plot(State(state): State<AppState>, params: Params) -> Result<Response, ApiError> {
    params.only(&["ids"])?;
    let ids: String = params.require("ids", "1 to 8 comma-separated job ids")?;
    let jobs = compared_jobs(&state, &ids).await?;
    let compared: Vec<figures::Compared> = jobs
        .iter()
        .map(|(job, layers)| figures::Compared {
            label: compared_label(job),
            layers,
        })
        .collect();
    let title = format!("{} norms jobs compared", compared.len());
    let svg = figures::compare_svg(&title, &compared).map_err(ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
