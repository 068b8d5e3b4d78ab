//! Pairs of inputs at chosen angles through one network (`kind: "geometry"`): the cosine
//! similarity cos(h^l(x), h^l(y)) and the distance ratio ||h^l(x) - h^l(y)|| / ||x - y|| of every
//! pair at every layer l = 0..L (l = 0: the inputs themselves).
//!
//! Shapes: the batch X is (B x n_0) with B = 2 P A rows: for angle a and pair p, row
//! 2 (a P + p) holds x and the next row y. Activations H^l are (B x n_l), W^l is (n_l x n_{l-1}),
//! H^l = ReLU(H^{l-1} (W^l)^T), as in the dense engine (forward pass only).
//!
//! Randomness: each network's stream (`trial_rng(seed, trial)`) draws its pairs first, then one
//! key per layer (the layer's weights, drawn as the dense engine draws them), so a network's
//! measures depend only on (seed, trial).

use std::sync::atomic::{AtomicU64, Ordering};

use faer::Par;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::gemm::{gemm, par_for};
use super::real::Real;
use super::rng::{trial_rng, TrialRng};
use super::weights::{draw_layer, fill_gaussian};
use super::{Cancelled, Control};
use crate::spec::{Geometry, Network, Precision, Spec};

/// The measures of one network: per angle a, layer l (0..=L) and pair p, at index
/// `(a * (L + 1) + l) * P + p`.
#[derive(Debug, Clone, PartialEq)]
pub struct PairMeasures {
    /// cos(h^l(x), h^l(y)); NaN where h^l(x) or h^l(y) is zero (every unit off).
    pub cosine: Vec<f64>,
    /// ||h^l(x) - h^l(y)|| / ||x - y||.
    pub distance_ratio: Vec<f64>,
}

/// Draw the pairs of one network into `x` (B x n_0, f64): x Gaussian, y = ||x|| (cos t x/||x|| +
/// sin t u) with u a unit vector orthogonal to x (a Gaussian draw with its x-component removed),
/// so ||y|| = ||x|| and the angle between them is t.
pub fn draw_pairs(geometry: &Geometry, input_dim: usize, rng: &mut TrialRng) -> Array2<f64> {
    let half = geometry.pairs * geometry.angles_deg.len();
    let mut first = Array2::<f64>::zeros((half, input_dim));
    let mut other = Array2::<f64>::zeros((half, input_dim));
    fill_gaussian(first.view_mut(), 1.0, rng);
    fill_gaussian(other.view_mut(), 1.0, rng);
    let mut x = Array2::<f64>::zeros((2 * half, input_dim));
    for (a, &deg) in geometry.angles_deg.iter().enumerate() {
        let (cos, sin) = Geometry::cos_sin(deg);
        for p in 0..geometry.pairs {
            let i = a * geometry.pairs + p;
            let g = first.row(i);
            let norm = g.dot(&g).sqrt();
            let mut u = other.row(i).to_owned();
            let along = u.dot(&g) / (norm * norm);
            u.scaled_add(-along, &g);
            let u_norm = u.dot(&u).sqrt();
            x.row_mut(2 * i).assign(&g);
            let mut y = x.row_mut(2 * i + 1);
            for ((yk, gk), uk) in y.iter_mut().zip(g.iter()).zip(u.iter()) {
                *yk = cos * gk + sin * norm * uk / u_norm;
            }
        }
    }
    x
}

/// Cosines and distances of consecutive row pairs of `h` into `measures` at layer `layer`;
/// `input_distance[i]` is ||x - y|| of pair i.
fn measure<T: Real>(
    h: &Array2<T>,
    geometry: &Geometry,
    layers: usize,
    layer: usize,
    input_distance: &[f64],
    out: &mut PairMeasures,
) {
    let p_count = geometry.pairs;
    for a in 0..geometry.angles_deg.len() {
        for p in 0..p_count {
            let i = a * p_count + p;
            let (x, y) = (h.row(2 * i), h.row(2 * i + 1));
            let (mut xy, mut xx, mut yy, mut dd) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            for (u, v) in x.iter().zip(y.iter()) {
                let (u, v) = (u.f64(), v.f64());
                xy += u * v;
                xx += u * u;
                yy += v * v;
                dd += (u - v) * (u - v);
            }
            let at = (a * layers + layer) * p_count + p;
            out.cosine[at] = if xx > 0.0 && yy > 0.0 {
                (xy / (xx.sqrt() * yy.sqrt())).clamp(-1.0, 1.0)
            } else {
                f64::NAN
            };
            out.distance_ratio[at] = dd.sqrt() / input_distance[i];
        }
    }
}

