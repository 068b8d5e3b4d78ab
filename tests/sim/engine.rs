//! Integration tests of the simulator against the exact laws of docs/theory.md (sections 1-3, 5, 7).
//!
//! Every statistical tolerance is derived from a standard error (SE) computed in the test, and
//! every SE is stated in a one-line comment. Samples drawn through one network are correlated,
//! so unless a run has one sample per network the SE of a pooled mean is the *cluster* SE: the
//! sample standard deviation of the per-trial means over sqrt(trials) (trials are independent
//! networks; with equal samples per trial the pooled mean is the mean of the trial means),
//! floored at the i.i.d. SE (see `pooled_se`).
//! Seeds are fixed and were chosen before the tests were first run.
//!
//! Run with `cargo test --release --test sim` (the debug profile is far too slow).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};
use widthlab::analysis::report::{build_report, RunReport};
use widthlab::sim::plan::parse_checked;
use widthlab::sim::{simulate, Cancelled, Control, Simulation};
use widthlab::spec::{Limits, Spec};

/// Multiplier of the standard error in every statistical assertion.
const Z: f64 = 5.0;

/// These tests exercise the dense engine: specs default to `"method": "dense"` here (the
/// exact samplers have their own tests in tests/exact.rs).
fn parse(v: &Value) -> Spec {
    let mut v = v.clone();
    if v.get("method").is_none() {
        v["method"] = serde_json::json!("dense");
    }
    parse_checked(&v, &Limits::default()).unwrap_or_else(|e| panic!("spec refused: {e}\n{v}"))
}

fn run(v: Value) -> (Spec, Simulation) {
    let spec = parse(&v);
    let sim = simulate(&spec, &Control::none()).expect("not cancelled");
    assert_eq!(sim.trials.len(), spec.trials);
    assert_eq!((sim.depth, sim.samples), (spec.network.depth(), spec.samples));
    (spec, sim)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample variance (n - 1 denominator).
fn var(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() as f64 - 1.0)
}

/// Mean of i.i.d. values and its standard error sd / sqrt(n).
fn mean_se(v: &[f64]) -> (f64, f64) {
    (mean(v), (var(v) / v.len() as f64).sqrt())
}

#[derive(Clone, Copy)]
enum Ratio {
    Forward,
    Gradient,
}

fn layer(sim: &Simulation, which: Ratio, t: usize, l: usize) -> &[f64] {
    match which {
        Ratio::Forward => sim.forward(t, l),
        Ratio::Gradient => sim.gradient(t, l),
    }
}

/// Per-trial mean of f(r) over the samples of layer l (one value per independent network).
fn trial_means(sim: &Simulation, which: Ratio, l: usize, f: impl Fn(f64) -> f64) -> Vec<f64> {
    (0..sim.trials.len())
        .map(|t| {
            let v = layer(sim, which, t, l);
            assert!(
                v.iter().all(|r| r.is_finite()),
                "non-finite ratio in trial {t} layer {l}"
            );
            v.iter().map(|&r| f(r)).sum::<f64>() / v.len() as f64
        })
        .collect()
}

/// Every value of layer l pooled over trials and samples.
fn pooled(sim: &Simulation, which: Ratio, l: usize) -> Vec<f64> {
    (0..sim.trials.len())
        .flat_map(|t| layer(sim, which, t, l).iter().copied())
        .collect()
}

/// Standard error of the pooled mean of a per-sample statistic u(r): the cluster SE (sd of the
/// per-trial means over sqrt(trials)), floored at the i.i.d. SE (sd of all values over
/// sqrt(trials x samples)). The floor is a rigorous lower bound: inputs are i.i.d. given the
/// network, so two samples of one network have covariance Var(E[u | W]) >= 0. It matters when
/// there are few networks, whose sample sd can fall far below the truth (16 networks of the
/// weight-norm test gave a cluster SE half the floor).
fn pooled_se(sim: &Simulation, which: Ratio, l: usize, u: impl Fn(f64) -> f64) -> (f64, f64) {
    let per_trial = trial_means(sim, which, l, &u);
    let values: Vec<f64> = pooled(sim, which, l).into_iter().map(u).collect();
    let (m, cluster) = mean_se(&per_trial);
    (m, cluster.max(mean_se(&values).1))
}

/// Estimates for layer l: (mean of r, SE), (mean of r^2, SE), (plug-in variance, SE).
/// SE of the variance: delta method on (M1, M2), the influence of a sample is r^2 - 2 M1 r.
struct Moments {
    m1: (f64, f64),
    m2: (f64, f64),
    var: (f64, f64),
}

fn moments(sim: &Simulation, which: Ratio, l: usize) -> Moments {
    let m1 = pooled_se(sim, which, l, |r| r);
    let m2 = pooled_se(sim, which, l, |r| r * r);
    let var_se = pooled_se(sim, which, l, |r| r * r - 2.0 * m1.0 * r).1;
    Moments {
        m1,
        m2,
        var: (m2.0 - m1.0 * m1.0, var_se),
    }
}

