//! What a finished job holds: per-layer statistics (JSON and CSV) and bound checks, equal to the
//! same spec computed in-process.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const STAT_KEYS: &[&str] = &[
    "count",
    "undefined",
    "mean",
    "std",
    "min",
    "max",
    "p01",
    "p05",
    "p50",
    "p95",
    "p99",
];

async fn finished_job(app: &TestApp, spec: &Value) -> Value {
    let job = app.submit(spec).await;
    app.wait_for_status(job["id"].as_str().unwrap(), "succeeded", Duration::from_secs(60))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_layers_equal_the_in_process_simulation() {
    let app = spawn_app().await;
    let job = finished_job(&app, &small_spec(11)).await;
    let id = job["id"].as_str().unwrap();

    let (status, body) = app.layers(id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["job_id"], id);
    assert_eq!(body["status"], "succeeded");
    let layers = body["layers"].as_array().expect("layers array");
    assert_eq!(layers.len(), 4);
    for (i, layer) in layers.iter().enumerate() {
        assert_eq!(layer["layer"], i + 1);
        assert_eq!(layer["width"], 30);
        assert_eq!(layer["fan_in"], if i == 0 { 50 } else { 30 });
        // He, fan out: 2 / n_l.
        assert_eq!(layer["weight_variance"].as_f64(), Some(2.0 / 30.0));
        for pass in ["forward", "gradient"] {
            let s = &layer[pass];
            for k in STAT_KEYS {
                assert!(s[k].is_number(), "layer {} {pass}.{k} missing: {s}", i + 1);
            }
            // samples x trials ratios per layer
            assert_eq!(s["count"], 128, "{s}");
            let f = |k: &str| s[k].as_f64().unwrap();
            assert!(
                f("min") <= f("p01") && f("p01") <= f("p05") && f("p05") <= f("p50"),
                "{s}"
            );
            assert!(
                f("p50") <= f("p95") && f("p95") <= f("p99") && f("p99") <= f("max"),
                "{s}"
            );
            assert!(f("min") <= f("mean") && f("mean") <= f("max") && f("std") >= 0.0, "{s}");
            assert!(f("min") > 0.0, "ratios of norms are positive: {s}");
        }
        let w = &layer["within_epsilon"];
        for k in ["forward", "gradient"] {
            let x = w[k].as_f64().expect("within_epsilon fraction");
            assert!((0.0..=1.0).contains(&x), "{w}");
        }
        assert!(
            layer["predicted"].is_object() && layer["across_trials"].is_object(),
            "{layer}"
        );
    }

    // The same numbers, bit for bit, as the same spec and seed computed here.
    let (want_layers, want_checks) = expected_results(&job["spec"]);
    assert_same_json(&body["layers"], &Value::Array(want_layers.clone()), "layers");
    // Explicitly: forward/gradient statistics as f64 ==.
    for (got, want) in layers.iter().zip(&want_layers) {
        for pass in ["forward", "gradient"] {
            for k in STAT_KEYS {
                assert_eq!(
                    got[pass][k].as_f64(),
                    want[pass][k].as_f64(),
                    "layer {} {pass}.{k}",
                    got["layer"]
                );
            }
        }
    }

    let (status, checks) = app.get_json(&format!("/v1/jobs/{id}/bound-checks")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(checks["job_id"], id);
    assert_eq!(checks["status"], "succeeded");
    assert_same_json(&checks["bound_checks"], &Value::Array(want_checks), "bound_checks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_do_not_depend_on_the_servers_thread_count() {
    // One compute thread here, the global pool (all cores) in-process.
    let app = spawn_app_with(|c| c.threads = Some(1)).await;
    let spec = json!({
        "network": {"input_dim": 40, "widths": [25, 35, 20], "init": {"scheme": "glorot"}, "head": {"classes": 5}},
        "samples": 32, "trials": 6, "epsilon": 0.3, "delta": 0.1, "seed": 424242, "input": {"distribution": "sphere"}
    });
    let job = finished_job(&app, &spec).await;
    assert_eq!(job["spec"]["network"]["widths"], json!([25, 35, 20]));
    let (_, body) = app.layers(job["id"].as_str().unwrap()).await;
    let (want_layers, _) = expected_results(&job["spec"]);
    assert_same_json(&body["layers"], &Value::Array(want_layers), "layers");
    let widths: Vec<u64> = body["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["width"].as_u64().unwrap())
        .collect();
    assert_eq!(widths, vec![25, 35, 20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_checks_cover_every_bound_in_order() {
    let app = spawn_app().await;
    let job = finished_job(&app, &small_spec(12)).await;
    let (status, body) = app
        .get_json(&format!("/v1/jobs/{}/bound-checks", job["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let checks = body["bound_checks"].as_array().expect("bound_checks array");
    let names: Vec<&str> = checks.iter().map(|c| c["bound"].as_str().unwrap()).collect();
    assert_eq!(names, ["arpit2019", "exact_tail", "chernoff"]);
    for c in checks {
        assert!(
            ["holds", "violated", "inconclusive", "not_applicable"].contains(&c["verdict"].as_str().unwrap_or("")),
            "{c}"
        );
        assert_eq!(c["actual_width"], 30, "{c}");
        for key in ["required_width", "guaranteed_epsilon", "reason"] {
            assert!(c.get(key).is_some(), "bound check lacks {key}: {c}");
        }
        // Width 30 is far below every bound's requirement at epsilon 0.15.
        if let Some(req) = c["required_width"].as_u64() {
            assert!(req > 30, "{c}");
        }
        assert_eq!(
            job["summary"]["verdicts"][c["bound"].as_str().unwrap()],
            c["verdict"],
            "summary and check disagree"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_as_csv() {
    let app = spawn_app().await;
    let job = finished_job(&app, &small_spec(13)).await;
    let id = job["id"].as_str().unwrap();
    let r = app.get(&format!("/v1/jobs/{id}/layers?format=csv")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert!(ct.starts_with("text/csv"), "{ct}");
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 4, "{text}");
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(header[0], "layer");
    for col in [
        "width",
        "fan_in",
        "forward_mean",
        "forward_p99",
        "gradient_mean",
        "gradient_std",
    ] {
        assert!(header.contains(&col), "no column {col}: {}", lines[0]);
    }
    let (_, json_layers) = app.layers(id).await;
    for (i, line) in lines[1..].iter().enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "row {i}: {line}");
        assert_eq!(cells[0], (i + 1).to_string());
        let layer = &json_layers["layers"][i];
        for (name, pointer) in [
            ("forward_mean", "/forward/mean"),
            ("gradient_std", "/gradient/std"),
            ("weight_variance", "/weight_variance"),
        ] {
            let col = header.iter().position(|h| *h == name).unwrap();
            let cell: f64 = cells[col]
                .parse()
                .unwrap_or_else(|e| panic!("{name} {:?}: {e}", cells[col]));
            assert_eq!(
                Some(cell),
                layer.pointer(pointer).and_then(Value::as_f64),
                "row {i} {name}"
            );
        }
    }
    // format=json is the default's JSON.
    let (status, body) = app.get_json(&format!("/v1/jobs/{id}/layers?format=json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json_layers);

    let err = error_of(
        app.get(&format!("/v1/jobs/{id}/layers?format=xml")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(err["field"], "format");
    let err = error_of(
        app.get(&format!("/v1/jobs/{id}/layers?fmt=csv")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(err["field"], "fmt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_job_has_no_results_yet() {
    let app = spawn_app().await;
    let long = app.submit(&long_spec(1)).await;
    let queued = app.submit(&small_spec(2)).await;
    let long_id = long["id"].as_str().unwrap();
    app.wait_until_running(long_id).await;
    for (id, status) in [(long_id, "running"), (queued["id"].as_str().unwrap(), "queued")] {
        let (code, body) = app.layers(id).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["status"], status);
        assert_eq!(body["layers"], json!([]));
        let (code, body) = app.get_json(&format!("/v1/jobs/{id}/bound-checks")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["bound_checks"], json!([]));
        let r = app.get(&format!("/v1/jobs/{id}/layers?format=csv")).await;
        assert_eq!(
            r.text().await.unwrap().lines().count(),
            1,
            "CSV of no layers is the header only"
        );
    }
    // Progress moves while it runs and stays within the total.
    let a = app.job(long_id).await;
    let total = a["progress"]["total"].as_u64().unwrap();
    assert_eq!(total, 400 * 20 * 2);
    let b = app
        .wait_for(long_id, Duration::from_secs(10), "more progress", |j| {
            j["progress"]["done"].as_u64() > a["progress"]["done"].as_u64()
        })
        .await;
    assert!(b["progress"]["done"].as_u64().unwrap() < total);
    assert!(b["started_at"].is_string() && b["finished_at"].is_null(), "{b}");
}

/// The numbers of a JSON text, in order, parsed with the standard library (correctly rounded);
/// string contents are skipped.
fn numbers_in(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            let mut escaped = false;
            for (_, c) in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    break;
                }
            }
        } else if c == '-' || c.is_ascii_digit() {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_ascii_digit() || "+-.eE".contains(d) {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let token = &text[i..end];
            out.push((
                token.to_string(),
                token.parse().unwrap_or_else(|e| panic!("{token}: {e}")),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_numbers_are_the_computed_f64_bit_for_bit() {
    let app = spawn_app().await;
    let job = finished_job(&app, &small_spec(11)).await;
    let id = job["id"].as_str().unwrap();
    let spec = widthlab::spec::parse_spec(&job["spec"], &widthlab::spec::Limits::default()).unwrap();
    let sim = widthlab::sim::simulate(&spec, &widthlab::sim::Control::none()).unwrap();
    let report = widthlab::analysis::report::build_report(&spec, &sim);

    for (path, computed) in [
        ("layers", serde_json::to_value(&report.layers).unwrap()),
        ("bound-checks", serde_json::to_value(&report.bound_checks).unwrap()),
    ] {
        // Read the served text without a JSON parser in between.
        let served = app.get(&format!("/v1/jobs/{id}/{path}")).await.text().await.unwrap();
        let served = numbers_in(&served);
        let computed = numbers_in(&computed.to_string());
        assert_eq!(served.len(), computed.len(), "{path}: a different number of numbers");
        let off: Vec<String> = served
            .iter()
            .zip(&computed)
            .filter(|(s, c)| s.1.to_bits() != c.1.to_bits())
            .map(|(s, c)| format!("served {} computed {}", s.0, c.0))
            .collect();
        assert!(
            off.is_empty(),
            "{path}: {} of {} numbers differ, e.g. {:?}",
            off.len(),
            served.len(),
            &off[..off.len().min(3)]
        );
    }
}
