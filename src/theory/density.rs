//! The exact law of the forward ratio `R_l = ||h^l|| / ||x||` of a plain network with Gaussian
//! weights, as a density (docs/theory.md, "Exact laws"; the histograms of kept samples).
//!
//! Per layer `X_k = ||h^k||^2 / ||h^{k-1}||^2 = sigma_k^2 chi^2_K`, `K ~ Binomial(n_k, 1/2)`,
//! independent across layers, so `R_l^2 = prod_{k <= l} X_k`: an atom at 0 (some layer with no
//! active unit) and a density elsewhere. One layer's density is a closed-form binomial mixture
//! of scaled chi densities. For several layers the density of `Z = ln R^2 = sum_k ln X_k` is the
//! convolution of the layers' log-laws, evaluated on a grid fine enough to resolve the narrowest
//! layer (32 points per standard deviation, 256 per standard deviation of the sum). The grid's
//! own spread (Sheppard's h^2 / 12 per layer) is the main error: measured against an independent
//! two-layer quadrature and against the closed-form moments E R^2 and E R^4, a few 1e-6 relative
//! (tests/sim/density.rs).

use statrs::function::gamma::ln_gamma;

use super::special::ln_binom_half;

/// One layer of a plain Gaussian network: `n` units, weights of variance `variance`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerLaw {
    pub width: u64,
    pub variance: f64,
}

/// Grid points per standard deviation of the narrowest layer's log-law.
const POINTS_PER_LAYER_SD: f64 = 32.0;
/// Grid points per standard deviation of the whole sum.
const POINTS_PER_TOTAL_SD: f64 = 256.0;
/// Kernel windows in standard deviations of `ln X` below and above its mean (the left tail of
/// `ln chi^2_K` decays like `exp(K v / 2)`, the right one doubly exponentially).
const LEFT_SDS: f64 = 18.0;
const RIGHT_SDS: f64 = 10.0;
/// Grid entries below this fraction of the largest are dropped after each convolution.
const TRIM: f64 = 1e-22;
/// Multiply-adds the convolution may spend; beyond it [`forward_ratio_density`] gives `None`.
pub const MAX_CONVOLUTION_WORK: f64 = 2e9;

impl LayerLaw {
    /// Binomial indices that carry the mass (mean +/- 13 sd), `K >= 1`.
    fn k_window(self) -> (u64, u64) {
        let n = self.width as f64;
        let (mean, sd) = (n / 2.0, n.sqrt() / 2.0);
        let lo = (mean - 13.0 * sd).floor().max(1.0) as u64;
        let hi = ((mean + 13.0 * sd).ceil() as u64).min(self.width);
        (lo, hi)
    }

    /// Approximate mean and standard deviation of `ln X` (delta method: `E X = sigma^2 n / 2`,
    /// relative variance `5 / n`); used only to place the grid.
    fn log_scale(self) -> (f64, f64) {
        let n = self.width as f64;
        ((self.variance * n / 2.0).ln() - 2.5 / n, (5.0 / n).sqrt())
    }

    /// `ln` of the density of `Y = ln X` at `y`, jointly with `K >= 1` (so it integrates to
    /// `1 - 2^-n`): `sum_K b(K) exp(K v / 2 - e^v / 2 - (K/2) ln 2 - ln Gamma(K/2))` with
    /// `v = y - ln sigma^2`, summed in log space.
    pub fn ln_log_density(self, y: f64) -> f64 {
        let v = y - self.variance.ln();
        let ev = v.exp();
        let (lo, hi) = self.k_window();
        let term = |k: u64| {
            let half = k as f64 / 2.0;
            ln_binom_half(self.width, k) + half * (v - std::f64::consts::LN_2) - ev / 2.0 - ln_gamma(half)
        };
        let max = (lo..=hi).map(term).fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return max;
        }
        let sum: f64 = (lo..=hi).map(|k| (term(k) - max).exp()).sum();
        max + sum.ln()
    }

    /// `P(K = 0)`: the layer has no active unit and the ratio is 0 from here on.
    fn zero_probability(self) -> f64 {
        (-(self.width as f64) * std::f64::consts::LN_2).exp()
    }
}

/// `P(R_l = 0) = 1 - prod_k (1 - 2^-n_k)`.
pub fn zero_mass(layers: &[LayerLaw]) -> f64 {
    let ln_alive: f64 = layers.iter().map(|l| (-l.zero_probability()).ln_1p()).sum();
    -ln_alive.exp_m1()
}

/// The density of `R_l = sqrt(prod_{k <= l} X_k)` at each `r` of `points` (0 where `r <= 0`);
/// its integral over `r > 0` is `1 - zero_mass(layers)`. One layer: closed form. Several: the
/// grid convolution of the module comment; `None` when it would exceed
/// [`MAX_CONVOLUTION_WORK`] multiply-adds, or for an empty or degenerate list of layers.
pub fn forward_ratio_density(layers: &[LayerLaw], points: &[f64]) -> Option<Vec<f64>> {
    if layers.is_empty()
        || layers
            .iter()
            .any(|l| l.width == 0 || !(l.variance > 0.0 && l.variance.is_finite()))
    {
        return None;
    }
    if let [one] = layers {
        return Some(
            points
                .iter()
                .map(|&r| {
                    if r > 0.0 {
                        // Z = 2 ln r: f_R(r) = f_Z(2 ln r) * 2 / r.
                        (one.ln_log_density(2.0 * r.ln()) + (2.0 / r).ln()).exp()
                    } else {
                        0.0
                    }
                })
                .collect(),
        );
    }
    let grid = LogGrid::convolve(layers)?;
    Some(
        points
            .iter()
            .map(|&r| {
                if r > 0.0 {
                    grid.density(2.0 * r.ln()) * 2.0 / r
                } else {
                    0.0
                }
            })
            .collect(),
    )
}

