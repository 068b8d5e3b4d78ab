//! The HTTP service: the routes of the stable v1 contract, errors, extractors, middleware.
//!
//! Holds one file per concern: `jobs` (submit, list, get, cancel, delete, presets), `results`
//! (layers, bound checks, sweep points, CSV), `figures` (SVG), `events` (SSE), `bounds` (the
//! calculator), `pages` (HTML), `ops` (health, readiness, metrics, OpenAPI), and the plumbing
//! (`error`, `extract`, `auth`, `schema`: the typed response bodies).
//! Depends on: `jobs` (the facade; never the store), `spec`, `analysis` and `figures` for types
//! and rendering, `theory` for the calculator.

mod auth;
mod bounds;
mod error;
mod events;
mod extract;
mod figures;
mod jobs;
mod ops;
mod pages;
mod responses;
mod results;
mod samples;
pub mod schema;
mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::Request;
use axum::response::IntoResponse;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use serve::{serve, ConnectionLimits};

use crate::config::{Auth, Config};
use crate::jobs::Jobs;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub jobs: Arc<Jobs>,
    pub config: Arc<Config>,
    /// Who may change what (decided at start-up).
    pub auth: Arc<Auth>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "widthlab",
        description = "Simulate deep ReLU networks at initialization and hold the measured norms of signals and \
                       weight gradients against the width bounds of Arpit & Bengio (2019).\n\n\
                       Errors are {\"error\": {\"code\", \"message\", \"field\"}}; each operation lists the statuses it \
                       answers. Besides those, on any path: 404 not_found for a path that is no route, 405 \
                       method_not_allowed (with Allow) for a method a path does not have, 413 payload_too_large for a \
                       body over the limit, and 408 timeout when a request (event streams excepted) takes longer than the \
                       server's limit.\n\n\
                       Authentication: a server started with tokens (WIDTHLAB_TOKENS) requires Authorization: Bearer \
                       <token> on the operations that change something (POST /v1/jobs, POST /v1/jobs/{id}/cancel, DELETE \
                       /v1/jobs/{id}: 401 without a valid one) and lets only a job's owner or an admin token cancel or \
                       delete it (403); a server started without tokens (on the loopback interface, or with --open) \
                       checks none. Reads are open.\n\n\
                       Numbers that are not finite (an undefined ratio, an overflow) are written as null; every field \
                       that can be is marked nullable. Seeds are unsigned 64-bit integers; drawn seeds are below 2^53.",
    ),
    modifiers(&BearerAuth),
    // The data of a `progress` event (events carry it as JSON text, so no operation refers to it).
    components(schemas(schema::ProgressEvent)),
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
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token of WIDTHLAB_TOKENS (or WIDTHLAB_ADMIN_TOKENS), by its secret. Required by the \
                         operations that change something when the server runs with tokens; a server without tokens \
                         ignores it.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every documented route, and the OpenAPI document generated from the same declarations
/// (a route cannot exist without its entry).
pub fn documented_routes() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let timed = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(jobs::submit, jobs::list))
        .routes(routes!(jobs::get_job, jobs::delete))
        .routes(routes!(results::layers))
        .routes(routes!(results::bound_checks))
        .routes(routes!(jobs::cancel))
        .routes(routes!(results::sweep))
        .routes(routes!(results::search))
        .routes(routes!(results::geometry))
        .routes(routes!(samples::samples))
        .routes(routes!(samples::histogram))
        .routes(routes!(results::worst_case))
        .routes(routes!(figures::plot))
        .routes(routes!(bounds::bounds))
        .routes(routes!(jobs::list_presets))
        .routes(routes!(pages::index))
        .routes(routes!(pages::job_page))
        .routes(routes!(pages::submit_page))
        .routes(routes!(pages::compare_page))
        .routes(routes!(figures::compare_plot))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::openapi_json));
    // Event streams live as long as their job: no request timeout.
    let streams = OpenApiRouter::new().routes(routes!(events::events));
    let (timed, mut doc) = timed.split_for_parts();
    let (streams, stream_doc) = streams.split_for_parts();
    doc.merge(stream_doc);
    (timed, streams, doc)
}

pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.config.request_timeout_secs.max(1));
    let body_limit = state.config.max_body_bytes;
    let (timed, streams, _) = documented_routes();
    timed
        .layer(axum::middleware::from_fn_with_state(timeout, request_timeout))
        .merge(streams)
        // Tokens are checked for matched routes and methods only: a path that is no route is
        // 404 and a method the path does not have 405, with or without a token.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(body_limit, refuse_oversized))
        .layer(axum::middleware::from_fn_with_state(state.clone(), record_metrics))
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

/// 413 at once for a declared `Content-Length` above the limit, before any of the body is read.
async fn refuse_oversized(
    State(limit): State<usize>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::PayloadTooLarge(limit).into_response();
    }
    next.run(req).await
}

/// Count every request by matched route, method and status, with its duration.
async fn record_metrics(
    State(state): State<AppState>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let start = std::time::Instant::now();
    let response = next.run(req).await;
    state
        .jobs
        .metrics()
        .http_request(&route, &method, response.status().as_u16(), start.elapsed());
    response
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}
