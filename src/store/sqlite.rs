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
use sqlx::{Connection, FromRow, SqliteConnection, SqlitePool};

use super::{
    replay, JobRow, JobStore, Kind, ListQuery, NewJob, QueueLimits, ResultFamily, ResultRow, Status, StoreError,
    MAX_ATTEMPTS,
};

/// RFC 3339 UTC with exactly six fractional digits, so timestamps sort as strings.
///
/// A timestamp is taken when a query is built, which can be before an earlier-built query on
/// another connection commits (a claim prepared while a job is being inserted). State changes
/// therefore store `MAX(now, previous timestamp of the job)`: created <= started <= finished.
pub fn now() -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    time::OffsetDateTime::now_utc().format(FORMAT).unwrap_or_default()
}

/// A row of `jobs` as SQLite holds it (text enums, integer flags, JSON as text).
#[derive(Debug, FromRow)]
struct StoredJob {
    seq: i64,
    id: String,
    kind: String,
    spec: String,
    spec_hash: String,
    idempotency_key: Option<String>,
    status: String,
    progress_done: i64,
    progress_total: i64,
    progress_detail: Option<String>,
    error: Option<String>,
    seed: String,
    attempt: i64,
    stalls: i64,
    cancel_requested: i64,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    stamp: Option<String>,
    summary: Option<String>,
    preset: Option<String>,
    owner: Option<String>,
    work_flops: f64,
}

impl TryFrom<StoredJob> for JobRow {
    type Error = StoreError;

    fn try_from(r: StoredJob) -> Result<JobRow, StoreError> {
        let corrupt = |what: &str, value: &str| StoreError::Corrupt(format!("job {}: {what} {value:?}", r.id));
        let json = |s: &Option<String>| -> Result<Option<Value>, StoreError> {
            s.as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(StoreError::from)
        };
        Ok(JobRow {
            kind: Kind::from_str(&r.kind).map_err(|_| corrupt("unknown kind", &r.kind))?,
            status: Status::from_str(&r.status).map_err(|_| corrupt("unknown status", &r.status))?,
            spec: serde_json::from_str(&r.spec)?,
            seed: r.seed.parse().map_err(|_| corrupt("unreadable seed", &r.seed))?,
            progress_done: u64::try_from(r.progress_done).unwrap_or(0),
            progress_total: u64::try_from(r.progress_total).unwrap_or(0),
            attempt: u32::try_from(r.attempt).map_err(|_| corrupt("attempt", &r.attempt.to_string()))?,
            stalls: u32::try_from(r.stalls).map_err(|_| corrupt("stalls", &r.stalls.to_string()))?,
            cancel_requested: r.cancel_requested != 0,
            stamp: json(&r.stamp)?,
            progress_detail: json(&r.progress_detail)?,
            summary: json(&r.summary)?,
            seq: r.seq,
            id: r.id,
            spec_hash: r.spec_hash,
            idempotency_key: r.idempotency_key,
            error: r.error,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            preset: r.preset,
            owner: r.owner,
            work_flops: r.work_flops,
        })
    }
}

fn rows(stored: Vec<StoredJob>) -> Result<Vec<JobRow>, StoreError> {
    stored.into_iter().map(JobRow::try_from).collect()
}

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

    /// [`JobStore::claim_next`] with the clock reading taken by the caller.
    async fn claim_next_at(&self, now: &str) -> Result<Option<JobRow>, StoreError> {
        let row = self
            .write(async |conn| {
                Ok(sqlx::query_as::<_, StoredJob>(
                    "UPDATE jobs SET status = 'running', started_at = MAX(?, created_at), progress_done = 0
                     WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1) AND status = 'queued'
                     RETURNING *",
                )
                .bind(now)
                .fetch_optional(conn)
                .await?)
            })
            .await?;
        row.map(JobRow::try_from).transpose()
    }
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
                                       created_at, stamp, preset, owner, work_flops)
                     VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?) RETURNING *",
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
                .fetch_one(conn)
                .await?;
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
                 ORDER BY seq DESC LIMIT ?4",
            )
            .bind(q.status.map(Status::as_str))
            .bind(q.kind.map(Kind::as_str))
            .bind(q.before_seq)
            .bind(q.limit as i64)
            .bind(q.owner.as_deref())
            .fetch_all(&self.pool)
            .await?,
        )
    }

    async fn count_by_status(&self) -> Result<Vec<(Status, i64)>, StoreError> {
        sqlx::query_as::<_, (String, i64)>("SELECT status, COUNT(*) FROM jobs GROUP BY status")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|(s, n)| {
                Status::from_str(&s)
                    .map(|s| (s, n))
                    .map_err(|_| StoreError::Corrupt(format!("unknown status {s:?}")))
            })
            .collect()
    }

    async fn claim_next(&self) -> Result<Option<JobRow>, StoreError> {
        self.claim_next_at(&now()).await
    }

    async fn set_progress(&self, id: &str, done: u64, total: u64, detail: Option<&Value>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET progress_done = ?, progress_total = ?, progress_detail = COALESCE(?, progress_detail)
             WHERE id = ? AND status = 'running'",
        )
        .bind(done as i64)
        .bind(total as i64)
        .bind(detail.map(Value::to_string))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
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
        stored
            .into_iter()
            .map(|(index, data)| {
                Ok(ResultRow {
                    family,
                    index,
                    data: serde_json::from_str(&data)?,
                })
            })
            .collect()
    }

    async fn finish_succeeded(
        &self,
        id: &str,
        stamp: &Value,
        summary: &Value,
        rows: &[ResultRow],
    ) -> Result<bool, StoreError> {
        let finished_at = now();
        self.write(async |conn| {
            let updated = sqlx::query(
                "UPDATE jobs SET status = 'succeeded', finished_at = MAX(?, COALESCE(started_at, created_at)), stamp = ?,
                     summary = ?, progress_done = progress_total, error = NULL
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

    async fn requeue(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE jobs SET status = 'queued', started_at = NULL, progress_done = 0 WHERE id = ? AND status = 'running'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn recover(&self) -> Result<u64, StoreError> {
        let at = now();
        self.write(async |conn| {
            sqlx::query(
                "UPDATE jobs SET status = 'cancelled', finished_at = MAX(?, COALESCE(started_at, created_at))
                 WHERE status = 'running' AND cancel_requested = 1",
            )
            .bind(&at)
            .execute(&mut *conn)
            .await?;
            // A job that took the process down MAX_ATTEMPTS runs in a row without storing
            // anything would do it again: fail it.
            sqlx::query(
                "UPDATE jobs SET status = 'failed', finished_at = MAX(?, COALESCE(started_at, created_at)),
                     error = 'the server stopped while running this job ' || (stalls + 1) ||
                             ' times in a row (crash or kill) before it stored any new result; not retried'
                 WHERE status = 'running' AND stalls + 1 >= ?",
            )
            .bind(&at)
            .bind(MAX_ATTEMPTS as i64)
            .execute(&mut *conn)
            .await?;
            let r = sqlx::query(
                "UPDATE jobs SET status = 'queued', attempt = attempt + 1, stalls = stalls + 1, started_at = NULL,
                     progress_done = 0
                 WHERE status = 'running'",
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
            owner: None,
            work_flops: 0.0,
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
        let claimed = store.claim_next_at(early).await.expect("claim").expect("a queued job");
        assert_eq!(claimed.started_at.as_deref(), Some(row.created_at.as_str()));
        assert!(claimed.started_at.as_deref() > Some(early));
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
            owner: None,
            work_flops: 0.0,
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
