//! `GET /jobs/{id}`: one job for a person: labels, live status, figure, numbers, actions.

use axum::extract::State;
use axum::response::Html;
use maud::{html, Markup, PreEscaped};
use serde_json::Value;

use super::super::extract::Path;
use super::super::responses::{BadPath, Internal, JobNotFound, Timeout};
use super::super::{ApiError, AppState};
use super::{eta_seconds, format_duration, layout, run_seconds, status_class, SCRIPT_COMMON};
use crate::config::Auth;
use crate::spec::Kind;
use crate::store::{JobRow, ResultFamily, Status};

/// Live status over the job's event stream; at the final event the page's content is fetched
/// again and swapped in (no reload). Cancel and delete through the JSON API.
const SCRIPT: &str = r#"
(function(){
 function $(s){return document.querySelector(s);}
 var tokenKey='widthlab-token';
 function headers(){var h={'Accept':'application/json'};var t=$('#token');
  var v=t?t.value.trim():'';if(t){try{localStorage.setItem(tokenKey,v);}catch(e){}}
  if(v)h['Authorization']='Bearer '+v;return h;}
 function say(msg,bad){var m=$('#action-message');if(m){m.textContent=msg;m.className=bad?'error':'note';m.hidden=false;}}
 function refresh(){fetch(location.href,{headers:{'Accept':'text/html'}}).then(function(r){return r.text();}).then(function(html){
   var doc=new DOMParser().parseFromString(html,'text/html');var fresh=doc.querySelector('main');
   var t=$('#token'),keep=t?t.value:null;
   if(fresh){$('main').replaceWith(fresh);var t2=$('#token');if(t2&&keep!==null)t2.value=keep;start();}
  });}
 function show(j,status){
  var st=$('#status');if(!st)return;st.textContent=status;st.className='status '+status;
  $('main').dataset.status=status;
  var bar=$('#progress-bar'),txt=$('#progress-text');
  if(bar){bar.max=Math.max(1,j.total);bar.value=j.done;}
  if(txt)txt.textContent=j.done+'/'+j.total;
  var started=$('main').dataset.started;
  if(status==='running'&&started){var ran=Math.max(0,(Date.now()-Date.parse(started))/1000);
   $('#duration').textContent=fmtDuration(ran);
   $('#eta').textContent=(j.done>0&&j.total>j.done)?fmtDuration(ran*(j.total-j.done)/j.done):'';}
 }
 var es=null;
 function start(){
  var m=$('main');var t=$('#token');
  if(t&&!t.value){try{t.value=localStorage.getItem(tokenKey)||'';}catch(e){}}
  if(es){es.close();es=null;}
  if(!m||['succeeded','failed','cancelled'].indexOf(m.dataset.status)>=0||!window.EventSource)return;
  es=new EventSource('../v1/jobs/'+m.dataset.id+'/events');
  es.addEventListener('progress',function(e){var j=JSON.parse(e.data);
   if(j.status==='running'&&!$('main').dataset.started){refresh();return;}
   show(j,j.status);});
  es.addEventListener('status',function(e){es.close();es=null;var j=JSON.parse(e.data);
   show({done:j.progress.done,total:j.progress.total},j.status);refresh();});
  es.onerror=function(){if(es&&es.readyState===2){es=null;setTimeout(refresh,2000);}};
 }
 document.addEventListener('click',function(e){
  var b=e.target.closest('button[data-action]');if(!b)return;e.preventDefault();
  var id=$('main').dataset.id,act=b.dataset.action;
  if(act==='delete'&&!confirm('Delete this job and its results?'))return;
  var req=act==='cancel'?fetch('../v1/jobs/'+id+'/cancel',{method:'POST',headers:headers()})
                        :fetch('../v1/jobs/'+id,{method:'DELETE',headers:headers()});
  req.then(function(r){
   if(r.status===204){say('Deleted. ');var a=document.createElement('a');a.href='../';a.textContent='Back to the jobs';$('#action-message').appendChild(a);$('main').dataset.status='deleted';return;}
   return r.json().then(function(body){
    if(r.ok){say(act==='cancel'?(r.status===200?'Cancelled.':'Cancel requested: the job stops at its next layer.'):'Done.');if(r.status===200)refresh();}
    else say(r.status+' '+(body.error?body.error.code+': '+body.error.message:''),true);
   });
  }).catch(function(err){say('request failed: '+err,true);});
 });
 start();
})();
"#;

