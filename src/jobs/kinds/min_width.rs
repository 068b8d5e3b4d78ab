//! `kind: "min_width"`: the smallest width at which, with probability >= 1 - delta over the
//! weights, the claim holds for every layer of every one of N inputs, searched per (epsilon,
//! depth) cell with certified decisions (`analysis::search`), beside each bound's width.
//!
//! Units: the probes, each stored when decided; a restarted job replays the stored probes (the
//! search's next width is a function of the probes before it) and goes on. Networks come in
//! chunks of 32 whose seeds depend only on (seed, cell, width, chunk start), so a probe's result
//! does not depend on the process, the order, or the machine's limits.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{decode, encode, with_control, Finished, KindRunner, Output, RunContext, Stop};
use crate::analysis::report::Stamp;
use crate::analysis::search::{run_probe, BoundWidth, CellResult, Probe, Search, FIRST_LOOK};
use crate::sim::plan::{SpecPlan, REPORT_WORK_FLOPS};
use crate::sim::rng::splitmix64;
use crate::sim::{simulate, Simulation};
use crate::spec::{Claim, Limits, Method, MinWidthSearch, Spec, SpecError};
use crate::store::{ResultFamily, ResultRow};
use crate::theory::bounds::{evaluate, Bound, BoundInputs};

pub struct MinWidth;

/// Networks simulated together; their seeds come from the chunk's start (see the module doc).
const CHUNK: u64 = FIRST_LOOK;
/// Probes of one cell are stored at `cell * CELL_STRIDE + probe`.
const CELL_STRIDE: i64 = 10_000;

/// The seed of the chunk of networks starting at `from` of `cell`'s probe at `width`.
pub fn chunk_seed(seed: u64, cell: usize, width: u64, from: u64) -> u64 {
    splitmix64(seed ^ splitmix64(cell as u64 + 1) ^ splitmix64(width.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ from)
}

/// [`chunk_seed`] in words, for the stamp.
pub fn chunk_seed_rule() -> String {
    "networks in chunks of 32; chunk seed = splitmix64(seed ^ splitmix64(cell + 1) ^ splitmix64(width * \
     0x9E3779B97F4A7C15) ^ first network index), network t of a chunk = trial t of that seed"
        .into()
}

/// A probe as stored: its cell and the probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellProbe {
    pub cell: usize,
    pub probe: Probe,
}

/// The range of a cell: given, or 1 to twice the largest bound's minimal width (capped).
pub fn width_range(search: &MinWidthSearch, spec: &Spec, epsilon: f64, depth: usize, cap: u64) -> (u64, u64) {
    if let Some(range) = search.width_range {
        return range;
    }
    let largest = BoundInputs::new(epsilon, spec.delta, depth as u32, spec.samples as u64)
        .map(|inputs| {
            Bound::ALL
                .iter()
                .map(|&b| evaluate(b, &inputs, None).min_width.unwrap_or(cap))
                .max()
                .unwrap_or(cap)
        })
        .unwrap_or(cap);
    (1, largest.saturating_mul(2).clamp(1, cap))
}

/// An upper bound on a search's probes over [lo, hi]: doubling, then halving the gap.
fn probes_bound(lo: u64, hi: u64) -> u64 {
    let log2 = |x: u64| 64 - x.max(1).leading_zeros() as u64;
    log2(hi / lo.max(1)) + 1 + log2(hi) + 1 + crate::analysis::search::MAX_UNDECIDED as u64
}

fn bounds_beside(spec: &Spec, epsilon: f64, depth: usize, pass: Option<u64>) -> Vec<BoundWidth> {
    let inputs = BoundInputs::new(epsilon, spec.delta, depth as u32, spec.samples as u64);
    Bound::ALL
        .iter()
        .map(|&b| {
            let min_width = inputs.as_ref().ok().and_then(|i| evaluate(b, i, None).min_width);
            BoundWidth {
                bound: b.name().to_string(),
                min_width,
                looseness: min_width.zip(pass).map(|(m, p)| m as f64 / p as f64),
            }
        })
        .collect()
}

