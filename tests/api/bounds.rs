//! `GET /v1/bounds`: the synchronous theory calculator.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

fn bound<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["bounds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["bound"] == name)
        .unwrap_or_else(|| panic!("no {name}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bound_side_by_side() {
    let app = spawn_app().await;
    let (status, body) = app
        .get_json("/v1/bounds?epsilon=0.1&delta=0.05&depth=10&samples=2000")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["bounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bound"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["arpit2019", "exact_tail", "chernoff"]);
    assert_eq!(bound(&body, "arpit2019")["min_width"], 5967);
    assert_eq!(body["inputs"]["epsilon"], 0.1);
    assert_eq!(body["inputs"]["delta"], 0.05);
    assert_eq!(body["inputs"]["depth"], 10);
    assert_eq!(body["inputs"]["samples"], 2000);
    assert!(body["inputs"]["width"].is_null());
    // epsilon' = 1.1^(1/10) - 1
    let ep = body["inputs"]["epsilon_prime"].as_f64().unwrap();
    assert!((ep - (1.1f64.powf(0.1) - 1.0)).abs() < 1e-12, "{ep}");
    for b in body["bounds"].as_array().unwrap() {
        assert!(b["min_width"].as_u64().is_some_and(|w| w > 0), "{b}");
        assert!(b["guaranteed_epsilon"].is_null(), "no width, no guarantee: {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_widths_and_guarantees() {
    let app = spawn_app().await;
    // epsilon = 1.1^10 - 1: a per-layer tolerance of exactly 0.1.
    let eps = 1.1f64.powi(10) - 1.0;
    let (status, body) = app
        .get_json(&format!("/v1/bounds?epsilon={eps}&delta=0.05&depth=10&samples=2000"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!((body["inputs"]["epsilon_prime"].as_f64().unwrap() - 0.1).abs() < 1e-12);
    assert_eq!(bound(&body, "arpit2019")["min_width"], 572);
    assert_eq!(bound(&body, "exact_tail")["min_width"], 2938);
    assert_eq!(bound(&body, "chernoff")["min_width"], 3631);

    let (status, body) = app
        .get_json("/v1/bounds?epsilon=0.15&delta=0.05&depth=10&samples=2000&width=4000")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["inputs"]["width"], 4000);
    let g = bound(&body, "arpit2019")["guaranteed_epsilon"]
        .as_f64()
        .expect("guaranteed_epsilon");
    let want = 0.15239729519243328;
    assert!(
        ((g - want) / want).abs() < 1e-6,
        "arpit2019 guaranteed epsilon {g}, want {want}"
    );
    for b in body["bounds"].as_array().unwrap() {
        assert_eq!(b["width"], 4000, "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guarantee_at_the_minimal_width_meets_epsilon() {
    let app = spawn_app().await;
    let q = "epsilon=0.5&delta=0.1&depth=5&samples=100";
    let (_, body) = app.get_json(&format!("/v1/bounds?{q}")).await;
    for name in ["arpit2019", "exact_tail", "chernoff"] {
        let m = bound(&body, name)["min_width"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {body}"));
        let (_, at) = app.get_json(&format!("/v1/bounds?{q}&width={m}")).await;
        let g = bound(&at, name)["guaranteed_epsilon"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} at {m}: {at}"));
        assert!(
            g <= 0.5 * (1.0 + 1e-9),
            "{name}: at its minimal width {m} it guarantees {g} > 0.5"
        );
        if m > 1 {
            let (_, below) = app.get_json(&format!("/v1/bounds?{q}&width={}", m - 1)).await;
            if let Some(g) = bound(&below, name)["guaranteed_epsilon"].as_f64() {
                assert!(
                    g > 0.5 * (1.0 - 1e-9),
                    "{name}: width {} < minimal {m} already guarantees {g}",
                    m - 1
                );
            }
        }
    }
    // Tighter epsilon needs more width, for every bound.
    let (_, tight) = app
        .get_json("/v1/bounds?epsilon=0.25&delta=0.1&depth=5&samples=100")
        .await;
    for name in ["arpit2019", "exact_tail", "chernoff"] {
        assert!(
            bound(&tight, name)["min_width"].as_u64() > bound(&body, name)["min_width"].as_u64(),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_422_naming_the_field() {
    let app = spawn_app().await;
    let full = "epsilon=0.1&delta=0.05&depth=10&samples=2000";
    let cases = [
        ("delta=0.05&depth=10&samples=2000", "epsilon"),
        ("epsilon=0.1&depth=10&samples=2000", "delta"),
        ("epsilon=0.1&delta=0.05&samples=2000", "depth"),
        ("epsilon=0.1&delta=0.05&depth=10", "samples"),
        ("epsilon=abc&delta=0.05&depth=10&samples=2000", "epsilon"),
        ("epsilon=0&delta=0.05&depth=10&samples=2000", "epsilon"),
        ("epsilon=-1&delta=0.05&depth=10&samples=2000", "epsilon"),
        ("epsilon=NaN&delta=0.05&depth=10&samples=2000", "epsilon"),
        ("epsilon=inf&delta=0.05&depth=10&samples=2000", "epsilon"),
        ("epsilon=0.1&delta=1.5&depth=10&samples=2000", "delta"),
        ("epsilon=0.1&delta=0&depth=10&samples=2000", "delta"),
        ("epsilon=0.1&delta=0.05&depth=0&samples=2000", "depth"),
        ("epsilon=0.1&delta=0.05&depth=2.5&samples=2000", "depth"),
        ("epsilon=0.1&delta=0.05&depth=-3&samples=2000", "depth"),
        ("epsilon=0.1&delta=0.05&depth=10&samples=0", "samples"),
        ("epsilon=0.1&delta=0.05&depth=10&samples=many", "samples"),
    ];
    for (q, field) in cases {
        let err = error_of(
            app.get(&format!("/v1/bounds?{q}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(err["field"], field, "{q}: {err}");
    }
    for w in ["0", "-1", "wide", "1000000001"] {
        let err = error_of(
            app.get(&format!("/v1/bounds?{full}&width={w}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(err["field"], "width", "width={w}: {err}");
    }
    let err = error_of(
        app.get(&format!("/v1/bounds?{full}&colour=red")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(err["field"], "colour");
    let err = error_of(app.get("/v1/bounds").await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(err["field"].is_string());
}
