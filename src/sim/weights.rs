//! Drawing one layer's weight matrix W^l (shape n_l x n_{l-1}) into a reused buffer.

use ndarray::{Array2, ArrayViewMut2, Axis};

use rand::Rng;

use super::normal::{fill_normal, NormalLanes};
use super::real::Real;
use super::rng::{splitmix64, TrialRng};
use crate::spec::{Direction, Init, WeightNorm, Weights};

/// Fill `out` with i.i.d. N(0, variance) entries from eight lanes keyed by one draw of `rng`.
pub fn fill_gaussian<T: Real>(mut out: ArrayViewMut2<T>, variance: f64, rng: &mut TrialRng) {
    let mut lanes = NormalLanes::from_key(rng.random());
    let sd = variance.sqrt();
    if let Some(data) = out.as_slice_mut() {
        return fill_normal(data, sd, &mut lanes);
    }
    let mut buf = vec![T::zero(); out.len()];
    fill_normal(&mut buf, sd, &mut lanes);
    out.iter_mut().zip(buf).for_each(|(o, v)| *o = v);
}

/// Rows of a weight matrix drawn from one sub-stream.
const ROWS_PER_STREAM: usize = 32;

/// Fill a standard-layout `out` with i.i.d. N(0, variance) entries from sub-streams: one key is
/// drawn from `rng`, and every block of [`ROWS_PER_STREAM`] rows gets its own eight lanes keyed
/// by (key, block). The blocks are fixed by the shape alone, so the numbers are the same
/// whether the blocks run in parallel (`parallel`) or in order.
pub fn fill_gaussian_blocks<T: Real>(out: &mut Array2<T>, variance: f64, rng: &mut TrialRng, parallel: bool) {
    let chunk = ROWS_PER_STREAM * out.ncols().max(1);
    match out.as_slice_mut() {
        Some(data) => fill_gaussian_chunks(data, chunk, variance, rng, parallel),
        None => fill_gaussian(out.view_mut(), variance, rng),
    }
}

/// Fill `data` with i.i.d. N(0, variance) entries, every `chunk` consecutive values from their
/// own eight lanes keyed by (one key drawn from `rng`, chunk index); chunks run in parallel
/// when `parallel`, with the same numbers either way.
pub fn fill_gaussian_chunks<T: Real>(data: &mut [T], chunk: usize, variance: f64, rng: &mut TrialRng, parallel: bool) {
    use rayon::prelude::*;
    let key: u64 = rng.random();
    let sd = variance.sqrt();
    let fill = |(block, part): (usize, &mut [T])| {
        let mut lanes = NormalLanes::from_key(splitmix64(key ^ splitmix64(block as u64)));
        fill_normal(part, sd, &mut lanes);
    };
    let chunk = chunk.max(1);
    if parallel && data.len() > chunk {
        data.par_chunks_mut(chunk).enumerate().for_each(fill);
    } else {
        data.chunks_mut(chunk).enumerate().for_each(fill);
    }
}

/// Rows of `g` (k x n, k <= n) replaced by an orthonormal basis of their span, in order
/// (classical Gram-Schmidt with one re-orthogonalization pass). Applied to a Gaussian matrix
/// this is the Q of a QR with positive diagonal, hence Haar-distributed.
pub fn orthonormalize_rows(g: &mut Array2<f64>) {
    let k = g.nrows();
    for i in 0..k {
        let (done, mut rest) = g.view_mut().split_at(Axis(0), i);
        let mut row = rest.row_mut(0);
        for _ in 0..2 {
            if i > 0 {
                let coeffs = done.dot(&row);
                let proj = done.t().dot(&coeffs);
                row -= &proj;
            }
        }
        let norm = row.dot(&row).sqrt();
        row /= norm;
    }
}

/// Fill `out` (o x i) with `gain` times a Haar-orthogonal matrix: orthonormal rows when
/// o <= i, orthonormal columns otherwise. `scratch` is reshaped as needed.
pub fn fill_orthogonal<T: Real>(mut out: ArrayViewMut2<T>, gain: f64, rng: &mut TrialRng, scratch: &mut Array2<f64>) {
    let (o, i) = out.dim();
    let (k, n) = (o.min(i), o.max(i));
    if scratch.dim() != (k, n) {
        *scratch = Array2::zeros((k, n));
    }
    fill_gaussian(scratch.view_mut(), 1.0, rng);
    orthonormalize_rows(scratch);
    let q = if o <= i { scratch.view() } else { scratch.t() };
    out.zip_mut_with(&q, |w, &v| *w = T::of(gain * v));
}

