//! What people look at: sweep points, figures, the job list page, presets, metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::extract::{Params, Path};
use super::jobs::{find, to_csv, wants_csv};
use super::schema::{ErrorBody, PresetList, SweepPage};
use super::{ApiError, AppState};
use crate::plot::{map_svg, norms_svg, sweep_svg};
use crate::presets::presets;
use crate::spec::{parse_spec, Limits};
use crate::store::{JobRow, ListQuery};
use crate::sweep::{frontier, FrontierRow, PointReport};

const SWEEP_COLUMNS: &[&str] = &[
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
    "/guaranteed_epsilon/arpit2019",
    "/guaranteed_epsilon/exact_tail",
    "/guaranteed_epsilon/chernoff",
    "/min_width/arpit2019",
    "/min_width/exact_tail",
    "/min_width/chernoff",
];

/// A point as JSON with the bounds also keyed by name (flat CSV columns).
fn point_json(p: &crate::sweep::PointReport) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    let by = |f: &dyn Fn(&crate::sweep::PointBound) -> Value| -> Value {
        Value::Object(p.bounds.iter().map(|b| (b.bound.clone(), f(b))).collect())
    };
    v["guaranteed_epsilon"] = by(&|b| json!(b.guaranteed_epsilon));
    v["min_width"] = by(&|b| json!(b.min_width));
    v
}

/// Parse a stored (normalized) spec; limits are not the question here, only the shape.
fn stored_spec(row: &JobRow) -> Option<crate::spec::Spec> {
    let v: Value = serde_json::from_str(&row.spec).ok()?;
    let relaxed = Limits {
        max_memory_bytes: u64::MAX,
        max_work: f64::INFINITY,
        ..Limits::default()
    };
    parse_spec(&v, &relaxed).ok()
}

/// The points of a `width_sweep` (stored as each completes) and the frontier; `?format=csv`.
#[utoipa::path(get, path = "/v1/jobs/{id}/sweep", tag = "results",
    params(("id" = String, Path), ("format" = Option<String>, Query, description = "json (default) | csv")),
    responses((status = 200, body = SweepPage), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "Not a sweep")))]
pub async fn sweep(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&params)?;
    let job = find(&state, &id).await?;
    if job.kind != "width_sweep" {
        return Err(ApiError::Conflict {
            code: "wrong_kind",
            message: format!(
                "job {id} is a {} job; sweep points exist for width_sweep jobs (see /layers)",
                job.kind
            ),
        });
    }
    let points = state.jobs.store().sweep_points(&id).await?;
    let rows: Vec<Value> = points.iter().map(point_json).collect();
    if csv {
        let disposition = format!("inline; filename=\"widthlab-{id}-sweep.csv\"");
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            to_csv(&rows, SWEEP_COLUMNS),
        )
            .into_response());
    }
    let frontier = frontier_of(&job, &points).await?;
    Ok(Json(SweepPage {
        job_id: id,
        status: job.status,
        points: rows,
        frontier,
    })
    .into_response())
}

/// The frontier of a sweep: stored in the summary once it succeeded; for a running sweep,
/// computed off the async workers (the exact-tail minimal widths take seconds at large widths).
async fn frontier_of(job: &JobRow, points: &[PointReport]) -> Result<Vec<FrontierRow>, ApiError> {
    let stored = job
        .summary
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    if let Some(rows) = stored.and_then(|v| serde_json::from_value::<Vec<FrontierRow>>(v["frontier"].clone()).ok()) {
        return Ok(rows);
    }
    let Some(spec) = stored_spec(job) else {
        return Ok(Vec::new());
    };
    let points = points.to_vec();
    let permit = super::bounds::BOUNDS_SLOTS
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let rows = frontier(&spec, &points);
        drop(permit);
        rows
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))
}

/// A one-line description of a spec for figure titles.
pub fn spec_title(id: &str, spec: &Value) -> String {
    let net = &spec["network"];
    let weights = if net["weight_norm"].is_object() {
        format!(
            "weight norm (gain {}, {})",
            net["weight_norm"]["gain"],
            net["weight_norm"]["direction"].as_str().unwrap_or("")
        )
    } else {
        let init = &net["init"];
        let mut s = init["scheme"].as_str().unwrap_or("?").to_string();
        for k in ["fan", "gain", "variance"] {
            if !init[k].is_null() {
                s.push_str(&format!(
                    " {k}={}",
                    init[k].as_str().map_or(init[k].to_string(), String::from)
                ));
            }
        }
        s
    };
    let shape = match net["widths"].as_array() {
        Some(ws) if ws.windows(2).all(|w| w[0] == w[1]) && !ws.is_empty() => format!("L={} m={}", ws.len(), ws[0]),
        Some(ws) => format!("widths={}", Value::Array(ws.clone())),
        None => format!(
            "widths {} depths {}",
            net["widths_to_sweep"],
            if net["depths_to_sweep"].is_null() {
                net["depth"].to_string()
            } else {
                net["depths_to_sweep"].to_string()
            }
        ),
    };
    format!(
        "job {}: {weights}, n0={} {shape}, N={} trials={} eps={} seed={} ({})",
        &id[..id.len().min(8)],
        net["input_dim"],
        spec["samples"],
        spec["trials"],
        spec["epsilon"],
        spec["seed"],
        spec["precision"].as_str().unwrap_or("")
    )
}

