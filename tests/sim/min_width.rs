//! The minimal-width search against ground truth: one input through one layer, where
//! P(m) = P(|sqrt(X) - 1| <= epsilon), X = (2/m) chi^2_K, K ~ Binomial(m, 1/2), is exact
//! (`theory::exact::layer_tail`); and the error rate of its decisions under repeated looks.

use std::sync::atomic::AtomicBool;

use serde_json::{json, Value};
use widthlab::analysis::search::{CellResult, Decision};
use widthlab::jobs::kinds::{run_local, validate, Output};
use widthlab::spec::Limits;
use widthlab::theory::exact::layer_tail;

/// P(m) for one input through one He (fan-out) layer.
fn exact_p(m: u64, epsilon: f64) -> f64 {
    1.0 - layer_tail(m, epsilon)
}

/// The smallest width with P(m) >= target (P rises with m here; checked by the caller's scan).
fn exact_min_width(epsilon: f64, target: f64) -> u64 {
    (1..100_000)
        .find(|&m| exact_p(m, epsilon) >= target)
        .expect("a width meets it")
}

fn search(v: Value) -> Vec<CellResult> {
    let limits = Limits::default();
    let spec = validate(&v, &limits).expect("valid spec").spec;
    let never = AtomicBool::new(false);
    match run_local(&spec, &limits, &|_, _| {}, &never)
        .expect("not cancelled")
        .output
    {
        Output::MinWidth { cells, .. } => cells,
        _ => panic!("not a search"),
    }
}

fn one_layer(epsilon: f64, delta: f64, range: [u64; 2], max_networks: u64, seed: u64) -> Value {
    json!({
        "kind": "min_width",
        "network": {"input_dim": 10, "depth": 1, "init": {"scheme": "he", "fan": "out"}},
        "samples": 1, "epsilon": epsilon, "delta": delta, "claim": "forward",
        "width_range": range, "max_networks_per_width": max_networks, "seed": seed
    })
}

#[test]
fn the_bracket_contains_the_exact_minimal_width() {
    // scipy: m* = 54 for (0.3, 0.05) (P(53) = 0.94904, P(54) = 0.95121) and m* = 151 for
    // (0.15, 0.1) (P(150) = 0.89932, P(151) = 0.90046); P rises with m on both ranges.
    for (epsilon, delta, want) in [(0.3, 0.05, 54u64), (0.15, 0.1, 151)] {
        let target = 1.0 - delta;
        let m_star = exact_min_width(epsilon, target);
        assert_eq!(m_star, want, "exact minimal width for ({epsilon}, {delta})");
        assert!((1..m_star).all(|m| exact_p(m, epsilon) < target));
        let mut contained = 0;
        for seed in 0..20u64 {
            let cells = search(one_layer(epsilon, delta, [1, 4 * m_star], 8192, 9000 + seed));
            let b = &cells[0].bracket;
            let inside = b.fail.is_none_or(|f| f < m_star) && b.pass.is_none_or(|p| m_star <= p);
            assert!(b.fail.is_some() || b.pass.is_some(), "nothing decided: {b:?}");
            if inside {
                contained += 1;
            } else {
                eprintln!("seed {seed}: bracket {b:?} misses {m_star}");
            }
        }
        assert!(
            contained >= 19,
            "({epsilon}, {delta}): {contained} of 20 brackets contain {m_star}"
        );
    }
}

#[test]
fn decisions_keep_their_error_rate_under_repeated_looks() {
    // A probe at a width where P is known: 46 (P = 0.9307 < 0.95: a pass is wrong) and 66
    // (P = 0.9708 >= 0.95: a fail is wrong). The first probe of a search may spend
    // 0.05 * 6/pi^2 = 0.0304 of error over all its looks; a naive 95% test at every look would
    // err far more often. Over 300 probes the wrong count is Binomial(300, <= 0.0304): its
    // mean is at most 9.1 and sd 3.0; 21 is 4 sd above.
    for (width, wrong_decision) in [(46u64, Decision::Pass), (66, Decision::Fail)] {
        let p = exact_p(width, 0.3);
        assert!((p - 0.95).abs() > 0.015, "{p}");
        let mut wrong = 0;
        for seed in 0..300u64 {
            let cells = search(one_layer(0.3, 0.05, [width, width], 4096, 20_000 + seed));
            let probe = &cells[0].probes[0];
            assert_eq!(probe.width, width);
            if probe.decision == wrong_decision {
                wrong += 1;
            }
        }
        assert!(
            wrong <= 21,
            "width {width} (P = {p:.4}): {wrong} wrong decisions in 300"
        );
    }
}

#[test]
fn a_table_searches_every_cell_and_reports_each_bounds_looseness() {
    let cells = search(json!({
        "kind": "min_width",
        "network": {"input_dim": 10, "depth": [1, 2], "init": {"scheme": "he", "fan": "out"}},
        "samples": 1, "epsilon": [0.3, 0.5], "delta": 0.05, "claim": "forward",
        "width_range": [1, 400], "max_networks_per_width": 16384, "seed": 5
    }));
    let shape: Vec<(f64, usize)> = cells.iter().map(|c| (c.epsilon, c.depth)).collect();
    assert_eq!(shape, [(0.3, 1), (0.3, 2), (0.5, 1), (0.5, 2)]);
    for c in &cells {
        assert_eq!(c.bounds.len(), 3);
        if let Some(pass) = c.bracket.pass {
            for b in &c.bounds {
                if let (Some(w), Some(l)) = (b.min_width, b.looseness) {
                    assert!((l - w as f64 / pass as f64).abs() < 1e-12);
                }
            }
        }
    }
    // A smaller epsilon needs more width (m* = 54 at 0.3, depth 1), a deeper network too.
    let pass = |e: f64, d: usize| {
        cells
            .iter()
            .find(|c| c.epsilon == e && c.depth == d)
            .and_then(|c| c.bracket.pass)
            .unwrap_or(u64::MAX)
    };
    assert!(pass(0.3, 1) > pass(0.5, 1), "{cells:?}");
    assert!(pass(0.3, 2) > pass(0.3, 1), "{cells:?}");
}
