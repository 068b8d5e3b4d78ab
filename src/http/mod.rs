//! The HTTP service: routes of the stable v1 contract (product.md), errors, middleware.

mod auth;
mod bounds;
mod error;
mod events;
mod extract;
mod jobs;
mod views;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::config::Config;
use crate::jobs::{Jobs, JobsConfig};
use crate::store::Store;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub jobs: Arc<Jobs>,
    pub config: Arc<Config>,
}

/// A built server: listener bound, database migrated, worker ready to start.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    port: u16,
}

/// How long shutdown waits for running jobs to stop and go back to the queue.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

impl Application {
    /// Bind the listener (port 0 picks one), open and migrate the database, re-queue jobs a
    /// crash left running.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let store = Store::connect(&config.database_url).await?;
        let jobs = Jobs::new(
            store,
            JobsConfig {
                threads: config.threads(),
                max_running: config.max_running,
                max_queued: config.max_queued,
                limits: config.limits(),
            },
        )?;
        let requeued = jobs.recover().await?;
        if requeued > 0 {
            tracing::warn!(requeued, "jobs left running by an earlier crash were re-queued");
        }
        let listener = TcpListener::bind(&config.bind).await?;
        let port = listener.local_addr()?.port();
        Ok(Application { listener, state: AppState { jobs, config: Arc::new(config) }, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` resolves; then stop accepting, re-queue running jobs, return.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let jobs = self.state.jobs.clone();
        let worker = tokio::spawn(jobs.clone().run_worker());
        let app = router(self.state);
        axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await?;
        jobs.shutdown(SHUTDOWN_GRACE).await;
        worker.abort();
        Ok(())
    }

    /// Serve until ctrl-c or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.config.request_timeout_secs.max(1));
    let body_limit = state.config.max_body_bytes;
    let api = Router::new()
        .route("/v1/jobs", post(jobs::submit).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get_job).delete(jobs::delete))
        .route("/v1/jobs/{id}/layers", get(jobs::layers))
        .route("/v1/jobs/{id}/bound-checks", get(jobs::bound_checks))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/sweep", get(views::sweep))
        .route("/v1/jobs/{id}/plot.svg", get(views::plot))
        .route("/v1/bounds", get(bounds::bounds))
        .route("/v1/presets", get(views::list_presets))
        .route("/", get(views::index))
        .route("/metrics", get(views::metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout));
    // Event streams live as long as their job: no request timeout.
    let streams = Router::new().route("/v1/jobs/{id}/events", get(events::events));
    api.merge(streams)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
                    let request_id =
                        req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
                    tracing::info_span!("request", method = %req.method(), route = route.as_deref().unwrap_or("-"), %request_id)
                }))
                .layer(PropagateRequestIdLayer::x_request_id()),
        )
        .with_state(state)
}

/// Count every request by matched route, method and status, with its duration.
async fn record_metrics(req: Request<axum::body::Body>, next: axum::middleware::Next) -> axum::response::Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let start = std::time::Instant::now();
    let response = next.run(req).await;
    crate::metrics::http_request(&route, &method, response.status().as_u16(), start.elapsed());
    response
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.jobs.store().ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "error": e.to_string()}))),
    }
}
