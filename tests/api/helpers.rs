//! Test harness: spawn the application on port 0 with a fresh SQLite file, talk to it with
//! reqwest, and stop it cleanly (running jobs stopped) when the test ends, even on panic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use widthlab::analysis::report::build_report;
use widthlab::config::Config;
use widthlab::sim::{simulate, Control};
use widthlab::spec::{parse_spec, Limits};
use widthlab::startup::Application;

pub const TERMINAL: &[&str] = &["succeeded", "failed", "cancelled"];

/// A small job that finishes in well under a second.
pub fn small_spec(seed: u64) -> Value {
    json!({
        "network": {"input_dim": 50, "depth": 4, "width": 30, "init": {"scheme": "he", "fan": "out"}},
        "samples": 64,
        "trials": 2,
        "seed": seed
    })
}

/// A job that runs for a minute or more at 2 threads: long enough to be seen `running`, and
/// cancelled or stopped by every test that starts one (each layer is a few milliseconds, so it
/// stops quickly).
pub fn long_spec(seed: u64) -> Value {
    json!({
        "network": {"input_dim": 300, "depth": 20, "width": 300, "init": {"scheme": "he", "fan": "out"}},
        "samples": 256,
        "trials": 400,
        "seed": seed
    })
}

/// A job of one unit (8 networks) that runs a second or more: a cancel while it runs always
/// finds its unit leased (202), never the gap between two units (where a cancel ends the job
/// at once, 200).
pub fn one_unit_long_spec(seed: u64) -> Value {
    json!({
        "network": {"input_dim": 1000, "depth": 40, "width": 1000, "init": {"scheme": "he", "fan": "out"}},
        "samples": 512,
        "trials": 8,
        "seed": seed,
        "method": "dense"
    })
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    /// What the server was given: the SQLite file, or a PostgreSQL URL.
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    // Dropped last: the database lives in it (shared with a later server on the same file).
    db_dir: Arc<TempDir>,
}

/// A server with the test defaults: 2 compute threads, one job at a time.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server with the test defaults changed by `tweak` (limits, queue size, ...).
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_in(Arc::new(tempfile::tempdir().expect("temp dir")), tweak).await
}

/// The database the in-process servers use: SQLite files (the default), or, with
/// `WIDTHLAB_TEST_BACKEND=postgres`, a fresh PostgreSQL database per test directory (see
/// `postgres::fresh_postgres`), so the HTTP suites run unchanged on both stores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("WIDTHLAB_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}

/// The database of a test directory for the backend under test: a SQLite file in it, or a
/// PostgreSQL database remembered in it.
pub async fn database_in(dir: &TempDir) -> String {
    match backend() {
        Backend::Sqlite => dir
            .path()
            .join("widthlab-test.db")
            .to_str()
            .expect("utf-8 temp path")
            .to_string(),
        Backend::Postgres => postgres_database_in(dir).await,
    }
}

/// The PostgreSQL database of a test directory: created with the first server in it, reused
/// by later servers in the same directory (a restart).
async fn postgres_database_in(dir: &TempDir) -> String {
    let file = dir.path().join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url;
    }
    let url = crate::postgres::fresh_postgres()
        .await
        .expect("WIDTHLAB_TEST_BACKEND=postgres needs a PostgreSQL server (WIDTHLAB_TEST_POSTGRES_URL)");
    std::fs::write(&file, &url).expect("remember the test database");
    url
}

