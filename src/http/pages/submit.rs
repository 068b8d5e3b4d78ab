//! `GET /submit`: a form to submit a preset or a pasted spec, with the server's 422s shown
//! beside the field they name.

use axum::extract::State;
use axum::response::Html;
use maud::{html, PreEscaped};

use super::super::responses::Timeout;
use super::super::AppState;
use super::layout;
use crate::config::Auth;
use crate::spec::presets::presets;

/// Builds the body from the form, posts it to the API and goes to the job's page, or shows each
/// error beside its field.
const SCRIPT: &str = r#"
(function(){
 function $(s){return document.querySelector(s);}
 var presets=JSON.parse($('#preset-data').textContent);
 var tokenKey='widthlab-token';
 var t=$('#token');if(t){try{t.value=localStorage.getItem(tokenKey)||'';}catch(e){}}
 function fill(){var name=$('#preset').value;
  if(name){$('#spec').value=JSON.stringify({preset:name},null,2);
   var p=presets.filter(function(p){return p.name===name;})[0];$('#preset-description').textContent=p?p.description:'';}}
 $('#preset').addEventListener('change',fill);
 function clear(){document.querySelectorAll('.field-error').forEach(function(e){e.textContent='';});$('#form-error').hidden=true;}
 function show(field,msg){
  var slot=field==='name'?'#name-error':(field&&field.indexOf('tags')===0)?'#tags-error':field==='preset'?'#preset-error':'#spec-error';
  $(slot).textContent=(field?field+': ':'')+msg;
 }
 $('#submit-form').addEventListener('submit',function(e){
  e.preventDefault();clear();
  var body;
  try{body=JSON.parse($('#spec').value||'{}');}catch(err){show('', 'the spec is not JSON: '+err.message);return;}
  if(body===null||typeof body!=='object'||Array.isArray(body)){show('','the spec must be a JSON object');return;}
  var name=$('#name').value.trim();if(name)body.name=name;
  var tags=$('#tags').value.split(/[\s,]+/).filter(function(s){return s!=='';});if(tags.length)body.tags=tags;
  var h={'Content-Type':'application/json','Accept':'application/json'};
  if(t){var v=t.value.trim();try{localStorage.setItem(tokenKey,v);}catch(e){}if(v)h['Authorization']='Bearer '+v;}
  $('#submit-button').disabled=true;
  fetch('v1/jobs',{method:'POST',headers:h,body:JSON.stringify(body)}).then(function(r){
   return r.json().then(function(j){
    if(r.status===202||r.status===200){location.href='jobs/'+encodeURIComponent(j.id);return;}
    $('#submit-button').disabled=false;
    var err=j.error||{};
    if(r.status===422||r.status===400)show(err.field||'',err.message||'');
    else{var f=$('#form-error');f.textContent=r.status+' '+(err.code||'')+': '+(err.message||'');f.hidden=false;}
   });
  }).catch(function(err){$('#submit-button').disabled=false;var f=$('#form-error');f.textContent='request failed: '+err;f.hidden=false;});
 });
})();
"#;

/// The web page to submit a job: pick a preset or paste a spec, name and tag it.
#[utoipa::path(get, path = "/submit", tag = "operations",
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String), Timeout))]
pub async fn submit_page(State(state): State<AppState>) -> Html<String> {
    let all = presets();
    let tokens = matches!(&*state.auth, Auth::Tokens { .. });
    let catalogue: Vec<serde_json::Value> = all
        .iter()
        .map(|p| serde_json::json!({"name": p.name, "description": p.description}))
        .collect();
    // JSON inside <script> must not close the element: escape '<' (and '>' and '&' too).
    let catalogue = serde_json::to_string(&catalogue)
        .unwrap_or_else(|_| "[]".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let main = html! {
        main {
            h1 { "Submit a job" }
            p.note { "Pick a preset (its spec, with any fields you add as overrides) or paste a job spec. "
                     "The form posts to " code { "v1/jobs" } " and opens the job's page; it needs JavaScript." }
            form #submit-form method="post" action="v1/jobs" {
                div.grid {
                    div {
                        p { label { "preset"
                            select #preset name="preset" {
                                option value="" { "(paste a spec instead)" }
                                @for p in &all { option value=(p.name) { (p.name) } }
                            }
                        } }
                        p.note #preset-description {}
                        div.field-error #preset-error {}
                        p { label { "name (up to 120 characters)" input #name name="name" type="text" maxlength="120" size="50"; } }
                        div.field-error #name-error {}
                        p { label { "tags (up to 16, separated by spaces or commas; letters, digits, _ . -)"
                            input #tags name="tags" type="text" size="50"; } }
                        div.field-error #tags-error {}
                        @if tokens {
                            p { label { "token (this server requires one to submit)"
                                input #token type="password" size="30" autocomplete="off"; } }
                        }
                    }
                    div {
                        label { "spec (JSON)"
                            textarea #spec name="spec" rows="16" spellcheck="false" {
                                "{\n  \"network\": {\"input_dim\": 50, \"depth\": 4, \"width\": 32,\n              \"init\": {\"scheme\": \"he\", \"fan\": \"out\"}},\n  \"samples\": 200,\n  \"trials\": 2\n}"
                            }
                        }
                        div.field-error #spec-error {}
                    }
                }
                div.error #form-error hidden {}
                p { button #submit-button type="submit" { "Submit" } }
            }
            h2 { "Presets" }
            table {
                tr { th { "name" } th { "what" } }
                @for p in &all { tr { td { code { (p.name) } } td { (p.description) } } }
            }
            script #preset-data type="application/json" { (PreEscaped(catalogue)) }
            script { (PreEscaped(SCRIPT)) }
        }
    };
    Html(layout("submit", "", main).into_string())
}
