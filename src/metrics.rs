//! Process-wide counters and histograms, rendered in the Prometheus text format.
//!
//! Small and dependency-free: a mutex-guarded map per metric family. Job counts by status and
//! the queue length are read from the database at scrape time by the HTTP layer.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds of request-duration buckets, seconds.
const REQUEST_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Upper bounds of job-duration buckets, seconds.
const JOB_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0];

#[derive(Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, buckets: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; buckets.len()];
        }
        for (c, b) in self.counts.iter_mut().zip(buckets) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, buckets: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (c, b) in self.counts.iter().zip(buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
struct Registry {
    /// (route, method, status) -> count
    requests: BTreeMap<(String, String, u16), u64>,
    /// route -> durations
    request_seconds: BTreeMap<String, Histogram>,
    jobs_submitted: u64,
    job_seconds: Histogram,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut guard = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard)
}

/// Record one HTTP request. `route` is the matched route template (bounded cardinality).
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    // Any method string is accepted on the wire; keep the label set bounded.
    let method = match method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
        _ => "other",
    };
    with(|r| {
        *r.requests
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        r.request_seconds
            .entry(route.to_string())
            .or_default()
            .observe(&REQUEST_BUCKETS, elapsed.as_secs_f64());
    });
}

pub fn job_submitted() {
    with(|r| r.jobs_submitted += 1);
}

/// Record a job's wall time when it leaves the running state.
pub fn job_finished(elapsed: Duration) {
    with(|r| r.job_seconds.observe(&JOB_BUCKETS, elapsed.as_secs_f64()));
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The Prometheus exposition text; `jobs_by_status` and `queue_length` come from the database.
pub fn render(jobs_by_status: &[(String, i64)], queue_length: i64) -> String {
    let mut out = String::new();
    with(|r| {
        out.push_str("# HELP widthlab_http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE widthlab_http_requests_total counter\n");
        for ((route, method, status), n) in &r.requests {
            let _ = writeln!(
                out,
                "widthlab_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        out.push_str("# HELP widthlab_http_request_duration_seconds HTTP request durations by route.\n");
        out.push_str("# TYPE widthlab_http_request_duration_seconds histogram\n");
        for (route, h) in &r.request_seconds {
            h.render(
                &mut out,
                "widthlab_http_request_duration_seconds",
                &format!("route=\"{}\"", escape(route)),
                &REQUEST_BUCKETS,
            );
        }
        out.push_str("# HELP widthlab_jobs_submitted_total Jobs accepted by POST /v1/jobs since start.\n");
        out.push_str("# TYPE widthlab_jobs_submitted_total counter\n");
        let _ = writeln!(out, "widthlab_jobs_submitted_total {}", r.jobs_submitted);
        out.push_str("# HELP widthlab_job_duration_seconds Wall time of jobs from claim to end (this process).\n");
        out.push_str("# TYPE widthlab_job_duration_seconds histogram\n");
        let mut h = r.job_seconds.clone();
        if h.counts.is_empty() {
            h.counts = vec![0; JOB_BUCKETS.len()];
        }
        h.render(&mut out, "widthlab_job_duration_seconds", "", &JOB_BUCKETS);
    });
    out.push_str("# HELP widthlab_jobs Jobs in the database by status.\n");
    out.push_str("# TYPE widthlab_jobs gauge\n");
    for status in ["queued", "running", "succeeded", "failed", "cancelled"] {
        let n = jobs_by_status.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "widthlab_jobs{{status=\"{status}\"}} {n}");
    }
    out.push_str("# HELP widthlab_queue_length Jobs waiting to run.\n");
    out.push_str("# TYPE widthlab_queue_length gauge\n");
    let _ = writeln!(out, "widthlab_queue_length {queue_length}");
    out
}
