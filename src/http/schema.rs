//! Response bodies of the API, typed so the OpenAPI document is generated from them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{OneOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::ToSchema;

use crate::analysis::report::{BoundCheck, LayerReport, Stamp};
use crate::analysis::sweep::{FrontierRow, PointReport};
use crate::spec::presets::{Preset, PresetRequest};
use crate::spec::{JobSpecInput, Kind};
use crate::store::{JobRow, Status};

/// The body of `POST /v1/jobs`: a job spec, or a preset with overrides. The two are told apart
/// by `preset` (a spec refuses unknown fields, so exactly one of them matches).
pub struct JobRequest;

impl utoipa::PartialSchema for JobRequest {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Ref::from_schema_name(JobSpecInput::name()))
            .item(Ref::from_schema_name(PresetRequest::name()))
            .description(Some(
                "A job spec, or {\"preset\": NAME, ...overrides} (a preset request); told apart by `preset`.",
            ))
            .into()
    }
}

impl ToSchema for JobRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            JobSpecInput::name().into(),
            <JobSpecInput as utoipa::PartialSchema>::schema(),
        ));
        JobSpecInput::schemas(schemas);
        schemas.push((
            PresetRequest::name().into(),
            <PresetRequest as utoipa::PartialSchema>::schema(),
        ));
        PresetRequest::schemas(schemas);
    }
}

/// Every error: `{"error": {"code", "message", "field"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: malformed_json, bad_request (400); unauthorized (401); forbidden (403);
    /// not_found (404); method_not_allowed (405); timeout (408); idempotency_conflict, wrong_state,
    /// wrong_kind, not_ready (409); payload_too_large (413); invalid_spec (422); queue_full,
    /// storage_full, quota_exceeded, busy (503); internal (500).
    pub code: String,
    pub message: String,
    /// The offending field (dotted path) for 422s and some 400s.
    pub field: Option<String>,
}

/// Work done and to do: layer passes (`norms`) or grid points (`width_sweep`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    /// Where a running job stands beyond the counter, if its kind says (a `min_width` search's
    /// current cell, width and bracket).
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
}

/// Where a job's results live.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub layers: String,
    pub bound_checks: String,
    pub sweep: String,
    pub events: String,
    pub plot: String,
    pub search: String,
    pub geometry: String,
    pub worst_case: String,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub kind: Kind,
    pub status: Status,
    /// The preset the job was submitted from (null for a plain spec).
    pub preset: Option<String>,
    /// The job's name as submitted (null without one): 1 to 120 characters.
    pub name: Option<String>,
    /// The job's tags as submitted (empty without any): at most 16, each 1 to 40 characters of
    /// A-Z, a-z, 0-9, '_', '.', '-'.
    pub tags: Vec<String>,
    /// The name of the token that submitted the job (null on a server without tokens).
    pub owner: Option<String>,
    pub progress: Progress,
    /// The normalized spec: defaults filled in, the seed drawn if it was missing (a valid spec:
    /// submitting it again runs the same job).
    #[schema(value_type = JobSpecInput)]
    pub spec: Value,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// Headline numbers once succeeded (pooled deviations, verdicts; the frontier for sweeps).
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
    /// Seed, RNG algorithm, crate version, precision and engine (set at submission).
    #[schema(value_type = Option<Stamp>)]
    pub stamp: Option<Value>,
    /// 0 for the first run; +1 each time a crash re-queued it.
    pub attempt: u32,
    pub cancel_requested: bool,
    pub links: JobLinks,
}

impl From<&JobRow> for JobView {
    fn from(row: &JobRow) -> JobView {
        let base = format!("/v1/jobs/{}", row.id);
        JobView {
            id: row.id.clone(),
            kind: row.kind,
            status: row.status,
            preset: row.preset.clone(),
            name: row.name.clone(),
            tags: row.tags.clone(),
            owner: row.owner.clone(),
            progress: Progress {
                done: row.progress_done,
                total: row.progress_total,
                detail: row.progress_detail.clone(),
            },
            spec: row.spec.clone(),
            created_at: row.created_at.clone(),
            started_at: row.started_at.clone(),
            finished_at: row.finished_at.clone(),
            error: row.error.clone(),
            summary: row.summary.clone(),
            stamp: row.stamp.clone(),
            attempt: row.attempt,
            cancel_requested: row.cancel_requested,
            links: JobLinks {
                layers: format!("{base}/layers"),
                bound_checks: format!("{base}/bound-checks"),
                sweep: format!("{base}/sweep"),
                events: format!("{base}/events"),
                plot: format!("{base}/plot.svg"),
                search: format!("{base}/search"),
                geometry: format!("{base}/geometry"),
                worst_case: format!("{base}/worst_case"),
                self_: base,
            },
        }
    }
}

