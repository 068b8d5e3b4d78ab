//! Response bodies of the API, typed so the OpenAPI document is generated from them.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::jobs::JobView;
use crate::presets::Preset;
use crate::report::{BoundCheck, LayerReport};
use crate::sweep::{FrontierRow, PointReport};

/// Every error: `{"error": {"code", "message", "field"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: malformed_json, bad_request, unauthorized, not_found, idempotency_conflict,
    /// wrong_state, wrong_kind, not_ready, payload_too_large, invalid_spec, queue_full, timeout, internal.
    pub code: String,
    pub message: String,
    /// The offending field (dotted path) for 422s and some 400s.
    pub field: Option<String>,
}

/// A page of jobs, newest first.
#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Per-layer statistics of a job (empty until it succeeds).
#[derive(Serialize, ToSchema)]
pub struct LayersPage {
    pub job_id: String,
    pub status: String,
    #[schema(value_type = Vec<LayerReport>)]
    pub layers: Vec<Value>,
}

/// The bound checks of a job (empty until it succeeds, and for sweeps).
#[derive(Serialize, ToSchema)]
pub struct BoundChecksPage {
    pub job_id: String,
    pub status: String,
    #[schema(value_type = Vec<BoundCheck>)]
    pub bound_checks: Vec<Value>,
}

/// The points of a sweep stored so far, and the frontier per depth.
#[derive(Serialize, ToSchema)]
pub struct SweepPage {
    pub job_id: String,
    pub status: String,
    /// Each point also carries `guaranteed_epsilon` and `min_width` keyed by bound name.
    #[schema(value_type = Vec<PointReport>)]
    pub points: Vec<Value>,
    pub frontier: Vec<FrontierRow>,
}

#[derive(Serialize, ToSchema)]
pub struct PresetList {
    pub presets: Vec<Preset>,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: Option<String>,
    pub error: Option<String>,
}