/// One network: draw its pairs and layers from `rng`, push the pairs forward, measure every
/// layer. `tick` is called before each layer; it reports progress and may cancel.
pub fn run_network<T: Real>(
    net: &Network,
    geometry: &Geometry,
    rng: &mut TrialRng,
    par: Par,
    tick: &mut dyn FnMut() -> Result<(), Cancelled>,
) -> Result<PairMeasures, Cancelled> {
    let depth = net.depth();
    let layers = depth + 1;
    let n = geometry.pairs * geometry.angles_deg.len() * layers;
    let mut out = PairMeasures {
        cosine: vec![0.0; n],
        distance_ratio: vec![0.0; n],
    };
    let inputs = draw_pairs(geometry, net.input_dim, rng);
    let mut cur: Array2<T> = inputs.mapv(T::of);
    drop(inputs);
    // ||x - y|| as the network sees the inputs (after rounding to T).
    let input_distance: Vec<f64> = (0..cur.nrows() / 2)
        .map(|i| {
            cur.row(2 * i)
                .iter()
                .zip(cur.row(2 * i + 1).iter())
                .map(|(u, v)| (u.f64() - v.f64()).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    measure(&cur, geometry, layers, 0, &input_distance, &mut out);
    let parallel = matches!(par, Par::Rayon(_));
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
        if next.dim() != (cur.nrows(), fan_out) {
            next = Array2::zeros((cur.nrows(), fan_out));
        }
        gemm(T::one(), cur.view(), wl.t(), next.view_mut(), par);
        next.mapv_inplace(|v| if v > T::zero() { v } else { T::zero() });
        measure(&next, geometry, layers, l, &input_distance, &mut out);
        std::mem::swap(&mut cur, &mut next);
    }
    Ok(out)
}

/// Progress units of a geometry simulation: one per layer of each network.
pub fn work_units(spec: &Spec) -> u64 {
    spec.trials as u64 * spec.network.depth() as u64
}

/// Every network of a `geometry` spec (networks `first_trial..first_trial + trials` of the
/// job's streams), on the current rayon pool, in network order.
pub fn simulate_geometry(spec: &Spec, ctl: &Control) -> Result<Vec<PairMeasures>, Cancelled> {
    let Some(geometry) = spec.geometry() else {
        return Ok(Vec::new());
    };
    let total = work_units(spec);
    let done = AtomicU64::new(0);
    let reported = std::sync::Mutex::new(0u64);
    let par = par_for(spec.trials);
    let networks = (0..spec.trials)
        .into_par_iter()
        .map(|t| {
            let mut rng = trial_rng(spec.seed, (spec.first_trial + t) as u64);
            let mut tick = || {
                if (ctl.cancelled)() {
                    return Err(Cancelled);
                }
                let d = done.fetch_add(1, Ordering::Relaxed);
                if d > 0 {
                    let mut last = reported.lock().unwrap_or_else(|p| p.into_inner());
                    if d > *last {
                        *last = d;
                        (ctl.progress)(d, total);
                    }
                }
                Ok(())
            };
            match spec.precision {
                Precision::F64 => run_network::<f64>(&spec.network, geometry, &mut rng, par, &mut tick),
                Precision::F32 => run_network::<f32>(&spec.network, geometry, &mut rng, par, &mut tick),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    (ctl.progress)(total, total);
    Ok(networks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_have_equal_norms_and_the_angle_asked_for() {
        let g = Geometry {
            pairs: 7,
            angles_deg: vec![1.0, 45.0, 90.0, 150.0, 180.0],
        };
        let x = draw_pairs(&g, 3, &mut trial_rng(5, 0));
        assert_eq!(x.dim(), (70, 3));
        for (a, deg) in g.angles_deg.iter().enumerate() {
            for p in 0..g.pairs {
                let i = a * g.pairs + p;
                let (u, v) = (x.row(2 * i), x.row(2 * i + 1));
                let (nu, nv) = (u.dot(&u).sqrt(), v.dot(&v).sqrt());
                assert!((nu / nv - 1.0).abs() < 1e-13);
                let cos = u.dot(&v) / (nu * nv);
                assert!((cos - deg.to_radians().cos()).abs() < 1e-13, "{deg}: {cos}");
            }
        }
    }
}
