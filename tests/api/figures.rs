//! The figures served by `GET /v1/jobs/{id}/plot.svg`: they parse as XML, carry the bands,
//! lines and legend entries a reader needs (found by their labels), name the preset and the job,
//! and no legend, table or colour bar element lies inside a plotting area.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

const BOUNDS: [&str; 3] = ["arpit2019", "exact_tail", "chernoff"];

async fn svg_of(app: &TestApp, id: &str) -> String {
    let r = app.get(&format!("/v1/jobs/{id}/plot.svg")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    r.text().await.unwrap()
}

/// The text of every `<text>` element, trimmed.
fn texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect()
}

fn has(texts: &[String], label: &str) -> bool {
    texts.iter().any(|t| t.contains(label))
}

fn attr(n: &roxmltree::Node, name: &str) -> Option<f64> {
    n.attribute(name)?.parse().ok()
}

/// The corners of what an element covers: a text's box estimated from its anchor, size and
/// length (0.6 em per character, more than sans-serif fonts take), a shape's points.
fn extent(n: &roxmltree::Node) -> Vec<(f64, f64)> {
    let pair = |x: &str, y: &str| Some((attr(n, x)?, attr(n, y)?));
    match n.tag_name().name() {
        "text" => {
            let (Some((x, y)), Some(size)) = (pair("x", "y"), attr(n, "font-size")) else {
                return Vec::new();
            };
            let len = n.text().unwrap_or("").trim().chars().count() as f64 * size * 0.6;
            let (before, after) = match n.attribute("text-anchor") {
                Some("end") => (len, 0.0),
                Some("middle") => (len / 2.0, len / 2.0),
                _ => (0.0, len),
            };
            let rotated = n.attribute("transform").is_some_and(|t| t.contains("rotate"));
            [
                (-before, -size / 2.0),
                (after, -size / 2.0),
                (-before, size / 2.0),
                (after, size / 2.0),
            ]
            .into_iter()
            .map(|(along, across)| {
                if rotated {
                    (x + across, y - along)
                } else {
                    (x + along, y + across)
                }
            })
            .collect()
        }
        "line" => pair("x1", "y1").into_iter().chain(pair("x2", "y2")).collect(),
        "circle" => pair("cx", "cy").into_iter().collect(),
        "rect" => match (pair("x", "y"), attr(n, "width"), attr(n, "height")) {
            (Some((x, y)), Some(w), Some(h)) => vec![(x, y), (x + w, y), (x, y + h), (x + w, y + h)],
            _ => Vec::new(),
        },
        "polygon" | "polyline" => n
            .attribute("points")
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|xy| {
                let (x, y) = xy.split_once(',')?;
                Some((x.parse().ok()?, y.parse().ok()?))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Asserts that nothing of a legend, table or colour bar lies inside a plotting area
/// (`<rect class="plot-area">`); returns how many such groups there are.
fn assert_nothing_covers_the_data(svg: &str) -> usize {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is XML");
    let class = |n: &roxmltree::Node| n.attribute("class").unwrap_or("").to_string();
    let areas: Vec<(f64, f64, f64, f64)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && class(n) == "plot-area")
        .map(|n| {
            let get = |a: &str| attr(&n, a).expect("a numeric attribute");
            (get("x"), get("y"), get("width"), get("height"))
        })
        .collect();
    assert!(!areas.is_empty(), "no <rect class=\"plot-area\">");
    let groups: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("g") && ["legend", "frontier-table", "colour-bar"].contains(&class(n).as_str()))
        .collect();
    for g in &groups {
        for e in g.descendants() {
            for (x, y) in extent(&e) {
                for &(ax, ay, aw, ah) in &areas {
                    let inside = x > ax && x < ax + aw && y > ay && y < ay + ah;
                    assert!(
                        !inside,
                        "{} {:?} of the {} at ({x:.0}, {y:.0}) lies in the plot area at ({ax}, {ay}) {aw}x{ah}",
                        e.tag_name().name(),
                        e.text(),
                        class(g)
                    );
                }
            }
        }
    }
    groups.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn norms_figure_shows_measured_and_exact_bands_epsilon_and_every_bound() {
    let app = spawn_app().await;
    let job = app
        .submit(&json!({"preset": "arpit2019-fig1", "samples": 100, "trials": 2}))
        .await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded", Duration::from_secs(120)).await;
    let svg = svg_of(&app, id).await;
    let t = texts(&svg);
    assert!(
        has(&t, &format!("arpit2019-fig1 (job {}):", &id[..8])),
        "the title names the preset and the job: {t:?}"
    );
    for label in [
        "he fan=out, n0=500 L=10 m=100, N=100 trials=2 eps=0.15",
        "forward ratio by layer",
        "gradient ratio by layer",
        "||h^l|| / ||x||",
        "||delta^l|| ||h^(l-1)|| / (||x|| ||delta^L||)",
        "the spec's 1 +/- epsilon (epsilon = 0.15)",
        "measured p05-p95 over the inputs of 2 networks",
        "exact law p05-p95 over networks and inputs",
        "predicted mean (exact law)",
        "measured mean",
    ] {
        assert!(has(&t, label), "missing {label:?} in {t:?}");
    }
    // At width 100 every bound guarantees an epsilon far above the ratios (arpit2019: 1 +/- 90.8
    // at N = 2000): each is named as off scale, and the axis stays on the data.
    let (_, checks) = app.get_json(&format!("/v1/jobs/{id}/bound-checks")).await;
    for b in BOUNDS {
        let check = checks["bound_checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["bound"] == b)
            .unwrap_or_else(|| panic!("no check of {b}: {checks}"));
        let g = check["guaranteed_epsilon"].as_f64().unwrap();
        assert!(g > 5.0, "{b}: {g}");
        assert!(has(&t, &format!("{b}: 1 +/- ")) && has(&t, "off scale"), "{b}: {t:?}");
    }
    let ticks: Vec<f64> = t.iter().filter_map(|x| x.parse().ok()).collect();
    assert!(
        ticks.iter().all(|v| *v <= 10.0),
        "the y axis is not stretched to the guarantees: {ticks:?}"
    );
    // A tick at every layer.
    for l in 1..=10 {
        assert!(t.iter().any(|x| *x == l.to_string()), "no tick at layer {l}: {t:?}");
    }
    assert!(assert_nothing_covers_the_data(&svg) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_norm_figure_names_the_v_gradient_and_says_there_is_no_exact_law() {
    let app = spawn_app().await;
    let spec = json!({"preset": "arpit2019-fig4-wn-derived", "samples": 50,
                      "network": {"width": 300, "depth": 4}});
    let job = app.submit(&spec).await;
    let id = job["id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded", Duration::from_secs(120)).await;
    let svg = svg_of(&app, id).await;
    let t = texts(&svg);
    for label in [
        "arpit2019-fig4-wn-derived (job",
        "||dL/dV^l||_F / (g_l ||x|| ||delta^L||)",
        "no exact law for this init: sqrt of the second moment",
        "no exact law for this init: mean-field",
        "measured p05-p95 over the inputs of 1 network",
        "1 +/- epsilon",
    ] {
        assert!(has(&t, label), "missing {label:?} in {t:?}");
    }
    assert!(!has(&t, "||delta^l|| ||h^(l-1)||"), "{t:?}");
    assert!(
        !has(&t, "exact law p05-p95"),
        "no band of an exact law that does not exist: {t:?}"
    );
    assert_nothing_covers_the_data(&svg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_figure_has_both_maxima_the_bounds_epsilon_and_says_when_it_is_partial() {
    let app = spawn_app().await;
    let job = app
        .submit(&json!({"preset": "arpit2019-fig6", "samples": 40, "precision": "f32"}))
        .await;
    let id = job["id"].as_str().unwrap();
    // While it runs, the figure shows the points so far and says so (if it is caught running).
    app.wait_until_running(id).await;
    let early = svg_of(&app, id).await;
    let t = texts(&early);
    match t.iter().find(|x| x.starts_with("partial:")) {
        Some(note) => {
            let k: usize = note["partial: ".len()..]
                .split(' ')
                .next()
                .and_then(|k| k.parse().ok())
                .unwrap_or(0);
            assert!((1..4).contains(&k), "{note}");
            assert!(note.ends_with(&format!("{k} of 4 points (job running)")), "{note}");
        }
        None => {
            let now = app.job(id).await;
            assert_eq!(
                now["progress"]["done"], 4,
                "a figure of a running sweep must say it is partial"
            );
        }
    }
    app.wait_for_status(id, "succeeded", Duration::from_secs(600)).await;
    let svg = svg_of(&app, id).await;
    let t = texts(&svg);
    assert!(has(&t, &format!("arpit2019-fig6 (job {}):", &id[..8])), "{t:?}");
    assert!(!has(&t, "partial:"), "{t:?}");
    for label in [
        "forward: pooled mean |1 - r|",
        "forward: pooled max |1 - r|",
        "gradient: pooled mean |1 - r|",
        "gradient: pooled max |1 - r|",
        "the spec's epsilon = 0.15",
        "width m",
    ] {
        assert!(has(&t, label), "missing {label:?} in {t:?}");
    }
    for b in BOUNDS {
        assert!(has(&t, &format!("{b}: guaranteed epsilon")), "missing {b} in {t:?}");
    }
    for w in ["500", "1000", "2000", "4000"] {
        assert!(t.iter().any(|x| x == w), "no tick at the swept width {w}: {t:?}");
    }
    assert_eq!(assert_nothing_covers_the_data(&svg), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_figure_explains_its_colours_and_marks_every_frontier() {
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
    let svg = svg_of(&app, id).await;
    let t = texts(&svg);
    assert!(has(&t, &format!("job {}:", &id[..8])), "{t:?}");
    for label in [
        "observed P(all layers and samples within 1 +/- epsilon)",
        "1 - delta = 0.8",
        "empirical frontier",
        "depth L",
        "width m",
        "minimal width per depth",
    ] {
        assert!(has(&t, label), "missing {label:?} in {t:?}");
    }
    // Colour bar ticks.
    for q in ["0", "0.5", "1"] {
        assert!(t.iter().any(|x| x == q), "no colour bar tick {q}: {t:?}");
    }
    // Every cell says its probability; every frontier value is written (in the map beside its
    // marker when outside the swept range, and in the table).
    let (_, sweep) = app.get_json(&format!("/v1/jobs/{id}/sweep")).await;
    for p in sweep["points"].as_array().unwrap() {
        let n = p["all_within"]["trials"].as_u64().unwrap();
        let k = p["all_within"]["successes"].as_u64().unwrap();
        assert!(
            t.iter().any(|x| *x == format!("{k}/{n}")),
            "cell {p} not written: {t:?}"
        );
    }
    for row in sweep["frontier"].as_array().unwrap() {
        for b in BOUNDS {
            assert!(has(&t, &format!("{b}: minimal width")), "{t:?}");
            let m = row["bounds"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["bound"] == b)
                .and_then(|x| x["min_width"].as_u64())
                .unwrap_or_else(|| panic!("no min width of {b}: {row}"));
            let text = m.to_string();
            if m > 80 {
                assert!(has(&t, &format!("{m} (above range)")), "{m}: {t:?}");
                assert!(t.contains(&text), "{m} is not written beside its marker: {t:?}");
            } else if m < 20 {
                assert!(has(&t, &format!("{m} (below range)")), "{m}: {t:?}");
            } else {
                assert!(t.contains(&text), "{m} is not in the table: {t:?}");
            }
        }
    }
    // Legend, table and colour bar.
    assert_eq!(assert_nothing_covers_the_data(&svg), 3);
}
