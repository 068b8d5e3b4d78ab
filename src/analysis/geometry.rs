//! What a `geometry` job reports: per initial angle and layer, the measured cosine similarity and
//! distance ratio of the input pairs (mean, spread, standard error across networks) beside the
//! infinite-width prediction of the ReLU arc-cosine map.
//!
//! Each network is first reduced to moments per (angle, layer) ([`NetworkMoments`], what a unit
//! stores); the report merges them in network order, so it is the same bits whichever process
//! computed which network.

use serde::{Deserialize, Serialize};

use super::stats::nan_if_null;
use crate::sim::geometry::PairMeasures;
use crate::spec::{Geometry, Network};
use crate::theory::kernels::{distance_ratio, relu_cosine_iterated};

/// Count, mean, sum of squared deviations, min and max of the defined (non-NaN) values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub count: u64,
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Moments {
    pub const EMPTY: Moments = Moments {
        count: 0,
        mean: f64::NAN,
        m2: 0.0,
        min: f64::NAN,
        max: f64::NAN,
    };

    /// The moments of the defined values (two passes, so the spread of values near 1 is exact).
    pub fn of(values: &[f64]) -> Moments {
        let defined = || values.iter().copied().filter(|v| !v.is_nan());
        let count = defined().count() as u64;
        if count == 0 {
            return Moments::EMPTY;
        }
        let mean = defined().sum::<f64>() / count as f64;
        Moments {
            count,
            mean,
            m2: defined().map(|v| (v - mean) * (v - mean)).sum(),
            min: defined().fold(f64::INFINITY, f64::min),
            max: defined().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// The moments of both groups together (Chan et al.'s pairwise update).
    pub fn merge(self, other: Moments) -> Moments {
        if other.count == 0 {
            return self;
        }
        if self.count == 0 {
            return other;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let delta = other.mean - self.mean;
        Moments {
            count: self.count + other.count,
            mean: self.mean + delta * nb / n,
            m2: self.m2 + other.m2 + delta * delta * na * nb / n,
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }

    /// Sample standard deviation (n - 1); NaN below two values.
    pub fn std(&self) -> f64 {
        if self.count < 2 {
            f64::NAN
        } else {
            (self.m2 / (self.count - 1) as f64).sqrt()
        }
    }
}

/// One network's moments per (angle a, layer l), at index `a * (L + 1) + l`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkMoments {
    pub cosine: Vec<Moments>,
    pub distance_ratio: Vec<Moments>,
}

const PACKED: usize = 5;

impl NetworkMoments {
    /// Reduce one network's pair measures (P pairs per (angle, layer)).
    pub fn of(measures: &PairMeasures, pairs: usize) -> NetworkMoments {
        let reduce = |v: &[f64]| v.chunks(pairs.max(1)).map(Moments::of).collect();
        NetworkMoments {
            cosine: reduce(&measures.cosine),
            distance_ratio: reduce(&measures.distance_ratio),
        }
    }

    /// Flat f64s (five per moments, cosines first), to store exactly.
    pub fn pack(&self) -> Vec<f64> {
        self.cosine
            .iter()
            .chain(&self.distance_ratio)
            .flat_map(|m| [m.count as f64, m.mean, m.m2, m.min, m.max])
            .collect()
    }

    /// The inverse of [`NetworkMoments::pack`].
    pub fn unpack(values: &[f64]) -> Result<NetworkMoments, String> {
        if !values.len().is_multiple_of(2 * PACKED) {
            return Err(format!("{} stored values are not whole moments", values.len()));
        }
        let all: Vec<Moments> = values
            .chunks_exact(PACKED)
            .map(|c| Moments {
                count: c[0] as u64,
                mean: c[1],
                m2: c[2],
                min: c[3],
                max: c[4],
            })
            .collect();
        let half = all.len() / 2;
        Ok(NetworkMoments {
            cosine: all[..half].to_vec(),
            distance_ratio: all[half..].to_vec(),
        })
    }
}

/// Mean, spread and standard error of one quantity at one (angle, layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PairStat {
    /// Over every pair of every network.
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub mean: f64,
    /// Sample standard deviation over every pair of every network (the spread one pair sees).
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub std: f64,
    /// Standard error of `mean`: the standard deviation of the networks' own means over
    /// sqrt(networks) (pairs through one network share its weights, so they are not independent);
    /// null with one network.
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub standard_error: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub min: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub max: f64,
    /// Root mean square over every pair of every network: sqrt(mean of the squares). For the
    /// distance ratio this is what the prediction describes (sqrt of an expected square); the
    /// mean ratio lies below it by Jensen's gap (about (5/8) sum_l 1/n_l relative under he/out).
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub rms: f64,
    /// Standard error of `rms` (from the networks' mean squares, by the delta method); null with
    /// one network.
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub rms_standard_error: f64,
}

/// The infinite-width prediction at one (angle, layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GeometryPrediction {
    /// The arc-cosine map c -> (sqrt(1 - c^2) + (pi - arccos c) c) / pi applied l times to the
    /// initial cosine: the limit of cos(h^l(x), h^l(y)) (post-activation vectors) under i.i.d.
    /// Gaussian weights without bias, whatever their variance.
    pub cosine: f64,
    /// sqrt(q_l (1 - c_l) / (1 - c_0)): the limit of ||h^l(x) - h^l(y)|| / ||x - y|| (null where
    /// it overflows).
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub distance_ratio: f64,
    /// q_l = prod_{k <= l} n_k E[W_kij^2] / 2, the expected ||h^l||^2 / ||x||^2 (1 under he/out;
    /// null where it overflows).
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub norm_ratio_squared: f64,
}

/// One row of a `geometry` job: an initial angle at one layer (layer 0: the inputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GeometryLayer {
    /// The initial angle between x and y, degrees.
    pub angle_deg: f64,
    /// cos of the initial angle, c_0.
    pub initial_cosine: f64,
    /// 0 for the inputs, 1..L for the hidden layers.
    pub layer: usize,
    /// n_l (n_0 at layer 0).
    pub width: usize,
    /// Networks measured.
    pub networks: usize,
    /// Pairs measured (pairs x networks).
    pub pairs: u64,
    /// Pairs whose cosine is undefined (h^l(x) or h^l(y) entirely zero); left out of `cosine`.
    pub undefined: u64,
    /// cos(h^l(x), h^l(y)).
    pub cosine: PairStat,
    /// ||h^l(x) - h^l(y)|| / ||x - y||.
    pub distance_ratio: PairStat,
    pub predicted: GeometryPrediction,
    /// (measured mean cosine - predicted cosine) / standard error; null at layer 0, with one
    /// network, or where the standard error is zero.
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub cosine_z: f64,
}

