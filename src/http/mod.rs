//! The HTTP service: routes of the stable v1 contract (product.md), errors, middleware.

mod auth;
mod bounds;
mod error;
mod events;
mod extract;
mod jobs;
pub mod schema;
mod views;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use schema::Health;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
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
        Ok(Application {
            listener,
            state: AppState {
                jobs,
                config: Arc::new(config),
            },
            port,
        })
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
        // On the signal, stop the jobs first: event streams then end and running work goes back
        // to the queue, so the graceful shutdown of the server cannot wait on a long stream.
        let stopping = jobs.clone();
        let signal = async move {
            shutdown.await;
            stopping.begin_shutdown();
        };
        axum::serve(self.listener, app).with_graceful_shutdown(signal).await?;
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

#[derive(OpenApi)]
#[openapi(
    info(
        title = "widthlab",
        description = "Simulate deep ReLU networks at initialization and hold the measured norms of signals and \
                       weight gradients against the width bounds of Arpit & Bengio (2019). Errors are \
                       {\"error\": {\"code\", \"message\", \"field\"}}. With WIDTHLAB_TOKENS set, POST and DELETE \
                       need Authorization: Bearer <token>.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "jobs", description = "Submit, watch, cancel and delete jobs"),
        (name = "results", description = "What a finished job holds: layers, bound checks, sweep points, figures"),
        (name = "theory", description = "Closed-form bounds, no simulation"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every documented route, and the OpenAPI document generated from the same declarations
/// (a route cannot exist without its entry).
pub fn documented_routes() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let timed = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(jobs::submit, jobs::list))
        .routes(routes!(jobs::get_job, jobs::delete))
        .routes(routes!(jobs::layers))
        .routes(routes!(jobs::bound_checks))
        .routes(routes!(jobs::cancel))
        .routes(routes!(views::sweep))
        .routes(routes!(views::plot))
        .routes(routes!(bounds::bounds))
        .routes(routes!(views::list_presets))
        .routes(routes!(views::index))
        .routes(routes!(views::metrics))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(openapi_json));
    // Event streams live as long as their job: no request timeout.
    let streams = OpenApiRouter::new().routes(routes!(events::events));
    let (timed, mut doc) = timed.split_for_parts();
    let (streams, stream_doc) = streams.split_for_parts();
    doc.merge(stream_doc);
    (timed, streams, doc)
}

/// The OpenAPI document, rendered once.
static OPENAPI: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| documented_routes().2.to_pretty_json().unwrap_or_else(|_| "{}".into()));

/// The OpenAPI 3 document of this API, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, content_type = "application/json", body = Object)))]
async fn openapi_json() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI.as_str(),
    )
}

pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.config.request_timeout_secs.max(1));
    let body_limit = state.config.max_body_bytes;
    let (timed, streams, _) = documented_routes();
    timed
        .layer(axum::middleware::from_fn_with_state(timeout, request_timeout))
        .merge(streams)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
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

/// Answer 408 in the error format when a request takes longer than the configured limit.
async fn request_timeout(
    State(limit): State<Duration>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(limit.as_secs()).into_response(),
    }
}

/// Count every request by matched route, method and status, with its duration.
async fn record_metrics(req: Request<axum::body::Body>, next: axum::middleware::Next) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let start = std::time::Instant::now();
    let response = next.run(req).await;
    crate::metrics::http_request(&route, &method, response.status().as_u16(), start.elapsed());
    response
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: Some(env!("CARGO_PKG_VERSION").into()),
        error: None,
    })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match state.jobs.store().ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ready".into(),
                version: None,
                error: None,
            }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable".into(),
                version: None,
                error: Some(e.to_string()),
            }),
        ),
    }
}
