//! Integration tests of the exact samplers (docs/theory.md section 5, src/sim/exact.rs) against the
//! dense engine, in distribution: two-sample Kolmogorov-Smirnov tests per layer for forward and
//! gradient ratios, means within combined standard errors (SE), closed-form second moments,
//! negative controls that show the KS machinery has power, the `auto` engine choice, precision
//! and thread-count reproducibility.
//!
//! Statistical levels: every KS test is at level alpha = 1e-3 (critical value
//! c(alpha) sqrt((n + m) / (n m)), c(1e-3) = sqrt(-ln(alpha / 2) / 2) = 1.949), every mean test at
//! 5 SE (two-sided level 5.7e-7). A test function makes at most ~20 KS tests, so a correct engine
//! fails one of them with probability <= 2%. Seeds are fixed and were chosen before the first run.
//!
//! Samples pushed through one network are correlated, so wherever a run has B > 1 samples per
//! network the KS tests use only sample 0 of every network (independent draws), and pooled means
//! use the cluster SE: the sample sd of the per-network means over sqrt(networks).
//!
//! Run with `cargo test --release --test exact` (the debug profile is far too slow).

use std::sync::OnceLock;

use serde_json::{json, Value};
use widthlab::analysis::report::build_report;
use widthlab::sim::plan::{parse_checked, Engine, SpecPlan};
use widthlab::sim::{simulate, Control, Simulation};
use widthlab::spec::{Limits, Spec};

/// Multiplier of the standard error in every mean assertion.
const Z: f64 = 5.0;
/// c(alpha) of the two-sample KS test at alpha = 1e-3: sqrt(-ln(5e-4) / 2) = 1.9495.
const KS_C: f64 = 1.949;

fn parse(v: &Value) -> Spec {
    parse_checked(v, &Limits::default()).unwrap_or_else(|e| panic!("spec refused: {e}\n{v}"))
}

fn run(v: &Value) -> Simulation {
    let spec = parse(v);
    let sim = simulate(&spec, &Control::none()).expect("not cancelled");
    assert_eq!(sim.trials.len(), spec.trials);
    assert_eq!((sim.depth, sim.samples), (spec.network.depth(), spec.samples));
    sim
}

/// Parse `v` with `"method": method`, check the engine that will run, simulate.
fn run_with(v: &Value, method: &str, engine: Engine) -> Simulation {
    let mut v = v.clone();
    v["method"] = json!(method);
    assert_eq!(parse(&v).engine(), engine, "engine for {v}");
    run(&v)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample variance (n - 1 denominator).
fn var(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() as f64 - 1.0)
}

#[derive(Clone, Copy, Debug, PartialEq)]
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

/// Sample 0 of every network at layer l: independent draws of the one-sample law.
fn first_samples(sim: &Simulation, which: Ratio, l: usize) -> Vec<f64> {
    let v: Vec<f64> = (0..sim.trials.len()).map(|t| layer(sim, which, t, l)[0]).collect();
    assert!(
        v.iter().all(|r| r.is_finite()),
        "non-finite {which:?} ratio at layer {l}"
    );
    v
}

/// Pooled mean of u(r) over every sample of layer l and its cluster SE (sd of the per-network
/// means over sqrt(networks); with one sample per network this is the i.i.d. SE).
fn pooled_mean_se(sim: &Simulation, which: Ratio, l: usize, u: impl Fn(f64) -> f64) -> (f64, f64) {
    let per_trial: Vec<f64> = (0..sim.trials.len())
        .map(|t| {
            let v = layer(sim, which, t, l);
            assert!(
                v.iter().all(|r| r.is_finite()),
                "non-finite {which:?} ratio in trial {t} layer {l}"
            );
            v.iter().map(|&r| u(r)).sum::<f64>() / v.len() as f64
        })
        .collect();
    (mean(&per_trial), (var(&per_trial) / per_trial.len() as f64).sqrt())
}

/// Two-sample Kolmogorov-Smirnov statistic sup_x |F_a(x) - F_b(x)| (ties handled by stepping
/// both empirical CDFs past a common value before comparing).
fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (n, m) = (a.len(), b.len());
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    while i < n && j < m {
        let x = a[i].min(b[j]);
        while i < n && a[i] <= x {
            i += 1;
        }
        while j < m && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n as f64 - j as f64 / m as f64).abs());
    }
    d
}

/// Critical value of the two-sample KS statistic at level 1e-3.
fn ks_critical(n: usize, m: usize) -> f64 {
    KS_C * ((n + m) as f64 / (n as f64 * m as f64)).sqrt()
}

/// One layer's comparison of two runs.
#[derive(Debug)]
struct Row {
    which: Ratio,
    layer: usize,
    ks: f64,
    crit: f64,
    /// Pooled means (all samples) and their SEs.
    mean_a: (f64, f64),
    mean_b: (f64, f64),
}

impl Row {
    fn ks_rejects(&self) -> bool {
        self.ks > self.crit
    }
    /// |difference of means| in units of the combined SE sqrt(se_a^2 + se_b^2).
    fn mean_z(&self) -> f64 {
        (self.mean_a.0 - self.mean_b.0).abs() / self.mean_a.1.hypot(self.mean_b.1)
    }
}

