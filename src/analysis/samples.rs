//! Kept per-sample ratios (`keep_samples`): which ratio of which layer, their histogram, and the
//! exact law they are held against where one exists.

use crate::sim::Simulation;
use crate::spec::names::string_enum;
use crate::spec::{Spec, Weights};
use crate::theory::density::LayerLaw;

string_enum! {
    /// Which per-sample ratio.
    pub enum SampleRatio {
        /// ||h^l|| / ||x||.
        Forward = "forward",
        /// ||delta^l|| ||h^{l-1}|| / (||x|| ||delta^L||).
        Gradient = "gradient",
    }
}

/// The ratios of `layer` (1-based), network by network, each network's inputs in order.
pub fn layer_values(sim: &Simulation, layer: usize, ratio: SampleRatio) -> impl Iterator<Item = f64> + '_ {
    (0..sim.trials.len()).flat_map(move |t| {
        match ratio {
            SampleRatio::Forward => sim.forward(t, layer),
            SampleRatio::Gradient => sim.gradient(t, layer),
        }
        .iter()
        .copied()
    })
}

/// Most and fewest bins a histogram may ask for.
pub const MAX_BINS: usize = 400;
pub const MIN_BINS: usize = 5;

/// Counts of the finite values over equal bins spanning [min, max] of those values.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Left edge of the first bin.
    pub lo: f64,
    pub bin_width: f64,
    pub counts: Vec<u64>,
    /// Finite values counted.
    pub values: u64,
    /// Values that are exactly 0 (a layer with no active unit), counted in the first bin too.
    pub zeros: u64,
    /// Values that are not finite (an undefined gradient ratio), not counted.
    pub undefined: u64,
    pub mean: f64,
    pub std: f64,
}

impl Histogram {
    /// `bins` equal bins over the finite values' range (one bin of width 1 around a single
    /// repeated value; no bins without a finite value).
    pub fn of(values: impl Iterator<Item = f64>, bins: usize) -> Histogram {
        let mut finite = Vec::new();
        let mut undefined = 0;
        for v in values {
            if v.is_finite() {
                finite.push(v);
            } else {
                undefined += 1;
            }
        }
        let n = finite.len();
        let (lo, hi) = finite
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let mean = finite.iter().sum::<f64>() / n.max(1) as f64;
        let var = finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n.saturating_sub(1)).max(1) as f64;
        let zeros = finite.iter().filter(|&&v| v == 0.0).count() as u64;
        if n == 0 {
            return Histogram {
                lo: 0.0,
                bin_width: 1.0,
                counts: Vec::new(),
                values: 0,
                zeros,
                undefined,
                mean: f64::NAN,
                std: f64::NAN,
            };
        }
        let bins = bins.clamp(1, MAX_BINS);
        let (lo, width) = if hi > lo {
            (lo, (hi - lo) / bins as f64)
        } else {
            (lo - 0.5, 1.0 / bins as f64)
        };
        let mut counts = vec![0u64; bins];
        for v in &finite {
            let i = (((v - lo) / width) as usize).min(bins - 1);
            counts[i] += 1;
        }
        Histogram {
            lo,
            bin_width: width,
            counts,
            values: n as u64,
            zeros,
            undefined,
            mean,
            std: var.sqrt(),
        }
    }

    /// Bins by the square-root rule, within [MIN_BINS, 100].
    pub fn default_bins(values: usize) -> usize {
        ((values as f64).sqrt().ceil() as usize).clamp(MIN_BINS, 100)
    }
}

/// The exact law of the forward ratio at `layer` for this spec's networks: each layer's width
/// and weight variance. `Err` says why there is none (not Gaussian weights, or the gradient
/// ratio).
pub fn exact_law(spec: &Spec, layer: usize, ratio: SampleRatio) -> Result<Vec<LayerLaw>, &'static str> {
    if ratio == SampleRatio::Gradient {
        return Err("no closed-form law is known for the gradient ratio");
    }
    if spec.network.is_residual() {
        return Err("a residual block adds its input back: the per-layer chi-square law does not apply");
    }
    match spec.network.weights {
        Weights::Normalized(_) => {
            return Err("weight-normalized rows are not Gaussian: the binomial chi-square law does not apply")
        }
        Weights::Plain(init) if !init.is_gaussian() => {
            return Err("orthogonal weights are not independent Gaussians: the binomial chi-square law does not apply")
        }
        Weights::Plain(_) => {}
    }
    Ok((1..=layer.min(spec.network.depth()))
        .map(|l| LayerLaw {
            width: spec.network.widths[l - 1] as u64,
            variance: spec.network.weight_variance(l),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{parse_spec, Limits};
    use serde_json::json;

    fn spec(network: serde_json::Value) -> Spec {
        parse_spec(&json!({"network": network, "seed": 1}), &Limits::default()).unwrap()
    }

    #[test]
    fn the_exact_law_is_that_of_plain_gaussian_layers_only() {
        let he = spec(json!({"input_dim": 5, "widths": [10, 20], "init": {"scheme": "he", "fan": "out"}}));
        assert_eq!(
            exact_law(&he, 2, SampleRatio::Forward),
            Ok(vec![
                LayerLaw {
                    width: 10,
                    variance: 0.2
                },
                LayerLaw {
                    width: 20,
                    variance: 0.1
                }
            ])
        );
        assert!(exact_law(&he, 2, SampleRatio::Gradient).is_err());
        let orthogonal = spec(json!({"input_dim": 5, "depth": 2, "width": 10, "init": {"scheme": "orthogonal"}}));
        assert!(exact_law(&orthogonal, 1, SampleRatio::Forward).is_err());
        let residual = spec(
            json!({"input_dim": 5, "architecture": "residual", "blocks": 3, "width": 10,
            "weight_norm": {"gain": "proposed", "direction": "gaussian"}}),
        );
        assert!(exact_law(&residual, 1, SampleRatio::Forward).is_err());
    }

    #[test]
    fn histogram_counts_every_finite_value_once_and_sets_aside_the_rest() {
        let values = [0.0, 0.5, 1.0, 1.0, 2.0, f64::NAN, f64::INFINITY];
        let h = Histogram::of(values.into_iter(), 4);
        assert_eq!(h.counts, vec![1, 1, 2, 1]);
        assert_eq!((h.values, h.zeros, h.undefined), (5, 1, 2));
        assert_eq!((h.lo, h.bin_width), (0.0, 0.5));
        assert!((h.mean - 0.9).abs() < 1e-15);
    }
}