/// Normalize every row of `out` to Euclidean norm `gain`.
fn normalize_rows<T: Real>(mut out: ArrayViewMut2<T>, gain: f64) {
    for mut row in out.rows_mut() {
        let norm: f64 = row.iter().map(|x| x.f64() * x.f64()).sum::<f64>().sqrt();
        let scale = T::of(gain / norm);
        row.mapv_inplace(|x| x * scale);
    }
}

/// Draw W^l for a layer with `fan_in = n_{l-1}` and `fan_out = n_l` into `out` (n_l x n_{l-1}).
pub fn draw_layer<T: Real>(
    weights: &Weights,
    fan_in: usize,
    fan_out: usize,
    rng: &mut TrialRng,
    out: &mut Array2<T>,
    scratch: &mut Array2<f64>,
    parallel: bool,
) {
    if out.dim() != (fan_out, fan_in) {
        *out = Array2::zeros((fan_out, fan_in));
    }
    match *weights {
        Weights::Plain(Init::Orthogonal { gain }) => fill_orthogonal(out.view_mut(), gain, rng, scratch),
        Weights::Plain(init) => fill_gaussian_blocks(out, init.variance(fan_in, fan_out), rng, parallel),
        Weights::Normalized(WeightNorm { gain, direction }) => {
            let g = WeightNorm { gain, direction }.gain(fan_in, fan_out);
            match direction {
                Direction::Gaussian => fill_gaussian_blocks(out, 1.0, rng, parallel),
                Direction::Orthogonal => fill_orthogonal(out.view_mut(), 1.0, rng, scratch),
            }
            normalize_rows(out.view_mut(), g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::trial_rng;
    use ndarray::Array1;

    #[test]
    fn orthogonal_layer_preserves_norm_exactly() {
        // n_l >= n_{l-1}: orthonormal columns, so ||W h|| = gain ||h|| for every h.
        let mut rng = trial_rng(3, 0);
        let mut w = Array2::<f64>::zeros((300, 200));
        let mut scratch = Array2::zeros((0, 0));
        fill_orthogonal(w.view_mut(), 1.7, &mut rng, &mut scratch);
        for _ in 0..5 {
            let h: Array1<f64> = (0..200).map(|_| f64::standard_normal(&mut rng)).collect();
            let ratio = w.dot(&h).dot(&w.dot(&h)).sqrt() / h.dot(&h).sqrt();
            assert!((ratio / 1.7 - 1.0).abs() < 1e-12, "{ratio}");
        }
        // W^T W = gain^2 I
        let gram = w.t().dot(&w);
        for ((a, b), v) in gram.indexed_iter() {
            let want = if a == b { 1.7 * 1.7 } else { 0.0 };
            assert!((v - want).abs() < 1e-12);
        }
    }

    #[test]
    fn orthogonal_rows_when_narrowing() {
        let mut rng = trial_rng(4, 0);
        let mut w = Array2::<f64>::zeros((50, 120));
        let mut scratch = Array2::zeros((0, 0));
        fill_orthogonal(w.view_mut(), 1.0, &mut rng, &mut scratch);
        let gram = w.dot(&w.t());
        for ((a, b), v) in gram.indexed_iter() {
            assert!((v - if a == b { 1.0 } else { 0.0 }).abs() < 1e-12);
        }
    }

    #[test]
    fn block_streams_do_not_depend_on_parallelism() {
        let mut a = Array2::<f64>::zeros((100, 70));
        let mut b = Array2::<f64>::zeros((100, 70));
        fill_gaussian_blocks(&mut a, 2.0, &mut trial_rng(9, 1), false);
        fill_gaussian_blocks(&mut b, 2.0, &mut trial_rng(9, 1), true);
        assert_eq!(a, b);
        // and the entries have the variance asked for (7000 draws: SE of the variance 0.034)
        let var = a.iter().map(|x| x * x).sum::<f64>() / a.len() as f64;
        assert!((var - 2.0).abs() < 5.0 * 2.0 * (2.0f64 / 7000.0).sqrt(), "{var}");
    }

    #[test]
    fn weight_norm_rows_have_the_gain() {
        let mut rng = trial_rng(5, 0);
        let mut w = Array2::<f32>::zeros((0, 0));
        let mut scratch = Array2::zeros((0, 0));
        let wn = Weights::Normalized(WeightNorm {
            gain: crate::spec::WeightNormGain::Fixed(3.0),
            direction: Direction::Gaussian,
        });
        draw_layer(&wn, 40, 30, &mut rng, &mut w, &mut scratch, false);
        for row in w.rows() {
            let n: f64 = row.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            assert!((n - 3.0).abs() < 1e-5);
        }
    }
}