/// A server on the database file in `dir`: a fresh one, or the one an earlier server left.
pub async fn spawn_app_in(dir: Arc<TempDir>, tweak: impl FnOnce(&mut Config)) -> TestApp {
    // Every field spelled out: nothing comes from the WIDTHLAB_* variables of the shell that
    // runs the tests (an exported WIDTHLAB_TOKENS would otherwise guard every POST).
    let database_url = database_in(&dir).await;
    let mut config = Config {
        bind: "127.0.0.1:0".into(),
        database_url,
        threads: Some(2),
        max_running: 1,
        workers: None,
        lease_secs: 30,
        max_queued: 1000,
        max_connections: 512,
        header_read_timeout_secs: 10,
        max_body_bytes: 1 << 20,
        request_timeout_secs: 30,
        max_job_memory_mib: 4096,
        max_job_flops: 2e14,
        max_kept_values: 4_000_000,
        tokens: Vec::new(),
        admin_tokens: Vec::new(),
        open: false,
        max_queued_per_owner: None,
        max_owner_flops: None,
    };
    tweak(&mut config);
    let database_url = config.database_url.clone();
    let app = Application::build(config).await.expect("the application builds");
    let port = app.port();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client,
        database_url,
        shutdown: Some(tx),
        server: Some(server),
        db_dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET sent")
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.get(path).await;
        let status = r.status();
        let body = r
            .json::<Value>()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: body is not JSON: {e}"));
        (status, body)
    }

    /// `method path` with `Authorization: Bearer token` and, if given, a JSON body.
    pub async fn send_as(&self, method: reqwest::Method, path: &str, token: &str, body: Option<&Value>) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("Authorization", format!("Bearer {token}"));
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request sent")
    }

    pub async fn post_job(&self, spec: &Value) -> Response {
        self.client
            .post(self.url("/v1/jobs"))
            .json(spec)
            .send()
            .await
            .expect("POST sent")
    }

    pub async fn post_job_with_key(&self, spec: &Value, key: &str) -> Response {
        self.client
            .post(self.url("/v1/jobs"))
            .header("Idempotency-Key", key)
            .json(spec)
            .send()
            .await
            .expect("POST sent")
    }

    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> Response {
        self.client
            .post(self.url("/v1/jobs"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST sent")
    }

    /// Submit and expect 202; returns the job JSON.
    pub async fn submit(&self, spec: &Value) -> Value {
        let r = self.post_job(spec).await;
        let status = r.status();
        let body: Value = r.json().await.expect("job JSON");
        assert_eq!(status, StatusCode::ACCEPTED, "submitting {spec}: {body}");
        body
    }

    /// `n` submissions of `spec` released at the same instant; (status, JSON body) of each.
    pub async fn concurrent_posts(&self, spec: &Value, key: Option<&str>, n: usize) -> Vec<(StatusCode, Value)> {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (client, url, spec, key, barrier) = (
                    self.client.clone(),
                    self.url("/v1/jobs"),
                    spec.clone(),
                    key.map(str::to_string),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    let mut req = client.post(url).json(&spec);
                    if let Some(k) = key {
                        req = req.header("Idempotency-Key", k);
                    }
                    barrier.wait().await;
                    let r = req.send().await.expect("POST sent");
                    let status = r.status();
                    (status, r.json::<Value>().await.expect("JSON body"))
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    }

    pub async fn get_job(&self, id: &str) -> Response {
        self.get(&format!("/v1/jobs/{id}")).await
    }

    pub async fn job(&self, id: &str) -> Value {
        let (status, body) = self.get_json(&format!("/v1/jobs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "GET job {id}: {body}");
        body
    }

    pub async fn cancel(&self, id: &str) -> Response {
        self.client
            .post(self.url(&format!("/v1/jobs/{id}/cancel")))
            .send()
            .await
            .expect("cancel sent")
    }

    pub async fn delete(&self, id: &str) -> Response {
        self.client
            .delete(self.url(&format!("/v1/jobs/{id}")))
            .send()
            .await
            .expect("DELETE sent")
    }

    pub async fn layers(&self, id: &str) -> (StatusCode, Value) {
        self.get_json(&format!("/v1/jobs/{id}/layers")).await
    }

    /// Every job, newest first, following the cursor.
    pub async fn all_jobs(&self) -> Vec<Value> {
        list_all(&self.client, &self.address).await
    }

    /// Poll every 50 ms until `pred(job)` holds; panics with the last job after `timeout`.
    pub async fn wait_for(&self, id: &str, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_for(&self.client, &self.address, id, timeout, what, pred).await
    }

    /// Poll until the job is terminal; panics unless it is `expected`.
    pub async fn wait_for_status(&self, id: &str, expected: &str, timeout: Duration) -> Value {
        let job = self
            .wait_for(id, timeout, "a terminal status", |j| {
                TERMINAL.contains(&j["status"].as_str().unwrap_or(""))
            })
            .await;
        assert_eq!(job["status"], expected, "job {id} ended otherwise: {job}");
        job
    }

    /// Poll until the job is running and has made progress.
    pub async fn wait_until_running(&self, id: &str) -> Value {
        self.wait_for(id, Duration::from_secs(20), "running with progress", |j| {
            j["status"] == "running" && j["progress"]["done"].as_u64().unwrap_or(0) > 0
        })
        .await
    }

    /// The directory of the database, to start another server on the same file.
    pub fn db_dir(&self) -> Arc<TempDir> {
        self.db_dir.clone()
    }

    /// Stop the server as the binary does on SIGTERM: stop accepting, re-queue running jobs.
    pub async fn shutdown(mut self) {
        self.stop_server().await;
    }

    async fn stop_server(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            match tokio::time::timeout(Duration::from_secs(15), server).await {
                Ok(Ok(Ok(()))) => {}
                other => panic!("the server did not stop cleanly: {other:?}"),
            }
        }
    }
}

impl Drop for TestApp {
    /// Stop the server and its running jobs, so no test leaves compute behind for the next one.
    /// Needs a multi-thread runtime (every test here uses one).
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(tokio::time::timeout(Duration::from_secs(15), server))
            });
        }
    }
}

