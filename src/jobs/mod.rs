//! Jobs: the facade the HTTP layer calls (submit, read, cancel, delete, results, events), the
//! worker that runs queued jobs on the compute pool (`worker`), and one runner per job kind
//! (`kinds`).
//!
//! Depends on: `spec`, `sim`, `analysis` (through the runners), `store` (through the
//! [`JobStore`] trait), `metrics`. HTTP handlers call [`Jobs`], never the store.

pub mod kinds;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, Notify, Semaphore};

use crate::analysis::sweep::{frontier, FrontierRow, PointReport};
use crate::metrics::Metrics;
use crate::sim::plan::SpecPlan;
use crate::spec::{parse_spec, Limits, Spec, SpecError};
use crate::store::{JobRow, JobStore, ListQuery, NewJob, QueueLimits, ResultFamily, Status, StoreError};

pub use worker::PROGRESS_INTERVAL;

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
    WrongState { id: String, status: Status },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Quota(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::IdempotencyConflict => JobError::IdempotencyConflict,
            StoreError::QueueFull(n) => JobError::QueueFull(n),
            StoreError::Quota(m) => JobError::Quota(m),
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
    /// Where the job stands beyond its counter (a search's bracket), if its kind says.
    pub detail: Option<Value>,
}

/// Who is asking: the name of the caller's token (None without tokens or for a read) and
/// whether it is an admin token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: Option<String>,
    pub admin: bool,
}

impl Caller {
    /// A server without tokens: anyone may change anything.
    pub fn open() -> Caller {
        Caller {
            name: None,
            admin: true,
        }
    }

    /// A read on a server with tokens (no token needed).
    pub fn reader() -> Caller {
        Caller {
            name: None,
            admin: false,
        }
    }

    /// Whether this caller may cancel or delete `job`: its owner, or an admin.
    pub fn may_change(&self, job: &JobRow) -> bool {
        self.admin || (self.name.is_some() && self.name == job.owner)
    }
}

/// Settings of the job system.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    pub threads: usize,
    pub max_running: usize,
    pub max_queued: i64,
    pub max_queued_per_owner: Option<i64>,
    pub max_owner_flops: Option<f64>,
    pub limits: Limits,
    /// How long a claimed unit stays this worker's without a renewal (renewed every third).
    pub lease: std::time::Duration,
    /// How often an idle worker looks for work another process queued.
    pub poll: std::time::Duration,
    /// Stop claiming after this many units (a worker process's `--max-units`).
    pub max_units: Option<u64>,
    /// Whether this process computes at all (false: an API-only server).
    pub compute: bool,
}

impl JobsConfig {
    /// How often an idle worker polls when nothing wakes it.
    pub const DEFAULT_POLL: std::time::Duration = std::time::Duration::from_secs(1);
}

pub struct Jobs {
    store: Arc<dyn JobStore>,
    config: JobsConfig,
    metrics: Arc<Metrics>,
    /// One compute pool per running slot, the threads split between them, so every running
    /// job makes progress (`max_running` k: k pools of about threads/k threads).
    pools: Vec<Arc<rayon::ThreadPool>>,
    /// Indices of the pools no running job holds.
    free_pools: Mutex<Vec<usize>>,
    wake: Notify,
    slots: Arc<Semaphore>,
    /// Cancel flags of jobs with units running here, by id, with how many units hold each.
    running: Mutex<HashMap<String, (Arc<AtomicBool>, usize)>>,
    /// This process's name on the leases it takes (host, pid and a random part).
    worker_id: String,
    /// Units claimed so far (for `max_units`).
    units_run: AtomicU64,
    shutdown: Arc<AtomicBool>,
    stopped: Notify,
    /// Serializes submissions of this process (the store checks the queue length and the
    /// idempotency key in the insert's transaction as well).
    submit_lock: tokio::sync::Mutex<()>,
    events: broadcast::Sender<JobEvent>,
}

