//! `GET /v1/jobs/{id}/events`: Server-Sent Events of a job's progress, then its final status.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::extract::Path;
use super::responses::{BadPath, Internal, JobNotFound};
use super::schema::{JobStreamEvent, JobStreamEventName, JobView, ProgressEvent};
use super::{ApiError, AppState};
use crate::jobs::JobEvent;
use crate::store::{JobRow, Status};

/// The database is re-read at least this often, so no change is missed.
const POLL: Duration = Duration::from_secs(1);

fn progress_event(id: &str, status: Status, done: u64, total: u64, detail: Option<&serde_json::Value>) -> Event {
    let data = ProgressEvent {
        id: id.to_string(),
        status,
        done,
        total,
        detail: detail.cloned(),
    };
    Event::default()
        .event(JobStreamEventName::Progress.as_str())
        .data(serde_json::to_string(&data).unwrap_or_default())
}

fn final_event(row: &JobRow) -> Event {
    Event::default()
        .event(JobStreamEventName::Status.as_str())
        .data(serde_json::to_string(&JobView::from(row)).unwrap_or_default())
}

/// Whether a reading of a job is news to a client that was last sent `sent`: a new status, or
/// more done in the same status. Readings come from several tasks (each running unit renews
/// its lease and reports the job's total, claims publish the row they read) and can arrive out
/// of order, so one that is behind what was sent is dropped: a client's progress never goes
/// back while the status stays the same.
fn advances(sent: &JobRow, status: Status, done: u64) -> bool {
    status != sent.status || done > sent.progress_done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Kind;

    fn sent(status: Status, done: u64) -> JobRow {
        JobRow {
            seq: 1,
            id: "j".into(),
            kind: Kind::Norms,
            spec: serde_json::Value::Null,
            spec_hash: String::new(),
            idempotency_key: None,
            status,
            progress_done: done,
            progress_total: 1600,
            progress_detail: None,
            error: None,
            seed: 0,
            attempt: 1,
            stalls: 0,
            cancel_requested: false,
            created_at: String::new(),
            started_at: None,
            finished_at: None,
            stamp: None,
            summary: None,
            preset: None,
            name: None,
            tags: vec![],
            owner: None,
            work_flops: 0.0,
        }
    }

    #[test]
    fn a_reading_behind_what_was_sent_is_dropped() {
        // What CI once streamed: a claim published the row it read (0) after a running unit
        // had reported 4.
        let after_four = sent(Status::Running, 4);
        assert!(!advances(&after_four, Status::Running, 0));
        assert!(!advances(&after_four, Status::Running, 4));
        assert!(advances(&after_four, Status::Running, 5));
        // A new status is always news, whatever its count (a job given back to the queue).
        assert!(advances(&after_four, Status::Queued, 0));
        assert!(advances(&sent(Status::Queued, 0), Status::Running, 0));
    }
}

enum Phase {
    Start,
    Running,
    Done,
}

/// Server-Sent Events: `progress` events, then one final `status` event with the job; a
/// finished job gets its final event at once.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "A stream of Server-Sent Events, each described by the schema: `progress` events \
            (data: {id, status, done, total}) while the job is queued or running, then one `status` event (data: the \
            job) and the end of the stream; a finished job gets its `status` event at once. Comments (`: keep-alive`) \
            every 15 s. No request timeout applies.",
            content_type = "text/event-stream", body = JobStreamEvent),
        BadPath, JobNotFound, Internal))]
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Subscribe before reading the row, so nothing between the two is lost.
    let rx = state.jobs.subscribe();
    let row = state.jobs.job(&id).await?;
    let init = (Phase::Start, rx, row, state);
    let stream = stream::unfold(init, |(phase, mut rx, row, state)| async move {
        match phase {
            Phase::Done => None,
            Phase::Start => {
                let ev = if row.status.is_terminal() {
                    return Some((Ok(final_event(&row)), (Phase::Done, rx, row, state)));
                } else {
                    progress_event(
                        &row.id,
                        row.status,
                        row.progress_done,
                        row.progress_total,
                        row.progress_detail.as_ref(),
                    )
                };
                Some((Ok(ev), (Phase::Running, rx, row, state)))
            }
            Phase::Running => loop {
                if state.jobs.is_shutting_down() {
                    return None; // the server is stopping: end the stream
                }
                let next: Option<JobEvent> = match tokio::time::timeout(POLL, rx.recv()).await {
                    Ok(Ok(ev)) if ev.id == row.id => Some(ev),
                    Ok(Ok(_)) => continue,
                    Ok(Err(RecvError::Lagged(_))) | Err(_) => None,
                    Ok(Err(RecvError::Closed)) => None,
                };
                let terminal_event = next.as_ref().is_some_and(|e| e.status.is_terminal());
                if let Some(ev) = next.filter(|_| !terminal_event) {
                    if !advances(&row, ev.status, ev.done) {
                        continue; // nothing new, or older than what was sent
                    }
                    let e = progress_event(&row.id, ev.status, ev.done, ev.total, ev.detail.as_ref());
                    // Remember what was sent, so the periodic re-read does not repeat it.
                    let mut seen = row;
                    seen.progress_done = ev.done;
                    seen.progress_total = ev.total;
                    seen.status = ev.status;
                    seen.progress_detail = ev.detail;
                    return Some((Ok(e), (Phase::Running, rx, seen, state)));
                }
                // A terminal event, a timeout or a lag: read the row itself.
                let fresh = match state.jobs.job(&row.id).await {
                    Ok(r) => r,
                    // Deleted while watching: end the stream.
                    _ => return None,
                };
                if fresh.status.is_terminal() {
                    return Some((Ok(final_event(&fresh)), (Phase::Done, rx, fresh, state)));
                }
                if advances(&row, fresh.status, fresh.progress_done) {
                    let e = progress_event(
                        &fresh.id,
                        fresh.status,
                        fresh.progress_done,
                        fresh.progress_total,
                        fresh.progress_detail.as_ref(),
                    );
                    return Some((Ok(e), (Phase::Running, rx, fresh, state)));
                }
            },
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive")))
}
