//! The shared store: PostgreSQL through sqlx, for an API node and any number of worker
//! processes on any number of machines (migrations embedded from `migrations/postgres`).
//!
//! The same contract as the SQLite store, made safe for many writers: every multi-statement
//! write is one transaction ([`PgStore::write`]), taking row locks in one order (units, then
//! their job), so writers never deadlock; a claim locks its unit with `FOR UPDATE SKIP LOCKED`
//! (two workers never get the same unit, and neither waits for the other) and then its job row;
//! submissions take a transaction-scoped advisory lock, so queue limits, quotas and idempotency
//! keys hold across API nodes. Leases are read and written on the database's clock: workers on
//! machines whose clocks disagree still agree on when a lease ended. Nothing is re-queued when a
//! process starts: a unit whose worker died is reclaimed by the next claim after its lease ends.

use std::time::Duration;

use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::postgres::{PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::Connection;
use tokio::sync::Notify;

use super::stored::{like_escape, name_pattern, now, result_rows, rows, status_counts, unit_state_counts, StoredJob};
use super::{
    replay, Claim, JobRow, JobStore, Kind, ListQuery, NewJob, QueueLimits, Renewal, ResultFamily, ResultRow, Status,
    StoreError, UnitRef, UnitState, MAX_ATTEMPTS,
};

/// The database clock in unix milliseconds (leases).
macro_rules! db_ms {
    () => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    };
}

/// The advisory lock submissions take (any constant; "widthlab" in ASCII, truncated).
const SUBMIT_LOCK: i64 = 0x7769_6474_686c_6162;

/// Whether a URL names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The channel on which writers announce claimable work.
const WORK_CHANNEL: &str = "widthlab_work";

/// Announce claimable work to every listening worker (delivered when the transaction commits).
const NOTIFY_WORK: &str = "SELECT pg_notify('widthlab_work', '')";

/// PostgreSQL implementation of [`JobStore`].
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Woken by the listener task on each announcement of work.
    work: Arc<Notify>,
    /// Whether the listener task runs (started by the first wait).
    listening: Arc<AtomicBool>,
}

/// The job's progress: done units' totals plus leased units' progress (bind: job id).
const JOB_PROGRESS: &str = "UPDATE jobs SET
        progress_done = (SELECT COALESCE(SUM(CASE state WHEN 'done' THEN progress_total ELSE progress_done END), 0)::BIGINT
                         FROM units WHERE job_id = $1),
        progress_total = (SELECT COALESCE(SUM(progress_total), 0)::BIGINT FROM units WHERE job_id = $1)
     WHERE id = $1";

/// Insert or replace one result row (binds: job id, family, index, data).
const UPSERT_RESULT: &str = "INSERT INTO results (job_id, family, idx, data) VALUES ($1, $2, $3, $4)
     ON CONFLICT (job_id, family, idx) DO UPDATE SET data = excluded.data";

