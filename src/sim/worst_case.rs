//! The worst case over the unit sphere of inputs (`kind: "worst_case"`): for one network, per
//! layer l, the unit inputs x that stretch and shrink ||h^l(x)|| the most, found by projected
//! gradient ascent and descent on the sphere, beside the extremes over random inputs and a
//! certified upper bound on sup ||h^l(x)|| / ||x|| (the product of the layers' spectral norms).
//!
//! The network has no biases, so h^l is positively homogeneous: ||h^l(x)|| / ||x|| depends only on
//! the direction of x, and on the piece of the sphere where the ReLU pattern is fixed,
//! ||h^l(x)||^2 = x^T J^T J x with J = D_l W^l ... D_1 W^1. Its gradient 2 J^T J x is exact (one
//! forward and one backward pass), and f(x) = ||h^l(x)||^2 is continuously differentiable
//! (ReLU(t)^2 is), so the search follows it across pattern boundaries.
//!
//! Search (per layer and direction, all starts at once): from x on the sphere, move along the
//! tangent part t of the gradient by an angle theta to cos(theta) x + sin(theta) t/||t||
//! (ascent; minus t for descent), keep the move only if the ratio improves (so the value of a
//! start never gets worse), double theta after a kept move and halve it after a refused one.
//! Ascent ends with a polish: moves to the normalized gradient (one power-iteration step of the
//! current pattern's J^T J), kept only when they improve. The starts are `restarts` Gaussian
//! directions, the random input with the largest (ascent) or smallest (descent) ratio at that
//! layer, and (from layer 2 on) the input the same search reached at the layer before (an input
//! that kills layer l - 1 kills layer l): since a start never gets worse, the extreme found is at least as extreme as every random
//! input's (exactly, in floating point: every ratio, random or searched, goes through the same
//! row-wise evaluation, [`ratios_and_gradients`] / [`forward`], whose result for a row does not
//! depend on the other rows of the block).
//!
//! Spectral norms: for A = W W^T or W^T W (the smaller, d x d), sigma_max(W)^2 = lambda_max(A)
//! <= (tr A^p)^(1/p) for every p (the trace sums the p-th powers of the nonnegative eigenvalues),
//! with an overshoot of at most d^(1/p). p = 2^k by repeated squaring with trace normalization
//! (B_0 = A / tr A, B_{k+1} = B_k^2 / tr B_k^2, and tr B_k^2 = ||B_k||_F^2 for symmetric B_k);
//! the lower bound is the Rayleigh quotient sqrt(v^T A v) of a unit v from power iteration,
//! refined with v = B_k v. Squaring stops when upper / lower <= 1 + [`SPECTRAL_TOLERANCE`] or
//! after [`MAX_SQUARINGS`]; the ratio is reported. The upper bound is exact in exact arithmetic;
//! it is computed in f64 and multiplied by 1 + [`ROUNDING_MARGIN`], a margin for rounding that is
//! generous (the relative rounding of these sums is about d x 1e-16) but not a proven error bound.
//!
//! Then ||h^l(x)|| <= ||W^l h^{l-1}(x)|| <= sigma_max(W^l) ||h^{l-1}(x)||, so the product of the
//! upper bounds of layers 1..l bounds sup ||h^l(x)|| / ||x||: the true supremum lies between the
//! maximum found and that product.
//!
//! Randomness: each network's stream (`trial_rng(point seed, trial)`) draws the random inputs
//! first (one key, as the dense engine draws its inputs), then one key per layer for its weights
//! (drawn as the dense engine draws them: a `worst_case` network is the `norms` network of the
//! same seed and trial), then the search starts (one key); each layer's power-iteration start is drawn from its own
//! stream keyed by splitmix64(the layer's key). All computation is in f64.

use faer::Par;
use ndarray::Array2;
use rand::{Rng, SeedableRng};