/// Ratio E r(l) / E r(l-1) estimated by the ratio of pooled means, with its delta-method SE
/// (per-sample residuals r(l) - R r(l-1), same SE rule as [`pooled_se`]).
fn ratio_of_means(sim: &Simulation, l: usize) -> (f64, f64) {
    let (num, den) = (pooled(sim, Ratio::Forward, l), pooled(sim, Ratio::Forward, l - 1));
    let r = mean(&num) / mean(&den);
    let s = sim.samples;
    let resid: Vec<f64> = num.iter().zip(&den).map(|(a, b)| a - r * b).collect();
    let per_trial: Vec<f64> = resid.chunks(s).map(mean).collect();
    (r, mean_se(&per_trial).1.max(mean_se(&resid).1) / mean(&den))
}

#[track_caller]
fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:.6}, want {want:.6} +/- {tol:.6} (off by {:.2} tolerances)",
        (got - want).abs() / tol
    );
}

#[track_caller]
fn assert_rel(what: &str, got: f64, want: f64, rel: f64) {
    assert!(
        ((got - want) / want).abs() <= rel,
        "{what}: got {got:.15e}, want {want:.15e} (rel {rel:e})"
    );
}

fn he_out(input_dim: usize, depth: usize, width: usize) -> Value {
    json!({"input_dim": input_dim, "depth": depth, "width": width, "init": {"scheme": "he", "fan": "out"}})
}

// ---------------------------------------------------------------------------------------------
// docs/theory.md section 5: the exact per-layer law under he/out.
// ---------------------------------------------------------------------------------------------

/// X_l = (r_f(l) / r_f(l-1))^2 = (2/n) chi^2_K, K ~ Bin(n, 1/2), independent across layers.
/// With one sample per network, every trial is an independent draw of (X_1, ..., X_L).
#[test]
fn he_out_layer_factors_follow_the_exact_law() {
    let (n, depth, trials) = (40usize, 3usize, 4000usize);
    let (_, sim) = run(json!({"network": he_out(50, depth, n), "samples": 1, "trials": trials, "seed": 11}));
    let nf = n as f64;
    let big_n = trials as f64;
    let xs: Vec<Vec<f64>> = (1..=depth)
        .map(|l| {
            (0..trials)
                .map(|t| {
                    let prev = if l == 1 { 1.0 } else { sim.forward(t, l - 1)[0] };
                    (sim.forward(t, l)[0] / prev).powi(2)
                })
                .collect()
        })
        .collect();
    // Central 4th moment of X: X is the mean of n i.i.d. T = 2 ReLU(z)^2 with E T = 1, Var T = 5,
    // E(T-1)^4 = 633, so mu4(X) = (633 + 75 (n - 1)) / n^3 (checked against the binomial sum).
    let mu4 = (633.0 + 75.0 * (nf - 1.0)) / nf.powi(3);
    let sigma2 = 5.0 / nf;
    for (i, x) in xs.iter().enumerate() {
        assert!(x.iter().all(|v| v.is_finite()));
        // SE of the mean of X: sqrt(Var X / trials) = sqrt(5/n / trials).
        assert_close(&format!("E X_{}", i + 1), mean(x), 1.0, Z * (sigma2 / big_n).sqrt());
        // SE of the sample variance: sqrt((mu4 - sigma^4 (N-3)/(N-1)) / N).
        let se_var = ((mu4 - sigma2 * sigma2 * (big_n - 3.0) / (big_n - 1.0)) / big_n).sqrt();
        assert_close(&format!("Var X_{}", i + 1), var(x), sigma2, Z * se_var);
    }
    // Independence across layers: the sample correlation of independent variables has SE ~ 1/sqrt(N).
    for l in 1..depth {
        let (a, b) = (&xs[l - 1], &xs[l]);
        let (ma, mb) = (mean(a), mean(b));
        let cov = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / (big_n - 1.0);
        let corr = cov / (var(a) * var(b)).sqrt();
        assert_close(&format!("corr(X_{l}, X_{})", l + 1), corr, 0.0, Z / big_n.sqrt());
    }
    // Product law: r_f(L)^2 = prod X_l, so E r^2 = 1, E r^4 = prod(1 + 5/n_l), E r^8 = prod E X^4
    // with E X^4 = 1 + 30/n + 251/n^2 + 558/n^3 (cumulants of T: 1, 5, 44, 558).
    let r2: Vec<f64> = (0..trials).map(|t| sim.forward(t, depth)[0].powi(2)).collect();
    let r4: Vec<f64> = r2.iter().map(|v| v * v).collect();
    let e4 = (1.0 + 5.0 / nf).powi(depth as i32);
    let e8 = (1.0 + 30.0 / nf + 251.0 / nf.powi(2) + 558.0 / nf.powi(3)).powi(depth as i32);
    // SE of mean r^2: sqrt((E r^4 - 1) / N).
    assert_close("E r_f(L)^2", mean(&r2), 1.0, Z * ((e4 - 1.0) / big_n).sqrt());
    // SE of mean r^4: sqrt((E r^8 - (E r^4)^2) / N).
    assert_close("E r_f(L)^4", mean(&r4), e4, Z * ((e8 - e4 * e4) / big_n).sqrt());
    // The same number in the library's closed form, and docs/theory.md's reference value.
    assert_rel(
        "fourth moment",
        widthlab::theory::exact::fourth_moment_he_out(&[n; 3]),
        e4,
        1e-12,
    );
    assert_rel(
        "fourth moment m=100 L=10",
        widthlab::theory::exact::fourth_moment_he_out(&[100; 10]),
        1.628895,
        1e-6,
    );
}

