//! Storage of jobs and their results behind one trait, [`JobStore`].
//!
//! Holds: the trait, the typed job row ([`JobRow`] with [`Kind`] and [`Status`] enums, mapped
//! from the database's text by the store: an unknown value is a [`StoreError::Corrupt`], never
//! a guess), result rows ([`ResultRow`], one JSON document per unit of a job's results, grouped in
//! [`ResultFamily`]), and its implementations: SQLite (`sqlite`, embedded, one process) and
//! PostgreSQL (`postgres`, shared by API nodes and workers on many machines).
//! Depends on: `spec` (for [`Kind`]) only. The store does not know report types: the job layer
//! encodes its results into [`ResultRow`]s and decodes them.
//!
//! Contract of every implementation: each state change is one guarded write (`WHERE status =
//! ...`), so terminal states never change and two writers cannot both win; a job's final state
//! and its result rows are written in one transaction.

mod postgres;
mod sqlite;
mod stored;

use serde_json::Value;

pub use postgres::{is_postgres_url, PgStore};
pub use sqlite::{DatabaseLock, SqliteStore};
pub use stored::now;

use crate::spec::names::string_enum;
pub use crate::spec::Kind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// The disk (or the database's size limit) is full: nothing was written.
    #[error("the database cannot grow: its disk is full ({0})")]
    Full(String),
    #[error("migrating the schema: {0}")]
    Migration(sqlx::migrate::MigrateError),
    #[error("stored JSON: {0}")]
    Json(serde_json::Error),
    /// The database is not usable at all (held by another process, corrupt, not a database).
    #[error("{0}")]
    Unusable(String),
    /// A stored value this build does not understand (an unknown status or kind, say).
    #[error("the database holds a value this version cannot read: {0}")]
    Corrupt(String),
    #[error("idempotency key reused with a different body")]
    IdempotencyConflict,
    #[error("the queue is full ({0} jobs queued)")]
    QueueFull(i64),
    /// An owner's quota would be exceeded.
    #[error("{0}")]
    Quota(String),
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(e)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Json(e)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // SQLITE_FULL (13); PostgreSQL's disk_full (53100).
        let full = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code == "13" || code == "53100");
        if full {
            StoreError::Full(e.to_string())
        } else {
            StoreError::Database(e)
        }
    }
}

string_enum! {
    /// Job states. Terminal: succeeded, failed, cancelled.
    pub enum Status {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }
}

string_enum! {
    /// The families of result rows a job can have.
    pub enum ResultFamily {
        /// Per-layer statistics of a `norms` job (index: the layer, 1-based).
        Layer = "layer",
        /// One bound held against a `norms` job (index: position in `Bound::ALL`).
        BoundCheck = "bound_check",
        /// One point of a `width_sweep` (index: the point, in grid order).
        SweepPoint = "sweep_point",
        /// One probe of a `min_width` search (index: cell x 10000 + the probe's place in it).
        Probe = "probe",
        /// The raw ratios of one unit of a `norms` job's networks (dropped once the report is
        /// stored).
        TrialRatios = "trial_ratios",
        /// One (initial angle, layer) row of a `geometry` job (index: angle x (L + 1) + layer).
        GeometryLayer = "geometry_layer",
        /// The cosine and distance moments of one unit of a `geometry` job's networks (dropped
        /// once the rows are stored).
        PairMoments = "pair_moments",
        /// One (grid point, layer) row of a `worst_case` job (index: point x depth + layer - 1).
        WorstCaseLayer = "worst_case_layer",
        /// The extremes and spectral norms of one unit of a `worst_case` job's networks (index:
        /// the unit; dropped once the rows are stored).
        WorstCaseNetworks = "worst_case_networks",
    }
}

/// One unit of a job's results: a JSON document in a family, at an index.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub family: ResultFamily,
    pub index: i64,
    pub data: Value,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    /// Insertion order (keyset pagination).
    pub seq: i64,
    pub id: String,
    pub kind: Kind,
    /// The normalized spec.
    pub spec: Value,
    /// sha256 of the canonical request body (idempotency).
    pub spec_hash: String,
    pub idempotency_key: Option<String>,
    pub status: Status,
    pub progress_done: u64,
    pub progress_total: u64,
    /// Where a running job stands beyond its counter (a search's bracket), if its kind says.
    pub progress_detail: Option<Value>,
    pub error: Option<String>,
    pub seed: u64,
    pub attempt: u32,
    /// Runs in a row a crash ended before the job stored a new result.
    pub stalls: u32,
    pub cancel_requested: bool,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub stamp: Option<Value>,
    pub summary: Option<Value>,
    /// The preset the job was submitted from.
    pub preset: Option<String>,
    /// The job's name, as submitted (checked by `spec::labels`).
    pub name: Option<String>,
    /// The job's tags, as submitted (empty when none).
    pub tags: Vec<String>,
    /// The name of the token that submitted the job (None without tokens).
    pub owner: Option<String>,
    /// The job's estimated work in floating-point operations.
    pub work_flops: f64,
}

