//! The dense engine: one trial = one network, all samples batched through it.
//!
//! Shapes: activations H^l are (B x n_l) with one sample per row; W^l is (n_l x n_{l-1});
//! A^l = H^{l-1} (W^l)^T. Errors D^l = dloss/dA^l are (B x n_l). Per-sample weight gradients
//! are never formed: their Frobenius norms come from row norms (theory.md section 1).

use faer::Par;
use ndarray::{Array2, ArrayView2};
use rand::Rng;

use super::gemm::gemm;
use super::real::Real;
use super::rng::TrialRng;
use super::simd;
use super::weights::{draw_layer, fill_gaussian};
use super::{Cancelled, Passes, TrialRatios};
use crate::spec::{InputDistribution, Network, Weights};

/// Partial sums kept apart so the sum of squares vectorizes (the order is fixed by the length).
const ACC: usize = 8;

/// ReLU in place on one row; returns its squared norm (accumulated in f64).
#[inline(always)]
fn relu_norm2<T: Real>(row: &mut [T]) -> f64 {
    let mut acc = [0.0f64; ACC];
    let mut chunks = row.chunks_exact_mut(ACC);
    for c in &mut chunks {
        for (x, a) in c.iter_mut().zip(acc.iter_mut()) {
            let v = x.max(T::zero());
            *x = v;
            *a += v.f64() * v.f64();
        }
    }
    for (x, a) in chunks.into_remainder().iter_mut().zip(acc.iter_mut()) {
        let v = x.max(T::zero());
        *x = v;
        *a += v.f64() * v.f64();
    }
    acc.iter().sum()
}

/// Zero `d` where the matching activation `h` is not positive (the ReLU derivative); returns
/// the squared norm of the masked row.
#[inline(always)]
fn mask_norm2<T: Real>(d: &mut [T], h: &[T]) -> f64 {
    let mut acc = [0.0f64; ACC];
    let mut dc = d.chunks_exact_mut(ACC);
    let mut hc = h.chunks_exact(ACC);
    for (dd, hh) in (&mut dc).zip(&mut hc) {
        let dd: &mut [T; ACC] = dd.try_into().expect("chunks of ACC");
        let hh: &[T; ACC] = hh.try_into().expect("chunks of ACC");
        let keep: [bool; ACC] = std::array::from_fn(|k| hh[k] > T::zero());
        for k in 0..ACC {
            dd[k] = if keep[k] { dd[k] } else { T::zero() };
            acc[k] += dd[k].f64() * dd[k].f64();
        }
    }
    for ((x, &g), a) in dc.into_remainder().iter_mut().zip(hc.remainder()).zip(acc.iter_mut()) {
        let v = if g > T::zero() { *x } else { T::zero() };
        *x = v;
        *a += v.f64() * v.f64();
    }
    acc.iter().sum()
}

/// Rows handed to one rayon task by the row passes.
const ROWS_PER_TASK: usize = 16;

/// `f` on every row of the standard-layout `a` (and the matching row of `b`, same shape),
/// collecting one f64 per row; rows are split over the pool when `parallel`. The rows run
/// inside [`simd::dispatch`], so `f` must be `#[inline(always)]` to get the wide registers.
#[inline(always)]
fn map_rows<T: Real, F>(a: &mut Array2<T>, b: Option<&Array2<T>>, parallel: bool, f: F) -> Vec<f64>
where
    F: Fn(&mut [T], &[T]) -> f64 + Sync + Copy,
{
    use rayon::prelude::*;
    let (rows, cols) = a.dim();
    let mut out = vec![0.0f64; rows];
    let data = a.as_slice_mut().expect("engine matrices are standard layout");
    let other: &[T] = b.map_or(&[], |b| b.as_slice().expect("engine matrices are standard layout"));
    let run = |(task, (dst, chunk)): (usize, (&mut [f64], &mut [T]))| {
        simd::dispatch(
            #[inline(always)]
            || {
                for (r, (o, row)) in dst.iter_mut().zip(chunk.chunks_mut(cols.max(1))).enumerate() {
                    let i = task * ROWS_PER_TASK + r;
                    let peer = if other.is_empty() {
                        &[][..]
                    } else {
                        &other[i * cols..(i + 1) * cols]
                    };
                    *o = f(row, peer);
                }
            },
        )
    };
    let chunk = ROWS_PER_TASK * cols.max(1);
    if parallel && rows > ROWS_PER_TASK {
        out.par_chunks_mut(ROWS_PER_TASK)
            .zip(data.par_chunks_mut(chunk))
            .enumerate()
            .for_each(run);
    } else {
        out.chunks_mut(ROWS_PER_TASK)
            .zip(data.chunks_mut(chunk))
            .enumerate()
            .for_each(run);
    }
    out
}

/// ReLU in place on every row of `a`; the rows' squared norms.
fn relu_rows<T: Real>(a: &mut Array2<T>, parallel: bool) -> Vec<f64> {
    map_rows(
        a,
        None,
        parallel,
        #[inline(always)]
        |row, _| relu_norm2(row),
    )
}

/// `d` masked by the ReLU derivative at `h`; the rows' squared norms after masking.
fn mask_rows<T: Real>(d: &mut Array2<T>, h: &Array2<T>, parallel: bool) -> Vec<f64> {
    map_rows(
        d,
        Some(h),
        parallel,
        #[inline(always)]
        |row, peer| mask_norm2(row, peer),
    )
}

