//! `kind: "geometry"` over HTTP: rows as JSON and CSV, the figure, refused specs naming their
//! field, the wrong kind, and `widthlab run` computing the same bits as the server.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_same_json, error_of, small_spec, spawn_app};
use crate::structure::widthlab_run;

fn geometry_spec(seed: u64) -> Value {
    // 10 networks: two units (8 + 2).
    json!({"kind": "geometry",
           "network": {"input_dim": 10, "depth": 3, "width": 30, "init": {"scheme": "he", "fan": "out"}},
           "pairs": 8, "angles": [30, 90], "trials": 10, "seed": seed})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_geometry_job_serves_rows_csv_and_a_figure() {
    let app = spawn_app().await;
    let job = app.submit(&geometry_spec(31)).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["spec"]["kind"], "geometry");
    assert_eq!(job["spec"]["pairs"], 8);
    assert_eq!(job["links"]["geometry"], format!("/v1/jobs/{id}/geometry"));
    app.wait_for_status(&id, "succeeded", Duration::from_secs(120)).await;

    let (status, page) = app.get_json(&format!("/v1/jobs/{id}/geometry")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let rows = page["layers"].as_array().expect("layers");
    assert_eq!(rows.len(), 2 * 4, "two angles x layers 0..3: {page}");
    for (i, row) in rows.iter().enumerate() {
        let (angle, layer) = ([30.0, 90.0][i / 4], (i % 4) as u64);
        assert_eq!(row["angle_deg"].as_f64(), Some(angle));
        assert_eq!(row["layer"].as_u64(), Some(layer));
        assert_eq!(row["networks"], 10);
        assert_eq!(row["pairs"], 80);
        let mean = row["cosine"]["mean"].as_f64().unwrap();
        let predicted = row["predicted"]["cosine"].as_f64().unwrap();
        if layer == 0 {
            assert!((mean - angle.to_radians().cos()).abs() < 1e-12, "{row}");
            assert_eq!(row["distance_ratio"]["mean"].as_f64(), Some(1.0));
        } else {
            // Width 30: the spread is visible, and the mean is not far from the map.
            assert!(row["cosine"]["std"].as_f64().unwrap() > 0.01, "{row}");
            assert!(row["cosine"]["standard_error"].as_f64().unwrap() > 0.0, "{row}");
            assert!((mean - predicted).abs() < 0.2, "{row}");
        }
    }
    // The summary names the last layer of every angle.
    let summary = &app.job(&id).await["summary"];
    assert_eq!(summary["last_layer"].as_array().map(Vec::len), Some(2), "{summary}");

    let csv = app.get(&format!("/v1/jobs/{id}/geometry?format=csv")).await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 8, "{text}");
    let header: Vec<&str> = lines[0].split(',').collect();
    for column in [
        "angle_deg",
        "layer",
        "cosine_mean",
        "cosine_std",
        "cosine_standard_error",
        "predicted_cosine",
        "distance_ratio_mean",
        "predicted_distance_ratio",
    ] {
        assert!(header.contains(&column), "{column} missing: {}", lines[0]);
    }
    let at = |line: &str, column: &str| -> f64 {
        let k = header.iter().position(|h| *h == column).unwrap();
        line.split(',').nth(k).unwrap().parse().unwrap()
    };
    assert_eq!(at(lines[6], "layer"), 1.0);
    assert_eq!(at(lines[6], "cosine_mean"), rows[5]["cosine"]["mean"].as_f64().unwrap());

    let svg = app.get(&format!("/v1/jobs/{id}/plot.svg")).await;
    assert_eq!(svg.status(), StatusCode::OK);
    let svg = svg.text().await.unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    let areas = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("plot-area"))
        .count();
    assert_eq!(areas, 2, "cosine and distance panels");
    assert!(svg.contains("30 deg") && svg.contains("90 deg"), "angles in the legend");

    // The other kinds' result routes refuse it, and /geometry refuses theirs.
    let e = error_of(app.get(&format!("/v1/jobs/{id}/sweep")).await, StatusCode::CONFLICT).await;
    assert_eq!(e["code"], "wrong_kind");
    let norms = app.submit(&small_spec(32)).await;
    let nid = norms["id"].as_str().unwrap();
    let e = error_of(app.get(&format!("/v1/jobs/{nid}/geometry")).await, StatusCode::CONFLICT).await;
    assert_eq!(e["code"], "wrong_kind");
    let e = error_of(
        app.get(&format!("/v1/jobs/{id}/geometry?format=xml")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(e["field"], "format");
}

/// A network whose signal overflows (orthogonal gain 1000 over 200 layers) stores null
/// predictions and undefined moments; its rows, CSV and figure still read back (the figure was
/// a 500: a stored null read as f64).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_geometry_job_serves_its_rows_and_figure() {
    let app = spawn_app().await;
    let job = app
        .submit(&json!({"kind": "geometry",
            "network": {"input_dim": 10, "depth": 200, "width": 10, "init": {"scheme": "orthogonal", "gain": 1000}},
            "pairs": 2, "angles": [90], "seed": 5}))
        .await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded", Duration::from_secs(60)).await;
    let (status, rows) = app.get_json(&format!("/v1/jobs/{id}/geometry")).await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    for path in ["plot.svg", "geometry?format=csv"] {
        let r = app.get(&format!("/v1/jobs/{id}/{path}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_geometry_specs_name_their_field() {
    let app = spawn_app().await;
    let with = |key: &str, value: Value| {
        let mut v = geometry_spec(1);
        v[key] = value;
        v
    };
    let cases = [
        (with("angles", json!([30, 0])), "angles[1]", "[0.01, 180]"),
        (with("angles", json!([181])), "angles[0]", "[0.01, 180]"),
        (with("angles", json!([-5])), "angles[0]", "[0.01, 180]"),
        // Below 0.01 degrees the pair's inputs are equal to rounding (1e-8 once stored a null
        // prediction the figure could not read: a 500).
        (with("angles", json!([1e-8])), "angles[0]", "[0.01, 180]"),
        (with("angles", json!([])), "angles", "between 1 and 16"),
        (with("angles", json!(vec![10; 17])), "angles", "between 1 and 16"),
        (with("angles", json!("wide")), "angles", "angles in degrees"),
        (with("pairs", json!(0)), "pairs", "[1, "),
        (with("pairs", json!(10_000_000)), "pairs", "max_samples"),
        (with("samples", json!(100)), "samples", "kind geometry"),
        (with("epsilon", json!(0.1)), "epsilon", "kind geometry"),
        (with("method", json!("exact")), "method", "kind geometry"),
    ];
    for (spec, field, needle) in cases {
        let e = error_of(app.post_job(&spec).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(e["field"], field, "{spec}: {e}");
        assert!(e["message"].as_str().unwrap().contains(needle), "{field}: {e}");
    }
    // pairs and angles belong to geometry only.
    let mut norms = small_spec(2);
    norms["pairs"] = json!(4);
    let e = error_of(app.post_job(&norms).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(e["field"], "pairs");
    // One-dimensional inputs cannot hold an angle.
    let mut flat = geometry_spec(3);
    flat["network"]["input_dim"] = json!(1);
    let e = error_of(app.post_job(&flat).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(e["field"], "network.input_dim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widthlab_run_of_a_geometry_job_equals_the_servers_bit_for_bit() {
    let body = json!({"preset": "geometry-he-angles", "network": {"depth": 4, "width": 40}, "pairs": 6, "trials": 11});
    let local: Value = serde_json::from_str(&widthlab_run(&body, true)).expect("--json prints JSON");
    let app = spawn_app().await;
    let job = app.submit(&body).await;
    assert_eq!(job["preset"], "geometry-he-angles");
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded", Duration::from_secs(120)).await;
    let (status, served) = app.get_json(&format!("/v1/jobs/{id}/geometry")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(local["layers"].as_array().map(Vec::len), Some(5 * 5));
    assert_same_json(&local["layers"], &served["layers"], "layers");
    assert_eq!(local["spec"], job["spec"]);
    let table = widthlab_run(&body, false);
    for needle in ["angle 10 deg", "angle 120 deg", "cos", "pred", "dist"] {
        assert!(table.contains(needle), "{needle} missing from\n{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_geometry_job_reports_progress_and_can_be_cancelled() {
    let app = spawn_app().await;
    // 64 networks of 20 layers of width 1500: long enough to catch running.
    let spec = json!({"kind": "geometry",
        "network": {"input_dim": 20, "depth": 20, "width": 1500, "init": {"scheme": "he", "fan": "out"}},
        "pairs": 16, "trials": 64, "seed": 9});
    let job = app.submit(&spec).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(
        job["progress"]["total"],
        64 * 20,
        "one progress unit per layer of each network"
    );
    app.wait_until_running(&id).await;
    let r = app.cancel(&id).await;
    assert!(r.status().is_success(), "cancel: {}", r.status());
    let done = app.wait_for_status(&id, "cancelled", Duration::from_secs(60)).await;
    assert!(done["progress"]["done"].as_u64().unwrap() < 64 * 20, "{done}");
    let (status, page) = app.get_json(&format!("/v1/jobs/{id}/geometry")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["layers"], json!([]), "a cancelled job has no rows");
}