/// Check the exact per-layer predictions of the report (mean, std, mean square) against a run
/// of many networks, and the report's own statistics against the raw ratios.
fn check_exact_forward_predictions(spec: &Spec, sim: &Simulation, report: &RunReport) {
    for l in 1..=spec.network.depth() {
        let lr = &report.layers[l - 1];
        let p = &lr.predicted.forward;
        assert!(p.exact, "layer {l}: Gaussian init must give an exact forward law");
        let m = moments(sim, Ratio::Forward, l);
        // SE: cluster SE of the pooled mean over independent networks (see `pooled_se`).
        assert_close(&format!("layer {l} mean r_f"), m.m1.0, p.mean, Z * m.m1.1);
        assert_close(&format!("layer {l} mean r_f^2"), m.m2.0, p.mean_square, Z * m.m2.1);
        let std = p.std.expect("exact law gives a std");
        assert_rel(
            &format!("layer {l} std^2 = ms - mean^2"),
            std * std,
            p.mean_square - p.mean * p.mean,
            1e-9,
        );
        // SE of the std: delta method, SE(var) / (2 std).
        assert_close(
            &format!("layer {l} std r_f"),
            m.var.0.sqrt(),
            std,
            Z * m.var.1 / (2.0 * std),
        );
        // The report's pooled statistics are those of the raw ratios.
        let all = pooled(sim, Ratio::Forward, l);
        assert_eq!(lr.forward.count, all.len() as u64);
        assert_rel(&format!("layer {l} report mean"), lr.forward.mean, mean(&all), 1e-12);
        assert_rel(&format!("layer {l} report std"), lr.forward.std, var(&all).sqrt(), 1e-9);
        assert_rel(
            &format!("layer {l} weight variance"),
            lr.weight_variance,
            spec.network.weight_variance(l),
            0.0,
        );
    }
}

#[test]
fn exact_forward_prediction_he_out() {
    let (spec, sim) = run(json!({"network": he_out(500, 10, 100), "samples": 4, "trials": 600, "seed": 21}));
    let report = build_report(&spec, &sim);
    // E sqrt(X) for X = (2/100) chi^2_K, K ~ Bin(100, 1/2), summed in scipy: 0.9937319379547626.
    let f: f64 = 0.993_731_937_954_762_6;
    for l in 1..=10 {
        let p = &report.layers[l - 1].predicted.forward;
        assert_rel(&format!("predicted mean layer {l}"), p.mean, f.powi(l as i32), 1e-9);
        assert_rel(&format!("predicted ms layer {l}"), p.mean_square, 1.0, 1e-12);
        assert_rel(
            "weight variance 2/n_l",
            report.layers[l - 1].weight_variance,
            0.02,
            1e-15,
        );
    }
    check_exact_forward_predictions(&spec, &sim, &report);
}

#[test]
fn exact_forward_prediction_he_in_nonuniform_widths() {
    let widths = [60usize, 20, 80, 40];
    let v = json!({
        "network": {"input_dim": 30, "widths": widths, "init": {"scheme": "he", "fan": "in"}},
        "samples": 2, "trials": 3000, "seed": 22
    });
    let (spec, sim) = run(v);
    let report = build_report(&spec, &sim);
    // Var 2/n_{l-1}: the squared norm scales by n_l / n_{l-1}, so E r_f(l)^2 = n_l / n_0.
    // Exact means from scipy (product of E sqrt(sigma^2 chi^2_K) per layer).
    let means = [
        1.399_410_970_054_013_4,
        0.782_329_277_675_600_5,
        1.552_390_445_255_960_7,
        1.080_429_266_319_076_7,
    ];
    for (l, (&w, &m)) in widths.iter().zip(&means).enumerate() {
        let p = &report.layers[l].predicted.forward;
        assert_rel(&format!("predicted mean layer {}", l + 1), p.mean, m, 1e-9);
        assert_rel(
            &format!("predicted ms layer {}", l + 1),
            p.mean_square,
            w as f64 / 30.0,
            1e-12,
        );
        let fan_in = if l == 0 { 30 } else { widths[l - 1] };
        assert_rel(
            "weight variance 2/n_{l-1}",
            report.layers[l].weight_variance,
            2.0 / fan_in as f64,
            1e-15,
        );
    }
    check_exact_forward_predictions(&spec, &sim, &report);
}

