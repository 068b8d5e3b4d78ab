//! Predictions against simulation: the exact gradient law (where mean-field is off), the
//! within-network spread of the forward ratio, and the quantile band.

use serde_json::json;
use widthlab::analysis::predict::predict;
use widthlab::sim::plan::parse_checked;
use widthlab::sim::{simulate, Control, Simulation};
use widthlab::spec::{Limits, Spec};

/// Multiplier of the standard error in every statistical assertion.
const Z: f64 = 5.0;

fn run(v: serde_json::Value) -> (Spec, Simulation) {
    let spec = parse_checked(&v, &Limits::default()).expect("valid spec");
    let sim = simulate(&spec, &Control::none()).expect("not cancelled");
    (spec, sim)
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt())
}

#[test]
fn the_gradient_prediction_is_the_exact_law_not_mean_field() {
    // 2000 single-input dense networks, width 100, depth 10: every network is one independent
    // draw, so the SE of a layer's mean is sd / sqrt(2000); the prediction's own Monte Carlo SE
    // adds in quadrature.
    let (spec, sim) = run(json!({
        "network": {"input_dim": 100, "depth": 10, "width": 100, "init": {"scheme": "he", "fan": "out"}},
        "samples": 1, "trials": 2000, "seed": 410, "method": "dense"
    }));
    let predicted = predict(&spec.network, spec.input);
    let mut mean_field_missed = Vec::new();
    for l in 1..=10 {
        let values: Vec<f64> = (0..2000)
            .map(|t| sim.gradient(t, l)[0])
            .filter(|v| v.is_finite())
            .collect();
        let (m, sd) = mean_sd(&values);
        let p = &predicted[l - 1].gradient;
        let se = ((sd * sd) / values.len() as f64 + p.standard_error.unwrap_or(0.0).powi(2)).sqrt();
        assert!(p.exact, "layer {l}: {}", p.law);
        assert!(
            (m - p.mean).abs() <= Z * se,
            "layer {l}: measured {m:.4} vs exact-law {:.4} (SE {se:.4})",
            p.mean
        );
        let mf = p.mean_field.as_ref().expect("mean-field kept").mean;
        if (m - mf).abs() > Z * se {
            mean_field_missed.push(l);
        }
    }
    // Mean field says 1 at every layer. The exact law puts the lower layers well above it (about
    // 1.17 at layer 1, 1.08 at layer 5: the s^2 term it drops; 7 to 20 SE away), and layer L
    // below it (0.945).
    for l in [1, 2, 3, 4, 5, 10] {
        assert!(
            mean_field_missed.contains(&l),
            "mean field was not rejected at layer {l}; rejected at {mean_field_missed:?}"
        );
    }
    // At layer L the prediction is closed-form: the forward law at layer L - 1.
    assert_eq!(predicted[9].gradient.mean, predicted[8].forward.mean);
}

#[test]
fn the_within_network_spread_of_the_forward_ratio_is_predicted() {
    // 150 networks of width 200, depth 8, 400 inputs each: per network the sample variance of
    // the forward ratio at each layer; their mean estimates E[Var within], with SE from their
    // spread over the independent networks.
    let networks = 150;
    let (spec, sim) = run(json!({
        "network": {"input_dim": 200, "depth": 8, "width": 200, "init": {"scheme": "he", "fan": "out"}},
        "samples": 400, "trials": networks, "seed": 411, "method": "dense"
    }));
    let predicted = predict(&spec.network, spec.input);
    for l in [2, 4, 8] {
        let variances: Vec<f64> = (0..networks).map(|t| mean_sd(sim.forward(t, l)).1.powi(2)).collect();
        let (m, sd) = mean_sd(&variances);
        let se = sd / (networks as f64).sqrt();
        let p = &predicted[l - 1].forward;
        let within = p.std_within_network.expect("Gaussian weights").powi(2);
        let total = p.std.expect("Gaussian weights").powi(2);
        assert!(
            (m - within).abs() <= Z * se,
            "layer {l}: measured within-network variance {m:.5} vs predicted {within:.5} (SE {se:.5})"
        );
        // And it is distinguishable from the spread over networks and inputs.
        assert!((m - total).abs() > Z * se, "layer {l}: {m:.5} vs total {total:.5}");
    }
}

#[test]
fn the_predicted_band_covers_ninety_percent_of_independent_draws() {
    // One input per network, 4000 networks: the fraction inside [p05, p95] is binomial around 0.9.
    let n = 4000;
    let (spec, sim) = run(json!({
        "network": {"input_dim": 50, "depth": 6, "width": 60, "init": {"scheme": "he", "fan": "out"}},
        "samples": 1, "trials": n, "seed": 412, "method": "dense"
    }));
    let predicted = predict(&spec.network, spec.input);
    let se = (0.9 * 0.1 / n as f64).sqrt();
    for l in 1..=6 {
        for (p, pick) in [
            (
                &predicted[l - 1].forward,
                Simulation::forward as fn(&Simulation, usize, usize) -> &[f64],
            ),
            (&predicted[l - 1].gradient, Simulation::gradient),
        ] {
            let (lo, hi) = (p.p05.expect("band"), p.p95.expect("band"));
            let inside = (0..n).filter(|&t| (lo..=hi).contains(&pick(&sim, t, l)[0])).count() as f64 / n as f64;
            // The band's own Monte Carlo error (>= 2000 draws) adds about as much again.
            assert!(
                (inside - 0.9).abs() <= Z * 2.0 * se,
                "layer {l}: {inside} inside [{lo}, {hi}]"
            );
        }
    }
}