use super::gemm::gemm;
use super::rng::{splitmix64, trial_rng, TrialRng};
use super::weights::{draw_layer, fill_gaussian};
use super::Cancelled;
use super::Control;
use crate::spec::{Network, WorstCase};

/// Squaring stops once the spectral norm's upper bound is within this factor (1 + tolerance) of
/// its lower bound.
pub const SPECTRAL_TOLERANCE: f64 = 1e-3;
/// At most this many squarings per layer (p = 2^(MAX_SQUARINGS + 1) at the last trace).
pub const MAX_SQUARINGS: usize = 16;
/// Power-iteration steps for the first lower bound of each spectral norm.
pub const POWER_ITERATIONS: usize = 30;
/// Relative margin added to every spectral upper bound for floating-point rounding.
pub const ROUNDING_MARGIN: f64 = 1e-10;
/// Polishing moves after an ascent (each one forward and one backward pass).
pub const POLISH_STEPS: usize = 20;
/// Random inputs pushed through the network at once.
const SAMPLE_BLOCK: usize = 64;
/// First angle (radians) of every start's moves.
const INITIAL_ANGLE: f64 = 0.25;
/// A start stops when its angle falls below this (radians).
const SMALLEST_ANGLE: f64 = 1e-12;

/// One layer's extremes in one network. Ratios are ||h^l(x)|| / ||x||.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerExtremes {
    /// The largest ratio found by the search (a lower bound on the supremum over the sphere).
    pub found_max: f64,
    /// The smallest ratio found by the search (an upper bound on the infimum).
    pub found_min: f64,
    /// The largest ratio over the random inputs.
    pub random_max: f64,
    /// The smallest ratio over the random inputs.
    pub random_min: f64,
    /// Lower bound on the spectral norm of W^l (a Rayleigh quotient).
    pub sigma_lo: f64,
    /// Upper bound on the spectral norm of W^l ((tr A^p)^(1/2p), with the rounding margin).
    pub sigma_hi: f64,
}

impl LayerExtremes {
    /// Values per layer in [`LayerExtremes::to_array`].
    pub const FIELDS: usize = 6;

    pub fn to_array(&self) -> [f64; Self::FIELDS] {
        [
            self.found_max,
            self.found_min,
            self.random_max,
            self.random_min,
            self.sigma_lo,
            self.sigma_hi,
        ]
    }

    pub fn from_slice(v: &[f64]) -> LayerExtremes {
        LayerExtremes {
            found_max: v[0],
            found_min: v[1],
            random_max: v[2],
            random_min: v[3],
            sigma_lo: v[4],
            sigma_hi: v[5],
        }
    }
}

/// Sum of squares with eight partial sums (the order is fixed by the length alone).
fn norm2(v: &[f64]) -> f64 {
    dot(v, v)
}

/// Dot product with eight partial sums (the order is fixed by the length alone).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in (&mut ac).zip(&mut bc) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    for ((x, y), s) in ac.remainder().iter().zip(bc.remainder()).zip(acc.iter_mut()) {
        *s += x * y;
    }
    acc.iter().sum()
}

/// Activations of `rows` inputs `x` (rows x n_0, row-major) through layers 1..=`upto`:
/// entry k holds H^k (rows x n_k), entry 0 the inputs. Row r of every H^k depends only on row r
/// of `x` (the sums run over the previous layer in index order, skipping zeros), whatever the
/// other rows are.
fn forward(wt: &[Array2<f64>], x: &[f64], rows: usize, upto: usize) -> Vec<Vec<f64>> {
    let mut acts = Vec::with_capacity(upto + 1);
    acts.push(x.to_vec());
    for w in &wt[..upto] {
        let (n_in, n_out) = w.dim();
        let ws = w.as_slice().expect("standard layout");
        let prev = acts.last().expect("the inputs");
        let mut out = vec![0.0f64; rows * n_out];
        for j in 0..n_in {
            let wrow = &ws[j * n_out..(j + 1) * n_out];
            for r in 0..rows {
                let a = prev[r * n_in + j];
                if a != 0.0 {
                    for (o, w) in out[r * n_out..(r + 1) * n_out].iter_mut().zip(wrow) {
                        *o += a * w;
                    }
                }
            }
        }
        for v in out.iter_mut() {
            if v.is_nan() || *v <= 0.0 {
                *v = 0.0;
            }
        }
        acts.push(out);
    }
    acts
}

