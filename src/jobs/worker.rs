//! The worker: claims units of work under a lease (any unit of any job, from any process that
//! shares the database), computes them on a dedicated compute pool (never on the async runtime),
//! renews the lease while it writes progress (learning of cancels there), stores each unit's rows
//! when it completes, and builds a job's result when its finishing unit is claimed.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};

use super::kinds::{runner, Finished, KindRunner, RunContext, Stop};
use super::{JobEvent, Jobs};
use crate::spec::{parse_spec, Limits, Spec};
use crate::store::{Claim, JobStore, ResultFamily, ResultRow, Status, StoreError, UnitRef};

/// Progress is written (and the lease renewed) at most this often per unit.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// The runner's view of a unit run by this worker: rows go to the store, progress to a watch
/// channel the async side writes out with the lease renewal, cancellation from the job's flag,
/// a lost lease, or the shutdown.
struct ServerContext {
    job: String,
    store: Arc<dyn JobStore>,
    runtime: Handle,
    progress: watch::Sender<Progress>,
    stop: Arc<AtomicBool>,
    shutdown: Arc<AtomicBool>,
    limits: Limits,
}

/// A unit's progress: done, total, and a detail of where its job stands.
type Progress = (u64, u64, Option<serde_json::Value>);

impl RunContext for ServerContext {
    fn progress(&self, done: u64, total: u64) {
        self.progress.send_modify(|p| {
            p.0 = done;
            p.1 = total;
        });
    }

    fn detail(&self, detail: serde_json::Value) {
        self.progress.send_modify(|p| p.2 = Some(detail));
    }

    fn cancelled(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.shutdown.load(Ordering::Relaxed)
    }

    // Called from compute threads, which are not runtime threads: blocking on the store's
    // future there is allowed and keeps the runners synchronous.
    fn stored(&self, family: ResultFamily) -> Result<Vec<ResultRow>, String> {
        self.runtime
            .block_on(self.store.results(&self.job, family))
            .map_err(|e| e.to_string())
    }