/// KS (sample 0 of every network) and pooled means, per layer, forward and gradient.
fn compare(label: &str, a: &Simulation, b: &Simulation) -> Vec<Row> {
    let mut rows = Vec::new();
    for which in [Ratio::Forward, Ratio::Gradient] {
        for l in 1..=a.depth {
            let (xa, xb) = (first_samples(a, which, l), first_samples(b, which, l));
            rows.push(Row {
                which,
                layer: l,
                ks: ks_statistic(&xa, &xb),
                crit: ks_critical(xa.len(), xb.len()),
                mean_a: pooled_mean_se(a, which, l, |r| r),
                mean_b: pooled_mean_se(b, which, l, |r| r),
            });
        }
    }
    eprintln!(
        "{label}: networks {} vs {}, samples/network {}",
        a.trials.len(),
        b.trials.len(),
        a.samples
    );
    for r in &rows {
        eprintln!(
            "  {:<8?} l={} KS {:.4} (crit {:.4}){}  mean {:.4}+-{:.4} vs {:.4}+-{:.4} ({:.2} SE)",
            r.which,
            r.layer,
            r.ks,
            r.crit,
            if r.ks_rejects() { " REJECT" } else { "" },
            r.mean_a.0,
            r.mean_a.1,
            r.mean_b.0,
            r.mean_b.1,
            r.mean_z()
        );
    }
    rows
}

/// Same law: no KS rejection at level 1e-3 and means within 5 combined SE, every layer, both ratios.
#[track_caller]
fn assert_same_law(label: &str, rows: &[Row]) {
    for r in rows {
        assert!(
            !r.ks_rejects(),
            "{label}: {:?} layer {}: KS {:.4} > critical {:.4}",
            r.which,
            r.layer,
            r.ks,
            r.crit
        );
        assert!(
            r.mean_z() <= Z,
            "{label}: {:?} layer {}: means {:.5} vs {:.5} differ by {:.2} combined SE",
            r.which,
            r.layer,
            r.mean_a.0,
            r.mean_b.0,
            r.mean_z()
        );
    }
}

/// r_g(L) = ||h^{L-1}|| / ||x|| = r_f(L-1) for every sample (docs/theory.md section 3), exactly.
#[track_caller]
fn assert_top_gradient_is_forward(sim: &Simulation) {
    let depth = sim.depth;
    if depth < 2 {
        return;
    }
    for t in 0..sim.trials.len() {
        for (g, f) in sim.gradient(t, depth).iter().zip(sim.forward(t, depth - 1)) {
            assert!(((g - f) / f).abs() <= 1e-12, "trial {t}: r_g(L) {g} != r_f(L-1) {f}");
        }
    }
}

fn he_out(input_dim: usize, depth: usize, width: usize) -> Value {
    json!({"input_dim": input_dim, "depth": depth, "width": width, "init": {"scheme": "he", "fan": "out"}})
}

/// Networks of the single-input comparisons: 20000 per run, so the KS critical value is
/// 1.949 sqrt(2 / 20000) = 0.0195.
const SINGLE_TRIALS: usize = 20_000;

/// The single-input reference: he/out, n0 = 50, width 40, depth 5, 20 classes, dense engine.
/// Shared by the positive test and both negative controls (computed once per process).
fn dense_single_reference() -> &'static Simulation {
    static SIM: OnceLock<Simulation> = OnceLock::new();
    SIM.get_or_init(|| {
        let v = json!({"network": he_out(50, 5, 40), "samples": 1, "trials": SINGLE_TRIALS, "seed": 3});
        run_with(&v, "dense", Engine::Dense)
    })
}

// ---------------------------------------------------------------------------------------------
// The KS machinery itself.
// ---------------------------------------------------------------------------------------------

#[test]
fn ks_statistic_on_known_samples() {
    assert_eq!(ks_statistic(&[1.0, 2.0, 3.0], &[3.0, 1.0, 2.0]), 0.0);
    assert_eq!(ks_statistic(&[1.0, 2.0], &[3.0, 4.0, 5.0]), 1.0);
    // F_a - F_b at 1, 2, 3, 4: 1/2 - 0, 1/2 - 1/3, 1 - 2/3, 1 - 1 -> sup 1/2.
    assert_eq!(ks_statistic(&[1.0, 3.0], &[2.0, 3.0, 4.0]), 0.5);
    // Ties across samples: a = {1, 1, 2}, b = {1, 2, 2}: at 1: 2/3 - 1/3 = 1/3; at 2: 0.
    assert!((ks_statistic(&[1.0, 1.0, 2.0], &[1.0, 2.0, 2.0]) - 1.0 / 3.0).abs() < 1e-15);
    assert!((ks_critical(100, 100) - 1.949 * 0.02f64.sqrt()).abs() < 1e-15);
}

// ---------------------------------------------------------------------------------------------
// 1. Two-sample tests, exact vs dense.
// ---------------------------------------------------------------------------------------------

