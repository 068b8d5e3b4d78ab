//! Width (x depth) sweeps: one pooled result per grid point, and the empirical frontier
//! beside every bound's minimal width (docs/theory.md section 9).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::report::{build_report, Probability};
use super::stats::DeviationStats;
use super::verdict::{lower_limit, CONFIDENCE};
use crate::sim::plan::SpecPlan;
use crate::sim::rng::splitmix64;
use crate::sim::Simulation;
use crate::spec::names::string_enum;
use crate::spec::{Spec, SweepPoint};
use crate::theory::bounds::{evaluate, Bound, BoundInputs};

/// Multiplier of the point index in [`point_seed`] (the 64-bit golden ratio).
const POINT_SEED_MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// The seed of point `index` of a sweep with seed `seed`: points are independent and each is
/// reproducible on its own. [`point_seed_rule`] describes this function in the stamp.
pub fn point_seed(seed: u64, index: usize) -> u64 {
    splitmix64(seed ^ (index as u64 + 1).wrapping_mul(POINT_SEED_MULTIPLIER))
}

/// [`point_seed`] in words, for the stamp.
pub fn point_seed_rule() -> String {
    format!("point seeds = splitmix64(seed ^ (point + 1) * {POINT_SEED_MULTIPLIER:#X})")
}

/// The `norms` spec of one sweep point: uniform width and depth, its own seed.
pub fn point_spec(spec: &Spec, point: SweepPoint) -> Spec {
    spec.with_point(point.width, point.depth, point_seed(spec.seed, point.index))
}

/// One bound at one grid point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PointBound {
    pub bound: String,
    /// Epsilon the bound guarantees at this width and depth.
    pub guaranteed_epsilon: Option<f64>,
    /// Minimal width the bound requires for the spec's epsilon at this depth.
    pub min_width: Option<u64>,
}

/// The pooled result of one sweep point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PointReport {
    pub point: usize,
    pub width: usize,
    pub depth: usize,
    /// This point's own seed (`point_seed` of the job's seed): any unsigned 64-bit integer.
    #[schema(minimum = 0, maximum = 18446744073709551615u64, format = "uint64")]
    pub seed: u64,
    /// The engine that ran this point (`auto` may choose per point).
    #[serde(default)]
    pub engine: String,
    pub forward_deviation: DeviationStats,
    pub gradient_deviation: DeviationStats,
    #[serde(deserialize_with = "super::stats::nan_if_null")]
    #[schema(nullable)]
    pub max_deviation: f64,
    /// Probability over networks that every layer of every sample stays within 1 +/- epsilon.
    pub all_within: Probability,
    pub bounds: Vec<PointBound>,
    /// Residual networks only: the output's forward ratio and the input's backward ratio.
    #[serde(default)]
    pub residual: Option<ResidualPoint>,
}

/// A residual point's headline: forward ratio ||h^B|| / ||x|| at the last block and backward
/// ratio ||dL/dx|| / ||dL/dh^B|| at the first, measured (mean and root mean square over every
/// network's inputs) and predicted (docs/theory.md section 7.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResidualPoint {
    pub blocks: usize,
    #[serde(deserialize_with = "super::stats::nan_if_null")]
    #[schema(nullable)]
    pub forward_mean: f64,
    #[serde(deserialize_with = "super::stats::nan_if_null")]
    #[schema(nullable)]
    pub forward_rms: f64,
    /// sqrt(prod_k c_k): exact root mean square ((1 + 1/B)^(B/2) for the proposed gains).
    #[serde(deserialize_with = "super::stats::nan_if_null")]
    #[schema(nullable)]
    pub predicted_forward_rms: f64,
    /// Its log-normal mean.
    #[serde(deserialize_with = "super::stats::nan_if_null")]
    #[schema(nullable)]
    pub predicted_forward_mean: f64,
    #[serde(deserialize_with = "super::stats::nan_if_null")]
    #[schema(nullable)]
    pub backward_mean: f64,
    #[serde(deserialize_with = "super::stats::nan_if_null")]
    #[schema(nullable)]
    pub backward_rms: f64,
    /// sqrt(prod_k c_k), mean field.
    #[serde(deserialize_with = "super::stats::nan_if_null")]
    #[schema(nullable)]
    pub predicted_backward_rms: f64,
}

/// The root mean square of ratios from their mean and (n - 1)-normalized std.
pub fn root_mean_square(stats: &super::stats::RatioStats) -> f64 {
    let n = stats.count as f64;
    let var = if n > 1.0 {
        stats.std * stats.std * (n - 1.0) / n
    } else {
        0.0
    };
    (stats.mean * stats.mean + var).sqrt()
}

impl PointReport {
    /// The point as JSON with the bounds also keyed by name (`guaranteed_epsilon.arpit2019`,
    /// `min_width.chernoff`, ...): what `/sweep` serves and its CSV columns read.
    pub fn to_flat_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        let by = |f: &dyn Fn(&PointBound) -> Value| -> Value {
            Value::Object(self.bounds.iter().map(|b| (b.bound.clone(), f(b))).collect())
        };
        v["guaranteed_epsilon"] = by(&|b| json!(b.guaranteed_epsilon));
        v["min_width"] = by(&|b| json!(b.min_width));
        v
    }
}

