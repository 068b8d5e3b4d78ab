//! Exact laws of one Gaussian ReLU layer (theory.md section 5, derived).
//!
//! For a fixed input h != 0 and weights N(0, sigma^2), the squared-norm ratio of one layer is
//! `X = sigma^2 * chi^2_K` with `K ~ Binomial(n, 1/2)`; with sigma^2 = 2/n this is `(2/n) chi^2_K`.

use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, Discrete};
use statrs::function::gamma::ln_gamma;

/// Binomial(n, 1/2) weights restricted to the indices where they matter (relative mass above
/// 1e-30 of the total); returns `(first_k, weights)`. O(sqrt(n)) entries.
fn binomial_half_window(n: u64) -> (u64, Vec<f64>) {
    let mean = n as f64 / 2.0;
    let sd = (n as f64).sqrt() / 2.0;
    // 12 standard deviations leave out less than 1e-32 of the mass.
    let lo = (mean - 12.0 * sd).floor().max(0.0) as u64;
    let hi = ((mean + 12.0 * sd).ceil() as u64).min(n);
    let binom = match Binomial::new(0.5, n) {
        Ok(b) => b,
        Err(_) => return (0, vec![1.0]),
    };
    let weights = (lo..=hi).map(|k| binom.pmf(k)).collect();
    (lo, weights)
}

/// `P(chi^2_k > x)`, with chi^2_0 the point mass at 0.
fn chi2_sf(k: u64, x: f64) -> f64 {
    if k == 0 {
        return if x < 0.0 { 1.0 } else { 0.0 };
    }
    match ChiSquared::new(k as f64) {
        Ok(d) => d.sf(x),
        Err(_) => f64::NAN,
    }
}

/// `P(chi^2_k < x)` (strict; the law is continuous for k > 0), chi^2_0 = 0.
fn chi2_cdf(k: u64, x: f64) -> f64 {
    if k == 0 {
        return if x > 0.0 { 1.0 } else { 0.0 };
    }
    match ChiSquared::new(k as f64) {
        Ok(d) => d.cdf(x),
        Err(_) => f64::NAN,
    }
}

/// Exact per-layer tail `P(|sqrt(X) - 1| > t)` for `X = (2/n) chi^2_K`, `K ~ Bin(n, 1/2)`.
///
/// A finite binomial mixture of chi-square tails, summed over the indices carrying the mass.
pub fn layer_tail(n: u64, t: f64) -> f64 {
    if n == 0 || t.is_nan() || t < 0.0 {
        return f64::NAN;
    }
    let scale = n as f64 / 2.0; // X > a  <=>  chi^2_K > a n / 2
    let upper = (1.0 + t) * (1.0 + t) * scale;
    let lower = if t < 1.0 { (1.0 - t) * (1.0 - t) * scale } else { 0.0 };
    let (first, weights) = binomial_half_window(n);
    let mut total = 0.0;
    for (i, w) in weights.iter().enumerate() {
        let k = first + i as u64;
        let mut p = chi2_sf(k, upper);
        if t < 1.0 {
            p += chi2_cdf(k, lower);
        }
        total += w * p;
    }
    total.min(1.0)
}

/// `E[sqrt(chi^2_k)] = sqrt(2) Gamma((k+1)/2) / Gamma(k/2)`, 0 for k = 0.
fn mean_chi(k: u64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    let k = k as f64;
    std::f64::consts::SQRT_2 * (ln_gamma((k + 1.0) / 2.0) - ln_gamma(k / 2.0)).exp()
}

/// `E[sqrt(X)]` for `X = sigma^2 chi^2_K`, `K ~ Bin(n, 1/2)`: the exact mean of one layer's
/// norm ratio ||h^l|| / ||h^{l-1}|| under Gaussian weights of variance `sigma2`.
pub fn mean_layer_norm_ratio(n: u64, sigma2: f64) -> f64 {
    let (first, weights) = binomial_half_window(n);
    let s: f64 = weights
        .iter()
        .enumerate()
        .map(|(i, w)| w * mean_chi(first + i as u64))
        .sum();
    sigma2.sqrt() * s
}

/// `E[X] = sigma^2 n / 2` and `E[X^2] = (sigma^2 n / 2)^2 (1 + 5/n)` for one Gaussian layer.
pub fn layer_moments(n: u64, sigma2: f64) -> (f64, f64) {
    let c = sigma2 * n as f64 / 2.0;
    (c, c * c * (1.0 + 5.0 / n as f64))
}

