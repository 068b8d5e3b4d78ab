//! The worker: claims the oldest queued job, runs its kind's runner on the dedicated compute
//! pool (never on the async runtime), streams progress into the row at most every
//! [`PROGRESS_INTERVAL`], stores units as the runner completes them, and writes the outcome.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};

use super::kinds::{runner, Finished, RunContext, Stop};
use super::{JobEvent, Jobs};
use crate::spec::{parse_spec, Limits};
use crate::store::{JobRow, JobStore, ResultFamily, ResultRow, Status, StoreError};

/// Progress is written to the database at most this often per job.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// The runner's view of a job run by this server: units go to the store, progress to a watch
/// channel the async side writes out, cancellation from the job's flag or the shutdown.
struct ServerContext {
    id: String,
    store: Arc<dyn JobStore>,
    runtime: Handle,
    progress: watch::Sender<Progress>,
    cancel: Arc<AtomicBool>,
    shutdown: Arc<AtomicBool>,
    limits: Limits,
}

/// A running job's progress: done, total, and a detail of where it stands.
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

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.shutdown.load(Ordering::Relaxed)
    }

    // Called from compute threads, which are not runtime threads: blocking on the store's
    // future there is allowed and keeps the runners synchronous.
    fn stored(&self, family: ResultFamily) -> Result<Vec<ResultRow>, String> {
        self.runtime
            .block_on(self.store.results(&self.id, family))
            .map_err(|e| e.to_string())
    }

    fn store(&self, row: ResultRow) -> Result<(), String> {
        self.runtime
            .block_on(self.store.put_result(&self.id, &row))
            .map_err(|e| e.to_string())
    }
}

/// How a run ended, panics included.
type Outcome = Result<Result<Finished, Stop>, String>;

impl Jobs {
    /// The worker loop: claim, run, repeat, until [`Jobs::shutdown`].
    pub async fn run_worker(self: Arc<Self>) {
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                break;
            }
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                break;
            };
            if self.shutdown.load(Ordering::Relaxed) {
                break;
            }
            match self.store.claim_next().await {
                Ok(Some(job)) => {
                    self.publish(&job);
                    let jobs = self.clone();
                    tokio::spawn(async move {
                        jobs.run_job(job).await;
                        drop(permit);
                        jobs.wake.notify_one();
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = self.stopped.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, "claiming a job failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn run_job(&self, job: JobRow) {
        let id = job.id.clone();
        // Stored specs were valid when queued; a later, stricter limit fails them cleanly.
        let runner = runner(job.kind);
        let spec = match parse_spec(&job.spec, &self.config.limits)
            .and_then(|s| runner.check(&s, &self.config.limits).map(|()| s))
        {
            Ok(s) => s,
            Err(e) => return self.fail(&id, &format!("stored spec no longer valid: {e}")).await,
        };
        tracing::info!(job = %id, attempt = job.attempt, kind = %job.kind, "job started");
        let cancel = Arc::new(AtomicBool::new(job.cancel_requested));
        self.lock_running().insert(id.clone(), cancel.clone());
        // A cancel that arrived between the claim and the registration above found no flag:
        // it is in the row, so read it again now that the flag is visible to `cancel`.
        if let Ok(Some(row)) = self.store.job(&id).await {
            if row.cancel_requested {
                cancel.store(true, Ordering::Relaxed);
            }
        }
        let started = std::time::Instant::now();
        let (progress_tx, progress_rx) = watch::channel((job.progress_done, job.progress_total, None));
        let ctx = ServerContext {
            id: id.clone(),
            store: self.store.clone(),
            runtime: Handle::current(),
            progress: progress_tx,
            cancel: cancel.clone(),
            shutdown: self.shutdown.clone(),
            limits: self.config.limits.clone(),
        };
        let (pool_index, pool) = self.take_pool();
        let outcome = self
            .compute(&pool, &id, progress_rx, move || runner.run(&spec, &ctx))
            .await;
        self.return_pool(pool_index);
        self.lock_running().remove(&id);
        // The outcome is kept in memory until it is stored: a full disk delays it, it does not
        // lose it (retried until it is written or the server stops; a restart then recomputes).
        let mut logged = false;
        loop {
            let result = match &outcome {
                Ok(Ok(done)) => {
                    let stamp = serde_json::to_value(&done.stamp).unwrap_or_default();
                    self.store
                        .finish_succeeded(&id, &stamp, &done.summary, &done.rows)
                        .await
                        .map(|_| ())
                }
                Ok(Err(Stop::Cancelled)) if !cancel.load(Ordering::Relaxed) => {
                    tracing::info!(job = %id, "job re-queued by shutdown");
                    self.store.requeue(&id).await.map(|_| ())
                }
                Ok(Err(Stop::Cancelled)) => self.store.finish_cancelled(&id).await.map(|_| ()),
                Ok(Err(Stop::Failed(message))) | Err(message) => {
                    self.store.finish_failed(&id, message).await.map(|_| ())
                }
            };
            match result {
                Ok(()) => break,
                Err(e @ StoreError::Full(_)) if !self.shutdown.load(Ordering::Relaxed) => {
                    if !logged {
                        tracing::error!(job = %id, error = %e, "storing the job's outcome failed; retrying every 2 s");
                        logged = true;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "storing the job's outcome failed");
                    break;
                }
            }
        }
        self.metrics.job_finished(started.elapsed());
        if let Ok(Some(row)) = self.store.job(&id).await {
            tracing::info!(job = %id, status = %row.status, secs = started.elapsed().as_secs_f64(), "job ended");
            self.publish(&row);
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

    /// Run `work` on the compute pool while this task writes its progress out at a bounded
    /// rate. `Err` carries a panic's message.
    async fn compute(
        &self,
        pool: &rayon::ThreadPool,
        id: &str,
        mut progress: watch::Receiver<Progress>,
        work: impl FnOnce() -> Result<Finished, Stop> + Send + 'static,
    ) -> Outcome {
        let (done_tx, mut done_rx) = oneshot::channel();
        pool.spawn(move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(work));
            let _ = done_tx.send(result.map_err(|p| {
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "the computation panicked".into())
            }));
        });
        let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
        loop {
            tokio::select! {
                res = &mut done_rx => {
                    return res.unwrap_or_else(|_| Err("the computation ended without a result".into()));
                }
                _ = tick.tick() => {
                    if progress.has_changed().unwrap_or(false) {
                        let (done, total, detail) = progress.borrow_and_update().clone();
                        if let Err(e) = self.store.set_progress(id, done, total, detail.as_ref()).await {
                            tracing::warn!(job = %id, error = %e, "progress update failed");
                        }
                        let _ = self.events.send(JobEvent { id: id.to_string(), status: Status::Running, done, total, detail });
                    }
                }
            }
        }
    }
}
