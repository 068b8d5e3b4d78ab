//! The dense engine: one trial = one network, all samples batched through it.
//!
//! Shapes: activations H^l are (B x n_l) with one sample per row; W^l is (n_l x n_{l-1});
//! A^l = H^{l-1} (W^l)^T. Errors D^l = dloss/dA^l are (B x n_l). Per-sample weight gradients
//! are never formed: their Frobenius norms come from row norms (docs/theory.md section 1).
//!
//! Memory: the forward pass keeps, per layer, only what the backward pass needs: the ReLU
//! pattern of H^l as one bit per entry (the activations themselves only under weight norm,
//! whose gradient needs them), and the weights W^l while all of them fit in
//! [`KEEP_WEIGHTS_BYTES`]. Larger networks keep each layer's key instead and draw W^l again
//! in the backward pass: the same matrix bit for bit, for one more Gaussian draw per weight,
//! which costs less than faulting in gigabytes of fresh pages.

use faer::Par;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1};
use rand::{Rng, SeedableRng};

use super::gemm::gemm;
use super::real::Real;
use super::rng::TrialRng;
use super::simd;
use super::weights::{draw_layer, fill_gaussian};
use super::{Cancelled, Passes, TrialRatios};
use crate::spec::{Direction, Init, InputDistribution, Network, Weights};

/// Bytes of weight matrices one trial keeps for its backward pass; above this it redraws them.
pub const KEEP_WEIGHTS_BYTES: usize = 256 << 20;

/// Partial sums kept apart so the sum of squares vectorizes (the order is fixed by the length).
/// Also the entries per pattern byte: the ReLU pattern keeps one bit per activation.
const ACC: usize = 8;

/// Bytes of ReLU pattern for a row of `cols` activations (one bit each, rows start on a byte).
pub(super) fn pattern_bytes(cols: usize) -> usize {
    cols.div_ceil(ACC)
}

/// ReLU in place on one row, its positive pattern into `keep` (bit `k` of byte `i` for entry
/// `8 i + k`); returns the row's squared norm (accumulated in f64).
#[inline(always)]
fn relu_norm2<T: Real>(row: &mut [T], keep: &mut [u8]) -> f64 {
    let mut acc = [0.0f64; ACC];
    let mut rc = row.chunks_exact_mut(ACC);
    let mut kc = keep.iter_mut();
    for (xx, kk) in (&mut rc).zip(&mut kc) {
        let xx: &mut [T; ACC] = xx.try_into().expect("chunks of ACC");
        let mut bits = 0u8;
        for k in 0..ACC {
            let on = xx[k] > T::zero();
            xx[k] = if on { xx[k] } else { T::zero() };
            bits |= (on as u8) << k;
            acc[k] += xx[k].f64() * xx[k].f64();
        }
        *kk = bits;
    }
    let rest = rc.into_remainder();
    if let Some(kk) = kc.next() {
        let mut bits = 0u8;
        for (k, (x, a)) in rest.iter_mut().zip(acc.iter_mut()).enumerate() {
            let on = *x > T::zero();
            *x = if on { *x } else { T::zero() };
            bits |= (on as u8) << k;
            *a += x.f64() * x.f64();
        }
        *kk = bits;
    }
    acc.iter().sum()
}

/// Zero `d` where the forward pass was not positive (the ReLU derivative, bits as
/// [`relu_norm2`] wrote them); returns the squared norm of the masked row.
#[inline(always)]
fn mask_norm2<T: Real>(d: &mut [T], keep: &[u8]) -> f64 {
    let mut acc = [0.0f64; ACC];
    let mut dc = d.chunks_exact_mut(ACC);
    let mut kc = keep.iter();
    for (dd, &bits) in (&mut dc).zip(&mut kc) {
        let dd: &mut [T; ACC] = dd.try_into().expect("chunks of ACC");
        for k in 0..ACC {
            dd[k] = if (bits >> k) & 1 != 0 { dd[k] } else { T::zero() };
            acc[k] += dd[k].f64() * dd[k].f64();
        }
    }
    let rest = dc.into_remainder();
    if let Some(&bits) = kc.next() {
        for (k, (x, a)) in rest.iter_mut().zip(acc.iter_mut()).enumerate() {
            *x = if (bits >> k) & 1 != 0 { *x } else { T::zero() };
            *a += x.f64() * x.f64();
        }
    }
    acc.iter().sum()
}