/// A page of jobs, newest first.
#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(pattern = "^[0-9]{1,18}$")]
    pub next_cursor: Option<String>,
}

/// Per-layer statistics of a job (empty until it succeeds).
#[derive(Serialize, ToSchema)]
pub struct LayersPage {
    pub job_id: String,
    pub status: Status,
    #[schema(value_type = Vec<LayerReport>)]
    pub layers: Vec<Value>,
}

/// The bound checks of a job (empty until it succeeds, and for sweeps).
#[derive(Serialize, ToSchema)]
pub struct BoundChecksPage {
    pub job_id: String,
    pub status: Status,
    #[schema(value_type = Vec<BoundCheck>)]
    pub bound_checks: Vec<Value>,
}

/// The rows of a `worst_case` job (empty until it succeeds): one per grid point and layer, with
/// K_n as the authors' script computes it and how the search and the bound were computed.
#[derive(Serialize, ToSchema)]
pub struct WorstCasePage {
    pub job_id: String,
    pub status: Status,
    /// K_n per input dimension of the grid, as the authors' script computes it (identically 1).
    #[schema(value_type = Vec<Object>)]
    pub k_n: Value,
    pub k_n_note: String,
    /// How the search and the certified bound were computed.
    #[schema(value_type = Object)]
    pub method: Value,
    #[schema(value_type = Vec<crate::analysis::worst_case::WorstCaseLayer>)]
    pub layers: Vec<Value>,
}

/// The rows of a `geometry` job (empty until it succeeds): one per initial angle and layer.
#[derive(Serialize, ToSchema)]
pub struct GeometryPage {
    pub job_id: String,
    pub status: Status,
    #[schema(value_type = Vec<crate::analysis::geometry::GeometryLayer>)]
    pub layers: Vec<Value>,
}

/// The points of a sweep stored so far, and the frontier per depth.
#[derive(Serialize, ToSchema)]
pub struct SweepPage {
    pub job_id: String,
    pub status: Status,
    #[schema(value_type = Vec<SweepPointView>)]
    pub points: Vec<Value>,
    pub frontier: Vec<FrontierRow>,
}

/// A sweep point as `/sweep` serves it: the stored point, with its bounds also keyed by bound
/// name (`guaranteed_epsilon.arpit2019`, `min_width.chernoff`, ...; what the CSV columns read).
/// Documentation only: the JSON is `PointReport::to_flat_json`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SweepPointView {
    #[serde(flatten)]
    pub point: PointReport,
    /// Epsilon each bound guarantees at this width and depth (null: none, or not finite).
    pub guaranteed_epsilon: BTreeMap<String, Option<f64>>,
    /// Minimal width each bound requires for the spec's epsilon (null: beyond the search limit).
    pub min_width: BTreeMap<String, Option<u64>>,
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

/// The cells of a `min_width` job (probes stored as they are decided; the answer once done).
#[derive(Serialize, ToSchema)]
pub struct SearchPage {
    pub job_id: String,
    pub status: Status,
    /// 1 - delta.
    pub target: f64,
    pub cells: Vec<crate::analysis::search::CellResult>,
}

/// One Server-Sent Event of `GET /v1/jobs/{id}/events`, as an SSE client parses it (`event:`
/// and `data:` lines; keep-alive comments every 15 s are not events).
#[derive(Serialize, ToSchema)]
pub struct JobStreamEvent {
    /// `progress` (any number, while the job is queued or running), then one final `status`.
    pub event: JobStreamEventName,
    /// JSON text: for `progress`, a ProgressEvent; for `status`, the job (a JobView).
    #[schema(content_media_type = "application/json")]
    pub data: String,
}

crate::spec::names::string_enum! {
    /// The event names of a job's event stream.
    pub enum JobStreamEventName {
        Progress = "progress",
        Status = "status",
    }
}

/// The data of a `progress` event.
#[derive(Serialize, ToSchema)]
pub struct ProgressEvent {
    pub id: String,
    pub status: Status,
    pub done: u64,
    pub total: u64,
    /// Where the job stands beyond its counter (a `min_width` search's bracket), if its kind
    /// says.
    pub detail: Option<serde_json::Value>,
}
