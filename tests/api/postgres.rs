//! The PostgreSQL store answers the HTTP contract exactly as SQLite does: the same requests,
//! sent to a server on each, get the same statuses and the same bodies (ids and clock readings
//! aside), and the same numbers bit for bit.
//!
//! Needs a PostgreSQL server: `WIDTHLAB_TEST_POSTGRES_URL` (CI sets it; then an unreachable
//! server fails the tests), else postgres://postgres@127.0.0.1:5432/test if it answers (else
//! the tests say they were skipped and why). Each test gets a fresh database of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh, empty database on the test PostgreSQL server, as a URL; None (with the reason
/// printed) when no server is configured and the default one does not answer.
pub async fn fresh_postgres() -> Option<String> {
    let configured = std::env::var("WIDTHLAB_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let base = configured.clone().unwrap_or_else(|| DEFAULT_URL.to_string());
    let mut conn = match sqlx::PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) if configured.is_none() => {
            eprintln!("skipped: no PostgreSQL at {base} ({e}); set WIDTHLAB_TEST_POSTGRES_URL to run this test");
            return None;
        }
        Err(e) => panic!("WIDTHLAB_TEST_POSTGRES_URL={base} does not answer: {e}"),
    };
    let name = format!("widthlab_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base.as_str(), String::new()),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let server = match head[scheme_end..].find('/') {
        Some(slash) => &head[..scheme_end + slash],
        None => head,
    };
    Some(format!("{server}/{name}{query}"))
}

/// One request of a scenario.
enum Step {
    Post {
        body: Value,
        key: Option<&'static str>,
    },
    Get(String),
    Cancel(usize),
    Delete(usize),
    /// Wait for the n-th submitted job to end.
    Wait(usize),
}

/// Runs the steps against one server and records what a client sees, with job ids replaced by
/// their submission order and clock readings removed.
struct Transcript {
    ids: Vec<String>,
    seen: Vec<(String, StatusCode, Value)>,
}

impl Transcript {
    async fn run(app: &TestApp, steps: &[Step]) -> Transcript {
        let mut t = Transcript {
            ids: Vec::new(),
            seen: Vec::new(),
        };
        for step in steps {
            let (label, response) = match step {
                Step::Post { body, key } => {
                    let r = match key {
                        Some(k) => app.post_job_with_key(body, k).await,
                        None => app.post_job(body).await,
                    };
                    ("POST /v1/jobs".to_string(), r)
                }
                Step::Get(path) => {
                    let path = t.path(path);
                    (format!("GET {path}"), app.get(&path).await)
                }
                Step::Cancel(n) => (format!("cancel {n}"), app.cancel(&t.ids[*n]).await),
                Step::Delete(n) => (format!("delete {n}"), app.delete(&t.ids[*n]).await),
                Step::Wait(n) => {
                    let id = t.ids[*n].clone();
                    app.wait_for(&id, Duration::from_secs(120), "an end", |j| {
                        TERMINAL.contains(&j["status"].as_str().unwrap_or(""))
                    })
                    .await;
                    continue;
                }
            };
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if let (Step::Post { .. }, Some(id)) = (step, body["id"].as_str()) {
                if !t.ids.iter().any(|known| known == id) {
                    t.ids.push(id.to_string());
                }
            }
            let mut body = t.normalize(body);
            if let (Step::Post { .. }, Some(job)) = (step, body.as_object_mut()) {
                // A replayed submission shows the job as it is now: queued or already running.
                job.remove("status");
                job.remove("progress");
            }
            t.seen.push((label, status, body));
        }
        t
    }

    /// `{N}` in a path is the N-th job's id.
    fn path(&self, path: &str) -> String {
        let mut p = path.to_string();
        for (n, id) in self.ids.iter().enumerate() {
            p = p.replace(&format!("{{{n}}}"), id);
        }
        p
    }

    fn normalize(&self, v: Value) -> Value {
        const CLOCK: &[&str] = &["created_at", "started_at", "finished_at", "duration_secs", "eta_secs"];
        match v {
            Value::String(mut s) => {
                for (n, id) in self.ids.iter().enumerate() {
                    s = s.replace(id, &format!("<job {n}>"));
                }
                Value::String(s)
            }
            Value::Array(a) => Value::Array(a.into_iter().map(|x| self.normalize(x)).collect()),
            Value::Object(o) => Value::Object(
                o.into_iter()
                    .filter(|(k, _)| !CLOCK.contains(&k.as_str()))
                    .map(|(k, x)| (k, self.normalize(x)))
                    .collect(),
            ),
            other => other,
        }
    }
}

