//! `kind: "width_sweep"`: the norms measurement at every point of a width (x depth) grid.
//! Units: the points; the frontier is computed at the end from every point.

use serde_json::json;

use super::{decode, encode, with_control, Finished, KindRunner, Output, RunContext, Stop};
use crate::analysis::report::Stamp;
use crate::analysis::sweep::{frontier, point_report, point_seed_rule, point_spec, PointReport};
use crate::sim::simulate;
use crate::spec::Spec;
use crate::store::{ResultFamily, ResultRow};

pub struct WidthSweep;

fn stored_points(ctx: &dyn RunContext) -> Result<Vec<PointReport>, Stop> {
    let rows = ctx.stored(ResultFamily::SweepPoint).map_err(Stop::Failed)?;
    decode(rows).map_err(|e| Stop::Failed(format!("reading stored sweep points: {e}")))
}

impl KindRunner for WidthSweep {
    /// One unit per grid point.
    fn units(&self, spec: &Spec) -> u64 {
        spec.sweep().map_or(1, |s| s.points().len() as u64)
    }

    /// A point counts one.
    fn unit_progress_total(&self, _spec: &Spec, _unit: u64) -> u64 {
        1
    }

    fn run_unit(&self, spec: &Spec, unit: u64, ctx: &dyn RunContext) -> Result<Vec<ResultRow>, Stop> {
        let point = spec
            .sweep()
            .and_then(|s| s.points().into_iter().find(|p| p.index as u64 == unit))
            .ok_or_else(|| Stop::Failed(format!("the sweep has no point {unit}")))?;
        let point_spec = point_spec(spec, point);
        let sim = with_control(ctx, false, |ctl| simulate(&point_spec, ctl))?;
        let report = point_report(&point_spec, point, &sim);
        Ok(vec![encode(ResultFamily::SweepPoint, point.index as i64, &report)?])
    }

    fn finish(&self, spec: &Spec, ctx: &dyn RunContext) -> Result<Finished, Stop> {
        let all = stored_points(ctx)?;
        let rows = frontier(spec, &all);
        let mut stamp = Stamp::for_spec(spec);
        let mut engines: Vec<&str> = all.iter().map(|p| p.engine.as_str()).collect();
        engines.sort_unstable();
        engines.dedup();
        stamp.method = format!(
            "per point: {} (see each point's engine); {}",
            engines.join(", "),
            point_seed_rule()
        );
        Ok(Finished {
            summary: json!({"points": all.len(), "frontier": rows}),
            stamp: stamp.clone(),
            rows: Vec::new(),
            output: Output::WidthSweep {
                spec: spec.to_json(),
                stamp,
                points: all,
                frontier: rows,
            },
        })
    }
}
