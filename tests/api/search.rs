//! `kind: "min_width"` over HTTP: submit, watch the bracket narrow, read the cells as JSON and
//! CSV, see the figure; bad searches are refused naming the field.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

fn small_search(seed: u64) -> Value {
    json!({
        "kind": "min_width",
        "network": {"input_dim": 10, "depth": 2, "init": {"scheme": "he", "fan": "out"}},
        "samples": 1, "epsilon": 0.3, "delta": 0.05, "claim": "forward",
        "width_range": [1, 256], "max_networks_per_width": 2048, "seed": seed
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_reports_its_cells_probes_and_figure() {
    let app = spawn_app().await;
    let job = app.submit(&small_search(3)).await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["kind"], "min_width");
    let done = app.wait_for_status(id, "succeeded", Duration::from_secs(120)).await;
    let cells = done["summary"]["cells"].as_array().expect("summary cells");
    assert_eq!(cells.len(), 1);
    let (status, search) = app.get_json(&format!("/v1/jobs/{id}/search")).await;
    assert_eq!(status, StatusCode::OK);
    let cell = &search["cells"][0];
    assert_eq!(cell["width_range"], json!([1, 256]));
    let probes = cell["probes"].as_array().unwrap();
    assert!(probes.len() >= 3, "{cell}");
    // The bracket is made of decided probes.
    let pass = cell["bracket"]["pass"].as_u64().expect("a width passes");
    assert!(probes.iter().any(|p| p["width"] == pass && p["decision"] == "pass"));
    if let Some(fail) = cell["bracket"]["fail"].as_u64() {
        assert!(fail < pass);
        assert!(probes.iter().any(|p| p["width"] == fail && p["decision"] == "fail"));
    }
    assert_eq!(done["summary"]["cells"][0]["pass"], pass);
    let bounds: Vec<&str> = cell["bounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bound"].as_str().unwrap())
        .collect();
    assert_eq!(bounds, ["arpit2019", "exact_tail", "chernoff"]);
    // CSV: one row per cell, or per probe.
    let csv = app
        .get(&format!("/v1/jobs/{id}/search?format=csv"))
        .await
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[0].contains("bracket_pass") && lines[0].contains("looseness_chernoff"),
        "{}",
        lines[0]
    );
    let csv = app
        .get(&format!("/v1/jobs/{id}/search?format=csv&rows=probes"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), probes.len() + 1, "{csv}");
    // The figure names the bracket and each bound.
    let svg = app.get(&format!("/v1/jobs/{id}/plot.svg")).await.text().await.unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG parses");
    let text: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    for needle in ["1 - delta", "certified bracket", "arpit2019", "chernoff"] {
        assert!(text.iter().any(|t| t.contains(needle)), "missing {needle:?}");
    }
    // Another kind has no search.
    let norms = app.submit(&small_spec(4)).await;
    let r = app
        .get(&format!("/v1/jobs/{}/search", norms["id"].as_str().unwrap()))
        .await;
    error_of(r, StatusCode::CONFLICT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_searches_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let with = |patch: Value| {
        let mut v = small_search(1);
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    let cases = [
        (with(json!({"width_range": [300, 200]})), "width_range"),
        (with(json!({"width_range": [1]})), "width_range"),
        (with(json!({"width_range": [0, 10]})), "width_range[0]"),
        (with(json!({"confidence": 1.0})), "confidence"),
        (with(json!({"max_networks_per_width": 8})), "max_networks_per_width"),
        (with(json!({"max_work": 1e30})), "max_work"),
        (with(json!({"max_work": 1.0})), "max_work"),
        (with(json!({"trials": 5})), "trials"),
        (with(json!({"epsilon": []})), "epsilon"),
        (with(json!({"epsilon": [0.3, -1.0]})), "epsilon[1]"),
        (with(json!({"claim": "sideways"})), "claim"),
        // The exact samplers qualify for every probe or the method is refused (the search ran
        // the Gram sampler on orthogonal and weight-normalized networks).
        (
            with(
                json!({"method": "exact", "network": {"input_dim": 64, "depth": 1, "init": {"scheme": "orthogonal"}},
                        "samples": 4, "width_range": [64, 64]}),
            ),
            "method",
        ),
        (
            with(
                json!({"method": "exact", "network": {"input_dim": 4, "depth": 1, "weight_norm": {"gain": "derived"}},
                        "samples": 4, "width_range": [64, 64]}),
            ),
            "method",
        ),
        (
            with(json!({"method": "exact", "samples": 4, "width_range": [2, 256]})),
            "method",
        ),
        (
            json!({"kind": "min_width", "network": {"input_dim": 10, "depth": 2, "width": 100,
                   "init": {"scheme": "he", "fan": "out"}}}),
            "network.width",
        ),
        (
            json!({"kind": "min_width", "network": {"input_dim": 10, "depth": 2,
                   "weight_norm": {"gain": "derived", "direction": "gaussian"}}}),
            "claim",
        ),
        (
            json!({"network": {"input_dim": 10, "depth": [2, 3], "width": 10, "init": {"scheme": "he", "fan": "out"}}}),
            "network.depth",
        ),
        (
            json!({"network": {"input_dim": 10, "depth": 2, "width": 10, "init": {"scheme": "he", "fan": "out"}},
                   "claim": "both"}),
            "claim",
        ),
    ];
    for (spec, field) in cases {
        let err = error_of(app.post_job(&spec).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(err["field"], field, "{spec}: {err}");
    }
    assert!(app.all_jobs().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_search_reports_its_bracket_as_it_narrows() {
    let app = spawn_app().await;
    // Dense networks with 8 inputs: long enough to be seen running.
    let job = app
        .submit(&json!({
            "kind": "min_width",
            "network": {"input_dim": 50, "depth": 6, "init": {"scheme": "he", "fan": "out"}},
            "samples": 8, "epsilon": 0.3, "delta": 0.05, "width_range": [1, 4096],
            "max_networks_per_width": 4096, "seed": 8, "method": "dense"
        }))
        .await;
    let id = job["id"].as_str().unwrap();
    let seen = app
        .wait_for(id, Duration::from_secs(60), "a progress detail", |j| {
            j["progress"]["detail"]["width"].is_u64() || j["status"] == "succeeded"
        })
        .await;
    if seen["status"] == "running" {
        let d = &seen["progress"]["detail"];
        assert_eq!(d["epsilon"], 0.3, "{d}");
        assert!(d["networks"].as_u64().unwrap() >= 32, "{d}");
    }
    app.cancel(id).await;
}
