//! One runner per job kind, behind one interface ([`KindRunner`]): check a spec against the
//! limits, split it into units, compute a unit with progress and cancellation (storing what it
//! completes, and resuming from what an earlier attempt stored), and build the job's result from
//! every unit's rows.
//!
//! Units are what workers claim: sweep points, a `min_width` table's cells, chunks of a `norms`
//! job's networks. Any process may compute any unit, in any order; a unit's rows depend only on
//! the spec and the unit, so the result is the same bits whoever computed what.
//!
//! The server's workers (`jobs::worker`), `widthlab run` and the benchmarks all run jobs through
//! [`runner`]; what differs is the [`RunContext`]: the database for the server, memory for the
//! command line ([`LocalContext`], with [`run_all`]). Adding a kind is one file here plus its
//! line in [`runner`].

mod geometry;
pub mod min_width;
pub mod norms;
mod width_sweep;
pub mod worst_case;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::analysis::geometry::GeometryLayer;
use crate::analysis::report::{RunReport, Stamp};
use crate::analysis::search::CellResult;
use crate::analysis::sweep::{FrontierRow, PointReport};
use crate::analysis::worst_case::WorstCaseLayer;
use crate::sim::{plan, Cancelled, Control};
use crate::spec::labels::Labels;
use crate::spec::presets;
use crate::spec::{parse_spec, Kind, Limits, Spec, SpecError};
use crate::store::{ResultFamily, ResultRow};

/// What a runner needs from whoever runs it. Callable from any compute thread.
pub trait RunContext: Sync {
    /// Progress of the whole job, in the kind's units (monotone).
    fn progress(&self, done: u64, total: u64);
    /// Polled between units and layers: true stops the run.
    fn cancelled(&self) -> bool;
    /// Result rows of `family` stored by an earlier attempt of this job (to resume from).
    fn stored(&self, family: ResultFamily) -> Result<Vec<ResultRow>, String>;
    /// Store one unit as soon as it is complete.
    fn store(&self, row: ResultRow) -> Result<(), String>;
    /// The limits a run must stay within (memory of one batch, say).
    fn limits(&self) -> &Limits;
    /// A description of where the run stands, shown with its progress (a search's bracket).
    fn detail(&self, _detail: Value) {}
}

/// Why a run did not finish.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The context asked to stop (a cancel, or a shutdown that re-queues the job).
    Cancelled,
    Failed(String),
}

impl From<Cancelled> for Stop {
    fn from(_: Cancelled) -> Stop {
        Stop::Cancelled
    }
}

/// The typed result of a finished job, as `widthlab run` prints it.
#[derive(Debug, Clone)]
pub enum Output {
    Norms(Box<RunReport>),
    WidthSweep {
        spec: Value,
        stamp: Stamp,
        points: Vec<PointReport>,
        frontier: Vec<FrontierRow>,
    },
    MinWidth {
        spec: Value,
        stamp: Stamp,
        cells: Vec<CellResult>,
    },
    Geometry {
        spec: Value,
        stamp: Stamp,
        layers: Vec<GeometryLayer>,
    },
    WorstCase {
        spec: Value,
        stamp: Stamp,
        layers: Vec<WorstCaseLayer>,
    },
}

/// A finished run: what the job row gets, the result rows written with the final state
/// change, and the typed output.
#[derive(Debug, Clone)]
pub struct Finished {
    pub stamp: Stamp,
    /// The job's headline numbers, shown in `GET /v1/jobs/{id}`.
    pub summary: Value,
    /// Result rows not stored unit by unit during the run.
    pub rows: Vec<ResultRow>,
    pub output: Output,
}

