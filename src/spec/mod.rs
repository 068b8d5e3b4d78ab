//! Job specs: the JSON of product.md parsed into validated domain types.
//!
//! Parsing goes through `raw` (serde shapes, unknown fields refused) and then through range
//! checks that name the offending field and the allowed range. A [`Spec`] that exists is valid,
//! including its memory and work estimates against [`Limits`]; nothing is allocated before that.

mod raw;

use serde::Serialize;
use serde_json::{json, Value};

pub use raw::{parse_spec, HeadInput, InitInput, InputSpec, JobSpecInput, NetworkInput, WeightNormInput};

/// Proof that a value came out of the parser; only this module can make one.
#[derive(Debug, Clone, PartialEq)]
pub struct Valid(());

/// A spec error: which field, and what is allowed. Rendered as 422 by the HTTP layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Dotted path of the field, e.g. `network.init.fan`; empty for the body as a whole.
    pub field: String,
    pub message: String,
}

impl SpecError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Resource limits enforced while parsing, before any allocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_width: usize,
    pub max_input_dim: usize,
    pub max_depth: usize,
    pub max_samples: usize,
    pub max_trials: usize,
    pub max_classes: usize,
    /// Points of a width x depth grid.
    pub max_sweep_points: usize,
    /// Peak memory of a run: concurrent trials' buffers plus the stored ratios.
    pub max_memory_bytes: u64,
    /// Work estimate in floating-point operations (matrix products, weight draws, QR).
    pub max_work: f64,
    /// Trials that may run at once (the compute pool's size); scales the memory estimate.
    pub parallel_trials: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_width: 1_000_000,
            max_input_dim: 1_000_000,
            max_depth: 1000,
            max_samples: 1_000_000,
            max_trials: 1_000_000,
            max_classes: 10_000,
            max_sweep_points: 64,
            max_memory_bytes: 4 << 30,
            max_work: 2e14,
            parallel_trials: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One network configuration, measured layer by layer.
    Norms,
    /// The same measurement at every width (x depth) of a grid; one result per point.
    WidthSweep,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Norms => "norms",
            Kind::WidthSweep => "width_sweep",
        }
    }
}

/// The grid of a `width_sweep`: every width at every depth (depth-major order).
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub widths: Vec<usize>,
    pub depths: Vec<usize>,
}

/// One point of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPoint {
    pub index: usize,
    pub width: usize,
    pub depth: usize,
}

