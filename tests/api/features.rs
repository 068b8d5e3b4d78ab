//! What users look at: presets, sweeps, live progress, figures, CSV, OpenAPI, metrics, tokens.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_of, small_spec, spawn_app, spawn_app_with};

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_are_listed_with_their_figures() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/v1/presets").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["presets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "arpit2019-min-width-small",
            "arpit2019-min-width",
            "arpit2019-fig1",
            "arpit2019-fig1-glorot",
            "arpit2019-fig3-wn-naive",
            "arpit2019-fig4-wn-derived",
            "arpit2019-fig6",
            "acb2019-wn-fc-naive",
            "acb2019-wn-fc-proposed",
            "acb2019-resnet-naive",
            "acb2019-resnet-proposed",
            "acb2019-resnet-blocks",
            "geometry-he-angles",
            "worst-case-he"
        ]
    );
    for p in body["presets"].as_array().unwrap() {
        assert!(p["figure"].as_str().unwrap().contains("Figure"), "{p}");
        assert!(p["description"].as_str().unwrap().len() > 60, "{p}");
    }
    // An unknown preset names the field and the allowed names.
    let e = error_of(
        app.post_job(&json!({"preset": "fig99"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(e["field"], "preset");
    assert!(e["message"].as_str().unwrap().contains("arpit2019-fig6"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glorot_preset_decays_by_about_two_to_the_minus_half_per_layer() {
    let app = spawn_app().await;
    let job = app.submit(&json!({"preset": "arpit2019-fig1-glorot"})).await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["spec"]["network"]["init"]["scheme"], "glorot_paper");
    assert_eq!(job["spec"]["samples"], 2000);
    app.wait_for_status(id, "succeeded", Duration::from_secs(60)).await;
    let (_, layers) = app.layers(id).await;
    let means: Vec<f64> = layers["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["forward"]["mean"].as_f64().unwrap())
        .collect();
    // One network of width 100: each layer's factor is E sqrt(X) = 0.7027 up to the network's
    // own noise, of order sqrt(5/(4 m)) = 0.11 per layer (docs/theory.md section 5.1). The geometric
    // mean of the 9 ratios averages it: within 3 x 0.11 / sqrt(9) = 0.11 of 0.7027.
    let geometric = (means[9] / means[0]).powf(1.0 / 9.0);
    assert!(
        (geometric - 0.7027).abs() < 0.11,
        "per-layer decay {geometric}, means {means:?}"
    );
    assert!(
        means.windows(2).all(|w| w[1] < w[0]),
        "forward means must decrease: {means:?}"
    );
    // And the predicted curve stored beside them is the exact 2^(-l/2)-like law.
    let predicted: Vec<f64> = layers["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["predicted"]["forward"]["mean"].as_f64().unwrap())
        .collect();
    assert!(rel(predicted[1] / predicted[0], 0.70267) < 1e-4, "{predicted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fig6_sweep_stores_the_guaranteed_epsilons_and_deviations_fall_with_width() {
    let app = spawn_app().await;
    // f32 halves the time; the bounds depend only on (epsilon, delta, L, N) and the width.
    let job = app
        .submit(&json!({"preset": "arpit2019-fig6", "precision": "f32"}))
        .await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["kind"], "width_sweep");
    assert_eq!(job["progress"]["total"], 4);
    let done = app.wait_for_status(id, "succeeded", Duration::from_secs(600)).await;
    assert_eq!(done["progress"]["done"], 4);
    let (status, sweep) = app.get_json(&format!("/v1/jobs/{id}/sweep")).await;
    assert_eq!(status, StatusCode::OK);
    let points = sweep["points"].as_array().unwrap();
    let widths: Vec<u64> = points.iter().map(|p| p["width"].as_u64().unwrap()).collect();
    assert_eq!(widths, [500, 1000, 2000, 4000]);
    for (p, want) in points.iter().zip([1.950933, 0.743145, 0.325388, 0.152397]) {
        let got = p["guaranteed_epsilon"]["arpit2019"].as_f64().unwrap();
        assert!((got - want).abs() <= 5e-7, "width {}: {got} vs {want}", p["width"]);
    }
    let dev: Vec<f64> = points
        .iter()
        .map(|p| p["forward_deviation"]["mean"].as_f64().unwrap())
        .collect();
    // One network per point (the paper's figure): each point carries that network's own drift,
    // of the same order as the deviation itself (sqrt(5/m) per layer), so neighbouring widths
    // can swap. The trend is what the figure shows: |1 - r| ~ m^(-1/2), i.e. a log-log slope of
    // -1/2 and a factor 2.8 from 500 to 4000. Asserted: the fitted slope lies in [-0.85, -0.25]
    // and the deviation at 4000 is below half of that at 500.
    let xs: Vec<f64> = widths.iter().map(|&w| (w as f64).ln()).collect();
    let ys: Vec<f64> = dev.iter().map(|d| d.ln()).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / 4.0, ys.iter().sum::<f64>() / 4.0);
    let slope = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum::<f64>()
        / xs.iter().map(|x| (x - mx) * (x - mx)).sum::<f64>();
    assert!(
        (-0.85..=-0.25).contains(&slope),
        "log-log slope {slope}, deviations {dev:?}"
    );
    assert!(
        dev[3] < dev[0] / 2.0,
        "pooled forward mean deviation must fall with width: {dev:?}"
    );
    // docs/theory.md section 9: about 0.03-0.04 at m = 4000 in the paper's setting; the pooled mean
    // over 20000 ratios has negligible sampling error, network noise is of order 10-20%.
    assert!(dev[3] > 0.015 && dev[3] < 0.05, "{dev:?}");
    // The frontier row carries every bound's minimal width beside the empirical one.
    let frontier = &sweep["frontier"][0];
    assert_eq!(frontier["depth"], 10);
    assert_eq!(frontier["bounds"][0]["bound"], "arpit2019");
    assert_eq!(frontier["bounds"][0]["min_width"], 4061);

    // CSV round trip: header + one row per point, same numbers as the JSON.
    let csv = app
        .get(&format!("/v1/jobs/{id}/sweep?format=csv"))
        .await
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.trim_end().lines().collect();
    assert_eq!(lines.len(), 1 + points.len());
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    for (line, p) in lines[1..].iter().zip(points) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len());
        assert_eq!(
            cells[col("width")].parse::<u64>().unwrap(),
            p["width"].as_u64().unwrap()
        );
        assert_eq!(
            cells[col("forward_deviation_mean")].parse::<f64>().unwrap(),
            p["forward_deviation"]["mean"].as_f64().unwrap()
        );
        assert_eq!(
            cells[col("guaranteed_epsilon_arpit2019")].parse::<f64>().unwrap(),
            p["guaranteed_epsilon"]["arpit2019"].as_f64().unwrap()
        );
    }

    // The figure: deviation vs width with each bound's curve.
    let svg = app.get(&format!("/v1/jobs/{id}/plot.svg")).await.text().await.unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    let text: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert!(text.iter().any(|t| t.contains("width m")), "{text:?}");
    assert!(
        text.iter().any(|t| t.contains("arpit2019: guaranteed epsilon")),
        "{text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn width_by_depth_map_has_a_frontier_per_depth_and_a_heat_map() {
    let app = spawn_app().await;
    let spec = json!({
        "kind": "width_sweep",
        "network": {"input_dim": 30, "widths_to_sweep": [20, 80], "depths_to_sweep": [2, 4],
                    "init": {"scheme": "he", "fan": "out"}},
        "samples": 1, "trials": 400, "epsilon": 0.9, "delta": 0.2, "seed": 5
    });
    let job = app.submit(&spec).await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded", Duration::from_secs(60)).await;
    let (_, sweep) = app.get_json(&format!("/v1/jobs/{id}/sweep")).await;
    assert_eq!(sweep["points"].as_array().unwrap().len(), 4);
    let frontier = sweep["frontier"].as_array().unwrap();
    assert_eq!(
        frontier
            .iter()
            .map(|r| r["depth"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 4]
    );
    for row in frontier {
        // The empirical frontier is the smallest swept width whose observed probability reaches 1 - delta.
        let depth = row["depth"].as_u64().unwrap();
        let at_depth: Vec<&Value> = sweep["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["depth"] == depth)
            .collect();
        let want = at_depth
            .iter()
            .find(|p| p["all_within"]["probability"].as_f64().unwrap() >= 0.8)
            .map(|p| p["width"].clone());
        assert_eq!(row["empirical_min_width"], want.unwrap_or(Value::Null), "{row}");
        assert_eq!(row["bounds"].as_array().unwrap().len(), 3);
    }
    let svg = app.get(&format!("/v1/jobs/{id}/plot.svg")).await.text().await.unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    let text: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert!(
        text.iter().any(|t| t.contains("depth L")) && text.iter().any(|t| t.contains("empirical frontier")),
        "{text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn norms_figure_parses_and_names_its_axes() {
    let app = spawn_app().await;
    let job = app.submit(&small_spec(3)).await;
    let id = job["id"].as_str().unwrap();
    // Before it has results the figure is a 409 (or the job already finished).
    app.wait_for_status(id, "succeeded", Duration::from_secs(60)).await;
    let r = app.get(&format!("/v1/jobs/{id}/plot.svg")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    let svg = r.text().await.unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let text: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    for label in [
        "layer l",
        "||h^l|| / ||x||",
        "forward ratio by layer",
        "gradient ratio by layer",
        "predicted mean",
    ] {
        assert!(text.iter().any(|t| t.contains(label)), "missing {label:?} in {text:?}");
    }
    assert!(text.iter().any(|t| t.contains(&id[..8])), "the title names the job");
    // The index page links to it, relatively (it may be served under a sub-path).
    let html = app.get("/").await.text().await.unwrap();
    assert!(html.contains(&format!("href=\"v1/jobs/{id}/plot.svg\"")), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_progress_then_one_final_status() {
    let app = spawn_app().await;
    // About a second of work in 40 layer passes, so progress events are seen.
    let spec = json!({
        "network": {"input_dim": 200, "depth": 20, "width": 200, "init": {"scheme": "he", "fan": "out"}},
        "samples": 200, "trials": 40, "seed": 8, "method": "dense"
    });
    let job = app.submit(&spec).await;
    let id = job["id"].as_str().unwrap();
    let body = app.get(&format!("/v1/jobs/{id}/events")).await.text().await.unwrap();
    let events: Vec<(&str, Value)> = body
        .split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name, serde_json::from_str(data).unwrap()))
        })
        .collect();
    let progress: Vec<i64> = events
        .iter()
        .filter(|(n, _)| *n == "progress")
        .map(|(_, d)| d["done"].as_i64().unwrap())
        .collect();
    assert!(progress.len() >= 2, "several progress events: {body}");
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {progress:?}"
    );
    let finals: Vec<&Value> = events.iter().filter(|(n, _)| *n == "status").map(|(_, d)| d).collect();
    assert_eq!(finals.len(), 1, "{body}");
    assert_eq!(events.last().unwrap().0, "status", "the final event is last");
    assert_eq!(finals[0]["status"], "succeeded");
    assert_eq!(finals[0]["progress"]["done"], finals[0]["progress"]["total"]);
    // A finished job gets its final event at once.
    let again = tokio::time::timeout(Duration::from_secs(5), async {
        app.get(&format!("/v1/jobs/{id}/events")).await.text().await.unwrap()
    })
    .await
    .expect("a finished job's stream ends at once");
    assert!(again.starts_with("event: status"), "{again}");
    // Unknown ids are 404.
    error_of(app.get("/v1/jobs/nope/events").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_covers_every_route_and_error() {
    let app = spawn_app().await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let routes = [
        ("post", "/v1/jobs"),
        ("get", "/v1/jobs"),
        ("get", "/v1/jobs/{id}"),
        ("delete", "/v1/jobs/{id}"),
        ("get", "/v1/jobs/{id}/layers"),
        ("get", "/v1/jobs/{id}/bound-checks"),
        ("get", "/v1/jobs/{id}/events"),
        ("get", "/v1/jobs/{id}/plot.svg"),
        ("get", "/v1/jobs/{id}/sweep"),
        ("get", "/v1/jobs/{id}/search"),
        ("get", "/v1/jobs/{id}/geometry"),
        ("get", "/v1/jobs/{id}/samples"),
        ("get", "/v1/jobs/{id}/histogram.svg"),
        ("get", "/v1/jobs/{id}/worst_case"),
        ("post", "/v1/jobs/{id}/cancel"),
        ("get", "/v1/bounds"),
        ("get", "/v1/presets"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/"),
        ("get", "/jobs/{id}"),
        ("get", "/submit"),
        ("get", "/compare"),
        ("get", "/v1/compare/plot.svg"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in routes {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the document"
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        routes.len(),
        "the document has routes this test does not know: {:?}",
        paths.keys()
    );
    // Every documented route answers (no 404 from the router) -- and errors use ErrorBody.
    for (method, path) in routes.iter().filter(|(m, _)| *m == "get") {
        let r = app.get(&path.replace("{id}", "no-such-job")).await;
        assert_ne!(
            (r.status(), path.contains("{id}")),
            (StatusCode::METHOD_NOT_ALLOWED, false),
            "{method} {path}"
        );
    }
    let submit = &paths["/v1/jobs"]["post"]["responses"];
    for code in ["202", "400", "409", "413", "422", "503"] {
        assert!(submit.get(code).is_some(), "POST /v1/jobs lacks {code}");
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas.get("ErrorBody").is_some());
    assert!(schemas.get("JobSpecInput").is_some());
    assert!(schemas.get("LayerReport").is_some());

    // Every response of every operation is documented with its status, and every error with
    // ErrorBody; the timed routes list 408, the ones that take an id 404.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let has = |code: &str| responses.contains_key(code);
            if path != "/v1/jobs/{id}/events" {
                assert!(has("408"), "{method} {path} lacks 408");
            }
            if path.contains("{id}") {
                assert!(has("400") && has("404"), "{method} {path} lacks 400 or 404");
            }
            for (code, response) in responses {
                if code.starts_with('4') || code == "500" {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {code}"
                    );
                }
            }
        }
    }
    let submit_op = &paths["/v1/jobs"]["post"];
    for code in ["200", "202", "400", "401", "408", "409", "413", "422", "500", "503"] {
        assert!(submit_op["responses"].get(code).is_some(), "POST /v1/jobs lacks {code}");
    }

    // The mutating operations require the bearer scheme; reads do not.
    for (method, path) in routes {
        let security = &paths[path][method]["security"];
        if method == "get" {
            assert!(security.is_null(), "{method} {path}: {security}");
        } else {
            assert_eq!(security, &json!([{"bearer": []}]), "{method} {path}");
            let responses = &paths[path][method]["responses"];
            assert!(responses.get("401").is_some(), "{method} {path} lacks 401");
            if path.contains("{id}") {
                assert!(responses.get("403").is_some(), "{method} {path} lacks 403");
            }
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");

    // The request body: a spec or a preset request, told apart by `preset`.
    let body = &submit_op["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/JobRequest");
    assert_eq!(
        schemas["JobRequest"]["oneOf"],
        json!([{"$ref": "#/components/schemas/JobSpecInput"}, {"$ref": "#/components/schemas/PresetRequest"}])
    );
    let preset_request = &schemas["PresetRequest"];
    assert_eq!(preset_request["required"], json!(["preset"]));
    assert_eq!(preset_request["additionalProperties"], false);
    let (_, presets) = app.get_json("/v1/presets").await;
    let names: Vec<&Value> = presets["presets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(
        schemas["PresetName"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        names
    );
    for (field, _) in schemas["JobSpecInput"]["properties"].as_object().unwrap() {
        assert!(
            preset_request["properties"].get(field).is_some(),
            "a preset request cannot override {field}"
        );
    }

    // The spec: network required, unknown fields refused, the parser's ranges.
    let spec = &schemas["JobSpecInput"];
    assert_eq!(spec["required"], json!(["network"]));
    assert_eq!(spec["additionalProperties"], false);
    // A field that takes one value or (min_width) a list of them states its range on the one
    // value (the first of its oneOf) and on the list's items alike.
    let prop = |schema: &str, field: &str| {
        let p = schemas[schema]["properties"][field].clone();
        match p.get("oneOf") {
            Some(one_of) => {
                assert_eq!(
                    one_of[0], one_of[1]["items"],
                    "{schema}.{field}: one value or a list of them"
                );
                one_of[0].clone()
            }
            None => p,
        }
    };
    for (schema, field, lo, hi) in [
        ("JobSpecInput", "samples", 1, 1_000_000),
        ("JobSpecInput", "trials", 1, 1_000_000),
        ("NetworkInput", "input_dim", 1, 1_000_000),
        ("NetworkInput", "width", 1, 1_000_000),
        ("HeadInput", "classes", 2, 10_000),
    ] {
        let p = prop(schema, field);
        assert_eq!(
            (p["minimum"].clone(), p["maximum"].clone()),
            (json!(lo), json!(hi)),
            "{schema}.{field}"
        );
    }
    // depth and epsilon are one value or (min_width) a list of them: `prop` checked the list's
    // items are the one value's schema.
    let depth = prop("NetworkInput", "depth");
    assert_eq!(
        (depth["minimum"].clone(), depth["maximum"].clone()),
        (json!(1), json!(1000)),
        "depth: {depth}"
    );
    assert_eq!(prop("JobSpecInput", "epsilon")["exclusiveMinimum"], 0);
    assert_eq!(prop("JobSpecInput", "epsilon")["maximum"], 1_000_000);
    assert_eq!(prop("JobSpecInput", "delta")["exclusiveMinimum"], 0);
    assert_eq!(prop("JobSpecInput", "delta")["exclusiveMaximum"], 1);
    assert_eq!(prop("NetworkInput", "widths_to_sweep")["maxItems"], 64);
    assert_eq!(prop("NetworkInput", "widths")["items"]["maximum"], 1_000_000);
    // input_dim is required by every kind but worst_case given input_dims_to_sweep: the parser
    // says so (422 naming it); the schema leaves it optional.
    assert!(
        schemas["NetworkInput"]["required"].is_null(),
        "{}",
        schemas["NetworkInput"]
    );
    assert_eq!(prop("NetworkInput", "input_dim")["minimum"], 1);
    // Seeds are unsigned 64-bit, in the request and in what comes back.
    for seed in [
        prop("JobSpecInput", "seed"),
        prop("Stamp", "seed"),
        prop("PointReport", "seed"),
    ] {
        assert_eq!(seed["format"], "uint64");
        assert_eq!(seed["minimum"], 0);
        assert_eq!(seed["maximum"], json!(u64::MAX));
    }
    // String enums carry their wire names.
    assert_eq!(
        schemas["Kind"]["enum"],
        json!(["norms", "width_sweep", "min_width", "geometry", "worst_case"])
    );
    assert_eq!(schemas["Scheme"]["enum"][2], "glorot_paper");
    // Statistics that can be undefined are nullable.
    for (schema, field) in [
        ("RatioStats", "mean"),
        ("Spread", "min"),
        ("Within", "forward"),
        ("DeviationStats", "max"),
    ] {
        assert_eq!(
            prop(schema, field)["type"],
            json!(["number", "null"]),
            "{schema}.{field}"
        );
    }
    // Non-JSON bodies have their media types.
    let content = |path: &str| paths[path]["get"]["responses"]["200"]["content"].clone();
    assert!(content("/v1/jobs/{id}/layers").get("text/csv").is_some());
    assert!(content("/v1/jobs/{id}/sweep").get("text/csv").is_some());
    assert!(content("/v1/jobs/{id}/plot.svg").get("image/svg+xml").is_some());
    assert_eq!(
        content("/v1/jobs/{id}/events")["text/event-stream"]["schema"]["$ref"],
        "#/components/schemas/JobStreamEvent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_submitted_job() {
    let app = spawn_app().await;
    let metric = |text: &str, line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let before = app.get("/metrics").await.text().await.unwrap();
    let job = app.submit(&small_spec(4)).await;
    app.wait_for_status(job["id"].as_str().unwrap(), "succeeded", Duration::from_secs(60))
        .await;
    let r = app.get("/metrics").await;
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let after = r.text().await.unwrap();
    // Metrics are process-wide; tests in this binary run concurrently, so compare with >=.
    assert!(
        metric(&after, "widthlab_jobs_submitted_total") >= metric(&before, "widthlab_jobs_submitted_total") + 1.0,
        "{after}"
    );
    assert!(
        metric(
            &after,
            "widthlab_http_requests_total{route=\"/v1/jobs\",method=\"POST\",status=\"202\"}"
        ) >= 1.0,
        "{after}"
    );
    // Job counts by status come from this server's database.
    assert_eq!(metric(&after, "widthlab_jobs{status=\"succeeded\"}"), 1.0, "{after}");
    assert_eq!(metric(&after, "widthlab_queue_length"), 0.0);
    assert!(after.contains("# TYPE widthlab_http_request_duration_seconds histogram"));
    assert!(metric(&after, "widthlab_job_duration_seconds_count") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_mutations_and_leave_reads_open() {
    let app = spawn_app_with(|c| {
        c.tokens = vec!["alpha-token".parse().unwrap(), "beta".parse().unwrap()];
    })
    .await;
    let spec = small_spec(5);
    let url = app.url("/v1/jobs");
    // Without, with a wrong one, with a malformed header: 401 with WWW-Authenticate; nothing stored.
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic YWxwaGEtdG9rZW4="),
        Some("Bearer alpha-toke"),
    ] {
        let mut req = app.client.post(&url).json(&spec);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (_, list) = app.get_json("/v1/jobs").await;
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        0,
        "refused requests store nothing"
    );
    // With either token: 202.
    let r = app
        .client
        .post(&url)
        .header("Authorization", "Bearer beta")
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: Value = r.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    // Reads stay open.
    for path in [
        format!("/v1/jobs/{id}"),
        "/v1/jobs".into(),
        "/v1/presets".into(),
        "/metrics".into(),
        "/openapi.json".into(),
    ] {
        assert_eq!(app.get(&path).await.status(), StatusCode::OK, "{path}");
    }
    // Cancel and delete are mutations too.
    let r = app
        .client
        .post(app.url(&format!("/v1/jobs/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.wait_for_status(id, "succeeded", Duration::from_secs(60)).await;
    let r = app
        .client
        .delete(app.url(&format!("/v1/jobs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Another user's token may not (the job is beta's); its owner's may.
    let r = app
        .client
        .delete(app.url(&format!("/v1/jobs/{id}")))
        .header("Authorization", "Bearer alpha-token")
        .send()
        .await
        .unwrap();
    let e = error_of(r, StatusCode::FORBIDDEN).await;
    assert_eq!(e["code"], "forbidden");
    let r = app
        .client
        .delete(app.url(&format!("/v1/jobs/{id}")))
        .header("Authorization", "Bearer beta")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Tokens are checked on routes only: a method a path does not have is 405 and a path that
    // is no route 404, with or without a token.
    for method in ["PUT", "PATCH", "TRACE"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = app.client.request(m, app.url("/v1/jobs")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert!(r.headers().get("allow").is_some(), "{method}: no Allow header");
    }
    let r = app.client.post(app.url("/v1/nothing-here")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