/// One job kind.
pub trait KindRunner: Sync {
    /// Refuse a spec this kind cannot run within the limits (before anything is allocated).
    fn check(&self, spec: &Spec, limits: &Limits) -> Result<(), SpecError> {
        plan::check(spec, limits)
    }
    /// How many units the job splits into (at least one).
    fn units(&self, spec: &Spec) -> u64;
    /// The progress counter of unit `unit` runs to this (the job's is the sum over units).
    fn unit_progress_total(&self, spec: &Spec, unit: u64) -> u64;
    /// Compute unit `unit` on the current rayon pool. The rows returned are stored with the
    /// unit's completion; a unit may also store rows as it goes (through `ctx`), to resume from.
    fn run_unit(&self, spec: &Spec, unit: u64, ctx: &dyn RunContext) -> Result<Vec<ResultRow>, Stop>;
    /// Build the job's result from every unit's stored rows (all units are done).
    fn finish(&self, spec: &Spec, ctx: &dyn RunContext) -> Result<Finished, Stop>;
    /// Result families that only feed [`KindRunner::finish`] and are dropped once it is stored.
    fn scratch(&self, _spec: &Spec) -> &'static [ResultFamily] {
        &[]
    }
    /// The job's progress counter runs to this.
    fn progress_total(&self, spec: &Spec) -> u64 {
        (0..self.units(spec)).map(|u| self.unit_progress_total(spec, u)).sum()
    }
}

/// Run a whole job in this process: every unit in order (storing its rows through `ctx`), then
/// [`KindRunner::finish`]. Progress goes to `ctx` on the job's scale.
pub fn run_all(runner: &dyn KindRunner, spec: &Spec, ctx: &dyn RunContext) -> Result<Finished, Stop> {
    let total = runner.progress_total(spec);
    let mut before = 0;
    for unit in 0..runner.units(spec) {
        let scaled = Offset { ctx, before, total };
        for row in runner.run_unit(spec, unit, &scaled)? {
            ctx.store(row).map_err(Stop::Failed)?;
        }
        before += runner.unit_progress_total(spec, unit);
        ctx.progress(before, total);
    }
    runner.finish(spec, ctx)
}

/// A context that reports a unit's progress on its job's scale.
struct Offset<'a> {
    ctx: &'a dyn RunContext,
    before: u64,
    total: u64,
}

impl RunContext for Offset<'_> {
    fn progress(&self, done: u64, _unit_total: u64) {
        self.ctx.progress(self.before + done, self.total)
    }
    fn cancelled(&self) -> bool {
        self.ctx.cancelled()
    }
    fn stored(&self, family: ResultFamily) -> Result<Vec<ResultRow>, String> {
        self.ctx.stored(family)
    }
    fn store(&self, row: ResultRow) -> Result<(), String> {
        self.ctx.store(row)
    }
    fn limits(&self) -> &Limits {
        self.ctx.limits()
    }
    fn detail(&self, detail: Value) {
        self.ctx.detail(detail)
    }
}

/// The runner of a kind.
pub fn runner(kind: Kind) -> &'static dyn KindRunner {
    match kind {
        Kind::Norms => &norms::Norms,
        Kind::WidthSweep => &width_sweep::WidthSweep,
        Kind::MinWidth => &min_width::MinWidth,
        Kind::Geometry => &geometry::GeometryKind,
        Kind::WorstCase => &worst_case::WorstCaseKind,
    }
}

/// A request body checked for running.
#[derive(Debug, Clone)]
pub struct Validated {
    pub spec: Spec,
    /// The body with its preset expanded, labels included (what the idempotency hash covers).
    pub expanded: Value,
    /// The preset the body named, if any.
    pub preset: Option<&'static str>,
    /// The job's name and tags (top-level fields of the body, not part of the spec).
    pub labels: Labels,
}

