//! Job specs: the JSON of the API parsed into validated domain types, and the named presets.
//!
//! Holds: the spec's types, its parser (`raw`: serde shapes, unknown fields refused, then range
//! checks that name the offending field and the allowed range), the string enums of the wire
//! format (`names`), the paper presets, and `Display for Spec`.
//! Depends on: nothing else in the crate. Resource estimates (memory, work, engine choice) are the
//! simulator's business (`sim::plan`), checked after parsing.

mod display;
pub mod labels;
pub mod names;
pub mod presets;
mod raw;

use serde_json::{json, Value};

use names::string_enum;
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

/// Resource limits: sizes are enforced by the parser, memory and work by `sim::plan` (both before
/// anything is allocated).
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
    /// Per-sample ratios a `keep_samples` job may keep: trials x samples x depth x 2 (forward and
    /// gradient), 8 bytes each in the database (about 10.7 as stored text).
    pub max_kept_values: u64,
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
            parallel_trials: default_threads(),
            max_kept_values: 4_000_000,
        }
    }
}

fn one_or_many_usize(v: &[usize]) -> Value {
    match v {
        [one] => json!(one),
        many => json!(many),
    }
}

/// The fewest networks a `min_width` probe may be allowed (its first look).
pub const MIN_NETWORKS_PER_WIDTH: usize = 32;

/// Compute threads when none are configured: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

string_enum! {
    /// What a job computes. Each kind has one runner (`jobs::kinds`).
    pub enum Kind {
        /// One network configuration, measured layer by layer.
        Norms = "norms",
        /// The same measurement at every width (x depth) of a grid; one result per point.
        WidthSweep = "width_sweep",
        /// The smallest width meeting (epsilon, delta), searched and certified (x epsilon x depth).
        MinWidth = "min_width",
        /// Angles and distances between input pairs, layer by layer, against the arc-cosine map.
        Geometry = "geometry",
        /// The inputs on the unit sphere that stretch and shrink the most, searched per layer,
        /// bracketed by a certified upper bound (a grid over input dimension x width).
        WorstCase = "worst_case",
    }
}

string_enum! {
    /// Which ratios a claim covers.
    pub enum Claim {
        Forward = "forward",
        Gradient = "gradient",
        /// Both at once: the theorem's claim.
        Both = "both",
    }
}

impl Claim {
    pub fn forward(self) -> bool {
        matches!(self, Claim::Forward | Claim::Both)
    }

    pub fn gradient(self) -> bool {
        matches!(self, Claim::Gradient | Claim::Both)
    }
}

/// What a `min_width` job searches: every (epsilon, depth) cell's smallest width at which, with
/// probability >= 1 - delta over the weights, the claim holds for every layer and input.
#[derive(Debug, Clone, PartialEq)]
pub struct MinWidthSearch {
    pub epsilons: Vec<f64>,
    pub depths: Vec<usize>,
    pub claim: Claim,
    /// Probability that every decision of a cell's search is right.
    pub confidence: f64,
    /// The widths searched, [lo, hi]; None: from 1 to twice the largest bound's minimal width
    /// (capped at the width limit), resolved per cell by the runner.
    pub width_range: Option<(u64, u64)>,
    pub max_networks_per_width: u64,
    /// Work the whole job may do, in floating-point operations (estimates).
    pub max_work: f64,
}

impl MinWidthSearch {
    /// The cells, epsilon-major: (cell index, epsilon, depth).
    pub fn cells(&self) -> Vec<(usize, f64, usize)> {
        let mut out = Vec::with_capacity(self.epsilons.len() * self.depths.len());
        for &e in &self.epsilons {
            for &d in &self.depths {
                out.push((out.len(), e, d));
            }
        }
        out
    }
}

/// The kind of a job with what only that kind needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    Norms,
    WidthSweep(Sweep),
    MinWidth(MinWidthSearch),
    Geometry(Geometry),
    WorstCase(WorstCase),
}