/// docs/theory.md section 2: `glorot` as the paper codes it, N(0, 1/n_l), loses a factor about 2^{-1/2}
/// per layer (one network of the paper's setting: 0.70, 0.51, 0.35, ...). Averaged over many
/// networks the per-layer factor is exactly E sqrt((1/n) chi^2_K).
#[test]
fn glorot_paper_decays_by_the_exact_factor() {
    let (spec, sim) = run(json!({
        "network": {"input_dim": 500, "depth": 10, "width": 100, "init": {"scheme": "glorot_paper"}},
        "samples": 20, "trials": 300, "seed": 31
    }));
    let report = build_report(&spec, &sim);
    // E sqrt(X), X = (1/100) chi^2_K, K ~ Bin(100, 1/2), from scipy: 0.7026745920094621
    // (2^{-1/2} (1 - 5/(8n)) to first order).
    let factor: f64 = 0.702_674_592_009_462_1;
    for l in 1..=10 {
        let p = &report.layers[l - 1].predicted.forward;
        assert_rel(
            &format!("predicted mean layer {l}"),
            p.mean,
            factor.powi(l as i32),
            1e-9,
        );
        assert_rel(
            &format!("predicted ms layer {l}"),
            p.mean_square,
            0.5f64.powi(l as i32),
            1e-12,
        );
    }
    check_exact_forward_predictions(&spec, &sim, &report);
    for l in 2..=10 {
        // E r(l) / E r(l-1) = E sqrt(X_l) since X_l is independent of r(l-1); delta-method SE.
        let (r, se) = ratio_of_means(&sim, l);
        assert_close(&format!("mean ratio layer {l}/{}", l - 1), r, factor, Z * se);
    }
}

// ---------------------------------------------------------------------------------------------
// docs/theory.md section 3: gradient ratios.
// ---------------------------------------------------------------------------------------------