/// (a) One input per network, he/out, n0 = 50, width 40, depth 5, 20 classes.
#[test]
fn single_sampler_matches_dense_in_distribution() {
    let dense = dense_single_reference();
    let v = json!({"network": he_out(50, 5, 40), "samples": 1, "trials": SINGLE_TRIALS, "seed": 4});
    let exact = run_with(&v, "exact", Engine::ExactSingle);
    assert_top_gradient_is_forward(&exact);
    assert_same_law(
        "single he/out",
        &compare("single he/out: dense vs exact", dense, &exact),
    );
}

/// (c) One input per network, sphere inputs (||x|| = 1: the head's softmax sees a ~sqrt(n0)
/// times smaller logit scale than with Gaussian inputs), non-uniform widths, he fan-in (so the
/// per-layer variance index of the backward recursion matters).
#[test]
fn single_sampler_matches_dense_sphere_inputs_nonuniform_he_in() {
    let v = json!({
        "network": {"input_dim": 30, "widths": [60, 25, 80, 40], "init": {"scheme": "he", "fan": "in"}},
        "samples": 1, "trials": SINGLE_TRIALS, "input": {"distribution": "sphere"}
    });
    let mut vd = v.clone();
    vd["seed"] = json!(5);
    let mut ve = v;
    ve["seed"] = json!(6);
    let dense = run_with(&vd, "dense", Engine::Dense);
    let exact = run_with(&ve, "exact", Engine::ExactSingle);
    assert_top_gradient_is_forward(&exact);
    assert_same_law(
        "single sphere he/in",
        &compare("single sphere he/in [60,25,80,40]: dense vs exact", &dense, &exact),
    );
}

/// Networks of the Gram comparisons: 6000 per run, KS critical value 1.949 sqrt(2/6000) = 0.0356.
/// (A rejection here must be confirmed with a larger independent run before it is called a bug:
/// with ~10 KS tests per function at level 1e-3 about 1% of seed choices reject somewhere. While
/// writing these tests a 20000-network variant of the he/out case rejected gradient layer 1 at
/// KS 0.0204 > 0.0195, and 200000-network runs of other seeds gave 0.0033 < 0.0062 there.)
const GRAM_TRIALS: usize = 6000;

/// (b) B = 8 inputs per network, he/out, n0 = 60, width 40, depth 5.
#[test]
fn gram_sampler_matches_dense_in_distribution() {
    let v = |seed: u64| json!({"network": he_out(60, 5, 40), "samples": 8, "trials": GRAM_TRIALS, "seed": seed});
    let dense = run_with(&v(7), "dense", Engine::Dense);
    let exact = run_with(&v(8), "exact", Engine::ExactGram);
    assert_top_gradient_is_forward(&exact);
    assert_same_law(
        "gram he/out",
        &compare("gram he/out B=8: dense vs exact", &dense, &exact),
    );
}

/// (c) B = 8, non-uniform widths with he fan-in, Gaussian inputs.
#[test]
fn gram_sampler_matches_dense_nonuniform_he_in() {
    let v = |seed: u64| {
        json!({
            "network": {"input_dim": 60, "widths": [50, 30, 70, 40], "init": {"scheme": "he", "fan": "in"}},
            "samples": 8, "trials": GRAM_TRIALS, "seed": seed
        })
    };
    let dense = run_with(&v(9), "dense", Engine::Dense);
    let exact = run_with(&v(10), "exact", Engine::ExactGram);
    assert_same_law(
        "gram he/in",
        &compare("gram he/in [50,30,70,40] B=8: dense vs exact", &dense, &exact),
    );
}

