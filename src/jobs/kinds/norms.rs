//! `kind: "norms"`: one network configuration, measured layer by layer. One unit: the whole
//! simulation; its per-layer rows and bound checks are written with the final state change.

use serde_json::{json, Value};

use super::{encode, with_control, Finished, KindRunner, Output, RunContext, Stop};
use crate::analysis::report::{build_report, RunReport};
use crate::sim::{simulate, work_units};
use crate::spec::Spec;
use crate::store::ResultFamily;

pub struct Norms;

impl KindRunner for Norms {
    /// Layer passes: trials x depth x 2.
    fn progress_total(&self, spec: &Spec) -> u64 {
        work_units(spec)
    }

    fn run(&self, spec: &Spec, ctx: &dyn RunContext) -> Result<Finished, Stop> {
        let sim = with_control(ctx, true, |ctl| simulate(spec, ctl))?;
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
