//! `kind: "worst_case"` over HTTP: rows as JSON and CSV with K_n, the figure, refused specs naming
//! their field, the wrong kind, progress and cancel, and `widthlab run` computing the same bits as
//! the server.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_same_json, error_of, small_spec, spawn_app};
use crate::structure::widthlab_run;

fn worst_case_spec(seed: u64) -> Value {
    // 10 networks per point: two units (8 + 2) per point, four points.
    json!({"kind": "worst_case",
           "network": {"input_dims_to_sweep": [3, 12], "widths_to_sweep": [16, 48], "depth": 2,
                       "init": {"scheme": "he", "fan": "out"}},
           "samples": 40, "trials": 10, "restarts": 3, "steps": 15, "seed": seed})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worst_case_job_serves_rows_csv_and_a_figure() {
    let app = spawn_app().await;
    let job = app.submit(&worst_case_spec(41)).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["spec"]["kind"], "worst_case");
    assert_eq!(job["spec"]["restarts"], 3);
    assert_eq!(job["spec"]["network"]["input_dims_to_sweep"], json!([3, 12]));
    assert_eq!(job["links"]["worst_case"], format!("/v1/jobs/{id}/worst_case"));
    // Per network: one unit for its draw, random inputs and spectral norms, two per layer.
    assert_eq!(job["progress"]["total"], 4 * 10 * (1 + 2 * 2));
    app.wait_for_status(&id, "succeeded", Duration::from_secs(120)).await;

    let (status, page) = app.get_json(&format!("/v1/jobs/{id}/worst_case")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for k in page["k_n"].as_array().expect("k_n per input dimension") {
        assert!((k["k_n"].as_f64().unwrap() - 1.0).abs() < 1e-6, "{k}");
    }
    assert_eq!(page["k_n"].as_array().map(Vec::len), Some(2));
    assert!(page["k_n_note"].as_str().unwrap().contains("identically 1"));
    let rows = page["layers"].as_array().expect("layers");
    assert_eq!(rows.len(), 4 * 2, "four points x two layers: {page}");
    for (i, row) in rows.iter().enumerate() {
        let (n0, m, layer) = ([3, 3, 12, 12][i / 2], [16, 48, 16, 48][i / 2], (i % 2 + 1) as u64);
        assert_eq!(row["input_dim"], n0);
        assert_eq!(row["width"], m);
        assert_eq!(row["layer"].as_u64(), Some(layer));
        assert_eq!(row["networks"], 10);
        assert_eq!(row["bracket_holds"], true, "{row}");
        assert_eq!(row["search_at_least_random"], true, "{row}");
        let f = |k: &str, s: &str| row[k][s].as_f64().unwrap();
        assert!(f("found_max", "max") <= f("certified_max", "max"), "{row}");
        assert!(f("found_max", "min") >= f("random_max", "min"), "{row}");
        assert!(f("found_min", "max") <= f("random_min", "max"), "{row}");
        let x = row["sqrt_input_dim_over_width"].as_f64().unwrap();
        assert!((x - (n0 as f64 / m as f64).sqrt()).abs() < 1e-15);
    }
    let summary = &app.job(&id).await["summary"];
    assert_eq!(summary["last_layer"].as_array().map(Vec::len), Some(4), "{summary}");
    assert_eq!(summary["every_bracket_holds"], true);

    let csv = app.get(&format!("/v1/jobs/{id}/worst_case?format=csv")).await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 8, "{text}");
    let header: Vec<&str> = lines[0].split(',').collect();
    for column in [
        "input_dim",
        "width",
        "layer",
        "found_max_mean",
        "random_max_mean",
        "found_min_mean",
        "certified_max_mean",
        "worst_deviation_mean",
        "random_deviation_mean",
        "bracket_holds",
    ] {
        assert!(header.contains(&column), "{column} missing: {}", lines[0]);
    }
    let at = |line: &str, column: &str| -> f64 {
        let k = header.iter().position(|h| *h == column).unwrap();
        line.split(',').nth(k).unwrap().parse().unwrap()
    };
    assert_eq!(at(lines[5], "layer"), 1.0);
    assert_eq!(at(lines[6], "layer"), 2.0);
    assert_eq!(
        at(lines[6], "found_max_mean"),
        rows[5]["found_max"]["mean"].as_f64().unwrap()
    );
    assert_eq!(
        at(lines[3], "certified_max_max"),
        rows[2]["certified_max"]["max"].as_f64().unwrap()
    );

    let svg = app.get(&format!("/v1/jobs/{id}/plot.svg")).await;
    assert_eq!(svg.status(), StatusCode::OK);
    let svg = svg.text().await.unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    let areas = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("plot-area"))
        .count();
    assert_eq!(areas, 2, "deviation and bracket panels");
    assert!(svg.contains("sqrt(n0 / m)") && svg.contains("m = 16") && svg.contains("m = 48"));
    assert!(svg.contains("certified upper bound"));

    // The other kinds' result routes refuse it, and /worst_case refuses theirs.
    let e = error_of(app.get(&format!("/v1/jobs/{id}/geometry")).await, StatusCode::CONFLICT).await;
    assert_eq!(e["code"], "wrong_kind");
    let norms = app.submit(&small_spec(42)).await;
    let nid = norms["id"].as_str().unwrap();
    let e = error_of(
        app.get(&format!("/v1/jobs/{nid}/worst_case")).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(e["code"], "wrong_kind");
    let e = error_of(
        app.get(&format!("/v1/jobs/{id}/worst_case?format=xml")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(e["field"], "format");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_worst_case_specs_name_their_field() {
    let app = spawn_app().await;
    let with = |key: &str, value: Value| {
        let mut v = worst_case_spec(1);
        v[key] = value;
        v
    };
    let with_network = |key: &str, value: Value| {
        let mut v = worst_case_spec(1);
        v["network"][key] = value;
        v
    };
    let cases = [
        (with("restarts", json!(0)), "restarts", "[1, 1024]"),
        (with("restarts", json!(5000)), "restarts", "[1, 1024]"),
        (with("restarts", json!("many")), "restarts", "[1, 1024]"),
        (with("steps", json!(0)), "steps", "[1, 100000]"),
        (with("steps", json!(-4)), "steps", "[1, 100000]"),
        (with("steps", json!(1.5)), "steps", "[1, 100000]"),
        (with("samples", json!(0)), "samples", "[1, "),
        (with("epsilon", json!(0.1)), "epsilon", "kind worst_case"),
        (with("method", json!("exact")), "method", "kind worst_case"),
        (with("precision", json!("f32")), "precision", "f64"),
        (
            with("input", json!({"distribution": "sphere"})),
            "input",
            "kind worst_case",
        ),
        (
            with_network("input_dims_to_sweep", json!([])),
            "network.input_dims_to_sweep",
            "between 1 and 64",
        ),
        (
            with_network("input_dims_to_sweep", json!([3, 0])),
            "network.input_dims_to_sweep[1]",
            "[1, ",
        ),
        (with_network("input_dim", json!(5)), "network.input_dim", "not both"),
        (
            with_network("widths_to_sweep", json!([4, 0])),
            "network.widths_to_sweep[1]",
            "[1, ",
        ),
        (
            with_network("widths", json!([4, 4])),
            "network.widths",
            "kind worst_case",
        ),
        (
            with_network("input_dims_to_sweep", json!((1..=40).collect::<Vec<i64>>())),
            "network.widths_to_sweep",
            "at most 64",
        ),
        (with_network("depth", json!(0)), "network.depth", "[1, 1000]"),
    ];
    for (spec, field, needle) in cases {
        let e = error_of(app.post_job(&spec).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(e["field"], field, "{spec}: {e}");
        assert!(e["message"].as_str().unwrap().contains(needle), "{field}: {e}");
    }
    // restarts, steps and input_dims_to_sweep belong to worst_case only.
    for (key, value) in [("restarts", json!(4)), ("steps", json!(4))] {
        let mut norms = small_spec(2);
        norms[key] = value;
        let e = error_of(app.post_job(&norms).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(e["field"], key);
        assert!(e["message"].as_str().unwrap().contains("worst_case"), "{e}");
    }
    let mut norms = small_spec(3);
    norms["network"]["input_dims_to_sweep"] = json!([3]);
    let e = error_of(app.post_job(&norms).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(e["field"], "network.input_dims_to_sweep");
    // Too much work for the server: refused before anything runs, naming steps.
    let mut huge = worst_case_spec(4);
    huge["network"]["widths_to_sweep"] = json!([4000]);
    huge["trials"] = json!(1000);
    huge["restarts"] = json!(1000);
    huge["steps"] = json!(100000);
    let e = error_of(app.post_job(&huge).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(e["field"], "steps", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widthlab_run_of_a_worst_case_job_equals_the_servers_bit_for_bit() {
    let body = json!({"preset": "worst-case-he", "network": {"input_dims_to_sweep": [4, 16], "widths_to_sweep": [24]},
                      "samples": 60, "trials": 9, "restarts": 3, "steps": 12});
    let local: Value = serde_json::from_str(&widthlab_run(&body, true)).expect("--json prints JSON");
    let app = spawn_app().await;
    let job = app.submit(&body).await;
    assert_eq!(job["preset"], "worst-case-he");
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded", Duration::from_secs(120)).await;
    let (status, served) = app.get_json(&format!("/v1/jobs/{id}/worst_case")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(local["layers"].as_array().map(Vec::len), Some(2 * 3));
    assert_same_json(&local["layers"], &served["layers"], "layers");
    assert_eq!(local["spec"], job["spec"]);
    let table = widthlab_run(&body, false);
    for needle in ["n0 = 4, m = 24", "n0 = 16, m = 24", "K_n", "cert", "rand max", "holds"] {
        assert!(table.contains(needle), "{needle} missing from\n{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worst_case_job_reports_progress_and_can_be_cancelled() {
    let app = spawn_app().await;
    // 64 networks of 6 layers of width 400, long searches: long enough to catch running.
    let spec = json!({"kind": "worst_case",
        "network": {"input_dim": 50, "depth": 6, "width": 400, "init": {"scheme": "he", "fan": "out"}},
        "samples": 100, "trials": 64, "restarts": 16, "steps": 400, "seed": 9});
    let job = app.submit(&spec).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["progress"]["total"], 64 * (1 + 2 * 6));
    app.wait_until_running(&id).await;
    let r = app.cancel(&id).await;
    assert!(r.status().is_success(), "cancel: {}", r.status());
    let done = app.wait_for_status(&id, "cancelled", Duration::from_secs(60)).await;
    assert!(done["progress"]["done"].as_u64().unwrap() < 64 * 13, "{done}");
    let (status, page) = app.get_json(&format!("/v1/jobs/{id}/worst_case")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["layers"], json!([]), "a cancelled job has no rows");
}
