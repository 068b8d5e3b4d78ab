//! The embedded store: SQLite through sqlx (WAL, busy timeout, migrations embedded from
//! `migrations/sqlite`).
//!
//! Writes that read first (a submission checks the idempotency key and the queue length before
//! it inserts) run in `BEGIN IMMEDIATE` transactions, so no other connection can commit between
//! the read and the write; every write that returns rows reads them inside its transaction and
//! returns them only after the commit succeeded.

use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};

use super::{
    replay, JobRow, JobStore, Kind, ListQuery, NewJob, ResultFamily, ResultRow, Status, StoreError, MAX_ATTEMPTS,
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
    error: Option<String>,
    seed: String,
    attempt: i64,
    cancel_requested: i64,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    stamp: Option<String>,
    summary: Option<String>,
    preset: Option<String>,
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
            cancel_requested: r.cancel_requested != 0,
            stamp: json(&r.stamp)?,
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
        })
    }
}

fn rows(stored: Vec<StoredJob>) -> Result<Vec<JobRow>, StoreError> {
    stored.into_iter().map(JobRow::try_from).collect()
}

/// SQLite implementation of [`JobStore`].
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
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
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    async fn job_by_idempotency_key(
        conn: &mut sqlx::SqliteConnection,
        key: &str,
    ) -> Result<Option<JobRow>, StoreError> {
        sqlx::query_as::<_, StoredJob>("SELECT * FROM jobs WHERE idempotency_key = ?")
            .bind(key)
            .fetch_optional(conn)
            .await?
            .map(JobRow::try_from)
            .transpose()
    }

    /// One guarded state change of one job, committed before it returns.
    async fn update(&self, sql: &str, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(sql).bind(now()).bind(id).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    /// [`JobStore::claim_next`] with the clock reading taken by the caller.
    async fn claim_next_at(&self, now: &str) -> Result<Option<JobRow>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query_as::<_, StoredJob>(
            "UPDATE jobs SET status = 'running', started_at = MAX(?, created_at), progress_done = 0
             WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1) AND status = 'queued'
             RETURNING *",
        )
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(JobRow::try_from).transpose()
    }
}

#[async_trait::async_trait]
impl JobStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_job(&self, job: NewJob<'_>, max_queued: i64) -> Result<(JobRow, bool), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(key) = job.idempotency_key {
            if let Some(existing) = Self::job_by_idempotency_key(&mut tx, key).await? {
                return replay(existing, job.spec_hash);
            }
        }
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
            .fetch_one(&mut *tx)
            .await?;
        if queued >= max_queued {
            return Err(StoreError::QueueFull(queued));
        }
        let row = sqlx::query_as::<_, StoredJob>(
            "INSERT INTO jobs (id, kind, spec, spec_hash, idempotency_key, status, progress_total, seed, created_at, stamp, preset)
             VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(job.id)
        .bind(job.kind.as_str())
        .bind(job.spec.to_string())
        .bind(job.spec_hash)
        .bind(job.idempotency_key)
        .bind(job.progress_total as i64)
        .bind(job.seed.to_string())
        .bind(now())
        .bind(job.stamp.to_string())
        .bind(job.preset)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((JobRow::try_from(row)?, true))
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
                 ORDER BY seq DESC LIMIT ?4",
            )
            .bind(q.status.map(Status::as_str))
            .bind(q.kind.map(Kind::as_str))
            .bind(q.before_seq)
            .bind(q.limit as i64)
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

    async fn set_progress(&self, id: &str, done: u64, total: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET progress_done = ?, progress_total = ? WHERE id = ? AND status = 'running'")
            .bind(done as i64)
            .bind(total as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn put_result(&self, id: &str, row: &ResultRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO results (job_id, family, idx, data) VALUES (?, ?, ?, ?)
             ON CONFLICT (job_id, family, idx) DO UPDATE SET data = excluded.data",
        )
        .bind(id)
        .bind(row.family.as_str())
        .bind(row.index)
        .bind(row.data.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let updated = sqlx::query(
            "UPDATE jobs SET status = 'succeeded', finished_at = MAX(?, COALESCE(started_at, created_at)), stamp = ?,
                 summary = ?, progress_done = progress_total, error = NULL
             WHERE id = ? AND status = 'running'",
        )
        .bind(now())
        .bind(stamp.to_string())
        .bind(summary.to_string())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        for row in rows {
            sqlx::query(
                "INSERT INTO results (job_id, family, idx, data) VALUES (?, ?, ?, ?)
                 ON CONFLICT (job_id, family, idx) DO UPDATE SET data = excluded.data",
            )
            .bind(id)
            .bind(row.family.as_str())
            .bind(row.index)
            .bind(row.data.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at = MAX(?, COALESCE(started_at, created_at))
             WHERE status = 'running' AND cancel_requested = 1",
        )
        .bind(now())
        .execute(&mut *tx)
        .await?;
        // A job that took the process down MAX_ATTEMPTS times would do it again: fail it.
        sqlx::query(
            "UPDATE jobs SET status = 'failed', finished_at = MAX(?, COALESCE(started_at, created_at)),
                 error = 'the server stopped while running this job ' || (attempt + 1) || ' times (crash or kill); not retried'
             WHERE status = 'running' AND attempt + 1 >= ?",
        )
        .bind(now())
        .bind(MAX_ATTEMPTS as i64)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query(
            "UPDATE jobs SET status = 'queued', attempt = attempt + 1, started_at = NULL, progress_done = 0
             WHERE status = 'running'",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    async fn request_cancel(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at = MAX(?, COALESCE(started_at, created_at))
             WHERE id = ? AND status = 'queued'",
        )
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query_as::<_, StoredJob>("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
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
        };
        store.insert_job(job, 100).await.expect("insert").0
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
        };
        let (first, created) = store.insert_job(job("a", "h1"), 5).await.expect("insert");
        assert!(created);
        let (again, created) = store.insert_job(job("b", "h1"), 5).await.expect("replay");
        assert!(!created);
        assert_eq!(again.id, first.id);
        assert!(matches!(
            store.insert_job(job("c", "h2"), 5).await,
            Err(StoreError::IdempotencyConflict)
        ));
        // A replay is answered even when the queue is full; a new job is not.
        let (replayed, _) = store.insert_job(job("d", "h1"), 1).await.expect("replay when full");
        assert_eq!(replayed.id, "a");
        let mut other = job("e", "h3");
        other.idempotency_key = None;
        assert!(matches!(
            store.insert_job(other, 1).await,
            Err(StoreError::QueueFull(1))
        ));
    }
}
