//! `kind: "worst_case"`: per grid point (input dimension x width) and network, the unit inputs
//! that stretch and shrink ||h^l(x)|| the most, searched per layer, beside the random inputs'
//! extremes and the certified upper bound (`sim::worst_case`).
//! Units: (grid point, chunk of [`TRIALS_PER_UNIT`] networks), point-major; each stores its
//! networks' extremes, and the rows are built from all of them in network order: the same bits
//! whatever computed which unit, in whatever order.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::norms::{pack, unit_size, unpack, MAX_UNITS, TRIALS_PER_UNIT};
use super::{decode, encode, with_control, Finished, KindRunner, Output, RunContext, Stop};
use crate::analysis::report::Stamp;
use crate::analysis::sweep::point_seed;
use crate::analysis::worst_case::{build_point, WorstCaseLayer};
use crate::sim::worst_case::{
    network_memory, network_progress_units, network_work, simulate_networks, LayerExtremes, MAX_SQUARINGS,
    POLISH_STEPS, ROUNDING_MARGIN, SPECTRAL_TOLERANCE,
};
use crate::spec::{Limits, Spec, SpecError, WorstCase, WorstCasePoint};
use crate::store::{ResultFamily, ResultRow};
use crate::theory::exact::k_n;

pub struct WorstCaseKind;

/// What the script's constant is, said with every result.
pub const K_N_NOTE: &str = "K_n = 2 C_n S(n-1) / S(n) as the authors' script computes it (C_n by quadrature, S(n) \
     the area of the unit sphere in R^(n+1)), at n = n_0; analytically it is identically 1 (a hemisphere is half \
     the sphere), so it does not change the width the infinite-sample bound asks for";

/// The extremes of a unit's networks, as stored until the rows are built (f64, little-endian,
/// base64: exact).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UnitExtremes {
    point: usize,
    first_trial: usize,
    /// One entry per network: per layer the six values of [`LayerExtremes::to_array`].
    networks: Vec<String>,
}

fn the_search(spec: &Spec) -> Result<&WorstCase, Stop> {
    spec.worst_case()
        .ok_or_else(|| Stop::Failed("not a worst_case spec".into()))
}

/// Networks per unit: eight, or more where the grid would otherwise pass `MAX_UNITS` units.
fn per_unit(spec: &Spec, search: &WorstCase) -> usize {
    unit_size(spec.trials, (MAX_UNITS / search.points().len().max(1)).max(1))
}

/// Units per grid point.
fn chunks(spec: &Spec, search: &WorstCase) -> usize {
    spec.trials.div_ceil(per_unit(spec, search)).max(1)
}

/// The seed of a grid point: the job's own for a one-point grid (so its networks are the
/// `norms` networks of the same seed), else `point_seed` as a width sweep's points.
pub fn seed_of(spec: &Spec, search: &WorstCase, point: usize) -> u64 {
    if search.input_dims.len() * search.widths.len() == 1 {
        spec.seed
    } else {
        point_seed(spec.seed, point)
    }
}

/// The grid point, first network and network count of unit `unit`.
fn unit_of(spec: &Spec, search: &WorstCase, unit: u64) -> (WorstCasePoint, usize, usize) {
    let (per, size) = (chunks(spec, search), per_unit(spec, search));
    let points = search.points();
    let point = points[(unit as usize / per).min(points.len() - 1)];
    let first = (unit as usize % per) * size;
    (point, first, size.min(spec.trials.saturating_sub(first)))
}

/// Peak memory and work of a job, before anything runs.
pub fn estimate(spec: &Spec, search: &WorstCase, limits: &Limits) -> (u64, f64, f64) {
    let concurrent = limits.parallel_trials.clamp(1, spec.trials.min(TRIALS_PER_UNIT)) as u64;
    let mut memory = 0u64;
    let (mut work, mut searching) = (0.0, 0.0);
    let idle = WorstCase {
        restarts: 0,
        steps: 0,
        ..search.clone()
    };
    for p in search.points() {
        let net = spec.network_at(p.input_dim, p.width);
        memory = memory.max(concurrent.saturating_mul(network_memory(&net, search, spec.samples)));
        let all = network_work(&net, search, spec.samples);
        work += spec.trials as f64 * all;
        searching += spec.trials as f64 * (all - network_work(&net, &idle, spec.samples));
    }
    (memory, work, searching)
}

