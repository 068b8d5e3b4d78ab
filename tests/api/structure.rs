//! One runner per kind: `widthlab run` and the server compute the same thing; metrics belong to
//! one server and count exactly.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_same_json, small_spec, spawn_app};

/// `widthlab run` with `body` on standard input; its standard output.
pub(crate) fn widthlab_run(body: &Value, json_output: bool) -> String {
    let mut args = vec!["run", "-", "--quiet", "--threads", "2"];
    if json_output {
        args.push("--json");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_widthlab"))
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start widthlab run");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.to_string().as_bytes())
        .expect("write the spec");
    let out = child.wait_with_output().expect("widthlab run ends");
    assert!(
        out.status.success(),
        "widthlab run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widthlab_run_of_a_sweep_preset_equals_the_servers_sweep_bit_for_bit() {
    let body = json!({"preset": "arpit2019-fig6", "samples": 50});
    let local: Value = serde_json::from_str(&widthlab_run(&body, true)).expect("--json prints JSON");
    let app = spawn_app().await;
    let job = app.submit(&body).await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded", Duration::from_secs(300)).await;
    let (status, served) = app.get_json(&format!("/v1/jobs/{id}/sweep")).await;
    assert_eq!(status, StatusCode::OK);
    let points = local["points"].as_array().expect("points");
    assert_eq!(points.len(), 4, "the sweep ran every point: {local}");
    let widths: Vec<u64> = points.iter().map(|p| p["width"].as_u64().unwrap()).collect();
    assert_eq!(widths, [500, 1000, 2000, 4000]);
    assert_same_json(&local["points"], &served["points"], "points");
    assert_same_json(&local["frontier"], &served["frontier"], "frontier");
    assert_eq!(local["spec"], job["spec"]);
    // The table names every point and the frontier.
    let table = widthlab_run(&body, false);
    for w in ["500", "1000", "2000", "4000", "frontier"] {
        assert!(table.contains(w), "{w} missing from\n{table}");
    }
}

/// The value of the sample line `name{labels}` (exactly), or 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_what_this_server_saw() {
    let app = spawn_app().await;
    for _ in 0..3 {
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    }
    assert_eq!(app.get("/no/such/route").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.post_raw("{not json").await.status(), StatusCode::BAD_REQUEST);
    let job = app.submit(&small_spec(21)).await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded", Duration::from_secs(60)).await;
    let text = app.get("/metrics").await.text().await.unwrap();
    let get = |s: &str| sample(&text, s);
    assert_eq!(
        get("widthlab_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}"),
        3.0,
        "{text}"
    );
    assert_eq!(
        get("widthlab_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"),
        1.0
    );
    assert_eq!(
        get("widthlab_http_requests_total{route=\"/v1/jobs\",method=\"POST\",status=\"400\"}"),
        1.0
    );
    assert_eq!(
        get("widthlab_http_requests_total{route=\"/v1/jobs\",method=\"POST\",status=\"202\"}"),
        1.0
    );
    assert_eq!(
        get("widthlab_http_request_duration_seconds_count{route=\"/healthz\"}"),
        3.0
    );
    assert_eq!(get("widthlab_jobs_submitted_total"), 1.0);
    assert_eq!(get("widthlab_job_duration_seconds_count"), 1.0);
    assert_eq!(get("widthlab_jobs{status=\"succeeded\"}"), 1.0);
    assert_eq!(get("widthlab_jobs{status=\"queued\"}"), 0.0);
    assert_eq!(get("widthlab_queue_length"), 0.0);
    // The scrape itself is counted after it is answered: the next one sees it.
    let again = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        sample(
            &again,
            "widthlab_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_records_the_preset_it_came_from() {
    let app = spawn_app().await;
    let job = app
        .submit(&json!({"preset": "arpit2019-fig1", "samples": 20, "network": {"width": 20}}))
        .await;
    assert_eq!(job["preset"], "arpit2019-fig1");
    let id = job["id"].as_str().unwrap();
    assert_eq!(app.job(id).await["preset"], "arpit2019-fig1");
    let plain = app.submit(&small_spec(22)).await;
    assert!(plain["preset"].is_null(), "{plain}");
}
