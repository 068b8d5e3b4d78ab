//! Predictions printed beside every measured layer, each saying what it is (docs/theory.md,
//! "Predictions").
//!
//! For Gaussian weights the joint law of one input's forward and gradient ratios is known
//! exactly (`sim::exact`, derived there):
//! * the forward ratio's mean and spread over networks and inputs are closed-form
//!   (`prod_k sigma_k chi_{K_k}`, `K_k ~ Binomial(n_k, 1/2)`);
//! * its quantiles, and the gradient ratio's mean, spread and quantiles, are computed by a fixed-
//!   seed Monte Carlo of that exact law (deterministic; its standard error is reported);
//! * at layer L the gradient ratio is `||h^(L-1)|| / ||x||`, the forward ratio one layer down,
//!   so its mean and spread there are closed-form too;
//! * the spread over the inputs of *one* network is smaller than over networks and inputs: to
//!   first order in 1/n, a fraction `sum_l c(rho_(l-1))/n_l / sum_l 5/n_l` of the squared-norm
//!   variance is shared by all inputs of a network (c = `theory::kernels::factor_covariance`,
//!   rho the cosine of two independent inputs after l - 1 layers, by the arc-cosine map).
//!
//! The mean-field value of the gradient ratio (independent factors, the `s^2` term of the exact
//! law dropped) is kept as its own field. Orthogonal and weight-normalized layers get the
//! square root of the exact second moment for the forward ratio and mean-field for the gradient.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::stats::{mean_std, quantile};
use crate::sim::exact::run_trial_single;
use crate::sim::rng::trial_rng;
use crate::spec::{InputDistribution, Network, Weights};
use crate::theory::exact::mean_layer_norm_ratio;
use crate::theory::kernels::{factor_covariance, relu_cosine};

/// Seed of the prediction Monte Carlo (fixed: a prediction is a number, not a draw).
pub const PREDICTION_SEED: u64 = 0x5EED_F00D;
/// Networks drawn per chunk of the Monte Carlo (one random stream per chunk).
const CHUNK: usize = 1000;
/// Layer draws the Monte Carlo may spend (networks x depth), and its bounds on networks.
const MC_LAYER_DRAWS: usize = 2_000_000;
const MC_MIN_NETWORKS: usize = 2_000;
const MC_MAX_NETWORKS: usize = 20_000;

/// The mean-field value of a ratio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MeanField {
    /// Square root of `mean_square` (null where it overflows).
    #[serde(deserialize_with = "super::stats::nan_if_null")]
    #[schema(nullable)]
    pub mean: f64,
    /// `(g_l/norm_l)^2 prod_{k<l} sigma_k^2 n_k/2 prod_{k>l} sigma_k^2 n_{k-1}/2` (null where it overflows).
    #[serde(deserialize_with = "super::stats::nan_if_null")]
    #[schema(nullable)]
    pub mean_square: f64,
}

/// A prediction for one ratio at one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RatioPrediction {
    /// Mean over networks and inputs (null where not a finite number, e.g. overflowing).
    #[serde(deserialize_with = "super::stats::nan_if_null")]
    #[schema(nullable)]
    pub mean: f64,
    /// Standard deviation over networks and inputs, where the law is known.
    pub std: Option<f64>,
    /// E[ratio^2] (exact for the forward ratio; the Monte Carlo value for the gradient ratio;
    /// null where not a finite number).
    #[serde(deserialize_with = "super::stats::nan_if_null")]
    #[schema(nullable)]
    pub mean_square: f64,
    /// Whether `mean` comes from the exact law (closed form or its Monte Carlo).
    pub exact: bool,
    /// The law or approximation used, in words.
    pub law: String,
    /// 5% and 95% quantiles over networks and inputs (Monte Carlo of the exact law).
    #[serde(default)]
    pub p05: Option<f64>,
    #[serde(default)]
    pub p95: Option<f64>,
    /// Expected standard deviation over the inputs of one network (first order in 1/n).
    #[serde(default)]
    pub std_within_network: Option<f64>,
    /// Standard deviation across networks of a network's mean ratio over many inputs (first
    /// order in 1/n): what `across_trials` measures when there are several networks.
    #[serde(default)]
    pub std_between_networks: Option<f64>,
    /// Standard error of `mean` when it comes from the Monte Carlo (null when closed-form).
    #[serde(default)]
    pub standard_error: Option<f64>,
    /// Networks drawn by the Monte Carlo (null when none was run).
    #[serde(default)]
    pub monte_carlo_networks: Option<u64>,
    /// The mean-field value (gradient ratio).
    #[serde(default)]
    pub mean_field: Option<MeanField>,
}

