//! A server a lab can trust: a full disk, a second server on the same database, crashes in the
//! middle of a sweep, stalled clients, tokens with owners.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use widthlab::config::Config;
use widthlab::sim::plan::SpecPlan;

use crate::helpers::*;
use crate::process::{clear_widthlab_env, serve_command, Server};

/// A job that finishes in a blink.
fn tiny_spec(seed: u64) -> Value {
    json!({"network": {"input_dim": 10, "depth": 2, "width": 10, "init": {"scheme": "he", "fan": "out"}},
           "samples": 4, "seed": seed})
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_503_and_loses_no_acknowledged_job() {
    // A 2 MiB tmpfs, mostly filled, in a mount namespace of the server's own: needs root.
    let unshare = Command::new("unshare").arg("--version").output().is_ok();
    if !is_root() || !unshare {
        eprintln!("SKIPPED a_full_disk_refuses_writes...: needs root and unshare(1) to mount a small tmpfs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let log = dir.path().join("server.log");
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs {m} && dd if=/dev/zero of={m}/filler bs=1k count=1600 2>/dev/null && \
         exec {bin} serve --bind 127.0.0.1:0 --database-url {m}/w.db --threads 2",
        m = mnt.display(),
        bin = env!("CARGO_BIN_EXE_widthlab")
    );
    let mut command = Command::new("unshare");
    clear_widthlab_env(&mut command);
    command.args(["-m", "sh", "-c", &script]);
    let server = Server::spawn(command, &log);
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for i in 0..60u64 {
        let start = Instant::now();
        let r = server
            .client
            .post(format!("{}/v1/jobs", server.address))
            .json(&tiny_spec(i))
            .send()
            .await
            .expect("POST");
        let status = r.status();
        let body: Value = r.json().await.expect("JSON body");
        // Never the 10 s of a locked database.
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "POST {i} took {:?}",
            start.elapsed()
        );
        match status {
            StatusCode::ACCEPTED => {
                let id = body["id"].as_str().unwrap().to_string();
                // Acknowledged means stored.
                let got = server
                    .client
                    .get(format!("{}/v1/jobs/{id}", server.address))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(got.status(), StatusCode::OK, "job {id} acknowledged but not stored");
                accepted.push(id);
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"]["code"], "storage_full", "{body}");
                refused += 1;
            }
            other => panic!("POST {i}: {other} {body}"),
        }
    }
    assert!(refused > 0, "the disk never filled ({} accepted)", accepted.len());
    assert!(!accepted.is_empty(), "nothing was accepted before the disk filled");
    let ready = server
        .client
        .get(format!("{}/readyz", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a full disk is not ready"
    );
    // Every acknowledged job is still there.
    for id in &accepted {
        let got = server
            .client
            .get(format!("{}/v1/jobs/{id}", server.address))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), StatusCode::OK, "job {id} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_database_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let log = dir.path().join("server.log");
    let first = Server::start(&db, &log);
    let id = first
        .submit(
            &json!({"network": {"input_dim": 200, "depth": 10, "width": 200, "init": {"scheme": "he", "fan": "out"}},
                        "samples": 128, "trials": 300, "seed": 5}),
        )
        .await;
    first.wait_until_running(&id).await;
    let second = serve_command(&db).output().expect("run a second server");
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&db.display().to_string()), "{err}");
    assert!(err.contains("in use by another widthlab process"), "{err}");
    assert!(err.contains(&format!("pid {}", first.pid())), "{err}");
    // The first server's job was not re-queued behind its back.
    let job = first.wait_succeeded(&id, Duration::from_secs(300)).await;
    assert_eq!(job["attempt"], 0, "{job}");
}

