//! p50/p99 latency of `GET /v1/jobs/{id}` while a job saturates every core.
//!
//! Run with `cargo bench --bench latency`. Starts the real app on port 0 with a fresh database,
//! submits a long job, waits until it is running, then times sequential GETs over a real socket.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use widthlab::config::Config;
use widthlab::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = Config {
        bind: "127.0.0.1:0".into(),
        database_url: dir.path().join("latency.db").display().to_string(),
        ..Config::default()
    };
    let threads = config.threads();
    let app = Application::build(config).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    let spec = json!({
        "network": {"input_dim": 1000, "depth": 20, "width": 1000, "init": {"scheme": "he", "fan": "out"}},
        "samples": 512, "trials": 64, "seed": 1
    });
    let job: Value = client
        .post(format!("{base}/v1/jobs"))
        .json(&spec)
        .send()
        .await?
        .json()
        .await?;
    let id = job["id"].as_str().unwrap_or_default().to_string();
    loop {
        let j: Value = client.get(format!("{base}/v1/jobs/{id}")).send().await?.json().await?;
        if j["status"] == "running" && j["progress"]["done"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lat = Vec::new();
    let mut statuses = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        let j: Value = client.get(format!("{base}/v1/jobs/{id}")).send().await?.json().await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        statuses.push(j["status"].as_str().unwrap_or("").to_string());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let running = statuses.iter().filter(|s| *s == "running").count();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    println!(
        "GET /v1/jobs/{{id}} while a job runs on {threads} compute threads ({running}/{} samples taken while running): \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        q(0.5),
        q(0.99),
        lat[lat.len() - 1]
    );
    let _ = client.post(format!("{base}/v1/jobs/{id}/cancel")).send().await?;
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}
