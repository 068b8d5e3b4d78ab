//! The figures drawn from small real simulations: they parse as XML, carry their labels, and
//! no legend or table element lies inside a plotting area.

use serde_json::{json, Value};

use super::{figure_title, map_svg, norms_svg, sweep_svg};
use crate::analysis::report::{build_report, BoundCheck, LayerReport};
use crate::analysis::sweep::{frontier, point_report, point_spec, PointReport};
use crate::sim::{simulate, Control};
use crate::spec::{parse_spec, Limits, Spec};
use crate::theory::bounds::Bound;

fn spec(v: Value) -> Spec {
    parse_spec(&v, &Limits::default()).expect("a valid spec")
}

fn norms(v: Value) -> (Spec, Vec<LayerReport>, Vec<BoundCheck>) {
    let spec = spec(v);
    let sim = simulate(&spec, &Control::none()).expect("not cancelled");
    let report = build_report(&spec, &sim);
    (spec, report.layers, report.bound_checks)
}

fn sweep(v: Value) -> (Spec, Vec<PointReport>) {
    let spec = spec(v);
    let points = spec
        .sweep()
        .expect("a sweep")
        .points()
        .into_iter()
        .map(|p| {
            let ps = point_spec(&spec, p);
            let sim = simulate(&ps, &Control::none()).expect("not cancelled");
            point_report(&ps, p, &sim)
        })
        .collect();
    (spec, points)
}

struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

fn attr(n: &roxmltree::Node, name: &str) -> Option<f64> {
    n.attribute(name)?.parse().ok()
}

fn texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect()
}

fn has(texts: &[String], label: &str) -> bool {
    texts.iter().any(|t| t.contains(label))
}

fn has_class(n: &roxmltree::Node, class: &str) -> bool {
    n.attribute("class") == Some(class)
}

