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
                    if ev.done == row.progress_done && ev.status == row.status {
                        continue; // nothing new
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
                if fresh.progress_done != row.progress_done || fresh.status != row.status {
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