/// `E[(||h^L||^2 / ||x||^2)^2] = prod_l (1 + 5/n_l)` under `he`/`out`.
pub fn fourth_moment_he_out(widths: &[usize]) -> f64 {
    widths.iter().map(|&n| 1.0 + 5.0 / n as f64).product()
}

/// Hanin-Rolnick approximation for `log(||h^L||^2/||x||^2)` under `he`/`out`:
/// `(mean, variance) = (-(5/2) sum 1/n_l, 5 sum 1/n_l)`.
pub fn log_norm_moments_he_out(widths: &[usize]) -> (f64, f64) {
    let s: f64 = widths.iter().map(|&n| 1.0 / n as f64).sum();
    (-2.5 * s, 5.0 * s)
}

/// The constant `K_n = 2 C_n S(n-1) / S(n)` as the authors' script computes it, with
/// `C_n = int_0^{pi/2} sin^{n-1}(t) dt` by numerical quadrature and `S(n)` the area of the
/// unit sphere in R^{n+1}. Analytically it is exactly 1 for every n.
pub fn k_n(n: u32) -> f64 {
    let c_n = integrate_sin_power(n.saturating_sub(1) as i32);
    let ln_s =
        |d: f64| std::f64::consts::LN_2 + (d + 1.0) / 2.0 * std::f64::consts::PI.ln() - ln_gamma((d + 1.0) / 2.0);
    2.0 * c_n * (ln_s(n as f64 - 1.0) - ln_s(n as f64)).exp()
}

/// `int_0^{pi/2} sin^p(t) dt` by composite Gauss-Legendre (5 points on 2000 panels).
fn integrate_sin_power(p: i32) -> f64 {
    const NODES: [f64; 5] = [
        0.0,
        -0.538_469_310_105_683,
        0.538_469_310_105_683,
        -0.906_179_845_938_664,
        0.906_179_845_938_664,
    ];
    const WEIGHTS: [f64; 5] = [
        0.568_888_888_888_889,
        0.478_628_670_499_366,
        0.478_628_670_499_366,
        0.236_926_885_056_189,
        0.236_926_885_056_189,
    ];
    let panels = 2000;
    let h = std::f64::consts::FRAC_PI_2 / panels as f64;
    let mut total = 0.0;
    for j in 0..panels {
        let mid = (j as f64 + 0.5) * h;
        for (x, w) in NODES.iter().zip(WEIGHTS.iter()) {
            total += w * (mid + x * h / 2.0).sin().powi(p);
        }
    }
    total * h / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn k_n_is_one() {
        for n in [1, 2, 3, 10, 100, 500, 784] {
            assert!(rel(k_n(n), 1.0) < 1e-6, "K_{n} = {}", k_n(n));
        }
    }

    #[test]
    fn fourth_moment_reference() {
        assert!(rel(fourth_moment_he_out(&[100; 10]), 1.628895) < 1e-6);
        let (m, v) = log_norm_moments_he_out(&[100; 10]);
        assert!(rel(m, -0.25) < 1e-12 && rel(v, 0.5) < 1e-12);
    }

    #[test]
    fn exact_tail_at_arpit_tolerance() {
        let c = (4.0 * 2000.0 * 10.0 / 0.05f64).ln();
        let p500 = layer_tail(500, 4.0 / 500.0 * c);
        let p4000 = layer_tail(4000, 4.0 / 4000.0 * c);
        // theory.md gives 0.0223 and 0.419 (three significant digits); scipy gives
        // 0.02225453306528865 and 0.4190686712835874.
        assert!(rel(p500, 0.022_254_533_065_288_65) < 1e-6, "{p500}");
        assert!(rel(p4000, 0.419_068_671_283_587_4) < 1e-6, "{p4000}");
    }

    #[test]
    fn mean_norm_ratio_matches_second_moment_limit() {
        // E sqrt(X) <= sqrt(E X) = 1 under he/out, with the gap about Var X / 8 = 5/(8n).
        let m = mean_layer_norm_ratio(100, 2.0 / 100.0);
        assert!(m < 1.0 && (1.0 - m - 5.0 / 800.0).abs() < 5e-4, "{m}");
        // n = 1: X = 2 chi^2_K with K = 0 or 1 (probability 1/2 each), so
        // E sqrt X = (1/2) sqrt(2) E|z| = (1/2) sqrt(2) sqrt(2/pi).
        let exact = 0.5 * (2.0f64).sqrt() * (2.0 / std::f64::consts::PI).sqrt();
        assert!(rel(mean_layer_norm_ratio(1, 2.0), exact) < 1e-12);
    }
}
