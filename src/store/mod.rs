//! SQLite storage of jobs and their results (sqlx, WAL, migrations embedded).
//!
//! Every state change is one guarded UPDATE (`WHERE status = ...`), so terminal states never
//! change and two writers cannot both win. Results are written in one transaction.

use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};

use crate::report::RunReport;
use crate::sweep::PointReport;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("idempotency key reused with a different body")]
    IdempotencyConflict,
}

/// Job states. Terminal: succeeded, failed, cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Queued,
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }
}

/// One row of `jobs`.
#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub spec: String,
    pub spec_hash: String,
    pub idempotency_key: Option<String>,
    pub status: String,
    pub progress_done: i64,
    pub progress_total: i64,
    pub error: Option<String>,
    pub seed: String,
    pub attempt: i64,
    pub cancel_requested: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub stamp: Option<String>,
    pub summary: Option<String>,
}

impl JobRow {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Failed)
    }
}

/// What a new job needs.
pub struct NewJob<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub spec: &'a Value,
    pub spec_hash: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub progress_total: u64,
    pub seed: u64,
    /// Seed, RNG, version, precision and engine, known before the job runs.
    pub stamp: &'a Value,
}

/// Filters and page of `GET /v1/jobs`.
pub struct ListQuery<'a> {
    pub status: Option<Status>,
    pub kind: Option<&'a str>,
    pub limit: u32,
    /// Only jobs with `seq` below this (the cursor of the previous page).
    pub before_seq: Option<i64>,
}

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