/// For each of `rows` inputs (rows x n_0): the ratio ||h^l(x)|| / ||x|| and the gradient of
/// ||h^l(x)||^2 with respect to x (rows x n_0).
fn ratios_and_gradients(wt: &[Array2<f64>], x: &[f64], rows: usize, layer: usize) -> (Vec<f64>, Vec<f64>) {
    let n0 = wt[0].nrows();
    let acts = forward(wt, x, rows, layer);
    let ratios = ratios_of(&acts[layer], x, rows);
    let mut d: Vec<f64> = acts[layer].iter().map(|v| 2.0 * v).collect();
    for k in (1..=layer).rev() {
        let (n_in, n_out) = wt[k - 1].dim();
        let ws = wt[k - 1].as_slice().expect("standard layout");
        let mut prev = vec![0.0f64; rows * n_in];
        for j in 0..n_in {
            let wrow = &ws[j * n_out..(j + 1) * n_out];
            for r in 0..rows {
                prev[r * n_in + j] = dot(wrow, &d[r * n_out..(r + 1) * n_out]);
            }
        }
        if k > 1 {
            // The ReLU derivative of layer k - 1: on where its activation is positive.
            for (p, a) in prev.iter_mut().zip(&acts[k - 1]) {
                if a.is_nan() || *a <= 0.0 {
                    *p = 0.0;
                }
            }
        }
        d = prev;
    }
    debug_assert_eq!(d.len(), rows * n0);
    (ratios, d)
}

/// ||h|| / ||x|| per row.
fn ratios_of(h: &[f64], x: &[f64], rows: usize) -> Vec<f64> {
    let (nh, nx) = (h.len() / rows.max(1), x.len() / rows.max(1));
    (0..rows)
        .map(|r| norm2(&h[r * nh..(r + 1) * nh]).sqrt() / norm2(&x[r * nx..(r + 1) * nx]).sqrt())
        .collect()
}