/// Rows handed to one rayon task by the row passes.
const ROWS_PER_TASK: usize = 16;

/// `f(row of a, row of p)` for every row of the standard-layout `a` (rows of `cols` entries)
/// and the matching row of `p` (rows of `pattern_bytes(cols)` bytes), collecting one f64 per
/// row. Rows are split over the pool when `parallel`, and run inside [`simd::dispatch`] (so `f`
/// must be `#[inline(always)]`).
#[inline(always)]
fn map_rows<T: Real, F>(a: &mut [T], p: &mut [u8], cols: usize, parallel: bool, f: F) -> Vec<f64>
where
    F: Fn(&mut [T], &mut [u8]) -> f64 + Sync + Copy,
{
    use rayon::prelude::*;
    let cols = cols.max(1);
    let pcols = pattern_bytes(cols);
    let rows = a.len() / cols;
    assert_eq!(p.len(), rows * pcols, "row pass: shapes differ");
    let mut out = vec![0.0f64; rows];
    let run = |(dst, (ac, pc)): (&mut [f64], (&mut [T], &mut [u8]))| {
        simd::dispatch(
            #[inline(always)]
            || {
                for (o, (ar, pr)) in dst.iter_mut().zip(ac.chunks_mut(cols).zip(pc.chunks_mut(pcols))) {
                    *o = f(ar, pr);
                }
            },
        )
    };
    let (chunk, pchunk) = (ROWS_PER_TASK * cols, ROWS_PER_TASK * pcols);
    if parallel && rows > ROWS_PER_TASK {
        out.par_chunks_mut(ROWS_PER_TASK)
            .zip(a.par_chunks_mut(chunk).zip(p.par_chunks_mut(pchunk)))
            .for_each(run);
    } else {
        out.chunks_mut(ROWS_PER_TASK)
            .zip(a.chunks_mut(chunk).zip(p.chunks_mut(pchunk)))
            .for_each(run);
    }
    out
}

fn slice_mut<T>(a: &mut Array2<T>) -> &mut [T] {
    a.as_slice_mut().expect("engine matrices are standard layout")
}

/// ReLU in place on every row of `a`; the rows' squared norms and the positive pattern (one
/// bit per entry, [`pattern_bytes`] per row).
pub(super) fn relu_rows<T: Real>(a: &mut Array2<T>, parallel: bool) -> (Vec<f64>, Vec<u8>) {
    let cols = a.ncols();
    let mut keep = vec![0u8; a.nrows() * pattern_bytes(cols)];
    let norms = map_rows(
        slice_mut(a),
        &mut keep,
        cols,
        parallel,
        #[inline(always)]
        |row, k| relu_norm2(row, k),
    );
    (norms, keep)
}

/// `d` masked by the forward pass's positive pattern `keep` (as [`relu_rows`] gave it; only read, but
/// borrowed mutably to share [`map_rows`]); the rows' squared norms after masking.
pub(super) fn mask_rows<T: Real>(d: &mut Array2<T>, keep: &mut [u8], parallel: bool) -> Vec<f64> {
    let cols = d.ncols();
    map_rows(
        slice_mut(d),
        keep,
        cols,
        parallel,
        #[inline(always)]
        |row, k| mask_norm2(row, k),
    )
}

pub(super) fn rows_norm2<T: Real>(a: ArrayView2<T>) -> Vec<f64> {
    a.rows()
        .into_iter()
        .map(|r| r.iter().map(|x| x.f64() * x.f64()).sum())
        .collect()
}

/// One row of the softmax cross-entropy head: `p = softmax(z)`, a random probability-vector
/// target `t` (C uniforms from `rng`, normalized), and `e = p - t` written to `e`. `p` and `t`
/// are scratch of C entries, left holding the unnormalized values; returns `(max z, sum p,
/// sum t)` (the residual engine's trace computes the loss from them).
pub(super) fn softmax_error_row<T: Real>(
    z: ArrayView1<T>,
    mut e: ArrayViewMut1<T>,
    p: &mut [f64],
    t: &mut [f64],
    rng: &mut TrialRng,
) -> (f64, f64, f64) {
    let zmax = z.iter().map(|v| v.f64()).fold(f64::NEG_INFINITY, f64::max);
    for (pi, zi) in p.iter_mut().zip(z.iter()) {
        *pi = (zi.f64() - zmax).exp();
    }
    let psum: f64 = p.iter().sum();
    for ti in t.iter_mut() {
        *ti = rng.random::<f64>();
    }
    let tsum: f64 = t.iter().sum();
    for ((ei, pi), ti) in e.iter_mut().zip(p.iter()).zip(t.iter()) {
        *ei = T::of(pi / psum - ti / tsum);
    }
    (zmax, psum, tsum)
}

