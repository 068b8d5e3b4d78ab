//! `kind: "width_sweep"`: the norms measurement at every point of a width (x depth) grid.
//! Units: the points, each stored as it completes (a resumed sweep skips the stored ones); the
//! frontier is computed at the end from every stored point.

use serde_json::json;

use super::{decode, encode, with_control, Finished, KindRunner, Output, RunContext, Stop};
use crate::analysis::report::Stamp;
use crate::analysis::sweep::{frontier, point_report, point_seed_rule, point_spec, PointReport};
use crate::sim::simulate;
use crate::spec::Spec;
use crate::store::ResultFamily;

pub struct WidthSweep;

fn stored_points(ctx: &dyn RunContext) -> Result<Vec<PointReport>, Stop> {
    let rows = ctx.stored(ResultFamily::SweepPoint).map_err(Stop::Failed)?;
    decode(rows).map_err(|e| Stop::Failed(format!("reading stored sweep points: {e}")))
}

impl KindRunner for WidthSweep {
    /// Grid points.
    fn progress_total(&self, spec: &Spec) -> u64 {
        spec.sweep().map_or(0, |s| s.points().len() as u64)
    }

    fn run(&self, spec: &Spec, ctx: &dyn RunContext) -> Result<Finished, Stop> {
        let points = spec.sweep().map(|s| s.points()).unwrap_or_default();
        let total = points.len() as u64;
        let mut done: Vec<usize> = stored_points(ctx)?.iter().map(|p| p.point).collect();
        ctx.progress(done.len() as u64, total);
        for point in points {
            if done.contains(&point.index) {
                continue;
            }
            if ctx.cancelled() {
                return Err(Stop::Cancelled);
            }
            let point_spec = point_spec(spec, point);
            let sim = with_control(ctx, false, |ctl| simulate(&point_spec, ctl))?;
            let report = point_report(&point_spec, point, &sim);
            ctx.store(encode(ResultFamily::SweepPoint, point.index as i64, &report)?)
                .map_err(|e| Stop::Failed(format!("storing sweep point: {e}")))?;
            done.push(point.index);
            ctx.progress(done.len() as u64, total);
        }
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
