//! `keep_samples` over HTTP: every per-sample ratio as CSV and NDJSON (the same numbers the
//! report's statistics were computed from, to the bit), the per-layer histogram with the exact
//! density, refused requests naming their field, and the limits.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_app};

fn kept_spec(keep: bool) -> Value {
    // 10 networks: two units (8 + 2), 20 inputs each, 3 layers.
    json!({"network": {"input_dim": 10, "depth": 3, "width": 24, "init": {"scheme": "he", "fan": "out"}},
           "samples": 20, "trials": 10, "method": "dense", "seed": 404, "keep_samples": keep})
}

fn column(text: &str, k: usize) -> Vec<f64> {
    text.lines()
        .skip(1)
        .map(|l| l.split(',').nth(k).unwrap().parse::<f64>().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_ratios_come_back_as_csv_and_ndjson_with_the_reports_numbers() {
    let app = spawn_app().await;
    let job = app.submit(&kept_spec(true)).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["spec"]["keep_samples"], true);
    app.wait_for_status(&id, "succeeded", Duration::from_secs(120)).await;
    let (_, layers) = app.layers(&id).await;
    let layers = layers["layers"].as_array().unwrap().clone();

    for (ratio, layer) in [("forward", 2usize), ("gradient", 1), ("forward", 3)] {
        let r = app
            .get(&format!("/v1/jobs/{id}/samples?layer={layer}&ratio={ratio}&format=csv"))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let text = r.text().await.unwrap();
        assert_eq!(
            text.lines().next(),
            Some(format!("trial,sample,layer,{ratio}").as_str())
        );
        assert_eq!(text.lines().count(), 1 + 10 * 20, "one row per network and input");
        // Rows in network order, inputs in order within a network.
        let trials = column(&text, 0);
        let samples = column(&text, 1);
        assert_eq!(
            (trials[0], samples[0], trials[199], samples[199]),
            (0.0, 0.0, 9.0, 19.0)
        );
        assert!(column(&text, 2).iter().all(|&l| l == layer as f64));
        let values = column(&text, 3);
        let stats = &layers[layer - 1][ratio];
        // The extremes are exact: the numbers read back to the f64 the report saw.
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(Some(min), stats["min"].as_f64(), "{ratio} layer {layer}");
        assert_eq!(Some(max), stats["max"].as_f64(), "{ratio} layer {layer}");
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let reported = stats["mean"].as_f64().unwrap();
        assert!((mean - reported).abs() <= 1e-12 * reported, "{mean} vs {reported}");
    }

    // NDJSON of every layer: 3 x 200 objects, the same numbers as the CSV.
    let r = app.get(&format!("/v1/jobs/{id}/samples?format=ndjson")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let rows: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3 * 200);
    let csv = app
        .get(&format!("/v1/jobs/{id}/samples?layer=2"))
        .await
        .text()
        .await
        .unwrap();
    let from_csv = column(&csv, 3);
    let layer2: Vec<f64> = rows
        .iter()
        .filter(|r| r["layer"] == 2)
        .map(|r| r["forward"].as_f64().unwrap())
        .collect();
    assert_eq!(layer2, from_csv);
    assert_eq!(
        rows[0],
        json!({"trial": 0, "sample": 0, "layer": 1, "forward": rows[0]["forward"]})
    );

    // The histogram: an SVG document with the exact law for the forward ratio.
    let r = app.get(&format!("/v1/jobs/{id}/histogram.svg?layer=2&bins=12")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    let svg = r.text().await.unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the histogram parses as XML");
    let text: String = doc.descendants().filter_map(|n| n.text()).collect::<Vec<_>>().join(" ");
    assert!(text.contains("exact law"), "{text}");
    assert!(text.contains("200 ratios (10 networks x 20 inputs"), "{text}");
    let bars = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("fill").is_some_and(|f| f != "#FFFFFF"))
        .count();
    assert!(bars >= 12, "12 bars drawn, found {bars} filled rects");
    let svg = app
        .get(&format!("/v1/jobs/{id}/histogram.svg?ratio=gradient&layer=1"))
        .await
        .text()
        .await
        .unwrap();
    roxmltree::Document::parse(&svg).expect("parses as XML");
    assert!(svg.contains("no exact density drawn"), "{svg}");

    // The job page links the samples and shows the last layer's histogram.
    let page = app.get(&format!("/jobs/{id}")).await.text().await.unwrap();
    assert!(page.contains(&format!("../v1/jobs/{id}/samples?format=csv")), "{page}");
    assert!(page.contains(&format!("../v1/jobs/{id}/histogram.svg?ratio=gradient&amp;layer=3")));

    // Refused requests name their parameter; nothing is served for them.
    for (query, field) in [
        ("layer=0", "layer"),
        ("layer=4", "layer"),
        ("layer=x", "layer"),
        ("ratio=both", "ratio"),
        ("format=xml", "format"),
    ] {
        let body = error_of(
            app.get(&format!("/v1/jobs/{id}/samples?{query}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    let body = error_of(
        app.get(&format!("/v1/jobs/{id}/histogram.svg?bins=3")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["field"], "bins", "{body}");
    error_of(
        app.get(&format!("/v1/jobs/{id}/samples?lyr=1")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Deleting the job deletes what it kept.
    assert_eq!(app.delete(&id).await.status(), StatusCode::NO_CONTENT);
    error_of(app.get(&format!("/v1/jobs/{id}/samples")).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_are_kept_only_when_asked_and_within_the_limit() {
    let app = spawn_app().await;
    let job = app.submit(&kept_spec(false)).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["spec"]["keep_samples"], false);
    app.wait_for_status(&id, "succeeded", Duration::from_secs(120)).await;
    let body = error_of(app.get(&format!("/v1/jobs/{id}/samples")).await, StatusCode::CONFLICT).await;
    assert_eq!(body["code"], "samples_not_kept", "{body}");
    let body = error_of(
        app.get(&format!("/v1/jobs/{id}/histogram.svg")).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(body["code"], "samples_not_kept", "{body}");
    // No link to samples on its page.
    let page = app.get(&format!("/jobs/{id}")).await.text().await.unwrap();
    assert!(!page.contains("/samples?"), "{page}");

    let before = app.all_jobs().await.len();
    // 1000 x 2000 x 3 x 2 = 12e6 ratios: over the default 4e6.
    let mut big = kept_spec(true);
    big["trials"] = json!(1000);
    big["samples"] = json!(2000);
    let body = error_of(app.post_job(&big).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["field"], "keep_samples", "{body}");
    assert!(body["message"].as_str().unwrap().contains("12000000"), "{body}");
    // Only norms jobs keep samples.
    let sweep = json!({"kind": "width_sweep", "keep_samples": true,
        "network": {"input_dim": 10, "depth": 2, "widths_to_sweep": [8, 16], "init": {"scheme": "he", "fan": "out"}}});
    let body = error_of(app.post_job(&sweep).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["field"], "keep_samples", "{body}");
    let body = error_of(
        app.post_job(
            &json!({"network": {"input_dim": 3, "depth": 1, "width": 4, "init": {"scheme": "he"}}, "keep_samples": 1}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["field"], "keep_samples", "{body}");
    assert_eq!(app.all_jobs().await.len(), before, "refused specs store nothing");
}