fn sweep(seed: u64) -> Value {
    json!({"kind": "width_sweep", "samples": 32, "trials": 3, "seed": seed, "method": "dense",
           "network": {"input_dim": 40, "depths_to_sweep": [3, 5], "widths_to_sweep": [20, 40, 60],
                       "init": {"scheme": "he", "fan": "out"}}})
}

fn search(seed: u64) -> Value {
    json!({"kind": "min_width", "network": {"input_dim": 10, "depth": 2, "init": {"scheme": "he", "fan": "out"}},
           "samples": 1, "epsilon": 0.3, "delta": 0.05, "claim": "forward",
           "width_range": [1, 256], "max_networks_per_width": 2048, "seed": seed})
}

/// A spec with a name (HTML in it, mixed case, a LIKE wildcard) and tags.
fn labelled(mut spec: Value) -> Value {
    spec["name"] = json!("Run <b>A</b> 100%");
    spec["tags"] = json!(["x_y", "T1"]);
    spec
}

fn norms(seed: u64, trials: u64) -> Value {
    json!({"network": {"input_dim": 50, "depth": 4, "width": 30, "init": {"scheme": "he", "fan": "out"}},
           "samples": 64, "trials": trials, "seed": seed})
}

/// Assert two transcripts equal, step by step (a readable first difference).
fn assert_same(sqlite: &Transcript, postgres: &Transcript) {
    assert_eq!(sqlite.seen.len(), postgres.seen.len());
    for ((label, s_status, s_body), (_, p_status, p_body)) in sqlite.seen.iter().zip(&postgres.seen) {
        assert_eq!(
            s_status, p_status,
            "{label}: SQLite {s_status}, PostgreSQL {p_status}: {p_body}"
        );
        assert_same_json(p_body, s_body, label);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answers_every_request_as_sqlite_does() {
    let Some(url) = fresh_postgres().await else { return };
    let on_sqlite = spawn_app().await;
    let on_postgres = spawn_app_with(|c| c.database_url = url.clone()).await;
    let steps = vec![
        Step::Post {
            body: norms(3, 17),
            key: Some("norms-3"),
        },
        Step::Post {
            body: norms(3, 17),
            key: Some("norms-3"),
        },
        Step::Post {
            body: norms(4, 17),
            key: Some("norms-3"),
        },
        Step::Post {
            body: sweep(5),
            key: None,
        },
        Step::Post {
            body: search(6),
            key: None,
        },
        Step::Post {
            body: json!({"network": {"input_dim": 0}}),
            key: None,
        },
        Step::Post {
            body: labelled(norms(7, 5)),
            key: None,
        },
        Step::Wait(0),
        Step::Wait(1),
        Step::Wait(2),
        Step::Wait(3),
        Step::Get("/v1/jobs/{0}".into()),
        Step::Get("/v1/jobs/{0}/layers".into()),
        Step::Get("/v1/jobs/{0}/layers?format=csv".into()),
        Step::Get("/v1/jobs/{0}/bound-checks".into()),
        Step::Get("/v1/jobs/{1}".into()),
        Step::Get("/v1/jobs/{1}/sweep".into()),
        Step::Get("/v1/jobs/{1}/sweep?format=csv".into()),
        Step::Get("/v1/jobs/{2}".into()),
        Step::Get("/v1/jobs/{2}/search".into()),
        Step::Get("/v1/jobs/{2}/layers".into()),
        Step::Get("/v1/jobs?limit=2".into()),
        Step::Get("/v1/jobs?limit=2&cursor=2".into()),
        Step::Get("/v1/jobs?status=succeeded&kind=width_sweep".into()),
        Step::Get("/v1/jobs?status=nonsense".into()),
        Step::Get("/v1/jobs?tag=x_y".into()),
        Step::Get("/v1/jobs?tag=x%25y".into()),
        Step::Get("/v1/jobs?name=run%20%3Cb".into()),
        Step::Get("/v1/jobs?name=%25".into()),
        Step::Get("/v1/jobs?preset=arpit2019-fig1".into()),
        Step::Get("/v1/jobs/00000000-0000-0000-0000-000000000000".into()),
        Step::Delete(0),
        Step::Get("/v1/jobs/{0}".into()),
        Step::Delete(0),
        Step::Cancel(1),
    ];
    let s = Transcript::run(&on_sqlite, &steps).await;
    let p = Transcript::run(&on_postgres, &steps).await;
    assert_eq!(s.ids.len(), 4, "four jobs were accepted: {:?}", s.seen);
    // Not vacuous: the label filters found the labelled job, and only it.
    let by_tag = &p.seen.iter().find(|(l, _, _)| l.ends_with("tag=x_y")).unwrap().2;
    assert_eq!(by_tag["jobs"].as_array().map(Vec::len), Some(1), "{by_tag}");
    let by_name = &p
        .seen
        .iter()
        .find(|(l, _, _)| l.ends_with("name=run%20%3Cb"))
        .unwrap()
        .2;
    assert_eq!(by_name["jobs"].as_array().map(Vec::len), Some(1), "{by_name}");
    assert_same(&s, &p);
    // Not vacuous: the transcripts hold the numbers.
    let layers = &p.seen.iter().find(|(l, _, _)| l.ends_with("/layers")).unwrap().2;
    assert!(layers["layers"][0]["forward"]["mean"].as_f64().is_some(), "{layers}");
    let (ready, _) = on_postgres.get_json("/readyz").await;
    assert_eq!(ready, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_enforces_queue_limits_quotas_and_cancels_as_sqlite_does() {
    let Some(url) = fresh_postgres().await else { return };
    // API-only servers: jobs stay queued, so the limits are what is tested.
    let tweak = |c: &mut widthlab::config::Config| {
        c.workers = Some(0);
        c.max_queued = 2;
    };
    let on_sqlite = spawn_app_with(tweak).await;
    let on_postgres = spawn_app_with(|c| {
        tweak(c);
        c.database_url = url.clone();
    })
    .await;
    let steps = vec![
        Step::Post {
            body: norms(1, 2),
            key: None,
        },
        Step::Post {
            body: norms(2, 2),
            key: Some("two"),
        },
        Step::Post {
            body: norms(3, 2),
            key: None,
        },
        Step::Post {
            body: norms(2, 2),
            key: Some("two"),
        },
        Step::Cancel(0),
        Step::Cancel(0),
        Step::Post {
            body: norms(3, 2),
            key: None,
        },
        Step::Get("/v1/jobs?status=queued".into()),
        Step::Get("/v1/jobs?status=cancelled".into()),
        Step::Delete(1),
        Step::Delete(0),
    ];
    let s = Transcript::run(&on_sqlite, &steps).await;
    let p = Transcript::run(&on_postgres, &steps).await;
    assert_eq!(s.seen[2].1, StatusCode::SERVICE_UNAVAILABLE, "{:?}", s.seen[2]);
    assert_same(&s, &p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_to_two_api_nodes_respect_one_queue_limit_and_one_key() {
    let Some(url) = fresh_postgres().await else { return };
    let node = |max_queued| {
        let url = url.clone();
        move |c: &mut widthlab::config::Config| {
            c.workers = Some(0);
            c.max_queued = max_queued;
            c.database_url = url;
        }
    };
    let a = spawn_app_with(node(5)).await;
    let b = spawn_app_with(node(5)).await;
    // 16 submissions with one idempotency key, half to each node: one job.
    let spec = norms(9, 2);
    let (x, y) = tokio::join!(
        a.concurrent_posts(&spec, Some("one-key"), 8),
        b.concurrent_posts(&spec, Some("one-key"), 8)
    );
    let ids: std::collections::BTreeSet<String> = x
        .iter()
        .chain(&y)
        .map(|(status, body)| {
            assert!(
                matches!(*status, StatusCode::ACCEPTED | StatusCode::OK),
                "{status} {body}"
            );
            body["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    // 12 different jobs at once against a limit of 5 queued: exactly 4 more accepted.
    let specs: Vec<Value> = (0..12).map(|i| norms(100 + i, 2)).collect();
    let posts = specs.iter().enumerate().map(|(i, s)| {
        let app = if i % 2 == 0 { &a } else { &b };
        async move { app.post_job(s).await.status() }
    });
    let statuses = futures_util::future::join_all(posts).await;
    let mut counts = BTreeMap::new();
    for s in statuses {
        *counts.entry(s.as_u16()).or_insert(0) += 1;
    }
    assert_eq!(counts, BTreeMap::from([(202, 4), (503, 8)]), "{counts:?}");
    assert_eq!(a.all_jobs().await.len(), 5);
    assert_eq!(b.all_jobs().await.len(), 5);
}
