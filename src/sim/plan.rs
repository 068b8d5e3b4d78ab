//! The simulator's plans: which engine runs a spec, and what it will cost (memory and work),
//! known before anything is allocated.
//!
//! The cost models sit next to the engines they describe (`dense`, `exact`); the job layer
//! refuses a spec whose estimate is over the configured limits ([`check`]).

use serde::Serialize;
use serde_json::Value;

use super::dense::{cheap_to_redraw, KEEP_WEIGHTS_BYTES};
use crate::spec::names::string_enum;
use crate::spec::{
    parse_spec, Direction, Init, InputDistribution, Limits, Method, Precision, Spec, SpecError, Task, WeightNorm,
    Weights,
};

string_enum! {
    /// The engine that actually runs (a resolved `method`); recorded in the stamp.
    pub enum Engine {
        Dense = "dense",
        /// One input per network: chi-square law, O(L + C) per network.
        ExactSingle = "exact_single",
        /// B inputs per network: B x B Gram recursion, O(n B^2 + B^3) per layer.
        ExactGram = "exact_gram",
    }
}

/// What the engine that runs `spec` computes, for the stamp.
pub fn describe_engine(spec: &Spec) -> String {
    match spec.engine() {
        Engine::Dense => "dense".to_string(),
        Engine::ExactSingle => "exact_single: chi-square law of one input, computed in f64".to_string(),
        Engine::ExactGram => format!(
            "exact_gram: B x B Gram recursion, products in {}, factorizations in f64",
            gram_precision(spec).as_str()
        ),
    }
}

/// Deepest network whose Gram sampler runs its products in f32 (see [`gram_precision`]).
pub const GRAM_F32_MAX_DEPTH: usize = 10;
/// Largest |log2| of a layer's expected squared norm for f32 Gram products (see
/// [`gram_precision`]); f32 spans 2^-126..2^128.
const GRAM_F32_MAX_LOG2_SCALE: f64 = 60.0;

/// The precision of the Gram sampler's products for `spec`: the spec's own, except that an f32
/// spec computes in f64 unless B <= n_0 / 2, B <= (narrowest width) / 4, the depth is at most
/// [`GRAM_F32_MAX_DEPTH`], and every layer's expected squared norm stays within 2^(+-60).
///
/// The factorizations need well-conditioned Gram matrices: `H^l (H^l)^T` has rank at most the
/// number of active units K ~ n_l / 2, so past B = n_l / 2 it is singular, and f32 rounding
/// turns its null directions into spurious ones (measured by `examples/gram_precision` at
/// n0 = m = 300, B = 256: gradient ratios off by up to 20x). Depth does the same more slowly:
/// the inputs' cosines tend to 1 layer after layer, so the Gram matrices approach rank one and
/// f32 errors grow with depth (at the shape rule's edge, n0 = 128, m = 256, B = 64, median
/// gradient error 2.7e-6 at depth 10, 3.5e-5 at 20 with a largest 2.6e-2, 2e-4 at 30; at depth
/// 100 to 200 a review found gradient ratios off by factors up to 1e21). Within all three rules
/// the f32 products stayed within 5e-6 of the f64 ones for forward ratios and 4e-5 (largest;
/// median 3e-6) for gradient ratios (docs/theory.md section 11). The scale rule keeps the
/// squared norms, which the Gram matrices hold, far from f32's overflow and underflow (the
/// dense engine accumulates them in f64; f32 Gram products underflowed at layer 150 of a LeCun
/// network and overflowed at layer 14 of a variance-1 one).
pub fn gram_precision(spec: &Spec) -> Precision {
    let net = &spec.network;
    let narrowest = net.widths.iter().copied().min().unwrap_or(0);
    let b = spec.samples;
    let shape = 4 * b <= narrowest && 2 * b <= net.input_dim && net.depth() <= GRAM_F32_MAX_DEPTH;
    if spec.precision == Precision::F32 && shape && squared_norms_in_range(spec, GRAM_F32_MAX_LOG2_SCALE) {
        Precision::F32
    } else {
        Precision::F64
    }
}

