//! What a `worst_case` job reports: per grid point (input dimension n_0, width m) and layer, the
//! extremes of ||h^l(x)|| / ||x|| found by the search over the unit sphere beside the extremes over
//! the random inputs, and the certified upper bound on the supremum (the product of the layers'
//! spectral norms), as spreads across networks.
//!
//! Rows are built from every network's extremes in network order (what the units store), so they
//! are the same bits whichever process computed which network.

use serde::{Deserialize, Serialize};

use super::stats::{nan_if_null, spread, Spread};
use crate::sim::worst_case::LayerExtremes;
use crate::spec::WorstCasePoint;

/// One (grid point, layer) row of a `worst_case` job. Ratios are ||h^l(x)|| / ||x||; spreads are
/// across networks (one value per network).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorstCaseLayer {
    /// Index of the grid point (input-dimension-major).
    pub point: usize,
    /// n_0.
    pub input_dim: usize,
    /// m, the width of every hidden layer.
    pub width: usize,
    pub depth: usize,
    /// 1..L.
    pub layer: usize,
    /// The point's seed: the job's seed for a one-point grid, else `point_seed(seed, point)`.
    #[schema(minimum = 0, maximum = 18446744073709551615u64, format = "uint64")]
    pub seed: u64,
    /// Networks searched.
    pub networks: usize,
    /// sqrt(n_0 / m), the figure's abscissa.
    pub sqrt_input_dim_over_width: f64,
    /// The largest ratio the search found (a lower bound on the supremum over the sphere).
    pub found_max: Spread,
    /// The smallest ratio the search found (an upper bound on the infimum over the sphere).
    pub found_min: Spread,
    /// The largest ratio over the random inputs.
    pub random_max: Spread,
    /// The smallest ratio over the random inputs.
    pub random_min: Spread,
    /// The certified upper bound on the supremum: the product of the spectral norms' upper bounds
    /// of layers 1..l.
    pub certified_max: Spread,
    /// Lower bound on the spectral norm of W^l (a Rayleigh quotient).
    pub sigma_lo: Spread,
    /// Upper bound on the spectral norm of W^l.
    pub sigma_hi: Spread,
    /// The largest sigma_hi / sigma_lo of this layer over the networks: the stated accuracy of
    /// its spectral norm.
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub spectral_accuracy: f64,
    /// The largest certified_max / (product of sigma_lo of layers 1..l) over the networks: how
    /// far the certified bound may sit above the product of the true spectral norms.
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub certified_accuracy: f64,
    /// max(found_max - 1, 1 - found_min) per network: the worst-case deviation found.
    pub worst_deviation: Spread,
    /// max(random_max - 1, 1 - random_min) per network: the deviation over the random inputs.
    pub random_deviation: Spread,
    /// found_max <= certified_max in every network (the bracket holds).
    pub bracket_holds: bool,
    /// found_max >= random_max and found_min <= random_min in every network.
    pub search_at_least_random: bool,
}

/// The rows of one grid point, layers 1..L, from its networks' extremes (network order; each
/// network one entry per layer).
pub fn build_point(
    point: WorstCasePoint,
    depth: usize,
    seed: u64,
    networks: &[Vec<LayerExtremes>],
) -> Vec<WorstCaseLayer> {
    let mut rows = Vec::with_capacity(depth);
    let mut certified = vec![1.0f64; networks.len()];
    let mut lower_product = vec![1.0f64; networks.len()];
    for l in 1..=depth {
        let at: Vec<LayerExtremes> = networks.iter().map(|n| n[l - 1]).collect();
        for (t, e) in at.iter().enumerate() {
            certified[t] *= e.sigma_hi;
            lower_product[t] *= e.sigma_lo;
        }
        let pick = |f: fn(&LayerExtremes) -> f64| -> Vec<f64> { at.iter().map(f).collect() };
        let worst: Vec<f64> = at.iter().map(|e| (e.found_max - 1.0).max(1.0 - e.found_min)).collect();
        let random: Vec<f64> = at
            .iter()
            .map(|e| (e.random_max - 1.0).max(1.0 - e.random_min))
            .collect();
        let largest = |v: Vec<f64>| v.into_iter().fold(f64::NAN, f64::max);
        rows.push(WorstCaseLayer {
            point: point.index,
            input_dim: point.input_dim,
            width: point.width,
            depth,
            layer: l,
            seed,
            networks: networks.len(),
            sqrt_input_dim_over_width: (point.input_dim as f64 / point.width as f64).sqrt(),
            found_max: spread(&pick(|e| e.found_max)),
            found_min: spread(&pick(|e| e.found_min)),
            random_max: spread(&pick(|e| e.random_max)),
            random_min: spread(&pick(|e| e.random_min)),
            certified_max: spread(&certified),
            sigma_lo: spread(&pick(|e| e.sigma_lo)),
            sigma_hi: spread(&pick(|e| e.sigma_hi)),
            spectral_accuracy: largest(at.iter().map(|e| e.sigma_hi / e.sigma_lo).collect()),
            certified_accuracy: largest(certified.iter().zip(&lower_product).map(|(c, lo)| c / lo).collect()),
            worst_deviation: spread(&worst),
            random_deviation: spread(&random),
            bracket_holds: at.iter().zip(&certified).all(|(e, c)| e.found_max <= *c),
            search_at_least_random: at
                .iter()
                .all(|e| e.found_max >= e.random_max && e.found_min <= e.random_min),
        });
    }
    rows
}