/// The predicted squared-norm ratio q_l for l = 0..=L.
fn norm_ratios_squared(network: &Network) -> Vec<f64> {
    let mut q = vec![1.0];
    for l in 1..=network.depth() {
        let step = network.widths[l - 1] as f64 * network.weight_variance(l) / 2.0;
        q.push(q[l - 1] * step);
    }
    q
}

/// The mean of the squares of the values behind `m`.
fn mean_square(m: &Moments) -> f64 {
    m.mean * m.mean + m.m2 / m.count as f64
}

/// Standard error of the mean of `values` (one per network): their std over sqrt(count).
fn standard_error(values: &[f64]) -> f64 {
    if values.len() >= 2 {
        let m = Moments::of(values);
        m.std() / (m.count as f64).sqrt()
    } else {
        f64::NAN
    }
}

fn stat(pooled: Moments, networks: &[Moments]) -> PairStat {
    let defined: Vec<&Moments> = networks.iter().filter(|m| m.count > 0).collect();
    let means: Vec<f64> = defined.iter().map(|m| m.mean).collect();
    let squares: Vec<f64> = defined.iter().map(|m| mean_square(m)).collect();
    let rms = if pooled.count > 0 {
        mean_square(&pooled).sqrt()
    } else {
        f64::NAN
    };
    PairStat {
        mean: pooled.mean,
        std: pooled.std(),
        standard_error: standard_error(&means),
        min: pooled.min,
        max: pooled.max,
        rms,
        rms_standard_error: standard_error(&squares) / (2.0 * rms),
    }
}