/// Whether |log2 E||h^l||^2| <= `limit` at every layer l = 0..L (E||x||^2 = n0 for Gaussian
/// inputs, 1 on the sphere; each layer multiplies it by sigma_l^2 n_l / 2).
fn squared_norms_in_range(spec: &Spec, limit: f64) -> bool {
    let net = &spec.network;
    let mut log2 = match spec.input {
        InputDistribution::Gaussian => (net.input_dim as f64).log2(),
        InputDistribution::Sphere => 0.0,
    };
    let mut ok = log2.abs() <= limit;
    for l in 1..=net.depth() {
        log2 += (net.weight_variance(l) * net.widths[l - 1] as f64 / 2.0).log2();
        ok &= log2.abs() <= limit; // false for NaN
    }
    ok
}

/// Memory estimates carry this margin over the buffers counted (allocator slack, small
/// allocations not modelled; an exact-Gram job was once measured at 100.3% of the bare count).
pub const MEMORY_MARGIN: f64 = 1.2;

/// Work of building one report beside the simulation, in floating-point-operation equivalents:
/// the three bounds' searches (milliseconds each) and the prediction Monte Carlo (up to 2e6
/// layer draws of the exact law).
pub const REPORT_WORK_FLOPS: f64 = 5e8;

/// Resource estimates of a spec, computed before anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub memory_bytes: u64,
    pub work_flops: f64,
}

/// Plans of a spec: engine choice, availability of the exact samplers, estimates.
pub trait SpecPlan {
    /// The engine that runs: `auto` takes the exact sampler when permitted and cheaper.
    fn engine(&self) -> Engine;
    /// Why the exact samplers cannot run this spec, if they cannot.
    fn exact_unavailable(&self) -> Option<String>;
    /// Memory (peak over grid points) and work (sum over points) of the spec.
    fn estimate(&self, parallel_trials: usize) -> Estimate;
}

/// Total progress units of one simulation (for progress bars): trials x depth x 2 passes.
pub fn work_units(spec: &Spec) -> u64 {
    spec.trials as u64 * spec.network.depth() as u64 * 2
}

/// The specs a job simulates: itself, or every point of its grid (seeds left as given: the
/// estimates do not depend on them). A `min_width` search decides its widths as it goes: its
/// runner plans each probe (and the job's work is its own budget).
fn simulated(spec: &Spec) -> Vec<Spec> {
    match &spec.task {
        // So does a worst_case job: its runner estimates its searches (jobs::kinds::worst_case).
        Task::MinWidth(_) | Task::WorstCase(_) => Vec::new(),
        // A geometry job's batch (its pairs' inputs) is its `samples`: estimated as a norms job of
        // that batch, an upper bound (it makes no backward pass and stores moments, not ratios).
        Task::Norms | Task::Geometry(_) => vec![spec.clone()],
        Task::WidthSweep(sweep) => sweep
            .points()
            .into_iter()
            .map(|p| spec.with_point(p.width, p.depth, spec.seed))
            .collect(),
    }
}

impl SpecPlan for Spec {
    fn engine(&self) -> Engine {
        let exact = if self.samples == 1 {
            Engine::ExactSingle
        } else {
            Engine::ExactGram
        };
        match self.method {
            Method::Dense => Engine::Dense,
            Method::Exact => exact,
            Method::Auto => {
                if self.exact_unavailable().is_some() {
                    Engine::Dense
                } else if engine_seconds(self, exact) < engine_seconds(self, Engine::Dense) {
                    exact
                } else {
                    Engine::Dense
                }
            }
        }
    }

    fn exact_unavailable(&self) -> Option<String> {
        let net = &self.network;
        if net.is_residual() {
            return Some(
                "the exact samplers simulate plain networks; architecture \"residual\" runs on the dense engine".into(),
            );
        }
        match net.weights {
            Weights::Plain(init) if init.is_gaussian() => {}
            Weights::Plain(_) => return Some("the exact samplers need Gaussian weights (not orthogonal)".into()),
            Weights::Normalized(_) => return Some("the exact samplers need Gaussian weights (no weight norm)".into()),
        }
        let narrowest = net.min_width().min(net.input_dim);
        if self.samples > 1 && self.samples > narrowest {
            return Some(format!(
                "the Gram sampler needs samples <= the narrowest layer (including input_dim) = {narrowest}, got {}",
                self.samples
            ));
        }
        None
    }

