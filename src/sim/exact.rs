//! Exact samplers: the same joint law of forward and gradient ratios as the dense engine, for
//! Gaussian weights, without forming any weight matrix (docs/theory.md section 5, derived).
//!
//! * One input per network ([`run_trial_single`]): O(L + C) per network. Forward:
//!   `||h^l||^2 = ||h^{l-1}||^2 sigma_l^2 chi^2_{K_l}`, `K_l ~ Bin(n_l, 1/2)`. Backward
//!   (derived here): conditional on the forward pass, `W^l = a h^T/||h||^2 + Z (I - h h^T/||h||^2)`
//!   with a fresh Gaussian Z, and `a^l . delta^l = z . (p - t) =: s` is the same at every layer
//!   (`a^l . delta^l = h^l . W^{l+1 T} delta^{l+1} = a^{l+1} . delta^{l+1}`), so
//!   `||delta^{l-1}||^2 = s^2/||h^{l-1}||^2 + sigma_l^2 ||delta^l||^2 chi^2_{K_{l-1} - 1}` and
//!   `||delta^L||^2 = s^2/||h^L||^2 + ||p - t||^2 chi^2_{K_L - 1}`.
//! * B inputs per network ([`run_trial_gram`]): O(n B^2 + B^3) per layer. Columns of
//!   A^l = H^{l-1} W^T are i.i.d. N(0, sigma^2 G) with G = H H^T (B x B), so A^l = sigma chol(G) Z.
//!   Backward: `W = A^T G^{-1} H + Z (I - H^T G^{-1} H)`, hence
//!   `delta W = M + (delta A^T - M H^T) G^{-1} H` with `M = delta Z = sigma F Y`,
//!   `F F^T = delta delta^T`, Y standard normal (B x n_{l-1}).
//!
//! Both compute in f64 whatever the spec's precision.

use faer::Par;
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, ChiSquared, Distribution};

use super::gemm::{gemm, gemm_add};
use super::real::Real;
use super::rng::TrialRng;
use super::weights::{fill_gaussian, fill_gaussian_chunks};
use super::{Cancelled, Passes, TrialRatios};
use crate::spec::{InputDistribution, Network};

/// `chi^2_k` draw, with chi^2_0 = 0.
fn chi2(k: u64, rng: &mut TrialRng) -> f64 {
    if k == 0 {
        return 0.0;
    }
    ChiSquared::new(k as f64).map_or(f64::NAN, |d| d.sample(rng))
}

/// `Binomial(n, 1/2)` draw.
fn half_binomial(n: u64, rng: &mut TrialRng) -> u64 {
    Binomial::new(n, 0.5).map_or(0, |d| d.sample(rng))
}

/// Softmax of `z` minus a random probability-vector target, and `z . (p - t)`.
fn head_error(z: &[f64], rng: &mut TrialRng) -> (Vec<f64>, f64) {
    let zmax = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let p: Vec<f64> = z.iter().map(|v| (v - zmax).exp()).collect();
    let psum: f64 = p.iter().sum();
    let t: Vec<f64> = (0..z.len()).map(|_| rng.random::<f64>()).collect();
    let tsum: f64 = t.iter().sum();
    let e: Vec<f64> = p.iter().zip(&t).map(|(p, t)| p / psum - t / tsum).collect();
    let s = z.iter().zip(&e).map(|(z, e)| z * e).sum();
    (e, s)
}

