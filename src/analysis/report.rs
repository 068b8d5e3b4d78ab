//! The result of a run: per-layer statistics, pooled statistics, predictions, bound checks.
//!
//! Built from a [`Simulation`] and its [`Spec`]; plain data, serialized as the JSON of
//! `widthlab run --json` and stored by the service.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::predict::{predict, LayerPrediction};
use super::stats::{
    clopper_pearson, defined_mean, deviation_stats, fraction_within, nan_if_null, ratio_stats, spread, DeviationStats,
    RatioStats, Spread,
};
pub use super::verdict::Verdict;
use super::verdict::{Claim, Evidence};
use crate::sim::Simulation;
use crate::spec::{Fan, Init, Precision, Spec, Weights};
use crate::theory::bounds::{evaluate, Bound, BoundInputs};

/// What produced a result: enough to reproduce it bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stamp {
    #[schema(minimum = 0, maximum = 18446744073709551615u64, format = "uint64")]
    pub seed: u64,
    pub rng: String,
    pub crate_version: String,
    pub precision: Precision,
    pub method: String,
}

impl Stamp {
    pub fn for_spec(spec: &Spec) -> Self {
        Stamp {
            seed: spec.seed,
            rng: crate::sim::rng::RNG_ALGORITHM.to_string(),
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            precision: spec.precision,
            method: crate::sim::plan::describe_engine(spec),
        }
    }
}

/// Fraction of the ratios within 1 +/- epsilon (null where there is none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Within {
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub forward: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub gradient: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AcrossTrials {
    /// Spread of the per-trial mean forward ratio.
    pub forward_mean: Spread,
    pub gradient_mean: Spread,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LayerReport {
    pub layer: usize,
    pub width: usize,
    pub fan_in: usize,
    /// Effective E[W_ij^2] of this layer.
    pub weight_variance: f64,
    pub forward: RatioStats,
    pub gradient: RatioStats,
    pub within_epsilon: Within,
    pub predicted: LayerPrediction,
    pub across_trials: AcrossTrials,
}

/// Observed probability over trials that every layer of every sample stays within 1 +/- epsilon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Probability {
    pub epsilon: f64,
    pub trials: u64,
    pub successes: u64,
    pub probability: f64,
    /// Clopper-Pearson 95% interval.
    pub ci_low: f64,
    pub ci_high: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PooledAcrossTrials {
    pub forward_mean_deviation: Spread,
    pub gradient_mean_deviation: Spread,
    /// Per-trial maximum of |1 - r| over layers, samples and both ratios.
    pub max_deviation: Spread,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pooled {
    pub forward: RatioStats,
    pub gradient: RatioStats,
    pub forward_deviation: DeviationStats,
    pub gradient_deviation: DeviationStats,
    /// max |1 - r| over every layer, sample, trial and both ratios.
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub max_deviation: f64,
    pub within_epsilon: Within,
    pub all_within: Probability,
    pub across_trials: PooledAcrossTrials,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaxDeviation {
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub forward: f64,
    #[serde(deserialize_with = "nan_if_null")]
    #[schema(nullable)]
    pub gradient: f64,
}

/// The evidence about each of a bound's claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimsEvidence {
    pub forward: Evidence,
    pub gradient: Evidence,
    /// Forward and gradient ratios at once (the theorem's claim).
    pub both: Evidence,
}

/// One bound held against one finished simulation: evidence about the bound's own claim at the
/// actual width (see `analysis::verdict`), and whether that width meets the spec's epsilon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoundCheck {
    pub bound: String,
    /// Minimal width the bound requires for the spec's epsilon (None: beyond the search limit).
    pub required_width: Option<u64>,
    /// Smallest hidden width of the network.
    pub actual_width: u64,
    /// The spec's epsilon.
    pub epsilon: f64,
    /// Whether the actual width is at least the width this bound requires for the spec's
    /// epsilon (false when that width is beyond the search limit).
    pub meets_epsilon: bool,
    /// The epsilon the bound guarantees at the actual width.
    pub guaranteed_epsilon: Option<f64>,
    /// The guarantee is >= 1: its lower side (ratio >= 1 - epsilon) says nothing, and only the
    /// upper side (ratio <= 1 + epsilon) is tested.
    pub lower_side_vacuous: bool,
    pub observed_max_deviation: MaxDeviation,
    /// At the spec's epsilon (both ratios; two-sided 95% Clopper-Pearson interval).
    pub observed: Probability,
    /// At the guaranteed epsilon (both ratios; two-sided 95% interval).
    pub observed_at_guaranteed: Option<Probability>,
    /// The evidence about the bound's claim at the actual width, per claim.
    pub claims: ClaimsEvidence,
    /// The headline: the claim on both ratios, or on the forward ratio alone where the
    /// gradient claim does not apply.
    pub verdict: Verdict,
    pub reason: String,
}

/// The full result of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub spec: Value,
    /// The variance rule of the hidden layers, in words.
    pub variance_rule: String,
    pub stamp: Stamp,
    pub layers: Vec<LayerReport>,
    pub pooled: Pooled,
    pub bound_checks: Vec<BoundCheck>,
}