/// A sweep whose points take a fraction of a second each.
fn kill_sweep() -> Value {
    json!({"kind": "width_sweep", "samples": 256, "trials": 3, "seed": 77, "method": "dense",
           "network": {"input_dim": 300, "depth": 8, "widths_to_sweep": [300, 320, 340, 360, 380, 400, 420, 440, 460, 480, 500, 520],
                       "init": {"scheme": "he", "fan": "out"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_survives_five_kills_with_every_point_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sweep.db");
    let log = dir.path().join("server.log");
    let mut server = Server::start(&db, &log);
    let id = server.submit(&kill_sweep()).await;
    let points = |v: &Value| v["points"].as_array().map_or(0, Vec::len);
    let mut seen = 0;
    for kill in 1..=5 {
        // Kill as soon as a new point is stored.
        let start = Instant::now();
        loop {
            let sweep = server.get(&format!("/v1/jobs/{id}/sweep")).await;
            let n = points(&sweep);
            if n > seen {
                seen = n;
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no new point after kill {kill}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            seen < 12,
            "the sweep finished before kill {kill}; make its points slower"
        );
        server.kill9();
        server = Server::start(&db, &log);
    }
    let job = server.wait_succeeded(&id, Duration::from_secs(300)).await;
    // Every kill that interrupted a leased unit is one attempt; a kill that lands between a
    // unit's completion and the next claim interrupts nothing. Five kills never fail the job.
    let attempts = job["attempt"].as_u64().unwrap();
    assert!((1..=5).contains(&attempts), "{job}");
    let served = server.get(&format!("/v1/jobs/{id}/sweep")).await;
    // A clean run of the same spec, in one go.
    let clean = Command::new(env!("CARGO_BIN_EXE_widthlab"))
        .args(["run", "-", "--json", "--quiet", "--threads", "2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(kill_sweep().to_string().as_bytes())?;
            c.wait_with_output()
        })
        .expect("widthlab run");
    let clean: Value = serde_json::from_slice(&clean.stdout).expect("JSON");
    assert_same_json(&served["points"], &clean["points"], "points");
}

/// Start the real binary with `args` and extra environment; its exit status and stderr after at
/// most 30 s (it must fail at start-up).
fn start_fails(db: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = serve_command(db);
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run widthlab serve");
    assert!(
        !out.status.success(),
        "started: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn blank_tokens_and_an_open_port_are_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let err = start_fails(&db, &[], &[("WIDTHLAB_TOKENS", " , ")]);
    assert!(err.contains("holds no token"), "{err}");
    let mut everywhere = Command::new(env!("CARGO_BIN_EXE_widthlab"));
    clear_widthlab_env(&mut everywhere);
    let out = everywhere
        .args(["serve", "--bind", "0.0.0.0:0", "--database-url"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--open"), "{err}");
    // Nothing was created: the refusal comes before the database is opened.
    assert!(!db.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_name_the_database_once() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5au8; 8192]).unwrap();
    let err = start_fails(&garbage, &[], &[]);
    assert!(err.contains(&garbage.display().to_string()), "{err}");
    assert!(err.matches("not a database").count() <= 1, "{err}");
    let err = start_fails(Path::new("sqlite://"), &[], &[]);
    assert!(err.contains("names no file"), "{err}");
}

fn token_config(c: &mut Config) {
    c.tokens = vec!["alice:a-secret".parse().unwrap(), "bob:b-secret".parse().unwrap()];
    c.admin_tokens = vec!["carol:c-secret".parse().unwrap()];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_or_an_admin_may_cancel_or_delete() {
    let app = spawn_app_with(token_config).await;
    let post = |token: &'static str, body: Value| {
        app.client
            .post(app.url("/v1/jobs"))
            .header("Authorization", format!("bearer {token}"))
            .json(&body)
            .send()
    };
    let r = post("a-secret", long_spec(1)).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["owner"], "alice");
    let id = job["id"].as_str().unwrap().to_string();
    let (cancel, path) = (format!("/v1/jobs/{id}/cancel"), format!("/v1/jobs/{id}"));
    let r = app.send_as(Method::POST, &cancel, "b-secret", None).await;
    let err = error_of(r, StatusCode::FORBIDDEN).await;
    assert!(err["message"].as_str().unwrap().contains("alice"), "{err}");
    let r = app.send_as(Method::POST, &cancel, "a-secret", None).await;
    assert!(r.status().is_success(), "{}", r.status());
    app.wait_for_status(&id, "cancelled", Duration::from_secs(30)).await;
    let r = app.send_as(Method::DELETE, &path, "b-secret", None).await;
    error_of(r, StatusCode::FORBIDDEN).await;
    // An admin may delete anyone's job.
    let r = app.send_as(Method::DELETE, &path, "c-secret", None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The owner filter lists one owner's jobs.
    post("b-secret", small_spec(3)).await.unwrap();
    let (_, page) = app.get_json("/v1/jobs?owner=bob").await;
    let owners: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["owner"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_with_a_tab_is_refused() {
    let app = spawn_app().await;
    let r = app.post_job_with_key(&small_spec(1), "key\twith-tab").await;
    let err = error_of(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(err["field"], "Idempotency-Key");
}

/// Read from `stream` until EOF or `limit`; what was read and whether EOF came.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).to_string(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (String::from_utf8_lossy(&got).to_string(), true),
        }
    }
    (String::from_utf8_lossy(&got).to_string(), false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_idle_connections_are_closed() {
    let app = spawn_app_with(|c| c.header_read_timeout_secs = 1).await;
    let addr = format!("127.0.0.1:{}", app.port);
    // Half a request head, then nothing.
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    // One request on a keep-alive connection, then idle.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (first, closed) = read_until_closed(&mut half, Duration::from_secs(10));
    assert!(closed, "a half-sent head was kept open: {first:?}");
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle keep-alive connection was kept open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_content_length_is_refused_before_the_body() {
    let app = spawn_app().await;
    let mut s = TcpStream::connect(format!("127.0.0.1:{}", app.port)).unwrap();
    s.write_all(
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
    )
    .unwrap();
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(answer.contains("payload_too_large"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_head_does_not_block_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stop.db");
    let log = dir.path().join("server.log");
    let mut server = Server::start(&db, &log);
    let addr = server.address.trim_start_matches("http://").to_string();
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let stopped_at = Instant::now();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(server.pid(), libc::SIGTERM) }, 0);
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("the server exited after SIGTERM");
    assert!(status.success(), "{status:?}");
    // Well within the 8 s job grace and the 5 s HTTP grace, whatever the client does.
    assert!(
        stopped_at.elapsed() < Duration::from_secs(15),
        "{:?}",
        stopped_at.elapsed()
    );
}

/// A search of some tens of seconds: dense networks, 32 inputs, several probes.
fn kill_search() -> Value {
    json!({"kind": "min_width", "network": {"input_dim": 100, "depth": 5, "init": {"scheme": "he", "fan": "out"}},
           "samples": 32, "epsilon": 0.4, "delta": 0.1, "width_range": [1, 2048], "max_networks_per_width": 512,
           "seed": 11, "method": "dense"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_killed_mid_way_resumes_to_the_same_answer_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("search.db");
    let log = dir.path().join("server.log");
    let mut server = Server::start(&db, &log);
    let id = server.submit(&kill_search()).await;
    // Kill once a few probes are stored.
    let start = Instant::now();
    loop {
        let search = server.get(&format!("/v1/jobs/{id}/search")).await;
        let probes = search["cells"][0]["probes"].as_array().map_or(0, Vec::len);
        if probes >= 4 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no probes stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let job = server.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(
        job["status"], "running",
        "the search ended before the kill; make it longer: {job}"
    );
    server.kill9();
    server = Server::start(&db, &log);
    let job = server.wait_succeeded(&id, Duration::from_secs(600)).await;
    assert_eq!(job["attempt"], 1, "{job}");
    let served = server.get(&format!("/v1/jobs/{id}/search")).await;
    let clean = Command::new(env!("CARGO_BIN_EXE_widthlab"))
        .args(["run", "-", "--json", "--quiet", "--threads", "2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(kill_search().to_string().as_bytes())?;
            c.wait_with_output()
        })
        .expect("widthlab run");
    let clean: Value = serde_json::from_slice(&clean.stdout).expect("JSON");
    assert_same_json(&served["cells"], &clean["cells"], "cells");
}

/// `--max-owner-flops`: one owner's queued and running work may add up to the quota; past it a
/// submission waits (503 quota_exceeded, Retry-After), a job over the quota by itself is a 422
/// (no wait would let it in), and other owners are not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owners_work_quota_queues_what_fits_and_refuses_what_never_will() {
    let spec = |seed: u64, trials: u64| {
        json!({"network": {"input_dim": 20, "depth": 3, "width": 20, "init": {"scheme": "he", "fan": "out"}},
               "samples": 4, "trials": trials, "seed": seed})
    };
    let work = widthlab::sim::plan::parse_checked(&spec(1, 8), &widthlab::spec::Limits::default())
        .unwrap()
        .estimate(1)
        .work_flops;
    let app = spawn_app_with(move |c| {
        token_config(c);
        c.workers = Some(0); // jobs stay queued: their work keeps counting
        c.max_owner_flops = Some(1.5 * work);
    })
    .await;
    let app = &app;
    let post = |token: &'static str, body: Value| async move {
        app.send_as(Method::POST, "/v1/jobs", token, Some(&body)).await
    };
    let first = post("a-secret", spec(1, 8)).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let r = post("a-secret", spec(2, 8)).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "30");
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "quota_exceeded", "{err}");
    assert_eq!(post("b-secret", spec(3, 8)).await.status(), StatusCode::ACCEPTED);
    // A job's estimate includes its report's fixed 5e8; this one's networks add about 6e9.
    let big = json!({"network": {"input_dim": 200, "depth": 3, "width": 200, "init": {"scheme": "he", "fan": "out"}},
                     "samples": 64, "trials": 64, "seed": 4, "method": "dense"});
    let err = error_of(post("a-secret", big).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(err["field"], "trials", "{err}");
    assert!(err["message"].as_str().unwrap().contains("quota"), "{err}");
    // Once the first is cancelled, the second fits.
    let id = first["id"].as_str().unwrap();
    let r = app
        .send_as(
            reqwest::Method::POST,
            &format!("/v1/jobs/{id}/cancel"),
            "a-secret",
            None,
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(post("a-secret", spec(2, 8)).await.status(), StatusCode::ACCEPTED);
}
