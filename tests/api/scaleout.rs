//! Many processes on one PostgreSQL database: an API-only server and `widthlab worker`s, as a
//! lab would run them on several machines. Every worker computes units, the numbers are the
//! single-process numbers bit for bit, a killed worker's unit is reclaimed when its lease ends,
//! and a cancel reaches the workers that hold the job's units.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;
use crate::postgres::fresh_postgres;
use crate::process::{clear_widthlab_env, serve_command, Server};

/// A `widthlab worker` child (killed and reaped when dropped) and the id it leases units as.
struct Worker {
    child: Child,
    id: String,
}

impl Worker {
    fn start(url: &str, log: &Path) -> Worker {
        Worker::start_with(url, log, &[])
    }

    /// A worker with more arguments (`--max-units N`, say).
    fn start_with(url: &str, log: &Path, extra: &[&str]) -> Worker {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_widthlab"));
        clear_widthlab_env(&mut command);
        let mut child = command
            .args(["worker", "--database-url", url, "--threads", "1", "--lease-secs", "3"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start widthlab worker");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("the worker's first line");
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let id = line
            .strip_prefix("widthlab worker ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Worker { child, id }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `widthlab run` (one process, no database) computes for `spec`.
fn run_locally(spec: &Value) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_widthlab"))
        .args(["run", "-", "--json", "--quiet", "--threads", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(spec.to_string().as_bytes())?;
            c.wait_with_output()
        })
        .expect("widthlab run");
    serde_json::from_slice(&out.stdout).expect("JSON from widthlab run")
}

/// Workers that completed units of `job`, with how many each.
async fn completers(url: &str, job: &str) -> Vec<(String, i64)> {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_as(
        "SELECT worker, COUNT(*) FROM units WHERE job_id = $1 AND finish = 0 AND worker IS NOT NULL
         GROUP BY worker ORDER BY worker",
    )
    .bind(job)
    .fetch_all(&mut conn)
    .await
    .expect("units")
}

fn sweep() -> Value {
    json!({"kind": "width_sweep", "samples": 128, "trials": 8, "seed": 31, "method": "dense",
           "network": {"input_dim": 200, "depth": 6,
                       "widths_to_sweep": [100, 120, 140, 160, 180, 200, 220, 240, 260, 280, 300, 320],
                       "init": {"scheme": "he", "fan": "out"}}})
}

fn norms(trials: u64, seed: u64) -> Value {
    json!({"network": {"input_dim": 200, "depth": 8, "width": 200, "init": {"scheme": "he", "fan": "out"}},
           "samples": 128, "trials": trials, "seed": seed, "method": "dense"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_the_units_and_agree_with_one_process_bit_for_bit() {
    let Some(url) = fresh_postgres().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cluster.log");
    let mut api = serve_command(Path::new(&url));
    api.args(["--workers", "0"]);
    let api = Server::spawn(api, &log);
    let sweep_id = api.submit(&sweep()).await;
    // Events of a job computed by other processes reach this API node's clients (it re-reads
    // the database every second): growing progress, then the final status.
    let events = api
        .client
        .get(format!("{}/v1/jobs/{sweep_id}/events", api.address))
        .send()
        .await
        .expect("events");
    let stream = tokio::spawn(async move { events.text().await.unwrap_or_default() });
    // A first worker computes 3 of the 12 points and leaves: the sweep stays at 3 of 12 (on any
    // machine, however fast) until the others start, long enough for the API node to see it.
    let mut first = Worker::start_with(&url, &log, &["--max-units", "3"]);
    let first_id = first.id.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while api.get(&format!("/v1/jobs/{sweep_id}")).await["progress"]["done"] != 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first worker did not compute 3 points"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = first.child.wait();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let workers: Vec<Worker> = (0..3).map(|_| Worker::start(&url, &log)).collect();
    let norms_id = api.submit(&norms(64, 7)).await;
    let swept = api.wait_succeeded(&sweep_id, Duration::from_secs(300)).await;
    let normed = api.wait_succeeded(&norms_id, Duration::from_secs(300)).await;
    assert_eq!(swept["attempt"], 0);
    let text = tokio::time::timeout(Duration::from_secs(30), stream)
        .await
        .expect("the event stream ends after the final status")
        .unwrap();
    let progress: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v["status"] == "running")
        .filter_map(|v| v["done"].as_u64())
        .collect();
    // The API node re-reads the database every second: it saw the sweep at 3 of 12.
    assert!(progress.contains(&3), "progress events: {text}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(text.contains("event: status"), "{text}");
    assert!(text.contains("\"succeeded\""), "{text}");
    assert_eq!(normed["attempt"], 0);

    // Every worker computed some of the 12 points and 8 chunks.
    let mut per_worker = std::collections::BTreeMap::new();
    for id in [&sweep_id, &norms_id] {
        for (worker, n) in completers(&url, id).await {
            *per_worker.entry(worker).or_insert(0) += n;
        }
    }
    assert_eq!(per_worker.values().sum::<i64>(), 12 + 8, "{per_worker:?}");
    assert_eq!(per_worker.get(&first_id), Some(&3), "{per_worker:?}");
    for w in &workers {
        assert!(
            per_worker.get(&w.id).is_some_and(|&n| n > 0),
            "{} computed nothing: {per_worker:?}",
            w.id
        );
    }

    // The numbers are those of one process, bit for bit.
    let served = api.get(&format!("/v1/jobs/{sweep_id}/sweep")).await;
    assert_same_json(&served["points"], &run_locally(&sweep())["points"], "points");
    let layers = api.get(&format!("/v1/jobs/{norms_id}/layers")).await;
    let checks = api.get(&format!("/v1/jobs/{norms_id}/bound-checks")).await;
    let local = run_locally(&norms(64, 7));
    assert_same_json(&layers["layers"], &local["layers"], "layers");
    assert_same_json(&checks["bound_checks"], &local["bound_checks"], "bound_checks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_unit_is_reclaimed_after_its_lease_and_a_cancel_reaches_every_worker() {
    let Some(url) = fresh_postgres().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cluster.log");
    let mut api = serve_command(Path::new(&url));
    api.args(["--workers", "0"]);
    let api = Server::spawn(api, &log);
    let mut workers: Vec<Worker> = (0..2).map(|_| Worker::start(&url, &log)).collect();
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");

    // Kill the worker holding a unit of the job, mid-unit.
    let spec = norms(48, 11);
    let id = api.submit(&spec).await;
    let start = Instant::now();
    let holder: String = loop {
        let held: Option<String> =
            sqlx::query_scalar("SELECT worker FROM units WHERE job_id = $1 AND state = 'leased' LIMIT 1")
                .bind(&id)
                .fetch_optional(&mut conn)
                .await
                .unwrap();
        if let Some(w) = held {
            break w;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no unit was leased");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let victim = workers.iter().position(|w| w.id == holder).expect("a worker of ours");
    drop(workers.remove(victim));
    let done = api.wait_succeeded(&id, Duration::from_secs(300)).await;
    let attempts = done["attempt"].as_u64().unwrap();
    assert!(
        attempts >= 1,
        "the killed unit was reclaimed from an expired lease: {done}"
    );
    let (reclaimed,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM units WHERE job_id = $1 AND attempts > 0")
        .bind(&id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(reclaimed >= 1);
    let layers = api.get(&format!("/v1/jobs/{id}/layers")).await;
    assert_same_json(&layers["layers"], &run_locally(&spec)["layers"], "layers");

    // A new worker, then a long job on both; cancel it through the API.
    workers.push(Worker::start(&url, &log));
    let long = api.submit(&norms(4000, 12)).await;
    let start = Instant::now();
    loop {
        let (holders,): (i64,) =
            sqlx::query_as("SELECT COUNT(DISTINCT worker) FROM units WHERE job_id = $1 AND state = 'leased'")
                .bind(&long)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        if holders == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job never ran on both workers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = api
        .client
        .post(format!("{}/v1/jobs/{long}/cancel", api.address))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let cancelled = api
        .wait_for(&long, Duration::from_secs(10), "cancelled", |j| {
            j["status"] == "cancelled"
        })
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    // Both workers stopped its units (well before their 3 s leases would have ended) and are
    // free: a small job right after runs at once.
    let next = api.submit(&norms(16, 13)).await;
    api.wait_succeeded(&next, Duration::from_secs(60)).await;
    // A worker that honoured the cancel stopped renewing: no lease of the cancelled job is
    // still being renewed 3 s (one lease) later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (renewed,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM units WHERE job_id = $1 AND state = 'leased'
           AND lease_until > (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
    )
    .bind(&long)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(renewed, 0, "leases of the cancelled job are still renewed");
    drop(workers);
}
