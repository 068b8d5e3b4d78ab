//! The exact density of the forward ratio (`theory::density`, drawn beside the histograms of
//! kept samples): against an independent two-layer quadrature, against the closed-form moments
//! E R^2 = 1 and E R^4 = prod (1 + 5/n_l), and in distribution against the dense engine (a
//! chi-square goodness-of-fit test that also rejects a slightly wrong law).

use serde_json::json;
use statrs::distribution::{Binomial, ChiSquared, Continuous, ContinuousCDF, Discrete};
use widthlab::jobs::kinds::validate;
use widthlab::sim::{simulate, Control};
use widthlab::spec::Limits;
use widthlab::theory::density::{forward_ratio_density, zero_mass, LayerLaw};

fn he(width: u64) -> LayerLaw {
    LayerLaw {
        width,
        variance: 2.0 / width as f64,
    }
}

/// Density of X = sigma^2 chi^2_K, K ~ Bin(n, 1/2), K >= 1, summed term by term with statrs.
fn layer_density(law: LayerLaw, x: f64) -> f64 {
    let binom = Binomial::new(0.5, law.width).unwrap();
    (1..=law.width)
        .map(|k| binom.pmf(k) * ChiSquared::new(k as f64).unwrap().pdf(x / law.variance) / law.variance)
        .sum()
}

/// Composite Simpson's rule of `f` over [a, b] with `n` (even) intervals.
fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let h = (b - a) / n as f64;
    let inner: f64 = (1..n)
        .map(|i| f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 })
        .sum();
    (f(a) + f(b) + inner) * h / 3.0
}

#[test]
fn two_layers_agree_with_an_independent_quadrature() {
    let (a, b) = (he(20), he(30));
    let mut worst: f64 = 0.0;
    for r in [0.5, 0.7, 0.9, 1.0, 1.1, 1.3, 1.6] {
        let u = r * r;
        // f_{R^2}(u) = int f_X1(x) f_X2(u / x) / x dx, in t = ln x to follow both tails.
        let f_u = simpson(
            |t| {
                let x = t.exp();
                layer_density(a, x) * layer_density(b, u / x)
            },
            -8.0,
            3.0,
            20_000,
        );
        let expected = 2.0 * r * f_u;
        let got = forward_ratio_density(&[a, b], &[r]).unwrap()[0];
        let rel = (got - expected).abs() / expected;
        worst = worst.max(rel);
        assert!(
            rel < 2e-5,
            "r = {r}: grid {got} vs quadrature {expected} (relative {rel:.2e})"
        );
    }
    eprintln!("two layers: worst relative difference from the quadrature {worst:.2e}");
}

#[test]
fn moments_of_the_density_are_the_closed_form_ones() {
    let layers = [he(20), he(50), he(30), he(100), he(40)];
    // The right tail of five narrow layers is long: integrate out to r = 12 (R^2 = 144).
    let n = 600_000;
    let hi = 12.0;
    let grid: Vec<f64> = (0..=n).map(|i| hi * i as f64 / n as f64).collect();
    let f = forward_ratio_density(&layers, &grid).unwrap();
    let h = hi / n as f64;
    let moment = |p: i32| -> f64 {
        let inner: f64 = (1..n)
            .map(|i| f[i] * grid[i].powi(p) * if i % 2 == 1 { 4.0 } else { 2.0 })
            .sum();
        (f[0] * grid[0].powi(p) + f[n] * grid[n].powi(p) + inner) * h / 3.0
    };
    let mass = moment(0) + zero_mass(&layers);
    let second = moment(2);
    let fourth = moment(4);
    let expected_fourth: f64 = [20.0, 50.0, 30.0, 100.0, 40.0].iter().map(|n| 1.0 + 5.0 / n).product();
    eprintln!("mass {mass:.8}, E R^2 {second:.8}, E R^4 {fourth:.8} (exact {expected_fourth:.8})");
    assert!((mass - 1.0).abs() < 1e-6, "total mass {mass}");
    assert!((second - 1.0).abs() < 1e-5, "E R^2 = {second}");
    assert!(
        (fourth / expected_fourth - 1.0).abs() < 1e-5,
        "E R^4 = {fourth} vs {expected_fourth}"
    );
}

/// Chi-square statistic of `values` against the law of `layers` over bins of width 0.1 on
/// [0.2, 2.2) plus the two tails; returns (statistic, degrees of freedom).
fn goodness_of_fit(values: &[f64], layers: &[LayerLaw]) -> (f64, f64) {
    // The density on [0, 2.2] at steps of 0.0005, evaluated once; each bin by Simpson's rule.
    let step = 0.0005;
    let grid: Vec<f64> = (0..=4400).map(|i| i as f64 * step).collect();
    let f = forward_ratio_density(layers, &grid).unwrap();
    let integral = |from: usize, to: usize| -> f64 {
        let inner: f64 = (from + 1..to)
            .map(|i| f[i] * if (i - from) % 2 == 1 { 4.0 } else { 2.0 })
            .sum();
        (f[from] + f[to] + inner) * step / 3.0
    };
    let mut probs = vec![zero_mass(layers) + integral(0, 400)];
    for b in 0..20 {
        probs.push(integral(400 + 200 * b, 600 + 200 * b));
    }
    probs.push(1.0 - probs.iter().sum::<f64>());
    let mut counts = vec![0usize; probs.len()];
    for &v in values {
        let i = if v < 0.2 {
            0
        } else if v >= 2.2 {
            probs.len() - 1
        } else {
            1 + ((v - 0.2) / 0.1).floor().min(19.0) as usize
        };
        counts[i] += 1;
    }
    let n = values.len() as f64;
    let stat = counts
        .iter()
        .zip(&probs)
        .map(|(&c, &p)| (c as f64 - n * p).powi(2) / (n * p))
        .sum();
    (stat, (probs.len() - 1) as f64)
}

#[test]
fn the_dense_engine_follows_the_density_and_a_wrong_law_is_rejected() {
    // One input per network: the 6000 ratios are independent draws of the law.
    let body = json!({"network": {"input_dim": 12, "depth": 3, "width": 16, "init": {"scheme": "he", "fan": "out"}},
        "samples": 1, "trials": 6000, "method": "dense", "seed": 2026});
    let spec = validate(&body, &Limits::default()).expect("valid spec").spec;
    let sim = simulate(&spec, &Control::none()).expect("runs");
    let values: Vec<f64> = (0..sim.trials.len()).map(|t| sim.forward(t, 3)[0]).collect();
    let law = [he(16), he(16), he(16)];
    let (stat, df) = goodness_of_fit(&values, &law);
    let p = 1.0 - ChiSquared::new(df).unwrap().cdf(stat);
    eprintln!("dense engine vs the exact law: chi-square {stat:.2} on {df} df, p = {p:.4}");
    assert!(p > 1e-3, "chi-square {stat:.2} on {df} df (p = {p:.2e})");
    // A law with 10% more weight variance in every layer is told apart by the same test.
    let wrong: Vec<LayerLaw> = law
        .iter()
        .map(|l| LayerLaw {
            variance: l.variance * 1.1,
            ..*l
        })
        .collect();
    let (stat, df) = goodness_of_fit(&values, &wrong);
    let p = 1.0 - ChiSquared::new(df).unwrap().cdf(stat);
    assert!(
        p < 1e-6,
        "a 10% wrong variance was not rejected: chi-square {stat:.2} (p = {p:.2e})"
    );
}
