//! `GET /compare?ids=a,b,...`: several `norms` jobs side by side: the overlaid figure and a row
//! per job.

use axum::extract::State;
use axum::response::Html;
use maud::html;

use super::super::extract::Params;
use super::super::figures::{compared_jobs, compared_label, MAX_COMPARED};
use super::super::responses::{BadQuery, Internal, Timeout};
use super::super::schema::ErrorBody;
use super::super::{ApiError, AppState};
use super::{format_duration, layout, run_seconds, status_class};
use crate::jobs::stored_spec;

/// The web page comparing `norms` jobs: per ratio, each job's mean per layer and its p05-p95
/// band in one figure, and a row per job. Without `ids`, a form asking for them.
#[utoipa::path(get, path = "/compare", tag = "operations",
    params(("ids" = Option<String>, Query, pattern = "^([^,]+(,[^,]+){0,7})?$",
        description = "1 to 8 ids of norms jobs, comma-separated (blank: a form asking for them)")),
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String),
        BadQuery, Timeout,
        (status = 404, body = ErrorBody, description = "not_found: one of the jobs does not exist"),
        (status = 409, body = ErrorBody, description = "wrong_kind: a job is not a norms job; not_ready: a job has no layers yet"),
        (status = 422, body = ErrorBody, description = "invalid_spec: `ids` has an empty entry or more than 8 jobs"),
        Internal))]
pub async fn compare_page(State(state): State<AppState>, params: Params) -> Result<Html<String>, ApiError> {
    params.only(&["ids"])?;
    let params = params.without_empty();
    let ids = params.get("ids").unwrap_or("").to_string();
    let jobs = if ids.is_empty() {
        Vec::new()
    } else {
        compared_jobs(&state, &ids).await?
    };
    let joined: Vec<&str> = jobs.iter().map(|(j, _)| j.id.as_str()).collect();
    let figure = format!("v1/compare/plot.svg?ids={}", joined.join(","));
    let main = html! {
        main {
            h1 { "Compare norms jobs" }
            form.filters method="get" action="compare" {
                label { (format!("job ids, comma-separated (1 to {MAX_COMPARED})"))
                    input type="text" name="ids" value=(ids) size="90"; }
                button type="submit" { "Compare" }
            }
            @if jobs.is_empty() {
                p.note { "Give the ids of finished norms jobs (from the " a href="./" { "job list" } ") to overlay their ratios per layer." }
            } @else {
                table.list {
                    tr { th { "job" } th { "status" } th { "duration" } th { "spec" } }
                    @for (job, _) in &jobs {
                        tr {
                            td.name { a href={ "jobs/" (job.id) } { (compared_label(job)) } }
                            td { span class={ "status " (status_class(job.status)) } { (job.status.as_str()) } }
                            td.num { (run_seconds(job).map(format_duration).unwrap_or_default()) }
                            td.name { (stored_spec(job).map(|s| s.to_string()).unwrap_or_default()) }
                        }
                    }
                }
                h2 { "Figure" }
                figure { a href=(figure) { img #figure src=(figure) alt="the jobs' ratios per layer, overlaid"; } }
            }
        }
    };
    Ok(Html(layout("compare", "", main).into_string()))
}