/// The softmax cross-entropy head: returns E = p - t (B x C) for output weights `w_out`
/// (C x n_L) and random probability-vector targets drawn from `rng`.
fn head_error<T: Real>(h_last: &Array2<T>, w_out: &Array2<T>, rng: &mut TrialRng, par: Par) -> Array2<T> {
    let (b, c) = (h_last.nrows(), w_out.nrows());
    let mut z = Array2::<T>::zeros((b, c));
    gemm(T::one(), h_last.view(), w_out.t(), z.view_mut(), par);
    let mut e = Array2::<T>::zeros((b, c));
    let (mut p, mut t) = (vec![0.0f64; c], vec![0.0f64; c]);
    for (zr, er) in z.rows().into_iter().zip(e.rows_mut()) {
        softmax_error_row(zr, er, &mut p, &mut t, rng);
    }
    e
}

/// The inputs of one trial (B x n_0, one per row), drawn from `rng`.
pub(super) fn draw_inputs<T: Real>(
    samples: usize,
    input_dim: usize,
    input: InputDistribution,
    rng: &mut TrialRng,
) -> Array2<T> {
    let mut x = Array2::<T>::zeros((samples, input_dim));
    fill_gaussian(x.view_mut(), 1.0, rng);
    if input == InputDistribution::Sphere {
        for mut row in x.rows_mut() {
            let norm = row.iter().map(|v| v.f64() * v.f64()).sum::<f64>().sqrt();
            let scale = T::of(1.0 / norm);
            row.mapv_inplace(|v| v * scale);
        }
    }
    x
}

/// What the backward pass gets back of one layer's weights.
enum KeptWeights<T> {
    Matrix(Array2<T>),
    /// The key of the layer's own random stream: the matrix is drawn again from it.
    Key(u64),
}

/// Orthogonal draws cost a Gram-Schmidt pass, so those weights are always kept; Gaussian ones
/// cost one fill to draw again.
pub fn cheap_to_redraw(weights: &Weights) -> bool {
    !matches!(
        weights,
        Weights::Plain(Init::Orthogonal { .. })
            | Weights::Normalized(crate::spec::WeightNorm {
                direction: Direction::Orthogonal,
                ..
            })
    )
}

/// Run one trial: draw inputs, the network and the head from `rng`, push all samples forward,
/// back-propagate, and return the forward and gradient ratios (layer-major, B per layer).
///
/// `tick` is called before each layer of each pass; it reports progress and may cancel.
pub fn run_trial<T: Real>(
    net: &Network,
    samples: usize,
    input: InputDistribution,
    rng: &mut TrialRng,
    par: Par,
    passes: Passes,
    tick: &mut dyn FnMut() -> Result<(), Cancelled>,
) -> Result<TrialRatios, Cancelled> {
    run_trial_keeping::<T>(net, samples, input, rng, par, passes, KEEP_WEIGHTS_BYTES, tick)
}

