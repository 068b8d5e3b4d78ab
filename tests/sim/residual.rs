//! Residual weight-normalized networks (docs/theory.md section 7.4): the forward ratio per block
//! against its exact second moment, the naive gain's 1.5 per block, the backward pass against
//! finite differences, and reproducibility over thread counts.
//!
//! What is predicted, and so what is tested: E[r_b^2] = prod_(k<=b) c_k exactly at any width
//! (c_k = 1 + 1/B for the proposed gains, 1.5 for g = 1), so the root mean square of r_b is
//! (1 + 1/B)^(b/2). The mean of r_b sits below it by the Jensen gap; it is tested against the
//! log-normal mean of the exact second and fourth moments (an approximation, stated as such).
//! Standard errors are cluster SEs: the inputs of one network are correlated, so the SE of a
//! pooled mean is the standard deviation of the per-network means over sqrt(networks).

use serde_json::{json, Value};
use widthlab::analysis::predict::predict;
use widthlab::sim::plan::{parse_checked, Engine, SpecPlan};
use widthlab::sim::residual::{loss_from, trace_trial};
use widthlab::sim::rng::trial_rng;
use widthlab::sim::{simulate, simulate_passes, Control, Passes, Simulation};
use widthlab::spec::{InputDistribution, Limits, Spec};

/// Multiplier of the standard error in every statistical assertion (as in `engine`).
const Z: f64 = 5.0;

