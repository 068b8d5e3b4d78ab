//! Refused requests: the error format, the status codes of the contract, and nothing left behind.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for body in [
        "{\"network\": ",
        "not json at all",
        "{\"a\": 1,}",
        "",
        "{\"seed\": 1} trailing",
        &deep,
    ] {
        let err = error_of(app.post_raw(body.to_string()).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(err["code"], "malformed_json", "{body:?}: {err}");
    }
    assert!(app.all_jobs().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413_in_json() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024).await;
    // A valid spec padded with whitespace: only its size is wrong.
    let spec = small_spec(5).to_string();
    let padded = format!("{}{}", spec, " ".repeat(2048));
    let err = error_of(app.post_raw(padded.clone()).await, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(err["code"], "payload_too_large");
    // Without a Content-Length (chunked transfer encoding) the limit holds too.
    let (status, body) = raw_chunked_post(app.port, "/v1/jobs", padded.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("413 body is not JSON ({e}): {body}"));
    assert_eq!(v["error"]["code"], "payload_too_large");
    assert!(app.all_jobs().await.is_empty(), "a refused body left a job behind");
    // Under the limit the same spec is accepted.
    let ok = app.post_raw(spec).await;
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
}

/// POST `body` in 256-byte chunks with `Transfer-Encoding: chunked` over a raw socket;
/// returns the status code and the (de-chunked) response body.
async fn raw_chunked_post(port: u16, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(256) {
        req.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend(chunk);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    // The server may answer (and close) before it has read everything: ignore write errors.
    let _ = stream.write_all(&req).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    (status, body)
}

fn with(mut spec: Value, path: &[&str], value: Value) -> Value {
    let mut cur = &mut spec;
    for p in &path[..path.len() - 1] {
        cur = &mut cur[*p];
    }
    cur[path[path.len() - 1]] = value;
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_422_naming_the_field() {
    let app = spawn_app().await;
    let base = small_spec(7);
    let mut no_network = base.clone();
    no_network.as_object_mut().unwrap().remove("network");
    let cases: Vec<(Value, &str)> = vec![
        (with(base.clone(), &["network", "depth"], json!(0)), "network.depth"),
        (with(base.clone(), &["network", "width"], json!(-3)), "network.width"),
        (
            with(base.clone(), &["network", "init"], json!({"scheme": "he"})),
            "network.init.fan",
        ),
        (
            with(base.clone(), &["network", "init"], json!({"scheme": "xavier"})),
            "network.init.scheme",
        ),
        (
            with(base.clone(), &["network", "colour"], json!("red")),
            "network.colour",
        ),
        (with(base.clone(), &["epsilon"], json!(0)), "epsilon"),
        (with(base.clone(), &["delta"], json!(1.5)), "delta"),
        (with(base.clone(), &["bogus"], json!(1)), "bogus"),
        (with(base.clone(), &["samples"], json!("many")), "samples"),
        (with(base.clone(), &["samples"], json!(2.5)), "samples"),
        (with(base.clone(), &["trials"], json!(0)), "trials"),
        (with(base.clone(), &["seed"], json!(-1)), "seed"),
        (
            with(base.clone(), &["seed"], json!(18446744073709551616u128 as f64)),
            "seed",
        ),
        (with(base.clone(), &["seed"], json!(1.5)), "seed"),
        (with(base.clone(), &["precision"], json!("f16")), "precision"),
        (with(base.clone(), &["network", "depth"], json!(1e30)), "network.depth"),
        (
            with(base.clone(), &["network", "input_dim"], json!(null)),
            "network.input_dim",
        ),
        (with(base.clone(), &["network"], json!([1, 2])), "network"),
        (with(base.clone(), &["kind"], json!("width_sweep_typo")), "kind"),
        (no_network, "network"),
        // Memory estimate over the limit: refused before anything is allocated.
        (
            with(
                with(base.clone(), &["samples"], json!(1_000_000)),
                &["network", "width"],
                json!(1000),
            ),
            "samples",
        ),
    ];
    for (spec, field) in cases {
        let err = error_of(app.post_job(&spec).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(err["code"], "invalid_spec", "{spec}: {err}");
        assert_eq!(err["field"], field, "{spec}: {err}");
    }
    // The memory refusal carries the estimate.
    let spec = with(
        with(base.clone(), &["samples"], json!(1_000_000)),
        &["network", "width"],
        json!(1000),
    );
    let err = error_of(app.post_job(&spec).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(err["message"].as_str().unwrap().contains("GiB"), "{err}");
    // A body that is JSON but not an object.
    let err = error_of(app.post_raw("[1, 2, 3]").await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(err["code"], "invalid_spec");
    let err = error_of(app.post_raw("null").await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(err["code"], "invalid_spec");

    assert!(app.all_jobs().await.is_empty(), "a refused spec left a job behind");
    // The server is fine afterwards.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    app.submit(&base).await;
    assert_eq!(app.all_jobs().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_job_limits_are_enforced() {
    // 16 MiB of memory and 10^9 flops per job.
    let app = spawn_app_with(|c| {
        c.max_job_memory_mib = 16;
        c.max_job_flops = 1e9;
    })
    .await;
    // 8 bytes x 20000 samples x (50 + 4 x 30) activations: about 26 MiB.
    let too_big = with(small_spec(1), &["samples"], json!(20000));
    let err = error_of(app.post_job(&too_big).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(err["field"], "samples", "{err}");
    // 3600 weights x (4 x 16 + 12) flops x 5000 trials = 1.4e9 flops, in about 13 MiB
    // (the ratios and their pooled copies while the report is built: 40 B x 5000 x 16 x 4).
    let too_long = json!({
        "network": {"input_dim": 30, "depth": 4, "width": 30, "init": {"scheme": "he", "fan": "out"}},
        "samples": 16, "trials": 5000, "seed": 1, "method": "dense"
    });
    let err = error_of(app.post_job(&too_long).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(err["field"], "trials", "{err}");
    // Both fit the default limits.
    let default_limits = widthlab::spec::Limits::default();
    assert!(widthlab::sim::plan::parse_checked(&too_big, &default_limits).is_ok());
    assert!(widthlab::sim::plan::parse_checked(&too_long, &default_limits).is_ok());
    assert!(app.all_jobs().await.is_empty());
    // The small spec fits both limits.
    app.submit(&small_spec(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_503_and_leaves_nothing_behind() {
    let app = spawn_app_with(|c| {
        c.max_queued = 1;
        c.max_running = 1;
    })
    .await;
    let long = app.submit(&long_spec(3)).await;
    let long_id = long["id"].as_str().unwrap();
    app.wait_until_running(long_id).await;

    let queued = app.post_job_with_key(&small_spec(4), "queued-key").await;
    assert_eq!(queued.status(), StatusCode::ACCEPTED);
    let queued: Value = queued.json().await.unwrap();
    assert_eq!(queued["status"], "queued");

    let r = app.post_job(&small_spec(5)).await;
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let err = error_of(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(err["code"], "queue_full");
    assert!(
        retry_after.is_some_and(|s| s.parse::<u64>().is_ok()),
        "503 without a numeric Retry-After"
    );
    assert_eq!(app.all_jobs().await.len(), 2, "the refused job was stored");

    // A replay of the queued job is not a new job: still answered while the queue is full.
    let replay = app.post_job_with_key(&small_spec(4), "queued-key").await;
    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(replay.json::<Value>().await.unwrap()["id"], queued["id"]);

    // Cancelling the queued job frees its place.
    assert_eq!(
        app.cancel(queued["id"].as_str().unwrap()).await.status(),
        StatusCode::OK
    );
    let again = app.post_job(&small_spec(5)).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(app.all_jobs().await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_never_overfill_the_queue() {
    let app = spawn_app_with(|c| {
        c.max_queued = 2;
        c.max_running = 1;
    })
    .await;
    let long = app.submit(&long_spec(6)).await;
    app.wait_until_running(long["id"].as_str().unwrap()).await;

    let results = app.concurrent_posts(&small_spec(7), None, 8).await;
    let accepted = results.iter().filter(|(s, _)| *s == StatusCode::ACCEPTED).count();
    let refused = results
        .iter()
        .filter(|(s, b)| *s == StatusCode::SERVICE_UNAVAILABLE && b["error"]["code"] == "queue_full")
        .count();
    assert_eq!(accepted + refused, 8, "{results:?}");
    let (_, page) = app.get_json("/v1/jobs?status=queued").await;
    let queued = page["jobs"].as_array().unwrap().len();
    assert_eq!(queued, accepted);
    assert_eq!(
        accepted, 2,
        "max_queued = 2, but {accepted} of 8 concurrent submissions were queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_404_json() {
    let app = spawn_app().await;
    for path in ["/nope", "/v1/job", "/v2/jobs", "/v1/jobs/x/y/z"] {
        let err = error_of(app.get(path).await, StatusCode::NOT_FOUND).await;
        assert_eq!(err["code"], "not_found", "{path}");
    }
    let r = app
        .client
        .post(app.url("/v1/nothing"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let err = error_of(r, StatusCode::NOT_FOUND).await;
    assert_eq!(err["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
    // Every response carries a request id.
    let r = app.get("/healthz").await;
    assert!(r.headers().get("x-request-id").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_while_a_job_computes() {
    let app = spawn_app().await;
    let long = app.submit(&long_spec(8)).await;
    app.wait_until_running(long["id"].as_str().unwrap()).await;
    // Compute is off the async runtime: cheap requests stay fast.
    for _ in 0..20 {
        let start = std::time::Instant::now();
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
        let (status, _) = app.get_json("/v1/jobs").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "requests stall while a job runs: {:?}",
            start.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_and_methods_answer_in_the_error_format() {
    let app = spawn_app().await;
    // A path segment that is not UTF-8 once decoded.
    let e = error_of(app.get("/v1/jobs/%FF").await, StatusCode::BAD_REQUEST).await;
    assert_eq!(e["field"], "id");
    // A known route with a method it does not have.
    let r = app.client.put(app.url("/v1/jobs")).send().await.unwrap();
    let e = error_of(r, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(e["code"], "method_not_allowed");
}
