//! `kind: "geometry"`: input pairs at chosen angles through `trials` networks; per angle and
//! layer the cosine similarity and distance ratio beside the arc-cosine map's prediction.
//! Units: chunks of networks as `norms` makes them (networks `8u..8u + 8` of the job's streams, larger chunks past 1024 units);
//! each stores its networks' moments per (angle, layer), and the rows are built from all of
//! them in network order: the same bits whatever computed which unit, in whatever order.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::norms::{pack, unit_size, unit_trials, unpack, MAX_UNITS};
use super::{decode, encode, with_control, Finished, KindRunner, Output, RunContext, Stop};
use crate::analysis::geometry::{build_geometry, GeometryLayer, NetworkMoments};
use crate::analysis::report::Stamp;
use crate::sim::geometry::{simulate_geometry, work_units};
use crate::spec::Spec;
use crate::store::{ResultFamily, ResultRow};

pub struct GeometryKind;

/// The moments of a unit's networks, as stored until the rows are built (f64, little-endian,
/// base64: exact).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UnitMoments {
    first_trial: usize,
    /// One entry per network: [`NetworkMoments::pack`].
    networks: Vec<String>,
}

impl KindRunner for GeometryKind {
    fn units(&self, spec: &Spec) -> u64 {
        spec.trials.div_ceil(unit_size(spec.trials, MAX_UNITS)).max(1) as u64
    }

    /// Layers of the unit's networks (one forward pass each).
    fn unit_progress_total(&self, spec: &Spec, unit: u64) -> u64 {
        let (_, count) = unit_trials(spec, unit);
        work_units(&spec.with_trials(0, count))
    }

    fn run_unit(&self, spec: &Spec, unit: u64, ctx: &dyn RunContext) -> Result<Vec<ResultRow>, Stop> {
        let geometry = spec
            .geometry()
            .ok_or_else(|| Stop::Failed("not a geometry spec".into()))?;
        let (first, count) = unit_trials(spec, unit);
        let part = spec.with_trials(first, count);
        let measures = with_control(ctx, true, |ctl| simulate_geometry(&part, ctl))?;
        let stored = UnitMoments {
            first_trial: first,
            networks: measures
                .iter()
                .map(|m| pack(&NetworkMoments::of(m, geometry.pairs).pack()))
                .collect(),
        };
        Ok(vec![encode(ResultFamily::PairMoments, unit as i64, &stored)?])
    }

    fn finish(&self, spec: &Spec, ctx: &dyn RunContext) -> Result<Finished, Stop> {
        let geometry = spec
            .geometry()
            .ok_or_else(|| Stop::Failed("not a geometry spec".into()))?;
        let units: Vec<UnitMoments> = decode(ctx.stored(ResultFamily::PairMoments).map_err(Stop::Failed)?)
            .map_err(|e| Stop::Failed(format!("reading stored moments: {e}")))?;
        let mut networks = Vec::with_capacity(spec.trials);
        for u in &units {
            if u.first_trial != networks.len() {
                return Err(Stop::Failed(format!(
                    "stored moments start at network {} where {} was expected",
                    u.first_trial,
                    networks.len()
                )));
            }
            for packed in &u.networks {
                networks.push(NetworkMoments::unpack(&unpack(packed).map_err(Stop::Failed)?).map_err(Stop::Failed)?);
            }
        }
        if networks.len() != spec.trials {
            return Err(Stop::Failed(format!(
                "{} of {} networks' moments are stored",
                networks.len(),
                spec.trials
            )));
        }
        let layers = build_geometry(&spec.network, geometry, &networks);
        let mut rows = Vec::with_capacity(layers.len());
        for (i, layer) in layers.iter().enumerate() {
            rows.push(encode(ResultFamily::GeometryLayer, i as i64, layer)?);
        }
        let stamp = Stamp::for_spec(spec);
        Ok(Finished {
            stamp: stamp.clone(),
            summary: summary(spec, &layers),
            rows,
            output: Output::Geometry {
                spec: spec.to_json(),
                stamp,
                layers,
            },
        })
    }

    fn scratch(&self, _spec: &Spec) -> &'static [ResultFamily] {
        &[ResultFamily::PairMoments]
    }
}

/// The headline numbers: per angle, the last layer's mean cosine and its prediction, and the
/// largest |z| of the mean cosine against the arc-cosine map over every row.
fn summary(spec: &Spec, layers: &[GeometryLayer]) -> Value {
    let depth = spec.network.depth();
    let last: Vec<Value> = layers
        .iter()
        .filter(|r| r.layer == depth)
        .map(|r| {
            json!({
                "angle_deg": r.angle_deg,
                "cosine": r.cosine.mean,
                "cosine_std": r.cosine.std,
                "predicted_cosine": r.predicted.cosine,
                "distance_ratio": r.distance_ratio.mean,
                "predicted_distance_ratio": r.predicted.distance_ratio,
            })
        })
        .collect();
    let max_z = layers
        .iter()
        .filter(|r| r.layer > 0)
        .map(|r| r.cosine_z.abs())
        .filter(|z| z.is_finite())
        .fold(None, |acc: Option<f64>, z| Some(acc.map_or(z, |a| a.max(z))));
    json!({
        "variance_rule": spec.network.variance_rule(),
        "last_layer": last,
        "max_abs_cosine_z": max_z,
    })
}
