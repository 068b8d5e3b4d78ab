//! The residual engine: one trial = one residual network, all samples batched through it.
//!
//! Block b (1-based) maps the stream H^(b-1) (B x n_0, one sample per row) to
//! H^b = H^(b-1) + ReLU(H^(b-1) W_1^T) W_2^T, with W_1 (m_b x n_0) and W_2 (n_0 x m_b) drawn by
//! [`draw_layer`] from the block's rules ([`Network::block_weights`]); no ReLU after the sum, and
//! H^0 = X. The head is the plain engine's: logits H^B W_out^T, softmax, cross-entropy against a
//! random probability vector.
//!
//! Backward, with G^b = dloss/dH^b (G^B = (p - t) W_out, no mask: the stream has no ReLU):
//! G^(b-1) = G^b + ((G^b W_2) * 1[A^b > 0]) W_1, where A^b = H^(b-1) W_1^T is the block's
//! pre-activation. The mask is the ReLU derivative of the block's hidden layer, applied between
//! W_2^T and W_1^T (docs/theory.md section 7.4: the authors' notebook applies it elsewhere).
//!
//! Ratios per block and sample: forward ||h^b|| / ||x||, backward
//! ||dloss/dh^(b-1)|| / ||dloss/dh^B|| (the gradient arriving at block b's input, relative to
//! that at the output).

use faer::Par;
use ndarray::Array2;
use rand::{Rng, SeedableRng};

use super::dense::{
    cheap_to_redraw, draw_inputs, mask_rows, relu_rows, rows_norm2, softmax_error_row, KEEP_WEIGHTS_BYTES,
};
use super::gemm::{gemm, gemm_add};
use super::real::Real;
use super::rng::TrialRng;
use super::weights::{draw_layer, fill_gaussian};
use super::{Cancelled, Passes, TrialRatios};
use crate::spec::{InputDistribution, Network};

/// Everything of one trial in f64, for checks of the backward pass against finite differences
/// (small networks only: it keeps every weight and every gradient).
#[derive(Debug, Clone)]
pub struct Trace {
    /// The inputs (B x n_0).
    pub x: Array2<f64>,
    /// Per block: (W_1 (m_b x n_0), W_2 (n_0 x m_b)).
    pub blocks: Vec<(Array2<f64>, Array2<f64>)>,
    /// The head's weights (C x n_0).
    pub w_out: Array2<f64>,
    /// The targets t (B x C, rows sum to 1).
    pub targets: Array2<f64>,
    /// Per sample: the loss -sum_c t_c ln p_c.
    pub loss: Vec<f64>,
    /// Index k = 0..=B: dloss/dh^k (B x n_0) as the engine computed it.
    pub gradients: Vec<Array2<f64>>,
    /// The ratios the engine reports.
    pub ratios: TrialRatios,
}

/// Run one trial of a residual network (see the module comment); `tick` is called before each
/// block of each pass.
pub fn run_trial<T: Real>(
    net: &Network,
    samples: usize,
    input: InputDistribution,
    rng: &mut TrialRng,
    par: Par,
    passes: Passes,
    tick: &mut dyn FnMut() -> Result<(), Cancelled>,
) -> Result<TrialRatios, Cancelled> {
    run::<T>(net, samples, input, rng, par, passes, KEEP_WEIGHTS_BYTES, None, tick)
}

/// One trial in f64 with every weight and gradient kept (the same numbers as [`run_trial`]).
pub fn trace_trial(net: &Network, samples: usize, input: InputDistribution, rng: &mut TrialRng) -> Trace {
    let mut trace = Trace {
        x: Array2::zeros((0, 0)),
        blocks: Vec::new(),
        w_out: Array2::zeros((0, 0)),
        targets: Array2::zeros((0, 0)),
        loss: Vec::new(),
        gradients: Vec::new(),
        ratios: TrialRatios {
            forward: Vec::new(),
            gradient: Vec::new(),
        },
    };
    let ratios = run::<f64>(
        net,
        samples,
        input,
        rng,
        Par::Seq,
        Passes::Both,
        usize::MAX,
        Some(&mut trace),
        &mut || Ok(()),
    )
    .unwrap_or_else(|_| unreachable!("the tick never cancels"));
    trace.gradients.reverse(); // pushed from the output down
    trace.ratios = ratios;
    trace
}

/// The loss of one sample whose stream is `h` (length n_0) at the input of block `first`
/// (1-based), through the rest of the traced network: what [`Trace::gradients`] differentiate.
pub fn loss_from(trace: &Trace, first: usize, sample: usize, h: &[f64]) -> f64 {
    let mut h = ndarray::Array1::from(h.to_vec());
    for (w1, w2) in &trace.blocks[first - 1..] {
        let a = w1.dot(&h).mapv(|v| v.max(0.0));
        h = &h + &w2.dot(&a);
    }
    let z = trace.w_out.dot(&h);
    let zmax = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = zmax + z.iter().map(|v| (v - zmax).exp()).sum::<f64>().ln();
    trace
        .targets
        .row(sample)
        .iter()
        .zip(z.iter())
        .map(|(t, zc)| -t * (zc - lse))
        .sum()
}

