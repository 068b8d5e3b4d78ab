//! The embedded store: SQLite through sqlx (WAL, busy timeout, migrations embedded from
//! `migrations/sqlite`).
//!
//! Every multi-statement write runs in one `BEGIN IMMEDIATE` transaction ([`SqliteStore::write`]),
//! so no other connection commits between its reads and its writes, and a row it returns is
//! returned only after its COMMIT succeeded: when the disk is full the caller gets
//! [`StoreError::Full`], never a row that was not stored. A failed transaction is rolled back,
//! and a connection that cannot roll back is closed rather than returned to the pool.

use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};

use super::stored::{name_pattern, now, result_rows, rows, status_counts, unit_state_counts, StoredJob};
use super::{
    replay, Claim, JobRow, JobStore, Kind, ListQuery, NewJob, QueueLimits, Renewal, ResultFamily, ResultRow, Status,
    StoreError, UnitRef, UnitState, MAX_ATTEMPTS,
};

/// The file of a SQLite URL or path (`sqlite://a/b.db?mode=rwc`, `sqlite:b.db`, `b.db`); None
/// for an in-memory database.
pub fn database_file(url: &str) -> Result<Option<std::path::PathBuf>, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    if path == ":memory:" || rest.starts_with(":memory:") {
        return Ok(None);
    }
    if path.is_empty() {
        return Err(StoreError::Unusable(format!(
            "the database URL {url:?} names no file; give a path such as widthlab.db or sqlite://widthlab.db"
        )));
    }
    Ok(Some(std::path::PathBuf::from(path)))
}

/// An exclusive lock on a database, held for the life of the process that serves it: a second
/// server (or worker) on the same file is refused before it reads anything. Advisory (`flock`
/// on `<database>.lock`): released by the kernel when the process dies, however it dies.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: Option<std::fs::File>,
}