/// How many networks of `sim` kept every ratio of `claim` within 1 +/- epsilon (an undefined
/// ratio is a failure).
fn successes(sim: &Simulation, claim: Claim, epsilon: f64) -> u64 {
    let within = |r: &f64| (1.0 - r).abs() <= epsilon;
    sim.trials
        .iter()
        .filter(|t| {
            (!claim.forward() || t.forward.iter().all(within)) && (!claim.gradient() || t.gradient.iter().all(within))
        })
        .count() as u64
}

impl KindRunner for MinWidth {
    /// The budget must allow at least the first look of the first probe.
    fn check(&self, spec: &Spec, limits: &Limits) -> Result<(), SpecError> {
        let Some(search) = spec.min_width() else {
            return Ok(());
        };
        if spec.method == Method::Exact {
            // Every probe must qualify; within a cell only the width varies, and the narrowest
            // probe is the one a width condition refuses first.
            for &(_, epsilon, depth) in &search.cells() {
                let (lo, _) = width_range(search, spec, epsilon, depth, limits.max_width as u64);
                let probe = spec.with_cell(lo as usize, depth, epsilon, CHUNK as usize, spec.seed);
                if let Some(why) = probe.exact_unavailable() {
                    return Err(SpecError::new(
                        "method",
                        format!(
                            "\"exact\" is not available for the probes of this search (depth {depth}, widths from \
                             {lo}): {why}; use \"dense\" or \"auto\" (auto takes the exact sampler wherever it applies)"
                        ),
                    ));
                }
            }
        }
        let Some(&(_, epsilon, depth)) = search.cells().first() else {
            return Ok(());
        };
        let (lo, _) = width_range(search, spec, epsilon, depth, limits.max_width as u64);
        let first = spec.with_cell(lo as usize, depth, epsilon, CHUNK as usize, spec.seed);
        let estimate = first.estimate(limits.parallel_trials);
        if estimate.memory_bytes > limits.max_memory_bytes {
            // The narrowest probe is the smallest: no probe of this search could run.
            return Err(SpecError::new(
                "samples",
                format!(
                    "the first probe ({CHUNK} networks at width {lo}, {} samples of dimension {}) needs about {:.1} \
                     MiB, over this server's memory limit of {:.1} MiB: no probe could run",
                    spec.samples,
                    spec.network.input_dim,
                    estimate.memory_bytes as f64 / (1u64 << 20) as f64,
                    limits.max_memory_bytes as f64 / (1u64 << 20) as f64
                ),
            ));
        }
        let cost = estimate.work_flops - REPORT_WORK_FLOPS;
        let share = search.max_work / search.cells().len().max(1) as f64;
        if cost > share {
            return Err(SpecError::new(
                "max_work",
                format!(
                    "the first look of the first probe ({CHUNK} networks at width {lo}) needs about {cost:.3e} \
                     floating-point operations, more than a cell's share of max_work ({share:.3e} of {:.3e}): \
                     nothing could be decided",
                    search.max_work
                ),
            ));
        }
        Ok(())
    }

    /// One unit per (epsilon, depth) cell.
    fn units(&self, spec: &Spec) -> u64 {
        spec.min_width().map_or(1, |s| s.cells().len() as u64)
    }

    /// Probes (an upper bound: the search usually needs fewer).
    fn unit_progress_total(&self, spec: &Spec, unit: u64) -> u64 {
        let Some(search) = spec.min_width() else { return 1 };
        let cap = Limits::default().max_width as u64;
        search.cells().get(unit as usize).map_or(1, |&(_, e, d)| {
            let (lo, hi) = width_range(search, spec, e, d, cap);
            probes_bound(lo, hi)
        })
    }

