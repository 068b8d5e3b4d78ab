//! Job labels: `name` and `tags` at submission, in the job, and as filters of `GET /v1/jobs`.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_of, small_spec, spawn_app};

fn labelled(seed: u64, name: &str, tags: &[&str]) -> Value {
    let mut spec = small_spec(seed);
    spec["name"] = json!(name);
    spec["tags"] = json!(tags);
    spec
}

fn ids(page: &Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .expect("jobs array")
        .iter()
        .map(|j| j["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn names_and_tags_are_stored_returned_and_filtered() {
    let app = spawn_app().await;
    let he = app.submit(&labelled(1, "He at depth 4", &["he", "paper_fig.1"])).await;
    let glorot = app
        .submit(&labelled(2, "Glorot at depth 4", &["glorot", "paper_fig.1"]))
        .await;
    let plain = app.submit(&small_spec(3)).await;
    let preset = app
        .submit(
            &json!({"preset": "arpit2019-fig1", "samples": 8, "trials": 1, "name": "from a preset", "tags": ["He"]}),
        )
        .await;

    assert_eq!(he["name"], "He at depth 4");
    assert_eq!(he["tags"], json!(["he", "paper_fig.1"]));
    assert_eq!(plain["name"], Value::Null);
    assert_eq!(plain["tags"], json!([]));
    assert_eq!(preset["preset"], "arpit2019-fig1");
    assert_eq!(preset["tags"], json!(["He"]));
    // Labels are not part of the spec.
    assert!(he["spec"].get("name").is_none(), "{}", he["spec"]);
    let again = app.job(he["id"].as_str().unwrap()).await;
    assert_eq!(again["name"], "He at depth 4");
    assert_eq!(again["tags"], json!(["he", "paper_fig.1"]));

    let id = |j: &Value| j["id"].as_str().unwrap().to_string();
    let list = |q: &'static str| {
        let app = &app;
        async move {
            let (status, page) = app.get_json(&format!("/v1/jobs?{q}")).await;
            assert_eq!(status, StatusCode::OK, "{q}: {page}");
            ids(&page)
        }
    };
    // Tags match exactly and case-sensitively; `_` is no wildcard.
    assert_eq!(list("tag=he").await, vec![id(&he)]);
    assert_eq!(list("tag=He").await, vec![id(&preset)]);
    assert_eq!(list("tag=paper_fig.1").await, vec![id(&glorot), id(&he)]);
    assert_eq!(list("tag=paperXfig.1").await, Vec::<String>::new());
    assert_eq!(list("tag=paper").await, Vec::<String>::new());
    // Names match as a substring, ignoring ASCII case; LIKE wildcards are literal.
    assert_eq!(list("name=depth").await, vec![id(&glorot), id(&he)]);
    assert_eq!(list("name=GLOROT").await, vec![id(&glorot)]);
    assert_eq!(list("name=%25").await, Vec::<String>::new());
    assert_eq!(list("name=He_at").await, Vec::<String>::new());
    // Preset, and filters together.
    assert_eq!(list("preset=arpit2019-fig1").await, vec![id(&preset)]);
    assert_eq!(list("tag=paper_fig.1&name=he").await, vec![id(&he)]);
    assert_eq!(list("tag=paper_fig.1&kind=width_sweep").await, Vec::<String>::new());
    // The cursor pages through a filtered list.
    let (_, first) = app.get_json("/v1/jobs?tag=paper_fig.1&limit=1").await;
    assert_eq!(ids(&first), vec![id(&glorot)]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, second) = app
        .get_json(&format!("/v1/jobs?tag=paper_fig.1&limit=1&cursor={cursor}"))
        .await;
    assert_eq!(ids(&second), vec![id(&he)]);
    assert_eq!(second["next_cursor"], Value::Null);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_labels_are_422_naming_the_field_and_range() {
    let app = spawn_app().await;
    let cases = [
        (json!({"name": "x".repeat(121)}), "name", "120"),
        (json!({"name": ""}), "name", "120"),
        (json!({"name": 5}), "name", "120"),
        (json!({"tags": "one"}), "tags", "16"),
        (
            json!({"tags": (0..17).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
            "tags",
            "16",
        ),
        (json!({"tags": ["fine", "not fine"]}), "tags[1]", "40"),
        (json!({"tags": ["a".repeat(41)]}), "tags[0]", "40"),
        (json!({"tags": ["<b>"]}), "tags[0]", "A-Z"),
    ];
    for (labels, field, allowed) in cases {
        let mut spec = small_spec(1);
        for (k, v) in labels.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let e = error_of(app.post_job(&spec).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(e["field"], field, "{labels}: {e}");
        assert!(e["message"].as_str().unwrap().contains(allowed), "{labels}: {e}");
    }
    // Nothing half-written.
    assert!(app.all_jobs().await.is_empty());
    let long_name = format!("name={}", "n".repeat(121));
    for (q, field) in [("tag=a%20b", "tag"), ("tag=", "tag"), (long_name.as_str(), "name")] {
        let e = error_of(
            app.get(&format!("/v1/jobs?{q}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(e["field"], field, "{q}: {e}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn an_idempotent_replay_with_another_name_is_a_conflict() {
    let app = spawn_app().await;
    let first = app.post_job_with_key(&labelled(4, "first", &["x"]), "labels-key").await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let same = app.post_job_with_key(&labelled(4, "first", &["x"]), "labels-key").await;
    assert_eq!(same.status(), StatusCode::OK);
    let other = app
        .post_job_with_key(&labelled(4, "second", &["x"]), "labels-key")
        .await;
    error_of(other, StatusCode::CONFLICT).await;
    app.shutdown().await;
}
