//! The HTML pages: escaping, relative links, filters, a failed job's error.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use widthlab::store::{Kind, NewJob, QueueLimits};

use crate::helpers::{database_in, small_spec, spawn_app, spawn_app_in};

const NASTY: &str = "<script>alert(\"owned\")</script> & <b>bold</b>";

/// A failed job with `error`, written into the database in `dir` before a server opens it.
pub async fn failed_job_in(dir: &tempfile::TempDir, id: &str, name: &str, error: &str) {
    let (store, lock) = widthlab::startup::open_store(&database_in(dir).await, "a test writing a job")
        .await
        .expect("store");
    let spec = small_spec(5);
    let tags = vec!["broken".to_string()];
    store
        .insert_job(
            NewJob {
                id,
                kind: Kind::Norms,
                spec: &spec,
                spec_hash: "failed-job",
                idempotency_key: None,
                progress_total: 1,
                seed: 5,
                stamp: &serde_json::Value::Null,
                preset: None,
                name: Some(name),
                tags: &tags,
                owner: None,
                work_flops: 0.0,
                units: &[1],
            },
            QueueLimits {
                max_queued: 10,
                max_queued_per_owner: None,
                max_owner_flops: None,
            },
        )
        .await
        .expect("insert");
    store
        .claim_unit("test", std::time::Duration::from_secs(60))
        .await
        .expect("claim")
        .expect("a unit");
    assert!(store.finish_failed(id, error).await.expect("fail the job"));
    drop((store, lock));
}

/// Every `href` and `src` of a page is relative (no leading `/`, no scheme).
fn assert_relative_links(html: &str, page: &str) {
    for attr in ["href=\"", "src=\"", "action=\""] {
        for (i, _) in html.match_indices(attr) {
            let target = &html[i + attr.len()..];
            assert!(
                !target.starts_with('/') && !target.starts_with("http"),
                "{page}: absolute link {}",
                &target[..target.len().min(60)]
            );
        }
    }
}

#[tokio::test]
async fn a_job_name_with_html_renders_as_text() {
    let app = spawn_app().await;
    let mut spec = small_spec(11);
    spec["name"] = json!(NASTY);
    spec["tags"] = json!(["x-1"]);
    let job = app.submit(&spec).await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded", std::time::Duration::from_secs(30))
        .await;
    let escaped = "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;";
    for path in [
        format!("/jobs/{id}"),
        "/".to_string(),
        "/?tag=x-1&status=&kind=".to_string(),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = r.text().await.unwrap();
        assert!(html.contains(escaped), "{path}: the name is not shown escaped:\n{html}");
        assert!(!html.contains("<script>alert"), "{path}: the name is live HTML");
        assert!(!html.contains("<b>bold"), "{path}: the name is live HTML");
        assert_relative_links(&html, &path);
    }
    // The job page shows the figure of a succeeded job, relatively.
    let html = app.get(&format!("/jobs/{id}")).await.text().await.unwrap();
    assert!(html.contains(&format!("src=\"../v1/jobs/{id}/plot.svg\"")), "{html}");
    assert!(
        html.contains(&format!("href=\"../v1/jobs/{id}/layers?format=csv\"")),
        "{html}"
    );
    assert!(html.contains("data-status=\"succeeded\""));
    app.shutdown().await;
}

#[tokio::test]
async fn a_failed_job_page_shows_its_error_and_no_figure() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    failed_job_in(&dir, "failed-1", "doomed", "the disk <ran> out").await;
    let app = spawn_app_in(dir, |_| {}).await;
    let html = app.get("/jobs/failed-1").await.text().await.unwrap();
    assert!(html.contains("the disk &lt;ran&gt; out"), "{html}");
    assert!(html.contains("No figure: the job failed"), "{html}");
    assert!(!html.contains("plot.svg\" alt"), "a failed job has no figure");
    assert!(html.contains("data-action=\"delete\""), "a finished job can be deleted");
    assert!(
        !html.contains("data-action=\"cancel\""),
        "a finished job cannot be cancelled"
    );
    let r = app.get("/jobs/no-such-job").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.shutdown().await;
}

#[tokio::test]
async fn the_index_filters_with_a_plain_form_and_pages_with_the_cursor() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut spec = small_spec(20 + i);
        spec["name"] = json!(format!("run {i}"));
        spec["tags"] = json!(if i == 1 { vec!["odd"] } else { vec!["even"] });
        ids.push(app.submit(&spec).await["id"].as_str().unwrap().to_string());
    }
    let rows = |html: &str| -> Vec<String> {
        html.match_indices("<tr data-id=\"")
            .map(|(i, m)| html[i + m.len()..i + m.len() + 36].to_string())
            .collect()
    };
    // Blank fields of the GET form mean "any".
    let html = app
        .get("/?status=&kind=&preset=&name=&tag=even&owner=")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(rows(&html), vec![ids[2].clone(), ids[0].clone()]);
    assert!(html.contains("value=\"even\""), "the form keeps its filter");
    let html = app.get("/?name=RUN+1").await.text().await.unwrap();
    assert_eq!(rows(&html), vec![ids[1].clone()]);
    // Paging keeps the filters and follows the API's cursor.
    let html = app.get("/?tag=even&limit=1").await.text().await.unwrap();
    assert_eq!(rows(&html), vec![ids[2].clone()]);
    let older = html
        .split("<a href=\"")
        .find_map(|s| s.split_once("\">older").map(|(href, _)| href.replace("&amp;", "&")))
        .expect("an older link");
    assert!(older.starts_with("./?") && older.contains("tag=even"), "{older}");
    let html = app.get(&older[1..]).await.text().await.unwrap();
    assert_eq!(rows(&html), vec![ids[0].clone()]);
    assert!(!html.contains("older »"));
    // A bad filter is a 422 naming it.
    assert_eq!(
        app.get("/?tag=no%20spaces").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let submit = app.get("/submit").await.text().await.unwrap();
    assert!(
        submit.contains("<option value=\"arpit2019-fig1\">"),
        "the presets are offered"
    );
    assert_relative_links(&submit, "/submit");
    app.shutdown().await;
}

#[tokio::test]
async fn the_token_field_is_shown_only_when_the_server_has_tokens() {
    for tokens in [false, true] {
        let app = crate::helpers::spawn_app_with(|c| {
            if tokens {
                c.tokens = vec!["alice:secret-a".parse().unwrap()];
            }
        })
        .await;
        let mut req = app.client.post(app.url("/v1/jobs")).json(&small_spec(40));
        if tokens {
            req = req.bearer_auth("secret-a");
        }
        let job: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
        let id = job["id"].as_str().expect("a job").to_string();
        for path in [format!("/jobs/{id}"), "/submit".to_string()] {
            let html = app.get(&path).await.text().await.unwrap();
            assert_eq!(html.contains("id=\"token\""), tokens, "{path} with tokens {tokens}");
        }
        if tokens {
            let html = app.get(&format!("/jobs/{id}")).await.text().await.unwrap();
            assert!(html.contains("<td>alice</td>"), "the owner is shown");
        }
        app.shutdown().await;
    }
}