fn rows_norm2<T: Real>(a: ArrayView2<T>) -> Vec<f64> {
    a.rows()
        .into_iter()
        .map(|r| r.iter().map(|x| x.f64() * x.f64()).sum())
        .collect()
}

/// The softmax cross-entropy head: returns E = p - t (B x C) for output weights `w_out`
/// (C x n_L) and random probability-vector targets drawn from `rng`.
fn head_error<T: Real>(h_last: &Array2<T>, w_out: &Array2<T>, rng: &mut TrialRng, par: Par) -> Array2<T> {
    let (b, c) = (h_last.nrows(), w_out.nrows());
    let mut z = Array2::<T>::zeros((b, c));
    gemm(T::one(), h_last.view(), w_out.t(), z.view_mut(), par);
    let mut e = Array2::<T>::zeros((b, c));
    let mut p = vec![0.0f64; c];
    let mut t = vec![0.0f64; c];
    for (zr, mut er) in z.rows().into_iter().zip(e.rows_mut()) {
        let zmax = zr.iter().map(|v| v.f64()).fold(f64::NEG_INFINITY, f64::max);
        for (pi, zi) in p.iter_mut().zip(zr.iter()) {
            *pi = (zi.f64() - zmax).exp();
        }
        let psum: f64 = p.iter().sum();
        for ti in t.iter_mut() {
            *ti = rng.random::<f64>();
        }
        let tsum: f64 = t.iter().sum();
        for ((ei, pi), ti) in er.iter_mut().zip(&p).zip(&t) {
            *ei = T::of(pi / psum - ti / tsum);
        }
    }
    e
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
    let (b, depth) = (samples, net.depth());
    let parallel = matches!(par, Par::Rayon(_));
    let mut x = Array2::<T>::zeros((b, net.input_dim));
    fill_gaussian(x.view_mut(), 1.0, rng);
    if input == InputDistribution::Sphere {
        for mut row in x.rows_mut() {
            let norm = row.iter().map(|v| v.f64() * v.f64()).sum::<f64>().sqrt();
            let scale = T::of(1.0 / norm);
            row.mapv_inplace(|v| v * scale);
        }
    }
    // ||h^l||^2 per sample for l = 0..L (index l).
    let mut norm2: Vec<Vec<f64>> = Vec::with_capacity(depth + 1);
    norm2.push(rows_norm2(x.view()));
    let x_norm: Vec<f64> = norm2[0].iter().map(|v| v.sqrt()).collect();

    let mut forward = vec![0.0; depth * b];
    let mut gradient = vec![0.0; depth * b];
    let mut h: Vec<Array2<T>> = Vec::with_capacity(depth + 1);
    let mut w: Vec<Array2<T>> = Vec::with_capacity(depth);
    h.push(x);
    let mut scratch = Array2::<f64>::zeros((0, 0));
    for l in 1..=depth {
        tick()?;
        let (fan_in, fan_out) = (net.fan_in(l), net.widths[l - 1]);
        let mut wl = Array2::<T>::zeros((fan_out, fan_in));
        draw_layer(&net.weights, fan_in, fan_out, rng, &mut wl, &mut scratch, parallel);
        let mut a = Array2::<T>::zeros((b, fan_out));
        gemm(T::one(), h.last().expect("the input is pushed first").view(), wl.t(), a.view_mut(), par);
        let n2 = relu_rows(&mut a, parallel);
        for (s, v) in n2.iter().enumerate() {
            forward[(l - 1) * b + s] = v.sqrt() / x_norm[s];
        }
        norm2.push(n2);
        if passes == Passes::Both {
            h.push(a);
            w.push(wl);
        } else {
            h[0] = a;
        }
    }
    drop(scratch);
    if passes == Passes::ForwardOnly {
        return Ok(TrialRatios {
            forward,
            gradient: Vec::new(),
        });
    }

    let mut w_out = Array2::<T>::zeros((net.classes, net.widths[depth - 1]));
    fill_gaussian(w_out.view_mut(), 1.0, rng);
    let e = head_error(&h[depth], &w_out, rng, par);
    let mut d = Array2::<T>::zeros((b, net.widths[depth - 1]));
    gemm(T::one(), e.view(), w_out.view(), d.view_mut(), par);
    let mut d2 = mask_rows(&mut d, &h[depth], parallel);
    let d_last: Vec<f64> = d2.iter().map(|v| v.sqrt()).collect();

    // Walk the layers down, taking each layer's weights as it is reached.
    for (l, wl) in (1..=depth).rev().zip(w.into_iter().rev()) {
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
                // wherever delta_i != 0 (theory.md section 7).
                let g = wn.gain(fan_in, fan_out);
                let normalizer = wn.gradient_normalizer(fan_in, fan_out);
                for (s, (drow, hrow)) in d.rows().into_iter().zip(h[l].rows()).enumerate() {
                    let da: f64 = drow
                        .iter()
                        .zip(hrow.iter())
                        .map(|(d, a)| (d.f64() * a.f64()).powi(2))
                        .sum();
                    let v2 = (g * g * norm2[l - 1][s] * d2[s] - da).max(0.0);
                    gradient[(l - 1) * b + s] = v2.sqrt() / (normalizer * x_norm[s] * d_last[s]);
                }
            }
        }
        if l > 1 {
            let mut prev = Array2::<T>::zeros((b, fan_in));
            gemm(T::one(), d.view(), wl.view(), prev.view_mut(), par);
            d2 = mask_rows(&mut prev, &h[l - 1], parallel);
            d = prev;
        }
        h.pop();
    }
    Ok(TrialRatios { forward, gradient })
}