string_enum! {
    /// Where a unit of work stands.
    pub enum UnitState {
        Pending = "pending",
        Leased = "leased",
        Done = "done",
    }
}

/// A unit of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitRef<'a> {
    pub job: &'a str,
    pub unit: u64,
}

/// A unit a worker holds under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The job, as it is after the claim (running).
    pub job: JobRow,
    pub unit: u64,
    /// The finishing unit: build the job's result from every unit's rows.
    pub finish: bool,
    /// Earlier leases of this unit that ended without completing it.
    pub attempts: u32,
}

/// What a lease renewal learned.
#[derive(Debug, Clone, PartialEq)]
pub struct Renewal {
    /// The lease is still this worker's and the job still running: go on.
    pub held: bool,
    /// Someone asked the job to stop.
    pub cancel_requested: bool,
    /// The job's progress, summed over its units.
    pub done: u64,
    pub total: u64,
}

/// What a new job needs.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub id: &'a str,
    pub kind: Kind,
    pub spec: &'a Value,
    pub spec_hash: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub progress_total: u64,
    pub seed: u64,
    /// Seed, RNG, version, precision and engine, known before the job runs.
    pub stamp: &'a Value,
    pub preset: Option<&'a str>,
    /// The job's name and tags (checked by `spec::labels`).
    pub name: Option<&'a str>,
    pub tags: &'a [String],
    pub owner: Option<&'a str>,
    pub work_flops: f64,
    /// The progress total of each compute unit (a finishing unit is added after them).
    pub units: &'a [u64],
}

/// Limits a submission is checked against in the insert's transaction.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Queued jobs in all.
    pub max_queued: i64,
    /// Queued jobs of one owner.
    pub max_queued_per_owner: Option<i64>,
    /// Estimated work of one owner's queued and running jobs.
    pub max_owner_flops: Option<f64>,
}

/// Filters and page of a job listing, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub kind: Option<Kind>,
    pub limit: u32,
    pub owner: Option<String>,
    /// Only jobs submitted from this preset.
    pub preset: Option<String>,
    /// Only jobs whose name contains this, ignoring ASCII case.
    pub name_contains: Option<String>,
    /// Only jobs carrying this tag (exactly; a valid tag, see `spec::labels::parse_tag`).
    pub tag: Option<String>,
    /// Only jobs with `seq` below this (the cursor of the previous page).
    pub before_seq: Option<i64>,
}

/// Runs in a row that may end in a crash without storing a new result before the job is failed
/// instead of re-queued (a job that stores units between crashes is never failed for them).
pub const MAX_ATTEMPTS: u32 = 3;

/// The answer to a submission whose idempotency key is already stored: the original job if the
/// body is the same, a conflict otherwise. The one place this rule lives.
pub fn replay(existing: JobRow, spec_hash: &str) -> Result<(JobRow, bool), StoreError> {
    if existing.spec_hash == spec_hash {
        Ok((existing, false))
    } else {
        Err(StoreError::IdempotencyConflict)
    }
}