/// One network, one input: O(L + C) draws (the law above).
pub fn run_trial_single(net: &Network, input: InputDistribution, rng: &mut TrialRng) -> TrialRatios {
    let depth = net.depth();
    // Forward ratios do not depend on x, but the head's softmax sees the scale of
    // z = W_out h^L, so ||x|| is drawn from its law: chi^2_{n0} for Gaussian inputs.
    let x2 = match input {
        InputDistribution::Gaussian => chi2(net.input_dim as u64, rng),
        InputDistribution::Sphere => 1.0,
    };
    let mut norm2 = vec![x2; depth + 1];
    let mut active = vec![0u64; depth + 1];
    active[0] = net.input_dim as u64;
    let mut forward = vec![0.0; depth];
    for l in 1..=depth {
        // After a dead layer (h = 0) every pre-activation is 0: no unit is active.
        let k = if norm2[l - 1] > 0.0 {
            half_binomial(net.widths[l - 1] as u64, rng)
        } else {
            0
        };
        active[l] = k;
        norm2[l] = norm2[l - 1] * net.weight_variance(l) * chi2(k, rng);
        forward[l - 1] = (norm2[l] / x2).sqrt();
    }
    let z: Vec<f64> = (0..net.classes)
        .map(|_| norm2[depth].sqrt() * f64::standard_normal(rng))
        .collect();
    let (e, s) = head_error(&z, rng);
    let mut gradient = vec![f64::NAN; depth];
    if active[depth] == 0 {
        return TrialRatios { forward, gradient }; // a dead network has no output error
    }
    let e2: f64 = e.iter().map(|v| v * v).sum();
    // d2[l] = ||delta^l||^2, l = 1..L (index l).
    let mut d2 = vec![0.0f64; depth + 1];
    d2[depth] = s * s / norm2[depth] + e2 * chi2(active[depth] - 1, rng);
    for l in (2..=depth).rev() {
        d2[l - 1] = s * s / norm2[l - 1] + net.weight_variance(l) * d2[l] * chi2(active[l - 1] - 1, rng);
    }
    for l in 1..=depth {
        gradient[l - 1] = (d2[l] * norm2[l - 1] / (d2[depth] * x2)).sqrt();
    }
    TrialRatios { forward, gradient }
}

/// Lower-triangular L with L L^T = g for a symmetric positive semi-definite `g` (B x B).
/// A pivot at or below `1e-12 * max diag` marks a null direction (a dead sample's zero row):
/// its column is set to zero, and [`solve_spd`] treats it as such (a pseudo-inverse there).
pub fn cholesky_psd(g: &Array2<f64>) -> Array2<f64> {
    let n = g.nrows();
    let tol = 1e-12 * g.diag().iter().copied().fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let mut l = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        let mut d = g[[j, j]];
        for k in 0..j {
            d -= l[[j, k]] * l[[j, k]];
        }
        if d <= tol {
            continue; // column j stays zero
        }
        let d = d.sqrt();
        l[[j, j]] = d;
        for i in j + 1..n {
            let mut v = g[[i, j]];
            for k in 0..j {
                v -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = v / d;
        }
    }
    l
}

/// Solve (L L^T) X = rhs for X (B x k), skipping zero pivots (their components are 0).
fn solve_spd(l: &Array2<f64>, rhs: &Array2<f64>) -> Array2<f64> {
    let n = l.nrows();
    let mut x = rhs.clone();
    for mut col in x.columns_mut() {
        // forward: L y = b
        for i in 0..n {
            if l[[i, i]] == 0.0 {
                col[i] = 0.0;
                continue;
            }
            let mut v = col[i];
            for k in 0..i {
                v -= l[[i, k]] * col[k];
            }
            col[i] = v / l[[i, i]];
        }
        // backward: L^T x = y
        for i in (0..n).rev() {
            if l[[i, i]] == 0.0 {
                col[i] = 0.0;
                continue;
            }
            let mut v = col[i];
            for k in i + 1..n {
                v -= l[[k, i]] * col[k];
            }
            col[i] = v / l[[i, i]];
        }
    }
    x
}

/// Values per random sub-stream in the Gram sampler's Gaussian matrices (fixed, so the numbers
/// do not depend on whether the chunks run in parallel).
const GAUSSIAN_CHUNK: usize = 1 << 16;

fn standard_normal_matrix(rows: usize, cols: usize, rng: &mut TrialRng, parallel: bool) -> Array2<f64> {
    let mut z = Array2::<f64>::zeros((rows, cols));
    let data = z.as_slice_mut().expect("a new array is standard layout");
    fill_gaussian_chunks(data, GAUSSIAN_CHUNK, 1.0, rng, parallel);
    z
}

/// Bytes of Gaussian matrices drawn at once by [`StepGaussians`].
const GROUP_BYTES: usize = 32 << 20;

