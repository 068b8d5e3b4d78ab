//! `GET /v1/jobs/{id}/plot.svg`: the job's figure.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::extract::Path;
use super::responses::{BadPath, Internal, JobNotFound, Timeout};
use super::schema::ErrorBody;
use super::{ApiError, AppState};
use crate::analysis::geometry::GeometryLayer;
use crate::analysis::report::{BoundCheck, LayerReport};
use crate::analysis::sweep::PointReport;
use crate::figures::{self, geometry_svg, map_svg, norms_svg, search_svg, sweep_svg, table_svg};
use crate::jobs::stored_spec;
use crate::spec::Kind;
use crate::store::{JobRow, ResultFamily};

/// `arpit2019-fig6 (job 1a2b3c4d): <the spec>` (`job 1a2b3c4d: ...` without a preset).
pub fn figure_title(job: &JobRow) -> String {
    figures::figure_title(&job.id, job.preset.as_deref(), stored_spec(job).as_ref())
}

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
            if depths > 1 {
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