/// Every point an element of the legends and tables is drawn at.
fn points_of(n: &roxmltree::Node) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let pair = |x: &str, y: &str| Some((attr(n, x)?, attr(n, y)?));
    match n.tag_name().name() {
        "text" => {
            // The text's box, from its anchor, size and an upper estimate of its width.
            if let (Some((x, y)), Some(size)) = (pair("x", "y"), attr(n, "font-size")) {
                let len = n.text().unwrap_or("").trim().chars().count() as f64 * size * 0.6;
                let (before, after) = match n.attribute("text-anchor") {
                    Some("end") => (len, 0.0),
                    Some("middle") => (len / 2.0, len / 2.0),
                    _ => (0.0, len),
                };
                let rotated = n.attribute("transform").is_some_and(|t| t.contains("rotate"));
                for (along, across) in [
                    (-before, -size / 2.0),
                    (after, -size / 2.0),
                    (-before, size / 2.0),
                    (after, size / 2.0),
                ] {
                    out.push(if rotated {
                        (x + across, y - along)
                    } else {
                        (x + along, y + across)
                    });
                }
            }
        }
        "line" => out.extend(pair("x1", "y1").into_iter().chain(pair("x2", "y2"))),
        "circle" => out.extend(pair("cx", "cy")),
        "rect" => {
            if let (Some((x, y)), Some(w), Some(h)) = (pair("x", "y"), attr(n, "width"), attr(n, "height")) {
                out.extend([(x, y), (x + w, y), (x, y + h), (x + w, y + h)]);
            }
        }
        "polygon" | "polyline" => {
            for xy in n.attribute("points").unwrap_or("").split_whitespace() {
                if let Some((x, y)) = xy.split_once(',') {
                    if let (Ok(x), Ok(y)) = (x.parse(), y.parse()) {
                        out.push((x, y));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// The plotting areas, and that no element of a legend or table lies inside one.
fn assert_legends_outside(svg: &str) -> usize {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is XML");
    let areas: Vec<Rect> = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && has_class(n, "plot-area"))
        .map(|n| Rect {
            x: attr(&n, "x").unwrap_or(f64::NAN),
            y: attr(&n, "y").unwrap_or(f64::NAN),
            w: attr(&n, "width").unwrap_or(f64::NAN),
            h: attr(&n, "height").unwrap_or(f64::NAN),
        })
        .collect();
    assert!(!areas.is_empty(), "no plot-area rect");
    let mut legends = 0;
    for g in doc.descendants().filter(|n| {
        n.has_tag_name("g") && (has_class(n, "legend") || has_class(n, "frontier-table") || has_class(n, "colour-bar"))
    }) {
        legends += 1;
        for e in g.descendants() {
            for (x, y) in points_of(&e) {
                for a in &areas {
                    let inside = x > a.x && x < a.x + a.w && y > a.y && y < a.y + a.h;
                    assert!(
                        !inside,
                        "{:?} at ({x}, {y}) inside the plot area {},{} {}x{}",
                        e.tag_name(),
                        a.x,
                        a.y,
                        a.w,
                        a.h
                    );
                }
            }
        }
    }
    legends
}

#[test]
fn titles_name_the_preset_the_job_and_the_spec() {
    let s = spec(json!({"network": {"input_dim": 5, "depth": 2, "width": 4, "init": {"scheme": "he", "fan": "out"}}}));
    let t = figure_title("1a2b3c4d-5555", Some("arpit2019-fig1"), Some(&s));
    assert!(t.starts_with("arpit2019-fig1 (job 1a2b3c4d): he fan=out, n0=5"), "{t}");
    assert_eq!(figure_title("1a2b3c4d-5555", None, None), "job 1a2b3c4d");
}

#[test]
fn norms_figure_shows_both_bands_epsilon_and_every_bound() {
    let (spec, layers, checks) = norms(json!({
        "network": {"input_dim": 50, "depth": 4, "width": 60, "init": {"scheme": "he", "fan": "out"}},
        "samples": 64, "trials": 2, "seed": 3
    }));
    let svg = norms_svg("job 1a2b3c4d: test", &spec, &layers, &checks).expect("drawn");
    let t = texts(&svg);
    for label in [
        "forward ratio by layer",
        "gradient ratio by layer",
        "||h^l|| / ||x||",
        "||delta^l|| ||h^(l-1)|| / (||x|| ||delta^L||)",
        "1 +/- epsilon",
        "measured p05-p95 over the inputs of 2 networks",
        "exact law p05-p95 over networks and inputs",
        "predicted mean (exact law)",
        "layer l",
    ] {
        assert!(has(&t, label), "missing {label:?} in {t:?}");
    }
    for b in Bound::ALL {
        assert!(has(&t, b.name()), "missing {} in {t:?}", b.name());
    }
    // At width 60 the bounds guarantee far more than the ratios' range: off scale, not drawn.
    assert!(has(&t, "off scale"), "{t:?}");
    // Every layer has a tick.
    for l in 1..=4 {
        assert!(t.iter().any(|x| x == &l.to_string()), "no tick {l} in {t:?}");
    }
    assert!(assert_legends_outside(&svg) >= 1);
}

#[test]
fn one_network_is_said_so() {
    let (spec, layers, checks) = norms(json!({
        "network": {"input_dim": 50, "depth": 3, "width": 40, "init": {"scheme": "he", "fan": "out"}},
        "samples": 32, "trials": 1, "seed": 3
    }));
    let t = texts(&norms_svg("t", &spec, &layers, &checks).expect("drawn"));
    assert!(has(&t, "measured p05-p95 over the inputs of 1 network"), "{t:?}");
}

#[test]
fn weight_norm_panels_name_the_v_gradient_and_the_missing_exact_law() {
    for (gain, axis) in [
        ("derived", "||dL/dV^l||_F / (g_l ||x|| ||delta^L||)"),
        ("naive", "||dL/dV^l||_F / (||x|| ||delta^L||)"),
    ] {
        let (spec, layers, checks) = norms(json!({
            "network": {"input_dim": 40, "depth": 3, "width": 50, "weight_norm": {"gain": gain, "direction": "gaussian"}},
            "samples": 32, "trials": 1, "seed": 4
        }));
        let svg = norms_svg("t", &spec, &layers, &checks).expect("drawn");
        let t = texts(&svg);
        assert!(has(&t, axis), "{gain}: missing {axis:?} in {t:?}");
        assert!(!has(&t, "||delta^l|| ||h^(l-1)||"), "{t:?}");
        assert!(
            has(&t, "no exact law for this init: sqrt of the second moment"),
            "{t:?}"
        );
        assert!(has(&t, "no exact law for this init: mean-field"), "{t:?}");
        assert!(!has(&t, "exact law p05-p95"), "{t:?}");
        assert_legends_outside(&svg);
    }
}

fn small_sweep(depths: Value) -> Value {
    json!({
        "kind": "width_sweep",
        "network": {"input_dim": 30, "widths_to_sweep": [20, 40, 80, 160], "depths_to_sweep": depths,
                    "init": {"scheme": "he", "fan": "out"}},
        "samples": 16, "trials": 10, "epsilon": 0.5, "delta": 0.2, "seed": 5
    })
}

#[test]
fn sweep_figure_has_both_maxima_epsilon_bounds_and_a_tick_per_width() {
    let (spec, points) = sweep(small_sweep(json!([3])));
    let svg = sweep_svg("t", &spec, &points, "succeeded").expect("drawn");
    let t = texts(&svg);
    for label in [
        "forward: pooled mean |1 - r|",
        "forward: pooled max |1 - r|",
        "gradient: pooled mean |1 - r|",
        "gradient: pooled max |1 - r|",
        "the spec's epsilon = 0.5",
        "width m",
    ] {
        assert!(has(&t, label), "missing {label:?} in {t:?}");
    }
    for b in Bound::ALL {
        assert!(has(&t, &format!("{}: guaranteed epsilon", b.name())), "{t:?}");
    }
    for w in ["20", "40", "80", "160"] {
        assert!(t.iter().any(|x| x == w), "no tick at {w}: {t:?}");
    }
    assert!(!has(&t, "partial:"), "{t:?}");
    assert_eq!(assert_legends_outside(&svg), 1);
}

#[test]
fn a_sweep_with_fewer_points_than_its_grid_says_it_is_partial() {
    let (spec, points) = sweep(small_sweep(json!([3])));
    let svg = sweep_svg("t", &spec, &points[..2], "running").expect("drawn");
    let t = texts(&svg);
    assert!(has(&t, "partial: 2 of 4 points (job running)"), "{t:?}");
    // The axis still spans the whole grid.
    assert!(t.iter().any(|x| x == "160"), "{t:?}");
    let (spec, points) = sweep(small_sweep(json!([2, 4])));
    let rows = frontier(&spec, &points[..5]);
    let t = texts(&map_svg("t", &spec, &points[..5], &rows, "running").expect("drawn"));
    assert!(has(&t, "partial: 5 of 8 points (job running)"), "{t:?}");
    assert!(has(&t, "not run"), "{t:?}");
}

#[test]
fn map_explains_its_colours_and_marks_frontiers_outside_the_range() {
    let (spec, points) = sweep(small_sweep(json!([2, 4])));
    let rows = frontier(&spec, &points);
    let svg = map_svg("t", &spec, &points, &rows, "succeeded").expect("drawn");
    let t = texts(&svg);
    for label in [
        "observed P(all layers and samples within 1 +/- epsilon)",
        "empirical frontier",
        "depth L",
        "minimal width per depth",
        "1 - delta",
    ] {
        assert!(has(&t, label), "missing {label:?} in {t:?}");
    }
    for b in Bound::ALL {
        assert!(has(&t, &format!("{}: minimal width", b.name())), "{t:?}");
    }
    // Each bound's minimal width per depth: in the table, and beyond the range (20 to 160)
    // marked with its value beside the edge marker; never clipped to the edge silently.
    let mut beyond = 0;
    for r in &rows {
        for b in &r.bounds {
            let m = b.min_width.expect("finite");
            if m > 160 {
                beyond += 1;
                assert!(
                    t.iter().any(|x| *x == m.to_string()),
                    "{m} not beside its marker: {t:?}"
                );
                assert!(has(&t, &format!("{m} (above range)")), "{t:?}");
            } else {
                assert!(t.iter().any(|x| *x == m.to_string()), "{m} not in the table: {t:?}");
            }
        }
    }
    assert!(
        beyond > 0,
        "the test is meant to have a bound beyond the range: {rows:?}"
    );
    assert_eq!(assert_legends_outside(&svg), 3);
}
