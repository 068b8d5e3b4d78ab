//! `kind: "norms"`: one network configuration, measured layer by layer. Units: chunks of
//! [`TRIALS_PER_UNIT`] networks (networks `8u..8u + 8` of the job's streams; larger chunks past
//! [`MAX_UNITS`] units, see [`unit_size`]); each stores its
//! networks' ratios, and the report (per-layer rows and bound checks) is built from all of them
//! in network order: the same bits as one simulation of every network.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{decode, encode, with_control, Finished, KindRunner, Output, RunContext, Stop};
use crate::analysis::report::{build_report, RunReport};
use crate::sim::{simulate, work_units, Simulation, TrialRatios};
use crate::spec::Spec;
use crate::store::{ResultFamily, ResultRow};

pub struct Norms;

/// Networks per unit, for jobs of up to `MAX_UNITS` units.
pub const TRIALS_PER_UNIT: usize = 8;
/// Units a job's networks are split into, at most: a job of more networks gets larger units.
/// Each unit is a row in the units table that every lease renewal and completion sums over, and
/// 125,000 units (a million networks in eights) held SQLite's write lock long enough for other
/// submissions to time out.
pub const MAX_UNITS: usize = 1024;

/// Networks per unit when `trials` networks are split into at most `chunks` units.
pub fn unit_size(trials: usize, chunks: usize) -> usize {
    TRIALS_PER_UNIT.max(trials.div_ceil(chunks.max(1)))
}

/// The ratios of a unit's networks, as stored until the report is built (f64, little-endian,
/// base64: exact and about a third larger than binary).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UnitRatios {
    first_trial: usize,
    trials: usize,
    /// Per network: forward ratios then gradient ratios, layer-major.
    forward: Vec<String>,
    gradient: Vec<String>,
}

pub(super) fn pack(values: &[f64]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(super) fn unpack(text: &str) -> Result<Vec<f64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("stored ratios: {e}"))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// The networks of unit `unit`: (first, count).
pub(super) fn unit_trials(spec: &Spec, unit: u64) -> (usize, usize) {
    let per = unit_size(spec.trials, MAX_UNITS);
    let first = unit as usize * per;
    (first, per.min(spec.trials.saturating_sub(first)))
}

impl KindRunner for Norms {
    fn units(&self, spec: &Spec) -> u64 {
        spec.trials.div_ceil(unit_size(spec.trials, MAX_UNITS)).max(1) as u64
    }

    /// Layer passes of the unit's networks: trials x depth x 2.
    fn unit_progress_total(&self, spec: &Spec, unit: u64) -> u64 {
        let (_, count) = unit_trials(spec, unit);
        work_units(&spec.with_trials(0, count))
    }

    fn run_unit(&self, spec: &Spec, unit: u64, ctx: &dyn RunContext) -> Result<Vec<ResultRow>, Stop> {
        let (first, count) = unit_trials(spec, unit);
        let part = spec.with_trials(first, count);
        let sim = with_control(ctx, true, |ctl| simulate(&part, ctl))?;
        let ratios = UnitRatios {
            first_trial: first,
            trials: count,
            forward: sim.trials.iter().map(|t| pack(&t.forward)).collect(),
            gradient: sim.trials.iter().map(|t| pack(&t.gradient)).collect(),
        };
        Ok(vec![encode(ResultFamily::TrialRatios, unit as i64, &ratios)?])
    }

    fn finish(&self, spec: &Spec, ctx: &dyn RunContext) -> Result<Finished, Stop> {
        let trials =
            stored_trials(ctx.stored(ResultFamily::TrialRatios).map_err(Stop::Failed)?).map_err(Stop::Failed)?;
        if trials.len() != spec.trials {
            return Err(Stop::Failed(format!(
                "{} of {} networks' ratios are stored",
                trials.len(),
                spec.trials
            )));
        }
        let sim = Simulation {
            depth: spec.network.depth(),
            samples: spec.samples,
            trials,
        };
        let report = build_report(spec, &sim);
        let mut rows = Vec::with_capacity(report.layers.len() + report.bound_checks.len());
        for layer in &report.layers {
            rows.push(encode(ResultFamily::Layer, layer.layer as i64, layer)?);
        }
        for (i, check) in report.bound_checks.iter().enumerate() {
            rows.push(encode(ResultFamily::BoundCheck, i as i64, check)?);
        }
        Ok(Finished {
            stamp: report.stamp.clone(),
            summary: summary(&report),
            rows,
            output: Output::Norms(Box::new(report)),
        })
    }

    /// The ratios are kept when the spec asks for them (`keep_samples`), for
    /// `GET /v1/jobs/{id}/samples` and the histograms.
    fn scratch(&self, spec: &Spec) -> &'static [ResultFamily] {
        if spec.keep_samples {
            &[]
        } else {
            &[ResultFamily::TrialRatios]
        }
    }
}

/// Every network's ratios from a job's stored `trial_ratios` rows, in network order (the rows
/// must be whole units from network 0 on, as the units store them).
pub fn stored_trials(rows: Vec<ResultRow>) -> Result<Vec<TrialRatios>, String> {
    let units: Vec<UnitRatios> = decode(rows).map_err(|e| format!("reading stored ratios: {e}"))?;
    let mut trials = Vec::new();
    for u in &units {
        if u.first_trial != trials.len() {
            return Err(format!(
                "stored ratios start at network {} where {} was expected",
                u.first_trial,
                trials.len()
            ));
        }
        for (f, g) in u.forward.iter().zip(&u.gradient) {
            trials.push(TrialRatios {
                forward: unpack(f)?,
                gradient: unpack(g)?,
            });
        }
    }
    Ok(trials)
}

/// The job's headline numbers, stored with it and shown in `GET /v1/jobs/{id}`.
pub fn summary(report: &RunReport) -> Value {
    let verdicts: serde_json::Map<String, Value> = report
        .bound_checks
        .iter()
        .map(|c| (c.bound.clone(), Value::from(c.verdict.as_str())))
        .collect();
    json!({
        "variance_rule": report.variance_rule,
        "forward_deviation": report.pooled.forward_deviation,
        "gradient_deviation": report.pooled.gradient_deviation,
        "max_deviation": report.pooled.max_deviation,
        "all_within": report.pooled.all_within,
        "verdicts": verdicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{parse_spec, Limits};

    /// Units cover the networks once each, in order, eight at a time up to `MAX_UNITS` units
    /// and never more than `MAX_UNITS` units.
    #[test]
    fn units_cover_every_network_once_and_stay_few() {
        for trials in [1, 7, 8, 9, 8 * MAX_UNITS, 8 * MAX_UNITS + 1, 123_457, 1_000_000] {
            let v = serde_json::json!({"network": {"input_dim": 1, "depth": 1, "width": 1,
                                       "init": {"scheme": "he", "fan": "out"}}, "samples": 1, "trials": trials});
            let spec = parse_spec(&v, &Limits::default()).expect("valid");
            let units = Norms.units(&spec);
            assert!(units as usize <= MAX_UNITS, "{trials}: {units} units");
            if trials <= 8 * MAX_UNITS {
                assert_eq!(units as usize, trials.div_ceil(TRIALS_PER_UNIT), "{trials}");
            }
            let mut next = 0;
            for u in 0..units {
                let (first, count) = unit_trials(&spec, u);
                assert_eq!(first, next, "{trials}: unit {u}");
                assert!(count > 0, "{trials}: unit {u} is empty");
                next += count;
            }
            assert_eq!(next, trials);
        }
    }
}
