//! Moments of a residual block's norm factor (docs/theory.md section 7.4, derived there).
//!
//! Block b maps h to h + W_2 ReLU(W_1 h), with W_1 (m x n_0) and W_2 (n_0 x m) whose rows are
//! independent and sign-symmetric with E[W_1,ij^2] = s_1, E[W_2,ij^2] = s_2. Its factor
//! X = ||h^b||^2 / ||h^(b-1)||^2 has, given h^(b-1),
//!
//!   E[X]   = c = 1 + k,           k = m n_0 s_1 s_2 / 2,
//!   E[X^2] = 1 + 2k + 4k/n_0 + k^2 R,
//!
//! whatever the direction of h^(b-1), where R = E[q^2] / k^2 for q = ||W_2 u||^2 / ||h||^2 and
//! u = ReLU(W_1 h) depends on the law of the rows: i.i.d. Gaussian entries give
//! R = (1 + 2/n_0)(1 + 5/m); rows uniform on a sphere (weight norm with Gaussian directions)
//! give R = (1 + (3m/(m+2) - 1)/n_0)(1 + (6 n_0/(n_0+2) - 1)/m). Neither depends on h, so over
//! blocks E[r_b^2] = prod c_k and E[r_b^4] = prod E[X_k^2] exactly (orthogonal rows are not
//! independent: there the second formula is an approximation).

/// The law of the rows of a block's two matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// I.i.d. Gaussian entries (plain Gaussian inits).
    Gaussian,
    /// Each row uniform on a sphere (weight norm; with orthogonal directions, approximately).
    Sphere,
}

/// k = m n_0 s_1 s_2 / 2: the mean of ||W_2 ReLU(W_1 h)||^2 / ||h||^2.
pub fn branch_factor(n0: usize, m: usize, s1: f64, s2: f64) -> f64 {
    m as f64 * n0 as f64 * s1 * s2 / 2.0
}

/// E[X^2] of one block's squared-norm factor (see the module comment).
pub fn factor_second_moment(n0: usize, m: usize, s1: f64, s2: f64, rows: Rows) -> f64 {
    let k = branch_factor(n0, m, s1, s2);
    let (n, m) = (n0 as f64, m as f64);
    let r = match rows {
        Rows::Gaussian => (1.0 + 2.0 / n) * (1.0 + 5.0 / m),
        Rows::Sphere => (1.0 + (3.0 * m / (m + 2.0) - 1.0) / n) * (1.0 + (6.0 * n / (n + 2.0) - 1.0) / m),
    };
    1.0 + 2.0 * k + 4.0 * k / n + k * k * r
}

/// The mean of a positive ratio r from E[r^2] and E[r^4], taking log r^2 Gaussian (its variance
/// sigma^2 = ln(E[r^4] / E[r^2]^2)): E[r] = sqrt(E[r^2]) exp(-sigma^2 / 8). An approximation:
/// it is the first correction of the root mean square for the Jensen gap, which is what the
/// mean of the ratio sits below.
pub fn lognormal_mean(mean_square: f64, fourth_moment: f64) -> f64 {
    let sigma2 = (fourth_moment / (mean_square * mean_square)).ln().max(0.0);
    mean_square.sqrt() * (-sigma2 / 8.0).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proposed_and_naive_factors() {
        // Weight norm: s_1 = g_1^2 / n_0, s_2 = g_2^2 / m, so k = g_1^2 g_2^2 / 2.
        let (n0, m, blocks) = (500usize, 200usize, 40.0);
        let g1 = (2.0 * n0 as f64 / m as f64).sqrt();
        let g2 = (m as f64 / (blocks * n0 as f64)).sqrt();
        let k = branch_factor(n0, m, g1 * g1 / n0 as f64, g2 * g2 / m as f64);
        assert!((k - 1.0 / 40.0).abs() < 1e-15);
        assert!((branch_factor(n0, m, 1.0 / n0 as f64, 1.0 / m as f64) - 0.5).abs() < 1e-15);
        // He fan-out on both layers: s_1 = 2/m, s_2 = 2/n_0, k = 2.
        assert!((branch_factor(n0, m, 2.0 / m as f64, 2.0 / n0 as f64) - 2.0).abs() < 1e-15);
    }

    #[test]
    fn the_second_moment_is_at_least_the_squared_mean() {
        for rows in [Rows::Gaussian, Rows::Sphere] {
            for (n0, m) in [(2usize, 1usize), (10, 3), (500, 2000)] {
                let (s1, s2) = (0.3, 0.7);
                let c = 1.0 + branch_factor(n0, m, s1, s2);
                assert!(factor_second_moment(n0, m, s1, s2, rows) > c * c);
            }
        }
        // Large widths: the variance of X tends to 4k / n_0 + k^2 (2 / n_0 + 5 / m) for both laws.
        let (n0, m, k) = (1_000_000usize, 1_000_000usize, 0.5);
        let (s1, s2) = (2.0 * k / (m as f64 * n0 as f64), 1.0);
        let var = |rows| factor_second_moment(n0, m, s1, s2, rows) - (1.0 + k) * (1.0 + k);
        let want = 4.0 * k / n0 as f64 + k * k * (2.0 / n0 as f64 + 5.0 / m as f64);
        for rows in [Rows::Gaussian, Rows::Sphere] {
            assert!((var(rows) / want - 1.0).abs() < 1e-4, "{rows:?}");
        }
    }

    #[test]
    fn a_lognormal_mean_sits_below_the_root_mean_square() {
        assert_eq!(lognormal_mean(4.0, 16.0), 2.0);
        let m = lognormal_mean(1.0, 1.0f64.exp());
        assert!((m - (-0.125f64).exp()).abs() < 1e-15);
    }
}
