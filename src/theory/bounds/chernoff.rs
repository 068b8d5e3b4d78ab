//! Chernoff bound with the cumulant function of one term `Y = 2 ReLU(z)^2` (docs/theory.md section 4.3).
//!
//! Plain arithmetic; the rate is found by bisection to 1e-16 relative in its parameter, so the
//! widths carry a relative error of about 1e-15.

use super::{search_min_tolerance, BoundInputs};

/// Largest per-layer tolerance the guaranteed-epsilon search considers.
pub const MAX_TOLERANCE: f64 = 1e6;

/// `Lambda(s) = ln(1/2 + 1/2 (1 - 4s)^(-1/2))`, s < 1/4.
pub fn cumulant(s: f64) -> f64 {
    (0.5 + 0.5 / (1.0 - 4.0 * s).sqrt()).ln()
}

/// Rate `I(a) = sup_s (s a - Lambda(s))`, a >= 0; `I(1) = 0`, `I(0) = ln 2`, `I(inf) = inf`.
///
/// With `u = (1 - 4s)^(-1/2)` the stationarity condition `Lambda'(s) = a` reads
/// `2 u^3 / (1 + u) = a`, increasing in u > 0, solved by bisection in u.
pub fn rate(a: f64) -> f64 {
    if a.is_nan() {
        return f64::NAN;
    }
    if a <= 0.0 {
        return if a == 0.0 {
            std::f64::consts::LN_2
        } else {
            f64::INFINITY
        };
    }
    if a.is_infinite() {
        return f64::INFINITY;
    }
    let f = |u: f64| 2.0 * u * u * u / (1.0 + u) - a;
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while f(hi) < 0.0 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-16 * hi {
            break;
        }
    }
    let u = 0.5 * (lo + hi);
    let s = (1.0 - 1.0 / (u * u)) / 4.0;
    // ln(1/2 + u/2) written to keep precision near u = 1.
    (s * a - (0.5 * (u - 1.0)).ln_1p()).max(0.0)
}

/// Two-sided rate at per-layer tolerance t: `min(I((1+t)^2), I((1-t)^2))`.
pub fn two_sided_rate(t: f64) -> f64 {
    let up = rate((1.0 + t) * (1.0 + t));
    if t >= 1.0 {
        // sqrt(X) >= 0 > 1 - t: only the upper side can fail (at t = 1, X = 0 has rate ln 2).
        return if t == 1.0 { up.min(std::f64::consts::LN_2) } else { up };
    }
    up.min(rate((1.0 - t) * (1.0 - t)))
}

/// `ln(4 N L / delta) / min(I((1+epsilon')^2), I((1-epsilon')^2))`, unrounded (infinite when
/// `epsilon'` underflows to 0).
pub fn min_width_real(inputs: &BoundInputs) -> f64 {
    inputs.log_term() / two_sided_rate(inputs.epsilon_prime())
}

/// Smallest t with `m * two_sided_rate(t) >= ln(4NL/delta)` (to 1e-13 relative), `None` above
/// [`MAX_TOLERANCE`].
pub fn per_layer_epsilon(inputs: &BoundInputs, width: u64) -> Option<f64> {
    let need = inputs.log_term() / width as f64;
    search_min_tolerance(MAX_TOLERANCE, |t| two_sided_rate(t) >= need)
}
