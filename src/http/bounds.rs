//! `GET /v1/bounds`: the synchronous theory calculator.

use axum::Json;

use super::extract::Params;

use super::ApiError;

/// Calculator computations running at once.
static BOUNDS_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
use crate::theory::bounds::{bounds_answer, BoundInputs, BoundsAnswer};

/// Every bound's minimal width for (epsilon, delta, depth, samples); with `width`, the epsilon
/// each guarantees there. Synchronous.
#[utoipa::path(get, path = "/v1/bounds", tag = "theory",
    params(
        ("epsilon" = f64, Query, description = "> 0"),
        ("delta" = f64, Query, description = "in (0, 1)"),
        ("depth" = u32, Query, description = "L in [1, 100000]"),
        ("samples" = u64, Query, description = "N in [1, 10^12]"),
        ("width" = Option<u64>, Query, description = "m in [1, 10^9]"),
    ),
    responses((status = 200, body = BoundsAnswer), (status = 400, body = super::schema::ErrorBody), (status = 422, body = super::schema::ErrorBody)))]
pub async fn bounds(params: Params) -> Result<Json<BoundsAnswer>, ApiError> {
    params.only(&["epsilon", "delta", "depth", "samples", "width"])?;
    let epsilon: f64 = params.require("epsilon", "a finite number > 0")?;
    let delta: f64 = params.require("delta", "a number in the open interval (0, 1)")?;
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
    // The exact-tail search takes up to a few seconds at extreme inputs: it runs off the async
    // workers, and at most two at a time (the rest wait, within the request timeout).
    // The permit moves into the computation: a request that times out does not free its slot
    // before the work it started has ended.
    let permit = BOUNDS_SLOTS
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let answer = Json(bounds_answer(&inputs, width));
        drop(permit);
        answer
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))
}