impl RatioPrediction {
    /// A prediction no Monte Carlo stands behind (not from the exact law): no quantiles, spreads
    /// within or between networks, or standard error.
    fn without_sampling(
        mean: f64,
        std: Option<f64>,
        mean_square: f64,
        law: String,
        mean_field: Option<MeanField>,
    ) -> Self {
        RatioPrediction {
            mean,
            std,
            mean_square,
            exact: false,
            law,
            p05: None,
            p95: None,
            std_within_network: None,
            std_between_networks: None,
            standard_error: None,
            monte_carlo_networks: None,
            mean_field,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LayerPrediction {
    pub forward: RatioPrediction,
    pub gradient: RatioPrediction,
}

/// Mean, spread and quantiles of one ratio at one layer, from the Monte Carlo.
struct Sampled {
    mean: f64,
    std: f64,
    mean_square: f64,
    p05: f64,
    p95: f64,
    standard_error: f64,
    networks: u64,
}

fn summarize(mut values: Vec<f64>) -> Option<Sampled> {
    values.retain(|v| v.is_finite());
    if values.len() < 2 {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp); // the same order: equal values are the same bits
    let (mean, std) = mean_std(&values);
    let n = values.len() as f64;
    Some(Sampled {
        mean,
        std,
        mean_square: values.iter().map(|v| v * v).sum::<f64>() / n,
        p05: quantile(&values, 0.05),
        p95: quantile(&values, 0.95),
        standard_error: std / n.sqrt(),
        networks: values.len() as u64,
    })
}

/// Networks the Monte Carlo draws for a network of this depth.
pub fn monte_carlo_networks(depth: usize) -> usize {
    (MC_LAYER_DRAWS / depth.max(1)).clamp(MC_MIN_NETWORKS, MC_MAX_NETWORKS)
}

/// Per layer, the forward and gradient ratios of one input through `networks` networks drawn
/// from the exact law (layer-major: `[l][network]`). Deterministic: fixed seed, one stream per
/// chunk of networks, chunks in order.
fn sample_exact_law(net: &Network, input: InputDistribution, networks: usize) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let depth = net.depth();
    let chunks: Vec<(Vec<f64>, Vec<f64>)> = (0..networks.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut rng = trial_rng(PREDICTION_SEED, c as u64);
            let count = CHUNK.min(networks - c * CHUNK);
            let mut forward = Vec::with_capacity(count * depth);
            let mut gradient = Vec::with_capacity(count * depth);
            for _ in 0..count {
                let r = run_trial_single(net, input, &mut rng);
                forward.extend_from_slice(&r.forward);
                gradient.extend_from_slice(&r.gradient);
            }
            (forward, gradient)
        })
        .collect();
    let mut fwd = vec![Vec::with_capacity(networks); depth];
    let mut grad = vec![Vec::with_capacity(networks); depth];
    for (f, g) in chunks {
        for (i, (fv, gv)) in f.iter().zip(&g).enumerate() {
            fwd[i % depth].push(*fv);
            grad[i % depth].push(*gv);
        }
    }
    (fwd, grad)
}

/// The fraction of the forward ratio's variance at each layer that is shared by all inputs of
/// one network (to first order in 1/n): `sum_{k<=l} c(rho_(k-1))/n_k / sum_{k<=l} 5/n_k`, with
/// rho_0 = 0 (independent inputs in high dimension) and rho_k = relu_cosine(rho_(k-1)).
pub fn between_network_share(widths: &[usize]) -> Vec<f64> {
    let mut rho = 0.0;
    let (mut shared, mut total) = (0.0, 0.0);
    widths
        .iter()
        .map(|&n| {
            shared += factor_covariance(rho) / n as f64;
            total += 5.0 / n as f64;
            rho = relu_cosine(rho);
            (shared / total).clamp(0.0, 1.0)
        })
        .collect()
}

/// Predictions remembered per process: they are a pure function of the network and the input
/// law (fixed Monte Carlo seed), and the Monte Carlo costs 0.1-0.2 s (2 million layer draws),
/// more than the simulation of a job on the exact samplers; a job run again with other seeds
/// or more networks, and any later job of the same shape, gets them at once.
#[derive(Default)]
struct Known {
    entries: std::collections::HashMap<String, Vec<LayerPrediction>>,
    layers: usize,
}
static KNOWN: std::sync::LazyLock<std::sync::Mutex<Known>> = std::sync::LazyLock::new(Default::default);
/// Entries kept; the map is emptied when full (each entry is one Monte Carlo to redo).
const KNOWN_CAPACITY: usize = 256;
/// Layers kept over all entries. A layer's two predictions take 368 B plus 340-420 B of text
/// (measured), so the map holds at most about 26 MB however deep the networks users send
/// (without this bound, 256 entries of depth 1000 held about 200 MB).
const KNOWN_LAYERS: usize = 1 << 15;

/// Per-layer predictions for layers 1..L of `net` with inputs drawn from `input`.
pub fn predict(net: &Network, input: InputDistribution) -> Vec<LayerPrediction> {
    let key = format!("{net:?} {input:?}");
    if let Some(known) = KNOWN.lock().unwrap_or_else(|p| p.into_inner()).entries.get(&key) {
        return known.clone();
    }
    let predictions = compute(net, input);
    let mut known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    if known.entries.len() >= KNOWN_CAPACITY || known.layers + predictions.len() > KNOWN_LAYERS {
        *known = Known::default();
    }
    known.layers += predictions.len();
    if let Some(old) = known.entries.insert(key, predictions.clone()) {
        known.layers -= old.len(); // computed twice at once: the same values
    }
    predictions
}

fn compute(net: &Network, input: InputDistribution) -> Vec<LayerPrediction> {
    if net.is_residual() {
        return predict_residual(net);
    }
    let depth = net.depth();
    let var: Vec<f64> = (1..=depth).map(|l| net.weight_variance(l)).collect();
    let c: Vec<f64> = (1..=depth)
        .map(|l| var[l - 1] * net.widths[l - 1] as f64 / 2.0)
        .collect();
    let b: Vec<f64> = (1..=depth).map(|l| var[l - 1] * net.fan_in(l) as f64 / 2.0).collect();
    let gaussian = matches!(net.weights, Weights::Plain(init) if init.is_gaussian());
    // Exact forward mean, second moment and spread per layer (Gaussian weights).
    let mut fwd_ms = Vec::with_capacity(depth);
    let mut fwd_mean = Vec::with_capacity(depth);
    let (mut ms, mut mean) = (1.0, 1.0);
    for l in 1..=depth {
        ms *= c[l - 1];
        mean *= mean_layer_norm_ratio(net.widths[l - 1] as u64, var[l - 1]);
        fwd_ms.push(ms);
        fwd_mean.push(mean);
    }
    let sampled = gaussian.then(|| {
        let (f, g) = sample_exact_law(net, input, monte_carlo_networks(depth));
        (
            f.into_iter().map(summarize).collect::<Vec<_>>(),
            g.into_iter().map(summarize).collect::<Vec<_>>(),
        )
    });
    let share = between_network_share(&net.widths);
    let mut out = Vec::with_capacity(depth);
    for l in 1..=depth {
        let forward = if gaussian {
            let std = (fwd_ms[l - 1] - fwd_mean[l - 1] * fwd_mean[l - 1]).max(0.0).sqrt();
            let mc = sampled.as_ref().and_then(|(f, _)| f[l - 1].as_ref());
            RatioPrediction {
                mean: fwd_mean[l - 1],
                std: Some(std),
                mean_square: fwd_ms[l - 1],
                exact: true,
                law: "exact: product over layers of sigma_k chi_{K_k}, K_k ~ Binomial(n_k, 1/2); mean and std over \
                      networks and inputs in closed form, quantiles by Monte Carlo of the same law; the spreads \
                      within and between networks to first order in 1/n"
                    .into(),
                p05: mc.map(|m| m.p05),
                p95: mc.map(|m| m.p95),
                std_within_network: Some(std * (1.0 - share[l - 1]).sqrt()),
                std_between_networks: Some(std * share[l - 1].sqrt()),
                standard_error: None,
                monte_carlo_networks: mc.map(|m| m.networks),
                mean_field: None,
            }
        } else {
            RatioPrediction::without_sampling(
                fwd_ms[l - 1].sqrt(),
                None,
                fwd_ms[l - 1],
                "sqrt of the exact second moment prod_k sigma_k^2 n_k / 2 (no exact law for this init)".into(),
                None,
            )
        };
        // Mean field: r_g(l)^2 ~ (g_l / norm_l)^2 prod_{k<l} c_k prod_{k>l} b_k (independent factors).
        let below: f64 = c[..l - 1].iter().product();
        let above: f64 = b[l..].iter().product();
        let gain = match net.weights {
            Weights::Normalized(wn) => {
                let (i, o) = (net.fan_in(l), net.widths[l - 1]);
                wn.gain(i, o) / wn.gradient_normalizer(i, o)
            }
            Weights::Plain(_) => 1.0,
        };
        let mean_field = MeanField {
            mean: (gain * gain * below * above).sqrt(),
            mean_square: gain * gain * below * above,
        };
        let gradient = match sampled.as_ref().and_then(|(_, g)| g[l - 1].as_ref()) {
            Some(mc) if l == depth => {
                // r_g(L) = ||h^(L-1)|| / ||x||: the forward law one layer down (1 at L = 1).
                let (m, s2) = if l == 1 {
                    (1.0, 1.0)
                } else {
                    (fwd_mean[l - 2], fwd_ms[l - 2])
                };
                RatioPrediction {
                    mean: m,
                    std: Some((s2 - m * m).max(0.0).sqrt()),
                    mean_square: s2,
                    exact: true,
                    law: "exact: at layer L the gradient ratio is ||h^(L-1)|| / ||x||, the forward law one layer \
                          down (closed form; quantiles by Monte Carlo)"
                        .into(),
                    p05: Some(mc.p05),
                    p95: Some(mc.p95),
                    std_within_network: None,
                    std_between_networks: None,
                    standard_error: None,
                    monte_carlo_networks: Some(mc.networks),
                    mean_field: Some(mean_field),
                }
            }
            Some(mc) => RatioPrediction {
                mean: mc.mean,
                std: Some(mc.std),
                mean_square: mc.mean_square,
                exact: true,
                law: "exact law of one input (sim::exact: ||delta^(l-1)||^2 = s^2/||h^(l-1)||^2 + sigma_l^2 \
                      ||delta^l||^2 chi^2_(K_(l-1) - 1), s = z.(p - t)), by a fixed-seed Monte Carlo; see \
                      standard_error"
                    .into(),
                p05: Some(mc.p05),
                p95: Some(mc.p95),
                std_within_network: None,
                std_between_networks: None,
                standard_error: Some(mc.standard_error),
                monte_carlo_networks: Some(mc.networks),
                mean_field: Some(mean_field),
            },
            None => RatioPrediction::without_sampling(
                mean_field.mean,
                None,
                mean_field.mean_square,
                "mean-field: (g_l/norm_l)^2 prod_{k<l} sigma_k^2 n_k/2 prod_{k>l} sigma_k^2 n_{k-1}/2 (no exact \
                      law for this init); it drops the s^2/||h^(l-1)||^2 term of the Gaussian law, so a \
                      measured gradient ratio can sit above it, by up to O(L C / m) with C classes"
                    .into(),
                Some(mean_field),
            ),
        };
        out.push(LayerPrediction { forward, gradient });
    }
    out
}

/// Predictions of a residual network, per block b (docs/theory.md section 7.4):
/// * forward: E[r_b^2] = prod_{k<=b} c_k exactly, c_k = 1 + m_k n_0 s_1 s_2 / 2 (the block's
///   factor); E[r_b^4] = prod_{k<=b} E[X_k^2] (exact for Gaussian entries and weight norm with
///   Gaussian directions); the mean from the two by the log-normal approximation;
/// * backward: mean field, E[(||dL/dh^(b-1)|| / ||dL/dh^B||)^2] = prod_{k=b..B} c_k.
fn predict_residual(net: &Network) -> Vec<LayerPrediction> {
    use crate::spec::{Direction, WeightNorm};
    use crate::theory::residual::{factor_second_moment, lognormal_mean, Rows};
    let blocks = net.depth();
    let rows = match net.weights {
        Weights::Plain(init) if init.is_gaussian() => Rows::Gaussian,
        _ => Rows::Sphere,
    };
    let exact_fourth = matches!(
        net.weights,
        Weights::Plain(init) if init.is_gaussian()
    ) || matches!(
        net.weights,
        Weights::Normalized(WeightNorm {
            direction: Direction::Gaussian,
            ..
        })
    );
    let c: Vec<f64> = (1..=blocks).map(|b| net.block_factor(b)).collect();
    let (mut ms, mut m4) = (1.0, 1.0);
    let mut out = Vec::with_capacity(blocks);
    for b in 1..=blocks {
        let (s1, s2) = net.block_variances(b);
        ms *= c[b - 1];
        m4 *= factor_second_moment(net.input_dim, net.widths[b - 1], s1, s2, rows);
        let mean = lognormal_mean(ms, m4);
        let law = format!(
            "residual: E[r_b^2] = prod_(k<=b) c_k, c_k = 1 + m_k n_0 s_1 s_2 / 2, exact; mean and std from it and \
             E[r_b^4] = prod_(k<=b) E[X_k^2] ({}) by a log-normal approximation (the mean sits below the root \
             mean square by the Jensen gap)",
            if exact_fourth {
                "exact"
            } else {
                "approximate: orthogonal rows are not independent"
            }
        );
        let std = Some((ms - mean * mean).max(0.0).sqrt());
        let sqrt_ms = MeanField {
            mean: ms.sqrt(),
            mean_square: ms,
        };
        let forward = RatioPrediction::without_sampling(mean, std, ms, law, Some(sqrt_ms));
        let back: f64 = c[b - 1..].iter().product();
        let mean_field = MeanField {
            mean: back.sqrt(),
            mean_square: back,
        };
        let gradient = RatioPrediction::without_sampling(
            mean_field.mean,
            None,
            back,
            "residual, mean field: E[(||dL/dh^(b-1)|| / ||dL/dh^B||)^2] = prod_(k=b..B) c_k (each block's \
                  backward factor equals its forward factor; the dependence of the output error on the \
                  weights is dropped); the mean is its square root"
                .into(),
            Some(mean_field),
        );
        out.push(LayerPrediction { forward, gradient });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A remembered prediction is the computed one, and networks that differ only in a gain or
    /// the input law are told apart.
    #[test]
    fn remembered_predictions_are_the_computed_ones() {
        let spec = |gain: f64| {
            let v = serde_json::json!({"network": {"input_dim": 40, "widths": [30, 20], "init": {"scheme": "gaussian", "variance": gain}},
                                       "samples": 2});
            crate::spec::parse_spec(&v, &crate::spec::Limits::default())
                .expect("valid")
                .network
        };
        let (a, b) = (spec(0.05), spec(0.06));
        let first = predict(&a, InputDistribution::Gaussian);
        assert_eq!(first, compute(&a, InputDistribution::Gaussian));
        assert_eq!(predict(&a, InputDistribution::Gaussian), first);
        assert_ne!(predict(&b, InputDistribution::Gaussian), first);
        assert_eq!(
            predict(&a, InputDistribution::Sphere),
            compute(&a, InputDistribution::Sphere)
        );
    }

    /// However deep the networks, the remembered predictions hold at most `KNOWN_LAYERS` layers
    /// (orthogonal layers: no Monte Carlo, so forty networks of depth 1000 are quick).
    #[test]
    fn remembered_predictions_are_bounded_in_layers() {
        for width in 0..40 {
            let v = serde_json::json!({"network": {"input_dim": 8, "depth": 1000, "width": 8 + width,
                                       "init": {"scheme": "orthogonal"}}, "samples": 2});
            let net = crate::spec::parse_spec(&v, &crate::spec::Limits::default())
                .expect("valid")
                .network;
            assert_eq!(predict(&net, InputDistribution::Gaussian).len(), 1000);
            let known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
            assert!(known.layers <= KNOWN_LAYERS, "{} layers kept", known.layers);
            assert_eq!(known.layers, known.entries.values().map(Vec::len).sum::<usize>());
        }
    }

    /// An overflowing prediction (Gaussian variance 1e6 over 1000 layers of width 1000) is
    /// stored as null; it must read back (as NaN), or every typed read of the layers fails.
    #[test]
    fn a_prediction_stored_as_null_reads_back() {
        let stored = serde_json::json!({
            "mean": null, "std": 0.0, "mean_square": null, "exact": true, "law": "exact",
            "mean_field": {"mean": null, "mean_square": null},
        });
        let p: RatioPrediction = serde_json::from_value(stored).unwrap();
        assert!(p.mean.is_nan() && p.mean_square.is_nan());
        assert!(p.mean_field.is_some_and(|m| m.mean.is_nan()));
    }

    #[test]
    fn the_shared_share_grows_with_depth() {
        let share = between_network_share(&[100; 10]);
        // Layer 1: independent inputs share nothing (c(0) = 0).
        assert!(share[0].abs() < 1e-15);
        // Layer 2: c(1/pi) / (2 * 5).
        let c2 = factor_covariance(1.0 / std::f64::consts::PI);
        assert!((share[1] - c2 / 10.0).abs() < 1e-12);
        assert!(share.windows(2).all(|w| w[1] > w[0]));
        assert!(share[9] < 1.0);
    }
}