/// [`run_trial`] with the weight budget as a parameter (tests compare budgets).
#[allow(clippy::too_many_arguments)]
fn run_trial_keeping<T: Real>(
    net: &Network,
    samples: usize,
    input: InputDistribution,
    rng: &mut TrialRng,
    par: Par,
    passes: Passes,
    keep_weights_bytes: usize,
    tick: &mut dyn FnMut() -> Result<(), Cancelled>,
) -> Result<TrialRatios, Cancelled> {
    let (b, depth) = (samples, net.depth());
    let parallel = matches!(par, Par::Rayon(_));
    let x = draw_inputs::<T>(b, net.input_dim, input, rng);
    // ||h^l||^2 per sample for l = 0..L (index l).
    let mut norm2: Vec<Vec<f64>> = Vec::with_capacity(depth + 1);
    norm2.push(rows_norm2(x.view()));
    let x_norm: Vec<f64> = norm2[0].iter().map(|v| v.sqrt()).collect();

    let backward = passes == Passes::Both;
    let weight_bytes = (1..=depth).map(|l| net.fan_in(l) * net.widths[l - 1]).sum::<usize>() * size_of::<T>();
    let keep_matrices = weight_bytes <= keep_weights_bytes || !cheap_to_redraw(&net.weights);
    let weight_norm = matches!(net.weights, Weights::Normalized(_));
    let mut kept: Vec<KeptWeights<T>> = Vec::with_capacity(depth);
    let mut patterns: Vec<Vec<u8>> = Vec::with_capacity(depth); // patterns[l - 1]: H^l > 0
    let mut activations: Vec<Array2<T>> = Vec::new(); // activations[l - 1] = H^l (weight norm)

    let mut forward = vec![0.0; depth * b];
    let mut cur = x; // H^{l-1}
    let mut next = Array2::<T>::zeros((0, 0));
    let mut wl = Array2::<T>::zeros((0, 0));
    let mut scratch = Array2::<f64>::zeros((0, 0));
    for l in 1..=depth {
        tick()?;
        let (fan_in, fan_out) = (net.fan_in(l), net.widths[l - 1]);
        let key: u64 = rng.random();
        draw_layer(
            &net.weights,
            fan_in,
            fan_out,
            &mut TrialRng::seed_from_u64(key),
            &mut wl,
            &mut scratch,
            parallel,
        );
        if next.dim() != (b, fan_out) {
            next = Array2::zeros((b, fan_out));
        }
        gemm(T::one(), cur.view(), wl.t(), next.view_mut(), par);
        let (n2, pattern) = relu_rows(&mut next, parallel);
        for (s, v) in n2.iter().enumerate() {
            forward[(l - 1) * b + s] = v.sqrt() / x_norm[s];
        }
        norm2.push(n2);
        if backward {
            patterns.push(pattern);
            kept.push(if keep_matrices {
                KeptWeights::Matrix(std::mem::replace(&mut wl, Array2::zeros((0, 0))))
            } else {
                KeptWeights::Key(key)
            });
            if weight_norm {
                activations.push(next.clone());
            }
        }
        std::mem::swap(&mut cur, &mut next);
    }
    if !backward {
        return Ok(TrialRatios {
            forward,
            gradient: Vec::new(),
        });
    }

    let mut w_out = Array2::<T>::zeros((net.classes, net.widths[depth - 1]));
    fill_gaussian(w_out.view_mut(), 1.0, rng);
    let e = head_error(&cur, &w_out, rng, par);
    drop(cur);
    let mut d = Array2::<T>::zeros((b, net.widths[depth - 1]));
    gemm(T::one(), e.view(), w_out.view(), d.view_mut(), par);
    let mut d2 = mask_rows(&mut d, &mut patterns[depth - 1], parallel);
    let d_last: Vec<f64> = d2.iter().map(|v| v.sqrt()).collect();

    // Walk the layers down, taking each layer's weights as it is reached.
    let mut gradient = vec![0.0; depth * b];
    let mut prev = next;
    for l in (1..=depth).rev() {
        tick()?;
        let (fan_in, fan_out) = (net.fan_in(l), net.widths[l - 1]);
        match net.weights {
            Weights::Plain(_) => {
                for s in 0..b {
                    gradient[(l - 1) * b + s] = (d2[s] * norm2[l - 1][s]).sqrt() / (x_norm[s] * d_last[s]);
                }
            }
            Weights::Normalized(wn) => {
                // ||dloss/dV||^2 = sum_i delta_i^2 (g^2 ||h^{l-1}||^2 - a_i^2), and a_i = h^l_i
                // wherever delta_i != 0 (docs/theory.md section 7).
                let g = wn.gain(fan_in, fan_out);
                let normalizer = wn.gradient_normalizer(fan_in, fan_out);
                for (s, (drow, hrow)) in d.rows().into_iter().zip(activations[l - 1].rows()).enumerate() {
                    let da: f64 = drow
                        .iter()
                        .zip(hrow.iter())
                        .map(|(d, a)| (d.f64() * a.f64()).powi(2))
                        .sum();
                    let v2 = (g * g * norm2[l - 1][s] * d2[s] - da).max(0.0);
                    gradient[(l - 1) * b + s] = v2.sqrt() / (normalizer * x_norm[s] * d_last[s]);
                }
                activations.pop();
            }
        }
        let weights = kept.pop().expect("one entry per layer");
        if l > 1 {
            let w_l = match weights {
                KeptWeights::Matrix(m) => m,
                KeptWeights::Key(key) => {
                    let mut stream = TrialRng::seed_from_u64(key);
                    draw_layer(
                        &net.weights,
                        fan_in,
                        fan_out,
                        &mut stream,
                        &mut wl,
                        &mut scratch,
                        parallel,
                    );
                    std::mem::replace(&mut wl, Array2::zeros((0, 0)))
                }
            };
            if prev.dim() != (b, fan_in) {
                prev = Array2::zeros((b, fan_in));
            }
            gemm(T::one(), d.view(), w_l.view(), prev.view_mut(), par);
            wl = w_l; // the buffer of the next redraw
            d2 = mask_rows(&mut prev, &mut patterns[l - 2], parallel);
            std::mem::swap(&mut d, &mut prev);
        }
        patterns.pop();
    }
    Ok(TrialRatios { forward, gradient })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::trial_rng;
    use crate::spec::{parse_spec, Limits};

    fn network(init: serde_json::Value) -> Network {
        let v = serde_json::json!({"network": {"input_dim": 30, "widths": [40, 24, 56, 32],
                                   "init": init, "weight_norm": null}, "samples": 9, "method": "dense"});
        parse_spec(&v, &Limits::default()).expect("valid").network
    }

    fn run<T: Real>(net: &Network, budget: usize, par: Par) -> TrialRatios {
        let mut rng = trial_rng(77, 3);
        run_trial_keeping::<T>(
            net,
            9,
            InputDistribution::Gaussian,
            &mut rng,
            par,
            Passes::Both,
            budget,
            &mut || Ok(()),
        )
        .expect("not cancelled")
    }

    #[test]
    fn redrawn_weights_give_the_same_bits_as_kept_ones() {
        let mut nets = vec![network(serde_json::json!({"scheme": "he", "fan": "out"}))];
        let mut wn = network(serde_json::json!({"scheme": "he", "fan": "in"}));
        wn.weights = Weights::Normalized(crate::spec::WeightNorm {
            gain: crate::spec::WeightNormGain::Fixed(1.3),
            direction: Direction::Gaussian,
        });
        nets.push(wn);
        for net in &nets {
            for par in [Par::Seq, Par::rayon(2)] {
                let kept = run::<f64>(net, usize::MAX, par);
                let redrawn = run::<f64>(net, 0, par);
                assert_eq!(kept, redrawn);
                assert!(kept.gradient.iter().all(|g| g.is_finite() && *g > 0.0));
                assert_eq!(run::<f32>(net, usize::MAX, par), run::<f32>(net, 0, par));
            }
        }
    }

    #[test]
    fn row_passes_match_plain_loops() {
        // 37 columns: chunks of 8 and a ragged tail; 40 rows: several parallel tasks.
        let mut a = Array2::<f64>::from_shape_fn((40, 37), |(i, j)| ((i * 31 + j * 17) % 23) as f64 - 11.0);
        let plain: Vec<f64> = a
            .rows()
            .into_iter()
            .map(|r| r.iter().map(|v| v.max(0.0).powi(2)).sum())
            .collect();
        let orig = a.clone();
        let (norms, pattern) = relu_rows(&mut a, true);
        for (x, y) in norms.iter().zip(&plain) {
            assert!((x - y).abs() <= 1e-12 * y.max(1.0));
        }
        assert!(a.iter().zip(&orig).all(|(r, o)| *r == o.max(0.0)));
        // One bit per entry, 5 bytes per row of 37; the unused bits of a row's last byte are 0.
        assert_eq!(pattern.len(), 40 * 5);
        for ((i, j), o) in orig.indexed_iter() {
            let bit = (pattern[i * 5 + j / 8] >> (j % 8)) & 1;
            assert_eq!(bit == 1, *o > 0.0, "entry ({i}, {j})");
        }
        assert!(pattern.chunks(5).all(|row| row[4] >> 5 == 0));
        let mut d = Array2::<f64>::from_elem((40, 37), 2.0);
        let mut pattern = pattern;
        let masked = mask_rows(&mut d, &mut pattern, false);
        for (i, m) in masked.iter().enumerate() {
            let on = orig.row(i).iter().filter(|v| **v > 0.0).count() as f64;
            assert_eq!(*m, 4.0 * on);
        }
    }
}