/// What a `worst_case` job searches: for every (input dimension, width) point of its grid,
/// `trials` networks of `depth` layers; per network and layer the unit inputs that stretch and
/// shrink ||h^l(x)|| the most, from `restarts` random starts of `steps` steps each.
#[derive(Debug, Clone, PartialEq)]
pub struct WorstCase {
    /// Input dimensions n_0 of the grid (at least one).
    pub input_dims: Vec<usize>,
    /// Hidden widths m of the grid (every layer of a point has width m).
    pub widths: Vec<usize>,
    /// Random starts per (layer, direction) search (besides the best random input and, from
    /// layer 2 on, the previous layer's extreme input).
    pub restarts: usize,
    /// Steps per start (each one forward and one backward pass to the searched layer).
    pub steps: usize,
}

/// One point of a `worst_case` grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorstCasePoint {
    pub index: usize,
    pub input_dim: usize,
    pub width: usize,
}

impl WorstCase {
    /// Default random starts per search.
    pub const DEFAULT_RESTARTS: usize = 8;
    /// Default steps per start.
    pub const DEFAULT_STEPS: usize = 60;
    /// At most this many starts per search.
    pub const MAX_RESTARTS: usize = 1024;
    /// At most this many steps per start.
    pub const MAX_STEPS: usize = 100_000;

    /// The grid points, input-dimension-major: (n_0, m) for every n_0, then every m.
    pub fn points(&self) -> Vec<WorstCasePoint> {
        let mut out = Vec::with_capacity(self.input_dims.len() * self.widths.len());
        for &input_dim in &self.input_dims {
            for &width in &self.widths {
                out.push(WorstCasePoint {
                    index: out.len(),
                    input_dim,
                    width,
                });
            }
        }
        out
    }
}

/// What a `geometry` job measures: `pairs` input pairs (x, y) with ||x|| = ||y|| at each of
/// `angles_deg` initial angles, pushed through every network.
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    /// Pairs per angle and network (P).
    pub pairs: usize,
    /// Initial angles in degrees, each in [`Geometry::MIN_ANGLE_DEG`], 180].
    pub angles_deg: Vec<f64>,
}

impl Geometry {
    /// Default initial angles (degrees).
    pub const DEFAULT_ANGLES: [f64; 5] = [10.0, 30.0, 60.0, 90.0, 120.0];
    /// At most this many angles.
    pub const MAX_ANGLES: usize = 16;
    /// The smallest initial angle, degrees: 1 - cos of it is 1.5e-8, far above f64 rounding, and
    /// the inputs differ by 1.7e-4 of their norm, far above f32 rounding. Below about 1e-6 degrees
    /// cos is 1 in f64 and the pair's distance ratio is 0/0.
    pub const MIN_ANGLE_DEG: f64 = 0.01;

    /// (cos t, sin t) of an angle t in degrees, exact at 90 and 180 degrees.
    pub fn cos_sin(deg: f64) -> (f64, f64) {
        if deg == 90.0 {
            (0.0, 1.0)
        } else if deg == 180.0 {
            (-1.0, 0.0)
        } else {
            let (s, c) = deg.to_radians().sin_cos();
            (c, s)
        }
    }

    /// Inputs of one network's batch: two per pair and angle.
    pub fn batch(&self) -> usize {
        2 * self.pairs * self.angles_deg.len()
    }
}