/// Largest |1 - r| of each network, per ratio (NaN counts as infinite).
#[derive(Debug, Clone)]
pub struct TrialMaxDeviation {
    pub forward: Vec<f64>,
    pub gradient: Vec<f64>,
    /// Over both ratios.
    pub both: Vec<f64>,
}

fn max_deviation(ratios: &[f64]) -> f64 {
    ratios
        .iter()
        .map(|r| if r.is_nan() { f64::INFINITY } else { (1.0 - r).abs() })
        .fold(0.0, f64::max)
}

/// Per-trial maximum deviations of every layer and sample.
fn trial_max_deviation(sim: &Simulation) -> TrialMaxDeviation {
    let forward: Vec<f64> = sim.trials.iter().map(|t| max_deviation(&t.forward)).collect();
    let gradient: Vec<f64> = sim.trials.iter().map(|t| max_deviation(&t.gradient)).collect();
    let both = forward.iter().zip(&gradient).map(|(f, g)| f.max(*g)).collect();
    TrialMaxDeviation {
        forward,
        gradient,
        both,
    }
}

fn probability_within(max_dev: &[f64], epsilon: f64) -> Probability {
    let trials = max_dev.len() as u64;
    let successes = max_dev.iter().filter(|d| **d <= epsilon).count() as u64;
    let (ci_low, ci_high) = clopper_pearson(successes, trials, 0.05);
    Probability {
        epsilon,
        trials,
        successes,
        probability: successes as f64 / trials as f64,
        ci_low,
        ci_high,
    }
}

fn per_trial(sim: &Simulation, f: impl Fn(usize) -> f64) -> Vec<f64> {
    (0..sim.trials.len()).map(f).collect()
}

pub fn build_report(spec: &Spec, sim: &Simulation) -> RunReport {
    let net = &spec.network;
    let predictions = predict(net, spec.input);
    // Layers are independent: built side by side on the current pool, collected in order.
    let layers: Vec<LayerReport> = predictions
        .into_par_iter()
        .take(net.depth())
        .enumerate()
        .map(|(i, predicted)| {
            let l = i + 1;
            let fwd: Vec<f64> = (0..sim.trials.len())
                .flat_map(|t| sim.forward(t, l).iter().copied())
                .collect();
            let grad: Vec<f64> = (0..sim.trials.len())
                .flat_map(|t| sim.gradient(t, l).iter().copied())
                .collect();
            let across_trials = AcrossTrials {
                forward_mean: spread(&per_trial(sim, |t| defined_mean(sim.forward(t, l)))),
                gradient_mean: spread(&per_trial(sim, |t| defined_mean(sim.gradient(t, l)))),
            };
            LayerReport {
                layer: l,
                width: net.widths[l - 1],
                fan_in: net.fan_in(l),
                weight_variance: net.weight_variance(l),
                within_epsilon: Within {
                    forward: fraction_within(&fwd, spec.epsilon),
                    gradient: fraction_within(&grad, spec.epsilon),
                },
                forward: ratio_stats(fwd),
                gradient: ratio_stats(grad),
                predicted,
                across_trials,
            }
        })
        .collect();
    let all_fwd: Vec<f64> = sim.trials.iter().flat_map(|t| t.forward.iter().copied()).collect();
    let all_grad: Vec<f64> = sim.trials.iter().flat_map(|t| t.gradient.iter().copied()).collect();
    let trial_max = trial_max_deviation(sim);
    let max_dev = &trial_max.both;
    let forward_deviation = deviation_stats(&all_fwd);
    let gradient_deviation = deviation_stats(&all_grad);
    let pooled = Pooled {
        max_deviation: max_dev.iter().copied().fold(0.0, f64::max),
        within_epsilon: Within {
            forward: fraction_within(&all_fwd, spec.epsilon),
            gradient: fraction_within(&all_grad, spec.epsilon),
        },
        all_within: probability_within(max_dev, spec.epsilon),
        across_trials: PooledAcrossTrials {
            forward_mean_deviation: spread(&per_trial(sim, |t| deviation_stats(&sim.trials[t].forward).mean)),
            gradient_mean_deviation: spread(&per_trial(sim, |t| deviation_stats(&sim.trials[t].gradient).mean)),
            max_deviation: spread(max_dev),
        },
        forward: ratio_stats(all_fwd),
        gradient: ratio_stats(all_grad),
        forward_deviation,
        gradient_deviation,
    };
    let bound_checks = Bound::ALL
        .iter()
        .map(|&b| bound_check(b, spec, &pooled, &trial_max))
        .collect();
    RunReport {
        spec: spec.to_json(),
        variance_rule: net.variance_rule(),
        stamp: Stamp::for_spec(spec),
        layers,
        pooled,
        bound_checks,
    }
}

