//! Jobs: submission, the worker that runs them on the compute pool, cancellation, shutdown.
//!
//! The worker claims the oldest queued job, runs it on a dedicated rayon pool (never on the
//! async runtime), streams progress into the row at most every [`PROGRESS_INTERVAL`], and writes
//! the results in one transaction. HTTP handlers only touch the database and in-memory flags.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, oneshot, watch, Notify, Semaphore};

use crate::report::{build_report, RunReport, Stamp};
use crate::sim::{simulate, work_units, Cancelled, Control};
use crate::spec::{parse_spec, Kind, Limits, Spec, SpecError};
use crate::sweep::{frontier, point_report};

/// How a job's computation ended: finished (or cancelled), or failed with a message.
type Outcome = Result<Result<(), Cancelled>, String>;
use crate::store::{JobRow, NewJob, Status, Store, StoreError};

/// Progress is written to the database at most this often per job.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    InvalidSpec(#[from] SpecError),
    #[error("the queue is full ({0} jobs queued)")]
    QueueFull(i64),
    #[error("idempotency key reused with a different body")]
    IdempotencyConflict,
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {id} is {status}")]
    WrongState { id: String, status: &'static str },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::IdempotencyConflict => JobError::IdempotencyConflict,
            other => JobError::Store(other),
        }
    }
}

/// A change of a job, for live listeners (SSE).
#[derive(Debug, Clone)]
pub struct JobEvent {
    pub id: String,
    pub status: Status,
    pub done: u64,
    pub total: u64,
}

/// Settings of the job system.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    pub threads: usize,
    pub max_running: usize,
    pub max_queued: i64,
    pub limits: Limits,
}

pub struct Jobs {
    store: Store,
    config: JobsConfig,
    pool: Arc<rayon::ThreadPool>,
    wake: Notify,
    slots: Arc<Semaphore>,
    /// Cancel flags of running jobs, by id.
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    shutdown: Arc<AtomicBool>,
    stopped: Notify,
    /// Serializes the queue-length check and the insert of `submit`.
    submit_lock: tokio::sync::Mutex<()>,
    events: broadcast::Sender<JobEvent>,
}