/// The report rows, angle-major then layer, from every network's moments in network order.
pub fn build_geometry(network: &Network, geometry: &Geometry, networks: &[NetworkMoments]) -> Vec<GeometryLayer> {
    let layers = network.depth() + 1;
    let q = norm_ratios_squared(network);
    let mut rows = Vec::with_capacity(geometry.angles_deg.len() * layers);
    for (a, &deg) in geometry.angles_deg.iter().enumerate() {
        let c0 = cos_deg(deg);
        for (l, &q_l) in q.iter().enumerate() {
            let i = a * layers + l;
            let pooled = |pick: fn(&NetworkMoments) -> &Vec<Moments>| {
                networks.iter().fold(Moments::EMPTY, |acc, n| acc.merge(pick(n)[i]))
            };
            let each = |pick: fn(&NetworkMoments) -> &Vec<Moments>| -> Vec<Moments> {
                networks.iter().map(|n| pick(n)[i]).collect()
            };
            let cos_pooled = pooled(|n| &n.cosine);
            let dist_pooled = pooled(|n| &n.distance_ratio);
            let cosine = stat(cos_pooled, &each(|n| &n.cosine));
            let predicted_cos = relu_cosine_iterated(c0, l);
            // Layer 0 is the inputs: their cosine is c0 up to rounding, nothing to test.
            let z = if l > 0 && cosine.standard_error > 0.0 {
                (cosine.mean - predicted_cos) / cosine.standard_error
            } else {
                f64::NAN
            };
            rows.push(GeometryLayer {
                angle_deg: deg,
                initial_cosine: c0,
                layer: l,
                width: if l == 0 {
                    network.input_dim
                } else {
                    network.widths[l - 1]
                },
                networks: networks.len(),
                pairs: dist_pooled.count,
                undefined: dist_pooled.count.saturating_sub(cos_pooled.count),
                cosine,
                distance_ratio: stat(dist_pooled, &each(|n| &n.distance_ratio)),
                predicted: GeometryPrediction {
                    cosine: predicted_cos,
                    distance_ratio: distance_ratio(c0, predicted_cos, q_l),
                    norm_ratio_squared: q_l,
                },
                cosine_z: z,
            });
        }
    }
    rows
}

/// cos of an angle in degrees, as the pairs are drawn.
pub fn cos_deg(deg: f64) -> f64 {
    Geometry::cos_sin(deg).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_moments_equal_the_moments_of_all_values() {
        let a = [0.3, 0.5, 0.9, f64::NAN, 0.1];
        let b = [0.7, 0.2];
        let all: Vec<f64> = a.iter().chain(&b).copied().collect();
        let m = Moments::of(&a).merge(Moments::of(&b));
        let w = Moments::of(&all);
        assert_eq!(m.count, 6);
        assert!((m.mean - w.mean).abs() < 1e-15);
        assert!((m.m2 - w.m2).abs() < 1e-15);
        assert_eq!((m.min, m.max), (0.1, 0.9));
        let n = NetworkMoments {
            cosine: vec![m, Moments::EMPTY],
            distance_ratio: vec![w, w],
        };
        let back = NetworkMoments::unpack(&n.pack()).unwrap();
        assert_eq!(back.cosine[0], m);
        assert_eq!(back.cosine[1].count, 0);
        assert_eq!(back.distance_ratio, n.distance_ratio);
    }
}