/// The web page of one job: name, preset, owner, tags, status with live progress (Server-Sent
/// Events), duration and ETA, the figure once it succeeded, summary and verdicts, the spec and
/// stamp, links to the JSON and CSV, the error of a failed job, cancel and delete.
#[utoipa::path(get, path = "/jobs/{id}", tag = "operations", params(("id" = String, Path, description = "the job's id")),
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String),
        BadPath, JobNotFound, Timeout, Internal))]
pub async fn job_page(State(state): State<AppState>, Path(id): Path<String>) -> Result<Html<String>, ApiError> {
    let job = state.jobs.job(&id).await?;
    let checks = if job.kind == Kind::Norms && job.status == Status::Succeeded {
        state.jobs.result_documents(&id, ResultFamily::BoundCheck).await?
    } else {
        Vec::new()
    };
    let tokens = matches!(&*state.auth, Auth::Tokens { .. });
    let title = job.name.clone().unwrap_or_else(|| format!("job {}", short(&job.id)));
    let main = render(&job, &checks, tokens, &title);
    Ok(Html(layout(&title, "../", main).into_string()))
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn render(job: &JobRow, checks: &[Value], tokens: bool, title: &str) -> Markup {
    let api = format!("../v1/jobs/{}", job.id);
    let terminal = job.status.is_terminal();
    // The layers whose kept per-sample ratios can be shown (`keep_samples` jobs).
    let kept_depth = (job.kind == Kind::Norms && job.spec["keep_samples"] == Value::Bool(true))
        .then(|| job.spec["network"]["widths"].as_array().map_or(1, Vec::len));
    let data_links: Vec<(String, &str)> = match job.kind {
        Kind::Norms if kept_depth.is_some() => vec![
            (format!("{api}/layers"), "layers (JSON)"),
            (format!("{api}/layers?format=csv"), "layers (CSV)"),
            (format!("{api}/bound-checks"), "bound checks (JSON)"),
            (format!("{api}/samples?format=csv"), "per-sample ratios (CSV)"),
            (format!("{api}/samples?format=ndjson"), "per-sample ratios (NDJSON)"),
        ],
        Kind::Norms => vec![
            (format!("{api}/layers"), "layers (JSON)"),
            (format!("{api}/layers?format=csv"), "layers (CSV)"),
            (format!("{api}/bound-checks"), "bound checks (JSON)"),
        ],
        Kind::WidthSweep => vec![
            (format!("{api}/sweep"), "sweep (JSON)"),
            (format!("{api}/sweep?format=csv"), "sweep (CSV)"),
        ],
        Kind::MinWidth => vec![
            (format!("{api}/search"), "search (JSON)"),
            (format!("{api}/search?format=csv"), "search (CSV)"),
        ],
        Kind::Geometry => vec![
            (format!("{api}/geometry"), "angles and distances (JSON)"),
            (format!("{api}/geometry?format=csv"), "angles and distances (CSV)"),
        ],
        Kind::WorstCase => vec![
            (format!("{api}/worst_case"), "worst case over the sphere (JSON)"),
            (
                format!("{api}/worst_case?format=csv"),
                "worst case over the sphere (CSV)",
            ),
        ],
    };
    html! {
        main data-id=(job.id) data-status=(job.status.as_str()) data-started=(job.started_at.as_deref().unwrap_or("")) {
            h1 { (title) }
            div.grid {
                div {
                    table.meta {
                        tr { th { "status" } td { span #status class={ "status " (status_class(job.status)) } { (job.status.as_str()) }
                            @if job.cancel_requested && !terminal { " (cancel requested)" } } }
                        tr { th { "progress" } td {
                            progress #progress-bar max=(job.progress_total.max(1)) value=(job.progress_done) {}
                            " " span #progress-text { (job.progress_done) "/" (job.progress_total) } } }
                        tr { th { "duration" } td #duration { (run_seconds(job).map(format_duration).unwrap_or_else(|| "not started".into())) } }
                        tr { th { "ETA" } td #eta { (eta_seconds(job).map(format_duration).unwrap_or_default()) } }
                        tr { th { "id" } td { code { (job.id) } } }
                        tr { th { "kind" } td { (job.kind.as_str()) } }
                        tr { th { "preset" } td { (job.preset.as_deref().unwrap_or("none")) } }
                        tr { th { "owner" } td { (job.owner.as_deref().unwrap_or("none")) } }
                        tr { th { "tags" } td { @for t in &job.tags { span.tag { (t) } } @if job.tags.is_empty() { "none" } } }
                        tr { th { "created" } td { (job.created_at) } }
                        tr { th { "started" } td { (job.started_at.as_deref().unwrap_or("")) } }
                        tr { th { "finished" } td { (job.finished_at.as_deref().unwrap_or("")) } }
                        @if job.attempt > 0 { tr { th { "attempt" } td { (job.attempt) } } }
                    }
                    div.actions {
                        @if tokens {
                            label { "token " input #token type="password" size="18" autocomplete="off" placeholder="bearer token"; }
                        }
                        @if !terminal { button.danger type="button" data-action="cancel" { "Cancel job" } }
                        @if terminal { button.danger type="button" data-action="delete" { "Delete job" } }
                    }
                    p #action-message hidden {}
                    @if let Some(err) = &job.error {
                        h2 { "Error" }
                        div.error #job-error { (err) }
                    }
                    h2 { "Data" }
                    p {
                        a href=(api) { "job (JSON)" }
                        @for (href, label) in &data_links { " · " a href=(href) { (label) } }
                        " · " a href={ (api) "/events" } { "events" }
                    }
                }
                div {
                    h2 { "Figure" }
                    @match job.status {
                        Status::Succeeded => figure { a href={ (api) "/plot.svg" } { img #figure src={ (api) "/plot.svg" } alt={ "figure of " (title) }; } },
                        Status::Failed => p.note { "No figure: the job failed (see the error)." },
                        Status::Cancelled => p.note { "No figure: the job was cancelled." },
                        _ => p.note #figure-note { "The figure appears here when the job has succeeded." },
                    }
                }
            }
            @if let (Some(depth), Status::Succeeded) = (kept_depth, job.status) {
                h2 { "Per-sample ratios" }
                p #histograms {
                    "Histograms by layer, forward: "
                    @for l in 1..=depth { a href={ (api) "/histogram.svg?layer=" (l) } { (l) } " " }
                    "· gradient: "
                    @for l in 1..=depth { a href={ (api) "/histogram.svg?ratio=gradient&layer=" (l) } { (l) } " " }
                }
                figure { a href={ (api) "/histogram.svg" } { img #histogram src={ (api) "/histogram.svg" } alt={ "histogram of the last layer's forward ratios" }; } }
            }
            @if !checks.is_empty() { h2 { "Bound checks" } (verdict_table(checks)) }
            @if let Some(summary) = &job.summary { h2 { "Summary" } (json_table(summary)) }
            div.grid {
                div { h2 { "Spec" } pre #spec { (pretty(&job.spec)) } }
                div { h2 { "Stamp" } pre #stamp { (job.stamp.as_ref().map(pretty).unwrap_or_default()) } }
            }
            script { (PreEscaped(SCRIPT_COMMON)) (PreEscaped(SCRIPT)) }
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn number(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => {
                if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e6) {
                    format!("{x:.3e}")
                } else {
                    format!("{:.4}", x)
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                        .to_string()
                }
            }
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One row per bound: what it requires, what it guarantees, what was observed, the verdict.
fn verdict_table(checks: &[Value]) -> Markup {
    html! {
        table.verdicts {
            tr { th { "bound" } th { "required width" } th { "actual width" } th { "epsilon" } th { "guaranteed epsilon" }
                 th { "observed P(all within)" } th { "95% interval" } th { "verdict" } }
            @for c in checks {
                tr {
                    td { (number(&c["bound"])) }
                    td.num { (number(&c["required_width"])) }
                    td.num { (number(&c["actual_width"])) }
                    td.num { (number(&c["epsilon"])) }
                    td.num { (number(&c["guaranteed_epsilon"])) }
                    td.num { (number(&c["observed"]["probability"])) }
                    td.num { "[" (number(&c["observed"]["ci_low"])) ", " (number(&c["observed"]["ci_high"])) "]" }
                    td { strong { (number(&c["verdict"])) } }
                }
            }
        }
    }
}

/// A JSON document as nested tables: objects as key/value rows, arrays of objects as tables
/// with a column per key, anything else as text.
fn json_table(v: &Value) -> Markup {
    match v {
        Value::Object(map) => html! {
            table { @for (k, x) in map { tr { th { (k) } td { (json_table(x)) } } } }
        },
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let mut columns: Vec<&String> = Vec::new();
            for item in items {
                for k in item.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !columns.contains(&k) {
                        columns.push(k);
                    }
                }
            }
            html! {
                table {
                    tr { @for c in &columns { th { (c) } } }
                    @for item in items { tr { @for c in &columns { td { (json_table(&item[c.as_str()])) } } } }
                }
            }
        }
        Value::Array(items) => html! { (items.iter().map(number).collect::<Vec<_>>().join(", ")) },
        other => html! { (number(other)) },
    }
}