/// The fresh Gaussian matrices of a pass, one per step (`rows x cols[k]`). Every step's key is
/// drawn from the trial stream when the pass starts, in step order; the matrices are then drawn
/// in groups of up to [`GROUP_BYTES`] on all threads of the pool, so a single trial keeps every
/// core busy on the draws. The numbers depend only on the keys, not on the grouping or threads.
struct StepGaussians {
    rows: usize,
    steps: std::vec::IntoIter<(u64, usize)>,
    ready: std::collections::VecDeque<Array2<f64>>,
    parallel: bool,
}

impl StepGaussians {
    fn new(rows: usize, cols: impl IntoIterator<Item = usize>, rng: &mut TrialRng, parallel: bool) -> Self {
        let steps: Vec<(u64, usize)> = cols.into_iter().map(|c| (rng.random(), c)).collect();
        StepGaussians {
            rows,
            steps: steps.into_iter(),
            ready: Default::default(),
            parallel,
        }
    }

    /// The next step's matrix.
    fn take(&mut self) -> Array2<f64> {
        if self.ready.is_empty() {
            let mut group = Vec::new();
            let mut bytes = 0;
            while let Some(&(_, cols)) = self.steps.as_slice().first() {
                let size = self.rows * cols * std::mem::size_of::<f64>();
                if !group.is_empty() && bytes + size > GROUP_BYTES {
                    break;
                }
                bytes += size;
                group.push(self.steps.next().expect("peeked"));
            }
            let (rows, split) = (self.rows, self.parallel && group.len() == 1);
            let draw = |&(key, cols): &(u64, usize)| {
                standard_normal_matrix(rows, cols, &mut TrialRng::seed_from_u64(key), split)
            };
            if self.parallel {
                use rayon::prelude::*;
                self.ready.extend(group.par_iter().map(draw).collect::<Vec<_>>());
            } else {
                self.ready.extend(group.iter().map(draw));
            }
        }
        self.ready.pop_front().expect("a step was left to draw")
    }
}

fn relu(a: &Array2<f64>) -> Array2<f64> {
    a.mapv(|v| v.max(0.0))
}