    fn store(&self, row: ResultRow) -> Result<(), String> {
        self.runtime
            .block_on(self.store.put_result(&self.job, &row))
            .map_err(|e| e.to_string())
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// What a unit's computation produced (a panic's message as an error).
enum Work {
    Rows(Vec<ResultRow>),
    Finished(Box<Finished>),
}

type Outcome = Result<Result<Work, Stop>, String>;

impl Jobs {
    /// The worker loop: claim a unit, run it, repeat, until [`Jobs::shutdown`] (or, with
    /// `max_units`, until that many units have been claimed and run).
    pub async fn run_worker(self: Arc<Self>) {
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                break;
            }
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                break;
            };
            if self.shutdown.load(Ordering::Relaxed) || self.units_exhausted() {
                break;
            }
            match self.store.claim_unit(&self.worker_id, self.config.lease).await {
                Ok(Some(claim)) => {
                    self.count_unit();
                    self.publish(&claim.job);
                    let jobs = self.clone();
                    tokio::spawn(async move {
                        jobs.run_unit(claim).await;
                        drop(permit);
                        jobs.wake.notify_one();
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = self.stopped.notified() => {}
                        _ = self.store.wait_for_work(self.config.poll) => {}
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, "claiming a unit failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn run_unit(&self, claim: Claim) {
        let id = claim.job.id.clone();
        let unit = UnitRef {
            job: &id,
            unit: claim.unit,
        };
        // Stored specs were valid when queued; a later, stricter limit fails them cleanly.
        let runner = runner(claim.job.kind);
        let spec = match parse_spec(&claim.job.spec, &self.config.limits)
            .and_then(|s| runner.check(&s, &self.config.limits).map(|()| s))
        {
            Ok(s) => s,
            Err(e) => return self.fail(&id, &format!("stored spec no longer valid: {e}")).await,
        };
        tracing::info!(job = %id, unit = claim.unit, finish = claim.finish, attempts = claim.attempts, kind = %claim.job.kind, "unit started");
        let stop = self.register(&id, claim.job.cancel_requested);
        let lost = Arc::new(AtomicBool::new(false));
        let started = std::time::Instant::now();
        let total = if claim.finish {
            0
        } else {
            runner.unit_progress_total(&spec, claim.unit)
        };
        let (progress_tx, progress_rx) = watch::channel((0, total, None));
        let ctx = ServerContext {
            job: id.clone(),
            store: self.store.clone(),
            runtime: Handle::current(),
            progress: progress_tx,
            stop: stop.clone(),
            shutdown: self.shutdown.clone(),
            limits: self.config.limits.clone(),
        };
        let (pool_index, pool) = self.take_pool();
        let finish = claim.finish;
        let number = claim.unit;
        let work_spec = spec.clone();
        let outcome = self
            .compute(&pool, unit, progress_rx, &stop, &lost, move || {
                run(runner, &work_spec, number, finish, &ctx)
            })
            .await;
        self.return_pool(pool_index);
        self.unregister(&id);
        let completed = self.store_outcome(unit, runner, &spec, outcome, &stop, &lost).await;
        self.metrics.unit_ended(started.elapsed(), completed);
        if claim.finish && completed {
            if let Some(elapsed) = claim.job.started_at.as_deref().and_then(since) {
                self.metrics.job_finished(elapsed);
            }
        }
        if let Ok(Some(row)) = self.store.job(&id).await {
            tracing::info!(job = %id, unit = claim.unit, status = %row.status, secs = started.elapsed().as_secs_f64(), "unit ended");
            self.publish(&row);
        }
    }

    /// Write a unit's outcome; true if it completed the unit (its rows, or the job's result,
    /// stored). A full disk delays it, it does not lose it: retried until it is written or the
    /// server stops (the unit is then computed again).
    async fn store_outcome(
        &self,
        unit: UnitRef<'_>,
        runner: &dyn KindRunner,
        spec: &Spec,
        outcome: Outcome,
        stop: &AtomicBool,
        lost: &AtomicBool,
    ) -> bool {
        let id = unit.job;
        let completes = matches!(outcome, Ok(Ok(_)));
        let mut logged = false;
        loop {
            let result = match &outcome {
                Ok(Ok(Work::Rows(rows))) => self.store.complete_unit(unit, &self.worker_id, rows).await.map(|left| {
                    if left == 0 {
                        // The finishing unit is claimable now.
                        self.wake.notify_one();
                    }
                }),
                Ok(Ok(Work::Finished(done))) => {
                    let stamp = serde_json::to_value(&done.stamp).unwrap_or_default();
                    self.store
                        .finish_succeeded(id, &stamp, &done.summary, &done.rows, runner.scratch(spec))
                        .await
                        .map(|_| ())
                }
                // Another worker holds the unit now, or the job ended: nothing of ours to write.
                Ok(Err(Stop::Cancelled)) if lost.load(Ordering::Relaxed) => Ok(()),
                Ok(Err(Stop::Cancelled)) if stop.load(Ordering::Relaxed) => {
                    self.store.finish_cancelled(id).await.map(|_| ())
                }
                Ok(Err(Stop::Cancelled)) => {
                    tracing::info!(job = %id, unit = unit.unit, "unit given back at shutdown");
                    self.store.release_unit(unit, &self.worker_id).await
                }
                Ok(Err(Stop::Failed(message))) | Err(message) => {
                    self.store.finish_failed(id, message).await.map(|_| ())
                }
            };
            match result {
                Ok(()) => return completes,
                Err(e @ StoreError::Full(_)) if !self.shutdown.load(Ordering::Relaxed) => {
                    if !logged {
                        tracing::error!(job = %id, error = %e, "storing a unit's outcome failed; retrying every 2 s");
                        logged = true;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "storing a unit's outcome failed");
                    return false;
                }
            }
        }
    }

    async fn fail(&self, id: &str, message: &str) {
        if let Err(e) = self.store.finish_failed(id, message).await {
            tracing::error!(job = %id, error = %e, "marking the job failed");
        }
        if let Ok(Some(row)) = self.store.job(id).await {
            self.publish(&row);
        }
    }

    /// Run `work` on `pool` while this task renews the unit's lease and writes its progress at
    /// a bounded rate (and at least every third of the lease). A renewal that finds the job
    /// asked to stop sets `stop`; one that finds the lease gone (or the job ended) sets `lost`;
    /// both stop the computation at its next layer. `Err` carries a panic's message.
    async fn compute(
        &self,
        pool: &rayon::ThreadPool,
        unit: UnitRef<'_>,
        mut progress: watch::Receiver<Progress>,
        stop: &Arc<AtomicBool>,
        lost: &Arc<AtomicBool>,
        work: impl FnOnce() -> Result<Work, Stop> + Send + 'static,
    ) -> Outcome {
        let (done_tx, mut done_rx) = oneshot::channel();
        let (stop_flag, lost_flag) = (stop.clone(), lost.clone());
        pool.spawn(move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(work));
            let _ = done_tx.send(result.map_err(|p| {
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "the computation panicked".into())
            }));
        });
        let renew_every = (self.config.lease / 3).max(PROGRESS_INTERVAL);
        let mut last_renewal = std::time::Instant::now();
        let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
        loop {
            tokio::select! {
                res = &mut done_rx => {
                    return res.unwrap_or_else(|_| Err("the computation ended without a result".into()));
                }
                _ = tick.tick() => {
                    let changed = progress.has_changed().unwrap_or(false);
                    if !changed && last_renewal.elapsed() < renew_every {
                        continue;
                    }
                    let (done, _, detail) = progress.borrow_and_update().clone();
                    match self.store.renew_unit(unit, &self.worker_id, self.config.lease, done, detail.as_ref()).await {
                        Ok(r) => {
                            last_renewal = std::time::Instant::now();
                            if r.cancel_requested {
                                stop_flag.store(true, Ordering::Relaxed);
                            }
                            if !r.held && !r.cancel_requested {
                                lost_flag.store(true, Ordering::Relaxed);
                                stop_flag.store(true, Ordering::Relaxed);
                            }
                            if changed {
                                let _ = self.events.send(JobEvent {
                                    id: unit.job.to_string(),
                                    status: Status::Running,
                                    done: r.done,
                                    total: r.total,
                                    detail,
                                });
                            }
                        }
                        Err(e) => tracing::warn!(job = %unit.job, error = %e, "renewing a lease failed"),
                    }
                }
            }
        }
    }
}

/// A unit's computation: a compute unit's rows, or the job's result for the finishing unit.
fn run(runner: &dyn KindRunner, spec: &Spec, unit: u64, finish: bool, ctx: &ServerContext) -> Result<Work, Stop> {
    if finish {
        runner.finish(spec, ctx).map(|f| Work::Finished(Box::new(f)))
    } else {
        runner.run_unit(spec, unit, ctx).map(Work::Rows)
    }
}

/// Time since an RFC 3339 timestamp (a job's `started_at`).
fn since(stamp: &str) -> Option<Duration> {
    let at = time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).ok()?;
    (time::OffsetDateTime::now_utc() - at).try_into().ok()
}
