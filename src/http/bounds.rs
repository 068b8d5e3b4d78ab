//! `GET /v1/bounds`: the synchronous theory calculator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::Json;

use super::extract::Params;
use super::responses::{Internal, Timeout};
use super::schema::ErrorBody;
use super::ApiError;
use crate::theory::bounds::{bounds_answer_with, BoundInputs, BoundsAnswer, MIN_DELTA};

/// Calculator computations running at once.
static BOUNDS_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Sets its flag when dropped: the request's future is dropped when the client goes away (or
/// the request times out), and the computation it started polls the flag and stops.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Every bound's minimal width for (epsilon, delta, depth, samples); with `width`, the epsilon
/// each guarantees there. Synchronous; every accepted query answers in milliseconds.
#[utoipa::path(get, path = "/v1/bounds", tag = "theory",
    params(
        ("epsilon" = f64, Query, exclusive_minimum = 0, description = "the tolerance, a finite number > 0"),
        ("delta" = f64, Query, minimum = 1e-300, exclusive_maximum = 1, description = "the failure probability, in [1e-300, 1)"),
        ("depth" = u32, Query, minimum = 1, maximum = 100000, description = "L"),
        ("samples" = u64, Query, minimum = 1, maximum = 1000000000000u64, description = "N"),
        ("width" = Option<u64>, Query, minimum = 1, maximum = 1000000000, description = "m: with it, the epsilon each bound guarantees there"),
    ),
    responses(
        (status = 200, body = BoundsAnswer),
        (status = 400, body = ErrorBody, description = "bad_request: an unknown query parameter (named in `field`) or a malformed query string"),
        Timeout,
        (status = 422, body = ErrorBody, description = "invalid_spec: a parameter missing, not a number, or out of its range (named in `field`)"),
        Internal))]
pub async fn bounds(params: Params) -> Result<Json<BoundsAnswer>, ApiError> {
    params.only(&["epsilon", "delta", "depth", "samples", "width"])?;
    let epsilon: f64 = params.require("epsilon", "a finite number > 0")?;
    let delta: f64 = params.require("delta", &format!("a number in [{MIN_DELTA:e}, 1)"))?;
    let depth: u32 = params.require("depth", "an integer in [1, 100000]")?;
    let samples: u64 = params.require("samples", "an integer in [1, 10^12]")?;
    let width: Option<u64> = params.parse("width", "an integer in [1, 10^9]")?;
    if let Some(w) = width {
        if !(1..=1_000_000_000).contains(&w) {
            return Err(ApiError::invalid(
                "width",
                format!("must be an integer in [1, 10^9], got {w}"),
            ));
        }
    }
    let inputs = BoundInputs::new(epsilon, delta, depth, samples).map_err(|e| ApiError::invalid(e.field, e.message))?;
    // Off the async workers, at most two at a time; the permit moves into the computation, so
    // a request that goes away does not free its slot before its work has stopped.
    let permit = BOUNDS_SLOTS
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let answer = tokio::task::spawn_blocking(move || {
        let answer = bounds_answer_with(&inputs, width, &|| cancel.load(Ordering::Relaxed));
        drop(permit);
        answer
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    answer.map(Json).map_err(|e| ApiError::Internal(e.to_string()))
}
