//! HTML pages for a browser on a lab server.

use axum::extract::State;
use axum::response::Html;

use super::figures::figure_title;
use super::responses::{Internal, Timeout};
use super::{ApiError, AppState};
use crate::spec::Kind;
use crate::store::ListQuery;

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /`: recent jobs with status and links. Links are relative, so the page works behind a
/// reverse proxy that serves widthlab under a sub-path.
#[utoipa::path(get, path = "/", tag = "operations",
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String), Timeout, Internal))]
pub async fn index(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let rows = state
        .jobs
        .list(&ListQuery {
            limit: 50,
            ..ListQuery::default()
        })
        .await?;
    let mut body = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>widthlab</title>\
         <meta http-equiv=\"refresh\" content=\"10\">\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#eee}\
         .succeeded{color:#2a2}.failed{color:#c22}.running{color:#22c}</style></head><body>\
         <h1>widthlab</h1><p>Deep ReLU networks at initialization, held against width bounds. \
         Submit with <code>POST /v1/jobs</code> (see <a href=\"v1/presets\">presets</a>, \
         <a href=\"openapi.json\">OpenAPI</a>, <a href=\"metrics\">metrics</a>). This page refreshes every 10 s.</p>\
         <table><tr><th>created</th><th>job</th><th>kind</th><th>status</th><th>progress</th><th>spec</th><th>figure</th><th>data</th></tr>",
    );
    for r in &rows {
        let id = html_escape(&r.id);
        let data = match r.kind {
            Kind::WidthSweep => {
                format!("<a href=\"v1/jobs/{id}/sweep\">json</a> <a href=\"v1/jobs/{id}/sweep?format=csv\">csv</a>")
            }
            Kind::Geometry => format!(
                "<a href=\"v1/jobs/{id}/geometry\">json</a> <a href=\"v1/jobs/{id}/geometry?format=csv\">csv</a>"
            ),
            Kind::MinWidth => {
                format!("<a href=\"v1/jobs/{id}/search\">json</a> <a href=\"v1/jobs/{id}/search?format=csv\">csv</a>")
            }
            Kind::Norms => format!(
                "<a href=\"v1/jobs/{id}/layers\">json</a> <a href=\"v1/jobs/{id}/layers?format=csv\">csv</a> \
                 <a href=\"v1/jobs/{id}/bound-checks\">bounds</a>"
            ),
        };
        body.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"v1/jobs/{id}\">{}</a></td><td>{}</td><td class=\"{}\">{}</td><td>{}/{}</td>\
             <td>{}</td><td><a href=\"v1/jobs/{id}/plot.svg\">plot.svg</a></td><td>{data}</td></tr>",
            html_escape(&r.created_at),
            html_escape(&r.id[..r.id.len().min(8)]),
            r.kind,
            r.status,
            r.status,
            r.progress_done,
            r.progress_total,
            html_escape(&figure_title(r)),
        ));
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"8\">no jobs yet</td></tr>");
    }
    body.push_str("</table></body></html>");
    Ok(Html(body))
}