impl DatabaseLock {
    /// Take the lock of the database at `url`, recording `holder` (this process, its address)
    /// in the lock file for the error a second process gets.
    pub fn acquire(url: &str, holder: &str) -> Result<DatabaseLock, StoreError> {
        use std::io::{Read, Seek, Write};
        let Some(db) = database_file(url)? else {
            return Ok(DatabaseLock { _file: None });
        };
        let mut path = db.clone().into_os_string();
        path.push(".lock");
        let path = std::path::PathBuf::from(path);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::Unusable(format!("opening the lock file {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut who = String::new();
                let _ = file.read_to_string(&mut who);
                return Err(StoreError::Unusable(format!(
                    "the database {} is in use by another widthlab process ({}); stop it first, or give this one                      another --database-url",
                    db.display(),
                    if who.trim().is_empty() { "holder unknown" } else { who.trim() }
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Unusable(format!("locking {}: {e}", path.display())));
            }
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "pid {} {holder}, since {}", std::process::id(), now());
        let _ = file.flush();
        Ok(DatabaseLock { _file: Some(file) })
    }
}

/// Free bytes on the filesystem holding `path` (None where that cannot be read).
fn free_bytes(path: &std::path::Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid NUL-terminated path and `stat` a valid out-pointer.
        if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
            return None;
        }
        Some(stat.f_bavail as u64 * stat.f_frsize as u64)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Below this much free space the database is reported not ready.
const MIN_FREE_BYTES: u64 = 1 << 20;
/// A write that failed for lack of space keeps the database not ready this long (unless a
/// write that needs space succeeds first).
const FULL_MEMORY: Duration = Duration::from_secs(30);

/// SQLite implementation of [`JobStore`].
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The database file (None in memory).
    path: Option<std::path::PathBuf>,
    /// When a write last failed for lack of space (cleared by a write that needed space).
    full_at: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// A running job asked to stop that no unit is leased for any more (the last unit completed or
/// was given back before a renewal read the flag) ends cancelled: no worker is left to honour the
/// flag, and claims skip it (binds: now, id, id).
const END_ABANDONED_CANCEL: &str =
    "UPDATE jobs SET status = 'cancelled', finished_at = MAX(?, COALESCE(started_at, created_at))
     WHERE id = ? AND status = 'running' AND cancel_requested = 1
       AND NOT EXISTS (SELECT 1 FROM units WHERE job_id = ? AND state = 'leased')";

impl SqliteStore {
    /// Open (creating if missing) and migrate the database at `url`: a path, or `sqlite://path`.
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let opts = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url)?
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(opts).await?;
        // A file that is not a database, or a damaged one, is refused here rather than served
        // with 500s (quick_check reads every page once, without the index cross-checks).
        let check: Vec<String> = sqlx::query_scalar("PRAGMA quick_check").fetch_all(&pool).await?;
        if check.first().map(String::as_str) != Some("ok") {
            return Err(StoreError::Unusable(format!(
                "the database fails its integrity check: {}",
                check.join("; ")
            )));
        }
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            path: database_file(url)?,
            full_at: Default::default(),
        })
    }

    /// Remember a write's lack of space (or that space was found again).
    fn note<T>(&self, result: Result<T, StoreError>, grew: bool) -> Result<T, StoreError> {
        let mut full_at = self.full_at.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Err(StoreError::Full(_)) => *full_at = Some(std::time::Instant::now()),
            Ok(_) if grew => *full_at = None,
            _ => {}
        }
        result
    }

    /// Run `steps` in one `BEGIN IMMEDIATE` transaction and commit it. Only a committed
    /// transaction's value is returned; on any error (of a step or of the COMMIT) the
    /// transaction is rolled back, and a connection that cannot roll back is closed.
    async fn write<T>(
        &self,
        steps: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let outcome = match steps(&mut conn).await {
            Ok(value) => sqlx::query("COMMIT")
                .execute(&mut *conn)
                .await
                .map(|_| value)
                .map_err(StoreError::from),
            Err(e) => Err(e),
        };
        if outcome.is_err() && sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
            // Either SQLite already rolled back (then closing costs one reconnect) or the
            // connection is unusable: never hand it to the next caller mid-transaction.
            let _ = conn.detach().close().await;
        }
        self.note(outcome, false)
    }

    async fn job_by_idempotency_key(conn: &mut SqliteConnection, key: &str) -> Result<Option<JobRow>, StoreError> {
        sqlx::query_as::<_, StoredJob>("SELECT * FROM jobs WHERE idempotency_key = ?")
            .bind(key)
            .fetch_optional(conn)
            .await?
            .map(JobRow::try_from)
            .transpose()
    }

    /// One guarded state change of one job (binds: now, id), committed before it returns.
    async fn update(&self, sql: &str, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(sql).bind(now()).bind(id).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    /// [`JobStore::claim_unit`] with the clock readings taken by the caller.
    async fn claim_unit_at(
        &self,
        worker: &str,
        now: &str,
        now_ms: i64,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let until = now_ms + lease.as_millis() as i64;
        let claimed = self
            .write(async |conn| {
                loop {
                    let candidate: Option<(String, i64, i64, String, i64)> = sqlx::query_as(
                        "SELECT u.job_id, u.idx, u.finish, u.state, u.attempts FROM units u JOIN jobs j ON j.id = u.job_id
                         WHERE j.status IN ('queued', 'running') AND j.cancel_requested = 0
                           AND (u.state = 'pending' OR (u.state = 'leased' AND u.lease_until < ?1))
                           AND (u.finish = 0 OR NOT EXISTS (
                                SELECT 1 FROM units v WHERE v.job_id = u.job_id AND v.finish = 0 AND v.state <> 'done'))
                         ORDER BY (SELECT COUNT(*) FROM units l WHERE l.job_id = u.job_id AND l.state = 'leased'),
                                  j.seq, u.idx
                         LIMIT 1",
                    )
                    .bind(now_ms)
                    .fetch_optional(&mut *conn)
                    .await?;
                    let Some((job_id, idx, finish, state, attempts)) = candidate else {
                        return Ok(None);
                    };
                    if state == "leased" {
                        // Its holder died: a crash of this unit, counted; a unit whose leases ended
                        // MAX_ATTEMPTS times without completing it fails its job (it is likely
                        // what kills the workers).
                        let failed = sqlx::query(
                            "UPDATE jobs SET status = 'failed', finished_at = MAX(?, COALESCE(started_at, created_at)),
                                 stalls = ?, attempt = attempt + 1,
                                 error = 'a worker stopped while running unit ' || ? || ' of this job ' || ? ||
                                         ' times (crash, kill or lost lease) before it completed; not retried'
                             WHERE id = ? AND ? >= ?",
                        )
                        .bind(now)
                        .bind(attempts + 1)
                        .bind(idx)
                        .bind(attempts + 1)
                        .bind(&job_id)
                        .bind(attempts + 1)
                        .bind(MAX_ATTEMPTS as i64)
                        .execute(&mut *conn)
                        .await?;
                        if failed.rows_affected() == 1 {
                            sqlx::query("UPDATE units SET state = 'pending', worker = NULL, lease_until = NULL, attempts = attempts + 1 WHERE job_id = ? AND idx = ?")
                                .bind(&job_id)
                                .bind(idx)
                                .execute(&mut *conn)
                                .await?;
                            continue;
                        }
                        sqlx::query("UPDATE jobs SET attempt = attempt + 1, stalls = MAX(stalls, ?) WHERE id = ?")
                            .bind(attempts + 1)
                            .bind(&job_id)
                            .execute(&mut *conn)
                            .await?;
                    }
                    sqlx::query(
                        "UPDATE units SET state = 'leased', worker = ?, lease_until = ?, progress_done = 0,
                             attempts = attempts + ?
                         WHERE job_id = ? AND idx = ?",
                    )
                    .bind(worker)
                    .bind(until)
                    .bind(i64::from(state == "leased"))
                    .bind(&job_id)
                    .bind(idx)
                    .execute(&mut *conn)
                    .await?;
                    let row = sqlx::query_as::<_, StoredJob>(
                        "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, MAX(?, created_at))
                         WHERE id = ? RETURNING *",
                    )
                    .bind(now)
                    .bind(&job_id)
                    .fetch_one(&mut *conn)
                    .await?;
                    return Ok(Some((row, idx, finish, attempts + i64::from(state == "leased"))));
                }
            })
            .await?;
        claimed
            .map(|(row, idx, finish, attempts)| {
                Ok(Claim {
                    job: JobRow::try_from(row)?,
                    unit: idx as u64,
                    finish: finish != 0,
                    attempts: attempts as u32,
                })
            })
            .transpose()
    }
}