/// One network, B inputs, from the B x B Gram recursion: no weight matrix is formed.
/// Requires B <= n_0 and B <= every width for a full-rank start (checked by the spec).
pub fn run_trial_gram(
    net: &Network,
    samples: usize,
    input: InputDistribution,
    rng: &mut TrialRng,
    parallel: bool,
    passes: Passes,
    tick: &mut dyn FnMut() -> Result<(), Cancelled>,
) -> Result<TrialRatios, Cancelled> {
    let (b, depth) = (samples, net.depth());
    let mut x = standard_normal_matrix(b, net.input_dim, rng, parallel);
    if input == InputDistribution::Sphere {
        for mut row in x.rows_mut() {
            let n = row.dot(&row).sqrt();
            row /= n;
        }
    }
    let mut gram = x.dot(&x.t());
    drop(x);
    let mut norm2: Vec<Vec<f64>> = vec![gram.diag().to_vec()];
    let x_norm: Vec<f64> = norm2[0].iter().map(|v| v.sqrt()).collect();
    let mut chol: Vec<Array2<f64>> = Vec::with_capacity(depth);
    let mut pre: Vec<Array2<f64>> = Vec::with_capacity(depth); // A^l, B x n_l
    let mut forward = vec![0.0; depth * b];
    let mut draws = StepGaussians::new(b, net.widths.iter().copied(), rng, parallel);
    for l in 1..=depth {
        tick()?;
        let sigma = net.weight_variance(l).sqrt();
        let z = draws.take();
        let c = cholesky_psd(&gram);
        let mut a = Array2::<f64>::zeros((b, net.widths[l - 1]));
        gemm(sigma, c.view(), z.view(), a.view_mut(), Par::Seq);
        let h = relu(&a);
        gemm(1.0, h.view(), h.t(), gram.view_mut(), Par::Seq);
        let n2 = gram.diag().to_vec();
        for s in 0..b {
            forward[(l - 1) * b + s] = n2[s].sqrt() / x_norm[s];
        }
        norm2.push(n2);
        if passes == Passes::Both {
            chol.push(c);
            pre.push(a);
        }
    }
    if passes == Passes::ForwardOnly {
        return Ok(TrialRatios {
            forward,
            gradient: Vec::new(),
        });
    }

    let n_last = net.widths[depth - 1];
    let mut w_out = Array2::<f64>::zeros((net.classes, n_last));
    fill_gaussian(w_out.view_mut(), 1.0, rng);
    let h_last = relu(&pre[depth - 1]);
    let z = h_last.dot(&w_out.t());
    let mut e = Array2::<f64>::zeros((b, net.classes));
    for (zr, mut er) in z.rows().into_iter().zip(e.rows_mut()) {
        let (err, _) = head_error(zr.as_slice().unwrap_or(&zr.to_vec()), rng);
        er.assign(&ndarray::ArrayView1::from(&err[..]));
    }
    let mut delta = e.dot(&w_out);
    delta.zip_mut_with(&pre[depth - 1], |d, &a| {
        if a <= 0.0 {
            *d = 0.0;
        }
    });
    let d_last: Vec<f64> = delta.map_axis(Axis(1), |r| r.dot(&r).sqrt()).to_vec();

    let mut gradient = vec![0.0; depth * b];
    let mut draws = StepGaussians::new(b, (2..=depth).rev().map(|l| net.fan_in(l)), rng, parallel);
    for l in (1..=depth).rev() {
        tick()?;
        let d2: Vec<f64> = delta.map_axis(Axis(1), |r| r.dot(&r)).to_vec();
        for s in 0..b {
            gradient[(l - 1) * b + s] = (d2[s] * norm2[l - 1][s]).sqrt() / (x_norm[s] * d_last[s]);
        }
        if l == 1 {
            break;
        }
        // delta^{l-1} = mask * (delta W^l) with W^l from its law given A^l = H W^T.
        let sigma = net.weight_variance(l).sqrt();
        let a = &pre[l - 1];
        let h = relu(&pre[l - 2]);
        let mut dd = Array2::<f64>::zeros((b, b));
        gemm(1.0, delta.view(), delta.t(), dd.view_mut(), Par::Seq);
        let f = cholesky_psd(&dd);
        let y = draws.take();
        let mut m = Array2::<f64>::zeros((b, net.fan_in(l)));
        gemm(sigma, f.view(), y.view(), m.view_mut(), Par::Seq);
        // T = delta A^T - M H^T (B x B)
        let mut t = Array2::<f64>::zeros((b, b));
        gemm(1.0, delta.view(), a.t(), t.view_mut(), Par::Seq);
        gemm_add(-1.0, m.view(), h.t(), t.view_mut(), Par::Seq);
        // S = T G^{-1} with G = L L^T symmetric: S^T = G^{-1} T^T.
        let s_mat = solve_spd(&chol[l - 1], &t.t().to_owned()).reversed_axes();
        gemm_add(1.0, s_mat.view(), h.view(), m.view_mut(), Par::Seq);
        m.zip_mut_with(&h, |d, &hv| {
            if hv <= 0.0 {
                *d = 0.0;
            }
        });
        delta = m;
        pre.pop();
    }
    Ok(TrialRatios { forward, gradient })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_and_solve_roundtrip() {
        let g = ndarray::arr2(&[[4.0, 2.0, 0.6], [2.0, 5.0, 1.0], [0.6, 1.0, 3.0]]);
        let l = cholesky_psd(&g);
        let back = l.dot(&l.t());
        assert!((&back - &g).iter().all(|v| v.abs() < 1e-12));
        let rhs = ndarray::arr2(&[[1.0], [2.0], [3.0]]);
        let x = solve_spd(&l, &rhs);
        assert!((g.dot(&x) - &rhs).iter().all(|v| v.abs() < 1e-12));
    }

    #[test]
    fn psd_cholesky_skips_a_dead_sample() {
        // Sample 1 is dead (zero row and column): the factor has a zero column there.
        let g = ndarray::arr2(&[[2.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 2.0]]);
        let l = cholesky_psd(&g);
        assert!((l.dot(&l.t()) - &g).iter().all(|v| v.abs() < 1e-12));
        assert_eq!(l.column(1).iter().map(|v| v.abs()).sum::<f64>(), 0.0);
    }
}