/// Why the theorem does not cover this network's claims, if it does not: (forward and both,
/// gradient).
fn not_covered(spec: &Spec) -> (Option<String>, Option<String>) {
    let net = &spec.network;
    if net.is_residual() {
        let why = "the width bounds are about fully connected ReLU networks; a residual network's blocks add \
                   their input back (no ReLU after the sum), so no bound here makes a claim about it"
            .to_string();
        return (Some(why.clone()), Some(why));
    }
    if net.weights != Weights::Plain(Init::He { fan: Fan::Out }) {
        let why = "the theorem covers Gaussian weights N(0, 2/n_l) (he, fan out) without weight norm".to_string();
        return (Some(why.clone()), Some(why));
    }
    if !net.is_uniform() {
        return (
            None,
            Some(
                "the gradient claim is about equal hidden widths: with He fan-out the backward norm scales by \
                 n_(l-1)/n_l per layer, so the gradient ratio concentrates near sqrt(n_l/n_L), not 1"
                    .into(),
            ),
        );
    }
    (None, None)
}

/// Hold one bound against the simulation: the evidence about the bound's own claim at the
/// actual width, for the forward ratio, the gradient ratio and both (`analysis::verdict`).
pub fn bound_check(bound: Bound, spec: &Spec, pooled: &Pooled, max_dev: &TrialMaxDeviation) -> BoundCheck {
    let net = &spec.network;
    let actual_width = net.min_width() as u64;
    let (forward_na, gradient_na) = not_covered(spec);
    // A network outside the theorem gets no bound numbers at all.
    let report = match &forward_na {
        Some(why) => Err(why.clone()),
        None => BoundInputs::new(spec.epsilon, spec.delta, net.depth() as u32, spec.samples as u64)
            .map(|inputs| evaluate(bound, &inputs, Some(actual_width)))
            .map_err(|e| format!("bound inputs out of range: {e}")),
    };
    let (required_width, guaranteed) = match &report {
        Ok(r) => (r.min_width, r.guaranteed_epsilon.filter(|g| g.is_finite())),
        Err(_) => (None, None),
    };
    let judge = |claim: Claim, devs: &[f64], na: &Option<String>| -> Evidence {
        match (na, guaranteed, &report) {
            (Some(why), _, _) => Evidence::not_applicable(claim, spec.delta, why.clone()),
            (None, _, Err(e)) => Evidence::not_applicable(claim, spec.delta, e.clone()),
            (None, None, Ok(_)) => Evidence::not_applicable(
                claim,
                spec.delta,
                "the bound guarantees no finite epsilon at this width",
            ),
            (None, Some(g), Ok(_)) => Evidence::judge(claim, g, devs, spec.delta),
        }
    };
    let both_na = forward_na.clone().or_else(|| gradient_na.clone());
    let claims = ClaimsEvidence {
        forward: judge(Claim::Forward, &max_dev.forward, &forward_na),
        gradient: judge(Claim::Gradient, &max_dev.gradient, &gradient_na),
        both: judge(Claim::Both, &max_dev.both, &both_na),
    };
    let headline = if claims.both.verdict == Verdict::NotApplicable && forward_na.is_none() {
        &claims.forward
    } else {
        &claims.both
    };
    let lower_side_vacuous = guaranteed.is_some_and(|g| g >= 1.0);
    let mut reason = match (&forward_na, &gradient_na, headline.claim) {
        (None, Some(why), Claim::Forward) => format!(
            "forward claim: {}; gradient claim not applicable: {why}",
            headline.reason
        ),
        _ => headline.reason.clone(),
    };
    if lower_side_vacuous && headline.verdict != Verdict::NotApplicable {
        reason.push_str("; the guarantee is >= 1, so only its upper side (ratio <= 1 + epsilon) is tested");
    }
    BoundCheck {
        bound: bound.name().to_string(),
        required_width,
        actual_width,
        epsilon: spec.epsilon,
        meets_epsilon: required_width.is_some_and(|r| actual_width >= r),
        guaranteed_epsilon: guaranteed,
        lower_side_vacuous,
        observed_max_deviation: MaxDeviation {
            forward: pooled.forward_deviation.max,
            gradient: pooled.gradient_deviation.max,
        },
        observed: probability_within(&max_dev.both, spec.epsilon),
        observed_at_guaranteed: guaranteed.map(|g| probability_within(&max_dev.both, g)),
        verdict: headline.verdict,
        reason,
        claims,
    }
}