fn parse(v: &Value) -> Spec {
    parse_checked(v, &Limits::default()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn residual(n0: usize, blocks: usize, m: usize, gain: Value) -> Value {
    json!({"input_dim": n0, "architecture": "residual", "blocks": blocks, "width": m,
           "weight_norm": {"gain": gain, "direction": "gaussian"}})
}

/// Per network, the mean over its inputs of f(r) at block b.
fn network_means(sim: &Simulation, b: usize, f: impl Fn(f64) -> f64) -> Vec<f64> {
    (0..sim.trials.len())
        .map(|t| {
            let r = sim.forward(t, b);
            r.iter().map(|&v| f(v)).sum::<f64>() / r.len() as f64
        })
        .collect()
}

/// Mean and cluster SE of per-network means.
fn mean_se(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Checks the forward ratio of `spec` per block: the mean of r^2 against the exact
/// prod c_k, the root mean square against its square root, and the mean of r against the
/// log-normal mean; returns the largest |z| of each.
fn check_forward(spec: &Spec, factor: f64) -> (f64, f64, f64) {
    let sim = simulate_passes(spec, Passes::ForwardOnly, &Control::none()).unwrap();
    let predicted = predict(&spec.network, spec.input);
    let (mut z_square, mut z_rms, mut z_mean) = (0.0f64, 0.0f64, 0.0f64);
    for b in 1..=spec.network.depth() {
        let exact = factor.powi(b as i32);
        let p = &predicted[b - 1].forward;
        // The prediction is the closed form (to 1e-12 relative).
        assert!((p.mean_square / exact - 1.0).abs() < 1e-12, "block {b}");
        let (ms, se_ms) = mean_se(&network_means(&sim, b, |r| r * r));
        let z = (ms - exact) / se_ms;
        // The root mean square, SE by the delta method: se(sqrt(x)) = se(x) / (2 sqrt(x)).
        let (rms, se_rms) = (ms.sqrt(), se_ms / (2.0 * ms.sqrt()));
        let zr = (rms - exact.sqrt()) / se_rms;
        let (mean, se_mean) = mean_se(&network_means(&sim, b, |r| r));
        let zm = (mean - p.mean) / se_mean;
        if [1, 10, 20, spec.network.depth()].contains(&b) {
            eprintln!(
                "block {b:>2}: mean r^2 {ms:.5} (exact {exact:.5}, se {se_ms:.5}, z {z:+.2}); rms {rms:.5} (pred \
                 {:.5}); mean r {mean:.5} (log-normal {:.5}, se {se_mean:.5}, z {zm:+.2}; the rms would be {:+.1} se off)",
                exact.sqrt(),
                p.mean,
                (mean - exact.sqrt()) / se_mean
            );
        }
        z_square = z_square.max(z.abs());
        z_rms = z_rms.max(zr.abs());
        z_mean = z_mean.max(zm.abs());
    }
    (z_square, z_rms, z_mean)
}

#[test]
fn proposed_gains_grow_the_squared_norm_by_one_plus_one_over_b_per_block() {
    // The reference values of (1 + 1/B)^(b/2) at B = 40, to their printed digits, and
    // the closed form to 1e-6.
    let spec = parse(
        &json!({"network": residual(64, 40, 64, json!("proposed")), "samples": 128, "trials": 256,
                             "seed": 4001}),
    );
    let c: Vec<f64> = (1..=40).map(|b| spec.network.block_factor(b)).collect();
    assert!(c.iter().all(|&c| (c - 1.025).abs() < 1e-15), "{c:?}");
    let rms = |b: usize| c[..b].iter().product::<f64>().sqrt();
    for (b, want, digits) in [(1, 1.0124, 4), (10, 1.1314, 4), (20, 1.2801, 4), (40, 1.638616, 6)] {
        let scale = 10f64.powi(digits);
        assert_eq!((rms(b) * scale).round() / scale, want, "block {b}");
    }
    assert!((rms(40) / 1.025f64.powi(20) - 1.0).abs() < 1e-6);
    // 256 networks x 128 inputs of n0 = 64, hidden width 64.
    let (z_square, z_rms, z_mean) = check_forward(&spec, 1.025);
    assert!(
        z_square <= Z,
        "mean of r^2 off the exact (1 + 1/B)^b by {z_square:.2} SE"
    );
    assert!(z_rms <= Z, "rms off (1 + 1/B)^(b/2) by {z_rms:.2} SE");
    assert!(z_mean <= Z, "mean of r off the log-normal mean by {z_mean:.2} SE");
}

#[test]
fn the_naive_gain_grows_the_squared_norm_by_three_halves_per_block() {
    let spec = parse(
        &json!({"network": residual(64, 20, 64, json!("naive")), "samples": 128, "trials": 256,
                             "seed": 4002}),
    );
    assert!((1..=20).all(|b| spec.network.block_factor(b) == 1.5));
    let (z_square, z_rms, z_mean) = check_forward(&spec, 1.5);
    assert!(z_square <= Z, "mean of r^2 off 1.5^b by {z_square:.2} SE");
    assert!(z_rms <= Z, "rms off 1.5^(b/2) by {z_rms:.2} SE");
    assert!(z_mean <= Z, "mean of r off the log-normal mean by {z_mean:.2} SE");
}

/// h^(b-1) of one sample, recomputed from the trace's weights.
fn stream_at(trace: &widthlab::sim::residual::Trace, sample: usize, block: usize) -> Vec<f64> {
    let mut h = trace.x.row(sample).to_owned();
    for (w1, w2) in &trace.blocks[..block - 1] {
        let a = w1.dot(&h).mapv(|v| v.max(0.0));
        h = &h + &w2.dot(&a);
    }
    h.to_vec()
}

#[test]
fn the_backward_pass_agrees_with_finite_differences() {
    let nets = [
        json!({"input_dim": 5, "architecture": "residual", "blocks": 3, "width": 7,
               "weight_norm": {"gain": "proposed"}, "head": {"classes": 4}}),
        json!({"input_dim": 5, "architecture": "residual", "widths": [6, 9, 4],
               "init": {"scheme": "he", "fan": "out"}, "head": {"classes": 3}}),
        json!({"input_dim": 4, "architecture": "residual", "blocks": 2, "width": 6,
               "weight_norm": {"gain": [1.3, 0.7], "direction": "orthogonal"}, "head": {"classes": 5}}),
    ];
    for (i, v) in nets.iter().enumerate() {
        let spec = parse(&json!({"network": v, "samples": 3, "method": "dense", "seed": 1}));
        let net = &spec.network;
        let trace = trace_trial(net, 3, InputDistribution::Gaussian, &mut trial_rng(90 + i as u64, 0));
        let blocks = net.depth();
        assert_eq!(trace.gradients.len(), blocks + 1);
        for s in 0..3 {
            let x = trace.x.row(s).to_vec();
            assert!((loss_from(&trace, 1, s, &x) - trace.loss[s]).abs() < 1e-12 * trace.loss[s].abs().max(1.0));
            let g_out = trace.gradients[blocks].row(s).iter().map(|v| v * v).sum::<f64>().sqrt();
            for b in 1..=blocks {
                let h = stream_at(&trace, s, b);
                let engine = trace.gradients[b - 1].row(s).to_vec();
                let eps = 1e-6;
                for k in 0..h.len() {
                    let (mut up, mut down) = (h.clone(), h.clone());
                    up[k] += eps;
                    down[k] -= eps;
                    let fd = (loss_from(&trace, b, s, &up) - loss_from(&trace, b, s, &down)) / (2.0 * eps);
                    // Central differences: O(eps^2) truncation plus about 1e-16 / eps rounding.
                    let tol = 1e-6 * engine.iter().map(|v| v.abs()).fold(1.0, f64::max);
                    assert!(
                        (fd - engine[k]).abs() <= tol,
                        "net {i} sample {s} block {b} coordinate {k}: engine {} vs finite difference {fd}",
                        engine[k]
                    );
                }
                // The reported ratio is ||dL/dh^(b-1)|| / ||dL/dh^B||, and the forward ratio
                // ||h^b|| / ||x|| of the same stream.
                let norm = engine.iter().map(|v| v * v).sum::<f64>().sqrt();
                let reported = trace.ratios.gradient[(b - 1) * 3 + s];
                assert!((reported - norm / g_out).abs() <= 1e-12 * reported, "net {i} block {b}");
                let next = stream_at(&trace, s, b + 1);
                let fwd = next.iter().map(|v| v * v).sum::<f64>().sqrt() / x.iter().map(|v| v * v).sum::<f64>().sqrt();
                assert!(
                    (trace.ratios.forward[(b - 1) * 3 + s] - fwd).abs() <= 1e-12 * fwd,
                    "net {i} block {b}"
                );
            }
        }
    }
}

#[test]
fn residual_results_are_bit_identical_for_any_thread_count() {
    let specs = [
        json!({"network": residual(40, 6, 24, json!("proposed")), "samples": 16, "trials": 8, "seed": 71}),
        json!({"network": {"input_dim": 30, "architecture": "residual", "widths": [20, 50, 10],
                           "init": {"scheme": "he", "fan": "out"}}, "samples": 16, "trials": 8, "seed": 72,
               "precision": "f32"}),
        json!({"network": {"input_dim": 30, "architecture": "residual", "blocks": 4, "width": 40,
                           "weight_norm": {"gain": "naive", "direction": "orthogonal"}},
               "samples": 16, "trials": 8, "seed": 73, "input": {"distribution": "sphere"}}),
        // One network: its matrix products are split over the pool.
        json!({"network": residual(256, 3, 512, json!([1.2, 0.4])), "samples": 128, "trials": 1, "seed": 74}),
    ];
    for v in specs {
        let spec = parse(&v);
        assert_eq!(spec.engine(), Engine::Dense);
        let sims = crate::on_one_and_two_threads(&spec);
        assert!(sims[0]
            .trials
            .iter()
            .all(|t| t.forward.iter().chain(&t.gradient).all(|r| r.is_finite() && *r > 0.0)));
        assert!(sims[0] == sims[1], "1 vs 2 threads differ for {v}");
        if spec.trials > 1 {
            assert_ne!(sims[0].trials[0], sims[0].trials[1]);
        }
    }
}

/// The f32 engine draws the same normals as f64 (rounded), so its ratios agree with f64 up to
/// f32 rounding accumulated over the blocks (about 1e-7 per operation).
#[test]
fn f32_and_f64_residual_runs_agree_to_rounding() {
    let v = json!({"network": residual(48, 10, 32, json!("proposed")), "samples": 16, "trials": 4, "seed": 75});
    let f64_run = simulate(&parse(&v), &Control::none()).unwrap();
    let mut v32 = v.clone();
    v32["precision"] = json!("f32");
    let f32_run = simulate(&parse(&v32), &Control::none()).unwrap();
    let mut worst = 0.0f64;
    for (a, b) in f64_run.trials.iter().zip(&f32_run.trials) {
        for (x, y) in a
            .forward
            .iter()
            .chain(&a.gradient)
            .zip(b.forward.iter().chain(&b.gradient))
        {
            worst = worst.max((x - y).abs() / x.abs());
        }
    }
    assert!(worst < 1e-4, "largest relative difference {worst:e}");
    assert!(worst > 0.0, "f32 should round somewhere");
}

/// A cancel stops a residual run at its next block.
#[test]
fn a_residual_run_stops_when_cancelled() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let spec = parse(&json!({"network": residual(32, 20, 32, json!("naive")), "samples": 8, "trials": 2, "seed": 76}));
    let polls = AtomicUsize::new(0);
    let cancelled = || polls.fetch_add(1, Ordering::Relaxed) >= 5;
    let ctl = Control {
        progress: &|_, _| {},
        cancelled: &cancelled,
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    assert!(pool.install(|| simulate(&spec, &ctl)).is_err());
    // Polled once per block of a pass: stopped after six polls, far short of 2 x 20 x 2.
    assert_eq!(polls.load(Ordering::Relaxed), 6);
}