    /// Search one cell; its probes are stored as they are decided (a rerun replays them).
    fn run_unit(&self, spec: &Spec, unit: u64, ctx: &dyn RunContext) -> Result<Vec<ResultRow>, Stop> {
        let search_spec = spec
            .min_width()
            .ok_or_else(|| Stop::Failed("not a min_width spec".into()))?;
        let &(cell, epsilon, depth) = search_spec
            .cells()
            .get(unit as usize)
            .ok_or_else(|| Stop::Failed(format!("the search has no cell {unit}")))?;
        let limits = ctx.limits().clone();
        let stored: Vec<CellProbe> = decode(ctx.stored(ResultFamily::Probe).map_err(Stop::Failed)?)
            .map_err(|e| Stop::Failed(format!("reading stored probes: {e}")))?;
        let target = 1.0 - spec.delta;
        let alpha = 1.0 - search_spec.confidence;
        let total = self.unit_progress_total(spec, unit);
        // Each cell gets an equal share of the job's budget, so it can be searched on its own, on
        // any worker, and spend exactly what it would in a one-process run.
        let budget = search_spec.max_work / search_spec.cells().len().max(1) as f64;
        let mut spent = 0.0;
        let (lo, hi) = width_range(search_spec, spec, epsilon, depth, limits.max_width as u64);
        let mut search = Search::new(lo, hi);
        while let Some(width) = search.next_width() {
            let index = search.probes.len() as u64 + 1;
            let key = cell as i64 * CELL_STRIDE + index as i64;
            let probe = match stored.iter().find(|p| p.cell == cell && p.probe.index == index) {
                Some(p) if p.probe.width == width => {
                    spent += p.probe.work_flops;
                    p.probe.clone()
                }
                Some(p) => {
                    return Err(Stop::Failed(format!(
                        "stored probe {index} of cell {cell} is at width {}, the search asks for {width}: the \
                         stored results do not belong to this spec",
                        p.probe.width
                    )))
                }
                None => {
                    if ctx.cancelled() {
                        return Err(Stop::Cancelled);
                    }
                    let probe = run_one_probe(
                        spec,
                        search_spec,
                        &limits,
                        ctx,
                        (cell, epsilon, depth),
                        (width, index),
                        (target, alpha),
                        (budget, &mut spent),
                    )?;
                    ctx.store(encode(
                        ResultFamily::Probe,
                        key,
                        &CellProbe {
                            cell,
                            probe: probe.clone(),
                        },
                    )?)
                    .map_err(|e| Stop::Failed(format!("storing a probe: {e}")))?;
                    probe
                }
            };
            search.probes.push(probe);
            let bracket = search.bracket(target);
            ctx.detail(json!({"cell": cell, "epsilon": epsilon, "depth": depth, "width": width,
                              "fail": bracket.fail, "pass": bracket.pass,
                              "networks": search.probes.iter().map(|p| p.networks).sum::<u64>()}));
            ctx.progress((search.probes.len() as u64).min(total), total);
        }
        Ok(Vec::new())
    }

    fn finish(&self, spec: &Spec, ctx: &dyn RunContext) -> Result<Finished, Stop> {
        let probes: Vec<CellProbe> = decode(ctx.stored(ResultFamily::Probe).map_err(Stop::Failed)?)
            .map_err(|e| Stop::Failed(format!("reading stored probes: {e}")))?;
        let spent: f64 = probes.iter().map(|p| p.probe.work_flops).sum();
        let cells = cells_from_probes(spec, probes, ctx.limits().max_width as u64);
        let mut engines: Vec<&str> = cells
            .iter()
            .flat_map(|c| c.probes.iter().map(|p| p.engine.as_str()))
            .collect();
        engines.sort_unstable();
        engines.dedup();
        let mut stamp = Stamp::for_spec(spec);
        stamp.method = format!(
            "per probe: {} (see each probe's engine); {}",
            engines.join(", "),
            chunk_seed_rule()
        );
        Ok(Finished {
            stamp: stamp.clone(),
            summary: summary(&cells, spent),
            rows: Vec::new(),
            output: Output::MinWidth {
                spec: spec.to_json(),
                stamp,
                cells,
            },
        })
    }
}

/// A cell's answer from its search.
fn assemble(
    spec: &Spec,
    search_spec: &MinWidthSearch,
    cell: usize,
    epsilon: f64,
    depth: usize,
    search: Search,
) -> CellResult {
    let bracket = search.bracket(1.0 - spec.delta);
    CellResult {
        cell,
        epsilon,
        depth,
        width_range: [search.lo, search.hi],
        confidence: search_spec.confidence,
        bounds: bounds_beside(spec, epsilon, depth, bracket.pass),
        networks: search.probes.iter().map(|p| p.networks).sum(),
        bracket,
        probes: search.probes,
    }
}