/// (c) B = 6, glorot_paper (N(0, 1/n_l): the norm decays by ~2^{-1/2} per layer), sphere
/// inputs, 2 classes.
#[test]
fn gram_sampler_matches_dense_glorot_paper_sphere() {
    let v = |seed: u64| {
        json!({
            "network": {"input_dim": 40, "depth": 4, "width": 30, "init": {"scheme": "glorot_paper"}, "head": {"classes": 2}},
            "samples": 6, "trials": GRAM_TRIALS, "seed": seed, "input": {"distribution": "sphere"}
        })
    };
    let dense = run_with(&v(11), "dense", Engine::Dense);
    let exact = run_with(&v(12), "exact", Engine::ExactGram);
    assert_same_law(
        "gram glorot_paper sphere",
        &compare("gram glorot_paper sphere B=6: dense vs exact", &dense, &exact),
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Second moments in closed form: E r_f(l)^2 = prod_k sigma_k^2 n_k / 2 (docs/theory.md section 5:
// E||h^k||^2 = sigma_k^2 E[K] ||h^{k-1}||^2 with K ~ Bin(n_k, 1/2)); 1 under he/out.
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn assert_second_moments(label: &str, sim: &Simulation, want: &[f64]) {
    for (l, &w) in (1..=sim.depth).zip(want) {
        // SE: cluster SE of the pooled mean of r_f^2 (i.i.d. SE when samples = 1).
        let (m, se) = pooled_mean_se(sim, Ratio::Forward, l, |r| r * r);
        eprintln!(
            "{label} layer {l}: E r_f^2 = {m:.5} +- {se:.5}, want {w:.5} ({:.2} SE)",
            (m - w).abs() / se
        );
        assert!(
            (m - w).abs() <= Z * se,
            "{label} layer {l}: E r_f^2 = {m:.5}, want {w:.5} +- {:.5}",
            Z * se
        );
    }
}

#[test]
fn exact_second_moments_he_out_and_gaussian() {
    let single = run_with(
        &json!({"network": he_out(50, 5, 40), "samples": 1, "trials": 20_000, "seed": 21}),
        "exact",
        Engine::ExactSingle,
    );
    assert_second_moments("single he/out", &single, &[1.0; 5]);
    let gram = run_with(
        &json!({"network": he_out(60, 5, 40), "samples": 8, "trials": 4000, "seed": 22}),
        "exact",
        Engine::ExactGram,
    );
    assert_second_moments("gram he/out", &gram, &[1.0; 5]);

    // Gaussian N(0, 0.06) in every layer: E r_f(l)^2 = prod_{k<=l} 0.03 n_k.
    let widths = [50usize, 30, 70, 40];
    let want: Vec<f64> = (1..=4)
        .map(|l| widths[..l].iter().map(|&n| 0.06 * n as f64 / 2.0).product())
        .collect();
    let net = json!({"input_dim": 60, "widths": widths, "init": {"scheme": "gaussian", "variance": 0.06}});
    let single = run_with(
        &json!({"network": net, "samples": 1, "trials": 20_000, "seed": 23}),
        "exact",
        Engine::ExactSingle,
    );
    assert_second_moments("single gaussian 0.06", &single, &want);
    let gram = run_with(
        &json!({"network": net, "samples": 8, "trials": 4000, "seed": 24}),
        "exact",
        Engine::ExactGram,
    );
    assert_second_moments("gram gaussian 0.06", &gram, &want);
}

// ---------------------------------------------------------------------------------------------
// 3. Negative controls: the same KS machinery detects a wrong law.
// ---------------------------------------------------------------------------------------------

/// Dense he/out (variance 2/40 = 0.05) against the exact sampler with variance 2.3/40 = 0.0575
/// (15% too large): r_f(l) is scaled by about 1.15^{l/2} (7% at layer 1, against a spread of
/// about sqrt(5/40)/2 = 0.18), and r_g(l) by about 1.15^{(L-1)/2} = 1.32 at every layer. Every
/// layer of both ratios must be rejected.
#[test]
fn negative_control_wrong_variance_is_detected() {
    let dense = dense_single_reference();
    let v = json!({
        "network": {"input_dim": 50, "depth": 5, "width": 40, "init": {"scheme": "gaussian", "variance": 2.3 / 40.0}},
        "samples": 1, "trials": SINGLE_TRIALS, "seed": 31
    });
    let exact = run_with(&v, "exact", Engine::ExactSingle);
    let rows = compare(
        "NEGATIVE wrong variance: dense he/out vs exact 2.3/width",
        dense,
        &exact,
    );
    for r in &rows {
        assert!(
            r.ks_rejects(),
            "{:?} layer {}: KS {:.4} <= critical {:.4}: wrong variance not detected",
            r.which,
            r.layer,
            r.ks,
            r.crit
        );
    }
}

/// Dense he/out with 20 classes against the exact sampler with 2 classes. The forward pass never
/// sees the head, so the forward laws agree; the gradient's head term (z.(p - t))^2/||h||^2
/// (exact.rs) is several times larger relative to ||delta||^2 with 20 saturated classes than with
/// 2, so the gradient laws differ at every layer l < L. At l = L, r_g = r_f(L-1) is a forward
/// ratio again, so the law agrees there.
#[test]
fn negative_control_classes_change_the_gradient_only() {
    let dense = dense_single_reference();
    let mut net = he_out(50, 5, 40);
    net["head"] = json!({"classes": 2});
    let exact = run_with(
        &json!({"network": net, "samples": 1, "trials": SINGLE_TRIALS, "seed": 32}),
        "exact",
        Engine::ExactSingle,
    );
    let rows = compare("NEGATIVE classes: dense 20 classes vs exact 2 classes", dense, &exact);
    for r in &rows {
        let differs = r.which == Ratio::Gradient && r.layer < dense.depth;
        if differs {
            assert!(
                r.ks_rejects(),
                "gradient layer {}: KS {:.4} <= critical {:.4}: head change not detected",
                r.layer,
                r.ks,
                r.crit
            );
        } else {
            assert!(
                !r.ks_rejects(),
                "{:?} layer {}: KS {:.4} > critical {:.4} for an unchanged law",
                r.which,
                r.layer,
                r.ks,
                r.crit
            );
            assert!(
                r.mean_z() <= Z,
                "{:?} layer {}: means differ by {:.2} SE for an unchanged law",
                r.which,
                r.layer,
                r.mean_z()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The `auto` choice, `exact` refusals, and the stamp.
// ---------------------------------------------------------------------------------------------

fn spec_of(network: Value, samples: usize, method: &str) -> Value {
    json!({"network": network, "samples": samples, "trials": 2, "seed": 41, "method": method})
}

#[test]
fn auto_picks_the_cheapest_permitted_engine() {
    let engine = |v: Value| parse(&v).engine();
    assert_eq!(engine(spec_of(he_out(50, 5, 40), 1, "auto")), Engine::ExactSingle);
    // The default method is auto.
    let mut v = spec_of(he_out(50, 5, 40), 1, "auto");
    v.as_object_mut().unwrap().remove("method");
    assert_eq!(engine(v), Engine::ExactSingle);
    assert_eq!(engine(spec_of(he_out(1000, 5, 1000), 16, "auto")), Engine::ExactGram);
    // 2000 samples > width 100: the Gram sampler is not permitted.
    assert_eq!(engine(spec_of(he_out(500, 5, 100), 2000, "auto")), Engine::Dense);
    // Permitted (500 <= 1000) but dearer: Gram ~ B^2 (6 n_l + 6 n_{l-1}) + 4 B^3 = 3.5e9 flops per
    // layer against dense ~ n^2 (4 B + 12) = 2.0e9.
    let costly = parse(&spec_of(he_out(1000, 3, 1000), 500, "auto"));
    assert!(costly.exact_unavailable().is_none());
    assert_eq!(costly.engine(), Engine::Dense);
    let orth = json!({"input_dim": 50, "depth": 3, "width": 40, "init": {"scheme": "orthogonal"}});
    let wn =
        json!({"input_dim": 50, "depth": 3, "width": 40, "weight_norm": {"gain": "derived", "direction": "gaussian"}});
    for samples in [1, 4] {
        assert_eq!(engine(spec_of(orth.clone(), samples, "auto")), Engine::Dense);
        assert_eq!(engine(spec_of(wn.clone(), samples, "auto")), Engine::Dense);
    }
    // Method dense is obeyed even when exact would be cheaper.
    assert_eq!(engine(spec_of(he_out(50, 5, 40), 1, "dense")), Engine::Dense);
    assert_eq!(engine(spec_of(he_out(50, 5, 40), 4, "exact")), Engine::ExactGram);
}

#[test]
fn exact_is_refused_where_it_does_not_apply() {
    let refused = |v: Value| parse_checked(&v, &Limits::default()).expect_err(&format!("should be refused: {v}"));
    let orth = json!({"input_dim": 50, "depth": 3, "width": 40, "init": {"scheme": "orthogonal"}});
    let wn =
        json!({"input_dim": 50, "depth": 3, "width": 40, "weight_norm": {"gain": "naive", "direction": "gaussian"}});
    let cases = [
        spec_of(orth.clone(), 1, "exact"),
        spec_of(orth, 4, "exact"),
        spec_of(wn.clone(), 1, "exact"),
        spec_of(wn, 4, "exact"),
        // samples 41 > min width 40.
        spec_of(he_out(50, 3, 40), 41, "exact"),
        // samples 41 > width 40 of one narrow layer only.
        spec_of(
            json!({"input_dim": 50, "widths": [80, 40, 80], "init": {"scheme": "he", "fan": "out"}}),
            41,
            "exact",
        ),
        // samples 21 > input_dim 20 (widths are wide enough).
        spec_of(he_out(20, 3, 40), 21, "exact"),
        // A sweep qualifies only if every point does: width 10 < 16 samples.
        json!({"kind": "width_sweep", "samples": 16, "trials": 2, "seed": 41, "method": "exact",
               "network": {"input_dim": 50, "depth": 3, "widths_to_sweep": [40, 10], "init": {"scheme": "he", "fan": "out"}}}),
    ];
    for v in cases {
        let e = refused(v.clone());
        assert_eq!(e.field, "method", "{v}: {e}");
    }
    // The boundary is allowed: samples = min(width, input_dim).
    assert_eq!(
        parse(&spec_of(he_out(50, 3, 40), 40, "exact")).engine(),
        Engine::ExactGram
    );
    assert_eq!(
        parse(&spec_of(he_out(20, 3, 40), 20, "exact")).engine(),
        Engine::ExactGram
    );
    // An unknown method names the field too.
    assert_eq!(refused(spec_of(he_out(50, 3, 40), 1, "magic")).field, "method");
}

#[test]
fn stamp_names_the_engine() {
    let cases = [
        (spec_of(he_out(50, 3, 40), 1, "auto"), "exact_single"),
        (spec_of(he_out(50, 3, 40), 4, "exact"), "exact_gram"),
        (spec_of(he_out(50, 3, 40), 4, "dense"), "dense"),
        (
            spec_of(
                json!({"input_dim": 50, "depth": 3, "width": 40, "init": {"scheme": "orthogonal"}}),
                1,
                "auto",
            ),
            "dense",
        ),
    ];
    for (v, want) in cases {
        let spec = parse(&v);
        let sim = simulate(&spec, &Control::none()).unwrap();
        let method = build_report(&spec, &sim).stamp.method;
        assert!(
            method.starts_with(want),
            "{v}: stamp.method {method:?} should start with {want:?}"
        );
        if want == "dense" {
            assert_eq!(method, "dense");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Precision.
// ---------------------------------------------------------------------------------------------

/// Largest |a - b| / |a| over every forward (and gradient) ratio of two runs.
fn max_rel_diff(a: &Simulation, b: &Simulation, which: Ratio) -> f64 {
    let mut worst = 0.0f64;
    for (ta, tb) in a.trials.iter().zip(&b.trials) {
        let (va, vb) = match which {
            Ratio::Forward => (&ta.forward, &tb.forward),
            Ratio::Gradient => (&ta.gradient, &tb.gradient),
        };
        assert_eq!(va.len(), vb.len());
        for (x, y) in va.iter().zip(vb) {
            assert!(x.is_finite() && y.is_finite() && *x != 0.0);
            worst = worst.max(((x - y) / x).abs());
        }
    }
    worst
}

/// The single-input sampler computes in f64 whatever the precision field says, and so does the
/// Gram sampler when B > width / 4 (its Gram matrices could be near singular: f32 would be
/// wrong there, see `plan::gram_precision`): f32 and f64 runs of one seed give the same bits.
/// At B <= width / 4 the Gram sampler runs its products in f32: the runs differ, by about the
/// dense engine's f32 rounding (docs/theory.md section 11). Deeper than 10 layers, or where the
/// squared norms leave 2^(+-60), it computes in f64 again.
#[test]
fn exact_samplers_accept_both_precisions() {
    for (v, engine, f32_products) in [
        (
            json!({"network": he_out(50, 5, 40), "samples": 1, "trials": 200, "seed": 51}),
            Engine::ExactSingle,
            false,
        ),
        (
            json!({"network": he_out(60, 5, 40), "samples": 12, "trials": 50, "seed": 52}),
            Engine::ExactGram,
            false,
        ),
        (
            json!({"network": he_out(60, 5, 40), "samples": 8, "trials": 50, "seed": 52}),
            Engine::ExactGram,
            true,
        ),
        // Deeper than plan::GRAM_F32_MAX_DEPTH: f64 (f32 was off by factors up to 1e21 at depth
        // 100-200, the inputs' Gram matrices near rank one).
        (
            json!({"network": he_out(60, 11, 40), "samples": 8, "trials": 10, "seed": 52}),
            Engine::ExactGram,
            false,
        ),
        // Squared norms beyond 2^60 (variance 10 at width 40: x 200 per layer): f64.
        (
            json!({"network": {"input_dim": 60, "depth": 10, "width": 40, "init": {"scheme": "gaussian", "variance": 10.0}},
                   "samples": 8, "trials": 10, "seed": 52}),
            Engine::ExactGram,
            false,
        ),
    ] {
        let sims: Vec<Simulation> = ["f32", "f64"]
            .iter()
            .map(|p| {
                let mut v = v.clone();
                v["precision"] = json!(p);
                run_with(&v, "exact", engine)
            })
            .collect();
        let (fwd, grad) = (
            max_rel_diff(&sims[0], &sims[1], Ratio::Forward),
            max_rel_diff(&sims[0], &sims[1], Ratio::Gradient),
        );
        eprintln!("{engine:?}: f32 vs f64 max relative difference forward {fwd:e}, gradient {grad:e}");
        if f32_products {
            assert!(
                fwd > 0.0,
                "{engine:?}: f32 run identical to f64: was it run in f32 at all?"
            );
            assert!(fwd <= 1e-5, "{engine:?}: forward f32 vs f64 differ by {fwd:e}");
            assert!(grad <= 1e-4, "{engine:?}: gradient f32 vs f64 differ by {grad:e}");
        } else {
            assert_eq!(sims[0], sims[1], "{engine:?}: f32 spec not computed in f64");
        }
    }
}

/// The dense engine draws the same normals in f32 (the f64 draw rounded), so its forward ratios
/// for one seed agree with f64 up to f32 rounding (unit roundoff 6e-8, accumulated over the
/// sums of a few hundred products and 10 layers).
#[test]
fn dense_f32_forward_agrees_with_f64() {
    let base = json!({"network": he_out(500, 10, 100), "samples": 50, "trials": 2, "seed": 53});
    let sims: Vec<Simulation> = ["f32", "f64"]
        .iter()
        .map(|p| {
            let mut v = base.clone();
            v["precision"] = json!(p);
            run_with(&v, "dense", Engine::Dense)
        })
        .collect();
    let (fwd, grad) = (
        max_rel_diff(&sims[0], &sims[1], Ratio::Forward),
        max_rel_diff(&sims[0], &sims[1], Ratio::Gradient),
    );
    eprintln!("dense: f32 vs f64 max relative difference forward {fwd:e}, gradient {grad:e}");
    assert!(fwd > 0.0, "f32 run identical to f64: was it run in f32 at all?");
    assert!(fwd <= 1e-5, "dense forward f32 vs f64 differ by {fwd:e}");
    // The gradient is not held to 1e-5: a pre-activation within f32 rounding of 0 can flip its
    // ReLU mask, which switches a whole coordinate of delta on or off (measured: 6.8e-6 here, but
    // 3.5e-3 for one of 100 samples at n0 = width = 2000, depth 20, with forward still 3.8e-7).
}

// ---------------------------------------------------------------------------------------------
// 6. Thread-count reproducibility.
// ---------------------------------------------------------------------------------------------

#[test]
fn exact_results_are_bit_identical_for_any_thread_count() {
    let specs = [
        json!({"network": he_out(50, 5, 40), "samples": 1, "trials": 64, "seed": 61, "method": "exact"}),
        json!({"network": {"input_dim": 60, "widths": [50, 30, 70, 40], "init": {"scheme": "he", "fan": "in"}},
               "samples": 8, "trials": 16, "seed": 62, "method": "exact", "input": {"distribution": "sphere"}}),
    ];
    for v in specs {
        let spec = parse(&v);
        assert_ne!(spec.engine(), Engine::Dense);
        let sims = crate::on_one_and_two_threads(&spec);
        assert!(sims[0]
            .trials
            .iter()
            .all(|t| t.forward.iter().chain(&t.gradient).all(|r| r.is_finite())));
        // Bitwise: compare the f64 bit patterns, not just values.
        let bits = |s: &Simulation| -> Vec<u64> {
            s.trials
                .iter()
                .flat_map(|t| t.forward.iter().chain(&t.gradient).map(|r| r.to_bits()))
                .collect()
        };
        assert_eq!(bits(&sims[0]), bits(&sims[1]), "1 vs 2 threads differ for {v}");
        assert_ne!(
            sims[0].trials[0], sims[0].trials[1],
            "distinct trials are distinct networks"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Edge case: tiny widths, where whole networks die (every unit of a layer off) and the Gram
// matrix is often rank-deficient without any dead sample (two samples sharing one active unit).
// ---------------------------------------------------------------------------------------------

/// Sample 0 of every network at layer l, split into (finite values, count of NaN).
fn first_samples_with_dead(sim: &Simulation, which: Ratio, l: usize) -> (Vec<f64>, usize) {
    let all: Vec<f64> = (0..sim.trials.len()).map(|t| layer(sim, which, t, l)[0]).collect();
    let alive: Vec<f64> = all.iter().copied().filter(|r| !r.is_nan()).collect();
    assert!(
        alive.iter().all(|r| r.is_finite()),
        "infinite {which:?} ratio at layer {l}"
    );
    let dead = all.len() - alive.len();
    (alive, dead)
}

/// Dense vs exact on sample 0: the fraction of dead samples (NaN gradient: h^L = 0) agrees
/// within 5 SE of a difference of proportions, forward ratios (with their atom at 0) and the
/// gradient ratios of live samples pass the KS test at 1e-3 (conservative with atoms).
fn compare_tiny(label: &str, dense: &Simulation, exact: &Simulation) {
    let n = dense.trials.len() as f64;
    eprintln!("{label}: networks {} vs {}", dense.trials.len(), exact.trials.len());
    for l in 1..=dense.depth {
        let (fd, _) = first_samples_with_dead(dense, Ratio::Forward, l);
        let (fe, _) = first_samples_with_dead(exact, Ratio::Forward, l);
        assert_eq!(
            (fd.len(), fe.len()),
            (dense.trials.len(), exact.trials.len()),
            "forward ratios are never NaN"
        );
        let (ks, crit) = (ks_statistic(&fd, &fe), ks_critical(fd.len(), fe.len()));
        let zeros = |v: &[f64]| v.iter().filter(|r| **r == 0.0).count() as f64 / v.len() as f64;
        eprintln!(
            "  Forward  l={l} KS {ks:.4} (crit {crit:.4}); share 0: {:.4} vs {:.4}",
            zeros(&fd),
            zeros(&fe)
        );
        assert!(ks <= crit, "{label}: forward layer {l}: KS {ks:.4} > {crit:.4}");

        let (gd, dead_d) = first_samples_with_dead(dense, Ratio::Gradient, l);
        let (ge, dead_e) = first_samples_with_dead(exact, Ratio::Gradient, l);
        let (pd, pe) = (dead_d as f64 / n, dead_e as f64 / exact.trials.len() as f64);
        // SE of a difference of two independent proportions.
        let se = (pd * (1.0 - pd) / n + pe * (1.0 - pe) / exact.trials.len() as f64).sqrt();
        let (ks, crit) = (ks_statistic(&gd, &ge), ks_critical(gd.len(), ge.len()));
        eprintln!("  Gradient l={l} KS {ks:.4} (crit {crit:.4}) on live samples; dead {pd:.4} vs {pe:.4} (SE {se:.4})");
        assert!(
            (pd - pe).abs() <= Z * se,
            "{label}: layer {l}: dead share {pd:.4} vs {pe:.4}"
        );
        assert!(ks <= crit, "{label}: gradient layer {l}: KS {ks:.4} > {crit:.4}");
    }
}

#[test]
fn tiny_widths_dead_networks_and_rank_deficient_grams() {
    // One input, width 2: P(network alive) = (3/4)^3 = 0.42.
    let v = |seed: u64| json!({"network": he_out(3, 3, 2), "samples": 1, "trials": SINGLE_TRIALS, "seed": seed});
    let dense = run_with(&v(71), "dense", Engine::Dense);
    let exact = run_with(&v(72), "exact", Engine::ExactSingle);
    compare_tiny("tiny single, widths 2", &dense, &exact);
    // Two inputs, width 3 (B = 2 <= 3 = n0).
    let v = |seed: u64| json!({"network": he_out(3, 3, 3), "samples": 2, "trials": SINGLE_TRIALS, "seed": seed});
    let dense = run_with(&v(73), "dense", Engine::Dense);
    let exact = run_with(&v(74), "exact", Engine::ExactGram);
    compare_tiny("tiny gram, widths 3, B = 2", &dense, &exact);
}

/// The benchmark's forward-only runs draw the forward pass exactly as full runs do: the same
/// forward ratios bit for bit, and no gradients.
#[test]
fn forward_only_runs_match_the_forward_pass_of_full_runs() {
    use widthlab::sim::{simulate_passes, Passes};
    let base = json!({"network": {"input_dim": 40, "depth": 4, "width": 48,
                      "init": {"scheme": "he", "fan": "out"}},
                      "samples": 8, "trials": 3, "seed": 11, "precision": "f64"});
    for (method, engine) in [("dense", Engine::Dense), ("exact", Engine::ExactGram)] {
        let mut v = base.clone();
        v["method"] = json!(method);
        let spec = parse(&v);
        assert_eq!(spec.engine(), engine);
        let full = simulate(&spec, &Control::none()).expect("not cancelled");
        let fwd = simulate_passes(&spec, Passes::ForwardOnly, &Control::none()).expect("not cancelled");
        for (a, b) in full.trials.iter().zip(&fwd.trials) {
            assert_eq!(a.forward, b.forward, "{method}");
            assert!(b.gradient.is_empty());
        }
    }
}

/// A single Gram trial uses the whole pool for its Gaussian draws and its products: matrices
/// above one chunk are split, a pass above one 32 MB group is drawn in several groups, and the
/// products split their output over the threads (B^2 n = 96^2 x 4000, above the size where
/// they are split). None of it may change a bit, in f64 or in f32 (B = 96 <= width / 4 and
/// <= n0 / 2: products in f32).
#[test]
fn single_gram_trial_is_bit_identical_for_any_thread_count() {
    for precision in ["f64", "f32"] {
        let v = json!({"network": {"input_dim": 200, "depth": 12, "width": 4000,
                       "init": {"scheme": "he", "fan": "out"}},
                       "samples": 96, "trials": 1, "seed": 63, "method": "exact", "precision": precision});
        let spec = parse(&v);
        assert_eq!(spec.engine(), Engine::ExactGram);
        let sims = crate::on_one_and_two_threads(&spec);
        let t = &sims[0].trials[0];
        assert!(t.forward.iter().chain(&t.gradient).all(|r| r.is_finite() && *r > 0.0));
        assert_eq!(sims[0], sims[1], "{precision}");
    }
}

/// A signal that overflows (variance 1e6 at width 100: the squared norm grows 5e7-fold per
/// layer and passes f64's 1.8e308 near layer 40) is undefined from that layer on, and so is
/// every gradient ratio of that input, on every engine. The NaN after an overflow used to go
/// through the ReLU as 0 (later layers looked dead, nothing counted as undefined).
#[test]
fn an_overflowing_signal_is_undefined_from_there_on_in_every_engine() {
    let net = json!({"input_dim": 50, "depth": 60, "width": 100, "init": {"scheme": "gaussian", "variance": 1e6}});
    for (samples, method, engine) in [
        (4, "dense", Engine::Dense),
        (4, "exact", Engine::ExactGram),
        (1, "exact", Engine::ExactSingle),
    ] {
        let v = json!({"network": net, "samples": samples, "trials": 3, "seed": 54});
        let sim = run_with(&v, method, engine);
        for t in 0..3 {
            for s in 0..samples {
                let forward: Vec<f64> = (1..=60).map(|l| sim.forward(t, l)[s]).collect();
                let first = forward
                    .iter()
                    .position(|r| !r.is_finite())
                    .unwrap_or_else(|| panic!("{engine:?}: no overflow in {forward:?}"));
                assert!((30..50).contains(&first), "{engine:?}: overflow at layer {}", first + 1);
                assert!(forward[..first].iter().all(|r| *r > 0.0), "{engine:?}: {forward:?}");
                assert!(forward[first..].iter().all(|r| r.is_nan()), "{engine:?}: {forward:?}");
                assert!(
                    (1..=60).all(|l| sim.gradient(t, l)[s].is_nan()),
                    "{engine:?}: a gradient defined"
                );
            }
        }
    }
}

/// The rule itself, on a hand-made trial of two samples and three layers.
#[test]
fn undefined_past_overflow_touches_only_overflowed_samples() {
    let inf = f64::INFINITY;
    let mut r = widthlab::sim::TrialRatios {
        forward: vec![1.0, 1.0, inf, 2.0, 0.0, 3.0],
        gradient: vec![0.5, 0.5, 0.7, inf, 0.9, 0.9],
    };
    r.undefined_past_overflow(2);
    let nan_at = |v: &[f64]| v.iter().map(|x| x.is_nan()).collect::<Vec<_>>();
    // Sample 0 overflowed at layer 2: forward undefined from there, every gradient undefined.
    assert_eq!(nan_at(&r.forward), [false, false, true, false, true, false]);
    assert_eq!((r.forward[1], r.forward[3], r.forward[5]), (1.0, 2.0, 3.0));
    // Sample 1 stays, except its gradient ratio that overflowed on its own.
    assert_eq!(nan_at(&r.gradient), [true, false, true, true, true, false]);
    assert_eq!((r.gradient[1], r.gradient[5]), (0.5, 0.9));
}
