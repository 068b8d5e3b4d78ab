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
//! The single-input sampler computes in f64 whatever the spec's precision. The Gram sampler
//! runs its O(n B^2) products in the precision `plan::gram_precision` gives (f32 only for f32
//! specs with well-conditioned Gram matrices) and its O(B^3) factorizations and solves in f64
//! (the B x B matrices are formed in the products' precision and widened). Its f32 results
//! differ from its f64 results on the same draws by about what the dense engine's do
//! (docs/theory.md section 11, measured by `examples/gram_precision`).

use faer::Par;
use ndarray::{Array2, ArrayView1, ArrayViewMut1, Axis};
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, ChiSquared, Distribution};

use super::dense::softmax_error_row;
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

/// Softmax of `z` minus a random probability-vector target (the dense engine's head, one row),
/// and `z . (p - t)`.
fn head_error(z: &[f64], rng: &mut TrialRng) -> (Vec<f64>, f64) {
    let c = z.len();
    let (mut e, mut p, mut t) = (vec![0.0f64; c], vec![0.0f64; c], vec![0.0f64; c]);
    softmax_error_row(
        ArrayView1::from(z),
        ArrayViewMut1::from(&mut e[..]),
        &mut p,
        &mut t,
        rng,
    );
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

/// `x . y` with eight partial sums (so it vectorizes; the order is fixed by the length).
#[inline]
fn dot(x: &[f64], y: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f64 = xc.remainder().iter().zip(yc.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in xc.zip(yc) {
        for k in 0..8 {
            acc[k] += a[k] * b[k];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Lower-triangular L with L L^T = g for a symmetric positive semi-definite `g` (B x B).
/// A pivot at or below `1e-12 * max diag` marks a null direction (a dead sample's zero row):
/// its column is set to zero, and [`solve_spd`] treats it as such (a pseudo-inverse there).
pub fn cholesky_psd(g: &Array2<f64>) -> Array2<f64> {
    let n = g.nrows();
    let tol = 1e-12 * g.diag().iter().copied().fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let mut l = Array2::<f64>::zeros((n, n));
    let data = l.as_slice_mut().expect("a new array is standard layout");
    for j in 0..n {
        let row_j = data[j * n..j * n + j].to_vec();
        let d = g[[j, j]] - dot(&row_j, &row_j);
        if d <= tol {
            continue; // column j stays zero
        }
        let d = d.sqrt();
        data[j * n + j] = d;
        for i in j + 1..n {
            let row_i = &mut data[i * n..i * n + j + 1];
            row_i[j] = (g[[i, j]] - dot(&row_i[..j], &row_j)) / d;
        }
    }
    l
}

/// Solve (L L^T) X = rhs for X (B x k), skipping zero pivots (their components are 0).
///
/// A zero pivot j has a zero column in L, so component j of the forward solution reaches no
/// other component: the solves run with a unit pivot there (faer's blocked triangular solves,
/// on one thread) and component j is set to 0 between the two, which is the pseudo-inverse
/// the scalar substitution with skipped pivots gives.
fn solve_spd(l: &Array2<f64>, rhs: &Array2<f64>) -> Array2<f64> {
    let n = l.nrows();
    let null: Vec<usize> = (0..n).filter(|&i| l[[i, i]] == 0.0).collect();
    let mut lu = l.clone();
    for &i in &null {
        lu[[i, i]] = 1.0;
    }
    let mut x = rhs.as_standard_layout().into_owned();
    let (rows, cols) = x.dim();
    // SAFETY: both arrays are standard layout and live for these calls; `x` is not aliased.
    let (lm, mut xm) = unsafe {
        (
            faer::MatRef::<f64>::from_raw_parts(lu.as_ptr(), n, n, n as isize, 1),
            faer::MatMut::<f64>::from_raw_parts_mut(x.as_mut_ptr(), rows, cols, cols as isize, 1),
        )
    };
    faer::linalg::triangular_solve::solve_lower_triangular_in_place(lm, xm.as_mut(), Par::Seq);
    for &i in &null {
        xm.as_mut().row_mut(i).fill(0.0);
    }
    faer::linalg::triangular_solve::solve_upper_triangular_in_place(lm.transpose(), xm.as_mut(), Par::Seq);
    x
}

/// Values per random sub-stream in the Gram sampler's Gaussian matrices (fixed, so the numbers
/// do not depend on whether the chunks run in parallel).
const GAUSSIAN_CHUNK: usize = 1 << 16;

fn standard_normal_matrix<T: Real>(rows: usize, cols: usize, rng: &mut TrialRng, parallel: bool) -> Array2<T> {
    let mut z = Array2::<T>::zeros((rows, cols));
    let data = z.as_slice_mut().expect("a new array is standard layout");
    fill_gaussian_chunks(data, GAUSSIAN_CHUNK, 1.0, rng, parallel);
    z
}

/// Bytes of Gaussian matrices drawn at once by [`StepGaussians`].
const GROUP_BYTES: usize = 32 << 20;

/// The fresh Gaussian matrices of a pass, one per step (`rows x cols[k]`). Every step's key is
/// drawn from the trial stream when the pass starts, in step order; the matrices are then drawn
/// in groups of up to [`GROUP_BYTES`] on all threads of the pool, so a single trial keeps every
/// core busy on the draws. The numbers depend only on the keys, not on the grouping or threads
/// (and an f32 matrix is the f64 one rounded).
struct StepGaussians<T> {
    rows: usize,
    steps: std::vec::IntoIter<(u64, usize)>,
    ready: std::collections::VecDeque<Array2<T>>,
    parallel: bool,
}

impl<T: Real> StepGaussians<T> {
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
    fn take(&mut self) -> Array2<T> {
        if self.ready.is_empty() {
            let mut group = Vec::new();
            let mut bytes = 0;
            while let Some(&(_, cols)) = self.steps.as_slice().first() {
                let size = self.rows * cols * std::mem::size_of::<T>();
                if !group.is_empty() && bytes + size > GROUP_BYTES {
                    break;
                }
                bytes += size;
                group.push(self.steps.next().expect("peeked"));
            }
            let (rows, split) = (self.rows, self.parallel && group.len() == 1);
            let draw = |&(key, cols): &(u64, usize)| {
                standard_normal_matrix::<T>(rows, cols, &mut TrialRng::seed_from_u64(key), split)
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

fn relu<T: Real>(a: &Array2<T>) -> Array2<T> {
    a.mapv(|v| if v > T::zero() { v } else { T::zero() })
}

fn widen<T: Real>(a: &Array2<T>) -> Array2<f64> {
    a.mapv(|v| v.f64())
}

fn narrow<T: Real>(a: &Array2<f64>) -> Array2<T> {
    a.mapv(T::of)
}

/// `x x^T` (B x B) of the rows of `x`, formed in `T` and widened to f64.
fn gram_of<T: Real>(x: &Array2<T>, par: Par) -> Array2<f64> {
    let b = x.nrows();
    let mut g = Array2::<T>::zeros((b, b));
    gemm(T::one(), x.view(), x.t(), g.view_mut(), par);
    widen(&g)
}

/// Size `B^2 n` (multiply-adds of one product at the widest layer) from which a single network's
/// Gram products are split over the pool. Below it the split costs more than it saves
/// (measured, whole trials: (n0, L, m, B) = (4000, 10, 4000, 64), 16M, took 0.047 s on one
/// thread against 0.051 s split, and (1000, 50, 1000, 16) 0.010 s against 0.018 s; above it
/// (500, 10, 4000, 256), 262M, took 0.33 s split against 0.46 s).
const PARALLEL_PRODUCT_MIN: usize = 1 << 25;

/// One network, B inputs, from the B x B Gram recursion: no weight matrix is formed. The
/// B x n products run in `T`, split over the pool as `par` says when they are large enough
/// ([`PARALLEL_PRODUCT_MIN`]); the B x B
/// factorizations and solves in f64.
/// Requires B <= n_0 and B <= every width for a full-rank start (checked by the spec).
pub fn run_trial_gram<T: Real>(
    net: &Network,
    samples: usize,
    input: InputDistribution,
    rng: &mut TrialRng,
    par: Par,
    passes: Passes,
    tick: &mut dyn FnMut() -> Result<(), Cancelled>,
) -> Result<TrialRatios, Cancelled> {
    let (b, depth) = (samples, net.depth());
    let parallel = matches!(par, Par::Rayon(_));
    let widest = net.widths.iter().copied().chain([net.input_dim]).max().unwrap_or(0);
    let par = if b * b * widest >= PARALLEL_PRODUCT_MIN {
        par
    } else {
        Par::Seq
    };
    let mut x = standard_normal_matrix::<T>(b, net.input_dim, rng, parallel);
    if input == InputDistribution::Sphere {
        for mut row in x.rows_mut() {
            let n = row.iter().map(|v| v.f64() * v.f64()).sum::<f64>().sqrt();
            row.mapv_inplace(|v| T::of(v.f64() / n));
        }
    }
    let mut gram = gram_of(&x, par);
    drop(x);
    let mut norm2: Vec<Vec<f64>> = vec![gram.diag().to_vec()];
    let x_norm: Vec<f64> = norm2[0].iter().map(|v| v.sqrt()).collect();
    let mut chol: Vec<Array2<f64>> = Vec::with_capacity(depth);
    let mut pre: Vec<Array2<T>> = Vec::with_capacity(depth); // A^l, B x n_l
    let mut forward = vec![0.0; depth * b];
    let mut draws = StepGaussians::<T>::new(b, net.widths.iter().copied(), rng, parallel);
    for l in 1..=depth {
        tick()?;
        let sigma = net.weight_variance(l).sqrt();
        let z = draws.take();
        let c = cholesky_psd(&gram);
        let mut a = Array2::<T>::zeros((b, net.widths[l - 1]));
        gemm(T::of(sigma), narrow::<T>(&c).view(), z.view(), a.view_mut(), par);
        let h = relu(&a);
        gram = gram_of(&h, par);
        if gram.iter().any(|v| !v.is_finite()) {
            // A squared norm overflowed. The samples are coupled through the factorization of
            // this matrix, so none has a defined ratio from here on (nor any gradient ratio).
            forward[(l - 1) * b..].fill(f64::NAN);
            let gradient = match passes {
                Passes::Both => vec![f64::NAN; depth * b],
                Passes::ForwardOnly => Vec::new(),
            };
            return Ok(TrialRatios { forward, gradient });
        }
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

    // The head in f64, as the single-input sampler's.
    let n_last = net.widths[depth - 1];
    let mut w_out = Array2::<f64>::zeros((net.classes, n_last));
    fill_gaussian(w_out.view_mut(), 1.0, rng);
    let h_last = widen(&relu(&pre[depth - 1]));
    let z = h_last.dot(&w_out.t());
    let mut e = Array2::<f64>::zeros((b, net.classes));
    for (zr, mut er) in z.rows().into_iter().zip(e.rows_mut()) {
        let (err, _) = head_error(zr.as_slice().unwrap_or(&zr.to_vec()), rng);
        er.assign(&ndarray::ArrayView1::from(&err[..]));
    }
    let mut delta64 = e.dot(&w_out);
    delta64.zip_mut_with(&pre[depth - 1], |d, &a| {
        if a <= T::zero() {
            *d = 0.0;
        }
    });
    let d_last: Vec<f64> = delta64.map_axis(Axis(1), |r| r.dot(&r).sqrt()).to_vec();
    let mut delta = narrow::<T>(&delta64);

    let mut gradient = vec![0.0; depth * b];
    let mut draws = StepGaussians::<T>::new(b, (2..=depth).rev().map(|l| net.fan_in(l)), rng, parallel);
    for l in (1..=depth).rev() {
        tick()?;
        let d2: Vec<f64> = delta
            .map_axis(Axis(1), |r| r.iter().map(|v| v.f64() * v.f64()).sum::<f64>())
            .to_vec();
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
        let f = cholesky_psd(&gram_of(&delta, par));
        let y = draws.take();
        let mut m = Array2::<T>::zeros((b, net.fan_in(l)));
        gemm(T::of(sigma), narrow::<T>(&f).view(), y.view(), m.view_mut(), par);
        // T = delta A^T - M H^T (B x B)
        let mut t = Array2::<T>::zeros((b, b));
        gemm(T::one(), delta.view(), a.t(), t.view_mut(), par);
        gemm_add(-T::one(), m.view(), h.t(), t.view_mut(), par);
        // S = T G^{-1} with G = L L^T symmetric: S^T = G^{-1} T^T.
        let s_mat = solve_spd(&chol[l - 1], &widen(&t).t().to_owned()).reversed_axes();
        gemm_add(T::one(), narrow::<T>(&s_mat).view(), h.view(), m.view_mut(), par);
        m.zip_mut_with(&h, |d, &hv| {
            if hv <= T::zero() {
                *d = T::zero();
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

    /// The substitution with skipped pivots that `solve_spd` replaces, as the reference.
    fn scalar_solve(l: &Array2<f64>, rhs: &Array2<f64>) -> Array2<f64> {
        let n = l.nrows();
        let mut x = rhs.clone();
        for mut col in x.columns_mut() {
            for i in 0..n {
                col[i] = if l[[i, i]] == 0.0 {
                    0.0
                } else {
                    (col[i] - (0..i).map(|k| l[[i, k]] * col[k]).sum::<f64>()) / l[[i, i]]
                };
            }
            for i in (0..n).rev() {
                col[i] = if l[[i, i]] == 0.0 {
                    0.0
                } else {
                    (col[i] - (i + 1..n).map(|k| l[[k, i]] * col[k]).sum::<f64>()) / l[[i, i]]
                };
            }
        }
        x
    }

    #[test]
    fn solves_with_dead_samples_match_the_scalar_substitution() {
        // 70 samples (blocked solves), 40 right-hand sides; samples 3, 31 and 69 are dead.
        let dead = [3usize, 31, 69];
        let h = Array2::from_shape_fn((70, 90), |(i, j)| {
            if dead.contains(&i) {
                0.0
            } else {
                (((i * 37 + j * 11) % 101) as f64 / 50.0 - 1.0).max(0.0)
            }
        });
        let g = h.dot(&h.t());
        let l = cholesky_psd(&g);
        assert!((l.dot(&l.t()) - &g).iter().all(|v| v.abs() < 1e-10));
        let rhs = Array2::from_shape_fn((70, 40), |(i, j)| ((i * 3 + j * 7) % 13) as f64 - 6.0);
        let (fast, slow) = (solve_spd(&l, &rhs), scalar_solve(&l, &rhs));
        let scale = slow.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!((&fast - &slow).iter().all(|v| v.abs() <= 1e-9 * scale), "max {scale}");
        for &i in &dead {
            assert!(fast.row(i).iter().all(|v| *v == 0.0));
        }
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
