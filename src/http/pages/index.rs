//! `GET /`: the jobs, newest first, with filters, cursor paging and live status.

use axum::extract::State;
use axum::response::Html;
use maud::{html, PreEscaped};

use super::super::extract::Params;
use super::super::jobs::{list_page, list_query, LIST_PARAMS};
use super::super::responses::{BadQuery, Internal, Timeout};
use super::super::{ApiError, AppState};
use super::{format_duration, layout, run_seconds, status_class, SCRIPT_COMMON};
use crate::spec::presets::presets;
use crate::spec::Kind;
use crate::store::Status;

const PAGE: u32 = 25;

/// Polls the listing this page shows and updates each row's status, progress and duration.
const SCRIPT: &str = r#"
(function(){
 var table=document.getElementById('jobs');if(!table)return;
 function tick(){
  var q=new URLSearchParams(location.search),p=new URLSearchParams();
  q.forEach(function(v,k){if(v!=='')p.set(k,v);});
  if(!p.has('limit'))p.set('limit',table.dataset.limit);
  fetch('v1/jobs?'+p.toString(),{headers:{'Accept':'application/json'}}).then(function(r){return r.ok?r.json():null;}).then(function(page){
   if(!page)return;var known={};
   page.jobs.forEach(function(j){
    known[j.id]=1;
    var tr=document.querySelector('tr[data-id="'+j.id+'"]');
    if(!tr){var n=document.getElementById('newer');if(n&&!p.has('cursor'))n.hidden=false;return;}
    var st=tr.querySelector('.status');st.textContent=j.status;st.className='status '+j.status;
    tr.querySelector('.progress').textContent=j.progress.done+'/'+j.progress.total;
    var d=runSeconds(j);tr.querySelector('.duration').textContent=d===null?'':fmtDuration(d);
    var fig=tr.querySelector('.figure');
    if(j.status==='succeeded'&&fig&&!fig.firstChild){var a=document.createElement('a');a.href='v1/jobs/'+j.id+'/plot.svg';a.textContent='plot.svg';fig.appendChild(a);}
   });
  }).catch(function(){});
 }
 setInterval(tick,3000);
})();
"#;

/// A filter of the page's form: one of `names`, or blank (any).
fn names_or_blank(names: impl Iterator<Item = &'static str>) -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names.chain([""])))
        .build()
}

fn status_or_blank() -> utoipa::openapi::Object {
    names_or_blank(Status::ALL.iter().map(|s| s.as_str()))
}

fn kind_or_blank() -> utoipa::openapi::Object {
    names_or_blank(Kind::ALL.iter().map(|k| k.as_str()))
}

/// The filters of the page's GET form. A blank field means "any", so each one's schema allows
/// the empty string beside its values.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; the handler reads `Params`
struct IndexFilters {
    /// A job state (blank: any).
    #[param(schema_with = status_or_blank)]
    status: Option<String>,
    /// A job kind (blank: any).
    #[param(schema_with = kind_or_blank)]
    kind: Option<String>,
    /// The preset the job was submitted from (blank: any).
    preset: Option<String>,
    /// Part of the job's name, ASCII case ignored (blank: any).
    #[param(max_length = 120)]
    name: Option<String>,
    /// A tag the job carries, exact (blank: any).
    #[param(pattern = "^([A-Za-z0-9_.-]{1,40})?$")]
    tag: Option<String>,
    /// The name of the token that submitted the job (blank: any).
    owner: Option<String>,
    /// Page size, 1 to 100 (blank: 25).
    #[param(pattern = "^([1-9]|[1-9][0-9]|100)?$")]
    limit: Option<String>,
    /// Where the page starts, from the page's "older" link (blank: the newest).
    #[param(pattern = "^([0-9]{1,18})?$")]
    cursor: Option<String>,
}

/// The web page of jobs: filters (status, kind, preset, name, tag, owner) as a plain GET form,
/// newest first, paged by the listing's cursor; status, progress and duration update live.
#[utoipa::path(get, path = "/", tag = "operations",
    params(IndexFilters),
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String),
        BadQuery, Timeout,
        (status = 422, description = "invalid_spec: a filter's value is not allowed (named in `field`)", body = super::super::schema::ErrorBody),
        Internal))]
