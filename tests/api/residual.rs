//! Residual networks (`network.architecture: "residual"`) over HTTP: a `norms` job reports per
//! block with its predictions, CSV and figure; bound verdicts are not applicable; refused specs
//! name their field; a sweep over the number of blocks equals `widthlab run` bit for bit.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_same_json, error_of, spawn_app};
use crate::structure::widthlab_run;

fn residual_spec(seed: u64) -> Value {
    // 10 networks: two units (8 + 2); B = 12 blocks of hidden width 24 on a stream of 16.
    json!({"network": {"input_dim": 16, "architecture": "residual", "blocks": 12, "width": 24,
                       "weight_norm": {"gain": "proposed", "direction": "gaussian"}},
           "samples": 20, "trials": 10, "seed": seed})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_residual_norms_job_reports_per_block_with_csv_and_a_figure() {
    let app = spawn_app().await;
    let job = app.submit(&residual_spec(41)).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["spec"]["network"]["architecture"], "residual");
    assert_eq!(job["spec"]["network"]["weight_norm"]["gain"], "proposed");
    assert_eq!(job["spec"]["network"]["widths"], json!(vec![24; 12]));
    assert_eq!(
        job["stamp"]["method"], "dense",
        "auto runs residual networks on the dense engine"
    );
    assert_eq!(job["progress"]["total"], 10 * 12 * 2, "one unit per block of each pass");
    let done = app.wait_for_status(&id, "succeeded", Duration::from_secs(120)).await;
    for bound in ["arpit2019", "exact_tail", "chernoff"] {
        assert_eq!(done["summary"]["verdicts"][bound], "not_applicable", "{done}");
    }
    assert!(done["summary"]["variance_rule"].as_str().unwrap().contains("residual"));

    let (status, page) = app.layers(&id).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let layers = page["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 12);
    for (b, l) in (1..).zip(layers) {
        assert_eq!(l["layer"], b);
        assert_eq!(l["width"], 24, "the block's hidden width");
        assert_eq!(l["fan_in"], 16, "the stream's width");
        // E[r_b^2] = (1 + 1/B)^b exactly; the backward ratio's mean field (1 + 1/B)^(B - b + 1).
        let want = (1.0f64 + 1.0 / 12.0).powi(b);
        let got = l["predicted"]["forward"]["mean_square"].as_f64().unwrap();
        assert!((got / want - 1.0).abs() < 1e-12, "block {b}: {got} vs {want}");
        let rms = l["predicted"]["forward"]["mean_field"]["mean"].as_f64().unwrap();
        assert!((rms / want.sqrt() - 1.0).abs() < 1e-12);
        let back = l["predicted"]["gradient"]["mean_square"].as_f64().unwrap();
        let want_back = (1.0f64 + 1.0 / 12.0).powi(13 - b);
        assert!(
            (back / want_back - 1.0).abs() < 1e-12,
            "block {b}: {back} vs {want_back}"
        );
        // The log-normal mean sits below the root mean square.
        assert!(l["predicted"]["forward"]["mean"].as_f64().unwrap() < rms);
        assert_eq!(l["forward"]["count"], 200);
        assert!(l["gradient"]["mean"].as_f64().unwrap() > 0.0);
    }
    let (_, checks) = app.get_json(&format!("/v1/jobs/{id}/bound-checks")).await;
    for c in checks["bound_checks"].as_array().unwrap() {
        assert_eq!(c["verdict"], "not_applicable", "{c}");
        assert!(c["reason"].as_str().unwrap().contains("residual"), "{c}");
        assert_eq!(c["guaranteed_epsilon"], Value::Null);
    }

    let csv = app.get(&format!("/v1/jobs/{id}/layers?format=csv")).await;
    assert_eq!(csv.status(), StatusCode::OK);
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 12);
    let header: Vec<&str> = lines[0].split(',').collect();
    let at = |line: &str, column: &str| -> f64 {
        let k = header
            .iter()
            .position(|h| *h == column)
            .unwrap_or_else(|| panic!("{column}"));
        line.split(',').nth(k).unwrap().parse().unwrap()
    };
    let last = lines[12];
    assert_eq!(at(last, "layer"), 12.0);
    let rms = at(last, "predicted_forward_mean_field_mean");
    assert!((rms - (13.0f64 / 12.0).powi(6)).abs() < 1e-12, "{rms}");
    assert_eq!(
        at(last, "forward_mean"),
        layers[11]["forward"]["mean"].as_f64().unwrap()
    );

    let svg = app.get(&format!("/v1/jobs/{id}/plot.svg")).await;
    assert_eq!(svg.status(), StatusCode::OK);
    let svg = svg.text().await.unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    let areas = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("plot-area"))
        .count();
    assert_eq!(areas, 2, "forward and backward panels");
    for needle in [
        "block b",
        "ratio by block",
        "||h^b|| / ||x||",
        "||dL/dh^(b-1)|| / ||dL/dh^B||",
    ] {
        assert!(svg.contains(needle), "{needle} missing from the figure");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_residual_specs_name_their_field() {
    let app = spawn_app().await;
    let with = |path: &[&str], value: Value| {
        let mut v = residual_spec(1);
        let mut cur = &mut v;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        cur[path[path.len() - 1]] = value;
        v
    };
    let without_blocks = {
        let mut v = residual_spec(1);
        v["network"].as_object_mut().unwrap().remove("blocks");
        v
    };
    let plain_with_blocks = json!({"network": {"input_dim": 16, "depth": 3, "width": 8, "blocks": 4,
                                               "init": {"scheme": "he", "fan": "out"}}});
    let plain_proposed = json!({"network": {"input_dim": 16, "depth": 3, "width": 8,
                                            "weight_norm": {"gain": "proposed"}}});
    let mut geometry = residual_spec(1);
    geometry["kind"] = json!("geometry");
    geometry.as_object_mut().unwrap().remove("samples");
    let cases = [
        (with(&["network", "blocks"], json!(0)), "network.blocks", "[1, 1000]"),
        (with(&["network", "blocks"], json!(1001)), "network.blocks", "[1, 1000]"),
        (with(&["network", "blocks"], json!("many")), "network.blocks", "integer"),
        (without_blocks, "network.blocks", "required for architecture residual"),
        (with(&["network", "depth"], json!(3)), "network.depth", "blocks"),
        (with(&["network", "width"], json!(0)), "network.width", "[1, 1000000]"),
        (
            with(&["network", "architecture"], json!("dense")),
            "network.architecture",
            "\"residual\"",
        ),
        (
            with(&["network", "weight_norm", "gain"], json!("derived")),
            "network.weight_norm.gain",
            "\"proposed\"",
        ),
        (
            with(&["network", "weight_norm", "gain"], json!(0)),
            "network.weight_norm.gain",
            "(0, 1000]",
        ),
        (
            with(&["network", "weight_norm", "gain"], json!([1.0, -2.0])),
            "network.weight_norm.gain[1]",
            "(0, 1000]",
        ),
        (
            with(&["network", "weight_norm", "gain"], json!([1.0, 2.0, 3.0])),
            "network.weight_norm.gain",
            "pair",
        ),
        (with(&["method"], json!("exact")), "method", "residual"),
        (
            with(&["network", "blocks_to_sweep"], json!([2, 4])),
            "network.blocks_to_sweep",
            "width_sweep",
        ),
        (plain_with_blocks, "network.blocks", "architecture plain"),
        (plain_proposed, "network.weight_norm.gain", "residual"),
        (geometry, "network.architecture", "norms and width_sweep"),
        // 1000 blocks of hidden width 10^5 on a stream of 10^4: refused on its estimates.
        (
            json!({"network": {"input_dim": 10000, "architecture": "residual", "blocks": 1000, "width": 100000,
                               "weight_norm": {"gain": "proposed"}}, "samples": 10}),
            "network.width",
            "estimated memory",
        ),
    ];
    for (spec, field, needle) in cases {
        let e = error_of(app.post_job(&spec).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(e["field"], field, "{spec}: {e}");
        assert!(e["message"].as_str().unwrap().contains(needle), "{field}: {e}");
    }
    let sweep = |network: Value| json!({"kind": "width_sweep", "network": network, "samples": 8});
    let net = |extra: Value| {
        let mut n = json!({"input_dim": 8, "architecture": "residual", "widths_to_sweep": [8],
                           "weight_norm": {"gain": "naive"}});
        for (k, v) in extra.as_object().unwrap() {
            n[k] = v.clone();
        }
        n
    };
    let cases = [
        (
            sweep(net(json!({"blocks_to_sweep": [2, 0]}))),
            "network.blocks_to_sweep[1]",
        ),
        (sweep(net(json!({"blocks_to_sweep": []}))), "network.blocks_to_sweep"),
        (
            sweep(net(json!({"blocks": 2, "blocks_to_sweep": [2]}))),
            "network.blocks",
        ),
        (sweep(net(json!({"depths_to_sweep": [2]}))), "network.depths_to_sweep"),
        (sweep(net(json!({}))), "network.blocks"),
    ];
    for (spec, field) in cases {
        let e = error_of(app.post_job(&spec).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(e["field"], field, "{spec}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widthlab_run_of_a_blocks_sweep_equals_the_servers_bit_for_bit() {
    let body = json!({"preset": "acb2019-resnet-blocks",
                      "network": {"input_dim": 20, "widths_to_sweep": [20], "blocks_to_sweep": [1, 4, 16]},
                      "samples": 24, "trials": 3});
    let local: Value = serde_json::from_str(&widthlab_run(&body, true)).expect("--json prints JSON");
    let app = spawn_app().await;
    let job = app.submit(&body).await;
    assert_eq!(job["preset"], "acb2019-resnet-blocks");
    assert_eq!(job["spec"]["network"]["blocks_to_sweep"], json!([1, 4, 16]));
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded", Duration::from_secs(120)).await;
    let (status, served) = app.get_json(&format!("/v1/jobs/{id}/sweep")).await;
    assert_eq!(status, StatusCode::OK);
    let points = served["points"].as_array().expect("points");
    assert_eq!(points.len(), 3);
    assert_same_json(&local["points"], &served["points"], "points");
    for (p, blocks) in points.iter().zip([1i32, 4, 16]) {
        let r = &p["residual"];
        assert_eq!(r["blocks"], blocks);
        assert_eq!(p["bounds"], json!([]), "no bound claims on residual networks");
        // (1 + 1/B)^(B/2) at the output, and the same for the backward ratio at the input.
        let want = (1.0 + 1.0 / f64::from(blocks)).powf(f64::from(blocks) / 2.0);
        assert!(
            (r["predicted_forward_rms"].as_f64().unwrap() - want).abs() < 1e-12,
            "{r}"
        );
        assert!(
            (r["predicted_backward_rms"].as_f64().unwrap() - want).abs() < 1e-12,
            "{r}"
        );
        assert!(r["forward_rms"].as_f64().unwrap() >= r["forward_mean"].as_f64().unwrap());
    }
    let csv = app
        .get(&format!("/v1/jobs/{id}/sweep?format=csv"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        csv.lines().next().unwrap().contains("residual_predicted_forward_rms"),
        "{csv}"
    );
    let svg = app.get(&format!("/v1/jobs/{id}/plot.svg")).await;
    assert_eq!(svg.status(), StatusCode::OK);
    roxmltree::Document::parse(&svg.text().await.unwrap()).expect("the SVG is XML");
    let table = widthlab_run(&body, false);
    for needle in ["blocks", "fwd rms", "pred rms", "bwd rms"] {
        assert!(table.contains(needle), "{needle} missing from\n{table}");
    }
}
