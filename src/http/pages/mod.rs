//! HTML pages for a browser on a lab server: the job list (`index`), one job (`job`), a
//! submission form (`submit`), and several jobs overlaid (`compare`). Rendered on the server with maud (every interpolation is
//! escaped); links are relative, so the pages work behind a reverse proxy that serves widthlab
//! under a sub-path. Without JavaScript everything but live updates, cancel, delete and submit
//! works; those use a few lines of inline script against the JSON API.

mod compare;
mod index;
mod job;
mod submit;

pub use compare::__path_compare_page;
pub use compare::compare_page;
pub use index::__path_index;
pub use index::index;
pub use job::__path_job_page;
pub use job::job_page;
pub use submit::__path_submit_page;
pub use submit::submit_page;

use maud::{html, Markup, PreEscaped, DOCTYPE};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::store::{JobRow, Status};

const STYLE: &str = r#"
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d232a;background:#fafbfc;font-size:15px}
header{background:#1d2733;color:#fff;padding:.6em 1.5em;display:flex;gap:1.5em;align-items:baseline;flex-wrap:wrap}
header a{color:#cfe3ff;text-decoration:none}header a:hover{text-decoration:underline}
header .brand{font-weight:700;color:#fff;font-size:1.1em}
main{max-width:1360px;margin:0 auto;padding:1em 1.5em 3em}
h1{font-size:1.4em;margin:.4em 0 .6em;word-break:break-word}h2{font-size:1.1em;margin:1.4em 0 .5em}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #dde2e8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
table.list{width:100%}table.list td{white-space:nowrap}table.list td.name{white-space:normal;word-break:break-word}
.num{text-align:right;font-variant-numeric:tabular-nums}
.status{font-weight:600}.succeeded{color:#1a7f37}.failed{color:#c62828}.running{color:#1f5fbf}.queued{color:#8a6d00}.cancelled{color:#6b7280}
.tag{display:inline-block;background:#e8eef7;border-radius:3px;padding:0 5px;margin:0 3px 2px 0;font-size:.88em}
form.filters{display:flex;flex-wrap:wrap;gap:.6em 1em;align-items:end;margin-bottom:1em}
form label{display:flex;flex-direction:column;font-size:.85em;gap:2px}
input,select,textarea,button{font:inherit;padding:3px 6px}
textarea{width:100%;font-family:ui-monospace,monospace;font-size:.9em}
button{cursor:pointer;border:1px solid #9aa5b1;border-radius:4px;background:#fff}
button.danger{border-color:#c62828;color:#c62828}
pre{background:#fff;border:1px solid #dde2e8;padding:.6em;overflow:auto;max-height:28em;font-size:.88em}
.error{background:#fdecea;border:1px solid #f5c2c0;color:#8e1c1c;padding:.6em .8em;border-radius:4px;white-space:pre-wrap}
.field-error{color:#c62828;font-size:.88em;min-height:1em}
.note{color:#5b6570}
.grid{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:0 2em}
@media (max-width:1000px){.grid{grid-template-columns:minmax(0,1fr)}}
figure{margin:0}figure img{max-width:100%;height:auto;background:#fff;border:1px solid #dde2e8}
progress{width:16em;vertical-align:middle}
.actions{display:flex;gap:.8em;align-items:center;flex-wrap:wrap;margin:.8em 0}
.pager{margin-top:.8em;display:flex;gap:1.2em}
"#;

/// A whole page: `root` is the relative path from this page to the application's root (""
/// for pages at the root, "../" one level down).
fn layout(title: &str, root: &str, main: Markup) -> Markup {
    let home = if root.is_empty() { "./" } else { root };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · widthlab" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href=(home) { "widthlab" }
                    a href=(home) { "jobs" }
                    a href={ (root) "submit" } { "submit" }
                    a href={ (root) "compare" } { "compare" }
                    a href={ (root) "v1/presets" } { "presets" }
                    a href={ (root) "openapi.json" } { "API" }
                }
                (main)
            }
        }
    }
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Seconds a job has run: from its start to its end (or to now while it runs).
fn run_seconds(row: &JobRow) -> Option<f64> {
    let start = parse_time(row.started_at.as_deref()?)?;
    let end = match row.finished_at.as_deref() {
        Some(f) => parse_time(f)?,
        None if row.status == Status::Running => OffsetDateTime::now_utc(),
        None => return None,
    };
    Some((end - start).as_seconds_f64().max(0.0))
}

/// Seconds left for a running job, extrapolating its progress so far.
fn eta_seconds(row: &JobRow) -> Option<f64> {
    if row.status != Status::Running || row.progress_done == 0 || row.progress_total <= row.progress_done {
        return None;
    }
    let ran = run_seconds(row)?;
    Some(ran * (row.progress_total - row.progress_done) as f64 / row.progress_done as f64)
}

/// "0.4 s", "12 s", "3 min 05 s", "2 h 07 min" (the same as `fmtDuration` in the pages' script).
fn format_duration(secs: f64) -> String {
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else if secs < 60.0 {
        format!("{secs:.0} s")
    } else if secs < 3600.0 {
        let s = secs.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = (secs / 60.0).round() as u64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

/// The script helpers both live pages use.
const SCRIPT_COMMON: &str = r#"
function fmtDuration(s){if(s<10)return s.toFixed(1)+' s';if(s<60)return Math.round(s)+' s';
 if(s<3600){s=Math.round(s);return Math.floor(s/60)+' min '+String(s%60).padStart(2,'0')+' s';}
 var m=Math.round(s/60);return Math.floor(m/60)+' h '+String(m%60).padStart(2,'0')+' min';}
function runSeconds(j){if(!j.started_at)return null;var a=Date.parse(j.started_at);
 var b=j.finished_at?Date.parse(j.finished_at):(j.status==='running'?Date.now():null);
 return b===null?null:Math.max(0,(b-a)/1000);}
"#;

/// The CSS class of a status (a fixed set of names).
fn status_class(s: Status) -> &'static str {
    s.as_str()
}

#[cfg(test)]
mod tests {
    use super::format_duration;

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(0.42), "0.4 s");
        assert_eq!(format_duration(12.4), "12 s");
        assert_eq!(format_duration(185.0), "3 min 05 s");
        assert_eq!(format_duration(7620.0), "2 h 07 min");
    }
}