/// sha256 of the canonical JSON of a request body (keys sorted by serde_json's map).
pub fn body_hash(body: &Value) -> String {
    let digest = Sha256::digest(body.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Jobs {
    pub fn new(store: Store, config: JobsConfig) -> std::io::Result<Arc<Jobs>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads.max(1))
            .thread_name(|i| format!("widthlab-compute-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        let (events, _) = broadcast::channel(1024);
        Ok(Arc::new(Jobs {
            store,
            slots: Arc::new(Semaphore::new(config.max_running.max(1))),
            config,
            pool: Arc::new(pool),
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            shutdown: Arc::new(AtomicBool::new(false)),
            stopped: Notify::new(),
            submit_lock: tokio::sync::Mutex::new(()),
            events,
        }))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    /// Validate and queue a job. Returns the job and whether it was created (false: an
    /// idempotent replay of an earlier submission).
    pub async fn submit(&self, body: &Value, idempotency_key: Option<&str>) -> Result<(JobRow, bool), JobError> {
        let spec = parse_spec(body, &self.config.limits)?;
        let hash = body_hash(body);
        // One submission at a time from here to the insert: the queue limit holds under
        // concurrent requests (this process is the only writer of new jobs).
        let _guard = self.submit_lock.lock().await;
        if let Some(key) = idempotency_key {
            if let Some(existing) = self.store.job_by_idempotency_key(key).await? {
                return if existing.spec_hash == hash {
                    Ok((existing, false))
                } else {
                    Err(JobError::IdempotencyConflict)
                };
            }
        }
        let queued = self.store.count_queued().await?;
        if queued >= self.config.max_queued {
            return Err(JobError::QueueFull(queued));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let spec_json = spec.to_json();
        let stamp = serde_json::to_value(Stamp::for_spec(&spec)).unwrap_or(Value::Null);
        let (row, created) = self
            .store
            .insert_job(NewJob {
                id: &id,
                kind: spec.kind.as_str(),
                spec: &spec_json,
                spec_hash: &hash,
                idempotency_key,
                progress_total: match &spec.sweep {
                    Some(sweep) => sweep.points().len() as u64,
                    None => work_units(&spec),
                },
                seed: spec.seed,
                stamp: &stamp,
            })
            .await?;
        if created {
            crate::metrics::job_submitted();
            self.publish(&row);
            self.wake.notify_one();
        }
        Ok((row, created))
    }

    /// Cancel a job: queued jobs at once, running ones at the next layer boundary.
    pub async fn cancel(&self, id: &str) -> Result<JobRow, JobError> {
        let before = self
            .store
            .job(id)
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))?;
        if before.status().is_terminal() {
            return Err(JobError::WrongState {
                id: id.to_string(),
                status: before.status().as_str(),
            });
        }
        let row = self
            .store
            .request_cancel(id)
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))?;
        // It may have finished between the check above and the cancel: that is no cancel.
        if matches!(row.status(), Status::Succeeded | Status::Failed) {
            return Err(JobError::WrongState {
                id: id.to_string(),
                status: row.status().as_str(),
            });
        }
        if let Some(flag) = self.lock_running().get(id) {
            flag.store(true, Ordering::Relaxed);
        }
        self.publish(&row);
        Ok(row)
    }

    /// Delete a terminal job and its results.
    pub async fn delete(&self, id: &str) -> Result<(), JobError> {
        let row = self
            .store
            .job(id)
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))?;
        if !row.status().is_terminal() || !self.store.delete_terminal(id).await? {
            return Err(JobError::WrongState {
                id: id.to_string(),
                status: row.status().as_str(),
            });
        }
        Ok(())
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AtomicBool>>> {
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, row: &JobRow) {
        let _ = self.events.send(JobEvent {
            id: row.id.clone(),
            status: row.status(),
            done: row.progress_done.max(0) as u64,
            total: row.progress_total.max(0) as u64,
        });
    }

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
        let spec_value: Value = match serde_json::from_str(&job.spec) {
            Ok(v) => v,
            Err(e) => return self.fail(&id, &format!("stored spec is not JSON: {e}")).await,
        };
        // Stored specs were valid when queued; a later, stricter limit fails them cleanly.
        let spec = match parse_spec(&spec_value, &self.config.limits) {
            Ok(s) => s,
            Err(e) => return self.fail(&id, &format!("stored spec no longer valid: {e}")).await,
        };
        tracing::info!(job = %id, attempt = job.attempt, kind = spec.kind.as_str(), "job started");
        let cancel = Arc::new(AtomicBool::new(job.cancel_requested != 0));
        self.lock_running().insert(id.clone(), cancel.clone());
        // A cancel that arrived between the claim and the registration above found no flag:
        // it is in the row, so read it again now that the flag is visible to `cancel`.
        if let Ok(Some(row)) = self.store.job(&id).await {
            if row.cancel_requested != 0 {
                cancel.store(true, Ordering::Relaxed);
            }
        }
        let started = std::time::Instant::now();
        let outcome = match spec.kind {
            Kind::Norms => self.run_norms(&id, spec, &cancel).await,
            Kind::WidthSweep => self.run_sweep(&id, spec, &cancel).await,
        };
        self.lock_running().remove(&id);
        let result = match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Cancelled)) if !cancel.load(Ordering::Relaxed) => {
                tracing::info!(job = %id, "job re-queued by shutdown");
                self.store.requeue(&id).await.map(|_| ())
            }
            Ok(Err(Cancelled)) => self.store.finish_cancelled(&id).await.map(|_| ()),
            Err(message) => self.store.finish_failed(&id, &message).await.map(|_| ()),
        };
        if let Err(e) = result {
            tracing::error!(job = %id, error = %e, "storing the job's outcome failed");
        }
        crate::metrics::job_finished(started.elapsed());
        if let Ok(Some(row)) = self.store.job(&id).await {
            tracing::info!(job = %id, status = row.status().as_str(), secs = started.elapsed().as_secs_f64(), "job ended");
            self.publish(&row);
        }
    }

    /// A `norms` job: one simulation, results in one transaction.
    async fn run_norms(&self, id: &str, spec: Spec, cancel: &Arc<AtomicBool>) -> Outcome {
        let stamp = serde_json::to_value(Stamp::for_spec(&spec)).unwrap_or(Value::Null);
        let computed = self
            .compute(id, cancel, None, move |ctl| {
                simulate(&spec, ctl).map(|sim| build_report(&spec, &sim))
            })
            .await?;
        let report = match computed {
            Ok(r) => r,
            Err(c) => return Ok(Err(c)),
        };
        self.store
            .finish_succeeded(id, Some(&report), &stamp, &summary(&report))
            .await
            .map_err(|e| format!("storing results: {e}"))?;
        Ok(Ok(()))
    }

    /// A `width_sweep` job: points run in grid order and are stored as each completes;
    /// points an interrupted attempt already stored are kept (they are deterministic).
    async fn run_sweep(&self, id: &str, spec: Spec, cancel: &Arc<AtomicBool>) -> Outcome {
        let points = spec.sweep.as_ref().map(|s| s.points()).unwrap_or_default();
        let total = points.len() as u64;
        let stored = self
            .store
            .sweep_points(id)
            .await
            .map_err(|e| format!("reading sweep points: {e}"))?;
        let mut done: Vec<usize> = stored.iter().map(|p| p.point).collect();
        // A resumed sweep starts from the points it already has.
        let _ = self.store.set_progress(id, done.len() as u64, total).await;
        for point in points {
            if done.contains(&point.index) {
                continue;
            }
            let point_spec = spec.point_spec(point);
            let progress_at = Some((done.len() as u64, total));
            let computed = self
                .compute(id, cancel, progress_at, move |ctl| {
                    simulate(&point_spec, ctl).map(|sim| point_report(&point_spec, point, &sim))
                })
                .await?;
            let report = match computed {
                Ok(r) => r,
                Err(c) => return Ok(Err(c)),
            };
            self.store
                .put_sweep_point(id, &report)
                .await
                .map_err(|e| format!("storing sweep point: {e}"))?;
            done.push(point.index);
            let n = done.len() as u64;
            let _ = self.store.set_progress(id, n, total).await;
            let _ = self.events.send(JobEvent {
                id: id.to_string(),
                status: Status::Running,
                done: n,
                total,
            });
        }
        let all = self
            .store
            .sweep_points(id)
            .await
            .map_err(|e| format!("reading sweep points: {e}"))?;
        // The exact-tail minimal widths can take seconds: compute them on the compute pool.
        let (rows, spec) = {
            let (tx, rx) = oneshot::channel();
            let points = all.clone();
            self.pool.spawn(move || {
                let rows = frontier(&spec, &points);
                let _ = tx.send((rows, spec));
            });
            rx.await.map_err(|_| "computing the frontier failed".to_string())?
        };
        let summary = json!({"points": all.len(), "frontier": rows});
        let mut stamp = Stamp::for_spec(&spec);
        let mut engines: Vec<&str> = all.iter().map(|p| p.engine.as_str()).collect();
        engines.sort_unstable();
        engines.dedup();
        stamp.method = format!(
            "per point: {} (see each point's engine); point seeds = splitmix64(seed ^ (point + 1) * 0x9E3779B97F4A7C15)",
            engines.join(", ")
        );
        let stamp = serde_json::to_value(stamp).unwrap_or(Value::Null);
        self.store
            .finish_succeeded(id, None, &stamp, &summary)
            .await
            .map_err(|e| format!("storing results: {e}"))?;
        Ok(Ok(()))
    }

    async fn fail(&self, id: &str, message: &str) {
        if let Err(e) = self.store.finish_failed(id, message).await {
            tracing::error!(job = %id, error = %e, "marking the job failed");
        }
        if let Ok(Some(row)) = self.store.job(id).await {
            self.publish(&row);
        }
    }

    /// Run `work` on the compute pool. Progress flows back over a watch channel and is written
    /// by this task at a bounded rate (unless `coarse` is set: then the job's progress is
    /// counted by the caller, e.g. in sweep points). `Err` carries a panic message.
    async fn compute<T: Send + 'static>(
        &self,
        id: &str,
        cancel: &Arc<AtomicBool>,
        coarse: Option<(u64, u64)>,
        work: impl FnOnce(&Control) -> Result<T, Cancelled> + Send + 'static,
    ) -> Result<Result<T, Cancelled>, String> {
        let (progress_tx, mut progress_rx) = watch::channel((0u64, 0u64));
        let (done_tx, mut done_rx) = oneshot::channel();
        let shutdown = self.shutdown.clone();
        let cancel = cancel.clone();
        self.pool.spawn(move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let progress = |done: u64, total: u64| {
                    progress_tx.send_replace((done, total));
                };
                let cancelled = || cancel.load(Ordering::Relaxed) || shutdown.load(Ordering::Relaxed);
                work(&Control {
                    progress: &progress,
                    cancelled: &cancelled,
                })
            }));
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
                    if coarse.is_none() && progress_rx.has_changed().unwrap_or(false) {
                        let (done, total) = *progress_rx.borrow_and_update();
                        if let Err(e) = self.store.set_progress(id, done, total).await {
                            tracing::warn!(job = %id, error = %e, "progress update failed");
                        }
                        let _ = self.events.send(JobEvent { id: id.to_string(), status: Status::Running, done, total });
                    }
                }
            }
        }
    }

    /// Start stopping: no new claims, running jobs stop at their next layer (and go back to
    /// the queue), event streams end. Returns at once.
    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
        self.stopped.notify_waiters();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Stop (see [`Jobs::begin_shutdown`]) and wait up to `grace` for running jobs.
    pub async fn shutdown(&self, grace: Duration) {
        self.begin_shutdown();
        let all = self.config.max_running.max(1) as u32;
        match tokio::time::timeout(grace, self.slots.acquire_many(all)).await {
            Ok(Ok(permits)) => permits.forget(),
            _ => tracing::warn!("running jobs did not stop within {grace:?}; they are re-queued at next start"),
        }
        self.slots.close();
    }

    pub async fn recover(&self) -> Result<u64, StoreError> {
        self.store.recover().await
    }
}