/// Jobs asked to stop that no live lease holds any more (their worker died, or stopped between
/// units) end as cancelled (bind: now).
const CANCEL_ABANDONED: &str = concat!(
    "UPDATE jobs SET status = 'cancelled', finished_at = GREATEST($1, COALESCE(started_at, created_at))
     WHERE status = 'running' AND cancel_requested = 1
       AND NOT EXISTS (SELECT 1 FROM units WHERE job_id = jobs.id AND state = 'leased' AND lease_until >= ",
    db_ms!(),
    ")"
);

/// [`CANCEL_ABANDONED`] for one job, at a unit's completion or release (binds: now, id).
const END_ABANDONED_CANCEL: &str =
    "UPDATE jobs SET status = 'cancelled', finished_at = GREATEST($1, COALESCE(started_at, created_at))
     WHERE id = $2 AND status = 'running' AND cancel_requested = 1
       AND NOT EXISTS (SELECT 1 FROM units WHERE job_id = $2 AND state = 'leased')";

impl PgStore {
    /// Connect to and migrate the database at a `postgres://` URL. Several processes may start
    /// at once: the migrations run under sqlx's advisory lock.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore {
            pool,
            work: Arc::new(Notify::new()),
            listening: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Listen for announcements of work on a connection of its own, waking `work` on each;
    /// reconnects after an error (the waits' timeout covers the gap).
    fn start_listening(&self) {
        if self.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, work) = (self.pool.clone(), self.work.clone());
        tokio::spawn(async move {
            loop {
                let Err(e) = listen(&pool, &work).await;
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "listening for work failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// Run `steps` in one transaction and commit it; only a committed transaction's value is
    /// returned, and a failed one is rolled back.
    ///
    /// Lock order, which keeps writers free of deadlocks: every transaction that locks units
    /// locks them before it locks their job (claims, renewals, completions, releases, and the
    /// finish, which locks all of its job's units first).
    async fn write<T>(
        &self,
        steps: impl AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_as(Durability::Flushed, steps).await
    }

    /// [`Self::write`] with the commit's durability chosen: `Unflushed` commits without waiting
    /// for the WAL to reach the disk (`synchronous_commit = off` for this transaction only).
    async fn write_as<T>(
        &self,
        durability: Durability,
        steps: impl AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        if durability == Durability::Unflushed {
            sqlx::query("SET LOCAL synchronous_commit TO OFF")
                .execute(&mut *tx)
                .await?;
        }
        match steps(&mut tx).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// One guarded state change of one job (binds: now, id).
    async fn update(&self, sql: &str, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(sql).bind(now()).bind(id).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }
}

/// Whether a transaction's commit waits for its WAL to be flushed to disk.
///
/// Unit claims, lease renewals and unit completions commit `Unflushed`: a database crash can
/// lose the last fraction of a second of them (each whole, never half), and every such loss is
/// one the leases already repair: a lost claim leaves the unit pending, a lost renewal shortens
/// a lease, a lost completion leaves the unit leased until its lease expires and another worker
/// computes it again, with the same bits (a cancel a lost completion had ended is ended again by
/// the sweep of abandoned cancels). Submissions, cancel requests, deletions and a job's result
/// (the finishing unit) always wait for the flush. On this machine the wait was about a
/// tenth of a unit's time on a colocated database (bench/README.md, "Scale-out").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    Flushed,
    Unflushed,
}

/// Wake `work` on each announcement on [`WORK_CHANNEL`]; returns only on an error.
async fn listen(pool: &PgPool, work: &Notify) -> Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(WORK_CHANNEL).await?;
    loop {
        listener.recv().await?;
        work.notify_one();
    }
}

/// The units of a job: its compute units, then the finishing unit.
async fn insert_units(conn: &mut PgConnection, job: &str, totals: &[u64]) -> Result<(), StoreError> {
    let idx: Vec<i64> = (0..=totals.len() as i64).collect();
    let mut total: Vec<i64> = totals.iter().map(|&t| t as i64).collect();
    total.push(0);
    let finish: Vec<i64> = idx.iter().map(|&i| i64::from(i == totals.len() as i64)).collect();
    sqlx::query(
        "INSERT INTO units (job_id, idx, finish, progress_total)
         SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) ON CONFLICT DO NOTHING",
    )
    .bind(job)
    .bind(&idx)
    .bind(&finish)
    .bind(&total)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE jobs SET progress_total = (SELECT COALESCE(SUM(progress_total), 0)::BIGINT FROM units WHERE job_id = $1)
         WHERE id = $1",
    )
    .bind(job)
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_results(conn: &mut PgConnection, id: &str, rows: &[ResultRow]) -> Result<(), StoreError> {
    for row in rows {
        sqlx::query(UPSERT_RESULT)
            .bind(id)
            .bind(row.family.as_str())
            .bind(row.index)
            .bind(row.data.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl JobStore for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let at = now();
        self.write(async |conn| {
            sqlx::query("UPDATE heartbeat SET at = $1 WHERE id = 1")
                .bind(&at)
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
    }

    async fn insert_job(&self, job: NewJob<'_>, limits: QueueLimits) -> Result<(JobRow, bool), StoreError> {
        let created_at = now();
        let outcome = self
            .write(async |conn| {
                // One submission at a time, across every API node: the counts below stay true
                // until this transaction commits.
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SUBMIT_LOCK)
                    .execute(&mut *conn)
                    .await?;
                if let Some(key) = job.idempotency_key {
                    let existing = sqlx::query_as::<_, StoredJob>("SELECT * FROM jobs WHERE idempotency_key = $1")
                        .bind(key)
                        .fetch_optional(&mut *conn)
                        .await?;
                    if let Some(existing) = existing {
                        return Ok(Err(JobRow::try_from(existing)?));
                    }
                }
                let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
                    .fetch_one(&mut *conn)
                    .await?;
                if queued >= limits.max_queued {
                    return Err(StoreError::QueueFull(queued));
                }
                if let (Some(owner), Some(max)) = (job.owner, limits.max_queued_per_owner) {
                    let mine: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND owner = $1")
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
                        "SELECT COALESCE(SUM(work_flops), 0.0)::DOUBLE PRECISION FROM jobs
                         WHERE status IN ('queued', 'running') AND owner = $1",
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
                sqlx::query(
                    "INSERT INTO jobs (id, kind, spec, spec_hash, idempotency_key, status, progress_total, seed,
                                       created_at, stamp, preset, owner, work_flops, name, tags)
                     VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
                .execute(&mut *conn)
                .await?;
                insert_units(conn, job.id, job.units).await?;
                sqlx::query(NOTIFY_WORK).execute(&mut *conn).await?;
                let row = sqlx::query_as::<_, StoredJob>("SELECT * FROM jobs WHERE id = $1")
                    .bind(job.id)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(Ok(JobRow::try_from(row)?))
            })
            .await?;
        match outcome {
            Ok(row) => Ok((row, true)),
            Err(existing) => replay(existing, job.spec_hash),
        }
    }

    async fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        sqlx::query_as::<_, StoredJob>("SELECT * FROM jobs WHERE id = $1")
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
                 WHERE ($1::TEXT IS NULL OR status = $1) AND ($2::TEXT IS NULL OR kind = $2)
                   AND ($3::BIGINT IS NULL OR seq < $3) AND ($5::TEXT IS NULL OR owner = $5)
                   AND ($6::TEXT IS NULL OR preset = $6)
                   AND ($7::TEXT IS NULL OR TRANSLATE(name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
                                              LIKE $7 ESCAPE '\\')
                   AND ($8::TEXT IS NULL OR tags LIKE $8 ESCAPE '\\')
                 ORDER BY seq DESC LIMIT $4",
            )
            .bind(q.status.map(Status::as_str))
            .bind(q.kind.map(Kind::as_str))
            .bind(q.before_seq)
            .bind(q.limit as i64)
            .bind(q.owner.as_deref())
            .bind(q.preset.as_deref())
            // As SQLite's LOWER: ASCII letters only (PostgreSQL's LOWER would fold more).
            .bind(q.name_contains.as_deref().map(name_pattern))
            // The tag in quotes: an exact, case-sensitive element of the stored JSON array.
            .bind(q.tag.as_deref().map(|t| format!("%\"{}\"%", like_escape(t))))
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
        let at = now();
        let lease_ms = lease.as_millis() as i64;
        sqlx::query(CANCEL_ABANDONED).bind(&at).execute(&self.pool).await?;
        let claimed = self
            .write_as(Durability::Unflushed, async |conn| {
                loop {
                    let candidate: Option<(String, i64, i64, String, i64)> = sqlx::query_as(concat!(
                        "SELECT u.job_id, u.idx, u.finish, u.state, u.attempts FROM units u JOIN jobs j ON j.id = u.job_id
                         WHERE j.status IN ('queued', 'running') AND j.cancel_requested = 0
                           AND (u.state = 'pending' OR (u.state = 'leased' AND u.lease_until < ",
                        db_ms!(),
                        "))
                           AND (u.finish = 0 OR NOT EXISTS (
                                SELECT 1 FROM units v WHERE v.job_id = u.job_id AND v.finish = 0 AND v.state <> 'done'))
                         ORDER BY (SELECT COUNT(*) FROM units l WHERE l.job_id = u.job_id AND l.state = 'leased'),
                                  j.seq, u.idx
                         LIMIT 1
                         FOR UPDATE OF u SKIP LOCKED"
                    ))
                    .fetch_optional(&mut *conn)
                    .await?;
                    let Some((job_id, idx, finish, state, attempts)) = candidate else {
                        return Ok(None);
                    };
                    // The job, locked after its unit (every writer takes unit, then job): it may
                    // have ended or been asked to stop since the candidate was read.
                    let live: Option<i64> = sqlx::query_scalar(
                        "SELECT 1::BIGINT FROM jobs WHERE id = $1 AND status IN ('queued', 'running') AND cancel_requested = 0
                         FOR UPDATE",
                    )
                    .bind(&job_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if live.is_none() {
                        continue;
                    }
                    let reclaimed = state == "leased";
                    if reclaimed {
                        // Its holder died: a crash of this unit, counted; a unit whose leases
                        // ended MAX_ATTEMPTS times fails its job (it is likely what kills them).
                        let ended = attempts + 1;
                        if ended >= i64::from(MAX_ATTEMPTS) {
                            sqlx::query(
                                "UPDATE jobs SET status = 'failed', finished_at = GREATEST($1, COALESCE(started_at, created_at)),
                                     stalls = $2, attempt = attempt + 1, error = $3
                                 WHERE id = $4",
                            )
                            .bind(&at)
                            .bind(ended)
                            .bind(format!(
                                "a worker stopped while running unit {idx} of this job {ended} times \
                                 (crash, kill or lost lease) before it completed; not retried"
                            ))
                            .bind(&job_id)
                            .execute(&mut *conn)
                            .await?;
                            sqlx::query(
                                "UPDATE units SET state = 'pending', worker = NULL, lease_until = NULL,
                                     attempts = attempts + 1
                                 WHERE job_id = $1 AND idx = $2",
                            )
                            .bind(&job_id)
                            .bind(idx)
                            .execute(&mut *conn)
                            .await?;
                            continue;
                        }
                        sqlx::query("UPDATE jobs SET attempt = attempt + 1, stalls = GREATEST(stalls, $1) WHERE id = $2")
                            .bind(ended)
                            .bind(&job_id)
                            .execute(&mut *conn)
                            .await?;
                    }
                    sqlx::query(concat!(
                        "UPDATE units SET state = 'leased', worker = $1, lease_until = ",
                        db_ms!(),
                        " + $2, progress_done = 0, attempts = attempts + $3
                         WHERE job_id = $4 AND idx = $5"
                    ))
                    .bind(worker)
                    .bind(lease_ms)
                    .bind(i64::from(reclaimed))
                    .bind(&job_id)
                    .bind(idx)
                    .execute(&mut *conn)
                    .await?;
                    let row = sqlx::query_as::<_, StoredJob>(
                        "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, GREATEST($1, created_at))
                         WHERE id = $2 RETURNING *",
                    )
                    .bind(&at)
                    .bind(&job_id)
                    .fetch_one(&mut *conn)
                    .await?;
                    return Ok(Some((row, idx, finish, attempts + i64::from(reclaimed))));
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

    async fn renew_unit(
        &self,
        unit: UnitRef<'_>,
        worker: &str,
        lease: Duration,
        progress: u64,
        detail: Option<&Value>,
    ) -> Result<Renewal, StoreError> {
        let lease_ms = lease.as_millis() as i64;
        self.write_as(Durability::Unflushed, async |conn| {
            let held = sqlx::query(concat!(
                "UPDATE units SET lease_until = ",
                db_ms!(),
                " + $1, progress_done = $2
                 WHERE job_id = $3 AND idx = $4 AND state = 'leased' AND worker = $5"
            ))
            .bind(lease_ms)
            .bind(progress as i64)
            .bind(unit.job)
            .bind(unit.unit as i64)
            .bind(worker)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                == 1;
            sqlx::query(JOB_PROGRESS).bind(unit.job).execute(&mut *conn).await?;
            if let Some(d) = detail {
                sqlx::query("UPDATE jobs SET progress_detail = $1 WHERE id = $2")
                    .bind(d.to_string())
                    .bind(unit.job)
                    .execute(&mut *conn)
                    .await?;
            }
            let (status, cancel, done, total): (String, i64, i64, i64) = sqlx::query_as(
                "SELECT status, cancel_requested, progress_done, progress_total FROM jobs WHERE id = $1",
            )
            .bind(unit.job)
            .fetch_optional(&mut *conn)
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
        self.write_as(Durability::Unflushed, async |conn| {
            let live: Option<i64> =
                sqlx::query_scalar("SELECT 1::BIGINT FROM jobs WHERE id = $1 AND status IN ('queued', 'running')")
                    .bind(unit.job)
                    .fetch_optional(&mut *conn)
                    .await?;
            if live.is_none() {
                return Ok(0);
            }
            upsert_results(conn, unit.job, rows).await?;
            sqlx::query(
                "UPDATE units SET state = 'done', worker = $1, lease_until = NULL, progress_done = progress_total
                 WHERE job_id = $2 AND idx = $3",
            )
            .bind(worker)
            .bind(unit.job)
            .bind(unit.unit as i64)
            .execute(&mut *conn)
            .await?;
            sqlx::query("UPDATE jobs SET stalls = 0 WHERE id = $1")
                .bind(unit.job)
                .execute(&mut *conn)
                .await?;
            sqlx::query(END_ABANDONED_CANCEL)
                .bind(now())
                .bind(unit.job)
                .execute(&mut *conn)
                .await?;
            sqlx::query(JOB_PROGRESS).bind(unit.job).execute(&mut *conn).await?;
            let left: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM units WHERE job_id = $1 AND finish = 0 AND state <> 'done'")
                    .bind(unit.job)
                    .fetch_one(&mut *conn)
                    .await?;
            if left == 0 {
                // The finishing unit is claimable now, by any worker.
                sqlx::query(NOTIFY_WORK).execute(&mut *conn).await?;
            }
            Ok(left.max(0) as u64)
        })
        .await
    }

    async fn release_unit(&self, unit: UnitRef<'_>, worker: &str) -> Result<(), StoreError> {
        self.write(async |conn| {
            sqlx::query(
                "UPDATE units SET state = 'pending', worker = NULL, lease_until = NULL, progress_done = 0
                 WHERE job_id = $1 AND idx = $2 AND state = 'leased' AND worker = $3",
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
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "UPDATE jobs SET status = 'queued', started_at = NULL
                 WHERE id = $1 AND status = 'running'
                   AND NOT EXISTS (SELECT 1 FROM units WHERE job_id = $1 AND state = 'leased')",
            )
            .bind(unit.job)
            .execute(&mut *conn)
            .await?;
            sqlx::query(JOB_PROGRESS).bind(unit.job).execute(&mut *conn).await?;
            sqlx::query(NOTIFY_WORK).execute(&mut *conn).await?;
            Ok(())
        })
        .await
    }

    async fn release_worker(&self, worker: &str) -> Result<u64, StoreError> {
        let held: Vec<(String, i64)> =
            sqlx::query_as("SELECT job_id, idx FROM units WHERE state = 'leased' AND worker = $1")
                .bind(worker)
                .fetch_all(&self.pool)
                .await?;
        for (job, idx) in &held {
            self.release_unit(UnitRef { job, unit: *idx as u64 }, worker).await?;
        }
        Ok(held.len() as u64)
    }

    async fn jobs_without_units(&self) -> Result<Vec<JobRow>, StoreError> {
        rows(
            sqlx::query_as::<_, StoredJob>(
                "SELECT * FROM jobs WHERE status IN ('queued', 'running')
                   AND NOT EXISTS (SELECT 1 FROM units WHERE job_id = jobs.id) ORDER BY seq",
            )
            .fetch_all(&self.pool)
            .await?,
        )
    }

    async fn add_units(&self, id: &str, units: &[u64]) -> Result<(), StoreError> {
        self.write(async |conn| {
            let has: Option<i64> = sqlx::query_scalar("SELECT 1::BIGINT FROM units WHERE job_id = $1 LIMIT 1")
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
            upsert_results(conn, id, std::slice::from_ref(row)).await?;
            sqlx::query("UPDATE jobs SET stalls = 0 WHERE id = $1")
                .bind(id)
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
    }

    async fn results(&self, id: &str, family: ResultFamily) -> Result<Vec<ResultRow>, StoreError> {
        let stored: Vec<(i64, String)> =
            sqlx::query_as("SELECT idx, data FROM results WHERE job_id = $1 AND family = $2 ORDER BY idx")
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
            // The units first (see `write`): a late completion of one of them waits for us.
            sqlx::query("SELECT 1 FROM units WHERE job_id = $1 ORDER BY idx FOR UPDATE")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            let updated = sqlx::query(
                "UPDATE jobs SET status = 'succeeded', finished_at = GREATEST($1, COALESCE(started_at, created_at)),
                     stamp = $2, summary = $3, progress_done = progress_total, progress_detail = NULL, error = NULL
                 WHERE id = $4 AND status = 'running'",
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
            upsert_results(conn, id, rows).await?;
            for family in scratch {
                sqlx::query("DELETE FROM results WHERE job_id = $1 AND family = $2")
                    .bind(id)
                    .bind(family.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::query("UPDATE units SET state = 'done', lease_until = NULL WHERE job_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            Ok(true)
        })
        .await
    }

    async fn finish_failed(&self, id: &str, error: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE jobs SET status = 'failed', finished_at = GREATEST($1, COALESCE(started_at, created_at)), error = $2
             WHERE id = $3 AND status = 'running'",
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
            "UPDATE jobs SET status = 'cancelled', finished_at = GREATEST($1, COALESCE(started_at, created_at))
             WHERE id = $2 AND status = 'running'",
            id,
        )
        .await
    }

    /// Nothing to do at start-up: other processes may be running units of this database right
    /// now. Units of dead workers are reclaimed when their leases end ([`JobStore::claim_unit`]).
    async fn recover(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn wait_for_work(&self, timeout: Duration) {
        self.start_listening();
        let _ = tokio::time::timeout(timeout, self.work.notified()).await;
    }

    async fn request_cancel(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let at = now();
        let row = self
            .write(async |conn| {
                sqlx::query(
                    "UPDATE jobs SET status = 'cancelled', finished_at = GREATEST($1, COALESCE(started_at, created_at))
                     WHERE id = $2 AND status = 'queued'",
                )
                .bind(&at)
                .bind(id)
                .execute(&mut *conn)
                .await?;
                sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND status = 'running'")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                Ok(sqlx::query_as::<_, StoredJob>("SELECT * FROM jobs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?)
            })
            .await?;
        // A running job no live lease holds (between units, or its worker died) has no one to
        // honour the flag: it ends now.
        sqlx::query(CANCEL_ABANDONED).bind(&at).execute(&self.pool).await?;
        match row {
            Some(_) => self.job(id).await,
            None => Ok(None),
        }
    }

    async fn delete_terminal(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM jobs WHERE id = $1 AND status IN ('succeeded', 'failed', 'cancelled')")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}