impl Task {
    pub fn kind(&self) -> Kind {
        match self {
            Task::Norms => Kind::Norms,
            Task::WidthSweep(_) => Kind::WidthSweep,
            Task::MinWidth(_) => Kind::MinWidth,
            Task::Geometry(_) => Kind::Geometry,
            Task::WorstCase(_) => Kind::WorstCase,
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

string_enum! {
    /// Which dimension of W^l scales the variance.
    pub enum Fan {
        In = "in",
        Out = "out",
    }
}

string_enum! {
    /// The `scheme` of `network.init`.
    pub enum Scheme {
        He = "he",
        Glorot = "glorot",
        GlorotPaper = "glorot_paper",
        Lecun = "lecun",
        Orthogonal = "orthogonal",
        Gaussian = "gaussian",
    }
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
    /// g^l = sqrt(2 n_{l-1} / n_l) (Arpit, Campos & Bengio); in a residual block ("proposed"):
    /// g_1 = sqrt(2 n_0 / m), g_2 = sqrt(m / (B n_0)).
    Derived,
    /// The same gain for every layer (both layers of a residual block).
    Fixed(f64),
    /// Residual blocks only: (g_1, g_2) of the block's first and second layer.
    Pair(f64, f64),
}

string_enum! {
    /// How the directions v of a weight-normalized layer are drawn.
    pub enum Direction {
        Gaussian = "gaussian",
        Orthogonal = "orthogonal",
    }
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
            // The parser allows a pair only in residual blocks, whose gains come from
            // `Network::block_gains`; a plain layer reading it takes the first.
            WeightNormGain::Pair(g, _) => g,
        }
    }

    /// The factor the paper divides the v-gradient by: g for `derived`, 1 otherwise.
    pub fn gradient_normalizer(&self, fan_in: usize, fan_out: usize) -> f64 {
        match self.gain {
            WeightNormGain::Derived => self.gain(fan_in, fan_out),
            _ => 1.0,
        }
    }

    fn to_json(self, architecture: Architecture) -> Value {
        let gain = match (self.gain, architecture) {
            (WeightNormGain::Naive, _) => json!("naive"),
            (WeightNormGain::Derived, Architecture::Plain) => json!("derived"),
            (WeightNormGain::Derived, Architecture::Residual) => json!("proposed"),
            (WeightNormGain::Fixed(g), _) => json!(g),
            (WeightNormGain::Pair(g1, g2), _) => json!([g1, g2]),
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

string_enum! {
    /// The law of the inputs.
    pub enum InputDistribution {
        /// x ~ N(0, I).
        Gaussian = "gaussian",
        /// x uniform on the unit sphere.
        Sphere = "sphere",
    }
}

string_enum! {
    /// How a spec asks to be simulated (`sim::plan` resolves it to an engine).
    pub enum Method {
        /// Draw every weight matrix and push the batch through it.
        Dense = "dense",
        /// Sample from the exact law without weight matrices (Gaussian weights only).
        Exact = "exact",
        /// `exact` where the spec permits it and it is cheaper, `dense` otherwise.
        Auto = "auto",
    }
}

string_enum! {
    /// Floating-point precision of the matrices (the dense engine; the Gram sampler where `sim::plan::gram_precision` allows).
    pub enum Precision {
        F64 = "f64",
        F32 = "f32",
    }
}

impl Precision {
    pub fn bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
}

string_enum! {
    /// How the layers are wired.
    pub enum Architecture {
        /// Fully connected: h^l = ReLU(W^l h^(l-1)).
        Plain = "plain",
        /// Residual blocks on a stream of width n_0: h^b = h^(b-1) + W_2^b ReLU(W_1^b h^(b-1)),
        /// no ReLU after the sum (Arpit, Campos & Bengio 2019).
        Residual = "residual",
    }
}

/// A validated network: input dimension, hidden widths n_1..n_L, weights, softmax head.
///
/// A residual network has `widths.len()` = B blocks and `widths[b - 1]` = m_b, the hidden
/// width of block b (W_1^b is m_b x n_0, W_2^b is n_0 x m_b); its stream keeps width n_0, and
/// its "layers" in every report are the blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub input_dim: usize,
    /// Hidden widths n_1..n_L (at least one); residual: the blocks' hidden widths m_1..m_B.
    pub widths: Vec<usize>,
    pub architecture: Architecture,
    pub weights: Weights,
    /// Number of softmax classes C of the cross-entropy head.
    pub classes: usize,
    pub(crate) _valid: Valid,
}

impl Network {
    pub fn depth(&self) -> usize {
        self.widths.len()
    }

    /// n_{l-1} for layer l = 1..L (index l-1); for a residual block, n_0 (its stream).
    pub fn fan_in(&self, layer: usize) -> usize {
        if layer == 1 || self.is_residual() {
            self.input_dim
        } else {
            self.widths[layer - 2]
        }
    }

    /// Effective E[W_ij^2] of layer l (1-based); of a residual block's first layer W_1^b.
    pub fn weight_variance(&self, layer: usize) -> f64 {
        if self.is_residual() {
            return self.block_variances(layer).0;
        }
        let (i, o) = (self.fan_in(layer), self.widths[layer - 1]);
        match self.weights {
            Weights::Plain(init) => init.variance(i, o),
            Weights::Normalized(wn) => {
                let g = wn.gain(i, o);
                g * g / i as f64
            }
        }
    }

    /// Number of weights of the hidden layers, sum n_l n_{l-1} (residual: sum 2 n_0 m_b).
    pub fn weight_count(&self) -> u64 {
        let per_block = if self.is_residual() { 2 } else { 1 };
        (1..=self.depth())
            .map(|l| per_block * (self.fan_in(l) * self.widths[l - 1]) as u64)
            .sum()
    }

    pub fn is_residual(&self) -> bool {
        self.architecture == Architecture::Residual
    }

    /// Residual block b (1-based): the weight-norm gains (g_1, g_2) of W_1^b (m_b x n_0) and
    /// W_2^b (n_0 x m_b); None for plain inits.
    pub fn block_gains(&self, block: usize) -> Option<(f64, f64)> {
        let Weights::Normalized(wn) = self.weights else {
            return None;
        };
        let (n0, m, blocks) = (
            self.input_dim as f64,
            self.widths[block - 1] as f64,
            self.depth() as f64,
        );
        Some(match wn.gain {
            WeightNormGain::Naive => (1.0, 1.0),
            WeightNormGain::Derived => ((2.0 * n0 / m).sqrt(), (m / (blocks * n0)).sqrt()),
            WeightNormGain::Fixed(g) => (g, g),
            WeightNormGain::Pair(g1, g2) => (g1, g2),
        })
    }

    /// Residual block b: the two layers' weights, each a rule `sim::weights::draw_layer` draws
    /// (weight norm with the block's fixed gains, or the plain init with its own fans).
    pub fn block_weights(&self, block: usize) -> (Weights, Weights) {
        match (self.weights, self.block_gains(block)) {
            (Weights::Normalized(wn), Some((g1, g2))) => (
                Weights::Normalized(WeightNorm {
                    gain: WeightNormGain::Fixed(g1),
                    direction: wn.direction,
                }),
                Weights::Normalized(WeightNorm {
                    gain: WeightNormGain::Fixed(g2),
                    direction: wn.direction,
                }),
            ),
            (w, _) => (w, w),
        }
    }

    /// Residual block b: E[W_ij^2] of W_1^b and of W_2^b (weight norm: g_1^2 / n_0, g_2^2 / m_b).
    pub fn block_variances(&self, block: usize) -> (f64, f64) {
        let (n0, m) = (self.input_dim, self.widths[block - 1]);
        match (self.weights, self.block_gains(block)) {
            (_, Some((g1, g2))) => (g1 * g1 / n0 as f64, g2 * g2 / m as f64),
            (Weights::Plain(init), None) => (init.variance(n0, m), init.variance(m, n0)),
            (Weights::Normalized(_), None) => (f64::NAN, f64::NAN),
        }
    }

    /// Residual block b: E[||h^b||^2 | h^(b-1)] / ||h^(b-1)||^2 = 1 + m_b n_0 s_1 s_2 / 2, exact
    /// at any width for sign-symmetric rows (docs/theory.md section 7.4); the backward factor
    /// of ||dL/dh||^2 through the block is the same in mean field. Weight norm:
    /// 1 + g_1^2 g_2^2 / 2 (1 + 1/B for the proposed gains, 3/2 for naive).
    pub fn block_factor(&self, block: usize) -> f64 {
        let (s1, s2) = self.block_variances(block);
        1.0 + (self.widths[block - 1] * self.input_dim) as f64 * s1 * s2 / 2.0
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
        if self.is_residual() {
            let rule = match self.weights {
                Weights::Plain(init) => format!(
                    "{}, each layer with its own fans (W_1^b: n_0 -> m_b, W_2^b: m_b -> n_0)",
                    init.rule()
                ),
                Weights::Normalized(wn) => match wn.gain {
                    WeightNormGain::Derived => {
                        "w_i = g v_i / ||v_i|| with isotropic v; proposed gains g_1 = sqrt(2 n_0 / m_b), \
                                               g_2 = sqrt(m_b / (B n_0))"
                            .to_string()
                    }
                    WeightNormGain::Naive => {
                        "w_i = v_i / ||v_i|| with isotropic v (naive gains g_1 = g_2 = 1)".to_string()
                    }
                    WeightNormGain::Fixed(g) => format!("w_i = g v_i / ||v_i|| with isotropic v, g_1 = g_2 = {g}"),
                    WeightNormGain::Pair(g1, g2) => {
                        format!("w_i = g v_i / ||v_i|| with isotropic v, g_1 = {g1}, g_2 = {g2}")
                    }
                },
            };
            return format!(
                "residual: h^b = h^(b-1) + W_2^b ReLU(W_1^b h^(b-1)), B = {} blocks on a stream of width n_0 = {}; {rule}",
                self.depth(),
                self.input_dim
            );
        }
        match self.weights {
            Weights::Plain(init) => init.rule(),
            Weights::Normalized(_) => "w_i = g v_i / ||v_i|| with isotropic v; E W_ij^2 = g^2/n_{l-1}".to_string(),
        }
    }

    /// Normalized network JSON: parses back to the same network.
    pub fn to_json(&self) -> Value {
        let (init, weight_norm) = match self.weights {
            Weights::Plain(init) => (init.to_json(), Value::Null),
            Weights::Normalized(wn) => (Value::Null, wn.to_json(self.architecture)),
        };
        let mut out = json!({
            "input_dim": self.input_dim,
            "widths": self.widths,
            "init": init,
            "weight_norm": weight_norm,
            "head": {"classes": self.classes},
        });
        // Plain networks keep the JSON they always had; residual ones name their architecture.
        if let (Architecture::Residual, Some(obj)) = (self.architecture, out.as_object_mut()) {
            obj.insert("architecture".into(), json!(self.architecture));
        }
        out
    }
}

/// A validated job spec. Construct with [`parse_spec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The kind, with the fields only it has (the grid of a sweep).
    pub task: Task,
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
    /// As requested; `sim::plan` resolves it to the engine that runs.
    pub method: Method,
    /// `norms`: keep every per-sample ratio (forward and gradient, every layer) after the report
    /// is built, for `GET /v1/jobs/{id}/samples` and the histograms (bounded by
    /// [`Limits::max_kept_values`]).
    pub keep_samples: bool,
    /// The index of the first of `trials` networks: a job split into units simulates networks
    /// `first_trial..first_trial + trials` of the same streams (0 for a whole job; never in the
    /// spec's JSON).
    pub first_trial: usize,
    pub(crate) _valid: Valid,
}

impl Spec {
    pub fn kind(&self) -> Kind {
        self.task.kind()
    }

    /// The grid of a `width_sweep`.
    pub fn sweep(&self) -> Option<&Sweep> {
        match &self.task {
            Task::WidthSweep(sweep) => Some(sweep),
            _ => None,
        }
    }

    /// The pairs and angles of a `geometry` job.
    pub fn geometry(&self) -> Option<&Geometry> {
        match &self.task {
            Task::Geometry(g) => Some(g),
            _ => None,
        }
    }

    /// The grid and search of a `worst_case` job.
    pub fn worst_case(&self) -> Option<&WorstCase> {
        match &self.task {
            Task::WorstCase(w) => Some(w),
            _ => None,
        }
    }

    /// The network of one `worst_case` grid point: input dimension `input_dim`, every layer of
    /// width `width` (the depth and weights of the spec's network).
    pub fn network_at(&self, input_dim: usize, width: usize) -> Network {
        let mut network = self.network.clone();
        network.input_dim = input_dim;
        network.widths = vec![width; network.depth()];
        network
    }

    /// The search of a `min_width` job.
    pub fn min_width(&self) -> Option<&MinWidthSearch> {
        match &self.task {
            Task::MinWidth(search) => Some(search),
            _ => None,
        }
    }

    /// The `norms` spec of one cell's probe: `width` at every one of `depth` layers, tolerance
    /// `epsilon`, `trials` networks from `seed`.
    pub fn with_cell(&self, width: usize, depth: usize, epsilon: f64, trials: usize, seed: u64) -> Spec {
        Spec {
            epsilon,
            trials,
            ..self.with_point(width, depth, seed)
        }
    }

    /// Normalized spec JSON with every default filled in; [`parse_spec`] of it gives `self` back.
    pub fn to_json(&self) -> Value {
        let mut network = self.network.to_json();
        if let (Task::WidthSweep(sweep), Some(obj)) = (&self.task, network.as_object_mut()) {
            obj.remove("widths");
            obj.insert("widths_to_sweep".into(), json!(sweep.widths));
            let depths = if self.network.is_residual() {
                "blocks_to_sweep"
            } else {
                "depths_to_sweep"
            };
            obj.insert(depths.into(), json!(sweep.depths));
        }
        if let Task::MinWidth(search) = &self.task {
            if let Some(obj) = network.as_object_mut() {
                obj.remove("widths");
                obj.insert("depth".into(), one_or_many_usize(&search.depths));
            }
            let epsilon = match search.epsilons.as_slice() {
                [one] => json!(one),
                many => json!(many),
            };
            return json!({
                "kind": self.kind(),
                "network": network,
                "samples": self.samples,
                "input": {"distribution": self.input},
                "epsilon": epsilon,
                "delta": self.delta,
                "claim": search.claim,
                "confidence": search.confidence,
                "width_range": search.width_range.map(|(lo, hi)| json!([lo, hi])),
                "max_networks_per_width": search.max_networks_per_width,
                "max_work": search.max_work,
                "seed": self.seed,
                "precision": self.precision,
                "method": self.method,
            });
        }
        if let Task::Geometry(g) = &self.task {
            return json!({
                "kind": self.kind(),
                "network": network,
                "pairs": g.pairs,
                "angles": g.angles_deg,
                "trials": self.trials,
                "seed": self.seed,
                "precision": self.precision,
            });
        }
        if let Task::WorstCase(w) = &self.task {
            if let Some(obj) = network.as_object_mut() {
                obj.remove("widths");
                obj.remove("input_dim");
                obj.insert("input_dims_to_sweep".into(), json!(w.input_dims));
                obj.insert("widths_to_sweep".into(), json!(w.widths));
                obj.insert("depth".into(), json!(self.network.depth()));
            }
            return json!({
                "kind": self.kind(),
                "network": network,
                "samples": self.samples,
                "trials": self.trials,
                "restarts": w.restarts,
                "steps": w.steps,
                "seed": self.seed,
            });
        }
        let mut spec = json!({
            "kind": self.kind(),
            "network": network,
            "samples": self.samples,
            "trials": self.trials,
            "input": {"distribution": self.input},
            "epsilon": self.epsilon,
            "delta": self.delta,
            "seed": self.seed,
            "precision": self.precision,
            "method": self.method,
        });
        if let (Task::Norms, Some(obj)) = (&self.task, spec.as_object_mut()) {
            obj.insert("keep_samples".into(), json!(self.keep_samples));
        }
        spec
    }

    /// How many ratios a `keep_samples` job keeps: trials x samples x depth x 2.
    pub fn kept_values(&self) -> u64 {
        (self.trials as u64)
            .saturating_mul(self.samples as u64)
            .saturating_mul(self.network.depth() as u64)
            .saturating_mul(2)
    }

    /// Networks `first..first + count` of this spec (a unit of a job split over workers): the
    /// same streams, so the units' networks are the whole job's.
    pub fn with_trials(&self, first: usize, count: usize) -> Spec {
        Spec {
            first_trial: self.first_trial + first,
            trials: count,
            ..self.clone()
        }
    }

    /// The `norms` spec of one grid point: `width` at every one of `depth` layers, with `seed`.
    /// (The seed rule of sweeps is `analysis::sweep::point_seed`.)
    pub fn with_point(&self, width: usize, depth: usize, seed: u64) -> Spec {
        let mut network = self.network.clone();
        network.widths = vec![width; depth];
        Spec {
            task: Task::Norms,
            network,
            seed,
            keep_samples: false,
            ..self.clone()
        }
    }
}