/// What the backward pass gets back of one block's weights.
enum Kept<T> {
    Pair(Array2<T>, Array2<T>),
    /// The key of the block's stream: both matrices are drawn again from it.
    Key(u64),
}

fn to_f64<T: Real>(a: &Array2<T>) -> Array2<f64> {
    a.mapv(|v| v.f64())
}

/// Draw block `b`'s (W_1, W_2) from the stream keyed by `key` into `w1`, `w2`.
fn draw_block<T: Real>(
    net: &Network,
    b: usize,
    key: u64,
    w1: &mut Array2<T>,
    w2: &mut Array2<T>,
    scratch: &mut Array2<f64>,
    parallel: bool,
) {
    let (n0, m) = (net.input_dim, net.widths[b - 1]);
    let (first, second) = net.block_weights(b);
    let mut stream = TrialRng::seed_from_u64(key);
    draw_layer(&first, n0, m, &mut stream, w1, scratch, parallel);
    draw_layer(&second, m, n0, &mut stream, w2, scratch, parallel);
}

#[allow(clippy::too_many_arguments)]
fn run<T: Real>(
    net: &Network,
    samples: usize,
    input: InputDistribution,
    rng: &mut TrialRng,
    par: Par,
    passes: Passes,
    keep_weights_bytes: usize,
    mut trace: Option<&mut Trace>,
    tick: &mut dyn FnMut() -> Result<(), Cancelled>,
) -> Result<TrialRatios, Cancelled> {
    let (nb, blocks, n0) = (samples, net.depth(), net.input_dim);
    let parallel = matches!(par, Par::Rayon(_));
    let mut h = draw_inputs::<T>(nb, n0, input, rng);
    let x_norm: Vec<f64> = rows_norm2(h.view()).iter().map(|v| v.sqrt()).collect();
    if let Some(t) = trace.as_deref_mut() {
        t.x = to_f64(&h);
    }
    let backward = passes == Passes::Both;
    let weight_bytes = net.weight_count() as usize * size_of::<T>();
    let keep_matrices = weight_bytes <= keep_weights_bytes || !cheap_to_redraw(&net.weights);
    let mut kept: Vec<Kept<T>> = Vec::with_capacity(blocks);
    let mut patterns: Vec<Vec<u8>> = Vec::with_capacity(blocks); // patterns[b - 1]: A^b > 0

    let mut forward = vec![0.0; blocks * nb];
    let (mut w1, mut w2) = (Array2::<T>::zeros((0, 0)), Array2::<T>::zeros((0, 0)));
    let mut scratch = Array2::<f64>::zeros((0, 0));
    let mut a = Array2::<T>::zeros((0, 0));
    for b in 1..=blocks {
        tick()?;
        let m = net.widths[b - 1];
        let key: u64 = rng.random();
        draw_block(net, b, key, &mut w1, &mut w2, &mut scratch, parallel);
        if a.dim() != (nb, m) {
            a = Array2::zeros((nb, m));
        }
        gemm(T::one(), h.view(), w1.t(), a.view_mut(), par);
        let (_, pattern) = relu_rows(&mut a, parallel);
        gemm_add(T::one(), a.view(), w2.t(), h.view_mut(), par);
        for (s, v) in rows_norm2(h.view()).iter().enumerate() {
            forward[(b - 1) * nb + s] = v.sqrt() / x_norm[s];
        }
        if let Some(t) = trace.as_deref_mut() {
            t.blocks.push((to_f64(&w1), to_f64(&w2)));
        }
        if backward {
            patterns.push(pattern);
            kept.push(if keep_matrices {
                Kept::Pair(
                    std::mem::replace(&mut w1, Array2::zeros((0, 0))),
                    std::mem::replace(&mut w2, Array2::zeros((0, 0))),
                )
            } else {
                Kept::Key(key)
            });
        }
    }
    if !backward {
        return Ok(TrialRatios {
            forward,
            gradient: Vec::new(),
        });
    }

    // The head: E = p - t (B x C), and G^B = E W_out.
    let classes = net.classes;
    let mut w_out = Array2::<T>::zeros((classes, n0));
    fill_gaussian(w_out.view_mut(), 1.0, rng);
    let mut z = Array2::<T>::zeros((nb, classes));
    gemm(T::one(), h.view(), w_out.t(), z.view_mut(), par);
    let mut e = Array2::<T>::zeros((nb, classes));
    let (mut p, mut t) = (vec![0.0f64; classes], vec![0.0f64; classes]);
    let mut losses = Vec::with_capacity(if trace.is_some() { nb } else { 0 });
    let mut targets = Vec::with_capacity(if trace.is_some() { nb * classes } else { 0 });
    for (zr, er) in z.rows().into_iter().zip(e.rows_mut()) {
        let (zmax, psum, tsum) = softmax_error_row(zr, er, &mut p, &mut t, rng);
        if trace.is_some() {
            // -sum t ln p with ln p_c = z_c - zmax - ln psum.
            losses.push(
                zr.iter()
                    .zip(&t)
                    .map(|(zc, tc)| -(tc / tsum) * (zc.f64() - zmax - psum.ln()))
                    .sum(),
            );
            targets.extend(t.iter().map(|tc| tc / tsum));
        }
    }
    drop(z);
    let mut g = Array2::<T>::zeros((nb, n0));
    gemm(T::one(), e.view(), w_out.view(), g.view_mut(), par);
    let g_last: Vec<f64> = rows_norm2(g.view()).iter().map(|v| v.sqrt()).collect();
    if let Some(tr) = trace.as_deref_mut() {
        tr.w_out = to_f64(&w_out);
        tr.targets = Array2::from_shape_vec((nb, classes), targets).unwrap_or_else(|_| unreachable!("B x C targets"));
        tr.loss = losses;
        tr.gradients.push(to_f64(&g));
    }

    let mut gradient = vec![0.0; blocks * nb];
    let mut u = Array2::<T>::zeros((0, 0));
    for b in (1..=blocks).rev() {
        tick()?;
        let m = net.widths[b - 1];
        let (v1, v2) = match kept.pop() {
            Some(Kept::Pair(v1, v2)) => (v1, v2),
            Some(Kept::Key(key)) => {
                draw_block(net, b, key, &mut w1, &mut w2, &mut scratch, parallel);
                (
                    std::mem::replace(&mut w1, Array2::zeros((0, 0))),
                    std::mem::replace(&mut w2, Array2::zeros((0, 0))),
                )
            }
            None => unreachable!("one entry per block"),
        };
        if u.dim() != (nb, m) {
            u = Array2::zeros((nb, m));
        }
        // U = (G^b W_2) masked by the block's hidden pattern; G^(b-1) = G^b + U W_1.
        gemm(T::one(), g.view(), v2.view(), u.view_mut(), par);
        let mut pattern = patterns.pop().unwrap_or_else(|| unreachable!("one pattern per block"));
        mask_rows(&mut u, &mut pattern, parallel);
        gemm_add(T::one(), u.view(), v1.view(), g.view_mut(), par);
        for (s, v) in rows_norm2(g.view()).iter().enumerate() {
            gradient[(b - 1) * nb + s] = v.sqrt() / g_last[s];
        }
        if let Some(tr) = trace.as_deref_mut() {
            tr.gradients.push(to_f64(&g));
        }
        (w1, w2) = (v1, v2); // the buffers of the next redraw
    }
    Ok(TrialRatios { forward, gradient })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::trial_rng;
    use crate::spec::{parse_spec, Limits};

    fn network(weights: serde_json::Value) -> Network {
        let mut v = serde_json::json!({"network": {"input_dim": 12, "architecture": "residual", "blocks": 5,
                                       "width": 20}, "samples": 9, "method": "dense"});
        for (k, w) in weights.as_object().expect("an object") {
            v["network"][k] = w.clone();
        }
        parse_spec(&v, &Limits::default()).expect("valid").network
    }

    #[test]
    fn redrawn_blocks_give_the_same_bits_as_kept_ones() {
        let nets = [
            network(serde_json::json!({"weight_norm": {"gain": "proposed"}})),
            network(serde_json::json!({"init": {"scheme": "he", "fan": "out"}})),
        ];
        for net in &nets {
            for par in [Par::Seq, Par::rayon(2)] {
                let go = |budget: usize| {
                    run::<f64>(
                        net,
                        9,
                        InputDistribution::Gaussian,
                        &mut trial_rng(5, 1),
                        par,
                        Passes::Both,
                        budget,
                        None,
                        &mut || Ok(()),
                    )
                    .expect("not cancelled")
                };
                let kept = go(usize::MAX);
                assert_eq!(kept, go(0));
                assert!(kept.gradient.iter().all(|g| g.is_finite() && *g > 0.0));
                if par == Par::Seq {
                    // The trace is the same run.
                    let trace = trace_trial(net, 9, InputDistribution::Gaussian, &mut trial_rng(5, 1));
                    assert_eq!(trace.ratios, kept);
                }
            }
        }
    }
}