impl Sweep {
    pub fn points(&self) -> Vec<SweepPoint> {
        let mut out = Vec::with_capacity(self.widths.len() * self.depths.len());
        for &depth in &self.depths {
            for &width in &self.widths {
                out.push(SweepPoint {
                    index: out.len(),
                    width,
                    depth,
                });
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fan {
    In,
    Out,
}

/// Weight initialization; the per-layer variance rule is [`Init::variance`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// N(0, 2/n_l) with `fan: out` (the paper's He), N(0, 2/n_{l-1}) with `fan: in`.
    He { fan: Fan },
    /// Textbook Glorot: N(0, 2/(n_{l-1} + n_l)).
    Glorot,
    /// Glorot as the paper's scripts code it: N(0, 1/n_l).
    GlorotPaper,
    /// N(0, 1/n_{l-1}).
    Lecun,
    /// `gain` times Haar-orthogonal rows (n_l <= n_{l-1}) or columns (n_l > n_{l-1}).
    Orthogonal { gain: f64 },
    /// N(0, variance), the same for every layer.
    Gaussian { variance: f64 },
}

impl Init {
    /// Effective variance E[W_ij^2] of layer l with `fan_in = n_{l-1}`, `fan_out = n_l`.
    pub fn variance(&self, fan_in: usize, fan_out: usize) -> f64 {
        let (i, o) = (fan_in as f64, fan_out as f64);
        match *self {
            Init::He { fan: Fan::Out } => 2.0 / o,
            Init::He { fan: Fan::In } => 2.0 / i,
            Init::Glorot => 2.0 / (i + o),
            Init::GlorotPaper => 1.0 / o,
            Init::Lecun => 1.0 / i,
            Init::Orthogonal { gain } => gain * gain / i.max(o),
            Init::Gaussian { variance } => variance,
        }
    }

    /// The variance rule in words, echoed in every result.
    pub fn rule(&self) -> String {
        match *self {
            Init::He { fan: Fan::Out } => "W_ij ~ N(0, 2/n_l), n_l = fan-out = rows of W^l".into(),
            Init::He { fan: Fan::In } => "W_ij ~ N(0, 2/n_{l-1}), n_{l-1} = fan-in = columns of W^l".into(),
            Init::Glorot => "W_ij ~ N(0, 2/(n_{l-1} + n_l)) (textbook Glorot)".into(),
            Init::GlorotPaper => "W_ij ~ N(0, 1/n_l) (Glorot as in the paper's scripts)".into(),
            Init::Lecun => "W_ij ~ N(0, 1/n_{l-1})".into(),
            Init::Orthogonal { gain } => format!(
                "W = {gain} * Haar-orthogonal rows (n_l <= n_{{l-1}}) or columns; E W_ij^2 = gain^2/max(n_l, n_{{l-1}})"
            ),
            Init::Gaussian { variance } => format!("W_ij ~ N(0, {variance})"),
        }
    }

    pub fn is_gaussian(&self) -> bool {
        !matches!(self, Init::Orthogonal { .. })
    }

    fn to_json(self) -> Value {
        match self {
            Init::He { fan } => json!({"scheme": "he", "fan": fan}),
            Init::Glorot => json!({"scheme": "glorot"}),
            Init::GlorotPaper => json!({"scheme": "glorot_paper"}),
            Init::Lecun => json!({"scheme": "lecun"}),
            Init::Orthogonal { gain } => json!({"scheme": "orthogonal", "gain": gain}),
            Init::Gaussian { variance } => json!({"scheme": "gaussian", "variance": variance}),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightNormGain {
    /// g = 1 for every unit.
    Naive,
    /// g^l = sqrt(2 n_{l-1} / n_l) (Arpit, Campos & Bengio).
    Derived,
    Fixed(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Gaussian,
    Orthogonal,
}

/// Row-wise weight normalization `w_i = g v_i / ||v_i||`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightNorm {
    pub gain: WeightNormGain,
    pub direction: Direction,
}

impl WeightNorm {
    /// The gain g of every unit of a layer with `fan_in = n_{l-1}`, `fan_out = n_l`.
    pub fn gain(&self, fan_in: usize, fan_out: usize) -> f64 {
        match self.gain {
            WeightNormGain::Naive => 1.0,
            WeightNormGain::Derived => (2.0 * fan_in as f64 / fan_out as f64).sqrt(),
            WeightNormGain::Fixed(g) => g,
        }
    }

    /// The factor the paper divides the v-gradient by: g for `derived`, 1 otherwise.
    pub fn gradient_normalizer(&self, fan_in: usize, fan_out: usize) -> f64 {
        match self.gain {
            WeightNormGain::Derived => self.gain(fan_in, fan_out),
            _ => 1.0,
        }
    }

    fn to_json(self) -> Value {
        let gain = match self.gain {
            WeightNormGain::Naive => json!("naive"),
            WeightNormGain::Derived => json!("derived"),
            WeightNormGain::Fixed(g) => json!(g),
        };
        json!({"gain": gain, "direction": self.direction})
    }
}

/// How the weights of the hidden layers are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weights {
    Plain(Init),
    Normalized(WeightNorm),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputDistribution {
    /// x ~ N(0, I).
    Gaussian,
    /// x uniform on the unit sphere.
    Sphere,
}

/// How a spec asks to be simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Draw every weight matrix and push the batch through it.
    Dense,
    /// Sample from the exact law without weight matrices (Gaussian weights only).
    Exact,
    /// `exact` where the spec permits it and it is cheaper, `dense` otherwise.
    Auto,
}

/// The engine that actually runs (a resolved [`Method`]); recorded in the stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    Dense,
    /// One input per network: chi-square law, O(L + C) per network.
    ExactSingle,
    /// B inputs per network: B x B Gram recursion, O(n B^2 + B^3) per layer.
    ExactGram,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Dense => "dense",
            Engine::ExactSingle => "exact_single",
            Engine::ExactGram => "exact_gram",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    F32,
    F64,
}

impl Precision {
    pub fn bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
}

/// A validated network: input dimension, hidden widths n_1..n_L, weights, softmax head.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub input_dim: usize,
    /// Hidden widths n_1..n_L (at least one).
    pub widths: Vec<usize>,
    pub weights: Weights,
    /// Number of softmax classes C of the cross-entropy head.
    pub classes: usize,
    pub(crate) _valid: Valid,
}

impl Network {
    pub fn depth(&self) -> usize {
        self.widths.len()
    }

    /// n_{l-1} for layer l = 1..L (index l-1).
    pub fn fan_in(&self, layer: usize) -> usize {
        if layer == 1 {
            self.input_dim
        } else {
            self.widths[layer - 2]
        }
    }

    /// Effective E[W_ij^2] of layer l (1-based).
    pub fn weight_variance(&self, layer: usize) -> f64 {
        let (i, o) = (self.fan_in(layer), self.widths[layer - 1]);
        match self.weights {
            Weights::Plain(init) => init.variance(i, o),
            Weights::Normalized(wn) => {
                let g = wn.gain(i, o);
                g * g / i as f64
            }
        }
    }

    /// Number of weights of the hidden layers, sum n_l n_{l-1}.
    pub fn weight_count(&self) -> u64 {
        (1..=self.depth())
            .map(|l| (self.fan_in(l) * self.widths[l - 1]) as u64)
            .sum()
    }

    pub fn min_width(&self) -> usize {
        self.widths.iter().copied().min().unwrap_or(0)
    }

    pub fn max_width(&self) -> usize {
        self.widths.iter().copied().chain([self.input_dim]).max().unwrap_or(0)
    }

    pub fn is_uniform(&self) -> bool {
        self.widths.windows(2).all(|w| w[0] == w[1])
    }

    /// The variance rule of the hidden layers in words, echoed in every result.
    pub fn variance_rule(&self) -> String {
        match self.weights {
            Weights::Plain(init) => init.rule(),
            Weights::Normalized(_) => "w_i = g v_i / ||v_i|| with isotropic v; E W_ij^2 = g^2/n_{l-1}".to_string(),
        }
    }

    /// Normalized network JSON: parses back to the same network.
    pub fn to_json(&self) -> Value {
        let (init, weight_norm) = match self.weights {
            Weights::Plain(init) => (init.to_json(), Value::Null),
            Weights::Normalized(wn) => (Value::Null, wn.to_json()),
        };
        json!({
            "input_dim": self.input_dim,
            "widths": self.widths,
            "init": init,
            "weight_norm": weight_norm,
            "head": {"classes": self.classes},
        })
    }
}

/// A validated job spec. Construct with [`parse_spec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub kind: Kind,
    pub network: Network,
    /// Inputs pushed through each network (N).
    pub samples: usize,
    /// Independent networks.
    pub trials: usize,
    pub input: InputDistribution,
    pub epsilon: f64,
    pub delta: f64,
    pub seed: u64,
    pub precision: Precision,
    /// As requested; [`Spec::engine`] is what runs.
    pub method: Method,
    /// The grid of a `width_sweep` (None for `norms`).
    pub sweep: Option<Sweep>,
    pub(crate) _valid: Valid,
}

/// Resource estimates of a spec, computed before anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub memory_bytes: u64,
    pub work_flops: f64,
}

impl Spec {
    /// Normalized spec JSON with every default filled in; [`parse_spec`] of it gives `self` back.
    pub fn to_json(&self) -> Value {
        let mut network = self.network.to_json();
        if let Some(sweep) = &self.sweep {
            if let Some(obj) = network.as_object_mut() {
                obj.remove("widths");
                obj.insert("widths_to_sweep".into(), json!(sweep.widths));
                obj.insert("depths_to_sweep".into(), json!(sweep.depths));
            }
        }
        json!({
            "kind": self.kind,
            "network": network,
            "samples": self.samples,
            "trials": self.trials,
            "input": {"distribution": self.input},
            "epsilon": self.epsilon,
            "delta": self.delta,
            "seed": self.seed,
            "precision": self.precision,
            "method": self.method,
        })
    }