    fn estimate(&self, parallel_trials: usize) -> Estimate {
        simulated(self).iter().fold(
            Estimate {
                memory_bytes: 0,
                work_flops: 0.0,
            },
            |acc, s| {
                let e = estimate_one(s, parallel_trials);
                Estimate {
                    memory_bytes: acc.memory_bytes.max((e.memory_bytes as f64 * MEMORY_MARGIN) as u64),
                    work_flops: acc.work_flops + e.work_flops + REPORT_WORK_FLOPS,
                }
            },
        )
    }
}

/// Parse a spec and check it against the limits: the parser's shape and size checks, then
/// [`check`]. What the CLI, the server and the tests use to accept a spec.
pub fn parse_checked(value: &Value, limits: &Limits) -> Result<Spec, SpecError> {
    let spec = parse_spec(value, limits)?;
    check(&spec, limits)?;
    Ok(spec)
}

/// Refuse a spec whose method cannot run it or whose estimates exceed the limits.
pub fn check(spec: &Spec, limits: &Limits) -> Result<(), SpecError> {
    if spec.method == Method::Exact {
        // A sweep needs every point to qualify.
        if let Some(why) = simulated(spec).iter().find_map(|s| s.exact_unavailable()) {
            return Err(SpecError::new(
                "method",
                format!("\"exact\" is not available for this spec: {why}; use \"dense\" or \"auto\""),
            ));
        }
    }
    let est = spec.estimate(limits.parallel_trials);
    if est.memory_bytes > limits.max_memory_bytes {
        return Err(memory_refusal(spec, limits, est.memory_bytes));
    }
    if est.work_flops > limits.max_work {
        return Err(SpecError::new(
            "trials",
            format!(
                "estimated work {:.3e} floating-point operations exceeds the limit of {:.3e}; reduce trials, samples, width or depth",
                est.work_flops, limits.max_work
            ),
        ));
    }
    Ok(())
}

/// The refusal of a spec over the memory limit, naming what dominates at the point that needs
/// the most: the ratios kept for the report (`trials`), the weights of a network
/// (`network.width`, or `network.widths_to_sweep` for a sweep), or the per-sample buffers
/// (`samples`, or `pairs` for a geometry job, whose batch is its pairs' inputs).
fn memory_refusal(spec: &Spec, limits: &Limits, needed: u64) -> SpecError {
    let points = simulated(spec);
    let worst = points
        .iter()
        .max_by_key(|s| estimate_one(s, limits.parallel_trials).memory_bytes)
        .unwrap_or(spec);
    let net = &worst.network;
    let (ratios, weights) = (ratio_bytes(worst), net.weight_count());
    let act = worst.samples as u64 * net.widths.iter().map(|&w| w as u64).sum::<u64>();
    let field = if 2 * ratios >= estimate_one(worst, limits.parallel_trials).memory_bytes {
        "trials"
    } else if act < weights {
        match spec.task {
            Task::WidthSweep(_) => "network.widths_to_sweep",
            _ => "network.width",
        }
    } else if matches!(spec.task, Task::Geometry(_)) {
        "pairs"
    } else {
        "samples"
    };
    let at = match spec.task {
        Task::WidthSweep(_) => format!(
            "at the sweep's largest point (width {}, depth {}): ",
            net.max_width(),
            net.depth()
        ),
        _ => String::new(),
    };
    SpecError::new(
        field,
        format!(
            "estimated memory {} exceeds the limit of {} ({at}samples x widths = {act}, weights per network = \
             {weights}, ratios kept for the report = {}); reduce {field}",
            human_bytes(needed),
            human_bytes(limits.max_memory_bytes),
            human_bytes(ratios),
        ),
    )
}