impl KindRunner for WorstCaseKind {
    fn check(&self, spec: &Spec, limits: &Limits) -> Result<(), SpecError> {
        let Some(search) = spec.worst_case() else {
            return Err(SpecError::new("kind", "not a worst_case spec"));
        };
        let (memory, work, searching) = estimate(spec, search, limits);
        let memory = (memory as f64 * crate::sim::plan::MEMORY_MARGIN) as u64;
        if memory > limits.max_memory_bytes {
            return Err(SpecError::new(
                "network.width",
                format!(
                    "estimated memory {:.1} MiB exceeds the limit of {:.1} MiB (weights, spectral-norm matrices and \
                     random inputs of the networks computed at once); reduce the widths, input dimensions or samples",
                    memory as f64 / (1u64 << 20) as f64,
                    limits.max_memory_bytes as f64 / (1u64 << 20) as f64
                ),
            ));
        }
        if work > limits.max_work {
            let field = if searching > 0.5 * work { "steps" } else { "trials" };
            return Err(SpecError::new(
                field,
                format!(
                    "estimated work {work:.3e} floating-point operations ({searching:.3e} of them the searches: \
                     trials x layers x 2 directions x (restarts + 2) starts x (steps + {}) passes) exceeds the limit of \
                     {:.3e}; reduce steps, restarts, trials, samples, widths or depth",
                    POLISH_STEPS + 1,
                    limits.max_work
                ),
            ));
        }
        Ok(())
    }

    fn units(&self, spec: &Spec) -> u64 {
        spec.worst_case()
            .map_or(1, |search| (search.points().len() * chunks(spec, search)) as u64)
    }

    /// The unit's networks: per network its draw, random inputs and spectral norms, and one
    /// unit per (layer, direction) search.
    fn unit_progress_total(&self, spec: &Spec, unit: u64) -> u64 {
        match spec.worst_case() {
            Some(search) => {
                let (_, _, count) = unit_of(spec, search, unit);
                count as u64 * network_progress_units(spec.network.depth())
            }
            None => 1,
        }
    }

    fn run_unit(&self, spec: &Spec, unit: u64, ctx: &dyn RunContext) -> Result<Vec<ResultRow>, Stop> {
        let search = the_search(spec)?;
        let (point, first, count) = unit_of(spec, search, unit);
        let net = spec.network_at(point.input_dim, point.width);
        let seed = seed_of(spec, search, point.index);
        let networks = with_control(ctx, true, |ctl| {
            // Networks of the job's streams: a spec split by `with_trials` starts at its first_trial.
            simulate_networks(&net, search, spec.samples, seed, spec.first_trial + first, count, ctl)
        })?;
        let stored = UnitExtremes {
            point: point.index,
            first_trial: first,
            networks: networks
                .iter()
                .map(|layers| {
                    let flat: Vec<f64> = layers.iter().flat_map(|e| e.to_array()).collect();
                    pack(&flat)
                })
                .collect(),
        };
        Ok(vec![encode(ResultFamily::WorstCaseNetworks, unit as i64, &stored)?])
    }

