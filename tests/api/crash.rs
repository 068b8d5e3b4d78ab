//! The real binary as a child process: kill -9 mid-job and SIGTERM, then restart on the same
//! database.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::process::Server;

/// A job of a few seconds at 2 threads (about 4 s on the reference machine): long enough to be
/// killed mid-run, short enough to run twice.
fn crash_spec(seed: u64) -> Value {
    json!({
        "network": {"input_dim": 200, "depth": 10, "width": 200, "init": {"scheme": "he", "fan": "out"}},
        "samples": 128,
        "trials": 700,
        "seed": seed
    })
}

async fn stored_row(db: &Path, id: &str) -> widthlab::store::JobRow {
    use widthlab::store::JobStore;
    let store = widthlab::store::SqliteStore::connect(db.to_str().unwrap())
        .await
        .expect("open the database");
    store.job(id).await.expect("read").expect("the job is stored")
}

/// Units of every job that the database shows leased (computing when the server died).
async fn leased_units(db: &Path) -> i64 {
    use widthlab::store::{JobStore, UnitState};
    let store = widthlab::store::SqliteStore::connect(db.to_str().unwrap())
        .await
        .expect("open the database");
    let counts = store.unit_counts().await.expect("unit counts");
    counts
        .iter()
        .filter(|(s, _)| *s == UnitState::Leased)
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_job_then_restart_completes_it_with_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let log = dir.path().join("server.log");
    let mut server = Server::start(&db, &log);

    // A finished job before the crash.
    let first = server.submit(&small_spec(91)).await;
    let first_done = server.wait_succeeded(&first, Duration::from_secs(30)).await;
    let first_layers = server.get(&format!("/v1/jobs/{first}/layers")).await;
    let first_checks = server.get(&format!("/v1/jobs/{first}/bound-checks")).await;
    assert_eq!(first_layers["layers"].as_array().unwrap().len(), 4);

    // A long job, killed mid-run.
    let long = server.submit(&crash_spec(92)).await;
    let running = server.wait_until_running(&long).await;
    let total = running["progress"]["total"].as_u64().unwrap();
    assert!(
        running["progress"]["done"].as_u64().unwrap() < total,
        "the job finished before the kill: {running}"
    );
    server.kill9();

    // The crash left it running in the database.
    let row = stored_row(&db, &long).await;
    assert_eq!(row.status, "running");
    assert_eq!(row.attempt, 0);
    // Attempts count units whose lease ended: 1 when the kill landed inside a unit (nearly
    // always), 0 when it landed in the few milliseconds between two units.
    let interrupted = leased_units(&db).await;
    assert!(interrupted <= 1, "one compute slot, {interrupted} units leased");

    let server = Server::start(&db, &log);
    let start = Instant::now();
    let done = server.wait_succeeded(&long, Duration::from_secs(60)).await;
    eprintln!("the crash-test job ran again in {:?}", start.elapsed());
    assert_eq!(
        done["attempt"], interrupted,
        "re-queued once per interrupted unit: {done}"
    );
    assert_eq!(done["progress"]["done"], done["progress"]["total"]);
    assert_eq!(done["stamp"]["seed"], 92);
    let layers = server.get(&format!("/v1/jobs/{long}/layers")).await;
    assert_eq!(layers["layers"].as_array().unwrap().len(), 10);

    // The finished job is intact.
    assert_eq!(server.get(&format!("/v1/jobs/{first}")).await, first_done);
    assert_eq!(server.get(&format!("/v1/jobs/{first}/layers")).await, first_layers);
    assert_eq!(
        server.get(&format!("/v1/jobs/{first}/bound-checks")).await,
        first_checks
    );
    assert_eq!(list_all(&server.client, &server.address).await.len(), 2);
    drop(server);

    // The same numbers as an uninterrupted run of the same spec, computed here.
    let (want, want_checks) = tokio::task::spawn_blocking(move || expected_results(&done["spec"]))
        .await
        .unwrap();
    assert_same_json(&layers["layers"], &Value::Array(want), "layers");
    let _ = want_checks;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_and_the_running_job_finishes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("term.db");
    let log = dir.path().join("server.log");
    let mut server = Server::start(&db, &log);
    let long = server.submit(&crash_spec(93)).await;
    let queued = server.submit(&small_spec(94)).await;
    server.wait_until_running(&long).await;

    let sent = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(server.pid(), libc::SIGTERM) };
    assert_eq!(rc, 0, "kill(SIGTERM) failed");
    let status = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(10)));
    let status = status.unwrap_or_else(|| {
        panic!(
            "no exit within 10 s of SIGTERM; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    eprintln!("exited {:?} after SIGTERM", sent.elapsed());

    // The running job was put back in the queue (not left for crash recovery); when SIGTERM
    // lands in the moment between two units, no unit is held and the job stays running, to be
    // claimed again at the next start. Either way no unit is left leased and no attempt counted.
    let row = stored_row(&db, &long).await;
    assert!(row.status == "queued" || row.status == "running", "{:?}", row.status);
    assert_eq!(leased_units(&db).await, 0, "a unit left leased at a graceful stop");
    assert_eq!(row.attempt, 0);
    assert_eq!(stored_row(&db, &queued).await.status, "queued");
    drop(server);

    let server = Server::start(&db, &log);
    let done = server.wait_succeeded(&long, Duration::from_secs(60)).await;
    assert_eq!(done["attempt"], 0, "a graceful re-queue is not a crash retry: {done}");
    server.wait_succeeded(&queued, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_even_with_an_open_event_stream() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sse.db");
    let log = dir.path().join("server.log");
    let mut server = Server::start(&db, &log);
    let long = server.submit(&long_spec(95)).await;
    server.wait_until_running(&long).await;

    // A client watching the job's events.
    let mut stream = server
        .client
        .get(format!("{}/v1/jobs/{long}/events", server.address))
        .send()
        .await
        .expect("GET events");
    assert_eq!(stream.status(), StatusCode::OK);
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("a first event")
        .expect("read");
    assert!(first.is_some_and(|c| String::from_utf8_lossy(&c).contains("progress")));
    let watcher = tokio::spawn(async move { while let Ok(Some(_)) = stream.chunk().await {} });

    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(server.pid(), libc::SIGTERM) }, 0);
    let exited = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(10)));
    watcher.abort();
    assert!(
        exited.is_some(),
        "still running 10 s after SIGTERM with an event stream open"
    );
    assert_eq!(stored_row(&db, &long).await.status, "queued");
}
