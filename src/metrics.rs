//! Prometheus metrics of one process, through `prometheus-client`, held in the application
//! state (no global registry: each server, and each test's server, counts its own).
//!
//! Label sets are bounded: routes are matched route templates (or `unmatched`), methods a
//! fixed list, statuses the job states.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::{Status, UnitState};

/// Upper bounds of request-duration buckets, seconds.
const REQUEST_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Upper bounds of job-duration buckets, seconds.
const JOB_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

/// Every metric of the process and the registry that renders them.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram>,
    jobs_submitted: Counter,
    job_seconds: Histogram,
    jobs: Family<StatusLabels, Gauge>,
    queue_length: Gauge,
    units: Family<StatusLabels, Gauge>,
    units_completed: Counter,
    unit_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("widthlab");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let request_seconds =
            Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS.iter().copied()));
        registry.register(
            "http_request_duration_seconds",
            "HTTP request durations by route",
            request_seconds.clone(),
        );
        let jobs_submitted = Counter::default();
        registry.register(
            "jobs_submitted",
            "Jobs accepted by POST /v1/jobs since start",
            jobs_submitted.clone(),
        );
        let job_seconds = Histogram::new(JOB_BUCKETS.iter().copied());
        registry.register(
            "job_duration_seconds",
            "Wall time of jobs from their first claim to their end (jobs this process ended)",
            job_seconds.clone(),
        );
        let jobs = Family::<StatusLabels, Gauge>::default();
        registry.register("jobs", "Jobs in the database by status", jobs.clone());
        let queue_length = Gauge::default();
        registry.register("queue_length", "Jobs waiting to run", queue_length.clone());
        let units = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "units",
            "Units of work of unfinished jobs by state (pending, leased, done), all processes",
            units.clone(),
        );
        let units_completed = Counter::default();
        registry.register(
            "units_completed",
            "Units of work this process completed since start",
            units_completed.clone(),
        );
        let unit_seconds = Histogram::new(JOB_BUCKETS.iter().copied());
        registry.register(
            "unit_duration_seconds",
            "Wall time of units this process ran, from claim to stored outcome",
            unit_seconds.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            units,
            units_completed,
            unit_seconds,
            requests,
            request_seconds,
            jobs_submitted,
            job_seconds,
            jobs,
            queue_length,
        }
    }

    /// Record one HTTP request. `route` is the matched route template (bounded cardinality).
    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        // Any method string is accepted on the wire; keep the label set bounded.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn job_submitted(&self) {
        self.jobs_submitted.inc();
    }

    /// Record a job's wall time when it leaves the running state.
    pub fn job_finished(&self, elapsed: Duration) {
        self.job_seconds.observe(elapsed.as_secs_f64());
    }

    /// Record a unit this process ran (`completed`: its rows or the job's result were stored).
    pub fn unit_ended(&self, elapsed: Duration, completed: bool) {
        self.unit_seconds.observe(elapsed.as_secs_f64());
        if completed {
            self.units_completed.inc();
        }
    }

    /// Units of unfinished jobs by state, from the database.
    pub fn set_units(&self, counts: &[(UnitState, i64)]) {
        for &state in UnitState::ALL {
            let n = counts.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
            self.units
                .get_or_create(&StatusLabels {
                    status: state.as_str().to_string(),
                })
                .set(n);
        }
    }

    /// The exposition text; `jobs_by_status` comes from the database.
    pub fn render(&self, jobs_by_status: &[(Status, i64)]) -> String {
        for &status in Status::ALL {
            let n = jobs_by_status.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
            self.jobs
                .get_or_create(&StatusLabels {
                    status: status.as_str().to_string(),
                })
                .set(n);
            if status == Status::Queued {
                self.queue_length.set(n);
            }
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = encode(&mut out, &registry) {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}

/// The content type `/metrics` answers with: Prometheus' text format, which the rendering also
/// satisfies (its trailing `# EOF` is a comment there).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
