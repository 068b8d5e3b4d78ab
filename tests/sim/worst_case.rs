//! `kind: "worst_case"`: the search against an independent brute force on tiny one-layer networks,
//! the certified bound above every maximum found (many networks, shapes, depths and inits), the
//! search at least as extreme as the random inputs, the worst case growing with sqrt(n0 / m), and
//! units in any order giving the same bits.

use std::sync::atomic::AtomicBool;

use ndarray::Array2;
use serde_json::{json, Value};
use widthlab::analysis::worst_case::WorstCaseLayer;
use widthlab::jobs::kinds::{run_local, runner, validate, LocalContext, Output, RunContext};
use widthlab::sim::worst_case::draw_weights;
use widthlab::spec::Limits;

fn run(body: &Value) -> Vec<WorstCaseLayer> {
    let limits = Limits::default();
    let spec = validate(body, &limits).expect("valid spec").spec;
    let never = AtomicBool::new(false);
    match run_local(&spec, &limits, &|_, _| {}, &never).expect("runs").output {
        Output::WorstCase { layers, .. } => layers,
        _ => panic!("a worst_case job gives worst_case rows"),
    }
}

/// ||ReLU(W x)|| / ||x||.
fn ratio(w: &Array2<f64>, x: &[f64]) -> f64 {
    let nx = x.iter().map(|v| v * v).sum::<f64>().sqrt();
    let h: f64 = w
        .rows()
        .into_iter()
        .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum::<f64>().max(0.0).powi(2))
        .sum();
    h.sqrt() / nx
}

/// The maximum of ||ReLU(W x)|| over the unit circle (n0 = 2): a grid of 200000 angles, then
/// golden-section refinement around the best.
fn brute_force_2(w: &Array2<f64>) -> f64 {
    let f = |t: f64| ratio(w, &[t.cos(), t.sin()]);
    let n = 200_000;
    let step = std::f64::consts::TAU / n as f64;
    let best = (0..n)
        .map(|k| k as f64 * step)
        .fold((0.0, f64::NEG_INFINITY), |acc, t| {
            let v = f(t);
            if v > acc.1 {
                (t, v)
            } else {
                acc
            }
        });
    let (mut a, mut b) = (best.0 - step, best.0 + step);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..200 {
        let (c, d) = (b - g * (b - a), a + g * (b - a));
        if f(c) > f(d) {
            b = d;
        } else {
            a = c;
        }
    }
    f(0.5 * (a + b)).max(best.1)
}