    /// Why the exact samplers cannot run this spec, if they cannot.
    pub fn exact_unavailable(&self) -> Option<String> {
        let net = &self.network;
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

    /// The engine that runs: `auto` takes the exact sampler when permitted and cheaper.
    pub fn engine(&self) -> Engine {
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
                } else if self.engine_work(exact) < self.engine_work(Engine::Dense) {
                    exact
                } else {
                    Engine::Dense
                }
            }
        }
    }

    /// Work of one trial under `engine`, in floating-point operations (estimates).
    fn engine_work(&self, engine: Engine) -> f64 {
        let net = &self.network;
        let b = self.samples as f64;
        // The head: logits and the error back into layer L (two B x C x n_L products), and W_out.
        let head = (4.0 * b + 12.0) * net.classes as f64 * net.widths[net.depth() - 1] as f64;
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
                            4.0 * i.min(o).powi(2) * i.max(o)
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
    fn head_and_norms_bytes(&self) -> u64 {
        let net = &self.network;
        let (n, c, last) = (
            self.samples as u64,
            net.classes as u64,
            net.widths[net.depth() - 1] as u64,
        );
        8 * (c * last + 3 * n * c + n * (net.depth() as u64 + 4))
    }

    /// Peak bytes of the stored ratios while the report is built: the ratios themselves
    /// (2 per layer and sample), the pooled copies of both, and one deviation vector.
    fn ratio_bytes(&self) -> u64 {
        5 * 8 * self.trials as u64 * self.samples as u64 * self.network.depth() as u64
    }

    /// The `norms` spec of one sweep point: uniform width and depth, its own seed
    /// (`splitmix64(seed ^ (index + 1) * golden)`, so points are independent and reproducible).
    pub fn point_spec(&self, point: SweepPoint) -> Spec {
        let mut network = self.network.clone();
        network.widths = vec![point.width; point.depth];
        let mix = self.seed ^ (point.index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Spec {
            kind: Kind::Norms,
            network,
            seed: crate::sim::rng::splitmix64(mix),
            sweep: None,
            ..self.clone()
        }
    }

    /// Memory (peak over points) and work (sum over points) of the spec.
    pub fn estimate(&self, parallel_trials: usize) -> Estimate {
        match &self.sweep {
            None => self.estimate_one(parallel_trials),
            Some(sweep) => sweep.points().iter().fold(
                Estimate {
                    memory_bytes: 0,
                    work_flops: 0.0,
                },
                |acc, &p| {
                    let e = self.point_spec(p).estimate_one(parallel_trials);
                    Estimate {
                        memory_bytes: acc.memory_bytes.max(e.memory_bytes),
                        work_flops: acc.work_flops + e.work_flops,
                    }
                },
            ),
        }
    }

    fn estimate_one(&self, parallel_trials: usize) -> Estimate {
        let engine = self.engine();
        let net = &self.network;
        if engine != Engine::Dense {
            let n = self.samples as u64;
            let width_sum: u64 = net.widths.iter().map(|&w| w as u64).sum::<u64>() + net.input_dim as u64;
            // Gram sampler: every layer's pre-activations and B x B factors, plus a few n x B temporaries.
            // and one group of a pass's Gaussian draws (at most 32 MiB, see sim::exact).
            let draws = (8 * n * width_sum).min(32 << 20);
            let per_trial = 8 * (n * width_sum + (net.depth() as u64 + 4) * n * n + 4 * n * net.max_width() as u64)
                + draws
                + self.head_and_norms_bytes();
            let concurrent = parallel_trials.clamp(1, self.trials) as u64;
            let ratios = self.ratio_bytes();
            return Estimate {
                memory_bytes: concurrent.saturating_mul(per_trial).saturating_add(ratios),
                work_flops: self.trials as f64 * self.engine_work(engine),
            };
        }
        let b = self.precision.bytes();
        let n = self.samples as u64;
        let width_sum: u64 = net.widths.iter().map(|&w| w as u64).sum::<u64>() + net.input_dim as u64;
        let widest = net.max_width() as u64;
        // Per trial (see sim::dense): the weights kept for the backward pass, or one layer's
        // buffer when they are drawn again; the input, three activation/error buffers, one
        // byte per activation for the ReLU pattern (and the activations under weight norm);
        // one Gram-Schmidt scratch (f64 whatever the precision); the head.
        let all_weights = b * net.weight_count();
        let weights = if all_weights <= crate::sim::dense::KEEP_WEIGHTS_BYTES as u64
            || !crate::sim::dense::cheap_to_redraw(&net.weights)
        {
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
            + n * width_sum
            + activations
            + 8 * widest * widest
            + self.head_and_norms_bytes();
        let concurrent = parallel_trials.clamp(1, self.trials) as u64;
        let ratios = self.ratio_bytes();
        Estimate {
            memory_bytes: concurrent.saturating_mul(per_trial).saturating_add(ratios),
            work_flops: self.trials as f64 * self.engine_work(Engine::Dense),
        }
    }
}