/// sha256 of the canonical JSON of a request body (keys sorted by serde_json's map).
pub fn body_hash(body: &Value) -> String {
    let digest = Sha256::digest(body.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Jobs {
    pub fn new(store: Arc<dyn JobStore>, config: JobsConfig, metrics: Arc<Metrics>) -> std::io::Result<Arc<Jobs>> {
        let slots = config.max_running.max(1);
        let threads = config.threads.max(1);
        let pools = (0..slots)
            .map(|i| {
                // threads / slots each, the remainder to the first pools; at least one.
                let n = (threads / slots + usize::from(i < threads % slots)).max(1);
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(move |t| format!("widthlab-compute-{i}-{t}"))
                    .build()
                    .map(Arc::new)
                    .map_err(std::io::Error::other)
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let (events, _) = broadcast::channel(1024);
        Ok(Arc::new(Jobs {
            store,
            slots: Arc::new(Semaphore::new(config.max_running.max(1))),
            config,
            metrics,
            free_pools: Mutex::new((0..pools.len()).rev().collect()),
            pools,
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            worker_id: worker_id(),
            units_run: AtomicU64::new(0),
            shutdown: Arc::new(AtomicBool::new(false)),
            stopped: Notify::new(),
            submit_lock: tokio::sync::Mutex::new(()),
            events,
        }))
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    /// Validate and queue a job from a request body (a spec or a preset with overrides).
    /// Returns the job and whether it was created (false: an idempotent replay).
    pub async fn submit(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
        caller: &Caller,
    ) -> Result<(JobRow, bool), JobError> {
        let kinds::Validated {
            spec,
            expanded,
            preset,
            labels,
        } = kinds::validate(body, &self.config.limits)?;
        let hash = body_hash(&expanded);
        let id = uuid::Uuid::new_v4().to_string();
        let spec_json = spec.to_json();
        let stamp = serde_json::to_value(crate::analysis::report::Stamp::for_spec(&spec)).unwrap_or(Value::Null);
        let runner = kinds::runner(spec.kind());
        let units: Vec<u64> = (0..runner.units(&spec))
            .map(|u| runner.unit_progress_total(&spec, u))
            .collect();
        let new = NewJob {
            id: &id,
            kind: spec.kind(),
            spec: &spec_json,
            spec_hash: &hash,
            idempotency_key,
            progress_total: units.iter().sum(),
            seed: spec.seed,
            stamp: &stamp,
            preset,
            name: labels.name(),
            tags: labels.tags(),
            owner: caller.name.as_deref(),
            work_flops: spec.estimate(self.config.limits.parallel_trials).work_flops,
            units: &units,
        };
        if let (Some(owner), Some(max)) = (new.owner, self.config.max_owner_flops) {
            // Over the quota alone: no wait would let it in, so it is refused as a spec (the
            // work limit's field), not answered 503 with a Retry-After.
            if new.work_flops > max {
                return Err(JobError::InvalidSpec(SpecError::new(
                    "trials",
                    format!(
                        "estimated work {:.3e} floating-point operations is over {owner}'s quota of {max:.3e} \
                         (--max-owner-flops) by itself; reduce trials, samples, width or depth",
                        new.work_flops
                    ),
                )));
            }
        }
        let limits = QueueLimits {
            max_queued: self.config.max_queued,
            max_queued_per_owner: self.config.max_queued_per_owner,
            max_owner_flops: self.config.max_owner_flops,
        };
        let _guard = self.submit_lock.lock().await;
        let (row, created) = self.store.insert_job(new, limits).await?;
        if created {
            self.metrics.job_submitted();
            self.publish(&row);
            self.wake.notify_one();
        }
        Ok((row, created))
    }

    /// The job with this id.
    pub async fn job(&self, id: &str) -> Result<JobRow, JobError> {
        self.store
            .job(id)
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))
    }

    /// A page of jobs, newest first.
    pub async fn list(&self, query: &ListQuery) -> Result<Vec<JobRow>, JobError> {
        Ok(self.store.list_jobs(query).await?)
    }

    /// A job's results of one family, typed.
    pub async fn results<T: DeserializeOwned>(&self, id: &str, family: ResultFamily) -> Result<Vec<T>, JobError> {
        let rows = self.store.results(id, family).await?;
        kinds::decode(rows).map_err(|e| JobError::Store(StoreError::Json(e)))
    }

    /// A job's results of one family, as stored JSON.
    pub async fn result_documents(&self, id: &str, family: ResultFamily) -> Result<Vec<Value>, JobError> {
        Ok(self
            .store
            .results(id, family)
            .await?
            .into_iter()
            .map(|r| r.data)
            .collect())
    }

    /// The frontier of a sweep: the one stored in its summary once it succeeded; for a running
    /// sweep, computed from the points so far off the async workers (the exact-tail minimal
    /// widths are bound searches).
    pub async fn frontier(&self, job: &JobRow, points: &[PointReport]) -> Result<Vec<FrontierRow>, JobError> {
        let stored = job
            .summary
            .as_ref()
            .and_then(|v| serde_json::from_value::<Vec<FrontierRow>>(v["frontier"].clone()).ok());
        if let Some(rows) = stored {
            return Ok(rows);
        }
        let Some(spec) = stored_spec(job) else {
            return Ok(Vec::new());
        };
        let points = points.to_vec();
        tokio::task::spawn_blocking(move || frontier(&spec, &points))
            .await
            .map_err(|e| JobError::Internal(format!("computing the frontier: {e}")))
    }

    /// The per-sample ratios a `keep_samples` job kept, every network in order, decoded off the
    /// async workers. (The caller checks that the job kept them and has succeeded.)
    pub async fn kept_samples(&self, job: &JobRow) -> Result<crate::sim::Simulation, JobError> {
        let spec = stored_spec(job)
            .ok_or_else(|| JobError::Internal(format!("the stored spec of job {} does not parse", job.id)))?;
        let rows = self.store.results(&job.id, ResultFamily::TrialRatios).await?;
        tokio::task::spawn_blocking(move || {
            let trials = kinds::norms::stored_trials(rows)?;
            if trials.len() != spec.trials {
                return Err(format!(
                    "{} of {} networks' ratios are stored",
                    trials.len(),
                    spec.trials
                ));
            }
            Ok(crate::sim::Simulation {
                depth: spec.network.depth(),
                samples: spec.samples,
                trials,
            })
        })
        .await
        .map_err(|e| JobError::Internal(format!("reading kept samples: {e}")))?
        .map_err(JobError::Internal)
    }

    /// The cells of a `min_width` job, assembled from its stored probes (so far, if running).
    pub async fn search_cells(&self, job: &JobRow) -> Result<Vec<crate::analysis::search::CellResult>, JobError> {
        let probes: Vec<kinds::min_width::CellProbe> = self.results(&job.id, ResultFamily::Probe).await?;
        let Some(spec) = stored_spec(job) else {
            return Ok(Vec::new());
        };
        let cap = self.config.limits.max_width as u64;
        tokio::task::spawn_blocking(move || kinds::min_width::cells_from_probes(&spec, probes, cap))
            .await
            .map_err(|e| JobError::Internal(format!("assembling the search: {e}")))
    }

    /// How many jobs are in each state, and the database's readiness.
    pub async fn count_by_status(&self) -> Result<Vec<(Status, i64)>, JobError> {
        Ok(self.store.count_by_status().await?)
    }

    pub async fn ping(&self) -> Result<(), JobError> {
        Ok(self.store.ping().await?)
    }

    /// Cancel a job: queued jobs at once, running ones at the next layer boundary.
    pub async fn cancel(&self, id: &str, caller: &Caller) -> Result<JobRow, JobError> {
        let before = self.job(id).await?;
        permitted(caller, &before, "cancel")?;
        if before.status.is_terminal() {
            return Err(JobError::WrongState {
                id: id.to_string(),
                status: before.status,
            });
        }
        let row = self
            .store
            .request_cancel(id)
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))?;
        // It may have finished between the check above and the cancel: that is no cancel.
        if matches!(row.status, Status::Succeeded | Status::Failed) {
            return Err(JobError::WrongState {
                id: id.to_string(),
                status: row.status,
            });
        }
        if let Some((flag, _)) = self.lock_running().get(id) {
            flag.store(true, Ordering::Relaxed);
        }
        self.publish(&row);
        Ok(row)
    }

    /// Delete a terminal job and its results.
    pub async fn delete(&self, id: &str, caller: &Caller) -> Result<(), JobError> {
        let row = self.job(id).await?;
        permitted(caller, &row, "delete")?;
        if !row.status.is_terminal() || !self.store.delete_terminal(id).await? {
            return Err(JobError::WrongState {
                id: id.to_string(),
                status: row.status,
            });
        }
        Ok(())
    }

    /// Take a compute pool for a job that is starting (a slot permit is held, so one is free).
    fn take_pool(&self) -> (usize, Arc<rayon::ThreadPool>) {
        let index = self
            .free_pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or(0);
        (index, self.pools[index].clone())
    }

    fn return_pool(&self, index: usize) {
        self.free_pools.lock().unwrap_or_else(|p| p.into_inner()).push(index);
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<AtomicBool>, usize)>> {
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cancel flag of a job a unit of which starts here (shared by its units here).
    fn register(&self, id: &str, cancel_requested: bool) -> Arc<AtomicBool> {
        let mut running = self.lock_running();
        let entry = running
            .entry(id.to_string())
            .or_insert_with(|| (Arc::new(AtomicBool::new(false)), 0));
        entry.1 += 1;
        if cancel_requested {
            entry.0.store(true, Ordering::Relaxed);
        }
        entry.0.clone()
    }

    fn unregister(&self, id: &str) {
        let mut running = self.lock_running();
        if let Some(entry) = running.get_mut(id) {
            entry.1 -= 1;
            if entry.1 == 0 {
                running.remove(id);
            }
        }
    }

    /// Whether this process has claimed all the units it was told to (`max_units`).
    fn units_exhausted(&self) -> bool {
        self.config
            .max_units
            .is_some_and(|max| self.units_run.load(Ordering::Relaxed) >= max)
    }

    fn count_unit(&self) {
        self.units_run.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether this process computes units (false: API only).
    pub fn computes(&self) -> bool {
        self.config.compute
    }

    /// This process's name on its leases.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    fn publish(&self, row: &JobRow) {
        let _ = self.events.send(JobEvent {
            id: row.id.clone(),
            status: row.status,
            done: row.progress_done,
            total: row.progress_total,
            detail: row.progress_detail.clone(),
        });
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

    /// Wait until no unit of this process is computing (every slot free), then free the slots
    /// again: how a worker with `max_units` waits for its last units.
    pub async fn idle(&self) {
        let all = self.config.max_running.max(1) as u32;
        if let Ok(permits) = self.slots.acquire_many(all).await {
            drop(permits);
        }
    }

    /// Stop (see [`Jobs::begin_shutdown`]) and wait up to `grace` for running jobs.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.begin_shutdown();
        let all = self.config.max_running.max(1) as u32;
        match tokio::time::timeout(grace, self.slots.acquire_many(all)).await {
            Ok(Ok(permits)) => permits.forget(),
            _ => {
                // A layer longer than the grace: give the units back now, as a stop and not a
                // crash (a late result finds the lease no longer held and is dropped).
                let held = match self.store.release_worker(&self.worker_id).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(error = %e, "giving units back at shutdown failed");
                        0
                    }
                };
                tracing::warn!(units = held, "still computing after {grace:?}; units given back");
            }
        }
        self.slots.close();
    }

    /// Re-queue jobs a crash left running, and split jobs queued by an older version into
    /// units (start-up of a process that owns its database alone).
    pub async fn recover(&self) -> Result<u64, StoreError> {
        let requeued = self.store.recover().await?;
        self.split_legacy().await?;
        Ok(requeued)
    }

    /// Give jobs without units (queued before units existed) their units.
    pub async fn split_legacy(&self) -> Result<(), StoreError> {
        for row in self.store.jobs_without_units().await? {
            let Some(spec) = stored_spec(&row) else {
                self.store
                    .finish_failed(&row.id, "stored spec no longer readable")
                    .await?;
                continue;
            };
            let runner = kinds::runner(row.kind);
            let units: Vec<u64> = (0..runner.units(&spec))
                .map(|u| runner.unit_progress_total(&spec, u))
                .collect();
            self.store.add_units(&row.id, &units).await?;
        }
        Ok(())
    }

    /// Refresh the unit gauges of the metrics from the store.
    pub async fn refresh_unit_metrics(&self) -> Result<(), StoreError> {
        let counts = self.store.unit_counts().await?;
        self.metrics.set_units(&counts);
        Ok(())
    }
}

/// A lease holder's name: host, process id, and a random part (a pid is reused).
fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}

fn permitted(caller: &Caller, job: &JobRow, what: &str) -> Result<(), JobError> {
    if caller.may_change(job) {
        return Ok(());
    }
    Err(JobError::Forbidden(match &job.owner {
        Some(owner) => format!(
            "job {} belongs to {owner}: only its owner or an admin token may {what} it",
            job.id
        ),
        None => format!(
            "job {} was submitted without a token: only an admin token may {what} it",
            job.id
        ),
    }))
}

/// Parse a stored (normalized) spec: only its shape matters here, not today's limits.
pub fn stored_spec(row: &JobRow) -> Option<Spec> {
    let relaxed = Limits {
        max_memory_bytes: u64::MAX,
        max_work: f64::INFINITY,
        ..Limits::default()
    };
    parse_spec(&row.spec, &relaxed).ok()
}