/// Summarize a finished point simulation (`point_spec` = `spec.point_spec(point)`).
pub fn point_report(point_spec: &Spec, point: SweepPoint, sim: &Simulation) -> PointReport {
    let report = build_report(point_spec, sim);
    let residual = point_spec.network.is_residual();
    let bounds = match BoundInputs::new(
        point_spec.epsilon,
        point_spec.delta,
        point.depth as u32,
        point_spec.samples as u64,
    ) {
        // The bounds make no claim about residual networks (`report::not_covered`).
        Ok(_) if residual => Vec::new(),
        Ok(inputs) => Bound::ALL
            .iter()
            .map(|&b| {
                let r = evaluate(b, &inputs, Some(point.width as u64));
                PointBound {
                    bound: b.name().into(),
                    guaranteed_epsilon: r.guaranteed_epsilon,
                    min_width: r.min_width,
                }
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    PointReport {
        point: point.index,
        width: point.width,
        depth: point.depth,
        seed: point_spec.seed,
        engine: point_spec.engine().as_str().to_string(),
        forward_deviation: report.pooled.forward_deviation,
        gradient_deviation: report.pooled.gradient_deviation,
        max_deviation: report.pooled.max_deviation,
        all_within: report.pooled.all_within,
        bounds,
        residual: match (residual, report.layers.first(), report.layers.last()) {
            (true, Some(first), Some(last)) => Some(ResidualPoint {
                blocks: point.depth,
                forward_mean: last.forward.mean,
                forward_rms: root_mean_square(&last.forward),
                predicted_forward_rms: last.predicted.forward.mean_square.sqrt(),
                predicted_forward_mean: last.predicted.forward.mean,
                backward_mean: first.gradient.mean,
                backward_rms: root_mean_square(&first.gradient),
                predicted_backward_rms: first.predicted.gradient.mean_square.sqrt(),
            }),
            _ => None,
        },
    }
}

string_enum! {
    /// Where the true frontier lies when the swept range does not bracket it.
    pub enum Censoring {
        /// The smallest swept width already meets the target: the frontier is at or below it.
        BelowRange = "below_range",
        /// No swept width meets the target: the frontier is above the largest.
        AboveRange = "above_range",
    }
}

/// The censoring of a frontier found at `found` among `widths` (ascending).
fn censoring(found: Option<usize>, widths: &[usize]) -> Option<Censoring> {
    match found {
        None => Some(Censoring::AboveRange),
        Some(w) if widths.first() == Some(&w) => Some(Censoring::BelowRange),
        Some(_) => None,
    }
}

/// Per depth: the smallest swept width whose observed probability of staying within
/// 1 +/- epsilon reaches 1 - delta (and the Clopper-Pearson lower limit of it), beside each
/// bound's minimal width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FrontierRow {
    pub depth: usize,
    /// Smallest width with observed probability >= 1 - delta (None: no swept width reached it).
    pub empirical_min_width: Option<usize>,
    /// Smallest width whose one-sided 95% Clopper-Pearson lower limit reaches 1 - delta (a
    /// conservative frontier; the limit the verdicts use).
    pub confident_min_width: Option<usize>,
    /// Whether the empirical frontier lies outside the swept range (null: bracketed by it).
    #[serde(default)]
    pub empirical_censoring: Option<Censoring>,
    /// The same for the confident frontier.
    #[serde(default)]
    pub confident_censoring: Option<Censoring>,
    pub bounds: Vec<PointBound>,
}

pub fn frontier(spec: &Spec, points: &[PointReport]) -> Vec<FrontierRow> {
    let Some(sweep) = spec.sweep() else { return Vec::new() };
    let target = 1.0 - spec.delta;
    sweep
        .depths
        .iter()
        .map(|&depth| {
            let mut at_depth: Vec<&PointReport> = points.iter().filter(|p| p.depth == depth).collect();
            at_depth.sort_by_key(|p| p.width);
            let empirical_min_width = at_depth
                .iter()
                .find(|p| p.all_within.probability >= target)
                .map(|p| p.width);
            let confident_min_width = at_depth
                .iter()
                .find(|p| lower_limit(p.all_within.successes, p.all_within.trials, CONFIDENCE) >= target)
                .map(|p| p.width);
            let widths: Vec<usize> = at_depth.iter().map(|p| p.width).collect();
            let bounds = match BoundInputs::new(spec.epsilon, spec.delta, depth as u32, spec.samples as u64) {
                Ok(_) if spec.network.is_residual() => Vec::new(),
                Ok(inputs) => Bound::ALL
                    .iter()
                    .map(|&b| {
                        let r = evaluate(b, &inputs, None);
                        PointBound {
                            bound: b.name().into(),
                            guaranteed_epsilon: None,
                            min_width: r.min_width,
                        }
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            FrontierRow {
                depth,
                empirical_min_width,
                confident_min_width,
                empirical_censoring: censoring(empirical_min_width, &widths),
                confident_censoring: censoring(confident_min_width, &widths),
                bounds,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontiers_outside_the_swept_range_are_censored() {
        let widths = [500, 1000, 2000];
        assert_eq!(censoring(Some(500), &widths), Some(Censoring::BelowRange));
        assert_eq!(censoring(Some(1000), &widths), None);
        assert_eq!(censoring(None, &widths), Some(Censoring::AboveRange));
    }

    #[test]
    fn the_seed_rule_in_words_is_the_function() {
        // splitmix64(7 ^ (0 + 1) * 0x9E3779B97F4A7C15), by hand from the description.
        assert_eq!(point_seed(7, 0), splitmix64(7 ^ 0x9E37_79B9_7F4A_7C15));
        assert!(point_seed_rule().contains("0x9E3779B97F4A7C15"));
    }
}
