//! The ReLU arc-cosine kernels of the infinite-width view (Cho & Saul's kernels of degree 1
//! and 2, normalized), and what they say about two inputs through one random ReLU layer.
//!
//! For a standard bivariate normal (u, v) with correlation rho and theta = arccos rho:
//! * `E[relu(u) relu(v)] = (sin theta + (pi - theta) cos theta) / (2 pi)`, so the cosine of two
//!   post-ReLU vectors under a Gaussian layer maps as [`relu_cosine`] (its value at rho = 1 is 1);
//! * `E[relu(u)^2 relu(v)^2] = (3 sin theta cos theta + (pi - theta)(1 + 2 cos^2 theta)) / (2 pi)`
//!   ([`relu_square_moment`]; 3/2 at rho = 1, 1/4 at rho = 0).

use std::f64::consts::PI;

/// The cosine of ReLU(W h) and ReLU(W g) at infinite width, for inputs with cosine `c`:
/// `(sqrt(1 - c^2) + (pi - arccos c) c) / pi`.
pub fn relu_cosine(c: f64) -> f64 {
    let c = c.clamp(-1.0, 1.0);
    ((1.0 - c * c).max(0.0).sqrt() + (PI - c.acos()) * c) / PI
}

/// [`relu_cosine`] applied `layers` times to `c`: the infinite-width cosine of h^l(x) and h^l(y)
/// at layer l = `layers` for inputs with cosine `c`, under any i.i.d. zero-mean Gaussian weights
/// without bias (the cosine does not depend on the weights' variance; docs/theory.md section 7).
pub fn relu_cosine_iterated(c: f64, layers: usize) -> f64 {
    (0..layers).fold(c, |c, _| relu_cosine(c))
}

/// The infinite-width distance ratio ||h^l(x) - h^l(y)|| / ||x - y|| of two inputs with equal
/// norms and cosine `c0`, when the squared norm of either input grows by `norm_ratio_squared`
/// = ||h^l||^2 / ||x||^2 up to layer l and the cosine has become `cl`:
/// sqrt(q_l (1 - c_l) / (1 - c_0)) (from ||h(x) - h(y)||^2 = ||h(x)||^2 + ||h(y)||^2 - 2 h(x).h(y)).
pub fn distance_ratio(c0: f64, cl: f64, norm_ratio_squared: f64) -> f64 {
    (norm_ratio_squared * (1.0 - cl) / (1.0 - c0)).sqrt()
}

/// `E[relu(u)^2 relu(v)^2]` for standard normals with correlation `rho`.
pub fn relu_square_moment(rho: f64) -> f64 {
    let rho = rho.clamp(-1.0, 1.0);
    let theta = rho.acos();
    (3.0 * theta.sin() * rho + (PI - theta) * (1.0 + 2.0 * rho * rho)) / (2.0 * PI)
}