/// The maximum of ||ReLU(W x)|| over the unit sphere (n0 = 3): a Fibonacci lattice of 400000
/// points, then a pattern search on the sphere (steps along two tangent directions, halved when
/// none improves) from the best few lattice points.
fn brute_force_3(w: &Array2<f64>) -> f64 {
    let n = 400_000;
    let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
    let mut scored: Vec<([f64; 3], f64)> = (0..n)
        .map(|k| {
            let z = 1.0 - 2.0 * (k as f64 + 0.5) / n as f64;
            let r = (1.0 - z * z).sqrt();
            let t = golden * k as f64;
            let x = [r * t.cos(), r * t.sin(), z];
            (x, ratio(w, &x))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut best = f64::NEG_INFINITY;
    for (x0, v0) in scored.iter().take(20) {
        let (mut x, mut v) = (*x0, *v0);
        let mut h = 0.01;
        while h > 1e-13 {
            // Two unit tangent directions at x.
            let a = if x[0].abs() < 0.9 {
                [1.0, 0.0, 0.0]
            } else {
                [0.0, 1.0, 0.0]
            };
            let d = a[0] * x[0] + a[1] * x[1] + a[2] * x[2];
            let mut u = [a[0] - d * x[0], a[1] - d * x[1], a[2] - d * x[2]];
            let nu = (u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt();
            u.iter_mut().for_each(|c| *c /= nu);
            let v2 = [
                x[1] * u[2] - x[2] * u[1],
                x[2] * u[0] - x[0] * u[2],
                x[0] * u[1] - x[1] * u[0],
            ];
            let mut moved = false;
            for dir in [u, v2] {
                for s in [h, -h] {
                    let mut y = [x[0] + s * dir[0], x[1] + s * dir[1], x[2] + s * dir[2]];
                    let ny = (y[0] * y[0] + y[1] * y[1] + y[2] * y[2]).sqrt();
                    y.iter_mut().for_each(|c| *c /= ny);
                    let vy = ratio(w, &y);
                    if vy > v {
                        (x, v) = (y, vy);
                        moved = true;
                    }
                }
            }
            if !moved {
                h *= 0.5;
            }
        }
        best = best.max(v);
    }
    best
}

#[test]
fn one_layer_search_matches_a_brute_force_maximum() {
    for (n0, width, seed) in [(2usize, 5usize, 3u64), (2, 9, 4), (3, 6, 5), (3, 11, 6)] {
        let body = json!({"kind": "worst_case",
            "network": {"input_dim": n0, "depth": 1, "width": width, "init": {"scheme": "he", "fan": "out"}},
            "samples": 50, "trials": 3, "restarts": 16, "steps": 200, "seed": seed});
        let limits = Limits::default();
        let spec = validate(&body, &limits).expect("valid").spec;
        let rows = run(&body);
        assert_eq!(rows.len(), 1);
        let never = AtomicBool::new(false);
        // Each network's maximum: the row holds the spread, so run each network alone as well.
        let mut exact = Vec::new();
        for trial in 0..3u64 {
            let w = &draw_weights(&spec.network, seed, trial)[0];
            exact.push(if n0 == 2 { brute_force_2(w) } else { brute_force_3(w) });
        }
        let single = |t: usize| {
            let part = spec.with_trials(t, 1);
            let kind = runner(part.kind());
            let ctx = LocalContext::new(&|_, _| {}, &never, &limits);
            for row in kind.run_unit(&part, 0, &ctx).expect("unit runs") {
                ctx.store(row).expect("stored");
            }
            match kind.finish(&part, &ctx).expect("finishes").output {
                Output::WorstCase { layers, .. } => layers[0].found_max.mean,
                _ => unreachable!(),
            }
        };
        for (t, want) in exact.iter().enumerate() {
            let got = single(t);
            println!(
                "n0 = {n0}, m = {width}, network {t}: search {got:.12}, brute force {want:.12}, relative {:.2e}",
                (got - want) / want
            );
            assert!(
                ((got - want) / want).abs() < 1e-6,
                "n0 = {n0}, m = {width}, network {t}: search {got}, brute force {want}"
            );
        }
        // The row's largest maximum is the largest of the networks'.
        let top = exact.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!(((rows[0].found_max.max - top) / top).abs() < 1e-6, "{rows:?}");
    }
}

#[test]
fn one_unit_one_layer_is_its_weight_norm() {
    // m = 1: max over the sphere of ReLU(w . x) is ||w||, the minimum is 0, and the spectral norm
    // is ||w|| exactly: the bracket closes.
    let body = json!({"kind": "worst_case",
        "network": {"input_dim": 6, "depth": 1, "width": 1, "init": {"scheme": "gaussian", "variance": 1.0}},
        "samples": 20, "trials": 4, "restarts": 4, "steps": 100, "seed": 8});
    let spec = validate(&body, &Limits::default()).expect("valid").spec;
    let rows = run(&body);
    let norms: Vec<f64> = (0..4u64)
        .map(|t| {
            let w = &draw_weights(&spec.network, 8, t)[0];
            w.iter().map(|v| v * v).sum::<f64>().sqrt()
        })
        .collect();
    let r = &rows[0];
    let max_norm = norms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min_norm = norms.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        ((r.found_max.max - max_norm) / max_norm).abs() < 1e-9,
        "{r:?} {norms:?}"
    );
    assert!(
        ((r.found_max.min - min_norm) / min_norm).abs() < 1e-9,
        "{r:?} {norms:?}"
    );
    assert_eq!(r.found_min.max, 0.0);
    assert!(((r.certified_max.max - max_norm) / max_norm).abs() < 1e-9, "{r:?}");
    assert!(r.bracket_holds);
}

#[test]
fn the_certified_bound_is_never_below_the_maximum_found() {
    let inits = [
        json!({"init": {"scheme": "he", "fan": "out"}}),
        json!({"init": {"scheme": "he", "fan": "in"}}),
        json!({"init": {"scheme": "orthogonal"}}),
        json!({"init": {"scheme": "gaussian", "variance": 0.3}}),
        json!({"weight_norm": {"gain": "derived"}}),
        json!({"init": {"scheme": "lecun"}}),
    ];
    let mut networks = 0;
    let mut layers = 0;
    for (i, init) in inits.iter().enumerate() {
        let mut network =
            json!({"input_dims_to_sweep": [2, 7, 20], "widths_to_sweep": [3, 12, 30], "depth": 1 + i % 4});
        for (k, v) in init.as_object().unwrap() {
            network[k] = v.clone();
        }
        let body = json!({"kind": "worst_case", "network": network, "samples": 40, "trials": 3,
                          "restarts": 3, "steps": 25, "seed": 100 + i as u64});
        for r in run(&body) {
            layers += 1;
            networks += if r.layer == 1 { r.networks } else { 0 };
            assert!(r.bracket_holds, "{init} {r:?}");
            assert!(r.found_max.max <= r.certified_max.max, "{init} {r:?}");
            assert!(r.search_at_least_random, "{init} {r:?}");
            assert!(
                r.found_max.min >= r.random_max.min && r.found_min.max <= r.random_min.max,
                "{r:?}"
            );
            // Each layer's spectral norm is known to the stated accuracy (or a cap of squarings
            // that the shapes here never reach).
            assert!(r.spectral_accuracy <= 1.0 + 1e-3 + 1e-9, "{r:?}");
            assert!(
                r.certified_accuracy <= (1.0f64 + 1e-3 + 1e-9).powi(r.layer as i32),
                "{r:?}"
            );
            assert!(r.sigma_lo.mean > 0.0 && r.sigma_lo.max <= r.sigma_hi.max, "{r:?}");
        }
    }
    assert_eq!(networks, 6 * 9 * 3);
    assert!(layers > 100, "{layers}");
}

#[test]
fn the_worst_case_grows_with_input_dimension_and_shrinks_with_width() {
    let body = json!({"kind": "worst_case",
        "network": {"input_dims_to_sweep": [2, 64], "widths_to_sweep": [32, 512], "depth": 2,
                    "init": {"scheme": "he", "fan": "out"}},
        "samples": 200, "trials": 6, "restarts": 4, "steps": 30, "seed": 2019});
    let rows = run(&body);
    let last = |n0: usize, m: usize| {
        rows.iter()
            .find(|r| r.input_dim == n0 && r.width == m && r.layer == 2)
            .unwrap()
    };
    let se = |r: &WorstCaseLayer| r.worst_deviation.std / (r.networks as f64).sqrt();
    let apart = |a: &WorstCaseLayer, b: &WorstCaseLayer| {
        // a's mean worst deviation above b's by more than 3 standard errors of the difference.
        let diff = a.worst_deviation.mean - b.worst_deviation.mean;
        assert!(
            diff > 3.0 * (se(a).powi(2) + se(b).powi(2)).sqrt(),
            "n0 {} m {}: {} vs n0 {} m {}: {}",
            a.input_dim,
            a.width,
            a.worst_deviation.mean,
            b.input_dim,
            b.width,
            b.worst_deviation.mean
        );
    };
    apart(last(64, 32), last(2, 32));
    apart(last(64, 512), last(2, 512));
    apart(last(64, 32), last(64, 512));
    apart(last(2, 32), last(2, 512));
    // And everywhere the worst case over the sphere deviates more than the random inputs do.
    for r in &rows {
        assert!(r.worst_deviation.min >= r.random_deviation.min, "{r:?}");
        assert!(r.worst_deviation.mean > r.random_deviation.mean, "{r:?}");
    }
}

#[test]
fn units_computed_in_any_order_give_the_same_bits() {
    let body = json!({"kind": "worst_case",
        "network": {"input_dims_to_sweep": [3, 5], "width": 10, "depth": 2, "init": {"scheme": "he", "fan": "in"}},
        "samples": 30, "trials": 11, "restarts": 2, "steps": 10, "seed": 77});
    let limits = Limits::default();
    let spec = validate(&body, &limits).expect("valid spec").spec;
    let whole = run(&body);
    let kind = runner(spec.kind());
    assert_eq!(kind.units(&spec), 4, "two points x (8 + 3 networks)");
    let never = AtomicBool::new(false);
    let ctx = LocalContext::new(&|_, _| {}, &never, &limits);
    for unit in [2u64, 0, 3, 1] {
        for row in kind.run_unit(&spec, unit, &ctx).expect("unit runs") {
            ctx.store(row).expect("stored");
        }
    }
    let shuffled = match kind.finish(&spec, &ctx).expect("finishes").output {
        Output::WorstCase { layers, .. } => layers,
        _ => unreachable!(),
    };
    assert_eq!(whole.len(), 2 * 2);
    for (a, b) in whole.iter().zip(&shuffled) {
        assert_eq!(serde_json::to_string(a).unwrap(), serde_json::to_string(b).unwrap());
    }
}

#[test]
fn worst_case_specs_over_the_limits_are_refused_before_running() {
    let body = json!({"kind": "worst_case",
        "network": {"input_dim": 1000, "depth": 10, "width": 1000, "init": {"scheme": "he", "fan": "out"}},
        "trials": 1000, "restarts": 1000, "steps": 100000, "seed": 1});
    let e = validate(&body, &Limits::default()).expect_err("over the work limit");
    assert_eq!(e.field, "steps", "{e}");
    assert!(e.message.contains("estimated work"), "{e}");
    let body = json!({"kind": "worst_case",
        "network": {"input_dim": 100, "depth": 2, "width": 1_000_000, "init": {"scheme": "he", "fan": "out"}},
        "trials": 1, "restarts": 1, "steps": 1, "seed": 1});
    let e = validate(&body, &Limits::default()).expect_err("over the memory limit");
    assert_eq!(e.field, "network.width", "{e}");
    assert!(e.message.contains("estimated memory"), "{e}");
}

#[test]
fn a_one_point_job_searches_the_norms_networks_of_the_same_seed() {
    // The norms kind (dense engine) draws its inputs and then its layers from the trial's stream;
    // a one-point worst_case job draws the same layers (sim::worst_case::draw_weights). Pushing
    // the norms job's inputs through those layers gives its ratios.
    use widthlab::sim::rng::trial_rng;
    use widthlab::sim::weights::fill_gaussian;
    let network = json!({"input_dim": 6, "widths": [9, 7, 8], "init": {"scheme": "he", "fan": "in"}});
    let norms = json!({"network": network, "samples": 25, "trials": 1, "method": "dense", "seed": 55});
    let limits = Limits::default();
    let never = AtomicBool::new(false);
    let spec = validate(&norms, &limits).expect("valid").spec;
    let report = match run_local(&spec, &limits, &|_, _| {}, &never).expect("runs").output {
        Output::Norms(report) => report,
        _ => unreachable!(),
    };
    let weights = draw_weights(&spec.network, 55, 0);
    let mut x = Array2::<f64>::zeros((25, 6));
    fill_gaussian(x.view_mut(), 1.0, &mut trial_rng(55, 0));
    for (l, layer) in report.layers.iter().enumerate() {
        let ratios: Vec<f64> = x
            .rows()
            .into_iter()
            .map(|row| {
                let mut h = row.to_owned();
                for w in &weights[..=l] {
                    h = w.dot(&h).mapv(|v| v.max(0.0));
                }
                h.dot(&h).sqrt() / row.dot(&row).sqrt()
            })
            .collect();
        let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            (layer.forward.max / max - 1.0).abs() < 1e-12,
            "layer {}: {} vs {max}",
            l + 1,
            layer.forward.max
        );
        assert!(
            (layer.forward.min / min - 1.0).abs() < 1e-12,
            "layer {}: {} vs {min}",
            l + 1,
            layer.forward.min
        );
    }
}