/// Scale every row of `x` (rows of `n` entries) to unit norm.
fn normalize_rows(x: &mut [f64], n: usize) {
    for row in x.chunks_mut(n.max(1)) {
        let norm = norm2(row).sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
}

/// The extreme ratio at layer `layer` found from the unit rows `starts` (k x n_0): the largest
/// when `maximize`, else the smallest, and the input that reached it. Never worse than the
/// starts' own ratios.
fn search(
    wt: &[Array2<f64>],
    layer: usize,
    starts: &[f64],
    steps: usize,
    maximize: bool,
    cancelled: &dyn Fn() -> bool,
) -> Result<(f64, Vec<f64>), Cancelled> {
    let n0 = wt[0].nrows();
    let k = starts.len() / n0;
    let mut x = starts.to_vec();
    let (mut value, mut grad) = ratios_and_gradients(wt, &x, k, layer);
    let better = |new: f64, old: f64| if maximize { new > old } else { new < old };
    let sign = if maximize { 1.0 } else { -1.0 };
    let mut angle = vec![INITIAL_ANGLE; k];
    let mut active = vec![true; k];
    for _ in 0..steps {
        if cancelled() {
            return Err(Cancelled);
        }
        let mut moving = Vec::with_capacity(k);
        let mut cand = Vec::with_capacity(k * n0);
        for r in 0..k {
            if !active[r] {
                continue;
            }
            let (xr, gr) = (&x[r * n0..(r + 1) * n0], &grad[r * n0..(r + 1) * n0]);
            let xx = norm2(xr);
            let along = dot(gr, xr) / xx;
            let t: Vec<f64> = gr.iter().zip(xr).map(|(g, x)| g - along * x).collect();
            let tn = norm2(&t).sqrt();
            let gn = norm2(gr).sqrt();
            // A stationary point (or a dead input: f = 0 and no gradient) ends the start.
            let moving_on = gn > 0.0 && tn > 1e-14 * gn;
            if !moving_on {
                active[r] = false;
                continue;
            }
            let (s, c) = angle[r].sin_cos();
            let xn = xx.sqrt();
            let start = cand.len();
            cand.extend(xr.iter().zip(&t).map(|(x, t)| c * x / xn + s * sign * t / tn));
            normalize_rows(&mut cand[start..], n0);
            moving.push(r);
        }
        if moving.is_empty() {
            break;
        }
        let (cv, cg) = ratios_and_gradients(wt, &cand, moving.len(), layer);
        for (i, &r) in moving.iter().enumerate() {
            if better(cv[i], value[r]) {
                value[r] = cv[i];
                x[r * n0..(r + 1) * n0].copy_from_slice(&cand[i * n0..(i + 1) * n0]);
                grad[r * n0..(r + 1) * n0].copy_from_slice(&cg[i * n0..(i + 1) * n0]);
                angle[r] = (2.0 * angle[r]).min(std::f64::consts::FRAC_PI_2);
            } else {
                angle[r] *= 0.5;
                if angle[r] < SMALLEST_ANGLE {
                    active[r] = false;
                }
            }
        }
    }
    if maximize {
        // Polish: power-iteration steps of the current pattern, x -> J^T J x / ||J^T J x||.
        for _ in 0..POLISH_STEPS {
            if cancelled() {
                return Err(Cancelled);
            }
            let mut moving = Vec::with_capacity(k);
            let mut cand = Vec::with_capacity(k * n0);
            for r in 0..k {
                let gr = &grad[r * n0..(r + 1) * n0];
                if norm2(gr) > 0.0 {
                    let start = cand.len();
                    cand.extend_from_slice(gr);
                    normalize_rows(&mut cand[start..], n0);
                    moving.push(r);
                }
            }
            if moving.is_empty() {
                break;
            }
            let (cv, cg) = ratios_and_gradients(wt, &cand, moving.len(), layer);
            let mut improved = false;
            for (i, &r) in moving.iter().enumerate() {
                if better(cv[i], value[r]) {
                    improved = true;
                    value[r] = cv[i];
                    x[r * n0..(r + 1) * n0].copy_from_slice(&cand[i * n0..(i + 1) * n0]);
                    grad[r * n0..(r + 1) * n0].copy_from_slice(&cg[i * n0..(i + 1) * n0]);
                }
            }
            if !improved {
                break;
            }
        }
    }
    let mut best = 0;
    for r in 1..k {
        if better(value[r], value[best]) {
            best = r;
        }
    }
    Ok((value[best], x[best * n0..(best + 1) * n0].to_vec()))
}

/// Lower and upper bounds on the spectral norm of `w` (o x i); `v0` seeds the power iteration
/// (length min(o, i)).
pub fn spectral_bounds(w: &Array2<f64>, v0: &[f64]) -> (f64, f64) {
    let (o, i) = w.dim();
    let d = o.min(i);
    let mut a = Array2::<f64>::zeros((d, d));
    if o <= i {
        gemm(1.0, w.view(), w.t(), a.view_mut(), Par::Seq);
    } else {
        gemm(1.0, w.t(), w.view(), a.view_mut(), Par::Seq);
    }
    // Symmetrize (the two triangles of a product may differ in the last bit).
    for r in 0..d {
        for c in 0..r {
            let m = 0.5 * (a[[r, c]] + a[[c, r]]);
            a[[r, c]] = m;
            a[[c, r]] = m;
        }
    }
    let trace: f64 = (0..d).map(|r| a[[r, r]]).sum();
    if trace.is_nan() || trace <= 0.0 {
        return (0.0, 0.0);
    }
    let rayleigh = |v: &[f64]| -> f64 {
        let nv = norm2(v);
        if nv.is_nan() || nv <= 0.0 {
            return 0.0;
        }
        let av: Vec<f64> = a
            .rows()
            .into_iter()
            .map(|row| dot(row.as_slice().expect("row"), v))
            .collect();
        (dot(v, &av) / nv).max(0.0).sqrt()
    };
    let mut v = v0.to_vec();
    for _ in 0..POWER_ITERATIONS {
        let av: Vec<f64> = a
            .rows()
            .into_iter()
            .map(|row| dot(row.as_slice().expect("row"), &v))
            .collect();
        let n = norm2(&av).sqrt();
        if n.is_nan() || n <= 0.0 {
            break;
        }
        v = av.into_iter().map(|x| x / n).collect();
    }
    let mut lo = rayleigh(&v);
    // A^p = exp(log_c) B with tr B = 1; p doubles with every squaring.
    let mut b = a.mapv(|x| x / trace);
    let mut log_c = trace.ln();
    let mut p = 1.0f64;
    let mut next = Array2::<f64>::zeros((d, d));
    let mut hi = f64::INFINITY;
    for _ in 0..=MAX_SQUARINGS {
        // tr A^(2p) = exp(2 log_c) ||B||_F^2.
        let fro2 = norm2(b.as_slice().expect("standard layout"));
        let log_trace = 2.0 * log_c + fro2.ln();
        hi = hi.min((log_trace / (4.0 * p)).exp());
        // A better lower bound: B (close to a projection on the top eigenvectors) applied to v.
        let bv: Vec<f64> = b
            .rows()
            .into_iter()
            .map(|row| dot(row.as_slice().expect("row"), &v))
            .collect();
        let refined = rayleigh(&bv);
        if refined > lo {
            lo = refined;
            let n = norm2(&bv).sqrt();
            v = bv.into_iter().map(|x| x / n).collect();
        }
        if hi <= lo * (1.0 + SPECTRAL_TOLERANCE) {
            break;
        }
        gemm(1.0 / fro2, b.view(), b.view(), next.view_mut(), Par::Seq);
        std::mem::swap(&mut b, &mut next);
        for r in 0..d {
            for c in 0..r {
                let m = 0.5 * (b[[r, c]] + b[[c, r]]);
                b[[r, c]] = m;
                b[[c, r]] = m;
            }
        }
        log_c = 2.0 * log_c + fro2.ln();
        p *= 2.0;
    }
    (lo, hi * (1.0 + ROUNDING_MARGIN))
}

/// The weight matrices W^1..W^L (n_l x n_{l-1}) of network `trial` of the stream of `seed`, as
/// [`run_network`] draws them.
pub fn draw_weights(net: &Network, seed: u64, trial: u64) -> Vec<Array2<f64>> {
    let mut rng = trial_rng(seed, trial);
    // The random inputs' key comes first.
    let _: u64 = rng.random();
    let mut scratch = Array2::<f64>::zeros((0, 0));
    (1..=net.depth())
        .map(|l| {
            let key: u64 = rng.random();
            let mut w = Array2::<f64>::zeros((0, 0));
            draw_layer(
                &net.weights,
                net.fan_in(l),
                net.widths[l - 1],
                &mut TrialRng::seed_from_u64(key),
                &mut w,
                &mut scratch,
                false,
            );
            w
        })
        .collect()
}

/// Progress units of one network: its draw with the random inputs and spectral norms, then one
/// per (layer, direction) search.
pub fn network_progress_units(depth: usize) -> u64 {
    1 + 2 * depth as u64
}

/// One network of a grid point: network `trial` of the stream of `seed`, with `samples` random
/// inputs. `tick` is called after each phase (progress); `cancelled` is polled at every step.
pub fn run_network(
    net: &Network,
    search_spec: &WorstCase,
    samples: usize,
    seed: u64,
    trial: u64,
    tick: &mut dyn FnMut() -> Result<(), Cancelled>,
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<LayerExtremes>, Cancelled> {
    let depth = net.depth();
    let n0 = net.input_dim;
    let mut rng = trial_rng(seed, trial);
    // Random inputs: Gaussian rows (as the dense engine draws them), scaled to the unit sphere.
    let mut inputs = Array2::<f64>::zeros((samples, n0));
    fill_gaussian(inputs.view_mut(), 1.0, &mut rng);
    let mut inputs = inputs.into_raw_vec_and_offset().0;
    normalize_rows(&mut inputs, n0);
    // The layers, kept transposed (n_{l-1} x n_l) for the row-wise passes.
    let mut wt: Vec<Array2<f64>> = Vec::with_capacity(depth);
    let mut w = Array2::<f64>::zeros((0, 0));
    let mut scratch = Array2::<f64>::zeros((0, 0));
    let mut sigma = Vec::with_capacity(depth);
    for l in 1..=depth {
        if cancelled() {
            return Err(Cancelled);
        }
        let key: u64 = rng.random();
        draw_layer(
            &net.weights,
            net.fan_in(l),
            net.widths[l - 1],
            &mut TrialRng::seed_from_u64(key),
            &mut w,
            &mut scratch,
            false,
        );
        // The power iteration's start: its own stream, keyed by the layer's key.
        let d = w.nrows().min(w.ncols());
        let mut v0 = Array2::<f64>::zeros((1, d));
        fill_gaussian(v0.view_mut(), 1.0, &mut TrialRng::seed_from_u64(splitmix64(key)));
        sigma.push(spectral_bounds(&w, v0.as_slice().expect("standard layout")));
        wt.push(w.t().as_standard_layout().into_owned());
    }
    let mut starts = Array2::<f64>::zeros((search_spec.restarts, n0));
    fill_gaussian(starts.view_mut(), 1.0, &mut rng);
    let mut starts = starts.into_raw_vec_and_offset().0;
    normalize_rows(&mut starts, n0);
    // Random inputs: per layer the extremes and which input reached them.
    let mut random_max = vec![(f64::NEG_INFINITY, 0usize); depth];
    let mut random_min = vec![(f64::INFINITY, 0usize); depth];
    for (block, xs) in inputs.chunks(SAMPLE_BLOCK * n0).enumerate() {
        if cancelled() {
            return Err(Cancelled);
        }
        let rows = xs.len() / n0;
        let acts = forward(&wt, xs, rows, depth);
        for l in 1..=depth {
            for (r, v) in ratios_of(&acts[l], xs, rows).into_iter().enumerate() {
                let at = block * SAMPLE_BLOCK + r;
                if v > random_max[l - 1].0 {
                    random_max[l - 1] = (v, at);
                }
                if v < random_min[l - 1].0 {
                    random_min[l - 1] = (v, at);
                }
            }
        }
    }
    tick()?;

    let mut out = Vec::with_capacity(depth);
    // The inputs that reached the previous layer's extremes: starts of the next layer's searches
    // (an input dead at layer l - 1 is dead at layer l).
    let mut previous: [Option<Vec<f64>>; 2] = [None, None];
    for l in 1..=depth {
        let mut found = [0.0f64; 2];
        for (slot, maximize) in [(0, true), (1, false)] {
            let best = if maximize {
                random_max[l - 1].1
            } else {
                random_min[l - 1].1
            };
            let mut rows = starts.clone();
            rows.extend_from_slice(&inputs[best * n0..(best + 1) * n0]);
            if let Some(x) = &previous[slot] {
                rows.extend_from_slice(x);
            }
            let (value, x) = search(&wt, l, &rows, search_spec.steps, maximize, cancelled)?;
            found[slot] = value;
            previous[slot] = Some(x);
            tick()?;
        }
        out.push(LayerExtremes {
            found_max: found[0],
            found_min: found[1],
            random_max: random_max[l - 1].0,
            random_min: random_min[l - 1].0,
            sigma_lo: sigma[l - 1].0,
            sigma_hi: sigma[l - 1].1,
        });
    }
    Ok(out)
}

/// Networks `first..first + count` of one grid point (network `net`, streams of `seed`), on the
/// current rayon pool, in network order.
pub fn simulate_networks(
    net: &Network,
    search_spec: &WorstCase,
    samples: usize,
    seed: u64,
    first: usize,
    count: usize,
    ctl: &Control,
) -> Result<Vec<Vec<LayerExtremes>>, Cancelled> {
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    let total = count as u64 * network_progress_units(net.depth());
    let done = AtomicU64::new(0);
    let reported = std::sync::Mutex::new(0u64);
    let cancelled = || (ctl.cancelled)();
    let networks = (first..first + count)
        .into_par_iter()
        .map(|t| {
            let mut tick = || {
                if (ctl.cancelled)() {
                    return Err(Cancelled);
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                // Reported under a lock, so the counter seen outside never goes back.
                let mut last = reported.lock().unwrap_or_else(|p| p.into_inner());
                if d > *last {
                    *last = d;
                    (ctl.progress)(d.min(total), total);
                }
                Ok(())
            };
            run_network(net, search_spec, samples, seed, t as u64, &mut tick, &cancelled)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(networks)
}

/// Floating-point operations of one network (an upper bound: every start runs every step).
pub fn network_work(net: &Network, search_spec: &WorstCase, samples: usize) -> f64 {
    let depth = net.depth();
    let layer_weights: Vec<f64> = (1..=depth)
        .map(|l| net.fan_in(l) as f64 * net.widths[l - 1] as f64)
        .collect();
    let all: f64 = layer_weights.iter().sum();
    // Drawing (about 12 operations per weight, as the dense engine counts) and transposing.
    let draw = 14.0 * all;
    let random = 2.0 * samples as f64 * all;
    let spectral: f64 = (1..=depth)
        .map(|l| {
            let (i, o) = (net.fan_in(l) as f64, net.widths[l - 1] as f64);
            let d = i.min(o);
            2.0 * d * d * i.max(o)
                + MAX_SQUARINGS as f64 * (2.0 * d * d * d + 4.0 * d * d)
                + POWER_ITERATIONS as f64 * 2.0 * d * d
        })
        .sum();
    let starts = (search_spec.restarts + 2) as f64;
    let evaluations = (search_spec.steps + 1 + POLISH_STEPS) as f64;
    let mut cumulative = 0.0;
    let mut search = 0.0;
    for w in &layer_weights {
        cumulative += w;
        // Ascent and descent; one forward and one backward pass per evaluation, plus the
        // per-start vector work on the sphere.
        search += 2.0 * starts * evaluations * (4.0 * cumulative + 12.0 * net.input_dim as f64);
    }
    draw + random + spectral + search
}

/// Peak bytes of one network.
pub fn network_memory(net: &Network, search_spec: &WorstCase, samples: usize) -> u64 {
    let depth = net.depth();
    let weights: u64 = (1..=depth).map(|l| (net.fan_in(l) * net.widths[l - 1]) as u64).sum();
    let largest: u64 = (1..=depth)
        .map(|l| (net.fan_in(l) * net.widths[l - 1]) as u64)
        .max()
        .unwrap_or(0);
    let d: u64 = (1..=depth)
        .map(|l| net.fan_in(l).min(net.widths[l - 1]) as u64)
        .max()
        .unwrap_or(0);
    let width_sum: u64 = net.widths.iter().map(|&w| w as u64).sum::<u64>() + net.input_dim as u64;
    let rows = (search_spec.restarts + 2).max(SAMPLE_BLOCK) as u64;
    // Kept weights, one drawn layer and its Gram-Schmidt scratch, the layer copy of the spectral
    // bound and its three d x d matrices, the random inputs and starts, and the activations and
    // gradients of one block of rows (candidates and current values).
    8 * (weights
        + 3 * largest
        + 3 * d * d
        + (samples as u64 + search_spec.restarts as u64 + 2) * net.input_dim as u64
        + 4 * rows * width_sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::trial_rng;

    /// The exact spectral norm of a small matrix, from the eigenvalues of W^T W by Jacobi sweeps.
    fn exact_norm(w: &Array2<f64>) -> f64 {
        let mut a = w.t().dot(w);
        let n = a.nrows();
        for _ in 0..100 {
            for p in 0..n {
                for q in p + 1..n {
                    if a[[p, q]].abs() < 1e-300 {
                        continue;
                    }
                    let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * a[[p, q]]);
                    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                    let c = 1.0 / (t * t + 1.0).sqrt();
                    let s = t * c;
                    for k in 0..n {
                        let (akp, akq) = (a[[k, p]], a[[k, q]]);
                        a[[k, p]] = c * akp - s * akq;
                        a[[k, q]] = s * akp + c * akq;
                    }
                    for k in 0..n {
                        let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                        a[[p, k]] = c * apk - s * aqk;
                        a[[q, k]] = s * apk + c * aqk;
                    }
                }
            }
        }
        (0..n).map(|i| a[[i, i]]).fold(0.0, f64::max).sqrt()
    }

    #[test]
    fn spectral_bounds_bracket_the_exact_norm_within_the_tolerance() {
        for (o, i, seed) in [(7, 5, 1u64), (5, 9, 2), (12, 12, 3), (1, 6, 4), (6, 1, 5)] {
            let mut w = Array2::<f64>::zeros((o, i));
            let mut rng = trial_rng(seed, 0);
            fill_gaussian(w.view_mut(), 1.0, &mut rng);
            let d = o.min(i);
            let v0 = vec![1.0; d];
            let (lo, hi) = spectral_bounds(&w, &v0);
            let exact = exact_norm(&w);
            assert!(lo <= exact * (1.0 + 1e-12) && exact <= hi, "{o}x{i}: {lo} {exact} {hi}");
            assert!(hi / lo <= 1.0 + SPECTRAL_TOLERANCE + 1e-9, "{o}x{i}: {lo} {hi}");
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = trial_rng(11, 0);
        let dims = [4usize, 6, 5];
        let wt: Vec<Array2<f64>> = dims
            .windows(2)
            .map(|p| {
                let mut w = Array2::<f64>::zeros((p[0], p[1]));
                fill_gaussian(w.view_mut(), 1.0, &mut rng);
                w
            })
            .collect();
        let x = [0.3, -0.5, 0.7, 0.2];
        let (_, g) = ratios_and_gradients(&wt, &x, 1, 2);
        let f = |x: &[f64]| {
            let acts = forward(&wt, x, 1, 2);
            norm2(&acts[2])
        };
        for k in 0..4 {
            let h = 1e-6;
            let (mut up, mut down) = (x, x);
            up[k] += h;
            down[k] -= h;
            let fd = (f(&up) - f(&down)) / (2.0 * h);
            assert!((fd - g[k]).abs() < 1e-6 * (1.0 + fd.abs()), "{k}: {fd} vs {}", g[k]);
        }
    }

    #[test]
    fn a_rows_ratio_does_not_depend_on_the_other_rows() {
        let mut rng = trial_rng(12, 0);
        let mut w = Array2::<f64>::zeros((5, 9));
        fill_gaussian(w.view_mut(), 1.0, &mut rng);
        let wt = vec![w];
        let mut xs = Array2::<f64>::zeros((3, 5));
        fill_gaussian(xs.view_mut(), 1.0, &mut rng);
        let xs = xs.into_raw_vec_and_offset().0;
        let (all, _) = ratios_and_gradients(&wt, &xs, 3, 1);
        for r in 0..3 {
            let (one, _) = ratios_and_gradients(&wt, &xs[r * 5..(r + 1) * 5], 1, 1);
            assert_eq!(one[0].to_bits(), all[r].to_bits());
        }
    }
}