/// Runs a job may start before a crash during each of them fails it instead of re-queueing.
pub const MAX_ATTEMPTS: i64 = 3;

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Open (creating if missing) and migrate the database at `url`: a path, or `sqlite://path`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
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
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Insert a queued job. With an idempotency key already used: the original job if the
    /// body hash matches (second value `false`), else [`StoreError::IdempotencyConflict`].
    pub async fn insert_job(&self, job: NewJob<'_>) -> Result<(JobRow, bool), StoreError> {
        if let Some(key) = job.idempotency_key {
            if let Some(existing) = self.job_by_idempotency_key(key).await? {
                return if existing.spec_hash == job.spec_hash {
                    Ok((existing, false))
                } else {
                    Err(StoreError::IdempotencyConflict)
                };
            }
        }
        let inserted = sqlx::query_as::<_, JobRow>(
            "INSERT INTO jobs (id, kind, spec, spec_hash, idempotency_key, status, progress_total, seed, created_at, stamp)
             VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?) RETURNING *",
        )
        .bind(job.id)
        .bind(job.kind)
        .bind(job.spec.to_string())
        .bind(job.spec_hash)
        .bind(job.idempotency_key)
        .bind(job.progress_total as i64)
        .bind(job.seed.to_string())
        .bind(now())
        .bind(job.stamp.to_string())
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(row) => Ok((row, true)),
            // Two requests with one key raced: the loser answers like a replay.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() && job.idempotency_key.is_some() => {
                let key = job.idempotency_key.unwrap_or_default();
                match self.job_by_idempotency_key(key).await? {
                    Some(existing) if existing.spec_hash == job.spec_hash => Ok((existing, false)),
                    _ => Err(StoreError::IdempotencyConflict),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn job_by_idempotency_key(&self, key: &str) -> Result<Option<JobRow>, StoreError> {
        Ok(
            sqlx::query_as::<_, JobRow>("SELECT * FROM jobs WHERE idempotency_key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        Ok(sqlx::query_as::<_, JobRow>("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Newest first, keyset-paginated on `seq`.
    pub async fn list_jobs(&self, q: &ListQuery<'_>) -> Result<Vec<JobRow>, StoreError> {
        Ok(sqlx::query_as::<_, JobRow>(
            "SELECT * FROM jobs
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR seq < ?3)
             ORDER BY seq DESC LIMIT ?4",
        )
        .bind(q.status.map(Status::as_str))
        .bind(q.kind)
        .bind(q.before_seq)
        .bind(q.limit as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as::<_, (String, i64)>("SELECT status, COUNT(*) FROM jobs GROUP BY status")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn count_queued(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Claim the oldest queued job: queued -> running.
    pub async fn claim_next(&self) -> Result<Option<JobRow>, StoreError> {
        self.claim_next_at(&now()).await
    }

    /// [`Store::claim_next`] with the clock reading taken by the caller.
    async fn claim_next_at(&self, now: &str) -> Result<Option<JobRow>, StoreError> {
        Ok(sqlx::query_as::<_, JobRow>(
            "UPDATE jobs SET status = 'running', started_at = MAX(?, created_at), progress_done = 0
             WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1) AND status = 'queued'
             RETURNING *",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn set_progress(&self, id: &str, done: u64, total: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET progress_done = ?, progress_total = ? WHERE id = ? AND status = 'running'")
            .bind(done as i64)
            .bind(total as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// running -> succeeded with every result row, in one transaction. `report` carries the
    /// per-layer rows and bound checks of a `norms` job (sweeps store their points as they go).
    pub async fn finish_succeeded(
        &self,
        id: &str,
        report: Option<&RunReport>,
        stamp: &Value,
        summary: &Value,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET status = 'succeeded', finished_at = MAX(?, COALESCE(started_at, created_at)), stamp = ?, summary = ?, progress_done = progress_total, error = NULL
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
        let (layers, checks) = match report {
            Some(r) => (r.layers.as_slice(), r.bound_checks.as_slice()),
            None => (&[][..], &[][..]),
        };
        for layer in layers {
            sqlx::query(
                "INSERT INTO layer_stats (job_id, layer, width, forward_mean, forward_std, gradient_mean, gradient_std, data)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(layer.layer as i64)
            .bind(layer.width as i64)
            .bind(finite(layer.forward.mean))
            .bind(finite(layer.forward.std))
            .bind(finite(layer.gradient.mean))
            .bind(finite(layer.gradient.std))
            .bind(serde_json::to_string(layer)?)
            .execute(&mut *tx)
            .await?;
        }
        for check in checks {
            sqlx::query("INSERT INTO bound_checks (job_id, bound, verdict, data) VALUES (?, ?, ?, ?)")
                .bind(id)
                .bind(&check.bound)
                .bind(
                    serde_json::to_value(check.verdict)?
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
                .bind(serde_json::to_string(check)?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// running -> failed.
    pub async fn finish_failed(&self, id: &str, error: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE jobs SET status = 'failed', finished_at = MAX(?, COALESCE(started_at, created_at)), error = ? WHERE id = ? AND status = 'running'",
        )
        .bind(now())
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// running -> cancelled (a cancel the worker honoured).
    pub async fn finish_cancelled(&self, id: &str) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE jobs SET status = 'cancelled', finished_at = MAX(?, COALESCE(started_at, created_at)) WHERE id = ? AND status = 'running'")
                .bind(now())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    /// running -> queued (shutdown): the job will run again from its seed.
    pub async fn requeue(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE jobs SET status = 'queued', started_at = NULL, progress_done = 0 WHERE id = ? AND status = 'running'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// At start-up: jobs left running by a crash go back to the queue (attempt + 1), except
    /// those whose cancel was requested, which become cancelled, and those that were running
    /// at [`MAX_ATTEMPTS`] crashes, which fail. Returns how many were re-queued.
    pub async fn recover(&self) -> Result<u64, StoreError> {
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at = MAX(?, COALESCE(started_at, created_at)) WHERE status = 'running' AND cancel_requested = 1",
        )
        .bind(now())
        .execute(&self.pool)
        .await?;
        // A job that took the process down MAX_ATTEMPTS times would do it again: fail it.
        sqlx::query(
            "UPDATE jobs SET status = 'failed', finished_at = MAX(?, COALESCE(started_at, created_at)),
                 error = 'the server stopped while running this job ' || (attempt + 1) || ' times (crash or kill); not retried'
             WHERE status = 'running' AND attempt + 1 >= ?",
        )
        .bind(now())
        .bind(MAX_ATTEMPTS)
        .execute(&self.pool)
        .await?;
        let r = sqlx::query(
            "UPDATE jobs SET status = 'queued', attempt = attempt + 1, started_at = NULL, progress_done = 0 WHERE status = 'running'",
        )
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Cancel: a queued job at once (returns its new row), a running one by flag.
    pub async fn request_cancel(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE jobs SET status = 'cancelled', finished_at = MAX(?, COALESCE(started_at, created_at)) WHERE id = ? AND status = 'queued'")
            .bind(now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query_as::<_, JobRow>("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Delete a terminal job and its results; `false` if it is not terminal (or gone).
    pub async fn delete_terminal(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM jobs WHERE id = ? AND status IN ('succeeded', 'failed', 'cancelled')")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Store one finished sweep point (replacing a row an interrupted attempt left).
    pub async fn put_sweep_point(&self, id: &str, point: &PointReport) -> Result<(), StoreError> {
        sqlx::query("INSERT OR REPLACE INTO sweep_points (job_id, point, width, depth, data) VALUES (?, ?, ?, ?, ?)")
            .bind(id)
            .bind(point.point as i64)
            .bind(point.width as i64)
            .bind(point.depth as i64)
            .bind(serde_json::to_string(point)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The stored points of a sweep, in grid order.
    pub async fn sweep_points(&self, id: &str) -> Result<Vec<PointReport>, StoreError> {
        self.json_rows("SELECT data FROM sweep_points WHERE job_id = ? ORDER BY point", id)
            .await
    }

    pub async fn layers(&self, id: &str) -> Result<Vec<Value>, StoreError> {
        self.json_rows("SELECT data FROM layer_stats WHERE job_id = ? ORDER BY layer", id)
            .await
    }

    pub async fn bound_checks(&self, id: &str) -> Result<Vec<Value>, StoreError> {
        self.json_rows(
            "SELECT data FROM bound_checks WHERE job_id = ?
             ORDER BY CASE bound WHEN 'arpit2019' THEN 0 WHEN 'exact_tail' THEN 1 WHEN 'chernoff' THEN 2 ELSE 3 END, bound",
            id,
        )
        .await
    }

    /// The `data` JSON column of a job's result rows, parsed, in the query's order.
    async fn json_rows<T: serde::de::DeserializeOwned>(&self, query: &str, id: &str) -> Result<Vec<T>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(query).bind(id).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|(d,)| serde_json::from_str(&d).map_err(StoreError::from))
            .collect()
    }
}

/// SQLite REAL has no NaN; store NULL instead.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim whose clock reading predates the job's insertion (it was built while another
    /// connection inserted the job) still records started_at >= created_at.
    #[tokio::test]
    async fn a_claim_prepared_before_the_insert_does_not_start_before_creation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = dir.path().join("t.db");
        let store = Store::connect(url.to_str().expect("utf-8 path")).await.expect("store");
        let spec = serde_json::json!({});
        let stamp = serde_json::json!({});
        let (row, _) = store
            .insert_job(NewJob {
                id: "j1",
                kind: "norms",
                spec: &spec,
                spec_hash: "h",
                idempotency_key: None,
                progress_total: 2,
                seed: 1,
                stamp: &stamp,
            })
            .await
            .expect("insert");
        let early = "2000-01-01T00:00:00.000000Z";
        let claimed = store.claim_next_at(early).await.expect("claim").expect("a queued job");
        assert_eq!(claimed.started_at.as_deref(), Some(row.created_at.as_str()));
        assert!(claimed.started_at.as_deref() > Some(early));
    }
}
