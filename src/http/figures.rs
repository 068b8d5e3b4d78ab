//! `GET /v1/jobs/{id}/plot.svg`: the job's figure.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::extract::Path;
use super::schema::ErrorBody;
use super::{ApiError, AppState};
use crate::analysis::report::LayerReport;
use crate::analysis::sweep::PointReport;
use crate::figures::{map_svg, norms_svg, search_svg, sweep_svg, table_svg};
use crate::jobs::stored_spec;
use crate::spec::Kind;
use crate::store::{JobRow, ResultFamily};

/// `job 1a2b3c4d: <the spec>`.
pub fn figure_title(job: &JobRow) -> String {
    let short = &job.id[..job.id.len().min(8)];
    match stored_spec(job) {
        Some(spec) => format!("job {short}: {spec}"),
        None => format!("job {short}"),
    }
}

/// The job's figure (SVG): per-layer ratios, deviation vs width, or a width x depth map.
#[utoipa::path(get, path = "/v1/jobs/{id}/plot.svg", tag = "results", params(("id" = String, Path)),
    responses(
        (status = 200, content_type = "image/svg+xml", body = String),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "No results yet")))]
pub async fn plot(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = state.jobs.job(&id).await?;
    let title = figure_title(&job);
    let not_ready = || ApiError::Conflict {
        code: "not_ready",
        message: format!("job {id} is {} and has no results to plot yet", job.status),
    };
    let svg = match job.kind {
        Kind::WidthSweep => {
            let points: Vec<PointReport> = state.jobs.results(&id, ResultFamily::SweepPoint).await?;
            if points.is_empty() {
                return Err(not_ready());
            }
            let depths = stored_spec(&job)
                .and_then(|s| s.sweep().map(|sw| sw.depths.len()))
                .unwrap_or(1);
            if depths > 1 {
                let rows = state.jobs.frontier(&job, &points).await?;
                map_svg(&title, &points, &rows)
            } else {
                sweep_svg(&title, &points)
            }
        }
        Kind::MinWidth => {
            let cells = state.jobs.search_cells(&job).await?;
            let target = stored_spec(&job).map_or(0.95, |s| 1.0 - s.delta);
            match cells.as_slice() {
                [] => return Err(not_ready()),
                [one] if one.probes.is_empty() => return Err(not_ready()),
                [one] => search_svg(&title, one, target),
                many => table_svg(&title, many),
            }
        }
        Kind::Norms => {
            let layers: Vec<LayerReport> = state.jobs.results(&id, ResultFamily::Layer).await?;
            if layers.is_empty() {
                return Err(not_ready());
            }
            norms_svg(&title, &layers)
        }
    }
    .map_err(ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
