//! Predictions printed beside every measured layer (theory.md sections 5 and 7).
//!
//! Per layer k with effective weight variance sigma_k^2, the forward squared-norm factor is
//! `c_k = sigma_k^2 n_k / 2` and the backward factor `b_k = sigma_k^2 n_{k-1} / 2`. These are
//! exact in expectation for Gaussian, orthogonal and weight-normalized layers. For Gaussian
//! weights the whole law of the forward ratio is known, so its mean and spread are exact.

use serde::{Deserialize, Serialize};

use super::exact::mean_layer_norm_ratio;
use crate::spec::{Network, Weights};

/// A prediction for one ratio at one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RatioPrediction {
    /// Predicted mean of the ratio.
    pub mean: f64,
    /// Predicted standard deviation across samples and networks, where the law is known.
    pub std: Option<f64>,
    /// Predicted E[ratio^2].
    pub mean_square: f64,
    /// Whether `mean` and `std` are exact (true) or the square root of the second moment.
    pub exact: bool,
    /// The law or approximation used, in words.
    pub law: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LayerPrediction {
    pub forward: RatioPrediction,
    pub gradient: RatioPrediction,
}

/// Per-layer predictions for layers 1..L.
pub fn predict(net: &Network) -> Vec<LayerPrediction> {
    let depth = net.depth();
    let var: Vec<f64> = (1..=depth).map(|l| net.weight_variance(l)).collect();
    let c: Vec<f64> = (1..=depth)
        .map(|l| var[l - 1] * net.widths[l - 1] as f64 / 2.0)
        .collect();
    let b: Vec<f64> = (1..=depth).map(|l| var[l - 1] * net.fan_in(l) as f64 / 2.0).collect();
    let gaussian = matches!(net.weights, Weights::Plain(init) if init.is_gaussian());
    let mut out = Vec::with_capacity(depth);
    let mut fwd_ms = 1.0;
    let mut fwd_mean = 1.0;
    for l in 1..=depth {
        fwd_ms *= c[l - 1];
        let forward = if gaussian {
            fwd_mean *= mean_layer_norm_ratio(net.widths[l - 1] as u64, var[l - 1]);
            RatioPrediction {
                mean: fwd_mean,
                std: Some((fwd_ms - fwd_mean * fwd_mean).max(0.0).sqrt()),
                mean_square: fwd_ms,
                exact: true,
                law: "exact: product over layers of sigma_k chi_{K_k}, K_k ~ Binomial(n_k, 1/2)".into(),
            }
        } else {
            RatioPrediction {
                mean: fwd_ms.sqrt(),
                std: None,
                mean_square: fwd_ms,
                exact: false,
                law: "sqrt of the exact second moment prod_k sigma_k^2 n_k / 2".into(),
            }
        };
        // r_g(l)^2 ~ (g_l / norm_l)^2 prod_{k<l} c_k prod_{k>l} b_k (mean-field, independent factors).
        let below: f64 = c[..l - 1].iter().product();
        let above: f64 = b[l..].iter().product();
        let gain = match net.weights {
            Weights::Normalized(wn) => {
                let (i, o) = (net.fan_in(l), net.widths[l - 1]);
                wn.gain(i, o) / wn.gradient_normalizer(i, o)
            }
            Weights::Plain(_) => 1.0,
        };
        let grad_ms = gain * gain * below * above;
        out.push(LayerPrediction {
            forward,
            gradient: RatioPrediction {
                mean: grad_ms.sqrt(),
                std: None,
                mean_square: grad_ms,
                exact: false,
                law: "mean-field: (g_l/norm_l)^2 prod_{k<l} sigma_k^2 n_k/2 prod_{k>l} sigma_k^2 n_{k-1}/2; \
                      it drops the s^2/||h^{l-1}||^2 term of the exact law (s = z.(p - t), see sim::exact), \
                      so the measured gradient ratio sits above it by O(L C / m) with C classes"
                    .into(),
            },
        });
    }
    out
}