fn human_bytes(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

/// Time of one trial on `engine`, in units of one dense floating-point operation: the work
/// model ([`engine_work`]) times what one counted operation of that engine costs, measured.
///
/// The Gram sampler's counted operations are slower than the dense engine's GEMM flops: its
/// B x B factorizations and solves run below GEMM speed, and f32 specs outside the f32 rules
/// (B > m / 4, B > n0 / 2, depth > 10, squared norms beyond 2^(+-60)) compute in f64
/// ([`gram_precision`]). Measured on the 2-core AVX-512 development machine (`widthlab
/// run`, best of 3, 2 threads, idle; bench/README.md, "Engine choice"): the sampler's time over
/// the dense time, divided by the counted ratio, was 1.6-2.2 in f32 and 1.3-1.9 in f64 near
/// the crossover (counted ratio 0.4-1.1), higher (2-4) at small B where both are far apart.
/// The crossovers sat between counted ratios 0.52 and 0.66 in f32 (m = 1000, B = 160 vs 200)
/// and between 0.66 and 0.86 in f64 (B = 200 vs 256), hence 1.6 and 1.3. With these factors
/// `auto` took the faster engine on all 30 measured workloads.
fn engine_seconds(spec: &Spec, engine: Engine) -> f64 {
    let per_operation = match (engine, spec.precision) {
        (Engine::ExactGram, Precision::F32) => 1.6,
        (Engine::ExactGram, Precision::F64) => 1.3,
        _ => 1.0,
    };
    per_operation * engine_work(spec, engine)
}

/// Width of what the head reads: n_L, or the stream n_0 of a residual network.
fn head_width(net: &crate::spec::Network) -> usize {
    if net.is_residual() {
        net.input_dim
    } else {
        net.widths[net.depth() - 1]
    }
}

/// Work of one trial under `engine`, in floating-point operations (estimates).
fn engine_work(spec: &Spec, engine: Engine) -> f64 {
    let net = &spec.network;
    let b = spec.samples as f64;
    // The head: logits and the error back into layer L (two B x C x n_L products), and W_out.
    let head = (4.0 * b + 12.0) * net.classes as f64 * head_width(net) as f64;
    // A residual block is two layers (n_0 -> m_b -> n_0): `weight_count` counts both, and
    // each makes one orthogonalization.
    let layers_per_block = if net.is_residual() { 2.0 } else { 1.0 };
    match engine {
        Engine::Dense => {
            let qr: f64 = match net.weights {
                Weights::Plain(Init::Orthogonal { .. })
                | Weights::Normalized(WeightNorm {
                    direction: Direction::Orthogonal,
                    ..
                }) => (1..=net.depth())
                    .map(|l| {
                        let (i, o) = (net.fan_in(l) as f64, net.widths[l - 1] as f64);
                        layers_per_block * 4.0 * i.min(o).powi(2) * i.max(o)
                    })
                    .sum(),
                _ => 0.0,
            };
            net.weight_count() as f64 * (4.0 * b + 12.0) + qr + head
        }
        Engine::ExactSingle => 200.0 * net.depth() as f64 + 50.0 * net.classes as f64,
        Engine::ExactGram => {
            (1..=net.depth())
                .map(|l| {
                    let (i, o) = (net.fan_in(l) as f64, net.widths[l - 1] as f64);
                    b * b * (6.0 * o + 6.0 * i) + 12.0 * b * (o + i) + 4.0 * b * b * b
                })
                .sum::<f64>()
                + 2.0 * b * b * net.input_dim as f64
                + head
        }
    }
}

/// Bytes a trial needs besides the engine's own buffers: the head (W_out, C x n_L, and
/// the B x C logits and errors, in f64 at most) and the per-sample norms (f64).
fn head_and_norms_bytes(spec: &Spec) -> u64 {
    let net = &spec.network;
    let (n, c, last) = (spec.samples as u64, net.classes as u64, head_width(net) as u64);
    8 * (c * last + 3 * n * c + n * (net.depth() as u64 + 4))
}

/// Peak bytes of the stored ratios while the report is built: the ratios themselves
/// (2 per layer and sample), the pooled copies of both, and one deviation vector.
fn ratio_bytes(spec: &Spec) -> u64 {
    5 * 8 * spec.trials as u64 * spec.samples as u64 * spec.network.depth() as u64
}

fn estimate_one(spec: &Spec, parallel_trials: usize) -> Estimate {
    let engine = spec.engine();
    let net = &spec.network;
    let concurrent = parallel_trials.clamp(1, spec.trials) as u64;
    let n = spec.samples as u64;
    let width_sum: u64 = net.widths.iter().map(|&w| w as u64).sum::<u64>() + net.input_dim as u64;
    if engine == Engine::ExactSingle {
        // One input: per-layer norms, active counts, ratios and gradient norms (O(L)), and the
        // head's logits, error, probabilities and target (O(C)); no matrix at all.
        let per_trial = 8 * (5 * (net.depth() as u64 + 1) + 4 * net.classes as u64);
        return Estimate {
            memory_bytes: concurrent.saturating_mul(per_trial).saturating_add(ratio_bytes(spec)),
            work_flops: spec.trials as f64 * engine_work(spec, engine),
        };
    }
    if engine == Engine::ExactGram {
        // Gram sampler: every layer's pre-activations and B x B factors, plus a few n x B
        // temporaries, and one group of a pass's Gaussian draws (at most 32 MiB, see sim::exact).
        let draws = (8 * n * width_sum).min(32 << 20);
        let per_trial = 8 * (n * width_sum + (net.depth() as u64 + 4) * n * n + 4 * n * net.max_width() as u64)
            + draws
            + head_and_norms_bytes(spec);
        return Estimate {
            memory_bytes: concurrent.saturating_mul(per_trial).saturating_add(ratio_bytes(spec)),
            work_flops: spec.trials as f64 * engine_work(spec, engine),
        };
    }
    let b = spec.precision.bytes();
    let widest = net.max_width() as u64;
    if net.is_residual() {
        return estimate_residual(spec, concurrent);
    }
    // Per trial (see sim::dense): the weights kept for the backward pass, or one layer's
    // buffer when they are drawn again; the input, three activation/error buffers, one
    // bit per activation for the ReLU pattern (rows start on a byte) (and the activations under weight norm);
    // one Gram-Schmidt scratch (f64 whatever the precision); the head.
    let all_weights = b * net.weight_count();
    let weights = if all_weights <= KEEP_WEIGHTS_BYTES as u64 || !cheap_to_redraw(&net.weights) {
        all_weights
    } else {
        b * (1..=net.depth())
            .map(|l| (net.fan_in(l) * net.widths[l - 1]) as u64)
            .max()
            .unwrap_or(0)
    };
    let activations = match net.weights {
        Weights::Normalized(_) => b * n * width_sum,
        Weights::Plain(_) => 0,
    };
    let per_trial = weights
        + b * n * (net.input_dim as u64 + 3 * widest)
        + n * (width_sum / 8 + net.depth() as u64)
        + activations
        + 8 * widest * widest
        + head_and_norms_bytes(spec);
    Estimate {
        memory_bytes: concurrent.saturating_mul(per_trial).saturating_add(ratio_bytes(spec)),
        work_flops: spec.trials as f64 * engine_work(spec, Engine::Dense),
    }
}

/// The residual engine (`sim::residual`) per trial: the blocks' weights (kept, or the largest
/// block's pair when they are drawn again), the input, the stream and its gradient (B x n_0
/// each), one hidden buffer (B x m_b), one bit per hidden unit and sample for the ReLU
/// patterns, an orthogonalization scratch (f64), the head and the per-sample norms.
fn estimate_residual(spec: &Spec, concurrent: u64) -> Estimate {
    let net = &spec.network;
    let (b, n, n0) = (spec.precision.bytes(), spec.samples as u64, net.input_dim as u64);
    let all_weights = b * net.weight_count();
    let widest_block = net.widths.iter().map(|&m| m as u64).max().unwrap_or(0);
    let weights = if all_weights <= KEEP_WEIGHTS_BYTES as u64 || !cheap_to_redraw(&net.weights) {
        all_weights
    } else {
        b * 2 * n0 * widest_block
    };
    let hidden_sum: u64 = net.widths.iter().map(|&m| m as u64).sum();
    let square = n0.max(widest_block);
    let per_trial = weights
        + b * n * (3 * n0 + widest_block)
        + n * (hidden_sum / 8 + net.widths.len() as u64)
        + 8 * square.saturating_mul(square)
        + head_and_norms_bytes(spec);
    Estimate {
        memory_bytes: concurrent.saturating_mul(per_trial).saturating_add(ratio_bytes(spec)),
        work_flops: spec.trials as f64 * engine_work(spec, Engine::Dense),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "network": {"input_dim": 500, "depth": 10, "width": 100, "init": {"scheme": "he", "fan": "out"}},
            "samples": 2000, "seed": 7
        })
    }

    fn err_field(v: Value) -> SpecError {
        parse_checked(&v, &Limits::default()).expect_err("spec should be refused")
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut v = base();
        let mut cur = &mut v;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        cur[path[path.len() - 1]] = value;
        v
    }

    /// `auto` takes the engine that was faster on each measured workload (bench/README.md,
    /// "Engine choice"), in both precisions.
    #[test]
    fn auto_takes_the_measured_faster_engine() {
        let cases = [
            // (n0, L, m, B, Gram sampler faster in f32, in f64)
            (500, 10, 1000, 256, false, false),
            (1000, 10, 1000, 250, false, false),
            (500, 10, 1000, 200, false, true),
            (500, 10, 1000, 160, true, true),
            (500, 10, 1000, 128, true, true),
            (500, 10, 1000, 64, true, true),
            (500, 10, 1000, 16, true, true),
            (100, 50, 1000, 16, true, true),
            (1000, 50, 1000, 16, true, true),
            (4000, 10, 4000, 64, true, true),
            (500, 10, 4000, 256, true, true),
            (1000, 10, 2000, 300, true, true),
            (500, 10, 300, 128, false, false),
        ];
        for (n0, depth, m, b, f32_gram, f64_gram) in cases {
            for (precision, gram) in [("f32", f32_gram), ("f64", f64_gram)] {
                let v = json!({
                    "network": {"input_dim": n0, "depth": depth, "width": m, "init": {"scheme": "he", "fan": "out"}},
                    "samples": b, "seed": 1, "precision": precision
                });
                let spec = parse_checked(&v, &Limits::default()).unwrap();
                let want = if gram { Engine::ExactGram } else { Engine::Dense };
                assert_eq!(spec.engine(), want, "n0={n0} L={depth} m={m} B={b} {precision}");
            }
        }
    }

    #[test]
    fn memory_limit_refuses_before_allocating() {
        // 10^6 samples x 10 layers x 1000 wide would need tens of GiB.
        let mut v = with(&["network", "width"], json!(1000));
        v["samples"] = json!(1_000_000);
        let e = err_field(v);
        assert_eq!(e.field, "samples");
        assert!(e.message.contains("exceeds the limit"), "{}", e.message);
        // A single layer of width 10^6 has 5 * 10^11 weights: refused on memory, not allocated.
        let e = err_field(with(&["network", "width"], json!(1_000_000)));
        assert_eq!(e.field, "network.width");
    }

    #[test]
    fn a_residual_estimate_counts_two_matrices_per_block() {
        // B = 6 blocks of hidden width 40 on a stream of 30, 50 inputs, 3 networks, 10 classes.
        let v = json!({"network": {"input_dim": 30, "architecture": "residual", "blocks": 6, "width": 40,
                       "weight_norm": {"gain": "proposed"}, "head": {"classes": 10}}, "samples": 50, "trials": 3});
        let spec = parse_checked(&v, &Limits::default()).unwrap();
        assert_eq!(spec.engine(), Engine::Dense);
        assert!(spec.exact_unavailable().is_some_and(|why| why.contains("residual")));
        let weights = 6.0 * 2.0 * 30.0 * 40.0;
        let head = (4.0 * 50.0 + 12.0) * 10.0 * 30.0;
        let want = 3.0 * (weights * (4.0 * 50.0 + 12.0) + head) + REPORT_WORK_FLOPS;
        let got = spec.estimate(1).work_flops;
        assert!((got / want - 1.0).abs() < 1e-12, "{got} vs {want}");
        // Memory: at least the weights, the stream, its gradient and the patterns of one network
        // (one bit per hidden unit and sample, each row on whole bytes: 5 bytes for 40 units).
        let floor = 8 * (weights as u64 + 3 * 50 * 30) + 50 * 6 * 5;
        assert!(spec.estimate(1).memory_bytes >= floor);
    }

    #[test]
    fn the_head_counts_in_the_estimates() {
        // W_out alone is 10000 x 10^6 f64 = 80 GB: refused before anything is allocated.
        let v = json!({"network": {"input_dim": 2, "depth": 2, "width": 1_000_000, "init": {"scheme": "he", "fan": "out"},
                       "head": {"classes": 10000}}, "samples": 2});
        let e = err_field(v);
        assert!(e.message.contains("estimated memory"), "{e}");
        // And its products count as work: 1000 samples x 10000 classes x width 1000, 10^4 trials.
        let v = json!({"network": {"input_dim": 1, "depth": 1, "width": 1000, "init": {"scheme": "he", "fan": "out"},
                       "head": {"classes": 10000}}, "samples": 1000, "trials": 10000, "method": "dense"});
        let e = err_field(v);
        assert!(
            e.message.contains("estimated work") || e.message.contains("estimated memory"),
            "{e}"
        );
    }

    /// The single-input sampler holds O(L + C) per network: its estimate neither grows with the
    /// widths nor makes acceptance depend on how many networks run side by side (it once used
    /// the Gram sampler's model: 7.67 GiB at two threads for what runs in 100 MB).
    #[test]
    fn the_single_input_sampler_is_estimated_by_its_own_size() {
        let v = json!({"network": {"input_dim": 1_000_000, "depth": 400, "width": 1_000_000,
                       "init": {"scheme": "he", "fan": "out"}}, "samples": 1, "trials": 2, "seed": 1});
        let spec = parse_checked(&v, &Limits::default()).expect("accepted");
        assert_eq!(spec.engine(), Engine::ExactSingle);
        let (one, two) = (spec.estimate(1).memory_bytes, spec.estimate(2).memory_bytes);
        assert!(two < 1 << 20, "{two} bytes");
        assert!(one < two, "two networks side by side hold twice the per-network part");
    }

    /// A refusal over the memory limit names what dominates at the point that needs the most
    /// (the review found `samples` named for samples = 1, `pairs` for a geometry job that did not
    /// send pairs, and a sweep's first point described when its widest broke the limit).
    #[test]
    fn memory_refusals_name_what_dominates() {
        let he = json!({"scheme": "he", "fan": "out"});
        let cases = [
            (
                json!({"network": {"input_dim": 1, "depth": 1000, "width": 1, "init": he}, "samples": 1, "trials": 90000}),
                "trials",
            ),
            (
                json!({"kind": "geometry", "network": {"input_dim": 10, "depth": 10, "width": 10, "init": he},
                       "trials": 1_000_000}),
                "trials",
            ),
            (
                json!({"kind": "width_sweep", "network": {"input_dim": 10, "depth": 2, "widths_to_sweep": [10, 1_000_000], "init": he},
                       "samples": 2, "method": "dense"}),
                "network.widths_to_sweep",
            ),
            (
                json!({"network": {"input_dim": 1000, "depth": 2, "width": 1000, "init": he}, "samples": 1_000_000}),
                "samples",
            ),
        ];
        for (v, field) in cases {
            let e = err_field(v.clone());
            assert!(e.message.contains("estimated memory"), "{v}: {e}");
            assert_eq!(e.field, field, "{v}: {e}");
        }
    }
}