/// Where jobs and their results live.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync {
    /// The database answers and takes a write.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Insert a queued job, unless its idempotency key was used ([`replay`]: the original job,
    /// `false`), the queue is full ([`StoreError::QueueFull`]) or the owner's quota would be
    /// exceeded ([`StoreError::Quota`]).
    async fn insert_job(&self, job: NewJob<'_>, limits: QueueLimits) -> Result<(JobRow, bool), StoreError>;

    async fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError>;

    /// Newest first, keyset-paginated on `seq`.
    async fn list_jobs(&self, query: &ListQuery) -> Result<Vec<JobRow>, StoreError>;

    /// How many jobs are in each state (states without jobs are left out).
    async fn count_by_status(&self) -> Result<Vec<(Status, i64)>, StoreError>;

    /// Claim a unit: a pending one, or one whose lease expired (its holder died), of the oldest
    /// queued or running job not asked to stop; a finishing unit only once every compute unit of
    /// its job is done. The job becomes running. A unit reclaimed from an expired lease counts a
    /// crash: the job's `attempt` and `stalls` go up, and at [`MAX_ATTEMPTS`] stalls the job is
    /// failed instead.
    async fn claim_unit(&self, worker: &str, lease: std::time::Duration) -> Result<Option<Claim>, StoreError>;

    /// Extend a lease, record the unit's progress (and the job's detail), and learn whether the
    /// worker should go on.
    async fn renew_unit(
        &self,
        unit: UnitRef<'_>,
        worker: &str,
        lease: std::time::Duration,
        progress: u64,
        detail: Option<&Value>,
    ) -> Result<Renewal, StoreError>;

    /// A compute unit is done: store its rows (an upsert: a unit computed twice writes the same
    /// rows) and mark it done, in one transaction; a stored unit is progress (stalls back to 0).
    /// Nothing is written for a job that ended meanwhile. Returns the job's compute units not
    /// done yet.
    async fn complete_unit(&self, unit: UnitRef<'_>, worker: &str, rows: &[ResultRow]) -> Result<u64, StoreError>;

    /// Give a unit back (a stop, not a crash): pending again, no attempt counted; a job left
    /// with no unit leased goes back to queued.
    async fn release_unit(&self, unit: UnitRef<'_>, worker: &str) -> Result<(), StoreError>;

    /// Give back every unit `worker` holds (a stop that did not wait for them); returns how
    /// many.
    async fn release_worker(&self, worker: &str) -> Result<u64, StoreError>;

    /// Queued or running jobs that have no units (queued by a version before units).
    async fn jobs_without_units(&self) -> Result<Vec<JobRow>, StoreError>;

    /// Give a job its units (compute units with these progress totals, then the finishing
    /// unit), unless it has some.
    async fn add_units(&self, id: &str, units: &[u64]) -> Result<(), StoreError>;

    /// Units by state (of jobs not finished), for the metrics.
    async fn unit_counts(&self) -> Result<Vec<(UnitState, i64)>, StoreError>;

    /// Store one result row of a running job, replacing a row at the same (family, index): a
    /// unit stored twice (a resumed attempt) is the same row. A stored unit is progress: the
    /// job's stall count goes back to 0.
    async fn put_result(&self, id: &str, row: &ResultRow) -> Result<(), StoreError>;

    /// A job's result rows of one family, by index.
    async fn results(&self, id: &str, family: ResultFamily) -> Result<Vec<ResultRow>, StoreError>;

    /// running -> succeeded, with the stamp, summary and the final result rows, dropping the
    /// scratch families, in one transaction. `false` if the job was not running.
    async fn finish_succeeded(
        &self,
        id: &str,
        stamp: &Value,
        summary: &Value,
        rows: &[ResultRow],
        scratch: &[ResultFamily],
    ) -> Result<bool, StoreError>;

    /// running -> failed.
    async fn finish_failed(&self, id: &str, error: &str) -> Result<bool, StoreError>;

    /// running -> cancelled (a cancel the worker honoured).
    async fn finish_cancelled(&self, id: &str) -> Result<bool, StoreError>;

    /// At start-up of a process that owns the database alone (SQLite): units leased by a process
    /// that died are released (attempt + 1, stalls + 1; failed at [`MAX_ATTEMPTS`] stalls),
    /// running jobs asked to stop become cancelled, and running jobs left with no unit leased go
    /// back to queued. Returns how many jobs were re-queued. A shared database (PostgreSQL)
    /// reclaims expired leases instead, at claim time.
    async fn recover(&self) -> Result<u64, StoreError>;

    /// Wait until work may have become claimable in another process (a job submitted, a unit
    /// given back, a finishing unit ready) or `timeout` passes. A store shared by processes
    /// pushes those events (PostgreSQL: LISTEN/NOTIFY); the default only waits.
    async fn wait_for_work(&self, timeout: std::time::Duration) {
        tokio::time::sleep(timeout).await;
    }

    /// Cancel: a queued job at once, a running one by flag. Returns the job after the change.
    async fn request_cancel(&self, id: &str) -> Result<Option<JobRow>, StoreError>;

    /// Delete a terminal job and its results; `false` if it is not terminal (or gone).
    async fn delete_terminal(&self, id: &str) -> Result<bool, StoreError>;
}