/// Unix milliseconds, for leases.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The job's progress: done units' totals plus leased units' progress (binds: job id twice).
const JOB_PROGRESS: &str = "UPDATE jobs SET
        progress_done = (SELECT COALESCE(SUM(CASE state WHEN 'done' THEN progress_total ELSE progress_done END), 0)
                         FROM units WHERE job_id = ?),
        progress_total = (SELECT COALESCE(SUM(progress_total), 0) FROM units WHERE job_id = ?)
     WHERE id = ?";

/// The units of a job: its compute units, then the finishing unit.
async fn insert_units(conn: &mut SqliteConnection, job: &str, totals: &[u64]) -> Result<(), StoreError> {
    for (idx, total) in totals.iter().enumerate() {
        sqlx::query("INSERT INTO units (job_id, idx, progress_total) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(job)
            .bind(idx as i64)
            .bind(*total as i64)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("INSERT INTO units (job_id, idx, finish, progress_total) VALUES (?, ?, 1, 0) ON CONFLICT DO NOTHING")
        .bind(job)
        .bind(totals.len() as i64)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE jobs SET progress_total = (SELECT SUM(progress_total) FROM units WHERE job_id = ?) WHERE id = ?",
    )
    .bind(job)
    .bind(job)
    .execute(conn)
    .await?;
    Ok(())
}

/// Insert or replace one result row (binds: job id, family, index, data).
const UPSERT_RESULT: &str = "INSERT INTO results (job_id, family, idx, data) VALUES (?, ?, ?, ?)
     ON CONFLICT (job_id, family, idx) DO UPDATE SET data = excluded.data";

#[async_trait::async_trait]
impl JobStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let at = now();
        self.write(async |conn| {
            sqlx::query("UPDATE heartbeat SET at = ? WHERE id = 1")
                .bind(&at)
                .execute(conn)
                .await?;
            Ok(())
        })
        .await?;
        // A small write can succeed in space the database already has while a new job cannot:
        // also look at the free space and at recent failures.
        if let Some(free) = self.path.as_deref().and_then(free_bytes) {
            if free < MIN_FREE_BYTES {
                return Err(StoreError::Full(format!(
                    "only {} KiB free on the database's filesystem",
                    free / 1024
                )));
            }
        }
        let full_at = *self.full_at.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = full_at.filter(|at| at.elapsed() < FULL_MEMORY) {
            return Err(StoreError::Full(format!(
                "a write failed for lack of space {} s ago",
                at.elapsed().as_secs()
            )));
        }
        Ok(())
    }

    async fn insert_job(&self, job: NewJob<'_>, limits: QueueLimits) -> Result<(JobRow, bool), StoreError> {
        let created_at = now();
        let outcome = self
            .write(async |conn| {
                if let Some(key) = job.idempotency_key {
                    if let Some(existing) = Self::job_by_idempotency_key(conn, key).await? {
                        return Ok(Err(existing));
                    }
                }
                let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
                    .fetch_one(&mut *conn)
                    .await?;
                if queued >= limits.max_queued {
                    return Err(StoreError::QueueFull(queued));
                }
                if let (Some(owner), Some(max)) = (job.owner, limits.max_queued_per_owner) {
                    let mine: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND owner = ?")
                        .bind(owner)
                        .fetch_one(&mut *conn)
                        .await?;
                    if mine >= max {
                        return Err(StoreError::Quota(format!(
                            "{owner} has {mine} jobs queued, the most one owner may have; wait for some to start"
                        )));
                    }
                }
                if let (Some(owner), Some(max)) = (job.owner, limits.max_owner_flops) {
                    let work: f64 = sqlx::query_scalar(
                        "SELECT COALESCE(SUM(work_flops), 0.0) FROM jobs WHERE status IN ('queued', 'running') AND owner = ?",
                    )
                    .bind(owner)
                    .fetch_one(&mut *conn)
                    .await?;
                    if work + job.work_flops > max {
                        return Err(StoreError::Quota(format!(
                            "{owner}'s queued and running jobs come to {work:.3e} estimated floating-point operations; \
                             this one ({:.3e}) would pass the limit of {max:.3e}",
                            job.work_flops
                        )));
                    }
                }
                let row = sqlx::query_as::<_, StoredJob>(
                    "INSERT INTO jobs (id, kind, spec, spec_hash, idempotency_key, status, progress_total, seed,
                                       created_at, stamp, preset, owner, work_flops, name, tags)
                     VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                )
                .bind(job.id)
                .bind(job.kind.as_str())
                .bind(job.spec.to_string())
                .bind(job.spec_hash)
                .bind(job.idempotency_key)
                .bind(job.progress_total as i64)
                .bind(job.seed.to_string())
                .bind(&created_at)
                .bind(job.stamp.to_string())
                .bind(job.preset)
                .bind(job.owner)
                .bind(job.work_flops)
                .bind(job.name)
                .bind(serde_json::to_string(job.tags)?)
                .fetch_one(&mut *conn)
                .await?;
                insert_units(conn, job.id, job.units).await?;
                Ok(Ok(JobRow::try_from(row)?))
            })
            .await?;
        match outcome {
            Ok(row) => {
                self.note(Ok(()), true)?;
                Ok((row, true))
            }
            Err(existing) => replay(existing, job.spec_hash),
        }
    }

    async fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        sqlx::query_as::<_, StoredJob>("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(JobRow::try_from)
            .transpose()
    }

    async fn list_jobs(&self, q: &ListQuery) -> Result<Vec<JobRow>, StoreError> {
        rows(
            sqlx::query_as::<_, StoredJob>(
                "SELECT * FROM jobs
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR seq < ?3)
                   AND (?5 IS NULL OR owner = ?5)
                   AND (?6 IS NULL OR preset = ?6)
                   AND (?7 IS NULL OR LOWER(name) LIKE ?7 ESCAPE '\\')
                   AND (?8 IS NULL OR tags GLOB ?8)
                 ORDER BY seq DESC LIMIT ?4",
            )
            .bind(q.status.map(Status::as_str))
            .bind(q.kind.map(Kind::as_str))
            .bind(q.before_seq)
            .bind(q.limit as i64)
            .bind(q.owner.as_deref())
            .bind(q.preset.as_deref())
            // LOWER() folds ASCII only in SQLite: fold the pattern the same way.
            .bind(q.name_contains.as_deref().map(name_pattern))
            // Tags are [A-Za-z0-9_.-] (no GLOB metacharacters) and stored as a JSON array of
            // strings: the tag in quotes is an exact, case-sensitive element match.
            .bind(q.tag.as_deref().map(|t| format!("*\"{t}\"*")))
            .fetch_all(&self.pool)
            .await?,
        )
    }

    async fn count_by_status(&self) -> Result<Vec<(Status, i64)>, StoreError> {
        sqlx::query_as::<_, (String, i64)>("SELECT status, COUNT(*) FROM jobs GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::from)
            .and_then(status_counts)
    }

    async fn claim_unit(&self, worker: &str, lease: Duration) -> Result<Option<Claim>, StoreError> {
        self.claim_unit_at(worker, &now(), now_ms(), lease).await
    }

    async fn renew_unit(
        &self,
        unit: UnitRef<'_>,
        worker: &str,
        lease: Duration,
        progress: u64,
        detail: Option<&Value>,
    ) -> Result<Renewal, StoreError> {
        let until = now_ms() + lease.as_millis() as i64;
        self.write(async |conn| {
            let held = sqlx::query(
                "UPDATE units SET lease_until = ?, progress_done = ?
                 WHERE job_id = ? AND idx = ? AND state = 'leased' AND worker = ?",
            )
            .bind(until)
            .bind(progress as i64)
            .bind(unit.job)
            .bind(unit.unit as i64)
            .bind(worker)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                == 1;
            sqlx::query(JOB_PROGRESS)
                .bind(unit.job)
                .bind(unit.job)
                .bind(unit.job)
                .execute(&mut *conn)
                .await?;
            if let Some(d) = detail {
                sqlx::query("UPDATE jobs SET progress_detail = ? WHERE id = ?")
                    .bind(d.to_string())
                    .bind(unit.job)
                    .execute(&mut *conn)
                    .await?;
            }
            let (status, cancel, done, total): (String, i64, i64, i64) =
                sqlx::query_as("SELECT status, cancel_requested, progress_done, progress_total FROM jobs WHERE id = ?")
                    .bind(unit.job)
                    .fetch_optional(conn)
                    .await?
                    .unwrap_or(("deleted".into(), 1, 0, 0));
            Ok(Renewal {
                held: held && status == "running",
                cancel_requested: cancel != 0,
                done: done.max(0) as u64,
                total: total.max(0) as u64,
            })
        })
        .await
    }

    async fn complete_unit(&self, unit: UnitRef<'_>, worker: &str, rows: &[ResultRow]) -> Result<u64, StoreError> {
        let left = self
            .write(async |conn| {
                let live: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM jobs WHERE id = ? AND status IN ('queued', 'running')")
                        .bind(unit.job)
                        .fetch_optional(&mut *conn)
                        .await?;
                if live.is_none() {
                    return Ok(0);
                }
                for row in rows {
                    sqlx::query(UPSERT_RESULT)
                        .bind(unit.job)
                        .bind(row.family.as_str())
                        .bind(row.index)
                        .bind(row.data.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
                sqlx::query(
                    "UPDATE units SET state = 'done', worker = ?, lease_until = NULL, progress_done = progress_total
                     WHERE job_id = ? AND idx = ?",
                )
                .bind(worker)
                .bind(unit.job)
                .bind(unit.unit as i64)
                .execute(&mut *conn)
                .await?;
                sqlx::query("UPDATE jobs SET stalls = 0 WHERE id = ?")
                    .bind(unit.job)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(END_ABANDONED_CANCEL)
                    .bind(now())
                    .bind(unit.job)
                    .bind(unit.job)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(JOB_PROGRESS)
                    .bind(unit.job)
                    .bind(unit.job)
                    .bind(unit.job)
                    .execute(&mut *conn)
                    .await?;
                let left: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM units WHERE job_id = ? AND finish = 0 AND state <> 'done'",
                )
                .bind(unit.job)
                .fetch_one(conn)
                .await?;
                Ok(left.max(0) as u64)
            })
            .await?;
        self.note(Ok(left), true)
    }

    async fn release_unit(&self, unit: UnitRef<'_>, worker: &str) -> Result<(), StoreError> {
        self.write(async |conn| {
            sqlx::query(
                "UPDATE units SET state = 'pending', worker = NULL, lease_until = NULL, progress_done = 0
                 WHERE job_id = ? AND idx = ? AND state = 'leased' AND worker = ?",
            )
            .bind(unit.job)
            .bind(unit.unit as i64)
            .bind(worker)
            .execute(&mut *conn)
            .await?;
            // A job asked to stop ends here rather than going back to the queue with the flag.
            sqlx::query(END_ABANDONED_CANCEL)
                .bind(now())
                .bind(unit.job)
                .bind(unit.job)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "UPDATE jobs SET status = 'queued', started_at = NULL
                 WHERE id = ? AND status = 'running'
                   AND NOT EXISTS (SELECT 1 FROM units WHERE job_id = ? AND state = 'leased')",
            )
            .bind(unit.job)
            .bind(unit.job)
            .execute(&mut *conn)
            .await?;
            sqlx::query(JOB_PROGRESS)
                .bind(unit.job)
                .bind(unit.job)
                .bind(unit.job)
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
    }

    async fn release_worker(&self, worker: &str) -> Result<u64, StoreError> {
        let held: Vec<(String, i64)> =
            sqlx::query_as("SELECT job_id, idx FROM units WHERE state = 'leased' AND worker = ?")
                .bind(worker)
                .fetch_all(&self.pool)
                .await?;
        for (job, idx) in &held {
            self.release_unit(UnitRef { job, unit: *idx as u64 }, worker).await?;
        }
        Ok(held.len() as u64)
    }

    async fn jobs_without_units(&self) -> Result<Vec<JobRow>, StoreError> {
        sqlx::query_as::<_, StoredJob>(
            "SELECT * FROM jobs WHERE status IN ('queued', 'running')
               AND NOT EXISTS (SELECT 1 FROM units WHERE job_id = jobs.id) ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(JobRow::try_from)
        .collect()
    }

    async fn add_units(&self, id: &str, units: &[u64]) -> Result<(), StoreError> {
        self.write(async |conn| {
            let has: Option<i64> = sqlx::query_scalar("SELECT 1 FROM units WHERE job_id = ? LIMIT 1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            if has.is_none() {
                insert_units(conn, id, units).await?;
            }
            Ok(())
        })
        .await
    }

    async fn unit_counts(&self) -> Result<Vec<(UnitState, i64)>, StoreError> {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT u.state, COUNT(*) FROM units u JOIN jobs j ON j.id = u.job_id
             WHERE j.status IN ('queued', 'running') GROUP BY u.state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from)
        .and_then(unit_state_counts)
    }

    async fn put_result(&self, id: &str, row: &ResultRow) -> Result<(), StoreError> {
        self.write(async |conn| {
            sqlx::query(UPSERT_RESULT)
                .bind(id)
                .bind(row.family.as_str())
                .bind(row.index)
                .bind(row.data.to_string())
                .execute(&mut *conn)
                .await?;
            sqlx::query("UPDATE jobs SET stalls = 0 WHERE id = ?")
                .bind(id)
                .execute(conn)
                .await?;
            Ok(())
        })
        .await?;
        self.note(Ok(()), true)
    }

    async fn results(&self, id: &str, family: ResultFamily) -> Result<Vec<ResultRow>, StoreError> {
        let stored: Vec<(i64, String)> =
            sqlx::query_as("SELECT idx, data FROM results WHERE job_id = ? AND family = ? ORDER BY idx")
                .bind(id)
                .bind(family.as_str())
                .fetch_all(&self.pool)
                .await?;
        result_rows(family, stored)
    }

    async fn finish_succeeded(
        &self,
        id: &str,
        stamp: &Value,
        summary: &Value,
        rows: &[ResultRow],
        scratch: &[ResultFamily],
    ) -> Result<bool, StoreError> {
        let finished_at = now();
        self.write(async |conn| {
            let updated = sqlx::query(
                "UPDATE jobs SET status = 'succeeded', finished_at = MAX(?, COALESCE(started_at, created_at)), stamp = ?,
                     summary = ?, progress_done = progress_total, progress_detail = NULL, error = NULL
                 WHERE id = ? AND status = 'running'",
            )
            .bind(&finished_at)
            .bind(stamp.to_string())
            .bind(summary.to_string())
            .bind(id)
            .execute(&mut *conn)
            .await?;
            if updated.rows_affected() == 0 {
                return Ok(false);
            }
            for row in rows {
                sqlx::query(UPSERT_RESULT)
                    .bind(id)
                    .bind(row.family.as_str())
                    .bind(row.index)
                    .bind(row.data.to_string())
                    .execute(&mut *conn)
                    .await?;
            }
            for family in scratch {
                sqlx::query("DELETE FROM results WHERE job_id = ? AND family = ?")
                    .bind(id)
                    .bind(family.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::query("UPDATE units SET state = 'done', lease_until = NULL WHERE job_id = ?")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            Ok(true)
        })
        .await
    }

    async fn finish_failed(&self, id: &str, error: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE jobs SET status = 'failed', finished_at = MAX(?, COALESCE(started_at, created_at)), error = ?
             WHERE id = ? AND status = 'running'",
        )
        .bind(now())
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn finish_cancelled(&self, id: &str) -> Result<bool, StoreError> {
        self.update(
            "UPDATE jobs SET status = 'cancelled', finished_at = MAX(?, COALESCE(started_at, created_at))
             WHERE id = ? AND status = 'running'",
            id,
        )
        .await
    }

    async fn recover(&self) -> Result<u64, StoreError> {
        let at = now();
        self.write(async |conn| {
            // Units a dead process held: one ended lease each.
            sqlx::query("UPDATE units SET attempts = attempts + 1 WHERE state = 'leased'")
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "UPDATE jobs SET attempt = attempt + 1,
                     stalls = MAX(stalls, (SELECT MAX(attempts) FROM units WHERE job_id = jobs.id AND state = 'leased'))
                 WHERE status = 'running' AND EXISTS (SELECT 1 FROM units WHERE job_id = jobs.id AND state = 'leased')",
            )
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE units SET state = 'pending', worker = NULL, lease_until = NULL, progress_done = 0
                 WHERE state = 'leased'",
            )
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE jobs SET status = 'cancelled', finished_at = MAX(?, COALESCE(started_at, created_at))
                 WHERE status = 'running' AND cancel_requested = 1",
            )
            .bind(&at)
            .execute(&mut *conn)
            .await?;
            // A unit that took the process down MAX_ATTEMPTS times without completing would do
            // it again: fail its job.
            sqlx::query(
                "UPDATE jobs SET status = 'failed', finished_at = MAX(?, COALESCE(started_at, created_at)),
                     error = 'the server stopped while running this job ' || stalls ||
                             ' times (crash or kill) before it completed a unit; not retried'
                 WHERE status = 'running' AND stalls >= ?",
            )
            .bind(&at)
            .bind(MAX_ATTEMPTS as i64)
            .execute(&mut *conn)
            .await?;
            let r = sqlx::query("UPDATE jobs SET status = 'queued', started_at = NULL WHERE status = 'running'")
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "UPDATE jobs SET progress_done =
                     (SELECT COALESCE(SUM(progress_total), 0) FROM units WHERE job_id = jobs.id AND state = 'done')
                 WHERE status = 'queued'",
            )
            .execute(conn)
            .await?;
            Ok(r.rows_affected())
        })
        .await
    }

    async fn request_cancel(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let at = now();
        let row = self
            .write(async |conn| {
                sqlx::query(
                    "UPDATE jobs SET status = 'cancelled', finished_at = MAX(?, COALESCE(started_at, created_at))
                     WHERE id = ? AND status = 'queued'",
                )
                .bind(&at)
                .bind(id)
                .execute(&mut *conn)
                .await?;
                sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                // A running job with no unit leased (between two units) has no worker to honour
                // the flag, and claims skip it: it ends now.
                sqlx::query(
                    "UPDATE jobs SET status = 'cancelled', finished_at = MAX(?, COALESCE(started_at, created_at))
                     WHERE id = ? AND status = 'running'
                       AND NOT EXISTS (SELECT 1 FROM units WHERE job_id = ? AND state = 'leased')",
                )
                .bind(&at)
                .bind(id)
                .bind(id)
                .execute(&mut *conn)
                .await?;
                Ok(sqlx::query_as::<_, StoredJob>("SELECT * FROM jobs WHERE id = ?")
                    .bind(id)
                    .fetch_optional(conn)
                    .await?)
            })
            .await?;
        row.map(JobRow::try_from).transpose()
    }

    async fn delete_terminal(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM jobs WHERE id = ? AND status IN ('succeeded', 'failed', 'cancelled')")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(max_queued: i64) -> QueueLimits {
        QueueLimits {
            max_queued,
            max_queued_per_owner: None,
            max_owner_flops: None,
        }
    }

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = dir.path().join("t.db");
        let store = SqliteStore::connect(url.to_str().expect("utf-8 path"))
            .await
            .expect("store");
        (dir, store)
    }

    async fn insert(store: &SqliteStore, id: &str) -> JobRow {
        let spec = json!({});
        let stamp = json!({});
        let job = NewJob {
            id,
            kind: Kind::Norms,
            spec: &spec,
            spec_hash: "h",
            idempotency_key: None,
            progress_total: 2,
            seed: 1,
            stamp: &stamp,
            preset: None,
            name: None,
            tags: &[],
            owner: None,
            work_flops: 0.0,
            units: &[1, 1],
        };
        store.insert_job(job, limits(100)).await.expect("insert").0
    }

    /// A claim whose clock reading predates the job's insertion (it was built while another
    /// connection inserted the job) still records started_at >= created_at.
    #[tokio::test]
    async fn a_claim_prepared_before_the_insert_does_not_start_before_creation() {
        let (_dir, store) = store().await;
        let row = insert(&store, "j1").await;
        let early = "2000-01-01T00:00:00.000000Z";
        let claimed = store
            .claim_unit_at("w", early, now_ms(), Duration::from_secs(60))
            .await
            .expect("claim")
            .expect("a queued job")
            .job;
        assert_eq!(claimed.started_at.as_deref(), Some(row.created_at.as_str()));
        assert!(claimed.started_at.as_deref() > Some(early));
    }

    /// Units are claimed in order, each once while its lease runs; the finishing unit only once
    /// every compute unit is done; an expired lease is reclaimed by another worker and counted,
    /// and a unit whose leases end MAX_ATTEMPTS times fails its job.
    #[tokio::test]
    async fn a_cancel_between_units_ends_the_job_at_once() {
        let (_dir, store) = store().await;
        insert(&store, "j").await;
        let a = store
            .claim_unit("a", Duration::from_secs(10))
            .await
            .expect("claim")
            .expect("unit 0");
        let unit0 = UnitRef { job: "j", unit: a.unit };
        store.complete_unit(unit0, "a", &[]).await.expect("complete");
        // Running, no unit leased: no worker would see the flag, and claims skip flagged jobs.
        let job = store.request_cancel("j").await.expect("cancel").expect("row");
        assert_eq!(job.status, Status::Cancelled);
        assert!(store
            .claim_unit("b", Duration::from_secs(10))
            .await
            .expect("claim")
            .is_none());
        // With a unit leased, the flag waits for its holder.
        insert(&store, "k").await;
        let k = store
            .claim_unit("a", Duration::from_secs(10))
            .await
            .expect("claim")
            .expect("a unit of k");
        assert_eq!(k.job.id, "k");
        let job = store.request_cancel("k").await.expect("cancel").expect("row");
        assert_eq!((job.status, job.cancel_requested), (Status::Running, true));
        // The holder completes its unit before a renewal showed it the flag: the job ends then
        // (it did stay running, flagged, with no unit leased and none claimable).
        let unit = UnitRef { job: "k", unit: k.unit };
        store.complete_unit(unit, "a", &[]).await.expect("complete");
        let job = store.job("k").await.expect("read").expect("row");
        assert_eq!(job.status, Status::Cancelled);
        // Or gives it back at a shutdown: cancelled, not queued again with the flag.
        insert(&store, "m").await;
        let m = store
            .claim_unit("a", Duration::from_secs(10))
            .await
            .expect("claim")
            .expect("a unit of m");
        store.request_cancel("m").await.expect("cancel");
        store
            .release_unit(UnitRef { job: "m", unit: m.unit }, "a")
            .await
            .expect("release");
        let job = store.job("m").await.expect("read").expect("row");
        assert_eq!(job.status, Status::Cancelled);
    }

    #[tokio::test]
    async fn units_are_leased_once_and_expired_leases_are_reclaimed_and_counted() {
        let (_dir, store) = store().await;
        insert(&store, "j").await; // two compute units and the finishing unit
        let lease = Duration::from_secs(10);
        let t0 = now_ms();
        let claim = |w: &'static str, ms: i64| {
            let store = &store;
            async move { store.claim_unit_at(w, &now(), ms, lease).await.expect("claim") }
        };
        let a = claim("a", t0).await.expect("unit 0");
        assert_eq!((a.unit, a.finish, a.attempts), (0, false, 0));
        let b = claim("b", t0).await.expect("unit 1");
        assert_eq!((b.unit, b.finish), (1, false));
        assert!(
            claim("c", t0).await.is_none(),
            "nothing else until a lease expires or unit 0, 1 are done"
        );
        // Worker a dies; after its lease, c takes unit 0 over.
        let c = claim("c", t0 + 10_001).await.expect("the expired unit 0");
        assert_eq!((c.unit, c.attempts, c.job.attempt, c.job.stalls), (0, 1, 1, 1));
        // a's late renewal learns it lost the unit.
        let unit0 = UnitRef { job: "j", unit: 0 };
        let r = store.renew_unit(unit0, "a", lease, 1, None).await.expect("renew");
        assert!(!r.held);
        assert!(store.renew_unit(unit0, "c", lease, 1, None).await.expect("renew").held);
        let row = |f: i64| ResultRow {
            family: ResultFamily::SweepPoint,
            index: f,
            data: json!({"unit": f}),
        };
        assert_eq!(store.complete_unit(unit0, "c", &[row(0)]).await.expect("complete"), 1);
        // A repeated completion (a's late result) changes nothing.
        assert_eq!(store.complete_unit(unit0, "a", &[row(0)]).await.expect("complete"), 1);
        let unit1 = UnitRef { job: "j", unit: 1 };
        assert_eq!(store.complete_unit(unit1, "b", &[row(1)]).await.expect("complete"), 0);
        let job = store.job("j").await.expect("job").expect("row");
        assert_eq!((job.progress_done, job.progress_total, job.stalls), (2, 2, 0));
        assert_eq!(
            store.results("j", ResultFamily::SweepPoint).await.expect("rows").len(),
            2
        );
        let f = claim("d", t0 + 10_002).await.expect("the finishing unit");
        assert_eq!((f.unit, f.finish), (2, true));
        // The finishing unit's holder dies three times: the job fails.
        let mut t = t0 + 10_002;
        for attempt in 1..MAX_ATTEMPTS {
            t += 10_001;
            let again = claim("e", t).await.expect("reclaimed");
            assert_eq!((again.unit, again.attempts), (2, attempt));
        }
        assert!(claim("e", t + 10_001).await.is_none());
        let job = store.job("j").await.expect("job").expect("row");
        assert_eq!(job.status, Status::Failed);
        assert!(job.error.as_deref().unwrap_or("").contains("unit 2"), "{:?}", job.error);
    }

    /// A row this version cannot read is an error, never reported as some other state.
    #[tokio::test]
    async fn unknown_status_or_kind_is_a_store_error_not_failed() {
        let (_dir, store) = store().await;
        insert(&store, "bad-status").await;
        insert(&store, "bad-kind").await;
        // Written as a newer version (or a hand edit) might leave them; the CHECK constraint
        // on status is what a newer schema would relax.
        let mut conn = store.pool.acquire().await.expect("connection");
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(&mut *conn)
            .await
            .expect("pragma");
        sqlx::query("UPDATE jobs SET status = 'paused' WHERE id = 'bad-status'")
            .execute(&mut *conn)
            .await
            .expect("update status");
        sqlx::query("UPDATE jobs SET kind = 'teleport' WHERE id = 'bad-kind'")
            .execute(&mut *conn)
            .await
            .expect("update kind");
        drop(conn);
        match store.job("bad-status").await {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("unknown status \"paused\""), "{m}"),
            other => panic!("expected a store error, got {other:?}"),
        }
        match store.job("bad-kind").await {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("unknown kind \"teleport\""), "{m}"),
            other => panic!("expected a store error, got {other:?}"),
        }
        assert!(matches!(
            store
                .list_jobs(&ListQuery {
                    limit: 10,
                    ..ListQuery::default()
                })
                .await,
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(store.count_by_status().await, Err(StoreError::Corrupt(_))));
    }

    #[tokio::test]
    async fn idempotency_and_queue_limit_are_checked_in_the_insert() {
        let (_dir, store) = store().await;
        let spec = json!({});
        let stamp = json!({});
        let job = |id: &'static str, hash: &'static str| NewJob {
            id,
            kind: Kind::Norms,
            spec: &spec,
            spec_hash: hash,
            idempotency_key: Some("k"),
            progress_total: 1,
            seed: 1,
            stamp: &stamp,
            preset: None,
            name: None,
            tags: &[],
            owner: None,
            work_flops: 0.0,
            units: &[1],
        };
        let (first, created) = store.insert_job(job("a", "h1"), limits(5)).await.expect("insert");
        assert!(created);
        let (again, created) = store.insert_job(job("b", "h1"), limits(5)).await.expect("replay");
        assert!(!created);
        assert_eq!(again.id, first.id);
        assert!(matches!(
            store.insert_job(job("c", "h2"), limits(5)).await,
            Err(StoreError::IdempotencyConflict)
        ));
        // A replay is answered even when the queue is full; a new job is not.
        let (replayed, _) = store
            .insert_job(job("d", "h1"), limits(1))
            .await
            .expect("replay when full");
        assert_eq!(replayed.id, "a");
        let mut other = job("e", "h3");
        other.idempotency_key = None;
        assert!(matches!(
            store.insert_job(other, limits(1)).await,
            Err(StoreError::QueueFull(1))
        ));
    }
}