/// The job's headline numbers, stored with it and shown in `GET /v1/jobs/{id}`.
pub fn summary(report: &RunReport) -> Value {
    let verdicts: serde_json::Map<String, Value> = report
        .bound_checks
        .iter()
        .map(|c| (c.bound.clone(), serde_json::to_value(c.verdict).unwrap_or(Value::Null)))
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

/// Work done and to do: layer passes (`norms`) or grid points (`width_sweep`).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub done: i64,
    pub total: i64,
}

/// Where a job's results live.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JobLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub layers: String,
    pub bound_checks: String,
    pub sweep: String,
    pub events: String,
    pub plot: String,
}

/// A job as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    /// `norms` or `width_sweep`.
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    pub progress: Progress,
    /// The normalized spec: defaults filled in, the seed drawn if it was missing.
    #[schema(value_type = Object)]
    pub spec: Value,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// Headline numbers once succeeded (pooled deviations, verdicts; the frontier for sweeps).
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
    /// Seed, RNG algorithm, crate version, precision and engine (set at submission).
    #[schema(value_type = Option<Object>)]
    pub stamp: Option<Value>,
    /// 0 for the first run; +1 each time a crash re-queued it.
    pub attempt: i64,
    pub cancel_requested: bool,
    pub links: JobLinks,
}

/// The job as the API shows it.
pub fn job_view(row: &JobRow) -> JobView {
    let parse = |s: &Option<String>| s.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok());
    let base = format!("/v1/jobs/{}", row.id);
    JobView {
        id: row.id.clone(),
        kind: row.kind.clone(),
        status: row.status.clone(),
        progress: Progress {
            done: row.progress_done,
            total: row.progress_total,
        },
        spec: serde_json::from_str::<Value>(&row.spec).unwrap_or(Value::Null),
        created_at: row.created_at.clone(),
        started_at: row.started_at.clone(),
        finished_at: row.finished_at.clone(),
        error: row.error.clone(),
        summary: parse(&row.summary),
        stamp: parse(&row.stamp),
        attempt: row.attempt,
        cancel_requested: row.cancel_requested != 0,
        links: JobLinks {
            layers: format!("{base}/layers"),
            bound_checks: format!("{base}/bound-checks"),
            sweep: format!("{base}/sweep"),
            events: format!("{base}/events"),
            plot: format!("{base}/plot.svg"),
            self_: base,
        },
    }
}
