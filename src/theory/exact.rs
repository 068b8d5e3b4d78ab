//! Exact laws of one Gaussian ReLU layer (docs/theory.md section 5, derived).
//!
//! For a fixed input h != 0 and weights N(0, sigma^2), the squared-norm ratio of one layer is
//! `X = sigma^2 * chi^2_K` with `K ~ Binomial(n, 1/2)`; with sigma^2 = 2/n this is `(2/n) chi^2_K`.

use statrs::distribution::{Binomial, Discrete};
use statrs::function::gamma::ln_gamma;

use super::special::{ln_add_exp, ln_binom_half};

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

/// Logarithmic terms below `max - TERM_CUT` are left out of a mixture sum (each is below
/// `exp(-46) = 1.1e-20` of the largest; with the geometric decay of a log-concave sequence the
/// omitted total stays below 1e-15 of the sum for every width up to 10^9).
const TERM_CUT: f64 = 46.0;
/// Windows of at most this many terms are summed term by term.
const DISCRETE_MAX: u64 = 512;
/// On wider windows the sum runs over every `H`-th term (times `H`) with `H` at most the
/// window's scale `sigma` divided by this.
const SUBSAMPLE_RATIO: f64 = 4.0;

/// Which side of the per-layer law a mixture sum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `P(chi^2_K > 2x)`: terms `b(k) Q(k/2, x)`.
    Upper,
    /// `P(chi^2_K < 2x)`: terms `b(k) P(k/2, x)`, with `chi^2_0 = 0` counting when `x > 0`.
    Lower,
}

/// One mixture: `ln sum_k b(k) T(k/2, x)` with `b` the Binomial(n, 1/2) masses.
struct Mixture {
    n: u64,
    x: f64,
    side: Side,
}

impl Mixture {
    /// `ln b(k) + ln T(k/2, x)`, the log of one term.
    fn term(&self, k: u64) -> f64 {
        let t = if k == 0 {
            // chi^2_0 = 0: never above 2x > 0; below 2x exactly when x > 0.
            match self.side {
                Side::Upper => f64::NEG_INFINITY,
                Side::Lower if self.x > 0.0 => 0.0,
                Side::Lower => f64::NEG_INFINITY,
            }
        } else {
            let (lp, lq) = crate::theory::special::ln_gamma_pq(0.5 * k as f64, self.x);
            match self.side {
                Side::Upper => lq,
                Side::Lower => lp,
            }
        };
        ln_binom_half(self.n, k) + t
    }

    /// The natural log of the mixture. The terms form a log-concave sequence in `k` (binomial
    /// masses and incomplete gamma ratios in their order are both log-concave), so the largest
    /// is found by bisection on the sign of consecutive differences and the window of terms
    /// within `TERM_CUT` of it by two more bisections; the window is summed term by term
    /// (recurrences in `k`, log space) or, when wider than `DISCRETE_MAX` terms, as `H` times
    /// every `H`-th term: the trapezoidal rule on a smooth unimodal sequence, whose error
    /// relative to the full sum (aliasing, by Poisson's summation formula) is about
    /// `exp(-2 pi^2 (sigma / H)^2) < 1e-100` for `sigma / H >= 4`.
    fn ln_sum(&self) -> f64 {
        self.ln_sum_with_window().0
    }