/// A request body (a spec, or `{"preset": NAME, ...overrides}`) checked for running: the
/// preset expanded, the spec parsed, and its kind's limits checked.
pub fn validate(body: &Value, limits: &Limits) -> Result<Validated, SpecError> {
    let (body, labels) = Labels::take(body)?;
    let (mut expanded, preset) = presets::expand(&body)?;
    let spec = parse_spec(&expanded, limits)?;
    runner(spec.kind()).check(&spec, limits)?;
    // Labels are part of the request: the same idempotency key with another name is a conflict.
    // A body without labels hashes as before they existed.
    if let Some(obj) = expanded.as_object_mut() {
        if let Some(name) = labels.name() {
            obj.insert("name".into(), Value::from(name));
        }
        if !labels.tags().is_empty() {
            obj.insert("tags".into(), Value::from(labels.tags().to_vec()));
        }
    }
    Ok(Validated {
        spec,
        expanded,
        preset,
        labels,
    })
}

/// The [`Control`] a simulation inside a runner uses: the context's cancellation, and its
/// progress unless the kind counts progress itself (`fine` false).
fn with_control<T>(ctx: &dyn RunContext, fine: bool, f: impl FnOnce(&Control) -> T) -> T {
    let progress = |done: u64, total: u64| {
        if fine {
            ctx.progress(done, total)
        }
    };
    let cancelled = || ctx.cancelled();
    f(&Control {
        progress: &progress,
        cancelled: &cancelled,
    })
}

/// A result row holding `value` as JSON.
pub fn encode<T: Serialize>(family: ResultFamily, index: i64, value: &T) -> Result<ResultRow, Stop> {
    Ok(ResultRow {
        family,
        index,
        data: serde_json::to_value(value).map_err(|e| Stop::Failed(format!("encoding a result: {e}")))?,
    })
}

/// The typed values of result rows.
pub fn decode<T: DeserializeOwned>(rows: Vec<ResultRow>) -> Result<Vec<T>, serde_json::Error> {
    rows.into_iter().map(|r| serde_json::from_value(r.data)).collect()
}

/// A context without a database: units are kept in memory, progress goes to a callback, and
/// cancellation is a flag (ctrl-c for the command line).
pub struct LocalContext<'a> {
    rows: Mutex<Vec<ResultRow>>,
    progress: &'a (dyn Fn(u64, u64) + Sync),
    detail: Option<&'a (dyn Fn(Value) + Sync)>,
    cancel: &'a AtomicBool,
    limits: &'a Limits,
}

impl<'a> LocalContext<'a> {
    pub fn new(progress: &'a (dyn Fn(u64, u64) + Sync), cancel: &'a AtomicBool, limits: &'a Limits) -> Self {
        LocalContext {
            rows: Mutex::new(Vec::new()),
            progress,
            detail: None,
            cancel,
            limits,
        }
    }

    /// Also report where the run stands (a search's bracket) to `detail`.
    pub fn with_detail(self, detail: &'a (dyn Fn(Value) + Sync)) -> Self {
        LocalContext {
            detail: Some(detail),
            ..self
        }
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Vec<ResultRow>> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RunContext for LocalContext<'_> {
    fn progress(&self, done: u64, total: u64) {
        (self.progress)(done, total)
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn stored(&self, family: ResultFamily) -> Result<Vec<ResultRow>, String> {
        let mut rows: Vec<ResultRow> = self.rows().iter().filter(|r| r.family == family).cloned().collect();
        rows.sort_by_key(|r| r.index);
        Ok(rows)
    }

    fn store(&self, row: ResultRow) -> Result<(), String> {
        let mut rows = self.rows();
        rows.retain(|r| (r.family, r.index) != (row.family, row.index));
        rows.push(row);
        Ok(())
    }

    fn limits(&self) -> &Limits {
        self.limits
    }

    fn detail(&self, detail: Value) {
        if let Some(f) = self.detail {
            f(detail)
        }
    }
}

/// Run a checked spec here, on the current rayon pool, without a database.
pub fn run_local(
    spec: &Spec,
    limits: &Limits,
    progress: &(dyn Fn(u64, u64) + Sync),
    cancel: &AtomicBool,
) -> Result<Finished, Stop> {
    let ctx = LocalContext::new(progress, cancel, limits);
    run_all(runner(spec.kind()), spec, &ctx)
}