/// The density of `Z = ln R^2` on the points `start + j h`.
struct LogGrid {
    start: f64,
    step: f64,
    density: Vec<f64>,
}

impl LogGrid {
    fn convolve(layers: &[LayerLaw]) -> Option<LogGrid> {
        let scales: Vec<(f64, f64)> = layers.iter().map(|l| l.log_scale()).collect();
        let total_sd = scales.iter().map(|(_, s)| s * s).sum::<f64>().sqrt();
        let narrowest = scales.iter().map(|&(_, s)| s).fold(f64::INFINITY, f64::min);
        let step = (total_sd / POINTS_PER_TOTAL_SD).min(narrowest / POINTS_PER_LAYER_SD);
        let kernel_len = |s: f64| ((LEFT_SDS + RIGHT_SDS) * s / step).ceil() + 1.0;
        // Work: the running sum stays within about the total's window (trimmed), each layer's
        // kernel within its own.
        let total_len = (LEFT_SDS + RIGHT_SDS) * total_sd / step + 1.0;
        let work: f64 = scales.iter().map(|&(_, s)| kernel_len(s) * total_len).sum();
        if work > MAX_CONVOLUTION_WORK {
            return None;
        }
        // Each distinct layer's kernel once: masses at `start_k + i h`, normalized to 1 - 2^-n.
        let mut kernels: Vec<(LayerLaw, f64, Vec<f64>)> = Vec::new();
        let mut sum: Option<(f64, Vec<f64>)> = None;
        for (law, &(mean, sd)) in layers.iter().zip(&scales) {
            let position = kernels.iter().position(|(l, _, _)| l == law);
            let index = match position {
                Some(i) => i,
                None => {
                    let start = mean - LEFT_SDS * sd;
                    let masses: Vec<f64> = (0..kernel_len(sd) as usize)
                        .map(|i| law.ln_log_density(start + i as f64 * step).exp())
                        .collect();
                    let total: f64 = masses.iter().sum();
                    if !(total > 0.0 && total.is_finite()) {
                        return None;
                    }
                    let alive = 1.0 - law.zero_probability();
                    kernels.push((*law, start, masses.iter().map(|m| m / total * alive).collect()));
                    kernels.len() - 1
                }
            };
            let (_, k_start, kernel) = &kernels[index];
            sum = Some(match sum.take() {
                None => (*k_start, kernel.clone()),
                Some((s_start, s)) => {
                    let mut out = vec![0.0; s.len() + kernel.len() - 1];
                    for (j, &a) in s.iter().enumerate() {
                        if a == 0.0 {
                            continue;
                        }
                        for (o, &b) in out[j..].iter_mut().zip(kernel) {
                            *o += a * b;
                        }
                    }
                    trim(s_start + k_start, out, step)
                }
            });
        }
        let (start, masses) = sum?;
        Some(LogGrid {
            start,
            step,
            density: masses.iter().map(|m| m / step).collect(),
        })
    }

    /// Linear interpolation of the density at `z` (0 outside the grid).
    fn density(&self, z: f64) -> f64 {
        let x = (z - self.start) / self.step;
        if x.is_nan() || x < 0.0 || x > (self.density.len() - 1) as f64 {
            return 0.0;
        }
        let j = x.floor() as usize;
        let frac = x - j as f64;
        let next = self.density.get(j + 1).copied().unwrap_or(0.0);
        self.density[j] * (1.0 - frac) + next * frac
    }
}

/// Drop the negligible ends of a grid of masses (moving its start accordingly).
fn trim(start: f64, masses: Vec<f64>, step: f64) -> (f64, Vec<f64>) {
    let max = masses.iter().copied().fold(0.0, f64::max);
    let keep = |m: &f64| *m > TRIM * max;
    let first = masses.iter().position(keep).unwrap_or(0);
    let last = masses.iter().rposition(keep).unwrap_or(masses.len().saturating_sub(1));
    (start + first as f64 * step, masses[first..=last].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::distribution::{Binomial, ChiSquared, Continuous, Discrete};

    /// One layer: the closed form against statrs' chi-square densities, mixed by hand.
    #[test]
    fn one_layer_density_is_the_binomial_mixture_of_chi_densities() {
        let law = LayerLaw {
            width: 30,
            variance: 2.0 / 30.0,
        };
        let binom = Binomial::new(0.5, 30).unwrap();
        for r in [0.3, 0.7, 1.0, 1.2, 1.9] {
            let x = r * r;
            let f_x: f64 = (1..=30u64)
                .map(|k| binom.pmf(k) * ChiSquared::new(k as f64).unwrap().pdf(x / law.variance) / law.variance)
                .sum();
            let expected = 2.0 * r * f_x;
            let got = forward_ratio_density(&[law], &[r]).unwrap()[0];
            assert!(
                (got - expected).abs() <= 1e-10 * expected,
                "r = {r}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn zero_mass_is_the_chance_that_some_layer_is_dead() {
        let layers = [
            LayerLaw {
                width: 1,
                variance: 2.0,
            },
            LayerLaw {
                width: 2,
                variance: 1.0,
            },
        ];
        // 1 - (1/2)(3/4)
        assert!((zero_mass(&layers) - 0.625).abs() < 1e-15);
    }
}
