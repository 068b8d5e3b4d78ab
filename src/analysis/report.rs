//! The result of a run: per-layer statistics, pooled statistics, predictions, bound checks.
//!
//! Built from a [`Simulation`] and its [`Spec`]; plain data, serialized as the JSON of
//! `widthlab run --json` and stored by the service.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::stats::{
    clopper_pearson, deviation_stats, fraction_within, nan_if_null, ratio_stats, spread, DeviationStats, RatioStats,
    Spread,
};
use crate::sim::plan::SpecPlan;
use crate::sim::Simulation;
use crate::spec::names::string_enum;
use crate::spec::{Fan, Init, Precision, Spec, Weights};
use crate::theory::bounds::{evaluate, Bound, BoundInputs};
use crate::theory::predict::{predict, LayerPrediction};

/// What produced a result: enough to reproduce it bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stamp {
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
            method: spec.engine().describe().to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Within {
    #[serde(deserialize_with = "nan_if_null")]
    pub forward: f64,
    #[serde(deserialize_with = "nan_if_null")]
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
    pub max_deviation: f64,
    pub within_epsilon: Within,
    pub all_within: Probability,
    pub across_trials: PooledAcrossTrials,
}

string_enum! {
    /// What a simulation says about a bound's claim.
    pub enum Verdict {
        Holds = "holds",
        Violated = "violated",
        Vacuous = "vacuous",
        NotApplicable = "not_applicable",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaxDeviation {
    #[serde(deserialize_with = "nan_if_null")]
    pub forward: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub gradient: f64,
}

/// One bound held against one finished simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoundCheck {
    pub bound: String,
    /// Minimal width the bound requires for the spec's epsilon (None: beyond the search limit).
    pub required_width: Option<u64>,
    /// Smallest hidden width of the network.
    pub actual_width: u64,
    pub epsilon: f64,
    /// The epsilon the bound guarantees at the actual width.
    pub guaranteed_epsilon: Option<f64>,
    pub observed_max_deviation: MaxDeviation,
    /// At the spec's epsilon.
    pub observed: Probability,
    /// At the guaranteed epsilon: the claim the bound makes at this width.
    pub observed_at_guaranteed: Option<Probability>,
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

/// Per-trial maximum deviation over both ratios, every layer and sample (NaN counts as infinite).
fn trial_max_deviation(sim: &Simulation) -> Vec<f64> {
    sim.trials
        .iter()
        .map(|t| {
            t.forward
                .iter()
                .chain(&t.gradient)
                .map(|r| if r.is_nan() { f64::INFINITY } else { (1.0 - r).abs() })
                .fold(0.0, f64::max)
        })
        .collect()
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
    let predictions = predict(net);
    let mut layers = Vec::with_capacity(net.depth());
    for (l, predicted) in (1..=net.depth()).zip(predictions) {
        let fwd: Vec<f64> = (0..sim.trials.len())
            .flat_map(|t| sim.forward(t, l).iter().copied())
            .collect();
        let grad: Vec<f64> = (0..sim.trials.len())
            .flat_map(|t| sim.gradient(t, l).iter().copied())
            .collect();
        let across_trials = AcrossTrials {
            forward_mean: spread(&per_trial(sim, |t| ratio_stats(sim.forward(t, l).to_vec()).mean)),
            gradient_mean: spread(&per_trial(sim, |t| ratio_stats(sim.gradient(t, l).to_vec()).mean)),
        };
        layers.push(LayerReport {
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
        });
    }
    let all_fwd: Vec<f64> = sim.trials.iter().flat_map(|t| t.forward.iter().copied()).collect();
    let all_grad: Vec<f64> = sim.trials.iter().flat_map(|t| t.gradient.iter().copied()).collect();
    let max_dev = trial_max_deviation(sim);
    let forward_deviation = deviation_stats(&all_fwd);
    let gradient_deviation = deviation_stats(&all_grad);
    let pooled = Pooled {
        max_deviation: max_dev.iter().copied().fold(0.0, f64::max),
        within_epsilon: Within {
            forward: fraction_within(&all_fwd, spec.epsilon),
            gradient: fraction_within(&all_grad, spec.epsilon),
        },
        all_within: probability_within(&max_dev, spec.epsilon),
        across_trials: PooledAcrossTrials {
            forward_mean_deviation: spread(&per_trial(sim, |t| deviation_stats(&sim.trials[t].forward).mean)),
            gradient_mean_deviation: spread(&per_trial(sim, |t| deviation_stats(&sim.trials[t].gradient).mean)),
            max_deviation: spread(&max_dev),
        },
        forward: ratio_stats(all_fwd),
        gradient: ratio_stats(all_grad),
        forward_deviation,
        gradient_deviation,
    };
    let bound_checks = Bound::ALL
        .iter()
        .map(|&b| bound_check(b, spec, &pooled, &max_dev))
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

/// Hold one bound against the simulation. The claim tested is the bound's own at this width:
/// with probability >= 1 - delta every ratio lies within 1 +/- guaranteed epsilon. It is
/// `violated` when the Clopper-Pearson upper limit of the observed probability is below 1 - delta.
pub fn bound_check(bound: Bound, spec: &Spec, pooled: &Pooled, max_dev: &[f64]) -> BoundCheck {
    let net = &spec.network;
    let actual_width = net.min_width() as u64;
    let observed_max_deviation = MaxDeviation {
        forward: pooled.forward_deviation.max,
        gradient: pooled.gradient_deviation.max,
    };
    let observed = probability_within(max_dev, spec.epsilon);
    let mut check = BoundCheck {
        bound: bound.name().to_string(),
        required_width: None,
        actual_width,
        epsilon: spec.epsilon,
        guaranteed_epsilon: None,
        observed_max_deviation,
        observed,
        observed_at_guaranteed: None,
        verdict: Verdict::NotApplicable,
        reason: String::new(),
    };
    if net.weights != Weights::Plain(Init::He { fan: Fan::Out }) {
        check.reason = "the theorem covers Gaussian weights N(0, 2/n_l) (he, fan out) without weight norm".into();
        return check;
    }
    let inputs = match BoundInputs::new(spec.epsilon, spec.delta, net.depth() as u32, spec.samples as u64) {
        Ok(i) => i,
        Err(e) => {
            check.reason = format!("bound inputs out of range: {e}");
            return check;
        }
    };
    let report = evaluate(bound, &inputs, Some(actual_width));
    check.required_width = report.min_width;
    check.guaranteed_epsilon = report.guaranteed_epsilon;
    let below = report.min_width.is_none_or(|r| actual_width < r);
    // The bound's own claim at this width is reported whatever the verdict, so a vacuous check
    // (e.g. m = 4000 just below the 4061 required for epsilon 0.15) still shows whether
    // 1 +/- epsilon(m) held.
    check.observed_at_guaranteed = report
        .guaranteed_epsilon
        .filter(|g| g.is_finite())
        .map(|g| probability_within(max_dev, g));
    if spec.epsilon >= 1.0 {
        check.verdict = Verdict::Vacuous;
        check.reason = "epsilon >= 1: the lower side of the claim is vacuous".into();
    } else if below {
        check.verdict = Verdict::Vacuous;
        check.reason = match report.min_width {
            Some(r) => format!(
                "width {actual_width} is below the {r} this bound requires for epsilon {}",
                spec.epsilon
            ),
            None => "the required width is beyond the search limit".into(),
        };
    } else if let (Some(g), Some(at)) = (report.guaranteed_epsilon, check.observed_at_guaranteed.clone()) {
        let target = 1.0 - spec.delta;
        if g >= 1.0 {
            check.verdict = Verdict::Vacuous;
            check.reason = format!("guaranteed epsilon {g:.6} >= 1");
        } else if at.ci_high < target {
            check.verdict = Verdict::Violated;
            check.reason = format!(
                "observed probability {:.4} (95% CI {:.4}..{:.4}) of staying within 1 +/- {g:.6} is below 1 - delta = {target}",
                at.probability, at.ci_low, at.ci_high
            );
        } else {
            check.verdict = Verdict::Holds;
            check.reason = format!(
                "observed probability {:.4} (95% CI {:.4}..{:.4}) is consistent with >= 1 - delta = {target}",
                at.probability, at.ci_low, at.ci_high
            );
        }
    } else {
        check.verdict = Verdict::Vacuous;
        check.reason = "no finite guarantee at this width".into();
    }
    check
}