pub async fn list_all(client: &reqwest::Client, address: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let url = match &cursor {
            None => format!("{address}/v1/jobs?limit=100"),
            Some(c) => format!("{address}/v1/jobs?limit=100&cursor={c}"),
        };
        let r = client.get(url).send().await.expect("list sent");
        assert_eq!(r.status(), StatusCode::OK);
        let page: Value = r.json().await.expect("list JSON");
        out.extend(page["jobs"].as_array().expect("jobs array").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("pagination did not end");
}

pub async fn wait_for(
    client: &reqwest::Client,
    address: &str,
    id: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < timeout {
        if let Ok(r) = client.get(format!("{address}/v1/jobs/{id}")).send().await {
            if r.status() == StatusCode::OK {
                last = r.json().await.expect("job JSON");
                if pred(&last) {
                    return last;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not reach {what} within {timeout:?}; last seen: {last}");
}

/// Parse an error body and check its shape: `{"error": {"code", "message", "field"}}`.
pub async fn error_of(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.text().await.expect("body");
    assert_eq!(got, status, "body: {text}");
    assert!(
        ct.starts_with("application/json"),
        "error content-type {ct:?}, body {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    let err = &v["error"];
    assert!(err["code"].is_string(), "no error.code: {v}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no error.message: {v}"
    );
    assert!(err.get("field").is_some(), "no error.field: {v}");
    err.clone()
}

/// The JSON a value takes after the server's path: serialized into the database, parsed,
/// serialized into the response, parsed by the client.
pub fn through_server<T: serde::Serialize>(value: &T) -> Value {
    let stored = serde_json::to_string(value).expect("serialize");
    let loaded: Value = serde_json::from_str(&stored).expect("parse");
    serde_json::from_str(&loaded.to_string()).expect("parse")
}

/// The per-layer reports and bound checks of `spec` computed here, in-process.
pub fn expected_results(normalized_spec: &Value) -> (Vec<Value>, Vec<Value>) {
    let spec = parse_spec(normalized_spec, &Limits::default()).expect("the stored spec parses");
    let sim = simulate(&spec, &Control::none()).expect("not cancelled");
    let report = build_report(&spec, &sim);
    (
        report.layers.iter().map(through_server).collect(),
        report.bound_checks.iter().map(through_server).collect(),
    )
}

/// Compare two finite-or-null f64 JSON trees exactly, naming the first difference.
pub fn assert_same_json(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: Vec<_> = a.keys().collect();
            let kb: Vec<_> = b.keys().collect();
            assert_eq!(ka, kb, "{path}: keys differ");
            for (k, v) in a {
                assert_same_json(v, &b[k], &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: lengths differ");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_same_json(x, y, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!(x == y && x.to_bits() == y.to_bits(), "{path}: {x:e} != {y:e}");
        }
        (a, b) => assert_eq!(a, b, "{path}"),
    }
}

/// An RFC 3339 UTC timestamp (`2026-11-26T20:49:59.5339Z`, any number of fraction digits) as
/// (days since 1970, seconds of the day), comparable in time order.
pub fn instant(v: &Value) -> (i64, f64) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .unwrap_or_else(|| panic!("not UTC: {s}"));
    let (date, time) = s.split_once('T').unwrap_or_else(|| panic!("no T: {s}"));
    let d: Vec<i64> = date.split('-').map(|x| x.parse().expect("date")).collect();
    let t: Vec<f64> = time.split(':').map(|x| x.parse().expect("time")).collect();
    assert!(d.len() == 3 && t.len() == 3, "bad timestamp {s}");
    // Days from civil (Howard Hinnant).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146097 + doe - 719468, t[0] * 3600.0 + t[1] * 60.0 + t[2])
}
