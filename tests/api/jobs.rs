//! Submitting, reading and listing jobs; idempotent submission.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_returns_202_with_location_and_the_normalized_job() {
    let app = spawn_app().await;
    let r = app.post_job(&small_spec(11)).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r
        .headers()
        .get("location")
        .expect("Location header")
        .to_str()
        .unwrap()
        .to_string();
    let job: Value = r.json().await.unwrap();

    let id = job["id"].as_str().expect("id is a string");
    assert!(!id.is_empty());
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!(job["kind"], "norms");
    assert!(
        ["queued", "running", "succeeded"].contains(&job["status"].as_str().unwrap()),
        "{job}"
    );
    // trials x depth x 2 passes
    assert_eq!(job["progress"]["total"], 16);
    assert!(job["progress"]["done"].is_u64());
    assert!(job["created_at"].is_string());
    assert!(job["error"].is_null());
    assert_eq!(job["attempt"], 0);
    assert_eq!(job["cancel_requested"], false);
    assert_eq!(job["links"]["self"], location);
    assert_eq!(job["links"]["layers"], format!("/v1/jobs/{id}/layers"));
    assert_eq!(job["links"]["bound_checks"], format!("/v1/jobs/{id}/bound-checks"));

    // The spec comes back normalized: widths list, every default filled in, the seed kept.
    let spec = &job["spec"];
    assert_eq!(spec["kind"], "norms");
    assert_eq!(spec["network"]["input_dim"], 50);
    assert_eq!(spec["network"]["widths"], json!([30, 30, 30, 30]));
    assert!(
        spec["network"].get("depth").is_none() && spec["network"].get("width").is_none(),
        "{spec}"
    );
    assert_eq!(spec["network"]["init"], json!({"scheme": "he", "fan": "out"}));
    assert_eq!(spec["network"]["head"]["classes"], 20);
    assert_eq!(spec["samples"], 64);
    assert_eq!(spec["trials"], 2);
    assert_eq!(spec["input"]["distribution"], "gaussian");
    assert_eq!(spec["epsilon"], 0.15);
    assert_eq!(spec["delta"], 0.05);
    assert_eq!(spec["seed"], 11);
    assert_eq!(spec["precision"], "f64");

    // The Location resolves to the same job.
    let (status, fetched) = app.get_json(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["id"], job["id"]);
    assert_eq!(fetched["spec"], job["spec"]);
    assert_eq!(fetched["created_at"], job["created_at"]);

    let done = app.wait_for_status(id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(done["progress"]["done"], done["progress"]["total"]);
    assert!(
        done["started_at"].is_string() && done["finished_at"].is_string(),
        "{done}"
    );
    let (created, started, finished) = (
        instant(&done["created_at"]),
        instant(&done["started_at"]),
        instant(&done["finished_at"]),
    );
    assert!(
        created <= started && started <= finished,
        "timestamps out of order: {done}"
    );
    assert_eq!(done["stamp"]["seed"], 11);
    assert_eq!(done["stamp"]["precision"], "f64");
    assert!(done["stamp"]["rng"].as_str().is_some_and(|s| !s.is_empty()), "{done}");
    assert_eq!(done["stamp"]["crate_version"], env!("CARGO_PKG_VERSION"));
    let verdicts = done["summary"]["verdicts"].as_object().expect("summary.verdicts");
    let names: HashSet<&str> = verdicts.keys().map(String::as_str).collect();
    assert_eq!(names, HashSet::from(["arpit2019", "exact_tail", "chernoff"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_seed_is_drawn_stored_and_stamped() {
    let app = spawn_app().await;
    let mut spec = small_spec(0);
    spec.as_object_mut().unwrap().remove("seed");
    let a = app.submit(&spec).await;
    let b = app.submit(&spec).await;
    let seed_a = a["spec"]["seed"].as_u64().expect("a drawn seed is stored");
    let seed_b = b["spec"]["seed"].as_u64().expect("a drawn seed is stored");
    assert_ne!(seed_a, seed_b, "two submissions without a seed drew the same one");
    let done = app
        .wait_for_status(a["id"].as_str().unwrap(), "succeeded", Duration::from_secs(30))
        .await;
    assert_eq!(done["stamp"]["seed"].as_u64(), Some(seed_a));
    assert_eq!(done["spec"]["seed"].as_u64(), Some(seed_a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_job_ids_are_404_everywhere() {
    let app = spawn_app().await;
    for path in [
        "/v1/jobs/00000000-0000-0000-0000-000000000000",
        "/v1/jobs/not-a-uuid",
        "/v1/jobs/00000000-0000-0000-0000-000000000000/layers",
        "/v1/jobs/00000000-0000-0000-0000-000000000000/bound-checks",
    ] {
        let err = error_of(app.get(path).await, StatusCode::NOT_FOUND).await;
        assert_eq!(err["code"], "not_found", "{path}");
    }
    let err = error_of(
        app.cancel("00000000-0000-0000-0000-000000000000").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(err["code"], "not_found");
    let err = error_of(
        app.delete("00000000-0000-0000-0000-000000000000").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(err["code"], "not_found");
    assert!(app.all_jobs().await.is_empty(), "404s created jobs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_replays_the_same_body_and_refuses_a_different_one() {
    let app = spawn_app().await;
    let spec = small_spec(21);
    let first = app.post_job_with_key(&spec, "key-1").await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();

    // Same key, same body: 200 with the original job.
    let again = app.post_job_with_key(&spec, "key-1").await;
    assert_eq!(again.status(), StatusCode::OK);
    let location = again.headers().get("location").map(|v| v.to_str().unwrap().to_string());
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["created_at"], first["created_at"]);
    assert_eq!(
        location.as_deref(),
        Some(format!("/v1/jobs/{}", first["id"].as_str().unwrap()).as_str())
    );

    // The same body with its keys in another order is the same body.
    let reordered: Value = serde_json::from_str(
        r#"{"seed": 21, "trials": 2, "samples": 64,
            "network": {"init": {"fan": "out", "scheme": "he"}, "width": 30, "depth": 4, "input_dim": 50}}"#,
    )
    .unwrap();
    let r = app.post_job_with_key(&reordered, "key-1").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], first["id"]);

    // Same key, different body: 409, nothing created.
    let err = error_of(
        app.post_job_with_key(&small_spec(22), "key-1").await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(err["code"], "idempotency_conflict");

    // Another key, same body: a new job.
    let other = app.post_job_with_key(&spec, "key-2").await;
    assert_eq!(other.status(), StatusCode::ACCEPTED);
    let other: Value = other.json().await.unwrap();
    assert_ne!(other["id"], first["id"]);

    let ids: Vec<Value> = app.all_jobs().await.iter().map(|j| j["id"].clone()).collect();
    assert_eq!(ids, vec![other["id"].clone(), first["id"].clone()]);

    // Still replayed after the job has finished.
    app.wait_for_status(first["id"].as_str().unwrap(), "succeeded", Duration::from_secs(30))
        .await;
    let r = app.post_job_with_key(&spec, "key-1").await;
    assert_eq!(r.status(), StatusCode::OK);
    let replay: Value = r.json().await.unwrap();
    assert_eq!(replay["id"], first["id"]);
    assert_eq!(replay["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_with_one_key_create_one_job() {
    let app = spawn_app().await;
    let spec = small_spec(31);
    let responses = app.concurrent_posts(&spec, Some("race-key"), 8).await;
    let mut ids = HashSet::new();
    let mut created = 0;
    for (status, body) in responses {
        match status {
            StatusCode::ACCEPTED => created += 1,
            StatusCode::OK => {}
            other => panic!("unexpected {other}: {body}"),
        }
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(created, 1, "exactly one submission creates the job");
    assert_eq!(ids.len(), 1, "every submission answers with the same job");
    assert_eq!(app.all_jobs().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_idempotency_key_is_400() {
    let app = spawn_app().await;
    let long = "k".repeat(256);
    let err = error_of(
        app.post_job_with_key(&small_spec(1), &long).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(err["field"], "Idempotency-Key");
    let err = error_of(app.post_job_with_key(&small_spec(1), "").await, StatusCode::BAD_REQUEST).await;
    assert_eq!(err["field"], "Idempotency-Key");
    assert!(app.all_jobs().await.is_empty());
    // 255 characters is still fine.
    let ok = app.post_job_with_key(&small_spec(1), &"k".repeat(255)).await;
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_is_newest_first_and_pages_with_the_cursor() {
    let app = spawn_app().await;
    let mut submitted = Vec::new();
    for seed in 0..5 {
        submitted.push(
            app.submit(&small_spec(100 + seed)).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let newest_first: Vec<String> = submitted.iter().rev().cloned().collect();

    // Default page holds all five.
    let (status, page) = app.get_json("/v1/jobs").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, newest_first);
    assert!(page["next_cursor"].is_null(), "{page}");
    // Listed jobs have the full shape.
    let first = &page["jobs"][0];
    for key in [
        "id",
        "kind",
        "status",
        "progress",
        "spec",
        "created_at",
        "attempt",
        "links",
    ] {
        assert!(first.get(key).is_some(), "listed job lacks {key}: {first}");
    }

    // Pages of two: 2 + 2 + 1, no repeats, no gaps.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/v1/jobs?limit=2".to_string(),
            Some(c) => format!("/v1/jobs?limit=2&cursor={c}"),
        };
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let jobs = page["jobs"].as_array().unwrap();
        assert!(jobs.len() <= 2);
        paged.extend(jobs.iter().map(|j| j["id"].as_str().unwrap().to_string()));
        pages += 1;
        assert!(pages <= 4, "pagination does not end: {page}");
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, newest_first);
    assert_eq!(pages, 3);

    // Filters.
    for s in &submitted {
        app.wait_for_status(s, "succeeded", Duration::from_secs(30)).await;
    }
    let (_, page) = app.get_json("/v1/jobs?status=succeeded&kind=norms&limit=100").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 5);
    let (_, page) = app.get_json("/v1/jobs?status=queued").await;
    assert_eq!(page["jobs"], json!([]));
    assert!(page["next_cursor"].is_null());
    let (_, page) = app.get_json("/v1/jobs?status=cancelled").await;
    assert_eq!(page["jobs"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_parameters_are_checked() {
    let app = spawn_app().await;
    app.submit(&small_spec(1)).await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("status=done", "status"),
        ("kind=bogus", "kind"),
        ("cursor=abc", "cursor"),
    ] {
        let err = error_of(
            app.get(&format!("/v1/jobs?{query}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(err["field"], field, "{query}: {err}");
        assert_eq!(err["code"], "invalid_spec", "{query}: {err}");
    }
    let err = error_of(app.get("/v1/jobs?colour=red").await, StatusCode::BAD_REQUEST).await;
    assert_eq!(err["field"], "colour");
    for query in ["limit=1", "limit=100", "limit=20&status=queued"] {
        let r = app.get(&format!("/v1/jobs?{query}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{query}");
    }
    let (_, page) = app.get_json("/v1/jobs?limit=1").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
}
