//! What both stores share: the `jobs` row as the database holds it (text enums, integer flags,
//! JSON as text, the seed as decimal text) and its mapping to [`JobRow`], and the timestamp
//! format.

use std::str::FromStr;

use serde_json::Value;
use sqlx::FromRow;

use super::{JobRow, Kind, ResultFamily, ResultRow, Status, StoreError, UnitState};

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

/// A row of `jobs` as both databases hold it (text enums, integer flags, JSON as text).
#[derive(Debug, FromRow)]
pub(super) struct StoredJob {
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
    name: Option<String>,
    /// A JSON array of strings (null for jobs from before tags).
    tags: Option<String>,
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
            tags: match r.tags.as_deref() {
                None => Vec::new(),
                Some(t) => serde_json::from_str(t)?,
            },
            seq: r.seq,
            id: r.id,
            spec_hash: r.spec_hash,
            idempotency_key: r.idempotency_key,
            error: r.error,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            preset: r.preset,
            name: r.name,
            owner: r.owner,
            work_flops: r.work_flops,
        })
    }
}

/// `s` with the wildcards of LIKE (and its escape character, a backslash) escaped.
pub(super) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The LIKE pattern of a name filter: a substring, compared with ASCII letters folded (both
/// stores fold the stored name the same way).
pub(super) fn name_pattern(contains: &str) -> String {
    format!("%{}%", like_escape(&contains.to_ascii_lowercase()))
}

pub(super) fn rows(stored: Vec<StoredJob>) -> Result<Vec<JobRow>, StoreError> {
    stored.into_iter().map(JobRow::try_from).collect()
}

/// `(status, count)` rows of `SELECT status, COUNT(*) FROM jobs GROUP BY status`, typed.
pub(super) fn status_counts(rows: Vec<(String, i64)>) -> Result<Vec<(Status, i64)>, StoreError> {
    rows.into_iter()
        .map(|(s, n)| {
            Status::from_str(&s)
                .map(|s| (s, n))
                .map_err(|_| StoreError::Corrupt(format!("unknown status {s:?}")))
        })
        .collect()
}

/// `(state, count)` rows of the units of live jobs, typed.
pub(super) fn unit_state_counts(rows: Vec<(String, i64)>) -> Result<Vec<(UnitState, i64)>, StoreError> {
    rows.into_iter()
        .map(|(s, n)| {
            UnitState::from_str(&s)
                .map(|s| (s, n))
                .map_err(|_| StoreError::Corrupt(format!("unknown unit state {s:?}")))
        })
        .collect()
}

/// `(idx, data)` rows of one result family, parsed.
pub(super) fn result_rows(family: ResultFamily, rows: Vec<(i64, String)>) -> Result<Vec<ResultRow>, StoreError> {
    rows.into_iter()
        .map(|(index, data)| {
            Ok(ResultRow {
                family,
                index,
                data: serde_json::from_str(&data)?,
            })
        })
        .collect()
}
