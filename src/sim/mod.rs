//! The simulator: random networks at initialization, measured layer by layer.
//!
//! Holds the engines (`dense`, `residual` for residual networks, the exact samplers in `exact`), their random streams (`rng`,
//! `normal`, `weights`), GEMM and SIMD plumbing, and `plan` (engine choice, memory and work
//! estimates). Depends on: `spec` only (no HTTP, database, tokio or serde_json in here).
//!
//! Pure library code: takes a validated [`Spec`], returns plain structs. Trials run in parallel
//! on the current rayon pool; each trial's random stream depends only on (seed, trial), and
//! results are collected in trial order, so the output is bit-identical for any thread count.

pub mod dense;
pub mod exact;
pub mod gemm;
pub mod geometry;
pub mod normal;
pub mod plan;
pub mod real;
pub mod residual;
pub mod rng;
pub mod simd;
pub mod weights;
pub mod worst_case;
mod ziggurat_tables;

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

pub use plan::work_units;
use plan::{Engine, SpecPlan};

use crate::spec::{Precision, Spec};

/// The run was cancelled through [`Control::cancelled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Per-sample ratios of one trial, layer-major: entry `(l - 1) * samples + s`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRatios {
    /// ||h^l|| / ||x||.
    pub forward: Vec<f64>,
    /// ||delta^l|| ||h^{l-1}|| / (||x|| ||delta^L||) (v-gradient under weight norm).
    pub gradient: Vec<f64>,
}

impl TrialRatios {
    /// A sample whose signal left the number range (an infinite or NaN forward ratio: overflow,
    /// then inf - inf further down) has no defined forward ratio from that layer on and no
    /// defined gradient ratio at any layer; a gradient ratio that overflowed on its own is
    /// undefined too. Without this the engines carried on with what the ReLU makes of NaN
    /// (zero: a network that looked dead from the next layer on) and counted nothing as
    /// undefined. Every run that stays finite is untouched.
    pub fn undefined_past_overflow(&mut self, samples: usize) {
        if samples == 0 {
            return;
        }
        let depth = self.forward.len() / samples;
        for s in 0..samples {
            if let Some(first) = (0..depth).find(|&l| !self.forward[l * samples + s].is_finite()) {
                for l in first..depth {
                    self.forward[l * samples + s] = f64::NAN;
                }
                for g in self.gradient.iter_mut().skip(s).step_by(samples) {
                    *g = f64::NAN;
                }
            }
        }
        for g in &mut self.gradient {
            if g.is_infinite() {
                *g = f64::NAN;
            }
        }
    }
}

/// Raw output of a simulation: every trial's ratios, in trial order.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    pub depth: usize,
    pub samples: usize,
    pub trials: Vec<TrialRatios>,
}

impl Simulation {
    /// Forward ratios of layer `l` (1-based) in trial `t`.
    pub fn forward(&self, t: usize, l: usize) -> &[f64] {
        &self.trials[t].forward[(l - 1) * self.samples..l * self.samples]
    }

    pub fn gradient(&self, t: usize, l: usize) -> &[f64] {
        &self.trials[t].gradient[(l - 1) * self.samples..l * self.samples]
    }
}

/// Progress reporting and cooperative cancellation, both callable from any thread.
pub struct Control<'a> {
    /// Called with (done, total) work units; a unit is one layer of one pass of one trial.
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
    /// Polled before every layer; returning true stops the run with [`Cancelled`].
    pub cancelled: &'a (dyn Fn() -> bool + Sync),
}

impl Control<'static> {
    /// No progress reporting, never cancelled.
    pub fn none() -> Self {
        Control {
            progress: &|_, _| {},
            cancelled: &|| false,
        }
    }
}

/// Which passes a run makes. Jobs always make both; `ForwardOnly` exists for the benchmark
/// that compares the forward passes of the engines (its trials have empty `gradient`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passes {
    Both,
    ForwardOnly,
}

/// [`dense::run_trial`] (or another engine with its signature) at one precision.
type DenseTrial = fn(
    &crate::spec::Network,
    usize,
    crate::spec::InputDistribution,
    &mut rng::TrialRng,
    faer::Par,
    Passes,
    &mut dyn FnMut() -> Result<(), Cancelled>,
) -> Result<TrialRatios, Cancelled>;

/// Run every trial of `spec` on the current rayon pool.
pub fn simulate(spec: &Spec, ctl: &Control) -> Result<Simulation, Cancelled> {
    simulate_passes(spec, Passes::Both, ctl)
}

/// [`simulate`], making only the passes asked for.
pub fn simulate_passes(spec: &Spec, passes: Passes, ctl: &Control) -> Result<Simulation, Cancelled> {
    let total = work_units(spec);
    let done = AtomicU64::new(0);
    // Reports go out under a lock and only forwards, so listeners see a monotone count.
    let reported = std::sync::Mutex::new(0u64);
    let engine = spec.engine();
    let par = gemm::par_for(spec.trials);
    let gram_trial: DenseTrial = match plan::gram_precision(spec) {
        Precision::F32 => exact::run_trial_gram::<f32>,
        Precision::F64 => exact::run_trial_gram::<f64>,
    };
    let dense_trial: DenseTrial = match (spec.network.is_residual(), spec.precision) {
        (false, Precision::F32) => dense::run_trial::<f32>,
        (false, Precision::F64) => dense::run_trial::<f64>,
        (true, Precision::F32) => residual::run_trial::<f32>,
        (true, Precision::F64) => residual::run_trial::<f64>,
    };
    let trials = (0..spec.trials)
        .into_par_iter()
        .map(|t| {
            let mut rng = rng::trial_rng(spec.seed, (spec.first_trial + t) as u64);
            // Cancellation is polled, and progress counted, every `units` layer passes.
            let advance = |units: u64| {
                if (ctl.cancelled)() {
                    return Err(Cancelled);
                }
                let d = done.fetch_add(units, Ordering::Relaxed);
                if d > 0 {
                    let mut last = reported.lock().unwrap_or_else(|p| p.into_inner());
                    if d > *last {
                        *last = d;
                        (ctl.progress)(d, total);
                    }
                }
                Ok(())
            };
            let mut tick = || advance(1);
            match engine {
                Engine::Dense => dense_trial(
                    &spec.network,
                    spec.samples,
                    spec.input,
                    &mut rng,
                    par,
                    passes,
                    &mut tick,
                ),
                Engine::ExactGram => gram_trial(
                    &spec.network,
                    spec.samples,
                    spec.input,
                    &mut rng,
                    par,
                    passes,
                    &mut tick,
                ),
                Engine::ExactSingle => {
                    // O(L) per network: its 2L progress units (one per layer and pass, as for
                    // the other engines) at once: one report per network, not 2L.
                    advance(2 * spec.network.depth() as u64)?;
                    let mut ratios = exact::run_trial_single(&spec.network, spec.input, &mut rng);
                    if passes == Passes::ForwardOnly {
                        ratios.gradient.clear();
                    }
                    Ok(ratios)
                }
            }
            .map(|mut ratios| {
                ratios.undefined_past_overflow(spec.samples);
                ratios
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    (ctl.progress)(total, total);
    Ok(Simulation {
        depth: spec.network.depth(),
        samples: spec.samples,
        trials,
    })
}