pub async fn index(State(state): State<AppState>, params: Params) -> Result<Html<String>, ApiError> {
    params.only(LIST_PARAMS)?;
    let params = params.without_empty();
    let query = list_query(&params, PAGE)?;
    let limit = query.limit;
    let (rows, next_cursor) = list_page(&state, query).await?;
    let value = |k: &str| params.get(k).unwrap_or("").to_string();
    let filtered = ["status", "kind", "preset", "name", "tag", "owner"]
        .iter()
        .any(|k| params.get(k).is_some());
    // The "older" link keeps the filters.
    let older = next_cursor.map(|c| {
        let mut pairs: Vec<(String, String)> = ["status", "kind", "preset", "name", "tag", "owner", "limit"]
            .iter()
            .filter_map(|k| params.get(k).map(|v| (k.to_string(), v.to_string())))
            .collect();
        pairs.push(("cursor".into(), c));
        format!("./?{}", encode_query(&pairs))
    });
    let first_page = {
        let pairs: Vec<(String, String)> = ["status", "kind", "preset", "name", "tag", "owner", "limit"]
            .iter()
            .filter_map(|k| params.get(k).map(|v| (k.to_string(), v.to_string())))
            .collect();
        format!("./?{}", encode_query(&pairs))
    };
    let preset_names: Vec<&str> = presets().iter().map(|p| p.name).collect();
    let main = html! {
        main {
            h1 { "Jobs" }
            p.note {
                "Deep ReLU networks at initialization, held against width bounds. "
                a href="submit" { "Submit a job" } ", or " code { "POST v1/jobs" } " (see the " a href="openapi.json" { "API" } ")."
            }
            form.filters method="get" action="./" {
                label { "status"
                    select name="status" {
                        option value="" { "any" }
                        @for s in Status::ALL { option selected[value("status") == s.as_str()] { (s.as_str()) } }
                    }
                }
                label { "kind"
                    select name="kind" {
                        option value="" { "any" }
                        @for k in Kind::ALL { option selected[value("kind") == k.as_str()] { (k.as_str()) } }
                    }
                }
                label { "preset"
                    select name="preset" {
                        option value="" { "any" }
                        @for p in &preset_names { option selected[value("preset") == *p] { (p) } }
                    }
                }
                label { "name contains" input type="search" name="name" value=(value("name")) maxlength="120"; }
                label { "tag" input type="text" name="tag" value=(value("tag")) size="12" maxlength="40"; }
                label { "owner" input type="text" name="owner" value=(value("owner")) size="10"; }
                button type="submit" { "Filter" }
                @if filtered { a href="./" { "clear" } }
            }
            p #newer hidden { "Newer jobs exist: " a href=(first_page) { "show them" } }
            table.list #jobs data-limit=(limit) {
                thead { tr {
                    th { "created (UTC)" } th { "job" } th { "kind" } th { "preset" } th { "status" }
                    th { "progress" } th { "duration" } th { "owner" } th { "tags" } th { "figure" }
                } }
                tbody {
                    @for r in &rows {
                        tr data-id=(r.id) {
                            td { (r.created_at.get(..19).unwrap_or(&r.created_at).replace('T', " ")) }
                            td.name {
                                a href={ "jobs/" (r.id) } {
                                    @match &r.name { Some(n) => (n), None => code { (r.id.get(..8).unwrap_or(&r.id)) } }
                                }
                            }
                            td { (r.kind.as_str()) }
                            td { (r.preset.as_deref().unwrap_or("")) }
                            td { span class={ "status " (status_class(r.status)) } { (r.status.as_str()) } }
                            td.num.progress { (r.progress_done) "/" (r.progress_total) }
                            td.num.duration { (run_seconds(r).map(format_duration).unwrap_or_default()) }
                            td { (r.owner.as_deref().unwrap_or("")) }
                            td { @for t in &r.tags { span.tag { (t) } } }
                            td.figure {
                                @if r.status == Status::Succeeded { a href={ "v1/jobs/" (r.id) "/plot.svg" } { "plot.svg" } }
                            }
                        }
                    }
                    @if rows.is_empty() {
                        tr { td colspan="10" { @if filtered { "No job matches these filters." } @else { "No jobs yet." } } }
                    }
                }
            }
            div.pager {
                @if params.get("cursor").is_some() { a href=(first_page) { "« newest" } }
                @if let Some(o) = &older { a href=(o) { "older »" } }
            }
            script { (PreEscaped(SCRIPT_COMMON)) (PreEscaped(SCRIPT)) }
        }
    };
    Ok(Html(layout("jobs", "", main).into_string()))
}

/// `k=v&k=v`, percent-encoding everything but unreserved characters.
fn encode_query(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