/// Covariance of the squared-norm factors `X(x) = (2/n) sum relu(z_i . x)^2` of two inputs with
/// cosine `rho` through one Gaussian layer, times `n` (the factor's variance is 5/n at rho = 1):
/// `4 E[relu(u)^2 relu(v)^2] - 1`.
pub fn factor_covariance(rho: f64) -> f64 {
    4.0 * relu_square_moment(rho) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_at_known_points() {
        assert!((relu_cosine(1.0) - 1.0).abs() < 1e-15);
        assert!((relu_cosine(0.0) - 1.0 / PI).abs() < 1e-15);
        assert!((relu_square_moment(1.0) - 1.5).abs() < 1e-15);
        assert!((relu_square_moment(0.0) - 0.25).abs() < 1e-15);
        assert!((factor_covariance(1.0) - 5.0).abs() < 1e-14);
        assert!(factor_covariance(0.0).abs() < 1e-15);
        // rho = -1: relu(u) relu(-u) = 0.
        assert!(relu_square_moment(-1.0).abs() < 1e-15);
    }

    #[test]
    fn the_arc_cosine_map_at_closed_form_points() {
        let (r2, r3) = (2f64.sqrt(), 3f64.sqrt());
        // (sin t + (pi - t) cos t) / pi at t = pi/2, 0, pi, pi/3, 2pi/3, pi/4, 3pi/4.
        let cases = [
            (0.0, 1.0 / PI),
            (1.0, 1.0),
            (-1.0, 0.0),
            (0.5, r3 / (2.0 * PI) + 1.0 / 3.0),
            (-0.5, r3 / (2.0 * PI) - 1.0 / 6.0),
            (r2 / 2.0, r2 / (2.0 * PI) + 3.0 * r2 / 8.0),
            (-r2 / 2.0, r2 / (2.0 * PI) - r2 / 8.0),
        ];
        for (c, want) in cases {
            assert!(
                (relu_cosine(c) - want).abs() < 1e-12,
                "c = {c}: {} vs {want}",
                relu_cosine(c)
            );
        }
        // Iterated: 0 -> 1/pi -> (sqrt(1 - 1/pi^2) + (pi - acos(1/pi)) / pi) / pi.
        let two = ((1.0 - 1.0 / (PI * PI)).sqrt() + (PI - (1.0 / PI).acos()) / PI) / PI;
        assert!((relu_cosine_iterated(0.0, 2) - two).abs() < 1e-12);
        assert!((two - 0.493_731_090_2).abs() < 1e-9, "{two}");
        assert_eq!(relu_cosine_iterated(0.3, 0), 0.3);
        // Every angle closes: the map lies above the diagonal below 1, and 1 is its fixed point.
        for k in 0..200 {
            let c = -1.0 + k as f64 / 100.0;
            assert!(relu_cosine(c) > c && relu_cosine(c) <= 1.0, "{c}");
        }
        // Equal norms, no growth: the distance ratio at layer 0 is 1, at c_l = 1 it is 0.
        assert_eq!(distance_ratio(0.5, 0.5, 1.0), 1.0);
        assert_eq!(distance_ratio(0.5, 1.0, 1.0), 0.0);
        assert!((distance_ratio(0.0, 1.0 / PI, 1.0) - (1.0 - 1.0 / PI).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn the_arc_cosine_map_matches_quadrature() {
        // 2 E[relu(u) relu(v)] by the midpoint rule, with v = c u + s w, E[relu(m + s w)] =
        // m Phi(m/s) + s phi(m/s), integrated over u > 0: an independent computation.
        for c in [-0.8, -0.3, 0.0, 0.4, 0.9] {
            let s = (1.0f64 - c * c).sqrt();
            let phi = |x: f64| (-0.5 * x * x).exp() / (2.0 * PI).sqrt();
            let cdf = |x: f64| 0.5 * statrs::function::erf::erfc(-x / std::f64::consts::SQRT_2);
            let inner = |m: f64| m * cdf(m / s) + s * phi(m / s);
            let n = 200_000;
            let h = 12.0 / n as f64;
            let total: f64 = (0..n)
                .map(|i| {
                    let u = (i as f64 + 0.5) * h;
                    u * inner(c * u) * phi(u) * h
                })
                .sum();
            assert!((2.0 * total - relu_cosine(c)).abs() < 1e-8, "c {c}: {}", 2.0 * total);
        }
    }

    #[test]
    fn square_moment_matches_quadrature() {
        // With v = rho u + s w (s = sqrt(1 - rho^2)), integrate u^2 E[relu(v)^2 | u] over u > 0
        // by the midpoint rule.
        for rho in [-0.6, 0.0, 0.3, 0.8] {
            let s = (1.0f64 - rho * rho).sqrt();
            let phi = |x: f64| (-0.5 * x * x).exp() / (2.0 * PI).sqrt();
            // E[relu(m + s w)^2] = (m^2 + s^2) Phi(m/s) + m s phi(m/s).
            let cdf = |x: f64| 0.5 * statrs::function::erf::erfc(-x / std::f64::consts::SQRT_2);
            let inner = |m: f64| (m * m + s * s) * cdf(m / s) + m * s * phi(m / s);
            let n = 200_000;
            let h = 12.0 / n as f64;
            let total: f64 = (0..n)
                .map(|i| {
                    let u = (i as f64 + 0.5) * h;
                    u * u * inner(rho * u) * phi(u) * h
                })
                .sum();
            assert!((total - relu_square_moment(rho)).abs() < 1e-8, "rho {rho}: {total}");
        }
    }
}