/// Under he/out the gradient ratios are about 1. The report's mean-field prediction of E r_g^2
/// (1 for every layer) is visibly biased with the paper's 20-class head: at width 100, depth 10
/// E r_g(1)^2 is about 1.5 (confirmed by an independent numpy simulation). The cause is exact:
/// h^l . delta^l = z . (p - t) is the same at every layer (Euler's identity for the homogeneous
/// network). Splitting W^l into its parts along and orthogonal to h^{l-1} gives exactly
/// E||delta^{l-1}||^2 = (2/n)||delta^l||^2 (K_{l-1} - 1) + (z.e)^2 / ||h^{l-1}||^2 (K = active
/// units): the mean-field keeps K but drops the -1 and the (z.e)^2 term. With a 2-class head e is
/// proportional to (1, -1), the two corrections cancel in expectation (both 2/n relative), and E r_g(l)^2 = 1 holds exactly (conditioning on everything but the
/// part of W^l orthogonal to h^{l-1}). So the mean-field prediction is tested with classes = 2.
#[test]
fn he_out_gradient_second_moment_is_one_with_a_two_class_head() {
    let mut net = he_out(500, 10, 100);
    net["head"] = json!({"classes": 2});
    let (spec, sim) = run(json!({"network": net, "samples": 4, "trials": 1000, "seed": 41}));
    let report = build_report(&spec, &sim);
    for l in 1..=10 {
        // The mean-field value is its own field (the prediction itself is the exact law).
        let p = report.layers[l - 1]
            .predicted
            .gradient
            .mean_field
            .clone()
            .expect("the mean-field value is kept");
        assert_rel(&format!("mean-field E r_g^2 layer {l}"), p.mean_square, 1.0, 1e-12);
        assert_rel(&format!("mean-field mean layer {l}"), p.mean, 1.0, 1e-12);
        let m = moments(&sim, Ratio::Gradient, l);
        // Cluster SE of the pooled mean of r_g^2.
        assert_close(&format!("layer {l} E r_g^2"), m.m2.0, p.mean_square, Z * m.m2.1);
        // predicted.mean is sqrt(E r^2): the mean of r lies below it by the Jensen gap
        // Var(r) / (sqrt(E r^2) + E r) <= Var(r); tolerance = that gap + 5 cluster SE.
        assert!(
            m.m1.0 <= p.mean + Z * m.m1.1,
            "layer {l}: mean r_g {} above sqrt(E r^2)",
            m.m1.0
        );
        assert_close(&format!("layer {l} mean r_g"), m.m1.0, p.mean, m.var.0 + Z * m.m1.1);
    }
    // At l = L the gradient ratio is a pure forward ratio: r_g(L) = ||h^{L-1}|| / ||x||.
    for t in 0..spec.trials {
        for (g, f) in sim.gradient(t, 10).iter().zip(sim.forward(t, 9)) {
            assert_rel("r_g(L) = r_f(L-1)", *g, *f, 1e-12);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// docs/theory.md section 7: weight-normalized networks in the paper's setting.
// ---------------------------------------------------------------------------------------------

/// n_0 = 500, width 2000, depth 10. Naive gain: the forward ratio is sqrt(2) at layer 1 and
/// shrinks by 2^{-1/2} per layer (0.0625 at layer 10); the gradient ratio is about 0.088 for
/// l >= 2 and 0.044 at l = 1. Derived gain: both about 1.
///
/// E r_f(l)^2 = prod_k g^2 n_k / (2 n_{k-1}) is exact in expectation for isotropic directions,
/// so the forward mean square is tested within cluster SE. Network-to-network noise is about
/// sqrt(5 l / m) / 2 (8% at layer 10), hence 16 networks rather than one.
#[test]
fn weight_norm_paper_setting() {
    let (depth, m, n0) = (10usize, 2000usize, 500usize);
    let wn = |gain: &str, classes: u64| {
        json!({
            "network": {"input_dim": n0, "depth": depth, "width": m,
                        "weight_norm": {"gain": gain, "direction": "gaussian"}, "head": {"classes": classes}},
            "samples": 8, "trials": 16, "seed": 51
        })
    };
    // Naive gain with the paper's 20-class head; derived gain with a 2-class head (see below).
    let (naive_spec, naive) = run(wn("naive", 20));
    let (derived_spec, derived) = run(wn("derived", 2));
    let naive_report = build_report(&naive_spec, &naive);
    let derived_report = build_report(&derived_spec, &derived);

    let sqrt2 = std::f64::consts::SQRT_2;
    for l in 1..=depth {
        // --- naive, forward: sqrt(2) 2^{-(l-1)/2} ---
        let fwd_ref = sqrt2 * 0.5f64.powf((l as f64 - 1.0) / 2.0);
        let p = &naive_report.layers[l - 1].predicted.forward;
        assert!(!p.exact);
        assert_rel(
            &format!("naive predicted ms layer {l}"),
            p.mean_square,
            fwd_ref * fwd_ref,
            1e-12,
        );
        let f = moments(&naive, Ratio::Forward, l);
        // Cluster SE of the pooled mean of r_f^2 (16 networks).
        assert_close(
            &format!("naive layer {l} E r_f^2"),
            f.m2.0,
            fwd_ref * fwd_ref,
            Z * f.m2.1,
        );
        // Mean of r: 5 cluster SE plus the Jensen gap sqrt(E r^2) - E r <= Var(r) / sqrt(E r^2).
        assert_close(
            &format!("naive layer {l} mean r_f"),
            f.m1.0,
            fwd_ref,
            Z * f.m1.1 + f.var.0 / fwd_ref,
        );

        // --- naive, gradient: 2^{-3.5} = 0.0884 for l >= 2, 2^{-4.5} = 0.0442 at l = 1 ---
        let grad_ref = if l == 1 { 0.5f64.powf(4.5) } else { 0.5f64.powf(3.5) };
        let p = &naive_report.layers[l - 1].predicted.gradient;
        assert_rel(&format!("naive predicted gradient layer {l}"), p.mean, grad_ref, 1e-12);
        let g = moments(&naive, Ratio::Gradient, l);
        // Mean-field is exact at l = L; below, the 20-class head adds (z.e)^2/||h^{l-1}||^2 per
        // layer (see the he/out gradient test), at most 2C/m relative in E r^2 by Cauchy-Schwarz
        // (E||z||^2 = C ||h^L||^2, E||delta^L||^2 ~ (m/2)||e||^2), so at most (L - l) C / m
        // relative in r, to first order. Tolerance: that + Jensen gap + 5 cluster SE.
        let head = grad_ref * (depth - l) as f64 * 20.0 / m as f64;
        assert_close(
            &format!("naive layer {l} mean r_g"),
            g.m1.0,
            grad_ref,
            Z * g.m1.1 + g.var.0 / grad_ref + head,
        );

        // --- derived: the same directions (same seed) scaled by g_l = sqrt(2 n_{l-1}/n_l), so
        // the forward ratios are the naive ones times prod_{k<=l} g_k, up to rounding. ---
        let fan_in = |k: usize| if k == 1 { n0 as f64 } else { m as f64 };
        let scale: f64 = (1..=l).map(|k| (2.0 * fan_in(k) / m as f64).sqrt()).product();
        for t in 0..16 {
            for (d, nv) in derived.forward(t, l).iter().zip(naive.forward(t, l)) {
                assert_rel(&format!("derived = naive x prod g, layer {l}"), *d, nv * scale, 1e-12);
            }
        }
        let f = moments(&derived, Ratio::Forward, l);
        // Cluster SE, plus the Jensen gap for the mean of r (E r_f^2 = 1 exactly).
        assert_close(&format!("derived layer {l} E r_f^2"), f.m2.0, 1.0, Z * f.m2.1);
        assert_close(
            &format!("derived layer {l} mean r_f"),
            f.m1.0,
            1.0,
            Z * f.m1.1 + f.var.0,
        );
        // Derived gradient, 2-class head (no head bias at first order): E r_g^2 = 1 up to the
        // fixed-norm-row corrections of order 1/m per layer (the -1 in the mask fraction
        // (K-1)/(n-1), the a_i^2 term of the v-gradient), allowed as 2/m per layer below l.
        let p = &derived_report.layers[l - 1].predicted.gradient;
        assert_rel(
            &format!("derived predicted gradient ms layer {l}"),
            p.mean_square,
            1.0,
            1e-12,
        );
        let g = moments(&derived, Ratio::Gradient, l);
        let rows = 2.0 * (depth - l + 1) as f64 / m as f64;
        assert_close(&format!("derived layer {l} E r_g^2"), g.m2.0, 1.0, Z * g.m2.1 + rows);
        assert_close(
            &format!("derived layer {l} mean r_g"),
            g.m1.0,
            1.0,
            Z * g.m1.1 + g.var.0 + rows,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reproducibility and precision.
// ---------------------------------------------------------------------------------------------

#[test]
fn results_are_bit_identical_for_any_thread_count() {
    let specs = [
        json!({"network": he_out(100, 4, 64), "samples": 16, "trials": 8, "seed": 61}),
        json!({"network": {"input_dim": 40, "widths": [64, 32, 48], "init": {"scheme": "orthogonal", "gain": 1.5}},
               "samples": 16, "trials": 8, "seed": 62, "precision": "f32"}),
        json!({"network": {"input_dim": 40, "depth": 3, "width": 50, "weight_norm": {"gain": "derived", "direction": "orthogonal"}},
               "samples": 16, "trials": 8, "seed": 63, "input": {"distribution": "sphere"}}),
    ];
    for v in specs {
        let spec = parse(&v);
        let sims = crate::on_one_and_two_threads(&spec);
        assert!(sims[0]
            .trials
            .iter()
            .all(|t| t.forward.iter().chain(&t.gradient).all(|r| r.is_finite())));
        assert!(sims[0] == sims[1], "1 vs 2 threads differ for {v}");
        // Distinct trials are distinct networks.
        assert_ne!(sims[0].trials[0], sims[0].trials[1]);
    }
}

/// The f32 engine draws the same normals (the f64 draw rounded), so for one seed its ratios
/// agree with f64 up to f32 rounding: about 1e-7 per operation, 1e-6 after accumulation.
#[test]
fn f32_agrees_with_f64_for_the_same_seed() {
    let base = json!({"network": he_out(500, 10, 100), "samples": 50, "trials": 2, "seed": 71});
    let mut f32_spec = base.clone();
    f32_spec["precision"] = json!("f32");
    let (_, a) = run(base);
    let (_, b) = run(f32_spec);
    let worst = |f: fn(&widthlab::sim::TrialRatios) -> &Vec<f64>| {
        (0..2)
            .flat_map(|t| {
                f(&a.trials[t])
                    .iter()
                    .zip(f(&b.trials[t]))
                    .map(|(x, y)| ((x - y) / x).abs())
            })
            .fold(0.0f64, f64::max)
    };
    let (fwd, grad) = (worst(|t| &t.forward), worst(|t| &t.gradient));
    assert!(fwd <= 1e-4, "forward f32 vs f64: max relative difference {fwd:e}");
    assert!(fwd > 0.0, "f32 run identical to f64: was it run in f32 at all?");
    // The gradient goes through 10 more layers and the softmax head: still ~1e-5 at worst.
    assert!(grad <= 1e-4, "gradient f32 vs f64: max relative difference {grad:e}");
}

// ---------------------------------------------------------------------------------------------
// Orthogonal init and sphere inputs.
// ---------------------------------------------------------------------------------------------

/// Gain sqrt(2) times Haar-orthogonal rows/columns: E||h^l||^2 / ||h^{l-1}||^2 = g^2 n_l / (2 max)
/// exactly (1 when widening or square, 1/2 for 80 -> 40). Sphere inputs: the ratios are scale
/// invariant and a Gaussian input's direction is uniform on the sphere, so the law is the same.
#[test]
fn orthogonal_second_moment_and_sphere_inputs() {
    let widths = [80usize, 80, 40, 60];
    let net =
        json!({"input_dim": 50, "widths": widths, "init": {"scheme": "orthogonal", "gain": std::f64::consts::SQRT_2}});
    let (spec, gauss) = run(json!({"network": net, "samples": 2, "trials": 2000, "seed": 81}));
    let (_, sphere) =
        run(json!({"network": net, "samples": 2, "trials": 2000, "seed": 82, "input": {"distribution": "sphere"}}));
    let report = build_report(&spec, &gauss);
    let want = [1.0, 1.0, 0.5, 0.5];
    for l in 1..=4 {
        let p = &report.layers[l - 1].predicted.forward;
        assert!(!p.exact && p.std.is_none());
        assert_rel(&format!("predicted ms layer {l}"), p.mean_square, want[l - 1], 1e-12);
        assert_rel(&format!("predicted mean layer {l}"), p.mean, want[l - 1].sqrt(), 1e-12);
        let g = moments(&gauss, Ratio::Forward, l);
        let s = moments(&sphere, Ratio::Forward, l);
        // Cluster SE for each run; the two runs are independent, so their difference has SE
        // sqrt(se_a^2 + se_b^2).
        assert_close(
            &format!("gaussian inputs layer {l} E r_f^2"),
            g.m2.0,
            want[l - 1],
            Z * g.m2.1,
        );
        assert_close(
            &format!("sphere inputs layer {l} E r_f^2"),
            s.m2.0,
            want[l - 1],
            Z * s.m2.1,
        );
        assert_close(
            &format!("sphere - gaussian layer {l} mean r_f"),
            s.m1.0 - g.m1.0,
            0.0,
            Z * g.m1.1.hypot(s.m1.1),
        );
        assert_close(
            &format!("sphere - gaussian layer {l} var r_f"),
            s.var.0 - g.var.0,
            0.0,
            Z * g.var.1.hypot(s.var.1),
        );
    }
    // Layer 1 widens (50 -> 80): W has orthonormal columns times sqrt(2), so ||W x|| = sqrt(2)||x||
    // and r_f(1)^2 = 2 x (share of ||Wx||^2 on positive coordinates) lies in [0, 2].
    for t in 0..spec.trials {
        assert!(gauss.forward(t, 1).iter().all(|r| r * r <= 2.0 + 1e-12));
    }
}

// ---------------------------------------------------------------------------------------------
// Bound checks (docs/theory.md sections 4 and 8): verdicts as serialized.
// ---------------------------------------------------------------------------------------------

fn bound_checks(v: Value) -> Vec<Value> {
    let (spec, sim) = run(v);
    let report = serde_json::to_value(build_report(&spec, &sim)).unwrap();
    let checks = report["bound_checks"].as_array().unwrap().clone();
    let names: Vec<&str> = checks.iter().map(|c| c["bound"].as_str().unwrap()).collect();
    assert_eq!(names, ["arpit2019", "exact_tail", "chernoff"]);
    checks
}

#[test]
fn bound_check_verdicts() {
    let he = |epsilon: f64| json!({"network": he_out(500, 10, 100), "samples": 2000, "trials": 1, "seed": 91, "epsilon": epsilon});
    // epsilon = 0.15, N = 2000, L = 10, delta = 0.05: minimal widths (arpit2019 from docs/theory.md's
    // table; exact_tail and chernoff from an independent scipy evaluation) are far above 100.
    let checks = bound_checks(he(0.15));
    for (c, want) in checks.iter().zip([4061u64, 148_286, 180_732]) {
        assert_eq!(c["required_width"], want, "{c}");
        assert_eq!(c["actual_width"], 100);
        assert_eq!(c["meets_epsilon"], false, "{c}");
        // One network decides nothing about a claim at delta = 0.05: 59 networks without a
        // failure would be needed, whatever this one did.
        assert_eq!(c["verdict"], "inconclusive", "{c}");
        assert_eq!(c["claims"]["both"]["trials"], 1);
        let more = c["claims"]["both"]["more_networks_needed"].as_u64();
        assert!(more.is_none_or(|n| n >= 58), "{c}");
        // The guarantees at width 100 are far above 1: only their upper side is tested.
        assert_eq!(c["lower_side_vacuous"], true, "{c}");
    }
    // epsilon(100) = (1 + (4/100) ln(4NL/delta))^10 - 1 = 90.8172605282758 (scipy).
    assert_rel(
        "arpit2019 guaranteed epsilon",
        checks[0]["guaranteed_epsilon"].as_f64().unwrap(),
        90.817_260_528_275_8,
        1e-9,
    );
    // epsilon >= 1 no longer hides the verdict; the required widths are still reported.
    let checks = bound_checks(he(2.0));
    for (c, want) in checks.iter().zip([493u64, 2179, 2700]) {
        assert_eq!(c["required_width"], want, "{c}");
        assert_eq!(c["verdict"], "inconclusive", "{c}");
    }
    // The theorem is about he/out only.
    let checks = bound_checks(json!({
        "network": {"input_dim": 500, "depth": 10, "width": 100, "init": {"scheme": "glorot_paper"}},
        "samples": 200, "trials": 1, "seed": 92
    }));
    for c in &checks {
        assert_eq!(c["verdict"], "not_applicable", "{c}");
        assert!(c["required_width"].is_null());
        for claim in ["forward", "gradient", "both"] {
            assert_eq!(c["claims"][claim]["verdict"], "not_applicable", "{c}");
        }
    }
}

/// The check of `bound` in a run of `v`.
fn check_of(v: Value, bound: &str) -> Value {
    bound_checks(v)
        .into_iter()
        .find(|c| c["bound"] == bound)
        .expect("the bound is checked")
}

#[test]
fn arpit2019_is_violated_at_its_own_guarantee_by_many_networks() {
    // Depth 1, width 2000: the rule's guarantee (4/m) ln(4NL/delta) = 0.0115 is under half of
    // the sd of one layer's ratio (sqrt(5/m)/2 = 0.025), so most networks fall outside it.
    let c = check_of(
        json!({"network": {"input_dim": 64, "depth": 1, "width": 2000, "init": {"scheme": "he", "fan": "out"}},
               "samples": 4, "trials": 300, "seed": 301, "epsilon": 0.5, "delta": 0.05}),
        "arpit2019",
    );
    assert_eq!(c["verdict"], "violated", "{c}");
    assert_eq!(c["claims"]["forward"]["verdict"], "violated", "{c}");
    assert_eq!(c["claims"]["both"]["trials"], 300);
    assert!(c["claims"]["both"]["upper_limit"].as_f64().unwrap() < 0.95, "{c}");
}

#[test]
fn exact_tail_holds_at_its_own_guarantee() {
    // The exact tail bound is rigorous for the forward ratio; at width 1000 the gradient ratio's
    // extra term (O(L C / m)) is small against its guarantee there, so no network fails.
    let c = check_of(
        json!({"network": {"input_dim": 64, "depth": 2, "width": 1000, "init": {"scheme": "he", "fan": "out"}},
               "samples": 8, "trials": 200, "seed": 302, "epsilon": 0.5, "delta": 0.05, "method": "dense"}),
        "exact_tail",
    );
    assert_eq!(c["verdict"], "holds", "{c}");
    assert!(c["claims"]["both"]["lower_limit"].as_f64().unwrap() >= 0.95, "{c}");
    assert_eq!(c["meets_epsilon"], true, "{c}");
}

#[test]
fn one_network_is_inconclusive_even_when_it_fails() {
    // Issue 10's reproduction: 0 of 1 networks within; once reported as `holds`.
    let c = check_of(
        json!({"network": {"input_dim": 64, "widths": [2000], "init": {"scheme": "he", "fan": "out"}},
               "samples": 1, "trials": 1, "epsilon": 0.01, "delta": 0.05, "seed": 12}),
        "arpit2019",
    );
    assert_eq!(c["verdict"], "inconclusive", "{c}");
    assert_eq!(c["claims"]["both"]["successes"], 0, "{c}");
}

#[test]
fn epsilon_above_one_does_not_hide_a_violation() {
    // Issue 10's reproduction: widths [3000], 50 networks, epsilon 1.5; arpit2019 guarantees
    // 0.0049 at width 3000, which most networks miss.
    let c = check_of(
        json!({"network": {"input_dim": 64, "widths": [3000], "init": {"scheme": "he", "fan": "out"}},
               "samples": 1, "trials": 50, "epsilon": 1.5, "delta": 0.1, "seed": 18}),
        "arpit2019",
    );
    assert_eq!(c["verdict"], "violated", "{c}");
    assert_eq!(c["meets_epsilon"], true, "{c}");
    assert!(c["guaranteed_epsilon"].as_f64().unwrap() < 0.01, "{c}");
}

#[test]
fn the_gradient_claim_does_not_apply_to_unequal_widths() {
    // Issue 10's reproduction: widths [2000, 500]; the gradient ratio concentrates near
    // sqrt(n_l / n_L) = 2 at layer 1 by design, which the theorem never claims to be 1.
    let checks = bound_checks(json!({
        "network": {"input_dim": 64, "widths": [2000, 500], "init": {"scheme": "he", "fan": "out"}},
        "samples": 2, "trials": 50, "epsilon": 0.5, "delta": 0.1, "seed": 20
    }));
    for c in &checks {
        assert_eq!(c["claims"]["gradient"]["verdict"], "not_applicable", "{c}");
        assert_eq!(c["claims"]["both"]["verdict"], "not_applicable", "{c}");
        assert_ne!(c["claims"]["forward"]["verdict"], "not_applicable", "{c}");
        // The headline is the forward claim's.
        assert_eq!(c["verdict"], c["claims"]["forward"]["verdict"], "{c}");
    }
    // exact_tail and chernoff are rigorous for the forward ratio: their claims hold here.
    for c in &checks[1..] {
        assert_ne!(c["verdict"], "violated", "{c}");
    }
}

// ---------------------------------------------------------------------------------------------
// Progress and cancellation.
// ---------------------------------------------------------------------------------------------

#[test]
fn cancellation_stops_the_run() {
    let spec = parse(&json!({"network": he_out(50, 3, 40), "samples": 4, "trials": 4, "seed": 101}));
    for after in [0usize, 5] {
        let polls = AtomicUsize::new(0);
        let reported = Mutex::new(Vec::new());
        let progress = |d: u64, t: u64| reported.lock().unwrap().push((d, t));
        let cancelled = || polls.fetch_add(1, Ordering::SeqCst) >= after;
        let ctl = Control {
            progress: &progress,
            cancelled: &cancelled,
        };
        assert_eq!(simulate(&spec, &ctl), Err(Cancelled), "cancel after {after} polls");
        let total = widthlab::sim::work_units(&spec);
        assert!(
            reported.lock().unwrap().iter().all(|&(d, t)| t == total && d < total),
            "no completion reported"
        );
    }
}

#[test]
fn progress_counts_every_unit_up_to_the_total() {
    let spec = parse(&json!({"network": he_out(50, 3, 40), "samples": 4, "trials": 5, "seed": 102}));
    let total = 5 * 3 * 2;
    assert_eq!(widthlab::sim::work_units(&spec), total);
    for threads in [1, 2] {
        let reported = Mutex::new(Vec::new());
        let polls = AtomicUsize::new(0);
        let progress = |d: u64, t: u64| reported.lock().unwrap().push((d, t));
        let cancelled = || {
            polls.fetch_add(1, Ordering::SeqCst);
            false
        };
        let ctl = Control {
            progress: &progress,
            cancelled: &cancelled,
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let sim = pool.install(|| simulate(&spec, &ctl)).unwrap();
        assert_eq!(sim.trials.len(), 5);
        // Polled before every layer of every pass.
        assert_eq!(polls.load(Ordering::SeqCst) as u64, total);
        let reported = reported.into_inner().unwrap();
        assert!(reported.iter().all(|&(_, t)| t == total));
        assert_eq!(
            *reported.last().unwrap(),
            (total, total),
            "{threads} threads: last report is completion"
        );
        let done: Vec<u64> = reported.iter().map(|&(d, _)| d).collect();
        if threads == 1 {
            // One thread: strictly increasing by one unit, 1, 2, ..., total.
            assert_eq!(done, (1..=total).collect::<Vec<_>>());
        } else {
            // Concurrent trials: reports never go backwards (a count overtaken by a larger one
            // is skipped), and they end at the total.
            assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
            assert!(done.iter().all(|&d| (1..=total).contains(&d)));
        }
    }
}

#[test]
fn a_single_trial_is_bit_identical_when_its_products_use_both_threads() {
    // trials = 1 < threads: the matrix products of the one trial are split over the pool.
    let v = json!({"network": he_out(500, 4, 1000), "samples": 256, "trials": 1, "seed": 5});
    let spec = parse(&v);
    let runs = crate::on_one_and_two_threads(&spec);
    assert!(runs[0] == runs[1], "1 and 2 threads differ");
}