/// The job's figure (SVG): per-layer ratios, deviation vs width, or a width x depth map.
#[utoipa::path(get, path = "/v1/jobs/{id}/plot.svg", tag = "results", params(("id" = String, Path)),
    responses(
        (status = 200, content_type = "image/svg+xml", body = String),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "No results yet")))]
pub async fn plot(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = find(&state, &id).await?;
    let spec: Value = serde_json::from_str(&job.spec).unwrap_or(Value::Null);
    let title = spec_title(&id, &spec);
    let not_ready = || ApiError::Conflict {
        code: "not_ready",
        message: format!("job {id} is {} and has no results to plot yet", job.status),
    };
    let svg = if job.kind == "width_sweep" {
        let points = state.jobs.store().sweep_points(&id).await?;
        if points.is_empty() {
            return Err(not_ready());
        }
        let depths = spec["network"]["depths_to_sweep"].as_array().map_or(1, Vec::len);
        if depths > 1 {
            let rows = frontier_of(&job, &points).await?;
            map_svg(&title, &points, &rows)
        } else {
            sweep_svg(&title, &points)
        }
    } else {
        let layers = state.jobs.store().layers(&id).await?;
        if layers.is_empty() {
            return Err(not_ready());
        }
        norms_svg(&title, &layers)
    }
    .map_err(ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// The named paper configurations.
#[utoipa::path(get, path = "/v1/presets", tag = "jobs", responses((status = 200, body = PresetList)))]
pub async fn list_presets() -> Json<PresetList> {
    Json(PresetList { presets: presets() })
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /`: recent jobs with status and links, for a browser on a lab server.
#[utoipa::path(get, path = "/", tag = "operations", responses((status = 200, content_type = "text/html", body = String)))]
pub async fn index(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let rows = state
        .jobs
        .store()
        .list_jobs(&ListQuery {
            status: None,
            kind: None,
            limit: 50,
            before_seq: None,
        })
        .await?;
    let mut body = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>widthlab</title>\
         <meta http-equiv=\"refresh\" content=\"10\">\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#eee}\
         .succeeded{color:#2a2}.failed{color:#c22}.running{color:#22c}</style></head><body>\
         <h1>widthlab</h1><p>Deep ReLU networks at initialization, held against width bounds. \
         Submit with <code>POST /v1/jobs</code> (see <a href=\"/v1/presets\">presets</a>, \
         <a href=\"/openapi.json\">OpenAPI</a>, <a href=\"/metrics\">metrics</a>). This page refreshes every 10 s.</p>\
         <table><tr><th>created</th><th>job</th><th>kind</th><th>status</th><th>progress</th><th>spec</th><th>figure</th><th>data</th></tr>",
    );
    for r in &rows {
        let spec: Value = serde_json::from_str(&r.spec).unwrap_or(Value::Null);
        let id = html_escape(&r.id);
        let data = if r.kind == "width_sweep" {
            format!("<a href=\"/v1/jobs/{id}/sweep\">json</a> <a href=\"/v1/jobs/{id}/sweep?format=csv\">csv</a>")
        } else {
            format!(
                "<a href=\"/v1/jobs/{id}/layers\">json</a> <a href=\"/v1/jobs/{id}/layers?format=csv\">csv</a> \
                 <a href=\"/v1/jobs/{id}/bound-checks\">bounds</a>"
            )
        };
        body.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"/v1/jobs/{id}\">{}</a></td><td>{}</td><td class=\"{}\">{}</td><td>{}/{}</td>\
             <td>{}</td><td><a href=\"/v1/jobs/{id}/plot.svg\">plot.svg</a></td><td>{data}</td></tr>",
            html_escape(&r.created_at),
            html_escape(&r.id[..r.id.len().min(8)]),
            html_escape(&r.kind),
            html_escape(&r.status),
            html_escape(&r.status),
            r.progress_done,
            r.progress_total,
            html_escape(&spec_title(&r.id, &spec)),
        ));
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"8\">no jobs yet</td></tr>");
    }
    body.push_str("</table></body></html>");
    Ok(Html(body))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.jobs.store();
    let by_status = store.count_by_status().await?;
    let queued = store.count_queued().await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::metrics::render(&by_status, queued),
    )
        .into_response())
}