    /// [`Mixture::ln_sum`] with the window it summed: `(ln sum, first, last, largest log term)`.
    fn ln_sum_with_window(&self) -> (f64, u64, u64, f64) {
        let n = self.n;
        let empty = (f64::NEG_INFINITY, 0, 0, f64::NEG_INFINITY);
        if self.side == Side::Lower && self.x == 0.0 {
            return empty;
        }
        if self.side == Side::Upper && self.x.is_infinite() {
            return empty;
        }
        // Peak: smallest k with term(k + 1) < term(k) (differences decrease).
        let (mut lo, mut hi) = (0u64, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.term(mid + 1) >= self.term(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let peak = lo;
        let top = self.term(peak);
        if top == f64::NEG_INFINITY || top.is_nan() {
            return (top, peak, peak, top);
        }
        let floor = top - TERM_CUT;
        // First k (rising side) and last k (falling side) with term >= floor.
        let (mut a, mut b) = (0u64, peak);
        while a < b {
            let mid = a + (b - a) / 2;
            if self.term(mid) >= floor {
                b = mid;
            } else {
                a = mid + 1;
            }
        }
        let first = a;
        let (mut a, mut b) = (peak, n);
        while a < b {
            let mid = a + (b - a).div_ceil(2);
            if self.term(mid) >= floor {
                a = mid;
            } else {
                b = mid - 1;
            }
        }
        let last = a;
        let count = last - first + 1;
        let sigma = (peak - first).min(last - peak) as f64 / (2.0 * TERM_CUT).sqrt();
        let step = (sigma / SUBSAMPLE_RATIO).floor() as u64;
        if count <= DISCRETE_MAX || step < 2 {
            return (top + self.window_sum(first, last, top).ln(), first, last, top);
        }
        // Every step-th term around the peak, scaled by step.
        let mut acc = 0.0;
        let mut k = peak - (peak - first) / step * step;
        while k <= last {
            acc += (self.term(k) - top).exp();
            k += step;
        }
        (top + (acc * step as f64).ln(), first, last, top)
    }

    /// `sum_{first <= k <= last} exp(term(k) - offset)`, term by term: each parity class of `k`
    /// runs one recurrence, `Q(a + 1) = Q(a) + x^a e^-x / Gamma(a + 1)` upwards for the upper
    /// side and `P(a - 1) = P(a) + x^(a-1) e^-x / Gamma(a)` downwards for the lower side (sums
    /// of positive terms in both directions: no cancellation), started from one incomplete
    /// gamma evaluation. All in log space; relative error about 1e-15 per step.
    fn window_sum(&self, first: u64, last: u64, offset: f64) -> f64 {
        let (n, x) = (self.n, self.x);
        let ln_x = x.ln();
        let mut acc = 0.0;
        for start in [first, first + 1] {
            if start > last {
                continue;
            }
            match self.side {
                Side::Upper => {
                    let mut k = start;
                    let mut a = 0.5 * k as f64;
                    let mut ln_b = ln_binom_half(n, k);
                    let mut ln_t = if k == 0 {
                        f64::NEG_INFINITY
                    } else {
                        crate::theory::special::ln_gamma_q(a, x)
                    };
                    let mut ln_d = crate::theory::special::ln_gamma_step(a, x);
                    loop {
                        acc += (ln_b + ln_t - offset).exp();
                        if k + 2 > last {
                            break;
                        }
                        ln_t = ln_add_exp(ln_t, ln_d);
                        ln_d += ln_x - (a + 1.0).ln();
                        let (r, kf) = ((n - k) as f64, k as f64);
                        ln_b += (r * (r - 1.0) / ((kf + 1.0) * (kf + 2.0))).ln();
                        a += 1.0;
                        k += 2;
                    }
                }
                Side::Lower => {
                    // Walk down from the top of this parity class.
                    let mut k = if (last - start).is_multiple_of(2) {
                        last
                    } else {
                        last - 1
                    };
                    let mut a = 0.5 * k as f64;
                    let mut ln_b = ln_binom_half(n, k);
                    let mut ln_t = if k == 0 {
                        0.0
                    } else {
                        crate::theory::special::ln_gamma_p(a, x)
                    };
                    let mut ln_d = crate::theory::special::ln_gamma_step(a, x);
                    loop {
                        acc += (ln_b + ln_t - offset).exp();
                        if k < start + 2 {
                            break;
                        }
                        // d(a - 1) = d(a) a / x
                        ln_d += a.ln() - ln_x;
                        ln_t = ln_add_exp(ln_t, ln_d);
                        let (r, kf) = ((n - k) as f64, k as f64);
                        ln_b += (kf * (kf - 1.0) / ((r + 1.0) * (r + 2.0))).ln();
                        a -= 1.0;
                        k -= 2;
                    }
                }
            }
        }
        acc
    }
}

/// Natural log of the exact per-layer tail `P(|sqrt(X) - 1| > t)` for `X = (2/n) chi^2_K`,
/// `K ~ Bin(n, 1/2)` (docs/theory.md section 5).
///
/// `X > (1+t)^2` is `chi^2_K > (1+t)^2 n / 2` and, for `t < 1`, `X < (1-t)^2` is
/// `chi^2_K < (1-t)^2 n / 2`, which includes `K = 0` (`X = 0`, deviation 1); for `t >= 1` the
/// lower side is empty. Each side is a binomial mixture of chi-square tails summed in log space
/// over the terms that matter (see `Mixture::ln_sum`), so tails far below the smallest f64
/// (`exp(-1e6)`, say) come out with full relative precision. Relative error of the tail: below
/// 1e-12 up to width 10^5 and about 1e-11 up to 10^9 (largest seen against mpmath: 1.3e-11).
///
/// Cost: O(log n) incomplete gamma evaluations plus at most a few hundred recurrence steps,
/// about 0.1 ms at any width up to 10^9. `n = 0`, a negative or NaN `t` give NaN.
pub fn ln_layer_tail(n: u64, t: f64) -> f64 {
    if n == 0 || t.is_nan() || t < 0.0 {
        return f64::NAN;
    }
    let quarter = n as f64 / 4.0; // X > c  <=>  chi^2_K / 2 > c n / 4
    let upper = Mixture {
        n,
        x: (1.0 + t) * (1.0 + t) * quarter,
        side: Side::Upper,
    }
    .ln_sum();
    if t < 1.0 {
        let lower = Mixture {
            n,
            x: (1.0 - t) * (1.0 - t) * quarter,
            side: Side::Lower,
        }
        .ln_sum();
        ln_add_exp(upper, lower).min(0.0)
    } else {
        upper.min(0.0)
    }
}

/// Exact per-layer tail `P(|sqrt(X) - 1| > t)` for `X = (2/n) chi^2_K`, `K ~ Bin(n, 1/2)`:
/// `exp` of [`ln_layer_tail`] (so 0 below about 1e-308; use the log for smaller tails).
pub fn layer_tail(n: u64, t: f64) -> f64 {
    ln_layer_tail(n, t).exp()
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
        // docs/theory.md gives 0.0223 and 0.419 (three significant digits); scipy gives
        // 0.02225453306528865 and 0.4190686712835874.
        assert!(rel(p500, 0.022_254_533_065_288_65) < 1e-6, "{p500}");
        assert!(rel(p4000, 0.419_068_671_283_587_4) < 1e-6, "{p4000}");
    }

    /// (n, t, ln P(|sqrt X - 1| > t)) from tools/exact_tail_reference.py: mpmath at 50 digits,
    /// every k from 0 to n up to n = 3e5 (a 90-standard-deviation window beyond, whose edge terms
    /// are below 1e-1400 of the total), no asymptotics. Tails from 0.78 down to 3e-303.
    #[allow(clippy::excessive_precision)] // mpmath digits, kept as printed
    const MPMATH_TAILS: [(u64, f64, f64); 15] = [
        (1, 3.0, -6.0580884451765829),
        (6, 2.0, -11.144839796778112),
        (1, 0.5, -0.24515225292577615),
        (10, 1.0, -6.0703853518563345),
        (50, 0.95, -19.214691503973438),
        (500, 0.2285, -12.23262510610095),
        (4000, 0.0143, -0.87084630102732774),
        (1354, 0.05, -2.3037660425487491),
        (7367, 0.5, -691.53301071118563),
        (22049, 0.2, -346.09192968355819),
        (227777, 0.0717734625362931, -468.11915682894157),
        (1_000_000, 0.0415, -688.61376158302074),
        (30_000_000, 0.0076, -696.60116076244379),
        (1_000_000_000, 0.0013, -679.81985446352548),
        (1_000_000_000, 0.0002, -17.987778267026234),
    ];

    #[test]
    #[allow(clippy::excessive_precision)] // mpmath digits, kept as printed
    fn ln_layer_tail_matches_mpmath() {
        for (n, t, want) in MPMATH_TAILS {
            let got = ln_layer_tail(n, t);
            // |d ln P| <= 1e-9 is a relative error of 1e-9 on the tail itself.
            assert!((got - want).abs() < 1e-9, "n={n} t={t}: ln P = {got}, mpmath {want}");
        }
        // The plain tail where it is representable.
        assert!(rel(layer_tail(1354, 0.05), 0.09988197474918027) < 1e-9);
        assert!(rel(layer_tail(7367, 0.5), 4.6884511373854664e-301) < 1e-9);
    }

    #[test]
    fn tail_edge_cases() {
        // t = 0: every outcome deviates (X = 1 has probability 0).
        assert!(ln_layer_tail(100, 0.0).abs() < 1e-12);
        // n = 1: X = 2 chi^2_K, K in {0, 1}. For t < 1 the K = 0 atom (deviation 1) fails:
        // P = 1/2 + (1/2) [P(2 z^2 > (1+t)^2) + P(2 z^2 < (1-t)^2)].
        // At t = 1 the atom no longer counts (deviation exactly 1 is not > 1): P = (1/2) erfc(1).
        let erfc1 = 0.157_299_207_050_285_13;
        assert!(rel(layer_tail(1, 1.0), 0.5 * erfc1) < 1e-13);
        assert!(layer_tail(1, 1.0 - 1e-9) > 0.5);
        // t > 1: upper side only, P = (1/2) erfc((1+t)/2).
        assert!(rel(layer_tail(1, 3.0), 0.002_338_867_490_523_633) < 1e-12);
        // Far beyond any f64: finite log, zero tail.
        let l = ln_layer_tail(1, 1000.0);
        assert!(l.is_finite() && l < -2.5e5, "{l}");
        assert_eq!(layer_tail(1, 1000.0), 0.0);
        assert!(ln_layer_tail(5, f64::MAX) == f64::NEG_INFINITY);
        assert!(ln_layer_tail(0, 0.1).is_nan() && ln_layer_tail(3, -0.1).is_nan());
    }

    #[test]
    fn windows_keep_every_term_that_matters() {
        // The peak-and-window selection against the sum over every k from 0 to n (same
        // recurrences), over small widths and tolerances from the bulk to far tails.
        for n in [1u64, 2, 3, 7, 20, 64, 200, 777, 3000] {
            for t in [0.0, 0.01, 0.1, 0.3, 0.7, 0.99, 1.0, 1.5, 4.0, 30.0] {
                let quarter = n as f64 / 4.0;
                let mut sides = vec![((1.0 + t) * (1.0 + t) * quarter, Side::Upper)];
                if t < 1.0 {
                    sides.push(((1.0 - t) * (1.0 - t) * quarter, Side::Lower));
                }
                for (x, side) in sides {
                    let mix = Mixture { n, x, side };
                    let (fast, _, _, top) = mix.ln_sum_with_window();
                    let full = top + mix.window_sum(0, n, top).ln();
                    // Both carry rounding of about 1e-16 per recurrence step (1500 steps here).
                    assert!(
                        (fast - full).abs() < 2e-12 * full.abs().max(1.0),
                        "n={n} t={t} {side:?}: {fast} vs {full}"
                    );
                }
            }
        }
    }

    #[test]
    fn subsampled_windows_equal_the_full_sums() {
        // The trapezoidal shortcut on wide windows against the term-by-term recurrences over
        // the same window.
        for (n, t) in [
            (200_000u64, 0.02),
            (3_000_000, 0.004),
            (50_000_000, 0.0013),
            (1_000_000_000, 0.00004),
        ] {
            let quarter = n as f64 / 4.0;
            for (x, side) in [
                ((1.0 + t) * (1.0 + t) * quarter, Side::Upper),
                ((1.0 - t) * (1.0 - t) * quarter, Side::Lower),
            ] {
                let mix = Mixture { n, x, side };
                let (fast, first, last, top) = mix.ln_sum_with_window();
                assert!(
                    last - first + 1 > DISCRETE_MAX,
                    "n={n}: window {first}..{last} not wide"
                );
                let full = top + mix.window_sum(first, last, top).ln();
                // The recurrences accumulate about 1e-16 per step over 10^4..10^5 steps.
                assert!((fast - full).abs() < 1e-10, "n={n} t={t} {side:?}: {fast} vs {full}");
            }
        }
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