    fn finish(&self, spec: &Spec, ctx: &dyn RunContext) -> Result<Finished, Stop> {
        let search = the_search(spec)?;
        let depth = spec.network.depth();
        let units: Vec<UnitExtremes> = decode(ctx.stored(ResultFamily::WorstCaseNetworks).map_err(Stop::Failed)?)
            .map_err(|e| Stop::Failed(format!("reading stored extremes: {e}")))?;
        let points = search.points();
        let mut per_point: Vec<Vec<Vec<LayerExtremes>>> = vec![Vec::with_capacity(spec.trials); points.len()];
        for u in &units {
            let Some(networks) = per_point.get_mut(u.point) else {
                return Err(Stop::Failed(format!(
                    "stored extremes of an unknown grid point {}",
                    u.point
                )));
            };
            if u.first_trial != networks.len() {
                return Err(Stop::Failed(format!(
                    "stored extremes of point {} start at network {} where {} was expected",
                    u.point,
                    u.first_trial,
                    networks.len()
                )));
            }
            for packed in &u.networks {
                let flat = unpack(packed).map_err(Stop::Failed)?;
                if flat.len() != depth * LayerExtremes::FIELDS {
                    return Err(Stop::Failed(format!(
                        "stored extremes hold {} values where {} were expected",
                        flat.len(),
                        depth * LayerExtremes::FIELDS
                    )));
                }
                networks.push(
                    flat.chunks_exact(LayerExtremes::FIELDS)
                        .map(LayerExtremes::from_slice)
                        .collect(),
                );
            }
        }
        let mut layers = Vec::with_capacity(points.len() * depth);
        for (p, networks) in points.iter().zip(&per_point) {
            if networks.len() != spec.trials {
                return Err(Stop::Failed(format!(
                    "{} of {} networks' extremes are stored for point {}",
                    networks.len(),
                    spec.trials,
                    p.index
                )));
            }
            layers.extend(build_point(*p, depth, seed_of(spec, search, p.index), networks));
        }
        let mut rows = Vec::with_capacity(layers.len());
        for (i, layer) in layers.iter().enumerate() {
            rows.push(encode(ResultFamily::WorstCaseLayer, i as i64, layer)?);
        }
        let stamp = Stamp::for_spec(spec);
        Ok(Finished {
            stamp: stamp.clone(),
            summary: summary(spec, search, &layers),
            rows,
            output: Output::WorstCase {
                spec: spec.to_json(),
                stamp,
                layers,
            },
        })
    }

    fn scratch(&self, _spec: &Spec) -> &'static [ResultFamily] {
        &[ResultFamily::WorstCaseNetworks]
    }
}

/// K_n as the authors' script computes it, per input dimension of the grid.
pub fn k_n_values(search: &WorstCase) -> Value {
    search
        .input_dims
        .iter()
        .map(|&n| json!({"input_dim": n, "k_n": k_n(n.min(u32::MAX as usize) as u32)}))
        .collect()
}

/// How the search and the bound were computed, said with every result.
pub fn method_note(search: &WorstCase) -> Value {
    json!({
        "search": format!(
            "projected gradient ascent and descent of ||h^l(x)|| on the unit sphere, per layer: {} Gaussian starts, \
             the random input with the largest (ascent) or smallest (descent) ratio at that layer and, from layer 2 \
             on, the input the same search reached at the layer before; {} steps each (moves along \
             the tangent gradient by an angle, kept only if they improve; the angle doubles after a kept move and \
             halves after a refused one); ascent then polished by up to {} power-iteration moves. A start never gets \
             worse, so the extremes found are at least as extreme as the random inputs' by construction.",
            search.restarts, search.steps, POLISH_STEPS
        ),
        "certified_max": format!(
            "product over layers 1..l of upper bounds on the spectral norms: sigma_max(W)^2 <= (tr A^p)^(1/p) with \
             A = W W^T or W^T W (the smaller) and p = 2^k by repeated squaring, stopped when upper / lower <= 1 + {} \
             (at most {} squarings), times 1 + {:e} for rounding; ||ReLU(W h)|| <= ||W h|| <= sigma_max(W) ||h||",
            SPECTRAL_TOLERANCE, MAX_SQUARINGS, ROUNDING_MARGIN
        ),
    })
}

/// The headline numbers: per grid point, the last layer's worst-case and random deviations and
/// the bracket [found_max, certified_max]; K_n as coded; whether every bracket holds.
fn summary(spec: &Spec, search: &WorstCase, layers: &[WorstCaseLayer]) -> Value {
    let depth = spec.network.depth();
    let last: Vec<Value> = layers
        .iter()
        .filter(|r| r.layer == depth)
        .map(|r| {
            json!({
                "input_dim": r.input_dim,
                "width": r.width,
                "sqrt_input_dim_over_width": r.sqrt_input_dim_over_width,
                "worst_deviation": r.worst_deviation.mean,
                "random_deviation": r.random_deviation.mean,
                "found_max": r.found_max.mean,
                "found_min": r.found_min.mean,
                "certified_max": r.certified_max.mean,
            })
        })
        .collect();
    json!({
        "variance_rule": spec.network.variance_rule(),
        "k_n": k_n_values(search),
        "k_n_note": K_N_NOTE,
        "method": method_note(search),
        "last_layer": last,
        "every_bracket_holds": layers.iter().all(|r| r.bracket_holds),
        "search_at_least_random": layers.iter().all(|r| r.search_at_least_random),
    })
}