/// The cells of a search from its stored probes (a running job: the probes so far).
pub fn cells_from_probes(spec: &Spec, mut probes: Vec<CellProbe>, cap: u64) -> Vec<CellResult> {
    let Some(search_spec) = spec.min_width() else {
        return Vec::new();
    };
    probes.sort_by_key(|p| (p.cell, p.probe.index));
    search_spec
        .cells()
        .into_iter()
        .map(|(cell, epsilon, depth)| {
            let (lo, hi) = width_range(search_spec, spec, epsilon, depth, cap);
            let mut search = Search::new(lo, hi);
            search.probes = probes
                .iter()
                .filter(|p| p.cell == cell)
                .map(|p| p.probe.clone())
                .collect();
            assemble(spec, search_spec, cell, epsilon, depth, search)
        })
        .collect()
}

/// The job's headline numbers: per cell the bracket and each bound's looseness.
fn summary(cells: &[CellResult], spent: f64) -> Value {
    let rows: Vec<Value> = cells
        .iter()
        .map(|c| {
            json!({
                "epsilon": c.epsilon, "depth": c.depth, "fail": c.bracket.fail, "pass": c.bracket.pass,
                "exact": c.bracket.exact, "censoring": c.bracket.censoring, "undecided": c.bracket.undecided,
                "estimate": c.bracket.estimate, "confidence": c.confidence, "networks": c.networks,
                "bounds": c.bounds,
            })
        })
        .collect();
    json!({
        "cells": rows,
        "probes": cells.iter().map(|c| c.probes.len()).sum::<usize>(),
        "networks": cells.iter().map(|c| c.networks).sum::<u64>(),
        "work_flops": spent,
    })
}

/// One probe: networks in chunks of [`CHUNK`], within the cell's share of the work budget and
/// the memory limit.
#[allow(clippy::too_many_arguments)]
fn run_one_probe(
    spec: &Spec,
    search: &MinWidthSearch,
    limits: &Limits,
    ctx: &dyn RunContext,
    (cell, epsilon, depth): (usize, f64, usize),
    (width, index): (u64, u64),
    (target, alpha): (f64, f64),
    (budget, spent): (f64, &mut f64),
) -> Result<Probe, Stop> {
    // A chunk's network t is trial t of the chunk's seed, whatever the chunk's size.
    let chunk_spec = |from: u64, networks: u64| {
        spec.with_cell(
            width as usize,
            depth,
            epsilon,
            networks as usize,
            chunk_seed(spec.seed, cell, width, from),
        )
    };
    let first = chunk_spec(0, CHUNK);
    let engine = first.engine();
    // A chunk builds no report: its work is the simulation's alone.
    let mut estimate = first.estimate(limits.parallel_trials);
    estimate.work_flops = (estimate.work_flops - REPORT_WORK_FLOPS).max(0.0);
    if estimate.memory_bytes > limits.max_memory_bytes {
        let mut probe = run_probe::<Stop>(index, width, target, alpha, 0, engine.as_str(), |_, _| Ok(None))?;
        probe.note = Some(format!(
            "{CHUNK} networks of width {width} need about {} MiB, over this server's memory limit of {} MiB",
            estimate.memory_bytes >> 20,
            limits.max_memory_bytes >> 20
        ));
        return Ok(probe);
    }
    let mut work = 0.0;
    let mut probe = run_probe(
        index,
        width,
        target,
        alpha,
        search.max_networks_per_width,
        engine.as_str(),
        |from, to| -> Result<Option<u64>, Stop> {
            let mut ok = 0;
            let mut start = from;
            while start < to {
                if *spent + estimate.work_flops > budget {
                    return Ok(None);
                }
                let chunk = chunk_spec(start, CHUNK.min(to - start));
                let sim = with_control(ctx, false, |ctl| simulate(&chunk, ctl))?;
                *spent += estimate.work_flops;
                work += estimate.work_flops;
                ok += successes(&sim, search.claim, epsilon);
                start += CHUNK.min(to - start);
            }
            Ok(Some(ok))
        },
    )?;
    probe.work_flops = work;
    Ok(probe)
}
